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
//! The combined report is an ordinary [`Report`], so every format renders it: a `build` check
//! first (0 points: the command, how it ended and make's output), then each server's checks
//! with its name as a prefix (`echoserverp/echo.basic`). With one server and no submission
//! rubric (`grade --build DIR echoserverp`) the ids keep no prefix. A build that fails, or a
//! binary the build did not produce, is graded: every check of the rubric is listed, failed,
//! 0 points, with the reason. `server.model_evidence.parts` holds each server's model, score
//! and evidence.

use super::build::{run_make, BuildOutcome, BuildSpec, DEFAULT_TIMEOUT};
use crate::checks::ALL_IDS;
use crate::error::GradeError;
use crate::report::{round2, CheckReport, Model, Report, RunStatus, ServerInfo, Status};
use crate::rubric::yaml_error;
use crate::rubric::Rubric;
use crate::supervise::ServerSpec;
use crate::GradeOptions;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// The id of the build's entry in a report.
pub const BUILD_ID: &str = "build";
/// Separates a server's name from a check id in a combined report (`echoserverp/echo.basic`).
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
            if !(t.is_finite() && (1.0..=3600.0).contains(&t)) {
                return Err(invalid(format!(
                    "build.timeout_s is {t}: it must be between 1 and 3600"
                )));
            }
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
    pub fn max_score(&self, only: Option<&[String]>) -> f64 {
        self.parts
            .iter()
            .flat_map(|p| p.rubric.checks.planned())
            .filter(|c| only.is_none_or(|o| o.iter().any(|i| i == c.id)))
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

/// What `grade --build` was asked to do.
pub struct SubmissionRun<'a> {
    pub dir: &'a Path,
    pub submission: &'a Submission,
    /// `--make-target` (overrides the rubric's `build.target`).
    pub make_target: Option<String>,
    /// `--build-timeout` (overrides the rubric's `build.timeout_s`).
    pub build_timeout: Option<Duration>,
    /// The run's seed and `--only` (the same for every server).
    pub seed: u64,
    pub only: Option<Vec<String>>,
    /// The grading options for one server: the command line's (seed, only, time scale,
    /// limits, ...) with this server and its rubric.
    pub options: &'a dyn Fn(ServerSpec, Rubric) -> GradeOptions,
}

/// Build the submission and grade each of its servers. Build failures and missing binaries
/// are graded (score 0, feedback); `Err` is for bad input and the grader's own failures.
pub fn grade_submission(run: &SubmissionRun) -> Result<Report, GradeError> {
    if let Some(only) = &run.only {
        if let Some(bad) = only.iter().find(|i| !ALL_IDS.contains(&i.as_str())) {
            return Err(GradeError::Usage(format!(
                "--only: unknown check id `{bad}` (known: {})",
                ALL_IDS.join(", ")
            )));
        }
    }
    if !run.dir.is_dir() {
        return Err(GradeError::Usage(format!(
            "--build {}: not a folder (the submission to build)",
            run.dir.display()
        )));
    }
    if let Some(t) = &run.make_target {
        if !valid_target(t) {
            return Err(GradeError::Usage(format!(
                "--make-target `{t}` is not a make target name"
            )));
        }
    }
    let spec = BuildSpec {
        target: run
            .make_target
            .clone()
            .or_else(|| run.submission.build.target.clone()),
        timeout: run
            .build_timeout
            .or(run.submission.build.timeout_s.map(Duration::from_secs_f64))
            .unwrap_or(DEFAULT_TIMEOUT),
        run_as: None,
        adopt_leftovers: true,
    };
    let mut spec = spec;
    // As root, the student's Makefile runs as the server's unprivileged user, in a copy of the
    // submission that user owns: it can then write neither the results nor the grader.
    let user = run.submission.parts.first().and_then(|p| {
        (run.options)(
            ServerSpec {
                program: run.dir.join(&p.binary),
                args: Vec::new(),
            },
            p.rubric.clone(),
        )
        .user
    });
    spec.run_as =
        crate::supervise::privilege::resolve(user.as_deref()).map_err(GradeError::Usage)?;
    let copy = match &spec.run_as {
        Some(u) => Some(
            crate::supervise::privilege::build_copy(run.dir, u).map_err(|e| {
                GradeError::Internal(format!(
                    "cannot copy the submission for an unprivileged build: {e}"
                ))
            })?,
        ),
        None => None,
    };
    let dir = copy.as_ref().map_or(run.dir, |c| c.path.as_path());
    let build = run_make(dir, &spec)?;
    let mut parts = Vec::new();
    for part in &run.submission.parts {
        let program = dir.join(&part.binary);
        let report = if !build.ok {
            not_graded(
                part,
                run,
                &format!(
                    "Not graded: the build failed (`{}` {}); see the `build` entry for the compiler's messages.",
                    build.command_line(),
                    build.exit
                ),
            )
        } else {
            let mut opts = (run.options)(
                ServerSpec {
                    program: program.clone(),
                    args: part.args.clone(),
                },
                part.rubric.clone(),
            );
            // What the build made is student-controlled: only a regular file inside the
            // submission, reached through no symbolic link, is graded.
            opts.within = Some(dir.to_path_buf());
            match crate::grade(&opts) {
                Ok(r) => r,
                Err(
                    e @ (GradeError::ServerMissing(_) | GradeError::ServerNotExecutable { .. }),
                ) => {
                    let why = match &e {
                        GradeError::ServerMissing(_) => format!(
                            "`{}` succeeded but left no `{}` in the submission: does the Makefile build it (is it in the target's prerequisites, spelled the same)?",
                            build.command_line(),
                            part.binary.display()
                        ),
                        other => other.to_string(),
                    };
                    not_graded(part, run, &format!("Not graded: {why}"))
                }
                Err(e) => return Err(e),
            }
        };
        parts.push((part, report));
    }
    Ok(combine(run.submission, &build, parts, run.seed))
}

