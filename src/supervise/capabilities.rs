//! Which of root's powers the grader holds here, read once from `/proc/self/status`.
//!
//! Root is not always all-powerful: Docker's default container (Gradescope runs the autograder
//! as root in one) keeps 14 capabilities and drops the rest, `CAP_SYS_PTRACE`,
//! `CAP_SYS_ADMIN`, `CAP_SYS_RESOURCE` and `CAP_NET_ADMIN` among them. Whatever the grader does
//! with one of those must either do without it or say, in the report's `containment`, which
//! protection does not hold — never fail the student's server for it.

use std::sync::OnceLock;

/// The capabilities the grader's work depends on, by number (linux/capability.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    NetAdmin = 12,
    SysPtrace = 19,
    SysAdmin = 21,
    SysResource = 24,
}

impl Cap {
    const ALL: [Cap; 4] = [
        Cap::NetAdmin,
        Cap::SysPtrace,
        Cap::SysAdmin,
        Cap::SysResource,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cap::NetAdmin => "CAP_NET_ADMIN",
            Cap::SysPtrace => "CAP_SYS_PTRACE",
            Cap::SysAdmin => "CAP_SYS_ADMIN",
            Cap::SysResource => "CAP_SYS_RESOURCE",
        }
    }

    /// What the grader does with it, and what it does without.
    fn without(self) -> &'static str {
        match self {
            Cap::NetAdmin => "no network namespace of its own for each grading",
            Cap::SysPtrace => {
                "none lost: the server's /proc is read, and its handlers traced, as its own user"
            }
            Cap::SysAdmin => {
                "no private /tmp, IPC or network namespace for student code (as the kernel allows)"
            }
            Cap::SysResource => "rlimits no higher than this container's hard limits",
        }
    }
}

/// Whether the grader's effective set holds `cap`.
pub fn has(cap: Cap) -> bool {
    effective() & (1u64 << cap as u32) != 0
}

/// The effective capability set over the machine (empty when it cannot be read). Inside a
/// user namespace of its own (the grader enters one without root, to isolate the network)
/// `/proc/self/status` shows every capability, but they count only over that namespace:
/// raising a hard rlimit, say, still needs them in the machine's. So there it is empty.
fn effective() -> u64 {
    static EFF: OnceLock<u64> = OnceLock::new();
    *EFF.get_or_init(|| {
        if !in_the_machines_user_namespace() {
            return 0;
        }
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
                u64::from_str_radix(hex.trim(), 16).ok()
            })
            .unwrap_or(0)
    })
}

/// The initial user namespace maps every uid to itself: `0 0 4294967295`.
fn in_the_machines_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
}

/// For the report's containment: as root, which of the capabilities the grader uses are
/// missing here and what that costs; `None` when none is (or the grader is not root, where
/// none was expected).
pub fn missing_as_root() -> Option<serde_json::Value> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let missing: serde_json::Map<String, serde_json::Value> = Cap::ALL
        .iter()
        .filter(|&&c| !has(c))
        .map(|&c| (c.name().to_string(), c.without().into()))
        .collect();
    (!missing.is_empty()).then_some(serde_json::Value::Object(missing))
}
