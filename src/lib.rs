//! echograde: an auto-grader for concurrent echo servers of the CS:APP / 15-213 kind.
//!
//! It starts the student's server, drives real TCP clients against it, reads its state from
//! /proc, and writes a scored report that names the classic concurrency bug it found and the
//! evidence. The `grade` binary is a thin command line over [`run::run`].
//!
//! Where things live:
//! - [`invocation`]: what was asked for, validated once into typed values.
//! - [`run`]: the pipeline of one grading, from the invocation to the report.
//! - [`supervise`]: starting a server instance, readiness, output, teardown (process groups,
//!   child subreaper, reaping).
//! - [`inspect`]: everything read from /proc (process tree, descriptors, sockets, threads,
//!   memory maps).
//! - [`client`]: the TCP clients (one poll loop driving many scripted sessions).
//! - [`checks`]: one module per check; the table in `checks/mod.rs` lists them all.
//! - [`rubric`], [`report`]: the rubric format and the report model and renderers.
//! - [`interrupt`], [`fault`]: the stop flag and the grader's own faults, shared by the client
//!   engine, the supervisor and the pipeline.
//!
//! The grader is a child subreaper and reaps with `waitpid(-1)`: hold a [`run::ProcessGuard`]
//! in a process that has no other children of its own to wait for (the `grade` binary).

pub mod checks;
pub mod class;
pub mod client;
pub mod error;
pub mod fault;
pub mod inspect;
pub mod interrupt;
pub mod invocation;
pub mod platform;
pub mod report;
pub mod rubric;
pub mod run;
mod shim;
pub mod supervise;
pub mod timeline;
pub mod timing;

pub use error::GradeError;
pub use invocation::{Invocation, Settings};
