//! Grading the class: each submission in a child `grade` process, `--jobs` at a time.
//!
//! Why a child process per submission rather than a thread: a grading owns process-wide state
//! (it is child subreaper and reaps with `waitpid(-1)`, installs SIGINT/SIGTERM handlers, may
//! enter a network namespace, and claims a server uid), and a grader bug or crash in one
//! grading must not take the class down. Each child runs in its own process group, writes its
//! JSON report atomically to `.work/` in the output folder, and the parent turns it into the
//! submission's files (see [`super::outputs`]).
//!
//! Ctrl-C (SIGINT or SIGTERM to this process) stops starting new gradings and sends SIGTERM to
//! each child's group: a child then stops at its next safe point and tears its servers down.
//! A child still running after [`STOP_GRACE`] is killed with its group; its servers die with
//! it (they have a parent-death signal), and anything that escaped is adopted by this process
//! (child subreaper) and killed at the end. Interrupted gradings are discarded; finished ones
//! are whole on disk, so the next run resumes where this one stopped.

use super::outputs::{read_record, write_submission, Record};
use super::roster::{hash_content, hex, Entry, Kind};
use crate::error::GradeError;
use crate::interrupt;
use crate::report::{Report, RunStatus};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long an interrupted child gets to tear its servers down before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(20);
/// The scratch folder inside the output folder (child reports, logs, build copies).
pub const WORK: &str = ".work";

/// What to grade and how.
#[derive(Debug, Clone)]
pub struct ClassRun {
    pub out: PathBuf,
    pub entries: Vec<Entry>,
    pub jobs: usize,
    pub force: bool,
    /// Arguments passed to every child `grade` (rubric, --only, --time-scale, limits, ...).
    pub grade_args: Vec<OsString>,
    /// `--seed`; without it each submission gets a seed derived from its name.
    pub seed: Option<u64>,
    /// With folders: the program to grade in each (`grade --build DIR SERVER`).
    pub binary: Option<String>,
    /// Everything besides the files that decides a verdict (rubric as loaded, options).
    pub key_material: String,
    /// A bar on a terminal, else one line per submission.
    pub bar: bool,
}

/// How a class run went.
#[derive(Debug, Default)]
pub struct Outcome {
    pub graded: usize,
    pub skipped: usize,
    /// Submissions with no report, and why.
    pub failed: Vec<(String, String)>,
    pub interrupted: bool,
}

/// The seed of one submission's grading.
pub fn seed_for(name: &str, seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        let d = Sha256::digest(format!("echograde-seed:{name}").as_bytes());
        u64::from_be_bytes(d[..8].try_into().expect("8 bytes")) % 1_000_000_000
    })
}

/// The hash of the grader itself: its version and its executable's bytes, so a rebuilt grader
/// regrades (its checks may have changed).
pub fn grader_identity() -> String {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    if let Ok(exe) = std::env::current_exe() {
        if let Ok(bytes) = std::fs::read(exe) {
            h.update(&bytes);
        }
    }
    hex(&h.finalize())
}

/// The inputs key of one submission: the grader, the rubric and options, its seed, its files.
fn inputs_key(run: &ClassRun, grader: &str, e: &Entry) -> std::io::Result<String> {
    let mut h = Sha256::new();
    h.update(b"echograde-class-v1\0");
    h.update(grader.as_bytes());
    h.update(b"\0");
    h.update(run.key_material.as_bytes());
    h.update(b"\0");
    h.update(seed_for(&e.name, run.seed).to_le_bytes());
    hash_content(e, &mut h)?;
    Ok(hex(&h.finalize()))
}

/// A grading in progress.
struct Running {
    index: usize,
    key: String,
    child: Child,
    report: PathBuf,
    log: PathBuf,
    copy: Option<PathBuf>,
    signalled: Option<Instant>,
}

