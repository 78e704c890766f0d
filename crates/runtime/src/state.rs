//! On-disk container records under `<root>/containers/<id>/`:
//! `config.json` (the spec, written once), `state.json` (status, pid, exit
//! code; atomic temp+rename writes), `hostname`, `hosts`, `resolv.conf`,
//! `upper/`, `work/`, `rootfs/` (mount point), `log.json`.

use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::spec::ContainerSpec;
use crate::Error;

/// Write `data` to `path` atomically (temp file in the same dir, fsync-free rename).
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("f"),
        std::process::id()
    ));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
    }
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Lifecycle of a container.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

/// What changes while a container lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    /// Host pid of the container's PID 1 (0 when not running).
    pub pid: i32,
    /// Its start time (field 22 of /proc/<pid>/stat) to detect pid reuse.
    pub pid_start: u64,
    /// The process that reaps the container and writes its log.
    pub monitor_pid: i32,
    pub exit_code: i32,
    pub oom_killed: bool,
    pub started_at: String,
    pub finished_at: String,
    /// Set when `stop`/`kill` was asked for (docker's restart logic uses it).
    #[serde(default)]
    pub error: String,
}

impl Default for State {
    fn default() -> Self {
        State {
            status: Status::Created,
            pid: 0,
            pid_start: 0,
            monitor_pid: 0,
            exit_code: 0,
            oom_killed: false,
            started_at: String::new(),
            finished_at: String::new(),
            error: String::new(),
        }
    }
}

/// Start time of a process (clock ticks since boot), None if it is gone.
pub fn proc_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let state = rest.split(' ').next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    rest.split(' ').nth(19)?.parse().ok()
}

impl State {
    /// The process is gone but its monitor still lives: it is reaping it
    /// and about to record the real exit code. (Its monitor started before
    /// it; a pid reused since would be younger.)
    fn monitor_recording_exit(&self) -> bool {
        self.monitor_pid > 0
            && self.monitor_pid != std::process::id() as i32
            && proc_start_time(self.monitor_pid).is_some_and(|t| t <= self.pid_start)
    }

    /// Whether the recorded process still exists (and is the same process).
    pub fn is_running(&self) -> bool {
        self.status == Status::Running
            && self.pid > 0
            && proc_start_time(self.pid) == Some(self.pid_start)
    }
}

/// Now, as RFC 3339 with nanoseconds (UTC).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

/// Time elapsed since an RFC 3339 timestamp we wrote (None if unparsable).
pub fn since(rfc3339: &str) -> Option<std::time::Duration> {
    let t = humantime::parse_rfc3339(rfc3339).ok()?;
    std::time::SystemTime::now().duration_since(t).ok()
}

/// Docker's human durations: "Less than a second", "5 seconds", "2 minutes", "3 hours", "4 days".
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86400),
    }
}

/// The containers of one `--root`.
#[derive(Debug, Clone)]
pub struct Containers {
    dir: PathBuf,
}

/// A container found on disk.
#[derive(Debug, Clone)]
pub struct Record {
    pub spec: ContainerSpec,
    pub state: State,
    pub dir: PathBuf,
}

impl Record {
    /// The state, corrected when the process died without its monitor
    /// recording it (monitor killed, host reboot).
    pub fn live_state(&self) -> State {
        let mut s = self.state.clone();
        if s.status == Status::Running && !s.is_running() && !s.monitor_recording_exit() {
            s.status = Status::Exited;
            s.pid = 0;
            if s.finished_at.is_empty() {
                s.exit_code = 255;
                s.error = "the container's monitor went away".into();
            }
        }
        s
    }
}

/// Held while creating a container, so two runs cannot take the same name.
pub struct Lock {
    _file: File,
}

