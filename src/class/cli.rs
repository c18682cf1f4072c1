//! The `grade class` command line. `grade class ...` is a subcommand only when `class` is the
//! first argument, so every `grade SERVER` command line keeps its meaning (a server that is
//! really named `class` is `grade ./class`).

use super::outputs::{read_all_records, read_record, summarize, write_class, write_submission};
use super::roster::{discover, in_shard, parse_shard, Kind};
use super::run::{grade_class, shown, stderr_is_terminal, ClassRun};
use crate::error::{GradeError, EXIT_BAD_INPUT, EXIT_GRADED, EXIT_GRADER_FAILED};
use crate::platform::submission::{is_submission_rubric, Submission};
use crate::rubric::Rubric;
use clap::Parser;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The default of `--jobs`: one grading per CPU. Measured with `scripts/bench-class.sh` on a
/// 2-core machine (README, "Grading a class"): 2 at a time took the class in about half the
/// time of 1, 4 at a time gained almost nothing more (2.03x) while doubling the load on every
/// grading's deadlines; no correct server lost a point at any of them.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Grade a whole class: every SUBMISSION folder is built with make and graded as by
/// `grade --build`, or every SUBMISSION executable is graded as a server. Writes each
/// submission's YAML report and HTML page, class.csv, class.json and index.html into --out.
/// A submission graded before with the same files, rubric, options and grader is skipped.
#[derive(Debug, Parser)]
#[command(
    name = "grade class",
    version,
    after_help = "Examples:\n  grade class submissions/* --out results/\n  grade class --rubric graders/echo-process.yaml --only model,echo.basic bin/* --out results/\n  grade class submissions/* --shard 2/4 --out shard-2/      (one part of four)\n  grade class --merge shard-1/ shard-2/ shard-3/ shard-4/ --out results/"
)]
pub struct ClassCli {
    /// Submission folders (each built with make, as by `grade --build`), or server executables.
    #[arg(value_name = "SUBMISSION", required_unless_present = "merge")]
    submissions: Vec<PathBuf>,
    /// The output folder (created if missing; reports already in it are reused).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Gradings at a time [default: the number of CPUs].
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,
    /// Regrade every submission, even those already graded with the same inputs.
    #[arg(long)]
    force: bool,
    /// Grade only part K of N (by a stable hash of each name); `--merge` joins the parts.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    shard: Option<(u32, u32)>,
    /// Build the class outputs in --out from the --out folders of shard runs (no grading).
    #[arg(long, value_name = "SHARD_DIR", num_args = 1.., conflicts_with_all = ["submissions", "shard", "force", "jobs"])]
    merge: Vec<PathBuf>,
    /// A rubric: with executables an ordinary rubric (default graders/echo.yaml); with
    /// folders a submission rubric (default: the handout's three servers), or an ordinary
    /// rubric with --binary.
    #[arg(long)]
    rubric: Option<PathBuf>,
    /// With folders: the program to grade in each (as `grade --build DIR SERVER`).
    #[arg(long, value_name = "SERVER")]
    binary: Option<String>,
    /// Run only these checks (comma-separated ids).
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// Seed for every grading's payloads (default: one per submission, from its name).
    #[arg(long)]
    seed: Option<u64>,
    /// Multiply every deadline by this factor (for slow machines).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// With folders: the make target.
    #[arg(long, value_name = "TARGET")]
    make_target: Option<String>,
    /// With folders: the build's time limit in seconds.
    #[arg(long, value_name = "SECONDS")]
    build_timeout: Option<f64>,
    /// When the grader runs as root, run the servers as this user (default: nobody).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Override a resource limit: cpu_s, nofile, nproc, memory_mib, fsize_mib (repeatable).
    #[arg(long, value_name = "KEY=N")]
    limit: Vec<String>,
    /// Grade each submission in a fresh network namespace (needs root or CAP_SYS_ADMIN).
    #[arg(long)]
    isolate_net: bool,
}

/// Run `grade class` with `args` (the words after `class`); returns the exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match ClassCli::try_parse_from(
        std::iter::once(OsString::from("grade class")).chain(args),
    ) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_BAD_INPUT
            } else {
                EXIT_GRADED
            };
            let _ = e.print();
            return code;
        }
    };
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("grade class: {e}");
            e.exit_code()
        }
    }
}

fn run(cli: &ClassCli) -> Result<i32, GradeError> {
    std::fs::create_dir_all(&cli.out).map_err(|source| GradeError::Output {
        path: cli.out.clone(),
        source,
    })?;
    if !cli.merge.is_empty() {
        return merge(&cli.merge, &cli.out);
    }
    let (grade_args, key_material) = child_options(cli)?;
    let mut entries = discover(&cli.submissions)?;
    let folders = entries.first().is_some_and(|e| e.kind == Kind::Folder);
    check_mode(cli, folders)?;
    if let Some((k, n)) = cli.shard {
        entries.retain(|e| in_shard(&e.name, k, n));
    }
    let jobs = cli.jobs.unwrap_or_else(default_jobs);
    if jobs == 0 || jobs > 256 {
        return Err(GradeError::Usage(format!(
            "--jobs {jobs} must be between 1 and 256"
        )));
    }
    let outcome = grade_class(&ClassRun {
        out: cli.out.clone(),
        entries: entries.clone(),
        jobs,
        force: cli.force,
        grade_args,
        seed: cli.seed,
        binary: cli.binary.clone(),
        key_material,
        bar: stderr_is_terminal(),
    })?;
    let records: Vec<_> = entries
        .iter()
        .filter_map(|e| read_record(&cli.out, &e.stem))
        .collect();
    write_class(&cli.out, &summarize(&records))?;
    eprintln!(
        "class: {} graded, {} skipped (unchanged), {} failed{}; index.html, class.csv, class.json in {}",
        outcome.graded,
        outcome.skipped,
        outcome.failed.len(),
        if outcome.interrupted {
            ", interrupted (rerun to resume)"
        } else {
            ""
        },
        cli.out.display()
    );
    for (name, why) in &outcome.failed {
        eprintln!("  not graded: {}: {why}", shown(name));
    }
    Ok(if outcome.interrupted || !outcome.failed.is_empty() {
        EXIT_GRADER_FAILED
    } else {
        EXIT_GRADED
    })
}

