//! From the raw Alertmanager mirror to [`NotifyConfig`]: Alertmanager's
//! defaults, what receivers inherit from `global`, and every check
//! Alertmanager makes when it loads its config, each reported with its
//! position and all of them collected.
//!
//! Checked as Alertmanager checks them: a route tree with a default
//! receiver and no matchers, intervals or `continue` at its root; receivers
//! and time intervals that routes name must exist; unique receiver and
//! interval names; `*_file` twins (both set is an error, neither set is an
//! error where Alertmanager needs the value and `global` has none); URLs;
//! per-kind required keys. The only I/O is asking whether a `*_file` secret
//! exists, to warn early: Alertmanager reads those files when sending.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde_saphyr::Location;

use super::matchers::parse_matchers;
use super::raw::*;
use super::types::*;
use crate::config::raw::{RawHttpConfig, S, SpannedMap};
use crate::config::validate::{
    Cx, build_http_client, build_tls, check_http_url, duration, path_string, refused,
    secret_source, set,
};
use crate::config::{Diagnostic, HttpClientConfig, SecretSource};
use crate::model::{MatchOp, Matcher, is_valid_label_name};

const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const DEFAULT_SLACK_APP_URL: &str = "https://slack.com/api/chat.postMessage";
const DEFAULT_PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";
const DEFAULT_OPSGENIE_URL: &str = "https://api.opsgenie.com/";
const DEFAULT_VICTOROPS_URL: &str =
    "https://alert.victorops.com/integrations/generic/20131114/alert/";
const DEFAULT_TELEGRAM_URL: &str = "https://api.telegram.org";
const DEFAULT_WEBEX_URL: &str = "https://webexapis.com/v1/messages";

/// Alertmanager's default template for a key: `{{ template "NAME" . }}`.
fn tmpl(name: &str) -> String {
    format!("{{{{ template \"{name}\" . }}}}")
}

/// Warnings collected alongside the errors.
pub(crate) struct Warnings(pub Vec<Diagnostic>);

impl Warnings {
    fn push(&mut self, cx: &Cx<'_>, at: Location, message: String) {
        let (line, column) = if at.line() == 0 {
            (1, 1)
        } else {
            (at.line(), at.column().max(1))
        };
        self.0.push(Diagnostic {
            file: cx.file.to_string(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
            message,
        });
    }
}

/// Validates one Alertmanager config. `at` is where the section starts
/// (the `notify:` value, or the file's first line). Returns `None` when
/// anything was reported as an error through `cx`.
pub(crate) fn build(
    cx: &mut Cx<'_>,
    raw: &RawNotify,
    at: Location,
    path: Option<std::path::PathBuf>,
    redacted: serde_json::Value,
) -> Option<NotifyConfig> {
    let before = cx.error_count();
    let mut w = Warnings(Vec::new());
    let global = build_global(cx, &mut w, raw.global.as_ref());

    let mut receivers = Vec::new();
    let mut receiver_names: HashMap<String, Location> = HashMap::new();
    for (i, r) in raw.receivers.iter().flatten().enumerate() {
        let Some(name) = r.value.name.as_ref().filter(|n| !n.value.is_empty()) else {
            cx.err(
                r.referenced,
                format!("receivers[{i}]: name is missing: every receiver needs a unique name"),
            );
            continue;
        };
        if let Some(first) = receiver_names.get(&name.value) {
            let first = format!("{}:{}:{}", cx.file, first.line(), first.column());
            cx.err(
                name.referenced,
                format!(
                    "receiver {:?}: the name is used twice (first at {first}): receiver names must be unique",
                    name.value
                ),
            );
            continue;
        }
        receiver_names.insert(name.value.clone(), name.referenced);
        receivers.push(build_receiver(cx, &mut w, &global, &name.value, &r.value));
    }

    let mut time_intervals = Vec::new();
    let mut interval_names: HashMap<String, Location> = HashMap::new();
    let lists = [
        ("time_intervals", raw.time_intervals.as_ref()),
        ("mute_time_intervals", raw.mute_time_intervals.as_ref()),
    ];
    for (key, list) in lists {
        for (i, t) in list.into_iter().flatten().enumerate() {
            let Some(name) = t.value.name.as_ref().filter(|n| !n.value.is_empty()) else {
                cx.err(
                    t.referenced,
                    format!("{key}[{i}]: name is missing: every time interval needs a unique name"),
                );
                continue;
            };
            if let Some(first) = interval_names.get(&name.value) {
                let first = format!("{}:{}:{}", cx.file, first.line(), first.column());
                cx.err(
                    name.referenced,
                    format!(
                        "time interval {:?}: the name is used twice (first at {first}): time interval names must be unique across time_intervals and mute_time_intervals",
                        name.value
                    ),
                );
                continue;
            }
            interval_names.insert(name.value.clone(), name.referenced);
            let ctx = format!("time interval {:?}: ", name.value);
            let intervals = t
                .value
                .time_intervals
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(j, ti)| {
                    build_time_interval(cx, &format!("{ctx}time_intervals[{j}]: "), ti)
                })
                .collect();
            time_intervals.push(NamedTimeInterval {
                name: name.value.clone(),
                intervals,
            });
        }
    }

    let names = Names {
        receivers: receiver_names.keys().cloned().collect(),
        intervals: interval_names.keys().cloned().collect(),
    };
    let route = match &raw.route {
        None => {
            cx.err(
                at,
                "route is missing: an Alertmanager config needs a root route with a default receiver",
            );
            None
        }
        Some(r) => Some(build_route(cx, "route", r, true, &names)),
    };

    let inhibit_rules = raw
        .inhibit_rules
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, r)| build_inhibit_rule(cx, &format!("inhibit_rules[{i}]: "), r))
        .collect();

    let mut templates = Vec::new();
    for t in raw.templates.iter().flatten() {
        if t.value.is_empty() {
            cx.err(t.referenced, "templates: empty path: remove the entry");
        } else if let Err(e) = glob::Pattern::new(&t.value) {
            cx.err(
                t.referenced,
                format!(
                    "templates: {:?} is not a valid path pattern: {}",
                    t.value, e.msg
                ),
            );
        } else {
            templates.push(path_string(&cx.path(&t.value)));
        }
    }

    let route = route?;
    (cx.error_count() == before).then(|| NotifyConfig {
        file: cx.file.to_string(),
        global,
        route,
        receivers,
        inhibit_rules,
        time_intervals,
        templates,
        warnings: w.0,
        redacted_yaml: serde_saphyr::to_string(&redacted)
            .unwrap_or_else(|e| format!("# the config could not be rendered: {e}\n")),
        redacted,
        path,
    })
}

struct Names {
    receivers: HashSet<String>,
    intervals: HashSet<String>,
}

/// A secret with its `*_file` twin (both set is an error). A file that does
/// not exist is a warning: it is read when sending, so it may appear later.
fn secret(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    ctx: &str,
    key: &str,
    inline: Option<&S<String>>,
    file: Option<&S<String>>,
) -> Option<SecretSource> {
    let file_key = format!("{key}_file");
    let s = secret_source(cx, ctx, key, inline, &file_key, file);
    if let (Some(SecretSource::File(p)), Some(f)) = (&s, file) {
        warn_missing(cx, w, ctx, &file_key, p, f.referenced);
    }
    s
}

fn warn_missing(cx: &Cx<'_>, w: &mut Warnings, ctx: &str, key: &str, p: &Path, at: Location) {
    if !p.exists() {
        w.push(
            cx,
            at,
            format!(
                "{ctx}{key} {} does not exist yet: it is read when a notification is sent, which fails until the file is there",
                p.display()
            ),
        );
    }
}

/// An optional http(s) URL; reports and returns None when invalid. The
/// value is not quoted back, since some URLs carry credentials.
fn url(cx: &mut Cx<'_>, ctx: &str, key: &str, v: Option<&S<String>>) -> Option<String> {
    let v = set(v)?;
    match check_http_url(&v.value) {
        Ok(()) => Some(v.value.clone()),
        Err(why) => {
            cx.err(v.referenced, format!("{ctx}{key} {why}"));
            None
        }
    }
}

/// A URL secret (webhook URLs embed their credential): checked when inline.
fn secret_url(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    ctx: &str,
    key: &str,
    inline: Option<&S<String>>,
    file: Option<&S<String>>,
) -> Option<SecretSource> {
    if let Some(v) = set(inline)
        && let Err(why) = check_http_url(&v.value)
    {
        cx.err(v.referenced, format!("{ctx}{key} {why}"));
    }
    secret(cx, w, ctx, key, inline, file)
}

