//! `POST` / `GET /api/v1/heartbeat/<name>` (a ping; GET so that a cron
//! line can be `curl -fsS http://watchpost:9464/api/v1/heartbeat/backup`)
//! and `GET /api/v1/heartbeats` (every heartbeat with its last ping and
//! deadline). A thin edge over `ingest::heartbeat`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ApiState;
use super::prom::success;
use crate::ingest::heartbeat::HeartbeatStatus;
use crate::model::Timestamp;

fn time(t: Option<Timestamp>) -> Value {
    t.and_then(chrono::DateTime::from_timestamp_millis)
        .map_or(Value::Null, |t| {
            json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        })
}

fn status_json(s: &HeartbeatStatus) -> Value {
    json!({
        "name": s.name,
        "period": s.period.as_secs_f64(),
        "grace": s.grace.as_secs_f64(),
        "lastPing": time(s.last_ping),
        "deadline": time(Some(s.deadline)),
        "state": if s.missed_since.is_some() { "missed" } else { "ok" },
        "missedSince": time(s.missed_since),
    })
}

fn error(status: StatusCode, kind: &str, msg: String) -> Response {
    (
        status,
        axum::Json(json!({"status": "error", "errorType": kind, "error": msg})),
    )
        .into_response()
}

/// Records a ping.
pub async fn ping(State(st): State<ApiState>, Path(name): Path<String>) -> Response {
    let Some(h) = &st.heartbeats else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "heartbeats are not running in this server".into(),
        );
    };
    match h.ping(&name) {
        Ok(s) => success(status_json(&s)),
        Err(e) => error(StatusCode::NOT_FOUND, "not_found", e.to_string()),
    }
}

/// Lists every heartbeat.
pub async fn list(State(st): State<ApiState>) -> Response {
    let list: Vec<Value> = st
        .heartbeats
        .as_ref()
        .map(|h| h.statuses().iter().map(status_json).collect())
        .unwrap_or_default();
    success(json!({ "heartbeats": list }))
}
