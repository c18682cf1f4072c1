//! One client connection and its script.

use crate::timeline::EventKind;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One step of a client's script. Steps run in order; the driver reads whatever the server
/// sends at any time.
#[derive(Debug, Clone)]
pub enum Step {
    /// Write these bytes (in as many writes as the socket takes).
    Send(Vec<u8>),
    /// Wait until everything sent so far has been echoed.
    Expect,
    /// Keep writing this chunk over and over until [`Session::stop_stream`] is called.
    Stream(Vec<u8>),
    /// Wait until the server has sent back at least one byte (of anything).
    AwaitReply,
    /// Half-close: shutdown(SHUT_WR).
    ShutdownWrite,
    /// Close the connection (FIN).
    Close,
    /// Close with SO_LINGER 0 (RST), abandoning anything unread.
    Reset,
}

/// The first byte that came back wrong.
#[derive(Debug, Clone)]
pub struct Mismatch {
    /// Offset in this client's byte stream.
    pub offset: u64,
    /// What was expected from there on (a short excerpt).
    pub expected: Vec<u8>,
    /// What arrived from there on (a short excerpt).
    pub got: Vec<u8>,
}

/// Why a session stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// Script done.
    Done,
    /// The connection could not be made.
    ConnectFailed(String),
    /// The server closed the connection before echoing everything.
    ClosedEarly,
    /// The connection was reset.
    Reset,
    /// Another socket error.
    Error(String),
    /// The run ended (deadline) with this session still waiting.
    Stalled,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Phase {
    NotStarted,
    Connecting,
    Open,
    Finished,
}

/// A client connection and what happened to it.
#[derive(Debug)]
pub struct Session {
    pub label: String,
    steps: VecDeque<Step>,
    pub(crate) sock: Option<Socket>,
    pub(crate) phase: Phase,
    /// The client's local port (to find the server's end of the connection in /proc).
    pub local_port: Option<u16>,
    /// Bytes queued for writing.
    pub(crate) out: Vec<u8>,
    pub(crate) out_off: usize,
    pub(crate) streaming: Option<Vec<u8>>,
    /// Bytes sent and not yet echoed back, in order.
    pub(crate) unechoed: VecDeque<u8>,
    pub sent: u64,
    pub echoed: u64,
    pub mismatch: Option<Mismatch>,
    /// Every byte the server sent back, right or wrong.
    pub received: u64,
    /// When the server's first byte arrived.
    pub first_reply_at: Option<Instant>,
    /// Judge service by replies, not by exact echo (see [`Session::judging_replies`]).
    judge_replies: bool,
    /// Bytes of the current `Send` step, and what came back since it started.
    sent_since_send: u64,
    received_since_send: u64,
    newline_since_send: bool,
    pub end: Option<SessionEnd>,
    pub(crate) read_closed: bool,
    pub started: Option<Instant>,
    pub connected_at: Option<Instant>,
    /// When each `Expect` step started and how long it waited.
    pub(crate) expect_since: Option<Instant>,
    pub expect_waits: Vec<Duration>,
    pub finished_at: Option<Instant>,
    /// Keep the connection open when the script is done (until the swarm is dropped).
    pub hold: bool,
    pub(crate) last_stream_read: Option<Instant>,
    /// The chunk a `Stream` step repeats, and how much of the stream went out and came back.
    stream_chunk: Option<Vec<u8>>,
    stream_sent: u64,
    stream_echoed: u64,
    /// This client's lane in the check's timeline, if it has one.
    lane: Option<crate::timeline::LaneId>,
}

const EXCERPT: usize = 48;

impl Drop for Session {
    /// A held connection ends when its session is dropped: that is its close on the timeline.
    fn drop(&mut self) {
        if self.sock.is_some() {
            self.note(Instant::now(), EventKind::Close, None);
        }
    }
}

/// SO_RCVBUF of a streaming session.
const STREAM_RECV_BUFFER: usize = 256 << 10;

