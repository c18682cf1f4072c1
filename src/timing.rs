//! Deadlines. Every deadline is for the negative case only: a correct server answers in
//! milliseconds and never makes a check wait one out. `--time-scale` multiplies them all.
//!
//! Each check also has its own *bound*: the sum of the deadlines it can wait out (each check
//! module's `bound`), plus teardown. While a check runs, its bound is the calling thread's
//! [check deadline](set_check_deadline): the client engine, [`wait_until`] and the sequential
//! client loops stop there, so no check can take another's time and the run ends within the
//! sum of its checks' bounds.
//!
//! [`wait_until`]: crate::checks::wait_until

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::time::{Duration, Instant};

/// The rubric's `timing:` section, in seconds, before scaling.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TimingSpec {
    /// How long the server may take to start listening.
    pub ready_s: f64,
    /// How long a client that should be served may wait for its echo.
    pub serve_s: f64,
    /// How long a group of clients may go without any progress before it counts as stuck.
    pub idle_s: f64,
    /// How long the server gets to settle (reap children, close descriptors) after clients leave.
    pub grace_s: f64,
    /// No longer used, accepted so that older rubrics still load: the run is no longer cut
    /// by one budget. Each check has its own bound, the sum of its deadlines, and every check
    /// runs (the report shows each check's `bound_s` and the run's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_s: Option<f64>,
}

impl Default for TimingSpec {
    fn default() -> Self {
        TimingSpec {
            ready_s: 5.0,
            serve_s: 2.0,
            idle_s: 3.0,
            grace_s: 1.0,
            budget_s: None,
        }
    }
}

impl TimingSpec {
    pub(crate) fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("ready_s", self.ready_s),
            ("serve_s", self.serve_s),
            ("idle_s", self.idle_s),
            ("grace_s", self.grace_s),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 120.0) {
                return Err(format!(
                    "timing.{name} is {v}: it must be a number of seconds above 0 and at most 120"
                ));
            }
        }
        if let Some(b) = self.budget_s {
            if !(b.is_finite() && (5.0..=3600.0).contains(&b)) {
                return Err(format!(
                    "timing.budget_s is {b}: it must be between 5 and 3600 seconds (it is no \
                     longer used: each check has its own bound)"
                ));
            }
        }
        Ok(())
    }
}

/// Deadlines after `--time-scale`.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ready: Duration,
    pub serve: Duration,
    pub idle: Duration,
    pub grace: Duration,
    pub scale: f64,
}

impl Timing {
    pub fn new(spec: &TimingSpec, scale: f64) -> Timing {
        let d = |s: f64| Duration::from_secs_f64(s * scale);
        Timing {
            ready: d(spec.ready_s),
            serve: d(spec.serve_s),
            idle: d(spec.idle_s),
            grace: d(spec.grace_s),
            scale,
        }
    }

    /// Scale any other duration a check uses (stream lengths, churn budgets).
    pub fn scaled(&self, secs: f64) -> Duration {
        Duration::from_secs_f64(secs * self.scale)
    }
}

/// Time a check's bound allows for tearing its instance down: the SIGTERM grace and the
/// SIGSTOP/SIGKILL sweep that follows (milliseconds for any server seen; a tree that survives
/// 10 s of SIGKILL is reported as the grader's error, see `supervise`). Not scaled: it is the
/// grader's own work.
pub const TEARDOWN: Duration = Duration::from_millis(1500);

thread_local! {
    static CHECK_DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Set the calling thread's check deadline until the guard is dropped.
pub fn set_check_deadline(at: Instant) -> DeadlineGuard {
    let before = CHECK_DEADLINE.with(|c| c.replace(Some(at)));
    DeadlineGuard { before }
}

/// Restores the previous check deadline when dropped.
pub struct DeadlineGuard {
    before: Option<Instant>,
}

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        CHECK_DEADLINE.with(|c| c.set(self.before));
    }
}

/// Time left before the running check's deadline (`None`: no check deadline is set).
pub fn check_time_left() -> Option<Duration> {
    CHECK_DEADLINE
        .with(|c| c.get())
        .map(|at| at.saturating_duration_since(Instant::now()))
}

/// `d`, cut to what is left of the running check's bound.
pub fn within_check(d: Duration) -> Duration {
    check_time_left().map_or(d, |left| d.min(left))
}

/// Whether the running check has reached its deadline.
pub fn check_bound_reached() -> bool {
    check_time_left().is_some_and(|l| l.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_deadline_cuts_durations_and_is_restored() {
        assert_eq!(within_check(Duration::from_secs(5)), Duration::from_secs(5));
        {
            let _g = set_check_deadline(Instant::now() + Duration::from_millis(50));
            assert!(within_check(Duration::from_secs(5)) <= Duration::from_millis(50));
            assert!(!check_bound_reached());
            let _inner = set_check_deadline(Instant::now());
            assert!(check_bound_reached());
        }
        assert!(check_time_left().is_none());
    }
}
