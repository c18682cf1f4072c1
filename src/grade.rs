//! One grading run: check the inputs, observe the server's model, run each check of the rubric
//! on its own fresh instance, and assemble the report.

use crate::checks::{self, start_failure_outcome, Cx, Launcher};
use crate::error::GradeError;
use crate::report::{
    round2, sanitize, CheckReport, Report, RunStatus, ServerInfo, ServerOutput, Status,
};
use crate::rubric::Rubric;
use crate::supervise::{self, interrupt, privilege, Sandbox, ServerSpec, StdinSource};
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
    /// Who the server runs as when the grader is root (default `nobody`).
    pub user: Option<String>,
    /// `KEY=N` overrides of the rubric's limits.
    pub limit_overrides: Vec<String>,
    /// Whether the grader isolated itself in a fresh network namespace (see supervise::netns).
    pub isolated_net: bool,
    /// The server's standard input.
    pub stdin: StdinSource,
    /// The program must lie inside this folder, reached with no symbolic link (a built
    /// submission).
    pub within: Option<std::path::PathBuf>,
}

impl GradeOptions {
    pub fn new(spec: ServerSpec, rubric: Rubric, seed: u64) -> GradeOptions {
        GradeOptions {
            spec,
            rubric,
            seed,
            time_scale: 1.0,
            only: None,
            user: None,
            limit_overrides: Vec::new(),
            isolated_net: false,
            stdin: StdinSource::default(),
            within: None,
        }
    }
}

/// How much of each output stream a failed check shows.
const REPORT_TAIL: usize = 2048;

