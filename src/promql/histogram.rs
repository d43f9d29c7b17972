//! Classic (`le`-bucket) histogram functions: `histogram_quantile`,
//! `histogram_quantiles` and `histogram_fraction`.
//!
//! Buckets are grouped by their labels without `le`; per step, the buckets
//! present form one histogram. Bucket counts that decrease with a higher
//! upper bound are forced monotonic (and reported as an info), as Prometheus
//! does. Native histograms are not stored, so there is no native path.

use std::collections::HashMap;

use promql_parser::parser::{Call, Expr};

use super::EvalError;
use super::eval::{Evaluator, Grid};
use super::functions::unparen;
use super::labels::{openmetrics_float, parse_go_float, signature};
use super::value::{Series, Val};
use crate::model::{Label, Labels, Sample};

const BUCKET_LABEL: &str = "le";

#[derive(Debug, Clone, Copy)]
struct Bucket {
    upper: f64,
    count: f64,
}

/// Relative-epsilon float equality (Prometheus's `almost.Equal`).
fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    const MIN_NORMAL: f64 = 2.2250738585072014e-308;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

/// What forcing monotonicity changed.
#[derive(Debug, Default, Clone, Copy)]
struct Forced {
    forced: bool,
    min_bucket: f64,
    max_bucket: f64,
    max_diff: f64,
}

/// Sorts, merges equal upper bounds, and makes counts non-decreasing:
/// differences that are float noise are absorbed silently, real decreases
/// are raised to the previous count and reported.
fn normalize(buckets: &mut Vec<Bucket>) -> Forced {
    buckets.sort_by(|a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.drain(..) {
        match merged.last_mut() {
            Some(last) if last.upper == b.upper => last.count += b.count,
            _ => merged.push(b),
        }
    }
    *buckets = merged;
    let mut f = Forced {
        forced: false,
        min_bucket: f64::INFINITY,
        max_bucket: f64::NEG_INFINITY,
        max_diff: 0.0,
    };
    let Some(first) = buckets.first() else {
        return f;
    };
    let mut prev = first.count;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.count;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, 1e-12) {
            b.count = prev;
            continue;
        }
        if curr < prev {
            b.count = prev;
            f.forced = true;
            f.min_bucket = f.min_bucket.min(b.upper);
            f.max_bucket = f.max_bucket.max(b.upper);
            f.max_diff = f.max_diff.max(prev - curr);
            continue;
        }
        prev = curr;
    }
    f
}

/// The q-quantile of a classic histogram, interpolating linearly inside the
/// bucket (a lowest bucket with a positive bound starts at 0).
fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> (f64, Forced) {
    let none = Forced::default();
    if q.is_nan() {
        return (f64::NAN, none);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, none);
    }
    if q > 1.0 {
        return (f64::INFINITY, none);
    }
    buckets.sort_by(|a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return (f64::NAN, none);
    }
    let forced = normalize(buckets);
    if buckets.len() < 2 {
        return (f64::NAN, none);
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return (f64::NAN, none);
    }
    let mut rank = q * observations;
    let last = buckets.len() - 1;
    let b = buckets[..last].partition_point(|x| x.count < rank);
    if b == last {
        return (buckets[last - 1].upper, forced);
    }
    if b == 0 && buckets[0].upper <= 0.0 {
        return (buckets[0].upper, forced);
    }
    let mut start = 0.0;
    let end = buckets[b].upper;
    let mut count = buckets[b].count;
    if b > 0 {
        start = buckets[b - 1].upper;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    (start + (end - start) * (rank / count), forced)
}

