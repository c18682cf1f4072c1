//! The register arithmetic of one injected system call, per architecture, as pure functions
//! over plain structs: what to set to make the stopped thread run `rt_sigaction`, where its
//! result is, and what to put back so the thread goes on as if nothing had happened.
//!
//! Both architectures are described here whatever the grader is built for, so the unit tests
//! check the aarch64 rules on an x86-64 machine too; `inject` maps the kernel's register
//! structs onto these.
//!
//! The subtle part is a thread stopped inside a system call (a server is nearly always blocked
//! in `accept`, `read` or `poll` when it is interrupted). The kernel has already made that call
//! return `-ERESTART*`, and restarts it on the way back to user space, at signal handling:
//! - x86-64 restarts *after* the ptrace stop (`arch_do_signal_or_restart` runs after
//!   `get_signal`): the saved registers still hold `rax = -ERESTART*` and `rip` just past the
//!   `syscall` instruction. Resuming from our own syscall's exit stop skips that logic, so the
//!   restore does the kernel's rewind itself (`rax = orig_rax`, `rip -= 2`; `restart_syscall`
//!   for `-ERESTART_RESTARTBLOCK`), and the injected call sets `orig_rax = -1` so the kernel
//!   does not rewind *it* when we resume from the interrupt stop.
//! - aarch64 rewinds *before* the stop (`do_signal` sets `x0 = orig_x0`, `pc -= 4` and forgets
//!   the syscall number before calling `get_signal`, "so that a debugger will see the already
//!   changed PC"): the saved registers are already the restarted call, and are restored as
//!   they are. (The one case it finishes after the stop, `-ERESTART_RESTARTBLOCK`, then re-runs
//!   the interrupted call itself rather than `restart_syscall`: for the sleeps that use it, a
//!   sleep that starts over; servers block in calls that restart plainly.)

/// `-ERESTARTSYS`, `-ERESTARTNOINTR`, `-ERESTARTNOHAND`: restart the call as it was.
const RESTART_PLAIN: [i64; 3] = [-512, -513, -514];
/// `-ERESTART_RESTARTBLOCK`: restart through `restart_syscall`.
const RESTART_BLOCK: i64 = -516;

/// The x86-64 registers the injection reads and writes (a subset of `user_regs_struct`).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct X86_64 {
    pub rip: u64,
    pub rsp: u64,
    pub rax: u64,
    pub orig_rax: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub r10: u64,
    /// The code segment: 0x33 for a 64-bit process, 0x23 for a 32-bit one.
    pub cs: u64,
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl X86_64 {
    pub const SYSCALL_INSN: &'static [u8] = &[0x0f, 0x05];
    pub const NR_RT_SIGACTION: u64 = 13;
    const NR_RESTART_SYSCALL: u64 = 219;
    const USER_CS_64: u64 = 0x33;

    /// Why this thread cannot be made to call into the 64-bit kernel ABI, if it cannot.
    pub fn unsupported(&self) -> Option<&'static str> {
        (self.cs != Self::USER_CS_64).then_some("the server is a 32-bit program")
    }

    /// Registers that make the thread, resumed at `insn` (a `syscall` instruction), call `nr`
    /// with `args`; `orig_rax = -1` keeps the kernel from treating the resume as a restart.
    pub fn call(&self, insn: u64, nr: u64, args: [u64; 4]) -> X86_64 {
        X86_64 {
            rip: insn,
            rax: nr,
            orig_rax: u64::MAX,
            rdi: args[0],
            rsi: args[1],
            rdx: args[2],
            r10: args[3],
            ..*self
        }
    }

    /// The injected call's result, read at its exit stop (a negative errno on failure).
    pub fn result(&self) -> i64 {
        self.rax as i64
    }

    /// Whether the thread stopped at a system call's entry or exit for `nr` with first argument
    /// `arg0` and third `arg2` (ours, as opposed to a call the server made meanwhile).
    pub fn is_call(&self, nr: u64, arg0: u64, arg2: u64) -> bool {
        self.orig_rax == nr && self.rdi == arg0 && self.rdx == arg2
    }

    /// What to put back for the saved registers to go on as the kernel would have: an
    /// interrupted call is rewound to run again.
    pub fn restored(saved: &X86_64) -> X86_64 {
        let mut r = *saved;
        if (saved.orig_rax as i64) >= 0 {
            let ret = saved.rax as i64;
            if RESTART_PLAIN.contains(&ret) {
                r.rax = saved.orig_rax;
                r.rip = saved.rip.wrapping_sub(2);
            } else if ret == RESTART_BLOCK {
                r.rax = Self::NR_RESTART_SYSCALL;
                r.rip = saved.rip.wrapping_sub(2);
            }
        }
        r
    }
}

