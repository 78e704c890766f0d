//! Normalize stage: the merged tree → typed structs in one long form.
//! Every conversion error names the value's position and path.

use std::path::{Path as FsPath, PathBuf};

use indexmap::IndexMap;

use crate::interpolate::Env;
use crate::model::*;
use crate::path::Path;
use crate::short;
use crate::units;
use crate::yaml::{to_json, Node, Typed, Value};
use crate::Error;

/// What normalization needs to know about the project.
pub struct Cx<'a> {
    pub project: &'a str,
    pub working_dir: &'a FsPath,
    /// Variables for bare `environment` entries and env_file interpolation.
    pub env: &'a Env,
    /// (key, service) pairs of keys kept but not acted on.
    pub ignored: Vec<(String, String)>,
}

pub fn err(n: &Node, p: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: {p}: {msg}", n.mark))
}

pub fn string(n: &Node, p: &Path) -> Result<String, Error> {
    match &n.value {
        Value::Scalar { text, .. } => Ok(text.clone()),
        _ => Err(err(n, p, format!("must be a string, not {}", n.kind()))),
    }
}

fn opt_string(n: &Node, p: &Path) -> Result<Option<String>, Error> {
    if n.is_null() {
        return Ok(None);
    }
    string(n, p).map(Some)
}

pub fn boolean(n: &Node, p: &Path) -> Result<bool, Error> {
    match n.typed() {
        Some(Typed::Bool(b)) => Ok(b),
        Some(Typed::Str(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" | "1" => Ok(true),
            "false" | "no" | "n" | "off" | "0" => Ok(false),
            _ => Err(err(n, p, format!("must be a boolean, not \"{s}\""))),
        },
        _ => Err(err(n, p, format!("must be a boolean, not {}", n.kind()))),
    }
}

pub fn integer(n: &Node, p: &Path) -> Result<i64, Error> {
    match n.typed() {
        Some(Typed::Int(i)) => Ok(i),
        Some(Typed::Str(s)) => s
            .trim()
            .parse()
            .map_err(|_| err(n, p, format!("must be an integer, not \"{s}\""))),
        _ => Err(err(n, p, format!("must be an integer, not {}", n.kind()))),
    }
}

fn unsigned(n: &Node, p: &Path) -> Result<u64, Error> {
    let i = integer(n, p)?;
    u64::try_from(i).map_err(|_| err(n, p, format!("must not be negative, got {i}")))
}

fn float(n: &Node, p: &Path) -> Result<f64, Error> {
    let v = match n.typed() {
        Some(Typed::Int(i)) => i as f64,
        Some(Typed::Float(f)) => f,
        Some(Typed::Str(s)) => s
            .trim()
            .parse()
            .map_err(|_| err(n, p, format!("must be a number, not \"{s}\"")))?,
        _ => return Err(err(n, p, format!("must be a number, not {}", n.kind()))),
    };
    if !v.is_finite() || v < 0.0 {
        return Err(err(n, p, format!("must be a positive number, not {v}")));
    }
    Ok(v)
}

fn duration(n: &Node, p: &Path) -> Result<std::time::Duration, Error> {
    match n.typed() {
        Some(Typed::Str(s)) => units::parse_duration(s).map_err(|e| err(n, p, e)),
        Some(Typed::Int(0)) => Ok(std::time::Duration::ZERO),
        _ => Err(err(
            n,
            p,
            format!("must be a duration such as \"30s\", not {}", n.kind()),
        )),
    }
}

fn bytes(n: &Node, p: &Path) -> Result<u64, Error> {
    match n.typed() {
        Some(Typed::Int(i)) => {
            u64::try_from(i).map_err(|_| err(n, p, format!("must not be negative, got {i}")))
        }
        Some(Typed::Str(s)) => units::parse_bytes(s).map_err(|e| err(n, p, e)),
        _ => Err(err(
            n,
            p,
            format!("must be a size such as \"512m\", not {}", n.kind()),
        )),
    }
}

/// A string or a list of strings.
fn string_list(n: &Node, p: &Path) -> Result<Vec<String>, Error> {
    match &n.value {
        Value::Null => Ok(Vec::new()),
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, it)| string(it, &p.index(i)))
            .collect(),
        _ => Ok(vec![string(n, p)?]),
    }
}

