//! The platform formats (`--format gradescope|autolab|junit`) render the one report model:
//! each is validated (Gradescope's JSON against a schema of its spec, Autolab's last line as
//! JSON, JUnit as XML by a real parser), on real gradings and on a report built to be nasty.
//! Also: what each format writes when no report can be made, and `grade`'s new usage errors.

mod common;

use common::platform::*;
use common::{fixture, grade_cmd};
use echograde::platform::{autolab, gradescope, junit};
use echograde::report::Report;
use serde_json::json;

/// A report with every status, a build and two servers, and text that tries to break each
/// format: markup, control characters, a line that looks like Autolab's score line.
fn nasty_report() -> Report {
    let evil = "<b>&amp;</b> \"q\" 'a' ]]> \u{1b}[31m\u{0}\u{7}\r\n{\"scores\": {\"x\": 100}, \"scoreboard\": [100]}\n[1,2]";
    serde_json::from_value(json!({
        "echograde": "0.1.0",
        "status": "graded",
        "rubric": "handout",
        "seed": 7,
        "score": 10.5,
        "max_score": 32.0,
        "duration_s": 3.25,
        "build": {"title": "The submission builds with `make all`", "status": "pass",
                  "duration_s": 0.5, "feedback": "`make all` succeeded.", "command": ["make", "all"],
                  "exit": "exited with status 0", "timed_out": false, "output_bytes": 0, "warnings": 0},
        "parts": [
            {"name": "echoserverp", "rubric": "echo-process", "score": 8.0, "max_score": 18.0,
             "server": {"command": [], "model": "process", "containment": {}, "model_evidence": {}},
             "checks": [
                {"id": "echo.basic", "title": "Echoes short lines", "status": "pass",
                 "score": 8.0, "max_score": 8.0, "duration_s": 0.1, "feedback": "All lines came back.", "evidence": {"lines": 10}},
                {"id": "concurrency.overlap", "title": "Serves a second client", "status": "fail",
                 "score": 0.0, "max_score": 10.0, "duration_s": 2.0, "feedback": evil, "evidence": {"bytes": evil},
                 "server_output": {"stdout_tail": evil, "stderr_tail": "close: Bad file descriptor\n"}}]},
            {"name": "echoservert", "rubric": "echo-thread", "score": 2.5, "max_score": 14.0,
             "server": {"command": [], "model": "thread", "containment": {}, "model_evidence": {}},
             "checks": [
                {"id": "signal.safety", "title": "Signal handlers", "status": "skipped",
                 "score": 0.0, "max_score": 6.0, "duration_s": 0.0, "feedback": "static binary", "evidence": {}},
                {"id": "leak.fd", "title": "Closes descriptors", "status": "error",
                 "score": 2.5, "max_score": 8.0, "duration_s": 0.0, "feedback": "/proc unreadable", "evidence": {}}]}
        ]
    }))
    .expect("a report")
}

