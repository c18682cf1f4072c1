//! `grade class`: grade a whole class at once, resume after an interruption or a rubric fix,
//! split the work over machines, and write what a TA needs to look it over and hand it back.
//!
//! - [`roster`]: the submissions, their safe file names, content hashes and shards.
//! - [`run`]: the gradings, each in a child `grade` process, `--jobs` at a time, skipping what
//!   is already graded with the same inputs; Ctrl-C leaves only whole reports.
//! - [`outputs`]: each submission's YAML and page, `class.csv`, `class.json`; [`index`]: the
//!   class page.
//! - [`cli`]: the `grade class` command line (the `grade` binary hands it every argument
//!   after `class`).

pub mod cli;
pub mod index;
pub mod outputs;
pub mod roster;
pub mod run;
