//! `minicompose config`: the normalized project, like `docker compose config`.

use clap::Args;

use crate::global::Global;

#[derive(Args)]
pub struct ConfigArgs {
    /// Only validate the configuration, don't print anything
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(_g: &Global, _a: ConfigArgs) -> anyhow::Result<i32> {
    anyhow::bail!("config is not implemented yet")
}