impl Containers {
    pub fn new(root: &Path) -> Containers {
        Containers {
            dir: root.join("containers"),
        }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// An exclusive lock over the containers directory.
    pub fn lock(&self) -> Result<Lock, Error> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let file = File::create(self.dir.join(".lock"))
            .with_context(|| format!("cannot open the lock in {}", self.dir.display()))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(anyhow::Error::from(std::io::Error::last_os_error())
                .context("cannot lock the containers directory")
                .into());
        }
        Ok(Lock { _file: file })
    }

    pub fn read(&self, id: &str) -> Result<Record, Error> {
        let dir = self.dir(id);
        let spec: ContainerSpec = serde_json::from_slice(
            &fs::read(dir.join("config.json"))
                .with_context(|| format!("container {id} has no config.json"))?,
        )
        .with_context(|| format!("container {id}: config.json is damaged"))?;
        let state: State = fs::read(dir.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(Record { spec, state, dir })
    }

    pub fn write_state(&self, id: &str, state: &State) -> Result<(), Error> {
        let data = serde_json::to_vec_pretty(state).context("serialize state")?;
        write_atomic(&self.dir(id).join("state.json"), &data)
            .with_context(|| format!("cannot write the state of {id}"))?;
        Ok(())
    }

    pub fn write_spec(&self, spec: &ContainerSpec) -> Result<(), Error> {
        let data = serde_json::to_vec_pretty(spec).context("serialize spec")?;
        write_atomic(&self.dir(&spec.id).join("config.json"), &data)
            .with_context(|| format!("cannot write the config of {}", spec.id))?;
        Ok(())
    }

    /// Every container with a readable config, oldest first.
    pub fn list(&self) -> Vec<Record> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<Record> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            .filter_map(|id| self.read(&id).ok())
            .collect();
        out.sort_by(|a, b| a.spec.created.cmp(&b.spec.created));
        out
    }

    /// Find by full id, name, or unique id prefix.
    pub fn find(&self, key: &str) -> Result<Record, Error> {
        let all = self.list();
        if let Some(r) = all
            .iter()
            .find(|r| r.spec.id == key || r.spec.name == key.trim_start_matches('/'))
        {
            return Ok(r.clone());
        }
        let matches: Vec<&Record> = all
            .iter()
            .filter(|r| !key.is_empty() && r.spec.id.starts_with(key))
            .collect();
        match matches.len() {
            1 => Ok(matches[0].clone()),
            0 => Err(Error::Invalid(format!("No such container: {key}"))),
            _ => Err(Error::Invalid(format!(
                "multiple containers match {key:?}: give more characters of the id"
            ))),
        }
    }

    /// Whether a name is taken (call under [`Containers::lock`]).
    pub fn name_in_use(&self, name: &str) -> Option<String> {
        self.list()
            .into_iter()
            .find(|r| r.spec.name == name)
            .map(|r| r.spec.id)
    }
}

/// 64 random hex characters.
pub fn new_id() -> String {
    let mut buf = [0u8; 32];
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        // Fall back on time and pid: still unique enough for one host.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        buf[..16].copy_from_slice(&t.to_le_bytes());
        buf[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    }
    hex::encode(buf)
}

const ADJECTIVES: &[&str] = &[
    "brave", "calm", "eager", "gentle", "happy", "jolly", "keen", "lucid", "merry", "nimble",
    "proud", "quiet", "sharp", "swift", "tender", "vivid", "wise", "zealous", "bold", "clever",
];
const NAMES: &[&str] = &[
    "lovelace",
    "turing",
    "hopper",
    "ritchie",
    "thompson",
    "torvalds",
    "knuth",
    "dijkstra",
    "hamilton",
    "liskov",
    "lamport",
    "shannon",
    "noether",
    "curie",
    "babbage",
    "kernighan",
    "wozniak",
    "goldberg",
    "perlman",
    "allen",
];

/// A docker-like generated name ("keen_lovelace"), derived from the id.
pub fn generated_name(id: &str) -> String {
    let b = hex::decode(&id[..8.min(id.len())]).unwrap_or_default();
    let a = *b.first().unwrap_or(&0) as usize % ADJECTIVES.len();
    let n = *b.get(1).unwrap_or(&0) as usize % NAMES.len();
    let suffix = b.get(2).copied().unwrap_or(0);
    format!("{}_{}{}", ADJECTIVES[a], NAMES[n], suffix % 100)
}

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let ok = name.len() >= 2
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_by_name_id_and_prefix() {
        let root = tempfile::tempdir().unwrap();
        let c = Containers::new(root.path());
        for (id, name) in [
            ("a".repeat(64), "web"),
            (format!("ab{}", "0".repeat(62)), "db"),
        ] {
            let spec = ContainerSpec {
                id: id.clone(),
                name: name.into(),
                ..Default::default()
            };
            c.write_spec(&spec).unwrap();
        }
        assert_eq!(c.find("web").unwrap().spec.name, "web");
        assert_eq!(c.find("ab0").unwrap().spec.name, "db");
        assert!(c.find("a").unwrap_err().to_string().contains("multiple"));
        assert!(c.find("zz").unwrap_err().is_user_error());
        assert_eq!(c.name_in_use("db").map(|i| i.len()), Some(64));
    }

    #[test]
    fn names() {
        assert!(validate_name("my-app_1.x").is_ok());
        assert!(validate_name("-bad").is_err());
        let n = generated_name(&new_id());
        assert!(validate_name(&n).is_ok());
    }

    #[test]
    fn dead_pid_is_not_running() {
        let s = State {
            status: Status::Running,
            pid: i32::MAX - 1,
            pid_start: 1,
            ..Default::default()
        };
        assert!(!s.is_running());
        let me = std::process::id() as i32;
        let s = State {
            status: Status::Running,
            pid: me,
            pid_start: proc_start_time(me).unwrap(),
            ..Default::default()
        };
        assert!(s.is_running());
    }
}
