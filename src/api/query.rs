//! `/api/v1/query` and `/api/v1/query_range`: PromQL over HTTP with
//! Prometheus's parameters and exact JSON (values as strings, `NaN`,
//! `+Inf`, `warnings`, `infos`, `errorType`).
//!
//! The engine is synchronous and CPU-bound, so queries run on the blocking
//! pool; a client that goes away cancels its query.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Form;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use super::ApiState;
use super::prom::{Params, parse_time};
use crate::model::{Labels, Timestamp, format_float};
use crate::promql::{EvalError, ExecOptions, Query, QueryResult, Value};

/// Prometheus refuses range queries with more points per series than this.
const MAX_POINTS: i64 = 11_000;

struct QueryError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl QueryError {
    fn bad_data(m: impl Into<String>) -> Self {
        QueryError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_data",
            message: m.into(),
        }
    }
}

impl From<EvalError> for QueryError {
    fn from(e: EvalError) -> Self {
        let kind = e.error_type();
        let status = match kind {
            "bad_data" => StatusCode::BAD_REQUEST,
            "timeout" => StatusCode::SERVICE_UNAVAILABLE,
            // Prometheus answers 499 (client closed request).
            "canceled" => StatusCode::from_u16(499).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "execution" => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &e {
            EvalError::Parse { .. } => format!("invalid parameter \"query\": {e}"),
            _ => e.to_string(),
        };
        QueryError {
            status,
            kind,
            message,
        }
    }
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"status": "error", "errorType": self.kind, "error": self.message})),
        )
            .into_response()
    }
}

/// Sets the cancel flag when the handler's future is dropped (the client
/// closed the connection) before the query finished.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Parses a duration parameter: Prometheus duration or float seconds.
fn parse_duration_param(s: &str, name: &str) -> Result<Duration, QueryError> {
    if let Ok(f) = s.parse::<f64>() {
        if (0.0..1e12).contains(&f) {
            return Ok(Duration::from_secs_f64(f));
        }
    } else if let Ok(d) = crate::model::parse_duration(s) {
        return Ok(d);
    }
    Err(QueryError::bad_data(format!(
        "invalid parameter \"{name}\": cannot parse \"{s}\" to a valid duration"
    )))
}

fn exec_options(p: &Params, cancel: Arc<AtomicBool>) -> Result<ExecOptions, QueryError> {
    let timeout = p
        .get("timeout")
        .filter(|s| !s.is_empty())
        .map(|s| parse_duration_param(s, "timeout"))
        .transpose()?;
    let lookback = p
        .get("lookback_delta")
        .filter(|s| !s.is_empty())
        .map(|s| parse_duration_param(s, "lookback_delta"))
        .transpose()?;
    Ok(ExecOptions {
        lookback_delta: lookback,
        timeout,
        cancel: Some(cancel),
    })
}

fn limit(p: &Params) -> Result<usize, QueryError> {
    match p.get("limit") {
        None | Some("") => Ok(0),
        Some(s) => s.parse::<usize>().map_err(|_| {
            QueryError::bad_data(format!(
                "invalid parameter \"limit\": cannot parse \"{s}\" to a non-negative integer"
            ))
        }),
    }
}

fn query_text(p: &Params) -> Result<String, QueryError> {
    Ok(p.get("query").unwrap_or("").to_string())
}

// The default evaluation time of an instant query is "now", a wall-clock
// fact of the request.
#[allow(clippy::disallowed_methods)]
fn now_ms() -> Timestamp {
    crate::model::timestamp_of(std::time::SystemTime::now())
}

pub async fn instant(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    instant_impl(st, Params::from_query(q.as_deref())).await
}

pub async fn instant_post(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    Form(body): Form<Vec<(String, String)>>,
) -> Response {
    instant_impl(st, Params::from_query(q.as_deref()).merge(body)).await
}

pub async fn range(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    range_impl(st, Params::from_query(q.as_deref())).await
}

pub async fn range_post(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    Form(body): Form<Vec<(String, String)>>,
) -> Response {
    range_impl(st, Params::from_query(q.as_deref()).merge(body)).await
}

