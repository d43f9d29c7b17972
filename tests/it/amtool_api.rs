//! Interop of watchpost's Alertmanager API v2 with amtool from Debian's
//! `prometheus-alertmanager` package (Alertmanager 0.25): amtool pushes
//! alerts, lists them, adds, queries and expires silences against a
//! watchpost API with the notification pipeline behind it, and what amtool
//! decodes is what the pipeline holds.
//!
//! Ignored by default because it needs that package (`.ci/run` installs it
//! and runs `cargo test --test it -- --ignored`); it fails, never skips,
//! when amtool is missing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use watchpost::api::{self, ApiState, Authenticator};
use watchpost::notify::{NotifierFactory, NotifyManager, NotifyOptions};
use watchpost::promql::{Engine, EngineOptions};
use watchpost::scrape::manager::ScrapeManager;
use watchpost::storage::Storage;
use watchpost::storage::mem::MemStorage;
use watchpost::telemetry::{NotifyMetrics, Telemetry};

const NOTIFY: &str = "
route:
  receiver: default
  group_by: [alertname]
  routes:
    - receiver: team-db
      matchers: ['team=\"db\"']
receivers:
  - name: default
  - name: team-db
";

struct Server {
    url: String,
    mgr: Arc<NotifyManager>,
    cancel: CancellationToken,
    _dir: tempfile::TempDir,
}

/// watchpost's API (Prometheus's and Alertmanager's) on 127.0.0.1:0 with a
/// notification pipeline whose receivers have no integrations.
async fn serve() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = watchpost::config::notify::load_str(NOTIFY, "notify.yml", Path::new(".")).unwrap();
    let factory: NotifierFactory = Arc::new(|_| Ok(Vec::new()));
    let (_tx, rx) = mpsc::channel(1);
    let mgr = NotifyManager::start(
        &config,
        factory,
        NotifyOptions::new(Some(dir.path().join("notify"))),
        NotifyMetrics::new(),
        rx,
    )
    .await
    .unwrap();
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let telemetry = Arc::new(Telemetry::new(storage.clone()));
    let main_config =
        watchpost::config::load_str("scrape_configs: []\n", "watchpost.yml", Path::new("."))
            .unwrap();
    let (reload, _reload_rx) = mpsc::channel(1);
    let state = ApiState {
        storage: storage.clone(),
        engine: Arc::new(Engine::new(EngineOptions::default())),
        scrape: Arc::new(ScrapeManager::new(
            storage,
            telemetry.scrape.clone(),
            TaskTracker::new(),
        )),
        rules: None,
        push: None,
        config: Arc::new(RwLock::new(Arc::new(main_config))),
        telemetry,
        reload,
        ready: Arc::new(AtomicBool::new(true)),
        auth: Arc::new(Authenticator::new(BTreeMap::new())),
        start_time: SystemTime::now(),
        events: None,
        heartbeats: None,
    };
    let router = api::router_with_notify(state, mgr.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .unwrap();
    });
    Server {
        url,
        mgr,
        cancel,
        _dir: dir,
    }
}

/// Runs amtool against `url` and returns its stdout; fails on a non-zero
/// exit.
async fn amtool(url: &str, args: &[&str]) -> String {
    let mut cmd = Command::new("amtool");
    cmd.arg(format!("--alertmanager.url={url}"))
        .arg("--no-version-check")
        .args(args);
    let shown = format!("amtool {}", args.join(" "));
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| {
            panic!("cannot run amtool ({e}): install Debian's prometheus-alertmanager package")
        });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{shown} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's prometheus-alertmanager package (installed by .ci/run)"]
async fn amtool_manages_silences_and_lists_alerts() {
    let s = serve().await;
    let url = s.url.as_str();

    // amtool decodes /api/v2/status and prints the config it carries.
    let shown = amtool(url, &["config", "show"]).await;
    assert!(
        shown.contains("team-db") && shown.contains("group_by"),
        "{shown}"
    );

    // amtool pushes alerts through POST /api/v2/alerts.
    amtool(
        url,
        &[
            "alert",
            "add",
            "alertname=DiskFull",
            "team=db",
            "instance=db1",
            "--annotation=summary=disk full on db1",
        ],
    )
    .await;
    amtool(url, &["alert", "add", "alertname=Slow", "instance=web1"]).await;
    let views = s.mgr.alerts();
    assert_eq!(views.len(), 2, "{views:?}");

    let out = json(&amtool(url, &["alert", "query", "-o", "json"]).await);
    let alerts = out.as_array().unwrap();
    assert_eq!(alerts.len(), 2, "{out}");
    let disk = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "DiskFull")
        .unwrap();
    assert_eq!(disk["annotations"]["summary"], "disk full on db1");
    assert_eq!(disk["receivers"][0]["name"], "team-db");
    assert_eq!(disk["status"]["state"], "active");
    let out = amtool(url, &["alert", "query", "instance=~db.*"]).await;
    assert!(out.contains("DiskFull") && !out.contains("Slow"), "{out}");

    // Add a silence, find it, see it applied, expire it.
    let id = amtool(
        url,
        &[
            "silence",
            "add",
            "alertname=DiskFull",
            "instance=~db[0-9]+",
            "--author=ops",
            "--comment=replacing the disk",
            "--duration=2h",
        ],
    )
    .await
    .trim()
    .to_string();
    assert_eq!(id.len(), 36, "amtool printed {id:?} for the new silence id");
    let stored = s.mgr.silence(&id).expect("the silence amtool added");
    assert_eq!(stored.created_by, "ops");
    assert_eq!(stored.comment, "replacing the disk");
    assert_eq!(stored.matchers.len(), 2);
    let window = stored.ends_at - stored.starts_at;
    assert!(
        (2 * 3_600_000 - 60_000..=2 * 3_600_000 + 60_000).contains(&window),
        "{window} ms"
    );

    let quiet = amtool(url, &["silence", "query", "-q"]).await;
    assert_eq!(quiet.trim(), id);
    let listed = json(&amtool(url, &["silence", "query", "-o", "json"]).await);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["status"]["state"], "active");
    assert_eq!(listed[0]["createdBy"], "ops");
    let table = amtool(url, &["silence", "query", "alertname=DiskFull"]).await;
    assert!(
        table.contains(&id) && table.contains("replacing the disk"),
        "{table}"
    );
    let none = amtool(url, &["silence", "query", "-q", "alertname=Slow"]).await;
    assert_eq!(none.trim(), "", "a filter that no silence has");

    // The silenced alert leaves the default listing and shows with -s.
    let out = amtool(url, &["alert", "query"]).await;
    assert!(!out.contains("DiskFull") && out.contains("Slow"), "{out}");
    let out = json(&amtool(url, &["alert", "query", "-s", "-o", "json"]).await);
    let disk = out
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "DiskFull")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(disk["status"]["state"], "suppressed");
    assert_eq!(disk["status"]["silencedBy"][0], id.as_str());

    amtool(url, &["silence", "expire", &id]).await;
    let active = amtool(url, &["silence", "query", "-q"]).await;
    assert_eq!(active.trim(), "", "no active silence after expiry");
    let expired = amtool(url, &["silence", "query", "-q", "--expired"]).await;
    assert_eq!(expired.trim(), id);
    let out = amtool(url, &["alert", "query"]).await;
    assert!(out.contains("DiskFull"), "{out}");

    s.cancel.cancel();
    s.mgr.shutdown(Duration::from_secs(2)).await;
}
