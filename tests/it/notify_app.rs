//! The notification pipeline inside the running app: alerts pushed in the
//! way Prometheus pushes them reach a real HTTP receiver, the Alertmanager
//! API v2 serves the app's state, reload swaps the routing tree, and a
//! config without `notify:` sends alerts to the `log` receiver.

use std::time::Duration;

use crate::channels_common::Recorder;
use crate::support::{self, eventually};

fn config(webhook_url: &str, receiver: &str) -> String {
    format!(
        r#"global: {{scrape_interval: 1h}}
scrape_configs: []
notify:
  route:
    receiver: {receiver}
    group_by: [alertname]
    group_wait: 0s
    group_interval: 1s
  receivers:
    - name: {receiver}
      webhook_configs:
        - url: "{webhook_url}"
"#
    )
}

fn pushed_alert(name: &str) -> serde_json::Value {
    serde_json::json!([{
        "labels": {"alertname": name, "severity": "page"},
        "annotations": {"summary": "disk full"},
        "generatorURL": "http://prometheus.test/graph"
    }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_alert_reaches_the_webhook_and_the_v2_api() {
    let hook = Recorder::start().await;
    let h = support::start(&config(&hook.url("/hook"), "team"), None).await;
    let r = h
        .client
        .post(format!("{}/api/v2/alerts", h.base))
        .json(&pushed_alert("DiskFull"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let seen = eventually(Duration::from_secs(10), "webhook called", || async {
        let s = hook.seen();
        (!s.is_empty()).then_some(s)
    })
    .await;
    assert_eq!(seen[0].path, "/hook");
    let body = seen[0].json();
    assert_eq!(body["version"], "4");
    assert_eq!(body["receiver"], "team");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "DiskFull");
    assert_eq!(body["alerts"][0]["annotations"]["summary"], "disk full");

    let alerts = h.get_json("/api/v2/alerts").await;
    assert_eq!(alerts[0]["labels"]["alertname"], "DiskFull", "{alerts}");
    assert_eq!(alerts[0]["receivers"][0]["name"], "team", "{alerts}");
    let status = h.get_json("/api/v2/status").await;
    assert!(
        status["config"]["original"]
            .as_str()
            .unwrap()
            .contains("webhook_configs"),
        "{status}"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_receivers_and_a_bad_notify_section_changes_nothing() {
    let hook = Recorder::start().await;
    let h = support::start(&config(&hook.url("/hook"), "first"), None).await;
    let names = |v: serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(h.get_json("/api/v2/receivers").await), ["first"]);

    h.write_config(&config(&hook.url("/hook"), "second"));
    h.app().reload().await.expect("reload succeeds");
    assert_eq!(names(h.get_json("/api/v2/receivers").await), ["second"]);

    // A receiver the route does not know: the whole reload is refused.
    let bad = config(&hook.url("/hook"), "third").replace("receiver: third", "receiver: nobody");
    h.write_config(&bad);
    let err = h
        .app()
        .reload()
        .await
        .expect_err("bad notify section refused");
    assert!(err.0.contains("nobody"), "{}", err.0);
    assert_eq!(names(h.get_json("/api/v2/receivers").await), ["second"]);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_notify_section_alerts_go_to_the_log_receiver() {
    let h = support::start("global: {scrape_interval: 1h}\nscrape_configs: []\n", None).await;
    let receivers = h.get_json("/api/v2/receivers").await;
    assert_eq!(receivers[0]["name"], "log", "{receivers}");
    let r = h
        .client
        .post(format!("{}/api/v2/alerts", h.base))
        .json(&pushed_alert("Visible"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let alerts = eventually(Duration::from_secs(5), "alert listed", || async {
        let a = h.get_json("/api/v2/alerts").await;
        (a.as_array().is_some_and(|a| !a.is_empty())).then_some(a)
    })
    .await;
    assert_eq!(alerts[0]["receivers"][0]["name"], "log");
    h.shutdown().await;
}

/// The whole path in one process: a scrape reveals a breach, the on_scrape
/// rule fires, the notification pipeline delivers to the webhook; the
/// value drops and the resolved message follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_breach_fires_a_rule_and_reaches_the_webhook() {
    let hook = Recorder::start().await;
    let value = std::sync::Arc::new(std::sync::Mutex::new("temperature 20\n".to_string()));
    let exp = support::exporter(support::Behavior::Body(value.clone())).await;
    let rules_dir = tempfile::tempdir().unwrap();
    let rules = rules_dir.path().join("hot.yml");
    std::fs::write(
        &rules,
        r#"groups:
  - name: hot
    interval: 1h
    evaluation: on_scrape
    rules:
      - alert: TooHot
        expr: temperature > 50
        labels: {severity: page}
        annotations:
          summary: "{{ $labels.instance }} is at {{ $value }} degrees"
"#,
    )
    .unwrap();
    let yaml = format!(
        r#"global: {{scrape_interval: 200ms, scrape_timeout: 100ms}}
rule_files: ["{}"]
scrape_configs:
  - job_name: sensor
    static_configs: [{{targets: ["{}"]}}]
notify:
  route:
    receiver: team
    group_by: [alertname]
    group_wait: 0s
    group_interval: 1s
  receivers:
    - name: team
      webhook_configs:
        - url: "{}"
          send_resolved: true
"#,
        rules.display(),
        exp.target(),
        hook.url("/hook")
    );
    let h = support::start(&yaml, None).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(hook.seen().is_empty(), "nothing fires below the threshold");

    *value.lock().unwrap() = "temperature 75\n".to_string();
    let firing = eventually(Duration::from_secs(10), "firing notification", || async {
        hook.seen()
            .into_iter()
            .find(|s| s.json()["status"] == "firing")
    })
    .await;
    let body = firing.json();
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "TooHot");
    assert_eq!(body["alerts"][0]["labels"]["job"], "sensor");
    assert_eq!(
        body["alerts"][0]["annotations"]["summary"],
        format!("{} is at 75 degrees", exp.target())
    );

    *value.lock().unwrap() = "temperature 30\n".to_string();
    eventually(Duration::from_secs(10), "resolved notification", || async {
        hook.seen()
            .into_iter()
            .find(|s| s.json()["status"] == "resolved")
    })
    .await;
    h.shutdown().await;
}

/// The SMTP server is down while three alert groups notify, then comes
/// back: every notification arrives, each once, and the failed attempts
/// are counted by integration and reason (Alertmanager's split: failed
/// requests here, `watchpost_notifications_failed_total` only for
/// notifications given up on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_outage_every_notification_arrives_once() {
    use crate::smtp_server::{Mail, Options, SmtpServer};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = format!(
        r#"global: {{scrape_interval: 1h}}
scrape_configs: []
notify:
  route:
    receiver: mail
    group_by: [alertname]
    group_wait: 0s
    group_interval: 1s
    repeat_interval: 1h
  receivers:
    - name: mail
      email_configs:
        - to: oncall@example.com
          from: watchpost@example.com
          smarthost: 127.0.0.1:{port}
          require_tls: false
"#
    );
    let h = support::start(&yaml, None).await;
    for name in ["OutageA", "OutageB", "OutageC"] {
        let r = h
            .client
            .post(format!("{}/api/v2/alerts", h.base))
            .json(&pushed_alert(name))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let failures = eventually(
        Duration::from_secs(10),
        "failed attempts counted",
        || async {
            let m = h
                .client
                .get(format!("{}/metrics", h.base))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            m.lines()
                .find(|l| {
                    l.starts_with("watchpost_notification_requests_failed_total{")
                        && l.contains("email[0]")
                })
                .map(str::to_string)
        },
    )
    .await;
    assert!(failures.contains("reason="), "{failures}");

    let server = SmtpServer::start_on(&format!("127.0.0.1:{port}"), Options::default()).await;
    let got = eventually(
        Duration::from_secs(30),
        "three mails after the outage",
        || async {
            let m = server.messages();
            (m.len() >= 3).then_some(m)
        },
    )
    .await;
    // Three group intervals more: nothing is sent twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = server.messages();
    assert_eq!(all.len(), 3, "each notification exactly once");
    let mut subjects: Vec<String> = got
        .iter()
        .map(|r| {
            Mail::parse(&r.data)
                .header("Subject")
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    subjects.sort();
    for (s, name) in subjects.iter().zip(["OutageA", "OutageB", "OutageC"]) {
        assert!(s.contains(name), "{subjects:?}");
    }
    h.shutdown().await;
}

/// Template files are read again on reload: a changed definition shows in
/// the next message without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_reads_template_files_again() {
    let hook = Recorder::start().await;
    let tdir = tempfile::tempdir().unwrap();
    let tmpl = tdir.path().join("team.tmpl");
    std::fs::write(
        &tmpl,
        r#"{{ define "slack.default.title" }}first {{ .CommonLabels.alertname }}{{ end }}"#,
    )
    .unwrap();
    let yaml = format!(
        r##"global: {{scrape_interval: 1h}}
scrape_configs: []
notify:
  templates: ["{}/*.tmpl"]
  route:
    receiver: chat
    group_by: [alertname]
    group_wait: 0s
  receivers:
    - name: chat
      slack_configs:
        - api_url: "{}"
          channel: "#ops"
"##,
        tdir.path().display(),
        hook.url("/slack")
    );
    let h = support::start(&yaml, None).await;
    let title_of = |name: &'static str| {
        let hook = &hook;
        async move {
            eventually(Duration::from_secs(10), "slack message", || async {
                hook.seen().into_iter().find_map(|s| {
                    let t = s.json()["attachments"][0]["title"].as_str()?.to_string();
                    t.ends_with(name).then_some(t)
                })
            })
            .await
        }
    };
    let push = |name: &'static str| {
        let (client, base) = (h.client.clone(), h.base.clone());
        async move {
            let r = client
                .post(format!("{base}/api/v2/alerts"))
                .json(&pushed_alert(name))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    push("Before").await;
    assert_eq!(title_of("Before").await, "first Before");

    std::fs::write(
        &tmpl,
        r#"{{ define "slack.default.title" }}second {{ .CommonLabels.alertname }}{{ end }}"#,
    )
    .unwrap();
    h.app().reload().await.expect("reload succeeds");
    push("After").await;
    assert_eq!(title_of("After").await, "second After");
    h.shutdown().await;
}
