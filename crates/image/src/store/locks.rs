//! Advisory file locks (flock) so two processes can pull into one store.

use std::fs::{File, OpenOptions};
use std::path::Path;

use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};

/// Held while alive; the kernel drops it when the process dies, so a
/// `kill -9` never leaves a stale lock behind.
pub struct FileLock {
    _lock: Flock<File>,
}

/// Block until we hold an exclusive lock on `path` (created if missing).
pub fn exclusive(path: &Path) -> anyhow::Result<FileLock> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("open lock file {}", path.display()))?;
    let lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("lock {}: {e}", path.display()))?;
    Ok(FileLock { _lock: lock })
}
