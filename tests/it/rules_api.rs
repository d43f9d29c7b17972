//! Rules in the running app: `/api/v1/rules` and `/api/v1/alerts` over
//! HTTP, rule files applied at start and on reload, the embedded default's
//! self-monitoring rules, persisted alert state under the storage path,
//! the alert hand-off to an `AlertSink`, and an on_scrape alert firing end
//! to end from a scraped value flip.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use watchpost::app::{self, AlertSink, RunningApp};
use watchpost::model::Alert;

use crate::support::{Behavior, eventually, exporter};

/// Collects every batch the rule manager hands over.
#[derive(Debug, Default)]
struct Collect(Mutex<Vec<Alert>>);

impl AlertSink for Collect {
    fn send(&self, alerts: Vec<Alert>) {
        self.0.lock().unwrap().extend(alerts);
    }
}

impl Collect {
    fn any(&self, pred: impl Fn(&Alert) -> bool) -> bool {
        self.0.lock().unwrap().iter().any(pred)
    }
}

struct Running {
    app: Option<RunningApp>,
    base: String,
    client: reqwest::Client,
    sink: Arc<Collect>,
}

impl Running {
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn json(&self, path: &str) -> Value {
        let (code, v) = self.get(path).await;
        assert_eq!(code, 200, "{path}: {v}");
        assert_eq!(v["status"], "success", "{path}: {v}");
        v["data"].clone()
    }

