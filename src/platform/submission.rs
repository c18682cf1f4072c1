//! Submissions: build a student's folder with `make`, then grade the binaries it must produce,
//! each with its own rubric, and combine the results into one [`Report`].
//!
//! A *submission rubric* lists the binaries of one submission and the (model) rubric each is
//! graded with; its scores are summed:
//!
//! ```yaml
//! name: handout
//! build: {target: all, timeout_s: 120}     # optional
//! servers:
//!   - {binary: echoserverp, rubric: echo-process.yaml}
//!   - {binary: echoservers, rubric: echo-event.yaml}
//!   - {binary: echoservert, rubric: echo-thread.yaml}
//! ```
//!
//! Rubric paths are relative to the submission rubric's folder. A file is a submission rubric
//! when it has a top-level `servers` key; anything else is an ordinary rubric. The handout's
//! own, `graders/handout.yaml`, is built in and is the default of `grade --build DIR`.
//!
//! The run ([`crate::run::submission`]) builds, grades each server, and makes one
//! [`Report`](crate::report::Report): the `build` entry, then a part per server with its name
//! (`echoserverp`), model, score and checks. With one server and no submission rubric
//! (`grade --build DIR echoserverp`) the report is that server's, with the build. A build that
//! fails, or a binary the build did not produce, is graded: every check of the rubric is
//! listed, failed, 0 points, with the reason.

use crate::error::GradeError;
use crate::invocation::Only;
use crate::rubric::yaml_error;
use crate::rubric::Rubric;
use serde::Deserialize;
use std::path::{Component, Path, PathBuf};

/// Reserved: the name of the build's entry where views list it with the checks.
pub const BUILD_ID: &str = "build";
/// Separates a server's name from a check id where views qualify ids (`echoserverp/echo.basic`),
/// so no server name may contain it.
pub const PART_SEPARATOR: char = '/';

/// The built-in submission rubric (the handout's three servers) and the rubrics it names.
const BUILTIN: &str = include_str!("../../graders/handout.yaml");
const BUILTIN_RUBRICS: &[(&str, &str)] = &[
    ("echo.yaml", include_str!("../../graders/echo.yaml")),
    (
        "echo-process.yaml",
        include_str!("../../graders/echo-process.yaml"),
    ),
    (
        "echo-event.yaml",
        include_str!("../../graders/echo-event.yaml"),
    ),
    (
        "echo-thread.yaml",
        include_str!("../../graders/echo-thread.yaml"),
    ),
];

/// The `build:` section of a submission rubric.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    /// The make target (default: make's default goal).
    #[serde(default)]
    pub target: Option<String>,
    /// The build's time limit in seconds (default 120).
    #[serde(default)]
    pub timeout_s: Option<f64>,
}

/// One binary of a submission and how to grade it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// The program, relative to the submission folder (`echoserverp`, `bin/server`).
    pub binary: String,
    /// Its rubric file, relative to the submission rubric's folder.
    pub rubric: String,
    /// Its arguments (`{port}` is replaced); default: just the port.
    #[serde(default)]
    pub args: Vec<String>,
    /// Its name in reports (the check-id prefix, Autolab's problem); default: the binary's
    /// file name.
    #[serde(default)]
    pub name: Option<String>,
}

/// A submission rubric file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmissionFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub build: BuildConfig,
    pub servers: Vec<ServerEntry>,
}

/// One server of a loaded submission rubric.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub binary: PathBuf,
    pub args: Vec<String>,
    pub rubric: Rubric,
}

/// A submission rubric with its rubrics loaded.
#[derive(Debug, Clone)]
pub struct Submission {
    pub name: String,
    pub build: BuildConfig,
    pub parts: Vec<Part>,
    /// One server graded with an ordinary rubric (`grade --build DIR SERVER`): its check ids
    /// keep no prefix and the report is that server's.
    pub single: bool,
}

#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    servers: Option<serde::de::IgnoredAny>,
}

/// Whether rubric text is a submission rubric (it has a top-level `servers` key).
pub fn is_submission_rubric(text: &str) -> bool {
    serde_saphyr::from_str::<Probe>(text)
        .map(|p| p.servers.is_some())
        .unwrap_or(false)
}

impl Submission {
    /// Parse a submission rubric; `resolve` loads the rubric a server entry names.
    pub fn parse(
        text: &str,
        origin: &str,
        resolve: &dyn Fn(&str) -> Result<Rubric, GradeError>,
    ) -> Result<Submission, GradeError> {
        let invalid = |message: String| GradeError::RubricInvalid {
            path: origin.to_string(),
            message,
        };
        let file: SubmissionFile =
            serde_saphyr::from_str(text).map_err(|e| invalid(yaml_error(e)))?;
        if file.servers.is_empty() {
            return Err(invalid("servers is empty: list at least one binary".into()));
        }
        if file.servers.len() > 20 {
            return Err(invalid(format!(
                "servers lists {} binaries: at most 20",
                file.servers.len()
            )));
        }
        if let Some(t) = file.build.timeout_s {
            crate::invocation::build_timeout(t, "build.timeout_s").map_err(invalid)?;
        }
        if let Some(t) = &file.build.target {
            if !valid_target(t) {
                return Err(invalid(format!(
                    "build.target `{t}` is not a make target name"
                )));
            }
        }
        let mut parts: Vec<Part> = Vec::new();
        for (i, s) in file.servers.iter().enumerate() {
            let at = format!("servers[{i}]");
            let binary = relative_inside(&s.binary)
                .map_err(|why| invalid(format!("{at}.binary `{}`: {why}", s.binary)))?;
            let name = match &s.name {
                Some(n) => n.clone(),
                None => binary
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            if name.is_empty()
                || name.contains(PART_SEPARATOR)
                || name.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(invalid(format!(
                    "{at}.name `{name}`: a name is one word without `/`"
                )));
            }
            if name == BUILD_ID {
                return Err(invalid(format!("{at}.name: `{BUILD_ID}` is reserved")));
            }
            if parts.iter().any(|p| p.name == name) {
                return Err(invalid(format!(
                    "{at}: the name `{name}` is used twice (set `name:` to tell them apart)"
                )));
            }
            let rubric = resolve(&s.rubric)?;
            parts.push(Part {
                name,
                binary,
                args: s.args.clone(),
                rubric,
            });
        }
        Ok(Submission {
            name: file.name,
            build: file.build,
            parts,
            single: false,
        })
    }

