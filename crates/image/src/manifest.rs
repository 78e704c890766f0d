//! Manifests and indexes: Docker schema 2, OCI manifest, Docker manifest
//! list, OCI index; and picking one platform's manifest out of an index.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// What we send as `Accept` when asking for a manifest.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Docker's annotation on BuildKit attestation (SBOM/provenance) entries.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// The platform this binary runs on, in OCI names.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform {
            architecture: architecture.to_string(),
            os: "linux".to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// Parse `os/arch[/variant]` as given to `--platform`.
    pub fn parse(s: &str) -> Result<Platform, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || {
            Error::Invalid(format!(
                "invalid platform \"{s}\": expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8"
            ))
        };
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let mut architecture = parts[1].to_lowercase();
        // Docker's normalisation of common aliases.
        if architecture == "x86_64" || architecture == "x86-64" {
            architecture = "amd64".into();
        } else if architecture == "aarch64" {
            architecture = "arm64".into();
        }
        Ok(Platform {
            os: parts[0].to_lowercase(),
            architecture,
            variant: parts.get(2).map(|v| v.to_lowercase()),
        })
    }

    /// Whether an index entry for `other` can run where `self` is wanted.
    pub fn matches(&self, other: &Platform) -> bool {
        if self.os != other.os || self.architecture != other.architecture {
            return false;
        }
        let norm = |v: &Option<String>| -> Option<String> {
            match (self.architecture.as_str(), v.as_deref()) {
                ("arm64", None) => Some("v8".into()),
                (_, v) => v.map(str::to_string),
            }
        };
        match &self.variant {
            None => true,
            Some(_) => norm(&self.variant) == norm(&other.variant),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug)]
pub enum Parsed {
    Manifest(Box<Manifest>),
    Index(Index),
}

/// Parse a manifest body; branch on the Content-Type the registry sent, and
/// on the body's own `mediaType` when the registry sent a generic one.
pub fn parse(content_type: &str, body: &[u8]) -> anyhow::Result<Parsed> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    let kind = match ct {
        DOCKER_MANIFEST | OCI_MANIFEST | DOCKER_LIST | OCI_INDEX => ct.to_string(),
        _ => sniff(body)?,
    };
    match kind.as_str() {
        DOCKER_MANIFEST | OCI_MANIFEST => {
            let m: Manifest = serde_json::from_slice(body)
                .map_err(|e| anyhow::anyhow!("malformed image manifest: {e}"))?;
            if m.schema_version != 2 {
                anyhow::bail!("unsupported manifest schemaVersion {}", m.schema_version);
            }
            Ok(Parsed::Manifest(Box::new(m)))
        }
        DOCKER_LIST | OCI_INDEX => {
            let i: Index = serde_json::from_slice(body)
                .map_err(|e| anyhow::anyhow!("malformed image index: {e}"))?;
            Ok(Parsed::Index(i))
        }
        DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => anyhow::bail!(
            "the registry only has a Docker schema 1 manifest, which is deprecated and not supported"
        ),
        other => anyhow::bail!("unsupported manifest media type \"{other}\""),
    }
}

fn sniff(body: &[u8]) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        schema_version: Option<u32>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        layers: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(body)
        .map_err(|e| anyhow::anyhow!("the registry sent a manifest that is not JSON: {e}"))?;
    Ok(match (p.media_type, p.schema_version) {
        (Some(mt), _) => mt,
        (None, Some(1)) => DOCKER_SCHEMA1.to_string(),
        _ if p.manifests.is_some() => OCI_INDEX.to_string(),
        _ if p.layers.is_some() => OCI_MANIFEST.to_string(),
        _ => anyhow::bail!("cannot tell what kind of manifest the registry sent"),
    })
}

/// Whether an index entry is an attestation (SBOM, provenance), not an image.
pub fn is_attestation(d: &Descriptor) -> bool {
    let annotated = d
        .annotations
        .as_ref()
        .and_then(|a| a.get(REFERENCE_TYPE))
        .is_some_and(|v| v == "attestation-manifest");
    let unknown = d
        .platform
        .as_ref()
        .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown");
    annotated || unknown
}

/// The first entry that matches `want`, skipping attestations.
pub fn select<'a>(index: &'a Index, want: &Platform) -> Result<&'a Descriptor, String> {
    let images: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| !is_attestation(d))
        .collect();
    if let Some(d) = images
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
    {
        return Ok(d);
    }
    let have: Vec<String> = images
        .iter()
        .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
        .collect();
    Err(format!(
        "no image for platform {want} (the image has: {})",
        if have.is_empty() {
            "none".to_string()
        } else {
            have.join(", ")
        }
    ))
}

