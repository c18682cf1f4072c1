//! Every fixture server, graded end to end: the buggy one fails its own check and passes the
//! checks its bug does not touch; the correct ones score full marks; every report validates
//! against the shipped schema; nothing the server started survives the run.
//!
//! `ECHOGRADE_REPEAT=N` grades each fixture N times (the soak behind "0 wrong verdicts in N
//! runs"); each run's verdicts must all be right.

mod common;

use common::*;
use echograde::report::{Report, Status};
use std::collections::BTreeMap;

/// One fixture and the verdicts it must get. Checks not named must pass. `any` lists checks
/// the bug may or may not reach in a given run (a race that shows wherever connects are
/// simultaneous, a deadlock that stops everything after it).
struct Case {
    name: &'static str,
    model: &'static str,
    fail: &'static [&'static str],
    any: &'static [&'static str],
    /// `(check id, words)`: the check's feedback must contain these words.
    says: &'static [(&'static str, &'static str)],
}

/// The human report as a student reads it, with every number replaced by `N` (timings, pids
/// and ports change from run to run; words must not) and the checks whose verdict is left to
/// chance (`any`) left out.
fn human_text(name: &str, report: &Report, varies: &[&str]) -> String {
    let mut r = report.clone();
    let checks = &mut r.parts[0].checks;
    checks.retain(|c| !varies.contains(&c.id.as_str()));
    // Quoted bytes (an excerpt of what came back, a line of stderr) depend on the payload and on
    // how the kernel split the reply: quote marks stay, their contents do not.
    for c in checks {
        c.feedback = if words_vary(name, &c.id) {
            "(the words vary from run to run: this bug strikes at a moment chance decides)".into()
        } else {
            numbers_as_n(&without_quoted(&c.feedback))
        };
    }
    // Wrapped after the numbers are gone, so a longer pid does not move a line break.
    numbers_as_n(&echograde::report::render::human(&r, true))
}

/// Fixtures whose bug strikes at a moment chance decides: which clients it hits, and so the
/// words, vary (the verdict does not).
fn words_vary(fixture: &str, check: &str) -> bool {
    matches!(
        (fixture, check),
        ("thread_connfd_race", "race.connfd") | ("thread_double_free", _) | ("exit_after_first", _)
    )
}

/// Every number replaced by `N`.
fn numbers_as_n(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            out.push('N');
            // Digits, and a decimal point between digits.
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || (chars[i] == '.' && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit())))
            {
                i += 1;
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// `"..."` (with `\"` escapes inside, as the grader writes them) becomes `"…"`.
fn without_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' {
            continue;
        }
        out.push('…');
        while let Some(q) = chars.next() {
            match q {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    out.push('"');
                    break;
                }
                _ => {}
            }
        }
    }
    out
}

