//! The DNS server's control socket (`<root>/run/net/dns.sock`): a client
//! writes `reload\n` and waits for `ok\n`, so a container's name is served
//! before its process starts. Starting the server when none answers.

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::state::Store;
use crate::Error;

/// How to start the server process (the binary re-executes itself; the
/// crate does not know its command line).
#[derive(Debug, Clone)]
pub struct DnsLauncher {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// Held by the running server (one per root).
pub fn dns_lock(store: &Store) -> PathBuf {
    store.run_dir().join("dns.lock")
}

fn ask_reload(store: &Store) -> std::io::Result<()> {
    let mut s = UnixStream::connect(store.dns_socket())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"reload\n")?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    if line.trim() == "ok" {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("unexpected answer {line:?}")))
    }
}

/// Whether a server holds the root's DNS lock (runs, maybe still starting).
fn server_running(store: &Store) -> Result<bool, Error> {
    Ok(crate::lock::NetLock::try_acquire(&dns_lock(store))?.is_none())
}

/// Start the server in the background when none runs, without waiting:
/// called when a network is created, so the server is up by the time the
/// first container attaches (its start is then off the critical path). A
/// server nobody attaches to exits after its start-up grace.
pub fn prestart(store: &Store, launcher: &DnsLauncher) -> Result<(), Error> {
    if server_running(store)? {
        return Ok(());
    }
    spawn(store, launcher)
}

/// Tell a running server to reload. When none runs and `start` is given,
/// start one; either way wait until it serves (a server may be starting).
/// Call with the root's lock held.
pub fn notify(store: &Store, start: Option<&DnsLauncher>) -> Result<(), Error> {
    if ask_reload(store).is_ok() {
        tracing::info!(target: "explain::dns", "reloaded the DNS server ({})", store.dns_socket().display());
        return Ok(());
    }
    let Some(launcher) = start else {
        return Ok(());
    };
    if !server_running(store)? {
        spawn(store, launcher)?;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if ask_reload(store).is_ok() {
            tracing::info!(target: "explain::dns", "the DNS server answers ({})", store.dns_socket().display());
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(anyhow::anyhow!(
                "the DNS server of {} does not answer on {}; see {}",
                store.root().display(),
                store.dns_socket().display(),
                store.dns_log().display()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Start a server process (it takes dns.lock and binds the socket itself).
fn spawn(store: &Store, launcher: &DnsLauncher) -> Result<(), Error> {
    std::fs::create_dir_all(store.run_dir())
        .with_context(|| format!("creating {}", store.run_dir().display()))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(store.dns_log())
        .with_context(|| format!("opening {}", store.dns_log().display()))?;
    let log2 = log.try_clone().context("duplicating log fd")?;
    tracing::info!(
        target: "explain::dns",
        "starting the DNS server: {} {}",
        launcher.program.display(),
        launcher.args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
    );
    // Double fork: the child starts a new session and forks again, and
    // only the grandchild execs the server. The child exits at once, so the
    // server is orphaned (re-parented to init): never our zombie, never in
    // a caller's waitpid(-1). (Not `setsid --fork`: busybox's setsid, as in
    // minimal VMs, has no --fork.)
    let mut cmd = Command::new(&launcher.program);
    cmd.args(&launcher.args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: setsid, fork and _exit are async-signal-safe; nothing else runs
    // between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            match libc::fork() {
                -1 => Err(std::io::Error::last_os_error()),
                0 => Ok(()),
                _ => libc::_exit(0),
            }
        });
    }
    let status = cmd.status().context("starting the DNS server")?;
    if !status.success() {
        return Err(anyhow::anyhow!(
            "starting the DNS server failed ({status}); see {}",
            store.dns_log().display()
        )
        .into());
    }
    Ok(())
}
