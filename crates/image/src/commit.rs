//! Committing a locally built image (`image build`): layers and config enter
//! the store exactly like a pulled image's — blobs in the OCI layout, each
//! layer unpacked once under `layers/<diff-id>/` by the same unpacking code
//! as a pull (so the layer directory is what the tarball says), a manifest,
//! and a tag record.

use std::io::Read;

use crate::manifest::{self, Descriptor};
use crate::pull::{store_blob_from_reader, unpack_stored_blob};
use crate::store::TagRecord;
use crate::{Error, Reference, Store};

/// A layer stored by [`store_layer`]: its blob descriptor and diff_id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredLayer {
    /// The (compressed) blob in `oci/blobs`.
    pub descriptor: Descriptor,
    /// sha256 of the uncompressed tar stream; `layers/<hex>/diff` holds it unpacked.
    pub diff_id: String,
}

/// Store a layer tarball (gzip, zstd or plain; by magic bytes) as a blob and
/// unpack it into `layers/<diff-id>/` unless that layer is already there.
pub fn store_layer(store: &Store, input: impl Read) -> Result<StoredLayer, Error> {
    let (blob, size) = store_blob_from_reader(store, input)
        .map_err(|e| Error::Other(e.context("store a built layer")))?;
    let head = {
        let mut f = std::fs::File::open(store.blob_path(&blob)).map_err(anyhow::Error::from)?;
        let mut h = [0u8; 4];
        let n = f.read(&mut h).map_err(anyhow::Error::from)?;
        h[..n].to_vec()
    };
    let media_type = match crate::unpack::sniff(&head) {
        crate::unpack::Compression::Gzip => manifest::OCI_LAYER_GZIP,
        crate::unpack::Compression::Zstd => manifest::OCI_LAYER_ZSTD,
        crate::unpack::Compression::None => manifest::OCI_LAYER,
    };
    let unpacked = unpack_stored_blob(store, &blob)
        .map_err(|e| Error::Other(e.context(format!("unpack built layer {blob}"))))?;
    Ok(StoredLayer {
        descriptor: Descriptor {
            media_type: media_type.to_string(),
            digest: blob,
            size,
            platform: None,
            annotations: None,
            urls: None,
        },
        diff_id: unpacked.diff_id,
    })
}

/// The layer blob descriptors of a stored image (lowest first), to carry a
/// base image's layers into a built image's manifest.
pub fn layer_descriptors(store: &Store, manifest_digest: &str) -> Result<Vec<Descriptor>, Error> {
    let (m, _) = store.read_image(manifest_digest)?;
    Ok(m.layers)
}

/// What [`commit`] made.
#[derive(Debug, Clone)]
pub struct Committed {
    /// Image id: "sha256:<config digest>".
    pub id: String,
    /// The OCI manifest's digest.
    pub manifest_digest: String,
    /// Size of the manifest.
    pub manifest_size: u64,
    /// Sum of the layer blob sizes.
    pub size: u64,
}

/// Write `config` (the full image config JSON) and an OCI manifest over
/// `layers` (every layer, base ones included, lowest first; their blobs must
/// be in the store). Nothing is tagged: see [`tag`].
pub fn commit(store: &Store, config: &[u8], layers: &[Descriptor]) -> Result<Committed, Error> {
    for l in layers {
        if !store.has_blob(&l.digest) {
            return Err(Error::Other(anyhow::anyhow!(
                "commit: layer blob {} is not in the store",
                l.digest
            )));
        }
    }
    let config_digest = store.write_blob(config)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": { "mediaType": manifest::OCI_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": layers,
    });
    let raw = serde_json::to_vec(&manifest).map_err(anyhow::Error::from)?;
    let manifest_digest = store.write_blob(&raw)?;
    tracing::info!(target: "explain::image", "built image {config_digest}: manifest {manifest_digest}");
    Ok(Committed {
        id: config_digest,
        manifest_digest,
        manifest_size: raw.len() as u64,
        size: layers.iter().map(|l| l.size).sum(),
    })
}

/// Point `reference` at a committed image (tags.json and oci/index.json).
pub fn tag(store: &Store, c: &Committed, reference: &Reference) -> Result<TagRecord, Error> {
    if reference.digest.is_some() {
        return Err(Error::Invalid(format!(
            "invalid tag {reference}: give a name and tag, not a digest"
        )));
    }
    let created = store
        .read_blob(&c.id)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["created"].as_str().map(str::to_string));
    let rec = TagRecord {
        reference: reference.to_string(),
        manifest_digest: c.manifest_digest.clone(),
        manifest_media_type: manifest::OCI_MANIFEST.to_string(),
        manifest_size: c.manifest_size,
        repo_digest: None,
        id: c.id.clone(),
        created,
        size: c.size,
        layout_manifest: None,
    };
    store.tag(rec.clone())?;
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_and_tags_a_built_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "code/app.py", &b"hi\n"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let layer = store_layer(&store, &tar[..]).unwrap();
        assert_eq!(layer.descriptor.media_type, manifest::OCI_LAYER);
        assert!(store.has_layer(&layer.diff_id));
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        });
        let c = commit(
            &store,
            &serde_json::to_vec(&config).unwrap(),
            std::slice::from_ref(&layer.descriptor),
        )
        .unwrap();
        tag(&store, &c, &Reference::parse("hit-counter-web").unwrap()).unwrap();
        let img = store.get("hit-counter-web:latest").unwrap().unwrap();
        assert_eq!(img.id, c.id);
        assert_eq!(
            std::fs::read(img.layers[0].join("code/app.py")).unwrap(),
            b"hi\n"
        );
        // A missing blob is refused before anything is written.
        let mut bad = layer.descriptor.clone();
        bad.digest = format!("sha256:{}", "0".repeat(64));
        assert!(commit(&store, b"{}", &[bad]).is_err());
    }
}
