//! `minicompose image …`, `login`, `logout`.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use mc_image::{auth, registry, PullOptions, Reference, Store, TagRecord};

use crate::exit::user_error;
use crate::global::Global;

#[derive(Subcommand)]
pub enum ImageCmd {
    /// Download an image from a registry
    Pull(PullArgs),
    /// List images
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more images (JSON)
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
        /// Remove even if containers use the image (their layers are kept)
        #[arg(short, long)]
        force: bool,
    },
    /// Remove blobs and layers no image or container uses
    Prune {
        /// Do not prompt for confirmation (there is no prompt; accepted for docker compatibility)
        #[arg(short, long)]
        force: bool,
    },
    /// Write an image's flattened root filesystem into a directory
    Export { image: String, dir: PathBuf },
    /// Create an image from a root filesystem tarball (`-` reads stdin)
    Import { tarball: String, reference: String },
    /// Build an image from a Dockerfile
    Build(super::build::ImageBuildArgs),
    /// Upload an image to its registry
    Push(super::build::ImagePushArgs),
}

#[derive(Args)]
pub struct PullArgs {
    pub reference: String,
    /// Pull for this platform (os/arch[/variant]) instead of the host's
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct LsArgs {
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate IDs
    #[arg(long)]
    pub no_trunc: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Filter by repository name (docker's `images [REPOSITORY[:TAG]]`)
    pub reference: Option<String>,
}

#[derive(Args)]
pub struct LoginArgs {
    /// Registry host (default: Docker Hub)
    pub server: Option<String>,
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Args)]
pub struct LogoutArgs {
    /// Registry host (default: Docker Hub)
    pub server: Option<String>,
}

pub fn run(g: &Global, cmd: ImageCmd) -> anyhow::Result<i32> {
    let store = Store::open(&g.root)?;
    match cmd {
        ImageCmd::Pull(a) => pull(g, &store, a),
        ImageCmd::Ls(a) => ls(&store, a),
        ImageCmd::Inspect { images } => inspect(&store, &images),
        ImageCmd::Rm { images, force } => rm(g, &store, &images, force),
        ImageCmd::Prune { .. } => prune(g, &store),
        ImageCmd::Export { image, dir } => export(&store, &image, &dir),
        ImageCmd::Import { tarball, reference } => import(&store, &tarball, &reference),
        ImageCmd::Build(a) => super::build::image_build(g, a),
        ImageCmd::Push(a) => super::build::image_push(g, a),
    }
}

fn pull(g: &Global, store: &Store, a: PullArgs) -> anyhow::Result<i32> {
    let r = Reference::parse(&a.reference)?;
    let before = store.find(&r.to_string())?;
    let opts = PullOptions {
        mirrors: g.registry_mirror.clone(),
        platform: a.platform.clone(),
        progress: !a.quiet,
        credentials: None,
    };
    let img = mc_image::pull_blocking(store, &a.reference, &opts)?;
    let after = store.find(&r.to_string())?;
    let mut out = std::io::stdout().lock();
    if !a.quiet {
        let same = before.as_ref().map(|b| &b.manifest_digest)
            == after.as_ref().map(|a| &a.manifest_digest);
        let short = familiar(&r);
        if same {
            writeln!(out, "Status: Image is up to date for {short}")?;
        } else {
            writeln!(out, "Status: Downloaded newer image for {short}")?;
        }
    }
    writeln!(out, "{}", img.reference)?;
    Ok(0)
}

/// `busybox:latest`, `localhost:5000/x:v1` (docker's familiar string).
fn familiar(r: &Reference) -> String {
    let mut s = r.familiar_name();
    if let Some(t) = &r.tag {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = &r.digest {
        s.push('@');
        s.push_str(d);
    }
    s
}

fn split_record(rec: &TagRecord) -> (String, String) {
    match Reference::parse(&rec.reference) {
        Ok(r) => (
            r.familiar_name(),
            r.tag.clone().unwrap_or_else(|| "<none>".into()),
        ),
        Err(_) => (rec.reference.clone(), "<none>".into()),
    }
}

fn ls(store: &Store, a: LsArgs) -> anyhow::Result<i32> {
    let mut records = store.list()?;
    if let Some(filter) = &a.reference {
        let r = Reference::parse(filter)?;
        let want_tag = filter.contains(':').then(|| r.tag.clone()).flatten();
        records.retain(|rec| {
            Reference::parse(&rec.reference).is_ok_and(|x| {
                x.name() == r.name() && want_tag.as_ref().is_none_or(|t| x.tag.as_ref() == Some(t))
            })
        });
    }
    // Newest first, as docker.
    records.sort_by(|x, y| {
        y.created
            .cmp(&x.created)
            .then(x.reference.cmp(&y.reference))
    });
    let id_of = |rec: &TagRecord| {
        if a.no_trunc {
            rec.id.clone()
        } else {
            rec.id
                .trim_start_matches("sha256:")
                .chars()
                .take(12)
                .collect()
        }
    };
    let mut out = std::io::stdout().lock();
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for rec in &records {
            if seen.insert(rec.id.clone()) {
                writeln!(out, "{}", id_of(rec))?;
            }
        }
        return Ok(0);
    }
    let mut rows = vec![];
    let mut header = vec!["REPOSITORY", "TAG"];
    if a.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    rows.push(header.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    for rec in &records {
        let (repo, tag) = split_record(rec);
        let mut row = vec![repo, tag];
        if a.digests {
            row.push(rec.repo_digest.clone().unwrap_or_else(|| "<none>".into()));
        }
        let size = unpacked_size(store, rec);
        row.extend([
            id_of(rec),
            created_ago(rec.created.as_deref()),
            human_size(size),
        ]);
        rows.push(row);
    }
    write_table(&mut out, &rows)?;
    Ok(0)
}

/// Size as docker shows it: the unpacked layers.
fn unpacked_size(store: &Store, rec: &TagRecord) -> u64 {
    let Ok((_, cfg)) = store.read_image(&rec.manifest_digest) else {
        return rec.size;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&cfg) else {
        return rec.size;
    };
    v["rootfs"]["diff_ids"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|d| d.as_str())
                .map(|d| store.layer_size(d))
                .sum()
        })
        .unwrap_or(rec.size)
}

