//! `concurrency.partial-line`: client A sends half a line and stops; client B must be served.
//! An event loop that, once select says A is readable, calls a blocking readline waits inside
//! A's read for a newline that never comes, and every other client waits with it.

use super::{common::*, Cx, Outcome};
use crate::report::Model;
use crate::client::{payload, RunLimits, Session, Step, Swarm};
use crate::inspect::SocketTable;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const TITLE: &str = "A client that sends half a line does not block the others";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// How many lines B sends (each must come back before the next).
    pub lines: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params { lines: 3 }
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        super::in_range("lines", self.lines, 1, 1000)
    }
}

/// The longest this check may wait, its deadlines added up. Start, A's connect, the server reading A's bytes, B's lines.
pub fn bound(_p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + t.serve * 3
}

pub fn run(cx: &mut Cx, p: &Params) -> Outcome {
    if let Some(o) = needs_replies(cx) {
        return o;
    }
    let t = cx.timing;
    let cx_model = cx.model.model;
    let mut rng = cx.rng.clone();
    let lines: Vec<Vec<u8>> = (0..p.lines).map(|i| payload::tagged_line(&mut rng, &format!("B{i}"))).collect();
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    let port = srv.port;
    let mut swarm = Swarm::new(srv.addr());
    let a = swarm.add(Session::new("A", vec![Step::Send(b"half a line, and no end to".to_vec())]).holding());
    swarm.run(RunLimits::both(t.serve), |_| false);
    let Some(a_port) = swarm.sessions[a].local_port else {
        return Outcome::fail(0.0, format!("Client A {}.", describe(&swarm.sessions[a], t.serve)), json!({}));
    };
    // Wait until the server has read A's half line out of the kernel (the server end's receive
    // queue is empty): from then on, a server blocked in a readline is stuck in it.
    let consumed = wait_until(t.serve, || {
        SocketTable::read()
            .server_side_of(port, a_port)
            .is_some_and(|s| s.rx_queue == 0)
    });
    let steps = lines
        .iter()
        .flat_map(|l| [Step::Send(l.clone()), Step::Expect])
        .chain([Step::Close])
        .collect();
    let b = swarm.add(Session::new("B", steps).judging_replies());
    swarm.run(RunLimits::both(t.serve), |s| s[b].script_done());
    let sb = &swarm.sessions[b];
    let ev = json!({
        "a_half_line_read_by_server": consumed.is_some(),
        "b_lines": lines.len(),
        "b_bytes_sent": sb.sent,
        "b_bytes_echoed": sb.echoed,
        "b_slowest_echo_ms": sb.expect_waits.iter().max().map(|d| d.as_millis() as u64),
    });
    if sb.served() {
        return Outcome::pass("B was served while A's half line was pending.", ev);
    }
    // Which descriptor is A's connection in the server, and is a thread blocked reading it?
    let a_fd = SocketTable::read().server_side_of(port, a_port).and_then(|sock| {
        crate::inspect::fd_table(srv.main_pid)
            .into_iter()
            .find(|e| e.socket_inode == Some(sock.inode))
            .map(|e| e.fd)
    });
    let blocked_on_a = a_fd.is_some_and(|fd| {
        crate::inspect::task_snapshots(srv.main_pid)
            .iter()
            .any(|t| crate::inspect::tasks::reading_fd(t) == Some(fd))
    });
    let mut ev = ev;
    ev["a_fd_in_server"] = json!(a_fd);
    ev["server_blocked_reading_a"] = json!(blocked_on_a);
    let stuck = Stuck {
        b_what: describe(sb, t.serve),
        blocked_on_a: a_fd.filter(|_| blocked_on_a),
        a_read: consumed.is_some(),
        model: cx_model,
        serve: t.serve,
        death: death_note(srv),
    };
    Outcome::fail(0.0, stuck.feedback(), ev)
}

/// What was measured when B was not served while A's half line was pending.
#[derive(Debug, Clone)]
pub(crate) struct Stuck {
    /// What happened to B, in words.
    pub b_what: String,
    /// A's descriptor in the server, when /proc showed a thread blocked reading it.
    pub blocked_on_a: Option<i32>,
    /// The server had read A's bytes out of the kernel.
    pub a_read: bool,
    pub model: Model,
    pub serve: std::time::Duration,
    pub death: Option<String>,
}

impl Stuck {
    /// The feedback: a blocking read on A's connection is named only when /proc showed it.
    pub(crate) fn feedback(&self) -> String {
        let mut fb = format!(
            "Client A sent half a line (no newline) and stopped; client B then {}.",
            self.b_what
        );
        if let Some(fd) = self.blocked_on_a {
            fb.push_str(&format!(
                " The server had read A's bytes, and /proc shows it blocked in read on A's \
                 connection (descriptor {fd}): it waits inside a read for the rest of A's line, and \
                 nobody else is served meanwhile."
            ));
            if self.model == Model::Event {
                fb.push_str(
                    " In an event-based server, never call a blocking readline after select/poll \
                     says a descriptor is readable: read what is there (non-blocking), keep the \
                     partial line in that client's buffer, and return to the loop.",
                );
            }
        } else if self.a_read {
            fb.push_str(" The server had read A's bytes out of the kernel before B connected.");
        } else {
            fb.push_str(&format!(
                " The server had not read A's bytes within {:.1} s either.",
                self.serve.as_secs_f64()
            ));
        }
        if let Some(n) = &self.death {
            fb.push(' ');
            fb.push_str(n);
        }
        fb
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuck() -> Stuck {
        Stuck {
            b_what: "got no reply in 2.0 s".into(),
            blocked_on_a: Some(4),
            a_read: true,
            model: Model::Event,
            serve: std::time::Duration::from_secs(2),
            death: None,
        }
    }

    #[test]
    fn a_read_blocked_on_a_is_named_with_its_descriptor_and_the_event_advice() {
        let fb = stuck().feedback();
        assert!(fb.contains("blocked in read on A's connection (descriptor 4)"), "{fb}");
        assert!(fb.contains("never call a blocking readline"));
        let fb = Stuck { model: Model::Thread, ..stuck() }.feedback();
        assert!(!fb.contains("event-based"), "{fb}");
    }

    #[test]
    fn without_a_blocked_read_no_readline_is_blamed() {
        let fb = Stuck { blocked_on_a: None, ..stuck() }.feedback();
        assert!(!fb.contains("blocked in read"), "{fb}");
        assert!(fb.contains("had read A's bytes out of the kernel"));
        let fb = Stuck { blocked_on_a: None, a_read: false, ..stuck() }.feedback();
        assert!(fb.contains("had not read A's bytes within 2.0 s"), "{fb}");
    }
}

