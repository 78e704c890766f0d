//! Health checks, Docker's rules: the first probe runs `interval` after the
//! start (`start_interval` during `start_period`); a probe that fails or
//! outlives `timeout` counts as a failure, except during the start period;
//! `retries` consecutive failures make the container unhealthy, one success
//! makes it healthy.

use std::time::Duration;

use crate::state::{Health, HealthConfig};

/// Record a probe result; returns the new state.
pub fn record(
    cfg: &HealthConfig,
    mut h: Health,
    ok: bool,
    in_start_period: bool,
    output: String,
    exit: i32,
) -> Health {
    h.last_output = output;
    h.last_exit = exit;
    if ok {
        h.status = "healthy".into();
        h.failing_streak = 0;
    } else if !in_start_period || h.status != "starting" {
        h.failing_streak += 1;
        if h.failing_streak >= cfg.retries {
            h.status = "unhealthy".into();
        }
    }
    h
}

/// Delay until the next probe.
pub fn next_delay(cfg: &HealthConfig, in_start_period: bool, status: &str) -> Duration {
    if in_start_period && status == "starting" {
        cfg.start_interval
    } else {
        cfg.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> HealthConfig {
        HealthConfig {
            argv: vec!["true".into()],
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            retries: 2,
            start_period: Duration::from_secs(10),
            start_interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn transitions() {
        let c = cfg();
        let h = Health {
            status: "starting".into(),
            ..Default::default()
        };
        let h = record(&c, h, false, true, String::new(), 1);
        assert_eq!(
            (h.status.as_str(), h.failing_streak),
            ("starting", 0),
            "start period forgives"
        );
        let h = record(&c, h, false, false, String::new(), 1);
        assert_eq!((h.status.as_str(), h.failing_streak), ("starting", 1));
        let h = record(&c, h, false, false, String::new(), 1);
        assert_eq!(h.status, "unhealthy");
        let h = record(&c, h, true, false, "ok".into(), 0);
        assert_eq!((h.status.as_str(), h.failing_streak), ("healthy", 0));
        assert_eq!(next_delay(&c, true, "starting"), Duration::from_secs(1));
        assert_eq!(next_delay(&c, true, "healthy"), Duration::from_secs(30));
    }
}
