//! Aggregation operators (`sum`, `avg`, `count`, `group`, `min`, `max`,
//! `stddev`, `stdvar`, `quantile`, `topk`, `bottomk`, `limitk`,
//! `limit_ratio`, `count_values`) with `by`/`without`.
//!
//! Each input series is assigned to its group once (one label hash per
//! series); values are then accumulated series by series into per-(group,
//! step) accumulators. Within a step the inputs are visited in input order,
//! the order Prometheus uses, so floating-point results match.

use std::collections::HashMap;

use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_LIMIT_RATIO, T_LIMITK, T_MAX, T_MIN,
    T_QUANTILE, T_STDDEV, T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use super::EvalError;
use super::binary::StepCursor;
use super::eval::{Evaluator, Grid};
use super::functions::unparen;
use super::labels::{go_f, signature};
use super::value::{Series, Val};
use crate::model::{Label, Labels, METRIC_NAME, Sample};

/// Neumaier-compensated addition: returns the new sum and compensation.
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    if t.is_infinite() {
        (t, 0.0)
    } else if sum.abs() >= inc.abs() {
        (t, c + ((sum - t) + inc))
    } else {
        (t, c + ((inc - t) + sum))
    }
}

/// Go's `math.Max`: NaN propagates.
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a >= b {
        a
    } else {
        b
    }
}

/// Go's `math.Min`: NaN propagates.
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a <= b {
        a
    } else {
        b
    }
}

/// The q-quantile of `values` (sorted in place), interpolating between
/// neighbours; NaN sorts first.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(nan_first);
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn nan_first(a: &f64, b: &f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    }
}

/// How series are grouped.
struct Grouping {
    without: bool,
    names: Vec<String>,
}

impl Grouping {
    fn new(a: &AggregateExpr) -> Grouping {
        let (without, mut names) = match &a.modifier {
            Some(LabelModifier::Exclude(l)) => (true, l.labels.clone()),
            Some(LabelModifier::Include(l)) => (false, l.labels.clone()),
            None => (false, Vec::new()),
        };
        names.sort();
        names.dedup();
        Grouping { without, names }
    }

