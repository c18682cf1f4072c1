//! Containment of untrusted servers: privilege drop, network isolation, interruption, output
//! that cannot pass for the grader's, and limits named in feedback.

mod common;

use common::*;
use echograde::report::{Report, RunStatus, Status};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn as_root_the_server_cannot_write_where_the_report_goes() {
    if !is_root() {
        eprintln!("skipped: the grader drops privileges only when it runs as root");
        return;
    }
    let bin = fixture("hostile/write_report");
    let d = tempfile::tempdir().unwrap();
    let report = d.path().join("report.yaml");
    let out = grade_cmd()
        .args(["--seed", "3", "--only", "echo.basic", "--output"])
        .arg(&report)
        .arg(&bin)
        .arg("--")
        .arg("{port}")
        .arg(d.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !d.path().join("forged-report.yaml").exists(),
        "the server wrote into the report's directory"
    );
    let v: Report = serde_saphyr::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    // By default a uid of the grading's own, which no account on the machine has.
    let user = v.parts[0].server.containment["user"].as_str().unwrap();
    assert!(user.contains("its own"), "{user}");
    assert_eq!(v.parts[0].checks[0].status, Status::Pass);
    assert_eq!(v.score, 8.0, "the report is the grader's own");
}

#[test]
fn by_default_the_network_is_isolated_and_a_correct_server_keeps_full_marks() {
    let bin = fixture("ok_thread");
    let (code, report, stderr) = grade_report(&bin, &["--only", "echo.basic,concurrency.overlap"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report.score, 17.0);
    assert!(report.parts[0].server.containment["network"]
        .as_str()
        .is_some_and(|n| n.starts_with("isolated")));
}

#[test]
fn an_interrupted_grader_kills_the_server_and_writes_what_it_has() {
    // The server sits in a private (0700) folder, as it does in a clone under /root or in
    // `mktemp -d`: as root the grader then runs it as another user from a copy of its own. So
    // the server is found the way the grader runs it, as a process descending from grade, not
    // by its path.
    let (_private, bin) = private_copy(&fixture("iterative"));
    let d = tempfile::tempdir().unwrap();
    let report = d.path().join("report.json");
    let args: Vec<std::ffi::OsString> = vec![
        "--format".into(),
        "json".into(),
        "--seed".into(),
        "1".into(),
        "--output".into(),
        report.clone().into(),
        bin.clone().into(),
    ];
    let run = Contained::spawn(&args, Stdio::null(), Stdio::null());
    let grade_exe = std::fs::canonicalize(grade_bin()).unwrap();
    // Wait until a server instance is running under grade (observed in /proc: a descendant
    // that has exec'd something other than grade), then interrupt grade.
    let start = Instant::now();
    let grade = loop {
        if let Some(grade) = run.program_pid() {
            let server_running = descendants_of(grade).into_iter().any(|p| {
                std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|exe| exe != grade_exe)
            });
            if server_running {
                break grade;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no server started"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(grade), nix::sys::signal::SIGINT).unwrap();
    let (out, leftovers) = run.wait_with_output();
    assert_eq!(out.status.code(), Some(3), "an interrupted run exits 3");
    let v: Report = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(v.status, RunStatus::Error);
    assert!(v
        .error
        .as_deref()
        .is_some_and(|e| e.contains("interrupted")));
    assert_nothing_left(&leftovers, "the interrupted grading");
}

#[test]
fn server_output_cannot_pass_for_the_graders_results() {
    let bin = fixture("hostile/fake_results");
    for format in ["yaml", "json", "human"] {
        let out = grade_cmd()
            .args([
                "--seed",
                "2",
                "--only",
                "echo.basic,concurrency.overlap",
                "--format",
                format,
            ])
            .arg(&bin)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\r'),
            "{format}: raw control characters reached stdout"
        );
        // No line of stdout is the server's fake score line, unescaped at the start of a line.
        assert!(
            !text.lines().any(|l| l == "score: 100"),
            "{format}: a fake result line reached stdout as is"
        );
        if format == "yaml" {
            let v: Report = serde_saphyr::from_str(&text).unwrap();
            assert_eq!(v.max_score, 17.0);
        }
    }
}

/// Run `grade ARGS` with `GRADESCOPE_TOKEN` set for the grader (under the leftover-checking
/// helper); its exit code, standard output and standard error.
fn grade_with_token(token: &str, args: &[std::ffi::OsString]) -> (i32, String, String) {
    let mut all: Vec<std::ffi::OsString> = vec![
        format!("GRADESCOPE_TOKEN={token}").into(),
        grade_bin().into(),
    ];
    all.extend(args.iter().cloned());
    let run = Contained::spawn_program("env".as_ref(), &all, Stdio::piped(), Stdio::piped());
    let (out, leftovers) = run.wait_with_output();
    assert_nothing_left(&leftovers, "grading with a token");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A server that hunts its environment for credentials and prints them, hoping the report
/// echoes them back: the grader's token is not in its view, so not in the report either.
#[test]
fn the_graders_secrets_are_not_in_the_servers_environment_nor_in_the_report() {
    let token = "secret-7f3a9c";
    let bin = fixture("hostile/env_secrets");
    let (code, report, stderr) = grade_with_token(
        token,
        &[
            "--format".into(),
            "json".into(),
            "--only".into(),
            "echo.basic".into(),
            bin.into(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        report.contains("variables="),
        "the server's words are in the report (so the absence below means something): {report}"
    );
    assert!(
        !report.contains(token) && !stderr.contains(token),
        "the grader's token reached the server and the report: {report}"
    );
}

/// `grade SERVER` refuses what is not a regular file: a symbolic link (to a correct server,
/// say) and a FIFO (which would block open()), at once and with the reason.
#[test]
fn a_server_that_is_a_symlink_or_a_fifo_is_refused_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let link = d.path().join("echoserverp");
    std::os::unix::fs::symlink(fixture("ok_process"), &link).unwrap();
    let fifo = d.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o755)).unwrap();
    for (path, why) in [(&link, "symbolic link"), (&fifo, "FIFO")] {
        let t0 = Instant::now();
        let out = grade_cmd()
            .args(["--only", "echo.basic"])
            .arg(path)
            .timeout(Duration::from_secs(20))
            .output()
            .unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "took {:?}",
            t0.elapsed()
        );
        assert_eq!(out.status.code(), Some(2), "{why}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{why}: {err}");
    }
}

/// How to run `grade` as a user that is not root: directly when the tests are not root, else
/// through `setpriv` as `nobody` (None, with the reason, where neither works).
fn non_root_grade() -> Result<Vec<std::ffi::OsString>, &'static str> {
    if !is_root() {
        return Ok(vec![grade_bin().into()]);
    }
    let has_setpriv = std::process::Command::new("setpriv")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_setpriv {
        return Err("setpriv is not installed, so root cannot run the grader as another user");
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .ok_or("there is no user nobody")?;
    Ok(vec![
        "setpriv".into(),
        format!("--reuid={}", nobody.uid).into(),
        format!("--regid={}", nobody.gid).into(),
        "--clear-groups".into(),
        grade_bin().into(),
    ])
}

/// Without root (Autolab) the server runs as the grader's own user. It writes a full-marks
/// line into the grader's standard output through /proc/<grader>/fd/1 and signals the grader
/// (SIGSTOP, SIGTERM): the output is still the grader's report alone, graded, with the honest
/// score.
#[test]
fn without_root_the_server_cannot_forge_the_graders_output_or_signal_it() {
    let cmd = match non_root_grade() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    // A copy the unprivileged user can reach.
    let d = tempfile::Builder::new()
        .prefix("echograde-forge")
        .tempdir()
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = d.path().join("forge");
    assert!(std::process::Command::new("cp")
        .arg(fixture("hostile/forge_grader_output"))
        .arg(&bin)
        .status()
        .unwrap()
        .success());
    let mut args: Vec<std::ffi::OsString> = cmd[1..].to_vec();
    for a in ["--format", "json", "--seed", "5", "--only", "echo.basic"] {
        args.push(a.into());
    }
    args.push(bin.into());
    let t0 = Instant::now();
    let run = Contained::spawn_program(&cmd[0], &args, Stdio::piped(), Stdio::piped());
    let (out, leftovers) = run.wait_with_output();
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t0.elapsed()
    );
    assert_nothing_left(&leftovers, "grading without root");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.contains("FORGED"),
        "the server wrote into the grader's output: {stdout}"
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: Report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("the output is not one report ({e}): {stdout}"));
    assert_eq!(v.status, RunStatus::Graded, "{stdout}");
    assert_eq!(v.parts[0].checks[0].status, Status::Pass, "{stdout}");
    assert_eq!(v.score, v.max_score, "the honest score of a working echo");
}

