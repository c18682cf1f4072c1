//! The handler address the kernel holds for each signal a server catches, read by the grader
//! itself through ptrace.
//!
//! `signal.safety` trusts the shim's `install` records only as far as it can check them, and
//! `/proc/PID/status` (`SigCgt`) shows which signals are caught, not by what: a server that
//! installs a handler behind the shim's back (a raw `rt_sigaction`) and writes a well-formed
//! forged `install` line for that signal would pass. Every handler the shim installs is one of
//! its own wrappers, so a caught signal whose kernel handler lies outside the shim's mapping
//! was not installed through it. No `/proc` file shows that address; the process itself can
//! tell it, with `rt_sigaction(sig, NULL, &old)`.
//!
//! This used to be done by gdb (an inferior call). On CPUs with AMX state gdb 13 cannot save
//! and restore the extended registers around such a call ("Couldn't write extended state
//! status: Bad address"), so the read failed on every server there, and a failed read was
//! taken as "nothing to see". Here the grader makes the one system call itself: it seizes a
//! thread of the server, saves its registers, points it at a `syscall` instruction in the
//! vDSO with the call's arguments, lets it run to the call's exit, reads the 32 bytes the
//! kernel wrote below the stack pointer, and puts registers and bytes back (`regs` has the
//! arithmetic for x86-64 and aarch64, `inject` the ptrace sequence). Only the general-purpose
//! registers are touched, so no extended state is ever saved or restored; nothing of the
//! student's program is parsed.
//!
//! Who may trace: the tracing thread takes the server's own uid and gid (its thread only: the
//! kernel keeps credentials per thread), so it needs no `CAP_SYS_PTRACE` (Docker's default
//! container has none), and, being a thread of the server's ancestor, satisfies Yama's default
//! scope. A server that makes itself non-dumpable keeps that thread out: that is the server
//! blocking observation ([`Unread::Blocked`]), not a machine that cannot ([`Unread::Refused`]).

mod inject;
mod regs;

use std::time::{Duration, Instant};

/// Why the handlers could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unread {
    /// The server itself keeps observers out (it made itself non-dumpable).
    Blocked(String),
    /// This machine does not let the grader trace a process (a Yama scope, a seccomp filter).
    Refused(String),
    /// The read was tried and did not work (the words say where).
    Failed(String),
    /// The process ended meanwhile: nothing to read.
    Gone,
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unread::Blocked(s) | Unread::Refused(s) | Unread::Failed(s) => f.write_str(s),
            Unread::Gone => f.write_str("the process has ended"),
        }
    }
}

/// The kernel's handler address for each of `signals` in process `pid`, or why it could not
/// be read. Bounded by `limit`.
pub fn read(pid: i32, signals: &[i32], limit: Duration) -> Result<Vec<(i32, u64)>, Unread> {
    if signals.is_empty() {
        return Ok(Vec::new());
    }
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        return Err(Unread::Failed(
            "the grader reads handlers on x86-64 and aarch64 only".into(),
        ));
    }
    let deadline = Instant::now() + limit;
    let tid = live_thread(pid).ok_or(Unread::Gone)?;
    let ids = crate::inspect::owner::ids(pid).ok_or(Unread::Gone)?;
    let signals = signals.to_vec();
    let tracer = std::thread::Builder::new()
        .name("echograde-handlers".into())
        .spawn(move || {
            become_for_this_thread(ids)?;
            trace(pid, tid, &signals, deadline)
        })
        .map_err(|e| Unread::Failed(format!("no thread for the read ({e})")))?;
    tracer
        .join()
        .unwrap_or_else(|_| Err(Unread::Failed("the read panicked".into())))
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn trace(
    pid: i32,
    tid: i32,
    signals: &[i32],
    deadline: Instant,
) -> Result<Vec<(i32, u64)>, Unread> {
    inject::handlers(pid, tid, signals, deadline)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn trace(_: i32, _: i32, _: &[i32], _: Instant) -> Result<Vec<(i32, u64)>, Unread> {
    unreachable!("refused before")
}

/// Give the calling thread, and only it, the uid and gid `ids` (real, effective and saved):
/// the raw system calls, not libc's, which would change every thread of the grader. A no-op
/// unless the grader is root and the server is not.
fn become_for_this_thread((uid, gid): (u32, u32)) -> Result<(), Unread> {
    if !nix::unistd::geteuid().is_root() || uid == 0 {
        return Ok(());
    }
    use nix::libc;
    // SAFETY: plain system calls on this thread's own credentials; the thread ends after the
    // read, so nothing else ever runs with them.
    let failed = unsafe {
        libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) != 0
            || libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0
            || libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0
    };
    if failed {
        return Err(Unread::Refused(format!(
            "the grader could not take the server's user ids for tracing ({})",
            nix::errno::Errno::last()
        )));
    }
    Ok(())
}

