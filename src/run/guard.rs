//! Process-wide state a grading run needs, set once and undone once.
//!
//! The grader is a child subreaper (a daemonizing server's grandchildren are re-parented to
//! it, so teardown can find and reap them), hides from the servers it runs, catches SIGINT and
//! SIGTERM to stop at a safe point, and holds hundreds of client sockets at once (its soft
//! descriptor limit is raised to the hard one). These are properties of the process, not of a
//! grading: `main` creates one [`ProcessGuard`] before grading, and when it is dropped nothing
//! of any server may outlive the run.

use crate::supervise;

/// Held for the whole run; its `Drop` kills and reaps every process the grader adopted.
pub struct ProcessGuard {
    _private: (),
}

impl ProcessGuard {
    /// Set up the process. Call once, from a process with no children of its own to wait for
    /// (the grader reaps with `waitpid(-1)`).
    pub fn install() -> ProcessGuard {
        supervise::become_subreaper();
        supervise::shield_grader();
        crate::interrupt::install();
        raise_nofile();
        ProcessGuard { _private: () }
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        supervise::kill_orphans();
    }
}

/// Raise this process's soft descriptor limit to its hard limit: a check holds hundreds of
/// client sockets at once.
fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}
