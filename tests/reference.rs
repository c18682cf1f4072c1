//! The reference servers score full marks on the default rubric and on their model's rubric.
//! (The 20-in-a-row soak is `ECHOGRADE_REPEAT=20 cargo test --release --test reference`.)

mod common;

use common::*;
use echograde::report::Status;

fn full_marks(server: &str, model: &str, rubric: &str) {
    let bin = reference_bins().join(server);
    let repeat: usize = std::env::var("ECHOGRADE_REPEAT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let rubric_path = root().join("graders").join(rubric);
    for run in 0..repeat {
        let seed = (100 + run).to_string();
        for extra in [
            vec!["--seed", &seed],
            vec!["--seed", &seed, "--rubric", rubric_path.to_str().unwrap()],
        ] {
            let (code, report, stderr) = grade_report(&bin, &extra);
            assert_eq!(code, 0, "{server}: {stderr}");
            assert_eq!(report.model().as_str(), model, "{server}");
            let failed: Vec<String> = report
                .entries()
                .filter(|e| e.check.status != Status::Pass)
                .map(|e| format!("{}: {}", e.check.id, e.check.feedback))
                .collect();
            assert!(
                failed.is_empty(),
                "{server} (run {run}, {extra:?}) lost points:\n{}",
                failed.join("\n")
            );
            assert_eq!(report.score, 100.0, "{server}");
        }
    }
}

#[test]
fn echo_process_gets_full_marks() {
    full_marks("echo-process", "process", "echo-process.yaml");
}

#[test]
fn echo_event_gets_full_marks() {
    full_marks("echo-event", "event", "echo-event.yaml");
}

#[test]
fn echo_thread_gets_full_marks() {
    full_marks("echo-thread", "thread", "echo-thread.yaml");
}

#[test]
fn echo_pool_gets_full_marks() {
    full_marks("echo-pool", "thread", "echo-thread.yaml");
}

#[test]
fn reference_servers_refuse_bad_arguments_with_exit_2() {
    for server in ["echo-process", "echo-event", "echo-thread", "echo-pool"] {
        let out = std::process::Command::new(reference_bins().join(server))
            .arg("not-a-port")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{server}");
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .to_lowercase()
                .contains("usage"),
            "{server}"
        );
    }
}
