//! Pieces several checks share: a fresh probe client, plain-words descriptions of what went
//! wrong with a client, waiting on a /proc condition, and the server's children.

use crate::client::{payload, show_bytes, RunLimits, Session, SessionEnd, Step, Swarm};
use crate::inspect::listen::ListenDrops;
use crate::inspect::{fd_table, Pid, ProcInfo, ProcTable};
use crate::supervise::Server;
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};

/// A fresh client sends one tagged line and must be answered within `deadline`. It is judged
/// on replies (see [`Session::judging_replies`]): whether the bytes are an echo is echo.basic's
/// business; `ok()` still tells an exact echo.
pub fn probe(srv: &Server, rng: &mut ChaCha8Rng, label: &str, deadline: Duration) -> Session {
    let mut swarm = Swarm::new(srv.addr());
    swarm.add(
        Session::new(
            label,
            vec![
                Step::Send(payload::tagged_line(rng, label)),
                Step::Expect,
                Step::Close,
            ],
        )
        .judging_replies(),
    );
    swarm.run(RunLimits::both(deadline), |_| false);
    swarm.sessions.pop().expect("one session")
}

/// Why a sequence of clients stopped early.
#[derive(Debug)]
pub struct Unserved {
    /// Clients served before it stopped.
    pub served: u32,
    /// What went wrong, in words.
    pub why: String,
}

/// Clients one after another, each sending a line and waiting for its answer.
pub fn sequential_clients(
    srv: &Server,
    rng: &mut ChaCha8Rng,
    prefix: &str,
    n: u32,
    deadline: Duration,
    budget: Duration,
) -> Result<u32, Unserved> {
    clients_in_waves(srv, rng, prefix, n, 1, deadline, budget)
}

/// `n` short clients, `at_once` at a time, each sending a line, waiting for its answer and
/// closing. Stops at the first client not served (a stuck server would otherwise cost a
/// deadline per client): that is `Err`. When `budget` runs out first (a slow but working
/// server), it returns how many were served: the caller judges from what it measured.
pub fn clients_in_waves(
    srv: &Server,
    rng: &mut ChaCha8Rng,
    prefix: &str,
    n: u32,
    at_once: u32,
    deadline: Duration,
    budget: Duration,
) -> Result<u32, Unserved> {
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        if crate::timing::check_bound_reached() {
            // The check's own time is up: it judges from what it measured.
            break;
        }
        let wave = at_once.max(1).min(n - done);
        let mut swarm = Swarm::new(srv.addr());
        for i in done..done + wave {
            let label = format!("{prefix}{i}");
            let line = payload::tagged_line(rng, &label);
            swarm.add(
                Session::new(label, vec![Step::Send(line), Step::Expect, Step::Close])
                    .judging_replies(),
            );
        }
        swarm.run(RunLimits::both(deadline), |_| false);
        if let Some(s) = swarm.sessions.iter().find(|s| !s.served()) {
            return Err(Unserved {
                served: done + swarm.count(|s| s.served()) as u32,
                why: format!("client {} {}", s.label, describe(s, deadline)),
            });
        }
        done += wave;
        if start.elapsed() > budget || crate::interrupt::requested() {
            break;
        }
    }
    Ok(done)
}

/// The verdict for a check whose workload could not run because the server stopped serving.
pub fn workload_failed(srv: &mut Server, u: &Unserved, what: &str) -> super::Outcome {
    let mut fb = format!(
        "Not judged: {what} could not be measured, because the server stopped answering after \
         {} client(s): {}.",
        u.served, u.why
    );
    if let Some(d) = death_note(srv) {
        fb.push(' ');
        fb.push_str(&d);
    }
    super::Outcome::fail(
        0.0,
        fb,
        serde_json::json!({ "served_before_failure": u.served }),
    )
}

