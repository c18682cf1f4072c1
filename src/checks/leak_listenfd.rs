//! `leak.listenfd`: while a client is connected, no child process holds the listening socket.
//! A forked child gets copies of all the parent's descriptors; one that keeps listenfd holds a
//! socket it never uses (and keeps the port bound if the parent dies). Every process of the
//! tree is looked at (grandchildren, daemons), and every thread with a table of its own.

use super::{common::*, Cx, Outcome};
use crate::client::{payload, RunLimits, Session, Step, Swarm};
use crate::inspect::Pid;
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
        return judge(&Seen::Unserved(describe(&swarm.sessions[0], t.serve)));
    }
    // The client has its answer, so whatever serves it exists now; the child closes listenfd
    // before it serves, so a child holding it now keeps it.
    let children = other_processes(srv).into_iter().filter(|p| !p.is_zombie()).count();
    let mut holders = Vec::new();
    if children > 0 {
        for h in super::tree::tree_tables(srv).iter().filter(|h| !h.main) {
            for e in &h.fds {
                if e.socket_inode.is_some_and(|i| srv.listen_inodes.contains(&i)) {
                    holders.push(Holder { pid: h.pid, tid: h.tid, comm: h.comm.clone(), fd: e.fd });
                }
            }
        }
    }
    judge(&Seen::Served { children, listen_inodes: srv.listen_inodes.clone(), holders })
}

/// A process (or thread with a descriptor table of its own) of the server's tree, other than
/// the listening one, that holds the listening socket.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Holder {
    pub pid: Pid,
    pub tid: Option<Pid>,
    pub comm: String,
    pub fd: i32,
}

/// What was seen while the client was connected.
#[derive(Debug, Clone)]
pub(crate) enum Seen {
    /// The client was not served: what happened to it, in words.
    Unserved(String),
    /// The client was served; `children`: the server's live child processes then.
    Served { children: usize, listen_inodes: Vec<u64>, holders: Vec<Holder> },
}

/// The verdict from the server's children and which of them hold the listening socket.
pub(crate) fn judge(seen: &Seen) -> Outcome {
    let (children, listen_inodes, holders) = match seen {
        Seen::Unserved(what) => {
            return Outcome::fail(
                0.0,
                format!("Not judged: the client was not served, so no child could be inspected: it {what}."),
                json!({}),
            )
        }
        Seen::Served { children, listen_inodes, holders } => (*children, listen_inodes, holders),
    };
    if children == 0 {
        return Outcome::pass(
            "The server forks no child processes, so no child can hold the listening socket.",
            json!({ "child_processes": 0 }),
        );
    }
    let ev = json!({
        "child_processes": children,
        "listening_socket_inodes": listen_inodes,
        "children_holding_it": holders,
    });
    let Some(first) = holders.first() else {
        return Outcome::pass(
            format!("None of the server's {children} child process(es) holds the listening socket."),
            ev,
        );
    };
    Outcome::fail(
        0.0,
        format!(
            "While a client was being served, {} child process(es) still held the listening \
             socket (e.g. pid {}, fd {}). After fork the child has its own copy of listenfd and \
             never accepts on it: close(listenfd) first thing in the child (and the parent \
             closes connfd).",
            holders.len(),
            first.pid,
            first.fd
        ),
        ev,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn holder(pid: Pid, fd: i32) -> Holder {
        Holder { pid, tid: None, comm: "server".into(), fd }
    }

    #[test]
    fn a_server_without_children_passes_whatever_else() {
        let o = judge(&Seen::Served { children: 0, listen_inodes: vec![7], holders: vec![] });
        assert_eq!(o.status, Status::Pass);
        assert!(o.feedback.contains("forks no child processes"), "{}", o.feedback);
        assert_eq!(o.evidence["child_processes"], 0);
    }

    #[test]
    fn children_that_closed_listenfd_pass() {
        let o = judge(&Seen::Served { children: 2, listen_inodes: vec![7], holders: vec![] });
        assert_eq!(o.status, Status::Pass);
        assert_eq!(o.feedback, "None of the server's 2 child process(es) holds the listening socket.");
    }

    #[test]
    fn a_child_holding_listenfd_is_named_by_pid_and_fd() {
        let holders = vec![holder(4242, 3), holder(4243, 3)];
        let o = judge(&Seen::Served { children: 2, listen_inodes: vec![7], holders });
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.starts_with("While a client was being served, 2 child process(es)"), "{}", o.feedback);
        assert!(o.feedback.contains("(e.g. pid 4242, fd 3)"), "{}", o.feedback);
        assert!(o.feedback.contains("close(listenfd) first thing in the child"));
        assert_eq!(o.evidence["children_holding_it"][1]["pid"], 4243);
        assert_eq!(o.evidence["children_holding_it"][0]["tid"], serde_json::Value::Null);
    }

    #[test]
    fn an_unserved_client_is_not_judged_and_blames_no_child() {
        let o = judge(&Seen::Unserved("could not connect: refused".into()));
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.starts_with("Not judged:"), "{}", o.feedback);
        assert!(o.feedback.ends_with("it could not connect: refused."));
        assert!(!o.feedback.contains("close(listenfd)"));
    }
}
