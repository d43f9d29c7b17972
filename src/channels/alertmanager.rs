//! Forwarding to external Alertmanagers (Prometheus's
//! `alerting.alertmanagers`): the alerts of a notification are POSTed to
//! `/api/v2/alerts` of every Alertmanager of a set, as Prometheus does.
//!
//! One [`AlertmanagerForwarder`] per set, displayed `alertmanager[0]`. A
//! send succeeds when at least one Alertmanager of the set accepted the
//! alerts (an HA cluster shares them by gossip); the others' failures are
//! logged. When none accepted, the error is retryable if any failure was.
//! Posting the same alerts twice is harmless: Alertmanager merges them.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Value, json};

use crate::config::AlertmanagerSet;
use crate::config::http_client::HttpClientError;
use crate::notify::{NotificationData, Notifier, SendError};

use super::http::{Endpoint, HttpTransport};
use super::webhook::{labels_json, rfc3339};
use super::{Scrub, with_timeout};

pub struct AlertmanagerForwarder {
    name: String,
    set: AlertmanagerSet,
    http: HttpTransport,
}

impl AlertmanagerForwarder {
    /// The forwarder for set number `index` of `alerting.alertmanagers`.
    pub fn new(index: usize, set: &AlertmanagerSet) -> Result<Self, HttpClientError> {
        Ok(AlertmanagerForwarder {
            name: format!("alertmanager[{index}]"),
            http: HttpTransport::new(&set.http, set.timeout)?,
            set: set.clone(),
        })
    }

    async fn post_to(&self, target: &str, body: &Value) -> Result<(), SendError> {
        let url = self.set.alerts_url(target);
        let what = format!("alertmanager {target}");
        let mut scrub = Scrub::new();
        let r = with_timeout(self.set.timeout, &what, async {
            self.http
                .post_json(Endpoint::Public(&url), &[], body, &mut scrub)
                .await
                .map(|_| ())
        })
        .await;
        r.map_err(|e| scrub.error(e))
    }

    async fn deliver(&self, msg: &NotificationData) -> Result<(), SendError> {
        if self.set.targets.is_empty() {
            return Err(SendError::permanent(
                "no_target",
                format!(
                    "{}: no Alertmanager listed: add targets under static_configs",
                    self.name
                ),
            ));
        }
        let body = payload(msg);
        let results =
            futures_util::future::join_all(self.set.targets.iter().map(|t| self.post_to(t, &body)))
                .await;
        let mut failures = Vec::new();
        for (target, r) in self.set.targets.iter().zip(results) {
            if let Err(e) = r {
                failures.push((target, e));
            }
        }
        if failures.len() < self.set.targets.len() {
            for (target, e) in &failures {
                tracing::warn!(integration = %self.name, alertmanager = %target, error = %e, "alertmanager did not accept the alerts; others of its set did");
            }
            return Ok(());
        }
        let retryable = failures.iter().any(|(_, e)| e.is_retryable());
        let detail = failures
            .iter()
            .map(|(t, e)| format!("{t}: {e}"))
            .collect::<Vec<_>>()
            .join("; ");
        let message = format!("no Alertmanager accepted the alerts: {detail}");
        Err(if retryable {
            SendError::retryable("unreachable", message)
        } else {
            SendError::permanent("rejected", message)
        })
    }
}

impl Notifier for AlertmanagerForwarder {
    fn integration(&self) -> &str {
        &self.name
    }

    /// Alertmanager must learn that an alert resolved.
    fn send_resolved(&self) -> bool {
        true
    }

    fn send<'a>(
        &'a self,
        msg: &'a NotificationData,
    ) -> Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>> {
        // Nothing secret is in the URL or the body; credentials are applied
        // by the HTTP client, whose errors never include them.
        Box::pin(self.deliver(msg))
    }
}

/// API v2 `postableAlerts`: the alerts as their source reported them
/// (`endsAt` only when known).
pub fn payload(msg: &NotificationData) -> Value {
    Value::Array(
        msg.alerts
            .iter()
            .map(|a| {
                let mut v = json!({
                    "labels": labels_json(&a.alert.labels),
                    "annotations": a.alert.annotations,
                    "startsAt": rfc3339(a.alert.starts_at),
                    "generatorURL": a.alert.generator_url,
                });
                if let (Some(e), Some(obj)) = (a.alert.ends_at, v.as_object_mut()) {
                    obj.insert("endsAt".into(), Value::String(rfc3339(e)));
                }
                v
            })
            .collect(),
    )
}
