//! PromQL engine latency on synthetic counters held in `MemStorage`.
//!
//! - `instant_sum_rate_100k`: `sum by (job) (rate(x[5m]))` at one instant
//!   over 100k series (10 jobs), 5 s scrape interval, 15 minutes of data.
//! - `range_sum_rate_10k` / `range_rate_10k`: the same aggregation, and a
//!   plain `rate(x[5m])`, as a 1 h range query at 15 s resolution over 10k
//!   series (data covers the hour plus the 5 m window).
//!
//! - `storage_select_100k`: for reference, the `MemStorage` selection the
//!   instant query makes, alone.
//!
//! Run with `cargo bench -j2 --bench promql`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use watchpost::model::{Labels, Matcher};
use watchpost::promql::{Engine, EngineOptions, Query};
use watchpost::storage::mem::MemStorage;
use watchpost::storage::{Queryable, Storage};

const INTERVAL_MS: i64 = 5_000;

/// `series` counters `x{job, instance}` with samples every 5 s from 0 to
/// `span_ms`, each increasing at its own rate with an occasional reset.
fn build(series: usize, span_ms: i64) -> MemStorage {
    let st = MemStorage::new();
    let samples = (span_ms / INTERVAL_MS + 1) as usize;
    for i in 0..series {
        let labels = Labels::from_pairs([
            ("__name__", "x".to_string()),
            ("job", format!("job-{}", i % 10)),
            ("instance", format!("host-{i:06}:9100")),
        ]);
        // One commit per series keeps the appender's pending batch small.
        let mut app = st.appender();
        let slope = 1.0 + (i % 7) as f64;
        let mut v = (i % 100) as f64;
        let r = app.append(&labels, 0, v).expect("append");
        for k in 1..samples {
            v = if (k + i) % 500 == 0 { 0.0 } else { v + slope };
            app.append_ref(r, k as i64 * INTERVAL_MS, v)
                .expect("append");
        }
        app.commit().expect("commit");
    }
    st
}

fn bench(c: &mut Criterion) {
    let engine = Engine::new(EngineOptions::default());
    let sum_rate = Query::parse("sum by (job) (rate(x[5m]))").expect("query");
    let rate = Query::parse("rate(x[5m])").expect("query");

    let big = build(100_000, 15 * 60_000);
    let at = 15 * 60_000;
    let check = engine
        .exec_instant(&big, &sum_rate, at, &Default::default())
        .expect("instant query");
    assert!(matches!(check.value, watchpost::promql::Value::Vector(ref v) if v.len() == 10));
    let mut g = c.benchmark_group("promql");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    // For reference: what the storage alone costs for the same selection
    // (select the 5m window of all 100k series and read every sample).
    let matchers = [Matcher::equal("__name__", "x")];
    g.bench_function("storage_select_100k", |b| {
        b.iter(|| {
            let selected = big.select(&matchers, at - 300_000 + 1, at).expect("select");
            selected
                .into_iter()
                .map(|s| s.samples.count())
                .sum::<usize>()
        })
    });
    g.bench_function("instant_sum_rate_100k", |b| {
        b.iter(|| {
            engine
                .exec_instant(&big, &sum_rate, at, &Default::default())
                .expect("instant query")
        })
    });
    drop(big);

    let small = build(10_000, 65 * 60_000);
    let (start, end) = (5 * 60_000, 65 * 60_000);
    let step = Duration::from_secs(15);
    g.bench_function("range_sum_rate_10k", |b| {
        b.iter(|| {
            engine
                .exec_range(&small, &sum_rate, start, end, step, &Default::default())
                .expect("range query")
        })
    });
    g.bench_function("range_rate_10k", |b| {
        b.iter(|| {
            engine
                .exec_range(&small, &rate, start, end, step, &Default::default())
                .expect("range query")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
