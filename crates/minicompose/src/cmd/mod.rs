//! One module per command group. Each exposes clap argument types and a
//! `run` function returning the process exit code.

pub mod build;
pub mod compose;
pub mod compose_logs;
pub mod compose_out;
pub mod compose_rmi;
pub mod config;
pub mod container;
pub mod container_net;
pub mod image;
pub mod internal;
pub mod internal_dns;
pub mod internal_supervisor;
pub mod network;
pub mod version;
pub mod volume;
