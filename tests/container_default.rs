//! Graded where courses grade (issue 24): in a container with Docker's default capabilities.
//! Gradescope runs the autograder as root in a Docker container, Autolab's Tango as an
//! ordinary user in one. `scripts/docker-default/run` constrains `grade` the way such a
//! container does (Docker's 14 capabilities, moby's default seccomp profile without
//! CAP_SYS_ADMIN, nofile 1024:1024 and nproc 4096:4096, namespaces of its own with read-only
//! cgroups), without Docker; these tests grade under it: the reference servers keep full
//! marks as root and as an ordinary user, buggy servers get the verdicts their reviewed
//! snapshots hold, and a hostile one is graded in bounded time with nothing left behind.
//!
//! The real containers (podman, the Gradescope and Autolab flows) are
//! `ECHOGRADE_CONTAINER=1 cargo test --release --test container_default in_podman` (minutes:
//! it builds a Debian image), through `scripts/container.sh`.

mod common;

use common::*;
use echograde::report::{Report, RunStatus, Status};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The uid of Autolab-like runs: `nobody`'s on Debian, an ordinary user with no files.
const USER: &str = "65534";

/// What a grading may take beyond the bound its report states (as in tests/hostile.rs).
const OVERHEAD: Duration = Duration::from_secs(3);

fn wrapper() -> PathBuf {
    root().join("scripts/docker-default/run")
}

/// The wrapper's `--probe` as root, once per test binary: it installs setpriv and capsh if
/// they are missing and compiles its seccomp program. `Err(reason)` where the tests cannot
/// run at all (not root, or the tools cannot be installed); any other failure panics.
fn ready() -> Result<String, String> {
    static READY: OnceLock<Result<String, String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            if !nix::unistd::geteuid().is_root() {
                return Err(
                    "the container simulation needs root (it drops root's capabilities \
                            as dockerd does, and changes to an ordinary user)"
                        .into(),
                );
            }
            let out = std::process::Command::new(wrapper())
                .arg("--probe")
                .stdin(Stdio::null())
                .output()
                .expect("run scripts/docker-default/run");
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("could not install") {
                return Err(format!(
                    "setpriv/capsh/cc are missing and could not be installed: {stderr}"
                ));
            }
            assert!(
                out.status.success(),
                "scripts/docker-default/run --probe failed: {stderr}"
            );
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        })
        .clone()
}

/// The probe's output, or return from the test saying why it is skipped.
macro_rules! ready_or_skip {
    () => {
        match ready() {
            Ok(probe) => probe,
            Err(why) => {
                eprintln!("skipped: {why}");
                return;
            }
        }
    };
}

/// `grade --format json --seed SEED EXTRA SERVER` under the wrapper (with `opts`, e.g.
/// `--user 65534`), from `cwd` if given; exit code, the typed report, stderr, wall time.
/// Fails the test if anything of the run outlived it (the leftover check of tests/common).
fn grade_in_container(
    opts: &[&str],
    cwd: Option<&Path>,
    grade: &Path,
    server: &Path,
    extra: &[&str],
) -> (i32, Report, String, Duration) {
    let mut args: Vec<OsString> = Vec::new();
    let program: OsString = match cwd {
        // `env -C`: the wrapper does not change folder, and an ordinary user cannot work in
        // a 0700 clone.
        Some(dir) => {
            args.extend(["-C".into(), dir.into(), wrapper().into()]);
            "env".into()
        }
        None => wrapper().into(),
    };
    args.extend(opts.iter().map(Into::into));
    args.extend(["--".into(), grade.into(), "--format".into(), "json".into()]);
    if !extra.contains(&"--seed") {
        args.extend(["--seed".into(), "42".into()]);
    }
    args.extend(extra.iter().map(Into::into));
    args.push(server.into());
    let t0 = Instant::now();
    let run = Contained::spawn_program(&program, &args, Stdio::piped(), Stdio::piped());
    let (out, leftovers) = run.wait_with_output();
    let took = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_nothing_left(
        &leftovers,
        &format!("grading {} in the container", server.display()),
    );
    let code = out.status.code().unwrap_or(-1);
    let report: Report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "grading {} in the container: no report ({e}); exit {code}; stderr: {stderr}",
            server.display()
        )
    });
    (code, report, stderr, took)
}

