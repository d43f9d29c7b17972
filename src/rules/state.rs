//! Alert state that survives restarts: one file per rule group under the
//! manager's state directory, holding every pending, firing and recently
//! resolved alert with its timers (active since, fired at, resolved at,
//! last sent, valid until, keep firing since).
//!
//! File format (`group-<16 hex digits>.state`, the digits a hash of the
//! group's file and name):
//!
//! ```text
//! watchpost-rule-state v1 crc32c=<8 hex digits> length=<bytes>\n
//! <JSON document of exactly `length` bytes>
//! ```
//!
//! The checksum (CRC-32C) covers the JSON bytes. A file is replaced
//! atomically: written to `<name>.tmp`, fsynced, renamed over the old one,
//! and the directory fsynced. A file that fails its checksum or does not
//! parse is renamed to `<name>.corrupt` and ignored, so one damaged file
//! costs that group's state, never the start.
//!
//! This module only moves state between memory and disk; what the state
//! means is `alerting.rs`'s business.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::AlertState;
use super::alerting::{AlertInstance, AlertingState};
use super::file::Rule;
use super::group::GroupRuntime;
use crate::model::{Labels, METRIC_NAME, Timestamp, fnv1a64, format_float};

const MAGIC: &str = "watchpost-rule-state";
const VERSION: &str = "v1";

/// Why state could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("rule state file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("rule state file {path} is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct SavedGroup {
    pub file: String,
    pub group: String,
    /// Evaluation time of the state (the group's last evaluation).
    pub saved_at: Option<Timestamp>,
    pub rules: Vec<SavedRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct SavedRule {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub expr: String,
    pub alerts: Vec<SavedAlert>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct SavedAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub state: String,
    /// As text, so NaN and infinities survive JSON.
    pub value: String,
    pub active_at: Timestamp,
    pub fired_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub last_sent_at: Option<Timestamp>,
    pub valid_until: Option<Timestamp>,
    pub keep_firing_since: Option<Timestamp>,
}

