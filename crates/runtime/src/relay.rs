//! The detached monitor's `--explain` events, relayed to the CLI.
//!
//! The monitor is forked from the CLI and would inherit its stderr; if that
//! is a pipe whose reader went away (`up -d 2>&1 | head`), one explain line
//! kills the monitor and orphans its container. So the monitor points its
//! standard fds at /dev/null at once and, while the CLI still listens,
//! sends each explain event up the report pipe as an `E<area>\t<text>`
//! line (see [`crate::launch::read_status`]), where the CLI prints it. A
//! failed write (the CLI is gone) is ignored.

use std::fmt::Write as _;
use std::os::fd::RawFd;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// A subscriber that writes explain events to a pipe.
pub(crate) struct Relay {
    fd: RawFd,
    on: bool,
}

impl Relay {
    /// Relay to `fd` when `on` (i.e. `--explain` was given).
    pub(crate) fn new(fd: RawFd, on: bool) -> Relay {
        Relay { fd, on }
    }
}

#[derive(Default)]
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

/// The status-pipe line for an event at `target`.
fn line(target: &str, text: &str) -> String {
    let area = target.strip_prefix("explain::").unwrap_or("runtime");
    let text: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .collect();
    format!("E{area}\t{text}\n")
}

impl Subscriber for Relay {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        self.on && meta.target().starts_with("explain")
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut text = Line::default();
        event.record(&mut text);
        let l = line(event.metadata().target(), &text.0);
        // SAFETY: a buffer we own to the report pipe, open while we are the
        // default subscriber. EPIPE (the CLI is gone) is ignored: SIGPIPE is.
        unsafe { libc::write(self.fd, l.as_ptr().cast(), l.len()) };
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_the_area_and_stay_one_line() {
        assert_eq!(line("explain::cgroup", "mkdir /x"), "Ecgroup\tmkdir /x\n");
        assert_eq!(line("explain", "a\tb\nc"), "Eruntime\ta b c\n");
    }

    #[test]
    fn events_reach_the_pipe() {
        let (r, w) = crate::launch::pipe().unwrap();
        {
            use std::os::fd::AsRawFd;
            let _g = tracing::subscriber::set_default(Relay::new(w.as_raw_fd(), true));
            tracing::info!(target: "explain::netlink", "veth up");
            tracing::info!(target: "other", "not relayed");
        }
        drop(w);
        let mut got = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut got).unwrap();
        assert_eq!(got, "Enetlink\tveth up\n");
    }
}