    fn listed(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    fn key(&self, l: &Labels) -> u64 {
        if self.without {
            signature(l, |n| n != METRIC_NAME && !self.listed(n))
        } else {
            signature(l, |n| self.listed(n))
        }
    }

    /// The output labels of the group `l` belongs to.
    fn labels(&self, l: &Labels) -> Labels {
        let kept: Vec<Label> = l
            .iter()
            .filter(|lb| {
                if self.without {
                    lb.name != METRIC_NAME && !self.listed(&lb.name)
                } else {
                    self.listed(&lb.name)
                }
            })
            .cloned()
            .collect();
        Labels::from_vec(kept)
    }

    /// The members of every group, in input order; groups in the order of
    /// their first member.
    fn assign(&self, input: &[Series]) -> Vec<Vec<usize>> {
        let mut by_key: HashMap<u64, usize> = HashMap::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        for (i, s) in input.iter().enumerate() {
            let next = members.len();
            let g = *by_key.entry(self.key(&s.labels)).or_insert(next);
            if g == next {
                members.push(Vec::new());
            }
            members[g].push(i);
        }
        members
    }
}

pub(crate) fn eval(ev: &mut Evaluator<'_>, a: &AggregateExpr, g: Grid) -> Result<Val, EvalError> {
    let op = a.op.id();
    let grouping = Grouping::new(a);
    if op == T_COUNT_VALUES {
        return count_values(ev, a, grouping, g);
    }
    let param = match (&a.param, op) {
        (Some(p), T_TOPK | T_BOTTOMK | T_LIMITK | T_LIMIT_RATIO | T_QUANTILE) => {
            Some(ev.eval_scalar(p, g)?)
        }
        _ => None,
    };
    let input = ev.eval_vector(&a.expr, g)?;
    let inputs: usize = input.iter().map(|s| s.points.len()).sum();
    let out = match op {
        T_TOPK | T_BOTTOMK | T_LIMITK | T_LIMIT_RATIO => {
            let param = param.unwrap_or_default();
            let param_pos = a.param.as_deref().map_or(0, |p| ev.pos(unparen(p)));
            select_k(ev, op, &param, param_pos, input, &grouping, g)?
        }
        _ => {
            if op == T_QUANTILE
                && let (Some(q), Some(p)) = (&param, &a.param)
            {
                let pos = ev.pos(unparen(p));
                if q.iter().any(|x| x.is_nan()) {
                    ev.annos.invalid_quantile(f64::NAN, pos);
                }
                let max = q.iter().copied().fold(-f64::MAX, go_max);
                let min = q.iter().copied().fold(f64::MAX, go_min);
                if max > 1.0 {
                    ev.annos.invalid_quantile(max, pos);
                }
                if min < 0.0 {
                    ev.annos.invalid_quantile(min, pos);
                }
            }
            accumulate(ev, op, param.as_deref(), input, &grouping, g)?
        }
    };
    let out = Val::Vector(out);
    ev.settle(inputs, &out)?;
    Ok(out)
}

#[derive(Clone, Copy, Default)]
struct Acc {
    seen: bool,
    drop_name: bool,
    incremental: bool,
    value: f64,
    c: f64,
    mean: f64,
    count: f64,
}

fn accumulate(
    ev: &mut Evaluator<'_>,
    op: u16,
    param: Option<&[f64]>,
    input: Vec<Series>,
    grouping: &Grouping,
    g: Grid,
) -> Result<Vec<Series>, EvalError> {
    let n = g.len();
    let groups = grouping.assign(&input);
    // One accumulator per step, reused group after group; a group's members
    // are visited in input order, so each step sees Prometheus's order.
    ev.charge(n)?;
    let mut acc = vec![Acc::default(); n];
    let mut values: Vec<Vec<f64>> = if op == T_QUANTILE {
        vec![Vec::new(); n]
    } else {
        Vec::new()
    };
    let mut out = Vec::with_capacity(groups.len());
    for members in &groups {
        ev.tick()?;
        acc.iter_mut().for_each(|a| a.seen = false);
        values.iter_mut().for_each(Vec::clear);
        for &si in members {
            let s = &input[si];
            for p in &s.points {
                let idx = g.index(p.t);
                add_value(op, &mut acc[idx], values.get_mut(idx), p.v, s.drop_name)?;
            }
        }
        let mut points = Vec::new();
        let mut drop_name = false;
        for (step, a) in acc.iter().enumerate() {
            if !a.seen {
                continue;
            }
            let v = match op {
                T_SUM => a.value + a.c,
                T_AVG => {
                    if a.incremental {
                        a.mean + a.c
                    } else {
                        a.value / a.count + a.c / a.count
                    }
                }
                T_COUNT => a.count,
                T_STDVAR => a.value / a.count,
                T_STDDEV => (a.value / a.count).sqrt(),
                T_QUANTILE => {
                    let q = param.and_then(|p| p.get(step).copied()).unwrap_or(f64::NAN);
                    quantile(q, &mut values[step])
                }
                _ => a.value,
            };
            drop_name = a.drop_name;
            points.push(Sample { t: g.ts(step), v });
        }
        if !points.is_empty() {
            ev.charge(points.len())?;
            out.push(Series::new(
                grouping.labels(&input[members[0]].labels),
                drop_name,
                points,
            ));
        }
    }
    ev.release(n + out.iter().map(|s| s.points.len()).sum::<usize>());
    Ok(out)
}

/// Folds one input value into a group's accumulator for one step.
fn add_value(
    op: u16,
    a: &mut Acc,
    values: Option<&mut Vec<f64>>,
    f: f64,
    drop_name: bool,
) -> Result<(), EvalError> {
    if !a.seen {
        *a = Acc {
            seen: true,
            drop_name,
            incremental: false,
            value: f,
            c: 0.0,
            mean: f,
            count: 1.0,
        };
        match op {
            T_STDDEV | T_STDVAR => {
                a.value = if f.is_nan() || f.is_infinite() {
                    f64::NAN
                } else {
                    0.0
                };
            }
            T_GROUP => a.value = 1.0,
            T_QUANTILE => values.into_iter().for_each(|v| v.push(f)),
            _ => {}
        }
        return Ok(());
    }
    a.drop_name |= drop_name;
    match op {
        T_SUM => (a.value, a.c) = kahan_inc(f, a.value, a.c),
        T_AVG => {
            a.count += 1.0;
            if !a.incremental {
                let (v, c) = kahan_inc(f, a.value, a.c);
                if !v.is_infinite() {
                    a.value = v;
                    a.c = c;
                    return Ok(());
                }
                // The running sum would overflow: continue with the
                // incremental mean instead.
                a.incremental = true;
                a.mean = a.value / (a.count - 1.0);
                a.c /= a.count - 1.0;
            }
            let q = (a.count - 1.0) / a.count;
            (a.mean, a.c) = kahan_inc(f / a.count, q * a.mean, q * a.c);
        }
        T_COUNT => a.count += 1.0,
        T_GROUP => {}
        T_MAX => {
            if a.value < f || a.value.is_nan() {
                a.value = f;
            }
        }
        T_MIN => {
            if a.value > f || a.value.is_nan() {
                a.value = f;
            }
        }
        T_STDDEV | T_STDVAR => {
            a.count += 1.0;
            let delta = f - a.mean;
            a.mean += delta / a.count;
            a.value += delta * (f - a.mean);
        }
        T_QUANTILE => values.into_iter().for_each(|v| v.push(f)),
        _ => {
            return Err(EvalError::Execution(format!(
                "aggregation operator {op} is not supported"
            )));
        }
    }
    Ok(())
}

/// A binary heap with Go's `container/heap` algorithms, so the elements
/// `topk` and friends keep on ties are the ones Prometheus keeps.
struct GoHeap {
    items: Vec<(usize, f64)>,
    reverse: bool,
}

impl GoHeap {
    fn less(&self, i: usize, j: usize) -> bool {
        let (a, b) = (self.items[i].1, self.items[j].1);
        if a.is_nan() {
            return true;
        }
        if self.reverse { a > b } else { a < b }
    }

