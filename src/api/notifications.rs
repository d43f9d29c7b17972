//! `GET /api/v1/notifications`: the notification history (what was sent
//! to whom, when and why, what failed and what was held back), newest
//! first, in Prometheus's `{"status":"success","data":[...]}` envelope.
//! The web UI's Notifications page reads it.
//!
//! A read-only view over the [`NotifyManager`]'s in-memory history; the
//! `limit` parameter bounds the answer.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat};
use serde::Serialize;

use super::prom::{ApiError, Params, success};
use crate::notify::{HistoryEntry, NotifyManager};

/// Entries returned when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;
/// The most entries one request may ask for.
const MAX_LIMIT: usize = 1000;

/// The route, to be merged into the authenticated router (generic over the
/// outer state like the Alertmanager API's routes).
pub(super) fn routes<S: Clone + Send + Sync + 'static>(notify: Arc<NotifyManager>) -> Router<S> {
    Router::new()
        .route("/api/v1/notifications", get(list))
        .with_state(notify)
}

/// One history entry as JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EntryBody {
    time: String,
    receiver: String,
    integration: String,
    group_key: String,
    event: &'static str,
    reason: String,
    detail: String,
    firing: usize,
    resolved: usize,
    attempts: u32,
}

fn body(e: HistoryEntry) -> EntryBody {
    EntryBody {
        time: DateTime::from_timestamp_millis(e.at)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
            .unwrap_or_default(),
        receiver: e.receiver,
        integration: e.integration,
        group_key: e.group_key,
        event: e.event.as_str(),
        reason: e.reason,
        detail: e.detail,
        firing: e.firing,
        resolved: e.resolved,
        attempts: e.attempts,
    }
}

fn parse_limit(p: &Params) -> Result<usize, ApiError> {
    match p.get("limit") {
        None | Some("") => Ok(DEFAULT_LIMIT),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_data(format!(
                "invalid parameter \"limit\": {s:?}: give a whole number from 1 to {MAX_LIMIT}"
            ))),
        },
    }
}

async fn list(State(notify): State<Arc<NotifyManager>>, RawQuery(q): RawQuery) -> Response {
    let limit = match parse_limit(&Params::from_query(q.as_deref())) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let entries: Vec<EntryBody> = notify.recent_history(limit).into_iter().map(body).collect();
    success(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_bounded() {
        let p = |q: &str| parse_limit(&Params::from_query(Some(q)));
        assert_eq!(p("").ok(), Some(DEFAULT_LIMIT));
        assert_eq!(p("limit=5").ok(), Some(5));
        assert_eq!(p("limit=1000").ok(), Some(1000));
        for bad in ["limit=0", "limit=1001", "limit=-1", "limit=ten"] {
            let e = p(bad).expect_err(bad);
            assert!(e.message.contains("from 1 to 1000"), "{}", e.message);
        }
    }
}
