//! The build cache: `<root>/build-cache/<key hex>.json` maps a step key
//! ([`crate::cache_key::step_key`]) to what the step produced — a layer (its
//! blob descriptor and diff_id) or nothing (an empty diff) — and when. An
//! entry is written (temp + rename) only after its step succeeded and its
//! layer is in the store; it is used only while that layer still is.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use mc_image::commit::StoredLayer;
use serde::{Deserialize, Serialize};

/// What a cached step produced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// The layer, or `None` when the step changed nothing.
    pub layer: Option<StoredLayer>,
    /// RFC 3339 time the step ran (history `created`, so a cached rebuild
    /// gives the same image id).
    pub created: String,
}

/// The cache directory of one `--root`.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache under `<root>/build-cache/` (created on first write).
    pub fn new(root: &Path) -> Cache {
        Cache {
            dir: root.join("build-cache"),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        let hex = key.strip_prefix("sha256:").unwrap_or(key);
        self.dir.join(format!("{hex}.json"))
    }

    /// The entry for `key`, if present and its layer is still in `store`.
    pub fn get(&self, key: &str, store: &mc_image::Store) -> Option<Entry> {
        let bytes = fs::read(self.path(key)).ok()?;
        let e: Entry = serde_json::from_slice(&bytes).ok()?;
        if let Some(l) = &e.layer {
            if !store.has_layer(&l.diff_id) || !store.has_blob(&l.descriptor.digest) {
                return None;
            }
        }
        Some(e)
    }

    /// Record `entry` for `key`, atomically.
    pub fn put(&self, key: &str, entry: &Entry) -> anyhow::Result<()> {
        fs::create_dir_all(&self.dir).with_context(|| format!("create {}", self.dir.display()))?;
        let path = self.path(key);
        let tmp = self
            .dir
            .join(format!(".{}-{}.tmp", std::process::id(), unique()));
        let mut f = fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec(entry)?)?;
        f.sync_data()?;
        drop(f);
        fs::rename(&tmp, &path).with_context(|| format!("write {}", path.display()))?;
        Ok(())
    }

    /// The diff_ids every cache entry refers to (kept by image garbage collection
    /// if its caller wants build cache to survive `image prune`).
    pub fn layers(&self) -> Vec<String> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<Entry>(&b).ok())
            .filter_map(|e| e.layer.map(|l| l.diff_id))
            .collect()
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_need_their_layer() {
        let d = tempfile::tempdir().unwrap();
        let store = mc_image::Store::open(&d.path().join("store")).unwrap();
        let c = Cache::new(d.path());
        let key = format!("sha256:{}", "a".repeat(64));
        assert!(c.get(&key, &store).is_none());
        let empty = Entry {
            layer: None,
            created: "2024-01-01T00:00:00Z".into(),
        };
        c.put(&key, &empty).unwrap();
        assert_eq!(c.get(&key, &store), Some(empty));
        let tar = {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, "f", &b"x"[..]).unwrap();
            b.into_inner().unwrap()
        };
        let layer = mc_image::commit::store_layer(&store, &tar[..]).unwrap();
        let with = Entry {
            layer: Some(layer.clone()),
            created: "2024-01-01T00:00:00Z".into(),
        };
        c.put(&key, &with).unwrap();
        assert_eq!(c.get(&key, &store), Some(with));
        assert_eq!(c.layers(), vec![layer.diff_id.clone()]);
        fs::remove_dir_all(store.layer_dir(&layer.diff_id)).unwrap();
        assert!(c.get(&key, &store).is_none(), "a collected layer is a miss");
    }
}
