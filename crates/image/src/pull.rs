//! Pulling: resolve the manifest (mirrors first), fetch the config, then
//! per layer, up to three at once: download → sha256 → blob file, and at the
//! same time inflate → sha256 (diff_id) → unpack, on a blocking thread fed
//! through a bounded channel. Nothing becomes visible until verified.

use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, Semaphore};

use crate::manifest::{self, Descriptor, Manifest, Parsed, Platform};
use crate::progress::{LayerProgress, Progress};
use crate::reference::Reference;
use crate::registry::client::{self, Client, ATTEMPTS};
use crate::registry::{self, RegistryError};
use crate::store::{sha256_digest, TagRecord};
use crate::unpack::{self, Unpacked};
use crate::{auth, Error, LocalImage, PullOptions, Store};

/// Layers downloaded at once (Docker's default).
pub const PARALLEL_LAYERS: usize = 3;
/// Chunks buffered between the download and the unpacking thread.
const CHANNEL_CHUNKS: usize = 64;

/// A manifest chosen for this platform, with what the tag pointed at.
struct Resolved {
    manifest: Manifest,
    raw: Vec<u8>,
    digest: String,
    media_type: String,
    /// The digest the registry served for the reference (an index for multi-arch).
    repo_digest: String,
}

pub async fn pull(store: &Store, r: &Reference, opts: &PullOptions) -> Result<LocalImage, Error> {
    let explicit_platform = opts.platform.as_deref().map(Platform::parse).transpose()?;
    let want = explicit_platform.clone().unwrap_or_else(Platform::host);
    let endpoints = registry::endpoints(r, &opts.mirrors)?;
    let http = client::http_client()?;
    let progress = Progress::new(opts.progress);
    progress.line(&format!("{}: Pulling from {}", r.object(), r.repository));

    let mut failures: Vec<(registry::Endpoint, RegistryError)> = Vec::new();
    let mut found = None;
    for ep in endpoints {
        let creds = opts.credentials.clone().or_else(|| {
            let host = if ep.mirror {
                ep.host.as_str()
            } else {
                r.registry.as_str()
            };
            auth::lookup(host)
        });
        tracing::info!(target: "explain::image", "resolve {r} at {}{}", ep.base, if ep.mirror { " (mirror)" } else { "" });
        let client = Client::new(http.clone(), ep.clone(), &r.repository, creds);
        match resolve(&client, r, &want).await {
            Ok(res) => {
                found = Some((client, res));
                break;
            }
            Err(e) => {
                tracing::debug!("{}: {e}", ep.base);
                failures.push((ep, e));
            }
        }
    }
    let Some((client, resolved)) = found else {
        return Err(resolution_error(r, failures));
    };
    fetch(
        store,
        &client,
        r,
        resolved,
        explicit_platform.as_ref(),
        &progress,
    )
    .await
    .map_err(|e| match e {
        Error::Invalid(m) => Error::Invalid(format!("pull {r}: {m}")),
        Error::Other(e) => Error::Other(e.context(format!("pull {r}"))),
    })
}

/// One line from every endpoint's failure: the most telling one first.
fn resolution_error(
    r: &Reference,
    mut failures: Vec<(registry::Endpoint, RegistryError)>,
) -> Error {
    let primary = failures
        .iter()
        .position(|(_, e)| e.is_definitive())
        .unwrap_or(failures.len().saturating_sub(1));
    if failures.is_empty() {
        return Error::Other(anyhow::anyhow!("pull {r}: no registry to ask"));
    }
    let (_, main) = failures.remove(primary);
    let others: Vec<String> = failures
        .iter()
        .map(|(ep, e)| format!("{}: {e}", ep.base))
        .collect();
    let text = if others.is_empty() {
        format!("pull {r}: {main}")
    } else {
        format!("pull {r}: {main} (also tried {})", others.join("; "))
    };
    if main.is_user_error() {
        Error::Invalid(text)
    } else {
        Error::Other(anyhow::anyhow!(text))
    }
}

