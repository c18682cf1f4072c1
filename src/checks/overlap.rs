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
    let first_reply_ms = |s: &crate::client::Session| {
        s.first_reply_at.map(|at| at.saturating_duration_since(b_sent).as_millis() as u64)
    };
    if sb.served() {
        let ms = first_reply_ms(sb).unwrap_or(0);
        let mut fb = format!("B was answered in {ms} ms while A stayed connected.");
        if sb.mismatch.is_some() {
            fb.push_str(" (Its reply was not an echo of its line: see echo.basic.)");
        }
        return Outcome::pass(fb, json!({ "b_first_reply_ms": ms, "b_reply_was_echo": sb.mismatch.is_none() }));
    }
    let first = describe(sb, t.serve);
    let back_while_a = sb.received;
    let waited = b_sent.elapsed();
    // Let A go and see whether B is answered then: that is the signature of an iterative
    // server, measured as the time from A's close to B's first reply byte.
    swarm.sessions[a].close();
    let released = std::time::Instant::now();
    swarm.run(RunLimits::both(t.serve), |s| s[b].received > 0 || s[b].is_finished());
    let sb = &swarm.sessions[b];
    let after_a = sb.first_reply_at.filter(|at| *at >= released).map(|at| at - released);
    let ev = json!({
        "b_waited_ms_while_a_connected": waited.as_millis() as u64,
        "b_bytes_back_while_a_connected": back_while_a,
        "b_first_reply_ms_after_a_left": after_a.map(|d| d.as_millis() as u64),
        "b_end": sb.end.as_ref().map(|e| format!("{e:?}")),
    });
    let mut fb = format!("While client A sat connected without sending anything, client B {first}.");
    match after_a {
        Some(d) => fb.push_str(&format!(
            " B's first reply byte came {} ms after A disconnected: the server handles one \
             client at a time (an iterative server). Make it concurrent: fork a child per \
             connection, run a thread per connection, or multiplex the connections with \
             select/poll.",
            d.as_millis()
        )),
        None => {
            fb.push_str(&format!(
                " B got no reply in the {:.1} s after A disconnected either.",
                t.serve.as_secs_f64()
            ));
            if let Some(n) = death_note(srv) {
                fb.push(' ');
                fb.push_str(&n);
            }
        }
    }
    Outcome::fail(0.0, fb, ev)
}
