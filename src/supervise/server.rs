//! The [`Server`]: one instance of the student's server, from start to teardown.

use super::cgroup::InstanceCgroup;
use super::limits::Limits;
use super::mount_ns;
use super::output::{Tail, TAIL_CAP};
use super::privilege::RunAs;
use super::reap::{self, TeardownReport};
use super::spawn;
use crate::inspect::{self, Pid, ProcTable, SocketTable};
use nix::sys::signal::Signal;
use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal { sig: Signal, core: bool },
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exited with status {c}"),
            Exit::Signal { sig, core } => write!(
                f,
                "was killed by {}{}",
                sig.as_str(),
                if *core { " (core dumped)" } else { "" }
            ),
        }
    }
}

/// What to run: the server and its arguments, `{port}` not yet replaced.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl ServerSpec {
    /// The command line as the report shows it, with `{port}` where the port goes.
    pub fn template(&self) -> Vec<String> {
        let mut v = vec![self.program.display().to_string()];
        if self.args.is_empty() {
            v.push("{port}".into());
        } else {
            v.extend(self.args.iter().cloned());
        }
        v
    }

    pub fn argv(&self, port: u16) -> Vec<String> {
        let mut v = vec![self.program.display().to_string()];
        if self.args.is_empty() {
            v.push(port.to_string());
        } else {
            v.extend(
                self.args
                    .iter()
                    .map(|a| a.replace("{port}", &port.to_string())),
            );
        }
        v
    }
}

/// What the server gets as its standard input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StdinSource {
    /// A pipe the grader holds open and never writes: like a terminal nobody types at. A server
    /// that selects on stdin (CS:APP Fig. 12.6) waits on it instead of reading EOF and exiting.
    #[default]
    Pipe,
    /// /dev/null: reads return EOF at once.
    Null,
    /// This file's contents.
    File(PathBuf),
}

/// How every instance is confined: limits, cgroups, user.
#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    /// The server's standard input.
    pub stdin: StdinSource,
    pub limits: Limits,
    /// Make a cgroup per instance where the host allows it.
    pub cgroups: bool,
    /// The user the server runs as (when the grader is root).
    pub run_as: Option<RunAs>,
    /// The server's `HOME`: a scratch folder of the run (`/nonexistent` when unset). Its
    /// environment is otherwise only `PATH`, `LANG` and what a check adds (see
    /// [`spawn::clean_env`]).
    pub home: Option<PathBuf>,
}

/// Why an instance never became ready.
#[derive(Debug, Clone)]
pub enum StartFailure {
    /// exec itself failed.
    Spawn(String),
    /// The server exited before it listened.
    Exited {
        exit: Exit,
        port: u16,
        stderr_tail: String,
    },
    /// Nothing of the server's tree listened on the port by the deadline.
    NotListening {
        waited: Duration,
        port: u16,
        /// Ports the server's processes do listen on (a fixed port, say).
        other_ports: Vec<u16>,
        /// Whether a thread of the server was blocked reading its standard input.
        reading_stdin: bool,
        /// Processes of its tree that keep the grader out of their descriptors (made
        /// themselves non-dumpable where the grader has no `CAP_SYS_PTRACE`).
        hidden: Vec<Pid>,
        stderr_tail: String,
    },
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartFailure::Spawn(e) => write!(f, "the server could not be started: {e}"),
            StartFailure::Exited {
                exit,
                port,
                stderr_tail,
            } => {
                write!(f, "the server {exit} before it listened on port {port}")?;
                match last_lines(stderr_tail, 3) {
                    Some(l) => write!(f, "; the last it wrote on stderr: \"{l}\""),
                    None => write!(f, ", and wrote nothing on stderr"),
                }
            }
            StartFailure::NotListening {
                waited,
                port,
                other_ports,
                reading_stdin,
                hidden,
                ..
            } => {
                let secs = waited.as_secs_f64();
                if !hidden.is_empty() {
                    // Not "did not listen": the grader could not look.
                    return write!(
                        f,
                        "the grader could not see which ports the server listens on: its \
                         process{} {} made {} non-dumpable (prctl(PR_SET_DUMPABLE, 0)), which keeps \
                         every observer out of {} descriptors, so nothing could be graded",
                        if hidden.len() == 1 { "" } else { "es" },
                        hidden.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
                        if hidden.len() == 1 { "itself" } else { "themselves" },
                        if hidden.len() == 1 { "its" } else { "their" },
                    );
                }
                match other_ports.as_slice() {
                    [] => write!(
                        f,
                        "the server did not listen on any TCP port within {secs:.1} s (the port \
                         given as its argument was {port})"
                    )?,
                    ports => write!(
                        f,
                        "the server listens on port {}, not on the port given as its argument \
                         ({port})",
                        ports
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )?,
                }
                if *reading_stdin {
                    write!(f, "; it was waiting to read its standard input")?;
                }
                Ok(())
            }
        }
    }
}

