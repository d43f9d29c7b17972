//! Timeline tests of the whole pipeline on a paused tokio clock: a script
//! of alert changes (played the way Prometheus's rule manager sends
//! alerts: firing ones re-sent every minute with `endsAt` four minutes
//! ahead, resolved ones re-sent for 15 minutes), silences and config, and
//! the exact list of what fake integrations received, and when.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::*;
use crate::config::notify::load_str;
use crate::model::Labels;
use crate::notify::silence::SilenceMatcher;

/// 2024-05-06T00:00:00Z, a Monday.
const T0: i64 = 1_714_953_600_000;

#[derive(Clone)]
enum Behavior {
    Ok,
    /// Retryable failures until this many seconds after the start.
    DownUntil(u64),
    Fail(SendError),
}

struct Fake {
    name: String,
    receiver: String,
    send_resolved: bool,
    behavior: Arc<Mutex<Behavior>>,
    start: Instant,
    log: Arc<Mutex<Vec<String>>>,
    attempts: Arc<Mutex<usize>>,
}

fn fmt_secs(mut s: u64) -> String {
    let mut out = String::new();
    for (unit, n) in [("h", 3600), ("m", 60)] {
        if s >= n {
            out.push_str(&format!("{}{unit}", s / n));
            s %= n;
        }
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

fn name(l: &Labels) -> String {
    l.iter()
        .map(|l| l.value.as_str())
        .collect::<Vec<_>>()
        .join("/")
}

fn summary(d: &NotificationData) -> String {
    let firing: Vec<String> = d.firing().map(|a| name(&a.alert.labels)).collect();
    let resolved: Vec<String> = d.resolved().map(|a| name(&a.alert.labels)).collect();
    let mut s = Vec::new();
    if !firing.is_empty() {
        s.push(format!("firing={}", firing.join(",")));
    }
    if !resolved.is_empty() {
        s.push(format!("resolved={}", resolved.join(",")));
    }
    s.join(" ")
}

impl Notifier for Fake {
    fn integration(&self) -> &str {
        &self.name
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn send<'a>(
        &'a self,
        msg: &'a NotificationData,
    ) -> Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>> {
        Box::pin(async move {
            *self.attempts.lock().unwrap() += 1;
            let elapsed = self.start.elapsed().as_secs();
            let b = self.behavior.lock().unwrap().clone();
            match b {
                Behavior::DownUntil(t) if elapsed < t => {
                    return Err(SendError::retryable("server_error", "503 down"));
                }
                Behavior::Fail(e) => return Err(e),
                _ => {}
            }
            self.log.lock().unwrap().push(format!(
                "{} {} {} {}",
                fmt_secs(elapsed),
                self.receiver,
                self.name,
                summary(msg)
            ));
            Ok(())
        })
    }
}

/// Plays Prometheus's side: the state of each alert, re-sent every minute.
#[derive(Default)]
struct Rules {
    /// labels -> (starts_at, resolved_at)
    alerts: BTreeMap<String, (i64, Option<i64>)>,
}

fn labels(s: &str) -> Labels {
    Labels::from_pairs(s.split(',').map(|p| p.split_once('=').unwrap()))
}

impl Rules {
    fn batch(&self, now: i64, only: Option<&str>) -> Vec<Alert> {
        self.alerts
            .iter()
            .filter(|(k, _)| only.is_none_or(|o| o == k.as_str()))
            .filter(|(_, (_, r))| r.is_none_or(|r| now - r <= 15 * 60_000))
            .map(|(k, (s, r))| Alert {
                labels: labels(k),
                annotations: BTreeMap::new(),
                starts_at: *s,
                ends_at: Some(r.unwrap_or(now + 4 * 60_000)),
                updated_at: now,
                generator_url: String::new(),
            })
            .collect()
    }
}

struct Harness {
    mgr: Arc<NotifyManager>,
    tx: mpsc::Sender<Vec<Alert>>,
    start: Instant,
    log: Arc<Mutex<Vec<String>>>,
    attempts: Arc<Mutex<usize>>,
    behaviors: HashMap<String, Arc<Mutex<Behavior>>>,
    rules: Arc<Mutex<Rules>>,
    silences: Vec<String>,
    clock: Clock,
}

struct Setup<'a> {
    yaml: &'a str,
    state_dir: Option<&'a Path>,
    wall: i64,
    /// Behavior per receiver (default Ok).
    behaviors: Vec<(&'a str, Behavior)>,
    retry: Option<RetryPolicy>,
}

impl<'a> Setup<'a> {
    fn new(yaml: &'a str) -> Self {
        Setup {
            yaml,
            state_dir: None,
            wall: T0,
            behaviors: vec![],
            retry: None,
        }
    }
}

async fn harness(s: Setup<'_>) -> Harness {
    let config = load_str(s.yaml, "test.yml", Path::new(".")).unwrap();
    let start = Instant::now();
    let log = Arc::new(Mutex::new(Vec::new()));
    let attempts = Arc::new(Mutex::new(0));
    let behaviors: HashMap<String, Arc<Mutex<Behavior>>> = config
        .receivers
        .iter()
        .map(|r| {
            let b = s
                .behaviors
                .iter()
                .find(|(n, _)| *n == r.name)
                .map_or(Behavior::Ok, |(_, b)| b.clone());
            (r.name.clone(), Arc::new(Mutex::new(b)))
        })
        .collect();
    let factory: NotifierFactory = {
        let (log, attempts, behaviors) = (log.clone(), attempts.clone(), behaviors.clone());
        Arc::new(move |r: &Receiver| {
            Ok(r.integrations
                .iter()
                .map(|i| {
                    Arc::new(Fake {
                        name: i.display_name(),
                        receiver: r.name.clone(),
                        send_resolved: i.send_resolved,
                        behavior: behaviors[&r.name].clone(),
                        start,
                        log: log.clone(),
                        attempts: attempts.clone(),
                    }) as Arc<dyn Notifier>
                })
                .collect())
        })
    };
    let clock = Clock::following_tokio(s.wall);
    let mut opts = NotifyOptions::new(s.state_dir.map(Path::to_path_buf));
    opts.clock = clock.clone();
    opts.external_url = "http://watchpost:9464".into();
    if let Some(r) = s.retry {
        opts.retry = r;
    }
    let (tx, rx) = mpsc::channel(16);
    let mgr = NotifyManager::start(&config, factory, opts, NotifyMetrics::new(), rx)
        .await
        .unwrap();
    let rules = Arc::new(Mutex::new(Rules::default()));
    // The rule manager's resend loop.
    {
        let (rules, tx, clock) = (rules.clone(), tx.clone(), clock.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let batch = rules.lock().unwrap().batch(clock.now(), None);
                if !batch.is_empty() && tx.send(batch).await.is_err() {
                    return;
                }
            }
        });
    }
    Harness {
        mgr,
        tx,
        start,
        log,
        attempts,
        behaviors,
        rules,
        silences: Vec::new(),
        clock,
    }
}

