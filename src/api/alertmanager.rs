//! Alertmanager's API v2 over the notification pipeline, with its JSON
//! shapes, filters and error answers, so `amtool
//! --alertmanager.url=http://127.0.0.1:9464` and other API v2 clients
//! work: `/api/v2/status`, `/api/v2/receivers`, `/api/v2/alerts` (GET and
//! POST: external senders feed the same pipeline as the rules),
//! `/api/v2/alerts/groups`, `/api/v2/silences` (GET and POST) and
//! `/api/v2/silence/{id}` (GET and DELETE).
//!
//! A thin edge: parsing, validation of what clients send (with
//! Alertmanager's messages) and formatting; every decision (routing,
//! status, silence rules) is the [`NotifyManager`]'s. Errors are answered
//! as Alertmanager does: a JSON string with 400 (or 404) for invalid
//! content, `{"code": ..., "message": ...}` for malformed requests.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat};
use serde::Serialize;
use serde_json::Value;

use crate::config::notify::parse_matchers;
use crate::model::{Alert, Labels, Matcher, Timestamp, compile_anchored, is_valid_label_name};
use crate::notify::silence::{Silence, SilenceMatcher};
use crate::notify::silences::{PostedSilence, SilencesError, is_uuid, matches_filter};
use crate::notify::store::normalize;
use crate::notify::{AlertView, NotifyError, NotifyManager};

#[derive(Clone)]
struct AmState {
    notify: Arc<NotifyManager>,
    /// Pushed alerts are reported to the alert stream.
    events: Option<Arc<super::stream::AlertEvents>>,
}

impl AmState {
    /// The alert stream reports what a silence change did now rather than
    /// at its next look at the pipeline.
    fn silences_changed(&self) {
        if let Some(ev) = &self.events {
            ev.poke();
        }
    }
}

/// The API v2 routes, to be merged into the authenticated router (generic
/// over the outer state so tests can serve them alone).
pub(super) fn routes<S: Clone + Send + Sync + 'static>(
    notify: Arc<NotifyManager>,
    events: Option<Arc<super::stream::AlertEvents>>,
) -> Router<S> {
    Router::new()
        .route("/api/v2/status", get(status))
        .route("/api/v2/receivers", get(receivers))
        .route("/api/v2/alerts", get(get_alerts).post(post_alerts))
        .route("/api/v2/alerts/groups", get(get_groups))
        .route("/api/v2/silences", get(get_silences).post(post_silence))
        .route(
            "/api/v2/silence/{id}",
            get(get_silence).delete(delete_silence),
        )
        .with_state(AmState { notify, events })
}

/// An early answer from a parsing step (boxed: a `Response` is large).
type Reject = Box<Response>;

/// A JSON body.
fn json<T: Serialize>(status: StatusCode, v: &T) -> Response {
    // Serializing these plain structs cannot fail.
    let body = serde_json::to_vec(v).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Alertmanager's answer for invalid content: the message as a JSON string.
fn message(status: StatusCode, m: impl Into<String>) -> Response {
    json(status, &m.into())
}

/// go-swagger's answer for malformed requests: `{"code":..,"message":..}`.
fn swagger(status: StatusCode, code: u16, m: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct E {
        code: u16,
        message: String,
    }
    json(
        status,
        &E {
            code,
            message: m.into(),
        },
    )
}

/// RFC 3339 with milliseconds in UTC, as Alertmanager writes times.
fn time(ms: Timestamp) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| "0001-01-01T00:00:00.000Z".to_string())
}

/// Go's zero time, which clients send for "not set".
const GO_ZERO_MS: i64 = -62_135_596_800_000;

/// Parses an RFC 3339 time; `Ok(None)` for Go's zero time.
fn parse_time(s: &str) -> Result<Option<Timestamp>, String> {
    let t = DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))?;
    let ms = t.timestamp_millis();
    Ok((ms > GO_ZERO_MS).then_some(ms))
}

/// go-swagger's boolean parsing: these words are true, anything else false.
fn swagger_bool(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "ok" | "y" | "on" | "selected" | "checked" | "t" | "enabled"
    )
}

fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn filter_matchers(pairs: &[(String, String)]) -> Result<Vec<Matcher>, Reject> {
    let mut out = Vec::new();
    for (_, v) in pairs.iter().filter(|(k, _)| k == "filter") {
        match parse_matchers(v) {
            Ok(ms) if !ms.is_empty() => out.extend(ms),
            _ => {
                return Err(Box::new(message(
                    StatusCode::BAD_REQUEST,
                    format!("bad matcher format: {v}"),
                )));
            }
        }
    }
    Ok(out)
}

// ---- status and receivers ----

#[derive(Serialize)]
struct StatusBody {
    cluster: Cluster,
    config: ConfigBody,
    uptime: String,
    #[serde(rename = "versionInfo")]
    version_info: VersionInfo,
}

#[derive(Serialize)]
struct Cluster {
    peers: Vec<Value>,
    status: &'static str,
}

#[derive(Serialize)]
struct ConfigBody {
    original: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionInfo {
    branch: &'static str,
    build_date: &'static str,
    build_user: &'static str,
    go_version: &'static str,
    revision: &'static str,
    version: &'static str,
}

async fn status(State(st): State<AmState>) -> Response {
    json(
        StatusCode::OK,
        &StatusBody {
            cluster: Cluster {
                peers: Vec::new(),
                status: "disabled",
            },
            config: ConfigBody {
                original: st.notify.config().redacted_yaml.clone(),
            },
            uptime: time(st.notify.started_at()),
            version_info: VersionInfo {
                branch: "",
                build_date: "",
                build_user: "",
                go_version: "",
                revision: crate::REVISION,
                version: crate::VERSION,
            },
        },
    )
}

#[derive(Serialize)]
struct ReceiverBody {
    name: String,
}

async fn receivers(State(st): State<AmState>) -> Response {
    let v: Vec<ReceiverBody> = st
        .notify
        .receivers()
        .into_iter()
        .map(|name| ReceiverBody { name })
        .collect();
    json(StatusCode::OK, &v)
}

// ---- alerts ----

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertStatusBody {
    inhibited_by: Vec<String>,
    silenced_by: Vec<String>,
    state: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GettableAlert {
    annotations: BTreeMap<String, String>,
    ends_at: String,
    fingerprint: String,
    receivers: Vec<ReceiverBody>,
    starts_at: String,
    status: AlertStatusBody,
    updated_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "String::is_empty")]
    generator_url: String,
    labels: BTreeMap<String, String>,
}

fn labels_map(l: &Labels) -> BTreeMap<String, String> {
    l.iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

fn gettable(v: &AlertView) -> GettableAlert {
    GettableAlert {
        annotations: v.alert.annotations.clone(),
        ends_at: v
            .alert
            .ends_at
            .map(time)
            .unwrap_or_else(|| time(GO_ZERO_MS)),
        fingerprint: v.fingerprint.clone(),
        receivers: v
            .receivers
            .iter()
            .map(|r| ReceiverBody { name: r.clone() })
            .collect(),
        starts_at: time(v.alert.starts_at),
        status: AlertStatusBody {
            inhibited_by: v.inhibited_by.clone(),
            silenced_by: v.silenced_by.clone(),
            state: v.state(),
        },
        updated_at: time(v.alert.updated_at),
        generator_url: v.alert.generator_url.clone(),
        labels: labels_map(&v.alert.labels),
    }
}

/// The `active`, `silenced`, `inhibited`, `receiver` and `filter`
/// parameters of the alert listings.
struct AlertFilter {
    matchers: Vec<Matcher>,
    receiver: Option<regex::Regex>,
    active: bool,
    silenced: bool,
    inhibited: bool,
}

impl AlertFilter {
    fn parse(q: &Option<String>) -> Result<Self, Reject> {
        let pairs = query_pairs(q);
        let flag = |name: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .is_none_or(|(_, v)| swagger_bool(v))
        };
        let receiver = match pairs.iter().rev().find(|(k, _)| k == "receiver") {
            Some((_, r)) if !r.is_empty() => Some(compile_anchored(r).map_err(|e| {
                message(
                    StatusCode::BAD_REQUEST,
                    format!("failed to parse receiver param: {e}"),
                )
            })?),
            _ => None,
        };
        Ok(AlertFilter {
            matchers: filter_matchers(&pairs)?,
            receiver,
            active: flag("active"),
            silenced: flag("silenced"),
            inhibited: flag("inhibited"),
        })
    }

    /// Alertmanager's alert filter (resolved alerts are already left out).
    fn keeps(&self, v: &AlertView) -> bool {
        if !self.active && v.state() == "active" {
            return false;
        }
        if !self.silenced && !v.silenced_by.is_empty() {
            return false;
        }
        if !self.inhibited && !v.inhibited_by.is_empty() {
            return false;
        }
        self.matchers
            .iter()
            .all(|m| m.matches(v.alert.labels.get_or_empty(&m.name)))
    }

    fn receiver_ok(&self, name: &str) -> bool {
        self.receiver.as_ref().is_none_or(|r| r.is_match(name))
    }
}

