//! `liveness.churn`: rapid connection churn from several clients at once (fork-heavy for a
//! process server), then a fresh client must be served.
//!
//! When the server stops answering, the hang is diagnosed from /proc: what each thread is
//! blocked in (`syscall`, `wchan`), which signals it has blocked, whether its CPU time moves,
//! and a gdb backtrace where gdb is installed. A single-threaded process waiting in `futex`
//! with SIGCHLD blocked and frozen CPU time is a process that deadlocked inside its own signal
//! handler: the handler wants a lock (stdio's, malloc's) that the code it interrupted holds.

use super::{common::*, in_range, Cx, Outcome};
use crate::client::{payload, RunLimits, Session, Step, Swarm};
use crate::inspect::{tasks::task_snapshots, Pid, TaskSnapshot};
use crate::supervise::Server;
use rand_chacha::ChaCha8Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Time for diagnosing a hang, in seconds (scaled): the 200 ms CPU sample and a gdb backtrace
/// (gdb attached and printed in 0.7 to 1.3 s on a loaded 2-core machine).
const DIAGNOSE_S: f64 = 5.0;

pub const TITLE: &str = "Keeps serving through rapid connection churn (no deadlock)";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Connections in all (an upper bound).
    pub connections: u32,
    /// Clients connecting at the same time.
    pub clients: u32,
    /// Time budget for the churn, in seconds (an upper bound; scaled by --time-scale).
    pub seconds: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params { connections: 2000, clients: 8, seconds: 2.0 }
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        in_range("connections", self.connections, 1, 1_000_000)?;
        in_range("clients", self.clients, 1, 1000)?;
        in_range("seconds", self.seconds, 0.1, 600.0)
    }
}

/// The longest this check may wait, its deadlines added up. Start, the churn (its seconds, and the last group's serve), the fresh client (serve), the diagnosis of a hang.
pub fn bound(p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + t.scaled(p.seconds) + t.serve * 2 + t.scaled(DIAGNOSE_S)
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
    let (done, stuck, churn_s) = churn(srv, &mut rng, p, t);
    let fresh = if stuck.is_none() { Some(probe(srv, &mut rng, "fresh", t.serve)) } else { None };
    if stuck.is_none() && fresh.as_ref().is_some_and(|s| s.served()) {
        return judge(Seen::Served { done, churn_s });
    }
    let what = stuck.unwrap_or_else(|| {
        format!("after {done} connections a fresh client {}", describe(fresh.as_ref().expect("probed"), t.serve))
    });
    if let Some(death) = death_note(srv) {
        return judge(Seen::Died { done, what, death });
    }
    let others: Vec<Pid> = other_processes(srv).iter().filter(|p| !p.is_zombie()).map(|p| p.pid).collect();
    let (diagnosis, tasks) = diagnose(srv.main_pid, &others);
    // It may have died while it was being looked at: then that is what happened.
    if let Some(death) = death_note(srv) {
        return judge(Seen::Died { done, what, death });
    }
    judge(Seen::Hung { done, churn_s, what, diagnosis, tasks })
}

/// Groups of `p.clients` short connections, one group after another, until `p.connections`
/// were served, the time budget ran out or a connection was not served. Returns the
/// connections served, how the unserved one fared (in words) and the seconds it took.
fn churn(srv: &Server, rng: &mut ChaCha8Rng, p: &Params, t: crate::timing::Timing) -> (u32, Option<String>, f64) {
    let budget = t.scaled(p.seconds);
    let start = Instant::now();
    let mut done = 0u32;
    let mut stuck: Option<String> = None;
    while done < p.connections && start.elapsed() < budget {
        let n = p.clients.min(p.connections - done);
        let mut swarm = Swarm::new(srv.addr());
        for i in 0..n {
            let label = format!("c{}", done + i);
            let line = payload::tagged_line(rng, &label);
            swarm.add(Session::new(label, vec![Step::Send(line), Step::Expect, Step::Close]).judging_replies());
        }
        swarm.run(RunLimits::both(t.serve), |_| false);
        if let Some(bad) = swarm.sessions.iter().find(|s| !s.served()) {
            stuck = Some(format!("connection {} {}", bad.label, describe(bad, t.serve)));
            break;
        }
        done += n;
    }
    (done, stuck, start.elapsed().as_secs_f64())
}

