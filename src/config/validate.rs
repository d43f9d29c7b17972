//! From the raw serde mirror to the typed [`Config`]: defaults, inheritance
//! from `global`, and every check Prometheus makes on its `prometheus.yml`
//! (plus watchpost's own), each failure reported with its position and all
//! of them collected before giving up.
//!
//! The only I/O is reading the files that `scrape_config_files` names, as
//! Prometheus does when it loads its config; files that are used later
//! (password files, CA files, rule files, file_sd targets) are not opened
//! here, so rotating them needs no reload.
//!
//! Decisions about newer Prometheus keys, so that nothing is silently
//! ignored:
//! - accepted and meaningful: `rule_query_offset`, `scrape_config_files`,
//!   `storage.tsdb.out_of_order_time_window`, `storage.tsdb.retention`,
//!   the global limit defaults;
//! - accepted because their value is what watchpost always does:
//!   `enable_compression: true`, `track_timestamps_staleness: false`,
//!   `scrape_native_histograms: false`, `convert_classic_histograms_to_nhcb: false`,
//!   `extra_scrape_metrics: false`, `keep_dropped_targets: 0`,
//!   `metric_name_validation_scheme: legacy`, `metric_name_escaping_scheme: underscores`,
//!   `scrape_protocols` lists that prefer OpenMetrics text (watchpost's own
//!   order), `fallback_scrape_protocol: PrometheusText0.0.4` (or `1.0.0`),
//!   and the other value of each is an error saying so;
//! - accepted with no effect because watchpost stores no native histograms or
//!   exemplars (as Prometheus without those features): `always_scrape_classic_histograms`,
//!   `scrape_classic_histograms`, `native_histogram_bucket_limit`,
//!   `native_histogram_min_bucket_factor`, `storage.exemplars`;
//! - refused with an explanation: every service discovery but static, file
//!   and http; `oauth2`, `http_headers`, proxy settings other than
//!   `proxy_url`, `*_ref` secrets, inline TLS PEM, `runtime`, `tracing`,
//!   `remote_read`, `otlp`, `query_log_file`, `scrape_failure_log_file`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use serde_saphyr::Location;

use super::error::{ConfigError, Diags, Pos, key_pos, unsupported_prometheus_key, yaml_error};
use super::raw::*;
use super::redact::redacted_yaml;
use super::relabel::build_relabel_configs;
use super::secret::Secret;
use super::types::*;
use super::units::parse_size;
use crate::model::{Labels, format_duration, is_valid_label_name, parse_duration};

const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_FILE_SD_REFRESH: Duration = Duration::from_secs(5 * 60);
const DEFAULT_HTTP_SD_REFRESH: Duration = Duration::from_secs(60);
const DEFAULT_RETENTION: Duration = Duration::from_secs(15 * 24 * 3600);

/// Looks up an environment variable (for `external_labels` expansion);
/// injected so tests do not depend on the process environment.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Which file is being checked and where its relative paths point; every
/// check reports through this.
pub(crate) struct Cx<'a> {
    pub file: &'a str,
    /// The file's text, to find the key of a value when an error is about
    /// the key itself.
    pub source: &'a str,
    pub base: &'a Path,
    pub diags: &'a mut Diags,
    errors: usize,
}

impl<'a> Cx<'a> {
    pub(crate) fn new(
        file: &'a str,
        source: &'a str,
        base: &'a Path,
        diags: &'a mut Diags,
    ) -> Self {
        Cx {
            file,
            source,
            base,
            diags,
            errors: 0,
        }
    }

    pub(crate) fn err(&mut self, pos: impl Into<Pos>, msg: impl Into<String>) {
        self.errors += 1;
        self.diags.push(self.file, pos, msg);
    }

    /// Reports a problem with the key `key` itself, given where its value is.
    pub(crate) fn err_at_key(&mut self, key: &str, value: Location, msg: impl Into<String>) {
        let pos = key_pos(self.source, key, value.into());
        self.err(pos, msg);
    }

    /// Errors reported through this context so far (to tell whether one
    /// item had problems).
    pub(crate) fn error_count(&self) -> usize {
        self.errors
    }

    /// Reports a ready-made diagnostic (a YAML error of another file).
    pub(crate) fn err_diagnostic(&mut self, d: super::Diagnostic) {
        self.errors += 1;
        self.diags.push_diagnostic(d);
    }

    /// Counts errors that a context for another file reported.
    pub(crate) fn add_errors(&mut self, n: usize) {
        self.errors += n;
    }

    /// `p` made relative to the config file's directory, as Prometheus does.
    pub(crate) fn path(&self, p: &str) -> PathBuf {
        resolve(self.base, p)
    }
}

pub(crate) fn resolve(base: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() || base.as_os_str().is_empty() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

pub(crate) fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Parses and validates `yaml` (named `name` in errors; relative paths
/// resolve against `base`).
pub(crate) fn load(
    yaml: &str,
    name: &str,
    base: &Path,
    env: Env<'_>,
) -> Result<Config, ConfigError> {
    let raw: Option<RawConfig> = serde_saphyr::from_str(yaml)
        .map_err(|e| ConfigError::Invalid(vec![yaml_error(&e, yaml, name)]))?;
    // An empty file is a valid config with every default, as in Prometheus.
    let raw = raw.unwrap_or_default();
    let mut diags = Diags::default();
    let config = {
        let mut cx = Cx::new(name, yaml, base, &mut diags);
        build_config(&mut cx, raw, env)
    };
    if diags.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid(diags.into_sorted()))
    }
}

