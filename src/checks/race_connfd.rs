//! `race.connfd`: bursts of simultaneous connects, each client with a unique payload that must
//! come back to it alone.
//!
//! The bug: `pthread_create(&tid, NULL, thread, &connfd)` hands every thread the address of
//! the main thread's one `connfd` variable. When the next accept overwrites it before the new
//! thread has read it, two threads serve the same descriptor and another connection has no
//! reader at all. Sequential connects never show it; a burst of a few simultaneous connects
//! shows it every time (measured: 20 of 20 runs with bursts of 5). The client sees a hang; the
//! proof from outside is two threads blocked in `read` on the same descriptor while another
//! connected socket has no reader.

use super::{common::*, in_range, Cx, Outcome};
use crate::report::Model;
use crate::client::{payload, show_bytes, RunLimits, Session, SessionEnd, Step, Swarm};
use crate::inspect::{fd_table, sockets::state_name, tasks, SocketTable};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

pub const TITLE: &str = "Each of many simultaneous clients gets its own bytes back (no &connfd race)";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Rounds of bursts.
    pub rounds: u32,
    /// Clients connecting at once in each burst.
    pub burst: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params { rounds: 3, burst: 200 }
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        in_range("rounds", self.rounds, 1, 100)?;
        in_range("burst", self.burst, 2, 5000)
    }
}

/// The longest this check may wait, its deadlines added up. Start, then each burst (at most 2 × idle).
pub fn bound(p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + t.idle * 2 * p.rounds
}

pub fn run(cx: &mut Cx, p: &Params) -> Outcome {
    if let Some(o) = needs_replies(cx).or_else(|| needs_echo(cx)) {
        return o;
    }
    let t = cx.timing;
    let threaded = cx.model.model == Model::Thread;
    let mut rng = cx.rng.clone();
    let rounds = burst_lines(&mut rng, p);
    // With the shim, a thread handed a pointer into its creator's stack starts late: the race
    // strikes in every burst, and the record names it (see stack_arg).
    let (shim_log, env) = match super::stack_arg::preload(cx) {
        Some((log, env)) => (Some(log), env),
        None => (None, Vec::new()),
    };
    let srv = match cx.start_with_env(env) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let queue = ListenNote::read(srv.port, p.burst);
    let mut total = 0usize;
    for (r, clients) in rounds.into_iter().enumerate() {
        let mut swarm = Swarm::new(srv.addr());
        let payloads: Vec<Vec<u8>> = clients.iter().map(|(_, l)| l.clone()).collect();
        for (label, line) in clients {
            swarm.add(Session::new(label, vec![Step::Send(line), Step::Expect, Step::Close]));
        }
        swarm.run(RunLimits { idle: t.idle, overall: t.idle * 2 }, |_| false);
        total += swarm.sessions.len();
        if swarm.sessions.iter().all(|s| s.ok()) {
            continue;
        }
        let seen = Seen { round: r + 1, total, threaded, queue: &queue, shim_log: shim_log.as_ref() };
        let o = bad_burst(srv, &swarm, &payloads, p, t, &seen);
        swarm.close_all();
        return o;
    }
    let mut fb = format!(
        "All {total} clients in {} bursts of {} got exactly their own bytes back.",
        p.rounds, p.burst
    );
    if let Some(n) = queue.note() {
        fb.push(' ');
        fb.push_str(&n);
    }
    Outcome::pass(
        fb,
        json!({ "rounds": p.rounds, "burst": p.burst, "clients_served": total, "listen_queue": queue.evidence() }),
    )
}

/// Where the check stood when a burst went wrong.
struct Seen<'a> {
    round: usize,
    /// Clients so far, this burst's included.
    total: usize,
    threaded: bool,
    queue: &'a ListenNote,
    shim_log: Option<&'a super::stack_arg::ShimLog>,
}

