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
#[cfg(test)]
use serde_json::Value as Json;
use serde_json::json;

use super::ApiState;
use super::prom::{Params, parse_time};
use crate::model::{Labels, Timestamp, write_float};
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
pub(super) struct CancelOnDrop(pub(super) Arc<AtomicBool>);

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
        Ok(Ok(r)) => success(r, limit),
        Ok(Err(e)) => QueryError::from(e).into_response(),
        Err(e) => QueryError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            message: format!("query failed: {e}"),
        }
        .into_response(),
    }
}

/// Writes unix seconds as Prometheus does: a JSON number with up to three
/// decimals (`1435781451.781`, `1435781451`).
fn write_time(out: &mut String, t: Timestamp) {
    if t < 0 {
        out.push('-');
    }
    let abs = t.unsigned_abs();
    let (secs, ms) = (abs / 1000, abs % 1000);
    out.push_str(itoa::Buffer::new().format(secs));
    if ms != 0 {
        // Up to three decimals without trailing zeros, and no allocation:
        // a range query writes a timestamp per point.
        let digits = [ms / 100, ms / 10 % 10, ms % 10];
        let keep = if ms % 100 == 0 {
            1
        } else if ms % 10 == 0 {
            2
        } else {
            3
        };
        out.push('.');
        for d in &digits[..keep] {
            out.push(char::from(b'0' + *d as u8));
        }
    }
}

/// Writes `s` as a JSON string.
fn write_str(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_metric(out: &mut String, l: &Labels) {
    out.push('{');
    for (i, lb) in l.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, &lb.name);
        out.push(':');
        write_str(out, &lb.value);
    }
    out.push('}');
}

/// `[t,"v"]`.
fn write_point(out: &mut String, t: Timestamp, v: f64) {
    out.push('[');
    write_time(out, t);
    out.push_str(",\"");
    write_float(out, v);
    out.push_str("\"]");
}

/// Answers of at least this many points (or vector samples) are streamed
/// while they are encoded; smaller ones are encoded in one go.
const STREAM_POINTS: usize = 50_000;

/// Size of the pieces a streamed answer is sent in.
const STREAM_CHUNK: usize = 256 << 10;

