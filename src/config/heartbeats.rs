//! `heartbeats:` — dead man's switches: each names a check that something
//! outside watchpost (a cron job, a backup script) pings over HTTP at least
//! once per `period`; `ingest::heartbeat` raises `HeartbeatMissed` when a
//! ping is more than `period + grace` late.
//!
//! ```yaml
//! heartbeats:
//!   - name: nightly-backup
//!     period: 1d
//!     grace: 1h
//!     labels: {severity: critical, team: storage}
//!     annotations: {runbook_url: https://wiki/backup}
//! ```
//!
//! This file owns the serde mirror and the pure validation of the section;
//! it opens no files.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::raw::{S, SpannedMap};
use super::validate::{Cx, duration};
use crate::model::{Labels, format_duration, is_valid_label_name};

/// Most heartbeats one config may declare (each costs a timer entry, a
/// series and a line of the state file).
pub const MAX_HEARTBEATS: usize = 10_000;
/// Longest heartbeat name: it is a URL path segment and a label value.
pub const MAX_HEARTBEAT_NAME: usize = 128;
/// Shortest period: below it, HTTP round trips alone would page.
pub const MIN_HEARTBEAT_PERIOD: Duration = Duration::from_secs(1);
/// Labels watchpost sets itself on `HeartbeatMissed`.
pub const HEARTBEAT_RESERVED_LABELS: [&str; 2] = ["alertname", "heartbeat"];

/// One item of `heartbeats:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeartbeat {
    pub name: Option<S<String>>,
    pub period: Option<S<String>>,
    pub grace: Option<S<String>>,
    pub labels: Option<S<SpannedMap<S<String>>>>,
    pub annotations: Option<S<SpannedMap<S<String>>>>,
}

/// One validated heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatConfig {
    /// What the check is called: the `<name>` of `POST
    /// /api/v1/heartbeat/<name>` and the `heartbeat` label of its alert.
    /// Letters, digits, `_`, `-` and `.`, at most 128 characters.
    pub name: String,
    /// How often a ping is expected (at least 1s).
    pub period: Duration,
    /// How much later than `period` a ping may come before
    /// `HeartbeatMissed` fires. Defaults to a tenth of the period, so a
    /// job that runs a little slow does not page.
    pub grace: Duration,
    /// Labels added to `HeartbeatMissed` (e.g. `severity`, `team`, used by
    /// routes). `severity` defaults to `warning`.
    pub labels: Labels,
    /// Annotations of `HeartbeatMissed`; `summary` and `description`
    /// default to a sentence naming the heartbeat and its last ping.
    pub annotations: BTreeMap<String, String>,
}

