//! `signal.safety`: signal handlers call only async-signal-safe functions.
//!
//! A handler that calls printf deadlocks only when the signal lands in the few instructions
//! where the interrupted code holds stdio's lock — measured: 5 to 46 s of churn (33k–151k
//! connections) before a CS:APP-style server hung. So this check does not wait for the
//! deadlock; it observes its cause. The server runs with the grader's LD_PRELOAD shim, which
//! wraps every handler the server installs and records each call, made while a handler runs,
//! of a function signal-safety(7) does not list (printf, malloc, exit, ...). Clients then come
//! and go so that handlers run: children exit (SIGCHLD), clients leave early (SIGPIPE).

use super::{common::*, in_range, Cx, Outcome};
use crate::client::{payload, RunLimits, Session, Step, Swarm};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

pub const TITLE: &str = "Signal handlers call only async-signal-safe functions";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Clients that connect and leave one after another.
    pub sequential: u32,
    /// Clients that leave at the same time.
    pub simultaneous: u32,
    /// Clients that send lines and reset the connection at once (SIGPIPE for the server).
    pub early_leavers: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params { sequential: 10, simultaneous: 10, early_leavers: 5 }
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        in_range("sequential", self.sequential, 0, 10_000)?;
        in_range("simultaneous", self.simultaneous, 0, 10_000)?;
        in_range("early_leavers", self.early_leavers, 0, 10_000)
    }
}

/// Whether the executable can take a preloaded library: a statically linked ELF cannot.
fn statically_linked(program: &Path) -> bool {
    use object::Object;
    let Some(data) = read_program(program) else { return false };
    match object::File::parse(&*data) {
        Ok(f) => f.section_by_name(".interp").is_none(),
        Err(_) => false, // a script: its interpreter takes the shim
    }
}

/// The most of the shim's log the grader reads: the log is the server's own file.
const LOG_CAP: u64 = 8 << 20;
/// The most of a program the grader reads to name a handler.
const PROGRAM_CAP: u64 = 256 << 20;

/// The program the grader launched (validated, a regular file), read bounded and never through
/// a link or a FIFO: between its validation and now, a server running as the grader's user
/// could have replaced it.
fn read_program(program: &Path) -> Option<Vec<u8>> {
    let f = crate::supervise::open_regular(program).ok()?;
    let (data, more) = crate::supervise::read_capped(f, PROGRAM_CAP).ok()?;
    (!more).then_some(data)
}

/// Name a handler's function from the program's symbol table, given its offset in it.
fn symbol_at(program: &Path, offset: u64) -> Option<String> {
    use object::{Object, ObjectSymbol};
    let data = read_program(program)?;
    let file = object::File::parse(&*data).ok()?;
    // For a PIE or shared object, addresses in the file are offsets from its load base.
    file.symbols()
        .chain(file.dynamic_symbols())
        .filter(|s| s.kind() == object::SymbolKind::Text && s.address() <= offset && offset < s.address() + s.size().max(1))
        .find_map(|s| s.name().ok().map(str::to_string))
}

/// What /proc shows of the serving process: whether the shim is mapped in it, and the
/// signals it catches (SigCgt).
#[derive(Debug)]
struct Observed {
    pid: crate::inspect::Pid,
    shim_mapped: bool,
    caught: Vec<i32>,
}

