//! cgroups for one container: `minicompose/<id>` under each v1 controller
//! we use (memory, cpu, cpuacct, pids) or under the v2 root; limits written
//! before the container starts; the container joins by writing "0" to
//! `cgroup.procs` itself; removed with the container.

pub mod detect;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

pub use detect::{detect, Layout};

use crate::spec::Resources;
use crate::Error;

/// Parent of every container's cgroup.
pub const PARENT: &str = "minicompose";
const CFS_PERIOD: u64 = 100_000;

/// One container's cgroup (a directory per v1 hierarchy, or one v2 directory).
#[derive(Debug, Clone)]
pub struct Cgroup {
    pub layout: Layout,
    /// Distinct directories, in controller order (v1 controllers may share one).
    pub dirs: Vec<PathBuf>,
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    tracing::info!(target: "explain::cgroup", "write {} <- {value}", path.display());
    fs::write(path, value)
}

impl Cgroup {
    /// The cgroup of container `id` (whether or not it exists yet).
    pub fn for_id(layout: &Layout, id: &str) -> Cgroup {
        let rel = Path::new(PARENT).join(id);
        let mut dirs: Vec<PathBuf> = Vec::new();
        match layout {
            Layout::V2(root) => dirs.push(root.join(&rel)),
            Layout::V1 { controllers, .. } => {
                for mnt in controllers.values() {
                    let d = mnt.join(&rel);
                    if !dirs.contains(&d) {
                        dirs.push(d);
                    }
                }
            }
        }
        Cgroup {
            layout: layout.clone(),
            dirs,
        }
    }

    pub fn is_v2(&self) -> bool {
        matches!(self.layout, Layout::V2(_))
    }

    /// Directory holding controller `name`'s files.
    fn controller_dir(&self, name: &str) -> Option<PathBuf> {
        match &self.layout {
            Layout::V2(_) => self.dirs.first().cloned(),
            Layout::V1 { controllers, .. } => controllers
                .get(name)
                .map(|m| m.join(PARENT).join(self.id())),
        }
    }

    fn id(&self) -> String {
        self.dirs
            .first()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Create the directories and write the limits. On failure nothing is left.
    pub fn create(layout: &Layout, id: &str, res: &Resources) -> Result<Cgroup, Error> {
        let cg = Cgroup::for_id(layout, id);
        tracing::info!(target: "explain::cgroup", "{}", layout.describe());
        if cg.dirs.is_empty() {
            return Err(Error::Other(anyhow::anyhow!(
                "no cgroup controllers found under /sys/fs/cgroup: mount cgroup v1 controllers or cgroup2"
            )));
        }
        // The last container's removal deletes the shared `minicompose`
        // parent; if that races with us, create again.
        let mut result = cg.create_inner(res);
        for _ in 0..3 {
            match &result {
                Err(e) if is_not_found(e) => result = cg.create_inner(res),
                _ => break,
            }
        }
        if result.is_err() {
            let _ = cg.remove();
        }
        result.map(|_| cg)
    }

    fn create_inner(&self, res: &Resources) -> Result<(), Error> {
        if let Layout::V2(root) = &self.layout {
            // Controllers must be enabled top-down for our subtree.
            let parent = root.join(PARENT);
            fs::create_dir_all(&parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
            let want = "+memory +cpu +pids";
            for dir in [root.as_path(), parent.as_path()] {
                let ctl = dir.join("cgroup.subtree_control");
                let current = fs::read_to_string(&ctl).unwrap_or_default();
                if !["memory", "cpu", "pids"]
                    .iter()
                    .all(|c| current.split_whitespace().any(|w| w == *c))
                {
                    // Some controllers may be unavailable; enable what we can one by one.
                    for c in want.split(' ') {
                        let _ = write(&ctl, c);
                    }
                }
            }
        }
        for d in &self.dirs {
            tracing::info!(target: "explain::cgroup", "mkdir {}", d.display());
            fs::create_dir_all(d)
                .with_context(|| format!("cannot create cgroup {}", d.display()))?;
        }
        self.set_memory(res)?;
        self.set_cpu(res)?;
        self.set_pids(res)?;
        Ok(())
    }

    fn set_memory(&self, res: &Resources) -> Result<(), Error> {
        let Some(mem) = res.memory else { return Ok(()) };
        if mem < crate::spec::MIN_MEMORY {
            return Err(Error::Invalid(format!(
                "--memory {mem} bytes is below the minimum the runtime accepts (6MB): use --memory 6m or more"
            )));
        }
        let dir = self.controller_dir("memory").ok_or_else(|| {
            Error::Invalid(
                "--memory needs the memory cgroup controller, which this host lacks".into(),
            )
        })?;
        let r = if self.is_v2() {
            write(&dir.join("memory.max"), &mem.to_string())
        } else {
            write(&dir.join("memory.limit_in_bytes"), &mem.to_string()).and_then(|_| {
                // Docker's default --memory-swap is twice the memory limit.
                let memsw = dir.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &(mem.saturating_mul(2)).to_string())
                } else {
                    Ok(())
                }
            })
        };
        r.map_err(|e| Error::Invalid(format!("the kernel refused memory limit {mem} bytes: {e}")))
    }

