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
    let t = cx.timing;
    let mut rng = cx.rng.clone();
    let rounds: Vec<Vec<(String, Vec<u8>)>> = (0..p.rounds)
        .map(|r| {
            (0..p.burst)
                .map(|i| {
                    let label = format!("r{r}c{i}");
                    let line = payload::tagged_line(&mut rng, &label);
                    (label, line)
                })
                .collect()
        })
        .collect();
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    let mut total = 0usize;
    for (r, clients) in rounds.into_iter().enumerate() {
        let mut swarm = Swarm::new(srv.addr());
        for (label, line) in clients {
            swarm.add(Session::new(label, vec![Step::Send(line), Step::Expect, Step::Close]));
        }
        swarm.run(RunLimits { idle: t.idle, overall: t.idle * 2 }, |_| false);
        total += swarm.sessions.len();
        let bad: Vec<&Session> = swarm.sessions.iter().filter(|s| !s.ok()).collect();
        if bad.is_empty() {
            continue;
        }
        // Evidence while the stuck clients are still connected.
        let proof = sharing_proof(srv.main_pid, srv.port);
        let never = bad.iter().filter(|s| s.end.is_none() && s.mismatch.is_none()).count();
        let wrong: Vec<&&Session> = bad.iter().filter(|s| s.mismatch.is_some()).collect();
        let early = bad
            .iter()
            .filter(|s| matches!(s.end, Some(SessionEnd::ClosedEarly | SessionEnd::Reset)) && s.mismatch.is_none())
            .count();
        let mut fb = format!(
            "In burst {} of {} simultaneous connects, {} of {} clients were not served correctly: \
             {never} never got their echo, {} got bytes that were not theirs, {early} were closed \
             early.",
            r + 1,
            p.burst,
            bad.len(),
            p.burst,
            wrong.len()
        );
        if let Some(w) = wrong.first() {
            let m = w.mismatch.as_ref().expect("filtered on mismatch");
            fb.push_str(&format!(
                " For example client {} expected \"{}\" but got \"{}\".",
                w.label,
                show_bytes(&m.expected, 40),
                show_bytes(&m.got, 40)
            ));
        }
        if proof.get("shared_descriptors").is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty())) {
            fb.push_str(
                " /proc shows two or more threads blocked reading the same descriptor while other \
                 connected sockets have no reader: the threads share one connfd.",
            );
        }
        fb.push_str(
            " This is the unintended-sharing race of passing &connfd to pthread_create: the main \
             thread's next accept overwrites connfd before the new thread has read it. Give each \
             thread its own copy (malloc an int per connection and free it in the thread, or \
             pass the value itself).",
        );
        if let Some(d) = death_note(srv) {
            fb.push(' ');
            fb.push_str(&d);
        }
        let ev = json!({
            "rounds_run": r + 1,
            "burst": p.burst,
            "clients_before_failure": total - swarm.sessions.len(),
            "failed_in_round": bad.len(),
            "never_served": never,
            "wrong_bytes": wrong.len(),
            "closed_early": early,
            "stuck_clients": bad.iter().take(5).map(|s| s.label.clone()).collect::<Vec<_>>(),
            "proc": proof,
        });
        swarm.close_all();
        return Outcome::fail(0.0, fb, ev);
    }
    Outcome::pass(
        format!("All {total} clients in {} bursts of {} got exactly their own bytes back.", p.rounds, p.burst),
        json!({ "rounds": p.rounds, "burst": p.burst, "clients_served": total }),
    )
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