impl Harness {
    async fn at(&self, secs: u64) {
        tokio::time::sleep_until(self.start + Duration::from_secs(secs)).await;
    }

    async fn fire(&self, l: &str) {
        let now = self.clock.now();
        let batch = {
            let mut r = self.rules.lock().unwrap();
            r.alerts.insert(l.to_string(), (now, None));
            r.batch(now, Some(l))
        };
        self.tx.send(batch).await.unwrap();
    }

    async fn resolve(&self, l: &str) {
        let now = self.clock.now();
        let batch = {
            let mut r = self.rules.lock().unwrap();
            if let Some(a) = r.alerts.get_mut(l) {
                a.1 = Some(now);
            }
            r.batch(now, Some(l))
        };
        self.tx.send(batch).await.unwrap();
    }

    async fn silence(&mut self, matchers: &str, secs: i64) {
        let now = self.clock.now();
        let ms = crate::config::notify::parse_matchers(matchers)
            .unwrap()
            .iter()
            .map(SilenceMatcher::from_matcher)
            .collect();
        let id = self
            .mgr
            .set_silence(PostedSilence {
                id: None,
                matchers: ms,
                starts_at: now,
                ends_at: now + secs * 1000,
                created_by: "test".into(),
                comment: "test".into(),
            })
            .await
            .unwrap();
        self.silences.push(id);
    }

