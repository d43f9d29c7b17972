//! Current Prometheus syntax that promql-parser 0.11 rejects, rewritten into
//! text it accepts before parsing:
//!
//! - duration expressions in ranges, subquery steps and offsets
//!   (`x[1m * 2]`, `x[5m:step() * 2]`, `x offset (1h / 2)`, with `+ - * / %
//!   ^`, parentheses, `step()`, `range()`, `min_of(a, b)`, `max_of(a, b)`):
//!   each is folded into one millisecond literal;
//! - the `anchored` and `smoothed` selector modifiers: the keyword is
//!   removed and the selector it follows remembered, so [`super::Query`] can
//!   attach the mode to that selector's AST node;
//! - quoted names in braces: `{"promql-duration-expr"}` (a metric name any
//!   UTF-8 text, as recording rules may produce) becomes
//!   `{__name__="promql-duration-expr"}`, and a quoted label name that is a
//!   classic name loses its quotes (`{"job"="x"}`).
//!
//! Why rewrite instead of parsing ourselves: the evaluator is built on
//! promql-parser's AST, and these forms only add information that fits
//! beside it (a constant duration, a per-selector flag). The rewrite works
//! on tokens, so strings and comments are never touched, and it leaves text
//! without these forms byte for byte unchanged. Every edit is recorded so a
//! position in the rewritten text maps back to the user's text.
//!
//! `step()` is the query step and `range()` the query range (end - start),
//! both 0 for instant queries, as in Prometheus. A query that uses them is
//! rewritten again for each range query (see [`Rewritten::uses_query_params`]).

use super::position::{Kind, Tok, tokenize};

/// Label name of the matcher added to info()'s label selector so that
/// promql-parser accepts it (see `Rewriter::info_placeholder`); info() drops
/// matchers on it.
pub const INFO_PLACEHOLDER: &str = "__watchpost_info_selector__";

/// How a selector picks samples, beyond the plain lookback or range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorMode {
    /// `x[5m] anchored`: the range also takes the last sample before its
    /// start, so increases count from a real sample (no extrapolation).
    Anchored,
    /// `x smoothed`, `x[5m] smoothed`: values at the window edges are
    /// interpolated between the neighbouring samples.
    Smoothed,
}

impl SelectorMode {
    pub fn keyword(self) -> &'static str {
        match self {
            SelectorMode::Anchored => "anchored",
            SelectorMode::Smoothed => "smoothed",
        }
    }
}

/// What `step()` and `range()` stand for while rewriting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryParams {
    pub step_ms: i64,
    pub range_ms: i64,
}

/// One replaced span: `orig` in the user's text became `new` in the output.
#[derive(Debug, Clone, Copy)]
struct Edit {
    orig: (usize, usize),
    new: (usize, usize),
}

/// The text handed to promql-parser, plus what is needed to relate it to
/// the user's text.
#[derive(Debug, Clone, Default)]
pub struct Rewritten {
    pub text: String,
    edits: Vec<Edit>,
    /// Start offset (in [`Rewritten::text`]) of each selector that carried
    /// a mode keyword.
    pub modes: Vec<(usize, SelectorMode)>,
    /// The text calls `step()` or `range()`, so its durations depend on the
    /// query and a range query must rewrite it again with its own values.
    pub uses_query_params: bool,
}

impl Rewritten {
    /// The text unchanged.
    pub fn identity(text: &str) -> Rewritten {
        Rewritten {
            text: text.to_string(),
            ..Rewritten::default()
        }
    }

    /// Maps a byte offset in the rewritten text to the user's text. An
    /// offset inside a replaced span maps to the start of what it replaced.
    pub fn original_offset(&self, offset: usize) -> usize {
        let mut shift: isize = 0;
        for e in &self.edits {
            if offset < e.new.0 {
                break;
            }
            if offset < e.new.1 {
                return e.orig.0;
            }
            shift = e.orig.1 as isize - e.new.1 as isize;
        }
        (offset as isize + shift).max(0) as usize
    }
}

