//! Validation of `relabel_configs` and `metric_relabel_configs` rules into
//! [`RelabelConfig`]: Prometheus's defaults (`regex: (.*)`, `separator: ;`,
//! `replacement: $1`, `action: replace`) and its per-action rules about which
//! fields an action needs and which it forbids.
//!
//! Applying the rules to label sets is the scrape module's job; this file
//! only decides whether a rule is well-formed. Pure, no I/O.

use serde_saphyr::Location;

use super::raw::{RawRelabelConfig, S};
use super::types::{RelabelAction, RelabelConfig};
use super::validate::Cx;
use crate::model::{compile_anchored, is_valid_label_name};

const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REPLACEMENT: &str = "$1";

const ACTIONS: [(&str, RelabelAction); 11] = [
    ("replace", RelabelAction::Replace),
    ("keep", RelabelAction::Keep),
    ("drop", RelabelAction::Drop),
    ("keepequal", RelabelAction::KeepEqual),
    ("dropequal", RelabelAction::DropEqual),
    ("hashmod", RelabelAction::HashMod),
    ("labelmap", RelabelAction::LabelMap),
    ("labeldrop", RelabelAction::LabelDrop),
    ("labelkeep", RelabelAction::LabelKeep),
    ("lowercase", RelabelAction::Lowercase),
    ("uppercase", RelabelAction::Uppercase),
];

/// The action as written in YAML.
pub(crate) fn action_name(action: RelabelAction) -> &'static str {
    ACTIONS
        .iter()
        .find(|(_, a)| *a == action)
        .map(|(n, _)| *n)
        .unwrap_or("replace")
}

/// Parses an action name; like Prometheus, case does not matter.
fn parse_action(s: &str) -> Option<RelabelAction> {
    let lower = s.to_ascii_lowercase();
    ACTIONS.iter().find(|(n, _)| *n == lower).map(|(_, a)| *a)
}

/// Validates every rule of one list (`what` is `relabel_configs` or
/// `metric_relabel_configs`). Rules with errors are reported and left out.
pub(crate) fn build_relabel_configs(
    cx: &mut Cx<'_>,
    ctx: &str,
    what: &str,
    list: Option<&Vec<S<RawRelabelConfig>>>,
) -> Vec<RelabelConfig> {
    list.into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, r)| build_one(cx, &format!("{ctx}{what}[{i}]: "), r))
        .collect()
}

