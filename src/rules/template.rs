//! The seam between alerting rules and the template language: label and
//! annotation templates are parsed once at rule load ([`AlertTemplate::parse`])
//! and expanded at every evaluation ([`AlertTemplate::expand`]) with the
//! data Prometheus gives them (`$labels`, `$value`, `$externalLabels`,
//! `$externalURL`).
//!
//! This is an interim subset, kept behind these two functions so the full
//! Go `text/template` engine (`crate::template`, being merged) replaces it
//! without touching the rules: it understands the data references above
//! (`{{ $labels.x }}`, `{{ .Labels.x }}`, `{{ index $labels "x" }}`,
//! `{{ $value }}`, ...) and trim markers, rejects undefined variables at
//! load like Go does, and renders anything else as visible error text, never
//! dropping an alert.

use crate::model::Labels;

/// A template that did not parse; the text is Go's shape
/// (`template: __alert_X:1: undefined variable "$label"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template: {name}:{line}: {message}")]
pub struct TemplateParseError {
    pub name: String,
    pub line: usize,
    pub message: String,
}

/// What a template is expanded with.
pub(crate) struct TemplateData<'a> {
    pub labels: &'a Labels,
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Label(String),
    ExternalLabel(String),
    Value,
    ExternalUrl,
    /// A construct the interim engine does not evaluate: expands to an
    /// error text naming it.
    Unsupported(String),
}

/// A parsed label or annotation template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AlertTemplate {
    name: String,
    pieces: Vec<Piece>,
}

const KNOWN_VARS: [&str; 4] = ["labels", "externalLabels", "externalURL", "value"];

impl AlertTemplate {
    /// Parses `text`, a label value or annotation of the alerting rule
    /// `alert_name`.
    pub(crate) fn parse(alert_name: &str, text: &str) -> Result<Self, TemplateParseError> {
        let name = format!("__alert_{alert_name}");
        if !text.contains("{{") {
            return Ok(AlertTemplate {
                name,
                pieces: vec![Piece::Text(text.to_string())],
            });
        }
        let mut pieces: Vec<Piece> = Vec::new();
        let mut rest = text;
        let mut consumed = 0;
        let mut trim_next = false;
        let err = |at: usize, message: String| TemplateParseError {
            name: name.clone(),
            line: 1 + text[..at].matches('\n').count(),
            message,
        };
        let declared = declared_variables(text);
        while let Some(open) = rest.find("{{") {
            let mut before = &rest[..open];
            if trim_next {
                before = before.trim_start();
            }
            let mut inner_start = open + 2;
            if rest[inner_start..].starts_with("- ") || rest[inner_start..].starts_with("-\n") {
                before = before.trim_end();
                inner_start += 1;
            }
            if !before.is_empty() {
                pieces.push(Piece::Text(before.to_string()));
            }
            let Some(close) = rest[inner_start..].find("}}") else {
                return Err(err(consumed + open, "unclosed action".to_string()));
            };
            let mut inner = &rest[inner_start..inner_start + close];
            trim_next = false;
            if inner.ends_with(" -") || inner.ends_with("\n-") {
                inner = &inner[..inner.len() - 1];
                trim_next = true;
            }
            for var in variables(inner) {
                if !KNOWN_VARS.contains(&var) && !declared.contains(&var) {
                    return Err(err(
                        consumed + open,
                        format!("undefined variable \"${var}\""),
                    ));
                }
            }
            if let Some(p) = action(inner.trim()) {
                pieces.push(p);
            }
            let next = inner_start + close + 2;
            consumed += next;
            rest = &rest[next..];
        }
        let tail = if trim_next { rest.trim_start() } else { rest };
        if !tail.is_empty() {
            pieces.push(Piece::Text(tail.to_string()));
        }
        Ok(AlertTemplate { name, pieces })
    }

    /// Renders the template. A construct that cannot be rendered becomes
    /// visible text in the output, as Prometheus does with template errors.
    pub(crate) fn expand(&self, data: &TemplateData<'_>) -> String {
        if let [Piece::Text(t)] = self.pieces.as_slice() {
            return t.clone();
        }
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Label(n) => out.push_str(data.labels.get_or_empty(n)),
                Piece::ExternalLabel(n) => out.push_str(data.external_labels.get_or_empty(n)),
                Piece::Value => out.push_str(&go_float(data.value)),
                Piece::ExternalUrl => out.push_str(data.external_url),
                Piece::Unsupported(a) => {
                    return format!(
                        "<error expanding template: error executing template {}: {{{{{a}}}}} is not supported by this build's template engine>",
                        self.name
                    );
                }
            }
        }
        out
    }
}

