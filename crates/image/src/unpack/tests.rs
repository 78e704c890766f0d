//! Unpacking crafted layers. Ownership, devices and trusted.* xattrs need
//! root; those checks are skipped (with a note) when run unprivileged.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Builds tars with raw names, so tests can write what a hostile layer would.
struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Layer {
    fn new() -> Self {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(name: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    fn raw(mut self, mut h: tar::Header, data: &[u8]) -> Self {
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    fn dir(self, name: &str, mode: u32) -> Self {
        let h = Self::header(name, tar::EntryType::Directory, mode, 0);
        self.raw(h, &[])
    }

    fn file(self, name: &str, mode: u32, data: &[u8]) -> Self {
        let h = Self::header(name, tar::EntryType::Regular, mode, data.len() as u64);
        self.raw(h, data)
    }

    fn owned_file(self, name: &str, mode: u32, uid: u64, data: &[u8]) -> Self {
        let mut h = Self::header(name, tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(uid + 1);
        self.raw(h, data)
    }

    fn link(self, name: &str, kind: tar::EntryType, target: &str) -> Self {
        let mut h = Self::header(name, kind, 0o777, 0);
        let t = target.as_bytes();
        h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
        self.raw(h, &[])
    }

    fn node(self, name: &str, kind: tar::EntryType, major: u32, minor: u32) -> Self {
        let mut h = Self::header(name, kind, 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.raw(h, &[])
    }

    fn xattr_file(mut self, name: &str, xattr: &str, value: &[u8]) -> Self {
        let key = format!("SCHILY.xattr.{xattr}");
        self.b
            .append_pax_extensions([(key.as_str(), value)])
            .unwrap();
        self.file(name, 0o755, b"bin")
    }

    fn bytes(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

fn unpack(tar: &[u8]) -> (tempfile::TempDir, anyhow::Result<Unpacked>) {
    let dir = tempfile::tempdir().unwrap();
    let r = unpack_tar(tar, dir.path());
    (dir, r)
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

#[test]
fn regular_entries_keep_their_metadata() {
    let tar = Layer::new()
        .dir("./", 0o755)
        .dir("etc/", 0o700)
        .file("etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n")
        .owned_file("bin/su", 0o4755, 1000, b"suid")
        .link("bin/sh", tar::EntryType::Symlink, "/bin/busybox")
        .link("bin/passwd2", tar::EntryType::Link, "etc/passwd")
        .node("run/fifo", tar::EntryType::Fifo, 0, 0)
        .bytes();
    let (dir, r) = unpack(&tar);
    let u = r.unwrap();
    let d = dir.path();
    assert_eq!(u.diff_id, sha(&tar));
    assert_eq!(u.tar_size, tar.len() as u64);
    assert_eq!(u.entries, 7);
    assert_eq!(
        fs::read(d.join("etc/passwd")).unwrap(),
        b"root:x:0:0::/root:/bin/sh\n"
    );
    let etc = fs::metadata(d.join("etc")).unwrap();
    assert_eq!(etc.permissions().mode() & 0o7777, 0o700);
    assert_eq!(
        etc.mtime(),
        1_600_000_000,
        "directory times are set after their children"
    );
    assert_eq!(
        fs::read_link(d.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        fs::metadata(d.join("etc/passwd")).unwrap().ino(),
        fs::metadata(d.join("bin/passwd2")).unwrap().ino()
    );
    assert!(fs::symlink_metadata(d.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        fs::metadata(d.join("bin")).unwrap().permissions().mode() & 0o777,
        0o755,
        "implicit parents"
    );
    let su = fs::metadata(d.join("bin/su")).unwrap();
    assert_eq!(su.mtime(), 1_600_000_000);
    if is_root() {
        assert_eq!((su.uid(), su.gid()), (1000, 1001));
        assert_eq!(
            su.permissions().mode() & 0o7777,
            0o4755,
            "setuid survives chown"
        );
    }
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    if !is_root() {
        eprintln!("skipped: creating char 0/0 and trusted.* xattrs needs root");
        return;
    }
    let tar = Layer::new()
        .file("a/.wh.gone", 0o644, b"")
        .file("opq/.wh..wh..opq", 0o644, b"")
        .file("opq/kept", 0o644, b"k")
        .file("both", 0o644, b"mine")
        .file(".wh.both", 0o644, b"")
        .file(".wh.later", 0o644, b"")
        .file("later", 0o644, b"replaces the whiteout")
        .file(".wh..wh.plnk", 0o644, b"")
        .bytes();
    let (dir, r) = unpack(&tar);
    r.unwrap();
    let d = dir.path();
    let gone = fs::symlink_metadata(d.join("a/gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    assert!(!d.join("a/.wh.gone").exists());
    assert!(!d.join("opq/.wh..wh..opq").exists());
    let mut v = [0u8; 4];
    let p = std::ffi::CString::new(d.join("opq").as_os_str().as_encoded_bytes()).unwrap();
    let n = unsafe {
        libc::lgetxattr(
            p.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            v.as_mut_ptr().cast(),
            v.len(),
        )
    };
    assert_eq!(&v[..n as usize], b"y");
    assert_eq!(
        fs::read(d.join("both")).unwrap(),
        b"mine",
        "a whiteout only hides lower layers"
    );
    assert_eq!(fs::read(d.join("later")).unwrap(), b"replaces the whiteout");
    assert!(!d.join(".wh..wh.plnk").exists());
}

#[test]
fn devices_and_capabilities() {
    if !is_root() {
        eprintln!("skipped: device nodes and security.* xattrs need root");
        return;
    }
    // A v2 file capability: cap_net_bind_service permitted+effective.
    let cap: &[u8] = &[0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let tar = Layer::new()
        .node("dev/null", tar::EntryType::Char, 1, 3)
        .node("dev/loop0", tar::EntryType::Block, 7, 0)
        .xattr_file("usr/bin/ping", "security.capability", cap)
        .xattr_file("usr/bin/forged", "trusted.overlay.opaque", b"y")
        .bytes();
    let (dir, r) = unpack(&tar);
    r.unwrap();
    let d = dir.path();
    let null = fs::symlink_metadata(d.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert!(fs::symlink_metadata(d.join("dev/loop0"))
        .unwrap()
        .file_type()
        .is_block_device());
    let get = |file: &str, name: &std::ffi::CStr| -> Option<Vec<u8>> {
        let p = std::ffi::CString::new(d.join(file).as_os_str().as_encoded_bytes()).unwrap();
        let mut v = [0u8; 64];
        let n =
            unsafe { libc::lgetxattr(p.as_ptr(), name.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        (n >= 0).then(|| v[..n as usize].to_vec())
    };
    assert_eq!(get("usr/bin/ping", c"security.capability").unwrap(), cap);
    assert_eq!(
        get("usr/bin/forged", c"trusted.overlay.opaque"),
        None,
        "overlay xattrs are not taken from layers"
    );
}

#[test]
fn refuses_entries_that_leave_the_layer() {
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path().to_str().unwrap().to_string();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "absolute",
            Layer::new()
                .file(&format!("{out}/abs"), 0o644, b"x")
                .bytes(),
            "absolute path",
        ),
        (
            "dotdot",
            Layer::new()
                .file("../../../../../../../../../../../tmp/x", 0o644, b"x")
                .bytes(),
            "outside",
        ),
        (
            "inner dotdot",
            Layer::new().file("a/../../x", 0o644, b"x").bytes(),
            "outside",
        ),
        (
            "through symlink",
            Layer::new()
                .link("esc", tar::EntryType::Symlink, &out)
                .file("esc/pwned", 0o644, b"x")
                .bytes(),
            "symlink \"esc\"",
        ),
        (
            "through relative symlink",
            Layer::new()
                .link("esc", tar::EntryType::Symlink, "../../../../../../../../..")
                .dir("esc/tmp/", 0o755)
                .bytes(),
            "symlink \"esc\"",
        ),
        (
            "hardlink outside",
            Layer::new()
                .link("hl", tar::EntryType::Link, "../../../../../../etc/passwd")
                .bytes(),
            "hard link",
        ),
        (
            "hardlink absolute",
            Layer::new()
                .link("hl", tar::EntryType::Link, "/etc/passwd")
                .bytes(),
            "absolute path",
        ),
        (
            "hardlink through symlink",
            Layer::new()
                .link("etc", tar::EntryType::Symlink, "/etc")
                .link("hl", tar::EntryType::Link, "etc/passwd")
                .bytes(),
            "symlink \"etc\"",
        ),
    ];
    for (what, tar, why) in cases {
        let (dir, r) = unpack(&tar);
        let err = match r {
            Ok(_) => panic!("{what}: unpacked"),
            Err(e) => e,
        };
        let msg = format!("{err:#}");
        assert!(msg.contains(why), "{what}: {msg}");
        assert!(
            err.chain().any(|c| c.is::<Refused>()),
            "{what}: not marked refused: {msg}"
        );
        assert!(
            fs::read_dir(outside.path()).unwrap().next().is_none(),
            "{what}: wrote outside"
        );
        assert!(!Path::new("/tmp/x").exists() || what != "dotdot");
        drop(dir);
    }
}

#[test]
fn compressions_give_the_same_diff_id() {
    let tar = Layer::new().file("hello", 0o644, &[7u8; 100_000]).bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    assert_eq!(sniff(&gz), Compression::Gzip);
    assert_eq!(sniff(&zst), Compression::Zstd);
    assert_eq!(sniff(&tar), Compression::None);
    for input in [&tar, &gz, &zst] {
        let dir = tempfile::tempdir().unwrap();
        let u = unpack_layer(&input[..], dir.path()).unwrap();
        assert_eq!(u.diff_id, sha(&tar));
        assert_eq!(fs::read(dir.path().join("hello")).unwrap().len(), 100_000);
    }
}

#[test]
fn truncated_layers_fail() {
    let tar = Layer::new().file("big", 0o644, &[1u8; 50_000]).bytes();
    let dir = tempfile::tempdir().unwrap();
    assert!(unpack_tar(&tar[..20_000], dir.path()).is_err());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert!(unpack_layer(&gz[..gz.len() / 2], dir.path()).is_err());
}

#[test]
fn pax_times() {
    assert_eq!(
        parse_time(b"1700000000.5"),
        Some(TimeSpec::new(1_700_000_000, 500_000_000))
    );
    assert_eq!(parse_time(b"12"), Some(TimeSpec::new(12, 0)));
    assert_eq!(parse_time(b"x"), None);
}
