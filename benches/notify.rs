//! Load figure for the notification pipeline: 10,000 alerts in 1,000
//! groups go through the whole pipeline (store, routing, aggregation
//! groups, inhibition, silences, dedup against the notification log, the
//! journal with its fsyncs, delivery lanes, history) to an integration that
//! only counts, so the figure is the pipeline's own cost.
//!
//! Three phases, each timed from the first alert handed to the pipeline to
//! the last notification delivered:
//! - firing: every alert is new, each group flushes at once
//!   (`group_wait: 0s`): 1,000 notifications carrying 10,000 alerts;
//! - resolved: every alert resolves; the groups flush at their next
//!   `group_interval` (1s), so this phase includes up to 1s of waiting;
//! - resend: the rules re-send the same firing alerts (what happens every
//!   evaluation); nothing must be sent (dedup against the log).
//!
//! Peak RSS (VmHWM) is read from /proc after the run. Runs with the state
//! on disk (the default, as watchpost runs) and, with
//! `NOTIFY_BENCH_DURABLE=0`, in memory. `NOTIFY_BENCH_ALERTS` and
//! `NOTIFY_BENCH_GROUPS` change the size.
//!
//! `cargo bench --bench notify`

// A benchmark is a scheduler: it reads the clock.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use watchpost::config::notify::{NotifyConfig, Receiver, load_str};
use watchpost::model::{Alert, Labels};
use watchpost::notify::{
    NotificationData, Notifier, NotifierFactory, NotifyManager, NotifyOptions, SendError,
};
use watchpost::telemetry::NotifyMetrics;

const CONFIG: &str = r#"
route:
  receiver: sink
  group_by: [group]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: sink
    webhook_configs: [{url: "http://127.0.0.1:1/unused", send_resolved: true}]
"#;

#[derive(Default)]
struct Counts {
    notifications: AtomicUsize,
    alerts: AtomicUsize,
    /// When each notification reached the integration.
    delivered: std::sync::Mutex<Option<mpsc::UnboundedSender<Instant>>>,
}

struct Counting {
    counts: Arc<Counts>,
}

impl Notifier for Counting {
    fn integration(&self) -> &str {
        "webhook[0]"
    }

    fn send_resolved(&self) -> bool {
        true
    }

    fn send<'a>(
        &'a self,
        msg: &'a NotificationData,
    ) -> Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>> {
        Box::pin(async move {
            self.counts
                .alerts
                .fetch_add(msg.alerts.len(), Ordering::Relaxed);
            self.counts.notifications.fetch_add(1, Ordering::Relaxed);
            if let Some(tx) = self.counts.delivered.lock().map_or(None, |g| g.clone()) {
                let _ = tx.send(Instant::now());
            }
            Ok(())
        })
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> i64 {
    watchpost::model::timestamp_of(std::time::SystemTime::now())
}

/// Peak and current resident set size in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn alerts(n: usize, groups: usize, resolved: bool) -> Vec<Alert> {
    let now = now_ms();
    (0..n)
        .map(|i| Alert {
            labels: Labels::from_pairs([
                ("alertname", "LoadTest".to_string()),
                // Contiguous, so one batch carries whole groups and each
                // group's first flush has all its alerts.
                ("group", format!("g{:04}", i * groups / n)),
                ("instance", format!("host-{i:05}:9100")),
                ("severity", "warning".to_string()),
            ]),
            annotations: BTreeMap::from([(
                "summary".to_string(),
                format!("instance host-{i:05} is under load"),
            )]),
            starts_at: now - 60_000,
            ends_at: Some(if resolved { now } else { now + 240_000 }),
            updated_at: now,
            generator_url: "http://watchpost:9464/graph".to_string(),
        })
        .collect()
}

/// Feeds `batch` in chunks of 500 (a rule group's worth) and waits until
/// `want` more notifications were delivered; the elapsed time is taken
/// then. Then lets the pipeline run 2.5s more (past a group_interval), so
/// the counts returned include anything sent late or twice.
async fn phase(
    tx: &mpsc::Sender<Vec<Alert>>,
    counts: &Counts,
    batch: Vec<Alert>,
    want: usize,
) -> (Duration, usize, usize) {
    let (n0, a0) = (
        counts.notifications.load(Ordering::Relaxed),
        counts.alerts.load(Ordering::Relaxed),
    );
    let start = Instant::now();
    let mut rest = batch;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(500));
        tx.send(rest)
            .await
            .unwrap_or_else(|_| panic!("pipeline stopped"));
        rest = tail;
    }
    let deadline = start + Duration::from_secs(120);
    loop {
        let n = counts.notifications.load(Ordering::Relaxed) - n0;
        if n >= want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {want} notifications after 120s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let last = start.elapsed();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    (
        last,
        counts.notifications.load(Ordering::Relaxed) - n0,
        counts.alerts.load(Ordering::Relaxed) - a0,
    )
}

