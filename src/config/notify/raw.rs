//! The serde mirror of Alertmanager's `alertmanager.yml` (inline under
//! `notify:` or in the file `notify_file:` names): exactly the keys
//! Alertmanager accepts, values still as written and wrapped in
//! [`Spanned`](serde_saphyr::Spanned) where validation points at them.
//!
//! Nothing is defaulted or checked here; `validate` does that. Receiver
//! kinds that Alertmanager has and watchpost does not deliver to (sns,
//! wechat, ...) are declared as `IgnoredAny` so that validation names them
//! with the alternative instead of serde stopping at "unknown field".

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::config::raw::{RawHttpConfig, RawTlsConfig, S, SpannedMap};

/// Declares a struct with `deny_unknown_fields` and `Default`.
macro_rules! strict {
    ($(#[$m:meta])* pub(crate) struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct $name { $($(#[$fm])* pub $f: $t,)* }
    };
}

strict! {
    /// The whole Alertmanager config.
    pub(crate) struct RawNotify {
        pub global: Option<S<RawGlobal>>,
        pub route: Option<S<RawRoute>>,
        pub receivers: Option<Vec<S<RawReceiver>>>,
        pub inhibit_rules: Option<Vec<S<RawInhibitRule>>>,
        pub time_intervals: Option<Vec<S<RawTimeIntervalSet>>>,
        /// Deprecated spelling of `time_intervals`, same shape.
        pub mute_time_intervals: Option<Vec<S<RawTimeIntervalSet>>>,
        pub templates: Option<Vec<S<String>>>,
    }
}

strict! {
    /// `global:`.
    pub(crate) struct RawGlobal {
        pub resolve_timeout: Option<S<String>>,
        pub http_config: Option<S<RawHttpConfig>>,
        pub smtp_from: Option<S<String>>,
        pub smtp_hello: Option<String>,
        pub smtp_smarthost: Option<S<String>>,
        pub smtp_auth_username: Option<String>,
        pub smtp_auth_password: Option<S<String>>,
        pub smtp_auth_password_file: Option<S<String>>,
        pub smtp_auth_secret: Option<S<String>>,
        pub smtp_auth_secret_file: Option<S<String>>,
        pub smtp_auth_identity: Option<String>,
        pub smtp_require_tls: Option<bool>,
        pub smtp_tls_config: Option<S<RawTlsConfig>>,
        pub slack_api_url: Option<S<String>>,
        pub slack_api_url_file: Option<S<String>>,
        pub slack_app_token: Option<S<String>>,
        pub slack_app_token_file: Option<S<String>>,
        pub slack_app_url: Option<S<String>>,
        pub pagerduty_url: Option<S<String>>,
        pub opsgenie_api_url: Option<S<String>>,
        pub opsgenie_api_key: Option<S<String>>,
        pub opsgenie_api_key_file: Option<S<String>>,
        pub victorops_api_url: Option<S<String>>,
        pub victorops_api_key: Option<S<String>>,
        pub victorops_api_key_file: Option<S<String>>,
        pub telegram_api_url: Option<S<String>>,
        pub webex_api_url: Option<S<String>>,
        pub mattermost_webhook_url: Option<S<String>>,
        pub mattermost_webhook_url_file: Option<S<String>>,
        // Settings of receiver kinds watchpost does not deliver to: accepted
        // (they do nothing without such a receiver, which is refused).
        #[allow(dead_code)]
        pub wechat_api_url: Option<IgnoredAny>,
        #[allow(dead_code)]
        pub wechat_api_secret: Option<IgnoredAny>,
        #[allow(dead_code)]
        pub wechat_api_corp_id: Option<IgnoredAny>,
        #[allow(dead_code)]
        pub rocketchat_api_url: Option<IgnoredAny>,
        #[allow(dead_code)]
        pub rocketchat_token: Option<IgnoredAny>,
        #[allow(dead_code)]
        pub rocketchat_token_file: Option<IgnoredAny>,
        #[allow(dead_code)]
        pub rocketchat_token_id: Option<IgnoredAny>,
        #[allow(dead_code)]
        pub rocketchat_token_id_file: Option<IgnoredAny>,
        #[allow(dead_code)]
        pub jira_api_url: Option<IgnoredAny>,
    }
}

strict! {
    /// One node of the routing tree.
    pub(crate) struct RawRoute {
        pub receiver: Option<S<String>>,
        pub group_by: Option<Vec<S<String>>>,
        /// Deprecated equality matchers.
        #[serde(rename = "match")]
        pub match_eq: Option<SpannedMap<Option<S<String>>>>,
        /// Deprecated regex matchers.
        pub match_re: Option<SpannedMap<Option<S<String>>>>,
        pub matchers: Option<Vec<S<String>>>,
        #[serde(rename = "continue")]
        pub continue_matching: Option<S<bool>>,
        pub routes: Option<Vec<S<RawRoute>>>,
        pub group_wait: Option<S<String>>,
        pub group_interval: Option<S<String>>,
        pub repeat_interval: Option<S<String>>,
        pub mute_time_intervals: Option<Vec<S<String>>>,
        pub active_time_intervals: Option<Vec<S<String>>>,
        /// watchpost extension.
        pub send_resolved_when_muted: Option<bool>,
    }
}

strict! {
    /// One `inhibit_rules` entry.
    pub(crate) struct RawInhibitRule {
        pub name: Option<String>,
        pub source_match: Option<SpannedMap<Option<S<String>>>>,
        pub source_match_re: Option<SpannedMap<Option<S<String>>>>,
        pub source_matchers: Option<Vec<S<String>>>,
        pub target_match: Option<SpannedMap<Option<S<String>>>>,
        pub target_match_re: Option<SpannedMap<Option<S<String>>>>,
        pub target_matchers: Option<Vec<S<String>>>,
        pub equal: Option<Vec<S<String>>>,
    }
}

strict! {
    /// One named entry of `time_intervals` (or `mute_time_intervals`).
    pub(crate) struct RawTimeIntervalSet {
        pub name: Option<S<String>>,
        pub time_intervals: Option<Vec<S<RawTimeInterval>>>,
    }
}

strict! {
    /// One interval: Alertmanager's fields, or watchpost's `cron` + `duration`.
    pub(crate) struct RawTimeInterval {
        pub times: Option<Vec<S<RawTimeRange>>>,
        pub weekdays: Option<Vec<S<String>>>,
        pub days_of_month: Option<Vec<S<String>>>,
        pub months: Option<Vec<S<String>>>,
        pub years: Option<Vec<S<String>>>,
        pub location: Option<S<String>>,
        /// watchpost extension: a cron expression (5 fields).
        pub cron: Option<S<String>>,
        /// watchpost extension: how long each cron window lasts.
        pub duration: Option<S<String>>,
    }
}

strict! {
    /// `times:` entry.
    pub(crate) struct RawTimeRange {
        pub start_time: Option<S<String>>,
        pub end_time: Option<S<String>>,
    }
}

strict! {
    /// One `receivers` entry.
    pub(crate) struct RawReceiver {
        pub name: Option<S<String>>,
        pub email_configs: Option<Vec<S<RawEmail>>>,
        pub telegram_configs: Option<Vec<S<RawTelegram>>>,
        pub slack_configs: Option<Vec<S<RawSlack>>>,
        pub webhook_configs: Option<Vec<S<RawWebhook>>>,
        pub pagerduty_configs: Option<Vec<S<RawPagerduty>>>,
        pub opsgenie_configs: Option<Vec<S<RawOpsgenie>>>,
        pub victorops_configs: Option<Vec<S<RawVictorops>>>,
        pub pushover_configs: Option<Vec<S<RawPushover>>>,
        pub discord_configs: Option<Vec<S<RawDiscord>>>,
        pub msteams_configs: Option<Vec<S<RawMsteams>>>,
        pub msteamsv2_configs: Option<Vec<S<RawMsteamsV2>>>,
        pub webex_configs: Option<Vec<S<RawWebex>>>,
        pub mattermost_configs: Option<Vec<S<RawMattermost>>>,
        /// watchpost extension: write notifications to the log (stdout).
        pub log_configs: Option<Vec<S<RawLog>>>,
        // Alertmanager receiver kinds watchpost refuses, with a message.
        pub sns_configs: Option<S<IgnoredAny>>,
        pub wechat_configs: Option<S<IgnoredAny>>,
        pub rocketchat_configs: Option<S<IgnoredAny>>,
        pub jira_configs: Option<S<IgnoredAny>>,
        pub incidentio_configs: Option<S<IgnoredAny>>,
    }
}

impl RawReceiver {
    /// Refused receiver kinds present, with their positions.
    pub(crate) fn refused_kinds(&self) -> Vec<(&'static str, serde_saphyr::Location)> {
        [
            ("sns_configs", &self.sns_configs),
            ("wechat_configs", &self.wechat_configs),
            ("rocketchat_configs", &self.rocketchat_configs),
            ("jira_configs", &self.jira_configs),
            ("incidentio_configs", &self.incidentio_configs),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v.referenced)))
        .collect()
    }
}