async fn get_alerts(
    State(st): State<AmState>,
    RawQuery(q): RawQuery,
    headers: axum::http::HeaderMap,
) -> Response {
    let f = match AlertFilter::parse(&q) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let out: Vec<GettableAlert> = st
        .notify
        .alerts()
        .iter()
        .filter(|v| f.keeps(v) && v.receivers.iter().any(|r| f.receiver_ok(r)))
        .map(gettable)
        .collect();
    super::etag::conditional(&headers, json(StatusCode::OK, &out)).await
}

#[derive(Serialize)]
struct GroupBody {
    alerts: Vec<GettableAlert>,
    labels: BTreeMap<String, String>,
    receiver: ReceiverBody,
}

async fn get_groups(State(st): State<AmState>, RawQuery(q): RawQuery) -> Response {
    let f = match AlertFilter::parse(&q) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let out: Vec<GroupBody> = st
        .notify
        .groups()
        .into_iter()
        .filter(|g| f.receiver_ok(&g.receiver))
        .filter_map(|g| {
            let alerts: Vec<GettableAlert> = g
                .alerts
                .iter()
                .filter(|v| f.keeps(v))
                .map(gettable)
                .collect();
            (!alerts.is_empty()).then(|| GroupBody {
                alerts,
                labels: labels_map(&g.labels),
                receiver: ReceiverBody { name: g.receiver },
            })
        })
        .collect();
    json(StatusCode::OK, &out)
}

/// Reads a string map field (labels, annotations) of a posted alert.
fn string_map(v: &Value) -> Option<Vec<(String, String)>> {
    v.as_object().map(|o| {
        o.iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    })
}

fn optional_time(
    o: &serde_json::Map<String, Value>,
    key: &str,
    i: usize,
) -> Result<Option<Timestamp>, Reject> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_time(s).map_err(|e| {
            Box::new(swagger(
                StatusCode::UNPROCESSABLE_ENTITY,
                601,
                format!("{i}.{key} in body must be of type date-time: {e}"),
            ))
        }),
        Some(_) => Err(Box::new(swagger(
            StatusCode::UNPROCESSABLE_ENTITY,
            601,
            format!("{i}.{key} in body must be of type date-time"),
        ))),
    }
}

/// Alertmanager's validation of one posted alert (after its times were
/// filled in).
fn validate_alert(
    a: &Alert,
    raw_labels: &[(String, String)],
    ann: &[(String, String)],
) -> Result<(), String> {
    if a.ends_at.is_some_and(|e| e < a.starts_at) {
        return Err("start time must be before end time".into());
    }
    if let Some((n, _)) = raw_labels.iter().find(|(n, _)| !is_valid_label_name(n)) {
        return Err(format!("invalid label set: invalid name {n:?}"));
    }
    if a.labels.is_empty() {
        return Err("at least one label pair required".into());
    }
    if let Some((n, _)) = ann.iter().find(|(n, _)| !is_valid_label_name(n)) {
        return Err(format!("invalid annotations: invalid name {n:?}"));
    }
    Ok(())
}

