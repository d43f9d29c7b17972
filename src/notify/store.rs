//! The alert store: every alert the pipeline knows, by fingerprint, with
//! Alertmanager's rules for taking in an update.
//!
//! Alerts arrive from the rule manager (re-sent every minute while firing,
//! with `endsAt` a few intervals ahead; re-sent for a while after they
//! resolve) and from `POST /api/v2/alerts`. Each update is normalized as
//! Alertmanager's API does it (`updatedAt` is the receive time, a missing
//! `startsAt` becomes the receive time or `endsAt`, a missing `endsAt`
//! becomes receive time + `resolve_timeout` and is remembered as a timeout)
//! and merged with the stored alert when their activity ranges overlap.
//!
//! Sits before routing: the dispatcher routes what [`AlertStore::put`]
//! returns, inhibition reads the store's firing alerts, the API lists them.
//! Pure: `now` is an argument. It does not route, group or notify.

use std::collections::HashMap;
use std::time::Duration;

use crate::model::{Alert, Timestamp};

/// One stored alert.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    pub alert: Alert,
    /// `ends_at` was not given by the sender but set from `resolve_timeout`;
    /// a later explicit end time then always wins in a merge.
    pub timeout: bool,
}

/// The alerts, by fingerprint.
#[derive(Debug, Default)]
pub struct AlertStore {
    alerts: HashMap<u64, StoredAlert>,
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// Normalizes an incoming alert as Alertmanager's API does. Returns the
/// alert and whether its end is a timeout.
pub fn normalize(mut a: Alert, now: Timestamp, resolve_timeout: Duration) -> StoredAlert {
    a.updated_at = now;
    if a.starts_at == 0 {
        a.starts_at = a.ends_at.unwrap_or(now);
    }
    let timeout = a.ends_at.is_none();
    if timeout {
        a.ends_at = Some(now.saturating_add(ms(resolve_timeout)));
    }
    StoredAlert { alert: a, timeout }
}

/// Alertmanager's merge of two versions of one alert: the younger one
/// (later `updated_at`) wins, with the earliest start, and an end time that
/// does not move an alert backwards: of two resolved versions the later
/// explicit resolution wins; of a firing update and an older version with a
/// later, explicit (non-timeout) end, that end wins.
pub fn merge(old: &StoredAlert, new: &StoredAlert, now: Timestamp) -> StoredAlert {
    let (a, o) = if new.alert.updated_at < old.alert.updated_at {
        (new, old)
    } else {
        (old, new)
    };
    let mut res = o.clone();
    if a.alert.starts_at < o.alert.starts_at {
        res.alert.starts_at = a.alert.starts_at;
    }
    let a_end = a.alert.ends_at.unwrap_or(i64::MAX);
    let o_end = o.alert.ends_at.unwrap_or(i64::MAX);
    if o.alert.resolved_at(now) {
        if a.alert.resolved_at(now) && a_end > o_end {
            res.alert.ends_at = a.alert.ends_at;
        }
    } else if a_end > o_end && !a.timeout {
        res.alert.ends_at = a.alert.ends_at;
    }
    res
}

impl AlertStore {
    pub fn new() -> Self {
        AlertStore::default()
    }

    /// Takes in one update (already normalized) and returns the alert as
    /// stored. An update whose activity range overlaps the stored one's is
    /// merged with it; otherwise it replaces it (a new firing after a
    /// resolution).
    pub fn put(&mut self, new: StoredAlert, now: Timestamp) -> &StoredAlert {
        let fp = new.alert.fingerprint();
        let merged = match self.alerts.get(&fp) {
            Some(old) => {
                let (os, oe) = (old.alert.starts_at, old.alert.ends_at.unwrap_or(i64::MAX));
                let (ns, ne) = (new.alert.starts_at, new.alert.ends_at.unwrap_or(i64::MAX));
                if (ne > os && ne < oe) || (ns > os && ns < oe) {
                    merge(old, &new, now)
                } else {
                    new
                }
            }
            None => new,
        };
        self.alerts.insert(fp, merged);
        &self.alerts[&fp]
    }

    pub fn get(&self, fp: u64) -> Option<&StoredAlert> {
        self.alerts.get(&fp)
    }

    pub fn iter(&self) -> impl Iterator<Item = &StoredAlert> {
        self.alerts.values()
    }

