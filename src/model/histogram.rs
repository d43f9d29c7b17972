//! Native histogram values (float flavour), as PromQL sees them: schema,
//! zero bucket, positive and negative exponential buckets (or custom
//! bounds), count, sum and the counter-reset hint; plus the `{{...}}` text
//! notation of promqltest and promtool unit tests.
//!
//! Behaviour follows Prometheus's `model/histogram/float_histogram.go`
//! (`Add`, `Sub`, `DetectReset`, `Equals`, `TestExpression`) and the
//! histogram literal of `promql/parser` (`buildHistogramFromMap`).
//!
//! Representation: each side (positive, negative) is ONE dense span, an
//! offset (index of its first bucket) and the buckets from there on.
//! Prometheus allows several spans with gaps; a gap is stored here as
//! buckets holding 0. That is exactly what Prometheus's canonical text
//! (`Compact(MaxInt)`, a single span per side) shows, so printing and
//! arithmetic agree with Prometheus; only `equals` sees the difference (a
//! gap and an explicit empty bucket are the same layout here).

use std::fmt;

// Go's `%g`, as Prometheus prints histogram fields.
use super::format_float_g as go_g;

/// What is known about a counter reset between this sample and the one
/// before it in the same series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CounterResetHint {
    #[default]
    Unknown,
    CounterReset,
    NotCounterReset,
    Gauge,
}

impl CounterResetHint {
    /// The word of the `counter_reset_hint:` key.
    pub fn as_str(self) -> &'static str {
        match self {
            CounterResetHint::Unknown => "unknown",
            CounterResetHint::CounterReset => "reset",
            CounterResetHint::NotCounterReset => "not_reset",
            CounterResetHint::Gauge => "gauge",
        }
    }

    /// Reads the word of the `counter_reset_hint:` key.
    pub fn from_word(word: &str) -> Option<CounterResetHint> {
        match word {
            "unknown" => Some(CounterResetHint::Unknown),
            "reset" => Some(CounterResetHint::CounterReset),
            "not_reset" => Some(CounterResetHint::NotCounterReset),
            "gauge" => Some(CounterResetHint::Gauge),
            _ => None,
        }
    }
}

/// One native histogram sample value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloatHistogram {
    pub counter_reset_hint: CounterResetHint,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    /// Index of the first positive bucket, and the buckets from there on.
    pub positive_offset: i32,
    pub positive_buckets: Vec<f64>,
    pub negative_offset: i32,
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of the custom buckets (schema -53).
    pub custom_values: Vec<f64>,
}

/// The keys of the `{{...}}` notation, in the order the error message
/// lists them.
const KEYS: [&str; 11] = [
    "schema",
    "sum",
    "count",
    "z_bucket",
    "z_bucket_w",
    "buckets",
    "offset",
    "n_buckets",
    "n_offset",
    "custom_values",
    "counter_reset_hint",
];

impl FloatHistogram {
    /// Schema number of histograms with custom bucket bounds (NHCB).
    pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

