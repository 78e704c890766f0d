//! `image export`: an image's layers flattened into a plain directory, with
//! whiteouts and opaque directories applied as overlayfs would show them.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::sys::stat::SFlag;
use nix::sys::time::TimeSpec;

use crate::unpack::tree::{Existing, Tree};
use crate::unpack::whiteout::OPAQUE_XATTR;
use crate::{Error, LocalImage};

#[derive(Debug, Default)]
pub struct ExportStats {
    pub entries: u64,
    pub bytes: u64,
}

/// Flatten `image` into `dest` (created if missing; must be empty).
pub fn export(image: &LocalImage, dest: &Path) -> Result<ExportStats, Error> {
    match fs::read_dir(dest) {
        Ok(mut it) => {
            if it.next().is_some() {
                return Err(Error::Invalid(format!(
                    "{} is not empty: export into a new or empty directory",
                    dest.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dest).with_context(|| format!("create {}", dest.display()))?;
        }
        Err(e) => {
            return Err(Error::Invalid(format!("{}: {e}", dest.display())));
        }
    }
    let mut ex = Exporter {
        tree: Tree::open(dest)?,
        dirs: BTreeMap::new(),
        stats: ExportStats::default(),
    };
    for layer in &image.layers {
        tracing::info!(target: "explain::image", "export: apply layer {}", layer.display());
        ex.layer(layer)
            .with_context(|| format!("export layer {} into {}", layer.display(), dest.display()))?;
    }
    ex.finish()?;
    Ok(ex.stats)
}

struct Exporter {
    tree: Tree,
    /// Directory mode and mtime, set last; an upper layer's entry wins.
    dirs: BTreeMap<PathBuf, (u32, TimeSpec)>,
    stats: ExportStats,
}

fn mtime_of(m: &fs::Metadata) -> TimeSpec {
    TimeSpec::new(m.mtime(), m.mtime_nsec())
}

impl Exporter {
    fn layer(&mut self, layer: &Path) -> anyhow::Result<()> {
        let root_meta = fs::symlink_metadata(layer)?;
        self.tree
            .chown(Path::new(""), root_meta.uid(), root_meta.gid())?;
        self.dirs.insert(
            PathBuf::new(),
            (root_meta.mode() & 0o7777, mtime_of(&root_meta)),
        );
        // Hard links inside this layer: (dev, ino) → first exported path.
        let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
        self.dir(layer, Path::new(""), &mut links)
    }

    fn dir(
        &mut self,
        layer: &Path,
        rel: &Path,
        links: &mut HashMap<(u64, u64), PathBuf>,
    ) -> anyhow::Result<()> {
        let src = layer.join(rel);
        if !rel.as_os_str().is_empty() && get_xattr(&src, OPAQUE_XATTR).as_deref() == Some(b"y") {
            // Opaque: nothing from the layers below shows through.
            for e in fs::read_dir(self.tree.root_path().join(rel))? {
                let e = e?;
                self.tree.remove(&rel.join(e.file_name()))?;
            }
        }
        let mut entries: Vec<_> = fs::read_dir(&src)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let child = rel.join(e.file_name());
            let path = e.path();
            let m = fs::symlink_metadata(&path)?;
            let ft = m.file_type();
            self.stats.entries += 1;
            if ft.is_char_device() && m.rdev() == 0 {
                self.tree.remove(&child)?;
                continue;
            }
            if ft.is_dir() {
                self.tree.mkdir(&child)?;
                self.tree.chown(&child, m.uid(), m.gid())?;
                self.copy_xattrs(&path, &child);
                self.dirs
                    .insert(child.clone(), (m.mode() & 0o7777, mtime_of(&m)));
                self.dir(layer, &child, links)?;
                continue;
            }
            // A later layer's non-directory replaces a directory below.
            self.dirs.remove(&child);
            if ft.is_file() {
                if m.nlink() > 1 {
                    if let Some(first) = links.get(&(m.dev(), m.ino())) {
                        if self.tree.existing(first)? == Existing::Other {
                            self.tree.hardlink(&child, first)?;
                            continue;
                        }
                    }
                    links.insert((m.dev(), m.ino()), child.clone());
                }
                let mut out = self.tree.create_file(&child)?;
                let mut input = fs::File::open(&path)?;
                self.stats.bytes += std::io::copy(&mut input, &mut out)?;
                nix::unistd::fchown(&out, Some(m.uid().into()), Some(m.gid().into()))?;
                nix::sys::stat::fchmod(
                    &out,
                    nix::sys::stat::Mode::from_bits_truncate(m.mode() & 0o7777),
                )?;
                self.copy_xattrs(&path, &child);
                let t = mtime_of(&m);
                nix::sys::stat::futimens(&out, &t, &t)?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&path)?;
                self.tree.symlink(&child, &target)?;
                self.tree.chown(&child, m.uid(), m.gid())?;
                self.tree.set_mtime(&child, mtime_of(&m))?;
            } else {
                let kind = if ft.is_char_device() {
                    SFlag::S_IFCHR
                } else if ft.is_block_device() {
                    SFlag::S_IFBLK
                } else if ft.is_fifo() {
                    SFlag::S_IFIFO
                } else {
                    continue; // sockets are not image content
                };
                self.tree.mknod(&child, kind, m.mode() & 0o7777, m.rdev())?;
                self.tree.chown(&child, m.uid(), m.gid())?;
                self.tree.chmod(&child, m.mode() & 0o7777)?;
                self.tree.set_mtime(&child, mtime_of(&m))?;
            }
        }
        Ok(())
    }

    fn copy_xattrs(&mut self, src: &Path, rel: &Path) {
        for (name, value) in list_xattrs(src) {
            if name.starts_with("trusted.overlay.") {
                continue;
            }
            if let Err(e) = self.tree.set_xattr(rel, &name, &value) {
                tracing::warn!("{e}");
            }
        }
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        let dirs = std::mem::take(&mut self.dirs);
        for (rel, (mode, mtime)) in dirs.iter().rev() {
            if !rel.as_os_str().is_empty() && self.tree.existing(rel)? != Existing::Dir {
                continue;
            }
            self.tree.chmod(rel, *mode)?;
            self.tree.set_mtime(rel, *mtime)?;
        }
        Ok(())
    }
}

fn cpath(p: &Path) -> Option<CString> {
    CString::new(p.as_os_str().as_bytes()).ok()
}

/// One xattr of `path` itself (not following a symlink).
pub fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = cpath(path)?;
    let n = CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return None;
    }
    buf.truncate(len as usize);
    Some(buf)
}

