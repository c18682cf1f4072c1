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
    let first_unserved = swarm.sessions.iter().find(|s| !s.served());
    let seen = Seen {
        clients: n,
        served,
        first_unserved: first_unserved.map(|s| (s.label.clone(), describe(s, t.idle))),
        model,
        threads,
        queue_note: queue.note(),
        // Asked only when a client was not served: how the server died explains it.
        death: first_unserved.and_then(|_| death_note(srv)),
    };
    swarm.close_all();
    judge(&seen, ev)
}

/// What the check measured with every client connected.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub clients: usize,
    /// Clients answered while all stayed connected.
    pub served: usize,
    /// The first client not served: its label and what happened to it, in words.
    pub first_unserved: Option<(String, String)>,
    /// The model the probe saw.
    pub model: Model,
    /// The server's threads while the clients were connected.
    pub threads: Option<u64>,
    /// What the listen queue explains, if anything.
    pub queue_note: Option<String>,
    /// How the server died, if it did.
    pub death: Option<String>,
}

/// The verdict: full marks when every client was served at once, else the share served.
pub(crate) fn judge(seen: &Seen, ev: serde_json::Value) -> Outcome {
    let (n, served) = (seen.clients, seen.served);
    let Some((label, what)) = seen.first_unserved.as_ref().filter(|_| served < n) else {
        let mut fb = format!("All {n} clients were served while all were connected.");
        if let Some(note) = &seen.queue_note {
            fb.push(' ');
            fb.push_str(note);
        }
        return Outcome::pass(fb, ev);
    };
    let mut fb = format!(
        "{n} clients connected at the same time and {} while all stayed connected. For \
         example client {label} {what}.",
        match served {
            0 => "none was served".to_string(),
            1 => "only 1 was served".to_string(),
            n => format!("only {n} were served"),
        },
    );
    match (seen.model, seen.threads) {
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
    for note in [&seen.queue_note, &seen.death].into_iter().flatten() {
        fb.push(' ');
        fb.push_str(note);
    }
    Outcome::fail(served as f64 / n as f64, fb, ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn seen(served: usize) -> Seen {
        Seen {
            clients: 100,
            served,
            first_unserved: (served < 100).then(|| ("c7".to_string(), "got no reply in 3.0 s".to_string())),
            model: Model::Thread,
            threads: Some(5),
            queue_note: None,
            death: None,
        }
    }

    #[test]
    fn every_client_served_at_once_passes() {
        assert_eq!(judge(&seen(100), json!({})).status, Status::Pass);
    }

    #[test]
    fn a_fixed_pool_earns_its_share_and_is_named() {
        let o = judge(&seen(4), json!({}));
        assert_eq!(o.status, Status::Fail);
        assert!((o.fraction - 0.04).abs() < 1e-9);
        assert!(o.feedback.contains("only 4 were served"), "{}", o.feedback);
        assert!(o.feedback.contains("client c7 got no reply in 3.0 s"));
        assert!(o.feedback.contains("The server had 5 threads"), "{}", o.feedback);
    }

    #[test]
    fn many_threads_are_not_blamed_on_the_pool() {
        let o = judge(&Seen { threads: Some(60), ..seen(50) }, json!({}));
        assert!(!o.feedback.contains("threads while"), "{}", o.feedback);
    }

    #[test]
    fn an_iterative_server_is_told_to_be_concurrent() {
        let o = judge(&Seen { model: Model::Iterative, threads: Some(1), ..seen(1) }, json!({}));
        assert!(o.feedback.contains("only 1 was served"));
        assert!(o.feedback.contains("one client at a time"));
    }

    #[test]
    fn a_dead_server_is_named_last() {
        let o = judge(&Seen { death: Some("The server process was killed by SIGSEGV during this check.".into()), ..seen(0) }, json!({}));
        assert!(o.feedback.contains("none was served"));
        assert!(o.feedback.ends_with("killed by SIGSEGV during this check."), "{}", o.feedback);
    }
}
