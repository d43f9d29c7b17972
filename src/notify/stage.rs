//! The stages a flushed group goes through before anything is queued, as
//! pure functions over one flush: inhibit -> mute/active time intervals ->
//! silences (Alertmanager's order), then, per integration, dedup against
//! the notification log. Each stage returns the alerts it lets through and
//! the ones it holds back with the reason, so every decision can be logged,
//! counted and shown in the history.
//!
//! `send_resolved_when_muted` (a watchpost extension) is applied at the
//! dedup step: an alert held back by a mute stage that has *resolved*, and
//! that the integration was last told is firing, goes through anyway, so
//! the receiver hears that it is over (Alertmanager drops it, and the
//! receiver never learns).
//!
//! Pure: the caller (the manager's flush) passes `now`, the silences, the
//! inhibition index and the notification log entry.

use chrono::DateTime;

use crate::model::{Alert, Timestamp};

use super::group::alert_order;
use super::inhibit::{InhibitIndex, Inhibitor};
use super::nflog::{NflogEntry, SendReason, needs_update};
use super::route::RouteOpts;
use super::silences::Silences;
use super::timeinterval::{Muted, TimeIntervals};

/// Why an alert of a flush is held back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suppression {
    /// By inhibition rule `rule` (its index; `name` if it has one),
    /// because source alert `source` fires.
    Inhibited {
        rule: usize,
        name: Option<String>,
        source: u64,
    },
    /// The route is inside one of its `mute_time_intervals`.
    MutedByInterval(String),
    /// The route has `active_time_intervals` and is outside all of them.
    OutsideActiveIntervals,
    /// By these silences (ids).
    Silenced(Vec<String>),
}

impl Suppression {
    /// The metric label and log word.
    pub fn reason(&self) -> &'static str {
        match self {
            Suppression::Inhibited { .. } => "inhibited",
            Suppression::MutedByInterval(_) => "muted_by_interval",
            Suppression::OutsideActiveIntervals => "outside_active_intervals",
            Suppression::Silenced(_) => "silenced",
        }
    }

    /// A sentence for logs and the history.
    pub fn detail(&self) -> String {
        match self {
            Suppression::Inhibited {
                rule, name, source, ..
            } => match name {
                Some(n) => format!(
                    "inhibited by rule {n:?} (inhibit_rules[{rule}]): source alert {source:016x} fires"
                ),
                None => {
                    format!("inhibited by inhibit_rules[{rule}]: source alert {source:016x} fires")
                }
            },
            Suppression::MutedByInterval(n) => format!("muted by time interval {n:?}"),
            Suppression::OutsideActiveIntervals => {
                "outside the route's active_time_intervals".to_string()
            }
            Suppression::Silenced(ids) => format!("silenced by {}", ids.join(", ")),
        }
    }
}

/// The alerts of one flush after the mute stages.
#[derive(Debug, Clone, Default)]
pub struct Muting {
    /// Let through, in notification order.
    pub kept: Vec<Alert>,
    /// Held back, with the first stage's reason.
    pub muted: Vec<(Alert, Suppression)>,
}

/// Inhibition: holds back alerts that a firing source alert inhibits.
pub fn inhibit_stage(
    alerts: Vec<Alert>,
    inhibitor: &Inhibitor,
    index: &InhibitIndex<'_>,
) -> Muting {
    let mut out = Muting::default();
    for a in alerts {
        match index.is_inhibited(&a.labels) {
            Some(i) => {
                let name = inhibitor.rules().get(i.rule).and_then(|r| r.name.clone());
                out.muted.push((
                    a,
                    Suppression::Inhibited {
                        rule: i.rule,
                        name,
                        source: i.source,
                    },
                ));
            }
            None => out.kept.push(a),
        }
    }
    out
}