/// The System V shared memory segments (keys) of this machine with key 0x4543xxxx, from
/// /proc/sysvipc/shm.
fn echograde_shm_keys() -> Vec<i64> {
    std::fs::read_to_string("/proc/sysvipc/shm")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse::<i64>().ok())
        .filter(|k| (*k as u32) & 0xffff_0000 == 0x4543_0000)
        .collect()
}

/// A server that leaves a System V shared memory segment behind: as root it runs in an IPC
/// namespace of its own, and nothing of it is left on the machine after grading.
#[test]
fn as_root_a_servers_system_v_shared_memory_does_not_outlive_the_grading() {
    if !is_root() {
        eprintln!("skipped: a private IPC namespace needs root (CAP_SYS_ADMIN)");
        return;
    }
    if !std::path::Path::new("/proc/sysvipc/shm").exists() {
        eprintln!("skipped: this kernel has no System V IPC");
        return;
    }
    let before = echograde_shm_keys();
    let (code, report, stderr) = grade_report(
        &fixture("hostile/sysv_shm_leftover"),
        &["--only", "echo.basic"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(entry(&report, "echo.basic").status, Status::Pass);
    let left: Vec<i64> = echograde_shm_keys()
        .into_iter()
        .filter(|k| !before.contains(k))
        .collect();
    assert!(left.is_empty(), "segments left behind: {:x?}", left);
}

/// Names this machine's /tmp and /dev/shm hold that start with `prefix`.
fn left_in_tmp(prefix: &str) -> Vec<String> {
    ["/tmp", "/dev/shm"]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// A server leaves a file in /tmp, a POSIX shared memory object in /dev/shm and a System V
/// segment: after grading none of them is on the machine (the server got a private /tmp,
/// /dev/shm and IPC namespace), and it still gets its honest marks.
fn nothing_left_in_tmp_shm_or_sysv(grade: &[std::ffi::OsString], dir: &std::path::Path) {
    let bin = dir.join("leaves_files");
    assert!(std::process::Command::new("cp")
        .arg(fixture("hostile/leaves_files"))
        .arg(&bin)
        .status()
        .unwrap()
        .success());
    let before_files = left_in_tmp("echograde-left-");
    let before_shm = echograde_shm_keys();
    let mut args: Vec<std::ffi::OsString> = grade[1..].to_vec();
    for a in ["--format", "json", "--seed", "5", "--only", "echo.basic"] {
        args.push(a.into());
    }
    args.push(bin.into());
    let run = Contained::spawn_program(&grade[0], &args, Stdio::piped(), Stdio::piped());
    let (out, leftovers) = run.wait_with_output();
    assert_nothing_left(&leftovers, "grading leaves_files");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["checks"][0]["status"], "pass", "{v}");
    let files: Vec<String> = left_in_tmp("echograde-left-")
        .into_iter()
        .filter(|n| !before_files.contains(n))
        .collect();
    assert!(files.is_empty(), "left in /tmp or /dev/shm: {files:?}");
    let shm: Vec<i64> = echograde_shm_keys()
        .into_iter()
        .filter(|k| !before_shm.contains(k))
        .collect();
    assert!(shm.is_empty(), "System V segments left: {shm:x?}");
}

#[test]
fn files_a_server_leaves_in_tmp_and_dev_shm_and_sysv_shm_are_gone_after_grading() {
    let d = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    nothing_left_in_tmp_shm_or_sysv(&[grade_bin().into()], d.path());
}

/// The same without root (Autolab): the grader's own user namespace gives the server its
/// private /tmp, /dev/shm and IPC namespace (where the kernel allows unprivileged user
/// namespaces, as Linux 6.18 here does; elsewhere the report says they are shared).
#[test]
fn without_root_files_a_server_leaves_in_tmp_dev_shm_and_sysv_shm_are_gone_too() {
    let cmd = match non_root_grade() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let d = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let unshare_allowed = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "unshare",
            "--user",
            "true",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if is_root() && !unshare_allowed {
        eprintln!("skipped: this kernel forbids unprivileged user namespaces");
        return;
    }
    nothing_left_in_tmp_shm_or_sysv(&cmd, d.path());
}

/// The range of grading uids is the course's to set; a uid in it that belongs to an account
/// (here `nobody`'s, 65534) is never taken for a grading's own: the grader warns and falls back
/// to the shared user, and the correct server keeps full marks.
#[test]
fn a_grading_uid_that_belongs_to_an_account_is_never_used() {
    if !is_root() {
        eprintln!("skipped: gradings get uids of their own only when the grader is root");
        return;
    }
    let Ok(Some(nobody)) = nix::unistd::User::from_name("nobody") else {
        eprintln!("skipped: there is no user nobody");
        return;
    };
    let (_private, bin) = private_copy(&fixture("ok_process"));
    let args: Vec<std::ffi::OsString> = vec![
        format!("ECHOGRADE_UID_BASE={}", nobody.uid).into(),
        "ECHOGRADE_UID_SLOTS=1".into(),
        grade_bin().into(),
        "--format".into(),
        "json".into(),
        "--only".into(),
        "echo.basic".into(),
        bin.into(),
    ];
    let run = Contained::spawn_program("env".as_ref(), &args, Stdio::piped(), Stdio::piped());
    let (out, leftovers) = run.wait_with_output();
    assert_nothing_left(&leftovers, "grading with a uid range that holds an account");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"));
    let user = v["server"]["containment"]["user"].as_str().unwrap();
    assert!(!user.contains("its own"), "took an account's uid: {user}");
    assert!(
        stderr.contains("no uid of its own"),
        "the fallback is not silent: {stderr}"
    );
    assert_eq!(v["score"], v["max_score"], "{v}");
}

/// Processes of the test's sleepers, killed with their PID namespace when dropped:
/// `unshare --kill-child` SIGKILLs the namespace's init when it dies, and the kernel the rest.
struct Namespaced(std::process::Child);

impl Drop for Namespaced {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Live processes whose real uid is in `range`.
fn live_with_uid_in(range: std::ops::Range<u32>) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && l.contains("Z ("))
        })
        .filter(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().next()?.parse::<u32>().ok())
                .is_some_and(|u| range.contains(&u))
        })
        .count()
}

