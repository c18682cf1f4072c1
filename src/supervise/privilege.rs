//! Running the server as an unprivileged user when the grader is root.
//!
//! Gradescope and Autolab run graders as root. Student code running as root could write the
//! report, the rubric or the grader itself. So as root the server runs as another user
//! (`--user`; by default a dedicated `echograde` user where one exists, else `nobody`): it
//! cannot touch the grader's files, and the grader writes the
//! report only after every server process is dead.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
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

/// Whether `who` may execute `path` (each directory searchable, the file executable and, for
/// a script, readable), judged from permission bits.
pub fn can_execute(path: &Path, who: &RunAs) -> bool {
    let allowed = |meta: &std::fs::Metadata, bits: u32| {
        let mode = meta.permissions().mode();
        let class = if meta.uid() == who.uid {
            mode >> 6
        } else if meta.gid() == who.gid {
            mode >> 3
        } else {
            mode
        };
        class & bits == bits
    };
    let Ok(abs) = std::fs::canonicalize(path) else {
        return false;
    };
    for dir in abs.ancestors().skip(1) {
        match std::fs::metadata(dir) {
            Ok(m) if allowed(&m, 0o1) => {}
            _ => return false,
        }
    }
    std::fs::metadata(&abs).is_ok_and(|m| allowed(&m, 0o5))
}

/// A copy of the server the other user can execute, in a private directory of the grader's.
pub struct ExecutableCopy {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn accessible_copy(path: &Path) -> std::io::Result<ExecutableCopy> {
    let dir = tempfile::Builder::new()
        .prefix("echograde-server")
        .tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let name = path.file_name().unwrap_or(std::ffi::OsStr::new("server"));
    let copy = dir.path().join(name);
    std::fs::copy(path, &copy)?;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))?;
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

pub fn build_copy(src: &Path, who: &RunAs) -> std::io::Result<BuildCopy> {
    let dir = tempfile::Builder::new()
        .prefix("echograde-build")
        .tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let path = dir.path().join("submission");
    copy_tree(src, &path, who)?;
    Ok(BuildCopy { _dir: dir, path })
}

/// Copy files, folders and symbolic links (as links), owned by `who`.
fn copy_tree(src: &Path, dst: &Path, who: &RunAs) -> std::io::Result<()> {
    std::fs::create_dir(dst)?;
    std::os::unix::fs::lchown(dst, Some(who.uid), Some(who.gid))?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&from, &to, who)?;
            continue;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if kind.is_file() {
            std::fs::copy(&from, &to)?;
        } else {
            continue; // sockets, fifos, devices: nothing a build needs
        }
        std::os::unix::fs::lchown(&to, Some(who.uid), Some(who.gid))?;
    }
    Ok(())
}
