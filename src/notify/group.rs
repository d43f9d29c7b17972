//! Aggregation groups: the alerts of one route that share the route's
//! `group_by` labels, and the timer that decides when they are flushed
//! into the rest of the pipeline, with Alertmanager's semantics:
//!
//! - a new group waits `group_wait` before its first flush, so alerts that
//!   fire together arrive in one notification; an alert that started more
//!   than `group_wait` ago (e.g. after a restart or reload) makes a group
//!   that has not flushed yet flush at once;
//! - after a flush the next one is `group_interval` later, whether or not
//!   anything was sent: changes in a group (new alerts, resolutions) go
//!   out at the next such tick, and the notification log decides whether
//!   a tick sends (new alerts, resolved, `repeat_interval` elapsed);
//! - a flush hands over every alert with its status at the flush's `now`:
//!   firing alerts without an end time (so they cannot resolve while the
//!   notification travels), resolved ones with theirs; resolved alerts are
//!   removed after the notification was accepted, unless they changed in
//!   the meantime.
//!
//! Second stage of the pipeline, after routing (`dispatch` owns the groups
//! and their schedule). Pure: wall time and the timer instant are
//! arguments; nothing here sleeps or sends.

use std::cmp::Ordering;
use std::collections::HashMap;

use tokio::time::Instant;

use crate::model::{Alert, Labels, Timestamp};

use super::route::RouteOpts;

/// One aggregation group.
#[derive(Debug, Clone)]
pub struct AggrGroup {
    /// Unique within the dispatcher's life.
    pub id: u64,
    /// Index of the route in the dispatcher's route list.
    pub route: usize,
    /// The group labels.
    pub labels: Labels,
    /// Alertmanager's group key (`{route key}:{group labels}`).
    pub key: String,
    alerts: HashMap<u64, Alert>,
    has_flushed: bool,
    next_flush: Instant,
}

