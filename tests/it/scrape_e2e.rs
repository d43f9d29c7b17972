//! End to end: watchpost in-process scraping local stand-ins, observed
//! through its HTTP API and its storage.

use std::time::Duration;

use serde_json::Value;
use watchpost::model::{Matcher, is_stale_nan};

use crate::support::{self, Behavior, Harness, body, eventually};

const GOOD: &str = "# HELP demo_requests_total Requests.\n# TYPE demo_requests_total counter\ndemo_requests_total{path=\"/\"} 10\ndemo_requests_total{path=\"/api\"} 3\n# TYPE demo_temp gauge\ndemo_temp 21.5\n";

/// Latest sample of the series matching `matchers`, if any.
fn latest(h: &Harness, matchers: &[Matcher]) -> Option<(i64, f64)> {
    let series = h.app().storage().select(matchers, 0, i64::MAX).ok()?;
    let s = series.into_iter().next()?;
    s.samples.last().map(|x| (x.t, x.v))
}

fn up_of(h: &Harness, instance: &str) -> Option<f64> {
    latest(
        h,
        &[
            Matcher::equal("__name__", "up"),
            Matcher::equal("instance", instance),
        ],
    )
    .map(|(_, v)| v)
}

async fn target_by_instance(h: &Harness, instance: &str) -> Option<Value> {
    let v = h.get_json("/api/v1/targets").await;
    v["data"]["activeTargets"]
        .as_array()?
        .iter()
        .find(|t| t["labels"]["instance"] == instance)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_get_their_reason_while_others_keep_schedule() {
    let good = support::exporter(body(GOOD)).await;
    let hang = support::exporter(Behavior::Hang).await;
    let err500 = support::exporter(Behavior::Status(500)).await;
    let huge = support::exporter(Behavior::Huge(50 << 20)).await;
    let garbage = support::exporter(Behavior::Garbage).await;
    let yaml = format!(
        r#"
global:
  scrape_interval: 1s
  scrape_timeout: 500ms
scrape_configs:
  - job_name: good
    static_configs: [{{targets: ["{}"]}}]
  - job_name: bad
    static_configs:
      - targets: ["{}", "{}", "{}"]
  # Debug builds stream slowly: give the 50 MB target time to hit the limit.
  - job_name: big
    scrape_interval: 2s
    scrape_timeout: 2s
    body_size_limit: 10MB
    static_configs:
      - targets: ["{}"]
"#,
        good.target(),
        hang.target(),
        err500.target(),
        garbage.target(),
        huge.target()
    );
    let h = support::start(&yaml, None).await;

    let cases = [
        (hang.target(), "timeout: no response within 500ms"),
        (
            err500.target(),
            "http_status: server returned HTTP status 500 Internal Server Error",
        ),
        (huge.target(), "body_too_large:"),
        (garbage.target(), "parse_error:"),
    ];
    for (inst, want) in &cases {
        let t = eventually(
            Duration::from_secs(10),
            &format!("{inst} scraped and down"),
            || async {
                let t = target_by_instance(&h, inst).await?;
                (t["health"] == "down").then_some(t)
            },
        )
        .await;
        let err = t["lastError"].as_str().unwrap();
        assert!(
            err.starts_with(want),
            "target {inst}: lastError {err:?} should start with {want:?}"
        );
        assert_eq!(up_of(&h, inst), Some(0.0), "up for {inst}");
    }
    // The good target is up and its samples are stored with target labels.
    eventually(Duration::from_secs(5), "good target up", || async {
        (up_of(&h, &good.target()) == Some(1.0)).then_some(())
    })
    .await;
    let (_, v) = latest(
        &h,
        &[
            Matcher::equal("__name__", "demo_requests_total"),
            Matcher::equal("path", "/api"),
            Matcher::equal("job", "good"),
        ],
    )
    .expect("demo_requests_total stored");
    assert_eq!(v, 3.0);
    for name in [
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    ] {
        assert!(
            latest(
                &h,
                &[
                    Matcher::equal("__name__", name),
                    Matcher::equal("instance", good.target())
                ]
            )
            .is_some(),
            "{name} written"
        );
    }
    let (_, scraped) = latest(
        &h,
        &[
            Matcher::equal("__name__", "scrape_samples_scraped"),
            Matcher::equal("instance", good.target()),
        ],
    )
    .unwrap();
    assert_eq!(scraped, 3.0);

    // The good target keeps its 1 s schedule while the others fail: every
    // gap between its scrapes is within 15% of the interval.
    let before = good.hit_count();
    tokio::time::sleep(Duration::from_millis(4200)).await;
    let hits = good.hits.lock().unwrap().clone();
    assert!(
        hits.len() - before >= 3,
        "good target scraped {} times in 4.2 s",
        hits.len() - before
    );
    for w in hits[before..].windows(2) {
        let gap = w[1].duration_since(w[0]).as_secs_f64();
        assert!(
            (0.85..=1.15).contains(&gap),
            "gap between scrapes of the good target: {gap:.3}s"
        );
    }

    // Failure counters are labelled by job and reason.
    let metrics = h
        .client
        .get(format!("{}/metrics", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (job, reason) in [
        ("bad", "timeout"),
        ("bad", "http_status"),
        ("big", "body_too_large"),
        ("bad", "parse_error"),
    ] {
        assert!(
            metrics.contains(&format!(
                "watchpost_scrape_failures_total{{job=\"{job}\",reason=\"{reason}\"}}"
            )),
            "no failure counter for {reason}"
        );
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_target_is_down_with_reason() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let yaml = format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\nscrape_configs:\n  - job_name: gone\n    static_configs: [{{targets: [\"127.0.0.1:{port}\"]}}]\n"
    );
    let h = support::start(&yaml, None).await;
    let inst = format!("127.0.0.1:{port}");
    let t = eventually(Duration::from_secs(5), "refused target down", || async {
        let t = target_by_instance(&h, &inst).await?;
        (t["health"] == "down").then_some(t)
    })
    .await;
    assert!(
        t["lastError"].as_str().unwrap().starts_with("refused:"),
        "{t}"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_and_removes_targets_with_staleness() {
    let a = support::exporter(body("metric_a 1\n")).await;
    let b = support::exporter(body("metric_b 2\n")).await;
    let c = support::exporter(body("metric_c 3\n")).await;
    let cfg = |targets: &[String]| {
        let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 500ms}}\nscrape_configs:\n  - job_name: j\n    static_configs: [{{targets: [{}]}}]\n",
            list.join(", ")
        )
    };
    let h = support::start(&cfg(&[a.target(), b.target()]), None).await;
    eventually(Duration::from_secs(5), "a and b scraped", || async {
        (up_of(&h, &a.target()) == Some(1.0) && up_of(&h, &b.target()) == Some(1.0)).then_some(())
    })
    .await;
    let b_hits_before = b.hit_count();

    h.write_config(&cfg(&[b.target(), c.target()]));
    let r = h
        .client
        .post(format!("{}/-/reload", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // c appears; a's series end with a staleness marker.
    eventually(Duration::from_secs(5), "c scraped", || async {
        (up_of(&h, &c.target()) == Some(1.0)).then_some(())
    })
    .await;
    let (_, a_last) = latest(&h, &[Matcher::equal("__name__", "metric_a")]).unwrap();
    assert!(
        is_stale_nan(a_last),
        "metric_a should end with a staleness marker, got {a_last}"
    );
    let (_, up_a) = latest(
        &h,
        &[
            Matcher::equal("__name__", "up"),
            Matcher::equal("instance", a.target()),
        ],
    )
    .unwrap();
    assert!(
        is_stale_nan(up_a),
        "up of the removed target should be stale"
    );
    // b's loop kept running: it never went stale and kept being scraped.
    let b_series = h
        .app()
        .storage()
        .select(&[Matcher::equal("__name__", "metric_b")], 0, i64::MAX)
        .unwrap();
    let b_samples: Vec<_> = b_series.into_iter().next().unwrap().samples.collect();
    assert!(
        b_samples.iter().all(|s| !is_stale_nan(s.v)),
        "b must not go stale across the reload"
    );
    let a_hits = a.hit_count();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(a.hit_count(), a_hits, "removed target is no longer scraped");
    assert!(b.hit_count() > b_hits_before, "kept target still scraped");
    let active = h.get_json("/api/v1/targets?state=active").await;
    assert_eq!(active["data"]["activeTargets"].as_array().unwrap().len(), 2);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reload_keeps_running_config() {
    let a = support::exporter(body("metric_a 1\n")).await;
    let good = format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 500ms}}\nscrape_configs:\n  - job_name: j\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        a.target()
    );
    let h = support::start(&good, None).await;
    h.write_config("global:\n  scrape_interval: 1s\n  scrape_timeout: 5s\nscrape_configs:\n  - job_name: j\n    scrape_interval: nope\n");
    let r = h
        .client
        .post(format!("{}/-/reload", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("watchpost.yml:"),
        "error names the file: {text}"
    );
    let before = a.hit_count();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(a.hit_count() > before, "old config keeps scraping");
    let m = h
        .client
        .get(format!("{}/metrics", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("watchpost_config_last_reload_successful 0"),
        "{m}"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_series_go_stale_and_honor_labels_conflicts_are_exported() {
    let beh = body("keep 1\ngoes_away 2\nwith_job{job=\"exporter\"} 3\n");
    let Behavior::Body(text) = beh.clone() else {
        unreachable!()
    };
    let e = support::exporter(beh).await;
    let yaml = format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 500ms}}\nscrape_configs:\n  - job_name: j\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        e.target()
    );
    let h = support::start(&yaml, None).await;
    eventually(Duration::from_secs(5), "first scrape", || async {
        latest(&h, &[Matcher::equal("__name__", "goes_away")]).map(|_| ())
    })
    .await;
    // honor_labels: false -> the exporter's job becomes exported_job.
    let (_, v) = latest(
        &h,
        &[
            Matcher::equal("__name__", "with_job"),
            Matcher::equal("job", "j"),
            Matcher::equal("exported_job", "exporter"),
        ],
    )
    .expect("with_job stored with exported_job");
    assert_eq!(v, 3.0);

    *text.lock().unwrap() = "keep 1\nwith_job{job=\"exporter\"} 3\n".to_string();
    eventually(Duration::from_secs(5), "goes_away marked stale", || async {
        latest(&h, &[Matcher::equal("__name__", "goes_away")])
            .and_then(|(_, v)| is_stale_nan(v).then_some(()))
    })
    .await;
    let (_, keep) = latest(&h, &[Matcher::equal("__name__", "keep")]).unwrap();
    assert_eq!(keep, 1.0);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_and_label_apis_answer_like_prometheus() {
    let e = support::exporter(body(GOOD)).await;
    let yaml = format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 500ms}}\nscrape_configs:\n  - job_name: demo\n    static_configs: [{{targets: [\"{}\"], labels: {{env: test}}}}]\n",
        e.target()
    );
    let h = support::start(&yaml, None).await;
    eventually(Duration::from_secs(5), "scraped", || async {
        (up_of(&h, &e.target()) == Some(1.0)).then_some(())
    })
    .await;

    let v = h.get_json("/api/v1/series?match[]=up").await;
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"][0]["__name__"], "up");
    assert_eq!(v["data"][0]["job"], "demo");
    assert_eq!(v["data"][0]["env"], "test");

    let v = h
        .get_json("/api/v1/series?match[]=demo_requests_total%7Bpath%3D%22%2Fapi%22%7D")
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["path"], "/api");

    // POST form works the same.
    let r = h
        .client
        .post(format!("{}/api/v1/series", h.base))
        .form(&[("match[]", "demo_temp")])
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"][0]["__name__"], "demo_temp");

    let v = h.get_json("/api/v1/labels").await;
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    for n in ["__name__", "env", "instance", "job", "path"] {
        assert!(names.contains(&n), "label {n} in {names:?}");
    }
    let v = h.get_json("/api/v1/label/__name__/values").await;
    let values: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(
        values.contains(&"demo_temp")
            && values.contains(&"up")
            && values.contains(&"scrape_series_added"),
        "{values:?}"
    );
    let v = h
        .get_json("/api/v1/label/path/values?match[]=demo_requests_total")
        .await;
    assert_eq!(v["data"], serde_json::json!(["/", "/api"]));

    // Errors use Prometheus's envelope.
    let r = h
        .client
        .get(format!("{}/api/v1/series", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "bad_data");
    assert_eq!(v["error"], "no match[] parameter provided");
    let r = h
        .client
        .get(format!(
            "{}/api/v1/series?match[]=up&start=yesterday",
            h.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let v = h.get_json("/api/v1/status/buildinfo").await;
    assert_eq!(v["data"]["version"], watchpost::VERSION);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bodies_and_scrape_headers() {
    let e = support::exporter(Behavior::Gzip("zipped 42\n".to_string())).await;
    let yaml = format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 500ms}}\nscrape_configs:\n  - job_name: z\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        e.target()
    );
    let h = support::start(&yaml, None).await;
    eventually(Duration::from_secs(5), "zipped stored", || async {
        latest(&h, &[Matcher::equal("__name__", "zipped")]).filter(|(_, v)| *v == 42.0)
    })
    .await;
    let hdrs = e.last_headers.lock().unwrap().clone().unwrap();
    let accept = hdrs.get("accept").unwrap().to_str().unwrap();
    assert!(
        accept.starts_with("application/openmetrics-text;version=1.0.0"),
        "{accept}"
    );
    assert!(accept.contains("text/plain;version=0.0.4"), "{accept}");
    assert!(
        hdrs.get("accept-encoding")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("gzip")
    );
    assert_eq!(
        hdrs.get("x-prometheus-scrape-timeout-seconds").unwrap(),
        "0.5"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_fail_the_scrape_and_store_nothing() {
    let e = support::exporter(body("a 1\nb 2\nc 3\n")).await;
    let l = support::exporter(body("m{a=\"1\",b=\"2\",c=\"3\"} 1\n")).await;
    let yaml = format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 500ms}}\nscrape_configs:\n  - job_name: samples\n    sample_limit: 2\n    static_configs: [{{targets: [\"{}\"]}}]\n  - job_name: labels\n    label_limit: 3\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        e.target(),
        l.target()
    );
    let h = support::start(&yaml, None).await;
    for (inst, want) in [
        (e.target(), "limit_exceeded: sample_limit exceeded"),
        (l.target(), "limit_exceeded: label_limit exceeded"),
    ] {
        let t = eventually(Duration::from_secs(5), "limited target down", || async {
            let t = target_by_instance(&h, &inst).await?;
            (t["health"] == "down").then_some(t)
        })
        .await;
        assert!(t["lastError"].as_str().unwrap().starts_with(want), "{t}");
        // The body's samples are rolled back, but the report that goes
        // into the same commit is not: `up` records the failure.
        eventually(Duration::from_secs(5), "up=0 stored", || async {
            (up_of(&h, &inst) == Some(0.0)).then_some(())
        })
        .await;
    }
    assert!(
        latest(&h, &[Matcher::equal("__name__", "a")]).is_none(),
        "nothing of a failed scrape is stored"
    );
    assert!(latest(&h, &[Matcher::equal("__name__", "m")]).is_none());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sd_changes_are_picked_up() {
    let a = support::exporter(body("from_a 1\n")).await;
    let b = support::exporter(body("from_b 1\n")).await;
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("targets.json");
    std::fs::write(
        &sd,
        format!(
            "[{{\"targets\": [\"{}\"], \"labels\": {{\"team\": \"x\"}}}}]",
            a.target()
        ),
    )
    .unwrap();
    let yaml = format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 500ms}}\nscrape_configs:\n  - job_name: fsd\n    file_sd_configs: [{{files: [\"{}\"]}}]\n",
        dir.path().join("*.json").display()
    );
    let h = support::start(&yaml, None).await;
    eventually(
        Duration::from_secs(5),
        "a discovered and scraped",
        || async {
            latest(
                &h,
                &[
                    Matcher::equal("__name__", "from_a"),
                    Matcher::equal("team", "x"),
                ],
            )
            .map(|_| ())
        },
    )
    .await;
    std::fs::write(
        &sd,
        format!(
            "[{{\"targets\": [\"{}\"], \"labels\": {{\"team\": \"y\"}}}}]",
            b.target()
        ),
    )
    .unwrap();
    eventually(
        Duration::from_secs(8),
        "b discovered and scraped",
        || async {
            latest(
                &h,
                &[
                    Matcher::equal("__name__", "from_b"),
                    Matcher::equal("team", "y"),
                ],
            )
            .map(|_| ())
        },
    )
    .await;
    eventually(Duration::from_secs(5), "a's series stale", || async {
        latest(&h, &[Matcher::equal("__name__", "from_a")])
            .and_then(|(_, v)| is_stale_nan(v).then_some(()))
    })
    .await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relabeling_shapes_targets_and_series() {
    let e = support::exporter(body("keep_me{mode=\"Idle\"} 1\ndrop_me 2\n")).await;
    let yaml = format!(
        r#"
global: {{scrape_interval: 1s, scrape_timeout: 500ms}}
scrape_configs:
  - job_name: rl
    static_configs:
      - targets: ["{t}"]
        labels: {{__meta_kind: web, dc: "eu-1"}}
      - targets: ["dropped.invalid:80"]
        labels: {{__meta_kind: db}}
    relabel_configs:
      - source_labels: [__meta_kind]
        regex: db
        action: drop
      - source_labels: [__meta_kind]
        target_label: kind
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: drop_me
        action: drop
      - source_labels: [mode]
        target_label: mode
        action: lowercase
"#,
        t = e.target()
    );
    let h = support::start(&yaml, None).await;
    eventually(Duration::from_secs(5), "kept series", || async {
        latest(
            &h,
            &[
                Matcher::equal("__name__", "keep_me"),
                Matcher::equal("mode", "idle"),
                Matcher::equal("kind", "web"),
            ],
        )
        .map(|_| ())
    })
    .await;
    assert!(latest(&h, &[Matcher::equal("__name__", "drop_me")]).is_none());
    let v = h.get_json("/api/v1/targets").await;
    assert_eq!(
        v["data"]["activeTargets"].as_array().unwrap().len(),
        1,
        "{v:#}"
    );
    let dropped = v["data"]["droppedTargets"].as_array().unwrap();
    assert_eq!(dropped.len(), 1);
    assert_eq!(
        dropped[0]["discoveredLabels"]["__address__"],
        "dropped.invalid:80"
    );
    assert_eq!(v["data"]["droppedTargetCounts"]["rl"], 1);
    assert_eq!(
        v["data"]["activeTargets"][0]["discoveredLabels"]["__meta_kind"],
        "web"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_guards_everything_but_healthy() {
    let hash = bcrypt::hash("pw", 4).unwrap();
    let web = format!("basic_auth_users:\n  alice: {hash}\n");
    let h = support::start("scrape_configs: []\n", Some(&web)).await;
    let r = h
        .client
        .get(format!("{}/api/v1/targets", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers().get("www-authenticate").unwrap(), "Basic");
    let r = h
        .client
        .get(format!("{}/metrics", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = h
        .client
        .get(format!("{}/api/v1/targets", h.base))
        .basic_auth("alice", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = h
        .client
        .get(format!("{}/api/v1/targets", h.base))
        .basic_auth("alice", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = h
        .client
        .get(format!("{}/-/healthy", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_config_hides_secrets() {
    let e = support::exporter(body("x 1\n")).await;
    let yaml = format!(
        "scrape_configs:\n  - job_name: s\n    basic_auth: {{username: u, password: hunter2}}\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        e.target()
    );
    let h = support::start(&yaml, None).await;
    let v = h.get_json("/api/v1/status/config").await;
    let y = v["data"]["yaml"].as_str().unwrap();
    assert!(!y.contains("hunter2"), "{y}");
    assert!(y.contains("<secret>"), "{y}");
    assert!(y.contains("job_name: s"), "{y}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let h = support::start("scrape_configs: []\n", None).await;
    let r = h
        .client
        .get(format!("{}/-/healthy", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = h
        .client
        .get(format!("{}/-/ready", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = h
        .client
        .get(format!("{}/nope", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_hook_sees_every_scrape_with_metric_names() {
    use std::sync::{Arc, Mutex};
    use watchpost::model::ScrapeEvent;
    use watchpost::scrape::manager::ScrapeManager;

    let beh = body("b_metric 1\na_metric{x=\"1\"} 2\na_metric{x=\"2\"} 3\n");
    let Behavior::Body(text) = beh.clone() else {
        unreachable!()
    };
    let e = support::exporter(beh).await;
    let yaml = format!(
        "global: {{scrape_interval: 200ms, scrape_timeout: 200ms}}\nscrape_configs:\n  - job_name: hooked\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        e.target()
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = watchpost::config::load_str(&yaml, "hook.yml", dir.path()).unwrap();
    let storage: Arc<dyn watchpost::storage::Storage> =
        Arc::new(watchpost::storage::mem::MemStorage::new());
    let telemetry = watchpost::telemetry::Telemetry::new(storage.clone());
    let tracker = tokio_util::task::TaskTracker::new();
    let mgr = ScrapeManager::new(storage, telemetry.scrape.clone(), tracker);
    let events: Arc<Mutex<Vec<ScrapeEvent>>> = Arc::default();
    let sink = events.clone();
    mgr.set_hook(Arc::new(move |ev: &ScrapeEvent| {
        sink.lock().unwrap().push(ev.clone())
    }));
    let clients = ScrapeManager::prepare(&cfg).unwrap();
    mgr.apply(&cfg, clients).await;

    let names = |evs: &[ScrapeEvent]| evs.last().map(|e| e.metric_names.as_ref().clone());
    let first = eventually(Duration::from_secs(5), "an event", || async {
        names(&events.lock().unwrap())
    })
    .await;
    assert_eq!(
        first,
        vec![
            "a_metric",
            "b_metric",
            "scrape_duration_seconds",
            "scrape_samples_post_metric_relabeling",
            "scrape_samples_scraped",
            "scrape_series_added",
            "up"
        ]
    );
    assert_eq!(events.lock().unwrap()[0].job, "hooked");
    // A metric that vanishes leaves the published set.
    *text.lock().unwrap() = "a_metric{x=\"1\"} 2\n".to_string();
    eventually(Duration::from_secs(5), "b_metric gone", || async {
        names(&events.lock().unwrap()).filter(|n| !n.contains(&"b_metric".to_string()))
    })
    .await;
    mgr.shutdown().await;
}

/// A store that, once told to, answers every append by reference with
/// `UnknownRef`, as the disk store does for a series retention removed.
struct Forgetful {
    inner: watchpost::storage::mem::MemStorage,
    forget: std::sync::atomic::AtomicBool,
    /// Appends by labels since `forget` was set.
    recreated: std::sync::atomic::AtomicU64,
}

struct ForgetfulAppender<'a> {
    store: &'a Forgetful,
    inner: Box<dyn watchpost::storage::Appender + 'a>,
}

impl watchpost::storage::Appender for ForgetfulAppender<'_> {
    fn append(
        &mut self,
        labels: &watchpost::model::Labels,
        t: i64,
        v: f64,
    ) -> Result<u64, watchpost::storage::AppendError> {
        use std::sync::atomic::Ordering;
        if self.store.forget.load(Ordering::SeqCst) {
            self.store.recreated.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.append(labels, t, v)
    }

    fn append_ref(
        &mut self,
        series: u64,
        t: i64,
        v: f64,
    ) -> Result<(), watchpost::storage::AppendError> {
        if self.store.forget.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(watchpost::storage::AppendError::UnknownRef);
        }
        self.inner.append_ref(series, t, v)
    }

    fn commit(
        self: Box<Self>,
    ) -> Result<watchpost::storage::CommitStats, watchpost::storage::StorageError> {
        self.inner.commit()
    }

    fn rollback(self: Box<Self>) {
        self.inner.rollback()
    }
}

impl watchpost::storage::Queryable for Forgetful {
    fn select(
        &self,
        m: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<watchpost::storage::Series>, watchpost::storage::StorageError> {
        self.inner.select(m, mint, maxt)
    }

    fn series(
        &self,
        m: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<watchpost::model::Labels>, watchpost::storage::StorageError> {
        self.inner.series(m, mint, maxt)
    }

    fn label_names(
        &self,
        m: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, watchpost::storage::StorageError> {
        self.inner.label_names(m, mint, maxt)
    }

    fn label_values(
        &self,
        name: &str,
        m: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, watchpost::storage::StorageError> {
        self.inner.label_values(name, m, mint, maxt)
    }
}

impl watchpost::storage::Storage for Forgetful {
    fn appender(&self) -> Box<dyn watchpost::storage::Appender + '_> {
        Box::new(ForgetfulAppender {
            store: self,
            inner: self.inner.appender(),
        })
    }

    fn stats(&self) -> watchpost::storage::HeadStats {
        self.inner.stats()
    }

    fn tsdb_status(&self, limit: usize) -> watchpost::storage::TsdbStatus {
        self.inner.tsdb_status(limit)
    }
}

/// Series storage no longer knows by reference are re-created from their
/// labels in the same scrape: no sample is lost.
#[tokio::test]
async fn series_storage_forgot_are_recreated_without_losing_samples() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use watchpost::scrape::manager::ScrapeManager;
    use watchpost::storage::Queryable;

    let e = support::exporter(body("m{x=\"1\"} 1\nm{x=\"2\"} 2\n")).await;
    let yaml = format!(
        "global: {{scrape_interval: 200ms, scrape_timeout: 200ms}}\nscrape_configs:\n  - job_name: forget\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        e.target()
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = watchpost::config::load_str(&yaml, "forget.yml", dir.path()).unwrap();
    let store = Arc::new(Forgetful {
        inner: watchpost::storage::mem::MemStorage::new(),
        forget: Default::default(),
        recreated: Default::default(),
    });
    let storage: Arc<dyn watchpost::storage::Storage> = store.clone();
    let telemetry = watchpost::telemetry::Telemetry::new(storage.clone());
    let mgr = ScrapeManager::new(
        storage,
        telemetry.scrape.clone(),
        tokio_util::task::TaskTracker::new(),
    );
    let clients = ScrapeManager::prepare(&cfg).unwrap();
    mgr.apply(&cfg, clients).await;
    let count = |x: &str| {
        store
            .select(
                &[Matcher::equal("__name__", "m"), Matcher::equal("x", x)],
                0,
                i64::MAX,
            )
            .unwrap()
            .into_iter()
            .next()
            .map_or(0, |s| s.samples.count())
    };
    eventually(Duration::from_secs(5), "two scrapes", || async {
        (count("2") >= 2).then_some(())
    })
    .await;
    store.forget.store(true, Ordering::SeqCst);
    let before = count("2");
    eventually(
        Duration::from_secs(5),
        "samples after forgetting",
        || async { (count("1") >= before + 3 && count("2") >= before + 3).then_some(()) },
    )
    .await;
    assert!(store.recreated.load(Ordering::SeqCst) >= 6);
    mgr.shutdown().await;
}
