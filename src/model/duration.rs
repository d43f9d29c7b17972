//! Prometheus duration strings (`1h30m`, `15s`, `500ms`, `2d`, `1w`, `1y`).

use std::time::Duration;

/// Parses a Prometheus duration. Unlike PromQL (which rejects zero),
/// configuration accepts `0`/`0s`, as Prometheus's config does (`for: 0s`,
/// `group_wait: 0s`). Floats like `1.5` are rejected, as in Prometheus.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".to_string());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bytes = s.as_bytes();
    if !bytes[0].is_ascii_digit() || !bytes[bytes.len() - 1].is_ascii_alphabetic() {
        return Err(format!(
            "not a valid duration string: {s:?} (use a number with a unit: ms, s, m, h, d, w, y)"
        ));
    }
    // All-zero amounts such as "0s" or "0m0s" are accepted as zero.
    if s.bytes().filter(|c| c.is_ascii_digit()).all(|c| c == b'0') {
        return Ok(Duration::ZERO);
    }
    promql_parser::util::parse_duration(s).map_err(|e| {
        if e.contains("not a valid duration") {
            format!("not a valid duration string: {s:?} (use a number with a unit: ms, s, m, h, d, w, y)")
        } else {
            e
        }
    })
}

/// Formats like Prometheus (`1h30m`, `15s`, `0s`).
pub fn format_duration(d: Duration) -> String {
    promql_parser::util::display_duration(&d)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("1.5").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("10").is_err());
    }

    #[test]
    fn formats_round_trip() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
