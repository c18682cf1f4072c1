//! The grader's own failures during a check, recorded where they happen and judged once.
//!
//! Deep in the client engine a failed `poll` is not the server's doing: ending the run as if
//! the server had gone idle would let the check blame the server, a wrong verdict from the
//! grader's own failure. The engine records the fault here and stops; the run pipeline takes
//! it after the check and makes the check's verdict `error`, whatever the check concluded.
//!
//! Also the one test-only hook of the pipeline, [`injected_panic`].

use std::cell::RefCell;

thread_local! {
    static FAULT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Record that the grader itself failed (the first fault of a check is kept).
pub fn record(what: impl Into<String>) {
    FAULT.with(|f| {
        f.borrow_mut().get_or_insert_with(|| what.into());
    });
}

/// The fault recorded on this thread since the last call, if any.
pub fn take() -> Option<String> {
    FAULT.with(|f| f.borrow_mut().take())
}

/// The environment variable of [`injected_panic`].
pub const PANIC_HOOK_VAR: &str = "ECHOGRADE_TEST_PANIC_IN";

/// Panic at `site` when the environment says so: a test's way to prove that a bug in the
/// grader at that site gives an `error` entry, not a lost report. Only the person running the
/// grader sets its environment (a server cannot), and no site panics unless asked by name.
pub fn injected_panic(site: &str) {
    if std::env::var_os(PANIC_HOOK_VAR).is_some_and(|v| v == site) {
        panic!("a panic injected by {PANIC_HOOK_VAR}={site}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_fault_is_kept_and_taken_once() {
        assert_eq!(take(), None);
        record("poll failed: EINVAL");
        record("a later one");
        assert_eq!(take().as_deref(), Some("poll failed: EINVAL"));
        assert_eq!(take(), None);
    }
}
