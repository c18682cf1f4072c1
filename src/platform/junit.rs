//! JUnit XML for CI systems that render test results (GitHub Actions reporters, GitLab, Jenkins).
//!
//! One `<testsuite>` per server (one in all for an ordinary rubric), one `<testcase>` per check:
//! a failed check has a `<failure>` with its feedback and evidence, a check the grader could not
//! run an `<error>`, a skipped one `<skipped>`. Properties carry the score, the maximum, the model
//! and the seed. Only renders: every verdict comes from the [`Report`].
//!
//! Written by hand: the format is small, and [`escape`] is the one place text enters markup (it
//! escapes the five special characters and replaces the characters XML 1.0 cannot carry at all,
//! escaped or not).

use super::gradescope::{evidence_text, fmt};
use super::submission::{parts_of, PART_SEPARATOR};
use crate::report::{CheckReport, Report, Status};

/// Escape text for XML 1.0 content and attribute values. Characters XML cannot carry (most
/// C0 controls, U+FFFE, U+FFFF) become `\u{..}`; in attributes, newlines and tabs become
/// character references so they survive attribute normalization.
pub fn escape(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\r' => out.push_str("&#13;"),
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

struct Suite<'r> {
    name: String,
    checks: Vec<(&'r CheckReport, String)>,
    props: Vec<(String, String)>,
}

/// The JUnit XML document for a report.
pub fn render(report: &Report) -> String {
    let parts = parts_of(report);
    let mut suites: Vec<Suite> = Vec::new();
    let root_props = vec![
        ("score".to_string(), fmt(report.score)),
        ("max_score".to_string(), fmt(report.max_score)),
        (
            "model".to_string(),
            report.server.model.as_str().to_string(),
        ),
        ("seed".to_string(), report.seed.to_string()),
        ("echograde".to_string(), report.echograde.clone()),
    ];
    for c in &report.checks {
        let (suite, case) = match c.id.split_once(PART_SEPARATOR) {
            Some((p, rest)) if !parts.is_empty() => (p.to_string(), rest.to_string()),
            _ => (report.rubric.clone(), c.id.clone()),
        };
        let i = match suites.iter().position(|s| s.name == suite) {
            Some(i) => i,
            None => {
                let props = match parts.iter().find(|p| p.0 == suite) {
                    Some((_, model, score, max)) => vec![
                        ("score".to_string(), fmt(*score)),
                        ("max_score".to_string(), fmt(*max)),
                        ("model".to_string(), model.clone()),
                        ("seed".to_string(), report.seed.to_string()),
                    ],
                    None => root_props.clone(),
                };
                suites.push(Suite {
                    name: suite,
                    checks: Vec::new(),
                    props,
                });
                suites.len() - 1
            }
        };
        suites[i].checks.push((c, case));
    }

    let count = |cs: &[(&CheckReport, String)], st: Status| {
        cs.iter().filter(|(c, _)| c.status == st).count()
    };
    let all: Vec<(&CheckReport, String)> = suites
        .iter()
        .flat_map(|s| s.checks.iter().cloned())
        .collect();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.2}\">\n",
        escape(&format!("echograde {}", report.rubric), true),
        all.len(),
        count(&all, Status::Fail),
        count(&all, Status::Error),
        count(&all, Status::Skipped),
        report.duration_s
    ));
    for s in &suites {
        let time: f64 = s.checks.iter().map(|(c, _)| c.duration_s).sum();
        x.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.2}\">\n",
            escape(&s.name, true),
            s.checks.len(),
            count(&s.checks, Status::Fail),
            count(&s.checks, Status::Error),
            count(&s.checks, Status::Skipped),
            time
        ));
        x.push_str("    <properties>\n");
        for (k, v) in &s.props {
            x.push_str(&format!(
                "      <property name=\"{}\" value=\"{}\"/>\n",
                escape(k, true),
                escape(v, true)
            ));
        }
        x.push_str("    </properties>\n");
        for (c, case) in &s.checks {
            let title = c
                .title
                .strip_prefix(&format!("{}: ", s.name))
                .unwrap_or(&c.title);
            x.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.2}\">\n",
                escape(&format!("echograde.{}", s.name), true),
                escape(&format!("{case}: {title}"), true),
                c.duration_s
            ));
            let mut body = c.feedback.trim_end().to_string();
            let ev = evidence_text(&c.evidence);
            if !ev.is_empty() {
                body.push_str("\n\nevidence:\n");
                body.push_str(&ev);
            }
            if let Some(o) = &c.server_output {
                if !o.stderr_tail.is_empty() {
                    body.push_str(&format!("\nserver stderr (tail):\n{}", o.stderr_tail));
                }
                if !o.stdout_tail.is_empty() {
                    body.push_str(&format!("\nserver stdout (tail):\n{}", o.stdout_tail));
                }
            }
            let message = format!(
                "{} / {}: {}",
                fmt(c.score),
                fmt(c.max_score),
                c.feedback.lines().next().unwrap_or("")
            );
            let tag = match c.status {
                Status::Pass => None,
                Status::Fail => Some("failure"),
                Status::Error => Some("error"),
                Status::Skipped => Some("skipped"),
            };
            match tag {
                Some("skipped") => x.push_str(&format!(
                    "      <skipped message=\"{}\"/>\n",
                    escape(&message, true)
                )),
                Some(tag) => x.push_str(&format!(
                    "      <{tag} message=\"{}\" type=\"{}\">{}</{tag}>\n",
                    escape(&message, true),
                    escape(&c.id, true),
                    escape(&body, false)
                )),
                None => {}
            }
            x.push_str(&format!(
                "      <system-out>{}</system-out>\n",
                escape(
                    &format!(
                        "score {} / {}\n{}",
                        fmt(c.score),
                        fmt(c.max_score),
                        if c.status == Status::Pass {
                            body.as_str()
                        } else {
                            ""
                        }
                    ),
                    false
                )
            ));
            x.push_str("    </testcase>\n");
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

/// A JUnit document with one errored test case, when no report could be made.
pub fn fallback(message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"echograde\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\" time=\"0\">\n  <testsuite name=\"echograde\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\" time=\"0\">\n    <testcase classname=\"echograde\" name=\"grade\" time=\"0\">\n      <error message=\"{}\" type=\"grader\">{}</error>\n    </testcase>\n  </testsuite>\n</testsuites>\n",
        escape(message.lines().next().unwrap_or(""), true),
        escape(message, false)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_characters_xml_cannot_carry() {
        assert_eq!(escape("a<b>&\"'", false), "a&lt;b&gt;&amp;&quot;&apos;");
        assert_eq!(escape("x\ny\tz", false), "x\ny\tz");
        assert_eq!(escape("x\ny\tz", true), "x&#10;y&#9;z");
        assert_eq!(escape("\u{1b}[0m\u{0}\r", false), "\\u{1b}[0m\\u{0}&#13;");
        assert_eq!(escape("]]>", false), "]]&gt;");
        assert_eq!(escape("é\u{FFFF}", false), "é\\u{ffff}");
    }
}
