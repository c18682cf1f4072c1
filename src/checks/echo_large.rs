//! `echo.large`: the bytes a line reader gets wrong. Four cases, each its own connection:
//! long lines (up to 64 KiB and across 8 KiB buffer boundaries), many lines in one write (all
//! must come back without the client sending more), arbitrary bytes with NUL, and a last line
//! without newline before the client half-closes. Partial points: the share of cases passed.

use super::{common::*, in_range, Cx, Outcome};
use crate::client::{payload, RunLimits, Session, Step, Swarm};
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
    advice: &'static str,
}

/// The longest this check may wait, its deadlines added up. Start, then four cases of at most 2 × serve each.
pub fn bound(_p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + t.serve * 2 * 4
}

pub fn run(cx: &mut Cx, p: &Params) -> Outcome {
    let t = cx.timing;
    let mut rng = cx.rng.clone();
    let rng = &mut rng;
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
    let cases = vec![
        Case {
            name: "long lines",
            steps: long.iter().flat_map(|l| [Step::Send(l.clone()), Step::Expect]).collect(),
            lines: long,
            advice: "Lines longer than your buffer must still come back whole: keep reading and writing until the newline, and handle short writes (loop until every byte is written).",
        },
        Case {
            name: "many lines in one write",
            steps: vec![Step::Send(piped.concat()), Step::Expect],
            lines: piped,
            advice: "The client sent many lines in one write and waited. If your event loop reads through a buffered line reader (rio) and then waits in select/poll again, the lines left in the reader's buffer are never echoed: the kernel has nothing more to report. This is the lecture's point about fine-grained concurrency: process every complete line you have buffered before going back to select, or read raw bytes without a line reader.",
        },
        Case {
            name: "arbitrary bytes (NUL included)",
            steps: binary.iter().flat_map(|l| [Step::Send(l.clone()), Step::Expect]).collect(),
            lines: binary,
            advice: "Bytes are not C strings: a line may contain NUL. Use the byte count read() returned, never strlen(), and write exactly that many bytes.",
        },
        Case {
            name: "last line without newline before half-close",
            steps: vec![Step::Send(tail[0].clone()), Step::ShutdownWrite, Step::Expect],
            lines: tail,
            advice: "When the client half-closes (EOF) after a line with no newline, the bytes already read must still be echoed before the server closes the connection.",
        },
    ];
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for case in cases {
        let mut swarm = Swarm::new(srv.addr());
        let mut steps = case.steps;
        steps.push(Step::Close);
        swarm.add(Session::new(case.name, steps));
        swarm.run(RunLimits { idle: t.serve, overall: t.serve * 2 }, |_| false);
        let s = &swarm.sessions[0];
        let ok = s.ok();
        let unresponsive = !ok && s.echoed == 0 && s.mismatch.is_none();
        // Which line, at which offset within it, went wrong.
        let bad_at = s.mismatch.as_ref().map(|m| m.offset).unwrap_or(s.echoed);
        let (mut line_no, mut line_off, mut acc) = (0usize, 0u64, 0u64);
        for (i, l) in case.lines.iter().enumerate() {
            if bad_at < acc + l.len() as u64 {
                line_no = i + 1;
                line_off = bad_at - acc;
                break;
            }
            acc += l.len() as u64;
        }
        results.push(json!({
            "case": case.name,
            "pass": ok,
            "lines": case.lines.len(),
            "bytes_sent": s.sent,
            "bytes_echoed": s.echoed,
        }));
        if !ok {
            failures.push(format!(
                "{}: line {} of {} ({} bytes), from byte {}: the client {}. {}",
                case.name,
                line_no.max(1),
                case.lines.len(),
                case.lines.get(line_no.saturating_sub(1)).map_or(0, |l| l.len()),
                line_off,
                describe(s, t.serve),
                case.advice
            ));
            if unresponsive {
                // The server answers nothing at all: the other cases would only wait too.
                failures.push("The remaining cases were not run: the server had stopped answering.".into());
                break;
            }
        }
    }
    let total_cases = 4;
    let passed = results.iter().filter(|r| r["pass"] == true).count();
    let ev = json!({ "cases": results });
    if failures.is_empty() {
        return Outcome::pass(format!("All {passed} cases came back byte-exact."), ev);
    }
    let mut fb = failures.join("\n");
    if let Some(n) = death_note(srv) {
        fb.push('\n');
        fb.push_str(&n);
    }
    Outcome::fail(passed as f64 / total_cases as f64, fb, ev)
}
