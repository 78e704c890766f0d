//! The per-project supervisor: one single-threaded process per running
//! project (started by `up`, detached from the terminal). It restarts
//! containers by their restart policy with Docker's backoff, runs their
//! health checks (through exec) and writes their health under the run dir,
//! and answers the CLI on `<run>/compose/<project>/supervisor.sock`.
//!
//! Containers do not depend on it: each has its own monitor (reaper and
//! log writer) from the runtime, so killing the supervisor leaves them
//! running; the next `up`/`ps`/`logs`/`start` starts a new one. It exits
//! when the project has no containers left or when asked to.

mod probe;

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::fd::AsFd as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::client::{Request, Response, WatchStatus};
use crate::health;
use crate::restart::Backoff;
use crate::state::{write_json, Health, SupervisorPid};
use crate::{Engine, Error};

static TERMINATE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERMINATE.store(true, Ordering::SeqCst);
}

/// What the supervisor tracks per container.
#[derive(Default)]
struct Watch {
    name: String,
    /// Start time of the container's process we last saw running.
    instance: u64,
    started: Option<Instant>,
    health: Option<Health>,
    next_probe: Option<Instant>,
    probe: Option<probe::Probe>,
    backoff: Backoff,
    restarts: u64,
    /// `started_at` of the run whose exit we have handled (a run can
    /// start and exit between two ticks, so the pid is not enough).
    handled_run: Option<String>,
    restart_at: Option<Instant>,
}

fn log(msg: &str) {
    eprintln!("{} {msg}", mc_runtime::state::now_rfc3339());
}

