//! `fairness`: a client that streams data continuously must not starve another.
//!
//! Client A streams lines as fast as the server takes them (and reads its echo); once the
//! server is busy with A, client B sends one line. B must get it back promptly. An event loop
//! that keeps serving the first ready descriptor, or drains one client completely before
//! looking at others, serves B only when A stops. Measured: a 3 s stream delayed B's echo by
//! 2.8 s on a starving server and 1 ms on a fair one. When B is late, a second, shorter stream
//! is run: a starved B's wait follows the stream's length.

use crate::report::Model;
use super::{common::*, in_range, Cx, Outcome};
use crate::client::{payload, RunLimits, Session, Step, Swarm};
use crate::inspect::SocketTable;
use crate::supervise::Server;
use crate::timing::Timing;
use rand_chacha::ChaCha8Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::{Duration, Instant};

/// How much of A's data must wait in the server's receive queue before B starts.
const BACKLOG: usize = 64 << 10;

pub const TITLE: &str = "A streaming client does not starve another (fairness)";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// How long A streams at most, in seconds (scaled by --time-scale).
    pub stream_s: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params { stream_s: 3.0 }
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        in_range("stream_s", self.stream_s, 0.5, 60.0)
    }
}

/// One round: A streams for at most `stream`; returns B's wait (None if B never got its echo)
/// and how long A streamed.
fn round(srv: &Server, rng: &mut ChaCha8Rng, t: Timing, stream: Duration) -> (Option<Duration>, Duration, u64) {
    let chunk: Vec<u8> = (0..64).flat_map(|i| payload::text_line(rng, 1024 - (i % 3))).collect();
    let line = payload::tagged_line(rng, "B");
    let mut swarm = Swarm::new(srv.addr());
    let a = swarm.add(Session::new("A", vec![Step::Stream(chunk)]).holding().judging_replies());
    // Wait until A's stream flows through the server (its echo arrives) and A's data piles up
    // in the server's receive queue (A sends faster than it reads its echo): from then on the
    // server always has more of A's data to read, whatever its speed.
    let port = srv.port;
    swarm.run(RunLimits::both(t.serve), |s| {
        s[a].is_finished()
            || (s[a].received > 0
                && s[a].local_port.is_some_and(|p| {
                    SocketTable::read()
                        .server_side_of(port, p)
                        .is_some_and(|q| q.rx_queue as usize >= BACKLOG)
                }))
    });
    let b = swarm.add(Session::new("B", vec![Step::Send(line), Step::Expect, Step::Close]).judging_replies());
    let b_start = Instant::now();
    let mut a_stopped: Option<Instant> = None;
    swarm.run(RunLimits { idle: t.serve, overall: stream + t.serve }, |s| {
        if a_stopped.is_none() && b_start.elapsed() >= stream {
            s[a].stop_stream();
            a_stopped = Some(Instant::now());
        }
        s[b].script_done()
    });
    let streamed = a_stopped.map_or(b_start.elapsed(), |at| at - b_start);
    let sb = &swarm.sessions[b];
    let wait = sb.served().then(|| sb.finished_at.map_or(b_start.elapsed(), |f| f - b_start));
    let a_bytes = swarm.sessions[a].received;

    swarm.close_all();
    (wait, streamed, a_bytes)
}

/// The longest this check may wait, its deadlines added up. Start, then up to two rounds: A's start (serve), the stream and B's wait (stream + serve); the second stream is half as long.
pub fn bound(p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + (t.serve * 2 + t.scaled(p.stream_s)) + (t.serve * 2 + t.scaled(p.stream_s) / 2)
}

pub fn run(cx: &mut Cx, p: &Params) -> Outcome {
    if let Some(o) = needs_replies(cx) {
        return o;
    }
    let t = cx.timing;
    let model = cx.model.model;
    let mut rng = cx.rng.clone();
    let stream = t.scaled(p.stream_s);
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    let (wait1, streamed1, a_bytes) = round(srv, &mut rng, t, stream);
    let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
    if let Some(w) = wait1.filter(|w| *w < t.serve) {
        return Outcome::pass(
            format!("B's line came back in {} ms while A streamed.", w.as_millis()),
            json!({ "b_latency_ms": w.as_millis() as u64, "a_bytes_answered": a_bytes }),
        );
    }
    if let Some(d) = death_note(srv) {
        return Outcome::fail(0.0, format!("The server stopped during the stream. {d}"), json!({ "b_latency_ms": ms(wait1) }));
    }
    // Confirm with a stream half as long: a starved client's wait follows the stream. (When B
    // got nothing at all, a second round would show nothing more.)
    let (wait2, streamed2) = match wait1 {
        Some(_) => {
            let (w, s, _) = round(srv, &mut rng, t, stream / 2);
            (w, s)
        }
        None => (None, Duration::ZERO),
    };
    let ev = json!({
        "round1": { "a_streamed_ms": streamed1.as_millis() as u64, "b_latency_ms": ms(wait1) },
        "round2": { "a_streamed_ms": streamed2.as_millis() as u64, "b_latency_ms": ms(wait2) },
        "a_bytes_answered_round1": a_bytes,
    });
    let show = |w: Option<Duration>| w.map_or("in vain".to_string(), |w| format!("{:.2} s", w.as_secs_f64()));
    let comparison = if wait1.is_some() {
        format!("; with a {:.1} s stream B waited {}. B is served only when A pauses", streamed2.as_secs_f64(), show(wait2))
    } else {
        String::from(". B was not served while A was connected")
    };
    if a_bytes == 0 {
        let fb = format!(
            "Neither client was answered: A streamed for {:.1} s and got no bytes back, and B \
             waited {} for its one line. Nothing here shows one client starving another; see \
             echo.basic and concurrency.overlap for what the server does with a client.",
            streamed1.as_secs_f64(),
            show(wait1)
        );
        return Outcome::fail(0.0, fb, ev);
    }
    let mut fb = format!(
        "While client A streamed data and was answered ({a_bytes} bytes came back to it), client \
         B waited {} for its one line (A streamed {:.1} s){comparison}: the server keeps serving \
         one busy client and starves the others.",
        show(wait1),
        streamed1.as_secs_f64(),
    );
    match model {
        Model::Event => fb.push_str(
            " In an event loop, serve every ready client each turn, doing a bounded amount of \
             work for each (one read of at most a buffer), instead of looping on one client until \
             it has no more data or always taking the first ready descriptor.",
        ),
        Model::Iterative => fb.push_str(
            " The server serves one client at a time (see concurrency.overlap), so B waits for \
             as long as A stays.",
        ),
        _ => {}
    }
    Outcome::fail(0.0, fb, ev)
}
