//! Image config evolution: applying metadata instructions to a config, and the
//! history entries (`created_by`, `empty_layer`) of each step, as BuildKit
//! writes them.
//!
//! [`ImageConfig`] is Docker's config shape: the OCI fields plus `Healthcheck`,
//! `Shell` and `OnBuild`, which OCI lacks. Convert with [`ImageConfig::from_oci`]
//! / [`ImageConfig::to_oci`]; [`ImageConfig::to_docker_json`] keeps everything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dockerfile::{CommandLine, Copy, Healthcheck, Instruction};

/// The default `SHELL`.
pub fn default_shell() -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into()]
}

/// Docker's `HealthConfig` (durations in nanoseconds; 0 = default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", …]` or `["CMD-SHELL", cmd]`.
    pub test: Vec<String>,
    /// Between checks.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    /// Per check.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    /// Grace period after start.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    /// Interval during the start period.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    /// Failures before unhealthy.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// An image's runtime config, as Docker stores it. Deserialize it straight
/// from a raw image config's `"config"` object to keep `Healthcheck`, `Shell`
/// and `OnBuild`, which [`ImageConfig::from_oci`] cannot see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    /// `USER`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub user: String,
    /// `EXPOSE`: `port/proto`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub exposed_ports: BTreeMap<String, Empty>,
    /// `ENV`: `K=V`, in order of first definition.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    /// `ENTRYPOINT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `VOLUME`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub volumes: BTreeMap<String, Empty>,
    /// `WORKDIR` (absolute).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    /// `LABEL`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// `STOPSIGNAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `HEALTHCHECK` (Docker extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// `SHELL` (Docker extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// `ONBUILD` triggers (Docker extension).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub on_build: Vec<String>,
}

/// Docker writes `null` for empty lists and maps; read it as empty.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Go's `struct{}` in JSON maps (`{"80/tcp": {}}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

impl ImageConfig {
    /// From an OCI config (a pulled base image).
    pub fn from_oci(c: &oci_spec::image::Config) -> ImageConfig {
        ImageConfig {
            user: c.user().clone().unwrap_or_default(),
            exposed_ports: c
                .exposed_ports()
                .iter()
                .flatten()
                .map(|p| (p.clone(), Empty {}))
                .collect(),
            env: c.env().clone().unwrap_or_default(),
            entrypoint: c.entrypoint().clone(),
            cmd: c.cmd().clone(),
            volumes: c
                .volumes()
                .iter()
                .flatten()
                .map(|p| (p.clone(), Empty {}))
                .collect(),
            working_dir: c.working_dir().clone().unwrap_or_default(),
            labels: c
                .labels()
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            stop_signal: c.stop_signal().clone(),
            healthcheck: None,
            shell: None,
            on_build: Vec::new(),
        }
    }

    /// To an OCI config (drops `Healthcheck`, `Shell`, `OnBuild`; use
    /// [`ImageConfig::to_docker_json`] to keep them).
    pub fn to_oci(&self) -> oci_spec::image::Config {
        let mut c = oci_spec::image::Config::default();
        let non_empty = |s: &String| (!s.is_empty()).then(|| s.clone());
        c.set_user(non_empty(&self.user));
        c.set_exposed_ports(
            (!self.exposed_ports.is_empty()).then(|| self.exposed_ports.keys().cloned().collect()),
        );
        c.set_env((!self.env.is_empty()).then(|| self.env.clone()));
        c.set_entrypoint(self.entrypoint.clone());
        c.set_cmd(self.cmd.clone());
        c.set_volumes((!self.volumes.is_empty()).then(|| self.volumes.keys().cloned().collect()));
        c.set_working_dir(non_empty(&self.working_dir));
        c.set_labels((!self.labels.is_empty()).then(|| self.labels.clone().into_iter().collect()));
        c.set_stop_signal(self.stop_signal.clone());
        c
    }

    /// The config as Docker's JSON object (the image config's `config` field).
    pub fn to_docker_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Value of an env var in the config.
    pub fn env_get(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find_map(|e| e.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
    }

    /// Set an env var, replacing in place or appending.
    pub fn env_set(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        match self
            .env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(e) => *e = entry,
            None => self.env.push(entry),
        }
    }

