//! The process table and the server's tree within it.

use super::Pid;
use std::collections::{BTreeSet, HashMap};

/// One process, as `/proc/PID/stat` shows it.
#[derive(Debug, Clone)]
pub struct ProcInfo {
    pub pid: Pid,
    pub ppid: Pid,
    pub pgrp: Pid,
    /// `R`, `S`, `D`, `Z`, `T`, ...
    pub state: char,
    pub comm: String,
    pub threads: i64,
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
}

impl ProcInfo {
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// A snapshot of every process on the machine.
#[derive(Debug, Default)]
pub struct ProcTable {
    pub procs: HashMap<Pid, ProcInfo>,
}

impl ProcTable {
    pub fn scan() -> ProcTable {
        let mut procs = HashMap::new();
        let Ok(all) = procfs::process::all_processes() else {
            return ProcTable { procs };
        };
        for p in all.flatten() {
            if let Ok(info) = read_stat(p.pid) {
                procs.insert(info.pid, info);
            }
        }
        ProcTable { procs }
    }

    /// The server's tree: `root` and its descendants, every member of process group `pgrp`,
    /// and the processes the grader adopted as child subreaper (`adopter`'s children other
    /// than the ones listed in `exclude`) with their descendants. Sorted by pid.
    pub fn tree(&self, root: Pid, pgrp: Pid, adopter: Pid, exclude: &[Pid]) -> Vec<Pid> {
        let mut children: HashMap<Pid, Vec<Pid>> = HashMap::new();
        for p in self.procs.values() {
            children.entry(p.ppid).or_default().push(p.pid);
        }
        let mut seeds: Vec<Pid> = vec![root];
        seeds.extend(
            self.procs
                .values()
                .filter(|p| p.pgrp == pgrp || (p.ppid == adopter && p.pid != root))
                .map(|p| p.pid)
                .filter(|pid| !exclude.contains(pid) && *pid != adopter),
        );
        let mut out = BTreeSet::new();
        while let Some(pid) = seeds.pop() {
            if !self.procs.contains_key(&pid) || !out.insert(pid) {
                continue;
            }
            if let Some(kids) = children.get(&pid) {
                seeds.extend(kids.iter().copied());
            }
        }
        out.into_iter().collect()
    }

    /// Direct children of `pid`.
    pub fn children_of(&self, pid: Pid) -> Vec<&ProcInfo> {
        let mut v: Vec<&ProcInfo> = self.procs.values().filter(|p| p.ppid == pid).collect();
        v.sort_by_key(|p| p.pid);
        v
    }

    pub fn get(&self, pid: Pid) -> Option<&ProcInfo> {
        self.procs.get(&pid)
    }
}

/// Read one process's stat line.
pub fn read_stat(pid: Pid) -> procfs::ProcResult<ProcInfo> {
    let st = procfs::process::Process::new(pid)?.stat()?;
    Ok(ProcInfo {
        pid: st.pid,
        ppid: st.ppid,
        pgrp: st.pgrp,
        state: st.state,
        comm: st.comm,
        threads: st.num_threads,
        cpu_ticks: st.utime + st.stime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_own_child_in_tree_and_as_zombie() {
        // A live child of this test process, then the same child as a zombie.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let me = std::process::id() as Pid;
        let pid = child.id() as Pid;
        let table = ProcTable::scan();
        assert_eq!(table.get(pid).map(|p| p.ppid), Some(me));
        assert!(table.children_of(me).iter().any(|p| p.pid == pid));
        let pgrp = table.get(me).unwrap().pgrp;
        assert!(table.tree(me, pgrp, 0, &[]).contains(&pid));

        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
        // Wait (without reaping) until the kernel shows the child as a zombie.
        let zombie = (0..500).any(|_| {
            let z = read_stat(pid).map(|p| p.is_zombie()).unwrap_or(false);
            if !z {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            z
        });
        assert!(zombie, "killed child never showed state Z");
        child.wait().unwrap();
    }
}
