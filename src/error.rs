//! What can go wrong in a grading run that is *not* a verdict about the server.
//!
//! A server that crashes, hangs or never listens is graded (exit 0, a low score). The errors
//! here are the grader's own: bad input from the person running it (exit 2) or a failure of
//! the grader itself (exit 3). Each message names the thing at fault and what to do.

use std::path::PathBuf;

/// Exit code: graded.
pub const EXIT_GRADED: i32 = 0;
/// Exit code: graded, and the score is below `--fail-under`.
pub const EXIT_BELOW_THRESHOLD: i32 = 1;
/// Exit code: bad invocation or input (server, rubric, output path).
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code: the grader itself failed.
pub const EXIT_GRADER_FAILED: i32 = 3;

#[derive(Debug)]
pub enum GradeError {
    /// The server path does not exist.
    ServerMissing(PathBuf),
    /// The server path exists but cannot be executed (or is a directory).
    ServerNotExecutable { path: PathBuf, why: String },
    /// The rubric file could not be read.
    RubricUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The rubric is not valid: `location` is "line L, column C" where known.
    RubricInvalid { path: String, message: String },
    /// A command-line value that parsed but makes no sense (an unknown `--only` id, ...).
    Usage(String),
    /// The report could not be written where asked.
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Anything that stops the grader itself from working (/proc unreadable, ...).
    Internal(String),
}

impl GradeError {
    pub fn exit_code(&self) -> i32 {
        match self {
            GradeError::Internal(_) => EXIT_GRADER_FAILED,
            _ => EXIT_BAD_INPUT,
        }
    }
}

impl std::fmt::Display for GradeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GradeError::ServerMissing(p) => write!(
                f,
                "server `{}` does not exist: build it first (e.g. `make`) and pass its path",
                p.display()
            ),
            GradeError::ServerNotExecutable { path, why } => {
                write!(f, "server `{}` cannot be run: {why}", path.display())
            }
            GradeError::RubricUnreadable { path, source } => {
                write!(f, "cannot read rubric `{}`: {source}", path.display())
            }
            GradeError::RubricInvalid { path, message } => {
                write!(f, "invalid rubric `{path}`: {message}")
            }
            GradeError::Usage(m) => write!(f, "{m}"),
            GradeError::Output { path, source } => write!(
                f,
                "cannot write the report to `{}`: {source}",
                path.display()
            ),
            GradeError::Internal(m) => write!(f, "the grader failed: {m}"),
        }
    }
}

impl std::error::Error for GradeError {}
