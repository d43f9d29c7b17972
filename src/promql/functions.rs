//! PromQL functions over floats: instant-vector functions (math, clamping,
//! dates, labels, sorting), range-vector functions (`rate` and friends,
//! `*_over_time`, regression and smoothing), the scalar helpers, and
//! `info()`, which joins series with the data labels of info metrics.
//!
//! Range-vector functions get, per series, every sample the whole grid
//! needs and slide a window `(end - range, end]` across it with two
//! pointers, so each sample is read once per series rather than once per
//! step. Functions that remove the metric name mark it (`drop_name`); the
//! name is removed at the end of evaluation.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike};
use promql_parser::label::{MatchOp as AstMatchOp, Matcher as AstMatcher, Matchers};
use promql_parser::parser::{AtModifier, Call, Expr, Offset, VectorSelector};

use super::EvalError;
use super::aggregate::{kahan_inc, quantile};
use super::eval::{
    Evaluator, Grid, RangeSource, SlidingWindow, duplicate_labelset, extended, offset_ms,
};
use super::extensions::SelectorMode;
use super::histogram;
use super::labels::prom_string;
use super::value::{Series, Val};
use crate::model::{Label, Labels, METRIC_NAME, Matcher, Sample};

/// `expr` without surrounding parentheses.
pub(crate) fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

fn arg(call: &Call, i: usize) -> Result<&Expr, EvalError> {
    call.args.args.get(i).map(|a| unparen(a)).ok_or_else(|| {
        EvalError::Execution(format!(
            "missing argument {} in call to function {}",
            i + 1,
            call.func.name
        ))
    })
}

fn string_arg(call: &Call, i: usize) -> Result<String, EvalError> {
    match arg(call, i)? {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        _ => Err(EvalError::Execution(format!(
            "argument {} of {} must be a string literal",
            i + 1,
            call.func.name
        ))),
    }
}

/// Go's `math.Max`: NaN wins, +0 beats -0.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b && a == 0.0 {
        if a.is_sign_negative() { b } else { a }
    } else if a > b {
        a
    } else {
        b
    }
}

/// Go's `math.Min`: NaN wins, -0 beats +0.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b && a == 0.0 {
        if a.is_sign_negative() { a } else { b }
    } else if a < b {
        a
    } else {
        b
    }
}

pub(crate) fn eval(
    ev: &mut Evaluator<'_>,
    e: &Expr,
    call: &Call,
    g: Grid,
) -> Result<Val, EvalError> {
    let name = call.func.name;
    if let Some(f) = RangeFn::from_name(name) {
        return range_function(ev, call, f, g);
    }
    if let Some(f) = math_fn(name) {
        let v = ev.eval_vector(arg(call, 0)?, g)?;
        return map_values(ev, v, f);
    }
    match name {
        "time" => scalar(ev, (0..g.len()).map(|i| g.ts(i) as f64 / 1000.0).collect()),
        "pi" => scalar(ev, vec![std::f64::consts::PI; g.len()]),
        "step" => scalar(ev, vec![ev.query_step.max(0) as f64 / 1000.0; g.len()]),
        "range" => {
            let r = (ev.query_end - ev.query_start) as f64 / 1000.0;
            scalar(ev, vec![r; g.len()])
        }
        "start" => scalar(ev, vec![ev.query_start as f64 / 1000.0; g.len()]),
        "end" => scalar(ev, vec![ev.query_end as f64 / 1000.0; g.len()]),
        "min_of" | "max_of" => {
            let a = ev.eval_scalar(arg(call, 0)?, g)?;
            let b = ev.eval_scalar(arg(call, 1)?, g)?;
            let f = if name == "min_of" { go_min } else { go_max };
            scalar(ev, a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect())
        }
        "vector" => {
            let s = ev.eval_scalar(arg(call, 0)?, g)?;
            let points = s
                .iter()
                .enumerate()
                .map(|(i, &v)| Sample { t: g.ts(i), v })
                .collect();
            Ok(Val::Vector(vec![Series::new(
                Labels::empty(),
                false,
                points,
            )]))
        }
        "scalar" => {
            let v = ev.eval_vector(arg(call, 0)?, g)?;
            let mut out = vec![f64::NAN; g.len()];
            let mut count = vec![0u32; g.len()];
            for s in &v {
                for p in &s.points {
                    let i = g.index(p.t);
                    count[i] += 1;
                    out[i] = if count[i] == 1 { p.v } else { f64::NAN };
                }
            }
            let inputs: usize = v.iter().map(|s| s.points.len()).sum();
            let val = Val::Scalar(out);
            ev.settle(inputs, &val)?;
            Ok(val)
        }
        "round" => {
            let v = ev.eval_vector(arg(call, 0)?, g)?;
            let to = match call.args.args.len() {
                1 => vec![1.0; g.len()],
                _ => ev.eval_scalar(arg(call, 1)?, g)?,
            };
            map_values_at(ev, v, g, |x, i| {
                let inv = 1.0 / to[i];
                Some((x * inv + 0.5).floor() / inv)
            })
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let v = ev.eval_vector(arg(call, 0)?, g)?;
            let (lo, hi) = match name {
                "clamp" => (
                    ev.eval_scalar(arg(call, 1)?, g)?,
                    ev.eval_scalar(arg(call, 2)?, g)?,
                ),
                "clamp_min" => (
                    ev.eval_scalar(arg(call, 1)?, g)?,
                    vec![f64::INFINITY; g.len()],
                ),
                _ => (
                    vec![f64::NEG_INFINITY; g.len()],
                    ev.eval_scalar(arg(call, 1)?, g)?,
                ),
            };
            map_values_at(ev, v, g, |x, i| {
                (hi[i] >= lo[i]).then(|| go_max(lo[i], go_min(hi[i], x)))
            })
        }
        "timestamp" => {
            let a = arg(call, 0)?;
            if let Expr::VectorSelector(vs) = a {
                return Ok(Val::Vector(ev.vector_selector_timestamps(vs, g)?));
            }
            let v = ev.eval_vector(a, g)?;
            map_values_at(ev, v, g, |_, i| Some(g.ts(i) as f64 / 1000.0))
        }
        "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour" | "minute"
        | "month" | "year" => date_function(ev, call, name, g),
        "absent" => {
            let a = arg(call, 0)?;
            let v = ev.eval_vector(a, g)?;
            let mut present = vec![false; g.len()];
            for s in &v {
                for p in &s.points {
                    present[g.index(p.t)] = true;
                }
            }
            let inputs: usize = v.iter().map(|s| s.points.len()).sum();
            let val = absent_series(absent_labels(a), &present, g);
            ev.settle(inputs, &val)?;
            Ok(val)
        }
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => {
            let mut v = ev.eval_vector(arg(call, 0)?, g)?;
            if ev.range_query {
                let pos = ev.pos(e);
                ev.annos.sort_in_range_query(pos);
                return Ok(Val::Vector(v));
            }
            match name {
                "sort" => v.sort_by(|a, b| by_value(a, b, false)),
                "sort_desc" => v.sort_by(|a, b| by_value(a, b, true)),
                _ => {
                    let mut names = Vec::new();
                    for i in 1..call.args.args.len() {
                        names.push(string_arg(call, i)?);
                    }
                    let desc = name == "sort_by_label_desc";
                    v.sort_by(|a, b| {
                        let o = by_labels(&a.labels, &b.labels, &names);
                        if desc { o.reverse() } else { o }
                    });
                }
            }
            Ok(Val::Vector(v))
        }
        "label_replace" => label_replace(ev, call, g),
        "label_join" => label_join(ev, call, g),
        "info" => info(ev, call, g),
        "histogram_quantile" => histogram::histogram_quantile(ev, call, g),
        "histogram_quantiles" => histogram::histogram_quantiles(ev, call, g),
        "histogram_fraction" => histogram::histogram_fraction(ev, call, g),
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            // These read native histograms only, which this storage does not
            // hold: float samples are ignored, as in Prometheus.
            let v = ev.eval_vector(arg(call, 0)?, g)?;
            let inputs: usize = v.iter().map(|s| s.points.len()).sum();
            ev.release(inputs);
            Ok(Val::Vector(Vec::new()))
        }
        other => Err(EvalError::Execution(format!(
            "function {other}() is not supported by this engine"
        ))),
    }
}

