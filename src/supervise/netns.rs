//! The grader moves itself (and so every server it starts) into a fresh
//! network namespace with only loopback, and brings loopback up (a new namespace's `lo` starts
//! down). Student code then reaches no outside network, and parallel graders never collide on
//! ports. Call it first, before the grader starts any thread: a namespace belongs to the thread
//! that unshared it and to the threads and processes it creates afterwards.
//!
//! This is the default ([`isolate_by_default`]): a daemon a build left holding ports, or a
//! grading beside, cannot then take the ports the next server is given. As root the grader
//! unshares the namespace directly. Without root it first enters a user namespace of its own
//! that maps its own uid and gid to themselves (so it is still the same user, not root), where
//! the kernel lets unprivileged users make one (measured: Linux 6.18 does). `--share-net` opts
//! out; `--isolate-net` makes a missing namespace an error instead of a warning.

use std::sync::atomic::{AtomicBool, Ordering};

static ISOLATED: AtomicBool = AtomicBool::new(false);

/// Whether this grader runs in a network namespace of its own.
pub fn is_isolated() -> bool {
    ISOLATED.load(Ordering::Relaxed)
}

/// Enter a new network namespace (through a user namespace of the same user when not root),
/// or say why not. Call it while the process has one thread.
pub fn isolate_by_default() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        own_user_namespace().map_err(|e| {
            format!(
                "cannot create a user namespace to isolate the network without root ({e});                  the kernel or the container forbids unprivileged user namespaces"
            )
        })?;
    }
    isolate()
}

/// Enter a user namespace where this process keeps its uid and gid (mapped to themselves):
/// it gains capabilities over namespaces it creates there, and nothing over the host's.
fn own_user_namespace() -> std::io::Result<()> {
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)?;
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1\n"))?;
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1\n"))?;
    Ok(())
}

/// Enter a new network namespace with `lo` up, or say why not.
pub fn isolate() -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
        format!(
            "--isolate-net: cannot create a network namespace ({e}); it needs root or \
             CAP_SYS_ADMIN, or unprivileged user namespaces"
        )
    })?;
    loopback_up().map_err(|e| {
        format!("--isolate-net: cannot bring loopback up in the new namespace: {e}")
    })?;
    ISOLATED.store(true, Ordering::Relaxed);
    Ok(())
}

fn loopback_up() -> nix::Result<()> {
    use nix::libc;
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: `ifreq` is plain old data; zeroed is a valid value. The name "lo" fits its
    // IFNAMSIZ buffer with the terminating NUL. Both ioctls read and write only that struct.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(nix::errno::Errno::last());
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(nix::errno::Errno::last());
        }
    }
    Ok(())
}
