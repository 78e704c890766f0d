//! The container lifecycle on top of the pieces: create the on-disk record,
//! start it (foreground or under a detached monitor), stop, kill, remove.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cgroups::{self, Cgroup, Layout};
use crate::launch::{self, InitConfig, NetworkHook, Stdio};
use crate::monitor::{self, Io};
use crate::spec::ContainerSpec;
use crate::state::{self, Containers, Record, State, Status};
use crate::{logs, seccomp, Error};

/// Per-container /etc files, written before the container starts.
#[derive(Debug, Clone, Default)]
pub struct EtcFiles {
    pub hostname: String,
    pub hosts: String,
    pub resolv_conf: String,
}

impl EtcFiles {
    /// Docker's defaults for `--network none|host` (the network hook may
    /// rewrite hosts and resolv.conf in place later).
    pub fn defaults(hostname: &str, network: &str) -> EtcFiles {
        let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        if network == "host" {
            return EtcFiles {
                hostname: format!("{hostname}\n"),
                hosts: fs::read_to_string("/etc/hosts")
                    .unwrap_or_else(|_| "127.0.0.1\tlocalhost\n".into()),
                resolv_conf: host_resolv,
            };
        }
        // A private netns cannot reach the host's loopback resolvers.
        let resolv: String = host_resolv
            .lines()
            .filter(|l| {
                let mut w = l.split_whitespace();
                !(w.next() == Some("nameserver")
                    && w.next()
                        .is_some_and(|a| a.starts_with("127.") || a == "::1"))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        EtcFiles {
            hostname: format!("{hostname}\n"),
            hosts: "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
                    fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
                    ff02::2\tip6-allrouters\n"
                .to_string(),
            resolv_conf: resolv,
        }
    }
}

/// How a foreground container is attached to our terminal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attach {
    pub tty: bool,
    pub stdin: bool,
}

/// Access to the containers of one `--root`.
pub struct Runtime {
    pub root: PathBuf,
    pub containers: Containers,
    pub layout: Layout,
}

/// We fork and clone without exec: make sure no other thread exists (an
/// image pull's runtime may take a moment to wind down its threads).
pub fn ensure_single_threaded() -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let n = fs::read_dir("/proc/self/task")
            .map(|d| d.count())
            .unwrap_or(1);
        if n <= 1 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Other(anyhow::anyhow!(
                "internal error: {n} threads are running; containers are started from a single-threaded process"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Refuse early, with the fix, when not root.
pub fn require_root() -> Result<(), Error> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::Invalid(
            "containers need root: run minicompose with sudo (or as root)".into(),
        ));
    }
    Ok(())
}

impl Runtime {
    pub fn open(root: &Path) -> Runtime {
        Runtime {
            root: root.to_path_buf(),
            containers: Containers::new(root),
            layout: cgroups::detect(),
        }
    }

    pub fn cgroup(&self, id: &str) -> Cgroup {
        Cgroup::for_id(&self.layout, id)
    }