/// Validates one rule. `ctx` prefixes every message (`scrape job "x": relabel_configs[0]: `).
pub(crate) fn build_one(
    cx: &mut Cx<'_>,
    ctx: &str,
    rule: &S<RawRelabelConfig>,
) -> Option<RelabelConfig> {
    let raw = &rule.value;
    let at = rule.referenced;
    let before = cx.error_count();

    let action = match &raw.action {
        None => Some(RelabelAction::Replace),
        Some(a) => {
            let parsed = parse_action(a.value.trim());
            if parsed.is_none() {
                let names: Vec<&str> = ACTIONS.iter().map(|(n, _)| *n).collect();
                cx.err(
                    a.referenced,
                    format!(
                        "{ctx}unknown action {:?}: use one of {}",
                        a.value,
                        names.join(", ")
                    ),
                );
            }
            parsed
        }
    };

    let source_labels: Vec<String> = raw
        .source_labels
        .as_ref()
        .map(|l| l.value.iter().map(|s| s.value.clone()).collect())
        .unwrap_or_default();
    for l in raw.source_labels.iter().flat_map(|l| l.value.iter()) {
        if !is_valid_label_name(&l.value) {
            cx.err(
                l.referenced,
                format!(
                    "{ctx}source_labels: {:?} is not a valid label name: use [a-zA-Z_][a-zA-Z0-9_]*",
                    l.value
                ),
            );
        }
    }
    let separator = value_or(&raw.separator, DEFAULT_SEPARATOR);
    let regex_source = value_or(&raw.regex, DEFAULT_REGEX);
    let regex = match compile_anchored(&regex_source) {
        Ok(r) => Some(r),
        Err(e) => {
            cx.err(
                loc_or(&raw.regex, at),
                format!("{ctx}invalid regex {regex_source:?}: {}", regex_reason(&e)),
            );
            None
        }
    };
    let modulus = raw.modulus.as_ref().map(|m| m.value).unwrap_or(0);
    let target_label = value_or(&raw.target_label, "");
    let replacement = value_or(&raw.replacement, DEFAULT_REPLACEMENT);

    if let Some(action) = action {
        let name = action_name(action);
        use RelabelAction as A;
        let target_at = loc_or(&raw.target_label, at);

        if action == A::HashMod && modulus == 0 {
            cx.err(
                loc_or_any(raw.modulus.as_ref().map(|m| m.referenced), at),
                format!("{ctx}hashmod action requires modulus greater than 0"),
            );
        }
        let needs_target = matches!(
            action,
            A::Replace | A::HashMod | A::Lowercase | A::Uppercase | A::KeepEqual | A::DropEqual
        );
        if needs_target && target_label.is_empty() {
            cx.err(
                target_at,
                format!("{ctx}{name} action requires target_label"),
            );
        } else if action == A::Replace {
            let ok = is_valid_label_name(&target_label)
                || (target_label.contains('$') && is_label_template(&target_label));
            if !ok {
                cx.err(
                    target_at,
                    format!(
                        "{ctx}{target_label:?} is not a valid target_label for replace action: use a label name ([a-zA-Z_][a-zA-Z0-9_]*), optionally with $1 or ${{1}} references"
                    ),
                );
            }
        } else if needs_target && !is_valid_label_name(&target_label) {
            cx.err(
                target_at,
                format!(
                    "{ctx}{target_label:?} is not a valid target_label for {name} action: use a label name ([a-zA-Z_][a-zA-Z0-9_]*)"
                ),
            );
        }

        if matches!(action, A::Lowercase | A::Uppercase) && replacement != DEFAULT_REPLACEMENT {
            cx.err(
                loc_or(&raw.replacement, at),
                format!("{ctx}replacement cannot be set for {name} action: remove it"),
            );
        }
        if action == A::LabelMap && !is_label_template(&replacement) {
            cx.err(
                loc_or(&raw.replacement, at),
                format!(
                    "{ctx}{replacement:?} is not a valid replacement for labelmap action: use a label name, optionally with $1 or ${{1}} references"
                ),
            );
        }

        // Fields that differ from their defaults, in the order a rule lists them.
        let mut extra: Vec<(&str, Location)> = Vec::new();
        let mut note = |name: &'static str, set: bool, loc: Option<Location>| {
            if set {
                extra.push((name, loc.unwrap_or(at)));
            }
        };
        match action {
            A::KeepEqual | A::DropEqual => {
                note(
                    "separator",
                    separator != DEFAULT_SEPARATOR,
                    raw.separator.as_ref().map(|s| s.referenced),
                );
                note(
                    "regex",
                    regex_source != DEFAULT_REGEX,
                    raw.regex.as_ref().map(|s| s.referenced),
                );
                note(
                    "modulus",
                    modulus != 0,
                    raw.modulus.as_ref().map(|s| s.referenced),
                );
                note(
                    "replacement",
                    replacement != DEFAULT_REPLACEMENT,
                    raw.replacement.as_ref().map(|s| s.referenced),
                );
                report_extra(cx, ctx, &extra, name, "source_labels and target_label");
            }
            A::LabelDrop | A::LabelKeep => {
                note(
                    "source_labels",
                    raw.source_labels.is_some(),
                    raw.source_labels.as_ref().map(|s| s.referenced),
                );
                note(
                    "separator",
                    separator != DEFAULT_SEPARATOR,
                    raw.separator.as_ref().map(|s| s.referenced),
                );
                note(
                    "modulus",
                    modulus != 0,
                    raw.modulus.as_ref().map(|s| s.referenced),
                );
                note(
                    "target_label",
                    !target_label.is_empty(),
                    raw.target_label.as_ref().map(|s| s.referenced),
                );
                note(
                    "replacement",
                    replacement != DEFAULT_REPLACEMENT,
                    raw.replacement.as_ref().map(|s| s.referenced),
                );
                report_extra(cx, ctx, &extra, name, "regex");
            }
            _ => {}
        }
    }

    if cx.error_count() != before {
        return None;
    }
    Some(RelabelConfig {
        source_labels,
        separator,
        regex: regex?,
        regex_source,
        modulus,
        target_label,
        replacement,
        action: action?,
    })
}

