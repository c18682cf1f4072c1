//! `leak.fd`: after clients come and go, the server's socket descriptors return to the
//! startup baseline. A parent that never closes connfd (or a thread that never does) keeps
//! every connection's socket: the client has gone, so the kernel shows it in CLOSE_WAIT.

use super::{common::*, in_range, Cx, Outcome};
use crate::client::{payload, RunLimits, Session, Step, Swarm};
use crate::inspect::{fd_table, sockets::state_name, SocketTable};
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

/// The longest this check may wait, its deadlines added up. Start, the sequential clients (3 × idle, and the last one's serve), the simultaneous ones (3 × idle), the grace to close.
pub fn bound(_p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + t.idle * 3 + t.serve + t.idle * 3 + t.grace
}

pub fn run(cx: &mut Cx, p: &Params) -> Outcome {
    let t = cx.timing;
    let mut rng = cx.rng.clone();
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    let pid = srv.main_pid;
    let baseline: BTreeSet<i32> = fd_table(pid).iter().filter(|e| e.socket_inode.is_some()).map(|e| e.fd).collect();
    if let Err(u) = sequential_clients(srv, &mut rng, "s", p.sequential, t.serve, t.idle * 3) {
        return workload_failed(srv, &u, "its descriptors");
    }
    let mut swarm = Swarm::new(srv.addr());
    for i in 0..p.simultaneous {
        let label = format!("m{i}");
        let line = payload::tagged_line(&mut rng, &label);
        swarm.add(Session::new(label, vec![Step::Send(line), Step::Expect, Step::Close]));
    }
    swarm.run(RunLimits { idle: t.idle, overall: t.idle * 3 }, |_| false);
    drop(swarm);
    let clients = (p.sequential + p.simultaneous) as usize;
    let back = wait_until(t.grace, || socket_fds(pid) <= baseline.len());
    if let Some(took) = back {
        return Outcome::pass(
            format!("After {clients} clients came and went, the server held its {} startup socket(s) again.", baseline.len()),
            json!({ "clients": clients, "baseline_sockets": baseline.len(), "settled_ms": took.as_millis() as u64 }),
        );
    }
    if let Some(d) = death_note(srv) {
        return Outcome::fail(0.0, format!("{d} Its descriptors could not be counted."), json!({ "clients": clients }));
    }
    let table = SocketTable::read();
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    let mut extra = Vec::new();
    for e in fd_table(pid) {
        let Some(ino) = e.socket_inode else { continue };
        if baseline.contains(&e.fd) {
            continue;
        }
        let state = table.by_inode(ino).map_or("closed by peer (no TCP entry)", |s| state_name(&s.state));
        *by_state.entry(state.to_string()).or_default() += 1;
        if extra.len() < 10 {
            extra.push(json!({ "fd": e.fd, "target": e.target, "tcp_state": state }));
        }
    }
    let leaked: usize = by_state.values().sum();
    let close_wait = by_state.get("CLOSE_WAIT").copied().unwrap_or(0);
    let fb = format!(
        "After {clients} clients connected and disconnected, the server process (pid {pid}) \
         still holds {leaked} socket descriptor(s) more than at startup ({close_wait} in \
         CLOSE_WAIT: the client closed its end, the server never closed its own). Every \
         accepted connection must be closed once: a process-based server's parent must close \
         connfd right after fork (the child has its own copy); a thread must close its connfd \
         before it returns; an event loop must close a client when it reads EOF. A leak like \
         this runs the server out of descriptors."
    );
    Outcome::fail(
        0.0,
        fb,
        json!({
            "clients": clients,
            "baseline_sockets": baseline.len(),
            "sockets_after": socket_fds(pid),
            "leaked_by_tcp_state": by_state,
            "leaked_examples": extra,
            "waited_s": t.grace.as_secs_f64(),
        }),
    )
}
