//! The handler addresses the kernel holds for a server process, read through gdb.
//!
//! `signal.safety` trusts the shim's `install` records only as far as it can check them, and
//! `/proc/PID/status` (`SigCgt`) shows which signals are caught, not by what: a server that
//! installs a handler behind the shim's back (a raw `rt_sigaction`) and writes a well-formed
//! forged `install` line for that signal passed. Every handler the shim installs is one of its
//! own wrappers, so a caught signal whose kernel handler lies outside the shim's mapping was
//! not installed through it. No `/proc` file shows that address; the process itself can tell
//! it (`rt_sigaction(sig, NULL, &old)`), so gdb — run as the server's own user, never root —
//! attaches, makes that one call on the process's stack, prints the address and detaches.
//! Where gdb is missing or fails, nothing is concluded (the caller says so in evidence).

use std::time::{Duration, Instant};

/// `rt_sigaction`'s system call number, where the grader knows it.
#[cfg(target_arch = "x86_64")]
const NR_RT_SIGACTION: Option<u32> = Some(13);
#[cfg(target_arch = "aarch64")]
const NR_RT_SIGACTION: Option<u32> = Some(134);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const NR_RT_SIGACTION: Option<u32> = None;

/// The kernel's handler address for each of `signals` in process `pid`, or why it could not be
/// read. Bounded by `limit`.
pub fn read(pid: i32, signals: &[i32], limit: Duration) -> Result<Vec<(i32, u64)>, String> {
    use std::os::unix::process::CommandExt;
    let nr = NR_RT_SIGACTION.ok_or("this architecture's rt_sigaction number is not known")?;
    if signals.is_empty() {
        return Ok(Vec::new());
    }
    let (uid, gid) = ids(pid).ok_or("the process is gone")?;
    let as_root = nix::unistd::geteuid().is_root();
    if as_root && uid == 0 {
        return Err("the process runs as root".into());
    }
    let mut cmd = gdb_reading_handlers(pid, nr, signals);
    if as_root {
        // std drops supplementary groups when root changes the child's ids.
        cmd.uid(uid).gid(gid);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("gdb could not be started ({e})"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("gdb did not finish in time".into());
            }
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(child.stdout.take().ok_or("no gdb output")?, 1 << 20),
        &mut out,
    )
    .map_err(|e| format!("gdb's output could not be read ({e})"))?;
    let found = parse_handlers(&out, signals);
    if found.len() != signals.len() {
        return Err("gdb did not print every handler".into());
    }
    Ok(found)
}

/// gdb, attached to `pid`, made to call rt_sigaction(sig, NULL, &old) in the process for each
/// of `signals` and print the handler it reads (its own process group, a clean environment).
fn gdb_reading_handlers(pid: i32, nr: u32, signals: &[i32]) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("gdb");
    // The server may be in a mount namespace of its own: gdb would then read its files
    // through /proc/PID/root, which it may not; the paths are the same in the grader's.
    cmd.args([
        "-nx",
        "-batch",
        "-iex",
        "set sysroot /",
        "-p",
        &pid.to_string(),
    ]);
    for sig in signals {
        // The old action lands 1 KiB below the stack pointer (below the red zone and the
        // frame gdb pushes for the call); its first word is the handler. Printed only with
        // the call's result, so a failed call is never read as an address.
        cmd.arg("-ex").arg(format!(
            "set $echograde_r = (long)syscall({nr}, {sig}, 0, (long)$sp - 1024, 8)"
        ));
        cmd.arg("-ex").arg(format!(
            "printf \"echograde-handler {sig} %ld %lx\\n\", $echograde_r, *(unsigned long *)((long)$sp - 1024)"
        ));
    }
    cmd.env_clear()
        .envs(super::clean_env(None))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .process_group(0);
    cmd
}

/// The `echograde-handler SIG RESULT ADDR` lines gdb printed, for the signals asked about and
/// calls that succeeded.
fn parse_handlers(out: &str, signals: &[i32]) -> Vec<(i32, u64)> {
    out.lines()
        .filter_map(|l| {
            let mut it = l.strip_prefix("echograde-handler ")?.split_whitespace();
            let sig = it.next()?.parse().ok()?;
            if it.next()? != "0" {
                return None; // the call failed: nothing was read
            }
            let addr = u64::from_str_radix(it.next()?, 16).ok()?;
            signals.contains(&sig).then_some((sig, addr))
        })
        .collect()
}

/// The real uid and gid of a process, from /proc/PID/status.
fn ids(pid: i32) -> Option<(u32, u32)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((field("Uid:")?, field("Gid:")?))
}

/// The address ranges where `path` is mapped executable in process `pid`.
pub fn mapped_text(pid: i32, path: &str) -> Vec<(u64, u64)> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
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
