//! The hand-off from rule evaluation to notification: the rule manager
//! sends batches of [`Alert`]s on an mpsc channel (Prometheus's "send
//! alerts" step, with its resend semantics already applied); a forwarder
//! task owned by `app` passes every batch to an [`AlertSink`].
//!
//! The sink is the notification pipeline (whose default route is the
//! `log` receiver on stdout); tests set another one through
//! [`Options::alert_sink`](super::Options::alert_sink).
//!
//! Must not block: `send` is called on the forwarder task, and a slow sink
//! makes the channel fill up, after which the rule manager drops batches
//! (counted; firing alerts are re-sent within the resend delay).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::model::Alert;

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;
    use crate::model::Labels;
    use crate::model::Timestamp;

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
