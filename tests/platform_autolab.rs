//! Autolab, end to end, the way Tango runs it: a fresh folder with the handin, autograde.tar
//! (made by make_tarball.sh) and autograde-Makefile as `Makefile`; `make`, standard output and
//! error together; the last line parsed as Autolab's JSON. On the handout's skeleton, the
//! correct submission, one that does not compile, a one-file handin, a grader that fails, and
//! under Tango's limit of 100 processes and threads as an unprivileged user. Also: the Autolab
//! rubrics fit that limit.

mod common;

use common::platform::*;
use echograde::rubric::Rubric;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const FLAGS: &str = "--only model,echo.basic,concurrency.overlap --seed 42";

/// make_tarball.sh's output (autograde.tar, autograde-Makefile) in a fresh folder.
fn package(d: &Path, grade: &Path, handin: &str) -> PathBuf {
    package_with(d, grade, handin, &[])
}

fn package_with(d: &Path, grade: &Path, handin: &str, extra: &[&str]) -> PathBuf {
    let pkg = d.join("pkg");
    let out = Command::new("bash")
        .arg(root().join("graders/autolab/make_tarball.sh"))
        .arg("--out-dir")
        .arg(&pkg)
        .arg("--grade")
        .arg(grade)
        .args(["--handin", handin])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make_tarball.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pkg
}

/// Tango's folder: the handin, autograde.tar, and the Makefile. `files` go in the handin tar
/// from `src`.
fn vm(d: &Path, pkg: &Path, src: &Path, files: &[&str], handin: &str) -> PathBuf {
    let vm = d.join("vm");
    std::fs::create_dir_all(&vm).unwrap();
    std::fs::copy(pkg.join("autograde.tar"), vm.join("autograde.tar")).unwrap();
    std::fs::copy(pkg.join("autograde-Makefile"), vm.join("Makefile")).unwrap();
    if handin.ends_with(".tar") {
        let st = Command::new("tar")
            .arg("cf")
            .arg(vm.join(handin))
            .arg("-C")
            .arg(src)
            .args(files)
            .status()
            .unwrap();
        assert!(st.success());
    } else {
        std::fs::copy(src.join(files[0]), vm.join(handin)).unwrap();
    }
    vm
}

/// `make` in the folder (under `wrap`, a command prefix), standard output and error into one
/// file as Tango captures them; make must succeed (nothing may follow the score line).
fn make(vm: &Path, env: &[(&str, &str)], wrap: &[&str]) -> String {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(format!("{} make > output.txt 2>&1", wrap.join(" ")))
        .current_dir(vm)
        .env("TMPDIR", vm);
    for (k, v) in env {
        sh.env(k, v);
    }
    let st = sh.status().unwrap();
    let output = std::fs::read_to_string(vm.join("output.txt")).unwrap();
    assert!(
        st.success(),
        "make failed (it must not, after the score line):\n{output}"
    );
    output
}

const SERVERS: [&str; 3] = ["echoserverp.c", "echoservers.c", "echoservert.c"];

#[test]
fn skeleton_end_to_end() {
    let d = open_tempdir();
    let pkg = package(d.path(), &grade_bin(), "handin.tar");
    let v = vm(
        d.path(),
        &pkg,
        &root().join("handout"),
        &SERVERS,
        "handin.tar",
    );
    let out = make(&v, &[("GRADE_FLAGS", FLAGS)], &[]);
    let last = autolab_last_line(&out);
    assert_eq!(
        last["scores"],
        json!({"echoserverp": 8.0, "echoservers": 8.0, "echoservert": 8.0}),
        "{out}"
    );
    assert_eq!(last["scoreboard"], json!([24.0, 8.0, 8.0, 8.0]));
    assert!(
        out.contains("FAIL  echoserverp/concurrency.overlap"),
        "{out}"
    );
    assert!(
        out.contains("echoserverp: 8 / 28, model seen: iterative"),
        "{out}"
    );
}

