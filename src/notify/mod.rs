//! The notification pipeline's decisions and its seam to delivery.
//!
//! Alerts from the rules (or the API) travel, in this fixed order:
//! route ([`route`]) -> aggregation groups -> inhibit ([`inhibit`]) ->
//! silences ([`silence`]) and mute/active time intervals
//! ([`timeinterval`]) -> dedup against the notification log -> send with
//! retry -> record. This module holds the pure decision logic of each stage
//! (everything takes `now` as an argument) and the [`Notifier`] trait that
//! each channel in `channels` implements, plus the data a notification
//! carries ([`NotificationData`], Alertmanager's template data model).
//!
//! It must not talk to the network itself (channels do), read the clock
//! (schedulers pass `now`), or retry inside a channel: a channel returns a
//! classified [`SendError`] and retry lives in one place, here.

pub mod inhibit;
pub mod route;
pub mod silence;
pub mod timeinterval;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::model::{Alert, Labels, Timestamp, fingerprint_hex};

pub use inhibit::{Inhibition, Inhibitor};
pub use route::{Route, RouteMatch, parse_label_set, routes_for};
pub use silence::{Silence, SilenceError, SilenceMatcher, SilenceState};
pub use timeinterval::{Muted, TimeIntervals};

/// One integration (e.g. `telegram[0]` of a receiver) that can deliver a
/// notification. Implemented by `src/channels/*`; the pipeline holds them as
/// `Arc<dyn Notifier>`.
pub trait Notifier: Send + Sync {
    /// The integration's name as logs and metrics show it: `telegram[0]`.
    fn integration(&self) -> &str;

    /// Whether resolved notifications are delivered (`send_resolved`).
    fn send_resolved(&self) -> bool;

    /// Delivers one notification once. Must not retry: the pipeline retries
    /// a [`SendError::Retryable`] with backoff and gives up on a
    /// [`SendError::Permanent`]. Secrets must not appear in the error.
    fn send<'a>(
        &'a self,
        msg: &'a NotificationData,
    ) -> Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;
}

/// Why a delivery failed, classified for the retry loop. `reason` is a
/// short fixed word (it becomes the `reason` label of
/// `watchpost_notifications_failed_total`); `message` is the detail for
/// logs and `watchpost notify test`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again: a timeout, a refused connection, HTTP 429 or 5xx.
    #[error("{reason}: {message}")]
    Retryable {
        reason: &'static str,
        message: String,
        /// How long the peer asked us to wait (HTTP `Retry-After`,
        /// Telegram's `retry_after`).
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help: bad credentials, a rejected request, an
    /// unreadable `*_file`.
    #[error("{reason}: {message}")]
    Permanent {
        reason: &'static str,
        message: String,
    },
}

