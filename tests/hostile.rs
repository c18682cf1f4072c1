//! The hostile gallery: servers that misbehave the way student code does (crash, hang, flood,
//! fork storms, daemons, forged results). Each is graded in bounded time, to a well-formed
//! report with a low score, with nothing left running.
//!
//! By default each fixture is graded once on a few representative checks, to keep the suite
//! fast; `ECHOGRADE_REPEAT=N` grades each N times on the full default rubric (the "graded
//! within its bound, every check judged, 10 out of 10" soak).

mod common;

use common::*;
use echograde::report::{CheckReport, Report, RunStatus, Status};
use std::time::{Duration, Instant};

/// What a grading may take beyond the bound its report states (the sum of its checks'
/// bounds): starting the grader, writing the shim, rendering the report.
const OVERHEAD: Duration = Duration::from_secs(3);

/// The checks graded in the quick (default) run: the new concurrency.stay too, so that every
/// hostile server meets its clients that stay and leave.
const QUICK: &str =
    "echo.basic,echo.large,concurrency.stay,concurrency.many,zombies,robust.sigpipe";

/// Grade `name` and check the run; `echoes` says whether the server echoes at all (if not, its
/// score must be low); `max_share` bounds its share of the points.
fn survive(name: &str, echoes: bool, max_share: f64) {
    survive_bin(
        name,
        &fixture(&format!("hostile/{name}")),
        echoes,
        max_share,
    );
}

/// [`survive`], for the fixture's binary at `bin`.
fn survive_bin(name: &str, bin: &std::path::Path, echoes: bool, max_share: f64) {
    let repeat: Option<usize> = std::env::var("ECHOGRADE_REPEAT")
        .ok()
        .and_then(|s| s.parse().ok());
    for run in 0..repeat.unwrap_or(1) {
        let start = Instant::now();
        let seed = (7 + run).to_string();
        let mut args = vec!["--seed", seed.as_str()];
        if repeat.is_none() {
            args.extend(["--only", QUICK]);
        }
        // grade_json also fails the test if anything of the run outlived grade (not the
        // started process, not its daemons), wherever the server ran from.
        let (code, report, stderr) = grade_report(bin, &args);
        let took = start.elapsed();
        assert_eq!(code, 0, "{name}: exit {code}: {stderr}");
        let bound = Duration::from_secs_f64(report.bound_s.expect("bound_s"));
        assert!(
            took < bound + OVERHEAD,
            "{name}: grading took {took:?}, its bound is {bound:?}"
        );
        for c in report.entries().map(|e| e.check) {
            // Within the check's own bound (reports round to 10 ms).
            let check_bound = c.bound_s.expect("a check's bound_s");
            assert!(
                c.duration_s <= check_bound + 0.01,
                "{name}: {} took {} s, its bound is {check_bound} s",
                c.id,
                c.duration_s,
            );
            assert!(
                !c.feedback.starts_with("Not run"),
                "{name}: {} was not run",
                c.id
            );
        }
        assert_eq!(report.status, RunStatus::Graded, "{name}");
        let checks = if repeat.is_none() { 6 } else { 15 };
        assert_eq!(
            report.entries().count(),
            checks,
            "{name}: every check reported"
        );
        let share = report.score / report.max_score;
        assert!(
            share <= max_share,
            "{name}: scored {share:.2} of the points, above {max_share}"
        );
        if !echoes {
            assert!(
                share <= 0.1,
                "{name}: a server that does not echo scored {share:.2} of the points"
            );
        }
        let score = report.score;
        eprintln!(
            "{name}: run {run}: score {score}, {:.1} s",
            took.as_secs_f64()
        );
    }
}

#[test]
fn exits_at_once() {
    survive("exit_at_once", false, 0.0);
}

#[test]
fn never_listens() {
    survive("never_listens", false, 0.0);
}

#[test]
fn listens_on_another_port() {
    survive("wrong_port", false, 0.0);
}

