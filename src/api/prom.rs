//! Prometheus HTTP API handlers (`/api/v1/...`) with Prometheus's exact JSON
//! envelopes: `{"status":"success","data":...}` and
//! `{"status":"error","errorType":"bad_data","error":"..."}`.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::ApiState;
use crate::model::{Labels, Matcher, Timestamp};

/// Prometheus's error types, with their HTTP status codes.
#[derive(Debug, Clone, Copy)]
pub enum ErrorType {
    BadData,
    Execution,
}

impl ErrorType {
    fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

/// An API error answered in Prometheus's envelope.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorType,
    pub message: String,
}

impl ApiError {
    pub fn bad_data(m: impl Into<String>) -> Self {
        ApiError {
            kind: ErrorType::BadData,
            message: m.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"status": "error", "errorType": self.kind.as_str(), "error": self.message});
        (self.kind.status(), axum::Json(body)).into_response()
    }
}

/// `{"status":"success","data":data}`.
pub fn success<T: Serialize>(data: T) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

/// Query parameters as an ordered multimap (`match[]` repeats).
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn from_query(q: Option<&str>) -> Self {
        Params(
            q.map(|q| form_urlencoded_pairs(q.as_bytes()))
                .unwrap_or_default(),
        )
    }

    pub fn merge(mut self, other: Vec<(String, String)>) -> Self {
        self.0.extend(other);
        self
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Decodes `application/x-www-form-urlencoded` pairs.
pub fn form_urlencoded_pairs(input: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(input).into_owned().collect()
}

/// Earliest and latest representable times, Prometheus's defaults for
/// omitted `start`/`end`.
pub const MIN_TIME: Timestamp = i64::MIN / 4;
pub const MAX_TIME: Timestamp = i64::MAX / 4;

/// Parses an API time: RFC 3339 or (fractional) Unix seconds.
pub fn parse_time(s: &str, param: &str) -> Result<Timestamp, ApiError> {
    if let Ok(f) = s.parse::<f64>()
        && f.is_finite()
    {
        return Ok((f * 1000.0).round() as Timestamp);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    Err(ApiError::bad_data(format!(
        "invalid parameter \"{param}\": cannot parse \"{s}\" to a valid timestamp"
    )))
}

fn time_range(p: &Params) -> Result<(Timestamp, Timestamp), ApiError> {
    let start = p
        .get("start")
        .map(|s| parse_time(s, "start"))
        .transpose()?
        .unwrap_or(MIN_TIME);
    let end = p
        .get("end")
        .map(|s| parse_time(s, "end"))
        .transpose()?
        .unwrap_or(MAX_TIME);
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    Ok((start, end))
}

/// Parses one `match[]` selector into one or more matcher sets (several
/// when the selector uses `or` inside braces).
pub fn parse_selector(s: &str) -> Result<Vec<Vec<Matcher>>, ApiError> {
    use promql_parser::parser::Expr;
    let expr = promql_parser::parser::parse(s)
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {e}")))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(ApiError::bad_data(format!(
            "invalid parameter \"match[]\": {s:?} is not a series selector; use e.g. up{{job=\"node\"}}"
        )));
    };
    let mut sets: Vec<Vec<&promql_parser::label::Matcher>> = Vec::new();
    if vs.matchers.or_matchers.is_empty() {
        sets.push(vs.matchers.matchers.iter().collect());
    } else {
        for set in &vs.matchers.or_matchers {
            sets.push(set.iter().collect());
        }
    }
    let mut out = Vec::new();
    for set in sets {
        let mut ms: Vec<Matcher> = Vec::new();
        if let Some(name) = &vs.name {
            ms.push(Matcher::equal(crate::model::METRIC_NAME, name.clone()));
        }
        for m in set {
            ms.push(
                Matcher::from_promql(m).map_err(|e| {
                    ApiError::bad_data(format!("invalid parameter \"match[]\": {e}"))
                })?,
            );
        }
        if ms.iter().all(|m| m.matches_empty()) {
            return Err(ApiError::bad_data(
                "invalid parameter \"match[]\": match[] must contain at least one non-empty matcher",
            ));
        }
        out.push(ms);
    }
    Ok(out)
}

fn matcher_sets(p: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let mut out = Vec::new();
    for m in p.all("match[]") {
        out.extend(parse_selector(m)?);
    }
    Ok(out)
}

fn limit(p: &Params) -> Result<usize, ApiError> {
    match p.get("limit") {
        None | Some("") => Ok(0),
        Some(s) => s.parse::<usize>().map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"limit\": cannot parse {s:?} to a non-negative number"
            ))
        }),
    }
}

fn labels_json(l: &Labels) -> BTreeMap<&str, &str> {
    l.iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect()
}

fn storage_err(e: crate::storage::StorageError) -> ApiError {
    ApiError {
        kind: ErrorType::Execution,
        message: e.to_string(),
    }
}

pub async fn series(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    series_impl(&st, Params::from_query(q.as_deref())).unwrap_or_else(IntoResponse::into_response)
}

