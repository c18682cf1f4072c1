//! Running the server as an unprivileged user when the grader is root.
//!
//! Gradescope and Autolab run graders as root. Student code running as root could write the
//! report, the rubric or the grader itself. So as root the server runs as another user
//! (by default a uid of the grading's own, see [`super::uid_slots`]; `--user NAME` names one,
//! else a dedicated `echograde` user where one exists, else `nobody`): it
//! cannot touch the grader's files, and the grader writes the
//! report only after every server process is dead.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The user made for running servers, used by default where it exists.
pub const DEDICATED: &str = "echograde";

/// The user the server runs as.
#[derive(Debug, Clone)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Decide who the server runs as: `Some` only when the grader is root.
pub fn resolve(user: Option<&str>) -> Result<Option<RunAs>, String> {
    if !nix::unistd::geteuid().is_root() {
        return match user {
            Some(u) => Err(format!(
                "--user {u}: only a grader running as root can run the server as another user"
            )),
            None => Ok(None),
        };
    }
    // By default each grading runs student code as a uid of its own (see uid_slots); a
    // named `--user` is the course's choice, shared by gradings side by side.
    if user.is_none() {
        if let Ok(own) = super::uid_slots::claim() {
            return Ok(Some(own));
        }
    }
    // A dedicated user, where the machine has one, is better than the shared `nobody`: a
    // process limit (RLIMIT_NPROC) counts every process of a uid.
    let dedicated = || {
        nix::unistd::User::from_name(DEDICATED)
            .ok()
            .flatten()
            .map(|_| DEDICATED)
    };
    let name = user.or_else(dedicated).unwrap_or("nobody");
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) if u.uid.is_root() => Err(format!(
            "--user {name}: that is root; pick an unprivileged user"
        )),
        Ok(Some(u)) => Ok(Some(RunAs {
            name: name.to_string(),
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        })),
        Ok(None) => Err(format!("--user {name}: no such user on this machine")),
        Err(e) => Err(format!("--user {name}: cannot look the user up: {e}")),
    }
}

/// A copy of the server the other user can execute, in a private directory of the grader's.
pub struct ExecutableCopy {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

/// Copy the already opened (and validated) program `from` into a fresh folder of root's:
/// created new (never through an existing name or link), filled and made executable, in a
/// folder only root may enter until the caller shares it. `name` gives the copy its file name.
pub fn accessible_copy(mut from: std::fs::File, name: &Path) -> std::io::Result<ExecutableCopy> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::Builder::new()
        .prefix("echograde-server")
        // Root's alone from the start (tempfile's default follows the umask: 0755).
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()?;
    let name = name.file_name().unwrap_or(std::ffi::OsStr::new("server"));
    let copy = dir.path().join(name);
    {
        let mut to = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .mode(0o700)
            .open(&copy)?;
        std::io::Seek::seek(&mut from, std::io::SeekFrom::Start(0))?;
        std::io::copy(&mut from, &mut to)?;
        to.set_permissions(std::fs::Permissions::from_mode(0o755))?;
    }
    // The folder stays root's alone (0700): the caller lets the grading's own user in
    // (uid_slots::share_only_with). Opening it to all first, even for a moment, let a server
    // of a grading beside read the program.
    Ok(ExecutableCopy {
        _dir: dir,
        path: copy,
    })
}

