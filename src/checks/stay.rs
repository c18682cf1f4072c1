//! `concurrency.stay`: a client that stays connected is still served after others come and go
//! and their descriptors are reused.
//!
//! B connects and is served, then A; both stay. B leaves, and once the server has closed B's
//! descriptor, C connects (the kernel gives the lowest free descriptor: B's), is served and
//! leaves; D connects the same way and stays. Then A, which has held a descriptor above B's
//! all along, sends again and must be served. An event loop whose bookkeeping follows the
//! newest descriptor or slot rather than the highest in use (select's maxfd set to each new
//! connfd, a pool's maxi or poll's count of entries cut back when a client leaves) stops
//! watching A once a descriptor below A's is reused: A then waits forever while newer clients
//! are served. Which descriptor each client got is read from the server's fd tables; when A is
//! not served, its server end's receive queue shows whether its bytes reached the server
//! unread, and a thread blocked in select shows the nfds it watches.

use super::tree::tree_tables;
use super::{common::*, Cx, Outcome};
use crate::client::{payload, RunLimits, Session, Step, Swarm};
use crate::inspect::{tasks::task_snapshots, Pid, SocketTable};
use crate::supervise::Server;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const TITLE: &str = "A client that stays is still served after others come and go (descriptor reuse)";

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Where the server holds a client's connection.
#[derive(Debug, Clone, Copy, Default)]
struct ServerEnd {
    pid: Option<Pid>,
    fd: Option<i32>,
    inode: Option<u64>,
}

impl ServerEnd {
    fn json(&self) -> Value {
        json!({ "pid": self.pid, "fd": self.fd })
    }
}

/// The server's end of a connected client: its socket, and the process and descriptor that
/// hold it (the listening process first, if it holds it too).
fn server_end(srv: &Server, s: &Session) -> ServerEnd {
    let Some(port) = s.local_port else { return ServerEnd::default() };
    let Some(inode) = SocketTable::read().server_side_of(srv.port, port).map(|x| x.inode) else {
        return ServerEnd::default();
    };
    for h in tree_tables(srv) {
        if let Some(e) = h.fds.iter().find(|e| e.socket_inode == Some(inode)) {
            return ServerEnd { pid: Some(h.pid), fd: Some(e.fd), inode: Some(inode) };
        }
    }
    ServerEnd { inode: Some(inode), ..ServerEnd::default() }
}

/// Each client's server end, by client.
fn descriptors(ends: &[(&str, ServerEnd)]) -> Value {
    Value::Object(ends.iter().map(|(n, e)| (n.to_string(), e.json())).collect())
}

/// Whether any process of the server still holds this socket.
fn held(srv: &Server, inode: u64) -> bool {
    tree_tables(srv).iter().any(|h| h.fds.iter().any(|e| e.socket_inode == Some(inode)))
}

/// The longest this check may wait, its deadlines added up: start, then B, A, C and D each
/// served (serve), B's and C's descriptors closed (serve each), A's line (serve), and D's line
/// when A is not served (serve).
pub fn bound(_p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + t.serve * 8
}

