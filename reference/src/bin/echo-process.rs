//! echo-process: a process-based concurrent echo server (the lecture's `echoserverp.c`).
//!
//! The parent only accepts and forks; each child serves one client in its own private address
//! space, so nothing is shared by accident. The costs are the ones the lecture lists: the parent
//! must reap zombie children, and both processes must close the descriptor they do not use.

use echograde_reference::{echo, port_arg, start};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::time::Duration;

/// Reap every child that has exited, so none stays a zombie. Signals are not queued: one
/// SIGCHLD may stand for several exits, hence the loop. Only async-signal-safe work here
/// (no printing: the handler may interrupt a `printf` that holds its lock — deadlock).
extern "C" fn sigchld_handler(_sig: libc::c_int) {
    // waitpid may overwrite errno, which the code we interrupted may be about to read.
    let saved = Errno::last_raw();
    while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break; // children remain, but none has exited yet
        }
    }
    Errno::set_raw(saved);
}

fn main() {
    let port = port_arg("usage: echo-process <port>");
    let stop = echograde_reference::block_stop_signals();
    // SA_RESTART: slow system calls interrupted by SIGCHLD resume by themselves (poll does not;
    // we retry it below). SA_NOCLDSTOP: stopped children are not our business.
    let action = SigAction::new(
        SigHandler::Handler(sigchld_handler),
        SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
        SigSet::empty(),
    );
    // SAFETY: the handler calls only waitpid and reads/writes errno, all async-signal-safe.
    unsafe { sigaction(Signal::SIGCHLD, &action) }.expect("sigaction(SIGCHLD)");

    let listener = start(port);
    // Non-blocking, so a client that disconnects between poll and accept cannot block us.
    listener.set_nonblocking(true).expect("O_NONBLOCK");
    // SIGINT/SIGTERM are blocked; they arrive as data on this descriptor, polled with listenfd.
    let signals = SignalFd::with_flags(&stop, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .expect("signalfd");

    loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue, // a SIGCHLD arrived: just poll again
            Err(e) => panic!("poll: {e}"),
        }
        if fds[1].any() == Some(true) {
            return; // SIGINT/SIGTERM: stop accepting and exit 0
        }
        let connfd = match listener.accept() {
            Ok((connfd, _addr)) => connfd, // Linux: not O_NONBLOCK, unlike the listener
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(_) => {
                // e.g. EMFILE: the client stays queued; pause rather than spin, then retry.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        // SAFETY: this process never starts a thread, so the child is a complete copy of a
        // single-threaded program and may run any code, not only async-signal-safe functions.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                drop(listener); // Child closes its listening socket
                drop(signals); // ...and the parent's signal descriptor
                               // Let SIGINT/SIGTERM act normally again (e.g. Ctrl-C kills the whole group);
                               // after the parent stops, a child still finishes serving its client.
                let _ = stop.thread_unblock();
                let _ = echo(&connfd); // Child services client
                drop(connfd); // Child closes connection with client
                              // SAFETY: _exit is async-signal-safe and takes no pointers. Unlike exit, it runs
                              // no exit-time clean-up inherited from the parent (e.g. flushing copied buffers).
                unsafe { libc::_exit(0) }
            }
            // Parent closes connected socket (important!): otherwise the connection's reference
            // count never reaches 0 and the client never sees EOF when the child closes it.
            // If fork failed, closing it is also all we can do.
            Ok(ForkResult::Parent { .. }) | Err(_) => drop(connfd),
        }
    }
}
