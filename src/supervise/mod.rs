//! Running one instance of the student's server, and ending it.
//!
//! The server is untrusted code. Each check gets a fresh instance on a fresh port, started in
//! its own process group with no inherited descriptors and its output drained into bounded
//! buffers. It counts as ready only when a LISTEN socket on its port appears in
//! `/proc/net/tcp{,6}` with an inode held by a process of its tree — never by probing with a
//! connect, which would disturb the very descriptor and child accounting the checks measure.
//! Teardown SIGTERMs the tree, waits a short grace, SIGKILLs what is left and reaps it all.
//!
//! The facade is [`Server`] (in `server.rs`) and the few functions re-exported here; spawning,
//! output, reaping, privilege and files live in private submodules nobody outside reaches into.

mod capabilities;
mod cgroup;
mod files;
mod gdb;
mod kernel_handlers;
mod limits;
mod mount_ns;
mod netns;
mod output;
mod privilege;
mod reap;
mod server;
mod spawn;
mod uid_slots;

pub use capabilities::{has as has_capability, missing_as_root as missing_capabilities, Cap};
pub use cgroup::InstanceCgroup;
pub use files::{open_regular, open_regular_beneath, read_capped, Refused};
pub use gdb::run_as_owner as run_gdb_as_owner;
pub use kernel_handlers::{mapped_text as shim_mapped_text, read as read_kernel_handlers, Unread};
pub use limits::{LimitKey, LimitOverride, Limits};
pub use mount_ns::{
    note_child, observed as private_tmp_observed, observed_ipc as private_ipc_observed, PrivateTmp,
};
pub use netns::{
    is_isolated as network_isolated, isolate as isolate_network,
    isolate_by_default as isolate_network_by_default,
};
pub use output::{Tail, TAIL_CAP};
pub use privilege::{
    accessible_copy, build_copy, copy_tree, resolve as resolve_user, scope_signals, scratch_home,
    shield_grader, signal_scoping_available, BuildCopy, ExecutableCopy, RunAs,
};
pub use reap::{become_subreaper, kill_orphans, reap_exited, TeardownReport};
pub use server::*;
pub use spawn::clean_env;
pub use uid_slots::share_only_with;
