//! A process's descriptor table.

use super::Pid;

/// One open descriptor and what it refers to.
#[derive(Debug, Clone)]
pub struct FdEntry {
    pub fd: i32,
    /// `Some(inode)` for a socket.
    pub socket_inode: Option<u64>,
    /// What `/proc/PID/fd/N` links to, for the report (`socket:[123]`, `/dev/null`, ...).
    pub target: String,
}

/// The most descriptors read of one process. A server's tree is student code: 300 children
/// holding 16K descriptors each made reading them all take 38 s. The lowest-numbered ones are
/// read (the listening socket, connections), which is what every check looks at.
pub const FD_CAP: usize = 2048;

static DEADLINE: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);

/// After `at`, descriptor tables are no longer read (a scan in progress stops where it is):
/// the grader must write its report in bounded time whatever the server's tree holds. Each
/// grading sets its own (a built submission grades several servers in one run).
pub fn set_scan_deadline(at: std::time::Instant) {
    *DEADLINE.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
}

static TRUNCATED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a descriptor table was read only in part (the cap, or the deadline) since the last
/// call. A verdict resting on part of the evidence must not be a pass.
pub fn take_truncated() -> bool {
    TRUNCATED.swap(false, std::sync::atomic::Ordering::Relaxed)
}

fn past_deadline() -> bool {
    DEADLINE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_some_and(|d| std::time::Instant::now() >= d)
}

/// The descriptors of `pid`, the first [`FD_CAP`] of them, in order (empty if the process is
/// gone, or once the scan deadline has passed).
pub fn fd_table(pid: Pid) -> Vec<FdEntry> {
    let dir = format!("/proc/{pid}/fd");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        if out.len() >= FD_CAP || past_deadline() {
            TRUNCATED.store(true, std::sync::atomic::Ordering::Relaxed);
            break;
        }
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue; // closed since the listing
        };
        let target = link.to_string_lossy().into_owned();
        let socket_inode = target
            .strip_prefix("socket:[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|n| n.parse().ok());
        out.push(FdEntry {
            fd,
            socket_inode,
            target,
        });
    }
    out.sort_by_key(|e| e.fd);
    out
}

/// How many descriptors `pid` has open, without reading them: since Linux 6.2 the size of
/// `/proc/PID/fd` is that number; before, the entries are counted (bounded by the deadline).
pub fn fd_count(pid: Pid) -> usize {
    let dir = format!("/proc/{pid}/fd");
    match std::fs::metadata(&dir) {
        Ok(m) if m.len() > 0 => m.len() as usize,
        _ => std::fs::read_dir(&dir)
            .map(|d| d.take_while(|_| !past_deadline()).count())
            .unwrap_or(0),
    }
}

/// The socket inodes `pid` holds.
pub fn socket_inodes(pid: Pid) -> Vec<u64> {
    fd_table(pid)
        .into_iter()
        .filter_map(|e| e.socket_inode)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_listening_socket_of_this_process() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let table = super::super::SocketTable::read();
        let listen = table.listeners_on(port);
        assert_eq!(listen.len(), 1, "one LISTEN socket on {port}");
        let me = std::process::id() as Pid;
        assert!(socket_inodes(me).contains(&listen[0].inode));
        assert!(
            fd_count(me) >= 3,
            "at least stdin, stdout, stderr and the listener"
        );
    }
}
