//! Heartbeats (dead man's switches): a missed heartbeat produces a
//! notification and a ping resolves it, on a paused tokio clock through the
//! real notification pipeline; over HTTP, pings, the unknown-name answer,
//! the last-ping metric on /metrics and in storage, `HeartbeatMissed` in
//! /api/v1/alerts, and the last ping surviving a restart.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use watchpost::config::HeartbeatConfig;
use watchpost::config::notify::Receiver;
use watchpost::ingest::heartbeat::{HeartbeatOptions, Heartbeats};
use watchpost::model::{Labels, Timestamp};
use watchpost::notify::{
    AlertStatus, Clock, NotificationData, Notifier, NotifierFactory, NotifyManager, NotifyOptions,
    SendError,
};
use watchpost::storage::mem::MemStorage;
use watchpost::telemetry::{HeartbeatMetrics, NotifyMetrics};

use crate::support::eventually;

/// A receiver stand-in that records each notification with the (virtual)
/// wall time it arrived at.
struct Capture {
    clock: Clock,
    got: Arc<Mutex<Vec<(Timestamp, NotificationData)>>>,
}

impl Notifier for Capture {
    fn integration(&self) -> &str {
        "capture[0]"
    }

    fn send_resolved(&self) -> bool {
        true
    }

    fn send<'a>(
        &'a self,
        msg: &'a NotificationData,
    ) -> Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>> {
        Box::pin(async move {
            self.got
                .lock()
                .unwrap()
                .push((self.clock.now(), msg.clone()));
            Ok(())
        })
    }
}

const T0: Timestamp = 1_800_000_000_000;

#[tokio::test(start_paused = true)]
async fn a_missed_heartbeat_produces_a_notification_on_a_paused_clock_timeline() {
    let clock = Clock::following_tokio(T0);
    let got = Arc::new(Mutex::new(Vec::new()));
    let notify_cfg = watchpost::config::notify::load_str(
        "route:\n  receiver: oncall\n  group_by: [alertname, heartbeat]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: oncall\n",
        "notify.yml",
        Path::new("."),
    )
    .unwrap();
    let (c2, g2) = (clock.clone(), got.clone());
    let factory: NotifierFactory = Arc::new(move |_r: &Receiver| {
        Ok(vec![Arc::new(Capture {
            clock: c2.clone(),
            got: g2.clone(),
        }) as Arc<dyn Notifier>])
    });
    let mut no = NotifyOptions::new(None);
    no.clock = clock.clone();
    let (_tx, rx) = tokio::sync::mpsc::channel(8);
    let notify = NotifyManager::start(&notify_cfg, factory, no, NotifyMetrics::new(), rx)
        .await
        .unwrap();

    let hb_cfg = HeartbeatConfig {
        name: "nightly-backup".into(),
        period: Duration::from_secs(3600),
        grace: Duration::from_secs(600),
        labels: Labels::from_pairs([("team", "storage")]),
        annotations: BTreeMap::new(),
    };
    let n2 = notify.clone();
    let c3 = clock.clone();
    let hb = Heartbeats::new(
        &[hb_cfg],
        HeartbeatOptions::new(None, Arc::new(move || c3.now())),
        Arc::new(MemStorage::new()),
        HeartbeatMetrics::default(),
        Arc::new(move |a| n2.ingest(a)),
    );
    let cancel = CancellationToken::new();
    let task = tokio::spawn(hb.clone().run(cancel.clone()));

    // Pinged at T0 + 1 min: the deadline is T0 + 1 min + 1 h + 10 min.
    tokio::time::sleep(Duration::from_secs(60)).await;
    hb.ping("nightly-backup").unwrap();
    let deadline = T0 + 60_000 + 4_200_000;
    tokio::time::sleep(Duration::from_secs(4_199)).await;
    assert!(
        got.lock().unwrap().is_empty(),
        "nothing before the deadline"
    );

    tokio::time::sleep(Duration::from_secs(5)).await;
    let (at, first) = got
        .lock()
        .unwrap()
        .first()
        .cloned()
        .expect("a notification");
    assert!(
        (deadline..deadline + 2_000).contains(&at),
        "notified {} ms after the deadline",
        at - deadline
    );
    assert_eq!(first.receiver, "oncall");
    assert_eq!(first.status, AlertStatus::Firing);
    let a = &first.alerts[0].alert;
    assert_eq!(a.labels.get("alertname"), Some("HeartbeatMissed"));
    assert_eq!(a.labels.get("heartbeat"), Some("nightly-backup"));
    assert_eq!(a.labels.get("severity"), Some("warning"));
    assert_eq!(a.labels.get("team"), Some("storage"));
    assert_eq!(a.starts_at, deadline);
    assert!(a.annotations["summary"].contains("nightly-backup"));

    // Still missed an hour later: re-sent to the pipeline, which does not
    // notify again within repeat_interval, and does not time it out.
    tokio::time::sleep(Duration::from_secs(3000)).await;
    assert_eq!(got.lock().unwrap().len(), 1);
    assert_eq!(notify.alerts().len(), 1, "still active in the pipeline");

    hb.ping("nightly-backup").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = got.lock().unwrap().clone();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1].1.status, AlertStatus::Resolved);
    assert_eq!(
        all[1].1.alerts[0].alert.labels.get("heartbeat"),
        Some("nightly-backup")
    );
    cancel.cancel();
    task.await.unwrap();
    notify.shutdown(Duration::from_secs(1)).await;
}

