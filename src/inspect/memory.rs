//! Memory of a server process: thread count, VmSize and mapped thread stacks.
//!
//! A joinable thread that is never joined or detached keeps its stack mapped after it exits.
//! `Threads:` stays flat and VmSize alone misleads (malloc arenas grow it on correct servers),
//! so the leak is counted as thread-stack mappings: a small PROT_NONE guard region directly
//! below a private read-write anonymous region (glibc's layout of a pthread stack).

use super::Pid;
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryStats {
    pub threads: u64,
    pub vm_size_kib: u64,
    /// Mapped thread stacks (live threads' and leaked ones').
    pub thread_stacks: usize,
    /// Their total size.
    pub thread_stack_kib: u64,
}

/// The largest guard region taken to belong to a thread stack.
const MAX_GUARD: u64 = 1 << 20;
/// The smallest stack counted: smaller regions are not thread stacks.
const MIN_STACK: u64 = 16 << 10;

pub fn memory_stats(pid: Pid) -> Option<MemoryStats> {
    use procfs::process::{MMPermissions, MMapPath};
    let _view = super::owner::OwnerView::of(pid);
    let p = procfs::process::Process::new(pid).ok()?;
    let status = p.status().ok()?;
    let maps = p.maps().ok()?;
    let maps: Vec<_> = maps.into_iter().collect();
    let mut stacks = 0;
    let mut stack_bytes = 0;
    for pair in maps.windows(2) {
        let (guard, stack) = (&pair[0], &pair[1]);
        let guard_len = guard.address.1 - guard.address.0;
        let stack_len = stack.address.1 - stack.address.0;
        let is_guard = guard.perms
            & (MMPermissions::READ | MMPermissions::WRITE | MMPermissions::EXECUTE)
            == MMPermissions::NONE
            && guard_len <= MAX_GUARD
            && matches!(guard.pathname, MMapPath::Anonymous);
        let is_stack = stack
            .perms
            .contains(MMPermissions::READ | MMPermissions::WRITE)
            && stack.perms.contains(MMPermissions::PRIVATE)
            && stack_len >= MIN_STACK
            && matches!(stack.pathname, MMapPath::Anonymous | MMapPath::TStack(_))
            && guard.address.1 == stack.address.0;
        if is_guard && is_stack {
            stacks += 1;
            stack_bytes += stack_len;
        }
    }
    Some(MemoryStats {
        threads: status.threads,
        vm_size_kib: status.vmsize.unwrap_or(0),
        thread_stacks: stacks,
        thread_stack_kib: stack_bytes / 1024,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parked_threads_stacks() {
        // Eight live threads of this process: each has a guard + stack mapping.
        let me = std::process::id() as Pid;
        let before = memory_stats(me).unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(9));
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let b = barrier.clone();
                std::thread::Builder::new()
                    .stack_size(256 << 10)
                    .spawn(move || {
                        b.wait();
                        b.wait();
                    })
                    .unwrap()
            })
            .collect();
        barrier.wait();
        let during = memory_stats(me).unwrap();
        barrier.wait();
        for h in hs {
            h.join().unwrap();
        }
        assert!(
            during.thread_stacks >= before.thread_stacks + 8,
            "before {before:?} during {during:?}"
        );
    }
}