async fn resolve(
    client: &Client,
    r: &Reference,
    want: &Platform,
) -> Result<Resolved, RegistryError> {
    client.ping().await?;
    let what = match (&r.digest, &r.tag) {
        (Some(d), _) => format!("manifest {d}"),
        (None, Some(t)) => format!("tag \"{t}\""),
        (None, None) => "manifest".to_string(),
    };
    let (ct, raw) = match client.manifest(r.object(), &what).await {
        Ok(v) => v,
        Err(RegistryError::NotFound(m)) => {
            // Say whether the repository itself is missing, not just the tag.
            return Err(match client.repository_exists().await {
                Ok(false) => RegistryError::NotFound(format!(
                    "repository {} not found at {}",
                    r.name(),
                    client.endpoint.base
                )),
                _ => RegistryError::NotFound(m),
            });
        }
        Err(e) => return Err(e),
    };
    let top = sha256_digest(&raw);
    if let Some(d) = &r.digest {
        if *d != top {
            return Err(RegistryError::Protocol(format!(
                "manifest digest mismatch: asked for {d}, the registry sent content with digest {top}"
            )));
        }
    }
    let parsed =
        manifest::parse(&ct, &raw).map_err(|e| RegistryError::Protocol(format!("{what}: {e}")))?;
    match parsed {
        Parsed::Manifest(m) => Ok(Resolved {
            media_type: m
                .media_type
                .clone()
                .unwrap_or_else(|| media_type_of(&ct, manifest::OCI_MANIFEST)),
            manifest: *m,
            raw,
            digest: top.clone(),
            repo_digest: top,
        }),
        Parsed::Index(index) => {
            let d = manifest::select(&index, want)
                .map_err(|e| RegistryError::NotFound(format!("{what}: {e}")))?;
            tracing::info!(target: "explain::image", "index {top}: {want} -> {}", d.digest);
            let (ct2, raw2) = client
                .manifest(&d.digest, &format!("manifest {} of {r}", d.digest))
                .await?;
            let got = sha256_digest(&raw2);
            if got != d.digest {
                return Err(RegistryError::Protocol(format!(
                    "manifest digest mismatch for {want}: the index lists {}, the registry sent {got}",
                    d.digest
                )));
            }
            match manifest::parse(&ct2, &raw2)
                .map_err(|e| RegistryError::Protocol(format!("{what}: {e}")))?
            {
                Parsed::Manifest(m) => Ok(Resolved {
                    media_type: m
                        .media_type
                        .clone()
                        .unwrap_or_else(|| media_type_of(&ct2, &d.media_type)),
                    manifest: *m,
                    raw: raw2,
                    digest: got,
                    repo_digest: top,
                }),
                Parsed::Index(_) => Err(RegistryError::Protocol(format!(
                    "{what}: nested indexes are not supported"
                ))),
            }
        }
    }
}

fn media_type_of(content_type: &str, fallback: &str) -> String {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    if ct == manifest::DOCKER_MANIFEST || ct == manifest::OCI_MANIFEST {
        ct.to_string()
    } else {
        fallback.to_string()
    }
}

