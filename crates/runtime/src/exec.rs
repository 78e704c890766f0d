//! `container exec`: a new process in a running container's namespaces and
//! cgroup, with its capabilities, seccomp profile and user.
//!
//! We fork; the child unshares its mount namespace and re-executes our
//! binary from a read-only bind as `__internal exec` (so the container can
//! never reach our binary writably). That process joins the cgroup, setns()
//! into the container, forks the command into its pid namespace, forwards
//! signals to it and exits with its status.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::init::{enter_workdir, final_env, lookup, prepare_process, Fail};
use crate::launch::{self, die, read_fd};
use crate::lifecycle::Runtime;
use crate::monitor::{self, Io};
use crate::state;
use crate::{logs, seccomp, user, Error};

/// What the user asked `exec` for.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub tty: bool,
    pub interactive: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct ExecConfig {
    pid: i32,
    pid_start: u64,
    cgroup_procs: Vec<std::path::PathBuf>,
    join_cgroupns: bool,
    join_netns: bool,
    args: Vec<String>,
    env: Vec<String>,
    workdir: String,
    user: String,
    hostname: String,
    tty: bool,
    caps: Vec<String>,
    seccomp: Option<String>,
    /// With `-t`: the socket to send the container-side pty master on.
    console_fd: Option<i32>,
    /// The container's rlimits, clamped as at `run` (Docker's exec gets them too).
    #[serde(default)]
    rlimits: Vec<crate::limits::Rlimit>,
}

impl Runtime {
    /// Run a command in a running container; returns its exit code.
    /// Must be called with no other threads.
    pub fn exec(&self, key: &str, opts: &ExecOptions) -> Result<i32, Error> {
        crate::lifecycle::ensure_single_threaded()?;
        let rec = self.containers.find(key)?;
        if !rec.state.is_running() {
            return Err(Error::Invalid(format!(
                "container {} is not running: start it before exec",
                rec.spec.name
            )));
        }
        if opts.args.is_empty() {
            return Err(Error::Invalid(
                "exec needs a command: minicompose container exec ID CMD...".into(),
            ));
        }
        let seccomp = if rec.spec.seccomp && !rec.spec.privileged {
            Some(hex::encode(seccomp::cached_program(
                &self.root.join("cache/seccomp"),
                &rec.spec.caps,
            )?))
        } else {
            None
        };
        let cg = self.cgroup(&rec.spec.id);
        let console = if opts.tty {
            Some(crate::console::pair()?)
        } else {
            None
        };
        let cfg = ExecConfig {
            pid: rec.state.pid,
            pid_start: rec.state.pid_start,
            cgroup_procs: cg.procs_files(),
            join_cgroupns: cg.is_v2(),
            join_netns: rec.spec.network != "host",
            args: opts.args.clone(),
            env: crate::spec::merge_env(&rec.spec.env, &opts.env),
            workdir: opts
                .workdir
                .clone()
                .unwrap_or_else(|| rec.spec.working_dir.clone()),
            user: opts.user.clone().unwrap_or_else(|| rec.spec.user.clone()),
            hostname: rec.spec.hostname.clone(),
            tty: opts.tty,
            caps: rec.spec.caps.clone(),
            seccomp,
            console_fd: console.as_ref().map(|(_, theirs)| theirs.as_raw_fd()),
            // `run` already warned about clamping.
            rlimits: crate::limits::clamp_to_host(&rec.spec.rlimits).0,
        };
        let payload = serde_json::to_vec(&cfg).context("serialize exec config")?;
        let (cfg_r, cfg_w) = launch::pipe()?;
        let (status_r, status_w) = launch::pipe()?;
        let devnull = std::fs::File::open("/dev/null").context("open /dev/null")?;
        let stdin = if opts.interactive && !opts.tty {
            0
        } else {
            devnull.as_raw_fd()
        };
        let (fd0, fd1, fd2) = if opts.tty {
            (
                devnull.as_raw_fd(),
                devnull.as_raw_fd(),
                devnull.as_raw_fd(),
            )
        } else {
            (stdin, 1, 2)
        };
        let exe = launch::SelfExe::new(&rec.dir)?;
        let args = [
            CString::new("minicompose").unwrap_or_default(),
            CString::new("__internal").unwrap_or_default(),
            CString::new("exec").unwrap_or_default(),
            CString::new(cfg_r.as_raw_fd().to_string()).unwrap_or_default(),
            CString::new(status_w.as_raw_fd().to_string()).unwrap_or_default(),
        ];
        // SAFETY: single-threaded by contract; the child only makes raw syscalls.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(anyhow::Error::from(std::io::Error::last_os_error())
                .context("fork")
                .into());
        }
        if pid == 0 {
            // SAFETY: raw syscalls in the child before exec.
            unsafe {
                for (src, dst) in [(fd0, 0), (fd1, 1), (fd2, 2)] {
                    if src != dst {
                        libc::dup2(src, dst);
                    }
                }
                for fd in [cfg_r.as_raw_fd(), status_w.as_raw_fd()] {
                    libc::fcntl(fd, libc::F_SETFD, 0);
                }
                if let Some((_, theirs)) = &console {
                    libc::fcntl(theirs.as_raw_fd(), libc::F_SETFD, 0);
                }
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    die(status_w.as_raw_fd(), 125, "unshare the mount namespace");
                }
            }
            launch::reexec_readonly(&exe, &args, status_w.as_raw_fd());
        }
        drop(cfg_r);
        drop(status_w);
        let console = console.map(|(ours, _theirs)| ours);
        let sent = std::fs::File::from(cfg_w).write_all(&payload);
        let status = sent
            .context("send the exec config")
            .map_err(Error::from)
            .and_then(|_| launch::read_status(status_r));
        if let Err(e) = status {
            // SAFETY: reap our child, which exits after reporting.
            unsafe {
                let mut st = 0;
                libc::waitpid(pid, &mut st, 0);
            }
            return Err(e);
        }
        let pty_master = match &console {
            Some(sock) => match crate::console::receive(sock) {
                Ok(m) => Some(m),
                Err(e) => {
                    // SAFETY: stop and reap our child: it has no terminal.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        let mut st = 0;
                        libc::waitpid(pid, &mut st, 0);
                    }
                    return Err(e.into());
                }
            },
            None => None,
        };
        let _raw = if opts.tty && opts.interactive {
            crate::lifecycle::raw_terminal()
        } else {
            None
        };
        let io = Io {
            out: None,
            err: None,
            pty: pty_master,
            echo: true,
            stdin_to_pty: opts.interactive,
            forward_signals: true,
        };
        let mut sink = logs::Writer::discard();
        Ok(monitor::supervise(pid, io, &mut sink))
    }
}

