//! Go's `fmt` and `strconv` formatting for template values: `print`,
//! `printf`, `println`, and how an action prints its result.
//!
//! Alert annotations are read by people and matched by tests, so the text
//! must be Go's to the byte: `{{ $value }}` of 1500000 is `1.5e+06`,
//! `printf "%.2f"` rounds half to even on the exact binary value, a bad verb
//! prints `%!d(string=x)`. Digits come from Rust's correctly rounded float
//! formatting; the layout rules (exponent form, padding, flags) are Go's.

use super::value::Value;

/// Go's `strconv.FormatFloat(v, fmt, prec, 64)` for `fmt` in `eEfgG`.
pub(crate) fn format_float(v: f64, fmt: u8, prec: i32) -> String {
    let mut out = String::new();
    append_float(&mut out, v, fmt, prec);
    out
}

/// Decimal digits of a float: `0.d1d2d3... * 10^dp`, no trailing zeros.
struct Digits {
    d: Vec<u8>,
    dp: i32,
}

/// Parses Rust's `{:e}` output (`1.2345e-7`) into digits and decimal point.
fn digits_from_exp(s: &str) -> Digits {
    let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while d.len() > 1 && d.last() == Some(&b'0') {
        d.pop();
    }
    if d == [b'0'] {
        return Digits {
            d: Vec::new(),
            dp: 0,
        };
    }
    Digits { d, dp: exp + 1 }
}

fn shortest_digits(v: f64) -> Digits {
    if v == 0.0 {
        return Digits {
            d: Vec::new(),
            dp: 0,
        };
    }
    digits_from_exp(&format!("{:e}", v.abs()))
}

fn fixed_digits(v: f64, n: usize) -> Digits {
    if v == 0.0 {
        return Digits {
            d: Vec::new(),
            dp: 0,
        };
    }
    digits_from_exp(&format!("{:.*e}", n.saturating_sub(1), v.abs()))
}

fn append_float(out: &mut String, v: f64, fmt: u8, mut prec: i32) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    let neg = v.is_sign_negative();
    let shortest = prec < 0;
    if fmt == b'f' && !shortest {
        if neg {
            out.push('-');
        }
        out.push_str(&format!("{:.*}", prec as usize, v.abs()));
        return;
    }
    let digs = if shortest {
        let d = shortest_digits(v);
        let nd = d.d.len() as i32;
        prec = match fmt {
            b'e' | b'E' => (nd - 1).max(0),
            b'f' => (nd - d.dp).max(0),
            _ => nd,
        };
        d
    } else {
        let n = match fmt {
            b'e' | b'E' => prec + 1,
            _ => {
                if prec == 0 {
                    prec = 1;
                }
                prec
            }
        };
        fixed_digits(v, n.max(1) as usize)
    };
    format_digits(out, shortest, neg, &digs, prec, fmt);
}

fn format_digits(out: &mut String, shortest: bool, neg: bool, digs: &Digits, prec: i32, fmt: u8) {
    let nd = digs.d.len() as i32;
    match fmt {
        b'e' | b'E' => fmt_e(out, neg, digs, prec, fmt),
        b'f' => fmt_f(out, neg, digs, prec),
        _ => {
            let mut eprec = prec;
            if eprec > nd && nd >= digs.dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = digs.dp - 1;
            let upper = fmt == b'G';
            if exp < -4 || exp >= eprec {
                let p = if prec > nd { nd } else { prec };
                fmt_e(out, neg, digs, p - 1, if upper { b'E' } else { b'e' });
                return;
            }
            let p = if prec > digs.dp { nd } else { prec };
            fmt_f(out, neg, digs, (p - digs.dp).max(0));
        }
    }
}

