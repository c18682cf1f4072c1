//! `grade --build DIR`: build the submission with `make`, then grade each server it names.
//! A failed build, or a program the build did not produce, is graded (every check of that
//! server listed, failed, 0 points, with the reason); `Err` is for bad input and the grader's
//! own failures.

use super::server::{grade_server, Graded, ServerJob};
use crate::error::GradeError;
use crate::invocation::{BuildJob, Settings};
use crate::platform::build::{run_make, BuildOutcome, BuildSpec};
use crate::platform::submission::Part;
use crate::report::{
    round2, BuildReport, CheckReport, Model, PartReport, Report, RunStatus, ServerInfo, Status,
};
use crate::supervise::{self, ServerSpec};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// Build the submission and grade each of its servers into one report.
pub fn grade_submission(job: &BuildJob, settings: &Settings) -> Result<Report, GradeError> {
    // As root, the student's Makefile runs as the server's unprivileged user, in a copy of the
    // submission that user owns: it can then write neither the results nor the grader.
    let run_as = supervise::resolve_user(settings.user.as_deref()).map_err(GradeError::Usage)?;
    let copy = match &run_as {
        Some(u) => Some(supervise::build_copy(&job.dir, u).map_err(|e| {
            GradeError::Internal(format!(
                "cannot copy the submission for an unprivileged build: {e}"
            ))
        })?),
        None => None,
    };
    let dir = copy
        .as_ref()
        .map_or(job.dir.as_path(), |c| c.path.as_path());
    let spec = BuildSpec {
        target: job.target.clone(),
        timeout: job.timeout,
        run_as,
        adopt_leftovers: true,
    };
    let build = run_make(dir, &spec)?;
    let mut graded = Vec::new();
    for part in &job.submission.parts {
        graded.push(grade_part(
            part,
            &build,
            dir,
            job.submission.single,
            settings,
        )?);
    }
    Ok(combine(
        &job.submission.name,
        build_report(&build),
        graded,
        settings.seed,
    ))
}

/// One server of the submission, graded, or listed as not graded with the reason.
fn grade_part(
    part: &Part,
    build: &BuildOutcome,
    dir: &Path,
    single: bool,
    settings: &Settings,
) -> Result<Graded, GradeError> {
    let spec = ServerSpec {
        program: dir.join(&part.binary),
        args: part.args.clone(),
    };
    if !build.ok {
        let why = format!(
            "Not graded: the build failed (`{}` {}); see the `build` entry for the compiler's messages.",
            build.command_line(),
            build.exit
        );
        return Ok(not_graded(part, &spec, single, settings, &why));
    }
    let job = ServerJob {
        name: (!single).then_some(part.name.as_str()),
        binary: (!single).then_some(part.binary.as_path()),
        spec: spec.clone(),
        rubric: &part.rubric,
        // What the build made is student-controlled: only a regular file inside the
        // submission, reached through no symbolic link, is graded.
        within: Some(dir),
    };
    match grade_server(&job, settings) {
        Ok(g) => Ok(g),
        Err(GradeError::ServerMissing(_)) => {
            let why = format!(
                "Not graded: `{}` succeeded but left no `{}` in the submission: does the Makefile build it (is it in the target's prerequisites, spelled the same)?",
                build.command_line(),
                part.binary.display()
            );
            Ok(not_graded(part, &spec, single, settings, &why))
        }
        Err(e @ GradeError::ServerNotExecutable { .. }) => Ok(not_graded(
            part,
            &spec,
            single,
            settings,
            &format!("Not graded: {e}"),
        )),
        Err(e) => Err(e),
    }
}

