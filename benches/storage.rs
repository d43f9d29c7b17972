//! Storage engine benchmarks.
//!
//! Criterion measures `append_ref` (ns per sample, 100k series, one commit
//! per 10k-sample "scrape") and `select` with full decoding (samples per
//! second). Before that, one-off figures are printed that criterion cannot
//! express: bytes per sample of closed chunks on realistic counters and
//! gauges, head memory per series, and WAL replay time.
//!
//! `cargo bench --bench storage` runs everything; set
//! `STORAGE_BENCH_FIGURES=0` to skip the figures, `STORAGE_BENCH_REPLAY_SERIES`
//! to change the replay size (default 100000 series x 1 h at 15 s).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use watchpost::model::{Labels, Matcher};
use watchpost::storage::chunk::ChunkEncoder;
use watchpost::storage::{DiskStorage, Queryable, SeriesRef, Storage, StorageOptions, WalSync};

fn opts(dir: &Path) -> StorageOptions {
    let mut o = StorageOptions::new(dir);
    o.wal_sync = WalSync::Never;
    o
}

/// xorshift64: deterministic values without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Label sets shaped like the benchmark harness's targets: HTTP counters,
/// histogram buckets and gauges per handler, many targets.
fn series_labels(n: usize) -> Vec<Labels> {
    let les = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf",
    ];
    (0..n)
        .map(|i| {
            let target = i / 1000;
            let unit = (i % 1000) / 40;
            let k = i % 40;
            let inst = format!("127.0.0.1:{}", 9000 + target);
            let handler = format!("/api/v{}/res{}", 1 + unit / 20, unit % 20);
            let mut pairs: Vec<(String, String)> = vec![
                ("instance".into(), inst),
                ("job".into(), "bench".into()),
                ("handler".into(), handler),
            ];
            match k {
                0..=7 => {
                    pairs.push(("__name__".into(), "http_requests_total".into()));
                    pairs.push(("method".into(), ["GET", "POST"][k / 4].into()));
                    pairs.push(("code".into(), ["200", "404", "500", "503"][k % 4].into()));
                }
                8..=29 => {
                    pairs.push((
                        "__name__".into(),
                        "http_request_duration_seconds_bucket".into(),
                    ));
                    pairs.push(("method".into(), ["GET", "POST"][(k - 8) / 11].into()));
                    pairs.push(("le".into(), les[(k - 8) % 11].into()));
                }
                30..=33 => {
                    let name = ["sum", "count"][(k - 30) / 2];
                    pairs.push((
                        "__name__".into(),
                        format!("http_request_duration_seconds_{name}"),
                    ));
                    pairs.push(("method".into(), ["GET", "POST"][k % 2].into()));
                }
                _ => {
                    pairs.push(("__name__".into(), "app_db_connections".into()));
                    pairs.push(("state".into(), format!("s{k}")));
                }
            }
            Labels::from_pairs(pairs)
        })
        .collect()
}

