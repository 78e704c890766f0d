//! The embedded DNS server (aardvark-dns's model): one process per
//! `--root` (`minicompose __internal dns`), listening on UDP and TCP port 53
//! of each network's gateway address, answering container names scoped by
//! the asker's source address and forwarding the rest upstream. It reads
//! the endpoint files, reloads when told over its control socket (and every
//! 2 s, which also drops containers whose namespace died), and exits when
//! no endpoint is left.

pub mod control;
mod forward;
mod message;
pub mod records;
mod server;

pub use control::{notify, prestart, DnsLauncher};
pub use server::serve;
