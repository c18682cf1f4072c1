//! Pieces several checks share: a fresh probe client, plain-words descriptions of what went
//! wrong with a client, waiting on a /proc condition, and the server's children.

use crate::client::{self, payload, show_bytes, Session, SessionEnd};
use crate::inspect::{fd_table, Pid, ProcInfo, ProcTable};
use crate::supervise::Server;
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};

/// A fresh client sends one tagged line and must get it back within `deadline`.
pub fn probe(srv: &Server, rng: &mut ChaCha8Rng, label: &str, deadline: Duration) -> Session {
    client::echo_once(
        srv.addr(),
        label,
        payload::tagged_line(rng, label),
        deadline,
    )
}

/// Why a sequence of clients stopped early.
#[derive(Debug)]
pub struct Unserved {
    /// Clients served before it stopped.
    pub served: u32,
    /// What went wrong, in words.
    pub why: String,
}

/// Clients one after another, each sending a line and waiting for its echo. Stops at the first
/// client not served (a stuck server would otherwise cost a deadline per client), when the
/// whole sequence takes longer than `budget` (a server slow enough to need that is not
/// measurable in reasonable time; a correct one needs milliseconds per client), and when the
/// check reaches its bound.
pub fn sequential_clients(
    srv: &Server,
    rng: &mut ChaCha8Rng,
    prefix: &str,
    n: u32,
    deadline: Duration,
    budget: Duration,
) -> Result<u32, Unserved> {
    let start = Instant::now();
    for i in 0..n {
        if crate::timing::check_bound_reached() {
            return Err(Unserved {
                served: i,
                why: format!(
                    "the check reached its time bound after {i} clients one after another ({:.1} s)",
                    start.elapsed().as_secs_f64()
                ),
            });
        }
        let s = probe(srv, rng, &format!("{prefix}{i}"), deadline);
        if !s.ok() {
            return Err(Unserved {
                served: i,
                why: format!("client {} {}", s.label, describe(&s, deadline)),
            });
        }
        if start.elapsed() > budget && i + 1 < n {
            return Err(Unserved {
                served: i + 1,
                why: format!(
                    "{} clients one after another took over {:.0} s (a correct server needs milliseconds each)",
                    i + 1,
                    budget.as_secs_f64()
                ),
            });
        }
    }
    Ok(n)
}

/// The verdict for a check whose workload could not run because the server stopped serving.
pub fn workload_failed(srv: &mut Server, u: &Unserved, what: &str) -> super::Outcome {
    let mut fb = format!(
        "The server stopped serving after {} client(s), so {what} could not be measured: {}.",
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

/// What happened to a client that did not get its echo, in plain words. `waited` is the
/// deadline it had; when the check's bound cut the wait short, the time it really waited is
/// told instead.
pub fn describe(s: &Session, waited: Duration) -> String {
    let waited = s
        .expect_since
        .or(s.started)
        .map_or(waited, |since| waited.min(since.elapsed()));
    if let Some(m) = &s.mismatch {
        return format!(
            "byte {} of its echo was wrong: expected \"{}\", got \"{}\"",
            m.offset,
            show_bytes(&m.expected, 40),
            show_bytes(&m.got, 40)
        );
    }
    let got = format!("{} of {} bytes came back", s.echoed, s.sent);
    match &s.end {
        Some(SessionEnd::ConnectFailed(e)) => format!("could not connect: {e}"),
        Some(SessionEnd::ClosedEarly) => format!("the server closed the connection early ({got})"),
        Some(SessionEnd::Reset) => format!("the server reset the connection ({got})"),
        Some(SessionEnd::Error(e)) => format!("socket error: {e} ({got})"),
        Some(SessionEnd::Stalled) | None => {
            if s.connected_at.is_none() {
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
            || crate::supervise::interrupt::requested()
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

/// "1 client" / "3 clients".
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A note for feedback when the listening process is gone.
pub fn death_note(srv: &mut Server) -> Option<String> {
    srv.main_exit()
        .map(|e| format!("The server process {e} during this check."))
}
