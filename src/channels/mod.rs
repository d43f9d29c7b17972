//! Delivery: one file per channel, each implementing [`Notifier`] for one
//! integration of a receiver (`telegram[0]`), plus [`alertmanager`], which
//! forwards alerts to external Alertmanagers (Prometheus's
//! `alerting.alertmanagers`).
//!
//! Sits at the end of the notification pipeline: `notify` decides what to
//! send and when, retries with backoff and records the outcome; a channel
//! renders its message from the templates ([`render`]), makes one request
//! (or one SMTP transaction) with a timeout, and classifies the outcome as
//! a [`SendError`]: retryable (timeouts, refused connections, HTTP 429 and
//! 5xx, SMTP 4xx) or permanent (other 4xx, SMTP 5xx, bad credentials,
//! untrusted certificates, unreadable `*_file` secrets).
//!
//! A channel must not retry (the pipeline does), must not read secrets
//! before sending (`*_file` secrets are read per send, so rotating a file
//! needs no reload) and must never let a secret reach an error or a log:
//! every error passes through [`Scrub`], which replaces the secret values
//! used by that send.

pub mod alertmanager;
pub mod digest;
pub mod discord;
pub mod email;
mod http;
pub mod log;
pub mod mattermost;
pub mod msteams;
pub mod opsgenie;
pub mod pagerduty;
pub mod pushover;
pub mod render;
pub mod slack;
pub mod telegram;
pub mod telegram_format;
pub mod victorops;
pub mod webex;
pub mod webhook;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::http_client::{HttpClientError, read_secret};
use crate::config::notify::{IntegrationConfig, NotifyConfig, Receiver};
use crate::config::{REDACTED, SecretSource};
use crate::model::Timestamp;
use crate::notify::{Notifier, NotifierFactory, NotifyError, SendError};
use crate::template::TemplateError;

pub use log::LogSink;
pub use render::{Templates, Tmpl};

/// How long one send may take when the integration sets no timeout of its
/// own: long enough for a slow SMTP server, short enough that the
/// pipeline's retry loop stays in charge.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// What every channel of a receiver is built with.
#[derive(Debug, Clone)]
pub struct ChannelContext {
    /// The default templates plus the config's template files.
    pub templates: Templates,
    /// The deadline of one send (one request or SMTP transaction) unless
    /// the integration has its own (`webhook_configs.timeout`).
    pub send_timeout: Duration,
    /// Where the `log` channel writes (stdout in watchpost).
    pub log_sink: LogSink,
    /// Pushover's API endpoint, the one service URL Alertmanager's config
    /// cannot set (for a relay, and for tests).
    pub pushover_api_url: String,
}

impl ChannelContext {
    /// Default templates, [`DEFAULT_SEND_TIMEOUT`], stdout.
    pub fn new(templates: Templates) -> ChannelContext {
        ChannelContext {
            templates,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            log_sink: LogSink::Stdout,
            pushover_api_url: pushover::API_URL.to_string(),
        }
    }
}

/// Why a receiver's channels could not be built. Secrets are never part of
/// the text.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("{integration}: {source}")]
    HttpClient {
        integration: String,
        #[source]
        source: HttpClientError,
    },
    #[error("{integration}: {field}: {source}: fix the template")]
    Template {
        integration: String,
        field: &'static str,
        #[source]
        source: TemplateError,
    },
    #[error("template file {path}: {reason}")]
    TemplateFile { path: PathBuf, reason: String },
    #[error("templates: pattern {pattern:?} is not a valid glob: {reason}")]
    TemplateGlob { pattern: String, reason: String },
    #[error("{integration}: {message}")]
    Invalid {
        integration: String,
        message: String,
    },
}

/// The notifier factory the notification pipeline calls for each
/// receiver: [`build`] over the config's templates (the defaults plus its
/// `templates` globs, read once here).
pub fn factory(config: &NotifyConfig) -> Result<NotifierFactory, ChannelError> {
    let ctx = ChannelContext::new(Templates::load(&config.templates)?);
    Ok(Arc::new(move |r: &Receiver| {
        build(r, &ctx).map_err(|e| NotifyError::Integration {
            receiver: r.name.clone(),
            message: e.to_string(),
        })
    }))
}

