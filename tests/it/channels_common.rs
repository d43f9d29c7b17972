//! Shared pieces of the channel tests: sample notifications, receivers
//! built from Alertmanager YAML through the real config loader, and a
//! recording HTTP stand-in on 127.0.0.1:0.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use watchpost::channels::{self, ChannelContext, Templates};
use watchpost::config::notify;
use watchpost::model::{Alert, Labels};
use watchpost::notify::{NotificationData, Notifier};

/// 2023-11-14T22:13:20Z.
pub const T0: i64 = 1_700_000_000_000;

pub fn alert(labels: &[(&str, &str)], summary: &str, ends_at: Option<i64>) -> Alert {
    Alert {
        labels: Labels::from_pairs(labels.iter().copied()),
        annotations: BTreeMap::from([("summary".to_string(), summary.to_string())]),
        starts_at: T0,
        ends_at,
        updated_at: T0,
        generator_url: "http://watchpost.test:9464/graph?g0.expr=up+%3D%3D+0".into(),
    }
}

/// A group of two alerts, one firing and (unless `all_resolved`) one
/// resolved, both resolved otherwise.
pub fn notification(receiver: &str, all_resolved: bool) -> NotificationData {
    let first_end = if all_resolved { Some(T0 + 1000) } else { None };
    NotificationData::new(
        receiver,
        "{}:{alertname=\"HostDown\"}",
        Labels::from_pairs([("alertname", "HostDown")]),
        vec![
            alert(
                &[
                    ("alertname", "HostDown"),
                    ("job", "node"),
                    ("instance", "a:9100"),
                ],
                "a:9100 is down",
                first_end,
            ),
            alert(
                &[
                    ("alertname", "HostDown"),
                    ("job", "node"),
                    ("instance", "b:9100"),
                ],
                "b:9100 is down",
                Some(T0 + 2000),
            ),
        ],
        "http://watchpost.test:9464",
        T0 + 5000,
    )
}

/// The context tests build channels with: default templates, a short
/// timeout.
pub fn context() -> ChannelContext {
    let mut ctx = ChannelContext::new(Templates::defaults().unwrap());
    ctx.send_timeout = Duration::from_secs(5);
    ctx
}

/// Builds the integrations of receiver `name` from an Alertmanager config.
pub fn build_with(yaml: &str, name: &str, ctx: &ChannelContext) -> Vec<Arc<dyn Notifier>> {
    let cfg = notify::load_str(yaml, "test.yml", Path::new("/"))
        .unwrap_or_else(|e| panic!("config should load:\n{e}\n{yaml}"));
    let r = cfg.receiver(name).unwrap();
    channels::build(r, ctx).unwrap_or_else(|e| panic!("channels should build: {e}"))
}

/// The single integration of the receiver named `r` in `yaml`.
pub fn one(yaml: &str) -> Arc<dyn Notifier> {
    let mut v = build_with(yaml, "r", &context());
    assert_eq!(v.len(), 1);
    v.remove(0)
}

/// One request as the stand-in saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    pub fn form(&self) -> BTreeMap<String, String> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

/// How the stand-in answers: status, body, extra headers.
pub type Answer = (u16, String, Vec<(&'static str, String)>);

#[derive(Clone)]
struct StandIn {
    seen: Arc<Mutex<Vec<Seen>>>,
    answers: Arc<Mutex<Vec<Answer>>>,
}

/// A recording HTTP server: answers each request with the next queued
/// answer (the last one repeats; 200 "ok" when none is queued).
pub struct Recorder {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    answers: Arc<Mutex<Vec<Answer>>>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let state = StandIn {
            seen: Arc::default(),
            answers: Arc::default(),
        };
        let app = Router::new().fallback(record).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Recorder {
            addr,
            seen: state.seen,
            answers: state.answers,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Queues answers, in order.
    pub fn answer(&self, status: u16, body: &str) {
        self.answers
            .lock()
            .unwrap()
            .push((status, body.to_string(), Vec::new()));
    }

    pub fn answer_with(&self, a: Answer) {
        self.answers.lock().unwrap().push(a);
    }

    /// Forgets queued answers: from now on every request gets this one.
    pub fn answer_only(&self, status: u16, body: &str) {
        let mut a = self.answers.lock().unwrap();
        a.clear();
        a.push((status, body.to_string(), Vec::new()));
    }

    pub fn clear_seen(&self) {
        self.seen.lock().unwrap().clear();
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn only(&self) -> Seen {
        let s = self.seen();
        assert_eq!(s.len(), 1, "{s:?}");
        s[0].clone()
    }
}

async fn record(
    State(s): State<StandIn>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    s.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers,
        body: body.to_vec(),
    });
    let (status, body, extra) = {
        let mut a = s.answers.lock().unwrap();
        match a.len() {
            0 => (200, "ok".to_string(), Vec::new()),
            1 => a[0].clone(),
            _ => a.remove(0),
        }
    };
    let mut h = HeaderMap::new();
    for (k, v) in extra {
        h.insert(k, v.parse().unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), h, body)
}

/// Asserts `secret` appears in neither the error's Display nor its Debug.
pub fn assert_no_secret(e: &watchpost::notify::SendError, secret: &str) {
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(secret), "secret {secret:?} leaked: {shown}");
}

/// Item 9 for one integration: failures never show `secret`, even when
/// the peer echoes it in its answer (a 400, then a 503), and each is
/// classified (permanent, then retryable).
pub async fn assert_failures_hide(
    n: &dyn Notifier,
    rec: &Recorder,
    msg: &NotificationData,
    secret: &str,
) {
    rec.answer_only(
        400,
        &format!(r#"{{"error":"invalid request","echo":"{secret}"}}"#),
    );
    let e = n.send(msg).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("400"), "{e}");
    assert!(e.to_string().contains("invalid request"), "{e}");
    assert_no_secret(&e, secret);

    rec.answer_only(503, &format!("upstream down; your key was {secret}"));
    let e = n.send(msg).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("503"), "{e}");
    assert_no_secret(&e, secret);
    rec.answer_only(200, "ok");
}

/// A port on 127.0.0.1 nothing listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
