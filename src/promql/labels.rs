//! Label-set helpers the operators share: match signatures, the labels
//! PromQL removes with the metric name, and Go-compatible formatting of
//! labels and numbers inside messages.

use std::hash::{DefaultHasher, Hasher};

use crate::model::{Label, Labels, METRIC_NAME};

/// Labels that describe the metric rather than the series; removed together
/// with the metric name (Prometheus's type-and-unit metadata labels).
pub const TYPE_LABEL: &str = "__type__";
pub const UNIT_LABEL: &str = "__unit__";

pub fn is_metadata_label(name: &str) -> bool {
    name == METRIC_NAME || name == TYPE_LABEL || name == UNIT_LABEL
}

/// `labels` without the metric name and the metadata labels, reusing its
/// storage (no string copies).
pub fn drop_metric_owned(labels: Labels) -> Labels {
    if !labels.iter().any(|l| is_metadata_label(&l.name)) {
        return labels;
    }
    let mut v = labels.into_vec();
    v.retain(|l| !is_metadata_label(&l.name));
    Labels::from_vec(v)
}

/// 64-bit signature of the labels selected by `keep`. SipHash with fixed
/// keys: collisions between distinct label sets are as unlikely as in
/// Prometheus's own 64-bit signatures and are not checked.
pub fn signature(labels: &Labels, mut keep: impl FnMut(&str) -> bool) -> u64 {
    let mut h = DefaultHasher::new();
    for l in labels.iter() {
        if keep(&l.name) {
            h.write(l.name.as_bytes());
            h.write_u8(0xff);
            h.write(l.value.as_bytes());
            h.write_u8(0xff);
        }
    }
    h.finish()
}

/// Signature over only the labels `names` (sorted or not).
pub fn signature_on(labels: &Labels, names: &[String]) -> u64 {
    signature(labels, |n| names.iter().any(|x| x == n))
}

/// Signature over every label except `names` and the metric name.
pub fn signature_ignoring(labels: &Labels, names: &[String]) -> u64 {
    signature(labels, |n| {
        n != METRIC_NAME && !names.iter().any(|x| x == n)
    })
}

/// The labels a match is made on: only `names` with `on`, otherwise all but
/// `names` and the metric name.
pub fn match_labels(labels: &Labels, on: bool, names: &[String]) -> Labels {
    let kept: Vec<Label> = labels
        .iter()
        .filter(|l| {
            let listed = names.contains(&l.name);
            if on {
                listed
            } else {
                !listed && l.name != METRIC_NAME
            }
        })
        .cloned()
        .collect();
    Labels::from_vec(kept)
}

/// Prometheus's `labels.Labels.String()`: `{a="1", b="2"}`, the metric name
/// as an ordinary label.
pub fn prom_string(labels: &Labels) -> String {
    let mut s = String::from("{");
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&l.name);
        s.push('=');
        s.push_str(&go_quote(&l.value));
    }
    s.push('}');
    s
}

/// Go's `%q` / `strconv.Quote` for valid UTF-8 text.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%g` for a float64: shortest representation, exponent form when the
/// decimal exponent is below -4 or at least 6.
pub fn go_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Shortest round-trip digits and the decimal exponent.
    let e = format!("{:e}", v);
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    // With the shortest representation Go switches to %e at exponent 6.
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        format!("{v}")
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`, used for label values made
/// from sample values (`count_values`).
pub fn go_f(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    format!("{v}")
}

/// Prometheus's `FormatOpenMetricsFloat`: like `%g` but integral values get
/// a `.0`.
pub fn openmetrics_float(v: f64) -> String {
    let s = go_g(v);
    if v.is_finite() && !s.contains(['.', 'e']) {
        format!("{s}.0")
    } else {
        s
    }
}

/// Go's `strconv.ParseFloat(s, 64)`: decimal and hexadecimal floats,
/// `Inf`/`Infinity`/`NaN` in any case with an optional sign, and `_`
/// separators only between digits of base-prefixed numbers.
pub fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim_start_matches(['+', '-']);
    if s.len() - t.len() > 1 {
        return None;
    }
    let neg = s.starts_with('-');
    let lower = t.to_ascii_lowercase();
    let v = match lower.as_str() {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => f64::NAN,
        _ if lower.starts_with("0x") => parse_hex_float(&lower[2..])?,
        _ => {
            if lower.is_empty()
                || !lower
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'))
            {
                return None;
            }
            lower.parse::<f64>().ok()?
        }
    };
    Some(if neg { -v } else { v })
}

fn parse_hex_float(s: &str) -> Option<f64> {
    let s = s.replace('_', "");
    let (mant, exp) = match s.split_once('p') {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().ok()?),
        None => (s.clone(), 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((&mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    Some(v * 2f64.powi(exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_g_matches_go() {
        assert_eq!(go_g(1.1), "1.1");
        assert_eq!(go_g(-1.1), "-1.1");
        assert_eq!(go_g(1.0), "1");
        assert_eq!(go_g(100000.0), "100000");
        assert_eq!(go_g(1e6), "1e+06");
        assert_eq!(go_g(1234567.0), "1.234567e+06");
        assert_eq!(go_g(0.0001), "0.0001");
        assert_eq!(go_g(0.00001), "1e-05");
        assert_eq!(go_g(f64::NAN), "NaN");
        assert_eq!(go_g(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn openmetrics_floats() {
        assert_eq!(openmetrics_float(0.5), "0.5");
        assert_eq!(openmetrics_float(1.0), "1.0");
        assert_eq!(openmetrics_float(0.99), "0.99");
    }

    #[test]
    fn parse_float_like_go() {
        assert_eq!(parse_go_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_go_float("1e3"), Some(1000.0));
        assert_eq!(parse_go_float("0x1p-2"), Some(0.25));
        assert!(parse_go_float("Hello World").is_none());
        assert!(parse_go_float("").is_none());
        assert!(parse_go_float("NaN").unwrap().is_nan());
    }

    #[test]
    fn label_strings() {
        let l = Labels::from_pairs([("__name__", "x"), ("a", "b\"c")]);
        assert_eq!(prom_string(&l), "{__name__=\"x\", a=\"b\\\"c\"}");
        assert_eq!(
            drop_metric_owned(l.clone()),
            Labels::from_pairs([("a", "b\"c")])
        );
    }
}
