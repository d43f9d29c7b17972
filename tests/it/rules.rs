//! The rule manager end to end: group loops over an in-memory storage,
//! alerts handed out on the channel, reloads, persisted state across a
//! restart, on_scrape triggering, keep_firing_while / keep_firing_for,
//! limits, staleness; and the `check rules` / `test rules` commands.
//!
//! Intervals are a few hundred milliseconds of real time; every wait is a
//! bounded poll for the expected state (`eventually`), never a sleep that
//! hopes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use watchpost::model::{Alert, Labels, ScrapeEvent, Timestamp};
use watchpost::promql::{Engine, Value};
use watchpost::rules::{
    ActiveAlert, AlertState, LoadOptions, RuleGroup, RuleHealth, RuleKind, RuleManager,
    RuleManagerOptions, parse_str,
};
use watchpost::storage::mem::MemStorage;
use watchpost::storage::{Queryable, Storage};
use watchpost::telemetry::RuleMetrics;

use crate::support::eventually;

fn now_ms() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as Timestamp
}

/// A manager over an in-memory storage, with its alert channel.
struct Rig {
    storage: Arc<MemStorage>,
    manager: RuleManager,
    alerts: mpsc::Receiver<Vec<Alert>>,
    opts: RuleManagerOptions,
    metrics: RuleMetrics,
    last_ts: Timestamp,
}

impl Rig {
    fn new(state_dir: &Path) -> Rig {
        Rig::with_storage(state_dir, Arc::new(MemStorage::new()))
    }

    fn with_storage(state_dir: &Path, storage: Arc<MemStorage>) -> Rig {
        let mut opts = RuleManagerOptions::new(state_dir.to_path_buf());
        opts.default_evaluation_interval = Duration::from_millis(100);
        opts.external_url = "http://wp.example:9464".to_string();
        opts.external_labels = Labels::from_pairs([("cluster", "eu1")]);
        let (tx, rx) = mpsc::channel(1024);
        let metrics = RuleMetrics::default();
        let manager = RuleManager::new(
            storage.clone(),
            Arc::new(Engine::default()),
            &opts,
            metrics.clone(),
            TaskTracker::new(),
            tx,
        );
        Rig {
            storage,
            manager,
            alerts: rx,
            opts,
            metrics,
            last_ts: 0,
        }
    }

    async fn apply(&self, yaml: &str) {
        let groups = groups(yaml);
        self.manager.apply(groups, &self.opts).await;
    }

    /// Appends `v` to series `series` (e.g. `temp{room="a"}`) at the
    /// current time (strictly after the previous append).
    fn set(&mut self, series: &str, v: f64) -> Timestamp {
        let labels = watchpost::rules::unittest::parse_metric(series).unwrap();
        let t = now_ms().max(self.last_ts + 1);
        self.last_ts = t;
        let mut app = self.storage.appender();
        app.append(&labels, t, v).unwrap();
        app.commit().unwrap();
        t
    }

    fn alert(&self, name: &str) -> Vec<ActiveAlert> {
        self.manager
            .alerts()
            .into_iter()
            .filter(|a| a.labels.get("alertname") == Some(name))
            .collect()
    }

    async fn wait_state(&self, name: &str, state: Option<AlertState>) -> Vec<ActiveAlert> {
        eventually(
            Duration::from_secs(10),
            &format!("{name} in state {state:?}"),
            || async {
                let a = self.alert(name);
                match state {
                    None => a.is_empty().then_some(a),
                    Some(s) => (!a.is_empty() && a.iter().all(|x| x.state == s)).then_some(a),
                }
            },
        )
        .await
    }

    /// The next batch of alerts whose first alert matches `pred`.
    async fn next_sent(&mut self, pred: impl Fn(&Alert) -> bool) -> Alert {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let batch = tokio::time::timeout_at(deadline, self.alerts.recv())
                .await
                .expect("an alert batch within 10s")
                .expect("channel open");
            if let Some(a) = batch.into_iter().find(|a| pred(a)) {
                return a;
            }
        }
    }

    fn query(&self, q: &str) -> Vec<(Labels, f64)> {
        let r = Engine::default()
            .instant(self.storage.as_ref() as &dyn Queryable, q, now_ms())
            .unwrap();
        match r.value {
            Value::Vector(v) => v.into_iter().map(|s| (s.labels, s.v)).collect(),
            other => panic!("{other:?}"),
        }
    }
}