fn build_global(cx: &mut Cx<'_>, w: &mut Warnings, g: Option<&S<RawGlobal>>) -> NotifyGlobal {
    let empty = RawGlobal::default();
    let g = g.map(|g| &g.value).unwrap_or(&empty);
    let ctx = "global: ";
    let resolve_timeout = duration(cx, ctx, "resolve_timeout", g.resolve_timeout.as_ref())
        .unwrap_or(DEFAULT_RESOLVE_TIMEOUT);
    let http_config = match &g.http_config {
        Some(h) => http(cx, w, ctx, h),
        None => default_http(),
    };
    let smtp_smarthost =
        set(g.smtp_smarthost.as_ref()).and_then(|s| host_port(cx, ctx, "smtp_smarthost", s));
    let smtp_tls_config = g
        .smtp_tls_config
        .as_ref()
        .map(|t| build_tls(cx, "global: smtp_tls_config: ", t))
        .unwrap_or_default();
    let or = |v: Option<String>, d: &str| v.unwrap_or_else(|| d.to_string());
    NotifyGlobal {
        resolve_timeout,
        http_config,
        smtp_from: set(g.smtp_from.as_ref()).map(|s| s.value.clone()),
        smtp_hello: g
            .smtp_hello
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".to_string()),
        smtp_smarthost,
        smtp_auth_username: g.smtp_auth_username.clone().filter(|s| !s.is_empty()),
        smtp_auth_password: secret(
            cx,
            w,
            ctx,
            "smtp_auth_password",
            g.smtp_auth_password.as_ref(),
            g.smtp_auth_password_file.as_ref(),
        ),
        smtp_auth_secret: secret(
            cx,
            w,
            ctx,
            "smtp_auth_secret",
            g.smtp_auth_secret.as_ref(),
            g.smtp_auth_secret_file.as_ref(),
        ),
        smtp_auth_identity: g.smtp_auth_identity.clone().filter(|s| !s.is_empty()),
        smtp_require_tls: g.smtp_require_tls.unwrap_or(true),
        smtp_tls_config,
        slack_api_url: secret_url(
            cx,
            w,
            ctx,
            "slack_api_url",
            g.slack_api_url.as_ref(),
            g.slack_api_url_file.as_ref(),
        ),
        slack_app_token: secret(
            cx,
            w,
            ctx,
            "slack_app_token",
            g.slack_app_token.as_ref(),
            g.slack_app_token_file.as_ref(),
        ),
        slack_app_url: or(
            url(cx, ctx, "slack_app_url", g.slack_app_url.as_ref()),
            DEFAULT_SLACK_APP_URL,
        ),
        pagerduty_url: or(
            url(cx, ctx, "pagerduty_url", g.pagerduty_url.as_ref()),
            DEFAULT_PAGERDUTY_URL,
        ),
        opsgenie_api_url: or(
            url(cx, ctx, "opsgenie_api_url", g.opsgenie_api_url.as_ref()),
            DEFAULT_OPSGENIE_URL,
        ),
        opsgenie_api_key: secret(
            cx,
            w,
            ctx,
            "opsgenie_api_key",
            g.opsgenie_api_key.as_ref(),
            g.opsgenie_api_key_file.as_ref(),
        ),
        victorops_api_url: or(
            url(cx, ctx, "victorops_api_url", g.victorops_api_url.as_ref()),
            DEFAULT_VICTOROPS_URL,
        ),
        victorops_api_key: secret(
            cx,
            w,
            ctx,
            "victorops_api_key",
            g.victorops_api_key.as_ref(),
            g.victorops_api_key_file.as_ref(),
        ),
        telegram_api_url: or(
            url(cx, ctx, "telegram_api_url", g.telegram_api_url.as_ref()),
            DEFAULT_TELEGRAM_URL,
        ),
        webex_api_url: or(
            url(cx, ctx, "webex_api_url", g.webex_api_url.as_ref()),
            DEFAULT_WEBEX_URL,
        ),
        mattermost_webhook_url: secret_url(
            cx,
            w,
            ctx,
            "mattermost_webhook_url",
            g.mattermost_webhook_url.as_ref(),
            g.mattermost_webhook_url_file.as_ref(),
        ),
    }
}

/// Alertmanager's default HTTP client: follow redirects, HTTP/2 allowed.
fn default_http() -> HttpClientConfig {
    HttpClientConfig {
        follow_redirects: true,
        enable_http2: true,
        ..HttpClientConfig::default()
    }
}

fn http(cx: &mut Cx<'_>, w: &mut Warnings, ctx: &str, h: &S<RawHttpConfig>) -> HttpClientConfig {
    let hctx = format!("{ctx}http_config: ");
    refused(cx, &hctx, &h.value.refused_keys());
    let c = build_http_client(cx, &hctx, h.value.http_client());
    let files = [
        (
            "basic_auth: password_file",
            c.basic_auth.as_ref().and_then(|b| b.password.as_ref()),
        ),
        (
            "authorization: credentials_file",
            c.authorization
                .as_ref()
                .and_then(|a| a.credentials.as_ref()),
        ),
    ];
    for (key, s) in files {
        if let Some(SecretSource::File(p)) = s {
            warn_missing(cx, w, &hctx, key, p, h.referenced);
        }
    }
    c
}

/// The receiver's own `http_config`, or the global one.
fn http_or(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    ctx: &str,
    h: Option<&S<RawHttpConfig>>,
    global: &NotifyGlobal,
) -> HttpClientConfig {
    match h {
        Some(h) => http(cx, w, ctx, h),
        None => global.http_config.clone(),
    }
}

fn host_port(cx: &mut Cx<'_>, ctx: &str, key: &str, v: &S<String>) -> Option<HostPort> {
    let s = v.value.as_str();
    let split = if let Some(rest) = s.strip_prefix('[') {
        rest.split_once("]:")
    } else {
        s.rsplit_once(':').filter(|(h, _)| !h.contains(':'))
    };
    let parsed = split.and_then(|(h, p)| Some((h, p.parse::<u16>().ok().filter(|p| *p > 0)?)));
    match parsed {
        Some((host, port)) if !host.is_empty() => Some(HostPort {
            host: host.to_string(),
            port,
        }),
        _ => {
            cx.err(
                v.referenced,
                format!(
                    "{ctx}{key} {s:?} is not a valid host:port: write the SMTP server as host:port, e.g. smtp.example.com:587"
                ),
            );
            None
        }
    }
}

/// Go's `time.ParseDuration` syntax (`1m30s`, `1.5h`, `300ms`), which
/// Alertmanager uses for `timeout`, `retry`, `expire` and `ttl`.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += num * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

fn go_duration(cx: &mut Cx<'_>, ctx: &str, key: &str, v: Option<&S<String>>) -> Option<Duration> {
    let v = v?;
    match parse_go_duration(&v.value) {
        Some(d) => Some(d),
        None => {
            cx.err(
                v.referenced,
                format!(
                    "{ctx}{key}: {:?} is not a valid duration: write e.g. 30s, 1m30s or 1h",
                    v.value
                ),
            );
            None
        }
    }
}

fn text(v: &Option<String>, default: impl Into<String>) -> String {
    v.clone().unwrap_or_else(|| default.into())
}

fn build_receiver(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    g: &NotifyGlobal,
    name: &str,
    r: &RawReceiver,
) -> Receiver {
    let rctx = format!("receiver {name:?}: ");
    for (kind, at) in r.refused_kinds() {
        cx.err_at_key(
            kind,
            at,
            format!(
                "{rctx}{kind} is not supported by watchpost: deliver with webhook_configs (Alertmanager's webhook JSON) to a bridge for this service, or forward the alerts to an Alertmanager through the alerting.alertmanagers section"
            ),
        );
    }
    let mut integrations = Vec::new();
    macro_rules! each {
        ($field:ident, $key:literal, $build:ident, $variant:ident, $resolved:expr) => {
            for (i, c) in r.$field.iter().flatten().enumerate() {
                let ctx = format!("{rctx}{}[{i}]: ", $key);
                let before = cx.error_count();
                let built = $build(cx, w, g, &ctx, c);
                if let (Some(config), true) = (built, cx.error_count() == before) {
                    integrations.push(Integration {
                        index: i,
                        send_resolved: c.value.send_resolved.unwrap_or($resolved),
                        config: IntegrationConfig::$variant(config),
                    });
                }
            }
        };
    }
    // Alertmanager's order of integration kinds.
    each!(webhook_configs, "webhook_configs", webhook, Webhook, true);
    each!(email_configs, "email_configs", email, Email, false);
    each!(
        pagerduty_configs,
        "pagerduty_configs",
        pagerduty,
        Pagerduty,
        true
    );
    each!(
        opsgenie_configs,
        "opsgenie_configs",
        opsgenie,
        Opsgenie,
        true
    );
    each!(slack_configs, "slack_configs", slack, Slack, false);
    each!(
        victorops_configs,
        "victorops_configs",
        victorops,
        Victorops,
        true
    );
    each!(
        pushover_configs,
        "pushover_configs",
        pushover,
        Pushover,
        true
    );
    each!(
        telegram_configs,
        "telegram_configs",
        telegram,
        Telegram,
        true
    );
    each!(discord_configs, "discord_configs", discord, Discord, true);
    each!(webex_configs, "webex_configs", webex, Webex, true);
    each!(msteams_configs, "msteams_configs", msteams, Msteams, true);
    each!(
        msteamsv2_configs,
        "msteamsv2_configs",
        msteamsv2,
        MsteamsV2,
        true
    );
    each!(
        mattermost_configs,
        "mattermost_configs",
        mattermost,
        Mattermost,
        true
    );
    each!(log_configs, "log_configs", log, Log, true);
    Receiver {
        name: name.to_string(),
        integrations,
    }
}

