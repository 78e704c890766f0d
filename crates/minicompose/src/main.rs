//! minicompose: a daemonless container runtime with built-in Compose.
//!
//! This binary only parses the command line, sets up output, and hands each
//! command to a module under `cmd/`. The work lives in the library crates.

mod cmd;
mod exit;
mod explain;
mod global;

use clap::{Parser, Subcommand};

use crate::exit::Failure;
use crate::global::Global;

#[derive(Parser)]
#[command(
    name = "minicompose",
    version,
    about = "Docker Compose without a daemon: images, containers, networks and compose stacks",
    propagate_version = true,
    disable_help_subcommand = true
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage images (pull, ls, inspect, rm, prune, export, import)
    #[command(subcommand)]
    Image(cmd::image::ImageCmd),
    /// Log in to a registry
    Login(cmd::image::LoginArgs),
    /// Log out from a registry
    Logout(cmd::image::LogoutArgs),
    /// Manage single containers (run, ls, exec, logs, stop, kill, rm, top, inspect)
    #[command(subcommand)]
    Container(cmd::container::ContainerCmd),
    /// Manage networks (create, ls, inspect, rm)
    #[command(subcommand)]
    Network(cmd::network::NetworkCmd),
    /// Manage volumes (create, ls, inspect, rm, prune)
    #[command(subcommand)]
    Volume(cmd::volume::VolumeCmd),
    /// Parse, resolve and render the compose file in canonical format
    Config(cmd::config::ConfigArgs),
    /// Create and start containers
    Up(cmd::compose::UpArgs),
    /// Stop and remove containers, networks
    Down(cmd::compose::DownArgs),
    /// List containers
    Ps(cmd::compose::PsArgs),
    /// View output from containers
    Logs(cmd::compose::LogsArgs),
    /// Display the running processes
    Top(cmd::compose::ServicesArgs),
    /// Execute a command in a running container
    Exec(cmd::compose::ExecArgs),
    /// Run a one-off command on a service
    Run(cmd::compose::RunArgs),
    /// Stop services
    Stop(cmd::compose::TimeoutArgs),
    /// Start services
    Start(cmd::compose::ServicesArgs),
    /// Restart service containers
    Restart(cmd::compose::TimeoutArgs),
    /// Force stop service containers
    Kill(cmd::compose::KillArgs),
    /// Removes stopped service containers
    Rm(cmd::compose::RmArgs),
    /// Build or rebuild services
    Build(cmd::build::ComposeBuildArgs),
    /// Push service images
    Push(cmd::build::ComposePushArgs),
    /// Pull service images
    Pull(cmd::compose::PullArgs),
    /// Print the public port for a port binding
    Port(cmd::compose::PortArgs),
    /// List images used by the created containers
    Images(cmd::compose::ImagesArgs),
    /// List running compose projects
    Ls(cmd::compose::LsArgs),
    /// Show the minicompose version information
    Version(cmd::version::VersionArgs),
    /// Internal entry points (container init, monitors). Not for users.
    #[command(hide = true, subcommand, name = "__internal")]
    Internal(cmd::internal::InternalCmd),
}

fn main() {
    // Internal entry points run before anything else touches the process
    // (no threads, no terminal setup): they may be a container's init.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                _ => 1,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    explain::init(&cli.global);
    quiet_panics();
    let result = match cli.command {
        Command::Image(c) => cmd::image::run(&cli.global, c),
        Command::Login(a) => cmd::image::login(&cli.global, a),
        Command::Logout(a) => cmd::image::logout(&cli.global, a),
        Command::Container(c) => cmd::container::run(&cli.global, c),
        Command::Network(c) => cmd::network::run(&cli.global, c),
        Command::Volume(c) => cmd::volume::run(&cli.global, c),
        Command::Config(a) => cmd::config::run(&cli.global, a),
        Command::Up(a) => cmd::compose::up(&cli.global, a),
        Command::Down(a) => cmd::compose::down(&cli.global, a),
        Command::Ps(a) => cmd::compose::ps(&cli.global, a),
        Command::Logs(a) => cmd::compose::logs(&cli.global, a),
        Command::Top(a) => cmd::compose::top(&cli.global, a),
        Command::Exec(a) => cmd::compose::exec(&cli.global, a),
        Command::Run(a) => cmd::compose::run(&cli.global, a),
        Command::Stop(a) => cmd::compose::stop(&cli.global, a),
        Command::Start(a) => cmd::compose::start(&cli.global, a),
        Command::Restart(a) => cmd::compose::restart(&cli.global, a),
        Command::Kill(a) => cmd::compose::kill(&cli.global, a),
        Command::Rm(a) => cmd::compose::rm(&cli.global, a),
        Command::Build(a) => cmd::build::compose_build(&cli.global, a),
        Command::Push(a) => cmd::build::compose_push(&cli.global, a),
        Command::Pull(a) => cmd::compose::pull(&cli.global, a),
        Command::Port(a) => cmd::compose::port(&cli.global, a),
        Command::Images(a) => cmd::compose::images(&cli.global, a),
        Command::Ls(a) => cmd::compose::ls(&cli.global, a),
        Command::Version(a) => cmd::version::run(&cli.global, a),
        Command::Internal(c) => cmd::internal::run(&cli.global, c),
    };
    let code = match result {
        Ok(code) => code,
        Err(err) => {
            let failure = Failure::classify(&err);
            eprintln!("minicompose: {}", exit::one_line(&err));
            failure.code()
        }
    };
    std::process::exit(code);
}

/// A closed output pipe (`image inspect | head`) ends the command quietly
/// with 141, as a shell tool killed by SIGPIPE would; any other panic is one
/// line and exit 125, never a backtrace. SIGPIPE itself stays ignored: our
/// own pipes to containers and the supervisor must give EPIPE, not death.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("minicompose: internal error: {msg}{at} (please report this)");
        std::process::exit(125);
    }));
}
