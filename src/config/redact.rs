//! The effective config as YAML for `/api/v1/status/config`: defaults and
//! inheritance applied (as Prometheus shows its config), relative paths
//! resolved, and every secret printed as `<secret>`.
//!
//! Typed secrets redact themselves ([`Secret`] serializes as `<secret>`).
//! The sections still kept as plain YAML (`notify`, `alerting`,
//! `remote_write`, `push`, `heartbeats`, `reports`) are redacted by key
//! name with [`redact_value`]. Pure, no I/O.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::relabel::action_name;
use super::secret::{REDACTED, Secret};
use super::types::*;
use super::units::format_size;
use crate::model::{Labels, format_duration};

/// Renders `config` as redacted YAML.
pub(crate) fn redacted_yaml(config: &Config) -> String {
    let redacted = |v: &Option<Value>| {
        v.clone().map(|mut v| {
            redact_value(&mut v, None);
            v
        })
    };
    let view = View {
        global: GlobalView {
            scrape_interval: format_duration(config.global.scrape_interval),
            scrape_timeout: format_duration(config.global.scrape_timeout),
            evaluation_interval: format_duration(config.global.evaluation_interval),
            rule_query_offset: nonzero_duration(config.global.rule_query_offset),
            rule_evaluation: (config.global.rule_evaluation != RuleEvaluation::Interval)
                .then(|| config.global.rule_evaluation.as_str()),
            external_labels: labels(&config.global.external_labels),
            limits: LimitsView::of(&config.global.limits),
        },
        rule_files: &config.rule_files,
        scrape_configs: config.scrape_configs.iter().map(ScrapeView::of).collect(),
        alerting: redacted(&config.alerting),
        remote_write: config
            .remote_write
            .iter()
            .map(|v| {
                let mut v = v.clone();
                redact_value(&mut v, None);
                v
            })
            .collect(),
        storage: StorageView {
            retention: RetentionView {
                time: format_duration(config.storage.retention_time),
                size: (config.storage.retention_size != 0)
                    .then(|| format_size(config.storage.retention_size)),
            },
            tsdb: (!config.storage.out_of_order_time_window.is_zero()).then(|| TsdbView {
                out_of_order_time_window: format_duration(config.storage.out_of_order_time_window),
            }),
        },
        web: (config.web.external_url.is_some() || config.web.page_title.is_some()).then_some(
            WebView {
                external_url: config.web.external_url.as_deref().map(redact_url),
                page_title: config.web.page_title.as_deref(),
            },
        ),
        // An inline section is shown as written (secrets redacted); a
        // notify file by its path, as in the original config.
        notify: config
            .notify
            .as_ref()
            .filter(|n| n.path.is_none())
            .map(|n| n.redacted.clone()),
        notify_file: config
            .notify
            .as_ref()
            .and_then(|n| n.path.as_ref())
            .map(|p| p.to_string_lossy().into_owned()),
        // Shown only when set, so an untouched config renders as before.
        push: (config.push != super::push::PushConfig::default()).then_some(&config.push),
        heartbeats: super::heartbeats::view(&config.heartbeats),
        reports: super::reports::shown(&config.reports),
    };
    serde_saphyr::to_string(&view)
        .unwrap_or_else(|e| format!("# the config could not be rendered: {e}\n"))
}

/// A URL with the password of its user info replaced, as Go's
/// `URL.Redacted` does (`http://user:xxxxx@host/`). Anything that does not
/// parse as a URL is returned unchanged.
pub(crate) fn redact_url(s: &str) -> String {
    match reqwest::Url::parse(s) {
        Ok(mut u) if u.password().is_some() => {
            if u.set_password(Some("xxxxx")).is_ok() {
                u.to_string()
            } else {
                s.to_string()
            }
        }
        _ => s.to_string(),
    }
}

fn nonzero_duration(d: std::time::Duration) -> Option<String> {
    (!d.is_zero()).then(|| format_duration(d))
}

