//! Driving many sessions at once with one poll loop.

use super::session::{Phase, Session};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

/// When a run gives up.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// Stop when no session made any progress for this long (a stuck server).
    pub idle: Duration,
    /// Stop after this long in all.
    pub overall: Duration,
}

impl RunLimits {
    pub fn both(d: Duration) -> RunLimits {
        RunLimits {
            idle: d,
            overall: d,
        }
    }
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Every session's script finished.
    AllDone,
    /// The caller's condition said stop.
    Stopped,
    /// No progress for `idle`.
    Idle,
    /// `overall` passed.
    Overall,
    /// The running check reached its bound (see [`crate::timing`]).
    Bound,
    /// The grader's own `poll` failed: recorded in [`crate::fault`], so the check's verdict
    /// becomes `error` (never a `fail` the server did not earn).
    GraderFailed,
}

#[cfg(not(test))]
use poll as poll_hook;

/// In unit tests, `poll` can be made to fail, to show what a failure of the grader's own does.
#[cfg(test)]
fn poll_hook(fds: &mut [PollFd], timeout: PollTimeout) -> nix::Result<nix::libc::c_int> {
    if FAIL_POLL.with(|f| f.get()) {
        return Err(nix::errno::Errno::ENOMEM);
    }
    poll(fds, timeout)
}

