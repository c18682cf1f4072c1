//! The server's whole tree, descriptor by descriptor: every live process of the instance (the
//! listening one, its children, grandchildren, daemons the grader adopted) and every thread
//! whose descriptor table is not its process's.

use crate::inspect::{fd_table, fds::distinct_thread_tables, FdEntry, Pid, ProcTable};
use crate::supervise::Server;
use serde_json::{json, Value};

/// Threads read per process when looking for tables of their own.
const MAX_THREADS: usize = 512;

/// One descriptor table of the tree: a process's, or a thread's that differs from it.
#[derive(Debug, Clone)]
pub struct Holder {
    pub pid: Pid,
    /// Set for a thread with a descriptor table of its own.
    pub tid: Option<Pid>,
    pub comm: String,
    /// Whether this is the listening process (the server proper).
    pub main: bool,
    pub fds: Vec<FdEntry>,
}

impl Holder {
    /// "the listening process (pid 12)", "process 15 (echoserverp)", "thread 17 of process 12".
    pub fn name(&self) -> String {
        match (self.tid, self.main) {
            (Some(t), _) => format!("thread {t} of process {} ({})", self.pid, self.comm),
            (None, true) => format!("the listening process (pid {})", self.pid),
            (None, false) => format!("process {} ({})", self.pid, self.comm),
        }
    }

    pub fn describe(&self) -> Value {
        json!({ "pid": self.pid, "tid": self.tid, "comm": self.comm, "listening_process": self.main })
    }
}

/// The live (not zombie) processes of the server's tree, sorted by pid.
pub fn live_processes(srv: &Server) -> Vec<(Pid, String)> {
    let table = ProcTable::scan();
    table
        .tree(srv.pid, srv.pid, std::process::id() as Pid, &[])
        .into_iter()
        .filter_map(|p| table.get(p))
        .filter(|p| !p.is_zombie())
        .map(|p| (p.pid, p.comm.clone()))
        .collect()
}

/// Every descriptor table of the server's tree, the listening process's first.
pub fn tree_tables(srv: &Server) -> Vec<Holder> {
    let mut procs = live_processes(srv);
    procs.sort_by_key(|(p, _)| (*p != srv.main_pid, *p));
    let mut out = Vec::new();
    for (pid, comm) in procs {
        let fds = fd_table(pid);
        for (tid, t) in distinct_thread_tables(pid, &fds, MAX_THREADS) {
            out.push(Holder {
                pid,
                tid: Some(tid),
                comm: comm.clone(),
                main: pid == srv.main_pid,
                fds: t,
            });
        }
        out.push(Holder {
            pid,
            tid: None,
            comm,
            main: pid == srv.main_pid,
            fds,
        });
    }
    out.sort_by_key(|h| (!h.main, h.pid, h.tid));
    out
}
