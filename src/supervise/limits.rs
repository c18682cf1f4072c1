//! Resource limits for the server: CPU seconds, descriptors, processes, memory, file size, no
//! core dumps. Each has a default that a correct server with thousands of connections stays
//! well inside, a rubric override (`limits:`) and a command-line override (`--limit KEY=N`).
//!
//! Memory is limited by a memory cgroup where one is writable. Without one, RLIMIT_AS stands
//! in, set far above the cgroup figure: address space counts every thread's stack reservation
//! (8 MiB each), so a tight RLIMIT_AS would kill correct threaded servers.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// CPU seconds per server instance (RLIMIT_CPU).
    pub cpu_s: u64,
    /// Open descriptors per process (RLIMIT_NOFILE).
    pub nofile: u64,
    /// Processes and threads (cgroup pids.max; RLIMIT_NPROC when the server runs as a user of
    /// its own).
    pub nproc: u64,
    /// Memory in MiB (cgroup memory limit; RLIMIT_AS at 16 times this where no cgroup).
    pub memory_mib: u64,
    /// Largest file the server may write, in MiB (RLIMIT_FSIZE).
    pub fsize_mib: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu_s: 120,
            nofile: 16384,
            nproc: 4096,
            memory_mib: 2048,
            fsize_mib: 64,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), String> {
        let check = |name: &str, v: u64, lo: u64, hi: u64| {
            if v < lo || v > hi {
                Err(format!(
                    "limits.{name} is {v}: it must be between {lo} and {hi}"
                ))
            } else {
                Ok(())
            }
        };
        check("cpu_s", self.cpu_s, 1, 3600)?;
        check("nofile", self.nofile, 64, 1 << 20)?;
        check("nproc", self.nproc, 8, 1 << 20)?;
        check("memory_mib", self.memory_mib, 16, 1 << 20)?;
        check("fsize_mib", self.fsize_mib, 1, 1 << 20)
    }

    /// Apply the command line's `--limit` overrides; the result must still be in range.
    pub fn apply_overrides(&mut self, overrides: &[LimitOverride]) -> Result<(), String> {
        for o in overrides {
            *match o.key {
                LimitKey::CpuS => &mut self.cpu_s,
                LimitKey::Nofile => &mut self.nofile,
                LimitKey::Nproc => &mut self.nproc,
                LimitKey::MemoryMib => &mut self.memory_mib,
                LimitKey::FsizeMib => &mut self.fsize_mib,
            } = o.value;
        }
        self.validate().map_err(|e| format!("--limit: {e}"))
    }
}

/// Which limit a `--limit KEY=N` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKey {
    CpuS,
    Nofile,
    Nproc,
    MemoryMib,
    FsizeMib,
}

/// One `--limit KEY=N`, parsed where the command line is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitOverride {
    pub key: LimitKey,
    pub value: u64,
}

impl std::str::FromStr for LimitOverride {
    type Err = String;

    fn from_str(o: &str) -> Result<LimitOverride, String> {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| format!("--limit {o}: expected KEY=NUMBER, e.g. --limit nproc=2048"))?;
        let value: u64 = v
            .trim()
            .parse()
            .map_err(|_| format!("--limit {o}: `{v}` is not a whole number"))?;
        let key = match k.trim() {
            "cpu_s" => LimitKey::CpuS,
            "nofile" => LimitKey::Nofile,
            "nproc" => LimitKey::Nproc,
            "memory_mib" => LimitKey::MemoryMib,
            "fsize_mib" => LimitKey::FsizeMib,
            other => {
                return Err(format!(
                    "--limit {o}: unknown limit `{other}` (known: cpu_s, nofile, nproc, memory_mib, fsize_mib)"
                ))
            }
        };
        Ok(LimitOverride { key, value })
    }
}

impl Limits {
    /// The limits that cannot be set as asked on this machine: `(name, asked, set)`.
    pub fn lowered_here(&self) -> Vec<(&'static str, u64, u64)> {
        RlimitPlan::new(self, true, true).lowered(self)
    }
}