#[test]
fn every_format_renders_the_same_verdicts_of_a_nasty_report() {
    let r = nasty_report();

    let gs = check_gradescope(&gradescope::render(&r, "after_due_date"));
    assert_eq!(gs["score"], 10.5);
    assert_eq!(gs["execution_time"], 4);
    let tests = gs["tests"].as_array().unwrap();
    assert_eq!(
        tests.len(),
        1 + r.entries().count(),
        "the build, then each check"
    );
    let status: Vec<&str> = tests
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(status, ["passed", "passed", "failed", "failed", "failed"]);
    assert!(tests.iter().all(|t| t["visibility"] == "after_due_date"));
    let overlap = gs_test(&gs, "echoserverp/concurrency.overlap");
    assert_eq!(overlap["max_score"], 10.0);
    let out = overlap["output"].as_str().unwrap();
    assert!(out.contains("close: Bad file descriptor"), "{out}");
    assert!(out.contains("What the grader observed"), "{out}");
    assert!(gs["output"]
        .as_str()
        .unwrap()
        .contains("echoserverp: process-based"));

    let al = autolab::render(&r);
    let last = autolab_last_line(&al);
    assert_eq!(
        last["scores"],
        json!({"echoserverp": 8.0, "echoservert": 2.5})
    );
    assert_eq!(last["scoreboard"], json!([10.5, 8.0, 2.5]));
    assert!(
        !al.contains('\r') && !al.contains('\u{1b}') && !al.contains('\u{0}'),
        "{al}"
    );

    let xml = junit::render(&r);
    let (root, cases) = parse_junit(&xml);
    assert_eq!(root["tests"], "5");
    assert_eq!(root["failures"], "1");
    assert_eq!(root["errors"], "1");
    assert_eq!(root["skipped"], "1");
    let outcome: Vec<(&str, &str)> = cases
        .iter()
        .map(|c| (c.suite.as_str(), c.outcome.as_str()))
        .collect();
    assert_eq!(
        outcome,
        [
            ("handout", ""),
            ("echoserverp", ""),
            ("echoserverp", "failure"),
            ("echoservert", "skipped"),
            ("echoservert", "error")
        ]
    );
    let failure = &cases[2];
    assert!(
        failure
            .name
            .starts_with("concurrency.overlap: Serves a second client"),
        "{}",
        failure.name
    );
    assert!(
        failure.body.contains("<b>&amp;</b> \"q\" 'a' ]]>"),
        "markup survives as text: {}",
        failure.body
    );
    assert!(failure.body.contains("close: Bad file descriptor"));
    assert!(
        failure.message.starts_with("0 / 10: "),
        "{}",
        failure.message
    );
}

#[test]
fn gradescope_of_real_gradings_passing_and_failing() {
    for (server, want) in [("ok_thread", "passed"), ("iterative", "failed")] {
        let out = grade_cmd()
            .args([
                "--format",
                "gradescope",
                "--seed",
                "42",
                "--only",
                "echo.basic,concurrency.overlap",
            ])
            .arg(fixture(server))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = check_gradescope(&String::from_utf8(out.stdout).unwrap());
        assert_eq!(gs_test(&v, "echo.basic")["status"], "passed", "{server}");
        let overlap = gs_test(&v, "concurrency.overlap");
        assert_eq!(overlap["status"], want, "{server}: {overlap}");
        if want == "failed" {
            assert_eq!(overlap["score"], 0.0);
            assert!(
                overlap["output"].as_str().unwrap().contains("client B"),
                "{overlap}"
            );
            assert_eq!(v["score"], 8.0);
        } else {
            assert_eq!(v["score"], 17.0);
        }
        assert!(v["output"]
            .as_str()
            .unwrap()
            .contains("Server model observed"));
    }
}

#[test]
fn autolab_and_junit_of_a_real_grading() {
    let server = fixture("iterative");
    let out = grade_cmd()
        .args([
            "--format",
            "autolab",
            "--seed",
            "42",
            "--only",
            "echo.basic,concurrency.overlap",
        ])
        .arg(&server)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let v = autolab_last_line(&stdout);
    assert_eq!(
        v["scores"],
        json!({"echo.basic": 8.0, "concurrency.overlap": 0.0})
    );
    assert_eq!(v["scoreboard"][0], 8.0);
    assert!(stdout.contains("FAIL  concurrency.overlap"), "{stdout}");

    let d = open_tempdir();
    let xml_path = d.path().join("echograde.xml");
    let out = grade_cmd()
        .args([
            "--format",
            "junit",
            "--seed",
            "42",
            "--only",
            "echo.basic,concurrency.overlap",
            "--fail-under",
            "10",
        ])
        .arg("--output")
        .arg(&xml_path)
        .arg(&server)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "below --fail-under: exit 1 after writing the report"
    );
    let (root, cases) = parse_junit(&std::fs::read_to_string(&xml_path).unwrap());
    assert_eq!(
        (root["tests"].as_str(), root["failures"].as_str()),
        ("2", "1")
    );
    let overlap = cases
        .iter()
        .find(|c| c.name.starts_with("concurrency.overlap"))
        .unwrap();
    assert_eq!(overlap.outcome, "failure");
    assert!(overlap.body.contains("client B"), "{}", overlap.body);
}

