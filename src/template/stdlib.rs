//! Go standard-library behaviours that template functions expose:
//! `regexp` syntax (ASCII `\d \w \s \b`), `net.SplitHostPort`,
//! `strconv.ParseFloat`, `encoding/json` output, `url.QueryUnescape`,
//! `regexp.QuoteMeta`, and `golang.org/x/text/cases` title casing.

use regex::Regex;

use super::gofmt::{format_float, quote};
use super::value::Value;

/// Compiles a Go (RE2) regular expression with Go's meaning of the Perl
/// classes: `\d`, `\w`, `\s` and `\b` are ASCII-only in Go but Unicode-aware
/// in Rust's default mode, so they are rewritten.
pub(crate) fn go_regex(pattern: &str) -> Result<Regex, String> {
    let translated = translate_perl_classes(pattern);
    Regex::new(&translated).map_err(|e| {
        let msg = match &e {
            regex::Error::Syntax(s) => s
                .lines()
                .rev()
                .find(|l| l.starts_with("error:"))
                .map(|l| l.trim_start_matches("error:").trim().to_string())
                .unwrap_or_else(|| s.clone()),
            other => other.to_string(),
        };
        // Go's wording for the common mistakes; other messages are Rust's.
        let (code, expr) = match msg.as_str() {
            "unclosed group" => ("missing closing )".to_string(), pattern.to_string()),
            "unopened group" => ("unexpected )".to_string(), pattern.to_string()),
            "unclosed character class" => (
                "missing closing ]".to_string(),
                pattern[pattern.rfind('[').unwrap_or(0)..].to_string(),
            ),
            "repetition operator missing expression" => (
                "missing argument to repetition operator".to_string(),
                pattern.to_string(),
            ),
            "unrecognized escape sequence" => {
                ("invalid escape sequence".to_string(), pattern.to_string())
            }
            _ => (msg.clone(), pattern.to_string()),
        };
        format!("error parsing regexp: {code}: `{expr}`")
    })
}

/// `Regexp.ReplaceAllString` that stops once the result would exceed
/// `limit` bytes (an empty pattern with a long replacement multiplies).
pub(crate) fn replace_all_bounded(
    re: &Regex,
    text: &str,
    repl: &str,
    limit: usize,
) -> Result<String, String> {
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(text) {
        let Some(m) = caps.get(0) else { continue };
        out.push_str(&text[last..m.start()]);
        caps.expand(repl, &mut out);
        last = m.end();
        if out.len() > limit {
            return Err(format!("result exceeds the limit of {limit} bytes"));
        }
    }
    out.push_str(&text[last..]);
    if out.len() > limit {
        return Err(format!("result exceeds the limit of {limit} bytes"));
    }
    Ok(out)
}

fn translate_perl_classes(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 8);
    let mut chars = p.chars().peekable();
    let mut in_class = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let (inside, outside) = match n {
                    'd' => ("0-9", "[0-9]"),
                    'D' => ("[^0-9]", "[^0-9]"),
                    'w' => ("0-9A-Za-z_", "[0-9A-Za-z_]"),
                    'W' => ("[^0-9A-Za-z_]", "[^0-9A-Za-z_]"),
                    's' => ("\\t\\n\\x0C\\r ", "[\\t\\n\\x0C\\r ]"),
                    'S' => ("[^\\t\\n\\x0C\\r ]", "[^\\t\\n\\x0C\\r ]"),
                    'b' if in_class == 0 => ("", "(?-u:\\b)"),
                    'B' if in_class == 0 => ("", "(?-u:\\B)"),
                    _ => {
                        out.push('\\');
                        out.push(n);
                        continue;
                    }
                };
                out.push_str(if in_class > 0 { inside } else { outside });
            }
            '[' => {
                in_class += 1;
                out.push('[');
                // A leading ']' (after an optional '^') is a literal.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
                // POSIX classes like [:alpha:] are copied whole.
            }
            ']' if in_class > 0 => {
                in_class -= 1;
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Go's `net.SplitHostPort`.
pub(crate) fn split_host_port(hostport: &str) -> Result<(String, String), String> {
    let missing_port = || format!("address {hostport}: missing port in address");
    let too_many = || format!("address {hostport}: too many colons in address");
    let Some(i) = hostport.rfind(':') else {
        return Err(missing_port());
    };
    let (host, j, k);
    if hostport.starts_with('[') {
        let Some(end) = hostport.find(']') else {
            return Err(format!("address {hostport}: missing ']' in address"));
        };
        if end + 1 == hostport.len() {
            return Err(missing_port());
        }
        if end + 1 != i {
            if hostport.as_bytes()[end + 1] == b':' {
                return Err(too_many());
            }
            return Err(missing_port());
        }
        host = hostport[1..end].to_string();
        j = 1;
        k = end + 1;
    } else {
        host = hostport[..i].to_string();
        if host.contains(':') {
            return Err(too_many());
        }
        j = 0;
        k = 0;
    }
    if hostport[j..].contains('[') {
        return Err(format!("address {hostport}: unexpected '[' in address"));
    }
    if hostport[k..].contains(']') {
        return Err(format!("address {hostport}: unexpected ']' in address"));
    }
    Ok((host, hostport[i + 1..].to_string()))
}

/// Go's `net.JoinHostPort`.
pub(crate) fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Go's `strconv.ParseFloat(s, 64)`, with its error text.
pub(crate) fn parse_go_float(s: &str) -> Result<f64, String> {
    let syntax = || format!("strconv.ParseFloat: parsing {}: invalid syntax", quote(s));
    let body = s.trim_start_matches(['+', '-']);
    if s.len() - body.len() > 1 {
        return Err(syntax());
    }
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" || lower == "nan" {
        let v = if lower == "nan" {
            f64::NAN
        } else {
            f64::INFINITY
        };
        return Ok(if s.starts_with('-') { -v } else { v });
    }
    let ok_chars = body.bytes().all(|b| {
        b.is_ascii_hexdigit()
            || matches!(
                b,
                b'.' | b'e' | b'E' | b'+' | b'-' | b'x' | b'X' | b'p' | b'P' | b'_'
            )
    });
    if body.is_empty() || !ok_chars {
        return Err(syntax());
    }
    let v = if let Some(hex) = lower.strip_prefix("0x") {
        parse_hex_float(hex).ok_or_else(syntax)?
    } else {
        if lower.contains('_') || lower.contains('x') || lower.contains('p') {
            return Err(syntax());
        }
        lower.parse::<f64>().map_err(|_| syntax())?
    };
    if v.is_infinite() {
        return Err(format!(
            "strconv.ParseFloat: parsing {}: value out of range",
            quote(s)
        ));
    }
    Ok(if s.starts_with('-') { -v } else { v })
}

