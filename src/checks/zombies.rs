//! `zombies`: children are reaped, even when their SIGCHLDs coalesce.
//!
//! Standard signals do not queue: while one SIGCHLD is pending, more exits add nothing. A
//! handler that reaps one child per signal leaves the rest as zombies. On a busy machine that
//! happens by chance; here it is made certain: the grader pauses the server (SIGSTOP), lets a
//! burst of its children exit, waits until the kernel shows them all as zombies, and resumes
//! it (SIGCONT). The server then sees exactly one pending SIGCHLD for many dead children —
//! what a loaded machine can always do to it — and must reap them all.

use super::{common::*, in_range, Cx, Outcome};
use crate::client::{payload, RunLimits, Session, Step, Swarm};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid as NixPid;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const TITLE: &str = "Reaps every child, even when SIGCHLDs coalesce (no zombies)";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Clients that connect and leave one after another.
    pub sequential: u32,
    /// Clients that disconnect at the same instant.
    pub simultaneous: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params { sequential: 5, simultaneous: 20 }
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        in_range("sequential", self.sequential, 0, 1000)?;
        in_range("simultaneous", self.simultaneous, 2, 1000)
    }
}

/// Holds a process stopped; resumes it when dropped, whatever happens in between.
struct Paused(i32);

impl Paused {
    fn new(pid: i32) -> Option<Paused> {
        crate::timeline::action(crate::timeline::ActionKind::Pause, format!("SIGSTOP to the server (pid {pid})"));
        kill(NixPid::from_raw(pid), Signal::SIGSTOP).ok().map(|_| Paused(pid))
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        crate::timeline::action(crate::timeline::ActionKind::Resume, format!("SIGCONT to the server (pid {})", self.0));
        let _ = kill(NixPid::from_raw(self.0), Signal::SIGCONT);
    }
}

fn zombie_children(pid: i32) -> usize {
    crate::inspect::ProcTable::scan()
        .children_of(pid)
        .iter()
        .filter(|p| p.is_zombie())
        .count()
}

/// The longest this check may wait, its deadlines added up. Start, the sequential clients (3 × idle and a serve), their reaping (grace), the burst (3 × idle), the paused exits and the reaping (2 × grace).
pub fn bound(_p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + t.idle * 3 + t.serve + t.grace + t.idle * 3 + t.grace * 2
}

pub fn run(cx: &mut Cx, p: &Params) -> Outcome {
    if let Some(o) = needs_replies(cx) {
        return o;
    }
    let t = cx.timing;
    let mut rng = cx.rng.clone();
    let srv = match cx.start() {
        Ok(s) => s,
        Err(o) => return o,
    };
    let pid = srv.main_pid;
    if let Err(u) = sequential_clients(srv, &mut rng, "s", p.sequential, t.serve, t.idle * 3) {
        return workload_failed(srv, &u, "its children");
    }
    // The sequential clients' children get the grace to be reaped in the ordinary way.
    let seq_zombies_reaped = wait_until(t.grace, || zombie_children(pid) == 0).is_some();
    let seq_zombies = zombie_children(pid);

    let n = p.simultaneous as usize;
    let mut swarm = Swarm::new(srv.addr());
    for i in 0..n {
        let label = format!("b{i}");
        let line = payload::tagged_line(&mut rng, &label);
        swarm.add(Session::new(label, vec![Step::Send(line), Step::Expect]).holding().judging_replies());
    }
    swarm.run(RunLimits { idle: t.idle, overall: t.idle * 3 }, |_| false);
    let live_children = children(srv).iter().filter(|c| !c.is_zombie()).count();
    if live_children == 0 && seq_zombies == 0 {
        swarm.close_all();
        return Outcome::pass(
            "The server forks no child processes, so there are none to reap.",
            json!({ "child_processes": 0 }),
        );
    }
    // Pause the parent, let every child exit, resume: their SIGCHLDs coalesce into one.
    let coalesced;
    {
        let _paused = Paused::new(pid);
        swarm.close_all();
        coalesced = wait_until(t.grace, || {
            children(srv).iter().all(|c| c.is_zombie())
        })
        .is_some();
    }
    let reaped_within = wait_until(t.grace, || zombie_children(pid) == 0);
    let seen = Seen {
        live_children,
        seq_zombies,
        seq_zombies_reaped,
        coalesced,
        zombies_left: zombie_children(pid),
        reaped_within_ms: reaped_within.map(|d| d.as_millis() as u64),
        // Asked only of a server that did not pass: how it died explains the failure.
        death: (reaped_within.is_none() || !seq_zombies_reaped)
            .then(|| death_note(srv))
            .flatten(),
    };
    judge(&seen)
}

