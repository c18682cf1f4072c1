//! `grade class`: a class graded into its outputs, resumed, interrupted, sharded and merged,
//! and names chosen by students kept in their place. Small `--only` sets keep each test to
//! seconds; every run uses the real `grade` binary and real servers.

mod common;

use common::{fixture, grade_bin, root};
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A folder others may enter (as root the servers run as an unprivileged user).
fn open_tempdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("echograde-class")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// A class folder holding a copy of each fixture under a student's name.
fn class_of(dir: &Path, students: &[(&str, &str)]) -> Vec<PathBuf> {
    let class = dir.join("class");
    std::fs::create_dir_all(&class).unwrap();
    std::fs::set_permissions(&class, std::fs::Permissions::from_mode(0o755)).unwrap();
    students
        .iter()
        .map(|(name, fx)| {
            let to = class.join(name);
            // By `cp` (see common::private_copy: no write descriptor open in this process).
            let st = Command::new("cp")
                .arg(fixture(fx))
                .arg(&to)
                .status()
                .unwrap();
            assert!(st.success());
            to
        })
        .collect()
}

fn grade_class(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(grade_bin())
        .arg("class")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn run_class(subs: &[PathBuf], out: &Path, extra: &[&str]) -> (i32, String) {
    let mut args: Vec<&std::ffi::OsStr> = subs.iter().map(|p| p.as_os_str()).collect();
    args.extend(["--out".as_ref(), out.as_os_str()]);
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let o = grade_class(&args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn class_json(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("class.json")).unwrap()).unwrap()
}

/// name -> score in class.json.
fn scores(out: &Path) -> BTreeMap<String, f64> {
    class_json(out)["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Every file under `students/`, with its bytes and modification time.
fn student_files(out: &Path) -> BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
    std::fs::read_dir(out.join("students"))
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                (
                    std::fs::read(e.path()).unwrap(),
                    e.metadata().unwrap().modified().unwrap(),
                ),
            )
        })
        .collect()
}

/// Parse RFC 4180 CSV (quoted cells may hold commas, quotes and line breaks).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    rows
}

const FAST: &str = "model,echo.basic,concurrency.overlap";

