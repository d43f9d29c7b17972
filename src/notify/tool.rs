//! The work behind `watchpost notify routes` and `watchpost notify test`:
//! which receivers an alert with given labels reaches (what `amtool config
//! routes test` prints), and one sample notification sent through a
//! receiver's real integrations with each outcome reported.
//!
//! Off the data path: nothing here touches a running pipeline, its queue,
//! log or silences. The integrations come from a [`NotifierFactory`], the
//! same one the app gives [`super::NotifyManager::start`], so a test send
//! exercises exactly what the pipeline would use. A test send tries each
//! integration once, without retry, so the outcome shown is the first
//! answer (with its retryable/permanent class) rather than a wait.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::notify::{IntegrationConfig, MatcherSyntaxError, NotifyConfig, Receiver};
use crate::model::{Alert, Labels, Timestamp};

use super::route::{RouteMatch, label_set_string, parse_label_set, routes_for};
use super::{NotificationData, Notifier, NotifierFactory, NotifyError, SendError};

/// Why a `notify` subcommand could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(
        "--labels {input:?}: {source}: write the alert's labels as name=value pairs separated by commas, such as 'alertname=Down,team=db'"
    )]
    Labels {
        input: String,
        #[source]
        source: MatcherSyntaxError,
    },
    #[error("receiver {name:?} is not defined in {file}: the receivers are {known}")]
    UnknownReceiver {
        name: String,
        file: String,
        known: String,
    },
    #[error(transparent)]
    Build(#[from] NotifyError),
}

/// The routes an alert with the labels written in `labels` (`a=b,c="d"`)
/// reaches, in tree order.
pub fn routes(config: &NotifyConfig, labels: &str) -> Result<Vec<RouteMatch>, ToolError> {
    let set = parse_label_set(labels).map_err(|source| ToolError::Labels {
        input: labels.to_string(),
        source,
    })?;
    Ok(routes_for(config, &set))
}

/// The receivers of `matches` joined by commas, as `amtool config routes
/// test` prints them.
pub fn receivers_line(matches: &[RouteMatch]) -> String {
    matches
        .iter()
        .map(|m| m.receiver.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The outcome of one integration in a test send.
#[derive(Debug, Clone, PartialEq)]
pub struct TestOutcome {
    /// `telegram[0]`.
    pub integration: String,
    pub result: Result<(), SendError>,
    pub elapsed: Duration,
}

impl std::fmt::Display for TestOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.elapsed.as_millis();
        match &self.result {
            Ok(()) => write!(f, "{}: delivered in {ms} ms", self.integration),
            Err(e) => write!(
                f,
                "{}: failed after {ms} ms ({}): {e}",
                self.integration,
                if e.is_retryable() {
                    "retryable, the pipeline would retry"
                } else {
                    "permanent, the pipeline would give up"
                }
            ),
        }
    }
}

/// Labels of the sample alert a test send carries.
pub const TEST_ALERTNAME: &str = "WatchpostTestNotification";

/// The sample notification for `receiver` at `now`: one firing alert that
/// says it is a test.
pub fn sample_notification(receiver: &str, external_url: &str, now: Timestamp) -> NotificationData {
    let labels = Labels::from_pairs([
        ("alertname", TEST_ALERTNAME),
        ("instance", "watchpost"),
        ("severity", "none"),
    ]);
    let alert = Alert {
        annotations: [
            (
                "summary".to_string(),
                "Test notification from watchpost".to_string(),
            ),
            (
                "description".to_string(),
                format!(
                    "Sent by `watchpost notify test {receiver}` to check delivery; no alert is firing."
                ),
            ),
        ]
        .into_iter()
        .collect(),
        starts_at: now,
        ends_at: None,
        updated_at: now,
        generator_url: external_url.to_string(),
        labels,
    };
    let group_labels = Labels::from_pairs([("alertname", TEST_ALERTNAME)]);
    let key = format!("{{}}/test:{}", label_set_string(&group_labels));
    NotificationData::new(receiver, key, group_labels, vec![alert], external_url, now)
}

