//! The web UI: every page and asset is served with its content type and
//! behind the web config's basic auth (`/-/healthy` stays open), the
//! notification history API the Notifications page reads, and, in headless
//! Chromium (interop suite), every page loading without console errors,
//! the graph drawing one line per series and a silence made through the
//! form muting a firing alert. Screenshots of each page land in
//! `target/ui-screenshots/`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::browser::Browser;
use crate::channels_common::Recorder;
use crate::support::{self, Harness, eventually};

const PAGES: [(&str, &str); 7] = [
    ("/", "overview"),
    ("/targets", "targets"),
    ("/alerts", "alerts"),
    ("/rules", "rules"),
    ("/silences", "silences"),
    ("/notifications", "notifications"),
    ("/graph", "graph"),
];

const EMPTY: &str = "global: {scrape_interval: 1h}\nscrape_configs: []\n";

fn web_config(user: &str, pass: &str) -> String {
    let hash = bcrypt::hash(pass, 4).unwrap();
    format!("basic_auth_users:\n  {user}: {hash}\n")
}

async fn get(h: &Harness, path: &str) -> reqwest::Response {
    h.client
        .get(format!("{}{path}", h.base))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_assets_are_served_with_their_content_types() {
    let h = support::start(
        &format!("{EMPTY}web: {{page_title: \"<Ops> & 'co'\"}}\n"),
        None,
    )
    .await;
    for (route, script) in PAGES {
        let r = get(&h, route).await;
        assert_eq!(r.status(), 200, "{route}");
        let headers = r.headers().clone();
        assert_eq!(
            headers["content-type"], "text/html; charset=utf-8",
            "{route}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{route}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let body = r.text().await.unwrap();
        assert!(
            body.contains(&format!("src=\"ui/{script}.js\"")),
            "{route}: {body}"
        );
        assert!(
            body.contains("<nav>") && body.contains("href=\"silences\""),
            "{body}"
        );
        assert!(body.contains("&lt;Ops&gt; &amp; &#39;co&#39;"), "{body}");
        assert!(!body.contains("<Ops>"), "the page title is escaped: {body}");
    }
    let assets = [
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
        ("common.js", "text/javascript; charset=utf-8"),
        ("graph.js", "text/javascript; charset=utf-8"),
        ("silences.js", "text/javascript; charset=utf-8"),
    ];
    for (file, content_type) in assets {
        let r = get(&h, &format!("/ui/{file}")).await;
        assert_eq!(r.status(), 200, "{file}");
        assert_eq!(r.headers()["content-type"], content_type, "{file}");
        assert!(!r.bytes().await.unwrap().is_empty(), "{file}");
    }
    for missing in ["/ui/nope.js", "/ui/", "/targets/extra"] {
        let r = get(&h, missing).await;
        assert_eq!(r.status(), 404, "{missing}");
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_sits_behind_basic_auth_and_healthy_stays_open() {
    let h = support::start(EMPTY, Some(&web_config("alice", "pw"))).await;
    let get = |path: &str, auth: Option<&str>| {
        let mut req = h.client.get(format!("{}{path}", h.base));
        if let Some(p) = auth {
            req = req.basic_auth("alice", Some(p));
        }
        req.send()
    };
    for path in [
        "/",
        "/alerts",
        "/graph",
        "/ui/common.js",
        "/ui/style.css",
        "/api/v1/notifications",
    ] {
        let r = get(path, None).await.unwrap();
        assert_eq!(r.status(), 401, "{path} without credentials");
        assert_eq!(r.headers()["www-authenticate"], "Basic", "{path}");
        assert_eq!(
            get(path, Some("wrong")).await.unwrap().status(),
            401,
            "{path}"
        );
        assert_eq!(get(path, Some("pw")).await.unwrap().status(), 200, "{path}");
    }
    assert_eq!(get("/-/healthy", None).await.unwrap().status(), 200);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_api_lists_the_history_newest_first_and_bounds_limit() {
    let hook = Recorder::start().await;
    let yaml = format!(
        r#"global: {{scrape_interval: 1h}}
scrape_configs: []
notify:
  route: {{receiver: team, group_by: [alertname], group_wait: 0s, group_interval: 1s}}
  receivers:
    - name: team
      webhook_configs: [{{url: "{}"}}]
"#,
        hook.url("/hook")
    );
    let h = support::start(&yaml, None).await;
    for name in ["First", "Second"] {
        let r = h
            .client
            .post(format!("{}/api/v2/alerts", h.base))
            .json(&serde_json::json!([{"labels": {"alertname": name}}]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        // One after the other, so "newest first" has a defined order.
        eventually(Duration::from_secs(10), "delivered", || async {
            (hook
                .seen()
                .iter()
                .any(|s| s.json()["groupLabels"]["alertname"] == name))
            .then_some(())
        })
        .await;
    }
    let v = eventually(Duration::from_secs(10), "two history entries", || async {
        let v = h.get_json("/api/v1/notifications").await;
        (v["data"].as_array().map(Vec::len) == Some(2)).then_some(v)
    })
    .await;
    assert_eq!(v["status"], "success");
    let first = &v["data"][0];
    assert_eq!(first["event"], "delivered", "{v}");
    assert_eq!(first["receiver"], "team");
    assert_eq!(first["integration"], "webhook[0]");
    assert_eq!(first["reason"], "first_notification");
    assert_eq!(first["firing"], 1);
    assert_eq!(first["attempts"], 1);
    assert!(
        first["groupKey"].as_str().unwrap().contains("Second"),
        "newest first: {v}"
    );
    assert!(first["time"].as_str().unwrap().ends_with('Z'), "{v}");
    let one = h.get_json("/api/v1/notifications?limit=1").await;
    assert_eq!(one["data"].as_array().unwrap().len(), 1, "{one}");
    for bad in ["0", "1001", "ten"] {
        let r = h
            .client
            .get(format!("{}/api/v1/notifications?limit={bad}", h.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "limit={bad}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["errorType"], "bad_data");
        assert!(
            e["error"].as_str().unwrap().contains("from 1 to 1000"),
            "{e}"
        );
    }
    h.shutdown().await;
}

// ---- in headless Chromium ----

const USER: &str = "ops";
const PASS: &str = "s3cret";

/// A watchpost with two healthy targets and one that refuses connections,
/// a rule that fires for each healthy target and one that stays pending,
/// a webhook that accepts and one that fails, behind basic auth.
struct Fixture {
    h: Harness,
    _hook: Recorder,
    _exporters: Vec<support::Exporter>,
    _rules: tempfile::TempDir,
    healthy: Vec<String>,
}

async fn fixture() -> Fixture {
    let hook = Recorder::start().await;
    let a = support::exporter(support::body("temperature 42\n")).await;
    let b = support::exporter(support::body("temperature 17\n")).await;
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("ui.yml"),
        r#"groups:
  - name: ui
    interval: 1s
    rules:
      - alert: SensorUp
        expr: up{job="sensors"} == 1
        labels: {severity: page}
        annotations:
          summary: '<img src=x onerror="window.__xss=1"> {{ $labels.instance }} answers'
      - alert: SlowBurn
        expr: up{job="sensors"} == 1
        for: 1h
      - record: job:up:sum
        expr: sum by (job) (up)
"#,
    )
    .unwrap();
    let yaml = format!(
        r#"global: {{scrape_interval: 1s, scrape_timeout: 500ms, external_labels: {{site: lab}}}}
rule_files: ["{rules}"]
scrape_configs:
  - job_name: sensors
    static_configs: [{{targets: ["{a}", "{b}"]}}]
  - job_name: broken
    static_configs: [{{targets: ["127.0.0.1:1"]}}]
notify:
  route:
    receiver: team
    group_by: [alertname, instance]
    group_wait: 0s
    group_interval: 1s
    routes:
      - {{receiver: pager, matchers: ['severity="page"'], continue: true}}
      - {{receiver: team}}
  receivers:
    - name: team
      webhook_configs: [{{url: "{hook}"}}]
    - name: pager
      webhook_configs: [{{url: "http://127.0.0.1:1/down"}}]
"#,
        rules = rules.path().join("ui.yml").display(),
        a = a.target(),
        b = b.target(),
        hook = hook.url("/hook"),
    );
    let h = support::start(&yaml, Some(&web_config(USER, PASS))).await;
    let f = Fixture {
        healthy: vec![a.target(), b.target()],
        h,
        _hook: hook,
        _exporters: vec![a, b],
        _rules: rules,
    };
    eventually(Duration::from_secs(20), "both alerts firing", || async {
        let v = f.get("/api/v1/alerts").await;
        let firing = v["data"]["alerts"]
            .as_array()?
            .iter()
            .filter(|a| a["state"] == "firing")
            .count();
        (firing == 2).then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(20),
        "a delivery and a failed attempt",
        || async {
            let v = f.get("/api/v1/notifications").await;
            let events: Vec<&Value> = v["data"].as_array()?.iter().map(|n| &n["event"]).collect();
            (events.contains(&&Value::from("delivered"))
                && events.contains(&&Value::from("attempt_failed")))
            .then_some(())
        },
    )
    .await;
    f
}

impl Fixture {
    async fn get(&self, path: &str) -> Value {
        self.h
            .client
            .get(format!("{}{path}", self.h.base))
            .basic_auth(USER, Some(PASS))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Whether the alert stream is served; if not, the Alerts page's one
    /// failed attempt at it is expected.
    async fn has_stream(&self) -> bool {
        let r = self
            .h
            .client
            .get(format!("{}/api/v1/alerts/stream", self.h.base))
            .basic_auth(USER, Some(PASS))
            .send()
            .await
            .unwrap();
        r.status() == 200
    }

    /// The pipeline's state of the SensorUp alert of `instance`.
    async fn pipeline_state(&self, instance: &str) -> String {
        let v = self
            .get("/api/v2/alerts?filter=alertname%3D%22SensorUp%22")
            .await;
        let a = v
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["instance"] == instance)
            .unwrap_or_else(|| panic!("no SensorUp alert for {instance}: {v}"))
            .clone();
        a["status"]["state"].as_str().unwrap().to_string()
    }
}

/// The fixture, whether the alert stream is served, and a browser that
/// knows the credentials.
async fn open() -> (Fixture, bool, Browser) {
    let f = fixture().await;
    let stream = f.has_stream().await;
    (f, stream, Browser::launch(Some((USER, PASS))).await)
}

fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots")
}

/// Loads a page, waits until it rendered its data once, and checks the
/// console stayed clean.
async fn visit(b: &Browser, f: &Fixture, route: &str, stream: bool) {
    b.clear_events();
    b.navigate(&format!("{}{route}", f.h.base)).await;
    b.wait_for("document.body.dataset.loaded", &format!("{route} rendered"))
        .await;
    // Let late requests (a refresh, the alert stream) report too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Without the stream, its failed load is the one expected error: the
    // page falls back to polling.
    let errors = b.console_errors(|t| {
        !stream && t.contains("Failed to load resource") && t.ends_with("/api/v1/alerts/stream")
    });
    assert!(errors.is_empty(), "{route}: console errors: {errors:#?}");
    let status = b.eval("document.getElementById('status').className").await;
    assert_eq!(status, "muted", "{route}: the status line shows an error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium (Debian package); run by .ci/run in the interop suite"]
async fn browser_every_page_loads_cleanly_and_the_graph_draws_each_series() {
    let (f, stream, b) = open().await;
    let dir = screenshot_dir();

    for (route, name) in PAGES {
        visit(&b, &f, route, stream).await;
        match name {
            "overview" => {
                let text = b.eval("document.querySelector('.cards').textContent").await;
                let text = text.as_str().unwrap();
                assert!(text.contains("2up") && text.contains("1down"), "{text}");
                assert!(
                    text.contains("2firing") && text.contains("2pending"),
                    "{text}"
                );
            }
            "targets" => {
                let rows = b.eval("document.querySelectorAll('tbody tr').length").await;
                assert_eq!(rows, 3);
                let err = b
                    .eval("document.querySelector('tr.row-bad .error-text').textContent")
                    .await;
                assert!(
                    !err.as_str().unwrap().is_empty(),
                    "the down target shows why"
                );
            }
            "alerts" => {
                let rows = b.eval("document.querySelectorAll('tbody tr').length").await;
                assert_eq!(rows, 4, "two firing and two pending");
                let text = b
                    .eval("document.getElementById('content').textContent")
                    .await;
                let text = text.as_str().unwrap();
                assert!(
                    text.contains("<img src=x onerror="),
                    "shown as text: {text}"
                );
                assert!(
                    text.contains(&format!("{} answers", f.healthy[0])),
                    "{text}"
                );
                let markup = b
                    .eval("[document.querySelectorAll('main img').length, typeof window.__xss]")
                    .await;
                assert_eq!(markup, serde_json::json!([0, "undefined"]));
                let note = b
                    .eval("document.getElementById('status').textContent")
                    .await;
                let want = if stream { "live" } else { "polling every 5s" };
                assert!(note.as_str().unwrap().contains(want), "{note}");
                // An alert pushed now shows up without a reload: through
                // the stream, or the next poll.
                let r = f
                    .h
                    .client
                    .post(format!("{}/api/v2/alerts", f.h.base))
                    .basic_auth(USER, Some(PASS))
                    .json(&serde_json::json!([{"labels": {"alertname": "Pushed", "team": "db"}}]))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                b.wait_for(
                    "[...document.querySelectorAll('tbody tr')].some(r => r.textContent.includes('alertname=\"Pushed\"') && r.querySelector('.badge-pushed'))",
                    "the pushed alert listed",
                )
                .await;
            }
            "rules" => {
                let text = b
                    .eval("document.getElementById('content').textContent")
                    .await;
                let text = text.as_str().unwrap();
                for want in ["SensorUp", "SlowBurn", "job:up:sum", "ok"] {
                    assert!(text.contains(want), "{want}: {text}");
                }
            }
            "notifications" => {
                let text = b
                    .eval("document.getElementById('content').textContent")
                    .await;
                let text = text.as_str().unwrap();
                for want in [
                    "delivered",
                    "attempt_failed",
                    "webhook[0]",
                    "first_notification",
                ] {
                    assert!(text.contains(want), "{want}: {text}");
                }
            }
            _ => {}
        }
        b.screenshot(&dir, name).await;
    }

    // The graph over the last 5 minutes: type the query, press Execute
    // (again, until every series has two points to join).
    b.navigate(&format!("{}/graph?range=5m", f.h.base)).await;
    b.wait_for("document.body.dataset.loaded", "graph page")
        .await;
    assert_eq!(b.eval("document.getElementById('range').value").await, "5m");
    b.clear_events();
    b.type_into("document.getElementById('expr')", "up").await;
    let mut renders = b.eval("Number(document.body.dataset.loaded)").await;
    let mut tries = 0;
    loop {
        b.click("document.getElementById('execute')").await;
        let after = format!("Number(document.body.dataset.loaded) > {renders}");
        b.wait_for(&after, "the graph drawn").await;
        renders = b.eval("Number(document.body.dataset.loaded)").await;
        let lines = b
            .eval("[...document.querySelectorAll('svg.chart path.series')].map(p => p.getTotalLength())")
            .await;
        let lines: Vec<f64> = serde_json::from_value(lines).unwrap();
        assert_eq!(lines.len(), 3, "one line per target");
        if lines.iter().all(|l| *l > 0.0) {
            break;
        }
        tries += 1;
        assert!(tries < 30, "lines never got a second point: {lines:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let legend = b
        .eval("[...document.querySelectorAll('ul.legend li')].map(li => li.textContent)")
        .await;
    let legend: Vec<String> = serde_json::from_value(legend).unwrap();
    assert_eq!(legend.len(), 3, "{legend:?}");
    for t in &f.healthy {
        assert!(
            legend.iter().any(|l| l.contains(t) && l.starts_with("up{")),
            "{t} in {legend:?}"
        );
    }
    let url = b.eval("location.search").await;
    assert!(url.as_str().unwrap().contains("expr=up"), "{url}");
    let errors = b.console_errors(|_| false);
    assert!(errors.is_empty(), "graph: console errors: {errors:#?}");
    b.screenshot(&dir, "graph").await;
    drop(b);
    f.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium (Debian package); run by .ci/run in the interop suite"]
async fn browser_silence_created_in_the_ui_mutes_the_firing_alert() {
    let (f, stream, b) = open().await;
    let (target, other) = (&f.healthy[0], &f.healthy[1]);
    assert_eq!(f.pipeline_state(target).await, "active");

    visit(&b, &f, "/alerts", stream).await;
    let row = format!(
        "[...document.querySelectorAll('tbody tr')].find(r => r.textContent.includes('alertname=\"SensorUp\"') && r.textContent.includes('instance=\"{target}\"'))"
    );
    b.click(&format!("{row}.querySelector('a.button')")).await;
    b.wait_for(
        "location.pathname === '/silences' && document.body.dataset.loaded",
        "the silence form",
    )
    .await;
    // Prefilled with the alert's labels, the external one included.
    let prefilled = b
        .eval("Object.fromEntries([...document.querySelectorAll('.matcher')].map(m => [m.querySelector('[name=name]').value, m.querySelector('[name=value]').value]))")
        .await;
    assert_eq!(prefilled["alertname"], "SensorUp", "{prefilled}");
    assert_eq!(prefilled["instance"], target.as_str(), "{prefilled}");
    assert_eq!(prefilled["site"], "lab", "{prefilled}");
    b.type_into("document.getElementById('created-by')", "browser test")
        .await;
    b.type_into(
        "document.getElementById('comment')",
        "maintenance on the sensor",
    )
    .await;
    b.type_into("document.getElementById('duration')", "1h")
        .await;
    b.click("document.getElementById('create')").await;
    let msg = b
        .wait_for(
            "document.querySelector('.message.ok')?.textContent",
            "the silence created",
        )
        .await;
    assert!(
        msg.as_str().unwrap().starts_with("Created silence "),
        "{msg}"
    );
    b.wait_for(
        "document.querySelectorAll('tbody tr[data-id]').length === 1",
        "the silence listed",
    )
    .await;
    b.screenshot(&screenshot_dir(), "silences-created").await;

    eventually(Duration::from_secs(10), "the alert silenced", || async {
        (f.pipeline_state(target).await == "suppressed").then_some(())
    })
    .await;
    assert_eq!(
        f.pipeline_state(other).await,
        "active",
        "only the one alert"
    );
    let silences = f.get("/api/v2/silences").await;
    assert_eq!(silences[0]["createdBy"], "browser test", "{silences}");
    assert_eq!(silences[0]["comment"], "maintenance on the sensor");

    // The Alerts page shows it silenced.
    visit(&b, &f, "/alerts", stream).await;
    let badge = b
        .eval(&format!("{row}.querySelector('.badge-silenced') !== null"))
        .await;
    assert_eq!(badge, true);

    // Expire it from the list: the alert is active again.
    visit(&b, &f, "/silences", stream).await;
    b.click("document.querySelector('button.expire')").await;
    eventually(
        Duration::from_secs(10),
        "the alert active again",
        || async { (f.pipeline_state(target).await == "active").then_some(()) },
    )
    .await;
    b.wait_for(
        "document.querySelector('details summary')?.textContent === 'Expired (1)'",
        "the silence listed as expired",
    )
    .await;
    let errors = b.console_errors(|_| false);
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    drop(b);
    f.h.shutdown().await;
}