impl SendError {
    pub fn retryable(reason: &'static str, message: impl Into<String>) -> Self {
        SendError::Retryable {
            reason,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn permanent(reason: &'static str, message: impl Into<String>) -> Self {
        SendError::Permanent {
            reason,
            message: message.into(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable { .. })
    }

    /// The bounded reason word.
    pub fn reason(&self) -> &'static str {
        match self {
            SendError::Retryable { reason, .. } | SendError::Permanent { reason, .. } => reason,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Retryable { retry_after, .. } => *retry_after,
            SendError::Permanent { .. } => None,
        }
    }
}

/// Longest response excerpt kept in a [`SendError`] message.
pub const MAX_BODY_EXCERPT: usize = 512;

/// The shared rule for HTTP answers: 2xx is delivered; 429 and 5xx are
/// retryable (with the peer's `retry_after`, if any); anything else (other
/// 4xx, and 1xx/3xx that reach here) is permanent. `body_excerpt` is cut to
/// [`MAX_BODY_EXCERPT`] bytes for the message; callers must not pass
/// secrets in it.
pub fn classify_http_status(
    status: u16,
    body_excerpt: &str,
    retry_after: Option<Duration>,
) -> Result<(), SendError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let mut body = body_excerpt.trim();
    if body.len() > MAX_BODY_EXCERPT {
        let mut end = MAX_BODY_EXCERPT;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        body = &body[..end];
    }
    let message = if body.is_empty() {
        format!("unexpected HTTP status {status}")
    } else {
        format!("unexpected HTTP status {status}: {body}")
    };
    match status {
        429 => Err(SendError::Retryable {
            reason: "rate_limited",
            message,
            retry_after,
        }),
        500..=599 => Err(SendError::Retryable {
            reason: "server_error",
            message,
            retry_after,
        }),
        400..=499 => Err(SendError::permanent("client_error", message)),
        _ => Err(SendError::permanent("unexpected_status", message)),
    }
}

/// Firing or resolved, for one alert or a whole notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    /// `firing` / `resolved`, as templates and payloads spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One alert inside a notification (`.Alerts` items in templates).
#[derive(Debug, Clone, PartialEq)]
pub struct NotifiedAlert {
    pub alert: Alert,
    /// At the notification's `now`.
    pub status: AlertStatus,
    /// Alertmanager's fingerprint: 16 hex digits of the label set's hash.
    pub fingerprint: String,
}

/// Everything one notification of one group carries: Alertmanager's
/// template data model (`.Receiver`, `.Status`, `.Alerts`, `.GroupLabels`,
/// `.CommonLabels`, `.CommonAnnotations`, `.ExternalURL`, plus the
/// webhook's `groupKey` and `truncatedAlerts`).
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationData {
    /// The receiver's name (`.Receiver`).
    pub receiver: String,
    /// `firing` when at least one alert fires, else `resolved` (`.Status`).
    pub status: AlertStatus,
    /// The group's alerts, in the order given (`.Alerts`).
    pub alerts: Vec<NotifiedAlert>,
    /// The labels the group is keyed by (`.GroupLabels`).
    pub group_labels: Labels,
    /// Labels every alert has with the same value (`.CommonLabels`).
    pub common_labels: Labels,
    /// Annotations every alert has with the same value (`.CommonAnnotations`).
    pub common_annotations: BTreeMap<String, String>,
    /// Where watchpost is reachable, for links (`.ExternalURL`).
    pub external_url: String,
    /// The group's key (see `route::Route::group_key`).
    pub group_key: String,
    /// Alerts left out by a `max_alerts` limit.
    pub truncated_alerts: usize,
}

impl NotificationData {
    /// Builds the data for `alerts` of one group at `now`, computing each
    /// alert's status, the group's status and the common labels and
    /// annotations the way Alertmanager does.
    pub fn new(
        receiver: &str,
        group_key: impl Into<String>,
        group_labels: Labels,
        alerts: Vec<Alert>,
        external_url: impl Into<String>,
        now: Timestamp,
    ) -> Self {
        let mut common_labels: Option<Labels> = None;
        let mut common_annotations: Option<BTreeMap<String, String>> = None;
        for a in &alerts {
            common_labels = Some(match common_labels {
                None => a.labels.clone(),
                Some(c) => Labels::from_vec(
                    c.into_vec()
                        .into_iter()
                        .filter(|l| a.labels.get(&l.name) == Some(l.value.as_str()))
                        .collect(),
                ),
            });
            common_annotations = Some(match common_annotations {
                None => a.annotations.clone(),
                Some(mut c) => {
                    c.retain(|k, v| a.annotations.get(k) == Some(v));
                    c
                }
            });
        }
        let alerts: Vec<NotifiedAlert> = alerts
            .into_iter()
            .map(|alert| NotifiedAlert {
                status: if alert.resolved_at(now) {
                    AlertStatus::Resolved
                } else {
                    AlertStatus::Firing
                },
                fingerprint: fingerprint_hex(alert.fingerprint()),
                alert,
            })
            .collect();
        let status = if alerts.iter().any(|a| a.status == AlertStatus::Firing) {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        };
        NotificationData {
            receiver: receiver_display_name(receiver),
            status,
            alerts,
            group_labels,
            common_labels: common_labels.unwrap_or_default(),
            common_annotations: common_annotations.unwrap_or_default(),
            external_url: external_url.into(),
            group_key: group_key.into(),
            truncated_alerts: 0,
        }
    }

    /// The firing alerts (`.Alerts.Firing`).
    pub fn firing(&self) -> impl Iterator<Item = &NotifiedAlert> {
        self.alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Firing)
    }

