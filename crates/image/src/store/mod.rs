//! The content store under `--root`.
//!
//! ```text
//! oci/                  OCI image layout: oci-layout, index.json, blobs/sha256/<hex>
//! layers/<hex>/diff/    each layer unpacked once (overlay whiteouts), keyed by diff_id
//! layers/<hex>/size     bytes of the unpacked layer
//! images/tags.json      normalised reference → manifest digest (+ image id)
//! locks/                flock files (store, per blob, per layer)
//! tmp/                  work in progress; renamed into place when complete
//! ```
//! Everything becomes visible by one `rename`, so an interrupted pull
//! leaves only `tmp/` litter, which the next `open` sweeps.

pub mod locks;
pub mod tags;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest as _, Sha256};

use crate::manifest::{self, Manifest};
use crate::reference::Reference;
use crate::{Error, LocalImage};

pub use tags::TagRecord;

/// An opened store. Cheap to clone paths out of; holds no file handles.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open the store at `root`, creating the layout if missing.
    pub fn open(root: &Path) -> Result<Store, Error> {
        let store = Store {
            root: root.to_path_buf(),
        };
        store
            .init()
            .with_context(|| format!("open image store {}", root.display()))?;
        Ok(store)
    }

    fn init(&self) -> anyhow::Result<()> {
        for d in [
            self.oci_dir().join("blobs/sha256"),
            self.root.join("layers"),
            self.root.join("images"),
            self.root.join("locks"),
            self.tmp_dir(),
        ] {
            fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
        }
        let layout = self.oci_dir().join("oci-layout");
        if !layout.exists() {
            write_atomic(self, &layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index = self.oci_dir().join("index.json");
        if !index.exists() {
            let _lock = self.lock("store")?;
            if !index.exists() {
                self.write_oci_index(&[])?;
            }
        }
        self.sweep_tmp();
        Ok(())
    }

    /// Remove leftovers of interrupted work (only entries nobody holds a lock on).
    fn sweep_tmp(&self) {
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // Work dirs are named "<pid>-…": only sweep those whose process is gone.
            let pid: Option<i32> = name.split('-').next().and_then(|p| p.parse().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                let p = e.path();
                if p.is_dir() && !p.is_symlink() {
                    let _ = crate::unpack::remove_tree(&p);
                } else {
                    let _ = fs::remove_file(&p);
                }
            }
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn oci_dir(&self) -> PathBuf {
        self.root.join("oci")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A fresh private path under tmp/ (removed by the caller or the next sweep).
    pub fn tmp_path(&self, what: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        self.tmp_dir()
            .join(format!("{}-{n}-{nanos:x}-{what}", std::process::id()))
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.oci_dir().join("blobs/sha256").join(hex)
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn read_blob(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
        let p = self.blob_path(digest);
        fs::read(&p).with_context(|| format!("read blob {digest}"))
    }

    /// Store small content (manifests, configs) under its own digest.
    pub fn write_blob(&self, bytes: &[u8]) -> anyhow::Result<String> {
        let digest = sha256_digest(bytes);
        let path = self.blob_path(&digest);
        if !path.exists() {
            write_atomic(self, &path, bytes)?;
        }
        Ok(digest)
    }

    /// The directory for a layer with this diff_id: `layers/<hex>`.
    pub fn layer_dir(&self, diff_id: &str) -> PathBuf {
        let hex = diff_id.strip_prefix("sha256:").unwrap_or(diff_id);
        self.root.join("layers").join(hex)
    }

    /// The unpacked tree of a layer (an overlay lowerdir): `layers/<hex>/diff`.
    pub fn layer_path(&self, diff_id: &str) -> PathBuf {
        self.layer_dir(diff_id).join("diff")
    }

    pub fn has_layer(&self, diff_id: &str) -> bool {
        self.layer_path(diff_id).is_dir()
    }

    /// Bytes of an unpacked layer as recorded when it was unpacked.
    pub fn layer_size(&self, diff_id: &str) -> u64 {
        fs::read_to_string(self.layer_dir(diff_id).join("size"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Take a named lock under locks/ (e.g. "store", "layer-<hex>").
    pub fn lock(&self, name: &str) -> anyhow::Result<locks::FileLock> {
        locks::exclusive(&self.root.join("locks").join(format!("{name}.lock")))
    }

    /// Every tagged image.
    pub fn list(&self) -> Result<Vec<TagRecord>, Error> {
        Ok(tags::read(self)?)
    }

    /// Find an image by reference, image id (or unique prefix) or digest.
    /// Returns None when it is not in the store or some of its layers are missing.
    pub fn get(&self, reference: &str) -> Result<Option<LocalImage>, Error> {
        match self.find(reference)? {
            Some(rec) => self.load(&rec),
            None => Ok(None),
        }
    }

    /// The tag record `what` names (reference, id, id prefix, digest).
    pub fn find(&self, what: &str) -> Result<Option<TagRecord>, Error> {
        let records = tags::read(self)?;
        let id_like = what.strip_prefix("sha256:").unwrap_or(what);
        let is_hex = !id_like.is_empty() && id_like.bytes().all(|b| b.is_ascii_hexdigit());
        // An ID prefix of at least 3 hex digits, as docker, unless a tag matches first.
        if let Ok(r) = Reference::parse(what) {
            let key = r.to_string();
            if let Some(rec) = records.iter().find(|rec| rec.reference == key) {
                return Ok(Some(rec.clone()));
            }
            if let Some(d) = &r.digest {
                let name = r.name();
                if let Some(rec) = records.iter().find(|rec| {
                    rec.name() == name
                        && (rec.manifest_digest == *d || rec.repo_digest.as_deref() == Some(d))
                }) {
                    return Ok(Some(rec.clone()));
                }
            }
        }
        if is_hex && (id_like.len() >= 3 || what.starts_with("sha256:")) {
            let hits: Vec<&TagRecord> = records
                .iter()
                .filter(|rec| {
                    rec.id
                        .strip_prefix("sha256:")
                        .unwrap_or(&rec.id)
                        .starts_with(id_like)
                        || rec
                            .manifest_digest
                            .trim_start_matches("sha256:")
                            .starts_with(id_like)
                })
                .collect();
            let ids: std::collections::BTreeSet<&str> =
                hits.iter().map(|r| r.id.as_str()).collect();
            match ids.len() {
                0 => {}
                1 => return Ok(Some(hits[0].clone())),
                _ => {
                    return Err(Error::Invalid(format!(
                        "image ID prefix \"{what}\" is ambiguous: it matches {} images",
                        ids.len()
                    )))
                }
            }
        }
        Ok(None)
    }

    /// Build a [`LocalImage`] from a record; None if any layer is missing.
    pub fn load(&self, rec: &TagRecord) -> Result<Option<LocalImage>, Error> {
        let (manifest, config_bytes) = match self.read_image(&rec.manifest_digest) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        };
        let config: oci_spec::image::ImageConfiguration = serde_json::from_slice(&config_bytes)
            .with_context(|| format!("parse image config {}", manifest.config.digest))?;
        let diff_ids = config.rootfs().diff_ids().clone();
        let mut layers = Vec::with_capacity(diff_ids.len());
        for d in &diff_ids {
            if !self.has_layer(d) {
                return Ok(None);
            }
            layers.push(self.layer_path(d));
        }
        Ok(Some(LocalImage {
            id: manifest.config.digest.clone(),
            reference: rec.reference.clone(),
            manifest_digest: rec.manifest_digest.clone(),
            config,
            layers,
        }))
    }

    /// The manifest and raw config of a stored manifest digest.
    pub fn read_image(&self, manifest_digest: &str) -> anyhow::Result<(Manifest, Vec<u8>)> {
        let raw = self.read_blob(manifest_digest)?;
        let manifest: Manifest = serde_json::from_slice(&raw)
            .with_context(|| format!("parse stored manifest {manifest_digest}"))?;
        let config = self.read_blob(&manifest.config.digest)?;
        Ok((manifest, config))
    }

    /// Point `rec.reference` at its manifest (tags.json and oci/index.json), atomically.
    pub fn tag(&self, mut rec: TagRecord) -> anyhow::Result<()> {
        if rec.manifest_media_type != manifest::OCI_MANIFEST {
            let raw = self.read_blob(&rec.manifest_digest)?;
            let m: Manifest = serde_json::from_slice(&raw).context("parse the manifest")?;
            let oci = serde_json::to_vec(&manifest::to_oci(&m))?;
            let digest = self.write_blob(&oci)?;
            rec.layout_manifest = Some((digest, oci.len() as u64));
        }
        let _lock = self.lock("store")?;
        let mut records = tags::read(self)?;
        records.retain(|r| r.reference != rec.reference);
        records.push(rec);
        records.sort_by(|a, b| a.reference.cmp(&b.reference));
        tags::write(self, &records)?;
        self.write_oci_index(&records)
    }

    /// Remove tags for which `drop` says yes; returns the removed ones.
    pub fn untag(&self, drop: impl Fn(&TagRecord) -> bool) -> anyhow::Result<Vec<TagRecord>> {
        let _lock = self.lock("store")?;
        let records = tags::read(self)?;
        let (gone, kept): (Vec<_>, Vec<_>) = records.into_iter().partition(|r| drop(r));
        if !gone.is_empty() {
            tags::write(self, &kept)?;
            self.write_oci_index(&kept)?;
        }
        Ok(gone)
    }

    /// index.json lists every tag, named by its full reference (`ref.name`),
    /// so `skopeo inspect oci:<root>/oci:docker.io/library/busybox:latest` works.
    fn write_oci_index(&self, records: &[TagRecord]) -> anyhow::Result<()> {
        let manifests: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                let (digest, size) = r
                    .layout_manifest
                    .clone()
                    .unwrap_or_else(|| (r.manifest_digest.clone(), r.manifest_size));
                serde_json::json!({
                    "mediaType": manifest::OCI_MANIFEST,
                    "digest": digest,
                    "size": size,
                    "annotations": {
                        "org.opencontainers.image.ref.name": r.reference,
                        "io.containerd.image.name": r.reference,
                    }
                })
            })
            .collect();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_INDEX,
            "manifests": manifests,
        });
        write_atomic(
            self,
            &self.oci_dir().join("index.json"),
            &serde_json::to_vec_pretty(&index)?,
        )
    }

    /// Delete blobs and layers no tagged image uses any more. `keep` lists
    /// extra diff_ids to keep (e.g. layers of containers' images).
    pub fn collect_garbage(&self, keep_layers: &[String]) -> anyhow::Result<GcReport> {
        let _lock = self.lock("store")?;
        let records = tags::read(self)?;
        let mut blobs = std::collections::HashSet::new();
        let mut layers: std::collections::HashSet<String> = keep_layers
            .iter()
            .map(|d| d.trim_start_matches("sha256:").to_string())
            .collect();
        for r in &records {
            blobs.insert(hex_of(&r.manifest_digest));
            if let Some(d) = &r.repo_digest {
                blobs.insert(hex_of(d));
            }
            if let Some((d, _)) = &r.layout_manifest {
                blobs.insert(hex_of(d));
            }
            if let Ok((m, cfg)) = self.read_image(&r.manifest_digest) {
                blobs.insert(hex_of(&m.config.digest));
                for l in &m.layers {
                    blobs.insert(hex_of(&l.digest));
                }
                if let Ok(c) = serde_json::from_slice::<oci_spec::image::ImageConfiguration>(&cfg) {
                    for d in c.rootfs().diff_ids() {
                        layers.insert(hex_of(d));
                    }
                }
            }
        }
        let mut report = GcReport::default();
        for e in fs::read_dir(self.oci_dir().join("blobs/sha256"))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !blobs.contains(&name) {
                report.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(e.path())?;
                report.blobs += 1;
            }
        }
        for e in fs::read_dir(self.root.join("layers"))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !layers.contains(&name) {
                let _layer_lock = self.lock(&format!("layer-{name}"))?;
                report.bytes += self.layer_size(&name);
                // Rename first so a half-deleted layer is never visible.
                let doomed = self.tmp_path("gc");
                fs::rename(e.path(), &doomed)?;
                crate::unpack::remove_tree(&doomed)?;
                report.layers.push(format!("sha256:{name}"));
            }
        }
        Ok(report)
    }
}