impl Observed {
    /// Read /proc/PID/maps and /proc/PID/status (each bounded); `Err` says, in words, why the
    /// grader could not.
    fn read(pid: crate::inspect::Pid, shim: &Path) -> Result<Observed, String> {
        let read = |what: &str| -> Result<String, String> {
            crate::inspect::owner::read_to_string(pid, what).map_err(|e| {
                    format!(
                        "The grader could not observe the process that serves (pid {pid}): reading /proc/{pid}/{what} \
                         failed ({e}), so it could not tell whether its signal-safety library is loaded there or which \
                         handlers it has. A server that hides itself (makes itself non-dumpable, or exits) cannot be \
                         graded on this check."
                    )
            })
        };
        let status = read("status")?;
        // A process that has exited (a zombie not yet reaped) shows no mappings at all: it is
        // gone, not unshimmed. The caller then goes by what it saw at start.
        if status
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .is_some_and(|st| matches!(st.trim_start().chars().next(), Some('Z' | 'X')))
        {
            return Err(format!("The process that served (pid {pid}) has exited."));
        }
        let maps = read("maps")?;
        // A process on its way out has dropped its memory before it shows as a zombie: no
        // mappings at all, where a live process always has some (its program, the stack). It
        // is exiting, not unshimmed.
        if maps.trim().is_empty() {
            return Err(format!("The process that served (pid {pid}) has exited."));
        }
        let shim = std::fs::canonicalize(shim).unwrap_or_else(|_| shim.to_path_buf());
        let shim = shim.to_string_lossy();
        let shim_mapped = maps.lines().any(|l| l.split_whitespace().nth(5) == Some(&*shim) && l.ends_with(&*shim));
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
            .ok_or_else(|| format!("The grader could not read which signals the process that serves (pid {pid}) handles."))?;
        // Signals 1-31 only: glibc keeps real-time signals 32 and 33 for itself (thread
        // cancellation, setuid across threads) and installs them without the program.
        let caught = (1..32).filter(|s| mask & (1u64 << (s - 1)) != 0).collect();
        Ok(Observed { pid, shim_mapped, caught })
    }

    /// This observation with the signals of an earlier one added (a handler removed since was
    /// still one the server had).
    fn with(mut self, earlier: &Observed) -> Observed {
        if self.pid == earlier.pid {
            self.shim_mapped &= earlier.shim_mapped;
        }
        for s in &earlier.caught {
            if !self.caught.contains(s) {
                self.caught.push(*s);
            }
        }
        self
    }
}

/// Whether the process is still there and not a zombie (gdb cannot attach to one).
fn inspect_alive(pid: crate::inspect::Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().chars().next()))
        .flatten()
        .is_some_and(|st| st != 'Z' && st != 'X')
}

#[derive(Debug, Default)]
struct HandlerLog {
    /// An `install` line was seen for it.
    installed: bool,
    symbol: String,
    runs: u64,
    /// Unsafe calls by function name.
    calls: BTreeMap<String, u64>,
}