fn labels(l: &Labels) -> BTreeMap<&str, &str> {
    l.iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect()
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize)]
struct View<'a> {
    global: GlobalView<'a>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    rule_files: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scrape_configs: Vec<ScrapeView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alerting: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    remote_write: Vec<Value>,
    storage: StorageView,
    #[serde(skip_serializing_if = "Option::is_none")]
    web: Option<WebView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    push: Option<&'a super::push::PushConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeats: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reports: Option<Value>,
}

#[derive(Serialize)]
struct GlobalView<'a> {
    scrape_interval: String,
    scrape_timeout: String,
    evaluation_interval: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_query_offset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_evaluation: Option<&'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    external_labels: BTreeMap<&'a str, &'a str>,
    #[serde(flatten)]
    limits: LimitsView,
}

#[derive(Serialize)]
struct LimitsView {
    #[serde(skip_serializing_if = "Option::is_none")]
    body_size_limit: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    sample_limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    target_limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    label_limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    label_name_length_limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    label_value_length_limit: u64,
}

impl LimitsView {
    fn of(l: &ScrapeLimits) -> Self {
        LimitsView {
            body_size_limit: (l.body_size_limit != 0).then(|| format_size(l.body_size_limit)),
            sample_limit: l.sample_limit,
            target_limit: l.target_limit,
            label_limit: l.label_limit,
            label_name_length_limit: l.label_name_length_limit,
            label_value_length_limit: l.label_value_length_limit,
        }
    }
}

#[derive(Serialize)]
struct ScrapeView<'a> {
    job_name: &'a str,
    honor_labels: bool,
    honor_timestamps: bool,
    scrape_interval: String,
    scrape_timeout: String,
    metrics_path: &'a str,
    scheme: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    params: &'a BTreeMap<String, Vec<String>>,
    #[serde(flatten)]
    limits: LimitsView,
    #[serde(flatten)]
    http: HttpView<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    static_configs: Vec<StaticView<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    file_sd_configs: Vec<FileSdView<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    http_sd_configs: Vec<HttpSdView<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    relabel_configs: Vec<RelabelView<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    metric_relabel_configs: Vec<RelabelView<'a>>,
}

impl<'a> ScrapeView<'a> {
    fn of(c: &'a ScrapeConfig) -> Self {
        ScrapeView {
            job_name: &c.job_name,
            honor_labels: c.honor_labels,
            honor_timestamps: c.honor_timestamps,
            scrape_interval: format_duration(c.scrape_interval),
            scrape_timeout: format_duration(c.scrape_timeout),
            metrics_path: &c.metrics_path,
            scheme: c.scheme.as_str(),
            params: &c.params,
            limits: LimitsView::of(&c.limits),
            http: HttpView::of(&c.http),
            static_configs: c
                .static_configs
                .iter()
                .map(|s| StaticView {
                    targets: &s.targets,
                    labels: labels(&s.labels),
                })
                .collect(),
            file_sd_configs: c
                .file_sd_configs
                .iter()
                .map(|f| FileSdView {
                    files: &f.files,
                    refresh_interval: format_duration(f.refresh_interval),
                })
                .collect(),
            http_sd_configs: c
                .http_sd_configs
                .iter()
                .map(|h| HttpSdView {
                    url: redact_url(&h.url),
                    refresh_interval: format_duration(h.refresh_interval),
                    http: HttpView::of(&h.http),
                })
                .collect(),
            relabel_configs: c.relabel_configs.iter().map(RelabelView::of).collect(),
            metric_relabel_configs: c
                .metric_relabel_configs
                .iter()
                .map(RelabelView::of)
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct HttpView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    basic_auth: Option<BasicAuthView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization: Option<AuthorizationView<'a>>,
    tls_config: TlsView<'a>,
    follow_redirects: bool,
    enable_http2: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    proxy_url: Option<String>,
}

impl<'a> HttpView<'a> {
    fn of(h: &'a HttpClientConfig) -> Self {
        HttpView {
            basic_auth: h.basic_auth.as_ref().map(|b| {
                let (password, password_file) = secret_view(b.password.as_ref());
                BasicAuthView {
                    username: &b.username,
                    password,
                    password_file,
                }
            }),
            authorization: h.authorization.as_ref().map(|a| {
                let (credentials, credentials_file) = secret_view(a.credentials.as_ref());
                AuthorizationView {
                    kind: &a.kind,
                    credentials,
                    credentials_file,
                }
            }),
            tls_config: TlsView {
                ca_file: h
                    .tls_config
                    .ca_file
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned()),
                cert_file: h
                    .tls_config
                    .cert_file
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned()),
                key_file: h
                    .tls_config
                    .key_file
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned()),
                server_name: h.tls_config.server_name.as_deref(),
                insecure_skip_verify: h.tls_config.insecure_skip_verify,
            },
            follow_redirects: h.follow_redirects,
            enable_http2: h.enable_http2,
            proxy_url: h.proxy_url.as_deref().map(redact_url),
        }
    }
}