/// The options every child gets, and the text of everything in them that decides a verdict
/// (the rubric as loaded, not just its path, so an edited rubric regrades).
fn child_options(cli: &ClassCli) -> Result<(Vec<OsString>, String), GradeError> {
    // The same validation as one grading's (the child would refuse them one by one).
    crate::invocation::time_scale(cli.time_scale)?;
    if let Some(only) = &cli.only {
        crate::invocation::Only::parse(only)?;
    }
    let mut args: Vec<OsString> = Vec::new();
    let rubric = rubric_identity(cli, &mut args)?;
    if let Some(only) = &cli.only {
        args.push("--only".into());
        args.push(only.join(",").into());
    }
    args.push("--time-scale".into());
    args.push(cli.time_scale.to_string().into());
    if let Some(u) = &cli.user {
        args.push("--user".into());
        args.push(u.into());
    }
    for l in &cli.limit {
        args.push("--limit".into());
        args.push(l.into());
    }
    if cli.isolate_net {
        args.push("--isolate-net".into());
    }
    if let Some(t) = &cli.make_target {
        args.push("--make-target".into());
        args.push(t.into());
    }
    if let Some(t) = cli.build_timeout {
        args.push("--build-timeout".into());
        args.push(t.to_string().into());
    }
    let key = format!(
        "rubric={rubric}\0only={:?}\0scale={}\0user={:?}\0limit={:?}\0netns={}\0target={:?}\0\
         build_timeout={:?}\0binary={:?}\0seed={:?}",
        cli.only,
        cli.time_scale,
        cli.user,
        cli.limit,
        cli.isolate_net,
        cli.make_target,
        cli.build_timeout,
        cli.binary,
        cli.seed
    );
    Ok((args, key))
}

/// The rubric as loaded (its `--rubric` argument added to `args`): an edited rubric, not just
/// another path, changes the inputs key.
fn rubric_identity(cli: &ClassCli, args: &mut Vec<OsString>) -> Result<String, GradeError> {
    Ok(match &cli.rubric {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| GradeError::RubricUnreadable {
                    path: path.clone(),
                    source,
                })?;
            let loaded = if is_submission_rubric(&text) {
                format!("{:?}", Submission::load(path)?)
            } else {
                format!("{:?}", Rubric::parse(&text, &path.display().to_string())?)
            };
            args.push("--rubric".into());
            args.push(std::path::absolute(path).unwrap_or(path.clone()).into());
            loaded
        }
        None => format!(
            "{:?}\0{:?}",
            Submission::builtin(),
            Rubric::default_rubric()
        ),
    })
}

/// Options that only make sense with folders (or only with executables).
fn check_mode(cli: &ClassCli, folders: bool) -> Result<(), GradeError> {
    if !folders {
        for (given, what) in [
            (cli.binary.is_some(), "--binary"),
            (cli.make_target.is_some(), "--make-target"),
            (cli.build_timeout.is_some(), "--build-timeout"),
        ] {
            if given {
                return Err(GradeError::Usage(format!(
                    "{what} is for a class of submission folders; these submissions are executables"
                )));
            }
        }
    }
    Ok(())
}

/// `--merge`: the class outputs of several shard folders, in `out`.
fn merge(shards: &[PathBuf], out: &Path) -> Result<i32, GradeError> {
    let mut all: BTreeMap<String, super::outputs::Record> = BTreeMap::new();
    for dir in shards {
        for r in read_all_records(dir)? {
            match all.get(&r.name) {
                Some(prev) if prev.key != r.key => {
                    return Err(GradeError::Usage(format!(
                        "`{}` was graded in two shards with different inputs (its files, the \
                         rubric or the options differ); regrade it in one",
                        shown(&r.name)
                    )))
                }
                Some(_) => {}
                None => {
                    all.insert(r.name.clone(), r);
                }
            }
        }
    }
    let same_dir = |d: &Path| d.canonicalize().ok() == out.canonicalize().ok();
    for r in all.values() {
        if !shards
            .iter()
            .any(|d| same_dir(d) && read_record(d, &r.stem).is_some_and(|x| x.key == r.key))
        {
            write_submission(out, r)?;
        }
    }
    let records: Vec<_> = all.into_values().collect();
    write_class(out, &summarize(&records))?;
    eprintln!(
        "class: merged {} submission(s) from {} folder(s) into {}",
        records.len(),
        shards.len(),
        out.display()
    );
    Ok(EXIT_GRADED)
}
