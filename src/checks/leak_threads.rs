//! `leak.threads`: thread stacks do not pile up. A joinable thread that is never joined or
//! detached keeps its stack mapped after it exits: `Threads:` stays flat while thread-stack
//! mappings grow by one per connection (8 MiB each by default). VmSize alone misleads (malloc
//! arenas grow it on correct servers), and an address-space limit would kill correct threaded
//! servers, so the stacks are counted in /proc/PID/maps.

use super::{common::*, in_range, Cx, Outcome};
use crate::inspect::memory::{memory_stats, MemoryStats};
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

/// Clients connected at a time: a slow server (one that waits before each echo) still sees
/// its 120 connections within the check's time.
const AT_ONCE: u32 = 8;

/// Fewer connections than this measure nothing: a correct server may cache a few stacks.
const ENOUGH: u32 = 20;

/// The longest this check may wait, its deadlines added up. Start, the wait for the server to
/// settle, the connections in waves (3 × idle and a serve), the threads' exit (grace).
pub fn bound(_p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + super::settle::bound(t) + t.idle * 3 + t.serve + t.grace
}

pub fn run(cx: &mut Cx, p: &Params) -> Outcome {
    if let Some(o) = needs_replies(cx) {
        return o;
    }
    let t = cx.timing;
    let mut rng = cx.rng.clone();
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    let pid = srv.main_pid;
    // A pool may still be creating its workers after it listens: they are not leaks.
    let Some(base) = super::settle::settle(srv, t) else {
        return match death_note(srv) {
            Some(d) => Outcome::fail(0.0, d, json!({})),
            None => Outcome::error(format!("cannot read /proc/{pid}/maps or status")),
        };
    };
    let before = base.memory.clone();
    let (served, stopped) =
        match clients_in_waves(srv, &mut rng, "c", p.connections, AT_ONCE, t.serve, t.idle * 3) {
            Ok(n) => (n, None),
            Err(u) => (u.served, Some(u)),
        };
    if served < ENOUGH {
        return match stopped {
            Some(u) => workload_failed(srv, &u, "its thread stacks"),
            None => Outcome::fail(
                0.0,
                format!("Not judged: only {served} connections were served in the check's time."),
                json!({ "served": served }),
            ),
        };
    }
    // Threads that served the last clients may still be on their way out.
    wait_until(t.grace, || memory_stats(pid).is_some_and(|m| m.threads <= before.threads));
    let Some(after) = memory_stats(pid) else {
        let d = death_note(srv).unwrap_or_else(|| "The server process is gone.".into());
        return Outcome::fail(0.0, d, json!({ "before": before }));
    };
    let ev = json!({
        "connections": p.connections,
        "served": served,
        "at_once": AT_ONCE,
        "before": before,
        "after": after,
        "thread_stacks_grown": after.thread_stacks.saturating_sub(before.thread_stacks),
        "threads_grown": after.threads.saturating_sub(before.threads),
        "start": base.evidence(),
    });
    let mut o = judge(&before, &after, served as usize, ev);
    if let (Some(note), crate::report::Status::Fail) = (base.unsettled_note(), o.status) {
        o.feedback.push(' ');
        o.feedback.push_str(&note);
    }
    o
}

/// The verdict from the server's threads and stacks before and after `n` connections.
///
/// A correct server keeps at most a few stacks (live threads, glibc's small cache of freed
/// stacks); a leaking one keeps one per connection. Half the connections separates the two
/// by an order of magnitude. Stacks kept by live threads are named apart from stacks kept by
/// threads that exited unjoined.
pub(crate) fn judge(before: &MemoryStats, after: &MemoryStats, n: usize, ev: serde_json::Value) -> Outcome {
    let grown = after.thread_stacks.saturating_sub(before.thread_stacks);
    let alive = after.threads.saturating_sub(before.threads) as usize;
    let mib = after.thread_stack_kib.saturating_sub(before.thread_stack_kib) / 1024;
    if grown * 2 < n {
        let fb = if after.threads <= 1 && before.threads <= 1 && after.thread_stacks == 0 {
            format!("The server ran a single thread through {n} connections: no thread stacks to leak.")
        } else {
            format!("After {n} connections the server maps {grown} more thread stack(s) than at start: none leaked.")
        };
        return Outcome::pass(fb, ev);
    }
    let fb = if alive * 2 >= n {
        format!(
            "After {n} short connections, whose clients all left, the server still runs {} \
             threads (it had {} at start): the threads are alive, not exited, so each keeps \
             its stack ({mib} MiB more mapped). A connection's thread must return (or call \
             pthread_exit) once its client has closed the connection (read returns 0).",
            after.threads, before.threads,
        )
    } else {
        format!(
            "After {n} short connections the server maps {grown} more thread stacks ({mib} MiB) \
             while its thread count went from {} to {}: the threads exited but their stacks \
             stay, because nobody joined them. A joinable thread's resources are kept until \
             pthread_join; a server never joins its connection threads, so each must call \
             pthread_detach(pthread_self()) (or be created detached).",
            before.threads, after.threads
        )
    };
    Outcome::fail(0.0, fb, ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn stats(threads: u64, stacks: usize) -> MemoryStats {
        MemoryStats { threads, vm_size_kib: 0, thread_stacks: stacks, thread_stack_kib: stacks as u64 * 8192 }
    }

    #[test]
    fn a_few_cached_stacks_are_no_leak() {
        let o = judge(&stats(1, 0), &stats(1, 3), 200, json!({}));
        assert_eq!(o.status, Status::Pass);
        assert!(o.feedback.contains("3 more thread stack(s)"));
    }

    #[test]
    fn undetached_exited_threads_are_told_to_detach() {
        let o = judge(&stats(1, 0), &stats(1, 200), 200, json!({}));
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.contains("pthread_detach"), "{}", o.feedback);
        assert!(o.feedback.contains("200 more thread stacks (1600 MiB)"), "{}", o.feedback);
    }

    #[test]
    fn threads_that_never_return_are_named_alive() {
        let o = judge(&stats(1, 0), &stats(201, 200), 200, json!({}));
        assert!(o.feedback.contains("still runs 201 threads"), "{}", o.feedback);
        assert!(!o.feedback.contains("pthread_detach"));
    }
}