    fn timeline(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn set_behavior(&self, receiver: &str, b: Behavior) {
        *self.behaviors[receiver].lock().unwrap() = b;
    }
}

enum Step {
    Fire(&'static str),
    Resolve(&'static str),
    /// Matchers, seconds.
    Silence(&'static str, i64),
    /// Index into the silences created so far.
    Expire(usize),
}

struct Case {
    name: &'static str,
    yaml: &'static str,
    wall: i64,
    script: Vec<(u64, Step)>,
    until: u64,
    want: Vec<&'static str>,
}

async fn play(c: Case) {
    let mut s = Setup::new(c.yaml);
    s.wall = c.wall;
    let mut h = harness(s).await;
    for (t, step) in c.script {
        h.at(t).await;
        match step {
            Step::Fire(l) => h.fire(l).await,
            Step::Resolve(l) => h.resolve(l).await,
            Step::Silence(m, secs) => h.silence(m, secs).await,
            Step::Expire(i) => h.mgr.expire_silence(&h.silences[i].clone()).await.unwrap(),
        }
    }
    h.at(c.until).await;
    assert_eq!(h.timeline(), c.want, "case {:?}", c.name);
    h.mgr.shutdown(Duration::from_secs(1)).await;
}

const BASIC: &str = r#"
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
receivers:
  - name: team
    webhook_configs: [{url: "http://127.0.0.1:1/hook"}]
"#;

const NO_RESOLVED: &str = r#"
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
receivers:
  - name: team
    webhook_configs: [{url: "http://127.0.0.1:1/hook", send_resolved: false}]
"#;

const FAST: &str = r#"
route:
  receiver: team
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 10m
receivers:
  - name: team
    webhook_configs: [{url: "http://127.0.0.1:1/hook"}]
"#;

const ROUTES: &str = r#"
route:
  receiver: default
  group_by: [alertname]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 1h
  routes:
    - receiver: db
      matchers: [service="db"]
      continue: true
    - receiver: pager
      matchers: [severity="page"]
      group_wait: 0s
receivers:
  - name: default
    webhook_configs: [{url: "http://127.0.0.1:1/a"}]
  - name: db
    webhook_configs: [{url: "http://127.0.0.1:1/b"}, {url: "http://127.0.0.1:1/c"}]
  - name: pager
    webhook_configs: [{url: "http://127.0.0.1:1/d"}]
"#;

const INHIBIT: &str = r#"
route:
  receiver: team
  group_by: [alertname, severity]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 1h
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [alertname]
receivers:
  - name: team
    webhook_configs: [{url: "http://127.0.0.1:1/hook"}]
"#;

const MUTED: &str = r#"
route:
  receiver: team
  group_by: [alertname]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 4h
  routes:
    - matchers: [when="night"]
      mute_time_intervals: [nights]
    - matchers: [when="office"]
      active_time_intervals: [office]
time_intervals:
  - name: nights
    time_intervals: [{times: [{start_time: "00:00", end_time: "06:00"}]}]
  - name: office
    time_intervals: [{times: [{start_time: "09:00", end_time: "17:00"}]}]
receivers:
  - name: team
    webhook_configs: [{url: "http://127.0.0.1:1/hook"}]
"#;

const WHEN_MUTED: &str = r#"
route:
  receiver: team
  group_by: [alertname]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 1h
  send_resolved_when_muted: true
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
receivers:
  - name: team
    webhook_configs: [{url: "http://127.0.0.1:1/hook"}]
"#;

#[tokio::test(start_paused = true)]
async fn grouping() {
    play(Case {
        name: "alerts that fire together go out together; later ones at the next group_interval",
        yaml: BASIC,
        wall: T0,
        script: vec![
            (0, Step::Fire("alertname=A,i=1")),
            (10, Step::Fire("alertname=A,i=2")),
            (15, Step::Fire("alertname=B,i=1")),
            (100, Step::Fire("alertname=A,i=3")),
        ],
        until: 700,
        want: vec![
            "30s team webhook[0] firing=A/1,A/2",
            "45s team webhook[0] firing=B/1",
            "5m30s team webhook[0] firing=A/1,A/2,A/3",
        ],
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn repeat_interval() {
    play(Case {
        name: "an unchanged group is repeated at the first flush after repeat_interval",
        yaml: FAST,
        wall: T0,
        script: vec![(5, Step::Fire("alertname=A"))],
        until: 1500,
        // Flushes at 5s + n minutes; the log entry of 5s is more than 10m
        // old at 11m5s.
        want: vec![
            "5s team webhook[0] firing=A",
            "11m5s team webhook[0] firing=A",
            "22m5s team webhook[0] firing=A",
        ],
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn resolution() {
    play(Case {
        name: "resolved at the next flush, then nothing",
        yaml: BASIC,
        wall: T0,
        script: vec![
            (0, Step::Fire("alertname=A,i=1")),
            (5, Step::Fire("alertname=A,i=2")),
            (200, Step::Resolve("alertname=A,i=1")),
            (400, Step::Resolve("alertname=A,i=2")),
        ],
        until: 3000,
        want: vec![
            "30s team webhook[0] firing=A/1,A/2",
            "5m30s team webhook[0] firing=A/2 resolved=A/1",
            // The rules re-send A/1 as resolved for 15 minutes, so it is
            // back in the group, as in Alertmanager.
            "10m30s team webhook[0] resolved=A/1,A/2",
        ],
    })
    .await;
    play(Case {
        name: "without send_resolved a partial resolution is not news",
        yaml: NO_RESOLVED,
        wall: T0,
        script: vec![
            (0, Step::Fire("alertname=A,i=1")),
            (5, Step::Fire("alertname=A,i=2")),
            (200, Step::Resolve("alertname=A,i=1")),
            (400, Step::Resolve("alertname=A,i=2")),
            (1000, Step::Fire("alertname=A,i=2")),
        ],
        until: 1300,
        want: vec![
            "30s team webhook[0] firing=A/1,A/2",
            // After the all-resolved flush at 10m30s the log holds nothing
            // firing, so the next firing is news. The group emptied and
            // went; the new one flushes at once when the rules re-send the
            // resolved A/1 (older than group_wait) at 17m, as in
            // Alertmanager.
            "17m team webhook[0] firing=A/2",
        ],
    })
    .await;
    play(Case {
        name: "fired and resolved between two flushes: nobody is told",
        yaml: BASIC,
        wall: T0,
        script: vec![
            (0, Step::Fire("alertname=A,i=1")),
            (100, Step::Fire("alertname=A,i=2")),
            (200, Step::Resolve("alertname=A,i=2")),
        ],
        until: 1000,
        want: vec![
            "30s team webhook[0] firing=A/1",
            "5m30s team webhook[0] firing=A/1 resolved=A/2",
        ],
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn routing() {
    play(Case {
        name: "continue sends to both routes, each with its own timers; every integration of a receiver gets it",
        yaml: ROUTES,
        wall: T0,
        script: vec![
            (0, Step::Fire("alertname=A,service=db")),
            (1, Step::Fire("alertname=B,severity=page")),
            (2, Step::Fire("alertname=C,service=db,severity=page")),
            (3, Step::Fire("alertname=D")),
        ],
        until: 100,
        want: vec![
            "1s pager webhook[0] firing=B/page",
            "2s pager webhook[0] firing=C/db/page",
            "10s db webhook[0] firing=A/db",
            "10s db webhook[1] firing=A/db",
            "12s db webhook[0] firing=C/db/page",
            "12s db webhook[1] firing=C/db/page",
            "13s default webhook[0] firing=D",
        ],
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn inhibition() {
    play(Case {
        name: "a warning is held back while its critical fires and sent once it resolves",
        yaml: INHIBIT,
        wall: T0,
        script: vec![
            (0, Step::Fire("alertname=Disk,severity=critical")),
            (1, Step::Fire("alertname=Disk,severity=warning")),
            (2, Step::Fire("alertname=Cpu,severity=warning")),
            (125, Step::Resolve("alertname=Disk,severity=critical")),
        ],
        until: 400,
        want: vec![
            "10s team webhook[0] firing=Disk/critical",
            "12s team webhook[0] firing=Cpu/warning",
            "2m10s team webhook[0] resolved=Disk/critical",
            // The warning's group flushes at 11s + n minutes.
            "2m11s team webhook[0] firing=Disk/warning",
        ],
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn silences() {
    play(Case {
        name: "a silenced alert is not sent; once the silence ends it is, at the next flush",
        yaml: INHIBIT,
        wall: T0,
        script: vec![
            (0, Step::Silence("alertname=Disk", 3600)),
            (1, Step::Fire("alertname=Disk,severity=critical")),
            (2, Step::Fire("alertname=Cpu,severity=critical")),
            (200, Step::Expire(0)),
        ],
        until: 400,
        want: vec![
            "12s team webhook[0] firing=Cpu/critical",
            // The group flushes at 11s + n minutes; the silence ended at 3m20s.
            "4m11s team webhook[0] firing=Disk/critical",
        ],
    })
    .await;
    play(Case {
        name: "a silence that ends by itself",
        yaml: INHIBIT,
        wall: T0,
        script: vec![
            (0, Step::Silence("alertname=Disk", 100)),
            (1, Step::Fire("alertname=Disk,severity=critical")),
        ],
        until: 400,
        want: vec!["2m11s team webhook[0] firing=Disk/critical"],
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn time_intervals() {
    play(Case {
        name: "a mute interval holds a route until it ends; an active interval until it starts",
        yaml: MUTED,
        // 05:58 UTC.
        wall: T0 + (5 * 3600 + 58 * 60) * 1000,
        script: vec![
            (0, Step::Fire("alertname=A,when=night")),
            (1, Step::Fire("alertname=B,when=office")),
            (2, Step::Fire("alertname=C")),
        ],
        // Office hours start at 09:00, 3h2m after the start.
        until: 3 * 3600 + 3 * 60,
        want: vec![
            "12s team webhook[0] firing=C",
            // 06:00 is 2m after the start; the group flushes at 10s + n min.
            "2m10s team webhook[0] firing=A/night",
            "3h2m11s team webhook[0] firing=B/office",
        ],
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn resolved_while_muted() {
    let off = WHEN_MUTED.replace(
        "send_resolved_when_muted: true",
        "send_resolved_when_muted: false",
    );
    let off: &'static str = off.leak();
    for (yaml, want) in [
        (
            WHEN_MUTED,
            vec![
                "10s team webhook[0] firing=A",
                "20s team webhook[0] firing=W/warning",
                "1m20s team webhook[0] firing=Src/critical",
                // A resolved under its silence, W under inhibition: both are
                // taken back because the receiver was told they fire.
                "4m10s team webhook[0] resolved=A",
                "4m20s team webhook[0] resolved=W/warning",
            ],
        ),
        (
            // Alertmanager's behaviour: silence.
            off,
            vec![
                "10s team webhook[0] firing=A",
                "20s team webhook[0] firing=W/warning",
                "1m20s team webhook[0] firing=Src/critical",
            ],
        ),
    ] {
        play(Case {
            name: "send_resolved_when_muted",
            yaml,
            wall: T0,
            script: vec![
                (0, Step::Fire("alertname=A")),
                (10, Step::Fire("alertname=W,severity=warning")),
                (60, Step::Silence("alertname=A", 3600)),
                (70, Step::Fire("alertname=Src,severity=critical")),
                (200, Step::Resolve("alertname=A")),
                (210, Step::Resolve("alertname=W,severity=warning")),
            ],
            until: 600,
            want,
        })
        .await;
    }
}

#[tokio::test(start_paused = true)]
async fn history_and_metrics_carry_reasons() {
    let mut h = harness(Setup::new(INHIBIT)).await;
    h.silence("alertname=Cpu", 3600).await;
    h.fire("alertname=Disk,severity=critical").await;
    h.fire("alertname=Cpu,severity=warning").await;
    h.at(15).await;
    h.resolve("alertname=Disk,severity=critical").await;
    h.at(100).await;
    let hist = h.mgr.history();
    let got: Vec<(String, &str, String)> = hist
        .iter()
        .map(|e| (e.group_key.clone(), e.event.as_str(), e.reason.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                r#"{}:{alertname="Cpu", severity="warning"}"#.to_string(),
                "suppressed",
                "silenced".to_string()
            ),
            (
                r#"{}:{alertname="Disk", severity="critical"}"#.to_string(),
                "delivered",
                "first_notification".to_string()
            ),
            (
                r#"{}:{alertname="Disk", severity="critical"}"#.to_string(),
                "delivered",
                "resolved".to_string()
            ),
        ]
    );
    assert!(
        hist[0].detail.starts_with("silenced by "),
        "{}",
        hist[0].detail
    );
    assert_eq!(h.mgr.queued(), 0);
    h.mgr.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn api_views_show_status() {
    let mut h = harness(Setup::new(INHIBIT)).await;
    h.silence("alertname=Cpu", 3600).await;
    h.fire("alertname=Disk,severity=critical").await;
    h.fire("alertname=Disk,severity=warning").await;
    h.fire("alertname=Cpu,severity=warning").await;
    h.fire("alertname=Mem,severity=warning").await;
    h.at(1).await;
    let v = h.mgr.alerts();
    let status: Vec<(String, &str, usize, usize)> = v
        .iter()
        .map(|a| {
            (
                name(&a.alert.labels),
                a.state(),
                a.silenced_by.len(),
                a.inhibited_by.len(),
            )
        })
        .collect();
    let mut status = status;
    status.sort();
    assert_eq!(
        status,
        vec![
            ("Cpu/warning".to_string(), "suppressed", 1, 0),
            ("Disk/critical".to_string(), "active", 0, 0),
            ("Disk/warning".to_string(), "suppressed", 0, 1),
            ("Mem/warning".to_string(), "active", 0, 0),
        ]
    );
    assert!(v.windows(2).all(|w| w[0].fingerprint < w[1].fingerprint));
    assert!(v.iter().all(|a| a.receivers == ["team"]));
    let groups = h.mgr.groups();
    assert_eq!(groups.len(), 4);
    assert_eq!(
        groups[0].labels.to_string(),
        r#"{alertname="Cpu", severity="warning"}"#
    );
    assert_eq!(h.mgr.receivers(), ["team"]);
    h.mgr.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn outage_every_notification_arrives_once() {
    let mut s = Setup::new(FAST);
    s.behaviors = vec![("team", Behavior::DownUntil(480))];
    let h = harness(s).await;
    h.at(5).await;
    h.fire("alertname=A,i=1").await;
    h.at(130).await;
    h.fire("alertname=A,i=2").await;
    h.at(250).await;
    h.resolve("alertname=A,i=1").await;
    h.at(260).await;
    h.fire("alertname=B").await;
    h.at(1000).await;
    let t = h.timeline();
    // Everything accepted during the outage (8 minutes) arrives after it,
    // once, in order within each group; then nothing until the repeat
    // interval (10m) after the deliveries.
    let (times, what): (Vec<String>, Vec<String>) = t
        .iter()
        .map(|l| {
            let (t, rest) = l.split_once(' ').unwrap();
            (t.to_string(), rest.to_string())
        })
        .unzip();
    let a: Vec<&String> = what.iter().filter(|w| w.contains("A/")).collect();
    assert_eq!(
        a,
        [
            "team webhook[0] firing=A/1",
            "team webhook[0] firing=A/1,A/2",
            "team webhook[0] firing=A/2 resolved=A/1",
        ],
        "{t:#?}"
    );
    assert_eq!(
        what.iter().filter(|w| w.ends_with("firing=B")).count(),
        1,
        "{t:#?}"
    );
    assert_eq!(t.len(), 4, "{t:#?}");
    for time in &times {
        let mins: u64 = time.split('m').next().unwrap().parse().unwrap();
        assert!((8..10).contains(&mins), "{t:#?}");
    }
    let hist = h.mgr.history();
    assert!(
        hist.iter()
            .any(|e| e.event == HistoryEvent::AttemptFailed && e.reason == "server_error")
    );
    assert!(hist.iter().all(|e| e.event != HistoryEvent::Failed));
    assert!(*h.attempts.lock().unwrap() > 8);
    assert_eq!(h.mgr.queued(), 0);
    h.mgr.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_and_deadlines_give_up() {
    let mut s = Setup::new(FAST);
    s.behaviors = vec![(
        "team",
        Behavior::Fail(SendError::permanent("client_error", "400 bad request")),
    )];
    s.retry = Some(RetryPolicy {
        min_deadline: Duration::from_secs(120),
        ..RetryPolicy::default()
    });
    let h = harness(s).await;
    h.fire("alertname=A").await;
    h.at(30).await;
    let hist = h.mgr.history();
    assert_eq!(hist.len(), 1);
    assert_eq!(
        (hist[0].event, hist[0].reason.as_str(), hist[0].attempts),
        (HistoryEvent::Failed, "client_error", 1)
    );
    assert!(hist[0].detail.contains("400 bad request"));
    // Retryable until the deadline (the repeat interval, 10m, is longer
    // than min_deadline), then given up.
    h.set_behavior("team", Behavior::DownUntil(u64::MAX));
    h.fire("alertname=B").await;
    h.at(400).await;
    assert!(
        h.mgr
            .history()
            .iter()
            .filter(|e| e.event == HistoryEvent::Failed)
            .count()
            == 1
    );
    h.at(30 + 601).await;
    let hist = h.mgr.history();
    let failed: Vec<&HistoryEntry> = hist
        .iter()
        .filter(|e| e.event == HistoryEvent::Failed)
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[1].reason, "deadline_exceeded");
    assert!(failed[1].group_key.contains("\"B\""));
    assert!(failed[1].attempts > 5);
    // Given up at the last attempt before the deadline (30s + 10m), when
    // the next wait (at most a minute) would end after it.
    assert!(
        failed[1].at >= T0 + 570_000 && failed[1].at <= T0 + 630_000,
        "{}",
        failed[1].at - T0
    );
    h.mgr.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn retry_after_holds_the_whole_integration() {
    let mut s = Setup::new(FAST);
    s.behaviors = vec![(
        "team",
        Behavior::Fail(SendError::Retryable {
            reason: "rate_limited",
            message: "429 Too Many Requests: retry after 30".into(),
            retry_after: Some(Duration::from_secs(30)),
        }),
    )];
    let h = harness(s).await;
    h.fire("alertname=A").await;
    h.at(1).await;
    h.set_behavior("team", Behavior::Ok);
    h.fire("alertname=B").await;
    h.at(100).await;
    // B's lane waits for A's retry_after too.
    assert_eq!(
        h.timeline(),
        [
            "30s team webhook[0] firing=A",
            "30s team webhook[0] firing=B"
        ]
    );
    h.mgr.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn reload_is_all_or_nothing_and_keeps_state() {
    let h = harness(Setup::new(BASIC)).await;
    h.fire("alertname=A").await;
    h.at(100).await;
    // A receiver that cannot be built: nothing changes.
    let bad = NotifyError::Integration {
        receiver: "team".into(),
        message: "cannot build".into(),
    };
    assert_eq!(bad.to_string(), "receiver \"team\": cannot build");
    let new_config = load_str(
        &BASIC.replace("repeat_interval: 1h", "repeat_interval: 2h"),
        "t.yml",
        Path::new("."),
    )
    .unwrap();
    h.mgr.apply_config(&new_config).unwrap();
    assert!(h.mgr.config().route.repeat_interval == Some(Duration::from_secs(7200)));
    // The group kept its timer and its log: no flush right after the
    // reload, no repeat after 1h.
    h.at(4000).await;
    assert_eq!(h.timeline(), ["30s team webhook[0] firing=A"]);
    // Flushes at 30s + n * 5m; the first more than 2h after 30s is 2h5m30s.
    h.at(7529).await;
    assert_eq!(h.timeline().len(), 1, "{:?}", h.timeline());
    h.at(7531).await;
    assert_eq!(h.timeline()[1], "2h5m30s team webhook[0] firing=A");
    h.mgr.shutdown(Duration::from_secs(1)).await;
}

#[test]
fn restart_delivers_queued_once_and_never_repeats_early() {
    let dir = tempfile::tempdir().unwrap();
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    };
    // Process 1: the channel is down; A and B are accepted (queued) but not
    // delivered; then the process dies without any shutdown.
    let first = rt();
    first.block_on(async {
        let mut s = Setup::new(FAST);
        s.state_dir = Some(dir.path());
        s.behaviors = vec![("team", Behavior::DownUntil(u64::MAX))];
        let h = harness(s).await;
        h.fire("alertname=A").await;
        h.fire("alertname=B").await;
        h.at(30).await;
        assert!(h.timeline().is_empty());
        assert_eq!(h.mgr.queued(), 2);
        std::mem::forget(h);
    });
    first.shutdown_background();

    // Process 2, a minute later: the channel works. The queue delivers A
    // and B once; the rules re-send A and B, whose groups flush at once
    // (older than group_wait) and find them in the log: nothing more until
    // repeat_interval (10m after the first acceptance).
    let second = rt();
    second.block_on(async {
        let mut s = Setup::new(FAST);
        s.state_dir = Some(dir.path());
        s.wall = T0 + 60_000;
        let h = harness(s).await;
        {
            let mut r = h.rules.lock().unwrap();
            r.alerts.insert("alertname=A".into(), (T0, None));
            r.alerts.insert("alertname=B".into(), (T0, None));
        }
        h.at(30).await;
        h.fire("alertname=C").await;
        h.at(500).await;
        assert_eq!(
            h.timeline(),
            [
                "0s team webhook[0] firing=A",
                "0s team webhook[0] firing=B",
                "30s team webhook[0] firing=C",
            ]
        );
        // The repeat interval counts from the delivery (at 0s): the groups
        // flush at 1m + n minutes, and at 11m the delivery is more than 10m
        // ago.
        h.at(700).await;
        let t = h.timeline();
        assert_eq!(
            &t[3..],
            [
                "11m team webhook[0] firing=A",
                "11m team webhook[0] firing=B",
                "11m30s team webhook[0] firing=C",
            ]
        );
        h.mgr.shutdown(Duration::from_secs(5)).await;
    });

    // Process 3 after a clean shutdown (compacted journal): silences and
    // the log survive too.
    let third = rt();
    third.block_on(async {
        let mut s = Setup::new(FAST);
        s.state_dir = Some(dir.path());
        s.wall = T0 + 700_000;
        let mut h = harness(s).await;
        h.silence("alertname=C", 3600).await;
        let id = h.silences[0].clone();
        h.mgr.shutdown(Duration::from_secs(5)).await;
        let s = Setup {
            state_dir: Some(dir.path()),
            wall: T0 + 710_000,
            ..Setup::new(FAST)
        };
        let h = harness(s).await;
        assert_eq!(
            h.mgr.silence(&id).unwrap().state(T0 + 710_000),
            SilenceState::Active
        );
        {
            let mut r = h.rules.lock().unwrap();
            r.alerts.insert("alertname=A".into(), (T0, None));
        }
        h.at(60).await;
        assert!(h.timeline().is_empty(), "{:?}", h.timeline());
        h.mgr.shutdown(Duration::from_secs(5)).await;
    });
}

/// A crash (no shutdown, no compaction) right after deliveries: the next
/// process neither delivers them again nor repeats them before
/// repeat_interval, though the rules keep re-sending the alerts.
#[test]
fn crash_after_delivery_sends_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    };
    let first = rt();
    first.block_on(async {
        let mut s = Setup::new(FAST);
        s.state_dir = Some(dir.path());
        let h = harness(s).await;
        h.fire("alertname=A").await;
        h.fire("alertname=B").await;
        h.at(20).await;
        assert_eq!(
            h.timeline(),
            ["0s team webhook[0] firing=A", "0s team webhook[0] firing=B"]
        );
        assert_eq!(h.mgr.queued(), 0);
        std::mem::forget(h);
    });
    first.shutdown_background();

    let second = rt();
    second.block_on(async {
        let mut s = Setup::new(FAST);
        s.state_dir = Some(dir.path());
        s.wall = T0 + 120_000;
        let h = harness(s).await;
        assert_eq!(
            h.mgr.queued(),
            0,
            "delivered notifications are not requeued"
        );
        {
            let mut r = h.rules.lock().unwrap();
            r.alerts.insert("alertname=A".into(), (T0, None));
            r.alerts.insert("alertname=B".into(), (T0, None));
        }
        // Deliveries were at T0; this process starts at T0+2m, so the
        // repeat falls due at T0+10m = 8m into it, at the next group
        // interval boundary.
        h.at(7 * 60).await;
        assert!(h.timeline().is_empty(), "{:?}", h.timeline());
        h.at(10 * 60).await;
        let t = h.timeline();
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(
            t.iter()
                .all(|l| l.starts_with("8m ") || l.starts_with("9m ")),
            "{t:?}"
        );
        h.mgr.shutdown(Duration::from_secs(5)).await;
    });
}