/// What the churn saw; `done`: the connections served, `what`: how the serving stopped.
#[derive(Debug)]
pub(crate) enum Seen {
    /// Every connection was served, then a fresh client.
    Served { done: u32, churn_s: f64 },
    /// The server stopped serving and its process died (`death`, in words).
    Died { done: u32, what: String, death: String },
    /// The server stopped serving and is alive: what its threads were doing.
    Hung { done: u32, churn_s: f64, what: String, diagnosis: Diagnosis, tasks: Value },
}

/// The verdict from what the churn saw.
pub(crate) fn judge(seen: Seen) -> Outcome {
    match seen {
        Seen::Served { done, churn_s } => Outcome::pass(
            format!("Served {done} connections in {churn_s:.1} s of churn, then a fresh client."),
            json!({ "connections": done, "churn_s": churn_s }),
        ),
        Seen::Died { done, what, death } => Outcome::fail(
            0.0,
            format!("The server stopped serving: {what}. {death}"),
            json!({ "connections_served": done }),
        ),
        Seen::Hung { done, churn_s, what, diagnosis, tasks } => {
            let mut fb = format!("The server stopped serving after {done} connections: {what}.");
            fb.push(' ');
            fb.push_str(&diagnosis.summary);
            let mut ev = json!({
                "connections_served": done,
                "churn_s": churn_s,
                "tasks": tasks,
                "cpu_frozen": diagnosis.cpu_frozen,
            });
            if let Some(bt) = diagnosis.backtrace {
                ev["gdb_backtrace"] = Value::String(bt);
            }
            Outcome::fail(0.0, fb, ev)
        }
    }
}

/// What a hung server's threads were doing.
#[derive(Debug)]
pub(crate) struct Diagnosis {
    /// The kind of hang, in words (see [`name_hang`]).
    summary: String,
    cpu_frozen: bool,
    backtrace: Option<String>,
}

/// Read every thread's state twice, a moment apart, and name the kind of hang.
fn diagnose(main: Pid, others: &[Pid]) -> (Diagnosis, Value) {
    let first = task_snapshots(main);
    // A fixed interval to see whether CPU time moves: a measurement, not synchronisation.
    std::thread::sleep(Duration::from_millis(200));
    let second = task_snapshots(main);
    let cpu = |v: &[TaskSnapshot]| v.iter().map(|t| t.cpu_ticks).sum::<u64>();
    let cpu_frozen = !second.is_empty() && cpu(&first) == cpu(&second);
    let mut all = second.clone();
    for &p in others.iter().take(8) {
        all.extend(task_snapshots(p));
    }
    let backtrace = gdb_backtrace(main);
    let summary = name_hang(&second, cpu_frozen, backtrace.as_deref());
    let tasks = serde_json::to_value(&all).unwrap_or(Value::Null);
    (Diagnosis { summary, cpu_frozen, backtrace }, tasks)
}

