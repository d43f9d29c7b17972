//! The HTTP edge: Prometheus's API, Alertmanager's API v2, health and
//! reload endpoints, watchpost's own `/metrics`, the web UI, and
//! authentication.
//!
//! A thin layer: handlers read the handles in [`ApiState`] (storage,
//! scrape views, current config) and format answers; no business logic
//! lives here. Reloads are requested over a channel that `app` serves.
//! Servers take a bound listener and a shutdown future, so tests bind
//! port 0.

mod alertmanager;
mod auth;
mod backtest;
mod etag;
mod heartbeat;
mod notifications;
mod prom;
mod push;
mod query;
mod rules;
pub mod stream;
mod ui;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{mpsc, oneshot};

pub use auth::{AuthError, Authenticator, TlsListener, load_tls_acceptor};

use crate::config::Config;
use crate::notify::NotifyManager;
use crate::promql::Engine;
use crate::scrape::manager::ScrapeManager;
use crate::storage::Storage;
use crate::telemetry::Telemetry;

/// A failed reload, as reported to whoever asked for it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ReloadFailed(pub String);

/// A request to reload the configuration; `app` answers on `reply`.
#[derive(Debug)]
pub struct ReloadRequest {
    pub reply: oneshot::Sender<Result<(), ReloadFailed>>,
}

/// Everything the handlers read. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub storage: Arc<dyn Storage>,
    pub engine: Arc<Engine>,
    pub scrape: Arc<ScrapeManager>,
    pub config: Arc<RwLock<Arc<Config>>>,
    pub telemetry: Arc<Telemetry>,
    pub reload: mpsc::Sender<ReloadRequest>,
    pub ready: Arc<AtomicBool>,
    pub auth: Arc<Authenticator>,
    pub start_time: SystemTime,
    /// The rule manager; `None` answers `/api/v1/rules` and
    /// `/api/v1/alerts` with no groups and no alerts.
    pub rules: Option<crate::rules::RuleManager>,
    /// Push ingestion (Pushgateway API, remote write); `None` answers
    /// its endpoints with 404.
    pub push: Option<crate::ingest::PushIngest>,
    /// The alert event hub behind `/api/v1/alerts/stream`; `None` answers
    /// the stream with 503.
    pub events: Option<Arc<stream::AlertEvents>>,
    /// The heartbeats behind `/api/v1/heartbeat/<name>`; their missed ones
    /// are listed by `/api/v1/alerts`.
    pub heartbeats: Option<Arc<crate::ingest::heartbeat::Heartbeats>>,
}

impl ApiState {
    pub fn current_config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The full router, without the Alertmanager API (see
/// [`router_with_notify`]).
pub fn router(state: ApiState) -> Router {
    build(state, None)
}

/// The full router including Alertmanager's API v2 (`/api/v2/...`) over
/// the running notification pipeline.
pub fn router_with_notify(state: ApiState, notify: Arc<NotifyManager>) -> Router {
    build(state, Some(notify))
}

fn build(state: ApiState, notify: Option<Arc<NotifyManager>>) -> Router {
    let mut api = Router::new()
        .route(
            "/api/v1/query",
            get(query::instant).post(query::instant_post),
        )
        .route(
            "/api/v1/query_range",
            get(query::range).post(query::range_post),
        )
        .route("/api/v1/targets", get(prom::targets))
        .route("/api/v1/rules", get(rules::rules))
        .route(
            "/api/v1/rules/backtest",
            get(backtest::get_backtest).post(backtest::post_backtest),
        )
        .route("/api/v1/alerts", get(rules::alerts))
        .route("/api/v1/alerts/stream", get(stream::stream))
        .route(
            "/api/v1/heartbeat/{name}",
            get(heartbeat::ping).post(heartbeat::ping),
        )
        .route("/api/v1/heartbeats", get(heartbeat::list))
        .route("/api/v1/series", get(prom::series).post(prom::series_post))
        .route("/api/v1/labels", get(prom::labels).post(prom::labels_post))
        .route("/api/v1/label/{name}/values", get(prom::label_values))
        .route("/api/v1/status/config", get(prom::status_config))
        .route("/api/v1/status/buildinfo", get(prom::buildinfo))
        .route("/api/v1/status/tsdb", get(prom::tsdb_status))
        .route("/api/v1/status/flags", get(prom::flags))
        .route("/api/v1/status/runtimeinfo", get(prom::runtimeinfo))
        .route("/metrics", get(metrics))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload).put(reload))
        .merge(push::routes())
        .merge(ui::routes());
    if let Some(n) = notify {
        api = api
            .merge(notifications::routes(n.clone()))
            .merge(alertmanager::routes(n, state.events.clone()));
    }
    let api = api
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ));
    // /-/healthy answers without credentials, so liveness probes need none.
    Router::new()
        .route("/-/healthy", get(healthy))
        .merge(api)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

async fn count_requests(
    State(st): State<ApiState>,
    matched: Option<axum::extract::MatchedPath>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let handler = matched
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "other".to_string());
    let resp = next.run(req).await;
    st.telemetry
        .api
        .requests
        .get_or_create(&vec![
            ("handler", handler),
            ("code", resp.status().as_u16().to_string()),
        ])
        .inc();
    resp
}

async fn healthy() -> &'static str {
    "watchpost is Healthy.\n"
}

async fn ready(State(st): State<ApiState>) -> Response {
    if st.ready.load(Ordering::Acquire) {
        "watchpost is Ready.\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}

async fn metrics(State(st): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.telemetry.encode(),
    )
        .into_response()
}

async fn reload(State(st): State<ApiState>) -> Response {
    let (tx, rx) = oneshot::channel();
    if st.reload.send(ReloadRequest { reply: tx }).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "watchpost is shutting down\n",
        )
            .into_response();
    }
    match rx.await {
        Ok(Ok(())) => (StatusCode::OK, "").into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "watchpost is shutting down\n",
        )
            .into_response(),
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}
