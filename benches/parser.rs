//! Exposition parsing throughput on a realistic ~10 MB Prometheus-text
//! payload (node-exporter and application metrics: counters, gauges,
//! histograms, summaries, HELP/TYPE lines, 3-6 labels per series, some
//! escapes), side by side in one run:
//!
//! 1. `watchpost/values`: our parser, value and timestamp of every sample
//!    (the scrape loop's cache-hit path);
//! 2. `watchpost/to_labels`: the same plus `to_labels()` per sample (the
//!    cache-miss path);
//! 3. `prometheus-parse`: `prometheus_parse::Scrape::parse` on the same text;
//! 4. `memchr-newlines`: counting newlines, the memory-bandwidth ceiling;
//!
//! and, in a second group, the same metrics as OpenMetrics (counters with
//! `_total`/`_created`, exemplars on some buckets, `# EOF`) through our
//! parser with all OpenMetrics checks.
//!
//! Criterion reports MB/s (`Throughput::Bytes`). A short summary after the
//! criterion run times all variants again, interleaved round by round (so a
//! machine whose load changes mid-run treats them alike), and prints MB/s,
//! samples/s, the ratio against prometheus-parse, and the heap allocations
//! one parse makes (counted by a wrapping allocator), which shows the
//! no-allocation-per-sample property.
//!
//! Run: `cargo bench -j2 --bench parser`

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use watchpost::scrape::parse::{Format, ParsedSample, Parser};

/// Counts allocations so the summary can show allocations per parse.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with the same layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const TARGET_BYTES: usize = 10 * 1024 * 1024;

/// Deterministic xorshift, so every run parses the same payload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn value(&mut self) -> String {
        match self.below(4) {
            0 => format!("{}", self.below(1_000_000)),
            1 => format!("{:.6}", self.below(1_000_000_000) as f64 / 1e3),
            2 => format!("{:e}", self.below(1_000_000_000) as f64 * 1.7),
            _ => format!("{}", self.below(100_000) as f64 / 7.0),
        }
    }
}

const HANDLERS: [&str; 8] = [
    "/api/v1/query",
    "/api/v1/query_range",
    "/api/v1/series",
    "/api/v1/labels",
    "/metrics",
    "/-/healthy",
    "/api/v2/alerts",
    "/federate",
];
const METHODS: [&str; 3] = ["GET", "POST", "PUT"];
const CODES: [&str; 5] = ["200", "204", "400", "404", "503"];
const MODES: [&str; 8] = [
    "idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice",
];
const BUCKETS: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

/// Builds the payload: one "target" after another until it is ~10 MB. With
/// `om`, the same metrics in OpenMetrics form: counter families named
/// without `_total`, `_created` series, exemplars on some buckets, `# EOF`.
fn payload(om: bool) -> String {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut out = String::with_capacity(TARGET_BYTES + 64 * 1024);
    let mut target = 0;
    while out.len() < TARGET_BYTES {
        let inst = format!("10.0.{}.{}:9100", target / 250, target % 250);
        node_exporter(&mut out, &mut rng, &inst, target, om);
        app(&mut out, &mut rng, &inst, target, om);
        target += 1;
    }
    if om {
        out.push_str("# EOF\n");
    }
    out
}

/// HELP and TYPE of a counter family; returns the name its samples carry.
fn counter(out: &mut String, base: &str, help: &str, om: bool) -> String {
    let sample = format!("{base}_total");
    let family = if om { base } else { sample.as_str() };
    let _ = writeln!(out, "# HELP {family} {help}");
    let _ = writeln!(out, "# TYPE {family} counter");
    sample
}

fn node_exporter(out: &mut String, rng: &mut Rng, inst: &str, t: usize, om: bool) {
    let name = counter(
        out,
        &format!("node_cpu_seconds_t{t}"),
        "Seconds the CPUs spent in each mode.",
        om,
    );
    for cpu in 0..8 {
        for mode in MODES {
            let _ = writeln!(
                out,
                "{name}{{cpu=\"{cpu}\",instance=\"{inst}\",job=\"node\",mode=\"{mode}\"}} {}",
                rng.value()
            );
        }
    }
    let name = format!("node_filesystem_avail_bytes_t{t}");
    let _ = writeln!(
        out,
        "# HELP {name} Filesystem space available to non-root users in bytes."
    );
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (dev, mp, fs) in [
        ("/dev/nvme0n1p2", "/", "ext4"),
        ("/dev/nvme0n1p1", "/boot/efi", "vfat"),
        ("tmpfs", "/run", "tmpfs"),
        ("/dev/sdb1", "/var/lib/data", "xfs"),
        ("C:\\\\", "C:\\\\mnt\\\\share", "ntfs"),
    ] {
        let _ = writeln!(
            out,
            "{name}{{device=\"{dev}\",fstype=\"{fs}\",instance=\"{inst}\",job=\"node\",mountpoint=\"{mp}\"}} {}",
            rng.value()
        );
    }
    let name = counter(
        out,
        &format!("node_network_receive_bytes_t{t}"),
        "Network device statistic receive_bytes.",
        om,
    );
    for dev in ["eth0", "eth1", "lo", "docker0", "veth1a2b3c"] {
        let _ = writeln!(
            out,
            "{name}{{device=\"{dev}\",instance=\"{inst}\",job=\"node\"}} {}",
            rng.value()
        );
    }
    let _ = writeln!(out, "# HELP node_load1_t{t} 1m load average.");
    let _ = writeln!(out, "# TYPE node_load1_t{t} gauge");
    let _ = writeln!(
        out,
        "node_load1_t{t}{{instance=\"{inst}\",job=\"node\"}} {}",
        rng.value()
    );
}