    /// Env as pairs, for expansion.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e.clone(), String::new()),
            })
            .collect()
    }

    /// The shell for shell-form commands (`SHELL` or `/bin/sh -c`).
    pub fn shell_or_default(&self) -> Vec<String> {
        self.shell.clone().unwrap_or_else(default_shell)
    }
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// e.g. `RUN /bin/sh -c pip install -r requirements.txt # buildkit`.
    pub created_by: String,
    /// True when the step made no layer (metadata only).
    pub empty_layer: bool,
    /// Optional comment.
    pub comment: Option<String>,
}

impl HistoryEntry {
    /// As an OCI history entry with the given RFC 3339 `created` time.
    pub fn to_oci(&self, created: Option<&str>) -> oci_spec::image::History {
        let mut h = oci_spec::image::History::default();
        h.set_created(created.map(str::to_string));
        h.set_created_by(Some(self.created_by.clone()));
        h.set_empty_layer(self.empty_layer.then_some(true));
        h.set_comment(self.comment.clone());
        h
    }
}

/// The full image config JSON of a built image (what is stored and hashed
/// for the image id): the base image's layers and history followed by this
/// build's, `config` in Docker's shape (keeps `Healthcheck`, `Shell`,
/// `OnBuild`), the platform and creation time (RFC 3339). `diff_ids` are the
/// new layers' uncompressed digests, one per history entry with
/// `empty_layer == false`.
pub fn image_config_json(
    base: Option<&oci_spec::image::ImageConfiguration>,
    config: &ImageConfig,
    history: &[HistoryEntry],
    diff_ids: &[String],
    created: &str,
    platform: &crate::args::Platform,
) -> Result<serde_json::Value, crate::Error> {
    let layers = history.iter().filter(|h| !h.empty_layer).count();
    if layers != diff_ids.len() {
        return Err(crate::Error::Other(anyhow::anyhow!(
            "image config: {layers} history entries make layers but {} diff ids were given",
            diff_ids.len()
        )));
    }
    let base_json = match base {
        Some(b) => serde_json::to_value(b).map_err(|e| crate::Error::Other(e.into()))?,
        None => serde_json::Value::Null,
    };
    let mut all_ids: Vec<serde_json::Value> = base_json["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    all_ids.extend(
        diff_ids
            .iter()
            .map(|d| serde_json::Value::String(d.clone())),
    );
    let mut all_history: Vec<serde_json::Value> =
        base_json["history"].as_array().cloned().unwrap_or_default();
    for h in history {
        let oci = h.to_oci(Some(created));
        all_history.push(serde_json::to_value(oci).map_err(|e| crate::Error::Other(e.into()))?);
    }
    let mut out = serde_json::json!({
        "created": created,
        "architecture": platform.arch,
        "os": platform.os,
        "config": config.to_docker_json(),
        "rootfs": { "type": "layers", "diff_ids": all_ids },
        "history": all_history,
    });
    if !platform.variant.is_empty() {
        out["variant"] = serde_json::Value::String(platform.variant.clone());
    }
    Ok(out)
}

/// Per-stage state that config evolution needs besides the config itself.
#[derive(Debug, Clone, Default)]
pub struct ApplyState {
    /// Whether `CMD` was set in this stage (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
}

