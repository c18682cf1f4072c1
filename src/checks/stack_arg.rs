//! `pthread_create` handed a pointer into its creator's own stack, as the grader's shim saw it.
//!
//! With the shim preloaded (and its log set), every `pthread_create` whose `arg` points into
//! the creating thread's stack writes a `thread` record (see `src/shim/README.md`), and the
//! new thread starts a few milliseconds late, so that the creator's next `accept` overwrites
//! the shared slot first whenever another client is waiting: the `&connfd` race then strikes
//! in every burst instead of now and then.
//!
//! The log is written inside the server's process: untrusted text, read bounded, never a path
//! to open. A record is used only to *name* a failure that clients saw (wrong bytes, clients
//! never served), never to fail a server, and only when it agrees with `/proc`: the pointer
//! lies in the server's stack mapping (`[stack]` for its main thread, an anonymous private
//! mapping for another of its threads) and the creator is one of its threads.

use super::Cx;
use crate::inspect::Pid;
use serde_json::{json, Value};
use std::ffi::OsString;
use std::path::PathBuf;

/// The most of the log read: 64 records per process fit in a few KiB.
const LOG_CAP: u64 = 1 << 20;

/// The shim's log for one check: its folder lives as long as this does.
pub struct ShimLog {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

/// The environment that preloads the shim with a fresh log, and the log; `None` when the
/// shim is not available (the server then runs without it, as before).
pub fn preload(cx: &Cx) -> Option<(ShimLog, Vec<(OsString, OsString)>)> {
    let shim = cx.launcher.shim.clone()?;
    let dir = tempfile::Builder::new()
        .prefix("echograde-threads")
        .tempdir()
        .ok()?;
    let path = dir.path().join("calls.log");
    // The server may run as another user: it must reach and append to its log only.
    std::fs::File::create(&path).ok()?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).ok()?;
    if let Some(u) = &cx.launcher.sandbox.run_as {
        std::os::unix::fs::chown(&path, Some(u.uid), Some(u.gid)).ok()?;
    }
    let env = vec![
        ("LD_PRELOAD".into(), shim.into_os_string()),
        ("ECHOGRADE_SHIM_LOG".into(), path.clone().into_os_string()),
    ];
    Some((ShimLog { _dir: dir, path }, env))
}

/// One pointer into a creator's stack, handed to several threads, confirmed by `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedArg {
    pub arg: u64,
    /// Threads created with it (a lower bound: the shim's records are capped).
    pub threads: u32,
    /// Whose stack: "main's stack" or "the stack of thread N".
    pub whose: String,
}

impl SharedArg {
    pub fn evidence(&self) -> Value {
        json!({ "arg": format!("{:#x}", self.arg), "threads": self.threads, "in": self.whose })
    }
}

/// A `thread` record: creator, arg, threads.
fn parse_line(line: &str, pid: Pid) -> Option<(Pid, u64, u32)> {
    let rest = line.strip_prefix("thread ")?;
    let get = |k: &str| {
        rest.split(' ')
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
    };
    if get("pid")?.parse::<Pid>().ok()? != pid {
        return None;
    }
    let creator = get("creator")?.parse().ok()?;
    let arg = u64::from_str_radix(get("arg")?.strip_prefix("0x")?, 16).ok()?;
    let threads = get("threads")?.parse().ok()?;
    Some((creator, arg, threads))
}

/// The pointer handed to the most threads of `pid`, if the log records one given to two or
/// more and `/proc` agrees (see the module's notes).
pub fn shared(log: &ShimLog, pid: Pid) -> Option<SharedArg> {
    let f = crate::supervise::open_regular(&log.path).ok()?;
    let (bytes, _) = crate::supervise::read_capped(f, LOG_CAP).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let mut best: Option<(Pid, u64, u32)> = None;
    for (creator, arg, threads) in text.lines().filter_map(|l| parse_line(l, pid)) {
        if threads >= 2 && best.is_none_or(|b| threads > b.2) {
            best = Some((creator, arg, threads));
        }
    }
    let (creator, arg, threads) = best?;
    let maps = read_maps(pid)?;
    let whose = confirm(&maps, pid, creator, arg)?;
    Some(SharedArg {
        arg,
        threads,
        whose,
    })
}

/// `/proc/PID/maps`, read as the server's own user (root without `CAP_SYS_PTRACE`, as in
/// Docker's default container, may not read it otherwise), bounded.
fn read_maps(pid: Pid) -> Option<String> {
    crate::inspect::owner::read_to_string(pid, "maps").ok()
}

/// Whose stack `arg` lies in, from the process's mappings: the main thread's `[stack]` when
/// the creator is the main thread, else an anonymous private read-write mapping of a thread
/// that exists.
pub(crate) fn confirm(maps: &str, pid: Pid, creator: Pid, arg: u64) -> Option<String> {
    let region = maps.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (lo, hi) = f.next()?.split_once('-')?;
        let (lo, hi) = (
            u64::from_str_radix(lo, 16).ok()?,
            u64::from_str_radix(hi, 16).ok()?,
        );
        let perms = f.next()?;
        let name = f.nth(3).unwrap_or("");
        (lo <= arg && arg < hi && perms.starts_with("rw") && perms.ends_with('p'))
            .then(|| name.to_string())
    })?;
    if creator == pid {
        return (region == "[stack]").then(|| "main's stack".to_string());
    }
    let alive = std::path::Path::new(&format!("/proc/{pid}/task/{creator}")).exists();
    (alive && region.is_empty()).then(|| format!("the stack of thread {creator}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "55d0c0a00000-55d0c0a01000 r-xp 00000000 08:01 1234 /srv/echo\n\
        55d0c0c00000-55d0c0c21000 rw-p 00000000 00:00 0 [heap]\n\
        7ffeca1d0000-7ffeca1f1000 rw-p 00000000 00:00 0                          [stack]\n";

    #[test]
    fn records_of_other_processes_or_malformed_are_ignored() {
        let l = "thread pid=7 creator=7 arg=0x7ffeca1f07e4 threads=3 stack=0x1-0x2";
        assert_eq!(parse_line(l, 7), Some((7, 0x7ffeca1f07e4, 3)));
        assert_eq!(parse_line(l, 8), None);
        assert_eq!(
            parse_line("thread pid=7 creator=7 arg=zz threads=3", 7),
            None
        );
        assert_eq!(parse_line("install pid=7 sig=17 handler=0x1", 7), None);
    }

    #[test]
    fn a_pointer_is_named_only_where_proc_puts_it() {
        assert_eq!(
            confirm(MAPS, 7, 7, 0x7ffeca1f07e4).as_deref(),
            Some("main's stack")
        );
        // A forged record pointing into the heap, or nowhere, names nothing.
        assert_eq!(confirm(MAPS, 7, 7, 0x55d0c0c00010), None);
        assert_eq!(confirm(MAPS, 7, 7, 0x10), None);
    }
}
