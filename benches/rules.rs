//! Rule evaluation benchmarks over the benchmark harness's data shape.
//!
//! Data: 100 targets x 1000 series (`job="bench"`, the series of the
//! harness's synthetic targets: process and node metrics, HTTP counters,
//! latency histograms and gauges per handler), scraped every 5 s for
//! 10 minutes, in the durable storage engine (a temporary directory).
//!
//! - `rules/round_100_rules_100k_series` (criterion): one evaluation round
//!   of the harness's 100 realistic alerting rules
//!   (`../shared/bench/bench.rules.yml`), single-threaded, so the time is
//!   the CPU one round costs.
//! - reaction (printed before criterion runs): with those rules loaded
//!   twice (200 rules, 8 groups on a 5 s interval) in a running
//!   [`RuleManager`], plus one on_scrape group per flip selecting
//!   `bench_trigger{service=...}` (`for: 0`), the time from the end of the
//!   scrape hook call to the alert being visible as firing, p50 / p99 over
//!   the flips (`RULES_BENCH_FLIPS`, default 60).
//!
//! Run with `cargo bench -j2 --bench rules`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::Criterion;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use watchpost::model::{Labels, ScrapeEvent, Timestamp};
use watchpost::promql::Engine;
use watchpost::rules::{
    AlertState, LoadOptions, RuleEvaluator, RuleGroup, RuleManager, RuleManagerOptions, load_paths,
    parse_str,
};
use watchpost::storage::{DiskStorage, SeriesRef, Storage, StorageOptions, WalSync};
use watchpost::telemetry::RuleMetrics;

const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/bench/bench.rules.yml"
);
const TARGETS: usize = 100;
const INTERVAL_MS: i64 = 5_000;
const HISTORY_MS: i64 = 10 * 60_000;

const RESOURCES: [&str; 20] = [
    "users",
    "orders",
    "items",
    "carts",
    "payments",
    "invoices",
    "sessions",
    "search",
    "products",
    "reviews",
    "shipments",
    "accounts",
    "tokens",
    "reports",
    "events",
    "files",
    "messages",
    "groups",
    "roles",
    "audit",
];
const LE: [&str; 11] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf",
];
/// Cumulative share (%) of observations at or below each bucket.
const LE_W: [f64; 11] = [
    5.0, 12.0, 30.0, 55.0, 75.0, 88.0, 94.0, 97.0, 99.0, 100.0, 100.0,
];
const CPU_MODES: [(&str, f64); 8] = [
    ("idle", 100.0),
    ("user", 10.0),
    ("system", 10.0),
    ("iowait", 1.0),
    ("irq", 1.0),
    ("softirq", 1.0),
    ("steal", 1.0),
    ("nice", 1.0),
];
const FS: [(&str, &str, &str); 4] = [
    ("/dev/nvme0n1p2", "/", "ext4"),
    ("/dev/nvme0n1p1", "/boot", "vfat"),
    ("/dev/nvme1n1", "/var/lib/data", "xfs"),
    ("tmpfs", "/run", "tmpfs"),
];

/// How a series' value follows the target's scrape counter `s`.
#[derive(Clone, Copy)]
enum Kind {
    /// `s * mult * scale + add` (counters grow every scrape).
    Counter {
        mult: f64,
        scale: f64,
        add: f64,
    },
    /// A random gauge in 1..1000, times `scale`, plus `add`.
    Gauge {
        scale: f64,
        add: f64,
    },
    /// `(1e9 - 4 s) * 1000 + add` (free disk space shrinking).
    Fs {
        add: f64,
    },
    Const(f64),
}

fn handler(u: usize) -> String {
    let r = RESOURCES[u % RESOURCES.len()];
    if u < RESOURCES.len() {
        format!("/api/v1/{r}")
    } else {
        format!("/api/v{}/{r}", 2 + u / RESOURCES.len())
    }
}

