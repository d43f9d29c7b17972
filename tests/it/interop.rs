//! Interop with the real Prometheus tools from Debian's packages. These
//! tests need `promtool` (package `prometheus`) on PATH; `.ci/run` installs
//! it and runs them with `cargo test --test it -- --ignored`. They are
//! ignored in the plain `cargo test`, which must pass with Rust alone.

use std::process::Command;
use std::time::Duration;

use crate::support::{self, body, eventually};

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool on PATH (Debian package prometheus; .ci/run installs it)");
    assert!(
        out.status.success(),
        "promtool {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: needs promtool; run by .ci/run"]
async fn promtool_queries_a_live_watchpost() {
    let e = support::exporter(body(
        "# TYPE temp gauge\ntemp{room=\"a\"} 21.5\ntemp{room=\"b\"} 19\n",
    ))
    .await;
    let yaml = format!(
        "global: {{scrape_interval: 500ms, scrape_timeout: 400ms}}\nscrape_configs:\n  - job_name: interop\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        e.target()
    );
    let h = support::start(&yaml, None).await;
    let base = h.base.clone();
    eventually(Duration::from_secs(10), "scraped", || async {
        let v = h.get_json("/api/v1/query?query=temp").await;
        (v["data"]["result"].as_array().map(|a| a.len()) == Some(2)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let b = base.clone();
    let out = tokio::task::spawn_blocking(move || {
        promtool(&["query", "instant", &b, "sum by (job) (temp)"])
    })
    .await
    .unwrap();
    assert!(out.starts_with("{job=\"interop\"} => 40.5 @["), "{out}");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (start, end) = ((now - 2).to_string(), now.to_string());
    let b = base.clone();
    let out = tokio::task::spawn_blocking(move || {
        promtool(&[
            "query",
            "range",
            "--start",
            &start,
            "--end",
            &end,
            "--step",
            "1s",
            &b,
            "temp{room=\"b\"}",
        ])
    })
    .await
    .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("temp{instance=")
            && lines[0].contains("room=\"b\"")
            && lines[0].ends_with("=>"),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .skip(1)
            .filter(|l| l.starts_with("19 @["))
            .count()
            >= 2,
        "{out}"
    );

    let b = base.clone();
    let out =
        tokio::task::spawn_blocking(move || promtool(&["query", "series", "--match", "temp", &b]))
            .await
            .unwrap();
    assert_eq!(out.lines().count(), 2, "{out}");
    let b = base.clone();
    let out = tokio::task::spawn_blocking(move || promtool(&["query", "labels", &b, "room"]))
        .await
        .unwrap();
    assert_eq!(out.lines().collect::<Vec<_>>(), vec!["a", "b"]);
    h.shutdown().await;
}
