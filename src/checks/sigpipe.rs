//! `robust.sigpipe`: a client that leaves early must not take the server down.
//!
//! Two kinds of early leaver: clients that send several lines in one write and close at once
//! (the server's second write hits a connection the client has closed), and clients that reset
//! the connection (SO_LINGER 0) after many lines. Writing to such a socket raises SIGPIPE,
//! whose default action kills the process; with SIGPIPE ignored the write fails with EPIPE,
//! and csapp's `Rio_writen` then calls `exit(0)`. Measured: these clients killed a CS:APP-style
//! server 5 times in 5. A process server's child may die of it (that connection is over
//! anyway); the listening process must survive and go on serving.

use super::{common::*, in_range, Cx, Outcome};
use crate::client::{payload, RunLimits, Session, Step, Swarm};
use crate::supervise::{Exit, MainExit};
use nix::sys::signal::Signal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Lines a closer sends: few enough (about 5 KiB) to leave in one write, so the client closes
/// before any echo reaches it; its close is then a FIN, and the server's writes that follow
/// meet a reset peer: EPIPE. (Were echo data unread at close, the close would be a reset and
/// the server's first failed write would see ECONNRESET instead.)
const CLOSER_LINES: usize = 200;
/// Lines a resetter sends before it resets: many, so the server is still writing when the
/// reset arrives.
const RESETTER_LINES: usize = 1000;
/// Rounds of early leavers.
const ROUNDS: usize = 3;

pub const TITLE: &str = "Survives clients that leave early (SIGPIPE, EPIPE)";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Clients that send several lines in one write and close at once.
    pub closers: u32,
    /// Clients that send many lines and reset the connection.
    pub resetters: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params { closers: 10, resetters: 10 }
    }
}

impl Params {
    pub fn validate(&self) -> Result<(), String> {
        in_range("closers", self.closers, 0, 10_000)?;
        in_range("resetters", self.resetters, 0, 10_000)?;
        if self.closers + self.resetters == 0 {
            return Err("closers and resetters are both 0: nothing would be tested".into());
        }
        Ok(())
    }
}

/// Whether the server's stderr says a write failed on a closed connection.
fn says_write_failed(stderr: &str) -> bool {
    ["Broken pipe", "EPIPE", "Connection reset", "ECONNRESET"]
        .iter()
        .any(|w| stderr.contains(w))
}

fn last_line(tail: &str) -> String {
    crate::report::sanitize(tail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(""))
}

/// The longest this check may wait, its deadlines added up. Start, the rounds of early leavers (3 × idle each), the settling (2 × grace), the client after, and the grace for an exit it may show.
pub fn bound(_p: &Params, t: crate::timing::Timing) -> std::time::Duration {
    t.ready + super::settle::bound(t) + t.idle * 3 * ROUNDS as u32 + t.grace * 2 + t.serve + t.grace
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
    // The sockets it holds at rest (read once it stopped changing), to tell when it has
    // dealt with the early leavers.
    let _ = super::settle::settle(srv, t);
    let baseline = socket_fds(srv.main_pid);
    // Several rounds, stopping once the server is dead: whether a given leaver's reset lands
    // while the server is still writing depends on scheduling; rounds apart in time make the
    // attempts independent, so a vulnerable server dies in one of them.
    for round in 0..ROUNDS {
        let mut swarm = Swarm::new(srv.addr());
        for i in 0..p.closers {
            let lines: Vec<u8> = (0..CLOSER_LINES).flat_map(|j| payload::tagged_line(&mut rng, &format!("c{round}-{i}-{j}"))).collect();
            swarm.add(Session::new(format!("closer{i}"), vec![Step::Send(lines), Step::Close]));
        }
        for i in 0..p.resetters {
            let lines: Vec<u8> = (0..RESETTER_LINES).flat_map(|j| payload::tagged_line(&mut rng, &format!("r{round}-{i}-{j}"))).collect();
            // Reset once the server is echoing, with most lines still unread: its next writes
            // then meet a reset connection (ECONNRESET, then EPIPE) every time, rather than
            // only when the reset happens to land mid-echo.
            swarm.add(Session::new(format!("resetter{i}"), vec![Step::Send(lines), Step::AwaitReply, Step::Reset]));
        }
        swarm.run(RunLimits { idle: t.idle, overall: t.idle * 3 }, |_| false);
        let answered = swarm.sessions.iter().any(|s| s.received > 0);
        drop(swarm);
        if srv.main_exit().is_some() || !answered {
            // Dead; or it answers nobody, and more rounds would only wait the same.
            break;
        }
    }
    // The server has dealt with the early leavers when it holds no more sockets than at start
    // (or when it is dead).
    let mut dead = None;
    wait_until(t.grace * 2, || {
        dead = srv.main_exit();
        dead.is_some() || socket_fds(srv.main_pid) <= baseline
    });
    let clients = (p.closers + p.resetters) as usize * ROUNDS;
    if dead.is_none() {
        let after = probe(srv, &mut rng, "after", t.serve);
        dead = srv.main_exit();
        if dead.is_none() && !after.served() {
            // Refused or unanswered: it may be on its way out (closing its descriptors before
            // it becomes a zombie). Give its exit the grace to show.
            wait_until(t.grace, || {
                dead = srv.main_exit();
                dead.is_some()
            });
        }
        if dead.is_none() {
            let seen = if after.served() {
                Seen::Serving
            } else {
                Seen::NotServing(describe(&after, t.serve))
            };
            return judge(&seen, clients);
        }
    }
    let how = dead.expect("dead here");
    judge(
        &Seen::Died(how, srv.stderr_after_death(2048, t.grace)),
        clients,
    )
}