/// Builds one notifier per integration of `receiver`, in the receiver's
/// order. A receiver without integrations yields none.
pub fn build(
    receiver: &Receiver,
    ctx: &ChannelContext,
) -> Result<Vec<Arc<dyn Notifier>>, ChannelError> {
    let mut out: Vec<Arc<dyn Notifier>> = Vec::with_capacity(receiver.integrations.len());
    for integration in &receiver.integrations {
        let b = Builder {
            name: integration.display_name(),
            receiver: &receiver.name,
            send_resolved: integration.send_resolved,
            ctx,
        };
        let n: Arc<dyn Notifier> = match &integration.config {
            IntegrationConfig::Webhook(c) => Arc::new(webhook::Webhook::new(&b, c)?),
            IntegrationConfig::Email(c) => Arc::new(email::Email::new(&b, c)?),
            IntegrationConfig::Pagerduty(c) => Arc::new(pagerduty::Pagerduty::new(&b, c)?),
            IntegrationConfig::Opsgenie(c) => Arc::new(opsgenie::Opsgenie::new(&b, c)?),
            IntegrationConfig::Slack(c) => Arc::new(slack::Slack::new(&b, c)?),
            IntegrationConfig::Victorops(c) => Arc::new(victorops::Victorops::new(&b, c)?),
            IntegrationConfig::Pushover(c) => Arc::new(pushover::Pushover::new(&b, c)?),
            IntegrationConfig::Telegram(c) => Arc::new(telegram::Telegram::new(&b, c)?),
            IntegrationConfig::Discord(c) => Arc::new(discord::Discord::new(&b, c)?),
            IntegrationConfig::Webex(c) => Arc::new(webex::Webex::new(&b, c)?),
            IntegrationConfig::Msteams(c) => Arc::new(msteams::Msteams::new(&b, c)?),
            IntegrationConfig::MsteamsV2(c) => Arc::new(msteams::MsteamsV2::new(&b, c)?),
            IntegrationConfig::Mattermost(c) => Arc::new(mattermost::Mattermost::new(&b, c)?),
            IntegrationConfig::Log(c) => Arc::new(log::Log::new(&b, c)?),
        };
        out.push(n);
    }
    Ok(out)
}

/// What a channel's constructor needs besides its own config.
pub(crate) struct Builder<'a> {
    /// `telegram[0]`.
    pub name: String,
    pub receiver: &'a str,
    pub send_resolved: bool,
    pub ctx: &'a ChannelContext,
}

impl Builder<'_> {
    /// How errors at build time name the integration.
    pub fn what(&self) -> String {
        format!("receiver {:?}: {}", self.receiver, self.name)
    }

    /// Parses one message field's template.
    pub fn tmpl(&self, field: &'static str, text: &str) -> Result<Tmpl, ChannelError> {
        Tmpl::new(&self.ctx.templates, field, text).map_err(|source| ChannelError::Template {
            integration: self.what(),
            field,
            source,
        })
    }

    /// The HTTP transport for `cfg` with the context's send timeout (or
    /// `timeout` when non-zero).
    pub fn http(
        &self,
        cfg: &crate::config::HttpClientConfig,
        timeout: Duration,
    ) -> Result<http::HttpTransport, ChannelError> {
        let timeout = if timeout.is_zero() {
            self.ctx.send_timeout
        } else {
            timeout
        };
        http::HttpTransport::new(cfg, timeout).map_err(|source| ChannelError::HttpClient {
            integration: self.what(),
            source,
        })
    }

    pub fn invalid(&self, message: impl Into<String>) -> ChannelError {
        ChannelError::Invalid {
            integration: self.what(),
            message: message.into(),
        }
    }
}

/// The secret values one send used, to be cut out of anything that
/// leaves the channel (errors, log lines). Peers echo requests back, HTTP
/// libraries print URLs, TLS errors quote hosts: rather than trust each of
/// those, every outgoing text is scrubbed.
#[derive(Debug, Default)]
pub struct Scrub {
    secrets: Vec<String>,
}

/// Shorter values are not scrubbed: replacing every `a` in a message
/// would destroy it and protect nothing.
const MIN_SCRUBBED_LEN: usize = 4;

impl Scrub {
    pub fn new() -> Scrub {
        Scrub::default()
    }

