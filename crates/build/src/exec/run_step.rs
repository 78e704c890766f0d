//! A RUN step: a container (mc_runtime, the same API `container run` uses)
//! whose rootfs is the stage's layers under a fresh overlay upper dir. The
//! upper dir is the step's diff; the container is removed afterwards.
//!
//! Network ([`StepNetwork`], see exec/network.rs): by default its own
//! namespace on the build's bridge network (masqueraded to the outside);
//! `--network=host` the host's namespace; `--network=none` its own empty
//! namespace.

use std::path::{Path, PathBuf};

use mc_runtime::{Attach, ContainerSpec, EtcFiles, NoNetwork, Runtime};

use crate::evaluate::RunSpec;
use crate::exec::network;
use crate::Error;

/// Where one RUN's process is networked.
pub enum StepNetwork<'a> {
    /// The host's network namespace.
    Host,
    /// Its own namespace with only `lo`.
    None,
    /// Its own namespace on a bridge network of mc_net's store.
    Bridge {
        /// The store.
        nets: &'a mc_net::Networks,
        /// The network's name.
        network: String,
    },
}

/// Where a finished RUN left its diff. Call [`RunOutput::remove`] when done.
pub struct RunOutput {
    /// The overlay upper dir (the step's changes, with overlay whiteouts).
    pub upper: PathBuf,
    id: String,
}

impl RunOutput {
    /// Remove the build container (its directory and cgroup).
    pub fn remove(self, rt: &Runtime) {
        let _ = rt.remove(&self.id, true, &mut |_| {});
    }
}

/// Label naming the build process that owns a build container.
pub const BUILDER_PID_LABEL: &str = "org.minicompose.build.pid";

/// Remove build containers whose build process is gone (a build killed
/// with -9 mid-RUN); live builds' containers are left alone.
pub fn sweep_stale(rt: &Runtime) {
    for rec in rt.containers.list() {
        let Some(pid) = rec.spec.labels.get(BUILDER_PID_LABEL) else {
            continue;
        };
        if !network::builder_alive(pid) {
            tracing::info!(target: "explain::build", "remove stale build container {}", rec.spec.name);
            let _ = rt.remove(&rec.spec.id, true, &mut |_| {});
        }
    }
}

/// How many lines of a failed step's output an error shows.
pub const TAIL_LINES: usize = 10;