/// What the server did after the early leavers.
#[derive(Debug, Clone)]
pub(crate) enum Seen {
    /// Alive, and a new client was served.
    Serving,
    /// Alive, but a new client was not served: what happened to it, in words.
    NotServing(String),
    /// It died: how, and the tail of its stderr.
    Died(MainExit, String),
}

/// The verdict, with the cause named from how the server ended and what it last wrote.
pub(crate) fn judge(seen: &Seen, clients: usize) -> Outcome {
    let (how, stderr) = match seen {
        Seen::Serving => {
            return Outcome::pass(
                format!("The server survived {clients} clients that left early and went on serving."),
                json!({ "early_leavers": clients, "still_serving": true }),
            )
        }
        Seen::NotServing(what) => {
            return Outcome::fail(
                0.0,
                format!(
                    "After {clients} clients left early, the server is alive but a new client {what}. \
                     A failed write (EPIPE, ECONNRESET) must end only that connection."
                ),
                json!({ "early_leavers": clients, "still_serving": false }),
            )
        }
        Seen::Died(how, stderr) => (*how, stderr.as_str()),
    };
    let last = last_line(stderr);
    let last_words = match last.as_str() {
        "" => String::new(),
        l => format!("; the last it wrote on stderr: \"{l}\""),
    };
    let fb = match how {
        MainExit::Status(Exit::Signal { sig: Signal::SIGPIPE, .. }) => format!(
            "The server was killed by SIGPIPE when clients left early ({clients} clients sent \
             lines and closed or reset at once). Writing to a connection the client has closed \
             raises SIGPIPE, which kills the process by default. Ignore it \
             (signal(SIGPIPE, SIG_IGN)) and treat the EPIPE error from write as the end of that \
             one connection."
        ),
        MainExit::Status(Exit::Code(c)) if says_write_failed(stderr) => format!(
            "The server exited with status {c} when clients left early ({clients} clients sent \
             lines and closed or reset at once), after reporting a failed write on stderr \
             (\"{last}\"). A write to a closed connection fails with EPIPE or ECONNRESET; a wrapper \
             that exits on any error (csapp's Rio_writen) ends the whole server. Check the \
             write's result yourself and close only that connection."
        ),
        MainExit::Status(Exit::Code(c)) => format!(
            "The server exited with status {c} while clients were leaving early ({clients} \
             clients sent lines and closed or reset at once){last_words}. It must go on serving \
             after a client leaves."
        ),
        other => format!(
            "The server {other} while clients were leaving early ({clients} clients sent lines \
             and closed or reset at once){last_words}. It must go on serving after a client leaves."
        ),
    };
    let heap = heap_check_note(stderr);
    let fb = match &heap {
        Some(h) => format!("{fb} {h}"),
        None => fb,
    };
    Outcome::fail(0.0, fb, json!({ "early_leavers": clients, "server": how.to_string(), "heap_check": heap.is_some() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    #[test]
    fn a_glibc_double_free_abort_names_the_check_that_found_it() {
        let how = MainExit::Status(Exit::Signal { sig: Signal::SIGABRT, core: false });
        let o = judge(&Seen::Died(how, "free(): double free detected in tcache 2\n".into()), 40);
        assert!(o.feedback.contains("tcache double-free check"), "{}", o.feedback);
        assert_eq!(o.evidence["heap_check"], true);
    }

    #[test]
    fn a_server_that_goes_on_serving_passes() {
        assert_eq!(judge(&Seen::Serving, 40).status, Status::Pass);
    }

    #[test]
    fn death_by_sigpipe_says_ignore_it() {
        let how = MainExit::Status(Exit::Signal { sig: Signal::SIGPIPE, core: false });
        let o = judge(&Seen::Died(how, String::new()), 40);
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.contains("killed by SIGPIPE"));
        assert!(o.feedback.contains("signal(SIGPIPE, SIG_IGN)"));
        assert_eq!(o.evidence["server"], "was killed by SIGPIPE");
    }

    #[test]
    fn an_exit_after_a_failed_write_names_the_wrapper() {
        let how = MainExit::Status(Exit::Code(1));
        let o = judge(&Seen::Died(how, "Rio_writen error: Connection reset by peer\n".into()), 40);
        assert!(o.feedback.contains("after reporting a failed write"), "{}", o.feedback);
        assert!(o.feedback.contains("\"Rio_writen error: Connection reset by peer\""), "{}", o.feedback);
        assert!(o.feedback.contains("Rio_writen"));
    }

    #[test]
    fn an_exit_without_a_write_error_quotes_its_last_words_and_names_no_cause() {
        let how = MainExit::Status(Exit::Code(3));
        let o = judge(&Seen::Died(how, "bye\n".into()), 40);
        assert!(o.feedback.contains("status 3 while clients were leaving early"));
        assert!(o.feedback.contains("the last it wrote on stderr: \"bye\""));
        assert!(!o.feedback.contains("SIGPIPE") && !o.feedback.contains("EPIPE"), "{}", o.feedback);
    }

    #[test]
    fn alive_but_not_serving_fails() {
        let o = judge(&Seen::NotServing("got no reply in 2.0 s".into()), 40);
        assert_eq!(o.status, Status::Fail);
        assert!(o.feedback.contains("alive but a new client got no reply in 2.0 s"));
    }
}
