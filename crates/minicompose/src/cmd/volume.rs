//! `minicompose volume create|ls|inspect|rm|prune`, Docker's output shapes.
//!
//! Volumes live in `<root>/volumes/<name>/_data`. "In use" means mounted by
//! any container, running or stopped, as Docker counts it.

use std::collections::BTreeMap;
use std::io::{BufRead as _, Write as _};

use clap::{Args, Subcommand};
use mc_engine::volumes::{self, VolumeMeta};
use mc_engine::Paths;
use mc_runtime::state::{Containers, Lock};
use serde_json::json;

use crate::cmd::image::human_size;
use crate::exit::user_error;
use crate::global::Global;

#[derive(Subcommand)]
pub enum VolumeCmd {
    /// Create a volume (a random name when none is given)
    Create {
        /// Set metadata on the volume (KEY=VALUE, repeatable)
        #[arg(long = "label")]
        labels: Vec<String>,
        name: Option<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Only display volume names
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Display detailed information on one or more volumes
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove one or more volumes (not while a container uses them)
    #[command(alias = "remove")]
    Rm {
        /// Do not fail on volumes that do not exist
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove unused anonymous volumes (all unused ones with --all)
    Prune {
        /// Remove all unused volumes, not just anonymous ones
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
}

#[derive(Args, Default)]
pub struct FilterArgs {
    /// Filter: dangling=true|false, label=KEY[=VALUE], name=TEXT (repeatable)
    #[arg(long = "filter")]
    filters: Vec<String>,
}

/// Parsed `--filter` values; every kind given must match.
#[derive(Default, Debug)]
struct Filter {
    dangling: Option<bool>,
    labels: Vec<(String, Option<String>)>,
    names: Vec<String>,
}

impl Filter {
    fn parse(args: &FilterArgs) -> anyhow::Result<Filter> {
        let mut f = Filter::default();
        for raw in &args.filters {
            let (key, value) = raw.split_once('=').ok_or_else(|| {
                user_error(format!(
                    "bad filter {raw:?}: use dangling=true|false, label=KEY[=VALUE] or name=TEXT"
                ))
            })?;
            match key {
                "dangling" => {
                    f.dangling = Some(match value {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(user_error(format!(
                                "bad filter {raw:?}: dangling takes true or false"
                            )))
                        }
                    })
                }
                "label" => f.labels.push(match value.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (value.to_string(), None),
                }),
                "name" => f.names.push(value.to_string()),
                _ => {
                    return Err(user_error(format!(
                        "bad filter {raw:?}: {key:?} is not a volume filter (dangling, label, name)"
                    )))
                }
            }
        }
        Ok(f)
    }

    fn matches(&self, v: &VolumeMeta, in_use: bool) -> bool {
        self.dangling.is_none_or(|d| d != in_use)
            && self.labels.iter().all(|(k, want)| match v.labels.get(k) {
                Some(have) => want.as_ref().is_none_or(|w| w == have),
                None => false,
            })
            && (self.names.is_empty() || self.names.iter().any(|n| v.name.contains(n.as_str())))
    }
}

pub fn run(g: &Global, cmd: VolumeCmd) -> anyhow::Result<i32> {
    let paths = Paths::new(&g.root);
    match cmd {
        VolumeCmd::Create { labels, name } => create(&paths, labels, name),
        VolumeCmd::Ls { quiet, filter } => ls(g, &paths, quiet, &Filter::parse(&filter)?),
        VolumeCmd::Inspect { names } => inspect(&paths, &names),
        VolumeCmd::Rm { force, names } => rm(g, &paths, force, &names),
        VolumeCmd::Prune { all, force, filter } => {
            prune(g, &paths, all, force, &Filter::parse(&filter)?)
        }
    }
}

fn create(paths: &Paths, labels: Vec<String>, name: Option<String>) -> anyhow::Result<i32> {
    let mut label_map = BTreeMap::new();
    for l in labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        label_map.insert(k.to_string(), v.to_string());
    }
    let name = match name {
        Some(n) => n,
        None => {
            label_map.insert(volumes::LABEL_ANONYMOUS.into(), String::new());
            mc_runtime::state::new_id()
        }
    };
    // Like docker: creating an existing volume is not an error.
    volumes::ensure(paths, &name, label_map)?;
    println!("{name}");
    Ok(0)
}

/// Volume name → containers using it.
fn users(g: &Global, paths: &Paths) -> BTreeMap<String, Vec<String>> {
    volumes::users(paths, &Containers::new(&g.root).list())
}

/// The same, under the containers lock, held until the returned guard
/// drops: no container can start using a volume we are about to remove.
fn users_locked(
    g: &Global,
    paths: &Paths,
) -> anyhow::Result<(Lock, BTreeMap<String, Vec<String>>)> {
    let containers = Containers::new(&g.root);
    let lock = containers.lock()?;
    Ok((lock, volumes::users(paths, &containers.list())))
}

