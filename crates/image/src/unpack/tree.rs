//! Writing into a directory tree without ever leaving it.
//!
//! Every operation resolves its parent directory component by component with
//! `openat(O_PATH | O_DIRECTORY | O_NOFOLLOW)` from the tree's root fd, so a
//! symlink planted by an earlier entry can never redirect a write outside.
//! A parent that is a symlink is refused, not followed.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmodat, fstatat, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

/// An entry that would land outside the tree: the layer is refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// How many verified directory fds to keep open.
const CACHE_MAX: usize = 256;

pub struct Tree {
    root_path: PathBuf,
    root: Rc<OwnedFd>,
    /// Verified real directories (relative path → O_PATH fd).
    cache: HashMap<PathBuf, Rc<OwnedFd>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    None,
    Dir,
    Other,
}

impl Tree {
    pub fn open(path: &Path) -> anyhow::Result<Tree> {
        let root = openat(
            nix::fcntl::AT_FDCWD,
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| anyhow::anyhow!("open {}: {e}", path.display()))?;
        Ok(Tree {
            root_path: path.to_path_buf(),
            root: Rc::new(root),
            cache: HashMap::new(),
        })
    }

    pub fn root_path(&self) -> &Path {
        &self.root_path
    }

    /// The fd of directory `rel`, creating missing components (0755).
    pub fn dir(&mut self, rel: &Path) -> anyhow::Result<Rc<OwnedFd>> {
        match self.resolve(rel, true)? {
            Some(fd) => Ok(fd),
            None => anyhow::bail!("directory {} is missing", rel.display()),
        }
    }

    /// The fd of directory `rel`; None if a component is missing and `create` is false.
    fn resolve(&mut self, rel: &Path, create: bool) -> anyhow::Result<Option<Rc<OwnedFd>>> {
        if rel.as_os_str().is_empty() {
            return Ok(Some(self.root.clone()));
        }
        if let Some(fd) = self.cache.get(rel) {
            return Ok(Some(fd.clone()));
        }
        let Some(parent) = self.resolve(rel.parent().unwrap_or(Path::new("")), create)? else {
            return Ok(None);
        };
        let name = rel.file_name().unwrap_or(OsStr::new("."));
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(parent.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if !create => return Ok(None),
            Err(Errno::ENOENT) => {
                match mkdirat(parent.as_fd(), name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => anyhow::bail!("create directory {}: {e}", rel.display()),
                }
                openat(parent.as_fd(), name, flags, Mode::empty())
                    .map_err(|e| anyhow::anyhow!("open directory {}: {e}", rel.display()))?
            }
            Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => {
                let is_link = fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
                    .unwrap_or(false);
                if is_link {
                    let target = nix::fcntl::readlinkat(parent.as_fd(), name).unwrap_or_default();
                    return Err(Refused(format!(
                        "path goes through the symlink \"{}\" (-> {}), which could lead outside the layer",
                        rel.display(),
                        Path::new(&target).display()
                    ))
                    .into());
                }
                anyhow::bail!("\"{}\" is not a directory", rel.display());
            }
            Err(e) => anyhow::bail!("open directory {}: {e}", rel.display()),
        };
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        let fd = Rc::new(fd);
        self.cache.insert(rel.to_path_buf(), fd.clone());
        Ok(Some(fd))
    }