/// A server that could not be graded: every check it would have run, failed, 0 points.
fn not_graded(
    part: &Part,
    spec: &ServerSpec,
    single: bool,
    settings: &Settings,
    why: &str,
) -> Graded {
    let checks: Vec<CheckReport> = part
        .rubric
        .checks
        .planned()
        .iter()
        .filter(|c| settings.runs(c.id))
        .map(|c| CheckReport {
            id: c.id.to_string(),
            title: c.title.to_string(),
            status: Status::Fail,
            score: 0.0,
            max_score: c.points as f64,
            duration_s: 0.0,
            bound_s: None,
            feedback: why.to_string(),
            evidence: json!({ "graded": false }),
            server_output: None,
            timeline: None,
        })
        .collect();
    Graded {
        part: PartReport {
            name: (!single).then(|| part.name.clone()),
            binary: (!single).then(|| part.binary.display().to_string()),
            rubric: part.rubric.name.clone(),
            server: ServerInfo {
                command: spec.template(),
                model: Model::Unknown,
                model_evidence: json!({ "graded": false }),
                containment: json!({}),
            },
            score: 0.0,
            max_score: checks.iter().map(|c| c.max_score).sum(),
            checks,
            error: None,
        },
        status: RunStatus::Graded,
        duration: Duration::ZERO,
        bound: Duration::ZERO,
    }
}

/// The report's `build` entry: the command, how it ended, make's output in the feedback.
pub fn build_report(build: &BuildOutcome) -> BuildReport {
    let cmd = build.command_line();
    let secs = build.duration.as_secs_f64();
    BuildReport {
        title: format!("The submission builds with `{cmd}`"),
        status: if build.ok { Status::Pass } else { Status::Fail },
        duration_s: round2(secs),
        feedback: build_feedback(build),
        command: build.command.clone(),
        exit: build.exit.clone(),
        timed_out: build.timed_out,
        output_bytes: build.output_bytes,
        warnings: build.warnings,
    }
}

fn build_feedback(build: &BuildOutcome) -> String {
    let cmd = build.command_line();
    let secs = build.duration.as_secs_f64();
    if build.ok {
        let mut f = format!("`{cmd}` succeeded in {secs:.1} s.");
        if build.warnings > 0 {
            f.push_str(&format!(
                " The compiler printed {} warning{}: read them, they often point at the bug.\n\n{}",
                build.warnings,
                if build.warnings == 1 { "" } else { "s" },
                build.output
            ));
        }
        f
    } else if build.timed_out {
        format!(
            "`{cmd}` {}: a build should take seconds. Does the Makefile run a server or wait for input? Nothing was graded; the score is 0.\n\nmake's output:\n{}",
            build.exit, build.output
        )
    } else {
        format!(
            "`{cmd}` {} after {secs:.1} s, so nothing could be graded and the score is 0. Fix the first error below, check that `{cmd}` builds on a clean copy of your files, and submit again.\n\nmake's output:\n{}",
            build.exit, build.output
        )
    }
}

/// One report from the build and each server graded. A single server's report keeps its own
/// rubric name; a submission's is the submission rubric's.
fn combine(name: &str, build: BuildReport, graded: Vec<Graded>, seed: u64) -> Report {
    let single = matches!(graded.as_slice(), [g] if g.part.name.is_none());
    let duration = build.duration_s + graded.iter().map(|g| g.duration.as_secs_f64()).sum::<f64>();
    let bound: f64 = graded.iter().map(|g| g.bound.as_secs_f64()).sum();
    let errors: Vec<String> = graded
        .iter()
        .filter_map(|g| {
            let e = g.part.error.as_ref()?;
            Some(match (&g.part.name, single) {
                (Some(n), false) => format!("{n}: {e}"),
                _ => e.clone(),
            })
        })
        .collect();
    let parts: Vec<PartReport> = graded.iter().map(|g| g.part.clone()).collect();
    Report {
        echograde: env!("CARGO_PKG_VERSION").to_string(),
        status: if graded.iter().any(|g| g.status == RunStatus::Error) {
            RunStatus::Error
        } else {
            RunStatus::Graded
        },
        rubric: if single {
            parts[0].rubric.clone()
        } else {
            name.to_string()
        },
        seed,
        score: round2(parts.iter().map(|p| p.score).sum()),
        max_score: parts.iter().map(|p| p.max_score).sum(),
        duration_s: round2(duration),
        bound_s: (bound > 0.0).then(|| round2(bound)),
        build: Some(build),
        parts,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    }
}
