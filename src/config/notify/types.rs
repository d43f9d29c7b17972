//! The validated Alertmanager configuration that `notify` (routing,
//! grouping, inhibition, time intervals) and `channels` (delivery) consume.
//!
//! Every value here has passed Alertmanager's checks: defaults are filled
//! in (including what receivers inherit from `global`), matchers and
//! regexes are compiled, durations parsed, relative paths resolved against
//! the directory of the file they were written in, secrets wrapped. Message
//! templates stay as written (Go template source) for the template engine
//! to render at send time; where a key is not set the field holds
//! Alertmanager's default template (`{{ template "slack.default.title" . }}`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Diagnostic, HttpClientConfig, SecretSource, TlsConfig};
use crate::model::Matcher;

/// An `alertmanager.yml`, inline under `notify:` or loaded from `notify_file:`.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// The file the section was read from, as errors name it: `notify_file`'s
    /// path, or the main config file's name for an inline section.
    pub file: String,
    /// `notify_file`'s resolved path; `None` for an inline section.
    pub path: Option<PathBuf>,
    pub global: NotifyGlobal,
    /// The root of the routing tree (see `notify::route` for the tree with
    /// inheritance resolved).
    pub route: RouteConfig,
    /// Receivers by name, in file order; names are unique.
    pub receivers: Vec<Receiver>,
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// `time_intervals` followed by the deprecated `mute_time_intervals`;
    /// names are unique across both.
    pub time_intervals: Vec<NamedTimeInterval>,
    /// Template file globs, resolved against the config's directory. A glob
    /// that matches nothing is allowed, as in Alertmanager.
    pub templates: Vec<String>,
    /// Problems that do not stop the load, such as a `*_file` secret that
    /// does not exist yet (it is read when sending, as Alertmanager does).
    pub warnings: Vec<Diagnostic>,
    /// The section as written, as YAML with every secret replaced by
    /// `<secret>` (for `/api/v2/status`).
    pub redacted_yaml: String,
    /// The same as a value, for the main config's redacted YAML.
    pub(crate) redacted: serde_json::Value,
}

impl NotifyConfig {
    /// The receiver named `name`.
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }

    /// The time interval named `name`.
    pub fn time_interval(&self, name: &str) -> Option<&NamedTimeInterval> {
        self.time_intervals.iter().find(|t| t.name == name)
    }
}

/// `global:` after defaults. Receivers have already taken what they inherit
/// from here; it is kept for display and for `resolve_timeout`.
#[derive(Debug, Clone)]
pub struct NotifyGlobal {
    /// How long an alert without an end time stays firing after its last
    /// update (default 5m).
    pub resolve_timeout: Duration,
    /// HTTP client settings for receivers that set no `http_config`.
    pub http_config: HttpClientConfig,
    pub smtp_from: Option<String>,
    /// Default `localhost`.
    pub smtp_hello: String,
    pub smtp_smarthost: Option<HostPort>,
    pub smtp_auth_username: Option<String>,
    pub smtp_auth_password: Option<SecretSource>,
    pub smtp_auth_secret: Option<SecretSource>,
    pub smtp_auth_identity: Option<String>,
    /// Default true.
    pub smtp_require_tls: bool,
    pub smtp_tls_config: TlsConfig,
    pub slack_api_url: Option<SecretSource>,
    pub slack_app_token: Option<SecretSource>,
    /// Default `https://slack.com/api/chat.postMessage`.
    pub slack_app_url: String,
    /// Default `https://events.pagerduty.com/v2/enqueue`.
    pub pagerduty_url: String,
    /// Default `https://api.opsgenie.com/`.
    pub opsgenie_api_url: String,
    pub opsgenie_api_key: Option<SecretSource>,
    /// Default `https://alert.victorops.com/integrations/generic/20131114/alert/`.
    pub victorops_api_url: String,
    pub victorops_api_key: Option<SecretSource>,
    /// Default `https://api.telegram.org`.
    pub telegram_api_url: String,
    /// Default `https://webexapis.com/v1/messages`.
    pub webex_api_url: String,
    pub mattermost_webhook_url: Option<SecretSource>,
}