/// A server that could not be graded: every check it would have run, failed, 0 points.
fn not_graded(part: &Part, run: &SubmissionRun, why: &str) -> Report {
    let checks = part
        .rubric
        .checks
        .planned()
        .iter()
        .filter(|c| {
            run.only
                .as_ref()
                .is_none_or(|o| o.iter().any(|i| i == c.id))
        })
        .map(|c| CheckReport {
            id: c.id.to_string(),
            title: c.title.to_string(),
            status: Status::Fail,
            score: 0.0,
            max_score: c.points as f64,
            duration_s: 0.0,
            bound_s: None,
            feedback: why.to_string(),
            evidence: json!({ "graded": false }),
            server_output: None,
            timeline: None,
        })
        .collect::<Vec<_>>();
    Report {
        echograde: env!("CARGO_PKG_VERSION").to_string(),
        status: RunStatus::Graded,
        rubric: part.rubric.name.clone(),
        seed: run.seed,
        server: ServerInfo {
            command: ServerSpec {
                program: run.dir.join(&part.binary),
                args: part.args.clone(),
            }
            .template(),
            model: Model::Unknown,
            model_evidence: json!({ "graded": false }),
            containment: json!({}),
        },
        score: 0.0,
        max_score: checks.iter().map(|c| c.max_score).sum(),
        duration_s: 0.0,
        bound_s: None,
        checks,
        error: None,
    }
}

/// The `build` entry of a report: 0 points, the command, how it ended, make's output.
pub fn build_check(build: &BuildOutcome) -> CheckReport {
    let cmd = build.command_line();
    let secs = build.duration.as_secs_f64();
    let feedback = if build.ok {
        let mut f = format!("`{cmd}` succeeded in {secs:.1} s.");
        if build.warnings > 0 {
            f.push_str(&format!(
                " The compiler printed {} warning{}: read them, they often point at the bug.\n\n{}",
                build.warnings,
                if build.warnings == 1 { "" } else { "s" },
                build.output
            ));
        }
        f
    } else if build.timed_out {
        format!(
            "`{cmd}` {}: a build should take seconds. Does the Makefile run a server or wait for input? Nothing was graded; the score is 0.\n\nmake's output:\n{}",
            build.exit, build.output
        )
    } else {
        format!(
            "`{cmd}` {} after {secs:.1} s, so nothing could be graded and the score is 0. Fix the first error below, check that `{cmd}` builds on a clean copy of your files, and submit again.\n\nmake's output:\n{}",
            build.exit, build.output
        )
    };
    CheckReport {
        id: BUILD_ID.to_string(),
        title: format!("The submission builds with `{cmd}`"),
        status: if build.ok { Status::Pass } else { Status::Fail },
        score: 0.0,
        max_score: 0.0,
        duration_s: round2(secs),
        bound_s: None,
        feedback,
        evidence: json!({
            "command": build.command,
            "exit": build.exit,
            "timed_out": build.timed_out,
            "duration_s": round2(secs),
            "output_bytes": build.output_bytes,
            "warnings": build.warnings,
        }),
        server_output: None,
        timeline: None,
    }
}