/// Reports a missing required value at the entry.
fn missing(cx: &mut Cx<'_>, at: Location, ctx: &str, what: &str) {
    cx.err(at, format!("{ctx}{what}"));
}

fn webhook(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    g: &NotifyGlobal,
    ctx: &str,
    c: &S<RawWebhook>,
) -> Option<WebhookConfig> {
    let r = &c.value;
    let url = secret_url(cx, w, ctx, "url", r.url.as_ref(), r.url_file.as_ref());
    if url.is_none() && set(r.url.as_ref()).is_none() && set(r.url_file.as_ref()).is_none() {
        missing(cx, c.referenced, ctx, "url is missing: set url or url_file");
    }
    Some(WebhookConfig {
        http_config: http_or(cx, w, ctx, r.http_config.as_ref(), g),
        max_alerts: r.max_alerts.unwrap_or(0),
        timeout: go_duration(cx, ctx, "timeout", r.timeout.as_ref()).unwrap_or_default(),
        url: url?,
    })
}

fn email(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    g: &NotifyGlobal,
    ctx: &str,
    c: &S<RawEmail>,
) -> Option<EmailConfig> {
    let r = &c.value;
    let to = match set(r.to.as_ref()) {
        Some(t) => t.value.clone(),
        None => {
            missing(
                cx,
                c.referenced,
                ctx,
                "to is missing: give the recipient address",
            );
            String::new()
        }
    };
    let smarthost = match set(r.smarthost.as_ref()) {
        Some(s) => host_port(cx, ctx, "smarthost", s),
        None => {
            if g.smtp_smarthost.is_none() {
                missing(
                    cx,
                    c.referenced,
                    ctx,
                    "smarthost is not set here and global smtp_smarthost is not set: set one of them to the SMTP server's host:port",
                );
            }
            g.smtp_smarthost.clone()
        }
    };
    let from = match r.from.clone().filter(|f| !f.is_empty()) {
        Some(f) => Some(f),
        None => {
            if g.smtp_from.is_none() {
                missing(
                    cx,
                    c.referenced,
                    ctx,
                    "from is not set here and global smtp_from is not set: set one of them to the sender address",
                );
            }
            g.smtp_from.clone()
        }
    };
    let password = secret(
        cx,
        w,
        ctx,
        "auth_password",
        r.auth_password.as_ref(),
        r.auth_password_file.as_ref(),
    )
    .or_else(|| g.smtp_auth_password.clone());
    let auth_secret = secret(
        cx,
        w,
        ctx,
        "auth_secret",
        r.auth_secret.as_ref(),
        r.auth_secret_file.as_ref(),
    )
    .or_else(|| g.smtp_auth_secret.clone());
    let mut headers = BTreeMap::new();
    for (k, v) in r.headers.iter().flat_map(|h| h.0.iter()) {
        let canon = canonical_header(&k.value);
        if headers
            .insert(canon.clone(), v.clone().unwrap_or_default())
            .is_some()
        {
            cx.err(
                k.referenced,
                format!(
                    "{ctx}headers: duplicate header {canon:?}: header names are case-insensitive, keep one"
                ),
            );
        }
    }
    headers
        .entry("Subject".to_string())
        .or_insert_with(|| tmpl("email.default.subject"));
    headers
        .entry("To".to_string())
        .or_insert_with(|| to.clone());
    let from = from.unwrap_or_default();
    headers
        .entry("From".to_string())
        .or_insert_with(|| from.clone());
    let tls_config = match &r.tls_config {
        Some(t) => build_tls(cx, &format!("{ctx}tls_config: "), t),
        None => g.smtp_tls_config.clone(),
    };
    Some(EmailConfig {
        to,
        from,
        hello: r
            .hello
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| g.smtp_hello.clone()),
        smarthost: smarthost?,
        auth_username: r
            .auth_username
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| g.smtp_auth_username.clone()),
        auth_password: password,
        auth_secret,
        auth_identity: r
            .auth_identity
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| g.smtp_auth_identity.clone()),
        headers,
        html: text(&r.html, tmpl("email.default.html")),
        text: text(&r.text, ""),
        require_tls: r.require_tls.unwrap_or(g.smtp_require_tls),
        tls_config,
    })
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `content-type` -> `Content-Type`.
fn canonical_header(k: &str) -> String {
    if k.bytes()
        .any(|b| b == b' ' || !b.is_ascii() || b.is_ascii_control())
    {
        return k.to_string();
    }
    let mut upper = true;
    k.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

fn pagerduty(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    g: &NotifyGlobal,
    ctx: &str,
    c: &S<RawPagerduty>,
) -> Option<PagerdutyConfig> {
    let r = &c.value;
    let routing_key = secret(
        cx,
        w,
        ctx,
        "routing_key",
        r.routing_key.as_ref(),
        r.routing_key_file.as_ref(),
    );
    let service_key = secret(
        cx,
        w,
        ctx,
        "service_key",
        r.service_key.as_ref(),
        r.service_key_file.as_ref(),
    );
    let any = [
        &r.routing_key,
        &r.routing_key_file,
        &r.service_key,
        &r.service_key_file,
    ]
    .iter()
    .any(|v| set(v.as_ref()).is_some());
    if !any {
        missing(
            cx,
            c.referenced,
            ctx,
            "routing_key is missing: set routing_key (Events API v2) or service_key, or their *_file twins",
        );
    }
    let client = text(&r.client, tmpl("pagerduty.default.client"));
    let mut details = r.details.clone().unwrap_or_default();
    for (k, v) in [
        (
            "firing",
            "{{ template \"pagerduty.default.instances\" .Alerts.Firing }}",
        ),
        (
            "resolved",
            "{{ template \"pagerduty.default.instances\" .Alerts.Resolved }}",
        ),
        ("num_firing", "{{ .Alerts.Firing | len }}"),
        ("num_resolved", "{{ .Alerts.Resolved | len }}"),
    ] {
        details
            .entry(k.to_string())
            .or_insert_with(|| v.to_string());
    }
    Some(PagerdutyConfig {
        http_config: http_or(cx, w, ctx, r.http_config.as_ref(), g),
        routing_key,
        service_key,
        url: url(cx, ctx, "url", r.url.as_ref()).unwrap_or_else(|| g.pagerduty_url.clone()),
        source: r
            .source
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| client.clone()),
        client,
        client_url: text(&r.client_url, tmpl("pagerduty.default.clientURL")),
        description: text(
            &r.description,
            "{{ template \"pagerduty.default.description\" .}}",
        ),
        details,
        images: r
            .images
            .iter()
            .flatten()
            .map(|i| PagerdutyImage {
                src: text(&i.src, ""),
                alt: text(&i.alt, ""),
                href: text(&i.href, ""),
            })
            .collect(),
        links: r
            .links
            .iter()
            .flatten()
            .map(|l| PagerdutyLink {
                href: text(&l.href, ""),
                text: text(&l.text, ""),
            })
            .collect(),
        severity: text(&r.severity, ""),
        class: text(&r.class, ""),
        component: text(&r.component, ""),
        group: text(&r.group, ""),
    })
}

fn with_slash(mut u: String) -> String {
    // Alertmanager appends the path of each request to this base.
    if let Ok(mut parsed) = reqwest::Url::parse(&u)
        && !parsed.path().ends_with('/')
    {
        let p = format!("{}/", parsed.path());
        parsed.set_path(&p);
        u = parsed.to_string();
    }
    u
}

