//! HTTP edge of push ingestion: the Pushgateway API (`PUT`, `POST`,
//! `DELETE /metrics/job/<job>{/<label>/<value>}`, `GET /api/v1/metrics`)
//! and the remote-write receiver (`POST /api/v1/write`). Handlers check
//! that the endpoint is enabled, bound and read the body, and hand it to
//! `ingest`; status codes follow Pushgateway (200 for a push, 202 for a
//! delete) and Prometheus (204 for remote write).

use std::time::SystemTime;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use super::ApiState;
use crate::config::PushConfig;
use crate::ingest::pushgateway::PushRequest;
use crate::ingest::{
    BodyFormat, GroupingKey, PushError, PushIngest, PushMode, RemoteWriteError, remote_write,
};

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/metrics/{*grouping}", put(push).post(push).delete(delete))
        .route("/api/v1/metrics", get(groups))
        .route("/api/v1/write", post(write))
}

fn text(code: StatusCode, msg: impl Into<String>) -> Response {
    let mut m = msg.into();
    m.push('\n');
    (code, m).into_response()
}

fn reject(st: &ApiState, api: &str, reason: &str, code: StatusCode, msg: String) -> Response {
    st.telemetry
        .push
        .rejected
        .get_or_create(&vec![
            ("api", api.to_string()),
            ("reason", reason.to_string()),
        ])
        .inc();
    text(code, msg)
}

/// The Pushgateway handle, limits and the request's grouping key, or the
/// response refusing the request (404 when disabled, 400 for a bad URL).
fn group_target(
    st: &ApiState,
    req: &Request,
) -> Result<(PushIngest, PushConfig, GroupingKey), Box<Response>> {
    let (ingest, limits) = pushgateway(st)?;
    let path = req
        .uri()
        .path()
        .strip_prefix("/metrics/")
        .unwrap_or_default();
    match crate::ingest::pushgateway::parse_grouping_key(path) {
        Ok(k) => Ok((ingest, limits, k)),
        Err(e) => Err(Box::new(reject(
            st,
            "pushgateway",
            e.reason(),
            StatusCode::BAD_REQUEST,
            e.to_string(),
        ))),
    }
}

/// The Pushgateway handle and limits when the API is enabled, else the
/// 404 to send.
fn pushgateway(st: &ApiState) -> Result<(PushIngest, PushConfig), Box<Response>> {
    let cfg = st.current_config();
    match &st.push {
        Some(p) if cfg.push.pushgateway => Ok((p.clone(), cfg.push.clone())),
        _ => Err(Box::new(reject(
            st,
            "pushgateway",
            "disabled",
            StatusCode::NOT_FOUND,
            "the Pushgateway API is disabled: set `push: {pushgateway: true}` in the config and reload to enable it".to_string(),
        ))),
    }
}

// The push time is a wall-clock fact recorded in push_time_seconds.
#[allow(clippy::disallowed_methods)]
fn now() -> crate::model::Timestamp {
    crate::model::timestamp_of(SystemTime::now())
}

/// Reads the body up to `limit` bytes; a larger one is refused with 413
/// (early when Content-Length says so).
async fn read_body(req: Request, limit: u64) -> Result<bytes::Bytes, String> {
    let too_large = || {
        format!(
            "request body larger than push.max_request_bytes ({}): send less per request or raise the limit",
            crate::config::format_size(limit)
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    axum::body::to_bytes(
        req.into_body(),
        usize::try_from(limit).unwrap_or(usize::MAX),
    )
    .await
    .map_err(|_| too_large())
}

async fn push(State(st): State<ApiState>, req: Request) -> Response {
    let (ingest, limits, key) = match group_target(&st, &req) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let mode = if req.method() == Method::PUT {
        PushMode::Replace
    } else {
        PushMode::Merge
    };
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let format = match BodyFormat::from_content_type(ct) {
        Ok(f) => f,
        Err(msg) => {
            return reject(
                &st,
                "pushgateway",
                "unsupported_media_type",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                msg,
            );
        }
    };
    let body = match read_body(req, limits.max_request_bytes).await {
        Ok(b) => b,
        Err(msg) => {
            return reject(
                &st,
                "pushgateway",
                "too_large",
                StatusCode::PAYLOAD_TOO_LARGE,
                msg,
            );
        }
    };
    let now = now();
    let store = ingest.store.clone();
    let res = tokio::task::spawn_blocking(move || {
        let req = PushRequest {
            key: &key,
            mode,
            body: &body,
            format,
            limits: &limits,
        };
        store.push(req, now)
    })
    .await;
    match res {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(e)) => text(push_status(&e), e.to_string()),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("push task failed: {e}"),
        ),
    }
}

fn push_status(e: &PushError) -> StatusCode {
    match e {
        PushError::Persist(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

async fn delete(State(st): State<ApiState>, req: Request) -> Response {
    let (ingest, _, key) = match group_target(&st, &req) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let now = now();
    let store = ingest.store.clone();
    match tokio::task::spawn_blocking(move || store.delete(&key, now)).await {
        Ok(Ok(())) => StatusCode::ACCEPTED.into_response(),
        Ok(Err(e)) => text(push_status(&e), e.to_string()),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("delete task failed: {e}"),
        ),
    }
}

async fn groups(State(st): State<ApiState>) -> Response {
    match pushgateway(&st) {
        Ok((ingest, _)) => axum::Json(ingest.store.groups_json()).into_response(),
        Err(r) => *r,
    }
}

async fn write(State(st): State<ApiState>, req: Request) -> Response {
    let cfg = st.current_config();
    let limits = cfg.push.clone();
    let enabled = st
        .push
        .as_ref()
        .is_some_and(|p| p.remote_write_flag || limits.remote_write);
    if !enabled {
        return reject(
            &st,
            "remote_write",
            "disabled",
            StatusCode::NOT_FOUND,
            "the remote-write receiver is disabled: set `push: {remote_write: true}` in the config (and reload), or start watchpost with --web.enable-remote-write-receiver".to_string(),
        );
    }
    let encoding = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match read_body(req, limits.max_request_bytes).await {
        Ok(b) => b,
        Err(msg) => {
            return reject(
                &st,
                "remote_write",
                "too_large",
                StatusCode::PAYLOAD_TOO_LARGE,
                msg,
            );
        }
    };
    let storage = st.storage.clone();
    let metrics = st.telemetry.push.clone();
    let res = tokio::task::spawn_blocking(move || {
        match remote_write::decode(&body, encoding.as_deref(), &limits) {
            Ok(req) => remote_write::write(&*storage, &req, &metrics),
            Err(e) => {
                remote_write::count_rejected(&metrics, &e);
                Err(e)
            }
        }
    })
    .await;
    match res {
        Ok(Ok(_)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => {
            let code = match &e {
                RemoteWriteError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                RemoteWriteError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                RemoteWriteError::Decode(_) | RemoteWriteError::Invalid(_) => {
                    StatusCode::BAD_REQUEST
                }
                RemoteWriteError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            text(code, e.to_string())
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("write task failed: {e}"),
        ),
    }
}
