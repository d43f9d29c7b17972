//! The hand-off from rule evaluation to notification: the rule manager
//! sends batches of [`Alert`]s on an mpsc channel (Prometheus's "send
//! alerts" step, with its resend semantics already applied); a forwarder
//! task owned by `app` passes every batch to an [`AlertSink`].
//!
//! Until the notification pipeline is wired, the sink is [`LogAlertSink`]:
//! one line on stdout per alert state change. The notification pipeline
//! plugs in by implementing [`AlertSink`] and setting
//! [`Options::alert_sink`](super::Options::alert_sink); nothing in `rules`
//! changes.
//!
//! Must not block: `send` is called on the forwarder task, and a slow sink
//! makes the channel fill up, after which the rule manager drops batches
//! (counted; firing alerts are re-sent within the resend delay).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::model::{Alert, Timestamp};

/// Receives the alerts rule evaluation produces, one batch per group
/// evaluation that had something to send. Firing alerts arrive with an
/// `ends_at` in the future (now + 4 x max(resend delay, group interval))
/// and are re-sent every resend delay while they fire; resolved alerts
/// arrive with `ends_at` at their resolution time and are re-sent for 15
/// minutes. A deduplicating receiver (Alertmanager's model) is expected.
pub trait AlertSink: Send + Sync + std::fmt::Debug + 'static {
    /// Takes one batch. Must return quickly (enqueue, do not deliver).
    fn send(&self, alerts: Vec<Alert>);
}

/// Batches waiting between the rule manager and the sink. A full channel
/// makes the manager drop (and count) a batch rather than stall a group.
pub(crate) const ALERT_CHANNEL_CAPACITY: usize = 1024;

/// Passes every batch from `rx` to `sink` until `done` is cancelled (after
/// the rule manager stopped), then passes what is still queued.
pub(crate) async fn forward(
    mut rx: mpsc::Receiver<Vec<Alert>>,
    sink: Arc<dyn AlertSink>,
    done: CancellationToken,
) {
    loop {
        tokio::select! {
            b = rx.recv() => match b {
                Some(batch) => sink.send(batch),
                None => return,
            },
            _ = done.cancelled() => break,
        }
    }
    while let Ok(batch) = rx.try_recv() {
        sink.send(batch);
    }
}

/// How long a resolved alert is remembered after it was last seen: longer
/// than the 15 minutes resolved alerts are re-sent, so a re-send does not
/// print again.
const FORGET_AFTER_MS: Timestamp = 60 * 60 * 1000;

/// The interim `log` receiver: writes one line to stdout when an alert
/// starts firing or resolves, and nothing for re-sends of an unchanged
/// state. Lines look like
/// `alert firing: TargetDown{instance="a:9100", job="node"} since 2026-01-02T03:04:05Z; summary="..."`.
#[derive(Debug, Default)]
pub struct LogAlertSink {
    /// Last printed state per fingerprint: (resolved, last seen).
    seen: Mutex<HashMap<u64, (bool, Timestamp)>>,
}

impl LogAlertSink {
    pub fn new() -> Self {
        Self::default()
    }

    /// The lines one batch prints (state changes only), updating what is
    /// remembered.
    pub fn lines(&self, alerts: &[Alert]) -> Vec<String> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        let mut newest = Timestamp::MIN;
        for a in alerts {
            newest = newest.max(a.updated_at);
            let resolved = a.resolved_at(a.updated_at);
            let prev = seen.insert(a.fingerprint(), (resolved, a.updated_at));
            if prev.map(|(r, _)| r) != Some(resolved) {
                out.push(line(a, resolved));
            }
        }
        seen.retain(|_, (resolved, at)| !*resolved || newest - *at < FORGET_AFTER_MS);
        out
    }
}

impl AlertSink for LogAlertSink {
    fn send(&self, alerts: Vec<Alert>) {
        let lines = self.lines(&alerts);
        if lines.is_empty() {
            return;
        }
        let mut text = lines.join("\n");
        text.push('\n');
        // stdout is the receiver here; a closed stdout has nowhere to
        // report to, so the error is ignored.
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }
}

