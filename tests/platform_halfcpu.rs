//! Gradescope's default machine has half a vCPU: the grader's verdicts must hold there. In a
//! test binary of its own, so that no other test competes for the CPU while it runs.

mod common;

use common::platform::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Gradescope's default machine has half a vCPU: with run_autograder's defaults (the whole
/// handout rubric, --time-scale 2) in a CPU cgroup of half a CPU, the correct submission still
/// gets full marks. Skipped where no cgroup v1 CPU controller can be written (not root, v2).
#[test]
fn verdicts_hold_on_half_a_cpu() {
    let base = Path::new("/sys/fs/cgroup/cpu");
    let cg = base.join(format!("echograde-halfcpu-{}", std::process::id()));
    if std::fs::create_dir(&cg).is_err()
        || std::fs::write(cg.join("cpu.cfs_period_us"), "100000").is_err()
        || std::fs::write(cg.join("cpu.cfs_quota_us"), "50000").is_err()
    {
        let _ = std::fs::remove_dir(&cg);
        eprintln!("skipped: cannot make a CPU cgroup of half a CPU here");
        return;
    }
    let (_d, root_dir) = autograder_root();
    correct(&root_dir.join("submission"));
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec ./run_autograder",
            cg.display()
        ))
        .current_dir(&root_dir)
        .env("AUTOGRADER_ROOT", &root_dir)
        .env("GRADE_FLAGS", "--time-scale 2 --seed 42")
        .output()
        .unwrap();
    // The cgroup is empty once run_autograder and everything it started have exited.
    for _ in 0..50 {
        if std::fs::remove_dir(&cg).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(out.status.success());
    let v =
        check_gradescope(&std::fs::read_to_string(root_dir.join("results/results.json")).unwrap());
    let lost: Vec<String> = v["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] != "passed")
        .map(|t| format!("{}: {}", t["name"], t["output"]))
        .collect();
    assert_eq!(v["score"], 300.0, "on half a CPU: {lost:#?}");
}
