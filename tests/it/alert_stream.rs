//! Pull for consumers: `ETag` / `If-None-Match` on `/api/v1/alerts` and
//! `/api/v2/alerts`, and the SSE stream `/api/v1/alerts/stream`: a change
//! arrives within 100 ms of it, rule state changes are streamed, a client
//! resuming with `Last-Event-ID` gets exactly what it missed, a too-old id
//! gets `event: reset`, idle streams get keep-alives, and the number of
//! streams is bounded.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use watchpost::app::{self, RunningApp};

use crate::support::eventually;

/// One SSE frame.
#[derive(Debug, Clone, Default)]
struct Frame {
    id: Option<String>,
    event: Option<String>,
    data: String,
    /// Only comment or blank lines (a keep-alive).
    comment: bool,
}

impl Frame {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    async fn open(client: &reqwest::Client, base: &str, last: Option<&str>) -> Sse {
        let mut req = client.get(format!("{base}/api/v1/alerts/stream"));
        if let Some(id) = last {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Sse {
            resp,
            buf: String::new(),
        }
    }

    /// The next frame, or None when none comes within `limit`.
    async fn next(&mut self, limit: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..i + 2).collect();
                let mut f = Frame {
                    comment: true,
                    ..Frame::default()
                };
                for line in raw.lines() {
                    if line.starts_with(':') {
                        continue;
                    }
                    f.comment = false;
                    let (k, v) = line.split_once(':').unwrap_or((line, ""));
                    let v = v.strip_prefix(' ').unwrap_or(v);
                    match k {
                        "id" => f.id = Some(v.to_string()),
                        "event" => f.event = Some(v.to_string()),
                        "data" => f.data.push_str(v),
                        _ => {}
                    }
                }
                // A frame without fields dispatches nothing (SSE spec).
                f.comment = f.id.is_none() && f.event.is_none() && f.data.is_empty();
                return Some(f);
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .ok()?
                .unwrap()?;
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next frame that is not a keep-alive.
    async fn next_event(&mut self, limit: Duration) -> Option<Frame> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let f = self.next(left).await?;
            if !f.comment {
                return Some(f);
            }
        }
    }
}

async fn start(dir: &Path, yaml: &str, keep_alive: Duration, max_streams: usize) -> RunningApp {
    std::fs::write(dir.join("watchpost.yml"), yaml).unwrap();
    let mut opts = app::Options::new(dir.join("watchpost.yml"), dir.join("data"));
    opts.alert_stream.keep_alive = keep_alive;
    opts.alert_stream.max_streams = max_streams;
    opts.alert_stream.buffer = 8;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    app::start(opts, listener).await.unwrap()
}

const PLAIN: &str = "global: {scrape_interval: 1h}\nscrape_configs: []\n";