fn rfc3339(ts: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(ts)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ts.to_string())
}

fn line(a: &Alert, resolved: bool) -> String {
    let mut s = if resolved {
        format!(
            "alert resolved: {} at {} (since {})",
            display_labels(a),
            rfc3339(a.ends_at.unwrap_or(a.updated_at)),
            rfc3339(a.starts_at)
        )
    } else {
        format!(
            "alert firing: {} since {}",
            display_labels(a),
            rfc3339(a.starts_at)
        )
    };
    for (i, (k, v)) in a.annotations.iter().enumerate() {
        s.push_str(if i == 0 { "; " } else { ", " });
        let _ = write!(s, "{k}={v:?}");
    }
    s
}

/// `Name{other="labels"}`: the alert name in front, as the log reads best.
fn display_labels(a: &Alert) -> String {
    let rest: Vec<String> = a
        .labels
        .iter()
        .filter(|l| l.name != "alertname")
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{}{{{}}}", a.name(), rest.join(", "))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::Labels;

    fn alert(instance: &str, ends_at: Timestamp, updated_at: Timestamp) -> Alert {
        Alert {
            labels: Labels::from_pairs([("alertname", "Down"), ("instance", instance)]),
            annotations: BTreeMap::from([("summary".to_string(), "it is down".to_string())]),
            starts_at: 1_000,
            ends_at: Some(ends_at),
            updated_at,
            generator_url: String::new(),
        }
    }

    #[test]
    fn prints_state_changes_only() {
        let sink = LogAlertSink::new();
        let l = sink.lines(&[alert("a", 300_000, 60_000)]);
        assert_eq!(
            l,
            vec![
                "alert firing: Down{instance=\"a\"} since 1970-01-01T00:00:01.000Z; summary=\"it is down\""
            ]
        );
        // Re-sent while firing: nothing.
        assert!(sink.lines(&[alert("a", 360_000, 120_000)]).is_empty());
        // Resolved, then re-sent resolved: one line.
        let l = sink.lines(&[alert("a", 150_000, 180_000)]);
        assert_eq!(l.len(), 1);
        assert!(
            l[0].starts_with("alert resolved: Down{instance=\"a\"} at 1970-01-01T00:02:30.000Z"),
            "{l:?}"
        );
        assert!(sink.lines(&[alert("a", 150_000, 240_000)]).is_empty());
        // Fires again.
        assert_eq!(sink.lines(&[alert("a", 600_000, 300_000)]).len(), 1);
    }

    #[test]
    fn a_resolution_first_seen_is_printed() {
        // After a restart, an alert that cleared while watchpost was down
        // arrives resolved only.
        let sink = LogAlertSink::new();
        let l = sink.lines(&[alert("b", 50_000, 60_000)]);
        assert_eq!(l.len(), 1);
        assert!(l[0].starts_with("alert resolved:"), "{l:?}");
    }

    #[tokio::test]
    async fn forwards_until_done_then_drains() {
        #[derive(Debug, Default)]
        struct Collect(Mutex<Vec<usize>>);
        impl AlertSink for Collect {
            fn send(&self, alerts: Vec<Alert>) {
                self.0.lock().unwrap().push(alerts.len());
            }
        }
        let (tx, rx) = mpsc::channel(8);
        let sink = Arc::new(Collect::default());
        let done = CancellationToken::new();
        let tracker = tokio_util::task::TaskTracker::new();
        let task = tracker.spawn(forward(rx, sink.clone(), done.clone()));
        tx.send(vec![alert("a", 1, 1)]).await.unwrap();
        tx.send(vec![alert("a", 1, 1), alert("b", 1, 1)])
            .await
            .unwrap();
        done.cancel();
        task.await.unwrap();
        assert_eq!(*sink.0.lock().unwrap(), vec![1, 2]);
    }
}
