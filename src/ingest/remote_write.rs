//! The Prometheus remote-write receiver (remote write 1.0): a snappy block
//! compressed protobuf `WriteRequest` whose samples are appended with
//! their own timestamps.
//!
//! The message structs are written by hand for prost's derive (no build
//! step); fields watchpost does not store (exemplars, native histograms,
//! metadata) are left undeclared, so prost skips them. A request is decoded
//! and checked whole before anything is appended, so a bad request stores
//! nothing. Samples storage refuses (out of order, duplicate timestamp) are
//! counted and do not fail the request: a sender retrying a partly applied
//! batch would otherwise be stuck forever.

use crate::config::PushConfig;
use crate::model::{Labels, Timestamp};
use crate::storage::{AppendError, Storage};
use crate::telemetry::PushMetrics;

const API: &str = "remote_write";

/// `prometheus.WriteRequest` (remote write 1.0).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Why a remote-write request was refused; nothing of it is stored.
#[derive(Debug, thiserror::Error)]
pub enum RemoteWriteError {
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedEncoding(String),
    #[error("{0}")]
    Decode(String),
    #[error("{0}")]
    Invalid(String),
    /// Storage failed: watchpost's problem, answered with a 5xx so the
    /// sender retries.
    #[error("storing the samples failed: {0}")]
    Storage(String),
}

impl RemoteWriteError {
    /// The bounded word counted in `watchpost_push_requests_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            RemoteWriteError::TooLarge(_) => "too_large",
            RemoteWriteError::UnsupportedEncoding(_) => "unsupported_media_type",
            RemoteWriteError::Decode(_) => "decode_error",
            RemoteWriteError::Invalid(_) => "invalid",
            RemoteWriteError::Storage(_) => "storage_failed",
        }
    }
}

/// What an accepted request did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteSummary {
    pub series: usize,
    pub appended: u64,
    pub out_of_order: u64,
    pub duplicate: u64,
}

/// Decodes a snappy-compressed `WriteRequest` within the bounds of
/// `limits`. `content_encoding` is the request's header; none means
/// snappy, as Prometheus assumes.
pub fn decode(
    body: &[u8],
    content_encoding: Option<&str>,
    limits: &PushConfig,
) -> Result<WriteRequest, RemoteWriteError> {
    if let Some(enc) = content_encoding
        && !enc.trim().eq_ignore_ascii_case("snappy")
    {
        return Err(RemoteWriteError::UnsupportedEncoding(format!(
            "Content-Encoding {enc:?} is not supported: remote write 1.0 bodies are snappy block compressed (Content-Encoding: snappy)"
        )));
    }
    let max = limits.max_request_bytes;
    let len = snap::raw::decompress_len(body).map_err(snappy_error)?;
    if len as u64 > max {
        return Err(RemoteWriteError::TooLarge(format!(
            "the decompressed request is {len} bytes, more than push.max_request_bytes ({max}): send smaller batches (remote_write queue_config.max_samples_per_send) or raise the limit"
        )));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(snappy_error)?;
    let req = <WriteRequest as prost::Message>::decode(raw.as_slice()).map_err(|e| {
        RemoteWriteError::Decode(format!(
            "protobuf: {e}: the body must be a prometheus.WriteRequest (remote write 1.0)"
        ))
    })?;
    let samples: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
    if samples as u64 > limits.max_samples_per_request {
        return Err(RemoteWriteError::TooLarge(format!(
            "the request has {samples} samples, more than push.max_samples_per_request ({}): send smaller batches (remote_write queue_config.max_samples_per_send) or raise the limit",
            limits.max_samples_per_request
        )));
    }
    Ok(req)
}

fn snappy_error(e: snap::Error) -> RemoteWriteError {
    // snap's messages already start with "snappy: ".
    let e = e.to_string();
    let e = e.strip_prefix("snappy: ").unwrap_or(&e);
    RemoteWriteError::Decode(format!(
        "snappy: {e}: the body must be snappy block format (not framed), as remote write 1.0 sends it"
    ))
}

/// Checks every series' labels and builds them; the first bad one refuses
/// the request.
fn series_labels(req: &WriteRequest) -> Result<Vec<Labels>, RemoteWriteError> {
    req.timeseries
        .iter()
        .enumerate()
        .map(|(i, ts)| {
            let mut names = std::collections::HashSet::with_capacity(ts.labels.len());
            for l in &ts.labels {
                let ok = if l.name == crate::model::METRIC_NAME {
                    crate::model::is_valid_metric_name(&l.value)
                } else {
                    crate::model::is_valid_label_name(&l.name)
                };
                if !ok {
                    return Err(RemoteWriteError::Invalid(format!(
                        "timeseries[{i}]: invalid label {}={:?}: names match [a-zA-Z_][a-zA-Z0-9_]*, metric names also allow ':'",
                        l.name, l.value
                    )));
                }
                if !names.insert(l.name.as_str()) {
                    return Err(RemoteWriteError::Invalid(format!(
                        "timeseries[{i}]: label {:?} appears twice: send each label once",
                        l.name
                    )));
                }
            }
            let labels = Labels::from_pairs(ts.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())));
            if labels.get(crate::model::METRIC_NAME).is_none() {
                return Err(RemoteWriteError::Invalid(format!(
                    "timeseries[{i}] {labels} has no __name__ label: every series needs a metric name"
                )));
            }
            Ok(labels)
        })
        .collect()
}

