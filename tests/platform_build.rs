//! `grade --build DIR`: make in the submission folder, bounded, then grade what it built. A
//! build that fails, hangs, or builds the wrong thing is a graded outcome (score 0, the reason
//! and the compiler's messages), never a grader error.

mod common;
#[path = "platform_support.rs"]
mod support;

use common::{grade_cmd, statuses};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

fn grade_build(dir: &Path, extra: &[&str]) -> (i32, Value, String) {
    let out = grade_cmd()
        .args(["--format", "json", "--seed", "42", "--build"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"));
    (out.status.code().unwrap_or(-1), v, stderr)
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}"))
}

#[test]
fn one_server_built_and_graded_with_its_model_rubric() {
    let d = open_tempdir();
    correct(d.path());
    let rubric = root().join("graders/echo-process.yaml");
    let (code, r, stderr) = grade_build(
        d.path(),
        &[
            "--rubric",
            rubric.to_str().unwrap(),
            "--only",
            "model,echo.basic",
            "echoserverp",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let st = statuses(&r);
    let ids: Vec<&String> = st.keys().collect();
    assert_eq!(
        ids,
        ["build", "echo.basic", "model"],
        "one server: ids keep no prefix"
    );
    assert_eq!(st["build"], "pass");
    assert_eq!(st["model"], "pass");
    assert_eq!(r["rubric"], "echo-process");
    assert_eq!(r["server"]["model"], "process");
    assert_eq!(r["score"], 18.0);
    assert_eq!(check(&r, "build")["max_score"], 0.0);
    assert_eq!(
        check(&r, "build")["evidence"]["command"],
        serde_json::json!(["make"])
    );
    // As root, make runs as the unprivileged user in a copy it owns: the submission folder is
    // left as it was. Otherwise make builds in place.
    assert_eq!(
        d.path().join("echoserverp").exists(),
        !nix::unistd::geteuid().is_root(),
        "make builds in the folder only when the grader is not root"
    );
}

#[test]
fn the_handout_submission_rubric_sums_three_servers() {
    let d = open_tempdir();
    correct(d.path());
    let (code, r, stderr) = grade_build(d.path(), &["--only", "model,echo.basic"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(r["rubric"], "handout");
    assert_eq!(r["max_score"], 54.0);
    assert_eq!(r["score"], 54.0, "{r}");
    assert_eq!(
        check(&r, "build")["evidence"]["command"],
        serde_json::json!(["make", "all"])
    );
    let parts = &r["server"]["model_evidence"]["parts"];
    for (name, model) in [
        ("echoserverp", "process"),
        ("echoservers", "event"),
        ("echoservert", "thread"),
    ] {
        assert_eq!(parts[name]["model"], model, "{parts}");
        assert_eq!(parts[name]["score"], 18.0);
        assert_eq!(check(&r, &format!("{name}/model"))["status"], "pass");
        assert!(check(&r, &format!("{name}/echo.basic"))["title"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{name}: ")));
    }
}

#[test]
fn a_build_that_fails_scores_0_with_the_compilers_messages() {
    let d = open_tempdir();
    broken(d.path());
    let (code, r, stderr) = grade_build(d.path(), &["--only", "echo.basic"]);
    assert_eq!(code, 0, "a failed build is graded: {stderr}");
    assert_eq!(r["status"], "graded");
    assert_eq!(r["score"], 0.0);
    assert_eq!(
        r["max_score"], 24.0,
        "the points still count: 0 of 24, not 0 of 0"
    );
    let build = check(&r, "build");
    assert_eq!(build["status"], "fail");
    let fb = build["feedback"].as_str().unwrap();
    assert!(
        fb.contains("echoservert.c") && fb.contains("error:"),
        "{fb}"
    );
    assert!(fb.contains("`make all` exited with status 2"), "{fb}");
    for part in ["echoserverp", "echoservers", "echoservert"] {
        let c = check(&r, &format!("{part}/echo.basic"));
        assert_eq!(c["status"], "fail");
        assert!(
            c["feedback"].as_str().unwrap().contains("the build failed"),
            "{c}"
        );
    }
    // And below --fail-under, exit 1.
    let (code, _, _) = grade_build(d.path(), &["--only", "echo.basic", "--fail-under", "1"]);
    assert_eq!(code, 1);
}

#[test]
fn a_binary_the_build_did_not_make_is_graded_0_and_named() {
    let d = open_tempdir();
    std::fs::write(
        d.path().join("Makefile"),
        "all:\n\t@echo nothing to build\n",
    )
    .unwrap();
    let (code, r, stderr) = grade_build(d.path(), &["--only", "echo.basic"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(check(&r, "build")["status"], "pass");
    let c = check(&r, "echoserverp/echo.basic");
    assert_eq!(c["status"], "fail");
    let fb = c["feedback"].as_str().unwrap();
    assert!(fb.contains("left no `echoserverp`"), "{fb}");
    assert_eq!(r["score"], 0.0);
}

#[test]
fn a_build_that_hangs_is_stopped_at_its_time_limit() {
    let d = open_tempdir();
    std::fs::write(
        d.path().join("Makefile"),
        "all:\n\t@echo building forever\n\tsleep 60\n",
    )
    .unwrap();
    let t0 = Instant::now();
    let (code, r, stderr) =
        grade_build(d.path(), &["--build-timeout", "1", "--only", "echo.basic"]);
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(code, 0, "{stderr}");
    let build = check(&r, "build");
    assert_eq!(build["status"], "fail");
    assert_eq!(build["evidence"]["timed_out"], true);
    let fb = build["feedback"].as_str().unwrap();
    assert!(
        fb.contains("was stopped after 1 s") && fb.contains("building forever"),
        "{fb}"
    );
    assert_eq!(r["score"], 0.0);
}

#[test]
fn make_target_and_a_submission_rubric_of_ones_own() {
    let d = open_tempdir();
    let sub = d.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    correct(&sub);
    // A course rubric: one server, its own name and arguments, a target that builds only it.
    let rubrics = d.path().join("rubrics");
    std::fs::create_dir(&rubrics).unwrap();
    std::fs::copy(
        root().join("graders/echo-thread.yaml"),
        rubrics.join("t.yaml"),
    )
    .unwrap();
    std::fs::write(
        rubrics.join("lab.yaml"),
        "name: lab\nbuild: {target: echoservert, timeout_s: 30}\nservers:\n  - {binary: ./echoservert, rubric: t.yaml, name: threads, args: ['{port}']}\n",
    )
    .unwrap();
    let (code, r, stderr) = grade_build(
        &sub,
        &[
            "--rubric",
            rubrics.join("lab.yaml").to_str().unwrap(),
            "--only",
            "model,echo.basic",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        check(&r, "build")["evidence"]["command"],
        serde_json::json!(["make", "echoservert"])
    );
    assert_eq!(check(&r, "threads/model")["status"], "pass");
    assert_eq!(r["score"], 18.0);
    assert!(
        !sub.join("echoserverp").exists(),
        "only the target was built"
    );

    // --make-target overrides the rubric's target.
    let (code, r, _) = grade_build(
        &sub,
        &[
            "--rubric",
            rubrics.join("lab.yaml").to_str().unwrap(),
            "--make-target",
            "all",
            "--only",
            "echo.basic",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(
        check(&r, "build")["evidence"]["command"],
        serde_json::json!(["make", "all"])
    );
    assert_eq!(
        sub.join("echoserverp").exists(),
        !nix::unistd::geteuid().is_root()
    );
}