    /// Whether the buckets are custom (`custom_values`) rather than
    /// exponential.
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == Self::CUSTOM_BUCKETS_SCHEMA
    }

    /// Parses `{{schema:1 sum:3 count:2 buckets:[1 1]}}`.
    ///
    /// Keys may come in any order; every key is optional (0 or empty).
    /// `buckets` with `offset` (default 0) form one span, as do
    /// `n_buckets` with `n_offset`. Nothing is validated beyond the syntax
    /// (as in Prometheus, where the storage rejects invalid histograms);
    /// in particular `custom_values` does not set the schema. An offset
    /// without buckets is dropped (Prometheus makes no span then).
    pub fn parse(text: &str) -> Result<FloatHistogram, String> {
        let whole = text.trim();
        let inner = whole
            .strip_prefix("{{")
            .and_then(|s| s.strip_suffix("}}"))
            .ok_or_else(|| {
                format!("invalid histogram {whole:?}: it must be written as {{{{key:value ...}}}}")
            })?;
        let mut h = FloatHistogram::default();
        let mut seen: Vec<&str> = Vec::new();
        let mut pos_offset: i32 = 0;
        let mut neg_offset: i32 = 0;
        let mut rest = inner.trim_start();
        while !rest.is_empty() {
            // A key runs up to its colon; a stray word without one is
            // reported as an unknown key or a missing colon below.
            let key_end = rest
                .find(|c: char| c == ':' || c.is_whitespace())
                .unwrap_or(rest.len());
            let key = &rest[..key_end];
            if !KEYS.contains(&key) {
                return Err(format!(
                    "unknown key {key:?} in histogram {whole}: use {}",
                    KEYS.join(", ")
                ));
            }
            if seen.contains(&key) {
                return Err(format!("duplicate key {key:?} in histogram {whole}"));
            }
            seen.push(key);
            let Some(after) = rest[key_end..].strip_prefix(':') else {
                return Err(format!(
                    "expected \":\" after key {key:?} in histogram {whole}"
                ));
            };
            let after = after.trim_start();
            let (value, tail) = if matches!(key, "buckets" | "n_buckets" | "custom_values") {
                let Some(list) = after.strip_prefix('[') else {
                    return Err(format!(
                        "expected a list like [1 2 3] after \"{key}:\" in histogram {whole}"
                    ));
                };
                let Some(close) = list.find(']') else {
                    return Err(format!(
                        "missing \"]\" after the list of {key:?} in histogram {whole}"
                    ));
                };
                (&list[..close], &list[close + 1..])
            } else {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            // Items are separated by whitespace, as in Prometheus's grammar.
            if tail.chars().next().is_some_and(|c| !c.is_whitespace()) {
                return Err(format!(
                    "expected a space after the value of {key:?} in histogram {whole}"
                ));
            }
            rest = tail.trim_start();
            match key {
                "schema" => h.schema = parse_int(key, value, whole)?,
                "sum" => h.sum = parse_number(key, value, whole)?,
                "count" => h.count = parse_number(key, value, whole)?,
                "z_bucket" => h.zero_count = parse_number(key, value, whole)?,
                "z_bucket_w" => {
                    let w = parse_number(key, value, whole)?;
                    // The grammar takes an unsigned number here.
                    if w < 0.0 {
                        return Err(format!(
                            "z_bucket_w must not be negative, got {value:?} in histogram {whole}"
                        ));
                    }
                    h.zero_threshold = w;
                }
                "buckets" => h.positive_buckets = parse_list(key, value, whole)?,
                "n_buckets" => h.negative_buckets = parse_list(key, value, whole)?,
                "custom_values" => h.custom_values = parse_list(key, value, whole)?,
                "offset" => pos_offset = parse_int(key, value, whole)?,
                "n_offset" => neg_offset = parse_int(key, value, whole)?,
                _ => {
                    // Only "counter_reset_hint" is left among KEYS.
                    h.counter_reset_hint = CounterResetHint::from_word(value).ok_or_else(|| {
                        format!(
                            "invalid counter_reset_hint {value:?} in histogram {whole}: use unknown, reset, not_reset or gauge"
                        )
                    })?;
                }
            }
        }
        for (key, off, len) in [
            ("buckets", pos_offset, h.positive_buckets.len()),
            ("n_buckets", neg_offset, h.negative_buckets.len()),
        ] {
            // Bucket indices are int32 in Prometheus; keep the last one
            // representable so index arithmetic never overflows.
            if len > 0 && i64::from(off) + len as i64 - 1 > i64::from(i32::MAX) {
                return Err(format!(
                    "{key:?} reach past bucket index {} in histogram {whole}",
                    i32::MAX
                ));
            }
        }
        if !h.positive_buckets.is_empty() {
            h.positive_offset = pos_offset;
        }
        if !h.negative_buckets.is_empty() {
            h.negative_offset = neg_offset;
        }
        Ok(h)
    }

    /// `self + other`, bucket by bucket (for `a+bxN` expansions and the
    /// PromQL `+`), as Prometheus's `FloatHistogram.Add`:
    ///
    /// * exponential and custom-bucket histograms cannot be mixed (Err);
    /// * different schemas: the finer side is merged down to the coarser
    ///   schema first;
    /// * different zero thresholds: the larger one wins and buckets below it
    ///   move into the zero bucket (the threshold grows to a bucket
    ///   boundary if it falls inside a populated bucket);
    /// * different custom bounds: both sides are mapped onto the bounds they
    ///   have in common (see [`Self::add_detailed`] to learn that it happened);
    /// * the hint: equal hints stay, a gauge on either side gives a gauge,
    ///   otherwise unknown.
    pub fn add(&self, other: &FloatHistogram) -> Result<FloatHistogram, String> {
        self.combine(other, false).map(|(h, _, _)| h)
    }

    /// `self - other` (for `a-bxN` expansions), as Prometheus's
    /// `FloatHistogram.Sub`: same rules as [`Self::add`], including the hint.
    /// (PromQL's `-` operator marks its result a gauge afterwards; that is
    /// the caller's job, as in Prometheus.)
    pub fn sub(&self, other: &FloatHistogram) -> Result<FloatHistogram, String> {
        self.combine(other, true).map(|(h, _, _)| h)
    }

    /// [`Self::add`], also telling whether the hints collided (one
    /// `reset`, the other `not_reset`) and whether mismatched custom bounds
    /// were reconciled: `(sum, counter_reset_collision, bounds_reconciled)`.
    /// PromQL reports both as annotations.
    pub fn add_detailed(
        &self,
        other: &FloatHistogram,
    ) -> Result<(FloatHistogram, bool, bool), String> {
        self.combine(other, false)
    }

    /// [`Self::sub`] with the same extra answers as [`Self::add_detailed`].
    pub fn sub_detailed(
        &self,
        other: &FloatHistogram,
    ) -> Result<(FloatHistogram, bool, bool), String> {
        self.combine(other, true)
    }

    /// The `{{H}}+{{D}}xK` (or `-` with `subtract`) expansion of test data:
    /// K+1 histograms H, H+D, H+D+D, ... by repeated addition, as
    /// Prometheus's parser does it (it refuses a running histogram with a
    /// finer schema than D).
    pub fn series_expansion(
        base: &FloatHistogram,
        step: &FloatHistogram,
        times: u64,
        subtract: bool,
    ) -> Result<Vec<FloatHistogram>, String> {
        let mut out = Vec::new();
        let mut cur = base.clone();
        for _ in 0..times {
            if cur.schema > step.schema {
                return Err(format!(
                    "error combining histograms: cannot merge from schema {} to {}",
                    step.schema, cur.schema
                ));
            }
            let next = cur.combine(step, subtract)?.0;
            out.push(std::mem::replace(&mut cur, next));
        }
        out.push(cur);
        Ok(out)
    }

    /// Whether `self`, following `prev` in a counter, shows a reset, as
    /// Prometheus's `DetectReset`:
    ///
    /// * hint `reset` → true, hint `not_reset` → false, without looking;
    /// * otherwise (`unknown`, and also `gauge`, which Prometheus treats as a
    ///   counter here because PromQL may apply counter functions to gauges):
    ///   true if the count decreased, the schema got finer, the zero
    ///   threshold shrank or now cuts through a populated bucket of `prev`,
    ///   the zero count or any bucket decreased (`prev` merged down to this
    ///   schema and threshold first), a populated bucket of `prev` is
    ///   missing, or the kind of buckets changed (exponential ↔ custom). With
    ///   different custom bounds, buckets are compared on the bounds both
    ///   have.
    pub fn detect_reset(&self, prev: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::CounterReset => return true,
            CounterResetHint::NotCounterReset => return false,
            CounterResetHint::Unknown | CounterResetHint::Gauge => {}
        }
        if self.count < prev.count {
            return true;
        }
        if self.uses_custom_buckets() {
            if !prev.uses_custom_buckets() {
                return true;
            }
            if !bounds_match(&self.custom_values, &prev.custom_values) {
                return self.reset_with_mismatched_bounds(prev);
            }
        }
        if self.schema > prev.schema {
            return true;
        }
        if self.zero_threshold < prev.zero_threshold {
            return true;
        }
        let (prev_zero_count, threshold) =
            prev.zero_count_for_larger_threshold(self.zero_threshold);
        if threshold != self.zero_threshold {
            // The new threshold lies inside a populated bucket of `prev`.
            return true;
        }
        if self.zero_count < prev_zero_count {
            return true;
        }
        let exponential = !self.uses_custom_buckets();
        let sides = [
            (
                (self.positive_offset, &self.positive_buckets),
                (prev.positive_offset, &prev.positive_buckets),
            ),
            (
                (self.negative_offset, &self.negative_buckets),
                (prev.negative_offset, &prev.negative_buckets),
            ),
        ];
        sides.into_iter().any(|((co, cb), (po, pb))| {
            let start = if exponential {
                self.zero_threshold
            } else {
                0.0
            };
            let curr = bucket_list(co, cb, self.schema, self.schema, start, exponential);
            let prev = bucket_list(po, pb, prev.schema, self.schema, start, exponential);
            buckets_decreased(&curr, &prev)
        })
    }

    /// Exact equality as Prometheus's `FloatHistogram.Equals`, plus the
    /// counter-reset hint (promtool compares the canonical text, which
    /// shows the hint).
    ///
    /// Count, sum, zero count and bucket counts compare by bit pattern (so a
    /// NaN sum equals the same NaN, and 0 differs from -0); the zero
    /// threshold and the custom bounds compare as numbers. The bucket
    /// layout must match: the same offset and the same number of buckets on
    /// each side, so explicit empty buckets at either end DO count (they are
    /// part of the span, as in Prometheus; compare [`Self::compact`]ed
    /// copies to ignore them). Two sides without buckets match whatever
    /// their offsets say. Custom bounds are compared only for schema -53.
    pub fn equals(&self, other: &FloatHistogram) -> bool {
        let same_bits = |a: f64, b: f64| a.to_bits() == b.to_bits();
        self.counter_reset_hint == other.counter_reset_hint
            && self.schema == other.schema
            && same_bits(self.count, other.count)
            && same_bits(self.sum, other.sum)
            && (!self.uses_custom_buckets()
                || bounds_match(&self.custom_values, &other.custom_values))
            && self.zero_threshold == other.zero_threshold
            && same_bits(self.zero_count, other.zero_count)
            && side_equals(
                (self.negative_offset, &self.negative_buckets),
                (other.negative_offset, &other.negative_buckets),
            )
            && side_equals(
                (self.positive_offset, &self.positive_buckets),
                (other.positive_offset, &other.positive_buckets),
            )
    }

    /// Drops empty (0) buckets at both ends of each side, moving the offset
    /// along; a side with only empty buckets loses them all (offset 0).
    /// Empty buckets in the middle stay, as after Prometheus's
    /// `Compact(MaxInt)`. This is the layout the canonical text shows.
    pub fn compact(&mut self) {
        compact_side(&mut self.positive_offset, &mut self.positive_buckets);
        compact_side(&mut self.negative_offset, &mut self.negative_buckets);
    }

    /// A copy with its buckets merged down to the coarser exponential
    /// `target` schema (bucket `i` of schema `s` lands in bucket
    /// `((i - 1) >> (s - target)) + 1`), as Prometheus's `CopyToSchema`.
    pub fn to_schema(&self, target: i32) -> Result<FloatHistogram, String> {
        if self.uses_custom_buckets() || target == Self::CUSTOM_BUCKETS_SCHEMA {
            return Err("cannot change the schema of histograms with custom buckets".to_string());
        }
        if target > self.schema {
            return Err(format!(
                "cannot reduce resolution from schema {} to {target}",
                self.schema
            ));
        }
        let mut h = self.clone();
        reduce_side(
            &mut h.positive_offset,
            &mut h.positive_buckets,
            self.schema,
            target,
        );
        reduce_side(
            &mut h.negative_offset,
            &mut h.negative_buckets,
            self.schema,
            target,
        );
        h.schema = target;
        Ok(h)
    }

    /// Addition or subtraction, answering (result, hint collision, custom
    /// bounds reconciled). Mirrors the order of Prometheus's `Add`/`Sub` so
    /// that floats come out bit for bit the same: zero buckets first, then
    /// count and sum, then buckets.
    fn combine(
        &self,
        other: &FloatHistogram,
        subtract: bool,
    ) -> Result<(FloatHistogram, bool, bool), String> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err("cannot apply this operation on histograms with a mix of exponential and custom bucket schemas".to_string());
        }
        let mut h = self.clone();
        let collision = h.adjust_counter_reset(other);
        let sign = if subtract { -1.0 } else { 1.0 };
        if h.uses_custom_buckets() {
            if subtract {
                h.count -= other.count;
                h.sum -= other.sum;
            } else {
                h.count += other.count;
                h.sum += other.sum;
            }
            if bounds_match(&h.custom_values, &other.custom_values) {
                let (off, buckets) = add_side(
                    (h.positive_offset, &h.positive_buckets),
                    (other.positive_offset, &other.positive_buckets),
                    sign,
                    None,
                );
                h.positive_offset = off;
                h.positive_buckets = buckets;
                return Ok((h, collision, false));
            }
            let common = intersect_bounds(&h.custom_values, &other.custom_values);
            let mut target = vec![0.0; common.len() + 1];
            map_custom(
                (h.positive_offset, &h.positive_buckets),
                &h.custom_values,
                &common,
                &mut target,
                1.0,
            );
            map_custom(
                (other.positive_offset, &other.positive_buckets),
                &other.custom_values,
                &common,
                &mut target,
                sign,
            );
            h.positive_offset = 0;
            h.positive_buckets = target;
            compact_side(&mut h.positive_offset, &mut h.positive_buckets);
            h.custom_values = common;
            return Ok((h, collision, true));
        }

        let other_zero_count = h.reconcile_zero_buckets(other);
        if subtract {
            h.zero_count -= other_zero_count;
            h.count -= other.count;
            h.sum -= other.sum;
        } else {
            h.zero_count += other_zero_count;
            h.count += other.count;
            h.sum += other.sum;
        }

        let mut other_pos = (other.positive_offset, other.positive_buckets.clone());
        let mut other_neg = (other.negative_offset, other.negative_buckets.clone());
        if other.schema < h.schema {
            reduce_side(
                &mut h.positive_offset,
                &mut h.positive_buckets,
                h.schema,
                other.schema,
            );
            reduce_side(
                &mut h.negative_offset,
                &mut h.negative_buckets,
                h.schema,
                other.schema,
            );
            h.schema = other.schema;
        } else if other.schema > h.schema {
            reduce_side(&mut other_pos.0, &mut other_pos.1, other.schema, h.schema);
            reduce_side(&mut other_neg.0, &mut other_neg.1, other.schema, h.schema);
        }
        let skip = Some((h.schema, h.zero_threshold));
        let (off, buckets) = add_side(
            (h.positive_offset, &h.positive_buckets),
            (other_pos.0, &other_pos.1),
            sign,
            skip,
        );
        h.positive_offset = off;
        h.positive_buckets = buckets;
        let (off, buckets) = add_side(
            (h.negative_offset, &h.negative_buckets),
            (other_neg.0, &other_neg.1),
            sign,
            skip,
        );
        h.negative_offset = off;
        h.negative_buckets = buckets;
        Ok((h, collision, false))
    }

    /// Prometheus's `adjustCounterReset`: the hint of a sum or difference.
    /// Returns whether `reset` met `not_reset`.
    fn adjust_counter_reset(&mut self, other: &FloatHistogram) -> bool {
        use CounterResetHint::*;
        match (self.counter_reset_hint, other.counter_reset_hint) {
            (a, b) if a == b => false,
            (Gauge, _) => false,
            (_, Gauge) => {
                self.counter_reset_hint = Gauge;
                false
            }
            (Unknown, _) => false,
            (_, Unknown) => {
                self.counter_reset_hint = Unknown;
                false
            }
            _ => {
                // `reset` against `not_reset`: nothing sensible to keep.
                self.counter_reset_hint = Unknown;
                true
            }
        }
    }

    /// What the zero count would be with the (larger or equal) threshold
    /// `larger`, and the threshold itself: if it falls inside a populated
    /// bucket it moves up to that bucket's upper bound. As Prometheus's
    /// `zeroCountForLargerThreshold`.
    fn zero_count_for_larger_threshold(&self, mut larger: f64) -> (f64, f64) {
        // Custom buckets have no zero bucket; exponential bounds would be
        // meaningless for them.
        if larger == self.zero_threshold || self.uses_custom_buckets() {
            return (self.zero_count, larger);
        }
        'outer: loop {
            let mut count = self.zero_count;
            for (i, &c) in self.positive_buckets.iter().enumerate() {
                let idx = i64::from(self.positive_offset) + i as i64;
                if exp_bound(idx - 1, self.schema) >= larger {
                    break;
                }
                count += c;
                let upper = exp_bound(idx, self.schema);
                if upper > larger {
                    if c != 0.0 {
                        larger = upper;
                    }
                    break;
                }
            }
            for (i, &c) in self.negative_buckets.iter().enumerate() {
                let idx = i64::from(self.negative_offset) + i as i64;
                if exp_bound(idx - 1, self.schema) >= larger {
                    break;
                }
                count += c;
                let upper = exp_bound(idx, self.schema);
                if upper > larger {
                    if c != 0.0 {
                        // The positive side was summed for a smaller
                        // threshold: start over with this one.
                        larger = upper;
                        continue 'outer;
                    }
                    break;
                }
            }
            return (count, larger);
        }
    }

    /// Empties the buckets that lie inside the zero bucket (their counts
    /// are already in the zero count), then trims the ends.
    fn trim_buckets_in_zero_bucket(&mut self) {
        let (schema, threshold) = (self.schema, self.zero_threshold);
        for (offset, buckets) in [
            (self.positive_offset, &mut self.positive_buckets),
            (self.negative_offset, &mut self.negative_buckets),
        ] {
            for (i, b) in buckets.iter_mut().enumerate() {
                if exp_bound(i64::from(offset) + i as i64 - 1, schema) >= threshold {
                    break;
                }
                *b = 0.0;
            }
        }
        self.compact();
    }

    /// Brings both zero buckets to a common threshold (changing `self`),
    /// and answers the zero count `other` would have with it.
    fn reconcile_zero_buckets(&mut self, other: &FloatHistogram) -> f64 {
        let mut other_count = other.zero_count;
        let mut other_threshold = other.zero_threshold;
        // Each round only moves thresholds up to bucket bounds, so this
        // ends; NaN thresholds would never compare equal, hence the guard.
        while other_threshold != self.zero_threshold
            && !other_threshold.is_nan()
            && !self.zero_threshold.is_nan()
        {
            if self.zero_threshold > other_threshold {
                (other_count, other_threshold) =
                    other.zero_count_for_larger_threshold(self.zero_threshold);
            }
            if other_threshold > self.zero_threshold {
                (self.zero_count, self.zero_threshold) =
                    self.zero_count_for_larger_threshold(other_threshold);
                self.trim_buckets_in_zero_bucket();
            }
        }
        other_count
    }

    /// `DetectReset` for custom buckets with different bounds: the buckets
    /// of both are summed up to each bound they share (and +Inf), and a
    /// smaller partial sum now than before is a reset.
    fn reset_with_mismatched_bounds(&self, prev: &FloatHistogram) -> bool {
        let curr = custom_bucket_list(self);
        let prev_list = custom_bucket_list(prev);
        let mut common = intersect_bounds(&self.custom_values, &prev.custom_values);
        common.push(f64::INFINITY);
        let (mut ci, mut pi) = (0, 0);
        for bound in common {
            let mut curr_sum = 0.0;
            while ci < curr.len() && curr[ci].0 <= bound {
                curr_sum += curr[ci].1;
                ci += 1;
            }
            let mut prev_sum = 0.0;
            while pi < prev_list.len() && prev_list[pi].0 <= bound {
                prev_sum += prev_list[pi].1;
                pi += 1;
            }
            if curr_sum < prev_sum {
                return true;
            }
        }
        false
    }
}

