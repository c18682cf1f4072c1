//! `grade`: the command line. It parses, calls the library, renders, and maps the result to
//! an exit code (0 graded, 1 below --fail-under, 2 bad input, 3 grader failure).

use clap::{Parser, ValueEnum};
use echograde::error::{EXIT_BAD_INPUT, EXIT_BELOW_THRESHOLD, EXIT_GRADED, EXIT_GRADER_FAILED};
use echograde::platform::submission::{
    grade_submission, is_submission_rubric, Submission, SubmissionRun,
};
use echograde::platform::{autolab, gradescope, junit};
use echograde::report::{render, write::probe_writable, write::write_atomic, Report};
use echograde::rubric::Rubric;
use echograde::supervise::{ServerSpec, StdinSource};
use echograde::{GradeError, GradeOptions};
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
}

/// Grade a concurrent echo server: drive real clients against it, read its state from /proc,
/// and write a scored report of the concurrency bugs found, with evidence.
#[derive(Debug, Parser)]
#[command(
    name = "grade",
    version,
    after_help = "Examples:\n  grade ./echoserverp    (started as `./echoserverp PORT`)\n  grade --format human ./server -- --port {port} --verbose\n  grade --build submission/                      (make all, then the handout's three servers)\n  grade --build submission/ --rubric graders/echo-process.yaml echoserverp\n  grade --build submission/ --format gradescope --output results/results.json"
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
    /// Write the report to this file (atomically) instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
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
    /// When the grader runs as root, run the server as this user (default: nobody).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Override a resource limit: cpu_s, nofile, nproc, memory_mib, fsize_mib (repeatable).
    #[arg(long, value_name = "KEY=N")]
    limit: Vec<String>,
    /// Grade in a fresh network namespace with only loopback (needs root or CAP_SYS_ADMIN).
    #[arg(long)]
    isolate_net: bool,
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
    if cli.isolate_net {
        // First, before any thread exists: the namespace is the calling thread's.
        echograde::supervise::netns::isolate().map_err(GradeError::Usage)?;
    }
    if !(cli.time_scale.is_finite() && cli.time_scale > 0.0 && cli.time_scale <= 100.0) {
        return Err(GradeError::Usage(format!(
            "--time-scale {} must be above 0 and at most 100",
            cli.time_scale
        )));
    }
    let build_timeout = match cli.build_timeout {
        Some(t) if !(t.is_finite() && (1.0..=3600.0).contains(&t)) => {
            return Err(GradeError::Usage(format!(
                "--build-timeout {t} must be between 1 and 3600 seconds"
            )))
        }
        t => t.map(Duration::from_secs_f64),
    };
    let rubric = cli.rubric.as_deref().map(load_any_rubric).transpose()?;
    if let Some(out) = &cli.output {
        probe_writable(out)?;
    }
    let seed = cli.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000_000)
            .unwrap_or(1)
    });
    let report = match &cli.build {
        Some(dir) => {
            let submission = match (&cli.server, rubric) {
                (Some(_), Some(AnyRubric::Submission(_))) => {
                    return Err(GradeError::Usage(format!(
                        "{} is a submission rubric: it names the programs to grade, so leave out SERVER",
                        cli.rubric.as_ref().expect("rubric").display()
                    )))
                }
                (Some(server), Some(AnyRubric::Plain(r))) => {
                    Submission::single(server, cli.args.clone(), *r)?
                }
                (Some(server), None) => {
                    Submission::single(server, cli.args.clone(), Rubric::default_rubric())?
                }
                (None, Some(AnyRubric::Plain(_))) => {
                    return Err(GradeError::Usage(format!(
                        "{} grades one program: name it after --build DIR (e.g. `grade --build DIR --rubric {} echoserverp`), or pass a submission rubric",
                        cli.rubric.as_ref().expect("rubric").display(),
                        cli.rubric.as_ref().expect("rubric").display()
                    )))
                }
                (None, Some(AnyRubric::Submission(s))) => s,
                (None, None) => Submission::builtin(),
            };
            if cli.server.is_none() && !cli.args.is_empty() {
                return Err(GradeError::Usage(
                    "arguments after `--` need a SERVER; a submission rubric sets each program's `args`".into(),
                ));
            }
            grade_submission(&SubmissionRun {
                dir,
                submission: &submission,
                make_target: cli.make_target.clone(),
                build_timeout,
                seed,
                only: cli.only.clone(),
                options: &|spec, rubric| grade_options(cli, spec, rubric, seed),
            })?
        }
        None => {
            let rubric = match rubric {
                Some(AnyRubric::Plain(r)) => *r,
                Some(AnyRubric::Submission(_)) => {
                    return Err(GradeError::Usage(format!(
                        "{} is a submission rubric: use it with --build DIR (it builds the submission, then grades the programs it names)",
                        cli.rubric.as_ref().expect("rubric").display()
                    )))
                }
                None => Rubric::default_rubric(),
            };
            let server = cli
                .server
                .clone()
                .expect("clap requires SERVER without --build");
            let spec = ServerSpec {
                program: server,
                args: cli.args.clone(),
            };
            echograde::grade(&grade_options(cli, spec, rubric, seed))?
        }
    };
    emit(cli, &report)?;
    if report.status == echograde::report::RunStatus::Error {
        // Interrupted, or the grader failed in a check: the report says what was graded.
        if let Some(e) = &report.error {
            eprintln!("grade: {e}");
        }
        return Ok(EXIT_GRADER_FAILED);
    }
    if let Some(min) = cli.fail_under {
        if report.score < min {
            return Ok(EXIT_BELOW_THRESHOLD);
        }
    }
    Ok(EXIT_GRADED)
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

/// The options of one grading run, from the command line.
fn grade_options(cli: &Cli, spec: ServerSpec, rubric: Rubric, seed: u64) -> GradeOptions {
    let mut o = GradeOptions::new(spec, rubric, seed);
    o.time_scale = cli.time_scale;
    o.only = cli.only.clone();
    o.user = cli.user.clone();
    o.limit_overrides = cli.limit.clone();
    o.isolated_net = cli.isolate_net;
    o.stdin = cli.stdin.clone();
    o
}

fn write_out(cli: &Cli, text: &str) -> Result<(), GradeError> {
    match &cli.output {
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
    let text = match cli.format {
        Format::Yaml => render::yaml(report),
        Format::Json => render::json(report),
        Format::Human => render::human(report, true),
        Format::Gradescope => gradescope::render(report, &cli.visibility),
        Format::Autolab => autolab::render(report),
        Format::Junit => junit::render(report),
    };
    write_out(cli, &text)?;
    // The summary on a terminal; never after Autolab's last line, which must stay last.
    let summary_on_stdout =
        matches!(cli.format, Format::Human | Format::Autolab) && cli.output.is_none();
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
    let text = match cli.format {
        Format::Gradescope => gradescope::fallback(message),
        Format::Autolab => autolab::fallback(message),
        Format::Junit => junit::fallback(message),
        Format::Yaml if code == EXIT_GRADER_FAILED => render::yaml(&Report::grader_failed(message)),
        Format::Json if code == EXIT_GRADER_FAILED => render::json(&Report::grader_failed(message)),
        Format::Yaml | Format::Json | Format::Human => return,
    };
    if let Err(e) = write_out(cli, &text) {
        eprintln!("grade: {e}");
    }
}
