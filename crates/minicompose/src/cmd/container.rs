//! `minicompose container …`: run, ls, exec, logs, stop, kill, rm, top, inspect.
//!
//! Parsing and output only; the work is in `mc_runtime`.

use std::collections::BTreeMap;
use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use mc_runtime::spec::{self, ContainerSpec, MountSpec, Resources};
use mc_runtime::{Attach, EtcFiles, Rlimit, Runtime};

use crate::cmd::container_net::{self, NetArgs};
use crate::exit::user_error;
use crate::global::Global;

#[derive(Subcommand)]
pub enum ContainerCmd {
    /// Create and run a new container from an image
    Run(Box<RunArgs>),
    /// List containers
    #[command(alias = "ps", alias = "list")]
    Ls(LsArgs),
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Display detailed information on one or more containers
    Inspect(InspectArgs),
    /// List port mappings of a container (networking: container_net.rs)
    Port(container_net::PortArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Run in the background and print the container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to take it from here)
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Container host name
    #[arg(long)]
    pub hostname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Memory limit (e.g. 64m)
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Number of CPUs (e.g. 0.5)
    #[arg(long)]
    pub cpus: Option<String>,
    /// Tune container pids limit (-1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Mount a tmpfs directory (PATH[:OPTIONS])
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Security options (seccomp=unconfined)
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Mount a host path or a named volume (SRC:DST[:ro]; a volume is created on first use)
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    #[command(flatten)]
    pub net: NetArgs,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<u64>,
    /// Keep STDIN open
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set metadata on a container (KEY=VALUE)
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Ulimit options (NAME=SOFT[:HARD], e.g. nofile=1024:2048)
    #[arg(long = "ulimit")]
    pub ulimit: Vec<String>,
    /// Namespaced kernel parameters (KEY=VALUE, e.g. net.core.somaxconn=1024)
    #[arg(long = "sysctl")]
    pub sysctl: Vec<String>,
    /// IMAGE is a root filesystem directory, not an image reference
    #[arg(long)]
    pub rootfs: bool,
    /// Image (or, with --rootfs, a directory)
    pub image: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args)]
pub struct LsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

#[derive(Args)]
pub struct ExecArgs {
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Keep STDIN open
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Run in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Container name or ID
    pub container: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Number of lines to show from the end of the logs ("all" for all)
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Container name or ID
    pub container: String,
}

#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time", alias = "timeout")]
    pub time: Option<u64>,
    /// Containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, default_value = "KILL")]
    pub signal: String,
    /// Containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    /// Force the removal of a running container
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct TopArgs {
    /// Container name or ID
    pub container: String,
}

#[derive(Args)]
pub struct InspectArgs {
    /// Containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn run(g: &Global, cmd: ContainerCmd) -> anyhow::Result<i32> {
    let rt = Runtime::open(&g.root);
    match cmd {
        ContainerCmd::Run(a) => run_container(g, &rt, *a),
        ContainerCmd::Ls(a) => ls(&rt, a),
        ContainerCmd::Exec(a) => exec(&rt, a),
        ContainerCmd::Logs(a) => logs(&rt, a),
        ContainerCmd::Stop(a) => each(&a.containers, |c| rt.stop(c, a.time).map(|_| ())),
        ContainerCmd::Kill(a) => {
            let sig = spec::parse_signal(&a.signal)?;
            each(&a.containers, |c| rt.kill(c, sig).map(|_| ()))
        }
        ContainerCmd::Rm(a) => each(&a.containers, |c| {
            let network = rt
                .containers
                .find(c)
                .map(|r| r.spec.network)
                .unwrap_or_default();
            rt.remove(c, a.force, &mut |id| net_teardown(g, &network, id))
                .map(|_| ())
        }),
        ContainerCmd::Top(a) => top(&rt, a),
        ContainerCmd::Inspect(a) => inspect(&rt, a),
        ContainerCmd::Port(a) => {
            container_net::port(g, &rt.containers.find(&a.container)?.spec.id, a)
        }
    }
}