/// Sends the sample notification through every integration of `receiver`
/// once, each bounded by `timeout`, and reports each outcome (an empty list
/// for a receiver without integrations).
pub async fn test_receiver(
    config: &NotifyConfig,
    receiver: &str,
    factory: &NotifierFactory,
    external_url: &str,
    now: Timestamp,
    timeout: Duration,
) -> Result<Vec<TestOutcome>, ToolError> {
    let Some(r) = config.receiver(receiver) else {
        return Err(ToolError::UnknownReceiver {
            name: receiver.to_string(),
            file: config.file.clone(),
            known: config
                .receivers
                .iter()
                .map(|r| format!("{:?}", r.name))
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let integrations = factory(r)?;
    let data = sample_notification(receiver, external_url, now);
    let mut out = Vec::with_capacity(integrations.len());
    for n in integrations {
        let start = tokio::time::Instant::now();
        let result = match tokio::time::timeout(timeout, n.send(&data)).await {
            Ok(r) => r,
            Err(_) => Err(SendError::retryable(
                "timeout",
                format!("no answer within {timeout:?}"),
            )),
        };
        out.push(TestOutcome {
            integration: n.integration().to_string(),
            result,
            elapsed: start.elapsed(),
        });
    }
    Ok(out)
}

/// The integrations `notify` can build on its own, without `channels`:
/// only `log` receivers with the built-in line; every other kind is refused
/// by name rather than pretending to send. The binary uses
/// `channels::factory`; this one lets the pipeline be exercised alone.
pub fn builtin_factory() -> NotifierFactory {
    Arc::new(|r: &Receiver| {
        r.integrations
            .iter()
            .map(|i| match &i.config {
                IntegrationConfig::Log(c) if c.message.is_empty() => Ok(Arc::new(LineNotifier {
                    name: i.display_name(),
                    send_resolved: i.send_resolved,
                }) as Arc<dyn Notifier>),
                IntegrationConfig::Log(_) => Err(NotifyError::Integration {
                    receiver: r.name.clone(),
                    message: format!(
                        "{}: a message template needs the channels of a full build",
                        i.display_name()
                    ),
                }),
                other => Err(NotifyError::Integration {
                    receiver: r.name.clone(),
                    message: format!(
                        "{}: the {} channel is not part of this build: only log receivers can be sent through",
                        i.display_name(),
                        other.kind()
                    ),
                }),
            })
            .collect()
    })
}

/// A `log` integration writing one line per notification to stdout.
struct LineNotifier {
    name: String,
    send_resolved: bool,
}

/// One notification as one line: status, receiver, group and each alert's
/// labels.
pub fn notification_line(d: &NotificationData) -> String {
    let alerts: Vec<String> = d
        .alerts
        .iter()
        .map(|a| format!("{}{}", a.status.as_str(), label_set_string(&a.alert.labels)))
        .collect();
    format!(
        "notification receiver={:?} status={} group={} alerts=[{}]",
        d.receiver,
        d.status.as_str(),
        label_set_string(&d.group_labels),
        alerts.join(" ")
    )
}

impl Notifier for LineNotifier {
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
            let line = notification_line(msg);
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}")
                .and_then(|()| out.flush())
                .map_err(|e| SendError::retryable("io", format!("writing to stdout: {e}")))
        })
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::config::notify::load_str;
    use std::path::Path;
    use std::sync::Mutex;

    const CONFIG: &str = r#"
route:
  receiver: default
  routes:
    - receiver: team-db
      matchers: ['team="db"']
      continue: true
    - receiver: pager
      matchers: ['severity=~"page|critical"']
receivers:
  - name: default
    log_configs: [{}]
  - name: team-db
    log_configs: [{}]
    webhook_configs: [{url: "http://127.0.0.1:1/hook"}]
  - name: pager
"#;

    fn config() -> NotifyConfig {
        load_str(CONFIG, "notify.yml", Path::new(".")).unwrap()
    }

    #[test]
    fn routes_like_amtool() {
        let c = config();
        let m = routes(&c, "alertname=Down,team=db,severity=page").unwrap();
        assert_eq!(receivers_line(&m), "team-db,pager");
        assert_eq!(m[0].path, "route.routes[0]");
        assert_eq!(receivers_line(&routes(&c, "team=web").unwrap()), "default");
        assert_eq!(
            receivers_line(&routes(&c, "{team=\"db\"}").unwrap()),
            "team-db",
            "a matching child hides its parent even with continue"
        );
        let e = routes(&c, "team=~db").unwrap_err().to_string();
        assert!(e.starts_with("--labels \"team=~db\": "), "{e}");
        assert!(e.contains("write name=value"), "{e}");
    }

    struct Scripted {
        name: String,
        answer: Result<(), SendError>,
        seen: Arc<Mutex<Vec<NotificationData>>>,
        hang: bool,
    }

    impl Notifier for Scripted {
        fn integration(&self) -> &str {
            &self.name
        }
        fn send_resolved(&self) -> bool {
            true
        }
        fn send<'a>(
            &'a self,
            msg: &'a NotificationData,
        ) -> Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>> {
            Box::pin(async move {
                self.seen.lock().unwrap().push(msg.clone());
                if self.hang {
                    std::future::pending::<()>().await;
                }
                self.answer.clone()
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn test_send_reports_each_integration_once() {
        let c = config();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let factory: NotifierFactory = Arc::new(move |r: &Receiver| {
            Ok(r.integrations
                .iter()
                .map(|i| {
                    let name = i.display_name();
                    Arc::new(Scripted {
                        answer: if name == "webhook[0]" {
                            Err(SendError::permanent("client_error", "HTTP 401"))
                        } else {
                            Ok(())
                        },
                        hang: false,
                        name,
                        seen: s.clone(),
                    }) as Arc<dyn Notifier>
                })
                .collect())
        });
        let out = test_receiver(
            &c,
            "team-db",
            &factory,
            "http://wp:9464",
            1_000,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].to_string(),
            "webhook[0]: failed after 0 ms (permanent, the pipeline would give up): client_error: HTTP 401"
        );
        assert_eq!(out[1].to_string(), "log[0]: delivered in 0 ms");
        let d = {
            let seen = seen.lock().unwrap();
            assert_eq!(seen.len(), 2, "one attempt per integration, no retry");
            seen[0].clone()
        };
        assert_eq!(d.receiver, "team-db");
        assert_eq!(d.status.as_str(), "firing");
        assert_eq!(
            d.alerts[0].alert.labels.get("alertname"),
            Some(TEST_ALERTNAME)
        );
        assert_eq!(d.external_url, "http://wp:9464");

        let e = test_receiver(&c, "nobody", &factory, "", 0, Duration::from_secs(1))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "receiver \"nobody\" is not defined in notify.yml: the receivers are \"default\", \"team-db\", \"pager\""
        );
        let none = test_receiver(&c, "pager", &factory, "", 0, Duration::from_secs(1))
            .await
            .unwrap();
        assert!(none.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_integration_times_out_as_retryable() {
        let c = config();
        let factory: NotifierFactory = Arc::new(|_: &Receiver| {
            Ok(vec![Arc::new(Scripted {
                name: "log[0]".into(),
                answer: Ok(()),
                seen: Arc::default(),
                hang: true,
            }) as Arc<dyn Notifier>])
        });
        let out = test_receiver(&c, "default", &factory, "", 0, Duration::from_secs(3))
            .await
            .unwrap();
        let r = out[0].result.as_ref().unwrap_err();
        assert!(r.is_retryable() && r.reason() == "timeout", "{r}");
        assert_eq!(out[0].elapsed, Duration::from_secs(3));
    }

    #[test]
    fn builtin_factory_builds_log_and_names_what_it_cannot() {
        let c = config();
        let f = builtin_factory();
        let ns = f(c.receiver("default").unwrap()).unwrap();
        assert_eq!(ns[0].integration(), "log[0]");
        let e = f(c.receiver("team-db").unwrap()).err().unwrap().to_string();
        assert!(
            e.contains("team-db")
                && e.contains("webhook[0]: the webhook channel is not part of this build"),
            "{e}"
        );
        let d = sample_notification("default", "", 0);
        assert_eq!(
            notification_line(&d),
            "notification receiver=\"default\" status=firing group={alertname=\"WatchpostTestNotification\"} alerts=[firing{alertname=\"WatchpostTestNotification\", instance=\"watchpost\", severity=\"none\"}]"
        );
    }
}