/// A `KEY=VAL` list or a map, values as strings (`None` for a bare key or null).
fn kv_map(n: &Node, p: &Path) -> Result<IndexMap<String, Option<String>>, Error> {
    let mut out = IndexMap::new();
    match &n.value {
        Value::Null => {}
        Value::Seq(items) => {
            for (i, it) in items.iter().enumerate() {
                let s = string(it, &p.index(i))?;
                match s.split_once('=') {
                    Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                    None => out.insert(s, None),
                };
            }
        }
        Value::Map(m) => {
            for (k, v) in m {
                let val = match &v.value {
                    Value::Null => None,
                    Value::Scalar { text, .. } => Some(text.clone()),
                    _ => {
                        return Err(err(
                            v,
                            &p.key(k),
                            format!("must be a string, number or boolean, not {}", v.kind()),
                        ))
                    }
                };
                out.insert(k.clone(), val);
            }
        }
        Value::Scalar { .. } => {
            return Err(err(
                n,
                p,
                "must be a mapping or a list of KEY=VALUE strings",
            ))
        }
    }
    Ok(out)
}

fn labels(n: &Node, p: &Path) -> Result<IndexMap<String, String>, Error> {
    Ok(kv_map(n, p)?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

fn map_of<'n>(n: &'n Node, p: &Path) -> Result<&'n IndexMap<String, Node>, Error> {
    n.as_map()
        .ok_or_else(|| err(n, p, format!("must be a mapping, not {}", n.kind())))
}

/// `~` → $HOME, relative → against `base`.
pub fn resolve_path(base: &FsPath, raw: &str) -> PathBuf {
    resolve_path_home(base, raw, std::env::var("HOME").ok().as_deref())
}

/// As [`resolve_path`], with the home directory given.
pub fn resolve_path_home(base: &FsPath, raw: &str, home: Option<&str>) -> PathBuf {
    if let Some(rest) = raw.strip_prefix('~') {
        if rest.is_empty() || rest.starts_with('/') {
            if let Some(home) = home {
                return clean(&PathBuf::from(home).join(rest.trim_start_matches('/')));
            }
        }
    }
    let p = FsPath::new(raw);
    if p.is_absolute() {
        clean(p)
    } else {
        clean(&base.join(p))
    }
}

/// Lexically remove `.` and `..` (as Go's filepath.Clean), without touching the disk.
fn clean(p: &FsPath) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn is_remote_context(s: &str) -> bool {
    s.contains("://") || s.starts_with("git@") || s.starts_with("github.com/")
}

fn command(n: &Node, p: &Path) -> Result<Option<Vec<String>>, Error> {
    match &n.value {
        Value::Null => Ok(None),
        Value::Seq(_) => Ok(Some(string_list(n, p)?)),
        _ => {
            let s = string(n, p)?;
            shlex::split(&s).map(Some).ok_or_else(|| {
                err(
                    n,
                    p,
                    format!("cannot split \"{s}\" into words: unbalanced quotes"),
                )
            })
        }
    }
}