/// The aarch64 registers the injection reads and writes (`user_pt_regs`).
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Aarch64 {
    pub regs: [u64; 31],
    pub sp: u64,
    pub pc: u64,
    pub pstate: u64,
}

#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
impl Aarch64 {
    /// `svc #0`, little-endian.
    pub const SYSCALL_INSN: &'static [u8] = &[0x01, 0x00, 0x00, 0xd4];
    pub const NR_RT_SIGACTION: u64 = 134;
    /// PSTATE.nRW: set for a 32-bit (AArch32) thread.
    const PSR_MODE32: u64 = 0x10;

    pub fn unsupported(&self) -> Option<&'static str> {
        (self.pstate & Self::PSR_MODE32 != 0).then_some("the server is a 32-bit program")
    }

    /// Registers that make the thread, resumed at `insn` (an `svc #0`), call `nr` (in x8) with
    /// `args` (x0-x3). The kernel forgot the interrupted call's number at the stop, so no
    /// restart applies to the resume.
    pub fn call(&self, insn: u64, nr: u64, args: [u64; 4]) -> Aarch64 {
        let mut r = *self;
        r.pc = insn;
        r.regs[8] = nr;
        r.regs[..4].copy_from_slice(&args);
        r
    }

    pub fn result(&self) -> i64 {
        self.regs[0] as i64
    }

    /// At a syscall stop x0 may already hold the result; x8 and x2 still name the call.
    pub fn is_call(&self, nr: u64, _arg0: u64, arg2: u64) -> bool {
        self.regs[8] == nr && self.regs[2] == arg2
    }

    /// The saved registers are already the kernel's restarted call: put back as they are.
    pub fn restored(saved: &Aarch64) -> Aarch64 {
        *saved
    }
}

/// A scratch area below the stack pointer for the kernel to write the old action into: past
/// x86-64's 128-byte red zone and any frame being built, 16-byte aligned.
pub fn scratch_below(sp: u64) -> u64 {
    (sp.wrapping_sub(1024)) & !15
}

