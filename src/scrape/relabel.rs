//! Relabeling: Prometheus's `relabel_configs` / `metric_relabel_configs`
//! rules applied to a label set.
//!
//! Sits twice on the scrape data path: on discovered targets (before a
//! scrape loop exists) and on every scraped series (before the appender).
//! The semantics follow Prometheus's relabel package action by action,
//! including Go's `Regexp.Expand` template rules, because users copy their
//! rules from prometheus.yml and expect the same label sets out.
//!
//! This module is pure: no I/O, no logging, no clock. It never validates the
//! rules themselves (that is the config loader's job); a rule that validation
//! would have rejected is applied as harmlessly as possible instead.

use std::sync::LazyLock;

use md5::{Digest, Md5};
use regex::{Captures, Regex};

use crate::config::{RelabelAction, RelabelConfig};
use crate::model::{Labels, LabelsBuilder, is_valid_label_name};

/// Applies `cfgs` in order to a copy of `labels`. Returns `None` when a rule
/// dropped the set (keep, drop, keepequal, dropequal).
pub fn process(labels: &Labels, cfgs: &[RelabelConfig]) -> Option<Labels> {
    if cfgs.is_empty() {
        return Some(labels.clone());
    }
    let mut b = labels.builder();
    if process_builder(&mut b, cfgs) {
        Some(b.into_labels())
    } else {
        None
    }
}

/// Applies `cfgs` in order to the labels held by `b`, editing them in place.
/// Returns false as soon as a rule drops the set; `b` is then left in an
/// unspecified intermediate state and should be discarded.
pub fn process_builder(b: &mut LabelsBuilder, cfgs: &[RelabelConfig]) -> bool {
    cfgs.iter().all(|cfg| apply(cfg, b))
}

/// One rule. Returns false when the set is dropped.
fn apply(cfg: &RelabelConfig, b: &mut LabelsBuilder) -> bool {
    // Missing source labels count as empty strings, so `[a, b]` with only b
    // set joins to ";b" (with the default separator).
    let mut val = String::new();
    for (i, name) in cfg.source_labels.iter().enumerate() {
        if i > 0 {
            val.push_str(&cfg.separator);
        }
        val.push_str(b.get(name).unwrap_or(""));
    }

    match cfg.action {
        RelabelAction::Drop => return !cfg.regex.is_match(&val),
        RelabelAction::Keep => return cfg.regex.is_match(&val),
        RelabelAction::DropEqual => return b.get(&cfg.target_label).unwrap_or("") != val,
        RelabelAction::KeepEqual => return b.get(&cfg.target_label).unwrap_or("") == val,
        RelabelAction::Replace => replace(cfg, &val, b),
        RelabelAction::Lowercase => {
            b.set(&cfg.target_label, go_to_lower(&val));
        }
        RelabelAction::Uppercase => {
            b.set(&cfg.target_label, go_to_upper(&val));
        }
        RelabelAction::HashMod => {
            // A zero modulus is rejected by config validation; should one get
            // here anyway, leaving the labels alone beats a division panic on
            // the scrape path.
            if let Some(m) = hashmod_value(&val).checked_rem(cfg.modulus) {
                b.set(&cfg.target_label, m.to_string());
            }
        }
        RelabelAction::LabelMap => {
            // Iterate over a snapshot: labels created by this rule must not be
            // mapped again by the same rule, as in Prometheus.
            let snapshot: Vec<(String, String)> = b
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            for (name, value) in snapshot {
                if let Some(caps) = cfg.regex.captures(&name) {
                    let mut new_name = String::new();
                    expand(&cfg.regex, &cfg.replacement, &caps, &mut new_name);
                    // Prometheus would store any expansion result; an invalid
                    // name would then be refused by every later stage, so it
                    // is skipped here instead of poisoning the set.
                    if is_valid_label_name(&new_name) {
                        b.set(&new_name, value);
                    }
                }
            }
        }
        RelabelAction::LabelDrop => {
            b.retain(|l| !cfg.regex.is_match(&l.name));
        }
        RelabelAction::LabelKeep => {
            b.retain(|l| cfg.regex.is_match(&l.name));
        }
    }
    true
}