    /// The resolved alerts (`.Alerts.Resolved`).
    pub fn resolved(&self) -> impl Iterator<Item = &NotifiedAlert> {
        self.alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Resolved)
    }

    /// A copy with at most `max` alerts (0 = all) and `truncated_alerts`
    /// counting the rest, for `max_alerts`.
    pub fn truncated(&self, max: usize) -> NotificationData {
        let mut d = self.clone();
        if max > 0 && d.alerts.len() > max {
            d.truncated_alerts += d.alerts.len() - max;
            d.alerts.truncate(max);
        }
        d
    }
}

/// Alertmanager removes a `{...}` part from the receiver name it shows in
/// templates (`.Receiver`).
fn receiver_display_name(r: &str) -> String {
    match (r.find('{'), r.rfind('}')) {
        (Some(a), Some(b)) if a < b => format!("{}{}", &r[..a], &r[b + 1..]),
        _ => r.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn http_status_classes() {
        let ra = Some(Duration::from_secs(7));
        assert_eq!(classify_http_status(200, "", None), Ok(()));
        assert_eq!(classify_http_status(204, "x", None), Ok(()));
        let e = classify_http_status(429, "slow down", ra).unwrap_err();
        assert!(e.is_retryable());
        assert_eq!((e.reason(), e.retry_after()), ("rate_limited", ra));
        assert_eq!(
            e.to_string(),
            "rate_limited: unexpected HTTP status 429: slow down"
        );
        let e = classify_http_status(503, "", None).unwrap_err();
        assert!(e.is_retryable() && e.reason() == "server_error");
        assert_eq!(e.to_string(), "server_error: unexpected HTTP status 503");
        let e = classify_http_status(400, "Bad Request: can't parse entities", ra).unwrap_err();
        assert!(!e.is_retryable() && e.reason() == "client_error");
        assert_eq!(e.retry_after(), None);
        let e = classify_http_status(302, "", None).unwrap_err();
        assert_eq!(e.reason(), "unexpected_status");
        let long = "é".repeat(600);
        let e = classify_http_status(500, &long, None).unwrap_err();
        assert!(e.to_string().len() < MAX_BODY_EXCERPT + 80);
    }

    fn alert(labels: &[(&str, &str)], ann: &[(&str, &str)], ends_at: Option<i64>) -> Alert {
        Alert {
            labels: Labels::from_pairs(labels.iter().copied()),
            annotations: ann
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            starts_at: 0,
            ends_at,
            updated_at: 0,
            generator_url: String::new(),
        }
    }

    #[test]
    fn template_data_like_alertmanager() {
        let a = alert(
            &[("alertname", "Down"), ("job", "api"), ("instance", "a")],
            &[("summary", "api down"), ("runbook", "r1")],
            None,
        );
        let b = alert(
            &[("alertname", "Down"), ("job", "api"), ("instance", "b")],
            &[("summary", "api down"), ("runbook", "r2")],
            Some(50),
        );
        let d = NotificationData::new(
            "team-x",
            "{}:{alertname=\"Down\"}",
            Labels::from_pairs([("alertname", "Down")]),
            vec![a.clone(), b],
            "http://watchpost:9464",
            100,
        );
        assert_eq!(d.status, AlertStatus::Firing);
        assert_eq!(
            d.common_labels,
            Labels::from_pairs([("alertname", "Down"), ("job", "api")])
        );
        assert_eq!(
            d.common_annotations,
            BTreeMap::from([("summary".to_string(), "api down".to_string())])
        );
        assert_eq!(d.firing().count(), 1);
        assert_eq!(d.resolved().count(), 1);
        assert_eq!(d.alerts[0].fingerprint, fingerprint_hex(a.fingerprint()));
        assert_eq!(d.alerts[0].fingerprint.len(), 16);
        let t = d.truncated(1);
        assert_eq!((t.alerts.len(), t.truncated_alerts), (1, 1));
        assert_eq!(d.truncated(0).alerts.len(), 2);
        // All resolved: the notification is resolved.
        let r = NotificationData::new(
            "r",
            "k",
            Labels::empty(),
            vec![alert(&[("a", "1")], &[], Some(1))],
            "",
            5,
        );
        assert_eq!(r.status.as_str(), "resolved");
        assert_eq!(receiver_display_name("team{x}-a"), "team-a");
    }
}
