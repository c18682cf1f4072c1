//! `model`: the server's concurrency model, as observed from /proc, against the one the
//! assignment asks for. The observation itself runs once per grading, before the checks
//! ([`observe`]), and names the model in the report's `server.model`.

use super::{common::*, Cx, ModelObservation, Outcome, Replies};
use crate::client::{payload, show_bytes, RunLimits, Session, Step, Swarm};
use crate::report::Model;
use crate::timing::Timing;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const TITLE: &str = "Uses the concurrency model the assignment asks for";

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// The model the assignment asks for: `process`, `thread` or `event`.
    pub require: Option<Model>,
}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        match self.require {
            Some(Model::Process | Model::Thread | Model::Event) => Ok(()),
            Some(m) => Err(format!("require is {}: it must be process, thread or event", m.as_str())),
            None => Err("require is missing: say which model the assignment asks for (process, thread or event)".into()),
        }
    }
}

/// The longest the probe ([`observe`]) may wait: the start and one round of clients.
pub fn probe_bound(t: Timing) -> std::time::Duration {
    t.ready + t.serve
}

/// Clients held open at once while the model is observed.
pub(crate) const PROBE_CLIENTS: usize = 4;

/// Start an instance, hold a few clients at once, and see what the server grew: children
/// (process), threads (thread), several connections held by one thread (event), or one
/// connection at a time (iterative). The model comes from /proc whatever the bytes: an
/// upper-casing server that forks is process-based, and a thread server that never answers
/// still shows its threads. Replies only break the tie between event and iterative, with the
/// connections the process holds.
///
/// It runs like a check (its own [`Cx`], bound and instance, ended by the run pipeline).
pub fn observe(cx: &mut Cx) -> ModelObservation {
    let timing = cx.timing;
    let mut rng = cx.rng.clone();
    let srv = match cx.start_instance() {
        Ok(s) => s,
        Err(f) => {
            return ModelObservation {
                evidence: json!({ "start": f.to_string() }),
                start_failure: Some(f),
                ..ModelObservation::unobserved()
            }
        }
    };
    crate::fault::injected_panic("model");
    let backlog = crate::inspect::listen::backlog(srv.port);
    let before = crate::inspect::memory::memory_stats(srv.main_pid).unwrap_or_default();
    let mut swarm = Swarm::new(srv.addr());
    for i in 0..PROBE_CLIENTS {
        let label = format!("m{i}");
        let line = payload::tagged_line(&mut rng, &label);
        swarm.add(
            Session::new(label, vec![Step::Send(line), Step::Expect])
                .holding()
                .judging_replies(),
        );
    }
    swarm.run(RunLimits::both(timing.serve), |_| false);
    let answered = swarm.count(|s| s.served());
    let echoed = swarm.count(|s| s.ok());
    let during = crate::inspect::memory::memory_stats(srv.main_pid).unwrap_or_default();
    let procs = other_processes(srv).into_iter().filter(|p| !p.is_zombie()).count();
    let held = connections_held(srv.main_pid, srv.port);
    let exit = srv.main_exit();
    swarm.close_all();
    let model = classify(procs, during.threads as usize, exit.is_some(), answered.max(held));
    let any_bytes = swarm.sessions.iter().any(|s| s.received > 0);
    let any_mismatch = swarm.sessions.iter().any(|s| s.mismatch.is_some());
    let replies = judge_replies(echoed, answered, any_mismatch, any_bytes);
    let not_echoed = swarm.sessions.iter().find(|s| s.mismatch.is_some());
    ModelObservation {
        model,
        replies,
        evidence: json!({
            "clients_connected_at_once": PROBE_CLIENTS,
            "clients_answered_at_once": answered,
            "clients_echoed_exactly": echoed,
            "connections_held_by_server": held,
            "other_processes_while_connected": procs,
            "threads_before": before.threads,
            "threads_while_connected": during.threads,
            "listen_backlog": backlog,
            "replies": replies.as_str(),
            "reply_example": not_echoed.and_then(|s| s.mismatch.as_ref()).map(|m| json!({
                "expected": show_bytes(&m.expected, 40),
                "got": show_bytes(&m.got, 40),
            })),
            "server_exit": exit.map(|e| e.to_string()),
        }),
        start_failure: None,
        grader_failure: None,
    }
}

/// The model from what /proc showed with [`PROBE_CLIENTS`] clients connected: children
/// (process), threads (thread), several connections served or held by one thread (event), one
/// at a time (iterative). A server that exited shows no model.
pub(crate) fn classify(procs: usize, threads: usize, exited: bool, at_once: usize) -> Model {
    if procs >= 2 {
        Model::Process
    } else if threads > 1 {
        Model::Thread
    } else if exited {
        Model::Unknown
    } else if at_once >= 2 {
        Model::Event
    } else if at_once == 1 {
        Model::Iterative
    } else {
        Model::Unknown
    }
}

/// What the replies were: exact echoes, other bytes, or nothing.
pub(crate) fn judge_replies(echoed: usize, answered: usize, any_mismatch: bool, any_bytes: bool) -> Replies {
    if echoed > 0 && echoed == answered {
        Replies::Echo
    } else if answered > 0 || any_mismatch {
        Replies::NotEcho
    } else if any_bytes {
        // Bytes came back, right so far, but no line was complete in time: a slow echo.
        Replies::Echo
    } else {
        Replies::None
    }
}

/// The longest this check may wait, its deadlines added up. It only reads what the model probe saw (see [`probe_bound`]).
pub fn bound(_p: &Params, _t: crate::timing::Timing) -> std::time::Duration {
    std::time::Duration::ZERO
}

pub fn run(cx: &mut Cx, p: &Params) -> Outcome {
    let seen = cx.model.model;
    let want = p.require.unwrap_or(Model::Unknown);
    let ev = json!({ "required": want.as_str(), "observed": seen.as_str(), "observation": cx.model.evidence });
    if seen == want {
        return Outcome::pass(format!("The server is {}-based, as the assignment asks.", want.as_str()), ev);
    }
    let how = match seen {
        Model::Process => "it forks a child process per connection",
        Model::Thread => "it runs more than one thread",
        Model::Event => "it serves several clients at once from one thread with no children",
        Model::Iterative => "it serves one client at a time (a second client waited)",
        Model::Unknown => "no model could be seen: it grew no children or threads and answered no client (see server.model_evidence)",
    };
    Outcome::fail(
        0.0,
        format!(
            "This assignment asks for a {}-based server, but {how} ({}).",
            want.as_str(),
            seen.as_str()
        ),
        ev,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_comes_from_proc_whatever_the_bytes() {
        assert_eq!(classify(4, 1, false, 0), Model::Process, "a forking server that never answers");
        assert_eq!(classify(1, 5, false, 0), Model::Thread);
        assert_eq!(classify(1, 1, false, 4), Model::Event);
        assert_eq!(classify(1, 1, false, 1), Model::Iterative);
        assert_eq!(classify(1, 1, true, 4), Model::Unknown, "a server that exited shows none");
        assert_eq!(classify(1, 1, false, 0), Model::Unknown);
    }

    #[test]
    fn replies_tell_an_echo_from_other_bytes() {
        assert_eq!(judge_replies(4, 4, false, true), Replies::Echo);
        assert_eq!(judge_replies(2, 4, true, true), Replies::NotEcho);
        assert_eq!(judge_replies(0, 0, false, true), Replies::Echo, "a slow echo, right so far");
        assert_eq!(judge_replies(0, 0, false, false), Replies::None);
    }
}
