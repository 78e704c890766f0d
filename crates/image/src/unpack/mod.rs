//! Layer unpacking: decompress (gzip, zstd or plain, by magic bytes), hash
//! the tar stream (diff_id), and apply each entry with our own safe code.
//!
//! The tar crate only reads headers and data. Whiteouts become overlayfs
//! whiteouts (char 0/0; `trusted.overlay.opaque=y` on opaque directories),
//! so each layer directory can be an overlay lowerdir as is.

pub mod safepath;
pub mod tree;
pub mod whiteout;

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::sys::stat::SFlag;
use nix::sys::time::TimeSpec;
use sha2::{Digest as _, Sha256};

pub use tree::Refused;
use tree::Tree;
use whiteout::Kind;

/// What unpacking a layer produced.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: String,
    /// Bytes of the uncompressed tar stream.
    pub tar_size: u64,
    /// Bytes of regular file content written.
    pub content_size: u64,
    pub entries: u64,
}

/// Remove a directory tree we own, without following symlinks.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    std::fs::remove_dir_all(path)
}

/// A reader that hashes and counts what passes through.
pub struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashReader<R> {
    pub fn new(inner: R) -> Self {
        HashReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Read to the end, then return ("sha256:…", bytes read in total).
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.read(&mut buf)?;
            if n == 0 {
                break;
            }
        }
        Ok((
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        ))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Tell the compression from the first bytes.
pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// A reader of the uncompressed stream, whatever the compression.
pub fn decompress<'a, R: Read + 'a>(input: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(256 * 1024, input);
    let head = buffered.fill_buf()?;
    Ok(match sniff(head) {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
        Compression::None => Box::new(buffered),
    })
}

/// Decompressed bytes handed from the inflating thread to the unpacking one.
const CHUNK: usize = 256 * 1024;

/// Unpack a (possibly compressed) layer stream into `dest`, an existing
/// empty directory. Reads `input` to its end.
///
/// Two threads: one inflates and hashes (diff_id), the other applies tar
/// entries; creating files is the slow part, so inflating runs beside it.
pub fn unpack_layer<R: Read + Send>(input: R, dest: &Path) -> anyhow::Result<Unpacked> {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
        let inflater = scope.spawn(move || -> anyhow::Result<Option<(String, u64)>> {
            let plain = decompress(input).context("read the layer")?;
            let mut hashing = HashReader::new(plain);
            loop {
                let mut buf = vec![0u8; CHUNK];
                let mut filled = 0;
                while filled < CHUNK {
                    let n = hashing
                        .read(&mut buf[filled..])
                        .context("decompress the layer")?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    break;
                }
                buf.truncate(filled);
                if tx.send(buf).is_err() {
                    return Ok(None); // the unpacking side stopped; its error wins
                }
            }
            Ok(Some(hashing.finish()?))
        });
        let applied = apply_tar(
            ChunkReader {
                rx,
                chunk: Vec::new(),
                pos: 0,
            },
            dest,
        );
        let inflated = inflater
            .join()
            .map_err(|_| anyhow::anyhow!("the decompression thread panicked"))?;
        // A decompression error explains a tar error (a cut stream), not the reverse.
        let hashed = inflated?;
        let (entries, content_size) = applied?;
        let (diff_id, tar_size) =
            hashed.ok_or_else(|| anyhow::anyhow!("decompression stopped early"))?;
        Ok(Unpacked {
            diff_id,
            tar_size,
            content_size,
            entries,
        })
    })
}

/// Reads the chunks the inflating thread sends.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Unpack an uncompressed tar stream into `dest` (one thread).
pub fn unpack_tar<R: Read>(tar_stream: R, dest: &Path) -> anyhow::Result<Unpacked> {
    let mut hashing = HashReader::new(tar_stream);
    let (entries, content_size) = apply_tar(&mut hashing, dest)?;
    let (diff_id, tar_size) = hashing.finish().context("read the layer tar")?;
    Ok(Unpacked {
        diff_id,
        tar_size,
        content_size,
        entries,
    })
}