/// Value of series `i` at scrape `s`, like the harness: counters grow by a
/// steady step each scrape, gauges are random integers.
fn value(i: usize, s: u64, rng: &mut Rng) -> f64 {
    let k = i % 40;
    let base = 1000 + (i as u64 % 997);
    match k {
        0..=7 => ((base + s) * [100, 10, 1, 1][k % 4] * 1000 + (i as u64 % 1000)) as f64,
        8..=29 => {
            ((base + s) * [5, 12, 30, 55, 75, 88, 94, 97, 99, 100, 100][(k - 8) % 11] * 1000
                + 40 * ((k - 8) % 11) as u64) as f64
        }
        30..=33 => ((base + s) * 12 * 1000 + 400) as f64,
        _ => (rng.next() % 1000 + 1) as f64,
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn chunk_figures() {
    let mut rng = Rng(42);
    // Closed chunks of 120 samples, 15 s interval with up to +-2 ms jitter
    // (a worst case: the scrape path stamps scrapes up to 2 ms late with
    // their exact slot), except where the name says otherwise.
    for (name, pick) in [
        ("counters (harness-like)", 0usize),
        ("histogram buckets", 1),
        ("random integer gauges", 2),
        ("harness mix (12 counters, 22 buckets, 6 gauges per 40)", 3),
        (
            "float gauge sin()+noise to hundredths (demo temperature), timestamps as scrapes align them",
            4,
        ),
        (
            "float gauge sin()+noise to hundredths, timestamps +-2 ms off the slot",
            7,
        ),
        (
            "float gauge sin()+noise at full precision (no codec's case)",
            6,
        ),
        ("constant value", 5),
    ] {
        let (mut bytes, mut samples) = (0usize, 0usize);
        for i in 0..4000usize {
            let idx = match pick {
                0 => i % 8,
                1 => 8 + i % 22,
                2 => 34 + i % 6,
                _ => i % 40,
            };
            let mut e = ChunkEncoder::new();
            for s in 0..120u64 {
                // Scrapes up to 2 ms late are stamped with their slot.
                let jitter = if pick == 4 {
                    0
                } else {
                    (rng.next() % 5) as i64 - 2
                };
                let t = 1_700_000_000_000 + s as i64 * 15_000 + jitter;
                let v = match pick {
                    4 | 6 | 7 => {
                        let v = 21.0
                            + 3.0 * ((s as f64) / 20.0 + i as f64).sin()
                            + (rng.next() % 1000) as f64 * 0.0002;
                        // As the demo exporter prints it: to hundredths.
                        if pick == 6 {
                            v
                        } else {
                            (v * 100.0).round() / 100.0
                        }
                    }
                    5 => 1.0,
                    _ => value(idx + (i / 40) * 40, s, &mut rng),
                };
                e.append(t, v);
            }
            bytes += e.bytes().len();
            samples += 120;
        }
        println!(
            "chunk bytes/sample, {name}: {:.3} (120-sample chunks, payload only; +~20 B record header per chunk = +{:.3})",
            bytes as f64 / samples as f64,
            20.0 / 120.0
        );
    }
}

fn memory_figure() {
    let n = 100_000;
    let labels = series_labels(n);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let before = rss_bytes();
    let st = DiskStorage::open(opts(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = Rng(7);
    let mut refs: Vec<SeriesRef> = Vec::with_capacity(n);
    // 180 scrapes at 15 s: every series has cut one chunk to its block
    // file and holds a half-full open chunk (the steady state).
    for s in 0..180u64 {
        let mut app = st.appender();
        for (i, l) in labels.iter().enumerate() {
            let t = s as i64 * 15_000;
            if s == 0 {
                refs.push(
                    app.append(l, t, value(i, s, &mut rng))
                        .unwrap_or_else(|e| panic!("{e}")),
                );
            } else {
                app.append_ref(refs[i], t, value(i, s, &mut rng))
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        app.commit().unwrap_or_else(|e| panic!("{e}"));
    }
    let after = rss_bytes();
    // The label sets and `refs` were allocated before `before`; what grew
    // is the engine (plus transient appender buffers kept by the allocator).
    println!(
        "head RSS per series: {:.0} bytes ({} series, one closed chunk and 60 samples in the open chunk each; RSS delta {} MiB)",
        after.saturating_sub(before) as f64 / n as f64,
        n,
        after.saturating_sub(before) >> 20,
    );
    drop(st);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{e}"));
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{e}")) {
        let e = e.unwrap_or_else(|e| panic!("{e}"));
        let target = to.join(e.file_name());
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            copy_dir(&e.path(), &target);
        } else if e.file_name() != "lock" {
            std::fs::copy(e.path(), &target).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

fn replay_figure() {
    let n: usize = std::env::var("STORAGE_BENCH_REPLAY_SERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let scrapes = 240u64; // 1 h at 15 s
    let labels = series_labels(n);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let st = DiskStorage::open(opts(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = Rng(9);
    let mut refs: Vec<SeriesRef> = Vec::with_capacity(n);
    let start = Instant::now();
    for s in 0..scrapes {
        // One commit per 1000-series target, as scrape loops do.
        for (tgt, chunk) in labels.chunks(1000).enumerate() {
            let mut app = st.appender();
            for (j, l) in chunk.iter().enumerate() {
                let i = tgt * 1000 + j;
                let t = 1_700_000_000_000 + s as i64 * 15_000;
                let v = value(i, s, &mut rng);
                if s == 0 {
                    refs.push(app.append(l, t, v).unwrap_or_else(|e| panic!("{e}")));
                } else {
                    app.append_ref(refs[i], t, v)
                        .unwrap_or_else(|e| panic!("{e}"));
                }
            }
            app.commit().unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let write_s = start.elapsed().as_secs_f64();
    let samples = n as u64 * scrapes;
    let stats = st.stats();
    println!(
        "ingest for replay test: {n} series x {scrapes} scrapes = {samples} samples in {write_s:.2} s ({:.0} ns/sample single-threaded, append+commit incl. WAL write and chunk cuts); WAL {} MiB; closed chunks {:.3} B/sample payload",
        write_s * 1e9 / samples as f64,
        stats.wal_bytes >> 20,
        stats.closed_chunk_bytes as f64 / stats.closed_chunk_samples.max(1) as f64,
    );
    // A crash: copy the live directory (WAL segments, no checkpoint).
    let crashed = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    copy_dir(dir.path(), crashed.path());
    drop(st); // writes a checkpoint in `dir`
    let t0 = Instant::now();
    let re = DiskStorage::open(opts(crashed.path())).unwrap_or_else(|e| panic!("{e}"));
    let wal_s = t0.elapsed().as_secs_f64();
    assert_eq!(re.stats().series, n as u64);
    println!(
        "WAL replay (crash, no checkpoint): {n} series x 1 h = {samples} samples in {wal_s:.2} s = {:.1} M samples/s; extrapolated to 1M series x 1 h at 15 s: {:.0} s",
        samples as f64 / wal_s / 1e6,
        wal_s * 1_000_000.0 / n as f64
    );
    drop(re);
    let t0 = Instant::now();
    let re = DiskStorage::open(opts(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    let cp_s = t0.elapsed().as_secs_f64();
    assert_eq!(re.stats().series, n as u64);
    println!("replay after clean close (checkpoint + chunk file scan): {cp_s:.2} s for {n} series");
}

fn bench_append(c: &mut Criterion) {
    let n = 100_000;
    let labels = series_labels(n);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let st = DiskStorage::open(opts(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = Rng(1);
    let mut refs = Vec::with_capacity(n);
    let mut app = st.appender();
    for (i, l) in labels.iter().enumerate() {
        refs.push(
            app.append(l, 0, value(i, 0, &mut rng))
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    app.commit().unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group("append");
    g.measurement_time(Duration::from_secs(8));
    let mut scrape = 1u64;
    let mut offset = 0usize;
    // 1k samples per commit is one target of the harness per scrape; 10k
    // shows the cost of a big scrape (more cache misses between the append
    // and the apply pass).
    for batch in [1_000usize, 10_000] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(
            BenchmarkId::new(
                "append_ref_commit",
                format!("100k series, {batch} per commit"),
            ),
            |b| {
                b.iter(|| {
                    if offset + batch > n {
                        offset = 0;
                        scrape += 1;
                    }
                    let t = scrape as i64 * 15_000;
                    let mut app = st.appender();
                    for (i, r) in refs.iter().enumerate().skip(offset).take(batch) {
                        app.append_ref(*r, t, value(i, scrape, &mut rng))
                            .unwrap_or_else(|e| panic!("{e}"));
                    }
                    black_box(app.commit().unwrap_or_else(|e| panic!("{e}")));
                    offset += batch;
                })
            },
        );
    }
    g.finish();
}

fn bench_select(c: &mut Criterion) {
    let n = 10_000;
    let labels = series_labels(n);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let st = DiskStorage::open(opts(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = Rng(3);
    let mut refs = Vec::with_capacity(n);
    // 2 h at 5 s: 1440 samples per series, 12 closed chunks each.
    for s in 0..1440u64 {
        let mut app = st.appender();
        for (i, l) in labels.iter().enumerate() {
            let t = s as i64 * 5_000;
            let v = value(i, s, &mut rng);
            if s == 0 {
                refs.push(app.append(l, t, v).unwrap_or_else(|e| panic!("{e}")));
            } else {
                app.append_ref(refs[i], t, v)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        app.commit().unwrap_or_else(|e| panic!("{e}"));
    }
    let total = n as u64 * 1440;
    let mut g = c.benchmark_group("select");
    g.throughput(Throughput::Elements(total));
    g.measurement_time(Duration::from_secs(8));
    g.sample_size(10);
    g.bench_function(
        BenchmarkId::new("select_decode_all", "10k series x 1440"),
        |b| {
            b.iter(|| {
                let mut count = 0u64;
                for s in st
                    .select(&[], i64::MIN, i64::MAX)
                    .unwrap_or_else(|e| panic!("{e}"))
                {
                    for x in s.samples {
                        count += 1;
                        black_box(x);
                    }
                }
                assert_eq!(count, total);
            })
        },
    );
    let m = [Matcher::equal("__name__", "http_requests_total")];
    g.throughput(Throughput::Elements(2000 * 120));
    g.bench_function(
        BenchmarkId::new("select_matcher_10m_window", "2k series x 120"),
        |b| {
            b.iter(|| {
                let mut count = 0u64;
                for s in st
                    .select(&m, 3_600_000, 3_600_000 + 595_000)
                    .unwrap_or_else(|e| panic!("{e}"))
                {
                    for x in s.samples {
                        count += 1;
                        black_box(x);
                    }
                }
                assert_eq!(count, 2000 * 120);
            })
        },
    );
    g.finish();
}

fn main() {
    if std::env::var("STORAGE_BENCH_FIGURES").as_deref() != Ok("0") {
        memory_figure();
        chunk_figures();
        replay_figure();
    }
    let mut c = Criterion::default().configure_from_args();
    bench_append(&mut c);
    bench_select(&mut c);
    c.final_summary();
}
