//! Alertmanager's matcher syntax: `foo="bar"`, `foo=~"a|b"`, unquoted
//! values, and the `{...}` list form, as used in `matchers`,
//! `source_matchers` / `target_matchers` and the API's `filter`.
//!
//! Alertmanager (0.27+, its default "fallback" mode) parses each input with
//! two parsers and keeps the classic parser's result whenever the classic
//! parser accepts the input; otherwise the newer UTF-8 parser's result;
//! otherwise the input is an error. Both are reimplemented here from their
//! documented behaviour so that every matcher string a user's
//! alertmanager.yml holds means the same thing in watchpost.
//!
//! Pure: no I/O. Regular expressions are anchored (`^(?:re)$`) and compiled
//! by [`Matcher::new`].

use crate::model::{MatchOp, Matcher};

/// Why a matcher string was rejected; the text is written to follow
/// `invalid matcher "...": `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MatcherSyntaxError(pub String);

/// Parses zero or more matchers (`a="b", c=~"d"`, optionally in braces).
/// The matchers come back in input order.
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, MatcherSyntaxError> {
    match classic::parse(input) {
        Ok(m) => Ok(m),
        Err(classic_err) => match utf8::parse(input) {
            Ok(m) => Ok(m),
            // The UTF-8 parser says where it stopped, which is the more
            // useful message unless the problem is the regex itself.
            Err(new_err) => Err(if classic_err.0.starts_with("invalid regular expression") {
                classic_err
            } else {
                new_err
            }),
        },
    }
}

/// Parses exactly one matcher (no braces), as Alertmanager's API does for
/// each `filter` parameter.
pub fn parse_matcher(input: &str) -> Result<Matcher, MatcherSyntaxError> {
    let t = input.trim();
    if t.starts_with('{') || t.ends_with('}') {
        return Err(MatcherSyntaxError(
            "unexpected open or close brace: write a single matcher such as name=\"value\""
                .to_string(),
        ));
    }
    let mut all = parse_matchers(input)?;
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => Err(MatcherSyntaxError(
            "no matcher: write name=\"value\"".to_string(),
        )),
        n => Err(MatcherSyntaxError(format!("expected 1 matcher, found {n}"))),
    }
}

fn build(op: MatchOp, name: &str, value: &str) -> Result<Matcher, MatcherSyntaxError> {
    Matcher::new(op, name, value).map_err(|e| {
        MatcherSyntaxError(format!(
            "invalid regular expression {:?}: {}",
            e.pattern,
            regex_reason(&e.reason)
        ))
    })
}

/// The cause line of a regex compile error (`unclosed group`), without the
/// echo of the anchored pattern the regex crate prints above it.
pub fn regex_reason(reason: &str) -> String {
    let last = reason
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("");
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

/// The classic parser (`pkg/labels`): split at commas outside quotes, each
/// piece is `name op value` where the name is a classic label name and the
/// value is the rest of the piece, optionally double-quoted.
mod classic {
    use super::*;

    pub(super) fn parse(input: &str) -> Result<Vec<Matcher>, MatcherSyntaxError> {
        let s = input.strip_prefix('{').unwrap_or(input);
        let s = s.strip_suffix('}').unwrap_or(s);
        let mut tokens = Vec::new();
        let mut token = String::new();
        let (mut in_quotes, mut escaped) = (false, false);
        for c in s.chars() {
            match c {
                ',' if !in_quotes => {
                    tokens.push(std::mem::take(&mut token));
                    continue;
                }
                ',' => {}
                '"' => {
                    if escaped {
                        escaped = false;
                    } else {
                        in_quotes = !in_quotes;
                    }
                }
                '\\' => escaped = !escaped,
                _ => escaped = false,
            }
            token.push(c);
        }
        // Only a trailing empty piece is dropped, as in Alertmanager.
        if !token.trim().is_empty() {
            tokens.push(token.trim().to_string());
        }
        tokens.iter().map(|t| parse_one(t)).collect()
    }

    fn parse_one(s: &str) -> Result<Matcher, MatcherSyntaxError> {
        let bad = || MatcherSyntaxError(format!("bad matcher format: {s}"));
        let t = s.trim_start();
        let name_len = t
            .char_indices()
            .take_while(|&(i, c)| {
                c == '_' || c == ':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
            })
            .count();
        if name_len == 0 {
            return Err(bad());
        }
        let (name, rest) = t.split_at(name_len);
        let rest = rest.trim_start();
        let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
            (MatchOp::Regex, r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, r)
        } else if let Some(r) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (MatchOp::Equal, r)
        } else {
            return Err(bad());
        };
        let raw = rest.trim();
        let (raw, mut expect_quote) = match raw.strip_prefix('"') {
            Some(r) => (r, true),
            None => (raw, false),
        };
        let unescaped_quote = || {
            MatcherSyntaxError(format!(
                "matcher value contains unescaped double quote: {}",
                rest.trim()
            ))
        };
        let mut value = String::with_capacity(raw.len());
        let mut escaped = false;
        for (i, c) in raw.char_indices() {
            let last = i + c.len_utf8() == raw.len();
            if escaped {
                escaped = false;
                match c {
                    'n' => value.push('\n'),
                    '"' | '\\' => value.push(c),
                    // A spurious escape keeps its backslash.
                    _ => {
                        value.push('\\');
                        value.push(c);
                    }
                }
                continue;
            }
            match c {
                '\\' if !last => escaped = true,
                '"' => {
                    if !expect_quote || !last {
                        return Err(unescaped_quote());
                    }
                    expect_quote = false;
                }
                _ => value.push(c),
            }
        }
        if expect_quote {
            return Err(unescaped_quote());
        }
        build(op, name, &value)
    }
}