/// Apply every entry, then read the stream to its end (the diff_id covers
/// the tar's end padding too). Returns (entries, bytes of file content).
fn apply_tar<R: Read>(tar_stream: R, dest: &Path) -> anyhow::Result<(u64, u64)> {
    let mut tree = Tree::open(dest)?;
    let mut archive = tar::Archive::new(tar_stream);
    let mut state = Apply {
        is_root: nix::unistd::geteuid().is_root(),
        dirs: BTreeMap::new(),
        buf: vec![0u8; 256 * 1024],
        content_size: 0,
        entries: 0,
    };
    for entry in archive.entries().context("read the layer tar")? {
        let mut entry = entry.context("read the layer tar")?;
        let name = entry.path().context("read an entry name")?.into_owned();
        state
            .apply(&mut tree, &mut entry)
            .with_context(|| format!("entry \"{}\"", name.display()))?;
        state.entries += 1;
    }
    state.finish_dirs(&mut tree)?;
    io::copy(&mut archive.into_inner(), &mut io::sink()).context("read the layer tar")?;
    Ok((state.entries, state.content_size))
}

struct DirMeta {
    mode: u32,
    mtime: TimeSpec,
}

struct Apply {
    is_root: bool,
    /// Directory modes and times are set last: writing children changes them.
    dirs: BTreeMap<PathBuf, DirMeta>,
    buf: Vec<u8>,
    content_size: u64,
    entries: u64,
}

/// Ownership, times and xattrs of an entry, PAX records included.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: TimeSpec,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn read_meta<R: Read>(entry: &mut tar::Entry<R>) -> anyhow::Result<Meta> {
    let h = entry.header();
    let mut uid = h.uid().unwrap_or(0);
    let mut gid = h.gid().unwrap_or(0);
    let mode = h.mode().unwrap_or(0o644) & 0o7777;
    let mut mtime = TimeSpec::new(h.mtime().unwrap_or(0) as i64, 0);
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().context("read PAX records")? {
        for ext in exts {
            let ext = ext.context("read a PAX record")?;
            let Ok(key) = ext.key() else { continue };
            let value = ext.value_bytes();
            match key {
                "uid" => uid = parse_num(value).unwrap_or(uid),
                "gid" => gid = parse_num(value).unwrap_or(gid),
                "mtime" => {
                    if let Some(t) = parse_time(value) {
                        mtime = t;
                    }
                }
                k => {
                    if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                        xattrs.push((name.to_string(), value.to_vec()));
                    }
                }
            }
        }
    }
    let uid = u32::try_from(uid).map_err(|_| anyhow::anyhow!("uid {uid} is out of range"))?;
    let gid = u32::try_from(gid).map_err(|_| anyhow::anyhow!("gid {gid} is out of range"))?;
    Ok(Meta {
        uid,
        gid,
        mode,
        mtime,
        xattrs,
    })
}

fn parse_num(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// PAX times: "1700000000.123456789".
fn parse_time(v: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos = 0i64;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        nanos = format!("{digits:0<9}").parse().ok()?;
    }
    Some(TimeSpec::new(secs, nanos))
}

