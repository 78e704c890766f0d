//! mc-compose: compose files → a normalized, validated [`Project`].
//!
//! A pipeline of stages, one module each, as compose-go does:
//! [`lookup`] (which files, directory, variables, name) → [`yaml`] (parse, with
//! positions) → [`interpolate`] → [`schema`] (per file) → [`extends`]/include →
//! [`merge`] (across files) → [`normalize`] (typed long form, [`model`]) → [`validate`].
//! Every user error is an [`Error::Invalid`] naming `file:line:col` and the path.
//! No I/O beyond reading the compose files, env files and stdin.

pub mod dotenv;
pub mod extends;
pub mod interpolate;
pub mod load;
pub mod lookup;
pub mod merge;
pub mod model;
pub mod normalize;
pub mod path;
pub mod schema;
pub mod short;
pub mod units;
pub mod validate;
pub mod yaml;

use std::path::PathBuf;

use indexmap::IndexMap;

pub use interpolate::Env;
pub use model::*;

/// Errors from this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input from the user: exit code 1.
    #[error("{0}")]
    Invalid(String),
    /// Anything else: exit code 125.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Error {
    /// Whether this error was caused by the user's input (exit code 1).
    pub fn is_user_error(&self) -> bool {
        matches!(self, Error::Invalid(_))
    }
}

/// What `docker compose`'s global flags say, plus test hooks.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `-f` (repeatable; `-` = stdin). Empty: `COMPOSE_FILE`, else the default names.
    pub files: Vec<PathBuf>,
    /// `-p`
    pub project_name: Option<String>,
    /// `--project-directory`
    pub project_directory: Option<PathBuf>,
    /// `--env-file` (repeatable). Empty: `<project dir>/.env` if present.
    pub env_files: Vec<PathBuf>,
    /// `--profile` (repeatable), added to `COMPOSE_PROFILES`.
    pub profiles: Vec<String>,
    /// `--no-interpolate` sets this to true.
    pub no_interpolate: bool,
    /// Working directory; `None` = the process's.
    pub cwd: Option<PathBuf>,
    /// The environment; `None` = the process's.
    pub environment: Option<Env>,
    /// Content for `-f -`; `None` = read the process's stdin.
    pub stdin: Option<String>,
}

