//! Prometheus's `alerting:` section, the part watchpost acts on: the
//! `alertmanagers` it forwards alerts to (see `channels::alertmanager`).
//!
//! The section stays in [`super::Config::alerting`] as parsed YAML until
//! the loader validates it; [`parse_alerting`] turns it into
//! [`AlertingConfig`] with Prometheus's defaults (scheme http, path prefix
//! `/`, timeout 10s, API v2). Only `static_configs` discovery is supported;
//! any other key is an error that names it, rather than being ignored.
//! Like the rest of `config`, this reads no files: `*_file` secrets and TLS
//! files are read by the HTTP client when it is built or sends.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::secret::Secret;
use super::types::{Authorization, BasicAuth, HttpClientConfig, Scheme, SecretSource, TlsConfig};
use crate::model::parse_duration;

/// `alerting:` as watchpost uses it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertingConfig {
    pub alertmanagers: Vec<AlertmanagerSet>,
}

/// One `alertmanagers` entry: a set of Alertmanagers that all receive every
/// alert (an HA cluster deduplicates them).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerSet {
    /// `host:port` of each Alertmanager, from `static_configs`.
    pub targets: Vec<String>,
    pub scheme: Scheme,
    /// Starts with `/` and has no trailing `/` (empty for the root).
    pub path_prefix: String,
    /// Per-request timeout (default 10s).
    pub timeout: Duration,
    pub http: HttpClientConfig,
}

impl AlertmanagerSet {
    /// The API v2 alerts endpoint of `target`.
    pub fn alerts_url(&self, target: &str) -> String {
        format!(
            "{}://{target}{}/api/v2/alerts",
            self.scheme.as_str(),
            self.path_prefix
        )
    }
}

