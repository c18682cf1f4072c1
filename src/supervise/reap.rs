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
    let live = |table: &ProcTable| -> Vec<Pid> {
        table
            .tree(root, pgrp, me, exclude)
            .into_iter()
            .filter(|p| table.get(*p).is_some_and(|i| !i.is_zombie()))
            .collect()
    };
    let watched = [root];

    let members = live(&ProcTable::scan());
    let _ = kill(NixPid::from_raw(-pgrp), Signal::SIGTERM);
    for &p in &members {
        let _ = kill(NixPid::from_raw(p), Signal::SIGTERM);
        // A stopped process cannot act on SIGTERM.
        let _ = kill(NixPid::from_raw(p), Signal::SIGCONT);
    }
    let start = Instant::now();
    while start.elapsed() < grace {
        reap_exited(&watched, statuses);
        if live(&ProcTable::scan()).is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }

    let start = Instant::now();
    loop {
        reap_exited(&watched, statuses);
        let table = ProcTable::scan();
        let all = table.tree(root, pgrp, me, exclude);
        if all.is_empty() {
            break;
        }
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

/// Kill and reap every process the grader adopted or started that is still around: the last
/// sweep before the report is written.
pub fn kill_orphans() {
    let me = std::process::id() as Pid;
    let mut statuses = HashMap::new();
    let start = Instant::now();
    loop {
        reap_exited(&[], &mut statuses);
        let table = ProcTable::scan();
        let kids: Vec<Pid> = table.children_of(me).iter().map(|p| p.pid).collect();
        if kids.is_empty() || start.elapsed() > Duration::from_secs(10) {
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