/// The UTF-8 parser (`matcher/parse`): a tokenizer with quoted (Go string
/// syntax) and unquoted names and values, optional braces, and an optional
/// trailing comma.
mod utf8 {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    enum Tok {
        Open,
        Close,
        Comma,
        Op(MatchOp),
        Str(String),
    }

    fn reserved(c: char) -> bool {
        c.is_whitespace() || "{}!=~,\\\"'`".contains(c)
    }

    fn err(msg: impl Into<String>) -> MatcherSyntaxError {
        MatcherSyntaxError(msg.into())
    }

    fn lex(input: &str) -> Result<Vec<Tok>, MatcherSyntaxError> {
        let mut out = Vec::new();
        let mut it = input.char_indices().peekable();
        while let Some((i, c)) = it.next() {
            match c {
                c if c.is_whitespace() => {}
                '{' => out.push(Tok::Open),
                '}' => out.push(Tok::Close),
                ',' => out.push(Tok::Comma),
                '=' => {
                    if it.next_if(|&(_, c)| c == '~').is_some() {
                        out.push(Tok::Op(MatchOp::Regex));
                    } else {
                        out.push(Tok::Op(MatchOp::Equal));
                    }
                }
                '!' => match it.next() {
                    Some((_, '=')) => out.push(Tok::Op(MatchOp::NotEqual)),
                    Some((_, '~')) => out.push(Tok::Op(MatchOp::NotRegex)),
                    _ => return Err(err(format!("{}: expected != or !~", i + 1))),
                },
                '"' => {
                    let start = i;
                    let mut end = None;
                    let mut escaped = false;
                    for (j, d) in it.by_ref() {
                        if escaped {
                            escaped = false;
                        } else if d == '\\' {
                            escaped = true;
                        } else if d == '"' {
                            end = Some(j);
                            break;
                        }
                    }
                    let Some(end) = end else {
                        return Err(err(format!(
                            "{}: {}: missing end of quoted string",
                            start + 1,
                            &input[start..]
                        )));
                    };
                    let body = &input[start + 1..end];
                    out.push(Tok::Str(go_unquote(body).ok_or_else(|| {
                        err(format!(
                            "{}: {}: invalid input",
                            start + 1,
                            &input[start..=end]
                        ))
                    })?));
                }
                c if reserved(c) => {
                    return Err(err(format!("{}: {c}: unexpected input", i + 1)));
                }
                _ => {
                    let mut end = i + c.len_utf8();
                    while let Some(&(j, d)) = it.peek() {
                        if reserved(d) {
                            break;
                        }
                        end = j + d.len_utf8();
                        it.next();
                    }
                    out.push(Tok::Str(input[i..end].to_string()));
                }
            }
        }
        Ok(out)
    }

    pub(super) fn parse(input: &str) -> Result<Vec<Matcher>, MatcherSyntaxError> {
        let toks = lex(input)?;
        let mut i = 0;
        let braced = toks.first() == Some(&Tok::Open);
        if braced {
            i = 1;
        }
        let mut out = Vec::new();
        loop {
            match toks.get(i) {
                None => break,
                Some(Tok::Close) => break,
                Some(Tok::Str(name)) => {
                    let op = match toks.get(i + 1) {
                        Some(Tok::Op(op)) => *op,
                        _ => {
                            return Err(err(format!(
                                "expected an operator such as =, !=, =~ or !~ after {name:?}"
                            )));
                        }
                    };
                    let value = match toks.get(i + 2) {
                        Some(Tok::Str(v)) => v,
                        _ => return Err(err(format!("expected a label value after {name:?}{op}"))),
                    };
                    out.push(build(op, name, value)?);
                    i += 3;
                    match toks.get(i) {
                        Some(Tok::Comma) => i += 1,
                        None | Some(Tok::Close) => {}
                        Some(_) => return Err(err("expected a comma or close brace")),
                    }
                }
                Some(_) => return Err(err("expected a label name")),
            }
        }
        match (braced, toks.get(i)) {
            (true, Some(Tok::Close)) => i += 1,
            (true, _) => return Err(err("expected close brace")),
            (false, Some(Tok::Close)) => return Err(err("}: expected opening brace")),
            (false, _) => {}
        }
        if i != toks.len() {
            return Err(err("expected end of input"));
        }
        Ok(out)
    }

