//! The container's init, in its namespaces (our binary re-executed from a
//! read-only bind): cgroup, hostname, rootfs, pivot_root, user, seccomp,
//! capabilities, fd hygiene, exec. With `--init`, it stays as PID 1: a
//! reaper that forwards signals to the command and reaps zombies.

use std::ffi::CString;
use std::fs;
use std::os::fd::RawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::launch::{die, read_fd, InitConfig};
use crate::spec::DEFAULT_PATH;
use crate::user::ExecUser;
use crate::{caps, explain, seccomp, user};

/// Why starting the command failed, with Docker's exit code.
pub(crate) struct Fail {
    pub code: i32,
    pub msg: String,
}

impl From<anyhow::Error> for Fail {
    fn from(e: anyhow::Error) -> Fail {
        Fail {
            code: 125,
            msg: format!("{e:#}"),
        }
    }
}

impl From<crate::Error> for Fail {
    fn from(e: crate::Error) -> Fail {
        match e {
            crate::Error::Invalid(m) => Fail { code: 1, msg: m },
            crate::Error::Start { code, message } => Fail { code, msg: message },
            crate::Error::Other(e) => Fail {
                code: 125,
                msg: format!("{e:#}"),
            },
        }
    }
}

/// Entry point of `__internal init <config fd> <status fd> <go fd>`.
pub fn main(config_fd: RawFd, status_fd: RawFd, go_fd: RawFd) -> ! {
    // SAFETY: fcntl on inherited fds; keep them away from the command.
    unsafe {
        libc::fcntl(status_fd, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(go_fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    let cfg: InitConfig = match read_fd(config_fd)
        .map_err(anyhow::Error::from)
        .and_then(|b| serde_json::from_slice(&b).context("decode init config"))
    {
        Ok(c) => c,
        Err(e) => die(status_fd, 125, &format!("{e:#}")),
    };
    explain::route_to_fd(if cfg.explain {
        status_fd
    } else {
        explain::SILENT
    });
    match run(&cfg, status_fd, go_fd) {
        Ok(never) => match never {},
        Err(f) => die(status_fd, f.code, &f.msg),
    }
}

fn run(cfg: &InitConfig, status_fd: RawFd, go_fd: RawFd) -> Result<std::convert::Infallible, Fail> {
    // The parent puts us in our cgroup (overlapping the kernel's slow first
    // migration with our exec and mounts) and runs the network hook, then
    // sends "go". The cgroup namespace must be made once we are inside it.
    let wait_go = || -> Result<(), Fail> {
        let mut b = [0u8; 1];
        // SAFETY: read into our buffer.
        if unsafe { libc::read(go_fd, b.as_mut_ptr().cast(), 1) } != 1 {
            return Err(Fail {
                code: 125,
                msg: "the parent went away before the container started".into(),
            });
        }
        Ok(())
    };
    // Sysctls like net.ipv4.conf.eth0.* need the network hook to have run:
    // with any, wait for "go" before building the rootfs (as v2 always does).
    let early_go = cfg.cgroup_v2 || !cfg.spec.sysctls.is_empty();
    if early_go {
        wait_go()?;
    }
    if cfg.cgroup_v2 {
        // SAFETY: plain syscall.
        if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
            return Err(anyhow::Error::from(std::io::Error::last_os_error())
                .context("unshare the cgroup namespace")
                .into());
        }
    }
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0o022) };
    nix::unistd::sethostname(&cfg.spec.hostname).context("sethostname")?;
    explain!("rootfs", "hostname {}", cfg.spec.hostname);
    if cfg.spec.network == "none" || cfg.spec.network.is_empty() {
        loopback_up().context("bring up lo")?;
    }
    let (root, copied) = crate::rootfs::mount_root(cfg)?;
    if copied {
        let w = "Woverlayfs is not available here: the container got a copied root filesystem (slower to create)\n";
        // SAFETY: write to our status pipe.
        unsafe { libc::write(status_fd, w.as_ptr().cast(), w.len()) };
    }
    crate::rootfs::populate(cfg, &root)?;
    // In the container's namespaces, before /proc/sys goes read-only.
    crate::limits::write_sysctls(&root.join("proc/sys"), &cfg.spec.sysctls)?;
    crate::rootfs::pivot(&root)?;
    crate::rootfs::harden(cfg)?;

    let passwd = fs::read_to_string("/etc/passwd").ok();
    let group = fs::read_to_string("/etc/group").ok();
    let who = user::resolve(&cfg.spec.user, passwd.as_deref(), group.as_deref())?;
    explain!(
        "user",
        "user {:?} -> uid {} gid {} groups {:?}",
        cfg.spec.user,
        who.uid,
        who.gid,
        who.groups
    );
    let env = final_env(&cfg.spec.env, &cfg.spec.hostname, &who, cfg.spec.tty);
    enter_workdir(&cfg.spec.working_dir)?;
    let path = lookup(&cfg.spec.args, &env)?;

    if !early_go {
        wait_go()?;
    }
    let bpf = match &cfg.seccomp {
        Some(h) => Some(hex::decode(h).context("decode the seccomp program")?),
        None => None,
    };
    if let Some(sock) = cfg.console_fd {
        crate::console::open_and_send(sock, who.uid, who.gid)?;
        // SAFETY: done with the socket.
        unsafe { libc::close(sock) };
    }
    // Before dropping privileges (RLIMIT_NPROC counts per user).
    crate::limits::apply_rlimits(&cfg.rlimits)?;
    prepare_process(cfg.spec.tty, &cfg.spec.caps, bpf.as_deref(), &who)?;
    if cfg.spec.init {
        reaper(&path, &cfg.spec.args, &env, status_fd)
    } else {
        exec(&path, &cfg.spec.args, &env)
    }
}

