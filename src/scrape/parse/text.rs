//! Prometheus text format 0.0.4, read the way prometheus/common's strict
//! `expfmt.TextParser` reads it, plus Prometheus 3's quoted UTF-8 names
//! (`{"my.metric", "a.b"="x"}`, `# TYPE "my.metric" counter`).
//!
//! One call handles one line (the caller splits lines and guarantees the
//! slice holds no newline). Sample lines come back as offsets into the line;
//! HELP/TYPE lines update the per-name family table, which is what catches
//! a second HELP, a second TYPE, a TYPE after samples and non-numeric
//! `le`/`quantile` labels. The table is touched once per change of metric
//! name, not once per sample, so the common path stays a byte scan. This
//! module must not allocate per sample.

use std::borrow::Cow;
use std::collections::HashMap;

use super::lex::{
    self, Escapes, LabelSpan, NameTok, QuoteError, describe_byte, excerpt, skip_blank,
};
use super::number::{parse_float, parse_int_ms};
use super::{Checks, Known, LineError, SampleLine};

/// Metric types a 0.0.4 TYPE line may name (case-insensitively, as the Go
/// parser upper-cases the word before looking it up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextType {
    Counter,
    Gauge,
    Summary,
    Untyped,
    Histogram,
    /// Accepted on a TYPE line by the Go parser, but a sample of it is an
    /// error there ("unexpected type"); mirrored so both agree.
    GaugeHistogram,
}

impl TextType {
    fn parse(word: &[u8]) -> Option<TextType> {
        const TYPES: [(&[u8], TextType); 6] = [
            (b"counter", TextType::Counter),
            (b"gauge", TextType::Gauge),
            (b"summary", TextType::Summary),
            (b"untyped", TextType::Untyped),
            (b"histogram", TextType::Histogram),
            (b"gauge_histogram", TextType::GaugeHistogram),
        ];
        TYPES
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word))
            .map(|&(_, t)| t)
    }
}

/// What the parser remembers per metric family.
#[derive(Debug, Default)]
struct Family {
    /// Set by a TYPE line, or fixed to untyped by the first sample, after
    /// which a TYPE line is an error.
    typ: Option<TextType>,
    help: bool,
}

/// Per-input state of the text format.
pub(super) struct TextState<'a> {
    families: Vec<Family>,
    /// Decoded family name -> index into `families`.
    by_name: HashMap<Cow<'a, [u8]>, usize>,
    /// Raw names of recent samples and their families. Consecutive samples
    /// nearly always share a name, or cycle through a few (a histogram's
    /// `_bucket`, `_sum`, `_count`), and a name's family never changes once
    /// resolved, so this skips most hash lookups.
    recent: [(&'a [u8], usize); RECENT],
    /// Next slot of `recent` to overwrite.
    recent_next: usize,
    /// Scratch for the duplicate-label check of large label sets.
    order: Vec<usize>,
}

const RECENT: usize = 4;

impl Default for TextState<'_> {
    fn default() -> Self {
        TextState {
            families: Vec::new(),
            by_name: HashMap::default(),
            // An empty name never matches: every sample has a name.
            recent: [(&[], 0); RECENT],
            recent_next: 0,
            order: Vec::new(),
        }
    }
}

impl<'a> TextState<'a> {
    /// Parses one line. `Ok(true)` for a sample, written to `out`;
    /// `Ok(false)` for a blank, comment, HELP or TYPE line.
    /// `known`, when given, is a series text that parsed cleanly before
    /// (see [`Known`]); a line naming exactly that series skips the label
    /// lexing, and `out.known` says so.
    pub(super) fn line(
        &mut self,
        l: &'a [u8],
        spans: &mut Vec<LabelSpan>,
        out: &mut SampleLine,
        known: Option<Known<'_>>,
    ) -> Result<bool, LineError> {
        let i = skip_blank(l, 0);
        match l.get(i) {
            None => Ok(false),
            Some(b'#') => {
                self.comment(l, i + 1)?;
                Ok(false)
            }
            Some(_) => {
                if let Some(k) = known
                    && self.known_sample(l, i, k, out)?
                {
                    return Ok(true);
                }
                self.sample(l, i, spans, out)?;
                Ok(true)
            }
        }
    }

