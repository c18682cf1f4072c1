//! The build step: `make` in a submission folder, bounded in time and in output.
//!
//! `make` runs in its own process group with standard input closed and standard output and
//! error merged into one pipe, drained by the same bounded capture as a server's output
//! ([`Tail`]): the first [`HEAD`] and the last [`TAIL`] bytes (the first compiler error and
//! make's final word) are kept and the rest counted. When the time
//! limit passes, the whole group is killed; when make ends, whatever it left running in its
//! group is killed too, before make is reaped (so the group id cannot have been reused).
//!
//! A build that fails is not an error of the grader: it is returned as a [`BuildOutcome`] with
//! `ok == false`, and the submission is graded 0 with the compiler's messages as feedback.

use crate::error::GradeError;
use crate::report::sanitize;
use crate::supervise::Tail;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Default time limit for a build.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Bytes kept from the start of make's output.
pub const HEAD: usize = 8 * 1024;
/// Bytes kept from the end of make's output.
pub const TAIL: usize = 24 * 1024;

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// The make target (`None`: make's default goal).
    pub target: Option<String>,
    pub timeout: Duration,
    /// Run make as this user (when the grader is root): the Makefile is student code.
    pub run_as: Option<crate::supervise::RunAs>,
    /// Become child subreaper and, when make ends, kill and reap every child of this process
    /// (what the build left, adopted). Only for a process that has no children of its own
    /// during the build: the grader, not a test harness.
    pub adopt_leftovers: bool,
}

impl Default for BuildSpec {
    fn default() -> Self {
        BuildSpec {
            target: None,
            timeout: DEFAULT_TIMEOUT,
            run_as: None,
            adopt_leftovers: false,
        }
    }
}

/// How a build went.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub ok: bool,
    /// The command as run, e.g. `["make", "all"]`.
    pub command: Vec<String>,
    /// How make ended, in words ("exited with status 2", "killed after 120 s: time limit").
    pub exit: String,
    pub timed_out: bool,
    pub duration: Duration,
    /// make's output (stdout and stderr interleaved), head and tail, control characters
    /// escaped.
    pub output: String,
    /// How many bytes make printed in all.
    pub output_bytes: u64,
    /// How many compiler warnings the kept output shows.
    pub warnings: usize,
}

impl BuildOutcome {
    /// `make all` or `make` as a student would type it.
    pub fn command_line(&self) -> String {
        self.command.join(" ")
    }
}

/// Run make in `dir`. `Err` only when make cannot be started at all (not installed): that is
/// the grading machine's problem, not the student's.
pub fn run_make(dir: &Path, spec: &BuildSpec) -> Result<BuildOutcome, GradeError> {
    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;

    let mut command = vec!["make".to_string()];
    if let Some(t) = &spec.target {
        command.push(t.clone());
    }
    let internal = |what: &str, e: &dyn std::fmt::Display| {
        GradeError::Internal(format!("build step: {what}: {e}"))
    };
    let home = crate::supervise::scratch_home(spec.run_as.as_ref())
        .map_err(|e| internal("cannot create a HOME for make", &e))?;
    let (r, w) = nix::unistd::pipe().map_err(|e| internal("pipe", &e))?;
    let w2 = w.try_clone().map_err(|e| internal("pipe", &e))?;
    let cgroup = crate::supervise::InstanceCgroup::create(
        &format!("echograde-{}-build", std::process::id()),
        BUILD_NPROC,
        BUILD_MEMORY,
    );
    let mut cmd = make_command(dir, &command, spec, home.path(), (w, w2), &cgroup);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            GradeError::Internal(
                "cannot run `make`: it is not installed on this machine (apt-get install make gcc)"
                    .into(),
            )
        } else {
            internal("cannot start make", &e)
        }
    })?;
    crate::supervise::note_child(child.id() as i32);
    drop(cmd); // our copies of the pipe's write end: EOF once make's group is gone

    let capture = Tail::with_head(HEAD, TAIL);
    if let Err(e) = capture.drain_from(std::fs::File::from(r), "make-output") {
        let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        let _ = child.wait();
        return Err(internal("cannot start a thread", &e));
    }

    let pgid = Pid::from_raw(child.id() as i32);
    let timed_out = wait_for_make(pgid, started, spec.timeout);
    // Anything make left running in its group (a server started by a test target, ...).
    let _ = killpg(pgid, Signal::SIGKILL);
    let status = child.wait().map_err(|e| internal("waiting for make", &e))?;
    let duration = started.elapsed();
    // And what left the group: whatever is still in make's cgroup, and every process the
    // grader adopted (nothing else is its child during the build).
    end_the_build(&cgroup, spec.adopt_leftovers);

    // The reader ends at EOF, which comes as soon as no process holds the pipe. A process that
    // left make's group (setsid) could hold it forever: do not wait for it long.
    capture.wait_done(Duration::from_secs(2));
    let text = sanitize(&capture.head_and_tail("make's output"));
    let total = capture.total();

    let exit = if timed_out {
        format!(
            "was stopped after {} s (the build's time limit)",
            spec.timeout.as_secs_f64().round()
        )
    } else {
        describe_status(&status)
    };
    Ok(BuildOutcome {
        ok: status.success() && !timed_out,
        command,
        exit,
        timed_out,
        duration,
        warnings: text.matches("warning:").count(),
        output: text,
        output_bytes: total,
    })
}