impl Apply {
    fn apply<R: Read>(&mut self, tree: &mut Tree, entry: &mut tar::Entry<R>) -> anyhow::Result<()> {
        let raw = entry.path()?.into_owned();
        let rel = safepath::normalise(&raw).map_err(|why| Refused(format!("refused: {why}")))?;
        let kind = entry.header().entry_type();
        if rel.as_os_str().is_empty() {
            // "./": the layer root itself.
            if kind.is_dir() {
                let meta = read_meta(entry)?;
                self.own(tree, &rel, &meta)?;
                self.dirs.insert(
                    rel,
                    DirMeta {
                        mode: meta.mode,
                        mtime: meta.mtime,
                    },
                );
            }
            return Ok(());
        }
        let base = rel.file_name().unwrap_or_default();
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        match whiteout::classify(base).map_err(Refused)? {
            Kind::Meta => return Ok(()),
            Kind::Opaque => {
                tree.dir(&parent)?;
                return tree.set_xattr(&parent, whiteout::OPAQUE_XATTR, b"y");
            }
            Kind::Whiteout(hidden) => {
                let target = parent.join(hidden);
                // A whiteout only hides lower layers: an entry of this layer stays.
                if tree.existing(&target)? == tree::Existing::None {
                    tree.mknod(&target, SFlag::S_IFCHR, 0, 0)?;
                }
                return Ok(());
            }
            Kind::Plain => {}
        }
        let meta = read_meta(entry)?;
        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous | T::GNUSparse => {
                let mut file = tree.create_file(&rel)?;
                let mut written = 0u64;
                loop {
                    let n = entry.read(&mut self.buf)?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&self.buf[..n])?;
                    written += n as u64;
                }
                let declared = entry.size();
                if written != declared {
                    anyhow::bail!("truncated layer: the entry declares {declared} bytes but the stream ended after {written}");
                }
                self.content_size += written;
                if self.is_root {
                    nix::unistd::fchown(&file, Some(meta.uid.into()), Some(meta.gid.into()))
                        .with_context(|| format!("chown to {}:{}", meta.uid, meta.gid))?;
                }
                // After chown, which clears setuid bits.
                nix::sys::stat::fchmod(&file, nix::sys::stat::Mode::from_bits_truncate(meta.mode))?;
                self.xattrs(tree, &rel, &meta);
                nix::sys::stat::futimens(&file, &meta.mtime, &meta.mtime)?;
            }
            T::Directory => {
                tree.mkdir(&rel)?;
                self.own(tree, &rel, &meta)?;
                self.xattrs(tree, &rel, &meta);
                self.dirs.insert(
                    rel,
                    DirMeta {
                        mode: meta.mode,
                        mtime: meta.mtime,
                    },
                );
            }
            T::Symlink => {
                let target = entry
                    .link_name()?
                    .ok_or_else(|| anyhow::anyhow!("symlink without a target"))?
                    .into_owned();
                tree.symlink(&rel, &target)?;
                self.own(tree, &rel, &meta)?;
                tree.set_mtime(&rel, meta.mtime)?;
            }
            T::Link => {
                let target = entry
                    .link_name()?
                    .ok_or_else(|| anyhow::anyhow!("hard link without a target"))?
                    .into_owned();
                let target_rel = safepath::normalise(&target).map_err(|why| {
                    Refused(format!(
                        "refused: hard link to \"{}\": {why}",
                        target.display()
                    ))
                })?;
                if target_rel.as_os_str().is_empty() {
                    return Err(Refused("refused: hard link to the layer root".into()).into());
                }
                tree.hardlink(&rel, &target_rel)?;
            }
            T::Char | T::Block | T::Fifo => {
                let sflag = match kind {
                    T::Char => SFlag::S_IFCHR,
                    T::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let major = entry.header().device_major()?.unwrap_or(0);
                let minor = entry.header().device_minor()?.unwrap_or(0);
                let dev = nix::sys::stat::makedev(major.into(), minor.into());
                tree.mknod(&rel, sflag, meta.mode, dev)?;
                self.own(tree, &rel, &meta)?;
                tree.chmod(&rel, meta.mode)?;
                self.xattrs(tree, &rel, &meta);
                tree.set_mtime(&rel, meta.mtime)?;
            }
            other => {
                tracing::debug!("skipping tar entry {} of type {other:?}", rel.display());
            }
        }
        Ok(())
    }

    fn own(&self, tree: &mut Tree, rel: &Path, meta: &Meta) -> anyhow::Result<()> {
        if self.is_root {
            tree.chown(rel, meta.uid, meta.gid)?;
        }
        Ok(())
    }

    /// Apply the entry's xattrs, except overlayfs' own: a layer must not
    /// forge opaque/redirect markers that only our whiteout handling sets.
    fn xattrs(&self, tree: &mut Tree, rel: &Path, meta: &Meta) {
        for (name, value) in &meta.xattrs {
            if name.starts_with("trusted.overlay.") {
                tracing::warn!(
                    "ignoring xattr {name} on {} (reserved for overlayfs)",
                    rel.display()
                );
                continue;
            }
            if let Err(e) = tree.set_xattr(rel, name, value) {
                tracing::warn!("{e}");
            }
        }
    }

    fn finish_dirs(&mut self, tree: &mut Tree) -> anyhow::Result<()> {
        // Children first (reverse path order), so setting a parent's time is the last touch.
        for (rel, meta) in self.dirs.iter().rev() {
            if !rel.as_os_str().is_empty() && tree.existing(rel)? != tree::Existing::Dir {
                continue; // replaced by a later entry
            }
            tree.chmod(rel, meta.mode)?;
            tree.set_mtime(rel, meta.mtime)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
