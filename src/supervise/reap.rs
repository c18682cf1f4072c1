//! Reaping and killing: the grader as child subreaper.
//!
//! A server may fork children, which may fork again, call `setsid()` or double-fork to
//! become daemons. As child subreaper (PR_SET_CHILD_SUBREAPER) the grader adopts every
//! orphaned descendant instead of init, so it can find them all, kill them and reap them;
//! nothing of a server outlives its check.
//!
//! Reaping uses `waitpid(-1, WNOHANG)`, never a blocking wait and never a process-wide
//! SIGCHLD handler: only the supervising thread calls it, and never while a helper command
//! (gdb) is running, so no other wait loses its child.

use super::Exit;
use crate::inspect::{Pid, ProcTable};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid as NixPid;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Become child subreaper; warn and go on where the kernel refuses.
pub fn become_subreaper() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!(
            "grade: warning: cannot become child subreaper ({e}); daemons a server starts may \
             escape teardown"
        );
    }
}

/// Reap every exited child of the grader; remember the statuses of `watched` pids.
pub fn reap_exited(watched: &[Pid], statuses: &mut HashMap<Pid, Exit>) {
    loop {
        match waitpid(NixPid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                if watched.contains(&pid.as_raw()) {
                    statuses.insert(pid.as_raw(), Exit::Code(code));
                }
            }
            Ok(WaitStatus::Signaled(pid, sig, core)) => {
                if watched.contains(&pid.as_raw()) {
                    statuses.insert(pid.as_raw(), Exit::Signal { sig, core });
                }
            }
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(_) => continue,
        }
    }
}

/// What teardown left.
#[derive(Debug, Default, Clone)]
pub struct TeardownReport {
    /// Processes still present when teardown gave up (should be empty).
    pub survivors: Vec<Pid>,
}

/// SIGTERM the tree, wait `grace`, SIGKILL what is left, reap, repeat until nothing of the
/// tree remains (bounded by `limit`).
pub fn kill_tree(
    root: Pid,
    pgrp: Pid,
    exclude: &[Pid],
    grace: Duration,
    limit: Duration,
    statuses: &mut HashMap<Pid, Exit>,
) -> TeardownReport {
    let me = std::process::id() as Pid;
    let mut report = TeardownReport::default();
    let mut tracker = Members::default();
    let watched = [root];

    let table = ProcTable::scan();
    let members = tracker.live(&table, root, pgrp, me, exclude);
    let _ = kill(NixPid::from_raw(-pgrp), Signal::SIGTERM);
    for &p in &members {
        let _ = kill(NixPid::from_raw(p), Signal::SIGTERM);
        // A stopped process cannot act on SIGTERM.
        let _ = kill(NixPid::from_raw(p), Signal::SIGCONT);
    }
    let start = Instant::now();
    while start.elapsed() < grace {
        reap_exited(&watched, statuses);
        if tracker
            .live(&ProcTable::scan(), root, pgrp, me, exclude)
            .is_empty()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }

    let start = Instant::now();
    let mut empty_scans = 0;
    loop {
        reap_exited(&watched, statuses);
        let table = ProcTable::scan();
        let all = tracker.all(&table, root, pgrp, me, exclude);
        if all.is_empty() {
            // /proc is read one process at a time: a process whose parent exits meanwhile can
            // be missed by one scan (its parent gone, its adoption not yet visible). Only two
            // empty scans in a row end the teardown.
            empty_scans += 1;
            if empty_scans >= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        empty_scans = 0;
        let alive: Vec<Pid> = all
            .iter()
            .copied()
            .filter(|p| table.get(*p).is_some_and(|i| !i.is_zombie()))
            .collect();
        // Freeze first, so a fork storm cannot outrun the kills, then kill.
        for &p in &alive {
            let _ = kill(NixPid::from_raw(p), Signal::SIGSTOP);
        }
        let _ = kill(NixPid::from_raw(-pgrp), Signal::SIGKILL);
        for &p in &alive {
            let _ = kill(NixPid::from_raw(p), Signal::SIGKILL);
        }
        if start.elapsed() > limit {
            report.survivors = all;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    report
}

/// The server's processes across scans. A process stays a member once seen, so the child of a
/// member that exits between two reads of /proc (its parent gone before its adoption shows) is
/// still recognised by its parent's pid.
#[derive(Default)]
struct Members {
    seen: std::collections::HashSet<Pid>,
}

impl Members {
    fn all(
        &mut self,
        table: &ProcTable,
        root: Pid,
        pgrp: Pid,
        me: Pid,
        exclude: &[Pid],
    ) -> Vec<Pid> {
        let mut v = table.tree(root, pgrp, me, exclude);
        loop {
            let more: Vec<Pid> = table
                .procs
                .values()
                .filter(|p| {
                    self.seen.contains(&p.ppid) && !v.contains(&p.pid) && !exclude.contains(&p.pid)
                })
                .map(|p| p.pid)
                .collect();
            if more.is_empty() {
                break;
            }
            for p in more {
                self.seen.insert(p);
                v.push(p);
            }
        }
        self.seen.extend(v.iter().copied());
        v
    }

    fn live(
        &mut self,
        table: &ProcTable,
        root: Pid,
        pgrp: Pid,
        me: Pid,
        exclude: &[Pid],
    ) -> Vec<Pid> {
        self.all(table, root, pgrp, me, exclude)
            .into_iter()
            .filter(|p| table.get(*p).is_some_and(|i| !i.is_zombie()))
            .collect()
    }
}

/// Kill and reap every process the grader adopted or started that is still around: the last
/// sweep before the report is written.
pub fn kill_orphans() {
    let me = std::process::id() as Pid;
    let mut statuses = HashMap::new();
    let start = Instant::now();
    let mut empty_scans = 0;
    loop {
        reap_exited(&[], &mut statuses);
        let table = ProcTable::scan();
        let kids: Vec<Pid> = table.children_of(me).iter().map(|p| p.pid).collect();
        if kids.is_empty() {
            // As in kill_tree: one scan can miss a process being adopted.
            empty_scans += 1;
            if empty_scans >= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        empty_scans = 0;
        if start.elapsed() > Duration::from_secs(10) {
            break;
        }
        for k in kids {
            let tree = table.tree(k, -1, -1, &[]);
            for p in tree {
                let _ = kill(NixPid::from_raw(p), Signal::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
