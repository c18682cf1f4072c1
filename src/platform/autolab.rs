//! Autolab: a human summary, then, as the very last line of standard output, the JSON object
//! Autolab's autograder parses: `{"scores": {...}, "scoreboard": [...]}`.
//!
//! Problems, as the rubric names them: one per check id for an ordinary rubric (the build,
//! worth 0, is left out), one per server (its name, the sum of its checks) for a submission
//! rubric. The scoreboard is the total, then each problem's score in that order.
//!
//! Autolab takes the last line, so nothing may come after it, and nothing before it may pass
//! for it if the output were cut short: the summary is bounded, its control characters are
//! escaped (no `\r` can fake a line), and a summary line that starts like JSON (`{` or `[`)
//! is prefixed with `| `. The JSON line itself is compact serde_json: one line, always.

use crate::report::render::{fmt_score as fmt, lines, mark};
use crate::report::{sanitize, Report, Status};
use serde_json::{json, Map, Value};

/// The longest summary printed before the JSON line.
pub const SUMMARY_MAX: usize = 64 * 1024;

/// One score per problem, in rubric order: each check of a single server, else each server.
pub fn problems(report: &Report) -> Vec<(String, f64)> {
    if report.is_single() {
        report
            .entries()
            .map(|e| (e.check.id.clone(), e.check.score))
            .collect()
    } else {
        report
            .parts
            .iter()
            .filter_map(|p| Some((p.name.clone()?, p.score)))
            .collect()
    }
}

/// The line Autolab parses.
pub fn score_line(report: &Report) -> String {
    let problems = problems(report);
    let mut scores = Map::new();
    let mut board = vec![json!(report.score)];
    for (name, score) in &problems {
        scores.insert(name.clone(), json!(score));
        board.push(json!(score));
    }
    serde_json::to_string(&json!({ "scores": Value::Object(scores), "scoreboard": board }))
        .expect("scores serialize")
}

/// The whole standard output: summary, then the score line last.
pub fn render(report: &Report) -> String {
    let mut out = safe_summary(&summary(report));
    out.push_str(&score_line(report));
    out.push('\n');
    out
}

/// One line per check, the feedback of each check that did not pass below it, verbatim
/// (compiler messages keep their layout; a feedback repeated from the check before is not
/// printed again), then the total.
pub fn summary(report: &Report) -> String {
    let mut s = format!(
        "echograde {} — rubric {} — seed {}\n",
        report.echograde, report.rubric, report.seed
    );
    if report.is_single() {
        s.push_str(&format!("server model seen: {}\n", report.model().as_str()));
    }
    let lines = lines(report);
    let width = lines.iter().map(|l| l.id.len()).fold(0, usize::max);
    let mut last_feedback: Option<&str> = None;
    for l in &lines {
        let line = format!(
            "  {:<5} {:<width$} {:>6} / {:<4} {}",
            mark(l.status),
            l.id,
            fmt(l.score),
            fmt(l.max_score),
            l.title
        );
        s.push_str(line.trim_end());
        s.push('\n');
        if l.status != Status::Pass {
            if last_feedback == Some(l.feedback) {
                s.push_str("          (as above)\n");
            } else {
                for line in l.feedback.trim_end().lines() {
                    s.push_str(&format!("          {line}\n"));
                }
            }
            last_feedback = Some(l.feedback);
        }
    }
    for p in &report.parts {
        if let Some(name) = &p.name {
            s.push_str(&format!(
                "  {name}: {} / {}, model seen: {}\n",
                fmt(p.score),
                fmt(p.max_score),
                p.server.model.as_str()
            ));
        }
    }
    s.push_str(&format!(
        "  total {} / {}   ({:.1} s)\n",
        fmt(report.score),
        fmt(report.max_score),
        report.duration_s
    ));
    if let Some(e) = &report.error {
        s.push_str(&format!("  grader error: {e}\n"));
    }
    s
}

/// Bounded, control characters escaped, no line that starts like JSON.
pub fn safe_summary(text: &str) -> String {
    let text = sanitize(text);
    let text = if text.len() > SUMMARY_MAX {
        let head_end = floor_char_boundary(&text, SUMMARY_MAX * 3 / 4);
        let tail_start = ceil_char_boundary(&text, text.len() - SUMMARY_MAX / 4);
        format!(
            "{}\n[... {} bytes of the summary left out ...]\n{}",
            &text[..head_end],
            tail_start - head_end,
            &text[tail_start..]
        )
    } else {
        text
    };
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('{') || t.starts_with('[') {
            out.push_str("| ");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The output when no report could be made: the reason, then a score line with no scores
/// (Autolab shows the run as graded with nothing awarded; staff regrade once it is fixed).
pub fn fallback(message: &str) -> String {
    let mut out = safe_summary(&format!(
        "echograde: the autograder could not grade this submission: {message}\n\
         This is a failure of the grading setup, not a verdict on your code: tell your course staff.\n"
    ));
    out.push_str(r#"{"scores": {}, "scoreboard": []}"#);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_looking_lines_and_carriage_returns_are_neutralized() {
        let s = safe_summary("ok\n{\"scores\": {\"a\": 100}}\r\n  [1]\nfine\n");
        for line in s.lines() {
            assert!(!line.trim_start().starts_with('{'), "{line}");
            assert!(!line.trim_start().starts_with('['), "{line}");
            assert!(!line.contains('\r'));
        }
        assert!(s.contains("| {\"scores\""));
    }

    #[test]
    fn long_summaries_are_cut_in_the_middle() {
        let long = "é".repeat(SUMMARY_MAX) + "\ntotal 5 / 10\n";
        let s = safe_summary(&long);
        assert!(s.len() < SUMMARY_MAX + 200);
        assert!(s.ends_with("total 5 / 10\n"));
        assert!(s.contains("left out"));
    }

    #[test]
    fn fallback_ends_with_a_json_line() {
        let out = fallback("rubric `x.yaml` is invalid\n{\"scores\": {\"a\": 1}}");
        let last = out.lines().last().unwrap();
        let v: Value = serde_json::from_str(last).unwrap();
        assert_eq!(v["scores"], json!({}));
        assert_eq!(out.lines().filter(|l| l.starts_with('{')).count(), 1);
    }
}
