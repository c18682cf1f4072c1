//! Every fixture server, graded end to end: the buggy one fails its own check and passes the
//! checks its bug does not touch; the correct ones score full marks; every report validates
//! against the shipped schema; nothing the server started survives the run.
//!
//! `ECHOGRADE_REPEAT=N` grades each fixture N times (the soak behind "0 wrong verdicts in N
//! runs"); each run's verdicts must all be right.

mod common;

use common::*;
use std::collections::BTreeMap;

/// One fixture and the verdicts it must get. Checks not named must pass. `any` lists checks
/// the bug may or may not reach in a given run (a race that shows wherever connects are
/// simultaneous, a deadlock that stops everything after it).
struct Case {
    name: &'static str,
    model: &'static str,
    fail: &'static [&'static str],
    any: &'static [&'static str],
}

fn check(case: &Case) {
    let bin = fixture(case.name);
    let repeat: usize = std::env::var("ECHOGRADE_REPEAT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let schema = jsonschema::validator_for(
        &serde_json::from_str(
            &std::fs::read_to_string(root().join("graders/report.schema.json")).unwrap(),
        )
        .unwrap(),
    )
    .expect("schema compiles");
    let mut wrong: Vec<String> = Vec::new();
    for run in 0..repeat {
        let seed = (42 + run).to_string();
        let (code, report, stderr) = grade_json(&bin, &["--seed", &seed]);
        assert_eq!(code, 0, "{}: grade exit {code}: {stderr}", case.name);
        if let Err(e) = schema.validate(&report) {
            panic!(
                "{}: report does not validate against graders/report.schema.json: {e}",
                case.name
            );
        }
        let got: BTreeMap<String, String> = statuses(&report);
        for (id, status) in &got {
            let want = if case.fail.contains(&id.as_str()) {
                "fail"
            } else if case.any.contains(&id.as_str()) {
                continue;
            } else {
                "pass"
            };
            if status != want {
                let fb = report["checks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["id"] == id.as_str())
                    .unwrap()["feedback"]
                    .clone();
                wrong.push(format!(
                    "run {run} (seed {seed}): {id} is {status}, expected {want}: {fb}"
                ));
            }
        }
        if report["server"]["model"] != case.model {
            wrong.push(format!(
                "run {run}: model {} expected {}",
                report["server"]["model"], case.model
            ));
        }
        if case.fail.is_empty() && case.any.is_empty() {
            assert_eq!(
                report["score"], report["max_score"],
                "{}: a correct server gets full marks",
                case.name
            );
        }
        let left = processes_running(&bin);
        assert!(
            left.is_empty(),
            "{}: processes left after grading: {left:?}",
            case.name
        );
    }
    eprintln!(
        "{}: {} run(s), {} wrong verdict(s)",
        case.name,
        repeat,
        wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "{}: wrong verdicts:\n{}",
        case.name,
        wrong.join("\n")
    );
}

macro_rules! fixture_tests {
    ($($test:ident => $name:literal, $model:literal, fail: [$($f:literal),*], any: [$($a:literal),*];)*) => {
        $(
            #[test]
            fn $test() {
                check(&Case { name: $name, model: $model, fail: &[$($f),*], any: &[$($a),*] });
            }
        )*
    };
}

fixture_tests! {
    correct_process_server_gets_full_marks => "ok_process", "process", fail: [], any: [];
    correct_select_server_gets_full_marks => "ok_select", "event", fail: [], any: [];
    correct_thread_server_gets_full_marks => "ok_thread", "thread", fail: [], any: [];
    iterative_server_fails_concurrency => "iterative", "iterative",
        fail: ["concurrency.overlap", "concurrency.partial-line", "concurrency.stay", "concurrency.many", "fairness"], any: [];
    textbook_select_with_rio_fails_pipelined_and_partial_line => "select_rio", "event",
        fail: ["echo.large", "concurrency.partial-line"], any: [];
    parent_that_keeps_connfd_leaks_descriptors => "proc_leak_connfd", "process", fail: ["leak.fd"], any: [];
    // Its children go back to accept() holding their finished connections: 40 clients leave
    // 40 processes. Bursts of hundreds (race.connfd, churn) may run into the process limit.
    children_that_reenter_the_accept_loop_leak_and_pile_up => "proc_child_loops", "process",
        fail: ["leak.fd", "leak.listenfd"], any: ["zombies", "race.connfd", "liveness.churn", "concurrency.many"];
    child_that_keeps_listenfd_is_caught => "proc_keep_listenfd", "process", fail: ["leak.listenfd"], any: [];
    no_reaping_leaves_zombies => "proc_no_reap", "process", fail: ["zombies"], any: [];
    reaping_one_child_per_signal_leaves_zombies => "proc_reap_one", "process", fail: ["zombies"], any: [];
    // Its printf-in-a-handler deadlock can strike in any check with more than one client.
    printf_in_handler_is_observed => "proc_printf_handler", "process",
        fail: ["signal.safety"],
        any: ["echo.large", "concurrency.overlap", "concurrency.partial-line", "concurrency.stay", "concurrency.many", "race.connfd",
              "leak.fd", "leak.listenfd", "zombies", "leak.threads", "liveness.churn", "robust.sigpipe", "fairness"];
    handler_deadlock_is_diagnosed => "proc_handler_deadlock", "process",
        fail: ["liveness.churn", "signal.safety"],
        any: ["echo.large", "concurrency.overlap", "concurrency.partial-line", "concurrency.stay", "concurrency.many", "race.connfd",
              "leak.fd", "leak.listenfd", "zombies", "leak.threads", "robust.sigpipe", "fairness"];
    connfd_race_is_caught => "thread_connfd_race", "thread",
        fail: ["race.connfd"],
        any: ["concurrency.many", "leak.fd", "zombies", "liveness.churn", "signal.safety", "robust.sigpipe"];
    joinable_threads_leak_stacks => "thread_joinable_leak", "thread", fail: ["leak.threads"], any: [];
    thread_that_never_closes_connfd_leaks => "thread_no_close", "thread", fail: ["leak.fd"], any: [];
    sigpipe_kills_thread_server => "thread_sigpipe", "thread", fail: ["robust.sigpipe"], any: [];
    exit_on_epipe_is_caught => "thread_exit_on_epipe", "thread", fail: ["robust.sigpipe"], any: [];
    // Bookkeeping that follows the newest descriptor or slot: once a lower one is reused, a
    // client that stayed is never polled again. concurrency.stay makes that happen every time;
    // bursts where clients leave while others connect (race.connfd, leak.fd's simultaneous
    // clients, churn) hit it by chance.
    select_maxfd_set_by_a_comma_operator_loses_a_client_that_stays => "select_maxfd", "event",
        fail: ["concurrency.stay"], any: ["race.connfd", "leak.fd", "liveness.churn"];
    poll_count_cut_when_any_client_leaves_loses_a_client_that_stays => "poll_nfds", "event",
        fail: ["concurrency.stay"], any: ["race.connfd", "leak.fd", "liveness.churn"];
    starving_event_loop_fails_fairness => "event_starve", "event", fail: ["fairness"], any: [];
    setsid_daemon_is_graded_and_killed => "hostile/daemon", "iterative",
        fail: ["concurrency.overlap", "concurrency.partial-line", "concurrency.stay", "concurrency.many", "fairness"], any: [];
}

#[test]
fn shipped_schema_matches_the_report_model() {
    let shipped: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("graders/report.schema.json")).unwrap(),
    )
    .unwrap();
    let out = grade_cmd().arg("--print-schema").output().unwrap();
    let generated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        shipped, generated,
        "graders/report.schema.json is stale: regenerate it with `grade --print-schema > graders/report.schema.json`"
    );
}

