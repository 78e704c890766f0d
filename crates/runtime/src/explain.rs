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
        let line = format!("E{area}\t{}\n", text.to_string().replace('\n', " "));
        // SAFETY: writing a buffer we own to an fd we were given.
        unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
    } else {
        emit(area, &text.to_string());
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
        _ => tracing::info!(target: "explain::runtime", "{text}"),
    }
}

/// `explain!("mount", "proc on {}", path)`.
#[macro_export]
macro_rules! explain {
    ($area:expr, $($arg:tt)*) => {
        $crate::explain::step($area, format_args!($($arg)*))
    };
}