/// Load, merge, normalize and validate a compose project.
pub fn load(opts: &LoadOptions) -> Result<Project, Error> {
    let process_env: Env = opts
        .environment
        .clone()
        .unwrap_or_else(|| std::env::vars().collect());
    let cwd = match &opts.cwd {
        Some(c) => c.clone(),
        None => std::env::current_dir()
            .map_err(|e| Error::Other(anyhow::anyhow!("cannot read the current directory: {e}")))?,
    };
    // COMPOSE_FILE and friends may come from the .env file of the directory we start in.
    let start_dir = match &opts.project_directory {
        Some(d) => normalize::resolve_path(&cwd, &d.to_string_lossy()),
        None => cwd.clone(),
    };
    let pre_env = lookup::environment(&process_env, &opts.env_files, &start_dir, &cwd)?;
    let (sources, mut warnings) = lookup::find_files(
        &opts.files,
        &pre_env,
        &cwd,
        opts.project_directory.as_deref(),
    )?;
    let working_dir = match &opts.project_directory {
        Some(d) => normalize::resolve_path(&cwd, &d.to_string_lossy()),
        None => match sources.first() {
            Some(lookup::Source::Path(p)) => {
                p.parent().map(PathBuf::from).unwrap_or_else(|| cwd.clone())
            }
            _ => cwd.clone(),
        },
    };
    let env = lookup::environment(&process_env, &opts.env_files, &working_dir, &cwd)?;
    tracing::info!(target: "explain::compose", files = ?sources, dir = %working_dir.display(), "loading compose files");

    let mut loader = load::Loader::new(&env, !opts.no_interpolate, cwd.clone(), opts.stdin.clone());
    let mut tree: Option<yaml::Node> = None;
    for src in &sources {
        let doc = loader.load_file(src)?;
        tree = Some(match tree {
            None => doc,
            Some(base) => merge::merge_documents(base, doc),
        });
    }
    let Some(mut tree) = tree else {
        return Err(Error::Invalid("no compose file given".into()));
    };
    merge::strip_resets(&mut tree);

    let mut seen = Vec::new();
    for var in &loader.unset {
        if !seen.contains(var) {
            warnings.push(format!(
                "The \"{var}\" variable is not set. Defaulting to a blank string."
            ));
            seen.push(var.clone());
        }
    }
    if let Some(f) = loader.version_files.first() {
        warnings.push(format!("{f}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion"));
    }

    let top_name = tree
        .get("name")
        .and_then(yaml::Node::as_text)
        .map(str::to_string);
    let name = lookup::project_name(
        opts.project_name.as_deref(),
        &env,
        top_name.as_deref(),
        &working_dir,
    )
    .map_err(|e| {
        // Point at the file when the bad name came from it.
        match (
            e.to_string().contains("(from the top-level name:)"),
            tree.get("name"),
        ) {
            (true, Some(n)) => Error::Invalid(format!("{}: name: {e}", n.mark)),
            _ => e,
        }
    })?;

    let mut active: Vec<String> = opts.profiles.clone();
    if let Some(p) = env.get("COMPOSE_PROFILES") {
        active.extend(
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }

    let mut cx = normalize::Cx {
        project: &name,
        working_dir: &working_dir,
        env: &env,

        ignored: Vec::new(),
    };
    let mut services = IndexMap::new();
    let mut disabled = IndexMap::new();
    let mut all_profiles: Vec<String> = Vec::new();
    if let Some(svc) = tree.get("services").and_then(yaml::Node::as_map) {
        for (sname, node) in svc {
            let s = cx.service(sname, node)?;
            for p in &s.profiles {
                if !all_profiles.contains(p) {
                    all_profiles.push(p.clone());
                }
            }
            let enabled =
                s.profiles.is_empty() || active.iter().any(|a| a == "*" || s.profiles.contains(a));
            if enabled {
                services.insert(sname.clone(), s);
            } else {
                disabled.insert(sname.clone(), s);
            }
        }
    }
    services.sort_keys();
    // An optional dependency on a service that does not exist (or is not enabled) is dropped.
    let known: Vec<String> = services.keys().cloned().collect();
    for (sname, s) in services.iter_mut() {
        s.depends_on.retain(|dep, d| {
            let keep = d.required || known.contains(dep);
            if !keep && !disabled.contains_key(dep) {
                warnings.push(format!("service \"{sname}\" depends on undefined service \"{dep}\" (not required, ignored)"));
            }
            keep
        });
    }

    let mut networks = normalize::networks(tree.get("networks"), &name)?;
    if services
        .values()
        .any(|s| s.networks.contains_key("default"))
        && !networks.contains_key("default")
    {
        networks.insert(
            "default".into(),
            Network {
                name: format!("{name}_default"),
                ..Default::default()
            },
        );
    }
    let volumes = normalize::volumes_top(tree.get("volumes"), &name)?;
    let raw = |k: &str| -> Extra {
        match tree.get(k).map(yaml::to_json) {
            Some(serde_json::Value::Object(m)) => m.into_iter().collect(),
            _ => Extra::new(),
        }
    };
    let secrets = named_resources(raw("secrets"), &name, &working_dir);
    let configs = named_resources(raw("configs"), &name, &working_dir);
    let extensions: Extra = tree
        .as_map()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with("x-"))
                .map(|(k, v)| (k.clone(), yaml::to_json(v)))
                .collect()
        })
        .unwrap_or_default();

    // One warning per key we keep but do not act on, naming the services using it.
    let mut ignored: IndexMap<String, Vec<String>> = IndexMap::new();
    for (key, svc) in cx.ignored.drain(..) {
        if services.contains_key(&svc) {
            ignored.entry(key).or_default().push(svc);
        }
    }
    for (key, svcs) in ignored {
        warnings.push(format!(
            "services.*.{key} is parsed but not acted on by minicompose yet (used by: {})",
            svcs.join(", ")
        ));
    }
    for k in ["secrets", "configs", "models"] {
        if tree.get(k).is_some() {
            warnings.push(format!(
                "top-level {k} is parsed but not acted on by minicompose yet"
            ));
        }
    }

    let files = sources
        .iter()
        .map(|s| match s {
            lookup::Source::Path(p) => p.clone(),
            lookup::Source::Stdin => PathBuf::from("-"),
        })
        .collect();
    let project = Project {
        name,
        working_dir,
        files,
        services,
        networks,
        volumes,
        secrets,
        configs,
        disabled_services: disabled,
        all_profiles,
        extensions,
        warnings,
        interpolated: !opts.no_interpolate,
    };
    validate::check(&project, &tree)?;
    let mut project = project;
    sort_maps(&mut project);
    Ok(project)
}

/// Secrets and configs as docker prints them: a real name, the file path absolute.
fn named_resources(mut items: Extra, project: &str, dir: &std::path::Path) -> Extra {
    for (key, v) in items.iter_mut() {
        if v.is_null() {
            *v = serde_json::Value::Object(Default::default());
        }
        let Some(m) = v.as_object_mut() else { continue };
        let external = m
            .get("external")
            .is_some_and(|e| e.as_bool() != Some(false));
        if !m.contains_key("name") {
            let n = if external {
                key.clone()
            } else {
                format!("{project}_{key}")
            };
            m.insert("name".into(), serde_json::Value::String(n));
        }
        if let Some(serde_json::Value::String(f)) = m.get_mut("file") {
            *f = normalize::resolve_path(dir, f)
                .to_string_lossy()
                .into_owned();
        }
    }
    items
}

/// docker prints maps with sorted keys (they are Go maps); do the same so `config`
/// output is stable and comparable.
fn sort_maps(p: &mut Project) {
    p.networks.sort_keys();
    p.volumes.sort_keys();
    p.secrets.sort_keys();
    p.configs.sort_keys();
    p.extensions.sort_keys();
    for s in p
        .services
        .values_mut()
        .chain(p.disabled_services.values_mut())
    {
        s.depends_on.sort_keys();
        s.environment.sort_keys();
        s.labels.sort_keys();
        s.networks.sort_keys();
        s.sysctls.sort_keys();
        s.ulimits.sort_keys();
        s.extra.sort_keys();
        if let Some(b) = s.build.as_mut() {
            b.args.sort_keys();
            b.labels.sort_keys();
        }
        if let Some(l) = s.logging.as_mut() {
            l.options.sort_keys();
        }
    }
}
