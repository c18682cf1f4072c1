//! Before the first instance of a server starts: the program checked and, as root, copied
//! where the server's user can run it; the sandbox every instance runs in; and the
//! containment the report states.

use crate::checks::Launcher;
use crate::error::GradeError;
use crate::invocation::Settings;
use crate::rubric::Rubric;
use crate::supervise::{self, Limits, RunAs, Sandbox, ServerSpec};
use std::path::Path;

/// What grading one server needs held for its whole run.
pub(crate) struct Prepared {
    pub launcher: Launcher,
    pub containment: serde_json::Value,
    /// Why the signal-safety shim is missing, if it is.
    pub shim_missing: Option<String>,
    // Held until the server's last instance has ended.
    _copy: Option<supervise::ExecutableCopy>,
    _home: tempfile::TempDir,
    _shim: Option<crate::shim::ShimFile>,
}

/// Check the program, resolve the user and limits, and build the launcher.
pub(crate) fn prepare(
    spec: &ServerSpec,
    rubric: &Rubric,
    within: Option<&Path>,
    settings: &Settings,
) -> Result<Prepared, GradeError> {
    let program = validate_server(&spec.program, within)?;
    if !Path::new("/proc/self/fd").exists() {
        return Err(GradeError::Internal(
            "/proc is not mounted: the grader reads the server's state from it".into(),
        ));
    }
    let mut limits = rubric.limits.clone();
    limits
        .apply_overrides(&settings.limits)
        .map_err(GradeError::Usage)?;
    let run_as = supervise::resolve_user(settings.user.as_deref()).map_err(GradeError::Usage)?;
    // As root the server runs from root's own copy, filled from the descriptor just validated:
    // whatever the student's path points to later (a link swapped in by a process a Makefile
    // left behind), the program graded is the regular file checked here, and the other user
    // can execute it wherever the student's file lies.
    let mut spec = spec.clone();
    let copy = match &run_as {
        Some(u) => {
            let c = supervise::accessible_copy(program, &spec.program).map_err(|e| {
                GradeError::Internal(format!(
                    "cannot copy the server where user {} can run it: {e}",
                    u.name
                ))
            })?;
            // Only the grading's own user may reach it: not a server of a grading beside.
            if let Some(dir) = c.path.parent() {
                supervise::share_only_with(dir, u).map_err(|e| {
                    GradeError::Internal(format!("cannot restrict the server's copy: {e}"))
                })?;
            }
            spec.program = c.path.clone();
            Some(c)
        }
        None => None,
    };
    let shim = crate::shim::materialize();
    let home = supervise::scratch_home(run_as.as_ref())
        .map_err(|e| GradeError::Internal(format!("cannot create the server's HOME: {e}")))?;
    let containment = containment(&limits, run_as.as_ref(), settings.isolated_net);
    let launcher = Launcher {
        spec,
        sandbox: Sandbox {
            stdin: settings.stdin.clone(),
            limits,
            cgroups: true,
            run_as,
            home: Some(home.path().to_path_buf()),
        },
        shim: shim.as_ref().ok().map(|s| s.path.clone()),
    };
    Ok(Prepared {
        launcher,
        containment,
        shim_missing: shim.as_ref().err().cloned(),
        _copy: copy,
        _home: home,
        _shim: shim.ok(),
    })
}

