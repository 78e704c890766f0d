//! One module per command group. Each exposes clap argument types and a
//! `run` function returning the process exit code.

pub mod config;
pub mod container;
pub mod container_net;
pub mod image;
pub mod internal;
pub mod internal_dns;
pub mod network;
pub mod version;