/// The 1000 series of one target (the harness's `build_template` for
/// M = 1000: 45 process/node series, 23 handler units of 40, 35 queue
/// gauges), plus `up`.
fn target_series(instance: &str) -> Vec<(Labels, Kind)> {
    let mut out: Vec<(Labels, Kind)> = Vec::new();
    let mut add = |name: &str, extra: &[(&str, String)], kind: Kind| {
        let mut pairs = vec![
            ("__name__".to_string(), name.to_string()),
            ("job".to_string(), "bench".to_string()),
            ("instance".to_string(), instance.to_string()),
        ];
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        out.push((Labels::from_pairs(pairs), kind));
    };
    let c = |mult: f64, scale: f64, add: f64| Kind::Counter { mult, scale, add };
    add("up", &[], Kind::Const(1.0));
    add("process_start_time_seconds", &[], Kind::Const(1.7e9));
    add(
        "process_resident_memory_bytes",
        &[],
        Kind::Gauge {
            scale: 1e6,
            add: 123.0,
        },
    );
    add("process_cpu_seconds_total", &[], c(1.0, 1.0, 0.5));
    add(
        "process_open_fds",
        &[],
        Kind::Gauge {
            scale: 1.0,
            add: 0.0,
        },
    );
    for cpu in 0..4 {
        for (mode, mult) in CPU_MODES {
            add(
                "node_cpu_seconds_total",
                &[("cpu", cpu.to_string()), ("mode", mode.to_string())],
                c(mult, 1.0, cpu as f64 * 0.08),
            );
        }
    }
    for (dev, mnt, fst) in FS {
        let l = [
            ("device", dev.to_string()),
            ("fstype", fst.to_string()),
            ("mountpoint", mnt.to_string()),
        ];
        add(
            "node_filesystem_avail_bytes",
            &l,
            Kind::Fs {
                add: mnt.len() as f64,
            },
        );
        add("node_filesystem_size_bytes", &l, Kind::Const(2e12));
    }
    add(
        "app_build_info",
        &[
            ("goversion", "go1.19.8".to_string()),
            ("revision", "4c2a1f0".to_string()),
            ("version", "1.8.3".to_string()),
        ],
        Kind::Const(1.0),
    );
    for u in 0..23 {
        let h = handler(u);
        let uf = (u % 1000) as f64;
        for method in ["GET", "POST"] {
            for (code, mult) in [("200", 100.0), ("404", 10.0), ("500", 1.0), ("503", 1.0)] {
                add(
                    "http_requests_total",
                    &[
                        ("code", code.to_string()),
                        ("handler", h.clone()),
                        ("method", method.to_string()),
                    ],
                    c(mult, 1000.0, uf),
                );
            }
        }
        for method in ["GET", "POST"] {
            for (j, le) in LE.iter().enumerate() {
                add(
                    "http_request_duration_seconds_bucket",
                    &[
                        ("handler", h.clone()),
                        ("method", method.to_string()),
                        ("le", le.to_string()),
                    ],
                    c(LE_W[j], 1000.0, 40.0 * j as f64),
                );
            }
            let l = [("handler", h.clone()), ("method", method.to_string())];
            add(
                "http_request_duration_seconds_sum",
                &l,
                c(12.0, 1.0, uf / 1000.0),
            );
            add(
                "http_request_duration_seconds_count",
                &l,
                c(100.0, 1000.0, 400.0),
            );
        }
        add(
            "http_inflight_requests",
            &[("handler", h.clone())],
            Kind::Gauge {
                scale: 1.0,
                add: 0.0,
            },
        );
        for cache in ["l1", "l2"] {
            add(
                "app_cache_entries",
                &[("cache", cache.to_string()), ("handler", h.clone())],
                Kind::Gauge {
                    scale: 100.0,
                    add: (u % 100) as f64,
                },
            );
        }
        for state in ["idle", "active", "waiting"] {
            add(
                "app_db_connections",
                &[("handler", h.clone()), ("state", state.to_string())],
                Kind::Gauge {
                    scale: 1.0,
                    add: (u % 10) as f64 / 10.0,
                },
            );
        }
    }
    for i in 0..35 {
        add(
            "app_worker_queue_depth",
            &[
                ("queue", format!("q{i:03}")),
                ("shard", (i % 4).to_string()),
            ],
            Kind::Gauge {
                scale: 1.0,
                add: (i % 10) as f64 / 10.0,
            },
        );
    }
    out
}

/// xorshift64: deterministic "random" gauges without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn value(kind: Kind, s: f64, rng: &mut Rng) -> f64 {
    match kind {
        Kind::Counter { mult, scale, add } => s * mult * scale + add,
        Kind::Gauge { scale, add } => (1 + rng.next() % 999) as f64 * scale + add,
        Kind::Fs { add } => (1e9 - 4.0 * s) * 1000.0 + add,
        Kind::Const(v) => v,
    }
}

/// Writes `HISTORY_MS` of scrapes ending at `end` for every target; one
/// commit per target scrape, as the scrape loops do.
fn fill(storage: &DiskStorage, end: Timestamp) -> usize {
    let start = end - HISTORY_MS;
    let mut total = 0;
    let targets: Vec<Vec<(Labels, Kind)>> = (0..TARGETS)
        .map(|i| target_series(&format!("127.0.0.1:{}", 20000 + i)))
        .collect();
    let mut refs: Vec<Vec<Option<SeriesRef>>> =
        targets.iter().map(|t| vec![None; t.len()]).collect();
    let mut rngs: Vec<Rng> = (0..TARGETS)
        .map(|i| Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1)))
        .collect();
    let mut t = start;
    let mut s = 1000.0;
    while t <= end {
        for (i, series) in targets.iter().enumerate() {
            // Targets are scraped at slightly different offsets.
            let ts = t + (i as i64 * 37) % INTERVAL_MS - INTERVAL_MS;
            let mut app = storage.appender();
            for (k, (labels, kind)) in series.iter().enumerate() {
                let v = value(*kind, s + i as f64, &mut rngs[i]);
                match refs[i][k] {
                    Some(r) if app.append_ref(r, ts, v).is_ok() => {}
                    _ => refs[i][k] = Some(app.append(labels, ts, v).expect("append")),
                }
                total += 1;
            }
            app.commit().expect("commit");
        }
        t += INTERVAL_MS;
        s += 1.0;
    }
    total
}

