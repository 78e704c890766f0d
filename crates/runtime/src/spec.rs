//! The container spec: everything needed to create one container, as data.
//! Written once to `containers/<id>/config.json`; never changed after.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::limits::Rlimit;

/// What the user asked for (flags merged with the image config).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ContainerSpec {
    pub id: String,
    pub name: String,
    /// Image reference as given (for `ls`) and its id.
    pub image: String,
    pub image_id: String,
    /// Unpacked layer directories, lowest first.
    pub layers: Vec<PathBuf>,
    /// Final argv: entrypoint + cmd, resolved as Docker does.
    pub args: Vec<String>,
    /// Entrypoint and Cmd after resolution (for inspect).
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    /// "user[:group]" as given; resolved inside the container's /etc/passwd.
    pub user: String,
    pub hostname: String,
    pub tty: bool,
    pub open_stdin: bool,
    /// "none", "host" or a network name (handled by the network hook).
    pub network: String,
    pub mounts: Vec<MountSpec>,
    pub read_only: bool,
    pub privileged: bool,
    /// Capability names ("CAP_CHOWN", …) the process keeps.
    pub caps: Vec<String>,
    /// Docker's default seccomp profile on (false with seccomp=unconfined or --privileged).
    pub seccomp: bool,
    pub resources: Resources,
    /// Run our reaper as PID 1.
    pub init: bool,
    pub stop_signal: i32,
    pub stop_timeout: u64,
    /// `--rm`: remove when it exits.
    pub auto_remove: bool,
    /// RFC 3339 creation time.
    pub created: String,
    /// Free-form labels (compose uses them).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// `--ulimit`s, applied (clamped to the host's hard limits) before exec.
    #[serde(default)]
    pub rlimits: Vec<Rlimit>,
    /// `--sysctl`s in dotted form ("net.core.somaxconn" → "1024"); only
    /// namespaced ones (see [`crate::limits::validate_sysctl`]).
    #[serde(default)]
    pub sysctls: std::collections::BTreeMap<String, String>,
}

/// A bind mount (`-v SRC:DST[:ro]`) or a tmpfs (`--tmpfs PATH`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountSpec {
    /// "bind" or "tmpfs".
    pub kind: String,
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
    /// Extra mount data (tmpfs "size=…,mode=…").
    #[serde(default)]
    pub options: String,
}

/// cgroup limits.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct Resources {
    /// Bytes.
    pub memory: Option<u64>,
    /// CPU quota in billionths of a CPU (`--cpus 0.5` → 500_000_000).
    pub nano_cpus: Option<u64>,
    pub pids_limit: Option<i64>,
}

/// Docker's rule for the minimum memory limit (moby daemon: 6 MiB).
pub const MIN_MEMORY: u64 = 6 * 1024 * 1024;

/// Parse a docker size ("64m", "1g", "512k", "1048576", "1.5g").
pub fn parse_size(s: &str) -> Result<u64, crate::Error> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num.parse().map_err(|_| {
        crate::Error::Invalid(format!(
            "invalid size {s:?}: use a number with an optional unit (b, k, m, g), e.g. 64m"
        ))
    })?;
    if !v.is_finite() || v < 0.0 {
        return Err(crate::Error::Invalid(format!(
            "invalid size {s:?}: must be positive"
        )));
    }
    Ok((v * mult as f64) as u64)
}

/// Parse `--cpus` ("0.5") into nano CPUs.
pub fn parse_cpus(s: &str) -> Result<u64, crate::Error> {
    let v: f64 = s.trim().parse().map_err(|_| {
        crate::Error::Invalid(format!(
            "invalid --cpus {s:?}: use a decimal number of CPUs, e.g. 0.5"
        ))
    })?;
    if !v.is_finite() || v <= 0.0 {
        return Err(crate::Error::Invalid(format!(
            "invalid --cpus {s:?}: must be greater than 0"
        )));
    }
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    if v > ncpu {
        return Err(crate::Error::Invalid(format!(
            "range of CPUs is from 0.01 to {ncpu:.2}, as there are only {ncpu} CPUs available"
        )));
    }
    Ok((v * 1e9).round() as u64)
}

/// Signal by name ("SIGTERM", "TERM", "term") or number ("15").
pub fn parse_signal(s: &str) -> Result<i32, crate::Error> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let upper = t.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| {
            crate::Error::Invalid(format!(
                "invalid signal {s:?}: use a name like SIGTERM or a number"
            ))
        })
}

/// "SIGTERM" for 15 (the number as text if unknown).
pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| sig.to_string())
}

/// The host's hostname (what `--network host` containers get).
pub fn host_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The default PATH Docker gives a container whose image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Resolve entrypoint and cmd as Docker does: `--entrypoint` replaces the
/// image's entrypoint and drops its cmd; CMD arguments replace the cmd.
pub fn resolve_args(
    image_entrypoint: &[String],
    image_cmd: &[String],
    flag_entrypoint: Option<&str>,
    cli_cmd: &[String],
) -> (Vec<String>, Vec<String>) {
    let (entry, mut cmd) = match flag_entrypoint {
        Some("") => (Vec::new(), Vec::new()),
        Some(e) => (vec![e.to_string()], Vec::new()),
        None => (image_entrypoint.to_vec(), image_cmd.to_vec()),
    };
    if !cli_cmd.is_empty() {
        cmd = cli_cmd.to_vec();
    }
    (entry, cmd)
}

/// Merge environment lists: later entries replace earlier ones with the same key.
pub fn merge_env(base: &[String], overrides: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for kv in base.iter().chain(overrides) {
        let key = kv.split('=').next().unwrap_or("");
        if let Some(slot) = out.iter_mut().find(|e| e.split('=').next() == Some(key)) {
            *slot = kv.clone();
        } else {
            out.push(kv.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert!(parse_size("lots").unwrap_err().is_user_error());
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("kill").unwrap(), 9);
        assert_eq!(parse_signal("2").unwrap(), 2);
        assert!(parse_signal("SIGNOPE").is_err());
    }

    #[test]
    fn args_like_docker() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (e, c) = resolve_args(&s(&["/ep"]), &s(&["a"]), None, &[]);
        assert_eq!((e, c), (s(&["/ep"]), s(&["a"])));
        let (e, c) = resolve_args(&s(&["/ep"]), &s(&["a"]), None, &s(&["b"]));
        assert_eq!((e, c), (s(&["/ep"]), s(&["b"])));
        let (e, c) = resolve_args(&s(&["/ep"]), &s(&["a"]), Some("/x"), &[]);
        assert_eq!((e, c), (s(&["/x"]), s(&[])));
    }

    #[test]
    fn env_merge() {
        let m = merge_env(&["A=1".into(), "B=2".into()], &["B=3".into(), "C=4".into()]);
        assert_eq!(m, vec!["A=1", "B=3", "C=4"]);
    }
}
