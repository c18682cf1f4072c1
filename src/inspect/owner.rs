//! Reading a server's `/proc` files as the server's own user, so root needs no
//! `CAP_SYS_PTRACE` to do it.
//!
//! The problem: as root the grader runs each server under a grading uid of its own, and the
//! files the checks rest on (`/proc/PID/fd`, `maps`, `task/TID/syscall`, `wchan`, `ns/*`) are
//! guarded by the kernel's ptrace access check, which a different uid passes only with
//! `CAP_SYS_PTRACE`. Docker's default container (Gradescope's) gives root no such capability:
//! measured there, the grader never found the socket the server listened on and every
//! correct server scored 0 ("the server did not listen").
//!
//! Those checks are made with the reader's *filesystem* ids (`PTRACE_MODE_READ_FSCREDS`): a
//! reader whose fsuid and fsgid are the server's own passes them as the server's owner would,
//! with no capability at all, as long as the server is dumpable. [`OwnerView`] takes the
//! server's ids for the calling thread only (`setfsuid` is per thread) and gives root's back
//! when dropped; where they do not open the table, root's own rights are used. A server that made itself non-dumpable keeps every such reader out, whatever
//! its ids: that is the server hiding, and the caller says so ([`non_dumpable`]).
//!
//! Without root nothing changes: the server runs as the grader's own user already.

use super::Pid;

/// The calling thread reads with `pid`'s filesystem ids while this lives.
#[must_use = "the ids are the server's only while the view lives"]
pub struct OwnerView {
    restore: Option<(u32, u32)>,
}

impl OwnerView {
    /// Take `pid`'s effective ids as this thread's filesystem ids, when the grader is root and
    /// the process is not, and they open its descriptor table; otherwise keep root's own
    /// rights (which, with `CAP_SYS_PTRACE`, still read a non-dumpable process).
    pub fn of(pid: Pid) -> OwnerView {
        let view = OwnerView::switched(pid);
        if view.restore.is_some() && !reads_fd_links(pid) {
            return OwnerView { restore: None }; // dropping `view` gives root's ids back
        }
        view
    }

    /// Take `pid`'s effective ids for this thread (root only, and only a non-root process).
    fn switched(pid: Pid) -> OwnerView {
        let mut view = OwnerView { restore: None };
        if !nix::unistd::geteuid().is_root() {
            return view;
        }
        let (Some(uid), Some(gid)) = (status_id(pid, "Uid:", 1), status_id(pid, "Gid:", 1)) else {
            return view;
        };
        if uid == 0 {
            return view;
        }
        use nix::unistd::{setfsgid, setfsuid, Gid, Uid};
        // The gid first, while the thread's fsuid is still root's.
        let old_gid = setfsgid(Gid::from_raw(gid));
        let old_uid = setfsuid(Uid::from_raw(uid));
        view.restore = Some((old_uid.as_raw(), old_gid.as_raw()));
        view
    }
}

/// Whether this thread may read where `pid`'s descriptors lead: the folder opening is not
/// enough (root without `CAP_SYS_PTRACE` opens it, then reads no link in it).
fn reads_fd_links(pid: Pid) -> bool {
    let Ok(mut dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    match dir.find_map(Result::ok) {
        Some(entry) => !matches!(
            std::fs::read_link(entry.path()),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied
        ),
        None => true,
    }
}

impl Drop for OwnerView {
    fn drop(&mut self) {
        if let Some((uid, gid)) = self.restore.take() {
            use nix::unistd::{setfsgid, setfsuid, Gid, Uid};
            // Back to root's fsuid first (that also gives back the file capabilities), then
            // the gid.
            setfsuid(Uid::from_raw(uid));
            setfsgid(Gid::from_raw(gid));
        }
    }
}

/// `/proc/PID/WHAT` read whole as the server's owner (bounded: these files are small, but a
/// student's process may map many regions).
pub fn read_to_string(pid: Pid, what: &str) -> std::io::Result<String> {
    use std::io::Read;
    let _view = OwnerView::of(pid);
    let mut buf = Vec::new();
    std::fs::File::open(format!("/proc/{pid}/{what}"))?
        .take(16 << 20)
        .read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The real uid and gid of a process, from `/proc/PID/status`.
pub fn ids(pid: Pid) -> Option<(u32, u32)> {
    Some((status_id(pid, "Uid:", 0)?, status_id(pid, "Gid:", 0)?))
}

/// Whether `pid` made itself non-dumpable: with its own ids, only then is its descriptor
/// table closed (the ownership /proc shows is no guide: it is not always updated at once).
pub fn non_dumpable(pid: Pid) -> bool {
    let _view = OwnerView::switched(pid);
    !reads_fd_links(pid)
}

/// Whether `pid` keeps the grader out of its descriptor table: non-dumpable, and the table
/// unreadable (as it is where the grader lacks `CAP_SYS_PTRACE`).
pub fn hides_descriptors(pid: Pid) -> bool {
    non_dumpable(pid) && {
        let _view = OwnerView::of(pid);
        !reads_fd_links(pid)
    }
}

/// Field `nth` (0 real, 1 effective) of a `Uid:`/`Gid:` line of `/proc/PID/status`.
fn status_id(pid: Pid, name: &str, nth: usize) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(name))?
        .split_whitespace()
        .nth(nth)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_dumpable_and_its_ids_are_read() {
        let me = std::process::id() as Pid;
        assert!(!non_dumpable(me));
        assert_eq!(
            ids(me),
            Some((
                nix::unistd::getuid().as_raw(),
                nix::unistd::getgid().as_raw()
            ))
        );
        assert!(read_to_string(me, "maps").unwrap().contains("[stack]"));
    }
}
