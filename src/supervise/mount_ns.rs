//! A private `/tmp` and `/dev/shm` for student code, where the kernel allows it.
//!
//! Files a server or a Makefile leaves in /tmp or /dev/shm (POSIX shared memory lives there)
//! survived grading, and were there for the next student's code to read. So the child that is
//! about to exec student code enters a mount namespace of its own (propagation private, so
//! nothing it mounts reaches the host) and mounts a fresh, size-limited tmpfs on each: what it
//! writes there lives in memory owned by that namespace and is gone when its last process is.
//!
//! The grader shares a few folders with student code through the file system: the program's
//! copy, the scratch `HOME`, the signal-safety shim and its log, the build's copy of the
//! submission. They live in the grader's temporary folder, often /tmp itself. The child clones
//! each (`open_tree`) before the fresh tmpfs covers it and attaches it again at its own path
//! (`move_mount`, Linux 5.2), so every path the grader hands the child names the same folder.
//!
//! It needs CAP_SYS_ADMIN over the grader's user namespace: as root, or without root once the
//! grader has entered a user namespace of its own (see [`super::netns`]; measured on Linux
//! 6.18, both work). Where the `unshare` fails nothing changes, which [`observed`] (measured
//! on the child) tells the report.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

/// The folders replaced, with the size of their fresh tmpfs.
const MOUNTS: [(&str, &str); 2] = [
    ("/tmp", "mode=1777,size=256m"),
    ("/dev/shm", "mode=1777,size=64m"),
];

/// A folder to bind back inside a fresh mount.
struct Keep {
    /// Each folder from the mount point down to the kept one (the last), to create in the
    /// fresh tmpfs.
    mkdirs: Vec<CString>,
}

/// The most folders kept: the child holds their mounts in a fixed array (no allocation).
const MAX_KEEP: usize = 16;

/// What the child does before exec, prepared (allocated) in the parent.
pub struct PrivateTmp {
    mounts: Vec<(CString, CString)>,
    keep: Vec<Keep>,
}

impl PrivateTmp {
    /// Plan fresh mounts that keep `shared` (folders, or files whose folder is kept) reachable.
    pub fn plan<'a>(shared: impl IntoIterator<Item = &'a Path>) -> PrivateTmp {
        let mounts = MOUNTS
            .iter()
            .filter(|(m, _)| Path::new(m).is_dir())
            .map(|(m, o)| (cstr(Path::new(m)), CString::new(*o).expect("no NUL")))
            .collect();
        let mut dirs: Vec<PathBuf> = Vec::new();
        for p in shared {
            let Ok(p) = std::fs::canonicalize(p) else {
                continue;
            };
            let dir = if p.is_dir() {
                p
            } else {
                match p.parent() {
                    Some(d) => d.to_path_buf(),
                    None => continue,
                }
            };
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        let keep = dirs
            .into_iter()
            .filter_map(|dir| {
                let (mount, _) = MOUNTS
                    .iter()
                    .find(|(m, _)| dir.starts_with(m) && dir != Path::new(m))?;
                let rel = dir.strip_prefix(mount).ok()?;
                let mut at = PathBuf::from(mount);
                let mkdirs = rel
                    .components()
                    .map(|c| {
                        at.push(c);
                        cstr(&at)
                    })
                    .collect();
                Some(Keep { mkdirs })
            })
            .take(MAX_KEEP)
            .collect();
        PrivateTmp { mounts, keep }
    }

    /// In the child, before exec (and before it gives up root): a new mount namespace with the
    /// fresh mounts and the shared folders bound back. `Ok(false)` when the kernel refuses a
    /// namespace (nothing changed); `Err` when a shared folder could not be bound back (the
    /// child must not exec then). Async-signal-safe: system calls on memory allocated before
    /// the fork.
    pub fn enter(&self) -> Result<bool, nix::errno::Errno> {
        use nix::libc;
        // SAFETY: plain system calls with NUL-terminated strings that outlive them.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Ok(false);
            }
            if libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Ok(false);
            }
            // A copy of each shared folder, taken now (a bind mount's source must be in the
            // caller's namespace) and attached again once the fresh tmpfs covers its path.
            let mut trees = [-1i32; MAX_KEEP];
            for (k, tree) in self.keep.iter().zip(trees.iter_mut()) {
                let path = k.mkdirs.last().expect("below the mount point");
                *tree = libc::syscall(
                    libc::SYS_open_tree,
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    (OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | AT_RECURSIVE) as libc::c_uint,
                ) as i32;
                if *tree < 0 {
                    return Err(nix::errno::Errno::last());
                }
            }
            for (at, opts) in &self.mounts {
                if libc::mount(
                    c"tmpfs".as_ptr(),
                    at.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    opts.as_ptr().cast(),
                ) != 0
                {
                    return Err(nix::errno::Errno::last());
                }
            }
            for (k, &tree) in self.keep.iter().zip(trees.iter()) {
                for d in &k.mkdirs {
                    if libc::mkdir(d.as_ptr(), 0o755) != 0
                        && nix::errno::Errno::last() != nix::errno::Errno::EEXIST
                    {
                        return Err(nix::errno::Errno::last());
                    }
                }
                let target = k.mkdirs.last().expect("below the mount point");
                if libc::syscall(
                    libc::SYS_move_mount,
                    tree,
                    c"".as_ptr(),
                    libc::AT_FDCWD,
                    target.as_ptr(),
                    MOVE_MOUNT_F_EMPTY_PATH,
                ) != 0
                {
                    return Err(nix::errno::Errno::last());
                }
                libc::close(tree);
            }
        }
        Ok(true)
    }
}

