//! `leak.threads`: thread stacks do not pile up. A joinable thread that is never joined or
//! detached keeps its stack mapped after it exits: `Threads:` stays flat while thread-stack
//! mappings grow by one per connection (8 MiB each by default). VmSize alone misleads (malloc
//! arenas grow it on correct servers), and an address-space limit would kill correct threaded
//! servers, so the stacks are counted in /proc/PID/maps.

use super::{common::*, in_range, Cx, Outcome};
use crate::inspect::memory::memory_stats;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const TITLE: &str = "Threads are detached or joined (no leaked thread stacks)";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Short connections, one after another.
    pub connections: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params { connections: 120 }
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        in_range("connections", self.connections, 20, 10_000)
    }
}

/// The longest this check may wait, its deadlines added up. Start, the sequential connections (3 × idle and a serve), the threads' exit (grace).
pub fn bound(_p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + t.idle * 3 + t.serve + t.grace
}

pub fn run(cx: &mut Cx, p: &Params) -> Outcome {
    let t = cx.timing;
    let mut rng = cx.rng.clone();
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    let pid = srv.main_pid;
    let Some(before) = memory_stats(pid) else {
        return Outcome::error(format!("cannot read /proc/{pid}/maps or status"));
    };
    let served = match sequential_clients(srv, &mut rng, "c", p.connections, t.serve, t.idle * 3) {
        Ok(n) => n,
        Err(u) => return workload_failed(srv, &u, "its thread stacks"),
    };
    // Threads that served the last clients may still be on their way out.
    wait_until(t.grace, || memory_stats(pid).is_some_and(|m| m.threads <= before.threads));
    let Some(after) = memory_stats(pid) else {
        let d = death_note(srv).unwrap_or_else(|| "The server process is gone.".into());
        return Outcome::fail(0.0, d, json!({ "before": before }));
    };
    let grown = after.thread_stacks.saturating_sub(before.thread_stacks);
    let n = p.connections as usize;
    let ev = json!({
        "connections": n,
        "served": served,
        "before": before,
        "after": after,
        "thread_stacks_grown": grown,
    });
    // A correct server keeps at most a few stacks (live threads, glibc's small cache of freed
    // stacks); a leaking one keeps one per connection. Half the connections separates the two
    // by an order of magnitude.
    if grown * 2 < n {
        let fb = if after.threads <= 1 && before.threads <= 1 && after.thread_stacks == 0 {
            "The server runs a single thread: no thread stacks to leak.".to_string()
        } else {
            format!("After {n} connections the server maps {grown} more thread stack(s) than at start: none leaked.")
        };
        return Outcome::pass(fb, ev);
    }
    Outcome::fail(
        0.0,
        format!(
            "After {n} short connections, one after another, the server maps {grown} more thread \
             stacks ({} MiB) while its thread count went from {} to {}: the threads exited but \
             their stacks stay, because nobody joined them. A joinable thread's resources are \
             kept until pthread_join; a server never joins its connection threads, so each must \
             call pthread_detach(pthread_self()) (or be created detached).",
            (after.thread_stack_kib.saturating_sub(before.thread_stack_kib)) / 1024,
            before.threads,
            after.threads
        ),
        ev,
    )
}