fn groups(yaml: &str) -> Vec<RuleGroup> {
    parse_str(yaml, "rules/test.yml", LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

const TEMP_RULES: &str = "groups:
  - name: temp
    rules:
      - record: room:temp:max
        expr: max by (room) (temp)
      - alert: Hot
        expr: temp > 30
        labels:
          severity: page
        annotations:
          summary: 'room {{ $labels.room }} is {{ $value }} degrees in {{ $externalLabels.cluster }}'
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_evaluation_records_alerts_and_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::new(dir.path());
    rig.set("temp{room=\"a\"}", 35.0);
    rig.apply(TEMP_RULES).await;

    let a = rig.wait_state("Hot", Some(AlertState::Firing)).await;
    assert_eq!(a.len(), 1);
    assert_eq!(
        a[0].labels,
        Labels::from_pairs([("alertname", "Hot"), ("room", "a"), ("severity", "page")])
    );
    assert_eq!(a[0].annotations["summary"], "room a is 35 degrees in eu1");
    assert_eq!(a[0].value, 35.0);

    // Handed to notification with external labels, endsAt 4 x 1m ahead.
    let sent = rig.next_sent(|a| a.name() == "Hot").await;
    assert_eq!(sent.labels.get("cluster"), Some("eu1"));
    assert_eq!(sent.ends_at, Some(sent.updated_at + 4 * 60_000));
    assert_eq!(sent.starts_at, a[0].fired_at.unwrap());
    assert!(
        sent.generator_url
            .starts_with("http://wp.example:9464/graph?g0.expr=temp+%3E+30"),
        "{}",
        sent.generator_url
    );

    // The recording rule and ALERTS / ALERTS_FOR_STATE are in storage.
    eventually(Duration::from_secs(5), "recorded series", || async {
        let r = rig.query("room:temp:max");
        (r.len() == 1 && r[0].1 == 35.0).then_some(())
    })
    .await;
    let r = rig.query("ALERTS");
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0.get("alertstate"), Some("firing"));
    let r = rig.query("ALERTS_FOR_STATE");
    assert_eq!(r[0].1, (a[0].active_at / 1000) as f64);

    let g = &rig.manager.groups()[0];
    assert_eq!(g.name, "temp");
    assert_eq!(g.interval, Duration::from_millis(100));
    assert!(g.rules.iter().all(|r| r.health == RuleHealth::Good));
    assert!(g.last_evaluation.is_some());

    // The condition clears: a resolved notification with endsAt = resolution,
    // and the ALERTS series ends with a staleness marker.
    rig.set("temp{room=\"a\"}", 20.0);
    rig.wait_state("Hot", None).await;
    let resolved = rig.next_sent(|a| a.name() == "Hot").await;
    assert!(resolved.ends_at.unwrap() <= resolved.updated_at);
    eventually(Duration::from_secs(5), "ALERTS stale", || async {
        rig.query("ALERTS").is_empty().then_some(())
    })
    .await;
    rig.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_keeps_alerts_pending_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::new(dir.path());
    rig.set("temp{room=\"a\"}", 35.0);
    rig.apply(&TEMP_RULES.replace(
        "        expr: temp > 30\n",
        "        expr: temp > 30\n        for: 800ms\n",
    ))
    .await;
    let pending = rig.wait_state("Hot", Some(AlertState::Pending)).await;
    let firing = rig.wait_state("Hot", Some(AlertState::Firing)).await;
    assert_eq!(pending[0].active_at, firing[0].active_at);
    let held = firing[0].fired_at.unwrap() - firing[0].active_at;
    assert!(
        (800..1200).contains(&held),
        "fired {held} ms after becoming active"
    );
    rig.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_state_of_unchanged_rules_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::new(dir.path());
    rig.set("temp{room=\"a\"}", 35.0);
    rig.apply(TEMP_RULES).await;
    let before = rig.wait_state("Hot", Some(AlertState::Firing)).await;
    rig.next_sent(|a| a.name() == "Hot").await;

    // Same alert rule, another rule added: the group restarts, the alert
    // keeps its state and is not notified again inside the resend delay.
    let more = format!("{TEMP_RULES}      - record: other\n        expr: temp * 2\n");
    rig.apply(&more).await;
    eventually(Duration::from_secs(5), "new rule evaluated", || async {
        (!rig.query("other").is_empty()).then_some(())
    })
    .await;
    let after = rig.wait_state("Hot", Some(AlertState::Firing)).await;
    assert_eq!(after[0].active_at, before[0].active_at);
    assert_eq!(after[0].fired_at, before[0].fired_at);
    while let Ok(batch) = rig.alerts.try_recv() {
        assert!(
            batch.iter().all(|a| a.name() != "Hot"),
            "re-notified after reload: {batch:?}"
        );
    }

    // A changed query is a new rule: its alert starts over.
    let changed = TEMP_RULES.replace("temp > 30", "temp > 31");
    rig.apply(&changed).await;
    let fresh = eventually(Duration::from_secs(5), "restarted alert", || async {
        let a = rig.alert("Hot");
        (a.len() == 1 && a[0].active_at > before[0].active_at).then_some(a)
    })
    .await;
    assert!(fresh[0].fired_at > before[0].fired_at);

    // Removing the group stops it; its alerts are gone.
    rig.apply("groups: []\n").await;
    assert!(rig.manager.groups().is_empty());
    assert!(rig.alert("Hot").is_empty());
    rig.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_state_and_pending_timers_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(MemStorage::new());
    let rules = "groups:
  - name: restart
    rules:
      - alert: Hot
        expr: temp > 30
      - alert: Slow
        expr: latency > 1
        for: 3s
";
    let mut rig = Rig::with_storage(dir.path(), storage.clone());
    rig.set("temp{room=\"a\"}", 35.0);
    rig.set("latency{svc=\"x\"}", 2.0);
    rig.apply(rules).await;
    let hot = rig.wait_state("Hot", Some(AlertState::Firing)).await;
    let slow = rig.wait_state("Slow", Some(AlertState::Pending)).await;
    rig.next_sent(|a| a.name() == "Hot").await;
    rig.manager.shutdown().await;
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "one state file for the group");

    // A new manager over the same state: Hot is still firing since the same
    // time and not re-notified (the last send was under a minute ago); Slow
    // fires 3s after it first became active, not 3s after the restart.
    let mut rig2 = Rig::with_storage(dir.path(), storage.clone());
    rig2.last_ts = rig.last_ts;
    rig2.apply(rules).await;
    let hot2 = rig2.wait_state("Hot", Some(AlertState::Firing)).await;
    assert_eq!(hot2[0].active_at, hot[0].active_at);
    assert_eq!(hot2[0].fired_at, hot[0].fired_at);
    let slow2 = rig2.wait_state("Slow", Some(AlertState::Firing)).await;
    assert_eq!(slow2[0].active_at, slow[0].active_at);
    let held = slow2[0].fired_at.unwrap() - slow2[0].active_at;
    assert!(
        (3000..3500).contains(&held),
        "Slow fired {held} ms after becoming active"
    );
    let sent = rig2.next_sent(|_| true).await;
    assert_eq!(sent.name(), "Slow", "only the newly firing alert is sent");

    // Hot clears while watchpost is down: the first evaluation after the
    // restart sends its resolution.
    rig2.manager.shutdown().await;
    let mut rig3 = Rig::with_storage(dir.path(), storage);
    rig3.last_ts = rig2.last_ts;
    rig3.set("temp{room=\"a\"}", 20.0);
    rig3.apply(rules).await;
    let resolved = rig3.next_sent(|a| a.name() == "Hot").await;
    assert!(resolved.resolved_at(resolved.updated_at));
    assert_eq!(resolved.starts_at, hot[0].fired_at.unwrap());
    rig3.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_scrape_groups_evaluate_at_the_scrape_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::new(dir.path());
    // An interval long enough that only scrapes trigger evaluations here.
    rig.apply(
        "groups:
  - name: fast
    interval: 1y
    evaluation: on_scrape
    rules:
      - alert: Breach
        expr: bench_trigger > 0
  - name: slow
    interval: 1y
    rules:
      - alert: Other
        expr: bench_trigger > 0
",
    )
    .await;
    let hook = rig.manager.scrape_hook();
    let names = |n: &[&str]| Arc::new(n.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let t0 = rig.set("bench_trigger{service=\"a\"}", 0.0);
    hook(&ScrapeEvent {
        job: "bench".into(),
        timestamp: t0,
        metric_names: names(&["bench_trigger", "up"]),
    });
    eventually(
        Duration::from_secs(5),
        "first on_scrape evaluation",
        || async {
            let g = rig.manager.groups();
            (g[0].last_evaluation == Some(t0)).then_some(())
        },
    )
    .await;
    assert!(rig.alert("Breach").is_empty());

    // A scrape of other metrics does not wake the group.
    let t1 = rig.set("bench_trigger{service=\"a\"}", 1.0);
    hook(&ScrapeEvent {
        job: "other".into(),
        timestamp: t1,
        metric_names: names(&["node_load1", "up"]),
    });
    let t2 = rig.last_ts + 1;
    hook(&ScrapeEvent {
        job: "bench".into(),
        timestamp: t2,
        metric_names: names(&["bench_trigger"]),
    });
    let a = rig.wait_state("Breach", Some(AlertState::Firing)).await;
    assert_eq!(a[0].active_at, t2, "evaluated at the scrape's timestamp");
    assert_eq!(rig.manager.groups()[0].last_evaluation, Some(t2));
    let on_scrape: u64 = rig
        .metrics
        .group_on_scrape_evaluations
        .get_or_create(&vec![("rule_group", "rules/test.yml;fast".to_string())])
        .get();
    assert_eq!(on_scrape, 2);
    // The interval group saw none of it.
    assert!(rig.alert("Other").is_empty());
    assert_eq!(rig.manager.groups()[1].last_evaluation, None);

    // A scrape older than the last evaluation is evaluated just after it.
    hook(&ScrapeEvent {
        job: "bench".into(),
        timestamp: t0,
        metric_names: names(&["bench_trigger"]),
    });
    eventually(Duration::from_secs(5), "late scrape evaluated", || async {
        (rig.manager.groups()[0].last_evaluation == Some(t2 + 1)).then_some(())
    })
    .await;
    rig.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_firing_while_is_value_hysteresis() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::new(dir.path());
    rig.set("cpu{instance=\"a\"}", 0.95);
    rig.apply(
        "groups:
  - name: cpu
    rules:
      - alert: CpuHigh
        expr: cpu > 0.9
        keep_firing_while: cpu > 0.8
        labels: {severity: page}
",
    )
    .await;
    rig.wait_state("CpuHigh", Some(AlertState::Firing)).await;
    rig.set("cpu{instance=\"a\"}", 0.85);
    let kept = eventually(Duration::from_secs(5), "kept firing", || async {
        let a = rig.alert("CpuHigh");
        a.first().filter(|a| a.keep_firing_since.is_some()).cloned()
    })
    .await;
    assert_eq!(kept.state, AlertState::Firing);
    let g = rig.manager.groups();
    let RuleKind::Alerting {
        keep_firing_while, ..
    } = &g[0].rules[0].kind
    else {
        panic!()
    };
    assert_eq!(keep_firing_while.as_deref(), Some("cpu > 0.8"));
    rig.set("cpu{instance=\"a\"}", 0.7);
    rig.wait_state("CpuHigh", None).await;
    rig.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_firing_for_holds_then_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::new(dir.path());
    rig.set("up{job=\"x\"}", 0.0);
    rig.apply(
        "groups:
  - name: up
    rules:
      - alert: Down
        expr: up == 0
        keep_firing_for: 1s
",
    )
    .await;
    rig.wait_state("Down", Some(AlertState::Firing)).await;
    rig.set("up{job=\"x\"}", 1.0);
    let kept = eventually(Duration::from_secs(5), "kept firing", || async {
        rig.alert("Down").first().and_then(|a| a.keep_firing_since)
    })
    .await;
    rig.wait_state("Down", None).await;
    let resolved = rig.next_sent(|a| a.resolved_at(a.updated_at)).await;
    let held = resolved.ends_at.unwrap() - kept;
    assert!(
        (1000..1500).contains(&held),
        "resolved {held} ms after it stopped"
    );
    rig.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_evaluation_errors_show_in_health() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::new(dir.path());
    rig.set("x{i=\"1\"}", 1.0);
    rig.set("x{i=\"2\"}", 1.0);
    rig.apply(
        "groups:
  - name: limited
    limit: 1
    rules:
      - alert: Many
        expr: x > 0
      - record: many
        expr: x
      - record: bad
        expr: x + on() x
",
    )
    .await;
    let g = eventually(Duration::from_secs(5), "evaluated", || async {
        let g = rig.manager.groups();
        g[0].rules
            .iter()
            .all(|r| r.health == RuleHealth::Bad)
            .then_some(g)
    })
    .await;
    let errs: Vec<&str> = g[0]
        .rules
        .iter()
        .map(|r| r.last_error.as_deref().unwrap())
        .collect();
    assert_eq!(errs[0], "exceeded limit of 1 with 2 alerts");
    assert_eq!(errs[1], "exceeded limit 1 with 2 series");
    assert!(
        errs[2].contains("many-to-many matching not allowed"),
        "{}",
        errs[2]
    );
    assert!(rig.alert("Many").is_empty());
    let failures = rig
        .metrics
        .evaluation_failures
        .get_or_create(&vec![("rule_group", "rules/test.yml;limited".to_string())])
        .get();
    assert!(failures >= 3);
    rig.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_series_that_disappear_get_staleness_markers() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::new(dir.path());
    rig.set("x{i=\"1\"}", 1.0);
    rig.set("x{i=\"2\"}", 2.0);
    rig.apply("groups:\n  - name: rec\n    rules:\n      - record: y\n        expr: x > 1\n")
        .await;
    eventually(Duration::from_secs(5), "recorded", || async {
        (rig.query("y").len() == 1).then_some(())
    })
    .await;
    rig.set("x{i=\"2\"}", 0.0);
    // Without a staleness marker y would stay visible for the 5m lookback.
    eventually(Duration::from_secs(5), "y stale", || async {
        rig.query("y").is_empty().then_some(())
    })
    .await;
    // Removing the group marks what it wrote stale after two intervals.
    rig.set("x{i=\"2\"}", 5.0);
    eventually(Duration::from_secs(5), "recorded again", || async {
        (rig.query("y").len() == 1).then_some(())
    })
    .await;
    rig.apply("groups: []\n").await;
    eventually(
        Duration::from_secs(5),
        "removed group's series stale",
        || async { rig.query("y").is_empty().then_some(()) },
    )
    .await;
    rig.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_file_costs_only_that_state() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("group-0123456789abcdef.state"),
        "not a state file",
    )
    .unwrap();
    let mut rig = Rig::new(dir.path());
    rig.set("temp{room=\"a\"}", 35.0);
    rig.apply(TEMP_RULES).await;
    rig.wait_state("Hot", Some(AlertState::Firing)).await;
    assert!(dir.path().join("group-0123456789abcdef.corrupt").exists());
    rig.manager.shutdown().await;
}