/// How often a streaming session reads (one buffer) from its socket.
const STREAM_READ_EVERY: Duration = Duration::from_millis(20);

/// Reads of one (non-streaming) session per turn of the poll loop.
const READS_PER_TURN: usize = 16;

impl Session {
    pub fn new(label: impl Into<String>, steps: Vec<Step>) -> Session {
        Session {
            label: label.into(),
            steps: steps.into(),
            sock: None,
            phase: Phase::NotStarted,
            local_port: None,
            out: Vec::new(),
            out_off: 0,
            streaming: None,
            unechoed: VecDeque::new(),
            sent: 0,
            echoed: 0,
            mismatch: None,
            received: 0,
            first_reply_at: None,
            judge_replies: false,
            sent_since_send: 0,
            received_since_send: 0,
            newline_since_send: false,
            end: None,
            read_closed: false,
            started: None,
            connected_at: None,
            expect_since: None,
            expect_waits: Vec::new(),
            finished_at: None,
            hold: false,
            last_stream_read: None,
            stream_chunk: None,
            stream_sent: 0,
            stream_echoed: 0,
            lane: None,
        }
    }

    /// Keep the connection open after the script (for clients that must stay connected).
    pub fn holding(mut self) -> Session {
        self.hold = true;
        self
    }

    /// Count any reply as service: a wrong byte is recorded (`mismatch`) but does not end the
    /// session, and an `Expect` step is met by a reply to the line (a newline, or as many bytes
    /// as were sent) as well as by the exact echo. For checks that judge concurrency or
    /// resources, where an upper-casing server *is* serving its clients.
    pub fn judging_replies(mut self) -> Session {
        self.judge_replies = true;
        self
    }

    /// Give a held session whose script is done more steps to run, at the next `run` of its
    /// swarm. Returns false (and does nothing) when its connection is no longer open.
    pub fn then(&mut self, steps: Vec<Step>) -> bool {
        if self.phase != Phase::Open || self.sock.is_none() || self.end != Some(SessionEnd::Done) {
            return false;
        }
        self.steps.extend(steps);
        self.end = None;
        self.finished_at = None;
        self.advance(Instant::now());
        true
    }

    /// Whether the script ran to its end without a wrong byte.
    pub fn ok(&self) -> bool {
        self.end == Some(SessionEnd::Done) && self.mismatch.is_none()
    }

    /// Whether the script ran to its end: every line was echoed, or (when judging replies)
    /// answered.
    pub fn served(&self) -> bool {
        self.end == Some(SessionEnd::Done) && (self.mismatch.is_none() || self.judge_replies)
    }

    /// Whether the current `Expect` step is met.
    fn expect_met(&self) -> bool {
        if self.judge_replies && self.mismatch.is_some() {
            self.received_since_send > 0
                && (self.newline_since_send || self.received_since_send >= self.sent_since_send)
        } else {
            self.missing() == 0
        }
    }

    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// Whether the script has no steps left to run (it may still hold its connection).
    pub fn script_done(&self) -> bool {
        self.end.is_some()
    }

    /// Stop a `Stream` step; the script goes on with the next step.
    pub fn stop_stream(&mut self) {
        self.streaming = None;
    }

    /// Close the connection now (used to end a held client).
    pub fn close(&mut self) {
        if self.sock.is_some() {
            self.note(Instant::now(), EventKind::Close, None);
        }
        self.drop_socket()
    }

    fn drop_socket(&mut self) {
        self.sock = None;
        if self.end.is_none() {
            self.end = Some(SessionEnd::Stalled);
        }
        self.phase = Phase::Finished;
    }

    /// Close with RST now.
    pub fn reset_now(&mut self) {
        if let Some(s) = &self.sock {
            let _ = s.set_linger(Some(Duration::ZERO));
            self.note(Instant::now(), EventKind::Reset, None);
        }
        self.drop_socket();
    }