fn scalar(ev: &mut Evaluator<'_>, v: Vec<f64>) -> Result<Val, EvalError> {
    let val = Val::Scalar(v);
    ev.charge(val.samples())?;
    Ok(val)
}

fn math_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "sgn" => |v| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

fn map_values(ev: &mut Evaluator<'_>, v: Vec<Series>, f: fn(f64) -> f64) -> Result<Val, EvalError> {
    let mut v = v;
    for s in &mut v {
        s.drop_name = true;
        s.points.iter_mut().for_each(|p| p.v = f(p.v));
    }
    let _ = ev;
    Ok(Val::Vector(v))
}

/// Maps each point with access to its step index; `None` drops the point.
/// The metric name is marked for removal.
fn map_values_at(
    ev: &mut Evaluator<'_>,
    v: Vec<Series>,
    g: Grid,
    mut f: impl FnMut(f64, usize) -> Option<f64>,
) -> Result<Val, EvalError> {
    let before: usize = v.iter().map(|s| s.points.len()).sum();
    let mut v = v;
    for s in &mut v {
        s.drop_name = true;
        s.points.retain_mut(|p| match f(p.v, g.index(p.t)) {
            Some(x) => {
                p.v = x;
                true
            }
            None => false,
        });
    }
    v.retain(|s| !s.points.is_empty());
    let val = Val::Vector(v);
    ev.settle(before, &val)?;
    Ok(val)
}

fn by_value(a: &Series, b: &Series, desc: bool) -> std::cmp::Ordering {
    let (x, y) = (
        a.points.first().map_or(f64::NAN, |p| p.v),
        b.points.first().map_or(f64::NAN, |p| p.v),
    );
    // NaN sorts last in both directions.
    match (x.is_nan(), y.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => {
            let o = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
            if desc { o.reverse() } else { o }
        }
    }
}

fn by_labels(a: &Labels, b: &Labels, names: &[String]) -> std::cmp::Ordering {
    for n in names {
        let (x, y) = (a.get_or_empty(n), b.get_or_empty(n));
        if x == y {
            continue;
        }
        return if natural_less(x, y) {
            std::cmp::Ordering::Less
        } else {
            std::cmp::Ordering::Greater
        };
    }
    a.cmp(b)
}