    /// The body of a Go double-quoted string literal, unescaped; None when
    /// Go's `strconv.Unquote` would reject it.
    fn go_unquote(body: &str) -> Option<String> {
        let mut out = String::with_capacity(body.len());
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\n' => return None,
                '\\' => {
                    let e = chars.next()?;
                    let hex = |n: usize, chars: &mut std::iter::Peekable<std::str::Chars>| {
                        let s: String = (0..n).filter_map(|_| chars.next()).collect();
                        if s.len() == n {
                            u32::from_str_radix(&s, 16).ok()
                        } else {
                            None
                        }
                    };
                    match e {
                        'a' => out.push('\u{7}'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'v' => out.push('\u{b}'),
                        '\\' | '"' => out.push(e),
                        'x' => out.push(char::from_u32(hex(2, &mut chars)?)?),
                        'u' => out.push(char::from_u32(hex(4, &mut chars)?)?),
                        'U' => out.push(char::from_u32(hex(8, &mut chars)?)?),
                        '0'..='7' => {
                            let mut v = e.to_digit(8)?;
                            for _ in 0..2 {
                                v = v * 8 + chars.next()?.to_digit(8)?;
                            }
                            out.push(char::from_u32(v).filter(|_| v < 256)?);
                        }
                        _ => return None,
                    }
                }
                c => out.push(c),
            }
        }
        Some(out)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn show(input: &str) -> String {
        match parse_matchers(input) {
            Ok(ms) => ms
                .iter()
                .map(|m| format!("{}{}{:?}", m.name, m.op, m.value))
                .collect::<Vec<_>>()
                .join(" "),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn accepts_what_alertmanager_accepts() {
        let cases = [
            ("foo=bar", r#"foo="bar""#),
            (r#"foo="bar""#, r#"foo="bar""#),
            (r#"{foo="bar"}"#, r#"foo="bar""#),
            (r#"foo=~"a|b""#, r#"foo=~"a|b""#),
            ("foo!=bar", r#"foo!="bar""#),
            ("foo !~ ba.*", r#"foo!~"ba.*""#),
            (r#"{a="1", b=~"x,y"}"#, r#"a="1" b=~"x,y""#),
            ("", ""),
            ("{}", ""),
            // Classic: the value is the rest of the piece, spaces included.
            ("foo=bar baz", r#"foo="bar baz""#),
            // Classic escapes: \n, \", \\ and a spurious escape kept.
            (r#"foo="a\"b\\c\nd\e""#, r#"foo="a\"b\\c\nd\\e""#),
            // Trailing comma: the classic parser drops an empty last piece.
            ("a=1,", r#"a="1""#),
            // Only the UTF-8 parser accepts a quoted name.
            (r#"{"service name"="x"}"#, r#"service name="x""#),
            (r#""a"="\u00e9""#, r#"a="é""#),
            (
                "severity=critical,team=~\"db|ops\"",
                r#"severity="critical" team=~"db|ops""#,
            ),
            ("a=", r#"a="""#),
            ("key:x=1", r#"key:x="1""#),
            // Only the UTF-8 parser accepts a name that is not a classic one.
            ("1a=b", r#"1a="b""#),
            // The classic parser strips one brace at either end on its own.
            ("{foo=bar", r#"foo="bar""#),
            ("foo=bar}", r#"foo="bar""#),
        ];
        for (input, want) in cases {
            assert_eq!(show(input), want, "input {input:?}");
        }
    }

    #[test]
    fn rejects_what_alertmanager_rejects() {
        for input in [
            "foo",
            "=bar",
            "foo=~(",
            r#"foo="bar"#,
            r#"foo=b"ar"#,
            "a=1,,b=2",
            r#"foo=="bar""#,
        ] {
            let got = show(input);
            assert!(got.starts_with("error: "), "{input:?} gave {got}");
        }
        assert!(show("foo=~(").contains("invalid regular expression \"(\""));
    }

    #[test]
    fn single_matcher_for_filters() {
        assert_eq!(parse_matcher("a=b").unwrap(), Matcher::equal("a", "b"));
        assert!(parse_matcher("{a=b}").is_err());
        assert!(parse_matcher("a=b,c=d").is_err());
        assert!(parse_matcher("").is_err());
    }

    #[test]
    fn regex_values_are_anchored() {
        let m = &parse_matchers("job=~api").unwrap()[0];
        assert!(m.matches("api") && !m.matches("api-2"));
    }
}
