//! Building images: `image build` (docker build's flags), the compose
//! `build [SERVICE…]` command, and [`for_up`], the hook `up` calls so
//! services with `build:` get their image (built when missing, rebuilt with
//! `--build`). The work is in `mc_build::exec`.
//!
//! Image names follow docker compose v2: the service's `image:` when given,
//! else `<project>-<service>` (tag `latest`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::exit::user_error;
use crate::global::Global;

#[derive(Args, Debug)]
pub struct ImageBuildArgs {
    /// Name and optionally a tag (name:tag); repeatable
    #[arg(short = 't', long = "tag")]
    pub tag: Vec<String>,
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile)
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Set build-time variables (NAME=value, or NAME to take it from the environment)
    #[arg(long = "build-arg")]
    pub build_arg: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Set metadata for an image (KEY=value); repeatable
    #[arg(long)]
    pub label: Vec<String>,
    /// Suppress the build output and print the image ID on success
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Network of RUN steps without their own --network: default (a build bridge), host or none
    #[arg(long, default_value = "default")]
    pub network: String,
    /// Build context directory
    pub context: PathBuf,
}

#[derive(Args, Debug)]
pub struct ComposeBuildArgs {
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Set build-time variables for services (NAME=value)
    #[arg(long = "build-arg")]
    pub build_arg: Vec<String>,
    /// Don't print anything to stdout
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Services to build (default: all with a build section)
    pub services: Vec<String>,
}

fn build_err(e: mc_build::Error) -> anyhow::Error {
    match e {
        mc_build::Error::Invalid(m) => user_error(m),
        mc_build::Error::Other(e) => e,
    }
}

