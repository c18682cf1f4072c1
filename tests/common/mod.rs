//! The one test-helper module: compile the C fixtures once per test binary, run `grade`,
//! read its report as the typed [`Report`]; [`platform`] holds what the platform tests share
//! (submission folders, the Gradescope schema, a JUnit parser).
#![allow(dead_code)]

pub mod browser;
pub mod platform;

use echograde::report::{CheckReport, Report};

use std::path::{Path, PathBuf};
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
    let src = root().join("fixtures").join(format!("{name}.c"));
    let with_common = !name.contains('/');
    compile_once(name, &src, with_common)
}

/// Compile a C source once per test binary (keyed by `key`) into target/fixtures.
fn compile_once(key: &str, src: &Path, with_common: bool) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<std::collections::HashMap<String, PathBuf>>> =
        OnceLock::new();
    let map = BUILT.get_or_init(Default::default);
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = map.get(key) {
        return p.clone();
    }
    let dir = out_dir();
    std::fs::create_dir_all(&dir).expect("create target/fixtures");
    let bin = dir.join(key.replace('/', "__"));
    let mut cmd = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cmd.args(["-O2", "-g", "-Wall", "-Wextra", "-pthread", "-I"])
        .arg(root().join("fixtures"))
        .arg(src);
    if with_common {
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
    map.insert(key.to_string(), bin.clone());
    bin
}

/// A copy of `bin` in a fresh folder of mode 0700 (what a clone under `/root` or `mktemp -d`
/// is): as root, the grader's unprivileged server user cannot reach it, so the grader runs
/// the server from a copy of its own. Keep the `TempDir` while the copy is used.
pub fn private_copy(bin: &Path) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::Builder::new()
        .prefix("echograde-private")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let copy = d.path().join(bin.file_name().unwrap());
    // Copied by `cp`, not in this process: a descriptor open for writing here could be
    // inherited by a child another test thread is forking, and exec'ing the copy would then
    // fail with ETXTBSY until that child has exec'd.
    let st = std::process::Command::new("cp")
        .arg(bin)
        .arg(&copy)
        .status()
        .expect("run cp");
    assert!(st.success(), "cp {} {}", bin.display(), copy.display());
    (d, copy)
}

/// Build the reference crate's binaries (same profile as the tests) once per test binary;
/// their folder.
pub fn reference_bins() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let release = !cfg!(debug_assertions);
        let mut cmd = std::process::Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "-p", "echograde-reference", "--bins"])
            .current_dir(root());
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building the reference servers failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target"));
        target.join(if release { "release" } else { "debug" })
    })
    .clone()
}

/// The `grade` binary under test.
pub fn grade_cmd() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("grade").expect("grade binary")
}

/// Run grade on a server with extra args; return (exit code, report as JSON value, stderr).
/// The seed is 42 unless `extra` names one. Panics if any process of the run outlived grade
/// (see [`Contained`]): every grading in the tests also checks that nothing is left running.
pub fn grade_json(server: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args: Vec<std::ffi::OsString> = vec!["--format".into(), "json".into()];
    if !extra.contains(&"--seed") {
        args.extend(["--seed".into(), "42".into()]);
    }
    args.extend(extra.iter().map(Into::into));
    args.push(server.into());
    let run = Contained::spawn(
        &args,
        std::process::Stdio::piped(),
        std::process::Stdio::piped(),
    );
    let (out, leftovers) = run.wait_with_output();
    let code = out.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_nothing_left(&leftovers, &format!("grading {}", server.display()));
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("report is not JSON ({e}); exit {code}; stderr: {stderr}"));
    (code, report, stderr)
}

/// [`grade_json`], the report read as the typed model it is.
pub fn grade_report(server: &Path, extra: &[&str]) -> (i32, Report, String) {
    let (code, v, stderr) = grade_json(server, extra);
    let report = serde_json::from_value(v).expect("the report deserializes");
    (code, report, stderr)
}

/// A JSON report's text as the typed model.
pub fn report_of(stdout: &[u8], stderr: &str) -> Report {
    serde_json::from_slice(stdout).unwrap_or_else(|e| panic!("not a report ({e}): {stderr}"))
}

/// The check of a report by the id a reader sees (`echo.basic`, `echoserverp/echo.basic`).
pub fn entry<'r>(report: &'r Report, id: &str) -> &'r CheckReport {
    report
        .entries()
        .find(|e| e.qualified_id() == id)
        .unwrap_or_else(|| panic!("no check {id}"))
        .check
}

