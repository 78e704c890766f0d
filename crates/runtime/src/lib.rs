//! mc-runtime: one container from a spec: clone, rootfs, mounts, cgroup,
//! capabilities, seccomp, exec, stop; the monitor that reaps it and keeps
//! its log; `exec` into it. See docs/runtime.md.
//!
//! Entry points: [`Runtime`] (create / run / stop / kill / remove / exec /
//! top), [`spec::ContainerSpec`] (what to run), [`init::main`] and
//! [`exec::main`] (the hidden `__internal init|exec` commands), and
//! [`launch::NetworkHook`] (the pluggable network step).

#[macro_use]
pub mod explain;

pub mod caps;
pub mod cgroups;
pub mod console;
pub mod exec;
mod forward;
pub mod init;
pub mod launch;
pub mod lifecycle;
pub mod limits;
pub mod logs;
pub mod monitor;
mod relay;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod top;
pub mod user;

pub use exec::ExecOptions;
pub use launch::{NetworkHook, NoNetwork};
pub use lifecycle::{require_root, Attach, EtcFiles, Runtime};
pub use limits::{parse_sysctl, parse_ulimit, validate_sysctl, Rlimit};
pub use spec::{ContainerSpec, MountSpec, Resources};
pub use state::{Record, State, Status};

/// Errors from this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input from the user: exit code 1.
    #[error("{0}")]
    Invalid(String),
    /// The command could not be started (Docker's 126: not executable,
    /// 127: not found); the CLI exits with `code`.
    #[error("{message}")]
    Start { code: i32, message: String },
    /// Anything else: exit code 125.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Error {
    /// Whether this error was caused by the user's input (exit code 1).
    pub fn is_user_error(&self) -> bool {
        matches!(self, Error::Invalid(_))
    }

    /// The exit code a command should end with for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(_) => 1,
            Error::Start { code, .. } => *code,
            Error::Other(_) => 125,
        }
    }
}
