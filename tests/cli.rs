//! Bad invocations and bad input: a one-line message naming the problem, exit code 2, and no
//! report file written. And the grader's own failures: an `error` entry, never a lost report.

mod common;

use common::*;
use echograde::report::{RunStatus, Status};
use predicates::prelude::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn missing_server_is_exit_2_and_named() {
    grade_cmd()
        .arg("/nonexistent/echoserver")
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("/nonexistent/echoserver")
                .and(predicate::str::contains("does not exist")),
        );
}

#[test]
fn non_executable_and_directory_and_shebangless_script_are_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let plain = d.path().join("server.c");
    std::fs::write(&plain, "int main(){}").unwrap();
    grade_cmd()
        .arg(&plain)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not executable"));

    grade_cmd()
        .arg(d.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("directory"));

    let script = d.path().join("server.sh");
    std::fs::write(&script, "echo hi\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    grade_cmd()
        .arg(&script)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("#!"));
}

#[test]
fn invalid_rubric_names_file_line_and_field() {
    let d = tempfile::tempdir().unwrap();
    let rubric = d.path().join("bad.yaml");
    std::fs::write(
        &rubric,
        "name: bad\nchecks:\n  echo.basic: {points: 5}\n  echo.bogus: {points: 3}\n",
    )
    .unwrap();
    grade_cmd()
        .arg("--rubric")
        .arg(&rubric)
        .arg("/bin/true")
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("bad.yaml")
                .and(predicate::str::contains("line 4"))
                .and(predicate::str::contains("echo.bogus")),
        );
    grade_cmd()
        .args(["--rubric", "/nonexistent/rubric.yaml", "/bin/true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read rubric"));
}

#[test]
fn unknown_only_id_and_bad_flags_are_exit_2() {
    grade_cmd()
        .args(["--only", "echo.nope", "/bin/true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown check id `echo.nope`"));
    grade_cmd()
        .args(["--format", "xml", "/bin/true"])
        .assert()
        .code(2);
    grade_cmd()
        .args(["--time-scale", "0", "/bin/true"])
        .assert()
        .code(2);
    grade_cmd().assert().code(2);
}

#[test]
fn unwritable_output_is_exit_2_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("no-such-dir").join("report.yaml");
    grade_cmd()
        .arg("--output")
        .arg(&out)
        .arg("/bin/true")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot write the report"));
    assert!(!out.exists());
}

#[test]
fn a_server_that_never_listens_is_graded_not_an_error() {
    // /bin/true exits at once: a graded outcome (exit 0, score 0), with the exit status named.
    let (code, report, _) = grade_report(std::path::Path::new("/bin/true"), &[]);
    assert_eq!(code, 0);
    assert_eq!(report.score, 0.0);
    assert_eq!(report.max_score, 100.0);
    let fb = &report.parts[0].checks[0].feedback;
    assert!(
        fb.contains("exited with status 0 before it listened"),
        "{fb}"
    );
    // --fail-under turns the low score into exit 1.
    grade_cmd()
        .args(["--fail-under", "50", "/bin/true"])
        .assert()
        .code(1);
}

#[test]
fn help_and_version_exit_0() {
    grade_cmd()
        .arg("--help")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("--rubric"));
    grade_cmd().arg("--version").assert().code(0);
}

#[test]
fn stdin_is_an_open_pipe_by_default_and_null_on_request() {
    // CS:APP Fig. 12.6 selects on stdin too and exits at its EOF.
    let bin = fixture("select_stdin");
    let (code, report, _) = grade_report(&bin, &["--only", "echo.basic"]);
    assert_eq!(code, 0);
    assert_eq!(
        entry(&report, "echo.basic").status,
        Status::Pass,
        "{report:?}"
    );
    let (code, report, _) = grade_report(&bin, &["--only", "echo.basic", "--stdin", "null"]);
    assert_eq!(code, 0);
    let c = entry(&report, "echo.basic");
    let fb = &c.feedback;
    assert_eq!(c.status, Status::Fail);
    // What it did, not a guess about argv.
    assert!(fb.contains("exited with status 0"), "{fb}");
    assert!(!fb.contains("argv"), "{fb}");
}

