//! Network flags of `container run` and the glue that attaches a container
//! to a network. Owned by the networking work; `container run` flattens
//! [`NetArgs`] into its arguments and calls [`setup`] from the runtime's
//! network hook (after the container's namespaces exist, before its process
//! execs) and [`teardown`] when the container is removed.

use clap::Args;

#[derive(Args, Debug, Clone, Default)]
pub struct NetArgs {
    /// Connect to a network: `none`, `host`, or a network's name (default: none until bridges exist)
    #[arg(long = "network", alias = "net", default_value = "none")]
    pub network: String,
}
