//! Deadlines. Every deadline is for the negative case only: a correct server answers in
//! milliseconds and never makes a check wait one out. `--time-scale` multiplies them all.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

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
    /// Time for the whole run: checks not started by then are failed as "not run" (a server
    /// too slow or too stuck to grade must not hold the grader for minutes).
    pub budget_s: f64,
}

impl Default for TimingSpec {
    fn default() -> Self {
        TimingSpec {
            ready_s: 5.0,
            serve_s: 2.0,
            idle_s: 3.0,
            grace_s: 1.0,
            budget_s: 35.0,
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
        if !(self.budget_s.is_finite() && (5.0..=3600.0).contains(&self.budget_s)) {
            return Err(format!(
                "timing.budget_s is {}: it must be between 5 and 3600 seconds",
                self.budget_s
            ));
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
    pub budget: Duration,
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
            budget: d(spec.budget_s),
            scale,
        }
    }

    /// Scale any other duration a check uses (stream lengths, churn budgets).
    pub fn scaled(&self, secs: f64) -> Duration {
        Duration::from_secs_f64(secs * self.scale)
    }
}
