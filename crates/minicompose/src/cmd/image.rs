//! `minicompose image …`, `login`, `logout`.

use clap::{Args, Subcommand};

use crate::global::Global;

#[derive(Subcommand)]
pub enum ImageCmd {
    /// Download an image from a registry
    Pull { reference: String },
}

#[derive(Args)]
pub struct LoginArgs {
    /// Registry host (default: Docker Hub)
    pub server: Option<String>,
}

#[derive(Args)]
pub struct LogoutArgs {
    /// Registry host (default: Docker Hub)
    pub server: Option<String>,
}

pub fn run(_g: &Global, _cmd: ImageCmd) -> anyhow::Result<i32> {
    anyhow::bail!("image commands are not implemented yet")
}

pub fn login(_g: &Global, _a: LoginArgs) -> anyhow::Result<i32> {
    anyhow::bail!("login is not implemented yet")
}

pub fn logout(_g: &Global, _a: LogoutArgs) -> anyhow::Result<i32> {
    anyhow::bail!("logout is not implemented yet")
}
