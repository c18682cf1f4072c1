//! Grading one server: prepare it, observe its model, run each check of its rubric on its own
//! fresh instance, and gather the part of the report that is this server's.

use super::prepare::{prepare, Prepared};
use super::step::{bounded, end_instance, verdict, Around, Env};
use crate::checks::{self, ModelObservation, Outcome, Planned};
use crate::error::GradeError;
use crate::interrupt;
use crate::invocation::Settings;
use crate::report::{round2, CheckReport, PartReport, RunStatus, ServerInfo, Status};
use crate::rubric::Rubric;
use crate::supervise::ServerSpec;
use crate::timing::{Timing, TEARDOWN};
use std::path::Path;
use std::time::{Duration, Instant};

/// One server to grade.
pub struct ServerJob<'a> {
    /// Its name in a submission (`None` for the one server of a run).
    pub name: Option<&'a str>,
    /// Its path inside the submission folder (submissions only).
    pub binary: Option<&'a Path>,
    pub spec: ServerSpec,
    pub rubric: &'a Rubric,
    /// The program must lie inside this folder, reached with no symbolic link (a built
    /// submission).
    pub within: Option<&'a Path>,
}

/// A server graded: its part of the report, and the run figures that add up across servers.
pub struct Graded {
    pub part: PartReport,
    pub status: RunStatus,
    pub duration: Duration,
    /// The model probe's bound and every check's, added up.
    pub bound: Duration,
}

/// Grade one server. Server behaviour, however bad, is a report; `Err` is for bad input and
/// the grader's own failures before any check ran.
pub fn grade_server(job: &ServerJob, settings: &Settings) -> Result<Graded, GradeError> {
    let started = Instant::now();
    let mut prepared = prepare(&job.spec, job.rubric, job.within, settings)?;
    let env = Env {
        launcher: &prepared.launcher,
        timing: Timing::new(&job.rubric.timing, settings.time_scale),
        seed: settings.seed,
    };
    let mut errors = Vec::new();
    let (model, probe_bound) = probe_model(&env, &mut errors);
    let mut bound = probe_bound;
    let mut checks = Vec::new();
    for planned in job.rubric.checks.planned() {
        if interrupt::requested() {
            errors.push("the grader was interrupted (SIGINT or SIGTERM); checks after this point did not run".into());
            break;
        }
        if !settings.runs(planned.id) {
            continue;
        }
        let (report, error) = run_check(&env, &planned, &model);
        bound += Duration::from_secs_f64(report.bound_s.unwrap_or(0.0));
        checks.push(report);
        errors.extend(error);
    }
    // One cause told once: failures that follow from a cause another check established say so.
    checks::story::tell(&mut checks, model.model, job.rubric.charge);
    if interrupt::requested() && errors.is_empty() {
        errors.push("the grader was interrupted (SIGINT or SIGTERM)".into());
    }
    // Measured on the instances started, not assumed.
    prepared.containment["tmp"] = crate::supervise::private_tmp_observed().into();
    prepared.containment["ipc"] = crate::supervise::private_ipc_observed().into();
    Ok(Graded {
        part: part_report(job, &prepared, &model, checks, errors.last().cloned()),
        status: if errors.is_empty() {
            RunStatus::Graded
        } else {
            RunStatus::Error
        },
        duration: started.elapsed(),
        bound,
    })
}

fn part_report(
    job: &ServerJob,
    prepared: &Prepared,
    model: &ModelObservation,
    checks: Vec<CheckReport>,
    error: Option<String>,
) -> PartReport {
    let mut model_evidence = model.evidence.clone();
    if let Some(why) = &prepared.shim_missing {
        model_evidence["signal_safety_shim"] = serde_json::Value::String(why.clone());
    }
    PartReport {
        name: job.name.map(str::to_string),
        binary: job.binary.map(|b| b.display().to_string()),
        rubric: job.rubric.name.clone(),
        server: ServerInfo {
            command: job.spec.template(),
            model: model.model,
            model_evidence,
            containment: prepared.containment.clone(),
        },
        score: round2(checks.iter().map(|c| c.score).sum()),
        max_score: checks.iter().map(|c| c.max_score).sum(),
        checks,
        error,
    }
}

/// Observe the server's model, bounded and guarded like a check: its start and one round of
/// clients. A panic in the probe leaves an observation that says so (every check then is
/// the grader's error), not a lost report.
fn probe_model(env: &Env, errors: &mut Vec<String>) -> (ModelObservation, Duration) {
    let bound = checks::model::probe_bound(env.timing) + TEARDOWN;
    let placeholder = ModelObservation::unobserved();
    let ran = bounded(env, "model", bound, &placeholder, checks::model::observe);
    let ended = end_instance(ran.server, None);
    errors.extend(ended.survivors);
    let observation = match (ran.result, ran.fault) {
        (Ok(m), None) => m,
        (Err(why), _) | (Ok(_), Some(why)) => {
            errors.push(format!(
                "the grader failed while observing the server's model: {why}"
            ));
            ModelObservation::grader_failed(why)
        }
    };
    (observation, bound)
}

/// Run one check behind the step boundary; its report entry and the run error it raised.
fn run_check(
    env: &Env,
    planned: &Planned,
    model: &ModelObservation,
) -> (CheckReport, Option<String>) {
    let t0 = Instant::now();
    // Every check gets its own bound, whatever the checks before it met: its waits stop at
    // its deadline, its teardown follows.
    let bound = (planned.bound)(env.timing);
    let mut run_error = None;
    let (outcome, output, timeline) = if let Some(o) = model.verdict_for_every_check() {
        // The server never became ready when first started, or the probe itself failed: say so
        // for every check rather than wait out the same deadline fourteen times.
        (o, None, None)
    } else {
        let recording = crate::timeline::arm(t0);
        let ran = bounded(env, planned.id, bound, model, |cx| (planned.run)(cx));
        if let Err(why) = &ran.result {
            run_error = Some(format!("the grader failed in check {}: {why}", planned.id));
        }
        if let Some(fault) = &ran.fault {
            run_error = Some(format!(
                "the grader failed in check {}: {fault}",
                planned.id
            ));
        }
        let around = Around {
            cut: ran.cut,
            evidence_truncated: ran.evidence_truncated,
            fault: ran.fault,
            interrupted: interrupt::requested(),
        };
        let mut o = verdict(ran.result, &around, bound);
        let ended = end_instance(ran.server, Some(&mut o));
        run_error = ended.survivors.or(run_error);
        (o, ended.output, Some(recording.finish()))
    };
    let mut report = check_report(planned, outcome, t0, bound, output);
    report.timeline = timeline;
    (report, run_error)
}

fn check_report(
    planned: &Planned,
    outcome: Outcome,
    t0: Instant,
    bound: Duration,
    server_output: Option<crate::report::ServerOutput>,
) -> CheckReport {
    let max = planned.points as f64;
    let share = if outcome.status == Status::Pass {
        1.0
    } else {
        outcome.fraction
    };
    CheckReport {
        id: planned.id.to_string(),
        title: planned.title.to_string(),
        status: outcome.status,
        score: round2(max * share),
        max_score: max,
        duration_s: round2(t0.elapsed().as_secs_f64()),
        bound_s: Some(round2(bound.as_secs_f64())),
        feedback: outcome.feedback,
        evidence: serde_json::Value::Object(outcome.evidence),
        server_output,
        timeline: None,
    }
}
