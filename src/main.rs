//! `grade`: the command line. It parses, calls the library, renders, and maps the result to
//! an exit code (0 graded, 1 below --fail-under, 2 bad input, 3 grader failure).

use clap::{Parser, ValueEnum};
use echograde::error::{EXIT_BAD_INPUT, EXIT_BELOW_THRESHOLD, EXIT_GRADED, EXIT_GRADER_FAILED};
use echograde::invocation::{self, BuildJob, Invocation, Job, Only, Settings};
use echograde::platform::build::DEFAULT_TIMEOUT;
use echograde::platform::submission::{is_submission_rubric, valid_target, Submission};
use echograde::platform::{autolab, gradescope, junit};
use echograde::report::{render, write::probe_writable, write::write_atomic, Report};
use echograde::rubric::Rubric;
use echograde::run::ProcessGuard;
use echograde::supervise::{LimitOverride, ServerSpec, StdinSource};
use echograde::GradeError;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Yaml,
    Json,
    Human,
    /// Gradescope's results.json.
    Gradescope,
    /// A summary, then Autolab's `{"scores": ..., "scoreboard": ...}` as the last line.
    Autolab,
    /// JUnit XML, one test case per check.
    Junit,
    /// The student page: one self-contained HTML file, each check's timeline drawn.
    Html,
}

impl Format {
    /// The format of a file written for `--format self`: its extension's (.yaml/.yml, .json,
    /// .html/.htm) when `self` writes another kind of file, else `self`. So `--output r.yaml
    /// --output r.html` writes both from one grading, while `--format gradescope --output
    /// results.json` stays Gradescope's JSON and `--format junit --output r.xml` JUnit.
    fn for_file(self, path: &Path) -> Format {
        let named = match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("yaml" | "yml") => Format::Yaml,
            Some("json") => Format::Json,
            Some("html" | "htm") => Format::Html,
            _ => return self,
        };
        if self.kind() == named.kind() {
            self
        } else {
            named
        }
    }

    /// The kind of file a format writes.
    fn kind(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json | Format::Gradescope => "json",
            Format::Html => "html",
            Format::Junit => "xml",
            Format::Human | Format::Autolab => "text",
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "grade",
    version,
    after_help = "Examples:\n  grade ./echoserverp    (started as `./echoserverp PORT`)\n  grade --format human ./server -- --port {port} --verbose\n  grade --build submission/                      (make all, then the handout's three servers)\n  grade --build submission/ --rubric graders/echo-process.yaml echoserverp\n  grade --build submission/ --format gradescope --output results/results.json\n  grade --output report.yaml --output report.html ./server   (the YAML report and the student page)"
)]
struct Cli {
    /// The server executable. It is started as `SERVER ARG...`; with no ARGs it gets the port.
    /// With --build: its path inside the submission folder (leave it out when the rubric is a
    /// submission rubric, which names the programs).
    #[arg(required_unless_present = "build")]
    server: Option<PathBuf>,
    /// Arguments for the server; `{port}` is replaced by the port the grader chose.
    #[arg(last = true)]
    args: Vec<String>,
    /// A rubric YAML file (default: the built-in graders/echo.yaml), or with --build a
    /// submission rubric listing several programs and their rubrics (default with --build and
    /// no SERVER: the built-in graders/handout.yaml).
    #[arg(long)]
    rubric: Option<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value = "yaml")]
    format: Format,
    /// Write the report to this file (atomically) instead of standard output. Repeatable, one
    /// grading for several files (`--output report.yaml --output report.html`): a file named
    /// .yaml/.yml, .json or .html gets that format unless --format writes that kind of file
    /// already (`--format gradescope --output results.json` is Gradescope's); others get
    /// --format.
    #[arg(long, value_name = "FILE")]
    output: Vec<PathBuf>,
    /// Also print the human summary, with each failed check's feedback, on standard error
    /// (for a student at a terminal: `--summary --output report.yaml`).
    #[arg(long)]
    summary: bool,
    /// Run only these checks (comma-separated ids); the rest are left out of the report.
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// Seed for the run's payloads (recorded in the report; default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Multiply every deadline by this factor (for slow machines).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Exit with status 1 when the score is below this.
    #[arg(long)]
    fail_under: Option<f64>,
    /// Build the submission in DIR with `make` first (bounded in time and output), then grade
    /// the program(s) it built. A failed build is graded: score 0, the compiler's messages.
    #[arg(long, value_name = "DIR")]
    build: Option<PathBuf>,
    /// The make target for --build (default: the submission rubric's, else make's default).
    #[arg(long, value_name = "TARGET", requires = "build")]
    make_target: Option<String>,
    /// The time limit of the build in seconds (default: the submission rubric's, else 120).
    #[arg(long, value_name = "SECONDS", requires = "build")]
    build_timeout: Option<f64>,
    /// --format gradescope: who sees each test.
    #[arg(long, default_value = "visible", value_parser = clap::builder::PossibleValuesParser::new(gradescope::VISIBILITIES))]
    visibility: String,
    /// When the grader runs as root, run student code as this user (default: a uid of this
    /// grading's own; gradings side by side with the same NAME share it).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Override a resource limit: cpu_s, nofile, nproc, memory_mib, fsize_mib (repeatable).
    #[arg(long, value_name = "KEY=N")]
    limit: Vec<String>,
    /// Fail, rather than warn and go on, when the grader cannot make a network namespace of
    /// its own (it tries by default: root, or an unprivileged user namespace).
    #[arg(long, conflicts_with = "share_net")]
    isolate_net: bool,
    /// Grade on the host's network: do not make a network namespace (the default isolates).
    #[arg(long)]
    share_net: bool,
    /// The server's standard input: `pipe` (default: open and empty, like a terminal nobody
    /// types at), `null` (/dev/null: EOF at once), or a FILE to read from.
    #[arg(long, value_name = "pipe|null|FILE", default_value = "pipe", value_parser = parse_stdin)]
    stdin: StdinSource,
    /// Print the JSON Schema of the report and exit.
    #[arg(long, exclusive = true, hide = true)]
    print_schema: bool,
}

