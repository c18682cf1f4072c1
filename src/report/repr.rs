//! How a [`Report`] is written: the layout of YAML and JSON reports and their schema.
//!
//! The model is always a list of parts; the layout keeps the common case as TAs know it. A
//! report of one unnamed server puts that server's `server:` and `checks:` at the top level
//! (its rubric, score and error are the report's); any other report lists `parts:`. Reading
//! turns either layout back into the same [`Report`], so a report written as JSON reads back
//! equal to the one written (the class runner relies on this).

use super::{BuildReport, CheckReport, PartReport, Report, RunStatus, ServerInfo};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The written layout.
#[derive(Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Report", description = "A whole grading run.")]
struct Layout {
    /// The grader's version.
    echograde: String,
    status: RunStatus,
    /// The rubric's name (the submission rubric's for several servers).
    rubric: String,
    /// The seed that reproduces this run's payloads.
    seed: u64,
    /// How `make` went (`grade --build` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    build: Option<BuildReport>,
    /// The one server graded (single-server layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server: Option<ServerInfo>,
    score: f64,
    max_score: f64,
    duration_s: f64,
    /// The longest the grading of the server(s) may take: the model probe's bound and every
    /// check's, added up (the build, if any, is bounded by its own timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bound_s: Option<f64>,
    /// The one server's checks (single-server layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checks: Option<Vec<CheckReport>>,
    /// Each server of a submission (several-server layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parts: Option<Vec<PartReport>>,
    /// Set when the grader itself failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl From<&Report> for Layout {
    fn from(r: &Report) -> Layout {
        let (server, checks, parts) = match r.parts.as_slice() {
            [p] if p.name.is_none() => (Some(p.server.clone()), Some(p.checks.clone()), None),
            parts => (None, None, Some(parts.to_vec())),
        };
        Layout {
            echograde: r.echograde.clone(),
            status: r.status,
            rubric: r.rubric.clone(),
            seed: r.seed,
            build: r.build.clone(),
            server,
            score: r.score,
            max_score: r.max_score,
            duration_s: r.duration_s,
            bound_s: r.bound_s,
            checks,
            parts,
            error: r.error.clone(),
        }
    }
}

impl From<Layout> for Report {
    fn from(l: Layout) -> Report {
        let parts = match (l.parts, l.server) {
            (Some(parts), _) => parts,
            (None, Some(server)) => vec![PartReport {
                name: None,
                binary: None,
                rubric: l.rubric.clone(),
                server,
                score: l.score,
                max_score: l.max_score,
                checks: l.checks.unwrap_or_default(),
                error: l.error.clone(),
            }],
            (None, None) => Vec::new(),
        };
        Report {
            echograde: l.echograde,
            status: l.status,
            rubric: l.rubric,
            seed: l.seed,
            score: l.score,
            max_score: l.max_score,
            duration_s: l.duration_s,
            bound_s: l.bound_s,
            build: l.build,
            parts,
            error: l.error,
        }
    }
}

impl Serialize for Report {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Layout::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Report {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Report, D::Error> {
        Layout::deserialize(d).map(Report::from)
    }
}

impl JsonSchema for Report {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Report".into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Layout::json_schema(g)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Model, Status};
    use super::*;
    use serde_json::json;

    fn server() -> ServerInfo {
        ServerInfo {
            command: vec!["./s".into(), "{port}".into()],
            model: Model::Process,
            model_evidence: json!({"threads_before": 1}),
            containment: json!({"process_group": true}),
        }
    }

    fn check(id: &str) -> CheckReport {
        CheckReport {
            id: id.into(),
            title: "Echoes".into(),
            status: Status::Fail,
            score: 1.5,
            max_score: 8.0,
            duration_s: 0.25,
            bound_s: Some(3.0),
            feedback: "a line came back wrong".into(),
            evidence: json!({"lines": 3}),
            server_output: None,
            timeline: None,
        }
    }

    fn part(name: Option<&str>) -> PartReport {
        PartReport {
            name: name.map(str::to_string),
            binary: name.map(str::to_string),
            rubric: "echo".into(),
            server: server(),
            score: 1.5,
            max_score: 8.0,
            checks: vec![check("echo.basic")],
            error: None,
        }
    }

    fn report(parts: Vec<PartReport>) -> Report {
        Report {
            echograde: "0.1.0".into(),
            status: RunStatus::Graded,
            rubric: "echo".into(),
            seed: 42,
            score: 1.5,
            max_score: 8.0,
            duration_s: 1.0,
            bound_s: Some(4.0),
            build: None,
            parts,
            error: None,
        }
    }

    #[test]
    fn one_unnamed_server_is_written_flat_and_reads_back_equal() {
        let r = report(vec![part(None)]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["server"]["model"], "process");
        assert_eq!(v["checks"][0]["id"], "echo.basic");
        assert!(v.get("parts").is_none());
        let back: Report = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn several_servers_are_written_as_parts_and_read_back_equal() {
        let mut r = report(vec![part(Some("echoserverp")), part(Some("echoservert"))]);
        r.build = Some(BuildReport {
            title: "The submission builds with `make`".into(),
            status: Status::Pass,
            duration_s: 0.5,
            feedback: "ok".into(),
            command: vec!["make".into()],
            exit: "exited with status 0".into(),
            timed_out: false,
            output_bytes: 10,
            warnings: 0,
        });
        let text = serde_json::to_string(&r).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v.get("server").is_none() && v.get("checks").is_none());
        assert_eq!(v["parts"][1]["name"], "echoservert");
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        let ids: Vec<String> = back.entries().map(|e| e.qualified_id()).collect();
        assert_eq!(ids, ["echoserverp/echo.basic", "echoservert/echo.basic"]);
    }

    #[test]
    fn a_failed_run_reads_back_equal() {
        let r = Report::grader_failed("no /proc");
        let back: Report = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