/// Cause-claims no report may make without the evidence for them (see `claims_without_evidence`).
fn claims_without_evidence(report: &Report) -> Vec<String> {
    let mut wrong = Vec::new();
    let model = report.model().as_str();
    let find = |id: &str| report.entries().find(|e| e.check.id == id).map(|e| e.check);
    for e in report.entries() {
        let (fb, id) = (e.check.feedback.as_str(), e.check.id.as_str());
        // The &connfd race is a bug of servers with threads.
        if fb.contains("&connfd") && model != "thread" && !fb.starts_with("All ") {
            wrong.push(format!("{id} names &connfd for a {model} server: {fb}"));
        }
        // "iterative" for a server that answered B while A was connected.
        if fb.contains("iterative")
            && find("concurrency.overlap").is_some_and(|o| o.status == Status::Pass)
        {
            wrong.push(format!(
                "{id} says iterative, but B was served while A stayed: {fb}"
            ));
        }
        // Select/poll advice for a server that forks or runs threads.
        if (fb.contains("In an event loop") || fb.contains("In an event-based server"))
            && (model == "process" || model == "thread")
        {
            wrong.push(format!(
                "{id} gives event-loop advice to a {model} server: {fb}"
            ));
        }
        // A pool or deadlock named for a server without threads.
        if (fb.contains("deadlock between threads") || fb.contains("pool of")) && model != "thread"
        {
            wrong.push(format!("{id} names threads of a {model} server: {fb}"));
        }
        // Broken templates.
        for bad in [
            "only 1 were",
            "client byte",
            "then the server",
            "it the server",
            "only 0 were",
        ] {
            if fb.contains(bad) {
                wrong.push(format!("{id} has a broken sentence ({bad:?}): {fb}"));
            }
        }
    }
    wrong
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
    let mut scores: Vec<f64> = Vec::new();
    let mut first_text: Option<String> = None;
    for run in 0..repeat {
        let seed = (42 + run).to_string();
        let (code, json, stderr) = grade_json(&bin, &["--seed", &seed]);
        assert_eq!(code, 0, "{}: grade exit {code}: {stderr}", case.name);
        if let Err(e) = schema.validate(&json) {
            panic!(
                "{}: report does not validate against graders/report.schema.json: {e}",
                case.name
            );
        }
        let report: Report = serde_json::from_value(json).expect("the report deserializes");
        let got: BTreeMap<String, String> = verdicts(&report);
        for (id, status) in &got {
            let want = if case.fail.contains(&id.as_str()) {
                "fail"
            } else if case.any.contains(&id.as_str()) {
                continue;
            } else {
                "pass"
            };
            if status != want {
                let fb = &entry(&report, id).feedback;
                wrong.push(format!(
                    "run {run} (seed {seed}): {id} is {status}, expected {want}: {fb}"
                ));
            }
        }
        scores.push(report.score);
        // Every text a student reads, reviewed once (the snapshot) and the same run after run.
        let text = human_text(case.name, &report, case.any);
        match &first_text {
            None => {
                insta::assert_snapshot!(case.name.replace('/', "__"), text);
                first_text = Some(text);
            }
            Some(t0) if *t0 != text => wrong.push(format!(
                "run {run}: the report's words differ from run 0:\n{text}"
            )),
            Some(_) => {}
        }
        for (id, words) in case.says {
            let fb = report
                .entries()
                .find(|e| e.check.id == *id)
                .map(|e| e.check.feedback.clone())
                .unwrap_or_default();
            if !fb.contains(words) {
                wrong.push(format!("run {run}: {id} does not say {words:?}: {fb}"));
            }
        }
        wrong.extend(
            claims_without_evidence(&report)
                .into_iter()
                .map(|w| format!("run {run}: {w}")),
        );
        if report.model().as_str() != case.model {
            wrong.push(format!(
                "run {run}: model {} expected {}",
                report.model().as_str(),
                case.model
            ));
        }
        if case.fail.is_empty() && case.any.is_empty() {
            assert_eq!(
                report.score, report.max_score,
                "{}: a correct server gets full marks",
                case.name
            );
        }
    }
    let differ = scores.iter().filter(|s| **s != scores[0]).count();
    eprintln!(
        "{}: {} run(s), {} wrong verdict(s), {} score(s) differing from run 0 ({:?})",
        case.name,
        repeat,
        wrong.len(),
        differ,
        scores
    );
    // The same server graded twice gets the same score, unless its bug strikes by chance.
    if case.any.is_empty() && differ > 0 {
        wrong.push(format!("scores differ between runs: {scores:?}"));
    }
    assert!(
        wrong.is_empty(),
        "{}: wrong verdicts:\n{}",
        case.name,
        wrong.join("\n")
    );
}

