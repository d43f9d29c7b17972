//! Values a query returns, and the internal step-indexed values the
//! evaluator passes between nodes.
//!
//! The public types ([`Value`] and friends) are what the HTTP API formats;
//! they carry final labels (the metric name already removed where PromQL
//! removes it). The internal [`Series`] still carries a name that is only
//! marked for removal (`drop_name`), because Prometheus removes it at the
//! very end of evaluation ("delayed name removal").

use std::sync::Arc;

use crate::model::{FloatHistogram, Labels, Sample, Timestamp};

/// A scalar result at its evaluation time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scalar {
    pub t: Timestamp,
    pub v: f64,
}

/// One element of an instant vector result.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSample {
    pub labels: Labels,
    /// The evaluation time (not the time of the underlying raw sample).
    pub t: Timestamp,
    /// The float value; 0 when the sample is a native histogram.
    pub v: f64,
    /// A native histogram value instead of a float. Only a plain selector
    /// query over test data (rule unit tests, PromQL scripts) yields one;
    /// watchpost ingests float samples only.
    pub h: Option<Arc<FloatHistogram>>,
}

/// One series of a matrix result: a range query's steps, or the raw samples
/// of a range vector selected by an instant query.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// The result value of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(Scalar),
    String {
        t: Timestamp,
        v: String,
    },
    /// In evaluation order (the order `sort`, `topk` and friends produce).
    Vector(Vec<VectorSample>),
    /// Sorted by labels.
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// The Prometheus API `resultType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// A query result with the annotations Prometheus returns next to it, each
/// rendered like Prometheus does (`PromQL warning: ... (1:5)`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub value: Value,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

/// An instant-vector series over the evaluation steps: `points[i].t` are
/// step timestamps (ascending, each at most once). For a range vector the
/// points are raw samples instead.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub labels: Labels,
    /// The metric name (and `__type__`/`__unit__`) is to be removed at the
    /// end of evaluation.
    pub drop_name: bool,
    pub points: Vec<Sample>,
}

impl Series {
    pub fn new(labels: Labels, drop_name: bool, points: Vec<Sample>) -> Self {
        Series {
            labels,
            drop_name,
            points,
        }
    }
}

/// A value during evaluation, for all steps of the current grid at once.
#[derive(Debug)]
pub(crate) enum Val {
    /// One value per step; scalars exist at every step.
    Scalar(Vec<f64>),
    Str(String),
    Vector(Vec<Series>),
    /// A range vector (only as the result of an instant query).
    Matrix(Vec<Series>),
}

impl Val {
    /// Samples this value holds, for the memory limit.
    pub fn samples(&self) -> usize {
        match self {
            Val::Scalar(v) => v.len(),
            Val::Str(_) => 0,
            Val::Vector(s) | Val::Matrix(s) => s.iter().map(|s| s.points.len()).sum(),
        }
    }
}