const CONFIG: &str = "global: {scrape_interval: 1h}
scrape_configs: []
heartbeats:
  - name: backup
    period: 1h
  - name: flaky
    period: 2s
    grace: 0s
    labels: {severity: critical}
";

async fn start_in(dir: &Path) -> watchpost::app::RunningApp {
    std::fs::write(dir.join("watchpost.yml"), CONFIG).unwrap();
    let opts = watchpost::app::Options::new(dir.join("watchpost.yml"), dir.join("data"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    watchpost::app::start(opts, listener).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_metrics_alerts_and_restart_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_in(dir.path()).await;
    let base = format!("http://{}", app.local_addr());
    let client = reqwest::Client::new();

    let r = client
        .get(format!("{base}/api/v1/heartbeat/backup"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["data"]["name"], "backup");
    assert_eq!(v["data"]["state"], "ok");

    let r = client
        .post(format!("{base}/api/v1/heartbeat/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["error"],
        "heartbeat \"nope\" is not configured: add it under heartbeats: in the config and reload (configured: backup, flaky)"
    );

    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("watchpost_heartbeat_last_ping_timestamp_seconds{name=\"backup\"}"))
        .unwrap_or_else(|| panic!("{metrics}"))
        .to_string();
    assert!(
        !metrics.contains("watchpost_heartbeat_last_ping_timestamp_seconds{name=\"flaky\"}"),
        "never pinged: no sample"
    );

    // The series is in storage, so rules and queries can use it.
    let q = "/api/v1/query?query=watchpost_heartbeat_last_ping_timestamp_seconds";
    let v = eventually(Duration::from_secs(5), "last ping in storage", || async {
        let v: serde_json::Value = client
            .get(format!("{base}{q}"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["data"]["result"].as_array()?.len() == 1).then_some(v)
    })
    .await;
    assert_eq!(v["data"]["result"][0]["metric"]["name"], "backup");

    // "flaky" is missed 2 s after start and shows in /api/v1/alerts.
    let alerts = eventually(Duration::from_secs(10), "HeartbeatMissed", || async {
        let v: serde_json::Value = client
            .get(format!("{base}/api/v1/alerts"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let a = v["data"]["alerts"].as_array()?.clone();
        (!a.is_empty()).then_some(a)
    })
    .await;
    assert_eq!(alerts[0]["labels"]["alertname"], "HeartbeatMissed");
    assert_eq!(alerts[0]["labels"]["heartbeat"], "flaky");
    assert_eq!(alerts[0]["labels"]["severity"], "critical");
    assert_eq!(alerts[0]["state"], "firing");
    // Routed like any other alert: the pipeline (default log receiver) has it.
    assert!(
        app.notify()
            .alerts()
            .iter()
            .any(|a| a.alert.labels.get("heartbeat") == Some("flaky"))
    );
    app.shutdown().await;

    // After a restart the last ping of "backup" is still known.
    let app = start_in(dir.path()).await;
    let base = format!("http://{}", app.local_addr());
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    app.shutdown().await;
}

#[test]
fn config_errors_name_the_place_and_the_fix() {
    let err = watchpost::config::load_str(
        "heartbeats:
  - name: ok
    period: 1h
  - name: ok
    period: 1h
  - name: bad name
    period: 500ms
    labels: {alertname: x}
  - period: 1h
  - name: x
    every: 1h
",
        "w.yml",
        Path::new("."),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("w.yml:"), "{err}");
    assert!(err.contains("every"), "{err}");

    let err = watchpost::config::load_str(
        "heartbeats:
  - name: ok
    period: 1h
  - name: ok
    period: 1h
  - name: bad name
    period: 500ms
    labels: {alertname: x}
  - period: 1h
",
        "w.yml",
        Path::new("."),
    )
    .unwrap_err()
    .to_string();
    let expect = [
        "w.yml:4:11: heartbeats: 2 \"ok\": the name is already used by heartbeat 1: names must be unique",
        "w.yml:6:11: heartbeats: 3 \"bad name\": invalid name: use 1 to 128 letters, digits, '_', '-' or '.' (it is a URL path segment)",
        "w.yml:7:13: heartbeats: 3 \"bad name\": period (500ms) is shorter than 1s: use a longer period",
        "w.yml:8:14: heartbeats: 3 \"bad name\": labels: \"alertname\" is set by watchpost (alertname=HeartbeatMissed, heartbeat=<name>): remove it",
        "heartbeats: 4: name is missing: give the check a name, e.g. name: nightly-backup",
    ];
    for e in expect {
        assert!(err.contains(e), "missing {e:?} in\n{err}");
    }
    let ok = watchpost::config::load_str(
        "heartbeats: [{name: a, period: 10m}]",
        "w.yml",
        Path::new("."),
    )
    .unwrap();
    assert_eq!(ok.heartbeats[0].grace, Duration::from_secs(60), "a tenth");
}
