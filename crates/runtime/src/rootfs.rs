//! The container's filesystem, built inside its own mount namespace (so the
//! host never sees these mounts and they vanish with the container):
//! overlay of the layers, Docker's default mounts and devices, the
//! per-container /etc files, user volumes, pivot_root, masked and read-only
//! paths.

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::launch::InitConfig;

/// Docker's masked paths (moby oci/defaults.go).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn do_mount(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    explain!(
        "mount",
        "mount {} on {} type {} flags {:?}{}",
        src.unwrap_or("none"),
        target.display(),
        fstype.unwrap_or("-"),
        flags,
        data.map(|d| format!(" data {d}")).unwrap_or_default()
    );
    mount(src, target, fstype, flags, data).with_context(|| {
        format!(
            "mount {} on {}",
            src.unwrap_or(fstype.unwrap_or("none")),
            target.display()
        )
    })
}

/// Join `path` under `root`, resolving symlinks as if `root` were `/`
/// (so an image's symlink cannot send a mount outside the rootfs).
pub fn secure_join(root: &Path, path: &str) -> Result<PathBuf> {
    let mut pending: Vec<String> = Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .rev()
        .collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate: PathBuf = root.join(resolved.iter().collect::<PathBuf>()).join(&part);
        match fs::symlink_metadata(&candidate) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    bail!("too many symlinks resolving {path} in the image");
                }
                let target = fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(s) => pending.push(s.to_string_lossy().into_owned()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => resolved.push(part),
        }
    }
    Ok(root.join(resolved.iter().collect::<PathBuf>()))
}

/// Make sure a mount point exists: a directory, or a file when `file`.
fn ensure_target(path: &Path, file: bool) -> Result<()> {
    if fs::symlink_metadata(path).is_ok() {
        return Ok(());
    }
    if file {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
        }
        fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    } else {
        fs::create_dir_all(path).with_context(|| format!("create {}", path.display()))?;
    }
    Ok(())
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// Mount the overlay of the image layers on `<dir>/rootfs`. When the
/// option string would not fit in a page, use short relative links
/// `l/<n>` made in the container dir (we chdir there to mount).
/// The overlay mount data: absolute paths when they fit in a page (less
/// one byte for the NUL), else `l/<n>` links relative to the container dir
/// (returned `true`: the caller makes the links and mounts from that dir).
/// Layers are given lowest first; overlay wants the highest first.
fn overlay_data(layers: &[PathBuf], dir: &Path, page: usize) -> Result<(String, bool)> {
    let full: Vec<String> = layers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        full.join(":"),
        dir.join("upper").display(),
        dir.join("work").display()
    );
    if data.len() < page {
        return Ok((data, false));
    }
    let short: Vec<String> = (0..layers.len()).rev().map(|i| format!("l/{i}")).collect();
    let data = format!("lowerdir={},upperdir=upper,workdir=work", short.join(":"));
    if data.len() >= page {
        bail!("{} layers do not fit in one overlay mount", layers.len());
    }
    Ok((data, true))
}

fn mount_overlay(cfg: &InitConfig, target: &Path) -> Result<()> {
    let dir = &cfg.container_dir;
    let work = dir.join("work");
    let (data, short) = overlay_data(&cfg.spec.layers, dir, page_size())?;
    if short {
        let links = dir.join("l");
        fs::create_dir_all(&links)?;
        for (i, layer) in cfg.spec.layers.iter().enumerate() {
            let l = links.join(i.to_string());
            let _ = fs::remove_file(&l);
            symlink(layer, &l)?;
        }
        std::env::set_current_dir(dir)?;
    }
    // `volatile` (Linux 5.10+): no syncs of the upper dir, above all none at
    // unmount, which otherwise costs a journal commit per container exit.
    // After a host crash the kernel refuses the dirty upper dir until
    // work/incompat/volatile is removed; a container's scratch data is not
    // worth a crash-safe sync, so remove it (as podman's volatile does).
    // overlayfs keeps its marker at <workdir>/work/incompat/volatile.
    let _ = fs::remove_dir_all(work.join("work").join("incompat"));
    let volatile = format!("{data},volatile");
    if volatile.len() < page_size()
        && do_mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(&volatile),
        )
        .is_ok()
    {
        return Ok(());
    }
    do_mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(&data),
    )
}

