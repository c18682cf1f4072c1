//! Renderers: YAML (the default), JSON, and a human summary.

use super::{Report, Status};

/// The report a TA reads. Without the checks' timelines: hundreds of timed events per check
/// would bury the verdicts and evidence, and the student page draws them (`--output r.html`)
/// from the same run. JSON, the format programs read, carries them.
pub fn yaml(report: &Report) -> String {
    let shown;
    let report = if report.checks.iter().any(|c| c.timeline.is_some()) {
        let mut r = report.clone();
        for c in &mut r.checks {
            c.timeline = None;
        }
        shown = r;
        &shown
    } else {
        report
    };
    serde_saphyr::to_string(report).expect("a report always serializes")
}

pub fn json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).expect("a report always serializes");
    s.push('\n');
    s
}

/// One line per check and the total; feedback of failed checks indented below.
pub fn human(report: &Report, with_feedback: bool) -> String {
    let mut s = String::new();
    let width = report.checks.iter().map(|c| c.id.len()).max().unwrap_or(10);
    s.push_str(&format!(
        "echograde {} — rubric {} — server model: {}\n",
        report.echograde,
        report.rubric,
        report.server.model.as_str()
    ));
    for c in &report.checks {
        let mark = match c.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
            Status::Skipped => "SKIP",
        };
        s.push_str(&format!(
            "  {mark:<5} {:<width$}  {:>6} / {:<4} {}\n",
            c.id,
            fmt_score(c.score),
            fmt_score(c.max_score),
            c.title
        ));
        if with_feedback && c.status != Status::Pass {
            for line in textwrap(&c.feedback, 90) {
                s.push_str(&format!("          {line}\n"));
            }
        }
    }
    s.push_str(&format!(
        "  total {} / {}   ({:.1} s, seed {})\n",
        fmt_score(report.score),
        fmt_score(report.max_score),
        report.duration_s,
        report.seed
    ));
    if let Some(e) = &report.error {
        s.push_str(&format!("  grader error: {e}\n"));
    }
    s
}

fn fmt_score(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

fn textwrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.lines() {
        let mut cur = String::new();
        for word in para.split_whitespace() {
            if !cur.is_empty() && cur.len() + 1 + word.len() > width {
                lines.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
        lines.push(cur);
    }
    lines
}
