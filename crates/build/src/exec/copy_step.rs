//! COPY/ADD: write the planned items ([`crate::context::plan_copy`]) into an
//! empty layer directory with fd-relative, symlink-safe operations (the
//! image crate's `Tree`). Parent directories the layer must contain take
//! their owner, mode and mtime from the layers below when those have them
//! (as an overlay copy-up would), else `0755 root`. `ADD` of a local tar
//! archive (plain, gzip, zstd) unpacks it at the destination instead.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use mc_image::unpack::tree::Tree;
use nix::sys::time::TimeSpec;

use super::layer::LayerStack;
use crate::context::{ArchiveKind, CopyItem, EntryKind};
use crate::dockerfile::InlineSource;
use crate::Error;

/// One heredoc source with its absolute destination.
pub struct InlineItem<'a> {
    /// The heredoc.
    pub source: &'a InlineSource,
    /// Absolute path in the image.
    pub dest: String,
}

/// A local archive `ADD` unpacks into `dest_dir` (absolute).
pub struct ArchiveItem {
    /// The archive on the host.
    pub host_path: PathBuf,
    /// Its compression.
    pub kind: ArchiveKind,
    /// Absolute directory in the image.
    pub dest_dir: String,
}

/// Everything one COPY/ADD writes.
pub struct CopyWork<'a> {
    /// Files, directories and symlinks (from the context or a `--from` rootfs).
    pub items: &'a [CopyItem],
    /// Heredoc sources.
    pub inline: Vec<InlineItem<'a>>,
    /// ADD archives.
    pub archives: Vec<ArchiveItem>,
    /// Owner of heredoc files and created parents (`--chown`), root if None.
    pub owner: Option<(u32, u32)>,
    /// `--chmod` for heredoc files.
    pub chmod: Option<u32>,
}

fn rel_of(abs: &str) -> PathBuf {
    PathBuf::from(abs.trim_start_matches('/'))
}

fn mtime(m: &fs::Metadata) -> TimeSpec {
    TimeSpec::new(m.mtime(), m.mtime_nsec())
}

/// Write `work` into the empty directory `staging`; `lower` is the stage's
/// filesystem so far.
pub fn write(staging: &Path, lower: &LayerStack<'_>, work: &CopyWork<'_>) -> Result<(), Error> {
    write_inner(staging, lower, work).map_err(|e| {
        if e.chain().any(|c| c.is::<mc_image::unpack::Refused>()) {
            Error::Invalid(mc_image::one_line(&e))
        } else {
            Error::Other(e)
        }
    })
}

struct Writer<'a> {
    tree: Tree,
    lower: &'a LayerStack<'a>,
    /// Directory metadata applied last (children change a dir's mtime).
    dirs: BTreeMap<PathBuf, (u32, u32, u32, TimeSpec)>,
    owner: (u32, u32),
}

impl Writer<'_> {
    /// Make sure every ancestor of `rel` exists in the layer, with the lower
    /// layers' metadata where they have the directory.
    fn parents(&mut self, rel: &Path) -> anyhow::Result<()> {
        let mut acc = PathBuf::new();
        let comps: Vec<_> = rel.components().collect();
        for c in comps.iter().take(comps.len().saturating_sub(1)) {
            acc.push(c);
            if self.dirs.contains_key(&acc) {
                continue;
            }
            self.tree.mkdir(&acc)?;
            let meta = match self.lower.find(&acc.to_string_lossy()) {
                Some(f) if f.meta.is_dir() => (
                    f.meta.uid(),
                    f.meta.gid(),
                    f.meta.mode() & 0o7777,
                    mtime(&f.meta),
                ),
                _ => (self.owner.0, self.owner.1, 0o755, now()),
            };
            self.dirs.insert(acc.clone(), meta);
        }
        Ok(())
    }

    fn item(&mut self, it: &CopyItem) -> anyhow::Result<()> {
        let rel = rel_of(&it.dest);
        let src = fs::symlink_metadata(&it.entry.host_path)
            .with_context(|| format!("read {}", it.entry.host_path.display()))?;
        if rel.as_os_str().is_empty() {
            // COPY dir/ / : the root directory itself keeps the image's metadata.
            return Ok(());
        }
        self.parents(&rel)?;
        match &it.entry.kind {
            EntryKind::Dir => {
                self.tree.mkdir(&rel)?;
                self.dirs
                    .insert(rel, (it.uid, it.gid, it.mode & 0o7777, mtime(&src)));
            }
            EntryKind::Symlink(target) => {
                self.dirs.remove(&rel);
                self.tree.symlink(&rel, Path::new(target))?;
                self.tree.chown(&rel, it.uid, it.gid)?;
                self.tree.set_mtime(&rel, mtime(&src))?;
            }
            EntryKind::File => {
                self.dirs.remove(&rel);
                let mut out = self.tree.create_file(&rel)?;
                let mut input = fs::File::open(&it.entry.host_path)
                    .with_context(|| format!("open {}", it.entry.host_path.display()))?;
                std::io::copy(&mut input, &mut out)
                    .with_context(|| format!("copy {}", it.entry.host_path.display()))?;
                nix::unistd::fchown(&out, Some(it.uid.into()), Some(it.gid.into()))?;
                nix::sys::stat::fchmod(
                    &out,
                    nix::sys::stat::Mode::from_bits_truncate(it.mode & 0o7777),
                )?;
                let t = mtime(&src);
                nix::sys::stat::futimens(&out, &t, &t)?;
            }
        }
        Ok(())
    }

    fn inline(&mut self, it: &InlineItem<'_>, chmod: Option<u32>) -> anyhow::Result<()> {
        use std::io::Write;
        let rel = rel_of(&it.dest);
        self.parents(&rel)?;
        let mut out = self.tree.create_file(&rel)?;
        out.write_all(it.source.content.as_bytes())?;
        nix::unistd::fchown(&out, Some(self.owner.0.into()), Some(self.owner.1.into()))?;
        nix::sys::stat::fchmod(
            &out,
            nix::sys::stat::Mode::from_bits_truncate(chmod.unwrap_or(0o644)),
        )?;
        Ok(())
    }

    fn archive(&mut self, staging: &Path, a: &ArchiveItem) -> anyhow::Result<()> {
        let rel = rel_of(&a.dest_dir);
        if !rel.as_os_str().is_empty() {
            self.parents(&rel.join("x"))?;
        }
        let f = fs::File::open(&a.host_path)
            .with_context(|| format!("open {}", a.host_path.display()))?;
        let stream: Box<dyn std::io::Read> = match a.kind {
            ArchiveKind::Tar | ArchiveKind::Gzip | ArchiveKind::Zstd => {
                mc_image::unpack::decompress(f)?
            }
            ArchiveKind::Bzip2 | ArchiveKind::Xz => anyhow::bail!(
                "ADD {}: bzip2 and xz archives are not supported: unpack it with RUN, or recompress it with gzip",
                a.host_path.display()
            ),
        };
        mc_image::unpack::unpack_tar(stream, &staging.join(&rel))
            .with_context(|| format!("ADD: unpack {}", a.host_path.display()))?;
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        for (rel, (uid, gid, mode, t)) in std::mem::take(&mut self.dirs).iter().rev() {
            self.tree.chown(rel, *uid, *gid)?;
            self.tree.chmod(rel, *mode)?;
            self.tree.set_mtime(rel, *t)?;
        }
        Ok(())
    }
}