/// Apply one *expanded* instruction's effect on the config. RUN, COPY, ADD and
/// ARG leave the config unchanged. Errors are bad user input (one line each).
pub fn apply(
    config: &mut ImageConfig,
    st: &mut ApplyState,
    instr: &Instruction,
) -> Result<(), String> {
    match instr {
        Instruction::Env(kv) => {
            for (k, v) in kv {
                config.env_set(k, v);
            }
        }
        Instruction::Label(kv) => {
            for (k, v) in kv {
                config.labels.insert(k.clone(), v.clone());
            }
        }
        Instruction::Workdir(p) => config.working_dir = resolve_workdir(&config.working_dir, p),
        Instruction::User(u) => {
            if u.is_empty() {
                return Err("USER requires exactly one argument".into());
            }
            config.user = u.clone();
        }
        Instruction::Expose(ports) => {
            for p in ports {
                for spec in parse_port_spec(p)? {
                    config.exposed_ports.insert(spec, Empty {});
                }
            }
        }
        Instruction::Volume(vols) => {
            for v in vols {
                config.volumes.insert(v.clone(), Empty {});
            }
        }
        Instruction::StopSignal(s) => {
            check_signal(s)?;
            config.stop_signal = Some(s.clone());
        }
        Instruction::Healthcheck(h) => config.healthcheck = Some(health_config(h)),
        Instruction::Shell(sh) => config.shell = Some(sh.clone()),
        Instruction::Cmd(c) => {
            config.cmd = Some(c.to_argv(&config.shell_or_default()));
            st.cmd_set = true;
        }
        Instruction::Entrypoint(c) => {
            config.entrypoint = match c {
                CommandLine::Exec(v) if v.is_empty() => None,
                c => Some(c.to_argv(&config.shell_or_default())),
            };
            // Docker: a new ENTRYPOINT drops an inherited CMD, not one set in this stage.
            if !st.cmd_set {
                config.cmd = None;
            }
        }
        Instruction::Onbuild(expr) => config.on_build.push(expr.clone()),
        Instruction::Run(_) | Instruction::Copy(_) | Instruction::Arg(_) => {}
    }
    Ok(())
}

fn health_config(h: &Healthcheck) -> HealthConfig {
    HealthConfig {
        test: h.test.clone(),
        interval: h.interval_ns,
        timeout: h.timeout_ns,
        start_period: h.start_period_ns,
        start_interval: h.start_interval_ns,
        retries: h.retries,
    }
}

/// `WORKDIR` relative to the previous one, cleaned (`/a` + `b/../c` = `/a/c`).
pub fn resolve_workdir(current: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!(
            "{}/{}",
            if current.is_empty() { "/" } else { current },
            path
        )
    };
    clean_abs(&joined)
}

