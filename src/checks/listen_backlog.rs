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
    let Some(backlog) = crate::inspect::listen::backlog(srv.port) else {
        return Outcome::skipped(
            "The kernel did not answer the socket-diagnostics query (sock_diag), so the backlog \
             could not be read.",
            json!({}),
        );
    };
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let ev = json!({ "backlog": backlog, "min": p.min, "somaxconn": somaxconn });
    if backlog >= p.min {
        return Outcome::pass(format!("The listening socket's backlog is {backlog}."), ev);
    }
    Outcome::fail(
        0.0,
        format!(
            "The listening socket's backlog is {backlog} (listen(fd, {backlog})), below {}: when \
             more clients connect at once than the queue holds, the kernel drops their \
             connection attempts and they retry only after a second or more. Pass a larger \
             backlog to listen (e.g. 1024; the kernel caps it at net.core.somaxconn).",
            p.min
        ),
        ev,
    )
}
