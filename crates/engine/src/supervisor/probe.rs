//! One health probe: a forked child that runs the check through the
//! runtime's exec, its output in a file, its exit code as the result.

use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::{Engine, Error};

pub struct Probe {
    pub pid: i32,
    pub started: Instant,
    pub timeout: Duration,
    out: PathBuf,
}

impl Probe {
    /// Fork a child that execs `argv` in the container. The supervisor is
    /// single-threaded, so forking is safe.
    pub fn spawn(
        engine: &Engine,
        id: &str,
        argv: &[String],
        timeout: Duration,
        out: &Path,
    ) -> Result<Probe, Error> {
        let file =
            std::fs::File::create(out).with_context(|| format!("create {}", out.display()))?;
        let null = std::fs::File::open("/dev/null").context("open /dev/null")?;
        let opts = mc_runtime::ExecOptions {
            args: argv.to_vec(),
            ..Default::default()
        };
        // SAFETY: single-threaded process; the child only dups fds, runs
        // the exec path (which is written for a forked child) and _exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(anyhow::Error::from(std::io::Error::last_os_error())
                .context("fork a health probe")
                .into());
        }
        if pid == 0 {
            // SAFETY: dup2 onto our standard fds, then leave without unwinding.
            unsafe {
                libc::setpgid(0, 0);
                libc::dup2(null.as_raw_fd(), 0);
                libc::dup2(file.as_raw_fd(), 1);
                libc::dup2(file.as_raw_fd(), 2);
            }
            let code = match engine.runtime.exec(id, &opts) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    126
                }
            };
            // SAFETY: end the forked child without running the parent's handlers.
            unsafe { libc::_exit(code) }
        }
        Ok(Probe {
            pid,
            started: Instant::now(),
            timeout,
            out: out.to_path_buf(),
        })
    }

    /// The exit code and output once the probe has finished.
    pub fn try_finish(&self) -> Option<(i32, String)> {
        let mut status = 0;
        // SAFETY: our own child.
        let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        if r == 0 {
            return None;
        }
        let code = if r < 0 {
            -1
        } else if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        };
        let mut out = String::new();
        if let Ok(f) = std::fs::File::open(&self.out) {
            let _ = f.take(4096).read_to_string(&mut out);
        }
        let _ = std::fs::remove_file(&self.out);
        Some((code, out))
    }

    /// Kill the probe (its process group) and reap it.
    pub fn kill(self) {
        // SAFETY: our own child and its group.
        unsafe {
            libc::kill(-self.pid, libc::SIGKILL);
            libc::kill(self.pid, libc::SIGKILL);
            let mut st = 0;
            libc::waitpid(self.pid, &mut st, 0);
        }
        let _ = std::fs::remove_file(&self.out);
    }
}