/// The same image as an OCI manifest (Docker schema 2 → OCI media types),
/// for the OCI layout: skopeo and umoci only follow OCI descriptors there.
pub fn to_oci(m: &Manifest) -> Manifest {
    let layer_type = |mt: &str| -> String {
        match mt {
            "application/vnd.docker.image.rootfs.diff.tar.gzip" => OCI_LAYER_GZIP.to_string(),
            "application/vnd.docker.image.rootfs.diff.tar.zstd" => OCI_LAYER_ZSTD.to_string(),
            "application/vnd.docker.image.rootfs.diff.tar" => OCI_LAYER.to_string(),
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip".to_string()
            }
            other => other.to_string(),
        }
    };
    let mut out = m.clone();
    out.media_type = Some(OCI_MANIFEST.to_string());
    out.config.media_type = OCI_CONFIG.to_string();
    for l in &mut out.layers {
        l.media_type = layer_type(&l.media_type);
    }
    out
}

/// The compression a layer media type declares (None: look at magic bytes).
pub fn is_layer_media_type(mt: &str) -> bool {
    mt.starts_with("application/vnd.oci.image.layer.")
        || mt.starts_with("application/vnd.docker.image.rootfs.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(p: Option<(&str, &str, Option<&str>)>, attest: bool) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            size: 1,
            platform: p.map(|(os, arch, v)| Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: v.map(Into::into),
            }),
            annotations: attest.then(|| {
                [(
                    REFERENCE_TYPE.to_string(),
                    "attestation-manifest".to_string(),
                )]
                .into()
            }),
            urls: None,
        }
    }

    #[test]
    fn selects_platform_and_skips_attestations() {
        let mut attest = desc(Some(("linux", "amd64", None)), true);
        attest.digest = "sha256:attest".into();
        let mut arm = desc(Some(("linux", "arm64", Some("v8"))), false);
        arm.digest = "sha256:arm".into();
        let mut amd = desc(Some(("linux", "amd64", None)), false);
        amd.digest = "sha256:amd".into();
        let unknown = desc(Some(("unknown", "unknown", None)), false);
        let idx = Index {
            schema_version: 2,
            media_type: None,
            manifests: vec![unknown, attest, arm, amd],
        };
        let pick = |p: &str| select(&idx, &Platform::parse(p).unwrap()).map(|d| d.digest.clone());
        assert_eq!(pick("linux/amd64").unwrap(), "sha256:amd");
        assert_eq!(pick("linux/arm64").unwrap(), "sha256:arm");
        assert_eq!(pick("linux/aarch64").unwrap(), "sha256:arm");
        assert_eq!(pick("linux/arm64/v8").unwrap(), "sha256:arm");
        let err = pick("linux/s390x").unwrap_err();
        assert!(
            err.contains("linux/s390x") && err.contains("linux/arm64/v8, linux/amd64"),
            "{err}"
        );
    }

    #[test]
    fn arm64_without_variant_is_v8() {
        let want = Platform::parse("linux/arm64/v8").unwrap();
        assert!(want.matches(&Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: None
        }));
        let want = Platform::parse("linux/arm/v7").unwrap();
        assert!(!want.matches(&Platform {
            os: "linux".into(),
            architecture: "arm".into(),
            variant: Some("v6".into())
        }));
    }

    #[test]
    fn bad_platforms() {
        for p in ["linux", "linux/", "/amd64", "a/b/c/d"] {
            assert!(Platform::parse(p).is_err(), "{p}");
        }
    }

    #[test]
    fn parses_by_content_type_or_sniffing() {
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:1","size":1},"layers":[]}"#;
        assert!(matches!(
            parse(DOCKER_MANIFEST, m).unwrap(),
            Parsed::Manifest(_)
        ));
        assert!(matches!(
            parse("application/json", m).unwrap(),
            Parsed::Manifest(_)
        ));
        let i = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(parse("", i).unwrap(), Parsed::Index(_)));
        let s1 = br#"{"schemaVersion":1,"fsLayers":[]}"#;
        assert!(parse("application/json", s1)
            .unwrap_err()
            .to_string()
            .contains("schema 1"));
        assert!(parse(OCI_MANIFEST, b"not json").is_err());
    }
}
