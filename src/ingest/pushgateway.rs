//! The Pushgateway: groups of pushed metrics keyed by their grouping labels
//! (`job` plus the `/<label>/<value>` pairs of the URL), with Pushgateway's
//! semantics, persisted, and fed into storage.
//!
//! Semantics (those of prometheus/pushgateway 1.x with its default
//! consistency check):
//! - `PUT` replaces every metric family of the group, `POST` only the
//!   families it pushes, `DELETE` removes the group;
//! - grouping labels override labels of the same name in the body; labels
//!   with empty values are absent (Prometheus's `honor_labels: true` would
//!   give them the scrape target's value; there is no target here);
//! - every group carries `push_time_seconds` (last successful change) and
//!   `push_failure_time_seconds` (last refused push that got past parsing,
//!   0 until one happens);
//! - a body that does not parse is refused with its line and column and
//!   changes nothing; a body that parses but is invalid (timestamps, a
//!   family whose type differs from the same family in another group, a
//!   series twice, more than `max_series_per_group`) changes nothing but
//!   the group's `push_failure_time_seconds`; a push over a per-request
//!   bound (body size, samples, number of groups) changes nothing at all.
//!
//! Storage sees every group as Prometheus scraping a Pushgateway would:
//! each group's current samples are appended at the push and again on
//! every [`PushStore::flush`] (the app calls it on the global scrape
//! interval), and series that a push or delete removes get a staleness
//! marker at once. The groups live in `push/groups.json` under the storage
//! path: a checksummed header line and JSON, written to a temporary file,
//! fsync'd and renamed over the old one before a push is acknowledged.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::config::PushConfig;
use crate::model::{Labels, ScrapeEvent, ScrapeHook, Timestamp, stale_nan};
use crate::scrape::parse::{Format, ParseError, Parser};
use crate::storage::{AppendError, Storage};
use crate::telemetry::PushMetrics;

/// The metric recording the last successful change of a group.
pub const PUSH_TIME: &str = "push_time_seconds";
/// The metric recording the last refused push to a group.
pub const PUSH_FAILURE_TIME: &str = "push_failure_time_seconds";
const PUSH_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway succeeded.";
const PUSH_FAILURE_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway failed.";

/// First line of the state file, before the checksum of the rest.
const FILE_MAGIC: &str = "watchpost-push-groups 1";
/// The metric label `api` of this module's self-metrics.
const API: &str = "pushgateway";

/// A group's labels: `job` and the URL's label pairs, sorted by name.
pub type GroupingKey = BTreeMap<String, String>;

/// Why a push, delete or URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The URL's grouping key is malformed.
    #[error("{0}")]
    BadUrl(String),
    /// The body is not valid exposition text.
    #[error(
        "{format} body: {source}: fix the pushed text (Prometheus text 0.0.4, or OpenMetrics with Content-Type application/openmetrics-text)"
    )]
    Parse {
        format: &'static str,
        #[source]
        source: ParseError,
    },
    /// The protobuf body does not decode.
    #[error(
        "protobuf body (delimited io.prometheus.client.MetricFamily): {0}: fix the pusher, or push the text format"
    )]
    Protobuf(String),
    /// The body parsed but cannot be stored.
    #[error("pushed metrics are invalid or inconsistent with existing metrics: {0}")]
    Invalid(String),
    /// A bound of `push:` would be exceeded.
    #[error("{0}")]
    Limit(String),
    /// The group file could not be written; nothing changed.
    #[error("storing the pushed groups failed, nothing changed: {0}")]
    Persist(String),
}

impl PushError {
    /// The bounded word counted in `watchpost_push_requests_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            PushError::BadUrl(_) => "bad_url",
            PushError::Parse { .. } | PushError::Protobuf(_) => "parse_error",
            PushError::Invalid(_) => "invalid",
            PushError::Limit(_) => "limit_exceeded",
            PushError::Persist(_) => "persist_failed",
        }
    }
}

/// Parses the part of a push URL after `/metrics/`:
/// `job/<job>{/<label>/<value>}`, where `job@base64` or `<label>@base64`
/// marks a value as URL-safe base64 (an empty value is written `=`).
/// Segments are percent-decoded; the last of two equal names wins, as in
/// Pushgateway.
pub fn parse_grouping_key(path: &str) -> Result<GroupingKey, PushError> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let segs: Vec<&str> = path.split('/').collect();
    if segs.len() < 2 || !matches!(segs[0], "job" | "job@base64") {
        return Err(PushError::BadUrl(format!(
            "push URL /metrics/{path} must start with /metrics/job/<job> (or /metrics/job@base64/<base64 job>)"
        )));
    }
    if !segs.len().is_multiple_of(2) {
        return Err(PushError::BadUrl(format!(
            "odd number of components in the grouping key /metrics/{path}: give /<label>/<value> pairs (an empty value is /<label>@base64/=)"
        )));
    }
    let mut key = GroupingKey::new();
    for pair in segs.chunks(2) {
        let raw_name = percent_decode(pair[0])?;
        let raw_value = percent_decode(pair[1])?;
        let (name, value) = match raw_name.strip_suffix("@base64") {
            Some(n) => (n.to_string(), decode_base64(n, &raw_value)?),
            None => (raw_name.clone(), raw_value),
        };
        if !crate::model::is_valid_label_name(&name) || name.starts_with("__") {
            return Err(PushError::BadUrl(format!(
                "improper label name {name:?} in the push URL: use [a-zA-Z_][a-zA-Z0-9_]* not starting with __"
            )));
        }
        key.insert(name, value);
    }
    if key.get("job").is_none_or(|j| j.is_empty()) {
        return Err(PushError::BadUrl(
            "job name is required: push to /metrics/job/<job>".to_string(),
        ));
    }
    Ok(key)
}

