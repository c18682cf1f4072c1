//! What each thread of a process is doing: its state, the kernel function it sleeps in
//! (`wchan`), the system call it is blocked in (`/proc/PID/task/TID/syscall`), its blocked
//! signals and its CPU time. This is how a hang is diagnosed without touching the process.

use super::Pid;
use serde::Serialize;

/// One thread of a server process.
#[derive(Debug, Clone, Serialize)]
pub struct TaskSnapshot {
    pub pid: Pid,
    pub tid: Pid,
    pub comm: String,
    pub state: String,
    pub wchan: String,
    /// The system call the thread is blocked in, by name where known (`read`, `futex`, ...).
    pub syscall: String,
    /// The raw syscall line: number and arguments.
    pub syscall_raw: String,
    /// First argument of the blocking syscall (the descriptor, for read/recvfrom/write).
    #[serde(skip)]
    pub arg0: Option<u64>,
    /// Signals this thread has blocked, by name.
    pub blocked_signals: Vec<String>,
    pub cpu_ticks: u64,
}

/// Snapshot every thread of `pid`.
pub fn task_snapshots(pid: Pid) -> Vec<TaskSnapshot> {
    // wchan and syscall are the server's owner's to read (see `owner`).
    let _view = super::owner::OwnerView::of(pid);
    let Ok(proc_) = procfs::process::Process::new(pid) else {
        return Vec::new();
    };
    let Ok(tasks) = proc_.tasks() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let base = format!("/proc/{pid}/task/{}", task.tid);
        let (state, comm, cpu_ticks) = match task.stat() {
            Ok(st) => (st.state.to_string(), st.comm, st.utime + st.stime),
            Err(_) => continue,
        };
        let blocked = task.status().map(|s| s.sigblk).unwrap_or(0);
        let wchan = std::fs::read_to_string(format!("{base}/wchan")).unwrap_or_default();
        let raw = std::fs::read_to_string(format!("{base}/syscall"))
            .unwrap_or_default()
            .trim()
            .to_string();
        let mut fields = raw.split_whitespace();
        let nr = fields.next().and_then(|n| n.parse::<i64>().ok());
        let arg0 = fields
            .next()
            .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok());
        out.push(TaskSnapshot {
            pid,
            tid: task.tid,
            comm,
            state,
            wchan: if wchan == "0" { String::new() } else { wchan },
            syscall: match nr {
                Some(n) => syscall_name(n).map(str::to_string).unwrap_or(n.to_string()),
                None => raw.clone(), // "running" or empty
            },
            syscall_raw: raw,
            arg0,
            blocked_signals: signal_names(blocked),
            cpu_ticks,
        });
    }
    out
}

/// Names of the signals set in a `SigBlk`-style mask.
pub fn signal_names(mask: u64) -> Vec<String> {
    (1..=64)
        .filter(|n| mask & (1u64 << (n - 1)) != 0)
        .map(|n| match nix::sys::signal::Signal::try_from(n) {
            Ok(s) => s.as_str().to_string(),
            Err(_) => format!("SIG{n}"),
        })
        .collect()
}

/// The syscalls a blocked echo server sits in, by number for this architecture.
pub fn syscall_name(nr: i64) -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    const TABLE: &[(i64, &str)] = &[
        (0, "read"),
        (1, "write"),
        (7, "poll"),
        (23, "select"),
        (35, "nanosleep"),
        (43, "accept"),
        (44, "sendto"),
        (45, "recvfrom"),
        (61, "wait4"),
        (202, "futex"),
        (230, "clock_nanosleep"),
        (232, "epoll_wait"),
        (270, "pselect6"),
        (271, "ppoll"),
        (281, "epoll_pwait"),
        (288, "accept4"),
        (441, "epoll_pwait2"),
    ];
    #[cfg(target_arch = "aarch64")]
    const TABLE: &[(i64, &str)] = &[
        (63, "read"),
        (64, "write"),
        (22, "epoll_pwait"),
        (72, "pselect6"),
        (73, "ppoll"),
        (98, "futex"),
        (101, "nanosleep"),
        (115, "clock_nanosleep"),
        (202, "accept"),
        (206, "sendto"),
        (207, "recvfrom"),
        (242, "accept4"),
        (260, "wait4"),
        (441, "epoll_pwait2"),
    ];
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    const TABLE: &[(i64, &str)] = &[];
    TABLE.iter().find(|(n, _)| *n == nr).map(|(_, s)| *s)
}

/// Whether a task is blocked reading from a descriptor; returns the descriptor.
pub fn reading_fd(t: &TaskSnapshot) -> Option<i32> {
    matches!(t.syscall.as_str(), "read" | "recvfrom")
        .then_some(t.arg0)
        .flatten()
        .map(|fd| fd as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_thread_blocked_in_read_shows_its_descriptor() {
        // A real thread of this process blocked reading a socket: the syscall file names it.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            tx.send(nix::unistd::gettid().as_raw()).unwrap();
            let mut b = [0u8; 1];
            let _ = s.read(&mut b);
        });
        let tid = rx.recv().unwrap();
        let me = std::process::id() as Pid;
        let mut seen = None;
        for _ in 0..1000 {
            let snap = task_snapshots(me);
            if let Some(t) = snap
                .iter()
                .find(|t| t.tid == tid && reading_fd(t).is_some())
            {
                seen = reading_fd(t);
                break;
            }
            std::thread::yield_now();
        }
        assert_eq!(seen, Some(fd));
        drop(c);
        h.join().unwrap();
    }

    #[test]
    fn signal_mask_names() {
        assert_eq!(signal_names(1 << 16), vec!["SIGCHLD".to_string()]);
        assert!(signal_names(0).is_empty());
    }
}