fn opsgenie(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    g: &NotifyGlobal,
    ctx: &str,
    c: &S<RawOpsgenie>,
) -> Option<OpsgenieConfig> {
    let r = &c.value;
    let key = secret(
        cx,
        w,
        ctx,
        "api_key",
        r.api_key.as_ref(),
        r.api_key_file.as_ref(),
    )
    .or_else(|| g.opsgenie_api_key.clone());
    let own = set(r.api_key.as_ref()).is_some() || set(r.api_key_file.as_ref()).is_some();
    if key.is_none() && !own {
        missing(
            cx,
            c.referenced,
            ctx,
            "api_key is not set here and global opsgenie_api_key is not set: set one of them (or a *_file twin)",
        );
    }
    let mut responders = Vec::new();
    for (i, resp) in r.responders.iter().flatten().enumerate() {
        let v = &resp.value;
        let rctx = format!("{ctx}responders[{i}]: ");
        let (id, name, username) = (text(&v.id, ""), text(&v.name, ""), text(&v.username, ""));
        if id.is_empty() && name.is_empty() && username.is_empty() {
            cx.err(
                resp.referenced,
                format!("{rctx}set at least one of id, username or name"),
            );
        }
        let mut kind = v.kind.as_ref().map(|k| k.value.clone()).unwrap_or_default();
        if !kind.contains("{{") {
            kind = kind.to_lowercase();
            if !["team", "teams", "user", "escalation", "schedule"].contains(&kind.as_str()) {
                let at = v
                    .kind
                    .as_ref()
                    .map(|k| k.referenced)
                    .unwrap_or(resp.referenced);
                cx.err(
                    at,
                    format!(
                        "{rctx}type {kind:?} is not valid: use team, teams, user, escalation or schedule"
                    ),
                );
            }
        }
        responders.push(OpsgenieResponder {
            id,
            name,
            username,
            kind,
        });
    }
    Some(OpsgenieConfig {
        http_config: http_or(cx, w, ctx, r.http_config.as_ref(), g),
        api_url: with_slash(
            url(cx, ctx, "api_url", r.api_url.as_ref())
                .unwrap_or_else(|| g.opsgenie_api_url.clone()),
        ),
        message: text(&r.message, tmpl("opsgenie.default.message")),
        description: text(&r.description, tmpl("opsgenie.default.description")),
        source: text(&r.source, tmpl("opsgenie.default.source")),
        details: r.details.clone().unwrap_or_default(),
        entity: text(&r.entity, ""),
        responders,
        actions: text(&r.actions, ""),
        tags: text(&r.tags, ""),
        note: text(&r.note, ""),
        priority: text(&r.priority, ""),
        update_alerts: r.update_alerts.unwrap_or(false),
        api_key: key?,
    })
}

fn slack(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    g: &NotifyGlobal,
    ctx: &str,
    c: &S<RawSlack>,
) -> Option<SlackConfig> {
    let r = &c.value;
    let webhook = secret_url(
        cx,
        w,
        ctx,
        "api_url",
        r.api_url.as_ref(),
        r.api_url_file.as_ref(),
    );
    let token = secret(
        cx,
        w,
        ctx,
        "app_token",
        r.app_token.as_ref(),
        r.app_token_file.as_ref(),
    );
    let app_url =
        url(cx, ctx, "app_url", r.app_url.as_ref()).unwrap_or_else(|| g.slack_app_url.clone());
    let target = match (webhook, token) {
        (Some(_), Some(_)) => {
            let at = set(r.app_token.as_ref())
                .or(set(r.app_token_file.as_ref()))
                .map(|v| v.referenced)
                .unwrap_or(c.referenced);
            cx.err(
                at,
                format!("{ctx}api_url and app_token are both set: use a webhook URL or an app token, not both"),
            );
            None
        }
        (Some(u), None) => Some(SlackTarget::Webhook(u)),
        (None, Some(t)) => Some(SlackTarget::App {
            token: t,
            url: app_url,
        }),
        (None, None) => {
            let own = [&r.api_url, &r.api_url_file, &r.app_token, &r.app_token_file]
                .iter()
                .any(|v| set(v.as_ref()).is_some());
            match (&g.slack_api_url, &g.slack_app_token) {
                _ if own => None,
                (Some(u), _) => Some(SlackTarget::Webhook(u.clone())),
                (None, Some(t)) => Some(SlackTarget::App {
                    token: t.clone(),
                    url: app_url,
                }),
                (None, None) => {
                    missing(
                        cx,
                        c.referenced,
                        ctx,
                        "api_url is not set here and global slack_api_url is not set: set one of them (or app_token for chat.postMessage)",
                    );
                    None
                }
            }
        }
    };
    let mut fields = Vec::new();
    for (i, f) in r.fields.iter().flatten().enumerate() {
        if let Some(f) = slack_field(cx, &format!("{ctx}fields[{i}]: "), f) {
            fields.push(f);
        }
    }
    let mut actions = Vec::new();
    for (i, a) in r.actions.iter().flatten().enumerate() {
        let actx = format!("{ctx}actions[{i}]: ");
        let v = &a.value;
        let kind = text(&v.kind, "");
        let atext = text(&v.text, "");
        if kind.is_empty() {
            cx.err(a.referenced, format!("{actx}type is missing"));
        }
        if atext.is_empty() {
            cx.err(a.referenced, format!("{actx}text is missing"));
        }
        let url = text(&v.url, "");
        let name = text(&v.name, "");
        if url.is_empty() && name.is_empty() {
            cx.err(
                a.referenced,
                format!("{actx}url or name is missing: a button needs a url (link) or a name (interactive)"),
            );
        }
        let confirm = v.confirm.as_ref().map(|c| {
            let t = text(&c.value.text, "");
            if t.is_empty() {
                cx.err(c.referenced, format!("{actx}confirm: text is missing"));
            }
            SlackConfirm {
                text: t,
                title: text(&c.value.title, ""),
                ok_text: text(&c.value.ok_text, ""),
                dismiss_text: text(&c.value.dismiss_text, ""),
            }
        });
        // A link button carries no interactive fields (Alertmanager clears them).
        let link = !url.is_empty();
        actions.push(SlackAction {
            kind,
            text: atext,
            style: text(&v.style, ""),
            name: if link { String::new() } else { name },
            value: if link {
                String::new()
            } else {
                text(&v.value, "")
            },
            confirm: if link { None } else { confirm },
            url,
        });
    }
    Some(SlackConfig {
        http_config: http_or(cx, w, ctx, r.http_config.as_ref(), g),
        channel: text(&r.channel, ""),
        username: text(&r.username, tmpl("slack.default.username")),
        color: text(
            &r.color,
            "{{ if eq .Status \"firing\" }}danger{{ else }}good{{ end }}",
        ),
        title: text(&r.title, tmpl("slack.default.title")),
        title_link: text(&r.title_link, tmpl("slack.default.titlelink")),
        pretext: text(&r.pretext, tmpl("slack.default.pretext")),
        text: text(&r.text, tmpl("slack.default.text")),
        fields,
        short_fields: r.short_fields.unwrap_or(false),
        footer: text(&r.footer, tmpl("slack.default.footer")),
        fallback: text(&r.fallback, tmpl("slack.default.fallback")),
        callback_id: text(&r.callback_id, tmpl("slack.default.callbackid")),
        icon_emoji: text(&r.icon_emoji, tmpl("slack.default.iconemoji")),
        icon_url: text(&r.icon_url, tmpl("slack.default.iconurl")),
        image_url: text(&r.image_url, ""),
        thumb_url: text(&r.thumb_url, ""),
        link_names: r.link_names.unwrap_or(false),
        mrkdwn_in: r.mrkdwn_in.clone().unwrap_or_default(),
        actions,
        target: target?,
    })
}

fn slack_field(cx: &mut Cx<'_>, ctx: &str, f: &S<RawSlackField>) -> Option<SlackField> {
    let title = text(&f.value.title, "");
    let value = text(&f.value.value, "");
    if title.is_empty() {
        cx.err(f.referenced, format!("{ctx}title is missing"));
    }
    if value.is_empty() {
        cx.err(f.referenced, format!("{ctx}value is missing"));
    }
    Some(SlackField {
        title,
        value,
        short: f.value.short,
    })
}

