//! The Prometheus protobuf exposition format as a push body:
//! length-delimited `io.prometheus.client.MetricFamily` messages, which Go's
//! client_golang `push` package sends by default. Decoded into flat samples
//! (a histogram becomes its `_bucket`, `_sum` and `_count` series, as
//! Prometheus stores it) for the Pushgateway; the message structs are
//! hand-written for prost's derive, like the remote-write ones. Native
//! histogram fields and exemplars are not declared, so prost skips them.

use crate::model::{is_valid_label_name, is_valid_metric_name};

/// `io.prometheus.client.MetricFamily`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricFamily {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub help: String,
    #[prost(int32, tag = "3")]
    pub r#type: i32,
    #[prost(message, repeated, tag = "4")]
    pub metric: Vec<Metric>,
}

/// `io.prometheus.client.Metric`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    #[prost(message, optional, tag = "2")]
    pub gauge: Option<Value>,
    #[prost(message, optional, tag = "3")]
    pub counter: Option<Value>,
    #[prost(message, optional, tag = "4")]
    pub summary: Option<Summary>,
    #[prost(message, optional, tag = "5")]
    pub untyped: Option<Value>,
    #[prost(message, optional, tag = "7")]
    pub histogram: Option<Histogram>,
    #[prost(int64, optional, tag = "6")]
    pub timestamp_ms: Option<i64>,
}

/// `io.prometheus.client.LabelPair` has the wire shape of remote write's
/// `Label` (name in field 1, value in field 2).
pub use super::remote_write::Label as LabelPair;

/// `Gauge`, `Counter` and `Untyped`: a value in field 1.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(double, tag = "1")]
    pub value: f64,
}

/// `io.prometheus.client.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(uint64, tag = "1")]
    pub sample_count: u64,
    #[prost(double, tag = "2")]
    pub sample_sum: f64,
    #[prost(message, repeated, tag = "3")]
    pub quantile: Vec<Quantile>,
}

/// `io.prometheus.client.Quantile`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Quantile {
    #[prost(double, tag = "1")]
    pub quantile: f64,
    #[prost(double, tag = "2")]
    pub value: f64,
}

/// `io.prometheus.client.Histogram` (classic buckets only).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    #[prost(uint64, tag = "1")]
    pub sample_count: u64,
    #[prost(double, optional, tag = "4")]
    pub sample_count_float: Option<f64>,
    #[prost(double, tag = "2")]
    pub sample_sum: f64,
    #[prost(message, repeated, tag = "3")]
    pub bucket: Vec<Bucket>,
}

/// `io.prometheus.client.Bucket`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Bucket {
    #[prost(uint64, tag = "1")]
    pub cumulative_count: u64,
    #[prost(double, optional, tag = "4")]
    pub cumulative_count_float: Option<f64>,
    #[prost(double, tag = "2")]
    pub upper_bound: f64,
}

/// One series of a family: its metric name, its labels (without the
/// name) and its value.
pub type FlatSample = (String, Vec<(String, String)>, f64);

/// One family, flattened.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatFamily {
    pub name: String,
    /// `counter`, `gauge`, `summary`, `untyped`, `histogram` or
    /// `gaugehistogram`, as a `# TYPE` line writes it.
    pub kind: &'static str,
    pub help: String,
    pub samples: Vec<FlatSample>,
    /// Some metric carried a timestamp.
    pub timestamped: bool,
}

/// Decodes a body of length-delimited `MetricFamily` messages. Errors name
/// the family (by position and name) and what is wrong.
pub fn decode_delimited(mut body: &[u8]) -> Result<Vec<FlatFamily>, String> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let i = out.len();
        let mf = <MetricFamily as prost::Message>::decode_length_delimited(&mut body)
            .map_err(|e| format!("metric family #{}: {e}", i + 1))?;
        out.push(flatten(mf).map_err(|e| format!("metric family #{}: {e}", i + 1))?);
    }
    Ok(out)
}

