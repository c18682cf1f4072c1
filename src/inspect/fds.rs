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

static TRUNCATED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a descriptor table was read only in part (the cap, or the deadline) since the last
/// call. A verdict resting on part of the evidence must not be a pass.
pub fn take_truncated() -> bool {
    TRUNCATED.swap(false, std::sync::atomic::Ordering::Relaxed)
}

/// Once the running check's deadline has passed, descriptor tables are no longer read (a scan
/// in progress stops where it is): the grader must write its report in bounded time whatever
/// the server's tree holds.
fn past_deadline() -> bool {
    crate::timing::check_bound_reached()
}

/// The descriptors of `pid`, the first [`FD_CAP`] of them, in order (empty if the process is
/// gone, or once the check's deadline has passed).
pub fn fd_table(pid: Pid) -> Vec<FdEntry> {
    let _view = super::owner::OwnerView::of(pid);
    read_table(std::path::Path::new(&format!("/proc/{pid}/fd")))
}

/// A `/proc/.../fd` folder's entries, bounded by [`FD_CAP`] and the check's deadline.
fn read_table(dir: &std::path::Path) -> Vec<FdEntry> {
    let Ok(entries) = std::fs::read_dir(dir) else {
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
    let _view = super::owner::OwnerView::of(pid);
    let dir = format!("/proc/{pid}/fd");
    match std::fs::metadata(&dir) {
        Ok(m) if m.len() > 0 => m.len() as usize,
        _ => std::fs::read_dir(&dir)
            .map(|d| d.take_while(|_| !past_deadline()).count())
            .unwrap_or(0),
    }
}

/// The descriptor tables of a process's threads that differ from the process's own (`entries`):
/// threads share one table unless they were cloned without CLONE_FILES (or called unshare).
/// Returns `(tid, table)` for each such thread; at most `max_threads` threads are read.
pub fn distinct_thread_tables(
    pid: Pid,
    entries: &[FdEntry],
    max_threads: usize,
) -> Vec<(Pid, Vec<FdEntry>)> {
    let _view = super::owner::OwnerView::of(pid);
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let key = |v: &[FdEntry]| {
        v.iter()
            .map(|e| (e.fd, e.target.clone()))
            .collect::<Vec<_>>()
    };
    let own = key(entries);
    let mut out = Vec::new();
    for d in dir.flatten().take(max_threads) {
        let Ok(tid) = d.file_name().to_string_lossy().parse::<Pid>() else {
            continue;
        };
        if tid == pid {
            continue;
        }
        if past_deadline() {
            TRUNCATED.store(true, std::sync::atomic::Ordering::Relaxed);
            break;
        }
        let table = read_table(&d.path().join("fd"));
        if key(&table) != own {
            out.push((tid, table));
        }
    }
    out
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
