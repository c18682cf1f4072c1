//! `echo.large`: the bytes a line reader gets wrong. Four cases, each its own connection:
//! long lines (up to 64 KiB and across 8 KiB buffer boundaries), many lines in one write (all
//! must come back without the client sending more), arbitrary bytes with NUL, and a last line
//! without newline before the client half-closes. Partial points: the share of cases passed.

use super::{common::*, in_range, Cx, Outcome};
use crate::client::{payload, RunLimits, Session, SessionEnd, Step, Swarm};
use crate::report::Model;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const TITLE: &str = "Echoes long lines, pipelined lines, NUL bytes and an unterminated last line";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// The longest line sent, in bytes.
    pub max_line: u32,
    /// How many lines go in the one pipelined write.
    pub pipelined: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            max_line: 70_000,
            pipelined: 50,
        }
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        in_range("max_line", self.max_line, 16, 4 << 20)?;
        in_range("pipelined", self.pipelined, 2, 10_000)
    }
}

struct Case {
    name: &'static str,
    lines: Vec<Vec<u8>>,
    steps: Vec<Step>,
}

/// Where a case's echo first went wrong, measured from the session.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    /// 1-based line where it went wrong, its length, and the offset within it.
    line: usize,
    line_len: usize,
    offset: u64,
    /// What came back from there (empty when nothing more came).
    got: Vec<u8>,
    /// Whether the connection was closed (FIN or reset) before the echo was complete.
    closed: bool,
    /// Complete lines echoed before the failure.
    lines_before: usize,
}

impl Failure {
    fn of(s: &crate::client::Session, lines: &[Vec<u8>]) -> Failure {
        let bad_at = s.mismatch.as_ref().map_or(s.echoed, |m| m.offset);
        let (mut line, mut offset, mut acc) = (lines.len(), 0u64, 0u64);
        for (i, l) in lines.iter().enumerate() {
            if bad_at < acc + l.len() as u64 {
                line = i + 1;
                offset = bad_at - acc;
                break;
            }
            acc += l.len() as u64;
        }
        Failure {
            line,
            line_len: lines.get(line.saturating_sub(1)).map_or(0, |l| l.len()),
            offset,
            got: s.mismatch.as_ref().map(|m| m.got.clone()).unwrap_or_default(),
            closed: matches!(s.end, Some(SessionEnd::ClosedEarly | SessionEnd::Reset)),
            lines_before: line.saturating_sub(1),
        }
    }

    /// What the measured shape points to, in words; `None` when it fits no known shape.
    fn hint(&self, case: &Case, model: Model) -> Option<String> {
        self.nul_hint(case)
            .or_else(|| self.empty_line_hint())
            .or_else(|| self.cut_line_hint(case))
            .or_else(|| self.pipelined_hint(case, model))
    }

    /// A NUL byte treated as the end of a C string, or one written too many.
    fn nul_hint(&self, case: &Case) -> Option<String> {
        let lines = &case.lines;
        let prev_end = self.offset == 0 && self.line > 1;
        let at_nul = lines
            .get(self.line.saturating_sub(1))
            .and_then(|l| l.get(self.offset as usize))
            == Some(&0);
        if at_nul {
            return Some(format!(
                "The echo of line {} went wrong exactly at a NUL byte (offset {}): the server \
                 treats the line as a C string. Use the byte count read() returned, never \
                 strlen(), and write exactly that many bytes.",
                self.line, self.offset
            ));
        }
        if self.got.first() == Some(&0) && prev_end {
            return Some(format!(
                "One extra NUL byte came back after line {}: the server writes one byte more \
                 than the line holds, as when the length written counts the string's NUL \
                 terminator (strlen + 1, or sizeof a buffer). Write exactly the bytes read.",
                self.line - 1
            ));
        }
        None
    }

    /// A loop that ends on a one-byte line.
    fn empty_line_hint(&self) -> Option<String> {
        if self.line_len == 1 && self.offset == 0 && self.closed {
            return Some(
                "The server closed the connection when the line was a single byte (\"\\n\"): \
                 a loop such as `while ((n = rio_readlineb(...)) > 1)` ends on an empty line. \
                 Loop while n > 0: only 0 (EOF) ends a connection."
                    .into(),
            );
        }
        None
    }