#[test]
fn yaml_report_is_the_default_and_parses() {
    let bin = fixture("ok_thread");
    let out = grade_cmd()
        .args(["--seed", "5", "--only", "echo.basic,concurrency.overlap"])
        .arg(&bin)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_saphyr::from_str(&text).expect("the report is YAML");
    assert_eq!(v["seed"], 5);
    assert_eq!(v["score"], 17.0);
    assert_eq!(v["max_score"], 17.0);
    assert_eq!(v["checks"].as_array().unwrap().len(), 2);
    assert_eq!(v["server"]["model"], "thread");
}

#[test]
fn output_file_is_written_whole() {
    let bin = fixture("ok_select");
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("report.json");
    grade_cmd()
        .args(["--format", "json", "--only", "echo.basic", "--output"])
        .arg(&path)
        .arg(&bin)
        .assert()
        .success()
        .stdout("");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["checks"][0]["status"], "pass");
    assert_eq!(
        std::fs::read_dir(d.path()).unwrap().count(),
        1,
        "no temporary file left beside the report"
    );
}

#[test]
fn model_rubric_notices_the_wrong_model() {
    // A thread server graded against the process rubric: the model check says so.
    let bin = fixture("ok_thread");
    let rubric = root().join("graders/echo-process.yaml");
    let (code, report, _) = grade_json(
        &bin,
        &["--rubric", rubric.to_str().unwrap(), "--only", "model"],
    );
    assert_eq!(code, 0);
    assert_eq!(report["checks"][0]["status"], "fail");
    let fb = report["checks"][0]["feedback"].as_str().unwrap();
    assert!(
        fb.contains("process-based") && fb.contains("thread"),
        "{fb}"
    );
}

#[test]
fn statically_linked_server_skips_signal_safety_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("ok_thread_static");
    let out = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-static", "-O2", "-pthread", "-I"])
        .arg(root().join("fixtures"))
        .arg(root().join("fixtures/ok_thread.c"))
        .arg(root().join("fixtures/common.c"))
        .arg("-o")
        .arg(&bin)
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "skipped: no static C library here: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let (code, report, _) = grade_json(&bin, &["--only", "signal.safety,echo.basic"]);
    assert_eq!(code, 0);
    let st = statuses(&report);
    assert_eq!(st["signal.safety"], "skipped");
    assert_eq!(st["echo.basic"], "pass");
    let fb = report["checks"][1]["feedback"].as_str().unwrap();
    assert!(fb.contains("statically linked"), "{fb}");
}
