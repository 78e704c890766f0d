//! Starting a container, parent side.
//!
//! The caller must have no other threads (we clone without exec). Steps:
//! clone(2) with the namespace flags; the child makes its mounts slaves,
//! bind-mounts our own binary read-only onto `<dir>/.init` (inside its new
//! mount namespace only) and re-executes it as `__internal init`, so the
//! container can never reach our binary writably (CVE-2019-5736). The init
//! reads an [`InitConfig`] from a pipe, builds the container and execs the
//! command; it reports errors (and `--explain` steps) on a status pipe whose
//! EOF means "exec succeeded".

use std::ffi::CString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::spec::ContainerSpec;
use crate::Error;

/// Everything the init needs, sent as JSON on a pipe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitConfig {
    pub spec: ContainerSpec,
    pub container_dir: PathBuf,
    /// `cgroup.procs` files the parent writes the init's pid to.
    pub cgroup_procs: Vec<PathBuf>,
    pub cgroup_v2: bool,
    /// v1: (name under /sys/fs/cgroup, host directory of our cgroup) to bind read-only.
    pub cgroup_v1_binds: Vec<(String, PathBuf)>,
    /// Compiled seccomp program (struct sock_filter bytes, hex), if any.
    pub seccomp: Option<String>,
    pub explain: bool,
    /// Skip overlay and use the copied rootfs (MINICOMPOSE_NO_OVERLAY=1, for tests).
    #[serde(default)]
    pub no_overlay: bool,
    /// With `-t`: the socket (fd number in the init) to send the pty master on.
    #[serde(default)]
    pub console_fd: Option<i32>,
    /// The spec's rlimits after clamping to this host (set by [`start`]).
    #[serde(default)]
    pub rlimits: Vec<crate::limits::Rlimit>,
}

/// The network step, run by the parent after the container's namespaces
/// exist and before its process execs (the bridge lives elsewhere).
pub trait NetworkHook {
    /// Whether this hook has anything to do (else the init does not wait).
    fn needed(&self) -> bool;
    /// Configure the container whose init has host pid `pid`.
    fn setup(&mut self, pid: i32) -> Result<(), Error>;
}

/// No network step (`--network none|host`).
pub struct NoNetwork;

impl NetworkHook for NoNetwork {
    fn needed(&self) -> bool {
        false
    }
    fn setup(&mut self, _pid: i32) -> Result<(), Error> {
        Ok(())
    }
}

/// The container's standard streams (fds the child dups onto 0, 1, 2).
#[derive(Debug, Clone, Copy)]
pub struct Stdio {
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2")?;
    Ok((r, w))
}

/// The path the child binds our binary onto.
pub fn init_exe_path(container_dir: &std::path::Path) -> PathBuf {
    container_dir.join(".init")
}

/// Messages on the status pipe: `E<area>\t<text>` (explain), `W<text>`
/// (a warning for the user), `X<code>\t<text>` (fatal; the process exits).
pub(crate) fn read_status(fd: OwnedFd) -> Result<Vec<String>, Error> {
    let mut warnings = Vec::new();
    let reader = BufReader::new(std::fs::File::from(fd));
    for line in reader.lines() {
        let line = line.context("read the container's status")?;
        if let Some(rest) = line.strip_prefix('E') {
            let (area, rest) = rest.split_once('\t').unwrap_or(("runtime", rest));
            match rest.split_once('\t') {
                Some((ns, text)) if ns.parse::<u64>().is_ok() => {
                    crate::explain::emit_from_init(area, ns.parse().unwrap_or(0), text)
                }
                _ => crate::explain::emit(area, rest),
            }
        } else if let Some(rest) = line.strip_prefix('W') {
            warnings.push(rest.to_string());
        } else if let Some(rest) = line.strip_prefix('X') {
            let (code, text) = rest.split_once('\t').unwrap_or(("125", rest));
            let code: i32 = code.parse().unwrap_or(125);
            return Err(match code {
                1 => Error::Invalid(text.to_string()),
                126 | 127 => Error::Start {
                    code,
                    message: text.to_string(),
                },
                _ => Error::Other(anyhow::anyhow!("{text}")),
            });
        }
    }
    Ok(warnings)
}

/// Write a fatal status line and exit (child side, before or without exec).
pub(crate) fn die(status_fd: RawFd, code: i32, msg: &str) -> ! {
    let line = format!("X{code}\t{}\n", msg.replace('\n', " "));
    // SAFETY: write a buffer we own; _exit never returns.
    unsafe {
        libc::write(status_fd, line.as_ptr().cast(), line.len());
        libc::_exit(code)
    }
}

/// In the freshly cloned child: slave mounts, read-only bind of our binary,
/// exec it as `__internal <cmd> <fds…>`. Never returns.
pub(crate) fn reexec_readonly(exe: &SelfExe, args: &[CString], status_fd: RawFd) -> ! {
    let exe_target = &exe.target;
    // SAFETY: only raw syscalls between clone/fork and exec.
    unsafe {
        let none = c"none";
        if libc::mount(
            none.as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        ) != 0
        {
            die(
                status_fd,
                125,
                &format!("make mounts private: {}", std::io::Error::last_os_error()),
            );
        }
        if libc::mount(
            exe.source.as_ptr(),
            exe_target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        ) != 0
        {
            die(
                status_fd,
                125,
                &format!("bind our binary: {}", std::io::Error::last_os_error()),
            );
        }
        let ro =
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NODEV | libc::MS_NOSUID;
        if libc::mount(
            std::ptr::null(),
            exe_target.as_ptr(),
            std::ptr::null(),
            ro,
            std::ptr::null(),
        ) != 0
        {
            die(
                status_fd,
                125,
                &format!(
                    "make our binary read-only: {}",
                    std::io::Error::last_os_error()
                ),
            );
        }
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        libc::execve(exe_target.as_ptr(), argv.as_ptr(), envp.as_ptr());
        die(
            status_fd,
            125,
            &format!("exec our init: {}", std::io::Error::last_os_error()),
        )
    }
}

