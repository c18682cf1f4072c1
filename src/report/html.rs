//! A student's page: one self-contained HTML file (no script, no network) with the run's
//! verdicts, for `grade class` to link from its index.
//!
//! This is the minimal page the class command needs: a table of every check's verdict, points
//! and feedback. Everything a server or a student controls (names, feedback quoting server
//! output) is escaped with [`escape`]. The full page with its timeline replaces this one.

use super::{Report, Status};

/// Escape text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Shown, not obeyed: a terminal escape the server printed stays visible text.
            c if c.is_control() && c != '\n' && c != '\t' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Error => "error",
        Status::Skipped => "skipped",
    }
}

/// The page of one grading run.
pub fn student_page(report: &Report) -> String {
    let mut rows = String::new();
    for c in &report.checks {
        rows.push_str(&format!(
            "<tr class=\"{st}\"><td><code>{id}</code></td><td>{title}</td><td>{st}</td>\
             <td class=\"num\">{score}/{max}</td><td class=\"fb\">{fb}</td></tr>\n",
            st = status_word(c.status),
            id = escape(&c.id),
            title = escape(&c.title),
            score = c.score,
            max = c.max_score,
            fb = escape(&c.feedback),
        ));
    }
    let error = report
        .error
        .as_deref()
        .map(|e| format!("<p class=\"error\">{}</p>\n", escape(e)))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>echograde report: {score}/{max}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n\
         <h1>Score {score} / {max}</h1>\n\
         <p>rubric <b>{rubric}</b> · server model <b>{model}</b> · seed {seed} · {dur} s · echograde {ver}</p>\n\
         {error}<table>\n<thead><tr><th>check</th><th>title</th><th>verdict</th><th>points</th>\
         <th>feedback</th></tr></thead>\n<tbody>\n{rows}</tbody>\n</table>\n</body>\n</html>\n",
        score = report.score,
        max = report.max_score,
        rubric = escape(&report.rubric),
        model = report.server.model.as_str(),
        seed = report.seed,
        dur = report.duration_s,
        ver = escape(&report.echograde),
    )
}

const CSS: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top}
td.num{text-align:right;white-space:nowrap}td.fb{white-space:pre-wrap}
tr.pass td:nth-child(3){color:#1a7f37}tr.fail td:nth-child(3),tr.error td:nth-child(3){color:#cf222e;font-weight:bold}
p.error{color:#cf222e}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_is_escaped() {
        let mut r = Report::grader_failed("<script>alert(1)</script>");
        r.rubric = "\"><img src=x onerror=alert(1)>".into();
        let page = student_page(&r);
        assert!(!page.contains("<script>alert"));
        assert!(!page.contains("<img"));
        assert!(page.contains("&lt;script&gt;"));
    }
}