fn now() -> TimeSpec {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    TimeSpec::new(d.as_secs() as i64, 0)
}

fn write_inner(staging: &Path, lower: &LayerStack<'_>, work: &CopyWork<'_>) -> anyhow::Result<()> {
    let mut w = Writer {
        tree: Tree::open(staging)?,
        lower,
        dirs: BTreeMap::new(),
        owner: work.owner.unwrap_or((0, 0)),
    };
    for it in work.items {
        w.item(it)?;
    }
    for it in &work.inline {
        w.inline(it, work.chmod)?;
    }
    // Directory metadata before archives: an archive's own entries win.
    w.finish()?;
    for a in &work.archives {
        w.archive(staging, a)?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ContextEntry;

    fn entry(host: &Path, rel: &str, kind: EntryKind, mode: u32) -> ContextEntry {
        ContextEntry {
            rel: rel.into(),
            host_path: host.join(rel),
            kind,
            mode,
            size: 0,
        }
    }

    #[test]
    fn writes_items_with_owner_mode_and_lower_parent_metadata() {
        let d = tempfile::tempdir().unwrap();
        let (ctx, lower, staging) = (
            d.path().join("ctx"),
            d.path().join("lo"),
            d.path().join("st"),
        );
        fs::create_dir_all(ctx.join("sub")).unwrap();
        fs::write(ctx.join("sub/app.py"), "print(1)\n").unwrap();
        fs::create_dir_all(lower.join("usr/local")).unwrap();
        fs::set_permissions(
            lower.join("usr/local"),
            std::os::unix::fs::PermissionsExt::from_mode(0o750),
        )
        .unwrap();
        fs::create_dir_all(&staging).unwrap();
        let items = vec![
            CopyItem {
                dest: "/usr/local/code".into(),
                entry: entry(&ctx, "sub", EntryKind::Dir, 0o755),
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
            CopyItem {
                dest: "/usr/local/code/app.py".into(),
                entry: entry(&ctx, "sub/app.py", EntryKind::File, 0o644),
                mode: 0o600,
                uid: 12,
                gid: 34,
            },
        ];
        let heredoc = InlineSource {
            name: "EOF".into(),
            content: "hello\n".into(),
            expand: false,
        };
        let layers = vec![lower.clone()];
        let stack = LayerStack::new(&layers);
        write(
            &staging,
            &stack,
            &CopyWork {
                items: &items,
                inline: vec![InlineItem {
                    source: &heredoc,
                    dest: "/etc/greeting".into(),
                }],
                archives: Vec::new(),
                owner: None,
                chmod: None,
            },
        )
        .unwrap();
        let f = fs::metadata(staging.join("usr/local/code/app.py")).unwrap();
        assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (12, 34, 0o600));
        assert_eq!(
            fs::metadata(staging.join("usr/local")).unwrap().mode() & 0o7777,
            0o750,
            "parents copy the lower layer's mode"
        );
        assert_eq!(
            fs::read_to_string(staging.join("etc/greeting")).unwrap(),
            "hello\n"
        );
    }
}