    /// A line cut short: its rest lost, or the next line in its place.
    fn cut_line_hint(&self, case: &Case) -> Option<String> {
        let lines = &case.lines;
        if self.offset > 0 && self.offset < self.line_len as u64 && self.line_len > 1 {
            let rest_dropped = lines
                .get(self.line)
                .is_some_and(|next| !self.got.is_empty() && next.starts_with(&self.got[..self.got.len().min(next.len())]));
            if self.got.is_empty() && !self.closed {
                return Some(format!(
                    "The echo of line {} ({} bytes) stopped after {} bytes and the rest of that \
                     line never came back: what the server read past that point was lost (a \
                     {}-byte buffer filled and the rest dropped, or a line reader's read-ahead \
                     thrown away). Keep reading until the newline, writing each piece.",
                    self.line, self.line_len, self.offset, self.offset
                ));
            }
            if rest_dropped {
                return Some(format!(
                    "The echo of line {} ({} bytes) stopped after {} bytes and the next line came \
                     back instead: the rest of the line was dropped, as when a line is read into \
                     a {}-byte buffer once and what did not fit is thrown away. Keep reading \
                     until the newline, writing each piece.",
                    self.line, self.line_len, self.offset, self.offset
                ));
            }
        }
        None
    }

    /// Pipelined lines lost after the first: a line reader's read-ahead thrown away.
    fn pipelined_hint(&self, case: &Case, model: Model) -> Option<String> {
        let lines = &case.lines;
        if case.name == PIPELINED && self.offset == 0 && self.lines_before >= 1 && !self.closed {
            if self.got.is_empty() {
                return Some(if model == Model::Event {
                    format!(
                        "Only the first {} of the {} lines sent in one write came back, and the \
                         rest never did while the client waited. If your event loop reads \
                         through a buffered line reader (rio) and then waits in select/poll \
                         again, the lines left in the reader's buffer are never echoed: the \
                         kernel has nothing more to report. Process every complete line you \
                         have buffered before going back to select, or read raw bytes without a \
                         line reader.",
                        self.lines_before,
                        lines.len()
                    )
                } else {
                    format!(
                        "Only the first {} of the {} lines sent in one write came back, and the \
                         rest never did while the client waited: the lines that arrived in the \
                         same read as the first were lost, as when a buffered line reader (rio) \
                         is set up anew for each line and what it had read ahead is thrown \
                         away. Initialise the reader once per connection.",
                        self.lines_before,
                        lines.len()
                    )
                });
            }
            let skipped_to = lines.iter().skip(self.line).position(|l| {
                l.starts_with(&self.got[..self.got.len().min(l.len())])
            });
            if let Some(k) = skipped_to {
                return Some(format!(
                    "After line {}, line {} came back where line {} was expected: the lines in \
                     between were lost, as when a buffered line reader (rio) is set up anew for \
                     each line and what it had read ahead is thrown away. Initialise the reader \
                     once per connection.",
                    self.lines_before,
                    self.line + k + 1,
                    self.line
                ));
            }
        }
        None
    }
}

const PIPELINED: &str = "many lines in one write";

/// What a case requires, said when it fails without wrong bytes (a stall or a close) and no
/// measured shape explains more. Wrong bytes get no advice beyond the difference itself: an
/// upper-casing server's long lines are not "too long".
fn generic_advice(f: &Failure, name: &str) -> Option<String> {
    if !f.got.is_empty() {
        return None;
    }
    Some(match name {
        "long lines" => "Lines longer than your buffer must still come back whole: keep reading and writing until the newline, and handle short writes (loop until every byte is written).".into(),
        PIPELINED => "The client sent many lines in one write and waited for them all: every complete line the server has read must be echoed without waiting for more input.".into(),
        "arbitrary bytes (NUL included)" => "Bytes are not C strings: a line may contain NUL; every byte read must be written back.".into(),
        _ => "When the client half-closes (EOF) after a line with no newline, the bytes already read must still be echoed before the server closes the connection.".into(),
    })
}

/// The longest this check may wait, its deadlines added up. Start, then four cases of at most CASE_SERVES × serve each.
pub fn bound(_p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + t.serve * CASE_SERVES * 4
}

/// How long one case may take, in `serve` deadlines: a correct server that waits 200 ms before
/// each line still echoes the 50 pipelined lines (10 s) within it. Stuck is no progress for
/// one `serve`; this bounds a server that makes progress slowly (a byte at a time).
const CASE_SERVES: u32 = 6;