fn victorops(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    g: &NotifyGlobal,
    ctx: &str,
    c: &S<RawVictorops>,
) -> Option<VictoropsConfig> {
    let r = &c.value;
    let routing_key = match set(r.routing_key.as_ref()) {
        Some(k) => k.value.clone(),
        None => {
            missing(cx, c.referenced, ctx, "routing_key is missing");
            String::new()
        }
    };
    let key = secret(
        cx,
        w,
        ctx,
        "api_key",
        r.api_key.as_ref(),
        r.api_key_file.as_ref(),
    )
    .or_else(|| g.victorops_api_key.clone());
    let own = set(r.api_key.as_ref()).is_some() || set(r.api_key_file.as_ref()).is_some();
    if key.is_none() && !own {
        missing(
            cx,
            c.referenced,
            ctx,
            "api_key is not set here and global victorops_api_key is not set: set one of them (or a *_file twin)",
        );
    }
    let mut custom_fields = BTreeMap::new();
    for (k, v) in r.custom_fields.iter().flat_map(|m| m.0.iter()) {
        const RESERVED: [&str; 7] = [
            "routing_key",
            "message_type",
            "state_message",
            "entity_display_name",
            "monitoring_tool",
            "entity_id",
            "entity_state",
        ];
        if RESERVED.contains(&k.value.as_str()) {
            cx.err(
                k.referenced,
                format!(
                    "{ctx}custom_fields: {:?} cannot be used: it is one of VictorOps's fixed fields",
                    k.value
                ),
            );
        }
        custom_fields.insert(k.value.clone(), v.clone().unwrap_or_default());
    }
    Some(VictoropsConfig {
        http_config: http_or(cx, w, ctx, r.http_config.as_ref(), g),
        api_url: with_slash(
            url(cx, ctx, "api_url", r.api_url.as_ref())
                .unwrap_or_else(|| g.victorops_api_url.clone()),
        ),
        routing_key,
        message_type: text(&r.message_type, "CRITICAL"),
        state_message: text(&r.state_message, tmpl("victorops.default.state_message")),
        entity_display_name: text(
            &r.entity_display_name,
            tmpl("victorops.default.entity_display_name"),
        ),
        monitoring_tool: text(
            &r.monitoring_tool,
            tmpl("victorops.default.monitoring_tool"),
        ),
        custom_fields,
        api_key: key?,
    })
}

/// A required secret: reports when neither it nor its file is set.
fn required_secret(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    at: Location,
    ctx: &str,
    key: &str,
    inline: Option<&S<String>>,
    file: Option<&S<String>>,
) -> Option<SecretSource> {
    if set(inline).is_none() && set(file).is_none() {
        missing(
            cx,
            at,
            ctx,
            &format!("{key} is missing: set {key} or {key}_file"),
        );
        return None;
    }
    secret(cx, w, ctx, key, inline, file)
}

fn required_secret_url(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    at: Location,
    ctx: &str,
    key: &str,
    inline: Option<&S<String>>,
    file: Option<&S<String>>,
) -> Option<SecretSource> {
    if set(inline).is_none() && set(file).is_none() {
        missing(
            cx,
            at,
            ctx,
            &format!("{key} is missing: set {key} or {key}_file"),
        );
        return None;
    }
    secret_url(cx, w, ctx, key, inline, file)
}

fn pushover(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    g: &NotifyGlobal,
    ctx: &str,
    c: &S<RawPushover>,
) -> Option<PushoverConfig> {
    let r = &c.value;
    let user_key = required_secret(
        cx,
        w,
        c.referenced,
        ctx,
        "user_key",
        r.user_key.as_ref(),
        r.user_key_file.as_ref(),
    );
    let token = required_secret(
        cx,
        w,
        c.referenced,
        ctx,
        "token",
        r.token.as_ref(),
        r.token_file.as_ref(),
    );
    let html = r.html.unwrap_or(false);
    let monospace = r.monospace.as_ref().is_some_and(|m| m.value);
    if let (true, Some(m)) = (html && monospace, &r.monospace) {
        cx.err(
            m.referenced,
            format!("{ctx}html and monospace are both true: a message is either HTML or monospace"),
        );
    }
    Some(PushoverConfig {
        http_config: http_or(cx, w, ctx, r.http_config.as_ref(), g),
        title: text(&r.title, tmpl("pushover.default.title")),
        message: text(&r.message, tmpl("pushover.default.message")),
        url: text(&r.url, tmpl("pushover.default.url")),
        url_title: text(&r.url_title, ""),
        device: text(&r.device, ""),
        sound: text(&r.sound, ""),
        priority: text(
            &r.priority,
            "{{ if eq .Status \"firing\" }}2{{ else }}0{{ end }}",
        ),
        retry: go_duration(cx, ctx, "retry", r.retry.as_ref()).unwrap_or(Duration::from_secs(60)),
        expire: go_duration(cx, ctx, "expire", r.expire.as_ref())
            .unwrap_or(Duration::from_secs(3600)),
        ttl: go_duration(cx, ctx, "ttl", r.ttl.as_ref()).unwrap_or_default(),
        html,
        monospace,
        user_key: user_key?,
        token: token?,
    })
}

fn telegram(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    g: &NotifyGlobal,
    ctx: &str,
    c: &S<RawTelegram>,
) -> Option<TelegramConfig> {
    let r = &c.value;
    let bot_token = required_secret(
        cx,
        w,
        c.referenced,
        ctx,
        "bot_token",
        r.bot_token.as_ref(),
        r.bot_token_file.as_ref(),
    );
    let chat_id = r.chat_id.as_ref().filter(|c| c.value != 0);
    let chat_file = set(r.chat_id_file.as_ref());
    let chat = match (chat_id, chat_file) {
        (Some(_), Some(f)) => {
            cx.err(
                f.referenced,
                format!("{ctx}chat_id and chat_id_file are both set: keep one"),
            );
            None
        }
        (Some(id), None) => Some(TelegramChat::Id(id.value)),
        (None, Some(f)) => {
            let p = cx.path(&f.value);
            warn_missing(cx, w, ctx, "chat_id_file", &p, f.referenced);
            Some(TelegramChat::File(p))
        }
        (None, None) => {
            missing(
                cx,
                c.referenced,
                ctx,
                "chat_id is missing: give the numeric id of the chat (negative for groups and channels)",
            );
            None
        }
    };
    let parse_mode = match &r.parse_mode {
        None => "HTML".to_string(),
        Some(p) => {
            if !["", "HTML", "Markdown", "MarkdownV2"].contains(&p.value.as_str()) {
                cx.err(
                    p.referenced,
                    format!(
                        "{ctx}parse_mode {:?} is not valid: use HTML, Markdown, MarkdownV2 or an empty string for plain text",
                        p.value
                    ),
                );
            }
            p.value.clone()
        }
    };
    Some(TelegramConfig {
        http_config: http_or(cx, w, ctx, r.http_config.as_ref(), g),
        api_url: url(cx, ctx, "api_url", r.api_url.as_ref())
            .unwrap_or_else(|| g.telegram_api_url.clone()),
        message_thread_id: r.message_thread_id.unwrap_or(0),
        message: text(&r.message, tmpl("telegram.default.message")),
        disable_notifications: r.disable_notifications.unwrap_or(false),
        parse_mode,
        bot_token: bot_token?,
        chat: chat?,
    })
}

fn discord(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    g: &NotifyGlobal,
    ctx: &str,
    c: &S<RawDiscord>,
) -> Option<DiscordConfig> {
    let r = &c.value;
    let url = required_secret_url(
        cx,
        w,
        c.referenced,
        ctx,
        "webhook_url",
        r.webhook_url.as_ref(),
        r.webhook_url_file.as_ref(),
    );
    Some(DiscordConfig {
        http_config: http_or(cx, w, ctx, r.http_config.as_ref(), g),
        content: text(&r.content, ""),
        title: text(&r.title, tmpl("discord.default.title")),
        message: text(&r.message, tmpl("discord.default.message")),
        username: text(&r.username, ""),
        avatar_url: text(&r.avatar_url, ""),
        webhook_url: url?,
    })
}

fn webex(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    g: &NotifyGlobal,
    ctx: &str,
    c: &S<RawWebex>,
) -> Option<WebexConfig> {
    let r = &c.value;
    let room_id = match set(r.room_id.as_ref()) {
        Some(v) => v.value.clone(),
        None => {
            missing(cx, c.referenced, ctx, "room_id is missing");
            String::new()
        }
    };
    let http_config = http_or(cx, w, ctx, r.http_config.as_ref(), g);
    if r.http_config.is_none() || http_config.authorization.is_none() {
        missing(
            cx,
            c.referenced,
            ctx,
            "http_config: authorization is missing: Webex needs the bot's access token as http_config.authorization.credentials",
        );
    }
    Some(WebexConfig {
        http_config,
        api_url: url(cx, ctx, "api_url", r.api_url.as_ref())
            .unwrap_or_else(|| g.webex_api_url.clone()),
        message: text(&r.message, tmpl("webex.default.message")),
        room_id,
    })
}