#[test]
fn correct_submission_end_to_end() {
    let d = open_tempdir();
    let pkg = package(d.path(), &grade_bin(), "handin.tar");
    let v = vm(
        d.path(),
        &pkg,
        &correct_dir(d.path()),
        &SERVERS,
        "handin.tar",
    );
    let out = make(&v, &[("GRADE_FLAGS", FLAGS)], &[]);
    let last = autolab_last_line(&out);
    assert_eq!(
        last["scores"],
        json!({"echoserverp": 28.0, "echoservers": 28.0, "echoservert": 28.0}),
        "{out}"
    );
}

#[test]
fn submission_that_does_not_compile_scores_0_with_the_compilers_messages() {
    let d = open_tempdir();
    let src = d.path().join("src");
    broken(&src);
    let pkg = package(d.path(), &grade_bin(), "handin.tar");
    let v = vm(d.path(), &pkg, &src, &SERVERS, "handin.tar");
    let out = make(&v, &[("GRADE_FLAGS", FLAGS)], &[]);
    let last = autolab_last_line(&out);
    assert_eq!(
        last["scores"],
        json!({"echoserverp": 0.0, "echoservers": 0.0, "echoservert": 0.0})
    );
    assert!(
        out.contains("echoservert.c") && out.contains("error:"),
        "{out}"
    );
}

#[test]
fn a_one_file_handin_goes_over_the_handouts_files() {
    let d = open_tempdir();
    let pkg = package(d.path(), &grade_bin(), "echoserverp.c");
    let v = vm(
        d.path(),
        &pkg,
        &correct_dir(d.path()),
        &["echoserverp.c"],
        "echoserverp.c",
    );
    let out = make(
        &v,
        &[("GRADE_FLAGS", "--only model,echo.basic --seed 1")],
        &[],
    );
    let last = autolab_last_line(&out);
    // The handed-in process server is concurrent; the other two are still the skeleton's.
    assert_eq!(
        last["scores"],
        json!({"echoserverp": 18.0, "echoservers": 8.0, "echoservert": 8.0}),
        "{out}"
    );
}

#[test]
fn a_one_server_lab_has_a_problem_per_check() {
    let d = open_tempdir();
    let rubric = root().join("graders/autolab/echo-autolab.yaml");
    let pkg = package_with(
        d.path(),
        &grade_bin(),
        "echoservert.c",
        &[
            "--rubric",
            rubric.to_str().unwrap(),
            "--server",
            "echoservert",
        ],
    );
    let v = vm(
        d.path(),
        &pkg,
        &correct_dir(d.path()),
        &["echoservert.c"],
        "echoservert.c",
    );
    let out = make(
        &v,
        &[("GRADE_FLAGS", "--only echo.basic,race.connfd --seed 1")],
        &[],
    );
    let last = autolab_last_line(&out);
    assert_eq!(
        last["scores"],
        json!({"echo.basic": 8.0, "race.connfd": 7.0}),
        "{out}"
    );
    assert_eq!(last["scoreboard"], json!([15.0, 8.0, 7.0]));
}