/// The four cases, their lines from the check's random source.
fn cases(rng: &mut rand_chacha::ChaCha8Rng, p: &Params) -> Vec<Case> {
    let max = p.max_line as usize;
    let mut sizes: Vec<usize> = [1usize, 100, 8191, 8192, 8193, 16385, 65536, max]
        .into_iter()
        .filter(|&n| n <= max)
        .collect();
    sizes.dedup();
    let long: Vec<Vec<u8>> = sizes.iter().map(|&n| payload::text_line(rng, n)).collect();
    let piped: Vec<Vec<u8>> = (0..p.pipelined).map(|i| payload::tagged_line(rng, &format!("line{i}"))).collect();
    let binary: Vec<Vec<u8>> = [256usize, 4096, 9000].iter().map(|&n| payload::binary_line(rng, n.min(max).max(2))).collect();
    let tail = vec![b"a last line that has no newline".to_vec()];
    vec![
        Case {
            name: "long lines",
            steps: long.iter().flat_map(|l| [Step::Send(l.clone()), Step::Expect]).collect(),
            lines: long,
        },
        Case {
            name: PIPELINED,
            steps: vec![Step::Send(piped.concat()), Step::Expect],
            lines: piped,
        },
        Case {
            name: "arbitrary bytes (NUL included)",
            steps: binary.iter().flat_map(|l| [Step::Send(l.clone()), Step::Expect]).collect(),
            lines: binary,
        },
        Case {
            name: "last line without newline before half-close",
            steps: vec![Step::Send(tail[0].clone()), Step::ShutdownWrite, Step::Expect],
            lines: tail,
        },
    ]
}

pub fn run(cx: &mut Cx, p: &Params) -> Outcome {
    let t = cx.timing;
    let model = cx.model.model;
    let mut rng = cx.rng.clone();
    let rng = &mut rng;
    let cases = cases(rng, p);
    let total_cases = cases.len();
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    let mut results = Vec::new();
    let mut failures = Vec::new();
    // Every case on its own connection, and every case runs: one that fails (even one that
    // gets its connection closed) does not decide the others.
    for case in cases {
        let mut swarm = Swarm::new(srv.addr());
        let mut steps = case.steps.clone();
        steps.push(Step::Close);
        swarm.add(Session::new(case.name, steps));
        // Stuck is no progress for `serve`; a slow server that keeps echoing gets the time it
        // needs (this check grades bytes, not speed) up to a bound.
        swarm.run(RunLimits { idle: t.serve, overall: t.serve * CASE_SERVES }, |_| false);
        let s = &swarm.sessions[0];
        let ok = s.ok();
        results.push(json!({
            "case": case.name,
            "pass": ok,
            "lines": case.lines.len(),
            "bytes_sent": s.sent,
            "bytes_echoed": s.echoed,
        }));
        if ok {
            continue;
        }
        let f = Failure::of(s, &case.lines);
        // The measured shape the hint rests on, in the evidence beside the case.
        if let Some(r) = results.last_mut() {
            r["first_failure"] = json!({
                "line": f.line,
                "line_bytes": f.line_len,
                "offset_in_line": f.offset,
                "bytes_back_from_there": f.got.len(),
                "connection_closed": f.closed,
            });
        }
        let what = format!(
            "{}: line {} of {} ({} bytes), from byte {}: the client {}.",
            case.name,
            f.line.max(1),
            case.lines.len(),
            f.line_len,
            f.offset,
            describe(s, t.serve),
        );
        failures.push((what, f.hint(&case, model).or_else(|| generic_advice(&f, case.name)), f.closed || s.connected_at.is_none()));
        if srv.main_exit().is_some() {
            break;
        }
    }
    // A case cut short by the server's death says only what happened: advice would guess.
    let died = srv.main_exit().is_some();
    let failures: Vec<String> = failures
        .into_iter()
        .map(|(what, advice, cut)| match advice {
            Some(a) if !(died && cut) => format!("{what} {a}"),
            _ => what,
        })
        .collect();
    let death = if failures.is_empty() { None } else { death_note(srv) };
    judge(&failures, results, total_cases, death)
}

