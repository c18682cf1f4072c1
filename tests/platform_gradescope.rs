//! Gradescope, end to end: the zip's contents laid out by `make_zip.sh` as Gradescope unpacks
//! them (AUTOGRADER_ROOT/source, run_autograder at the root, the student's files in
//! submission/), `setup.sh`, then `run_autograder`; results/results.json is checked against
//! the spec's schema. On the handout's skeleton, the correct submission, one that does not
//! compile, a server that hangs, and a grader that crashes or never finishes.

mod common;

use common::platform::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Few checks: the flow is the point here, not full grading.
const FLAGS: &str = "--only model,echo.basic,concurrency.overlap --seed 42";

/// Run run_autograder as Gradescope does (cwd = the root); return its stdout and the results.
fn run_autograder(root_dir: &Path, env: &[(&str, &str)]) -> (String, Value) {
    let mut cmd = Command::new(root_dir.join("run_autograder"));
    cmd.current_dir(root_dir).env("AUTOGRADER_ROOT", root_dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "run_autograder always exits 0: {stdout}"
    );
    let text = std::fs::read_to_string(root_dir.join("results/results.json"))
        .unwrap_or_else(|e| panic!("no results.json ({e}); stdout:\n{stdout}"));
    (stdout, check_gradescope(&text))
}

fn status_of(v: &Value, id: &str) -> String {
    gs_test(v, id)["status"].as_str().unwrap().to_string()
}

#[test]
fn setup_sh_finds_everything_installed_and_the_grader_running() {
    let (_d, root_dir) = autograder_root();
    let out = Command::new("bash")
        .arg(root_dir.join("source/setup.sh"))
        .env("AUTOGRADER_ROOT", &root_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("is ready"), "{stdout}");
}

#[test]
fn skeleton_end_to_end() {
    let (_d, root_dir) = autograder_root();
    skeleton(&root_dir.join("submission"));
    let (_, v) = run_autograder(&root_dir, &[("GRADE_FLAGS", FLAGS)]);
    assert_eq!(
        v["score"], 24.0,
        "echo.basic passes for each server, nothing else: {v}"
    );
    assert_eq!(v["extra_data"]["max_score"], 84.0);
    assert_eq!(status_of(&v, "build"), "passed");
    for s in ["echoserverp", "echoservers", "echoservert"] {
        assert_eq!(status_of(&v, &format!("{s}/echo.basic")), "passed");
        assert_eq!(status_of(&v, &format!("{s}/concurrency.overlap")), "failed");
        assert_eq!(status_of(&v, &format!("{s}/model")), "failed");
    }
    let output = v["output"].as_str().unwrap();
    assert!(output.contains("echoserverp: iterative"), "{output}");
}

#[test]
fn correct_submission_end_to_end_with_only_the_changed_files_handed_in() {
    let (_d, root_dir) = autograder_root();
    // Students hand in their three servers; the Makefile and echolib come from source/base.
    let sub = root_dir.join("submission");
    for f in ["echoserverp.c", "echoservers.c", "echoservert.c"] {
        std::fs::copy(root().join("fixtures/submission").join(f), sub.join(f)).unwrap();
    }
    // A stale binary from the student's machine must not be graded instead of a fresh build.
    std::fs::write(sub.join("echoserverp"), b"\x7fELF stale").unwrap();
    let (_, v) = run_autograder(&root_dir, &[("GRADE_FLAGS", FLAGS)]);
    assert_eq!(v["score"], 84.0, "{v}");
    assert!(v["tests"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "passed"));
    let output = v["output"].as_str().unwrap();
    assert!(output.contains("echoserverp: process-based"), "{output}");
    assert!(output.contains("echoservers: event-based"), "{output}");
    assert!(output.contains("echoservert: thread-based"), "{output}");
}

#[test]
fn submission_that_does_not_compile_scores_0_with_the_compilers_messages() {
    let (_d, root_dir) = autograder_root();
    // Zipped as a folder: Gradescope unpacks it into submission/handin/.
    broken(&root_dir.join("submission/handin"));
    let (_, v) = run_autograder(&root_dir, &[("GRADE_FLAGS", FLAGS)]);
    assert_eq!(v["score"], 0.0);
    let build = gs_test(&v, "build");
    assert_eq!(build["status"], "failed");
    let out = build["output"].as_str().unwrap();
    assert!(
        out.contains("echoservert.c") && out.contains("error:"),
        "{out}"
    );
    assert!(v["output"].as_str().unwrap().contains("The build failed"));
    assert_eq!(status_of(&v, "echoserverp/echo.basic"), "failed");
}

