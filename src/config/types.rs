//! The validated, typed configuration that the rest of watchpost consumes.
//!
//! Everything here has passed validation: durations are `Duration`s, regexes
//! are compiled, relative paths are resolved against the config file's
//! directory, secrets are wrapped in [`Secret`]. Building these values does
//! no I/O beyond reading the files the config names.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

use super::secret::Secret;
use crate::model::Labels;

/// The whole `watchpost.yml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// File the config was loaded from (None for configs built from strings).
    pub source: Option<PathBuf>,
    pub global: GlobalConfig,
    pub scrape_configs: Vec<ScrapeConfig>,
    /// `rule_files` globs, resolved against the config directory. Evaluated
    /// by the rules issue; parsed now so existing prometheus.yml files load.
    pub rule_files: Vec<String>,
    pub storage: StorageConfig,
    pub web: WebConfig,
    /// The Alertmanager config: the inline `notify:` section or the file
    /// `notify_file:` names (see [`super::notify::NotifyConfig::path`]).
    pub notify: Option<super::notify::NotifyConfig>,
    /// Sections that later stages own and that are, for now, kept as parsed
    /// YAML: `alerting`, `remote_write`.
    pub alerting: Option<serde_json::Value>,
    pub remote_write: Vec<serde_json::Value>,
    /// `push:`: the Pushgateway API and the remote-write receiver.
    pub push: super::push::PushConfig,
    /// `heartbeats:`: dead man's switches pinged over HTTP.
    pub heartbeats: Vec<super::HeartbeatConfig>,
    /// `reports:`: digest reports sent on cron schedules.
    pub reports: Vec<super::reports::ReportConfig>,
    /// The config as the API shows it (`/api/v1/status/config`): YAML with
    /// every secret replaced by `<secret>`.
    pub redacted_yaml: String,
}

/// `global:`.
#[derive(Debug, Clone)]
pub struct GlobalConfig {
    /// How often jobs scrape unless they say otherwise (default 1m).
    pub scrape_interval: Duration,
    /// How long a scrape may take unless a job says otherwise (default 10s,
    /// or `scrape_interval` when that is shorter).
    pub scrape_timeout: Duration,
    /// How often rule groups are evaluated by default (default 1m).
    pub evaluation_interval: Duration,
    /// Labels added to alerts and to data leaving watchpost (remote write,
    /// federation). `$VAR` / `${VAR}` in values are expanded from the
    /// environment at load, as Prometheus does.
    pub external_labels: Labels,
    /// Defaults for the per-job limits (Prometheus 2.45+ lets `global` set them).
    pub limits: ScrapeLimits,
    /// `global.rule_query_offset` (default 0s): rule groups evaluate this far
    /// in the past so late samples are in. Used by the rules issue.
    pub rule_query_offset: Duration,
    /// `global.rule_evaluation` (a watchpost extension, default
    /// `interval`): how rule groups that do not set `evaluation:` are
    /// triggered.
    pub rule_evaluation: RuleEvaluation,
}

/// When a rule group is evaluated (watchpost extension; Prometheus only
/// knows `Interval`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RuleEvaluation {
    /// On the group's interval only, as Prometheus does.
    #[default]
    Interval,
    /// On the interval and also right after a scrape that stored samples of
    /// a metric the group's expressions select.
    OnScrape,
}

impl RuleEvaluation {
    /// Parses the YAML spelling (`interval`, `on_scrape`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "interval" => Some(RuleEvaluation::Interval),
            "on_scrape" => Some(RuleEvaluation::OnScrape),
            _ => None,
        }
    }

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleEvaluation::Interval => "interval",
            RuleEvaluation::OnScrape => "on_scrape",
        }
    }
}

/// One `scrape_configs` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeConfig {
    /// The `job` label of every target; unique across the config.
    pub job_name: String,
    /// The job's own interval, or the global one.
    pub scrape_interval: Duration,
    /// The job's own timeout, or the global one capped at this job's
    /// interval (Prometheus's rule); never greater than `scrape_interval`.
    pub scrape_timeout: Duration,
    /// Path of the metrics endpoint (default `/metrics`), always starting with `/`.
    pub metrics_path: String,
    /// `http` (default) or `https`.
    pub scheme: Scheme,
    /// URL query parameters, in sorted key order.
    pub params: BTreeMap<String, Vec<String>>,
    /// On a clash between a scraped label and a target label, keep the
    /// scraped one (default false: the scraped one is renamed `exported_*`).
    pub honor_labels: bool,
    /// Keep timestamps the target exposes (default true).
    pub honor_timestamps: bool,
    /// Auth, TLS and redirect settings for scraping this job's targets.
    pub http: HttpClientConfig,
    pub static_configs: Vec<StaticConfig>,
    pub file_sd_configs: Vec<FileSdConfig>,
    pub http_sd_configs: Vec<HttpSdConfig>,
    /// Applied to each target's labels before scraping.
    pub relabel_configs: Vec<RelabelConfig>,
    /// Applied to each scraped series before it is stored.
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// The job's limits; each 0 in the job's YAML falls back to `global`.
    pub limits: ScrapeLimits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Per-scrape limits; 0 means "no limit", as in Prometheus.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrapeLimits {
    pub sample_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    /// Bytes of uncompressed body; 0 means watchpost's own hard ceiling.
    pub body_size_limit: u64,
    pub target_limit: u64,
}