fn main() {
    // `grade class ...` grades a whole class (a subcommand only as the first word, so every
    // `grade SERVER` command line keeps its meaning).
    if std::env::args_os().nth(1).is_some_and(|a| a == "class") {
        std::process::exit(echograde::class::cli::main(std::env::args_os().skip(2)));
    }
    // `--print-schema` needs no server argument.
    if std::env::args().nth(1).as_deref() == Some("--print-schema") {
        println!(
            "{}",
            serde_json::to_string_pretty(&echograde::report::schema()).expect("schema")
        );
        std::process::exit(EXIT_GRADED);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_BAD_INPUT
            } else {
                EXIT_GRADED
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match std::panic::catch_unwind(|| run(&cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("grade: {e}");
            emit_fallback(&cli, &e.to_string(), e.exit_code());
            e.exit_code()
        }
        Err(_) => {
            let msg =
                "internal error (a bug in the grader); please report it with the command you ran";
            eprintln!("grade: {msg}");
            emit_fallback(&cli, msg, EXIT_GRADER_FAILED);
            EXIT_GRADER_FAILED
        }
    };
    std::process::exit(code);
}

/// A rubric file is either an ordinary rubric or a submission rubric.
enum AnyRubric {
    Plain(Box<Rubric>),
    Submission(Submission),
}

fn load_any_rubric(path: &Path) -> Result<AnyRubric, GradeError> {
    let text = std::fs::read_to_string(path).map_err(|source| GradeError::RubricUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    if is_submission_rubric(&text) {
        Submission::load(path).map(AnyRubric::Submission)
    } else {
        Rubric::parse(&text, &path.display().to_string()).map(|r| AnyRubric::Plain(Box::new(r)))
    }
}

fn run(cli: &Cli) -> Result<i32, GradeError> {
    if !cli.share_net {
        // First, before any thread exists: the namespace is the calling thread's.
        if let Err(why) = echograde::supervise::isolate_network_by_default() {
            if cli.isolate_net {
                return Err(GradeError::Usage(why));
            }
            eprintln!(
                "grade: warning: grading on the host's network: {why} (--share-net silences this)"
            );
        }
    }
    let inv = invocation(cli)?;
    for out in &cli.output {
        probe_writable(out)?;
    }
    let report = {
        // Nothing of the server may outlive the run: the guard's drop, before the report is
        // written, kills what is left.
        let guard = ProcessGuard::install();
        echograde::run::run(&inv, &guard)?
    };
    emit(cli, &report)?;
    if report.status == echograde::report::RunStatus::Error {
        // Interrupted, or the grader failed in a check: the report says what was graded.
        if let Some(e) = &report.error {
            eprintln!("grade: {e}");
        }
        return Ok(EXIT_GRADER_FAILED);
    }
    if cli.fail_under.is_some_and(|min| report.score < min) {
        return Ok(EXIT_BELOW_THRESHOLD);
    }
    Ok(EXIT_GRADED)
}

/// The command line and rubric, validated once into what the library runs.
fn invocation(cli: &Cli) -> Result<Invocation, GradeError> {
    let time_scale = invocation::time_scale(cli.time_scale)?;
    let build_timeout = cli
        .build_timeout
        .map(|t| invocation::build_timeout(t, "--build-timeout"))
        .transpose()
        .map_err(GradeError::Usage)?;
    let only = cli.only.as_deref().map(Only::parse).transpose()?;
    let limits = cli
        .limit
        .iter()
        .map(|l| l.parse::<LimitOverride>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(GradeError::Usage)?;
    let rubric = cli.rubric.as_deref().map(load_any_rubric).transpose()?;
    let job = match &cli.build {
        Some(dir) => Job::Build(build_job(cli, dir, rubric, build_timeout)?),
        None => server_job(cli, rubric)?,
    };
    let settings = Settings {
        seed: cli.seed.unwrap_or_else(random_seed),
        time_scale,
        only,
        user: cli.user.clone(),
        limits,
        isolated_net: echograde::supervise::network_isolated(),
        stdin: cli.stdin.clone(),
    };
    Ok(Invocation { job, settings })
}

fn random_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 % 1_000_000_000)
        .unwrap_or(1)
}

/// `grade SERVER`: one server with an ordinary rubric.
fn server_job(cli: &Cli, rubric: Option<AnyRubric>) -> Result<Job, GradeError> {
    let rubric = match rubric {
        Some(AnyRubric::Plain(r)) => *r,
        Some(AnyRubric::Submission(_)) => {
            return Err(GradeError::Usage(format!(
                "{} is a submission rubric: use it with --build DIR (it builds the submission, then grades the programs it names)",
                rubric_path(cli)
            )))
        }
        None => Rubric::default_rubric(),
    };
    let spec = ServerSpec {
        program: cli
            .server
            .clone()
            .expect("clap requires SERVER without --build"),
        args: cli.args.clone(),
    };
    Ok(Job::Server {
        spec,
        rubric: Box::new(rubric),
    })
}

fn rubric_path(cli: &Cli) -> String {
    cli.rubric
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// `grade --build DIR [SERVER]`: the submission to build and the servers it names.
fn build_job(
    cli: &Cli,
    dir: &Path,
    rubric: Option<AnyRubric>,
    timeout: Option<Duration>,
) -> Result<BuildJob, GradeError> {
    let submission = match (&cli.server, rubric) {
        (Some(_), Some(AnyRubric::Submission(_))) => {
            return Err(GradeError::Usage(format!(
                "{} is a submission rubric: it names the programs to grade, so leave out SERVER",
                rubric_path(cli)
            )))
        }
        (Some(server), Some(AnyRubric::Plain(r))) => {
            Submission::single(server, cli.args.clone(), *r)?
        }
        (Some(server), None) => {
            Submission::single(server, cli.args.clone(), Rubric::default_rubric())?
        }
        (None, Some(AnyRubric::Plain(_))) => {
            let r = rubric_path(cli);
            return Err(GradeError::Usage(format!(
                "{r} grades one program: name it after --build DIR (e.g. `grade --build DIR --rubric {r} echoserverp`), or pass a submission rubric"
            )));
        }
        (None, Some(AnyRubric::Submission(s))) => s,
        (None, None) => Submission::builtin(),
    };
    if cli.server.is_none() && !cli.args.is_empty() {
        return Err(GradeError::Usage(
            "arguments after `--` need a SERVER; a submission rubric sets each program's `args`"
                .into(),
        ));
    }
    if !dir.is_dir() {
        return Err(GradeError::Usage(format!(
            "--build {}: not a folder (the submission to build)",
            dir.display()
        )));
    }
    if let Some(t) = cli.make_target.as_deref().filter(|t| !valid_target(t)) {
        return Err(GradeError::Usage(format!(
            "--make-target `{t}` is not a make target name"
        )));
    }
    let from_rubric = submission.build.timeout_s.map(Duration::from_secs_f64);
    Ok(BuildJob {
        dir: dir.to_path_buf(),
        target: cli
            .make_target
            .clone()
            .or_else(|| submission.build.target.clone()),
        timeout: timeout.or(from_rubric).unwrap_or(DEFAULT_TIMEOUT),
        submission,
    })
}

fn parse_stdin(s: &str) -> Result<StdinSource, String> {
    match s {
        "pipe" => Ok(StdinSource::Pipe),
        "null" => Ok(StdinSource::Null),
        path => {
            let p = PathBuf::from(path);
            std::fs::File::open(&p).map_err(|e| format!("cannot read {path}: {e}"))?;
            Ok(StdinSource::File(p))
        }
    }
}

/// Where the report goes, each with its format: every --output file (its extension's format,
/// else --format), or standard output.
fn destinations(cli: &Cli) -> Vec<(Format, Option<&Path>)> {
    if cli.output.is_empty() {
        return vec![(cli.format, None)];
    }
    cli.output
        .iter()
        .map(|p| (cli.format.for_file(p), Some(p.as_path())))
        .collect()
}

fn write_out(to: Option<&Path>, text: &str) -> Result<(), GradeError> {
    match to {
        Some(path) => write_atomic(path, text.as_bytes())?,
        None => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }
    Ok(())
}

fn emit(cli: &Cli, report: &Report) -> Result<(), GradeError> {
    for (format, to) in destinations(cli) {
        let text = match format {
            Format::Yaml => render::yaml(report),
            Format::Json => render::json(report),
            Format::Human => render::human(report, true),
            Format::Gradescope => gradescope::render(report, &cli.visibility),
            Format::Autolab => autolab::render(report),
            Format::Junit => junit::render(report),
            Format::Html => echograde::report::html::student_page(report),
        };
        write_out(to, &text)?;
    }
    // The summary on a terminal; never after Autolab's last line, which must stay last.
    let summary_on_stdout =
        matches!(cli.format, Format::Human | Format::Autolab) && cli.output.is_empty();
    if cli.summary {
        eprint!("{}", render::human(report, true));
    } else if std::io::stderr().is_terminal() && !summary_on_stdout && cli.format != Format::Autolab
    {
        eprint!("{}", render::human(report, false));
    }
    Ok(())
}

/// When no report could be made, the platform formats still write what their platform reads
/// (a results.json with score 0 and the reason; Autolab's last line; a JUnit error), so a
/// course never shows students an empty page. The exit code still says what went wrong.
/// The report when no grading could be made. The platform formats always get one (a course
/// platform shows students a blank page otherwise); YAML and JSON get one (status `error`) when
/// the grader itself failed, and nothing for bad input, which the message on stderr explains.
fn emit_fallback(cli: &Cli, message: &str, code: i32) {
    for (format, to) in destinations(cli) {
        let failed = code == EXIT_GRADER_FAILED;
        let text = match format {
            Format::Gradescope => gradescope::fallback(message),
            Format::Autolab => autolab::fallback(message),
            Format::Junit => junit::fallback(message),
            Format::Yaml if failed => render::yaml(&Report::grader_failed(message)),
            Format::Json if failed => render::json(&Report::grader_failed(message)),
            Format::Html if failed => {
                echograde::report::html::student_page(&Report::grader_failed(message))
            }
            Format::Yaml | Format::Json | Format::Html | Format::Human => continue,
        };
        if let Err(e) = write_out(to, &text) {
            eprintln!("grade: {e}");
        }
    }
}
