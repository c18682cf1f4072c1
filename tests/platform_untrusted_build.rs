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

/// The pids of processes named `comm` (e.g. a daemon that renamed itself when ready).
fn pids_named(comm: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .collect()
}

/// While one student's Makefile runs a daemon that holds every port the grader picks from
/// (10000-32767 on 127.0.0.1) and plants links to a root-only file in every build copy it can
/// find, another student's correct submission is built and graded: it keeps full marks, and
/// the root-only file outside is untouched. (Each grading has its own network namespace, its
/// own uid and its own /tmp; the build copy is root's until it is complete.)
#[test]
fn a_build_daemon_holding_ports_and_planting_links_spoils_no_grading_beside_it() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "skipped: gradings are kept apart (uid, namespaces) only when the grader is root"
        );
        return;
    }
    // The file a planted link points at: root's, 0600, in a 0700 folder.
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    std::fs::write(&secret, "root's own\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let hostile = open_tempdir();
    std::fs::copy(
        root().join("fixtures/hostile/build_daemon.c"),
        hostile.path().join("build_daemon.c"),
    )
    .unwrap();
    makefile(
        hostile.path(),
        &format!(
            "all:\n\tcc -O2 -o build_daemon build_daemon.c\n\t./build_daemon 10000 32767 15 {}\n",
            secret.display()
        ),
    );
    let mut argv: Vec<std::ffi::OsString> = vec![grade_bin().into()];
    for a in ["--format", "json", "--seed", "1", "--build"] {
        argv.push(a.into());
    }
    argv.push(hostile.path().into());
    argv.push("--rubric".into());
    argv.push(root().join("graders/echo-process.yaml").into());
    for a in ["--only", "echo.basic", "echoserverp"] {
        argv.push(a.into());
    }
    let first = Contained::spawn_program("env".as_ref(), &argv, Stdio::null(), Stdio::piped());
    // Wait (bounded) until the daemon holds its ports and has looked for build copies once.
    let t0 = Instant::now();
    while pids_named("builddaemon-up").is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the build daemon never came up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let correct_dir = open_tempdir();
    common::platform::correct(correct_dir.path());
    let (code, r, stderr) = grade_build(correct_dir.path(), &[], Duration::from_secs(60));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !pids_named("builddaemon-up").is_empty(),
        "the daemon was gone before the other grading ended: the test proves nothing"
    );
    assert_eq!(build_status(&r), Status::Pass, "{r:?}");
    assert_eq!(
        r.score, r.max_score,
        "the correct server lost points: {r:?}"
    );
    let (_out, leftovers) = first.wait_with_output();
    assert_nothing_left(&leftovers, "the hostile build's grading");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root's own\n");
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the file outside was made {mode:o}");
}

/// A Makefile that leaves files in /tmp and /dev/shm: the build had its own fresh ones, so
/// nothing of them is on the machine after grading.
#[test]
fn files_a_makefile_leaves_in_tmp_and_dev_shm_are_gone_after_grading() {
    let d = open_tempdir();
    let tag = format!("echograde-left-make-{}", std::process::id());
    makefile(
        d.path(),
        &format!("all:\n\techo left > /tmp/{tag}\n\techo left > /dev/shm/{tag}\n\t@echo left two files\n"),
    );
    let (code, r, stderr) = grade_build(d.path(), &[], Duration::from_secs(30));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(build_status(&r), Status::Pass, "{r:?}");
    for dir in ["/tmp", "/dev/shm"] {
        let left = Path::new(dir).join(&tag);
        let there = left.exists();
        let _ = std::fs::remove_file(&left);
        assert!(!there, "{} survived the grading", left.display());
    }
}

/// A Makefile that fork-bombs: the build's processes are bounded (a pids cgroup, and a process
/// limit on the grading's own uid), nothing is left, and the report comes in bounded time.
#[test]
fn a_makefile_fork_bomb_is_bounded_and_leaves_nothing() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: without root the build runs as the tester's own user, whose process limit a fork bomb would exhaust for the whole test run");
        return;
    }
    let d = open_tempdir();
    makefile(d.path(), "all:\n\tsh -c 'b() { b & b & wait; }; b'\n");
    let mut args: Vec<std::ffi::OsString> = vec![grade_bin().into()];
    for a in [
        "--format",
        "json",
        "--seed",
        "42",
        "--build-timeout",
        "5",
        "--build",
    ] {
        args.push(a.into());
    }
    args.push(d.path().into());
    args.push("--rubric".into());
    args.push(root().join("graders/echo-process.yaml").into());
    for a in ["--only", "echo.basic", "echoserverp"] {
        args.push(a.into());
    }
    let t0 = Instant::now();
    let run = Contained::spawn_program(&args[0], &args[1..], Stdio::piped(), Stdio::piped());
    let (out, leftovers) = run.wait_with_output();
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t0.elapsed()
    );
    assert_nothing_left(&leftovers, "grading a fork-bombing build");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    // Bounded, the bomb's forks fail and make may even succeed; either way no program.
    assert_eq!(v["status"], "graded", "{v}");
    assert_eq!(v["score"], 0.0, "{v}");
}