/// The kind of hang, from the listening process's threads (`threads`, read after a moment),
/// whether its CPU time moved over that moment, and a gdb backtrace where one was taken.
///
/// A deadlock is named only on its evidence: every thread waiting on a lock (futex) with
/// frozen CPU time; the handler deadlock needs a lone thread in futex with signals blocked
/// (the kernel blocks the signal being handled).
pub(crate) fn name_hang(threads: &[TaskSnapshot], cpu_frozen: bool, backtrace: Option<&str>) -> String {
    let handler_deadlock = threads.len() == 1
        && threads[0].syscall == "futex"
        && !threads[0].blocked_signals.is_empty()
        && cpu_frozen;
    if handler_deadlock {
        let sigs = threads[0].blocked_signals.join(", ");
        let mut s = format!(
            "Its only thread waits in futex (a lock) with {sigs} blocked and uses no CPU: it is \
             deadlocked inside its own signal handler. The handler called a function that takes \
             a lock — printf, malloc, a mutex — while the code it interrupted was holding that \
             same lock, so it waits for itself forever. Call only async-signal-safe functions in \
             a handler (write, waitpid, _exit; see signal-safety(7)), or set a flag and do the \
             work in the main loop."
        );
        let bt_names = backtrace.map(signal_frames).unwrap_or_default();
        if !bt_names.is_empty() {
            s.push_str(&format!(" gdb shows: {bt_names}."));
        }
        s
    } else if !threads.is_empty() && threads.iter().all(|t| t.syscall == "futex") && cpu_frozen {
        "Every one of its threads waits on a lock (futex) and it uses no CPU: a deadlock, \
         between threads or in a signal handler."
            .into()
    } else if !cpu_frozen {
        "Its CPU time kept growing while it did not answer: it is busy somewhere (a loop that \
         does not get back to accept or to its clients)."
            .into()
    } else {
        format!(
            "Its CPU time did not move while it did not answer; its threads were waiting in: {}.",
            where_threads_wait(threads)
        )
    }
}

