//! One grading run: check the inputs, observe the server's model, run each check of the rubric
//! on its own fresh instance, and assemble the report.

use crate::checks::{self, start_failure_outcome, Cx, Launcher};
use crate::error::GradeError;
use crate::report::{
    round2, sanitize, CheckReport, Report, RunStatus, ServerInfo, ServerOutput, Status,
};
use crate::rubric::Rubric;
use crate::supervise::{self, ServerSpec};
use crate::timing::Timing;
use std::path::Path;
use std::time::Instant;

/// What to grade and how.
#[derive(Debug, Clone)]
pub struct GradeOptions {
    pub spec: ServerSpec,
    pub rubric: Rubric,
    pub seed: u64,
    pub time_scale: f64,
    /// Run only these check ids (the others are left out of the report and its totals).
    pub only: Option<Vec<String>>,
}

/// How much of each output stream a failed check shows.
const REPORT_TAIL: usize = 2048;

/// Refuse a server that cannot possibly run, with a message that names the problem.
pub fn validate_server(path: &Path) -> Result<(), GradeError> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).map_err(|_| GradeError::ServerMissing(path.to_path_buf()))?;
    if meta.is_dir() {
        return Err(GradeError::ServerNotExecutable {
            path: path.to_path_buf(),
            why: "it is a directory, not a program".into(),
        });
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(GradeError::ServerNotExecutable {
            path: path.to_path_buf(),
            why: format!("it is not executable (try `chmod +x {}`)", path.display()),
        });
    }
    if nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_err() {
        return Err(GradeError::ServerNotExecutable {
            path: path.to_path_buf(),
            why: "this user may not execute it".into(),
        });
    }
    let mut head = [0u8; 4];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .map_err(|e| GradeError::ServerNotExecutable {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
    if !(n >= 4 && &head == b"\x7fELF" || n >= 2 && &head[..2] == b"#!") {
        return Err(GradeError::ServerNotExecutable {
            path: path.to_path_buf(),
            why: "it is neither a compiled program (ELF) nor a script starting with #!".into(),
        });
    }
    Ok(())
}

/// Raise this process's soft descriptor limit to its hard limit: a check holds hundreds of
/// client sockets at once.
fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// Grade a server. Server behaviour, however bad, is a report; `Err` is for the grader's own
/// failures.
pub fn grade(opts: &GradeOptions) -> Result<Report, GradeError> {
    let started = Instant::now();
    validate_server(&opts.spec.program)?;
    if let Some(only) = &opts.only {
        for id in only {
            if !checks::ALL_IDS.contains(&id.as_str()) {
                return Err(GradeError::Usage(format!(
                    "--only: unknown check id `{id}` (known: {})",
                    checks::ALL_IDS.join(", ")
                )));
            }
        }
    }
    if !std::path::Path::new("/proc/self/fd").exists() {
        return Err(GradeError::Internal(
            "/proc is not mounted: the grader reads the server's state from it".into(),
        ));
    }
    supervise::become_subreaper();
    raise_nofile();
    let timing = Timing::new(&opts.rubric.timing, opts.time_scale);
    let shim = crate::shim::materialize();
    let launcher = Launcher {
        spec: opts.spec.clone(),
        shim: shim.as_ref().ok().map(|s| s.path.clone()),
    };
    let model = checks::model::observe(&launcher, timing, opts.seed);
    let mut reports = Vec::new();
    for planned in opts.rubric.checks.planned() {
        let t0 = Instant::now();
        if !opts
            .only
            .as_ref()
            .is_none_or(|o| o.iter().any(|i| i == planned.id))
        {
            continue;
        }
        let mut output = None;
        let outcome = if let Some(f) = &model.start_failure {
            // The server never became ready when first started: say so for every check rather
            // than wait out the same deadline fourteen times.
            start_failure_outcome(f)
        } else {
            let mut cx = Cx::new(planned.id, opts.seed, timing, &model, &launcher);
            let mut o = (planned.run)(&mut cx);
            if let Some(mut srv) = cx.take_server() {
                if o.status == Status::Fail {
                    if let Some(d) = srv.main_exit() {
                        o.evidence.insert(
                            "server_exit".into(),
                            serde_json::Value::String(d.to_string()),
                        );
                    }
                }
                srv.teardown();
                if o.show_output {
                    output = Some(ServerOutput {
                        stdout_tail: sanitize(&srv.stdout.last(REPORT_TAIL)),
                        stderr_tail: sanitize(&srv.stderr.last(REPORT_TAIL)),
                    });
                }
            }
            o
        };
        let max = planned.points as f64;
        reports.push(CheckReport {
            id: planned.id.to_string(),
            title: planned.title.to_string(),
            status: outcome.status,
            score: round2(
                max * if outcome.status == Status::Pass {
                    1.0
                } else {
                    outcome.fraction
                },
            ),
            max_score: max,
            duration_s: round2(t0.elapsed().as_secs_f64()),
            feedback: outcome.feedback,
            evidence: serde_json::Value::Object(outcome.evidence),
            server_output: output
                .filter(|o| !o.stdout_tail.is_empty() || !o.stderr_tail.is_empty()),
        });
    }
    let mut model_evidence = model.evidence.clone();
    if let Err(why) = &shim {
        model_evidence["signal_safety_shim"] = serde_json::Value::String(why.clone());
    }
    Ok(Report {
        echograde: env!("CARGO_PKG_VERSION").to_string(),
        status: RunStatus::Graded,
        rubric: opts.rubric.name.clone(),
        seed: opts.seed,
        server: ServerInfo {
            command: opts.spec.template(),
            model: model.model,
            model_evidence,
        },
        score: round2(reports.iter().map(|c| c.score).sum()),
        max_score: reports.iter().map(|c| c.max_score).sum(),
        duration_s: round2(started.elapsed().as_secs_f64()),
        checks: reports,
        error: None,
    })
}