/// A syntax error in an extension, at a byte offset of the user's text.
#[derive(Debug, Clone, PartialEq)]
pub struct RewriteError {
    pub message: String,
    pub offset: usize,
}

/// Rewrites `src` for promql-parser. Text the tokenizer cannot read is
/// returned unchanged, so promql-parser reports that error itself.
pub fn rewrite(src: &str, params: QueryParams) -> Result<Rewritten, RewriteError> {
    let (toks, lex_error) = tokenize(src);
    if lex_error.is_some() {
        return Ok(Rewritten::identity(src));
    }
    let mut r = Rewriter {
        src,
        toks: &toks,
        i: 0,
        params,
        out: String::with_capacity(src.len()),
        copied: 0,
        edits: Vec::new(),
        modes: Vec::new(),
        uses_query_params: false,
    };
    r.run()?;
    r.out.push_str(&src[r.copied..]);
    Ok(Rewritten {
        text: r.out,
        edits: r.edits,
        modes: r.modes,
        uses_query_params: r.uses_query_params,
    })
}

/// Words that can never be a metric name where they stand.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "atan2",
    "inf",
    "nan",
];

struct Rewriter<'s, 't> {
    src: &'s str,
    toks: &'t [Tok<'s>],
    i: usize,
    params: QueryParams,
    out: String,
    /// Bytes of `src` already copied (or replaced) into `out`.
    copied: usize,
    edits: Vec<Edit>,
    modes: Vec<(usize, SelectorMode)>,
    uses_query_params: bool,
}

fn end_of(t: &Tok<'_>) -> usize {
    t.start + t.text.len()
}

impl<'s, 't> Rewriter<'s, 't> {
    fn peek(&self) -> Option<&'t Tok<'s>> {
        self.toks.get(self.i)
    }

    fn peek_at(&self, i: usize) -> Option<&'t Tok<'s>> {
        self.toks.get(i)
    }

    fn is_punct(&self, i: usize, p: &str) -> bool {
        self.peek_at(i)
            .is_some_and(|t| t.kind == Kind::Punct && t.text == p)
    }

    fn is_word(&self, i: usize, w: &str) -> bool {
        self.peek_at(i)
            .is_some_and(|t| t.kind == Kind::Ident && t.text.eq_ignore_ascii_case(w))
    }

    /// Offset just past the tokens read so far (the end of the input when
    /// all are read), for errors about something missing.
    fn here(&self) -> usize {
        self.peek().map_or(self.src.len(), |t| t.start)
    }

    fn error<T>(&self, offset: usize, message: impl Into<String>) -> Result<T, RewriteError> {
        Err(RewriteError {
            message: message.into(),
            offset,
        })
    }

    /// Replaces `src[start..end]` with `with` in the output.
    fn replace(&mut self, start: usize, end: usize, with: &str) {
        self.out.push_str(&self.src[self.copied..start]);
        let new_start = self.out.len();
        self.out.push_str(with);
        self.edits.push(Edit {
            orig: (start, end),
            new: (new_start, self.out.len()),
        });
        self.copied = end;
    }

    /// Where the user's offset `orig` (outside any replaced span) lands in
    /// the output.
    fn output_offset(&self, orig: usize) -> usize {
        if orig >= self.copied {
            return self.out.len() + (orig - self.copied);
        }
        let shift: isize = self
            .edits
            .iter()
            .filter(|e| e.orig.1 <= orig)
            .map(|e| (e.new.1 - e.new.0) as isize - (e.orig.1 - e.orig.0) as isize)
            .sum();
        (orig as isize + shift) as usize
    }

    /// Whether the word at `i` stands where a modifier keyword can: right
    /// after a selector, a range or subquery bracket, or another modifier.
    /// `after_paren`: whether a `)` before counts, as for an `offset` after
    /// a subquery's `@ start()`; a mode keyword after `)` is a metric name
    /// (`a + on(x) smoothed`).
    fn modifier_position(&self, i: usize, after_paren: bool) -> bool {
        let Some(prev) = i.checked_sub(1).and_then(|p| self.peek_at(p)) else {
            return false;
        };
        match prev.kind {
            Kind::Punct => matches!(prev.text, "]" | "}") || (after_paren && prev.text == ")"),
            Kind::Number => true,
            Kind::Ident => !KEYWORDS.iter().any(|k| prev.text.eq_ignore_ascii_case(k)),
            Kind::Str => false,
        }
    }

