//! Exposition parsing: turns a scraped body (Prometheus text 0.0.4 or
//! OpenMetrics 1.0 text) into samples, one at a time, borrowing from the
//! body.
//!
//! Place on the data path: the scrape loop fetches a body, picks the
//! [`Format`] from the response's Content-Type, and pulls
//! [`ParsedSample`]s from a [`Parser`]. Each sample carries the exact bytes
//! that name its series ([`ParsedSample::series`]), its value and optional
//! timestamp; the loop uses the series bytes as its cache key and only asks
//! for decoded labels ([`ParsedSample::labels`], [`ParsedSample::to_labels`])
//! on a cache miss. Parsing validates everything (syntax, escapes, UTF-8,
//! metadata rules, and for OpenMetrics the semantic rules) before a sample
//! is handed out, so decoding later cannot fail.
//!
//! This is the hot path of scraping: no allocation per sample (only per
//! metric family, amortized growth of per-family tables, and a decoded copy
//! when an escape forces one), no recursion, and nothing worse than
//! O(n log n) on any input, however hostile (huge label values, 100k labels
//! on a line). It does not buffer the input, touch storage, apply
//! relabeling or limits; those belong to the scrape loop.
//!
//! Layout: `lex` (bytes, names, quoted strings), `number` (values and
//! timestamps), `text` (Prometheus text rules), `openmetrics`
//! (OpenMetrics rules), `tests` (unit tests).

mod lex;
mod number;
mod openmetrics;
mod text;

use std::borrow::Cow;
use std::ops::Range;

use crate::model::{self, Labels};

use lex::{LabelSpan, NameTok};

/// The text formats watchpost scrapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`), with
    /// Prometheus 3's quoted UTF-8 names.
    PrometheusText,
    /// OpenMetrics 1.0 text (`application/openmetrics-text`).
    OpenMetrics,
}

impl Format {
    /// Picks the format from a response Content-Type
    /// (openmetrics-text -> OpenMetrics, anything else -> PrometheusText).
    pub fn from_content_type(ct: Option<&str>) -> Format {
        let media = ct
            .and_then(|ct| ct.split(';').next())
            .map(str::trim)
            .unwrap_or("");
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }
}

/// A parse failure: where (1-based line and column, the column counted in
/// characters) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// An error inside one line, before it knows its line number.
#[derive(Debug)]
struct LineError {
    /// Byte index into the line.
    at: usize,
    msg: String,
}

impl LineError {
    fn new(at: usize, msg: String) -> LineError {
        LineError { at, msg }
    }
}

/// A sample line as indexes into its line.
#[derive(Debug, Default)]
struct SampleLine {
    series: Range<usize>,
    name: NameTok,
    /// Index of the `{` opening the label set, if any.
    braces: Option<usize>,
    value: f64,
    timestamp_ms: Option<i64>,
    /// Validated but not handed out (OpenMetrics `_created` series).
    skip: bool,
    checks: Checks,
    /// The series is the [`Known`] one the caller offered.
    known: bool,
}

/// Which rules of its metric type a series text was checked against, on
/// top of the syntax every series passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Checks {
    /// No label rules (counter, gauge, untyped, and every OpenMetrics
    /// series, whose rules this hint does not cover).
    #[default]
    Plain,
    /// Histogram: an `le` label, if present, is a float.
    Bucket,
    /// Summary: a `quantile` label, if present, is a float.
    Quantile,
}

/// A series text that parsed cleanly earlier, offered as a guess for the
/// next sample line ([`Parser::next_sample_expecting`]). Exporters print
/// their series in the same order every scrape, so the scrape cache nearly
/// always guesses right, and a line whose series is byte-for-byte the
/// guess need not have its labels lexed and validated again.
#[derive(Debug, Clone, Copy)]
pub struct Known<'k> {
    pub series: &'k [u8],
    /// [`ParsedSample::checks`] from when it parsed.
    pub checks: Checks,
}

/// Pulls samples out of one exposition body.
pub struct Parser<'a> {
    input: &'a [u8],
    /// Start of the next unread line.
    pos: usize,
    /// Number of the line starting at `pos`.
    line_no: usize,
    format: Format,
    /// Label spans of the current line, reused so lines do not allocate.
    spans: Vec<LabelSpan>,
    /// The current sample line, filled in place by the format parsers.
    current: SampleLine,
    text: text::TextState<'a>,
    om: openmetrics::OmState,
    /// The error already returned: the parser stays failed.
    failed: Option<ParseError>,
    done: bool,
}

impl<'a> Parser<'a> {
    pub fn new(input: &'a [u8], format: Format) -> Self {
        Parser {
            input,
            pos: 0,
            line_no: 1,
            format,
            spans: Vec::new(),
            current: SampleLine::default(),
            text: text::TextState::default(),
            om: openmetrics::OmState::default(),
            failed: None,
            done: false,
        }
    }

