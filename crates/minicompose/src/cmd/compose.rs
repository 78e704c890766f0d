//! The docker compose commands at the top level: `up`, `down`, `ps`,
//! `logs`, `top`, `exec`, `run`, `stop`, `start`, `restart`, `kill`, `rm`,
//! `pull`, `port`, `images`, `ls`. The work is in mc_engine; this module
//! parses flags and prints.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use mc_engine::logs::Prefixer;
use mc_engine::plan::RecreatePolicy;
use mc_engine::{Engine, Member, Reporter as _};

use super::compose_logs::Multiplexer;
use super::compose_out::{ellipsis, err, table, Printer};
use crate::exit::user_error;
use crate::global::Global;

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Detached mode: run containers in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Wait for services to be running|healthy (implies --detach)
    #[arg(long)]
    pub wait: bool,
    /// Maximum duration in seconds to wait for the project to be running|healthy
    #[arg(long = "wait-timeout")]
    pub wait_timeout: Option<u64>,
    /// Don't build an image, even if it's policy
    #[arg(long = "no-build")]
    pub no_build: bool,
    /// Build images before starting containers
    #[arg(long)]
    pub build: bool,
    /// Recreate containers even if their configuration and image haven't changed
    #[arg(long = "force-recreate", conflicts_with = "no_recreate")]
    pub force_recreate: bool,
    /// If containers already exist, don't recreate them
    #[arg(long = "no-recreate")]
    pub no_recreate: bool,
    /// Don't start linked services
    #[arg(long = "no-deps")]
    pub no_deps: bool,
    /// Don't start the services after creating them
    #[arg(long = "no-start")]
    pub no_start: bool,
    /// Stops all containers if any container was stopped
    #[arg(long = "abort-on-container-exit")]
    pub abort_on_container_exit: bool,
    /// Return the exit code of the selected service container (implies --abort-on-container-exit)
    #[arg(long = "exit-code-from")]
    pub exit_code_from: Option<String>,
    /// Scale SERVICE to NUM instances (SERVICE=NUM, repeatable)
    #[arg(long)]
    pub scale: Vec<String>,
    /// Remove containers for services not defined in the Compose file
    #[arg(long = "remove-orphans")]
    pub remove_orphans: bool,
    /// Shutdown timeout in seconds
    #[arg(short = 't', long = "timeout")]
    pub timeout: Option<u64>,
    /// Produce monochrome output
    #[arg(long = "no-color")]
    pub no_color: bool,
    /// Don't print prefix in logs
    #[arg(long = "no-log-prefix")]
    pub no_log_prefix: bool,
    /// Show timestamps
    #[arg(long)]
    pub timestamps: bool,
    /// Services to start (default: all)
    pub services: Vec<String>,
}

