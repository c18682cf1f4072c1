//! The hostile gallery: servers that misbehave the way student code does (crash, hang, flood,
//! fork storms, daemons, forged results). Each is graded in bounded time, to a well-formed
//! report with a low score, with nothing left running.
//!
//! By default each fixture is graded once on a few representative checks, to keep the suite
//! fast; `ECHOGRADE_REPEAT=N` grades each N times on the full default rubric (the "graded
//! within its bound, every check judged, 10 out of 10" soak).

mod common;

use common::*;
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
    let bin = fixture(&format!("hostile/{name}"));
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
        let (code, report, stderr) = grade_json(&bin, &args);
        let took = start.elapsed();
        assert_eq!(code, 0, "{name}: exit {code}: {stderr}");
        let bound = Duration::from_secs_f64(report["bound_s"].as_f64().expect("bound_s"));
        assert!(
            took < bound + OVERHEAD,
            "{name}: grading took {took:?}, its bound is {bound:?}"
        );
        for c in report["checks"].as_array().unwrap() {
            // Within the check's own bound (reports round to 10 ms).
            assert!(
                c["duration_s"].as_f64().unwrap() <= c["bound_s"].as_f64().unwrap() + 0.01,
                "{name}: {} took {} s, its bound is {} s",
                c["id"],
                c["duration_s"],
                c["bound_s"]
            );
            assert!(
                !c["feedback"].as_str().unwrap().starts_with("Not run"),
                "{name}: {} was not run",
                c["id"]
            );
        }
        assert_eq!(report["status"], "graded", "{name}");
        let checks = if repeat.is_none() { 6 } else { 15 };
        assert_eq!(
            report["checks"].as_array().unwrap().len(),
            checks,
            "{name}: every check reported"
        );
        let share = report["score"].as_f64().unwrap() / report["max_score"].as_f64().unwrap();
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
        let score = report["score"].as_f64().unwrap();
        // Nothing of the server survives: not the started process, not its daemons.
        let left = processes_running(&bin);
        assert!(
            left.is_empty(),
            "{name}: processes left after grading: {left:?}"
        );
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
    survive("daemon", true, 0.8);
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

/// A server slow on every check (each line answered 900 ms after it is read) is judged on every
/// check of the default rubric, each within its own bound, and the grading ends within the sum
/// of the bounds: no check is cut because the checks before it were slow.
#[test]
fn slow_on_every_check_gets_every_check_judged_within_its_bound() {
    let bin = fixture("slow_lines");
    let rubric: Vec<String> = {
        let text = std::fs::read_to_string(root().join("graders/echo.yaml")).unwrap();
        let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        v["checks"].as_object().unwrap().keys().cloned().collect()
    };
    let runs: usize = std::env::var("ECHOGRADE_REPEAT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    for run in 0..runs {
        let seed = (11 + run).to_string();
        let start = Instant::now();
        let (code, report, stderr) = grade_json(&bin, &["--seed", &seed]);
        let took = start.elapsed();
        assert_eq!(code, 0, "exit {code}: {stderr}");
        assert_eq!(report["status"], "graded");
        let bound = report["bound_s"].as_f64().unwrap();
        let checks = report["checks"].as_array().unwrap();
        let mut ids: Vec<String> = checks
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        let mut want = rubric.clone();
        want.sort();
        assert_eq!(ids, want, "every check of the rubric is reported");
        let mut sum = 0.0;
        let mut verdicts = Vec::new();
        for c in checks {
            let (id, status) = (c["id"].as_str().unwrap(), c["status"].as_str().unwrap());
            assert!(
                status == "pass" || status == "fail",
                "{id} is {status}: {}",
                c["feedback"]
            );
            assert!(
                !c["feedback"].as_str().unwrap().contains("Not run"),
                "{id}: {}",
                c["feedback"]
            );
            let (used, b) = (
                c["duration_s"].as_f64().unwrap(),
                c["bound_s"].as_f64().unwrap(),
            );
            assert!(used <= b + 0.01, "{id} used {used} s of its {b} s bound");
            sum += b;
            verdicts.push(format!("{id}={status}({used:.1}/{b:.1}s)"));
        }
        assert!(
            sum <= bound,
            "the run's bound {bound} s covers the checks' {sum} s"
        );
        assert!(
            took.as_secs_f64() <= bound + OVERHEAD.as_secs_f64(),
            "the grading took {took:?}, the sum of the bounds is {bound} s"
        );
        eprintln!(
            "slow_lines: run {run}: {:.1} s of a {bound} s bound, score {}: {}",
            took.as_secs_f64(),
            report["score"],
            verdicts.join(" ")
        );
    }
}
