//! `--explain` events. In the CLI process they are `tracing` events at
//! `explain::<area>`; inside the container's init (another process whose
//! stderr belongs to the container) they travel up the status pipe as
//! `E<area>\t<text>` lines and the parent re-emits them.

use std::sync::atomic::{AtomicI32, Ordering};

static PIPE_FD: AtomicI32 = AtomicI32::new(-1);

/// Drop this process's events (the init when --explain is off).
pub const SILENT: i32 = -2;

/// Send this process's events (or [`SILENT`]) to `fd` (the init's status pipe).
pub fn route_to_fd(fd: i32) {
    PIPE_FD.store(fd, Ordering::Relaxed);
}

/// Record one host-visible step.
pub fn step(area: &str, text: std::fmt::Arguments<'_>) {
    let fd = PIPE_FD.load(Ordering::Relaxed);
    if fd == SILENT {
        return;
    }
    if fd >= 0 {
        // The parent reads these lines in batches: carry our own clock.
        let line = format!(
            "E{area}\t{}\t{}\n",
            monotonic_ns(),
            text.to_string().replace('\n', " ")
        );
        // SAFETY: writing a buffer we own to an fd we were given.
        unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
    } else {
        emit(area, &text.to_string());
    }
}

static CLONE_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// CLOCK_MONOTONIC in nanoseconds (the same clock in every namespace).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into ts.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Remember when we cloned, to date the init's events relative to it.
pub fn mark_clone() {
    CLONE_NS.store(monotonic_ns(), Ordering::Relaxed);
}

/// Re-emit an event the init sent (`ns` is its monotonic time).
pub fn emit_from_init(area: &str, ns: u64, text: &str) {
    let clone = CLONE_NS.load(Ordering::Relaxed);
    if clone > 0 && ns >= clone {
        let ms = (ns - clone) as f64 / 1e6;
        emit(
            area,
            &format!("{text}  [in the container at clone+{ms:.3}ms]"),
        );
    } else {
        emit(area, text);
    }
}

/// Emit an event at `explain::<area>` (targets must be static in tracing).
pub fn emit(area: &str, text: &str) {
    match area {
        "clone" => tracing::info!(target: "explain::clone", "{text}"),
        "mount" => tracing::info!(target: "explain::mount", "{text}"),
        "rootfs" => tracing::info!(target: "explain::rootfs", "{text}"),
        "cgroup" => tracing::info!(target: "explain::cgroup", "{text}"),
        "caps" => tracing::info!(target: "explain::caps", "{text}"),
        "seccomp" => tracing::info!(target: "explain::seccomp", "{text}"),
        "exec" => tracing::info!(target: "explain::exec", "{text}"),
        "user" => tracing::info!(target: "explain::user", "{text}"),
        "net" => tracing::info!(target: "explain::net", "{text}"),
        "rlimit" => tracing::info!(target: "explain::rlimit", "{text}"),
        "sysctl" => tracing::info!(target: "explain::sysctl", "{text}"),
        // Areas of other crates, relayed from a detached monitor.
        "netlink" => tracing::info!(target: "explain::netlink", "{text}"),
        "dns" => tracing::info!(target: "explain::dns", "{text}"),
        "nft" => tracing::info!(target: "explain::nft", "{text}"),
        "ipam" => tracing::info!(target: "explain::ipam", "{text}"),
        "volume" => tracing::info!(target: "explain::volume", "{text}"),
        "engine" => tracing::info!(target: "explain::engine", "{text}"),
        "supervisor" => tracing::info!(target: "explain::supervisor", "{text}"),
        "runtime" => tracing::info!(target: "explain::runtime", "{text}"),
        _ => tracing::info!(target: "explain::runtime", "{area}: {text}"),
    }
}

/// `explain!("mount", "proc on {}", path)`.
#[macro_export]
macro_rules! explain {
    ($area:expr, $($arg:tt)*) => {
        $crate::explain::step($area, format_args!($($arg)*))
    };
}