#[derive(Args, Debug)]
pub struct DownArgs {
    /// Remove named volumes declared in the volumes section and anonymous volumes
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long = "remove-orphans")]
    pub remove_orphans: bool,
    /// Shutdown timeout in seconds
    #[arg(short = 't', long = "timeout")]
    pub timeout: Option<u64>,
    /// Remove images used by services: "local" (no custom tag) or "all"
    #[arg(long)]
    pub rmi: Option<Rmi>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rmi {
    Local,
    All,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsFormat {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all stopped containers
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Display services
    #[arg(long)]
    pub services: bool,
    /// Format the output
    #[arg(long, value_enum, default_value_t = PsFormat::Table)]
    pub format: PsFormat,
    /// Filter services by status (running, exited, created)
    #[arg(long)]
    pub status: Vec<String>,
    pub service: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Number of lines to show from the end of the logs for each container
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Produce monochrome output
    #[arg(long = "no-color")]
    pub no_color: bool,
    /// Don't print prefix in logs
    #[arg(long = "no-log-prefix")]
    pub no_log_prefix: bool,
    /// index of the container if service has multiple replicas
    #[arg(long)]
    pub index: Option<u32>,
    pub service: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ServicesArgs {
    pub service: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TimeoutArgs {
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long = "timeout")]
    pub timeout: Option<u64>,
    pub service: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// SIGNAL to send to the container
    #[arg(short = 's', long = "signal", default_value = "SIGKILL")]
    pub signal: String,
    /// Remove containers for services not defined in the Compose file
    #[arg(long = "remove-orphans")]
    pub remove_orphans: bool,
    pub service: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Don't ask to confirm removal
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Stop the containers, if required, before removing
    #[arg(short = 's', long)]
    pub stop: bool,
    /// Remove any anonymous volumes attached to containers
    #[arg(short = 'v', long)]
    pub volumes: bool,
    pub service: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Disable pseudo-TTY allocation
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Detached mode: run the command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set environment variables (KEY=VAL)
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Run the command as this user
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Path to workdir directory for this command
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Give extended privileges to the process (not supported)
    #[arg(long)]
    pub privileged: bool,
    pub service: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set environment variables (KEY=VAL)
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Don't start linked services
    #[arg(long = "no-deps")]
    pub no_deps: bool,
    /// Override the entrypoint of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Run command with all service's ports enabled and mapped to the host
    #[arg(long = "service-ports")]
    pub service_ports: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Run as specified username or uid
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Disable pseudo-TTY allocation
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    pub service: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PortArgs {
    /// tcp or udp
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    pub service: String,
    pub private_port: u16,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Only display IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub service: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Show all stopped Compose projects
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display project names
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(long, value_enum, default_value_t = PsFormat::Table)]
    pub format: PsFormat,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Pull without printing progress information
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Ignore images that can be built
    #[arg(long = "ignore-buildable")]
    pub ignore_buildable: bool,
    pub service: Vec<String>,
}

// ---------------------------------------------------------------------------

fn dns_launcher(g: &Global) -> anyhow::Result<mc_net::DnsLauncher> {
    let program = std::env::current_exe().context("locating the minicompose binary")?;
    Ok(mc_net::DnsLauncher {
        program,
        args: vec![
            "--root".into(),
            g.root.clone().into_os_string(),
            "__internal".into(),
            "dns".into(),
        ],
    })
}

/// The engine for this root; `with_supervisor: false` inside the supervisor.
pub fn engine(g: &Global, with_supervisor: bool) -> anyhow::Result<Engine> {
    let program = std::env::current_exe().context("locating the minicompose binary")?;
    let supervisor = with_supervisor.then(|| mc_engine::Launcher {
        program: program.clone(),
        args: vec![
            "--root".into(),
            g.root.clone().into_os_string(),
            "__internal".into(),
            "supervisor".into(),
        ],
    });
    let pull = mc_image::PullOptions {
        mirrors: g.registry_mirror.clone(),
        progress: true,
        ..Default::default()
    };
    Ok(Engine::new(
        &g.root,
        pull,
        Some(dns_launcher(g)?),
        supervisor,
    ))
}

fn load(g: &Global) -> anyhow::Result<mc_compose::Project> {
    Ok(mc_compose::load(&super::config::load_options(g, false))?)
}

fn color(g: &Global, no_color: bool) -> bool {
    !no_color && g.color(std::io::stdout().is_terminal())
}

static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTS.fetch_add(1, Ordering::SeqCst);
}

fn catch_interrupts() {
    // SAFETY: the handler only touches an atomic.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_interrupt as *const () as libc::sighandler_t,
        );
    }
}

fn parse_scale(v: &[String]) -> anyhow::Result<HashMap<String, u32>> {
    let mut out = HashMap::new();
    for s in v {
        let (name, n) = s
            .split_once('=')
            .ok_or_else(|| user_error(format!("invalid --scale {s:?}: use SERVICE=NUM")))?;
        let n: u32 = n
            .parse()
            .map_err(|_| user_error(format!("invalid --scale {s:?}: NUM must be a number")))?;
        out.insert(name.to_string(), n);
    }
    Ok(out)
}

