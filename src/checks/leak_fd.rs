//! `leak.fd`: after clients come and go, the server's socket descriptors return to the
//! startup baseline — in every process of its tree, and every thread with a table of its own.
//! A parent that never closes connfd (or a thread that never does) keeps every connection's
//! socket: the client has gone, so the kernel shows it in CLOSE_WAIT. A child that goes back
//! into the accept loop instead of exiting keeps its connection too, and stays: such children
//! pile up, one per client, while the listening process itself looks clean.

use crate::report::Model;
use super::tree::{live_processes, tree_tables};
use super::{common::*, in_range, Cx, Outcome};
use crate::client::{payload, RunLimits, Session, Step, Swarm};
use crate::inspect::{sockets::state_name, Pid, SocketTable};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

pub const TITLE: &str = "Closes every connection's descriptor (no leak, no CLOSE_WAIT)";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Clients that connect one after another.
    pub sequential: u32,
    /// Clients that connect at the same time.
    pub simultaneous: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params { sequential: 20, simultaneous: 20 }
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        in_range("sequential", self.sequential, 0, 5000)?;
        in_range("simultaneous", self.simultaneous, 0, 5000)?;
        if self.sequential + self.simultaneous == 0 {
            return Err("sequential and simultaneous are both 0: no client would connect".into());
        }
        Ok(())
    }
}

/// Where a server of this model closes a connection.
pub(crate) fn close_advice(model: Model) -> &'static str {
    match model {
        Model::Process => "the parent must close connfd right after fork (the child has its own copy).",
        Model::Thread => "each thread must close its connfd before it returns.",
        Model::Event => "the event loop must close a client's descriptor (and forget it) when it reads EOF.",
        Model::Iterative | Model::Unknown => "close connfd when the client's conversation ends (a process-based parent closes its copy right after fork; a thread closes its own; an event loop closes at EOF).",
    }
}

/// The longest this check may wait, its deadlines added up. Start, the sequential clients (3 × idle, and the last one's serve), the simultaneous ones (3 × idle), the grace to close.
pub fn bound(_p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + super::settle::bound(t) + t.idle * 3 + t.serve + t.idle * 3 + t.grace
}

pub fn run(cx: &mut Cx, p: &Params) -> Outcome {
    if let Some(o) = needs_replies(cx) {
        return o;
    }
    let model = cx.model.model;
    let t = cx.timing;
    let mut rng = cx.rng.clone();
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    // The sockets the tree holds at startup (the listening socket, anything else it opened),
    // and its processes then: whatever is above these after the clients left was left behind.
    // Read once it has settled: a preforking server forks its children after it listens.
    let settled = super::settle::settle(srv, t).map_or(json!(null), |b| b.evidence());
    let start_tables = tree_tables(srv);
    let baseline: BTreeSet<u64> = start_tables.iter().flat_map(|h| h.fds.iter().filter_map(|e| e.socket_inode)).collect();
    let start_procs: BTreeSet<Pid> = live_processes(srv).into_iter().map(|(p, _)| p).collect();
    if let Err(u) = sequential_clients(srv, &mut rng, "s", p.sequential, t.serve, t.idle * 3) {
        return workload_failed(srv, &u, "its descriptors");
    }
    let mut swarm = Swarm::new(srv.addr());
    for i in 0..p.simultaneous {
        let label = format!("m{i}");
        let line = payload::tagged_line(&mut rng, &label);
        swarm.add(Session::new(label, vec![Step::Send(line), Step::Expect, Step::Close]).judging_replies());
    }
    swarm.run(RunLimits { idle: t.idle, overall: t.idle * 3 }, |_| false);
    drop(swarm);
    let clients = (p.sequential + p.simultaneous) as usize;
    // Settled: no table of the tree holds a socket beyond the startup ones, and no process
    // started since is still alive (a child serves one client, then exits).
    let new_procs = |srv: &crate::supervise::Server| -> Vec<(Pid, String)> {
        live_processes(srv).into_iter().filter(|(p, _)| !start_procs.contains(p)).collect()
    };
    let extra_sockets = |srv: &crate::supervise::Server| {
        tree_tables(srv).into_iter().filter(|h| h.fds.iter().any(|e| e.socket_inode.is_some_and(|i| !baseline.contains(&i)))).count()
    };
    let settling = std::time::Instant::now();
    let back = wait_until(t.grace, || extra_sockets(srv) == 0 && new_procs(srv).is_empty());
    if let Some(took) = back {
        return Outcome::pass(
            format!("After {clients} clients came and went, the server held its {} startup socket(s) again.", baseline.len()),
            json!({ "clients": clients, "baseline_sockets": baseline.len(), "processes": start_procs.len(), "settled_ms": took.as_millis() as u64, "start": settled }),
        );
    }
    if let Some(d) = death_note(srv) {
        return Outcome::fail(0.0, format!("{d} Its descriptors could not be counted."), json!({ "clients": clients }));
    }
    let piled = new_procs(srv);
    let (left, ev) = leftovers(srv, &baseline, start_procs.len(), &piled, clients);
    let mut ev = ev;
    ev["inspected_after_ms"] = json!(settling.elapsed().as_millis() as u64);
    ev["start"] = settled;
    judge(&left, model, ev)
}

