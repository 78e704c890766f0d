//! `minicompose __internal dns`: the embedded DNS server of one `--root`
//! (started by the first container attach, exits when no container is
//! attached). See docs/network.md.

use clap::Args;

use crate::global::Global;

#[derive(Args, Debug)]
pub struct DnsArgs {}

pub fn run(g: &Global, _a: DnsArgs) -> anyhow::Result<i32> {
    mc_net::dns::serve(&g.root)?;
    Ok(0)
}