strict! {
    pub(crate) struct RawEmail {
        pub send_resolved: Option<bool>,
        pub to: Option<S<String>>,
        pub from: Option<String>,
        pub hello: Option<String>,
        pub smarthost: Option<S<String>>,
        pub auth_username: Option<String>,
        pub auth_password: Option<S<String>>,
        pub auth_password_file: Option<S<String>>,
        pub auth_secret: Option<S<String>>,
        pub auth_secret_file: Option<S<String>>,
        pub auth_identity: Option<String>,
        pub headers: Option<SpannedMap<Option<String>>>,
        pub html: Option<String>,
        pub text: Option<String>,
        pub require_tls: Option<bool>,
        pub tls_config: Option<S<RawTlsConfig>>,
    }
}

strict! {
    pub(crate) struct RawTelegram {
        pub send_resolved: Option<bool>,
        pub http_config: Option<S<RawHttpConfig>>,
        pub api_url: Option<S<String>>,
        pub bot_token: Option<S<String>>,
        pub bot_token_file: Option<S<String>>,
        pub chat_id: Option<S<i64>>,
        pub chat_id_file: Option<S<String>>,
        pub message_thread_id: Option<i64>,
        pub message: Option<String>,
        pub disable_notifications: Option<bool>,
        pub parse_mode: Option<S<String>>,
    }
}

