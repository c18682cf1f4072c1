//! The report: one model, rendered in several formats.
//!
//! The verdicts are decided once, by the checks; the renderers in [`render`] only show them.
//! A JSON Schema of this model ships as `graders/report.schema.json` (generated from these
//! types; a test keeps the two in step).

pub mod html;
pub mod render;
pub mod write;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// The grader could not run the check (its own failure, not the server's).
    Error,
    /// The check could not apply (the reason is in its feedback).
    Skipped,
}

/// Whether the run graded the server or the grader failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Graded,
    Error,
}

/// The concurrency model the server showed, as observed from /proc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// Child processes per connection.
    Process,
    /// Threads grow with connections, or a pool.
    Thread,
    /// One thread, no children, yet concurrent.
    Event,
    /// One client at a time.
    Iterative,
    /// The server never served a client, so no model could be seen.
    Unknown,
}

impl Model {
    pub fn as_str(&self) -> &'static str {
        match self {
            Model::Process => "process",
            Model::Thread => "thread",
            Model::Event => "event",
            Model::Iterative => "iterative",
            Model::Unknown => "unknown",
        }
    }
}

/// The server as started and as observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServerInfo {
    /// The command line of the first instance (each check's instance differs only by port).
    pub command: Vec<String>,
    pub model: Model,
    /// The numbers the model was decided from.
    pub model_evidence: serde_json::Value,
    /// How the server was confined: process group, cgroup, limits, user, network.
    pub containment: serde_json::Value,
}

/// The tails of the server's output, control characters escaped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServerOutput {
    pub stdout_tail: String,
    pub stderr_tail: String,
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckReport {
    pub id: String,
    pub title: String,
    pub status: Status,
    pub score: f64,
    pub max_score: f64,
    /// How long the check took, its instance's start and teardown included.
    pub duration_s: f64,
    /// The longest it may take: the sum of its deadlines (times `--time-scale`) and teardown.
    /// A check that reaches it is cut there and judged on what it saw. (None for a check that
    /// was not run, such as one of a server the build did not produce.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_s: Option<f64>,
    /// Plain words for a student: what went wrong, where to look.
    pub feedback: String,
    /// The numbers the verdict rests on.
    pub evidence: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_output: Option<ServerOutput>,
    /// What happened during the check, in time (clients, the server's processes, the grader's
    /// actions): drawn on the student page. In the JSON report only; the YAML report leaves it
    /// out (see [`render::yaml`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<crate::timeline::Timeline>,
}

/// How `make` went, when the submission was built first (`grade --build`). Worth no points:
/// a failed build shows in every server's checks, failed with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BuildReport {
    /// "The submission builds with `make all`".
    pub title: String,
    /// `pass` when make succeeded, else `fail`.
    pub status: Status,
    pub duration_s: f64,
    /// The verdict in words, with make's output when it failed or warned.
    pub feedback: String,
    /// The command as run, e.g. `["make", "all"]`.
    pub command: Vec<String>,
    /// How make ended, in words ("exited with status 2", "killed after 120 s: time limit").
    pub exit: String,
    pub timed_out: bool,
    /// How many bytes make printed in all.
    pub output_bytes: u64,
    /// How many compiler warnings the kept output shows.
    pub warnings: usize,
}

/// One server's grading: what it was, what it showed, each check's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PartReport {
    /// Its name in a submission rubric (`echoserverp`); `None` for the one server of
    /// `grade SERVER` or `grade --build DIR SERVER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The program's path inside the submission folder (submission rubrics only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
    /// The rubric it was graded with.
    pub rubric: String,
    pub server: ServerInfo,
    pub score: f64,
    pub max_score: f64,
    pub checks: Vec<CheckReport>,
    /// Set when the grader itself failed while grading this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A whole grading run: the build, if any, and each server graded.
///
/// A report of one unnamed server is written as it always was: `server:` and `checks:` at the
/// top level (what a TA reads most). A submission of several servers is written with a
/// `parts:` list. Both read back into this one model (see [`repr`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The grader's version.
    pub echograde: String,
    pub status: RunStatus,
    /// The rubric's name (the submission rubric's for several servers).
    pub rubric: String,
    /// The seed that reproduces this run's payloads.
    pub seed: u64,
    pub score: f64,
    pub max_score: f64,
    pub duration_s: f64,
    /// The longest the grading of the server(s) may take: the model probe's bound and every
    /// check's, added up (the build, if any, is bounded by its own timeout).
    pub bound_s: Option<f64>,
    pub build: Option<BuildReport>,
    pub parts: Vec<PartReport>,
    /// Set when the grader itself failed.
    pub error: Option<String>,
}

/// One check of a report with the server it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct CheckEntry<'r> {
    /// The server's name (`None` for the one server of a single-server report).
    pub part: Option<&'r str>,
    pub check: &'r CheckReport,
}

impl CheckEntry<'_> {
    /// The check's id as a reader sees it across servers: `echoserverp/echo.basic`, or
    /// `echo.basic` in a single-server report.
    pub fn qualified_id(&self) -> String {
        match self.part {
            Some(p) => format!("{p}/{}", self.check.id),
            None => self.check.id.clone(),
        }
    }
}

impl Report {
    /// The report of a run in which the grader itself failed before it could grade.
    pub fn grader_failed(message: &str) -> Report {
        Report {
            echograde: env!("CARGO_PKG_VERSION").to_string(),
            status: RunStatus::Error,
            rubric: String::new(),
            seed: 0,
            score: 0.0,
            max_score: 0.0,
            duration_s: 0.0,
            bound_s: None,
            build: None,
            parts: Vec::new(),
            error: Some(message.to_string()),
        }
    }

    /// Every check of every server, in report order.
    pub fn entries(&self) -> impl Iterator<Item = CheckEntry<'_>> {
        self.parts.iter().flat_map(|p| {
            p.checks.iter().map(move |check| CheckEntry {
                part: p.name.as_deref(),
                check,
            })
        })
    }

    /// Whether this is the report of one unnamed server (written in the flat layout).
    pub fn is_single(&self) -> bool {
        matches!(self.parts.as_slice(), [p] if p.name.is_none())
    }

    /// The model shown in one-line summaries: the one every server showed, else `unknown`.
    pub fn model(&self) -> Model {
        match self.parts.first() {
            Some(first)
                if self
                    .parts
                    .iter()
                    .all(|p| p.server.model == first.server.model) =>
            {
                first.server.model
            }
            _ => Model::Unknown,
        }
    }
}

pub mod repr;

/// Round a score or duration for the report.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Make server output safe to show: control characters (ESC, CR, ...) escaped, so nothing the
/// server printed can move a terminal's cursor or pass for the grader's own lines.
pub fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The JSON Schema of [`Report`].
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Report)).expect("schema serializes")
}