pub fn up(g: &Global, a: UpArgs) -> anyhow::Result<i32> {
    let mut project = load(g)?;
    // Services with `build:` get their image (built if missing, or with --build).
    super::build::for_up(g, &mut project, &a.services, a.no_deps, a.build, a.no_build)?;
    let eng = engine(g, true)?;
    let mut rep = Printer { quiet: false };
    let policy = if a.force_recreate {
        RecreatePolicy::Force
    } else if a.no_recreate {
        RecreatePolicy::Never
    } else {
        RecreatePolicy::Diverged
    };
    let opts = mc_engine::UpOptions {
        services: a.services.clone(),
        no_deps: a.no_deps,
        recreate: policy,
        scale: parse_scale(&a.scale)?,
        remove_orphans: a.remove_orphans,
        timeout: a.timeout,
        no_start: a.no_start,
    };
    // Where each existing log ends: a foreground `up` shows what is new.
    let before: HashMap<String, u64> = eng
        .members(&project.name)
        .iter()
        .map(|m| {
            let len = std::fs::metadata(mc_runtime::logs::log_path(&m.rec.dir))
                .map(|x| x.len())
                .unwrap_or(0);
            (m.id().to_string(), len)
        })
        .collect();
    let members = eng.up(&project, &opts, &mut rep).map_err(err)?;
    if a.no_start {
        return Ok(0);
    }
    if a.wait {
        let t = a.wait_timeout.map(Duration::from_secs);
        eng.wait_ready(&project.name, &members, t, &mut rep)
            .map_err(err)?;
        return Ok(0);
    }
    if a.detach {
        return Ok(0);
    }
    attach(g, &eng, &project, &a, members, &before)
}

