//! Numbers of the exposition formats: sample values, Prometheus-text
//! timestamps (integer milliseconds) and OpenMetrics timestamps (decimal
//! seconds).
//!
//! Sits under the line parsers; it only looks at one token's bytes. Every
//! function here is exact: a value parses to the same `f64` as Rust's
//! `str::parse` (correct rounding), and decimal seconds become milliseconds
//! by exact decimal arithmetic, never through a lossy `f64` product. It must
//! not accept what Prometheus rejects: no hex floats, no `_` digit
//! separators, no signed NaN, no finite literal that overflows to infinity
//! (Go's `strconv.ParseFloat` reports those as range errors).

/// Powers of ten that are exact in an `f64` (10^22 is the last one).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Largest integer below which every `u64` converts to `f64` exactly.
const EXACT_MANTISSA: u64 = 1 << 53;

/// Parses a sample value: a decimal float (`1`, `-2.5`, `.5`, `5.`,
/// `1e-3`, `1E+06`), `NaN` (any case, unsigned) or an infinity
/// (`Inf`/`Infinity`, any case, optional sign). `None` when the token is not
/// such a number.
#[inline]
pub(super) fn parse_float(s: &[u8]) -> Option<f64> {
    if let Some(v) = fast_float(s) {
        return Some(v);
    }
    slow_float(s)
}

