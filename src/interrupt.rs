//! SIGINT and SIGTERM to the grader: stop at the next safe point, kill the server tree, and
//! write the report with what was graded so far (status `error`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

/// Install the handlers (signal-hook sets a flag; nothing else runs in the handler).
pub fn install() {
    let flag = FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(flag)) {
            eprintln!("grade: warning: cannot catch signal {sig}: {e}");
        }
    }
}

/// Whether the grader has been asked to stop.
pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::Relaxed))
}