    /// The line's sample when its series text is exactly `k.series`,
    /// without lexing the labels again: identical bytes pass the same
    /// syntax, escape, UTF-8 and duplicate-name checks. Only the rules that
    /// depend on this input's TYPE lines are re-applied, through the
    /// family; when they ask for a check `k` did not pass, or the series is
    /// not a plain `name{...}`, this declines (`Ok(false)`) and the full
    /// parse decides, so errors read exactly as without a hint.
    #[inline]
    fn known_sample(
        &mut self,
        l: &'a [u8],
        start: usize,
        k: Known<'_>,
        out: &mut SampleLine,
    ) -> Result<bool, LineError> {
        let end = start + k.series.len();
        // The series must be followed by a blank (the value's separator)
        // so that `foo` does not match the line `foo_total 1`, and a bare
        // name must not be followed by a label set (`foo {a="1"} 1`).
        if !matches!(l.get(end), Some(b' ' | b'\t')) || !lex::bytes_eq(&l[start..end], k.series) {
            return Ok(false);
        }
        let name_end = lex::scan_metric_name(l, start);
        if name_end == start {
            return Ok(false);
        }
        let brace = skip_blank(l, name_end);
        let braces = if brace < end {
            if l[brace] != b'{' {
                return Ok(false);
            }
            Some(brace)
        } else {
            None
        };
        let i = skip_blank(l, end);
        if braces.is_none() && l.get(i) == Some(&b'{') {
            return Ok(false);
        }
        let name = NameTok {
            start,
            end: name_end,
            quoted: false,
            escaped: false,
        };
        let idx = self.family_of(l, &name);
        let typ = *self.families[idx].typ.get_or_insert(TextType::Untyped);
        let need = match typ {
            TextType::Histogram => Checks::Bucket,
            TextType::Summary => Checks::Quantile,
            TextType::GaugeHistogram => return Ok(false),
            _ => Checks::Plain,
        };
        if need != Checks::Plain && need != k.checks {
            return Ok(false);
        }
        let (value, timestamp_ms) = value_and_timestamp(l, i, &name)?;
        *out = SampleLine {
            series: start..end,
            name,
            braces,
            value,
            timestamp_ms,
            skip: false,
            checks: need,
            known: true,
        };
        Ok(true)
    }

    fn sample(
        &mut self,
        l: &'a [u8],
        start: usize,
        spans: &mut Vec<LabelSpan>,
        out: &mut SampleLine,
    ) -> Result<(), LineError> {
        spans.clear();
        let mut i = start;
        let mut name = None;
        if l[i] != b'{' {
            let tok = if l[i] == b'"' {
                quoted_name(l, i, "metric name")?
            } else {
                let e = lex::scan_metric_name(l, i);
                if e == i {
                    return Err(LineError::new(
                        i,
                        format!(
                            "expected a metric name, found {}: a name starts with a letter, '_' or ':', or is quoted",
                            describe_byte(l.get(i))
                        ),
                    ));
                }
                NameTok {
                    start: i,
                    end: e,
                    quoted: false,
                    escaped: false,
                }
            };
            name = Some(tok);
            i = skip_blank(l, tok.after());
        }
        let name_outside = name.is_some();
        let (braces, series_end) = if l.get(i) == Some(&b'{') {
            let open = i;
            i = self.labels(l, i + 1, &mut name, spans)?;
            (Some(open), i)
        } else {
            // No label set: the series is the name alone, without the
            // blanks that were skipped after it.
            (None, name.map_or(i, |n| n.after()))
        };
        let Some(name) = name else {
            return Err(LineError::new(
                start,
                "label set has no metric name: put the name before '{' or quote it inside the braces"
                    .to_string(),
            ));
        };
        i = skip_blank(l, i);
        let (value, timestamp_ms) = value_and_timestamp(l, i, &name)?;
        let checks = self.check_family(l, &name, spans)?;
        // Written in place: handing the struct back by value costs a
        // copy per sample.
        *out = SampleLine {
            series: if name_outside { name.begin() } else { start }..series_end,
            name,
            braces,
            value,
            timestamp_ms,
            skip: false,
            checks,
            known: false,
        };
        Ok(())
    }