    /// The next sample; metadata/comment lines are consumed and validated internally.
    /// Ok(None) at the end of valid input. After an Err, the caller stops
    /// (later calls return the same error).
    pub fn next_sample(&mut self) -> Result<Option<ParsedSample<'a>>, ParseError> {
        self.next_sample_expecting(None)
    }

    /// [`Parser::next_sample`], guessing that the next sample's series is
    /// `known`; [`ParsedSample::known`] tells whether it was. The result is
    /// the same as without the guess, only cheaper when it is right. Only
    /// the Prometheus text format uses the guess.
    pub fn next_sample_expecting(
        &mut self,
        known: Option<Known<'_>>,
    ) -> Result<Option<ParsedSample<'a>>, ParseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.advance(known);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    /// The format this parser reads.
    pub fn format(&self) -> Format {
        self.format
    }

    fn advance(
        &mut self,
        known: Option<Known<'_>>,
    ) -> Result<Option<ParsedSample<'a>>, ParseError> {
        let input = self.input;
        loop {
            if self.pos >= input.len() {
                return self.finish();
            }
            let rest = &input[self.pos..];
            let (line, terminated) = match memchr::memchr(b'\n', rest) {
                Some(k) => (&rest[..k], true),
                None => (rest, false),
            };
            let line_no = self.line_no;
            self.pos += line.len() + usize::from(terminated);
            self.line_no += 1;
            let parsed = match self.format {
                Format::PrometheusText => {
                    let parsed = self
                        .text
                        .line(line, &mut self.spans, &mut self.current, known);
                    if !terminated && parsed.is_ok() && lex::skip_blank(line, 0) < line.len() {
                        // Like the Go parser: blanks may trail the last
                        // newline, anything else means a cut-off body. A
                        // malformed last line reports its own error first.
                        return Err(error_at(
                            line,
                            line_no,
                            line.len(),
                            "input must end with a newline: the last line is cut off".to_string(),
                        ));
                    }
                    parsed
                }
                Format::OpenMetrics => {
                    if self.om.eof {
                        return Err(error_at(
                            line,
                            line_no,
                            0,
                            "content after \"# EOF\": it must be the last line".to_string(),
                        ));
                    }
                    self.om
                        .line(line, line_no, &mut self.spans, &mut self.current)
                }
            };
            match parsed {
                Ok(true) if !self.current.skip => {
                    return Ok(Some(ParsedSample::new(line, &self.current)));
                }
                Ok(_) => {}
                Err(e) => return Err(error_at(line, line_no, e.at, e.msg)),
            }
        }
    }

    fn finish(&mut self) -> Result<Option<ParsedSample<'a>>, ParseError> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        if self.format == Format::OpenMetrics && !self.om.eof {
            return Err(ParseError {
                line: self.line_no,
                column: 1,
                message: "missing \"# EOF\" at the end of the input: OpenMetrics ends with it (the body may be truncated)".to_string(),
            });
        }
        Ok(None)
    }
}

fn error_at(line: &[u8], line_no: usize, at: usize, message: String) -> ParseError {
    let prefix = &line[..at.min(line.len())];
    let column = prefix.iter().filter(|&&b| (b & 0xc0) != 0x80).count() + 1;
    ParseError {
        line: line_no,
        column,
        message,
    }
}

/// One sample, borrowing from the input.
#[derive(Debug, Clone)]
pub struct ParsedSample<'a> {
    /// The exact input bytes naming the series: from the start of the metric name (or the `{`
    /// for a quoted-name-in-braces) through the closing `}` (or end of name when no braces).
    /// Same series text => same bytes across scrapes; used as the scrape cache key.
    pub series: &'a [u8],
    pub value: f64,
    pub timestamp_ms: Option<i64>,
    /// The type rules the series passed; hand it back in [`Known`].
    pub checks: Checks,
    /// The series is exactly the [`Known`] one offered for this sample.
    pub known: bool,
    /// The metric name within `series`.
    name: NameTok,
    /// Index of `{` within `series`.
    braces: Option<usize>,
}

impl<'a> ParsedSample<'a> {
    fn new(line: &'a [u8], s: &SampleLine) -> Self {
        let base = s.series.start;
        let mut name = s.name;
        name.start -= base;
        name.end -= base;
        ParsedSample {
            series: &line[s.series.clone()],
            value: s.value,
            timestamp_ms: s.timestamp_ms,
            checks: s.checks,
            known: s.known,
            name,
            braces: s.braces.map(|b| b - base),
        }
    }

    pub fn metric_name(&self) -> Cow<'a, str> {
        lex::to_str(self.name.decoded(self.series))
    }

    /// Label pairs excluding the name, escapes decoded (validated already by next_sample).
    pub fn labels(&self) -> impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)> + use<'a> {
        LabelIter {
            s: self.series,
            i: self.braces.map_or(self.series.len(), |b| b + 1),
        }
    }

    /// Full label set including __name__ (crate::model::Labels).
    pub fn to_labels(&self) -> Labels {
        Labels::from_pairs(
            std::iter::once((Cow::Borrowed(model::METRIC_NAME), self.metric_name()))
                .chain(self.labels()),
        )
    }
}

/// Walks a validated label set. Never panics; on a shape it does not
/// expect (which validation rules out) it simply ends.
struct LabelIter<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.s;
        loop {
            let mut i = lex::skip_blank(s, self.i);
            if s.get(i) == Some(&b',') {
                i = lex::skip_blank(s, i + 1);
            }
            self.i = s.len();
            let (name_raw, name_esc, after) = match s.get(i)? {
                b'"' => {
                    let q = lex::scan_quoted(s, i, lex::Escapes::Lenient).ok()?;
                    (&s[q.start..q.end], q.escaped, q.end + 1)
                }
                b'}' => return None,
                _ => {
                    let e = lex::scan_label_name(s, i);
                    if e == i {
                        return None;
                    }
                    (&s[i..e], false, e)
                }
            };
            let j = lex::skip_blank(s, after);
            if s.get(j) != Some(&b'=') {
                // The metric name inside the braces.
                self.i = j;
                continue;
            }
            let v = lex::skip_blank(s, j + 1);
            if s.get(v) != Some(&b'"') {
                return None;
            }
            let q = lex::scan_quoted(s, v, lex::Escapes::Lenient).ok()?;
            self.i = q.end + 1;
            return Some((
                lex::to_str(lex::decoded(name_raw, name_esc)),
                lex::to_str(lex::decoded(&s[q.start..q.end], q.escaped)),
            ));
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests;
