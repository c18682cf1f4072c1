//! One cause, told once: after every check has run, a failure that is the consequence of a
//! cause another check established says so and points there, instead of telling its own story.
//!
//! Read on a real class, an iterative server lost overlap, partial-line, stay, many and
//! fairness with five different explanations ("it waits inside a read for the rest of A's
//! line" among them, where by hand A's half line came back at once: it was blocked because it
//! serves one client at a time). A server with the `&connfd` race had its lost connections
//! explained by leak.fd as "each thread must close its connfd" (its threads do close) and by
//! liveness.churn as a server that "stopped serving". The cause is established by one check,
//! on its own evidence; each consequence keeps its measurement (the first sentence of its
//! feedback, which says what its clients saw) and its points, and drops its own guess.
//!
//! A consequence costs its check's points in full (a partial share measured while the cause
//! struck at random would make the same code score differently from run to run). A rubric may
//! instead charge a root cause once (`charge: once`): the consequences are then still reported
//! as failures, with their points given back. Off by default: the course's rubric decides what
//! each check costs.

use crate::report::{CheckReport, Model, Status};
use serde::{Deserialize, Serialize};

/// How a rubric charges checks whose failure another check's cause explains.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Charge {
    /// Every failing check costs its points (the default).
    #[default]
    Each,
    /// A consequence of a cause another check established costs nothing more.
    Once,
}

/// A cause one check establishes and the checks whose failures follow from it.
struct Cause {
    root: &'static str,
    /// Whether the root's report establishes the cause.
    established: fn(&CheckReport, Model) -> bool,
    /// Each consequence and what the cause does to it, in words.
    consequences: &'static [(&'static str, &'static str)],
    /// The cause in words, for "the server ...".
    what: &'static str,
}

const CAUSES: &[Cause] = &[
    Cause {
        root: "concurrency.overlap",
        established: |c, model| model == Model::Iterative && c.feedback.contains("one client at a time"),
        consequences: &[
            ("concurrency.partial-line", "the client that sent half a line held the server, and the others waited for it to leave"),
            ("concurrency.stay", "a client that stays connected holds the server, and the others wait for it to leave"),
            ("concurrency.many", "only one of the clients connected at once is served"),
            ("fairness", "the streaming client holds the server for as long as it stays"),
        ],
        what: "serves one client at a time",
    },
    Cause {
        root: "race.connfd",
        established: |c, model| model == Model::Thread && c.feedback.contains("&connfd"),
        consequences: &[
            ("leak.fd", "a connection whose descriptor was overwritten in the shared slot is never served nor closed by any thread"),
            ("liveness.churn", "connections whose descriptor was overwritten in the shared slot are never served"),
            ("concurrency.many", "connections whose descriptor was overwritten in the shared slot are never served"),
            ("leak.threads", "threads that were handed the same descriptor serve one connection twice and leave another unserved"),
        ],
        what: "hands its threads the descriptor through one shared slot (the &connfd race)",
    },
    Cause {
        root: "concurrency.stay",
        established: |c, model| model == Model::Event && c.feedback.contains("is not among those it watches"),
        consequences: &[
            ("leak.fd", "a client above what the loop watches is never read again, so its close is never seen and its descriptor stays open"),
            ("liveness.churn", "clients above what the loop watches are never read again"),
            ("race.connfd", "clients above what the loop watches are never read again"),
            ("leak.threads", "clients above what the loop watches are never read again"),
        ],
        what: "stops watching a connected client when a lower descriptor or slot is reused",
    },
];

/// Rewrite the failures that follow from an established cause; with [`Charge::Once`], give
/// their points back.
pub fn tell(checks: &mut [CheckReport], model: Model, charge: Charge) {
    for cause in CAUSES {
        let Some(root) = checks.iter().find(|c| c.id == cause.root) else {
            continue;
        };
        if root.status != Status::Fail || !(cause.established)(root, model) {
            continue;
        }
        for c in checks.iter_mut() {
            let Some((_, effect)) = cause.consequences.iter().find(|(id, _)| *id == c.id) else {
                continue;
            };
            if c.status != Status::Fail || c.evidence.get("explained_by").is_some() {
                continue;
            }
            c.feedback = format!(
                "{} This follows from what {} found: the server {}, so {}. Fix that first.",
                first_sentence(&c.feedback),
                cause.root,
                cause.what,
                effect
            );
            if let Some(ev) = c.evidence.as_object_mut() {
                ev.insert("explained_by".into(), cause.root.into());
            }
            // Its points follow the cause, not how often chance let the cause strike here: a
            // partial share measured while the cause struck at random would make the same code
            // score differently from run to run.
            c.score = 0.0;
            if charge == Charge::Once {
                c.score = c.max_score;
                c.feedback.push_str(&format!(
                    " (Not charged again: the rubric charges this cause once, in {}.)",
                    cause.root
                ));
            }
        }
    }
}