/// Parse the shim's log: `install`, `run` and `unsafe` lines of key=value fields.
///
/// The log is written inside the server's process, so it is untrusted text: nothing in it is
/// opened. A handler is named from `module`'s symbols only when `module` is the program the
/// grader itself launched (`program`: the path the server runs as, and the file to read).
fn parse_log(text: &str, program: Option<(&str, &Path)>) -> BTreeMap<(i32, String), HandlerLog> {
    let mut handlers: BTreeMap<(i32, String), HandlerLog> = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.splitn(2, ' ');
        let kind = words.next().unwrap_or("");
        let rest = words.next().unwrap_or("");
        let (fields, module) = match rest.split_once(" module=") {
            Some((f, m)) => (f, Some(m)),
            None => (rest, None),
        };
        let get = |k: &str| fields.split(' ').find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')));
        let (Some(sig), Some(handler)) = (get("sig").and_then(|s| s.parse::<i32>().ok()), get("handler")) else { continue };
        let entry = handlers.entry((sig, handler.to_string())).or_default();
        match kind {
            "install" => {
                entry.installed = true;
                let named = get("symbol").filter(|s| *s != "-").map(str::to_string);
                let resolved = named.or_else(|| {
                    let off = u64::from_str_radix(get("offset")?.trim_start_matches("0x"), 16).ok()?;
                    let (exe, file) = program?;
                    (module? == exe).then(|| symbol_at(file, off))?
                });
                entry.symbol = resolved.unwrap_or_else(|| format!("the function at {handler}"));
            }
            "run" => entry.runs += 1,
            "unsafe" => {
                if let Some(call) = get("call") {
                    *entry.calls.entry(call.to_string()).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    handlers
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn sig_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig).map(|s| s.as_str().to_string()).unwrap_or(format!("signal {sig}"))
}

/// Why a given unsafe call can hang or corrupt the server, in the lecture's terms.
fn why(call: &str) -> &'static str {
    match call {
        "printf" | "fprintf" | "vprintf" | "vfprintf" | "puts" | "fputs" | "putchar" | "fputc" | "putc" | "fwrite"
        | "fflush" | "perror" | "dprintf" => {
            "stdio functions take the stream's lock: if the signal arrives while the main program is inside printf holding that lock, the handler waits for a lock its own thread holds — a deadlock (the lecture's printf-in-a-handler example)"
        }
        "malloc" | "calloc" | "realloc" | "free" => {
            "malloc and free take the heap's lock: a signal that lands inside malloc makes the handler wait for itself, or corrupts the heap"
        }
        "exit" => "exit runs atexit handlers and flushes stdio (taking its locks); use _exit in a handler",
        "pthread_mutex_lock" => "a mutex the interrupted code holds can never be released while its handler waits for it",
        _ => "it is not on the async-signal-safe list (signal-safety(7)) and may take locks or use state the interrupted code is changing",
    }
}

/// The longest this check may wait, its deadlines added up. Start, the sequential clients (3 × idle and a serve), the simultaneous ones and the early leavers (3 × idle), the last handlers (grace).
pub fn bound(_p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + t.idle * 3 + t.serve + t.idle * 3 + t.grace * 3
}

pub fn run(cx: &mut Cx, p: &Params) -> Outcome {
    let t = cx.timing;
    let mut rng = cx.rng.clone();
    if statically_linked(&cx.launcher.spec.program) {
        return Outcome::skipped(
            "The server is statically linked, so the grader cannot preload its signal-safety shim; this check could not run.",
            json!({ "reason": "statically linked" }),
        );
    }
    let Some(shim) = cx.launcher.shim.clone() else {
        return Outcome::skipped(
            "The grader's signal-safety shim is not available on this machine (it was built without a C compiler).",
            json!({ "reason": "no shim" }),
        );
    };
    let (_logdir, log) = match shim_log(cx) {
        Ok(l) => l,
        Err(o) => return o,
    };
    let env: Vec<(OsString, OsString)> = vec![
        ("LD_PRELOAD".into(), shim.clone().into_os_string()),
        ("ECHOGRADE_SHIM_LOG".into(), log.clone().into_os_string()),
    ];
    let program = cx.launcher.spec.program.clone();
    let srv = match cx.start_with_env(env) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let at_start = Observed::read(srv.main_pid, &shim);
    // A server that stops serving still logged what its handlers did: no early return.
    drive(srv, &mut rng, p, t);
    // Let the handlers for the last exits run: wait until no child is left unreaped.
    wait_until(t.grace, || children(srv).is_empty());
    // What /proc shows of the serving process now (or, if it is gone, when it started).
    let seen = match Observed::read(srv.main_pid, &shim) {
        Ok(now) => match at_start {
            Ok(then) => Ok(now.with(&then)),
            Err(_) => Ok(now),
        },
        Err(e) => at_start.map_err(|_| e),
    };
    // The kernel's handlers are read while the process surely lives, before it is sent the
    // signals its handlers may end it on.
    let kernel_note = match seen.as_ref().map(|o| kernel_handlers(o, &shim)) {
        Ok(Err(fail)) => return fail,
        Ok(Ok(note)) => note,
        Err(_) => None,
    };
    // A handler is judged on what it did when it ran: send each caught signal once, and wait
    // for its run to be logged.
    let sent = match &seen {
        Ok(o) => exercise(o, &log, t.grace * 2),
        Err(_) => Vec::new(),
    };
    // The log is the server's file: read bounded, as bytes, never through a link or a FIFO.
    let (bytes, truncated) = match crate::supervise::open_regular(&log)
        .map_err(|e| e.to_string())
        .and_then(|f| crate::supervise::read_capped(f, LOG_CAP).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            return Outcome::fail(
                0.0,
                format!(
                    "The grader could not read the log its signal-safety library keeps for the server ({e}): \
                     something replaced or removed it, so whether the server's handlers are safe could not be checked."
                ),
                json!({ "log": "unreadable" }),
            )
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let exe = std::fs::canonicalize(&program).ok();
    let exe_str = exe.as_ref().map(|e| e.to_string_lossy().into_owned());
    let handlers = parse_log(&text, exe_str.as_deref().zip(exe.as_deref()));
    if let Some((why, ev)) = unobserved(&seen, &handlers) {
        return Outcome::fail(0.0, why, ev);
    }
    let caught = seen.as_ref().map(|o| o.caught.clone()).unwrap_or_default();
    let mut verdict = judge(&handlers, truncated, &caught);
    if let Some(note) = kernel_note {
        verdict.evidence.insert("kernel_handlers".into(), note);
    }
    if !sent.is_empty() {
        let names: Vec<String> = sent.iter().map(|&s| sig_name(s)).collect();
        verdict.evidence.insert("signals_sent_by_the_grader".into(), json!(names));
    }
    verdict
}

/// Recorded is not yet installed through the shim: a forged `install` line can name a signal
/// whose handler was installed behind its back. The kernel's handler of each caught signal
/// must be one of the shim's wrappers (read through gdb as the server's user). A failure when
/// one is not; otherwise a note for the evidence of what was read.
fn kernel_handlers(o: &Observed, shim: &std::path::Path) -> Result<Option<serde_json::Value>, Outcome> {
    if !inspect_alive(o.pid) {
        return Ok(None);
    }
    let shim_path = std::fs::canonicalize(shim).unwrap_or_else(|_| shim.to_path_buf());
    let text = crate::supervise::shim_mapped_text(o.pid, &shim_path.to_string_lossy());
    let limit = crate::timing::within_check(std::time::Duration::from_secs(10));
    let found = match crate::supervise::read_kernel_handlers(o.pid, &o.caught, limit) {
        Ok(found) => found,
        Err(unread) => return unread_handlers(o, unread),
    };
    let foreign: Vec<(i32, u64)> = found
        .into_iter()
        .filter(|&(_, a)| a > 1 && !text.iter().any(|&(lo, hi)| lo <= a && a < hi))
        .collect();
    if foreign.is_empty() {
        return Ok(Some(json!(if o.caught.is_empty() {
            "no signal is caught"
        } else {
            "every caught signal's handler is the shim's wrapper"
        })));
    }
    let names: Vec<String> = foreign.iter().map(|(s, a)| format!("{} (at {a:#x})", sig_name(*s))).collect();
    Err(Outcome::fail(
        0.0,
        format!(
            "The serving process (pid {}) handles {} with a function the grader's signal-safety library \
             did not install (the kernel's handler lies outside the library), although the library's log \
             records a handler for it: the grader could not observe that handler, so whether it is \
             async-signal-safe could not be checked. Install handlers with sigaction or signal (the book's \
             Signal wrapper).",
            o.pid,
            names.join(", ")
        ),
        json!({ "handlers_not_installed_through_the_shim": names }),
    ))
}

/// Fail closed when the kernel's handlers could not be read: a caught signal whose handler
/// nobody saw is never a pass. The server keeping observers out is its failure; a machine or
/// a mechanism that could not is the grader's (`error`), never the student's.
fn unread_handlers(o: &Observed, unread: crate::supervise::Unread) -> Result<Option<serde_json::Value>, Outcome> {
    use crate::supervise::Unread;
    let caught: Vec<String> = o.caught.iter().map(|&s| sig_name(s)).collect();
    let what = format!(
        "The serving process (pid {}) handles {}, but the grader could not read which functions the kernel \
         calls for {}",
        o.pid,
        caught.join(", "),
        if caught.len() == 1 { "it" } else { "them" }
    );
    match unread {
        // It ended after it was observed: judged on what its log recorded.
        Unread::Gone => Ok(Some(json!("not read (the process ended first)"))),
        Unread::Blocked(why) => Err(Outcome::fail(
            0.0,
            format!("{what}: {why}. Whether its handlers are async-signal-safe could not be checked, so this check cannot pass."),
            json!({ "caught": caught, "kernel_handlers": format!("not read: {why}") }),
        )),
        Unread::Refused(why) | Unread::Failed(why) => Err(Outcome::error(format!(
            "{what}: {why}. This is the grader's limit, not a fault of the server: the check is left ungraded."
        ))),
    }
}

/// A log the server (maybe another user) can append to, in a directory of its own: the
/// directory is held for the check, the log's path returned.
fn shim_log(cx: &Cx) -> Result<(tempfile::TempDir, std::path::PathBuf), Outcome> {
    let logdir = match tempfile::Builder::new().prefix("echograde-sigsafety").tempdir() {
        Ok(d) => d,
        Err(e) => return Err(Outcome::error(format!("cannot create a directory for the shim's log: {e}"))),
    };
    let log = logdir.path().join("calls.log");
    // The server may run as another user (when the grader is root): it must be able to reach
    // and append to its log, and nothing else in the directory.
    let prepared = std::fs::File::create(&log).and_then(|_| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(logdir.path(), std::fs::Permissions::from_mode(0o711))?;
        if let Some(u) = &cx.launcher.sandbox.run_as {
            std::os::unix::fs::chown(&log, Some(u.uid), Some(u.gid))?;
        }
        Ok(())
    });
    if let Err(e) = prepared {
        return Err(Outcome::error(format!("cannot prepare the shim's log: {e}")));
    }
    Ok((logdir, log))
}

/// The workload: sequential clients, simultaneous ones and early leavers (resets), so that
/// SIGCHLD and SIGPIPE handlers run.
fn drive(srv: &mut crate::supervise::Server, rng: &mut rand_chacha::ChaCha8Rng, p: &Params, t: crate::timing::Timing) {
    let _ = sequential_clients(srv, rng, "s", p.sequential, t.serve, t.idle * 3);
    let mut swarm = Swarm::new(srv.addr());
    for i in 0..p.simultaneous {
        let label = format!("m{i}");
        let line = payload::tagged_line(rng, &label);
        swarm.add(Session::new(label, vec![Step::Send(line), Step::Expect, Step::Close]).judging_replies());
    }
    for i in 0..p.early_leavers {
        let lines: Vec<u8> = (0..20).flat_map(|j| payload::tagged_line(rng, &format!("e{i}-{j}"))).collect();
        swarm.add(Session::new(format!("e{i}"), vec![Step::Send(lines), Step::Reset]));
    }
    swarm.run(RunLimits { idle: t.idle, overall: t.idle * 3 }, |_| false);
    drop(swarm);
}

/// Signals a handler most likely ends the process on: sent last, one at a time.
const ENDING: [i32; 9] = [
    nix::libc::SIGHUP,
    nix::libc::SIGQUIT,
    nix::libc::SIGILL,
    nix::libc::SIGABRT,
    nix::libc::SIGBUS,
    nix::libc::SIGFPE,
    nix::libc::SIGSEGV,
    nix::libc::SIGINT,
    nix::libc::SIGTERM,
];

/// Send the serving process each signal it catches, once, and wait (within `budget` in all) until the
/// shim logs that signal's handler running, or the process has ended. The workload runs the
/// SIGCHLD and SIGPIPE handlers of most servers; a SIGINT or SIGTERM handler runs only when
/// the server is stopped, and a handler that never runs would otherwise pass unseen. Returns
/// the signals sent.
fn exercise(o: &Observed, log: &Path, budget: std::time::Duration) -> Vec<i32> {
    let end = std::time::Instant::now() + budget;
    let mut order = o.caught.clone();
    order.sort_by_key(|s| ENDING.iter().position(|e| e == s).map_or(0, |p| p + 1));
    let mut sent = Vec::new();
    for sig in order {
        let Ok(signal) = nix::sys::signal::Signal::try_from(sig) else { continue };
        if !inspect_alive(o.pid) {
            break;
        }
        let before = logged_runs(log, sig);
        if nix::sys::signal::kill(nix::unistd::Pid::from_raw(o.pid), signal).is_err() {
            break;
        }
        sent.push(sig);
        let left = end.saturating_duration_since(std::time::Instant::now());
        wait_until(left, || logged_runs(log, sig) > before || !inspect_alive(o.pid));
    }
    sent
}

/// How many `run` lines for `sig` the log holds (0 when it cannot be read).
fn logged_runs(log: &Path, sig: i32) -> usize {
    let Ok((bytes, _)) = crate::supervise::open_regular(log)
        .map_err(|e| e.to_string())
        .and_then(|f| crate::supervise::read_capped(f, LOG_CAP).map_err(|e| e.to_string()))
    else {
        return 0;
    };
    let needle = format!(" sig={sig} ");
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| l.starts_with("run ") && l.contains(&needle))
        .count()
}