impl Cx<'_> {
    fn home(&self) -> Option<&str> {
        self.env.get("HOME").map(String::as_str)
    }

    pub fn service(&mut self, name: &str, n: &Node) -> Result<Service, Error> {
        let p = Path::of(&["services", name]);
        let m = map_of(n, &p)?;
        // Services from other directories (extends, include) arrive with absolute paths.
        let dir = self.working_dir.to_path_buf();
        let mut s = Service::default();
        let mut environment_node = None;
        for (key, v) in m {
            let p = p.key(key);
            match key.as_str() {
                "build" => s.build = Some(self.build(v, &p, &dir)?),
                "cap_add" => s.cap_add = string_list(v, &p)?,
                "cap_drop" => s.cap_drop = string_list(v, &p)?,
                "command" => s.command = command(v, &p)?,
                "container_name" => s.container_name = opt_string(v, &p)?,
                "cpus" => s.cpus = Some(float(v, &p)?),
                "depends_on" => s.depends_on = depends_on(v, &p)?,
                "deploy" => s.deploy = deploy(v, &p)?,
                "devices" => s.devices = devices(v, &p)?,
                "dns" => s.dns = string_list(v, &p)?,
                "dns_opt" => s.dns_opt = string_list(v, &p)?,
                "dns_search" => s.dns_search = string_list(v, &p)?,
                "domainname" => s.domainname = opt_string(v, &p)?,
                "entrypoint" => s.entrypoint = command(v, &p)?,
                "env_file" => s.env_file = env_files(v, &p, &dir, self.home())?,
                "environment" => environment_node = Some((v, p)),
                "expose" => s.expose = string_list(v, &p)?,
                "extra_hosts" => s.extra_hosts = extra_hosts(v, &p)?,
                "group_add" => s.group_add = string_list(v, &p)?,
                "healthcheck" => s.healthcheck = Some(healthcheck(v, &p)?),
                "hostname" => s.hostname = opt_string(v, &p)?,
                "image" => s.image = opt_string(v, &p)?,
                "init" => s.init = Some(boolean(v, &p)?),
                "ipc" => s.ipc = opt_string(v, &p)?,
                "labels" => s.labels = labels(v, &p)?,
                "logging" => s.logging = Some(logging(v, &p)?),
                "mac_address" => s.mac_address = opt_string(v, &p)?,
                "mem_limit" => s.mem_limit = Some(bytes(v, &p)?),
                "mem_reservation" => s.mem_reservation = Some(bytes(v, &p)?),
                "memswap_limit" => {
                    s.memswap_limit = Some(match integer(v, &p) {
                        Ok(i) => i,
                        Err(_) => bytes(v, &p)? as i64,
                    })
                }
                "network_mode" => s.network_mode = opt_string(v, &p)?,
                "networks" => s.networks = service_networks(v, &p)?,
                "oom_score_adj" => s.oom_score_adj = Some(integer(v, &p)?),
                "pid" => s.pid = opt_string(v, &p)?,
                "pids_limit" => s.pids_limit = Some(integer(v, &p)?),
                "platform" => s.platform = opt_string(v, &p)?,
                "ports" => s.ports = ports(v, &p)?,
                "privileged" => s.privileged = boolean(v, &p)?,
                "profiles" => s.profiles = string_list(v, &p)?,
                "pull_policy" => s.pull_policy = opt_string(v, &p)?,
                "read_only" => s.read_only = boolean(v, &p)?,
                "restart" => s.restart = Some(restart(v, &p)?),
                "scale" => {
                    s.scale = Some(
                        u32::try_from(unsigned(v, &p)?).map_err(|_| err(v, &p, "is too large"))?,
                    )
                }
                "security_opt" => s.security_opt = string_list(v, &p)?,
                "shm_size" => s.shm_size = Some(bytes(v, &p)?),
                "stdin_open" => s.stdin_open = boolean(v, &p)?,
                "stop_grace_period" => s.stop_grace_period = Some(duration(v, &p)?),
                "stop_signal" => s.stop_signal = opt_string(v, &p)?,
                "sysctls" => s.sysctls = labels(v, &p)?,
                "tmpfs" => s.tmpfs = string_list(v, &p)?,
                "tty" => s.tty = boolean(v, &p)?,
                "ulimits" => s.ulimits = ulimits(v, &p)?,
                "user" => s.user = opt_string(v, &p)?,
                "userns_mode" => s.userns_mode = opt_string(v, &p)?,
                "uts" => s.uts = opt_string(v, &p)?,
                "volumes" => s.volumes = volumes(v, &p, &dir, self.home())?,
                "volumes_from" => s.volumes_from = string_list(v, &p)?,
                "working_dir" => s.working_dir = opt_string(v, &p)?,
                // Resolved by the extends stage already.
                "extends" => {}
                "secrets" | "configs" => {
                    self.ignored.push((key.to_string(), name.to_string()));
                    s.extra.insert(key.to_string(), long_refs(v));
                }
                other => {
                    if !other.starts_with("x-") {
                        self.ignored.push((other.to_string(), name.to_string()));
                    }
                    s.extra.insert(other.to_string(), to_json(v));
                }
            }
        }
        // env_file values first, then `environment` wins; bare names come from our environment.
        for f in &s.env_file {
            for (k, v) in read_env_file(f, self.env, m.get("env_file").unwrap_or(n))? {
                s.environment.insert(k, v);
            }
        }
        if let Some((v, p)) = environment_node {
            for (k, val) in kv_map(v, &p)? {
                let val = val.or_else(|| self.env.get(&k).cloned());
                s.environment.insert(k, val);
            }
        }
        if s.network_mode.is_none() && s.networks.is_empty() {
            s.networks.insert("default".into(), None);
        }
        if let Some(d) = &s.deploy {
            if let (Some(scale), Some(replicas)) = (s.scale, d.replicas) {
                if scale != replicas {
                    let at = m.get("scale").unwrap_or(n);
                    return Err(err(at, &p.key("scale"), format!("scale ({scale}) and deploy.replicas ({replicas}) disagree; set only one")));
                }
            }
        }
        Ok(s)
    }

    fn build(&self, n: &Node, p: &Path, dir: &FsPath) -> Result<Build, Error> {
        let mut b = Build {
            context: ".".into(),
            dockerfile: "Dockerfile".into(),
            ..Default::default()
        };
        match &n.value {
            Value::Scalar { text, .. } => b.context = text.clone(),
            Value::Map(m) => {
                for (k, v) in m {
                    let p = p.key(k);
                    match k.as_str() {
                        "context" => b.context = string(v, &p)?,
                        "dockerfile" => b.dockerfile = string(v, &p)?,
                        "args" => b.args = kv_map(v, &p)?,
                        "labels" => b.labels = labels(v, &p)?,
                        "network" => b.network = opt_string(v, &p)?,
                        "target" => b.target = opt_string(v, &p)?,
                        other => {
                            b.extra.insert(other.to_string(), to_json(v));
                        }
                    }
                }
            }
            _ => {
                return Err(err(
                    n,
                    p,
                    format!("must be a path or a mapping, not {}", n.kind()),
                ))
            }
        }
        if !is_remote_context(&b.context) {
            b.context = resolve_path_home(dir, &b.context, self.home())
                .to_string_lossy()
                .into_owned();
        }
        for (k, v) in b.args.iter_mut() {
            if v.is_none() {
                *v = self.env.get(k).cloned();
            }
        }
        Ok(b)
    }
}

