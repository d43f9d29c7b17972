//! The notification log: for each receiver integration and group key,
//! which alerts the last accepted notification reported as firing and as
//! resolved, and when. The dedup stage reads it to decide whether a flush
//! sends anything, and why.
//!
//! An entry is written when a notification is *accepted* (written to the
//! durable queue, in the same journal record), not when it is delivered:
//! the queue delivers it at least once, so a group flushed again while the
//! channel is down must not queue the same news twice. Entries expire
//! after twice the route's `repeat_interval` (at least five days, as
//! Alertmanager's default retention), after which a group counts as never
//! notified.
//!
//! Fifth stage of the pipeline (dedup), after the mute stages; persisted
//! through `journal`. Pure: `now` is an argument.

use std::collections::HashMap;
use std::time::Duration;

use crate::model::Timestamp;

/// Which log an entry belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NflogKey {
    pub receiver: String,
    /// `telegram[0]`.
    pub integration: String,
    pub group_key: String,
}

/// What was last notified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NflogEntry {
    /// Fingerprints, sorted.
    pub firing: Vec<u64>,
    /// Fingerprints, sorted.
    pub resolved: Vec<u64>,
    /// The flush time of the notification.
    pub timestamp: Timestamp,
    pub expires_at: Timestamp,
}

impl NflogEntry {
    pub fn new(
        mut firing: Vec<u64>,
        mut resolved: Vec<u64>,
        timestamp: Timestamp,
        repeat_interval: Duration,
    ) -> Self {
        firing.sort_unstable();
        firing.dedup();
        resolved.sort_unstable();
        resolved.dedup();
        NflogEntry {
            firing,
            resolved,
            timestamp,
            expires_at: timestamp.saturating_add(retention(repeat_interval)),
        }
    }

    pub fn was_firing(&self, fp: u64) -> bool {
        self.firing.binary_search(&fp).is_ok()
    }
}

/// Minimum time an entry is kept.
pub const MIN_RETENTION: Duration = Duration::from_secs(5 * 24 * 3600);

fn retention(repeat: Duration) -> i64 {
    let d = (repeat * 2).max(MIN_RETENTION);
    d.as_millis().min(i64::MAX as u128) as i64
}

/// Why a flush sends a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendReason {
    /// The receiver has not been told about this group (or forgot it).
    FirstNotification,
    /// An alert fires that the last notification did not report firing.
    NewAlerts,
    /// Alerts resolved since the last notification.
    Resolved,
    /// Alerts that resolved while silenced, inhibited or muted, sent
    /// because of `send_resolved_when_muted`.
    ResolvedWhileMuted,
    /// Nothing changed, and `repeat_interval` passed since the last one.
    RepeatIntervalElapsed,
}

