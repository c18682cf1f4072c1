//! The student page, opened in a real browser (headless Chromium, see `common/browser.rs`):
//! it loads without a console error, every check's timeline is drawn with a size, its links
//! lead somewhere, and what the picture shows is what the grader measured (an iterative
//! server's client B waits until client A leaves; a server that never reaps keeps its
//! zombies). A hostile server's markup stays text.
//!
//! Needs Chromium (`.ci/run` installs Debian's `chromium`); without one these tests fail and
//! say how to get it, unless `ECHOGRADE_SKIP_BROWSER=1` says to skip them.

mod common;

use common::browser::{chromium, open_page, PageReport};
use common::*;
use std::path::{Path, PathBuf};

/// The checks graded for the pages here: a plain one, the overlap, and the zombie check.
const ONLY: &str = "echo.basic,concurrency.overlap,zombies";

/// Whether a browser test may run: a browser is there, or skipping was asked for.
fn browser_available() -> bool {
    if chromium().is_some() {
        return true;
    }
    assert!(
        std::env::var_os("ECHOGRADE_SKIP_BROWSER").is_some(),
        "no Chromium for the browser tests: `apt-get install chromium` (.ci/run does), set \
         ECHOGRADE_CHROMIUM=/path/to/chromium, or ECHOGRADE_SKIP_BROWSER=1 to skip them"
    );
    eprintln!("skipped: no Chromium and ECHOGRADE_SKIP_BROWSER is set");
    false
}

