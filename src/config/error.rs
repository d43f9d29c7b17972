//! Config errors: one [`Diagnostic`] per problem, each pointing at
//! `file:line:col`, and the [`ConfigError`] that carries them.
//!
//! Also turns serde-saphyr's parse errors (YAML syntax, wrong types, unknown
//! keys) into diagnostics in the same voice as the validation errors, so a
//! user sees one style whatever went wrong. Owns no I/O.

use std::fmt;
use std::path::PathBuf;

use serde_saphyr::Location;

/// One problem in one config file, at a line and column (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it (e.g. `config/watchpost.yml`).
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{}: cannot read file", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file was read but is not a valid config. Every problem found is
    /// listed, in file and position order.
    #[error("{}", join(.0))]
    Invalid(Vec<Diagnostic>),
}

fn join(d: &[Diagnostic]) -> String {
    d.iter()
        .map(Diagnostic::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// One line per problem, each `file:line:col: message` (a read error
    /// has no position: `file: cannot read file: reason`).
    pub fn messages(&self) -> Vec<String> {
        match self {
            ConfigError::Read { path, source } => {
                vec![format!("{}: cannot read file: {source}", path.display())]
            }
            ConfigError::Invalid(d) => d.iter().map(Diagnostic::to_string).collect(),
        }
    }

    /// The positioned problems (empty for a read error).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid(d) => d,
        }
    }
}

/// A 1-based line and column (0 when unknown). serde-saphyr's
/// [`Location`] cannot be built outside that crate, and some positions here
/// are computed (the key of a refused section), so checks report these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: u64,
    pub column: u64,
}

impl From<Location> for Pos {
    fn from(l: Location) -> Self {
        Pos {
            line: l.line(),
            column: l.column(),
        }
    }
}

/// The position of the key `key` whose value starts at `value`: the
/// nearest `key:` before it, on the value's line or the lines above
/// (a block value starts on the line after its key). Falls back to `value`.
pub(crate) fn key_pos(source: &str, key: &str, value: Pos) -> Pos {
    let Ok(mut line) = usize::try_from(value.line) else {
        return value;
    };
    let lines: Vec<&str> = source.lines().collect();
    let mut before_col = usize::try_from(value.column).ok();
    // A key is at most a few lines above its value (comments, blank lines).
    for _ in 0..20 {
        let Some(text) = line.checked_sub(1).and_then(|i| lines.get(i)) else {
            break;
        };
        let chars: Vec<char> = text.chars().collect();
        let upto = before_col
            .map(|c| c.saturating_sub(1).min(chars.len()))
            .unwrap_or(chars.len());
        let hay: String = chars[..upto].iter().collect();
        if let Some(i) = find_key(&hay, key) {
            return Pos {
                line: line as u64,
                column: hay[..i].chars().count() as u64 + 1,
            };
        }
        line -= 1;
        before_col = None;
    }
    value
}

/// Byte offset of the last `key:` (optionally quoted, then the offset of
/// the quote) in `hay`.
fn find_key(hay: &str, key: &str) -> Option<usize> {
    let quoted_at = |i: usize| matches!(hay[..i].chars().next_back(), Some('"' | '\''));
    let found = hay.rmatch_indices(key).map(|(i, _)| i).find(|&i| {
        let before = hay[..i].chars().next_back();
        let word = |c: char| c.is_alphanumeric() || c == '_';
        let quoted = matches!(before, Some('"' | '\''));
        let start = if quoted { i - 1 } else { i };
        if hay[..start].chars().next_back().is_some_and(word) {
            return false;
        }
        let mut rest = &hay[i + key.len()..];
        if quoted {
            rest = rest.strip_prefix(['"', '\'']).unwrap_or("");
        }
        rest.trim_start().starts_with(':')
    })?;
    Some(if quoted_at(found) { found - 1 } else { found })
}

