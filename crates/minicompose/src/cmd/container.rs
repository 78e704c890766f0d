//! `minicompose container …`.

use clap::Subcommand;

use crate::global::Global;

#[derive(Subcommand)]
pub enum ContainerCmd {
    /// List containers
    Ls,
}

pub fn run(_g: &Global, _cmd: ContainerCmd) -> anyhow::Result<i32> {
    anyhow::bail!("container commands are not implemented yet")
}
