//! Push ingestion end to end: the Pushgateway API with Pushgateway's
//! semantics (a table of pushes and the group state each must leave), its
//! bounds, persistence across a restart, pushed series in PromQL and in
//! on_scrape rules, and the remote-write receiver with a hand-built
//! request. The round trip from a real Prometheus is in `interop_push`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use watchpost::app;

use crate::support::{self, Harness, eventually};

const ENABLED: &str = "global: {scrape_interval: 1s}\npush: {pushgateway: true}\n";

async fn send(
    h: &Harness,
    method: &str,
    path: &str,
    body: &str,
    ct: Option<&str>,
) -> (u16, String) {
    let mut r = h
        .client
        .request(method.parse().unwrap(), format!("{}{path}", h.base))
        .body(body.to_string());
    if let Some(ct) = ct {
        r = r.header("Content-Type", ct);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The `/api/v1/metrics` entry of the group with exactly these labels.
async fn group(h: &Harness, labels: &[(&str, &str)]) -> Option<Value> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let v = h.get_json("/api/v1/metrics").await;
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| {
            serde_json::from_value::<BTreeMap<String, String>>(g["labels"].clone()).unwrap() == want
        })
        .cloned()
}

/// A group's pushed samples as `family{labels} value` lines, without the
/// two push-time families.
fn samples(g: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (family, f) in g.as_object().unwrap() {
        if matches!(
            family.as_str(),
            "labels" | "last_push_successful" | "push_time_seconds" | "push_failure_time_seconds"
        ) {
            continue;
        }
        for m in f["metrics"].as_array().unwrap() {
            let labels: BTreeMap<String, String> =
                serde_json::from_value(m["labels"].clone()).unwrap();
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push(format!(
                "{family}{{{}}} {}",
                l.join(","),
                m["value"].as_str().unwrap()
            ));
        }
    }
    out.sort();
    out
}

