//! `echo.basic`: one client sends short lines one at a time; each must come back byte-exact,
//! in order, before the next is sent. Partial points: the share of lines echoed correctly.

use super::{common::*, in_range, Cx, Outcome};
use crate::client::{payload, RunLimits, Session, SessionEnd, Step, Swarm};
use rand_core::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const TITLE: &str = "Echoes short lines byte-exact, in order";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// How many lines the client sends.
    pub lines: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params { lines: 10 }
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        in_range("lines", self.lines, 1, 10_000)
    }
}

/// The longest this check may wait, its deadlines added up. Start, then one run of the lines (at most 4 × serve).
pub fn bound(_p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + t.serve * 4
}

pub fn run(cx: &mut Cx, p: &Params) -> Outcome {
    let t = cx.timing;
    let mut rng = cx.rng.clone();
    let mut lines = Vec::new();
    for i in 0..p.lines {
        let len = 2 + (rng.next_u32() % 78) as usize;
        let mut l = payload::text_line(&mut rng, len);
        if i == 0 {
            l = b"hello, echo server\n".to_vec();
        }
        lines.push(l);
    }
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    let steps = lines
        .iter()
        .flat_map(|l| [Step::Send(l.clone()), Step::Expect])
        .chain([Step::Close])
        .collect();
    let mut swarm = Swarm::new(srv.addr());
    swarm.add(Session::new("client", steps));
    swarm.run(RunLimits { idle: t.serve, overall: t.serve * 4 }, |_| false);
    let s = &swarm.sessions[0];
    let lens: Vec<usize> = lines.iter().map(Vec::len).collect();
    let mut seen = Seen {
        lines_sent: lines.len(),
        lines_echoed: lines_echoed(&lens, s.echoed, s.mismatch.as_ref().map(|m| m.offset)),
        session_ok: s.ok(),
        bytes_sent: s.sent,
        bytes_echoed: s.echoed,
        slowest_echo_ms: s.expect_waits.iter().max().copied().unwrap_or_default().as_millis() as u64,
        client: String::new(),
        death: None,
        // Whether the close (a FIN, or a reset when the next line crossed it) came after a
        // whole line: the same story whichever of the two the timing gave.
        closed_after_echo: matches!(s.end, Some(SessionEnd::ClosedEarly | SessionEnd::Reset))
            && s.mismatch.is_none()
            && lens.iter().scan(0u64, |acc, &l| { *acc += l as u64; Some(*acc) }).any(|end| end == s.echoed),
    };
    if !seen.all_back() {
        seen.client = describe(s, t.serve);
        seen.death = death_note(srv);
    }
    judge(&seen)
}

/// How many of the lines (of these lengths, sent one after another) came back whole and
/// right, given the bytes echoed and the offset of the first wrong byte, if any.
fn lines_echoed(lens: &[usize], echoed: u64, mismatch_at: Option<u64>) -> usize {
    let mut good = 0usize;
    let mut off = 0u64;
    for &len in lens {
        off += len as u64;
        if echoed >= off && mismatch_at.is_none_or(|m| m >= off) {
            good += 1;
        }
    }
    good
}

/// What the client saw.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub lines_sent: usize,
    /// Lines that came back whole and byte-exact.
    pub lines_echoed: usize,
    /// Whether the client's session ended without a fault.
    pub session_ok: bool,
    pub bytes_sent: u64,
    pub bytes_echoed: u64,
    pub slowest_echo_ms: u64,
    /// What happened to the client, in words (asked only when a line did not come back).
    pub client: String,
    /// How the server died, if it did (asked only when a line did not come back).
    pub death: Option<String>,
    /// The server closed (or reset) the connection right after a line it echoed exactly: the
    /// lines after it were never answered, not wrongly echoed.
    pub closed_after_echo: bool,
}

impl Seen {
    fn all_back(&self) -> bool {
        self.session_ok && self.lines_echoed == self.lines_sent
    }
}

