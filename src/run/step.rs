//! One bounded step of a grading: the model probe or one check. Every step runs behind the
//! same boundary: its own time bound, a panic caught and turned into the grader's error (a bug
//! in one check must not lose the whole report), faults of the grader's own recorded deep
//! down taken back, and its server instance torn down with its output kept.

use crate::checks::{Cx, Launcher, ModelObservation, Outcome};
use crate::report::{sanitize, ServerOutput, Status};
use crate::supervise::Server;
use crate::timing::{Timing, TEARDOWN};
use std::time::{Duration, Instant};

/// How much of each output stream a failed check shows.
const REPORT_TAIL: usize = 2048;

/// What a step's closure gets besides its [`Cx`]: the run's shared pieces.
pub(crate) struct Env<'a> {
    pub launcher: &'a Launcher,
    pub timing: Timing,
    pub seed: u64,
}

/// How a step ended, as measured around it.
pub(crate) struct Ran<T> {
    /// The closure's result, or the message of its panic.
    pub result: Result<T, String>,
    /// It ran into its bound (waits still running then were cut).
    pub cut: bool,
    /// The server's descriptors could not all be read (too many, or past the bound).
    pub evidence_truncated: bool,
    /// A failure of the grader's own, recorded during the step (see [`crate::fault`]).
    pub fault: Option<String>,
    /// The instance the step started, still to be ended.
    pub server: Option<Server>,
}

/// Run `f` on a fresh [`Cx`] within `bound` (its teardown included).
pub(crate) fn bounded<T>(
    env: &Env,
    id: &str,
    bound: Duration,
    model: &ModelObservation,
    f: impl FnOnce(&mut Cx) -> T,
) -> Ran<T> {
    let deadline = Instant::now() + bound - TEARDOWN;
    let guard = crate::timing::set_check_deadline(deadline);
    let mut cx = Cx::new(id, env.seed, env.timing, model, env.launcher, deadline);
    crate::inspect::fds::take_truncated();
    crate::fault::take();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut cx)))
        .map_err(|p| panic_message(p.as_ref()));
    let cut = Instant::now() >= deadline;
    drop(guard);
    Ran {
        result,
        cut,
        evidence_truncated: crate::inspect::fds::take_truncated(),
        fault: crate::fault::take(),
        server: cx.take_server(),
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// What ending a step's instance left to report.
#[derive(Default)]
pub(crate) struct Ended {
    pub output: Option<ServerOutput>,
    /// Processes of the server that could not be killed (the grader's failure).
    pub survivors: Option<String>,
}

/// End a step's instance. For a failed verdict, how the server ended and the limit it ran
/// into join the evidence first (they explain the failure); `show_output` keeps its tails.
pub(crate) fn end_instance(server: Option<Server>, outcome: Option<&mut Outcome>) -> Ended {
    let Some(mut srv) = server else {
        return Ended::default();
    };
    let mut show_output = false;
    if let Some(o) = outcome {
        show_output = o.show_output;
        if o.status == Status::Fail {
            explain_failure(&mut srv, o);
        }
    }
    crate::timeline::action(
        crate::timeline::ActionKind::Teardown,
        "teardown: SIGTERM to the server's processes, SIGKILL to what is left",
    );
    let td = srv.teardown();
    let survivors = (!td.survivors.is_empty()).then(|| {
        format!(
            "processes {:?} of the server could not be killed",
            td.survivors
        )
    });
    let output = show_output
        .then(|| ServerOutput {
            stdout_tail: sanitize(&srv.stdout.last(REPORT_TAIL)),
            stderr_tail: sanitize(&srv.stderr.last(REPORT_TAIL)),
        })
        .filter(|o| !o.stdout_tail.is_empty() || !o.stderr_tail.is_empty());
    Ended { output, survivors }
}

fn explain_failure(srv: &mut Server, o: &mut Outcome) {
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

/// What the boundary measured around a check, for [`verdict`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Around {
    pub cut: bool,
    pub evidence_truncated: bool,
    pub fault: Option<String>,
    pub interrupted: bool,
}

/// A check's verdict from what it concluded and what was measured around it. A panic or a
/// fault of the grader is `error` (never a `fail` the server did not earn); a pass on evidence
/// read in part is no pass; a failure cut at the bound says so.
pub(crate) fn verdict(ran: Result<Outcome, String>, around: &Around, bound: Duration) -> Outcome {
    let mut o = match ran {
        Ok(o) => o,
        Err(why) => {
            return Outcome::error(format!(
                "The grader itself failed while running this check ({why}); this is not the server's fault."
            ))
        }
    };
    if let Some(fault) = &around.fault {
        return Outcome::error(format!(
            "The grader itself failed while running this check ({fault}); this is not the server's fault."
        ));
    }
    if around.evidence_truncated && o.status == Status::Pass {
        o = Outcome::fail(
            0.0,
            format!(
                "The grader could not read all of the server's descriptors (more than {} in \
                 one process, or past the check's time bound), so it cannot vouch for this check.",
                crate::inspect::fds::FD_CAP
            ),
            serde_json::json!({ "evidence_incomplete": true }),
        );
    }
    if around.cut && o.status == Status::Fail {
        o.feedback.push_str(&format!(
            " (This check used up its time bound of {:.1} s, the sum of its deadlines: \
             waits still running then were cut, and the verdict rests on what was seen \
             by then.)",
            bound.as_secs_f64()
        ));
    }
    if around.interrupted {
        o = Outcome::error("Interrupted: the grader was asked to stop during this check.");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BOUND: Duration = Duration::from_secs(3);

    #[test]
    fn a_panic_or_a_fault_of_the_grader_is_an_error_never_a_fail() {
        let o = verdict(Err("index out of bounds".into()), &Around::default(), BOUND);
        assert_eq!(o.status, Status::Error);
        assert!(o.feedback.contains("index out of bounds"));
        let around = Around {
            fault: Some("poll() failed: ENOMEM".into()),
            ..Around::default()
        };
        let o = verdict(Ok(Outcome::fail(0.0, "idle", json!({}))), &around, BOUND);
        assert_eq!(o.status, Status::Error);
        assert!(o.feedback.contains("not the server's fault"));
    }

    #[test]
    fn a_pass_on_part_of_the_evidence_is_no_pass() {
        let around = Around {
            evidence_truncated: true,
            ..Around::default()
        };
        let o = verdict(Ok(Outcome::pass("fine", json!({}))), &around, BOUND);
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.evidence["evidence_incomplete"], true);
    }

    #[test]
    fn a_failure_at_the_bound_says_so_and_a_pass_does_not() {
        let around = Around {
            cut: true,
            ..Around::default()
        };
        let o = verdict(Ok(Outcome::fail(0.0, "slow.", json!({}))), &around, BOUND);
        assert!(o.feedback.contains("time bound of 3.0 s"), "{}", o.feedback);
        let o = verdict(Ok(Outcome::pass("fine.", json!({}))), &around, BOUND);
        assert_eq!(o.feedback, "fine.");
    }

    #[test]
    fn an_interrupted_check_is_an_error() {
        let around = Around {
            interrupted: true,
            ..Around::default()
        };
        let o = verdict(Ok(Outcome::pass("fine", json!({}))), &around, BOUND);
        assert_eq!(o.status, Status::Error);
    }
}
