//! Go's `time.Time` and `time.Duration` as template values: printing
//! (`2015-06-23 13:19:44.128 +0000 UTC`, `1h2m3.5s`), reference-layout
//! formatting (`.StartsAt.Format "2006-01-02 15:04"`, Alertmanager's `date`),
//! time zones (`tz "Europe/Berlin"`) and the methods templates call.
//!
//! Nothing here reads the clock: a time is a value someone handed in.

use std::fmt;
use std::sync::Arc;

use chrono::{Offset, TimeZone};
use chrono_tz::OffsetName;

use super::FuncError;
use super::value::{Method, Param, Value};

/// An instant with the zone it is displayed in, like Go's `time.Time`.
#[derive(Clone, Debug)]
pub struct GoTime {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    /// Nanoseconds within the second, 0..1e9.
    pub nsec: u32,
    pub zone: Zone,
}

/// A `time.Location`.
#[derive(Clone, Debug)]
pub enum Zone {
    Utc,
    /// `time.FixedZone(name, offset)`.
    Fixed {
        name: Arc<str>,
        offset: i32,
    },
    /// An IANA zone, as `time.LoadLocation` returns.
    Named(chrono_tz::Tz),
}

impl Zone {
    /// `time.LoadLocation`: `""` and `"UTC"` are UTC. `"Local"` is also UTC:
    /// watchpost renders for people in many places, and the machine's zone
    /// would make output depend on where it runs.
    pub fn load(name: &str) -> Option<Zone> {
        match name {
            "" | "UTC" | "Local" => Some(Zone::Utc),
            _ => name.parse::<chrono_tz::Tz>().ok().map(Zone::Named),
        }
    }
}

const SECONDS_PER_DAY: i64 = 86_400;
/// Unix seconds of Go's zero time, January 1, year 1, 00:00:00 UTC.
const ZERO_TIME_SECS: i64 = -62_135_596_800;

impl GoTime {
    /// A UTC time from Unix seconds and nanoseconds (normalised).
    pub fn from_unix(secs: i64, nsec: i64) -> GoTime {
        let extra = nsec.div_euclid(1_000_000_000);
        GoTime {
            secs: secs.saturating_add(extra),
            nsec: nsec.rem_euclid(1_000_000_000) as u32,
            zone: Zone::Utc,
        }
    }

    /// A UTC time from Unix milliseconds (a Prometheus timestamp).
    pub fn from_unix_millis(ms: i64) -> GoTime {
        GoTime::from_unix(ms.div_euclid(1000), ms.rem_euclid(1000) * 1_000_000)
    }

