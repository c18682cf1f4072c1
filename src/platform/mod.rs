//! Where courses run the grader: building a submission and the formats course platforms read.
//!
//! - [`build`]: `make` in a submission folder, bounded in time and output.
//! - [`submission`]: submission rubrics (several binaries of one submission, each with its own
//!   rubric), the build-then-grade run, and the one [`Report`](crate::report::Report) that
//!   combines them.
//! - [`gradescope`], [`autolab`], [`junit`]: renderers of that report for Gradescope's
//!   results.json, Autolab's last-line JSON and JUnit XML. The verdicts are decided once, by
//!   the checks and the submission run; these only render them.
//!
//! The scripts that install and start the grader on each platform are in `graders/gradescope/`,
//! `graders/autolab/` and `graders/github/`.

pub mod autolab;
pub mod build;
pub mod gradescope;
pub mod junit;
pub mod submission;