async fn fetch(
    store: &Store,
    client: &Client,
    r: &Reference,
    res: Resolved,
    explicit_platform: Option<&Platform>,
    progress: &Progress,
) -> Result<LocalImage, Error> {
    let m = &res.manifest;
    // Config: small, verified, stored before anything that refers to it.
    let config_raw = if store.has_blob(&m.config.digest) {
        store.read_blob(&m.config.digest)?
    } else {
        let what = format!("config {} of {r}", m.config.digest);
        let raw = client
            .blob_bytes(&m.config.digest, &what)
            .await
            .map_err(RegistryError::into_error)?;
        let got = sha256_digest(&raw);
        if got != m.config.digest {
            return Err(Error::Other(anyhow::anyhow!(
                "config digest mismatch: expected {}, got {got}",
                m.config.digest
            )));
        }
        store.write_blob(&raw)?;
        raw
    };
    let config: oci_spec::image::ImageConfiguration =
        serde_json::from_slice(&config_raw).context("the image config is not valid")?;
    if let Some(want) = explicit_platform {
        let have = Platform {
            os: config.os().to_string(),
            architecture: config.architecture().to_string(),
            variant: config.variant().clone(),
        };
        if !want.matches(&have) {
            return Err(Error::Invalid(format!(
                "the image is for {have}, not the requested platform {want}"
            )));
        }
    }
    let diff_ids = config.rootfs().diff_ids().clone();
    if diff_ids.len() != m.layers.len() {
        return Err(Error::Other(anyhow::anyhow!(
            "the manifest lists {} layers but the config {} diff_ids",
            m.layers.len(),
            diff_ids.len()
        )));
    }
    for l in &m.layers {
        crate::reference::validate_digest(&l.digest)
            .map_err(|e| Error::Other(anyhow::anyhow!("layer descriptor: {e}")))?;
        if !manifest::is_layer_media_type(&l.media_type) {
            return Err(Error::Other(anyhow::anyhow!(
                "layer {} has unsupported media type \"{}\"",
                l.digest,
                l.media_type
            )));
        }
    }
    for d in &diff_ids {
        crate::reference::validate_digest(d)
            .map_err(|e| Error::Other(anyhow::anyhow!("config diff_id: {e}")))?;
    }
    store.write_blob(&res.raw)?;

    // Layers, PARALLEL_LAYERS at a time; each task keeps its own error.
    let sem = Arc::new(Semaphore::new(PARALLEL_LAYERS));
    let client = Arc::new(client.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (desc, diff_id)) in m.layers.iter().zip(diff_ids.iter()).enumerate() {
        let lp = progress.layer(&desc.digest, desc.size);
        let (store, client, sem) = (store.clone(), client.clone(), sem.clone());
        let (desc, diff_id) = (desc.clone(), diff_id.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r = ensure_layer(&store, &client, &desc, &diff_id, &lp).await;
            if let Err(e) = &r {
                lp.fail(&format!("failed: {e}"));
            }
            (i, r)
        });
    }
    let mut first_err: Option<(usize, anyhow::Error)> = None;
    while let Some(joined) = tasks.join_next().await {
        let (i, r) = match joined {
            Ok(v) => v,
            Err(e) if e.is_cancelled() => continue,
            Err(e) => return Err(Error::Other(anyhow::anyhow!("layer task: {e}"))),
        };
        if let Err(e) = r {
            if first_err.as_ref().is_none_or(|(j, _)| i < *j) {
                first_err = Some((i, e));
            }
            // Stop the others: their partial work is in tmp/ and gets removed.
            tasks.abort_all();
        }
    }
    if let Some((_, e)) = first_err {
        return Err(classify(e));
    }

    let record = TagRecord {
        reference: r.to_string(),
        manifest_digest: res.digest.clone(),
        manifest_media_type: res.media_type.clone(),
        manifest_size: res.raw.len() as u64,
        repo_digest: Some(res.repo_digest.clone()),
        id: m.config.digest.clone(),
        created: config.created().clone(),
        size: m.layers.iter().map(|l| l.size).sum(),
        layout_manifest: None,
    };
    store.tag(record.clone())?;
    tracing::info!(target: "explain::image", "tag {r} -> {}", res.digest);
    progress.line(&format!("Digest: {}", res.repo_digest));
    store.load(&record)?.ok_or_else(|| {
        Error::Other(anyhow::anyhow!(
            "layers of {r} vanished while pulling (a concurrent prune?)"
        ))
    })
}

/// Registry errors that are the user's (unknown blob, auth) stay Invalid.
fn classify(e: anyhow::Error) -> Error {
    let user = e.chain().any(|c| {
        c.downcast_ref::<RegistryError>()
            .is_some_and(|r| r.is_user_error())
    });
    if user {
        Error::Invalid(crate::one_line(&e))
    } else {
        Error::Other(e)
    }
}

