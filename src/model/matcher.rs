//! Label matchers (`=`, `!=`, `=~`, `!~`) with Prometheus's fully anchored
//! regular expressions.

use std::fmt;

use regex::Regex;

/// The comparison a matcher applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        })
    }
}

/// A matcher could not be built.
#[derive(Debug, thiserror::Error)]
#[error("invalid regular expression {pattern:?} for label {name:?}: {reason}")]
pub struct MatcherError {
    pub name: String,
    pub pattern: String,
    pub reason: String,
}

/// One label matcher. A missing label matches as the empty string, as in
/// Prometheus (`{a=""}` selects series without `a`).
#[derive(Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    re: Option<Regex>,
}

impl Matcher {
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let name = name.into();
        let value = value.into();
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(compile_anchored(&value).map_err(|reason| MatcherError {
                    name: name.clone(),
                    pattern: value.clone(),
                    reason,
                })?)
            }
            _ => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            re,
        })
    }

    /// `name="value"`, which cannot fail.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            re: None,
        }
    }

    /// Whether the value `v` (empty when the label is absent) matches.
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Equal => self.value == v,
            MatchOp::NotEqual => self.value != v,
            MatchOp::Regex => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// Whether this matcher matches the empty string, i.e. also selects
    /// series that lack the label entirely.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// Converts a matcher from the PromQL parser's AST.
    pub fn from_promql(m: &promql_parser::label::Matcher) -> Result<Self, MatcherError> {
        use promql_parser::label::MatchOp as P;
        let op = match m.op {
            P::Equal => MatchOp::Equal,
            P::NotEqual => MatchOp::NotEqual,
            P::Re(_) => MatchOp::Regex,
            P::NotRe(_) => MatchOp::NotRegex,
        };
        Matcher::new(op, m.name.clone(), m.value.clone())
    }
}

/// Compiles `pattern` anchored at both ends, as Prometheus does. Go's RE2
/// treats a `{` that does not start a valid repetition as a literal; Rust's
/// regex rejects it, so such braces are escaped and compilation retried.
pub fn compile_anchored(pattern: &str) -> Result<Regex, String> {
    let anchored = format!("^(?s:{pattern})$");
    match Regex::new(&anchored) {
        Ok(r) => Ok(r),
        Err(first) => {
            let escaped = escape_literal_braces(pattern);
            Regex::new(&format!("^(?s:{escaped})$")).map_err(|_| first.to_string())
        }
    }
}

fn escape_literal_braces(p: &str) -> String {
    let b = p.as_bytes();
    let mut out = String::with_capacity(p.len() + 4);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' && i + 1 < b.len() {
            out.push_str(&p[i..i + 2]);
            i += 2;
            continue;
        }
        if c == b'{' {
            // A valid repetition is {n}, {n,} or {n,m}.
            let rest = &p[i + 1..];
            let valid = rest.find('}').is_some_and(|end| {
                let inner = &rest[..end];
                !inner.is_empty()
                    && inner.split(',').count() <= 2
                    && inner.split(',').enumerate().all(|(k, part)| {
                        (k == 1 && part.is_empty())
                            || part.bytes().all(|d| d.is_ascii_digit()) && !part.is_empty()
                    })
            });
            if !valid {
                out.push_str("\\{");
                i += 1;
                continue;
            }
        }
        if c == b'}' && !out.ends_with(|ch: char| ch.is_ascii_digit() || ch == ',') {
            out.push_str("\\}");
            i += 1;
            continue;
        }
        let ch = p[i..].chars().next().unwrap_or('\u{FFFD}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op, self.value)
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_anchored() {
        let m = Matcher::new(MatchOp::Regex, "job", "api").unwrap();
        assert!(m.matches("api"));
        assert!(!m.matches("api-server"));
        let m = Matcher::new(MatchOp::NotRegex, "job", "a.*").unwrap();
        assert!(!m.matches("abc"));
        assert!(m.matches("b"));
    }

    #[test]
    fn empty_value_means_absent() {
        assert!(Matcher::equal("x", "").matches_empty());
        assert!(!Matcher::equal("x", "1").matches_empty());
    }

    #[test]
    fn literal_braces_like_go() {
        let m = Matcher::new(MatchOp::Regex, "x", "a{b}c").unwrap();
        assert!(m.matches("a{b}c"));
        let m = Matcher::new(MatchOp::Regex, "x", "a{2}").unwrap();
        assert!(m.matches("aa"));
    }

    #[test]
    fn bad_regex_is_an_error() {
        assert!(Matcher::new(MatchOp::Regex, "x", "(").is_err());
    }
}
