//! The run pipeline: from a validated [`Invocation`] to the [`Report`].
//!
//! A grading reads top-down, once:
//! - [`guard`]: the process-wide setup (subreaper, signal handlers, descriptor limit), made
//!   once by `main`; its `Drop` kills whatever a server left behind.
//! - [`submission`]: with `--build`, `make` first, then each server the submission names.
//! - [`server`]: one server: [`prepare`] it (program checked, sandbox, containment), observe
//!   its model, then each check of its rubric on its own fresh instance.
//! - [`step`]: the boundary every step runs behind, the model probe included: its time bound,
//!   a panic caught as the grader's `error`, the grader's own faults, teardown and output.
//!
//! The report that comes out is a typed model; every format is a view of it.

mod guard;
mod prepare;
pub mod server;
mod step;
pub mod submission;

pub use guard::ProcessGuard;
pub use server::{grade_server, Graded, ServerJob};

use crate::error::GradeError;
use crate::invocation::{Invocation, Job};
use crate::report::Report;

/// Grade what the invocation names. Server behaviour, however bad, is a report; `Err` is for
/// bad input and the grader's own failures. Needs a [`ProcessGuard`] held by the caller.
pub fn run(inv: &Invocation, _guard: &ProcessGuard) -> Result<Report, GradeError> {
    match &inv.job {
        Job::Server { spec, rubric } => {
            let job = ServerJob {
                name: None,
                binary: None,
                spec: spec.clone(),
                rubric,
                within: None,
            };
            Ok(single(
                grade_server(&job, &inv.settings)?,
                inv.settings.seed,
            ))
        }
        Job::Build(job) => submission::grade_submission(job, &inv.settings),
    }
}

/// The report of one server graded on its own.
fn single(g: Graded, seed: u64) -> Report {
    Report {
        echograde: env!("CARGO_PKG_VERSION").to_string(),
        status: g.status,
        rubric: g.part.rubric.clone(),
        seed,
        score: g.part.score,
        max_score: g.part.max_score,
        duration_s: crate::report::round2(g.duration.as_secs_f64()),
        bound_s: Some(crate::report::round2(g.bound.as_secs_f64())),
        build: None,
        error: g.part.error.clone(),
        parts: vec![g.part],
    }
}
