//! Cross-process exclusion with `flock(2)`: one lock per `--root` for its
//! state (IP allocation, endpoint files), and one per host for the shared
//! nftables table. The kernel drops a lock when its holder dies, so a
//! `kill -9` never leaves a stale lock behind.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::Context as _;

use crate::Error;

/// Path of the host-wide lock serializing changes to `inet minicompose`.
pub const HOST_LOCK: &str = "/run/lock/mc-net.lock";

/// Held until dropped.
pub struct NetLock {
    _file: File,
}

impl NetLock {
    pub fn acquire(path: &Path) -> Result<NetLock, Error> {
        Self::lock(path, true)?
            .ok_or_else(|| anyhow::anyhow!("lock {} not taken", path.display()).into())
    }

    /// Take the lock only if nobody holds it.
    pub fn try_acquire(path: &Path) -> Result<Option<NetLock>, Error> {
        Self::lock(path, false)
    }

    fn lock(path: &Path, wait: bool) -> Result<Option<NetLock>, Error> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening lock {}", path.display()))?;
        loop {
            // SAFETY: flock on an fd we own.
            let op = if wait {
                libc::LOCK_EX
            } else {
                libc::LOCK_EX | libc::LOCK_NB
            };
            let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
            if rc == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::WouldBlock {
                return Ok(None);
            }
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(anyhow::Error::new(err)
                    .context(format!("locking {}", path.display()))
                    .into());
            }
        }
        Ok(Some(NetLock { _file: file }))
    }
}
