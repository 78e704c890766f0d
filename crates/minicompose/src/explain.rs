//! `--explain`: print every host-visible step with its time.
//!
//! Library crates emit `tracing` events with `target: "explain"` (or a
//! target starting with `explain::`, e.g. `explain::mount`). They cost
//! nothing when no subscriber listens. With `--explain` we print them to
//! stderr as `[+12.345ms] area: message`.

use std::fmt::Write as _;
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::global::Global;

pub fn init(global: &Global) {
    let explain = global.explain || std::env::var_os("MINICOMPOSE_EXPLAIN").is_some();
    let logs = std::env::var("MINICOMPOSE_LOG").ok();
    let registry = tracing_subscriber::registry();
    let explain_layer = explain.then(|| {
        ExplainLayer {
            start: Instant::now(),
        }
        .with_filter(filter_fn(|meta| meta.target().starts_with("explain")))
    });
    let log_layer = logs.map(|filter| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(EnvFilter::new(filter))
    });
    let _ = registry.with(explain_layer).with(log_layer).try_init();
}

struct ExplainLayer {
    start: Instant,
}

impl<S: Subscriber> Layer<S> for ExplainLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let target = event.metadata().target();
        if !target.starts_with("explain") {
            return;
        }
        let area = target
            .strip_prefix("explain::")
            .unwrap_or(if target == "explain" { "step" } else { target });
        let mut line = Fields::default();
        event.record(&mut line);
        let elapsed = self.start.elapsed().as_secs_f64() * 1000.0;
        eprintln!("[+{elapsed:9.3}ms] {area}: {}", line.text);
    }
}

#[derive(Default)]
struct Fields {
    text: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.text, "{value:?}");
        } else {
            let _ = write!(self.text, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.text.push_str(value);
        } else {
            let _ = write!(self.text, " {}={value}", field.name());
        }
    }
}