#[test]
fn a_grader_that_fails_still_ends_with_a_score_line() {
    let d = open_tempdir();
    let fake = d.path().join("grade");
    std::fs::write(
        &fake,
        "#!/bin/sh\n[ \"$1\" = --version ] && { echo grade 0; exit 0; }\necho '{\"scores\": {\"echoserverp\": 100}}' >&2\nkill -SEGV $$\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let pkg = package(d.path(), &fake, "handin.tar");
    let v = vm(
        d.path(),
        &pkg,
        &root().join("handout"),
        &SERVERS,
        "handin.tar",
    );
    let out = make(&v, &[], &[]);
    let last = autolab_last_line(&out);
    assert_eq!(last["scores"], json!({}), "{out}");
    assert!(out.contains("could not grade"), "{out}");
    assert!(
        out.contains("| {\"scores\": {\"echoserverp\": 100}}"),
        "the grader's stderr cannot pass for a score line: {out}"
    );
}

/// Tango's limit: the grading user may have 100 processes and threads. Run the whole Autolab
/// rubric on the correct submission as an unprivileged user under that limit: full marks.
#[test]
fn the_autolab_rubric_holds_under_tangos_process_limit() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let have = |c: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {c}"))
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !is_root || !have("setpriv") || !have("prlimit") {
        eprintln!("skipped: needs root, setpriv and prlimit (RLIMIT_NPROC does not bind root)");
        return;
    }
    let d = open_tempdir();
    let pkg = package(d.path(), &grade_bin(), "handin.tar");
    let v = vm(
        d.path(),
        &pkg,
        &correct_dir(d.path()),
        &SERVERS,
        "handin.tar",
    );
    // A user of its own, so that no other test's processes count against its limit.
    let uid = "61234";
    let st = Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(&v)
        .status()
        .unwrap();
    assert!(st.success());
    let out = make(
        &v,
        &[("GRADE_FLAGS", "--seed 42")],
        &[
            "prlimit",
            "--nproc=100:100",
            "setpriv",
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
        ],
    );
    let last = autolab_last_line(&out);
    assert_eq!(
        last["scores"],
        json!({"echoserverp": 100.0, "echoservers": 100.0, "echoservert": 100.0}),
        "{out}"
    );
}

fn rubric_json(path: &Path) -> Value {
    serde_json::to_value(Rubric::load(path).unwrap_or_else(|e| panic!("{e}"))).unwrap()
}

/// How many clients (so children or threads of the server) each check holds at once.
fn at_once(id: &str, params: &Value) -> u64 {
    let p = |k: &str| params.get(k).and_then(Value::as_u64);
    match id {
        "concurrency.many" => p("clients").unwrap_or(100),
        "race.connfd" => p("burst").unwrap_or(200),
        "leak.fd" => p("simultaneous").unwrap_or(20),
        "zombies" => p("simultaneous").unwrap_or(20),
        "signal.safety" => p("simultaneous").unwrap_or(10) + p("early_leavers").unwrap_or(5),
        "robust.sigpipe" => p("closers").unwrap_or(10) + p("resetters").unwrap_or(10),
        "liveness.churn" => p("clients").unwrap_or(8),
        _ => 4,
    }
}

#[test]
fn the_autolab_rubrics_fit_the_limit_and_keep_the_points_of_graders() {
    let dir = root().join("graders/autolab");
    for (name, original) in [
        ("echo-autolab.yaml", "echo.yaml"),
        ("echo-process.yaml", "echo-process.yaml"),
        ("echo-event.yaml", "echo-event.yaml"),
        ("echo-thread.yaml", "echo-thread.yaml"),
    ] {
        let r = rubric_json(&dir.join(name));
        let o = rubric_json(&root().join("graders").join(original));
        let checks = r["checks"].as_object().unwrap();
        let ochecks = o["checks"].as_object().unwrap();
        assert_eq!(
            checks.keys().collect::<Vec<_>>(),
            ochecks.keys().collect::<Vec<_>>(),
            "{name}: the same checks as graders/{original}"
        );
        for (id, e) in checks {
            assert_eq!(e["points"], ochecks[id]["points"], "{name}: {id}'s points");
            let n = at_once(id, &e["params"]);
            assert!(
                n <= 40,
                "{name}: {id} holds {n} clients at once: at most 40 fit Tango's limit"
            );
        }
        assert_eq!(r["timing"], o["timing"], "{name}: timing");
    }
    let sub = echograde::platform::submission::Submission::load(&dir.join("handout.yaml")).unwrap();
    assert_eq!(sub.max_score(None), 300.0);
    let names: Vec<&str> = sub.parts.iter().map(|p| p.rubric.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "echo-process-autolab",
            "echo-event-autolab",
            "echo-thread-autolab"
        ]
    );
}

/// The correct submission assembled in a folder under `base`.
fn correct_dir(base: &std::path::Path) -> std::path::PathBuf {
    let dir = base.join("correct-src");
    if !dir.exists() {
        correct(&dir);
    }
    dir
}
