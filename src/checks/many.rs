//! `concurrency.many`: many clients connected at once, each served while all stay connected.
//! Partial points: the share of clients served.

use super::{common::*, in_range, Cx, Outcome};
use crate::client::{payload, RunLimits, Session, Step, Swarm};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const TITLE: &str = "Serves many clients connected at the same time";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Clients connected at once.
    pub clients: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params { clients: 100 }
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        in_range("clients", self.clients, 2, 5000)
    }
}

/// The longest this check may wait, its deadlines added up. Start, then the one run of all clients (at most 3 × idle).
pub fn bound(_p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + t.idle * 3
}

pub fn run(cx: &mut Cx, p: &Params) -> Outcome {
    let t = cx.timing;
    let mut rng = cx.rng.clone();
    let n = p.clients as usize;
    let lines: Vec<Vec<u8>> = (0..n).map(|i| payload::tagged_line(&mut rng, &format!("c{i}"))).collect();
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    let mut swarm = Swarm::new(srv.addr());
    for (i, l) in lines.into_iter().enumerate() {
        swarm.add(Session::new(format!("c{i}"), vec![Step::Send(l), Step::Expect]).holding());
    }
    swarm.run(RunLimits { idle: t.idle, overall: t.idle * 3 }, |_| false);
    let served = swarm.count(|s| s.ok());
    let connected = swarm.count(|s| s.connected_at.is_some());
    let slowest = swarm
        .sessions
        .iter()
        .filter(|s| s.ok())
        .filter_map(|s| Some(s.finished_at? - s.started?))
        .max()
        .unwrap_or_default();
    let ev = json!({
        "clients": n,
        "connected": connected,
        "served_at_once": served,
        "slowest_served_ms": slowest.as_millis() as u64,
    });
    if served == n {
        return Outcome::pass(format!("All {n} clients were served while all were connected."), ev);
    }
    let first_bad = swarm.sessions.iter().find(|s| !s.ok()).expect("a client failed");
    let mut fb = format!(
        "{n} clients connected at the same time; only {served} were served while all stayed \
         connected. For example client {} {}.",
        first_bad.label,
        describe(first_bad, t.idle)
    );
    if served == 1 {
        fb.push_str(" One client at a time is an iterative server: it must serve connections concurrently.");
    } else if served > 1 && served < n {
        fb.push_str(&format!(
            " Serving exactly {served} at once suggests a fixed limit: a pool of {served} \
             workers each holding one connection, or a small listen backlog."
        ));
    }
    if let Some(d) = death_note(srv) {
        fb.push(' ');
        fb.push_str(&d);
    }
    swarm.close_all();
    Outcome::fail(served as f64 / n as f64, fb, ev)
}