fn report_extra(
    cx: &mut Cx<'_>,
    ctx: &str,
    extra: &[(&str, Location)],
    action: &str,
    allowed: &str,
) {
    if let Some((_, loc)) = extra.first() {
        let names: Vec<&str> = extra.iter().map(|(n, _)| *n).collect();
        cx.err(
            *loc,
            format!(
                "{ctx}{action} action takes only {allowed}: remove {}",
                names.join(", ")
            ),
        );
    }
}

fn value_or(v: &Option<S<String>>, default: &str) -> String {
    v.as_ref()
        .map(|s| s.value.clone())
        .unwrap_or_else(|| default.to_string())
}

fn loc_or(v: &Option<S<String>>, at: Location) -> Location {
    loc_or_any(v.as_ref().map(|s| s.referenced), at)
}

fn loc_or_any(v: Option<Location>, at: Location) -> Location {
    v.unwrap_or(at)
}

/// The useful line of a regex crate error (its Display spans several lines
/// and repeats the anchored pattern, which the user did not write).
pub(crate) fn regex_reason(e: &str) -> String {
    e.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.strip_prefix("error: ").unwrap_or(l).to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Whether `s` is a label name that may contain `$1` / `${name}` references,
/// as Prometheus allows for `replace`'s `target_label` and `labelmap`'s
/// `replacement`: it starts with a letter, `_` or a reference, and continues
/// with word characters and references.
pub(crate) fn is_label_template(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return false;
    }
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'$' {
            if b.get(i + 1) == Some(&b'{') {
                let Some(close) = b[i + 2..].iter().position(|&c| c == b'}') else {
                    return false;
                };
                let inner = &b[i + 2..i + 2 + close];
                if inner.is_empty() || !inner.iter().all(|&c| word(c)) {
                    return false;
                }
                i += close + 3;
            } else {
                let n = b[i + 1..].iter().take_while(|&&c| word(c)).count();
                if n == 0 {
                    return false;
                }
                i += n + 1;
            }
        } else if c.is_ascii_alphabetic() || c == b'_' || (i > 0 && c.is_ascii_digit()) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        for ok in [
            "a",
            "_x1",
            "$1",
            "${1}",
            "${1}_x",
            "pre_${name}",
            "a$1b",
            "$1$2",
        ] {
            assert!(is_label_template(ok), "{ok}");
        }
        for bad in ["", "1a", "a$", "${}", "${1", "a-b", "$-", "${a-b}"] {
            assert!(!is_label_template(bad), "{bad}");
        }
    }

    #[test]
    fn actions_parse_case_insensitively() {
        assert_eq!(parse_action("HashMod"), Some(RelabelAction::HashMod));
        assert_eq!(parse_action("keepequal"), Some(RelabelAction::KeepEqual));
        assert_eq!(parse_action("keep_equal"), None);
        for (name, a) in ACTIONS {
            assert_eq!(action_name(a), name);
        }
    }

    #[test]
    fn regex_reason_is_one_line() {
        let e = compile_anchored("(").unwrap_err();
        let r = regex_reason(&e);
        assert!(!r.contains('\n'));
        assert_eq!(r, "unclosed group");
    }
}