/// What the clients left behind, counted once the grace was over.
#[derive(Debug, Clone)]
pub(crate) struct Leftovers {
    pub clients: usize,
    /// The listening process.
    pub pid: Pid,
    /// Connection sockets still open beyond the startup ones (each counted once).
    pub leaked: usize,
    /// Of those, the ones in CLOSE_WAIT (the client closed; the server never did).
    pub close_wait: usize,
    /// The descriptor tables (processes, threads with their own) that hold one.
    pub holders: Vec<String>,
    /// Leaked sockets in the listening process's own table.
    pub main_leaked: usize,
    pub procs_at_start: usize,
    /// Processes started during the test and still running.
    pub procs_left: usize,
}

/// Read the tree's tables and the TCP table: which sockets beyond `baseline` are still open,
/// by state, and who holds them (counts in [`Leftovers`], details in the evidence).
fn leftovers(
    srv: &crate::supervise::Server,
    baseline: &BTreeSet<u64>,
    procs_at_start: usize,
    piled: &[(Pid, String)],
    clients: usize,
) -> (Leftovers, serde_json::Value) {
    let table = SocketTable::read();
    let tables = tree_tables(srv);
    // Each leaked socket once (several processes may hold copies of it), by TCP state; and
    // each table that holds one, with what it holds.
    let mut sockets: BTreeMap<u64, &'static str> = BTreeMap::new();
    let mut holders = Vec::new();
    let mut holder_names = Vec::new();
    let mut main_leaked = 0usize;
    for h in &tables {
        let mut held = Vec::new();
        for e in &h.fds {
            let Some(ino) = e.socket_inode.filter(|i| !baseline.contains(i)) else { continue };
            let state = table.by_inode(ino).map_or("closed by peer (no TCP entry)", |s| state_name(&s.state));
            sockets.insert(ino, state);
            held.push(json!({ "fd": e.fd, "target": e.target, "tcp_state": state }));
        }
        if held.is_empty() {
            continue;
        }
        if h.main && h.tid.is_none() {
            main_leaked = held.len();
        }
        holder_names.push(h.name());
        if holders.len() < 10 {
            let mut d = h.describe();
            d["sockets_held"] = json!(held.len());
            held.truncate(5);
            d["examples"] = json!(held);
            holders.push(d);
        }
    }
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    for st in sockets.values() {
        *by_state.entry(st.to_string()).or_default() += 1;
    }
    let left = Leftovers {
        clients,
        pid: srv.main_pid,
        leaked: sockets.len(),
        close_wait: by_state.get("CLOSE_WAIT").copied().unwrap_or(0),
        holders: holder_names,
        main_leaked,
        procs_at_start,
        procs_left: piled.len(),
    };
    let ev = json!({
        "clients": clients,
        "baseline_sockets": baseline.len(),
        "processes_at_start": procs_at_start,
        "processes_after": procs_at_start + piled.len(),
        "processes_left_by_clients": piled.iter().take(20).map(|(p, c)| json!({ "pid": p, "comm": c })).collect::<Vec<_>>(),
        "leaked_sockets": left.leaked,
        "leaked_by_tcp_state": by_state,
        "holders": holders,
        "holding_tables": left.holders.len(),
    });
    (left, ev)
}

