//! watchpost: one process that does the alerting job of Prometheus,
//! Alertmanager and the Pushgateway.
//!
//! ```text
//!         pull                                    push
//!  exporters ── scrape ──┐          ┌── Pushgateway API, remote write, heartbeats
//!                        ▼          ▼
//!                  storage: series index + samples (Appender / Queryable)
//!                        │
//!                        ▼
//!         rules: PromQL evaluation, alert state machine, recording rules
//!                        │ alerts
//!                        ▼
//!         notify: route → group → inhibit → silence → dedup → send
//!                        │
//!         channels: email · telegram · slack · webhook · log
//!                        ▲
//!  consumers pull: Prometheus API, Alertmanager API v2, alert stream, web UI
//! ```
//!
//! Data only flows down this picture. `model` is the shared vocabulary;
//! `config` turns YAML into validated types; `scrape` writes into `storage`
//! through `storage::Appender`; the `api` edge reads handles and holds no
//! business logic; `app` wires everything together.

pub mod api;
pub mod app;
pub mod channels;
pub mod config;
pub mod ingest;
pub mod model;
pub mod notify;
pub mod promql;
pub mod reports;
pub mod rules;
pub mod scrape;
pub mod storage;
pub mod telemetry;
pub mod template;

/// watchpost's version, as `--version` and `/api/v1/status/buildinfo` show it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The source revision, when the build sets `WATCHPOST_REVISION`.
pub const REVISION: &str = match option_env!("WATCHPOST_REVISION") {
    Some(r) => r,
    None => "unknown",
};