/// Fallback when overlay is not available: copy every layer, lowest first,
/// into `<dir>/rootfs-copy`, applying whiteouts, then bind it.
fn copy_rootfs(cfg: &InitConfig, target: &Path) -> Result<()> {
    let copy = cfg.container_dir.join("rootfs-copy");
    if !copy.exists() {
        let tmp = cfg.container_dir.join("rootfs-copy.tmp");
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)?;
        for layer in &cfg.spec.layers {
            copy_layer(layer, &tmp).with_context(|| format!("copy layer {}", layer.display()))?;
        }
        fs::rename(&tmp, &copy)?;
    }
    do_mount(
        Some(&copy.display().to_string()),
        target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
}

fn copy_layer(src: &Path, dst: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    // An opaque directory hides everything below it from lower layers.
    if xattr_is_opaque(src) {
        for e in fs::read_dir(dst)? {
            let p = e?.path();
            if p.is_dir() && !p.is_symlink() {
                fs::remove_dir_all(&p)?;
            } else {
                fs::remove_file(&p)?;
            }
        }
    }
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let md = fs::symlink_metadata(&from)?;
        let ft = md.file_type();
        // A whiteout (char device 0/0) deletes the name from lower layers.
        if ft.is_char_device() && md.rdev() == 0 {
            if to.is_dir() && !to.is_symlink() {
                fs::remove_dir_all(&to)?;
            } else if fs::symlink_metadata(&to).is_ok() {
                fs::remove_file(&to)?;
            }
            continue;
        }
        if let Ok(old) = fs::symlink_metadata(&to) {
            if !(old.is_dir() && ft.is_dir()) {
                if old.is_dir() {
                    fs::remove_dir_all(&to)?;
                } else {
                    fs::remove_file(&to)?;
                }
            }
        }
        if ft.is_dir() {
            fs::create_dir_all(&to)?;
            copy_layer(&from, &to)?;
        } else if ft.is_symlink() {
            symlink(fs::read_link(&from)?, &to)?;
        } else if ft.is_file() {
            fs::copy(&from, &to)?;
        } else {
            let c = CString::new(to.as_os_str().as_encoded_bytes())?;
            // SAFETY: valid C string; mode and dev come from the source.
            if unsafe { libc::mknod(c.as_ptr(), md.mode(), md.rdev()) } != 0 {
                return Err(std::io::Error::last_os_error().into());
            }
        }
        let c = CString::new(to.as_os_str().as_encoded_bytes())?;
        // SAFETY: valid C string.
        unsafe { libc::lchown(c.as_ptr(), md.uid(), md.gid()) };
        if !ft.is_symlink() {
            fs::set_permissions(&to, fs::Permissions::from_mode(md.mode() & 0o7777))?;
        }
    }
    Ok(())
}

fn xattr_is_opaque(dir: &Path) -> bool {
    let Ok(c) = CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut buf = [0u8; 4];
    for name in [
        &b"trusted.overlay.opaque\0"[..],
        &b"user.overlay.opaque\0"[..],
    ] {
        // SAFETY: valid C strings and a buffer of the given size.
        let n = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                name.as_ptr().cast(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n == 1 && buf[0] == b'y' {
            return true;
        }
    }
    false
}

/// Mount the root filesystem; returns whether the copy fallback was used.
pub fn mount_root(cfg: &InitConfig) -> Result<(PathBuf, bool)> {
    let target = cfg.container_dir.join("rootfs");
    // pivot_root needs the new root's parent not shared: make all private-ish.
    let overlay = if cfg.no_overlay {
        Err(anyhow::anyhow!("MINICOMPOSE_NO_OVERLAY=1"))
    } else {
        mount_overlay(cfg, &target)
    };
    match overlay {
        Ok(()) => Ok((target, false)),
        Err(e) => {
            explain!(
                "rootfs",
                "overlay failed ({e:#}); copying the layers instead"
            );
            copy_rootfs(cfg, &target)?;
            Ok((target, true))
        }
    }
}

fn mknod_dev(root: &Path, name: &str, major: u64, minor: u64) -> Result<()> {
    let path = root.join("dev").join(name);
    let c = CString::new(path.as_os_str().as_encoded_bytes())?;
    explain!("mount", "mknod {} c {major}:{minor}", path.display());
    // SAFETY: valid C string.
    let rc = unsafe {
        libc::mknod(
            c.as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(major as u32, minor as u32),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("mknod {}", path.display()));
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666))?;
    Ok(())
}