/// Pushgateway's base64: the URL-safe alphabet, padding ignored.
fn decode_base64(name: &str, v: &str) -> Result<String, PushError> {
    let bad = |why: String| {
        PushError::BadUrl(format!(
            "invalid base64 encoding for label {name}={v:?}: {why}: encode the value with the URL-safe alphabet (RFC 4648)"
        ))
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v.trim_end_matches('='))
        .map_err(|e| bad(e.to_string()))?;
    String::from_utf8(bytes).map_err(|_| bad("not UTF-8".to_string()))
}

fn percent_decode(s: &str) -> Result<String, PushError> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(c) => {
                    out.push(c);
                    i += 3;
                    continue;
                }
                None => {
                    return Err(PushError::BadUrl(format!(
                        "bad percent-encoding in push URL segment {s:?}"
                    )));
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| PushError::BadUrl(format!("push URL segment {s:?} is not UTF-8")))
}

/// One pushed sample as stored: full labels (grouping labels applied) and
/// its value.
#[derive(Debug, Clone, PartialEq)]
struct StoredSample {
    labels: Labels,
    value: f64,
}

/// One metric family of a group.
#[derive(Debug, Clone, PartialEq)]
struct PushedFamily {
    /// The declared type (`counter`, `gauge`, ...), `untyped` when none.
    kind: String,
    help: String,
    /// When this family was last pushed (ms).
    pushed_at: Timestamp,
    samples: Vec<StoredSample>,
}

/// One group.
#[derive(Debug, Clone, PartialEq)]
struct Group {
    key: GroupingKey,
    families: BTreeMap<String, PushedFamily>,
    /// Seconds; 0 before the first successful change.
    push_time: f64,
    /// Seconds; 0 before the first refused push.
    push_failure_time: f64,
    /// When the group last changed (ms), for the JSON view.
    changed_at: Timestamp,
}

impl Group {
    fn new(key: GroupingKey, now: Timestamp) -> Group {
        Group {
            key,
            families: BTreeMap::new(),
            push_time: 0.0,
            push_failure_time: 0.0,
            changed_at: now,
        }
    }

    fn key_labels(&self, name: &str) -> Labels {
        Labels::from_pairs(
            std::iter::once((crate::model::METRIC_NAME, name))
                .chain(self.key.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        )
    }

    /// Every series the group exposes, with its current value.
    fn series(&self) -> Vec<(Labels, f64)> {
        let mut out: Vec<(Labels, f64)> = self
            .families
            .values()
            .flat_map(|f| f.samples.iter().map(|s| (s.labels.clone(), s.value)))
            .collect();
        out.push((self.key_labels(PUSH_TIME), self.push_time));
        out.push((self.key_labels(PUSH_FAILURE_TIME), self.push_failure_time));
        out
    }

    fn series_count(&self) -> usize {
        self.families
            .values()
            .map(|f| f.samples.len())
            .sum::<usize>()
            + 2
    }

    /// Sorted metric names, for the rule hook.
    fn metric_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .families
            .values()
            .flat_map(|f| f.samples.iter().map(|s| s.labels.metric_name().to_string()))
            .chain([PUSH_TIME.to_string(), PUSH_FAILURE_TIME.to_string()])
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// How a push changes its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushMode {
    /// `PUT`: the pushed families become the whole group.
    Replace,
    /// `POST`: the pushed families replace those of the same name.
    Merge,
}

/// The format of a push body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Text(Format),
    /// Length-delimited protobuf `MetricFamily` messages.
    Protobuf,
}

