//! The class outputs: each submission's files in `students/`, and `class.csv`, `class.json`
//! and `index.html` built from them.
//!
//! A finished grading is kept as a *record* (`students/STEM.record.json`: the name, the hash
//! of its inputs, and the report), written last and atomically after the YAML and the page, so
//! a record on disk always means a whole grading; a rerun and `--merge` read only records. The
//! class files use few fields of [`Report`]: the score and its maximum, the status, the
//! server's model, the duration, and each check's id, title, status and points.

use crate::error::GradeError;
use crate::report::html::esc as escape;
use crate::report::write::write_atomic;
use crate::report::{render, Report, RunStatus, Status};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The folder of the per-submission files inside the output folder.
pub const STUDENTS: &str = "students";
/// A check that fewer than this share of the graded submissions pass is flagged for the TA:
/// when most of a class fails one check, the check or the handout may be at fault.
pub const FLAG_BELOW: f64 = 0.5;

/// One finished grading, as kept on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The submission's name as the student made it.
    pub name: String,
    /// Its files' stem in `students/`.
    pub stem: String,
    /// The hash of everything the grading depended on (see `run::inputs_key`).
    pub key: String,
    pub report: Report,
}

pub fn record_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(STUDENTS).join(format!("{stem}.record.json"))
}

/// The files of one submission: YAML report, page, then the record (last: it commits them).
pub fn write_submission(dir: &Path, record: &Record) -> Result<(), GradeError> {
    let students = dir.join(STUDENTS);
    std::fs::create_dir_all(&students).map_err(|source| GradeError::Output {
        path: students.clone(),
        source,
    })?;
    write_atomic(
        &students.join(format!("{}.yaml", record.stem)),
        render::yaml(&record.report).as_bytes(),
    )?;
    write_atomic(
        &students.join(format!("{}.html", record.stem)),
        crate::report::html::student_page(&record.report).as_bytes(),
    )?;
    let json = serde_json::to_vec(record).expect("a record serializes");
    write_atomic(&record_path(dir, &record.stem), &json)
}

/// The record of `stem` in `dir`, when there is a whole one whose files are all present.
pub fn read_record(dir: &Path, stem: &str) -> Option<Record> {
    let students = dir.join(STUDENTS);
    let present = ["yaml", "html"]
        .iter()
        .all(|ext| students.join(format!("{stem}.{ext}")).is_file());
    if !present {
        return None;
    }
    let bytes = std::fs::read(record_path(dir, stem)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Every record in `dir/students` (for `--merge`), sorted by name.
pub fn read_all_records(dir: &Path) -> Result<Vec<Record>, GradeError> {
    let students = dir.join(STUDENTS);
    let list = std::fs::read_dir(&students).map_err(|e| {
        GradeError::Usage(format!(
            "`{}` holds no class outputs ({}: {e}): pass the --out folders of `grade class` runs",
            dir.display(),
            students.display()
        ))
    })?;
    let mut records = Vec::new();
    for e in list.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        if let Some(stem) = file.strip_suffix(".record.json") {
            match read_record(dir, stem) {
                Some(r) if r.stem == stem => records.push(r),
                _ => eprintln!(
                    "grade class: warning: {} is not a whole record; left out",
                    e.path().display()
                ),
            }
        }
    }
    records.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(records)
}

/// One check's verdict in the class table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cell {
    pub status: Status,
    pub score: f64,
    pub max_score: f64,
}

/// One submission's row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub name: String,
    /// Its page and YAML report, relative to the output folder.
    pub page: String,
    pub report: String,
    pub status: RunStatus,
    pub score: f64,
    pub max_score: f64,
    pub model: String,
    pub duration_s: f64,
    pub checks: BTreeMap<String, Cell>,
}

/// How the class did on one check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckStats {
    pub id: String,
    pub title: String,
    pub max_score: f64,
    /// Submissions where the check passed or failed (skipped and errors are not counted).
    pub graded: usize,
    pub passed: usize,
    /// `passed / graded`, or null when nothing was graded.
    pub pass_rate: Option<f64>,
    /// Most of the class fails it (pass rate below [`FLAG_BELOW`]).
    pub flagged: bool,
}

/// `class.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassSummary {
    pub echograde: String,
    pub submissions: Vec<Row>,
    pub checks: Vec<CheckStats>,
    /// Server model -> number of submissions.
    pub models: BTreeMap<String, usize>,
    /// The sum of every grading's duration (the wall time is less with `--jobs` above 1).
    pub grading_time_s: f64,
    /// Submissions per tenth of the maximum score (the last bin includes full marks).
    pub histogram: Vec<usize>,
}