    /// Go's zero `time.Time` (what an unset `EndsAt` holds).
    pub fn zero() -> GoTime {
        GoTime {
            secs: ZERO_TIME_SECS,
            nsec: 0,
            zone: Zone::Utc,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.secs == ZERO_TIME_SECS && self.nsec == 0
    }

    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos(&self) -> i128 {
        i128::from(self.secs) * 1_000_000_000 + i128::from(self.nsec)
    }

    fn from_unix_nanos(n: i128, zone: Zone) -> GoTime {
        let secs = n.div_euclid(1_000_000_000);
        GoTime {
            secs: secs.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
            nsec: n.rem_euclid(1_000_000_000) as u32,
            zone,
        }
    }

    pub fn in_zone(&self, zone: Zone) -> GoTime {
        GoTime {
            secs: self.secs,
            nsec: self.nsec,
            zone,
        }
    }

    /// The zone offset in seconds east of UTC and the zone abbreviation in
    /// effect at this instant.
    fn offset_name(&self) -> (i32, String) {
        match &self.zone {
            Zone::Utc => (0, "UTC".to_string()),
            Zone::Fixed { name, offset } => (*offset, name.to_string()),
            Zone::Named(tz) => {
                let Some(utc) = chrono::DateTime::from_timestamp(self.secs, 0) else {
                    return (0, "UTC".to_string());
                };
                let off = tz.offset_from_utc_datetime(&utc.naive_utc());
                let secs = off.fix().local_minus_utc();
                let name = off.abbreviation().unwrap_or("").to_string();
                (secs, name)
            }
        }
    }

    /// Go's `Time.Format` with a reference-time layout.
    pub fn format(&self, layout: &str) -> String {
        let (offset, name) = self.offset_name();
        let local = self.secs.saturating_add(i64::from(offset));
        let days = local.div_euclid(SECONDS_PER_DAY);
        let sod = local.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let yday = days - days_from_civil(year, 1, 1) + 1;
        let weekday = (days + 4).rem_euclid(7) as usize;
        let (hour, min, sec) = (sod / 3600, (sod / 60) % 60, sod % 60);
        let mut b = String::new();
        let mut layout = layout;
        while !layout.is_empty() {
            let (prefix, std, suffix) = next_std_chunk(layout);
            b.push_str(prefix);
            let Some(std) = std else {
                break;
            };
            layout = suffix;
            match std {
                Std::Year => append_int(&mut b, year.abs() % 100, 2),
                Std::LongYear => append_int(&mut b, year, 4),
                Std::Month => b.push_str(&MONTHS[(month - 1) as usize][..3]),
                Std::LongMonth => b.push_str(MONTHS[(month - 1) as usize]),
                Std::NumMonth => append_int(&mut b, month, 0),
                Std::ZeroMonth => append_int(&mut b, month, 2),
                Std::WeekDay => b.push_str(&WEEKDAYS[weekday][..3]),
                Std::LongWeekDay => b.push_str(WEEKDAYS[weekday]),
                Std::Day => append_int(&mut b, day, 0),
                Std::UnderDay => {
                    if day < 10 {
                        b.push(' ');
                    }
                    append_int(&mut b, day, 0);
                }
                Std::ZeroDay => append_int(&mut b, day, 2),
                Std::UnderYearDay => {
                    if yday < 100 {
                        b.push(' ');
                        if yday < 10 {
                            b.push(' ');
                        }
                    }
                    append_int(&mut b, yday, 0);
                }
                Std::ZeroYearDay => append_int(&mut b, yday, 3),
                Std::Hour => append_int(&mut b, hour, 2),
                Std::Hour12 => append_int(&mut b, twelve(hour), 0),
                Std::ZeroHour12 => append_int(&mut b, twelve(hour), 2),
                Std::Minute => append_int(&mut b, min, 0),
                Std::ZeroMinute => append_int(&mut b, min, 2),
                Std::Second => append_int(&mut b, sec, 0),
                Std::ZeroSecond => append_int(&mut b, sec, 2),
                Std::PM => b.push_str(if hour >= 12 { "PM" } else { "AM" }),
                Std::Pm => b.push_str(if hour >= 12 { "pm" } else { "am" }),
                Std::Tz(tz) => format_offset(&mut b, tz, offset),
                Std::TzName => {
                    if !name.is_empty() {
                        b.push_str(&name);
                    } else {
                        let mut zone = offset / 60;
                        if zone < 0 {
                            b.push('-');
                            zone = -zone;
                        } else {
                            b.push('+');
                        }
                        append_int(&mut b, i64::from(zone / 60), 2);
                        append_int(&mut b, i64::from(zone % 60), 2);
                    }
                }
                Std::Frac { sep, n, trim } => format_nano(&mut b, self.nsec, sep, n, trim),
            }
        }
        b
    }

    fn civil(&self) -> (i64, i64, i64, i64, i64) {
        let (offset, _) = self.offset_name();
        let local = self.secs.saturating_add(i64::from(offset));
        let days = local.div_euclid(SECONDS_PER_DAY);
        let sod = local.rem_euclid(SECONDS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        (y, m, d, days, sod)
    }
}

impl fmt::Display for GoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format("2006-01-02 15:04:05.999999999 -0700 MST"))
    }
}