    /// Parses a label set whose `{` precedes `i`; returns the index after
    /// the closing `}`. Whitespace around tokens and one trailing comma are
    /// allowed, as in the Go parser. A quoted (or bare) name not followed by
    /// `=` is the metric name, allowed once and only when none came before
    /// the braces.
    fn labels(
        &mut self,
        l: &'a [u8],
        mut i: usize,
        name: &mut Option<NameTok>,
        spans: &mut Vec<LabelSpan>,
    ) -> Result<usize, LineError> {
        loop {
            i = skip_blank(l, i);
            match l.get(i) {
                None => {
                    return Err(LineError::new(
                        i,
                        "label set not closed: expected a label name or '}', found end of line"
                            .to_string(),
                    ));
                }
                Some(b'}') => return Ok(i + 1),
                Some(_) => {}
            }
            let tok = if l[i] == b'"' {
                quoted_name(l, i, "label name")?
            } else {
                let e = lex::scan_label_name(l, i);
                if e == i {
                    return Err(LineError::new(
                        i,
                        format!(
                            "expected a label name, found {}: a label name starts with a letter or '_', or is quoted",
                            describe_byte(l.get(i))
                        ),
                    ));
                }
                NameTok {
                    start: i,
                    end: e,
                    quoted: false,
                    escaped: false,
                }
            };
            i = skip_blank(l, tok.after());
            match l.get(i) {
                Some(b'=') => {}
                Some(b',' | b'}') if name.is_none() => {
                    *name = Some(tok);
                    if l[i] == b',' {
                        i += 1;
                    }
                    continue;
                }
                other => {
                    return Err(LineError::new(
                        i,
                        format!(
                            "expected '=' after label name {}, found {}",
                            quote_name(&tok.decoded(l)),
                            describe_byte(other)
                        ),
                    ));
                }
            }
            i = skip_blank(l, i + 1);
            if l.get(i) != Some(&b'"') {
                return Err(LineError::new(
                    i,
                    format!(
                        "expected '\"' to open the value of label {}, found {}: label values are quoted",
                        quote_name(&tok.decoded(l)),
                        describe_byte(l.get(i))
                    ),
                ));
            }
            if tok.is(l, b"__name__") {
                return Err(reserved_name(&tok));
            }
            let value =
                lex::scan_quoted(l, i, Escapes::Strict).map_err(|e| quote_error(l, i, e, &tok))?;
            spans.push(LabelSpan { name: tok, value });
            i = skip_blank(l, value.end + 1);
            match l.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => return Ok(i + 1),
                other => {
                    return Err(LineError::new(
                        i,
                        format!(
                            "expected ',' or '}}' after the value of label {}, found {}",
                            quote_name(&tok.decoded(l)),
                            describe_byte(other)
                        ),
                    ));
                }
            }
        }
    }

    /// Resolves the sample's family (first sample fixes it as untyped) and
    /// applies the per-type label rules.
    fn check_family(
        &mut self,
        l: &'a [u8],
        name: &NameTok,
        spans: &[LabelSpan],
    ) -> Result<Checks, LineError> {
        if let Some(k) = lex::find_duplicate(l, spans, &mut self.order) {
            return Err(LineError::new(
                spans[k].name.begin(),
                format!(
                    "duplicate label name {} in series {}",
                    quote_name(&spans[k].name.decoded(l)),
                    quote_name(&name.decoded(l))
                ),
            ));
        }
        let idx = self.family_of(l, name);
        let family = &mut self.families[idx];
        let typ = *family.typ.get_or_insert(TextType::Untyped);
        let (label, what, checks) = match typ {
            TextType::Histogram => (&b"le"[..], "histogram bucket bound", Checks::Bucket),
            TextType::Summary => (&b"quantile"[..], "summary quantile", Checks::Quantile),
            TextType::GaugeHistogram => {
                return Err(LineError::new(
                    name.begin(),
                    format!(
                        "metric {} has TYPE gauge_histogram, which the text format cannot carry samples for: expose it as OpenMetrics or as a histogram",
                        quote_name(&name.decoded(l))
                    ),
                ));
            }
            _ => return Ok(Checks::Plain),
        };
        if let Some(s) = spans.iter().find(|s| s.is(l, label)) {
            let v = s.value_decoded(l);
            if parse_float(&v).is_none() {
                return Err(LineError::new(
                    s.value.start,
                    format!(
                        "label {} of {} is not a float: got \"{}\", the {what} must be a number",
                        quote_name(label),
                        quote_name(&name.decoded(l)),
                        excerpt(&v)
                    ),
                ));
            }
        }
        Ok(checks)
    }

    /// The family of a sample's or metadata line's name, through the cache
    /// of recent names first.
    #[inline]
    fn family_of(&mut self, l: &'a [u8], name: &NameTok) -> usize {
        let raw = name.raw(l);
        if !name.escaped
            && let Some(&(_, idx)) = self
                .recent
                .iter()
                .find(|(prev, _)| lex::bytes_eq(prev, raw))
        {
            return idx;
        }
        let idx = self.resolve(name.decoded(l));
        if !name.escaped {
            self.recent[self.recent_next] = (raw, idx);
            self.recent_next = (self.recent_next + 1) % RECENT;
        }
        idx
    }

    /// The family a name belongs to, creating it when new. `x_sum` and
    /// `x_count` join summary `x`, and `x_bucket`, `x_sum`, `x_count` join
    /// histogram `x`, when `x` is already known with that type; otherwise
    /// the name is its own family.
    fn resolve(&mut self, name: Cow<'a, [u8]>) -> usize {
        if let Some(&idx) = self.by_name.get(name.as_ref()) {
            return idx;
        }
        let base_of = |suffix: &[u8]| -> Option<&[u8]> {
            name.strip_suffix(suffix).filter(|b| !b.is_empty())
        };
        let typed = |base: Option<&[u8]>, want: TextType| -> Option<usize> {
            let idx = *self.by_name.get(base?)?;
            (self.families[idx].typ == Some(want)).then_some(idx)
        };
        let summary_base = base_of(b"_count").or_else(|| base_of(b"_sum"));
        if let Some(idx) = typed(summary_base, TextType::Summary) {
            return idx;
        }
        let histogram_base = summary_base.or_else(|| base_of(b"_bucket"));
        if let Some(idx) = typed(histogram_base, TextType::Histogram) {
            return idx;
        }
        self.families.push(Family::default());
        let idx = self.families.len() - 1;
        self.by_name.insert(name, idx);
        idx
    }

    /// A comment line after its `#`. Only `HELP name text` and
    /// `TYPE name type` mean something; anything else, including a HELP or
    /// TYPE with nothing after it, is a plain comment.
    fn comment(&mut self, l: &'a [u8], i: usize) -> Result<(), LineError> {
        let i = skip_blank(l, i);
        let kend = token_end(l, i);
        let keyword = &l[i..kend];
        if kend == l.len() || (keyword != b"HELP" && keyword != b"TYPE") {
            return Ok(());
        }
        let n = skip_blank(l, kend);
        if n == l.len() {
            return Ok(());
        }
        let tok = if l[n] == b'"' {
            quoted_name(l, n, "metric name")?
        } else {
            let e = lex::scan_metric_name(l, n);
            NameTok {
                start: n,
                end: e,
                quoted: false,
                escaped: false,
            }
        };
        let after = tok.after();
        if after == l.len() {
            return Ok(());
        }
        if l[after] != b' ' && l[after] != b'\t' || tok.start == tok.end {
            return Err(LineError::new(
                n,
                format!(
                    "invalid metric name in {} line: \"{}\": a name is [a-zA-Z_:][a-zA-Z0-9_:]* or quoted",
                    String::from_utf8_lossy(keyword),
                    excerpt(&l[n..token_end(l, n)])
                ),
            ));
        }
        let idx = self.family_of(l, &tok);
        let rest = skip_blank(l, after);
        if rest == l.len() {
            return Ok(());
        }
        let family = &mut self.families[idx];
        if keyword == b"HELP" {
            if family.help {
                return Err(LineError::new(
                    n,
                    format!(
                        "second HELP line for metric {}: keep one",
                        quote_name(&tok.decoded(l))
                    ),
                ));
            }
            check_help_escapes(l, rest)?;
            family.help = true;
        } else {
            if family.typ.is_some() {
                return Err(LineError::new(
                    n,
                    format!(
                        "second TYPE line for metric {}, or a TYPE line after its samples: give one TYPE line before the first sample",
                        quote_name(&tok.decoded(l))
                    ),
                ));
            }
            // The type is the rest of the line, trailing blanks included.
            let word = &l[rest..];
            let Some(t) = TextType::parse(word) else {
                return Err(LineError::new(
                    rest,
                    format!(
                        "unknown metric type \"{}\": use counter, gauge, histogram, summary or untyped",
                        excerpt(word)
                    ),
                ));
            };
            family.typ = Some(t);
        }
        Ok(())
    }
}