/// A problem in `alerting:`, naming the key and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("alerting: {0}")]
pub struct AlertingError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerting {
    #[serde(default)]
    alertmanagers: Vec<serde_json::Value>,
    #[serde(default)]
    alert_relabel_configs: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    scheme: Option<String>,
    path_prefix: Option<String>,
    timeout: Option<String>,
    api_version: Option<String>,
    #[serde(default)]
    static_configs: Vec<RawStatic>,
    basic_auth: Option<RawBasicAuth>,
    authorization: Option<RawAuthorization>,
    bearer_token: Option<String>,
    bearer_token_file: Option<String>,
    tls_config: Option<RawTls>,
    proxy_url: Option<String>,
    follow_redirects: Option<bool>,
    enable_http2: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatic {
    #[serde(default)]
    targets: Vec<String>,
    /// Only meaningful with relabeling, which is not supported; accepted
    /// so copied configs load.
    #[serde(default)]
    #[allow(dead_code)]
    labels: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasicAuth {
    #[serde(default)]
    username: String,
    password: Option<String>,
    password_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthorization {
    #[serde(rename = "type")]
    kind: Option<String>,
    credentials: Option<String>,
    credentials_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    server_name: Option<String>,
    #[serde(default)]
    insecure_skip_verify: bool,
    min_version: Option<String>,
}

/// Parses `alerting:` (as kept in `Config::alerting`). Relative file paths
/// resolve against `base_dir`, the config file's directory.
pub fn parse_alerting(
    value: &serde_json::Value,
    base_dir: &Path,
) -> Result<AlertingConfig, AlertingError> {
    let raw: RawAlerting = serde_json::from_value(value.clone()).map_err(|e| {
        AlertingError(format!(
            "{e}: watchpost reads alertmanagers and nothing else here"
        ))
    })?;
    if raw.alert_relabel_configs.is_some() {
        return Err(AlertingError(
            "alert_relabel_configs is not supported: set the labels in the rules instead"
                .to_string(),
        ));
    }
    let mut out = AlertingConfig::default();
    for (i, v) in raw.alertmanagers.iter().enumerate() {
        let ctx = format!("alertmanagers[{i}]");
        let set: RawSet = serde_json::from_value(v.clone()).map_err(|e| {
            AlertingError(format!(
                "{ctx}: {e}: only static_configs discovery is supported; list the Alertmanagers under static_configs"
            ))
        })?;
        out.alertmanagers.push(build_set(&ctx, set, base_dir)?);
    }
    Ok(out)
}

fn build_set(ctx: &str, r: RawSet, base: &Path) -> Result<AlertmanagerSet, AlertingError> {
    let err = |m: String| AlertingError(format!("{ctx}: {m}"));
    match r.api_version.as_deref() {
        None | Some("v2") | Some("V2") => {}
        Some(v) => {
            return Err(err(format!(
                "api_version {v:?} is not supported: watchpost speaks Alertmanager's API v2 (Alertmanager 0.16 and later); remove api_version"
            )));
        }
    }
    let scheme = match r.scheme.as_deref() {
        None | Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        Some(s) => return Err(err(format!("scheme {s:?} is invalid: write http or https"))),
    };
    let mut path_prefix = r.path_prefix.unwrap_or_default();
    while path_prefix.ends_with('/') {
        path_prefix.pop();
    }
    if !path_prefix.is_empty() && !path_prefix.starts_with('/') {
        path_prefix.insert(0, '/');
    }
    let timeout = match r.timeout.as_deref() {
        None => Duration::from_secs(10),
        Some(t) => parse_duration(t)
            .map_err(|e| err(format!("timeout {t:?} is invalid: {e}: write e.g. 10s")))?,
    };
    let mut targets = Vec::new();
    for s in r.static_configs {
        for t in s.targets {
            if t.is_empty() || t.contains('/') {
                return Err(err(format!(
                    "static_configs: target {t:?} is not host:port: put the path in path_prefix"
                )));
            }
            targets.push(t);
        }
    }
    let path = |p: &str| SecretSource::File(base.join(p));
    let file = |p: Option<String>| p.map(|p| base.join(p));
    let secret = |inline: Option<String>, file: Option<String>, key: &str| match (inline, file) {
        (Some(_), Some(_)) => Err(err(format!("{key} and {key}_file are both set: keep one"))),
        (Some(s), None) => Ok(Some(SecretSource::Inline(Secret::new(s)))),
        (None, Some(f)) => Ok(Some(path(&f))),
        (None, None) => Ok(None),
    };
    let basic_auth = match r.basic_auth {
        Some(b) => Some(BasicAuth {
            username: b.username,
            password: secret(b.password, b.password_file, "basic_auth password")?,
        }),
        None => None,
    };
    let bearer = secret(r.bearer_token, r.bearer_token_file, "bearer_token")?;
    let authorization = match (r.authorization, bearer) {
        (Some(_), Some(_)) => {
            return Err(err(
                "authorization and bearer_token are both set: keep authorization".to_string(),
            ));
        }
        (Some(a), None) => Some(Authorization {
            kind: a.kind.unwrap_or_else(|| "Bearer".to_string()),
            credentials: secret(
                a.credentials,
                a.credentials_file,
                "authorization credentials",
            )?,
        }),
        (None, Some(b)) => Some(Authorization {
            kind: "Bearer".to_string(),
            credentials: Some(b),
        }),
        (None, None) => None,
    };
    if basic_auth.is_some() && authorization.is_some() {
        return Err(err(
            "basic_auth and authorization are both set: keep one".to_string()
        ));
    }
    let tls_config = match r.tls_config {
        Some(t) => {
            if let Some(v) = t.min_version.as_deref()
                && !matches!(v, "TLS12" | "TLS13")
            {
                return Err(err(format!(
                    "tls_config: min_version {v:?} is not supported: write TLS12 or TLS13"
                )));
            }
            TlsConfig {
                ca_file: file(t.ca_file),
                cert_file: file(t.cert_file),
                key_file: file(t.key_file),
                server_name: t.server_name,
                insecure_skip_verify: t.insecure_skip_verify,
            }
        }
        None => TlsConfig::default(),
    };
    Ok(AlertmanagerSet {
        targets,
        scheme,
        path_prefix,
        timeout,
        http: HttpClientConfig {
            basic_auth,
            authorization,
            tls_config,
            follow_redirects: r.follow_redirects.unwrap_or(true),
            enable_http2: r.enable_http2.unwrap_or(true),
            proxy_url: r.proxy_url,
        },
    })
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prometheus_defaults_and_keys() {
        let v = json!({"alertmanagers": [
            {"static_configs": [{"targets": ["am1:9093", "am2:9093"]}]},
            {"scheme": "https", "path_prefix": "am/", "timeout": "3s", "api_version": "v2",
             "basic_auth": {"username": "u", "password_file": "pw"},
             "tls_config": {"ca_file": "ca.pem", "server_name": "am.test"},
             "static_configs": [{"targets": ["am3:443"], "labels": {"x": "y"}}]}
        ]});
        let c = parse_alerting(&v, Path::new("/etc/w")).unwrap();
        let a = &c.alertmanagers[0];
        assert_eq!(a.targets, ["am1:9093", "am2:9093"]);
        assert_eq!(a.alerts_url("am1:9093"), "http://am1:9093/api/v2/alerts");
        assert_eq!(a.timeout, Duration::from_secs(10));
        assert!(a.http.follow_redirects);
        let b = &c.alertmanagers[1];
        assert_eq!(b.alerts_url("am3:443"), "https://am3:443/am/api/v2/alerts");
        assert_eq!(b.timeout, Duration::from_secs(3));
        assert_eq!(
            b.http.basic_auth.as_ref().unwrap().password,
            Some(SecretSource::File("/etc/w/pw".into()))
        );
        assert_eq!(b.http.tls_config.ca_file, Some("/etc/w/ca.pem".into()));
        assert_eq!(
            parse_alerting(&json!({}), Path::new("")).unwrap(),
            AlertingConfig::default()
        );
    }

    #[test]
    fn what_is_not_supported_is_named() {
        let cases = [
            (
                json!({"alertmanagers": [{"api_version": "v1"}]}),
                "api_version \"v1\" is not supported",
            ),
            (
                json!({"alertmanagers": [{"file_sd_configs": []}]}),
                "unknown field `file_sd_configs`",
            ),
            (
                json!({"alertmanagers": [{"scheme": "ftp"}]}),
                "scheme \"ftp\" is invalid",
            ),
            (
                json!({"alertmanagers": [{"timeout": "soon"}]}),
                "timeout \"soon\" is invalid",
            ),
            (
                json!({"alertmanagers": [{"static_configs": [{"targets": ["am:9093/x"]}]}]}),
                "is not host:port",
            ),
            (
                json!({"alert_relabel_configs": []}),
                "alert_relabel_configs is not supported",
            ),
            (
                json!({"alertmanagers": [{"bearer_token": "t", "bearer_token_file": "f"}]}),
                "bearer_token and bearer_token_file are both set",
            ),
        ];
        for (v, want) in cases {
            let e = parse_alerting(&v, Path::new("")).unwrap_err().to_string();
            assert!(e.starts_with("alerting: ") && e.contains(want), "{e}");
        }
    }
}
