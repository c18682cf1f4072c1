//! `--isolate-net`: the grader moves itself (and so every server it starts) into a fresh
//! network namespace with only loopback, and brings loopback up (a new namespace's `lo` starts
//! down). Student code then reaches no outside network, and parallel graders never collide on
//! ports. Call it first, before the grader starts any thread: a namespace belongs to the thread
//! that unshared it and to the threads and processes it creates afterwards.

/// Enter a new network namespace with `lo` up, or say why not.
pub fn isolate() -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
        format!(
            "--isolate-net: cannot create a network namespace ({e}); it needs root or \
             CAP_SYS_ADMIN, or unprivileged user namespaces"
        )
    })?;
    loopback_up()
        .map_err(|e| format!("--isolate-net: cannot bring loopback up in the new namespace: {e}"))
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