fn build_config(cx: &mut Cx<'_>, raw: RawConfig, env: Env<'_>) -> Config {
    refused(cx, "", &raw.refused_keys());
    let global = build_global(cx, raw.global.as_ref(), env);

    let rule_files = patterns(cx, "rule_files", raw.rule_files.as_deref())
        .into_iter()
        .map(|(p, _)| p)
        .collect();

    let mut jobs = JobNames::default();
    let mut scrape_configs = Vec::new();
    for (i, sc) in raw.scrape_configs.iter().flatten().enumerate() {
        let unique = jobs.insert(cx, sc);
        if let Some(c) = build_scrape_config(cx, &global, i, sc)
            && unique
        {
            scrape_configs.push(c);
        }
    }
    let files = patterns(
        cx,
        "scrape_config_files",
        raw.scrape_config_files.as_deref(),
    );
    for (pattern, loc) in files {
        load_scrape_config_files(cx, &global, &pattern, loc, &mut jobs, &mut scrape_configs);
    }

    let storage = build_storage(cx, raw.storage.as_ref());
    let web = build_web(cx, raw.web.as_ref());

    let notify = match (&raw.notify, &raw.notify_file) {
        (Some(_), Some(f)) => {
            // Which of the two is meant is unknown, so neither is checked.
            cx.err(
                f.referenced,
                "notify and notify_file are both set: keep the inline notify section or the file, not both",
            );
            None
        }
        (Some(n), None) => super::notify::load_inline(cx, n, cx.source),
        (None, Some(f)) if f.value.is_empty() => {
            cx.err(
                f.referenced,
                "notify_file: empty path: name an alertmanager.yml file or remove the key",
            );
            None
        }
        (None, Some(f)) => {
            let path = cx.path(&f.value);
            super::notify::load_referenced_file(cx, &path, f.referenced)
        }
        (None, None) => None,
    };
    let notify_seen = match &notify {
        Some(n) => super::reports::NotifySeen::Valid(n),
        None if raw.notify.is_some() || raw.notify_file.is_some() => {
            super::reports::NotifySeen::Invalid
        }
        None => super::reports::NotifySeen::Absent,
    };
    let reports = super::reports::build(cx, raw.reports.as_ref(), notify_seen);
    let alerting = mapping_or_none(cx, "alerting", raw.alerting);
    let remote_write = raw.remote_write.map(|r| r.value).unwrap_or_default();

    let mut config = Config {
        source: None,
        global,
        scrape_configs,
        rule_files,
        storage,
        web,
        notify,
        alerting,
        remote_write,
        push: super::push::build_push(cx, raw.push.as_ref()),
        heartbeats: super::heartbeats::build(cx, raw.heartbeats.as_ref()),
        reports,
        redacted_yaml: String::new(),
    };
    config.redacted_yaml = redacted_yaml(&config);
    config
}

/// A section kept as YAML that must be a mapping when present.
fn mapping_or_none(cx: &mut Cx<'_>, key: &str, v: Option<S<Value>>) -> Option<Value> {
    let v = v?;
    match v.value {
        Value::Null => None,
        Value::Object(_) => Some(v.value),
        _ => {
            cx.err(
                v.referenced,
                format!("{key}: expected a mapping (key: value)"),
            );
            None
        }
    }
}

/// Reports Prometheus keys watchpost refuses, each with its reason.
pub(crate) fn refused(cx: &mut Cx<'_>, ctx: &str, keys: &[(&'static str, Location)]) {
    for (key, loc) in keys {
        cx.err_at_key(key, *loc, format!("{ctx}{}", refused_message(key)));
    }
}

fn refused_message(key: &str) -> String {
    if let Some(m) = unsupported_prometheus_key(key) {
        return m;
    }
    let why = match key {
        "runtime" => {
            "it tunes the Go runtime (gogc), which watchpost does not have; remove the section"
        }
        "tracing" => "watchpost does not export traces; remove the section",
        "remote_read" => "watchpost answers queries from its own storage only; remove the section",
        "otlp" => "watchpost does not receive OTLP metrics; remove the section",
        "query_log_file" => "watchpost logs through its own log output; remove the key",
        "scrape_failure_log_file" => {
            "scrape failures are in watchpost's log and in each target's up series; remove the key"
        }
        "username_file" | "username_ref" => {
            "write the username inline (only the password is secret)"
        }
        "password_ref" => "references need Prometheus's secret manager; use password_file",
        "credentials_ref" => "references need Prometheus's secret manager; use credentials_file",
        "ca_ref" | "cert_ref" | "key_ref" => {
            return format!(
                "{key} is not supported: references need Prometheus's secret manager; use {}_file",
                key.trim_end_matches("_ref")
            );
        }
        "ca" | "cert" | "key" => {
            return format!(
                "inline {key} is not supported: write the PEM to a file and use {key}_file"
            );
        }
        _ => "remove the key",
    };
    format!("{key} is not supported: {why}")
}

/// Validates `rule_files`-style glob lists: Prometheus allows a `*` only in
/// the last path element. Returns the resolved patterns with positions.
fn patterns(cx: &mut Cx<'_>, key: &str, list: Option<&[S<String>]>) -> Vec<(String, Location)> {
    let mut out = Vec::new();
    for p in list.unwrap_or_default() {
        let s = &p.value;
        let star_ok = s.find('*').is_none_or(|i| !s[i..].contains('/'));
        if s.is_empty() {
            cx.err(p.referenced, format!("{key}: empty path: remove the entry"));
        } else if !star_ok {
            cx.err(
                p.referenced,
                format!(
                    "{key}: {s:?} is not a valid path pattern: a * may only appear in the last path element"
                ),
            );
        } else if let Err(e) = glob::Pattern::new(s) {
            cx.err(
                p.referenced,
                format!("{key}: {s:?} is not a valid path pattern: {}", e.msg),
            );
        } else {
            out.push((path_string(&cx.path(s)), p.referenced));
        }
    }
    out
}

/// Job names seen so far, across the main file and `scrape_config_files`.
#[derive(Default)]
struct JobNames(HashMap<String, String>);

impl JobNames {
    /// Records the job's name; reports and returns false when it was
    /// already used. A job without a name is reported elsewhere.
    fn insert(&mut self, cx: &mut Cx<'_>, sc: &S<RawScrapeConfig>) -> bool {
        let Some(j) = sc.value.job_name.as_ref().filter(|j| !j.value.is_empty()) else {
            return true;
        };
        let name = j.value.as_str();
        let loc = j.referenced;
        let here = format!("{}:{}:{}", cx.file, loc.line(), loc.column());
        if let Some(first) = self.0.get(name) {
            cx.err(
                loc,
                format!(
                    "scrape job {name:?}: job_name is used twice (first at {first}): job names must be unique"
                ),
            );
            false
        } else {
            self.0.insert(name.to_string(), here);
            true
        }
    }
}