fn parse_hex_float(s: &str) -> Option<f64> {
    let s: String = s.chars().filter(|&c| c != '_').collect();
    let (mant, exp) = match s.split_once('p') {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().ok()?),
        None => (s.clone(), 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((&mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut m = 0f64;
    for c in int.chars().chain(frac.chars()) {
        m = m * 16.0 + f64::from(c.to_digit(16)?);
    }
    Some(m * 2f64.powi(exp - 4 * frac.len() as i32))
}

/// Go's `url.QueryUnescape`.
pub(crate) fn query_unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (
                    b.get(i + 1).and_then(|&c| hex(c)),
                    b.get(i + 2).and_then(|&c| hex(c)),
                ) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        let end = (i + 3).min(b.len());
                        let bad = String::from_utf8_lossy(&b[i..end]);
                        return Err(format!("invalid URL escape {}", quote(&bad)));
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Go's `regexp.QuoteMeta`.
pub(crate) fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Title casing as `golang.org/x/text/cases.Title` does it: the first cased
/// letter of each word is title-cased; the rest are lower-cased unless
/// `keep_rest` (Prometheus uses `cases.NoLower`, Alertmanager does not).
/// Word breaks approximate Unicode's: letters, digits, marks and `_` never
/// break a word; one "mid" character (`'` `.` `:` ...) does not either, two
/// in a row do; anything else does. A digit does not start a word, so
/// `1st` becomes `1St`, as with x/text.
pub(crate) fn title(s: &str, keep_rest: bool) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut mid_word = false;
    for (i, &c) in chars.iter().enumerate() {
        if c.is_lowercase() || c.is_uppercase() {
            if !mid_word {
                out.extend(title_case(c));
                mid_word = true;
            } else if keep_rest {
                out.push(c);
            } else {
                out.extend(c.to_lowercase());
            }
        } else {
            out.push(c);
            if word_class(c) == WordClass::Break {
                mid_word = false;
            }
        }
        if word_class(c) == WordClass::Mid
            && chars
                .get(i + 1)
                .is_some_and(|&n| word_class(n) == WordClass::Mid)
        {
            mid_word = false;
        }
    }
    out
}

#[derive(PartialEq, Eq)]
enum WordClass {
    Letter,
    Mid,
    Break,
}

fn word_class(c: char) -> WordClass {
    let mid = matches!(
        c,
        '\'' | '.' | ':' | '·' | '\u{387}' | '\u{5F4}' | '\u{2018}' | '\u{2019}' | '\u{2024}'
            | '\u{2027}' | '\u{FE13}' | '\u{FE52}' | '\u{FE55}' | '\u{FF07}' | '\u{FF0E}'
            | '\u{FF1A}' | '\u{AD}' | '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}'
    );
    if mid {
        WordClass::Mid
    } else if c.is_alphanumeric()
        || is_mark(c)
        || matches!(
            c,
            '_' | '\u{203F}' | '\u{2040}' | '\u{2054}' | '\u{FE33}' | '\u{FE34}' | '\u{FE4D}'
                ..='\u{FE4F}' | '\u{FF3F}'
        )
    {
        WordClass::Letter
    } else {
        WordClass::Break
    }
}

fn is_mark(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

fn title_case(c: char) -> impl Iterator<Item = char> {
    // Unicode title case differs from upper case only for a few digraphs.
    let t = match c {
        'ǆ' | 'ǅ' | 'Ǆ' => Some('ǅ'),
        'ǉ' | 'ǈ' | 'Ǉ' => Some('ǈ'),
        'ǌ' | 'ǋ' | 'Ǌ' => Some('ǋ'),
        'ǳ' | 'ǲ' | 'Ǳ' => Some('ǲ'),
        _ => None,
    };
    let upper: Vec<char> = match t {
        Some(t) => vec![t],
        None => c.to_uppercase().collect(),
    };
    upper.into_iter()
}

/// Go's `strings.ToUpper`/`ToLower` map rune by rune with simple case
/// mapping (`ß` stays `ß`), unlike Rust's full mapping.
pub(crate) fn map_case(s: &str, upper: bool) -> String {
    s.chars()
        .map(|c| {
            // The few characters whose simple mapping differs from the
            // first character of the full one.
            match (upper, c as u32) {
                (false, 0x130) => return 'i',
                (true, 0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7) => {
                    return char::from_u32(c as u32 + 8).unwrap_or(c);
                }
                (true, 0x1FB3) => return '\u{1FBC}',
                (true, 0x1FC3) => return '\u{1FCC}',
                (true, 0x1FF3) => return '\u{1FFC}',
                _ => {}
            }
            let mapped: Vec<char> = if upper {
                c.to_uppercase().collect()
            } else {
                c.to_lowercase().collect()
            };
            match mapped.as_slice() {
                [x] => *x,
                _ => c,
            }
        })
        .collect()
}

/// Go's `encoding/json` rendering of a template value (`toJson`).
pub(crate) fn to_json(v: &Value) -> Result<String, String> {
    let mut out = String::new();
    write_json(&mut out, v)?;
    Ok(out)
}

fn write_json(out: &mut String, v: &Value) -> Result<(), String> {
    match v {
        Value::Missing | Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) | Value::Duration(i) => out.push_str(&i.to_string()),
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(format!(
                    "json: unsupported value: {}",
                    super::gofmt::display(v)
                ));
            }
            let abs = f.abs();
            let e = abs != 0.0 && !(1e-6..1e21).contains(&abs);
            let mut s = format_float(*f, if e { b'e' } else { b'f' }, -1);
            if e {
                // Go cleans up e-09 to e-9.
                let b = s.as_bytes();
                let n = b.len();
                if n >= 4 && b[n - 4] == b'e' && b[n - 3] == b'-' && b[n - 2] == b'0' {
                    s.remove(n - 2);
                }
            }
            out.push_str(&s);
        }
        Value::Str(s) => write_json_string(out, s),
        Value::Time(t) => {
            write_json_string(out, &t.format("2006-01-02T15:04:05.999999999Z07:00"));
        }
        Value::List(l) => {
            out.push('[');
            for (i, item) in l.items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item)?;
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, val)) in m.entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, k);
                out.push(':');
                write_json(out, val)?;
            }
            out.push('}');
        }
        Value::Struct(s) => {
            out.push('{');
            for (i, (name, val)) in s.fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let key = s.ty.json_names.get(i).copied().unwrap_or(name);
                write_json_string(out, key);
                out.push(':');
                write_json(out, val)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_like_go() {
        assert_eq!(split_host_port("a:80").unwrap(), ("a".into(), "80".into()));
        assert_eq!(
            split_host_port("[::1]:80").unwrap(),
            ("::1".into(), "80".into())
        );
        assert!(split_host_port("::1").is_err());
        assert!(split_host_port("a").is_err());
        assert_eq!(join_host_port("::1", "80"), "[::1]:80");
    }

    #[test]
    fn go_regex_classes_are_ascii() {
        let re = go_regex(r"^\d+$").unwrap();
        assert!(re.is_match("123"));
        assert!(!re.is_match("١٢٣"));
        assert!(go_regex(r"[\d\s]+").unwrap().is_match("1 2"));
        assert!(go_regex("(").is_err());
    }

    #[test]
    fn titles() {
        assert_eq!(title("aa bb CC", true), "Aa Bb CC");
        assert_eq!(title("aa bb CC", false), "Aa Bb Cc");
        assert_eq!(title("o'neil foo-bar", false), "O'neil Foo-Bar");
    }

    #[test]
    fn floats_parse_like_strconv() {
        assert_eq!(parse_go_float("1.5").unwrap(), 1.5);
        assert!(parse_go_float("+Inf").unwrap().is_infinite());
        assert!(parse_go_float("NaN").unwrap().is_nan());
        assert_eq!(
            parse_go_float("one").unwrap_err(),
            "strconv.ParseFloat: parsing \"one\": invalid syntax"
        );
        assert_eq!(parse_go_float("0x1p-2").unwrap(), 0.25);
    }

    #[test]
    fn json_like_go() {
        let v = Value::list(vec![
            Value::Float(1e-7),
            Value::Float(1.5),
            Value::from("<a>"),
            Value::Nil,
        ]);
        assert_eq!(to_json(&v).unwrap(), "[1e-7,1.5,\"\\u003ca\\u003e\",null]");
    }
}
