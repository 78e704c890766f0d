//! mc-net: bridge networks for containers, in netavark's shape.
//!
//! - [`netlink`]: bridge, veth (peer created inside the container's netns),
//!   addresses, routes.
//! - [`ipam`]: subnet choice avoiding host routes/addresses; addresses.
//! - [`firewall`]: nftables table `inet minicompose` (DNAT, masquerade,
//!   hairpin, isolation).
//! - [`dns`]: the embedded DNS server and its control socket.
//! - [`state`]: networks and endpoints on disk.
//! - [`Networks`]: the operations commands use (create, remove, attach,
//!   detach); each runs under the root's file lock and leaves the host
//!   matching the state on disk.
//!
//! The crate only needs a network namespace (a path, or a pid's
//! `/proc/<pid>/ns/net`); it knows nothing about containers or images.

pub mod dns;
pub mod files;
pub mod firewall;
pub mod ipam;
pub mod lock;
mod manager;
pub mod netlink;
pub mod netns;
pub mod ports;
pub mod proxy;
pub mod state;
pub mod sysctl;

pub use dns::DnsLauncher;
pub use manager::{host_veth_name, AttachRequest, CreateRequest, Networks};
pub use ports::{PortMapping, Proto};
pub use state::{Endpoint, NetnsRef, Network};

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
