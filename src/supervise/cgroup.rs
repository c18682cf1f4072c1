//! A cgroup per server instance, where the host lets the grader make one.
//!
//! Hosts differ. Pure cgroup v2 offers `cgroup.kill` and, where delegated, the pids and memory
//! controllers. Hybrid hosts (this project's CI among them) mount v1 hierarchies where
//! `pids.max` and `memory.limit_in_bytes` work, beside a v2 tree that offers `cgroup.kill` but
//! no controllers. Containers often offer none. So each piece is tried on its own: the
//! v2 group gives membership and `cgroup.kill`; v1 `pids` and `memory` groups give the limits,
//! unless v2 has those controllers. What could not be had is reported, and rlimits stand in.
//!
//! The server joins its groups between fork and exec by writing "0" (itself) to `cgroup.procs`
//! descriptors opened beforehand: no allocation in the child.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// The groups one instance runs in.
#[derive(Debug, Default)]
pub struct InstanceCgroup {
    /// The v2 group (membership, `cgroup.kill`, and limits where its controllers allow).
    v2: Option<PathBuf>,
    v1_pids: Option<PathBuf>,
    v1_memory: Option<PathBuf>,
    /// `cgroup.procs` of each group, opened for writing; the child writes "0" to each.
    procs: Vec<OwnedFd>,
    pub pids_limited: bool,
    pub memory_limited: bool,
}

/// Where this process sits in each hierarchy, from /proc/self/cgroup.
fn own_paths() -> Vec<(String, String)> {
    fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

fn v2_mount() -> Option<PathBuf> {
    for m in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        let p = Path::new(m);
        if p.join("cgroup.procs").exists() && p.join("cgroup.controllers").exists() {
            return Some(p.to_path_buf());
        }
    }
    None
}

fn open_procs(dir: &Path) -> Option<OwnedFd> {
    fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))
        .ok()
        .map(OwnedFd::from)
}

fn make_dir(parent: &Path, name: &str) -> Option<PathBuf> {
    let dir = parent.join(name);
    fs::create_dir(&dir).ok()?;
    Some(dir)
}

impl InstanceCgroup {
    /// Make the groups for one instance named `name`, with `nproc` and `memory_bytes` limits.
    pub fn create(name: &str, nproc: u64, memory_bytes: u64) -> InstanceCgroup {
        let mut g = InstanceCgroup::default();
        let paths = own_paths();
        let find = |ctrl: &str| {
            paths
                .iter()
                .find(|(c, _)| c.split(',').any(|x| x == ctrl))
                .map(|(_, p)| p.trim_start_matches('/').to_string())
        };
        g.join_v2(&paths, name, nproc, memory_bytes);
        if !g.pids_limited {
            if let Some(rel) = find("pids") {
                let parent = Path::new("/sys/fs/cgroup/pids").join(rel);
                if let Some(dir) = make_dir(&parent, name) {
                    match (
                        fs::write(dir.join("pids.max"), nproc.to_string()),
                        open_procs(&dir),
                    ) {
                        (Ok(()), Some(fd)) => {
                            g.procs.push(fd);
                            g.pids_limited = true;
                            g.v1_pids = Some(dir);
                        }
                        _ => {
                            let _ = fs::remove_dir(&dir);
                        }
                    }
                }
            }
        }
        if !g.memory_limited {
            if let Some(rel) = find("memory") {
                let parent = Path::new("/sys/fs/cgroup/memory").join(rel);
                if let Some(dir) = make_dir(&parent, name) {
                    match (
                        fs::write(dir.join("memory.limit_in_bytes"), memory_bytes.to_string()),
                        open_procs(&dir),
                    ) {
                        (Ok(()), Some(fd)) => {
                            // No swap beyond the limit, where the host accounts swap.
                            let _ = fs::write(
                                dir.join("memory.memsw.limit_in_bytes"),
                                memory_bytes.to_string(),
                            );
                            g.procs.push(fd);
                            g.memory_limited = true;
                            g.v1_memory = Some(dir);
                        }
                        _ => {
                            let _ = fs::remove_dir(&dir);
                        }
                    }
                }
            }
        }
        g
    }

