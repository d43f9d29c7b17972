//! Remote write from a real Prometheus 2.42 (Debian's `prometheus`
//! package, installed by `.ci/run`): Prometheus scrapes itself and remote
//! writes into watchpost, and the series show up in watchpost's query API.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{self, eventually};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A running `prometheus`, killed on drop.
struct Prometheus {
    child: Child,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn start_prometheus(dir: &std::path::Path, write_url: &str) -> Prometheus {
    let port = free_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: prom
    static_configs: [{{targets: ['127.0.0.1:{port}']}}]
remote_write:
  - url: {write_url}
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}
"
        ),
    )
    .unwrap();
    let log = dir.join("prometheus.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run prometheus ({e}): install Debian's prometheus package")
        });
    Prometheus { child, log }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs Debian's prometheus package (2.42); run by .ci/run"]
async fn prometheus_remote_writes_into_watchpost() {
    let h = support::start(
        "global: {scrape_interval: 5s}\npush: {remote_write: true}\n",
        None,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let prom = start_prometheus(dir.path(), &format!("{}/api/v1/write", h.base));
    let query = |q: &'static str| {
        let client = h.client.clone();
        let url = format!("{}/api/v1/query", h.base);
        async move {
            let v: Value = client
                .get(url)
                .query(&[("query", q)])
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let r = v["data"]["result"].as_array()?.clone();
            (!r.is_empty()).then_some(r)
        }
    };
    // Bounded: Prometheus sends within a few batch deadlines of starting.
    let waited = tokio::time::timeout(
        Duration::from_secs(90),
        eventually(
            Duration::from_secs(90),
            "up{job=\"prom\"} from Prometheus",
            || query("up{job=\"prom\"} == 1"),
        ),
    )
    .await;
    let up = match waited {
        Ok(r) => r,
        Err(_) => panic!(
            "no remote-written sample arrived; prometheus log:\n{}",
            prom.log()
        ),
    };
    assert_eq!(
        up[0]["metric"]["instance"]
            .as_str()
            .unwrap()
            .split(':')
            .next(),
        Some("127.0.0.1")
    );
    // Many series of Prometheus's own metrics arrive, with their labels.
    let build = query("prometheus_build_info")
        .await
        .expect("prometheus_build_info");
    assert!(
        build[0]["metric"]["version"]
            .as_str()
            .unwrap()
            .starts_with("2.42")
    );
    let m = h.get_text("/metrics").await;
    assert!(
        m.contains("watchpost_push_requests_accepted_total{api=\"remote_write\"}"),
        "remote-write requests not counted"
    );
    drop(prom);
    h.shutdown().await;
}
