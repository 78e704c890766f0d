//! The CLI side of the supervisor: start it when it is not running (or was
//! killed), and talk to it over its unix socket, one JSON object per line
//! each way: `{"op":"ping"|"reload"|"status"|"shutdown"}` →
//! `{"ok":true,"pid":N,"containers":[…]}`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::state::{read_json, SupervisorPid};
use crate::{Engine, Error};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub op: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Response {
    pub ok: bool,
    #[serde(default)]
    pub pid: i32,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub containers: Vec<WatchStatus>,
}

/// What the supervisor knows of one container.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct WatchStatus {
    pub id: String,
    pub name: String,
    pub health: String,
    pub restarts: u64,
}

/// Send one request and read the answer.
pub fn call(socket: &std::path::Path, op: &str, timeout: Duration) -> std::io::Result<Response> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut line = serde_json::to_vec(&Request { op: op.into() })?;
    line.push(b'\n');
    s.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer)?;
    serde_json::from_str(&answer).map_err(std::io::Error::other)
}

impl Engine {
    /// The supervisor's pid when it is alive (pid file checked against the
    /// process start time, so a reused pid after a reboot does not count).
    pub fn supervisor_pid(&self, project: &str) -> Option<i32> {
        let p: SupervisorPid = read_json(&self.paths.pid_file(project))?;
        (mc_runtime::state::proc_start_time(p.pid) == Some(p.start)).then_some(p.pid)
    }

    /// Start the project's supervisor unless it answers.
    pub fn ensure_supervisor(&self, project: &str) -> Result<(), Error> {
        let sock = self.paths.socket(project);
        if call(&sock, "ping", Duration::from_secs(2)).is_ok() {
            return Ok(());
        }
        let Some(l) = &self.supervisor else {
            return Ok(());
        };
        if let Some(pid) = self.supervisor_pid(project) {
            // Alive but not answering: it is stuck; replace it.
            tracing::info!(target: "explain::supervisor", "supervisor {pid} does not answer: SIGKILL");
            // SAFETY: pid verified against its start time just above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let run = self.paths.run_dir(project);
        std::fs::create_dir_all(&run)
            .with_context(|| format!("cannot create {}", run.display()))?;
        let _ = std::fs::remove_file(&sock);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.paths.supervisor_log(project))
            .context("open the supervisor log")?;
        let log2 = log.try_clone().context("dup the log fd")?;
        let mut cmd = Command::new(&l.program);
        cmd.args(&l.args)
            .arg(project)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // SAFETY: setsid is async-signal-safe: the supervisor leaves our
        // session so Ctrl+C on the terminal does not reach it.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        tracing::info!(target: "explain::supervisor", "start the supervisor of {project}: {}", l.program.display());
        let mut child = cmd.spawn().context("start the supervisor")?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if call(&sock, "ping", Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(st)) = child.try_wait() {
                return Err(Error::Other(anyhow::anyhow!(
                    "the supervisor of {project} exited at start ({st}): see {}",
                    self.paths.supervisor_log(project).display()
                )));
            }
            if Instant::now() >= deadline {
                return Err(Error::Other(anyhow::anyhow!(
                    "the supervisor of {project} did not answer within 5s"
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Ask the supervisor to rescan now (best effort).
    pub fn notify_supervisor(&self, project: &str) {
        let _ = call(
            &self.paths.socket(project),
            "reload",
            Duration::from_secs(2),
        );
    }

    /// What the supervisor knows (None when it does not answer).
    pub fn supervisor_status(&self, project: &str) -> Option<Response> {
        call(
            &self.paths.socket(project),
            "status",
            Duration::from_secs(2),
        )
        .ok()
    }

    /// Ask the supervisor to exit; SIGKILL it if it does not within 2 s.
    pub fn stop_supervisor(&self, project: &str) {
        let pid = self.supervisor_pid(project);
        let _ = call(
            &self.paths.socket(project),
            "shutdown",
            Duration::from_secs(2),
        );
        if let Some(pid) = pid {
            let deadline = Instant::now() + Duration::from_secs(2);
            while mc_runtime::state::proc_start_time(pid).is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if self.supervisor_pid(project) == Some(pid) {
                // SAFETY: verified against its start time.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }

    /// Recover after the supervisor died (killed, reboot): restart it when
    /// the project still has running containers. Returns whether it did.
    pub fn recover_supervisor(&self, project: &str) -> bool {
        if self.supervisor.is_none() || self.supervisor_pid(project).is_some() {
            return false;
        }
        if !self.members(project).iter().any(|m| m.running()) {
            return false;
        }
        self.ensure_supervisor(project).is_ok()
    }
}