/// A `host:port` address (SMTP smarthost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `group_by` of one route as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// `['...']`: every label of the alert, i.e. no aggregation.
    All,
    /// These labels, in the order written.
    Labels(Vec<String>),
}

/// One node of the routing tree as written: unset options are `None` and
/// inherit from the parent (`notify::route` resolves them).
#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub receiver: Option<String>,
    /// `None` also for an empty list, which Alertmanager treats as "inherit".
    pub group_by: Option<GroupBy>,
    /// `match`, `match_re` and `matchers` together, sorted the way
    /// Alertmanager sorts them (name, value, operator), which is also the
    /// order of the route's key.
    pub matchers: Vec<Matcher>,
    /// `continue`: after this route matched, keep trying its siblings.
    pub continue_matching: bool,
    pub group_wait: Option<Duration>,
    pub group_interval: Option<Duration>,
    pub repeat_interval: Option<Duration>,
    /// Names of time intervals during which this route sends nothing. Not
    /// inherited by child routes (Alertmanager's rule).
    pub mute_time_intervals: Vec<String>,
    /// Names of time intervals outside which this route sends nothing. Not
    /// inherited by child routes (Alertmanager's rule).
    pub active_time_intervals: Vec<String>,
    /// watchpost extension: send the resolved notification of an alert
    /// that resolved while it was silenced, inhibited or muted. Inherited.
    pub send_resolved_when_muted: Option<bool>,
    pub routes: Vec<RouteConfig>,
}

/// One `inhibit_rules` entry, with the old `*_match` / `*_match_re` forms
/// folded into the matchers.
#[derive(Debug, Clone)]
pub struct InhibitRuleConfig {
    /// Optional name (Alertmanager 0.29+), shown in reasons.
    pub name: Option<String>,
    pub source_matchers: Vec<Matcher>,
    pub target_matchers: Vec<Matcher>,
    /// Labels whose values must be equal on source and target (a label
    /// missing on both counts as equal).
    pub equal: Vec<String>,
}

/// A named list of time intervals; it contains a time when any of its
/// intervals does (see `notify::timeinterval`).
#[derive(Debug, Clone)]
pub struct NamedTimeInterval {
    pub name: String,
    pub intervals: Vec<TimeInterval>,
}

/// One interval. Each constraint that is `Some` must hold (a time is in
/// the interval when it is in one of the ranges of every given field);
/// `None` is "any". With `cron`, the other fields are unset.
#[derive(Debug, Clone)]
pub struct TimeInterval {
    /// Minutes of the day, `[start, end)`.
    pub times: Option<Vec<TimeRange>>,
    /// Inclusive ranges of weekdays, 0 = Sunday.
    pub weekdays: Option<Vec<(u32, u32)>>,
    /// Inclusive ranges of days of the month; negative counts from the end
    /// (-1 = last day).
    pub days_of_month: Option<Vec<(i32, i32)>>,
    /// Inclusive ranges of months, 1 = January.
    pub months: Option<Vec<(u32, u32)>>,
    /// Inclusive ranges of years.
    pub years: Option<Vec<(i32, i32)>>,
    /// The time zone the fields are read in (default UTC).
    pub location: IntervalLocation,
    /// watchpost extension: windows that open at each fire time of a cron
    /// expression and last `duration`.
    pub cron: Option<CronWindow>,
}

/// `start_time`..`end_time` as minutes since midnight; `end` is exclusive
/// and may be 1440 (`24:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start_minute: u32,
    pub end_minute: u32,
}

/// The time zone of a time interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalLocation {
    Utc,
    /// `Local`: the machine's zone.
    Local,
    Tz(chrono_tz::Tz),
}

/// A maintenance window given as `cron` + `duration`.
#[derive(Debug, Clone)]
pub struct CronWindow {
    /// The expression as written.
    pub expression: String,
    pub schedule: croner::Cron,
    /// Greater than zero.
    pub duration: Duration,
}