/// The verdict from what the client saw: points for the share of lines echoed.
pub(crate) fn judge(seen: &Seen) -> Outcome {
    let ev = json!({
        "lines_sent": seen.lines_sent,
        "lines_echoed": seen.lines_echoed,
        "bytes_sent": seen.bytes_sent,
        "bytes_echoed": seen.bytes_echoed,
        "slowest_echo_ms": seen.slowest_echo_ms,
    });
    if seen.all_back() {
        return Outcome::pass(format!("All {} lines came back exactly.", seen.lines_sent), ev);
    }
    // Every line came back, and then something more (extra bytes, a reset): the echo was not
    // exact, so not every line earned its share.
    let every_line_back = seen.lines_echoed >= seen.lines_sent;
    let mut fb = if seen.closed_after_echo && !every_line_back {
        let k = seen.lines_echoed;
        format!(
            "The first {k} of {} lines came back exactly; after that the server closed the \
             connection, so lines {}–{} were never answered. The server must keep echoing until \
             the client closes.",
            seen.lines_sent,
            k + 1,
            seen.lines_sent
        )
    } else if every_line_back {
        format!(
            "All {} lines came back, but then the client {}.",
            seen.lines_sent, seen.client
        )
    } else {
        format!(
            "Line {} of {} did not come back right: the client {}.",
            seen.lines_echoed + 1,
            seen.lines_sent,
            seen.client
        )
    };
    if let Some(n) = &seen.death {
        fb.push(' ');
        fb.push_str(n);
    }
    if !seen.closed_after_echo || every_line_back {
        fb.push_str(" An echo server must write back every byte it reads, in order.");
    }
    let exact_lines = seen.lines_echoed.min(seen.lines_sent.saturating_sub(1));
    Outcome::fail(exact_lines as f64 / seen.lines_sent.max(1) as f64, fb, ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn seen(sent: usize, echoed: usize, ok: bool, death: Option<&str>) -> Seen {
        Seen {
            lines_sent: sent,
            lines_echoed: echoed,
            session_ok: ok,
            bytes_sent: 400,
            bytes_echoed: 120,
            slowest_echo_ms: 3,
            client: "waited 2.0 s and got no complete echo (120 of 400 bytes came back)".into(),
            death: death.map(str::to_string),
            closed_after_echo: false,
        }
    }

    #[test]
    fn a_close_after_an_exact_echo_counts_the_lines_back_and_blames_no_line() {
        let s = Seen {
            closed_after_echo: true,
            ..seen(10, 7, false, None)
        };
        let o = judge(&s);
        assert_eq!(o.status, Status::Fail);
        assert!(
            o.feedback.starts_with("The first 7 of 10 lines came back exactly; after that the server closed"),
            "{}",
            o.feedback
        );
        assert!(o.feedback.contains("lines 8–10 were never answered"), "{}", o.feedback);
        assert!(!o.feedback.contains("did not come back right"));
        assert!((o.fraction - 0.7).abs() < 1e-9, "7 lines earned: {}", o.fraction);
    }

    #[test]
    fn every_line_back_passes_with_full_points() {
        let o = judge(&seen(10, 10, true, None));
        assert_eq!(o.status, Status::Pass);
        assert_eq!(o.fraction, 1.0);
        assert_eq!(o.feedback, "All 10 lines came back exactly.");
        assert_eq!(o.evidence["slowest_echo_ms"], 3);
    }

    #[test]
    fn a_missing_line_names_it_and_earns_the_share_echoed() {
        let o = judge(&seen(10, 3, false, None));
        assert_eq!(o.status, Status::Fail);
        assert!((o.fraction - 0.3).abs() < 1e-9);
        assert!(o.feedback.starts_with("Line 4 of 10 did not come back right: the client waited 2.0 s"), "{}", o.feedback);
        assert!(o.feedback.ends_with("write back every byte it reads, in order."));
        assert!(!o.feedback.contains("server process"), "no death without one: {}", o.feedback);
    }

    #[test]
    fn a_fault_after_the_last_line_still_fails() {
        // Every line came back, then the client saw a fault (extra bytes, a reset).
        let o = judge(&seen(10, 10, false, None));
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.contains("the client waited 2.0 s"), "{}", o.feedback);
        // It says what was seen: no line past the last is blamed, and a fail is never worth
        // full points.
        assert!(o.feedback.starts_with("All 10 lines came back, but then"), "{}", o.feedback);
        assert!(!o.feedback.contains("Line 11"), "{}", o.feedback);
        assert_eq!(o.fraction, 0.9);
    }

    #[test]
    fn a_death_is_told_between_what_the_client_saw_and_the_advice() {
        let o = judge(&seen(10, 0, false, Some("The server process was killed by SIGSEGV during this check.")));
        assert_eq!(o.fraction, 0.0);
        assert!(o.feedback.contains("came back). The server process was killed by SIGSEGV during this check. An echo"), "{}", o.feedback);
    }

    #[test]
    fn lines_count_up_to_the_first_wrong_byte_or_the_last_byte_echoed() {
        let lens = [5, 5, 5];
        assert_eq!(lines_echoed(&lens, 15, None), 3);
        assert_eq!(lines_echoed(&lens, 14, None), 2);
        assert_eq!(lines_echoed(&lens, 15, Some(7)), 1);
        assert_eq!(lines_echoed(&lens, 15, Some(10)), 2, "a wrong byte just after line 2 spares it");
        assert_eq!(lines_echoed(&lens, 0, None), 0);
    }
}