fn msteams(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    g: &NotifyGlobal,
    ctx: &str,
    c: &S<RawMsteams>,
) -> Option<MsteamsConfig> {
    let r = &c.value;
    let url = required_secret_url(
        cx,
        w,
        c.referenced,
        ctx,
        "webhook_url",
        r.webhook_url.as_ref(),
        r.webhook_url_file.as_ref(),
    );
    Some(MsteamsConfig {
        http_config: http_or(cx, w, ctx, r.http_config.as_ref(), g),
        title: text(&r.title, tmpl("msteams.default.title")),
        summary: text(&r.summary, tmpl("msteams.default.summary")),
        text: text(&r.text, tmpl("msteams.default.text")),
        webhook_url: url?,
    })
}

fn msteamsv2(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    g: &NotifyGlobal,
    ctx: &str,
    c: &S<RawMsteamsV2>,
) -> Option<MsteamsV2Config> {
    let r = &c.value;
    let url = required_secret_url(
        cx,
        w,
        c.referenced,
        ctx,
        "webhook_url",
        r.webhook_url.as_ref(),
        r.webhook_url_file.as_ref(),
    );
    Some(MsteamsV2Config {
        http_config: http_or(cx, w, ctx, r.http_config.as_ref(), g),
        title: text(&r.title, tmpl("msteamsv2.default.title")),
        text: text(&r.text, tmpl("msteamsv2.default.text")),
        webhook_url: url?,
    })
}

fn mattermost(
    cx: &mut Cx<'_>,
    w: &mut Warnings,
    g: &NotifyGlobal,
    ctx: &str,
    c: &S<RawMattermost>,
) -> Option<MattermostConfig> {
    let r = &c.value;
    let own = secret_url(
        cx,
        w,
        ctx,
        "webhook_url",
        r.webhook_url.as_ref(),
        r.webhook_url_file.as_ref(),
    );
    let has_own =
        set(r.webhook_url.as_ref()).is_some() || set(r.webhook_url_file.as_ref()).is_some();
    let url = match own {
        Some(u) => Some(u),
        None if has_own => None,
        None => {
            if g.mattermost_webhook_url.is_none() {
                missing(
                    cx,
                    c.referenced,
                    ctx,
                    "webhook_url is not set here and global mattermost_webhook_url is not set: set one of them (or a *_file twin)",
                );
            }
            g.mattermost_webhook_url.clone()
        }
    };
    let mut fields = Vec::new();
    for (i, f) in r.fields.iter().flatten().enumerate() {
        if let Some(f) = slack_field(cx, &format!("{ctx}fields[{i}]: "), f) {
            fields.push(f);
        }
    }
    let mut attachments = Vec::new();
    for (i, a) in r.attachments.iter().flatten().enumerate() {
        let actx = format!("{ctx}attachments[{i}]: ");
        let v = &a.value;
        let mut fields = Vec::new();
        for (j, f) in v.fields.iter().flatten().enumerate() {
            if let Some(f) = slack_field(cx, &format!("{actx}fields[{j}]: "), f) {
                fields.push(f);
            }
        }
        attachments.push(MattermostAttachment {
            fallback: text(&v.fallback, ""),
            color: text(&v.color, ""),
            pretext: text(&v.pretext, ""),
            text: text(&v.text, ""),
            author_name: text(&v.author_name, ""),
            author_link: text(&v.author_link, ""),
            author_icon: text(&v.author_icon, ""),
            title: text(&v.title, ""),
            title_link: text(&v.title_link, ""),
            fields,
            thumb_url: text(&v.thumb_url, ""),
            footer: text(&v.footer, ""),
            footer_icon: text(&v.footer_icon, ""),
            image_url: text(&v.image_url, ""),
        });
    }
    Some(MattermostConfig {
        attachments,
        kind: text(&r.kind, ""),
        card: r
            .props
            .as_ref()
            .map(|p| text(&p.card, ""))
            .unwrap_or_default(),
        priority: r.priority.as_ref().map(|p| MattermostPriority {
            priority: text(&p.priority, ""),
            requested_ack: p.requested_ack.unwrap_or(false),
            persistent_notifications: p.persistent_notifications.unwrap_or(false),
        }),
        http_config: http_or(cx, w, ctx, r.http_config.as_ref(), g),
        channel: text(&r.channel, ""),
        username: text(&r.username, tmpl("mattermost.default.username")),
        text: text(&r.text, tmpl("mattermost.default.text")),
        fallback: text(&r.fallback, tmpl("mattermost.default.fallback")),
        color: text(&r.color, tmpl("mattermost.default.color")),
        pretext: text(&r.pretext, ""),
        author_name: text(&r.author_name, ""),
        author_link: text(&r.author_link, ""),
        author_icon: text(&r.author_icon, ""),
        title: text(&r.title, tmpl("mattermost.default.title")),
        title_link: text(&r.title_link, tmpl("mattermost.default.titlelink")),
        fields,
        thumb_url: text(&r.thumb_url, ""),
        footer: text(&r.footer, ""),
        footer_icon: text(&r.footer_icon, ""),
        image_url: text(&r.image_url, ""),
        icon_url: text(&r.icon_url, ""),
        icon_emoji: text(&r.icon_emoji, ""),
        webhook_url: url?,
    })
}

fn log(
    _cx: &mut Cx<'_>,
    _w: &mut Warnings,
    _g: &NotifyGlobal,
    _ctx: &str,
    c: &S<RawLog>,
) -> Option<LogConfig> {
    Some(LogConfig {
        message: text(&c.value.message, ""),
    })
}

/// Parses `matchers:` style lists (each entry may hold several matchers).
fn matcher_list(
    cx: &mut Cx<'_>,
    ctx: &str,
    key: &str,
    list: Option<&Vec<S<String>>>,
) -> Vec<Matcher> {
    let mut out = Vec::new();
    for m in list.into_iter().flatten() {
        match parse_matchers(&m.value) {
            Ok(ms) => out.extend(ms),
            Err(e) => cx.err(
                m.referenced,
                format!("{ctx}{key}: invalid matcher {:?}: {e}", m.value),
            ),
        }
    }
    out
}

/// The deprecated `match` / `match_re` maps.
fn match_map(
    cx: &mut Cx<'_>,
    ctx: &str,
    key: &str,
    op: MatchOp,
    map: Option<&SpannedMap<Option<S<String>>>>,
) -> Vec<Matcher> {
    let mut out = Vec::new();
    for (name, value) in map.into_iter().flat_map(|m| m.0.iter()) {
        if !is_valid_label_name(&name.value) {
            cx.err(
                name.referenced,
                format!(
                    "{ctx}{key}: {:?} is not a valid label name: use [a-zA-Z_][a-zA-Z0-9_]*",
                    name.value
                ),
            );
            continue;
        }
        let v = value.as_ref().map(|v| v.value.as_str()).unwrap_or("");
        match Matcher::new(op, name.value.clone(), v) {
            Ok(m) => out.push(m),
            Err(e) => {
                let at = value
                    .as_ref()
                    .map(|v| v.referenced)
                    .unwrap_or(name.referenced);
                cx.err(
                    at,
                    format!(
                        "{ctx}{key}: {}: invalid regular expression {:?}: {}",
                        name.value,
                        e.pattern,
                        super::matchers::regex_reason(&e.reason)
                    ),
                );
            }
        }
    }
    out
}

/// Alertmanager's matcher order (`labels.Matchers.Less`): name, value, type.
pub(crate) fn sort_matchers(ms: &mut [Matcher]) {
    let rank = |op: MatchOp| match op {
        MatchOp::Equal => 0,
        MatchOp::NotEqual => 1,
        MatchOp::Regex => 2,
        MatchOp::NotRegex => 3,
    };
    ms.sort_by(|a, b| {
        (a.name.as_str(), a.value.as_str(), rank(a.op)).cmp(&(
            b.name.as_str(),
            b.value.as_str(),
            rank(b.op),
        ))
    });
}