/// Make sure layer `diff_id` is unpacked in the store (download if needed).
async fn ensure_layer(
    store: &Store,
    client: &Client,
    desc: &Descriptor,
    diff_id: &str,
    lp: &LayerProgress,
) -> anyhow::Result<()> {
    if store.has_layer(diff_id) && store.has_blob(&desc.digest) {
        lp.finish("Already exists");
        return Ok(());
    }
    let hex = diff_id.trim_start_matches("sha256:").to_string();
    let lock = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.lock(&format!("layer-{hex}"))).await??
    };
    if store.has_layer(diff_id) && store.has_blob(&desc.digest) {
        lp.finish("Already exists");
        return Ok(());
    }
    let result = if store.has_blob(&desc.digest) {
        lp.status("Extracting");
        from_local_blob(store, desc, diff_id).await
    } else {
        lp.status("Downloading");
        download_and_unpack(store, client, desc, diff_id, lp).await
    };
    drop(lock);
    result.with_context(|| format!("layer {}", desc.digest))?;
    lp.finish("Pull complete");
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct DigestMismatch(String);

/// A work directory under tmp/ that is removed unless committed.
struct Work {
    dir: PathBuf,
    blob: PathBuf,
    committed: bool,
}

impl Work {
    fn new(store: &Store) -> anyhow::Result<Work> {
        let dir = store.tmp_path("layer");
        fs::create_dir_all(dir.join("diff"))
            .with_context(|| format!("create {}", dir.display()))?;
        Ok(Work {
            blob: store.tmp_path("blob"),
            dir,
            committed: false,
        })
    }

    /// Move only the verified blob into place.
    fn commit_blob(self, store: &Store, desc: &Descriptor) -> anyhow::Result<()> {
        let dest = store.blob_path(&desc.digest);
        fs::rename(&self.blob, &dest).with_context(|| format!("store blob {}", desc.digest))?;
        tracing::info!(target: "explain::image", "blob {} -> {}", desc.digest, dest.display());
        Ok(())
    }

    /// Move the verified blob and layer into place (each by one rename).
    fn commit(
        mut self,
        store: &Store,
        desc: &Descriptor,
        diff_id: &str,
        u: &Unpacked,
        with_blob: bool,
    ) -> anyhow::Result<()> {
        if with_blob {
            let dest = store.blob_path(&desc.digest);
            fs::rename(&self.blob, &dest).with_context(|| format!("store blob {}", desc.digest))?;
            tracing::info!(target: "explain::image", "blob {} -> {}", desc.digest, dest.display());
        }
        fs::write(self.dir.join("size"), u.content_size.to_string())?;
        let dest = store.layer_dir(diff_id);
        if dest.exists() {
            // Only reachable if the lock was bypassed; keep the existing one.
            return Ok(());
        }
        fs::rename(&self.dir, &dest).with_context(|| format!("store layer {diff_id}"))?;
        tracing::info!(target: "explain::image", "layer {diff_id} unpacked -> {}", dest.display());
        self.committed = true;
        Ok(())
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.blob);
        if !self.committed && self.dir.exists() {
            let _ = unpack::remove_tree(&self.dir);
        }
    }
}

fn verify_unpacked(u: &Unpacked, diff_id: &str) -> anyhow::Result<()> {
    if u.diff_id != diff_id {
        anyhow::bail!(
            "uncompressed content digest mismatch: the config says {diff_id}, the layer is {}",
            u.diff_id
        );
    }
    Ok(())
}

async fn from_local_blob(store: &Store, desc: &Descriptor, diff_id: &str) -> anyhow::Result<()> {
    let (store, desc, diff_id) = (store.clone(), desc.clone(), diff_id.to_string());
    tokio::task::spawn_blocking(move || {
        let work = Work::new(&store)?;
        let f = fs::File::open(store.blob_path(&desc.digest))?;
        let u = unpack::unpack_layer(f, &work.dir.join("diff"))?;
        verify_unpacked(&u, &diff_id)?;
        work.commit(&store, &desc, &diff_id, &u, false)
    })
    .await?
}

