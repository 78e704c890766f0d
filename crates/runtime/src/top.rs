//! `container top`: the container's processes, read from its cgroup and /proc.

use std::fs;

use crate::lifecycle::Runtime;
use crate::Error;

/// One process, with the columns `ps -ef` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub uid: u32,
    pub pid: i32,
    pub ppid: i32,
    /// CPU time in seconds.
    pub cpu_secs: u64,
    pub cmd: String,
}

/// Parse /proc/<pid>/stat and status into a row.
pub fn proc_info(pid: i32) -> Option<ProcInfo> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let comm_end = stat.rfind(')')?;
    let comm = stat[stat.find('(')? + 1..comm_end].to_string();
    let fields: Vec<&str> = stat[comm_end + 2..].split(' ').collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap_or(0);
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd = if cmdline.is_empty() {
        format!("[{comm}]")
    } else {
        cmdline
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    Some(ProcInfo {
        uid,
        pid,
        ppid,
        cpu_secs: ticks / hz,
        cmd,
    })
}

impl Runtime {
    /// The processes of a running container (host pids), sorted by pid.
    pub fn top(&self, key: &str) -> Result<Vec<ProcInfo>, Error> {
        let rec = self.containers.find(key)?;
        if !rec.state.is_running() {
            return Err(Error::Invalid(format!(
                "container {} is not running",
                rec.spec.name
            )));
        }
        let mut pids = self.cgroup(&rec.spec.id).pids();
        pids.sort_unstable();
        Ok(pids.into_iter().filter_map(proc_info).collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_our_own_process() {
        let me = std::process::id() as i32;
        let p = super::proc_info(me).unwrap();
        assert_eq!(p.pid, me);
        assert!(!p.cmd.is_empty());
    }
}