/// What the check measured once the burst's children had exited.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// Children alive while the burst of clients was connected.
    pub live_children: usize,
    /// Zombies left after the sequential clients' grace.
    pub seq_zombies: usize,
    /// The sequential clients' children were all reaped within the grace.
    pub seq_zombies_reaped: bool,
    /// Every burst child exited while the server was paused (their SIGCHLDs coalesced).
    pub coalesced: bool,
    /// Zombies left after the grace that followed the resume.
    pub zombies_left: usize,
    /// How long reaping them all took, if it happened within the grace.
    pub reaped_within_ms: Option<u64>,
    /// How the server died, if it did.
    pub death: Option<String>,
}

/// The verdict from what was measured.
pub(crate) fn judge(seen: &Seen) -> Outcome {
    let (live_children, seq_zombies, left) = (seen.live_children, seen.seq_zombies, seen.zombies_left);
    let mut ev = json!({
        "children_during_burst": live_children,
        "zombies_after_sequential_clients": seq_zombies,
        "burst_children_exited_while_paused": seen.coalesced,
        "zombies_left": left,
    });
    if let (Some(ms), true) = (seen.reaped_within_ms, seen.seq_zombies_reaped) {
        ev["reaped_within_ms"] = json!(ms);
        let fb = if seen.coalesced {
            format!("All children were reaped, including {live_children} that exited at the same instant.")
        } else {
            format!(
                "No child was left a zombie, but the {live_children} children serving the burst did not \
                 exit when their clients left, so no exit was seen to reap (see leak.fd)."
            )
        };
        return Outcome::pass(fb, ev);
    }
    if let Some(d) = &seen.death {
        return Outcome::fail(0.0, format!("{d} Its children could not be counted."), ev);
    }
    let fb = if left >= live_children + seq_zombies && left > 0 {
        format!(
            "{left} children of the server stayed zombies (state Z) after they exited: nothing \
             reaps them. Every child that exits stays a zombie, holding a process-table slot, \
             until its parent waits for it. Install a SIGCHLD handler that reaps: \
             `while (waitpid(-1, NULL, WNOHANG) > 0) ;` (and save/restore errno)."
        )
    } else {
        format!(
            "{live_children} children exited at the same instant and {left} of them stayed \
             zombies: the server reaped only some. Signals do not queue: many children exiting \
             together deliver one SIGCHLD, so a handler that calls waitpid once reaps one child. \
             Reap in a loop until none is left: `while (waitpid(-1, NULL, WNOHANG) > 0) ;`."
        )
    };
    Outcome::fail(0.0, fb, ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn seen() -> Seen {
        Seen {
            live_children: 20,
            seq_zombies: 0,
            seq_zombies_reaped: true,
            coalesced: true,
            zombies_left: 0,
            reaped_within_ms: Some(3),
            death: None,
        }
    }

    #[test]
    fn every_child_reaped_after_coalesced_signals_passes() {
        let o = judge(&seen());
        assert_eq!(o.status, Status::Pass);
        assert!(o.feedback.contains("including 20 that exited at the same instant"));
        assert_eq!(o.evidence["reaped_within_ms"], 3);
    }

    #[test]
    fn one_reap_per_signal_is_named_as_such() {
        let o = judge(&Seen { zombies_left: 19, reaped_within_ms: None, ..seen() });
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.contains("20 children exited at the same instant and 19 of them"), "{}", o.feedback);
        assert!(o.feedback.contains("Signals do not queue"));
    }

    #[test]
    fn no_reaping_at_all_is_named_as_such() {
        let o = judge(&Seen { seq_zombies: 5, seq_zombies_reaped: false, zombies_left: 25, reaped_within_ms: None, ..seen() });
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.starts_with("25 children of the server stayed zombies"), "{}", o.feedback);
    }

    #[test]
    fn late_reaping_of_sequential_children_fails_even_if_the_burst_was_reaped() {
        let o = judge(&Seen { seq_zombies: 5, seq_zombies_reaped: false, ..seen() });
        assert_eq!(o.status, Status::Fail);
    }

    #[test]
    fn a_dead_server_is_named_not_blamed_on_reaping() {
        let o = judge(&Seen { zombies_left: 3, reaped_within_ms: None, death: Some("The server died (SIGSEGV).".into()), ..seen() });
        assert!(o.feedback.starts_with("The server died (SIGSEGV). Its children could not be counted."));
    }
}
