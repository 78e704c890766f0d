//! Exit codes and one-line error messages.
//!
//! Docker's contract: a container's own code where a command runs one,
//! 125 for our own failure, 1 for bad input. Library crates mark bad input
//! by returning (or wrapping) a [`UserError`]; everything else is ours.

use std::fmt;

/// Bad input from the user (a flag, a file, a reference): exit code 1.
#[derive(Debug)]
pub struct UserError(pub String);

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}

/// Shorthand for returning bad input.
#[allow(dead_code)]
pub fn user_error(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UserError(msg.into()))
}

pub enum Failure {
    BadInput,
    Ours,
}

impl Failure {
    pub fn classify(err: &anyhow::Error) -> Failure {
        let bad_input = err.chain().any(|cause| {
            cause.is::<UserError>() || cause.is::<clap::Error>() || is_marked_user_error(cause)
        });
        if bad_input {
            Failure::BadInput
        } else {
            Failure::Ours
        }
    }

    pub fn code(&self) -> i32 {
        match self {
            Failure::BadInput => 1,
            Failure::Ours => 125,
        }
    }
}

/// Library crates expose `is_user_error()` on their error types; ask them.
fn is_marked_user_error(cause: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(e) = cause.downcast_ref::<mc_compose::Error>() {
        return e.is_user_error();
    }
    if let Some(e) = cause.downcast_ref::<mc_image::Error>() {
        return e.is_user_error();
    }
    if let Some(e) = cause.downcast_ref::<mc_runtime::Error>() {
        return e.is_user_error();
    }
    if let Some(e) = cause.downcast_ref::<mc_net::Error>() {
        return e.is_user_error();
    }
    if let Some(e) = cause.downcast_ref::<mc_engine::Error>() {
        return e.is_user_error();
    }
    false
}

/// The error and its causes on one line: "what: why: why" (the library
/// crates word their nested errors the same way, so they share one helper).
pub fn one_line(err: &anyhow::Error) -> String {
    mc_image::one_line(err)
}