    fn mode_word(&self, i: usize) -> Option<SelectorMode> {
        if self.is_word(i, "anchored") {
            Some(SelectorMode::Anchored)
        } else if self.is_word(i, "smoothed") {
            Some(SelectorMode::Smoothed)
        } else {
            None
        }
    }

    fn run(&mut self) -> Result<(), RewriteError> {
        // Open parentheses: whether each is a call to info(), and which
        // argument of it is being read.
        let mut parens: Vec<(bool, usize)> = Vec::new();
        while let Some(t) = self.peek() {
            let i = self.i;
            match t.kind {
                Kind::Punct if t.text == "(" => {
                    let is_info = i > 0 && self.is_word(i - 1, "info");
                    parens.push((is_info, 0));
                    self.i += 1;
                }
                Kind::Punct if t.text == ")" => {
                    parens.pop();
                    self.i += 1;
                }
                Kind::Punct if t.text == "," => {
                    if let Some(top) = parens.last_mut() {
                        top.1 += 1;
                    }
                    self.i += 1;
                }
                Kind::Punct if t.text == "[" => self.bracket()?,
                Kind::Punct if t.text == "{" => {
                    if parens.last() == Some(&(true, 1)) && self.is_punct(i.wrapping_sub(1), ",") {
                        self.info_placeholder(t);
                    }
                    self.selector()?
                }
                Kind::Ident if self.is_word(i, "offset") && self.modifier_position(i, true) => {
                    self.offset()?
                }
                Kind::Ident if self.mode_word(i).is_some() && self.modifier_position(i, false) => {
                    let mode = self.mode_word(i).map_or("", |m| m.keyword());
                    return self.error(
                        t.start,
                        format!(
                            "the {mode} modifier can only follow a vector or range selector, as in rate(x[5m] {mode})"
                        ),
                    );
                }
                Kind::Ident
                    if !self.is_punct(i + 1, "(")
                        && !KEYWORDS.iter().any(|k| t.text.eq_ignore_ascii_case(k)) =>
                {
                    self.selector()?
                }
                _ => self.i += 1,
            }
        }
        Ok(())
    }

    /// Adds [`INFO_PLACEHOLDER`] to the label selector `{...}` starting at
    /// `open`, the second argument of info(). Prometheus lets that selector
    /// match the empty string everywhere (`{data=~".*"}`), which
    /// promql-parser refuses for any selector; the placeholder is a matcher
    /// that does not, and info() ignores it.
    fn info_placeholder(&mut self, open: &Tok<'_>) {
        let at = end_of(open);
        let empty = self.is_punct(self.i + 1, "}");
        let text = format!("{INFO_PLACEHOLDER}!=\"\"{}", if empty { "" } else { ", " });
        self.replace(at, at, &text);
    }

    /// A vector or range selector with its modifiers, starting at a metric
    /// name or `{`.
    fn selector(&mut self) -> Result<(), RewriteError> {
        let start = self.peek().map_or(0, |t| t.start);
        if self.peek().is_some_and(|t| t.kind == Kind::Ident) {
            self.i += 1;
        }
        if self.is_punct(self.i, "{") {
            self.braces()?;
        }
        if self.is_punct(self.i, "[") {
            self.bracket()?;
        }
        let mut mode: Option<SelectorMode> = None;
        loop {
            let i = self.i;
            if self.is_word(i, "offset") {
                self.offset()?;
            } else if self.is_punct(i, "@") {
                self.i += 1;
                while self.is_punct(self.i, "+") || self.is_punct(self.i, "-") {
                    self.i += 1;
                }
                if (self.is_word(self.i, "start") || self.is_word(self.i, "end"))
                    && self.is_punct(self.i + 1, "(")
                {
                    self.i += 3;
                } else {
                    self.i += 1;
                }
            } else if let Some(m) = self.mode_word(i) {
                let t = &self.toks[i];
                if let Some(prev) = mode {
                    return self.error(
                        t.start,
                        format!(
                            "a selector takes one of anchored and smoothed, not {} and {}",
                            prev.keyword(),
                            m.keyword()
                        ),
                    );
                }
                mode = Some(m);
                let at = self.output_offset(start);
                self.modes.push((at, m));
                self.replace(t.start, end_of(t), "");
                self.i += 1;
            } else {
                return Ok(());
            }
        }
    }

