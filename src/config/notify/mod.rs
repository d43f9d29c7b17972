//! The Alertmanager part of the config: `alertmanager.yml`'s shape, written
//! inline under `notify:` in watchpost.yml or kept in its own file named by
//! `notify_file:`, validated into [`NotifyConfig`].
//!
//! Data path: `config::validate` hands the parsed `notify:` section (or the
//! `notify_file:` path) here; this module parses, validates with
//! Alertmanager's rules and returns the typed config that `notify` (routing,
//! inhibition, time intervals) and `channels` (delivery) use. Errors carry
//! `file:line:col` of the file the section is written in (watchpost.yml for
//! the inline form, the notify file otherwise), and relative paths in a
//! notify file resolve against that file's directory.
//!
//! It owns the matcher syntax ([`parse_matchers`]) shared with the API. It
//! does not evaluate anything (no routing, no clocks) and reads no secrets:
//! `*_file` values are read by the channels when they send.

mod matchers;
pub(crate) mod raw;
mod types;
mod validate;

use std::path::Path;

use serde_saphyr::Spanned;

pub use matchers::{MatcherSyntaxError, parse_matcher, parse_matchers, regex_reason};
pub use types::*;
pub use validate::parse_go_duration;
pub(crate) use validate::{parse_cron, parse_location};

use crate::config::ConfigError;
use crate::config::error::{Diags, yaml_error};
use crate::config::redact::redact_value;
use crate::config::validate::Cx;
use raw::RawNotify;

/// Validates an inline `notify:` section of the config file `cx` checks.
/// `source` is that file's text, parsed again loosely to keep the section
/// as written for display.
pub(crate) fn load_inline(
    cx: &mut Cx<'_>,
    section: &Spanned<RawNotify>,
    source: &str,
) -> Option<NotifyConfig> {
    #[derive(serde::Deserialize)]
    struct Only {
        notify: Option<serde_json::Value>,
    }
    let mut shown = serde_saphyr::from_str::<Only>(source)
        .ok()
        .and_then(|o| o.notify)
        .unwrap_or(serde_json::Value::Null);
    redact_value(&mut shown, None);
    validate::build(cx, &section.value, section.referenced, None, shown)
}

/// Reads and validates the file `notify_file:` names (`at` is where the
/// key's value is, for a read error). The file's own errors are reported
/// with its path as written after resolving against the config's directory.
pub(crate) fn load_referenced_file(
    cx: &mut Cx<'_>,
    path: &Path,
    at: serde_saphyr::Location,
) -> Option<NotifyConfig> {
    let name = path.to_string_lossy().into_owned();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            cx.err(at, format!("notify_file: cannot read {name}: {e}"));
            return None;
        }
    };
    let raw: Option<RawNotify> = match serde_saphyr::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            cx.err_diagnostic(yaml_error(&e, &text, &name));
            return None;
        }
    };
    let mut shown: serde_json::Value = serde_saphyr::from_str(&text).unwrap_or_default();
    redact_value(&mut shown, None);
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut sub = Cx::new(&name, &text, &base, &mut *cx.diags);
    // An empty file has no route, which Alertmanager reports as such.
    let raw = raw.unwrap_or_default();
    let start = serde_saphyr::from_str::<Spanned<serde::de::IgnoredAny>>(&text)
        .map(|s| s.referenced)
        .unwrap_or(serde_saphyr::Location::UNKNOWN);
    let config = validate::build(&mut sub, &raw, start, Some(path.to_path_buf()), shown);
    let errors = sub.error_count();
    cx.add_errors(errors);
    config
}

/// Reads and validates a standalone `alertmanager.yml` (what `notify_file:`
/// names). Errors name the file as `path` is written; relative paths in it
/// resolve against its directory.
pub fn load_file(path: &Path) -> Result<NotifyConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new(""));
    let mut c = load_str(&text, &path.display().to_string(), base)?;
    c.path = Some(path.to_path_buf());
    Ok(c)
}

/// Validates the text of an `alertmanager.yml`. `name` is what errors show
/// as the file; relative paths resolve against `base_dir`.
pub fn load_str(yaml: &str, name: &str, base_dir: &Path) -> Result<NotifyConfig, ConfigError> {
    let raw: Option<RawNotify> = serde_saphyr::from_str(yaml)
        .map_err(|e| ConfigError::Invalid(vec![yaml_error(&e, yaml, name)]))?;
    let mut shown: serde_json::Value = serde_saphyr::from_str(yaml).unwrap_or_default();
    redact_value(&mut shown, None);
    let mut diags = Diags::default();
    let config = {
        let mut cx = Cx::new(name, yaml, base_dir, &mut diags);
        let start = serde_saphyr::from_str::<Spanned<serde::de::IgnoredAny>>(yaml)
            .map(|s| s.referenced)
            .unwrap_or(serde_saphyr::Location::UNKNOWN);
        validate::build(&mut cx, &raw.unwrap_or_default(), start, None, shown)
    };
    match config {
        Some(c) if diags.is_empty() => Ok(c),
        _ => Err(ConfigError::Invalid(diags.into_sorted())),
    }
}