/// Apply `f` to each container, printing its key like docker; errors go
/// to stderr and make the exit code 1.
fn each(
    keys: &[String],
    mut f: impl FnMut(&str) -> Result<(), mc_runtime::Error>,
) -> anyhow::Result<i32> {
    let mut code = 0;
    for k in keys {
        match f(k) {
            Ok(()) => println!("{k}"),
            Err(e) => {
                eprintln!("minicompose: {e}");
                code = if e.is_user_error() { 1 } else { 125 };
            }
        }
    }
    Ok(code)
}

/// Detach a container from its bridge network (none/host need nothing).
fn net_teardown(g: &Global, network: &str, id: &str) {
    if matches!(network, "none" | "host" | "") {
        return;
    }
    if let Err(e) = container_net::teardown(g, id) {
        eprintln!("minicompose: detaching {id} from network {network}: {e:#}");
    }
}

/// The network step (container_net::setup) plugged into the runtime: it
/// runs after the container's namespaces exist, before its command starts.
struct NetHook<'a> {
    g: &'a Global,
    args: &'a NetArgs,
    id: String,
    name: String,
    hostname: String,
    dir: PathBuf,
}

impl mc_runtime::NetworkHook for NetHook<'_> {
    fn needed(&self) -> bool {
        container_net::is_bridge(self.args)
    }

    fn setup(&mut self, pid: i32) -> Result<(), mc_runtime::Error> {
        let ctx = container_net::NetContext {
            id: self.id.clone(),
            name: self.name.clone(),
            hostname: self.hostname.clone(),
            pid: pid as u32,
            hosts_path: self.dir.join("hosts"),
            resolv_path: self.dir.join("resolv.conf"),
        };
        container_net::setup(self.g, self.args, &ctx).map_err(|e| {
            let user = e.chain().any(|c| c.is::<crate::exit::UserError>());
            if user {
                mc_runtime::Error::Invalid(crate::exit::one_line(&e))
            } else {
                mc_runtime::Error::Other(e)
            }
        })
    }
}

/// What an image tells us about how to run it.
#[derive(Default)]
struct ImageDefaults {
    id: String,
    reference: String,
    layers: Vec<PathBuf>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    env: Vec<String>,
    working_dir: String,
    user: String,
    stop_signal: Option<String>,
}

fn image_defaults(g: &Global, a: &RunArgs) -> anyhow::Result<ImageDefaults> {
    if a.rootfs {
        let dir = std::fs::canonicalize(&a.image).map_err(|e| {
            user_error(format!(
                "--rootfs {}: {e}: give an existing directory",
                a.image
            ))
        })?;
        if !dir.is_dir() {
            return Err(user_error(format!("--rootfs {}: not a directory", a.image)));
        }
        return Ok(ImageDefaults {
            id: String::new(),
            reference: dir.display().to_string(),
            layers: vec![dir],
            ..Default::default()
        });
    }
    let store = mc_image::Store::open(&g.root)?;
    let img = match store.get(&a.image)? {
        Some(img) => img,
        None => {
            eprintln!("Unable to find image '{}' locally", a.image);
            let opts = mc_image::PullOptions {
                mirrors: g.registry_mirror.clone(),
                progress: true,
                ..Default::default()
            };
            mc_image::ensure_blocking(&store, &a.image, &opts)?
        }
    };
    let mut d = ImageDefaults {
        id: img.id.clone(),
        reference: a.image.clone(),
        layers: img.layers.clone(),
        ..Default::default()
    };
    if let Some(c) = img.config.config() {
        d.entrypoint = c.entrypoint().clone().unwrap_or_default();
        d.cmd = c.cmd().clone().unwrap_or_default();
        d.env = c.env().clone().unwrap_or_default();
        d.working_dir = c.working_dir().clone().unwrap_or_default();
        d.user = c.user().clone().unwrap_or_default();
        d.stop_signal = c.stop_signal().clone();
    }
    Ok(d)
}