impl fmt::Display for FloatHistogram {
    /// The `{{...}}` notation, canonical form: Prometheus's
    /// `TestExpression`. Keys in the order schema, count, sum, z_bucket,
    /// z_bucket_w, custom_values, counter_reset_hint, offset, buckets,
    /// n_offset, n_buckets; zero values, schema 0, hint unknown and offset 0
    /// are left out; buckets are compacted (empty ones at the ends dropped);
    /// numbers as Go's `%g`. Custom-bucket histograms show no zero bucket and
    /// no negative side (Prometheus does not copy them), but always their
    /// `custom_values`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let custom = self.uses_custom_buckets();
        let mut parts: Vec<String> = Vec::new();
        if self.schema != 0 {
            parts.push(format!("schema:{}", self.schema));
        }
        if self.count != 0.0 {
            parts.push(format!("count:{}", go_g(self.count)));
        }
        if self.sum != 0.0 {
            parts.push(format!("sum:{}", go_g(self.sum)));
        }
        if !custom && self.zero_count != 0.0 {
            parts.push(format!("z_bucket:{}", go_g(self.zero_count)));
        }
        if !custom && self.zero_threshold != 0.0 {
            parts.push(format!("z_bucket_w:{}", go_g(self.zero_threshold)));
        }
        if custom {
            parts.push(format!("custom_values:[{}]", join_g(&self.custom_values)));
        }
        if self.counter_reset_hint != CounterResetHint::Unknown {
            parts.push(format!(
                "counter_reset_hint:{}",
                self.counter_reset_hint.as_str()
            ));
        }
        let mut sides = vec![(
            "offset",
            "buckets",
            self.positive_offset,
            &self.positive_buckets,
        )];
        if !custom {
            sides.push((
                "n_offset",
                "n_buckets",
                self.negative_offset,
                &self.negative_buckets,
            ));
        }
        for (offset_key, buckets_key, offset, buckets) in sides {
            let (offset, buckets) = trimmed(offset, buckets);
            if buckets.is_empty() {
                continue;
            }
            if offset != 0 {
                parts.push(format!("{offset_key}:{offset}"));
            }
            parts.push(format!("{buckets_key}:[{}]", join_g(buckets)));
        }
        write!(f, "{{{{{}}}}}", parts.join(" "))
    }
}