/// The supervisor's main loop. Returns the process exit code.
pub fn main(engine: Engine, project: &str) -> Result<i32, Error> {
    let run = engine.paths.run_dir(project);
    std::fs::create_dir_all(run.join("health"))
        .with_context(|| format!("cannot create {}", run.display()))?;
    let lock =
        std::fs::File::create(run.join("supervisor.lock")).context("open the supervisor lock")?;
    if nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err() {
        log("another supervisor holds the lock: exiting");
        return Ok(0);
    }
    let me = std::process::id() as i32;
    let start = mc_runtime::state::proc_start_time(me).unwrap_or(0);
    let sock_path = engine.paths.socket(project);
    let _ = std::fs::remove_file(&sock_path);
    let listener = UnixListener::bind(&sock_path)
        .with_context(|| format!("cannot listen on {}", sock_path.display()))?;
    listener
        .set_nonblocking(true)
        .context("nonblocking socket")?;
    write_json(
        &engine.paths.pid_file(project),
        &SupervisorPid { pid: me, start },
    )?;
    // SAFETY: plain handlers that only store to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    log(&format!("supervisor of {project} running (pid {me})"));
    let mut sup = Supervisor {
        engine,
        project: project.to_string(),
        watches: HashMap::new(),
        empty_since: None,
        monitors: Vec::new(),
    };
    let code = loop {
        if TERMINATE.load(Ordering::SeqCst) {
            log("terminated");
            break 0;
        }
        let mut fds = [nix::poll::PollFd::new(
            listener.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(200u16));
        let mut shutdown = false;
        while let Ok((conn, _)) = listener.accept() {
            if sup.serve(conn) {
                shutdown = true;
            }
        }
        if shutdown {
            log("shutdown requested");
            break 0;
        }
        sup.reap_probes();
        sup.reap_monitors();
        if !sup.tick() {
            log("the project has no containers left: exiting");
            break 0;
        }
    };
    for w in sup.watches.values_mut() {
        if let Some(p) = w.probe.take() {
            p.kill();
        }
    }
    let _ = std::fs::remove_file(&sock_path);
    let _ = std::fs::remove_file(sup.engine.paths.pid_file(project));
    Ok(code)
}

struct Supervisor {
    engine: Engine,
    project: String,
    watches: HashMap<String, Watch>,
    empty_since: Option<Instant>,
    /// Monitors of containers we restarted: our children, reaped here.
    monitors: Vec<i32>,
}

fn rfc3339_age(a: &str, b: &str) -> Option<Duration> {
    let a = humantime::parse_rfc3339_weak(a.get(..19)?).ok()?;
    let b = humantime::parse_rfc3339_weak(b.get(..19)?).ok()?;
    b.duration_since(a).ok()
}

impl Supervisor {
    /// One request per connection. Returns true on `shutdown`.
    fn serve(&mut self, conn: UnixStream) -> bool {
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
        let mut line = String::new();
        let Ok(mut w) = conn.try_clone() else {
            return false;
        };
        if BufReader::new(conn).read_line(&mut line).is_err() {
            return false;
        }
        let req: Result<Request, _> = serde_json::from_str(&line);
        let mut resp = Response {
            ok: true,
            pid: std::process::id() as i32,
            ..Default::default()
        };
        let mut shutdown = false;
        match req.as_ref().map(|r| r.op.as_str()) {
            Ok("ping") => {}
            Ok("reload") => {
                self.tick();
            }
            Ok("status") => {
                resp.containers = self
                    .watches
                    .iter()
                    .map(|(id, w)| WatchStatus {
                        id: id.clone(),
                        name: w.name.clone(),
                        health: w
                            .health
                            .as_ref()
                            .map(|h| h.status.clone())
                            .unwrap_or_default(),
                        restarts: w.restarts,
                    })
                    .collect();
            }
            Ok("shutdown") => shutdown = true,
            Ok(other) => {
                resp.ok = false;
                resp.error = format!("unknown op {other:?}");
            }
            Err(e) => {
                resp.ok = false;
                resp.error = format!("bad request: {e}");
            }
        }
        if let Ok(mut out) = serde_json::to_vec(&resp) {
            out.push(b'\n');
            let _ = w.write_all(&out);
        }
        shutdown
    }

    fn reap_monitors(&mut self) {
        self.monitors.retain(|&pid| {
            let mut st = 0;
            // SAFETY: a child of ours (a container's monitor).
            let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
            r == 0
        });
    }

    fn write_health(&self, id: &str, h: &Health) {
        let _ = write_json(&self.engine.paths.health_path(&self.project, id), h);
    }

    /// Collect finished probes and time out slow ones.
    fn reap_probes(&mut self) {
        let now = Instant::now();
        let mut results: Vec<(String, bool, String, i32)> = Vec::new();
        for (id, w) in self.watches.iter_mut() {
            let Some(p) = &w.probe else { continue };
            if let Some((code, out)) = p.try_finish() {
                results.push((id.clone(), code == 0, out, code));
                w.probe = None;
            } else if now.duration_since(p.started) > p.timeout {
                let p = w.probe.take().expect("probe present");
                let t = p.timeout;
                p.kill();
                results.push((
                    id.clone(),
                    false,
                    format!("Health check exceeded timeout ({t:?})"),
                    -1,
                ));
            }
        }
        for (id, ok, out, code) in results {
            let Some(cfg) = self
                .engine
                .paths
                .read_record(&self.project, &id)
                .and_then(|r| r.healthcheck)
            else {
                continue;
            };
            let Some(w) = self.watches.get_mut(&id) else {
                continue;
            };
            let in_start = w.started.is_some_and(|s| s.elapsed() < cfg.start_period);
            let prev = w.health.clone().unwrap_or_default();
            let h = health::record(&cfg, prev.clone(), ok, in_start, out, code);
            if h.status != prev.status {
                log(&format!(
                    "{}: health {} -> {}",
                    w.name, prev.status, h.status
                ));
            }
            w.next_probe = Some(Instant::now() + health::next_delay(&cfg, in_start, &h.status));
            w.health = Some(h.clone());
            self.write_health(&id, &h);
        }
    }

    /// Look at every container: new instances, exits, due probes and
    /// restarts. Returns false once the project has nothing left.
    fn tick(&mut self) -> bool {
        let members = self.engine.members(&self.project);
        let records = std::fs::read_dir(self.engine.paths.records_dir(&self.project))
            .map(|r| r.count())
            .unwrap_or(0);
        if members.is_empty() && records == 0 {
            // Give a concurrent `up` a moment between creating the supervisor and its first container.
            let since = *self.empty_since.get_or_insert_with(Instant::now);
            return since.elapsed() < Duration::from_secs(10);
        }
        self.empty_since = None;
        let now = Instant::now();
        let live: Vec<String> = members.iter().map(|m| m.id().to_string()).collect();
        self.watches.retain(|id, w| {
            let keep = live.contains(id);
            if !keep {
                if let Some(p) = w.probe.take() {
                    p.kill();
                }
            }
            keep
        });
        for m in members.iter().filter(|m| !m.oneoff) {
            let id = m.id().to_string();
            let Some(rec) = self.engine.paths.read_record(&self.project, &id) else {
                continue;
            };
            let w = self.watches.entry(id.clone()).or_insert_with(|| Watch {
                name: m.name().to_string(),
                restarts: self.engine.paths.restart_count(&self.project, &id),
                ..Default::default()
            });
            if m.running() {
                if w.instance != m.state.pid_start {
                    w.instance = m.state.pid_start;
                    w.started = Some(now);
                    w.restart_at = None;
                    if let Some(p) = w.probe.take() {
                        p.kill();
                    }
                    if let Some(cfg) = &rec.healthcheck {
                        let h = Health {
                            status: "starting".into(),
                            pid_start: m.state.pid_start,
                            ..Default::default()
                        };
                        let _ = write_json(&self.engine.paths.health_path(&self.project, &id), &h);
                        w.health = Some(h);
                        let in_start = !cfg.start_period.is_zero();
                        w.next_probe = Some(now + health::next_delay(cfg, in_start, "starting"));
                    } else {
                        w.health = None;
                        w.next_probe = None;
                    }
                }
                if let (Some(cfg), Some(due)) = (&rec.healthcheck, w.next_probe) {
                    if w.probe.is_none() && now >= due {
                        let out = self
                            .engine
                            .paths
                            .run_dir(&self.project)
                            .join("health")
                            .join(format!("{id}.out"));
                        match probe::Probe::spawn(&self.engine, &id, &cfg.argv, cfg.timeout, &out) {
                            Ok(p) => w.probe = Some(p),
                            Err(e) => log(&format!("{}: cannot run the health check: {e}", w.name)),
                        }
                        w.next_probe = None;
                    }
                }
                continue;
            }
            if m.state.status != mc_runtime::Status::Exited {
                continue;
            }
            if let Some(p) = w.probe.take() {
                p.kill();
            }
            if w.handled_run.as_deref() != Some(m.state.started_at.as_str()) {
                w.handled_run = Some(m.state.started_at.clone());
                if rec
                    .restart
                    .should_restart(m.state.exit_code, w.restarts, rec.stopped_by_user)
                {
                    let ran =
                        rfc3339_age(&m.state.started_at, &m.state.finished_at).unwrap_or_default();
                    let delay = w.backoff.next_delay(ran);
                    log(&format!(
                        "{} exited with code {}: restart in {delay:?}",
                        w.name, m.state.exit_code
                    ));
                    w.restart_at = Some(now + delay);
                }
            }
            if let Some(at) = w.restart_at {
                if now >= at {
                    w.restart_at = None;
                    // The user may have stopped it in the meantime.
                    let stopped = self
                        .engine
                        .paths
                        .read_record(&self.project, &id)
                        .map(|r| r.stopped_by_user)
                        .unwrap_or(true);
                    if stopped {
                        continue;
                    }
                    w.restarts += 1;
                    self.engine
                        .paths
                        .set_restart_count(&self.project, &id, w.restarts);
                    match self.engine.start_container(&self.project, &id) {
                        Ok(_) => {
                            log(&format!("{}: restarted ({} so far)", w.name, w.restarts));
                            if let Ok(r) = self.engine.runtime.containers.read(&id) {
                                self.monitors.push(r.state.monitor_pid);
                            }
                        }
                        Err(e) => {
                            log(&format!("{}: restart failed: {e}", w.name));
                            w.handled_run = None;
                        }
                    }
                }
            }
        }
        true
    }
}

/// For tests and docs: where the supervisor keeps probe output.
pub fn probe_output(engine: &Engine, project: &str, id: &str) -> PathBuf {
    engine
        .paths
        .run_dir(project)
        .join("health")
        .join(format!("{id}.out"))
}