#[test]
fn ignores_sigterm() {
    survive("ignores_sigterm", true, 0.8);
}

#[test]
fn double_forks_a_setsid_daemon() {
    // From a private (0700) folder: as root the daemon then runs from the grader's copy, and
    // must still be found, graded and killed.
    let (_private, bin) = private_copy(&fixture("hostile/daemon"));
    survive_bin("daemon", &bin, true, 0.8);
}

/// The check that nothing is left running can fail: a daemon started from a private folder
/// and left behind is seen, named and killed. (Run directly, not through grade: nothing here
/// stops it.)
#[test]
fn the_leftover_check_sees_a_daemon_left_behind() {
    let (_private, bin) = private_copy(&fixture("hostile/daemon"));
    // Port 0: the daemon listens on a port of the kernel's choosing, on 127.0.0.1.
    let run = Contained::spawn_program(
        bin.as_os_str(),
        &["0".into()],
        std::process::Stdio::null(),
        std::process::Stdio::piped(),
    );
    let (out, leftovers) = run.wait_with_output();
    assert_eq!(
        out.status.code(),
        Some(0),
        "the started process exits at once"
    );
    let exe = std::fs::canonicalize(&bin).unwrap();
    let exe = exe.to_string_lossy();
    assert!(
        leftovers.iter().any(|l| l.running() && l.exe == exe),
        "the daemon left behind is not reported: {leftovers:?}"
    );
}

#[test]
fn forks_a_swarm_of_setsid_children_that_ignore_sigterm() {
    survive("setsid_swarm", true, 0.8);
}

#[test]
fn floods_stdout_forever() {
    survive("stdout_flood", true, 0.8);
}

#[test]
fn prints_fake_grader_results() {
    survive("fake_results", true, 0.8);
}

#[test]
fn accepts_and_never_answers() {
    survive("accept_never_answer", false, 0.1);
}

#[test]
fn closes_its_listening_socket_after_one_client() {
    survive("close_listen_after_one", true, 0.5);
}

#[test]
fn echoes_one_byte_at_a_time_slowly() {
    survive("slow_echo", true, 0.7);
}

#[test]
fn exhausts_its_descriptors() {
    survive("fd_exhaust", false, 0.1);
}

#[test]
fn allocates_memory_until_stopped() {
    survive("memory_hog", true, 0.9);
}

#[test]
fn crashes_with_sigsegv_mid_check() {
    survive("segv_midway", true, 0.95);
}

#[test]
fn fork_bombs() {
    survive("fork_bomb", true, 0.8);
}

/// Grade only `signal.safety` (and echo.basic, so the server is seen to work): the server's
/// handler calls printf, so whatever it does to the grader's view, the check must fail.
fn signal_safety_of(name: &str) -> CheckReport {
    let start = Instant::now();
    let (code, report, stderr) = grade_report(
        &fixture(&format!("hostile/{name}")),
        &["--only", "echo.basic,signal.safety"],
    );
    assert_eq!(code, 0, "{name}: {stderr}");
    let bound = report.bound_s.unwrap() + OVERHEAD.as_secs_f64();
    assert!(
        start.elapsed().as_secs_f64() <= bound,
        "{name}: took {:?}, beyond its bound",
        start.elapsed()
    );
    assert_eq!(report.status, RunStatus::Graded, "{name}");
    assert_eq!(entry(&report, "echo.basic").status, Status::Pass, "{name}");
    let c = entry(&report, "signal.safety").clone();
    assert_eq!(c.status, Status::Fail, "{name}: {c:?}");
    assert_eq!(c.score, 0.0, "{name}: {c:?}");
    c
}

/// The server spoils its shim log with an invalid UTF-8 byte and a forged `install` line
/// naming a FIFO (which the grader, opening it, would block on): the printf is still found, in
/// bounded time.
#[test]
fn printf_in_a_handler_fails_even_with_garbage_in_the_shim_log() {
    let c = signal_safety_of("sigsafety_bad_log");
    let fb = &c.feedback;
    assert!(fb.contains("printf"), "the unsafe call is named: {fb}");
}