strict! {
    pub(crate) struct RawSlack {
        pub send_resolved: Option<bool>,
        pub http_config: Option<S<RawHttpConfig>>,
        pub api_url: Option<S<String>>,
        pub api_url_file: Option<S<String>>,
        pub app_token: Option<S<String>>,
        pub app_token_file: Option<S<String>>,
        pub app_url: Option<S<String>>,
        pub channel: Option<String>,
        pub username: Option<String>,
        pub color: Option<String>,
        pub title: Option<String>,
        pub title_link: Option<String>,
        pub pretext: Option<String>,
        pub text: Option<String>,
        pub fields: Option<Vec<S<RawSlackField>>>,
        pub short_fields: Option<bool>,
        pub footer: Option<String>,
        pub fallback: Option<String>,
        pub callback_id: Option<String>,
        pub icon_emoji: Option<String>,
        pub icon_url: Option<String>,
        pub image_url: Option<String>,
        pub thumb_url: Option<String>,
        pub link_names: Option<bool>,
        pub mrkdwn_in: Option<Vec<String>>,
        pub actions: Option<Vec<S<RawSlackAction>>>,
    }
}

strict! {
    pub(crate) struct RawSlackField {
        pub title: Option<String>,
        pub value: Option<String>,
        pub short: Option<bool>,
    }
}