    /// The alerts alone, for inhibition and templates.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> + Clone {
        self.alerts.values().map(|s| &s.alert)
    }

    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// Drops the alerts resolved at `now` (Alertmanager's periodic GC):
    /// aggregation groups keep their own copies until they notified the
    /// resolution, and a sender that re-sends a resolved alert later finds
    /// its notification already logged. Returns how many were dropped.
    pub fn gc(&mut self, now: Timestamp) -> usize {
        let before = self.alerts.len();
        self.alerts.retain(|_, s| !s.alert.resolved_at(now));
        before - self.alerts.len()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::model::Labels;
    use std::collections::BTreeMap;

    const RT: Duration = Duration::from_secs(300);

    fn alert(starts: i64, ends: Option<i64>) -> Alert {
        Alert {
            labels: Labels::from_pairs([("alertname", "Down")]),
            annotations: BTreeMap::new(),
            starts_at: starts,
            ends_at: ends,
            updated_at: 0,
            generator_url: String::new(),
        }
    }

    #[test]
    fn normalizes_like_the_api() {
        let s = normalize(alert(0, None), 1_000, RT);
        assert_eq!(s.alert.starts_at, 1_000);
        assert_eq!(s.alert.ends_at, Some(301_000));
        assert_eq!(s.alert.updated_at, 1_000);
        assert!(s.timeout);
        // Only an end: the alert started when it ended.
        let s = normalize(alert(0, Some(500)), 1_000, RT);
        assert_eq!((s.alert.starts_at, s.timeout), (500, false));
        let s = normalize(alert(10, Some(5_000)), 1_000, RT);
        assert_eq!((s.alert.starts_at, s.alert.ends_at), (10, Some(5_000)));
    }

    #[test]
    fn merges_keep_the_earliest_start_and_do_not_move_ends_back() {
        let mut st = AlertStore::new();
        // Firing, re-sent each minute with endsAt 4 minutes ahead.
        st.put(normalize(alert(100, Some(240_100)), 100, RT), 100);
        let got = st.put(normalize(alert(200, Some(300_000)), 60_000, RT), 60_000);
        assert_eq!(got.alert.starts_at, 100);
        assert_eq!(got.alert.ends_at, Some(300_000));
        // Resolved at 90s: the resolution is taken.
        let got = st.put(normalize(alert(100, Some(90_000)), 91_000, RT), 91_000);
        assert_eq!(got.alert.ends_at, Some(90_000));
        assert!(got.alert.resolved_at(91_000));
        // An older resolved version with a later end keeps the later end.
        let old = normalize(alert(100, Some(95_000)), 92_000, RT);
        let new = normalize(alert(100, Some(90_000)), 93_000, RT);
        assert_eq!(merge(&old, &new, 96_000).alert.ends_at, Some(95_000));
        // A timeout end never beats a later explicit one...
        let old = normalize(alert(100, Some(500_000)), 1_000, RT);
        let new = normalize(alert(100, None), 2_000, RT);
        assert_eq!(merge(&old, &new, 3_000).alert.ends_at, Some(500_000));
        // ...but a timeout end is replaced by the next update's.
        let old = normalize(alert(100, None), 1_000, RT);
        let new = normalize(alert(100, Some(200_000)), 2_000, RT);
        assert_eq!(merge(&old, &new, 3_000).alert.ends_at, Some(200_000));
    }

    #[test]
    fn a_new_firing_after_resolution_replaces() {
        let mut st = AlertStore::new();
        st.put(normalize(alert(100, Some(1_000)), 2_000, RT), 2_000);
        // Starts after the old one ended: no overlap, replaced.
        let got = st.put(normalize(alert(5_000, Some(9_000)), 5_000, RT), 5_000);
        assert_eq!(got.alert.starts_at, 5_000);
        assert_eq!(st.len(), 1);
    }

    #[test]
    fn gc_drops_resolved_alerts() {
        let mut st = AlertStore::new();
        st.put(normalize(alert(100, Some(1_000)), 100, RT), 100);
        let mut other = alert(100, Some(9_000));
        other.labels = Labels::from_pairs([("alertname", "Up")]);
        st.put(normalize(other, 100, RT), 100);
        assert_eq!(st.gc(999), 0);
        assert_eq!(st.gc(1_000), 1);
        assert_eq!(st.len(), 1);
        assert_eq!(st.alerts().count(), 1);
    }
}