fn write_table(out: &mut impl Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let cols = rows.first().map(|r| r.len()).unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// docker's units: decimal, 3 significant digits ("4.26MB", "12.3MB", "1GB").
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    format!("{s}{}", UNITS[i])
}

/// "2 days ago", as docker's go-units HumanDuration.
fn created_ago(created: Option<&str>) -> String {
    let Some(secs) = created.and_then(mc_image::import::parse_rfc3339) else {
        return "N/A".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let d = (now - secs).max(0);
    let text = match d {
        0 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".to_string(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".to_string(),
        s if s < 48 * 3600 => format!("{} hours", s / 3600),
        s if s < 14 * 86_400 => format!("{} days", s / 86_400),
        s if s < 60 * 86_400 => format!("{} weeks", s / (7 * 86_400)),
        s if s < 730 * 86_400 => format!("{} months", s / (30 * 86_400)),
        s => format!("{} years", s / (365 * 86_400)),
    };
    format!("{text} ago")
}

fn inspect(store: &Store, images: &[String]) -> anyhow::Result<i32> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for name in images {
        let Some(rec) = store.find(name)? else {
            missing.push(name.clone());
            continue;
        };
        let (manifest, cfg) = store.read_image(&rec.manifest_digest)?;
        let config: serde_json::Value =
            serde_json::from_slice(&cfg).context("parse the image config")?;
        let repo_digests: Vec<String> = rec
            .repo_digest
            .iter()
            .map(|d| format!("{}@{d}", rec.name()))
            .collect();
        let layers: Vec<serde_json::Value> = manifest
            .layers
            .iter()
            .zip(
                config["rootfs"]["diff_ids"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            )
            .map(|(l, diff)| {
                let path = diff.as_str().map(|d| store.layer_path(d));
                serde_json::json!({
                    "Digest": l.digest,
                    "MediaType": l.media_type,
                    "Size": l.size,
                    "DiffID": diff,
                    "Path": path,
                })
            })
            .collect();
        out.push(serde_json::json!({
            "Id": rec.id,
            "RepoTags": [rec.reference],
            "RepoDigests": repo_digests,
            "ManifestDigest": rec.manifest_digest,
            "ManifestMediaType": rec.manifest_media_type,
            "Created": config.get("created"),
            "Architecture": config.get("architecture"),
            "Variant": config.get("variant"),
            "Os": config.get("os"),
            "Author": config.get("author"),
            "Config": config.get("config"),
            "Size": unpacked_size(store, &rec),
            "RootFS": config.get("rootfs"),
            "Layers": layers,
            "History": config.get("history"),
        }));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    if !missing.is_empty() {
        return Err(user_error(format!("no such image: {}", missing.join(", "))));
    }
    Ok(0)
}

/// Layer directories (diff-id hex) that containers under <root>/containers use.
/// Read from each container's config.json `layers` (written by the runtime).
pub(crate) fn layers_in_use(g: &Global) -> (Vec<String>, Vec<(String, String)>) {
    let mut layers = Vec::new();
    let mut users = Vec::new();
    let Ok(entries) = std::fs::read_dir(g.root.join("containers")) else {
        return (layers, users);
    };
    for e in entries.flatten() {
        let Ok(bytes) = std::fs::read(e.path().join("config.json")) else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        let name = v["name"].as_str().unwrap_or_default().to_string();
        if let Some(id) = v["image_id"].as_str() {
            users.push((id.to_string(), name));
        }
        for l in v["layers"].as_array().into_iter().flatten() {
            let Some(p) = l.as_str() else { continue };
            let p = std::path::Path::new(p);
            let dir = if p.file_name().is_some_and(|n| n == "diff") {
                p.parent()
            } else {
                Some(p)
            };
            if let Some(hex) = dir.and_then(|d| d.file_name()).and_then(|n| n.to_str()) {
                layers.push(hex.to_string());
            }
        }
    }
    (layers, users)
}

fn rm(g: &Global, store: &Store, images: &[String], force: bool) -> anyhow::Result<i32> {
    let (in_use, users) = layers_in_use(g);
    let mut failed = Vec::new();
    for name in images {
        let Some(rec) = store.find(name)? else {
            failed.push(format!("no such image: {name}"));
            continue;
        };
        // A reference untags just itself; an ID removes every tag of that image.
        let by_reference = Reference::parse(name).is_ok_and(|r| r.to_string() == rec.reference);
        if !force {
            if let Some((_, c)) = users.iter().find(|(id, _)| *id == rec.id) {
                let others = store.list()?.iter().filter(|r| r.id == rec.id).count();
                if !by_reference || others == 1 {
                    failed.push(format!(
                        "unable to remove {name}: container {c} is using it (remove the container or use --force)"
                    ));
                    continue;
                }
            }
        }
        let gone = store.untag(|r| {
            if by_reference {
                r.reference == rec.reference
            } else {
                r.id == rec.id
            }
        })?;
        for r in gone {
            println!(
                "Untagged: {}",
                split_record(&r).0 + ":" + &split_record(&r).1
            );
        }
    }
    let report = store.collect_garbage(&in_use)?;
    for l in &report.layers {
        println!("Deleted: {l}");
    }
    if !failed.is_empty() {
        return Err(user_error(failed.join("; ")));
    }
    Ok(0)
}

fn prune(g: &Global, store: &Store) -> anyhow::Result<i32> {
    let (in_use, _) = layers_in_use(g);
    let report = store.collect_garbage(&in_use)?;
    for l in &report.layers {
        println!("deleted: {l}");
    }
    println!("Total reclaimed space: {}", human_size(report.bytes));
    Ok(0)
}

fn export(store: &Store, image: &str, dir: &std::path::Path) -> anyhow::Result<i32> {
    let img = store
        .get(image)?
        .ok_or_else(|| user_error(format!("no such image: {image} (pull it first)")))?;
    let stats = mc_image::export::export(&img, dir)?;
    eprintln!(
        "Exported {} ({} entries, {}) to {}",
        img.reference,
        stats.entries,
        human_size(stats.bytes),
        dir.display()
    );
    Ok(0)
}

fn import(store: &Store, tarball: &str, reference: &str) -> anyhow::Result<i32> {
    let r = Reference::parse(reference)?;
    let rec = if tarball == "-" {
        mc_image::import::import(store, std::io::stdin().lock(), &r, "-")?
    } else {
        let f = std::fs::File::open(tarball)
            .map_err(|e| user_error(format!("import {tarball}: {e}")))?;
        mc_image::import::import(store, f, &r, tarball)?
    };
    println!("{}", rec.id);
    Ok(0)
}

/// The registry a login is for, as a host (Docker Hub by default).
fn login_host(server: Option<&str>) -> String {
    match server {
        None => mc_image::reference::DOCKER_HUB.to_string(),
        Some(s) => {
            let s = s
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            let host = s.split('/').next().unwrap_or(s);
            if host == "index.docker.io" || host == "registry-1.docker.io" {
                mc_image::reference::DOCKER_HUB.to_string()
            } else {
                host.to_string()
            }
        }
    }
}

pub fn login(g: &Global, a: LoginArgs) -> anyhow::Result<i32> {
    let host = login_host(a.server.as_deref());
    let username = match a.username {
        Some(u) => u,
        None => {
            if !std::io::stdin().is_terminal() || a.password_stdin {
                return Err(user_error("login: give --username (and --password-stdin)"));
            }
            eprint!("Username: ");
            let mut u = String::new();
            std::io::stdin().read_line(&mut u)?;
            u.trim().to_string()
        }
    };
    if username.is_empty() {
        return Err(user_error("login: the username is empty"));
    }
    let password = if a.password_stdin {
        if a.password.is_some() {
            return Err(user_error(
                "login: --password and --password-stdin are mutually exclusive",
            ));
        }
        let mut p = String::new();
        std::io::stdin().read_to_string(&mut p)?;
        p.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else {
        return Err(user_error("login: give the password with --password-stdin"));
    };
    if password.is_empty() {
        return Err(user_error("login: the password is empty"));
    }
    let creds = auth::Credentials { username, password };
    let endpoint = if host == mc_image::reference::DOCKER_HUB {
        registry::registry_endpoint(mc_image::reference::DOCKER_HUB_API)
    } else {
        registry::registry_endpoint(&host)
    };
    let _ = g;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let checked = rt.block_on(async {
        let http = registry::client::http_client()?;
        let client = registry::Client::new(http, endpoint, "", Some(creds.clone()));
        client.login().await.map_err(|e| e.into_error())
    });
    drop(rt);
    checked.map_err(|e| anyhow::Error::new(e).context(format!("login to {host}")))?;
    let path = auth::save(&host, &creds)?;
    eprintln!("Credentials saved in {}", path.display());
    println!("Login Succeeded");
    Ok(0)
}

pub fn logout(_g: &Global, a: LogoutArgs) -> anyhow::Result<i32> {
    let host = login_host(a.server.as_deref());
    if auth::remove(&host)? {
        println!("Removing login credentials for {host}");
    } else {
        println!("Not logged in to {host}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(12_345_678), "12.3MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(1_000_000_000), "1GB");
    }
}