/// The last `n` non-empty lines of a tail, joined by " / ", if there are any.
fn last_lines(tail: &str, n: usize) -> Option<String> {
    let lines: Vec<&str> = tail.lines().filter(|l| !l.trim().is_empty()).collect();
    let keep = &lines[lines.len().saturating_sub(n)..];
    (!keep.is_empty()).then(|| crate::report::sanitize(&keep.join(" / ")))
}

impl StartFailure {
    pub fn stderr_tail(&self) -> &str {
        match self {
            StartFailure::Spawn(_) => "",
            StartFailure::Exited { stderr_tail, .. }
            | StartFailure::NotListening { stderr_tail, .. } => stderr_tail,
        }
    }
}

/// A running server instance. Dropping it tears it down.
pub struct Server {
    /// The process the grader started (also its process group id).
    pub pid: Pid,
    /// The process that holds the listening socket (the server proper; usually `pid`).
    pub main_pid: Pid,
    pub port: u16,
    pub argv: Vec<String>,
    /// Inodes of the listening socket(s) on `port`.
    pub listen_inodes: Vec<u64>,
    pub stdout: Tail,
    pub stderr: Tail,
    /// The write end of the server's stdin pipe: held, never written, closed at teardown.
    _stdin: Option<std::process::ChildStdin>,
    pidfd: Option<std::os::fd::OwnedFd>,
    statuses: HashMap<Pid, Exit>,
    torn_down: Option<TeardownReport>,
    /// The instance's cgroups (removed when the server is dropped, after teardown).
    pub cgroup: InstanceCgroup,
    limits: Limits,
}

/// Grace between SIGTERM and SIGKILL at teardown.
const TERM_GRACE: Duration = Duration::from_millis(300);
/// Teardown gives up (and reports survivors) after this long.
const KILL_LIMIT: Duration = Duration::from_secs(10);