/// Service secrets/configs in long form: `- name` → `- source: name`.
fn long_refs(n: &Node) -> serde_json::Value {
    let items = n.as_seq().unwrap_or_default();
    serde_json::Value::Array(
        items
            .iter()
            .map(|it| match it.as_text() {
                Some(name) => serde_json::json!({ "source": name }),
                None => to_json(it),
            })
            .collect(),
    )
}

fn depends_on(n: &Node, p: &Path) -> Result<IndexMap<String, Dependency>, Error> {
    let mut out = IndexMap::new();
    match &n.value {
        Value::Seq(items) => {
            for (i, it) in items.iter().enumerate() {
                let name = string(it, &p.index(i))?;
                out.insert(
                    name,
                    Dependency {
                        condition: "service_started".into(),
                        restart: false,
                        required: true,
                    },
                );
            }
        }
        Value::Map(m) => {
            for (name, v) in m {
                let p = p.key(name);
                let mut d = Dependency {
                    condition: "service_started".into(),
                    restart: false,
                    required: true,
                };
                if let Some(dm) = v.as_map() {
                    for (k, x) in dm {
                        let p = p.key(k);
                        match k.as_str() {
                            "condition" => {
                                let c = string(x, &p)?;
                                if !matches!(
                                    c.as_str(),
                                    "service_started"
                                        | "service_healthy"
                                        | "service_completed_successfully"
                                ) {
                                    return Err(err(x, &p, format!("unknown condition \"{c}\" (service_started, service_healthy or service_completed_successfully)")));
                                }
                                d.condition = c;
                            }
                            "required" => d.required = boolean(x, &p)?,
                            "restart" => d.restart = boolean(x, &p)?,
                            _ => {}
                        }
                    }
                }
                out.insert(name.clone(), d);
            }
        }
        Value::Null => {}
        _ => return Err(err(n, p, "must be a list of service names or a mapping")),
    }
    Ok(out)
}

fn deploy(n: &Node, p: &Path) -> Result<Option<Deploy>, Error> {
    let Some(m) = n.as_map() else { return Ok(None) };
    let mut d = Deploy::default();
    for (k, v) in m {
        let p = p.key(k);
        match k.as_str() {
            "replicas" => {
                d.replicas =
                    Some(u32::try_from(unsigned(v, &p)?).map_err(|_| err(v, &p, "is too large"))?)
            }
            "resources" => {
                let rm = map_of(v, &p)?;
                let mut r = Resources::default();
                for (rk, rv) in rm {
                    let p = p.key(rk);
                    let res = resource(rv, &p)?;
                    match rk.as_str() {
                        "limits" => r.limits = Some(res),
                        "reservations" => r.reservations = Some(res),
                        _ => {}
                    }
                }
                d.resources = Some(r);
            }
            "restart_policy" => {
                let rm = map_of(v, &p)?;
                let mut rp = RestartPolicy::default();
                for (rk, rv) in rm {
                    let p = p.key(rk);
                    match rk.as_str() {
                        "condition" => rp.condition = opt_string(rv, &p)?,
                        "delay" => rp.delay = Some(duration(rv, &p)?),
                        "max_attempts" => rp.max_attempts = Some(unsigned(rv, &p)?),
                        "window" => rp.window = Some(duration(rv, &p)?),
                        _ => {}
                    }
                }
                d.restart_policy = Some(rp);
            }
            other => {
                d.extra.insert(other.to_string(), to_json(v));
            }
        }
    }
    Ok(Some(d))
}

fn resource(n: &Node, p: &Path) -> Result<Resource, Error> {
    let m = map_of(n, p)?;
    let mut r = Resource::default();
    for (k, v) in m {
        let p = p.key(k);
        match k.as_str() {
            "cpus" => r.cpus = Some(float(v, &p)?),
            "memory" => r.memory = Some(bytes(v, &p)?),
            "pids" => r.pids = Some(integer(v, &p)?),
            other => {
                r.extra.insert(other.to_string(), to_json(v));
            }
        }
    }
    Ok(r)
}