/// Collects diagnostics for one load, possibly across several files (the
/// main file and its `scrape_config_files`).
#[derive(Debug, Default)]
pub(crate) struct Diags {
    list: Vec<Diagnostic>,
}

impl Diags {
    pub(crate) fn push(&mut self, file: &str, pos: impl Into<Pos>, message: impl Into<String>) {
        self.list.push(diagnostic(file, pos.into(), message.into()));
    }

    pub(crate) fn push_diagnostic(&mut self, d: Diagnostic) {
        self.list.push(d);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The diagnostics ordered by file (in the order files were first
    /// reported) and then by position, so output reads top to bottom.
    pub(crate) fn into_sorted(self) -> Vec<Diagnostic> {
        let mut files: Vec<String> = Vec::new();
        for d in &self.list {
            if !files.contains(&d.file) {
                files.push(d.file.clone());
            }
        }
        let mut list = self.list;
        list.sort_by_key(|d| {
            (
                files
                    .iter()
                    .position(|f| *f == d.file)
                    .unwrap_or(usize::MAX),
                d.line,
                d.column,
            )
        });
        list.dedup();
        list
    }
}

fn diagnostic(file: &str, pos: Pos, message: String) -> Diagnostic {
    // A location serde-saphyr could not determine is line 0; point at the
    // start of the file rather than print a position that does not exist.
    let (line, column) = if pos.line == 0 {
        (1, 1)
    } else {
        (pos.line, pos.column.max(1))
    };
    Diagnostic {
        file: file.to_string(),
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
        message,
    }
}

/// A YAML or structural error from serde-saphyr as a diagnostic.
/// `source` is the text that was parsed; it is used to name the key an
/// error sits under, which serde itself does not report.
pub(crate) fn yaml_error(err: &serde_saphyr::Error, source: &str, file: &str) -> Diagnostic {
    use serde_saphyr::Error as E;
    let inner = err.without_snippet();
    let inner = match inner {
        E::AliasError { error, .. } => error.as_ref(),
        other => other,
    };
    let loc = inner
        .location()
        .or_else(|| err.location())
        .unwrap_or(Location::UNKNOWN);
    let key = key_before(source, loc);
    let value = value_at(source, loc);
    let under = |msg: String| match &key {
        Some(k) => format!("{k}: {msg}"),
        None => msg,
    };
    let message = match inner {
        E::SerdeUnknownField {
            field, expected, ..
        } => unknown_key_message(field, expected),
        E::SerdeMissingField { field, .. } => format!("missing required key {field:?}"),
        E::DuplicateMappingKey { key: Some(k), .. } => {
            format!("duplicate key {k:?}: each key may appear once in a mapping")
        }
        E::DuplicateMappingKey { key: None, .. } => {
            "duplicate key: each key may appear once in a mapping".to_string()
        }
        E::InvalidScalar { ty, .. } => under(format!(
            "invalid value{}: expected {}",
            value.map(|v| format!(" {v:?}")).unwrap_or_default(),
            friendly_type(ty)
        )),
        E::InvalidBooleanStrict { .. } => under(format!(
            "invalid value{}: expected true or false",
            value.map(|v| format!(" {v:?}")).unwrap_or_default()
        )),
        E::Unexpected { expected, .. } => under(format!("expected {}", friendly_type(expected))),
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => under(format!("expected {expected}, found {unexpected}")),
        E::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => under(format!("invalid value {unexpected}: expected {expected}")),
        E::MultipleDocuments { .. } => {
            "more than one YAML document (---) in the file: a config file holds exactly one"
                .to_string()
        }
        E::NullIntoString { .. } => under("expected a string, found null".to_string()),
        E::NonFiniteFloat { value, .. } => under(format!(
            "invalid value {value:?}: NaN and infinite numbers are not allowed here"
        )),
        E::ExternalMessage { msg, .. } => format!("yaml syntax error: {}", lower_first(msg)),
        E::Eof { .. } => "yaml syntax error: unexpected end of file".to_string(),
        other => {
            let m = serde_saphyr::MessageFormatter::format_message(
                &serde_saphyr::UserMessageFormatter,
                other,
            );
            format!("yaml error: {}", lower_first(&m))
        }
    };
    diagnostic(file, loc.into(), message)
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Words for serde-saphyr's type names.
fn friendly_type(ty: &str) -> String {
    match ty {
        "bool" | "boolean" => "true or false".to_string(),
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => {
            "a whole number of 0 or more".to_string()
        }
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".to_string(),
        "f32" | "f64" => "a number".to_string(),
        "string scalar" | "string" => "a string".to_string(),
        "sequence start" => "a list".to_string(),
        "mapping start" => "a mapping (key: value)".to_string(),
        other => other.to_string(),
    }
}

/// Keys that Prometheus accepts in some section but watchpost does not,
/// when they show up where the raw structs did not declare them. Returns
/// the explanation to add.
pub(crate) fn unsupported_prometheus_key(key: &str) -> Option<String> {
    if key.ends_with("_sd_configs") || key.ends_with("_sd_config") {
        return Some(format!(
            "{key} is not supported: watchpost discovers targets with static_configs, file_sd_configs and http_sd_configs; have a tool write file_sd target files or serve the targets to http_sd_configs"
        ));
    }
    let why = match key {
        "oauth2" => {
            "oauth2 is not supported: fetch the token outside watchpost and use authorization with credentials_file"
        }
        "http_headers" => {
            "http_headers is not supported: send credentials with authorization or basic_auth"
        }
        "no_proxy" | "proxy_from_environment" | "proxy_connect_header" => {
            return Some(format!(
                "{key} is not supported: set proxy_url explicitly (http or https proxies)"
            ));
        }
        "sigv4" | "azuread" | "google_iam" => {
            return Some(format!(
                "{key} is not supported: watchpost authenticates with basic_auth or authorization"
            ));
        }
        _ => return None,
    };
    Some(why.to_string())
}

/// The message for a key serde did not expect: a known Prometheus key that
/// watchpost rejects gets its explanation; anything else is named with the
/// closest valid key, if one is close.
fn unknown_key_message(field: &str, expected: &[&str]) -> String {
    if let Some(m) = unsupported_prometheus_key(field) {
        return m;
    }
    match closest(field, expected) {
        Some(s) => format!("unknown key {field:?}: did you mean {s:?}?"),
        None => format!(
            "unknown key {field:?}: not a setting at this level (check the spelling and the indentation)"
        ),
    }
}

/// The candidate within a small edit distance of `word`, if any.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.len() / 4).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The text of line `loc.line` (1-based).
fn line_text(source: &str, loc: Location) -> Option<&str> {
    if loc.line() == 0 {
        return None;
    }
    source
        .lines()
        .nth(usize::try_from(loc.line()).ok()?.checked_sub(1)?)
}

/// The mapping key written before the value at `loc` on the same line
/// (`  sample_limit: abc` -> `sample_limit`), if there is one.
fn key_before(source: &str, loc: Location) -> Option<String> {
    let line = line_text(source, loc)?;
    let before: String = line
        .chars()
        .take(usize::try_from(loc.column().saturating_sub(1)).ok()?)
        .collect();
    let mut before = before.trim_end().to_string();
    if before.trim().is_empty() || before.trim() == "-" {
        // A block value starts on the line after its key: take the closest
        // non-blank, non-comment line above.
        let idx = usize::try_from(loc.line()).ok()?.checked_sub(1)?;
        let above: Vec<&str> = source.lines().take(idx).collect();
        before = above
            .iter()
            .map(|l| l.split(" #").next().unwrap_or("").trim_end())
            .rfind(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))?
            .to_string();
    }
    let before = before.strip_suffix(':')?;
    let key = before
        .rsplit(|c: char| c.is_whitespace() || c == '{' || c == ',' || c == '-')
        .next()?
        .trim_matches(|c| c == '"' || c == '\'');
    if key.is_empty() {
        None
    } else {
        Some(key.to_string())
    }
}

/// The plain scalar written at `loc`, for quoting it back in a message.
fn value_at(source: &str, loc: Location) -> Option<String> {
    let line = line_text(source, loc)?;
    let rest: String = line
        .chars()
        .skip(usize::try_from(loc.column().saturating_sub(1)).ok()?)
        .collect();
    let rest = rest.split(" #").next().unwrap_or("");
    let v = rest.trim_end_matches([',', '}', ']', ' ']).trim();
    if v.is_empty() || v.len() > 80 {
        None
    } else {
        Some(v.trim_matches(|c| c == '"' || c == '\'').to_string())
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        scrape_interval: Option<String>,
        sample_limit: Option<u64>,
        honor_labels: Option<bool>,
        list: Option<Vec<String>>,
    }

    fn err(yaml: &str) -> String {
        let e = serde_saphyr::from_str::<Doc>(yaml).unwrap_err();
        yaml_error(&e, yaml, "w.yml").to_string()
    }

    #[test]
    fn structural_errors_name_key_value_and_position() {
        assert_eq!(
            err("sample_limit: abc\n"),
            "w.yml:1:15: sample_limit: invalid value \"abc\": expected a whole number of 0 or more"
        );
        assert_eq!(
            err("honor_labels: maybe\n"),
            "w.yml:1:15: honor_labels: invalid value \"maybe\": expected true or false"
        );
        assert_eq!(
            err("scrape_intervall: 1m\n"),
            "w.yml:1:1: unknown key \"scrape_intervall\": did you mean \"scrape_interval\"?"
        );
        assert_eq!(
            err("zzz: 1\n"),
            "w.yml:1:1: unknown key \"zzz\": not a setting at this level (check the spelling and the indentation)"
        );
        assert_eq!(err("list: {a: b}\n"), "w.yml:1:7: list: expected a list");
        assert_eq!(
            err("sample_limit: 1\nsample_limit: 2\n"),
            "w.yml:2:1: duplicate key \"sample_limit\": each key may appear once in a mapping"
        );
        assert!(err("list: [a\n").starts_with("w.yml:"));
        assert!(err("list: [a\n").contains("yaml syntax error"));
    }

    #[test]
    fn diagnostics_sort_by_file_then_position() {
        let locs: Vec<serde_saphyr::Spanned<String>> =
            serde_saphyr::from_str("- a\n- b\n- c\n").unwrap();
        let mut d = Diags::default();
        d.push("b.yml", locs[2].referenced, "third");
        d.push("a.yml", locs[0].referenced, "other file");
        d.push("b.yml", locs[1].referenced, "second");
        d.push("b.yml", Location::UNKNOWN, "unknown");
        let sorted: Vec<String> = d.into_sorted().iter().map(|d| d.to_string()).collect();
        assert_eq!(
            sorted,
            [
                "b.yml:1:1: unknown",
                "b.yml:2:3: second",
                "b.yml:3:3: third",
                "a.yml:1:3: other file"
            ]
        );
    }

    #[test]
    fn key_positions_are_found_above_block_values() {
        let src = "a:\n  list:\n    # note\n    - x\n  'quoted': [1]\n  other_list: 1\n";
        let at = |line, column| Pos { line, column };
        assert_eq!(key_pos(src, "list", at(4, 5)), at(2, 3));
        assert_eq!(key_pos(src, "quoted", at(5, 13)), at(5, 3));
        // "list" inside "other_list" is not the key "list".
        assert_eq!(key_pos(src, "list", at(6, 15)), at(2, 3));
        assert_eq!(key_pos(src, "missing", at(4, 5)), at(4, 5));
    }

    #[test]
    fn edit_distance_suggests_near_keys_only() {
        assert_eq!(
            closest("job_nmae", &["job_name", "scheme"]),
            Some("job_name")
        );
        assert_eq!(closest("banana", &["job_name", "scheme"]), None);
    }
}