impl HeartbeatConfig {
    /// How long after a ping (or after start, when never pinged) the
    /// heartbeat counts as missed.
    pub fn deadline(&self) -> Duration {
        self.period.saturating_add(self.grace)
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_HEARTBEAT_NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Validates `heartbeats:`; every problem is reported with its position.
pub(crate) fn build(
    cx: &mut Cx<'_>,
    raw: Option<&S<Vec<S<RawHeartbeat>>>>,
) -> Vec<HeartbeatConfig> {
    let Some(list) = raw else {
        return Vec::new();
    };
    if list.value.len() > MAX_HEARTBEATS {
        cx.err(
            list.referenced,
            format!(
                "heartbeats: {} heartbeats declared, at most {MAX_HEARTBEATS} are allowed: merge or remove some",
                list.value.len()
            ),
        );
        return Vec::new();
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, item) in list.value.iter().enumerate() {
        let before = cx.error_count();
        if let Some(h) = build_one(cx, i, item)
            && cx.error_count() == before
        {
            if let Some(first) = seen.insert(h.name.clone(), i) {
                cx.err(
                    item.value
                        .name
                        .as_ref()
                        .map_or(item.referenced, |n| n.referenced),
                    format!(
                        "heartbeats: {} {:?}: the name is already used by heartbeat {}: names must be unique",
                        i + 1,
                        h.name,
                        first + 1
                    ),
                );
                continue;
            }
            out.push(h);
        }
    }
    out
}

fn build_one(cx: &mut Cx<'_>, i: usize, item: &S<RawHeartbeat>) -> Option<HeartbeatConfig> {
    let raw = &item.value;
    let Some(name) = &raw.name else {
        cx.err(
            item.referenced,
            format!(
                "heartbeats: {}: name is missing: give the check a name, e.g. name: nightly-backup",
                i + 1
            ),
        );
        return None;
    };
    if !valid_name(&name.value) {
        cx.err(
            name.referenced,
            format!(
                "heartbeats: {} {:?}: invalid name: use 1 to {MAX_HEARTBEAT_NAME} letters, digits, '_', '-' or '.' (it is a URL path segment)",
                i + 1,
                name.value
            ),
        );
    }
    let ctx = format!("heartbeats: {} {:?}: ", i + 1, name.value);
    let period = match &raw.period {
        None => {
            cx.err(
                item.referenced,
                format!(
                    "{ctx}period is missing: say how often a ping is expected, e.g. period: 1h"
                ),
            );
            None
        }
        Some(p) => match duration(cx, &ctx, "period", Some(p)) {
            Some(d) if d < MIN_HEARTBEAT_PERIOD => {
                cx.err(
                    p.referenced,
                    format!(
                        "{ctx}period ({}) is shorter than 1s: use a longer period",
                        p.value
                    ),
                );
                None
            }
            d => d,
        },
    };
    let grace = duration(cx, &ctx, "grace", raw.grace.as_ref());
    let mut labels: Vec<(String, String)> = Vec::new();
    for (k, v) in raw.labels.iter().flat_map(|m| m.value.0.iter()) {
        if !is_valid_label_name(&k.value) || k.value.starts_with("__") {
            cx.err(
                k.referenced,
                format!(
                    "{ctx}labels: {:?} is not a valid label name: use [a-zA-Z_][a-zA-Z0-9_]* not starting with __",
                    k.value
                ),
            );
        } else if HEARTBEAT_RESERVED_LABELS.contains(&k.value.as_str()) {
            cx.err(
                k.referenced,
                format!(
                    "{ctx}labels: {:?} is set by watchpost (alertname=HeartbeatMissed, heartbeat=<name>): remove it",
                    k.value
                ),
            );
        } else {
            labels.push((k.value.clone(), v.value.clone()));
        }
    }
    let mut annotations = BTreeMap::new();
    for (k, v) in raw.annotations.iter().flat_map(|m| m.value.0.iter()) {
        if k.value.is_empty() {
            cx.err(
                k.referenced,
                format!("{ctx}annotations: an annotation name is empty: name it"),
            );
        } else {
            annotations.insert(k.value.clone(), v.value.clone());
        }
    }
    let period = period?;
    Some(HeartbeatConfig {
        name: name.value.clone(),
        period,
        grace: grace.unwrap_or(period / 10),
        labels: Labels::from_pairs(labels),
        annotations,
    })
}

/// The section as `/api/v1/status/config` shows it (nothing in it is
/// secret).
pub(crate) fn view(list: &[HeartbeatConfig]) -> Option<Value> {
    if list.is_empty() {
        return None;
    }
    Some(Value::Array(
        list.iter()
            .map(|h| {
                let mut o = json!({
                    "name": h.name,
                    "period": format_duration(h.period),
                    "grace": format_duration(h.grace),
                });
                if !h.labels.is_empty() {
                    o["labels"] = Value::Object(
                        h.labels
                            .iter()
                            .map(|l| (l.name.clone(), Value::String(l.value.clone())))
                            .collect(),
                    );
                }
                if !h.annotations.is_empty() {
                    o["annotations"] = json!(h.annotations);
                }
                o
            })
            .collect(),
    ))
}
