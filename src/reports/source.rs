//! Where a report's numbers come from: the [`QuerySource`] seam.
//!
//! Inside the running watchpost, [`LocalSource`] evaluates PromQL with the
//! engine over the storage (on the blocking pool: the engine is
//! synchronous). The command line (`watchpost report send`) runs beside a
//! watchpost that owns the storage directory and must not open it a second
//! time, so it uses [`HttpSource`]: the same queries through that
//! watchpost's Prometheus API (`/api/v1/query`, `/api/v1/query_range`),
//! which any Prometheus-compatible server answers too.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{Labels, Sample, Timestamp};
use crate::promql::{Engine, RangeSeries, Value, VectorSample};
use crate::storage::Queryable;

use super::ReportError;

/// A boxed future, as the seam's methods return (the trait is used as an
/// object).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Evaluates PromQL for a report.
pub trait QuerySource: Send + Sync {
    /// `expr` at every `step` from `start` to `end` (a matrix).
    fn range<'a>(
        &'a self,
        expr: &'a str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> BoxFuture<'a, Result<Vec<RangeSeries>, ReportError>>;

    /// `expr` at `t` (an instant vector).
    fn instant<'a>(
        &'a self,
        expr: &'a str,
        t: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<VectorSample>, ReportError>>;
}

/// The engine over watchpost's own storage.
pub struct LocalSource {
    engine: Arc<Engine>,
    storage: Arc<dyn Queryable>,
}

impl LocalSource {
    pub fn new(engine: Arc<Engine>, storage: Arc<dyn Queryable>) -> Self {
        LocalSource { engine, storage }
    }
}

fn query_error(expr: &str, e: impl std::fmt::Display) -> ReportError {
    ReportError::Query {
        query: expr.to_string(),
        message: e.to_string(),
    }
}

impl QuerySource for LocalSource {
    fn range<'a>(
        &'a self,
        expr: &'a str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> BoxFuture<'a, Result<Vec<RangeSeries>, ReportError>> {
        let (engine, storage, e) = (self.engine.clone(), self.storage.clone(), expr.to_string());
        Box::pin(async move {
            let r = tokio::task::spawn_blocking(move || {
                engine.range(storage.as_ref(), &e, start, end, step)
            })
            .await
            .map_err(|j| query_error(expr, j))?
            .map_err(|err| query_error(expr, err))?;
            match r.value {
                Value::Matrix(m) => Ok(m),
                other => Err(query_error(
                    expr,
                    format!("expected a matrix, got a {}", other.type_name()),
                )),
            }
        })
    }

    fn instant<'a>(
        &'a self,
        expr: &'a str,
        t: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<VectorSample>, ReportError>> {
        let (engine, storage, e) = (self.engine.clone(), self.storage.clone(), expr.to_string());
        Box::pin(async move {
            let r = tokio::task::spawn_blocking(move || engine.instant(storage.as_ref(), &e, t))
                .await
                .map_err(|j| query_error(expr, j))?
                .map_err(|err| query_error(expr, err))?;
            match r.value {
                Value::Vector(v) => Ok(v),
                other => Err(query_error(
                    expr,
                    format!("expected a vector, got a {}", other.type_name()),
                )),
            }
        })
    }
}

/// Most bytes of one API answer read: a week of `ALERTS` at one-minute
/// steps for a few hundred alerts fits well below this.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// A Prometheus-compatible query API (a running watchpost).
pub struct HttpSource {
    base: reqwest::Url,
    /// `base` with its password replaced, for errors.
    shown: String,
    client: reqwest::Client,
}

impl HttpSource {
    /// `base` is the server's root (`http://127.0.0.1:9464`; with web
    /// config basic auth `http://user:password@host:port`, the password
    /// never shown in errors); requests time out after `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, ReportError> {
        let shown = crate::config::http_client::redact_url(base);
        let base = reqwest::Url::parse(base).map_err(|e| ReportError::Source {
            message: format!(
                "{shown:?} is not a URL ({e}): give the server's address, e.g. http://127.0.0.1:9464"
            ),
        })?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ReportError::Source {
                message: format!("building the HTTP client: {e}"),
            })?;
        Ok(HttpSource {
            base,
            shown,
            client,
        })
    }

    fn source_error(&self, what: &str, e: reqwest::Error) -> ReportError {
        ReportError::Source {
            message: format!(
                "{what} {}: {}",
                self.shown,
                crate::config::http_client::error_chain(&e.without_url())
            ),
        }
    }

    async fn get(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<serde_json::Value, ReportError> {
        let expr = params.first().map(|p| p.1.as_str()).unwrap_or("");
        let mut url = self.base.clone();
        url.set_path(&format!("{}{path}", self.base.path().trim_end_matches('/')));
        url.query_pairs_mut()
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
        let mut resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| self.source_error("querying", e))?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(ReportError::Source {
                message: format!(
                    "{} answered 401 Unauthorized: it requires basic auth (web config); give the user in the URL: http://user:password@host:port",
                    self.shown
                ),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| self.source_error("reading the answer of", e))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(query_error(
                    expr,
                    format!(
                        "the answer is larger than {MAX_ANSWER_BYTES} bytes: shorten the report's window"
                    ),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let mut json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ReportError::Source {
                message: format!(
                    "{} answered {status} with something that is not the Prometheus API ({e}): check --web.url",
                    self.shown
                ),
            })?;
        if json["status"] != "success" {
            return Err(query_error(
                expr,
                json["error"]
                    .as_str()
                    .unwrap_or("the query failed")
                    .to_string(),
            ));
        }
        Ok(json["data"]["result"].take())
    }
}

fn labels_of(v: &serde_json::Value) -> Labels {
    Labels::from_pairs(
        v.as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())),
    )
}

/// `[1700000000.5, "1"]` as a sample.
fn sample_of(v: &serde_json::Value) -> Option<Sample> {
    let t = v.get(0)?.as_f64()?;
    let v = v.get(1)?.as_str()?.parse::<f64>().ok()?;
    Some(Sample {
        t: (t * 1000.0).round() as Timestamp,
        v,
    })
}

fn seconds(t: Timestamp) -> String {
    format!("{}.{:03}", t.div_euclid(1000), t.rem_euclid(1000))
}

impl QuerySource for HttpSource {
    fn range<'a>(
        &'a self,
        expr: &'a str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> BoxFuture<'a, Result<Vec<RangeSeries>, ReportError>> {
        Box::pin(async move {
            let params = [
                ("query", expr.to_string()),
                ("start", seconds(start)),
                ("end", seconds(end)),
                ("step", format!("{}", step.as_secs_f64())),
            ];
            let result = self.get("/api/v1/query_range", &params).await?;
            Ok(result
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| RangeSeries {
                    labels: labels_of(&s["metric"]),
                    samples: s["values"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(sample_of)
                        .collect(),
                })
                .collect())
        })
    }

    fn instant<'a>(
        &'a self,
        expr: &'a str,
        t: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<VectorSample>, ReportError>> {
        Box::pin(async move {
            let params = [("query", expr.to_string()), ("time", seconds(t))];
            let result = self.get("/api/v1/query", &params).await?;
            Ok(result
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    let p = sample_of(&s["value"])?;
                    Some(VectorSample {
                        labels: labels_of(&s["metric"]),
                        t: p.t,
                        v: p.v,
                        h: None,
                    })
                })
                .collect())
        })
    }
}
