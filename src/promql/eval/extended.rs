//! The arithmetic behind the experimental `anchored` and `smoothed`
//! selector modifiers (Prometheus feature "promql-extended-range-selectors"),
//! for float samples.
//!
//! A range `(start, end]` with one of these modifiers is evaluated over a
//! wider selection: `anchored` also sees the samples up to one lookback
//! delta before `start`, `smoothed` additionally the samples up to one
//! lookback delta after `end`. The helpers here take such a widened window
//! (sorted by time, staleness markers removed) and the unwidened bounds.
//!
//! * `anchored`: the value at `start` is the last sample at or before it, so
//!   `increase` counts from a real sample instead of extrapolating.
//! * `smoothed`: the values at `start` and `end` are interpolated between
//!   the samples around them.

use crate::model::Sample;

/// The linear interpolation at `t` between samples `a` and `b`.
///
/// For a counter, a decrease from `a` to `b` is a reset: the counter
/// restarted from zero somewhere in between, so the line runs from zero at
/// `a.t` rather than from `a.v` (the least increase consistent with both).
pub(crate) fn interpolate(a: Sample, b: Sample, t: i64, counter: bool) -> f64 {
    let from = if counter && b.v < a.v { 0.0 } else { a.v };
    from + (b.v - from) * (t - a.t) as f64 / (b.t - a.t) as f64
}

/// Indices of the samples that stand for the two ends of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ends {
    /// The last sample at or before `start` (the anchor), else the first.
    first: usize,
    /// Anchored: the last sample. Smoothed: the first sample at or after
    /// `end`, else the last.
    last: usize,
}

/// Picks the boundary samples of `(start, end]` in the widened window `w`,
/// or `None` when the range holds no sample of its own (everything is at or
/// before `start`, or, smoothed, after `end`).
fn ends(w: &[Sample], start: i64, end: i64, smoothed: bool) -> Option<Ends> {
    let (_, head) = w.split_last()?;
    // The last sample never serves as the anchor: an anchor needs a sample
    // after it for the range to be non-empty.
    let first = head.partition_point(|p| p.t <= start).saturating_sub(1);
    let last = if smoothed {
        head.partition_point(|p| p.t < end)
    } else {
        head.len()
    };
    if w[last].t <= start || (smoothed && w[first].t > end) {
        return None;
    }
    Some(Ends { first, last })
}

/// The value at `start`: the anchor sample's, or (smoothed, when the anchor
/// lies before `start`) interpolated towards the sample after it.
fn left_value(w: &[Sample], e: Ends, start: i64, smoothed: bool, counter: bool) -> f64 {
    let a = w[e.first];
    match w.get(e.first + 1) {
        Some(&b) if smoothed && a.t < start => interpolate(a, b, start, counter),
        _ => a.v,
    }
}

/// The value at `end`: the last sample's, or (smoothed, when that sample
/// lies after `end`) interpolated from the sample before it.
fn right_value(w: &[Sample], e: Ends, end: i64, smoothed: bool, counter: bool) -> f64 {
    let b = w[e.last];
    if smoothed && e.last > 0 && b.t > end {
        interpolate(w[e.last - 1], b, end, counter)
    } else {
        b.v
    }
}

/// The samples between the two boundary values: the boundary samples are
/// left out when they sit on or beyond the bounds, since the boundary
/// values already stand for them.
fn inner(w: &[Sample], e: Ends, start: i64, end: i64) -> &[Sample] {
    let lo = e.first + usize::from(w[e.first].t <= start);
    let hi = if w[e.last].t >= end {
        e.last
    } else {
        e.last + 1
    };
    w.get(lo..hi).unwrap_or(&[])
}

