//! mc-engine: turns a compose [`mc_compose::Project`] into running containers,
//! keeps the project's state on disk, and runs the per-project supervisor.
//!
//! - [`naming`], [`hash`], [`plan`], [`restart`], [`logs`]: pure parts
//!   (names and labels, config hash, dependency order and reconciliation,
//!   restart policy and backoff, log line formatting).
//! - [`Engine`]: the operations the compose commands use (up, down, ps,
//!   stop, start, …), in [`ops`].
//! - [`supervisor`]: the per-project process (restarts, health checks) and
//!   [`client`], the CLI side of its socket.
//!
//! See docs/compose-lifecycle.md.

pub mod client;
pub mod convert;
pub mod hash;
pub mod health;
pub mod logs;
pub mod naming;
pub mod netattach;
pub mod ops;
pub mod plan;
pub mod ps;
pub mod restart;
pub mod state;
pub mod supervisor;
pub mod volumes;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub use netattach::NetContext;
pub use ops::{Member, RunOptions, UpOptions};
pub use state::Paths;

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

impl From<mc_runtime::Error> for Error {
    fn from(e: mc_runtime::Error) -> Error {
        if e.is_user_error() {
            Error::Invalid(e.to_string())
        } else {
            Error::Other(anyhow::Error::new(e))
        }
    }
}

impl From<mc_net::Error> for Error {
    fn from(e: mc_net::Error) -> Error {
        match e {
            mc_net::Error::Invalid(m) => Error::Invalid(m),
            mc_net::Error::Other(o) => Error::Other(o),
        }
    }
}

impl From<mc_image::Error> for Error {
    fn from(e: mc_image::Error) -> Error {
        match e {
            mc_image::Error::Invalid(m) => Error::Invalid(m),
            mc_image::Error::Other(o) => Error::Other(o),
        }
    }
}

impl From<mc_compose::Error> for Error {
    fn from(e: mc_compose::Error) -> Error {
        match e {
            mc_compose::Error::Invalid(m) => Error::Invalid(m),
            mc_compose::Error::Other(o) => Error::Other(o),
        }
    }
}

/// How to start a process of our own binary (supervisor): program and the
/// arguments before the project name.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// What the engine reports while it works (the CLI prints it).
pub trait Reporter {
    /// `kind` is Network, Volume, Container or Image; `status` docker's word
    /// (Creating, Created, Starting, Started, Stopping, Stopped, Removing,
    /// Removed, Recreate, Running, Waiting, Healthy, Pulling, Pulled).
    fn status(&mut self, kind: &str, name: &str, status: &str);
    fn warn(&mut self, msg: &str);
}

/// A reporter that keeps quiet (tests, the supervisor).
pub struct Quiet;

impl Reporter for Quiet {
    fn status(&mut self, _: &str, _: &str, _: &str) {}
    fn warn(&mut self, msg: &str) {
        tracing::warn!("{msg}");
    }
}

/// Handle on one `--root` for compose operations.
pub struct Engine {
    pub paths: Paths,
    pub runtime: mc_runtime::Runtime,
    pub net: NetContext,
    pub pull: mc_image::PullOptions,
    /// How to start the supervisor (`None`: never, e.g. inside it).
    pub supervisor: Option<Launcher>,
}

impl Engine {
    pub fn new(
        root: &Path,
        pull: mc_image::PullOptions,
        dns: Option<mc_net::DnsLauncher>,
        supervisor: Option<Launcher>,
    ) -> Engine {
        Engine {
            paths: Paths::new(root),
            runtime: mc_runtime::Runtime::open(root),
            net: NetContext {
                root: root.to_path_buf(),
                dns,
            },
            pull,
            supervisor,
        }
    }
}
