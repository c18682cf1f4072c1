//! Opening a page in a real browser from a test: headless Chromium driven over the DevTools
//! protocol on a pipe (`--remote-debugging-pipe`).
//!
//! Why this way: the page is opened as shipped (nothing injected into it, its
//! Content-Security-Policy in force), Chromium's own layout gives the sizes, and its console
//! and log give the errors. The pipe needs no port, no WebSocket and no crate: the protocol is
//! JSON messages ended by a NUL byte on file descriptors 3 (to the browser) and 4 (from it),
//! read and written with `serde_json`. Nothing is downloaded: the browser is Debian's
//! `chromium` (`.ci/run` installs it), or `$ECHOGRADE_CHROMIUM`.
//!
//! [`open_page`] is the whole interface: a path and CSS selectors in, [`PageReport`] out
//! (console errors, each selected element's box, every link and whether it resolves).
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any one step in the browser may take (start, load, measure).
const STEP: Duration = Duration::from_secs(60);

/// An element's box, as laid out in a 1200-px-wide window.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The selector that found it.
    pub selector: String,
    pub tag: String,
    pub id: String,
    pub class: String,
    /// The `id` of the closest enclosing element that has one.
    pub within: String,
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

/// A link of the page.
#[derive(Debug, Clone)]
pub struct Link {
    /// As written in the page.
    pub href: String,
    /// As the browser resolved it.
    pub url: String,
    /// Whether its target exists: an element of this page for `#fragment`, a file for a
    /// file: URL (and its fragment, unchecked, in that file).
    pub resolves: bool,
}

/// What the browser saw.
#[derive(Debug, Clone)]
pub struct PageReport {
    /// Console errors, uncaught exceptions and browser log errors (a blocked load, a CSP
    /// violation), in words.
    pub console_errors: Vec<String>,
    pub elements: Vec<Measured>,
    pub links: Vec<Link>,
    pub title: String,
    /// `<script>` elements in the DOM.
    pub scripts: u64,
    /// Elements with an `on...` event handler attribute.
    pub handlers: u64,
    /// The page's text as rendered (`document.body.innerText`).
    pub text: String,
}

/// The browser to use: `$ECHOGRADE_CHROMIUM`, else `chromium` (Debian) or `chromium-browser`
/// on the PATH.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ECHOGRADE_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Open `page` (a file) in headless Chromium and report on it; `selectors` pick the elements
/// to measure (every match of each).
pub fn open_page(page: &Path, selectors: &[&str]) -> PageReport {
    let page = page.canonicalize().expect("the page exists");
    let mut b = Browser::start();
    let target = b.call(None, "Target.createTarget", json!({ "url": "about:blank" }));
    let target_id = target["targetId"].as_str().expect("targetId").to_string();
    let attached = b.call(
        None,
        "Target.attachToTarget",
        json!({ "targetId": target_id, "flatten": true }),
    );
    let session = attached["sessionId"]
        .as_str()
        .expect("sessionId")
        .to_string();
    let s = Some(session.as_str());
    for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
        b.call(s, domain, json!({}));
    }
    let url = format!("file://{}", page.display());
    let nav = b.call(s, "Page.navigate", json!({ "url": url }));
    assert!(nav.get("errorText").is_none(), "navigating to {url}: {nav}");
    b.wait_event(s, "Page.loadEventFired");
    let measured = b.call(
        s,
        "Runtime.evaluate",
        json!({
            "expression": format!("({MEASURE})({})", json!(selectors)),
            "returnByValue": true,
        }),
    );
    if let Some(e) = measured.get("exceptionDetails") {
        panic!("the measuring script failed: {e}");
    }
    let v = &measured["result"]["value"];
    let _ = b.send(None, "Browser.close", json!({}));
    let errors = b.finish();
    let elements = v["elements"]
        .as_array()
        .expect("elements")
        .iter()
        .map(|e| Measured {
            selector: e["selector"].as_str().unwrap_or("").into(),
            tag: e["tag"].as_str().unwrap_or("").into(),
            id: e["id"].as_str().unwrap_or("").into(),
            class: e["class"].as_str().unwrap_or("").into(),
            within: e["within"].as_str().unwrap_or("").into(),
            x: e["x"].as_f64().unwrap_or(0.0),
            y: e["y"].as_f64().unwrap_or(0.0),
            width: e["width"].as_f64().unwrap_or(0.0),
            height: e["height"].as_f64().unwrap_or(0.0),
        })
        .collect();
    let links = v["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|l| {
            let url = l["url"].as_str().unwrap_or("").to_string();
            let resolves = if l["same_page"].as_bool().unwrap_or(false) {
                l["fragment_found"].as_bool().unwrap_or(false)
            } else if let Some(path) = url.strip_prefix("file://") {
                let path = path.split(['#', '?']).next().unwrap_or("");
                Path::new(&percent_decode(path)).exists()
            } else {
                false
            };
            Link {
                href: l["href"].as_str().unwrap_or("").into(),
                url,
                resolves,
            }
        })
        .collect();
    PageReport {
        console_errors: errors,
        elements,
        links,
        title: v["title"].as_str().unwrap_or("").into(),
        scripts: v["scripts"].as_u64().unwrap_or(0),
        handlers: v["handlers"].as_u64().unwrap_or(0),
        text: v["text"].as_str().unwrap_or("").into(),
    }
}