pub async fn series_post(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    Form(body): Form<Vec<(String, String)>>,
) -> Response {
    series_impl(&st, Params::from_query(q.as_deref()).merge(body))
        .unwrap_or_else(IntoResponse::into_response)
}

fn series_impl(st: &ApiState, p: Params) -> Result<Response, ApiError> {
    let sets = matcher_sets(&p)?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = time_range(&p)?;
    let limit = limit(&p)?;
    let mut all: Vec<Labels> = Vec::new();
    for ms in &sets {
        all.extend(st.storage.series(ms, start, end).map_err(storage_err)?);
    }
    all.sort();
    all.dedup();
    let mut warnings = Vec::new();
    if limit > 0 && all.len() > limit {
        all.truncate(limit);
        warnings.push("results truncated due to limit".to_string());
    }
    let data: Vec<BTreeMap<&str, &str>> = all.iter().map(labels_json).collect();
    Ok(with_warnings(json!(data), warnings))
}

fn with_warnings(data: Value, warnings: Vec<String>) -> Response {
    if warnings.is_empty() {
        success(data)
    } else {
        axum::Json(json!({"status": "success", "data": data, "warnings": warnings})).into_response()
    }
}

pub async fn labels(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    labels_impl(&st, Params::from_query(q.as_deref())).unwrap_or_else(IntoResponse::into_response)
}

pub async fn labels_post(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    Form(body): Form<Vec<(String, String)>>,
) -> Response {
    labels_impl(&st, Params::from_query(q.as_deref()).merge(body))
        .unwrap_or_else(IntoResponse::into_response)
}

fn labels_impl(st: &ApiState, p: Params) -> Result<Response, ApiError> {
    let sets = matcher_sets(&p)?;
    let (start, end) = time_range(&p)?;
    let limit = limit(&p)?;
    let mut names: Vec<String> = Vec::new();
    if sets.is_empty() {
        names = st
            .storage
            .label_names(&[], start, end)
            .map_err(storage_err)?;
    } else {
        for ms in &sets {
            names.extend(
                st.storage
                    .label_names(ms, start, end)
                    .map_err(storage_err)?,
            );
        }
        names.sort();
        names.dedup();
    }
    let mut warnings = Vec::new();
    if limit > 0 && names.len() > limit {
        names.truncate(limit);
        warnings.push("results truncated due to limit".to_string());
    }
    Ok(with_warnings(json!(names), warnings))
}

pub async fn label_values(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    label_values_impl(&st, &name, Params::from_query(q.as_deref()))
        .unwrap_or_else(IntoResponse::into_response)
}

