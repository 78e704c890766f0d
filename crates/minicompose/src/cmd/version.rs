use clap::Args;

use crate::global::Global;

#[derive(Args)]
pub struct VersionArgs {
    /// Print only the version number
    #[arg(long)]
    short: bool,
}

pub fn run(_g: &Global, args: VersionArgs) -> anyhow::Result<i32> {
    let version = env!("CARGO_PKG_VERSION");
    if args.short {
        println!("{version}");
    } else {
        println!("minicompose version v{version}");
    }
    Ok(0)
}
