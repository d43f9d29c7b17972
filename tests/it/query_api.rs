//! `/api/v1/query` and `/api/v1/query_range` end to end: watchpost scrapes a
//! stand-in, then answers PromQL in Prometheus's JSON.

use std::time::Duration;

use serde_json::Value;

use crate::support::{self, body, eventually};

async fn query(h: &support::Harness, q: &str) -> (u16, Value) {
    let r = h
        .client
        .get(format!("{}/api/v1/query", h.base))
        .query(&[("query", q)])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_and_range_queries_answer_like_prometheus() {
    let e = support::exporter(body(
        "# TYPE temp gauge\ntemp{room=\"a\"} 21.5\ntemp{room=\"b\"} 19\n# TYPE hits_total counter\nhits_total 7\n",
    ))
    .await;
    let yaml = format!(
        "global: {{scrape_interval: 500ms, scrape_timeout: 400ms}}\nscrape_configs:\n  - job_name: q\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        e.target()
    );
    let h = support::start(&yaml, None).await;
    eventually(Duration::from_secs(10), "temp queryable", || async {
        let (_, v) = query(&h, "temp").await;
        (v["data"]["result"].as_array().map(|a| a.len()) == Some(2)).then_some(())
    })
    .await;

    let (status, v) = query(&h, "sum by (job) (temp)").await;
    assert_eq!(status, 200);
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "vector");
    assert_eq!(
        v["data"]["result"][0]["metric"],
        serde_json::json!({"job": "q"})
    );
    assert_eq!(v["data"]["result"][0]["value"][1], "40.5");
    assert!(v["data"]["result"][0]["value"][0].is_number());

    let (_, v) = query(&h, "1/0").await;
    assert_eq!(v["data"]["resultType"], "scalar");
    assert_eq!(v["data"]["result"][1], "+Inf");
    let (_, v) = query(&h, "\"hello\"").await;
    assert_eq!(v["data"]["resultType"], "string");
    assert_eq!(v["data"]["result"][1], "hello");

    // limit truncates with a warning.
    let r = h
        .client
        .get(format!("{}/api/v1/query", h.base))
        .query(&[("query", "temp"), ("limit", "1")])
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 1);
    assert_eq!(v["warnings"][0], "results truncated due to limit");

    // Range query over the last few seconds, POST form.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let r = h
        .client
        .post(format!("{}/api/v1/query_range", h.base))
        .form(&[
            ("query", "temp{room=\"a\"}".to_string()),
            ("start", format!("{:.3}", now - 2.0)),
            ("end", format!("{now:.3}")),
            ("step", "0.5".to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["resultType"], "matrix");
    let values = v["data"]["result"][0]["values"].as_array().unwrap();
    assert!(values.len() >= 4, "{v}");
    assert!(values.iter().all(|p| p[1] == "21.5"));

    // A counter rate through the real scrape path: hits_total is constant.
    let (_, v) = query(&h, "rate(hits_total[5s])").await;
    assert_eq!(v["data"]["result"][0]["value"][1], "0");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_errors_use_prometheus_envelopes() {
    let h = support::start("scrape_configs: []\n", None).await;
    let (status, v) = query(&h, "sum(").await;
    assert_eq!(status, 400);
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "bad_data");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid parameter \"query\""),
        "{v}"
    );

    let get = |path: String| {
        let c = h.client.clone();
        async move {
            let r = c.get(path).send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    let (s, v) = get(format!(
        "{}/api/v1/query_range?query=up&start=10&end=20&step=0",
        h.base
    ))
    .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("zero or negative query resolution step"),
        "{v}"
    );
    let (s, v) = get(format!(
        "{}/api/v1/query_range?query=up&start=20&end=10&step=1",
        h.base
    ))
    .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("end timestamp must not be before start time")
    );
    let (s, v) = get(format!(
        "{}/api/v1/query_range?query=up&start=0&end=100000&step=1",
        h.base
    ))
    .await;
    assert_eq!(s, 400);
    assert!(v["error"].as_str().unwrap().contains("11,000 points"));
    let (s, _) = get(format!("{}/api/v1/query?query=up&time=never", h.base)).await;
    assert_eq!(s, 400);
    let (s, v) = get(format!("{}/api/v1/query?query=up&timeout=soon", h.base)).await;
    assert_eq!(s, 400);
    assert!(v["error"].as_str().unwrap().contains("\"timeout\""));
    h.shutdown().await;
}