/// `-e K=V` / `-e K` (from our environment) and `--env-file` lines.
fn collect_env(files: &[PathBuf], flags: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut push = |item: &str| {
        if item.contains('=') {
            out.push(item.to_string());
        } else if let Ok(v) = std::env::var(item) {
            out.push(format!("{item}={v}"));
        }
    };
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| user_error(format!("--env-file {}: {e}", f.display())))?;
        for line in text.lines() {
            let l = line.trim_start();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            push(l);
        }
    }
    for e in flags {
        if e.is_empty() || e.starts_with('=') {
            return Err(user_error(format!(
                "invalid environment variable {e:?}: use KEY=VALUE"
            )));
        }
        push(e);
    }
    Ok(out)
}

/// `-v SRC:DST[:MODE]` and `--tmpfs`. SRC is an absolute host path (bind)
/// or a volume name (its `_data` directory, created by [`ensure_volumes`]).
fn parse_mounts(
    volume_root: &Path,
    volumes: &[String],
    tmpfs: &[String],
) -> anyhow::Result<Vec<MountSpec>> {
    let mut out = Vec::new();
    for v in volumes {
        let parts: Vec<&str> = v.split(':').collect();
        let (src, dst, mode) = match parts.as_slice() {
            [s, d] => (*s, *d, ""),
            [s, d, m] => (*s, *d, *m),
            _ => {
                return Err(user_error(format!(
                    "invalid volume {v:?}: use -v /host/path:/container/path[:ro]"
                )))
            }
        };
        let named = !src.starts_with('/');
        if named && !mc_engine::volumes::valid_name(src) {
            return Err(user_error(format!(
                "volume {v:?}: {src:?} is not a volume name (only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed); for a host directory, use an absolute path"
            )));
        }
        if !dst.starts_with('/') {
            return Err(user_error(format!(
                "volume {v:?}: the container path {dst:?} must be absolute"
            )));
        }
        let read_only = match mode {
            "" | "rw" => false,
            "ro" => true,
            m => {
                return Err(user_error(format!(
                    "volume {v:?}: unknown mode {m:?} (use ro or rw)"
                )))
            }
        };
        if !named && !Path::new(src).exists() {
            return Err(user_error(format!(
                "invalid mount config for type \"bind\": bind source path does not exist: {src}"
            )));
        }
        out.push(MountSpec {
            kind: "bind".into(),
            source: if named {
                volume_root.join(src).join("_data")
            } else {
                PathBuf::from(src)
            },
            destination: dst.into(),
            read_only,
            options: String::new(),
        });
    }
    for t in tmpfs {
        let (dst, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
        if !dst.starts_with('/') {
            return Err(user_error(format!(
                "--tmpfs {t:?}: the path must be absolute"
            )));
        }
        let read_only = opts.split(',').any(|o| o == "ro");
        let opts: Vec<&str> = opts
            .split(',')
            .filter(|o| !o.is_empty() && *o != "ro" && *o != "rw")
            .collect();
        out.push(MountSpec {
            kind: "tmpfs".into(),
            source: PathBuf::from("tmpfs"),
            destination: dst.into(),
            read_only,
            options: opts.join(","),
        });
    }
    Ok(out)
}

fn seccomp_enabled(opts: &[String]) -> anyhow::Result<bool> {
    let mut on = true;
    for o in opts {
        match o.split_once(['=', ':']) {
            Some(("seccomp", "unconfined")) => on = false,
            Some(("seccomp", other)) => {
                return Err(user_error(format!(
                    "--security-opt seccomp={other}: only seccomp=unconfined is supported (the default profile is Docker's)"
                )))
            }
            _ => return Err(user_error(format!("--security-opt {o:?}: unsupported (supported: seccomp=unconfined)"))),
        }
    }
    Ok(on)
}

/// `--ulimit` and `--sysctl`, checked as Docker does (a later flag for the
/// same name wins).
fn parse_limits(a: &RunArgs) -> Result<(Vec<Rlimit>, BTreeMap<String, String>), mc_runtime::Error> {
    let mut rlimits: Vec<Rlimit> = Vec::new();
    for u in &a.ulimit {
        let r = mc_runtime::parse_ulimit(u)?;
        rlimits.retain(|o| o.name != r.name);
        rlimits.push(r);
    }
    let mut sysctls = BTreeMap::new();
    for kv in &a.sysctl {
        let (k, v) = mc_runtime::parse_sysctl(kv)?;
        mc_runtime::validate_sysctl(&k, &a.net.network)?;
        sysctls.insert(k, v);
    }
    Ok((rlimits, sysctls))
}

fn build_spec(g: &Global, a: &RunArgs, img: ImageDefaults) -> anyhow::Result<ContainerSpec> {
    let id = mc_runtime::state::new_id();
    let name = match &a.name {
        Some(n) => {
            mc_runtime::state::validate_name(n)?;
            n.clone()
        }
        None => mc_runtime::state::generated_name(&id),
    };
    let (entrypoint, cmd) = spec::resolve_args(
        &img.entrypoint,
        &img.cmd,
        a.entrypoint.as_deref(),
        &a.command,
    );
    let args: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();
    if args.is_empty() {
        return Err(user_error(format!(
            "no command specified: image {} has no Cmd or Entrypoint; give one after the image",
            a.image
        )));
    }
    let mut env = img.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={}", spec::DEFAULT_PATH));
    }
    let env = spec::merge_env(&env, &collect_env(&g.env_file, &a.env)?);
    let network = a.net.network.clone();
    let hostname = match &a.hostname {
        Some(h) => h.clone(),
        None if network == "host" => spec::host_hostname(),
        None => id[..12].to_string(),
    };
    let mut resources = Resources::default();
    if let Some(m) = &a.memory {
        let bytes = spec::parse_size(m)?;
        if bytes < spec::MIN_MEMORY {
            return Err(user_error(format!(
                "--memory {m}: minimum memory limit allowed is 6MB"
            )));
        }
        resources.memory = Some(bytes);
    }
    if let Some(c) = &a.cpus {
        resources.nano_cpus = Some(spec::parse_cpus(c)?);
    }
    resources.pids_limit = a.pids_limit;
    let stop_signal = match a.stop_signal.as_deref().or(img.stop_signal.as_deref()) {
        Some(s) => spec::parse_signal(s)?,
        None => libc::SIGTERM,
    };
    let (rlimits, sysctls) = parse_limits(a)?;
    let mut labels = std::collections::BTreeMap::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    Ok(ContainerSpec {
        id,
        name,
        image: img.reference,
        image_id: img.id,
        layers: img.layers,
        args,
        entrypoint,
        cmd,
        env,
        working_dir: a.workdir.clone().filter(|w| !w.is_empty()).unwrap_or(
            if img.working_dir.is_empty() {
                "/".into()
            } else {
                img.working_dir
            },
        ),
        user: a.user.clone().unwrap_or(img.user),
        hostname,
        tty: a.tty,
        open_stdin: a.interactive,
        network,
        mounts: parse_mounts(
            &mc_engine::Paths::new(&g.root).volumes(),
            &a.volume,
            &a.tmpfs,
        )?,
        read_only: a.read_only,
        privileged: a.privileged,
        caps: mc_runtime::caps::resolve(&a.cap_add, &a.cap_drop, a.privileged)?,
        seccomp: seccomp_enabled(&a.security_opt)? && !a.privileged,
        resources,
        init: a.init,
        stop_signal,
        stop_timeout: a.stop_timeout.unwrap_or(10),
        auto_remove: a.rm,
        created: mc_runtime::state::now_rfc3339(),
        labels,
        rlimits,
        sysctls,
    })
}