fn secret_view(s: Option<&SecretSource>) -> (Option<&Secret<String>>, Option<String>) {
    match s {
        Some(SecretSource::Inline(s)) => (Some(s), None),
        Some(SecretSource::File(p)) => (None, Some(p.to_string_lossy().into_owned())),
        None => (None, None),
    }
}

#[derive(Serialize)]
struct BasicAuthView<'a> {
    username: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a Secret<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_file: Option<String>,
}

#[derive(Serialize)]
struct AuthorizationView<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    credentials: Option<&'a Secret<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credentials_file: Option<String>,
}

#[derive(Serialize)]
struct TlsView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_name: Option<&'a str>,
    insecure_skip_verify: bool,
}

#[derive(Serialize)]
struct StaticView<'a> {
    targets: &'a [String],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct FileSdView<'a> {
    files: &'a [String],
    refresh_interval: String,
}

#[derive(Serialize)]
struct HttpSdView<'a> {
    url: String,
    refresh_interval: String,
    #[serde(flatten)]
    http: HttpView<'a>,
}

#[derive(Serialize)]
struct RelabelView<'a> {
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    source_labels: &'a [String],
    separator: &'a str,
    regex: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    modulus: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    target_label: &'a str,
    replacement: &'a str,
    action: &'static str,
}

impl<'a> RelabelView<'a> {
    fn of(r: &'a RelabelConfig) -> Self {
        RelabelView {
            source_labels: &r.source_labels,
            separator: &r.separator,
            regex: &r.regex_source,
            modulus: r.modulus,
            target_label: &r.target_label,
            replacement: &r.replacement,
            action: action_name(r.action),
        }
    }
}

#[derive(Serialize)]
struct StorageView {
    retention: RetentionView,
    #[serde(skip_serializing_if = "Option::is_none")]
    tsdb: Option<TsdbView>,
}

#[derive(Serialize)]
struct RetentionView {
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<String>,
}

#[derive(Serialize)]
struct TsdbView {
    out_of_order_time_window: String,
}

#[derive(Serialize)]
struct WebView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    external_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    page_title: Option<&'a str>,
}

/// Whether the value under `key` (inside a mapping that is itself under
/// `parent`) is a secret in Prometheus's or Alertmanager's config.
///
/// The list, by key name (keys ending in `webhook_url` included, such as
/// `mattermost_webhook_url`):
/// - credentials of HTTP clients: `password`, `credentials`, `bearer_token`,
///   `client_secret` (oauth2), `secret_key` (sigv4), `key` under `tls_config`
///   (inline private key), every entry of a `secrets` list (`http_headers`);
/// - Alertmanager receivers and globals: anything ending in `password`,
///   `_secret`, `_token` or `api_key` (`smtp_auth_password`, `auth_secret`,
///   `bot_token`, `opsgenie_api_key`, ...), plus `token`, `api_secret`,
///   `routing_key`, `service_key`, `user_key`, `webhook_url`,
///   `slack_api_url`;
/// - URLs that embed a credential: `url` under `webhook_configs`, `api_url`
///   under `slack_configs`.
///
/// `*_file` keys name files and are shown. Any other `*url` value keeps its
/// text but loses the password of its user info (`http://u:xxxxx@host`).
pub(crate) fn is_secret_key(key: &str, parent: Option<&str>) -> bool {
    const EXACT: [&str; 14] = [
        "password",
        "credentials",
        "bearer_token",
        "client_secret",
        "secret_key",
        "token",
        "api_secret",
        "routing_key",
        "service_key",
        "user_key",
        "webhook_url",
        "slack_api_url",
        "api_key",
        "auth_secret",
    ];
    if key.ends_with("_file") {
        return false;
    }
    EXACT.contains(&key)
        || key.ends_with("password")
        || key.ends_with("_secret")
        || key.ends_with("_token")
        || key.ends_with("api_key")
        || key.ends_with("webhook_url")
        || (key == "key" && parent == Some("tls_config"))
        || (key == "url" && parent == Some("webhook_configs"))
        || (key == "api_url" && parent == Some("slack_configs"))
}