fn load_scrape_config_files(
    cx: &mut Cx<'_>,
    global: &GlobalConfig,
    pattern: &str,
    loc: Location,
    jobs: &mut JobNames,
    out: &mut Vec<ScrapeConfig>,
) {
    let paths = match glob::glob(pattern) {
        Ok(p) => p,
        Err(e) => {
            cx.err(
                loc,
                format!(
                    "scrape_config_files: {pattern:?} is not a valid path pattern: {}",
                    e.msg
                ),
            );
            return;
        }
    };
    for entry in paths {
        let path = match entry {
            Ok(p) => p,
            Err(e) => {
                cx.err(
                    loc,
                    format!(
                        "scrape_config_files: cannot read {}: {}",
                        e.path().display(),
                        e.error()
                    ),
                );
                continue;
            }
        };
        let name = path_string(&path);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                cx.err(loc, format!("scrape_config_files: cannot read {name}: {e}"));
                continue;
            }
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let raw: Option<RawScrapeConfigFile> = match serde_saphyr::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                cx.errors += 1;
                cx.diags.push_diagnostic(yaml_error(&e, &text, &name));
                continue;
            }
        };
        let mut sub = Cx::new(&name, &text, &base, &mut *cx.diags);
        for (i, sc) in raw
            .unwrap_or_default()
            .scrape_configs
            .iter()
            .flatten()
            .enumerate()
        {
            let unique = jobs.insert(&mut sub, sc);
            if let Some(c) = build_scrape_config(&mut sub, global, i, sc)
                && unique
            {
                out.push(c);
            }
        }
        cx.errors += sub.errors;
    }
}

/// Parses an optional duration; reports and returns None when it is invalid.
pub(crate) fn duration(
    cx: &mut Cx<'_>,
    ctx: &str,
    key: &str,
    v: Option<&S<String>>,
) -> Option<Duration> {
    let v = v?;
    match parse_duration(&v.value) {
        Ok(d) => Some(d),
        Err(e) => {
            cx.err(v.referenced, format!("{ctx}{key}: {e}"));
            None
        }
    }
}

/// Parses an optional byte size; reports and returns None when invalid.
fn size(cx: &mut Cx<'_>, ctx: &str, key: &str, v: Option<&S<String>>) -> Option<u64> {
    let v = v?;
    match parse_size(&v.value) {
        Ok(n) => Some(n),
        Err(e) => {
            cx.err(v.referenced, format!("{ctx}{key}: {e}"));
            None
        }
    }
}

/// A key whose only supported value is the one watchpost always acts on.
fn only<T: PartialEq + std::fmt::Display>(
    cx: &mut Cx<'_>,
    ctx: &str,
    key: &str,
    v: Option<&S<T>>,
    allowed: T,
    why: &str,
) {
    if let Some(v) = v
        && v.value != allowed
    {
        cx.err(
            v.referenced,
            format!("{ctx}{key}: {} is not supported: {why}", v.value),
        );
    }
}

const PROTOCOLS: [&str; 5] = [
    "OpenMetricsText1.0.0",
    "OpenMetricsText0.0.1",
    "PrometheusText1.0.0",
    "PrometheusText0.0.4",
    "PrometheusProto",
];

/// `scrape_protocols`: Prometheus's checks (known names, no duplicates, not
/// empty), then watchpost's: it reads the text formats only and asks for
/// OpenMetrics first, so a list must put OpenMetrics ahead of Prometheus text.
fn check_protocols(cx: &mut Cx<'_>, ctx: &str, v: Option<&S<Vec<S<String>>>>) {
    let Some(v) = v else { return };
    if v.value.is_empty() {
        cx.err(
            v.referenced,
            format!("{ctx}scrape_protocols: empty list: list protocols or remove the key"),
        );
        return;
    }
    let mut seen: Vec<String> = Vec::new();
    let mut ok = true;
    for p in &v.value {
        if !PROTOCOLS.contains(&p.value.as_str()) {
            cx.err(
                p.referenced,
                format!(
                    "{ctx}scrape_protocols: unknown protocol {:?}: use {}",
                    p.value,
                    PROTOCOLS.join(", ")
                ),
            );
            ok = false;
        } else if seen.contains(&p.value.to_ascii_lowercase()) {
            cx.err(
                p.referenced,
                format!("{ctx}scrape_protocols: {} is listed twice", p.value),
            );
            ok = false;
        }
        seen.push(p.value.to_ascii_lowercase());
    }
    if !ok {
        return;
    }
    let text: Vec<&S<String>> = v
        .value
        .iter()
        .filter(|p| p.value != "PrometheusProto")
        .collect();
    match text.first() {
        None => cx.err(
            v.referenced,
            format!(
                "{ctx}scrape_protocols: watchpost does not read the protobuf format: list OpenMetricsText1.0.0 and PrometheusText0.0.4"
            ),
        ),
        Some(first) if first.value.starts_with("PrometheusText") => cx.err(
            first.referenced,
            format!(
                "{ctx}scrape_protocols: preferring {} over OpenMetrics is not supported: watchpost asks for OpenMetricsText1.0.0 first, then PrometheusText0.0.4; put OpenMetricsText1.0.0 first or remove the key",
                first.value
            ),
        ),
        Some(_) => {}
    }
}