    /// `{...}` at the current `{`: label matchers, never durations. Only
    /// quoted names are rewritten.
    fn braces(&mut self) -> Result<(), RewriteError> {
        self.i += 1;
        let mut item_start = true;
        while let Some(t) = self.peek() {
            self.i += 1;
            match t.kind {
                Kind::Punct if t.text == "}" => return Ok(()),
                Kind::Punct if t.text == "," => item_start = true,
                Kind::Str if item_start => {
                    item_start = false;
                    let Some(name) = unquote(t.text) else {
                        continue;
                    };
                    let next = self.peek().map_or("}", |n| n.text);
                    if next == "," || next == "}" {
                        self.replace(t.start, end_of(t), &format!("__name__={}", t.text));
                    } else if crate::model::is_valid_label_name(&name) {
                        self.replace(t.start, end_of(t), &name);
                    } else {
                        return self.error(
                            t.start,
                            format!(
                                "label name {name:?}: watchpost matches classic label names only ([a-zA-Z_][a-zA-Z0-9_]*)"
                            ),
                        );
                    }
                }
                _ => item_start = false,
            }
        }
        Ok(())
    }

    /// `[range]` or `[range:step]` at the current `[`.
    fn bracket(&mut self) -> Result<(), RewriteError> {
        let open = self.toks[self.i].start;
        self.i += 1;
        self.duration_part(true)?;
        if self.is_punct(self.i, ":") {
            self.i += 1;
            if !self.is_punct(self.i, "]") {
                self.duration_part(false)?;
            }
        }
        if !self.is_punct(self.i, "]") {
            let at = self.here();
            return self.error(
                at,
                format!(
                    "the bracket opened at byte {} is not closed with ]: write a range such as [5m] or [1h:1m]",
                    open + 1
                ),
            );
        }
        self.i += 1;
        Ok(())
    }

    /// A range or subquery step: a full duration expression up to `:` or
    /// `]`. A single literal is left for promql-parser.
    fn duration_part(&mut self, is_range: bool) -> Result<(), RewriteError> {
        let first = self.i;
        let mut p = DurParser { r: self, depth: 0 };
        let secs = p.expr()?;
        let last = self.i;
        if last == first {
            let at = self.here();
            return self.error(at, "expected a duration such as 5m");
        }
        if last - first == 1 && self.toks[first].kind == Kind::Number {
            return Ok(());
        }
        let ms = to_millis(secs).ok_or(RewriteError {
            message: "duration expression is out of range".to_string(),
            offset: self.toks[first].start,
        })?;
        if ms <= 0 {
            let what = if is_range { "range" } else { "subquery step" };
            return self.error(
                self.toks[first].start,
                format!("{what} duration must be greater than 0, got {ms}ms"),
            );
        }
        let (start, end) = (self.toks[first].start, end_of(&self.toks[last - 1]));
        self.replace(start, end, &format!("{ms}ms"));
        Ok(())
    }

