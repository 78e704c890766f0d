//! Helpers for tests that also run in the pure-cgroup-v2 VM lane
//! (`scripts/vm-cgroupv2/runtime-tests.sh`, see docs/testing-cgroupv2.md).
//!
//! The VM has no network and so no registry. The lane pulls [`PREPULLED_IMAGE`]
//! into a store on the host first, unpacks it onto the VM's tmpfs (same path,
//! xattrs kept) and passes its path as `MC_TEST_PREPULLED_ROOT`. Inside the VM
//! `MC_TEST_REGISTRY` points at a closed loopback port, so a test that pulls
//! fails at once: use [`seeded_root`] instead of [`crate::temp_root`] in tests
//! that only need busybox, and they run both on the host and in the VM.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The image the VM lane pre-pulls (docker.io/library/busybox:latest, served by
/// the local test registry as the Debian-built stand-in).
pub const PREPULLED_IMAGE: &str = "busybox:latest";

/// Whether this test process runs inside the pure-cgroup-v2 VM.
pub fn in_vm() -> bool {
    std::env::var_os("MC_TEST_IN_VM").is_some_and(|v| v == "1")
}

/// The pre-pulled store given by the lane (`MC_TEST_PREPULLED_ROOT`), if any.
pub fn prepulled_root() -> Option<PathBuf> {
    let root = PathBuf::from(std::env::var_os("MC_TEST_PREPULLED_ROOT")?);
    assert!(
        root.is_dir(),
        "MC_TEST_PREPULLED_ROOT={} is not a directory",
        root.display()
    );
    Some(root)
}

/// A fresh `--root` for one test. When the lane gave a pre-pulled store, the
/// new root already holds its images (hard links where the filesystem allows,
/// so it is fast and pulls nothing); otherwise it is empty, like
/// [`crate::temp_root`], and the test pulls from `MC_TEST_REGISTRY` as usual.
pub fn seeded_root() -> crate::TestRoot {
    let dir = crate::temp_root();
    if let Some(src) = prepulled_root() {
        copy_tree(&src, dir.path());
    }
    dir
}

/// `cp -a` of the contents of `src` into `dst`, hard-linking files when
/// possible. GNU cp keeps the xattrs overlay uses for opaque directories.
fn copy_tree(src: &Path, dst: &Path) {
    let from = src.join(".");
    let linked = Command::new("cp")
        .args(["-a", "--link"])
        .arg(&from)
        .arg(dst)
        .status()
        .is_ok_and(|s| s.success());
    if linked {
        return;
    }
    let status = Command::new("cp")
        .arg("-a")
        .arg(&from)
        .arg(dst)
        .status()
        .expect("spawn cp");
    assert!(
        status.success(),
        "copying the pre-pulled store {} into {} failed",
        src.display(),
        dst.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;

    fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
        let p = CString::new(path.as_os_str().as_bytes()).unwrap();
        let n = CString::new(name).unwrap();
        let mut buf = [0u8; 64];
        let len =
            unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        (len >= 0).then(|| buf[..len as usize].to_vec())
    }

    fn set_xattr(path: &Path, name: &str, value: &[u8]) -> bool {
        let p = CString::new(path.as_os_str().as_bytes()).unwrap();
        let n = CString::new(name).unwrap();
        unsafe {
            libc::lsetxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            ) == 0
        }
    }

    #[test]
    fn copy_tree_links_files_and_keeps_directory_xattrs() {
        let src = tempfile::tempdir().unwrap();
        let layer = src.path().join("layers/abc/etc");
        std::fs::create_dir_all(layer.join("opaque")).unwrap();
        std::fs::write(layer.join("passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        // user.* stands in for trusted.overlay.opaque, which needs root
        let has_xattrs = set_xattr(&layer.join("opaque"), "user.overlay.opaque", b"y");

        let dst = tempfile::tempdir().unwrap();
        copy_tree(src.path(), dst.path());

        let copied = dst.path().join("layers/abc/etc");
        assert_eq!(
            std::fs::read_to_string(copied.join("passwd")).unwrap(),
            "root:x:0:0::/root:/bin/sh\n"
        );
        // same filesystem: a hard link, not a copy
        assert_eq!(
            std::fs::metadata(copied.join("passwd")).unwrap().ino(),
            std::fs::metadata(layer.join("passwd")).unwrap().ino()
        );
        if has_xattrs {
            assert_eq!(
                xattr(&copied.join("opaque"), "user.overlay.opaque").as_deref(),
                Some(&b"y"[..])
            );
        }
    }
}
