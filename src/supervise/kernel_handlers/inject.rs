//! One `rt_sigaction(sig, NULL, &old)` per signal, run by the server's own thread under
//! ptrace: seize, interrupt, call, read, put everything back, detach.
//!
//! The calling thread must already be allowed to trace the server (same real uid and gid,
//! an ancestor of it for Yama's default scope): `super::read` arranges that. Nothing here
//! reads the student's files; the only memory read is the vDSO (for a system call instruction)
//! and the 32 bytes the kernel wrote.

use super::regs::{find_insn, scratch_below};
use super::Unread;
use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

#[cfg(target_arch = "x86_64")]
mod arch {
    pub use super::super::regs::X86_64 as Regs;
    pub type Full = nix::libc::user_regs_struct;
    pub const ALIGN: usize = 1;

    pub fn view(f: &Full) -> Regs {
        Regs {
            rip: f.rip,
            rsp: f.rsp,
            rax: f.rax,
            orig_rax: f.orig_rax,
            rdi: f.rdi,
            rsi: f.rsi,
            rdx: f.rdx,
            r10: f.r10,
            cs: f.cs,
        }
    }

    /// `full` with the view's registers written over it (the rest, `rcx` and `r11` that a
    /// `syscall` clobbers among them, stay as saved).
    pub fn apply(full: &Full, r: &Regs) -> Full {
        Full {
            rip: r.rip,
            rsp: r.rsp,
            rax: r.rax,
            orig_rax: r.orig_rax,
            rdi: r.rdi,
            rsi: r.rsi,
            rdx: r.rdx,
            r10: r.r10,
            ..*full
        }
    }

    pub fn sp(r: &Regs) -> u64 {
        r.rsp
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    pub use super::super::regs::Aarch64 as Regs;
    pub type Full = nix::libc::user_regs_struct;
    pub const ALIGN: usize = 4;

    pub fn view(f: &Full) -> Regs {
        Regs {
            regs: f.regs,
            sp: f.sp,
            pc: f.pc,
            pstate: f.pstate,
        }
    }

    pub fn apply(full: &Full, r: &Regs) -> Full {
        Full {
            regs: r.regs,
            sp: r.sp,
            pc: r.pc,
            pstate: r.pstate,
        }
    }

    pub fn sp(r: &Regs) -> u64 {
        r.sp
    }
}

use arch::Regs;

/// The handler address the kernel holds for each of `signals`, read through thread `tid` of
/// process `pid`.
pub(super) fn handlers(
    pid: i32,
    tid: i32,
    signals: &[i32],
    deadline: Instant,
) -> Result<Vec<(i32, u64)>, Unread> {
    let t = Pid::from_raw(tid);
    ptrace::seize(t, ptrace::Options::PTRACE_O_TRACESYSGOOD)
        .map_err(|e| super::refused(pid, "PTRACE_SEIZE", e))?;
    // From here on the thread is traced: whatever happens, it is detached (and, if this thread
    // ends first, the kernel detaches it).
    let mut session = Session {
        tid: t,
        deadline,
        pending: None,
        saved: None,
        stopped: false,
    };
    let result = session.run(pid, signals);
    session.finish();
    result
}

struct Session {
    tid: Pid,
    deadline: Instant,
    /// A signal that arrived while the thread was ours, handed back at detach.
    pending: Option<nix::sys::signal::Signal>,
    /// The thread's registers and the scratch bytes, as they were.
    saved: Option<(arch::Full, u64, [i64; 4])>,
    /// Whether the thread is in a ptrace stop (registers can be set, it can be detached).
    stopped: bool,
}

impl Session {
    fn run(&mut self, pid: i32, signals: &[i32]) -> Result<Vec<(i32, u64)>, Unread> {
        ptrace::interrupt(self.tid).map_err(|e| super::refused(pid, "PTRACE_INTERRUPT", e))?;
        let first = self
            .wait_for(|st| matches!(st, WaitStatus::PtraceEvent(..) | WaitStatus::Stopped(..)))?;
        if let WaitStatus::Stopped(_, sig) = first {
            self.pending = Some(sig); // a signal-delivery stop came first: delivered at detach
        }
        let full = ptrace::getregs(self.tid)
            .map_err(|e| Unread::Failed(format!("reading its registers failed ({e})")))?;
        let regs = arch::view(&full);
        if let Some(why) = regs.unsupported() {
            return Err(Unread::Failed(why.into()));
        }
        let insn = syscall_insn(pid)?;
        let scratch = scratch_below(arch::sp(&regs));
        let mut kept = [0i64; 4];
        for (i, w) in kept.iter_mut().enumerate() {
            *w = peek(self.tid, scratch + 8 * i as u64)?;
        }
        self.saved = Some((full, scratch, kept));
        let mut found = Vec::new();
        for &sig in signals {
            let args = [sig as u64, 0, scratch, 8];
            match self.call(&regs, insn, Regs::NR_RT_SIGACTION, args)? {
                0 => found.push((sig, peek(self.tid, scratch)? as u64)),
                err => {
                    return Err(Unread::Failed(format!(
                        "rt_sigaction({sig}) in the server returned {err}"
                    )))
                }
            }
        }
        Ok(found)
    }