/// Replaces every secret scalar in `v` (see [`is_secret_key`]) with
/// `<secret>`. `parent` is the key `v` sits under, if any.
pub(crate) fn redact_value(v: &mut Value, parent: Option<&str>) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if k == "secrets" {
                    redact_all(val);
                } else if is_secret_key(k, parent) && !val.is_object() && !val.is_array() {
                    if !val.is_null() {
                        *val = Value::String(REDACTED.to_string());
                    }
                } else if let (true, Value::String(u)) = (k.ends_with("url"), &*val) {
                    *val = Value::String(redact_url(u));
                } else {
                    redact_value(val, Some(k));
                }
            }
        }
        // List items keep the list's key as their parent, so
        // `webhook_configs: [{url: ...}]` is recognised.
        Value::Array(items) => {
            for item in items {
                redact_value(item, parent);
            }
        }
        _ => {}
    }
}

fn redact_all(v: &mut Value) {
    match v {
        Value::Object(map) => map.values_mut().for_each(redact_all),
        Value::Array(items) => items.iter_mut().for_each(redact_all),
        Value::Null => {}
        other => *other = Value::String(REDACTED.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_alertmanager_secrets_by_key() {
        let mut v = json!({
            "global": {"smtp_auth_password": "p1", "smtp_auth_username": "me", "slack_api_url": "https://hooks/x",
                       "smtp_auth_password_file": "/etc/p", "telegram_api_url": "https://api.telegram.org"},
            "receivers": [
                {"name": "r", "webhook_configs": [{"url": "https://h/secret-path", "send_resolved": true}],
                 "telegram_configs": [{"bot_token": "123:abc", "chat_id": 5, "api_url": "https://api.telegram.org"}],
                 "slack_configs": [{"api_url": "https://hooks.slack/x", "channel": "#a"}],
                 "email_configs": [{"to": "a@b", "auth_password": "p2", "auth_secret": "s"}],
                 "pagerduty_configs": [{"routing_key": "rk", "service_key": "sk"}],
                 "opsgenie_configs": [{"api_key": "k", "api_url": "https://api.opsgenie.com"}]}
            ],
            "remote_write": [{"url": "https://user:pw@rw.example/api"}],
            "http_config": {"authorization": {"credentials": "c"}, "basic_auth": {"password": "p3"},
                            "oauth2": {"client_secret": "cs"}, "tls_config": {"key": "PEM", "key_file": "k.pem"},
                            "http_headers": {"X-Token": {"secrets": ["a", "b"]}}}
        });
        redact_value(&mut v, None);
        let text = v.to_string();
        assert!(!text.contains("pw@"), "{text}");
        for secret in [
            "p1",
            "p2",
            "p3",
            "hooks/x",
            "secret-path",
            "123:abc",
            "hooks.slack",
            "\"s\"",
            "rk",
            "sk",
            "\"k\"",
            "\"c\"",
            "cs",
            "PEM",
            "\"a\"",
            "\"b\"",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        for kept in [
            "me",
            "/etc/p",
            "https://api.telegram.org",
            "#a",
            "a@b",
            "k.pem",
            "https://api.opsgenie.com",
        ] {
            assert!(text.contains(kept), "{kept} was redacted: {text}");
        }
    }
}