#[test]
fn printf_in_a_handler_fails_when_the_server_drops_ld_preload_and_reexecs() {
    let c = signal_safety_of("sigsafety_reexec");
    let fb = &c.feedback;
    assert!(
        fb.contains("not loaded in the process that serves") && fb.contains("LD_PRELOAD"),
        "says in words why it could not check: {fb}"
    );
}

/// 300 children holding about 16000 descriptors each: reading all of them through /proc took
/// 38 s and the run ended far past its bound. Graded on the whole default rubric, the report is
/// written within the run's bound (the sum of its checks' bounds, teardown included).
#[test]
fn a_tree_of_processes_full_of_descriptors_cannot_push_the_run_past_its_bound() {
    let start = Instant::now();
    let (code, report, stderr) = grade_report(&fixture("hostile/fd_swarm"), &[]);
    let took = start.elapsed();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report.status, RunStatus::Graded);
    let bound = report.bound_s.unwrap();
    assert!(
        took.as_secs_f64() <= bound + OVERHEAD.as_secs_f64(),
        "grading took {took:?}, its bound is {bound} s"
    );
    // Bounded reading does not buy a pass: the 300 children do hold the listening socket.
    let c = entry(&report, "leak.listenfd");
    assert_eq!(c.status, Status::Fail, "{c:?}");
}

/// A well-formed forged `install` line naming a FIFO as the handler's module: a grader that
/// opens paths named in the log blocked there forever (as root, no report). The printf is
/// found, in bounded time.
#[test]
fn printf_in_a_handler_fails_in_bounded_time_when_the_log_names_a_fifo() {
    let c = signal_safety_of("sigsafety_fifo_log");
    let fb = &c.feedback;
    assert!(fb.contains("printf"), "the unsafe call is named: {fb}");
}

/// The handler is installed through glibc's own sigaction (behind the shim) and a well-formed
/// forged `install` line covers its signal: /proc's SigCgt matches the log, but the handler
/// the kernel holds is not the shim's, and the check fails saying it could not observe it.
#[test]
fn printf_in_a_handler_installed_behind_the_shim_with_a_forged_record_fails() {
    // The kernel's handler is read by the grader's own ptrace injection: no gdb, no skip.
    let c = signal_safety_of("sigsafety_forged_install");
    let fb = &c.feedback;
    assert!(
        fb.contains("SIGCHLD") && fb.contains("could not observe"),
        "says which handler it could not observe: {fb}"
    );
    let foreign = c.evidence["handlers_not_installed_through_the_shim"].to_string();
    assert!(
        foreign.contains("SIGCHLD (at 0x"),
        "the handler address the kernel holds came back: {foreign}"
    );
}