    /// Run one system call in the stopped thread and return its result.
    fn call(&mut self, regs: &Regs, insn: u64, nr: u64, args: [u64; 4]) -> Result<i64, Unread> {
        let (full, _, _) = self.saved.expect("saved before any call");
        let set = arch::apply(&full, &regs.call(insn, nr, args));
        ptrace::setregs(self.tid, set)
            .map_err(|e| Unread::Failed(format!("setting its registers failed ({e})")))?;
        // Entry, then exit, of our call. The thread may take a signal first and run a handler
        // (whose own calls also stop here): those are passed through, not counted.
        let mut entered = false;
        loop {
            ptrace::syscall(self.tid, self.pending.take())
                .map_err(|e| Unread::Failed(format!("resuming it failed ({e})")))?;
            self.stopped = false;
            match self.wait_for(|_| true)? {
                WaitStatus::PtraceSyscall(_) => {
                    let now = arch::view(&getregs(self.tid)?);
                    if now.is_call(nr, args[0], args[2]) {
                        if entered {
                            return Ok(now.result());
                        }
                        entered = true;
                    }
                }
                WaitStatus::Stopped(_, sig) => self.pending = Some(sig),
                _ => {}
            }
        }
    }

    /// Wait (bounded) for the thread's next stop that `want` accepts.
    fn wait_for(&mut self, want: impl Fn(&WaitStatus) -> bool) -> Result<WaitStatus, Unread> {
        // WSTOPPED without WEXITED: the server's exit stays for the supervisor to reap.
        let flags = WaitPidFlag::WSTOPPED | WaitPidFlag::WNOHANG | WaitPidFlag::__WALL;
        loop {
            match waitid(Id::Pid(self.tid), flags) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(st) => {
                    self.stopped = true;
                    if want(&st) {
                        return Ok(st);
                    }
                    // A stop we do not want (an event stop still queued): let it run on.
                    if ptrace::syscall(self.tid, None).is_ok() {
                        self.stopped = false;
                    }
                }
                Err(Errno::ECHILD | Errno::ESRCH) => return Err(Unread::Gone),
                Err(e) => return Err(Unread::Failed(format!("waiting for it failed ({e})"))),
            }
            if Instant::now() >= self.deadline {
                return Err(Unread::Failed(
                    "it did not stop for the grader in time".into(),
                ));
            }
            if super::exited(self.tid.as_raw()) {
                return Err(Unread::Gone);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Put the scratch bytes and the registers back and let the thread go. Best effort: a
    /// thread that died meanwhile has nothing to restore.
    fn finish(&mut self) {
        if !self.stopped {
            // Stopped mid-way (a failure while it ran): stop it again to put things back.
            self.deadline = Instant::now() + Duration::from_millis(200);
            if ptrace::interrupt(self.tid).is_err() || self.wait_for(|_| true).is_err() {
                let _ = ptrace::detach(self.tid, self.pending.take());
                return; // gone, or never stopping: the kernel detaches when this thread ends
            }
        }
        if let Some((full, scratch, kept)) = self.saved.take() {
            for (i, w) in kept.iter().enumerate() {
                let _ = ptrace::write(
                    self.tid,
                    (scratch + 8 * i as u64) as ptrace::AddressType,
                    *w,
                );
            }
            let restored = arch::apply(&full, &Regs::restored(&arch::view(&full)));
            let _ = ptrace::setregs(self.tid, restored);
        }
        let _ = ptrace::detach(self.tid, self.pending.take());
    }
}

fn getregs(tid: Pid) -> Result<arch::Full, Unread> {
    ptrace::getregs(tid).map_err(|e| Unread::Failed(format!("reading its registers failed ({e})")))
}

fn peek(tid: Pid, addr: u64) -> Result<i64, Unread> {
    // A word is a `c_long`: 64 bits on both architectures served.
    ptrace::read(tid, addr as ptrace::AddressType)
        .map_err(|e| Unread::Failed(format!("reading its memory at {addr:#x} failed ({e})")))
}

/// The address of a system call instruction in the process's vDSO: the kernel's own code,
/// mapped in every process, so nothing of the student's program is written or trusted.
fn syscall_insn(pid: i32) -> Result<u64, Unread> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| Unread::Failed(format!("reading its memory map failed ({e})")))?;
    let (lo, hi) = maps
        .lines()
        .filter(|l| l.ends_with("[vdso]"))
        .find_map(|l| {
            let (a, b) = l.split_whitespace().next()?.split_once('-')?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })
        .ok_or_else(|| Unread::Failed("it has no vDSO mapped".into()))?;
    let len = (hi.saturating_sub(lo)).min(64 << 10) as usize;
    let mut bytes = vec![0u8; len];
    let remote = [nix::sys::uio::RemoteIoVec {
        base: lo as usize,
        len,
    }];
    let n = nix::sys::uio::process_vm_readv(
        Pid::from_raw(pid),
        &mut [std::io::IoSliceMut::new(&mut bytes)],
        &remote,
    )
    .map_err(|e| Unread::Failed(format!("reading its vDSO failed ({e})")))?;
    find_insn(&bytes[..n], lo, Regs::SYSCALL_INSN, arch::ALIGN)
        .ok_or_else(|| Unread::Failed("its vDSO holds no system call instruction".into()))
}