/// Reads a Go-style float as the promqltest notation allows it: an optional
/// sign, decimal digits with optional fraction and exponent, or `Inf` /
/// `Infinity` / `NaN` in any case. Like Prometheus's parser (integers first
/// go through Go's base detection), a leading-zero integer is octal and `_`
/// may separate digits. Hexadecimal is refused.
fn parse_go_float(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let signed = |v: f64| if neg { -v } else { v };
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(signed(f64::INFINITY));
    }
    if lower == "nan" {
        return Some(f64::NAN);
    }
    // `_` only between two digits, as Go's literal syntax has it.
    let bytes = body.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'_' {
            let digit_before = i > 0 && bytes[i - 1].is_ascii_digit();
            let digit_after = bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !digit_before || !digit_after {
                return None;
            }
        }
    }
    let clean: String = body.chars().filter(|&c| c != '_').collect();
    let first_ok = clean
        .as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_digit() || *b == b'.');
    let chars_ok = clean
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !first_ok || !chars_ok {
        return None;
    }
    if clean.len() > 1 && clean.starts_with('0') && clean.bytes().all(|b| b.is_ascii_digit()) {
        // Go's ParseInt with base 0 reads this as octal; with an 8 or 9 it
        // fails and ParseFloat reads it as decimal.
        if let Ok(v) = u64::from_str_radix(&clean[1..], 8) {
            return Some(signed(v as f64));
        }
    }
    clean.parse::<f64>().ok().map(signed)
}

fn parse_number(key: &str, value: &str, whole: &str) -> Result<f64, String> {
    if value.is_empty() {
        return Err(format!(
            "missing value for key {key:?} in histogram {whole}"
        ));
    }
    parse_go_float(value)
        .ok_or_else(|| format!("invalid number {value:?} for key {key:?} in histogram {whole}"))
}

fn parse_int(key: &str, value: &str, whole: &str) -> Result<i32, String> {
    if value.is_empty() {
        return Err(format!(
            "missing value for key {key:?} in histogram {whole}"
        ));
    }
    let digits = value.strip_prefix('+').unwrap_or(value);
    digits
        .parse::<i32>()
        .map_err(|_| format!("invalid integer {value:?} for key {key:?} in histogram {whole}"))
}

fn parse_list(key: &str, value: &str, whole: &str) -> Result<Vec<f64>, String> {
    value
        .split_whitespace()
        .map(|item| {
            parse_go_float(item).ok_or_else(|| {
                format!("invalid number {item:?} in the list of {key:?} in histogram {whole}")
            })
        })
        .collect()
}