/// `metric_name_validation_scheme` / `metric_name_escaping_scheme`.
fn check_name_schemes(
    cx: &mut Cx<'_>,
    ctx: &str,
    validation: Option<&S<String>>,
    escaping: Option<&S<String>>,
) {
    if let Some(v) = validation {
        match v.value.as_str() {
            "" | "legacy" => {}
            "utf8" => cx.err(
                v.referenced,
                format!(
                    "{ctx}metric_name_validation_scheme: utf8 is not supported: watchpost accepts legacy metric and label names only ([a-zA-Z_:][a-zA-Z0-9_:]*); use legacy"
                ),
            ),
            other => cx.err(
                v.referenced,
                format!(
                    "{ctx}metric_name_validation_scheme: unknown scheme {other:?}: use legacy"
                ),
            ),
        }
    }
    if let Some(v) = escaping {
        match v.value.as_str() {
            "" | "underscores" => {}
            "allow-utf-8" | "dots" | "values" => cx.err(
                v.referenced,
                format!(
                    "{ctx}metric_name_escaping_scheme: {} is not supported: watchpost asks targets for underscores escaping (legacy names); use underscores",
                    v.value
                ),
            ),
            other => cx.err(
                v.referenced,
                format!(
                    "{ctx}metric_name_escaping_scheme: unknown scheme {other:?}: use underscores"
                ),
            ),
        }
    }
}

const NO_NATIVE_HISTOGRAMS: &str =
    "watchpost does not store native histograms; use false or remove the key";

fn build_global(cx: &mut Cx<'_>, g: Option<&S<RawGlobal>>, env: Env<'_>) -> GlobalConfig {
    let empty = RawGlobal::default();
    let raw = g.map(|g| &g.value).unwrap_or(&empty);
    let ctx = "global: ";
    refused(cx, ctx, &raw.refused_keys());

    let interval = duration(cx, ctx, "scrape_interval", raw.scrape_interval.as_ref())
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_SCRAPE_INTERVAL);
    let explicit_timeout =
        duration(cx, ctx, "scrape_timeout", raw.scrape_timeout.as_ref()).filter(|d| !d.is_zero());
    if let (Some(t), Some(at)) = (explicit_timeout, raw.scrape_timeout.as_ref())
        && t > interval
    {
        let default = if raw.scrape_interval.is_none() {
            ", the default"
        } else {
            ""
        };
        cx.err(
            at.referenced,
            format!(
                "global: scrape_timeout ({}) is greater than scrape_interval ({}{default})",
                format_duration(t),
                format_duration(interval)
            ),
        );
    }
    let timeout = explicit_timeout.unwrap_or(DEFAULT_SCRAPE_TIMEOUT.min(interval));
    let evaluation_interval = duration(
        cx,
        ctx,
        "evaluation_interval",
        raw.evaluation_interval.as_ref(),
    )
    .filter(|d| !d.is_zero())
    .unwrap_or(DEFAULT_EVALUATION_INTERVAL);
    let rule_query_offset =
        duration(cx, ctx, "rule_query_offset", raw.rule_query_offset.as_ref()).unwrap_or_default();
    let rule_evaluation = match &raw.rule_evaluation {
        None => RuleEvaluation::default(),
        Some(v) => RuleEvaluation::parse(&v.value).unwrap_or_else(|| {
            cx.err(
                v.referenced,
                format!(
                    "global: rule_evaluation: {:?} is not an evaluation mode: use interval or on_scrape",
                    v.value
                ),
            );
            RuleEvaluation::default()
        }),
    };

    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in raw.external_labels.iter().flat_map(|m| m.0.iter()) {
        if !is_valid_label_name(&name.value) {
            cx.err(
                name.referenced,
                format!(
                    "global: external_labels: {:?} is not a valid label name: use [a-zA-Z_][a-zA-Z0-9_]*",
                    name.value
                ),
            );
        } else if name.value.starts_with("__") {
            cx.err(
                name.referenced,
                format!(
                    "global: external_labels: {:?} starts with __, which is reserved for internal labels: rename it",
                    name.value
                ),
            );
        } else {
            // Prometheus expands $VAR / ${VAR} in external label values.
            let value = value.as_ref().map(|v| v.value.as_str()).unwrap_or("");
            pairs.push((name.value.clone(), expand_env(value, env)));
        }
    }

    only(
        cx,
        ctx,
        "keep_dropped_targets",
        raw.keep_dropped_targets.as_ref(),
        0,
        "watchpost keeps every dropped target for the targets page; use 0 or remove the key",
    );
    check_protocols(cx, ctx, raw.scrape_protocols.as_ref());
    check_name_schemes(
        cx,
        ctx,
        raw.metric_name_validation_scheme.as_ref(),
        raw.metric_name_escaping_scheme.as_ref(),
    );
    only(
        cx,
        ctx,
        "scrape_native_histograms",
        raw.scrape_native_histograms.as_ref(),
        false,
        NO_NATIVE_HISTOGRAMS,
    );
    only(
        cx,
        ctx,
        "convert_classic_histograms_to_nhcb",
        raw.convert_classic_histograms_to_nhcb.as_ref(),
        false,
        NO_NATIVE_HISTOGRAMS,
    );
    only(
        cx,
        ctx,
        "extra_scrape_metrics",
        raw.extra_scrape_metrics.as_ref(),
        false,
        "watchpost writes the standard scrape_* series only; use false or remove the key",
    );

    let limits = ScrapeLimits {
        sample_limit: raw.sample_limit.unwrap_or(0),
        label_limit: raw.label_limit.unwrap_or(0),
        label_name_length_limit: raw.label_name_length_limit.unwrap_or(0),
        label_value_length_limit: raw.label_value_length_limit.unwrap_or(0),
        body_size_limit: size(cx, ctx, "body_size_limit", raw.body_size_limit.as_ref())
            .unwrap_or(0),
        target_limit: raw.target_limit.unwrap_or(0),
    };

    GlobalConfig {
        scrape_interval: interval,
        scrape_timeout: timeout,
        evaluation_interval,
        external_labels: Labels::from_pairs(pairs),
        limits,
        rule_query_offset,
        rule_evaluation,
    }
}

