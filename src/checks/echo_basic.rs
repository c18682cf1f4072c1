//! `echo.basic`: one client sends short lines one at a time; each must come back byte-exact,
//! in order, before the next is sent. Partial points: the share of lines echoed correctly.

use super::{common::*, in_range, Cx, Outcome};
use crate::client::{payload, RunLimits, Session, Step, Swarm};
use rand_core::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const TITLE: &str = "Echoes short lines byte-exact, in order";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// How many lines the client sends.
    pub lines: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params { lines: 10 }
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        in_range("lines", self.lines, 1, 10_000)
    }
}

/// The longest this check may wait, its deadlines added up. Start, then one run of the lines (at most 4 × serve).
pub fn bound(_p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + t.serve * 4
}

pub fn run(cx: &mut Cx, p: &Params) -> Outcome {
    let t = cx.timing;
    let mut rng = cx.rng.clone();
    let mut lines = Vec::new();
    for i in 0..p.lines {
        let len = 2 + (rng.next_u32() % 78) as usize;
        let mut l = payload::text_line(&mut rng, len);
        if i == 0 {
            l = b"hello, echo server\n".to_vec();
        }
        lines.push(l);
    }
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    let steps = lines
        .iter()
        .flat_map(|l| [Step::Send(l.clone()), Step::Expect])
        .chain([Step::Close])
        .collect();
    let mut swarm = Swarm::new(srv.addr());
    swarm.add(Session::new("client", steps));
    swarm.run(RunLimits { idle: t.serve, overall: t.serve * 4 }, |_| false);
    let s = &swarm.sessions[0];
    // Lines fully and correctly echoed.
    let mut good = 0usize;
    let mut off = 0u64;
    for l in &lines {
        off += l.len() as u64;
        if s.echoed >= off && s.mismatch.as_ref().is_none_or(|m| m.offset >= off) {
            good += 1;
        }
    }
    let max_wait = s.expect_waits.iter().max().copied().unwrap_or_default();
    let ev = json!({
        "lines_sent": lines.len(),
        "lines_echoed": good,
        "bytes_sent": s.sent,
        "bytes_echoed": s.echoed,
        "slowest_echo_ms": max_wait.as_millis() as u64,
    });
    if s.ok() && good == lines.len() {
        return Outcome::pass(format!("All {} lines came back exactly.", lines.len()), ev);
    }
    let mut fb = format!(
        "Line {} of {} did not come back right: the client {}.",
        good + 1,
        lines.len(),
        describe(s, t.serve)
    );
    if let Some(n) = death_note(srv) {
        fb.push(' ');
        fb.push_str(&n);
    }
    fb.push_str(" An echo server must write back every byte it reads, in order.");
    Outcome::fail(good as f64 / lines.len() as f64, fb, ev)
}