/// make, confined: its own process group, a cleaned environment, the build's user, its cgroup
/// joined before exec; standard output and error into the capture's pipe.
fn make_command(
    dir: &Path,
    command: &[String],
    spec: &BuildSpec,
    home: &Path,
    (w, w2): (std::os::fd::OwnedFd, std::os::fd::OwnedFd),
    cgroup: &crate::supervise::InstanceCgroup,
) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("make");
    cmd.args(&command[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(w))
        .stderr(Stdio::from(w2))
        // The Makefile is student code: it gets PATH, LANG and a scratch HOME, nothing else
        // of the grader's environment (no token, and no outer make's MAKEFLAGS when grade
        // itself runs under Autolab's make).
        .env_clear()
        .envs(crate::supervise::clean_env(Some(home)))
        .process_group(0);
    // The user change happens in the child (see `enter_containment`), after the mount
    // namespace (which needs root) is made.
    let ids = spec.run_as.as_ref().map(|u| (u.uid, u.gid));
    // A fresh /tmp and /dev/shm for the build; its copy and HOME stay reachable.
    let private_tmp = crate::supervise::PrivateTmp::plan([dir, home]);
    // The Makefile is contained like a server: make joins a cgroup of its own (a pids limit
    // bounds a fork bomb) where the host has one, and the grader becomes child subreaper, so a
    // daemon a Makefile starts (setsid, double fork) is adopted by the grader rather than by
    // init. When make ends, all of it is killed and reaped.
    if spec.adopt_leftovers {
        crate::supervise::become_subreaper();
        crate::supervise::shield_grader();
    }
    let procs = cgroup.procs_fds();
    // SAFETY: the closure runs in the forked child before exec and only makes system calls
    // (write on descriptors opened before the fork, unshare, mount, mkdir, setgroups/setgid/
    // setuid, prctl) on memory allocated before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || enter_containment(&procs, &private_tmp, ids));
    }
    cmd
}

/// In make's child, before exec: join the build's cgroup, a fresh /tmp and /dev/shm, an IPC
/// namespace, then the grading's uid (with a process limit), then signal scoping.
fn enter_containment(
    procs: &[std::os::fd::RawFd],
    private_tmp: &crate::supervise::PrivateTmp,
    ids: Option<(u32, u32)>,
) -> std::io::Result<()> {
    for &fd in procs {
        // SAFETY: write(2) on a descriptor opened before the fork, from a buffer that lives.
        unsafe { nix::libc::write(fd, b"0".as_ptr().cast(), 1) };
    }
    private_tmp.enter()?;
    // System V IPC a Makefile leaves dies with the build (where the kernel allows).
    // SAFETY: unshare(2) takes no pointers.
    unsafe { nix::libc::unshare(nix::libc::CLONE_NEWIPC) };
    if let Some((uid, gid)) = ids {
        // The build's uid is the grading's own: a process limit on it bounds a fork bomb even
        // where there is no pids cgroup.
        nix::sys::resource::setrlimit(
            nix::sys::resource::Resource::RLIMIT_NPROC,
            BUILD_NPROC,
            BUILD_NPROC,
        )?;
        nix::unistd::setgroups(&[])?;
        nix::unistd::setgid(nix::unistd::Gid::from_raw(gid))?;
        nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))?;
    }
    crate::supervise::scope_signals();
    Ok(())
}

/// Wait for make to end without reaping it (WNOWAIT): while it is a zombie its pid, which is
/// also the group's id, cannot be reused, so killing the group afterwards is safe. Past
/// `timeout` the group is killed; whether it was.
fn wait_for_make(pgid: nix::unistd::Pid, started: Instant, timeout: Duration) -> bool {
    use nix::sys::signal::{killpg, Signal};
    use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
    loop {
        match waitid(
            Id::Pid(pgid),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::WNOHANG,
        ) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(_) => return false,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
        if started.elapsed() >= timeout {
            let _ = killpg(pgid, Signal::SIGKILL);
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pids limit of the build's cgroup: make, the compiler and its passes, with room.
const BUILD_NPROC: u64 = 512;
/// The memory limit of the build's cgroup.
const BUILD_MEMORY: u64 = 2 << 30;

/// Kill everything the build left: the cgroup's members (where there is one), then the
/// processes the grader adopted as child subreaper, and reap them.
fn end_the_build(cgroup: &crate::supervise::InstanceCgroup, adopted: bool) {
    let start = Instant::now();
    while !cgroup.members().is_empty() && start.elapsed() < Duration::from_secs(10) {
        cgroup.kill_all();
        for p in cgroup.members() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if adopted {
            crate::supervise::reap_exited(&[], &mut Default::default());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if adopted {
        crate::supervise::kill_orphans();
    }
}

fn describe_status(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        if code == 0 {
            "succeeded".into()
        } else {
            format!("exited with status {code}")
        }
    } else if let Some(sig) = status.signal() {
        let name = nix::sys::signal::Signal::try_from(sig)
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|_| format!("signal {sig}"));
        format!("was killed by {name}")
    } else {
        "ended".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_available() -> bool {
        Command::new("make")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok()
    }

    #[test]
    fn failing_build_and_time_limit() {
        if !make_available() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("Makefile"),
            "all:\n\t@echo compiling\n\t@echo 'x.c:1: error: oops' >&2; exit 2\nslow:\n\t@echo start; sleep 30\n",
        )
        .unwrap();
        let o = run_make(d.path(), &BuildSpec::default()).unwrap();
        assert!(!o.ok);
        assert_eq!(o.exit, "exited with status 2");
        assert!(
            o.output.contains("compiling") && o.output.contains("error: oops"),
            "{}",
            o.output
        );

        let spec = BuildSpec {
            target: Some("slow".into()),
            timeout: Duration::from_millis(300),
            run_as: None,
            adopt_leftovers: false,
        };
        let t0 = Instant::now();
        let o = run_make(d.path(), &spec).unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the sleep was killed with make"
        );
        assert!(!o.ok && o.timed_out, "{o:?}");
        assert!(o.output.contains("start"));
    }
}