/// Clinger's fast path: a mantissa of at most 19 significant digits that
/// fits 2^53, scaled by a power of ten that is itself exact, is one
/// correctly rounded IEEE operation away from the exact result. Returns
/// `None` (not an error) whenever the token is outside that shape, so the
/// slow path decides.
#[inline]
fn fast_float(s: &[u8]) -> Option<f64> {
    let (neg, rest) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let mut mant: u64 = 0;
    let mut sig = 0u32;
    let mut exp: i32 = 0;
    let mut digits = 0usize;
    let mut i = 0;
    while i < rest.len() {
        let d = rest[i].wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        if mant != 0 || d != 0 {
            if sig == 19 {
                return None;
            }
            mant = mant * 10 + u64::from(d);
            sig += 1;
        }
        digits += 1;
        i += 1;
    }
    if i < rest.len() && rest[i] == b'.' {
        i += 1;
        while i < rest.len() {
            let d = rest[i].wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            if mant != 0 || d != 0 {
                if sig == 19 {
                    return None;
                }
                mant = mant * 10 + u64::from(d);
                sig += 1;
            }
            exp -= 1;
            digits += 1;
            i += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < rest.len() && (rest[i] | 0x20) == b'e' {
        i += 1;
        let eneg = match rest.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        let mut e: i32 = 0;
        while i < rest.len() {
            let d = rest[i].wrapping_sub(b'0');
            if d > 9 || e > 10_000 {
                break;
            }
            e = e * 10 + i32::from(d);
            i += 1;
        }
        if i == start {
            return None;
        }
        exp += if eneg { -e } else { e };
    }
    if i != rest.len() {
        return None;
    }
    let v = if mant == 0 {
        0.0
    } else if mant <= EXACT_MANTISSA && (-22..=22).contains(&exp) {
        let m = mant as f64;
        if exp >= 0 {
            m * POW10[exp as usize]
        } else {
            m / POW10[(-exp) as usize]
        }
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

/// Full grammar check, then the standard library's correctly rounded parser.
#[cold]
fn slow_float(s: &[u8]) -> Option<f64> {
    if let Some(v) = special_float(s) {
        return Some(v);
    }
    if !is_decimal(s) {
        return None;
    }
    // The grammar check above admits ASCII only.
    let text = std::str::from_utf8(s).ok()?;
    let v: f64 = text.parse().ok()?;
    if v.is_infinite() {
        // A finite literal too large for f64: Go's ParseFloat, and so
        // Prometheus, rejects it as out of range instead of storing +Inf.
        return None;
    }
    Some(v)
}

/// `NaN` (unsigned) and `[+-]Inf` / `[+-]Infinity`, case-insensitively,
/// exactly the spellings Go's `strconv.ParseFloat` accepts.
fn special_float(s: &[u8]) -> Option<f64> {
    if s.eq_ignore_ascii_case(b"nan") {
        return Some(f64::NAN);
    }
    let (neg, rest) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
        return Some(if neg {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    None
}

/// `[sign] (digits [. digits*] | . digits) [(e|E) [sign] digits]`: the
/// decimal grammar shared by Go's ParseFloat (minus hex and `_`) and the
/// OpenMetrics `realnumber` rule.
fn is_decimal(s: &[u8]) -> bool {
    let mut i = match s.first() {
        Some(b'-' | b'+') => 1,
        _ => 0,
    };
    let mut digits = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < s.len() && s[i] == b'.' {
        i += 1;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return false;
    }
    if i < s.len() && (s[i] | 0x20) == b'e' {
        i += 1;
        if i < s.len() && (s[i] == b'-' || s[i] == b'+') {
            i += 1;
        }
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == s.len()
}

/// A Prometheus-text timestamp: a base-10 `i64` of milliseconds with an
/// optional sign, as Go's `strconv.ParseInt(s, 10, 64)` reads it.
#[inline]
pub(super) fn parse_int_ms(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulate negatively so i64::MIN is representable.
    let mut v: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub(i64::from(d))?;
    }
    if neg { Some(v) } else { v.checked_neg() }
}

/// An OpenMetrics timestamp: decimal seconds, converted exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct OmTimestamp {
    /// Nanoseconds since the epoch, truncated toward zero and saturated far
    /// outside any real clock; used to compare timestamps within a series
    /// at the precision the OpenMetrics reference parser keeps.
    pub nanos: i128,
}

impl OmTimestamp {
    /// Milliseconds, truncated toward zero like Prometheus's
    /// `int64(seconds * 1000)`, saturated to the `i64` range.
    pub fn millis(self) -> i64 {
        let ms = self.nanos / 1_000_000;
        ms.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

/// Saturation bound for timestamp nanoseconds: far beyond `i64`
/// milliseconds (about 9.2e24 ns), still far from `i128` overflow.
const NANOS_CAP: i128 = 1_000_000_000_000_000_000_000_000_000_000;

/// Parses an OpenMetrics timestamp (`realnumber`: no NaN, no infinities,
/// no hex, no `_`). `None` when the token is not one.
pub(super) fn parse_om_timestamp(s: &[u8]) -> Option<OmTimestamp> {
    if !is_decimal(s) {
        return None;
    }
    let (neg, rest) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    // Split into integer digits, fraction digits and exponent; the grammar
    // check above guarantees the shape.
    let mut i = 0;
    while i < rest.len() && rest[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = &rest[..i];
    let mut frac_digits: &[u8] = &[];
    if i < rest.len() && rest[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < rest.len() && rest[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = &rest[start..i];
    }
    let mut exp: i64 = 0;
    if i < rest.len() {
        // (e|E) [sign] digits
        i += 1;
        let eneg = rest[i] == b'-';
        if rest[i] == b'-' || rest[i] == b'+' {
            i += 1;
        }
        for &c in &rest[i..] {
            // Saturate: beyond a few thousand the result is 0 or capped anyway.
            exp = (exp * 10 + i64::from(c - b'0')).min(100_000);
        }
        if eneg {
            exp = -exp;
        }
    }
    // value = digits * 10^(exp - frac_len); nanos = value * 10^9, truncated.
    let shift = exp - frac_digits.len() as i64 + 9;
    let total = int_digits.len() + frac_digits.len();
    // Digits beyond `keep` fall below one nanosecond and are truncated.
    let keep = if shift >= 0 {
        total
    } else {
        total.saturating_sub(shift.unsigned_abs().min(total as u64) as usize)
    };
    let mut acc: i128 = 0;
    for &c in int_digits.iter().chain(frac_digits.iter()).take(keep) {
        acc = (acc * 10 + i128::from(c - b'0')).min(NANOS_CAP);
    }
    if shift > 0 && acc != 0 {
        for _ in 0..shift.min(60) {
            acc = (acc * 10).min(NANOS_CAP);
        }
    }
    Some(OmTimestamp {
        nanos: if neg { -acc } else { acc },
    })
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn f(s: &str) -> Option<f64> {
        parse_float(s.as_bytes())
    }

    #[test]
    fn plain_numbers() {
        assert_eq!(f("1"), Some(1.0));
        assert_eq!(f("-3e3"), Some(-3000.0));
        assert_eq!(f("0.23"), Some(0.23));
        assert_eq!(f(".5"), Some(0.5));
        assert_eq!(f("5."), Some(5.0));
        assert_eq!(f("08"), Some(8.0));
        assert_eq!(f("1.7560473e+06"), Some(1.7560473e6));
        assert_eq!(f("1E-3"), Some(0.001));
        assert_eq!(f("+12"), Some(12.0));
        assert_eq!(
            f("0000000000000000000000000000000000000000001.2e-1"),
            Some(0.12)
        );
        assert_eq!(f("9223372036854775808"), Some(9_223_372_036_854_775_808.0));
        let neg_zero = f("-0").unwrap_or(1.0);
        assert!(neg_zero == 0.0 && neg_zero.is_sign_negative());
    }

    #[test]
    fn nan_and_inf_spellings() {
        for s in ["NaN", "nan", "NAN", "nAn"] {
            assert!(f(s).is_some_and(f64::is_nan), "{s}");
        }
        for s in [
            "+Inf",
            "Inf",
            "inf",
            "+inf",
            "INF",
            "Infinity",
            "+infinity",
            "INFINITY",
        ] {
            assert_eq!(f(s), Some(f64::INFINITY), "{s}");
        }
        for s in ["-Inf", "-inf", "-Infinity", "-INFINITY"] {
            assert_eq!(f(s), Some(f64::NEG_INFINITY), "{s}");
        }
        // Go rejects a signed NaN and partial words.
        for s in ["+NaN", "-nan", "in", "infin", "nana", "Infinityy"] {
            assert_eq!(f(s), None, "{s}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for s in [
            "", "-", "+", ".", "e5", "1e", "1e+", "1_000", "0x1p-3", "0x1", "0X1", "0b1", "0o1",
            "1.1.1", " 1", "1 ", "1e400", "-1e400", "blubb", "1,5", "--1", "1e5.5",
        ] {
            assert_eq!(f(s), None, "{s:?}");
        }
    }

    #[test]
    fn tiny_values_underflow_to_zero_like_go() {
        assert_eq!(f("1e-400"), Some(0.0));
    }

    /// The fast path must agree bit for bit with the standard library.
    #[test]
    fn fast_path_is_exact() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200_000 {
            let r = next();
            let mant = next() % 10u64.pow((r % 20) as u32).max(1);
            let frac = (r >> 8) % 20;
            let digits = mant.to_string();
            let s = if frac as usize >= digits.len() {
                format!("0.{}{}", "0".repeat(frac as usize - digits.len()), digits)
            } else if frac == 0 {
                digits.clone()
            } else {
                let (a, b) = digits.split_at(digits.len() - frac as usize);
                format!("{a}.{b}")
            };
            let s = match (r >> 16) % 4 {
                0 => format!("{s}e{}", (r >> 20) % 30),
                1 => format!("-{s}e-{}", (r >> 20) % 30),
                _ => s,
            };
            let want: f64 = s.parse().unwrap_or(f64::NAN);
            let got = f(&s).unwrap_or(f64::NAN);
            assert_eq!(got.to_bits(), want.to_bits(), "{s}");
        }
    }

    #[test]
    fn text_timestamps() {
        assert_eq!(parse_int_ms(b"1234567890"), Some(1_234_567_890));
        assert_eq!(parse_int_ms(b"-2"), Some(-2));
        assert_eq!(parse_int_ms(b"+5"), Some(5));
        assert_eq!(parse_int_ms(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int_ms(b"9223372036854775807"), Some(i64::MAX));
        for s in [
            "9223372036854775808",
            "2.72",
            "1e3",
            "",
            "-",
            "1_000",
            "0x10",
        ] {
            assert_eq!(parse_int_ms(s.as_bytes()), None, "{s}");
        }
    }

    fn om_ms(s: &str) -> Option<i64> {
        parse_om_timestamp(s.as_bytes()).map(OmTimestamp::millis)
    }

    #[test]
    fn openmetrics_timestamps_are_exact() {
        assert_eq!(om_ms("1"), Some(1000));
        assert_eq!(om_ms("000"), Some(0));
        assert_eq!(om_ms("1.1"), Some(1100));
        // 1.005 * 1000 is 1004.9999999999999 in f64; decimal arithmetic is exact.
        assert_eq!(om_ms("1.005"), Some(1005));
        assert_eq!(om_ms("1.5e3"), Some(1_500_000));
        assert_eq!(om_ms("15e-4"), Some(1));
        assert_eq!(om_ms("-1.5"), Some(-1500));
        assert_eq!(om_ms("-0.0005"), Some(0));
        assert_eq!(om_ms("1726839813.016397"), Some(1_726_839_813_016));
        assert_eq!(om_ms(".5"), Some(500));
        assert_eq!(om_ms("2."), Some(2000));
        assert_eq!(
            om_ms("12345678901234567890.1234567890"),
            Some(i64::MAX),
            "saturates"
        );
        assert_eq!(om_ms("1e999999999999"), Some(i64::MAX));
        assert_eq!(om_ms("-1e999999999999"), Some(i64::MIN));
        assert_eq!(om_ms("1e-999999999999"), Some(0));
        for s in [
            "NaN", "Inf", "-Inf", "z", "1z", "1_2", "1.1.1", "0x1p-3", "",
        ] {
            assert_eq!(om_ms(s), None, "{s}");
        }
    }

    #[test]
    fn openmetrics_timestamps_order_at_nanosecond_precision() {
        let a = parse_om_timestamp(b"0.0000000000");
        let b = parse_om_timestamp(b"0.0000000010");
        let c = parse_om_timestamp(b"1.1");
        let d = parse_om_timestamp(b"1.10000001");
        assert!(a < b && c < d);
        assert_eq!(parse_om_timestamp(b"1.5e3"), parse_om_timestamp(b"1500"));
    }
}