/// One receiver: a name and the integrations a notification is sent to.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub name: String,
    /// In Alertmanager's order of kinds, then file order within a kind.
    /// A receiver without integrations is valid and sends nothing.
    pub integrations: Vec<Integration>,
}

/// One integration of a receiver, displayed as `telegram[0]`.
#[derive(Debug, Clone)]
pub struct Integration {
    /// Position among the receiver's integrations of the same kind.
    pub index: usize,
    /// Whether resolved notifications are sent (default depends on the kind).
    pub send_resolved: bool,
    pub config: IntegrationConfig,
}

impl Integration {
    /// `telegram[0]`: the name logs, metrics and the API use.
    pub fn display_name(&self) -> String {
        format!("{}[{}]", self.config.kind(), self.index)
    }
}

/// The delivery settings of one integration, by kind.
#[derive(Debug, Clone)]
pub enum IntegrationConfig {
    Webhook(WebhookConfig),
    Email(EmailConfig),
    Pagerduty(PagerdutyConfig),
    Opsgenie(OpsgenieConfig),
    Slack(SlackConfig),
    Victorops(VictoropsConfig),
    Pushover(PushoverConfig),
    Telegram(TelegramConfig),
    Discord(DiscordConfig),
    Webex(WebexConfig),
    Msteams(MsteamsConfig),
    MsteamsV2(MsteamsV2Config),
    Mattermost(MattermostConfig),
    Log(LogConfig),
}

impl IntegrationConfig {
    /// The kind as Alertmanager names integrations (`email`, `telegram`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            IntegrationConfig::Webhook(_) => "webhook",
            IntegrationConfig::Email(_) => "email",
            IntegrationConfig::Pagerduty(_) => "pagerduty",
            IntegrationConfig::Opsgenie(_) => "opsgenie",
            IntegrationConfig::Slack(_) => "slack",
            IntegrationConfig::Victorops(_) => "victorops",
            IntegrationConfig::Pushover(_) => "pushover",
            IntegrationConfig::Telegram(_) => "telegram",
            IntegrationConfig::Discord(_) => "discord",
            IntegrationConfig::Webex(_) => "webex",
            IntegrationConfig::Msteams(_) => "msteams",
            IntegrationConfig::MsteamsV2(_) => "msteamsv2",
            IntegrationConfig::Mattermost(_) => "mattermost",
            IntegrationConfig::Log(_) => "log",
        }
    }
}

/// `email_configs` entry, with globals applied.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// Recipients (template; comma-separated addresses after rendering).
    pub to: String,
    /// Sender (template), from `global.smtp_from` when unset.
    pub from: String,
    /// Name sent in EHLO/HELO (default `global.smtp_hello`, `localhost`).
    pub hello: String,
    /// SMTP server, from `global.smtp_smarthost` when unset. Port 465 means
    /// implicit TLS, as in Alertmanager.
    pub smarthost: HostPort,
    pub auth_username: Option<String>,
    pub auth_password: Option<SecretSource>,
    /// CRAM-MD5 secret.
    pub auth_secret: Option<SecretSource>,
    pub auth_identity: Option<String>,
    /// Header templates with canonical names; `Subject`, `To` and `From`
    /// are always present (Alertmanager's defaults).
    pub headers: BTreeMap<String, String>,
    /// HTML body template (default `{{ template "email.default.html" . }}`).
    pub html: String,
    /// Plain text body template; empty means no text part.
    pub text: String,
    /// STARTTLS required (default `global.smtp_require_tls`, true).
    pub require_tls: bool,
    pub tls_config: TlsConfig,
}

/// `telegram_configs` entry.
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    pub http_config: HttpClientConfig,
    /// Bot API base URL (default `global.telegram_api_url`).
    pub api_url: String,
    pub bot_token: SecretSource,
    pub chat: TelegramChat,
    /// Forum topic to post in; 0 = none.
    pub message_thread_id: i64,
    /// Message template (default `{{ template "telegram.default.message" . }}`).
    pub message: String,
    pub disable_notifications: bool,
    /// `HTML` (default), `Markdown`, `MarkdownV2` or empty (plain text).
    pub parse_mode: String,
}