/// The first address of `insn` in `bytes` (read from `base`), on the instruction's alignment.
pub fn find_insn(bytes: &[u8], base: u64, insn: &[u8], align: usize) -> Option<u64> {
    bytes
        .windows(insn.len())
        .enumerate()
        .find(|&(i, w)| w == insn && (base as usize + i) % align == 0)
        .map(|(i, _)| base + i as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked_in_accept() -> X86_64 {
        X86_64 {
            rip: 0x7f00_0000_1234,
            rsp: 0x7ffe_0000_1000,
            rax: (-512i64) as u64, // -ERESTARTSYS
            orig_rax: 43,          // accept
            rdi: 3,
            rsi: 0,
            rdx: 0,
            r10: 0,
            cs: 0x33,
        }
    }

    #[test]
    fn x86_64_call_sets_the_abi_registers_and_disarms_the_restart() {
        let saved = blocked_in_accept();
        let c = saved.call(0x7fff_f000_0a10, 13, [17, 0, 0x7ffe_0000_0c00, 8]);
        assert_eq!(
            (c.rip, c.rax, c.rdi, c.rsi, c.rdx, c.r10),
            (0x7fff_f000_0a10, 13, 17, 0, 0x7ffe_0000_0c00, 8)
        );
        assert_eq!(c.orig_rax as i64, -1, "no restart of the injected call");
        assert_eq!(
            (c.rsp, c.cs),
            (saved.rsp, saved.cs),
            "the rest is the thread's own"
        );
        assert!(
            !c.is_call(13, 17, 0x7ffe_0000_0c00),
            "orig_rax is -1 until entry"
        );
    }

    #[test]
    fn x86_64_an_interrupted_call_is_rewound_to_run_again() {
        let saved = blocked_in_accept();
        let r = X86_64::restored(&saved);
        assert_eq!(r.rip, saved.rip - 2, "back onto the syscall instruction");
        assert_eq!(r.rax, 43, "the call's number again");
        assert_eq!(r.rdi, 3, "with its arguments");
        for code in [-513i64, -514] {
            let s = X86_64 {
                rax: code as u64,
                ..saved
            };
            assert_eq!(X86_64::restored(&s).rax, 43);
        }
    }

    #[test]
    fn x86_64_a_restart_block_call_goes_through_restart_syscall() {
        let saved = X86_64 {
            rax: (-516i64) as u64,
            orig_rax: 230,
            ..blocked_in_accept()
        };
        let r = X86_64::restored(&saved);
        assert_eq!((r.rax, r.rip), (219, saved.rip - 2));
    }

    #[test]
    fn x86_64_a_finished_call_or_user_code_is_put_back_as_it_was() {
        // A call that returned (3 bytes read), and a thread in user code (orig_rax -1).
        let done = X86_64 {
            rax: 3,
            orig_rax: 0,
            ..blocked_in_accept()
        };
        assert_eq!(X86_64::restored(&done), done);
        let user = X86_64 {
            rax: (-512i64) as u64,
            orig_rax: u64::MAX,
            ..blocked_in_accept()
        };
        assert_eq!(
            X86_64::restored(&user),
            user,
            "-512 in rax is data outside a call"
        );
        // EINTR is returned to the program, not restarted.
        let eintr = X86_64 {
            rax: (-4i64) as u64,
            ..blocked_in_accept()
        };
        assert_eq!(X86_64::restored(&eintr), eintr);
    }

    #[test]
    fn x86_64_32_bit_threads_are_refused() {
        assert!(blocked_in_accept().unsupported().is_none());
        assert!(X86_64 {
            cs: 0x23,
            ..blocked_in_accept()
        }
        .unsupported()
        .is_some());
    }

    #[test]
    fn aarch64_call_uses_x8_and_x0_to_x3_and_restores_verbatim() {
        let mut saved = Aarch64 {
            sp: 0xffff_f000,
            pc: 0xaaaa_0000_1000,
            ..Default::default()
        };
        saved.regs[0] = 3; // orig_x0: the kernel already rewound the interrupted accept
        saved.regs[8] = 202;
        saved.regs[19] = 0xdead;
        let c = saved.call(0xffff_8000_0100, 134, [17, 0, 0xffff_ec00, 8]);
        assert_eq!(c.pc, 0xffff_8000_0100);
        assert_eq!(&c.regs[..4], &[17, 0, 0xffff_ec00, 8]);
        assert_eq!(c.regs[8], 134);
        assert_eq!(
            (c.regs[19], c.sp),
            (0xdead, saved.sp),
            "callee-saved state kept"
        );
        assert!(c.is_call(134, 17, 0xffff_ec00));
        assert_eq!(Aarch64::restored(&saved), saved);
        assert!(Aarch64 {
            pstate: 0x10,
            ..saved
        }
        .unsupported()
        .is_some());
        assert!(saved.unsupported().is_none());
    }

    #[test]
    fn scratch_is_aligned_and_below_the_red_zone() {
        let s = scratch_below(0x7ffe_0000_1008);
        assert_eq!(s % 16, 0);
        assert!(s + 128 <= 0x7ffe_0000_1008 - 128 * 2);
    }

    #[test]
    fn instructions_are_found_on_their_alignment_only() {
        let bytes = [0x90, 0x0f, 0x05, 0x00, 0x01, 0x00, 0x00, 0xd4];
        assert_eq!(
            find_insn(&bytes, 0x1000, X86_64::SYSCALL_INSN, 1),
            Some(0x1001)
        );
        assert_eq!(
            find_insn(&bytes, 0x1000, Aarch64::SYSCALL_INSN, 4),
            Some(0x1004)
        );
        assert_eq!(
            find_insn(&bytes[1..], 0x1001, Aarch64::SYSCALL_INSN, 4),
            Some(0x1004)
        );
        assert_eq!(
            find_insn(&bytes[..4], 0x1000, Aarch64::SYSCALL_INSN, 4),
            None
        );
    }
}
