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
    let b = swarm.add(Session::new("B", vec![Step::Send(line), Step::Expect, Step::Close]));
    swarm.run(RunLimits::both(t.serve), |s| s[b].script_done());
    let sb = &swarm.sessions[b];
    if sb.ok() {
        let ms = sb.expect_waits.first().map_or(0, |d| d.as_millis() as u64);
        return Outcome::pass(
            format!("B was served in {ms} ms while A stayed connected."),
            json!({ "b_latency_ms": ms }),
        );
    }
    let first = describe(sb, t.serve);
    // Let A go and see whether B is served then: that is the signature of an iterative server.
    swarm.sessions[a].close();
    let released = std::time::Instant::now();
    swarm.run(RunLimits::both(t.serve), |s| s[b].missing() == 0 || s[b].is_finished());
    let after_a = swarm.sessions[b].echoed > 0;
    let ev = json!({
        "b_waited_s": t.serve.as_secs_f64(),
        "b_served_after_a_left": after_a,
        "b_served_ms_after_a_left": if after_a { Some(released.elapsed().as_millis() as u64) } else { None },
    });
    let mut fb = format!(
        "While client A sat connected without sending anything, client B {first}.",
    );
    if after_a {
        fb.push_str(
            " B was served as soon as A disconnected: the server handles one client at a time \
             (an iterative server). Make it concurrent: fork a child per connection, run a \
             thread per connection, or multiplex the connections with select/poll.",
        );
    } else if let Some(n) = death_note(srv) {
        fb.push(' ');
        fb.push_str(&n);
    }
    Outcome::fail(0.0, fb, ev)
}