/// `$x` names used in an action (without the `$`).
fn variables(action: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_str: Option<char> = None;
    let b = action.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if let Some(q) = in_str {
            if c == '\\' && q == '"' {
                i += 2;
                continue;
            }
            if c == q {
                in_str = None;
            }
            i += 1;
            continue;
        }
        if c == '"' || c == '`' {
            in_str = Some(c);
        } else if c == '$' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j > start {
                out.push(&action[start..j]);
            }
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

/// Variables the template declares (`$x :=`), anywhere in it: a subset of
/// Go's scoping that never reports a declared variable as undefined.
fn declared_variables(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        let n = after
            .bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
            .count();
        let tail = after[n..].trim_start();
        if n > 0 && (tail.starts_with(":=") || tail.starts_with('=') && !tail.starts_with("==")) {
            out.push(&after[..n]);
        }
        rest = &after[n..];
    }
    out
}

/// The piece for one action's text, or None for a comment.
fn action(a: &str) -> Option<Piece> {
    if a.starts_with("/*") && a.ends_with("*/") {
        return None;
    }
    let field = |prefix: &str| {
        a.strip_prefix(prefix)
            .filter(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'))
            .map(str::to_string)
    };
    if let Some(n) = field("$labels.").or_else(|| field(".Labels.")) {
        return Some(Piece::Label(n));
    }
    if let Some(n) = field("$externalLabels.").or_else(|| field(".ExternalLabels.")) {
        return Some(Piece::ExternalLabel(n));
    }
    match a {
        "$value" | ".Value" => return Some(Piece::Value),
        "$externalURL" | ".ExternalURL" => return Some(Piece::ExternalUrl),
        _ => {}
    }
    let words: Vec<&str> = a.split_whitespace().collect();
    if let ["index", map, key] = words.as_slice()
        && let Some(k) = key
            .strip_prefix('"')
            .and_then(|k| k.strip_suffix('"'))
            .filter(|k| !k.contains('\\'))
    {
        match *map {
            "$labels" | ".Labels" => return Some(Piece::Label(k.to_string())),
            "$externalLabels" | ".ExternalLabels" => {
                return Some(Piece::ExternalLabel(k.to_string()));
            }
            _ => {}
        }
    }
    Some(Piece::Unsupported(a.to_string()))
}

/// A float as Go's `fmt` prints it with `%v`: the shortest representation
/// that round-trips, in exponent form when the decimal exponent is below -4
/// or at least 6 (`1e+06`, `1.234567e+06`, but `123456`).
pub(crate) fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let e = format!("{v:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let (sign, digits) = if exp < 0 { ('-', -exp) } else { ('+', exp) };
        return format!("{mant}e{sign}{digits:02}");
    }
    format!("{v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data<'a>(labels: &'a Labels, ext: &'a Labels) -> TemplateData<'a> {
        TemplateData {
            labels,
            external_labels: ext,
            external_url: "http://wp:9464",
            value: 0.5,
        }
    }

    #[test]
    fn expands_data_references() {
        let l = Labels::from_pairs([("instance", "a:1"), ("job", "node")]);
        let ext = Labels::from_pairs([("cluster", "eu1")]);
        let t = AlertTemplate::parse(
            "Down",
            "{{ $labels.instance }} of {{.Labels.job}} in {{ $externalLabels.cluster }} is {{ $value }} ({{ index $labels \"job\" }}) {{ $externalURL }}{{/* note */}} {{ $labels.missing }}.",
        )
        .unwrap();
        assert_eq!(
            t.expand(&data(&l, &ext)),
            "a:1 of node in eu1 is 0.5 (node) http://wp:9464 ."
        );
        let t = AlertTemplate::parse("Down", "a {{- $value -}}  b").unwrap();
        assert_eq!(t.expand(&data(&l, &ext)), "a0.5b");
    }

    #[test]
    fn undefined_variables_are_load_errors() {
        let e =
            AlertTemplate::parse("InstanceDown", "x\nInstance {{ $label.foo }} down").unwrap_err();
        assert_eq!(
            e.to_string(),
            "template: __alert_InstanceDown:2: undefined variable \"$label\""
        );
        assert!(AlertTemplate::parse("A", "{{ $x := 1 }}{{ $x }}").is_ok());
        assert!(AlertTemplate::parse("A", "{{ \"$nope\" }}").is_ok());
    }

    #[test]
    fn unsupported_constructs_are_visible_not_dropped() {
        let l = Labels::empty();
        let t = AlertTemplate::parse("A", "v={{ $value | humanize }}").unwrap();
        let out = t.expand(&data(&l, &l));
        assert!(out.starts_with("<error expanding template: "), "{out}");
        assert!(out.contains("__alert_A"), "{out}");
    }

    #[test]
    fn floats_print_like_go() {
        for (v, want) in [
            (1.0, "1"),
            (0.5, "0.5"),
            (100.0, "100"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123456789.0, "1.23456789e+08"),
            (999999.0, "999999"),
            (-2.5, "-2.5"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(go_float(v), want, "{v}");
        }
    }
}
