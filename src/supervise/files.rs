//! Opening files the student controls without trusting them.
//!
//! A program to grade, a shim log, anything a submission or a server can create or replace, is
//! opened here: never through a symbolic link (a link to `/root/secret` or to somebody else's
//! server), never blocking (a FIFO would hold `open()` until someone writes), and only if
//! `fstat` on the opened descriptor says it is a regular file. Reads are bounded.

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::Path;

/// Why a path was refused, in words for the student ("it is a symbolic link", ...).
#[derive(Debug)]
pub enum Refused {
    /// Nothing there.
    Missing,
    /// There, but not something to grade: the reason.
    NotRegular(String),
    /// Any other failure to open it.
    Io(std::io::Error),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Missing => write!(f, "it does not exist"),
            Refused::NotRegular(why) => write!(f, "{why}"),
            Refused::Io(e) => write!(f, "{e}"),
        }
    }
}

fn kind_of(mode: u32) -> &'static str {
    use rustix::fs::FileType;
    match FileType::from_raw_mode(mode) {
        FileType::Directory => "a directory, not a program",
        FileType::Fifo => "a FIFO (named pipe), not a regular file",
        FileType::CharacterDevice | FileType::BlockDevice => "a device, not a regular file",
        FileType::Socket => "a socket, not a regular file",
        FileType::Symlink => "a symbolic link; only regular files are graded",
        _ => "not a regular file",
    }
}

fn refused_from(e: rustix::io::Errno) -> Refused {
    match e {
        rustix::io::Errno::NOENT => Refused::Missing,
        // O_NOFOLLOW on a link: ELOOP; RESOLVE_NO_SYMLINKS anywhere on the way: ELOOP too.
        rustix::io::Errno::LOOP => Refused::NotRegular(
            "it is a symbolic link (or is reached through one); only regular files are graded"
                .into(),
        ),
        rustix::io::Errno::XDEV => Refused::NotRegular(
            "it lies outside the submission folder (through `..` or a mount)".into(),
        ),
        e => Refused::Io(e.into()),
    }
}

const OPEN_FLAGS: rustix::fs::OFlags = rustix::fs::OFlags::RDONLY
    .union(rustix::fs::OFlags::NOFOLLOW)
    .union(rustix::fs::OFlags::NONBLOCK)
    .union(rustix::fs::OFlags::NOCTTY)
    .union(rustix::fs::OFlags::CLOEXEC);

fn checked(fd: rustix::fd::OwnedFd) -> Result<File, Refused> {
    let st = rustix::fs::fstat(&fd).map_err(|e| Refused::Io(e.into()))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(Refused::NotRegular(format!(
            "it is {}",
            kind_of(st.st_mode)
        )));
    }
    // Regular files ignore O_NONBLOCK; clear it anyway so readers see plain blocking reads.
    let _ = rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::empty());
    // SAFETY: the descriptor is owned and open; ownership moves to the File.
    Ok(unsafe { File::from_raw_fd(fd.into_raw_fd()) })
}

/// Open `path` read-only if it is a regular file, without following a symbolic link as its
/// last component and without blocking (a FIFO or device is refused, not waited on).
pub fn open_regular(path: &Path) -> Result<File, Refused> {
    let fd = rustix::fs::open(path, OPEN_FLAGS, rustix::fs::Mode::empty()).map_err(refused_from)?;
    checked(fd)
}

/// Open `rel` inside the folder `dir`, reached with no symbolic link at all and never leaving
/// `dir` (openat2 `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), if it is a regular file. Where the
/// kernel has no openat2 (before 5.6), every component is checked with O_NOFOLLOW instead.
pub fn open_regular_beneath(dir: &Path, rel: &Path) -> Result<File, Refused> {
    use rustix::fs::ResolveFlags;
    let d = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(refused_from)?;
    match rustix::fs::openat2(
        &d,
        rel,
        OPEN_FLAGS,
        rustix::fs::Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => checked(fd),
        Err(rustix::io::Errno::NOSYS) => {
            // Walk it by hand: each folder with O_NOFOLLOW|O_DIRECTORY, then the file.
            let mut cur = d;
            let parts: Vec<_> = rel.components().collect();
            for (i, c) in parts.iter().enumerate() {
                let std::path::Component::Normal(name) = c else {
                    return Err(Refused::NotRegular(
                        "its path leaves the submission folder".into(),
                    ));
                };
                if i + 1 == parts.len() {
                    let fd = rustix::fs::openat(&cur, *name, OPEN_FLAGS, rustix::fs::Mode::empty())
                        .map_err(refused_from)?;
                    return checked(fd);
                }
                cur = rustix::fs::openat(
                    &cur,
                    *name,
                    rustix::fs::OFlags::PATH
                        | rustix::fs::OFlags::DIRECTORY
                        | rustix::fs::OFlags::NOFOLLOW
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .map_err(|e| match e {
                    rustix::io::Errno::NOTDIR => Refused::NotRegular(
                        "it is reached through a symbolic link or a non-folder".into(),
                    ),
                    e => refused_from(e),
                })?;
            }
            Err(Refused::Missing)
        }
        Err(e) => Err(refused_from(e)),
    }
}

/// Read at most `cap` bytes of `file`; the bytes and whether there was more.
pub fn read_capped(file: File, cap: u64) -> std::io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::new();
    let n = file.take(cap + 1).read_to_end(&mut buf)?;
    let more = n as u64 > cap;
    buf.truncate(cap as usize);
    Ok((buf, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_links_fifos_and_devices_and_reads_files() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("prog");
        std::fs::write(&f, b"\x7fELF....").unwrap();
        std::os::unix::fs::symlink("/bin/sh", d.path().join("link")).unwrap();
        nix::unistd::mkfifo(&d.path().join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(open_regular(&f).is_ok());
        assert!(open_regular_beneath(d.path(), Path::new("prog")).is_ok());
        for bad in ["link", "fifo"] {
            let e = open_regular(&d.path().join(bad)).unwrap_err();
            assert!(matches!(e, Refused::NotRegular(_)), "{bad}: {e:?}");
            let e = open_regular_beneath(d.path(), Path::new(bad)).unwrap_err();
            assert!(matches!(e, Refused::NotRegular(_)), "{bad}: {e:?}");
        }
        assert!(matches!(
            open_regular(Path::new("/dev/null")).unwrap_err(),
            Refused::NotRegular(_)
        ));
        std::os::unix::fs::symlink(d.path(), d.path().join("dirlink")).unwrap();
        assert!(open_regular_beneath(d.path(), Path::new("dirlink/prog")).is_err());
        assert!(open_regular_beneath(d.path(), Path::new("../x")).is_err());
        let (bytes, more) = read_capped(open_regular(&f).unwrap(), 4).unwrap();
        assert_eq!((bytes.as_slice(), more), (&b"\x7fELF"[..], true));
    }
}