/// The verdict on a burst in which some clients were not served correctly, with the evidence
/// read while the stuck clients are still connected.
fn bad_burst(
    srv: &mut crate::supervise::Server,
    swarm: &Swarm,
    payloads: &[Vec<u8>],
    p: &Params,
    t: crate::timing::Timing,
    seen: &Seen,
) -> Outcome {
    let bad: Vec<&Session> = swarm.sessions.iter().filter(|s| !s.ok()).collect();
    let proof = sharing_proof(srv.main_pid, srv.port);
    let stack_arg = seen.shim_log.and_then(|l| super::stack_arg::shared(l, srv.main_pid));
    let tally = Tally::of(&bad, payloads);
    let example = bad.iter().find_map(|s| {
        let m = s.mismatch.as_ref()?;
        Some((s.label.clone(), show_bytes(&m.expected, 40), show_bytes(&m.got, 40)))
    });
    let burst = BadBurst {
        round: seen.round,
        burst: p.burst as usize,
        failed: bad.len(),
        tally,
        waited: t.idle,
        example,
        shared: proof["shared_descriptors"].as_array().is_some_and(|a| !a.is_empty()),
        orphans: proof["connections_with_unread_data_and_no_reader"]
            .as_array()
            .map_or(0, |a| a.len()),
        stack_arg,
        threaded: seen.threaded,
        queue_note: seen.queue.note(),
        death: death_note(srv),
    };
    let ev = json!({
        "rounds_run": seen.round,
        "burst": p.burst,
        "clients_before_failure": seen.total - swarm.sessions.len(),
        "failed_in_round": bad.len(),
        "never_connected": burst.tally.never_connected,
        "connected_never_answered": burst.tally.never_answered,
        "got_another_clients_bytes": burst.tally.others_bytes,
        "got_other_wrong_bytes": burst.tally.wrong_bytes,
        "closed_early": burst.tally.closed_early,
        "stuck_clients": bad.iter().take(5).map(|s| s.label.clone()).collect::<Vec<_>>(),
        "proc": proof,
        "pthread_create_shared_arg": burst.stack_arg.as_ref().map(|a| a.evidence()),
        "listen_queue": seen.queue.evidence(),
    });
    judge(&burst, ev)
}

/// Each burst's clients: a label and its tagged line.
fn burst_lines(rng: &mut rand_chacha::ChaCha8Rng, p: &Params) -> Vec<Vec<(String, Vec<u8>)>> {
    (0..p.rounds)
        .map(|r| {
            (0..p.burst)
                .map(|i| {
                    let label = format!("r{r}c{i}");
                    let line = payload::tagged_line(rng, &label);
                    (label, line)
                })
                .collect()
        })
        .collect()
}

/// A burst in which some clients were not served correctly, as measured.
#[derive(Debug)]
pub(crate) struct BadBurst {
    /// Which burst (from 1).
    pub round: usize,
    pub burst: usize,
    /// Clients of the burst not served correctly.
    pub failed: usize,
    pub tally: Tally,
    /// How long a client waited for its reply.
    pub waited: std::time::Duration,
    /// One client that got wrong bytes: its label, what it expected and what it got.
    pub example: Option<(String, String, String)>,
    /// /proc showed two or more threads blocked reading one descriptor.
    pub shared: bool,
    /// Accepted connections with unread data and no reader.
    pub orphans: usize,
    /// The shim saw one pointer into a creator's stack handed to several threads (and /proc
    /// agrees where it points).
    pub stack_arg: Option<super::stack_arg::SharedArg>,
    /// The model probe saw a thread-based server.
    pub threaded: bool,
    pub queue_note: Option<String>,
    pub death: Option<String>,
}