fn fmt_e(out: &mut String, neg: bool, digs: &Digits, prec: i32, fmt: u8) {
    if neg {
        out.push('-');
    }
    let first = digs.d.first().copied().unwrap_or(b'0');
    out.push(first as char);
    if prec > 0 {
        out.push('.');
        let mut i = 1;
        let m = (digs.d.len() as i32).min(prec + 1);
        while i < m {
            out.push(digs.d[i as usize] as char);
            i += 1;
        }
        while i <= prec {
            out.push('0');
            i += 1;
        }
    }
    out.push(fmt as char);
    let mut exp = digs.dp - 1;
    if digs.d.is_empty() {
        exp = 0;
    }
    if exp < 0 {
        out.push('-');
        exp = -exp;
    } else {
        out.push('+');
    }
    if exp < 10 {
        out.push('0');
    }
    out.push_str(&exp.to_string());
}

fn fmt_f(out: &mut String, neg: bool, digs: &Digits, prec: i32) {
    if neg {
        out.push('-');
    }
    let nd = digs.d.len() as i32;
    if digs.dp > 0 {
        let m = nd.min(digs.dp);
        for i in 0..m {
            out.push(digs.d[i as usize] as char);
        }
        for _ in m..digs.dp {
            out.push('0');
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            let j = digs.dp + i - 1;
            let c = if 0 <= j && j < nd {
                digs.d[j as usize] as char
            } else {
                '0'
            };
            out.push(c);
        }
    }
}

/// Go's `unicode.IsPrint`: graphic characters and the ASCII space. Rust has
/// no general-category table, so format characters and private use are
/// listed; everything else non-control and non-space counts as printable.
pub(crate) fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    let format_or_private = matches!(
        u,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x206F
            | 0xD800..=0xF8FF
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0xFFFE..=0xFFFF
            | 0xE0001..=0xE007F
            | 0xF0000..
    );
    !format_or_private
}

/// Go's `strconv.Quote` (or `QuoteToASCII` when `ascii`).
pub(crate) fn quote_with(s: &str, q: char, ascii: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        escape_char(&mut out, c, q, ascii);
    }
    out.push(q);
    out
}

pub(crate) fn quote(s: &str) -> String {
    quote_with(s, '"', false)
}

