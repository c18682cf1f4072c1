//! Rubrics: which checks run, their points and their parameters.
//!
//! ```yaml
//! name: echo
//! description: ...
//! timing: {ready_s: 5, serve_s: 2, idle_s: 3, grace_s: 1}
//! checks:
//!   echo.basic: {points: 8}
//!   concurrency.many: {points: 8, params: {clients: 100}}
//! ```
//!
//! Unknown keys and unknown check ids are errors with line and column; parameters are checked
//! for sense (no negative points, no absurd client counts). The default rubric,
//! `graders/echo.yaml`, is embedded in the binary.

use crate::checks::CheckTable;
use crate::error::GradeError;
use crate::timing::TimingSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The default rubric, as shipped in `graders/echo.yaml`.
pub const DEFAULT_RUBRIC: &str = include_str!("../../graders/echo.yaml");

/// A YAML error as "line L, column C: reason" (saphyr's message goes on with a snippet of the
/// file; the first line is the reason).
pub fn yaml_error(e: serde_saphyr::Error) -> String {
    let loc = e
        .location()
        .map(|l| format!("line {}, column {}: ", l.line(), l.column()))
        .unwrap_or_default();
    let msg = e.to_string();
    let first = msg
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(&msg)
        .trim()
        .to_string();
    format!("{loc}{first}")
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rubric {
    /// A short name, recorded in the report.
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub timing: TimingSpec,
    /// Resource limits for the server (each also settable with `--limit KEY=N`).
    #[serde(default)]
    pub limits: crate::supervise::Limits,
    /// `once`: a check whose failure follows from a cause another check established (the
    /// checks an iterative server fails because of overlap's finding) is still reported, with
    /// its points given back. Default `each`: every failing check costs its points.
    #[serde(default)]
    pub charge: crate::checks::story::Charge,
    pub checks: CheckTable,
}

impl Rubric {
    /// Parse rubric text; `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<Rubric, GradeError> {
        let invalid = |message: String| GradeError::RubricInvalid {
            path: origin.to_string(),
            message,
        };
        let rubric: Rubric = serde_saphyr::from_str(text).map_err(|e| invalid(yaml_error(e)))?;
        rubric.timing.validate().map_err(invalid)?;
        rubric.limits.validate().map_err(invalid)?;
        rubric.checks.validate().map_err(invalid)?;
        {
            let planned = rubric.checks.planned();
            if planned.is_empty() {
                return Err(invalid(
                    "checks is empty: a rubric must list at least one check".into(),
                ));
            }
            if let Some(p) = planned.iter().find(|p| p.points > 1000) {
                return Err(invalid(format!(
                    "checks.{}.points is {}: at most 1000",
                    p.id, p.points
                )));
            }
        }
        Ok(rubric)
    }

    pub fn load(path: &Path) -> Result<Rubric, GradeError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| GradeError::RubricUnreadable {
                path: path.to_path_buf(),
                source,
            })?;
        Rubric::parse(&text, &path.display().to_string())
    }

    pub fn default_rubric() -> Rubric {
        Rubric::parse(DEFAULT_RUBRIC, "graders/echo.yaml (built in)")
            .expect("the built-in rubric is valid")
    }

    pub fn max_score(&self) -> u32 {
        self.checks.planned().iter().map(|p| p.points).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rubric_totals_100_and_runs_every_check_but_model_and_backlog() {
        // `model` belongs to the model rubrics; `listen.backlog` is off by default (a small
        // backlog is not one of the lecture's bugs).
        let r = Rubric::default_rubric();
        assert_eq!(r.max_score(), 100);
        let ids: Vec<&str> = r.checks.planned().iter().map(|p| p.id).collect();
        let want: Vec<&str> = crate::checks::ALL_IDS
            .iter()
            .copied()
            .filter(|i| *i != "model" && *i != "listen.backlog")
            .collect();
        assert_eq!(ids, want);
    }

    fn err(text: &str) -> String {
        Rubric::parse(text, "r.yaml").unwrap_err().to_string()
    }

    #[test]
    fn unknown_check_id_names_line_and_column() {
        let e = err("name: x\nchecks:\n  echo.basic: {points: 5}\n  echo.bogus: {points: 5}\n");
        assert!(e.contains("r.yaml"), "{e}");
        assert!(e.contains("line 4"), "{e}");
        assert!(e.contains("echo.bogus"), "{e}");
    }

    #[test]
    fn unknown_key_and_negative_points_are_errors() {
        let e = err("name: x\nchecks:\n  echo.basic: {points: 5, pionts: 3}\n");
        assert!(e.contains("line 3") && e.contains("pionts"), "{e}");
        let e = err("name: x\nchecks:\n  echo.basic: {points: -5}\n");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn absurd_parameters_are_errors() {
        let e =
            err("name: x\nchecks:\n  concurrency.many: {points: 5, params: {clients: 1000000}}\n");
        assert!(e.contains("checks.concurrency.many.params: clients"), "{e}");
        let e = err("name: x\ntiming: {serve_s: 0}\nchecks:\n  echo.basic: {points: 5}\n");
        assert!(e.contains("timing.serve_s"), "{e}");
    }

    #[test]
    fn a_rubric_with_the_old_run_budget_still_loads() {
        let r = Rubric::parse(
            "name: x\ntiming: {ready_s: 5, serve_s: 2, idle_s: 3, grace_s: 1, budget_s: 35}\nchecks:\n  echo.basic: {points: 5}\n",
            "r.yaml",
        )
        .expect("budget_s is accepted");
        assert_eq!(r.timing.budget_s, Some(35.0));
        let e = err("name: x\ntiming: {budget_s: 1}\nchecks:\n  echo.basic: {points: 5}\n");
        assert!(e.contains("timing.budget_s"), "{e}");
    }

    #[test]
    fn not_yaml_is_an_error() {
        let e = err("name: [unclosed\n");
        assert!(e.starts_with("invalid rubric `r.yaml`"), "{e}");
    }

    #[test]
    fn model_check_needs_a_model() {
        let e = err("name: x\nchecks:\n  model: {points: 5}\n");
        assert!(e.contains("require is missing"), "{e}");
    }
}