/// Session, controlling tty, bounding set, seccomp, user, capabilities,
/// fd hygiene: everything between "rootfs ready" and execve.
pub(crate) fn prepare_process(
    tty: bool,
    cap_set: &[String],
    bpf: Option<&[u8]>,
    who: &ExecUser,
) -> Result<(), Fail> {
    // SAFETY: plain syscalls on our own process.
    unsafe {
        libc::setsid();
        if tty && libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            return Err(anyhow::Error::from(std::io::Error::last_os_error())
                .context("set the controlling terminal")
                .into());
        }
    }
    caps::drop_bounding(cap_set).map_err(|e| anyhow::anyhow!("drop the bounding set: {e}"))?;
    if let Some(b) = bpf {
        explain!(
            "seccomp",
            "install Docker's default profile ({} instructions)",
            b.len() / 8
        );
        seccomp::install(b).context("install the seccomp filter")?;
    } else {
        explain!("seccomp", "unconfined");
    }
    // SAFETY: prctl/setgroups/setres[ug]id with valid arguments.
    unsafe {
        libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0);
        let groups: Vec<libc::gid_t> = who.groups.clone();
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
            return Err(anyhow::Error::from(std::io::Error::last_os_error())
                .context("setgroups")
                .into());
        }
        if libc::setresgid(who.gid, who.gid, who.gid) != 0 {
            return Err(anyhow::Error::from(std::io::Error::last_os_error())
                .context("setresgid")
                .into());
        }
        if libc::setresuid(who.uid, who.uid, who.uid) != 0 {
            return Err(anyhow::Error::from(std::io::Error::last_os_error())
                .context("setresuid")
                .into());
        }
        libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0);
    }
    caps::apply(cap_set).map_err(|e| anyhow::anyhow!("set capabilities: {e}"))?;
    explain!(
        "caps",
        "bounding = permitted = effective = {:#018x} ({} caps), inheritable = ambient = 0",
        caps::mask(cap_set),
        cap_set.len()
    );
    // Nothing but 0, 1, 2 crosses the exec (CVE-2024-21626).
    // SAFETY: close_range with CLOEXEC only flags fds.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Ok(())
}