/// The foreground part of `up`: multiplexed logs until every container has
/// exited; Ctrl+C stops them gracefully, a second Ctrl+C kills them.
fn attach(
    g: &Global,
    eng: &Engine,
    project: &mc_compose::Project,
    a: &UpArgs,
    members: Vec<Member>,
    before: &HashMap<String, u64>,
) -> anyhow::Result<i32> {
    catch_interrupts();
    let services: Vec<String> = members.iter().map(|m| m.service.clone()).collect();
    let mut mux = Multiplexer::new(Prefixer::new(
        color(g, a.no_color),
        !a.no_log_prefix,
        a.timestamps,
    ));
    let names: Vec<&str> = members.iter().map(|m| m.name()).collect();
    println!("Attaching to {}", names.join(", "));
    for m in &members {
        mux.add(m.id(), m.name(), &m.rec.dir, before.contains_key(m.id()));
    }
    let abort = a.abort_on_container_exit || a.exit_code_from.is_some();
    if let Some(s) = &a.exit_code_from {
        if !project.services.contains_key(s) {
            return Err(user_error(format!(
                "--exit-code-from: no such service: {s}"
            )));
        }
    }
    let mut running: HashMap<String, u64> = members
        .iter()
        .map(|m| (m.id().to_string(), m.state.pid_start))
        .collect();
    let mut exit_code = 0;
    let mut stop_reason: Option<&str> = None;
    loop {
        let _ = mux.pump(None);
        if INTERRUPTS.load(Ordering::SeqCst) > 0 {
            stop_reason = Some("interrupt");
            break;
        }
        let now: Vec<Member> = eng
            .members(&project.name)
            .into_iter()
            .filter(|m| !m.oneoff && services.contains(&m.service))
            .collect();
        for m in &now {
            mux.add(m.id(), m.name(), &m.rec.dir, false);
            let was = running.get(m.id()).copied().unwrap_or(0);
            if m.running() && m.state.pid_start != was {
                running.insert(m.id().to_string(), m.state.pid_start);
            } else if !m.running() && was != 0 && m.state.status == mc_runtime::Status::Exited {
                running.insert(m.id().to_string(), 0);
                let _ = mux.pump(None);
                println!(
                    "{}",
                    mux.prefixer
                        .event(m.name(), &format!("exited with code {}", m.state.exit_code))
                );
                if abort {
                    if a.exit_code_from.as_deref().is_none_or(|s| *s == m.service) {
                        exit_code = m.state.exit_code;
                    }
                    stop_reason = Some("abort");
                }
            }
        }
        if stop_reason.is_some() {
            break;
        }
        // Done when every container has exited for good (no restart coming).
        let all_done = !now.is_empty() && now.iter().all(|m| !m.running()) && {
            let restarts: HashMap<String, u64> = eng
                .supervisor_status(&project.name)
                .map(|st| {
                    st.containers
                        .into_iter()
                        .map(|c| (c.id, c.restarts))
                        .collect()
                })
                .unwrap_or_default();
            now.iter().all(|m| {
                let count = restarts.get(m.id()).copied().unwrap_or(0);
                eng.paths
                    .read_record(&project.name, m.id())
                    .is_none_or(|r| {
                        !r.restart
                            .should_restart(m.state.exit_code, count, r.stopped_by_user)
                    })
            })
        };
        if all_done || now.is_empty() {
            let _ = mux.pump(None);
            return Ok(exit_code);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if stop_reason == Some("abort") {
        println!("Aborting on container exit...");
    } else {
        println!("Gracefully stopping... (press Ctrl+C again to force)");
    }
    let code = stop_foreground(eng, project, &services, a.timeout, &mut mux);
    if stop_reason == Some("interrupt") {
        return Ok(code.unwrap_or(130));
    }
    if let Some(s) = &a.exit_code_from {
        let m = eng
            .members(&project.name)
            .into_iter()
            .find(|m| m.service == *s && !m.oneoff);
        if let Some(m) = m {
            exit_code = m.state.exit_code;
        }
    }
    Ok(exit_code)
}

/// Stop the attached services in reverse dependency order, printing logs
/// meanwhile; another Ctrl+C kills what is left. Returns Some(130) when forced.
fn stop_foreground(
    eng: &Engine,
    project: &mc_compose::Project,
    services: &[String],
    timeout: Option<u64>,
    mux: &mut Multiplexer,
) -> Option<i32> {
    let order = mc_engine::plan::start_order(&project.services).unwrap_or_default();
    let first = INTERRUPTS.load(Ordering::SeqCst);
    let mut forced = false;
    for svc in order.iter().rev().filter(|s| services.contains(s)) {
        let members: Vec<Member> = eng
            .members(&project.name)
            .into_iter()
            .filter(|m| m.service == *svc && !m.oneoff && m.running())
            .collect();
        for m in &members {
            eprintln!(" Container {}  Stopping", m.name());
            eng.paths.set_stopped_by_user(&project.name, m.id(), true);
            if !forced {
                let _ = eng.runtime.kill(m.id(), m.rec.spec.stop_signal);
            }
        }
        for m in &members {
            let grace = Duration::from_secs(timeout.unwrap_or(m.rec.spec.stop_timeout));
            let deadline = Instant::now() + grace;
            let mut killed = forced;
            if forced {
                let _ = eng.runtime.kill(m.id(), libc::SIGKILL);
            }
            loop {
                let _ = mux.pump(None);
                let st = eng.runtime.containers.read(m.id()).map(|r| r.live_state());
                if st
                    .map(|s| s.status != mc_runtime::Status::Running)
                    .unwrap_or(true)
                {
                    break;
                }
                if !killed
                    && (Instant::now() >= deadline || INTERRUPTS.load(Ordering::SeqCst) > first)
                {
                    if INTERRUPTS.load(Ordering::SeqCst) > first {
                        forced = true;
                    }
                    let _ = eng.runtime.kill(m.id(), libc::SIGKILL);
                    killed = true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!(" Container {}  Stopped", m.name());
        }
    }
    let _ = mux.pump(None);
    forced.then_some(130)
}

pub fn down(g: &Global, a: DownArgs) -> anyhow::Result<i32> {
    let project = load(g)?;
    let eng = engine(g, true)?;
    let mut rep = Printer { quiet: false };
    eng.down(&project, a.remove_orphans, a.volumes, a.timeout, &mut rep)
        .map_err(err)?;
    if let Some(rmi) = a.rmi {
        super::compose_rmi::remove(g, &project, rmi, &mut rep)?;
    }
    Ok(0)
}

pub fn ps(g: &Global, a: PsArgs) -> anyhow::Result<i32> {
    let project = load(g)?;
    let eng = engine(g, true)?;
    if eng.recover_supervisor(&project.name) {
        eprintln!(
            "WARN[0000] the supervisor of {} was not running: restarted it",
            project.name
        );
    }
    let mut members = eng.select(&project, &a.service, false).map_err(err)?;
    if !a.all {
        members.retain(|m| m.running());
    }
    let rows = eng.summarize(&project.name, &members);
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| a.status.is_empty() || a.status.contains(&r.state))
        .collect();
    let mut out = std::io::stdout().lock();
    if a.services {
        let mut seen = Vec::new();
        for r in &rows {
            if !seen.contains(&r.service) {
                writeln!(out, "{}", r.service)?;
                seen.push(r.service.clone());
            }
        }
        return Ok(0);
    }
    if a.quiet {
        for r in &rows {
            writeln!(out, "{}", r.id)?;
        }
        return Ok(0);
    }
    match a.format {
        PsFormat::Json => {
            for r in &rows {
                writeln!(out, "{}", serde_json::to_string(r)?)?;
            }
        }
        PsFormat::Table => {
            let t: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        r.image.clone(),
                        ellipsis(&r.command, 22),
                        r.service.clone(),
                        r.running_for.clone(),
                        r.status.clone(),
                        r.ports.clone(),
                    ]
                })
                .collect();
            write!(
                out,
                "{}",
                table(
                    &["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"],
                    &t
                )
            )?;
        }
    }
    Ok(0)
}

