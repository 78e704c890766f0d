//! mc-build: see DESIGN.md for what this crate owns.

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
