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

use std::time::Duration;

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
    let nr = NR_RT_SIGACTION.ok_or("this architecture's rt_sigaction number is not known")?;
    if signals.is_empty() {
        return Ok(Vec::new());
    }
    let out = super::gdb::run_as_owner(pid, &[], &handler_commands(nr, signals), limit)?;
    let found = parse_handlers(&out, signals);
    if found.len() != signals.len() {
        return Err("gdb did not print every handler".into());
    }
    Ok(found)
}

/// The gdb commands that make the process call rt_sigaction(sig, NULL, &old) for each of
/// `signals` and print the handler it reads.
fn handler_commands(nr: u32, signals: &[i32]) -> Vec<String> {
    let mut commands = Vec::new();
    for sig in signals {
        // The old action lands 1 KiB below the stack pointer (below the red zone and the
        // frame gdb pushes for the call); its first word is the handler. Printed only with
        // the call's result, so a failed call is never read as an address.
        commands.push(format!(
            "set $echograde_r = (long)syscall({nr}, {sig}, 0, (long)$sp - 1024, 8)"
        ));
        commands.push(format!(
            "printf \"echograde-handler {sig} %ld %lx\\n\", $echograde_r, *(unsigned long *)((long)$sp - 1024)"
        ));
    }
    commands
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