    fn up(&mut self, mut j: usize) {
        while j > 0 {
            let i = (j - 1) / 2;
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            j = i;
        }
    }

    fn down(&mut self, i0: usize) -> bool {
        let n = self.items.len();
        let mut i = i0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            let j2 = j1 + 1;
            if j2 < n && self.less(j2, j1) {
                j = j2;
            }
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            i = j;
        }
        i > i0
    }

    fn push(&mut self, x: (usize, f64)) {
        self.items.push(x);
        let n = self.items.len() - 1;
        self.up(n);
    }

    fn fix_top(&mut self) {
        if !self.down(0) {
            self.up(0);
        }
    }

    /// Sorted the way Prometheus reverses the heap for output: greatest first
    /// for `topk`, smallest first for `bottomk` (stable, like Go's insertion
    /// sort on small inputs).
    fn into_sorted(mut self) -> Vec<(usize, f64)> {
        let reverse = self.reverse;
        let greater = |a: f64, b: f64| -> bool {
            // `Less(b, a)` of the heap order: the reversed order.
            if b.is_nan() {
                return !a.is_nan();
            }
            if reverse { b > a } else { b < a }
        };
        self.items.sort_by(|x, y| {
            if greater(x.1, y.1) {
                std::cmp::Ordering::Less
            } else if greater(y.1, x.1) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        self.items
    }
}

/// Go's `%v` for a float64 in error messages (the same as `%g`).
fn go_v(v: f64) -> String {
    super::labels::go_g(v)
}

const MAX_INT64_F: f64 = 9_223_372_036_854_774_784.0;
const MIN_INT64_F: f64 = -9_223_372_036_854_775_808.0;

fn select_k(
    ev: &mut Evaluator<'_>,
    op: u16,
    param: &[f64],
    param_pos: usize,
    input: Vec<Series>,
    grouping: &Grouping,
    g: Grid,
) -> Result<Vec<Series>, EvalError> {
    let n = g.len();
    // Go's math.Max/Min: a NaN parameter makes the extremes NaN, which the
    // checks below then report.
    let max = param.iter().copied().fold(-f64::MAX, go_max);
    let min = param.iter().copied().fold(f64::MAX, go_min);
    let any_nan = param.iter().any(|x| x.is_nan());
    if op == T_LIMIT_RATIO {
        if max == 0.0 && min == 0.0 {
            return Ok(Vec::new());
        }
        if any_nan {
            return Err(EvalError::Execution("Ratio value is NaN".to_string()));
        }
        if max > 1.0 {
            ev.annos.invalid_ratio(max, 1.0, param_pos);
        }
        if min < -1.0 {
            ev.annos.invalid_ratio(min, -1.0, param_pos);
        }
    } else {
        if max < 1.0 {
            return Ok(Vec::new());
        }
        if any_nan {
            return Err(EvalError::Execution("Parameter value is NaN".to_string()));
        }
        if min <= MIN_INT64_F {
            return Err(EvalError::Execution(format!(
                "Scalar value {} underflows int64",
                go_v(min)
            )));
        }
        if max >= MAX_INT64_F {
            return Err(EvalError::Execution(format!(
                "Scalar value {} overflows int64",
                go_v(max)
            )));
        }
    }
    let groups = grouping.assign(&input);
    let total = input.len() as i64;
    // One heap per step, reused group after group.
    ev.charge(n)?;
    let mut heaps: Vec<Option<GoHeap>> = (0..n).map(|_| None).collect();
    let reverse = op == T_BOTTOMK;
    let mut points: Vec<Vec<Sample>> = vec![Vec::new(); input.len()];
    // Series in the order they are first emitted: the result order of an
    // instant query (groups in order, each group's heap in output order).
    let mut order: Vec<usize> = Vec::new();
    for members in &groups {
        ev.tick()?;
        for &si in members {
            let s = &input[si];
            let ratio_offset = if op == T_LIMIT_RATIO {
                ratio_offset(&s.labels)
            } else {
                0.0
            };
            for p in &s.points {
                let step = g.index(p.t);
                let fparam = param.get(step).copied().unwrap_or(f64::NAN);
                offer(
                    &mut heaps[step],
                    op,
                    reverse,
                    fparam,
                    total,
                    ratio_offset,
                    (si, p.v),
                );
            }
        }
        for (step, slot) in heaps.iter_mut().enumerate() {
            let Some(h) = slot.take() else { continue };
            let items = match op {
                T_TOPK | T_BOTTOMK => h.into_sorted(),
                _ => h.items,
            };
            for (si, v) in items {
                if points[si].is_empty() {
                    order.push(si);
                }
                points[si].push(Sample { t: g.ts(step), v });
            }
        }
    }
    ev.release(n);
    let mut input: Vec<Option<Series>> = input.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(order.len());
    for si in order {
        if let Some(mut s) = input[si].take() {
            s.points = std::mem::take(&mut points[si]);
            out.push(s);
        }
    }
    Ok(out)
}

/// Offers one value to a group's heap for one step, keeping what `topk`,
/// `bottomk`, `limitk` or `limit_ratio` keep.
fn offer(
    slot: &mut Option<GoHeap>,
    op: u16,
    reverse: bool,
    fparam: f64,
    total: i64,
    ratio_offset: f64,
    x: (usize, f64),
) {
    if op == T_LIMIT_RATIO {
        if fparam == 0.0 {
            return;
        }
        let r = fparam.clamp(-1.0, 1.0);
        let h = slot.get_or_insert_with(|| GoHeap {
            items: Vec::new(),
            reverse: false,
        });
        if (r >= 0.0 && ratio_offset < r) || (r < 0.0 && ratio_offset >= 1.0 + r) {
            h.push(x);
        }
        return;
    }
    let k = (fparam as i64).min(total);
    if k < 1 {
        return;
    }
    let k = k as usize;
    let h = slot.get_or_insert_with(|| GoHeap {
        items: Vec::with_capacity(k.min(64)),
        reverse,
    });
    if h.items.len() < k {
        h.push(x);
        return;
    }
    if op == T_LIMITK {
        return;
    }
    let top = h.items[0].1;
    let better = if reverse { top > x.1 } else { top < x.1 };
    if better || (top.is_nan() && !x.1.is_nan()) {
        h.items[0] = x;
        if k > 1 {
            h.fix_top();
        }
    }
}

/// Where a series falls in `[0, 1)` for `limit_ratio`: its label hash
/// scaled, so the same series are picked at every step and by every
/// replica (xxhash64 of the label set, as Prometheus computes it).
fn ratio_offset(l: &Labels) -> f64 {
    let mut buf = Vec::with_capacity(64);
    for lb in l.iter() {
        buf.extend_from_slice(lb.name.as_bytes());
        buf.push(0xff);
        buf.extend_from_slice(lb.value.as_bytes());
        buf.push(0xff);
    }
    xxhash64(&buf) as f64 / u64::MAX as f64
}

/// xxHash64 with seed 0 (the public XXH64 algorithm).
fn xxhash64(data: &[u8]) -> u64 {
    const P1: u64 = 0x9E37_79B1_85EB_CA87;
    const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    const P3: u64 = 0x1656_67B1_9E37_79F9;
    const P4: u64 = 0x85EB_CA77_C2B2_AE63;
    const P5: u64 = 0x27D4_EB2F_1656_67C5;
    fn round(acc: u64, input: u64) -> u64 {
        acc.wrapping_add(input.wrapping_mul(P2))
            .rotate_left(31)
            .wrapping_mul(P1)
    }
    fn merge(acc: u64, val: u64) -> u64 {
        (acc ^ round(0, val)).wrapping_mul(P1).wrapping_add(P4)
    }
    let read64 = |b: &[u8]| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let read32 = |b: &[u8]| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let len = data.len();
    let mut rest = data;
    let mut h: u64;
    if len >= 32 {
        let mut v1 = P1.wrapping_add(P2);
        let mut v2 = P2;
        let mut v3 = 0u64;
        let mut v4 = 0u64.wrapping_sub(P1);
        while rest.len() >= 32 {
            v1 = round(v1, read64(&rest[0..]));
            v2 = round(v2, read64(&rest[8..]));
            v3 = round(v3, read64(&rest[16..]));
            v4 = round(v4, read64(&rest[24..]));
            rest = &rest[32..];
        }
        h = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        h = merge(h, v1);
        h = merge(h, v2);
        h = merge(h, v3);
        h = merge(h, v4);
    } else {
        h = P5;
    }
    h = h.wrapping_add(len as u64);
    while rest.len() >= 8 {
        h ^= round(0, read64(rest));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        h ^= read32(rest).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = &rest[4..];
    }
    for &b in rest {
        h ^= u64::from(b).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^= h >> 32;
    h
}

fn count_values(
    ev: &mut Evaluator<'_>,
    a: &AggregateExpr,
    grouping: Grouping,
    g: Grid,
) -> Result<Val, EvalError> {
    let label = match a.param.as_deref() {
        Some(Expr::StringLiteral(s)) => s.val.clone(),
        Some(Expr::Paren(p)) => match &*p.expr {
            Expr::StringLiteral(s) => s.val.clone(),
            _ => String::new(),
        },
        _ => String::new(),
    };
    if label.is_empty() {
        return Err(EvalError::Execution(format!(
            "invalid label name {}",
            super::labels::go_quote(&label)
        )));
    }
    let mut grouping = grouping;
    if !grouping.without && !grouping.listed(&label) {
        grouping.names.push(label.clone());
        grouping.names.sort();
    }
    let input = ev.eval_vector(&a.expr, g)?;
    let inputs: usize = input.iter().map(|s| s.points.len()).sum();
    let n = g.len();
    // Step by step: the output labels of a sample depend on its value.
    // Each series remembers its last value's output, so a steady value
    // costs no label work.
    let mut cursor = StepCursor::new(input.len());
    let mut now = Vec::new();
    let mut last: Vec<Option<(u64, usize)>> = vec![None; input.len()];
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<Series> = Vec::new();
    let mut counts: Vec<f64> = Vec::new();
    let mut touched: Vec<usize> = Vec::new();
    let mut charged = 0;
    for step in 0..n {
        ev.tick()?;
        let t = g.ts(step);
        cursor.at(&input, t, &mut now);
        for &(si, v) in &now {
            let bits = v.to_bits();
            let oi = match last[si] {
                Some((b, oi)) if b == bits => oi,
                _ => {
                    let mut b = input[si].labels.builder();
                    b.set(&label, go_f(v));
                    let labels = grouping.labels(&b.build());
                    let oi = match index.get(&labels) {
                        Some(&i) => i,
                        None => {
                            index.insert(labels.clone(), out.len());
                            out.push(Series::new(labels, false, Vec::new()));
                            counts.push(0.0);
                            out.len() - 1
                        }
                    };
                    last[si] = Some((bits, oi));
                    oi
                }
            };
            if counts[oi] == 0.0 {
                touched.push(oi);
            }
            counts[oi] += 1.0;
        }
        for &oi in &touched {
            out[oi].points.push(Sample { t, v: counts[oi] });
            counts[oi] = 0.0;
        }
        charged += touched.len();
        ev.charge(touched.len())?;
        touched.clear();
    }
    ev.release(charged);
    let out = Val::Vector(out);
    ev.settle(inputs, &out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxhash_matches_reference_vectors() {
        assert_eq!(xxhash64(b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxhash64(b"a"), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxhash64(b"abc"), 0x44BC_2CF5_AD77_0999);
        assert_eq!(
            xxhash64(b"Nobody inspects the spammish repetition"),
            0xFBCE_A83C_8A37_8BF1
        );
    }

    #[test]
    fn quantile_interpolates() {
        let mut v = vec![4.0, 1.0, 2.0, 3.0];
        assert_eq!(quantile(0.5, &mut v), 2.5);
        assert_eq!(quantile(1.0, &mut v), 4.0);
        assert!(quantile(f64::NAN, &mut v).is_nan());
        assert_eq!(quantile(-1.0, &mut v), f64::NEG_INFINITY);
    }

    #[test]
    fn kahan_compensates() {
        let (mut s, mut c) = (0.0, 0.0);
        for x in [1e100, 1.0, -1e100] {
            (s, c) = kahan_inc(x, s, c);
        }
        assert_eq!(s + c, 1.0);
    }
}
