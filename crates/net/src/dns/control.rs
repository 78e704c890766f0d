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

/// Tell a running server to reload. When none runs and `start` is given,
/// start one and wait until it serves. Call with the root's lock held.
pub fn notify(store: &Store, start: Option<&DnsLauncher>) -> Result<(), Error> {
    if ask_reload(store).is_ok() {
        tracing::info!(target: "explain::dns", "reloaded the DNS server ({})", store.dns_socket().display());
        return Ok(());
    }
    let Some(launcher) = start else {
        return Ok(());
    };
    let _ = std::fs::remove_file(store.dns_socket());
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
    let mut cmd = Command::new(&launcher.program);
    cmd.args(&launcher.args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: setsid is async-signal-safe; it detaches the server from our
    // session so it outlives this command and its terminal.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("starting the DNS server")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if ask_reload(store).is_ok() {
            // The server is detached; reap it later is not our job: it
            // runs until no endpoint is left. Avoid a zombie if it exits
            // while we still run by not keeping a handle.
            drop(child);
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(anyhow::anyhow!(
                "the DNS server exited at start ({status}); see {}",
                store.dns_log().display()
            )
            .into());
        }
        if Instant::now() > deadline {
            return Err(anyhow::anyhow!(
                "the DNS server did not come up within 5s; see {}",
                store.dns_log().display()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
