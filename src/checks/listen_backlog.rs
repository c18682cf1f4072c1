//! `listen.backlog` (off by default): the listening socket's backlog is large enough for bursts
//! of connects. A small backlog (`listen(fd, 5)`, common in course starters) is not one of the
//! lecture's concurrency bugs, so the default rubric gives it no points, and the burst checks
//! pace their connects to it; a course that wants to grade it lists this check.
//!
//! The backlog is read from the kernel (sock_diag, what `ss -lt` shows as Send-Q), not guessed
//! from clients that waited.

use super::{in_range, Cx, Outcome};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const TITLE: &str = "Listens with a backlog large enough for bursts of connects";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// The smallest backlog that passes.
    pub min: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params { min: 128 }
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        in_range("min", self.min, 1, 65535)
    }
}

/// The longest this check may wait: its instance's start.
pub fn bound(_p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready
}

pub fn run(cx: &mut Cx, p: &Params) -> Outcome {
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    let backlog = crate::inspect::listen::backlog(srv.port);
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    judge(backlog, somaxconn, p.min)
}

/// The verdict from the backlog the kernel reports (None: sock_diag did not answer), the
/// kernel's cap on it and the smallest that passes.
pub(crate) fn judge(backlog: Option<u32>, somaxconn: Option<u32>, min: u32) -> Outcome {
    let Some(backlog) = backlog else {
        return Outcome::skipped(
            "The kernel did not answer the socket-diagnostics query (sock_diag), so the backlog \
             could not be read.",
            json!({}),
        );
    };
    let ev = json!({ "backlog": backlog, "min": min, "somaxconn": somaxconn });
    if backlog >= min {
        return Outcome::pass(format!("The listening socket's backlog is {backlog}."), ev);
    }
    Outcome::fail(
        0.0,
        format!(
            "The listening socket's backlog is {backlog} (listen(fd, {backlog})), below {}: when \
             more clients connect at once than the queue holds, the kernel drops their \
             connection attempts and they retry only after a second or more. Pass a larger \
             backlog to listen (e.g. 1024; the kernel caps it at net.core.somaxconn).",
            min
        ),
        ev,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    #[test]
    fn a_backlog_at_the_minimum_passes() {
        let o = judge(Some(128), Some(4096), 128);
        assert_eq!(o.status, Status::Pass);
        assert_eq!(o.feedback, "The listening socket's backlog is 128.");
        assert_eq!(o.evidence["somaxconn"], 4096);
    }

    #[test]
    fn a_small_backlog_fails_and_says_how_to_fix_it() {
        let o = judge(Some(5), None, 128);
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.starts_with("The listening socket's backlog is 5 (listen(fd, 5)), below 128:"), "{}", o.feedback);
        assert!(o.feedback.contains("Pass a larger backlog to listen"));
        assert_eq!(o.evidence["somaxconn"], serde_json::Value::Null);
    }

    #[test]
    fn an_unread_backlog_is_skipped_not_failed() {
        let o = judge(None, Some(4096), 128);
        assert_eq!(o.status, Status::Skipped);
        assert!(o.feedback.contains("sock_diag"), "{}", o.feedback);
        assert!(!o.feedback.contains("listen(fd"));
    }
}