/// Where a Telegram chat id comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TelegramChat {
    Id(i64),
    /// `chat_id_file`: read when sending.
    File(PathBuf),
}

/// Where Slack messages go.
#[derive(Debug, Clone, PartialEq)]
pub enum SlackTarget {
    /// An incoming webhook URL (`api_url` / `api_url_file`).
    Webhook(SecretSource),
    /// `chat.postMessage` at `url` with a bot token (`app_token`).
    App { token: SecretSource, url: String },
}

/// `slack_configs` entry.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    pub http_config: HttpClientConfig,
    pub target: SlackTarget,
    pub channel: String,
    pub username: String,
    pub color: String,
    pub title: String,
    pub title_link: String,
    pub pretext: String,
    pub text: String,
    pub fields: Vec<SlackField>,
    pub short_fields: bool,
    pub footer: String,
    pub fallback: String,
    pub callback_id: String,
    pub icon_emoji: String,
    pub icon_url: String,
    pub image_url: String,
    pub thumb_url: String,
    pub link_names: bool,
    pub mrkdwn_in: Vec<String>,
    pub actions: Vec<SlackAction>,
}

/// A Slack (or Mattermost) attachment field.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackField {
    pub title: String,
    pub value: String,
    /// None: `short_fields` decides.
    pub short: Option<bool>,
}

/// A Slack attachment action (button).
#[derive(Debug, Clone, PartialEq)]
pub struct SlackAction {
    pub kind: String,
    pub text: String,
    /// Set for link buttons; then `name`/`value`/`confirm` are empty.
    pub url: String,
    pub style: String,
    pub name: String,
    pub value: String,
    pub confirm: Option<SlackConfirm>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SlackConfirm {
    pub text: String,
    pub title: String,
    pub ok_text: String,
    pub dismiss_text: String,
}

/// `webhook_configs` entry.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub http_config: HttpClientConfig,
    pub url: SecretSource,
    /// At most this many alerts per message; 0 = all.
    pub max_alerts: u64,
    /// Per-request timeout; zero = none.
    pub timeout: Duration,
}

