//! A baseline read once the server has stopped changing.
//!
//! A server is ready for the grader as soon as it listens, but it may not be done starting:
//! the lecture's prethreaded servers (sbuf) often listen first and create their workers
//! afterwards, a preforking server forks its children after `listen`. A check that compares
//! "before" with "after" (threads, thread stacks, processes, descriptors) and reads "before"
//! the moment the server listens takes the workers created later for leaked threads, and the
//! verdict then depends on how fast the machine was.
//!
//! So "before" is read once the server's tree has shown the same [`Shape`] for a quiet spell
//! ([`quiet`]: a quarter of the rubric's grace, 250 ms by default, at least 50 samples of the
//! slowest pool the tests build, which adds a worker every 5 ms), bounded by the rubric's
//! `ready` deadline. The evidence says how long it took, what was first seen and what it
//! settled on. A spell counts as quiet only while no thread of the listening process is
//! runnable: a thread that is about to create the next worker but waits for a CPU on a loaded
//! machine is not a server at rest, however long the scheduler keeps it waiting.

use crate::inspect::memory::{memory_stats, MemoryStats};
use crate::inspect::{fd_table, Pid};
use crate::supervise::Server;
use crate::timing::Timing;
use serde::Serialize;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How often the tree is read while waiting.
const EVERY: Duration = Duration::from_millis(10);

/// What a baseline compares: the listening process's threads and thread stacks, the tree's
/// live processes and the sockets they hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Shape {
    pub threads: u64,
    pub thread_stacks: usize,
    pub processes: usize,
    pub sockets: usize,
}

/// The baseline: the server's memory figures once settled, and how it got there.
#[derive(Debug, Clone)]
pub struct Settled {
    pub memory: MemoryStats,
    pub shape: Shape,
    /// The shape read the moment the server listened.
    pub first: Shape,
    /// From the first read to the start of the quiet spell that ended the wait.
    pub took: Duration,
    /// Reads in which the shape differed from the one before.
    pub changes: u32,
    /// Whether the quiet spell was reached within the bound (otherwise: the last read).
    pub settled: bool,
}

impl Settled {
    pub fn evidence(&self) -> Value {
        json!({
            "settled": self.settled,
            "settled_after_ms": self.took.as_millis() as u64,
            "changes_seen": self.changes,
            "at_listen": self.first,
            "baseline": self.shape,
        })
    }

    /// A sentence for feedback when the server never came to rest.
    pub fn unsettled_note(&self) -> Option<String> {
        (!self.settled).then(|| {
            format!(
                "(The server was still changing — {} threads, {} processes — {:.1} s after it \
                 started listening, so its starting point is the last reading.)",
                self.shape.threads,
                self.shape.processes,
                self.took.as_secs_f64()
            )
        })
    }
}

/// The quiet spell that counts as settled.
pub fn quiet(t: Timing) -> Duration {
    t.grace / 4
}

/// The most [`settle`] waits: the rubric's `ready` deadline, plus the quiet spell.
pub fn bound(t: Timing) -> Duration {
    t.ready + quiet(t)
}

/// The tree's shape now, and the listening process's memory figures; `None` once the
/// listening process is gone.
fn read(srv: &Server) -> Option<(Shape, MemoryStats, bool)> {
    let mem = memory_stats(srv.main_pid)?;
    let procs = super::tree::live_processes(srv);
    let sockets = procs
        .iter()
        .map(|(p, _)| {
            fd_table(*p)
                .iter()
                .filter(|e| e.socket_inode.is_some())
                .count()
        })
        .sum();
    let shape = Shape {
        threads: mem.threads,
        thread_stacks: mem.thread_stacks,
        processes: procs.len(),
        sockets,
    };
    Some((shape, mem, any_runnable(srv.main_pid)))
}

/// Whether a thread of `pid` is running or waiting for a CPU (state R).
fn any_runnable(pid: Pid) -> bool {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    dir.flatten().take(4096).any(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next())
            })
            == Some('R')
    })
}

/// Wait until the server's tree stops changing (see the module's notes), at most
/// [`bound`]`(t)`, and return the baseline. `None` when the listening process is gone.
pub fn settle(srv: &Server, t: Timing) -> Option<Settled> {
    let start = Instant::now();
    let (first, mut memory, mut busy) = read(srv)?;
    let mut shape = first.clone();
    let mut since = Instant::now();
    let mut changes = 0;
    loop {
        if !busy && since.elapsed() >= quiet(t) {
            let took = since.duration_since(start);
            return Some(Settled {
                memory,
                shape,
                first,
                took,
                changes,
                settled: true,
            });
        }
        if start.elapsed() >= bound(t)
            || crate::interrupt::requested()
            || crate::timing::check_bound_reached()
        {
            let took = start.elapsed();
            return Some(Settled {
                memory,
                shape,
                first,
                took,
                changes,
                settled: false,
            });
        }
        std::thread::sleep(EVERY);
        let (now, mem, runnable) = read(srv)?;
        if now != shape || runnable {
            changes += u32::from(now != shape);
            since = Instant::now();
        }
        (shape, memory, busy) = (now, mem, runnable);
    }
}