fn escape_char(out: &mut String, c: char, q: char, ascii: bool) {
    if c == q || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if ascii {
        if (c as u32) < 0x80 && is_print(c) {
            out.push(c);
            return;
        }
    } else if is_print(c) {
        out.push(c);
        return;
    }
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        _ => {
            let u = c as u32;
            if u < 0x20 || u == 0x7f {
                out.push_str(&format!("\\x{u:02x}"));
            } else if u < 0x10000 {
                out.push_str(&format!("\\u{u:04x}"));
            } else {
                out.push_str(&format!("\\U{u:08x}"));
            }
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Flags {
    wid_present: bool,
    prec_present: bool,
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    plus_v: bool,
    sharp_v: bool,
    wid: usize,
    prec: usize,
}

const TOO_LARGE: usize = 1_000_000;

struct Printer {
    buf: String,
    f: Flags,
    erroring: bool,
}

impl Printer {
    fn new() -> Self {
        Printer {
            buf: String::new(),
            f: Flags::default(),
            erroring: false,
        }
    }

    fn write_padding(&mut self, n: usize) {
        let c = if self.f.zero { '0' } else { ' ' };
        for _ in 0..n {
            self.buf.push(c);
        }
    }

    fn pad(&mut self, s: &str) {
        if !self.f.wid_present || self.f.wid == 0 {
            self.buf.push_str(s);
            return;
        }
        let width = self.f.wid.saturating_sub(s.chars().count());
        if !self.f.minus {
            self.write_padding(width);
            self.buf.push_str(s);
        } else {
            self.buf.push_str(s);
            self.write_padding(width);
        }
    }

    fn fmt_boolean(&mut self, b: bool) {
        self.pad(if b { "true" } else { "false" });
    }

    fn fmt_integer(&mut self, v: i64, base: u32, verb: char, upper: bool) {
        let negative = v < 0;
        let mut u = v.unsigned_abs();
        let digits: &[u8] = if upper {
            b"0123456789ABCDEFX"
        } else {
            b"0123456789abcdefx"
        };
        let mut prec = 0usize;
        if self.f.prec_present {
            prec = self.f.prec;
            if prec == 0 && u == 0 {
                let old = self.f.zero;
                self.f.zero = false;
                let w = self.f.wid;
                self.write_padding(w);
                self.f.zero = old;
                return;
            }
        } else if self.f.zero && self.f.wid_present {
            prec = self.f.wid;
            if negative || self.f.plus || self.f.space {
                prec = prec.saturating_sub(1);
            }
        }
        let mut buf: Vec<u8> = Vec::new();
        let b = u64::from(base);
        loop {
            buf.push(digits[(u % b) as usize]);
            u /= b;
            if u == 0 {
                break;
            }
        }
        while buf.len() < prec {
            buf.push(b'0');
        }
        if self.f.sharp {
            match base {
                2 => buf.extend_from_slice(b"b0"),
                8 if buf.last() != Some(&b'0') => buf.push(b'0'),
                16 => {
                    buf.push(digits[16]);
                    buf.push(b'0');
                }
                _ => {}
            }
        }
        if verb == 'O' {
            buf.extend_from_slice(b"o0");
        }
        if negative {
            buf.push(b'-');
        } else if self.f.plus {
            buf.push(b'+');
        } else if self.f.space {
            buf.push(b' ');
        }
        buf.reverse();
        let s = String::from_utf8_lossy(&buf).into_owned();
        let old = self.f.zero;
        self.f.zero = false;
        self.pad(&s);
        self.f.zero = old;
    }

    fn fmt_unicode(&mut self, u: i64) {
        let mut s = String::from("U+");
        let mut hex = format!("{:X}", u as u64);
        let prec = if self.f.prec_present && self.f.prec > 4 {
            self.f.prec
        } else {
            4
        };
        while hex.len() < prec {
            hex.insert(0, '0');
        }
        s.push_str(&hex);
        if self.f.sharp
            && let Some(c) = u32::try_from(u).ok().and_then(char::from_u32)
            && is_print(c)
        {
            s.push_str(" '");
            s.push(c);
            s.push('\'');
        }
        let old = self.f.zero;
        self.f.zero = false;
        self.pad(&s);
        self.f.zero = old;
    }

    fn fmt_c(&mut self, u: i64) {
        let c = u32::try_from(u)
            .ok()
            .and_then(char::from_u32)
            .unwrap_or('\u{FFFD}');
        let mut b = [0u8; 4];
        let s: &str = c.encode_utf8(&mut b);
        let s = s.to_string();
        self.pad(&s);
    }

    fn fmt_qc(&mut self, u: i64) {
        let c = u32::try_from(u)
            .ok()
            .and_then(char::from_u32)
            .unwrap_or('\u{FFFD}');
        let s = quote_with(&c.to_string(), '\'', self.f.plus);
        self.pad(&s);
    }

    fn fmt_float(&mut self, v: f64, verb: u8, prec: i32) {
        let prec = if self.f.prec_present {
            self.f.prec as i32
        } else {
            prec
        };
        let mut num = String::from("+");
        append_float(&mut num, v, verb, prec);
        let mut num: Vec<u8> = num.into_bytes();
        if num[1] == b'-' || num[1] == b'+' {
            num.remove(0);
        }
        if self.f.space && num[0] == b'+' && !self.f.plus {
            num[0] = b' ';
        }
        if num[1] == b'I' || num[1] == b'N' {
            let old = self.f.zero;
            self.f.zero = false;
            if num[1] == b'N' && !self.f.space && !self.f.plus {
                num.remove(0);
            }
            let s = String::from_utf8_lossy(&num).into_owned();
            self.pad(&s);
            self.f.zero = old;
            return;
        }
        if self.f.sharp {
            let mut digits = match verb {
                b'v' | b'g' | b'G' | b'x' => {
                    if prec == -1 {
                        6
                    } else {
                        prec
                    }
                }
                _ => 0,
            };
            let mut tail: Vec<u8> = Vec::new();
            let mut has_point = false;
            let mut saw_nonzero = false;
            let mut i = 1;
            while i < num.len() {
                match num[i] {
                    b'.' => has_point = true,
                    b'e' | b'E' => {
                        tail = num[i..].to_vec();
                        num.truncate(i);
                        break;
                    }
                    c => {
                        if c != b'0' {
                            saw_nonzero = true;
                        }
                        if saw_nonzero {
                            digits -= 1;
                        }
                    }
                }
                i += 1;
            }
            if !has_point {
                if num.len() == 2 && num[1] == b'0' {
                    digits -= 1;
                }
                num.push(b'.');
            }
            while digits > 0 {
                num.push(b'0');
                digits -= 1;
            }
            num.extend_from_slice(&tail);
        }
        let s = String::from_utf8_lossy(&num).into_owned();
        if self.f.plus || !s.starts_with('+') {
            if self.f.zero && self.f.wid_present && self.f.wid > s.len() {
                self.buf.push_str(&s[..1]);
                let n = self.f.wid - s.len();
                self.write_padding(n);
                self.buf.push_str(&s[1..]);
                return;
            }
            self.pad(&s);
            return;
        }
        self.pad(&s[1..]);
    }

    fn truncate<'s>(&self, s: &'s str) -> &'s str {
        if self.f.prec_present
            && let Some((i, _)) = s.char_indices().nth(self.f.prec)
        {
            return &s[..i];
        }
        s
    }

    fn fmt_s(&mut self, s: &str) {
        let s = self.truncate(s).to_string();
        self.pad(&s);
    }

    fn fmt_sx(&mut self, s: &str, upper: bool) {
        let digits: &[u8] = if upper {
            b"0123456789ABCDEFX"
        } else {
            b"0123456789abcdefx"
        };
        let b = s.as_bytes();
        let mut length = b.len();
        if self.f.prec_present && self.f.prec < length {
            length = self.f.prec;
        }
        let mut width = 2 * length;
        if width > 0 {
            if self.f.space {
                if self.f.sharp {
                    width *= 2;
                }
                width += length - 1;
            } else if self.f.sharp {
                width += 2;
            }
        } else {
            if self.f.wid_present {
                let w = self.f.wid;
                self.write_padding(w);
            }
            return;
        }
        if self.f.wid_present && self.f.wid > width && !self.f.minus {
            let n = self.f.wid - width;
            self.write_padding(n);
        }
        let mut out = String::new();
        if self.f.sharp {
            out.push('0');
            out.push(digits[16] as char);
        }
        for (i, c) in b.iter().take(length).enumerate() {
            if self.f.space && i > 0 {
                out.push(' ');
                if self.f.sharp {
                    out.push('0');
                    out.push(digits[16] as char);
                }
            }
            out.push(digits[(c >> 4) as usize] as char);
            out.push(digits[(c & 0xF) as usize] as char);
        }
        self.buf.push_str(&out);
        if self.f.wid_present && self.f.wid > width && self.f.minus {
            let n = self.f.wid - width;
            self.write_padding(n);
        }
    }

    fn fmt_q(&mut self, s: &str) {
        let s = self.truncate(s).to_string();
        if self.f.sharp && can_backquote(&s) {
            self.pad(&format!("`{s}`"));
            return;
        }
        let q = quote_with(&s, '"', self.f.plus);
        self.pad(&q);
    }

    fn fmt_string(&mut self, v: &str, verb: char, arg: &Value) {
        match verb {
            'v' => {
                if self.f.sharp_v {
                    self.fmt_q(v)
                } else {
                    self.fmt_s(v)
                }
            }
            's' => self.fmt_s(v),
            'x' => self.fmt_sx(v, false),
            'X' => self.fmt_sx(v, true),
            'q' => self.fmt_q(v),
            _ => self.bad_verb(verb, arg),
        }
    }

    fn bad_verb(&mut self, verb: char, arg: &Value) {
        self.erroring = true;
        self.buf.push_str("%!");
        self.buf.push(verb);
        self.buf.push('(');
        if arg.is_nil() {
            self.buf.push_str("<nil>");
        } else {
            self.buf.push_str(arg.type_name());
            self.buf.push('=');
            self.print_arg(arg, 'v');
        }
        self.buf.push(')');
        self.erroring = false;
    }

    fn fmt_int_verb(&mut self, v: i64, verb: char, arg: &Value) {
        match verb {
            'v' | 'd' => self.fmt_integer(v, 10, verb, false),
            'b' => self.fmt_integer(v, 2, verb, false),
            'o' | 'O' => self.fmt_integer(v, 8, verb, false),
            'x' => self.fmt_integer(v, 16, verb, false),
            'X' => self.fmt_integer(v, 16, verb, true),
            'c' => self.fmt_c(v),
            'q' => self.fmt_qc(v),
            'U' => self.fmt_unicode(v),
            _ => self.bad_verb(verb, arg),
        }
    }

    fn fmt_float_verb(&mut self, v: f64, verb: char, arg: &Value) {
        match verb {
            'v' => self.fmt_float(v, b'g', -1),
            'g' | 'G' => self.fmt_float(v, verb as u8, -1),
            'f' | 'e' | 'E' => self.fmt_float(v, verb as u8, 6),
            'F' => self.fmt_float(v, b'f', 6),
            _ => self.bad_verb(verb, arg),
        }
    }

    /// Go's `handleMethods`: `String()` wins for the string-like verbs.
    fn handle_methods(&mut self, v: &Value, verb: char) -> bool {
        if self.erroring || self.f.sharp_v {
            return false;
        }
        if !matches!(verb, 'v' | 's' | 'x' | 'X' | 'q') {
            return false;
        }
        match v.stringer() {
            Some(s) => {
                self.fmt_string(&s, verb, v);
                true
            }
            None => false,
        }
    }

    fn print_arg(&mut self, arg: &Value, verb: char) {
        if arg.is_nil() {
            match verb {
                'T' | 'v' => self.pad("<nil>"),
                _ => self.bad_verb(verb, arg),
            }
            return;
        }
        if verb == 'T' {
            self.fmt_s(arg.type_name());
            return;
        }
        match arg {
            Value::Bool(b) => match verb {
                't' | 'v' => self.fmt_boolean(*b),
                _ => self.bad_verb(verb, arg),
            },
            Value::Int(i) => self.fmt_int_verb(*i, verb, arg),
            Value::Float(f) => self.fmt_float_verb(*f, verb, arg),
            Value::Str(s) => self.fmt_string(s, verb, arg),
            _ => {
                if !self.handle_methods(arg, verb) {
                    self.print_value(arg, verb, 0);
                }
            }
        }
    }

    fn print_value(&mut self, v: &Value, verb: char, depth: usize) {
        if depth > 0 && !v.is_nil() && self.handle_methods(v, verb) {
            return;
        }
        match v {
            Value::Missing => {
                if depth == 0 {
                    self.buf.push_str("<invalid reflect.Value>");
                } else if verb == 'v' {
                    self.buf.push_str("<nil>");
                } else {
                    self.bad_verb(verb, v);
                }
            }
            Value::Nil => {
                if self.f.sharp_v {
                    self.buf.push_str("interface {}(nil)");
                } else {
                    self.buf.push_str("<nil>");
                }
            }
            Value::Bool(b) => match verb {
                't' | 'v' => self.fmt_boolean(*b),
                _ => self.bad_verb(verb, v),
            },
            Value::Int(i) | Value::Duration(i) => self.fmt_int_verb(*i, verb, v),
            Value::Float(f) => self.fmt_float_verb(*f, verb, v),
            Value::Str(s) => self.fmt_string(s, verb, v),
            Value::Map(m) => {
                if self.f.sharp_v {
                    self.buf.push_str(m.ty.name);
                    self.buf.push('{');
                } else {
                    self.buf.push_str("map[");
                }
                for (i, (k, val)) in m.entries.iter().enumerate() {
                    if i > 0 {
                        if self.f.sharp_v {
                            self.buf.push_str(", ");
                        } else {
                            self.buf.push(' ');
                        }
                    }
                    self.print_value(&Value::from(k.as_str()), verb, depth + 1);
                    self.buf.push(':');
                    self.print_value(val, verb, depth + 1);
                }
                self.buf.push(if self.f.sharp_v { '}' } else { ']' });
            }
            Value::Struct(s) => {
                if s.ty.pointer {
                    self.buf.push('&');
                }
                if self.f.sharp_v {
                    self.buf.push_str(s.ty.name.trim_start_matches('*'));
                }
                self.buf.push('{');
                for (i, (name, val)) in s.fields.iter().enumerate() {
                    if i > 0 {
                        if self.f.sharp_v {
                            self.buf.push_str(", ");
                        } else {
                            self.buf.push(' ');
                        }
                    }
                    if self.f.plus_v || self.f.sharp_v {
                        self.buf.push_str(name);
                        self.buf.push(':');
                    }
                    self.print_value(val, verb, depth + 1);
                }
                self.buf.push('}');
            }
            Value::List(l) => {
                if self.f.sharp_v {
                    self.buf.push_str(l.ty.name);
                    self.buf.push('{');
                    for (i, item) in l.items.iter().enumerate() {
                        if i > 0 {
                            self.buf.push_str(", ");
                        }
                        self.print_value(item, verb, depth + 1);
                    }
                    self.buf.push('}');
                } else {
                    self.buf.push('[');
                    for (i, item) in l.items.iter().enumerate() {
                        if i > 0 {
                            self.buf.push(' ');
                        }
                        self.print_value(item, verb, depth + 1);
                    }
                    self.buf.push(']');
                }
            }
            Value::Time(t) => {
                // Go would print the struct's private fields; its String()
                // is the only useful rendering.
                let s = t.to_string();
                self.fmt_string(&s, 's', v);
            }
        }
    }

    fn do_printf(&mut self, format: &str, a: &[Value]) {
        let fb = format.as_bytes();
        let end = fb.len();
        let mut arg_num = 0usize;
        let mut after_index;
        let mut reordered = false;
        let mut i = 0usize;
        'format: while i < end {
            let mut good_arg_num = true;
            let lasti = i;
            while i < end && fb[i] != b'%' {
                i += 1;
            }
            if i > lasti {
                self.buf.push_str(&format[lasti..i]);
            }
            if i >= end {
                break;
            }
            i += 1;
            self.f = Flags::default();
            'simple: while i < end {
                let c = fb[i];
                match c {
                    b'#' => self.f.sharp = true,
                    b'0' => self.f.zero = !self.f.minus,
                    b'+' => self.f.plus = true,
                    b'-' => {
                        self.f.minus = true;
                        self.f.zero = false;
                    }
                    b' ' => self.f.space = true,
                    _ => {
                        if c.is_ascii_lowercase() && arg_num < a.len() {
                            if c == b'v' {
                                self.f.sharp_v = self.f.sharp;
                                self.f.sharp = false;
                                self.f.plus_v = self.f.plus;
                                self.f.plus = false;
                            }
                            self.print_arg(&a[arg_num], c as char);
                            arg_num += 1;
                            i += 1;
                            continue 'format;
                        }
                        break 'simple;
                    }
                }
                i += 1;
            }
            let (n, ni, found) = arg_number(
                arg_num,
                format,
                i,
                a.len(),
                &mut good_arg_num,
                &mut reordered,
            );
            arg_num = n;
            i = ni;
            after_index = found;
            if i < end && fb[i] == b'*' {
                i += 1;
                let (num, ok, na) = int_from_arg(a, arg_num);
                arg_num = na;
                self.f.wid_present = ok;
                if !ok {
                    self.buf.push_str("%!(BADWIDTH)");
                }
                if num < 0 {
                    self.f.wid = num.unsigned_abs() as usize;
                    self.f.minus = true;
                    self.f.zero = false;
                } else {
                    self.f.wid = num as usize;
                }
                after_index = false;
            } else {
                let (num, isnum, ni) = parse_num(format, i, end);
                self.f.wid = num;
                self.f.wid_present = isnum;
                i = ni;
                if after_index && self.f.wid_present {
                    good_arg_num = false;
                }
            }
            if i + 1 < end && fb[i] == b'.' {
                i += 1;
                if after_index {
                    good_arg_num = false;
                }
                let (n, ni, found) = arg_number(
                    arg_num,
                    format,
                    i,
                    a.len(),
                    &mut good_arg_num,
                    &mut reordered,
                );
                arg_num = n;
                i = ni;
                after_index = found;
                if i < end && fb[i] == b'*' {
                    i += 1;
                    let (num, ok, na) = int_from_arg(a, arg_num);
                    arg_num = na;
                    if num < 0 || !ok {
                        self.f.prec = 0;
                        self.f.prec_present = false;
                    } else {
                        self.f.prec = num as usize;
                        self.f.prec_present = true;
                    }
                    if !self.f.prec_present {
                        self.buf.push_str("%!(BADPREC)");
                    }
                    after_index = false;
                } else {
                    let (num, isnum, ni) = parse_num(format, i, end);
                    i = ni;
                    self.f.prec = if isnum { num } else { 0 };
                    self.f.prec_present = true;
                }
            }
            if !after_index {
                let (n, ni, _) = arg_number(
                    arg_num,
                    format,
                    i,
                    a.len(),
                    &mut good_arg_num,
                    &mut reordered,
                );
                arg_num = n;
                i = ni;
            }
            if i >= end {
                self.buf.push_str("%!(NOVERB)");
                break;
            }
            let verb = format[i..].chars().next().unwrap_or('%');
            i += verb.len_utf8();
            if verb == '%' {
                self.buf.push('%');
            } else if !good_arg_num {
                self.buf.push_str("%!");
                self.buf.push(verb);
                self.buf.push_str("(BADINDEX)");
            } else if arg_num >= a.len() {
                self.buf.push_str("%!");
                self.buf.push(verb);
                self.buf.push_str("(MISSING)");
            } else {
                if verb == 'v' {
                    self.f.sharp_v = self.f.sharp;
                    self.f.sharp = false;
                    self.f.plus_v = self.f.plus;
                    self.f.plus = false;
                }
                self.print_arg(&a[arg_num], verb);
                arg_num += 1;
            }
        }
        if !reordered && arg_num < a.len() {
            self.f = Flags::default();
            self.buf.push_str("%!(EXTRA ");
            for (k, arg) in a[arg_num..].iter().enumerate() {
                if k > 0 {
                    self.buf.push_str(", ");
                }
                if arg.is_nil() {
                    self.buf.push_str("<nil>");
                } else {
                    self.buf.push_str(arg.type_name());
                    self.buf.push('=');
                    self.print_arg(arg, 'v');
                }
            }
            self.buf.push(')');
        }
    }
}

fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !c.is_control()))
}

fn parse_num(s: &str, start: usize, end: usize) -> (usize, bool, usize) {
    let b = s.as_bytes();
    if start >= end {
        return (0, false, end);
    }
    let mut num = 0usize;
    let mut isnum = false;
    let mut i = start;
    while i < end && b[i].is_ascii_digit() {
        if num > TOO_LARGE {
            return (0, false, end);
        }
        num = num * 10 + usize::from(b[i] - b'0');
        isnum = true;
        i += 1;
    }
    (num, isnum, i)
}

fn int_from_arg(a: &[Value], arg_num: usize) -> (i64, bool, usize) {
    if arg_num >= a.len() {
        return (0, false, arg_num);
    }
    let (mut num, mut ok) = match &a[arg_num] {
        Value::Int(i) | Value::Duration(i) => (*i, true),
        _ => (0, false),
    };
    if num.unsigned_abs() as usize > TOO_LARGE {
        num = 0;
        ok = false;
    }
    (num, ok, arg_num + 1)
}

/// Go's `argNumber`: an explicit `[n]` argument index at `format[i..]`.
fn arg_number(
    arg_num: usize,
    format: &str,
    i: usize,
    num_args: usize,
    good: &mut bool,
    reordered: &mut bool,
) -> (usize, usize, bool) {
    let b = format.as_bytes();
    if b.len() <= i || b[i] != b'[' {
        return (arg_num, i, false);
    }
    *reordered = true;
    let rest = &format[i..];
    let rb = rest.as_bytes();
    let (index, wid, ok) = 'parse: {
        if rb.len() < 3 {
            break 'parse (0i64, 1usize, false);
        }
        if let Some(j) = rb.iter().skip(1).position(|&b| b == b']').map(|p| p + 1) {
            {
                let (width, isnum, newi) = parse_num(rest, 1, j);
                if !isnum || newi != j {
                    break 'parse (0, j + 1, false);
                }
                break 'parse (width as i64 - 1, j + 1, true);
            }
        }
        (0, 1, false)
    };
    if ok && 0 <= index && (index as usize) < num_args {
        return (index as usize, i + wid, true);
    }
    *good = false;
    (arg_num, i + wid, ok)
}