    /// Load a submission rubric file; its rubrics are found beside it.
    pub fn load(path: &Path) -> Result<Submission, GradeError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| GradeError::RubricUnreadable {
                path: path.to_path_buf(),
                source,
            })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Submission::parse(&text, &path.display().to_string(), &|r: &str| {
            Rubric::load(&base.join(r))
        })
    }

    /// The built-in submission rubric: the handout's three servers with their model rubrics.
    pub fn builtin() -> Submission {
        Submission::parse(BUILTIN, "graders/handout.yaml (built in)", &|r: &str| {
            let text = BUILTIN_RUBRICS
                .iter()
                .find(|(n, _)| *n == r)
                .map(|(_, t)| *t)
                .ok_or_else(|| GradeError::Internal(format!("no built-in rubric {r}")))?;
            Rubric::parse(text, &format!("graders/{r} (built in)"))
        })
        .expect("the built-in submission rubric is valid")
    }

    /// One server graded with an ordinary rubric.
    pub fn single(
        binary: &Path,
        args: Vec<String>,
        rubric: Rubric,
    ) -> Result<Submission, GradeError> {
        let rel = relative_inside(&binary.to_string_lossy()).map_err(|why| {
            GradeError::Usage(format!(
                "with --build, SERVER is the program's path inside the submission folder: `{}` {why}",
                binary.display()
            ))
        })?;
        Ok(Submission {
            name: rubric.name.clone(),
            build: BuildConfig::default(),
            parts: vec![Part {
                name: rel
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                binary: rel,
                args,
                rubric,
            }],
            single: true,
        })
    }

    /// The total points of every check (after `only`).
    pub fn max_score(&self, only: Option<&Only>) -> f64 {
        self.parts
            .iter()
            .flat_map(|p| p.rubric.checks.planned())
            .filter(|c| only.is_none_or(|o| o.includes(c.id)))
            .map(|c| c.points as f64)
            .sum()
    }
}

/// A make target as a course would name one: no options, no shell.
pub fn valid_target(t: &str) -> bool {
    !t.is_empty()
        && !t.starts_with('-')
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/+".contains(c))
}

/// A relative path that stays inside its folder (no `..`, not absolute).
fn relative_inside(p: &str) -> Result<PathBuf, &'static str> {
    if p.is_empty() {
        return Err("is empty");
    }
    let path = PathBuf::from(p);
    let mut clean = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => clean.push(s),
            Component::CurDir => {}
            _ => return Err("must be a path inside the submission folder (relative, no `..`)"),
        }
    }
    if clean.as_os_str().is_empty() {
        return Err("names no file");
    }
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_is_the_handout_three_servers_300_points() {
        let s = Submission::builtin();
        let names: Vec<&str> = s.parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["echoserverp", "echoservers", "echoservert"]);
        assert_eq!(s.max_score(None), 300.0);
        assert_eq!(
            s.max_score(Some(&Only::parse(&["echo.basic", "model"]).unwrap())),
            54.0
        );
        assert!(is_submission_rubric(BUILTIN));
        assert!(!is_submission_rubric(BUILTIN_RUBRICS[0].1));
    }

    fn parse(text: &str) -> Result<Submission, GradeError> {
        Submission::parse(text, "s.yaml", &|_| Ok(Rubric::default_rubric()))
    }

    #[test]
    fn bad_submission_rubrics_are_named() {
        let e = parse("name: x\nservers: []\n").unwrap_err().to_string();
        assert!(e.contains("servers is empty"), "{e}");
        let e = parse("name: x\nservers:\n  - {binary: ../a, rubric: r.yaml}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("servers[0].binary"), "{e}");
        let e = parse("name: x\nservers:\n  - {binary: a, rubric: r.yaml, bogus: 1}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("bogus"), "{e}");
        let e = parse("name: x\nservers:\n  - {binary: a, rubric: r.yaml}\n  - {binary: b/a, rubric: r.yaml}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("used twice"), "{e}");
        let e = parse("name: x\nbuild: {target: '-f /etc/passwd'}\nservers:\n  - {binary: a, rubric: r.yaml}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("build.target"), "{e}");
    }

    #[test]
    fn targets() {
        assert!(valid_target("all") && valid_target("echoserverp") && valid_target("build-all"));
        assert!(
            !valid_target("-j")
                && !valid_target("a b")
                && !valid_target("a;rm")
                && !valid_target("")
        );
    }
}