/// The first sentence: up to a full stop followed by a space and a capital letter (a decimal
/// point or "e.g." does not end one).
fn first_sentence(text: &str) -> &str {
    let bytes = text.as_bytes();
    for (i, w) in bytes.windows(3).enumerate() {
        if w[0] == b'.' && w[1] == b' ' && w[2].is_ascii_uppercase() {
            return &text[..=i];
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str, status: Status, feedback: &str) -> CheckReport {
        CheckReport {
            id: id.into(),
            title: String::new(),
            status,
            score: if status == Status::Pass { 5.0 } else { 0.0 },
            max_score: 5.0,
            duration_s: 0.0,
            bound_s: None,
            feedback: feedback.into(),
            evidence: serde_json::json!({}),
            server_output: None,
            timeline: None,
        }
    }

    fn iterative_report() -> Vec<CheckReport> {
        vec![
            check("concurrency.overlap", Status::Fail, "B waited 2.0 s. The server handles one client at a time (an iterative server)."),
            check("concurrency.partial-line", Status::Fail, "Client A sent half a line; client B waited 2.0 s. It waits inside a read for the rest of A's line."),
            check("fairness", Status::Fail, "While A streamed, B waited in vain. The server starves the others."),
            check("leak.fd", Status::Fail, "12 descriptors leaked. Each thread must close its connfd."),
        ]
    }

    #[test]
    fn an_iterative_server_gets_one_story_told_by_overlap() {
        let mut checks = iterative_report();
        tell(&mut checks, Model::Iterative, Charge::Each);
        let pl = &checks[1];
        assert!(pl.feedback.starts_with("Client A sent half a line; client B waited 2.0 s. This follows from what concurrency.overlap found: the server serves one client at a time"), "{}", pl.feedback);
        assert!(
            !pl.feedback.contains("inside a read"),
            "its own guess is gone: {}",
            pl.feedback
        );
        assert_eq!(pl.evidence["explained_by"], "concurrency.overlap");
        assert_eq!(pl.score, 0.0, "the rubric's points stay charged by default");
        let mut partial = iterative_report();
        partial[2].score = 2.5; // fairness' share measured while the cause struck
        tell(&mut partial, Model::Iterative, Charge::Each);
        assert_eq!(
            partial[2].score, 0.0,
            "a consequence costs its points in full, every run"
        );
        assert!(checks[2]
            .feedback
            .contains("follows from what concurrency.overlap found"));
        assert_eq!(
            checks[3].feedback, "12 descriptors leaked. Each thread must close its connfd.",
            "not a consequence of this cause"
        );
        assert!(
            checks[0].feedback.contains("an iterative server"),
            "the root keeps its story"
        );
    }

    #[test]
    fn charge_once_gives_the_consequences_points_back() {
        let mut checks = iterative_report();
        tell(&mut checks, Model::Iterative, Charge::Once);
        assert_eq!(checks[1].score, checks[1].max_score);
        assert_eq!(checks[1].status, Status::Fail, "still reported as failing");
        assert!(checks[1].feedback.contains("Not charged again"));
        assert_eq!(checks[0].score, 0.0, "the cause itself is charged");
    }

    #[test]
    fn no_cause_is_borrowed_without_the_root_establishing_it() {
        // Overlap passed, or the model is not iterative: nothing is rewritten.
        let mut checks = iterative_report();
        checks[0].status = Status::Pass;
        tell(&mut checks, Model::Iterative, Charge::Each);
        assert!(checks[1].feedback.contains("inside a read"));
        let mut checks = iterative_report();
        tell(&mut checks, Model::Process, Charge::Each);
        assert!(checks[1].feedback.contains("inside a read"));
    }

    #[test]
    fn the_connfd_race_explains_the_lost_connections_of_leak_fd() {
        let mut checks = vec![
            check(
                "race.connfd",
                Status::Fail,
                "Client c3 got another client's bytes: the threads share &connfd.",
            ),
            check(
                "leak.fd",
                Status::Fail,
                "12 connections stayed open (CLOSE_WAIT). Each thread must close its connfd.",
            ),
        ];
        tell(&mut checks, Model::Thread, Charge::Each);
        assert!(
            checks[1].feedback.starts_with(
                "12 connections stayed open (CLOSE_WAIT). This follows from what race.connfd found"
            ),
            "{}",
            checks[1].feedback
        );
        assert!(!checks[1].feedback.contains("must close its connfd"));
    }

    #[test]
    fn a_stale_maxfd_explains_leak_fd_instead_of_a_missing_close() {
        let mut checks = vec![
            check("concurrency.stay", Status::Fail, "Client A waited. The server waits in select with nfds = 5: descriptor 6 is not among those it watches."),
            check("leak.fd", Status::Fail, "9 descriptors stayed open. Close connfd when the client's conversation ends."),
        ];
        tell(&mut checks, Model::Event, Charge::Each);
        assert!(
            checks[1]
                .feedback
                .contains("follows from what concurrency.stay found"),
            "{}",
            checks[1].feedback
        );
        assert!(
            !checks[1].feedback.contains("Close connfd"),
            "{}",
            checks[1].feedback
        );
    }

    #[test]
    fn sentences_end_at_a_full_stop_before_a_capital() {
        assert_eq!(
            first_sentence("B waited 2.0 s. Then more."),
            "B waited 2.0 s."
        );
        assert_eq!(first_sentence("one sentence only"), "one sentence only");
    }
}
