//! Shared vocabulary of watchpost: label sets, label matchers, samples,
//! timestamps and durations.
//!
//! Everything on the data path (scrape, storage, rules, notify, api) speaks in
//! these types. This module does no I/O and imports no other watchpost module,
//! so every layer can depend on it without creating a cycle.

mod alert;
mod duration;
mod labels;
mod matcher;

pub use alert::{Alert, fingerprint_hex};
pub use duration::{format_duration, parse_duration};
pub use labels::{Label, Labels, LabelsBuilder, is_valid_label_name, is_valid_metric_name};
pub use matcher::{MatchOp, Matcher, MatcherError, compile_anchored};

/// Milliseconds since the Unix epoch, the unit Prometheus uses everywhere.
pub type Timestamp = i64;

/// The label that carries the metric name.
pub const METRIC_NAME: &str = "__name__";

/// Bit pattern of the NaN that marks a series as stale. It is a signalling
/// NaN distinct from the NaN that arithmetic produces, so a stored NaN value
/// and "this series ended" never get confused. Same bits as Prometheus's
/// `value.StaleNaN`, so data exchanged with Prometheus keeps its meaning.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as a float.
#[inline]
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is the staleness marker (and not any other NaN).
#[inline]
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One float sample of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub t: Timestamp,
    pub v: f64,
}

/// What a scrape loop publishes after a successful scrape, so that
/// consumers (low-latency rule evaluation) can react to fresh data without
/// the scrape layer knowing about them.
#[derive(Debug, Clone)]
pub struct ScrapeEvent {
    pub job: String,
    /// The scrape's timestamp (the time its samples were stored at).
    pub timestamp: Timestamp,
    /// Sorted, deduplicated metric names the target exposed in this scrape.
    /// Shared: it only changes when the target's set of series changes.
    pub metric_names: std::sync::Arc<Vec<String>>,
}

/// A subscriber to [`ScrapeEvent`]s. Called on the scrape loop's task, so
/// it must return quickly (e.g. set a flag or send on a channel).
pub type ScrapeHook = std::sync::Arc<dyn Fn(&ScrapeEvent) + Send + Sync>;

/// Converts a wall-clock time to a [`Timestamp`].
pub fn timestamp_of(t: std::time::SystemTime) -> Timestamp {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as Timestamp,
        Err(e) => -(e.duration().as_millis() as Timestamp),
    }
}

/// Stable 64-bit FNV-1a hash. Used where a hash must be the same across runs
/// and machines (scrape offsets, rule group offsets), unlike `std`'s
/// randomly keyed hasher.
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // Separator so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Formats a float the way Prometheus's API does (its `jsonutil`): `NaN`,
/// `+Inf`, `-Inf`, otherwise the shortest representation that round-trips,
/// in plain notation, or in exponent notation below 1e-6 and from 1e21.
pub fn format_float(v: f64) -> String {
    let mut s = String::new();
    write_float(&mut s, v);
    s
}

/// [`format_float`] appended to `out`, without an allocation in the common
/// case: a range query writes millions of values.
pub fn write_float(out: &mut String, v: f64) {
    use std::fmt::Write as _;
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        out.push_str(&format_exponent(v));
        return;
    }
    // Shortest round-trip digits are Go's 'f' with precision -1 in this
    // range. ryu writes them about three times faster than `std::fmt`
    // (a range answer has millions of values), as `1.0` for integers and in
    // exponent form below 1e-5 and from 1e16, where `std::fmt`'s plain
    // form is used instead.
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(v);
    if s.contains('e') {
        let _ = write!(out, "{v}");
    } else {
        out.push_str(s.strip_suffix(".0").unwrap_or(s));
    }
}

/// Go prints e.g. 1e-05 and 1e+21: exponent with sign and two digits.
fn format_exponent(v: f64) -> String {
    let s = format!("{v:e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    format!("{mant}e{sign}{digits:0>2}")
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn stale_nan_is_distinct_from_arithmetic_nan() {
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
        assert!(stale_nan().is_nan());
    }

    #[test]
    fn floats_format_like_prometheus() {
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.1), "0.1");
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_float(1e21), "1e+21");
        assert_eq!(format_float(1.5e-7), "1.5e-07");
        assert_eq!(format_float(1.5e-5), "0.000015");
        assert_eq!(format_float(123456789.0), "123456789");
        assert_eq!(format_float(-2.5), "-2.5");
        assert_eq!(format_float(-0.0), "-0");
        assert_eq!(format_float(0.0), "0");
        assert_eq!(format_float(1e-6), "0.000001");
        assert_eq!(format_float(1e20), "100000000000000000000");
        assert_eq!(format_float(0.06666666666666667), "0.06666666666666667");
    }

    /// The plain form is the shortest text that reads back as the same
    /// float, as Go writes it. `std::fmt` writes the same digits except
    /// when two shortest candidates are equally close: Go (and ryu) then
    /// take the even last digit, `std::fmt` rounds up.
    #[test]
    fn plain_floats_are_shortest_round_trip_with_ties_to_even() {
        // Prometheus 2.42 answers `599613853873768.25` with this text.
        // 599613853873768.25, exactly halfway between the two candidates.
        assert_eq!(format_float(4796910830990146.0 / 8.0), "599613853873768.2");
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut checked = 0;
        for i in 0..400_000u64 {
            // xorshift: random bit patterns (all magnitudes) and random
            // values in the plain range, both halves of the test.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = if i % 2 == 0 {
                f64::from_bits(x)
            } else {
                (x >> 11) as f64 / (1u64 << 53) as f64 * 10f64.powi((x % 27) as i32 - 6)
            };
            let abs = v.abs();
            if !v.is_finite() || (abs != 0.0 && !(1e-6..1e21).contains(&abs)) {
                continue;
            }
            let ours = format_float(v);
            let std = format!("{v}");
            assert_eq!(
                ours.parse::<f64>().unwrap().to_bits(),
                v.to_bits(),
                "{ours}"
            );
            if ours != std {
                assert_eq!(ours.len(), std.len(), "{ours} vs {std}");
                let last = ours.as_bytes()[ours.len() - 1] - b'0';
                assert_eq!(last % 2, 0, "a tie goes to the even digit: {ours} vs {std}");
            }
            checked += 1;
        }
        assert!(checked > 150_000, "{checked}");
    }

    #[test]
    fn fnv_is_stable_and_separates_parts() {
        assert_eq!(fnv1a64(&[b"a"]), fnv1a64(&[b"a"]));
        assert_ne!(fnv1a64(&[b"ab", b"c"]), fnv1a64(&[b"a", b"bc"]));
    }
}