strict! {
    pub(crate) struct RawSlackAction {
        #[serde(rename = "type")]
        pub kind: Option<String>,
        pub text: Option<String>,
        pub url: Option<String>,
        pub style: Option<String>,
        pub name: Option<String>,
        pub value: Option<String>,
        pub confirm: Option<S<RawSlackConfirm>>,
    }
}

strict! {
    pub(crate) struct RawSlackConfirm {
        pub text: Option<String>,
        pub title: Option<String>,
        pub ok_text: Option<String>,
        pub dismiss_text: Option<String>,
    }
}

strict! {
    pub(crate) struct RawWebhook {
        pub send_resolved: Option<bool>,
        pub http_config: Option<S<RawHttpConfig>>,
        pub url: Option<S<String>>,
        pub url_file: Option<S<String>>,
        pub max_alerts: Option<u64>,
        pub timeout: Option<S<String>>,
    }
}

strict! {
    pub(crate) struct RawPagerduty {
        pub send_resolved: Option<bool>,
        pub http_config: Option<S<RawHttpConfig>>,
        pub service_key: Option<S<String>>,
        pub service_key_file: Option<S<String>>,
        pub routing_key: Option<S<String>>,
        pub routing_key_file: Option<S<String>>,
        pub url: Option<S<String>>,
        pub client: Option<String>,
        pub client_url: Option<String>,
        pub description: Option<String>,
        pub details: Option<BTreeMap<String, String>>,
        pub images: Option<Vec<RawPagerdutyImage>>,
        pub links: Option<Vec<RawPagerdutyLink>>,
        pub source: Option<String>,
        pub severity: Option<String>,
        pub class: Option<String>,
        pub component: Option<String>,
        pub group: Option<String>,
    }
}

strict! {
    pub(crate) struct RawPagerdutyImage {
        pub src: Option<String>,
        pub alt: Option<String>,
        pub href: Option<String>,
    }
}

strict! {
    pub(crate) struct RawPagerdutyLink {
        pub href: Option<String>,
        pub text: Option<String>,
    }
}

strict! {
    pub(crate) struct RawOpsgenie {
        pub send_resolved: Option<bool>,
        pub http_config: Option<S<RawHttpConfig>>,
        pub api_key: Option<S<String>>,
        pub api_key_file: Option<S<String>>,
        pub api_url: Option<S<String>>,
        pub message: Option<String>,
        pub description: Option<String>,
        pub source: Option<String>,
        pub details: Option<BTreeMap<String, String>>,
        pub entity: Option<String>,
        pub responders: Option<Vec<S<RawOpsgenieResponder>>>,
        pub actions: Option<String>,
        pub tags: Option<String>,
        pub note: Option<String>,
        pub priority: Option<String>,
        pub update_alerts: Option<bool>,
    }
}

strict! {
    pub(crate) struct RawOpsgenieResponder {
        pub id: Option<String>,
        pub name: Option<String>,
        pub username: Option<String>,
        #[serde(rename = "type")]
        pub kind: Option<S<String>>,
    }
}

strict! {
    pub(crate) struct RawVictorops {
        pub send_resolved: Option<bool>,
        pub http_config: Option<S<RawHttpConfig>>,
        pub api_key: Option<S<String>>,
        pub api_key_file: Option<S<String>>,
        pub api_url: Option<S<String>>,
        pub routing_key: Option<S<String>>,
        pub message_type: Option<String>,
        pub state_message: Option<String>,
        pub entity_display_name: Option<String>,
        pub monitoring_tool: Option<String>,
        pub custom_fields: Option<SpannedMap<Option<String>>>,
    }
}

strict! {
    pub(crate) struct RawPushover {
        pub send_resolved: Option<bool>,
        pub http_config: Option<S<RawHttpConfig>>,
        pub user_key: Option<S<String>>,
        pub user_key_file: Option<S<String>>,
        pub token: Option<S<String>>,
        pub token_file: Option<S<String>>,
        pub title: Option<String>,
        pub message: Option<String>,
        pub url: Option<String>,
        pub url_title: Option<String>,
        pub device: Option<String>,
        pub sound: Option<String>,
        pub priority: Option<String>,
        pub retry: Option<S<String>>,
        pub expire: Option<S<String>>,
        pub ttl: Option<S<String>>,
        pub html: Option<bool>,
        pub monospace: Option<S<bool>>,
    }
}

