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
        kill_everything_of(id);
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
/// none is left or 2 s have passed.
fn kill_everything_of(uid: u32) {
    let start = Instant::now();
    loop {
        let found = processes_of(uid);
        if found.is_empty() || start.elapsed() > Duration::from_secs(2) {
            if !found.is_empty() {
                eprintln!(
                    "grade: warning: processes {found:?} of uid {uid} (left by an earlier \
                     grading) could not be killed"
                );
            }
            return;
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

/// Live processes whose real, effective, saved or filesystem uid is `uid`.
fn processes_of(uid: u32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                return false;
            };
            let zombie = status
                .lines()
                .find_map(|l| l.strip_prefix("State:"))
                .is_some_and(|s| s.trim_start().starts_with('Z'));
            !zombie
                && status
                    .lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .is_some_and(|ids| ids.split_whitespace().any(|u| u == uid.to_string()))
        })
        .collect()
}

/// Let only the grading's own group (and root) into `dir`: root keeps it, the group may read
/// and enter. Another grading's uid cannot even list it.
pub fn share_only_with(dir: &Path, who: &RunAs) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::lchown(dir, Some(0), Some(who.gid))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
}