/// A copy of a submission folder owned by `who`, for building it as that user: a Makefile is
/// student code too, and must not run as root.
pub struct BuildCopy {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

/// Root fills the copy first, in a folder only root can enter, creating every entry new and
/// following no link; only when it is complete is it handed to `who` and the folder opened.
/// (Handing it over first let a process of an earlier build plant links for root to follow.)
pub fn build_copy(src: &Path, who: &RunAs) -> std::io::Result<BuildCopy> {
    let dir = tempfile::Builder::new()
        .prefix("echograde-build")
        // Root's alone from the start (tempfile's default follows the umask: 0755).
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()?;
    let path = dir.path().join("submission");
    let mut made = Vec::new();
    copy_tree(src, &path, &mut made)?;
    for p in &made {
        std::os::unix::fs::lchown(p, Some(who.uid), Some(who.gid))?;
    }
    // Only that user's group may enter: another grading's uid cannot read the sources.
    super::uid_slots::share_only_with(dir.path(), who)?;
    Ok(BuildCopy { _dir: dir, path })
}

/// Copy files, folders and symbolic links (as links, never followed); `made` collects what
/// was created, for handing over afterwards.
pub fn copy_tree(src: &Path, dst: &Path, made: &mut Vec<PathBuf>) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir(dst)?;
    made.push(dst.to_path_buf());
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&from, &to, made)?;
            continue;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if kind.is_file() {
            // The source may have changed since it was listed: open it as a regular file only.
            let Ok(mut f) = super::files::open_regular(&from) else {
                continue;
            };
            let mode = f.metadata()?.permissions().mode() & 0o777;
            let mut t = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
                .mode(0o600)
                .open(&to)?;
            std::io::copy(&mut f, &mut t)?;
            t.set_permissions(std::fs::Permissions::from_mode(mode))?;
        } else {
            continue; // sockets, fifos, devices: nothing a build needs
        }
        made.push(to);
    }
    Ok(())
}

/// A scratch folder for student code's `HOME`, owned by `who` (or by the grader's own user),
/// removed with everything in it when dropped.
pub fn scratch_home(who: Option<&RunAs>) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("echograde-home")
        // Root's alone from the start (tempfile's default follows the umask: 0755).
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()?;
    if let Some(u) = who {
        std::os::unix::fs::lchown(dir.path(), Some(u.uid), Some(u.gid))?;
    }
    Ok(dir)
}

/// Without root the server runs as the grader's own user, who may open `/proc/<grader>/fd/1`
/// (and write a forged score into the grader's output) or ptrace the grader. A non-dumpable
/// process's /proc files belong to root and it cannot be attached to without CAP_SYS_PTRACE:
/// the grader makes itself so. (Signals are kept out by [`scope_signals`] in the server.)
pub fn shield_grader() {
    if !nix::unistd::geteuid().is_root() {
        // SAFETY: prctl with integer arguments only.
        unsafe {
            nix::libc::prctl(nix::libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        }
    }
}

/// Put the calling process (a child about to exec student code) in a Landlock domain scoped
/// for signals and abstract UNIX sockets (Linux 6.12, Landlock ABI 6): it can then signal only
/// processes of its own domain (its own tree), never the grader or another student's grading,
/// and reach no abstract socket outside it. Filesystem and network access are not restricted.
/// Returns whether the kernel applied it; where it cannot, nothing changes. Async-signal-safe:
/// system calls only.
pub fn scope_signals() -> bool {
    #[repr(C)]
    struct RulesetAttr {
        handled_access_fs: u64,
        handled_access_net: u64,
        scoped: u64,
    }
    const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
    const SCOPE_SIGNAL: u64 = 1 << 1;
    let attr = RulesetAttr {
        handled_access_fs: 0,
        handled_access_net: 0,
        scoped: SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL,
    };
    // SAFETY: raw system calls on a struct that lives across them and a descriptor we own.
    unsafe {
        let fd = nix::libc::syscall(
            nix::libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        );
        if fd < 0 {
            return false;
        }
        let ok = nix::libc::prctl(nix::libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && nix::libc::syscall(nix::libc::SYS_landlock_restrict_self, fd as i32, 0u32) == 0;
        nix::libc::close(fd as i32);
        ok
    }
}

/// Whether this kernel offers Landlock's signal scoping (ABI 6 or later), for the report.
pub fn signal_scoping_available() -> bool {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1 << 0;
    // SAFETY: the version query takes no struct.
    let abi = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    abi >= 6
}