strict! {
    pub(crate) struct RawDiscord {
        pub send_resolved: Option<bool>,
        pub http_config: Option<S<RawHttpConfig>>,
        pub webhook_url: Option<S<String>>,
        pub webhook_url_file: Option<S<String>>,
        pub content: Option<String>,
        pub title: Option<String>,
        pub message: Option<String>,
        pub username: Option<String>,
        pub avatar_url: Option<String>,
    }
}

strict! {
    pub(crate) struct RawMsteams {
        pub send_resolved: Option<bool>,
        pub http_config: Option<S<RawHttpConfig>>,
        pub webhook_url: Option<S<String>>,
        pub webhook_url_file: Option<S<String>>,
        pub title: Option<String>,
        pub summary: Option<String>,
        pub text: Option<String>,
    }
}

strict! {
    pub(crate) struct RawMsteamsV2 {
        pub send_resolved: Option<bool>,
        pub http_config: Option<S<RawHttpConfig>>,
        pub webhook_url: Option<S<String>>,
        pub webhook_url_file: Option<S<String>>,
        pub title: Option<String>,
        pub text: Option<String>,
    }
}

strict! {
    pub(crate) struct RawWebex {
        pub send_resolved: Option<bool>,
        pub http_config: Option<S<RawHttpConfig>>,
        pub api_url: Option<S<String>>,
        pub message: Option<String>,
        pub room_id: Option<S<String>>,
    }
}

strict! {
    pub(crate) struct RawMattermost {
        pub send_resolved: Option<bool>,
        pub http_config: Option<S<RawHttpConfig>>,
        pub webhook_url: Option<S<String>>,
        pub webhook_url_file: Option<S<String>>,
        pub channel: Option<String>,
        pub username: Option<String>,
        pub text: Option<String>,
        pub fallback: Option<String>,
        pub color: Option<String>,
        pub pretext: Option<String>,
        pub author_name: Option<String>,
        pub author_link: Option<String>,
        pub author_icon: Option<String>,
        pub title: Option<String>,
        pub title_link: Option<String>,
        pub fields: Option<Vec<S<RawSlackField>>>,
        pub thumb_url: Option<String>,
        pub footer: Option<String>,
        pub footer_icon: Option<String>,
        pub image_url: Option<String>,
        pub icon_url: Option<String>,
        pub icon_emoji: Option<String>,
        pub attachments: Option<Vec<S<RawMattermostAttachment>>>,
        #[serde(rename = "type")]
        pub kind: Option<String>,
        pub props: Option<RawMattermostProps>,
        pub priority: Option<RawMattermostPriority>,
    }
}

strict! {
    pub(crate) struct RawMattermostAttachment {
        pub fallback: Option<String>,
        pub color: Option<String>,
        pub pretext: Option<String>,
        pub text: Option<String>,
        pub author_name: Option<String>,
        pub author_link: Option<String>,
        pub author_icon: Option<String>,
        pub title: Option<String>,
        pub title_link: Option<String>,
        pub fields: Option<Vec<S<RawSlackField>>>,
        pub thumb_url: Option<String>,
        pub footer: Option<String>,
        pub footer_icon: Option<String>,
        pub image_url: Option<String>,
    }
}

strict! {
    pub(crate) struct RawMattermostProps {
        pub card: Option<String>,
    }
}

strict! {
    pub(crate) struct RawMattermostPriority {
        pub priority: Option<String>,
        pub requested_ack: Option<bool>,
        pub persistent_notifications: Option<bool>,
    }
}

strict! {
    /// watchpost's log receiver: one line per notification on stdout.
    pub(crate) struct RawLog {
        pub send_resolved: Option<bool>,
        pub message: Option<String>,
    }
}
