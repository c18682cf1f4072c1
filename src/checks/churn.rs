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
    let budget = t.scaled(p.seconds);
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    let start = Instant::now();
    let mut done = 0u32;
    let mut stuck: Option<String> = None;
    while done < p.connections && start.elapsed() < budget {
        let n = p.clients.min(p.connections - done);
        let mut swarm = Swarm::new(srv.addr());
        for i in 0..n {
            let label = format!("c{}", done + i);
            let line = payload::tagged_line(&mut rng, &label);
            swarm.add(Session::new(label, vec![Step::Send(line), Step::Expect, Step::Close]).judging_replies());
        }
        swarm.run(RunLimits::both(t.serve), |_| false);
        if let Some(bad) = swarm.sessions.iter().find(|s| !s.served()) {
            stuck = Some(format!("connection {} {}", bad.label, describe(bad, t.serve)));
            break;
        }
        done += n;
    }
    let churn_s = start.elapsed().as_secs_f64();
    let fresh = if stuck.is_none() { Some(probe(srv, &mut rng, "fresh", t.serve)) } else { None };
    if stuck.is_none() && fresh.as_ref().is_some_and(|s| s.served()) {
        return Outcome::pass(
            format!("Served {done} connections in {churn_s:.1} s of churn, then a fresh client."),
            json!({ "connections": done, "churn_s": churn_s }),
        );
    }
    let what = stuck.unwrap_or_else(|| {
        format!("after {done} connections a fresh client {}", describe(fresh.as_ref().expect("probed"), t.serve))
    });
    if let Some(d) = death_note(srv) {
        return Outcome::fail(0.0, format!("The server stopped serving: {what}. {d}"), json!({ "connections_served": done }));
    }
    let (diag, ev_tasks) = diagnose(srv.main_pid, &other_processes(srv).iter().filter(|p| !p.is_zombie()).map(|p| p.pid).collect::<Vec<_>>());
    // It may have died while it was being looked at: then that is what happened.
    if let Some(d) = death_note(srv) {
        return Outcome::fail(0.0, format!("The server stopped serving: {what}. {d}"), json!({ "connections_served": done }));
    }
    let mut fb = format!("The server stopped serving after {done} connections: {what}.");
    fb.push(' ');
    fb.push_str(&diag.summary);
    let mut ev = json!({
        "connections_served": done,
        "churn_s": churn_s,
        "tasks": ev_tasks,
        "cpu_frozen": diag.cpu_frozen,
    });
    if let Some(bt) = diag.backtrace {
        ev["gdb_backtrace"] = Value::String(bt);
    }
    Outcome::fail(0.0, fb, ev)
}

struct Diagnosis {
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
    let handler_deadlock = second.len() == 1
        && second[0].syscall == "futex"
        && !second[0].blocked_signals.is_empty()
        && cpu_frozen;
    let bt_names = backtrace.as_deref().map(signal_frames).unwrap_or_default();
    let summary = if handler_deadlock {
        let sigs = second[0].blocked_signals.join(", ");
        let mut s = format!(
            "Its only thread waits in futex (a lock) with {sigs} blocked and uses no CPU: it is \
             deadlocked inside its own signal handler. The handler called a function that takes \
             a lock — printf, malloc, a mutex — while the code it interrupted was holding that \
             same lock, so it waits for itself forever. Call only async-signal-safe functions in \
             a handler (write, waitpid, _exit; see signal-safety(7)), or set a flag and do the \
             work in the main loop."
        );
        if !bt_names.is_empty() {
            s.push_str(&format!(" gdb shows: {bt_names}."));
        }
        s
    } else if !second.is_empty() && second.iter().all(|t| t.syscall == "futex") && cpu_frozen {
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
            where_threads_wait(&second)
        )
    };
    let tasks = serde_json::to_value(&all).unwrap_or(Value::Null);
    (Diagnosis { summary, cpu_frozen, backtrace }, tasks)
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

/// The real uid and gid of a process, from /proc/PID/status (which, unlike the owner of
/// /proc/PID, stays right when the process makes itself non-dumpable).
fn process_ids(pid: Pid) -> Option<(u32, u32)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u32> {
        status.lines().find_map(|l| l.strip_prefix(name))?.split_whitespace().next()?.parse().ok()
    };
    Some((field("Uid:")?, field("Gid:")?))
}

/// `gdb -batch -ex 'thread apply all bt'` on the process, bounded in time; None without gdb.
/// gdb runs as the server's own user, never as root: it reads the student's program and
/// attaches to the student's process, both untrusted.
fn gdb_backtrace(pid: Pid) -> Option<String> {
    use std::os::unix::process::CommandExt;
    let (uid, gid) = process_ids(pid)?;
    let as_root = nix::unistd::geteuid().is_root();
    if as_root && uid == 0 {
        return None; // a server running as root is not something to attach to as root
    }
    let mut cmd = std::process::Command::new("gdb");
    // "set sysroot /": the server may be in a mount namespace of its own, whose files gdb
    // would read through /proc/PID/root; the paths are the same in the grader's.
    cmd.args(["-nx", "-batch", "-iex", "set sysroot /", "-p", &pid.to_string(), "-ex", "thread apply all bt 12"])
        .env_clear()
        .envs(crate::supervise::clean_env(None))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .process_group(0);
    if as_root {
        // std drops supplementary groups when root changes the child's ids.
        cmd.uid(uid).gid(gid);
    }
    let mut child = cmd.spawn().ok()?;
    let start = Instant::now();
    let limit = crate::timing::within_check(Duration::from_secs(15));
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
    let frames: Vec<&str> = out.lines().filter(|l| l.starts_with('#') || l.starts_with("Thread")).take(40).collect();
    (!frames.is_empty()).then(|| frames.join("\n"))
}