/// The fraction of observations between `lower` and `upper`.
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<Bucket>) -> f64 {
    buckets.sort_by(|a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return f64::NAN;
    }
    normalize(buckets);
    let count = buckets[buckets.len() - 1].count;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut lower_bound = if buckets[0].upper <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    for (i, b) in buckets.iter().enumerate() {
        if i > 0 {
            lower_bound = buckets[i - 1].upper;
        }
        let upper_bound = b.upper;
        let interpolate = |v: f64, rank: f64| -> f64 {
            if lower_bound == f64::NEG_INFINITY {
                return b.count;
            }
            rank + (b.count - rank) * (v - lower_bound) / (upper_bound - lower_bound)
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower, rank);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper, rank);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = b.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// Bucket series grouped into histograms.
struct Grouped {
    /// Output labels (input labels without `le`) per histogram.
    labels: Vec<Labels>,
    /// Bucket series (input index and upper bound) of each histogram.
    members: Vec<Vec<(usize, f64)>>,
}

fn group_buckets(ev: &mut Evaluator<'_>, input: &[Series], pos: usize) -> Grouped {
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut labels = Vec::new();
    let mut members: Vec<Vec<(usize, f64)>> = Vec::new();
    for (i, s) in input.iter().enumerate() {
        let le = s.labels.get_or_empty(BUCKET_LABEL);
        let Some(upper) = parse_go_float(le) else {
            if !s.points.is_empty() {
                ev.annos.bad_bucket_label(s.labels.metric_name(), le, pos);
            }
            continue;
        };
        let key = signature(&s.labels, |n| n != BUCKET_LABEL);
        let next = labels.len();
        let h = *index.entry(key).or_insert(next);
        if h == next {
            let kept: Vec<Label> = s
                .labels
                .iter()
                .filter(|l| l.name != BUCKET_LABEL)
                .cloned()
                .collect();
            labels.push(Labels::from_vec(kept));
            members.push(Vec::new());
        }
        members[h].push((i, upper));
    }
    Grouped { labels, members }
}

/// Calls `f(step, histogram index, buckets)` for every step at which a
/// histogram has at least one bucket, histogram after histogram (steps in
/// order within one).
fn for_each_histogram(
    ev: &mut Evaluator<'_>,
    input: &[Series],
    grouped: &Grouped,
    g: Grid,
    mut f: impl FnMut(&mut Evaluator<'_>, usize, usize, &mut Vec<Bucket>) -> Result<(), EvalError>,
) -> Result<(), EvalError> {
    let n = g.len();
    // Buckets per step, reused histogram after histogram.
    ev.charge(n)?;
    let mut per: Vec<Vec<Bucket>> = vec![Vec::new(); n];
    for (h, members) in grouped.members.iter().enumerate() {
        ev.tick()?;
        for &(si, upper) in members {
            for p in &input[si].points {
                per[g.index(p.t)].push(Bucket { upper, count: p.v });
            }
        }
        for (step, buckets) in per.iter_mut().enumerate() {
            if !buckets.is_empty() {
                f(ev, step, h, buckets)?;
                buckets.clear();
            }
        }
    }
    ev.release(n);
    Ok(())
}

fn arg(call: &Call, i: usize) -> Result<&Expr, EvalError> {
    call.args.args.get(i).map(|a| unparen(a)).ok_or_else(|| {
        EvalError::Execution(format!("missing argument {} to {}", i + 1, call.func.name))
    })
}

pub(crate) fn histogram_quantile(
    ev: &mut Evaluator<'_>,
    call: &Call,
    g: Grid,
) -> Result<Val, EvalError> {
    let q_arg = arg(call, 0)?;
    let v_arg = arg(call, 1)?;
    let q = ev.eval_scalar(q_arg, g)?;
    let input = ev.eval_vector(v_arg, g)?;
    let (q_pos, v_pos) = (ev.pos(q_arg), ev.pos(v_arg));
    for &x in &q {
        if x.is_nan() || !(0.0..=1.0).contains(&x) {
            ev.annos.invalid_quantile(x, q_pos);
        }
    }
    let grouped = group_buckets(ev, &input, v_pos);
    let mut points: Vec<Vec<Sample>> = vec![Vec::new(); grouped.labels.len()];
    for_each_histogram(ev, &input, &grouped, g, |ev, step, h, buckets| {
        let (v, forced) = bucket_quantile(q[step], buckets);
        if forced.forced {
            ev.annos.forced_monotonicity(
                grouped.labels[h].metric_name(),
                v_pos,
                g.ts(step),
                forced.min_bucket,
                forced.max_bucket,
                forced.max_diff,
            );
        }
        points[h].push(Sample { t: g.ts(step), v });
        Ok(())
    })?;
    finish(ev, &input, grouped.labels, points)
}

/// `histogram_quantiles(v, "label", q1, q2, ...)`: one output series per
/// quantile, told apart by `label`.
pub(crate) fn histogram_quantiles(
    ev: &mut Evaluator<'_>,
    call: &Call,
    g: Grid,
) -> Result<Val, EvalError> {
    let v_arg = arg(call, 0)?;
    let label = match arg(call, 1)? {
        Expr::StringLiteral(s) => s.val.clone(),
        _ => {
            return Err(EvalError::Execution(
                "histogram_quantiles expects a string literal label name as its second argument"
                    .to_string(),
            ));
        }
    };
    let input = ev.eval_vector(v_arg, g)?;
    let v_pos = ev.pos(v_arg);
    let mut qs = Vec::new();
    for i in 2..call.args.args.len() {
        let a = arg(call, i)?;
        let q = ev.eval_scalar(a, g)?;
        let pos = ev.pos(a);
        for &x in &q {
            if x.is_nan() || !(0.0..=1.0).contains(&x) {
                ev.annos.invalid_quantile(x, pos);
            }
        }
        qs.push(q);
    }
    let grouped = group_buckets(ev, &input, v_pos);
    // Output (quantile, histogram) series; labels are built lazily per q
    // value because q may differ per step.
    let mut out_index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<Series> = Vec::new();
    for_each_histogram(ev, &input, &grouped, g, |ev, step, h, buckets| {
        for q in &qs {
            let qv = q[step];
            let (v, forced) = bucket_quantile(qv, &mut buckets.clone());
            if forced.forced {
                ev.annos.forced_monotonicity(
                    grouped.labels[h].metric_name(),
                    v_pos,
                    g.ts(step),
                    forced.min_bucket,
                    forced.max_bucket,
                    forced.max_diff,
                );
            }
            let mut b = grouped.labels[h].builder();
            b.set(&label, openmetrics_float(qv));
            let labels = b.build();
            let i = *out_index.entry(labels.clone()).or_insert_with(|| {
                out.push(Series::new(labels, true, Vec::new()));
                out.len() - 1
            });
            out[i].points.push(Sample { t: g.ts(step), v });
        }
        Ok(())
    })?;
    for s in &mut out {
        s.points.sort_by_key(|p| p.t);
        if s.points.windows(2).any(|w| w[0].t == w[1].t) {
            // The quantile label overwrote a label that told histograms
            // apart.
            return Err(super::eval::duplicate_labelset());
        }
    }
    let inputs: usize = input.iter().map(|s| s.points.len()).sum();
    let val = Val::Vector(out);
    ev.settle(inputs, &val)?;
    Ok(val)
}

pub(crate) fn histogram_fraction(
    ev: &mut Evaluator<'_>,
    call: &Call,
    g: Grid,
) -> Result<Val, EvalError> {
    let lower = ev.eval_scalar(arg(call, 0)?, g)?;
    let upper = ev.eval_scalar(arg(call, 1)?, g)?;
    let v_arg = arg(call, 2)?;
    let input = ev.eval_vector(v_arg, g)?;
    let v_pos = ev.pos(v_arg);
    let grouped = group_buckets(ev, &input, v_pos);
    let mut points: Vec<Vec<Sample>> = vec![Vec::new(); grouped.labels.len()];
    for_each_histogram(ev, &input, &grouped, g, |_, step, h, buckets| {
        let v = bucket_fraction(lower[step], upper[step], buckets);
        points[h].push(Sample { t: g.ts(step), v });
        Ok(())
    })?;
    finish(ev, &input, grouped.labels, points)
}

fn finish(
    ev: &mut Evaluator<'_>,
    input: &[Series],
    labels: Vec<Labels>,
    points: Vec<Vec<Sample>>,
) -> Result<Val, EvalError> {
    let out: Vec<Series> = labels
        .into_iter()
        .zip(points)
        .filter(|(_, p)| !p.is_empty())
        .map(|(l, p)| Series::new(l, true, p))
        .collect();
    let inputs: usize = input.iter().map(|s| s.points.len()).sum();
    let val = Val::Vector(out);
    ev.settle(inputs, &val)?;
    Ok(val)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(pairs: &[(f64, f64)]) -> Vec<Bucket> {
        pairs
            .iter()
            .map(|&(upper, count)| Bucket { upper, count })
            .collect()
    }

    #[test]
    fn quantile_interpolates_in_bucket() {
        let mut h = b(&[(0.1, 1.0), (1.0, 2.0), (f64::INFINITY, 4.0)]);
        let (v, f) = bucket_quantile(0.5, &mut h);
        assert_eq!(v, 1.0);
        assert!(!f.forced);
        let (v, _) = bucket_quantile(0.25, &mut h);
        assert_eq!(v, 0.1);
        let (v, _) = bucket_quantile(0.9, &mut h);
        assert_eq!(v, 1.0);
    }

    #[test]
    fn nonmonotonic_buckets_are_forced() {
        let mut h = b(&[(0.1, 2.0), (1.0, 1.0), (f64::INFINITY, 4.0)]);
        let (_, f) = bucket_quantile(0.5, &mut h);
        assert!(f.forced);
        assert_eq!(f.max_diff, 1.0);
        assert_eq!(f.min_bucket, 1.0);
    }

    #[test]
    fn missing_inf_bucket_is_nan() {
        let mut h = b(&[(0.1, 2.0), (1.0, 3.0)]);
        assert!(bucket_quantile(0.5, &mut h).0.is_nan());
    }

    #[test]
    fn fraction_of_all_is_one() {
        let mut h = b(&[(1.0, 1.0), (2.0, 3.0), (f64::INFINITY, 4.0)]);
        assert_eq!(
            bucket_fraction(f64::NEG_INFINITY, f64::INFINITY, &mut h),
            1.0
        );
        assert_eq!(bucket_fraction(0.0, 2.0, &mut h), 0.75);
        assert_eq!(bucket_fraction(2.0, 1.0, &mut h), 0.0);
    }
}
