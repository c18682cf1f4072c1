//! JUnit XML for CI systems that render test results (GitHub Actions reporters, GitLab, Jenkins).
//!
//! One `<testsuite>` per server (one in all for a single server; a submission's build goes in
//! a suite named after its rubric), one `<testcase>` per check: a failed check has a
//! `<failure>` with its feedback and evidence, a check the grader could not run an `<error>`,
//! a skipped one `<skipped>`. Properties carry the score, the maximum, the model and the
//! seed. Only renders: every verdict comes from the [`Report`].
//!
//! The data model and the XML are `quick-junit`'s (nextest's own serializer): it escapes
//! markup and drops what XML 1.0 cannot carry (ANSI escapes, most control characters).

use super::gradescope::evidence_text;
use crate::report::render::fmt_score as fmt;
use crate::report::{BuildReport, CheckReport, Model, PartReport, Report, Status};
use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// The JUnit XML document for a report.
pub fn render(report: &Report) -> String {
    let mut doc = quick_junit::Report::new(format!("echograde {}", report.rubric));
    doc.set_time(secs(report.duration_s));
    // The run's own suite, named after its rubric: the build, and the checks of a server
    // that has no name of its own (the one server of a single-server run).
    let unnamed: Vec<&CheckReport> = report
        .parts
        .iter()
        .filter(|p| p.name.is_none())
        .flat_map(|p| &p.checks)
        .collect();
    if report.build.is_some() || !unnamed.is_empty() {
        let mut suite = TestSuite::new(report.rubric.as_str());
        suite.add_properties(props(
            report.score,
            report.max_score,
            report.model(),
            report.seed,
        ));
        suite.add_property(Property::new("echograde", report.echograde.as_str()));
        if let Some(b) = &report.build {
            suite.add_test_case(build_case(b, &report.rubric));
        }
        suite.add_test_cases(unnamed.iter().map(|c| check_case(c, &report.rubric)));
        add_suite(&mut doc, suite);
    }
    for p in &report.parts {
        if let Some(name) = &p.name {
            add_suite(&mut doc, part_suite(p, name, report.seed));
        }
    }
    doc.to_string().expect("a JUnit report serializes")
}

fn add_suite(doc: &mut quick_junit::Report, mut suite: TestSuite) {
    suite.set_time(suite.test_cases.iter().filter_map(|c| c.time).sum());
    doc.add_test_suite(suite);
}

fn part_suite(p: &PartReport, name: &str, seed: u64) -> TestSuite {
    let mut suite = TestSuite::new(name);
    suite.add_properties(props(p.score, p.max_score, p.server.model, seed));
    suite.add_test_cases(p.checks.iter().map(|c| check_case(c, name)));
    suite
}

fn props(score: f64, max: f64, model: Model, seed: u64) -> Vec<Property> {
    vec![
        Property::new("score", fmt(score)),
        Property::new("max_score", fmt(max)),
        Property::new("model", model.as_str()),
        Property::new("seed", seed.to_string()),
    ]
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn build_case(b: &BuildReport, suite: &str) -> TestCase {
    let status = if b.status == Status::Pass {
        TestCaseStatus::success()
    } else {
        let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
        st.set_message(format!("0 / 0: {}", first_line(&b.feedback)))
            .set_type(crate::platform::submission::BUILD_ID)
            .set_description(b.feedback.trim_end());
        st
    };
    let name = format!("{}: {}", crate::platform::submission::BUILD_ID, b.title);
    let mut case = TestCase::new(name, status);
    case.set_classname(format!("echograde.{suite}"))
        .set_time(secs(b.duration_s))
        .set_system_out(format!("score 0 / 0\n{}", b.feedback.trim_end()));
    case
}

fn check_case(c: &CheckReport, suite: &str) -> TestCase {
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
        first_line(&c.feedback)
    );
    let status = match c.status {
        Status::Pass => TestCaseStatus::success(),
        Status::Skipped => {
            let mut st = TestCaseStatus::skipped();
            st.set_message(message);
            st
        }
        Status::Fail | Status::Error => {
            let kind = if c.status == Status::Fail {
                NonSuccessKind::Failure
            } else {
                NonSuccessKind::Error
            };
            let mut st = TestCaseStatus::non_success(kind);
            st.set_message(message)
                .set_type(c.id.as_str())
                .set_description(body.as_str());
            st
        }
    };
    let mut case = TestCase::new(format!("{}: {}", c.id, c.title), status);
    let shown = if c.status == Status::Pass {
        body.as_str()
    } else {
        ""
    };
    case.set_classname(format!("echograde.{suite}"))
        .set_time(secs(c.duration_s))
        .set_system_out(format!(
            "score {} / {}\n{shown}",
            fmt(c.score),
            fmt(c.max_score)
        ));
    case
}

/// The text up to the first line break.
fn first_line(s: &str) -> &str {
    s.split_once('\n').map_or(s, |(first, _)| first)
}

/// A JUnit document with one errored test case, when no report could be made.
pub fn fallback(message: &str) -> String {
    let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
    st.set_message(first_line(message))
        .set_type("grader")
        .set_description(message);
    let mut case = TestCase::new("grade", st);
    case.set_classname("echograde").set_time(Duration::ZERO);
    let mut suite = TestSuite::new("echograde");
    suite.add_test_case(case);
    let mut doc = quick_junit::Report::new("echograde");
    doc.add_test_suite(suite);
    doc.to_string().expect("a JUnit report serializes")
}