/// A grading in a container (podman or Docker as root: the host's uids, a `/run` and a PID
/// namespace of its own) takes the same slot uids as a grading on the host, and the host sees
/// its processes. The host's grading must not take them for leftovers of a crashed grading:
/// measured in podman, a host grading's claim SIGKILLed the container's correct server (about
/// one run in three lost points). Here every uid of the range runs a process in a PID
/// namespace below the grader's; the grading must leave them all alone and use none of them.
#[test]
fn as_root_processes_of_a_slot_uid_in_a_container_are_not_killed_as_leftovers() {
    use std::io::BufRead;
    if !is_root() {
        eprintln!("skipped: gradings get uids of their own only when the grader is root");
        return;
    }
    const BASE: u32 = 3_000_000_000;
    const SLOTS: u32 = 64;
    let script = format!(
        "for i in $(seq 0 {last}); do setpriv --reuid=$(({BASE}+i)) --regid=$(({BASE}+i)) \
         --clear-groups sh -c 'echo up; exec sleep 600' & done; wait",
        last = SLOTS - 1
    );
    let Ok(child) = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
    else {
        eprintln!("skipped: no unshare(1)");
        return;
    };
    let mut ns = Namespaced(child);
    let out = ns.0.stdout.take().unwrap();
    let up = std::io::BufReader::new(out)
        .lines()
        .take(SLOTS as usize)
        .count();
    if up < SLOTS as usize {
        eprintln!("skipped: the PID namespace's sleepers did not start ({up} of {SLOTS})");
        return;
    }
    assert_eq!(live_with_uid_in(BASE..BASE + SLOTS), SLOTS as usize);
    let (_private, bin) = private_copy(&fixture("ok_process"));
    let args: Vec<std::ffi::OsString> = vec![
        format!("ECHOGRADE_UID_BASE={BASE}").into(),
        format!("ECHOGRADE_UID_SLOTS={SLOTS}").into(),
        grade_bin().into(),
        "--format".into(),
        "json".into(),
        "--only".into(),
        "echo.basic".into(),
        bin.into(),
    ];
    let run = Contained::spawn_program("env".as_ref(), &args, Stdio::piped(), Stdio::piped());
    let (out, leftovers) = run.wait_with_output();
    assert_nothing_left(&leftovers, "grading beside a container's slot uids");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        live_with_uid_in(BASE..BASE + SLOTS),
        SLOTS as usize,
        "the grading killed a process of another grading's uid: {stderr}"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"));
    let user = v["server"]["containment"]["user"].as_str().unwrap();
    assert!(!user.contains("its own"), "shared a uid in use: {user}");
    assert_eq!(v["score"], v["max_score"], "{v}");
    drop(ns);
}
