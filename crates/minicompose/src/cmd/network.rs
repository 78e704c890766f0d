//! `minicompose network …`.

use clap::Subcommand;

use crate::global::Global;

#[derive(Subcommand)]
pub enum NetworkCmd {
    /// List networks
    Ls,
}

pub fn run(_g: &Global, _cmd: NetworkCmd) -> anyhow::Result<i32> {
    anyhow::bail!("network commands are not implemented yet")
}
