//! Renderers: YAML (the default), JSON, and a human summary. Like every format, pure views of
//! the [`Report`]: nothing here decides or defaults a verdict.

use super::{BuildReport, CheckEntry, Report, Status};

/// The report a TA reads. Without the checks' timelines: hundreds of timed events per check
/// would bury the verdicts and evidence, and the student page draws them (`--output r.html`)
/// from the same run. JSON, the format programs read, carries them.
pub fn yaml(report: &Report) -> String {
    let shown;
    let report = if report.entries().any(|e| e.check.timeline.is_some()) {
        let mut r = report.clone();
        for c in r.parts.iter_mut().flat_map(|p| p.checks.iter_mut()) {
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

/// The word a summary line starts with.
pub fn mark(status: Status) -> &'static str {
    match status {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Error => "ERROR",
        Status::Skipped => "SKIP",
    }
}

/// A line of a summary: the build or one check, with the id a reader sees.
pub struct Line<'r> {
    pub id: String,
    pub title: &'r str,
    pub status: Status,
    pub score: f64,
    pub max_score: f64,
    pub feedback: &'r str,
}

impl<'r> Line<'r> {
    fn build(b: &'r BuildReport) -> Line<'r> {
        Line {
            id: crate::platform::submission::BUILD_ID.to_string(),
            title: &b.title,
            status: b.status,
            score: 0.0,
            max_score: 0.0,
            feedback: &b.feedback,
        }
    }

    fn check(e: CheckEntry<'r>) -> Line<'r> {
        Line {
            id: e.qualified_id(),
            title: &e.check.title,
            status: e.check.status,
            score: e.check.score,
            max_score: e.check.max_score,
            feedback: &e.check.feedback,
        }
    }
}

/// The build's line, if any, then every check's, in report order.
pub fn lines(report: &Report) -> Vec<Line<'_>> {
    report
        .build
        .iter()
        .map(Line::build)
        .chain(report.entries().map(Line::check))
        .collect()
}

/// One line per check and the total; feedback of failed checks indented below.
pub fn human(report: &Report, with_feedback: bool) -> String {
    let lines = lines(report);
    let width = lines.iter().map(|l| l.id.len()).fold(0, usize::max);
    let mut s = format!(
        "echograde {} — rubric {} — server model: {}\n",
        report.echograde,
        report.rubric,
        report.model().as_str()
    );
    for l in &lines {
        s.push_str(&format!(
            "  {:<5} {:<width$}  {:>6} / {:<4} {}\n",
            mark(l.status),
            l.id,
            fmt_score(l.score),
            fmt_score(l.max_score),
            l.title
        ));
        if with_feedback && l.status != Status::Pass {
            for line in textwrap(l.feedback, 90) {
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

/// A score as people write it: `8`, `2.50`.
pub fn fmt_score(x: f64) -> String {
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
