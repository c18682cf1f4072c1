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
fn round(srv: &Server, rng: &mut ChaCha8Rng, t: Timing, stream: Duration) -> (Option<Duration>, Duration, u64, (u64, u64)) {
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
    let b_bytes = (sb.received, sb.sent);

    swarm.close_all();
    (wait, streamed, a_bytes, b_bytes)
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
    let (b_wait, streamed, a_bytes, b_bytes) = round(srv, &mut rng, t, stream);
    let mut seen = Seen { first: Round { b_wait, streamed }, a_bytes, b_bytes, death: None, second: None };
    if !seen.b_prompt(t.serve) {
        seen.death = death_note(srv);
        // Confirm with a stream half as long: a starved client's wait follows the stream. (When
        // B got nothing at all, a second round would show nothing more.)
        if seen.death.is_none() && b_wait.is_some() {
            let (b_wait, streamed, _, _) = round(srv, &mut rng, t, stream / 2);
            seen.second = Some(Round { b_wait, streamed });
        }
    }
    judge(&seen, t.serve, model)
}

/// One round as B saw it: how long it waited for its echo (None: in vain) while A streamed
/// for `streamed`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Round {
    pub b_wait: Option<Duration>,
    pub streamed: Duration,
}

/// What the two clients saw.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub first: Round,
    /// Bytes A got back during the first round.
    pub a_bytes: u64,
    /// Bytes B got back, and sent, during the first round.
    pub b_bytes: (u64, u64),
    /// How the server died, if it did (asked only when B was late).
    pub death: Option<String>,
    /// The round with a stream half as long, run only when B was late but served.
    pub second: Option<Round>,
}

impl Seen {
    fn b_prompt(&self, serve: Duration) -> bool {
        self.first.b_wait.is_some_and(|w| w < serve)
    }
}

/// The verdict from B's waits (`serve`: how long B may take) and the server's model, for
/// advice. Starvation is claimed only when A was answered, and event-loop advice is given
/// only to an event server.
pub(crate) fn judge(seen: &Seen, serve: Duration, model: Model) -> Outcome {
    let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
    let (wait1, streamed1, a_bytes) = (seen.first.b_wait, seen.first.streamed, seen.a_bytes);
    if let Some(w) = wait1.filter(|_| seen.b_prompt(serve)) {
        return Outcome::pass(
            format!("B's line came back in {} ms while A streamed.", w.as_millis()),
            json!({ "b_latency_ms": w.as_millis() as u64, "a_bytes_answered": a_bytes }),
        );
    }
    if let Some(d) = &seen.death {
        return Outcome::fail(0.0, format!("The server stopped during the stream. {d}"), json!({ "b_latency_ms": ms(wait1) }));
    }
    let Round { b_wait: wait2, streamed: streamed2 } = seen.second.unwrap_or_default();
    let ev = json!({
        "round1": { "a_streamed_ms": streamed1.as_millis() as u64, "b_latency_ms": ms(wait1) },
        "round2": { "a_streamed_ms": streamed2.as_millis() as u64, "b_latency_ms": ms(wait2) },
        "a_bytes_answered_round1": a_bytes,
    });
    let show = |w: Option<Duration>| w.map_or("in vain".to_string(), |w| format!("{:.2} s", w.as_secs_f64()));
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
    // B was answered, only not in full: an echo bug (echo.basic's), not starvation.
    let (b_got, b_sent) = seen.b_bytes;
    if wait1.is_none() && b_got > 0 {
        let fb = format!(
            "While client A streamed, client B got {b_got} of the {b_sent} bytes of its line back and \
             then nothing more: B was answered, but its echo never came back whole (see echo.basic \
             for the bytes the server loses). That is not starvation, and fairness cannot be judged \
             on an incomplete echo."
        );
        return Outcome::fail(0.0, fb, ev);
    }
    let comparison = if wait1.is_some() {
        format!("; with a {:.1} s stream B waited {}. B is served only when A pauses", streamed2.as_secs_f64(), show(wait2))
    } else {
        String::from(". B was not served while A was connected")
    };
    let mut fb = format!(
        "While client A streamed data and was answered ({a_bytes} bytes came back to it), client \
         B waited {} for its one line (A streamed {:.1} s){comparison}: the server keeps serving \
         one busy client and starves the others.",
        show(wait1),
        streamed1.as_secs_f64(),
    );
    fb.push_str(advice(model));
    Outcome::fail(0.0, fb, ev)
}

