//! What happened during a check, in time: a lane per client, the server's process and thread
//! counts, and what the grader itself did to the server.
//!
//! A verdict says "client B waited 2 s and was answered the instant A left"; a student sees it
//! best drawn. The grader already times every client to the millisecond, so recording costs
//! little: the check runner arms a recorder for the check's thread ([`arm`]), the client
//! sessions report their events to it ([`Lane`] per session), [`server_started`] points a
//! sampler thread at the server's tree (it reads /proc every [`SAMPLE_EVERY`]), and the few
//! places where the grader acts on the server ([`action`]) note what they did. [`Armed::finish`]
//! returns the [`Timeline`] that goes into the check's report.
//!
//! Bounded whatever the check or the server does: the first [`MAX_LANES`] clients get a lane,
//! the rest are only counted (`clients_not_drawn`); a lane keeps at most [`MAX_EVENTS`] events
//! (bytes sent or received close together are merged into one event, and what is cut is
//! counted in `events_dropped`); the sampler keeps at most [`MAX_SAMPLES`] samples, halving
//! their number and doubling its interval when full. The data says what it left out.
//!
//! Without an armed recorder (unit tests, the model probe) every hook is a thread-local read
//! and nothing else.
//!
//! What it costs, measured on the 2-core test machine under load: a sample 0.1 ms (it walks
//! the server's tree, not the whole of /proc, which cost 5.6 ms); a full default-rubric
//! grading of a correct process server, 211 KB of JSON with timelines (the YAML, without
//! them, 7 KB) and a 217 KB page; its verdicts and full marks unchanged.

mod imp;

pub use imp::{action, arm, lane, record, server_started, Armed, LaneId};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Lanes (clients drawn in full) per check; later clients are counted only.
pub const MAX_LANES: usize = 24;
/// Events per lane.
pub const MAX_EVENTS: usize = 160;
/// Process-count samples per check (the interval doubles when they run out).
pub const MAX_SAMPLES: usize = 300;
/// How often the sampler reads the server's tree at first.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// Bytes moved within this long of the lane's last event of the same kind are merged into it.
pub const MERGE_WITHIN: Duration = Duration::from_millis(15);

/// One check's timeline. Times are milliseconds since the check started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Timeline {
    /// How long the check ran (its instance's teardown included).
    pub duration_ms: f64,
    /// A lane per client, in the order they connected: the first `max_lanes` only.
    pub lanes: Vec<Lane>,
    /// Every client the check started, drawn or not.
    pub clients: u32,
    /// Clients past `max_lanes`: counted, not drawn.
    pub clients_not_drawn: u32,
    /// Events cut from full lanes (past `max_events_per_lane`).
    pub events_dropped: u32,
    /// The caps this timeline was recorded under.
    pub max_lanes: u32,
    pub max_events_per_lane: u32,
    /// The server's tree, read from /proc.
    pub samples: Vec<Sample>,
    /// The interval between samples at the end of the check (it doubles when they run out).
    pub sample_every_ms: u32,
    /// What the grader did to the server.
    pub actions: Vec<Action>,
}

/// One client connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Lane {
    /// The client's name in the check (A, B, c3, ...).
    pub client: String,
    pub events: Vec<Event>,
}

/// Something that happened to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    pub t_ms: f64,
    pub kind: EventKind,
    /// Bytes, for `sent` and `received` (merged events add up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The client called connect.
    Connect,
    /// The connection was established (the kernel's handshake; not yet accepted by the server).
    Connected,
    ConnectFailed,
    Sent,
    /// Bytes came back (an echo or anything else).
    Received,
    /// The client started waiting for the echo of what it sent.
    Waiting,
    /// Everything it waited for came back.
    Answered,
    /// The client closed the connection (FIN).
    Close,
    /// The client closed with RST (SO_LINGER 0).
    Reset,
    /// The server closed the connection.
    ClosedByServer,
    /// The server reset the connection.
    ResetByServer,
    /// The client gave up waiting (a deadline passed).
    Stalled,
    /// Another socket error.
    Error,
}

/// The server's process tree at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Sample {
    pub t_ms: f64,
    /// Live processes of the server's tree.
    pub processes: u32,
    /// Threads of those processes, added up.
    pub threads: u32,
    /// Processes that exited and were not reaped (state Z).
    pub zombies: u32,
}

/// Something the grader did to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Action {
    pub t_ms: f64,
    pub kind: ActionKind,
    /// In words, for the page.
    pub what: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// A server instance started and listening.
    Start,
    /// SIGSTOP.
    Pause,
    /// SIGCONT.
    Resume,
    /// SIGTERM/SIGKILL: the instance's teardown.
    Teardown,
    /// Any other signal or intervention.
    Other,
}
