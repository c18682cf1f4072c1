//! Shared test support: compile the C fixtures once per test binary, run `grade`, read its
//! report.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where compiled fixtures go (inside target/, never committed).
fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    target.join("fixtures")
}

/// Compile `fixtures/NAME.c` (with `fixtures/common.c`) once; return the binary's path.
pub fn fixture(name: &str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<std::collections::HashMap<String, PathBuf>>> =
        OnceLock::new();
    let map = BUILT.get_or_init(Default::default);
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = map.get(name) {
        return p.clone();
    }
    let dir = out_dir();
    std::fs::create_dir_all(&dir).expect("create target/fixtures");
    let src = root().join("fixtures").join(format!("{name}.c"));
    let bin = dir.join(name.replace('/', "__"));
    let mut cmd = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cmd.args(["-O2", "-g", "-Wall", "-Wextra", "-pthread", "-I"])
        .arg(root().join("fixtures"))
        .arg(&src);
    if !name.contains('/') {
        cmd.arg(root().join("fixtures/common.c"));
    }
    let out = cmd
        .arg("-o")
        .arg(&bin)
        .output()
        .expect("run the C compiler");
    assert!(
        out.status.success(),
        "compiling {}: {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    map.insert(name.to_string(), bin.clone());
    bin
}

/// The `grade` binary under test.
pub fn grade_cmd() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("grade").expect("grade binary")
}

/// Run grade on a server with extra args; return (exit code, report as JSON value, stderr).
/// The seed is 42 unless `extra` names one.
pub fn grade_json(server: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut cmd = grade_cmd();
    cmd.args(["--format", "json"]);
    if !extra.contains(&"--seed") {
        cmd.args(["--seed", "42"]);
    }
    let out: Output = cmd.args(extra).arg(server).output().expect("run grade");
    let code = out.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("report is not JSON ({e}); exit {code}; stderr: {stderr}"));
    (code, report, stderr)
}

/// `id -> status` of every check in a report.
pub fn statuses(report: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Processes on the machine whose executable is `bin` (by /proc/PID/exe; tests kill by PID).
pub fn processes_running(bin: &Path) -> Vec<i32> {
    let bin = std::fs::canonicalize(bin).unwrap_or(bin.to_path_buf());
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) {
            if exe == bin {
                v.push(pid);
            }
        }
    }
    v
}