/// `qualified id -> status` of every check of a typed report.
pub fn verdicts(report: &Report) -> std::collections::BTreeMap<String, String> {
    report
        .entries()
        .map(|e| (e.qualified_id(), status_word(e.check.status)))
        .collect()
}

/// A status as the report writes it (`pass`, `fail`, ...).
pub fn status_word(s: echograde::report::Status) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .expect("a status serializes as a word")
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

/// A process that outlived the program run under [`Contained`].
#[derive(Debug, Clone)]
pub struct Leftover {
    pub pid: i32,
    /// The state letter of /proc/PID/stat when it was found (`Z`: exited, not yet reaped).
    pub state: char,
    /// /proc/PID/exe, or `(comm)` where that could not be read.
    pub exe: String,
}

impl Leftover {
    /// Still running (or stopped): anything but an exited, unreaped zombie.
    pub fn running(&self) -> bool {
        self.state != 'Z'
    }
}

/// Fail the test, naming them, if any leftover was still running.
pub fn assert_nothing_left(leftovers: &[Leftover], what: &str) {
    let running: Vec<&Leftover> = leftovers.iter().filter(|l| l.running()).collect();
    assert!(
        running.is_empty(),
        "{what}: processes left running after grade exited (now killed): {running:?}"
    );
}

/// `grade ARGS` run under `tests/support/subreaper.c`: a child subreaper that is grade's
/// parent. Whatever grade started and left behind is re-parented to it when grade exits —
/// whichever user it runs as and wherever its binary is (the server may run from the grader's
/// copy) — and it lists, kills (by PID) and reaps all of it. Runs in parallel threads do not
/// see each other's processes.
pub struct Contained {
    child: std::process::Child,
    leftovers: tempfile::NamedTempFile,
}

impl Contained {
    /// Start `grade ARGS` (stdin closed).
    pub fn spawn(
        args: &[std::ffi::OsString],
        stdout: std::process::Stdio,
        stderr: std::process::Stdio,
    ) -> Contained {
        Self::spawn_program(grade_bin().as_os_str(), args, stdout, stderr)
    }

    /// Start any program under the subreaper.
    pub fn spawn_program(
        program: &std::ffi::OsStr,
        args: &[std::ffi::OsString],
        stdout: std::process::Stdio,
        stderr: std::process::Stdio,
    ) -> Contained {
        let helper = compile_once(
            "support/subreaper",
            &root().join("tests/support/subreaper.c"),
            false,
        );
        let leftovers = tempfile::NamedTempFile::new().unwrap();
        let child = std::process::Command::new(helper)
            .arg(leftovers.path())
            .arg(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start the subreaper helper");
        Contained { child, leftovers }
    }

    /// The PID of the program (the helper's only child), once it has been forked and while
    /// it runs.
    pub fn program_pid(&self) -> Option<i32> {
        children_of(self.child.id() as i32).into_iter().next()
    }

    /// Wait for the program; its output and what it left behind (already killed).
    pub fn wait_with_output(self) -> (std::process::Output, Vec<Leftover>) {
        let out = self.child.wait_with_output().expect("wait for the helper");
        let leftovers = read_leftovers(self.leftovers.path(), &out);
        (out, leftovers)
    }
}

fn read_leftovers(path: &Path, out: &std::process::Output) -> Vec<Leftover> {
    // 125: the helper itself failed; its file is then not to be trusted.
    assert_ne!(
        out.status.code(),
        Some(125),
        "the subreaper helper failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut f = l.splitn(3, ' ');
            Leftover {
                pid: f.next().unwrap().parse().unwrap(),
                state: f.next().unwrap().chars().next().unwrap(),
                exe: f.next().unwrap_or("").to_string(),
            }
        })
        .collect()
}

/// The `grade` binary cargo built for the tests.
pub fn grade_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_grade"))
}

/// The parent PID of a process (from /proc/PID/stat), if it exists.
pub fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect()
}

/// The processes whose parent is `pid`.
pub fn children_of(pid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| parent_of(p) == Some(pid))
        .collect()
}

/// Every process descending from `pid` (children, theirs, ...), as /proc shows them now.
pub fn descendants_of(pid: i32) -> Vec<i32> {
    let parents: Vec<(i32, i32)> = all_pids()
        .into_iter()
        .filter_map(|p| Some((p, parent_of(p)?)))
        .collect();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parents.iter().filter(|&&(_, pp)| pp == p).map(|&(c, _)| c));
        i += 1;
    }
    found.remove(0);
    found
}
