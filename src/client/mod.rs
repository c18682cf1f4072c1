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
    swarm.add(Session::new(
        label,
        vec![Step::Send(payload), Step::Expect, Step::Close],
    ));
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
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    if b.len() > max {
        s.push_str(&format!("… ({} bytes)", b.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A one-connection echo server on a thread: echoes until EOF, then closes at once, so the
    /// last echo and the EOF arrive together.
    fn echo_then_close() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut all = Vec::new();
            c.read_to_end(&mut all).unwrap();
            c.write_all(&all).unwrap();
        });
        addr
    }

    #[test]
    fn echo_and_eof_in_one_turn_is_served_not_closed_early() {
        let addr = echo_then_close();
        let mut swarm = Swarm::new(addr);
        swarm.add(Session::new(
            "c",
            vec![
                Step::Send(b"no newline".to_vec()),
                Step::ShutdownWrite,
                Step::Expect,
                Step::Close,
            ],
        ));
        swarm.run(RunLimits::both(Duration::from_secs(10)), |_| false);
        let s = &swarm.sessions[0];
        assert!(s.ok(), "{:?} echoed {}", s.end, s.echoed);
    }

    #[test]
    fn a_server_that_closes_without_echo_is_closed_early() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        // Read the line (so the close is a FIN, not a reset for unread data), answer nothing.
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut b = [0u8; 5];
            c.read_exact(&mut b).unwrap();
        });
        let s = echo_once(addr, "c", b"line\n".to_vec(), Duration::from_secs(10));
        assert_eq!(s.end, Some(SessionEnd::ClosedEarly));
        assert!(!s.ok());
    }
}
