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
    let Ok(data) = std::fs::read(program) else { return false };
    match object::File::parse(&*data) {
        Ok(f) => f.section_by_name(".interp").is_none(),
        Err(_) => false, // a script: its interpreter takes the shim
    }
}

/// Name a handler's function from the module's symbol table, given its offset in the module.
fn symbol_at(module: &Path, offset: u64) -> Option<String> {
    use object::{Object, ObjectSymbol};
    let data = std::fs::read(module).ok()?;
    let file = object::File::parse(&*data).ok()?;
    // For a PIE or shared object, addresses in the file are offsets from its load base.
    file.symbols()
        .chain(file.dynamic_symbols())
        .filter(|s| s.kind() == object::SymbolKind::Text && s.address() <= offset && offset < s.address() + s.size().max(1))
        .find_map(|s| s.name().ok().map(str::to_string))
}

#[derive(Debug, Default)]
struct HandlerLog {
    symbol: String,
    runs: u64,
    /// Unsafe calls by function name.
    calls: BTreeMap<String, u64>,
}

/// Parse the shim's log: `install`, `run` and `unsafe` lines of key=value fields.
fn parse_log(text: &str) -> BTreeMap<(i32, String), HandlerLog> {
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
                let named = get("symbol").filter(|s| *s != "-").map(str::to_string);
                let resolved = named.or_else(|| {
                    let off = u64::from_str_radix(get("offset")?.trim_start_matches("0x"), 16).ok()?;
                    symbol_at(Path::new(module?), off)
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
    t.ready + t.idle * 3 + t.serve + t.idle * 3 + t.grace
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
    let logdir = match tempfile::Builder::new().prefix("echograde-sigsafety").tempdir() {
        Ok(d) => d,
        Err(e) => return Outcome::error(format!("cannot create a directory for the shim's log: {e}")),
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
        return Outcome::error(format!("cannot prepare the shim's log: {e}"));
    }
    let env: Vec<(OsString, OsString)> = vec![
        ("LD_PRELOAD".into(), shim.into_os_string()),
        ("ECHOGRADE_SHIM_LOG".into(), log.clone().into_os_string()),
    ];
    let srv = match cx.start_with_env(env) {
        Ok(s) => s,
        Err(o) => return o,
    };
    // A server that stops serving still logged what its handlers did: no early return.
    let _ = sequential_clients(srv, &mut rng, "s", p.sequential, t.serve, t.idle * 3);
    let mut swarm = Swarm::new(srv.addr());
    for i in 0..p.simultaneous {
        let label = format!("m{i}");
        let line = payload::tagged_line(&mut rng, &label);
        swarm.add(Session::new(label, vec![Step::Send(line), Step::Expect, Step::Close]).judging_replies());
    }
    for i in 0..p.early_leavers {
        let lines: Vec<u8> = (0..20).flat_map(|j| payload::tagged_line(&mut rng, &format!("e{i}-{j}"))).collect();
        swarm.add(Session::new(format!("e{i}"), vec![Step::Send(lines), Step::Reset]));
    }
    swarm.run(RunLimits { idle: t.idle, overall: t.idle * 3 }, |_| false);
    drop(swarm);
    // Let the handlers for the last exits run: wait until no child is left unreaped.
    wait_until(t.grace, || children(srv).is_empty());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let handlers = parse_log(&text);
    let installed: Vec<serde_json::Value> = handlers
        .iter()
        .map(|((sig, _), h)| json!({ "signal": sig_name(*sig), "handler": h.symbol, "runs": h.runs, "unsafe_calls": h.calls }))
        .collect();
    let ev = json!({ "handlers": installed });
    let bad: Vec<_> = handlers.iter().filter(|(_, h)| !h.calls.is_empty()).collect();
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
        let h = parse_log(log);
        let e = &h[&(17, "0x55".to_string())];
        assert_eq!(e.symbol, "sigchld_handler");
        assert_eq!(e.runs, 2);
        assert_eq!(e.calls["printf"], 2);
    }
}