/// Docker's default mounts, devices, /etc files and user mounts under `root`.
pub fn populate(cfg: &InitConfig, root: &Path) -> Result<()> {
    let nsfl = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    let at = |p: &str| secure_join(root, p);

    let proc_ = at("/proc")?;
    ensure_target(&proc_, false)?;
    do_mount(Some("proc"), &proc_, Some("proc"), nsfl, None)?;

    let dev = at("/dev")?;
    ensure_target(&dev, false)?;
    do_mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for (name, maj, min) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        mknod_dev(root, name, maj, min)?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        symlink(target, dev.join(link))?;
    }
    let pts = dev.join("pts");
    fs::create_dir_all(&pts)?;
    do_mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    let shm = dev.join("shm");
    fs::create_dir_all(&shm)?;
    do_mount(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        nsfl,
        Some("mode=1777,size=65536k"),
    )?;
    let mq = dev.join("mqueue");
    fs::create_dir_all(&mq)?;
    do_mount(Some("mqueue"), &mq, Some("mqueue"), nsfl, None)?;

    let sys = at("/sys")?;
    ensure_target(&sys, false)?;
    do_mount(
        Some("sysfs"),
        &sys,
        Some("sysfs"),
        nsfl | MsFlags::MS_RDONLY,
        None,
    )?;
    let cg = sys.join("fs/cgroup");
    if cfg.cgroup_v2 {
        do_mount(
            Some("cgroup"),
            &cg,
            Some("cgroup2"),
            nsfl | MsFlags::MS_RDONLY,
            None,
        )?;
    } else {
        do_mount(Some("cgroup"), &cg, Some("tmpfs"), nsfl, Some("mode=755"))?;
        for (name, host_dir) in &cfg.cgroup_v1_binds {
            let t = cg.join(name);
            fs::create_dir_all(&t)?;
            do_mount(
                Some(&host_dir.display().to_string()),
                &t,
                None,
                MsFlags::MS_BIND,
                None,
            )?;
            do_mount(
                None,
                &t,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | nsfl,
                None,
            )?;
        }
        do_mount(
            None,
            &cg,
            None,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | nsfl,
            Some("mode=755"),
        )?;
    }

    // A private network namespace gets Docker's two sysctls.
    if cfg.spec.network != "host" {
        for (key, value) in [
            ("net/ipv4/ping_group_range", "0 2147483647"),
            ("net/ipv4/ip_unprivileged_port_start", "0"),
        ] {
            let p = proc_.join("sys").join(key);
            explain!("mount", "sysctl {} = {value}", key.replace('/', "."));
            // Older kernels lack one of them: not fatal.
            let _ = fs::write(&p, value);
        }
    }

    for file in ["hostname", "hosts", "resolv.conf"] {
        let t = at(&format!("/etc/{file}"))?;
        ensure_target(&t, true)?;
        let src = cfg.container_dir.join(file);
        do_mount(
            Some(&src.display().to_string()),
            &t,
            None,
            MsFlags::MS_BIND,
            None,
        )?;
    }

    for m in &cfg.spec.mounts {
        let t = at(&m.destination)?;
        match m.kind.as_str() {
            "tmpfs" => {
                ensure_target(&t, false)?;
                let data = if m.options.is_empty() {
                    "mode=1777".to_string()
                } else {
                    m.options.clone()
                };
                let mut fl = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
                if m.read_only {
                    fl |= MsFlags::MS_RDONLY;
                }
                do_mount(Some("tmpfs"), &t, Some("tmpfs"), fl, Some(&data))?;
            }
            _ => {
                let is_dir = fs::metadata(&m.source)
                    .map(|md| md.is_dir())
                    .unwrap_or(true);
                ensure_target(&t, !is_dir)?;
                let src = m.source.display().to_string();
                do_mount(
                    Some(&src),
                    &t,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )?;
                if m.read_only {
                    do_mount(
                        None,
                        &t,
                        None,
                        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                        None,
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// Switch to the new root and detach the old one.
pub fn pivot(root: &Path) -> Result<()> {
    std::env::set_current_dir(root).with_context(|| format!("chdir {}", root.display()))?;
    explain!(
        "rootfs",
        "pivot_root(\".\", \".\") in {}; umount2(\".\", MNT_DETACH)",
        root.display()
    );
    nix::unistd::pivot_root(".", ".").context("pivot_root")?;
    umount2(".", MntFlags::MNT_DETACH).context("detach the old root")?;
    std::env::set_current_dir("/")?;
    Ok(())
}

/// Masked and read-only paths, then the read-only root (after pivot_root).
pub fn harden(cfg: &InitConfig) -> Result<()> {
    if !cfg.spec.privileged {
        for p in MASKED_PATHS {
            let path = Path::new(p);
            let Ok(md) = fs::metadata(path) else { continue };
            if md.is_dir() {
                do_mount(Some("tmpfs"), path, Some("tmpfs"), MsFlags::MS_RDONLY, None)?;
            } else {
                do_mount(Some("/dev/null"), path, None, MsFlags::MS_BIND, None)?;
            }
        }
        for p in READONLY_PATHS {
            let path = Path::new(p);
            if fs::symlink_metadata(path).is_err() {
                continue;
            }
            do_mount(
                Some(p),
                path,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )?;
            let fl = MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC;
            do_mount(None, path, None, fl, None)?;
        }
    }
    if cfg.spec.read_only {
        do_mount(
            None,
            Path::new("/"),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_data_fits_a_page() {
        let dir = Path::new("/var/lib/minicompose/containers/abc");
        let few: Vec<PathBuf> = (0..3).map(|i| PathBuf::from(format!("/l/{i}"))).collect();
        let (d, short) = overlay_data(&few, dir, 4096).unwrap();
        assert!(!short);
        assert!(d.starts_with(
            "lowerdir=/l/2:/l/1:/l/0,upperdir=/var/lib/minicompose/containers/abc/upper,"
        ));
        let long = "/var/lib/minicompose/layers/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/diff";
        let many: Vec<PathBuf> = (0..128).map(|_| PathBuf::from(long)).collect();
        let (d, short) = overlay_data(&many, dir, 4096).unwrap();
        assert!(short);
        assert!(d.len() < 4096);
        assert!(d.starts_with("lowerdir=l/127:l/126:"));
        assert!(d.ends_with("l/0,upperdir=upper,workdir=work"));
        let too_many: Vec<PathBuf> = (0..1000).map(|_| PathBuf::from(long)).collect();
        assert!(overlay_data(&too_many, dir, 4096).is_err());
    }

    #[test]
    fn secure_join_stays_inside() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("real/dir")).unwrap();
        symlink("/real", r.join("abs")).unwrap();
        symlink("../../../../etc", r.join("real/up")).unwrap();
        assert_eq!(secure_join(r, "/abs/dir").unwrap(), r.join("real/dir"));
        assert_eq!(
            secure_join(r, "/real/up/passwd").unwrap(),
            r.join("etc/passwd")
        );
        assert_eq!(secure_join(r, "/../../x").unwrap(), r.join("x"));
        symlink("loop", r.join("loop")).unwrap();
        assert!(secure_join(r, "/loop").is_err());
    }
}
