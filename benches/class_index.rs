//! How long the class outputs take for a big class, and how much memory: 500 synthetic
//! reports (16 checks each, feedback of a few hundred bytes) summarised, and `index.html`,
//! `class.csv` and `class.json` rendered. Prints numbers; `cargo bench --bench class_index`.

use echograde::class::index;
use echograde::class::outputs::{csv, summarize, Record};
use echograde::report::{CheckReport, Model, PartReport, Report, RunStatus, ServerInfo, Status};
use std::time::Instant;

fn report(i: usize) -> Report {
    let mut r = Report::grader_failed("");
    r.status = RunStatus::Graded;
    r.error = None;
    r.rubric = "echo".into();
    let model = [
        Model::Process,
        Model::Thread,
        Model::Event,
        Model::Iterative,
    ][i % 4];
    let checks: Vec<CheckReport> = (0..16)
        .map(|c| {
            let pass = (i * 7 + c * 3) % 5 != 0;
            CheckReport {
                id: format!("check.{c}"),
                title: format!("Check number {c}"),
                status: if pass { Status::Pass } else { Status::Fail },
                score: if pass { 6.0 } else { 0.0 },
                max_score: 6.0,
                duration_s: 1.5,
                bound_s: Some(10.0),
                feedback: "The server <did> something & the grader saw it. ".repeat(6),
                evidence: serde_json::json!({"clients": 4, "bytes": 1024}),
                server_output: None,
                timeline: None,
            }
        })
        .collect();
    r.score = checks.iter().map(|c| c.score).sum();
    r.parts = vec![PartReport {
        name: None,
        binary: None,
        rubric: "echo".into(),
        server: ServerInfo {
            command: vec!["./server".into(), "{port}".into()],
            model,
            model_evidence: serde_json::json!({}),
            containment: serde_json::json!({}),
        },
        score: r.score,
        max_score: 96.0,
        checks,
        error: None,
    }];
    r.max_score = 96.0;
    r.duration_s = 20.0;
    r
}

fn vm_hwm_kib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn main() {
    let n = 500;
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            name: format!("student <{i:03}> \"x\""),
            stem: format!("student{i:03}"),
            key: String::new(),
            report: report(i),
        })
        .collect();
    let rounds = 20;
    let start = Instant::now();
    let mut bytes = 0;
    for _ in 0..rounds {
        let summary = summarize(&records);
        let page = index::render(&summary);
        let table = csv(&summary);
        let json = serde_json::to_string_pretty(&summary).unwrap();
        bytes = page.len() + table.len() + json.len();
    }
    let per = start.elapsed() / rounds;
    println!(
        "{n} reports: summary + index.html + class.csv + class.json in {:.1} ms \
         ({bytes} bytes); peak RSS {} KiB",
        per.as_secs_f64() * 1000.0,
        vm_hwm_kib()
    );
    let start = Instant::now();
    let summary = summarize(&records);
    let page = index::render(&summary);
    println!(
        "{n} reports: index.html alone {:.1} ms, {} bytes",
        start.elapsed().as_secs_f64() * 1000.0,
        page.len()
    );
}
