//! Source positions of AST nodes, for annotations (`... (1:21)`) and parse
//! errors.
//!
//! promql-parser's AST carries no positions, so this module re-tokenizes the
//! query text with a small lexer of its own and walks the AST in source
//! order, consuming the tokens each node spans. A node's position is the
//! byte offset of its first token, as Prometheus reports it. Nodes are keyed
//! by address, which is stable because [`super::Query`] owns the boxed tree.
//! When the walk cannot follow the text (an AST shape this walk does not
//! know), the remaining nodes simply have no position and annotations fall
//! back to the query start; this only affects the `(line:col)` suffix.

use std::collections::HashMap;

use promql_parser::parser::{AtModifier, Expr, LabelModifier, VectorMatchCardinality};

use super::extensions::SelectorMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Ident,
    /// Number or duration literal (`5`, `1.5e3`, `0x1f`, `5m`, `1h30m`).
    Number,
    Str,
    Punct,
}

#[derive(Debug, Clone)]
pub(super) struct Tok<'a> {
    pub kind: Kind,
    pub text: &'a str,
    pub start: usize,
}

/// Splits PromQL text into tokens. Returns the tokens read so far and, on a
/// lexical error, its byte offset.
pub(super) fn tokenize(src: &str) -> (Vec<Tok<'_>>, Option<usize>) {
    let b = src.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    // Inside `[...]` a colon separates a subquery's range and step; outside
    // it can start a metric name (`:node_cpu:rate5m`).
    let mut brackets = 0usize;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        let kind = if c.is_ascii_alphabetic() || c == b'_' || (c == b':' && brackets == 0) {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            Kind::Ident
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let hex = c == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X'));
            while i < b.len() {
                let d = b[i];
                let exponent_sign = (d == b'+' || d == b'-')
                    && !hex
                    && matches!(b[i - 1], b'e' | b'E')
                    && b.get(i + 1).is_some_and(u8::is_ascii_digit);
                if d.is_ascii_alphanumeric() || d == b'.' || d == b'_' || exponent_sign {
                    i += 1;
                } else {
                    break;
                }
            }
            Kind::Number
        } else if c == b'"' || c == b'\'' || c == b'`' {
            i += 1;
            loop {
                match b.get(i) {
                    None => return (toks, Some(start)),
                    Some(&d) if d == c => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if c != b'`' => i += 2,
                    Some(_) => i += 1,
                }
            }
            Kind::Str
        } else {
            let two = b.get(i..i + 2).unwrap_or(&[]);
            let len = match two {
                b"==" | b"!=" | b"<=" | b">=" | b"=~" | b"!~" | b"</" | b">/" => 2,
                _ => 1,
            };
            if len == 1 && !b"+-*/%^<>=(){}[],:@!".contains(&c) {
                return (toks, Some(start));
            }
            match c {
                b'[' => brackets += 1,
                b']' => brackets = brackets.saturating_sub(1),
                _ => {}
            }
            i += len;
            Kind::Punct
        };
        toks.push(Tok {
            kind,
            text: &src[start..i],
            start,
        });
    }
    (toks, None)
}

/// 1-based line and byte column of `offset` in `src`, as Prometheus prints
/// positions.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src.as_bytes()[..offset];
    let line = 1 + before.iter().filter(|&&c| c == b'\n').count();
    let last_nl = before.iter().rposition(|&c| c == b'\n');
    let col = match last_nl {
        Some(p) => offset - p,
        None => offset + 1,
    };
    (line, col)
}

/// The position of a parse error in `src`, when one can be found: a
/// lexical error (unterminated string, stray character, unbalanced
/// bracket), or the call to an unknown function named in `message`.
#[cfg(test)]
pub fn locate_error(src: &str, message: &str) -> Option<(usize, usize)> {
    locate_error_offset(src, message).map(|o| line_col(src, o))
}

