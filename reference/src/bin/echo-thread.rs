//! echo-thread: a thread-based concurrent echo server (the lecture's `echoserv.c`).
//!
//! Like the process-based server, but each client gets a peer thread instead of a child
//! process: cheaper to create, and every thread shares one address space and descriptor table.

use echograde_reference::{block_stop_signals, echo, exit_on_stop_signal, port_arg, start};
use std::thread;
use std::time::Duration;

/// Each peer thread needs little stack (`echo` uses an 8 KiB buffer). Rust's default of 2 MiB
/// per thread would reserve 20 GiB of address space for 10,000 clients; 64 KiB reserves 640 MiB.
const STACK_SIZE: usize = 64 * 1024;

fn main() {
    let port = port_arg("usage: echo-thread <port>");
    // Before any thread exists, so that every thread inherits SIGINT/SIGTERM blocked and only
    // the signal thread receives them (via sigwait), then exits the process with status 0.
    let stop = block_stop_signals();
    exit_on_stop_signal(stop);
    let listener = start(port);

    // `incoming()` calls accept, which std retries on EINTR.
    for connfd in listener.incoming() {
        let connfd = match connfd {
            Ok(connfd) => connfd,
            Err(_) => {
                // e.g. EMFILE: the client stays queued; pause rather than spin, then retry.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        // `move` hands the thread ownership of `connfd` itself. The C version must malloc a
        // copy because passing `&connfd` lets the next accept overwrite it before the thread
        // reads it (the lecture's race); here the main thread no longer has `connfd` to
        // overwrite, and the compiler rejects any attempt to lend the thread a borrowed one.
        // The thread closes the socket when `connfd` is dropped, at the end of the closure.
        let spawned = thread::Builder::new()
            .stack_size(STACK_SIZE)
            .spawn(move || {
                let _ = echo(&connfd);
            });
        // Dropping the JoinHandle detaches the thread (pthread_detach): nobody joins it, and its
        // resources are reclaimed automatically when it ends. If the spawn failed (out of
        // memory or threads), the closure was dropped unrun, and `connfd` with it: closed.
        drop(spawned);
    }
}