/// Go's `os.Expand` as Prometheus applies it to external label values:
/// `$NAME` and `${NAME}` become the variable's value (empty when unset),
/// `$$` is a literal `$`, and a `$` followed by nothing name-like stays.
pub(crate) fn expand_env(s: &str, env: Env<'_>) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut copied = 0;
    let lookup = |name: &str| -> String {
        if name == "$" {
            return "$".to_string();
        }
        env(name).unwrap_or_default()
    };
    let special =
        |c: u8| matches!(c, b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-') || c.is_ascii_digit();
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            out.push_str(&s[copied..i]);
            let rest = &s[i + 1..];
            let rb = rest.as_bytes();
            let (name, width): (Option<&str>, usize) = if rb[0] == b'{' {
                if rb.len() > 2 && special(rb[1]) && rb[2] == b'}' {
                    (Some(&rest[1..2]), 3)
                } else {
                    match rest.find('}') {
                        Some(1) => (None, 2),
                        Some(end) => (Some(&rest[1..end]), end + 1),
                        None => (None, 1),
                    }
                }
            } else if special(rb[0]) {
                (Some(&rest[..1]), 1)
            } else {
                let n = rb
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                    .count();
                if n == 0 {
                    // Not followed by a name: the $ stays as written.
                    out.push('$');
                    (None, 0)
                } else {
                    (Some(&rest[..n]), n)
                }
            };
            if let Some(name) = name {
                out.push_str(&lookup(name));
            }
            i += 1 + width;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[copied..]);
    out
}

fn build_scrape_config(
    cx: &mut Cx<'_>,
    global: &GlobalConfig,
    index: usize,
    sc: &S<RawScrapeConfig>,
) -> Option<ScrapeConfig> {
    let raw = &sc.value;
    let before = cx.error_count();
    let job_name = match &raw.job_name {
        Some(j) if !j.value.is_empty() => Some(j.value.clone()),
        Some(j) => {
            cx.err(j.referenced, format!("scrape_configs[{index}]: job_name is empty: every scrape job needs a unique job_name"));
            None
        }
        None => {
            cx.err(sc.referenced, format!("scrape_configs[{index}]: job_name is missing: every scrape job needs a unique job_name"));
            None
        }
    };
    let ctx = match &job_name {
        Some(n) => format!("scrape job {n:?}: "),
        None => format!("scrape_configs[{index}]: "),
    };
    let ctx = ctx.as_str();
    refused(cx, ctx, &raw.refused_keys());

    // Prometheus's rule: interval falls back to global; an explicit timeout
    // may not exceed it; an inherited timeout is capped at it.
    let explicit_interval =
        duration(cx, ctx, "scrape_interval", raw.scrape_interval.as_ref()).filter(|d| !d.is_zero());
    let interval = explicit_interval.unwrap_or(global.scrape_interval);
    let explicit_timeout =
        duration(cx, ctx, "scrape_timeout", raw.scrape_timeout.as_ref()).filter(|d| !d.is_zero());
    if let (Some(t), Some(at)) = (explicit_timeout, raw.scrape_timeout.as_ref())
        && t > interval
    {
        let inherited = if explicit_interval.is_none() {
            ", inherited from global"
        } else {
            ""
        };
        cx.err(
            at.referenced,
            format!(
                "{ctx}scrape_timeout ({}) is greater than scrape_interval ({}{inherited})",
                format_duration(t),
                format_duration(interval)
            ),
        );
    }
    let timeout = explicit_timeout.unwrap_or(global.scrape_timeout.min(interval));

    let scheme = match raw.scheme.as_ref() {
        None => Scheme::Http,
        Some(s) => match s.value.as_str() {
            "http" | "" => Scheme::Http,
            "https" => Scheme::Https,
            other => {
                cx.err(
                    s.referenced,
                    format!("{ctx}scheme {other:?} is not supported: use http or https"),
                );
                Scheme::Http
            }
        },
    };
    let metrics_path = match raw.metrics_path.as_ref().map(|p| p.value.as_str()) {
        None | Some("") => "/metrics".to_string(),
        // Go's URL type adds the leading slash when printing; do it once here.
        Some(p) if !p.starts_with('/') => format!("/{p}"),
        Some(p) => p.to_string(),
    };

    only(
        cx,
        ctx,
        "track_timestamps_staleness",
        raw.track_timestamps_staleness.as_ref(),
        false,
        "watchpost does not write staleness markers for samples with explicit timestamps; use false or remove the key",
    );
    only(
        cx,
        ctx,
        "enable_compression",
        raw.enable_compression.as_ref(),
        true,
        "watchpost always asks targets for gzip; remove the key",
    );
    only(
        cx,
        ctx,
        "scrape_native_histograms",
        raw.scrape_native_histograms.as_ref(),
        false,
        NO_NATIVE_HISTOGRAMS,
    );
    only(
        cx,
        ctx,
        "convert_classic_histograms_to_nhcb",
        raw.convert_classic_histograms_to_nhcb.as_ref(),
        false,
        NO_NATIVE_HISTOGRAMS,
    );
    only(
        cx,
        ctx,
        "extra_scrape_metrics",
        raw.extra_scrape_metrics.as_ref(),
        false,
        "watchpost writes the standard scrape_* series only; use false or remove the key",
    );
    only(
        cx,
        ctx,
        "keep_dropped_targets",
        raw.keep_dropped_targets.as_ref(),
        0,
        "watchpost keeps every dropped target for the targets page; use 0 or remove the key",
    );
    check_protocols(cx, ctx, raw.scrape_protocols.as_ref());
    if let Some(f) = &raw.fallback_scrape_protocol {
        match f.value.as_str() {
            "PrometheusText0.0.4" | "PrometheusText1.0.0" => {}
            other if PROTOCOLS.contains(&other) => cx.err(
                f.referenced,
                format!("{ctx}fallback_scrape_protocol: {other} is not supported: watchpost reads a response without a usable Content-Type as PrometheusText0.0.4"),
            ),
            other => cx.err(
                f.referenced,
                format!("{ctx}fallback_scrape_protocol: unknown protocol {other:?}: use PrometheusText0.0.4"),
            ),
        }
    }
    check_name_schemes(
        cx,
        ctx,
        raw.metric_name_validation_scheme.as_ref(),
        raw.metric_name_escaping_scheme.as_ref(),
    );
    if let Some(f) = raw.native_histogram_min_bucket_factor
        && !(f.is_finite() && f >= 0.0)
    {
        cx.err(
            sc.referenced,
            format!("{ctx}native_histogram_min_bucket_factor: must be a number of 0 or more"),
        );
    }

    let http = build_http_client(cx, ctx, raw.http_client());

    let relabel_configs =
        build_relabel_configs(cx, ctx, "relabel_configs", raw.relabel_configs.as_ref());
    let metric_relabel_configs = build_relabel_configs(
        cx,
        ctx,
        "metric_relabel_configs",
        raw.metric_relabel_configs.as_ref(),
    );

    // Target addresses are checked only when no relabeling could rewrite
    // them (a blackbox job lists URLs and moves them to a parameter), which
    // is exactly when Prometheus checks them.
    let check_targets = raw.relabel_configs.as_ref().is_none_or(|r| r.is_empty());
    let mut static_configs = Vec::new();
    for (i, s) in raw.static_configs.iter().flatten().enumerate() {
        static_configs.push(build_static(
            cx,
            &format!("{ctx}static_configs[{i}]: "),
            s,
            check_targets,
        ));
    }
    let mut file_sd_configs = Vec::new();
    for (i, f) in raw.file_sd_configs.iter().flatten().enumerate() {
        if let Some(c) = build_file_sd(cx, &format!("{ctx}file_sd_configs[{i}]: "), f) {
            file_sd_configs.push(c);
        }
    }
    let mut http_sd_configs = Vec::new();
    for (i, h) in raw.http_sd_configs.iter().flatten().enumerate() {
        if let Some(c) = build_http_sd(cx, &format!("{ctx}http_sd_configs[{i}]: "), h) {
            http_sd_configs.push(c);
        }
    }

    let body = size(cx, ctx, "body_size_limit", raw.body_size_limit.as_ref()).unwrap_or(0);
    let or_global = |v: Option<u64>, g: u64| v.filter(|v| *v != 0).unwrap_or(g);
    let limits = ScrapeLimits {
        sample_limit: or_global(raw.sample_limit, global.limits.sample_limit),
        label_limit: or_global(raw.label_limit, global.limits.label_limit),
        label_name_length_limit: or_global(
            raw.label_name_length_limit,
            global.limits.label_name_length_limit,
        ),
        label_value_length_limit: or_global(
            raw.label_value_length_limit,
            global.limits.label_value_length_limit,
        ),
        body_size_limit: or_global(Some(body), global.limits.body_size_limit),
        target_limit: or_global(raw.target_limit, global.limits.target_limit),
    };

    if cx.error_count() != before {
        return None;
    }
    Some(ScrapeConfig {
        job_name: job_name?,
        scrape_interval: interval,
        scrape_timeout: timeout,
        metrics_path,
        scheme,
        params: raw.params.clone().unwrap_or_default(),
        honor_labels: raw.honor_labels.unwrap_or(false),
        honor_timestamps: raw.honor_timestamps.unwrap_or(true),
        http,
        static_configs,
        file_sd_configs,
        http_sd_configs,
        relabel_configs,
        metric_relabel_configs,
        limits,
    })
}