/// The verdict on a bad burst. The &connfd race is named only for a threaded server and only
/// on evidence of it: shared readers, orphaned connections, or another client's bytes.
pub(crate) fn judge(b: &BadBurst, mut ev: Value) -> Outcome {
    let mut fb = format!(
        "In burst {} of {} simultaneous connects, {} of {} clients were not served \
         correctly: {}.",
        b.round,
        b.burst,
        b.failed,
        b.burst,
        b.tally.words(b.waited)
    );
    if let Some((label, expected, got)) = &b.example {
        fb.push_str(&format!(
            " For example client {label} expected \"{expected}\" but got \"{got}\"."
        ));
    }
    if b.shared {
        fb.push_str(
            " /proc shows two or more threads blocked reading the same descriptor while \
             other connected sockets have no reader.",
        );
    } else if b.orphans > 0 {
        fb.push_str(&format!(
            " /proc shows {} accepted connection(s) with the client's line unread and no \
             thread reading them: the server accepted them and nothing serves them.",
            b.orphans
        ));
    }
    if let Some(a) = &b.stack_arg {
        fb.push_str(&format!(
            " The grader's library saw pthread_create get the same pointer {:#x} into {} for \
             at least {} threads: each thread reads its descriptor through that one variable, which the \
             next accept overwrites.",
            a.arg, a.whose, a.threads
        ));
    }
    let race_evidence = b.threaded
        && (b.shared || b.orphans > 0 || b.tally.others_bytes > 0 || b.stack_arg.is_some());
    if race_evidence {
        fb.push_str(
            " In a server that starts a thread per connection this is the unintended-sharing \
             race of passing &connfd to pthread_create: the main thread's next accept \
             overwrites connfd before the new thread has read it, so two threads serve one \
             descriptor and another connection has none. Give each thread its own copy \
             (malloc an int per connection and free it in the thread, or pass the value \
             itself).",
        );
    }
    for note in [&b.queue_note, &b.death].into_iter().flatten() {
        fb.push(' ');
        fb.push_str(note);
    }
    ev["race_evidence"] = json!(race_evidence);
    Outcome::fail(0.0, fb, ev)
}

/// What happened to the clients of a burst that were not served.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    /// Never got a connection (SYN retries, or never started: the listen queue stayed full).
    pub never_connected: usize,
    /// Connected, got no reply.
    pub never_answered: usize,
    /// Got bytes of another client's line: the strongest sign of shared descriptors.
    pub others_bytes: usize,
    /// Got other wrong bytes.
    pub wrong_bytes: usize,
    pub closed_early: usize,
}

impl Tally {
    fn of(bad: &[&Session], payloads: &[Vec<u8>]) -> Tally {
        let mut t = Tally::default();
        for s in bad {
            if let Some(m) = &s.mismatch {
                if got_another_clients_line(s, m, payloads) {
                    t.others_bytes += 1;
                } else {
                    t.wrong_bytes += 1;
                }
            } else if matches!(s.end, Some(SessionEnd::ClosedEarly | SessionEnd::Reset)) {
                t.closed_early += 1;
            } else if s.connected_at.is_none() {
                t.never_connected += 1;
            } else {
                t.never_answered += 1;
            }
        }
        t
    }

    fn words(&self, waited: std::time::Duration) -> String {
        let secs = waited.as_secs_f64();
        let mut parts = Vec::new();
        if self.never_connected > 0 {
            parts.push(format!(
                "{} never got a connection (the kernel had not completed their connects when the burst ended)",
                self.never_connected
            ));
        }
        if self.never_answered > 0 {
            parts.push(format!(
                "{} connected and got no reply within {secs:.1} s",
                self.never_answered
            ));
        }
        if self.others_bytes > 0 {
            parts.push(format!("{} got another client's line", self.others_bytes));
        }
        if self.wrong_bytes > 0 {
            parts.push(format!("{} got bytes that were not their echo", self.wrong_bytes));
        }
        if self.closed_early > 0 {
            parts.push(format!(
                "{} had their connection closed or reset before their echo came back",
                self.closed_early
            ));
        }
        parts.join(", ")
    }
}

/// Whether what a client received is (the start of) another client's line.
fn got_another_clients_line(s: &Session, m: &crate::client::Mismatch, payloads: &[Vec<u8>]) -> bool {
    let Some(own) = payloads.iter().find(|l| l.starts_with(format!("{} ", s.label).as_bytes())) else {
        return false;
    };
    let at = m.offset as usize;
    if at > own.len() || m.got.is_empty() {
        return false;
    }
    let mut seen = own[..at].to_vec();
    seen.extend_from_slice(&m.got);
    payloads
        .iter()
        .filter(|l| *l != own)
        .any(|l| l.starts_with(&seen[..seen.len().min(l.len())]) || seen.starts_with(l))
}

