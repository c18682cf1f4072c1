//! `grade --build DIR`: make in the submission folder, bounded, then grade what it built. A
//! build that fails, hangs, or builds the wrong thing is a graded outcome (score 0, the reason
//! and the compiler's messages), never a grader error.

mod common;

use common::platform::*;
use common::{entry, grade_cmd, report_of, verdicts};
use echograde::report::{BuildReport, Model, Report, RunStatus, Status};
use std::path::Path;
use std::time::{Duration, Instant};

fn grade_build(dir: &Path, extra: &[&str]) -> (i32, Report, String) {
    let out = grade_cmd()
        .args(["--format", "json", "--seed", "42", "--build"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let r = report_of(&out.stdout, &stderr);
    (out.status.code().unwrap_or(-1), r, stderr)
}

fn build(r: &Report) -> &BuildReport {
    r.build.as_ref().expect("a build entry")
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
    let st = verdicts(&r);
    let ids: Vec<&String> = st.keys().collect();
    assert_eq!(
        ids,
        ["echo.basic", "model"],
        "one server: ids keep no prefix"
    );
    assert!(r.is_single(), "one server: the single-server layout");
    assert_eq!(build(&r).status, Status::Pass);
    assert_eq!(st["model"], "pass");
    assert_eq!(r.rubric, "echo-process");
    assert_eq!(r.parts[0].server.model, Model::Process);
    assert_eq!(r.score, 18.0);
    assert_eq!(build(&r).command, ["make"]);
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
    assert_eq!(r.rubric, "handout");
    assert_eq!(r.max_score, 54.0);
    assert_eq!(r.score, 54.0, "{r:?}");
    assert_eq!(build(&r).command, ["make", "all"]);
    let want = [
        ("echoserverp", Model::Process),
        ("echoservers", Model::Event),
        ("echoservert", Model::Thread),
    ];
    assert_eq!(r.parts.len(), 3);
    for (part, (name, model)) in r.parts.iter().zip(want) {
        assert_eq!(part.name.as_deref(), Some(name));
        assert_eq!(part.server.model, model, "{name}");
        assert_eq!(part.score, 18.0);
        assert_eq!(entry(&r, &format!("{name}/model")).status, Status::Pass);
    }
}

#[test]
fn a_build_that_fails_scores_0_with_the_compilers_messages() {
    let d = open_tempdir();
    broken(d.path());
    let (code, r, stderr) = grade_build(d.path(), &["--only", "echo.basic"]);
    assert_eq!(code, 0, "a failed build is graded: {stderr}");
    assert_eq!(r.status, RunStatus::Graded);
    assert_eq!(r.score, 0.0);
    assert_eq!(
        r.max_score, 24.0,
        "the points still count: 0 of 24, not 0 of 0"
    );
    assert_eq!(build(&r).status, Status::Fail);
    let fb = &build(&r).feedback;
    assert!(
        fb.contains("echoservert.c") && fb.contains("error:"),
        "{fb}"
    );
    assert!(fb.contains("`make all` exited with status 2"), "{fb}");
    for part in ["echoserverp", "echoservers", "echoservert"] {
        let c = entry(&r, &format!("{part}/echo.basic"));
        assert_eq!(c.status, Status::Fail);
        assert!(c.feedback.contains("the build failed"), "{c:?}");
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
    assert_eq!(build(&r).status, Status::Pass);
    let c = entry(&r, "echoserverp/echo.basic");
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.feedback.contains("left no `echoserverp`"),
        "{}",
        c.feedback
    );
    assert_eq!(r.score, 0.0);
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
    let b = build(&r);
    assert_eq!(b.status, Status::Fail);
    assert!(b.timed_out);
    assert!(
        b.feedback.contains("was stopped after 1 s") && b.feedback.contains("building forever"),
        "{}",
        b.feedback
    );
    assert_eq!(r.score, 0.0);
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
    assert_eq!(build(&r).command, ["make", "echoservert"]);
    assert_eq!(entry(&r, "threads/model").status, Status::Pass);
    assert_eq!(r.score, 18.0);
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
    assert_eq!(build(&r).command, ["make", "all"]);
    assert_eq!(
        sub.join("echoserverp").exists(),
        !nix::unistd::geteuid().is_root()
    );
}
