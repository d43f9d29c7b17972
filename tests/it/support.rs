//! Test support: local exporter stand-ins and a watchpost started in-process
//! on 127.0.0.1:0 with a temp directory.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use watchpost::app::{self, RunningApp};

/// What a stand-in exporter does on each scrape.
#[derive(Clone)]
pub enum Behavior {
    /// Serve this Prometheus-text body.
    Body(Arc<Mutex<String>>),
    /// Accept the request and never answer.
    Hang,
    /// Answer with this status.
    Status(u16),
    /// Stream this many bytes of valid-looking text.
    Huge(usize),
    /// Serve bytes that are not an exposition format.
    Garbage,
    /// Serve this body gzip-compressed.
    Gzip(String),
    /// Serve `served_total N` where N counts the scrapes so far.
    Counting,
}

/// A running stand-in: its address and the times it was scraped.
pub struct Exporter {
    pub addr: std::net::SocketAddr,
    pub hits: Arc<Mutex<Vec<Instant>>>,
    pub last_headers: Arc<Mutex<Option<HeaderMap>>>,
}

impl Exporter {
    pub fn target(&self) -> String {
        self.addr.to_string()
    }

    pub fn hit_count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

#[derive(Clone)]
struct ExpState {
    behavior: Behavior,
    hits: Arc<Mutex<Vec<Instant>>>,
    last_headers: Arc<Mutex<Option<HeaderMap>>>,
}

async fn serve_metrics(State(st): State<ExpState>, headers: HeaderMap) -> Response {
    let n = {
        let mut hits = st.hits.lock().unwrap();
        hits.push(Instant::now());
        hits.len()
    };
    *st.last_headers.lock().unwrap() = Some(headers);
    match st.behavior {
        Behavior::Body(b) => {
            let body = b.lock().unwrap().clone();
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
        }
        Behavior::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Behavior::Status(code) => (StatusCode::from_u16(code).unwrap(), "boom\n").into_response(),
        Behavior::Huge(n) => {
            let line =
                "filler_metric{label=\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"} 1\n";
            let count = n / line.len() + 1;
            let stream =
                futures_util::stream::iter((0..count).map(move |_| {
                    Ok::<_, std::io::Error>(bytes::Bytes::from_static(line.as_bytes()))
                }));
            (
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                axum::body::Body::from_stream(stream),
            )
                .into_response()
        }
        Behavior::Garbage => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            "<html><body>this is not metrics</body></html>\n",
        )
            .into_response(),
        Behavior::Counting => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            format!("served_total {n}\n"),
        )
            .into_response(),
        Behavior::Gzip(body) => {
            use std::io::Write;
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(body.as_bytes()).unwrap();
            let gz = enc.finish().unwrap();
            (
                [
                    (header::CONTENT_TYPE, "text/plain; version=0.0.4"),
                    (header::CONTENT_ENCODING, "gzip"),
                ],
                gz,
            )
                .into_response()
        }
    }
}

/// Starts a stand-in exporter on 127.0.0.1:0.
pub async fn exporter(behavior: Behavior) -> Exporter {
    let hits = Arc::new(Mutex::new(Vec::new()));
    let last_headers = Arc::new(Mutex::new(None));
    let st = ExpState {
        behavior,
        hits: hits.clone(),
        last_headers: last_headers.clone(),
    };
    let app = Router::new()
        .route("/metrics", get(serve_metrics))
        .with_state(st);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Exporter {
        addr,
        hits,
        last_headers,
    }
}

pub fn body(s: &str) -> Behavior {
    Behavior::Body(Arc::new(Mutex::new(s.to_string())))
}

/// A watchpost running in-process with its config in a temp dir.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub app: Option<RunningApp>,
    pub base: String,
    pub client: reqwest::Client,
}

impl Harness {
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("watchpost.yml")
    }

    pub fn write_config(&self, yaml: &str) {
        std::fs::write(self.config_path(), yaml).unwrap();
    }

    pub fn app(&self) -> &RunningApp {
        self.app.as_ref().unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.get(path).await.json().await.unwrap()
    }

    /// The body of a GET of `path` (e.g. `/metrics`).
    pub async fn get_text(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    pub async fn shutdown(mut self) {
        if let Some(a) = self.app.take() {
            a.shutdown().await;
        }
    }
}

/// Starts watchpost with `yaml` as its config (and optionally a web config).
pub async fn start(yaml: &str, web_config: Option<&str>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("watchpost.yml"), yaml).unwrap();
    let web_config_file = web_config.map(|w| {
        let p = dir.path().join("web.yml");
        std::fs::write(&p, w).unwrap();
        p
    });
    let mut opts = app::Options::new(dir.path().join("watchpost.yml"), dir.path().join("data"));
    opts.web_config_file = web_config_file;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = app::start(opts, listener).await.expect("watchpost starts");
    let base = format!("http://{}", app.local_addr());
    Harness {
        dir,
        app: Some(app),
        base,
        client: reqwest::Client::new(),
    }
}

/// Polls `f` every 50 ms until it returns Some, or panics after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the watchpost binary with `args` off the runtime (the watchpost it
/// talks to may run on this runtime) and returns its output.
pub async fn run_binary(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_watchpost"))
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}
