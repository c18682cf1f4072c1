//! gdb against a student's process, the one way the grader runs it: as the process's own user
//! (never root: gdb reads the student's program and attaches to the student's process, both
//! untrusted), in its own process group, with a clean environment, bounded in time and in
//! output.
//!
//! Two checks use it: `liveness.churn` (where a hung server's threads wait) and
//! `signal.safety` (the handler the kernel holds for each caught signal). Its output is read
//! while gdb runs: a backtrace of a hundred threads is more than a pipe holds, and a gdb
//! blocked on a full pipe would look like a gdb that never finished.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How much of gdb's output is kept.
const OUTPUT_CAP: u64 = 1 << 20;

/// Attach gdb to `pid`, run `commands` (each an `-ex`; `early` as `-iex`, before attaching)
/// and return what it printed on stdout, or why it could not. Killed past `limit`.
pub fn run_as_owner(
    pid: i32,
    early: &[&str],
    commands: &[String],
    limit: Duration,
) -> Result<String, String> {
    let (uid, gid) = ids(pid).ok_or("the process is gone")?;
    let as_root = nix::unistd::geteuid().is_root();
    if as_root && uid == 0 {
        return Err("the process runs as root".into());
    }
    let mut cmd = Command::new("gdb");
    cmd.args(["-nx", "-batch"]);
    // The server may be in a mount namespace of its own: gdb would then read its files
    // through /proc/PID/root, which it may not; the paths are the same in the grader's.
    cmd.args(["-iex", "set sysroot /"]);
    for e in early {
        cmd.args(["-iex", e]);
    }
    cmd.args(["-p", &pid.to_string()]);
    for c in commands {
        cmd.arg("-ex").arg(c);
    }
    cmd.env_clear()
        .envs(super::clean_env(None))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    if as_root {
        // std drops supplementary groups when root changes the child's ids.
        cmd.uid(uid).gid(gid);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("gdb could not be started ({e})"))?;
    let stdout = child.stdout.take().ok_or("no gdb output")?;
    // Read as it comes (kept up to the cap, the rest drained), so gdb never blocks on a pipe.
    let reader = std::thread::spawn(move || {
        let mut stdout = stdout;
        let mut kept = Vec::new();
        let _ = (&mut stdout).take(OUTPUT_CAP).read_to_end(&mut kept);
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        kept
    });
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::SIGKILL,
                );
                let _ = child.wait();
                let _ = reader.join();
                return Err("gdb did not finish in time".into());
            }
        }
    }
    let kept = reader
        .join()
        .map_err(|_| "gdb's output could not be read")?;
    Ok(String::from_utf8_lossy(&kept).into_owned())
}

/// The real uid and gid of a process, from /proc/PID/status (which, unlike the owner of
/// /proc/PID, stays right when the process makes itself non-dumpable).
fn ids(pid: i32) -> Option<(u32, u32)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((field("Uid:")?, field("Gid:")?))
}