impl BodyFormat {
    /// The format a Content-Type names, as Pushgateway picks it: delimited
    /// protobuf `MetricFamily` messages, OpenMetrics, or else Prometheus
    /// text. Another protobuf encoding is refused (the message says why).
    pub fn from_content_type(ct: Option<&str>) -> Result<BodyFormat, String> {
        let Some(ct) = ct else {
            return Ok(BodyFormat::Text(Format::PrometheusText));
        };
        let mut parts = ct.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        if !media.eq_ignore_ascii_case("application/vnd.google.protobuf") {
            return Ok(BodyFormat::Text(Format::from_content_type(Some(ct))));
        }
        let mut proto = "";
        let mut encoding = "";
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "proto" => proto = v,
                    "encoding" => encoding = v,
                    _ => {}
                }
            }
        }
        if proto == "io.prometheus.client.MetricFamily" && encoding == "delimited" {
            Ok(BodyFormat::Protobuf)
        } else {
            Err(format!(
                "Content-Type {ct:?} is not supported: push protobuf as proto=io.prometheus.client.MetricFamily; encoding=delimited, or the text format"
            ))
        }
    }
}

/// One push: the group, how it changes, and the body.
#[derive(Debug, Clone, Copy)]
pub struct PushRequest<'a> {
    pub key: &'a GroupingKey,
    pub mode: PushMode,
    pub body: &'a [u8],
    pub format: BodyFormat,
    pub limits: &'a PushConfig,
}

/// The Pushgateway's groups, their file, and the way into storage.
pub struct PushStore {
    storage: Arc<dyn Storage>,
    metrics: PushMetrics,
    file: PathBuf,
    /// Held across the file write and the append, so that a push, a delete
    /// and a flush never interleave (their appends stay in time order).
    /// A std mutex: every caller runs on a blocking thread.
    groups: Mutex<BTreeMap<GroupingKey, Group>>,
    hook: Mutex<Option<ScrapeHook>>,
    /// Timestamp of the last append; only changed with `groups` locked.
    /// Callers read the clock before they get the lock, so a push can reach
    /// it after a flush that read a later time; appending at or after the
    /// last time keeps the push's samples from being refused as out of
    /// order.
    last_append: AtomicI64,
}

