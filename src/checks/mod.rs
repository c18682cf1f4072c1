//! The checks: one module per check, each with a stable id, a title, a workload, a verdict
//! and evidence.
//!
//! A check gets a [`Cx`]: it starts its own fresh server instance through it (so one check's
//! damage never spills into the next and every baseline is clean), drives clients against it,
//! reads /proc, and returns an [`Outcome`]. A check may touch only its own instance. The table
//! at the bottom of this file is the one list of checks: the rubric format, the order in the
//! report and the dispatch all come from it.

mod common;
pub mod settle;
pub mod stack_arg;
pub mod story;
pub mod tree;

use crate::client::payload::check_rng;
use crate::report::{Model, Status};
use crate::supervise::{Server, ServerSpec, StartFailure};
use crate::timing::Timing;
use rand_chacha::ChaCha8Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::ffi::OsString;
use std::path::PathBuf;

pub use common::*;

/// What a check concluded.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    /// The share of the check's points earned, 0 to 1.
    pub fraction: f64,
    pub feedback: String,
    pub evidence: Map<String, Value>,
    /// Whether the server's output tails help explain the verdict.
    pub show_output: bool,
}

impl Outcome {
    pub fn pass(feedback: impl Into<String>, evidence: Value) -> Outcome {
        Outcome::with(Status::Pass, 1.0, feedback, evidence)
    }

    /// A failure earning `fraction` of the points (0 for most checks; partial where a check
    /// measures a share).
    pub fn fail(fraction: f64, feedback: impl Into<String>, evidence: Value) -> Outcome {
        let mut o = Outcome::with(Status::Fail, fraction.clamp(0.0, 1.0), feedback, evidence);
        o.show_output = true;
        o
    }

    pub fn skipped(reason: impl Into<String>, evidence: Value) -> Outcome {
        Outcome::with(Status::Skipped, 0.0, reason, evidence)
    }

    pub fn error(reason: impl Into<String>) -> Outcome {
        Outcome::with(Status::Error, 0.0, reason, Value::Object(Map::new()))
    }

    fn with(
        status: Status,
        fraction: f64,
        feedback: impl Into<String>,
        evidence: Value,
    ) -> Outcome {
        let evidence = match evidence {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => {
                let mut m = Map::new();
                m.insert("value".into(), other);
                m
            }
        };
        Outcome {
            status,
            fraction,
            feedback: feedback.into(),
            evidence,
            show_output: false,
        }
    }
}

/// glibc's heap checks, in every server's environment, so that heap misuse shows the same way
/// in every run. Every small block a thread frees goes to its tcache (up to 65535 per size,
/// not 7), where glibc checks each free against the blocks already there: a double free
/// aborts with "free(): double free detected in tcache 2" at the second free, instead of
/// slipping into a fastbin unchecked when the tcache happens to be full. Freed and new blocks
/// are filled with a fixed byte (perturb), so a read of freed memory sees the same wrong
/// bytes every run rather than whatever was left there.
pub const HEAP_CHECKS: &str = "glibc.malloc.tcache_count=65535:glibc.malloc.perturb=165";

/// How to start instances of the server under grading.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub spec: ServerSpec,
    /// Limits, cgroups and user every instance runs under.
    pub sandbox: crate::supervise::Sandbox,
    /// The signal-safety shim, when it could be built and written out.
    pub shim: Option<PathBuf>,
}

/// What a check works with.
pub struct Cx<'a> {
    pub timing: Timing,
    /// This check's random source (from the run's seed and the check's id).
    pub rng: ChaCha8Rng,
    /// The concurrency model observed before the checks ran.
    pub model: &'a ModelObservation,
    pub launcher: &'a Launcher,
    /// When this check's bound runs out (the client engine and `wait_until` stop there).
    pub deadline: std::time::Instant,
    server: Option<Server>,
}

impl<'a> Cx<'a> {
    pub fn new(
        id: &str,
        seed: u64,
        timing: Timing,
        model: &'a ModelObservation,
        launcher: &'a Launcher,
        deadline: std::time::Instant,
    ) -> Cx<'a> {
        Cx {
            timing,
            rng: check_rng(seed, id),
            model,
            launcher,
            deadline,
            server: None,
        }
    }

    /// Start this check's fresh server instance and wait until it listens. On failure the
    /// returned outcome is the check's verdict (a server that never listens fails the check).
    pub fn start(&mut self) -> Result<&mut Server, Outcome> {
        self.start_with_env(Vec::new())
    }

    pub fn start_with_env(
        &mut self,
        env: Vec<(OsString, OsString)>,
    ) -> Result<&mut Server, Outcome> {
        self.start_instance_with_env(env)
            .map_err(|f| start_failure_outcome(&f))
    }

    /// Start a fresh instance; on failure, why (for the model probe, which reports it for
    /// every check).
    pub fn start_instance(&mut self) -> Result<&mut Server, StartFailure> {
        self.start_instance_with_env(Vec::new())
    }

    fn start_instance_with_env(
        &mut self,
        mut env: Vec<(OsString, OsString)>,
    ) -> Result<&mut Server, StartFailure> {
        if let Some(mut old) = self.server.take() {
            old.teardown();
        }
        env.push(("GLIBC_TUNABLES".into(), HEAP_CHECKS.into()));
        let port = crate::supervise::pick_port();
        let server = Server::start(
            &self.launcher.spec,
            port,
            &env,
            crate::timing::within_check(self.timing.ready),
            &self.launcher.sandbox,
        )?;
        crate::timeline::server_started(server.pid, server.port);
        Ok(self.server.insert(server))
    }

    /// The instance this check started, if any (the grader inspects and ends it afterwards).
    pub fn take_server(&mut self) -> Option<Server> {
        self.server.take()
    }
}