/// Progress: an indicatif bar on a terminal, else plain lines on stderr.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(total: usize, bar: bool) -> Progress {
        let bar = bar.then(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} graded · {elapsed} · ETA {eta} · {msg}",
                )
                .expect("template"),
            );
            b
        });
        Progress { bar }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(b) => b.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn done(&self, text: &str) {
        match &self.bar {
            Some(b) => {
                b.set_message(text.to_string());
                b.inc(1);
            }
            None => eprintln!("{text}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// A name for a terminal line: control characters (a newline, ESC) shown, not obeyed.
pub fn shown(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            if c.is_control() {
                format!("\\u{{{:x}}}", c as u32).chars().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Grade every entry not already graded with the same inputs. The class files are written by
/// the caller from the records afterwards.
pub fn grade_class(run: &ClassRun) -> Result<Outcome, GradeError> {
    let work = run.out.join(WORK);
    std::fs::create_dir_all(&work).map_err(|source| GradeError::Output {
        path: work.clone(),
        source,
    })?;
    let exe = std::env::current_exe()
        .map_err(|e| GradeError::Internal(format!("cannot find the grade executable: {e}")))?;
    let mut outcome = Outcome::default();
    // What is already graded with these inputs is skipped.
    let todo = pending(run, &grader_identity(), &mut outcome)?;
    if todo.is_empty() {
        let _ = std::fs::remove_dir(&work);
        return Ok(outcome);
    }

    interrupt::install();
    // Servers and build leftovers whose grading child died are adopted here, then killed.
    crate::supervise::become_subreaper();
    let progress = Progress::new(todo.len(), run.bar);
    progress.line(&format!(
        "grading {} submission(s), {} at a time ({} skipped)",
        todo.len(),
        run.jobs,
        outcome.skipped
    ));
    let mut queue = todo.into_iter();
    let mut running: Vec<Running> = Vec::new();
    loop {
        let stopping = interrupt::requested();
        if stopping && !outcome.interrupted {
            outcome.interrupted = true;
            progress.line("interrupted: stopping the gradings in progress");
        }
        while !stopping && running.len() < run.jobs.max(1) {
            let Some((index, key)) = queue.next() else {
                break;
            };
            match start(run, &exe, &work, index, key) {
                Ok(r) => running.push(r),
                Err(why) => {
                    let name = run.entries[index].name.clone();
                    progress.done(&format!("FAILED {}: {why}", shown(&name)));
                    outcome.failed.push((name, why));
                }
            }
        }
        let mut i = 0;
        while i < running.len() {
            let r = &mut running[i];
            if stopping {
                stop_gently(r);
            }
            match r.child.try_wait() {
                Ok(Some(status)) => {
                    let r = running.swap_remove(i);
                    finish(run, r, status, stopping, &progress, &mut outcome);
                }
                Ok(None) => i += 1,
                Err(e) => {
                    // Cannot happen for our own child; do not spin on it.
                    let r = running.swap_remove(i);
                    outcome.failed.push((
                        run.entries[r.index].name.clone(),
                        format!("cannot wait for its grader: {e}"),
                    ));
                }
            }
        }
        if running.is_empty() && (stopping || queue.len() == 0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    progress.finish();
    crate::supervise::kill_orphans();
    let _ = std::fs::remove_dir(&work);
    Ok(outcome)
}

/// The entries to grade, with their inputs keys; those already graded with the same inputs
/// are counted as skipped.
fn pending(
    run: &ClassRun,
    grader: &str,
    outcome: &mut Outcome,
) -> Result<Vec<(usize, String)>, GradeError> {
    let mut todo = Vec::new();
    for (i, e) in run.entries.iter().enumerate() {
        let key = inputs_key(run, grader, e).map_err(|err| {
            GradeError::Usage(format!(
                "submission `{}` cannot be read: {err}",
                e.path.display()
            ))
        })?;
        let done = !run.force && read_record(&run.out, &e.stem).is_some_and(|r| r.key == key);
        if done {
            outcome.skipped += 1;
            eprintln!("skipped {} (unchanged since its report)", shown(&e.name));
        } else {
            todo.push((i, key));
        }
    }
    Ok(todo)
}

/// Ask a child grading to stop (SIGTERM to its process group: it tears its server down and
/// exits), then, past [`STOP_GRACE`], kill the group.
fn stop_gently(r: &mut Running) {
    match r.signalled {
        None => {
            let _ = nix::sys::signal::killpg(pgid(&r.child), nix::sys::signal::SIGTERM);
            r.signalled = Some(Instant::now());
        }
        Some(t) if t.elapsed() > STOP_GRACE => {
            let _ = nix::sys::signal::killpg(pgid(&r.child), nix::sys::signal::SIGKILL);
        }
        Some(_) => {}
    }
}

fn pgid(child: &Child) -> nix::unistd::Pid {
    nix::unistd::Pid::from_raw(child.id() as i32)
}

/// Start one child grading.
fn start(
    run: &ClassRun,
    exe: &Path,
    work: &Path,
    index: usize,
    key: String,
) -> Result<Running, String> {
    let e = &run.entries[index];
    let report = work.join(format!("{}.report.json", e.stem));
    let log = work.join(format!("{}.log", e.stem));
    let _ = std::fs::remove_file(&report);
    let mut cmd = Command::new(exe);
    cmd.args(&run.grade_args)
        .arg("--format")
        .arg("json")
        .arg("--output")
        .arg(&report)
        .arg("--seed")
        .arg(seed_for(&e.name, run.seed).to_string());
    let mut copy = None;
    match e.kind {
        Kind::Executable => {
            // Absolute: a student's file named `--help` is still a server, not an option.
            let path = std::path::absolute(&e.path)
                .map_err(|err| format!("cannot resolve {}: {err}", e.path.display()))?;
            cmd.arg(path);
        }
        Kind::Folder => {
            // Built in a copy: the class folder is never written to (make's products would also
            // change the files' hash, and no rerun could skip it).
            let dst = work.join(&e.stem);
            if dst.exists() {
                std::fs::remove_dir_all(&dst)
                    .map_err(|err| format!("cannot clear {}: {err}", dst.display()))?;
            }
            crate::supervise::copy_tree(&e.path, &dst, &mut Vec::new())
                .map_err(|err| format!("cannot copy the submission: {err}"))?;
            cmd.arg("--build").arg(&dst);
            if let Some(b) = &run.binary {
                cmd.arg(b);
            }
            copy = Some(dst);
        }
    }
    let log_file = std::fs::File::create(&log)
        .map_err(|err| format!("cannot create {}: {err}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .process_group(0);
    // SAFETY: prctl with integer arguments only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // If this process dies, the child winds its grading down (and its servers go too).
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::SIGTERM);
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|err| format!("cannot start `{}`: {err}", exe.display()))?;
    Ok(Running {
        index,
        key,
        child,
        report,
        log,
        copy,
        signalled: None,
    })
}

/// A child ended: keep its report as the submission's files, or say why there is none.
fn finish(
    run: &ClassRun,
    r: Running,
    status: std::process::ExitStatus,
    stopping: bool,
    progress: &Progress,
    outcome: &mut Outcome,
) {
    let e = &run.entries[r.index];
    if let Some(copy) = &r.copy {
        if let Err(err) = std::fs::remove_dir_all(copy) {
            progress.line(&format!(
                "grade class: warning: cannot remove the build copy {}: {err}",
                copy.display()
            ));
        }
    }
    let parsed: Option<Report> = std::fs::read(&r.report)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let _ = std::fs::remove_file(&r.report);
    let why = match parsed {
        Some(report) if report.status == RunStatus::Graded => {
            let line = format!(
                "graded {} {}/{} in {:.1} s",
                shown(&e.name),
                report.score,
                report.max_score,
                report.duration_s
            );
            let record = Record {
                name: e.name.clone(),
                stem: e.stem.clone(),
                key: r.key,
                report,
            };
            match write_submission(&run.out, &record) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&r.log);
                    outcome.graded += 1;
                    progress.done(&line);
                    return;
                }
                Err(err) => err.to_string(),
            }
        }
        _ if stopping => {
            // Interrupted: nothing is kept, and the next run grades it again.
            let _ = std::fs::remove_file(&r.log);
            return;
        }
        Some(report) => format!(
            "the grader failed: {}",
            report.error.as_deref().unwrap_or("no reason given")
        ),
        None => format!(
            "its grader {} without a report; see {}",
            describe(status),
            r.log.display()
        ),
    };
    progress.done(&format!("FAILED {}: {why}", shown(&e.name)));
    outcome.failed.push((e.name.clone(), why));
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "ended".into(),
    }
}

/// Whether progress should be a bar: standard error is a terminal.
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}