/// What happened to a client that did not get its echo, as a verb phrase that follows the
/// client's name ("client B {describe}"). `waited` is the deadline it had; when the check's
/// bound cut the wait short, the time it really waited is told instead.
pub fn describe(s: &Session, waited: Duration) -> String {
    let waited = s
        .expect_since
        .or(s.started)
        .map_or(waited, |since| waited.min(since.elapsed()));
    if let Some(m) = &s.mismatch {
        let what = if m.expected.is_empty() {
            format!(
                "got {} extra byte(s) after its whole echo",
                m.got.len().max(1)
            )
        } else {
            format!("got a wrong byte at offset {} of its echo", m.offset)
        };
        return format!(
            "{what}: expected \"{}\", got \"{}\"",
            show_bytes(&m.expected, 40),
            show_bytes(&m.got, 40)
        );
    }
    let got = format!("{} of {} bytes came back", s.echoed, s.sent);
    match &s.end {
        Some(SessionEnd::ConnectFailed(e)) => format!("could not connect: {e}"),
        Some(SessionEnd::ClosedEarly) => {
            format!("had its connection closed by the server before its echo was complete ({got})")
        }
        Some(SessionEnd::Reset) => format!("had its connection reset by the server ({got})"),
        Some(SessionEnd::Error(e)) => format!("hit a socket error: {e} ({got})"),
        Some(SessionEnd::Stalled) | None => {
            if s.started.is_none() {
                "never got to connect: the server's listen queue stayed full (the server \
                 accepted no more connections)"
                    .into()
            } else if s.connected_at.is_none() {
                format!(
                    "was never even accepted by the kernel within {:.1} s",
                    waited.as_secs_f64()
                )
            } else {
                format!(
                    "waited {:.1} s and got no complete echo ({got})",
                    waited.as_secs_f64()
                )
            }
        }
        Some(SessionEnd::Done) => "was served".into(),
    }
}

/// Poll a /proc condition every few milliseconds until it holds or `deadline` passes.
/// Returns how long it took, or `None` on timeout. (This is observation of kernel state with
/// a bound, not a sleep standing in for synchronisation: it returns as soon as the state is
/// reached.)
pub fn wait_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= deadline
            || crate::interrupt::requested()
            || crate::timing::check_bound_reached()
        {
            return None;
        }
        std::thread::sleep(Duration::from_millis(4));
    }
}

/// The server's processes other than the listening one (its children, grandchildren, and
/// orphans the grader adopted), zombies included.
pub fn other_processes(srv: &Server) -> Vec<ProcInfo> {
    let table = ProcTable::scan();
    table
        .tree(srv.pid, srv.pid, std::process::id() as Pid, &[])
        .into_iter()
        .filter(|p| *p != srv.main_pid && *p != srv.pid)
        .filter_map(|p| table.get(p).cloned())
        .collect()
}

/// Direct children of the listening process.
pub fn children(srv: &Server) -> Vec<ProcInfo> {
    ProcTable::scan()
        .children_of(srv.main_pid)
        .into_iter()
        .cloned()
        .collect()
}

/// Socket descriptors the listening process holds.
pub fn socket_fds(pid: Pid) -> usize {
    fd_table(pid)
        .iter()
        .filter(|e| e.socket_inode.is_some())
        .count()
}

/// Connected sockets on `port` (the server's ends of client connections) that `pid` holds.
pub fn connections_held(pid: Pid, port: u16) -> usize {
    let table = crate::inspect::SocketTable::read();
    fd_table(pid)
        .iter()
        .filter_map(|e| table.by_inode(e.socket_inode?))
        .filter(|s| s.local_port == port && s.remote_port != 0)
        .count()
}