fn app(out: &mut String, rng: &mut Rng, inst: &str, t: usize, om: bool) {
    let name = format!("http_request_duration_seconds_t{t}");
    let _ = writeln!(out, "# HELP {name} Latency of HTTP requests, by handler.");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for handler in HANDLERS.iter().take(4) {
        for method in METHODS.iter().take(2) {
            let code = CODES[rng.below(CODES.len() as u64) as usize];
            let labels = format!(
                "code=\"{code}\",handler=\"{handler}\",instance=\"{inst}\",job=\"app\",method=\"{method}\""
            );
            let mut count = 0u64;
            for (k, le) in BUCKETS.iter().enumerate() {
                count += rng.below(50);
                let _ = write!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {count}");
                if om && k % 4 == 1 {
                    let _ = write!(
                        out,
                        " # {{trace_id=\"{:016x}\"}} 0.0{} 1700000000.{:03}",
                        rng.next(),
                        rng.below(1000),
                        rng.below(1000)
                    );
                }
                out.push('\n');
            }
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", rng.value());
            let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
            if om {
                let _ = writeln!(out, "{name}_created{{{labels}}} 1700000000.5");
            }
        }
    }
    let name = format!("rpc_duration_seconds_t{t}");
    let _ = writeln!(out, "# HELP {name} RPC latency quantiles.");
    let _ = writeln!(out, "# TYPE {name} summary");
    for service in ["auth", "billing", "search"] {
        let labels = format!("instance=\"{inst}\",job=\"app\",service=\"{service}\"");
        for q in ["0.5", "0.9", "0.99"] {
            let _ = writeln!(out, "{name}{{{labels},quantile=\"{q}\"}} {}", rng.value());
        }
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", rng.value());
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", rng.below(100_000));
    }
    let base = format!("app_requests_t{t}");
    let name = counter(out, &base, "Requests by user agent.", om);
    for (k, agent) in [
        "Mozilla/5.0 (X11; Linux x86_64)",
        "curl/8.5.0",
        "Prometheus/3.1.0",
        "Go-http-client/1.1 \\\"patched\\\"",
    ]
    .iter()
    .enumerate()
    {
        let labels = format!(
            "agent=\"{agent}\",instance=\"{inst}\",job=\"app\",route=\"{}\"",
            HANDLERS[k + 4]
        );
        let _ = writeln!(out, "{name}{{{labels}}} {}", rng.value());
        if om {
            let _ = writeln!(out, "{base}_created{{{labels}}} 1700000000.25");
        }
    }
    let _ = writeln!(out, "# HELP app_build_info_t{t} Build information.");
    let _ = writeln!(out, "# TYPE app_build_info_t{t} gauge");
    let _ = writeln!(
        out,
        "app_build_info_t{t}{{branch=\"main\",goversion=\"go1.23.4\",instance=\"{inst}\",revision=\"4f1c2e9\",version=\"2.7.1\"}} 1"
    );
}

/// The next sample of the generated payload, which always parses.
fn next<'a>(p: &mut Parser<'a>) -> Option<ParsedSample<'a>> {
    match p.next_sample() {
        Ok(s) => s,
        Err(e) => panic!("generated payload does not parse: {e}"),
    }
}

/// Scrape cache-hit path: value and timestamp of every sample.
fn watchpost_values(body: &[u8], format: Format) -> usize {
    let mut p = Parser::new(body, format);
    let mut n = 0;
    while let Some(s) = next(&mut p) {
        black_box((s.series, s.value, s.timestamp_ms));
        n += 1;
    }
    n
}