/// The byte offset of a parse error in `src`, when one can be found: a
/// lexical error (unterminated string, stray character, unbalanced
/// bracket), or the call to an unknown function named in `message`.
pub fn locate_error_offset(src: &str, message: &str) -> Option<usize> {
    let (toks, err) = tokenize(src);
    if let Some(off) = err {
        return Some(off);
    }
    if let Some(name) = message
        .strip_prefix("unknown function with name '")
        .and_then(|r| r.strip_suffix('\''))
        && let Some(w) = toks
            .windows(2)
            .find(|w| w[0].text == name && w[1].text == "(")
    {
        return Some(w[0].start);
    }
    let mut stack: Vec<&Tok<'_>> = Vec::new();
    for t in &toks {
        match t.text {
            "(" | "[" | "{" if t.kind == Kind::Punct => stack.push(t),
            ")" | "]" | "}" if t.kind == Kind::Punct => {
                let want = match t.text {
                    ")" => "(",
                    "]" => "[",
                    _ => "{",
                };
                match stack.pop() {
                    Some(open) if open.text == want => {}
                    _ => return Some(t.start),
                }
            }
            _ => {}
        }
    }
    stack.pop().map(|open| open.start)
}

/// Start offsets of AST nodes, keyed by node address, and the `anchored` /
/// `smoothed` mode of the selectors that carry one.
#[derive(Debug, Clone, Default)]
pub struct Positions {
    starts: HashMap<usize, usize>,
    modes: HashMap<usize, SelectorMode>,
}

impl Positions {
    pub fn build(src: &str, expr: &Expr) -> Positions {
        let (toks, _) = tokenize(src);
        let mut w = Walker {
            toks: &toks,
            i: 0,
            starts: HashMap::new(),
        };
        // A walk that loses track keeps the positions found so far.
        let _ = w.expr(expr);
        Positions {
            starts: w.starts,
            modes: HashMap::new(),
        }
    }

    /// Gives each selector node whose start is listed in `modes` (offsets
    /// in the text the positions were built from) that mode.
    pub fn attach_modes(&mut self, expr: &Expr, modes: &[(usize, SelectorMode)]) {
        if modes.is_empty() {
            return;
        }
        let mut stack = vec![expr];
        while let Some(e) = stack.pop() {
            match e {
                Expr::VectorSelector(_) | Expr::MatrixSelector(_) => {
                    let key = e as *const Expr as usize;
                    if let Some(start) = self.starts.get(&key)
                        && let Some((_, m)) = modes.iter().find(|(o, _)| o == start)
                    {
                        self.modes.insert(key, *m);
                    }
                }
                Expr::Call(c) => stack.extend(c.args.args.iter().map(|a| a.as_ref())),
                Expr::Aggregate(a) => {
                    stack.push(&a.expr);
                    if let Some(p) = &a.param {
                        stack.push(p);
                    }
                }
                Expr::Binary(b) => {
                    stack.push(&b.lhs);
                    stack.push(&b.rhs);
                }
                Expr::Paren(p) => stack.push(&p.expr),
                Expr::Unary(u) => stack.push(&u.expr),
                Expr::Subquery(s) => stack.push(&s.expr),
                _ => {}
            }
        }
    }

    /// Rewrites every start offset through `f` (from the parsed text to the
    /// user's text).
    pub fn remap(&mut self, f: impl Fn(usize) -> usize) {
        for v in self.starts.values_mut() {
            *v = f(*v);
        }
    }

    /// The `anchored` / `smoothed` mode of a selector node, if it has one.
    pub fn mode(&self, expr: &Expr) -> Option<SelectorMode> {
        self.modes.get(&(expr as *const Expr as usize)).copied()
    }

    /// Byte offset where `expr` starts in the query text (0 when unknown).
    pub fn of(&self, expr: &Expr) -> usize {
        self.starts
            .get(&(expr as *const Expr as usize))
            .copied()
            .unwrap_or(0)
    }
}

struct Walker<'t, 'a> {
    toks: &'t [Tok<'a>],
    i: usize,
    starts: HashMap<usize, usize>,
}

impl<'t, 'a> Walker<'t, 'a> {
    fn peek(&self) -> Option<&'t Tok<'a>> {
        self.toks.get(self.i)
    }

    fn peek_is(&self, text: &str) -> bool {
        self.peek().is_some_and(|t| t.text == text)
    }

