//! mc-image: references, the registry client, the content store and layer
//! unpacking. See docs/images.md for the on-disk layout and behaviour.
//!
//! Other crates use [`Store`], [`LocalImage`], [`ensure_blocking`] and
//! [`pull_blocking`]; the CLI also uses the `export`, `import` and `auth` parts.

pub mod auth;
pub mod commit;
pub mod export;
pub mod import;
pub mod manifest;
pub mod progress;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;

use std::path::PathBuf;

pub use reference::Reference;
pub use store::{Store, TagRecord};

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

/// An image present in the store, ready to be used as a rootfs.
#[derive(Debug, Clone)]
pub struct LocalImage {
    /// "sha256:<config digest>"
    pub id: String,
    /// Normalised, e.g. "docker.io/library/busybox:latest".
    pub reference: String,
    /// The platform manifest the layers come from.
    pub manifest_digest: String,
    pub config: oci_spec::image::ImageConfiguration,
    /// Unpacked layer dirs (`<root>/layers/<diff-id hex>/diff`), LOWEST FIRST.
    /// They hold overlayfs whiteouts (char 0/0, `trusted.overlay.opaque=y`):
    /// use them as overlay lowerdirs, never write into them.
    pub layers: Vec<PathBuf>,
}

/// How to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Mirrors for docker.io images (`http://127.0.0.1:5000`), tried in order.
    pub mirrors: Vec<String>,
    /// `os/arch[/variant]`; default: the host's.
    pub platform: Option<String>,
    /// Show progress on stderr (bars on a terminal, plain lines otherwise).
    pub progress: bool,
    /// Credentials for this pull (else ~/.docker/config.json is consulted).
    pub credentials: Option<auth::Credentials>,
}

impl PullOptions {
    /// Options with the `MINICOMPOSE_REGISTRY_MIRROR` environment (comma-separated) as mirrors.
    pub fn from_env() -> PullOptions {
        PullOptions {
            mirrors: registry::mirrors_from_env(),
            ..Default::default()
        }
    }
}

/// The image if the store has it (complete), else pull it.
/// Runs its own tokio runtime and returns only after it is dropped, so the
/// caller has no extra threads afterwards.
pub fn ensure_blocking(
    store: &Store,
    reference: &str,
    opts: &PullOptions,
) -> Result<LocalImage, Error> {
    let r = Reference::parse(reference)?;
    if let Some(img) = store.get(&r.to_string())? {
        return Ok(img);
    }
    pull_blocking(store, reference, opts)
}

/// Pull an image (always asks the registry; layers already present are reused).
pub fn pull_blocking(
    store: &Store,
    reference: &str,
    opts: &PullOptions,
) -> Result<LocalImage, Error> {
    let r = Reference::parse(reference)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("mc-pull")
        .build()
        .map_err(|e| Error::Other(anyhow::anyhow!("start the pull runtime: {e}")))?;
    let result = rt.block_on(pull::pull(store, &r, opts));
    drop(rt);
    result
}

/// An error and its causes on one line: "what: why: why".
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || parts.last().is_some_and(|p| p.contains(text)) {
            continue;
        }
        parts.push(text.replace('\n', " "));
    }
    parts.join(": ")
}