pub fn logs(g: &Global, a: LogsArgs) -> anyhow::Result<i32> {
    let project = load(g)?;
    let eng = engine(g, true)?;
    eng.recover_supervisor(&project.name);
    let tail = match a.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse::<usize>()
                .map_err(|_| user_error(format!("invalid --tail {n:?}: use a number or all")))?,
        ),
    };
    let pick = |eng: &Engine| -> anyhow::Result<Vec<Member>> {
        let mut m = eng.select(&project, &a.service, false).map_err(err)?;
        if let Some(i) = a.index {
            m.retain(|x| x.number == i);
        }
        Ok(m)
    };
    let mut mux = Multiplexer::new(Prefixer::new(
        color(g, a.no_color),
        !a.no_log_prefix,
        a.timestamps,
    ));
    for m in pick(&eng)? {
        mux.add(m.id(), m.name(), &m.rec.dir, false);
    }
    let _ = mux.pump(tail);
    if !a.follow {
        return Ok(0);
    }
    catch_interrupts();
    // Follow: restarted containers keep their log file; new ones (scale) join.
    while INTERRUPTS.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(100));
        let members = pick(&eng)?;
        for m in &members {
            mux.add(m.id(), m.name(), &m.rec.dir, false);
        }
        if mux.pump(None).is_err() {
            break;
        }
        if members.is_empty()
            || (a.service.is_empty()
                && members.iter().all(|m| !m.running())
                && eng.supervisor_pid(&project.name).is_none())
        {
            break;
        }
    }
    Ok(0)
}

pub fn top(g: &Global, a: ServicesArgs) -> anyhow::Result<i32> {
    let project = load(g)?;
    let eng = engine(g, true)?;
    let members = eng.select(&project, &a.service, false).map_err(err)?;
    let mut out = std::io::stdout().lock();
    for m in members.iter().filter(|m| m.running()) {
        let procs = eng.runtime.top(m.id()).map_err(|e| err(e.into()))?;
        writeln!(out, "{}", m.name())?;
        let rows: Vec<Vec<String>> = procs
            .iter()
            .map(|p| {
                let t = p.cpu_secs;
                vec![
                    p.uid.to_string(),
                    p.pid.to_string(),
                    p.ppid.to_string(),
                    "0".into(),
                    "?".into(),
                    format!("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60),
                    p.cmd.clone(),
                ]
            })
            .collect();
        write!(
            out,
            "{}",
            table(&["UID", "PID", "PPID", "C", "TTY", "TIME", "CMD"], &rows)
        )?;
        writeln!(out)?;
    }
    Ok(0)
}

fn env_pairs(v: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    v.iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => std::env::var(e).map(|v| (e.clone(), v)).map_err(|_| {
                user_error(format!(
                    "-e {e}: no value given and {e} is not set in the environment"
                ))
            }),
        })
        .collect()
}

pub fn exec(g: &Global, a: ExecArgs) -> anyhow::Result<i32> {
    let project = load(g)?;
    let eng = engine(g, true)?;
    mc_runtime::require_root()?;
    if a.privileged {
        return Err(user_error("exec --privileged is not supported"));
    }
    let m = eng
        .service_container(&project, &a.service, a.index)
        .map_err(err)?;
    if !m.running() {
        return Err(user_error(format!("container {} is not running", m.name())));
    }
    let env: Vec<String> = env_pairs(&a.env)?
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let tty = !a.no_tty && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let opts = mc_runtime::ExecOptions {
        args: a.command.clone(),
        env,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        tty,
        interactive: !a.detach,
    };
    if a.detach {
        // SAFETY: single-threaded; the child runs the exec and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: detach the child from our session, then exec.
            unsafe { libc::setsid() };
            let code = eng.runtime.exec(m.id(), &opts).unwrap_or(126);
            // SAFETY: leave the forked child.
            unsafe { libc::_exit(code) }
        }
        return Ok(0);
    }
    eng.runtime.exec(m.id(), &opts).map_err(|e| err(e.into()))
}