/// One report from the build and each server's report.
fn combine(
    sub: &Submission,
    build: &BuildOutcome,
    parts: Vec<(&Part, Report)>,
    seed: u64,
) -> Report {
    let mut checks = vec![build_check(build)];
    let mut duration = build.duration.as_secs_f64();
    let mut bound = None;
    let mut errors = Vec::new();
    let mut status = RunStatus::Graded;
    if sub.single {
        let (_, r) = parts.into_iter().next().expect("one part");
        checks.extend(r.checks);
        return Report {
            checks,
            duration_s: round2(duration + r.duration_s),
            ..r
        };
    }
    // What does not add up across servers (how each was confined, ...) is the first's.
    let template = parts
        .first()
        .map(|(_, r)| r.server.clone())
        .expect("a submission has servers");
    let mut evidence = Map::new();
    let mut models = Vec::new();
    for (part, r) in parts {
        duration += r.duration_s;
        if let Some(b) = r.bound_s {
            bound = Some(round2(bound.unwrap_or(0.0) + b));
        }
        models.push(r.server.model);
        if r.status == RunStatus::Error {
            status = RunStatus::Error;
        }
        if let Some(e) = &r.error {
            errors.push(format!("{}: {e}", part.name));
        }
        evidence.insert(
            part.name.clone(),
            json!({
                "binary": part.binary.display().to_string(),
                "rubric": r.rubric,
                "command": r.server.command,
                "model": r.server.model,
                "score": r.score,
                "max_score": r.max_score,
                "evidence": r.server.model_evidence,
            }),
        );
        for c in r.checks {
            checks.push(CheckReport {
                id: format!("{}{PART_SEPARATOR}{}", part.name, c.id),
                title: format!("{}: {}", part.name, c.title),
                ..c
            });
        }
    }
    let model = match models.first() {
        Some(m) if models.iter().all(|x| x == m) => *m,
        _ => Model::Unknown,
    };
    Report {
        echograde: env!("CARGO_PKG_VERSION").to_string(),
        status,
        rubric: sub.name.clone(),
        seed,
        server: ServerInfo {
            command: Vec::new(),
            model,
            model_evidence: json!({ "parts": Value::Object(evidence) }),
            ..template
        },
        score: round2(checks.iter().map(|c| c.score).sum()),
        max_score: checks.iter().map(|c| c.max_score).sum(),
        duration_s: round2(duration),
        bound_s: bound,
        checks,
        error: if errors.is_empty() {
            None
        } else {
            Some(errors.join("; "))
        },
    }
}

/// The servers of a combined report: name, model, score and max score, in order. Empty for a
/// single server's report.
pub fn parts_of(report: &Report) -> Vec<(String, String, f64, f64)> {
    let Some(parts) = report
        .server
        .model_evidence
        .get("parts")
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    // Report order (the order of the checks), not the map's.
    let mut names: Vec<&str> = Vec::new();
    for c in &report.checks {
        if let Some((p, _)) = c.id.split_once(PART_SEPARATOR) {
            if !names.contains(&p) {
                names.push(p);
            }
        }
    }
    for n in parts.keys() {
        if !names.contains(&n.as_str()) {
            names.push(n);
        }
    }
    names
        .into_iter()
        .filter_map(|n| {
            let p = parts.get(n)?;
            Some((
                n.to_string(),
                p["model"].as_str().unwrap_or("unknown").to_string(),
                p["score"].as_f64().unwrap_or(0.0),
                p["max_score"].as_f64().unwrap_or(0.0),
            ))
        })
        .collect()
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
            s.max_score(Some(&["echo.basic".to_string(), "model".to_string()])),
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