/// Where a secret comes from: inline in the config, or a file read when it
/// is needed (so rotating the file needs no reload, as in Prometheus).
#[derive(Debug, Clone, PartialEq)]
pub enum SecretSource {
    Inline(Secret<String>),
    File(PathBuf),
}

/// HTTP client settings shared by scraping and http_sd.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpClientConfig {
    /// At most one of `basic_auth` and `authorization` is set.
    pub basic_auth: Option<BasicAuth>,
    /// `authorization`, or Prometheus's older `bearer_token` /
    /// `bearer_token_file`, which load as type `Bearer`.
    pub authorization: Option<Authorization>,
    pub tls_config: TlsConfig,
    /// Follow HTTP redirects (default true).
    pub follow_redirects: bool,
    /// Allow HTTP/2 (default true).
    pub enable_http2: bool,
    /// `proxy_url`: an http or https proxy for every request.
    pub proxy_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BasicAuth {
    pub username: String,
    /// None means an empty password.
    pub password: Option<SecretSource>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Authorization {
    /// `Bearer` unless configured otherwise.
    pub kind: String,
    pub credentials: Option<SecretSource>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsConfig {
    /// CA bundle to verify the server with (system roots when unset).
    pub ca_file: Option<PathBuf>,
    /// Client certificate; set together with `key_file`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Name to verify the server certificate against, and to send as SNI.
    pub server_name: Option<String>,
    /// Skip verifying the server certificate (default false).
    pub insecure_skip_verify: bool,
}

/// `static_configs` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticConfig {
    /// `host:port` addresses (or anything, when `relabel_configs` rewrites
    /// `__address__`, as blackbox jobs do).
    pub targets: Vec<String>,
    /// Labels added to every target of this group.
    pub labels: Labels,
}

/// `file_sd_configs` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSdConfig {
    /// Glob patterns, resolved against the config directory.
    pub files: Vec<String>,
    /// How often the files are re-read besides on change (default 5m).
    pub refresh_interval: Duration,
}

/// `http_sd_configs` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSdConfig {
    /// An http or https URL returning Prometheus's http_sd JSON.
    pub url: String,
    /// How often the URL is fetched (default 60s).
    pub refresh_interval: Duration,
    /// The endpoint's own auth and TLS settings.
    pub http: HttpClientConfig,
}

/// Relabeling actions, exactly Prometheus's set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelabelAction {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

/// One relabel rule with defaults applied and the regex compiled (anchored).
#[derive(Debug, Clone)]
pub struct RelabelConfig {
    pub source_labels: Vec<String>,
    pub separator: String,
    /// Compiled `^(?:regex)$`.
    pub regex: Regex,
    /// The regex as written, for display.
    pub regex_source: String,
    pub modulus: u64,
    pub target_label: String,
    pub replacement: String,
    pub action: RelabelAction,
}

/// `storage:` (durable engine settings; the engine arrives with the
/// storage issue, the keys parse now).
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// `storage.retention.time`. When neither time nor size is set it is
    /// 15d, as in Prometheus; when only `size` is set it is zero, meaning
    /// "no time limit" (Prometheus's rule).
    pub retention_time: Duration,
    /// `storage.retention.size` in bytes; 0 = unlimited.
    pub retention_size: u64,
    /// `storage.tsdb.out_of_order_time_window` (default 0s: samples older
    /// than a series' newest sample are rejected).
    pub out_of_order_time_window: Duration,
}

/// `web:`.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// The URL under which watchpost is reachable from outside (for links in
    /// notifications); defaults to `http://<listen address>/`.
    pub external_url: Option<String>,
    pub page_title: Option<String>,
}

/// Two rules are equal when they are written the same; the compiled regex
/// is compared through its source.
impl PartialEq for RelabelConfig {
    fn eq(&self, o: &Self) -> bool {
        self.source_labels == o.source_labels
            && self.separator == o.separator
            && self.regex_source == o.regex_source
            && self.modulus == o.modulus
            && self.target_label == o.target_label
            && self.replacement == o.replacement
            && self.action == o.action
    }
}