pub fn run(g: &Global, a: RunArgs) -> anyhow::Result<i32> {
    let mut project = load(g)?;
    // As docker compose run: services with `build:` are built if missing.
    super::build::for_up(
        g,
        &mut project,
        std::slice::from_ref(&a.service),
        a.no_deps,
        false,
        false,
    )?;
    let eng = engine(g, true)?;
    let mut rep = Printer { quiet: false };
    let mut publish = Vec::new();
    for p in &a.publish {
        for m in mc_net::ports::parse(p).map_err(|e| user_error(e.to_string()))? {
            publish.push(mc_compose::Port {
                name: None,
                mode: "ingress".into(),
                host_ip: m.host_ip.map(|i| i.to_string()),
                target: m.container_port,
                published: (m.host_port != 0).then(|| m.host_port.to_string()),
                protocol: m.proto.to_string(),
                app_protocol: None,
            });
        }
    }
    let opts = mc_engine::RunOptions {
        service: a.service.clone(),
        command: a.command.clone(),
        entrypoint: a.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                Vec::new()
            } else {
                vec![e.clone()]
            }
        }),
        env: env_pairs(&a.env)?,
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        publish,
        service_ports: a.service_ports,
        no_deps: a.no_deps,
        remove: a.rm,
        name: a.name.clone(),
    };
    let rec = eng.run_create(&project, &opts, &mut rep).map_err(err)?;
    if a.detach {
        for w in eng
            .start_container(&project.name, &rec.spec.id)
            .map_err(err)?
        {
            rep.warn(&w);
        }
        println!("{}", rec.spec.name);
        return Ok(0);
    }
    let tty = !a.no_tty && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let attach = mc_runtime::Attach {
        tty,
        stdin: tty || a.interactive,
    };
    eng.run_foreground(&project.name, &rec, attach).map_err(err)
}

pub fn stop(g: &Global, a: TimeoutArgs) -> anyhow::Result<i32> {
    let project = load(g)?;
    let eng = engine(g, true)?;
    eng.stop(
        &project,
        &a.service,
        a.timeout,
        &mut Printer { quiet: false },
    )
    .map_err(err)?;
    Ok(0)
}

pub fn start(g: &Global, a: ServicesArgs) -> anyhow::Result<i32> {
    let project = load(g)?;
    let eng = engine(g, true)?;
    eng.start(&project, &a.service, &mut Printer { quiet: false })
        .map_err(err)?;
    Ok(0)
}

pub fn restart(g: &Global, a: TimeoutArgs) -> anyhow::Result<i32> {
    let project = load(g)?;
    let eng = engine(g, true)?;
    eng.restart(
        &project,
        &a.service,
        a.timeout,
        &mut Printer { quiet: false },
    )
    .map_err(err)?;
    Ok(0)
}

pub fn kill(g: &Global, a: KillArgs) -> anyhow::Result<i32> {
    let project = load(g)?;
    let eng = engine(g, true)?;
    let sig = mc_runtime::spec::parse_signal(&a.signal).map_err(|e| user_error(e.to_string()))?;
    if a.remove_orphans {
        eprintln!(
            "WARN[0000] kill --remove-orphans: orphans are removed by up/down --remove-orphans"
        );
    }
    eng.kill(&project, &a.service, sig, &mut Printer { quiet: false })
        .map_err(err)?;
    Ok(0)
}

pub fn rm(g: &Global, a: RmArgs) -> anyhow::Result<i32> {
    let project = load(g)?;
    let eng = engine(g, true)?;
    let n = eng
        .rm(
            &project,
            &a.service,
            a.stop,
            a.volumes,
            &mut Printer { quiet: false },
        )
        .map_err(err)?;
    if n == 0 {
        eprintln!("No stopped containers");
    }
    Ok(0)
}