/// How the server is confined, in words and numbers, as this host allows.
fn containment(limits: &Limits, run_as: Option<&RunAs>, isolated_net: bool) -> serde_json::Value {
    use serde_json::json;
    let probe = supervise::InstanceCgroup::create(
        &format!("echograde-{}-probe", std::process::id()),
        8,
        16 << 20,
    );
    let mut rlimits = json!({
        "cpu_s": limits.cpu_s,
        "nofile": limits.nofile,
        "nproc": if run_as.is_some() || probe.pids_limited { json!(limits.nproc) } else { json!("not enforced (the server runs as the grader's own user)") },
        "memory_mib": if probe.memory_limited { json!(limits.memory_mib) } else { json!(format!("RLIMIT_AS {} MiB (no memory cgroup)", limits.memory_mib * 16)) },
        "fsize_mib": limits.fsize_mib,
        "core": 0,
    });
    for (name, asked, set) in limits.lowered_here() {
        eprintln!(
            "grade: warning: limits.{name} is {set}, not the rubric's {asked}: this machine's hard \
             limit is lower and the grader may not raise it (no CAP_SYS_RESOURCE)"
        );
        rlimits[name] = json!(format!(
            "{set} (the machine's hard limit; the rubric asks {asked})"
        ));
    }
    let mut c = json!({
        "process_group": true,
        "child_subreaper": true,
        "cgroup": probe.describe(),
        "rlimits": rlimits,
        "user": run_as.map_or("the grader's own (not root)".to_string(), |u| u.name.clone()),
        "ipc": if run_as.is_some() { "private (an IPC namespace per instance)" } else { "shared with the grader's user (no IPC namespace without root)" },
        "signals": if supervise::signal_scoping_available() { "scoped to the server's own processes (Landlock)" } else { "not scoped (this kernel has no Landlock signal scoping)" },
        "network": if isolated_net { "isolated (new network namespace, loopback only)" } else { "shared with the host (loopback)" },
        "observation": observation(run_as),
    });
    if let Some(missing) = supervise::missing_capabilities() {
        c["capabilities_missing"] = missing;
    }
    c
}

/// How the grader sees into the server, as this machine allows.
fn observation(run_as: Option<&RunAs>) -> String {
    let who = match run_as {
        Some(u) => format!("as the server's own user ({})", u.name),
        None => "as the grader's own user".into(),
    };
    let yama = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let tracing = match yama {
        Some(s) if s >= 2 => format!(
            "refused here (kernel.yama.ptrace_scope is {s}): signal.safety cannot read the handlers \
             the kernel holds and is left ungraded for a server that catches signals"
        ),
        _ => "a thread of the grader traces the server".into(),
    };
    format!("/proc read {who}; handlers read by ptrace: {tracing}")
}

/// Refuse a server that cannot possibly run, with a message that names the problem; the
/// program opened, for copying.
///
/// The path is student-controlled (a Makefile may make `echoserverp` a symbolic link to any
/// program on the machine, or a FIFO): it is opened without following a link, without
/// blocking, and only a regular file is accepted. With `within`, the program must lie inside
/// that folder, reached with no symbolic link on the way.
pub(crate) fn validate_server(
    path: &Path,
    within: Option<&Path>,
) -> Result<std::fs::File, GradeError> {
    use crate::supervise::{self as files, Refused};
    use std::os::unix::fs::PermissionsExt;
    let opened = match within {
        Some(dir) => files::open_regular_beneath(dir, path.strip_prefix(dir).unwrap_or(path)),
        None => files::open_regular(path),
    };
    let mut file = opened.map_err(|e| match e {
        Refused::Missing => GradeError::ServerMissing(path.to_path_buf()),
        e => GradeError::ServerNotExecutable {
            path: path.to_path_buf(),
            why: e.to_string(),
        },
    })?;
    let meta = file
        .metadata()
        .map_err(|e| GradeError::ServerNotExecutable {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(GradeError::ServerNotExecutable {
            path: path.to_path_buf(),
            why: format!("it is not executable (try `chmod +x {}`)", path.display()),
        });
    }
    if nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_err() {
        return Err(GradeError::ServerNotExecutable {
            path: path.to_path_buf(),
            why: "this user may not execute it".into(),
        });
    }
    let mut head = [0u8; 4];
    let n =
        std::io::Read::read(&mut file, &mut head).map_err(|e| GradeError::ServerNotExecutable {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
    if !(n >= 4 && &head == b"\x7fELF" || n >= 2 && &head[..2] == b"#!") {
        return Err(GradeError::ServerNotExecutable {
            path: path.to_path_buf(),
            why: "it is neither a compiled program (ELF) nor a script starting with #!".into(),
        });
    }
    Ok(file)
}