/// Clean an absolute slash path: collapse `//`, `.`, `..` (never above `/`).
pub fn clean_abs(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `80`, `80/tcp`, `53/udp`, `8000-8002/tcp` → `["80/tcp", …]` (ranges expanded).
pub fn parse_port_spec(spec: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let bad = || format!("invalid containerPort: {ports}");
    let parse = |s: &str| s.parse::<u16>().map_err(|_| bad());
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let p = parse(ports)?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(format!(
            "invalid range specified for containerPort: {ports}"
        ));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
];

/// Accept what Docker's `signal.ParseSignal` accepts: a number 1–64, a name
/// with or without `SIG`, or `SIGRTMIN+n` / `SIGRTMAX-n`.
pub fn check_signal(s: &str) -> Result<(), String> {
    let bad = || format!("invalid signal: {s}");
    if let Ok(n) = s.parse::<u32>() {
        return if (1..=64).contains(&n) {
            Ok(())
        } else {
            Err(bad())
        };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if SIGNALS.contains(&name) {
        return Ok(());
    }
    for (base, sign) in [("RTMIN", '+'), ("RTMAX", '-')] {
        if name == base {
            return Ok(());
        }
        if let Some(n) = name.strip_prefix(base).and_then(|r| r.strip_prefix(sign)) {
            if n.parse::<u32>().is_ok_and(|n| n <= 30) {
                return Ok(());
            }
        }
    }
    Err(bad())
}

/// Go's `%q` of a string slice: `["python" "app.py"]`.
fn go_quoted_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

/// Go's `%v` of a string slice: `[/bin/bash -c]`.
fn go_plain_list(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

/// BuildKit's RUN history text: build args in scope prefixed as `|N K=V …`.
pub fn run_command_string(argv: &[String], build_args: &[(String, String)]) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !build_args.is_empty() {
        parts.push(format!("|{}", build_args.len()));
        parts.extend(build_args.iter().map(|(k, v)| format!("{k}={v}")));
    }
    parts.extend(argv.iter().cloned());
    parts.join(" ")
}

fn copy_text(c: &Copy) -> String {
    let mut s = String::from(if c.kind == crate::dockerfile::CopyKind::Add {
        "ADD"
    } else {
        "COPY"
    });
    if let Some(f) = &c.from {
        s.push_str(&format!(" --from={f}"));
    }
    if let Some(o) = &c.chown {
        s.push_str(&format!(" --chown={o}"));
    }
    if let Some(m) = &c.chmod {
        s.push_str(&format!(" --chmod={m}"));
    }
    if c.link {
        s.push_str(" --link");
    }
    for src in &c.sources {
        s.push(' ');
        s.push_str(src);
    }
    for inline in &c.inline {
        s.push_str(&format!(" <<{}", inline.name));
    }
    s.push(' ');
    s.push_str(&c.dest);
    s
}

/// The history entry for one *expanded* instruction. `config` is the config
/// *after* [`apply`] (for the shell and the resolved WORKDIR); `build_args`
/// are the stage's ARGs with values (they prefix RUN lines like BuildKit's).
pub fn history_entry(
    instr: &Instruction,
    config: &ImageConfig,
    build_args: &[(String, String)],
) -> HistoryEntry {
    let kv = |kv: &[(String, String)]| {
        kv.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let created_by = match instr {
        Instruction::Run(r) => {
            let argv = r.effective_command().to_argv(&config.shell_or_default());
            format!("RUN {} # buildkit", run_command_string(&argv, build_args))
        }
        Instruction::Copy(c) => format!("{} # buildkit", copy_text(c)),
        Instruction::Workdir(_) => format!("WORKDIR {}", config.working_dir),
        Instruction::Env(p) => format!("ENV {}", kv(p)),
        Instruction::Label(p) => format!("LABEL {}", kv(p)),
        Instruction::Arg(decls) => format!(
            "ARG {}",
            decls
                .iter()
                .map(|d| match &d.default {
                    Some(v) => format!("{}={v}", d.name),
                    None => d.name.clone(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Instruction::Cmd(_) => format!(
            "CMD {}",
            go_quoted_list(config.cmd.as_deref().unwrap_or_default())
        ),
        Instruction::Entrypoint(_) => format!(
            "ENTRYPOINT {}",
            go_quoted_list(config.entrypoint.as_deref().unwrap_or_default())
        ),
        Instruction::Expose(p) => format!("EXPOSE {}", p.join(" ")),
        Instruction::User(u) => format!("USER {u}"),
        Instruction::Volume(v) => format!("VOLUME {}", go_plain_list(v)),
        Instruction::StopSignal(s) => format!("STOPSIGNAL {s}"),
        Instruction::Healthcheck(h) => {
            let d = crate::duration::format_go_duration;
            if h.test == ["NONE"] {
                "HEALTHCHECK NONE".to_string()
            } else {
                format!(
                    "HEALTHCHECK --interval={} --timeout={} --start-period={} --start-interval={} --retries={} {}",
                    d(h.interval_ns),
                    d(h.timeout_ns),
                    d(h.start_period_ns),
                    d(h.start_interval_ns),
                    h.retries,
                    go_quoted_list(&h.test)
                )
            }
        }
        Instruction::Shell(s) => format!("SHELL {}", go_plain_list(s)),
        Instruction::Onbuild(e) => format!("ONBUILD {e}"),
    };
    HistoryEntry {
        created_by,
        empty_layer: !instr.makes_layer(),
        comment: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::{parse, Instruction};
    use crate::expand::{expand_instruction, Lexer};

    fn instrs(src: &str) -> Vec<Instruction> {
        let df = parse(&format!("FROM x\n{src}")).unwrap();
        df.stages[0]
            .instructions
            .iter()
            .map(|l| l.instruction.clone())
            .collect()
    }

    fn run(base: ImageConfig, src: &str) -> (ImageConfig, Vec<HistoryEntry>) {
        let mut c = base;
        let mut st = ApplyState::default();
        let mut hist = Vec::new();
        let lx = Lexer::new('\\');
        for i in instrs(src) {
            let e = expand_instruction(&lx, &i, &c.env_pairs()).unwrap();
            apply(&mut c, &mut st, &e).unwrap();
            hist.push(history_entry(&e, &c, &[]));
        }
        (c, hist)
    }

    #[test]
    fn entrypoint_resets_inherited_cmd_only() {
        let base = ImageConfig {
            cmd: Some(vec!["python3".into()]),
            ..Default::default()
        };
        let (c, _) = run(base.clone(), "ENTRYPOINT [\"/init\"]\n");
        assert_eq!(c.entrypoint, Some(vec!["/init".into()]));
        assert_eq!(c.cmd, None);
        let (c, _) = run(base.clone(), "CMD [\"a\"]\nENTRYPOINT [\"/init\"]\n");
        assert_eq!(c.cmd, Some(vec!["a".into()]));
        let (c, _) = run(base, "ENTRYPOINT /init run\n");
        assert_eq!(
            c.entrypoint,
            Some(vec!["/bin/sh".into(), "-c".into(), "/init run".into()])
        );
        let (c, _) = run(
            ImageConfig::default(),
            "ENTRYPOINT [\"x\"]\nENTRYPOINT []\n",
        );
        assert_eq!(c.entrypoint, None);
    }

    #[test]
    fn metadata_table() {
        let (c, h) = run(
            ImageConfig {
                env: vec!["PATH=/usr/bin".into()],
                ..Default::default()
            },
            "ENV A=1 B=\"two words\"\nENV PATH=/x:$PATH\nWORKDIR /app\nWORKDIR sub/../src\nUSER 1000:1000\n\
             EXPOSE 80 53/udp 8000-8001\nLABEL a=b \"c d\"=e\nVOLUME [\"/data\", \"/logs\"]\nSTOPSIGNAL SIGINT\n\
             SHELL [\"/bin/bash\", \"-c\"]\nCMD echo $HOME\nHEALTHCHECK --interval=30s --retries=3 CMD curl -f http://localhost/\n\
             ONBUILD RUN echo hi\n",
        );
        assert_eq!(c.env, vec!["PATH=/x:/usr/bin", "A=1", "B=two words"]);
        assert_eq!(c.working_dir, "/app/src");
        assert_eq!(c.user, "1000:1000");
        assert_eq!(
            c.exposed_ports.keys().cloned().collect::<Vec<_>>(),
            vec!["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]
        );
        assert_eq!(c.labels.get("c d").map(String::as_str), Some("e"));
        assert_eq!(c.volumes.len(), 2);
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(
            c.cmd,
            Some(vec!["/bin/bash".into(), "-c".into(), "echo $HOME".into()])
        );
        let hc = c.healthcheck.clone().unwrap();
        assert_eq!(hc.test, vec!["CMD-SHELL", "curl -f http://localhost/"]);
        assert_eq!((hc.interval, hc.retries), (30_000_000_000, 3));
        assert_eq!(c.on_build, vec!["RUN echo hi"]);
        let created: Vec<&str> = h.iter().map(|e| e.created_by.as_str()).collect();
        assert_eq!(created[0], "ENV A=1 B=two words");
        assert_eq!(created[3], "WORKDIR /app/src");
        assert_eq!(created[9], "SHELL [/bin/bash -c]");
        assert_eq!(created[10], "CMD [\"/bin/bash\" \"-c\" \"echo $HOME\"]");
        assert!(h.iter().all(|e| e.empty_layer));
        let j = c.to_docker_json();
        assert_eq!(j["ExposedPorts"]["80/tcp"], serde_json::json!({}));
        assert_eq!(j["Healthcheck"]["Interval"], 30_000_000_000i64);
        assert_eq!(j["Shell"][0], "/bin/bash");
        let oci = c.to_oci();
        assert_eq!(oci.working_dir().as_deref(), Some("/app/src"));
        assert_eq!(ImageConfig::from_oci(&oci).env, c.env);
    }

    #[test]
    fn run_and_copy_history() {
        let (_, h) = run(
            ImageConfig::default(),
            "RUN pip install -r requirements.txt\nCOPY --chown=1:1 . /code\nRUN [\"a\", \"b\"]\n",
        );
        assert_eq!(
            h[0].created_by,
            "RUN /bin/sh -c pip install -r requirements.txt # buildkit"
        );
        assert!(!h[0].empty_layer);
        assert_eq!(h[1].created_by, "COPY --chown=1:1 . /code # buildkit");
        assert_eq!(h[2].created_by, "RUN a b # buildkit");
        let args = vec![("V".to_string(), "1".to_string())];
        assert_eq!(run_command_string(&["x".into()], &args), "|1 V=1 x");
    }

    #[test]
    fn full_image_config() {
        let base: oci_spec::image::ImageConfiguration = serde_json::from_value(serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:aaa"]},
            "history": [{"created_by": "base"}]
        }))
        .unwrap();
        let (cfg, hist) = run(
            ImageConfig::from_oci(base.config().as_ref().unwrap()),
            "RUN x\nHEALTHCHECK CMD true\n",
        );
        let platform = crate::args::Platform::parse("linux/arm64/v8").unwrap();
        let j = image_config_json(
            Some(&base),
            &cfg,
            &hist,
            &["sha256:bbb".into()],
            "2026-01-01T00:00:00Z",
            &platform,
        )
        .unwrap();
        assert_eq!(
            j["rootfs"]["diff_ids"],
            serde_json::json!(["sha256:aaa", "sha256:bbb"])
        );
        assert_eq!(j["history"].as_array().unwrap().len(), 3);
        assert_eq!(j["history"][2]["empty_layer"], true);
        assert_eq!(
            (j["architecture"].as_str(), j["variant"].as_str()),
            (Some("arm64"), Some("v8"))
        );
        assert_eq!(j["config"]["Healthcheck"]["Test"][0], "CMD-SHELL");
        assert_eq!(j["config"]["Env"][0], "PATH=/bin");
        // It reads back as an OCI image config.
        let back: oci_spec::image::ImageConfiguration = serde_json::from_value(j).unwrap();
        assert_eq!(back.rootfs().diff_ids().len(), 2);
        assert!(image_config_json(None, &cfg, &hist, &[], "t", &platform).is_err());
        // Raw Docker config JSON keeps the extras.
        let raw: ImageConfig = serde_json::from_value(serde_json::json!({
            "Healthcheck": {"Test": ["NONE"]}, "Shell": ["/bin/bash", "-c"],
            "ExposedPorts": {"80/tcp": {}}, "Cmd": null, "Volumes": null, "OnBuild": null,
            "Labels": null, "User": null, "Env": null
        }))
        .unwrap();
        assert_eq!(raw.healthcheck.as_ref().unwrap().test, vec!["NONE"]);
        assert_eq!(raw.shell_or_default(), vec!["/bin/bash", "-c"]);
        assert!(raw.exposed_ports.contains_key("80/tcp"));
        assert!(raw.env.is_empty() && raw.labels.is_empty() && raw.user.is_empty());
    }

    #[test]
    fn bad_metadata() {
        let mut c = ImageConfig::default();
        let mut st = ApplyState::default();
        let e = |c: &mut ImageConfig, st: &mut ApplyState, i: Instruction| {
            apply(c, st, &i).unwrap_err()
        };
        assert_eq!(
            e(&mut c, &mut st, Instruction::Expose(vec!["http".into()])),
            "invalid containerPort: http"
        );
        assert_eq!(
            e(&mut c, &mut st, Instruction::Expose(vec!["80/xyz".into()])),
            "invalid proto: xyz"
        );
        assert_eq!(
            e(&mut c, &mut st, Instruction::StopSignal("SIGFOO".into())),
            "invalid signal: SIGFOO"
        );
        assert!(
            check_signal("9").is_ok()
                && check_signal("term").is_ok()
                && check_signal("SIGRTMIN+3").is_ok()
        );
        assert_eq!(resolve_workdir("", "a/./b//c/.."), "/a/b");
        assert_eq!(resolve_workdir("/x", "/../y"), "/y");
    }
}
