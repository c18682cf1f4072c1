//! The handout builds with `make` on a plain machine, and its skeletons are the starting
//! point, not the answer: the grader sees them as iterative servers.

mod common;

use common::*;
use echograde::report::Model;

#[test]
fn handout_builds_and_its_skeletons_grade_as_iterative() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("handout");
    std::fs::create_dir(&dir).unwrap();
    for e in std::fs::read_dir(root().join("handout")).unwrap().flatten() {
        let name = e.file_name();
        let n = name.to_string_lossy();
        if n.ends_with(".c") || n.ends_with(".h") || n == "Makefile" {
            std::fs::copy(e.path(), dir.join(&name)).unwrap();
        }
    }
    let out = std::process::Command::new("make")
        .current_dir(&dir)
        .output()
        .expect("run make");
    assert!(
        out.status.success(),
        "make: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warnings = String::from_utf8_lossy(&out.stderr)
        .matches("warning:")
        .count();
    assert_eq!(
        warnings,
        0,
        "the handout compiles without warnings: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    for (server, rubric) in [
        ("echoserverp", "echo-process.yaml"),
        ("echoservers", "echo-event.yaml"),
        ("echoservert", "echo-thread.yaml"),
    ] {
        let rubric = root().join("graders").join(rubric);
        let (code, report, stderr) = grade_report(
            &dir.join(server),
            &[
                "--rubric",
                rubric.to_str().unwrap(),
                "--only",
                "model,echo.basic,echo.large,concurrency.overlap",
            ],
        );
        assert_eq!(code, 0, "{server}: {stderr}");
        let st = verdicts(&report);
        assert_eq!(report.model(), Model::Iterative, "{server}");
        assert_eq!(st["echo.basic"], "pass", "{server} echoes");
        assert_eq!(st["echo.large"], "pass", "{server} echoes long lines");
        assert_eq!(
            st["concurrency.overlap"], "fail",
            "{server} is not concurrent yet"
        );
        assert_eq!(
            st["model"], "fail",
            "{server} is not yet the model it should become"
        );
    }
}