    fn peek_ident(&self, word: &str) -> bool {
        self.peek()
            .is_some_and(|t| t.kind == Kind::Ident && t.text.eq_ignore_ascii_case(word))
    }

    fn bump(&mut self) -> Option<()> {
        (self.i < self.toks.len()).then(|| self.i += 1)
    }

    fn eat(&mut self, text: &str) -> Option<()> {
        self.peek_is(text).then(|| self.i += 1)
    }

    fn here(&self) -> usize {
        self.peek().map_or(0, |t| t.start)
    }

    fn mark(&mut self, e: &Expr, at: usize) {
        self.starts.insert(e as *const Expr as usize, at);
    }

    /// Skips a balanced group starting at the current opening token.
    fn skip_group(&mut self) -> Option<()> {
        let open = self.peek()?.text;
        let close = match open {
            "(" => ")",
            "[" => "]",
            "{" => "}",
            _ => return None,
        };
        let mut depth = 0usize;
        while let Some(t) = self.peek() {
            let text = t.text;
            let punct = t.kind == Kind::Punct;
            self.i += 1;
            if punct && text == open {
                depth += 1;
            } else if punct && text == close {
                depth -= 1;
                if depth == 0 {
                    return Some(());
                }
            }
        }
        None
    }

    fn skip_signs(&mut self) {
        while self.peek_is("+") || self.peek_is("-") {
            self.i += 1;
        }
    }

    /// `@ <time>` and `offset <duration>` in any order.
    fn modifiers(&mut self) -> Option<()> {
        loop {
            if self.peek_is("@") {
                self.bump()?;
                if self.peek_ident("start") || self.peek_ident("end") {
                    self.bump()?;
                    self.eat("(")?;
                    self.eat(")")?;
                } else {
                    self.skip_signs();
                    self.bump()?;
                }
            } else if self.peek_ident("offset") {
                self.bump()?;
                self.skip_signs();
                self.bump()?;
            } else {
                return Some(());
            }
        }
    }

    /// Metric name and/or `{...}` of a selector.
    fn selector_body(&mut self) -> Option<()> {
        if self.peek().is_some_and(|t| t.kind == Kind::Ident) {
            self.bump()?;
        }
        if self.peek_is("{") {
            self.skip_group()?;
        }
        Some(())
    }

    fn label_list(&mut self) -> Option<()> {
        if self.peek_is("(") {
            self.skip_group()?;
        }
        Some(())
    }

    fn expr(&mut self, e: &Expr) -> Option<()> {
        match e {
            Expr::NumberLiteral(_) => {
                let at = self.here();
                self.mark(e, at);
                self.skip_signs();
                self.bump()
            }
            Expr::StringLiteral(_) => {
                self.mark(e, self.here());
                self.bump()
            }
            Expr::VectorSelector(_) => {
                self.mark(e, self.here());
                self.selector_body()?;
                self.modifiers()
            }
            Expr::MatrixSelector(_) => {
                self.mark(e, self.here());
                self.selector_body()?;
                self.skip_group()?;
                self.modifiers()
            }
            Expr::Subquery(sq) => {
                self.mark(e, self.here());
                self.expr(&sq.expr)?;
                self.skip_group()?;
                self.modifiers()
            }
            Expr::Paren(p) => {
                self.mark(e, self.here());
                self.eat("(")?;
                self.expr(&p.expr)?;
                self.eat(")")
            }
            Expr::Unary(u) => {
                while self.peek_is("+") {
                    self.bump()?;
                }
                self.mark(e, self.here());
                self.eat("-")?;
                self.expr(&u.expr)
            }
            Expr::Binary(b) => {
                let at = self.here();
                self.mark(e, at);
                self.expr(&b.lhs)?;
                self.bump()?; // the operator
                if self.peek_ident("bool") {
                    self.bump()?;
                }
                if let Some(m) = &b.modifier {
                    if m.matching.is_some()
                        && (self.peek_ident("on") || self.peek_ident("ignoring"))
                    {
                        self.bump()?;
                        self.label_list()?;
                    }
                    if matches!(
                        m.card,
                        VectorMatchCardinality::ManyToOne(_) | VectorMatchCardinality::OneToMany(_)
                    ) && (self.peek_ident("group_left") || self.peek_ident("group_right"))
                    {
                        self.bump()?;
                        self.label_list()?;
                    }
                }
                while self.peek_ident("fill")
                    || self.peek_ident("fill_left")
                    || self.peek_ident("fill_right")
                {
                    self.bump()?;
                    self.label_list()?;
                }
                self.expr(&b.rhs)
            }
            Expr::Call(c) => {
                self.mark(e, self.here());
                self.bump()?;
                self.eat("(")?;
                for (i, a) in c.args.args.iter().enumerate() {
                    if i > 0 {
                        self.eat(",")?;
                    }
                    self.expr(a)?;
                }
                if self.peek_is(",") {
                    self.bump()?;
                }
                self.eat(")")
            }
            Expr::Aggregate(a) => {
                self.mark(e, self.here());
                self.bump()?;
                let grouping = |w: &Self| w.peek_ident("by") || w.peek_ident("without");
                if grouping(self) {
                    self.bump()?;
                    self.label_list()?;
                }
                self.eat("(")?;
                if let Some(p) = &a.param {
                    self.expr(p)?;
                    self.eat(",")?;
                }
                self.expr(&a.expr)?;
                if self.peek_is(",") {
                    self.bump()?;
                }
                self.eat(")")?;
                if grouping(self)
                    && matches!(
                        a.modifier,
                        Some(LabelModifier::Include(_) | LabelModifier::Exclude(_))
                    )
                {
                    self.bump()?;
                    self.label_list()?;
                }
                Some(())
            }
            Expr::Extension(_) => None,
        }
    }
}