/// Feeds the unpacking thread: chunks from the channel, each written to the
/// blob file and hashed on the way.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    chunk: Bytes,
    blob: io::BufWriter<fs::File>,
    hasher: Sha256,
    count: u64,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(c) => {
                    self.hasher.update(&c);
                    self.blob.write_all(&c)?;
                    self.count += c.len() as u64;
                    self.chunk = c;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

async fn download_and_unpack(
    store: &Store,
    client: &Client,
    desc: &Descriptor,
    diff_id: &str,
    lp: &LayerProgress,
) -> anyhow::Result<()> {
    let work = Work::new(store)?;
    let blob_file =
        fs::File::create(&work.blob).with_context(|| format!("create {}", work.blob.display()))?;
    let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    let dest = work.dir.join("diff");
    let (digest_want, size_want) = (desc.digest.clone(), desc.size);
    // Same diff_id already unpacked (e.g. another compression of it): only store the blob.
    let unpack_too = !store.has_layer(diff_id);
    tracing::info!(target: "explain::image", "download {} and unpack into {}", desc.digest, dest.display());
    let consumer =
        tokio::task::spawn_blocking(move || -> anyhow::Result<(Option<Unpacked>, String, u64)> {
            let mut reader = ChannelReader {
                rx,
                chunk: Bytes::new(),
                blob: io::BufWriter::with_capacity(1 << 20, blob_file),
                hasher: Sha256::new(),
                count: 0,
            };
            let unpacked = unpack_too.then(|| unpack::unpack_layer(&mut reader, &dest));
            // Read to the end even after an unpack error: whatever follows still
            // counts for the digest, and a digest mismatch is the better diagnosis.
            let drained = io::copy(&mut reader, &mut io::sink());
            let digest = format!("sha256:{}", hex::encode(reader.hasher.clone().finalize()));
            if drained.is_ok() && reader.count == size_want && digest != digest_want {
                return Err(DigestMismatch(format!(
                    "blob digest mismatch: expected {digest_want}, got {digest}"
                ))
                .into());
            }
            let u = unpacked.transpose()?;
            drained?;
            reader.blob.flush()?;
            Ok((u, digest, reader.count))
        });
    let produced = produce(client, desc, tx, lp).await;
    let consumed = consumer
        .await
        .map_err(|e| anyhow::anyhow!("unpack task: {e}"))?;
    // A download error explains an unpack error (a cut stream), not the reverse.
    produced?;
    let (u, digest, size) = consumed.map_err(|e| {
        if e.is::<DigestMismatch>() {
            e
        } else if e.chain().any(|c| c.is::<unpack::Refused>()) {
            e.context("malicious layer refused")
        } else {
            e.context("unpack")
        }
    })?;
    if size != desc.size {
        anyhow::bail!(
            "blob size mismatch: the manifest says {} bytes, got {size}",
            desc.size
        );
    }
    if digest != desc.digest {
        anyhow::bail!(
            "blob digest mismatch: expected {}, got {digest}",
            desc.digest
        );
    }
    let store = store.clone();
    let (desc, diff_id) = (desc.clone(), diff_id.to_string());
    match u {
        Some(u) => {
            verify_unpacked(&u, &diff_id)?;
            tokio::task::spawn_blocking(move || work.commit(&store, &desc, &diff_id, &u, true))
                .await??;
        }
        None => {
            tokio::task::spawn_blocking(move || work.commit_blob(&store, &desc)).await??;
        }
    }
    Ok(())
}

/// Download the blob into `tx`, resuming with Range requests after a dropped
/// connection. Returns when all `desc.size` bytes were sent, or on error.
async fn produce(
    client: &Client,
    desc: &Descriptor,
    tx: mpsc::Sender<Bytes>,
    lp: &LayerProgress,
) -> anyhow::Result<()> {
    let what = format!("blob {}", desc.digest);
    let mut sent: u64 = 0;
    let mut failures = 0u32;
    loop {
        let mut resp = client.blob(&desc.digest, sent, &what).await?;
        // 200 to a Range request: the server starts over; skip what we have.
        let mut skip = if sent > 0 && resp.status() != reqwest::StatusCode::PARTIAL_CONTENT {
            sent
        } else {
            0
        };
        let mut progressed = false;
        let outcome: Result<(), String> = loop {
            match resp.chunk().await {
                Ok(Some(mut c)) => {
                    if skip > 0 {
                        let n = skip.min(c.len() as u64) as usize;
                        let _ = c.split_to(n);
                        skip -= n as u64;
                        if c.is_empty() {
                            continue;
                        }
                    }
                    sent += c.len() as u64;
                    if sent > desc.size {
                        anyhow::bail!(
                            "blob is larger than the {} bytes its descriptor says",
                            desc.size
                        );
                    }
                    lp.advance(c.len() as u64);
                    progressed = true;
                    if tx.send(c).await.is_err() {
                        // The unpacking side stopped (its error is reported).
                        return Ok(());
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(client::describe(&e)),
            }
        };
        match outcome {
            Ok(()) if sent == desc.size => return Ok(()),
            Ok(()) => {
                // A clean end before the declared size: the blob is truncated.
                anyhow::bail!("truncated blob: got {sent} of {} bytes", desc.size);
            }
            Err(e) => {
                if progressed {
                    failures = 0;
                }
                failures += 1;
                if failures >= ATTEMPTS {
                    anyhow::bail!("download failed after {ATTEMPTS} attempts at byte {sent}: {e}");
                }
                tracing::debug!("{what}: connection dropped at byte {sent} ({e}), resuming");
                lp.status("Retrying");
                tokio::time::sleep(client::backoff(failures)).await;
            }
        }
    }
}

/// Read a file fully into the store as a blob (streamed, hashed), returning its digest.
pub fn store_blob_from_reader(
    store: &Store,
    mut input: impl Read,
) -> anyhow::Result<(String, u64)> {
    let tmp = store.tmp_path("blob");
    let mut out = io::BufWriter::new(fs::File::create(&tmp)?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let res = (|| -> anyhow::Result<()> {
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            total += n as u64;
        }
        out.flush()?;
        Ok(())
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    let dest = store.blob_path(&digest);
    if dest.exists() {
        let _ = fs::remove_file(&tmp);
    } else {
        fs::rename(&tmp, &dest)?;
    }
    Ok((digest, total))
}

/// Unpack a stored blob as layer `diff_id`, unless present (used by import).
pub fn unpack_stored_blob(store: &Store, blob_digest: &str) -> anyhow::Result<Unpacked> {
    let work = Work::new(store)?;
    let f = fs::File::open(store.blob_path(blob_digest))?;
    let u = unpack::unpack_layer(f, &work.dir.join("diff"))?;
    let _lock = store.lock(&format!(
        "layer-{}",
        u.diff_id.trim_start_matches("sha256:")
    ))?;
    if !store.has_layer(&u.diff_id) {
        let desc = Descriptor {
            media_type: String::new(),
            digest: blob_digest.to_string(),
            size: 0,
            platform: None,
            annotations: None,
            urls: None,
        };
        let diff_id = u.diff_id.clone();
        work.commit(store, &desc, &diff_id, &u, false)?;
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(base: &str, mirror: bool) -> registry::Endpoint {
        registry::Endpoint {
            base: base.to_string(),
            host: base
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .to_string(),
            mirror,
        }
    }

    #[test]
    fn the_registry_answer_beats_an_unreachable_upstream() {
        let r = Reference::parse("nosuch").unwrap();
        let e = resolution_error(
            &r,
            vec![
                (
                    ep("http://127.0.0.1:5000", true),
                    RegistryError::NotFound("repository x not found".into()),
                ),
                (
                    ep("https://registry-1.docker.io", false),
                    RegistryError::Unreachable("cannot reach".into()),
                ),
            ],
        );
        assert!(e.is_user_error());
        let msg = e.to_string();
        assert!(
            msg.starts_with("pull docker.io/library/nosuch:latest: repository x not found"),
            "{msg}"
        );
        assert!(
            msg.contains("(also tried https://registry-1.docker.io: cannot reach)"),
            "{msg}"
        );
        let e = resolution_error(
            &r,
            vec![(
                ep("http://127.0.0.1:1", true),
                RegistryError::Unreachable("cannot reach 127.0.0.1:1".into()),
            )],
        );
        assert!(!e.is_user_error());
        assert_eq!(
            e.to_string(),
            "pull docker.io/library/nosuch:latest: cannot reach 127.0.0.1:1"
        );
    }
}