/// `want`, or the grader's own hard limit for `resource` where that is lower and the grader
/// may not raise it (no `CAP_SYS_RESOURCE`: an ordinary user, or root in Docker's default
/// container, where asking for more fails the server's start with EPERM).
fn within_hard(resource: nix::sys::resource::Resource, want: u64) -> u64 {
    if super::capabilities::has(super::capabilities::Cap::SysResource) {
        return want;
    }
    match nix::sys::resource::getrlimit(resource) {
        Ok((_, hard)) if hard != nix::sys::resource::RLIM_INFINITY => want.min(hard),
        _ => want,
    }
}

/// The rlimits to set in the server before exec, computed in the parent (the child may only
/// make system calls).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RlimitPlan {
    pub cpu: u64,
    pub nofile: u64,
    pub nproc: Option<u64>,
    pub address_space: Option<u64>,
    pub fsize: u64,
}

impl RlimitPlan {
    pub fn new(l: &Limits, nproc_meaningful: bool, memory_by_cgroup: bool) -> RlimitPlan {
        use nix::sys::resource::Resource;
        RlimitPlan {
            cpu: within_hard(Resource::RLIMIT_CPU, l.cpu_s.saturating_add(1)).saturating_sub(1),
            nofile: within_hard(Resource::RLIMIT_NOFILE, l.nofile),
            nproc: nproc_meaningful.then(|| within_hard(Resource::RLIMIT_NPROC, l.nproc)),
            address_space: (!memory_by_cgroup)
                .then(|| within_hard(Resource::RLIMIT_AS, l.memory_mib.saturating_mul(16) << 20)),
            fsize: within_hard(Resource::RLIMIT_FSIZE, l.fsize_mib << 20),
        }
    }

    /// The limits this plan lowers from what the rubric asks, because the grader may not
    /// raise a hard limit here: `(name, asked, set)`.
    pub fn lowered(&self, l: &Limits) -> Vec<(&'static str, u64, u64)> {
        let mut out = Vec::new();
        if self.nofile < l.nofile {
            out.push(("nofile", l.nofile, self.nofile));
        }
        if let Some(n) = self.nproc.filter(|&n| n < l.nproc) {
            out.push(("nproc", l.nproc, n));
        }
        if self.cpu < l.cpu_s {
            out.push(("cpu_s", l.cpu_s, self.cpu));
        }
        out
    }

    /// Set the limits in the calling process. Only system calls: safe between fork and exec.
    pub fn apply(&self) -> nix::Result<()> {
        use nix::sys::resource::{setrlimit, Resource};
        // The soft CPU limit sends SIGXCPU; the hard one, a second later, SIGKILL.
        setrlimit(Resource::RLIMIT_CPU, self.cpu, self.cpu + 1)?;
        setrlimit(Resource::RLIMIT_NOFILE, self.nofile, self.nofile)?;
        if let Some(n) = self.nproc {
            setrlimit(Resource::RLIMIT_NPROC, n, n)?;
        }
        if let Some(a) = self.address_space {
            setrlimit(Resource::RLIMIT_AS, a, a)?;
        }
        setrlimit(Resource::RLIMIT_FSIZE, self.fsize, self.fsize)?;
        setrlimit(Resource::RLIMIT_CORE, 0, 0)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_and_validate() {
        let parse = |o: &str| o.parse::<LimitOverride>();
        let mut l = Limits::default();
        l.apply_overrides(&[parse("nproc=100").unwrap(), parse("cpu_s = 5").unwrap()])
            .unwrap();
        assert_eq!((l.nproc, l.cpu_s), (100, 5));
        assert!(parse("nproc").unwrap_err().contains("KEY=NUMBER"));
        assert!(parse("bogus=1").unwrap_err().contains("unknown limit"));
        assert!(l
            .apply_overrides(&[parse("nproc=1").unwrap()])
            .unwrap_err()
            .contains("limits.nproc"));
    }
}