/// Evaluated in the page by the DevTools protocol (not part of the page, and not subject to
/// its Content-Security-Policy).
const MEASURE: &str = r#"(selectors) => {
  const elements = [];
  for (const sel of selectors) {
    for (const e of document.querySelectorAll(sel)) {
      const r = e.getBoundingClientRect();
      const up = e.parentElement ? e.parentElement.closest('[id]') : null;
      elements.push({ selector: sel, tag: e.tagName.toLowerCase(), id: e.id || '',
        class: e.getAttribute('class') || '', within: up ? up.id : '',
        x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height });
    }
  }
  const here = location.href.split('#')[0];
  const links = [...document.querySelectorAll('a[href]')].map(a => {
    const same = a.href.split('#')[0] === here;
    const frag = decodeURIComponent(a.hash.slice(1));
    return { href: a.getAttribute('href'), url: a.href, same_page: same,
      fragment_found: same && frag !== '' && document.getElementById(frag) !== null };
  });
  let handlers = 0;
  for (const e of document.querySelectorAll('*')) {
    for (const at of e.attributes) { if (at.name.toLowerCase().startsWith('on')) handlers++; }
  }
  return { elements, links, title: document.title, scripts: document.scripts.length,
    handlers, text: document.body ? document.body.innerText : '' };
}"#;

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A headless Chromium and the two ends of its DevTools pipe.
struct Browser {
    child: std::process::Child,
    to: std::fs::File,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    /// Console and log errors seen so far.
    errors: Vec<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let exe = chromium().expect(
            "no Chromium: install Debian's `chromium` (apt-get install chromium; .ci/run does), \
             or set ECHOGRADE_CHROMIUM to a Chromium binary",
        );
        let profile = tempfile::tempdir().expect("a profile folder");
        let (to_read, to_write) = pipe();
        let (from_read, from_write) = pipe();
        let (r3, w4) = (to_read.as_raw_fd(), from_write.as_raw_fd());
        let mut cmd = std::process::Command::new(&exe);
        cmd.args([
            "--headless",
            // As root Chromium refuses to start with its sandbox; the page is our own file.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-sync",
            "--mute-audio",
            "--window-size=1200,900",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        // Its own process group: the browser's helpers (zygote, renderer) end with it.
        .process_group(0);
        // SAFETY: only dup2 and fcntl (async-signal-safe) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Move both ends above 4 first, so that placing one cannot clobber the other.
                let a = nix::libc::fcntl(r3, nix::libc::F_DUPFD, 10);
                let b = nix::libc::fcntl(w4, nix::libc::F_DUPFD, 10);
                if a < 0 || b < 0 || nix::libc::dup2(a, 3) < 0 || nix::libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                nix::libc::close(a);
                nix::libc::close(b);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
        drop(to_read);
        drop(from_write);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(std::fs::File::from(from_read));
            let mut buf = Vec::new();
            while let Ok(n) = r.read_until(0, &mut buf) {
                if n == 0 {
                    break;
                }
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        Browser {
            child,
            to: std::fs::File::from(to_write),
            from: rx,
            next_id: 0,
            errors: Vec::new(),
            _profile: profile,
        }
    }

    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let mut msg = json!({ "id": self.next_id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        self.to
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("writing to the browser ({method}): {e}"));
        self.next_id
    }

    /// Send a command and wait for its result.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.send(session, method, params);
        let v = self.wait(|v| v["id"].as_u64() == Some(id), method);
        if let Some(e) = v.get("error") {
            panic!("the browser refused {method}: {e}");
        }
        v["result"].clone()
    }

    fn wait_event(&mut self, session: Option<&str>, method: &str) -> Value {
        self.wait(
            |v| v["method"] == method && v["sessionId"].as_str() == session,
            method,
        )
    }

    /// Read messages until `want` matches one, noting every error event on the way.
    fn wait(&mut self, want: impl Fn(&Value) -> bool, what: &str) -> Value {
        let until = Instant::now() + STEP;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let v = match self.from.recv_timeout(left) {
                Ok(v) => v,
                Err(e) => panic!("the browser did not answer {what} within {STEP:?} ({e})"),
            };
            self.note(&v);
            if want(&v) {
                return v;
            }
        }
    }

    fn note(&mut self, v: &Value) {
        let p = &v["params"];
        match v["method"].as_str() {
            Some("Runtime.consoleAPICalled")
                if matches!(p["type"].as_str(), Some("error") | Some("assert")) =>
            {
                self.errors
                    .push(format!("console.{}: {}", p["type"], p["args"]));
            }
            Some("Runtime.exceptionThrown") => {
                self.errors
                    .push(format!("uncaught: {}", p["exceptionDetails"]));
            }
            Some("Log.entryAdded") if p["entry"]["level"] == "error" => {
                self.errors.push(format!(
                    "log ({}): {} {}",
                    p["entry"]["source"], p["entry"]["text"], p["entry"]["url"]
                ));
            }
            _ => {}
        }
    }

    /// Wait for the browser to exit (it was asked to close), take the last messages, and
    /// return every error seen.
    fn finish(mut self) -> Vec<String> {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            while let Ok(v) = self.from.try_recv() {
                self.note(&v);
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        while let Ok(v) = self.from.try_recv() {
            self.note(&v);
        }
        std::mem::take(&mut self.errors)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The browser and its helpers, by their process group (the browser's pid).
        let pgid = self.child.id() as i32;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(-pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe")
}