/// What did not pass, one line a check, for a failure message.
fn not_passed(report: &Report) -> String {
    report
        .entries()
        .filter(|e| e.check.status != Status::Pass)
        .map(|e| {
            format!(
                "{}: {:?}: {}",
                e.qualified_id(),
                e.check.status,
                e.check.feedback
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn containment(report: &Report) -> String {
    serde_json::to_string(&report.parts[0].server.containment).unwrap_or_default()
}

/// The probe lines that say what a container's process is allowed.
#[test]
fn the_wrapper_constrains_as_dockers_default_container_does() {
    let probe = ready_or_skip!();
    let user = std::process::Command::new(wrapper())
        .args(["--user", USER, "--probe"])
        .output()
        .expect("run the wrapper");
    assert!(user.status.success(), "{user:?}");
    let user = String::from_utf8_lossy(&user.stdout).into_owned();
    // Docker's default capability set is 0xa80425fb; the bounding set too, so no child of
    // the container regains another.
    let docker_caps = "00000000a80425fb";
    for (who, text, eff) in [
        ("root", &probe, docker_caps),
        ("user", &user, "0000000000000000"),
    ] {
        let has = |line: &str| {
            text.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == line)
        };
        for line in [
            format!("CapEff: {eff}"),
            format!("CapBnd: {docker_caps}"),
            "CapAmb: 0000000000000000".into(),
            "CapInh: 0000000000000000".into(),
            "NoNewPrivs: 0".into(),
            "Seccomp: 2".into(),
            "nofile=1024:1024".into(),
            "nproc=4096:4096".into(),
            "unshare(CLONE_NEWUTS): EPERM".into(),
            "setns(-1): EPERM".into(),
            "mount: EPERM".into(),
            "open_tree(-1): EPERM".into(),
            "move_mount(-1): EPERM".into(),
            "clone(CLONE_NEWNS|CLONE_FS): EPERM".into(),
            "clone3(NULL): ENOSYS".into(),
            "keyctl(-1): EPERM".into(),
            "bpf(-1): EPERM".into(),
            "socket(AF_VSOCK): EPERM".into(),
            // What recent profiles allow: a filtered call would say EPERM, not its own errno.
            "close_range(1000,1000): ok".into(),
            "pidfd_open(-1): EINVAL".into(),
            "landlock_create_ruleset(version): ok".into(),
        ] {
            assert!(
                has(&line),
                "{who}: the probe does not say {line:?}:\n{text}"
            );
        }
    }
    assert!(probe.contains("uid=0 euid=0"), "{probe}");
    assert!(
        user.contains(&format!("uid={USER} euid={USER} gid={USER}")),
        "{user}"
    );
}

/// A reference server graded as root in the container: full marks.
fn full_marks_as_root(server: &str, model: &str) {
    let _ = ready_or_skip!();
    let bin = reference_bins().join(server);
    let (code, report, stderr, took) = grade_in_container(&[], None, &grade_bin(), &bin, &[]);
    eprintln!(
        "{server} as root in the container: {} / {} in {:.1} s; containment {}",
        report.score,
        report.max_score,
        took.as_secs_f64(),
        containment(&report)
    );
    assert_eq!(code, 0, "{server}: exit {code}: {stderr}");
    assert_eq!(report.status, RunStatus::Graded, "{server}: {stderr}");
    assert_eq!(
        report.model().as_str(),
        model,
        "{server}: {}",
        not_passed(&report)
    );
    assert_eq!(
        report.score,
        report.max_score,
        "{server} lost points as root in the container:\n{}",
        not_passed(&report)
    );
}

#[test]
fn as_root_echo_process_gets_full_marks() {
    full_marks_as_root("echo-process", "process");
}

#[test]
fn as_root_echo_event_gets_full_marks() {
    full_marks_as_root("echo-event", "event");
}

#[test]
fn as_root_echo_thread_gets_full_marks() {
    full_marks_as_root("echo-thread", "thread");
}

#[test]
fn as_root_echo_pool_gets_full_marks() {
    full_marks_as_root("echo-pool", "thread");
}

/// The grader and reference server `server` copied into a fresh 0755 folder, where an
/// ordinary user can run them (the clone itself may be 0700). By cp, as tests/common's
/// private_copy does (no descriptor open for writing here).
fn reachable_copies(prefix: &str, server: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for src in [grade_bin(), reference_bins().join(server)] {
        let st = std::process::Command::new("cp")
            .arg(&src)
            .arg(d.path())
            .status()
            .unwrap();
        assert!(st.success(), "cp {}", src.display());
    }
    d
}

/// Autolab's way: the grader itself runs as an ordinary user in the container. The grader and
/// the server are copied where that user can reach them (the clone may be 0700).
#[test]
fn as_an_ordinary_user_a_reference_server_gets_full_marks() {
    let _ = ready_or_skip!();
    let d = reachable_copies("echograde-container-user", "echo-process");
    let (code, report, stderr, took) = grade_in_container(
        &["--user", USER],
        Some(d.path()),
        &d.path().join("grade"),
        &d.path().join("echo-process"),
        &[],
    );
    eprintln!(
        "echo-process as uid {USER} in the container: {} / {} in {:.1} s; containment {}",
        report.score,
        report.max_score,
        took.as_secs_f64(),
        containment(&report)
    );
    assert_eq!(code, 0, "exit {code}: {stderr}");
    assert_eq!(
        report.model().as_str(),
        "process",
        "{}",
        not_passed(&report)
    );
    assert_eq!(
        report.score,
        report.max_score,
        "echo-process lost points as an ordinary user in the container:\n{}",
        not_passed(&report)
    );
}

/// Podman's seccomp profile, unlike Docker's, lets an ordinary user create a user namespace;
/// so does a bare Autolab VM. The grader enters one, where /proc shows every capability, but
/// a hard rlimit can only be raised with CAP_SYS_RESOURCE in the machine's namespace: with a
/// hard `nofile` of 1024 the grader must still clamp to it (podman --user 65534 gave 0/100).
#[test]
fn as_an_ordinary_user_in_its_own_user_namespace_a_low_hard_nofile_is_respected() {
    let _ = ready_or_skip!();
    let d = reachable_copies("echograde-userns", "echo-thread");
    let args: Vec<OsString> = [
        "-C",
        d.path().to_str().unwrap(),
        "prlimit",
        "--nofile=1024:1024",
        "setpriv",
        &format!("--reuid={USER}"),
        &format!("--regid={USER}"),
        "--clear-groups",
        "./grade",
        "--format",
        "json",
        "--seed",
        "42",
        "--only",
        "echo.basic,concurrency.many",
        "./echo-thread",
    ]
    .iter()
    .map(Into::into)
    .collect();
    let run = Contained::spawn_program("env".as_ref(), &args, Stdio::piped(), Stdio::piped());
    let (out, leftovers) = run.wait_with_output();
    assert_nothing_left(&leftovers, "grading with a low hard nofile");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = report_of(&out.stdout, &stderr);
    assert_eq!(
        report.score,
        report.max_score,
        "lost points as uid {USER} with nofile 1024:1024:\n{}",
        not_passed(&report)
    );
}

/// `check id -> PASS/FAIL/...` of a fixture's reviewed snapshot (tests/snapshots/, written by
/// tests/fixtures.rs): only the checks whose verdict does not depend on chance are in it.
fn snapshot_verdicts(name: &str) -> Vec<(String, String)> {
    let path = root().join(format!("tests/snapshots/fixtures__{name}.snap"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let verdicts: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let status = w.next()?;
            let id = w.next()?;
            ["PASS", "FAIL", "ERROR", "SKIP"]
                .contains(&status)
                .then(|| (id.to_string(), status.to_string()))
        })
        .collect();
    assert!(!verdicts.is_empty(), "no verdicts in {}", path.display());
    verdicts
}

fn status_label(s: Status) -> &'static str {
    match s {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Error => "ERROR",
        Status::Skipped => "SKIP",
    }
}

/// A buggy fixture graded as root in the container gets, check by check, the verdicts its
/// snapshot holds (the same as on the bare machine: same seed, full default rubric), except
/// those `differ` names with the verdict the container's constraints make (and why).
fn same_verdicts_as_its_snapshot(name: &str) {
    same_verdicts_as_its_snapshot_but(name, &[]);
}

fn same_verdicts_as_its_snapshot_but(name: &str, differ: &[(&str, &str)]) {
    let _ = ready_or_skip!();
    let mut want = snapshot_verdicts(name);
    for (id, status) in differ {
        let w = want
            .iter_mut()
            .find(|(i, _)| i == id)
            .unwrap_or_else(|| panic!("{name}: {id} is not in the snapshot"));
        assert_ne!(
            w.1, *status,
            "{name}: {id} is {status} in the snapshot already"
        );
        w.1 = status.to_string();
    }
    let bin = fixture(name);
    let (code, report, stderr, took) = grade_in_container(&[], None, &grade_bin(), &bin, &[]);
    eprintln!(
        "{name} as root in the container: {} / {} in {:.1} s",
        report.score,
        report.max_score,
        took.as_secs_f64()
    );
    assert_eq!(code, 0, "{name}: exit {code}: {stderr}");
    let mut wrong = Vec::new();
    for (id, status) in &want {
        match report.entries().find(|e| e.check.id == *id) {
            None => wrong.push(format!("{id}: not in the report")),
            Some(e) if status_label(e.check.status) != status => wrong.push(format!(
                "{id}: {} in the container, {status} in the snapshot: {}",
                status_label(e.check.status),
                e.check.feedback
            )),
            Some(_) => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "{name}: verdicts that differ in the container:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn iterative_server_is_still_iterative() {
    same_verdicts_as_its_snapshot("iterative");
}

#[test]
fn zombies_are_still_seen() {
    same_verdicts_as_its_snapshot("proc_no_reap");
}

/// The one verdict a container changes: the grader gives a server `nofile` 16384, a container
/// allows 1024 (its hard limit, which it cannot raise), and a server that leaks a descriptor
/// per client runs out during liveness.churn's thousand-odd connections (accept fails, it
/// exits). On the bare machine it lasts the check.
#[test]
fn a_leaked_connfd_is_still_seen_and_runs_out_under_the_containers_limit() {
    same_verdicts_as_its_snapshot_but("proc_leak_connfd", &[("liveness.churn", "FAIL")]);
}

/// signal.safety reads the kernel's handlers (a ptrace of the server): without
/// CAP_SYS_PTRACE the grader must do it as the server's own user.
#[test]
fn printf_in_a_handler_is_still_seen() {
    same_verdicts_as_its_snapshot("proc_printf_handler");
}

#[test]
fn leaked_thread_stacks_are_still_seen() {
    same_verdicts_as_its_snapshot("thread_joinable_leak");
}

#[test]
fn death_by_sigpipe_is_still_seen() {
    same_verdicts_as_its_snapshot("thread_sigpipe");
}

/// A fork bomb where cgroups are read-only (as in a container): rlimits stand in, the grading
/// ends within its bound, scores low, and leaves nothing running.
#[test]
fn a_fork_bomb_is_graded_in_bounded_time() {
    let _ = ready_or_skip!();
    let bin = fixture("hostile/fork_bomb");
    let (code, report, stderr, took) = grade_in_container(
        &[],
        None,
        &grade_bin(),
        &bin,
        &[
            "--seed",
            "7",
            "--only",
            "echo.basic,echo.large,concurrency.stay,concurrency.many,zombies,robust.sigpipe",
        ],
    );
    eprintln!(
        "fork_bomb as root in the container: {} / {} in {:.1} s; containment {}",
        report.score,
        report.max_score,
        took.as_secs_f64(),
        containment(&report)
    );
    assert_eq!(code, 0, "exit {code}: {stderr}");
    assert_eq!(report.status, RunStatus::Graded, "{stderr}");
    let bound = Duration::from_secs_f64(report.bound_s.expect("bound_s"));
    assert!(
        took < bound + OVERHEAD,
        "grading took {took:?}, its bound is {bound:?}"
    );
    for c in report.entries().map(|e| e.check) {
        let check_bound = c.bound_s.expect("a check's bound_s");
        assert!(
            c.duration_s <= check_bound + 0.01,
            "{} took {} s, its bound is {check_bound} s",
            c.id,
            c.duration_s
        );
    }
    // It is an iterative echo server under its swarm: it was started and graded, not refused.
    let basic = entry(&report, "echo.basic");
    assert_eq!(basic.status, Status::Pass, "{}", not_passed(&report));
    assert!(
        report.score / report.max_score <= 0.8,
        "the fork bomb scored {} of {}",
        report.score,
        report.max_score
    );
}

/// The real containers: `scripts/container.sh` (podman with runc, Docker's default
/// capabilities and seccomp profile, container ulimits) runs Gradescope's `run_autograder` as
/// root and Autolab's job as uid 65534 on the correct submission, and grades each reference
/// server as root and as 65534: every score is full. Opt-in (`ECHOGRADE_CONTAINER=1`): it
/// installs podman and builds a Debian image, minutes the first time.
#[test]
fn in_podman_every_flow_gets_full_marks() {
    if std::env::var_os("ECHOGRADE_CONTAINER").is_none_or(|v| v != "1") {
        eprintln!(
            "skipped: set ECHOGRADE_CONTAINER=1 to grade in real containers (podman; minutes)"
        );
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "ECHOGRADE_CONTAINER=1 needs root (podman as root, debootstrap)"
    );
    let out = std::process::Command::new(root().join("scripts/container.sh"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/container.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scripts/container.sh failed:\n{stdout}"
    );
    // `container.sh: RESULT <flow> <who> <what> <score>/<max>`
    let results: Vec<(String, f64, f64)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("container.sh: RESULT "))
        .map(|r| {
            let (what, score) = r.rsplit_once(' ').expect("a score");
            let (got, max) = score.split_once('/').expect("score/max");
            (what.to_string(), got.parse().unwrap(), max.parse().unwrap())
        })
        .collect();
    // Gradescope, Autolab, and 4 servers twice.
    assert_eq!(results.len(), 10, "{stdout}");
    let short: Vec<String> = results
        .iter()
        .filter(|(_, got, max)| got != max || *max == 0.0)
        .map(|(what, got, max)| format!("{what}: {got}/{max}"))
        .collect();
    assert!(
        short.is_empty(),
        "lost points in the container:\n{}",
        short.join("\n")
    );
}
