//! A demo exporter for trying watchpost: `cargo run --example demo_exporter`.
//!
//! Serves OpenMetrics (or Prometheus text, by content negotiation) on
//! 127.0.0.1:9465/metrics with counters, gauges and a histogram whose values
//! move every second, so graphs and alerts have something to show. The
//! embedded default config scrapes it. `--listen ADDR` changes the address.

// A standalone demo program, not part of watchpost's data path: the task and
// clock rules of the service do not apply.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    path: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoomLabels {
    room: String,
}

struct Demo {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
    temperature: Family<RoomLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    queue: Gauge,
    errors: Counter,
    rng: AtomicU64,
}

impl Demo {
    fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "demo_http_requests",
            "HTTP requests handled, by method, path and status",
            requests.clone(),
        );
        let latency = Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]);
        registry.register(
            "demo_http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        let temperature = Family::<RoomLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "demo_temperature_celsius",
            "Room temperature; moves on a slow sine wave",
            temperature.clone(),
        );
        let queue = Gauge::default();
        registry.register(
            "demo_queue_length",
            "Jobs waiting in the queue; a random walk",
            queue.clone(),
        );
        let errors = Counter::default();
        registry.register("demo_errors", "Errors; bursts now and then", errors.clone());
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        Demo {
            registry,
            requests,
            latency,
            temperature,
            queue,
            errors,
            rng: AtomicU64::new(seed),
        }
    }

    /// xorshift64: enough randomness for a demo without a dependency.
    fn rand(&self) -> f64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn tick(&self, t: f64) {
        for (method, path) in [("GET", "/"), ("GET", "/api/items"), ("POST", "/api/items")] {
            let n = (self.rand() * 20.0) as u64;
            for _ in 0..n {
                let status = if self.rand() < 0.03 { "500" } else { "200" };
                self.requests
                    .get_or_create(&RequestLabels {
                        method: method.to_string(),
                        path: path.to_string(),
                        status: status.to_string(),
                    })
                    .inc();
                // Log-normal-ish latency around 40 ms.
                self.latency.observe(0.04 * (self.rand() * 3.0 - 1.0).exp());
            }
        }
        for (i, room) in ["kitchen", "office", "server-room"].iter().enumerate() {
            let base = [21.0, 23.0, 27.0][i];
            // Printed to hundredths of a degree, as room sensors report
            // (full float precision would be noise no sensor has).
            let v = base + 3.0 * (t / 300.0 + i as f64).sin() + self.rand() * 0.2;
            let v = (v * 100.0).round() / 100.0;
            self.temperature
                .get_or_create(&RoomLabels {
                    room: room.to_string(),
                })
                .set(v);
        }
        let q = self.queue.get() + (self.rand() * 5.0) as i64 - 2;
        self.queue.set(q.clamp(0, 500));
        if self.rand() < 0.05 {
            self.errors.inc_by((self.rand() * 10.0) as u64);
        }
    }
}

async fn metrics(State(demo): State<Arc<Demo>>, headers: HeaderMap) -> impl IntoResponse {
    let mut body = String::new();
    if prometheus_client::encoding::text::encode(&mut body, &demo.registry).is_err() {
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            String::new(),
        );
    }
    let wants_om = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    if wants_om {
        (
            axum::http::StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
    } else {
        // Prometheus text 0.0.4: no `# EOF`, no `# UNIT`; counters keep
        // their `_total` sample names, so the rest is the same text.
        let text: String = body
            .lines()
            .filter(|l| *l != "# EOF" && !l.starts_with("# UNIT"))
            .map(|l| format!("{l}\n"))
            .collect();
        (
            axum::http::StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut listen = "127.0.0.1:9465".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or(listen),
            "-h" | "--help" => {
                println!("demo_exporter [--listen ADDR]   (default 127.0.0.1:9465)");
                return Ok(());
            }
            other => {
                eprintln!("demo_exporter: unknown argument {other:?}; use --listen ADDR");
                std::process::exit(2);
            }
        }
    }
    let demo = Arc::new(Demo::new());
    let ticker = demo.clone();
    tokio::spawn(async move {
        let start = SystemTime::now();
        let mut iv = tokio::time::interval(Duration::from_secs(1));
        loop {
            iv.tick().await;
            let t = start.elapsed().map(|d| d.as_secs_f64()).unwrap_or(0.0);
            ticker.tick(t);
        }
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(demo);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("demo exporter serving http://{listen}/metrics");
    axum::serve(listener, app).await
}
