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

/// The descriptors of `pid` (empty if the process is gone).
pub fn fd_table(pid: Pid) -> Vec<FdEntry> {
    use procfs::process::FDTarget;
    let Ok(proc_) = procfs::process::Process::new(pid) else {
        return Vec::new();
    };
    let Ok(fds) = proc_.fd() else {
        return Vec::new();
    };
    let mut out: Vec<FdEntry> = fds
        .flatten()
        .map(|info| {
            let (socket_inode, target) = match &info.target {
                FDTarget::Socket(ino) => (Some(*ino), format!("socket:[{ino}]")),
                FDTarget::Path(p) => (None, p.display().to_string()),
                FDTarget::Pipe(ino) => (None, format!("pipe:[{ino}]")),
                FDTarget::AnonInode(s) => (None, format!("anon_inode:{s}")),
                other => (None, format!("{other:?}")),
            };
            FdEntry {
                fd: info.fd,
                socket_inode,
                target,
            }
        })
        .collect();
    out.sort_by_key(|e| e.fd);
    out
}

/// The descriptor tables of a process's threads that differ from the process's own (`entries`):
/// threads share one table unless they were cloned without CLONE_FILES (or called unshare).
/// Returns `(tid, table)` for each such thread; at most `max_threads` threads are read.
pub fn distinct_thread_tables(
    pid: Pid,
    entries: &[FdEntry],
    max_threads: usize,
) -> Vec<(Pid, Vec<FdEntry>)> {
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
        let Ok(fds) = std::fs::read_dir(d.path().join("fd")) else {
            continue;
        };
        let mut table: Vec<FdEntry> = fds
            .flatten()
            .filter_map(|f| {
                let fd = f.file_name().to_string_lossy().parse::<i32>().ok()?;
                let target = std::fs::read_link(f.path()).ok()?.display().to_string();
                let socket_inode = target
                    .strip_prefix("socket:[")
                    .and_then(|r| r.strip_suffix(']'))
                    .and_then(|n| n.parse().ok());
                Some(FdEntry {
                    fd,
                    socket_inode,
                    target,
                })
            })
            .collect();
        table.sort_by_key(|e| e.fd);
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
    }
}