/// Scrape cache-miss path: also the full label set per sample.
fn watchpost_labels(body: &[u8]) -> usize {
    let mut p = Parser::new(body, Format::PrometheusText);
    let mut n = 0;
    while let Some(s) = next(&mut p) {
        black_box((s.to_labels(), s.value, s.timestamp_ms));
        n += 1;
    }
    n
}

fn prometheus_parse(body: &str) -> usize {
    let scrape = match prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))) {
        Ok(s) => s,
        Err(e) => panic!("prometheus-parse fails on the payload: {e}"),
    };
    black_box(&scrape);
    scrape.samples.len()
}

fn newlines(body: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', body).count()
}

fn bench(c: &mut Criterion, text: &str, om: &str) {
    let bytes = text.as_bytes();
    let mut g = c.benchmark_group("exposition_parse");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.warm_up_time(Duration::from_secs(1));
    g.bench_function("watchpost/values", |b| {
        b.iter(|| watchpost_values(black_box(bytes), Format::PrometheusText))
    });
    g.bench_function("watchpost/to_labels", |b| {
        b.iter(|| watchpost_labels(black_box(bytes)))
    });
    g.bench_function("prometheus-parse", |b| {
        b.iter(|| prometheus_parse(black_box(text)))
    });
    g.bench_function("memchr-newlines", |b| b.iter(|| newlines(black_box(bytes))));
    g.finish();

    // The same metrics as OpenMetrics, with its semantic checks.
    let om = om.as_bytes();
    let mut g = c.benchmark_group("exposition_parse_openmetrics");
    g.throughput(Throughput::Bytes(om.len() as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.warm_up_time(Duration::from_secs(1));
    g.bench_function("watchpost/values", |b| {
        b.iter(|| watchpost_values(black_box(om), Format::OpenMetrics))
    });
    g.finish();
}

/// Name, input bytes, samples, and the run of one summary variant.
type Variant<'a> = (&'static str, usize, usize, Box<dyn FnMut() -> usize + 'a>);

/// Wall-clock time of one call.
fn time(f: &mut dyn FnMut() -> usize) -> Duration {
    let t = Instant::now();
    black_box(f());
    t.elapsed()
}

fn summary(text: &str, om: &str) {
    let bytes = text.as_bytes();
    let om_bytes = om.as_bytes();
    let samples = watchpost_values(bytes, Format::PrometheusText);
    let om_samples = watchpost_values(om_bytes, Format::OpenMetrics);
    let theirs = prometheus_parse(text);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    watchpost_values(bytes, Format::PrometheusText);
    let allocs = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!(
        "\ntext payload: {} bytes, {} lines, {samples} samples (prometheus-parse groups them into {theirs}); one watchpost parse made {allocs} heap allocations ({:.4} per sample)",
        bytes.len(),
        newlines(bytes),
        allocs as f64 / samples as f64
    );
    println!(
        "openmetrics payload: {} bytes, {om_samples} samples handed out (_created and exemplars validated, not returned)",
        om.len()
    );
    // Round-robin, best of the rounds: on a shared machine the load
    // changes during a run, and interleaving gives every variant the same
    // chances, so the ratios stay meaningful.
    let mut variants: [Variant; 5] = [
        (
            "watchpost/values",
            bytes.len(),
            samples,
            Box::new(|| watchpost_values(bytes, Format::PrometheusText)),
        ),
        (
            "watchpost/to_labels",
            bytes.len(),
            samples,
            Box::new(|| watchpost_labels(bytes)),
        ),
        (
            "prometheus-parse",
            bytes.len(),
            samples,
            Box::new(|| prometheus_parse(text)),
        ),
        (
            "memchr-newlines",
            bytes.len(),
            samples,
            Box::new(|| newlines(bytes)),
        ),
        (
            "watchpost/openmetrics",
            om.len(),
            om_samples,
            Box::new(|| watchpost_values(om_bytes, Format::OpenMetrics)),
        ),
    ];
    let mut best = [Duration::MAX; 5];
    for _ in 0..7 {
        for (k, v) in variants.iter_mut().enumerate() {
            best[k] = best[k].min(time(&mut v.3));
        }
    }
    let reference = bytes.len() as f64 / best[2].as_secs_f64();
    println!(
        "{:<32} {:>11} {:>16} {:>20}",
        "variant (interleaved, best of 7)", "MB/s", "samples/s", "x prometheus-parse"
    );
    for (k, (name, len, n, _)) in variants.iter().enumerate() {
        let s = best[k].as_secs_f64();
        println!(
            "{name:<32} {:>11.1} {:>16.0} {:>20.1}",
            *len as f64 / 1e6 / s,
            *n as f64 / s,
            *len as f64 / s / reference
        );
    }
}

fn main() {
    let text = payload(false);
    let om = payload(true);
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &text, &om);
    c.final_summary();
    summary(&text, &om);
}