/// Why the handlers that run in the serving process could not be checked, if they could not:
/// it could not be observed, the shim is not loaded there, or it handles a signal whose
/// handler the shim never saw installed.
fn unobserved(
    seen: &Result<Observed, String>,
    handlers: &BTreeMap<(i32, String), HandlerLog>,
) -> Option<(String, serde_json::Value)> {
    let recorded: std::collections::BTreeSet<i32> =
        handlers.iter().filter(|(_, h)| h.installed).map(|((sig, _), _)| *sig).collect();
    match seen {
        Err(why) => Some((why.clone(), json!({ "observed": false }))),
        Ok(o) if !o.shim_mapped => Some((
            format!(
                "The grader's signal-safety library (loaded with LD_PRELOAD) is not loaded in the process that \
                 serves (pid {}), so the handlers that run there could not be checked. A server that clears \
                 LD_PRELOAD, re-executes itself without it, or is started through a program that drops it, \
                 cannot be graded on this check.",
                o.pid
            ),
            json!({ "shim_loaded": false }),
        )),
        Ok(o) => {
            let unseen: Vec<i32> = o.caught.iter().copied().filter(|s| !recorded.contains(s)).collect();
            (!unseen.is_empty()).then(|| {
                let names: Vec<String> = unseen.iter().map(|s| sig_name(*s)).collect();
                (
                    format!(
                        "The serving process (pid {}) handles {}, but the grader's signal-safety library never saw \
                         that handler installed (a raw rt_sigaction system call, or a log that was tampered with), \
                         so whether it is async-signal-safe could not be checked. Install handlers with \
                         sigaction or signal (the book's Signal wrapper).",
                        o.pid,
                        names.join(", ")
                    ),
                    json!({ "handlers_not_recorded": names }),
                )
            })
        }
    }
}