/// Milliseconds since the epoch of an `@` modifier, resolving `start()` and
/// `end()` against the query's own start and end. Clamped to
/// ±[`super::MAX_MS`] so window arithmetic cannot overflow.
pub fn at_millis(at: &AtModifier, query_start: i64, query_end: i64) -> i64 {
    let t = match at {
        AtModifier::Start => query_start,
        AtModifier::End => query_end,
        AtModifier::At(t) => match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        },
    };
    t.clamp(-super::MAX_MS, super::MAX_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos_of_call(src: &str, name: &str) -> (usize, usize) {
        let q = crate::promql::Query::parse(src).unwrap();
        fn find<'e>(e: &'e Expr, name: &str) -> Option<&'e Expr> {
            match e {
                Expr::Call(c) if c.func.name == name => Some(e),
                Expr::Call(c) => c.args.args.iter().find_map(|a| find(a, name)),
                Expr::Aggregate(a) => find(&a.expr, name),
                Expr::Binary(b) => find(&b.lhs, name).or_else(|| find(&b.rhs, name)),
                Expr::Paren(p) => find(&p.expr, name),
                Expr::Unary(u) => find(&u.expr, name),
                Expr::Subquery(s) => find(&s.expr, name),
                _ => None,
            }
        }
        let e = find(q.expr(), name).unwrap();
        line_col(src, q.positions.of(e))
    }

    #[test]
    fn finds_nested_call_positions() {
        assert_eq!(pos_of_call("sum(sort(series))", "sort"), (1, 5));
        assert_eq!(
            pos_of_call(
                "sum by (job) (x) + on (a) group_left (b) rate(y[5m])",
                "rate"
            ),
            (1, 42)
        );
        assert_eq!(pos_of_call("1 - -abs(x)", "abs"), (1, 6));
        assert_eq!(
            pos_of_call("x offset 5m @ start() * \n  ceil(y)", "ceil"),
            (2, 3)
        );
    }

    #[test]
    fn lexical_errors_have_positions() {
        assert_eq!(locate_error("sum(rate(x[5m])", ""), Some((1, 4)));
        assert_eq!(locate_error("foo{a=\"b}", ""), Some((1, 7)));
        assert_eq!(locate_error("foo $", ""), Some((1, 5)));
        assert_eq!(locate_error("foo", ""), None);
        assert_eq!(
            locate_error("1 + fo(x)", "unknown function with name 'fo'"),
            Some((1, 5))
        );
    }
}