/// The named volumes a spec mounts: created when missing and, like
/// Docker, filled from the image at the mount point when new.
fn ensure_volumes(g: &Global, spec: &ContainerSpec) -> anyhow::Result<()> {
    let paths = mc_engine::Paths::new(&g.root);
    let root = paths.volumes();
    for m in &spec.mounts {
        let Ok(rest) = m.source.strip_prefix(&root) else {
            continue;
        };
        let Some(name) = rest.iter().next().and_then(|n| n.to_str()) else {
            continue;
        };
        mc_engine::volumes::ensure(&paths, name, BTreeMap::new())?;
        mc_engine::volumes::populate(&paths, name, &spec.layers, &m.destination)?;
    }
    Ok(())
}

fn run_container(g: &Global, rt: &Runtime, a: RunArgs) -> anyhow::Result<i32> {
    mc_runtime::require_root()?;
    container_net::validate(g, &a.net)?;
    // Validate flags before touching the image store or the registry.
    let _ = seccomp_enabled(&a.security_opt)?;
    let _ = parse_limits(&a)?;
    let img = image_defaults(g, &a)?;
    let spec = build_spec(g, &a, img)?;
    ensure_volumes(g, &spec)?;
    let mut files = EtcFiles::defaults(&spec.hostname, &spec.network);
    if spec.network != "host" {
        let (hosts, resolv) = container_net::default_files(&a.net, &spec.hostname)?;
        files.hosts = hosts;
        files.resolv_conf = resolv;
    }
    let rec = rt.create(&spec, &files)?;
    let mut hook = NetHook {
        g,
        args: &a.net,
        id: spec.id.clone(),
        name: spec.name.clone(),
        hostname: spec.hostname.clone(),
        dir: rec.dir.clone(),
    };
    let network = spec.network.clone();
    let mut teardown = |id: &str| net_teardown(g, &network, id);
    let result = if a.detach {
        rt.run_detached(&rec, a.interactive, &mut hook, &mut teardown)
            .map(|warnings| {
                for w in warnings {
                    eprintln!("WARNING: {w}");
                }
                println!("{}", spec.id);
                0
            })
    } else {
        rt.run_foreground(
            &rec,
            Attach {
                tty: a.tty,
                stdin: a.interactive,
            },
            &mut hook,
            &mut teardown,
        )
    };
    match result {
        Ok(code) => Ok(code),
        Err(mc_runtime::Error::Start { code, message }) => {
            eprintln!("minicompose: {message}");
            Ok(code)
        }
        Err(e) => Err(e.into()),
    }
}

fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

fn status_text(st: &mc_runtime::State) -> String {
    let ago = |t: &str| {
        mc_runtime::state::since(t)
            .map(mc_runtime::state::human_duration)
            .unwrap_or_default()
    };
    match st.status {
        mc_runtime::Status::Running => format!("Up {}", ago(&st.started_at)),
        mc_runtime::Status::Created => "Created".into(),
        mc_runtime::Status::Exited => {
            if st.finished_at.is_empty() {
                format!("Exited ({})", st.exit_code)
            } else {
                format!("Exited ({}) {} ago", st.exit_code, ago(&st.finished_at))
            }
        }
    }
}

fn ls(rt: &Runtime, a: LsArgs) -> anyhow::Result<i32> {
    let rows: Vec<_> = rt
        .containers
        .list()
        .into_iter()
        .rev()
        .map(|r| {
            let st = r.live_state();
            (r, st)
        })
        .filter(|(_, st)| a.all || st.status == mc_runtime::Status::Running)
        .collect();
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for (r, _) in rows {
            writeln!(
                out,
                "{}",
                if a.no_trunc {
                    &r.spec.id
                } else {
                    short(&r.spec.id)
                }
            )?;
        }
        return Ok(0);
    }
    let mut table = vec![[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    .map(String::from)
    .to_vec()];
    for (r, st) in rows {
        let mut command = shell_words(&r.spec.args);
        if !a.no_trunc && command.chars().count() > 20 {
            command = format!("{}…", command.chars().take(19).collect::<String>());
        }
        let created = mc_runtime::state::since(&r.spec.created)
            .map(|d| format!("{} ago", mc_runtime::state::human_duration(d)))
            .unwrap_or_default();
        table.push(vec![
            if a.no_trunc {
                r.spec.id.clone()
            } else {
                short(&r.spec.id).to_string()
            },
            r.spec.image.clone(),
            format!("\"{command}\""),
            created,
            status_text(&st),
            String::new(),
            r.spec.name.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| {
            table
                .iter()
                .map(|row| row[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in table {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i == 6 {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(0)
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty() || a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn exec(rt: &Runtime, a: ExecArgs) -> anyhow::Result<i32> {
    mc_runtime::require_root()?;
    if a.detach {
        return Err(user_error(
            "exec -d is not supported: run the command with `sh -c 'cmd &'` instead",
        ));
    }
    let env = collect_env(&[], &a.env)?;
    let opts = mc_runtime::ExecOptions {
        args: a.command,
        env,
        workdir: a.workdir,
        user: a.user,
        tty: a.tty,
        interactive: a.interactive,
    };
    match rt.exec(&a.container, &opts) {
        Ok(code) => Ok(code),
        Err(mc_runtime::Error::Start { code, message }) => {
            eprintln!("minicompose: {message}");
            Ok(code)
        }
        Err(e) => Err(e.into()),
    }
}

fn print_entry(e: &mc_runtime::logs::Entry, timestamps: bool) {
    let text = if timestamps {
        format!("{} {}", e.time, e.log)
    } else {
        e.log.clone()
    };
    if e.stream == "stderr" {
        let _ = std::io::stderr().write_all(text.as_bytes());
    } else {
        let _ = std::io::stdout().write_all(text.as_bytes());
    }
}

fn logs(rt: &Runtime, a: LogsArgs) -> anyhow::Result<i32> {
    let follow = a.follow;
    let rec = rt.containers.find(&a.container)?;
    let tail: Option<usize> = match a.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse()
                .map_err(|_| user_error(format!("--tail {n:?}: use a number or \"all\"")))?,
        ),
    };
    let path = mc_runtime::logs::log_path(&rec.dir);
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(_) if !follow => return Ok(0),
        Err(e) => return Err(anyhow::Error::from(e).context(format!("open {}", path.display()))),
    };
    let mut reader = std::io::BufReader::new(&mut file);
    let mut entries: Vec<mc_runtime::logs::Entry> = Vec::new();
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 {
        if line.ends_with('\n') {
            if let Ok(e) = serde_json::from_str(&line) {
                entries.push(e);
            }
            line.clear();
        }
    }
    let skip = tail.map(|n| entries.len().saturating_sub(n)).unwrap_or(0);
    for e in &entries[skip..] {
        print_entry(e, a.timestamps);
    }
    if !follow {
        return Ok(0);
    }
    let _ = std::io::stdout().flush();
    // Follow: poll for appended lines until the container has stopped.
    let mut pos = reader.stream_position()? - line.len() as u64;
    drop(reader);
    loop {
        let running = rt
            .containers
            .read(&rec.spec.id)
            .map(|r| r.state.is_running())
            .unwrap_or(false);
        file.seek(std::io::SeekFrom::Start(pos))?;
        let mut r = std::io::BufReader::new(&mut file);
        let mut l = String::new();
        while r.read_line(&mut l)? > 0 {
            if !l.ends_with('\n') {
                break;
            }
            pos += l.len() as u64;
            if let Ok(e) = serde_json::from_str::<mc_runtime::logs::Entry>(&l) {
                print_entry(&e, a.timestamps);
            }
            l.clear();
        }
        let _ = std::io::stdout().flush();
        if !running {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn top(rt: &Runtime, a: TopArgs) -> anyhow::Result<i32> {
    let procs = rt.top(&a.container)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<8} {:<8} {:<8} {:<10} CMD",
        "UID", "PID", "PPID", "TIME"
    )?;
    for p in procs {
        let t = p.cpu_secs;
        writeln!(
            out,
            "{:<8} {:<8} {:<8} {:<10} {}",
            p.uid,
            p.pid,
            p.ppid,
            format!("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60),
            p.cmd
        )?;
    }
    Ok(0)
}

fn inspect(rt: &Runtime, a: InspectArgs) -> anyhow::Result<i32> {
    let mut out = Vec::new();
    let mut code = 0;
    for key in &a.containers {
        match rt.containers.find(key) {
            Ok(r) => out.push(inspect_json(rt, &r)),
            Err(e) => {
                eprintln!("minicompose: {e}");
                code = 1;
            }
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&out).context("render inspect")?
    );
    Ok(code)
}

fn inspect_json(rt: &Runtime, r: &mc_runtime::Record) -> serde_json::Value {
    let st = r.live_state();
    let s = &r.spec;
    let status = match st.status {
        mc_runtime::Status::Running => "running",
        mc_runtime::Status::Created => "created",
        mc_runtime::Status::Exited => "exited",
    };
    let mounts: Vec<serde_json::Value> = s
        .mounts
        .iter()
        .map(|m| {
            serde_json::json!({
                "Type": m.kind, "Source": if m.kind == "bind" { m.source.display().to_string() } else { String::new() },
                "Destination": m.destination, "Mode": if m.read_only { "ro" } else { "" }, "RW": !m.read_only,
                "Propagation": if m.kind == "bind" { "rprivate" } else { "" },
            })
        })
        .collect();
    let mut host_mounts = Vec::new();
    for f in ["hostname", "hosts", "resolv.conf"] {
        host_mounts
            .push(serde_json::json!({"Source": r.dir.join(f), "Destination": format!("/etc/{f}")}));
    }
    serde_json::json!({
        "Id": s.id,
        "Created": s.created,
        "Path": s.args.first().cloned().unwrap_or_default(),
        "Args": s.args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": status,
            "Running": st.status == mc_runtime::Status::Running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": st.oom_killed,
            "Dead": false,
            "Pid": st.pid,
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": st.started_at,
            "FinishedAt": st.finished_at,
        },
        "Image": s.image_id,
        "ResolvConfPath": r.dir.join("resolv.conf"),
        "HostnamePath": r.dir.join("hostname"),
        "HostsPath": r.dir.join("hosts"),
        "LogPath": mc_runtime::logs::log_path(&r.dir),
        "Name": format!("/{}", s.name),
        "Driver": "overlay",
        "HostConfig": {
            "AutoRemove": s.auto_remove,
            "NetworkMode": s.network,
            "Privileged": s.privileged,
            "ReadonlyRootfs": s.read_only,
            "Init": s.init,
            "Memory": s.resources.memory.unwrap_or(0),
            "NanoCpus": s.resources.nano_cpus.unwrap_or(0),
            "PidsLimit": s.resources.pids_limit,
            "Ulimits": s.rlimits.iter().map(|r| {
                // Docker shows "unlimited" as -1.
                let v = |n: u64| if n == u64::MAX { -1 } else { n as i64 };
                serde_json::json!({"Name": r.name, "Soft": v(r.soft), "Hard": v(r.hard)})
            }).collect::<Vec<_>>(),
            "Sysctls": s.sysctls,
            "CapEffective": s.caps,
            "SecurityOpt": if s.seccomp { serde_json::Value::Null } else { serde_json::json!(["seccomp=unconfined"]) },
            "CgroupParent": mc_runtime::cgroups::PARENT,
            "Cgroups": rt.cgroup(&s.id).dirs,
        },
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": s.layers.iter().rev().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"),
                "UpperDir": r.dir.join("upper"),
                "WorkDir": r.dir.join("work"),
            }
        },
        "Mounts": mounts,
        "EtcMounts": host_mounts,
        "Config": {
            "Hostname": s.hostname,
            "User": s.user,
            "Tty": s.tty,
            "OpenStdin": s.open_stdin,
            "Env": s.env,
            "Cmd": s.cmd,
            "Entrypoint": if s.entrypoint.is_empty() { serde_json::Value::Null } else { serde_json::json!(s.entrypoint) },
            "Image": s.image,
            "WorkingDir": s.working_dir,
            "Labels": s.labels,
            "StopSignal": spec::signal_name(s.stop_signal),
            "StopTimeout": s.stop_timeout,
        },
    })
}
