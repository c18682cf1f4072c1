//! `grade`: the command line. It parses, calls the library, renders, and maps the result to
//! an exit code (0 graded, 1 below --fail-under, 2 bad input, 3 grader failure).

use clap::{Parser, ValueEnum};
use echograde::error::{EXIT_BAD_INPUT, EXIT_BELOW_THRESHOLD, EXIT_GRADED, EXIT_GRADER_FAILED};
use echograde::report::{render, write::probe_writable, write::write_atomic, Report};
use echograde::rubric::Rubric;
use echograde::supervise::ServerSpec;
use echograde::{GradeError, GradeOptions};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
    Human,
}

/// Grade a concurrent echo server: drive real clients against it, read its state from /proc,
/// and write a scored report of the concurrency bugs found, with evidence.
#[derive(Debug, Parser)]
#[command(
    name = "grade",
    version,
    after_help = "Example: grade ./echoserverp    (started as `./echoserverp PORT`)\n         grade --format human ./server -- --port {port} --verbose"
)]
struct Cli {
    /// The server executable. It is started as `SERVER ARG...`; with no ARGs it gets the port.
    server: PathBuf,
    /// Arguments for the server; `{port}` is replaced by the port the grader chose.
    #[arg(last = true)]
    args: Vec<String>,
    /// A rubric YAML file (default: the built-in graders/echo.yaml).
    #[arg(long)]
    rubric: Option<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value = "yaml")]
    format: Format,
    /// Write the report to this file (atomically) instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
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
    /// Print the JSON Schema of the report and exit.
    #[arg(long, exclusive = true, hide = true)]
    print_schema: bool,
}

fn main() {
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
            e.exit_code()
        }
        Err(_) => {
            eprintln!("grade: internal error (a bug in the grader); please report it with the command you ran");
            EXIT_GRADER_FAILED
        }
    };
    std::process::exit(code);
}

fn run(cli: &Cli) -> Result<i32, GradeError> {
    if !(cli.time_scale.is_finite() && cli.time_scale > 0.0 && cli.time_scale <= 100.0) {
        return Err(GradeError::Usage(format!(
            "--time-scale {} must be above 0 and at most 100",
            cli.time_scale
        )));
    }
    let rubric = match &cli.rubric {
        Some(p) => Rubric::load(p)?,
        None => Rubric::default_rubric(),
    };
    if let Some(out) = &cli.output {
        probe_writable(out)?;
    }
    let seed = cli.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000_000)
            .unwrap_or(1)
    });
    let opts = GradeOptions {
        spec: ServerSpec {
            program: cli.server.clone(),
            args: cli.args.clone(),
        },
        rubric,
        seed,
        time_scale: cli.time_scale,
        only: cli.only.clone(),
    };
    let report = echograde::grade(&opts)?;
    emit(cli, &report)?;
    if let Some(min) = cli.fail_under {
        if report.score < min {
            return Ok(EXIT_BELOW_THRESHOLD);
        }
    }
    Ok(EXIT_GRADED)
}

fn emit(cli: &Cli, report: &Report) -> Result<(), GradeError> {
    let text = match cli.format {
        Format::Yaml => render::yaml(report),
        Format::Json => render::json(report),
        Format::Human => render::human(report, true),
    };
    match &cli.output {
        Some(path) => write_atomic(path, text.as_bytes())?,
        None => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }
    let human_on_stdout = matches!(cli.format, Format::Human) && cli.output.is_none();
    if std::io::stderr().is_terminal() && !human_on_stdout {
        eprint!("{}", render::human(report, false));
    }
    Ok(())
}