    /// Remembers `secret` (and its URL-encoded forms) for scrubbing.
    pub fn add(&mut self, secret: &str) {
        let secret = secret.trim();
        if secret.len() < MIN_SCRUBBED_LEN {
            return;
        }
        let encoded: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let path_encoded = encoded.replace('+', "%20");
        for s in [secret.to_string(), encoded, path_encoded] {
            if !self.secrets.contains(&s) {
                self.secrets.push(s);
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Remembers the parts of a secret URL that may be its secret: a peer
    /// that echoes only the token of `…/hooks/<token>` must not leak it
    /// either. That is the path and query as a whole, the password, and
    /// each path segment and query value that looks like a key (see
    /// [`looks_like_key`]); words such as `services` or `hooks` stay, so
    /// an echoed error stays readable.
    pub fn add_url_parts(&mut self, url: &str) {
        let Ok(u) = reqwest::Url::parse(url.trim()) else {
            return;
        };
        if let Some(p) = u.password() {
            self.add(p);
        }
        let path = u.path().trim_matches('/');
        if !path.is_empty() {
            self.add(path);
        }
        if let Some(q) = u.query() {
            self.add(q);
        }
        let mut parts: Vec<String> = u
            .path_segments()
            .map(|s| s.map(str::to_string).collect())
            .unwrap_or_default();
        // Raw, as the peer may echo the query as sent; decoded below.
        if let Some(q) = u.query() {
            parts.extend(
                q.split('&')
                    .filter_map(|kv| kv.split_once('=').map(|(_, v)| v.to_string())),
            );
        }
        for p in parts {
            let decoded = percent_decode(&p);
            for v in [p, decoded] {
                if looks_like_key(&v) {
                    self.add(&v);
                }
            }
        }
    }

    /// Reads `src` for the field `field`, remembering the value. A file
    /// that cannot be read is a permanent failure naming the file.
    pub fn read(&mut self, src: &SecretSource, field: &'static str) -> Result<String, SendError> {
        let value = read_secret(src, field)
            .map_err(|e| SendError::permanent("secret_file", e.to_string()))?;
        self.add(&value);
        Ok(value)
    }

    /// `text` with every remembered secret replaced by `<secret>`.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }

    /// `e` with its message scrubbed.
    pub fn error(&self, e: SendError) -> SendError {
        match e {
            SendError::Retryable {
                reason,
                message,
                retry_after,
            } => SendError::Retryable {
                reason,
                message: self.text(&message),
                retry_after,
            },
            SendError::Permanent { reason, message } => SendError::Permanent {
                reason,
                message: self.text(&message),
            },
        }
    }
}

/// Whether a URL part could be a key or token: long enough, and not a
/// plain lowercase word (a digit, mixed case, or 20 characters and more).
pub(crate) fn looks_like_key(s: &str) -> bool {
    let n = s.chars().count();
    let digit = s.chars().any(|c| c.is_ascii_digit());
    let mixed = s.chars().any(|c| c.is_uppercase()) && s.chars().any(|c| c.is_lowercase());
    n >= 8 && (digit || mixed || n >= 20)
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The time a send renders its templates at (`since`, dates). The channel
/// is the scheduler of its own I/O, so it reads the clock here, once per
/// send.
pub(crate) fn now_ms() -> Timestamp {
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `s` cut to at most `max` characters, the last one an ellipsis when
/// something was cut (services reject or silently drop longer fields).
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Sets `key` unless the value is empty: the services treat empty and
/// missing alike, and leaving it out keeps payloads small and readable.
pub(crate) fn put(m: &mut serde_json::Map<String, serde_json::Value>, key: &str, v: String) {
    if !v.is_empty() {
        m.insert(key.to_string(), serde_json::Value::String(v));
    }
}

/// A stable key for the group, for services that deduplicate by one
/// (PagerDuty's `dedup_key`, Opsgenie's `alias`, VictorOps's `entity_id`):
/// the same group gets the same key across restarts.
pub(crate) fn group_key_hash(msg: &crate::notify::NotificationData) -> String {
    format!(
        "{:016x}",
        crate::model::fnv1a64(&[msg.group_key.as_bytes()])
    )
}

/// Runs one send under `timeout`: past it the send is a retryable
/// `timeout` failure.
pub(crate) async fn with_timeout<F>(timeout: Duration, what: &str, fut: F) -> Result<(), SendError>
where
    F: std::future::Future<Output = Result<(), SendError>>,
{
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(SendError::retryable(
            "timeout",
            format!(
                "{what}: no answer within {}: the peer is slow or unreachable",
                crate::model::format_duration(timeout)
            ),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn scrub_replaces_every_form_of_a_secret() {
        let mut s = Scrub::new();
        s.add("abc"); // too short to scrub
        s.add("p@ss word/1");
        s.add(" tok3n\n");
        let e = SendError::permanent(
            "client_error",
            "GET /x?p=p%40ss+word%2F1 and p%40ss%20word%2F1 and p@ss word/1 by tok3n (abc)",
        );
        assert_eq!(
            s.error(e).to_string(),
            "client_error: GET /x?p=<secret> and <secret> and <secret> by <secret> (abc)"
        );
        let r = s.error(SendError::retryable("timeout", "tok3n"));
        assert!(r.is_retryable());
        assert_eq!(r.to_string(), "timeout: <secret>");
    }

    #[test]
    fn url_parts_that_look_like_keys_are_scrubbed() {
        let mut s = Scrub::new();
        s.add_url_parts(
            "https://user:pa55word@hooks.example.test/services/T0000/B0123/XXXXxxxxXXXXxxxx?token=s3cr3t%2Dvalue&mode=plain",
        );
        let text = s.text(
            "echo pa55word T0000 B0123 XXXXxxxxXXXXxxxx s3cr3t-value s3cr3t%2Dvalue services mode=plain",
        );
        assert_eq!(
            text,
            "echo <secret> T0000 B0123 <secret> <secret> <secret> services mode=plain"
        );
        assert!(looks_like_key("abcdefghijklmnopqrstu"));
        assert!(!looks_like_key("webhooks"));
        assert!(looks_like_key("webhook2b"));
    }

    #[test]
    fn missing_secret_file_is_permanent_and_names_the_file() {
        let mut s = Scrub::new();
        let e = s
            .read(
                &SecretSource::File(PathBuf::from("/nonexistent/bot_token")),
                "bot_token",
            )
            .unwrap_err();
        assert!(!e.is_retryable());
        assert_eq!(e.reason(), "secret_file");
        assert!(
            e.to_string()
                .starts_with("secret_file: reading bot_token from /nonexistent/bot_token: "),
            "{e}"
        );
    }
}