    fn parent_and_name<'a>(&mut self, rel: &'a Path) -> anyhow::Result<(Rc<OwnedFd>, &'a OsStr)> {
        let name = rel
            .file_name()
            .ok_or_else(|| anyhow::anyhow!("\"{}\" has no file name", rel.display()))?;
        let parent = self.dir(rel.parent().unwrap_or(Path::new("")))?;
        Ok((parent, name))
    }

    /// What is at `rel` now (without following a final symlink).
    pub fn existing(&mut self, rel: &Path) -> anyhow::Result<Existing> {
        let name = rel
            .file_name()
            .ok_or_else(|| anyhow::anyhow!("\"{}\" has no file name", rel.display()))?;
        let Some(parent) = self.resolve(rel.parent().unwrap_or(Path::new("")), false)? else {
            return Ok(Existing::None);
        };
        Ok(
            match fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => Existing::Dir,
                Ok(_) => Existing::Other,
                Err(Errno::ENOENT) => Existing::None,
                Err(e) => anyhow::bail!("stat {}: {e}", rel.display()),
            },
        )
    }

    /// Remove whatever is at `rel` (a whole directory tree too).
    pub fn remove(&mut self, rel: &Path) -> anyhow::Result<()> {
        match self.existing(rel)? {
            Existing::None => Ok(()),
            Existing::Dir => {
                // Every component of rel was just verified to be a real directory,
                // and remove_dir_all never follows symlinks inside.
                self.cache.retain(|k, _| !k.starts_with(rel));
                std::fs::remove_dir_all(self.root_path.join(rel))
                    .map_err(|e| anyhow::anyhow!("remove {}: {e}", rel.display()))
            }
            Existing::Other => {
                let (parent, name) = self.parent_and_name(rel)?;
                unlinkat(parent.as_fd(), name, UnlinkatFlags::NoRemoveDir)
                    .map_err(|e| anyhow::anyhow!("remove {}: {e}", rel.display()))
            }
        }
    }

    /// Make room for a new non-directory at `rel`.
    fn clear_for_file(&mut self, rel: &Path) -> anyhow::Result<()> {
        if self.existing(rel)? != Existing::None {
            self.remove(rel)?;
        }
        Ok(())
    }

    /// A new regular file, open for writing (mode 0600 until `chmod`).
    pub fn create_file(&mut self, rel: &Path) -> anyhow::Result<File> {
        let flags =
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mode = Mode::from_bits_truncate(0o600);
        let (parent, name) = self.parent_and_name(rel)?;
        // Usually nothing is there yet: try first, clear and retry only on EEXIST.
        match openat(parent.as_fd(), name, flags, mode) {
            Ok(fd) => return Ok(File::from(fd)),
            Err(Errno::EEXIST) => {}
            Err(e) => anyhow::bail!("create {}: {e}", rel.display()),
        }
        self.clear_for_file(rel)?;
        let (parent, name) = self.parent_and_name(rel)?;
        let fd = openat(parent.as_fd(), name, flags, mode)
            .map_err(|e| anyhow::anyhow!("create {}: {e}", rel.display()))?;
        Ok(File::from(fd))
    }

    /// A directory (an existing one is kept, with its contents).
    pub fn mkdir(&mut self, rel: &Path) -> anyhow::Result<()> {
        match self.existing(rel)? {
            Existing::Dir => Ok(()),
            other => {
                if other == Existing::Other {
                    self.remove(rel)?;
                }
                self.dir(rel).map(|_| ())
            }
        }
    }

    pub fn symlink(&mut self, rel: &Path, target: &Path) -> anyhow::Result<()> {
        self.clear_for_file(rel)?;
        let (parent, name) = self.parent_and_name(rel)?;
        symlinkat(target, parent.as_fd(), name)
            .map_err(|e| anyhow::anyhow!("symlink {}: {e}", rel.display()))
    }

    /// A hard link at `rel` to the entry at `target` (both inside the tree).
    pub fn hardlink(&mut self, rel: &Path, target: &Path) -> anyhow::Result<()> {
        let (tparent, tname) = self.parent_and_name(target)?;
        if fstatat(tparent.as_fd(), tname, AtFlags::AT_SYMLINK_NOFOLLOW).is_err() {
            anyhow::bail!(
                "hard link {} points to \"{}\", which is not in this layer",
                rel.display(),
                target.display()
            );
        }
        if rel == target {
            return Ok(());
        }
        self.clear_for_file(rel)?;
        let (parent, name) = self.parent_and_name(rel)?;
        // flags 0: link the target itself, never what a symlink target points to.
        linkat(
            tparent.as_fd(),
            tname,
            parent.as_fd(),
            name,
            AtFlags::empty(),
        )
        .map_err(|e| anyhow::anyhow!("hard link {} -> {}: {e}", rel.display(), target.display()))
    }

    /// A device node or fifo.
    pub fn mknod(
        &mut self,
        rel: &Path,
        kind: SFlag,
        mode: u32,
        dev: libc::dev_t,
    ) -> anyhow::Result<()> {
        self.clear_for_file(rel)?;
        let (parent, name) = self.parent_and_name(rel)?;
        mknodat(
            parent.as_fd(),
            name,
            kind,
            Mode::from_bits_truncate(mode),
            dev,
        )
        .map_err(|e| anyhow::anyhow!("mknod {}: {e}", rel.display()))
    }

    pub fn chown(&mut self, rel: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
        if rel.as_os_str().is_empty() {
            return fchownat(
                self.root.as_fd(),
                ".",
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
                AtFlags::empty(),
            )
            .map_err(|e| anyhow::anyhow!("chown the layer root: {e}"));
        }
        let (parent, name) = self.parent_and_name(rel)?;
        fchownat(
            parent.as_fd(),
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| anyhow::anyhow!("chown {}: {e}", rel.display()))
    }

    /// chmod a directory or special file (never used on symlinks).
    pub fn chmod(&mut self, rel: &Path, mode: u32) -> anyhow::Result<()> {
        let (parent, name): (Rc<OwnedFd>, &OsStr) = if rel.as_os_str().is_empty() {
            (self.root.clone(), OsStr::new("."))
        } else {
            self.parent_and_name(rel)?
        };
        // Refuse to chmod through a symlink that replaced the entry.
        if let Ok(st) = fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                return Ok(());
            }
        }
        fchmodat(
            parent.as_fd(),
            name,
            Mode::from_bits_truncate(mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| anyhow::anyhow!("chmod {}: {e}", rel.display()))
    }

    pub fn set_mtime(&mut self, rel: &Path, mtime: TimeSpec) -> anyhow::Result<()> {
        let (parent, name): (Rc<OwnedFd>, &OsStr) = if rel.as_os_str().is_empty() {
            (self.root.clone(), OsStr::new("."))
        } else {
            self.parent_and_name(rel)?
        };
        utimensat(
            parent.as_fd(),
            name,
            &mtime,
            &mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| anyhow::anyhow!("set times of {}: {e}", rel.display()))
    }

    /// Set an extended attribute on `rel` itself (never through a symlink).
    pub fn set_xattr(&mut self, rel: &Path, name: &str, value: &[u8]) -> anyhow::Result<()> {
        if !rel.as_os_str().is_empty() {
            // Verifies every parent component is a real directory.
            self.parent_and_name(rel)?;
        }
        let full = self.root_path.join(rel);
        let path = CString::new(full.as_os_str().as_bytes())?;
        let cname = CString::new(name)?;
        let rc = unsafe {
            libc::lsetxattr(
                path.as_ptr(),
                cname.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if rc != 0 {
            anyhow::bail!(
                "set xattr {name} on {}: {}",
                rel.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_writes_through_symlinks() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut t = Tree::open(dir.path()).unwrap();
        t.symlink(Path::new("esc"), outside.path()).unwrap();
        let err = t.create_file(Path::new("esc/pwned")).unwrap_err();
        assert!(err.downcast_ref::<Refused>().is_some(), "{err}");
        assert!(err.to_string().contains("symlink \"esc\""), "{err}");
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
        // Replacing the symlink itself by a file writes inside the tree.
        use std::io::Write;
        t.create_file(Path::new("esc"))
            .unwrap()
            .write_all(b"x")
            .unwrap();
        assert!(dir.path().join("esc").is_file());
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
    }

    #[test]
    fn replaces_entries_and_creates_parents() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Tree::open(dir.path()).unwrap();
        t.create_file(Path::new("a/b/c")).unwrap();
        assert!(dir.path().join("a/b").is_dir());
        t.create_file(Path::new("a/b")).unwrap();
        assert!(dir.path().join("a/b").is_file());
        assert!(
            t.create_file(Path::new("a/b/x")).is_err(),
            "parent is a file"
        );
        t.mkdir(Path::new("a/b")).unwrap();
        assert!(dir.path().join("a/b").is_dir());
        t.create_file(Path::new("f")).unwrap();
        t.hardlink(Path::new("g"), Path::new("f")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(dir.path().join("g")).unwrap().nlink(), 2);
        assert!(t.hardlink(Path::new("h"), Path::new("missing")).is_err());
        assert_eq!(
            t.existing(Path::new("no/such/thing")).unwrap(),
            Existing::None
        );
        assert!(!dir.path().join("no").exists(), "looking must not create");
    }
}
