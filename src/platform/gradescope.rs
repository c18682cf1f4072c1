//! Gradescope: the `results.json` of Gradescope's autograder specification.
//!
//! Top level: `score`, `execution_time` (whole seconds), `output` (the model the grader saw and
//! the summary), `output_format`, `stdout_visibility` and `extra_data` (the grader's version,
//! rubric, seed, maximum score); one test per check with `name`, `score`, `max_score`,
//! `status` (`passed`/`failed`), `output` (the feedback, the key evidence and the server's
//! output, as plain text) and `visibility`. Only renders: every verdict comes from the
//! [`Report`]. `graders/gradescope/results.schema.json` is the spec's schema; tests validate
//! against it.

use super::submission::{parts_of, BUILD_ID, PART_SEPARATOR};
use crate::report::{Report, Status};
use serde_json::{json, Value};

/// Who sees a test (Gradescope's `visibility` values).
pub const VISIBILITIES: &[&str] = &["visible", "hidden", "after_due_date", "after_published"];

/// How long one evidence value may be in a test's output.
const EVIDENCE_VALUE_MAX: usize = 600;

/// The results.json for a report. `visibility` applies to every test.
pub fn render(report: &Report, visibility: &str) -> String {
    let tests: Vec<Value> = report
        .checks
        .iter()
        .map(|c| {
            let passed = match c.status {
                Status::Pass => true,
                Status::Fail | Status::Error => false,
                Status::Skipped => c.score >= c.max_score,
            };
            let title = c
                .id
                .split_once(PART_SEPARATOR)
                .and_then(|(part, _)| c.title.strip_prefix(&format!("{part}: ")))
                .unwrap_or(&c.title);
            let mut output = String::new();
            if c.status == Status::Error {
                output.push_str("The grader could not run this check (its own failure, not necessarily your server's):\n");
            }
            if c.status == Status::Skipped {
                output.push_str("Skipped: ");
            }
            output.push_str(c.feedback.trim_end());
            output.push('\n');
            let ev = evidence_text(&c.evidence);
            if !ev.is_empty() && c.id != BUILD_ID {
                output.push_str("\nWhat the grader observed:\n");
                output.push_str(&ev);
            }
            if let Some(o) = &c.server_output {
                for (name, tail) in [("standard output", &o.stdout_tail), ("standard error", &o.stderr_tail)] {
                    if !tail.is_empty() {
                        output.push_str(&format!("\nYour server's {name} (last lines):\n{}", tail));
                        if !tail.ends_with('\n') {
                            output.push('\n');
                        }
                    }
                }
            }
            json!({
                "name": format!("{}: {}", c.id, title),
                "score": c.score,
                "max_score": c.max_score,
                "status": if passed { "passed" } else { "failed" },
                "output": output,
                "visibility": visibility,
            })
        })
        .collect();
    let mut v = json!({
        "score": report.score,
        "execution_time": report.duration_s.max(0.0).ceil() as u64,
        "output": summary(report),
        "output_format": "text",
        "stdout_visibility": "hidden",
        "extra_data": {
            "echograde": report.echograde,
            "rubric": report.rubric,
            "seed": report.seed,
            "max_score": report.max_score,
            "model": report.server.model,
        },
        "tests": tests,
    });
    if let Some(e) = &report.error {
        v["extra_data"]["error"] = Value::String(e.clone());
    }
    let mut s = serde_json::to_string_pretty(&v).expect("results serialize");
    s.push('\n');
    s
}

/// The top-level `output`: what the grader saw and the score, in a few lines.
pub fn summary(report: &Report) -> String {
    let mut s = format!(
        "echograde {} — rubric {}\n",
        report.echograde, report.rubric
    );
    let parts = parts_of(report);
    if parts.is_empty() {
        s.push_str(&format!(
            "Server model observed: {}\n",
            describe_model(report.server.model.as_str())
        ));
    } else {
        for (name, model, score, max) in &parts {
            s.push_str(&format!(
                "{name}: {} — {} / {}\n",
                describe_model(model),
                fmt(*score),
                fmt(*max)
            ));
        }
    }
    if let Some(b) = report.checks.iter().find(|c| c.id == BUILD_ID) {
        if b.status != Status::Pass {
            s.push_str("The build failed: see the `build` test for the compiler's messages.\n");
        }
    }
    s.push_str(&format!(
        "Score: {} / {}\n",
        fmt(report.score),
        fmt(report.max_score)
    ));
    let not_passed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.status != Status::Pass && c.id != BUILD_ID)
        .map(|c| format!("{} ({} / {})", c.id, fmt(c.score), fmt(c.max_score)))
        .collect();
    if !not_passed.is_empty() {
        s.push_str(&format!("Not passed: {}\n", not_passed.join(", ")));
    }
    s.push_str(&format!(
        "Seed {} (`grade --seed {}` repeats this run's payloads).\n",
        report.seed, report.seed
    ));
    if let Some(e) = &report.error {
        s.push_str(&format!("Grader error: {e}\n"));
    }
    s
}

fn describe_model(m: &str) -> String {
    match m {
        "process" => "process-based (a child process per client)".into(),
        "thread" => "thread-based (threads serve the clients)".into(),
        "event" => "event-based (one thread multiplexing the clients)".into(),
        "iterative" => "iterative (one client at a time)".into(),
        "unknown" => "unknown (no client was served)".into(),
        other => other.into(),
    }
}

/// `key: value` lines, values as compact JSON (strings bare), each bounded.
pub fn evidence_text(evidence: &Value) -> String {
    let Some(map) = evidence.as_object() else {
        return String::new();
    };
    let mut s = String::new();
    for (k, v) in map {
        let mut val = match v {
            Value::String(t) => t.clone(),
            other => other.to_string(),
        };
        if val.chars().count() > EVIDENCE_VALUE_MAX {
            val = val.chars().take(EVIDENCE_VALUE_MAX).collect::<String>() + " …";
        }
        let val = val.replace('\n', "\n    ");
        s.push_str(&format!("  {k}: {val}\n"));
    }
    s
}

pub(crate) fn fmt(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// The results.json when no report could be made (bad configuration, the grader failed):
/// score 0 and the reason, so Gradescope never shows an empty page.
pub fn fallback(message: &str) -> String {
    let v = json!({
        "score": 0.0,
        "execution_time": 0,
        "output": format!(
            "The autograder could not grade this submission: {message}\n\
             This is a failure of the grading setup, not a verdict on your code: tell your course staff."
        ),
        "output_format": "text",
        "stdout_visibility": "hidden",
        "extra_data": {"echograde": env!("CARGO_PKG_VERSION"), "error": message},
        "tests": [],
    });
    let mut s = serde_json::to_string_pretty(&v).expect("results serialize");
    s.push('\n');
    s
}
