//! Options every command accepts (docker compose's global flags plus ours).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Where images, containers and volumes live
    #[arg(
        long,
        global = true,
        env = "MINICOMPOSE_ROOT",
        default_value = "/var/lib/minicompose"
    )]
    pub root: PathBuf,

    /// Registry mirror for docker.io images, tried in order (repeatable)
    #[arg(
        long = "registry-mirror",
        global = true,
        env = "MINICOMPOSE_REGISTRY_MIRROR",
        value_delimiter = ','
    )]
    pub registry_mirror: Vec<String>,

    /// Compose configuration files (repeatable; `-` reads stdin). Before the
    /// command, as docker compose: `logs -f` and `rm -f` mean other things.
    #[arg(short = 'f', long = "file")]
    pub file: Vec<PathBuf>,

    /// Project name (before the command: `run -p` publishes a port)
    #[arg(short = 'p', long = "project-name")]
    pub project_name: Option<String>,

    /// Alternate working directory (default: the first compose file's directory)
    #[arg(long = "project-directory", global = true)]
    pub project_directory: Option<PathBuf>,

    /// Alternate environment files (repeatable)
    #[arg(long = "env-file", global = true)]
    pub env_file: Vec<PathBuf>,

    /// Enable a profile (repeatable)
    #[arg(long = "profile", global = true)]
    pub profile: Vec<String>,

    /// Control when to print ANSI control characters
    #[arg(long, global = true, value_enum, default_value_t = Ansi::Auto)]
    pub ansi: Ansi,

    /// Print every host-visible step (clone flags, mounts, cgroups, netlink, nft, DNS) with timings
    #[arg(long, global = true)]
    pub explain: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ansi {
    Never,
    Always,
    Auto,
}

impl Global {
    /// Whether to color output on a stream that is a terminal when `is_tty`.
    pub fn color(&self, is_tty: bool) -> bool {
        match self.ansi {
            Ansi::Never => false,
            Ansi::Always => true,
            Ansi::Auto => is_tty && std::env::var_os("NO_COLOR").is_none(),
        }
    }
}