#[test]
fn a_class_of_executables_is_graded_into_consistent_outputs() {
    let d = open_tempdir();
    let subs = class_of(
        d.path(),
        &[
            ("alice", "ok_process"),
            ("bob", "iterative"),
            ("carol", "iterative"),
        ],
    );
    let out = d.path().join("out");
    let (code, stderr) = run_class(&subs, &out, &["--only", FAST, "--jobs", "2"]);
    assert_eq!(code, 0, "{stderr}");
    let summary = class_json(&out);
    let rows = summary["submissions"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    // Every row's score is its report's, and its page and YAML report exist.
    for r in rows {
        let yaml = std::fs::read_to_string(out.join(r["report"].as_str().unwrap())).unwrap();
        let score_line = format!("\nscore: {}\n", r["score"]);
        assert!(yaml.contains(&score_line), "{score_line:?} in {yaml}");
        assert!(out.join(r["page"].as_str().unwrap()).is_file());
    }
    let s = scores(&out);
    assert_eq!(s["alice"], rows[0]["max_score"].as_f64().unwrap());
    assert!(
        s["bob"] < s["alice"],
        "an iterative server loses the overlap points"
    );
    // Two of three fail the overlap check: flagged for the TA, in class.json and the page.
    let overlap = summary["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "concurrency.overlap")
        .unwrap();
    assert_eq!(
        (overlap["passed"].as_u64(), overlap["graded"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(overlap["flagged"], true);
    let echo = summary["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "echo.basic")
        .unwrap();
    assert_eq!(echo["flagged"], false);
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(index.contains("most of the class fails"));
    assert!(index.contains("<svg id=\"histogram\""));
    for r in rows {
        assert!(index.contains(&format!("href=\"{}\"", r["page"].as_str().unwrap())));
    }
    assert!(
        !index.contains("src=") && !index.contains("href=\"http"),
        "self-contained: nothing is loaded from anywhere"
    );
    // class.csv: a header and a row per student, with the same scores.
    let csv = parse_csv(&std::fs::read_to_string(out.join("class.csv")).unwrap());
    assert_eq!(csv[0][..3], ["name", "score", "max_score"]);
    assert!(csv[0].contains(&"concurrency.overlap".to_string()));
    assert_eq!(csv.len(), 4);
    for row in &csv[1..] {
        assert_eq!(row[1].parse::<f64>().unwrap(), s[&row[0]], "{row:?}");
    }
    // Nothing of the work folder is left.
    assert!(!out.join(".work").exists());
}

#[test]
fn a_rerun_skips_everything_and_a_changed_file_is_regraded() {
    let d = open_tempdir();
    let subs = class_of(d.path(), &[("alice", "ok_process"), ("bob", "ok_select")]);
    let out = d.path().join("out");
    let (code, stderr) = run_class(&subs, &out, &["--only", "model,echo.basic"]);
    assert_eq!(code, 0, "{stderr}");
    let before = student_files(&out);
    let (code, stderr) = run_class(&subs, &out, &["--only", "model,echo.basic"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("skipped alice"), "{stderr}");
    assert!(stderr.contains("skipped bob"), "{stderr}");
    assert!(stderr.contains("0 graded, 2 skipped"), "{stderr}");
    assert_eq!(
        student_files(&out),
        before,
        "a skipped report is not rewritten"
    );

    // bob's server changes: only bob is graded again.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&subs[1])
        .unwrap();
    std::io::Write::write_all(&mut f, b"resubmitted").unwrap();
    drop(f);
    let (code, stderr) = run_class(&subs, &out, &["--only", "model,echo.basic"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("skipped alice"), "{stderr}");
    assert!(stderr.contains("graded bob"), "{stderr}");
    assert!(stderr.contains("1 graded, 1 skipped"), "{stderr}");
    let after = student_files(&out);
    assert_eq!(after["alice.record.json"], before["alice.record.json"]);
    assert_ne!(after["bob.record.json"].1, before["bob.record.json"].1);

    // Other options are other inputs: a different check set regrades both; --force too.
    let (_, stderr) = run_class(&subs, &out, &["--only", "echo.basic"]);
    assert!(stderr.contains("2 graded, 0 skipped"), "{stderr}");
    let (_, stderr) = run_class(&subs, &out, &["--only", "echo.basic", "--force"]);
    assert!(stderr.contains("2 graded, 0 skipped"), "{stderr}");
}

/// The session id of a process (field 6 of /proc/PID/stat) and its state letter.
fn session_and_state(pid: i32) -> Option<(i32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    Some((rest[3].parse().ok()?, rest[0].chars().next()?))
}

fn alive_in_session(sid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|&p| session_and_state(p).is_some_and(|(s, st)| s == sid && st != 'Z'))
        .collect()
}

#[test]
fn ctrl_c_leaves_finished_reports_whole_and_nothing_running() {
    let d = open_tempdir();
    // alice is fast; the iterative servers take seconds on the overlap check.
    let subs = class_of(
        d.path(),
        &[
            ("a-alice", "ok_process"),
            ("b-bob", "iterative"),
            ("c-carol", "iterative"),
            ("d-dave", "iterative"),
        ],
    );
    let out = d.path().join("out");
    let mut cmd = Command::new(grade_bin());
    cmd.arg("class")
        .args(&subs)
        .args(["--out".as_ref(), out.as_os_str()])
        .args(["--only", FAST, "--jobs", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // Its own session (and process group), as a shell's foreground job: every process of
    // the run stays in it (no fixture here calls setsid), so what is left can be found.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let sid = child.id() as i32;
    let first = out.join("students/a-alice.record.json");
    let start = Instant::now();
    while !first.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no report appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "grade class ended early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let busy = alive_in_session(sid);
    assert!(busy.len() > 1, "a grading was in progress: {busy:?}");
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(sid), nix::sys::signal::SIGINT).unwrap();
    // A blocking wait, so the processes of the session are listed the moment grade class
    // has exited: one that it left to wind down on its own would still be there. A watchdog
    // ends a run that does not stop.
    let (done, timeout) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if timeout.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(sid),
                nix::sys::signal::SIGKILL,
            );
            return false;
        }
        true
    });
    let status = child.wait().unwrap();
    let left = alive_in_session(sid);
    let _ = done.send(());
    assert!(
        watchdog.join().unwrap(),
        "grade class did not stop within 60 s"
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    for &p in &left {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::SIGKILL);
    }
    assert!(
        left.is_empty(),
        "processes left running: {left:?}\n{stderr}"
    );
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    // Every record present is whole, with its YAML and page; no partial file anywhere.
    let files = student_files(&out);
    assert!(files.contains_key("a-alice.record.json"));
    for (name, (bytes, _)) in &files {
        assert!(!name.starts_with('.'), "a temporary file was left: {name}");
        if let Some(stem) = name.strip_suffix(".record.json") {
            let v: Value = serde_json::from_slice(bytes).unwrap();
            assert_eq!(v["report"]["status"], "graded");
            assert!(files.contains_key(&format!("{stem}.yaml")));
            assert!(files.contains_key(&format!("{stem}.html")));
        }
    }
    assert!(
        files.len() < 3 * subs.len(),
        "the interrupt came before the end"
    );
    // The next run resumes: what finished is skipped.
    let (code, stderr) = run_class(&subs, &out, &["--only", FAST, "--jobs", "2"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("skipped a-alice"), "{stderr}");
    assert_eq!(scores(&out).len(), 4);
}

#[test]
fn shards_merged_equal_one_run() {
    let d = open_tempdir();
    let subs = class_of(
        d.path(),
        &[
            ("alice", "ok_process"),
            ("bob", "ok_select"),
            ("carol", "echo_extra_byte"),
            ("dave", "ok_thread"),
            ("erin", "reply_ok"),
        ],
    );
    let only = ["--only", "model,echo.basic"];
    let whole = d.path().join("whole");
    let (code, stderr) = run_class(&subs, &whole, &only);
    assert_eq!(code, 0, "{stderr}");
    let mut parts = Vec::new();
    for k in ["1/2", "2/2"] {
        let dir = d.path().join(format!("shard{}", &k[..1]));
        let (code, stderr) = run_class(&subs, &dir, &[only[0], only[1], "--shard", k]);
        assert_eq!(code, 0, "{stderr}");
        parts.push(dir);
    }
    let (a, b) = (scores(&parts[0]), scores(&parts[1]));
    assert!(a.keys().all(|k| !b.contains_key(k)), "shards overlap");
    assert_eq!(a.len() + b.len(), 5);
    let merged = d.path().join("merged");
    let o = grade_class(&[
        "--merge".as_ref(),
        parts[0].as_os_str(),
        parts[1].as_os_str(),
        "--out".as_ref(),
        merged.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(scores(&merged), scores(&whole));
    let index = std::fs::read_to_string(merged.join("index.html")).unwrap();
    for r in class_json(&merged)["submissions"].as_array().unwrap() {
        let page = r["page"].as_str().unwrap();
        assert!(
            index.contains(page) && merged.join(page).is_file(),
            "{page}"
        );
    }
}

#[test]
fn hostile_names_stay_text_in_csv_and_html() {
    let d = open_tempdir();
    // `index` would be index.html's name if files were named after students.
    let mut names = vec![
        "a b",
        "quote\"d',",
        "=cmd|' -C calc'!A0",
        "<script>alert(1)<\\script>",
        "index",
    ];
    let newline = "new\nline";
    let can_newline = std::fs::write(d.path().join(newline), "").is_ok();
    if can_newline {
        names.push(newline);
    }
    let students: Vec<(&str, &str)> = names.iter().map(|n| (*n, "ok_process")).collect();
    let subs = class_of(d.path(), &students);
    let out = d.path().join("out");
    let (code, stderr) = run_class(&subs, &out, &["--only", "echo.basic", "--jobs", "3"]);
    assert_eq!(code, 0, "{stderr}");
    // CSV: each name comes back whole; the formula is defused with a leading quote.
    let csv = parse_csv(&std::fs::read_to_string(out.join("class.csv")).unwrap());
    let mut got: Vec<String> = csv[1..].iter().map(|r| r[0].clone()).collect();
    got.sort();
    let mut want: Vec<String> = names
        .iter()
        .map(|n| {
            if n.starts_with('=') {
                format!("'{n}")
            } else {
                n.to_string()
            }
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
    // HTML: no markup from a name, and no name reached outside students/.
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        !index.contains("<script>alert"),
        "unescaped name in index.html"
    );
    assert!(index.contains("&lt;script&gt;alert(1)&lt;\\script&gt;"));
    assert!(index.contains("quote&quot;d&#39;,"));
    let mut top: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["class.csv", "class.json", "index.html", "students"]);
    for f in std::fs::read_dir(out.join("students")).unwrap().flatten() {
        let n = f.file_name().to_string_lossy().into_owned();
        assert!(
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                && !n.starts_with('.'),
            "{n:?}"
        );
        if n.ends_with(".html") {
            let page = std::fs::read_to_string(f.path()).unwrap();
            assert!(!page.contains("<script"), "{n}");
        }
    }
}

#[test]
fn submission_folders_are_built_in_a_copy_and_graded() {
    let d = open_tempdir();
    let class = d.path().join("class");
    for (name, servers) in [("alice", true), ("bob", false)] {
        let to = class.join(name);
        std::fs::create_dir_all(&to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut dirs = vec![root().join("handout")];
        if servers {
            dirs.push(root().join("fixtures/submission"));
        }
        for from in dirs {
            for e in std::fs::read_dir(from).unwrap().flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.ends_with(".c") || n.ends_with(".h") || n == "Makefile" {
                    std::fs::copy(e.path(), to.join(&n)).unwrap();
                }
            }
        }
    }
    let listing = |p: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        v.sort();
        v
    };
    let before = listing(&class.join("alice"));
    let subs = vec![class.join("alice"), class.join("bob")];
    let out = d.path().join("out");
    let (code, stderr) = run_class(&subs, &out, &["--only", "model,echo.basic"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        listing(&class.join("alice")),
        before,
        "the class folder is not written"
    );
    let s = scores(&out);
    let max = class_json(&out)["submissions"][0]["max_score"]
        .as_f64()
        .unwrap();
    assert_eq!(s["alice"], max, "the correct submission gets full marks");
    assert!(s["bob"] < max, "the handout's iterative skeleton does not");
    let csv = std::fs::read_to_string(out.join("class.csv")).unwrap();
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .contains("echoserverp/echo.basic"));
}

#[test]
fn bad_input_is_refused_with_exit_2() {
    let d = open_tempdir();
    let subs = class_of(d.path(), &[("alice", "ok_process")]);
    let out = d.path().join("out");
    let (code, stderr) = run_class(&subs, &out, &["--only", "no.such.check"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("unknown check id `no.such.check`"),
        "{stderr}"
    );
    let (code, stderr) = run_class(&subs, &out, &["--shard", "3/2"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("1 <= K <= N"), "{stderr}");
    let text = d.path().join("notes.txt");
    std::fs::write(&text, "hi").unwrap();
    let (code, stderr) = run_class(&[text], &out, &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("neither a folder"), "{stderr}");
}

#[test]
fn class_is_a_subcommand_only_as_the_first_word() {
    let d = open_tempdir();
    // A server really named `class` is still graded by its path.
    let st = Command::new("cp")
        .arg(fixture("ok_process"))
        .arg(d.path().join("class"))
        .status()
        .unwrap();
    assert!(st.success());
    let o = Command::new(grade_bin())
        .current_dir(d.path())
        .args([
            "--format",
            "json",
            "--seed",
            "1",
            "--only",
            "echo.basic",
            "./class",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["score"], r["max_score"]);
    // `grade class` without submissions says what it needs.
    let o = grade_class(&["--out".as_ref(), d.path().join("out").as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("SUBMISSION"));
}