fn ms(d: std::time::Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl AggrGroup {
    /// A new, empty group whose first flush is `group_wait` after `now_i`.
    pub fn new(
        id: u64,
        route: usize,
        labels: Labels,
        key: String,
        opts: &RouteOpts,
        now_i: Instant,
    ) -> Self {
        AggrGroup {
            id,
            route,
            labels,
            key,
            alerts: HashMap::new(),
            has_flushed: false,
            next_flush: now_i + opts.group_wait,
        }
    }

    /// When the group flushes next.
    pub fn next_flush(&self) -> Instant {
        self.next_flush
    }

    /// Whether the group has flushed at least once.
    pub fn has_flushed(&self) -> bool {
        self.has_flushed
    }

    /// Takes over the timer of an older group (a config reload that kept
    /// the route): an unchanged group keeps its rhythm instead of waiting
    /// `group_wait` again or flushing at once.
    pub fn inherit_timer(&mut self, has_flushed: bool, next_flush: Instant) {
        self.has_flushed = has_flushed;
        self.next_flush = next_flush;
    }

    /// Adds or replaces an alert. Returns true when the group's next flush
    /// moved earlier: a group that has not flushed yet flushes at once when
    /// the alert started more than `group_wait` before `now`.
    pub fn insert(
        &mut self,
        alert: Alert,
        opts: &RouteOpts,
        now: Timestamp,
        now_i: Instant,
    ) -> bool {
        let old = alert.starts_at.saturating_add(ms(opts.group_wait)) < now;
        self.alerts.insert(alert.fingerprint(), alert);
        if !self.has_flushed && old && self.next_flush > now_i {
            self.next_flush = now_i;
            return true;
        }
        false
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    /// The alerts as stored (unsorted).
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    /// A flush at `now` / `now_i`: schedules the next one `group_interval`
    /// later and returns the alerts in Alertmanager's order with their
    /// status fixed at `now` (firing alerts lose their end time). `None`
    /// when the group is empty.
    pub fn flush(
        &mut self,
        opts: &RouteOpts,
        now: Timestamp,
        now_i: Instant,
    ) -> Option<Vec<Alert>> {
        self.has_flushed = true;
        self.next_flush = now_i + opts.group_interval;
        if self.alerts.is_empty() {
            return None;
        }
        let mut out: Vec<Alert> = self
            .alerts
            .values()
            .map(|a| {
                let mut a = a.clone();
                if !a.resolved_at(now) {
                    a.ends_at = None;
                }
                a
            })
            .collect();
        out.sort_by(alert_order);
        Some(out)
    }

    /// Removes the resolved alerts of a flush once its notification was
    /// accepted, except those updated since (they may fire again).
    pub fn delete_resolved(&mut self, flushed: &[Alert], now: Timestamp) {
        for a in flushed.iter().filter(|a| a.resolved_at(now)) {
            let fp = a.fingerprint();
            if self
                .alerts
                .get(&fp)
                .is_some_and(|cur| cur.updated_at == a.updated_at)
            {
                self.alerts.remove(&fp);
            }
        }
    }
}

/// Alertmanager's order of alerts in a notification: by `job`, then by
/// `instance` (alerts that have the label first), then by label set.
pub fn alert_order(a: &Alert, b: &Alert) -> Ordering {
    for key in ["job", "instance"] {
        match (a.labels.get(key), b.labels.get(key)) {
            (None, None) => continue,
            (None, Some(_)) => return Ordering::Greater,
            (Some(_), None) => return Ordering::Less,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {}
        }
    }
    label_set_order(&a.labels, &b.labels)
}

/// Prometheus's `LabelSet.Before`: smaller sets first, then the first
/// differing label (in name order) decides; a set lacking a name the other
/// has sorts first.
pub fn label_set_order(a: &Labels, b: &Labels) -> Ordering {
    if a.len() != b.len() {
        return a.len().cmp(&b.len());
    }
    let mut names: Vec<&str> = a.iter().chain(b.iter()).map(|l| l.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    for n in names {
        match (a.get(n), b.get(n)) {
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {}
        }
    }
    Ordering::Equal
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::config::notify::RouteConfig;
    use crate::notify::route::Route;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn opts(wait: u64, interval: u64) -> RouteOpts {
        let mut o = Route::new(&RouteConfig {
            receiver: Some("r".into()),
            group_by: None,
            matchers: vec![],
            continue_matching: false,
            group_wait: None,
            group_interval: None,
            repeat_interval: None,
            mute_time_intervals: vec![],
            active_time_intervals: vec![],
            send_resolved_when_muted: None,
            routes: vec![],
        })
        .opts;
        o.group_wait = Duration::from_secs(wait);
        o.group_interval = Duration::from_secs(interval);
        o
    }

    fn alert(l: &[(&str, &str)], starts: i64, ends: Option<i64>, updated: i64) -> Alert {
        Alert {
            labels: Labels::from_pairs(l.iter().copied()),
            annotations: BTreeMap::new(),
            starts_at: starts,
            ends_at: ends,
            updated_at: updated,
            generator_url: String::new(),
        }
    }

    #[test]
    fn waits_then_flushes_every_interval() {
        let o = opts(30, 300);
        let t0 = Instant::now();
        let now = 1_000_000;
        let mut g = AggrGroup::new(1, 0, Labels::empty(), "{}:{}".into(), &o, t0);
        assert_eq!(g.next_flush(), t0 + Duration::from_secs(30));
        // A fresh alert does not cut the wait.
        assert!(!g.insert(alert(&[("a", "1")], now, None, now), &o, now, t0));
        let t1 = t0 + Duration::from_secs(30);
        let out = g.flush(&o, now + 30_000, t1).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(g.next_flush(), t1 + Duration::from_secs(300));
        // After the first flush even an old alert waits for the interval.
        assert!(!g.insert(alert(&[("a", "2")], 1, None, now), &o, now + 40_000, t1));
    }

    #[test]
    fn an_old_alert_flushes_an_unflushed_group_at_once() {
        let o = opts(30, 300);
        let t0 = Instant::now();
        let mut g = AggrGroup::new(1, 0, Labels::empty(), "k".into(), &o, t0);
        // Started 31 s before now: older than group_wait.
        assert!(g.insert(alert(&[("a", "1")], 0, None, 31_000), &o, 31_000, t0));
        assert_eq!(g.next_flush(), t0);
        // Exactly group_wait old is not "over" (Go's Before is strict).
        let mut g = AggrGroup::new(1, 0, Labels::empty(), "k".into(), &o, t0);
        assert!(!g.insert(alert(&[("a", "1")], 0, None, 30_000), &o, 30_000, t0));
    }

    #[test]
    fn flush_fixes_status_and_resolved_alerts_go_once_accepted() {
        let o = opts(0, 60);
        let t0 = Instant::now();
        let mut g = AggrGroup::new(1, 0, Labels::empty(), "k".into(), &o, t0);
        g.insert(alert(&[("a", "1")], 1, Some(500), 10), &o, 100, t0);
        g.insert(alert(&[("a", "2")], 1, Some(5_000), 10), &o, 100, t0);
        let out = g.flush(&o, 1_000, t0).unwrap();
        // Resolved keeps its end; firing loses it.
        assert_eq!(out[0].ends_at, Some(500));
        assert_eq!(out[1].ends_at, None);
        g.delete_resolved(&out, 1_000);
        assert_eq!(g.len(), 1);
        // A resolved alert updated during the flush stays.
        g.insert(alert(&[("a", "3")], 1, Some(900), 10), &o, 1_000, t0);
        let out = g.flush(&o, 1_000, t0).unwrap();
        g.insert(alert(&[("a", "3")], 1, Some(900), 11), &o, 1_000, t0);
        g.delete_resolved(&out, 1_000);
        assert_eq!(g.len(), 2);
        let mut empty = AggrGroup::new(2, 0, Labels::empty(), "k".into(), &o, t0);
        assert!(empty.flush(&o, 0, t0).is_none());
    }

    #[test]
    fn order_is_job_instance_then_labels() {
        let mk = |l: &[(&str, &str)]| alert(l, 0, None, 0);
        let mut v = [
            mk(&[("alertname", "B")]),
            mk(&[("alertname", "A"), ("x", "1")]),
            mk(&[("job", "b")]),
            mk(&[("job", "a"), ("instance", "2")]),
            mk(&[("job", "a"), ("instance", "1")]),
            mk(&[("alertname", "A")]),
        ];
        v.sort_by(alert_order);
        let got: Vec<String> = v.iter().map(|a| a.labels.to_string()).collect();
        assert_eq!(
            got,
            [
                r#"{instance="1", job="a"}"#,
                r#"{instance="2", job="a"}"#,
                r#"{job="b"}"#,
                r#"{alertname="A"}"#,
                r#"{alertname="B"}"#,
                r#"{alertname="A", x="1"}"#,
            ]
        );
    }
}
