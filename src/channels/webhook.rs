//! `webhook_configs`: Alertmanager's webhook JSON (version "4") POSTed to a
//! URL, so anything written for Alertmanager's webhook receives watchpost's
//! notifications unchanged.
//!
//! The payload carries the group's alerts (at most `max_alerts`, the rest
//! counted in `truncatedAlerts`), its labels and key. The URL may hold a
//! token and is treated as a secret.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::config::SecretSource;
use crate::config::notify::WebhookConfig;
use crate::model::{Labels, Timestamp};
use crate::notify::{AlertStatus, NotificationData, Notifier, SendError};

use super::http::{Endpoint, HttpTransport};
use super::{Builder, ChannelError, Scrub, with_timeout};

pub struct Webhook {
    name: String,
    send_resolved: bool,
    url: SecretSource,
    max_alerts: usize,
    timeout: Duration,
    http: HttpTransport,
}

impl Webhook {
    pub(crate) fn new(b: &Builder<'_>, c: &WebhookConfig) -> Result<Self, ChannelError> {
        let timeout = if c.timeout.is_zero() {
            b.ctx.send_timeout
        } else {
            c.timeout
        };
        Ok(Webhook {
            name: b.name.clone(),
            send_resolved: b.send_resolved,
            url: c.url.clone(),
            max_alerts: usize::try_from(c.max_alerts).unwrap_or(usize::MAX),
            timeout,
            http: b.http(&c.http_config, timeout)?,
        })
    }

    async fn deliver(&self, msg: &NotificationData, scrub: &mut Scrub) -> Result<(), SendError> {
        let url = scrub.read(&self.url, "url")?;
        let body = payload(&msg.truncated(self.max_alerts));
        self.http
            .post_json(
                Endpoint::Secret {
                    url: &url,
                    key: "url",
                },
                &[],
                &body,
                scrub,
            )
            .await?;
        Ok(())
    }
}

impl Notifier for Webhook {
    fn integration(&self) -> &str {
        &self.name
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn send<'a>(
        &'a self,
        msg: &'a NotificationData,
    ) -> Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>> {
        Box::pin(async move {
            let mut scrub = Scrub::new();
            let r = with_timeout(self.timeout, "webhook", self.deliver(msg, &mut scrub)).await;
            r.map_err(|e| scrub.error(e))
        })
    }
}

/// Alertmanager's webhook message for `msg`.
pub fn payload(msg: &NotificationData) -> Value {
    let alerts: Vec<Value> = msg
        .alerts
        .iter()
        .map(|a| {
            json!({
                "status": a.status.as_str(),
                "labels": labels_json(&a.alert.labels),
                "annotations": a.alert.annotations,
                "startsAt": rfc3339(a.alert.starts_at),
                "endsAt": match (a.status, a.alert.ends_at) {
                    (AlertStatus::Resolved, Some(e)) => rfc3339(e),
                    // Alertmanager hides an end time not reached yet.
                    _ => GO_ZERO_TIME.to_string(),
                },
                "generatorURL": a.alert.generator_url,
                "fingerprint": a.fingerprint,
            })
        })
        .collect();
    json!({
        "receiver": msg.receiver,
        "status": msg.status.as_str(),
        "alerts": alerts,
        "groupLabels": labels_json(&msg.group_labels),
        "commonLabels": labels_json(&msg.common_labels),
        "commonAnnotations": msg.common_annotations,
        "externalURL": msg.external_url,
        "version": "4",
        "groupKey": msg.group_key,
        "truncatedAlerts": msg.truncated_alerts,
    })
}

/// How Go marshals the zero `time.Time`.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

pub(crate) fn labels_json(l: &Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|l| (l.name.clone(), Value::String(l.value.clone())))
            .collect::<Map<String, Value>>(),
    )
}

/// `ms` as Go's JSON encoding of a UTC time: RFC 3339 with the fraction's
/// trailing zeros dropped (`2024-05-01T12:00:00.25Z`).
pub fn rfc3339(ms: Timestamp) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
        return GO_ZERO_TIME.to_string();
    };
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let frac = ms.rem_euclid(1000);
    if frac == 0 {
        format!("{base}Z")
    } else {
        let f = format!("{frac:03}");
        format!("{base}.{}Z", f.trim_end_matches('0'))
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn times_like_go() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_714_564_800_250), "2024-05-01T12:00:00.25Z");
        assert_eq!(rfc3339(1_714_564_800_001), "2024-05-01T12:00:00.001Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }
}
