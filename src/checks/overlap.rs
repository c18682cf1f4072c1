//! `concurrency.overlap`: client A connects and stays silent; client B must be served
//! meanwhile. An iterative server blocks in A's read and B waits.

use super::{common::*, Cx, Outcome};
use crate::client::{payload, RunLimits, Session, Step, Swarm};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const TITLE: &str = "Serves a second client while the first stays connected";

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The longest this check may wait, its deadlines added up. Start, A's connect, B's wait, B's wait after A left.
pub fn bound(_p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + t.serve * 3
}

pub fn run(cx: &mut Cx, _p: &Params) -> Outcome {
    if let Some(o) = needs_replies(cx) {
        return o;
    }
    let t = cx.timing;
    let mut rng = cx.rng.clone();
    let line = payload::tagged_line(&mut rng, "B");
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    let mut swarm = Swarm::new(srv.addr());
    let a = swarm.add(Session::new("A", vec![]).holding());
    swarm.run(RunLimits::both(t.serve), |_| false);
    if swarm.sessions[a].connected_at.is_none() {
        return Outcome::fail(0.0, format!("Client A {}.", describe(&swarm.sessions[a], t.serve)), json!({}));
    }
    // B is served when any reply comes back: this check judges concurrency, not the bytes
    // (echo.basic does).
    let b = swarm.add(Session::new("B", vec![Step::Send(line), Step::Expect, Step::Close]).judging_replies());
    let b_sent = std::time::Instant::now();
    swarm.run(RunLimits::both(t.serve), |s| s[b].script_done());
    let sb = &swarm.sessions[b];
    if sb.served() {
        let ms = sb
            .first_reply_at
            .map_or(0, |at| at.saturating_duration_since(b_sent).as_millis() as u64);
        return judge(&Seen::Served { ms, echo: sb.mismatch.is_none() }, t.serve);
    }
    let while_a = describe(sb, t.serve);
    let back_while_a = sb.received as u64;
    let waited_ms = b_sent.elapsed().as_millis() as u64;
    // Let A go and see whether B is answered then: that is the signature of an iterative
    // server, measured as the time from A's close to B's first reply byte.
    swarm.sessions[a].close();
    let released = std::time::Instant::now();
    swarm.run(RunLimits::both(t.serve), |s| s[b].received > 0 || s[b].is_finished());
    let sb = &swarm.sessions[b];
    let after_a_ms = sb.first_reply_at.filter(|at| *at >= released).map(|at| (at - released).as_millis() as u64);
    let seen = Seen::Waited {
        while_a,
        waited_ms,
        back_while_a,
        after_a_ms,
        b_end: sb.end.as_ref().map(|e| format!("{e:?}")),
        // Asked only when B got nothing after A left either: how the server died explains it.
        death: if after_a_ms.is_none() { death_note(srv) } else { None },
    };
    judge(&seen, t.serve)
}

/// What client B saw.
#[derive(Debug, Clone)]
pub(crate) enum Seen {
    /// B was answered while A stayed connected, after `ms`; `echo`: with its own bytes.
    Served { ms: u64, echo: bool },
    /// B was not answered while A stayed connected.
    Waited {
        /// What happened to B meanwhile, in words.
        while_a: String,
        waited_ms: u64,
        back_while_a: u64,
        /// B's first reply byte after A disconnected, if one came.
        after_a_ms: Option<u64>,
        b_end: Option<String>,
        /// How the server died, if it did.
        death: Option<String>,
    },
}

/// The verdict from what B saw (`serve`: how long B was given after A left).
pub(crate) fn judge(seen: &Seen, serve: std::time::Duration) -> Outcome {
    let (while_a, waited_ms, back_while_a, after_a_ms, b_end, death) = match seen {
        Seen::Served { ms, echo } => {
            let mut fb = format!("B was answered in {ms} ms while A stayed connected.");
            if !echo {
                fb.push_str(" (Its reply was not an echo of its line: see echo.basic.)");
            }
            return Outcome::pass(fb, json!({ "b_first_reply_ms": ms, "b_reply_was_echo": echo }));
        }
        Seen::Waited { while_a, waited_ms, back_while_a, after_a_ms, b_end, death } => {
            (while_a, waited_ms, back_while_a, after_a_ms, b_end, death)
        }
    };
    let ev = json!({
        "b_waited_ms_while_a_connected": waited_ms,
        "b_bytes_back_while_a_connected": back_while_a,
        "b_first_reply_ms_after_a_left": after_a_ms,
        "b_end": b_end,
    });
    let mut fb = format!("While client A sat connected without sending anything, client B {while_a}.");
    match after_a_ms {
        Some(ms) => fb.push_str(&format!(
            " B's first reply byte came {ms} ms after A disconnected: the server handles one \
             client at a time (an iterative server). Make it concurrent: fork a child per \
             connection, run a thread per connection, or multiplex the connections with \
             select/poll."
        )),
        None => {
            fb.push_str(&format!(
                " B got no reply in the {:.1} s after A disconnected either.",
                serve.as_secs_f64()
            ));
            if let Some(n) = death {
                fb.push(' ');
                fb.push_str(n);
            }
        }
    }
    Outcome::fail(0.0, fb, ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;
    use std::time::Duration;

    const SERVE: Duration = Duration::from_secs(2);

    fn waited(after_a_ms: Option<u64>, death: Option<&str>) -> Seen {
        Seen::Waited {
            while_a: "got no reply in 2.0 s".into(),
            waited_ms: 2000,
            back_while_a: 0,
            after_a_ms,
            b_end: None,
            death: death.map(str::to_string),
        }
    }

    #[test]
    fn b_answered_while_a_waits_passes_and_a_non_echo_is_pointed_elsewhere() {
        let o = judge(&Seen::Served { ms: 3, echo: true }, SERVE);
        assert_eq!(o.status, Status::Pass);
        assert_eq!(o.feedback, "B was answered in 3 ms while A stayed connected.");
        let o = judge(&Seen::Served { ms: 3, echo: false }, SERVE);
        assert_eq!(o.status, Status::Pass);
        assert!(o.feedback.contains("see echo.basic"));
    }

    #[test]
    fn b_answered_only_after_a_left_is_an_iterative_server() {
        let o = judge(&waited(Some(4), None), SERVE);
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.contains("came 4 ms after A disconnected"), "{}", o.feedback);
        assert!(o.feedback.contains("iterative server"));
        assert_eq!(o.evidence["b_first_reply_ms_after_a_left"], 4);
    }

    #[test]
    fn b_never_answered_names_no_iterative_server_but_a_death() {
        let o = judge(&waited(None, Some("The server process was killed by SIGSEGV during this check.")), SERVE);
        assert!(!o.feedback.contains("iterative"), "{}", o.feedback);
        assert!(o.feedback.contains("no reply in the 2.0 s after A disconnected either"));
        assert!(o.feedback.ends_with("during this check."));
    }
}