/// Our binary (by path: /proc/self/exe's mount belongs to the parent's
/// mount namespace and cannot be bind-mounted from a new one) and the file
/// it gets bound onto.
pub(crate) struct SelfExe {
    pub source: CString,
    pub target: CString,
}

impl SelfExe {
    pub(crate) fn new(container_dir: &std::path::Path) -> Result<SelfExe, Error> {
        let target = init_exe_path(container_dir);
        if !target.exists() {
            std::fs::File::create(&target)
                .with_context(|| format!("create {}", target.display()))?;
        }
        let source = std::env::current_exe().context("find our own binary")?;
        Ok(SelfExe {
            source: CString::new(source.as_os_str().as_encoded_bytes()).context("binary path")?,
            target: CString::new(target.as_os_str().as_encoded_bytes()).context("init path")?,
        })
    }
}

fn clear_cloexec(fd: RawFd) {
    // SAFETY: fcntl on an fd we hold.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
}

/// A started container: its init's host pid and the warnings it reported.
pub struct Started {
    pub pid: i32,
    pub warnings: Vec<String>,
}

/// Clone the container's init and wait until it has exec'd the command.
pub fn start(cfg: &InitConfig, stdio: Stdio, hook: &mut dyn NetworkHook) -> Result<Started, Error> {
    let exe = SelfExe::new(&cfg.container_dir)?;
    let (spec_r, spec_w) = pipe()?;
    let (status_r, status_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    // Clamp here, not in the init: the warnings must reach the user.
    let (rlimits, mut clamp_warnings) = crate::limits::clamp_to_host(&cfg.spec.rlimits);
    let payload = serde_json::to_vec(&InitConfig {
        rlimits,
        ..cfg.clone()
    })
    .context("serialize init config")?;

    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if cfg.spec.network != "host" {
        flags |= libc::CLONE_NEWNET;
    }
    crate::explain!(
        "clone",
        "clone(CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWUTS|CLONE_NEWIPC{}|SIGCHLD){}",
        if flags & libc::CLONE_NEWNET != 0 {
            "|CLONE_NEWNET"
        } else {
            ""
        },
        if cfg.cgroup_v2 {
            "; the child unshares CLONE_NEWCGROUP once it is in its cgroup"
        } else {
            ""
        }
    );
    let fd_arg = |fd: RawFd| CString::new(fd.to_string()).unwrap_or_default();
    let args = [
        CString::new("minicompose").unwrap_or_default(),
        CString::new("__internal").unwrap_or_default(),
        CString::new("init").unwrap_or_default(),
        fd_arg(spec_r.as_raw_fd()),
        fd_arg(status_w.as_raw_fd()),
        fd_arg(go_r.as_raw_fd()),
    ];

    crate::explain::mark_clone();
    // SAFETY: the process is single-threaded (our contract); the child only
    // makes raw syscalls until it execs.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    } as i32;
    if pid < 0 {
        return Err(anyhow::Error::from(std::io::Error::last_os_error())
            .context("clone the container's init")
            .into());
    }
    if pid == 0 {
        unsafe {
            for (src, dst) in [(stdio.stdin, 0), (stdio.stdout, 1), (stdio.stderr, 2)] {
                if src != dst && libc::dup2(src, dst) < 0 {
                    die(status_w.as_raw_fd(), 125, "set up stdio");
                }
                if src == dst {
                    clear_cloexec(dst);
                }
            }
        }
        for fd in [spec_r.as_raw_fd(), status_w.as_raw_fd(), go_r.as_raw_fd()] {
            clear_cloexec(fd);
        }
        if let Some(fd) = cfg.console_fd {
            clear_cloexec(fd);
        }
        reexec_readonly(&exe, &args, status_w.as_raw_fd());
    }
    crate::explain!("clone", "container init has host pid {pid}");
    drop(spec_r);
    drop(status_w);
    drop(go_r);
    let result = (|| -> Result<Vec<String>, Error> {
        let mut w = std::fs::File::from(spec_w);
        w.write_all(&payload).context("send the init its config")?;
        drop(w);
        for procs in &cfg.cgroup_procs {
            crate::explain!("cgroup", "join: write {pid} to {}", procs.display());
            std::fs::write(procs, pid.to_string())
                .with_context(|| format!("put the container in cgroup {}", procs.display()))?;
        }
        if hook.needed() {
            hook.setup(pid)?;
        }
        let mut go = std::fs::File::from(go_w);
        let _ = go.write_all(b"g");
        drop(go);
        read_status(status_r)
    })();
    match result {
        Ok(warnings) => {
            clamp_warnings.extend(warnings);
            Ok(Started {
                pid,
                warnings: clamp_warnings,
            })
        }
        Err(e) => {
            // SAFETY: our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                let mut st = 0;
                libc::waitpid(pid, &mut st, 0);
            }
            Err(e)
        }
    }
}

/// Read a whole fd (the init's config).
pub(crate) fn read_fd(fd: RawFd) -> std::io::Result<Vec<u8>> {
    // SAFETY: the fd number was handed to us by our parent for this purpose.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(buf)
}