impl Server {
    /// Start `spec` on `port` with extra environment, and wait until it listens.
    pub fn start(
        spec: &ServerSpec,
        port: u16,
        env: &[(OsString, OsString)],
        ready_deadline: Duration,
        sandbox: &Sandbox,
    ) -> Result<Server, StartFailure> {
        let argv = spec.argv(port);
        let args: Vec<OsString> = argv[1..].iter().map(OsString::from).collect();
        static INSTANCE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let cgroup = if sandbox.cgroups {
            let n = INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            InstanceCgroup::create(
                &format!("echograde-{}-{n}", std::process::id()),
                sandbox.limits.nproc,
                sandbox.limits.memory_mib << 20,
            )
        } else {
            InstanceCgroup::default()
        };
        let confine = spawn::Confinement {
            cgroup_procs: cgroup.procs_fds(),
            rlimits: super::limits::RlimitPlan::new(
                &sandbox.limits,
                sandbox.run_as.is_some(),
                cgroup.memory_limited,
            ),
            run_as: sandbox.run_as.clone(),
            // Every path the grader hands the server (its program, HOME, the files named in
            // the environment it sets) stays reachable inside the fresh /tmp.
            // A relative program path counts too: `grade ./server` run from a folder in /tmp
            // (as an ordinary user, who runs the program where it lies) must still find it.
            private_tmp: Some(mount_ns::PrivateTmp::plan(
                std::iter::once(std::path::absolute(&spec.program).unwrap_or_default())
                    .chain(sandbox.home.clone())
                    .chain(env.iter().map(|(_, v)| PathBuf::from(v)))
                    .filter(|p| p.is_absolute())
                    .collect::<Vec<_>>()
                    .iter()
                    .map(PathBuf::as_path),
            )),
        };
        let mut child = spawn::spawn(
            &spec.program,
            &args,
            env,
            &sandbox.stdin,
            sandbox.home.as_deref(),
            confine,
        )
        .map_err(|e| StartFailure::Spawn(e.to_string()))?;
        let stdin = child.stdin.take();
        let pid = child.id() as Pid;
        mount_ns::note_child(pid);
        let (stdout, stderr) = drain_output(&mut child);
        // The std handle is dropped without waiting: the grader reaps by pid (see reap.rs).
        drop(child);
        let pidfd = rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(pid).expect("child pid is positive"),
            rustix::process::PidfdFlags::empty(),
        )
        .ok();
        let mut server = Server {
            pid,
            main_pid: pid,
            port,
            argv,
            listen_inodes: Vec::new(),
            stdout,
            stderr,
            _stdin: stdin,
            pidfd,
            statuses: HashMap::new(),
            torn_down: None,
            cgroup,
            limits: sandbox.limits.clone(),
        };
        server.wait_listening(ready_deadline)?;
        Ok(server)
    }

    fn wait_listening(&mut self, deadline: Duration) -> Result<(), StartFailure> {
        let start = Instant::now();
        loop {
            let sockets = SocketTable::read();
            let listen: Vec<u64> = sockets
                .listeners_on(self.port)
                .iter()
                .map(|s| s.inode)
                .collect();
            if !listen.is_empty() {
                for pid in self.tree() {
                    let held = inspect::fds::socket_inodes(pid);
                    if listen.iter().any(|i| held.contains(i)) {
                        self.main_pid = pid;
                        self.listen_inodes = listen;
                        return Ok(());
                    }
                }
            }
            if let Some(exit) = self.exit_status() {
                // A server may daemonize: its first process exits while a child listens.
                if self.tree().is_empty() {
                    return Err(StartFailure::Exited {
                        exit,
                        port: self.port,
                        stderr_tail: self.stderr_after_death(2048, Duration::from_millis(500)),
                    });
                }
            }
            if start.elapsed() >= deadline {
                let tree = self.tree();
                return Err(StartFailure::NotListening {
                    waited: start.elapsed(),
                    port: self.port,
                    other_ports: listening_ports(&tree, &sockets),
                    reading_stdin: tree.iter().any(|&p| {
                        inspect::task_snapshots(p)
                            .iter()
                            .any(|t| inspect::tasks::reading_fd(t) == Some(0))
                    }),
                    hidden: tree
                        .iter()
                        .copied()
                        .filter(|&p| inspect::owner::hides_descriptors(p))
                        .collect(),
                    stderr_tail: self.stderr.last(2048),
                });
            }
            self.wait_exit_or(Duration::from_millis(3));
        }
    }

    /// Sleep at most `d`, waking at once if the started process exits.
    fn wait_exit_or(&self, d: Duration) {
        match &self.pidfd {
            Some(fd) => {
                let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
                let ts = rustix::event::Timespec {
                    tv_sec: d.as_secs() as i64,
                    tv_nsec: d.subsec_nanos() as i64,
                };
                let _ = rustix::event::poll(&mut fds, Some(&ts));
            }
            None => std::thread::sleep(d),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Every live or zombie process of the server's tree.
    pub fn tree(&self) -> Vec<Pid> {
        ProcTable::scan().tree(self.pid, self.pid, std::process::id() as Pid, &[])
    }

    /// The exit status of the started process, if it has ended (reaps what has exited).
    pub fn exit_status(&mut self) -> Option<Exit> {
        reap::reap_exited(&[self.pid, self.main_pid], &mut self.statuses);
        self.statuses.get(&self.pid).copied()
    }

    /// The last `max` bytes the server wrote on stderr, once it has died. Its last words (a
    /// glibc abort message, an error it printed) may still be in the pipe when the death is
    /// seen: the drain thread reads them after. So wait, up to `limit`, for the stream's end
    /// (all writers gone); a child that still holds stderr keeps it open, and then the tail is
    /// what came by the limit.
    pub fn stderr_after_death(&self, max: usize, limit: Duration) -> String {
        self.stderr.wait_done(limit);
        self.stderr.last(max)
    }

    /// How the server proper (the listening process) ended, if it has: its exit status when
    /// it was the grader's child, else "gone".
    pub fn main_exit(&mut self) -> Option<MainExit> {
        reap::reap_exited(&[self.pid, self.main_pid], &mut self.statuses);
        if let Some(e) = self.statuses.get(&self.main_pid) {
            return Some(MainExit::Status(*e));
        }
        match inspect::procs::read_stat(self.main_pid) {
            Ok(p) if !p.is_zombie() => None,
            Ok(_) if self.main_pid == self.pid => {
                // Our own child, dead. A multi-threaded process shows as a zombie before the
                // kernel lets its parent reap it (its other threads are still exiting): wait
                // briefly for the status rather than report it unknown.
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(2) {
                    reap::reap_exited(&[self.pid], &mut self.statuses);
                    if let Some(e) = self.statuses.get(&self.pid) {
                        return Some(MainExit::Status(*e));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Some(MainExit::Gone)
            }
            // A daemon's process that is not our child: gone, its status not ours to see.
            Ok(_) | Err(_) => Some(MainExit::Gone),
        }
    }

    /// End the instance: SIGTERM, grace, SIGKILL, reap. Idempotent.
    pub fn teardown(&mut self) -> TeardownReport {
        if let Some(r) = &self.torn_down {
            return r.clone();
        }
        let mut report = reap::kill_tree(
            self.pid,
            self.pid,
            &[],
            TERM_GRACE,
            KILL_LIMIT,
            &mut self.statuses,
        );
        // Whatever escaped the process tree is still in the cgroup: kill it there.
        if !self.cgroup.members().is_empty() {
            self.cgroup.kill_all();
            let start = Instant::now();
            loop {
                let left = self.cgroup.members();
                if left.is_empty() || start.elapsed() > KILL_LIMIT {
                    report.survivors.extend(left);
                    break;
                }
                for p in &left {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), Signal::SIGKILL);
                }
                reap::reap_exited(&[self.pid], &mut self.statuses);
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        self.torn_down = Some(report.clone());
        report
    }

    /// The resource limit the server ran into, in words, if any.
    pub fn limit_hit(&mut self) -> Option<String> {
        let l = &self.limits;
        match self.statuses.get(&self.main_pid).copied() {
            Some(Exit::Signal {
                sig: Signal::SIGXCPU,
                ..
            }) => {
                return Some(format!("its CPU time limit ({} s, RLIMIT_CPU)", l.cpu_s));
            }
            Some(Exit::Signal {
                sig: Signal::SIGXFSZ,
                ..
            }) => {
                return Some(format!(
                    "its file size limit ({} MiB, RLIMIT_FSIZE)",
                    l.fsize_mib
                ));
            }
            _ => {}
        }
        if self.cgroup.oom_killed() {
            return Some(format!(
                "its memory limit ({} MiB, memory cgroup)",
                l.memory_mib
            ));
        }
        if self.cgroup.pids_refused() {
            return Some(format!(
                "its limit of {} processes and threads (pids cgroup): a fork or pthread_create failed",
                l.nproc
            ));
        }
        let open = inspect::fds::fd_count(self.main_pid) as u64;
        if open + 2 >= l.nofile {
            return Some(format!(
                "its limit of {} open descriptors (RLIMIT_NOFILE)",
                l.nofile
            ));
        }
        None
    }
}

/// The TCP ports that processes of `tree` listen on.
fn listening_ports(tree: &[Pid], sockets: &SocketTable) -> Vec<u16> {
    let mut ports: Vec<u16> = tree
        .iter()
        .flat_map(|&p| inspect::fds::socket_inodes(p))
        .filter_map(|i| sockets.by_inode(i))
        .filter(|s| s.state == procfs::net::TcpState::Listen)
        .map(|s| s.local_port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// How the listening process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MainExit {
    Status(Exit),
    Gone,
}

impl std::fmt::Display for MainExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MainExit::Status(e) => e.fmt(f),
            MainExit::Gone => write!(f, "is gone (its exit status was not visible to the grader)"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Pick a free TCP port for a server: below the ephemeral range, so no client socket of the
/// grader can ever share it, and not in use by anything on the machine right now.
pub fn pick_port() -> u16 {
    let (lo, _hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    let (min, max) = if lo > 12000 {
        (10000u16, lo - 1)
    } else {
        (61000u16, 65000u16)
    };
    let span = (max - min) as u64;
    // Ports need not be reproducible from --seed (parallel graders with the same seed must not
    // collide), so mix the time and pid in.
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ ((std::process::id() as u64) << 32);
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = min + (x % span) as u16;
        if SocketTable::read().port_in_use(port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    min
}

/// Drain a child's stdout and stderr into bounded captures (a warning when one cannot be).
fn drain_output(child: &mut std::process::Child) -> (Tail, Tail) {
    let (stdout, stderr) = (Tail::new(TAIL_CAP), Tail::new(TAIL_CAP));
    let drained = [
        (
            child.stdout.take().map(|s| stdout.drain_from(s, "stdout")),
            "stdout",
        ),
        (
            child.stderr.take().map(|s| stderr.drain_from(s, "stderr")),
            "stderr",
        ),
    ];
    for (result, name) in drained {
        if let Some(Err(e)) = result {
            eprintln!("grade: warning: cannot drain the server's {name}: {e}");
        }
    }
    (stdout, stderr)
}