/// `__name__` inside the braces: the name has its own places.
/// The value and optional timestamp of a sample line from `i`, the first
/// byte after the series and its blanks, through the end of the line.
#[inline]
fn value_and_timestamp(
    l: &[u8],
    i: usize,
    name: &NameTok,
) -> Result<(f64, Option<i64>), LineError> {
    let vend = token_end(l, i);
    if vend == i {
        return Err(LineError::new(
            i,
            format!(
                "expected a sample value after {}, found end of line",
                quote_name(&name.decoded(l))
            ),
        ));
    }
    let Some(value) = parse_float(&l[i..vend]) else {
        return Err(LineError::new(
            i,
            format!(
                "expected a float sample value, got \"{}\": use a decimal number, NaN, +Inf or -Inf",
                excerpt(&l[i..vend])
            ),
        ));
    };
    if vend == l.len() {
        return Ok((value, None));
    }
    let ts = skip_blank(l, vend);
    let tend = token_end(l, ts);
    let Some(t) = parse_int_ms(&l[ts..tend]) else {
        let msg = if ts == tend {
            "expected an integer timestamp in milliseconds after the value, found trailing whitespace: remove it".to_string()
        } else {
            format!(
                "expected an integer timestamp in milliseconds, got \"{}\"",
                excerpt(&l[ts..tend])
            )
        };
        return Err(LineError::new(ts, msg));
    };
    if tend < l.len() {
        return Err(LineError::new(
            tend,
            format!(
                "unexpected \"{}\" after the timestamp: a sample line ends after its timestamp",
                excerpt(&l[tend..])
            ),
        ));
    }
    Ok((value, Some(t)))
}

