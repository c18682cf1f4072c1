//! echo-event: an event-based concurrent echo server (I/O multiplexing with epoll).
//!
//! One thread, one address space, no locks. The price is that we interleave the logical flows
//! ourselves: every socket is non-blocking, every client keeps its own state between events,
//! and no client may do unbounded work in one turn of the loop, or it would starve the others.

use echograde_reference::{block_stop_signals, port_arg, start};
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;

// epoll tokens. Clients get 2, 3, 4, ... and a number is never reused, so an event still
// queued for a closed client cannot be mistaken for a new client that got the same fd.
const LISTENER: u64 = 0;
const SIGNALS: u64 = 1;
/// At most one read of this size per client per turn: the bound on work per turn.
const READ_CHUNK: usize = 16 * 1024;
/// Backpressure: stop reading a client with this much echo still unsent until it drains, so a
/// client that sends but never reads cannot make us buffer without limit.
const HIGH_WATER: usize = 64 * 1024;
/// At most this many accepts per turn, so a flood of connects cannot starve connected clients.
const ACCEPT_BATCH: usize = 64;

/// The state of one logical flow, kept between events.
struct Client {
    conn: TcpStream,
    unsent: Vec<u8>, // received, not yet echoed: partial lines and partial writes both live here
    eof: bool,       // the client has (half-)closed; we still owe it `unsent`
    watching: EpollFlags,
}

impl Client {
    fn new(conn: TcpStream) -> Self {
        let watching = EpollFlags::EPOLLIN;
        Client {
            conn,
            unsent: Vec::new(),
            eof: false,
            watching,
        }
    }

    /// One turn: one bounded read, then write as much as the kernel takes without blocking.
    /// Returns false when the connection is finished (or broken) and should be closed.
    fn serve(&mut self, buf: &mut [u8]) -> bool {
        if self.wants_input() {
            match self.conn.read(buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.unsent.extend_from_slice(&buf[..n]),
                Err(e) if try_later(&e) => {}
                Err(_) => return false,
            }
        }
        while !self.unsent.is_empty() {
            match self.conn.write(&self.unsent) {
                Ok(0) => return false,
                Ok(n) => drop(self.unsent.drain(..n)), // a partial write keeps the rest
                Err(e) if try_later(&e) => break,
                Err(_) => return false, // e.g. EPIPE/ECONNRESET: the client is gone
            }
        }
        !(self.eof && self.unsent.is_empty()) // half-closed and fully echoed: done
    }

    fn wants_input(&self) -> bool {
        !self.eof && self.unsent.len() < HIGH_WATER
    }

    /// Level-triggered interest: readable while we accept input, writable while we owe output.
    fn interest(&self) -> EpollFlags {
        let mut flags = EpollFlags::empty();
        flags.set(EpollFlags::EPOLLIN, self.wants_input());
        flags.set(EpollFlags::EPOLLOUT, !self.unsent.is_empty());
        flags
    }

    /// Tell epoll what we wait for now, if that changed. False if epoll refuses.
    fn rewatch(&mut self, epoll: &Epoll, token: u64) -> bool {
        let wanted = self.interest();
        if wanted == self.watching {
            return true;
        }
        self.watching = wanted;
        epoll
            .modify(&self.conn, &mut EpollEvent::new(wanted, token))
            .is_ok()
    }
}

/// Nothing to do right now (EAGAIN), or a signal interrupted us (EINTR): level-triggered epoll
/// reports the socket again on a later turn, so "retry" means "wait for the next event".
fn try_later(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
}

fn main() {
    let port = port_arg("usage: echo-event <port>");
    let stop = block_stop_signals();
    let listener = start(port);
    listener.set_nonblocking(true).expect("O_NONBLOCK");
    // SIGINT/SIGTERM become just another event: the signalfd turns readable.
    let signals = SignalFd::with_flags(&stop, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .expect("signalfd");
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).expect("epoll_create");
    let readable = |token| EpollEvent::new(EpollFlags::EPOLLIN, token);
    epoll.add(&listener, readable(LISTENER)).expect("epoll add");
    epoll.add(&signals, readable(SIGNALS)).expect("epoll add");

    let mut clients: HashMap<u64, Client> = HashMap::new();
    let mut next_token = 2;
    let mut events = vec![EpollEvent::empty(); 1024];
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        // "Anything happened?" With more ready sockets than `events` holds, epoll hands out the
        // rest on later turns, in rotation: every ready client gets its turn.
        let ready = match epoll.wait(&mut events, EpollTimeout::NONE) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => panic!("epoll_wait: {e}"),
        };
        for event in &events[..ready] {
            match event.data() {
                SIGNALS => return, // SIGINT/SIGTERM: exit 0; the kernel closes every socket
                LISTENER => {
                    for _ in 0..ACCEPT_BATCH {
                        // Any error (EAGAIN: queue empty; EMFILE: out of descriptors) ends the
                        // batch; a still-pending connection is reported again next turn (at
                        // EMFILE, every turn, until some client leaves and frees a descriptor).
                        let Ok((conn, _)) = listener.accept() else {
                            break;
                        };
                        if conn.set_nonblocking(true).is_err()
                            || epoll.add(&conn, readable(next_token)).is_err()
                        {
                            continue; // dropping `conn` closes it
                        }
                        clients.insert(next_token, Client::new(conn));
                        next_token += 1;
                    }
                }
                token => {
                    let Some(client) = clients.get_mut(&token) else {
                        continue;
                    };
                    if client.serve(&mut buf) && client.rewatch(&epoll, token) {
                        continue;
                    }
                    // Finished or broken: forget it; dropping the TcpStream closes the socket.
                    let _ = epoll.delete(&client.conn);
                    clients.remove(&token);
                }
            }
        }
    }
}
