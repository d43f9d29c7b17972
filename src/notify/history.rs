//! The notification history: what was sent to whom, when and why, what
//! failed and what was held back, newest last, bounded (the oldest entries
//! fall off). Kept in memory for the UI and the API; the durable record of
//! what was sent is the notification log, not this.
//!
//! The last stage of the pipeline (record) writes here; nothing reads it
//! back into a decision.

use std::collections::VecDeque;

use crate::model::Timestamp;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryEvent {
    /// The integration accepted the notification.
    Delivered,
    /// One attempt failed; it will be retried.
    AttemptFailed,
    /// Given up: a permanent error, the deadline, a full queue or a
    /// removed integration.
    Failed,
    /// Nothing sent: every alert of the group is held back (logged when
    /// the reason changes, not at every flush).
    Suppressed,
    /// Only resolved alerts and `send_resolved` is off: the notification
    /// log was updated, nothing sent.
    Recorded,
}

impl HistoryEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryEvent::Delivered => "delivered",
            HistoryEvent::AttemptFailed => "attempt_failed",
            HistoryEvent::Failed => "failed",
            HistoryEvent::Suppressed => "suppressed",
            HistoryEvent::Recorded => "recorded",
        }
    }
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at: Timestamp,
    pub receiver: String,
    /// `telegram[0]`.
    pub integration: String,
    pub group_key: String,
    pub event: HistoryEvent,
    /// Why: the send reason (`first_notification`, `new_alerts`,
    /// `resolved`, `resolved_while_muted`, `repeat_interval_elapsed`), the
    /// suppression reason (`silenced`, `inhibited`, `muted_by_interval`,
    /// `outside_active_intervals`) or the failure reason (the channel's
    /// reason word, `deadline_exceeded`, `queue_full`,
    /// `integration_removed`).
    pub reason: String,
    /// Details: the silence ids, the inhibition rule, the error text.
    pub detail: String,
    pub firing: usize,
    pub resolved: usize,
    /// Delivery attempts so far.
    pub attempts: u32,
}

/// The bounded history.
#[derive(Debug)]
pub struct History {
    entries: VecDeque<HistoryEntry>,
    capacity: usize,
}

impl History {
    pub fn new(capacity: usize) -> Self {
        History {
            entries: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
        }
    }

    pub fn push(&mut self, e: HistoryEntry) {
        if self.capacity == 0 {
            return;
        }
        while self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(e);
    }

    /// Oldest first.
    pub fn entries(&self) -> Vec<HistoryEntry> {
        self.entries.iter().cloned().collect()
    }

    /// The newest `limit` entries, newest first (what a history page
    /// shows), without copying the rest.
    pub fn newest(&self, limit: usize) -> Vec<HistoryEntry> {
        self.entries.iter().rev().take(limit).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest() {
        let mut h = History::new(2);
        for i in 0..3 {
            h.push(HistoryEntry {
                at: i,
                receiver: "r".into(),
                integration: "log[0]".into(),
                group_key: "k".into(),
                event: HistoryEvent::Delivered,
                reason: "first_notification".into(),
                detail: String::new(),
                firing: 1,
                resolved: 0,
                attempts: 1,
            });
        }
        let at: Vec<i64> = h.entries().iter().map(|e| e.at).collect();
        assert_eq!(at, [1, 2]);
        let newest: Vec<i64> = h.newest(1).iter().map(|e| e.at).collect();
        assert_eq!(newest, [2]);
        assert_eq!(h.newest(10).len(), 2);
        assert_eq!(HistoryEvent::AttemptFailed.as_str(), "attempt_failed");
        let mut none = History::new(0);
        none.push(h.entries()[0].clone());
        assert!(none.is_empty());
    }
}