// The benchmark is the scheduler here: it writes "now" samples like a
// scrape loop would, so it reads the wall clock.
#[allow(clippy::disallowed_methods)]
fn now_ms() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as Timestamp
}

fn bench_groups() -> Vec<RuleGroup> {
    let groups = load_paths(&[Path::new(RULES).to_path_buf()], LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(groups.iter().map(|g| g.rules.len()).sum::<usize>(), 100);
    groups
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// End of the scrape hook call -> alert firing visible, per flip.
fn reaction(storage: Arc<DiskStorage>, flips: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let state = tempfile::tempdir().expect("tempdir");
    let mut opts = RuleManagerOptions::new(state.path().to_path_buf());
    opts.default_evaluation_interval = Duration::from_secs(5);
    let (tx, mut rx) = mpsc::channel(100_000);
    let manager = rt.block_on(async {
        RuleManager::new(
            storage.clone(),
            Arc::new(Engine::default()),
            &opts,
            RuleMetrics::default(),
            TaskTracker::new(),
            tx,
        )
    });
    // 200 rules: the harness's 100, twice (as two files).
    let text = std::fs::read_to_string(RULES).expect("bench rules");
    let mut groups = parse_str(&text, "a/bench.rules.yml", LoadOptions::default()).expect("rules");
    groups.extend(parse_str(&text, "b/bench.rules.yml", LoadOptions::default()).expect("rules"));
    let mut trig = String::from("groups:\n");
    for k in 0..flips {
        trig.push_str(&format!(
            "  - name: trigger-{k}\n    interval: 1h\n    evaluation: on_scrape\n    rules:\n      - alert: Trigger{k}\n        expr: bench_trigger{{service=\"s{k}\"}} > 0\n"
        ));
    }
    groups.extend(parse_str(&trig, "trigger.yml", LoadOptions::default()).expect("trigger rules"));
    assert_eq!(
        groups.iter().map(|g| g.rules.len()).sum::<usize>(),
        200 + flips
    );
    rt.block_on(manager.apply(groups, &opts));
    let drain = rt.spawn(async move { while rx.recv().await.is_some() {} });
    // Let the interval groups start their loops.
    std::thread::sleep(Duration::from_secs(6));

    let hook = manager.scrape_hook();
    let names = Arc::new(vec!["bench_trigger".to_string(), "up".to_string()]);
    let mut lat = Vec::with_capacity(flips);
    for k in 0..flips {
        let ts = now_ms();
        {
            let mut app = storage.appender();
            for j in 0..flips {
                let v = if j <= k { 1.0 } else { 0.0 };
                let l = Labels::from_pairs([
                    ("__name__", "bench_trigger".to_string()),
                    ("job", "control".to_string()),
                    ("service", format!("s{j}")),
                ]);
                app.append(&l, ts, v).expect("append");
            }
            app.commit().expect("commit");
        }
        hook(&ScrapeEvent {
            job: "control".into(),
            timestamp: ts,
            metric_names: names.clone(),
        });
        let start = Instant::now();
        let name = format!("Trigger{k}");
        loop {
            if manager.alerts().iter().any(|a| {
                a.state == AlertState::Firing && a.labels.get("alertname") == Some(name.as_str())
            }) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{name} never fired"
            );
            std::thread::sleep(Duration::from_micros(100));
        }
        lat.push(start.elapsed());
        // Flips spread over time, so interval rounds run in between.
        std::thread::sleep(Duration::from_millis(250));
    }
    lat.sort();
    println!(
        "reaction (hook -> firing visible), {} flips, 200 rules loaded: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3,
    );
    rt.block_on(manager.shutdown());
    drain.abort();
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut so = StorageOptions::new(dir.path());
    so.wal_sync = WalSync::Never;
    let storage = Arc::new(DiskStorage::open(so).expect("open storage"));
    let end = now_ms();
    let started = Instant::now();
    let n = fill(&storage, end);
    println!(
        "data: {TARGETS} targets x 1001 series, {n} samples in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let engine = Engine::default();
    let opts = RuleManagerOptions::new(dir.path().join("unused"));
    let mut ev = RuleEvaluator::new(bench_groups(), &opts);
    let first = Instant::now();
    let summary = ev.eval(storage.as_ref(), &engine, end);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    let firing = ev
        .alerts()
        .iter()
        .filter(|a| a.state == AlertState::Firing)
        .count();
    println!(
        "first round: {:.0} ms, {} samples written, {} alerts ({firing} firing)",
        first.elapsed().as_secs_f64() * 1e3,
        summary.samples,
        ev.alerts().len()
    );

    let flips: usize = std::env::var("RULES_BENCH_FLIPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    if flips > 0 {
        reaction(storage.clone(), flips);
    }

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("rules");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.bench_function("round_100_rules_100k_series", |b| {
        b.iter(|| ev.eval(storage.as_ref(), &engine, end))
    });
    g.finish();
    c.final_summary();
}