    /// `offset <duration>` at the `offset` keyword. The duration is one
    /// signed operand; operators after it belong to the enclosing
    /// expression (`x offset 1m * 2` multiplies the selected values).
    fn offset(&mut self) -> Result<(), RewriteError> {
        let keyword = self.toks[self.i].start;
        self.i += 1;
        let first = self.i;
        let mut p = DurParser { r: self, depth: 0 };
        let secs = p.signed_operand()?;
        let last = self.i;
        let ms = to_millis(secs).ok_or(RewriteError {
            message: "offset duration expression is out of range".to_string(),
            offset: self.toks[first].start,
        })?;
        let end = end_of(&self.toks[last - 1]);
        if ms == 0 {
            // promql-parser rejects a zero offset, which Prometheus accepts
            // (`offset 0s`, `offset step()` in an instant query) and which
            // means no offset at all.
            self.replace(keyword, end, "");
            return Ok(());
        }
        let simple = match last - first {
            1 => self.toks[first].kind == Kind::Number,
            2 => {
                matches!(self.toks[first].text, "+" | "-")
                    && self.toks[first + 1].kind == Kind::Number
            }
            _ => false,
        };
        if !simple {
            self.replace(self.toks[first].start, end, &format!("{ms}ms"));
        }
        Ok(())
    }
}

/// The text of a string token without its quotes, when it has no escapes
/// (a quoted name with escapes is left for promql-parser to judge).
fn unquote(token: &str) -> Option<String> {
    let inner = token.get(1..token.len().checked_sub(1)?)?;
    (!inner.contains('\\')).then(|| inner.to_string())
}

/// Seconds to whole milliseconds, rounded: `step() + 1ms` with a 10 s step
/// must be 10001 ms although 10.001 has no exact binary form.
fn to_millis(secs: f64) -> Option<i64> {
    let ms = (secs * 1000.0).round();
    (ms.is_finite() && ms.abs() < 9.0e15).then_some(ms as i64)
}

/// Recursive-descent evaluator of duration expressions over the token
/// stream, in seconds. Precedence as in PromQL: unary signs bind looser
/// than `^` (`-2^2` is -4), then `* / %`, then `+ -`.
struct DurParser<'r, 's, 't> {
    r: &'r mut Rewriter<'s, 't>,
    depth: usize,
}