/// The last `n` lines a container wrote (both streams, in order).
fn tail(dir: &Path, n: usize) -> Vec<String> {
    let text: String = mc_runtime::logs::read_all(dir)
        .into_iter()
        .map(|e| e.log)
        .collect();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// A failed RUN: the exit code and the last lines of its output.
#[derive(Debug)]
pub struct RunFailed {
    /// The process's exit code.
    pub code: i32,
    /// Its last output lines.
    pub tail: Vec<String>,
}

fn runtime_err(e: mc_runtime::Error) -> Error {
    match e {
        mc_runtime::Error::Invalid(m) => Error::Invalid(m),
        mc_runtime::Error::Start { message, .. } => Error::Invalid(message),
        mc_runtime::Error::Other(e) => Error::Other(e),
    }
}

/// Run `run` on top of `layers` (lowest first). Output goes to our stdout
/// and stderr as it comes. `Ok(Err(..))` is the command failing.
pub fn run(
    rt: &Runtime,
    layers: &[PathBuf],
    run: &RunSpec,
    script_dir: &Path,
    net: StepNetwork<'_>,
) -> Result<Result<RunOutput, RunFailed>, Error> {
    mc_runtime::require_root().map_err(runtime_err)?;
    if layers.is_empty() {
        return Err(Error::Invalid(
            "RUN needs a base image with a shell or program to run (the stage is FROM scratch with no files)"
                .into(),
        ));
    }
    let id = mc_runtime::state::new_id();
    let mut env = run.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={}", mc_runtime::spec::DEFAULT_PATH));
    }
    let mut mounts = Vec::new();
    let mut args = run.argv.clone();
    if let Some(script) = &run.shebang_script {
        // BuildKit runs a `#!` heredoc as a file; ours lives on the /dev tmpfs
        // (never in the layer).
        std::fs::create_dir_all(script_dir)
            .map_err(|e| Error::Other(anyhow::anyhow!("create {}: {e}", script_dir.display())))?;
        let host = script_dir.join(format!("run-{}", &id[..12]));
        std::fs::write(&host, script)
            .and_then(|_| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o755))
            })
            .map_err(|e| Error::Other(anyhow::anyhow!("write {}: {e}", host.display())))?;
        mounts.push(mc_runtime::MountSpec {
            kind: "bind".into(),
            source: host,
            destination: "/dev/.buildkit_heredoc".into(),
            read_only: true,
            options: String::new(),
        });
        args = vec!["/dev/.buildkit_heredoc".into()];
    }
    let network = match &net {
        StepNetwork::Host => "host".to_string(),
        StepNetwork::None => "none".to_string(),
        StepNetwork::Bridge { network, .. } => network.clone(),
    };
    let spec = ContainerSpec {
        id: id.clone(),
        name: format!("mc-build-{}", &id[..12]),
        image: "(build step)".into(),
        image_id: String::new(),
        layers: layers.to_vec(),
        entrypoint: Vec::new(),
        cmd: args.clone(),
        args,
        env,
        working_dir: run.workdir.clone(),
        user: run.user.clone(),
        hostname: "buildkitsandbox".into(),
        network: network.clone(),
        mounts,
        caps: mc_runtime::caps::resolve(&[], &[], false).map_err(runtime_err)?,
        seccomp: true,
        stop_signal: libc::SIGTERM,
        stop_timeout: 10,
        created: mc_runtime::state::now_rfc3339(),
        labels: [(
            BUILDER_PID_LABEL.to_string(),
            std::process::id().to_string(),
        )]
        .into(),
        ..Default::default()
    };
    let files = match &net {
        StepNetwork::Host => EtcFiles::defaults(&spec.hostname, "host"),
        _ => EtcFiles {
            hostname: format!("{}\n", spec.hostname),
            hosts: network::hosts(&spec.hostname),
            resolv_conf: network::host_resolv_conf(),
        },
    };
    let rec = rt.create(&spec, &files).map_err(runtime_err)?;
    tracing::info!(target: "explain::build", "RUN in build container {} on {} layers, network {network}", spec.name, layers.len());
    let attach = Attach {
        tty: false,
        stdin: false,
    };
    let code = match &net {
        StepNetwork::Bridge { nets, network } => {
            let mut hook = network::Attach {
                nets,
                network: network.clone(),
                id: id.clone(),
                name: spec.name.clone(),
            };
            // The runtime calls this when the process has exited (or failed
            // to start): the veth goes with the container.
            let mut detach = |cid: &str| {
                if let Err(e) = nets.detach(cid) {
                    eprintln!("WARNING: detaching build container {cid} from {network}: {e}");
                }
            };
            rt.run_foreground(&rec, attach, &mut hook, &mut detach)
        }
        _ => rt.run_foreground(&rec, attach, &mut NoNetwork, &mut |_| {}),
    };
    let code = match code {
        Ok(c) => c,
        Err(mc_runtime::Error::Start { code, message }) => {
            let _ = rt.remove(&id, true, &mut |_| {});
            return Ok(Err(RunFailed {
                code,
                tail: vec![message],
            }));
        }
        Err(e) => {
            let _ = rt.remove(&id, true, &mut |_| {});
            return Err(runtime_err(e));
        }
    };
    if code != 0 {
        let t = tail(&rec.dir, TAIL_LINES);
        let _ = rt.remove(&id, true, &mut |_| {});
        return Ok(Err(RunFailed { code, tail: t }));
    }
    Ok(Ok(RunOutput {
        upper: rec.dir.join("upper"),
        id,
    }))
}