/// What to change, for the server's model ("" where there is nothing specific to say).
fn advice(model: Model) -> &'static str {
    match model {
        Model::Event => {
            " In an event loop, serve every ready client each turn, doing a bounded amount of \
             work for each (one read of at most a buffer), instead of looping on one client until \
             it has no more data or always taking the first ready descriptor."
        }
        Model::Iterative => {
            " The server serves one client at a time (see concurrency.overlap), so B waits for \
             as long as A stays."
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    const SERVE: Duration = Duration::from_secs(2);

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn starved(a_bytes: u64) -> Seen {
        Seen {
            b_bytes: (0, 41),
            first: Round { b_wait: Some(secs(2.9)), streamed: secs(3.0) },
            a_bytes,
            death: None,
            second: Some(Round { b_wait: Some(secs(1.45)), streamed: secs(1.5) }),
        }
    }

    #[test]
    fn an_incomplete_echo_for_b_is_not_called_starvation() {
        let seen = Seen { b_bytes: (40, 41), first: Round { b_wait: None, streamed: secs(3.0) }, ..starved(65536) };
        let o = judge(&seen, SERVE, Model::Event);
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.contains("B got 40 of the 41 bytes"), "{}", o.feedback);
        assert!(!o.feedback.contains("starves"), "{}", o.feedback);
        assert!(!o.feedback.contains("event loop"), "no advice on a cause not shown: {}", o.feedback);
    }

    #[test]
    fn a_prompt_b_passes() {
        let seen = Seen { first: Round { b_wait: Some(secs(0.004)), streamed: secs(3.0) }, a_bytes: 1 << 20, b_bytes: (41, 41), death: None, second: None };
        let o = judge(&seen, SERVE, Model::Event);
        assert_eq!(o.status, Status::Pass);
        assert_eq!(o.feedback, "B's line came back in 4 ms while A streamed.");
        assert_eq!(o.evidence["a_bytes_answered"], 1 << 20);
    }

    #[test]
    fn a_b_answered_only_when_a_pauses_is_starved_and_both_rounds_are_told() {
        let o = judge(&starved(65536), SERVE, Model::Thread);
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.contains("(65536 bytes came back to it), client B waited 2.90 s"), "{}", o.feedback);
        assert!(o.feedback.contains("with a 1.5 s stream B waited 1.45 s. B is served only when A pauses"), "{}", o.feedback);
        assert!(o.feedback.ends_with("starves the others."), "no model advice for threads: {}", o.feedback);
        assert_eq!(o.evidence["round2"]["b_latency_ms"], 1450);
    }

    #[test]
    fn event_loop_advice_only_for_event_servers() {
        let event = judge(&starved(65536), SERVE, Model::Event).feedback;
        assert!(event.contains("In an event loop, serve every ready client each turn"), "{event}");
        for model in [Model::Process, Model::Thread, Model::Iterative, Model::Unknown] {
            let fb = judge(&starved(65536), SERVE, model).feedback;
            assert!(!fb.contains("event loop"), "{model:?}: {fb}");
        }
        let iterative = judge(&starved(65536), SERVE, Model::Iterative).feedback;
        assert!(iterative.contains("serves one client at a time (see concurrency.overlap)"), "{iterative}");
    }

    #[test]
    fn no_starvation_is_claimed_when_a_was_not_answered_either() {
        let o = judge(&starved(0), SERVE, Model::Event);
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.starts_with("Neither client was answered"), "{}", o.feedback);
        assert!(!o.feedback.contains("starves"), "{}", o.feedback);
        assert!(!o.feedback.contains("event loop"), "{}", o.feedback);
    }

    #[test]
    fn a_b_never_served_is_told_without_a_second_round() {
        let seen = Seen { first: Round { b_wait: None, streamed: secs(3.0) }, a_bytes: 4096, b_bytes: (0, 41), death: None, second: None };
        let o = judge(&seen, SERVE, Model::Event);
        assert!(o.feedback.contains("client B waited in vain for its one line (A streamed 3.0 s). B was not served while A was connected:"), "{}", o.feedback);
        assert_eq!(o.evidence["round2"]["a_streamed_ms"], 0);
        assert_eq!(o.evidence["round2"]["b_latency_ms"], serde_json::Value::Null);
    }

    #[test]
    fn a_late_b_exactly_at_the_deadline_is_not_prompt() {
        let mut seen = starved(10);
        seen.first.b_wait = Some(SERVE);
        assert_eq!(judge(&seen, SERVE, Model::Event).status, Status::Fail);
    }

    #[test]
    fn a_death_is_the_cause_told_not_starvation() {
        let mut seen = starved(65536);
        seen.death = Some("The server process was killed by SIGSEGV during this check.".into());
        let o = judge(&seen, SERVE, Model::Event);
        assert_eq!(o.feedback, "The server stopped during the stream. The server process was killed by SIGSEGV during this check.");
        assert_eq!(o.evidence["b_latency_ms"], 2900);
    }
}