/// "accept (thread 12), futex (8 threads)": where a process's threads wait, grouped.
fn where_threads_wait(tasks: &[TaskSnapshot]) -> String {
    let mut by: std::collections::BTreeMap<&str, Vec<Pid>> = Default::default();
    for t in tasks {
        let at = if !t.syscall.is_empty() && t.syscall != "-1" {
            t.syscall.as_str()
        } else if !t.wchan.is_empty() {
            t.wchan.as_str()
        } else {
            "running"
        };
        by.entry(at).or_default().push(t.tid);
    }
    by.iter()
        .map(|(at, tids)| match tids.as_slice() {
            [one] => format!("{at} (thread {one})"),
            many => format!("{at} ({} threads)", many.len()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The innermost functions of the backtrace, innermost first.
fn signal_frames(bt: &str) -> String {
    let frames: Vec<&str> = bt
        .lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| {
            if l.contains("<signal handler called>") {
                return Some("<signal handler called>");
            }
            let f = l.split(" in ").nth(1).or_else(|| l.split_whitespace().nth(1))?;
            Some(f.split(' ').next().unwrap_or(f))
        })
        .collect();
    frames.iter().take(8).copied().collect::<Vec<_>>().join(" <- ")
}

/// `gdb -batch -ex 'thread apply all bt 12'` on the process, bounded in time; None without gdb
/// (or when it fails). gdb runs as the server's own user (see `supervise::run_gdb_as_owner`).
fn gdb_backtrace(pid: Pid) -> Option<String> {
    let limit = crate::timing::within_check(Duration::from_secs(15));
    let out = crate::supervise::run_gdb_as_owner(
        pid,
        &[],
        &["thread apply all bt 12".to_string()],
        limit,
    )
    .ok()?;
    let frames: Vec<&str> = out.lines().filter(|l| l.starts_with('#') || l.starts_with("Thread")).take(40).collect();
    (!frames.is_empty()).then(|| frames.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn thread(tid: Pid, syscall: &str, blocked: &[&str]) -> TaskSnapshot {
        TaskSnapshot {
            pid: 100,
            tid,
            comm: "server".into(),
            state: "S".into(),
            wchan: "futex_wait_queue".into(),
            syscall: syscall.into(),
            syscall_raw: String::new(),
            arg0: None,
            blocked_signals: blocked.iter().map(|s| s.to_string()).collect(),
            cpu_ticks: 7,
        }
    }

    const BT: &str = "Thread 1 (process 100):\n\
        #0  0x00007f in __lll_lock_wait_private () from libc.so.6\n\
        #1  0x00007f in printf () from libc.so.6\n\
        #2  0x000055 in sigchld_handler (sig=17) at server.c:12\n\
        #3  <signal handler called>\n\
        #4  0x00007f in malloc () from libc.so.6\n";

    #[test]
    fn a_lone_futex_thread_with_the_signal_blocked_is_a_handler_deadlock() {
        let s = name_hang(&[thread(100, "futex", &["SIGCHLD"])], true, Some(BT));
        assert!(s.contains("with SIGCHLD blocked"), "{s}");
        assert!(s.contains("deadlocked inside its own signal handler"), "{s}");
        assert!(s.contains("gdb shows: __lll_lock_wait_private <- printf <- sigchld_handler <- <signal handler called> <- malloc."), "{s}");
        let without_gdb = name_hang(&[thread(100, "futex", &["SIGCHLD"])], true, None);
        assert!(!without_gdb.contains("gdb shows"), "{without_gdb}");
    }

    #[test]
    fn every_thread_on_a_lock_with_frozen_cpu_is_a_deadlock() {
        let s = name_hang(&[thread(100, "futex", &[]), thread(101, "futex", &[])], true, None);
        assert!(s.starts_with("Every one of its threads waits on a lock"), "{s}");
        assert!(s.contains("a deadlock"));
    }

    #[test]
    fn no_deadlock_is_named_when_a_thread_waits_elsewhere() {
        let s = name_hang(&[thread(100, "accept", &[]), thread(101, "futex", &[]), thread(102, "futex", &[])], true, None);
        assert!(!s.contains("deadlock"), "{s}");
        assert_eq!(s, "Its CPU time did not move while it did not answer; its threads were waiting in: accept (thread 100), futex (2 threads).");
    }

    #[test]
    fn no_deadlock_is_named_while_the_cpu_time_moves() {
        let s = name_hang(&[thread(100, "futex", &["SIGCHLD"])], false, Some(BT));
        assert!(!s.contains("deadlock"), "{s}");
        assert!(s.contains("it is busy somewhere"), "{s}");
    }

    #[test]
    fn a_lone_futex_thread_without_blocked_signals_is_no_handler_deadlock() {
        let s = name_hang(&[thread(100, "futex", &[])], true, None);
        assert!(!s.contains("signal handler. The handler"), "{s}");
        assert!(s.starts_with("Every one of its threads waits on a lock"), "{s}");
    }

    #[test]
    fn threads_with_no_syscall_are_placed_by_wchan_or_as_running() {
        let mut t = thread(100, "-1", &[]);
        assert_eq!(where_threads_wait(std::slice::from_ref(&t)), "futex_wait_queue (thread 100)");
        t.wchan.clear();
        assert_eq!(where_threads_wait(&[t]), "running (thread 100)");
    }

    #[test]
    fn served_churn_passes_and_a_death_is_told_as_the_cause() {
        let o = judge(Seen::Served { done: 2000, churn_s: 1.26 });
        assert_eq!(o.status, Status::Pass);
        assert_eq!(o.feedback, "Served 2000 connections in 1.3 s of churn, then a fresh client.");
        let o = judge(Seen::Died {
            done: 40,
            what: "connection c40 could not connect: refused".into(),
            death: "The server process was killed by SIGSEGV during this check.".into(),
        });
        assert_eq!(o.status, Status::Fail);
        assert_eq!(
            o.feedback,
            "The server stopped serving: connection c40 could not connect: refused. The server process was killed by SIGSEGV during this check."
        );
        assert!(!o.feedback.contains("deadlock"));
    }

    #[test]
    fn a_hang_reports_the_diagnosis_and_its_evidence() {
        let diagnosis = Diagnosis {
            summary: name_hang(&[thread(100, "futex", &["SIGCHLD"])], true, None),
            cpu_frozen: true,
            backtrace: Some(BT.into()),
        };
        let what = "connection c7 waited 2.0 s and got no complete echo (0 of 20 bytes came back)".to_string();
        let o = judge(Seen::Hung { done: 7, churn_s: 0.4, what, diagnosis, tasks: json!([]) });
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.starts_with("The server stopped serving after 7 connections: connection c7 waited"), "{}", o.feedback);
        assert!(o.feedback.contains("came back). Its only thread waits in futex"), "{}", o.feedback);
        assert_eq!(o.evidence["cpu_frozen"], true);
        assert_eq!(o.evidence["gdb_backtrace"], BT);
    }
}
