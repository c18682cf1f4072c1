//! `index.html`: the class at a glance for the TA. A score histogram (inline SVG), the pass
//! rate of every check with those most of the class fails flagged, the models seen, the
//! grading time, and a table of every submission linking its page.
//!
//! One self-contained file: inline CSS and SVG, a Content-Security-Policy that allows no
//! network at all, readable without JavaScript (the table is already in name order; a small
//! inline script only adds sorting by a click on a column header). Every name is escaped.

use super::outputs::{h, ClassSummary, FLAG_BELOW};
use crate::report::RunStatus;
use std::fmt::Write;

/// Render the index page.
pub fn render(s: &ClassSummary) -> String {
    let mut out = String::with_capacity(4096 + 512 * s.submissions.len());
    let n = s.submissions.len();
    let full = s
        .submissions
        .iter()
        .filter(|r| r.max_score > 0.0 && r.score >= r.max_score)
        .count();
    let mut pct: Vec<f64> = s
        .submissions
        .iter()
        .map(|r| percent(r.score, r.max_score))
        .collect();
    pct.sort_by(f64::total_cmp);
    let median = if pct.is_empty() {
        0.0
    } else {
        pct[pct.len() / 2]
    };
    let models: Vec<String> = s
        .models
        .iter()
        .map(|(m, k)| format!("{} × {k}", h(m)))
        .collect();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>echograde class report ({n} submissions)</title>\n<style>\n{CSS}</style>\n\
         </head>\n<body>\n<h1>Class report: {n} submissions</h1>\n\
         <p>median {median:.0}% · full marks {full} of {n} · models seen: {models} · \
         grading time {time} (sum of gradings) · echograde {ver}</p>\n",
        models = if models.is_empty() {
            "none".into()
        } else {
            models.join(", ")
        },
        time = duration(s.grading_time_s),
        ver = h(&s.echograde),
    );
    out.push_str("<h2>Scores</h2>\n");
    histogram(&mut out, &s.histogram);
    checks_table(&mut out, s);
    students_table(&mut out, s);
    out.push_str(SCRIPT);
    out.push_str("</body>\n</html>\n");
    out
}

fn percent(score: f64, max: f64) -> f64 {
    if max > 0.0 {
        100.0 * score / max
    } else {
        0.0
    }
}

fn duration(s: f64) -> String {
    if s >= 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.1} s")
    }
}

/// Ten bars, one per tenth of the maximum score, with their counts.
fn histogram(out: &mut String, bins: &[usize]) {
    let (w, hgt, pad) = (640.0, 220.0, 30.0);
    let top = bins.iter().copied().max().unwrap_or(0).max(1) as f64;
    let bw = (w - 2.0 * pad) / bins.len().max(1) as f64;
    let _ = write!(
        out,
        "<svg id=\"histogram\" class=\"histogram\" role=\"img\" width=\"{w}\" height=\"{hgt}\" \
         viewBox=\"0 0 {w} {hgt}\" xmlns=\"http://www.w3.org/2000/svg\">\n\
         <title>Score histogram: submissions per tenth of the maximum score</title>\n\
         <line x1=\"{pad}\" y1=\"{base}\" x2=\"{right}\" y2=\"{base}\" stroke=\"#555\"/>\n",
        base = hgt - pad,
        right = w - pad,
    );
    for (i, &count) in bins.iter().enumerate() {
        let bh = (hgt - 2.5 * pad) * count as f64 / top;
        let x = pad + i as f64 * bw;
        let y = hgt - pad - bh;
        let label = if i + 1 == bins.len() {
            format!("{}–100%", i * 10)
        } else {
            format!("{}–{}%", i * 10, i * 10 + 10)
        };
        let _ = writeln!(
            out,
            "<g><title>{label}: {count}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw2:.1}\" \
             height=\"{bh:.1}\" fill=\"#4c78a8\"/>\
             <text x=\"{cx:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\">{count}</text>\
             <text x=\"{cx:.1}\" y=\"{ly:.1}\" text-anchor=\"middle\" class=\"axis\">{lo}</text></g>",
            bw2 = bw - 4.0,
            cx = x + bw / 2.0 - 2.0,
            ty = y - 4.0,
            ly = hgt - pad + 14.0,
            lo = i * 10,
        );
    }
    out.push_str("</svg>\n");
}