fn replace(cfg: &RelabelConfig, val: &str, b: &mut LabelsBuilder) {
    // No match means no change at all (not even a delete).
    let Some(caps) = cfg.regex.captures(val) else {
        return;
    };
    let mut target = String::new();
    expand(&cfg.regex, &cfg.target_label, &caps, &mut target);
    if !is_valid_label_name(&target) {
        return;
    }
    let mut res = String::new();
    expand(&cfg.regex, &cfg.replacement, &caps, &mut res);
    if res.is_empty() {
        b.del(&target);
    } else {
        b.set(&target, res);
    }
}

/// The number hashmod takes the modulus of: MD5 of the joined source values,
/// of which Prometheus keeps the last 8 bytes read as a big-endian u64 (so
/// that shard assignments stay what older Prometheus versions computed).
pub fn hashmod_value(val: &str) -> u64 {
    let digest = Md5::digest(val.as_bytes());
    let mut low = [0u8; 8];
    low.copy_from_slice(&digest[8..16]);
    u64::from_be_bytes(low)
}

/// Appends `template` to `dst` with `$name`, `${name}` and `$$` expanded
/// against `caps`, exactly as Go's `Regexp.Expand` does:
/// - a name is the longest run of letters, digits and `_`, so `$1x` refers to
///   the group named `1x` (which is usually absent and expands to nothing);
/// - a name of ASCII digits without a leading zero is a group number;
/// - an unknown group, or a group that did not participate, expands to "";
/// - a `$` not followed by a valid name (or `${` without `}`) is copied as is.
pub fn expand(re: &Regex, template: &str, caps: &Captures<'_>, dst: &mut String) {
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        dst.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            dst.push('$');
            rest = after;
            continue;
        }
        let Some((name, after)) = extract_name(rest) else {
            dst.push('$');
            continue;
        };
        rest = after;
        let group = match group_number(name) {
            Some(n) => caps.get(n),
            None => {
                // Go resolves names through the regex's own names; a name
                // the regex does not define expands to nothing.
                if re.capture_names().any(|n| n == Some(name)) {
                    caps.name(name)
                } else {
                    None
                }
            }
        };
        if let Some(m) = group {
            dst.push_str(m.as_str());
        }
    }
    dst.push_str(rest);
}

/// Splits a leading `name` or `{name}` off `s` (the `$` already removed).
fn extract_name(s: &str) -> Option<(&str, &str)> {
    let (body, braced) = match s.strip_prefix('{') {
        Some(b) => (b, true),
        None => (s, false),
    };
    let len: usize = body
        .chars()
        .take_while(|&c| is_name_char(c))
        .map(char::len_utf8)
        .sum();
    if len == 0 {
        return None;
    }
    let name = &body[..len];
    let after = &body[len..];
    if braced {
        let after = after.strip_prefix('}')?;
        Some((name, after))
    } else {
        Some((name, after))
    }
}

/// Go's rule: ASCII digits only, no leading zero, below 1e8 while parsing.
fn group_number(name: &str) -> Option<usize> {
    let bytes = name.as_bytes();
    if bytes.len() > 1 && bytes[0] == b'0' {
        return None;
    }
    let mut num: usize = 0;
    for &c in bytes {
        if !c.is_ascii_digit() || num >= 100_000_000 {
            return None;
        }
        num = num * 10 + usize::from(c - b'0');
    }
    Some(num)
}

/// Go's `unicode.IsLetter` (category L) and `unicode.IsDigit` (category Nd).
/// Rust's `char::is_alphanumeric` is wider (it includes Nl, No and marks),
/// so non-ASCII characters are checked against the Unicode categories.
static NON_ASCII_NAME_CHAR: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[\p{L}\p{Nd}]$").ok());

fn is_name_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    let mut buf = [0u8; 4];
    match &*NON_ASCII_NAME_CHAR {
        Some(re) => re.is_match(c.encode_utf8(&mut buf)),
        None => c.is_alphanumeric(),
    }
}

/// Go's `strings.ToLower`: a per-character simple case mapping. Rust's
/// `str::to_lowercase` applies context rules (final sigma) Go does not, so
/// characters are mapped one by one. The only multi-character lowercase
/// mapping (U+0130) has the simple mapping `i`, its first character.
fn go_to_lower(s: &str) -> String {
    s.chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect()
}

