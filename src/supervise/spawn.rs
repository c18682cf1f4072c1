//! Starting the server process: its own process group, no inherited descriptors, default
//! signal dispositions and an empty signal mask, whatever state the grader is in.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub fn spawn(
    program: &Path,
    args: &[OsString],
    env: &[(OsString, OsString)],
) -> std::io::Result<Child> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (setpgid, prctl, sigaction, sigprocmask, close_range).
    unsafe {
        cmd.pre_exec(|| {
            use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
            // Own process group: teardown signals the whole group at once.
            nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0))?;
            // If the grader dies without teardown, the server goes with it.
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
