//! Byte sizes as Prometheus writes them (`body_size_limit: 10MB`,
//! `retention.size: 512GiB`): parsing and printing.
//!
//! Prometheus parses these with `units.ParseBase2Bytes`, where every unit is
//! a power of 1024 whether it is spelled `KB` or `KiB`. Users copy values
//! from their prometheus.yml, so the same text must mean the same number of
//! bytes here. Pure functions, no I/O.

/// Units with the `iB` spelling (`KiB`, `MiB`, ...), tried first.
const IEC_UNITS: [(&str, u32); 7] = [
    ("B", 0),
    ("KiB", 1),
    ("MiB", 2),
    ("GiB", 3),
    ("TiB", 4),
    ("PiB", 5),
    ("EiB", 6),
];

/// The older spelling (`KB`, `MB`, ...), still base 1024 in Prometheus.
const LEGACY_UNITS: [(&str, u32); 7] = [
    ("B", 0),
    ("KB", 1),
    ("MB", 2),
    ("GB", 3),
    ("TB", 4),
    ("PB", 5),
    ("EB", 6),
];

/// Parses a Prometheus byte size such as `10MB`, `512KiB`, `1.5GB` or
/// `1GB512MB` into bytes. `0` alone is zero; any other number needs a unit.
/// `KB`/`MB`/... and `KiB`/`MiB`/... both mean powers of 1024, as in
/// Prometheus, and the two spellings cannot be mixed in one value.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let invalid = || {
        format!(
            "invalid size {s:?}: use a number with a unit such as 512KiB, 10MB or 1GiB (B, KB/KiB, MB/MiB, GB/GiB, TB/TiB, PB/PiB, EB/EiB)"
        )
    };
    if t.starts_with('-') {
        return Err(format!("invalid size {s:?}: sizes cannot be negative"));
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    if t == "0" {
        return Ok(0);
    }
    if t.is_empty() {
        return Err(invalid());
    }
    let bytes = parse_with(t, &IEC_UNITS).or_else(|_| parse_with(t, &LEGACY_UNITS));
    match bytes {
        Ok(b) => Ok(b),
        Err(SizeError::Syntax) => Err(invalid()),
        Err(SizeError::UnknownUnit(u)) if u.is_empty() => Err(format!(
            "invalid size {s:?}: a unit is required, e.g. {t}MB or {t}KiB (B, KB/KiB, MB/MiB, GB/GiB, TB/TiB, PB/PiB, EB/EiB)"
        )),
        Err(SizeError::UnknownUnit(u)) => Err(format!(
            "invalid size {s:?}: unknown unit {u:?} (use B, KB/KiB, MB/MiB, GB/GiB, TB/TiB, PB/PiB or EB/EiB; lowercase units such as kb are not accepted)"
        )),
        Err(SizeError::Overflow) => Err(format!("invalid size {s:?}: too large")),
    }
}

enum SizeError {
    Syntax,
    UnknownUnit(String),
    Overflow,
}

/// One pass over `number unit number unit ...` with one unit table.
fn parse_with(s: &str, units: &[(&str, u32)]) -> Result<u64, SizeError> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: f64 = 0.0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let int_part = &s[start..i];
        let mut frac_part = "";
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let fstart = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            frac_part = &s[fstart..i];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(SizeError::Syntax);
        }
        let ustart = i;
        while i < b.len() && !(b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let unit = &s[ustart..i];
        let Some(&(_, power)) = units.iter().find(|(name, _)| *name == unit) else {
            return Err(SizeError::UnknownUnit(unit.to_string()));
        };
        let number: f64 = format!(
            "{}.{}",
            if int_part.is_empty() { "0" } else { int_part },
            if frac_part.is_empty() { "0" } else { frac_part }
        )
        .parse()
        .map_err(|_| SizeError::Syntax)?;
        total += number * 1024f64.powi(power as i32);
    }
    // Prometheus stores sizes in an int64; 2^63 itself does not fit.
    if total >= 9_223_372_036_854_775_808.0 {
        return Err(SizeError::Overflow);
    }
    Ok(total as u64)
}

/// Prints a byte count the way Prometheus prints `units.Base2Bytes`: the
/// largest binary unit that divides it exactly (`10MiB`, `1536KiB`, `100B`).
pub fn format_size(bytes: u64) -> String {
    if bytes == 0 {
        return "0B".to_string();
    }
    let mut power = 0;
    let mut n = bytes;
    while power < 6 && n.is_multiple_of(1024) {
        n /= 1024;
        power += 1;
    }
    format!("{n}{}", IEC_UNITS[power].0)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_sizes() {
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("100B").unwrap(), 100);
        assert_eq!(parse_size("512KiB").unwrap(), 512 * 1024);
        assert_eq!(parse_size("512KB").unwrap(), 512 * 1024);
        assert_eq!(parse_size("10MB").unwrap(), 10 * 1024 * 1024);
        assert_eq!(parse_size("10MiB").unwrap(), 10 * 1024 * 1024);
        assert_eq!(parse_size("1GB").unwrap(), 1 << 30);
        assert_eq!(parse_size("2TiB").unwrap(), 2 << 40);
        assert_eq!(parse_size("1.5GB").unwrap(), 3 << 29);
        assert_eq!(parse_size(".5KB").unwrap(), 512);
        assert_eq!(parse_size("1GB512MB").unwrap(), (1 << 30) + (512 << 20));
        assert_eq!(parse_size("1EiB").unwrap(), 1 << 60);
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        for bad in [
            "",
            "10",
            "10kb",
            "10 MB",
            "MB",
            "10XB",
            "-1MB",
            "1KiB512KB",
            "8EiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
        let e = parse_size("10mb").unwrap_err();
        assert!(e.contains("unknown unit \"mb\""), "{e}");
        let e = parse_size("10").unwrap_err();
        assert!(e.contains("a unit is required, e.g. 10MB"), "{e}");
    }

    #[test]
    fn formats_in_largest_exact_unit() {
        assert_eq!(format_size(0), "0B");
        assert_eq!(format_size(100), "100B");
        assert_eq!(format_size(10 << 20), "10MiB");
        assert_eq!(format_size(1536 * 1024), "1536KiB");
        assert_eq!(format_size(1 << 60), "1EiB");
        assert_eq!(parse_size(&format_size(3 << 29)).unwrap(), 3 << 29);
    }
}
