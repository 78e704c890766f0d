//! mc-build: the pure part of building images from Dockerfiles.
//!
//! - [`dockerfile`]: parse a Dockerfile into a typed model (stages, instructions, heredocs).
//! - [`expand`]: BuildKit's variable expansion (`$VAR`, `${VAR:-x}`, quotes, escapes).
//! - [`plan`]: start here: meta args + stage graph + target + build order.
//! - [`stages`]: the stage graph, `--target`, which stages a target needs.
//! - [`args`]: build options (`--build-arg`, platforms) and the meta-arg scope for `FROM`.
//! - [`evaluate`]: per-stage ARG/ENV scope, expansion and config evolution, step by step.
//! - [`config`]: image config evolution and history entries.
//! - [`dockerignore`]: `.dockerignore` parsing and matching (Docker's rules).
//! - [`context`]: walking the build context and selecting COPY/ADD sources.
//! - [`chown`]: `COPY --chown` names → uid/gid with the image's passwd/group files.
//! - [`cache_key`]: the build-cache key of each step.
//!
//! - [`exec`]: the executor that stands on these: runs RUN steps through
//!   mc_runtime, writes COPY/ADD layers, caches steps and commits the image
//!   into mc_image's store (docs/build-exec.md).

#![warn(missing_docs)]

pub mod args;
pub mod cache_key;
pub mod chown;
pub mod config;
pub mod context;
pub mod dockerfile;
pub mod dockerignore;
pub mod duration;
pub mod evaluate;
pub mod exec;
pub mod expand;
pub mod plan;
pub mod stages;

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