/// The same forged install, and the server makes itself non-dumpable so that nothing of
/// another uid without CAP_SYS_PTRACE may trace it: never a pass on a handler nobody saw, and
/// the words say the server kept the grader out.
#[test]
fn printf_in_a_handler_behind_the_shim_in_an_untraceable_server_fails() {
    let c = signal_safety_of("sigsafety_untraceable");
    let fb = &c.feedback;
    assert!(
        fb.contains("SIGCHLD") && fb.contains("non-dumpable"),
        "names the caught signal and why it could not be read: {fb}"
    );
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Start `grade --format json ARGS SERVER` with `TMPDIR` set, under the leftover check.
fn spawn_grade_in(tmpdir: &std::path::Path, args: &[&str], server: &std::path::Path) -> Contained {
    let mut all: Vec<std::ffi::OsString> = vec![
        format!("TMPDIR={}", tmpdir.display()).into(),
        grade_bin().into(),
        "--format".into(),
        "json".into(),
    ];
    all.extend(args.iter().map(Into::into));
    all.push(server.into());
    Contained::spawn_program(
        "env".as_ref(),
        &all,
        std::process::Stdio::piped(),
        std::process::Stdio::piped(),
    )
}

/// The report of a finished grading, with nothing of it left running.
fn finish(run: Contained, what: &str) -> Report {
    let (out, leftovers) = run.wait_with_output();
    assert_nothing_left(&leftovers, what);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{what}: {stderr}");
    report_of(&out.stdout, &format!("{what}: {stderr}"))
}

/// Two gradings side by side, as root: one student's server spies on everything outside its
/// own process group (other servers' programs and working folders through /proc, SIGSTOP) and
/// on the grader's folders beside its HOME (other gradings' HOME, program copy, build copy),
/// killing itself the moment anything works. The grader's temporary folder is one both see
/// (not /tmp, which each server gets privately), as on a machine with TMPDIR set. The correct
/// server next to it keeps full marks, and the spy keeps the full marks of the echo server it
/// is: nothing of the other grading was within its reach. (With `--user nobody` for both, the
/// spy lists the other grading's HOME and scores 0: measured.)
#[test]
fn two_gradings_side_by_side_cannot_reach_each_others_files_or_processes() {
    if !is_root() {
        eprintln!("skipped: gradings get uids of their own only when the grader is root");
        return;
    }
    let Ok(shared) = tempfile::Builder::new()
        .prefix("echograde-side")
        .tempdir_in("/var/tmp")
    else {
        eprintln!("skipped: no /var/tmp to share between the two gradings");
        return;
    };
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let (_private, good) = private_copy(&fixture("ok_process"));
    let spy = fixture("hostile/spy_other_gradings");
    let spying = spawn_grade_in(
        shared.path(),
        &[
            "--seed",
            "1",
            "--only",
            "echo.basic,echo.large,robust.sigpipe",
        ],
        &spy,
    );
    let graded = spawn_grade_in(
        shared.path(),
        &[
            "--seed",
            "2",
            "--only",
            "echo.basic,concurrency.stay,concurrency.many",
        ],
        &good,
    );
    let good_report = finish(graded, "the correct server's grading");
    let spy_report = finish(spying, "the spy's grading");
    assert_eq!(
        good_report.score, good_report.max_score,
        "the correct server lost points beside the spy: {good_report:?}"
    );
    assert_eq!(
        spy_report.score, spy_report.max_score,
        "the spy reached something of the other grading: {spy_report:?}"
    );
    let user = |r: &Report| r.parts[0].server.containment["user"].clone();
    assert_ne!(
        user(&good_report),
        user(&spy_report),
        "the two gradings ran student code as one user"
    );
}

/// liveness.churn attaches gdb to a server that stopped serving. The server's watcher child
/// reads its tracer's uid from /proc and writes it on stderr: gdb runs as the server's own
/// user, never as root.
#[test]
fn gdb_attaches_to_a_stuck_server_as_the_servers_own_user() {
    let has_gdb = std::process::Command::new("gdb")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_gdb {
        eprintln!("skipped: gdb is not installed");
        return;
    }
    let (code, report, stderr) = grade_report(
        &fixture("hostile/tracer_uid"),
        &["--only", "liveness.churn"],
    );
    assert_eq!(code, 0, "{stderr}");
    let c = entry(&report, "liveness.churn");
    assert_eq!(c.status, Status::Fail, "the server stops serving: {c:?}");
    let tail = c
        .server_output
        .as_ref()
        .map_or("", |o| o.stderr_tail.as_str());
    let line = tail
        .lines()
        .find(|l| l.starts_with("tracer uid"))
        .unwrap_or_else(|| panic!("the server saw no tracer: {c:?}"));
    let ids: Vec<i64> = line
        .split(|ch: char| !ch.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(ids.len(), 2, "{line}");
    assert_eq!(
        ids[0], ids[1],
        "gdb ran as another user than the server: {line}"
    );
    if is_root() {
        assert_ne!(ids[0], 0, "gdb ran as root: {line}");
    }
}
