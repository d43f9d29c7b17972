//! Shared vocabulary of watchpost: label sets, label matchers, samples,
//! timestamps and durations.
//!
//! Everything on the data path (scrape, storage, rules, notify, api) speaks in
//! these types. This module does no I/O and imports no other watchpost module,
//! so every layer can depend on it without creating a cycle.

mod alert;
mod duration;
mod histogram;
mod labels;
mod matcher;

pub use alert::{Alert, fingerprint_hex};
pub use duration::{format_duration, parse_duration};
pub use histogram::{CounterResetHint, FloatHistogram};
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
    write_go_float(out, v, |abs, _| !(1e-6..1e21).contains(&abs));
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)`, what `%g` prints: like
/// [`format_float`], but in exponent form when the decimal exponent is
/// below -4 or at least 6 (`1e+06`, `1.5e-05`).
pub fn format_float_g(v: f64) -> String {
    let mut s = String::new();
    write_go_float(&mut s, v, |_, exp| !(-4..6).contains(&exp));
    s
}

/// The shortest digits that read back as `v`, laid out as Go does, in
/// exponent form where `exponent_form(|v|, decimal exponent)` says so.
fn write_go_float(out: &mut String, v: f64, exponent_form: impl Fn(f64, i32) -> bool) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    // The shortest digits that read back as `v`, from ryu: about three
    // times faster than `std::fmt` (a range answer has millions of values),
    // and, like Go, it breaks an exact tie between two candidates to the
    // even digit (`std::fmt` rounds up). Only the layout is done here.
    let mut buf = ryu::Buffer::new();
    let (neg, digits, exp) = shortest_digits(buf.format_finite(v));
    if neg {
        out.push('-');
    }
    if exponent_form(v.abs(), exp) {
        // Go's exponent form: 1.5e-07, 1e+21.
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(itoa::Buffer::new().format(e));
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
}

/// Splits ryu's text of a finite non-zero float into its sign, its
/// significant digits (no leading or trailing zeros) and the decimal
/// exponent of the first digit: `-0.0125` is (true, "125", -2).
fn shortest_digits(s: &str) -> (bool, String, i32) {
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (mant, e) = match s.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (s, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let all: String = int.chars().chain(frac.chars()).collect();
    let lead = all.len() - all.trim_start_matches('0').len();
    let digits = all
        .trim_start_matches('0')
        .trim_end_matches('0')
        .to_string();
    // The first significant digit sits at position `lead` of `all`, whose
    // first digit has exponent `int.len() - 1`.
    let exp = e + int.len() as i32 - 1 - lead as i32;
    (neg, digits, exp)
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
        assert_eq!(format_float(-1.5e-7), "-1.5e-07");
        assert_eq!(format_float(1.2345e300), "1.2345e+300");
        assert_eq!(format_float(5e-324), "5e-324");
        assert_eq!(format_float(1e16), "10000000000000000");
        assert_eq!(format_float(1.5e-6), "0.0000015");
        assert_eq!(format_float(123.0), "123");
        assert_eq!(format_float(-0.0125), "-0.0125");
    }

    /// Both forms hold the shortest digits that read back as the same
    /// float, as Go writes it. `std::fmt` writes the same digits except
    /// when two shortest candidates are equally close: Go (and ryu) then
    /// take the even last digit, `std::fmt` rounds up.
    #[test]
    fn floats_are_shortest_round_trip_with_ties_to_even() {
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
            if !v.is_finite() {
                continue;
            }
            let ours = format_float(v);
            let abs = v.abs();
            let std = if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
                // std's exponent form laid out as Go's: 1.5e-07, 1e+21.
                let e = format!("{v:e}");
                let (mant, exp) = e.split_once('e').unwrap();
                let (sign, digits) = match exp.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', exp),
                };
                format!("{mant}e{sign}{digits:0>2}")
            } else {
                format!("{v}")
            };
            assert_eq!(
                ours.parse::<f64>().unwrap().to_bits(),
                v.to_bits(),
                "{ours}"
            );
            if ours != std {
                assert_eq!(ours.len(), std.len(), "{ours} vs {std}");
                let mant = ours.split('e').next().unwrap();
                let last = mant.as_bytes()[mant.len() - 1] - b'0';
                assert_eq!(last % 2, 0, "a tie goes to the even digit: {ours} vs {std}");
            }
            checked += 1;
        }
        assert!(checked > 350_000, "{checked}");
    }

    #[test]
    fn fnv_is_stable_and_separates_parts() {
        assert_eq!(fnv1a64(&[b"a"]), fnv1a64(&[b"a"]));
        assert_ne!(fnv1a64(&[b"ab", b"c"]), fnv1a64(&[b"a", b"bc"]));
    }
}