/// `pagerduty_configs` entry (Events API v2 with `routing_key`, v1 with
/// `service_key`).
#[derive(Debug, Clone)]
pub struct PagerdutyConfig {
    pub http_config: HttpClientConfig,
    pub routing_key: Option<SecretSource>,
    pub service_key: Option<SecretSource>,
    pub url: String,
    pub client: String,
    pub client_url: String,
    pub description: String,
    /// With Alertmanager's `firing`, `resolved`, `num_firing`,
    /// `num_resolved` defaults added where not set.
    pub details: BTreeMap<String, String>,
    pub images: Vec<PagerdutyImage>,
    pub links: Vec<PagerdutyLink>,
    /// Defaults to `client`.
    pub source: String,
    pub severity: String,
    pub class: String,
    pub component: String,
    pub group: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PagerdutyImage {
    pub src: String,
    pub alt: String,
    pub href: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PagerdutyLink {
    pub href: String,
    pub text: String,
}

/// `opsgenie_configs` entry.
#[derive(Debug, Clone)]
pub struct OpsgenieConfig {
    pub http_config: HttpClientConfig,
    pub api_key: SecretSource,
    /// Always ends with `/`.
    pub api_url: String,
    pub message: String,
    pub description: String,
    pub source: String,
    pub details: BTreeMap<String, String>,
    pub entity: String,
    pub responders: Vec<OpsgenieResponder>,
    pub actions: String,
    pub tags: String,
    pub note: String,
    pub priority: String,
    pub update_alerts: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpsgenieResponder {
    pub id: String,
    pub name: String,
    pub username: String,
    /// `team`, `teams`, `user`, `escalation`, `schedule`, or a template.
    pub kind: String,
}

/// `victorops_configs` entry.
#[derive(Debug, Clone)]
pub struct VictoropsConfig {
    pub http_config: HttpClientConfig,
    pub api_key: SecretSource,
    /// Always ends with `/`.
    pub api_url: String,
    pub routing_key: String,
    pub message_type: String,
    pub state_message: String,
    pub entity_display_name: String,
    pub monitoring_tool: String,
    pub custom_fields: BTreeMap<String, String>,
}

/// `pushover_configs` entry.
#[derive(Debug, Clone)]
pub struct PushoverConfig {
    pub http_config: HttpClientConfig,
    pub user_key: SecretSource,
    pub token: SecretSource,
    pub title: String,
    pub message: String,
    pub url: String,
    pub url_title: String,
    pub device: String,
    pub sound: String,
    pub priority: String,
    pub retry: Duration,
    pub expire: Duration,
    /// Zero = Pushover's default.
    pub ttl: Duration,
    pub html: bool,
    pub monospace: bool,
}

/// `discord_configs` entry.
#[derive(Debug, Clone)]
pub struct DiscordConfig {
    pub http_config: HttpClientConfig,
    pub webhook_url: SecretSource,
    pub content: String,
    pub title: String,
    pub message: String,
    pub username: String,
    pub avatar_url: String,
}

/// `msteams_configs` entry (Office 365 connector cards).
#[derive(Debug, Clone)]
pub struct MsteamsConfig {
    pub http_config: HttpClientConfig,
    pub webhook_url: SecretSource,
    pub title: String,
    pub summary: String,
    pub text: String,
}

/// `msteamsv2_configs` entry (Workflows / adaptive cards).
#[derive(Debug, Clone)]
pub struct MsteamsV2Config {
    pub http_config: HttpClientConfig,
    pub webhook_url: SecretSource,
    pub title: String,
    pub text: String,
}

/// `webex_configs` entry; the bot token is `http_config.authorization`.
#[derive(Debug, Clone)]
pub struct WebexConfig {
    pub http_config: HttpClientConfig,
    pub api_url: String,
    pub message: String,
    pub room_id: String,
}

/// `mattermost_configs` entry (incoming webhook), with the keys of
/// Alertmanager's Mattermost receiver (added upstream after 0.25).
#[derive(Debug, Clone)]
pub struct MattermostConfig {
    pub http_config: HttpClientConfig,
    pub webhook_url: SecretSource,
    pub channel: String,
    pub username: String,
    pub text: String,
    pub fallback: String,
    pub color: String,
    pub pretext: String,
    pub author_name: String,
    pub author_link: String,
    pub author_icon: String,
    pub title: String,
    pub title_link: String,
    pub fields: Vec<SlackField>,
    pub thumb_url: String,
    pub footer: String,
    pub footer_icon: String,
    pub image_url: String,
    pub icon_url: String,
    pub icon_emoji: String,
    /// Extra attachments after the one the keys above describe.
    pub attachments: Vec<MattermostAttachment>,
    /// Post type; empty = a normal post.
    pub kind: String,
    /// `props.card`: Markdown shown in the post's side panel.
    pub card: String,
    pub priority: Option<MattermostPriority>,
}

/// One Mattermost message attachment (Slack-compatible).
#[derive(Debug, Clone, PartialEq)]
pub struct MattermostAttachment {
    pub fallback: String,
    pub color: String,
    pub pretext: String,
    pub text: String,
    pub author_name: String,
    pub author_link: String,
    pub author_icon: String,
    pub title: String,
    pub title_link: String,
    pub fields: Vec<SlackField>,
    pub thumb_url: String,
    pub footer: String,
    pub footer_icon: String,
    pub image_url: String,
}

/// Mattermost message priority (`important`, `urgent`).
#[derive(Debug, Clone, PartialEq)]
pub struct MattermostPriority {
    pub priority: String,
    pub requested_ack: bool,
    pub persistent_notifications: bool,
}

/// watchpost's `log_configs` entry: the notification is written to
/// watchpost's log (stdout). The embedded default config's receiver.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Message template; empty means watchpost's built-in one-line summary.
    pub message: String,
}