fn push_time(g: &Value, which: &str) -> f64 {
    g[which]["metrics"][0]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn query(h: &Harness, q: &str) -> Vec<(BTreeMap<String, String>, String)> {
    let v = h
        .client
        .get(format!("{}/api/v1/query", h.base))
        .query(&[("query", q)])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(v["status"], "success", "{v}");
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                serde_json::from_value(r["metric"].clone()).unwrap(),
                r["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_endpoints_answer_404_naming_the_switch() {
    let h = support::start("global: {scrape_interval: 1s}\n", None).await;
    let (s, body) = send(&h, "PUT", "/metrics/job/a", "x 1\n", None).await;
    assert_eq!(s, 404);
    assert!(body.contains("push: {pushgateway: true}"), "{body}");
    let (s, body) = send(&h, "GET", "/api/v1/metrics", "", None).await;
    assert_eq!((s, body.contains("pushgateway: true")), (404, true));
    let (s, body) = send(&h, "POST", "/api/v1/write", "", None).await;
    assert_eq!(s, 404);
    assert!(
        body.contains("push: {remote_write: true}")
            && body.contains("--web.enable-remote-write-receiver"),
        "{body}"
    );
    assert!(query(&h, "x").await.is_empty());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_endpoints_require_the_web_config_users() {
    let hash = bcrypt::hash("pw", 4).unwrap();
    let web = format!("basic_auth_users:\n  alice: {hash}\n");
    let h = support::start(
        "push: {pushgateway: true, remote_write: true}\n",
        Some(&web),
    )
    .await;
    for (method, path) in [
        ("PUT", "/metrics/job/a"),
        ("DELETE", "/metrics/job/a"),
        ("GET", "/api/v1/metrics"),
        ("POST", "/api/v1/write"),
    ] {
        let (s, _) = send(&h, method, path, "x 1\n", None).await;
        assert_eq!(s, 401, "{method} {path}");
    }
    // The refused PUT stored nothing.
    let v: Value = h
        .client
        .get(format!("{}/api/v1/metrics", h.base))
        .basic_auth("alice", Some("pw"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"], serde_json::json!([]));
    let r = h
        .client
        .put(format!("{}/metrics/job/a", h.base))
        .basic_auth("alice", Some("pw"))
        .body("x 1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    h.shutdown().await;
}

/// One step of the table: a request, its status, and the state of one
/// group afterwards (`None`: the group must not exist).
struct Step {
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: &'static str,
    status: u16,
    /// Text the response must contain.
    says: &'static str,
    group: &'static [(&'static str, &'static str)],
    samples: Option<&'static [&'static str]>,
}

const OM: Option<&str> = Some("application/openmetrics-text; version=1.0.0");

const STEPS: &[Step] = &[
    // PUT creates the group; grouping labels are added to every series.
    Step {
        method: "PUT",
        path: "/metrics/job/batch/instance/i1",
        content_type: None,
        body: "# TYPE x gauge\nx 1\ny{k=\"v\"} 2\n",
        status: 200,
        says: "",
        group: &[("instance", "i1"), ("job", "batch")],
        samples: Some(&[
            "x{instance=i1,job=batch} 1",
            "y{instance=i1,job=batch,k=v} 2",
        ]),
    },
    // POST replaces only the families it pushes.
    Step {
        method: "POST",
        path: "/metrics/job/batch/instance/i1",
        content_type: None,
        body: "x 3\n",
        status: 200,
        says: "",
        group: &[("instance", "i1"), ("job", "batch")],
        samples: Some(&[
            "x{instance=i1,job=batch} 3",
            "y{instance=i1,job=batch,k=v} 2",
        ]),
    },
    // PUT replaces the whole group.
    Step {
        method: "PUT",
        path: "/metrics/job/batch/instance/i1",
        content_type: None,
        body: "z 4\n",
        status: 200,
        says: "",
        group: &[("instance", "i1"), ("job", "batch")],
        samples: Some(&["z{instance=i1,job=batch} 4"]),
    },
    // Another grouping key is another group: the first is untouched.
    Step {
        method: "POST",
        path: "/metrics/job/batch",
        content_type: None,
        body: "z 5\n",
        status: 200,
        says: "",
        group: &[("instance", "i1"), ("job", "batch")],
        samples: Some(&["z{instance=i1,job=batch} 4"]),
    },
    // Grouping labels override pushed labels of the same name.
    Step {
        method: "PUT",
        path: "/metrics/job/deploy/env/prod",
        content_type: None,
        body: "m{env=\"dev\",job=\"other\",k=\"v\"} 1\n",
        status: 200,
        says: "",
        group: &[("env", "prod"), ("job", "deploy")],
        samples: Some(&["m{env=prod,job=deploy,k=v} 1"]),
    },
    // @base64 values: a slash in the job, an empty value written `=`.
    Step {
        method: "PUT",
        path: "/metrics/job@base64/Zm9vL2Jhcg/path@base64/=",
        content_type: None,
        body: "q 1\n",
        status: 200,
        says: "",
        group: &[("job", "foo/bar"), ("path", "")],
        samples: Some(&["q{job=foo/bar} 1"]),
    },
    // OpenMetrics bodies by Content-Type; the family keeps its name.
    Step {
        method: "PUT",
        path: "/metrics/job/om",
        content_type: OM,
        body: "# TYPE done counter\ndone_total 3\n# EOF\n",
        status: 200,
        says: "",
        group: &[("job", "om")],
        samples: Some(&["done{job=om} 3"]),
    },
    // A body that does not parse: 400 with line and column, nothing stored.
    Step {
        method: "PUT",
        path: "/metrics/job/batch/instance/i1",
        content_type: None,
        body: "ok 1\nx{ 1\n",
        status: 400,
        says: "line 2, column",
        group: &[("instance", "i1"), ("job", "batch")],
        samples: Some(&["z{instance=i1,job=batch} 4"]),
    },
    Step {
        method: "PUT",
        path: "/metrics/job/om",
        content_type: OM,
        body: "# TYPE done counter\ndone_total 4\n",
        status: 400,
        says: "missing \"# EOF\"",
        group: &[("job", "om")],
        samples: Some(&["done{job=om} 3"]),
    },
    // Timestamps are refused (Pushgateway 1.x); the group keeps its data.
    Step {
        method: "POST",
        path: "/metrics/job/batch/instance/i1",
        content_type: None,
        body: "z 9 1700000000000\n",
        status: 400,
        says: "must not have timestamps",
        group: &[("instance", "i1"), ("job", "batch")],
        samples: Some(&["z{instance=i1,job=batch} 4"]),
    },
    // One type per family name across groups.
    Step {
        method: "PUT",
        path: "/metrics/job/other",
        content_type: None,
        body: "# TYPE x counter\nx 1\n",
        status: 200,
        says: "",
        group: &[("job", "other")],
        samples: Some(&["x{job=other} 1"]),
    },
    Step {
        method: "PUT",
        path: "/metrics/job/third",
        content_type: None,
        body: "# TYPE x gauge\nx 1\n",
        status: 400,
        says: "metric family \"x\" is pushed as gauge but group {job=\"other\"} has it as counter",
        group: &[("job", "third")],
        samples: Some(&[]),
    },
    // Bad URLs.
    Step {
        method: "PUT",
        path: "/metrics/job/a/instance",
        content_type: None,
        body: "x 1\n",
        status: 400,
        says: "odd number of components",
        group: &[("job", "a")],
        samples: None,
    },
    Step {
        method: "PUT",
        path: "/metrics/job/a/__x/y",
        content_type: None,
        body: "x 1\n",
        status: 400,
        says: "improper label name \"__x\"",
        group: &[("job", "a")],
        samples: None,
    },
    Step {
        method: "PUT",
        path: "/metrics/job@base64/!!!",
        content_type: None,
        body: "x 1\n",
        status: 400,
        says: "invalid base64 encoding",
        group: &[("job", "a")],
        samples: None,
    },
    // An empty PUT empties the group but keeps it (unlike DELETE).
    Step {
        method: "PUT",
        path: "/metrics/job/batch",
        content_type: None,
        body: "",
        status: 200,
        says: "",
        group: &[("job", "batch")],
        samples: Some(&[]),
    },
    // DELETE removes the group (202, as Pushgateway), also when absent.
    Step {
        method: "DELETE",
        path: "/metrics/job/batch/instance/i1",
        content_type: None,
        body: "",
        status: 202,
        says: "",
        group: &[("instance", "i1"), ("job", "batch")],
        samples: None,
    },
    Step {
        method: "DELETE",
        path: "/metrics/job/never",
        content_type: None,
        body: "",
        status: 202,
        says: "",
        group: &[("job", "never")],
        samples: None,
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushgateway_semantics_table() {
    let h = support::start(ENABLED, None).await;
    for (i, s) in STEPS.iter().enumerate() {
        let (status, body) = send(&h, s.method, s.path, s.body, s.content_type).await;
        let ctx = format!("step {i}: {} {}", s.method, s.path);
        assert_eq!(status, s.status, "{ctx}: {body}");
        assert!(body.contains(s.says), "{ctx}: {body:?} lacks {:?}", s.says);
        let g = group(&h, s.group).await;
        match s.samples {
            None => assert!(g.is_none(), "{ctx}: group still there: {g:?}"),
            Some(want) => {
                let g = g.unwrap_or_else(|| panic!("{ctx}: group {:?} missing", s.group));
                assert_eq!(samples(&g), want, "{ctx}");
            }
        }
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_times_record_success_and_failure() {
    let h = support::start(ENABLED, None).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let key = [("job", "nightly")];
    assert_eq!(
        send(&h, "PUT", "/metrics/job/nightly", "done 1\n", None)
            .await
            .0,
        200
    );
    let g = group(&h, &key).await.unwrap();
    let ok = push_time(&g, "push_time_seconds");
    assert!(
        (ok - now).abs() < 60.0,
        "push_time_seconds {ok} vs now {now}"
    );
    assert_eq!(push_time(&g, "push_failure_time_seconds"), 0.0);
    assert_eq!(g["last_push_successful"], true);

    // A parse error changes nothing, failure time included (Pushgateway).
    assert_eq!(
        send(&h, "PUT", "/metrics/job/nightly", "done{\n", None)
            .await
            .0,
        400
    );
    let g = group(&h, &key).await.unwrap();
    assert_eq!(push_time(&g, "push_failure_time_seconds"), 0.0);

    // An invalid push records its time and keeps the data.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        send(&h, "PUT", "/metrics/job/nightly", "done 2 5\n", None)
            .await
            .0,
        400
    );
    let g = group(&h, &key).await.unwrap();
    let failed = push_time(&g, "push_failure_time_seconds");
    assert!(failed > ok, "failure {failed} after success {ok}");
    assert_eq!(push_time(&g, "push_time_seconds"), ok);
    assert_eq!(g["last_push_successful"], false);
    assert_eq!(samples(&g), ["done{job=nightly} 1"]);

    // Both are series too, labelled with the grouping key.
    let r = query(&h, "push_failure_time_seconds").await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0["job"], "nightly");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_bounded() {
    let h = support::start(
        "push:
  pushgateway: true
  max_request_bytes: 1KiB
  max_samples_per_request: 3
  max_series_per_group: 4
  max_groups: 2
",
        None,
    )
    .await;
    let big = format!("x {}\n", "1".repeat(2000));
    let (s, body) = send(&h, "PUT", "/metrics/job/a", &big, None).await;
    assert_eq!(s, 413, "{body}");
    assert!(body.contains("push.max_request_bytes (1KiB)"), "{body}");

    let (s, body) = send(&h, "PUT", "/metrics/job/a", "a 1\nb 1\nc 1\nd 1\n", None).await;
    assert_eq!(s, 400);
    assert!(body.contains("push.max_samples_per_request (3)"), "{body}");

    // Two pushed series plus the two push-time series fill the group.
    assert_eq!(
        send(&h, "PUT", "/metrics/job/a", "a 1\nb 1\n", None)
            .await
            .0,
        200
    );
    let (s, body) = send(&h, "POST", "/metrics/job/a", "c 1\n", None).await;
    assert_eq!(s, 400);
    assert!(body.contains("push.max_series_per_group (4)"), "{body}");
    let g = group(&h, &[("job", "a")]).await.unwrap();
    assert_eq!(samples(&g), ["a{job=a} 1", "b{job=a} 1"]);

    assert_eq!(
        send(&h, "PUT", "/metrics/job/b", "a 1\n", None).await.0,
        200
    );
    let (s, body) = send(&h, "PUT", "/metrics/job/c", "a 1\n", None).await;
    assert_eq!(s, 400);
    assert!(body.contains("push.max_groups (2)"), "{body}");
    assert!(group(&h, &[("job", "c")]).await.is_none());
    // Existing groups still take pushes.
    assert_eq!(
        send(&h, "PUT", "/metrics/job/b", "a 2\n", None).await.0,
        200
    );

    let m = h.get_text("/metrics").await;
    for want in [
        "watchpost_push_requests_rejected_total{api=\"pushgateway\",reason=\"too_large\"} 1",
        "watchpost_push_requests_rejected_total{api=\"pushgateway\",reason=\"limit_exceeded\"} 3",
        "watchpost_push_requests_accepted_total{api=\"pushgateway\"} 3",
        "watchpost_push_groups 2",
    ] {
        assert!(m.contains(want), "/metrics lacks {want}");
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_groups_are_queryable_survive_a_restart_and_go_stale_on_delete() {
    let mut h = support::start(ENABLED, None).await;
    let (s, _) = send(
        &h,
        "PUT",
        "/metrics/job/backup/host/db1",
        "# TYPE backup_last_success_seconds gauge\nbackup_last_success_seconds 1700000000\n",
        None,
    )
    .await;
    assert_eq!(s, 200);
    let r = query(&h, "backup_last_success_seconds").await;
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].0,
        BTreeMap::from([
            (
                "__name__".to_string(),
                "backup_last_success_seconds".to_string()
            ),
            ("host".to_string(), "db1".to_string()),
            ("job".to_string(), "backup".to_string()),
        ])
    );
    assert_eq!(r[0].1, "1700000000");

    // Restart on the same storage path: the group is back, and it is
    // re-appended (a fresh sample after the restart).
    h.app.take().unwrap().shutdown().await;
    let opts = app::Options::new(h.config_path(), h.dir.path().join("data"));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let restarted = app::start(opts, listener).await.unwrap();
    h.base = format!("http://{}", restarted.local_addr());
    h.app = Some(restarted);
    let g = group(&h, &[("host", "db1"), ("job", "backup")])
        .await
        .unwrap();
    assert_eq!(
        samples(&g),
        ["backup_last_success_seconds{host=db1,job=backup} 1700000000"]
    );
    let before = query(&h, "timestamp(backup_last_success_seconds)").await[0]
        .1
        .parse::<f64>()
        .unwrap();
    eventually(Duration::from_secs(10), "a re-appended sample", || async {
        let t: f64 = query(&h, "timestamp(backup_last_success_seconds)").await[0]
            .1
            .parse()
            .unwrap();
        (t > before).then_some(())
    })
    .await;

    // DELETE ends the series with a staleness marker: gone from queries at
    // once, not after the 5m lookback.
    assert_eq!(
        send(&h, "DELETE", "/metrics/job/backup/host/db1", "", None)
            .await
            .0,
        202
    );
    assert!(query(&h, "backup_last_success_seconds").await.is_empty());
    assert!(query(&h, "push_time_seconds").await.is_empty());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_and_deletes_wake_on_scrape_rule_groups() {
    let rules = tempfile::tempdir().unwrap();
    let file = rules.path().join("push.yml");
    // An interval long enough that only the push can trigger evaluation.
    std::fs::write(
        &file,
        "groups:
  - name: batch
    interval: 1h
    evaluation: on_scrape
    rules:
      - alert: BatchFailed
        expr: batch_failed > 0
",
    )
    .unwrap();
    let h = support::start(
        &format!(
            "global: {{scrape_interval: 1h}}\npush: {{pushgateway: true}}\nrule_files: [{}]\n",
            file.display()
        ),
        None,
    )
    .await;
    assert_eq!(
        send(&h, "PUT", "/metrics/job/etl", "batch_failed 1\n", None)
            .await
            .0,
        200
    );
    eventually(Duration::from_secs(10), "BatchFailed firing", || async {
        let v = h.get_json("/api/v1/alerts").await;
        v["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["labels"]["alertname"] == "BatchFailed" && a["labels"]["job"] == "etl")
            .then_some(())
    })
    .await;
    // Deleting the group ends the series and wakes the group again: the
    // alert resolves without waiting for the 1h interval.
    assert_eq!(
        send(&h, "DELETE", "/metrics/job/etl", "", None).await.0,
        202
    );
    eventually(Duration::from_secs(10), "BatchFailed resolved", || async {
        let v = h.get_json("/api/v1/alerts").await;
        v["data"]["alerts"]
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
    h.shutdown().await;
}

/// Protobuf wire format by hand, independent of the prost structs under
/// test.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field.
fn field(tag: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint(tag << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A `Label`/`LabelPair` message: name in field 1, value in field 2.
fn label_pair(name: &str, value: &str) -> Vec<u8> {
    let mut l = Vec::new();
    field(1, name.as_bytes(), &mut l);
    field(2, value.as_bytes(), &mut l);
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_pushes_as_client_golang_sends_them() {
    let h = support::start(ENABLED, None).await;
    // MetricFamily{name: "jobs_processed_total", help, type: COUNTER,
    // metric: [{label: [{queue, mail}], counter: {value: 42}}]},
    // length-delimited, as client_golang's push package sends it.
    let mut metric = Vec::new();
    field(1, &label_pair("queue", "mail"), &mut metric);
    let mut counter = vec![0x09];
    counter.extend_from_slice(&42.0f64.to_le_bytes());
    field(3, &counter, &mut metric);
    let mut family = Vec::new();
    field(1, b"jobs_processed_total", &mut family);
    field(2, b"Jobs processed.", &mut family);
    family.extend_from_slice(&[0x18, 0x00]); // type: COUNTER
    field(4, &metric, &mut family);
    let mut body = Vec::new();
    varint(family.len() as u64, &mut body);
    body.extend_from_slice(&family);
    let put = |body: Vec<u8>, ct: &'static str| {
        h.client
            .put(format!("{}/metrics/job/worker", h.base))
            .header("Content-Type", ct)
            .body(body)
            .send()
    };
    let delimited = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";
    let r = put(body.clone(), delimited).await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    let g = group(&h, &[("job", "worker")]).await.unwrap();
    assert_eq!(
        samples(&g),
        ["jobs_processed_total{job=worker,queue=mail} 42"]
    );
    assert_eq!(g["jobs_processed_total"]["type"], "COUNTER");
    assert_eq!(g["jobs_processed_total"]["help"], "Jobs processed.");
    let r = query(&h, "jobs_processed_total").await;
    assert_eq!((r.len(), r[0].1.as_str()), (1, "42"));

    // A cut-off message is a 400 naming the family; nothing changes.
    let r = put(body[..body.len() - 3].to_vec(), delimited)
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("metric family #1"));
    let g = group(&h, &[("job", "worker")]).await.unwrap();
    assert_eq!(
        samples(&g),
        ["jobs_processed_total{job=worker,queue=mail} 42"]
    );
    // Other protobuf encodings are refused with 415.
    let r = put(
        body,
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text",
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    h.shutdown().await;
}

/// A remote-write 1.0 request built by hand: protobuf wire format, then
/// snappy block compression.
/// One series of a request: its labels and its (timestamp ms, value) samples.
type Series<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

fn write_request(series: &[Series<'_>]) -> Vec<u8> {
    let mut req = Vec::new();
    for (labels, samples) in series {
        let mut ts = Vec::new();
        for (n, v) in *labels {
            field(1, &label_pair(n, v), &mut ts);
        }
        for (t, v) in *samples {
            let mut s = vec![0x09]; // field 1, fixed64: the value
            s.extend_from_slice(&v.to_le_bytes());
            s.push(0x10); // field 2, varint: the timestamp
            varint(*t as u64, &mut s);
            field(2, &s, &mut ts);
        }
        field(1, &ts, &mut req);
    }
    snap::raw::Encoder::new().compress_vec(&req).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_stores_samples_with_their_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("watchpost.yml");
    std::fs::write(&cfg, "global: {scrape_interval: 1s}\n").unwrap();
    // The Prometheus flag enables the receiver without the config key.
    let mut opts = app::Options::new(cfg, dir.path().join("data"));
    opts.enable_remote_write_receiver = true;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = app::start(opts, listener).await.unwrap();
    let h = Harness {
        base: format!("http://{}", a.local_addr()),
        app: Some(a),
        dir,
        client: reqwest::Client::new(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let body = write_request(&[(
        &[("__name__", "rw_temp"), ("room", "a")],
        &[(now - 2000, 20.5), (now - 1000, 21.5)],
    )]);
    let post = |body: Vec<u8>, enc: &'static str| {
        h.client
            .post(format!("{}/api/v1/write", h.base))
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", enc)
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body)
            .send()
    };
    let r = post(body, "snappy").await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let r = query(&h, "rw_temp").await;
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].0["room"].as_str(), r[0].1.as_str()), ("a", "21.5"));
    let t = query(&h, "timestamp(rw_temp)").await[0]
        .1
        .parse::<f64>()
        .unwrap();
    assert_eq!((t * 1000.0).round() as i64, now - 1000);

    let r = post(b"garbage".to_vec(), "snappy").await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().starts_with("snappy: "));
    let r = post(
        write_request(&[(&[("__name__", "x")], &[(1, 1.0)])]),
        "zstd",
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    h.shutdown().await;
}