/// Docker's additions to the environment: PATH, HOSTNAME, HOME, TERM.
pub(crate) fn final_env(env: &[String], hostname: &str, who: &ExecUser, tty: bool) -> Vec<String> {
    let has = |k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
    let mut out = Vec::new();
    if !has("PATH") {
        out.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has("HOSTNAME") && !hostname.is_empty() {
        out.push(format!("HOSTNAME={hostname}"));
    }
    out.extend(env.iter().cloned());
    if tty && !has("TERM") {
        out.push("TERM=xterm".into());
    }
    if !has("HOME") {
        out.push(format!("HOME={}", who.home));
    }
    out
}

/// chdir to the working directory (created if missing, as Docker does) and
/// check we really are inside the new root.
pub(crate) fn enter_workdir(dir: &str) -> Result<(), Fail> {
    let dir = if dir.is_empty() { "/" } else { dir };
    if !dir.starts_with('/') {
        return Err(Fail {
            code: 1,
            msg: format!("the working directory {dir:?} is not an absolute path"),
        });
    }
    let _ = fs::create_dir_all(dir);
    std::env::set_current_dir(dir).map_err(|e| Fail {
        code: 125,
        msg: format!("chdir to the working directory {dir}: {e}"),
    })?;
    // A leaked host directory fd as cwd shows as unreachable (CVE-2024-21626).
    match std::env::current_dir() {
        Ok(p) if p.starts_with("/") => Ok(()),
        _ => Err(Fail {
            code: 125,
            msg: format!("working directory {dir} is outside the container"),
        }),
    }
}

/// Find the command like execvp does, with Docker's messages and codes.
pub(crate) fn lookup(args: &[String], env: &[String]) -> Result<PathBuf, Fail> {
    let Some(cmd) = args.first() else {
        return Err(Fail {
            code: 1,
            msg: "no command specified: the image has no Cmd or Entrypoint; give one".into(),
        });
    };
    let check = |p: &Path| -> Result<bool, Fail> {
        match fs::metadata(p) {
            Ok(md) if md.is_file() && md.permissions().mode() & 0o111 != 0 => Ok(true),
            Ok(md) if md.is_dir() => Err(Fail {
                code: 126,
                msg: format!("exec: {cmd:?}: is a directory"),
            }),
            Ok(_) => Err(Fail {
                code: 126,
                msg: format!("exec: {cmd:?}: permission denied"),
            }),
            Err(_) => Ok(false),
        }
    };
    if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        return if check(&p)? {
            Ok(p)
        } else {
            Err(Fail {
                code: 127,
                msg: format!("exec: {cmd:?}: stat {cmd}: no such file or directory"),
            })
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let mut denied = None;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(cmd);
        match check(&p) {
            Ok(true) => return Ok(p),
            Ok(false) => {}
            Err(f) => denied = denied.or(Some(f)),
        }
    }
    Err(denied.unwrap_or(Fail {
        code: 127,
        msg: format!("exec: {cmd:?}: executable file not found in $PATH"),
    }))
}

fn cstrings(v: &[String]) -> Result<Vec<CString>, Fail> {
    v.iter()
        .map(|s| {
            CString::new(s.as_str()).map_err(|_| Fail {
                code: 1,
                msg: format!("argument or variable {s:?} contains a NUL byte"),
            })
        })
        .collect()
}

/// Give the command a clean signal state, as Docker does: ignored signals
/// survive execve (Rust's runtime ignores SIGPIPE in our own process), and so
/// does the mask.
fn reset_signals() {
    // SAFETY: plain signal-state syscalls on the current thread; signals
    // that cannot be changed (SIGKILL, SIGSTOP, libc-reserved) just fail.
    unsafe {
        for sig in 1..libc::SIGRTMAX() {
            libc::signal(sig, libc::SIG_DFL);
        }
        // libc refuses its own reserved signals (32, 33), which can still be
        // ignored when we get them: reset those with the raw syscall.
        #[cfg(target_arch = "x86_64")]
        for sig in 32..libc::SIGRTMIN() {
            #[repr(C)]
            struct KernelSigaction {
                handler: usize,
                flags: u64,
                restorer: usize,
                mask: u64,
            }
            let dfl = KernelSigaction {
                handler: libc::SIG_DFL,
                flags: 0,
                restorer: 0,
                mask: 0,
            };
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

/// execve; returns only on failure.
pub(crate) fn exec(
    path: &Path,
    args: &[String],
    env: &[String],
) -> Result<std::convert::Infallible, Fail> {
    let p = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Fail {
        code: 1,
        msg: "bad path".into(),
    })?;
    let argv_c = cstrings(args)?;
    let env_c = cstrings(env)?;
    let mut argv: Vec<*const libc::c_char> = argv_c.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env_c.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    reset_signals();
    explain!("exec", "execve {} {:?}", path.display(), args);
    // SAFETY: NUL-terminated arrays of valid C strings.
    unsafe { libc::execve(p.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    let err = std::io::Error::last_os_error();
    let code = if err.raw_os_error() == Some(libc::ENOENT) {
        127
    } else {
        126
    };
    Err(Fail {
        code,
        msg: format!("exec: {:?}: {err}", args[0]),
    })
}

/// `--init`: fork the command, then forward signals to it and reap every
/// child until it exits; exit with its status.
fn reaper(
    path: &Path,
    args: &[String],
    env: &[String],
    status_fd: RawFd,
) -> Result<std::convert::Infallible, Fail> {
    let err = crate::forward::fork_and_forward(status_fd, true, || {
        // SAFETY: a new session for the command, in the forked child.
        unsafe { libc::setsid() };
        match exec(path, args, env) {
            Ok(never) => match never {},
            Err(f) => die(status_fd, f.code, &f.msg),
        }
    });
    Err(anyhow::Error::from(err).context("fork the command").into())
}

/// `ip link set lo up` for a fresh network namespace.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: ioctl on a socket we own with an ifreq we initialise.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut rc = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            rc = libc::ioctl(s, libc::SIOCSIFFLAGS, &req);
        }
        let err = std::io::Error::last_os_error();
        libc::close(s);
        if rc != 0 {
            return Err(err);
        }
    }
    explain!("net", "lo up in the container's network namespace");
    Ok(())
}