async fn push(client: &reqwest::Client, base: &str, name: &str) {
    let r = client
        .post(format!("{base}/api/v2/alerts"))
        .json(&serde_json::json!([{"labels": {"alertname": name, "severity": "page"}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// GETs `path` with `If-None-Match: inm`; returns status, ETag and body.
async fn get(
    client: &reqwest::Client,
    url: &str,
    inm: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let mut req = client.get(url);
    if let Some(v) = inm {
        req = req.header(IF_NONE_MATCH, v);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let tag = r
        .headers()
        .get(ETAG)
        .map(|v| v.to_str().unwrap().to_string());
    (status, tag, r.text().await.unwrap())
}

/// ETag and 304 on one endpoint, before and after `change` changes it.
async fn check_etags(client: &reqwest::Client, url: &str, change: impl AsyncFnOnce()) {
    let (s, tag, body) = get(client, url, None).await;
    assert_eq!(s, 200);
    let tag = tag.expect("an ETag");
    assert!(tag.starts_with('"') && tag.ends_with('"'), "strong: {tag}");
    let (s, tag2, body2) = get(client, url, None).await;
    assert_eq!(
        (s, tag2.as_deref(), body2.as_str()),
        (StatusCode::OK, Some(tag.as_str()), body.as_str()),
        "stable"
    );
    for inm in [
        tag.clone(),
        format!("W/{tag}"),
        format!("\"nope\", {tag}"),
        "*".to_string(),
    ] {
        let (s, t, b) = get(client, url, Some(&inm)).await;
        assert_eq!(s, StatusCode::NOT_MODIFIED, "{url} with {inm}");
        assert_eq!(t.as_deref(), Some(tag.as_str()));
        assert!(b.is_empty());
    }
    let (s, _, _) = get(client, url, Some("\"nope\"")).await;
    assert_eq!(s, 200);

    change().await;
    let (s, new_tag, new_body) = get(client, url, Some(&tag)).await;
    assert_eq!(s, 200, "{url}: changed, so the full answer");
    assert_ne!(new_body, body);
    let new_tag = new_tag.unwrap();
    assert_ne!(new_tag, tag);
    let (s, _, _) = get(client, url, Some(&new_tag)).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_and_304_on_v1_and_v2_alerts() {
    let dir = tempfile::tempdir().unwrap();
    // A heartbeat missed 3 s after start, then pinged: a change of
    // /api/v1/alerts that the test controls.
    let yaml = format!("{PLAIN}heartbeats: [{{name: job, period: 3s, grace: 0s}}]\n");
    let app = start(dir.path(), &yaml, Duration::from_secs(15), 4).await;
    let base = format!("http://{}", app.local_addr());
    let client = reqwest::Client::new();

    let v2 = format!("{base}/api/v2/alerts");
    check_etags(&client, &v2, async || {
        push(&client, &base, "DiskFull").await
    })
    .await;

    let v1 = format!("{base}/api/v1/alerts");
    eventually(Duration::from_secs(10), "HeartbeatMissed", || async {
        let (_, _, b) = get(&client, &v1, None).await;
        b.contains("HeartbeatMissed").then_some(())
    })
    .await;
    check_etags(&client, &v1, async || {
        let r = client
            .post(format!("{base}/api/v1/heartbeat/job"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    })
    .await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_delivers_a_change_within_100ms_and_rule_states() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: Always\n        expr: vector(1)\n        for: 2s\n",
    )
    .unwrap();
    let yaml = format!("{PLAIN}rule_files: [rules.yml]\n");
    let app = start(dir.path(), &yaml, Duration::from_millis(200), 4).await;
    let base = format!("http://{}", app.local_addr());
    let client = reqwest::Client::new();
    let mut sse = Sse::open(&client, &base, None).await;

    // The rule goes pending (maybe before the stream opened), then firing.
    let firing = loop {
        let f = sse
            .next_event(Duration::from_secs(10))
            .await
            .expect("rule events");
        let v = f.json();
        if v["labels"]["alertname"] == "Always" && v["state"] == "firing" {
            break f;
        }
    };
    assert_eq!(firing.event.as_deref(), Some("alert"));
    let v = firing.json();
    assert_eq!(v["source"], "rule");
    assert_eq!(v["value"], "1e+00");
    assert_eq!(v["fingerprint"].as_str().unwrap().len(), 16);
    assert!(v["activeAt"].as_str().unwrap().ends_with('Z'));
    assert!(v["annotations"].is_object());

    // A pushed alert: from the moment the test pushes it to the event.
    let t0 = Instant::now();
    push(&client, &base, "DiskFull").await;
    let f = sse
        .next_event(Duration::from_secs(5))
        .await
        .expect("push event");
    let took = t0.elapsed();
    let v = f.json();
    assert_eq!(v["labels"]["alertname"], "DiskFull");
    assert_eq!(v["state"], "firing");
    assert_eq!(v["source"], "push");
    assert!(
        took < Duration::from_millis(100),
        "event {took:?} after the change"
    );
    let id: u64 = f.id.unwrap().parse().unwrap();
    assert!(id > firing.id.unwrap().parse::<u64>().unwrap());

    // Re-sending the same alert is no change: only keep-alives follow.
    push(&client, &base, "DiskFull").await;
    let f = sse.next(Duration::from_secs(2)).await.expect("keep-alive");
    assert!(f.comment, "{f:?}");

    // A silence over the API: silenced, and unsilenced when it expires.
    let r = client
        .post(format!("{base}/api/v2/silences"))
        .json(&serde_json::json!({
            "matchers": [{"name": "alertname", "value": "DiskFull", "isRegex": false, "isEqual": true}],
            "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
            "createdBy": "test", "comment": "maintenance"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let silence: serde_json::Value = r.json().await.unwrap();
    let id = silence["silenceID"].as_str().unwrap().to_string();
    let f = sse
        .next_event(Duration::from_secs(5))
        .await
        .expect("silenced");
    let v = f.json();
    assert_eq!(
        (v["state"].as_str(), v["labels"]["alertname"].as_str()),
        (Some("silenced"), Some("DiskFull"))
    );
    assert_eq!(v["source"], "push");
    assert_eq!(v["silencedBy"], serde_json::json!([id]));
    let r = client
        .delete(format!("{base}/api/v2/silence/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let f = sse
        .next_event(Duration::from_secs(5))
        .await
        .expect("unsilenced");
    assert_eq!(f.json()["state"], "unsilenced");

    // Four streams at most (this one and three more); a fifth is refused.
    let mut more = Vec::new();
    for _ in 0..3 {
        more.push(Sse::open(&client, &base, None).await);
    }
    let r = client
        .get(format!("{base}/api/v1/alerts/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let msg = r.text().await.unwrap();
    assert!(
        msg.contains("too many alert streams are open (at most 4)"),
        "{msg}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_from_last_event_id_gets_exactly_the_missed_events() {
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), PLAIN, Duration::from_secs(15), 64).await;
    let base = format!("http://{}", app.local_addr());
    let client = reqwest::Client::new();

    let mut sse = Sse::open(&client, &base, None).await;
    push(&client, &base, "A").await;
    push(&client, &base, "B").await;
    let a = sse.next_event(Duration::from_secs(5)).await.unwrap();
    let b = sse.next_event(Duration::from_secs(5)).await.unwrap();
    assert_eq!(a.json()["labels"]["alertname"], "A");
    assert_eq!(b.json()["labels"]["alertname"], "B");
    drop(sse);

    push(&client, &base, "C").await;
    push(&client, &base, "D").await;
    let last_b = b.id.clone().unwrap();
    let mut sse = Sse::open(&client, &base, Some(&last_b)).await;
    let mut names = Vec::new();
    while let Some(f) = sse.next_event(Duration::from_millis(500)).await {
        assert_eq!(f.event.as_deref(), Some("alert"));
        names.push(
            f.json()["labels"]["alertname"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(names, ["C", "D"]);

    // The buffer holds 8 events: after 10 more, B's id is too old.
    for i in 0..10 {
        push(&client, &base, &format!("E{i}")).await;
    }
    drop(sse);
    let mut sse = Sse::open(&client, &base, Some(&last_b)).await;
    let f = sse.next_event(Duration::from_secs(5)).await.unwrap();
    assert_eq!(f.event.as_deref(), Some("reset"), "{f:?}");
    assert!(
        f.json()["reason"]
            .as_str()
            .unwrap()
            .contains("/api/v1/alerts")
    );
    assert!(
        sse.next_event(Duration::from_millis(300)).await.is_none(),
        "after a reset the stream continues from now"
    );
    push(&client, &base, "F").await;
    let f = sse.next_event(Duration::from_secs(5)).await.unwrap();
    assert_eq!(f.json()["labels"]["alertname"], "F");

    let r = client
        .get(format!("{base}/api/v1/alerts/stream"))
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let msg = r.text().await.unwrap();
    assert!(msg.contains("is not an event id"), "{msg}");
    app.shutdown().await;
}