/// The verdict from what was left: leaked sockets, and processes that outlived their clients.
pub(crate) fn judge(l: &Leftovers, model: Model, ev: serde_json::Value) -> Outcome {
    let (clients, leaked, close_wait, pid) = (l.clients, l.leaked, l.close_wait, l.pid);
    // Processes that stay, one for every other client or more, grow with the clients (a pool
    // started lazily stays small).
    let piling = l.procs_left * 2 >= clients;
    if leaked == 0 && !piling {
        return Outcome::pass(
            format!(
                "After {clients} clients came and went, no process of the server held a connection socket; {} process(es) started meanwhile were still running.",
                l.procs_left
            ),
            ev,
        );
    }
    let mut fb = if leaked == 0 {
        format!("After {clients} clients connected and disconnected, none of the server's processes holds a connection socket, but ")
    } else if l.holders.len() == 1 && l.main_leaked > 0 {
        format!(
            "After {clients} clients connected and disconnected, the server process (pid {pid}) \
             still holds {leaked} socket descriptor(s) more than at startup ({close_wait} in \
             CLOSE_WAIT: the client closed its end, the server never closed its own). "
        )
    } else {
        format!(
            "After {clients} clients connected and disconnected, {leaked} connection socket(s) \
             are still open ({close_wait} in CLOSE_WAIT: the client closed its end, the server \
             never closed its own), held by {} of the server's descriptor tables: {}{}. ",
            l.holders.len(),
            l.holders.iter().take(4).cloned().collect::<Vec<_>>().join(", "),
            if l.holders.len() > 4 { ", ..." } else { "" }
        )
    };
    if piling {
        fb.push_str(&format!(
            "{} processes started during the test are still running after every client left \
             ({} at startup, {} now): they outlived their clients. A child forked for a \
             connection must exit when it is done with it (exit(0) after close(connfd)); one \
             that returns into the accept loop becomes another server. ",
            l.procs_left,
            l.procs_at_start,
            l.procs_at_start + l.procs_left
        ));
    }
    if l.main_leaked > 0 || !piling {
        fb.push_str(&format!(
            "Every accepted connection must be closed once: {} A leak like this runs the server \
             out of descriptors.",
            close_advice(model)
        ));
    }
    Outcome::fail(0.0, fb.trim_end().to_string(), ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn left() -> Leftovers {
        Leftovers {
            clients: 40,
            pid: 100,
            leaked: 0,
            close_wait: 0,
            holders: Vec::new(),
            main_leaked: 0,
            procs_at_start: 1,
            procs_left: 0,
        }
    }

    #[test]
    fn nothing_left_passes() {
        let o = judge(&left(), Model::Process, json!({}));
        assert_eq!(o.status, Status::Pass);
    }

    #[test]
    fn a_parent_that_never_closes_connfd_is_told_where_to_close() {
        let l = Leftovers { leaked: 40, close_wait: 40, holders: vec!["pid 100".into()], main_leaked: 40, ..left() };
        let o = judge(&l, Model::Process, json!({}));
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.contains("the server process (pid 100) still holds 40 socket descriptor(s)"), "{}", o.feedback);
        assert!(o.feedback.contains("40 in CLOSE_WAIT"));
        assert!(o.feedback.contains("the parent must close connfd right after fork"));
    }

    #[test]
    fn children_that_return_to_the_accept_loop_pile_up() {
        let l = Leftovers { procs_left: 40, ..left() };
        let o = judge(&l, Model::Process, json!({}));
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.contains("40 processes started during the test are still running"), "{}", o.feedback);
        assert!(!o.feedback.contains("Every accepted connection"), "no close advice when only children pile up");
    }

    #[test]
    fn a_small_lazily_started_pool_is_no_pile() {
        let l = Leftovers { procs_left: 4, ..left() };
        assert_eq!(judge(&l, Model::Thread, json!({})).status, Status::Pass);
    }

    #[test]
    fn sockets_held_by_several_tables_are_listed() {
        let holders = (0..6).map(|i| format!("tid {i}")).collect();
        let l = Leftovers { leaked: 6, close_wait: 6, holders, ..left() };
        let o = judge(&l, Model::Thread, json!({}));
        assert!(o.feedback.contains("held by 6 of the server's descriptor tables: tid 0, tid 1, tid 2, tid 3, ..."), "{}", o.feedback);
        assert!(o.feedback.contains("each thread must close its connfd"));
    }
}
