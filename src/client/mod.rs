//! The grader's TCP clients.
//!
//! Every workload is a set of [`Session`]s — one TCP connection each, with a script of
//! [`Step`]s — driven together by one non-blocking poll loop ([`Swarm`]). One thread can so
//! hold hundreds of simultaneous connections, read while it writes (a 64 KiB line never
//! deadlocks against a server that echoes as it reads), and time each client exactly.
//!
//! A session never waits for EOF from the server (a leaked connfd never sends it): it counts
//! echoed bytes against what it sent, and compares them byte by byte as they arrive.

pub mod payload;
mod session;
mod swarm;

pub use session::{Mismatch, Session, SessionEnd, Step};
pub use swarm::{RunEnd, RunLimits, Swarm};

use std::net::SocketAddr;
use std::time::Duration;

/// One client: connect, send `payload`, wait for its echo; return the finished session.
pub fn echo_once(addr: SocketAddr, label: &str, payload: Vec<u8>, deadline: Duration) -> Session {
    let mut swarm = Swarm::new(addr);
    swarm.add(Session::new(label, vec![Step::Send(payload), Step::Expect, Step::Close]));
    swarm.run(RunLimits::both(deadline), |_| false);
    swarm.sessions.pop().expect("one session")
}

/// Escape bytes for a report: printable ASCII as is, everything else as `\xNN`, cut to `max`.
pub fn show_bytes(b: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &c in b.iter().take(max) {
        match c {
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    if b.len() > max {
        s.push_str(&format!("… ({} bytes)", b.len()));
    }
    s
}