    /// Record an event of this client in the check's timeline.
    fn note(&self, now: Instant, kind: EventKind, bytes: Option<u64>) {
        crate::timeline::record(self.lane, now, kind, bytes);
    }

    /// Bytes still owed by the server.
    pub fn missing(&self) -> u64 {
        self.unechoed.len() as u64 + (self.stream_sent - self.stream_echoed)
    }

    pub(crate) fn start_connect(&mut self, addr: &SocketAddr, now: Instant) {
        self.started = Some(now);
        self.lane = crate::timeline::lane(&self.label);
        self.note(now, EventKind::Connect, None);
        let sock = match Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)) {
            Ok(s) => s,
            Err(e) => return self.finish(SessionEnd::ConnectFailed(e.to_string()), now),
        };
        if let Err(e) = sock.set_nonblocking(true) {
            return self.finish(SessionEnd::ConnectFailed(e.to_string()), now);
        }
        let _ = sock.set_tcp_nodelay(true);
        if self.steps.iter().any(|s| matches!(s, Step::Stream(_))) {
            // A streaming client reads its echo slowly into a small, fixed receive buffer, so
            // the server soon waits on it to make room and takes in its data no faster than it
            // reads; meanwhile the client writes all it can. The server then always has more
            // of this client's data to read, however fast it is.
            let _ = sock.set_recv_buffer_size(STREAM_RECV_BUFFER);
        }

        match sock.connect(&SockAddr::from(*addr)) {
            Ok(()) => {
                self.sock = Some(sock);
                self.on_connected(now);
            }
            Err(e) if e.raw_os_error() == Some(nix::libc::EINPROGRESS) => {
                self.sock = Some(sock);
                self.phase = Phase::Connecting;
            }
            Err(e) => self.finish(SessionEnd::ConnectFailed(e.to_string()), now),
        }
    }

    pub(crate) fn on_connect_ready(&mut self, now: Instant) -> bool {
        let err = self.sock.as_ref().map(|s| s.take_error());
        match err {
            Some(Ok(None)) => {
                self.on_connected(now);
                true
            }
            Some(Ok(Some(e))) | Some(Err(e)) => {
                self.finish(SessionEnd::ConnectFailed(e.to_string()), now);
                true
            }
            None => false,
        }
    }

    fn on_connected(&mut self, now: Instant) {
        self.phase = Phase::Open;
        self.connected_at = Some(now);
        self.note(now, EventKind::Connected, None);
        self.local_port = self
            .sock
            .as_ref()
            .and_then(|s| s.local_addr().ok())
            .and_then(|a| a.as_socket())
            .map(|a| a.port());
        self.advance(now);
    }

    pub(crate) fn finish(&mut self, end: SessionEnd, now: Instant) {
        if self.end.is_none() {
            let kind = match &end {
                SessionEnd::Done => None,
                SessionEnd::ConnectFailed(_) => Some(EventKind::ConnectFailed),
                SessionEnd::ClosedEarly => Some(EventKind::ClosedByServer),
                SessionEnd::Reset => Some(EventKind::ResetByServer),
                SessionEnd::Error(_) => Some(EventKind::Error),
                SessionEnd::Stalled => Some(EventKind::Stalled),
            };
            if let Some(kind) = kind {
                self.note(now, kind, None);
            }
            self.end = Some(end.clone());
            self.finished_at = Some(now);
        }
        if end != SessionEnd::Done || !self.hold {
            self.sock = None;
            self.phase = Phase::Finished;
        }
    }

    /// Run steps that can run now. Returns whether anything changed.
    pub(crate) fn advance(&mut self, now: Instant) -> bool {
        let mut changed = false;
        loop {
            if self.phase != Phase::Open
                || self.out_off < self.out.len()
                || self.streaming.is_some()
            {
                return changed;
            }
            let Some(step) = self.steps.front().cloned() else {
                if self.end.is_none() {
                    self.finish(SessionEnd::Done, now);
                    changed = true;
                }
                return changed;
            };
            match step {
                Step::Send(bytes) => {
                    self.sent_since_send = bytes.len() as u64;
                    self.received_since_send = 0;
                    self.newline_since_send = false;
                    self.out = bytes;
                    self.out_off = 0;
                }
                Step::Stream(chunk) => {
                    self.stream_chunk = Some(chunk.clone());
                    self.streaming = Some(chunk);
                }
                Step::Expect => {
                    if !self.expect_met() {
                        if self.expect_since.is_none() {
                            self.expect_since = Some(now);
                            self.note(now, EventKind::Waiting, None);
                        }
                        return changed;
                    }
                    if let Some(since) = self.expect_since.take() {
                        self.note(now, EventKind::Answered, None);
                        self.expect_waits.push(now - since);
                    } else {
                        self.expect_waits.push(Duration::ZERO);
                    }
                }
                Step::AwaitReply => {
                    if self.received == 0 {
                        return changed;
                    }
                }
                Step::ShutdownWrite => {
                    if let Some(s) = &self.sock {
                        let _ = s.shutdown(std::net::Shutdown::Write);
                    }
                }
                Step::Close => {
                    self.steps.pop_front();
                    self.note(now, EventKind::Close, None);
                    self.hold = false;
                    self.finish(SessionEnd::Done, now);
                    return true;
                }
                Step::Reset => {
                    self.steps.pop_front();
                    if let Some(s) = &self.sock {
                        let _ = s.set_linger(Some(Duration::ZERO));
                    }
                    self.note(now, EventKind::Reset, None);
                    self.hold = false;
                    self.finish(SessionEnd::Done, now);
                    return true;
                }
            }
            self.steps.pop_front();
            changed = true;
        }
    }

    /// Write what can be written. Returns whether bytes moved.
    pub(crate) fn on_writable(&mut self, now: Instant) -> bool {
        let Some(sock) = &self.sock else { return false };
        let mut moved = false;
        loop {
            let chunk: &[u8] = if self.out_off < self.out.len() {
                &self.out[self.out_off..]
            } else if let Some(s) = &self.streaming {
                // What a stream has in flight is bounded by the kernel's socket buffers, and
                // costs no memory here: its echo is checked against the repeating chunk.
                &s[(self.stream_sent % s.len() as u64) as usize..]
            } else {
                break;
            };
            match sock.send_with_flags(chunk, nix::libc::MSG_NOSIGNAL) {
                Ok(n) => {
                    moved = true;
                    self.sent += n as u64;
                    crate::timeline::record(self.lane, now, EventKind::Sent, Some(n as u64));
                    if self.out_off < self.out.len() {
                        if !self.replies_only() {
                            self.unechoed.extend(&chunk[..n]);
                        }
                        self.out_off += n;
                    } else {
                        self.stream_sent += n as u64;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    let end =
                        if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) {
                            SessionEnd::Reset
                        } else {
                            SessionEnd::Error(e.to_string())
                        };
                    self.finish(end, now);
                    return true;
                }
            }
            if self.streaming.is_none() && self.out_off >= self.out.len() {
                break;
            }
        }
        if self.out_off >= self.out.len() && !self.out.is_empty() {
            self.out.clear();
            self.out_off = 0;
        }
        moved | self.advance(now)
    }

    /// Read what has arrived and check it. Returns whether bytes moved.
    pub(crate) fn on_readable(&mut self, buf: &mut [u8], now: Instant) -> bool {
        let mut moved = false;
        // Bounded reads per turn. A streaming session reads one buffer at most every
        // STREAM_READ_EVERY and writes as much as the socket takes: it sends far faster than it
        // drains its echo, so the kernel buffers between it and the server fill and the server
        // always has more of its data to read (a heavy, slow-reading client, as the fairness
        // check needs).
        let reads = if self.streaming.is_some() {
            self.last_stream_read = Some(now);
            1
        } else {
            READS_PER_TURN
        };
        for _ in 0..reads {
            let Some(sock) = &self.sock else { return moved };
            let r = std::io::Read::read(&mut &*sock, buf);
            match r {
                Ok(0) => {
                    self.read_closed = true;
                    // Data and EOF may arrive in one turn: let the script take the data first.
                    self.advance(now);
                    let owed = self.missing() > 0
                        || self.out_off < self.out.len()
                        || self
                            .steps
                            .iter()
                            .any(|s| matches!(s, Step::Expect | Step::Send(_) | Step::Stream(_)));
                    if self.end.is_none() && owed {
                        self.finish(SessionEnd::ClosedEarly, now);
                    } else if self.end.is_some() {
                        // Held after its script: the server hung up; nothing more to read.
                        self.note(now, EventKind::ClosedByServer, None);
                        self.sock = None;
                        self.phase = Phase::Finished;
                    }
                    return true;
                }
                Ok(n) => {
                    moved = true;
                    self.note_reply(&buf[..n], now);
                    if self.replies_only() {
                        continue;
                    }
                    self.check_echo(&buf[..n]);
                    if self.replies_only() {
                        // From here on only replies count: nothing is owed byte for byte.
                        self.unechoed.clear();
                    } else if self.mismatch.is_some() {
                        // A wrong byte decides this client; stop reading it.
                        self.finish(SessionEnd::Done, now);
                        return true;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    let end = if e.kind() == ErrorKind::ConnectionReset {
                        SessionEnd::Reset
                    } else {
                        SessionEnd::Error(e.to_string())
                    };
                    self.finish(end, now);
                    return true;
                }
            }
        }
        moved | self.advance(now)
    }

    /// After a wrong byte, a session judging replies only counts what comes back.
    fn replies_only(&self) -> bool {
        self.judge_replies && self.mismatch.is_some()
    }

    fn note_reply(&mut self, got: &[u8], now: Instant) {
        self.note(now, EventKind::Received, Some(got.len() as u64));
        self.received += got.len() as u64;
        self.received_since_send += got.len() as u64;
        self.newline_since_send |= got.contains(&b'\n');
        self.first_reply_at.get_or_insert(now);
    }

    fn check_echo(&mut self, got: &[u8]) {
        // Bytes of an earlier Send come first; a stream's echo follows them.
        if self.unechoed.is_empty() && self.stream_echoed < self.stream_sent {
            return self.check_stream_echo(got);
        }
        if got.len() > self.unechoed.len() && self.stream_sent > self.stream_echoed {
            let (head, tail) = got.split_at(self.unechoed.len());
            self.check_echo(head);
            if self.mismatch.is_none() {
                self.check_stream_echo(tail);
            }
            return;
        }
        // Compare slice against slice (memcmp speed: a streaming client must outpace the
        // server it measures), then find the exact byte only when something differs.
        let n = got.len().min(self.unechoed.len());
        let (front, back) = self.unechoed.as_slices();
        let k = n.min(front.len());
        let same = front[..k] == got[..k] && back[..n - k] == got[k..n];
        if same && n == got.len() {
            self.unechoed.drain(..n);
            self.echoed += n as u64;
            return;
        }
        let i = if same {
            n
        } else {
            (0..n).find(|&i| self.unechoed[i] != got[i]).unwrap_or(n)
        };
        self.unechoed.drain(..i);
        self.echoed += i as u64;
        let expected: Vec<u8> = self.unechoed.iter().take(EXCERPT).copied().collect();
        self.mismatch = Some(Mismatch {
            offset: self.echoed,
            expected,
            got: got[i..].iter().take(EXCERPT).copied().collect(),
        });
    }

    fn check_stream_echo(&mut self, got: &[u8]) {
        let chunk = self.stream_chunk.as_deref().unwrap_or(&[]);
        let owed = (self.stream_sent - self.stream_echoed) as usize;
        for (i, &b) in got.iter().enumerate() {
            let want = chunk
                .get((self.stream_echoed % chunk.len().max(1) as u64) as usize)
                .copied();
            if i >= owed || want != Some(b) {
                let expected: Vec<u8> = (0..EXCERPT.min(owed.saturating_sub(i)))
                    .map(|k| chunk[((self.stream_echoed + k as u64) % chunk.len() as u64) as usize])
                    .collect();
                self.mismatch = Some(Mismatch {
                    offset: self.echoed,
                    expected,
                    got: got[i..].iter().take(EXCERPT).copied().collect(),
                });
                return;
            }
            self.stream_echoed += 1;
            self.echoed += 1;
        }
    }

    pub(crate) fn wants_write(&self) -> bool {
        self.phase == Phase::Connecting
            || (self.phase == Phase::Open
                && (self.out_off < self.out.len() || self.streaming.is_some()))
    }

    pub(crate) fn wants_read(&self) -> bool {
        let throttled = self.streaming.is_some()
            && self
                .last_stream_read
                .is_some_and(|t| t.elapsed() < STREAM_READ_EVERY);
        self.phase == Phase::Open && !self.read_closed && !throttled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_check_finds_the_first_wrong_byte() {
        let mut s = Session::new("t", vec![]);
        s.unechoed.extend(b"hello world\n");
        s.check_echo(b"hello");
        assert!(s.mismatch.is_none());
        s.check_echo(b" wOrld\n");
        let m = s.mismatch.as_ref().unwrap();
        assert_eq!(m.offset, 7);
        assert_eq!(m.got, b"Orld\n");
        assert_eq!(m.expected, b"orld\n");
    }

    #[test]
    fn stream_echo_is_checked_against_the_repeating_chunk() {
        let mut s = Session::new("t", vec![]);
        s.unechoed.extend(b"hi\n");
        s.stream_chunk = Some(b"abc\n".to_vec());
        s.stream_sent = 10; // "abc\nabc\nab"
        s.check_echo(b"hi\nabc\nab");
        assert!(s.mismatch.is_none());
        assert_eq!((s.echoed, s.missing()), (9, 4));
        s.check_echo(b"c\nab");
        assert!(s.mismatch.is_none());
        assert_eq!(s.missing(), 0);
        s.stream_sent += 4;
        s.check_echo(b"cX");
        let m = s.mismatch.as_ref().unwrap();
        assert_eq!((m.offset, m.got.as_slice()), (14, b"X".as_slice()));
    }

    #[test]
    fn a_session_judging_replies_takes_any_answered_line_as_served() {
        let mut s = Session::new("t", vec![]).judging_replies();
        s.sent_since_send = 6;
        s.unechoed.extend(b"hello\n");
        s.note_reply(b"HELLO\n", Instant::now());
        s.check_echo(b"HELLO\n");
        assert!(s.mismatch.is_some());
        assert!(s.replies_only());
        assert!(s.expect_met(), "a whole reply line meets Expect");
        let mut half = Session::new("t", vec![]).judging_replies();
        half.sent_since_send = 6;
        half.unechoed.extend(b"hello\n");
        half.mismatch = Some(Mismatch {
            offset: 0,
            expected: vec![],
            got: vec![],
        });
        half.note_reply(b"HE", Instant::now());
        assert!(!half.expect_met(), "half a reply is not yet an answer");
    }

    #[test]
    fn extra_bytes_are_a_mismatch() {
        let mut s = Session::new("t", vec![]);
        s.unechoed.extend(b"a\n");
        s.check_echo(b"a\nb");
        assert_eq!(s.mismatch.as_ref().unwrap().offset, 2);
        assert!(s.mismatch.as_ref().unwrap().expected.is_empty());
    }
}