#[cfg(test)]
thread_local! {
    static FAIL_POLL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Connects paced to the server's listen queue (see [`Swarm::start_connects`]).
#[derive(Debug, Clone, Copy)]
struct Pace {
    port: u16,
    backlog: usize,
}

/// A set of client sessions against one server.
pub struct Swarm {
    pub addr: SocketAddr,
    pub sessions: Vec<Session>,
    buf: Vec<u8>,
    /// The listen queue, once looked up (`Some(None)`: no sock_diag, connects unpaced).
    pace: Option<Option<Pace>>,
}

impl Swarm {
    pub fn new(addr: SocketAddr) -> Swarm {
        Swarm {
            addr,
            sessions: Vec::new(),
            buf: vec![0u8; 64 * 1024],
            pace: None,
        }
    }

    /// Start the connects that may start now. Returns whether any did.
    ///
    /// Connects start only while the server's listen queue has room for them: connections
    /// waiting to be accepted plus connects under way stay within its backlog (read once, by
    /// sock_diag). A burst larger than the queue would otherwise have its SYNs dropped by the
    /// kernel, and those clients would wait in SYN retransmission (1 s, 3 s, 7 s...) whatever
    /// the server does: a small `listen(fd, 5)` is not a concurrency bug, and no check may
    /// mistake it for one. With a backlog at least the number of sessions (1024 is usual),
    /// every connect starts at once, as if unpaced.
    fn start_connects(&mut self, now: Instant) -> bool {
        let waiting = self
            .sessions
            .iter()
            .filter(|s| s.phase == Phase::NotStarted)
            .count();
        if waiting == 0 {
            return false;
        }
        if waiting > 1 && self.pace.is_none() {
            let port = self.addr.port();
            self.pace = Some(crate::inspect::listen::backlog(port).map(|b| Pace {
                port,
                backlog: (b as usize).max(1),
            }));
        }
        let room = match self.pace.flatten() {
            Some(p) if p.backlog < self.sessions.len() => {
                let connecting = self
                    .sessions
                    .iter()
                    .filter(|s| s.phase == Phase::Connecting)
                    .count();
                let queued = crate::inspect::listen::queued(p.port).unwrap_or(0) as usize;
                p.backlog.saturating_sub(connecting + queued)
            }
            _ => waiting,
        };
        let mut started = 0;
        for s in self
            .sessions
            .iter_mut()
            .filter(|s| s.phase == Phase::NotStarted)
            .take(room)
        {
            s.start_connect(&self.addr, now);
            started += 1;
        }
        started > 0
    }

    /// Add a session; it connects at the next `run`.
    pub fn add(&mut self, s: Session) -> usize {
        self.sessions.push(s);
        self.sessions.len() - 1
    }

    /// Drive every session until all scripts are done, `stop` returns true (it is asked after
    /// every turn and may change sessions, e.g. stop a stream), a limit passes, or the running
    /// check reaches its bound. Sessions still waiting at the end keep their connection and can
    /// go on in a later `run`.
    pub fn run(
        &mut self,
        limits: RunLimits,
        mut stop: impl FnMut(&mut [Session]) -> bool,
    ) -> RunEnd {
        let start = Instant::now();
        let bound = crate::timing::check_time_left().map(|left| start + left);
        let mut last_progress = start;
        let end = loop {
            let now = Instant::now();
            if self.start_connects(now) {
                last_progress = now;
            }
            if stop(&mut self.sessions) || crate::interrupt::requested() {
                break RunEnd::Stopped;
            }
            if self.sessions.iter().all(|s| s.script_done()) {
                break RunEnd::AllDone;
            }
            if now - last_progress >= limits.idle {
                break RunEnd::Idle;
            }
            if now - start >= limits.overall {
                break RunEnd::Overall;
            }
            if bound.is_some_and(|b| now >= b) {
                break RunEnd::Bound;
            }
            let wait = (limits.idle - (now - last_progress))
                .min(limits.overall - (now - start))
                .min(bound.map_or(Duration::MAX, |b| b - now))
                .min(Duration::from_millis(20));
            match self.turn(wait) {
                Ok(true) => last_progress = Instant::now(),
                Ok(false) => {}
                Err(e) => {
                    crate::fault::record(format!("the client engine's poll() failed: {e}"));
                    break RunEnd::GraderFailed;
                }
            }
        };
        end
    }

    /// One poll and the I/O it allows. Returns whether anything progressed; `Err` when poll
    /// itself failed (the grader's failure, not the server's).
    fn turn(&mut self, wait: Duration) -> Result<bool, nix::errno::Errno> {
        let mut idx = Vec::with_capacity(self.sessions.len());
        let mut raw = Vec::with_capacity(self.sessions.len());
        for (i, s) in self.sessions.iter().enumerate() {
            let Some(sock) = &s.sock else { continue };
            let mut ev = PollFlags::empty();
            if s.wants_read() {
                ev |= PollFlags::POLLIN;
            }
            if s.wants_write() {
                ev |= PollFlags::POLLOUT;
            }
            if ev.is_empty() {
                continue;
            }
            idx.push(i);
            raw.push((sock.as_raw_fd(), ev));
        }
        if raw.is_empty() {
            // Nothing to wait on (all held or done): let time pass for the caller's condition.
            std::thread::sleep(wait.min(Duration::from_millis(5)));
            return Ok(false);
        }
        // SAFETY: each fd belongs to a socket owned by `self.sessions`, alive for this call.
        let mut fds: Vec<PollFd> = raw
            .iter()
            .map(|(fd, ev)| PollFd::new(unsafe { BorrowedFd::borrow_raw(*fd) }, *ev))
            .collect();
        let ms = wait.as_millis().clamp(1, u16::MAX as u128) as u16;
        match poll_hook(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(false),
            Err(e) => return Err(e),
        }
        let revents: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        let now = Instant::now();
        let mut progressed = false;
        for (k, &i) in idx.iter().enumerate() {
            let ev = revents[k];
            if ev.is_empty() {
                continue;
            }
            let s = &mut self.sessions[i];
            if s.phase == Phase::Connecting {
                if ev.intersects(PollFlags::POLLOUT | PollFlags::POLLERR | PollFlags::POLLHUP) {
                    progressed |= s.on_connect_ready(now);
                }
                continue;
            }
            if ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                progressed |= s.on_readable(&mut self.buf, now);
            }
            if s.sock.is_some() && ev.intersects(PollFlags::POLLOUT) {
                progressed |= s.on_writable(now);
            }
        }
        Ok(progressed)
    }

    /// Close every connection (held ones too).
    pub fn close_all(&mut self) {
        for s in &mut self.sessions {
            s.close();
        }
    }

    pub fn count(&self, f: impl Fn(&Session) -> bool) -> usize {
        self.sessions.iter().filter(|s| f(s)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Step;

    /// A listener that accepts nothing: the client's connect completes in the kernel and its
    /// read then waits, so the swarm polls.
    #[test]
    fn a_failed_poll_is_the_graders_fault_not_an_idle_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut swarm = Swarm::new(listener.local_addr().unwrap());
        swarm.add(Session::new(
            "c",
            vec![Step::Send(b"hi\n".to_vec()), Step::Expect],
        ));
        FAIL_POLL.with(|f| f.set(true));
        let end = swarm.run(RunLimits::both(Duration::from_secs(2)), |_| false);
        FAIL_POLL.with(|f| f.set(false));
        assert_eq!(end, RunEnd::GraderFailed);
        let fault = crate::fault::take().expect("the fault is recorded");
        assert!(fault.contains("poll"), "{fault}");
    }
}
