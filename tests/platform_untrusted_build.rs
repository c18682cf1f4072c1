//! `grade --build` on hostile Makefiles: what the build makes is student-controlled, so a
//! program that is a symbolic link (to a correct server somewhere on the machine), a FIFO, or
//! anything but a regular file inside the submission is graded 0 with the reason; make sees
//! none of the grader's secrets; and the grader never stalls on it.

mod common;

use common::platform::open_tempdir;
use common::*;
use echograde::report::{Report, Status};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `grade --build DIR --rubric echo-process echoserverp --only echo.basic` (plus `env`
/// settings for the grader) under the leftover-checking helper, within `bound`.
fn grade_build(dir: &Path, grader_env: &[&str], bound: Duration) -> (i32, Report, String) {
    let mut args: Vec<std::ffi::OsString> = grader_env.iter().map(Into::into).collect();
    args.push(grade_bin().into());
    for a in ["--format", "json", "--seed", "42", "--build"] {
        args.push(a.into());
    }
    args.push(dir.into());
    args.push("--rubric".into());
    args.push(root().join("graders/echo-process.yaml").into());
    for a in ["--only", "echo.basic", "echoserverp"] {
        args.push(a.into());
    }
    let t0 = Instant::now();
    let run = Contained::spawn_program("env".as_ref(), &args, Stdio::piped(), Stdio::piped());
    let (out, leftovers) = run.wait_with_output();
    assert!(t0.elapsed() < bound, "took {:?}", t0.elapsed());
    assert_nothing_left(&leftovers, "grading a build");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let r = report_of(&out.stdout, &stderr);
    (out.status.code().unwrap_or(-1), r, stderr)
}

fn build_status(r: &Report) -> Status {
    r.build.as_ref().expect("a build entry").status
}

fn makefile(dir: &Path, text: &str) {
    std::fs::write(dir.join("Makefile"), text).unwrap();
}

#[test]
fn a_program_made_a_symlink_to_a_correct_server_scores_0_and_says_why() {
    // A correct server elsewhere on the machine, readable and executable by all.
    let elsewhere = open_tempdir();
    let correct = elsewhere.path().join("ok_process");
    let st = std::process::Command::new("cp")
        .arg(fixture("ok_process"))
        .arg(&correct)
        .status()
        .unwrap();
    assert!(st.success());
    let d = open_tempdir();
    makefile(
        d.path(),
        &format!("all:\n\tln -sf {} echoserverp\n", correct.display()),
    );
    let (code, r, stderr) = grade_build(d.path(), &[], Duration::from_secs(60));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(build_status(&r), Status::Pass);
    let c = entry(&r, "echo.basic");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    let fb = &c.feedback;
    assert!(fb.contains("symbolic link"), "{fb}");
    assert_eq!(r.score, 0.0, "no student server, no points");
}

#[test]
fn a_program_made_a_fifo_is_refused_without_stalling_the_grader() {
    let d = open_tempdir();
    makefile(
        d.path(),
        "all:\n\tmkfifo echoserverp\n\tchmod 755 echoserverp\n",
    );
    let (code, r, stderr) = grade_build(d.path(), &[], Duration::from_secs(30));
    assert_eq!(code, 0, "{stderr}");
    let c = entry(&r, "echo.basic");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    let fb = &c.feedback;
    assert!(fb.contains("FIFO"), "{fb}");
    assert_eq!(r.score, 0.0);
}

#[test]
fn make_sees_none_of_the_graders_secrets() {
    let token = "secret-b41d0e";
    let d = open_tempdir();
    // Prints every variable it got, then fails: the build's output is in the report.
    makefile(
        d.path(),
        "all:\n\t@env | sort\n\t@echo HOME is $$HOME\n\t@false\n",
    );
    let (code, r, stderr) = grade_build(
        d.path(),
        &[&format!("GRADESCOPE_TOKEN={token}")],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(build_status(&r), Status::Fail);
    let text = serde_json::to_string(&r).unwrap();
    assert!(
        text.contains("HOME is /"),
        "make's output is in the report: {text}"
    );
    assert!(!text.contains(token), "the token reached make: {text}");
}

/// A Makefile that leaves a daemon behind (a new session, its parent gone, holding make's
/// output pipe): it is killed when make ends, and the report comes at once.
#[test]
fn a_daemon_started_by_the_makefile_does_not_outlive_the_grading() {
    let d = open_tempdir();
    makefile(
        d.path(),
        "all:\n\tsetsid sh -c 'sleep 300 & exit 0'\n\tsetsid -f sleep 301\n\t@echo left two daemons\n",
    );
    // grade_build fails the test if anything of the run is still running after grade exits.
    let (code, r, stderr) = grade_build(d.path(), &[], Duration::from_secs(30));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(build_status(&r), Status::Pass);
    assert_eq!(r.score, 0.0, "no program was built");
}
