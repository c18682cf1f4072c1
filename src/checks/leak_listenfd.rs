//! `leak.listenfd`: while a client is connected, no child process holds the listening socket.
//! A forked child gets copies of all the parent's descriptors; one that keeps listenfd holds a
//! socket it never uses (and keeps the port bound if the parent dies). Every process of the
//! tree is looked at (grandchildren, daemons), and every thread with a table of its own.

use super::{common::*, Cx, Outcome};
use crate::client::{payload, RunLimits, Session, Step, Swarm};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const TITLE: &str = "Children close the listening socket";

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The longest this check may wait, its deadlines added up. Start, then the one client.
pub fn bound(_p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + t.serve
}

pub fn run(cx: &mut Cx, _p: &Params) -> Outcome {
    if let Some(o) = needs_replies(cx) {
        return o;
    }
    let t = cx.timing;
    let mut rng = cx.rng.clone();
    let line = payload::tagged_line(&mut rng, "client");
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    let mut swarm = Swarm::new(srv.addr());
    swarm.add(Session::new("client", vec![Step::Send(line), Step::Expect]).holding().judging_replies());
    swarm.run(RunLimits::both(t.serve), |_| false);
    if !swarm.sessions[0].served() {
        return Outcome::fail(
            0.0,
            format!("Not judged: the client was not served, so no child could be inspected: it {}.", describe(&swarm.sessions[0], t.serve)),
            json!({}),
        );
    }
    // The client has its answer, so whatever serves it exists now; the child closes listenfd
    // before it serves, so a child holding it now keeps it.
    let others: Vec<_> = other_processes(srv).into_iter().filter(|p| !p.is_zombie()).collect();
    if others.is_empty() {
        return Outcome::pass(
            "The server forks no child processes, so no child can hold the listening socket.",
            json!({ "child_processes": 0 }),
        );
    }
    let mut holders = Vec::new();
    for h in super::tree::tree_tables(srv).iter().filter(|h| !h.main) {
        for e in &h.fds {
            if e.socket_inode.is_some_and(|i| srv.listen_inodes.contains(&i)) {
                holders.push(json!({ "pid": h.pid, "tid": h.tid, "comm": h.comm, "fd": e.fd }));
            }
        }
    }
    let ev = json!({
        "child_processes": others.len(),
        "listening_socket_inodes": srv.listen_inodes,
        "children_holding_it": holders,
    });
    if holders.is_empty() {
        return Outcome::pass(
            format!("None of the server's {} child process(es) holds the listening socket.", others.len()),
            ev,
        );
    }
    Outcome::fail(
        0.0,
        format!(
            "While a client was being served, {} child process(es) still held the listening \
             socket (e.g. pid {}, fd {}). After fork the child has its own copy of listenfd and \
             never accepts on it: close(listenfd) first thing in the child (and the parent \
             closes connfd).",
            holders.len(),
            holders[0]["pid"],
            holders[0]["fd"]
        ),
        ev,
    )
}
