//! The student page: one self-contained HTML file with every check's verdict, feedback and
//! evidence, and each check's timeline drawn as inline SVG.
//!
//! A student understands "client B waited 2 s and was answered the instant A left" best when
//! they see it. The page is made for being handed out and opened anywhere: one file, inline
//! CSS and SVG, no script and no network (a Content-Security-Policy in the page forbids both,
//! so even a mistake in escaping could not run anything), readable with JavaScript off.
//!
//! Everything the server controls reaches the page: its output, its bytes quoted in feedback,
//! its command line, strings in evidence. All text goes through [`esc`], which escapes the five
//! HTML metacharacters and shows control characters as `\u{..}`; nothing is ever inserted raw.

use super::{CheckReport, Report, RunStatus, Status};
use crate::timeline::{ActionKind, EventKind, Sample, Timeline};
use std::fmt::Write;

/// The student page of a report.
pub fn student_page(report: &Report) -> String {
    let mut h = String::with_capacity(64 << 10);
    let title = format!(
        "echograde: {} / {} ({})",
        num(report.score),
        num(report.max_score),
        report.rubric
    );
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    header(&mut h, report);
    summary(&mut h, report);
    h.push_str("<main>\n");
    for e in report.entries() {
        check(&mut h, e.check, &e.qualified_id());
    }
    h.push_str("</main>\n");
    let _ = writeln!(
        h,
        "<footer>echograde {} · seed {} (rerun with <code>--seed {}</code> for the same payloads)</footer>\n</body>\n</html>",
        esc(&report.echograde),
        report.seed,
        report.seed
    );
    h
}

