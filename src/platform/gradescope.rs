//! Gradescope: the `results.json` of Gradescope's autograder specification.
//!
//! Top level: `score`, `execution_time` (whole seconds), `output` (the model the grader saw and
//! the summary), `output_format`, `stdout_visibility` and `extra_data` (the grader's version,
//! rubric, seed, maximum score); one test for the build, if any, and one per check with
//! `name`, `score`, `max_score`, `status` (`passed`/`failed`), `output` (the feedback, the key
//! evidence and the server's output, as plain text) and `visibility`. Only renders: every
//! verdict comes from the [`Report`]. `graders/gradescope/results.schema.json` is the spec's
//! schema; tests validate against it.

use crate::report::render::fmt_score as fmt;
use crate::report::{BuildReport, CheckEntry, Model, Report, Status};
use serde_json::{json, Value};

/// Who sees a test (Gradescope's `visibility` values).
pub const VISIBILITIES: &[&str] = &["visible", "hidden", "after_due_date", "after_published"];

/// How long one evidence value may be in a test's output.
const EVIDENCE_VALUE_MAX: usize = 600;

/// The results.json for a report. `visibility` applies to every test.
pub fn render(report: &Report, visibility: &str) -> String {
    let tests: Vec<Value> = report
        .build
        .iter()
        .map(|b| build_test(b, visibility))
        .chain(report.entries().map(|e| check_test(e, visibility)))
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
            "model": report.model(),
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

fn build_test(b: &BuildReport, visibility: &str) -> Value {
    let mut output = b.feedback.trim_end().to_string();
    output.push('\n');
    json!({
        "name": format!("{}: {}", crate::platform::submission::BUILD_ID, b.title),
        "score": 0.0,
        "max_score": 0.0,
        "status": if b.status == Status::Pass { "passed" } else { "failed" },
        "output": output,
        "visibility": visibility,
    })
}

fn check_test(e: CheckEntry, visibility: &str) -> Value {
    let c = e.check;
    let passed = match c.status {
        Status::Pass => true,
        Status::Fail | Status::Error => false,
        Status::Skipped => c.score >= c.max_score,
    };
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
    if !ev.is_empty() {
        output.push_str("\nWhat the grader observed:\n");
        output.push_str(&ev);
    }
    if let Some(o) = &c.server_output {
        for (name, tail) in [
            ("standard output", &o.stdout_tail),
            ("standard error", &o.stderr_tail),
        ] {
            if !tail.is_empty() {
                output.push_str(&format!("\nYour server's {name} (last lines):\n{tail}"));
                if !tail.ends_with('\n') {
                    output.push('\n');
                }
            }
        }
    }
    json!({
        "name": format!("{}: {}", e.qualified_id(), c.title),
        "score": c.score,
        "max_score": c.max_score,
        "status": if passed { "passed" } else { "failed" },
        "output": output,
        "visibility": visibility,
    })
}

/// The top-level `output`: what the grader saw and the score, in a few lines.
pub fn summary(report: &Report) -> String {
    let mut s = format!(
        "echograde {} — rubric {}\n",
        report.echograde, report.rubric
    );
    for p in &report.parts {
        match &p.name {
            None => s.push_str(&format!(
                "Server model observed: {}\n",
                describe_model(p.server.model)
            )),
            Some(name) => s.push_str(&format!(
                "{name}: {} — {} / {}\n",
                describe_model(p.server.model),
                fmt(p.score),
                fmt(p.max_score)
            )),
        }
    }
    if report
        .build
        .as_ref()
        .is_some_and(|b| b.status != Status::Pass)
    {
        s.push_str("The build failed: see the `build` test for the compiler's messages.\n");
    }
    s.push_str(&format!(
        "Score: {} / {}\n",
        fmt(report.score),
        fmt(report.max_score)
    ));
    let not_passed: Vec<String> = report
        .entries()
        .filter(|e| e.check.status != Status::Pass)
        .map(|e| {
            format!(
                "{} ({} / {})",
                e.qualified_id(),
                fmt(e.check.score),
                fmt(e.check.max_score)
            )
        })
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

fn describe_model(m: Model) -> &'static str {
    match m {
        Model::Process => "process-based (a child process per client)",
        Model::Thread => "thread-based (threads serve the clients)",
        Model::Event => "event-based (one thread multiplexing the clients)",
        Model::Iterative => "iterative (one client at a time)",
        Model::Unknown => "unknown (no client was served)",
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