// ------------------------------------------------------------------ CLI

fn watchpost() -> Command {
    Command::new(env!("CARGO_BIN_EXE_watchpost"))
}

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/conformance/rules-unit"
);

fn corpus(f: &str) -> PathBuf {
    Path::new(CORPUS).join(f)
}

#[test]
fn check_rules_reports_like_promtool() {
    let out = watchpost()
        .args(["check", "rules"])
        .arg(corpus("rules.yml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("  SUCCESS: 5 rules found"), "{stdout}");

    let out = watchpost()
        .args(["check", "rules"])
        .arg(corpus("rules-bad.yml"))
        .arg(corpus("bad-rules-syntax.yml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rules-bad.yml:12:20: group \"alerts\", rule 1 \"InstanceDown\": annotation \"summary\": template: __alert_InstanceDown:1: undefined variable \"$label\""), "{stderr}");
    assert!(stderr.contains("bad-rules-syntax.yml:7:15: group \"bad-syntax\", rule 1 \"x\": could not parse expression"), "{stderr}");

    // Duplicates are a lint finding: exit 0, or 3 with --lint-fatal.
    let out = watchpost()
        .args(["check", "rules"])
        .arg(corpus("prometheus-rules.lint.yml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lint error 1 duplicate rule(s) found.\nMetric: HighRequestLatency\nLabel(s):\n\tseverity: page\n"), "{stderr}");
    let out = watchpost()
        .args(["check", "rules", "--lint-fatal"])
        .arg(corpus("prometheus-rules.lint.yml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn test_rules_exit_codes_and_output() {
    let out = watchpost()
        .args(["test", "rules"])
        .arg(corpus("long-period.yml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("Unit Testing:  "), "{stdout}");
    assert!(stdout.contains("  SUCCESS\n"), "{stdout}");

    let out = watchpost()
        .args(["test", "rules"])
        .arg(corpus("failing.yml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("  FAILED:\n"), "{stderr}");
    assert!(
        stderr.contains("    name: Failing test,\n    alertname: Test, time: 0s, \n        exp:[\n            0:\n              Labels:{alertname=\"Test\"}\n              Annotations:{}\n            ], \n        got:[]\n"),
        "{stderr}"
    );

    let out = watchpost()
        .args(["test", "rules", "--run", "correct"])
        .arg(corpus("rules_run.yml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn check_config_checks_the_rule_files_it_names() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("rules/host.yml"),
        "groups:\n  - name: host\n    rules:\n      - alert: Up\n        expr: up == 1\n      - alert: HostDown\n        expr: up ==\n",
    )
    .unwrap();
    let cfg = dir.path().join("w.yml");
    std::fs::write(&cfg, "rule_files: [rules/*.yml]\n").unwrap();
    let out = watchpost()
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "{}:7:15: group \"host\", rule 2 \"HostDown\": could not parse expression: ",
        dir.path().join("rules/host.yml").display()
    );
    assert!(stderr.starts_with(&want), "{stderr}\nwant prefix {want}");

    // The shipped default config loads the self-monitoring rules.
    let out = watchpost()
        .args(["check", "config"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config/watchpost.yml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("rule groups, 10 rules"), "{stdout}");
}