/// Grade `server` once, writing its student page and its JSON report into `dir`.
fn grade_to_page(server: &Path, only: &str, dir: &Path) -> (PathBuf, serde_json::Value) {
    let html = dir.join("report.html");
    let json = dir.join("report.json");
    let args: Vec<std::ffi::OsString> = vec![
        "--seed".into(),
        "42".into(),
        "--only".into(),
        only.into(),
        "--output".into(),
        html.clone().into(),
        "--output".into(),
        json.clone().into(),
        server.into(),
    ];
    let run = Contained::spawn(
        &args,
        std::process::Stdio::null(),
        std::process::Stdio::piped(),
    );
    let (out, leftovers) = run.wait_with_output();
    assert_nothing_left(&leftovers, &format!("grading {}", server.display()));
    assert_eq!(
        out.status.code(),
        Some(0),
        "grade: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (html, report)
}

/// Every client's lane in a timeline drawing (measure it for [`assert_page_renders`]).
const LANES: &str = "svg.timeline g.lane";

/// The page loads cleanly and draws a timeline, with a size, for every check that has one.
fn assert_page_renders(page: &PageReport, report: &serde_json::Value) {
    assert!(
        page.console_errors.is_empty(),
        "console errors: {:#?}",
        page.console_errors
    );
    assert_eq!(page.scripts, 0, "the page has no script");
    let with_timeline: Vec<(String, usize)> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c.get("timeline").is_some())
        .map(|c| {
            (
                format!("check-{}", c["id"].as_str().unwrap()),
                c["timeline"]["lanes"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert!(!with_timeline.is_empty(), "the report has timelines");
    let svgs: Vec<_> = page
        .elements
        .iter()
        .filter(|e| e.selector == "svg.timeline")
        .collect();
    for (id, lanes) in &with_timeline {
        let drawn: Vec<_> = svgs.iter().filter(|e| &e.within == id).collect();
        assert_eq!(drawn.len(), 1, "{id}: one timeline drawing");
        assert!(
            drawn[0].width > 300.0 && drawn[0].height > 40.0,
            "{id}: the timeline is drawn {}x{} px",
            drawn[0].width,
            drawn[0].height
        );
        // Every client's lane is drawn inside it, with a size.
        let drawn_lanes: Vec<_> = page
            .elements
            .iter()
            .filter(|e| e.selector == LANES && &e.within == id)
            .collect();
        assert_eq!(drawn_lanes.len(), *lanes, "{id}: a lane per client");
        for l in drawn_lanes {
            assert!(l.width > 0.0 && l.height > 0.0, "{id}: lane drawn {l:?}");
        }
    }
    assert_eq!(svgs.len(), with_timeline.len(), "no other timeline drawing");
    assert!(!page.links.is_empty(), "the summary links to each check");
    for l in &page.links {
        assert!(l.resolves, "link {} ({}) leads nowhere", l.href, l.url);
    }
}

/// The box of the one element a selector finds.
fn one<'a>(page: &'a PageReport, selector: &str) -> &'a common::browser::Measured {
    let found: Vec<_> = page
        .elements
        .iter()
        .filter(|e| e.selector == selector)
        .collect();
    assert_eq!(found.len(), 1, "{selector}: {found:?}");
    found[0]
}

const OVERLAP: &str = "[id=\"check-concurrency.overlap\"]";

#[test]
fn an_iterative_servers_page_shows_b_waiting_until_a_leaves() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (html, report) = grade_to_page(&fixture("iterative"), ONLY, dir.path());
    let b_wait = format!("{OVERLAP} g.lane[data-client=\"B\"] rect.wait");
    let a_close = format!("{OVERLAP} g.lane[data-client=\"A\"] rect.close");
    let page = open_page(&html, &["svg.timeline", LANES, &b_wait, &a_close]);
    assert_page_renders(&page, &report);
    // What the grader measured: B waited from its send until its answer, which came only
    // after A closed (the iterative signature).
    let overlap = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "concurrency.overlap")
        .unwrap();
    let at = |client: &str, kind: &str| -> f64 {
        overlap["timeline"]["lanes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["client"] == client)
            .and_then(|l| {
                l["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["kind"] == kind)
            })
            .and_then(|e| e["t_ms"].as_f64())
            .unwrap_or_else(|| panic!("{client} has no {kind} event"))
    };
    let (b_waits, b_answered, a_closes) =
        (at("B", "waiting"), at("B", "answered"), at("A", "close"));
    assert!(
        b_answered >= a_closes && a_closes - b_waits > 1000.0,
        "B waited from {b_waits} ms, A closed at {a_closes} ms, B was answered at {b_answered} ms"
    );
    // The picture shows exactly that: B's bar is long and ends at A's close mark, as far
    // after it as B's answer came after A's close (at the drawing's own scale).
    let (wait, close) = (one(&page, &b_wait), one(&page, &a_close));
    assert!(
        wait.width > 200.0,
        "B's wait is drawn long ({} px)",
        wait.width
    );
    let px_per_ms = wait.width / (b_answered - b_waits);
    let gap_px = wait.x + wait.width - (close.x + close.width / 2.0);
    let want_px = (b_answered - a_closes) * px_per_ms;
    assert!(
        (gap_px - want_px).abs() <= 2.0,
        "B's wait ends {gap_px:.1} px after A's close mark; the times say {want_px:.1} px"
    );
}

#[test]
fn a_server_that_never_reaps_shows_its_zombies_staying() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (html, report) = grade_to_page(&fixture("proc_no_reap"), "zombies", dir.path());
    let zombies = report["checks"][0]["timeline"]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["zombies"].as_u64().unwrap())
        .collect::<Vec<_>>();
    // Children exit and stay: the count rises and never falls back to zero.
    let last = *zombies.last().unwrap();
    assert!(last >= 20, "zombies at the end: {zombies:?}");
    let actions: Vec<&str> = report["checks"][0]["timeline"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"pause") && actions.contains(&"resume"),
        "the grader's SIGSTOP and SIGCONT are on the timeline: {actions:?}"
    );
    let line = "[id=\"check-zombies\"] path.zombies";
    let page = open_page(&html, &["svg.timeline", LANES, line]);
    assert_page_renders(&page, &report);
    let z = one(&page, line);
    assert!(z.width > 50.0 && z.height > 10.0, "zombie line {z:?}");
}

#[test]
fn a_reference_servers_page_renders() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (html, report) = grade_to_page(
        &reference_bin("echo-process"),
        "echo.basic,concurrency.overlap,zombies,concurrency.many",
        dir.path(),
    );
    assert_eq!(report["score"], report["max_score"], "full marks");
    let page = open_page(&html, &["svg.timeline", LANES]);
    assert_page_renders(&page, &report);
}

/// Markup in everything the server controls (its output, the bytes it answers with) stays
/// text in the file: no element of it is made.
#[test]
fn hostile_markup_is_escaped_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (html, report) = grade_to_page(
        &fixture("hostile/html_inject"),
        "echo.basic,concurrency.overlap",
        dir.path(),
    );
    let text = std::fs::read_to_string(&html).unwrap();
    let feedback = report["checks"][0]["feedback"].as_str().unwrap();
    assert!(
        feedback.contains("<script>"),
        "the feedback quotes the markup: {feedback}"
    );
    let lower = text.to_ascii_lowercase();
    // As text the words are harmless ("&lt;img src=x onerror=..."); as tags they are not.
    for bad in ["<script", "<img", "<svg onload", "</pre></p>"] {
        assert!(
            !lower.contains(bad),
            "{bad} made it into the page unescaped"
        );
    }
    assert!(text.contains("&lt;script&gt;document.title="));
}

