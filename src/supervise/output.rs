//! Draining a program's output into bounded buffers: a server's stdout and stderr, and a
//! build's merged output. One capture serves both.
//!
//! A program that logs a lot must never block on a full pipe (a server would look hung), and
//! one that floods its output must not grow the grader's memory: a thread per stream reads
//! continuously and keeps the first `head` bytes (a build's first compiler error) and the last
//! `tail` bytes (a crash message, make's final word), and counts the rest.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The first and last bytes a stream produced, and how many it produced in all.
#[derive(Debug, Clone)]
pub struct Tail {
    inner: Arc<(Mutex<Buf>, Condvar)>,
}

#[derive(Debug)]
struct Buf {
    head: Vec<u8>,
    head_cap: usize,
    tail: VecDeque<u8>,
    tail_cap: usize,
    total: u64,
    /// The stream reached its end (or its reader stopped).
    done: bool,
}

/// How much of each server stream is kept.
pub const TAIL_CAP: usize = 64 * 1024;

impl Tail {
    /// Keep the last `cap` bytes.
    pub fn new(cap: usize) -> Tail {
        Tail::with_head(0, cap)
    }

    /// Keep the first `head` and the last `tail` bytes.
    pub fn with_head(head: usize, tail: usize) -> Tail {
        Tail {
            inner: Arc::new((
                Mutex::new(Buf {
                    head: Vec::new(),
                    head_cap: head,
                    tail: VecDeque::with_capacity(4096.min(tail)),
                    tail_cap: tail,
                    total: 0,
                    done: false,
                }),
                Condvar::new(),
            )),
        }
    }

    fn buf(&self) -> std::sync::MutexGuard<'_, Buf> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, mut chunk: &[u8]) {
        let mut t = self.buf();
        t.total += chunk.len() as u64;
        if t.head.len() < t.head_cap {
            let take = chunk.len().min(t.head_cap - t.head.len());
            t.head.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
        }
        let keep = chunk.len().min(t.tail_cap);
        let chunk = &chunk[chunk.len() - keep..];
        let overflow = (t.tail.len() + chunk.len()).saturating_sub(t.tail_cap);
        t.tail.drain(..overflow);
        t.tail.extend(chunk);
    }

    /// The last `max` bytes kept after the head, lossily decoded.
    pub fn last(&self, max: usize) -> String {
        let t = self.buf();
        let skip = t.tail.len().saturating_sub(max);
        let v: Vec<u8> = t.tail.iter().skip(skip).copied().collect();
        String::from_utf8_lossy(&v).into_owned()
    }

    /// Head and tail, with a line saying how many bytes of `what` were left out between them.
    pub fn head_and_tail(&self, what: &str) -> String {
        let t = self.buf();
        let kept = t.head.len() as u64 + t.tail.len() as u64;
        let mut bytes = t.head.clone();
        if t.total > kept {
            let msg = format!("\n[... {} bytes of {what} left out ...]\n", t.total - kept);
            bytes.extend_from_slice(msg.as_bytes());
        }
        bytes.extend(t.tail.iter());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn total(&self) -> u64 {
        self.buf().total
    }

    /// Wait up to `limit` for the stream's end; whether it came.
    pub fn wait_done(&self, limit: Duration) -> bool {
        let (lock, cv) = &*self.inner;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = cv
            .wait_timeout_while(guard, limit, |b| !b.done)
            .unwrap_or_else(|e| e.into_inner());
        guard.done
    }

    /// Start a thread that drains `stream` into this capture until EOF.
    pub fn drain_from<R: Read + Send + 'static>(
        &self,
        mut stream: R,
        name: &str,
    ) -> std::io::Result<()> {
        let tail = self.clone();
        std::thread::Builder::new()
            .name(format!("drain-{name}"))
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => tail.push(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    }
                }
                tail.buf().done = true;
                tail.inner.1.notify_all();
            })
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_last_bytes() {
        let t = Tail::new(8);
        t.push(b"0123456789");
        t.push(b"ab");
        assert_eq!(t.last(100), "456789ab");
        assert_eq!(t.total(), 12);
        assert_eq!(t.last(3), "9ab");
    }

    #[test]
    fn a_flood_does_not_grow_memory() {
        let t = Tail::new(TAIL_CAP);
        let chunk = vec![b'x'; 10_000];
        for _ in 0..1000 {
            t.push(&chunk);
        }
        assert_eq!(t.last(usize::MAX).len(), TAIL_CAP);
        assert_eq!(t.total(), 10_000_000);
    }

    #[test]
    fn keeps_head_and_tail_and_counts_the_rest() {
        let t = Tail::with_head(4, 4);
        t.push(b"abcdef");
        t.push(b"0123456789");
        assert_eq!(
            t.head_and_tail("the output"),
            "abcd\n[... 8 bytes of the output left out ...]\n6789"
        );
        assert_eq!(t.total(), 16);
    }

    #[test]
    fn the_end_of_the_stream_is_seen() {
        let t = Tail::new(16);
        t.drain_from(&b"bye\n"[..], "test").unwrap();
        assert!(t.wait_done(Duration::from_secs(5)));
        assert_eq!(t.last(16), "bye\n");
    }
}
