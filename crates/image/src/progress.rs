//! Pull progress on stderr: a bar per layer on a terminal (indicatif),
//! docker-style plain lines otherwise, nothing when disabled.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Progress {
    mode: Mode,
}

#[derive(Clone)]
enum Mode {
    Off,
    Plain,
    Bars(MultiProgress),
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        let mode = if !enabled {
            Mode::Off
        } else if std::io::stderr().is_terminal() {
            Mode::Bars(MultiProgress::with_draw_target(
                ProgressDrawTarget::stderr_with_hz(10),
            ))
        } else {
            Mode::Plain
        };
        Progress { mode }
    }

    /// A line of text above the bars (or on its own).
    pub fn line(&self, text: &str) {
        match &self.mode {
            Mode::Off => {}
            Mode::Plain => eprintln!("{text}"),
            Mode::Bars(m) => {
                let _ = m.println(text);
            }
        }
    }

    /// Progress for one layer, shown by the first 12 hex digits of its digest.
    pub fn layer(&self, digest: &str, size: u64) -> LayerProgress {
        let id: String = digest
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect();
        let bar = match &self.mode {
            Mode::Bars(m) => {
                let bar = m.add(ProgressBar::new(size));
                let style = ProgressStyle::with_template(
                    "{prefix}: {msg:<18} [{bar:30}] {bytes:>10}/{total_bytes:<10}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_prefix(id.clone());
                bar.set_message("Waiting");
                bar.enable_steady_tick(Duration::from_millis(200));
                Some(bar)
            }
            _ => None,
        };
        LayerProgress {
            id,
            bar,
            plain: matches!(self.mode, Mode::Plain),
        }
    }
}

pub struct LayerProgress {
    id: String,
    bar: Option<ProgressBar>,
    plain: bool,
}

impl LayerProgress {
    pub fn status(&self, text: &str) {
        if let Some(b) = &self.bar {
            b.set_message(text.to_string());
        } else if self.plain {
            eprintln!("{}: {text}", self.id);
        }
    }

    pub fn advance(&self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }

    /// Restart counting (a retry that downloads from the start).
    pub fn reset(&self) {
        if let Some(b) = &self.bar {
            b.set_position(0);
        }
    }

    pub fn finish(&self, text: &str) {
        if let Some(b) = &self.bar {
            b.disable_steady_tick();
            if let Some(len) = b.length() {
                b.set_position(len);
            }
            b.finish_with_message(text.to_string());
        } else if self.plain {
            eprintln!("{}: {text}", self.id);
        }
    }

    pub fn fail(&self, text: &str) {
        if let Some(b) = &self.bar {
            b.disable_steady_tick();
            b.abandon_with_message(text.to_string());
        }
    }
}
