//! `concurrency.many`: many clients connected at once, each served while all stay connected.
//! Partial points: the share of clients served.

use super::{common::*, in_range, Cx, Outcome};
use crate::report::Model;
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
    if let Some(o) = needs_replies(cx) {
        return o;
    }
    let t = cx.timing;
    let model = cx.model.model;
    let mut rng = cx.rng.clone();
    let n = p.clients as usize;
    let lines: Vec<Vec<u8>> = (0..n).map(|i| payload::tagged_line(&mut rng, &format!("c{i}"))).collect();
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    let queue = ListenNote::read(srv.port, p.clients);
    let mut swarm = Swarm::new(srv.addr());
    for (i, l) in lines.into_iter().enumerate() {
        swarm.add(
            Session::new(format!("c{i}"), vec![Step::Send(l), Step::Expect])
                .holding()
                .judging_replies(),
        );
    }
    swarm.run(RunLimits { idle: t.idle, overall: t.idle * 3 }, |_| false);
    let served = swarm.count(|s| s.served());
    let connected = swarm.count(|s| s.connected_at.is_some());
    let threads = crate::inspect::memory::memory_stats(srv.main_pid).map(|m| m.threads);
    let slowest = swarm
        .sessions
        .iter()
        .filter(|s| s.served())
        .filter_map(|s| Some(s.finished_at? - s.started?))
        .max()
        .unwrap_or_default();
    let ev = json!({
        "clients": n,
        "connected": connected,
        "served_at_once": served,
        "slowest_served_ms": slowest.as_millis() as u64,
        "server_threads_while_connected": threads,
        "listen_queue": queue.evidence(),
    });
    if served == n {
        let mut fb = format!("All {n} clients were served while all were connected.");
        if let Some(note) = queue.note() {
            fb.push(' ');
            fb.push_str(&note);
        }
        return Outcome::pass(fb, ev);
    }
    let first_bad = swarm.sessions.iter().find(|s| !s.served()).expect("a client failed");
    let mut fb = format!(
        "{n} clients connected at the same time and {} while all stayed connected. For \
         example client {} {}.",
        match served {
            0 => "none was served".to_string(),
            1 => "only 1 was served".to_string(),
            n => format!("only {n} were served"),
        },
        first_bad.label,
        describe(first_bad, t.idle)
    );
    match (model, threads) {
        (Model::Iterative, _) if served == 1 => fb.push_str(
            " The server served one client at a time (no child processes or threads, and the \
             second client waited): it must serve connections concurrently.",
        ),
        (Model::Thread, Some(th)) if served > 0 && th as usize <= served + 2 => {
            fb.push_str(&format!(
                " The server had {th} threads while they were connected: each served client \
                 holds a thread, so a fixed number of threads serves at most that many clients \
                 at once."
            ))
        }
        _ => {}
    }
    if let Some(note) = queue.note() {
        fb.push(' ');
        fb.push_str(&note);
    }
    if let Some(d) = death_note(srv) {
        fb.push(' ');
        fb.push_str(&d);
    }
    swarm.close_all();
    Outcome::fail(served as f64 / n as f64, fb, ev)
}
