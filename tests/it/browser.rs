//! Headless Chromium (Debian's `chromium`) driven over the DevTools
//! protocol, for the web UI's browser tests. The protocol runs over a
//! pipe (`--remote-debugging-pipe`: JSON messages ended by a NUL byte,
//! the browser reading fd 3 and writing fd 4), so no websocket client and
//! no extra crate is needed; `sh` maps the child's stdin and stdout onto
//! those descriptors.
//!
//! One [`Browser`] is one Chromium process with one page, attached in
//! flat session mode. Every event the page reports is kept, so a test can
//! ask for the console errors (`Runtime.consoleAPICalled` errors,
//! `Runtime.exceptionThrown`, `Log.entryAdded` errors) after each step.
//! Clicks and typing go through `Input.*`, as a user's would.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// How long one protocol call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

pub struct Browser {
    child: Child,
    stdin: Mutex<ChildStdin>,
    next_id: AtomicU64,
    waiting: Waiting,
    events: Arc<Mutex<Vec<Value>>>,
    session: String,
    profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ask politely, so Chromium takes its helper processes with it;
        // then make sure.
        let _ = self.send_raw(&json!({"id": 0, "method": "Browser.close"}));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts Chromium with a fresh profile and opens one blank page.
    /// With `basic_auth`, every request of the page carries those
    /// credentials, as a browser does once the user has typed them in.
    pub async fn launch(basic_auth: Option<(&str, &str)>) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        // --no-sandbox: CI runs as root in a container, where Chromium's
        // sandbox cannot start; the pages loaded are our own.
        let cmd = format!(
            "exec chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
             --no-first-run --no-default-browser-check --disable-extensions \
             --disable-background-networking --disable-component-update --disable-sync \
             --hide-scrollbars --mute-audio --window-size=1280,900 \
             --user-data-dir='{}' --remote-debugging-pipe \
             3<&0 4>&1 </dev/null >/dev/null 2>'{}'",
            profile.path().display(),
            profile.path().join("stderr.log").display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &cmd])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting sh -c chromium: the browser tests need Debian's chromium");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let waiting: Waiting = Arc::default();
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        {
            let (waiting, events) = (waiting.clone(), events.clone());
            std::thread::spawn(move || read_messages(stdout, waiting, events));
        }
        let mut b = Browser {
            child,
            stdin: Mutex::new(stdin),
            next_id: AtomicU64::new(1),
            waiting,
            events,
            session: String::new(),
            profile,
        };
        let target = b
            .call_in(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = b
            .call_in(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Page", "Runtime", "Log", "Network"] {
            b.call(&format!("{domain}.enable"), json!({})).await;
        }
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        if let Some((user, pass)) = basic_auth {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            b.call(
                "Network.setExtraHTTPHeaders",
                json!({"headers": {"Authorization": format!("Basic {token}")}}),
            )
            .await;
        }
        b
    }

    fn send_raw(&self, msg: &Value) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec(msg).unwrap();
        bytes.push(0);
        let mut w = self.stdin.lock().unwrap();
        w.write_all(&bytes)?;
        w.flush()
    }

    async fn call_in(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap().insert(id, tx);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.send_raw(&msg)
            .unwrap_or_else(|e| panic!("{method}: writing to chromium: {e}{}", self.stderr()));
        let answer = match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(Ok(v)) => v,
            Ok(Err(_)) => panic!("{method}: chromium exited{}", self.stderr()),
            Err(_) => panic!("{method}: no answer in {CALL_TIMEOUT:?}{}", self.stderr()),
        };
        if let Some(e) = answer.get("error") {
            panic!("{method} {msg}: {e}");
        }
        answer["result"].clone()
    }

    /// Calls a method of the page's session and answers its result.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.call_in(Some(&self.session.clone()), method, params)
            .await
    }

    /// The tail of Chromium's own log, for failure messages.
    fn stderr(&self) -> String {
        let text =
            std::fs::read_to_string(self.profile.path().join("stderr.log")).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("\nchromium stderr (tail):\n{}", tail.join("\n"))
    }

    fn event_count(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    /// Loads `url` and waits for its load event.
    pub async fn navigate(&self, url: &str) {
        let from = self.event_count();
        let r = self.call("Page.navigate", json!({"url": url})).await;
        if let Some(e) = r.get("errorText") {
            panic!("navigating to {url}: {e}");
        }
        self.wait_event(from, "Page.loadEventFired").await;
    }

    /// Waits for an event named `method` among those after index `from`.
    async fn wait_event(&self, from: usize, method: &str) {
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            if self.events.lock().unwrap()[from..]
                .iter()
                .any(|e| e["method"] == method)
            {
                return;
            }
            assert!(Instant::now() < deadline, "no {method} event");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Evaluates `expr` in the page (awaiting a promise) and answers its
    /// value; an exception fails the test.
    pub async fn eval(&self, expr: &str) -> Value {
        self.try_eval(expr)
            .await
            .unwrap_or_else(|e| panic!("evaluating {expr}: {e}"))
    }

    async fn try_eval(&self, expr: &str) -> Result<Value, Value> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        match r.get("exceptionDetails") {
            Some(e) => Err(e.clone()),
            None => Ok(r["result"]["value"].clone()),
        }
    }

    /// Polls `expr` until it is truthy; answers its value. An exception
    /// counts as not yet (the page may be between two documents).
    pub async fn wait_for(&self, expr: &str, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let v = self.try_eval(expr).await.unwrap_or(Value::Null);
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                let status = self
                    .try_eval("document.getElementById('status')?.textContent")
                    .await;
                panic!("timed out waiting for {what} ({expr}); status line: {status:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the middle of the element `element` (a JS expression) with
    /// the mouse, scrolling it into view first.
    pub async fn click(&self, element: &str) {
        let rect = self
            .eval(&format!(
                "(() => {{ const e = {element}; if (!e) return null; e.scrollIntoView({{block: 'center'}}); \
                 const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
            ))
            .await;
        let [x, y] = [rect[0].as_f64(), rect[1].as_f64()]
            .map(|c| c.unwrap_or_else(|| panic!("no element to click: {element}")));
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await;
        }
    }

    /// Clicks into the input `element` and types `text` over its content.
    pub async fn type_into(&self, element: &str, text: &str) {
        self.click(element).await;
        self.eval(&format!("{element}.select()")).await;
        self.call("Input.insertText", json!({"text": text})).await;
    }

    /// Saves a PNG of the whole page as `<dir>/<name>.png`.
    pub async fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let m = self.call("Page.getLayoutMetrics", json!({})).await;
        let (w, h) = (
            m["cssContentSize"]["width"].as_f64().unwrap_or(1280.0),
            m["cssContentSize"]["height"].as_f64().unwrap_or(900.0),
        );
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": w.max(1280.0), "height": h.clamp(900.0, 6000.0), "scale": 1},
                }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Forgets the events so far (console errors included).
    pub fn clear_events(&self) {
        self.events.lock().unwrap().clear();
    }

    /// Console errors, uncaught exceptions and error log entries (failed
    /// loads among them) since the last [`Browser::clear_events`], as
    /// text; `allow` says which error texts are expected.
    pub fn console_errors(&self, allow: impl Fn(&str) -> bool) -> Vec<String> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter_map(|e| {
                let p = &e["params"];
                match e["method"].as_str()? {
                    "Runtime.consoleAPICalled"
                        if matches!(p["type"].as_str(), Some("error" | "assert")) =>
                    {
                        let args: Vec<String> = p["args"]
                            .as_array()?
                            .iter()
                            .map(|a| {
                                a.get("value")
                                    .map(|v| v.to_string())
                                    .unwrap_or_else(|| a["description"].to_string())
                            })
                            .collect();
                        Some(format!("console.{}: {}", p["type"], args.join(" ")))
                    }
                    "Runtime.exceptionThrown" => Some(format!(
                        "uncaught: {}",
                        p["exceptionDetails"]["exception"]["description"]
                            .as_str()
                            .unwrap_or_else(|| p["exceptionDetails"]["text"]
                                .as_str()
                                .unwrap_or_default())
                    )),
                    "Log.entryAdded" if p["entry"]["level"] == "error" => Some(format!(
                        "log ({}): {} {}",
                        p["entry"]["source"].as_str().unwrap_or_default(),
                        p["entry"]["text"].as_str().unwrap_or_default(),
                        p["entry"]["url"].as_str().unwrap_or_default()
                    )),
                    _ => None,
                }
            })
            .filter(|t| !allow(t))
            .collect()
    }
}

/// Splits the pipe into NUL-ended messages: answers go to their caller,
/// events into the list. Ends when Chromium closes its end; callers still
/// waiting then see their sender dropped.
fn read_messages(
    mut out: std::process::ChildStdout,
    waiting: Waiting,
    events: Arc<Mutex<Vec<Value>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let n = match out.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = buf.iter().position(|&b| b == 0) {
            let msg: Vec<u8> = buf.drain(..=end).collect();
            let Ok(v) = serde_json::from_slice::<Value>(&msg[..end]) else {
                continue;
            };
            match v.get("id").and_then(Value::as_u64) {
                Some(id) => {
                    if let Some(tx) = waiting.lock().unwrap().remove(&id) {
                        let _ = tx.send(v);
                    }
                }
                None => events.lock().unwrap().push(v),
            }
        }
    }
    waiting.lock().unwrap().clear();
}
