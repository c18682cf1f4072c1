//! What the person running `grade` asked for, validated once into typed values.
//!
//! The command line is read and checked at the edge (`main.rs`); the library sees only these
//! types: [`Only`] holds known check ids, [`LimitOverride`]s are parsed `--limit KEY=N`, the
//! time scale and build timeout are in range, and [`Job`] says whether one server is graded
//! or a submission is built first. Nothing below re-checks a flag.

use crate::checks::ALL_IDS;
use crate::error::GradeError;
use crate::platform::submission::Submission;
use crate::rubric::Rubric;
use crate::supervise::{LimitOverride, ServerSpec, StdinSource};
use std::path::PathBuf;
use std::time::Duration;

/// `--only`: a set of known check ids (`None` in [`Settings`] runs every check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Only(Vec<&'static str>);

impl Only {
    /// The ids as given; an unknown one is a usage error naming the known ones.
    pub fn parse<S: AsRef<str>>(ids: &[S]) -> Result<Only, GradeError> {
        ids.iter()
            .map(|id| {
                let id = id.as_ref();
                ALL_IDS.iter().find(|k| **k == id).copied().ok_or_else(|| {
                    GradeError::Usage(format!(
                        "--only: unknown check id `{id}` (known: {})",
                        ALL_IDS.join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Only)
    }

    pub fn includes(&self, id: &str) -> bool {
        self.0.contains(&id)
    }
}

/// `--time-scale`: every deadline is multiplied by it; above 0, at most 100.
pub fn time_scale(x: f64) -> Result<f64, GradeError> {
    if x.is_finite() && x > 0.0 && x <= 100.0 {
        Ok(x)
    } else {
        Err(GradeError::Usage(format!(
            "--time-scale {x} must be above 0 and at most 100"
        )))
    }
}

/// A build time limit, from `--build-timeout` or a submission rubric: 1 s to an hour.
pub fn build_timeout(secs: f64, what: &str) -> Result<Duration, String> {
    if secs.is_finite() && (1.0..=3600.0).contains(&secs) {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!("{what} {secs} must be between 1 and 3600 seconds"))
    }
}

/// How every server of the run is graded (the same for each server of a submission).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The seed of the run's payloads.
    pub seed: u64,
    pub time_scale: f64,
    /// Run only these checks (the others are left out of the report and its totals).
    pub only: Option<Only>,
    /// Who the server (and a build) runs as when the grader is root (default `nobody`).
    pub user: Option<String>,
    /// `--limit` overrides of each rubric's limits.
    pub limits: Vec<LimitOverride>,
    /// Whether the grader isolated itself in a fresh network namespace.
    pub isolated_net: bool,
    /// The server's standard input.
    pub stdin: StdinSource,
}

impl Settings {
    pub fn new(seed: u64) -> Settings {
        Settings {
            seed,
            time_scale: 1.0,
            only: None,
            user: None,
            limits: Vec::new(),
            isolated_net: false,
            stdin: StdinSource::default(),
        }
    }

    /// Whether a check of the rubric runs in this run.
    pub fn runs(&self, id: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.includes(id))
    }
}

/// `grade --build DIR`: build, then grade the programs the submission names.
#[derive(Debug, Clone)]
pub struct BuildJob {
    /// The submission folder (it exists and is a folder).
    pub dir: PathBuf,
    pub submission: Submission,
    /// The make target (the command line's, else the rubric's; a valid target name).
    pub target: Option<String>,
    pub timeout: Duration,
}

/// What to grade.
#[derive(Debug, Clone)]
pub enum Job {
    /// One server, from its path.
    Server {
        spec: ServerSpec,
        rubric: Box<Rubric>,
    },
    /// A submission folder to build first.
    Build(BuildJob),
}

/// A whole `grade` run, validated.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub job: Job,
    pub settings: Settings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_knows_the_check_ids() {
        let only = Only::parse(&["echo.basic", "model"]).unwrap();
        assert!(only.includes("model") && !only.includes("zombies"));
        let e = Only::parse(&["echo.nope"]).unwrap_err().to_string();
        assert!(e.contains("unknown check id `echo.nope`"), "{e}");
    }

    #[test]
    fn scales_and_timeouts_are_in_range() {
        assert!(time_scale(0.0).is_err() && time_scale(f64::NAN).is_err());
        assert_eq!(time_scale(2.5).unwrap(), 2.5);
        assert!(build_timeout(0.5, "--build-timeout").is_err());
        assert_eq!(build_timeout(60.0, "x").unwrap(), Duration::from_secs(60));
    }
}