impl DurParser<'_, '_, '_> {
    fn expr(&mut self) -> Result<f64, RewriteError> {
        let mut v = self.term()?;
        loop {
            if self.r.is_punct(self.r.i, "+") {
                self.r.i += 1;
                v += self.term()?;
            } else if self.r.is_punct(self.r.i, "-") {
                self.r.i += 1;
                v -= self.term()?;
            } else {
                return Ok(v);
            }
        }
    }

    fn term(&mut self) -> Result<f64, RewriteError> {
        let mut v = self.signed()?;
        loop {
            let op = match self.r.peek() {
                Some(t) if t.kind == Kind::Punct && matches!(t.text, "*" | "/" | "%") => t,
                _ => return Ok(v),
            };
            self.r.i += 1;
            let rhs = self.signed()?;
            v = match op.text {
                "*" => v * rhs,
                "/" | "%" if rhs == 0.0 => {
                    return self
                        .r
                        .error(op.start, "division by zero in duration expression");
                }
                "/" => v / rhs,
                _ => v % rhs,
            };
        }
    }

    fn signed(&mut self) -> Result<f64, RewriteError> {
        let negative = self.signs();
        let base = self.primary()?;
        let v = if self.r.is_punct(self.r.i, "^") {
            let at = self.r.toks[self.r.i].start;
            self.r.i += 1;
            // `^` is right-associative: `2^3^2` is 2^9. The depth bound
            // keeps a long chain from exhausting the stack.
            self.nest(at)?;
            let exp = self.signed()?;
            self.depth -= 1;
            base.powf(exp)
        } else {
            base
        };
        Ok(if negative { -v } else { v })
    }

    /// Signs and one operand, without any binary operator (offsets).
    fn signed_operand(&mut self) -> Result<f64, RewriteError> {
        let negative = self.signs();
        let v = self.primary()?;
        Ok(if negative { -v } else { v })
    }

    /// Reads a run of `+` / `-` signs (a loop, not recursion: input is
    /// untrusted); whether they negate.
    fn signs(&mut self) -> bool {
        let mut negative = false;
        loop {
            if self.r.is_punct(self.r.i, "-") {
                negative = !negative;
            } else if !self.r.is_punct(self.r.i, "+") {
                return negative;
            }
            self.r.i += 1;
        }
    }

    /// Enters one more level of nesting, refusing more than 64.
    fn nest(&mut self, at: usize) -> Result<(), RewriteError> {
        if self.depth >= 64 {
            return self.r.error(at, "duration expression is nested too deeply");
        }
        self.depth += 1;
        Ok(())
    }

    fn primary(&mut self) -> Result<f64, RewriteError> {
        let Some(t) = self.r.peek() else {
            let at = self.r.here();
            return self.r.error(at, "expected a duration such as 5m");
        };
        match t.kind {
            Kind::Number => {
                self.r.i += 1;
                match parse_seconds(t.text) {
                    Some(v) => Ok(v),
                    None => self.r.error(
                        t.start,
                        format!(
                            "{:?} is not a duration or number: write durations as 5m, 1h30m or 90s",
                            t.text
                        ),
                    ),
                }
            }
            Kind::Punct if t.text == "(" => {
                self.nest(t.start)?;
                self.r.i += 1;
                let v = self.expr()?;
                self.depth -= 1;
                self.close(t)?;
                Ok(v)
            }
            Kind::Ident if self.r.is_punct(self.r.i + 1, "(") => {
                let name = t.text.to_ascii_lowercase();
                self.r.i += 2;
                match name.as_str() {
                    "step" | "range" => {
                        self.close(t)?;
                        self.r.uses_query_params = true;
                        let ms = if name == "step" {
                            self.r.params.step_ms
                        } else {
                            self.r.params.range_ms
                        };
                        Ok(ms as f64 / 1000.0)
                    }
                    "min_of" | "max_of" => {
                        self.nest(t.start)?;
                        let a = self.expr()?;
                        if !self.r.is_punct(self.r.i, ",") {
                            let at = self.r.here();
                            return self
                                .r
                                .error(at, format!("{name}() takes two durations: {name}(a, b)"));
                        }
                        self.r.i += 1;
                        let b = self.expr()?;
                        self.depth -= 1;
                        self.close(t)?;
                        Ok(if name == "min_of" { a.min(b) } else { a.max(b) })
                    }
                    _ => self.r.error(
                        t.start,
                        format!(
                            "{:?} cannot be used in a duration: only step(), range(), min_of() and max_of() can",
                            t.text
                        ),
                    ),
                }
            }
            _ => self.r.error(
                t.start,
                format!("unexpected {:?} in a duration expression", t.text),
            ),
        }
    }

    /// Expects the `)` closing the group that `open` started.
    fn close(&mut self, open: &Tok<'_>) -> Result<(), RewriteError> {
        if self.r.is_punct(self.r.i, ")") {
            self.r.i += 1;
            return Ok(());
        }
        let at = self.r.here();
        self.r.error(
            at,
            format!(
                "unclosed ( opened at byte {} in a duration expression",
                open.start + 1
            ),
        )
    }
}

/// A number (`90`, `1.5`, `0x10`, `1e3`) in seconds, or a duration literal
/// (`1h30m`, `500ms`).
fn parse_seconds(text: &str) -> Option<f64> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return i64::from_str_radix(hex, 16).ok().map(|v| v as f64);
    }
    if let Ok(v) = text.parse::<f64>()
        && text
            .bytes()
            .all(|b| !b.is_ascii_alphabetic() || b == b'e' || b == b'E')
    {
        return Some(v);
    }
    parse_duration_literal(text).map(|ms| ms as f64 / 1000.0)
}

