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
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ServerOutput {
    pub stdout_tail: String,
    pub stderr_tail: String,
}

/// One check's verdict.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CheckReport {
    pub id: String,
    pub title: String,
    pub status: Status,
    pub score: f64,
    pub max_score: f64,
    /// How long the check took, its instance's start and teardown included.
    pub duration_s: f64,
    /// The longest it may take: the sum of its deadlines (times `--time-scale`) and teardown.
    /// A check that reaches it is cut there and judged on what it saw. (None for entries that
    /// are not checks of a server, such as the build.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_s: Option<f64>,
    /// Plain words for a student: what went wrong, where to look.
    pub feedback: String,
    /// The numbers the verdict rests on.
    pub evidence: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_output: Option<ServerOutput>,
}

/// A whole grading run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// The grader's version.
    pub echograde: String,
    pub status: RunStatus,
    /// The rubric's name.
    pub rubric: String,
    /// The seed that reproduces this run's payloads.
    pub seed: u64,
    pub server: ServerInfo,
    pub score: f64,
    pub max_score: f64,
    pub duration_s: f64,
    /// The longest the grading of the server(s) may take: the model probe's bound and every
    /// check's, added up (the build, if any, is bounded by its own timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_s: Option<f64>,
    pub checks: Vec<CheckReport>,
    /// Set when the grader itself failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Report {
    /// The report of a run in which the grader itself failed before it could grade.
    pub fn grader_failed(message: &str) -> Report {
        Report {
            echograde: env!("CARGO_PKG_VERSION").to_string(),
            status: RunStatus::Error,
            rubric: String::new(),
            seed: 0,
            server: ServerInfo {
                command: Vec::new(),
                model: Model::Unknown,
                model_evidence: serde_json::Value::Object(Default::default()),
                containment: serde_json::Value::Object(Default::default()),
            },
            score: 0.0,
            max_score: 0.0,
            duration_s: 0.0,
            bound_s: None,
            checks: Vec::new(),
            error: Some(message.to_string()),
        }
    }
}

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