async fn post_alerts(State(st): State<AmState>, body: Bytes) -> Response {
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return swagger(
                StatusCode::BAD_REQUEST,
                400,
                format!("parsing alerts body failed: {e}"),
            );
        }
    };
    let Some(items) = parsed.as_array() else {
        return swagger(
            StatusCode::BAD_REQUEST,
            400,
            "parsing alerts body failed: expected a JSON array of alerts",
        );
    };
    let now = st.notify.now();
    let resolve_timeout = st.notify.config().global.resolve_timeout;
    let mut valid = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(o) = item.as_object() else {
            return swagger(
                StatusCode::UNPROCESSABLE_ENTITY,
                602,
                format!("{i} in body must be of type object"),
            );
        };
        let Some(raw_labels) = o.get("labels").and_then(string_map) else {
            return swagger(
                StatusCode::UNPROCESSABLE_ENTITY,
                602,
                format!("{i}.labels in body is required"),
            );
        };
        let ann = o
            .get("annotations")
            .and_then(string_map)
            .unwrap_or_default();
        let starts_at = match optional_time(o, "startsAt", i) {
            Ok(t) => t,
            Err(r) => return *r,
        };
        let ends_at = match optional_time(o, "endsAt", i) {
            Ok(t) => t,
            Err(r) => return *r,
        };
        let alert = Alert {
            labels: Labels::from_pairs(raw_labels.iter().cloned()),
            annotations: ann.iter().filter(|(_, v)| !v.is_empty()).cloned().collect(),
            starts_at: starts_at.unwrap_or(0),
            ends_at,
            updated_at: now,
            generator_url: o
                .get("generatorURL")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        };
        let filled = normalize(alert.clone(), now, resolve_timeout).alert;
        match validate_alert(&filled, &raw_labels, &ann) {
            Ok(()) => valid.push(alert),
            Err(e) => errors.push(e),
        }
    }
    if let Some(ev) = &st.events {
        for a in &valid {
            let filled = normalize(a.clone(), now, resolve_timeout).alert;
            ev.observe(super::stream::AlertChange::from_alert(
                &filled,
                now,
                super::stream::Source::Push,
                None,
            ));
        }
    }
    st.notify.ingest(valid);
    if errors.is_empty() {
        StatusCode::OK.into_response()
    } else {
        message(StatusCode::BAD_REQUEST, errors.join("; "))
    }
}

// ---- silences ----

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MatcherBody {
    is_equal: bool,
    is_regex: bool,
    name: String,
    value: String,
}