pub fn pull(g: &Global, a: PullArgs) -> anyhow::Result<i32> {
    let project = load(g)?;
    let mut eng = engine(g, true)?;
    eng.pull.progress = !a.quiet;
    eng.pull_images(
        &project,
        &a.service,
        a.ignore_buildable,
        &mut Printer { quiet: a.quiet },
    )
    .map_err(err)?;
    Ok(0)
}

pub fn port(g: &Global, a: PortArgs) -> anyhow::Result<i32> {
    let project = load(g)?;
    let eng = engine(g, true)?;
    let m = eng
        .service_container(&project, &a.service, a.index)
        .map_err(err)?;
    let nets = mc_net::Networks::open(&g.root)?;
    let found = nets
        .ports(m.id())?
        .into_iter()
        .find(|p| p.container_port == a.private_port && p.proto.to_string() == a.protocol);
    match found {
        Some(p) => {
            let ip = p
                .host_ip
                .map(|i| i.to_string())
                .unwrap_or_else(|| "0.0.0.0".into());
            println!("{ip}:{}", p.host_port);
            Ok(0)
        }
        None => Err(user_error(format!(
            "no port {}/{} for container {}",
            a.private_port,
            a.protocol,
            m.name()
        ))),
    }
}

pub fn images(g: &Global, a: ImagesArgs) -> anyhow::Result<i32> {
    let project = load(g)?;
    let eng = engine(g, true)?;
    let members = eng.select(&project, &a.service, false).map_err(err)?;
    let store = mc_image::Store::open(&g.root)?;
    let mut rows = Vec::new();
    for m in &members {
        let id = m
            .rec
            .spec
            .image_id
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect::<String>();
        if a.quiet {
            println!("{}", m.rec.spec.image_id);
            continue;
        }
        let (repo, tag) = match m.rec.spec.image.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
            _ => (m.rec.spec.image.clone(), "latest".to_string()),
        };
        let size: u64 = store
            .get(&m.rec.spec.image)
            .ok()
            .flatten()
            .map(|img| img.layers.iter().map(|l| dir_size(l)).sum())
            .unwrap_or(0);
        rows.push(vec![
            m.name().to_string(),
            repo,
            tag,
            id,
            crate::cmd::image::human_size(size),
        ]);
    }
    if !a.quiet {
        print!(
            "{}",
            table(
                &["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"],
                &rows
            )
        );
    }
    Ok(0)
}

fn dir_size(p: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(md) if md.is_dir() => stack.push(e.path()),
                Ok(md) => total += md.len(),
                Err(_) => {}
            }
        }
    }
    total
}

pub fn ls(g: &Global, a: LsArgs) -> anyhow::Result<i32> {
    let eng = engine(g, false)?;
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for (name, members) in eng.projects() {
        if members.is_empty() {
            continue;
        }
        let running = members.iter().filter(|m| m.running()).count();
        if running == 0 && !a.all {
            continue;
        }
        let mut counts: Vec<(String, usize)> = Vec::new();
        for m in &members {
            let s = match m.state.status {
                mc_runtime::Status::Running => "running",
                mc_runtime::Status::Exited => "exited",
                mc_runtime::Status::Created => "created",
            };
            match counts.iter_mut().find(|(k, _)| k == s) {
                Some((_, n)) => *n += 1,
                None => counts.push((s.to_string(), 1)),
            }
        }
        let status = counts
            .iter()
            .map(|(k, n)| format!("{k}({n})"))
            .collect::<Vec<_>>()
            .join(", ");
        let files = members[0]
            .rec
            .spec
            .labels
            .get(mc_engine::naming::LABEL_CONFIG_FILES)
            .cloned()
            .unwrap_or_default();
        json.push(serde_json::json!({"Name": name, "Status": status, "ConfigFiles": files}));
        rows.push(vec![name, status, files]);
    }
    if a.quiet {
        for r in &rows {
            println!("{}", r[0]);
        }
    } else if a.format == PsFormat::Json {
        println!("{}", serde_json::to_string(&json)?);
    } else {
        print!("{}", table(&["NAME", "STATUS", "CONFIG FILES"], &rows));
    }
    Ok(0)
}