/// `rate`, `increase` and `delta` over an anchored or smoothed range: the
/// difference of the boundary values, plus (for counters) the value lost at
/// each reset between them; no extrapolation.
pub(crate) fn rate(
    w: &[Sample],
    start: i64,
    end: i64,
    range_secs: f64,
    smoothed: bool,
    counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let e = ends(w, start, end, smoothed)?;
    let left = left_value(w, e, start, smoothed, counter);
    let right = right_value(w, e, end, smoothed, counter);
    let mut result = right - left;
    if counter {
        // Resets across a boundary are already in the interpolated boundary
        // values; only the ones from `left` through the inner samples to
        // `right` remain.
        let mut prev = left;
        for p in inner(w, e, start, end) {
            if p.v < prev {
                result += prev;
            }
            prev = p.v;
        }
        if right < prev {
            result += prev;
        }
    }
    if is_rate {
        result /= range_secs;
    }
    Some(result)
}

/// The values of an anchored range in time order: the anchor's (standing at
/// `start`), the inner samples', and the last sample's (standing at `end`).
fn anchored_values(w: &[Sample], start: i64, end: i64) -> Option<impl Iterator<Item = f64>> {
    let e = ends(w, start, end, false)?;
    let left = w[e.first].v;
    let right = w[e.last].v;
    Some(
        std::iter::once(left)
            .chain(inner(w, e, start, end).iter().map(|p| p.v))
            .chain(std::iter::once(right)),
    )
}

/// `changes` (or with `resets`, `resets`) over an anchored range: counted
/// from the anchor sample on, so a change right after the range start is
/// not lost.
pub(crate) fn anchored_changes(w: &[Sample], start: i64, end: i64, resets: bool) -> Option<f64> {
    let mut values = anchored_values(w, start, end)?;
    let mut prev = values.next()?;
    let mut count = 0usize;
    for v in values {
        let hit = if resets {
            v < prev
        } else {
            v != prev && !(v.is_nan() && prev.is_nan())
        };
        count += usize::from(hit);
        prev = v;
    }
    Some(count as f64)
}

/// An anchored or smoothed range as a value: the samples inside it, with
/// the boundary values placed at `start` and `end` (interpolated as for a
/// gauge when smoothed, since the kind of the series is unknown).
pub(crate) fn extended_points(
    w: &[Sample],
    start: i64,
    end: i64,
    smoothed: bool,
) -> Option<Vec<Sample>> {
    let e = ends(w, start, end, smoothed)?;
    let left = left_value(w, e, start, smoothed, false);
    let right = right_value(w, e, end, smoothed, false);
    let mid = inner(w, e, start, end);
    let mut out = Vec::with_capacity(mid.len() + 2);
    out.push(Sample { t: start, v: left });
    out.extend_from_slice(mid);
    out.push(Sample { t: end, v: right });
    Some(out)
}