/// Go's `strings.ToUpper`: per-character simple mapping. Characters whose
/// full uppercase form is several characters (`ß` -> `SS`) have no simple
/// mapping in Go and stay as they are.
fn go_to_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    /// A rule with Prometheus's defaults (`separator: ;`, `regex: (.*)`,
    /// `replacement: $1`, `action: replace`), adjusted by the closure.
    fn rule(edit: impl FnOnce(&mut RelabelConfig)) -> RelabelConfig {
        let mut c = RelabelConfig {
            source_labels: vec![],
            separator: ";".to_string(),
            regex: Regex::new("^(?s:(.*))$").unwrap(),
            regex_source: "(.*)".to_string(),
            modulus: 0,
            target_label: String::new(),
            replacement: "$1".to_string(),
            action: RelabelAction::Replace,
        };
        edit(&mut c);
        c
    }

    fn re(s: &str) -> Regex {
        Regex::new(&format!("^(?s:{s})$")).unwrap()
    }

    fn src(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn ls(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    struct Case {
        name: &'static str,
        input: Labels,
        rules: Vec<RelabelConfig>,
        want: Option<Labels>,
    }

    fn run(cases: Vec<Case>) {
        for c in cases {
            let got = process(&c.input, &c.rules);
            assert_eq!(got, c.want, "case {:?}", c.name);
            // The builder entry point must agree with the set entry point.
            let mut b = c.input.builder();
            let kept = process_builder(&mut b, &c.rules);
            assert_eq!(kept, c.want.is_some(), "builder case {:?}", c.name);
            if let Some(w) = &c.want {
                assert_eq!(&b.build(), w, "builder case {:?}", c.name);
            }
        }
    }

    #[test]
    fn replace_action() {
        run(vec![
            Case {
                name: "regex with group writes the target",
                input: ls(&[("a", "foo")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a"]);
                    c.regex = re("f(.*)");
                    c.target_label = "d".into();
                    c.replacement = "ch${1}-ch${1}".into();
                })],
                want: Some(ls(&[("a", "foo"), ("d", "choo-choo")])),
            },
            Case {
                name: "regex not matching changes nothing",
                input: ls(&[("a", "foo"), ("d", "keep")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a"]);
                    c.regex = re("x(.*)");
                    c.target_label = "d".into();
                    c.replacement = "".into();
                })],
                want: Some(ls(&[("a", "foo"), ("d", "keep")])),
            },
            Case {
                name: "missing source labels join as empty strings",
                input: ls(&[("b", "bar")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a", "b", "c"]);
                    c.target_label = "joined".into();
                })],
                want: Some(ls(&[("b", "bar"), ("joined", ";bar;")])),
            },
            Case {
                name: "custom separator",
                input: ls(&[("a", "1"), ("b", "2")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a", "b"]);
                    c.separator = "/".into();
                    c.regex = re("(.*)/(.*)");
                    c.target_label = "r".into();
                    c.replacement = "$2-$1".into();
                })],
                want: Some(ls(&[("a", "1"), ("b", "2"), ("r", "2-1")])),
            },
            Case {
                name: "empty replacement deletes the target",
                input: ls(&[("a", "foo"), ("b", "bar")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a"]);
                    c.target_label = "b".into();
                    c.replacement = "".into();
                })],
                want: Some(ls(&[("a", "foo")])),
            },
            Case {
                name: "empty source with default regex sets literal replacement",
                input: ls(&[("a", "foo")]),
                rules: vec![rule(|c| {
                    c.target_label = "env".into();
                    c.replacement = "prod".into();
                })],
                want: Some(ls(&[("a", "foo"), ("env", "prod")])),
            },
            Case {
                name: "$1 with no such group expands to nothing and deletes",
                input: ls(&[("a", "foo"), ("t", "old")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a"]);
                    c.regex = re("foo");
                    c.target_label = "t".into();
                    c.replacement = "$1".into();
                })],
                want: Some(ls(&[("a", "foo")])),
            },
            Case {
                name: "$1x names group 1x, which is empty",
                input: ls(&[("a", "foo")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a"]);
                    c.regex = re("(f)oo");
                    c.target_label = "t".into();
                    c.replacement = "$1x|${1}x".into();
                })],
                want: Some(ls(&[("a", "foo"), ("t", "|fx")])),
            },
            Case {
                name: "named groups, $$ and malformed references",
                input: ls(&[("a", "host:9100")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a"]);
                    c.regex = re("(?P<host>[^:]+):(?P<port>\\d+)");
                    c.target_label = "t".into();
                    c.replacement = "${port}$$-$host-${nope}-$-${}-${port".into();
                })],
                want: Some(ls(&[("a", "host:9100"), ("t", "9100$-host--$-${}-${port")])),
            },
            Case {
                name: "target label from a group",
                input: ls(&[("a", "some-name-value")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a"]);
                    c.regex = re("some-([^-]+)-([^,]+)");
                    c.target_label = "${1}".into();
                    c.replacement = "${2}".into();
                })],
                want: Some(ls(&[("a", "some-name-value"), ("name", "value")])),
            },
            Case {
                name: "invalid expanded target label changes nothing",
                input: ls(&[("a", "some-1name-value")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a"]);
                    c.regex = re("some-([^-]+)-([^,]+)");
                    c.target_label = "${1}".into();
                    c.replacement = "${2}".into();
                })],
                want: Some(ls(&[("a", "some-1name-value")])),
            },
            Case {
                name: "empty expanded target label changes nothing",
                input: ls(&[("a", "x")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a"]);
                    c.regex = re("(y?)x");
                    c.target_label = "$1".into();
                    c.replacement = "v".into();
                })],
                want: Some(ls(&[("a", "x")])),
            },
            Case {
                name: "dot matches newline",
                input: ls(&[("a", "foo\nbar")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a"]);
                    c.target_label = "b".into();
                })],
                want: Some(ls(&[("a", "foo\nbar"), ("b", "foo\nbar")])),
            },
            Case {
                name: "rules apply in order and see earlier results",
                input: ls(&[("a", "1")]),
                rules: vec![
                    rule(|c| {
                        c.source_labels = src(&["a"]);
                        c.target_label = "b".into();
                        c.replacement = "x$1".into();
                    }),
                    rule(|c| {
                        c.source_labels = src(&["b"]);
                        c.target_label = "c".into();
                        c.replacement = "${1}y".into();
                    }),
                ],
                want: Some(ls(&[("a", "1"), ("b", "x1"), ("c", "x1y")])),
            },
        ]);
    }

    #[test]
    fn keep_and_drop_actions() {
        run(vec![
            Case {
                name: "keep matching",
                input: ls(&[("a", "foo")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a"]);
                    c.regex = re("f.*");
                    c.action = RelabelAction::Keep;
                })],
                want: Some(ls(&[("a", "foo")])),
            },
            Case {
                name: "keep not matching drops",
                input: ls(&[("a", "foo")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a"]);
                    c.regex = re("o.*");
                    c.action = RelabelAction::Keep;
                })],
                want: None,
            },
            Case {
                name: "keep is anchored",
                input: ls(&[("a", "foo")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a"]);
                    c.regex = re("fo");
                    c.action = RelabelAction::Keep;
                })],
                want: None,
            },
            Case {
                name: "keep on a missing label matches the empty string",
                input: ls(&[("a", "foo")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["missing"]);
                    c.regex = re("");
                    c.action = RelabelAction::Keep;
                })],
                want: Some(ls(&[("a", "foo")])),
            },
            Case {
                name: "drop matching",
                input: ls(&[("a", "foo"), ("b", "bar")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a", "b"]);
                    c.regex = re("foo;bar");
                    c.action = RelabelAction::Drop;
                })],
                want: None,
            },
            Case {
                name: "drop not matching keeps",
                input: ls(&[("a", "foo")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a"]);
                    c.regex = re("bar");
                    c.action = RelabelAction::Drop;
                })],
                want: Some(ls(&[("a", "foo")])),
            },
            Case {
                name: "a drop stops later rules",
                input: ls(&[("a", "foo")]),
                rules: vec![
                    rule(|c| {
                        c.source_labels = src(&["a"]);
                        c.action = RelabelAction::Drop;
                    }),
                    rule(|c| {
                        c.target_label = "x".into();
                        c.replacement = "y".into();
                    }),
                ],
                want: None,
            },
        ]);
    }

    #[test]
    fn keepequal_and_dropequal_actions() {
        run(vec![
            Case {
                name: "keepequal equal keeps",
                input: ls(&[("__port", "9100"), ("port", "9100")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["__port"]);
                    c.target_label = "port".into();
                    c.action = RelabelAction::KeepEqual;
                })],
                want: Some(ls(&[("__port", "9100"), ("port", "9100")])),
            },
            Case {
                name: "keepequal different drops",
                input: ls(&[("__port", "9100"), ("port", "9101")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["__port"]);
                    c.target_label = "port".into();
                    c.action = RelabelAction::KeepEqual;
                })],
                want: None,
            },
            Case {
                name: "keepequal both missing keeps",
                input: ls(&[("a", "1")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["x"]);
                    c.target_label = "y".into();
                    c.action = RelabelAction::KeepEqual;
                })],
                want: Some(ls(&[("a", "1")])),
            },
            Case {
                name: "dropequal equal drops",
                input: ls(&[("a", "1"), ("b", "1")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a"]);
                    c.target_label = "b".into();
                    c.action = RelabelAction::DropEqual;
                })],
                want: None,
            },
            Case {
                name: "dropequal different keeps",
                input: ls(&[("a", "1"), ("b", "2")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a"]);
                    c.target_label = "b".into();
                    c.action = RelabelAction::DropEqual;
                })],
                want: Some(ls(&[("a", "1"), ("b", "2")])),
            },
        ]);
    }

    #[test]
    fn hashmod_action() {
        // Expected values computed independently with Python:
        //   d = hashlib.md5(s.encode()).digest()
        //   int.from_bytes(d[8:], "big") % modulus
        // "baz" % 1000 = 976 is also the value in Prometheus's own relabel
        // test table.
        let cases: &[(&str, u64, &str)] = &[
            ("baz", 1000, "976"),
            ("foo", 1000, "696"),
            ("", 1000, "958"),
            ("foo;bar", 7, "6"),
            ("10.0.0.1:9100", 3, "2"),
        ];
        for &(value, modulus, want) in cases {
            let input = ls(&[("a", value)]);
            let r = rule(|c| {
                c.source_labels = src(&["a"]);
                c.target_label = "shard".into();
                c.modulus = modulus;
                c.action = RelabelAction::HashMod;
            });
            let got = process(&input, &[r]).unwrap();
            assert_eq!(
                got.get("shard"),
                Some(want),
                "hashmod({value:?}) % {modulus}"
            );
        }
        // Joined source values: "foo" and "bar" with ";" hash as "foo;bar".
        let input = ls(&[("a", "foo"), ("b", "bar")]);
        let r = rule(|c| {
            c.source_labels = src(&["a", "b"]);
            c.target_label = "shard".into();
            c.modulus = 7;
            c.action = RelabelAction::HashMod;
        });
        assert_eq!(process(&input, &[r]).unwrap().get("shard"), Some("6"));
        // The raw value, from the same Python expression without the modulus.
        assert_eq!(hashmod_value("foo"), 17145033699835028696);
        // A zero modulus (rejected by config validation) leaves labels alone.
        let r = rule(|c| {
            c.source_labels = src(&["a"]);
            c.target_label = "shard".into();
            c.action = RelabelAction::HashMod;
        });
        assert_eq!(process(&input, &[r]), Some(input.clone()));
    }

    #[test]
    fn labelmap_action() {
        run(vec![
            Case {
                name: "map with replacement",
                input: ls(&[("a", "foo"), ("b1", "bar"), ("b2", "baz")]),
                rules: vec![rule(|c| {
                    c.regex = re("(b.*)");
                    c.replacement = "bar_${1}".into();
                    c.action = RelabelAction::LabelMap;
                })],
                want: Some(ls(&[
                    ("a", "foo"),
                    ("b1", "bar"),
                    ("b2", "baz"),
                    ("bar_b1", "bar"),
                    ("bar_b2", "baz"),
                ])),
            },
            Case {
                name: "meta labels to plain labels",
                input: ls(&[
                    ("__meta_my_bar", "aaa"),
                    ("__meta_my_baz", "bbb"),
                    ("__meta_other", "ccc"),
                ]),
                rules: vec![rule(|c| {
                    c.regex = re("__meta_(my.*)");
                    c.action = RelabelAction::LabelMap;
                })],
                want: Some(ls(&[
                    ("__meta_my_bar", "aaa"),
                    ("__meta_my_baz", "bbb"),
                    ("__meta_other", "ccc"),
                    ("my_bar", "aaa"),
                    ("my_baz", "bbb"),
                ])),
            },
            Case {
                name: "labels created by the rule are not mapped again",
                input: ls(&[("a", "1")]),
                rules: vec![rule(|c| {
                    c.regex = re("(.*)");
                    c.replacement = "${1}_x".into();
                    c.action = RelabelAction::LabelMap;
                })],
                want: Some(ls(&[("a", "1"), ("a_x", "1")])),
            },
            Case {
                name: "map onto an existing label overwrites it",
                input: ls(&[("__meta_job", "from-sd"), ("job", "static")]),
                rules: vec![rule(|c| {
                    c.regex = re("__meta_(.*)");
                    c.action = RelabelAction::LabelMap;
                })],
                want: Some(ls(&[("__meta_job", "from-sd"), ("job", "from-sd")])),
            },
        ]);
    }

    #[test]
    fn labeldrop_and_labelkeep_actions() {
        run(vec![
            Case {
                name: "labeldrop",
                input: ls(&[("a", "foo"), ("b1", "bar"), ("b2", "baz")]),
                rules: vec![rule(|c| {
                    c.regex = re("b.*");
                    c.action = RelabelAction::LabelDrop;
                })],
                want: Some(ls(&[("a", "foo")])),
            },
            Case {
                name: "labeldrop is anchored",
                input: ls(&[("a", "foo"), ("ab", "bar")]),
                rules: vec![rule(|c| {
                    c.regex = re("b");
                    c.action = RelabelAction::LabelDrop;
                })],
                want: Some(ls(&[("a", "foo"), ("ab", "bar")])),
            },
            Case {
                name: "labelkeep",
                input: ls(&[("a", "foo"), ("b1", "bar"), ("b2", "baz")]),
                rules: vec![rule(|c| {
                    c.regex = re("b.*");
                    c.action = RelabelAction::LabelKeep;
                })],
                want: Some(ls(&[("b1", "bar"), ("b2", "baz")])),
            },
            Case {
                name: "labelkeep of nothing leaves an empty set, not a drop",
                input: ls(&[("a", "foo")]),
                rules: vec![rule(|c| {
                    c.regex = re("zzz");
                    c.action = RelabelAction::LabelKeep;
                })],
                want: Some(Labels::empty()),
            },
        ]);
    }

    #[test]
    fn case_actions() {
        run(vec![
            Case {
                name: "lowercase joined values",
                input: ls(&[("a", "FoO"), ("b", "BaR")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a", "b"]);
                    c.target_label = "low".into();
                    c.action = RelabelAction::Lowercase;
                })],
                want: Some(ls(&[("a", "FoO"), ("b", "BaR"), ("low", "foo;bar")])),
            },
            Case {
                name: "uppercase",
                input: ls(&[("a", "foo")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["a"]);
                    c.target_label = "up".into();
                    c.action = RelabelAction::Uppercase;
                })],
                want: Some(ls(&[("a", "foo"), ("up", "FOO")])),
            },
            Case {
                name: "lowercase of nothing deletes the target",
                input: ls(&[("t", "x")]),
                rules: vec![rule(|c| {
                    c.source_labels = src(&["missing"]);
                    c.target_label = "t".into();
                    c.action = RelabelAction::Lowercase;
                })],
                want: Some(Labels::empty()),
            },
            Case {
                // Go maps character by character: final sigma stays σ and
                // ß has no single-character uppercase, so it stays ß.
                name: "go case mapping rules",
                input: ls(&[("a", "ΟΔΟΣ"), ("b", "straße")]),
                rules: vec![
                    rule(|c| {
                        c.source_labels = src(&["a"]);
                        c.target_label = "low".into();
                        c.action = RelabelAction::Lowercase;
                    }),
                    rule(|c| {
                        c.source_labels = src(&["b"]);
                        c.target_label = "up".into();
                        c.action = RelabelAction::Uppercase;
                    }),
                ],
                want: Some(ls(&[
                    ("a", "ΟΔΟΣ"),
                    ("b", "straße"),
                    ("low", "οδοσ"),
                    ("up", "STRAßE"),
                ])),
            },
        ]);
    }

    #[test]
    fn expand_follows_go() {
        let r = Regex::new("^(?:(a)(?P<n>b)?(c)?)$").unwrap();
        let caps = r.captures("a").unwrap();
        let cases: &[(&str, &str)] = &[
            ("$1", "a"),
            ("${1}", "a"),
            ("$1x", ""),
            ("${1}x", "ax"),
            ("$2|$3|$n|${n}", "|||"),
            ("$0", "a"),
            ("$01", ""),
            ("$$1", "$1"),
            ("$", "$"),
            ("a$-b", "a$-b"),
            ("${1", "${1"),
            ("$9999999999", ""),
            ("$é", ""),
            ("plain", "plain"),
        ];
        for &(template, want) in cases {
            let mut out = String::new();
            expand(&r, template, &caps, &mut out);
            assert_eq!(out, want, "template {template:?}");
        }
    }
}