fn checks_table(out: &mut String, s: &ClassSummary) {
    let flagged = s.checks.iter().filter(|c| c.flagged).count();
    let _ = write!(
        out,
        "<h2>Checks</h2>\n<p>{flagged} check(s) flagged: fewer than {:.0}% of the submissions \
         graded on them pass. When most of a class fails a check, look at the check (and the \
         handout) before the students.</p>\n<table id=\"checks\">\n<thead><tr><th>check</th>\
         <th>title</th><th>points</th><th>pass rate</th><th>passed / graded</th><th>flag</th>\
         </tr></thead>\n<tbody>\n",
        FLAG_BELOW * 100.0
    );
    for c in &s.checks {
        let rate = c.pass_rate.map(|p| p * 100.0);
        let _ = writeln!(
            out,
            "<tr{cls}><td><code>{id}</code></td><td>{title}</td><td class=\"num\">{max}</td>\
             <td><span class=\"bar\"><span style=\"width:{w:.0}%\"></span></span> {rate}</td>\
             <td class=\"num\">{p} / {g}</td><td>{flag}</td></tr>",
            cls = if c.flagged { " class=\"flagged\"" } else { "" },
            id = h(&c.id),
            title = h(&c.title),
            max = c.max_score,
            w = rate.unwrap_or(0.0),
            rate = rate.map_or("–".into(), |r| format!("{r:.0}%")),
            p = c.passed,
            g = c.graded,
            flag = if c.flagged {
                "⚑ most of the class fails"
            } else {
                ""
            },
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn students_table(out: &mut String, s: &ClassSummary) {
    out.push_str(
        "<h2>Submissions</h2>\n<table id=\"students\" class=\"sortable\">\n<thead><tr>\
         <th data-type=\"text\">name</th><th data-type=\"num\">score</th>\
         <th data-type=\"num\">%</th><th data-type=\"text\">model</th>\
         <th data-type=\"num\">time (s)</th><th data-type=\"text\">status</th>\
         <th data-type=\"text\">report</th></tr></thead>\n<tbody>\n",
    );
    for r in &s.submissions {
        let p = percent(r.score, r.max_score);
        let _ = writeln!(
            out,
            "<tr><td data-v=\"{name}\"><a href=\"{page}\">{name}</a></td>\
             <td class=\"num\" data-v=\"{score}\">{score} / {max}</td>\
             <td class=\"num\" data-v=\"{p:.2}\">{p:.0}</td><td>{model}</td>\
             <td class=\"num\" data-v=\"{d}\">{d:.1}</td><td>{status}</td>\
             <td><a href=\"{yaml}\">YAML</a></td></tr>",
            name = h(&r.name),
            page = h(&r.page),
            yaml = h(&r.report),
            score = r.score,
            max = r.max_score,
            model = h(&r.model),
            d = r.duration_s,
            status = match r.status {
                RunStatus::Graded => "graded",
                RunStatus::Error => "error",
            },
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

const CSS: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%;margin-bottom:2em}th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left}
td.num{text-align:right;white-space:nowrap}tr.flagged{background:#fff4e5}
.bar{display:inline-block;width:8em;height:.7em;background:#eee;vertical-align:middle}.bar span{display:block;height:100%;background:#1a7f37}
svg.histogram text{font-size:12px;fill:#222}svg.histogram text.axis{fill:#666}
table.sortable th{cursor:pointer}
";

/// Sorting by a click on a header: an enhancement only (the page is whole without it).
const SCRIPT: &str = "<script>
document.querySelectorAll('table.sortable').forEach(function (t) {
  t.querySelectorAll('th').forEach(function (th, i) {
    var asc = true;
    th.addEventListener('click', function () {
      var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var num = th.getAttribute('data-type') === 'num';
      rows.sort(function (a, b) {
        var x = a.cells[i].getAttribute('data-v') || a.cells[i].textContent;
        var y = b.cells[i].getAttribute('data-v') || b.cells[i].textContent;
        var c = num ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
        return asc ? c : -c;
      });
      asc = !asc;
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
</script>
";