fn flatten(mf: MetricFamily) -> Result<FlatFamily, String> {
    let name = mf.name;
    if !is_valid_metric_name(&name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let kind = match mf.r#type {
        0 => "counter",
        1 => "gauge",
        2 => "summary",
        3 => "untyped",
        4 => "histogram",
        5 => "gaugehistogram",
        t => return Err(format!("{name:?}: unknown metric type {t}")),
    };
    let mut samples = Vec::new();
    let mut timestamped = false;
    for m in mf.metric {
        timestamped |= m.timestamp_ms.is_some();
        let mut labels = Vec::with_capacity(m.label.len() + 1);
        for l in m.label {
            if !is_valid_label_name(&l.name) {
                return Err(format!("{name:?}: invalid label name {:?}", l.name));
            }
            if labels.iter().any(|(n, _): &(String, String)| *n == l.name) {
                return Err(format!("{name:?}: label {:?} appears twice", l.name));
            }
            labels.push((l.name, l.value));
        }
        let with = |extra: (&str, String)| {
            let mut l = labels.clone();
            l.push((extra.0.to_string(), extra.1));
            l
        };
        let missing = || format!("{name:?}: a {kind} metric without its {kind} value");
        match kind {
            "counter" => {
                let v = m.counter.ok_or_else(missing)?;
                samples.push((name.clone(), labels, v.value));
            }
            "gauge" => {
                let v = m.gauge.ok_or_else(missing)?;
                samples.push((name.clone(), labels, v.value));
            }
            "untyped" => {
                let v = m.untyped.ok_or_else(missing)?;
                samples.push((name.clone(), labels, v.value));
            }
            "summary" => {
                let s = m.summary.ok_or_else(missing)?;
                for q in &s.quantile {
                    samples.push((
                        name.clone(),
                        with(("quantile", format_float(q.quantile))),
                        q.value,
                    ));
                }
                samples.push((format!("{name}_sum"), labels.clone(), s.sample_sum));
                samples.push((format!("{name}_count"), labels, s.sample_count as f64));
            }
            _ => {
                let h = m.histogram.ok_or_else(missing)?;
                let (bucket, sum, count) = if kind == "gaugehistogram" {
                    ("_bucket", "_gsum", "_gcount")
                } else {
                    ("_bucket", "_sum", "_count")
                };
                let total = h.sample_count_float.unwrap_or(h.sample_count as f64);
                let mut has_inf = false;
                for b in &h.bucket {
                    has_inf |= b.upper_bound == f64::INFINITY;
                    let c = b
                        .cumulative_count_float
                        .unwrap_or(b.cumulative_count as f64);
                    samples.push((
                        format!("{name}{bucket}"),
                        with(("le", format_float(b.upper_bound))),
                        c,
                    ));
                }
                // The +Inf bucket is implicit in the protobuf format.
                if !has_inf {
                    samples.push((
                        format!("{name}{bucket}"),
                        with(("le", "+Inf".to_string())),
                        total,
                    ));
                }
                samples.push((format!("{name}{sum}"), labels.clone(), h.sample_sum));
                samples.push((format!("{name}{count}"), labels, total));
            }
        }
    }
    Ok(FlatFamily {
        name,
        kind,
        help: mf.help,
        samples,
        timestamped,
    })
}

/// A bucket bound or quantile as Prometheus writes it when it reads the
/// protobuf format: `+Inf`, and integers with a `.0`.
fn format_float(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else if v.is_nan() {
        "NaN".to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn metric(labels: &[(&str, &str)]) -> Metric {
        Metric {
            label: labels
                .iter()
                .map(|(n, v)| LabelPair {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            ..Metric::default()
        }
    }

    #[test]
    fn families_flatten_as_prometheus_stores_them() {
        let mut body = Vec::new();
        let gauge = MetricFamily {
            name: "temp".into(),
            help: "Temperature.".into(),
            r#type: 1,
            metric: vec![Metric {
                gauge: Some(Value { value: 21.5 }),
                ..metric(&[("room", "a")])
            }],
        };
        let hist = MetricFamily {
            name: "lat".into(),
            help: String::new(),
            r#type: 4,
            metric: vec![Metric {
                histogram: Some(Histogram {
                    sample_count: 3,
                    sample_count_float: None,
                    sample_sum: 1.5,
                    bucket: vec![Bucket {
                        cumulative_count: 2,
                        cumulative_count_float: None,
                        upper_bound: 1.0,
                    }],
                }),
                ..metric(&[])
            }],
        };
        gauge.encode_length_delimited(&mut body).unwrap();
        hist.encode_length_delimited(&mut body).unwrap();
        let fams = decode_delimited(&body).unwrap();
        assert_eq!(fams.len(), 2);
        assert_eq!(
            (fams[0].kind, fams[0].help.as_str()),
            ("gauge", "Temperature.")
        );
        assert_eq!(
            fams[0].samples,
            vec![(
                "temp".to_string(),
                vec![("room".to_string(), "a".to_string())],
                21.5
            )]
        );
        let names: Vec<(String, f64)> = fams[1]
            .samples
            .iter()
            .map(|(n, l, v)| {
                let le = l.iter().find(|(k, _)| k == "le").map(|(_, v)| v.as_str());
                (
                    format!(
                        "{n}{}",
                        le.map(|l| format!("{{le={l}}}")).unwrap_or_default()
                    ),
                    *v,
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("lat_bucket{le=1.0}".to_string(), 2.0),
                ("lat_bucket{le=+Inf}".to_string(), 3.0),
                ("lat_sum".to_string(), 1.5),
                ("lat_count".to_string(), 3.0),
            ]
        );
        assert!(!fams[1].timestamped);
    }

    #[test]
    fn bad_messages_are_refused_with_the_family() {
        let e = decode_delimited(&[0x05, 0x0a]).unwrap_err();
        assert!(e.starts_with("metric family #1: "), "{e}");
        let mut body = Vec::new();
        MetricFamily {
            name: "x".into(),
            help: String::new(),
            r#type: 1,
            metric: vec![metric(&[("0bad", "v")])],
        }
        .encode_length_delimited(&mut body)
        .unwrap();
        let e = decode_delimited(&body).unwrap_err();
        assert!(e.contains("invalid label name \"0bad\""), "{e}");
        let mut body = Vec::new();
        MetricFamily {
            name: "x".into(),
            help: String::new(),
            r#type: 1,
            metric: vec![metric(&[])],
        }
        .encode_length_delimited(&mut body)
        .unwrap();
        let e = decode_delimited(&body).unwrap_err();
        assert!(e.contains("a gauge metric without its gauge value"), "{e}");
    }
}