/// Refuse a server that cannot possibly run, with a message that names the problem; the
/// program opened, for copying.
///
/// The path is student-controlled (a Makefile may make `echoserverp` a symbolic link to any
/// program on the machine, or a FIFO): it is opened without following a link, without
/// blocking, and only a regular file is accepted. With `within`, the program must lie inside
/// that folder, reached with no symbolic link on the way.
pub fn validate_server(path: &Path, within: Option<&Path>) -> Result<std::fs::File, GradeError> {
    use crate::supervise::files::{self, Refused};
    use std::os::unix::fs::PermissionsExt;
    let opened = match within {
        Some(dir) => files::open_regular_beneath(dir, path.strip_prefix(dir).unwrap_or(path)),
        None => files::open_regular(path),
    };
    let mut file = opened.map_err(|e| match e {
        Refused::Missing => GradeError::ServerMissing(path.to_path_buf()),
        e => GradeError::ServerNotExecutable {
            path: path.to_path_buf(),
            why: e.to_string(),
        },
    })?;
    let meta = file
        .metadata()
        .map_err(|e| GradeError::ServerNotExecutable {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
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
    let n =
        std::io::Read::read(&mut file, &mut head).map_err(|e| GradeError::ServerNotExecutable {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
    if !(n >= 4 && &head == b"\x7fELF" || n >= 2 && &head[..2] == b"#!") {
        return Err(GradeError::ServerNotExecutable {
            path: path.to_path_buf(),
            why: "it is neither a compiled program (ELF) nor a script starting with #!".into(),
        });
    }
    Ok(file)
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
    let program = validate_server(&opts.spec.program, opts.within.as_deref())?;
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
    let mut limits = opts.rubric.limits.clone();
    limits
        .apply_overrides(&opts.limit_overrides)
        .map_err(GradeError::Usage)?;
    let run_as = privilege::resolve(opts.user.as_deref()).map_err(GradeError::Usage)?;
    // As root the server runs from root's own copy, filled from the descriptor just validated:
    // whatever the student's path points to later (a link swapped in by a process a Makefile
    // left behind), the program graded is the regular file checked here, and the other user
    // can execute it wherever the student's file lies.
    let mut spec = opts.spec.clone();
    let _copy = match &run_as {
        Some(u) => {
            let c = privilege::accessible_copy(program, &spec.program).map_err(|e| {
                GradeError::Internal(format!(
                    "cannot copy the server where user {} can run it: {e}",
                    u.name
                ))
            })?;
            // Only the grading's own user may reach it: not a server of a grading beside.
            if let Some(dir) = c.path.parent() {
                supervise::uid_slots::share_only_with(dir, u).map_err(|e| {
                    GradeError::Internal(format!("cannot restrict the server's copy: {e}"))
                })?;
            }
            spec.program = c.path.clone();
            Some(c)
        }
        None => None,
    };
    supervise::become_subreaper();
    privilege::shield_grader();
    interrupt::install();
    raise_nofile();
    let timing = Timing::new(&opts.rubric.timing, opts.time_scale);
    let shim = crate::shim::materialize();
    let home = privilege::scratch_home(run_as.as_ref())
        .map_err(|e| GradeError::Internal(format!("cannot create the server's HOME: {e}")))?;
    let launcher = Launcher {
        spec,
        sandbox: Sandbox {
            stdin: opts.stdin.clone(),
            limits: limits.clone(),
            cgroups: true,
            run_as: run_as.clone(),
            home: Some(home.path().to_path_buf()),
        },
        shim: shim.as_ref().ok().map(|s| s.path.clone()),
    };
    let containment_probe = supervise::InstanceCgroup::create(
        &format!("echograde-{}-probe", std::process::id()),
        8,
        16 << 20,
    );
    let mut containment = serde_json::json!({
        "process_group": true,
        "child_subreaper": true,
        "cgroup": containment_probe.describe(),
        "rlimits": {
            "cpu_s": limits.cpu_s,
            "nofile": limits.nofile,
            "nproc": if run_as.is_some() || containment_probe.pids_limited { serde_json::json!(limits.nproc) } else { serde_json::json!("not enforced (the server runs as the grader's own user)") },
            "memory_mib": if containment_probe.memory_limited { serde_json::json!(limits.memory_mib) } else { serde_json::json!(format!("RLIMIT_AS {} MiB (no memory cgroup)", limits.memory_mib * 16)) },
            "fsize_mib": limits.fsize_mib,
            "core": 0,
        },
        "user": run_as.as_ref().map_or("the grader's own (not root)".to_string(), |u| u.name.clone()),
        "ipc": if run_as.is_some() { "private (an IPC namespace per instance)" } else { "shared with the grader's user (no IPC namespace without root)" },
        "signals": if privilege::signal_scoping_available() { "scoped to the server's own processes (Landlock)" } else { "not scoped (this kernel has no Landlock signal scoping)" },
        "network": if opts.isolated_net { "isolated (new network namespace, loopback only)" } else { "shared with the host (loopback)" },
    });
    drop(containment_probe);
    // The model probe is bounded like a check: its start and its one round of clients.
    let probe_bound = checks::model::probe_bound(timing) + crate::timing::TEARDOWN;
    let model = {
        let _bound = crate::timing::set_check_deadline(
            Instant::now() + probe_bound - crate::timing::TEARDOWN,
        );
        checks::model::observe(&launcher, timing, opts.seed)
    };
    // Measured on the instance the probe started, not assumed.
    containment["tmp"] = supervise::mount_ns::observed().into();
    containment["ipc"] = supervise::mount_ns::observed_ipc().into();
    let mut run_bound = probe_bound;
    let mut reports = Vec::new();
    let mut run_error: Option<String> = None;
    for planned in opts.rubric.checks.planned() {
        let t0 = Instant::now();
        if interrupt::requested() {
            run_error = Some("the grader was interrupted (SIGINT or SIGTERM); checks after this point did not run".into());
            break;
        }
        if !opts
            .only
            .as_ref()
            .is_none_or(|o| o.iter().any(|i| i == planned.id))
        {
            continue;
        }
        // Every check gets its own bound, whatever the checks before it met: its waits stop at
        // `deadline`, its teardown follows.
        let bound = (planned.bound)(timing);
        run_bound += bound;
        let mut output = None;
        let mut timeline = None;
        let outcome = if let Some(f) = &model.start_failure {
            // The server never became ready when first started: say so for every check rather
            // than wait out the same deadline fourteen times.
            start_failure_outcome(f)
        } else {
            let deadline = t0 + bound - crate::timing::TEARDOWN;
            let guard = crate::timing::set_check_deadline(deadline);
            let recording = crate::timeline::arm(t0);
            let mut cx = Cx::new(planned.id, opts.seed, timing, &model, &launcher, deadline);
            crate::inspect::fds::take_truncated();
            // A bug in one check must not lose the whole report: it becomes that check's error.
            let ran =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (planned.run)(&mut cx)));
            let cut = Instant::now() >= deadline;
            drop(guard);
            let mut o = match ran {
                Ok(o) => o,
                Err(p) => {
                    let why = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    run_error = Some(format!("the grader failed in check {}: {why}", planned.id));
                    checks::Outcome::error(format!(
                        "The grader itself failed while running this check ({why}); this is not the server's fault."
                    ))
                }
            };
            if crate::inspect::fds::take_truncated() && o.status == Status::Pass {
                // The server's tree was too big (or the run too late) to read in full: a pass
                // on part of the evidence could be a forged one.
                o = checks::Outcome::fail(
                    0.0,
                    format!(
                        "The grader could not read all of the server's descriptors (more than {} in \
                         one process, or past the check's time bound), so it cannot vouch for this check.",
                        crate::inspect::fds::FD_CAP
                    ),
                    serde_json::json!({ "evidence_incomplete": true }),
                );
            }
            if cut && o.status == Status::Fail {
                o.feedback.push_str(&format!(
                    " (This check used up its time bound of {:.1} s, the sum of its deadlines: \
                     waits still running then were cut, and the verdict rests on what was seen \
                     by then.)",
                    bound.as_secs_f64()
                ));
            }
            if interrupt::requested() {
                o = checks::Outcome::error(
                    "Interrupted: the grader was asked to stop during this check.",
                );
            }
            if let Some(mut srv) = cx.take_server() {
                if o.status == Status::Fail {
                    if let Some(d) = srv.main_exit() {
                        o.evidence.insert(
                            "server_exit".into(),
                            serde_json::Value::String(d.to_string()),
                        );
                    }
                    if let Some(limit) = srv.limit_hit() {
                        o.feedback.push_str(&format!(
                            " The server ran into {limit}: the grader stops a server that exceeds it."
                        ));
                        o.evidence
                            .insert("limit_hit".into(), serde_json::Value::String(limit));
                    }
                }
                crate::timeline::action(
                    crate::timeline::ActionKind::Teardown,
                    "teardown: SIGTERM to the server's processes, SIGKILL to what is left",
                );
                let td = srv.teardown();
                if !td.survivors.is_empty() {
                    run_error = Some(format!(
                        "processes {:?} of the server could not be killed",
                        td.survivors
                    ));
                }
                if o.show_output {
                    output = Some(ServerOutput {
                        stdout_tail: sanitize(&srv.stdout.last(REPORT_TAIL)),
                        stderr_tail: sanitize(&srv.stderr.last(REPORT_TAIL)),
                    });
                }
            }
            timeline = Some(recording.finish());
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
            bound_s: Some(round2(bound.as_secs_f64())),
            feedback: outcome.feedback,
            evidence: serde_json::Value::Object(outcome.evidence),
            server_output: output
                .filter(|o| !o.stdout_tail.is_empty() || !o.stderr_tail.is_empty()),
            timeline,
        });
    }
    let mut model_evidence = model.evidence.clone();
    if let Err(why) = &shim {
        model_evidence["signal_safety_shim"] = serde_json::Value::String(why.clone());
    }
    if interrupt::requested() && run_error.is_none() {
        run_error = Some("the grader was interrupted (SIGINT or SIGTERM)".into());
    }
    // Nothing of the server may outlive the run: the report is written after this.
    supervise::reap::kill_orphans();
    Ok(Report {
        echograde: env!("CARGO_PKG_VERSION").to_string(),
        status: if run_error.is_some() {
            RunStatus::Error
        } else {
            RunStatus::Graded
        },
        rubric: opts.rubric.name.clone(),
        seed: opts.seed,
        server: ServerInfo {
            command: opts.spec.template(),
            model: model.model,
            model_evidence,
            containment,
        },
        score: round2(reports.iter().map(|c| c.score).sum()),
        max_score: reports.iter().map(|c| c.max_score).sum(),
        duration_s: round2(started.elapsed().as_secs_f64()),
        bound_s: Some(round2(run_bound.as_secs_f64())),
        checks: reports,
        error: run_error,
    })
}
