//! A uid of its own for each grading, when the grader is root.
//!
//! Two gradings side by side (two `grade` processes, or the children of `grade class --jobs N`)
//! that run student code as the same user let one student's server read and replace the
//! other's programs and files: measured, 101/101 became 0/101. So as root each grading claims
//! a slot in a range of otherwise unused uids (and gids of the same numbers): its build, its
//! servers, gdb and its scratch `HOME` all run as, or belong to, that uid alone.
//!
//! Slots are claimed with `flock` on a lock file per slot in a root-owned folder: separate
//! processes coordinate with no daemon, and a grader that crashes frees its slot with its
//! descriptors. A slot's uid must have no passwd entry and its gid no group entry (a uid that
//! owns files on the system is never used), and before use anything still running as that uid
//! (a daemon of a crashed grading) is killed.
//!
//! The lock folder is only shared by gradings that see the same `/run`, while uids are shared
//! by every process of the user namespace: a grading in a container (its own `/run`, its own
//! PID namespace, the host's uids: Docker's and podman's default as root) claims the same uids
//! as a grading on the host, and the host's grading sees the container's processes in `/proc`.
//! A process of the slot's uid that lives in a PID namespace below the grader's is therefore
//! never taken for a leftover: it is another grading's, and the slot is skipped, not cleared
//! (killing it cost a correct server in podman its points about one run in three).
//!
//! The range is `ECHOGRADE_UID_BASE` (default [`DEFAULT_BASE`]) and `ECHOGRADE_UID_SLOTS`
//! (default [`DEFAULT_SLOTS`]) consecutive ids. `--user NAME` overrides all of this: gradings
//! side by side then share that user.

use super::privilege::RunAs;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The first uid (and gid) of the range: 0x45430000, "EC" in its high bytes, far above the
/// ids distributions hand out to people (1000–60000) and systemd's dynamic users
/// (61184–65519).
pub const DEFAULT_BASE: u32 = 0x4543_0000;
/// How many gradings may run side by side on one machine.
pub const DEFAULT_SLOTS: u32 = 64;
/// Where the lock files live: root's, never a folder another user could plant links in.
pub const LOCK_DIR: &str = "/run/echograde";

/// A claimed slot: the lock is held as long as this process lives.
struct Slot {
    run_as: RunAs,
    _lock: OwnedFd,
}

/// The process's slot, claimed once: the build and every program of a submission share it.
static CLAIMED: OnceLock<Result<Slot, String>> = OnceLock::new();

/// The uid of this grading's own, claiming it on first use; `Err` says why there is none
/// (the caller then falls back to the shared user, with a warning).
pub fn claim() -> Result<RunAs, String> {
    CLAIMED
        .get_or_init(|| {
            let slot = claim_one();
            if let Err(why) = &slot {
                eprintln!(
                    "grade: warning: no uid of its own for this grading ({why}); student code \
                     runs as a user shared with gradings side by side"
                );
            }
            slot
        })
        .as_ref()
        .map(|s| s.run_as.clone())
        .map_err(Clone::clone)
}

fn env_u32(name: &str, default: u32) -> Result<u32, String> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v} is not a number")),
        Err(_) => Ok(default),
    }
}

fn claim_one() -> Result<Slot, String> {
    let base = env_u32("ECHOGRADE_UID_BASE", DEFAULT_BASE)?;
    let slots = env_u32("ECHOGRADE_UID_SLOTS", DEFAULT_SLOTS)?;
    if base < 1000
        || base
            .checked_add(slots)
            .is_none_or(|end| end >= u32::MAX - 1)
    {
        return Err(format!(
            "ECHOGRADE_UID_BASE={base} with {slots} slots is outside the ids a grading can own"
        ));
    }
    let dir = lock_dir(Path::new(LOCK_DIR))?;
    for i in 0..slots {
        let id = base + i;
        if has_account(id) {
            continue; // a uid or gid that belongs to someone: never ours to use
        }
        let Some(lock) = try_lock(&dir, i) else {
            continue;
        };
        if !kill_everything_of(id) {
            continue; // in use by a grading in a container below ours: leave it be
        }
        return Ok(Slot {
            run_as: RunAs {
                name: format!("uid {id} (grading slot {i}, its own)"),
                uid: id,
                gid: id,
            },
            _lock: lock,
        });
    }
    Err(format!(
        "all {slots} grading uids from {base} are in use or belong to accounts"
    ))
}

/// Open (creating it if need be) the lock folder, and check that only root can write in it.
fn lock_dir(path: &Path) -> Result<OwnedFd, String> {
    use rustix::fs::{Mode, OFlags};
    let _ = rustix::fs::mkdir(path, Mode::from_raw_mode(0o700));
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    if st.st_uid != 0 || st.st_mode & 0o022 != 0 {
        return Err(format!(
            "{} is not a folder only root can write in",
            path.display()
        ));
    }
    Ok(fd)
}

/// Take slot `i`'s lock without waiting, or None if another grading holds it.
fn try_lock(dir: &OwnedFd, i: u32) -> Option<OwnedFd> {
    use rustix::fs::{FlockOperation, Mode, OFlags};
    let fd = rustix::fs::openat(
        dir,
        format!("slot-{i}.lock"),
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .ok()?;
    rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).ok()?;
    Some(fd)
}