const OPEN_TREE_CLONE: u32 = 1;
const AT_RECURSIVE: u32 = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: nix::libc::c_uint = 4;

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

/// What was seen of the last child started, per namespace: 0 none yet, 1 private, 2 shared.
static SEEN_MNT: AtomicU8 = AtomicU8::new(0);
static SEEN_IPC: AtomicU8 = AtomicU8::new(0);

/// Record whether `pid` (a child just started) is in mount and IPC namespaces other than the
/// grader's: measured, not assumed. Warns once when its /tmp is the machine's.
pub fn note_child(pid: i32) {
    let _view = crate::inspect::owner::OwnerView::of(pid);
    let ns = |p: &str, kind: &str| std::fs::read_link(format!("/proc/{p}/ns/{kind}")).ok();
    for (kind, seen) in [("mnt", &SEEN_MNT), ("ipc", &SEEN_IPC)] {
        let private = match (ns(&pid.to_string(), kind), ns("self", kind)) {
            (Some(a), Some(b)) => a != b,
            _ => continue,
        };
        let was = seen.swap(if private { 1 } else { 2 }, Ordering::Relaxed);
        if kind == "mnt" && !private && was != 2 {
            eprintln!(
                "grade: warning: student code shares /tmp and /dev/shm with the machine (no \
                 mount namespace: the kernel refused one); files it leaves there can outlive \
                 the grading"
            );
        }
    }
}

/// For the report's containment evidence: `/tmp` and `/dev/shm`.
pub fn observed() -> &'static str {
    match SEEN_MNT.load(Ordering::Relaxed) {
        1 => "private (a fresh tmpfs on /tmp and /dev/shm per instance, gone with it)",
        2 => "shared with the machine (the kernel refused a mount namespace)",
        _ => "not observed (no student code was started)",
    }
}

/// For the report's containment evidence: System V and POSIX message queue IPC.
pub fn observed_ipc() -> &'static str {
    match SEEN_IPC.load(Ordering::Relaxed) {
        1 => "private (an IPC namespace per instance)",
        2 => "shared with the machine (the kernel refused an IPC namespace)",
        _ => "not observed (no student code was started)",
    }
}