/// Go's `fmt.Sprintf`.
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut p = Printer::new();
    p.do_printf(format, args);
    p.buf
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
pub(crate) fn sprint(args: &[Value]) -> String {
    let mut p = Printer::new();
    let mut prev_string = false;
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            p.buf.push(' ');
        }
        p.f = Flags::default();
        p.print_arg(arg, 'v');
        prev_string = is_string;
    }
    p.buf
}

/// Go's `fmt.Sprintln`.
pub(crate) fn sprintln(args: &[Value]) -> String {
    let mut p = Printer::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            p.buf.push(' ');
        }
        p.f = Flags::default();
        p.print_arg(arg, 'v');
    }
    p.buf.push('\n');
    p.buf
}

/// How `{{ value }}` prints: `fmt.Fprint` of one value.
pub(crate) fn display(v: &Value) -> String {
    let mut p = Printer::new();
    p.print_arg(v, 'v');
    p.buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go_v() {
        let cases = [
            (1.5e6, "1.5e+06"),
            (123456.0, "123456"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.0, "1"),
            (-0.0, "-0"),
            (1e21, "1e+21"),
            (123456789.0, "1.23456789e+08"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
        ];
        for (v, want) in cases {
            assert_eq!(display(&Value::Float(v)), want, "{v}");
        }
    }

    #[test]
    fn printf_verbs() {
        let f = |fmt: &str, a: Vec<Value>| sprintf(fmt, &a);
        assert_eq!(f("%.4g", vec![Value::Float(1234567.0)]), "1.235e+06");
        assert_eq!(f("%.4g", vec![Value::Float(1.2345)]), "1.234");
        assert_eq!(f("%.2f", vec![Value::Float(1.23456)]), "1.23");
        assert_eq!(
            f(
                "%5d|%-5d|%05d",
                vec![Value::Int(42), Value::Int(42), Value::Int(-42)]
            ),
            "   42|42   |-0042"
        );
        assert_eq!(
            f(
                "%x %X %o %b",
                vec![
                    Value::Int(255),
                    Value::Int(255),
                    Value::Int(8),
                    Value::Int(5)
                ]
            ),
            "ff FF 10 101"
        );
        assert_eq!(f("%q", vec![Value::from("a\"b\n")]), "\"a\\\"b\\n\"");
        assert_eq!(f("%d", vec![Value::from("x")]), "%!d(string=x)");
        assert_eq!(f("%d %d", vec![Value::Int(1)]), "1 %!d(MISSING)");
        assert_eq!(
            f("%d", vec![Value::Int(1), Value::from("x")]),
            "1%!(EXTRA string=x)"
        );
        assert_eq!(f("%e", vec![Value::Float(1234.5678)]), "1.234568e+03");
        assert_eq!(f("%t", vec![Value::Bool(true)]), "true");
        assert_eq!(f("%%", vec![]), "%");
        assert_eq!(f("%v", vec![Value::Nil]), "<nil>");
        assert_eq!(f("%[2]d %[1]d", vec![Value::Int(1), Value::Int(2)]), "2 1");
        assert_eq!(f("%*d", vec![Value::Int(4), Value::Int(7)]), "   7");
    }

    #[test]
    fn sprint_spacing() {
        assert_eq!(sprint(&[Value::Int(1), Value::Int(2)]), "1 2");
        assert_eq!(sprint(&[Value::from("a"), Value::Int(2)]), "a2");
        assert_eq!(sprintln(&[Value::from("a"), Value::Int(2)]), "a 2\n");
    }
}