pub fn run(cx: &mut Cx, _p: &Params) -> Outcome {
    if let Some(o) = needs_replies(cx) {
        return o;
    }
    let t = cx.timing;
    let mut rng = cx.rng.clone();
    let mut line = |label: &str| payload::tagged_line(&mut rng, label);
    let (lb, la, lc, ld, la2, ld2) = (line("B"), line("A"), line("C"), line("D"), line("A2"), line("D2"));
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    let mut swarm = Swarm::new(srv.addr());
    let mut ends: Vec<(&str, ServerEnd)> = Vec::new();
    let arrive = |swarm: &mut Swarm, srv: &mut Server, name: &'static str, l: Vec<u8>| arrive(swarm, srv, t, name, l);
    // A client leaves; the server closes its end (bounded wait): how long that took.
    let leave = |swarm: &mut Swarm, srv: &Server, i: usize, end: ServerEnd| -> Option<u64> {
        swarm.sessions[i].close();
        let inode = end.inode?;
        wait_until(t.serve, || !held(srv, inode)).map(|d| d.as_millis() as u64)
    };
    // The descriptors seen so far, for a verdict reached early.
    let seen = |mut o: Outcome, ends: &[(&str, ServerEnd)]| {
        o.evidence.insert("descriptors".into(), descriptors(ends));
        o
    };
    let (b, b_end) = match arrive(&mut swarm, srv, "B", lb) {
        Ok(x) => x,
        Err(o) => return o,
    };
    ends.push(("B", b_end));
    let (a, a_end) = match arrive(&mut swarm, srv, "A", la) {
        Ok(x) => x,
        Err(o) => return seen(o, &ends),
    };
    ends.push(("A", a_end));
    let b_closed_ms = leave(&mut swarm, srv, b, b_end);
    let (c, c_end) = match arrive(&mut swarm, srv, "C", lc) {
        Ok(x) => x,
        Err(o) => return seen(o, &ends),
    };
    ends.push(("C", c_end));
    let c_closed_ms = leave(&mut swarm, srv, c, c_end);
    let (d, d_end) = match arrive(&mut swarm, srv, "D", ld) {
        Ok(x) => x,
        Err(o) => return seen(o, &ends),
    };
    ends.push(("D", d_end));
    // Reused: the same descriptor of the same process (a process server gives each client a
    // process of its own; the number repeats there without any reuse).
    let same = |x: ServerEnd, y: ServerEnd| x.fd.is_some() && x.fd == y.fd && x.pid == y.pid;
    let c_reused = same(c_end, b_end);
    let d_reused = same(d_end, c_end);
    let ev = json!({
        "descriptors": descriptors(&ends),
        "c_got_b_descriptor": c_reused,
        "d_got_c_descriptor": d_reused,
        "b_closed_by_server_ms": b_closed_ms,
        "c_closed_by_server_ms": c_closed_ms,
    });
    let reuse = reuse_words(c_reused, d_reused, b_end, c_end, &ends);

    revisit_a(&mut swarm, srv, t, (a, a_end, la2), (d, ld2), reuse, ev)
}

/// A, which stayed all along, sends again: served is a pass; if not, what the server does with
/// A (its bytes unread, the nfds select watches) and whether D, which came after, is served.
fn revisit_a(
    swarm: &mut Swarm,
    srv: &mut Server,
    t: crate::timing::Timing,
    (a, a_end, la2): (usize, ServerEnd, Vec<u8>),
    (d, ld2): (usize, Vec<u8>),
    reuse: String,
    mut ev: Value,
) -> Outcome {
    swarm.sessions[a].then(vec![Step::Send(la2), Step::Expect]);
    swarm.run(RunLimits::both(t.serve), |s| s[a].script_done());
    let sa = &swarm.sessions[a];
    if sa.served() {
        let ms = sa.expect_waits.last().map_or(0, |d| d.as_millis() as u64);
        ev["a_latency_ms"] = json!(ms);
        swarm.close_all();
        return Outcome::pass(
            format!("A was served again ({ms} ms) after B left and C and D came ({reuse})."),
            ev,
        );
    }
    let a_what = describe(sa, t.serve);
    // What the server does with A: its bytes unread in A's receive queue, the nfds a thread
    // waits on in select.
    let unread = a_end.inode.and_then(|i| SocketTable::read().by_inode(i).map(|s| s.rx_queue as u64));
    let select_nfds: Option<u64> = task_snapshots(srv.main_pid)
        .iter()
        .find(|t| matches!(t.syscall.as_str(), "select" | "pselect6"))
        .and_then(|t| t.arg0);
    // Is anyone else still served? D sends a line.
    let d_served = swarm.sessions[d].then(vec![Step::Send(ld2), Step::Expect]) && {
        swarm.run(RunLimits::both(t.serve), |s| s[d].script_done());
        swarm.sessions[d].served()
    };
    ev["a_unread_bytes_at_server"] = json!(unread);
    ev["select_nfds"] = json!(select_nfds);
    ev["d_served_after"] = json!(d_served);
    let forgotten = Forgotten {
        a_fd: a_end.fd,
        reuse,
        a_what,
        unread,
        select_nfds,
        d_served,
        death: death_note(srv),
    };
    swarm.close_all();
    Outcome::fail(0.0, forgotten.feedback(), ev)
}

/// A new client that sends a line, is served, and stays; its server end is read meanwhile.
fn arrive(
    swarm: &mut Swarm,
    srv: &mut Server,
    t: crate::timing::Timing,
    name: &'static str,
    l: Vec<u8>,
) -> Result<(usize, ServerEnd), Outcome> {
    let i = swarm.add(Session::new(name, vec![Step::Send(l), Step::Expect]).holding().judging_replies());
    swarm.run(RunLimits::both(t.serve), |s| s[i].script_done());
    if !swarm.sessions[i].served() {
        let mut fb = format!("Client {name} {}", describe(&swarm.sessions[i], t.serve));
        fb.push_str(match name {
            "B" => ".",
            "A" => ", while client B stayed connected.",
            _ => ", after client B had left.",
        });
        if let Some(d) = death_note(srv) {
            fb.push(' ');
            fb.push_str(&d);
        }
        return Err(Outcome::fail(0.0, fb, json!({ "unserved_client": name })));
    }
    Ok((i, server_end(srv, &swarm.sessions[i])))
}