    /// A cgroup v2 group of its own with its pids and memory limits, where the host has one.
    fn join_v2(&mut self, paths: &[(String, String)], name: &str, nproc: u64, memory_bytes: u64) {
        let g = self;
        if let (Some(mount), Some(rel)) = (
            v2_mount(),
            paths
                .iter()
                .find(|(c, _)| c.is_empty())
                .map(|(_, p)| p.trim_start_matches('/').to_string()),
        ) {
            if let Some(dir) = make_dir(&mount.join(rel), name) {
                if let Some(fd) = open_procs(&dir) {
                    let ctrls =
                        fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
                    if ctrls.split_whitespace().any(|c| c == "pids") {
                        g.pids_limited = fs::write(dir.join("pids.max"), nproc.to_string()).is_ok();
                    }
                    if ctrls.split_whitespace().any(|c| c == "memory") {
                        g.memory_limited =
                            fs::write(dir.join("memory.max"), memory_bytes.to_string()).is_ok();
                        let _ = fs::write(dir.join("memory.swap.max"), "0");
                    }
                    g.procs.push(fd);
                    g.v2 = Some(dir);
                } else {
                    let _ = fs::remove_dir(&dir);
                }
            }
        }
    }

    /// Descriptors the child writes "0" to, joining every group.
    pub fn procs_fds(&self) -> Vec<RawFd> {
        self.procs.iter().map(|f| f.as_raw_fd()).collect()
    }

    pub fn has_kill(&self) -> bool {
        self.v2
            .as_ref()
            .is_some_and(|d| d.join("cgroup.kill").exists())
    }

    /// In words, for the report.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = &self.v2 {
            let mut s = "cgroup v2".to_string();
            if self.has_kill() {
                s.push_str(" (cgroup.kill)");
            }
            if self.pids_limited && self.v1_pids.is_none() {
                s.push_str(" pids.max");
            }
            if self.memory_limited && self.v1_memory.is_none() {
                s.push_str(" memory.max");
            }
            let _ = d;
            parts.push(s);
        }
        let mut v1 = Vec::new();
        if self.v1_pids.is_some() {
            v1.push("pids.max");
        }
        if self.v1_memory.is_some() {
            v1.push("memory.limit_in_bytes");
        }
        if !v1.is_empty() {
            parts.push(format!("cgroup v1 ({})", v1.join(", ")));
        }
        if parts.is_empty() {
            "none (no writable cgroup)".into()
        } else {
            parts.join(" + ")
        }
    }

    /// Every process in the instance's groups.
    pub fn members(&self) -> Vec<i32> {
        let mut v = Vec::new();
        for d in [&self.v2, &self.v1_pids, &self.v1_memory]
            .into_iter()
            .flatten()
        {
            for l in fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
            {
                if let Ok(p) = l.trim().parse::<i32>() {
                    if !v.contains(&p) {
                        v.push(p);
                    }
                }
            }
        }
        v
    }

    /// Kill every member at once where `cgroup.kill` exists (it cannot be outrun by forks).
    pub fn kill_all(&self) {
        if let Some(d) = &self.v2 {
            let _ = fs::write(d.join("cgroup.kill"), "1");
        }
    }

    /// Whether the memory limit was hit (the kernel's OOM killer acted in the group).
    pub fn oom_killed(&self) -> bool {
        if let Some(d) = &self.v1_memory {
            let ctl = fs::read_to_string(d.join("memory.oom_control")).unwrap_or_default();
            if ctl.lines().any(|l| {
                l.starts_with("oom_kill ") && l.split_whitespace().nth(1).is_some_and(|n| n != "0")
            }) {
                return true;
            }
            if fs::read_to_string(d.join("memory.failcnt")).is_ok_and(|s| s.trim() != "0") {
                return true;
            }
        }
        if let Some(d) = &self.v2 {
            let ev = fs::read_to_string(d.join("memory.events")).unwrap_or_default();
            return ev
                .lines()
                .any(|l| l.starts_with("oom_kill ") && !l.ends_with(" 0"));
        }
        false
    }

    /// Whether the pids limit refused a fork.
    pub fn pids_refused(&self) -> bool {
        for d in [&self.v1_pids, &self.v2].into_iter().flatten() {
            let ev = fs::read_to_string(d.join("pids.events")).unwrap_or_default();
            if ev
                .lines()
                .any(|l| l.starts_with("max ") && !l.ends_with(" 0"))
            {
                return true;
            }
        }
        false
    }
}

impl Drop for InstanceCgroup {
    fn drop(&mut self) {
        // Empty groups can be removed; a group with a member left cannot, and says so.
        for d in [&self.v2, &self.v1_pids, &self.v1_memory]
            .into_iter()
            .flatten()
        {
            for _ in 0..200 {
                if fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}
