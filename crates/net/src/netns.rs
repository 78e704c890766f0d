//! Identifying a network namespace and telling whether it still exists.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::state::NetnsRef;
use crate::Error;

/// Start time of `pid` in clock ticks (field 22 of /proc/pid/stat).
fn pid_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: count after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl NetnsRef {
    /// The namespace of a running process.
    pub fn from_pid(pid: u32) -> Result<NetnsRef, Error> {
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let inode = std::fs::metadata(&path)
            .with_context(|| format!("process {pid} has no network namespace (did it exit?)"))?
            .ino();
        Ok(NetnsRef {
            path,
            pid: Some(pid),
            pid_start: pid_start(pid),
            inode,
        })
    }

    /// A namespace kept by a bind mount (`/run/netns/NAME`).
    pub fn from_path(path: &Path) -> Result<NetnsRef, Error> {
        let inode = std::fs::metadata(path)
            .with_context(|| format!("network namespace {} not found", path.display()))?
            .ino();
        Ok(NetnsRef {
            path: path.to_path_buf(),
            pid: None,
            pid_start: None,
            inode,
        })
    }

    /// Whether the namespace recorded at attach time still exists.
    pub fn alive(&self) -> bool {
        if let Some(pid) = self.pid {
            if pid_start(pid) != self.pid_start {
                return false;
            }
        }
        std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.inode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_gone_pid_is_not() {
        let me = NetnsRef::from_pid(std::process::id()).unwrap();
        assert!(me.alive());
        let mut other = me.clone();
        other.pid_start = Some(1);
        assert!(!other.alive());
        let mut moved = me;
        moved.inode += 1;
        assert!(!moved.alive());
    }
}
