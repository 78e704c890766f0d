//! Hidden entry points: the binary re-executes itself for these.

use clap::Subcommand;

use crate::global::Global;

#[derive(Subcommand)]
pub enum InternalCmd {
    /// Placeholder until the runtime lands
    Noop,
}

pub fn run(_g: &Global, _cmd: InternalCmd) -> anyhow::Result<i32> {
    Ok(0)
}