fn devices(n: &Node, p: &Path) -> Result<Vec<Device>, Error> {
    let mut out = Vec::new();
    for (i, it) in n.as_seq().unwrap_or_default().iter().enumerate() {
        let p = p.index(i);
        if let Some(m) = it.as_map() {
            let get = |k: &str| m.get(k).map(|v| string(v, &p.key(k))).transpose();
            let source = get("source")?.unwrap_or_default();
            out.push(Device {
                target: get("target")?.unwrap_or_else(|| source.clone()),
                permissions: get("permissions")?.unwrap_or_else(|| "rwm".into()),
                source,
            });
            continue;
        }
        let s = string(it, &p)?;
        let parts: Vec<&str> = s.split(':').collect();
        let (source, target, perms) = match parts.as_slice() {
            [s] => (*s, *s, "rwm"),
            [s, t] if t.starts_with('/') => (*s, *t, "rwm"),
            [s, perm] => (*s, *s, *perm),
            [s, t, perm] => (*s, *t, *perm),
            _ => {
                return Err(err(
                    it,
                    &p,
                    format!("invalid device \"{s}\": expected SOURCE[:TARGET[:PERMISSIONS]]"),
                ))
            }
        };
        if !perms.chars().all(|c| "rwm".contains(c)) || perms.is_empty() {
            return Err(err(
                it,
                &p,
                format!("invalid device \"{s}\": permissions must be made of r, w and m"),
            ));
        }
        out.push(Device {
            source: source.into(),
            target: target.into(),
            permissions: perms.into(),
        });
    }
    Ok(out)
}

fn env_files(n: &Node, p: &Path, dir: &FsPath, home: Option<&str>) -> Result<Vec<EnvFile>, Error> {
    let items: Vec<(usize, &Node)> = match &n.value {
        Value::Seq(items) => items.iter().enumerate().collect(),
        _ => vec![(0, n)],
    };
    let mut out = Vec::new();
    for (i, it) in items {
        let p = if n.as_seq().is_some() {
            p.index(i)
        } else {
            p.clone()
        };
        let (path, required, format) = match it.as_map() {
            Some(m) => {
                let path = m
                    .get("path")
                    .ok_or_else(|| err(it, &p, "needs a \"path\""))?;
                let required = m
                    .get("required")
                    .map(|r| boolean(r, &p.key("required")))
                    .transpose()?
                    .unwrap_or(true);
                let format = m
                    .get("format")
                    .map(|f| string(f, &p.key("format")))
                    .transpose()?;
                (string(path, &p.key("path"))?, required, format)
            }
            None => (string(it, &p)?, true, None),
        };
        out.push(EnvFile {
            path: resolve_path_home(dir, &path, home),
            required,
            format,
        });
    }
    Ok(out)
}

fn read_env_file(
    f: &EnvFile,
    env: &Env,
    at: &Node,
) -> Result<Vec<(String, Option<String>)>, Error> {
    let text = match std::fs::read_to_string(&f.path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !f.required => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Invalid(format!(
                "{}: env file {} not found: {e}; create it or mark it `required: false`",
                at.mark,
                f.path.display()
            )))
        }
    };
    crate::dotenv::parse(&text, env)
        .map_err(|e| Error::Invalid(format!("{}:{e}", f.path.display())))
}

