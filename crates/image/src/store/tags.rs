//! images/tags.json: which manifest each normalised reference points to.

use std::fs;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{write_atomic, Store};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TagRecord {
    /// Normalised reference, e.g. `docker.io/library/busybox:latest`.
    pub reference: String,
    /// The platform manifest the image was unpacked from.
    pub manifest_digest: String,
    pub manifest_media_type: String,
    pub manifest_size: u64,
    /// What the registry answered for the tag (an index digest for multi-arch images).
    #[serde(default)]
    pub repo_digest: Option<String>,
    /// Image id: the config digest.
    pub id: String,
    /// The config's `created`, if any.
    #[serde(default)]
    pub created: Option<String>,
    /// Sum of the compressed layer sizes.
    #[serde(default)]
    pub size: u64,
    /// The OCI manifest oci/index.json points to, when the image's own is a
    /// Docker one (converted; same config and layer blobs): (digest, size).
    #[serde(default)]
    pub layout_manifest: Option<(String, u64)>,
}

impl TagRecord {
    /// `registry/repository` of the reference.
    pub fn name(&self) -> &str {
        let no_digest = self.reference.split('@').next().unwrap_or(&self.reference);
        let last_slash = no_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
        match no_digest[last_slash..].rfind(':') {
            Some(i) => &no_digest[..last_slash + i],
            None => no_digest,
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
struct TagsFile {
    images: Vec<TagRecord>,
}

pub fn read(store: &Store) -> anyhow::Result<Vec<TagRecord>> {
    let path = store.root().join("images/tags.json");
    match fs::read(&path) {
        Ok(bytes) => {
            let f: TagsFile = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is corrupt", path.display()))?;
            Ok(f.images)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// Callers hold the store lock.
pub fn write(store: &Store, records: &[TagRecord]) -> anyhow::Result<()> {
    let f = TagsFile {
        images: records.to_vec(),
    };
    write_atomic(
        store,
        &store.root().join("images/tags.json"),
        &serde_json::to_vec_pretty(&f)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(reference: &str, id: &str) -> TagRecord {
        TagRecord {
            reference: reference.into(),
            manifest_digest: format!("sha256:{}", "b".repeat(64)),
            manifest_media_type: crate::manifest::OCI_MANIFEST.into(),
            manifest_size: 10,
            repo_digest: None,
            id: id.into(),
            created: None,
            size: 0,
            layout_manifest: None,
        }
    }

    #[test]
    fn names_and_lookup() {
        assert_eq!(
            rec("localhost:5000/a/b:t", "x").name(),
            "localhost:5000/a/b"
        );
        assert_eq!(
            rec("docker.io/library/b@sha256:00", "x").name(),
            "docker.io/library/b"
        );
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let id = format!("sha256:{}", "c".repeat(64));
        s.tag(rec("docker.io/library/busybox:latest", &id)).unwrap();
        s.tag(rec("docker.io/library/busybox:1", &id)).unwrap();
        let found = s.find("busybox").unwrap().unwrap();
        assert_eq!(found.reference, "docker.io/library/busybox:latest");
        assert_eq!(s.find("ccc").unwrap().unwrap().id, id);
        assert!(s.find("busybox:2").unwrap().is_none());
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(s.oci_dir().join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
        let other = format!("sha256:ccc{}", "d".repeat(61));
        s.tag(rec("docker.io/library/other:latest", &other))
            .unwrap();
        assert!(s.find("ccc").unwrap_err().to_string().contains("ambiguous"));
        let gone = s.untag(|r| r.reference.ends_with(":1")).unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(read(&s).unwrap().len(), 2);
    }
}
