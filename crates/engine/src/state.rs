//! What the engine keeps on disk, next to the runtime's containers:
//! `<root>/projects/<name>/project.json` and `containers/<id>.json` (how to
//! restart, health-check and re-attach each container), and the run dir
//! `<root>/run/compose/<name>/` (supervisor socket and pid, health states).
//! Writes are atomic (temp + rename).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::restart::Policy;
use crate::Error;

/// Paths of one `--root` for the engine.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
}

impl Paths {
    pub fn new(root: &Path) -> Paths {
        Paths {
            root: root.to_path_buf(),
        }
    }
    pub fn projects(&self) -> PathBuf {
        self.root.join("projects")
    }
    pub fn project_dir(&self, project: &str) -> PathBuf {
        self.projects().join(project)
    }
    pub fn records_dir(&self, project: &str) -> PathBuf {
        self.project_dir(project).join("containers")
    }
    pub fn record_path(&self, project: &str, id: &str) -> PathBuf {
        self.records_dir(project).join(format!("{id}.json"))
    }
    pub fn run_dir(&self, project: &str) -> PathBuf {
        self.root.join("run/compose").join(project)
    }
    pub fn socket(&self, project: &str) -> PathBuf {
        self.run_dir(project).join("supervisor.sock")
    }
    pub fn pid_file(&self, project: &str) -> PathBuf {
        self.run_dir(project).join("supervisor.pid")
    }
    pub fn supervisor_log(&self, project: &str) -> PathBuf {
        self.run_dir(project).join("supervisor.log")
    }
    pub fn health_path(&self, project: &str, id: &str) -> PathBuf {
        self.run_dir(project)
            .join("health")
            .join(format!("{id}.json"))
    }
    /// How often the restart policy restarted a container (a file of its
    /// own, not the record: the CLI writes the record concurrently).
    pub fn restarts_path(&self, project: &str, id: &str) -> PathBuf {
        self.run_dir(project).join("restarts").join(id)
    }
    pub fn restart_count(&self, project: &str, id: &str) -> u64 {
        std::fs::read_to_string(self.restarts_path(project, id))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
    pub fn set_restart_count(&self, project: &str, id: &str, n: u64) {
        let p = self.restarts_path(project, id);
        if n == 0 {
            let _ = std::fs::remove_file(&p);
            return;
        }
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&p, n.to_string());
    }
    pub fn volumes(&self) -> PathBuf {
        self.root.join("volumes")
    }
}

/// The project as last brought up (for `ls` and the supervisor).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ProjectRecord {
    pub name: String,
    pub working_dir: String,
    pub config_files: Vec<String>,
}

/// One network attachment of a container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetAttach {
    /// The real network name (`<project>_default`).
    pub network: String,
    /// DNS names besides the container name: service name, aliases.
    pub aliases: Vec<String>,
    pub ip: Option<Ipv4Addr>,
    pub ports: Vec<mc_net::PortMapping>,
}

/// A healthcheck, resolved: the argv to exec and the timings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HealthConfig {
    pub argv: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u64,
    pub start_period: Duration,
    pub start_interval: Duration,
}

/// The engine's record of one container (the runtime keeps the spec).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub project: String,
    pub service: String,
    pub number: u32,
    pub oneoff: bool,
    pub restart: Policy,
    pub healthcheck: Option<HealthConfig>,
    pub networks: Vec<NetAttach>,
    pub dns: Vec<IpAddr>,
    pub extra_hosts: Vec<(String, IpAddr)>,
    /// Anonymous volumes (removed with `rm -v` / `down -v`).
    #[serde(default)]
    pub anon_volumes: Vec<String>,
    /// Exposed ports (`6379/tcp`): the image's and `expose:`, for `ps`.
    #[serde(default)]
    pub exposed: Vec<String>,
    /// Set by stop/kill/down: the supervisor does not restart it.
    #[serde(default)]
    pub stopped_by_user: bool,
}

/// A container's health, written by the supervisor.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u64,
    /// The container instance it applies to (its pid start time).
    pub pid_start: u64,
    /// Output of the last probe (first 4 KiB).
    #[serde(default)]
    pub last_output: String,
    #[serde(default)]
    pub last_exit: i32,
}

/// The supervisor's pid and start time (to tell a reused pid).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupervisorPid {
    pub pid: i32,
    pub start: u64,
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let data = serde_json::to_vec_pretty(value).context("serialize state")?;
    mc_runtime::state::write_atomic(path, &data)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

impl Paths {
    pub fn read_record(&self, project: &str, id: &str) -> Option<ContainerRecord> {
        read_json(&self.record_path(project, id))
    }
    pub fn write_record(&self, rec: &ContainerRecord) -> Result<(), Error> {
        write_json(&self.record_path(&rec.project, &rec.id), rec)
    }
    pub fn remove_record(&self, project: &str, id: &str) {
        let _ = std::fs::remove_file(self.record_path(project, id));
        let _ = std::fs::remove_file(self.health_path(project, id));
    }
    pub fn read_health(&self, project: &str, id: &str) -> Option<Health> {
        read_json(&self.health_path(project, id))
    }
    /// Mark (or unmark) a container as stopped by the user.
    pub fn set_stopped_by_user(&self, project: &str, id: &str, stopped: bool) {
        if let Some(mut r) = self.read_record(project, id) {
            if r.stopped_by_user != stopped {
                r.stopped_by_user = stopped;
                let _ = self.write_record(&r);
            }
        }
    }
    /// Every project with an engine record.
    pub fn project_names(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.projects()) else {
            return Vec::new();
        };
        let mut v: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        v.sort();
        v
    }
}