/// Time intervals: holds back every alert of a route that is muted at `now`.
pub fn time_stage(
    mut m: Muting,
    intervals: &TimeIntervals,
    opts: &RouteOpts,
    now: Timestamp,
) -> Muting {
    let Some(t) = DateTime::from_timestamp_millis(now) else {
        return m;
    };
    let why = match intervals.muted(opts, t) {
        None => return m,
        Some(Muted::ByInterval(n)) => Suppression::MutedByInterval(n),
        Some(Muted::OutsideActiveIntervals) => Suppression::OutsideActiveIntervals,
    };
    m.muted.extend(m.kept.drain(..).map(|a| (a, why.clone())));
    m
}

/// Silences: holds back alerts that an active silence matches.
pub fn silence_stage(mut m: Muting, silences: &Silences, now: Timestamp) -> Muting {
    let kept = std::mem::take(&mut m.kept);
    for a in kept {
        let ids = silences.mutes(&a.labels, now);
        if ids.is_empty() {
            m.kept.push(a);
        } else {
            m.muted.push((a, Suppression::Silenced(ids)));
        }
    }
    m
}

/// The three mute stages in Alertmanager's order.
pub fn mute_stages(
    alerts: Vec<Alert>,
    inhibitor: &Inhibitor,
    index: &InhibitIndex<'_>,
    intervals: &TimeIntervals,
    opts: &RouteOpts,
    silences: &Silences,
    now: Timestamp,
) -> Muting {
    let m = inhibit_stage(alerts, inhibitor, index);
    let m = time_stage(m, intervals, opts, now);
    silence_stage(m, silences, now)
}

/// What a flush means for one integration.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Queue a notification with these alerts, and log `nflog`.
    Send {
        reason: SendReason,
        alerts: Vec<Alert>,
        nflog: NflogEntry,
    },
    /// Nothing to deliver (only resolved alerts and `send_resolved` is
    /// off), but the log must learn that nothing fires any more.
    Record {
        reason: SendReason,
        nflog: NflogEntry,
    },
    /// Every alert is held back; the first reason.
    Suppressed(Suppression),
    /// The log says the receiver already knows.
    Unchanged,
}