const CSS: &str = "
:root{--pass:#1a7f37;--fail:#cf222e;--error:#9a6700;--skip:#6e7781;--ink:#1f2328;--soft:#656d76;--line:#d0d7de}
body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--ink);max-width:1000px;margin:0 auto;padding:1em 1.5em 3em}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.1em;margin:0 0 .4em}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}
pre{background:#f6f8fa;border:1px solid var(--line);border-radius:6px;padding:.6em;overflow-x:auto;white-space:pre-wrap;word-break:break-all;max-height:28em}
.total{font-size:1.3em;margin:.2em 0}
dl.run{display:grid;grid-template-columns:max-content 1fr;gap:.1em 1em;margin:.6em 0;color:var(--soft)}
dl.run dt{font-weight:600}dl.run dd{margin:0;word-break:break-all}
table.summary{border-collapse:collapse;width:100%;margin:1em 0}
table.summary td,table.summary th{border-bottom:1px solid var(--line);padding:.25em .5em;text-align:left}
table.summary td.score{text-align:right;white-space:nowrap}
.badge{display:inline-block;min-width:3.6em;text-align:center;border-radius:4px;color:#fff;font-size:.8em;font-weight:700;padding:0 .4em}
.pass .badge,.badge.pass{background:var(--pass)}.fail .badge,.badge.fail{background:var(--fail)}
.error .badge,.badge.error{background:var(--error)}.skipped .badge,.badge.skipped{background:var(--skip)}
section.check{border:1px solid var(--line);border-left:6px solid var(--skip);border-radius:6px;padding:.8em 1em;margin:1.2em 0}
section.pass{border-left-color:var(--pass)}section.fail{border-left-color:var(--fail)}section.error{border-left-color:var(--error)}
h2 .score{float:right;font-weight:600}
.feedback{white-space:pre-wrap}
figure{margin:.6em 0}figcaption{color:var(--soft);font-size:.85em}
svg.timeline,svg.legend{width:100%;height:auto;display:block;background:#fff}
svg text{font-family:system-ui,sans-serif;font-size:11px;fill:var(--ink)}
svg .axis{stroke:var(--line)}svg .soft{fill:var(--soft)}
.grader-error{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:.5em .8em}
footer{color:var(--soft);font-size:.85em;margin-top:2em}
details summary{cursor:pointer;color:var(--soft)}
";

fn header(h: &mut String, r: &Report) {
    let _ = write!(
        h,
        "<header>\n<h1>Echo server report</h1>\n<p class=\"total\">Score <b>{} / {}</b></p>\n<dl class=\"run\">\
         <dt>Rubric</dt><dd>{}</dd>",
        num(r.score),
        num(r.max_score),
        esc(&r.rubric),
    );
    for part in &r.parts {
        let named = part
            .name
            .as_deref()
            .map(|n| format!(" of <code>{}</code>", esc(n)))
            .unwrap_or_default();
        let _ = write!(
            h,
            "<dt>Server model{named}</dt><dd>{}</dd><dt>Command{named}</dt><dd><code>{}</code></dd>",
            part.server.model.as_str(),
            esc(&part.server.command.join(" ")),
        );
    }
    if let Some(b) = &r.build {
        let _ = write!(
            h,
            "<dt>Build</dt><dd>{} <code>{}</code>: {}</dd>",
            status_word(b.status),
            esc(&b.command.join(" ")),
            esc(&b.exit),
        );
    }
    let _ = writeln!(h, "<dt>Graded in</dt><dd>{:.1} s</dd></dl>", r.duration_s);
    if r.status == RunStatus::Error || r.error.is_some() {
        let _ = writeln!(
            h,
            "<p class=\"grader-error\"><b>The grader itself had a problem:</b> {}</p>",
            esc(r.error.as_deref().unwrap_or("unknown"))
        );
    }
    h.push_str(LEGEND);
    h.push_str("</header>\n");
}

/// What the marks on a timeline mean, drawn with the same marks.
const LEGEND: &str = "<details><summary>How to read a timeline</summary>
<svg class=\"legend\" viewBox=\"0 0 900 50\" role=\"img\" aria-label=\"legend\" xmlns=\"http://www.w3.org/2000/svg\">
<line x1=\"10\" y1=\"14\" x2=\"60\" y2=\"14\" stroke=\"#57606a\" stroke-width=\"2\"/><text x=\"66\" y=\"18\">connected</text>
<rect x=\"150\" y=\"9\" width=\"50\" height=\"10\" fill=\"#fb8c00\" opacity=\".85\"/><text x=\"206\" y=\"18\">waiting for its echo</text>
<path d=\"M340 13 l4 -7 l4 7 z\" fill=\"#0969da\"/><text x=\"354\" y=\"18\">sent</text>
<path d=\"M400 15 l4 7 l4 -7 z\" fill=\"#1a7f37\"/><text x=\"414\" y=\"18\">received</text>
<rect x=\"480\" y=\"6\" width=\"3\" height=\"16\" fill=\"#1f2328\"/><text x=\"488\" y=\"18\">client closed</text>
<rect x=\"580\" y=\"6\" width=\"3\" height=\"16\" fill=\"#8250df\"/><text x=\"588\" y=\"18\">server closed</text>
<path d=\"M690 8 l10 12 M700 8 l-10 12\" stroke=\"#cf222e\" stroke-width=\"2.5\"/><text x=\"706\" y=\"18\">reset / failed / gave up</text>
<line x1=\"10\" y1=\"38\" x2=\"40\" y2=\"38\" stroke=\"#0969da\" stroke-width=\"2\"/><text x=\"46\" y=\"42\">server processes</text>
<line x1=\"170\" y1=\"38\" x2=\"200\" y2=\"38\" stroke=\"#8c959f\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/><text x=\"206\" y=\"42\">threads</text>
<line x1=\"280\" y1=\"38\" x2=\"310\" y2=\"38\" stroke=\"#cf222e\" stroke-width=\"2\"/><text x=\"316\" y=\"42\">zombies (exited, not reaped)</text>
<line x1=\"520\" y1=\"30\" x2=\"520\" y2=\"46\" stroke=\"#9a6700\" stroke-dasharray=\"3 2\"/><text x=\"526\" y=\"42\">what the grader did (start, SIGSTOP, SIGCONT, teardown)</text>
</svg></details>
";

fn summary(h: &mut String, r: &Report) {
    h.push_str("<nav><table class=\"summary\">\n<thead><tr><th>Verdict</th><th>Check</th><th>What it asks</th><th>Score</th></tr></thead>\n<tbody>\n");
    for e in r.entries() {
        let (c, id) = (e.check, e.qualified_id());
        let _ = writeln!(
            h,
            "<tr class=\"{}\"><td><span class=\"badge\">{}</span></td><td><a href=\"#{}\"><code>{}</code></a></td><td>{}</td><td class=\"score\">{} / {}</td></tr>",
            status_class(c.status),
            status_word(c.status),
            anchor(&id),
            esc(&id),
            esc(&c.title),
            num(c.score),
            num(c.max_score)
        );
    }
    h.push_str("</tbody>\n</table></nav>\n");
}

fn check(h: &mut String, c: &CheckReport, id: &str) {
    let _ = write!(
        h,
        "<section class=\"check {}\" id=\"{}\">\n<h2><span class=\"badge\">{}</span> <code>{}</code> {} <span class=\"score\">{} / {}</span></h2>\n<p class=\"feedback\">{}</p>\n",
        status_class(c.status),
        anchor(id),
        status_word(c.status),
        esc(id),
        esc(&c.title),
        num(c.score),
        num(c.max_score),
        with_code(&c.feedback)
    );
    if let Some(t) = &c.timeline {
        timeline(h, t, id);
    }
    let evidence = serde_json::to_string_pretty(&c.evidence).unwrap_or_default();
    let _ = writeln!(
        h,
        "<details><summary>Evidence (the numbers the verdict rests on)</summary><pre>{}</pre></details>",
        esc(&evidence)
    );
    if let Some(o) = &c.server_output {
        for (name, text) in [("stdout", &o.stdout_tail), ("stderr", &o.stderr_tail)] {
            if !text.is_empty() {
                let _ = writeln!(
                    h,
                    "<details><summary>The server's {name} (its last lines)</summary><pre>{}</pre></details>",
                    esc(text)
                );
            }
        }
    }
    let _ = writeln!(
        h,
        "<p class=\"soft\"><small>{:.2} s{}</small></p>\n</section>",
        c.duration_s,
        c.bound_s
            .map(|b| format!(" (bound {b:.1} s)"))
            .unwrap_or_default()
    );
}

// Geometry of a timeline drawing (SVG user units; the drawing scales to the page's width).
const W: f64 = 900.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 880.0;
const AXIS_H: f64 = 22.0;
const ACTIONS_H: f64 = 16.0;
const LANE_H: f64 = 18.0;
const CHART_H: f64 = 70.0;

fn timeline(h: &mut String, t: &Timeline, id: &str) {
    let dur = t.duration_ms.max(1.0);
    // The drawing starts a little before the first thing recorded (the server's start, as a
    // rule): the time before it is the check's own preparation, and would squeeze a check of
    // 100 ms into a corner. Times stay those since the check started.
    let first = t
        .actions
        .iter()
        .map(|a| a.t_ms)
        .chain(
            t.lanes
                .iter()
                .filter_map(|l| l.events.first().map(|e| e.t_ms)),
        )
        .chain(t.samples.first().map(|s| s.t_ms))
        .fold(dur, f64::min);
    let lo = (first - (dur - first) * 0.03).max(0.0);
    let span = (dur - lo).max(1.0);
    let x = |ms: f64| LEFT + ((ms.clamp(lo, dur) - lo) / span) * (RIGHT - LEFT);
    let more = t.clients_not_drawn > 0;
    let lanes_top = AXIS_H + ACTIONS_H;
    let lanes_h = t.lanes.len() as f64 * LANE_H + if more { LANE_H } else { 0.0 };
    let chart_top = lanes_top + lanes_h + 10.0;
    let has_chart = !t.samples.is_empty();
    let height = chart_top + if has_chart { CHART_H + 16.0 } else { 0.0 };
    let _ = write!(
        h,
        "<figure>\n<svg class=\"timeline\" viewBox=\"0 0 {W} {height:.0}\" role=\"img\" aria-label=\"timeline of {}\" xmlns=\"http://www.w3.org/2000/svg\">\n",
        esc(id)
    );
    axis(h, lo, dur, span, height, &x);
    actions(h, t, height, &x);
    lanes(h, t, lanes_top, dur, &x);
    if has_chart {
        process_chart(h, t, chart_top, &x);
    }
    h.push_str("</svg>\n");
    let _ = writeln!(h, "<figcaption>{}</figcaption>\n</figure>", caption(t));
}

/// The time axis: a tick line through the drawing and its time, every `tick_step`.
fn axis(h: &mut String, lo: f64, dur: f64, span: f64, height: f64, x: &dyn Fn(f64) -> f64) {
    let step = tick_step(span);
    let mut tick = (lo / step).ceil() * step;
    while tick <= dur + 0.5 {
        let _ = writeln!(
            h,
            "<line class=\"axis\" x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{2:.0}\"/><text x=\"{0:.1}\" y=\"12\" text-anchor=\"middle\" class=\"soft\">{3}</text>",
            x(tick),
            AXIS_H - 6.0,
            height - 4.0,
            secs(tick)
        );
        tick += step;
    }
}

/// The grader's actions: a line through every row, a word at the top (left out where it
/// would run into the previous one; the line's tooltip still says it).
fn actions(h: &mut String, t: &Timeline, height: f64, x: &dyn Fn(f64) -> f64) {
    let mut words_end = f64::MIN;
    for a in &t.actions {
        let (color, word) = match a.kind {
            ActionKind::Start => ("#9a6700", "start"),
            ActionKind::Pause => ("#cf222e", "SIGSTOP"),
            ActionKind::Resume => ("#1a7f37", "SIGCONT"),
            ActionKind::Teardown => ("#6e7781", "teardown"),
            ActionKind::Other => ("#9a6700", "grader"),
        };
        let ax = x(a.t_ms);
        // Words near the right edge end at their line rather than run off the drawing.
        let (tx, anchor) = if ax > RIGHT - 60.0 {
            (ax - 2.0, "end")
        } else {
            (ax + 2.0, "start")
        };
        let width = 6.5 * word.len() as f64;
        let (left, right) = if anchor == "end" {
            (tx - width, tx)
        } else {
            (tx, tx + width)
        };
        let word = if left < words_end + 4.0 {
            ""
        } else {
            words_end = right;
            word
        };
        let _ = writeln!(
            h,
            "<g><title>{} ms: {}</title><line x1=\"{ax:.1}\" y1=\"{}\" x2=\"{ax:.1}\" y2=\"{:.0}\" stroke=\"{color}\" stroke-dasharray=\"3 2\"/><text x=\"{tx:.1}\" y=\"{}\" text-anchor=\"{anchor}\" style=\"fill:{color}\">{word}</text></g>",
            num(a.t_ms),
            esc(&a.what),
            AXIS_H,
            height - 4.0,
            AXIS_H + 11.0
        );
    }
}

/// A lane per client, and a line counting the clients left undrawn.
fn lanes(h: &mut String, t: &Timeline, lanes_top: f64, dur: f64, x: &dyn Fn(f64) -> f64) {
    let more = t.clients_not_drawn > 0;
    for (i, lane) in t.lanes.iter().enumerate() {
        let y = lanes_top + i as f64 * LANE_H + LANE_H / 2.0;
        let mut label = lane.client.clone();
        if label.chars().count() > 12 {
            label = label.chars().take(11).collect::<String>() + "…";
        }
        let _ = writeln!(
            h,
            "<g class=\"lane\" data-client=\"{}\"><text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            esc(&lane.client),
            LEFT - 6.0,
            y + 4.0,
            esc(&label)
        );
        lane_marks(h, lane, dur, y, x);
        h.push_str("</g>\n");
    }
    if more {
        let y = lanes_top + t.lanes.len() as f64 * LANE_H + LANE_H / 2.0 + 4.0;
        let _ = writeln!(
            h,
            "<text x=\"{LEFT}\" y=\"{y:.1}\" class=\"soft\">…and {} more client(s): counted, not drawn (the first {} get a lane)</text>",
            t.clients_not_drawn, t.max_lanes
        );
    }
}

/// The marks of one client's lane.
fn lane_marks(
    h: &mut String,
    lane: &crate::timeline::Lane,
    dur: f64,
    y: f64,
    x: &dyn Fn(f64) -> f64,
) {
    let ev = &lane.events;
    let start = ev.first().map_or(0.0, |e| e.t_ms);
    let end_ev = ev.iter().find(|e| {
        matches!(
            e.kind,
            EventKind::Close
                | EventKind::Reset
                | EventKind::ClosedByServer
                | EventKind::ResetByServer
                | EventKind::Stalled
                | EventKind::ConnectFailed
                | EventKind::Error
        )
    });
    let end = end_ev.map_or(dur, |e| e.t_ms);
    let connected = ev
        .iter()
        .find(|e| e.kind == EventKind::Connected)
        .map(|e| e.t_ms);
    // Connecting (thin), then connected (thick) until the end.
    let _ = write!(
        h,
        "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#d0d7de\" stroke-width=\"1\"/>",
        x(start),
        x(end)
    );
    if let Some(c) = connected {
        let _ = write!(
            h,
            "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#57606a\" stroke-width=\"2\"/>",
            x(c),
            x(end)
        );
    }
    // Waiting spans: from `waiting` to `answered`, or to the lane's end.
    let mut since: Option<f64> = None;
    for e in ev {
        match e.kind {
            EventKind::Waiting => since = Some(e.t_ms),
            EventKind::Answered => {
                if let Some(s) = since.take() {
                    wait_bar(h, s, e.t_ms, y, x, "answered");
                }
            }
            _ => {}
        }
    }
    if let Some(s) = since {
        wait_bar(h, s, end, y, x, "never answered");
    }
    for e in ev {
        if let Some(mark) = event_mark(e.kind, x(e.t_ms), y) {
            let tip = format!(
                "{} {} ms: {}{}",
                lane.client,
                num(e.t_ms),
                kind_word(e.kind),
                e.bytes.map(|b| format!(" ({b} bytes)")).unwrap_or_default()
            );
            let _ = write!(h, "<g><title>{}</title>{mark}</g>", esc(&tip));
        }
    }
    if end_ev.is_none() {
        let _ = write!(
            h,
            "<g><title>{}: still connected when the check ended</title><path d=\"M{:.1} {:.1} l6 4.5 l-6 4.5 z\" fill=\"#57606a\"/></g>",
            esc(&lane.client),
            x(end) - 6.0,
            y - 4.5
        );
    }
    h.push('\n');
}

/// The mark an event leaves on its lane at `ex` (none for the ones the lines already show).
fn event_mark(kind: EventKind, ex: f64, y: f64) -> Option<String> {
    Some(match kind {
        EventKind::Sent => format!("<path d=\"M{:.1} {:.1} l3.5 -6 l3.5 6 z\" fill=\"#0969da\"/>", ex - 3.5, y - 1.5),
        EventKind::Received => format!("<path d=\"M{:.1} {:.1} l3.5 6 l3.5 -6 z\" fill=\"#1a7f37\"/>", ex - 3.5, y + 1.5),
        EventKind::Close => format!("<rect class=\"close\" x=\"{:.1}\" y=\"{:.1}\" width=\"3\" height=\"14\" fill=\"#1f2328\"/>", ex - 1.5, y - 7.0),
        EventKind::ClosedByServer => format!("<rect class=\"closed-by-server\" x=\"{:.1}\" y=\"{:.1}\" width=\"3\" height=\"14\" fill=\"#8250df\"/>", ex - 1.5, y - 7.0),
        EventKind::Reset | EventKind::ResetByServer | EventKind::ConnectFailed | EventKind::Error | EventKind::Stalled => format!(
            "<path d=\"M{0:.1} {1:.1} l9 10 M{2:.1} {1:.1} l-9 10\" stroke=\"#cf222e\" stroke-width=\"2.5\"/>",
            ex - 4.5,
            y - 5.0,
            ex + 4.5
        ),
        EventKind::Connect | EventKind::Connected | EventKind::Waiting | EventKind::Answered => return None,
    })
}

fn wait_bar(h: &mut String, from: f64, to: f64, y: f64, x: &dyn Fn(f64) -> f64, how: &str) {
    let _ = write!(
        h,
        "<g><title>waited {} ms for its echo ({how})</title><rect class=\"wait\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"10\" fill=\"#fb8c00\" opacity=\".85\"/></g>",
        num(to - from),
        x(from),
        y - 5.0,
        (x(to) - x(from)).max(1.0)
    );
}

/// The server's processes, threads and zombies over the check, as step lines.
fn process_chart(h: &mut String, t: &Timeline, top: f64, x: &dyn Fn(f64) -> f64) {
    let max = t
        .samples
        .iter()
        .map(|s| s.processes.max(s.threads).max(s.zombies))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let y = |v: u32| top + CHART_H - (v as f64 / max) * (CHART_H - 6.0);
    let _ = writeln!(
        h,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{RIGHT}\" y2=\"{0:.1}\"/><text x=\"{1:.0}\" y=\"{2:.1}\" text-anchor=\"end\">server</text><text x=\"{1:.0}\" y=\"{3:.1}\" text-anchor=\"end\" class=\"soft\">max {4}</text>",
        top + CHART_H,
        LEFT - 6.0,
        top + CHART_H / 2.0,
        top + CHART_H / 2.0 + 13.0,
        max as u32
    );
    type Series = (&'static str, &'static str, &'static str, fn(&Sample) -> u32);
    let series: [Series; 3] = [
        (
            "threads",
            "#8c959f",
            "stroke-width=\"1.5\" stroke-dasharray=\"4 3\"",
            |s| s.threads,
        ),
        ("processes", "#0969da", "stroke-width=\"2\"", |s| {
            s.processes
        }),
        ("zombies", "#cf222e", "stroke-width=\"2\"", |s| s.zombies),
    ];
    for (name, color, style, get) in series {
        let peak = t.samples.iter().map(get).max().unwrap_or(0);
        // Threads only where they differ from processes, zombies only when there were any.
        let shown = match name {
            "threads" => t.samples.iter().any(|s| s.threads != s.processes),
            "zombies" => peak > 0,
            _ => true,
        };
        if !shown {
            continue;
        }
        let mut d = String::new();
        let mut prev: Option<u32> = None;
        for s in &t.samples {
            let v = get(s);
            match prev {
                None => {
                    let _ = write!(d, "M{:.1} {:.1}", x(s.t_ms), y(v));
                }
                Some(p) => {
                    let _ = write!(d, " H{:.1}", x(s.t_ms));
                    if p != v {
                        let _ = write!(d, " V{:.1}", y(v));
                    }
                }
            }
            prev = Some(v);
        }
        let _ = writeln!(
            h,
            "<g><title>{name}: at most {peak}</title><path class=\"{name}\" d=\"{d}\" fill=\"none\" stroke=\"{color}\" {style}/></g>"
        );
    }
}

/// The timeline in words (for a reader without the picture).
fn caption(t: &Timeline) -> String {
    let waited: Vec<String> = t
        .lanes
        .iter()
        .filter_map(|l| {
            let w = l.events.iter().find(|e| e.kind == EventKind::Waiting)?;
            let a = l
                .events
                .iter()
                .find(|e| e.kind == EventKind::Answered && e.t_ms >= w.t_ms);
            let longest = match a {
                Some(a) => a.t_ms - w.t_ms,
                None => return Some(format!("{} was never answered", esc(&l.client))),
            };
            (longest >= 100.0)
                .then(|| format!("{} waited {} ms", esc(&l.client), num(longest.round())))
        })
        .take(6)
        .collect();
    let peak = |f: fn(&Sample) -> u32| t.samples.iter().map(f).max().unwrap_or(0);
    let mut s = format!(
        "{:.2} s, {} client(s){}",
        t.duration_ms / 1000.0,
        t.clients,
        if t.clients_not_drawn > 0 {
            format!(" ({} not drawn)", t.clients_not_drawn)
        } else {
            String::new()
        }
    );
    if !t.samples.is_empty() {
        let _ = write!(
            s,
            "; the server had at most {} process(es), {} thread(s), {} zombie(s) (read every {} ms or less)",
            peak(|x| x.processes),
            peak(|x| x.threads),
            peak(|x| x.zombies),
            t.sample_every_ms
        );
    }
    if !waited.is_empty() {
        let _ = write!(s, "; {}", waited.join(", "));
    }
    let acts: Vec<String> = t
        .actions
        .iter()
        .filter(|a| a.kind != ActionKind::Start && a.kind != ActionKind::Teardown)
        .map(|a| format!("{} at {} ms", esc(&a.what), num(a.t_ms.round())))
        .collect();
    if !acts.is_empty() {
        let _ = write!(s, "; the grader sent {}", acts.join(", "));
    }
    s.push('.');
    s
}

fn kind_word(k: EventKind) -> &'static str {
    match k {
        EventKind::Connect => "connect",
        EventKind::Connected => "connected",
        EventKind::ConnectFailed => "connect failed",
        EventKind::Sent => "sent",
        EventKind::Received => "received",
        EventKind::Waiting => "waiting for the echo",
        EventKind::Answered => "answered",
        EventKind::Close => "client closed",
        EventKind::Reset => "client reset the connection",
        EventKind::ClosedByServer => "server closed the connection",
        EventKind::ResetByServer => "server reset the connection",
        EventKind::Stalled => "client gave up waiting",
        EventKind::Error => "socket error",
    }
}

/// A round step for the time axis: at most about ten ticks.
fn tick_step(dur_ms: f64) -> f64 {
    [
        1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0,
        10000.0, 20000.0, 30000.0, 60000.0,
    ]
    .into_iter()
    .find(|s| dur_ms / s <= 10.0)
    .unwrap_or(120000.0)
}

fn secs(ms: f64) -> String {
    if ms == 0.0 {
        "0".into()
    } else if ms < 1000.0 {
        format!("{} ms", num(ms))
    } else {
        format!("{} s", num(ms / 1000.0))
    }
}

fn status_class(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Error => "error",
        Status::Skipped => "skipped",
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Error => "ERROR",
        Status::Skipped => "SKIP",
    }
}

fn num(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// An element id (and fragment) for a check: its id with anything but `[A-Za-z0-9._-]` as `_`.
fn anchor(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("check-{safe}")
}

/// Feedback with its `code spans` shown as code; everything escaped.
fn with_code(text: &str) -> String {
    let parts: Vec<&str> = text.split('`').collect();
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        // A lone backtick at the end (an odd count) stays a backtick.
        if i % 2 == 1 && i + 1 < parts.len() {
            let _ = write!(out, "<code>{}</code>", esc(p));
        } else {
            if i % 2 == 1 {
                out.push('`');
            }
            out.push_str(&esc(p));
        }
    }
    out
}

/// Escape text for HTML (element content and quoted attribute values alike): the five
/// metacharacters as entities, control characters other than newline and tab as `\u{..}`.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\"\u{1b}[2J"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;\\u{1b}[2J"
        );
    }

    #[test]
    fn code_spans_are_escaped_too() {
        assert_eq!(
            with_code("run `a<b` then `x"),
            "run <code>a&lt;b</code> then `x"
        );
    }

    /// A report with one check and a hand-made timeline (hostile text in every field).
    fn report_with(t: Timeline) -> Report {
        let mut r = Report::grader_failed("<b id=boom>boom</b>");
        r.parts.push(crate::report::PartReport {
            name: Some("<em>part</em>".into()),
            binary: None,
            rubric: "echo".into(),
            server: crate::report::ServerInfo {
                command: vec!["./server".into(), "<{port}>".into()],
                model: crate::report::Model::Unknown,
                model_evidence: serde_json::json!({}),
                containment: serde_json::json!({}),
            },
            score: 0.0,
            max_score: 1.0,
            checks: Vec::new(),
            error: None,
        });
        r.parts[0].checks.push(CheckReport {
            id: "x:<i>".into(),
            title: "T".into(),
            status: Status::Fail,
            score: 0.0,
            max_score: 1.0,
            duration_s: 1.0,
            bound_s: None,
            feedback: "got `</code><script>`".into(),
            evidence: serde_json::json!({ "line": "</pre><script>" }),
            server_output: None,
            timeline: Some(t),
        });
        r
    }

    #[test]
    fn a_timeline_is_drawn_and_says_what_it_left_out() {
        use crate::timeline::{Action, Event, Lane, Sample};
        let ev = |t_ms, kind| Event {
            t_ms,
            kind,
            bytes: None,
        };
        let t = Timeline {
            duration_ms: 1000.0,
            lanes: vec![Lane {
                client: "<svg onload=x>".into(),
                events: vec![
                    ev(10.0, EventKind::Connect),
                    ev(11.0, EventKind::Connected),
                    ev(12.0, EventKind::Waiting),
                    ev(900.0, EventKind::Answered),
                    ev(901.0, EventKind::Close),
                ],
            }],
            clients: 30,
            clients_not_drawn: 29,
            max_lanes: 24,
            samples: vec![
                Sample {
                    t_ms: 5.0,
                    processes: 1,
                    threads: 1,
                    zombies: 0,
                },
                Sample {
                    t_ms: 500.0,
                    processes: 1,
                    threads: 1,
                    zombies: 3,
                },
            ],
            sample_every_ms: 50,
            actions: vec![Action {
                t_ms: 400.0,
                kind: ActionKind::Pause,
                what: "SIGSTOP <pid>".into(),
            }],
            ..Timeline::default()
        };
        let page = student_page(&report_with(t));
        assert!(page.contains("<svg class=\"timeline\""));
        assert!(page.contains("29 more client(s): counted, not drawn"));
        assert!(page.contains("class=\"wait\""));
        assert!(page.contains("class=\"zombies\""));
        assert!(page.contains("SIGSTOP &lt;pid&gt;"));
        assert!(
            page.contains("&lt;b id=boom&gt;boom&lt;/b&gt;"),
            "the grader's error is shown"
        );
        let lower = page.to_ascii_lowercase();
        for bad in ["<script", "<svg onload", "<b id=boom", "<i>"] {
            assert!(!lower.contains(bad), "{bad} unescaped");
        }
    }

    #[test]
    fn ticks_stay_few() {
        for d in [1.0, 37.0, 999.0, 2070.0, 31_000.0, 600_000.0] {
            let n = d / tick_step(d);
            assert!(n <= 10.0, "{d}: {n} ticks");
        }
    }
}