fn build_static(
    cx: &mut Cx<'_>,
    ctx: &str,
    s: &S<RawStaticConfig>,
    check_targets: bool,
) -> StaticConfig {
    let raw = &s.value;
    let mut targets = Vec::new();
    for t in raw.targets.iter().flatten() {
        if check_targets && let Err(why) = check_target_address(&t.value) {
            cx.err(t.referenced, format!("{ctx}target {:?} {why}", t.value));
        }
        targets.push(t.value.clone());
    }
    let mut pairs = Vec::new();
    for (name, value) in raw.labels.iter().flat_map(|m| m.0.iter()) {
        if is_valid_label_name(&name.value) {
            let value = value.as_ref().map(|v| v.value.clone()).unwrap_or_default();
            pairs.push((name.value.clone(), value));
        } else {
            cx.err(
                name.referenced,
                format!(
                    "{ctx}labels: {:?} is not a valid label name: use [a-zA-Z_][a-zA-Z0-9_]*",
                    name.value
                ),
            );
        }
    }
    StaticConfig {
        targets,
        labels: Labels::from_pairs(pairs),
    }
}

/// A static target must be `host`, `host:port` or `[ipv6]:port`: the scheme
/// and path come from the job (`scheme`, `metrics_path`).
pub(crate) fn check_target_address(t: &str) -> Result<(), String> {
    const HINT: &str =
        "set scheme and metrics_path on the job, or rewrite __address__ with relabel_configs";
    if t.is_empty() {
        return Err("is empty: write host:port".to_string());
    }
    if t.contains("://") {
        return Err(format!(
            "is not a valid host:port: drop the scheme and path ({HINT})"
        ));
    }
    if t.contains('/') {
        return Err(format!("is not a valid host:port: drop the path ({HINT})"));
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("is not a valid host:port: it contains whitespace".to_string());
    }
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return Err("is not a valid host:port: expected :port after ]".to_string()),
            },
            None => return Err("is not a valid host:port: missing ]".to_string()),
        }
    } else {
        match t.matches(':').count() {
            0 => (t, None),
            1 => t
                .split_once(':')
                .map(|(h, p)| (h, Some(p)))
                .unwrap_or((t, None)),
            _ => {
                return Err(
                    "is not a valid host:port: write IPv6 addresses in brackets, e.g. [::1]:9100"
                        .to_string(),
                );
            }
        }
    };
    if host.is_empty() {
        return Err("is not a valid host:port: the host is empty".to_string());
    }
    if let Some(p) = port
        && !matches!(p.parse::<u16>(), Ok(n) if n > 0)
    {
        return Err(format!(
            "is not a valid host:port: port {p:?} is not a number from 1 to 65535"
        ));
    }
    Ok(())
}