#[test]
fn when_no_report_can_be_made_the_platform_formats_still_write_theirs() {
    let d = open_tempdir();
    let bad = d.path().join("bad.yaml");
    std::fs::write(&bad, "name: bad\nchecks:\n  echo.bogus: {points: 3}\n").unwrap();
    let server = fixture("ok_process");

    let results = d.path().join("results.json");
    let out = grade_cmd()
        .args(["--format", "gradescope", "--rubric"])
        .arg(&bad)
        .arg("--output")
        .arg(&results)
        .arg(&server)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v = check_gradescope(&std::fs::read_to_string(&results).unwrap());
    assert_eq!(v["score"], 0.0);
    assert!(v["output"].as_str().unwrap().contains("echo.bogus"), "{v}");

    let out = grade_cmd()
        .args(["--format", "autolab", "--rubric"])
        .arg(&bad)
        .arg(&server)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(autolab_last_line(&stdout)["scores"], json!({}));
    assert!(stdout.contains("echo.bogus"));

    let out = grade_cmd()
        .args(["--format", "junit", "--rubric"])
        .arg(&bad)
        .arg(&server)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let (root, cases) = parse_junit(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(root["errors"], "1");
    assert!(cases[0].body.contains("echo.bogus"));
}

#[test]
fn build_and_submission_rubric_usage_errors_are_exit_2() {
    let d = open_tempdir();
    let handout = root().join("graders/handout.yaml");
    let process = root().join("graders/echo-process.yaml");
    let cases: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (
            vec![
                "--rubric".into(),
                handout.clone().into(),
                fixture("ok_process").into(),
            ],
            "use it with --build",
        ),
        (
            vec![
                "--build".into(),
                d.path().into(),
                "--rubric".into(),
                handout.clone().into(),
                "echoserverp".into(),
            ],
            "leave out SERVER",
        ),
        (
            vec![
                "--build".into(),
                d.path().into(),
                "--rubric".into(),
                process.into(),
            ],
            "grades one program",
        ),
        (
            vec!["--build".into(), d.path().join("nope").into()],
            "not a folder",
        ),
        (
            vec![
                "--build".into(),
                d.path().into(),
                "--make-target=-j64".into(),
            ],
            "not a make target",
        ),
        (
            vec![
                "--build".into(),
                d.path().into(),
                "--build-timeout".into(),
                "0".into(),
            ],
            "--build-timeout",
        ),
        (
            vec![
                "--build".into(),
                d.path().into(),
                "--only".into(),
                "echo.bogus".into(),
            ],
            "unknown check id",
        ),
        (
            vec!["--build".into(), d.path().into(), "../echoserverp".into()],
            "inside the submission folder",
        ),
        (
            vec![
                "--make-target".into(),
                "all".into(),
                fixture("ok_process").into(),
            ],
            "--build",
        ),
    ];
    for (args, want) in cases {
        let out = grade_cmd().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(want),
            "{args:?}: want `{want}` in: {stderr}"
        );
    }
}

#[test]
fn the_github_workflow_example_parses_and_uses_fail_under_and_junit() {
    let text = std::fs::read_to_string(root().join("graders/github/echograde.yml")).unwrap();
    let v: serde_json::Value = serde_saphyr::from_str(&text).expect("the workflow is YAML");
    let steps = v["jobs"]["grade"]["steps"]
        .as_array()
        .expect("jobs.grade.steps");
    let grade = steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .find(|r| r.trim_start().starts_with("grade "))
        .expect("a step runs grade");
    for flag in [
        "--build .",
        "--format junit",
        "--output echograde.xml",
        "--fail-under",
    ] {
        assert!(grade.contains(flag), "{flag} in {grade}");
    }
    assert!(steps
        .iter()
        .any(|s| s["with"]["report_paths"] == "echograde.xml"));
}