/// A smoothed instant selector's value at `t`, from the newest sample at or
/// before `t` and the first one after it (if within the lookback): exact on
/// a sample, interpolated as for a gauge between two, and the older value
/// carried forward when nothing follows.
pub(crate) fn smoothed_value(prev: Sample, next: Option<Sample>, t: i64) -> f64 {
    match next {
        Some(n) if prev.t < t && n.t > t => interpolate(prev, n, t, false),
        _ => prev.v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(i64, f64)]) -> Vec<Sample> {
        points.iter().map(|&(t, v)| Sample { t, v }).collect()
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn interpolation_models_a_counter_reset_as_a_restart_from_zero() {
        let a = Sample { t: 0, v: 100.0 };
        let b = Sample { t: 15_000, v: 10.0 };
        assert!((interpolate(a, b, 12_000, true) - 8.0).abs() < 1e-12);
        assert!((interpolate(a, b, 5_000, false) - 70.0).abs() < 1e-12);
        let c = Sample { t: 30_000, v: 40.0 };
        assert!((interpolate(b, c, 20_000, true) - 20.0).abs() < 1e-12);
    }

    #[test]
    fn anchor_is_the_last_sample_at_or_before_the_start() {
        let w = series(&[(0, 1.0), (60_000, 2.0), (120_000, 3.0)]);
        let e = ends(&w, 60_000, 120_000, false);
        assert_eq!(e, Some(Ends { first: 1, last: 2 }));
        // Without a sample inside the range there is no result.
        assert_eq!(ends(&w, 120_000, 180_000, false), None);
        // Without a sample before the range the first one stands in.
        assert_eq!(
            ends(&w, -30_000, 90_000, false),
            Some(Ends { first: 0, last: 2 })
        );
    }

    #[test]
    fn anchored_increase_counts_between_real_samples_across_resets() {
        // 5 10 3 at 0s, 30s, 60s: 10-5, then a reset to 3.
        let w = series(&[(0, 5.0), (30_000, 10.0), (60_000, 3.0)]);
        assert!(close(rate(&w, 0, 70_000, 70.0, false, true, false), 8.0));
        assert!(close(rate(&w, 0, 70_000, 70.0, false, false, false), -2.0));
        assert!(close(
            rate(&w, 0, 70_000, 70.0, false, true, true),
            8.0 / 70.0
        ));
    }

    #[test]
    fn smoothed_increase_interpolates_both_ends() {
        // 1 2 _ 4 5 at one-minute steps; the range (1m, 2m] has no sample of
        // its own, its end is interpolated between 1m and 3m.
        let w = series(&[(0, 1.0), (60_000, 2.0), (180_000, 4.0), (240_000, 5.0)]);
        assert!(close(
            rate(&w, 60_000, 120_000, 60.0, true, true, false),
            1.0
        ));
        // 9 8 5 4: resets everywhere.
        let w = series(&[(0, 9.0), (60_000, 8.0), (120_000, 5.0), (180_000, 4.0)]);
        assert!(close(
            rate(&w, 15_000, 135_000, 120.0, true, true, false),
            12.0
        ));
    }

    #[test]
    fn smoothed_range_needs_samples_on_both_sides_of_its_start() {
        let w = series(&[(10_000, 5.0), (20_000, 6.0)]);
        assert_eq!(rate(&w, 0, 5_000, 5.0, true, true, false), None);
        assert_eq!(rate(&w, 55_000, 60_000, 5.0, true, true, false), None);
        assert!(close(rate(&w, 5_000, 15_000, 10.0, true, true, false), 0.5));
    }

    #[test]
    fn anchored_changes_count_from_the_anchor() {
        let w = series(&[(0, 1.0), (60_000, 2.0), (120_000, 3.0)]);
        assert!(close(anchored_changes(&w, 60_000, 120_000, false), 1.0));
        assert!(close(anchored_changes(&w, 0, 120_000, false), 2.0));
        let w = series(&[(0, 3.0), (60_000, 2.0), (120_000, 1.0)]);
        assert!(close(anchored_changes(&w, 30_000, 120_000, true), 2.0));
        assert_eq!(anchored_changes(&w, 120_000, 180_000, true), None);
    }

    #[test]
    fn extended_points_place_the_boundaries_on_the_range_edges() {
        let w = series(&[(0, 0.0), (60_000, 6.0), (120_000, 12.0)]);
        let p = extended_points(&w, 30_000, 90_000, true);
        assert_eq!(
            p,
            Some(series(&[(30_000, 3.0), (60_000, 6.0), (90_000, 9.0)]))
        );
        // An anchored window ends at the range end; its last sample is
        // repeated at the end when it lies before it.
        let p = extended_points(&w[..2], 30_000, 90_000, false);
        assert_eq!(
            p,
            Some(series(&[(30_000, 0.0), (60_000, 6.0), (90_000, 6.0)]))
        );
    }

    #[test]
    fn smoothed_value_is_exact_on_samples_and_carries_forward() {
        let a = Sample { t: 0, v: 1.0 };
        let b = Sample { t: 10_000, v: 2.0 };
        assert_eq!(smoothed_value(a, Some(b), 5_000), 1.5);
        assert_eq!(smoothed_value(a, Some(b), 0), 1.0);
        assert_eq!(smoothed_value(b, None, 15_000), 2.0);
    }
}