fn build_route(
    cx: &mut Cx<'_>,
    path: &str,
    r: &S<RawRoute>,
    root: bool,
    names: &Names,
) -> RouteConfig {
    let v = &r.value;
    let ctx = format!("{path}: ");
    let receiver = v.receiver.as_ref().filter(|s| !s.value.is_empty());
    match receiver {
        None if root => cx.err(
            r.referenced,
            "route: receiver is missing: the root route needs a default receiver",
        ),
        Some(rc) if !names.receivers.contains(&rc.value) => cx.err(
            rc.referenced,
            format!(
                "{ctx}receiver {:?} is not defined: add it to receivers or fix the name",
                rc.value
            ),
        ),
        _ => {}
    }
    if root {
        let keyed = [
            (
                "match",
                v.match_eq
                    .as_ref()
                    .and_then(|m| m.0.first())
                    .map(|(k, _)| k.referenced),
            ),
            (
                "match_re",
                v.match_re
                    .as_ref()
                    .and_then(|m| m.0.first())
                    .map(|(k, _)| k.referenced),
            ),
            (
                "matchers",
                v.matchers
                    .as_ref()
                    .and_then(|m| m.first())
                    .map(|m| m.referenced),
            ),
        ];
        for (key, at) in keyed {
            if let Some(at) = at {
                cx.err_at_key(
                    key,
                    at,
                    format!("route: the root route must not have {key}: every alert enters at the root; put matchers on child routes"),
                );
            }
        }
        for (key, list) in [
            ("mute_time_intervals", &v.mute_time_intervals),
            ("active_time_intervals", &v.active_time_intervals),
        ] {
            if let Some(first) = list.as_ref().and_then(|l| l.first()) {
                cx.err_at_key(
                    key,
                    first.referenced,
                    format!("route: the root route must not have {key}: set them on child routes"),
                );
            }
        }
        if let Some(c) = v.continue_matching.as_ref().filter(|c| c.value) {
            cx.err(
                c.referenced,
                "route: continue is not allowed on the root route: it has no siblings",
            );
        }
    }

    let mut group_by = None;
    if let Some(list) = &v.group_by {
        let mut all = false;
        let mut labels: Vec<String> = Vec::new();
        for l in list {
            if l.value == "..." {
                all = true;
            } else if !is_valid_label_name(&l.value) {
                cx.err(
                    l.referenced,
                    format!(
                        "{ctx}group_by: {:?} is not a valid label name: use [a-zA-Z_][a-zA-Z0-9_]* or '...' for all labels",
                        l.value
                    ),
                );
            } else if labels.contains(&l.value) {
                cx.err(
                    l.referenced,
                    format!("{ctx}group_by: label {:?} is listed twice", l.value),
                );
            } else {
                labels.push(l.value.clone());
            }
        }
        if all && !labels.is_empty() {
            let at = list.first().map(|l| l.referenced).unwrap_or(r.referenced);
            cx.err(
                at,
                format!("{ctx}group_by: '...' cannot be combined with label names: '...' already groups by every label"),
            );
        }
        // An empty list leaves the parent's grouping in place (Alertmanager's rule).
        group_by = if all {
            Some(GroupBy::All)
        } else if labels.is_empty() {
            None
        } else {
            Some(GroupBy::Labels(labels))
        };
    }

    let mut matchers = match_map(cx, &ctx, "match", MatchOp::Equal, v.match_eq.as_ref());
    matchers.extend(match_map(
        cx,
        &ctx,
        "match_re",
        MatchOp::Regex,
        v.match_re.as_ref(),
    ));
    matchers.extend(matcher_list(cx, &ctx, "matchers", v.matchers.as_ref()));
    sort_matchers(&mut matchers);

    let group_wait = duration(cx, &ctx, "group_wait", v.group_wait.as_ref());
    let mut nonzero = |key: &str, val: Option<&S<String>>| {
        let d = duration(cx, &ctx, key, val);
        if let (Some(d), Some(at)) = (d, val)
            && d.is_zero()
        {
            cx.err(
                at.referenced,
                format!("{ctx}{key} cannot be zero: give a positive duration such as 5m"),
            );
        }
        d
    };
    let group_interval = nonzero("group_interval", v.group_interval.as_ref());
    let repeat_interval = nonzero("repeat_interval", v.repeat_interval.as_ref());

    let mut intervals = |key: &str, list: &Option<Vec<S<String>>>| -> Vec<String> {
        let mut out = Vec::new();
        for n in list.iter().flatten() {
            if !names.intervals.contains(&n.value) {
                cx.err(
                    n.referenced,
                    format!(
                        "{ctx}{key}: time interval {:?} is not defined: add it to time_intervals or fix the name",
                        n.value
                    ),
                );
            }
            out.push(n.value.clone());
        }
        out
    };
    let mute_time_intervals = intervals("mute_time_intervals", &v.mute_time_intervals);
    let active_time_intervals = intervals("active_time_intervals", &v.active_time_intervals);

    let routes = v
        .routes
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, child)| build_route(cx, &format!("{path}.routes[{i}]"), child, false, names))
        .collect();

    RouteConfig {
        receiver: receiver.map(|r| r.value.clone()),
        group_by,
        matchers,
        continue_matching: v.continue_matching.as_ref().is_some_and(|c| c.value),
        group_wait,
        group_interval,
        repeat_interval,
        mute_time_intervals,
        active_time_intervals,
        send_resolved_when_muted: v.send_resolved_when_muted,
        routes,
    }
}