    fn set_cpu(&self, res: &Resources) -> Result<(), Error> {
        let Some(nano) = res.nano_cpus else {
            return Ok(());
        };
        let quota = (nano.saturating_mul(CFS_PERIOD) / 1_000_000_000).max(1000);
        let dir = self.controller_dir("cpu").ok_or_else(|| {
            Error::Invalid("--cpus needs the cpu cgroup controller, which this host lacks".into())
        })?;
        let r = if self.is_v2() {
            write(&dir.join("cpu.max"), &format!("{quota} {CFS_PERIOD}"))
        } else {
            write(&dir.join("cpu.cfs_period_us"), &CFS_PERIOD.to_string())
                .and_then(|_| write(&dir.join("cpu.cfs_quota_us"), &quota.to_string()))
        };
        r.map_err(|e| {
            Error::Invalid(format!(
                "the kernel refused the cpu quota {quota}/{CFS_PERIOD}: {e}"
            ))
        })
    }

    fn set_pids(&self, res: &Resources) -> Result<(), Error> {
        let Some(limit) = res.pids_limit else {
            return Ok(());
        };
        let dir = self.controller_dir("pids").ok_or_else(|| {
            Error::Invalid(
                "--pids-limit needs the pids cgroup controller, which this host lacks".into(),
            )
        })?;
        let value = if limit <= 0 {
            "max".to_string()
        } else {
            limit.to_string()
        };
        write(&dir.join("pids.max"), &value)
            .map_err(|e| Error::Invalid(format!("the kernel refused pids limit {value}: {e}")))
    }

    /// The `cgroup.procs` files a process writes "0" to, to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Host pids of every process in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let dir = self
            .controller_dir("pids")
            .or_else(|| self.dirs.first().cloned());
        let Some(dir) = dir else { return Vec::new() };
        fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Host pids in any of the cgroup's directories (v1 hierarchies can
    /// disagree while a process is migrating).
    pub fn all_pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = Vec::new();
        for d in &self.dirs {
            for p in fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
            {
                if !pids.contains(&p) {
                    pids.push(p);
                }
            }
        }
        pids
    }

    /// SIGKILL every process left in the cgroup (orphans of a monitor that
    /// died) until none is left or `timeout` passes. Only pids the kernel
    /// lists in this cgroup are signalled. Returns how many were killed.
    pub fn kill_all(&self, timeout: std::time::Duration) -> Result<usize, Error> {
        let deadline = std::time::Instant::now() + timeout;
        let mut killed: Vec<i32> = Vec::new();
        loop {
            let pids = self.all_pids();
            if pids.is_empty() {
                return Ok(killed.len());
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::Other(anyhow::anyhow!(
                    "processes {pids:?} in cgroup {} are still there {}s after SIGKILL",
                    self.dirs
                        .first()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default(),
                    timeout.as_secs()
                )));
            }
            // Again each round: a process may have forked before it died.
            for pid in pids {
                if !killed.contains(&pid) {
                    tracing::info!(target: "explain::cgroup", "kill(SIGKILL) leftover pid {pid} of cgroup {}", self.id());
                    killed.push(pid);
                }
                // SAFETY: a pid the kernel just listed in our cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Whether the kernel's OOM killer killed something in this cgroup.
    pub fn oom_killed(&self) -> bool {
        let Some(dir) = self.controller_dir("memory") else {
            return false;
        };
        let file = if self.is_v2() {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        fs::read_to_string(dir.join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("oom_kill "))
            .any(|n| n.trim().parse::<u64>().unwrap_or(0) > 0)
    }

    /// Remove the directories (the processes must be gone). Idempotent.
    pub fn remove(&self) -> Result<(), Error> {
        for d in &self.dirs {
            if !d.exists() {
                continue;
            }
            tracing::info!(target: "explain::cgroup", "rmdir {}", d.display());
            // A just-reaped process can keep the cgroup busy for a moment
            // (longer on a loaded machine): retry for up to 5 s.
            let mut last = None;
            for _ in 0..500 {
                match fs::remove_dir(d) {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        last = None;
                        break;
                    }
                    Err(e) => {
                        last = Some(e);
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                }
            }
            if let Some(e) = last {
                return Err(anyhow::Error::from(e)
                    .context(format!("cannot remove cgroup {}", d.display()))
                    .into());
            }
        }
        // Leave nothing on the host: the shared `minicompose` parent goes
        // with its last child (EBUSY while other containers still use it).
        for d in &self.dirs {
            if let Some(parent) = d.parent() {
                if parent.file_name().is_some_and(|n| n == PARENT) && fs::remove_dir(parent).is_ok()
                {
                    tracing::info!(target: "explain::cgroup", "rmdir {}", parent.display());
                }
            }
        }
        Ok(())
    }
}

/// Whether creating failed because a directory vanished under us.
fn is_not_found(e: &Error) -> bool {
    match e {
        Error::Other(a) => a.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
        }),
        _ => false,
    }
}