/// Encodes the success envelope straight into text: a range query can
/// return millions of points, and building a JSON tree for them costs
/// more than evaluating the query. A large answer is encoded on the
/// blocking pool and sent in pieces as they are ready, so the client reads
/// the first bytes while the last are still being written (Prometheus
/// streams its answers too); a client that goes away stops the encoding.
fn success(r: QueryResult, limit: usize) -> Response {
    let size = match &r.value {
        Value::Matrix(m) => m.iter().map(|s| s.samples.len()).sum(),
        Value::Vector(v) => v.len(),
        _ => 0,
    };
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    if size < STREAM_POINTS {
        let mut whole = String::new();
        encode(r, limit, |piece| {
            if whole.is_empty() {
                whole = piece;
            } else {
                whole.push_str(&piece);
            }
            true
        });
        return (json, whole).into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    tokio::task::spawn_blocking(move || {
        encode(r, limit, |piece| tx.blocking_send(piece.into()).is_ok());
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    (json, axum::body::Body::from_stream(body)).into_response()
}

/// Writes the success envelope of `r`, handing `sink` each piece of about
/// [`STREAM_CHUNK`] bytes (and the rest at the end); stops when `sink`
/// returns false.
fn encode(r: QueryResult, limit: usize, mut sink: impl FnMut(String) -> bool) {
    let mut warnings = r.warnings;
    let truncated = |n: usize| limit > 0 && n > limit;
    let mut out = String::with_capacity(4096);
    // Hands over what is written once it is a full piece.
    macro_rules! flush {
        () => {
            if out.len() >= STREAM_CHUNK
                && !sink(std::mem::replace(
                    &mut out,
                    String::with_capacity(STREAM_CHUNK + 4096),
                ))
            {
                return;
            }
        };
    }
    out.push_str("{\"status\":\"success\",\"data\":{\"resultType\":");
    match r.value {
        Value::Scalar(s) => {
            out.push_str("\"scalar\",\"result\":");
            write_point(&mut out, s.t, s.v);
        }
        Value::String { t, v } => {
            out.push_str("\"string\",\"result\":[");
            write_time(&mut out, t);
            out.push(',');
            write_str(&mut out, &v);
            out.push(']');
        }
        Value::Vector(mut v) => {
            if truncated(v.len()) {
                v.truncate(limit);
                warnings.push("results truncated due to limit".to_string());
            }
            out.reserve((v.len() * 96).min(STREAM_CHUNK));
            out.push_str("\"vector\",\"result\":[");
            for (i, s) in v.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_metric(&mut out, &s.labels);
                out.push_str(",\"value\":");
                write_point(&mut out, s.t, s.v);
                out.push('}');
                flush!();
            }
            out.push(']');
        }
        Value::Matrix(mut m) => {
            if truncated(m.len()) {
                m.truncate(limit);
                warnings.push("results truncated due to limit".to_string());
            }
            let points: usize = m.iter().map(|s| s.samples.len()).sum();
            out.reserve((m.len() * 96 + points * 28).min(STREAM_CHUNK));
            out.push_str("\"matrix\",\"result\":[");
            for (i, s) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_metric(&mut out, &s.labels);
                out.push_str(",\"values\":[");
                for (j, p) in s.samples.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    write_point(&mut out, p.t, p.v);
                }
                out.push_str("]}");
                flush!();
            }
            out.push(']');
        }
    }
    out.push('}');
    for (key, list) in [("warnings", &warnings), ("infos", &r.infos)] {
        if !list.is_empty() {
            out.push_str(",\"");
            out.push_str(key);
            out.push_str("\":[");
            for (i, w) in list.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(&mut out, w);
            }
            out.push(']');
        }
    }
    out.push('}');
    sink(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_like_prometheus() {
        let t = |ms| {
            let mut s = String::new();
            write_time(&mut s, ms);
            s
        };
        assert_eq!(t(1_435_781_451_781), "1435781451.781");
        assert_eq!(t(1_435_781_451_780), "1435781451.78");
        assert_eq!(t(1_000), "1");
        assert_eq!(t(-1_500), "-1.5");
        assert_eq!(t(1_050), "1.05");
        assert_eq!(t(1_005), "1.005");
        assert_eq!(t(1_100), "1.1");
    }

    #[test]
    fn encoded_result_is_valid_json() {
        let r = QueryResult {
            value: Value::Vector(vec![crate::promql::VectorSample {
                labels: Labels::from_pairs([("a", "q\"uote\\\n\u{1}")]),
                t: 1500,
                v: f64::NAN,
                h: None,
            }]),
            warnings: vec!["w".into()],
            infos: vec![],
        };
        let resp = success(r, 0);
        let body = futures_util::FutureExt::now_or_never(axum::body::to_bytes(
            resp.into_body(),
            usize::MAX,
        ))
        .unwrap()
        .unwrap();
        let v: Json = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["data"]["result"][0]["metric"]["a"], "q\"uote\\\n\u{1}");
        assert_eq!(v["data"]["result"][0]["value"][1], "NaN");
        assert_eq!(v["data"]["result"][0]["value"][0], 1.5);
        assert_eq!(v["warnings"][0], "w");
    }

    fn big_matrix(limit_series: usize) -> (QueryResult, usize) {
        let series: Vec<crate::promql::RangeSeries> = (0..limit_series)
            .map(|i| crate::promql::RangeSeries {
                labels: Labels::from_pairs([("__name__", "y"), ("i", &i.to_string())]),
                samples: (0..241)
                    .map(|j| crate::model::Sample {
                        t: 1_700_000_000_000 + j * 15_000,
                        v: (i as f64 + j as f64) / 7.0,
                    })
                    .collect(),
            })
            .collect();
        let r = QueryResult {
            value: Value::Matrix(series),
            warnings: vec!["w".into()],
            infos: vec![],
        };
        (r, limit_series * 241)
    }

    #[tokio::test]
    async fn a_large_answer_is_streamed_in_pieces_and_equals_the_whole() {
        let (r, points) = big_matrix(1000);
        assert!(points >= STREAM_POINTS);
        let mut whole = String::new();
        let mut pieces = 0;
        encode(big_matrix(1000).0, 0, |p| {
            pieces += 1;
            whole.push_str(&p);
            true
        });
        assert!(pieces > 20, "{pieces} pieces");
        let body = axum::body::to_bytes(success(r, 0).into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(body.len(), whole.len());
        assert!(body == whole.as_bytes());
        let v: Json = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["data"]["result"].as_array().unwrap().len(), 1000);
        assert_eq!(
            v["data"]["result"][999]["values"][238][1],
            "176.71428571428572"
        );
        assert_eq!(v["warnings"][0], "w");
        // `limit` still applies, and a sink that stops ends the encoding.
        let body = axum::body::to_bytes(success(big_matrix(1000).0, 3).into_body(), usize::MAX)
            .await
            .unwrap();
        let v: Json = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["data"]["result"].as_array().unwrap().len(), 3);
        let mut calls = 0;
        encode(big_matrix(1000).0, 0, |_| {
            calls += 1;
            false
        });
        assert_eq!(calls, 1);
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