fn build_file_sd(cx: &mut Cx<'_>, ctx: &str, f: &S<RawFileSdConfig>) -> Option<FileSdConfig> {
    let raw = &f.value;
    let before = cx.error_count();
    let list = raw.files.as_deref().unwrap_or_default();
    if list.is_empty() {
        cx.err(
            f.referenced,
            format!("{ctx}files is missing: list at least one file pattern such as targets/*.json"),
        );
    }
    let mut files = Vec::new();
    for p in list {
        let s = &p.value;
        // Prometheus's rule: one optional * in the last path element, and a
        // .json, .yml or .yaml extension.
        let ext_ok = [".json", ".yml", ".yaml", ".JSON", ".YML", ".YAML"]
            .iter()
            .any(|e| s.ends_with(e));
        let star_ok = s.find('*').is_none_or(|i| !s[i..].contains('/'));
        if !ext_ok || !star_ok {
            cx.err(
                p.referenced,
                format!(
                    "{ctx}files: {s:?} is not a valid file_sd path: use a .json, .yml or .yaml file name with at most one * in its last path element"
                ),
            );
        } else if let Err(e) = glob::Pattern::new(s) {
            cx.err(
                p.referenced,
                format!("{ctx}files: {s:?} is not a valid path pattern: {}", e.msg),
            );
        } else {
            files.push(path_string(&cx.path(s)));
        }
    }
    let refresh = refresh_interval(
        cx,
        ctx,
        raw.refresh_interval.as_ref(),
        DEFAULT_FILE_SD_REFRESH,
    );
    (cx.error_count() == before).then_some(FileSdConfig {
        files,
        refresh_interval: refresh,
    })
}

fn refresh_interval(
    cx: &mut Cx<'_>,
    ctx: &str,
    v: Option<&S<String>>,
    default: Duration,
) -> Duration {
    match duration(cx, ctx, "refresh_interval", v) {
        Some(d) if d.is_zero() => {
            if let Some(v) = v {
                cx.err(
                    v.referenced,
                    format!("{ctx}refresh_interval: must be greater than 0s"),
                );
            }
            default
        }
        Some(d) => d,
        None => default,
    }
}

fn build_http_sd(cx: &mut Cx<'_>, ctx: &str, h: &S<RawHttpSdConfig>) -> Option<HttpSdConfig> {
    let raw = &h.value;
    let before = cx.error_count();
    refused(cx, ctx, &raw.refused_keys());
    let url = match &raw.url {
        None => {
            cx.err(
                h.referenced,
                format!("{ctx}url is missing: give the http(s) URL that serves the target list"),
            );
            String::new()
        }
        Some(u) => {
            if let Err(why) = check_http_url(&u.value) {
                cx.err(u.referenced, format!("{ctx}url {:?} {why}", u.value));
            }
            u.value.clone()
        }
    };
    let refresh = refresh_interval(
        cx,
        ctx,
        raw.refresh_interval.as_ref(),
        DEFAULT_HTTP_SD_REFRESH,
    );
    let http = build_http_client(cx, ctx, raw.http_client());
    (cx.error_count() == before).then_some(HttpSdConfig {
        url,
        refresh_interval: refresh,
        http,
    })
}

/// An absolute http or https URL with a host.
pub(crate) fn check_http_url(s: &str) -> Result<(), String> {
    match reqwest::Url::parse(s) {
        Err(e) => Err(format!(
            "is not a valid URL ({e}): write an absolute http:// or https:// URL"
        )),
        Ok(u) if u.scheme() != "http" && u.scheme() != "https" => Err(format!(
            "is not supported: the scheme must be http or https, not {}",
            u.scheme()
        )),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            Err("is not a valid URL: the host is missing".to_string())
        }
        Ok(_) => Ok(()),
    }
}

/// A non-empty string value (Prometheus treats `""` as unset).
pub(crate) fn set(v: Option<&S<String>>) -> Option<&S<String>> {
    v.filter(|s| !s.value.is_empty())
}

/// An inline secret or its `*_file` twin; both set is an error.
pub(crate) fn secret_source(
    cx: &mut Cx<'_>,
    ctx: &str,
    inline_key: &str,
    inline: Option<&S<String>>,
    file_key: &str,
    file: Option<&S<String>>,
) -> Option<SecretSource> {
    match (set(inline), set(file)) {
        (Some(_), Some(f)) => {
            cx.err(
                f.referenced,
                format!("{ctx}{inline_key} and {file_key} are both set: keep one"),
            );
            None
        }
        (Some(s), None) => Some(SecretSource::Inline(Secret::new(s.value.clone()))),
        (None, Some(f)) => Some(SecretSource::File(cx.path(&f.value))),
        (None, None) => None,
    }
}