/// Classify a refused ptrace request on `pid`.
fn refused(pid: i32, what: &str, e: nix::errno::Errno) -> Unread {
    use nix::errno::Errno;
    match e {
        Errno::ESRCH => Unread::Gone,
        Errno::EPERM if crate::inspect::owner::non_dumpable(pid) => Unread::Blocked(
            "the server made itself non-dumpable (prctl(PR_SET_DUMPABLE, 0)), which keeps every \
             observer out of it"
                .into(),
        ),
        Errno::EPERM => Unread::Refused(format!(
            "this machine does not let the grader trace the server ({what}: {e}{})",
            yama_scope()
                .filter(|&s| s >= 2)
                .map(|s| format!("; kernel.yama.ptrace_scope is {s}"))
                .unwrap_or_default()
        )),
        e => Unread::Failed(format!("{what} failed ({e})")),
    }
}

fn yama_scope() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether thread (or process) `tid` has exited: a zombie, or gone.
fn exited(tid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{tid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next())
        })
        .is_none_or(|st| st == 'Z' || st == 'X')
}

/// A thread of `pid` that has not exited: the main one if it lives (a main thread that called
/// `pthread_exit` is a zombie while the others serve).
fn live_thread(pid: i32) -> Option<i32> {
    if !exited(pid) {
        return Some(pid);
    }
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|&t| !exited(t))
}

/// The address ranges where `path` is mapped executable in process `pid`.
pub fn mapped_text(pid: i32, path: &str) -> Vec<(u64, u64)> {
    let maps = crate::inspect::owner::read_to_string(pid, "maps").unwrap_or_default();
    maps.lines()
        .filter(|l| l.ends_with(path))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (range, perms) = (f.next()?, f.next()?);
            if !perms.contains('x') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Write};
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    /// A process that catches `sig` and blocks in `read` on its stdin, started (as root) under
    /// another uid like a server is, once its handler is in place.
    fn catching(sig: i32, program: &str, args: &[&str]) -> std::process::Child {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if nix::unistd::geteuid().is_root() {
            cmd.uid(65534).gid(65534);
        }
        let child = cmd.spawn().expect("start the catcher");
        let pid = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(10);
        while caught(pid).is_none_or(|m| m & (1 << (sig - 1)) == 0) {
            assert!(Instant::now() < deadline, "the catcher never caught {sig}");
            std::thread::sleep(Duration::from_millis(5));
        }
        child
    }

    fn caught(pid: i32) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        u64::from_str_radix(
            s.lines().find_map(|l| l.strip_prefix("SigCgt:"))?.trim(),
            16,
        )
        .ok()
    }

    #[test]
    fn reads_the_handler_and_the_process_goes_on_as_before() {
        let usr1 = nix::libc::SIGUSR1;
        let script = r#"trap : USR1; read -r line; echo "got $line""#;
        let mut child = catching(usr1, "bash", &["-c", script]);
        let pid = child.id() as i32;
        let found = read(pid, &[usr1], Duration::from_secs(10)).expect("the handler is read");
        assert_eq!(found.len(), 1);
        let (sig, addr) = found[0];
        assert_eq!(sig, usr1);
        let bash = std::fs::canonicalize("/bin/bash").unwrap();
        let text = mapped_text(pid, &bash.to_string_lossy());
        assert!(
            text.iter().any(|&(lo, hi)| lo <= addr && addr < hi),
            "the handler {addr:#x} lies in bash's own code {text:x?}"
        );
        // The read it was blocked in was restarted, not failed: it still reads and answers.
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello\n").unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "got hello\n");
        assert!(child.wait().unwrap().success());
    }

    #[test]
    fn a_process_that_made_itself_non_dumpable_is_blocked_not_misread() {
        let usr1 = nix::libc::SIGUSR1;
        // Python's own C handler for a signal it handles; then PR_SET_DUMPABLE (4) to 0.
        let script = "import ctypes, signal, sys\n\
                      signal.signal(signal.SIGUSR1, lambda *a: None)\n\
                      ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)\n\
                      sys.stdin.readline()";
        // The system's python (as root the test runs it as nobody, who cannot reach a
        // python installed under /root).
        let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("a system python3");
        let mut child = catching(usr1, python, &["-c", script]);
        let pid = child.id() as i32;
        // Wait until it is non-dumpable: the files in /proc/PID turn root's.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !crate::inspect::owner::non_dumpable(pid) {
            assert!(Instant::now() < deadline, "never became non-dumpable");
            std::thread::sleep(Duration::from_millis(5));
        }
        let got = read(pid, &[usr1], Duration::from_secs(10));
        drop(child.stdin.take());
        let _ = child.wait();
        // The tracing thread holds the process's uid and no capability, as root or not.
        assert!(matches!(got, Err(Unread::Blocked(_))), "{got:?}");
    }
}
