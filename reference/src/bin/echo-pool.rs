//! echo-pool: a prethreaded echo server. A fixed pool of worker threads takes connected
//! sockets from a bounded buffer (the lecture's `sbuf`) that the main thread fills by accepting.
//!
//! Threads are created once, not per client; the pool size bounds the threads (and memory)
//! the server will ever use. The catch: each worker serves one client until EOF, so at most
//! `--workers` clients are served at a time and later ones wait, connected but unanswered.

use echograde_reference::{
    block_stop_signals, echo, exit_on_stop_signal, parse_port, start, usage,
};
use std::collections::VecDeque;
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

const USAGE: &str = "usage: echo-pool [--workers N] <port>";
/// A worker is busy until its client hangs up, so the pool must be at least as large as the
/// number of clients that stay connected at once: 100 long-lived clients, or a burst of 200
/// simultaneous connects that each wait for their echo. With fewer workers, the extra clients
/// wait until someone else hangs up. 256 covers both with room to spare, and an idle worker
/// costs little (a 64 KiB stack: 16 MiB of address space for the whole pool).
const DEFAULT_WORKERS: usize = 256;
/// Accepted connections waiting for a free worker. When full, the main thread stops accepting
/// and further clients wait in the kernel's listen queue instead.
const SBUF_SLOTS: usize = 64;

/// Bounded producer-consumer buffer: a mutex protects the queue; `slots` wakes a producer when
/// space frees up, `items` wakes a consumer when a connection arrives.
struct Sbuf {
    queue: Mutex<VecDeque<TcpStream>>,
    slots: Condvar,
    items: Condvar,
}

impl Sbuf {
    fn insert(&self, connfd: TcpStream) {
        let queue = self.queue.lock().unwrap();
        let mut queue = self
            .slots
            .wait_while(queue, |q| q.len() == SBUF_SLOTS)
            .unwrap();
        queue.push_back(connfd);
        self.items.notify_one();
    }

    fn remove(&self) -> TcpStream {
        let queue = self.queue.lock().unwrap();
        let mut queue = self.items.wait_while(queue, |q| q.is_empty()).unwrap();
        let connfd = queue.pop_front().expect("not empty");
        self.slots.notify_one();
        connfd
    }
}

fn main() {
    let (workers, port) = parse_args();
    // Before any thread exists: every thread inherits SIGINT/SIGTERM blocked, and only the
    // signal thread receives them (via sigwait), then exits the process with status 0.
    let stop = block_stop_signals();
    exit_on_stop_signal(stop);
    let listener = start(port);

    let sbuf = Arc::new(Sbuf {
        queue: Mutex::new(VecDeque::with_capacity(SBUF_SLOTS)),
        slots: Condvar::new(),
        items: Condvar::new(),
    });
    for _ in 0..workers {
        let sbuf = Arc::clone(&sbuf);
        // Workers are never joined; a small stack is plenty for `echo`'s 8 KiB buffer.
        thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || loop {
                let connfd = sbuf.remove();
                let _ = echo(&connfd); // serve this client until EOF; dropping closes it
            })
            .expect("spawn worker");
    }

    loop {
        match listener.accept() {
            Ok((connfd, _addr)) => sbuf.insert(connfd), // blocks while the buffer is full
            // e.g. EMFILE: the client stays queued; pause rather than spin, then retry.
            // (std already retries accept on EINTR.)
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// `[--workers N] <port>`, in either order.
fn parse_args() -> (usize, u16) {
    let mut args = std::env::args().skip(1);
    let (mut workers, mut port) = (DEFAULT_WORKERS, None);
    while let Some(arg) = args.next() {
        if arg == "--workers" {
            let n = args.next().and_then(|n| n.parse().ok());
            workers = n.filter(|&n| n > 0).unwrap_or_else(|| usage(USAGE));
        } else if port.is_none() {
            port = Some(parse_port(&arg).unwrap_or_else(|| usage(USAGE)));
        } else {
            usage(USAGE);
        }
    }
    (workers, port.unwrap_or_else(|| usage(USAGE)))
}