/// The verdict for a server that never became ready.
pub fn start_failure_outcome(f: &StartFailure) -> Outcome {
    let mut o = Outcome::fail(
        0.0,
        format!("{f}. No client could be tested."),
        serde_json::json!({ "start": f.to_string() }),
    );
    o.evidence.insert(
        "stderr_tail".into(),
        Value::String(crate::report::sanitize(f.stderr_tail())),
    );
    o
}

/// What the server sent back to the model probe's clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replies {
    /// Every answer was the exact echo.
    Echo,
    /// It answered, but not with the bytes it was sent (upper-cased, `ok`, ...).
    NotEcho,
    /// It answered no client.
    None,
}

impl Replies {
    pub fn as_str(self) -> &'static str {
        match self {
            Replies::Echo => "echo",
            Replies::NotEcho => "not an echo",
            Replies::None => "none",
        }
    }
}

/// What the model probe saw, shared with every check.
#[derive(Debug, Clone)]
pub struct ModelObservation {
    pub model: Model,
    pub replies: Replies,
    pub evidence: Value,
    /// Set when the server never became ready in the probe: no check can run.
    pub start_failure: Option<StartFailure>,
    /// Set when the probe itself failed (the grader's bug): no check can be judged.
    pub grader_failure: Option<String>,
}

impl ModelObservation {
    /// Nothing seen yet (what the probe itself runs with).
    pub fn unobserved() -> ModelObservation {
        ModelObservation {
            model: Model::Unknown,
            replies: Replies::None,
            evidence: Value::Object(Map::new()),
            start_failure: None,
            grader_failure: None,
        }
    }

    /// The probe failed for the grader's own reason `why`.
    pub fn grader_failed(why: String) -> ModelObservation {
        ModelObservation {
            evidence: serde_json::json!({ "grader_failure": why }),
            grader_failure: Some(why),
            ..ModelObservation::unobserved()
        }
    }

    /// The verdict of every check when the probe already decided it: the server never became
    /// ready (its failure), or the probe itself failed (the grader's; the checks depend on
    /// the model it observes).
    pub fn verdict_for_every_check(&self) -> Option<Outcome> {
        if let Some(f) = &self.start_failure {
            return Some(start_failure_outcome(f));
        }
        self.grader_failure.as_ref().map(|why| {
            Outcome::error(format!(
                "The grader itself failed while observing the server's model ({why}), which \
                 this check depends on; this is not the server's fault."
            ))
        })
    }
}

/// A rubric's entry for one check: its points and its parameters.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(bound = "P: JsonSchema + Default + Serialize")]
pub struct Entry<P: Default> {
    /// Points for this check (whole points; a check may award part of them).
    pub points: u32,
    #[serde(default)]
    pub params: P,
}

/// A check the rubric asks for, ready to run.
pub struct Planned<'r> {
    pub id: &'static str,
    pub title: &'static str,
    pub points: u32,
    /// The longest this check may take: the sum of its deadlines (its module's `bound`) and
    /// its instance's teardown.
    pub bound: Box<dyn Fn(Timing) -> std::time::Duration + 'r>,
    pub run: Box<dyn Fn(&mut Cx) -> Outcome + 'r>,
}

macro_rules! checks {
    ($( $id:literal => $module:ident ),* $(,)?) => {
        $( pub mod $module; )*

        /// The rubric's `checks:` map: an optional entry per check id. Unknown ids are errors.
        #[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct CheckTable {
            $(
                #[serde(rename = $id, default, skip_serializing_if = "Option::is_none")]
                pub $module: Option<Entry<$module::Params>>,
            )*
        }

        /// Every check id, in report order.
        pub const ALL_IDS: &[&str] = &[$($id),*];

        impl CheckTable {
            /// The checks this rubric lists, in report order.
            pub fn planned(&self) -> Vec<Planned<'_>> {
                let mut v: Vec<Planned<'_>> = Vec::new();
                $(
                    if let Some(e) = &self.$module {
                        v.push(Planned {
                            id: $id,
                            title: $module::TITLE,
                            points: e.points,
                            bound: Box::new(move |t: Timing| $module::bound(&e.params, t) + crate::timing::TEARDOWN),
                            run: Box::new(move |cx: &mut Cx| $module::run(cx, &e.params)),
                        });
                    }
                )*
                v
            }

            /// Check every entry's parameters; the error names the check and the field.
            pub fn validate(&self) -> Result<(), String> {
                $(
                    if let Some(e) = &self.$module {
                        e.params.validate().map_err(|m| format!("checks.{}.params: {m}", $id))?;
                    }
                )*
                Ok(())
            }
        }
    };
}

checks! {
    "model" => model,
    "echo.basic" => echo_basic,
    "echo.large" => echo_large,
    "concurrency.overlap" => overlap,
    "concurrency.partial-line" => partial_line,
    "concurrency.stay" => stay,
    "concurrency.many" => many,
    "race.connfd" => race_connfd,
    "leak.fd" => leak_fd,
    "leak.listenfd" => leak_listenfd,
    "zombies" => zombies,
    "leak.threads" => leak_threads,
    "liveness.churn" => churn,
    "signal.safety" => signal_safety,
    "robust.sigpipe" => sigpipe,
    "fairness" => fairness,
    "listen.backlog" => listen_backlog,
}

/// A parameter range check for `validate` functions.
pub(crate) fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    name: &str,
    v: T,
    lo: T,
    hi: T,
) -> Result<(), String> {
    if v < lo || v > hi {
        Err(format!("{name} is {v}: it must be between {lo} and {hi}"))
    } else {
        Ok(())
    }
}