macro_rules! fixture_tests {
    ($($test:ident => $name:literal, $model:literal, fail: [$($f:literal),*], any: [$($a:literal),*]
       $(, says: [$(($sid:literal, $sw:literal)),*])?;)*) => {
        $(
            #[test]
            fn $test() {
                check(&Case {
                    name: $name,
                    model: $model,
                    fail: &[$($f),*],
                    any: &[$($a),*],
                    says: &[$($(($sid, $sw)),*)?],
                });
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
    // The race strikes wherever clients connect at once: leak.threads runs 8 at a time.
    connfd_race_is_caught => "thread_connfd_race", "thread",
        fail: ["race.connfd"],
        any: ["concurrency.many", "leak.fd", "zombies", "leak.threads", "liveness.churn", "signal.safety", "robust.sigpipe"],
        says: [("race.connfd", "&connfd")];
    joinable_threads_leak_stacks => "thread_joinable_leak", "thread", fail: ["leak.threads"], any: [];
    thread_that_never_closes_connfd_leaks => "thread_no_close", "thread", fail: ["leak.fd"], any: [];
    sigpipe_kills_thread_server => "thread_sigpipe", "thread", fail: ["robust.sigpipe"], any: [];
    exit_on_epipe_is_caught => "thread_exit_on_epipe", "thread", fail: ["robust.sigpipe"], any: [];
    // Bookkeeping that follows the newest descriptor or slot: once a lower one is reused, a
    // client that stayed is never polled again. concurrency.stay makes that happen every time;
    // bursts where clients leave while others connect (race.connfd, leak.fd's simultaneous
    // clients, churn) hit it by chance.
    select_maxfd_set_by_a_comma_operator_loses_a_client_that_stays => "select_maxfd", "event",
        fail: ["concurrency.stay"], any: ["race.connfd", "leak.fd", "leak.threads", "liveness.churn"];
    poll_count_cut_when_any_client_leaves_loses_a_client_that_stays => "poll_nfds", "event",
        fail: ["concurrency.stay"], any: ["race.connfd", "leak.fd", "leak.threads", "liveness.churn"];
    starving_event_loop_fails_fairness => "event_starve", "event", fail: ["fairness"], any: [];
    setsid_daemon_is_graded_and_killed => "hostile/daemon", "iterative",
        fail: ["concurrency.overlap", "concurrency.partial-line", "concurrency.stay", "concurrency.many", "fairness"], any: [];

    // Servers whose replies are not an echo: echo.* fail with the difference; the checks that
    // judge service judge the replies; the checks that need each client's own bytes say they
    // did not judge. The model comes from /proc whatever the bytes.
    upcasing_fork_server_is_concurrent_but_no_echo => "upcase_fork", "process",
        fail: ["echo.basic", "echo.large", "race.connfd"], any: [],
        says: [("echo.basic", "got \"HELLO, ECHO SERVER\\n\""), ("race.connfd", "Not judged: the server does not echo")];
    upcasing_thread_server_is_concurrent_but_no_echo => "upcase_thread", "thread",
        fail: ["echo.basic", "echo.large", "race.connfd"], any: [],
        says: [("race.connfd", "Not judged: the server does not echo")];
    fixed_ok_reply_is_not_an_echo => "reply_ok", "thread",
        fail: ["echo.basic", "echo.large", "race.connfd"], any: [],
        says: [("echo.basic", "got \"ok\\n\"")];
    // A SIGINT handler that only the grader's own SIGINT runs: exercised, and failed for printf.
    sigint_handler_is_exercised_and_its_printf_found => "proc_sigint_printf", "process",
        fail: ["signal.safety"], any: [],
        says: [("signal.safety", "The SIGINT handler `sigint_handler` called exit")];
    server_that_never_replies_is_not_judged_on_service => "read_no_reply", "process",
        fail: ["echo.basic", "echo.large", "concurrency.overlap", "concurrency.partial-line", "concurrency.stay",
               "concurrency.many", "race.connfd", "leak.fd", "leak.listenfd", "zombies", "leak.threads",
               "liveness.churn", "robust.sigpipe", "fairness"], any: [],
        says: [("concurrency.overlap", "Not judged: the server sent nothing back to any client"),
               ("liveness.churn", "Not judged")];
    server_that_exits_after_its_first_client_says_so => "exit_after_first", "iterative",
        fail: ["echo.large", "concurrency.overlap", "concurrency.partial-line", "concurrency.stay", "concurrency.many",
               "race.connfd", "leak.fd", "zombies", "leak.threads", "liveness.churn", "robust.sigpipe", "fairness"], any: [],
        says: [("race.connfd", "exited with status 0")];

    // A small listen backlog (listen(fd, 5)) is not a concurrency bug: full marks, noted.
    fork_server_with_backlog_5_gets_full_marks => "backlog_fork", "process", fail: [], any: [],
        says: [("race.connfd", "Its listen backlog is 5")];
    thread_server_with_backlog_5_gets_full_marks => "backlog_thread", "thread", fail: [], any: [],
        says: [("concurrency.many", "Its listen backlog is 5")];
    select_server_with_backlog_5_gets_full_marks => "backlog_select", "event", fail: [], any: [];

    // CS:APP Fig. 12.6 selects on stdin too: with an open, empty stdin it grades as iterative.
    textbook_select_on_stdin_grades_as_iterative => "select_stdin", "iterative",
        fail: ["concurrency.overlap", "concurrency.partial-line", "concurrency.stay", "concurrency.many", "fairness"], any: [],
        says: [("concurrency.overlap", "after A disconnected: the server handles one client at a time")];
    fixed_port_is_named => "fixed_port", "unknown",
        fail: ["echo.basic", "echo.large", "concurrency.overlap", "concurrency.partial-line", "concurrency.stay",
               "concurrency.many", "race.connfd", "leak.fd", "leak.listenfd", "zombies", "leak.threads",
               "liveness.churn", "signal.safety", "robust.sigpipe", "fairness"], any: [],
        says: [("echo.basic", "listens on port 9669, not on the port given as its argument")];

    // Correct but unusual: an idle prethreaded pool, and servers slow to answer.
    idle_prethreaded_pool_is_not_a_deadlock => "pool_idle", "thread", fail: ["concurrency.many"], any: [],
        says: [("concurrency.many", "only 8 were served")];
    slow_process_server_gets_full_marks => "slow_process", "process", fail: [], any: [];
    slow_thread_server_gets_full_marks => "slow_thread", "thread", fail: [], any: [];

    // echo.large: every case runs, and the hint follows the measured shape.
    extra_nul_byte_is_named => "echo_extra_byte", "process", fail: ["echo.basic", "echo.large", "race.connfd"], any: [],
        says: [("echo.large", "One extra NUL byte came back after line 1")];
    line_cut_at_1024_bytes_is_named => "echo_cut_line", "thread", fail: ["echo.large"], any: [],
        says: [("echo.large", "stopped after 1024 bytes")];
    close_on_empty_line_is_named => "echo_close_on_empty", "process", fail: ["echo.large"], any: [],
        says: [("echo.large", "closed the connection when the line was a single byte")];
    rio_buffer_per_line_loses_pipelined_lines => "echo_rio_per_line", "thread", fail: ["echo.large"], any: [],
        says: [("echo.large", "Only the first 1 of the 50 lines sent in one write came back")];

    // Threads that never return are alive, not unjoined.
    threads_that_never_return_are_named_alive => "thread_spin_after_close", "thread", fail: ["leak.fd", "leak.threads"], any: [],
        says: [("leak.threads", "the threads are alive, not exited")];
    select_server_that_exits_on_epipe_fails_every_time => "select_exit_epipe", "event", fail: ["robust.sigpipe"], any: [],
        says: [("robust.sigpipe", "exited with status 1")];
    double_free_crash_is_reported_not_called_iterative => "thread_double_free", "thread",
        fail: ["echo.large", "race.connfd", "leak.fd", "zombies", "leak.threads", "liveness.churn", "robust.sigpipe"],
        any: ["concurrency.overlap", "concurrency.partial-line", "concurrency.stay", "concurrency.many", "fairness"],
        says: [("robust.sigpipe", "double free detected")];
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