/// The dedup stage for one integration of the flushed group's receiver.
pub fn decide(
    muting: &Muting,
    entry: Option<&NflogEntry>,
    send_resolved: bool,
    opts: &RouteOpts,
    now: Timestamp,
) -> Decision {
    let mut candidates: Vec<&Alert> = muting.kept.iter().collect();
    let mut exception = false;
    if opts.send_resolved_when_muted
        && let Some(e) = entry
    {
        for (a, _) in &muting.muted {
            if a.resolved_at(now) && e.was_firing(a.fingerprint()) {
                candidates.push(a);
                exception = true;
            }
        }
    }
    if candidates.is_empty() {
        return match muting.muted.first() {
            Some((_, why)) => Decision::Suppressed(why.clone()),
            None => Decision::Unchanged,
        };
    }
    if exception {
        candidates.sort_by(|a, b| alert_order(a, b));
    }
    let mut firing = Vec::new();
    let mut resolved = Vec::new();
    for a in &candidates {
        if a.resolved_at(now) {
            resolved.push(a.fingerprint());
        } else {
            firing.push(a.fingerprint());
        }
    }
    let nflog = NflogEntry::new(firing, resolved, now, opts.repeat_interval);
    let Some(mut reason) = needs_update(
        entry,
        &nflog.firing,
        &nflog.resolved,
        send_resolved,
        opts.repeat_interval,
        now,
    ) else {
        return Decision::Unchanged;
    };
    if exception && reason == SendReason::Resolved {
        reason = SendReason::ResolvedWhileMuted;
    }
    let alerts: Vec<Alert> = candidates
        .into_iter()
        .filter(|a| send_resolved || !a.resolved_at(now))
        .cloned()
        .collect();
    if alerts.is_empty() {
        Decision::Record { reason, nflog }
    } else {
        Decision::Send {
            reason,
            alerts,
            nflog,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::config::notify::load_str;
    use crate::model::Labels;
    use crate::notify::route::Route;
    use crate::notify::silence::SilenceMatcher;
    use crate::notify::silences::PostedSilence;
    use std::collections::BTreeMap;
    use std::path::Path;

    const CONFIG: &str = r#"
route:
  receiver: r
  routes:
    - receiver: r
      matchers: [team="night"]
      mute_time_intervals: [nights]
    - receiver: r
      matchers: [team="office"]
      active_time_intervals: [office]
time_intervals:
  - name: nights
    time_intervals: [{times: [{start_time: "00:00", end_time: "06:00"}]}]
  - name: office
    time_intervals: [{times: [{start_time: "09:00", end_time: "17:00"}]}]
inhibit_rules:
  - name: crit
    source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [alertname]
receivers: [{name: r}]
"#;

    struct Env {
        route: Route,
        inhibitor: Inhibitor,
        intervals: TimeIntervals,
    }

    fn env() -> Env {
        let c = load_str(CONFIG, "t.yml", Path::new(".")).unwrap();
        Env {
            route: Route::new(&c.route),
            inhibitor: Inhibitor::new(&c.inhibit_rules),
            intervals: TimeIntervals::new(&c.time_intervals),
        }
    }

    fn alert(l: &str, ends: Option<i64>) -> Alert {
        Alert {
            labels: Labels::from_pairs(l.split(',').map(|p| p.split_once('=').unwrap())),
            annotations: BTreeMap::new(),
            starts_at: 1,
            ends_at: ends,
            updated_at: 1,
            generator_url: String::new(),
        }
    }

    // 2024-05-06 (a Monday) 03:00 and 12:00 UTC.
    const NIGHT: i64 = 1_714_964_400_000;
    const NOON: i64 = 1_714_996_800_000;

    fn names(v: &[Alert]) -> Vec<String> {
        v.iter().map(|a| a.labels.to_string()).collect()
    }

    #[test]
    fn inhibition_holds_back_targets_of_firing_sources() {
        let e = env();
        let all = vec![
            alert("alertname=Disk,severity=critical", None),
            alert("alertname=Disk,severity=warning", None),
            alert("alertname=Cpu,severity=warning", None),
        ];
        let idx = e.inhibitor.index(all.iter(), NOON);
        let m = inhibit_stage(all.clone(), &e.inhibitor, &idx);
        assert_eq!(m.kept.len(), 2);
        let (a, why) = &m.muted[0];
        assert_eq!(a.labels.get("alertname"), Some("Disk"));
        assert_eq!(why.reason(), "inhibited");
        assert!(
            why.detail()
                .starts_with("inhibited by rule \"crit\" (inhibit_rules[0])"),
            "{}",
            why.detail()
        );
    }

    #[test]
    fn time_intervals_mute_whole_routes() {
        let e = env();
        let night = &e.route.find(&[0]).unwrap().opts;
        let office = &e.route.find(&[1]).unwrap().opts;
        let m = || Muting {
            kept: vec![alert("a=1", None)],
            muted: vec![],
        };
        assert_eq!(
            time_stage(m(), &e.intervals, night, NIGHT).muted[0].1,
            Suppression::MutedByInterval("nights".into())
        );
        assert!(time_stage(m(), &e.intervals, night, NOON).muted.is_empty());
        assert_eq!(
            time_stage(m(), &e.intervals, office, NIGHT).muted[0].1,
            Suppression::OutsideActiveIntervals
        );
        assert_eq!(time_stage(m(), &e.intervals, office, NOON).kept.len(), 1);
        assert_eq!(
            time_stage(m(), &e.intervals, &e.route.opts, NIGHT)
                .kept
                .len(),
            1
        );
    }

    #[test]
    fn silences_hold_back_matching_alerts() {
        let mut s = Silences::default();
        let id = s
            .set(
                PostedSilence {
                    id: None,
                    matchers: vec![SilenceMatcher {
                        name: "a".into(),
                        value: "1".into(),
                        is_regex: false,
                        is_equal: true,
                    }],
                    starts_at: NOON,
                    ends_at: NOON + 60_000,
                    created_by: "me".into(),
                    comment: "x".into(),
                },
                NOON,
            )
            .unwrap()
            .id;
        let m = Muting {
            kept: vec![alert("a=1", None), alert("a=2", None)],
            muted: vec![],
        };
        let out = silence_stage(m.clone(), &s, NOON + 1);
        assert_eq!(names(&out.kept), [r#"{a="2"}"#]);
        assert_eq!(out.muted[0].1, Suppression::Silenced(vec![id.clone()]));
        assert_eq!(out.muted[0].1.detail(), format!("silenced by {id}"));
        // Expired at the end of its window.
        assert_eq!(silence_stage(m, &s, NOON + 60_000).kept.len(), 2);
    }

    #[test]
    fn dedup_per_integration_and_send_resolved() {
        let e = env();
        let opts = &e.route.opts;
        let now = NOON;
        let firing = alert("a=1", None);
        let resolved = alert("a=2", Some(now - 1));
        let m = Muting {
            kept: vec![firing.clone(), resolved.clone()],
            muted: vec![],
        };
        let Decision::Send {
            reason,
            alerts,
            nflog,
        } = decide(&m, None, true, opts, now)
        else {
            panic!()
        };
        assert_eq!(reason, SendReason::FirstNotification);
        assert_eq!(alerts.len(), 2);
        assert_eq!((nflog.firing.len(), nflog.resolved.len()), (1, 1));
        // Without send_resolved only the firing alert goes.
        let Decision::Send { alerts, .. } = decide(&m, None, false, opts, now) else {
            panic!()
        };
        assert_eq!(names(&alerts), [r#"{a="1"}"#]);
        // Logged already: unchanged.
        assert_eq!(
            decide(&m, Some(&nflog), true, opts, now + 1),
            Decision::Unchanged
        );
        // Only resolved, send_resolved off: the log is updated, nothing sent.
        let only = Muting {
            kept: vec![alert("a=1", Some(now))],
            muted: vec![],
        };
        assert!(matches!(
            decide(&only, Some(&nflog), false, opts, now + 1),
            Decision::Record {
                reason: SendReason::Resolved,
                ..
            }
        ));
    }

    #[test]
    fn resolved_while_muted_goes_out_only_when_asked() {
        let e = env();
        let mut opts = e.route.opts.clone();
        let now = NOON;
        let before = NflogEntry::new(
            vec![alert("a=1", None).fingerprint()],
            vec![],
            now - 60_000,
            opts.repeat_interval,
        );
        let m = Muting {
            kept: vec![],
            muted: vec![(
                alert("a=1", Some(now - 5)),
                Suppression::Silenced(vec!["s".into()]),
            )],
        };
        assert_eq!(
            decide(&m, Some(&before), true, &opts, now),
            Decision::Suppressed(Suppression::Silenced(vec!["s".into()]))
        );
        opts.send_resolved_when_muted = true;
        let Decision::Send {
            reason,
            alerts,
            nflog,
        } = decide(&m, Some(&before), true, &opts, now)
        else {
            panic!()
        };
        assert_eq!(reason, SendReason::ResolvedWhileMuted);
        assert_eq!(alerts.len(), 1);
        assert!(nflog.firing.is_empty() && nflog.resolved.len() == 1);
        // Never told it fired: nothing to take back.
        assert!(matches!(
            decide(&m, None, true, &opts, now),
            Decision::Suppressed(_)
        ));
        // Still firing while muted: held back.
        let m = Muting {
            kept: vec![],
            muted: vec![(alert("a=1", None), Suppression::OutsideActiveIntervals)],
        };
        assert!(matches!(
            decide(&m, Some(&before), true, &opts, now),
            Decision::Suppressed(_)
        ));
    }
}