/// Whether `id` is a user's uid or a group's gid on this machine.
fn has_account(id: u32) -> bool {
    !matches!(
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(id)),
        Ok(None)
    ) || !matches!(
        nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(id)),
        Ok(None)
    )
}

/// SIGKILL every process with `uid` among its ids (left by a grading that crashed), until
/// none is left or 2 s have passed. False, killing nothing, when a process of `uid` lives in a
/// PID namespace below the grader's (a grading in a container): the uid is not free.
fn kill_everything_of(uid: u32) -> bool {
    let own_depth = std::fs::read_to_string("/proc/self/status").map_or(1, |s| pid_ns_depth(&s));
    let start = Instant::now();
    loop {
        let Some(found) = processes_of(uid, own_depth) else {
            return false;
        };
        if found.is_empty() || start.elapsed() > Duration::from_secs(2) {
            if !found.is_empty() {
                eprintln!(
                    "grade: warning: processes {found:?} of uid {uid} (left by an earlier \
                     grading) could not be killed"
                );
            }
            return true;
        }
        for pid in found {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What one process (its `/proc/PID/status`) is to the slot of `uid`.
#[derive(Debug, PartialEq, Eq)]
enum Holder {
    /// Not a live process of that uid.
    No,
    /// A live process of that uid in the grader's own PID namespace: a leftover, to kill.
    Leftover,
    /// A live process of that uid in a PID namespace below the grader's (more `NSpid` levels
    /// than the grader's own): another grading's, in a container. Not ours to kill.
    Elsewhere,
}

/// How many PID namespaces deep a process is, counted from the one `/proc` belongs to: the
/// entries of its `NSpid:` line (1 where the kernel has no such line).
fn pid_ns_depth(status: &str) -> usize {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map_or(1, |ids| ids.split_whitespace().count().max(1))
}

fn holder(status: &str, uid: u32, own_depth: usize) -> Holder {
    let zombie = status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .is_some_and(|s| s.trim_start().starts_with('Z'));
    let has_uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .is_some_and(|ids| ids.split_whitespace().any(|u| u == uid.to_string()));
    if zombie || !has_uid {
        Holder::No
    } else if pid_ns_depth(status) > own_depth {
        Holder::Elsewhere
    } else {
        Holder::Leftover
    }
}

/// Live processes whose real, effective, saved or filesystem uid is `uid`, or None when one
/// of them is another grading's ([`Holder::Elsewhere`]).
fn processes_of(uid: u32, own_depth: usize) -> Option<Vec<i32>> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Some(Vec::new());
    };
    let mut found = Vec::new();
    for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        match holder(&status, uid, own_depth) {
            Holder::No => {}
            Holder::Leftover => found.push(pid),
            Holder::Elsewhere => return None,
        }
    }
    Some(found)
}

/// Let only the grading's own group (and root) into `dir`: root keeps it, the group may read
/// and enter. Another grading's uid cannot even list it.
pub fn share_only_with(dir: &Path, who: &RunAs) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::lchown(dir, Some(0), Some(who.gid))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: &str, uid: u32, nspid: &str) -> String {
        format!(
            "Name:\techo-process\nState:\t{state}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n\
             Gid:\t{uid}\t{uid}\t{uid}\t{uid}\nNSpid:\t{nspid}\n"
        )
    }

    #[test]
    fn a_process_of_the_slots_uid_in_the_graders_own_pid_namespace_is_a_leftover() {
        assert_eq!(
            holder(&status("S (sleeping)", 7, "4242"), 7, 1),
            Holder::Leftover
        );
        // The grader itself in a container: its /proc is the container's, depth 1 too.
        assert_eq!(
            holder(&status("R (running)", 7, "12"), 7, 1),
            Holder::Leftover
        );
    }

    /// Measured in podman as root: a grading on the host claimed slot 0 (its /run/echograde)
    /// while one in the container had slot 0 too (the container's own /run), and the host's
    /// SIGKILLed the container's server, listed in the host's /proc with `NSpid: 13398 15`.
    #[test]
    fn a_process_of_the_slots_uid_in_a_container_below_is_another_gradings() {
        assert_eq!(
            holder(&status("S (sleeping)", 7, "13398\t15"), 7, 1),
            Holder::Elsewhere
        );
        // Nested one more level below a grader that itself runs one level down.
        assert_eq!(
            holder(&status("S (sleeping)", 7, "9\t5\t3"), 7, 2),
            Holder::Elsewhere
        );
        assert_eq!(
            holder(&status("S (sleeping)", 7, "9\t5"), 7, 2),
            Holder::Leftover
        );
    }

    #[test]
    fn zombies_other_uids_and_kernels_without_nspid_are_told_apart() {
        assert_eq!(
            holder(&status("Z (zombie)", 7, "13398\t15"), 7, 1),
            Holder::No
        );
        assert_eq!(
            holder(&status("S (sleeping)", 8, "13398\t15"), 7, 1),
            Holder::No
        );
        let old_kernel = "State:\tS (sleeping)\nUid:\t7\t7\t7\t7\n";
        assert_eq!(pid_ns_depth(old_kernel), 1);
        assert_eq!(holder(old_kernel, 7, 1), Holder::Leftover);
    }
}