pub(super) fn reserved_name(tok: &NameTok) -> LineError {
    LineError::new(
        tok.begin(),
        "label name \"__name__\" is reserved: give the metric name before the braces or as a quoted name inside them".to_string(),
    )
}

/// Help text may escape only `\\`, `\n` and `\"`.
fn check_help_escapes(l: &[u8], from: usize) -> Result<(), LineError> {
    let mut j = from;
    while let Some(k) = memchr::memchr(b'\\', &l[j..]) {
        j += k;
        match l.get(j + 1) {
            Some(b'\\' | b'n' | b'"') => j += 2,
            other => {
                return Err(LineError::new(
                    j,
                    format!(
                        "invalid escape sequence in HELP text: backslash followed by {}: only \\\\, \\n and \\\" are allowed",
                        describe_byte(other)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A quoted metric or label name whose `"` is at `i`.
fn quoted_name(l: &[u8], i: usize, what: &str) -> Result<NameTok, LineError> {
    let q = lex::scan_quoted(l, i, Escapes::Strict).map_err(|e| match e {
        QuoteError::Unterminated => LineError::new(
            i,
            format!("quoted {what} is not closed: expected '\"' before the end of the line"),
        ),
        QuoteError::BadEscape(at) => LineError::new(
            at,
            format!(
                "invalid escape sequence in quoted {what}: backslash followed by {}: only \\\\, \\\" and \\n are allowed",
                describe_byte(l.get(at + 1))
            ),
        ),
        QuoteError::NotUtf8(at) => {
            LineError::new(at, format!("quoted {what} is not valid UTF-8"))
        }
    })?;
    if q.start == q.end {
        return Err(LineError::new(i, format!("quoted {what} is empty")));
    }
    Ok(NameTok {
        start: q.start,
        end: q.end,
        quoted: true,
        escaped: q.escaped,
    })
}

/// Maps a label-value scan failure to a message naming the label.
pub(super) fn quote_error(l: &[u8], open: usize, e: QuoteError, label: &NameTok) -> LineError {
    let name = quote_name(&label.decoded(l));
    match e {
        QuoteError::Unterminated => LineError::new(
            open,
            format!(
                "value of label {name} is not closed: expected '\"' before the end of the line (a raw newline inside a value must be written as \\n)"
            ),
        ),
        QuoteError::BadEscape(at) => LineError::new(
            at,
            format!(
                "invalid escape sequence in the value of label {name}: backslash followed by {}: only \\\\, \\\" and \\n are allowed",
                describe_byte(l.get(at + 1))
            ),
        ),
        QuoteError::NotUtf8(at) => {
            LineError::new(at, format!("value of label {name} is not valid UTF-8"))
        }
    }
}

/// End of the token starting at `i`: the next blank, tab or end of line.
#[inline]
fn token_end(l: &[u8], i: usize) -> usize {
    lex::find_blank(l, i)
}

/// A name in double quotes for an error message, shortened if hostile.
pub(super) fn quote_name(b: &[u8]) -> String {
    format!("\"{}\"", excerpt(b))
}