async fn run(config: &NotifyConfig, state_dir: Option<&Path>, n: usize, groups: usize) {
    let (_, before) = rss();
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let factory: NotifierFactory = Arc::new(move |r: &Receiver| {
        Ok(r.integrations
            .iter()
            .map(|_| Arc::new(Counting { counts: c.clone() }) as Arc<dyn Notifier>)
            .collect())
    });
    let mut opts = NotifyOptions::new(state_dir.map(Path::to_path_buf));
    opts.queue_capacity = groups * 4;
    let (tx, rx) = mpsc::channel(64);
    let mgr = NotifyManager::start(config, factory, opts, NotifyMetrics::new(), rx)
        .await
        .unwrap_or_else(|e| panic!("starting the pipeline: {e}"));
    let mode = if state_dir.is_some() {
        "durable (journal on disk, fsync'd)"
    } else {
        "in memory"
    };
    println!("notify load, {mode}: {n} alerts in {groups} groups");

    let (t, notes, carried) = phase(&tx, &counts, alerts(n, groups, false), groups).await;
    println!(
        "  RSS after firing: {:.1} MiB",
        rss().1 as f64 / (1 << 20) as f64
    );
    println!(
        "  firing:   {notes} notifications ({carried} alerts) in {:>8.1} ms = {:>9.0} notifications/s, {:>9.0} alerts/s",
        t.as_secs_f64() * 1e3,
        notes as f64 / t.as_secs_f64(),
        carried as f64 / t.as_secs_f64()
    );
    assert_eq!(
        (notes, carried),
        (groups, n),
        "every group notified once with all its alerts"
    );

    let (t, notes, carried) = phase(&tx, &counts, alerts(n, groups, true), groups).await;
    println!(
        "  resolved: {notes} notifications ({carried} alerts) in {:>8.1} ms (includes waiting for the group_interval tick, 1s)",
        t.as_secs_f64() * 1e3,
    );
    assert_eq!(
        (notes, carried),
        (groups, n),
        "every group's resolution notified once"
    );

    // The same firing alerts again after resolution start new episodes;
    // re-sending them once more must not notify again.
    let (_, notes, _) = phase(&tx, &counts, alerts(n, groups, false), groups).await;
    assert_eq!(notes, groups);
    let (_, notes, _) = phase(&tx, &counts, alerts(n, groups, false), 0).await;
    println!("  resend:   {notes} notifications for an unchanged re-send (dedup)");
    assert_eq!(notes, 0, "an unchanged re-send sends nothing");

    // Latency: one new alert at a time into a new group (group_wait 0s),
    // from the hand-over to the pipeline to the integration's call.
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    if let Ok(mut g) = counts.delivered.lock() {
        *g = Some(seen_tx);
    }
    let samples = if n >= 10_000 { 1_000 } else { 50 };
    let mut lat: Vec<Duration> = Vec::with_capacity(samples);
    for i in 0..samples {
        let mut a = alerts(1, 1, false);
        a[0].labels = Labels::from_pairs([
            ("alertname", "LatencyTest".to_string()),
            ("group", format!("latency-{i}")),
        ]);
        let start = Instant::now();
        tx.send(a)
            .await
            .unwrap_or_else(|_| panic!("pipeline stopped"));
        let at = tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .unwrap_or_else(|_| panic!("no delivery within 10s"))
            .unwrap_or_else(|| panic!("delivery channel closed"));
        lat.push(at.duration_since(start));
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    println!(
        "  latency, new alert -> integration called ({samples} alerts, group_wait 0s): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3
    );

    let (peak, now) = rss();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "  RSS: {:.1} MiB before the pipeline started, peak {:.1} MiB, now {:.1} MiB; queued at the end: {}",
        mib(before),
        mib(peak),
        mib(now),
        mgr.queued()
    );
    mgr.shutdown(Duration::from_secs(10)).await;
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this
    // binary too: do the small version then.
    let test_mode = !std::env::args().any(|a| a == "--bench");
    let (n, groups) = if test_mode {
        (200, 20)
    } else {
        (
            env_usize("NOTIFY_BENCH_ALERTS", 10_000),
            env_usize("NOTIFY_BENCH_GROUPS", 1_000),
        )
    };
    let durable = std::env::var("NOTIFY_BENCH_DURABLE").map_or(true, |v| v != "0");
    let config = load_str(CONFIG, "bench.yml", Path::new("."))
        .unwrap_or_else(|e| panic!("bench config: {e}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    rt.block_on(run(
        &config,
        durable.then(|| dir.path().join("notify")).as_deref(),
        n,
        groups,
    ));
}