async fn instant_impl(st: ApiState, p: Params) -> Response {
    let prepared = (|| -> Result<_, QueryError> {
        let text = query_text(&p)?;
        let ts = match p.get("time").filter(|s| !s.is_empty()) {
            Some(s) => parse_time(s, "time").map_err(|e| QueryError::bad_data(e.message))?,
            None => now_ms(),
        };
        Ok((text, ts, limit(&p)?))
    })();
    let (text, ts, limit) = match prepared {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let opts = match exec_options(&p, cancel.clone()) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let _guard = CancelOnDrop(cancel);
    let engine = st.engine.clone();
    let storage = st.storage.clone();
    let res = tokio::task::spawn_blocking(move || {
        let q = Query::parse(&text)?;
        engine.exec_instant(storage.as_ref(), &q, ts, &opts)
    })
    .await;
    respond(res, limit)
}

async fn range_impl(st: ApiState, p: Params) -> Response {
    let prepared = (|| -> Result<_, QueryError> {
        let text = query_text(&p)?;
        let start = parse_time(p.get("start").unwrap_or(""), "start")
            .map_err(|e| QueryError::bad_data(e.message))?;
        let end = parse_time(p.get("end").unwrap_or(""), "end")
            .map_err(|e| QueryError::bad_data(e.message))?;
        if end < start {
            return Err(QueryError::bad_data(
                "invalid parameter \"end\": end timestamp must not be before start time",
            ));
        }
        let step = parse_duration_param(p.get("step").unwrap_or(""), "step")?;
        if step.is_zero() {
            return Err(QueryError::bad_data(
                "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        let step_ms = step.as_millis().max(1) as i64;
        if (end - start) / step_ms > MAX_POINTS {
            return Err(QueryError::bad_data(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
            ));
        }
        Ok((text, start, end, step, limit(&p)?))
    })();
    let (text, start, end, step, limit) = match prepared {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let opts = match exec_options(&p, cancel.clone()) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let _guard = CancelOnDrop(cancel);
    let engine = st.engine.clone();
    let storage = st.storage.clone();
    let res = tokio::task::spawn_blocking(move || {
        let q = Query::parse(&text)?;
        engine.exec_range(storage.as_ref(), &q, start, end, step, &opts)
    })
    .await;
    respond(res, limit)
}

fn respond(
    res: Result<Result<QueryResult, EvalError>, tokio::task::JoinError>,
    limit: usize,
) -> Response {
    match res {
        Ok(Ok(r)) => success(r, limit).into_response(),
        Ok(Err(e)) => QueryError::from(e).into_response(),
        Err(e) => QueryError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            message: format!("query failed: {e}"),
        }
        .into_response(),
    }
}

/// Unix seconds as Prometheus writes them: a JSON number with up to three
/// decimals.
fn time_json(t: Timestamp) -> Json {
    if t % 1000 == 0 {
        json!(t / 1000)
    } else {
        json!(t as f64 / 1000.0)
    }
}

fn metric_json(l: &Labels) -> Json {
    let mut m = Map::new();
    for lb in l {
        m.insert(lb.name.clone(), Json::String(lb.value.clone()));
    }
    Json::Object(m)
}

fn success(r: QueryResult, limit: usize) -> axum::Json<Json> {
    let mut warnings = r.warnings;
    let truncated = |n: usize| limit > 0 && n > limit;
    let (kind, result) = match r.value {
        Value::Scalar(s) => ("scalar", json!([time_json(s.t), format_float(s.v)])),
        Value::String { t, v } => ("string", json!([time_json(t), v])),
        Value::Vector(mut v) => {
            if truncated(v.len()) {
                v.truncate(limit);
                warnings.push("results truncated due to limit".to_string());
            }
            let items: Vec<Json> = v
                .iter()
                .map(|s| json!({"metric": metric_json(&s.labels), "value": [time_json(s.t), format_float(s.v)]}))
                .collect();
            ("vector", Json::Array(items))
        }
        Value::Matrix(mut m) => {
            if truncated(m.len()) {
                m.truncate(limit);
                warnings.push("results truncated due to limit".to_string());
            }
            let items: Vec<Json> = m
                .iter()
                .map(|s| {
                    let values: Vec<Json> = s
                        .samples
                        .iter()
                        .map(|x| json!([time_json(x.t), format_float(x.v)]))
                        .collect();
                    json!({"metric": metric_json(&s.labels), "values": values})
                })
                .collect();
            ("matrix", Json::Array(items))
        }
    };
    let mut body = Map::new();
    body.insert("status".into(), json!("success"));
    body.insert("data".into(), json!({"resultType": kind, "result": result}));
    if !warnings.is_empty() {
        body.insert("warnings".into(), json!(warnings));
    }
    if !r.infos.is_empty() {
        body.insert("infos".into(), json!(r.infos));
    }
    axum::Json(Json::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_like_prometheus() {
        assert_eq!(time_json(1_435_781_451_781).to_string(), "1435781451.781");
        assert_eq!(time_json(1_000).to_string(), "1");
    }

    #[test]
    fn durations_accept_both_forms() {
        assert_eq!(
            parse_duration_param("15s", "step").ok(),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            parse_duration_param("0.5", "step").ok(),
            Some(Duration::from_millis(500))
        );
        assert!(parse_duration_param("soon", "step").is_err());
    }
}