/// The verdict: each failed case's sentence (with its advice), the share of cases passed.
fn judge(
    failures: &[String],
    results: Vec<serde_json::Value>,
    total_cases: usize,
    death: Option<String>,
) -> Outcome {
    let passed = results.iter().filter(|r| r["pass"] == true).count();
    let run = results.len();
    let ev = json!({ "cases": results });
    if failures.is_empty() {
        return Outcome::pass(format!("All {passed} cases came back byte-exact."), ev);
    }
    // No byte back at all is one fact, said once: with nothing to compare, no case has a
    // shape to diagnose (a "NUL at offset 0" of an empty reply is no NUL bug).
    let nothing_back = run > 0 && results.iter().all(|r| r["bytes_echoed"] == 0 && r["pass"] == false);
    let mut fb = if nothing_back {
        format!(
            "No byte came back in any of the {run} case(s): the server sent nothing to these clients \
             (see echo.basic), so there is no echo here to judge."
        )
    } else {
        failures.join("\n")
    };
    if run < total_cases {
        fb.push_str(&format!(
            "\nThe other {} case(s) were not run: the server had exited.",
            total_cases - run
        ));
    }
    if let Some(n) = death {
        fb.push('\n');
        fb.push_str(&n);
    }
    Outcome::fail(passed as f64 / total_cases as f64, fb, ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &'static str, lines: Vec<Vec<u8>>) -> Case {
        Case { name, lines, steps: Vec::new() }
    }

    fn failure(line: usize, line_len: usize, offset: u64, got: &[u8], closed: bool) -> Failure {
        Failure { line, line_len, offset, got: got.to_vec(), closed, lines_before: line - 1 }
    }

    #[test]
    fn nothing_back_is_said_once_without_shape_hints() {
        let results = vec![
            json!({"case": "long lines", "pass": false, "bytes_echoed": 0}),
            json!({"case": "arbitrary bytes (NUL included)", "pass": false, "bytes_echoed": 0}),
        ];
        let failures = vec!["long lines: ... NUL".to_string(), "arbitrary: ... NUL byte".to_string()];
        let o = judge(&failures, results, 2, None);
        assert_eq!(o.status, crate::report::Status::Fail);
        assert!(o.feedback.starts_with("No byte came back in any of the 2 case(s)"), "{}", o.feedback);
        assert!(!o.feedback.contains("NUL"), "no shape hint: {}", o.feedback);
        // One case with bytes back keeps the per-case sentences.
        let results = vec![
            json!({"case": "long lines", "pass": false, "bytes_echoed": 3}),
            json!({"case": "arbitrary", "pass": false, "bytes_echoed": 0}),
        ];
        assert!(judge(&failures, results, 2, None).feedback.contains("NUL byte"));
    }

    #[test]
    fn an_extra_nul_after_a_line_is_named() {
        let c = case("long lines", vec![b"\n".to_vec(), vec![b'a'; 99].into_iter().chain([b'\n']).collect()]);
        let h = failure(2, 100, 0, b"\0aaa", false).hint(&c, Model::Process).unwrap();
        assert!(h.contains("One extra NUL byte came back after line 1"), "{h}");
    }

    #[test]
    fn a_close_on_a_one_byte_line_is_named() {
        let c = case("long lines", vec![b"\n".to_vec()]);
        let h = failure(1, 1, 0, b"", true).hint(&c, Model::Thread).unwrap();
        assert!(h.contains("single byte"), "{h}");
    }

    #[test]
    fn a_line_cut_after_n_bytes_is_named_with_n() {
        let long: Vec<u8> = vec![b'x'; 8191].into_iter().chain([b'\n']).collect();
        let c = case("long lines", vec![long]);
        let h = failure(1, 8192, 1024, b"", false).hint(&c, Model::Thread).unwrap();
        assert!(h.contains("stopped after 1024 bytes"), "{h}");
    }

    #[test]
    fn lost_pipelined_lines_get_event_loop_advice_only_for_event_servers() {
        let lines: Vec<Vec<u8>> = (0..5).map(|i| format!("line{i}\n").into_bytes()).collect();
        let c = case(PIPELINED, lines);
        let f = failure(2, 6, 0, b"", false);
        let event = f.hint(&c, Model::Event).unwrap();
        let thread = f.hint(&c, Model::Thread).unwrap();
        assert!(event.contains("select/poll"), "{event}");
        assert!(!thread.contains("select"), "{thread}");
        assert!(thread.contains("Only the first 1 of the 5 lines"), "{thread}");
    }

    #[test]
    fn wrong_bytes_of_no_known_shape_get_no_guess() {
        let c = case("long lines", vec![b"hello\n".to_vec()]);
        let f = failure(1, 6, 0, b"HELLO\n", false);
        assert_eq!(f.hint(&c, Model::Process), None);
        assert_eq!(generic_advice(&f, c.name), None);
    }
}