/// Natural ordering: runs of digits compare as numbers, other runs as
/// strings (`node-2` before `node-10`).
fn natural_less(a: &str, b: &str) -> bool {
    fn chunks(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[i - 1].is_ascii_digit() {
                out.push(&s[start..i]);
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (i, x) in ca.iter().enumerate() {
        let Some(y) = cb.get(i) else { return false };
        let nums = (x.parse::<i64>(), y.parse::<i64>());
        if let (Ok(nx), Ok(ny)) = nums {
            if nx == ny {
                if i == ca.len() - 1 {
                    return true;
                } else if i == cb.len() - 1 {
                    return false;
                }
                continue;
            }
            return nx < ny;
        }
        if x == y {
            if i == ca.len() - 1 {
                return true;
            } else if i == cb.len() - 1 {
                return false;
            }
            continue;
        }
        return x < y;
    }
    false
}

fn date_function(
    ev: &mut Evaluator<'_>,
    call: &Call,
    name: &str,
    g: Grid,
) -> Result<Val, EvalError> {
    let f = |secs: f64| -> f64 {
        // Go converts with int64(); NaN and out-of-range values have no date.
        if !secs.is_finite() {
            return f64::NAN;
        }
        let Some(t) = DateTime::from_timestamp(secs as i64, 0) else {
            return f64::NAN;
        };
        f64::from(match name {
            "day_of_month" => t.day(),
            "day_of_week" => t.weekday().num_days_from_sunday(),
            "day_of_year" => t.ordinal(),
            "hour" => t.hour(),
            "minute" => t.minute(),
            "month" => t.month(),
            "year" => return f64::from(t.year()),
            _ => days_in_month(t.year(), t.month()),
        })
    };
    if call.args.args.is_empty() {
        let points = (0..g.len())
            .map(|i| Sample {
                t: g.ts(i),
                v: f(g.ts(i).div_euclid(1000) as f64),
            })
            .collect();
        let val = Val::Vector(vec![Series::new(Labels::empty(), false, points)]);
        ev.charge(val.samples())?;
        return Ok(val);
    }
    let v = ev.eval_vector(arg(call, 0)?, g)?;
    map_values_at(ev, v, g, |x, _| Some(f(x)))
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

/// Labels `absent()` gives its result: the selector's equality matchers
/// (a label matched more than once, or not by equality, is left out).
fn absent_labels(e: &Expr) -> Labels {
    let vs = match e {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut out: Vec<(String, String)> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        let equal = matches!(m.op, promql_parser::label::MatchOp::Equal);
        if equal && !seen.contains(&m.name.as_str()) {
            out.retain(|(n, _)| *n != m.name);
            out.push((m.name.clone(), m.value.clone()));
            seen.push(&m.name);
        } else {
            out.retain(|(n, _)| *n != m.name);
        }
    }
    Labels::from_pairs(out)
}

fn absent_series(labels: Labels, present: &[bool], g: Grid) -> Val {
    let points: Vec<Sample> = present
        .iter()
        .enumerate()
        .filter(|(_, p)| !**p)
        .map(|(i, _)| Sample { t: g.ts(i), v: 1.0 })
        .collect();
    if points.is_empty() {
        Val::Vector(Vec::new())
    } else {
        Val::Vector(vec![Series::new(labels, true, points)])
    }
}

/// Merges series that ended up with the same labels; an overlap in time is
/// the duplicate-labelset error.
fn merge_same_labels(v: Vec<Series>) -> Result<Vec<Series>, EvalError> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<Series> = Vec::with_capacity(v.len());
    for s in v {
        match index.get(&s.labels) {
            Some(&i) => {
                let target = &mut out[i];
                target.points.extend(s.points);
                target.points.sort_by_key(|p| p.t);
                if target.points.windows(2).any(|w| w[0].t == w[1].t) {
                    return Err(duplicate_labelset());
                }
            }
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

fn label_replace(ev: &mut Evaluator<'_>, call: &Call, g: Grid) -> Result<Val, EvalError> {
    let dst = string_arg(call, 1)?;
    let repl = string_arg(call, 2)?;
    let src = string_arg(call, 3)?;
    let re_text = string_arg(call, 4)?;
    let re = regex::Regex::new(&format!("^(?s:{re_text})$")).map_err(|_| {
        EvalError::Execution(format!(
            "invalid regular expression in label_replace(): {re_text}"
        ))
    })?;
    if dst.is_empty() {
        return Err(EvalError::Execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut v = ev.eval_vector(arg(call, 0)?, g)?;
    for s in &mut v {
        let value = s.labels.get_or_empty(&src);
        if let Some(caps) = re.captures(value) {
            let mut res = String::new();
            caps.expand(&repl, &mut res);
            let mut b = s.labels.builder();
            b.set(&dst, res);
            s.labels = b.build();
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
    }
    Ok(Val::Vector(merge_same_labels(v)?))
}

fn label_join(ev: &mut Evaluator<'_>, call: &Call, g: Grid) -> Result<Val, EvalError> {
    let dst = string_arg(call, 1)?;
    let sep = string_arg(call, 2)?;
    let mut srcs = Vec::new();
    for i in 3..call.args.args.len() {
        let s = string_arg(call, i)?;
        if s.is_empty() {
            return Err(EvalError::Execution(format!(
                "invalid source label name in label_join(): {s}"
            )));
        }
        srcs.push(s);
    }
    if dst.is_empty() {
        return Err(EvalError::Execution(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let mut v = ev.eval_vector(arg(call, 0)?, g)?;
    for s in &mut v {
        let joined = srcs
            .iter()
            .map(|n| s.labels.get_or_empty(n))
            .collect::<Vec<_>>()
            .join(&sep);
        let mut b = s.labels.builder();
        b.set(&dst, joined);
        s.labels = b.build();
        if dst == METRIC_NAME {
            s.drop_name = false;
        }
    }
    Ok(Val::Vector(merge_same_labels(v)?))
}

/// Functions taking a range vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeFn {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Deriv,
    PredictLinear,
    DoubleExpSmoothing,
    Resets,
    Changes,
    Avg,
    Sum,
    Count,
    Min,
    Max,
    Last,
    First,
    TsFirst,
    TsLast,
    TsMax,
    TsMin,
    Quantile,
    Stddev,
    Stdvar,
    Mad,
    Present,
    Absent,
}

impl RangeFn {
    fn from_name(name: &str) -> Option<RangeFn> {
        Some(match name {
            "rate" => RangeFn::Rate,
            "increase" => RangeFn::Increase,
            "delta" => RangeFn::Delta,
            "irate" => RangeFn::Irate,
            "idelta" => RangeFn::Idelta,
            "deriv" => RangeFn::Deriv,
            "predict_linear" => RangeFn::PredictLinear,
            "double_exponential_smoothing" | "holt_winters" => RangeFn::DoubleExpSmoothing,
            "resets" => RangeFn::Resets,
            "changes" => RangeFn::Changes,
            "avg_over_time" => RangeFn::Avg,
            "sum_over_time" => RangeFn::Sum,
            "count_over_time" => RangeFn::Count,
            "min_over_time" => RangeFn::Min,
            "max_over_time" => RangeFn::Max,
            "last_over_time" => RangeFn::Last,
            "first_over_time" => RangeFn::First,
            "ts_of_first_over_time" => RangeFn::TsFirst,
            "ts_of_last_over_time" => RangeFn::TsLast,
            "ts_of_max_over_time" => RangeFn::TsMax,
            "ts_of_min_over_time" => RangeFn::TsMin,
            "quantile_over_time" => RangeFn::Quantile,
            "stddev_over_time" => RangeFn::Stddev,
            "stdvar_over_time" => RangeFn::Stdvar,
            "mad_over_time" => RangeFn::Mad,
            "present_over_time" => RangeFn::Present,
            "absent_over_time" => RangeFn::Absent,
            _ => return None,
        })
    }

    /// Index of the range-vector argument.
    fn matrix_arg(self) -> usize {
        match self {
            RangeFn::Quantile => 1,
            _ => 0,
        }
    }
}

/// What a window computation sees besides the samples.
struct Window {
    /// The evaluation time of the step.
    ts: i64,
    start: i64,
    end: i64,
    range_secs: f64,
    /// Scalar arguments at this step (in argument order, the range vector
    /// left out).
    params: [f64; 2],
    /// Whether the samples contain a counter reset (only computed for rate
    /// and increase).
    has_reset: bool,
}

fn range_function(
    ev: &mut Evaluator<'_>,
    call: &Call,
    f: RangeFn,
    g: Grid,
) -> Result<Val, EvalError> {
    let n = g.len();
    let mi = f.matrix_arg();
    let marg = arg(call, mi)?;
    let mut params: Vec<Vec<f64>> = Vec::new();
    for i in 0..call.args.args.len() {
        if i != mi {
            params.push(ev.eval_scalar(arg(call, i)?, g)?);
        }
    }
    let src: RangeSource = match marg {
        Expr::MatrixSelector(ms) => {
            let mode = ev.selector_mode(marg);
            ev.matrix_source(ms, g, mode)?
        }
        Expr::Subquery(sq) => ev.subquery_source(sq, g)?,
        _ => {
            return Err(EvalError::Execution(format!(
                "expected a range vector as argument {} of {}",
                mi + 1,
                call.func.name
            )));
        }
    };
    let (range, offset, at) = (src.range, src.offset, src.at);
    // `anchored` / `smoothed` windows reach beyond the range and are
    // computed by their own rules.
    let (mode, (before, after)) = (src.mode, src.margins);
    let window_end = |ts: i64| at.unwrap_or(ts) - offset;
    let range_secs = range as f64 / 1000.0;
    let keeps_name = matches!(f, RangeFn::Last | RangeFn::First);
    let marg_pos = ev.pos(marg);
    let q_pos = if f == RangeFn::Quantile {
        ev.pos(arg(call, 0)?)
    } else {
        0
    };
    let mut out: Vec<Series> = Vec::new();
    let mut present = vec![false; if f == RangeFn::Absent { n } else { 0 }];
    let counter = matches!(f, RangeFn::Rate | RangeFn::Increase);
    // One window buffer, reused series after series.
    let mut spare: Vec<Sample> = Vec::new();
    ev.for_each_range_series(src, |ev, labels, drop, samples| {
        let track_resets = counter && mode.is_none();
        let mut window = SlidingWindow::new(samples, track_resets, std::mem::take(&mut spare));
        let mut points = Vec::new();
        let mut charged = 0;
        for i in 0..n {
            let ts = g.ts(i);
            let end = window_end(ts);
            let start = end - range;
            window.advance(ev, start - before, end + after)?;
            if window.samples().is_empty() {
                continue;
            }
            if f == RangeFn::Absent {
                present[i] = true;
                continue;
            }
            let cx = Window {
                ts,
                start,
                end,
                range_secs,
                params: [
                    params.first().map_or(f64::NAN, |p| p[i]),
                    params.get(1).map_or(f64::NAN, |p| p[i]),
                ],
                has_reset: window.has_reset(),
            };
            if f == RangeFn::Quantile {
                let q = cx.params[0];
                if q.is_nan() || !(0.0..=1.0).contains(&q) {
                    ev.annos.invalid_quantile(q, q_pos);
                }
            }
            let v = match mode {
                None => compute(f, window.samples(), &cx)?,
                Some(m) => compute_extended(f, m, window.samples(), &cx)?,
            };
            if let Some(v) = v {
                points.push(Sample { t: ts, v });
                ev.charge_growth(&mut charged, points.len(), false)?;
            }
        }
        spare = window.finish(ev);
        ev.charge_growth(&mut charged, points.len(), true)?;
        if points.is_empty() {
            return Ok(());
        }
        if counter {
            let name = labels.metric_name();
            if !name.is_empty()
                && !["_total", "_sum", "_count", "_bucket"]
                    .iter()
                    .any(|s| name.ends_with(s))
            {
                ev.annos.possible_non_counter(name, marg_pos);
            }
        }
        out.push(Series::new(labels, drop || !keeps_name, points));
        Ok(())
    })?;
    if f == RangeFn::Absent {
        let val = absent_series(absent_labels(marg), &present, g);
        ev.charge(val.samples())?;
        return Ok(val);
    }
    Ok(Val::Vector(out))
}

fn compute(f: RangeFn, w: &[Sample], cx: &Window) -> Result<Option<f64>, EvalError> {
    let n = w.len();
    Ok(match f {
        RangeFn::Rate => extrapolated_rate(w, cx, true, true),
        RangeFn::Increase => extrapolated_rate(w, cx, true, false),
        RangeFn::Delta => extrapolated_rate(w, cx, false, false),
        RangeFn::Irate | RangeFn::Idelta => {
            if n < 2 {
                return Ok(None);
            }
            let (prev, last) = (w[n - 2], w[n - 1]);
            let interval = last.t - prev.t;
            if interval == 0 {
                return Ok(None);
            }
            let is_rate = f == RangeFn::Irate;
            let mut v = last.v;
            if !is_rate || last.v >= prev.v || last.v.is_nan() || prev.v.is_nan() {
                v = last.v - prev.v;
            }
            if is_rate {
                v /= interval as f64 / 1000.0;
            }
            Some(v)
        }
        RangeFn::Deriv => {
            if n < 2 {
                return Ok(None);
            }
            Some(linear_regression(w, w[0].t).0)
        }
        RangeFn::PredictLinear => {
            if n < 2 {
                return Ok(None);
            }
            let (slope, intercept) = linear_regression(w, cx.ts);
            Some(slope * cx.params[0] + intercept)
        }
        RangeFn::DoubleExpSmoothing => {
            let (sf, tf) = (cx.params[0], cx.params[1]);
            if sf <= 0.0 || sf >= 1.0 || sf.is_nan() {
                return Err(EvalError::Execution(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
                    go_percent_f(sf)
                )));
            }
            if tf <= 0.0 || tf >= 1.0 || tf.is_nan() {
                return Err(EvalError::Execution(format!(
                    "invalid trend factor. Expected: 0 < tf < 1, got: {}",
                    go_percent_f(tf)
                )));
            }
            if n < 2 {
                return Ok(None);
            }
            let mut s0 = 0.0;
            let mut s1 = w[0].v;
            let mut b = w[1].v - w[0].v;
            for (i, p) in w.iter().enumerate().skip(1) {
                let x = sf * p.v;
                if i > 1 {
                    b = tf * (s1 - s0) + (1.0 - tf) * b;
                }
                let y = (1.0 - sf) * (s1 + b);
                s0 = s1;
                s1 = x + y;
            }
            Some(s1)
        }
        RangeFn::Resets => Some(w.windows(2).filter(|p| p[1].v < p[0].v).count() as f64),
        RangeFn::Changes => Some(
            w.windows(2)
                .filter(|p| p[1].v != p[0].v && !(p[1].v.is_nan() && p[0].v.is_nan()))
                .count() as f64,
        ),
        RangeFn::Avg => {
            let (mut sum, mut c, mut mean) = (w[0].v, 0.0, 0.0);
            let mut incremental = false;
            for (i, p) in w.iter().enumerate().skip(1) {
                let count = (i + 1) as f64;
                if !incremental {
                    let (s, cc) = kahan_inc(p.v, sum, c);
                    if !s.is_infinite() {
                        (sum, c) = (s, cc);
                        continue;
                    }
                    incremental = true;
                    mean = sum / (count - 1.0);
                    c /= count - 1.0;
                }
                let q = (count - 1.0) / count;
                (mean, c) = kahan_inc(p.v / count, q * mean, q * c);
            }
            let count = n as f64;
            Some(if incremental {
                mean + c
            } else {
                sum / count + c / count
            })
        }
        RangeFn::Sum => {
            let (mut sum, mut c) = (0.0, 0.0);
            for p in w {
                (sum, c) = kahan_inc(p.v, sum, c);
            }
            Some(if sum.is_infinite() { sum } else { sum + c })
        }
        RangeFn::Count => Some(n as f64),
        RangeFn::Min | RangeFn::Max | RangeFn::TsMin | RangeFn::TsMax => {
            let mut best = w[0];
            for p in w {
                let take = match f {
                    RangeFn::Max => p.v > best.v || best.v.is_nan(),
                    RangeFn::Min => p.v < best.v || best.v.is_nan(),
                    RangeFn::TsMax => p.v >= best.v || best.v.is_nan(),
                    _ => p.v <= best.v || best.v.is_nan(),
                };
                if take {
                    best = *p;
                }
            }
            Some(match f {
                RangeFn::Min | RangeFn::Max => best.v,
                _ => best.t as f64 / 1000.0,
            })
        }
        RangeFn::Last => Some(w[n - 1].v),
        RangeFn::First => Some(w[0].v),
        RangeFn::TsFirst => Some(w[0].t as f64 / 1000.0),
        RangeFn::TsLast => Some(w[n - 1].t as f64 / 1000.0),
        RangeFn::Quantile => {
            let mut vals: Vec<f64> = w.iter().map(|p| p.v).collect();
            Some(quantile(cx.params[0], &mut vals))
        }
        RangeFn::Stddev | RangeFn::Stdvar => {
            let (mut count, mut mean, mut cmean, mut aux, mut caux) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for p in w {
                count += 1.0;
                let delta = p.v - (mean + cmean);
                (mean, cmean) = kahan_inc(delta / count, mean, cmean);
                (aux, caux) = kahan_inc(delta * (p.v - (mean + cmean)), aux, caux);
            }
            let var = (aux + caux) / count;
            Some(if f == RangeFn::Stddev {
                var.sqrt()
            } else {
                var
            })
        }
        RangeFn::Mad => {
            if w.iter().any(|p| p.v.is_nan()) {
                return Ok(Some(f64::NAN));
            }
            let mut vals: Vec<f64> = w.iter().map(|p| p.v).collect();
            let median = quantile(0.5, &mut vals);
            let mut dev: Vec<f64> = w.iter().map(|p| (p.v - median).abs()).collect();
            Some(quantile(0.5, &mut dev))
        }
        RangeFn::Present => Some(1.0),
        RangeFn::Absent => None,
    })
}

/// The functions that accept `anchored` / `smoothed` ranges, over a window
/// widened by the mode's margins (see [`extended`]).
fn compute_extended(
    f: RangeFn,
    mode: SelectorMode,
    w: &[Sample],
    cx: &Window,
) -> Result<Option<f64>, EvalError> {
    let smoothed = mode == SelectorMode::Smoothed;
    let (start, end) = (cx.start, cx.end);
    Ok(match (f, mode) {
        (RangeFn::Rate, _) => extended::rate(w, start, end, cx.range_secs, smoothed, true, true),
        (RangeFn::Increase, _) => {
            extended::rate(w, start, end, cx.range_secs, smoothed, true, false)
        }
        (RangeFn::Delta, _) => extended::rate(w, start, end, cx.range_secs, smoothed, false, false),
        (RangeFn::Changes, SelectorMode::Anchored) => {
            extended::anchored_changes(w, start, end, false)
        }
        (RangeFn::Resets, SelectorMode::Anchored) => {
            extended::anchored_changes(w, start, end, true)
        }
        // The query check rejects these before evaluation.
        _ => {
            return Err(EvalError::Execution(format!(
                "the {} modifier is not supported by this function",
                mode.keyword()
            )));
        }
    })
}

/// Go's `%f`: six decimals.
fn go_percent_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v:.6}")
    }
}

/// `rate`, `increase` and `delta`: the change over the window, corrected
/// for counter resets, extrapolated towards the window edges when the
/// samples come close enough to them.
fn extrapolated_rate(w: &[Sample], cx: &Window, counter: bool, is_rate: bool) -> Option<f64> {
    let n = w.len();
    if n < 2 {
        return None;
    }
    let (first, last) = (w[0], w[n - 1]);
    let mut result = last.v - first.v;
    if counter && cx.has_reset {
        for p in w.windows(2) {
            if p[1].v < p[0].v {
                result += p[0].v;
            }
        }
    }
    let mut to_start = (first.t - cx.start) as f64 / 1000.0;
    let mut to_end = (cx.end - last.t) as f64 / 1000.0;
    let sampled = (last.t - first.t) as f64 / 1000.0;
    let avg = sampled / (n - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if counter {
        let mut to_zero = to_start;
        if result > 0.0 && first.v >= 0.0 {
            to_zero = sampled * (first.v / result);
        }
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= cx.range_secs;
    }
    Some(result * factor)
}

/// Least-squares fit over the samples, x in seconds relative to
/// `intercept_t`; returns (slope, intercept).
fn linear_regression(w: &[Sample], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut cx, mut sum_y, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut cxy, mut sum_x2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = w[0].v;
    let mut const_y = true;
    for (i, p) in w.iter().enumerate() {
        if const_y && i > 0 && p.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_t) as f64 / 1e3;
        (sum_x, cx) = kahan_inc(x, sum_x, cx);
        (sum_y, cy) = kahan_inc(p.v, sum_y, cy);
        (sum_xy, cxy) = kahan_inc(x * p.v, sum_xy, cxy);
        (sum_x2, cx2) = kahan_inc(x * x, sum_x2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sum_x += cx;
    sum_y += cy;
    sum_xy += cxy;
    sum_x2 += cx2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

// ---------------------------------------------------------------------------
// info(v, [data-label-selector]): enrich series with the data labels of the
// info series (target_info by default) that share their identifying labels.
// ---------------------------------------------------------------------------

/// The info metric used when the data-label selector names none.
const TARGET_INFO: &str = "target_info";

/// Labels that tie a series to its info series. Fixed, as in Prometheus, so
/// the engine needs no per-metric knowledge of which labels identify what.
const IDENTIFYING_LABELS: [&str; 2] = ["instance", "job"];

/// The second argument of `info()`, split by what each matcher is for.
struct InfoSelector {
    /// `__name__` matchers choosing the info metrics, defaults applied: in the
    /// parser's form (to select) and ours (to test names of input series).
    name_select: Vec<AstMatcher>,
    name_test: Vec<Matcher>,
    /// Matchers on data labels: they filter the info series, restrict which
    /// labels are copied, and decide whether an unmatched series is kept.
    data_select: Vec<AstMatcher>,
    data_test: Vec<Matcher>,
}

impl InfoSelector {
    fn parse(call: &Call) -> Result<Self, EvalError> {
        let mut names: Vec<AstMatcher> = Vec::new();
        let mut data: Vec<AstMatcher> = Vec::new();
        if call.args.args.len() > 1 {
            let Expr::VectorSelector(vs) = arg(call, 1)? else {
                return Err(EvalError::Execution(
                    "the second argument of info() must be a label selector such as {__name__=~\".+_info\", version=~\".+\"}".to_string(),
                ));
            };
            if !vs.matchers.or_matchers.is_empty() {
                return Err(EvalError::Execution(
                    "the label selector of info() cannot use \"or\"".to_string(),
                ));
            }
            if let Some(name) = &vs.name {
                names.push(AstMatcher::new(AstMatchOp::Equal, METRIC_NAME, name));
            }
            for m in &vs.matchers.matchers {
                if m.name == super::extensions::INFO_PLACEHOLDER {
                    continue;
                }
                if m.name == METRIC_NAME {
                    names.push(m.clone());
                } else {
                    data.push(m.clone());
                }
            }
        }
        let has_positive = names
            .iter()
            .any(|m| matches!(m.op, AstMatchOp::Equal | AstMatchOp::Re(_)));
        if names.is_empty() {
            names.push(AstMatcher::new(AstMatchOp::Equal, METRIC_NAME, TARGET_INFO));
        } else if !has_positive {
            // Exclusions alone would make every other metric an info metric
            // (and every input series an info series, left unenriched); like
            // Prometheus, only `*_info` metrics are candidates then.
            names.insert(0, ast_regex_matcher(METRIC_NAME, ".+_info")?);
        }
        let convert = |ms: &[AstMatcher]| -> Result<Vec<Matcher>, EvalError> {
            ms.iter()
                .map(|m| Matcher::from_promql(m).map_err(|e| EvalError::BadQuery(e.to_string())))
                .collect()
        };
        Ok(InfoSelector {
            name_test: convert(&names)?,
            name_select: names,
            data_test: convert(&data)?,
            data_select: data,
        })
    }

    /// Whether a series of this name is an info series itself: those pass
    /// through unenriched rather than being joined with themselves.
    fn is_info_metric(&self, name: &str) -> bool {
        self.name_test.iter().all(|m| m.matches(name))
    }
}

/// A regex matcher in the parser's form. Only its pattern text is used when
/// selecting (the storage compiles its own), but the AST type carries a
/// compiled regex, built here the way the parser anchors it.
fn ast_regex_matcher(name: &str, pattern: &str) -> Result<AstMatcher, EvalError> {
    let re = regex::Regex::new(&format!("^(?s:{pattern})$")).map_err(|e| {
        EvalError::Execution(format!(
            "info(): cannot build the matcher {name}=~{pattern:?}: {e}"
        ))
    })?;
    Ok(AstMatcher::new(AstMatchOp::Re(re), name, pattern))
}

/// When, relative to each evaluation step, the first argument of `info()`
/// reads its data: the `@` timestamp and total offset of its first selector,
/// composed through any subqueries around it. The info series are looked up
/// at that same time, so `info(m offset 1h)` and `info(m @ t)` enrich with
/// the info series current when `m`'s samples were, not at the step time.
/// `None` when the expression reads no selector (then the step time is used).
fn reference_shift(e: &Expr) -> Option<(Option<AtModifier>, i64)> {
    match e {
        Expr::VectorSelector(vs) => Some((vs.at.clone(), offset_ms(&vs.offset))),
        Expr::MatrixSelector(ms) => Some((ms.vs.at.clone(), offset_ms(&ms.vs.offset))),
        Expr::Subquery(sq) => {
            let outer_offset = offset_ms(&sq.offset);
            match reference_shift(&sq.expr) {
                // An inner `@` pins the time regardless of the subquery.
                Some((Some(at), offset)) => Some((Some(at), offset)),
                Some((None, offset)) => Some((sq.at.clone(), outer_offset.saturating_add(offset))),
                None => Some((sq.at.clone(), outer_offset)),
            }
        }
        Expr::Paren(p) => reference_shift(&p.expr),
        Expr::Unary(u) => reference_shift(&u.expr),
        Expr::Binary(b) => reference_shift(&b.lhs).or_else(|| reference_shift(&b.rhs)),
        Expr::Aggregate(a) => {
            reference_shift(&a.expr).or_else(|| a.param.as_deref().and_then(reference_shift))
        }
        Expr::Call(c) => c.args.args.iter().find_map(|a| reference_shift(a)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => None,
    }
}

fn offset_from_ms(ms: i64) -> Option<Offset> {
    match ms.cmp(&0) {
        std::cmp::Ordering::Equal => None,
        std::cmp::Ordering::Greater => Some(Offset::Pos(Duration::from_millis(ms.unsigned_abs()))),
        std::cmp::Ordering::Less => Some(Offset::Neg(Duration::from_millis(ms.unsigned_abs()))),
    }
}

/// What joins a series with an info series: the info metric's name and the
/// identifying labels (absent ones as `None`, so `{instance="a"}` only joins
/// info series without a `job`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct InfoKey<'a> {
    name: &'a str,
    ids: [Option<&'a str>; 2],
}

fn identifying_values(labels: &Labels) -> [Option<&str>; 2] {
    IDENTIFYING_LABELS.map(|l| labels.get(l).filter(|v| !v.is_empty()))
}

/// `base` enriched with the data labels of `infos` (the matching info series,
/// at most one per info metric). Labels the series already has win; only the
/// labels named by `data` are copied when it is not empty. `None` means the
/// series is dropped: no info series matched, and a data matcher requires a
/// value that absence cannot satisfy.
fn enrich(base: &Labels, infos: &[&Labels], data: &[Matcher]) -> Result<Option<Labels>, EvalError> {
    if infos.is_empty() {
        let keep = data.iter().all(|m| m.matches_empty());
        return Ok(keep.then(|| base.clone()));
    }
    let mut added: Vec<Label> = Vec::new();
    for info in infos {
        for l in info.iter() {
            if l.name == METRIC_NAME {
                continue;
            }
            if !data.is_empty() && !data.iter().any(|m| m.name == l.name) {
                continue;
            }
            if base.contains(&l.name) {
                // The series' own value wins; info values for it are not
                // compared with each other either (as in Prometheus).
                continue;
            }
            if let Some(prev) = added.iter().find(|a| a.name == l.name) {
                if prev.value != l.value {
                    return Err(EvalError::Execution(format!(
                        "conflicting label: {} (info series give both {:?} and {:?} for {})",
                        l.name,
                        prev.value,
                        l.value,
                        prom_string(base)
                    )));
                }
                continue;
            }
            added.push(l.clone());
        }
    }
    if added.is_empty() {
        return Ok(Some(base.clone()));
    }
    let mut all = base.as_slice().to_vec();
    all.extend(added);
    Ok(Some(Labels::from_vec(all)))
}

/// Per input series: the info series it was last joined with and the output
/// series that produced, so the labels are only rebuilt when that changes.
struct JoinCache {
    infos: Vec<usize>,
    /// Output index; `None` when the series is dropped.
    out: Option<usize>,
    valid: bool,
}

fn info(ev: &mut Evaluator<'_>, call: &Call, g: Grid) -> Result<Val, EvalError> {
    let sel = InfoSelector::parse(call)?;
    let base_expr = arg(call, 0)?;
    let base = ev.eval_vector(base_expr, g)?;
    let ignored: Vec<bool> = base
        .iter()
        .map(|s| sel.is_info_metric(s.labels.get_or_empty(METRIC_NAME)))
        .collect();

    // Only info series whose identifying labels occur on a series to enrich
    // can join; selecting by those values keeps the rest out of memory.
    let mut id_values: [BTreeSet<&str>; 2] = [BTreeSet::new(), BTreeSet::new()];
    for (s, _) in base.iter().zip(&ignored).filter(|(_, ign)| !**ign) {
        for (set, v) in id_values.iter_mut().zip(identifying_values(&s.labels)) {
            if let Some(v) = v {
                set.insert(v);
            }
        }
    }
    let info: Vec<Series> = if id_values.iter().all(|v| v.is_empty()) {
        Vec::new()
    } else {
        let mut matchers = sel.name_select.clone();
        matchers.extend(sel.data_select.iter().cloned());
        for (name, values) in IDENTIFYING_LABELS.iter().zip(&id_values) {
            if !values.is_empty() {
                let alternatives: Vec<String> = values.iter().map(|v| regex::escape(v)).collect();
                matchers.push(ast_regex_matcher(name, &alternatives.join("|"))?);
            }
        }
        let (at, offset) = reference_shift(base_expr).unwrap_or((None, 0));
        let vs = VectorSelector {
            name: None,
            matchers: Matchers::new(matchers),
            offset: offset_from_ms(offset),
            at,
        };
        // Info series carry their data in labels, with float samples; a
        // histogram-valued one is a mistake Prometheus rejects too.
        if let Some(labels) = ev.histogram_series_in(&vs, g)? {
            return Err(EvalError::Execution(format!(
                "info sample should be float, but {labels} has native histogram samples"
            )));
        }
        // The value of each point is the time of the sample found, which
        // decides between info series that churned within the lookback.
        ev.vector_selector_timestamps(&vs, g)?
    };
    let inputs: usize = base.iter().chain(&info).map(|s| s.points.len()).sum();

    let info_keys: Vec<InfoKey<'_>> = info
        .iter()
        .map(|s| InfoKey {
            name: s.labels.get_or_empty(METRIC_NAME),
            ids: identifying_values(&s.labels),
        })
        .collect();
    let info_names: BTreeSet<&str> = info_keys.iter().map(|k| k.name).collect();
    let base_ids: Vec<[Option<&str>; 2]> =
        base.iter().map(|s| identifying_values(&s.labels)).collect();

    let mut out: Vec<Series> = Vec::new();
    let mut out_index: HashMap<(Labels, bool), usize> = HashMap::new();
    let mut cache: Vec<JoinCache> = base
        .iter()
        .map(|_| JoinCache {
            infos: Vec::new(),
            out: None,
            valid: false,
        })
        .collect();
    let mut base_cur = vec![0usize; base.len()];
    let mut info_cur = vec![0usize; info.len()];
    let mut current: HashMap<InfoKey<'_>, (usize, i64)> = HashMap::new();
    let mut chosen: Vec<usize> = Vec::new();
    for i in 0..g.len() {
        ev.tick()?;
        let ts = g.ts(i);
        // The info series present at this step, newest sample per key.
        current.clear();
        for (j, s) in info.iter().enumerate() {
            let Some(p) = s.points.get(info_cur[j]).filter(|p| p.t == ts) else {
                continue;
            };
            info_cur[j] += 1;
            let sample_t = (p.v * 1000.0).round() as i64;
            match current.entry(info_keys[j]) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert((j, sample_t));
                }
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let (prev, prev_t) = *o.get();
                    if prev_t < sample_t {
                        o.insert((j, sample_t));
                    } else if prev_t == sample_t {
                        return Err(EvalError::Execution(format!(
                            "found duplicate series for info metric: existing {} @ {prev_t}, new {} @ {sample_t}",
                            prom_string(&info[prev].labels),
                            prom_string(&s.labels)
                        )));
                    }
                }
            }
        }
        for (k, s) in base.iter().enumerate() {
            let Some(p) = s.points.get(base_cur[k]).filter(|p| p.t == ts) else {
                continue;
            };
            base_cur[k] += 1;
            chosen.clear();
            if !ignored[k] {
                for &name in &info_names {
                    let key = InfoKey {
                        name,
                        ids: base_ids[k],
                    };
                    if let Some(&(j, _)) = current.get(&key) {
                        chosen.push(j);
                    }
                }
            }
            let c = &mut cache[k];
            if !c.valid || c.infos != chosen {
                let labels = if ignored[k] {
                    Some(s.labels.clone())
                } else {
                    let infos: Vec<&Labels> = chosen.iter().map(|&j| &info[j].labels).collect();
                    enrich(&s.labels, &infos, &sel.data_test)?
                };
                c.out = labels.map(|l| {
                    *out_index
                        .entry((l, s.drop_name))
                        .or_insert_with_key(|(l, drop)| {
                            out.push(Series::new(l.clone(), *drop, Vec::new()));
                            out.len() - 1
                        })
                });
                c.infos.clone_from(&chosen);
                c.valid = true;
            }
            if let Some(o) = c.out {
                let points = &mut out[o].points;
                if points.last().is_some_and(|q| q.t == ts) {
                    return Err(duplicate_labelset());
                }
                points.push(Sample { t: ts, v: p.v });
            }
        }
    }
    let val = Val::Vector(out);
    ev.settle(inputs, &val)?;
    Ok(val)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        assert!(natural_less("node-2", "node-10"));
        assert!(!natural_less("node-10", "node-2"));
        assert!(natural_less("a", "b"));
        assert!(natural_less("1.2.0", "1.10.0"));
    }

    #[test]
    fn go_min_max_propagate_nan() {
        assert!(go_max(1.0, f64::NAN).is_nan());
        assert!(go_min(f64::NAN, 1.0).is_nan());
        assert_eq!(go_max(1.0, 2.0), 2.0);
    }

    #[test]
    fn rate_extrapolates_to_window_edges() {
        let w: Vec<Sample> = (0..=4)
            .map(|i| Sample {
                t: i * 15_000 + 1_000,
                v: (i * 15) as f64,
            })
            .collect();
        let cx = Window {
            ts: 61_000,
            start: 0,
            end: 61_000,
            range_secs: 60.0,
            params: [0.0, 0.0],
            has_reset: false,
        };
        // 60 over 60s of samples, counter starting at 0: zero point caps the
        // start extrapolation at the first sample.
        let r = extrapolated_rate(&w, &cx, true, true).unwrap();
        assert!((r - 1.0).abs() < 1e-9, "{r}");
    }

    fn parsed(q: &str) -> Expr {
        promql_parser::parser::parse(q).expect("test query parses")
    }

    fn info_call(q: &str) -> Call {
        match parsed(q) {
            Expr::Call(c) => c,
            other => panic!("not a call: {other:?}"),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn info_reference_time_follows_the_first_selector() {
        let shift =
            |q: &str| reference_shift(&parsed(q)).map(|(at, offset)| (at.is_some(), offset));
        assert_eq!(shift("m"), Some((false, 0)));
        assert_eq!(shift("m offset 2m"), Some((false, 120_000)));
        assert_eq!(shift("rate(m[5m] offset -1m)"), Some((false, -60_000)));
        assert_eq!(shift("floor(m @ 60)"), Some((true, 0)));
        // A subquery's offset adds to the inner selector's; its `@` pins the
        // time unless the inner selector has its own.
        assert_eq!(
            shift("last_over_time((m offset 1m)[10m:1m] offset 5m)"),
            Some((false, 360_000))
        );
        assert_eq!(
            shift("last_over_time((m offset 1m)[10m:1m] @ 180)"),
            Some((true, 60_000))
        );
        assert_eq!(shift("m offset 3m + n offset 1m"), Some((false, 180_000)));
        assert_eq!(shift("vector(1)"), None);
    }

    #[test]
    fn info_selector_defaults_name_matchers() {
        let names = |q: &str| -> Vec<String> {
            let sel = InfoSelector::parse(&info_call(q)).expect("selector");
            sel.name_select
                .iter()
                .map(|m| format!("{}{}{}", m.name, m.op, m.value))
                .collect()
        };
        assert_eq!(names("info(m)"), ["__name__=target_info"]);
        assert_eq!(names("info(m, {a=~\".+\"})"), ["__name__=target_info"]);
        assert_eq!(
            names("info(m, {__name__=~\".+_info\"})"),
            ["__name__=~.+_info"]
        );
        // Only exclusions: restricted to *_info metrics.
        assert_eq!(
            names("info(m, {__name__!=\"target_info\", a=~\".+\"})"),
            ["__name__=~.+_info", "__name__!=target_info"]
        );
        let sel = InfoSelector::parse(&info_call(
            "info(m, {__name__=~\".+_info\", __name__!~\"build.*\"})",
        ))
        .expect("selector");
        assert!(sel.is_info_metric("target_info"));
        assert!(!sel.is_info_metric("build_info"));
        assert!(!sel.is_info_metric("m"));
        assert!(sel.data_test.is_empty());
        assert!(InfoSelector::parse(&info_call("info(m, vector(1))")).is_err());
    }

    #[test]
    fn info_enrich_adds_only_missing_data_labels() {
        let base = labels(&[("__name__", "m"), ("instance", "a"), ("data", "base")]);
        let target = labels(&[
            ("__name__", "target_info"),
            ("instance", "a"),
            ("data", "info"),
            ("version", "1"),
        ]);
        let got = enrich(&base, &[&target], &[]).expect("no conflict");
        assert_eq!(
            got,
            Some(labels(&[
                ("__name__", "m"),
                ("instance", "a"),
                ("data", "base"),
                ("version", "1"),
            ]))
        );
        // A data-label selector restricts what is copied.
        let only_data = [Matcher::equal("data", "info")];
        assert_eq!(
            enrich(&base, &[&target], &only_data).expect("no conflict"),
            Some(base.clone())
        );
    }

    #[test]
    fn info_enrich_without_info_series_keeps_or_drops() {
        let base = labels(&[("__name__", "m"), ("instance", "a")]);
        let any = Matcher::new(crate::model::MatchOp::Regex, "data", ".*").expect("regex");
        let some = Matcher::new(crate::model::MatchOp::Regex, "data", ".+").expect("regex");
        assert_eq!(enrich(&base, &[], &[]).expect("ok"), Some(base.clone()));
        assert_eq!(enrich(&base, &[], &[any]).expect("ok"), Some(base.clone()));
        assert_eq!(enrich(&base, &[], &[some]).expect("ok"), None);
    }

    #[test]
    fn info_enrich_rejects_conflicting_info_series() {
        let base = labels(&[("__name__", "m"), ("instance", "a")]);
        let a = labels(&[("__name__", "a_info"), ("instance", "a"), ("x", "1")]);
        let b = labels(&[("__name__", "b_info"), ("instance", "a"), ("x", "2")]);
        let err = enrich(&base, &[&a, &b], &[]).expect_err("conflict");
        assert!(err.to_string().contains("conflicting label: x"), "{err}");
        // A label the series has itself is never taken from an info series,
        // so info series disagreeing on it is no conflict.
        let own = labels(&[("__name__", "m"), ("instance", "a"), ("x", "own")]);
        assert_eq!(enrich(&own, &[&a, &b], &[]).expect("ok"), Some(own.clone()));
    }
}