    /// Write the container's directory, files, config and a "created" state.
    /// Under a lock so two runs cannot take one name.
    pub fn create(&self, spec: &ContainerSpec, files: &EtcFiles) -> Result<Record, Error> {
        // Bad limits fail before anything exists on disk.
        crate::limits::validate(&spec.rlimits, &spec.sysctls, &spec.network)?;
        let _lock = self.containers.lock()?;
        if let Some(other) = self.containers.name_in_use(&spec.name) {
            return Err(Error::Invalid(format!(
                "the container name \"/{}\" is already in use by container \"{}\": remove (or rename) that container to reuse the name",
                spec.name, other
            )));
        }
        let dir = self.containers.dir(&spec.id);
        let result = (|| -> Result<(), Error> {
            for sub in ["upper", "work", "rootfs"] {
                fs::create_dir_all(dir.join(sub))
                    .with_context(|| format!("create {}", dir.join(sub).display()))?;
            }
            fs::write(dir.join("hostname"), &files.hostname).context("write hostname")?;
            fs::write(dir.join("hosts"), &files.hosts).context("write hosts")?;
            fs::write(dir.join("resolv.conf"), &files.resolv_conf).context("write resolv.conf")?;
            // The log exists from the start, so `logs -f` right after `run -d` finds it.
            fs::write(logs::log_path(&dir), b"").context("create the log")?;
            self.containers.write_state(&spec.id, &State::default())?;
            // The config last: a directory without it is not a container.
            self.containers.write_spec(spec)?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        self.containers.read(&spec.id)
    }

    fn init_config(&self, rec: &Record, cg: &Cgroup) -> Result<InitConfig, Error> {
        let seccomp = if rec.spec.seccomp && !rec.spec.privileged {
            let bytes = seccomp::cached_program(&self.root.join("cache/seccomp"), &rec.spec.caps)?;
            Some(hex::encode(bytes))
        } else {
            None
        };
        let cgroup_v1_binds = match &self.layout {
            Layout::V2(_) => Vec::new(),
            Layout::V1 { controllers, .. } => {
                let mut v: Vec<(String, PathBuf)> = Vec::new();
                for mnt in controllers.values() {
                    let name = mnt
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    if !v.iter().any(|(n, _)| *n == name) {
                        v.push((name, mnt.join(cgroups::PARENT).join(&rec.spec.id)));
                    }
                }
                v
            }
        };
        Ok(InitConfig {
            spec: rec.spec.clone(),
            container_dir: rec.dir.clone(),
            cgroup_procs: cg.procs_files(),
            cgroup_v2: cg.is_v2(),
            cgroup_v1_binds,
            seccomp,
            console_fd: None,
            no_overlay: std::env::var_os("MINICOMPOSE_NO_OVERLAY").is_some_and(|v| v == "1"),
            explain: tracing::enabled!(target: "explain::runtime", tracing::Level::INFO),
            rlimits: Vec::new(),
        })
    }

    /// Undo a container whose start failed: cgroup and directory.
    pub fn discard(&self, id: &str) {
        let _ = self.cgroup(id).remove();
        let _ = fs::remove_dir_all(self.containers.dir(id));
    }

    fn mark_running(&self, rec: &Record, pid: i32) -> Result<(), Error> {
        let st = State {
            status: Status::Running,
            pid,
            pid_start: state::proc_start_time(pid).unwrap_or(0),
            monitor_pid: std::process::id() as i32,
            started_at: state::now_rfc3339(),
            ..Default::default()
        };
        self.containers.write_state(&rec.spec.id, &st)
    }

    /// Record the exit and free the cgroup (or remove everything with --rm).
    fn finish(&self, rec: &Record, code: i32, teardown: &mut dyn FnMut(&str)) {
        let cg = self.cgroup(&rec.spec.id);
        let oom = cg.oom_killed();
        let mut st = self
            .containers
            .read(&rec.spec.id)
            .map(|r| r.state)
            .unwrap_or_default();
        st.status = Status::Exited;
        st.pid = 0;
        st.exit_code = code;
        st.oom_killed = oom;
        st.finished_at = state::now_rfc3339();
        let _ = self.containers.write_state(&rec.spec.id, &st);
        let _ = cg.remove();
        teardown(&rec.spec.id);
        if rec.spec.auto_remove {
            let _ = fs::remove_dir_all(&rec.dir);
        }
    }

    /// Run in the foreground: our terminal is attached, we are the monitor.
    /// Returns the container's exit code. Must be called with no other threads.
    pub fn run_foreground(
        &self,
        rec: &Record,
        attach: Attach,
        hook: &mut dyn NetworkHook,
        teardown: &mut dyn FnMut(&str),
    ) -> Result<i32, Error> {
        ensure_single_threaded()?;
        let cg = match Cgroup::create(&self.layout, &rec.spec.id, &rec.spec.resources) {
            Ok(c) => c,
            Err(e) => {
                self.discard(&rec.spec.id);
                return Err(e);
            }
        };
        let started = (|| {
            let mut cfg = self.init_config(rec, &cg)?;
            let devnull = fs::File::open("/dev/null").context("open /dev/null")?;
            let mut io = Io {
                out: None,
                err: None,
                pty: None,
                echo: true,
                stdin_to_pty: false,
                forward_signals: true,
            };
            let mut keep: Vec<OwnedFd> = Vec::new();
            let mut console: Option<OwnedFd> = None;
            let stdio = if attach.tty {
                let (ours, theirs) = crate::console::pair()?;
                cfg.console_fd = Some(theirs.as_raw_fd());
                console = Some(ours);
                keep.push(theirs);
                io.stdin_to_pty = attach.stdin;
                let n = devnull.as_raw_fd();
                Stdio {
                    stdin: n,
                    stdout: n,
                    stderr: n,
                }
            } else {
                let (out_r, out_w) = launch::pipe()?;
                let (err_r, err_w) = launch::pipe()?;
                io.out = Some(out_r);
                io.err = Some(err_r);
                let stdin = if attach.stdin { 0 } else { devnull.as_raw_fd() };
                let st = Stdio {
                    stdin,
                    stdout: out_w.as_raw_fd(),
                    stderr: err_w.as_raw_fd(),
                };
                keep.push(out_w);
                keep.push(err_w);
                st
            };
            let started = launch::start(&cfg, stdio, hook)?;
            drop(keep);
            if let Some(sock) = console {
                io.pty = Some(crate::console::receive(&sock)?);
            }
            Ok::<_, Error>((started, io))
        })();
        let (started, io) = match started {
            Ok(s) => s,
            Err(e) => {
                teardown(&rec.spec.id);
                self.discard(&rec.spec.id);
                return Err(e);
            }
        };
        for w in &started.warnings {
            eprintln!("WARNING: {w}");
        }
        self.mark_running(rec, started.pid)?;
        let _raw = if attach.tty && attach.stdin {
            raw_terminal()
        } else {
            None
        };
        let mut log = logs::Writer::open(&rec.dir);
        let code = monitor::supervise(started.pid, io, &mut log);
        drop(_raw);
        self.finish(rec, code, teardown);
        Ok(code)
    }

    /// Start under a detached monitor process; returns once the command
    /// runs (or failed to start). Must be called with no other threads.
    pub fn run_detached(
        &self,
        rec: &Record,
        keep_stdin_open: bool,
        hook: &mut dyn NetworkHook,
        teardown: &mut dyn FnMut(&str),
    ) -> Result<Vec<String>, Error> {
        ensure_single_threaded()?;
        let (rep_r, rep_w) = launch::pipe()?;
        // Double fork: the monitor must not be our child (a long-lived
        // caller would have to reap it), so an intermediate exits at once.
        // SAFETY: single-threaded by contract; the children continue in Rust.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            self.discard(&rec.spec.id);
            return Err(anyhow::Error::from(std::io::Error::last_os_error())
                .context("fork the monitor")
                .into());
        }
        if pid > 0 {
            drop(rep_w);
            // SAFETY: reap the intermediate, which exits right after forking.
            unsafe {
                let mut st = 0;
                libc::waitpid(pid, &mut st, 0);
            }
            // The monitor reports start errors as status lines; EOF = running.
            return launch::read_status(rep_r);
        }
        drop(rep_r);
        // SAFETY: new session (no terminal signals reach the monitor), then
        // the second fork; the intermediate leaves without running destructors.
        unsafe {
            libc::setsid();
            match libc::fork() {
                0 => {}
                n => libc::_exit(if n < 0 { 125 } else { 0 }),
            }
        }
        // The monitor outlives the CLI: keep none of the fds the caller
        // inherited or opened (a caller's pipe would never see EOF).
        let keep = rep_w.as_raw_fd() as u32;
        // SAFETY: closing fds nothing in this process will use again (we _exit).
        unsafe {
            if keep > 3 {
                libc::syscall(libc::SYS_close_range, 3u32, keep - 1, 0u32);
            }
            libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0u32);
        }
        let code = self.monitor_child(rec, keep_stdin_open, hook, teardown, rep_w);
        // SAFETY: leave without running the caller's destructors.
        unsafe { libc::_exit(code) }
    }