    async fn alerts(&self) -> Vec<Value> {
        self.json("/api/v1/alerts").await["alerts"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn shutdown(mut self) {
        if let Some(a) = self.app.take() {
            a.shutdown().await;
        }
    }
}

/// Starts watchpost with `dir/watchpost.yml` and storage in `dir/data`.
async fn start_in(dir: &Path) -> Running {
    let mut opts = app::Options::new(dir.join("watchpost.yml"), dir.join("data"));
    let sink = Arc::new(Collect::default());
    opts.alert_sink = Some(sink.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = app::start(opts, listener).await.expect("watchpost starts");
    let base = format!("http://{}", app.local_addr());
    Running {
        app: Some(app),
        base,
        client: reqwest::Client::new(),
        sink,
    }
}

const CONFIG: &str = "\
global:
  evaluation_interval: 1s
rule_files: [rules/*.yml]
";

const RULES: &str = "\
groups:
  - name: api
    rules:
      - record: job:one:sum
        expr: sum(vector(1))
        labels: {source: test}
      - alert: AlwaysOn
        expr: vector(7) > 0
        labels: {severity: page}
        annotations: {summary: 'value {{ $value }}'}
      - alert: SlowBurn
        expr: vector(1) > 0
        for: 1h
  - name: other
    interval: 2s
    limit: 10
    rules:
      - record: other:two
        expr: vector(2)
";

fn write(dir: &Path, rules: &str) {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("watchpost.yml"), CONFIG).unwrap();
    std::fs::write(dir.join("rules/api.yml"), rules).unwrap();
}

fn rule_names(data: &Value) -> Vec<String> {
    data["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_and_alerts_endpoints_answer_in_prometheus_shape() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), RULES);
    let w = start_in(dir.path()).await;

    // Both groups evaluated at least once.
    let data = eventually(Duration::from_secs(15), "both groups evaluated", || async {
        let d = w.json("/api/v1/rules").await;
        let done = d["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["lastEvaluation"] != "0001-01-01T00:00:00Z");
        done.then_some(d)
    })
    .await;
    let groups = data["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    let g = &groups[0];
    assert_eq!(g["name"], "api");
    assert!(
        g["file"].as_str().unwrap().ends_with("rules/api.yml"),
        "{g}"
    );
    assert_eq!(g["interval"], 1.0);
    assert_eq!(g["limit"], 0);
    assert!(g["evaluationTime"].as_f64().unwrap() > 0.0, "{g}");
    assert_eq!(groups[1]["interval"], 2.0);
    assert_eq!(groups[1]["limit"], 10);

    let rec = &g["rules"][0];
    assert_eq!(rec["type"], "recording");
    assert_eq!(rec["name"], "job:one:sum");
    assert_eq!(rec["query"], "sum(vector(1))");
    assert_eq!(rec["labels"]["source"], "test");
    assert_eq!(rec["health"], "ok");
    assert!(rec.get("lastError").is_none(), "{rec}");

    let on = &g["rules"][1];
    assert_eq!(on["type"], "alerting");
    assert_eq!(on["name"], "AlwaysOn");
    assert_eq!(on["state"], "firing");
    assert_eq!(on["duration"], 0.0);
    assert_eq!(on["keepFiringFor"], 0.0);
    assert_eq!(on["labels"]["severity"], "page");
    assert_eq!(on["annotations"]["summary"], "value {{ $value }}");
    let a = &on["alerts"][0];
    assert_eq!(a["state"], "firing");
    assert_eq!(a["value"], "7e+00");
    assert_eq!(a["labels"]["alertname"], "AlwaysOn");
    assert_eq!(a["annotations"]["summary"], "value 7");
    assert!(a["activeAt"].as_str().unwrap().ends_with('Z'), "{a}");
    assert_eq!(g["rules"][2]["state"], "pending");

    // Filters.
    let d = w.json("/api/v1/rules?type=alert").await;
    assert_eq!(rule_names(&d), ["AlwaysOn", "SlowBurn"]);
    assert_eq!(d["groups"].as_array().unwrap().len(), 1);
    let d = w.json("/api/v1/rules?type=record").await;
    assert_eq!(rule_names(&d), ["job:one:sum", "other:two"]);
    let d = w
        .json("/api/v1/rules?rule_name[]=SlowBurn&rule_name[]=other:two")
        .await;
    assert_eq!(rule_names(&d), ["SlowBurn", "other:two"]);
    let d = w.json("/api/v1/rules?rule_group[]=other").await;
    assert_eq!(rule_names(&d), ["other:two"]);
    let file = g["file"].as_str().unwrap();
    let d = w
        .json(&format!(
            "/api/v1/rules?file[]={}",
            form_urlencoded::byte_serialize(file.as_bytes()).collect::<String>()
        ))
        .await;
    assert_eq!(d["groups"].as_array().unwrap().len(), 2);
    let d = w.json("/api/v1/rules?file[]=nope.yml").await;
    assert_eq!(d["groups"], serde_json::json!([]));
    let (code, v) = w.get("/api/v1/rules?type=bogus").await;
    assert_eq!(code, 400);
    assert_eq!(v["errorType"], "bad_data");

    // /api/v1/alerts: the firing and the pending one.
    let alerts = w.alerts().await;
    let mut seen: Vec<(String, String)> = alerts
        .iter()
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap().to_string(),
                a["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("AlwaysOn".to_string(), "firing".to_string()),
            ("SlowBurn".to_string(), "pending".to_string())
        ]
    );

    // The firing alert was handed to the sink with an end in the future;
    // the pending one was not.
    assert!(
        w.sink
            .any(|a| a.name() == "AlwaysOn" && !a.resolved_at(a.updated_at))
    );
    assert!(!w.sink.any(|a| a.name() == "SlowBurn"));
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_rule_files_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), RULES);
    let w = start_in(dir.path()).await;
    let app = w.app.as_ref().unwrap();
    assert_eq!(
        rule_names(&w.json("/api/v1/rules").await),
        ["job:one:sum", "AlwaysOn", "SlowBurn", "other:two"]
    );

    // A broken rule file: the reload fails and names it; nothing changes.
    std::fs::write(
        dir.path().join("rules/api.yml"),
        "groups:\n  - name: api\n    rules:\n      - alert: Broken\n        expr: sum(\n",
    )
    .unwrap();
    let err = app.reload().await.unwrap_err().to_string();
    assert!(err.contains("api.yml"), "{err}");
    assert_eq!(rule_names(&w.json("/api/v1/rules").await).len(), 4);

    // Rules and a group removed: the API follows, their alerts go.
    std::fs::write(
        dir.path().join("rules/api.yml"),
        "groups:\n  - name: api\n    rules:\n      - record: job:one:sum\n        expr: sum(vector(1))\n        labels: {source: test}\n",
    )
    .unwrap();
    app.reload().await.unwrap();
    assert_eq!(rule_names(&w.json("/api/v1/rules").await), ["job:one:sum"]);
    eventually(
        Duration::from_secs(10),
        "alerts of removed rules gone",
        || async { w.alerts().await.is_empty().then_some(()) },
    )
    .await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_alerts_survive_a_restart_of_the_app() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), RULES);
    let w = start_in(dir.path()).await;
    let before = eventually(Duration::from_secs(15), "AlwaysOn firing", || async {
        w.alerts()
            .await
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "AlwaysOn" && a["state"] == "firing")
    })
    .await;
    let pending_before = w
        .alerts()
        .await
        .into_iter()
        .find(|a| a["labels"]["alertname"] == "SlowBurn")
        .unwrap();
    w.shutdown().await;
    assert!(
        std::fs::read_dir(dir.path().join("data/rules"))
            .unwrap()
            .next()
            .is_some(),
        "alert state is persisted under the storage path"
    );

    let w = start_in(dir.path()).await;
    let after = eventually(Duration::from_secs(15), "both alerts back", || async {
        let a = w.alerts().await;
        (a.len() == 2).then_some(a)
    })
    .await;
    let find = |name: &str| {
        after
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} restored: {after:?}"))
    };
    let on = find("AlwaysOn");
    assert_eq!(on["state"], "firing");
    assert_eq!(on["activeAt"], before["activeAt"]);
    let slow = find("SlowBurn");
    assert_eq!(slow["state"], "pending");
    assert_eq!(slow["activeAt"], pending_before["activeAt"]);
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_default_config_runs_the_self_monitoring_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = app::Options::new(dir.path().join("absent.yml"), dir.path().join("data"));
    opts.allow_embedded_default = true;
    opts.alert_sink = Some(Arc::new(Collect::default()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = app::start(opts, listener).await.expect("watchpost starts");
    let base = format!("http://{}", app.local_addr());
    let v: Value = reqwest::get(format!("{base}/api/v1/rules?type=alert"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names = rule_names(&v["data"]);
    assert!(names.iter().any(|n| n == "TargetDown"), "{names:?}");
    let files: Vec<&str> = v["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["file"].as_str().unwrap())
        .collect();
    assert!(
        files.iter().all(|f| *f == "rules/watchpost.yml"),
        "{files:?}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_scrape_alert_fires_after_a_scraped_value_flips() {
    let value = Arc::new(Mutex::new("temperature_celsius 20\n".to_string()));
    let exp = exporter(Behavior::Body(value.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("watchpost.yml"),
        format!(
            "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\n  evaluation_interval: 1h\nrule_files: [hot.yml]\nscrape_configs:\n  - job_name: thermo\n    static_configs: [{{targets: [\"{}\"]}}]\n",
            exp.target()
        ),
    )
    .unwrap();
    // A 1h interval: only on_scrape evaluation can make this fire in time.
    std::fs::write(
        dir.path().join("hot.yml"),
        "groups:\n  - name: thermo\n    evaluation: on_scrape\n    rules:\n      - alert: Hot\n        expr: temperature_celsius > 50\n        for: 0s\n        annotations: {summary: '{{ $labels.instance }} at {{ $value }}'}\n",
    )
    .unwrap();
    let w = start_in(dir.path()).await;

    // Scraped and evaluated at least once while cool.
    eventually(
        Duration::from_secs(10),
        "thermo group evaluated",
        || async {
            let d = w.json("/api/v1/rules").await;
            (d["groups"][0]["lastEvaluation"] != "0001-01-01T00:00:00Z").then_some(())
        },
    )
    .await;
    assert!(w.alerts().await.is_empty());

    *value.lock().unwrap() = "temperature_celsius 90\n".to_string();
    let alert = eventually(Duration::from_secs(5), "Hot firing", || async {
        w.alerts()
            .await
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "Hot" && a["state"] == "firing")
    })
    .await;
    assert_eq!(alert["value"], "9e+01");
    assert_eq!(alert["labels"]["job"], "thermo");
    assert_eq!(
        alert["annotations"]["summary"],
        format!("{} at 90", exp.target())
    );
    eventually(Duration::from_secs(5), "Hot handed over firing", || async {
        w.sink
            .any(|a| a.name() == "Hot" && !a.resolved_at(a.updated_at))
            .then_some(())
    })
    .await;

    // Cools down: resolved, and handed over as resolved.
    *value.lock().unwrap() = "temperature_celsius 30\n".to_string();
    eventually(Duration::from_secs(5), "Hot resolved", || async {
        let gone = w.alerts().await.is_empty();
        let sent = w
            .sink
            .any(|a| a.name() == "Hot" && a.resolved_at(a.updated_at));
        (gone && sent).then_some(())
    })
    .await;
    w.shutdown().await;
}