/// All xattrs of `path` itself.
pub fn list_xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let Some(p) = cpath(path) else {
        return Vec::new();
    };
    let mut names = vec![0u8; 4096];
    let len = unsafe { libc::llistxattr(p.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if len <= 0 {
        return Vec::new();
    }
    names.truncate(len as usize);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        let mut buf = vec![0u8; 64 * 1024];
        let n = unsafe {
            libc::lgetxattr(
                p.as_ptr(),
                cname.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n >= 0 {
            buf.truncate(n as usize);
            out.push((name.to_string(), buf));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn image(layers: Vec<PathBuf>) -> LocalImage {
        LocalImage {
            id: String::new(),
            reference: String::new(),
            manifest_digest: String::new(),
            config: Default::default(),
            layers,
        }
    }

    #[test]
    fn flattens_with_whiteouts() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: whiteouts (char 0/0) need root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let (l1, l2, out) = (
            tmp.path().join("l1"),
            tmp.path().join("l2"),
            tmp.path().join("out"),
        );
        fs::create_dir_all(l1.join("d/sub")).unwrap();
        fs::write(l1.join("d/sub/a"), "a").unwrap();
        fs::write(l1.join("gone"), "g").unwrap();
        fs::write(l1.join("keep"), "k").unwrap();
        fs::hard_link(l1.join("keep"), l1.join("keep2")).unwrap();
        fs::create_dir_all(l1.join("opq/old")).unwrap();
        fs::create_dir_all(l1.join("x")).unwrap();
        fs::create_dir_all(l2.join("opq")).unwrap();
        fs::write(l2.join("opq/new"), "n").unwrap();
        let p = cpath(&l2.join("opq")).unwrap();
        let rc = unsafe {
            libc::lsetxattr(
                p.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        };
        assert_eq!(rc, 0);
        nix::sys::stat::mknod(
            &l2.join("gone"),
            SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        fs::write(l2.join("x"), "file over dir").unwrap();
        fs::set_permissions(l2.join("x"), fs::Permissions::from_mode(0o600)).unwrap();
        export(&image(vec![l1, l2]), &out).unwrap();
        let mut names: Vec<String> = walk(&out);
        names.sort();
        assert_eq!(
            names,
            ["d", "d/sub", "d/sub/a", "keep", "keep2", "opq", "opq/new", "x"]
        );
        assert_eq!(fs::read_to_string(out.join("x")).unwrap(), "file over dir");
        assert_eq!(
            fs::metadata(out.join("x")).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(out.join("keep")).unwrap().ino(),
            fs::metadata(out.join("keep2")).unwrap().ino()
        );
        assert_eq!(get_xattr(&out.join("opq"), OPAQUE_XATTR), None);
        let again = export(&image(vec![]), &out).unwrap_err();
        assert!(again.to_string().contains("not empty"));
    }

    fn walk(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                out.push(
                    e.path()
                        .strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                }
            }
        }
        out
    }
}