    fn monitor_child(
        &self,
        rec: &Record,
        keep_stdin_open: bool,
        hook: &mut dyn NetworkHook,
        teardown: &mut dyn FnMut(&str),
        report: OwnedFd,
    ) -> i32 {
        let fail = |code: i32, msg: String| {
            launch::die(report.as_raw_fd(), code, &msg);
        };
        // From here on nothing may write to the CLI's terminal or pipes: a
        // closed one would kill us (and orphan the container). Explain
        // events go up the report pipe while the CLI listens.
        let explain_on = tracing::enabled!(target: "explain::runtime", tracing::Level::INFO);
        let relay = tracing::subscriber::set_default(crate::relay::Relay::new(
            report.as_raw_fd(),
            explain_on,
        ));
        detach_stdio();
        let cg = match Cgroup::create(&self.layout, &rec.spec.id, &rec.spec.resources) {
            Ok(c) => c,
            Err(e) => {
                self.discard(&rec.spec.id);
                fail(if e.is_user_error() { 1 } else { 125 }, e.to_string());
                return 125;
            }
        };
        let started = (|| {
            let mut cfg = self.init_config(rec, &cg)?;
            let devnull = fs::File::open("/dev/null").context("open /dev/null")?;
            let (out_r, out_w) = launch::pipe()?;
            let (err_r, err_w) = launch::pipe()?;
            let (in_r, in_w) = launch::pipe()?;
            let stdin = if keep_stdin_open {
                in_r.as_raw_fd()
            } else {
                devnull.as_raw_fd()
            };
            let mut stdio = Stdio {
                stdin,
                stdout: out_w.as_raw_fd(),
                stderr: err_w.as_raw_fd(),
            };
            // `-dt`: a pty from the container's devpts; we hold the master
            // (nobody types into it, so a shell waits: docker's `-dit`).
            let console = if rec.spec.tty {
                let (ours, theirs) = crate::console::pair()?;
                cfg.console_fd = Some(theirs.as_raw_fd());
                let n = devnull.as_raw_fd();
                stdio = Stdio {
                    stdin: n,
                    stdout: n,
                    stderr: n,
                };
                Some((ours, theirs))
            } else {
                None
            };
            let started = launch::start(&cfg, stdio, hook)?;
            let pty = match console {
                Some((ours, _theirs)) => Some(crate::console::receive(&ours)?),
                None => None,
            };
            Ok::<_, Error>((started, out_r, err_r, (in_w, pty)))
        })();
        let (started, out_r, err_r, (_stdin_keep, pty)) = match started {
            Ok(s) => s,
            Err(e) => {
                teardown(&rec.spec.id);
                self.discard(&rec.spec.id);
                let (code, msg) = match &e {
                    Error::Start { code, message } => (*code, message.clone()),
                    Error::Invalid(m) => (1, m.clone()),
                    Error::Other(o) => (125, format!("{o:#}")),
                };
                fail(code, msg);
                return code;
            }
        };
        let _ = self.mark_running(rec, started.pid);
        for w in &started.warnings {
            let line = format!("W{w}\n");
            // SAFETY: write to our report pipe.
            unsafe { libc::write(report.as_raw_fd(), line.as_ptr().cast(), line.len()) };
        }
        // Stop relaying (the pipe closes next), then report success (EOF).
        drop(relay);
        drop(report);
        let io = Io {
            out: Some(out_r),
            err: Some(err_r),
            pty,
            echo: false,
            stdin_to_pty: false,
            forward_signals: false,
        };
        let mut log = logs::Writer::open(&rec.dir);
        let code = monitor::supervise(started.pid, io, &mut log);
        self.finish(rec, code, teardown);
        0
    }

