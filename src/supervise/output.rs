//! Draining a server's stdout and stderr into bounded buffers.
//!
//! A server that logs a lot must never block on a full pipe (it would look hung), and a server
//! that floods its output must not grow the grader's memory: a thread per stream reads
//! continuously and keeps only the last `cap` bytes.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Mutex};

/// The last bytes a stream produced, and how many it produced in all.
#[derive(Debug, Clone)]
pub struct Tail {
    inner: Arc<Mutex<TailBuf>>,
}

#[derive(Debug)]
struct TailBuf {
    bytes: VecDeque<u8>,
    cap: usize,
    total: u64,
}

/// How much of each stream is kept.
pub const TAIL_CAP: usize = 64 * 1024;

impl Tail {
    pub fn new(cap: usize) -> Tail {
        Tail {
            inner: Arc::new(Mutex::new(TailBuf {
                bytes: VecDeque::with_capacity(4096),
                cap,
                total: 0,
            })),
        }
    }

    fn push(&self, chunk: &[u8]) {
        let mut t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        t.total += chunk.len() as u64;
        let keep = chunk.len().min(t.cap);
        let chunk = &chunk[chunk.len() - keep..];
        let overflow = (t.bytes.len() + chunk.len()).saturating_sub(t.cap);
        t.bytes.drain(..overflow);
        t.bytes.extend(chunk);
    }

    /// The last `max` bytes, lossily decoded.
    pub fn last(&self, max: usize) -> String {
        let t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let skip = t.bytes.len().saturating_sub(max);
        let v: Vec<u8> = t.bytes.iter().skip(skip).copied().collect();
        String::from_utf8_lossy(&v).into_owned()
    }

    pub fn total(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// Start a thread that drains `stream` into this tail until EOF.
    pub fn drain_from<R: Read + Send + 'static>(&self, mut stream: R, name: &str) {
        let tail = self.clone();
        let spawned = std::thread::Builder::new()
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
            });
        if let Err(e) = spawned {
            eprintln!("grade: warning: cannot drain the server's {name}: {e}");
        }
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
}
