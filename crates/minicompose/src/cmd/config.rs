//! `minicompose config`: the normalized project, like `docker compose config`.

use std::io::Write;

use clap::{Args, ValueEnum};

use crate::global::Global;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

#[derive(Args)]
pub struct ConfigArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
    /// Print the service names, one per line
    #[arg(long)]
    pub services: bool,
    /// Print the volume names, one per line
    #[arg(long)]
    pub volumes: bool,
    /// Print the network names, one per line
    #[arg(long)]
    pub networks: bool,
    /// Print the image names, one per line
    #[arg(long)]
    pub images: bool,
    /// Print the profile names, one per line
    #[arg(long)]
    pub profiles: bool,
    /// Don't interpolate environment variables
    #[arg(long = "no-interpolate")]
    pub no_interpolate: bool,
    /// Only validate the configuration, don't print anything
    #[arg(short, long)]
    pub quiet: bool,
}

/// The loader's options from the global flags.
pub fn load_options(g: &Global, no_interpolate: bool) -> mc_compose::LoadOptions {
    mc_compose::LoadOptions {
        files: g.file.clone(),
        project_name: g.project_name.clone(),
        project_directory: g.project_directory.clone(),
        env_files: g.env_file.clone(),
        profiles: g.profile.clone(),
        no_interpolate,
        ..Default::default()
    }
}

pub fn run(g: &Global, a: ConfigArgs) -> anyhow::Result<i32> {
    let project = mc_compose::load(&load_options(g, a.no_interpolate))?;
    for w in &project.warnings {
        eprintln!("WARN {w}");
    }
    if a.quiet {
        return Ok(0);
    }
    let mut lines: Vec<String> = Vec::new();
    let listing = a.services || a.volumes || a.networks || a.images || a.profiles;
    if a.services {
        lines.extend(project.services.keys().cloned());
    }
    if a.volumes {
        lines.extend(project.volumes.keys().cloned());
    }
    if a.networks {
        lines.extend(project.networks.keys().cloned());
    }
    if a.images {
        for (name, s) in &project.services {
            // A build-only service's image is named <project>-<service>, as docker does.
            lines.push(
                s.image
                    .clone()
                    .unwrap_or_else(|| format!("{}-{name}", project.name)),
            );
        }
    }
    if a.profiles {
        let mut p = project.all_profiles.clone();
        p.sort();
        lines.extend(p);
    }
    let out = if listing {
        lines.iter().map(|l| format!("{l}\n")).collect::<String>()
    } else {
        match a.format {
            Format::Yaml => project.to_yaml()?,
            Format::Json => project.to_json()?,
        }
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting.
    match stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        r => r.map(|_| 0).map_err(Into::into),
    }
}