/// "1 client" / "3 clients".
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Which of glibc's heap checks stopped the server, from its last words on stderr (glibc
/// prints the check's message before it aborts), as a sentence for feedback.
pub fn heap_check_note(stderr: &str) -> Option<String> {
    let which = [
        (
            "double free detected in tcache",
            "its tcache double-free check: the same block was freed twice",
        ),
        (
            "double free or corruption",
            "its double-free check: the same block was freed twice, or the heap was overwritten",
        ),
        (
            "free(): invalid pointer",
            "its pointer check: free was given a pointer malloc never returned",
        ),
        (
            "corrupted",
            "its heap consistency checks: memory outside a block was overwritten",
        ),
    ];
    let (_, what) = which.iter().find(|(msg, _)| stderr.contains(msg))?;
    Some(format!(
        "glibc's heap checks stopped it ({what}). The grader runs every server with \
         GLIBC_TUNABLES={}, so this misuse aborts the same way in every run.",
        super::HEAP_CHECKS
    ))
}

/// A note for feedback when the listening process is gone.
pub fn death_note(srv: &mut Server) -> Option<String> {
    srv.main_exit()
        .map(|e| format!("The server process {e} during this check."))
}

/// For a check that needs a true echo (a client must get back exactly its own bytes): when
/// the model probe saw the server answer with other bytes, the check does not judge, and says
/// so rather than invent a cause.
pub fn needs_echo(cx: &super::Cx) -> Option<super::Outcome> {
    (cx.model.replies == super::Replies::NotEcho).then(|| {
        super::Outcome::fail(
            0.0,
            "Not judged: the server does not echo (its replies are not the bytes it was sent; \
             see echo.basic), and this check needs each client's own bytes back to tell \
             clients apart.",
            serde_json::json!({ "judged": false, "replies": super::Replies::NotEcho.as_str() }),
        )
    })
}

/// For a check that judges how the server serves its clients: when the model probe's clients
/// got no byte back at all, there is no service to judge, and the check says so (once, without
/// waiting out its own deadlines) rather than blame a concurrency bug.
pub fn needs_replies(cx: &super::Cx) -> Option<super::Outcome> {
    (cx.model.replies == super::Replies::None).then(|| {
        super::Outcome::fail(
            0.0,
            format!(
                "Not judged: the server sent nothing back to any client (the {} clients of the \
                 model probe connected, sent a line and got no byte back in {:.1} s; see \
                 echo.basic), so there is no service for this check to judge.",
                super::model::PROBE_CLIENTS,
                cx.timing.serve.as_secs_f64()
            ),
            serde_json::json!({ "judged": false, "replies": super::Replies::None.as_str() }),
        )
    })
}

/// The server's listen queue, as a burst of connects meets it: its backlog (sock_diag) and
/// the kernel's listen-overflow counters around the burst.
pub struct ListenNote {
    backlog: Option<u32>,
    burst: u32,
    drops_before: Option<ListenDrops>,
}

impl ListenNote {
    pub fn read(port: u16, burst: u32) -> ListenNote {
        ListenNote {
            backlog: crate::inspect::listen::backlog(port),
            burst,
            drops_before: ListenDrops::read(),
        }
    }

    /// Whether the backlog is smaller than the burst (so connects are paced to it).
    pub fn small(&self) -> bool {
        self.backlog.is_some_and(|b| b < self.burst)
    }

    /// A sentence for the feedback when the backlog is small.
    pub fn note(&self) -> Option<String> {
        let b = self.backlog.filter(|_| self.small())?;
        Some(format!(
            "Its listen backlog is {b} (listen(fd, {b})), smaller than this burst of {}: the \
             grader connected the clients in waves its queue could take, so the small backlog \
             itself cost nothing here (with a backlog such as 1024, a real burst gets through \
             at once).",
            self.burst
        ))
    }

    pub fn evidence(&self) -> serde_json::Value {
        let since = self
            .drops_before
            .zip(ListenDrops::read())
            .map(|(b, a)| b.since(a));
        serde_json::json!({
            "backlog": self.backlog,
            "paced": self.small(),
            "listen_overflows_during_check": since.map(|d| d.overflows),
            "listen_drops_during_check": since.map(|d| d.drops),
        })
    }
}
