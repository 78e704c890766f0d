//! Hidden entry points: the binary re-executes itself for these, from a
//! read-only bind mount (see mc_runtime::launch). They run before anything
//! else in `main` touches the process and never return.

use clap::Subcommand;

use crate::global::Global;

#[derive(Subcommand)]
pub enum InternalCmd {
    /// A container's init: builds the container, then execs its command
    Init {
        config_fd: i32,
        status_fd: i32,
        go_fd: i32,
    },
    /// `container exec`: joins a container and runs a command in it
    Exec { config_fd: i32, status_fd: i32 },
    /// The embedded DNS server of one --root (owned by the networking work)
    Dns(crate::cmd::internal_dns::DnsArgs),
    /// The supervisor of one compose project (owned by the compose lifecycle work)
    Supervisor { project: String },
}

pub fn run(g: &Global, cmd: InternalCmd) -> anyhow::Result<i32> {
    match cmd {
        InternalCmd::Init {
            config_fd,
            status_fd,
            go_fd,
        } => mc_runtime::init::main(config_fd, status_fd, go_fd),
        InternalCmd::Exec {
            config_fd,
            status_fd,
        } => mc_runtime::exec::main(config_fd, status_fd),
        InternalCmd::Dns(a) => crate::cmd::internal_dns::run(g, a),
        InternalCmd::Supervisor { project } => crate::cmd::internal_supervisor::run(g, &project),
    }
}