fn map(l: &Labels) -> BTreeMap<String, String> {
    l.iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

/// The file name of a group's state.
pub(crate) fn file_name(file: &str, group: &str) -> String {
    format!(
        "group-{:016x}.state",
        fnv1a64(&[file.as_bytes(), group.as_bytes()])
    )
}

impl SavedGroup {
    /// The alert state of `rt`.
    pub(crate) fn of(rt: &GroupRuntime) -> SavedGroup {
        let mut rules = Vec::new();
        for (def, r) in rt.def.rules.iter().zip(&rt.rules) {
            let Some(state) = &r.alerts else { continue };
            if state.active.is_empty() {
                continue;
            }
            let mut alerts: Vec<SavedAlert> = state
                .active
                .values()
                .map(|a| SavedAlert {
                    labels: map(&a.labels),
                    annotations: a.annotations.clone(),
                    state: a.state.as_str().to_string(),
                    value: format_float(a.value),
                    active_at: a.active_at,
                    fired_at: a.fired_at,
                    resolved_at: a.resolved_at,
                    last_sent_at: a.last_sent_at,
                    valid_until: a.valid_until,
                    keep_firing_since: a.keep_firing_since,
                })
                .collect();
            alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
            rules.push(SavedRule {
                name: def.name().to_string(),
                labels: map(def.labels()),
                expr: def.expr().text().to_string(),
                alerts,
            });
        }
        SavedGroup {
            file: rt.def.file.clone(),
            group: rt.def.name.clone(),
            saved_at: rt.last_eval,
            rules,
        }
    }

    /// Puts the saved alerts back into the rules of `rt` that have the same
    /// identity (name, labels, query). Returns how many alerts came back.
    /// The `ALERTS` series of restored alerts count as written, so an alert
    /// that cleared while watchpost was down gets its staleness markers.
    pub(crate) fn restore_into(self, rt: &mut GroupRuntime) -> usize {
        let mut restored = 0;
        let mut saved = self.rules;
        for (def, r) in rt.def.rules.iter().zip(rt.rules.iter_mut()) {
            let Rule::Alerting(_) = def else { continue };
            let labels = map(def.labels());
            let Some(i) = saved.iter().position(|s| {
                s.name == def.name() && s.labels == labels && s.expr == def.expr().text()
            }) else {
                continue;
            };
            let s = saved.swap_remove(i);
            let mut state = AlertingState::default();
            for a in s.alerts {
                let Some(alert) = a.into_instance() else {
                    continue;
                };
                if alert.state != AlertState::Inactive {
                    for (name, st) in [("ALERTS", Some(alert.state)), ("ALERTS_FOR_STATE", None)] {
                        let mut lb = alert.labels.builder();
                        lb.set(METRIC_NAME, name);
                        if let Some(st) = st {
                            lb.set("alertstate", st.as_str());
                        }
                        r.prev_series.insert(lb.into_labels());
                    }
                }
                state.active.insert(alert.labels.clone(), alert);
                restored += 1;
            }
            r.alerts = Some(state);
        }
        restored
    }
}

impl SavedAlert {
    fn into_instance(self) -> Option<AlertInstance> {
        let state = match self.state.as_str() {
            "pending" => AlertState::Pending,
            "firing" => AlertState::Firing,
            "inactive" => AlertState::Inactive,
            _ => return None,
        };
        let value = match self.value.as_str() {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().ok()?,
        };
        Some(AlertInstance {
            labels: Labels::from_pairs(self.labels),
            annotations: self.annotations,
            state,
            value,
            active_at: self.active_at,
            fired_at: self.fired_at,
            resolved_at: self.resolved_at,
            last_sent_at: self.last_sent_at,
            valid_until: self.valid_until,
            keep_firing_since: self.keep_firing_since,
        })
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Encodes a state file.
pub(crate) fn encode(g: &SavedGroup) -> Vec<u8> {
    // Serializing plain structs of strings and integers cannot fail.
    let body = serde_json::to_vec(g).unwrap_or_default();
    let mut out = format!(
        "{MAGIC} {VERSION} crc32c={:08x} length={}\n",
        crc32c::crc32c(&body),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Decodes a state file, checking its header and checksum.
pub(crate) fn decode(bytes: &[u8], path: &str) -> Result<SavedGroup, StateError> {
    let corrupt = |reason: &str| StateError::Corrupt {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt("no header line"))?;
    let header = std::str::from_utf8(&bytes[..nl]).map_err(|_| corrupt("header is not text"))?;
    let body = &bytes[nl + 1..];
    let mut parts = header.split(' ');
    if parts.next() != Some(MAGIC) {
        return Err(corrupt("not a watchpost rule state file"));
    }
    if parts.next() != Some(VERSION) {
        return Err(corrupt("unknown version"));
    }
    let crc = parts
        .next()
        .and_then(|p| p.strip_prefix("crc32c="))
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| corrupt("bad checksum field"))?;
    let len: usize = parts
        .next()
        .and_then(|p| p.strip_prefix("length="))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| corrupt("bad length field"))?;
    if body.len() != len {
        return Err(corrupt(&format!(
            "length {} does not match the header's {len} (truncated write?)",
            body.len()
        )));
    }
    if crc32c::crc32c(body) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    serde_json::from_slice(body).map_err(|e| corrupt(&format!("bad JSON: {e}")))
}

/// Writes a group's state atomically (temp file, fsync, rename, directory
/// fsync).
pub(crate) fn save(dir: &Path, g: &SavedGroup) -> Result<(), StateError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(file_name(&g.file, &g.group));
    let tmp = path.with_extension("state.tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&encode(g)).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// Removes a group's state file (the group is gone).
pub(crate) fn remove(dir: &Path, file: &str, group: &str) {
    let _ = std::fs::remove_file(dir.join(file_name(file, group)));
}

/// Reads every state file in `dir`, keyed by (file, group). Damaged files
/// are renamed aside and reported; a missing directory is an empty state.
pub(crate) fn load_all(dir: &Path) -> (HashMap<(String, String), SavedGroup>, Vec<StateError>) {
    let mut out = HashMap::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (out, errors),
        Err(e) => {
            errors.push(io(dir)(e));
            return (out, errors);
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "state"))
        .collect();
    paths.sort();
    for p in paths {
        let name = p.display().to_string();
        let res = std::fs::read(&p)
            .map_err(io(&p))
            .and_then(|b| decode(&b, &name));
        match res {
            Ok(g) => {
                out.insert((g.file.clone(), g.group.clone()), g);
            }
            Err(e) => {
                if matches!(e, StateError::Corrupt { .. }) {
                    let _ = std::fs::rename(&p, p.with_extension("corrupt"));
                }
                errors.push(e);
            }
        }
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SavedGroup {
        SavedGroup {
            file: "rules/a.yml".into(),
            group: "g".into(),
            saved_at: Some(60_000),
            rules: vec![SavedRule {
                name: "Down".into(),
                labels: BTreeMap::from([("severity".into(), "page".into())]),
                expr: "up == 0".into(),
                alerts: vec![SavedAlert {
                    labels: BTreeMap::from([("alertname".into(), "Down".into())]),
                    annotations: BTreeMap::new(),
                    state: "firing".into(),
                    value: "NaN".into(),
                    active_at: 0,
                    fired_at: Some(30_000),
                    resolved_at: None,
                    last_sent_at: Some(30_000),
                    valid_until: Some(270_000),
                    keep_firing_since: None,
                }],
            }],
        }
    }

    #[test]
    fn round_trips_and_detects_damage() {
        let g = sample();
        let bytes = encode(&g);
        assert!(bytes.starts_with(b"watchpost-rule-state v1 crc32c="));
        assert_eq!(decode(&bytes, "f").unwrap(), g);
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 3] ^= 1;
        let e = decode(&bad, "f").unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
        let e = decode(&bytes[..bytes.len() - 1], "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
        assert!(decode(b"something else\n{}", "f").is_err());
    }

    #[test]
    fn save_and_load_all_skip_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let g = sample();
        save(dir.path(), &g).unwrap();
        std::fs::write(dir.path().join("group-0000000000000000.state"), b"junk").unwrap();
        let (all, errors) = load_all(dir.path());
        assert_eq!(all.len(), 1);
        assert_eq!(all[&("rules/a.yml".to_string(), "g".to_string())], g);
        assert_eq!(errors.len(), 1);
        assert!(dir.path().join("group-0000000000000000.corrupt").exists());
        remove(dir.path(), "rules/a.yml", "g");
        assert!(load_all(dir.path()).0.is_empty());
        assert!(load_all(&dir.path().join("missing")).0.is_empty());
    }
}