    /// Wait until the container is no longer running and its exit is recorded.
    pub fn wait_exit(&self, id: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.containers.read(id) {
                Ok(r) => {
                    let gone = !r.state.is_running();
                    let recorded = r.state.status != Status::Running;
                    let monitor_gone = r.state.monitor_pid <= 0
                        || state::proc_start_time(r.state.monitor_pid).is_none();
                    if gone && (recorded || monitor_gone) {
                        return true;
                    }
                }
                Err(_) => return true, // removed (--rm)
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Processes left in a container whose record says it is not running
    /// (its monitor died): SIGKILL them and wait (at most 5 s).
    fn kill_leftovers(&self, rec: &Record) -> Result<(), Error> {
        let cg = self.cgroup(&rec.spec.id);
        if cg.all_pids().is_empty() {
            return Ok(());
        }
        tracing::info!(target: "explain::runtime", "container {} is not running but its cgroup still has processes (its monitor died): SIGKILL them", rec.spec.name);
        cg.kill_all(Duration::from_secs(5))?;
        Ok(())
    }

    /// Send a signal to the container's PID 1 (or, if the container's
    /// monitor died, to whatever is left in its cgroup).
    pub fn kill(&self, key: &str, sig: i32) -> Result<Record, Error> {
        let rec = self.containers.find(key)?;
        if !rec.state.is_running() {
            let leftovers = self.cgroup(&rec.spec.id).all_pids();
            if !leftovers.is_empty() {
                if sig == libc::SIGKILL {
                    self.kill_leftovers(&rec)?;
                } else {
                    for pid in leftovers {
                        tracing::info!(target: "explain::runtime", "kill({pid}, {sig}): left in the container's cgroup");
                        // SAFETY: a pid the kernel lists in our container's cgroup.
                        unsafe { libc::kill(pid, sig) };
                    }
                }
                return Ok(rec);
            }
            return Err(Error::Invalid(format!(
                "container {} is not running",
                rec.spec.name
            )));
        }
        tracing::info!(target: "explain::runtime", "kill({}, {sig})", rec.state.pid);
        // SAFETY: pid checked against its start time just above.
        if unsafe { libc::kill(rec.state.pid, sig) } != 0 {
            return Err(anyhow::Error::from(std::io::Error::last_os_error())
                .context("kill")
                .into());
        }
        Ok(rec)
    }

    /// The stop signal, `timeout` seconds of grace, then SIGKILL.
    pub fn stop(&self, key: &str, timeout: Option<u64>) -> Result<Record, Error> {
        let rec = self.containers.find(key)?;
        if !rec.state.is_running() {
            self.kill_leftovers(&rec)?;
            return Ok(rec);
        }
        let grace = timeout.unwrap_or(rec.spec.stop_timeout);
        let _ = self.kill(&rec.spec.id, rec.spec.stop_signal);
        if !self.wait_exit(&rec.spec.id, Duration::from_secs(grace)) {
            tracing::info!(target: "explain::runtime", "grace period of {grace}s over: SIGKILL");
            let _ = self.kill(&rec.spec.id, libc::SIGKILL);
            if !self.wait_exit(&rec.spec.id, Duration::from_secs(10)) {
                return Err(Error::Other(anyhow::anyhow!(
                    "container {} did not exit after SIGKILL",
                    rec.spec.name
                )));
            }
        }
        Ok(rec)
    }

    /// Remove a container (killing it first with `force`). `teardown` undoes
    /// its network attachment.
    pub fn remove(
        &self,
        key: &str,
        force: bool,
        teardown: &mut dyn FnMut(&str),
    ) -> Result<Record, Error> {
        let rec = self.containers.find(key)?;
        if rec.state.is_running() {
            if !force {
                return Err(Error::Invalid(format!(
                    "cannot remove container {}: container is running: stop the container before removing or force remove (-f)",
                    rec.spec.name
                )));
            }
            let _ = self.kill(&rec.spec.id, libc::SIGKILL);
            if !self.wait_exit(&rec.spec.id, Duration::from_secs(10)) {
                return Err(Error::Other(anyhow::anyhow!(
                    "container {} did not exit after SIGKILL",
                    rec.spec.name
                )));
            }
        }
        // Not running, yet processes may be left (see kill_leftovers): with
        // or without -f, nothing may outlive its container.
        self.kill_leftovers(&rec)?;
        teardown(&rec.spec.id);
        self.cgroup(&rec.spec.id).remove()?;
        if rec.dir.exists() {
            fs::remove_dir_all(&rec.dir)
                .with_context(|| format!("remove {}", rec.dir.display()))?;
        }
        Ok(rec)
    }
}

/// Point fds 0, 1 and 2 at /dev/null (the detached monitor's).
fn detach_stdio() {
    // SAFETY: SIGPIPE ignored (a write to a gone reader fails instead of
    // killing us); dup2 onto our standard fds.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
}

/// Put our terminal in raw mode (for `-it`) until the guard drops.
pub(crate) fn raw_terminal() -> Option<impl Drop> {
    RawTerminal::enter()
}

/// Our terminal in raw mode for `-it`, restored on drop.
struct RawTerminal {
    saved: nix::sys::termios::Termios,
}

impl RawTerminal {
    fn enter() -> Option<RawTerminal> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}