fn build_inhibit_rule(cx: &mut Cx<'_>, ctx: &str, r: &S<RawInhibitRule>) -> InhibitRuleConfig {
    let v = &r.value;
    let mut source = match_map(
        cx,
        ctx,
        "source_match",
        MatchOp::Equal,
        v.source_match.as_ref(),
    );
    source.extend(match_map(
        cx,
        ctx,
        "source_match_re",
        MatchOp::Regex,
        v.source_match_re.as_ref(),
    ));
    source.extend(matcher_list(
        cx,
        ctx,
        "source_matchers",
        v.source_matchers.as_ref(),
    ));
    let mut target = match_map(
        cx,
        ctx,
        "target_match",
        MatchOp::Equal,
        v.target_match.as_ref(),
    );
    target.extend(match_map(
        cx,
        ctx,
        "target_match_re",
        MatchOp::Regex,
        v.target_match_re.as_ref(),
    ));
    target.extend(matcher_list(
        cx,
        ctx,
        "target_matchers",
        v.target_matchers.as_ref(),
    ));
    sort_matchers(&mut source);
    sort_matchers(&mut target);
    let mut equal = Vec::new();
    for l in v.equal.iter().flatten() {
        if is_valid_label_name(&l.value) {
            equal.push(l.value.clone());
        } else {
            cx.err(
                l.referenced,
                format!(
                    "{ctx}equal: {:?} is not a valid label name: use [a-zA-Z_][a-zA-Z0-9_]*",
                    l.value
                ),
            );
        }
    }
    InhibitRuleConfig {
        name: v.name.clone().filter(|n| !n.is_empty()),
        source_matchers: source,
        target_matchers: target,
        equal,
    }
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// `a:b` or `a` (lower-cased), each side mapped by `member`.
fn range<T: Copy>(s: &str, member: impl Fn(&str) -> Option<T>) -> Option<(T, T)> {
    let s = s.to_lowercase();
    match s.split_once(':') {
        Some((a, b)) if !b.contains(':') => Some((member(a)?, member(b)?)),
        Some(_) => None,
        None => {
            let v = member(&s)?;
            Some((v, v))
        }
    }
}

fn build_time_interval(cx: &mut Cx<'_>, ctx: &str, t: &S<RawTimeInterval>) -> Option<TimeInterval> {
    let v = &t.value;
    let before = cx.error_count();
    let mut times = None;
    if let Some(list) = &v.times {
        let mut out = Vec::new();
        for tr in list {
            let (start, end) = (tr.value.start_time.as_ref(), tr.value.end_time.as_ref());
            let (Some(start), Some(end)) = (set(start), set(end)) else {
                cx.err(
                    tr.referenced,
                    format!("{ctx}times: both start_time and end_time must be given"),
                );
                continue;
            };
            let (Some(s), Some(e)) = (
                clock_minutes(cx, ctx, "start_time", start),
                clock_minutes(cx, ctx, "end_time", end),
            ) else {
                continue;
            };
            if s >= e {
                cx.err(
                    start.referenced,
                    format!(
                        "{ctx}times: start_time {} is not before end_time {}: a range cannot cross midnight; split it into two ranges",
                        start.value, end.value
                    ),
                );
                continue;
            }
            out.push(TimeRange {
                start_minute: s,
                end_minute: e,
            });
        }
        times = Some(out);
    }

    let weekdays = v.weekdays.as_ref().map(|list| {
        list.iter()
            .filter_map(|d| {
                let member = |s: &str| WEEKDAYS.iter().position(|w| *w == s).map(|p| p as u32);
                match range(&d.value, member) {
                    Some((a, b)) if a <= b => Some((a, b)),
                    Some(_) => {
                        cx.err(
                            d.referenced,
                            format!(
                                "{ctx}weekdays: {:?}: the end day is before the start day (weeks run sunday to saturday); split it, e.g. [saturday, sunday]",
                                d.value
                            ),
                        );
                        None
                    }
                    None => {
                        cx.err(
                            d.referenced,
                            format!(
                                "{ctx}weekdays: {:?} is not a valid weekday or range: write e.g. monday or monday:friday",
                                d.value
                            ),
                        );
                        None
                    }
                }
            })
            .collect()
    });

    let days_of_month = v.days_of_month.as_ref().map(|list| {
        list.iter()
            .filter_map(|d| {
                let Some((a, b)) = range(&d.value, |s| s.trim().parse::<i32>().ok()) else {
                    cx.err(
                        d.referenced,
                        format!(
                            "{ctx}days_of_month: {:?} is not a valid day or range: write e.g. 1, 1:15 or -1 for the last day",
                            d.value
                        ),
                    );
                    return None;
                };
                let problem = if [a, b].iter().any(|x| *x == 0 || !(-31..=31).contains(x)) {
                    Some("days must be 1 to 31, or -1 to -31 counting from the end of the month".to_string())
                } else if a < 0 && b > 0 {
                    Some("the end day must be negative when the start day is".to_string())
                } else {
                    let norm = |x: i32| if x < 0 { 28 + x } else { x };
                    (norm(a) > norm(b)).then(|| format!("end day {b} is always before start day {a}"))
                };
                match problem {
                    Some(p) => {
                        cx.err(d.referenced, format!("{ctx}days_of_month: {:?}: {p}", d.value));
                        None
                    }
                    None => Some((a, b)),
                }
            })
            .collect()
    });

    let months = v.months.as_ref().map(|list| {
        list.iter()
            .filter_map(|m| {
                let member = |s: &str| {
                    MONTHS
                        .iter()
                        .position(|n| *n == s)
                        .map(|p| p as u32 + 1)
                        .or_else(|| s.parse::<u32>().ok().filter(|n| (1..=12).contains(n)))
                };
                match range(&m.value, member) {
                    Some((a, b)) if a <= b => Some((a, b)),
                    Some(_) => {
                        cx.err(
                            m.referenced,
                            format!(
                                "{ctx}months: {:?}: the end month is before the start month; split it, e.g. [november:december, january:february]",
                                m.value
                            ),
                        );
                        None
                    }
                    None => {
                        cx.err(
                            m.referenced,
                            format!(
                                "{ctx}months: {:?} is not a valid month or range: write e.g. january, 1:3 or march:may",
                                m.value
                            ),
                        );
                        None
                    }
                }
            })
            .collect()
    });

    let years = v.years.as_ref().map(|list| {
        list.iter()
            .filter_map(|y| match range(&y.value, |s| s.trim().parse::<i32>().ok()) {
                Some((a, b)) if a <= b && a > 0 => Some((a, b)),
                Some((a, b)) if a > b => {
                    cx.err(
                        y.referenced,
                        format!("{ctx}years: {:?}: end year {b} is before start year {a}", y.value),
                    );
                    None
                }
                _ => {
                    cx.err(
                        y.referenced,
                        format!(
                            "{ctx}years: {:?} is not a valid year or range: write e.g. 2025 or 2025:2027",
                            y.value
                        ),
                    );
                    None
                }
            })
            .collect()
    });

    let location = match set(v.location.as_ref()) {
        None => IntervalLocation::Utc,
        Some(l) => parse_location(&l.value).unwrap_or_else(|| {
            cx.err(
                l.referenced,
                format!(
                    "{ctx}location: unknown time zone {:?}: use an IANA name such as Europe/Berlin, UTC or Local",
                    l.value
                ),
            );
            IntervalLocation::Utc
        }),
    };

    let cron = match (&v.cron, &v.duration) {
        (None, None) => None,
        (None, Some(d)) => {
            cx.err_at_key(
                "duration",
                d.referenced,
                format!(
                    "{ctx}duration is set without cron: duration is the length of each cron window"
                ),
            );
            None
        }
        (Some(c), d) => {
            let others = [
                ("times", v.times.is_some()),
                ("weekdays", v.weekdays.is_some()),
                ("days_of_month", v.days_of_month.is_some()),
                ("months", v.months.is_some()),
                ("years", v.years.is_some()),
            ];
            for (key, present) in others {
                if present {
                    cx.err_at_key(
                        "cron",
                        c.referenced,
                        format!(
                            "{ctx}cron cannot be combined with {key}: the cron expression says when the window opens; write {key} in a separate entry of time_intervals"
                        ),
                    );
                }
            }
            let schedule = match parse_cron(&c.value) {
                Ok(s) => Some(s),
                Err(e) => {
                    cx.err(c.referenced, format!("{ctx}cron: {e}"));
                    None
                }
            };
            let length = match d {
                None => {
                    cx.err(
                        c.referenced,
                        format!("{ctx}cron needs a duration: the length of each window, e.g. duration: 2h"),
                    );
                    None
                }
                Some(d) => match duration(cx, ctx, "duration", Some(d)) {
                    Some(z) if z.is_zero() => {
                        cx.err(
                            d.referenced,
                            format!("{ctx}duration must be greater than 0s"),
                        );
                        None
                    }
                    other => other,
                },
            };
            match (schedule, length) {
                (Some(schedule), Some(duration)) => Some(CronWindow {
                    expression: c.value.clone(),
                    schedule,
                    duration,
                }),
                _ => None,
            }
        }
    };

    (cx.error_count() == before).then_some(TimeInterval {
        times,
        weekdays,
        days_of_month,
        months,
        years,
        location,
        cron,
    })
}

/// A 5-field cron expression (minute hour day-of-month month day-of-week),
/// as cron daemons read it; the error says what is wrong and how to write
/// one. Shared by `time_intervals` and digest reports.
pub(crate) fn parse_cron(text: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| {
            format!(
                "{text:?} is not a valid cron expression ({}): write 5 fields, minute hour day-of-month month day-of-week, e.g. \"0 2 * * SUN\"",
                cron_error(&e)
            )
        })
}

/// A time zone as Alertmanager's `location` names it: `UTC`, `Local` or an
/// IANA name.
pub(crate) fn parse_location(name: &str) -> Option<IntervalLocation> {
    match name {
        "UTC" => Some(IntervalLocation::Utc),
        "Local" => Some(IntervalLocation::Local),
        name => name.parse::<chrono_tz::Tz>().ok().map(IntervalLocation::Tz),
    }
}

fn cron_error(e: &croner::errors::CronError) -> String {
    let s = e.to_string();
    let s = s.trim_end_matches('.');
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// `HH:MM` (two-digit hour, `24:00` allowed) as minutes since midnight.
fn clock_minutes(cx: &mut Cx<'_>, ctx: &str, key: &str, v: &S<String>) -> Option<u32> {
    let s = v.value.as_str();
    let ok = s.len() == 5
        && s.as_bytes()[2] == b':'
        && s[..2].bytes().all(|b| b.is_ascii_digit())
        && s[3..].bytes().all(|b| b.is_ascii_digit());
    let parsed = ok
        .then(|| (s[..2].parse::<u32>().ok(), s[3..].parse::<u32>().ok()))
        .and_then(|(h, m)| Some((h?, m?)))
        .filter(|&(h, m)| (h < 24 && m < 60) || (h == 24 && m == 0));
    match parsed {
        Some((h, m)) => Some(h * 60 + m),
        None => {
            cx.err(
                v.referenced,
                format!(
                    "{ctx}times: {key} {s:?} is not a valid time: write HH:MM from 00:00 to 24:00"
                ),
            );
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("1d"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(canonical_header("content-type"), "Content-Type");
        assert_eq!(canonical_header("X-PRIORITY"), "X-Priority");
        assert_eq!(canonical_header("subject"), "Subject");
    }

    #[test]
    fn matchers_sort_like_alertmanager() {
        let mut ms = vec![
            Matcher::new(MatchOp::Regex, "b", "x").unwrap(),
            Matcher::equal("b", "x"),
            Matcher::equal("a", "z"),
        ];
        sort_matchers(&mut ms);
        let shown: Vec<String> = ms.iter().map(|m| m.to_string()).collect();
        assert_eq!(shown, [r#"a="z""#, r#"b="x""#, r#"b=~"x""#]);
    }
}