/// Summarise records (in name order).
pub fn summarize(records: &[Record]) -> ClassSummary {
    let mut order: Vec<String> = Vec::new();
    let mut titles: HashMap<String, (String, f64)> = HashMap::new();
    let mut rows = Vec::with_capacity(records.len());
    let mut models = BTreeMap::new();
    let mut histogram = vec![0usize; 10];
    let mut grading_time_s = 0.0;
    for r in records {
        let rep = &r.report;
        let mut checks = BTreeMap::new();
        for e in rep.entries() {
            let (c, id) = (e.check, e.qualified_id());
            if !titles.contains_key(&id) {
                order.push(id.clone());
                titles.insert(id.clone(), (c.title.clone(), c.max_score));
            }
            checks.insert(
                id,
                Cell {
                    status: c.status,
                    score: c.score,
                    max_score: c.max_score,
                },
            );
        }
        // Each server of a submission shows its own model (a submission of three servers
        // counts three).
        for part in &rep.parts {
            *models
                .entry(part.server.model.as_str().to_string())
                .or_insert(0) += 1;
        }
        let frac = if rep.max_score > 0.0 {
            (rep.score / rep.max_score).clamp(0.0, 1.0)
        } else {
            0.0
        };
        histogram[((frac * 10.0) as usize).min(9)] += 1;
        grading_time_s += rep.duration_s;
        rows.push(Row {
            name: r.name.clone(),
            page: format!("{STUDENTS}/{}.html", r.stem),
            report: format!("{STUDENTS}/{}.yaml", r.stem),
            status: rep.status,
            score: rep.score,
            max_score: rep.max_score,
            model: rep
                .parts
                .iter()
                .map(|p| p.server.model.as_str())
                .collect::<Vec<_>>()
                .join("/"),
            duration_s: rep.duration_s,
            checks,
        });
    }
    let checks = order
        .iter()
        .map(|id| check_stats(id, &titles, &rows))
        .collect();
    ClassSummary {
        echograde: env!("CARGO_PKG_VERSION").to_string(),
        submissions: rows,
        checks,
        models,
        grading_time_s: crate::report::round2(grading_time_s),
        histogram,
    }
}

/// How the class did on one check: of those graded on it, how many passed; flagged when
/// fewer than [`FLAG_BELOW`] did.
fn check_stats(id: &str, titles: &HashMap<String, (String, f64)>, rows: &[Row]) -> CheckStats {
    let (title, max_score) = titles[id].clone();
    let cells = rows.iter().filter_map(|r| r.checks.get(id));
    let graded = cells
        .clone()
        .filter(|c| matches!(c.status, Status::Pass | Status::Fail))
        .count();
    let passed = cells.filter(|c| c.status == Status::Pass).count();
    let pass_rate = (graded > 0).then(|| passed as f64 / graded as f64);
    CheckStats {
        id: id.to_string(),
        title,
        max_score,
        graded,
        passed,
        pass_rate,
        flagged: pass_rate.is_some_and(|p| p < FLAG_BELOW),
    }
}

/// Write `class.csv`, `class.json` and `index.html` into `dir`, each atomically.
pub fn write_class(dir: &Path, summary: &ClassSummary) -> Result<(), GradeError> {
    write_atomic(&dir.join("class.csv"), csv(summary).as_bytes())?;
    let mut json = serde_json::to_string_pretty(summary).expect("summary serializes");
    json.push('\n');
    write_atomic(&dir.join("class.json"), json.as_bytes())?;
    write_atomic(
        &dir.join("index.html"),
        super::index::render(summary).as_bytes(),
    )
}

/// `class.csv`: name, score, max_score, then each check's points (empty where the check was
/// not in the submission's report). RFC 4180 quoting; see [`csv_cell`].
pub fn csv(summary: &ClassSummary) -> String {
    let mut out = String::new();
    let mut header = vec!["name".to_string(), "score".into(), "max_score".into()];
    header.extend(summary.checks.iter().map(|c| c.id.clone()));
    push_row(&mut out, &header);
    for r in &summary.submissions {
        let mut row = vec![r.name.clone(), num(r.score), num(r.max_score)];
        row.extend(summary.checks.iter().map(|c| {
            r.checks
                .get(&c.id)
                .map(|c| num(c.score))
                .unwrap_or_default()
        }));
        push_row(&mut out, &row);
    }
    out
}

fn num(x: f64) -> String {
    format!("{}", crate::report::round2(x))
}

fn push_row(out: &mut String, cells: &[String]) {
    let cells: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
    out.push_str(&cells.join(","));
    out.push_str("\r\n");
}

/// One CSV cell. A text cell that a spreadsheet would read as a formula (it starts with `=`,
/// `+`, `-`, `@`, a tab or a carriage return: `=cmd|' /C calc'!A0`) gets a leading `'`, which
/// spreadsheets show as text (OWASP's CSV-injection advice); numbers written by the grader are
/// left alone. A cell holding a comma, quote or line break is quoted, quotes doubled.
pub fn csv_cell(s: &str) -> String {
    let is_number = !s.is_empty() && s.parse::<f64>().is_ok_and(|x| x.is_finite());
    let mut cell = String::with_capacity(s.len() + 2);
    if !is_number && s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        cell.push('\'');
    }
    cell.push_str(s);
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell
    }
}

/// Escape for HTML (re-exported for the index).
pub(super) fn h(s: &str) -> String {
    escape(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(csv_cell("alice"), "alice");
        assert_eq!(csv_cell("12.5"), "12.5");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(csv_cell("-2+3"), "'-2+3");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("a\nb"), "\"a\nb\"");
    }
}