fn ls(g: &Global, paths: &Paths, quiet: bool, filter: &Filter) -> anyhow::Result<i32> {
    let used = users(g, paths);
    let shown: Vec<VolumeMeta> = volumes::list(paths)
        .into_iter()
        .filter(|v| filter.matches(v, used.contains_key(&v.name)))
        .collect();
    let mut out = std::io::stdout().lock();
    if !quiet {
        writeln!(out, "{:<10}VOLUME NAME", "DRIVER")?;
    }
    for v in &shown {
        if quiet {
            writeln!(out, "{}", v.name)?;
        } else {
            writeln!(out, "{:<10}{}", "local", v.name)?;
        }
    }
    Ok(0)
}

fn get(paths: &Paths, name: &str) -> anyhow::Result<VolumeMeta> {
    volumes::meta(paths, name).ok_or_else(|| user_error(format!("no such volume: {name}")))
}

fn inspect(paths: &Paths, names: &[String]) -> anyhow::Result<i32> {
    let mut out = Vec::new();
    for name in names {
        let v = get(paths, name)?;
        out.push(json!({
            "CreatedAt": v.created,
            "Driver": "local",
            "Labels": if v.labels.is_empty() { serde_json::Value::Null } else { json!(v.labels) },
            "Mountpoint": volumes::data_dir(paths, &v.name),
            "Name": v.name,
            "Options": serde_json::Value::Null,
            "Scope": "local",
        }));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

fn rm(g: &Global, paths: &Paths, force: bool, names: &[String]) -> anyhow::Result<i32> {
    let (_lock, used) = users_locked(g, paths)?;
    let mut failed = Vec::new();
    for name in names {
        if !volumes::exists(paths, name) {
            if !force {
                failed.push(format!("no such volume: {name}"));
            }
            continue;
        }
        if let Some(by) = used.get(name) {
            failed.push(format!(
                "volume {name} is in use by {}: remove those containers first",
                by.join(", ")
            ));
            continue;
        }
        volumes::remove(paths, name)?;
        println!("{name}");
    }
    if failed.is_empty() {
        return Ok(0);
    }
    // Every name was tried; report all failures, the last one as the error.
    let last = failed.pop().unwrap_or_default();
    for f in failed {
        eprintln!("minicompose: {f}");
    }
    Err(user_error(last))
}

fn prune(
    g: &Global,
    paths: &Paths,
    all: bool,
    force: bool,
    filter: &Filter,
) -> anyhow::Result<i32> {
    if filter.dangling.is_some() {
        return Err(user_error(
            "volume prune: the dangling filter does not apply (prune only removes unused volumes)",
        ));
    }
    if !force && !confirm(all)? {
        return Ok(0);
    }
    let (_lock, used) = users_locked(g, paths)?;
    let mut deleted = Vec::new();
    let mut reclaimed = 0;
    for v in volumes::list(paths) {
        if used.contains_key(&v.name)
            || !(all || volumes::is_anonymous(&v))
            || !filter.matches(&v, false)
        {
            continue;
        }
        reclaimed += volumes::size(paths, &v.name);
        volumes::remove(paths, &v.name)?;
        deleted.push(v.name);
    }
    if !deleted.is_empty() {
        println!("Deleted Volumes:");
        for n in &deleted {
            println!("{n}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(0)
}

/// Docker's prompt; anything but y/Y (or end of input) declines.
fn confirm(all: bool) -> anyhow::Result<bool> {
    let what = if all {
        "all local volumes"
    } else {
        "anonymous local volumes"
    };
    eprint!(
        "WARNING! This will remove {what} not used by at least one container.\nAre you sure you want to continue? [y/N] "
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(args: &[&str]) -> anyhow::Result<Filter> {
        Filter::parse(&FilterArgs {
            filters: args.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn vol(name: &str, labels: &[(&str, &str)]) -> VolumeMeta {
        VolumeMeta {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn filters_combine() {
        let v = vol("app_data", &[("env", "prod"), ("team", "")]);
        assert!(filter(&[]).unwrap().matches(&v, true));
        assert!(filter(&["dangling=true"]).unwrap().matches(&v, false));
        assert!(!filter(&["dangling=true"]).unwrap().matches(&v, true));
        assert!(filter(&["dangling=false"]).unwrap().matches(&v, true));
        assert!(filter(&["label=env"]).unwrap().matches(&v, false));
        assert!(filter(&["label=env=prod", "label=team"])
            .unwrap()
            .matches(&v, false));
        assert!(!filter(&["label=env=dev"]).unwrap().matches(&v, false));
        assert!(filter(&["name=data"]).unwrap().matches(&v, false));
        assert!(!filter(&["name=cache"]).unwrap().matches(&v, false));
        assert!(filter(&["name=cache", "name=app"])
            .unwrap()
            .matches(&v, false));
    }

    #[test]
    fn bad_filters_are_user_errors() {
        for bad in ["dangling", "dangling=maybe", "driver=local"] {
            let e = filter(&[bad]).unwrap_err();
            assert!(e.is::<crate::exit::UserError>(), "{bad}: {e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