fn label_values_impl(st: &ApiState, name: &str, p: Params) -> Result<Response, ApiError> {
    // Prometheus 3 accepts UTF-8 names encoded as `U__` + escapes; plain
    // names are the common case.
    let name = decode_label_name(name);
    if name.is_empty() {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let sets = matcher_sets(&p)?;
    let (start, end) = time_range(&p)?;
    let limit = limit(&p)?;
    let mut values: Vec<String> = Vec::new();
    if sets.is_empty() {
        values = st
            .storage
            .label_values(&name, &[], start, end)
            .map_err(storage_err)?;
    } else {
        for ms in &sets {
            values.extend(
                st.storage
                    .label_values(&name, ms, start, end)
                    .map_err(storage_err)?,
            );
        }
        values.sort();
        values.dedup();
    }
    let mut warnings = Vec::new();
    if limit > 0 && values.len() > limit {
        values.truncate(limit);
        warnings.push("results truncated due to limit".to_string());
    }
    Ok(with_warnings(json!(values), warnings))
}

/// Decodes Prometheus's `U__` label-name escaping (`U__my_2e_name` for
/// `my.name`); other names pass unchanged.
fn decode_label_name(s: &str) -> String {
    let Some(rest) = s.strip_prefix("U__") else {
        return s.to_string();
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '_' {
            if chars.peek() == Some(&'_') {
                chars.next();
                out.push('_');
                continue;
            }
            let hex: String = chars.by_ref().take_while(|&c| c != '_').collect();
            match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                Some(ch) => out.push(ch),
                None => return s.to_string(),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn rfc3339(t: Option<std::time::SystemTime>) -> String {
    match t {
        Some(t) => chrono::DateTime::<chrono::Utc>::from(t)
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        None => "0001-01-01T00:00:00Z".to_string(),
    }
}

pub async fn targets(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::from_query(q.as_deref());
    let state = p.get("state").unwrap_or("any").to_ascii_lowercase();
    let pool_filter = p.get("scrapePool").filter(|s| !s.is_empty());
    let (want_active, want_dropped) = match state.as_str() {
        "active" => (true, false),
        "dropped" => (false, true),
        "any" | "" => (true, true),
        other => {
            return ApiError::bad_data(format!(
                "invalid parameter \"state\": {other:?}; use active, dropped or any"
            ))
            .into_response();
        }
    };
    let mut active = Vec::new();
    let mut dropped = Vec::new();
    let mut dropped_counts = BTreeMap::new();
    for (job, view) in st.scrape.views() {
        if pool_filter.is_some_and(|f| f != job) {
            continue;
        }
        let view = view.read().unwrap_or_else(|e| e.into_inner());
        dropped_counts.insert(job.clone(), view.dropped.len());
        if want_active {
            for h in &view.active {
                let s = h.status();
                let t = &h.target;
                active.push(json!({
                    "discoveredLabels": labels_json(&t.discovered_labels),
                    "labels": labels_json(&t.labels),
                    "scrapePool": job,
                    "scrapeUrl": t.url,
                    "globalUrl": t.url,
                    "lastError": s.last_error.clone().unwrap_or_default(),
                    "lastScrape": rfc3339(s.last_scrape),
                    "lastScrapeDuration": s.last_duration.as_secs_f64(),
                    "health": s.health.as_str(),
                    "scrapeInterval": crate::model::format_duration(t.scrape_interval),
                    "scrapeTimeout": crate::model::format_duration(t.scrape_timeout),
                }));
            }
        }
        if want_dropped {
            for d in &view.dropped {
                dropped.push(json!({"discoveredLabels": labels_json(d)}));
            }
        }
    }
    let mut data = serde_json::Map::new();
    if want_active {
        data.insert("activeTargets".into(), Value::Array(active));
    }
    if want_dropped {
        data.insert("droppedTargets".into(), Value::Array(dropped));
        data.insert("droppedTargetCounts".into(), json!(dropped_counts));
    }
    success(Value::Object(data))
}

pub async fn status_config(State(st): State<ApiState>) -> Response {
    success(json!({"yaml": st.current_config().redacted_yaml}))
}

pub async fn tsdb_status(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::from_query(q.as_deref());
    let limit = match p.get("limit") {
        None | Some("") => 10,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                return ApiError::bad_data(format!(
                    "invalid parameter \"limit\": {s:?} is not a positive number"
                ))
                .into_response();
            }
        },
    };
    let storage = st.storage.clone();
    let Ok(ts) = tokio::task::spawn_blocking(move || storage.tsdb_status(limit)).await else {
        return ApiError {
            kind: ErrorType::Execution,
            message: "computing tsdb status failed".to_string(),
        }
        .into_response();
    };
    let rows = |v: &[crate::storage::NameCount]| -> Vec<Value> {
        v.iter()
            .map(|r| json!({"name": r.name, "value": r.value}))
            .collect()
    };
    // Prometheus reports math.MaxInt64 / MinInt64 for an empty head.
    let h = &ts.head_stats;
    success(json!({
        "headStats": {
            "numSeries": h.num_series,
            "numLabelPairs": h.num_label_pairs,
            "chunkCount": h.chunk_count,
            "minTime": h.min_time.unwrap_or(i64::MAX),
            "maxTime": h.max_time.unwrap_or(i64::MIN),
        },
        "seriesCountByMetricName": rows(&ts.series_count_by_metric_name),
        "labelValueCountByLabelName": rows(&ts.label_value_count_by_label_name),
        "memoryInBytesByLabelName": rows(&ts.memory_in_bytes_by_label_name),
        "seriesCountByLabelValuePair": rows(&ts.series_count_by_label_value_pair),
    }))
}

pub async fn buildinfo() -> Response {
    success(json!({
        "version": crate::VERSION,
        "revision": crate::REVISION,
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
        "application": "watchpost",
    }))
}

pub async fn flags(State(st): State<ApiState>) -> Response {
    let cfg = st.current_config();
    let file = cfg
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "(embedded default)".to_string());
    success(json!({"config.file": file}))
}

pub async fn runtimeinfo(State(st): State<ApiState>) -> Response {
    let cfg = st.current_config();
    let stats = st.storage.stats();
    success(json!({
        "startTime": rfc3339(Some(st.start_time)),
        "CWD": "",
        "reloadConfigSuccess": true,
        "lastConfigTime": rfc3339(Some(st.start_time)),
        "corruptionCount": 0,
        "goroutineCount": 0,
        "GOMAXPROCS": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": crate::model::format_duration(cfg.storage.retention_time),
        "headSeries": stats.series,
    }))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_both_forms() {
        assert_eq!(parse_time("1.5", "t").unwrap(), 1500);
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z", "t").unwrap(),
            1435781451781
        );
        assert!(parse_time("yesterday", "t").is_err());
    }

    #[test]
    fn selectors_need_a_non_empty_matcher() {
        assert!(parse_selector("{job=\"\"}").is_err());
        assert!(parse_selector("up").is_ok());
        assert!(parse_selector("rate(up[5m])").is_err());
        let sets = parse_selector("up{job=~\"a|b\"}").unwrap();
        assert_eq!(sets[0].len(), 2);
    }

    #[test]
    fn form_decoding() {
        let p = form_urlencoded_pairs(b"match%5B%5D=up%7Bjob%3D%22a%22%7D&x=a+b&y");
        assert_eq!(p[0], ("match[]".to_string(), "up{job=\"a\"}".to_string()));
        assert_eq!(p[1].1, "a b");
        assert_eq!(p[2], ("y".to_string(), String::new()));
    }

    #[test]
    fn utf8_label_names_decode() {
        assert_eq!(decode_label_name("job"), "job");
        assert_eq!(decode_label_name("U__my_2e_name"), "my.name");
    }
}