#[derive(Debug, Default)]
pub struct GcReport {
    pub blobs: usize,
    pub layers: Vec<String>,
    pub bytes: u64,
}

fn hex_of(digest: &str) -> String {
    digest.trim_start_matches("sha256:").to_string()
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Write `path` by temp file + rename, so readers see old or new, never half.
pub fn write_atomic(store: &Store, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = store.tmp_path("write");
    let mut f = fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_data()?;
    drop(f);
    fs::rename(&tmp, path).with_context(|| format!("rename into {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_an_oci_layout() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let layout: serde_json::Value =
            serde_json::from_slice(&fs::read(s.oci_dir().join("oci-layout")).unwrap()).unwrap();
        assert_eq!(layout["imageLayoutVersion"], "1.0.0");
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(s.oci_dir().join("index.json")).unwrap()).unwrap();
        assert_eq!(index["schemaVersion"], 2);
        assert!(s.get("busybox").unwrap().is_none());
        let d = s.write_blob(b"hello").unwrap();
        assert_eq!(
            d,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(s.read_blob(&d).unwrap(), b"hello");
    }

    #[test]
    fn sweep_removes_dead_work_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let dead = s.tmp_dir().join("999999999-0-0-layer");
        fs::create_dir_all(dead.join("a/b")).unwrap();
        let ours = s.tmp_path("layer");
        fs::create_dir_all(&ours).unwrap();
        Store::open(dir.path()).unwrap();
        assert!(!dead.exists());
        assert!(ours.exists());
    }
}