pub(crate) fn build_http_client(
    cx: &mut Cx<'_>,
    ctx: &str,
    raw: RawHttpClient<'_>,
) -> HttpClientConfig {
    let basic_auth = raw.basic_auth.map(|b| {
        let bctx = format!("{ctx}basic_auth: ");
        refused(cx, &bctx, &b.value.refused_keys());
        BasicAuth {
            username: b.value.username.clone().unwrap_or_default(),
            password: secret_source(
                cx,
                &bctx,
                "password",
                b.value.password.as_ref(),
                "password_file",
                b.value.password_file.as_ref(),
            ),
        }
    });
    let bearer = secret_source(
        cx,
        ctx,
        "bearer_token",
        raw.bearer_token,
        "bearer_token_file",
        raw.bearer_token_file,
    );
    let bearer_at = set(raw.bearer_token)
        .or(set(raw.bearer_token_file))
        .map(|s| s.referenced);
    let mut authorization = raw.authorization.map(|a| {
        let actx = format!("{ctx}authorization: ");
        refused(cx, &actx, &a.value.refused_keys());
        let kind = a
            .value
            .kind
            .as_ref()
            .map(|k| k.value.trim().to_string())
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| "Bearer".to_string());
        if kind.eq_ignore_ascii_case("basic") {
            let at = a
                .value
                .kind
                .as_ref()
                .map(|k| k.referenced)
                .unwrap_or(a.referenced);
            cx.err(
                at,
                format!("{actx}type cannot be Basic: use basic_auth instead"),
            );
        }
        Authorization {
            kind,
            credentials: secret_source(
                cx,
                &actx,
                "credentials",
                a.value.credentials.as_ref(),
                "credentials_file",
                a.value.credentials_file.as_ref(),
            ),
        }
    });
    if let (Some(a), Some(b)) = (raw.authorization, raw.basic_auth) {
        let at = later(a.referenced, b.referenced);
        cx.err(
            at,
            format!("{ctx}basic_auth and authorization are both set: use one way to authenticate"),
        );
    }
    if let Some(at) = bearer_at {
        if raw.basic_auth.is_some() {
            cx.err(
                at,
                format!(
                    "{ctx}basic_auth and bearer_token are both set: use one way to authenticate"
                ),
            );
        } else if raw.authorization.is_some() {
            cx.err(at, format!("{ctx}authorization and bearer_token are both set: bearer_token is the old spelling of authorization; keep authorization"));
        } else if let Some(credentials) = bearer {
            authorization = Some(Authorization {
                kind: "Bearer".to_string(),
                credentials: Some(credentials),
            });
        }
    }

    let tls_config = raw
        .tls_config
        .map(|t| build_tls(cx, &format!("{ctx}tls_config: "), t))
        .unwrap_or_default();

    let proxy_url = set(raw.proxy_url).and_then(|p| match check_http_url(&p.value) {
        Ok(()) => Some(p.value.clone()),
        Err(why) => {
            cx.err(p.referenced, format!("{ctx}proxy_url {:?} {why}", p.value));
            None
        }
    });

    HttpClientConfig {
        basic_auth,
        authorization,
        tls_config,
        follow_redirects: raw.follow_redirects.map(|b| b.value).unwrap_or(true),
        enable_http2: raw.enable_http2.map(|b| b.value).unwrap_or(true),
        proxy_url,
    }
}

/// The later of two positions, to report a conflict at its second key.
pub(crate) fn later(a: Location, b: Location) -> Location {
    if (b.line(), b.column()) > (a.line(), a.column()) {
        b
    } else {
        a
    }
}

pub(crate) fn build_tls(cx: &mut Cx<'_>, ctx: &str, t: &S<RawTlsConfig>) -> TlsConfig {
    let raw = &t.value;
    refused(cx, ctx, &raw.refused_keys());
    let cert = set(raw.cert_file.as_ref());
    let key = set(raw.key_file.as_ref());
    match (cert, key) {
        (Some(c), None) => cx.err(
            c.referenced,
            format!("{ctx}cert_file is set without key_file: set both for a client certificate"),
        ),
        (None, Some(k)) => cx.err(
            k.referenced,
            format!("{ctx}key_file is set without cert_file: set both for a client certificate"),
        ),
        _ => {}
    }
    for (key, v, allowed) in [
        ("min_version", raw.min_version.as_ref(), "TLS12"),
        ("max_version", raw.max_version.as_ref(), "TLS13"),
    ] {
        let Some(v) = set(v) else { continue };
        match v.value.as_str() {
            x if x == allowed => {}
            "TLS10" | "TLS11" | "TLS12" | "TLS13" => cx.err(
                v.referenced,
                format!(
                    "{ctx}{key}: {} is not supported: watchpost negotiates TLS 1.2 or 1.3 with targets; use {allowed} or remove the key",
                    v.value
                ),
            ),
            other => cx.err(
                v.referenced,
                format!("{ctx}{key}: unknown TLS version {other:?}: use {allowed}"),
            ),
        }
    }
    TlsConfig {
        ca_file: set(raw.ca_file.as_ref()).map(|p| cx.path(&p.value)),
        cert_file: cert.map(|p| cx.path(&p.value)),
        key_file: key.map(|p| cx.path(&p.value)),
        server_name: raw.server_name.clone().filter(|s| !s.is_empty()),
        insecure_skip_verify: raw.insecure_skip_verify.unwrap_or(false),
    }
}

fn build_storage(cx: &mut Cx<'_>, s: Option<&S<RawStorage>>) -> StorageConfig {
    let empty = RawStorage::default();
    let raw = s.map(|s| &s.value).unwrap_or(&empty);
    let tsdb_retention = raw.tsdb.as_ref().and_then(|t| t.value.retention.as_ref());
    if let (Some(_), Some(t)) = (&raw.retention, tsdb_retention) {
        cx.err(
            t.referenced,
            "storage: retention is set both in storage.retention and storage.tsdb.retention: keep one",
        );
    }
    let (ctx, retention) = match (&raw.retention, tsdb_retention) {
        (Some(r), _) => ("storage: retention: ", Some(r)),
        (None, Some(r)) => ("storage: tsdb: retention: ", Some(r)),
        (None, None) => ("", None),
    };
    let time = retention
        .and_then(|r| duration(cx, ctx, "time", r.value.time.as_ref()))
        .unwrap_or_default();
    let size = retention
        .and_then(|r| size(cx, ctx, "size", r.value.size.as_ref()))
        .unwrap_or(0);
    // Prometheus: 15d unless a time is given, or only a size limit is.
    let retention_time = if time.is_zero() && size == 0 {
        DEFAULT_RETENTION
    } else {
        time
    };
    let out_of_order_time_window = raw
        .tsdb
        .as_ref()
        .and_then(|t| {
            duration(
                cx,
                "storage: tsdb: ",
                "out_of_order_time_window",
                t.value.out_of_order_time_window.as_ref(),
            )
        })
        .unwrap_or_default();
    StorageConfig {
        retention_time,
        retention_size: size,
        out_of_order_time_window,
    }
}

fn build_web(cx: &mut Cx<'_>, w: Option<&S<RawWeb>>) -> WebConfig {
    let Some(w) = w else {
        return WebConfig::default();
    };
    let external_url =
        set(w.value.external_url.as_ref()).and_then(|u| match check_http_url(&u.value) {
            Ok(()) => Some(u.value.clone()),
            Err(why) => {
                cx.err(
                    u.referenced,
                    format!("web: external_url {:?} {why}", u.value),
                );
                None
            }
        });
    WebConfig {
        external_url,
        page_title: w.value.page_title.clone().filter(|t| !t.is_empty()),
    }
}