fn open_ns(pid: i32, name: &str) -> Result<OwnedFd, Fail> {
    let f = std::fs::File::open(format!("/proc/{pid}/ns/{name}"))
        .with_context(|| format!("open the container's {name} namespace"))?;
    Ok(OwnedFd::from(f))
}

/// Entry point of `__internal exec <config fd> <status fd>`.
pub fn main(config_fd: RawFd, status_fd: RawFd) -> ! {
    // SAFETY: keep the status fd away from the command.
    unsafe { libc::fcntl(status_fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    crate::explain::route_to_fd(crate::explain::SILENT);
    let cfg: ExecConfig = match read_fd(config_fd)
        .map_err(anyhow::Error::from)
        .and_then(|b| serde_json::from_slice(&b).context("decode exec config"))
    {
        Ok(c) => c,
        Err(e) => die(status_fd, 125, &format!("{e:#}")),
    };
    if let Err(f) = join(&cfg) {
        die(status_fd, f.code, &f.msg);
    }
    // Fork into the pid namespace we joined; forward signals and pass the
    // command's status on.
    crate::forward::fork_and_forward_or_die(status_fd, false, || match command(&cfg) {
        Ok(never) => match never {},
        Err(f) => die(status_fd, f.code, &f.msg),
    })
}

fn join(cfg: &ExecConfig) -> Result<(), Fail> {
    if state::proc_start_time(cfg.pid) != Some(cfg.pid_start) {
        return Err(Fail {
            code: 1,
            msg: "the container is not running".into(),
        });
    }
    let mut names = vec!["ipc", "uts", "pid"];
    if cfg.join_netns {
        names.push("net");
    }
    if cfg.join_cgroupns {
        names.push("cgroup");
    }
    names.push("mnt");
    // Open them all before entering any (paths change once we setns).
    let fds: Vec<(&str, OwnedFd)> = names
        .iter()
        .map(|n| open_ns(cfg.pid, n).map(|fd| (*n, fd)))
        .collect::<Result<_, _>>()?;
    for procs in &cfg.cgroup_procs {
        std::fs::write(procs, "0").with_context(|| format!("join cgroup {}", procs.display()))?;
    }
    for (name, fd) in fds {
        // SAFETY: setns on a namespace fd we opened.
        if unsafe { libc::setns(fd.as_raw_fd(), 0) } != 0 {
            return Err(anyhow::Error::from(std::io::Error::last_os_error())
                .context(format!("enter the {name} namespace"))
                .into());
        }
    }
    Ok(())
}

fn command(cfg: &ExecConfig) -> Result<std::convert::Infallible, Fail> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok();
    let group = std::fs::read_to_string("/etc/group").ok();
    let who = user::resolve(&cfg.user, passwd.as_deref(), group.as_deref())?;
    let env = final_env(&cfg.env, &cfg.hostname, &who, cfg.tty);
    enter_workdir(&cfg.workdir)?;
    let path = lookup(&cfg.args, &env)?;
    let bpf = match &cfg.seccomp {
        Some(h) => Some(hex::decode(h).context("decode the seccomp program")?),
        None => None,
    };
    if let Some(sock) = cfg.console_fd {
        crate::console::open_and_send(sock, who.uid, who.gid)?;
        // SAFETY: done with the socket.
        unsafe { libc::close(sock) };
    }
    crate::limits::apply_rlimits(&cfg.rlimits)?;
    prepare_process(cfg.tty, &cfg.caps, bpf.as_deref(), &who)?;
    match crate::init::exec(&path, &cfg.args, &env) {
        Ok(n) => match n {},
        Err(f) => Err(f),
    }
}