/// The verdict from what the handlers did: a pass when none called an unsafe function, else
/// each offending handler, what it called and why that is unsafe.
fn judge(handlers: &BTreeMap<(i32, String), HandlerLog>, truncated: bool, caught: &[i32]) -> Outcome {
    let installed: Vec<serde_json::Value> = handlers
        .iter()
        .map(|((sig, _), h)| json!({ "signal": sig_name(*sig), "handler": h.symbol, "runs": h.runs, "unsafe_calls": h.calls }))
        .collect();
    let mut ev = json!({ "handlers": installed });
    if truncated {
        ev["log_truncated_at_bytes"] = json!(LOG_CAP);
    }
    let bad: Vec<_> = handlers.iter().filter(|(_, h)| !h.calls.is_empty()).collect();
    // A handler nobody saw run proves nothing: never a pass on it.
    let never_ran: Vec<&(i32, String)> = handlers
        .iter()
        .filter(|((sig, _), h)| h.installed && caught.contains(sig))
        .filter(|((sig, _), _)| !handlers.iter().any(|((s, _), h)| s == sig && h.runs > 0))
        .map(|(k, _)| k)
        .collect();
    if bad.is_empty() && !never_ran.is_empty() {
        let names: Vec<String> = never_ran
            .iter()
            .map(|(sig, handler)| format!("the {} handler `{}`", sig_name(*sig), handlers[&(*sig, handler.clone())].symbol))
            .collect();
        ev["handlers_never_ran"] = json!(never_ran.iter().map(|(s, _)| sig_name(*s)).collect::<Vec<_>>());
        return Outcome::fail(
            0.0,
            format!(
                "{} never ran during grading, not even when the grader sent the signal to the serving process, \
                 so what it does could not be checked. (A handler for a signal that the server blocks, or that \
                 only runs at exit, cannot be observed.)",
                capitalize(&names.join(" and "))
            ),
            ev,
        );
    }
    if bad.is_empty() {
        let fb = if handlers.is_empty() {
            "The server installs no signal handlers, so none can call an unsafe function.".to_string()
        } else {
            let runs: u64 = handlers.values().map(|h| h.runs).sum();
            format!(
                "The server's handlers ran {runs} time(s) and called only async-signal-safe functions."
            )
        };
        return Outcome::pass(fb, ev);
    }
    let mut parts = Vec::new();
    for ((sig, _), h) in &bad {
        let calls: Vec<String> = h.calls.iter().map(|(c, n)| format!("{c} ({n}×)")).collect();
        let first = h.calls.keys().next().expect("non-empty");
        parts.push(format!(
            "The {} handler `{}` called {} while handling the signal: {}.",
            sig_name(*sig),
            h.symbol,
            calls.join(", "),
            why(first)
        ));
    }
    if bad.iter().any(|(_, h)| h.calls.contains_key("puts") || h.calls.contains_key("putchar")) {
        parts.push("(The compiler turns printf of a plain string into puts or putchar: look for printf in the handler.)".into());
    }
    parts.push(
        "In a handler, use only async-signal-safe functions (write, waitpid, _exit, ...; see \
         signal-safety(7)), save and restore errno, and leave printing to the main program."
            .into(),
    );
    Outcome::fail(0.0, parts.join(" "), ev)
}