/// Threads blocked reading the same descriptor, and connected sockets nobody reads.
fn sharing_proof(pid: crate::inspect::Pid, port: u16) -> Value {
    let tasks = tasks::task_snapshots(pid);
    let mut readers: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for t in &tasks {
        if let Some(fd) = tasks::reading_fd(t) {
            readers.entry(fd).or_default().push(t.tid);
        }
    }
    let shared: Vec<Value> = readers
        .iter()
        .filter(|(_, tids)| tids.len() > 1)
        .map(|(fd, tids)| json!({ "fd": fd, "threads_reading": tids }))
        .collect();
    let read_fds: BTreeSet<i32> = readers.keys().copied().collect();
    let table = SocketTable::read();
    let unread: Vec<Value> = fd_table(pid)
        .into_iter()
        .filter_map(|e| {
            let s = table.by_inode(e.socket_inode?)?;
            (s.local_port == port && s.remote_port != 0 && !read_fds.contains(&e.fd))
                .then(|| json!({ "fd": e.fd, "state": state_name(&s.state), "unread_bytes": s.rx_queue }))
        })
        .filter(|v| v["unread_bytes"].as_u64().unwrap_or(0) > 0)
        .take(10)
        .collect();
    json!({
        "threads": tasks.len(),
        "shared_descriptors": shared,
        "connections_with_unread_data_and_no_reader": unread,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;
    use std::time::Duration;

    fn burst() -> BadBurst {
        BadBurst {
            round: 2,
            burst: 50,
            failed: 2,
            tally: Tally { others_bytes: 1, never_answered: 1, ..Tally::default() },
            waited: Duration::from_secs(3),
            example: Some(("r1c7".into(), "r1c7 abc".into(), "r1c9 xyz".into())),
            shared: true,
            orphans: 1,
            stack_arg: None,
            threaded: true,
            queue_note: None,
            death: None,
        }
    }

    #[test]
    fn a_threaded_server_with_shared_readers_is_told_about_connfd() {
        let o = judge(&burst(), json!({}));
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.starts_with("In burst 2 of 50 simultaneous connects, 2 of 50 clients"), "{}", o.feedback);
        assert!(o.feedback.contains("1 connected and got no reply within 3.0 s, 1 got another client's line"), "{}", o.feedback);
        assert!(o.feedback.contains("client r1c7 expected \"r1c7 abc\" but got \"r1c9 xyz\""));
        assert!(o.feedback.contains("same descriptor"));
        assert!(o.feedback.contains("&connfd"));
        assert_eq!(o.evidence["race_evidence"], true);
    }

    #[test]
    fn the_race_is_not_named_without_a_threaded_server_or_evidence() {
        let o = judge(&BadBurst { threaded: false, ..burst() }, json!({}));
        assert!(!o.feedback.contains("&connfd"), "{}", o.feedback);
        assert_eq!(o.evidence["race_evidence"], false);
        let quiet = BadBurst {
            shared: false,
            orphans: 0,
            tally: Tally { never_answered: 2, ..Tally::default() },
            example: None,
            ..burst()
        };
        let o = judge(&quiet, json!({}));
        assert!(!o.feedback.contains("&connfd") && !o.feedback.contains("/proc"), "{}", o.feedback);
    }

    #[test]
    fn the_shims_record_is_named_as_what_it_saw() {
        let arg = crate::checks::stack_arg::SharedArg { arg: 0x7ffe_1234, threads: 200, whose: "main's stack".into() };
        let quiet = BadBurst {
            shared: false,
            orphans: 0,
            tally: Tally { never_answered: 2, ..Tally::default() },
            example: None,
            stack_arg: Some(arg),
            ..burst()
        };
        let o = judge(&quiet, json!({}));
        assert!(
            o.feedback.contains("pthread_create get the same pointer 0x7ffe1234 into main's stack for at least 200 threads"),
            "{}",
            o.feedback
        );
        assert!(o.feedback.contains("&connfd"), "{}", o.feedback);
        assert_eq!(o.evidence["race_evidence"], true);
    }

    #[test]
    fn orphaned_connections_are_named_when_no_readers_are_shared() {
        let o = judge(&BadBurst { shared: false, orphans: 3, ..burst() }, json!({}));
        assert!(o.feedback.contains("3 accepted connection(s) with the client's line unread"), "{}", o.feedback);
    }
}