fn twelve(hour: i64) -> i64 {
    let h = hour % 12;
    if h == 0 { 12 } else { h }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn append_int(b: &mut String, x: i64, width: usize) {
    if x < 0 {
        b.push('-');
    }
    let s = x.unsigned_abs().to_string();
    for _ in s.len()..width {
        b.push('0');
    }
    b.push_str(&s);
}

#[derive(Clone, Copy)]
enum TzStyle {
    Iso8601,
    Iso8601Colon,
    Iso8601Seconds,
    Iso8601Short,
    Iso8601ColonSeconds,
    Num,
    NumColon,
    NumSeconds,
    NumShort,
    NumColonSeconds,
}

#[derive(Clone, Copy)]
enum Std {
    Year,
    LongYear,
    Month,
    LongMonth,
    NumMonth,
    ZeroMonth,
    WeekDay,
    LongWeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    PM,
    Pm,
    Tz(TzStyle),
    TzName,
    Frac { sep: char, n: usize, trim: bool },
}

fn format_offset(b: &mut String, style: TzStyle, offset: i32) {
    use TzStyle::*;
    let iso = matches!(
        style,
        Iso8601 | Iso8601Colon | Iso8601Seconds | Iso8601Short | Iso8601ColonSeconds
    );
    if offset == 0 && iso {
        b.push('Z');
        return;
    }
    let mut zone = offset / 60;
    let mut absoffset = offset;
    if zone < 0 {
        b.push('-');
        zone = -zone;
        absoffset = -absoffset;
    } else {
        b.push('+');
    }
    append_int(b, i64::from(zone / 60), 2);
    if matches!(
        style,
        Iso8601Colon | NumColon | Iso8601ColonSeconds | NumColonSeconds
    ) {
        b.push(':');
    }
    if !matches!(style, NumShort | Iso8601Short) {
        append_int(b, i64::from(zone % 60), 2);
    }
    if matches!(
        style,
        Iso8601Seconds | NumSeconds | NumColonSeconds | Iso8601ColonSeconds
    ) {
        if matches!(style, NumColonSeconds | Iso8601ColonSeconds) {
            b.push(':');
        }
        append_int(b, i64::from(absoffset % 60), 2);
    }
}

fn format_nano(b: &mut String, nsec: u32, sep: char, n: usize, trim: bool) {
    let digits = format!("{nsec:09}");
    let mut n = n.min(9);
    if trim {
        let bytes = digits.as_bytes();
        while n > 0 && bytes[n - 1] == b'0' {
            n -= 1;
        }
        if n == 0 {
            return;
        }
    }
    b.push(sep);
    b.push_str(&digits[..n]);
}

fn starts_with_lower(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
}

/// Go's `nextStdChunk`: the text before the first layout element, the
/// element, and the rest.
fn next_std_chunk(layout: &str) -> (&str, Option<Std>, &str) {
    let l = layout.as_bytes();
    let has = |i: usize, s: &str| layout.get(i..i + s.len()) == Some(s);
    for i in 0..l.len() {
        let found: Option<(Std, usize)> = match l[i] {
            b'J' if has(i, "Jan") => {
                if has(i, "January") {
                    Some((Std::LongMonth, 7))
                } else if !starts_with_lower(&layout[i + 3..]) {
                    Some((Std::Month, 3))
                } else {
                    None
                }
            }
            b'M' => {
                if has(i, "Mon") {
                    if has(i, "Monday") {
                        Some((Std::LongWeekDay, 6))
                    } else if !starts_with_lower(&layout[i + 3..]) {
                        Some((Std::WeekDay, 3))
                    } else {
                        None
                    }
                } else if has(i, "MST") {
                    Some((Std::TzName, 3))
                } else {
                    None
                }
            }
            b'0' => {
                if i + 1 < l.len() && (b'1'..=b'6').contains(&l[i + 1]) {
                    let std = [
                        Std::ZeroMonth,
                        Std::ZeroDay,
                        Std::ZeroHour12,
                        Std::ZeroMinute,
                        Std::ZeroSecond,
                        Std::Year,
                    ][usize::from(l[i + 1] - b'1')];
                    Some((std, 2))
                } else if has(i, "002") {
                    Some((Std::ZeroYearDay, 3))
                } else {
                    None
                }
            }
            b'1' => {
                if has(i, "15") {
                    Some((Std::Hour, 2))
                } else {
                    Some((Std::NumMonth, 1))
                }
            }
            b'2' => {
                if has(i, "2006") {
                    Some((Std::LongYear, 4))
                } else {
                    Some((Std::Day, 1))
                }
            }
            b'_' => {
                if has(i, "_2") {
                    if has(i + 1, "2006") {
                        // "_2006" is a literal underscore and a long year.
                        return (&layout[..i + 1], Some(Std::LongYear), &layout[i + 5..]);
                    }
                    Some((Std::UnderDay, 2))
                } else if has(i, "__2") {
                    Some((Std::UnderYearDay, 3))
                } else {
                    None
                }
            }
            b'3' => Some((Std::Hour12, 1)),
            b'4' => Some((Std::Minute, 1)),
            b'5' => Some((Std::Second, 1)),
            b'P' if has(i, "PM") => Some((Std::PM, 2)),
            b'p' if has(i, "pm") => Some((Std::Pm, 2)),
            b'-' => {
                if has(i, "-070000") {
                    Some((Std::Tz(TzStyle::NumSeconds), 7))
                } else if has(i, "-07:00:00") {
                    Some((Std::Tz(TzStyle::NumColonSeconds), 9))
                } else if has(i, "-0700") {
                    Some((Std::Tz(TzStyle::Num), 5))
                } else if has(i, "-07:00") {
                    Some((Std::Tz(TzStyle::NumColon), 6))
                } else if has(i, "-07") {
                    Some((Std::Tz(TzStyle::NumShort), 3))
                } else {
                    None
                }
            }
            b'Z' => {
                if has(i, "Z070000") {
                    Some((Std::Tz(TzStyle::Iso8601Seconds), 7))
                } else if has(i, "Z07:00:00") {
                    Some((Std::Tz(TzStyle::Iso8601ColonSeconds), 9))
                } else if has(i, "Z0700") {
                    Some((Std::Tz(TzStyle::Iso8601), 5))
                } else if has(i, "Z07:00") {
                    Some((Std::Tz(TzStyle::Iso8601Colon), 6))
                } else if has(i, "Z07") {
                    Some((Std::Tz(TzStyle::Iso8601Short), 3))
                } else {
                    None
                }
            }
            c @ (b'.' | b',') if i + 1 < l.len() && (l[i + 1] == b'0' || l[i + 1] == b'9') => {
                let ch = l[i + 1];
                let mut j = i + 1;
                while j < l.len() && l[j] == ch {
                    j += 1;
                }
                if j < l.len() && l[j].is_ascii_digit() {
                    None
                } else {
                    Some((
                        Std::Frac {
                            sep: c as char,
                            n: j - (i + 1),
                            trim: ch == b'9',
                        },
                        j - i,
                    ))
                }
            }
            _ => None,
        };
        if let Some((std, len)) = found {
            return (&layout[..i], Some(std), &layout[i + len..]);
        }
    }
    (layout, None, "")
}

/// Go's `Duration.String`: `1h2m3.5s`, `1.5µs`, `0s`.
pub fn format_duration(d: i64) -> String {
    let neg = d < 0;
    let mut u = d.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        if u == 0 {
            return "0s".to_string();
        }
        let (prec, unit) = if u < 1_000 {
            (0, "ns")
        } else if u < 1_000_000 {
            (3, "µs")
        } else {
            (6, "ms")
        };
        let (frac, int) = frac_part(u, prec);
        out.push_str(&int.to_string());
        out.push_str(&frac);
        out.push_str(unit);
    } else {
        let (frac, secs) = frac_part(u, 9);
        u = secs;
        let s = u % 60;
        u /= 60;
        if u > 0 {
            let m = u % 60;
            u /= 60;
            if u > 0 {
                out.push_str(&u.to_string());
                out.push('h');
            }
            out.push_str(&m.to_string());
            out.push('m');
        }
        out.push_str(&s.to_string());
        out.push_str(&frac);
        out.push('s');
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// The fraction `v / 10^prec` with trailing zeros dropped (`.5`, or empty),
/// and the integer part.
fn frac_part(v: u64, prec: u32) -> (String, u64) {
    let div = 10u64.pow(prec);
    let frac = v % div;
    if frac == 0 {
        return (String::new(), v / div);
    }
    let s = format!("{:0width$}", frac, width = prec as usize);
    (format!(".{}", s.trim_end_matches('0')), v / div)
}

fn time_arg(args: &[Value], i: usize) -> Result<&GoTime, FuncError> {
    match args.get(i) {
        Some(Value::Time(t)) => Ok(t),
        _ => Err(FuncError::new("expected a time.Time argument")),
    }
}

fn dur_arg(args: &[Value], i: usize) -> i64 {
    match args.get(i) {
        Some(Value::Duration(d)) | Some(Value::Int(d)) => *d,
        _ => 0,
    }
}

fn recv_time(v: &Value) -> Result<&GoTime, FuncError> {
    match v {
        Value::Time(t) => Ok(t),
        _ => Err(FuncError::new("method receiver is not a time.Time")),
    }
}

fn recv_dur(v: &Value) -> i64 {
    match v {
        Value::Duration(d) => *d,
        _ => 0,
    }
}

macro_rules! time_int_method {
    ($name:literal, $f:expr) => {
        Method {
            name: $name,
            params: &[],
            variadic: None,
            call: |r, _| {
                let t = recv_time(r)?;
                let f: fn(&GoTime) -> i64 = $f;
                Ok(Value::Int(f(t)))
            },
        }
    };
}

/// Methods of `time.Time` that templates call.
pub(crate) static TIME_METHODS: &[Method] = &[
    Method {
        name: "Format",
        params: &[Param::String],
        variadic: None,
        call: |r, a| {
            let t = recv_time(r)?;
            Ok(Value::from(t.format(a[0].as_str().unwrap_or(""))))
        },
    },
    Method {
        name: "String",
        params: &[],
        variadic: None,
        call: |r, _| Ok(Value::from(recv_time(r)?.to_string())),
    },
    time_int_method!("Unix", |t| t.secs),
    time_int_method!("UnixMilli", |t| (t.unix_nanos() / 1_000_000) as i64),
    time_int_method!("UnixMicro", |t| (t.unix_nanos() / 1_000) as i64),
    time_int_method!("UnixNano", |t| t.unix_nanos() as i64),
    time_int_method!("Year", |t| t.civil().0),
    time_int_method!("Day", |t| t.civil().2),
    time_int_method!("Hour", |t| t.civil().4 / 3600),
    time_int_method!("Minute", |t| (t.civil().4 / 60) % 60),
    time_int_method!("Second", |t| t.civil().4 % 60),
    time_int_method!("Nanosecond", |t| i64::from(t.nsec)),
    time_int_method!("YearDay", |t| {
        let (y, _, _, days, _) = t.civil();
        days - days_from_civil(y, 1, 1) + 1
    }),
    // Go returns time.Month and time.Weekday, which print as names; as
    // strings they print the same.
    Method {
        name: "Month",
        params: &[],
        variadic: None,
        call: |r, _| {
            let (_, m, _, _, _) = recv_time(r)?.civil();
            Ok(Value::from(MONTHS[(m - 1) as usize]))
        },
    },
    Method {
        name: "Weekday",
        params: &[],
        variadic: None,
        call: |r, _| {
            let (_, _, _, days, _) = recv_time(r)?.civil();
            Ok(Value::from(WEEKDAYS[(days + 4).rem_euclid(7) as usize]))
        },
    },
    Method {
        name: "IsZero",
        params: &[],
        variadic: None,
        call: |r, _| Ok(Value::Bool(recv_time(r)?.is_zero())),
    },
    Method {
        name: "UTC",
        params: &[],
        variadic: None,
        call: |r, _| Ok(Value::Time(recv_time(r)?.in_zone(Zone::Utc))),
    },
    Method {
        name: "Local",
        params: &[],
        variadic: None,
        call: |r, _| Ok(Value::Time(recv_time(r)?.in_zone(Zone::Utc))),
    },
    Method {
        name: "Add",
        params: &[Param::Duration],
        variadic: None,
        call: |r, a| {
            let t = recv_time(r)?;
            let n = t.unix_nanos() + i128::from(dur_arg(a, 0));
            Ok(Value::Time(GoTime::from_unix_nanos(n, t.zone.clone())))
        },
    },
    Method {
        name: "Sub",
        params: &[Param::Time],
        variadic: None,
        call: |r, a| {
            let d = recv_time(r)?.unix_nanos() - time_arg(a, 0)?.unix_nanos();
            Ok(Value::Duration(
                d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
            ))
        },
    },
    Method {
        name: "Before",
        params: &[Param::Time],
        variadic: None,
        call: |r, a| {
            Ok(Value::Bool(
                recv_time(r)?.unix_nanos() < time_arg(a, 0)?.unix_nanos(),
            ))
        },
    },
    Method {
        name: "After",
        params: &[Param::Time],
        variadic: None,
        call: |r, a| {
            Ok(Value::Bool(
                recv_time(r)?.unix_nanos() > time_arg(a, 0)?.unix_nanos(),
            ))
        },
    },
    Method {
        name: "Equal",
        params: &[Param::Time],
        variadic: None,
        call: |r, a| {
            Ok(Value::Bool(
                recv_time(r)?.unix_nanos() == time_arg(a, 0)?.unix_nanos(),
            ))
        },
    },
    Method {
        name: "Truncate",
        params: &[Param::Duration],
        variadic: None,
        call: |r, a| {
            let t = recv_time(r)?;
            let d = i128::from(dur_arg(a, 0));
            if d <= 0 {
                return Ok(Value::Time(t.clone()));
            }
            // Go truncates relative to the zero time.
            let since_zero = t.unix_nanos() - i128::from(ZERO_TIME_SECS) * 1_000_000_000;
            let n = t.unix_nanos() - since_zero.rem_euclid(d);
            Ok(Value::Time(GoTime::from_unix_nanos(n, t.zone.clone())))
        },
    },
];

macro_rules! dur_float_method {
    ($name:literal, $unit:expr) => {
        Method {
            name: $name,
            params: &[],
            variadic: None,
            call: |r, _| {
                let d = recv_dur(r);
                let unit: i64 = $unit;
                Ok(Value::Float(
                    (d / unit) as f64 + (d % unit) as f64 / unit as f64,
                ))
            },
        }
    };
}

/// Methods of `time.Duration` that templates call.
pub(crate) static DURATION_METHODS: &[Method] = &[
    Method {
        name: "String",
        params: &[],
        variadic: None,
        call: |r, _| Ok(Value::from(format_duration(recv_dur(r)))),
    },
    dur_float_method!("Seconds", 1_000_000_000),
    dur_float_method!("Minutes", 60_000_000_000),
    dur_float_method!("Hours", 3_600_000_000_000),
    Method {
        name: "Milliseconds",
        params: &[],
        variadic: None,
        call: |r, _| Ok(Value::Int(recv_dur(r) / 1_000_000)),
    },
    Method {
        name: "Microseconds",
        params: &[],
        variadic: None,
        call: |r, _| Ok(Value::Int(recv_dur(r) / 1_000)),
    },
    Method {
        name: "Nanoseconds",
        params: &[],
        variadic: None,
        call: |r, _| Ok(Value::Int(recv_dur(r))),
    },
    Method {
        name: "Abs",
        params: &[],
        variadic: None,
        call: |r, _| {
            let d = recv_dur(r);
            Ok(Value::Duration(if d == i64::MIN {
                i64::MAX
            } else {
                d.abs()
            }))
        },
    },
    Method {
        name: "Truncate",
        params: &[Param::Duration],
        variadic: None,
        call: |r, a| {
            let (d, m) = (recv_dur(r), dur_arg(a, 0));
            Ok(Value::Duration(if m <= 0 { d } else { d - d % m }))
        },
    },
    Method {
        name: "Round",
        params: &[Param::Duration],
        variadic: None,
        call: |r, a| Ok(Value::Duration(round_duration(recv_dur(r), dur_arg(a, 0)))),
    },
];

/// Go's `Duration.Round`: halfway values round away from zero.
fn round_duration(d: i64, m: i64) -> i64 {
    if m <= 0 {
        return d;
    }
    let mut r = d % m;
    if d < 0 {
        r = -r;
        if r + r < m {
            return d + r;
        }
        return d.checked_sub(m).map_or(i64::MIN, |d1| d1 + r);
    }
    if r + r < m {
        return d - r;
    }
    d.checked_add(m).map_or(i64::MAX, |d1| d1 - r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_string_like_go() {
        let t = GoTime::from_unix(1435065584, 128_000_000);
        assert_eq!(t.to_string(), "2015-06-23 13:19:44.128 +0000 UTC");
        assert_eq!(GoTime::zero().to_string(), "0001-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            GoTime::from_unix(-1, 0).to_string(),
            "1969-12-31 23:59:59 +0000 UTC"
        );
    }

    #[test]
    fn layouts() {
        let t = GoTime::from_unix(1435065584, 128_000_000);
        assert_eq!(
            t.format("2006-01-02T15:04:05Z07:00"),
            "2015-06-23T13:19:44Z"
        );
        assert_eq!(t.format("Mon Jan _2 3:04PM"), "Tue Jun 23 1:19PM");
        assert_eq!(t.format(".000 ,999 002"), ".128 ,128 174");
        let berlin = t.in_zone(Zone::load("Europe/Berlin").unwrap());
        assert_eq!(berlin.format("15:04 MST -07:00"), "15:19 CEST +02:00");
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(1_500), "1.5µs");
        assert_eq!(format_duration(100_000_000), "100ms");
        assert_eq!(format_duration(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(format_duration(-60_000_000_000), "-1m0s");
        assert_eq!(round_duration(1_500, 1_000), 2_000);
    }
}