#[derive(Serialize)]
struct SilenceStatusBody {
    state: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GettableSilence {
    id: String,
    status: SilenceStatusBody,
    updated_at: String,
    comment: String,
    created_by: String,
    ends_at: String,
    matchers: Vec<MatcherBody>,
    starts_at: String,
}

fn gettable_silence(s: &Silence, now: Timestamp) -> GettableSilence {
    GettableSilence {
        id: s.id.clone(),
        status: SilenceStatusBody {
            state: s.state(now).as_str(),
        },
        updated_at: time(s.updated_at),
        comment: s.comment.clone(),
        created_by: s.created_by.clone(),
        ends_at: time(s.ends_at),
        matchers: s
            .matchers
            .iter()
            .map(|m| MatcherBody {
                is_equal: m.is_equal,
                is_regex: m.is_regex,
                name: m.name.clone(),
                value: m.value.clone(),
            })
            .collect(),
        starts_at: time(s.starts_at),
    }
}

async fn get_silences(State(st): State<AmState>, RawQuery(q): RawQuery) -> Response {
    let filter = match filter_matchers(&query_pairs(&q)) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let now = st.notify.now();
    let out: Vec<GettableSilence> = st
        .notify
        .silences()
        .iter()
        .filter(|s| matches_filter(s, &filter))
        .map(|s| gettable_silence(s, now))
        .collect();
    json(StatusCode::OK, &out)
}

fn bad_id(id: &str) -> Response {
    swagger(
        StatusCode::UNPROCESSABLE_ENTITY,
        601,
        format!("silenceID in path must be of type uuid: {id:?}"),
    )
}

async fn get_silence(State(st): State<AmState>, Path(id): Path<String>) -> Response {
    if !is_uuid(&id) {
        return bad_id(&id);
    }
    match st.notify.silence(&id) {
        Some(s) => json(StatusCode::OK, &gettable_silence(&s, st.notify.now())),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn delete_silence(State(st): State<AmState>, Path(id): Path<String>) -> Response {
    if !is_uuid(&id) {
        return bad_id(&id);
    }
    match st.notify.expire_silence(&id).await {
        Ok(()) => {
            st.silences_changed();
            StatusCode::OK.into_response()
        }
        Err(e) => notify_error(e),
    }
}

fn notify_error(e: NotifyError) -> Response {
    match e {
        NotifyError::Silence(SilencesError::NotFound(_)) => {
            message(StatusCode::NOT_FOUND, "silence not found")
        }
        NotifyError::Silence(e) => message(StatusCode::BAD_REQUEST, e.to_string()),
        NotifyError::ShuttingDown => message(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        e => message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// go-swagger's required-field check on a posted silence, in its order.
fn posted_silence(v: &Value) -> Result<PostedSilence, Reject> {
    let required = |field: &str| {
        swagger(
            StatusCode::UNPROCESSABLE_ENTITY,
            602,
            format!("{field} in body is required"),
        )
    };
    let Some(o) = v.as_object() else {
        return Err(Box::new(swagger(
            StatusCode::BAD_REQUEST,
            400,
            "parsing silence body failed: expected a JSON object",
        )));
    };
    let string = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    let comment = string("comment").ok_or_else(|| required("comment"))?;
    let created_by = string("createdBy").ok_or_else(|| required("createdBy"))?;
    let time_field = |k: &str| -> Result<Timestamp, Reject> {
        let s = string(k).ok_or_else(|| required(k))?;
        parse_time(&s)
            .map_err(|e| {
                Box::new(swagger(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    601,
                    format!("{k} in body must be of type date-time: {e}"),
                ))
            })
            .map(|t| t.unwrap_or(0))
    };
    let ends_at = time_field("endsAt")?;
    let Some(raw) = o.get("matchers").and_then(Value::as_array) else {
        return Err(required("matchers").into());
    };
    if raw.is_empty() {
        return Err(Box::new(swagger(
            StatusCode::UNPROCESSABLE_ENTITY,
            612,
            "matchers in body should have at least 1 items",
        )));
    }
    let mut matchers = Vec::with_capacity(raw.len());
    for (i, m) in raw.iter().enumerate() {
        let get = |k: &str| m.get(k);
        let is_regex = get("isRegex")
            .and_then(Value::as_bool)
            .ok_or_else(|| required(&format!("matchers.{i}.isRegex")))?;
        let name = get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| required(&format!("matchers.{i}.name")))?;
        let value = get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| required(&format!("matchers.{i}.value")))?;
        let is_equal = get("isEqual").and_then(Value::as_bool).unwrap_or(true);
        matchers.push(SilenceMatcher {
            name: name.to_string(),
            value: value.to_string(),
            is_regex,
            is_equal,
        });
    }
    let starts_at = time_field("startsAt")?;
    Ok(PostedSilence {
        id: string("id").filter(|s| !s.is_empty()),
        matchers,
        starts_at,
        ends_at,
        created_by,
        comment,
    })
}

async fn post_silence(State(st): State<AmState>, body: Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return swagger(
                StatusCode::BAD_REQUEST,
                400,
                format!("parsing silence body failed: {e}"),
            );
        }
    };
    let posted = match posted_silence(&v) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    #[derive(Serialize)]
    struct Created {
        #[serde(rename = "silenceID")]
        silence_id: String,
    }
    match st.notify.set_silence(posted).await {
        Ok(id) => {
            st.silences_changed();
            json(StatusCode::OK, &Created { silence_id: id })
        }
        Err(e) => notify_error(e),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use crate::config::notify::load_str;
    use crate::notify::{NotifierFactory, NotifyOptions};
    use crate::telemetry::NotifyMetrics;

    const CONFIG: &str = "
route:
  receiver: default
  group_by: [alertname]
  routes:
    - receiver: team-db
      matchers: ['team=\"db\"']
receivers:
  - name: default
  - name: team-db
";

    async fn tokio_test_body(r: Response) -> Value {
        let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        if b.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{e}: {b:?}"))
    }

    async fn api() -> (Router, Arc<NotifyManager>) {
        let config = load_str(CONFIG, "test.yml", std::path::Path::new(".")).unwrap();
        let factory: NotifierFactory = Arc::new(|_| Ok(Vec::new()));
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        let mgr = NotifyManager::start(
            &config,
            factory,
            NotifyOptions::new(None),
            NotifyMetrics::new(),
            rx,
        )
        .await
        .unwrap();
        (routes::<()>(mgr.clone(), None), mgr)
    }

    async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (u16, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let r = app.clone().oneshot(req).await.unwrap();
        let status = r.status().as_u16();
        (status, tokio_test_body(r).await)
    }

    fn names(v: &Value, pointer: &str) -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.pointer(pointer).unwrap().as_str().unwrap().to_string())
            .collect()
    }

    #[tokio::test]
    async fn status_and_receivers() {
        let (app, mgr) = api().await;
        let (code, v) = call(&app, "GET", "/api/v2/status", None).await;
        assert_eq!(code, 200);
        assert_eq!(v["cluster"]["status"], "disabled");
        assert_eq!(v["cluster"]["peers"], serde_json::json!([]));
        assert!(
            v["config"]["original"]
                .as_str()
                .unwrap()
                .contains("team-db")
        );
        assert_eq!(v["versionInfo"]["version"], crate::VERSION);
        assert_eq!(v["uptime"], time(mgr.started_at()));
        let (code, v) = call(&app, "GET", "/api/v2/receivers", None).await;
        assert_eq!(code, 200);
        assert_eq!(names(&v, "/name"), ["default", "team-db"]);
        mgr.shutdown(std::time::Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn alerts_are_pushed_listed_filtered_and_grouped() {
        let (app, mgr) = api().await;
        let body = serde_json::json!([
            {"labels": {"alertname": "Down", "team": "db", "instance": "a"},
             "annotations": {"summary": "db down"},
             "generatorURL": "http://prom/graph"},
            {"labels": {"alertname": "Slow", "instance": "b"}},
            {"labels": {"alertname": "Bad"},
             "startsAt": "2030-01-02T00:00:00Z", "endsAt": "2030-01-01T00:00:00Z"}
        ]);
        let (code, v) = call(&app, "POST", "/api/v2/alerts", Some(body)).await;
        // The bad one is refused, the others are taken, as Alertmanager does.
        assert_eq!(code, 400);
        assert_eq!(v, "start time must be before end time");
        let (code, v) = call(&app, "GET", "/api/v2/alerts", None).await;
        assert_eq!(code, 200);
        assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
        let down = v
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["alertname"] == "Down")
            .unwrap();
        assert_eq!(down["receivers"], serde_json::json!([{"name": "team-db"}]));
        assert_eq!(down["status"]["state"], "active");
        assert_eq!(down["annotations"]["summary"], "db down");
        assert_eq!(down["generatorURL"], "http://prom/graph");
        assert_eq!(down["fingerprint"].as_str().unwrap().len(), 16);
        assert!(down["endsAt"].as_str().unwrap().ends_with('Z'));

        let (_, v) = call(
            &app,
            "GET",
            "/api/v2/alerts?filter=alertname%3D%22Down%22",
            None,
        )
        .await;
        assert_eq!(names(&v, "/labels/alertname"), ["Down"]);
        let (_, v) = call(
            &app,
            "GET",
            "/api/v2/alerts?filter=instance%3D~%22a%7Cb%22&filter=alertname!%3DDown",
            None,
        )
        .await;
        assert_eq!(names(&v, "/labels/alertname"), ["Slow"]);
        let (_, v) = call(&app, "GET", "/api/v2/alerts?receiver=team-.*", None).await;
        assert_eq!(names(&v, "/labels/alertname"), ["Down"]);
        let (_, v) = call(&app, "GET", "/api/v2/alerts?receiver=team", None).await;
        assert_eq!(v, serde_json::json!([]), "receiver is an anchored regex");
        let (_, v) = call(&app, "GET", "/api/v2/alerts?active=false", None).await;
        assert_eq!(v, serde_json::json!([]));
        let (code, v) = call(&app, "GET", "/api/v2/alerts?filter=%7B", None).await;
        assert_eq!(code, 400);
        assert!(v.as_str().unwrap().starts_with("bad matcher format"), "{v}");

        let (code, v) = call(&app, "GET", "/api/v2/alerts/groups", None).await;
        assert_eq!(code, 200);
        let groups = v.as_array().unwrap();
        assert_eq!(groups.len(), 2, "{v}");
        assert_eq!(
            groups[0]["labels"],
            serde_json::json!({"alertname": "Down"})
        );
        assert_eq!(groups[0]["receiver"]["name"], "team-db");
        assert_eq!(
            groups[1]["labels"],
            serde_json::json!({"alertname": "Slow"})
        );
        assert_eq!(groups[1]["receiver"]["name"], "default");
        let (_, v) = call(&app, "GET", "/api/v2/alerts/groups?receiver=default", None).await;
        assert_eq!(names(&v, "/receiver/name"), ["default"]);

        let (code, v) = call(&app, "POST", "/api/v2/alerts", Some(serde_json::json!({}))).await;
        assert_eq!(code, 400);
        assert_eq!(v["code"], 400);
        let (code, v) = call(
            &app,
            "POST",
            "/api/v2/alerts",
            Some(serde_json::json!([{"annotations": {}}])),
        )
        .await;
        assert_eq!(code, 422);
        assert_eq!(v["message"], "0.labels in body is required");
        mgr.shutdown(std::time::Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn silences_are_created_listed_applied_and_expired() {
        let (app, mgr) = api().await;
        let alerts = serde_json::json!([
            {"labels": {"alertname": "Down", "team": "db"}},
            {"labels": {"alertname": "Slow"}}
        ]);
        assert_eq!(
            call(&app, "POST", "/api/v2/alerts", Some(alerts)).await.0,
            200
        );
        let now = mgr.now();
        let silence = serde_json::json!({
            "matchers": [{"name": "team", "value": "db", "isRegex": false, "isEqual": true}],
            "startsAt": time(now),
            "endsAt": time(now + 3_600_000),
            "createdBy": "ops",
            "comment": "maintenance"
        });
        let (code, v) = call(&app, "POST", "/api/v2/silences", Some(silence.clone())).await;
        assert_eq!(code, 200, "{v}");
        let id = v["silenceID"].as_str().unwrap().to_string();
        assert!(is_uuid(&id));

        let (code, v) = call(&app, "GET", &format!("/api/v2/silence/{id}"), None).await;
        assert_eq!(code, 200);
        assert_eq!(v["status"]["state"], "active");
        assert_eq!(v["createdBy"], "ops");
        assert_eq!(v["comment"], "maintenance");
        assert_eq!(
            v["matchers"],
            serde_json::json!([{"isEqual": true, "isRegex": false, "name": "team", "value": "db"}])
        );
        assert_eq!(v["endsAt"], time(now + 3_600_000));
        // The server moves a start in the past to its own clock, so an edit
        // takes the stored start back, as amtool does.
        let stored_start = v["startsAt"].clone();

        let (_, v) = call(&app, "GET", "/api/v2/alerts", None).await;
        let down = v
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["alertname"] == "Down")
            .unwrap();
        assert_eq!(down["status"]["state"], "suppressed");
        assert_eq!(down["status"]["silencedBy"], serde_json::json!([id]));
        let (_, v) = call(&app, "GET", "/api/v2/alerts?silenced=false", None).await;
        assert_eq!(names(&v, "/labels/alertname"), ["Slow"]);
        let (_, v) = call(&app, "GET", "/api/v2/alerts?active=false", None).await;
        assert_eq!(names(&v, "/labels/alertname"), ["Down"]);

        let (_, v) = call(&app, "GET", "/api/v2/silences?filter=team%3D%22db%22", None).await;
        assert_eq!(names(&v, "/id"), std::slice::from_ref(&id));
        let (_, v) = call(
            &app,
            "GET",
            "/api/v2/silences?filter=team%3D%22web%22",
            None,
        )
        .await;
        assert_eq!(v, serde_json::json!([]));

        // Updating keeps the id while the silence is active.
        let mut update = silence.clone();
        update["id"] = Value::String(id.clone());
        update["startsAt"] = stored_start;
        update["comment"] = Value::String("longer".into());
        update["endsAt"] = Value::String(time(now + 7_200_000));
        let (code, v) = call(&app, "POST", "/api/v2/silences", Some(update)).await;
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["silenceID"], id.as_str());
        assert_eq!(mgr.silence(&id).unwrap().comment, "longer");

        let (code, _) = call(&app, "DELETE", &format!("/api/v2/silence/{id}"), None).await;
        assert_eq!(code, 200);
        let (_, v) = call(&app, "GET", &format!("/api/v2/silence/{id}"), None).await;
        assert_eq!(v["status"]["state"], "expired");
        let (_, v) = call(&app, "GET", "/api/v2/alerts?silenced=false", None).await;
        assert_eq!(v.as_array().unwrap().len(), 2);

        let unknown = "5c1d0d2c-6a2f-4d7e-9f1e-0b7a3c9d8e21";
        let (code, _) = call(&app, "GET", &format!("/api/v2/silence/{unknown}"), None).await;
        assert_eq!(code, 404);
        let (code, v) = call(&app, "DELETE", &format!("/api/v2/silence/{unknown}"), None).await;
        assert_eq!((code, v), (404, Value::String("silence not found".into())));
        let (code, _) = call(&app, "GET", "/api/v2/silence/not-an-id", None).await;
        assert_eq!(code, 422);

        let mut bad = silence.clone();
        bad["endsAt"] = Value::String(time(now - 60_000));
        bad["startsAt"] = Value::String(time(now));
        let (code, v) = call(&app, "POST", "/api/v2/silences", Some(bad)).await;
        assert_eq!(code, 400, "{v}");
        assert!(v.is_string(), "{v}");
        mgr.shutdown(std::time::Duration::from_secs(1)).await;
    }

    #[test]
    fn times_like_go() {
        assert_eq!(time(1_714_953_600_123), "2024-05-06T00:00:00.123Z");
        assert_eq!(time(GO_ZERO_MS), "0001-01-01T00:00:00.000Z");
        assert_eq!(parse_time("0001-01-01T00:00:00.000Z").unwrap(), None);
        assert_eq!(
            parse_time("2024-05-06T02:00:00+02:00").unwrap(),
            Some(1_714_953_600_000)
        );
        assert!(parse_time("yesterday").is_err());
        assert!(swagger_bool("True") && swagger_bool("1") && !swagger_bool("foo"));
    }

    #[test]
    fn posted_alert_validation_like_alertmanager() {
        let mk = |l: &[(&str, &str)], s: i64, e: Option<i64>| Alert {
            labels: Labels::from_pairs(l.iter().copied()),
            annotations: BTreeMap::new(),
            starts_at: s,
            ends_at: e,
            updated_at: 0,
            generator_url: String::new(),
        };
        let raw = |l: &[(&str, &str)]| -> Vec<(String, String)> {
            l.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            validate_alert(&mk(&[("a", "b")], 10, Some(5)), &raw(&[("a", "b")]), &[]),
            Err("start time must be before end time".into())
        );
        assert_eq!(
            validate_alert(&mk(&[], 1, None), &raw(&[("a b", "c")]), &[]),
            Err("invalid label set: invalid name \"a b\"".into())
        );
        assert_eq!(
            validate_alert(&mk(&[], 1, None), &raw(&[("a", "")]), &[]),
            Err("at least one label pair required".into())
        );
        assert_eq!(
            validate_alert(
                &mk(&[("a", "b")], 1, None),
                &raw(&[("a", "b")]),
                &raw(&[("1x", "y")])
            ),
            Err("invalid annotations: invalid name \"1x\"".into())
        );
        assert!(validate_alert(&mk(&[("a", "b")], 1, Some(1)), &raw(&[("a", "b")]), &[]).is_ok());
    }

    #[tokio::test]
    async fn posted_silence_required_fields_in_swaggers_order() {
        let ok = serde_json::json!({
            "matchers": [{"name": "a", "value": "b", "isRegex": false}],
            "startsAt": "2030-01-01T00:00:00Z",
            "endsAt": "2030-01-02T00:00:00Z",
            "createdBy": "me",
            "comment": "why"
        });
        let p = posted_silence(&ok).unwrap();
        assert!(p.matchers[0].is_equal);
        assert_eq!(p.id, None);
        for (remove, want) in [
            ("comment", "comment in body is required"),
            ("createdBy", "createdBy in body is required"),
            ("startsAt", "startsAt in body is required"),
        ] {
            let mut v = ok.clone();
            v.as_object_mut().unwrap().remove(remove);
            let r = *posted_silence(&v).unwrap_err();
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{remove}");
            let body = tokio_test_body(r).await;
            assert_eq!(body["message"], want, "{remove}");
        }
        let mut v = ok.clone();
        v["matchers"][0].as_object_mut().unwrap().remove("isRegex");
        assert_eq!(
            posted_silence(&v).unwrap_err().status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