/// The same hostile page in the browser: nothing of the markup runs or becomes an element.
#[test]
fn hostile_markup_is_inert_in_the_browser() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (html, report) = grade_to_page(
        &fixture("hostile/html_inject"),
        "echo.basic,concurrency.overlap",
        dir.path(),
    );
    let page = open_page(&html, &["svg.timeline", LANES, "img"]);
    assert_page_renders(&page, &report);
    assert_eq!(page.handlers, 0, "no event handler attribute");
    assert!(!page.elements.iter().any(|e| e.tag == "img"), "no image");
    assert_ne!(page.title, "pwned");
    assert!(
        page.text.contains("<script>document.title='pwned'"),
        "the markup is shown as text"
    );
}

/// The reference crate's binary.
fn reference_bin(name: &str) -> PathBuf {
    reference_bins().join(name)
}

/// The class page of `grade class`, opened in the browser: no console error (its sorting
/// script runs under the page's own Content-Security-Policy), the score histogram is drawn
/// with a size, both tables are there, and every link (each student's page and report)
/// resolves; a student's page reached from it draws its timelines.
#[test]
fn the_class_page_draws_its_histogram_and_every_link_resolves() {
    if !browser_available() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let mut args: Vec<std::ffi::OsString> = ["class", "--seed", "42", "--jobs", "1", "--only"]
        .iter()
        .map(Into::into)
        .collect();
    args.push("echo.basic,concurrency.overlap".into());
    args.push("--out".into());
    args.push(out.path().into());
    args.push(fixture("ok_process").into());
    args.push(fixture("iterative").into());
    let run = Contained::spawn(
        &args,
        std::process::Stdio::null(),
        std::process::Stdio::piped(),
    );
    let (done, leftovers) = run.wait_with_output();
    assert_nothing_left(&leftovers, "grading a class");
    assert_eq!(
        done.status.code(),
        Some(0),
        "grade class: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let page = open_page(
        &out.path().join("index.html"),
        &["#histogram", "#checks", "#students", "#students tbody tr"],
    );
    assert!(
        page.console_errors.is_empty(),
        "console errors: {:#?}",
        page.console_errors
    );
    let histogram = one(&page, "#histogram");
    assert!(
        histogram.width > 100.0 && histogram.height > 50.0,
        "the histogram is drawn {}x{} px",
        histogram.width,
        histogram.height
    );
    for table in ["#checks", "#students"] {
        let t = one(&page, table);
        assert!(t.width > 0.0 && t.height > 0.0, "{table}: {t:?}");
    }
    let rows = page
        .elements
        .iter()
        .filter(|e| e.selector == "#students tbody tr")
        .count();
    assert_eq!(rows, 2, "a row per submission");
    let pages: Vec<_> = page
        .links
        .iter()
        .filter(|l| l.href.ends_with(".html"))
        .collect();
    assert_eq!(pages.len(), 2, "a page link per student: {:#?}", page.links);
    for l in &page.links {
        assert!(l.resolves, "link {} ({}) leads nowhere", l.href, l.url);
    }
    // A student's page, as linked from the class page, renders like any other.
    let iterative = pages
        .iter()
        .find(|l| l.href.contains("iterative"))
        .expect("the iterative server's page");
    let student = out.path().join(&iterative.href);
    let report: serde_json::Value = serde_json::to_value(
        serde_saphyr::from_str::<echograde::report::Report>(
            &std::fs::read_to_string(student.with_extension("yaml")).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let shown = open_page(&student, &["svg.timeline", LANES]);
    assert!(
        shown.console_errors.is_empty(),
        "{:#?}",
        shown.console_errors
    );
    // The YAML leaves the timelines out; the page was drawn from the full report, so it has
    // one drawing per check.
    let drawn = shown
        .elements
        .iter()
        .filter(|e| e.selector == "svg.timeline" && e.width > 300.0)
        .count();
    assert_eq!(drawn, report["checks"].as_array().unwrap().len());
}