impl std::fmt::Debug for PushStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushStore")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl PushStore {
    /// Opens the groups persisted under `dir` (created if missing). A file
    /// that fails its checksum or does not decode is moved aside to
    /// `groups.json.corrupt` (so nothing is lost) and the store starts
    /// empty, as Pushgateway starts when it cannot restore.
    pub fn open(
        dir: &Path,
        storage: Arc<dyn Storage>,
        metrics: PushMetrics,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let file = dir.join("groups.json");
        let groups = match std::fs::read(&file) {
            Ok(bytes) => match decode_file(&bytes) {
                Ok(g) => g,
                Err(why) => {
                    let aside = dir.join("groups.json.corrupt");
                    tracing::error!(file = %file.display(), moved_to = %aside.display(), error = %why, "pushed groups could not be restored; starting without them");
                    std::fs::rename(&file, &aside)?;
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        metrics.groups.set(groups.len() as i64);
        Ok(PushStore {
            storage,
            metrics,
            file,
            groups: Mutex::new(groups),
            hook: Mutex::new(None),
            last_append: AtomicI64::new(i64::MIN),
        })
    }

    /// Subscribes on_scrape rule evaluation to pushes and flushes.
    pub fn set_hook(&self, hook: ScrapeHook) {
        *lock(&self.hook) = Some(hook);
    }

    /// Number of groups held.
    pub fn group_count(&self) -> usize {
        lock(&self.groups).len()
    }

    /// Applies a push at `now` (ms). Blocking (file write with fsync):
    /// call it from a blocking thread.
    pub fn push(&self, req: PushRequest<'_>, now: Timestamp) -> Result<(), PushError> {
        let result = self.push_inner(req, now);
        self.count(&result);
        result
    }

    fn push_inner(&self, req: PushRequest<'_>, now: Timestamp) -> Result<(), PushError> {
        let PushRequest {
            key,
            mode,
            body,
            format,
            limits,
        } = req;
        // Parsing touches nothing: a body that does not parse leaves the
        // group as it was, failure time included (as Pushgateway).
        let parsed = parse_body(body, format, key, limits, now)?;
        let mut groups = lock(&self.groups);
        let now = self.append_time(now);
        let existing = groups.get(key).cloned();
        if existing.is_none() && groups.len() as u64 >= limits.max_groups {
            return Err(PushError::Limit(format!(
                "push.max_groups ({}) reached: delete groups (DELETE /metrics/job/...) or raise the limit",
                limits.max_groups
            )));
        }
        let mut group = existing
            .clone()
            .unwrap_or_else(|| Group::new(key.clone(), now));
        let check = parsed.and_then(|families| {
            if mode == PushMode::Replace {
                group.families.clear();
            }
            group.families.extend(families);
            check_group(&group, &groups, limits)
        });
        if let Err(e) = check {
            // Only the failure time changes, on a fresh copy of the group.
            let mut failed = existing.unwrap_or_else(|| Group::new(key.clone(), now));
            failed.push_failure_time = now as f64 / 1000.0;
            failed.changed_at = now;
            // A failed write of the failure time is logged; the push's own
            // error is the one to report.
            if let Err(pe) = self.commit_group(&mut groups, failed, Vec::new(), now) {
                tracing::error!(error = %pe, "recording push_failure_time_seconds failed");
            }
            return Err(e);
        }
        group.push_time = now as f64 / 1000.0;
        group.changed_at = now;
        let new_series = group.series();
        let kept: HashSet<&Labels> = new_series.iter().map(|(l, _)| l).collect();
        let gone: Vec<Labels> = existing
            .map(|g| g.series())
            .unwrap_or_default()
            .into_iter()
            .map(|(l, _)| l)
            .filter(|l| !kept.contains(l))
            .collect();
        let names = group.metric_names();
        let job = key.get("job").cloned().unwrap_or_default();
        self.commit_group(&mut groups, group, gone, now)?;
        drop(groups);
        self.notify(job, now, names);
        Ok(())
    }

    /// Replaces (or inserts) `group`, persists, and appends its samples and
    /// staleness markers for `gone`. On a failed write the map is restored.
    fn commit_group(
        &self,
        groups: &mut MutexGuard<'_, BTreeMap<GroupingKey, Group>>,
        group: Group,
        gone: Vec<Labels>,
        now: Timestamp,
    ) -> Result<(), PushError> {
        let key = group.key.clone();
        let series = group.series();
        let old = groups.insert(key.clone(), group);
        if let Err(e) = self.persist(groups) {
            match old {
                Some(g) => groups.insert(key, g),
                None => groups.remove(&key),
            };
            return Err(PushError::Persist(e));
        }
        self.metrics.groups.set(groups.len() as i64);
        let mut samples = series;
        samples.extend(gone.into_iter().map(|l| (l, stale_nan())));
        self.append(&samples, now);
        Ok(())
    }

    /// Removes the group `key` (absent is fine, as in Pushgateway), marks
    /// its series stale and wakes the rule groups that read them. Blocking.
    pub fn delete(&self, key: &GroupingKey, now: Timestamp) -> Result<(), PushError> {
        let result = (|| {
            let mut groups = lock(&self.groups);
            let now = self.append_time(now);
            let Some(old) = groups.remove(key) else {
                return Ok(());
            };
            if let Err(e) = self.persist(&groups) {
                groups.insert(key.clone(), old);
                return Err(PushError::Persist(e));
            }
            self.metrics.groups.set(groups.len() as i64);
            let stale: Vec<(Labels, f64)> = old
                .series()
                .into_iter()
                .map(|(l, _)| (l, stale_nan()))
                .collect();
            self.append(&stale, now);
            drop(groups);
            // Rules over the group's metrics see them end at once.
            self.notify(
                key.get("job").cloned().unwrap_or_default(),
                now,
                old.metric_names(),
            );
            Ok(())
        })();
        self.count(&result);
        result
    }

    /// Appends every group's current samples at `now`, as a scrape of a
    /// Pushgateway would, and wakes the on_scrape rule groups. Blocking.
    pub fn flush(&self, now: Timestamp) {
        let groups = lock(&self.groups);
        if groups.is_empty() {
            return;
        }
        let now = self.append_time(now);
        let mut samples = Vec::new();
        let mut by_job: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for g in groups.values() {
            samples.extend(g.series());
            by_job
                .entry(g.key.get("job").cloned().unwrap_or_default())
                .or_default()
                .extend(g.metric_names());
        }
        self.append(&samples, now);
        drop(groups);
        for (job, mut names) in by_job {
            names.sort();
            names.dedup();
            self.notify(job, now, names);
        }
    }

    /// `now`, or just after the last append when that is later. Call with
    /// `groups` locked.
    fn append_time(&self, now: Timestamp) -> Timestamp {
        let t = now.max(self.last_append.load(Ordering::Relaxed).saturating_add(1));
        self.last_append.store(t, Ordering::Relaxed);
        t
    }

    fn notify(&self, job: String, now: Timestamp, names: Vec<String>) {
        let hook = lock(&self.hook).clone();
        if let Some(hook) = hook {
            hook(&ScrapeEvent {
                job,
                timestamp: now,
                metric_names: Arc::new(names),
            });
        }
    }

    fn append(&self, samples: &[(Labels, f64)], now: Timestamp) {
        let mut app = self.storage.appender();
        let mut ok = 0u64;
        for (labels, v) in samples {
            match app.append(labels, now, *v) {
                Ok(_) => ok += 1,
                Err(e) => {
                    let reason = match e {
                        AppendError::OutOfOrder => "out_of_order",
                        AppendError::Duplicate => "duplicate",
                        AppendError::UnknownRef => "unknown_ref",
                    };
                    self.metrics
                        .samples_rejected
                        .get_or_create(&vec![
                            ("api", API.to_string()),
                            ("reason", reason.to_string()),
                        ])
                        .inc();
                }
            }
        }
        match app.commit() {
            Ok(_) => {
                self.metrics
                    .samples
                    .get_or_create(&vec![("api", API.to_string())])
                    .inc_by(ok);
            }
            Err(e) => tracing::error!(error = %e, "appending pushed samples failed"),
        }
    }

    fn count(&self, r: &Result<(), PushError>) {
        match r {
            Ok(()) => {
                self.metrics
                    .accepted
                    .get_or_create(&vec![("api", API.to_string())])
                    .inc();
            }
            Err(e) => {
                self.metrics
                    .rejected
                    .get_or_create(&vec![
                        ("api", API.to_string()),
                        ("reason", e.reason().to_string()),
                    ])
                    .inc();
            }
        }
    }

    /// Writes every group to a temporary file, fsyncs it, renames it over
    /// the old file and fsyncs the directory, so a crash leaves the old or
    /// the new state, never a mix.
    fn persist(&self, groups: &BTreeMap<GroupingKey, Group>) -> Result<(), String> {
        let body = encode_groups(groups).map_err(|e| format!("encoding: {e}"))?;
        let tmp = self.file.with_extension("json.tmp");
        let io = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
        let mut f = std::fs::File::create(&tmp).map_err(|e| io("creating", &tmp, e))?;
        let header = format!("{FILE_MAGIC} crc32c={:08x}\n", crc32c::crc32c(&body));
        f.write_all(header.as_bytes())
            .and_then(|()| f.write_all(&body))
            .and_then(|()| f.sync_all())
            .map_err(|e| io("writing", &tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, &self.file).map_err(|e| io("renaming", &tmp, e))?;
        if let Some(dir) = self.file.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            // Makes the rename durable; a filesystem that cannot sync a
            // directory still has the file's own data synced.
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Pushgateway's `GET /api/v1/metrics` view: one entry per group with
    /// its labels, whether its last push succeeded, and its families (each
    /// sample flat, with its labels and value as a string).
    pub fn groups_json(&self) -> serde_json::Value {
        let groups = lock(&self.groups);
        let data: Vec<serde_json::Value> = groups
            .values()
            .map(|g| {
                let mut entry = serde_json::Map::new();
                entry.insert("labels".into(), serde_json::json!(g.key));
                entry.insert(
                    "last_push_successful".into(),
                    serde_json::json!(g.push_failure_time <= g.push_time),
                );
                let ts = rfc3339(g.changed_at);
                let family = |kind: &str, help: &str, ts: &str, samples: Vec<(&Labels, f64)>| {
                    serde_json::json!({
                        "time_stamp": ts,
                        "type": kind.to_ascii_uppercase(),
                        "help": help,
                        "metrics": samples.into_iter().map(|(l, v)| serde_json::json!({
                            "labels": l.iter().filter(|l| l.name != crate::model::METRIC_NAME)
                                .map(|l| (l.name.clone(), serde_json::Value::String(l.value.clone())))
                                .collect::<serde_json::Map<_, _>>(),
                            "value": format_value(v),
                        })).collect::<Vec<_>>(),
                    })
                };
                for (name, f) in &g.families {
                    entry.insert(
                        name.clone(),
                        family(
                            &f.kind,
                            &f.help,
                            &rfc3339(f.pushed_at),
                            f.samples.iter().map(|s| (&s.labels, s.value)).collect(),
                        ),
                    );
                }
                let pt = g.key_labels(PUSH_TIME);
                let pf = g.key_labels(PUSH_FAILURE_TIME);
                entry.insert(
                    PUSH_TIME.into(),
                    family("gauge", PUSH_TIME_HELP, &ts, vec![(&pt, g.push_time)]),
                );
                entry.insert(
                    PUSH_FAILURE_TIME.into(),
                    family(
                        "gauge",
                        PUSH_FAILURE_TIME_HELP,
                        &ts,
                        vec![(&pf, g.push_failure_time)],
                    ),
                );
                serde_json::Value::Object(entry)
            })
            .collect();
        serde_json::json!({"status": "success", "data": data})
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn rfc3339(ms: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A value as Prometheus writes one (`NaN`, `+Inf`, shortest round trip).
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        v.to_string()
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// The families of a parsed body, or why it cannot be stored (the outer
/// error: a parse error or a per-request bound, which change nothing; the
/// inner one: an invalid push, which sets the failure time).
type ParsedBody = Result<BTreeMap<String, PushedFamily>, PushError>;

/// Collects a body's samples into families, applying the grouping labels
/// and the per-request sample bound.
struct Collector<'a> {
    key: &'a GroupingKey,
    limits: &'a PushConfig,
    now: Timestamp,
    families: BTreeMap<String, PushedFamily>,
    count: u64,
}

impl Collector<'_> {
    fn add<'s>(
        &mut self,
        family: &str,
        kind: &str,
        help: &str,
        name: &str,
        labels: impl Iterator<Item = (Cow<'s, str>, Cow<'s, str>)>,
        value: f64,
    ) -> Result<(), PushError> {
        self.count += 1;
        if self.count > self.limits.max_samples_per_request {
            return Err(PushError::Limit(format!(
                "the push has more than push.max_samples_per_request ({}) samples: split it or raise the limit",
                self.limits.max_samples_per_request
            )));
        }
        // Pushgateway sets these two itself; pushed ones are overridden.
        if family == PUSH_TIME || family == PUSH_FAILURE_TIME {
            return Ok(());
        }
        // Grouping labels come last: they override pushed ones.
        let labels = Labels::from_pairs(
            std::iter::once((crate::model::METRIC_NAME.to_string(), name.to_string()))
                .chain(labels.map(|(k, v)| (k.into_owned(), v.into_owned())))
                .chain(self.key.iter().map(|(k, v)| (k.clone(), v.clone()))),
        );
        let now = self.now;
        let entry = self
            .families
            .entry(family.to_string())
            .or_insert_with(|| PushedFamily {
                kind: kind.to_string(),
                help: help.to_string(),
                pushed_at: now,
                samples: Vec::new(),
            });
        entry.samples.push(StoredSample { labels, value });
        Ok(())
    }
}

fn parse_body(
    body: &[u8],
    format: BodyFormat,
    key: &GroupingKey,
    limits: &PushConfig,
    now: Timestamp,
) -> Result<ParsedBody, PushError> {
    let mut c = Collector {
        key,
        limits,
        now,
        families: BTreeMap::new(),
        count: 0,
    };
    let timestamped = match format {
        BodyFormat::Protobuf => {
            let fams = super::metric_family::decode_delimited(body).map_err(PushError::Protobuf)?;
            let mut timestamped = None;
            for f in fams {
                if f.timestamped && timestamped.is_none() {
                    timestamped = Some(f.name.clone());
                }
                for (name, labels, v) in &f.samples {
                    let labels = labels
                        .iter()
                        .map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str())));
                    c.add(&f.name, f.kind, &f.help, name, labels, *v)?;
                }
            }
            timestamped
        }
        BodyFormat::Text(format) => parse_text(&mut c, body, format)?,
    };
    if let Some(name) = timestamped {
        return Ok(Err(PushError::Invalid(format!(
            "pushed metrics must not have timestamps (sample {name:?} has one): remove it, the push time is recorded in push_time_seconds"
        ))));
    }
    Ok(Ok(c.families))
}

/// Parses a text body into `c`; returns the name of a timestamped sample,
/// if any.
fn parse_text(
    c: &mut Collector<'_>,
    body: &[u8],
    format: Format,
) -> Result<Option<String>, PushError> {
    let (types, helps) = declared_families(body);
    let mut parser = Parser::new(body, format);
    let mut timestamped: Option<String> = None;
    loop {
        let s = match parser.next_sample() {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(timestamped),
            Err(source) => {
                return Err(PushError::Parse {
                    format: match format {
                        Format::PrometheusText => "text format",
                        Format::OpenMetrics => "OpenMetrics",
                    },
                    source,
                });
            }
        };
        let name = s.metric_name();
        if s.timestamp_ms.is_some() && timestamped.is_none() {
            timestamped = Some(name.to_string());
        }
        let family = family_of(&name, &types);
        let kind = types.get(&family).map_or("untyped", String::as_str);
        let help = helps.get(&family).map_or("", String::as_str);
        c.add(&family, kind, help, &name, s.labels(), s.value)?;
    }
}

/// The families a body declares with `# TYPE` and `# HELP`, by name. The
/// parser has validated these lines already when the push is accepted; a
/// line this scan misreads can only lose a type, never a sample.
fn declared_families(body: &[u8]) -> (HashMap<String, String>, HashMap<String, String>) {
    let mut types = HashMap::new();
    let mut helps = HashMap::new();
    for line in body.split(|&b| b == b'\n') {
        let Some(rest) = line.strip_prefix(b"# ") else {
            continue;
        };
        let Ok(rest) = std::str::from_utf8(rest) else {
            continue;
        };
        let mut parts = rest.splitn(3, ' ');
        let (Some(kw), Some(name)) = (parts.next(), parts.next()) else {
            continue;
        };
        let value = parts.next().unwrap_or("").trim_end_matches('\r');
        match kw {
            "TYPE" => {
                types.insert(name.to_string(), value.trim().to_ascii_lowercase());
            }
            "HELP" => {
                helps.insert(name.to_string(), value.to_string());
            }
            _ => {}
        }
    }
    (types, helps)
}

/// The family a sample name belongs to: its own name when declared, else
/// the declared family whose type gives it that suffix.
fn family_of(name: &str, types: &HashMap<String, String>) -> String {
    if types.contains_key(name) {
        return name.to_string();
    }
    const SUFFIXES: &[(&str, &[&str])] = &[
        ("_bucket", &["histogram", "gaugehistogram"]),
        ("_count", &["histogram", "summary"]),
        ("_sum", &["histogram", "summary"]),
        ("_gcount", &["gaugehistogram"]),
        ("_gsum", &["gaugehistogram"]),
        ("_total", &["counter"]),
        ("_created", &["counter", "histogram", "summary"]),
        ("_info", &["info"]),
    ];
    for (suffix, kinds) in SUFFIXES {
        if let Some(base) = name.strip_suffix(suffix)
            && types.get(base).is_some_and(|k| kinds.contains(&k.as_str()))
        {
            return base.to_string();
        }
    }
    name.to_string()
}

/// The checks Pushgateway's consistency check makes on the group as it
/// would be after the push: bounds, no series twice, and each family with
/// one type across all groups.
fn check_group(
    group: &Group,
    groups: &BTreeMap<GroupingKey, Group>,
    limits: &PushConfig,
) -> Result<(), PushError> {
    let n = group.series_count() as u64;
    if n > limits.max_series_per_group {
        return Err(PushError::Limit(format!(
            "the group would hold {n} series, more than push.max_series_per_group ({}): push fewer series or raise the limit",
            limits.max_series_per_group
        )));
    }
    let mut seen = HashSet::new();
    for f in group.families.values() {
        for s in &f.samples {
            if !seen.insert(&s.labels) {
                return Err(PushError::Invalid(format!(
                    "series {} would be in the group twice: push each series once",
                    s.labels
                )));
            }
        }
    }
    for (name, f) in &group.families {
        for other in groups.values().filter(|g| g.key != group.key) {
            if let Some(o) = other.families.get(name)
                && o.kind != f.kind
            {
                return Err(PushError::Invalid(format!(
                    "metric family {name:?} is pushed as {} but group {} has it as {}: push one type per metric name",
                    f.kind,
                    Labels::from_pairs(other.key.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                    o.kind
                )));
            }
        }
    }
    Ok(())
}

/// The state file's JSON shapes.
#[derive(Serialize, Deserialize)]
struct FileGroup {
    labels: GroupingKey,
    push_time_seconds: f64,
    push_failure_time_seconds: f64,
    changed_at_ms: Timestamp,
    families: Vec<FileFamily>,
}

#[derive(Serialize, Deserialize)]
struct FileFamily {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    help: String,
    pushed_at_ms: Timestamp,
    /// Each sample as its labels (with `__name__`) and its value as text,
    /// since JSON numbers cannot hold NaN or infinities.
    samples: Vec<(BTreeMap<String, String>, String)>,
}

fn encode_groups(groups: &BTreeMap<GroupingKey, Group>) -> serde_json::Result<Vec<u8>> {
    let file: Vec<FileGroup> = groups
        .values()
        .map(|g| FileGroup {
            labels: g.key.clone(),
            push_time_seconds: g.push_time,
            push_failure_time_seconds: g.push_failure_time,
            changed_at_ms: g.changed_at,
            families: g
                .families
                .iter()
                .map(|(name, f)| FileFamily {
                    name: name.clone(),
                    kind: f.kind.clone(),
                    help: f.help.clone(),
                    pushed_at_ms: f.pushed_at,
                    samples: f
                        .samples
                        .iter()
                        .map(|s| {
                            (
                                s.labels
                                    .iter()
                                    .map(|l| (l.name.clone(), l.value.clone()))
                                    .collect(),
                                format_value(s.value),
                            )
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    serde_json::to_vec(&file)
}

fn decode_file(bytes: &[u8]) -> Result<BTreeMap<GroupingKey, Group>, String> {
    let nl = memchr::memchr(b'\n', bytes).ok_or("no header line")?;
    let header = std::str::from_utf8(&bytes[..nl]).map_err(|_| "header is not UTF-8")?;
    let body = &bytes[nl + 1..];
    let want = header
        .strip_prefix(FILE_MAGIC)
        .and_then(|r| r.trim().strip_prefix("crc32c="))
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| format!("unknown header {header:?}"))?;
    let got = crc32c::crc32c(body);
    if got != want {
        return Err(format!(
            "checksum mismatch (header {want:08x}, content {got:08x}): the file is damaged"
        ));
    }
    let file: Vec<FileGroup> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for g in file {
        let mut families = BTreeMap::new();
        for f in g.families {
            let mut samples = Vec::with_capacity(f.samples.len());
            for (labels, v) in f.samples {
                let value = parse_value(&v).ok_or_else(|| format!("bad sample value {v:?}"))?;
                samples.push(StoredSample {
                    labels: Labels::from_pairs(labels),
                    value,
                });
            }
            families.insert(
                f.name,
                PushedFamily {
                    kind: f.kind,
                    help: f.help,
                    pushed_at: f.pushed_at_ms,
                    samples,
                },
            );
        }
        out.insert(
            g.labels.clone(),
            Group {
                key: g.labels,
                families,
                push_time: g.push_time_seconds,
                push_failure_time: g.push_failure_time_seconds,
                changed_at: g.changed_at_ms,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::mem::MemStorage;

    fn key(pairs: &[(&str, &str)]) -> GroupingKey {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A PUT of a text body with the default limits.
    fn put(store: &PushStore, k: &GroupingKey, body: &[u8], now: Timestamp) {
        let limits = PushConfig::default();
        let req = PushRequest {
            key: k,
            mode: PushMode::Replace,
            body,
            format: BodyFormat::Text(Format::PrometheusText),
            limits: &limits,
        };
        store.push(req, now).unwrap();
    }

    #[test]
    fn grouping_keys_like_pushgateway() {
        let ok = |p: &str| parse_grouping_key(p).unwrap();
        assert_eq!(ok("job/a"), key(&[("job", "a")]));
        assert_eq!(ok("job/a/"), key(&[("job", "a")]));
        assert_eq!(
            ok("job/a/instance/i/zone/z"),
            key(&[("job", "a"), ("instance", "i"), ("zone", "z")])
        );
        // URL-safe base64, padding optional; `=` is the empty value.
        assert_eq!(
            ok("job@base64/Zm9vL2Jhcg==/x@base64/="),
            key(&[("job", "foo/bar"), ("x", "")])
        );
        assert_eq!(ok("job/a%2Fb"), key(&[("job", "a/b")]));
        // The last of two equal names wins, as in Pushgateway.
        assert_eq!(ok("job/a/x/1/x/2"), key(&[("job", "a"), ("x", "2")]));
        let err = |p: &str| parse_grouping_key(p).unwrap_err().to_string();
        assert!(err("instance/i").contains("must start with /metrics/job/"));
        assert!(err("job/a/x").contains("odd number of components"));
        assert!(err("job/a/1x/v").contains("improper label name \"1x\""));
        assert!(err("job/a/__x/v").contains("improper label name \"__x\""));
        assert!(err("job@base64/=").contains("job name is required"));
        assert!(err("job@base64/%%").contains("bad percent-encoding"));
        assert!(err("job@base64/_w").contains("invalid base64 encoding"));
    }

    #[test]
    fn sample_names_find_their_declared_family() {
        let types: HashMap<String, String> = [
            ("h", "histogram"),
            ("s", "summary"),
            ("c", "counter"),
            ("g", "gauge"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        for (sample, family) in [
            ("h_bucket", "h"),
            ("h_sum", "h"),
            ("s_count", "s"),
            ("c_total", "c"),
            ("c", "c"),
            ("g_sum", "g_sum"),
            ("other_total", "other_total"),
        ] {
            assert_eq!(family_of(sample, &types), family, "{sample}");
        }
    }

    #[test]
    fn the_group_file_round_trips_and_a_damaged_one_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let st: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let store = PushStore::open(dir.path(), st.clone(), PushMetrics::default()).unwrap();
        let k = key(&[("job", "j")]);
        let body = b"# TYPE v gauge\n# HELP v The value.\nv{a=\"b\"} NaN\nw +Inf\n";
        put(&store, &k, body, 5_000);
        let before = lock(&store.groups).clone();
        drop(store);
        let again = PushStore::open(dir.path(), st.clone(), PushMetrics::default()).unwrap();
        let after = lock(&again.groups).clone();
        // NaN != NaN: compare the file encodings instead.
        assert_eq!(
            encode_groups(&before).unwrap(),
            encode_groups(&after).unwrap()
        );
        assert_eq!(after[&k].families["v"].help, "The value.");
        drop(again);

        let file = dir.path().join("groups.json");
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let damaged = PushStore::open(dir.path(), st, PushMetrics::default()).unwrap();
        assert_eq!(damaged.group_count(), 0);
        assert_eq!(
            std::fs::read(dir.path().join("groups.json.corrupt")).unwrap(),
            bytes
        );
        assert!(
            decode_file(&bytes)
                .unwrap_err()
                .contains("checksum mismatch")
        );
    }

    #[test]
    fn a_push_that_read_the_clock_before_a_flush_is_still_stored() {
        use crate::storage::Queryable;
        let dir = tempfile::tempdir().unwrap();
        let st = Arc::new(MemStorage::new());
        let store = PushStore::open(dir.path(), st.clone(), PushMetrics::default()).unwrap();
        let k = key(&[("job", "j")]);
        put(&store, &k, b"v 1\n", 50);
        store.flush(200);
        // This push read the clock (100) before the flush took the lock.
        put(&store, &k, b"v 2\n", 100);
        let m = crate::model::Matcher::new(crate::model::MatchOp::Equal, "__name__", "v").unwrap();
        let got: Vec<(i64, f64)> = st
            .select(&[m], i64::MIN, i64::MAX)
            .unwrap()
            .into_iter()
            .flat_map(|s| s.samples.map(|s| (s.t, s.v)))
            .collect();
        assert_eq!(got, vec![(50, 1.0), (200, 1.0), (201, 2.0)]);
    }
}
