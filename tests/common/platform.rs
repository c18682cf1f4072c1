//! Support of the platform tests: submission folders in temporary directories, the
//! Gradescope schema, a JUnit parser.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub use super::{grade_bin, root};

/// A temporary directory others may enter: when the grader runs as root it may start servers
/// as an unprivileged user, who must reach the binaries.
pub fn open_tempdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("echograde-platform")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// Copy the `*.c`, `*.h` and `Makefile` of `from` into `to` (created).
pub fn copy_sources(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let name = e.file_name();
        let n = name.to_string_lossy();
        if n.ends_with(".c") || n.ends_with(".h") || n == "Makefile" {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// The handout's skeleton (iterative servers) as a submission folder.
pub fn skeleton(to: &Path) {
    copy_sources(&root().join("handout"), to);
}

/// The correct C submission: the handout with the three servers of fixtures/submission (only
/// the servers live there; the Makefile, echolib and echoclient are the handout's).
pub fn correct(to: &Path) {
    skeleton(to);
    copy_sources(&root().join("fixtures/submission"), to);
}

/// The skeleton with a syntax error in echoservert.c (a missing `;`).
pub fn broken(to: &Path) {
    skeleton(to);
    let f = to.join("echoservert.c");
    let src = std::fs::read_to_string(&f).unwrap();
    let bad = src.replacen("int listenfd, connfd;", "int listenfd, connfd", 1);
    assert_ne!(
        src, bad,
        "the skeleton still declares `int listenfd, connfd;`"
    );
    std::fs::write(&f, bad).unwrap();
}

/// An AUTOGRADER_ROOT with the zip's contents in source/ and run_autograder at the root.
pub fn autograder_root() -> (tempfile::TempDir, PathBuf) {
    let d = open_tempdir();
    let root_dir = d.path().join("autograder");
    std::fs::create_dir(&root_dir).unwrap();
    let out = std::process::Command::new("bash")
        .arg(root().join("graders/gradescope/make_zip.sh"))
        .arg("--dir")
        .arg(root_dir.join("source"))
        .arg("--grade")
        .arg(grade_bin())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make_zip.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::copy(
        root_dir.join("source/run_autograder"),
        root_dir.join("run_autograder"),
    )
    .unwrap();
    std::fs::create_dir(root_dir.join("submission")).unwrap();
    (d, root_dir)
}

/// The JSON Schema of Gradescope's results.json.
pub fn gradescope_validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("graders/gradescope/results.schema.json")).unwrap(),
    )
    .unwrap();
    jsonschema::validator_for(&schema).expect("the Gradescope schema compiles")
}

/// Validate results.json text against the spec's schema, and check the fields echograde
/// promises beyond it. Returns the parsed value.
pub fn check_gradescope(text: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("results.json is not JSON ({e}):\n{text}"));
    let errors: Vec<String> = gradescope_validator()
        .iter_errors(&v)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "results.json breaks the spec: {errors:?}\n{text}"
    );
    for key in [
        "score",
        "execution_time",
        "output",
        "stdout_visibility",
        "tests",
    ] {
        assert!(v.get(key).is_some(), "results.json has no `{key}`: {text}");
    }
    for t in v["tests"].as_array().unwrap() {
        for key in [
            "name",
            "score",
            "max_score",
            "status",
            "output",
            "visibility",
        ] {
            assert!(t.get(key).is_some(), "a test has no `{key}`: {t}");
        }
    }
    v
}

/// The test with this id (its name starts with `ID: `).
pub fn gs_test<'a>(v: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    v["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"].as_str().unwrap().starts_with(&format!("{id}: ")))
        .unwrap_or_else(|| panic!("no test {id} in {v}"))
}

/// The last line of Autolab output, parsed; panics unless it is the score object.
pub fn autolab_last_line(stdout: &str) -> serde_json::Value {
    let last = stdout.lines().last().expect("some output");
    let v: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("the last line is not JSON ({e}): {last:?}\n{stdout}"));
    assert!(v["scores"].is_object(), "{last}");
    assert!(v["scoreboard"].is_array(), "{last}");
    // Only the last line is the score line.
    let json_like = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .count();
    assert_eq!(
        json_like, 1,
        "one line looks like JSON, the last:\n{stdout}"
    );
    v
}

/// A parsed JUnit test case.
#[derive(Debug, Default, Clone)]
pub struct Case {
    pub suite: String,
    pub name: String,
    /// "failure", "error", "skipped" or "" (passed).
    pub outcome: String,
    pub message: String,
    pub body: String,
}

/// Parse JUnit XML with quick-xml (a real parser: malformed XML is an error): the root's
/// attributes and every test case.
pub fn parse_junit(xml: &str) -> (std::collections::BTreeMap<String, String>, Vec<Case>) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut root = std::collections::BTreeMap::new();
    let mut cases: Vec<Case> = Vec::new();
    let mut suite = String::new();
    let mut in_outcome = false;
    let attrs = |e: &quick_xml::events::BytesStart| -> std::collections::BTreeMap<String, String> {
        e.attributes()
            .map(|a| {
                let a = a.expect("well-formed attribute");
                (
                    String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                    a.normalized_value(quick_xml::XmlVersion::Explicit1_0)
                        .expect("attribute unescapes")
                        .into_owned(),
                )
            })
            .collect()
    };
    let mut depth = 0usize;
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("JUnit XML does not parse: {e}\n{xml}"))
        {
            Event::Start(e) => {
                depth += 1;
                let a = attrs(&e);
                match e.name().as_ref() {
                    b"testsuites" => root = a,
                    b"testsuite" => suite = a["name"].clone(),
                    b"testcase" => cases.push(Case {
                        suite: suite.clone(),
                        name: a["name"].clone(),
                        ..Default::default()
                    }),
                    b"failure" | b"error" => {
                        let c = cases.last_mut().expect("inside a testcase");
                        c.outcome = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                        c.message = a.get("message").cloned().unwrap_or_default();
                        in_outcome = true;
                    }
                    _ => {}
                }
            }
            Event::Empty(e) => {
                let a = attrs(&e);
                if e.name().as_ref() == b"skipped" {
                    let c = cases.last_mut().expect("inside a testcase");
                    c.outcome = "skipped".into();
                    c.message = a.get("message").cloned().unwrap_or_default();
                }
            }
            Event::Text(t) if in_outcome => {
                let text = t.decode().expect("text decodes");
                cases.last_mut().unwrap().body.push_str(&text);
            }
            Event::GeneralRef(r) if in_outcome => {
                let name = r.decode().expect("reference decodes");
                let ch = match name.as_ref() {
                    "amp" => "&".to_string(),
                    "lt" => "<".into(),
                    "gt" => ">".into(),
                    "quot" => "\"".into(),
                    "apos" => "'".into(),
                    other => r
                        .resolve_char_ref()
                        .ok()
                        .flatten()
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| panic!("unknown entity &{other};")),
                };
                cases.last_mut().unwrap().body.push_str(&ch);
            }
            Event::End(e) => {
                depth -= 1;
                if matches!(e.name().as_ref(), b"failure" | b"error") {
                    in_outcome = false;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0, "every element is closed");
    assert!(!root.is_empty(), "a <testsuites> root: {xml}");
    (root, cases)
}