/// Which descriptor went to whom, in words.
fn reuse_words(c_reused: bool, d_reused: bool, b_end: ServerEnd, c_end: ServerEnd, ends: &[(&str, ServerEnd)]) -> String {
    match (c_reused, d_reused) {
        (true, true) => format!("B's descriptor {} was given to C and then to D", fd_of(b_end.fd)),
        (true, false) => format!("B's descriptor {} was given to C", fd_of(b_end.fd)),
        (false, true) => format!("C's descriptor {} was given to D", fd_of(c_end.fd)),
        (false, false) => {
            let pids: std::collections::BTreeSet<_> = ends.iter().filter_map(|(_, e)| e.pid).collect();
            if pids.len() == ends.len() {
                "each client was served by a process of its own".to_string()
            } else {
                "no descriptor was seen reused".to_string()
            }
        }
    }
}

fn fd_of(fd: Option<i32>) -> String {
    fd.map_or("unknown".to_string(), |f| f.to_string())
}

/// What was measured when A, which stayed, was not served after others came and went.
#[derive(Debug, Clone)]
pub(crate) struct Forgotten {
    /// A's descriptor in the server.
    pub a_fd: Option<i32>,
    /// Which descriptor went to whom, in words.
    pub reuse: String,
    /// What happened to A's line, in words.
    pub a_what: String,
    /// A's bytes unread in the server's receive queue.
    pub unread: Option<u64>,
    /// The nfds a server thread waits on in select.
    pub select_nfds: Option<u64>,
    /// D, which came after, was served again.
    pub d_served: bool,
    pub death: Option<String>,
}

impl Forgotten {
    /// The feedback: the select/maxi cause is named only on its evidence (A's bytes unread
    /// while D is served, or A's descriptor beyond select's nfds).
    pub(crate) fn feedback(&self) -> String {
        let afd = fd_of(self.a_fd);
        let mut fb = format!(
            "Client A stayed connected (server descriptor {afd}) while B left and C and D came ({}); then A sent a line and it {}.",
            self.reuse, self.a_what
        );
        let unread = self.unread.filter(|n| *n > 0);
        if let Some(n) = unread {
            fb.push_str(&format!(
                " The {n} bytes A sent sit unread in the server's receive queue for descriptor {afd}: the server no longer reads it{}.",
                if self.d_served { ", yet it served D, which sent a line after A" } else { "" }
            ));
        }
        let unwatched = match (self.select_nfds, self.a_fd) {
            (Some(n), Some(f)) if (f as u64) >= n => Some(n),
            _ => None,
        };
        if let Some(n) = unwatched {
            fb.push_str(&format!(
                " The server waits in select with nfds = {n}: descriptor {afd} is not among those it watches."
            ));
        }
        if (unread.is_some() && self.d_served) || unwatched.is_some() {
            fb.push_str(
                " Every connected client must stay in what the loop watches and scans when a lower \
                 descriptor or slot is reused: select's maxfd is the highest descriptor still open \
                 (not the newest one), and a loop over client slots (maxi) or pollfd entries must \
                 reach the highest one in use, not stop where a client just left.",
            );
        }
        if let Some(n) = &self.death {
            fb.push(' ');
            fb.push_str(n);
        }
        fb
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forgotten() -> Forgotten {
        Forgotten {
            a_fd: Some(5),
            reuse: "B's descriptor 4 was given to C".into(),
            a_what: "got no reply in 2.0 s".into(),
            unread: Some(12),
            select_nfds: Some(5),
            d_served: true,
            death: None,
        }
    }

    #[test]
    fn a_stale_maxfd_is_named_on_its_evidence() {
        let fb = forgotten().feedback();
        assert!(fb.contains("The 12 bytes A sent sit unread"), "{fb}");
        assert!(fb.contains("yet it served D"));
        assert!(fb.contains("select with nfds = 5: descriptor 5 is not among"), "{fb}");
        assert!(fb.contains("select's maxfd is the highest descriptor still open"));
    }

    #[test]
    fn no_cause_is_named_without_evidence() {
        let f = Forgotten { unread: Some(0), select_nfds: None, d_served: false, ..forgotten() };
        let fb = f.feedback();
        assert!(!fb.contains("maxfd") && !fb.contains("unread"), "{fb}");
    }
}