fn extra_hosts(n: &Node, p: &Path) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    match &n.value {
        Value::Map(m) => {
            for (host, v) in m {
                for ip in string_list(v, &p.key(host))? {
                    out.push(format!("{host}={ip}"));
                }
            }
        }
        _ => {
            for (i, entry) in string_list(n, p)?.into_iter().enumerate() {
                // `host=ip` or `host:ip` (the IP may be IPv6, so split at the first ':').
                let split = entry.split_once('=').or_else(|| entry.split_once(':'));
                match split {
                    Some((h, ip)) if !h.is_empty() && !ip.is_empty() => {
                        let ip = ip.trim_start_matches('[').trim_end_matches(']');
                        out.push(format!("{h}={ip}"))
                    }
                    _ => {
                        let at = n.as_seq().and_then(|s| s.get(i)).unwrap_or(n);
                        return Err(err(
                            at,
                            &p.index(i),
                            format!("invalid extra host \"{entry}\": expected HOST=IP or HOST:IP"),
                        ));
                    }
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

fn healthcheck(n: &Node, p: &Path) -> Result<Healthcheck, Error> {
    let m = map_of(n, p)?;
    let mut h = Healthcheck::default();
    for (k, v) in m {
        let p = p.key(k);
        match k.as_str() {
            "test" => {
                h.test = match &v.value {
                    Value::Seq(_) => {
                        let t = string_list(v, &p)?;
                        match t.first().map(String::as_str) {
                            Some("CMD" | "CMD-SHELL" | "NONE") => t,
                            _ => return Err(err(
                                v,
                                &p,
                                "a test list must start with \"CMD\", \"CMD-SHELL\" or \"NONE\"",
                            )),
                        }
                    }
                    _ => vec!["CMD-SHELL".into(), string(v, &p)?],
                }
            }
            "interval" => h.interval = Some(duration(v, &p)?),
            "timeout" => h.timeout = Some(duration(v, &p)?),
            "start_period" => h.start_period = Some(duration(v, &p)?),
            "start_interval" => h.start_interval = Some(duration(v, &p)?),
            "retries" => h.retries = Some(unsigned(v, &p)?),
            "disable" => h.disable = boolean(v, &p)?,
            _ => {}
        }
    }
    if h.disable {
        h.test = vec!["NONE".into()];
    }
    Ok(h)
}

fn logging(n: &Node, p: &Path) -> Result<Logging, Error> {
    let m = map_of(n, p)?;
    let mut l = Logging::default();
    for (k, v) in m {
        let p = p.key(k);
        match k.as_str() {
            "driver" => l.driver = opt_string(v, &p)?,
            "options" => l.options = kv_map(v, &p)?,
            _ => {}
        }
    }
    Ok(l)
}

fn service_networks(n: &Node, p: &Path) -> Result<IndexMap<String, Option<ServiceNetwork>>, Error> {
    let mut out = IndexMap::new();
    match &n.value {
        Value::Seq(items) => {
            for (i, it) in items.iter().enumerate() {
                out.insert(string(it, &p.index(i))?, None);
            }
        }
        Value::Map(m) => {
            for (name, v) in m {
                let p = p.key(name);
                let Some(nm) = v.as_map() else {
                    out.insert(name.clone(), None);
                    continue;
                };
                let mut sn = ServiceNetwork::default();
                for (k, x) in nm {
                    let p = p.key(k);
                    match k.as_str() {
                        "aliases" => sn.aliases = string_list(x, &p)?,
                        "ipv4_address" => {
                            let a = string(x, &p)?;
                            if a.parse::<std::net::Ipv4Addr>().is_err() {
                                return Err(err(x, &p, format!("\"{a}\" is not an IPv4 address")));
                            }
                            sn.ipv4_address = Some(a);
                        }
                        "ipv6_address" => {
                            let a = string(x, &p)?;
                            if a.parse::<std::net::Ipv6Addr>().is_err() {
                                return Err(err(x, &p, format!("\"{a}\" is not an IPv6 address")));
                            }
                            sn.ipv6_address = Some(a);
                        }
                        "mac_address" => sn.mac_address = opt_string(x, &p)?,
                        "priority" => sn.priority = Some(integer(x, &p)?),
                        other => {
                            sn.extra.insert(other.to_string(), to_json(x));
                        }
                    }
                }
                out.insert(name.clone(), Some(sn));
            }
        }
        _ => return Err(err(n, p, "must be a list of network names or a mapping")),
    }
    Ok(out)
}

fn ports(n: &Node, p: &Path) -> Result<Vec<Port>, Error> {
    let mut out: Vec<Port> = Vec::new();
    for (i, it) in n.as_seq().unwrap_or_default().iter().enumerate() {
        let p = p.index(i);
        let parsed = match &it.value {
            Value::Map(m) => {
                let get = |k: &str| m.get(k).map(|v| string(v, &p.key(k))).transpose();
                let target_node = m
                    .get("target")
                    .ok_or_else(|| err(it, &p, "a port needs a \"target\""))?;
                let target_s = string(target_node, &p.key("target"))?;
                let (target, hi) = short::range(&target_s).map_err(|e| {
                    err(
                        target_node,
                        &p.key("target"),
                        format!("invalid port \"{target_s}\": {e}"),
                    )
                })?;
                if hi != target {
                    return Err(err(
                        target_node,
                        &p.key("target"),
                        "a long-form target must be a single port",
                    ));
                }
                let published = get("published")?.filter(|s| !s.is_empty());
                if let Some(pb) = &published {
                    short::range(pb).map_err(|e| {
                        err(
                            &m["published"],
                            &p.key("published"),
                            format!("invalid port \"{pb}\": {e}"),
                        )
                    })?;
                }
                let protocol = get("protocol")?
                    .unwrap_or_else(|| "tcp".into())
                    .to_ascii_lowercase();
                if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
                    return Err(err(
                        &m["protocol"],
                        &p.key("protocol"),
                        format!("unknown protocol \"{protocol}\" (tcp, udp or sctp)"),
                    ));
                }
                let mode = get("mode")?.unwrap_or_else(|| "ingress".into());
                if !matches!(mode.as_str(), "ingress" | "host") {
                    return Err(err(
                        &m["mode"],
                        &p.key("mode"),
                        format!("unknown mode \"{mode}\" (ingress or host)"),
                    ));
                }
                vec![Port {
                    name: get("name")?,
                    mode,
                    host_ip: get("host_ip")?,
                    target,
                    published,
                    protocol,
                    app_protocol: get("app_protocol")?,
                }]
            }
            _ => {
                let spec = string(it, &p)?;
                short::parse_port(&spec).map_err(|e| err(it, &p, e))?
            }
        };
        for port in parsed {
            // Merged files may repeat a port: keep the first of each {ip, target, published, protocol}.
            let dup = out.iter().any(|o| {
                o.host_ip == port.host_ip
                    && o.target == port.target
                    && o.published == port.published
                    && o.protocol == port.protocol
            });
            if !dup {
                out.push(port);
            }
        }
    }
    Ok(out)
}

fn restart(n: &Node, p: &Path) -> Result<String, Error> {
    let s = match n.typed() {
        Some(Typed::Bool(false)) => "no".to_string(),
        _ => string(n, p)?,
    };
    let ok = match s.split_once(':') {
        Some(("on-failure", count)) => count.parse::<u32>().is_ok(),
        None => matches!(
            s.as_str(),
            "no" | "always" | "on-failure" | "unless-stopped"
        ),
        _ => false,
    };
    if !ok {
        return Err(err(
            n,
            p,
            format!("invalid restart policy \"{s}\" (no, always, on-failure[:N], unless-stopped)"),
        ));
    }
    Ok(s)
}

fn ulimits(n: &Node, p: &Path) -> Result<IndexMap<String, Ulimit>, Error> {
    let mut out = IndexMap::new();
    for (k, v) in map_of(n, p)? {
        let p = p.key(k);
        let u = match v.as_map() {
            Some(m) => {
                let soft = m
                    .get("soft")
                    .ok_or_else(|| err(v, &p, "needs \"soft\" and \"hard\""))?;
                let hard = m
                    .get("hard")
                    .ok_or_else(|| err(v, &p, "needs \"soft\" and \"hard\""))?;
                let (soft, hard) = (
                    integer(soft, &p.key("soft"))?,
                    integer(hard, &p.key("hard"))?,
                );
                if soft > hard && hard >= 0 {
                    return Err(err(
                        v,
                        &p,
                        format!("soft limit {soft} is above the hard limit {hard}"),
                    ));
                }
                Ulimit::SoftHard { soft, hard }
            }
            None => Ulimit::Single(integer(v, &p)?),
        };
        out.insert(k.clone(), u);
    }
    Ok(out)
}

fn volumes(
    n: &Node,
    p: &Path,
    dir: &FsPath,
    home: Option<&str>,
) -> Result<Vec<ServiceVolume>, Error> {
    let mut out: Vec<ServiceVolume> = Vec::new();
    for (i, it) in n.as_seq().unwrap_or_default().iter().enumerate() {
        let p = p.index(i);
        let mut v = match it.as_map() {
            Some(m) => long_volume(it, m, &p)?,
            None => {
                let spec = string(it, &p)?;
                short::parse_volume(&spec).map_err(|e| err(it, &p, e))?
            }
        };
        if v.kind == "bind" {
            if v.source.is_empty() {
                return Err(err(it, &p, "a bind mount needs a \"source\""));
            }
            v.source = resolve_path_home(dir, &v.source, home)
                .to_string_lossy()
                .into_owned();
        }
        if out.iter().any(|o| o.target == v.target) {
            return Err(err(
                it,
                &p,
                format!("duplicate mount point \"{}\"", v.target),
            ));
        }
        out.push(v);
    }
    Ok(out)
}

fn long_volume(n: &Node, m: &IndexMap<String, Node>, p: &Path) -> Result<ServiceVolume, Error> {
    let get = |k: &str| m.get(k).map(|v| string(v, &p.key(k))).transpose();
    let kind = get("type")?.ok_or_else(|| err(n, p, "a long-form volume needs a \"type\""))?;
    let target =
        get("target")?.ok_or_else(|| err(n, p, "a long-form volume needs a \"target\""))?;
    let mut v = ServiceVolume {
        kind,
        source: get("source")?.unwrap_or_default(),
        target,
        read_only: m
            .get("read_only")
            .map(|r| boolean(r, &p.key("read_only")))
            .transpose()?
            .unwrap_or(false),
        bind: None,
        volume: None,
        tmpfs: None,
        extra: Default::default(),
    };
    for (k, x) in m {
        let p = p.key(k);
        match k.as_str() {
            "type" | "source" | "target" | "read_only" => {}
            "bind" => {
                let mut b = BindOptions::default();
                for (bk, bv) in map_of(x, &p)? {
                    let p = p.key(bk);
                    match bk.as_str() {
                        "propagation" => b.propagation = opt_string(bv, &p)?,
                        "create_host_path" => b.create_host_path = boolean(bv, &p)?,
                        "selinux" => b.selinux = opt_string(bv, &p)?,
                        "recursive" => b.recursive = opt_string(bv, &p)?,
                        _ => {}
                    }
                }
                v.bind = Some(b);
            }
            "volume" => {
                let mut o = VolumeOptions::default();
                for (ok, ov) in map_of(x, &p)? {
                    let p = p.key(ok);
                    match ok.as_str() {
                        "nocopy" => o.nocopy = boolean(ov, &p)?,
                        "subpath" => o.subpath = opt_string(ov, &p)?,
                        _ => {}
                    }
                }
                v.volume = Some(o);
            }
            "tmpfs" => {
                let mut t = TmpfsOptions::default();
                for (tk, tv) in map_of(x, &p)? {
                    let p = p.key(tk);
                    match tk.as_str() {
                        "size" => t.size = Some(bytes(tv, &p)?),
                        "mode" => {
                            let mode = match tv.typed() {
                                Some(Typed::Int(i)) => u32::try_from(i).ok(),
                                Some(Typed::Str(s)) => {
                                    u32::from_str_radix(s.trim_start_matches("0o"), 8).ok()
                                }
                                _ => None,
                            };
                            t.mode =
                                Some(mode.ok_or_else(|| {
                                    err(tv, &p, "must be a file mode such as 1777")
                                })?);
                        }
                        _ => {}
                    }
                }
                v.tmpfs = Some(t);
            }
            other => {
                v.extra.insert(other.to_string(), to_json(x));
            }
        }
    }
    if !v.target.starts_with('/') {
        return Err(err(
            &m["target"],
            &p.key("target"),
            format!("the container path \"{}\" must be absolute", v.target),
        ));
    }
    if v.kind == "volume" && v.volume.is_none() {
        v.volume = Some(VolumeOptions::default());
    }
    Ok(v)
}

/// Top-level networks: every one gets its real name.
pub fn networks(n: Option<&Node>, project: &str) -> Result<IndexMap<String, Network>, Error> {
    let mut out = IndexMap::new();
    let Some(n) = n else { return Ok(out) };
    let p = Path::of(&["networks"]);
    for (key, v) in map_of(n, &p)? {
        let p = p.key(key);
        let mut net = Network::default();
        let mut external_name = None;
        if let Some(m) = v.as_map() {
            for (k, x) in m {
                let p = p.key(k);
                match k.as_str() {
                    "name" => net.name = string(x, &p)?,
                    "driver" => net.driver = opt_string(x, &p)?,
                    "driver_opts" => net.driver_opts = labels(x, &p)?,
                    "ipam" => net.ipam = Some(to_json(x)),
                    "external" => (net.external, external_name) = external(x, &p)?,
                    "internal" => net.internal = boolean(x, &p)?,
                    "attachable" => net.attachable = boolean(x, &p)?,
                    "enable_ipv6" => net.enable_ipv6 = Some(boolean(x, &p)?),
                    "labels" => net.labels = labels(x, &p)?,
                    other => {
                        net.extra.insert(other.to_string(), to_json(x));
                    }
                }
            }
        }
        if net.name.is_empty() {
            net.name = match (net.external, external_name) {
                (true, Some(n)) => n,
                (true, None) => key.clone(),
                _ => format!("{project}_{key}"),
            };
        }
        out.insert(key.clone(), net);
    }
    Ok(out)
}

pub fn volumes_top(n: Option<&Node>, project: &str) -> Result<IndexMap<String, Volume>, Error> {
    let mut out = IndexMap::new();
    let Some(n) = n else { return Ok(out) };
    let p = Path::of(&["volumes"]);
    for (key, v) in map_of(n, &p)? {
        let p = p.key(key);
        let mut vol = Volume::default();
        let mut external_name = None;
        if let Some(m) = v.as_map() {
            for (k, x) in m {
                let p = p.key(k);
                match k.as_str() {
                    "name" => vol.name = string(x, &p)?,
                    "driver" => vol.driver = opt_string(x, &p)?,
                    "driver_opts" => vol.driver_opts = labels(x, &p)?,
                    "external" => (vol.external, external_name) = external(x, &p)?,
                    "labels" => vol.labels = labels(x, &p)?,
                    other => {
                        vol.extra.insert(other.to_string(), to_json(x));
                    }
                }
            }
        }
        if vol.name.is_empty() {
            vol.name = match (vol.external, external_name) {
                (true, Some(n)) => n,
                (true, None) => key.clone(),
                _ => format!("{project}_{key}"),
            };
        }
        out.insert(key.clone(), vol);
    }
    Ok(out)
}

/// `external: true` or the deprecated `external: {name: x}`.
fn external(n: &Node, p: &Path) -> Result<(bool, Option<String>), Error> {
    match n.as_map() {
        Some(m) => Ok((
            true,
            m.get("name")
                .map(|x| string(x, &p.key("name")))
                .transpose()?,
        )),
        None => Ok((boolean(n, p)?, None)),
    }
}