fn join_g(values: &[f64]) -> String {
    values
        .iter()
        .map(|&v| go_g(v))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The side without empty buckets at its ends: (offset, buckets).
fn trimmed(offset: i32, buckets: &[f64]) -> (i32, &[f64]) {
    let Some(first) = buckets.iter().position(|&b| b != 0.0) else {
        return (0, &[]);
    };
    let last = buckets.iter().rposition(|&b| b != 0.0).unwrap_or(first);
    (
        to_i32(i64::from(offset) + first as i64),
        &buckets[first..=last],
    )
}

fn compact_side(offset: &mut i32, buckets: &mut Vec<f64>) {
    let (new_offset, kept) = trimmed(*offset, buckets);
    let kept = kept.to_vec();
    *offset = new_offset;
    *buckets = kept;
}

fn side_equals(a: (i32, &[f64]), b: (i32, &[f64])) -> bool {
    if a.1.is_empty() && b.1.is_empty() {
        return true;
    }
    a.0 == b.0
        && a.1.len() == b.1.len()
        && a.1.iter().zip(b.1).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Bucket indices are int32 in Prometheus; arithmetic runs in i64 and only
/// an invalid histogram (indices beyond int32) could need the clamp.
fn to_i32(x: i64) -> i32 {
    x.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// The index in schema `to` of bucket `idx` of the finer schema `from`.
fn target_idx(idx: i64, from: i32, to: i32) -> i64 {
    ((idx - 1) >> (from - to)) + 1
}

/// Merges one side down to the coarser schema `to`, adding counts in
/// index order as Prometheus's `reduceResolution` does.
fn reduce_side(offset: &mut i32, buckets: &mut Vec<f64>, from: i32, to: i32) {
    if from <= to || buckets.is_empty() {
        return;
    }
    let first = target_idx(i64::from(*offset), from, to);
    let last = target_idx(i64::from(*offset) + buckets.len() as i64 - 1, from, to);
    let mut out = vec![0.0; (last - first + 1) as usize];
    let mut prev_slot = None;
    for (i, &c) in buckets.iter().enumerate() {
        let slot = (target_idx(i64::from(*offset) + i as i64, from, to) - first) as usize;
        // The first bucket landing in a slot is taken as is (not 0 + c),
        // so a -0 stays -0 as in Prometheus.
        if prev_slot == Some(slot) {
            out[slot] += c;
        } else {
            out[slot] = c;
        }
        prev_slot = Some(slot);
    }
    *offset = to_i32(first);
    *buckets = out;
}

/// Upper bound of exponential bucket `idx` at `schema`: Prometheus's
/// `getBoundExponential`. For schemas above 0 the fraction is computed
/// with `exp2` rather than read from Prometheus's table of constants; the
/// two agree to the last bit or one unit in the last place.
fn exp_bound(idx: i64, schema: i32) -> f64 {
    if schema < 0 {
        let exp = idx << (-schema).min(62);
        if exp == 1024 {
            // Last bucket before the ±Inf one: its bound is MaxFloat64.
            return f64::MAX;
        }
        return ldexp(1.0, exp);
    }
    let per_power = 1i64 << schema.min(62);
    let frac_idx = idx & (per_power - 1);
    let frac = (frac_idx as f64 / per_power as f64 - 1.0).exp2();
    let exp = (idx >> schema.min(62)) + 1;
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    ldexp(frac, exp)
}

/// `x * 2^exp`, in steps that stay within the normal range.
fn ldexp(mut x: f64, mut exp: i64) -> f64 {
    let pow2 = |e: i64| f64::from_bits(((e + 1023) as u64) << 52);
    while exp > 1000 {
        x *= pow2(1000);
        exp -= 1000;
        if x.is_infinite() {
            return x;
        }
    }
    while exp < -1000 {
        x *= pow2(-1000);
        exp += 1000;
        if x == 0.0 {
            return x;
        }
    }
    x * pow2(exp)
}

/// `a + sign·b` of one side over the union of both index ranges. With
/// `skip = Some((schema, threshold))`, leading buckets of `b` whose upper
/// bound is at most the zero threshold are ignored (their counts are in
/// the zero bucket), as in Prometheus's `addBuckets`.
fn add_side(
    a: (i32, &[f64]),
    b: (i32, &[f64]),
    sign: f64,
    skip: Option<(i32, f64)>,
) -> (i32, Vec<f64>) {
    let (a_off, a_buckets) = (i64::from(a.0), a.1);
    let mut b_off = i64::from(b.0);
    let mut b_buckets = b.1;
    if let Some((schema, threshold)) = skip {
        while !b_buckets.is_empty() && exp_bound(b_off, schema) <= threshold {
            b_buckets = &b_buckets[1..];
            b_off += 1;
        }
    }
    if b_buckets.is_empty() {
        return (a.0, a_buckets.to_vec());
    }
    let a_end = a_off + a_buckets.len() as i64;
    let b_end = b_off + b_buckets.len() as i64;
    let (lo, hi) = if a_buckets.is_empty() {
        (b_off, b_end)
    } else {
        (a_off.min(b_off), a_end.max(b_end))
    };
    let mut out = vec![0.0; (hi - lo) as usize];
    for (i, &c) in a_buckets.iter().enumerate() {
        out[(a_off - lo) as usize + i] = c;
    }
    for (i, &c) in b_buckets.iter().enumerate() {
        let idx = b_off + i as i64;
        let slot = (idx - lo) as usize;
        // Prometheus computes `bucket * -1` for subtraction, then adds it
        // to an existing bucket or inserts it as a new one.
        let v = c * sign;
        if !a_buckets.is_empty() && (a_off..a_end).contains(&idx) {
            out[slot] += v;
        } else {
            out[slot] = v;
        }
    }
    (to_i32(lo), out)
}

/// Custom bounds are equal when they have the same numbers in the same
/// order (Prometheus's `CustomBucketBoundsMatch`).
fn bounds_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// The bounds present in both ascending lists.
fn intersect_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(a[i]);
            i += 1;
            j += 1;
        } else if a[i] < b[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Adds `sign ·` the custom buckets of one histogram into `target`, whose
/// bucket `k` ends at `common[k]` (the last one at +Inf): each source
/// bucket goes to the first common bound at or above its own upper bound.
fn map_custom(side: (i32, &[f64]), bounds: &[f64], common: &[f64], target: &mut [f64], sign: f64) {
    let inf_slot = target.len() - 1;
    let mut k = 0;
    for (i, &c) in side.1.iter().enumerate() {
        let src = i64::from(side.0) + i as i64;
        let mut slot = inf_slot;
        if let Some(&bound) = usize::try_from(src).ok().and_then(|s| bounds.get(s)) {
            while k < common.len() {
                if common[k] >= bound {
                    slot = k;
                    break;
                }
                k += 1;
            }
        }
        if sign < 0.0 {
            target[slot] -= c;
        } else {
            target[slot] += c;
        }
    }
}

/// (upper bound, count) of each custom bucket, in order.
fn custom_bucket_list(h: &FloatHistogram) -> Vec<(f64, f64)> {
    h.positive_buckets
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let idx = i64::from(h.positive_offset) + i as i64;
            let upper = usize::try_from(idx)
                .ok()
                .and_then(|s| h.custom_values.get(s).copied())
                .unwrap_or(f64::INFINITY);
            (upper, c)
        })
        .collect()
}

/// (index, count) of the buckets of one side merged to schema `to`,
/// without the leading buckets whose upper bound is at most `start` (for
/// exponential schemas), as Prometheus's bucket iterator yields them.
fn bucket_list(
    offset: i32,
    buckets: &[f64],
    from: i32,
    to: i32,
    start: f64,
    exponential: bool,
) -> Vec<(i64, f64)> {
    let mut off = offset;
    let mut b = buckets.to_vec();
    reduce_side(&mut off, &mut b, from, to);
    let mut list: Vec<(i64, f64)> = b
        .into_iter()
        .enumerate()
        .map(|(i, c)| (i64::from(off) + i as i64, c))
        .collect();
    if exponential && start != 0.0 {
        let skip = list
            .iter()
            .take_while(|(idx, _)| exp_bound(*idx, to) <= start)
            .count();
        list.drain(..skip);
    }
    list
}

/// Whether any bucket of `prev` is larger than the same bucket of `curr`,
/// or populated and missing from `curr` (Prometheus's `detectReset`).
fn buckets_decreased(curr: &[(i64, f64)], prev: &[(i64, f64)]) -> bool {
    let mut ci = 0;
    for &(idx, prev_count) in prev {
        while ci < curr.len() && curr[ci].0 < idx {
            ci += 1;
        }
        match curr.get(ci) {
            Some(&(cidx, count)) if cidx == idx => {
                if count < prev_count {
                    return true;
                }
            }
            _ => {
                if prev_count != 0.0 {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(text: &str) -> FloatHistogram {
        match FloatHistogram::parse(text) {
            Ok(h) => h,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn parses_every_key() {
        let got = h(
            "{{schema:1 sum:-0.3 count:32.1 z_bucket:7.1 z_bucket_w:0.05 buckets:[5.1 10 7] offset:-3 n_buckets:[4.1 5] n_offset:-5 counter_reset_hint:not_reset}}",
        );
        let want = FloatHistogram {
            counter_reset_hint: CounterResetHint::NotCounterReset,
            schema: 1,
            zero_threshold: 0.05,
            zero_count: 7.1,
            count: 32.1,
            sum: -0.3,
            positive_offset: -3,
            positive_buckets: vec![5.1, 10.0, 7.0],
            negative_offset: -5,
            negative_buckets: vec![4.1, 5.0],
            custom_values: vec![],
        };
        assert_eq!(got, want);
        let nhcb = h("{{schema:-53 sum:5 count:4 custom_values:[5 10] buckets:[1 2 1]}}");
        assert_eq!(nhcb.schema, -53);
        assert!(nhcb.uses_custom_buckets());
        assert_eq!(nhcb.custom_values, vec![5.0, 10.0]);
        assert_eq!(nhcb.positive_buckets, vec![1.0, 2.0, 1.0]);
        for (word, hint) in [
            ("unknown", CounterResetHint::Unknown),
            ("reset", CounterResetHint::CounterReset),
            ("not_reset", CounterResetHint::NotCounterReset),
            ("gauge", CounterResetHint::Gauge),
        ] {
            let got = h(&format!("{{{{counter_reset_hint:{word}}}}}"));
            assert_eq!(got.counter_reset_hint, hint);
            assert_eq!(hint.as_str(), word);
        }
    }

    #[test]
    fn parses_defaults_order_and_numbers() {
        assert_eq!(h("{{}}"), FloatHistogram::default());
        assert_eq!(h("{{ }}"), FloatHistogram::default());
        assert_eq!(h("  {{count:1}} "), h("{{count:1}}"));
        // Order does not matter.
        assert_eq!(
            h("{{offset:2 buckets:[1] count:1 sum:2}}"),
            h("{{sum:2 count:1 buckets:[1] offset:2}}")
        );
        let n = h("{{sum:Inf count:1e3 z_bucket:.5 z_bucket_w:2. buckets:[1.5e-7 +2 NaN]}}");
        assert_eq!(n.sum, f64::INFINITY);
        assert_eq!(n.count, 1000.0);
        assert_eq!(n.zero_count, 0.5);
        assert_eq!(n.zero_threshold, 2.0);
        assert_eq!(n.positive_buckets[..2], [1.5e-7, 2.0]);
        assert!(n.positive_buckets[2].is_nan());
        assert_eq!(h("{{sum:-Inf}}").sum, f64::NEG_INFINITY);
        assert_eq!(h("{{sum:+inf}}").sum, f64::INFINITY);
        assert!(h("{{sum:nan}}").sum.is_nan());
        // Go's base detection for integers: octal, and digit separators.
        assert_eq!(h("{{count:010}}").count, 8.0);
        assert_eq!(h("{{count:09}}").count, 9.0);
        assert_eq!(h("{{count:1_000}}").count, 1000.0);
        // Negative buckets (e.g. from a subtraction) read back.
        assert_eq!(h("{{buckets:[-1 -2]}}").positive_buckets, vec![-1.0, -2.0]);
        assert_eq!(
            h("{{schema:-53 custom_values:[]}}").custom_values,
            Vec::<f64>::new()
        );
        // An offset without buckets makes no span.
        assert_eq!(h("{{offset:3 n_offset:-2}}"), FloatHistogram::default());
    }

    #[test]
    fn parse_errors_name_problem_and_key() {
        let err = |t: &str| match FloatHistogram::parse(t) {
            Ok(h) => panic!("{t} parsed as {h:?}"),
            Err(e) => e,
        };
        assert_eq!(
            err("{{bukets:[1]}}"),
            "unknown key \"bukets\" in histogram {{bukets:[1]}}: use schema, sum, count, z_bucket, z_bucket_w, buckets, offset, n_buckets, n_offset, custom_values, counter_reset_hint"
        );
        assert!(err("{{sum:1 sum:2}}").contains("duplicate key \"sum\""));
        assert!(err("{{sum:abc}}").contains("invalid number \"abc\" for key \"sum\""));
        assert!(err("{{count:0x10}}").contains("invalid number \"0x10\""));
        assert!(err("{{sum:}}").contains("missing value for key \"sum\""));
        assert!(err("{{schema:1.5}}").contains("invalid integer \"1.5\" for key \"schema\""));
        assert!(err("{{offset:x}}").contains("key \"offset\""));
        assert!(err("{{n_offset:}}").contains("key \"n_offset\""));
        assert!(err("{{buckets:1}}").contains("after \"buckets:\""));
        assert!(err("{{n_buckets:[1 2}}").contains("\"n_buckets\""));
        assert!(err("{{custom_values:[1 x]}}").contains("\"x\" in the list of \"custom_values\""));
        assert!(err("{{buckets:[1]offset:1}}").contains("space after the value of \"buckets\""));
        assert!(
            err("{{counter_reset_hint:maybe}}").contains("invalid counter_reset_hint \"maybe\"")
        );
        assert!(err("{{z_bucket_w:-1}}").contains("z_bucket_w must not be negative"));
        assert!(err("{{sum 1}}").contains("expected \":\" after key \"sum\""));
        assert!(err("{{count:1}").contains("{{key:value ...}}"));
        assert!(err("count:1").contains("{{key:value ...}}"));
        assert!(err("{{buckets:[1 2] offset:2147483647}}").contains("reach past bucket index"));
        assert!(FloatHistogram::parse("{{buckets:[1] offset:2147483647}}").is_ok());
    }

    #[test]
    fn canonical_text_matches_prometheus() {
        let x = h(
            "{{schema:1 sum:-0.3 count:32.1 z_bucket:7.1 z_bucket_w:0.05 buckets:[5.1 10 7] offset:-3 n_buckets:[4.1 5] n_offset:-5}}",
        );
        assert_eq!(
            x.to_string(),
            "{{schema:1 count:32.1 sum:-0.3 z_bucket:7.1 z_bucket_w:0.05 offset:-3 buckets:[5.1 10 7] n_offset:-5 n_buckets:[4.1 5]}}"
        );
        let mut y = x.clone();
        y.counter_reset_hint = CounterResetHint::NotCounterReset;
        // The hint comes before the buckets in TestExpression.
        assert_eq!(
            y.to_string(),
            "{{schema:1 count:32.1 sum:-0.3 z_bucket:7.1 z_bucket_w:0.05 counter_reset_hint:not_reset offset:-3 buckets:[5.1 10 7] n_offset:-5 n_buckets:[4.1 5]}}"
        );
        assert_eq!(FloatHistogram::default().to_string(), "{{}}");
        // Empty buckets at the ends are dropped, the offset moves; inner
        // ones stay.
        assert_eq!(
            h("{{buckets:[0 1 0 2 0]}}").to_string(),
            "{{offset:1 buckets:[1 0 2]}}"
        );
        assert_eq!(
            h("{{buckets:[0 0] offset:4 count:1}}").to_string(),
            "{{count:1}}"
        );
        assert_eq!(
            h("{{schema:-53 sum:5 count:4 custom_values:[5 10] buckets:[1 2 1] counter_reset_hint:gauge}}").to_string(),
            "{{schema:-53 count:4 sum:5 custom_values:[5 10] counter_reset_hint:gauge buckets:[1 2 1]}}"
        );
        assert_eq!(
            h("{{schema:-53}}").to_string(),
            "{{schema:-53 custom_values:[]}}"
        );
        assert_eq!(
            h("{{sum:NaN count:1e6 z_bucket_w:1e-5 buckets:[+Inf -Inf 0.0001]}}").to_string(),
            "{{count:1e+06 sum:NaN z_bucket_w:1e-05 buckets:[+Inf -Inf 0.0001]}}"
        );
    }

    #[test]
    fn go_g_formats_like_go() {
        for (v, want) in [
            (1.0, "1"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e6, "1e+06"),
            (1e21, "1e+21"),
            (1e100, "1e+100"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (5e-324, "5e-324"),
            (0.06666666666666667, "0.06666666666666667"),
            (0.03333333333333333, "0.03333333333333333"),
            (13.666666666666668, "13.666666666666668"),
            (4.3, "4.3"),
            (-0.0, "-0"),
            (0.0, "0"),
            (f64::MAX, "1.7976931348623157e+308"),
        ] {
            assert_eq!(go_g(v), want, "{v:e}");
        }
    }

    /// Every finite float prints as text that reads back to the same bits,
    /// in exponent form exactly when Go's `%g` uses it.
    #[test]
    fn go_g_round_trips() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..100_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = if i % 2 == 0 {
                f64::from_bits(x)
            } else {
                (x >> 11) as f64 / (1u64 << 53) as f64 * 10f64.powi((x % 16) as i32 - 7)
            };
            if !v.is_finite() || v == 0.0 {
                continue;
            }
            let s = go_g(v);
            assert_eq!(s.parse::<f64>().unwrap().to_bits(), v.to_bits(), "{s}");
            let exp = v.abs().log10().floor();
            if (-3.0..5.0).contains(&exp) {
                assert!(!s.contains('e'), "{s}");
            } else if !(-5.0..=6.0).contains(&exp) {
                assert!(s.contains("e-") || s.contains("e+"), "{s}");
            }
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "{{schema:1 sum:-0.3 count:32.1 z_bucket:7.1 z_bucket_w:0.05 buckets:[5.1 10 7] offset:-3 n_buckets:[4.1 5] n_offset:-5 counter_reset_hint:not_reset}}",
            "{{schema:-53 sum:5 count:4 custom_values:[5 10] buckets:[1 2 1] counter_reset_hint:gauge}}",
            "{{schema:-4 count:0.06666666666666667 sum:1e-300 buckets:[1 0 3] offset:7}}",
            "{{count:1234567.5 sum:-1e+21 n_buckets:[1e-05 2] counter_reset_hint:reset}}",
            "{{}}",
        ] {
            let x = h(text);
            let back = h(&x.to_string());
            assert_eq!(back, x, "{text}");
            assert!(back.equals(&x));
            assert_eq!(back.to_string(), x.to_string());
        }
        // Non-compact input round-trips to its compacted self.
        let x = h("{{buckets:[0 1 0] offset:2 n_buckets:[0]}}");
        let mut c = x.clone();
        c.compact();
        assert_eq!(h(&x.to_string()), c);
        assert_eq!(c.positive_offset, 3);
        assert_eq!(c.positive_buckets, vec![1.0]);
        assert!(c.negative_buckets.is_empty());
    }

    #[test]
    fn expansion_example_by_repeated_addition() {
        let base = h("{{sum:3 count:2 buckets:[2]}}");
        let step = h("{{sum:1.3 count:1 buckets:[1]}}");
        let got = FloatHistogram::series_expansion(&base, &step, 2, false).unwrap();
        let want = [
            "{{sum:3 count:2 buckets:[2]}}",
            "{{sum:4.3 count:3 buckets:[3]}}",
            "{{sum:5.6 count:4 buckets:[4]}}",
        ];
        assert_eq!(got.len(), 3);
        for (g, w) in got.iter().zip(want) {
            assert!(g.equals(&h(w)), "{g} vs {w}");
        }
        // Plain f64 additions in order: 3 + 1.3 + 1.3.
        assert_eq!(got[2].sum.to_bits(), (3.0f64 + 1.3 + 1.3).to_bits());
        assert_eq!(base.add(&step).unwrap(), got[1]);
        // Subtraction counts down.
        let down = FloatHistogram::series_expansion(&got[2], &step, 2, true).unwrap();
        assert_eq!(down[2].count, 2.0);
        assert_eq!(down[2].positive_buckets, vec![2.0]);
        // A running histogram finer than the step is refused.
        let fine = h("{{schema:2 count:1 buckets:[1]}}");
        let e = FloatHistogram::series_expansion(&fine, &step, 1, false).unwrap_err();
        assert_eq!(
            e,
            "error combining histograms: cannot merge from schema 0 to 2"
        );
        assert_eq!(
            FloatHistogram::series_expansion(&fine, &step, 0, false).unwrap(),
            vec![fine]
        );
    }

    #[test]
    fn add_aligns_offsets_over_the_union() {
        let a = h("{{count:3 sum:1 buckets:[1 2] offset:-1 n_buckets:[1] n_offset:2}}");
        let b = h("{{count:2 sum:2 buckets:[5] offset:3 n_buckets:[1 1] n_offset:1}}");
        let s = a.add(&b).unwrap();
        assert_eq!(s.positive_offset, -1);
        assert_eq!(s.positive_buckets, vec![1.0, 2.0, 0.0, 0.0, 5.0]);
        assert_eq!(s.negative_offset, 1);
        assert_eq!(s.negative_buckets, vec![1.0, 2.0]);
        assert_eq!((s.count, s.sum), (5.0, 3.0));
        let d = s.sub(&b).unwrap();
        assert_eq!(d.positive_buckets, vec![1.0, 2.0, 0.0, 0.0, 0.0]);
        assert_eq!(d.to_string(), a.to_string());
        // Adding to an empty side takes the other's layout.
        let e = FloatHistogram::default().sub(&b).unwrap();
        assert_eq!(e.positive_offset, 3);
        assert_eq!(e.positive_buckets, vec![-5.0]);
        assert_eq!(
            e.to_string(),
            "{{count:-2 sum:-2 offset:3 buckets:[-5] n_offset:1 n_buckets:[-1 -1]}}"
        );
    }

    #[test]
    fn add_merges_the_finer_schema_down() {
        // Schema 1 buckets 1..4 merge pairwise into schema 0 buckets 1, 2:
        // index i goes to ((i - 1) >> 1) + 1.
        let fine = h("{{schema:1 count:10 buckets:[1 2 3 4] offset:1}}");
        let coarse = h("{{schema:0 count:1 buckets:[1]}}");
        let s = coarse.add(&fine).unwrap();
        assert_eq!(s.schema, 0);
        assert_eq!(s.positive_offset, 0);
        assert_eq!(s.positive_buckets, vec![1.0, 3.0, 7.0]);
        let t = fine.add(&coarse).unwrap();
        assert_eq!(t.schema, 0);
        assert!(t.equals(&s));
        // Index 0 at schema 2 stays 0 at schema 0; -3..0 all map to 0.
        let r = h("{{schema:2 buckets:[1 1 1 1 1] offset:-3}}")
            .to_schema(0)
            .unwrap();
        assert_eq!(
            (r.positive_offset, r.positive_buckets.clone()),
            (0, vec![4.0, 1.0])
        );
        let r = h("{{schema:2 buckets:[1 1 1 1 1] offset:-4}}")
            .to_schema(0)
            .unwrap();
        assert_eq!(
            (r.positive_offset, r.positive_buckets.clone()),
            (-1, vec![1.0, 4.0])
        );
        assert!(h("{{schema:0}}").to_schema(1).is_err());
    }

    #[test]
    fn add_reconciles_zero_buckets() {
        // Schema 0: bucket 0 is (0.5, 1], bucket -1 is (0.25, 0.5].
        let a = h("{{count:3 z_bucket:1 z_bucket_w:0.5 buckets:[2] offset:0}}");
        let b = h("{{count:3 z_bucket:1 z_bucket_w:0.25 buckets:[1 1] offset:-1}}");
        let s = a.add(&b).unwrap();
        // b's bucket -1 falls into a's wider zero bucket.
        assert_eq!(s.zero_threshold, 0.5);
        assert_eq!(s.zero_count, 3.0);
        assert_eq!(s.positive_offset, 0);
        assert_eq!(s.positive_buckets, vec![3.0]);
        let t = b.add(&a).unwrap();
        assert_eq!(t.zero_threshold, 0.5);
        assert_eq!(t.zero_count, 3.0);
        assert_eq!(t.positive_buckets, vec![3.0]);
        // A threshold inside a populated bucket moves up to its bound.
        let c = h("{{z_bucket_w:0.7}}");
        let u = b.add(&c).unwrap();
        assert_eq!(u.zero_threshold, 1.0);
        assert_eq!(u.zero_count, 3.0);
        assert!(u.positive_buckets.is_empty());
    }

    #[test]
    fn add_custom_buckets() {
        let a = h("{{schema:-53 count:2 sum:2 custom_values:[5 10] buckets:[1 1]}}");
        let s = a.add(&a).unwrap();
        assert_eq!(s.positive_buckets, vec![2.0, 2.0]);
        assert_eq!(s.custom_values, vec![5.0, 10.0]);
        // Mismatched bounds: mapped onto the common bounds, as Prometheus.
        let b = h("{{schema:-53 sum:1 count:1 custom_values:[10] buckets:[1]}}");
        let c = h("{{schema:-53 sum:1 count:1 custom_values:[2 10] buckets:[1]}}");
        let (r, collision, reconciled) = b.add_detailed(&c).unwrap();
        assert!(reconciled && !collision);
        assert_eq!(
            r.to_string(),
            "{{schema:-53 count:2 sum:2 custom_values:[10] buckets:[2]}}"
        );
        let r = b.sub(&c).unwrap();
        assert_eq!(r.to_string(), "{{schema:-53 custom_values:[10]}}");
        let d = h("{{schema:-53 sum:1 count:1 custom_values:[5 10] buckets:[1]}}");
        let e = h("{{schema:-53 sum:1 count:1 custom_values:[5] buckets:[1]}}");
        assert_eq!(
            e.add(&d).unwrap().to_string(),
            "{{schema:-53 count:2 sum:2 custom_values:[5] buckets:[2]}}"
        );
        // Mixing exponential and custom buckets is an error.
        assert!(a.add(&h("{{count:1}}")).is_err());
        assert!(h("{{count:1}}").sub(&a).is_err());
    }

    #[test]
    fn add_sets_the_hint_as_prometheus() {
        use CounterResetHint::*;
        let with = |hint: CounterResetHint| FloatHistogram {
            counter_reset_hint: hint,
            ..FloatHistogram::default()
        };
        for (a, b, want, collision) in [
            (Unknown, Unknown, Unknown, false),
            (NotCounterReset, NotCounterReset, NotCounterReset, false),
            (Gauge, NotCounterReset, Gauge, false),
            (Unknown, Gauge, Gauge, false),
            (NotCounterReset, Unknown, Unknown, false),
            (Unknown, CounterReset, Unknown, false),
            (CounterReset, NotCounterReset, Unknown, true),
        ] {
            let (r, c, _) = with(a).add_detailed(&with(b)).unwrap();
            assert_eq!(
                (r.counter_reset_hint, c),
                (want, collision),
                "{a:?} + {b:?}"
            );
            assert_eq!(with(a).sub(&with(b)).unwrap().counter_reset_hint, want);
        }
    }

    #[test]
    fn detect_reset_cases() {
        let prev = h("{{count:5 z_bucket:1 buckets:[1 2] n_buckets:[1]}}");
        let same = prev.clone();
        assert!(!same.detect_reset(&prev));
        assert!(!h("{{count:6 z_bucket:1 buckets:[1 3] n_buckets:[1]}}").detect_reset(&prev));
        // Count decreased.
        assert!(h("{{count:4 z_bucket:1 buckets:[1 2] n_buckets:[1]}}").detect_reset(&prev));
        // A bucket decreased, positive, negative, zero.
        assert!(h("{{count:5 z_bucket:1 buckets:[1 1] n_buckets:[1]}}").detect_reset(&prev));
        assert!(h("{{count:5 z_bucket:1 buckets:[1 2] n_buckets:[0.5]}}").detect_reset(&prev));
        assert!(h("{{count:5 z_bucket:0 buckets:[1 2] n_buckets:[1]}}").detect_reset(&prev));
        // A populated bucket is missing; an empty one may go.
        assert!(h("{{count:5 z_bucket:1 buckets:[1] n_buckets:[1]}}").detect_reset(&prev));
        let prev0 = h("{{count:5 buckets:[1 0]}}");
        assert!(!h("{{count:5 buckets:[1]}}").detect_reset(&prev0));
        // New buckets elsewhere are fine.
        assert!(
            !h("{{count:9 z_bucket:1 buckets:[1 2 3] offset:0 n_buckets:[1 4]}}")
                .detect_reset(&prev)
        );
        // Finer schema is a reset; coarser compares merged buckets.
        assert!(h("{{schema:1 count:5}}").detect_reset(&h("{{count:5}}")));
        let fine_prev = h("{{schema:1 count:4 buckets:[1 1 1 1] offset:1}}");
        assert!(!h("{{count:4 buckets:[2 2] offset:1}}").detect_reset(&fine_prev));
        assert!(h("{{count:4 buckets:[2 1.5] offset:1}}").detect_reset(&fine_prev));
        // Zero threshold: shrinking is a reset; growing folds prev's low
        // buckets into its zero count.
        assert!(h("{{count:5 z_bucket_w:0.1}}").detect_reset(&h("{{count:5 z_bucket_w:0.2}}")));
        let low = h("{{count:3 z_bucket:1 z_bucket_w:0.25 buckets:[2 0] offset:-1}}");
        assert!(!h("{{count:3 z_bucket:3 z_bucket_w:0.5}}").detect_reset(&low));
        assert!(h("{{count:3 z_bucket:2 z_bucket_w:0.5}}").detect_reset(&low));
        // Threshold inside a populated bucket of prev.
        assert!(h("{{count:3 z_bucket:3 z_bucket_w:0.4}}").detect_reset(&low));
        // Hints shortcut; a gauge is checked like a counter, as Prometheus.
        let mut r = same.clone();
        r.counter_reset_hint = CounterResetHint::CounterReset;
        assert!(r.detect_reset(&prev));
        let mut n = h("{{count:1}}");
        n.counter_reset_hint = CounterResetHint::NotCounterReset;
        assert!(!n.detect_reset(&prev));
        let mut g = h("{{count:1}}");
        g.counter_reset_hint = CounterResetHint::Gauge;
        assert!(g.detect_reset(&prev));
        // Custom buckets.
        let c1 = h("{{schema:-53 count:2 custom_values:[5 10] buckets:[1 1]}}");
        assert!(!c1.detect_reset(&c1));
        assert!(c1.detect_reset(&h("{{count:2 buckets:[2]}}")));
        assert!(h("{{count:2 buckets:[2]}}").detect_reset(&c1));
        // Different bounds: compared on the common bound 10 and +Inf.
        let c2 = h("{{schema:-53 count:2 custom_values:[10] buckets:[2]}}");
        assert!(!c2.detect_reset(&c1));
        let c3 = h("{{schema:-53 count:2 custom_values:[10] buckets:[1 1]}}");
        assert!(c3.detect_reset(&c1));
    }

    #[test]
    fn equals_is_exact() {
        let a = h("{{schema:1 sum:NaN count:3 buckets:[1 2] offset:1}}");
        assert!(a.equals(&a.clone()));
        assert_ne!(a, a.clone()); // derived PartialEq: NaN != NaN
        let mut b = a.clone();
        b.counter_reset_hint = CounterResetHint::Gauge;
        assert!(!a.equals(&b));
        // Layout counts: an explicit empty bucket at the end differs.
        assert!(!a.equals(&h("{{schema:1 sum:NaN count:3 buckets:[1 2 0] offset:1}}")));
        assert!(!a.equals(&h("{{schema:1 sum:NaN count:3 buckets:[1 2] offset:2}}")));
        assert!(!a.equals(&h("{{schema:0 sum:NaN count:3 buckets:[1 2] offset:1}}")));
        // 0 and -0 differ bitwise for counts, not for the threshold.
        assert!(!h("{{sum:0}}").equals(&h("{{sum:-0}}")));
        assert!(h("{{z_bucket_w:0}}").equals(&h("{{z_bucket_w:-0}}")));
        // Sides without buckets match whatever their offsets.
        let mut c = h("{{count:1}}");
        c.positive_offset = 7;
        assert!(c.equals(&h("{{count:1}}")));
        // Custom bounds count for schema -53 only.
        assert!(
            !h("{{schema:-53 custom_values:[1]}}").equals(&h("{{schema:-53 custom_values:[2]}}"))
        );
        assert!(h("{{custom_values:[1]}}").equals(&h("{{custom_values:[2]}}")));
    }

    #[test]
    fn exponential_bounds() {
        assert_eq!(exp_bound(0, 0), 1.0);
        assert_eq!(exp_bound(1, 0), 2.0);
        assert_eq!(exp_bound(-1, 0), 0.5);
        assert_eq!(exp_bound(1, -1), 4.0);
        assert_eq!(exp_bound(-2, 1), 0.5);
        assert_eq!(exp_bound(1, 1), 2f64.sqrt());
        assert_eq!(exp_bound(1024, 0), f64::MAX);
        assert_eq!(exp_bound(256, -2), f64::MAX);
        assert_eq!(exp_bound(-1074, 0), 5e-324);
    }
}