impl SendReason {
    /// The metric label and log word.
    pub fn as_str(self) -> &'static str {
        match self {
            SendReason::FirstNotification => "first_notification",
            SendReason::NewAlerts => "new_alerts",
            SendReason::Resolved => "resolved",
            SendReason::ResolvedWhileMuted => "resolved_while_muted",
            SendReason::RepeatIntervalElapsed => "repeat_interval_elapsed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            SendReason::FirstNotification,
            SendReason::NewAlerts,
            SendReason::Resolved,
            SendReason::ResolvedWhileMuted,
            SendReason::RepeatIntervalElapsed,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// Whether every element of sorted `sub` is in sorted `set`.
fn is_subset(sub: &[u64], set: &[u64]) -> bool {
    sub.iter().all(|x| set.binary_search(x).is_ok())
}

/// The dedup decision, with Alertmanager's rules. `firing` and `resolved`
/// are the sorted fingerprints this flush would report; `send_resolved` is
/// the integration's setting.
///
/// - never notified: send when something fires;
/// - something fires that was not reported firing: send;
/// - nothing fires: send when the last notification reported something
///   firing (so the receiver hears it is over, and the log forgets it),
///   whatever `send_resolved` says;
/// - with `send_resolved`, a resolution not yet reported: send;
/// - otherwise only once `repeat_interval` passed (strictly).
pub fn needs_update(
    entry: Option<&NflogEntry>,
    firing: &[u64],
    resolved: &[u64],
    send_resolved: bool,
    repeat_interval: Duration,
    now: Timestamp,
) -> Option<SendReason> {
    let Some(e) = entry else {
        return (!firing.is_empty()).then_some(SendReason::FirstNotification);
    };
    if !is_subset(firing, &e.firing) {
        return Some(SendReason::NewAlerts);
    }
    if firing.is_empty() {
        return (!e.firing.is_empty()).then_some(SendReason::Resolved);
    }
    if send_resolved && !is_subset(resolved, &e.resolved) {
        return Some(SendReason::Resolved);
    }
    let repeat = repeat_interval.as_millis().min(i64::MAX as u128) as i64;
    (e.timestamp < now.saturating_sub(repeat)).then_some(SendReason::RepeatIntervalElapsed)
}

/// The log.
#[derive(Debug, Default)]
pub struct NotificationLog {
    entries: HashMap<NflogKey, NflogEntry>,
}

impl NotificationLog {
    pub fn new() -> Self {
        NotificationLog::default()
    }

    /// The live entry for `key` at `now`.
    pub fn get(&self, key: &NflogKey, now: Timestamp) -> Option<&NflogEntry> {
        self.entries.get(key).filter(|e| e.expires_at > now)
    }

    pub fn set(&mut self, key: NflogKey, entry: NflogEntry) {
        self.entries.insert(key, entry);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&NflogKey, &NflogEntry)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops expired entries; returns how many.
    pub fn gc(&mut self, now: Timestamp) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.expires_at > now);
        before - self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    fn entry(firing: &[u64], resolved: &[u64], ts: Timestamp) -> NflogEntry {
        NflogEntry::new(firing.to_vec(), resolved.to_vec(), ts, H)
    }

    #[test]
    fn dedup_decisions_like_alertmanager() {
        use SendReason::*;
        let now = 10 * 3_600_000;
        let recent = now - 1_000;
        let old = now - 3_600_001;
        // (entry, firing, resolved, send_resolved, want)
        type Case<'a> = (
            Option<NflogEntry>,
            &'a [u64],
            &'a [u64],
            bool,
            Option<SendReason>,
        );
        let cases: Vec<Case> = vec![
            (None, &[1], &[], true, Some(FirstNotification)),
            (None, &[], &[1], true, None),
            (Some(entry(&[1], &[], recent)), &[1], &[], true, None),
            (
                Some(entry(&[1], &[], recent)),
                &[1, 2],
                &[],
                true,
                Some(NewAlerts),
            ),
            // Fewer firing is not news by itself...
            (Some(entry(&[1, 2], &[], recent)), &[1], &[], false, None),
            // ...but a reported resolution is, with send_resolved.
            (
                Some(entry(&[1, 2], &[], recent)),
                &[1],
                &[2],
                true,
                Some(Resolved),
            ),
            (Some(entry(&[1, 2], &[2], recent)), &[1], &[2], true, None),
            // All resolved: always sent, to clear the log.
            (
                Some(entry(&[1], &[], recent)),
                &[],
                &[1],
                false,
                Some(Resolved),
            ),
            // Fired and resolved between two flushes: nobody knew.
            (Some(entry(&[], &[1], recent)), &[], &[2], true, None),
            (
                Some(entry(&[1], &[], old)),
                &[1],
                &[],
                true,
                Some(RepeatIntervalElapsed),
            ),
            // Exactly repeat_interval ago is not yet "before".
            (
                Some(entry(&[1], &[], now - 3_600_000)),
                &[1],
                &[],
                true,
                None,
            ),
        ];
        for (i, (e, f, r, sr, want)) in cases.into_iter().enumerate() {
            assert_eq!(needs_update(e.as_ref(), f, r, sr, H, now), want, "case {i}");
        }
    }

    #[test]
    fn entries_expire() {
        let mut log = NotificationLog::new();
        let k = NflogKey {
            receiver: "r".into(),
            integration: "log[0]".into(),
            group_key: "{}:{}".into(),
        };
        let e = entry(&[3, 1, 3], &[], 1_000);
        assert_eq!(e.firing, [1, 3]);
        assert!(e.was_firing(3) && !e.was_firing(2));
        let exp = e.expires_at;
        assert_eq!(exp, 1_000 + MIN_RETENTION.as_millis() as i64);
        log.set(k.clone(), e);
        assert!(log.get(&k, exp - 1).is_some());
        assert!(log.get(&k, exp).is_none());
        assert_eq!(log.gc(exp - 1), 0);
        assert_eq!(log.gc(exp), 1);
        assert!(log.is_empty());
        assert_eq!(SendReason::parse("new_alerts"), Some(SendReason::NewAlerts));
        assert_eq!(SendReason::parse("x"), None);
    }
}
