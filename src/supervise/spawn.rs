//! Starting the server process: its own process group, no inherited descriptors, default
//! signal dispositions and an empty signal mask, whatever state the grader is in.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::limits::RlimitPlan;
use super::privilege::RunAs;
use super::StdinSource;

/// How the child confines itself before exec.
pub(crate) struct Confinement {
    /// `cgroup.procs` descriptors of its groups: it writes "0" (itself) to each.
    pub cgroup_procs: Vec<std::os::fd::RawFd>,
    pub rlimits: RlimitPlan,
    pub run_as: Option<RunAs>,
    /// A fresh /tmp and /dev/shm (see [`super::mount_ns`]), where the kernel allows.
    pub private_tmp: Option<super::mount_ns::PrivateTmp>,
}

/// The search path a server or a build gets when the grader has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The whole environment student code gets: `PATH` and `LANG` (the grader's, which the course
/// configures, or defaults) and `HOME` in a scratch folder. Nothing else of the grader's
/// environment (a `GRADESCOPE_TOKEN`, cloud credentials, ...) reaches it.
pub fn clean_env(home: Option<&Path>) -> Vec<(OsString, OsString)> {
    let keep = |k: &str, default: &str| {
        (
            OsString::from(k),
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.into()),
        )
    };
    vec![
        keep("PATH", DEFAULT_PATH),
        keep("LANG", "C"),
        (
            "HOME".into(),
            home.map_or_else(|| OsString::from("/nonexistent"), |h| h.as_os_str().into()),
        ),
    ]
}

pub(crate) fn spawn(
    program: &Path,
    args: &[OsString],
    env: &[(OsString, OsString)],
    stdin: &StdinSource,
    home: Option<&Path>,
    confine: Confinement,
) -> std::io::Result<Child> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(clean_env(home))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(match stdin {
            StdinSource::Pipe => Stdio::piped(),
            StdinSource::Null => Stdio::null(),
            StdinSource::File(path) => Stdio::from(std::fs::File::open(path)?),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and makes only system calls
    // (setpgid, write, setrlimit, unshare, mount, mkdir, open_tree, move_mount,
    // setgroups/setgid/setuid, prctl, sigaction, sigprocmask, close_range); it reads
    // `confine`, allocated before the fork, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
            // Own process group: teardown signals the whole group at once.
            nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0))?;
            // Join the instance's cgroups ("0" means the writing process).
            for &fd in &confine.cgroup_procs {
                nix::libc::write(fd, b"0".as_ptr().cast(), 1);
            }
            confine.rlimits.apply()?;
            // Before giving up root: a mount namespace needs CAP_SYS_ADMIN.
            if let Some(t) = &confine.private_tmp {
                t.enter()?;
            }
            // A private IPC namespace (as root, or in the grader's own user namespace): System
            // V shared memory, semaphores and message queues (and POSIX message queues) the
            // server leaves die with it, and it cannot reach another grading's. Where the
            // kernel refuses, nothing changes.
            nix::libc::unshare(nix::libc::CLONE_NEWIPC);
            if let Some(u) = &confine.run_as {
                nix::unistd::setgroups(&[])?;
                nix::unistd::setgid(nix::unistd::Gid::from_raw(u.gid))?;
                nix::unistd::setuid(nix::unistd::Uid::from_raw(u.uid))?;
            }
            // Its signals reach only its own tree (not the grader), where the kernel can.
            super::privilege::scope_signals();
            // If the grader dies without teardown, the server goes with it. (Set after the
            // user change, which clears it.)
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            // The server starts like it would from a shell: default dispositions, nothing blocked.
            let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
            for sig in [
                Signal::SIGPIPE,
                Signal::SIGCHLD,
                Signal::SIGINT,
                Signal::SIGTERM,
            ] {
                let _ = sigaction(sig, &dfl);
            }
            SigSet::empty().thread_set_mask()?;
            // No grader descriptor may leak into the server (its fd baseline would be wrong and
            // it could write to them): mark everything above stderr close-on-exec. (Closing
            // them here would also close std's pipe that reports a failed exec.)
            const CLOSE_RANGE_CLOEXEC: u32 = 4;
            nix::libc::syscall(
                nix::libc::SYS_close_range,
                3u32,
                u32::MAX,
                CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
    cmd.spawn()
}