/// Appends an accepted request in one batch. Blocking (storage commit).
pub fn write(
    storage: &dyn Storage,
    req: &WriteRequest,
    metrics: &PushMetrics,
) -> Result<WriteSummary, RemoteWriteError> {
    let result = write_inner(storage, req, metrics);
    count(metrics, result.as_ref().err());
    result
}

/// Counts a request refused before it reached [`write`].
pub fn count_rejected(metrics: &PushMetrics, err: &RemoteWriteError) {
    count(metrics, Some(err));
}

fn count(metrics: &PushMetrics, err: Option<&RemoteWriteError>) {
    match err {
        None => metrics
            .accepted
            .get_or_create(&vec![("api", API.to_string())])
            .inc(),
        Some(e) => metrics
            .rejected
            .get_or_create(&vec![
                ("api", API.to_string()),
                ("reason", e.reason().to_string()),
            ])
            .inc(),
    };
}

fn write_inner(
    storage: &dyn Storage,
    req: &WriteRequest,
    metrics: &PushMetrics,
) -> Result<WriteSummary, RemoteWriteError> {
    let labels = series_labels(req)?;
    let mut sum = WriteSummary {
        series: labels.len(),
        ..WriteSummary::default()
    };
    let mut app = storage.appender();
    for (ts, labels) in req.timeseries.iter().zip(&labels) {
        let mut series_ref = None;
        for s in &ts.samples {
            let t: Timestamp = s.timestamp;
            let r = match series_ref {
                Some(r) => app.append_ref(r, t, s.value).map(|()| r),
                None => app.append(labels, t, s.value),
            };
            match r {
                Ok(r) => {
                    series_ref = Some(r);
                    sum.appended += 1;
                }
                Err(AppendError::OutOfOrder) => sum.out_of_order += 1,
                Err(AppendError::Duplicate) => sum.duplicate += 1,
                Err(AppendError::UnknownRef) => match app.append(labels, t, s.value) {
                    Ok(r) => {
                        series_ref = Some(r);
                        sum.appended += 1;
                    }
                    Err(_) => sum.out_of_order += 1,
                },
            }
        }
    }
    if let Err(e) = app.commit() {
        tracing::error!(error = %e, "appending remote-write samples failed");
        return Err(RemoteWriteError::Storage(e.to_string()));
    }
    let api = vec![("api", API.to_string())];
    metrics.samples.get_or_create(&api).inc_by(sum.appended);
    for (reason, n) in [
        ("out_of_order", sum.out_of_order),
        ("duplicate", sum.duplicate),
    ] {
        if n > 0 {
            metrics
                .samples_rejected
                .get_or_create(&vec![
                    ("api", API.to_string()),
                    ("reason", reason.to_string()),
                ])
                .inc_by(n);
        }
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::mem::MemStorage;
    use prost::Message as _;

    /// One series of a test request: its labels and its samples.
    type TestSeries<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

    fn request(series: &[TestSeries<'_>]) -> Vec<u8> {
        let req = WriteRequest {
            timeseries: series
                .iter()
                .map(|(labels, samples)| TimeSeries {
                    labels: labels
                        .iter()
                        .map(|(n, v)| Label {
                            name: n.to_string(),
                            value: v.to_string(),
                        })
                        .collect(),
                    samples: samples
                        .iter()
                        .map(|&(timestamp, value)| Sample { value, timestamp })
                        .collect(),
                })
                .collect(),
        };
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap()
    }

    fn stored(st: &MemStorage, name: &str) -> Vec<(i64, f64)> {
        use crate::storage::Queryable;
        let m = crate::model::Matcher::new(
            crate::model::MatchOp::Equal,
            crate::model::METRIC_NAME,
            name,
        )
        .unwrap();
        let mut out = Vec::new();
        for s in st.select(&[m], i64::MIN, i64::MAX).unwrap() {
            out.extend(s.samples.map(|s| (s.t, s.v)));
        }
        out
    }

    #[test]
    fn hand_built_request_round_trips_into_storage() {
        let st = MemStorage::new();
        let body = request(&[
            (
                &[("__name__", "up"), ("job", "node")],
                &[(1000, 1.0), (2000, 0.0)],
            ),
            (&[("__name__", "temp"), ("room", "a")], &[(1500, 21.5)]),
        ]);
        let limits = PushConfig::default();
        let req = decode(&body, Some("snappy"), &limits).unwrap();
        let m = PushMetrics::default();
        let sum = write(&st, &req, &m).unwrap();
        assert_eq!((sum.series, sum.appended), (2, 3));
        assert_eq!(stored(&st, "up"), vec![(1000, 1.0), (2000, 0.0)]);
        assert_eq!(stored(&st, "temp"), vec![(1500, 21.5)]);
        // Older and same-timestamp samples with other values are counted,
        // and the request still succeeds (a sender retrying a partly
        // applied batch must not be stuck); the stored samples stay.
        let body = request(&[(
            &[("__name__", "up"), ("job", "node")],
            &[(1000, 5.0), (2000, 7.0), (3000, 1.0)],
        )]);
        let req = decode(&body, None, &limits).unwrap();
        let sum = write(&st, &req, &m).unwrap();
        assert_eq!((sum.appended, sum.out_of_order, sum.duplicate), (1, 1, 1));
        assert_eq!(
            stored(&st, "up"),
            vec![(1000, 1.0), (2000, 0.0), (3000, 1.0)]
        );
    }

    #[test]
    fn bad_input_is_refused_with_a_reason_and_stores_nothing() {
        let limits = PushConfig::default();
        let e = decode(b"not snappy at all", None, &limits).unwrap_err();
        assert!(e.to_string().starts_with("snappy: "), "{e}");
        let junk = snap::raw::Encoder::new()
            .compress_vec(&[0xff, 0xff, 0xff])
            .unwrap();
        let e = decode(&junk, None, &limits).unwrap_err();
        assert!(e.to_string().starts_with("protobuf: "), "{e}");
        let body = request(&[(&[("__name__", "up")], &[(1, 1.0)])]);
        let e = decode(&body, Some("gzip"), &limits).unwrap_err();
        assert_eq!(e.reason(), "unsupported_media_type");

        let small = PushConfig {
            max_samples_per_request: 1,
            ..PushConfig::default()
        };
        let body = request(&[(&[("__name__", "up")], &[(1, 1.0), (2, 1.0)])]);
        let e = decode(&body, None, &small).unwrap_err();
        assert!(e.to_string().contains("max_samples_per_request (1)"), "{e}");
        let tiny = PushConfig {
            max_request_bytes: 4,
            ..PushConfig::default()
        };
        assert_eq!(
            decode(&body, None, &tiny).unwrap_err().reason(),
            "too_large"
        );

        // One bad series refuses the whole request: the good one is not
        // stored either.
        let st = MemStorage::new();
        let body = request(&[
            (&[("__name__", "good")], &[(1, 1.0)]),
            (&[("__name__", "bad"), ("0x", "v")], &[(1, 1.0)]),
        ]);
        let req = decode(&body, None, &limits).unwrap();
        let e = write(&st, &req, &PushMetrics::default()).unwrap_err();
        assert!(
            e.to_string().contains("timeseries[1]: invalid label 0x"),
            "{e}"
        );
        assert!(stored(&st, "good").is_empty());
        let body = request(&[(&[("job", "x")], &[(1, 1.0)])]);
        let req = decode(&body, None, &limits).unwrap();
        let e = write(&st, &req, &PushMetrics::default()).unwrap_err();
        assert!(e.to_string().contains("no __name__"), "{e}");
    }
}