/// A Prometheus duration literal (`1h30m`, `500ms`) in ms.
fn parse_duration_literal(text: &str) -> Option<i64> {
    let d = crate::model::parse_duration(text).ok()?;
    i64::try_from(d.as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(src: &str) -> String {
        rewrite(src, QueryParams::default()).unwrap().text
    }

    fn rw_with(src: &str, step_ms: i64, range_ms: i64) -> Rewritten {
        rewrite(src, QueryParams { step_ms, range_ms }).unwrap()
    }

    #[test]
    fn plain_text_is_unchanged() {
        for q in [
            "rate(x[5m])",
            "sum by (job) (rate(x{a=\"[1m*2]\"}[5m:1m] offset -5m))",
            "x offset 5m @ 100",
            "x offset 100 + 2",
            "x[1800]",
            "offset + on(offset) smoothed",
            "foo # [1m * 2] anchored\n",
        ] {
            let r = rw_with(q, 0, 0);
            assert_eq!(r.text, q);
            assert!(r.modes.is_empty() && !r.uses_query_params, "{q}");
        }
    }

    #[test]
    fn folds_range_and_subquery_durations() {
        assert_eq!(rw("rate(up[1m * 2])"), "rate(up[120000ms])");
        assert_eq!(rw("changes(x[26m+4m])"), "changes(x[1800000ms])");
        assert_eq!(rw("changes(x[24m+((1.5*2m)+2m)])"), "changes(x[1740000ms])");
        assert_eq!(rw("changes(x[1h30m % 1h])"), "changes(x[1800000ms])");
        assert_eq!(rw("changes(x[30m1s-30m1s % 1m])"), "changes(x[1800000ms])");
        assert_eq!(rw("changes(x[-5m+35m])"), "changes(x[1800000ms])");
        assert_eq!(
            rw("s(x[29s+1s:((((8 - 2) / 3) * 7s) % 4) + 8000ms])"),
            "s(x[30000ms:10000ms])"
        );
        assert_eq!(rw("(a + b)[1m*5:]"), "(a + b)[300000ms:]");
    }

    #[test]
    fn offset_takes_one_signed_operand() {
        assert_eq!(rw("x offset (100 + 2)"), "x offset 102000ms");
        assert_eq!(rw("x offset -(2 * 2)"), "x offset -4000ms");
        assert_eq!(rw("x offset -2 ^ 2"), "x offset -2 ^ 2");
        let r = rw_with("x offset -step()*2", 5000, 10_000);
        assert_eq!(r.text, "x offset -5000ms*2");
        assert!(r.uses_query_params);
        let r = rw_with("x offset -min_of(step(), 1s)^0", 5000, 0);
        assert_eq!(r.text, "x offset -1000ms^0");
        assert_eq!(
            rw_with("x[max_of(min_of(step()+1,1h),1ms)]", 5000, 0).text,
            "x[6000ms]"
        );
        assert_eq!(
            rw_with("x offset range()", 0, 10_000).text,
            "x offset 10000ms"
        );
        assert_eq!(rw_with("x offset range() + 1", 0, 0).text, "x  + 1");
        assert_eq!(rw("x offset 0s"), "x ");
        assert_eq!(rw_with("x[step()+1ms]", 10_000, 0).text, "x[10001ms]");
        assert_eq!(rw_with("x[1+(STep()-5)*2]", 10_000, 0).text, "x[11000ms]");
    }

    #[test]
    fn mode_keywords_are_removed_and_remembered() {
        let r = rw_with("rate(up[1m] anchored)", 0, 0);
        assert_eq!(r.text, "rate(up[1m] )");
        assert_eq!(r.modes, vec![(5, SelectorMode::Anchored)]);
        let r = rw_with("a + {job=\"x\"}[1m*2] offset 1m SMOOTHED", 0, 0);
        assert_eq!(r.text, "a + {job=\"x\"}[120000ms] offset 1m ");
        assert_eq!(r.modes, vec![(4, SelectorMode::Smoothed)]);
        let r = rw_with("metric @ 100 smoothed + 0", 0, 0);
        assert_eq!(r.text, "metric @ 100  + 0");
        assert_eq!(r.modes, vec![(0, SelectorMode::Smoothed)]);
    }

    #[test]
    fn offsets_map_back_to_the_user_text() {
        let src = "rate(up[1m * 2]) + foo[1m] anchored + bar";
        let r = rw_with(src, 0, 0);
        assert_eq!(r.text, "rate(up[120000ms]) + foo[1m]  + bar");
        let new_bar = r.text.find("bar").unwrap();
        assert_eq!(r.original_offset(new_bar), src.find("bar").unwrap());
        let new_foo = r.text.find("foo").unwrap();
        assert_eq!(r.original_offset(new_foo), src.find("foo").unwrap());
        // Inside the replaced duration: the start of what it replaced.
        assert_eq!(r.original_offset(9), 8);
        assert_eq!(r.original_offset(0), 0);
    }

    #[test]
    fn errors_name_the_place() {
        let e = rewrite("x[1m / 0]", QueryParams::default()).unwrap_err();
        assert_eq!(e.offset, 5);
        assert!(e.message.contains("division by zero"), "{e:?}");
        let e = rewrite("x[1m - 1m]", QueryParams::default()).unwrap_err();
        assert!(e.message.contains("greater than 0"), "{e:?}");
        let e = rewrite("x[1m * (2]", QueryParams::default()).unwrap_err();
        assert!(e.message.contains("unclosed ("), "{e:?}");
        let e = rewrite("x[foo(1)]", QueryParams::default()).unwrap_err();
        assert!(e.message.contains("only step()"), "{e:?}");
        let e = rewrite("(a + b)[5m:] anchored", QueryParams::default()).unwrap_err();
        assert_eq!(e.offset, 13);
        let e = rewrite("x[1m] anchored smoothed", QueryParams::default()).unwrap_err();
        assert!(e.message.contains("one of anchored and smoothed"), "{e:?}");
        // Untrusted input: long chains neither overflow the stack nor pass.
        let deep = format!("x[{}1m{}]", "(".repeat(100), ")".repeat(100));
        let e = rewrite(&deep, QueryParams::default()).unwrap_err();
        assert!(e.message.contains("nested too deeply"), "{e:?}");
        let pow = format!("x[2{}]", "^2".repeat(100));
        let e = rewrite(&pow, QueryParams::default()).unwrap_err();
        assert!(e.message.contains("nested too deeply"), "{e:?}");
        let signs = format!("x[{}1m]", "-".repeat(100_000));
        assert_eq!(
            rewrite(&signs, QueryParams::default()).unwrap().text,
            "x[60000ms]"
        );
    }

    #[test]
    fn quoted_names_in_braces() {
        assert_eq!(rw("{\"a-b\"}"), "{__name__=\"a-b\"}");
        assert_eq!(
            rw("rate({\"a.b\", \"job\"=\"x\", y=\"z\"}[5m])"),
            "rate({__name__=\"a.b\", job=\"x\", y=\"z\"}[5m])"
        );
        // A string in value position is untouched.
        assert_eq!(rw("x{a=\"b\", c!=\"d\"}"), "x{a=\"b\", c!=\"d\"}");
        let e = rewrite("{\"a.b\"=\"x\"}", QueryParams::default()).unwrap_err();
        assert!(e.message.contains("classic label names"), "{e:?}");
    }

    #[test]
    fn info_selector_gets_a_placeholder() {
        assert_eq!(
            rw("info(m, {data=~\".*\"})"),
            format!("info(m, {{{INFO_PLACEHOLDER}!=\"\", data=~\".*\"}})")
        );
        assert_eq!(
            rw("info(m, {})"),
            format!("info(m, {{{INFO_PLACEHOLDER}!=\"\"}})")
        );
        // Only info's second argument.
        assert_eq!(rw("foo(m, {a=\"\"})"), "foo(m, {a=\"\"})");
        assert_eq!(rw("info({a=\"b\"})"), "info({a=\"b\"})");
    }

    #[test]
    fn duration_literals() {
        assert_eq!(parse_duration_literal("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration_literal("8000ms"), Some(8000));
        assert_eq!(parse_duration_literal("1m1h"), None);
        assert_eq!(parse_seconds("0x10"), Some(16.0));
        assert_eq!(parse_seconds("1e3"), Some(1000.0));
        assert_eq!(parse_seconds("1.5"), Some(1.5));
        assert_eq!(parse_seconds("5x"), None);
    }
}