#[test]
fn unreadable_stdin_file_is_exit_2() {
    grade_cmd()
        .args(["--stdin", "/nonexistent/input.txt"])
        .arg(fixture("ok_thread"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/input.txt"));
}

#[test]
fn summary_goes_to_stderr_while_the_report_goes_to_its_file() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("report.yaml");
    let assert = grade_cmd()
        .args(["--summary", "--only", "echo.basic", "--output"])
        .arg(&out)
        .arg(fixture("ok_process"))
        .assert()
        .success()
        .stdout("");
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains("PASS  echo.basic"), "{stderr}");
    let yaml = std::fs::read_to_string(&out).unwrap();
    assert!(yaml.contains("echo.basic"), "{yaml}");
}

#[test]
fn one_grading_writes_each_output_in_its_extensions_format() {
    let d = tempfile::tempdir().unwrap();
    let (yaml, json, html, other) = (
        d.path().join("r.yaml"),
        d.path().join("r.json"),
        d.path().join("r.html"),
        d.path().join("r.out"),
    );
    grade_cmd()
        .args(["--format", "json", "--only", "echo.basic"])
        .args(["--output", yaml.to_str().unwrap(), "--output"])
        .arg(&json)
        .arg("--output")
        .arg(&html)
        .arg("--output")
        .arg(&other)
        .arg(fixture("ok_process"))
        .assert()
        .success()
        .stdout("");
    let y = std::fs::read_to_string(&yaml).unwrap();
    assert!(y.starts_with("echograde:"), "YAML: {y}");
    // The YAML a TA reads leaves the timeline out; JSON carries it, and it reads back.
    assert!(!y.contains("timeline"), "{y}");
    let j: echograde::report::Report =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(j.parts[0].checks[0]
        .timeline
        .as_ref()
        .is_some_and(|t| !t.lanes.is_empty()));
    let h = std::fs::read_to_string(&html).unwrap();
    assert!(h.starts_with("<!DOCTYPE html>") && h.contains("<svg class=\"timeline\""));
    // The page drawn from the report read back is the page the grading wrote.
    assert_eq!(echograde::report::html::student_page(&j), h);
    // No known extension: --format decides.
    let o: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&other).unwrap()).unwrap();
    assert_eq!(o["checks"][0]["id"], "echo.basic");
}

#[test]
fn a_platform_format_keeps_its_json_file_beside_the_page() {
    let d = tempfile::tempdir().unwrap();
    let (results, page) = (d.path().join("results.json"), d.path().join("page.html"));
    grade_cmd()
        .args(["--format", "gradescope", "--only", "echo.basic", "--output"])
        .arg(&results)
        .arg("--output")
        .arg(&page)
        .arg(fixture("ok_process"))
        .assert()
        .success();
    // --format gradescope writes JSON: results.json is Gradescope's, not the report.
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    assert!(r["tests"].is_array() && r.get("checks").is_none(), "{r}");
    assert!(std::fs::read_to_string(&page)
        .unwrap()
        .starts_with("<!DOCTYPE html>"));
}

/// A bug in the model probe (a panic injected through the test-only hook) is the grader's
/// error in the report: the `model` entry, and every check that depends on the model, say so;
/// the report is written whole, with exit 3.
#[test]
fn a_panic_in_the_model_probe_is_an_error_entry_not_a_lost_report() {
    let out = grade_cmd()
        .env(echograde::fault::PANIC_HOOK_VAR, "model")
        .args([
            "--format",
            "json",
            "--seed",
            "42",
            "--only",
            "model,echo.basic",
        ])
        .arg("--rubric")
        .arg(root().join("graders/echo-thread.yaml"))
        .arg(fixture("ok_thread"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let r = report_of(&out.stdout, &stderr);
    assert_eq!(r.status, RunStatus::Error);
    let model = entry(&r, "model");
    assert_eq!(model.status, Status::Error, "{model:?}");
    assert!(
        model.feedback.contains("not the server's fault"),
        "{}",
        model.feedback
    );
    assert_eq!(entry(&r, "echo.basic").status, Status::Error);
    let why = r.error.as_deref().unwrap_or_default();
    assert!(why.contains("observing the server's model"), "{why}");
}