/// `--build-arg NAME=value`, or `NAME` alone: the value from our environment
/// (skipped when unset, as docker does).
fn parse_build_args(args: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in args {
        match a.split_once('=') {
            Some(("", _)) => {
                return Err(user_error(format!(
                    "invalid --build-arg {a:?}: use NAME=value"
                )))
            }
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

fn pull_options(g: &Global) -> mc_image::PullOptions {
    mc_image::PullOptions {
        mirrors: g.registry_mirror.clone(),
        progress: true,
        ..Default::default()
    }
}

/// Silence stdout and stderr (the build's progress and RUN output) while
/// `f` runs, for `-q`.
fn quietly<T>(quiet: bool, f: impl FnOnce() -> T) -> T {
    use std::os::fd::AsRawFd;
    if !quiet {
        return f();
    }
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return f();
    };
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: plain fd juggling on our own stdout/stderr, restored below.
    let saved = unsafe { [libc::dup(1), libc::dup(2)] };
    if saved.iter().any(|fd| *fd < 0) {
        return f();
    }
    unsafe {
        libc::dup2(null.as_raw_fd(), 1);
        libc::dup2(null.as_raw_fd(), 2);
    }
    let out = f();
    let _ = std::io::stdout().flush();
    unsafe {
        libc::dup2(saved[0], 1);
        libc::dup2(saved[1], 2);
        libc::close(saved[0]);
        libc::close(saved[1]);
    }
    out
}

/// `image build`.
pub fn image_build(g: &Global, a: ImageBuildArgs) -> anyhow::Result<i32> {
    mc_runtime::require_root()?;
    let context = a.context.clone();
    if !context.is_dir() {
        return Err(user_error(format!(
            "unable to prepare context: path {:?} not found or not a directory",
            context.display().to_string()
        )));
    }
    // docker build: -f is relative to the current directory.
    let dockerfile = a.file.clone().unwrap_or_else(|| context.join("Dockerfile"));
    let mut labels = BTreeMap::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let req = mc_build::exec::BuildRequest {
        root: g.root.clone(),
        context,
        dockerfile,
        options: mc_build::args::BuildOptions {
            build_args: parse_build_args(&a.build_arg)?,
            target: a.target.clone(),
            ..Default::default()
        },
        tags: a.tag.clone(),
        no_cache: a.no_cache,
        pull: pull_options(g),
        labels,
        label: String::new(),
        network: mc_build::exec::network::NetworkMode::parse(&a.network, "--network")
            .map_err(build_err)?,
    };
    let built = quietly(a.quiet, || mc_build::exec::build(&req)).map_err(build_err)?;
    if a.quiet {
        println!("{}", built.id);
    }
    Ok(0)
}

/// The image name docker compose v2 gives a service's build.
pub fn service_image(project: &str, service: &str, s: &mc_compose::Service) -> String {
    s.image
        .clone()
        .unwrap_or_else(|| format!("{project}-{service}"))
}

fn request(
    g: &Global,
    project: &mc_compose::Project,
    name: &str,
    s: &mc_compose::Service,
    extra_args: &BTreeMap<String, String>,
    no_cache: bool,
) -> anyhow::Result<mc_build::exec::BuildRequest> {
    let b = s
        .build
        .as_ref()
        .ok_or_else(|| user_error(format!("service {name} has no build section")))?;
    if b.context.contains("://") || b.context.starts_with("git@") {
        return Err(user_error(format!(
            "service {name}: build context {:?} is remote: only local directories are supported",
            b.context
        )));
    }
    let context = PathBuf::from(&b.context);
    if !context.is_dir() {
        return Err(user_error(format!(
            "service {name}: build context {} does not exist or is not a directory",
            context.display()
        )));
    }
    let dockerfile = if Path::new(&b.dockerfile).is_absolute() {
        PathBuf::from(&b.dockerfile)
    } else {
        context.join(if b.dockerfile.is_empty() {
            "Dockerfile"
        } else {
            &b.dockerfile
        })
    };
    let mut build_args = BTreeMap::new();
    for (k, v) in &b.args {
        match v {
            Some(v) => {
                build_args.insert(k.clone(), v.clone());
            }
            None => {
                if let Ok(v) = std::env::var(k) {
                    build_args.insert(k.clone(), v);
                }
            }
        }
    }
    build_args.extend(extra_args.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(mc_build::exec::BuildRequest {
        root: g.root.clone(),
        context,
        dockerfile,
        options: mc_build::args::BuildOptions {
            build_args,
            target: b.target.clone(),
            ..Default::default()
        },
        tags: vec![service_image(&project.name, name, s)],
        no_cache,
        pull: pull_options(g),
        // docker compose v2 labels the images it builds with their project and service.
        labels: b
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain([
                (
                    "com.docker.compose.project".to_string(),
                    project.name.clone(),
                ),
                ("com.docker.compose.service".to_string(), name.to_string()),
            ])
            .collect(),
        label: name.to_string(),
        network: match &b.network {
            Some(n) => mc_build::exec::network::NetworkMode::parse(n, "build.network")
                .map_err(|e| user_error(format!("service {name}: {e}")))?,
            None => Default::default(),
        },
    })
}

fn build_one(
    g: &Global,
    project: &mc_compose::Project,
    name: &str,
    extra: &BTreeMap<String, String>,
    no_cache: bool,
) -> anyhow::Result<()> {
    let s = &project.services[name];
    let req = request(g, project, name, s, extra, no_cache)?;
    eprintln!(" Service {name}  Building");
    let built = mc_build::exec::build(&req).map_err(|e| match e {
        mc_build::Error::Invalid(m) => user_error(format!("service {name}: {m}")),
        mc_build::Error::Other(e) => e.context(format!("service {name}: build")),
    })?;
    eprintln!(
        " Service {name}  Built ({})",
        &built.id[..19.min(built.id.len())]
    );
    Ok(())
}

/// Compose `build [SERVICE…]`.
pub fn compose_build(g: &Global, a: ComposeBuildArgs) -> anyhow::Result<i32> {
    mc_runtime::require_root()?;
    let project = mc_compose::load(&super::config::load_options(g, false))?;
    for s in &a.services {
        if !project.services.contains_key(s) {
            return Err(user_error(format!("no such service: {s}")));
        }
    }
    let extra = parse_build_args(&a.build_arg)?;
    let names: Vec<String> = project
        .services
        .iter()
        .filter(|(n, s)| s.build.is_some() && (a.services.is_empty() || a.services.contains(n)))
        .map(|(n, _)| n.clone())
        .collect();
    quietly(a.quiet, || -> anyhow::Result<()> {
        for n in &names {
            build_one(g, &project, n, &extra, a.no_cache)?;
        }
        Ok(())
    })?;
    Ok(0)
}

/// The hook `up` calls before `Engine::up`: every selected service (and its
/// dependencies, unless `no_deps`) with a `build:` section gets `image` set
/// to its compose name; the image is built when it is missing, or always
/// with `force` (`up --build`). `no_build` (`up --no-build`) never builds.
pub fn for_up(
    g: &Global,
    project: &mut mc_compose::Project,
    services: &[String],
    no_deps: bool,
    force: bool,
    no_build: bool,
) -> anyhow::Result<()> {
    let order = mc_engine::plan::selection(&project.services, services, no_deps)
        .map_err(super::compose_out::err)?;
    let store = mc_image::Store::open(&g.root)?;
    let extra = BTreeMap::new();
    for name in order {
        let s = &project.services[&name];
        if s.build.is_none() {
            continue;
        }
        let image = service_image(&project.name, &name, s);
        let present = store.get(&image)?.is_some();
        if !no_build && (force || !present) {
            mc_runtime::require_root()?;
            build_one(g, project, &name, &extra, false)?;
        }
        if let Some(svc) = project.services.get_mut(&name) {
            svc.image = Some(image);
        }
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ImagePushArgs {
    /// Image to push (name[:tag]); its registry is part of the name
    pub image: String,
}

#[derive(Args, Debug)]
pub struct ComposePushArgs {
    /// Push what can be pushed, ignoring failures
    #[arg(long = "ignore-push-failures")]
    pub ignore_push_failures: bool,
    /// Push without printing progress
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Services whose images to push (default: all with an image or a build)
    pub services: Vec<String>,
}

/// `image push`.
pub fn image_push(g: &Global, a: ImagePushArgs) -> anyhow::Result<i32> {
    let store = mc_image::Store::open(&g.root)?;
    mc_build::exec::push::push(&store, &a.image).map_err(build_err)?;
    Ok(0)
}

/// Compose `push [SERVICE…]`: each service's image (`image:` or its built
/// `<project>-<service>` name), as docker compose does.
pub fn compose_push(g: &Global, a: ComposePushArgs) -> anyhow::Result<i32> {
    let project = mc_compose::load(&super::config::load_options(g, false))?;
    for s in &a.services {
        if !project.services.contains_key(s) {
            return Err(user_error(format!("no such service: {s}")));
        }
    }
    let store = mc_image::Store::open(&g.root)?;
    for (name, s) in &project.services {
        if !a.services.is_empty() && !a.services.contains(name) {
            continue;
        }
        if s.image.is_none() && s.build.is_none() {
            continue;
        }
        let image = service_image(&project.name, name, s);
        if !a.quiet {
            eprintln!(" Service {name}  Pushing {image}");
        }
        match quietly(a.quiet, || mc_build::exec::push::push(&store, &image)) {
            Ok(_) => {
                if !a.quiet {
                    eprintln!(" Service {name}  Pushed");
                }
            }
            Err(e) if a.ignore_push_failures => eprintln!("WARN[0000] service {name}: {e}"),
            Err(e) => return Err(build_err(e)),
        }
    }
    Ok(0)
}
