//! Restart policies and Docker's backoff.
//!
//! Docker (moby restartmanager): the delay starts at 100 ms and doubles after
//! each restart, capped at one minute; it resets when the container ran for
//! at least 10 s. A container stopped by the user is never restarted (until
//! the next start), and `unless-stopped` differs from `always` only there.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    No,
    Always,
    UnlessStopped,
    /// At most this many restarts (None: unlimited).
    OnFailure(Option<u64>),
}

impl Policy {
    /// `restart:` as compose spells it.
    pub fn parse(s: &str) -> Result<Policy, String> {
        let t = s.trim();
        match t {
            "" | "no" => Ok(Policy::No),
            "always" => Ok(Policy::Always),
            "unless-stopped" => Ok(Policy::UnlessStopped),
            "on-failure" => Ok(Policy::OnFailure(None)),
            _ => match t.strip_prefix("on-failure:") {
                Some(n) => n
                    .parse()
                    .map(|n| Policy::OnFailure(Some(n)))
                    .map_err(|_| format!("invalid restart policy {s:?}: the count after on-failure: must be a number")),
                None => Err(format!(
                    "invalid restart policy {s:?}: use no, always, on-failure[:N] or unless-stopped"
                )),
            },
        }
    }

    /// `deploy.restart_policy` (condition none|on-failure|any, max_attempts).
    pub fn from_deploy(condition: Option<&str>, max_attempts: Option<u64>) -> Policy {
        match condition.unwrap_or("any") {
            "none" => Policy::No,
            "on-failure" => Policy::OnFailure(max_attempts),
            _ => Policy::Always,
        }
    }

    /// Whether to restart after an exit with `code`, having restarted `count` times.
    pub fn should_restart(&self, code: i32, count: u64, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            Policy::No => false,
            Policy::Always | Policy::UnlessStopped => true,
            Policy::OnFailure(max) => code != 0 && !matches!(max, Some(m) if count >= *m),
        }
    }
}

/// Docker's backoff state for one container.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Backoff {
    /// The delay before the next restart; zero before the first.
    pub delay_ms: u64,
    pub count: u64,
}

const INITIAL: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(60);
const RESET_AFTER: Duration = Duration::from_secs(10);

impl Backoff {
    /// The delay to wait after a container that ran for `ran` exited.
    pub fn next_delay(&mut self, ran: Duration) -> Duration {
        if ran >= RESET_AFTER || self.delay_ms == 0 {
            self.delay_ms = INITIAL.as_millis() as u64;
        } else {
            self.delay_ms = (self.delay_ms * 2).min(MAX.as_millis() as u64);
        }
        Duration::from_millis(self.delay_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        assert_eq!(
            Policy::parse("on-failure:3").unwrap(),
            Policy::OnFailure(Some(3))
        );
        assert!(Policy::parse("sometimes").is_err());
        assert!(Policy::parse("on-failure:x").is_err());
        let p = Policy::OnFailure(Some(2));
        assert!(p.should_restart(1, 0, false));
        assert!(p.should_restart(1, 1, false));
        assert!(!p.should_restart(1, 2, false));
        assert!(!p.should_restart(0, 0, false));
        assert!(Policy::Always.should_restart(0, 100, false));
        assert!(!Policy::Always.should_restart(1, 0, true));
        assert!(!Policy::No.should_restart(1, 0, false));
        assert_eq!(Policy::from_deploy(Some("none"), None), Policy::No);
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::default();
        let short = Duration::from_secs(1);
        assert_eq!(b.next_delay(short), Duration::from_millis(100));
        assert_eq!(b.next_delay(short), Duration::from_millis(200));
        assert_eq!(b.next_delay(short), Duration::from_millis(400));
        for _ in 0..20 {
            b.next_delay(short);
        }
        assert_eq!(b.next_delay(short), Duration::from_secs(60));
        assert_eq!(
            b.next_delay(Duration::from_secs(11)),
            Duration::from_millis(100)
        );
    }
}