#[test]
fn a_server_that_hangs_is_graded() {
    let (_d, root_dir) = autograder_root();
    let sub = root_dir.join("submission");
    std::fs::create_dir_all(&sub).unwrap();
    // Listens, accepts, never answers.
    std::fs::write(
        sub.join("hang.c"),
        "#include \"echolib.h\"\nint main(int argc, char **argv) {\n    int l;\n    (void)argc;\n    l = Open_listenfd(argv[1]);\n    for (;;) Accept(l, NULL, NULL);\n}\n",
    )
    .unwrap();
    std::fs::write(
        sub.join("Makefile"),
        "all: hang\nhang: hang.c echolib.c echolib.h\n\t$(CC) -O2 -pthread -o $@ hang.c echolib.c\n",
    )
    .unwrap();
    let graders = root_dir.join("source/graders");
    std::fs::write(
        graders.join("hang.yaml"),
        "name: hang\nservers:\n  - {binary: hang, rubric: echo.yaml}\n",
    )
    .unwrap();
    let t0 = Instant::now();
    let (_, v) = run_autograder(
        &root_dir,
        &[
            ("RUBRIC", "graders/hang.yaml"),
            ("GRADE_FLAGS", "--only echo.basic --seed 1"),
        ],
    );
    assert!(t0.elapsed() < Duration::from_secs(60));
    assert_eq!(v["score"], 0.0);
    let t = gs_test(&v, "hang/echo.basic");
    assert_eq!(t["status"], "failed");
    assert!(!t["output"].as_str().unwrap().is_empty());
}

/// A stand-in grader in the zip's place.
fn fake_grade(root_dir: &Path, script: &str) {
    let p = root_dir.join("source/grade");
    std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_grader_that_crashes_still_leaves_a_results_json() {
    let (_d, root_dir) = autograder_root();
    skeleton(&root_dir.join("submission"));
    fake_grade(
        &root_dir,
        "echo 'grade: something \"broke\"\tbadly' >&2\nkill -SEGV $$",
    );
    let (stdout, v) = run_autograder(&root_dir, &[]);
    assert_eq!(v["score"], 0);
    let output = v["output"].as_str().unwrap();
    assert!(output.contains("the grader failed"), "{output}");
    assert!(output.contains("something \"broke\""), "{output}");
    assert!(stdout.contains("fallback"), "{stdout}");
}

#[test]
fn a_grader_that_never_finishes_is_stopped_and_results_are_written() {
    let (_d, root_dir) = autograder_root();
    skeleton(&root_dir.join("submission"));
    fake_grade(&root_dir, "sleep 60");
    let t0 = Instant::now();
    let (_, v) = run_autograder(&root_dir, &[("GRADE_TIMEOUT", "1")]);
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(v["score"], 0);
    assert!(v["output"]
        .as_str()
        .unwrap()
        .contains("did not finish within 1 seconds"));
}

#[test]
fn the_zip_has_setup_and_run_autograder_at_its_root() {
    let have = |c: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {c}"))
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !have("unzip") || !(have("zip") || have("python3")) {
        eprintln!("skipped: needs unzip, and zip or python3");
        return;
    }
    let d = open_tempdir();
    let zip = d.path().join("autograder.zip");
    let out = Command::new("bash")
        .arg(root().join("graders/gradescope/make_zip.sh"))
        .arg("--out")
        .arg(&zip)
        .arg("--grade")
        .arg(grade_bin())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = Command::new("unzip").arg("-Z").arg(&zip).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for (name, exec) in [
        ("setup.sh", true),
        ("run_autograder", true),
        ("grade", true),
        ("echograde.env", false),
        ("graders/handout.yaml", false),
        ("graders/echo-process.yaml", false),
        ("base/Makefile", false),
    ] {
        let line = list
            .lines()
            .find(|l| l.split_whitespace().last() == Some(name))
            .unwrap_or_else(|| panic!("{name} not at the zip's root:\n{list}"));
        if exec {
            assert!(line.starts_with("-rwx"), "{name} is executable: {line}");
        }
    }
}