#[cfg(test)]
mod verdict_tests {
    use super::*;
    use crate::report::Status;

    fn handler(installed: bool, calls: &[(&str, u64)]) -> BTreeMap<(i32, String), HandlerLog> {
        let mut h = BTreeMap::new();
        h.insert(
            (17, "0x55".to_string()),
            HandlerLog {
                installed,
                symbol: "sigchld_handler".into(),
                runs: 3,
                calls: calls.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
            },
        );
        h
    }

    #[test]
    fn safe_handlers_and_no_handlers_pass() {
        let o = judge(&BTreeMap::new(), false, &[]);
        assert_eq!(o.status, Status::Pass);
        assert!(o.feedback.contains("installs no signal handlers"));
        let o = judge(&handler(true, &[]), false, &[17]);
        assert_eq!(o.status, Status::Pass);
        assert!(o.feedback.contains("ran 3 time(s)"), "{}", o.feedback);
    }

    #[test]
    fn a_handler_that_never_ran_is_never_a_pass() {
        let mut h = handler(true, &[]);
        h.get_mut(&(17, "0x55".to_string())).unwrap().runs = 0;
        let o = judge(&h, false, &[17]);
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.starts_with("The SIGCHLD handler `sigchld_handler` never ran"), "{}", o.feedback);
        assert_eq!(o.evidence["handlers_never_ran"][0], "SIGCHLD");
        // No longer caught (replaced by the default): not judged on runs.
        assert_eq!(judge(&h, false, &[]).status, Status::Pass);
    }

    #[test]
    fn an_unsafe_call_is_named_with_the_handler_and_why() {
        let o = judge(&handler(true, &[("puts", 2)]), true, &[17]);
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.contains("The SIGCHLD handler `sigchld_handler` called puts (2×)"), "{}", o.feedback);
        assert!(o.feedback.contains("look for printf in the handler"));
        assert_eq!(o.evidence["log_truncated_at_bytes"], LOG_CAP);
    }

    #[test]
    fn handlers_the_shim_did_not_see_cannot_be_judged() {
        let seen = Ok(Observed { pid: 7, shim_mapped: true, caught: vec![17] });
        let (why, ev) = unobserved(&seen, &handler(false, &[])).expect("not observed");
        assert!(why.contains("handles SIGCHLD, but the grader's signal-safety library never saw"), "{why}");
        assert_eq!(ev["handlers_not_recorded"][0], "SIGCHLD");
        let seen = Ok(Observed { pid: 7, shim_mapped: false, caught: vec![] });
        let (why, _) = unobserved(&seen, &handler(true, &[])).expect("not observed");
        assert!(why.contains("is not loaded in the process that serves (pid 7)"), "{why}");
        let seen = Ok(Observed { pid: 7, shim_mapped: true, caught: vec![17] });
        assert!(unobserved(&seen, &handler(true, &[])).is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shim_log() {
        let log = "install pid=10 sig=17 handler=0x55 offset=0x1189 symbol=sigchld_handler module=/a b/server\n\
                   run pid=10 sig=17 handler=0x55\n\
                   unsafe pid=10 sig=17 handler=0x55 call=printf\n\
                   run pid=10 sig=17 handler=0x55\n\
                   unsafe pid=10 sig=17 handler=0x55 call=printf\n\
                   garbage line\n";
        let h = parse_log(log, None);
        let e = &h[&(17, "0x55".to_string())];
        assert!(e.installed);
        assert_eq!(e.symbol, "sigchld_handler");
        assert_eq!(e.runs, 2);
        assert_eq!(e.calls["printf"], 2);
    }
}
