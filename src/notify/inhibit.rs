//! Inhibition: an alert is not notified while another, more important
//! alert fires (`inhibit_rules`), with Alertmanager's semantics.
//!
//! A target alert is inhibited by a rule when it matches the rule's target
//! matchers and some *firing* source alert matches the source matchers and
//! has the same value as the target for every `equal` label (a label
//! missing on both sides counts as equal). When the target itself also
//! matches the source matchers, source alerts that also match the target
//! matchers do not count, so an alert never inhibits itself (nor its
//! peers of the same kind).
//!
//! Third stage of the pipeline (after routing and grouping). Pure: the
//! caller passes the alerts and `now`; nothing is cached across calls
//! except what [`InhibitIndex`] builds for one evaluation.

use std::collections::HashMap;

use crate::config::notify::InhibitRuleConfig;
use crate::model::{Alert, Labels, Matcher, Timestamp};

/// Why an alert is inhibited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inhibition {
    /// Index of the rule in `inhibit_rules`.
    pub rule: usize,
    /// Fingerprint of one source alert that inhibits.
    pub source: u64,
}

/// The configured rules.
#[derive(Debug, Clone, Default)]
pub struct Inhibitor {
    rules: Vec<InhibitRuleConfig>,
}

fn all_match(ms: &[Matcher], l: &Labels) -> bool {
    ms.iter().all(|m| m.matches(l.get_or_empty(&m.name)))
}

fn equal_values(rule: &InhibitRuleConfig, l: &Labels) -> Vec<String> {
    rule.equal
        .iter()
        .map(|n| l.get_or_empty(n).to_string())
        .collect()
}

impl Inhibitor {
    pub fn new(rules: &[InhibitRuleConfig]) -> Self {
        Inhibitor {
            rules: rules.to_vec(),
        }
    }

    pub fn rules(&self) -> &[InhibitRuleConfig] {
        &self.rules
    }

    /// Whether an alert with `target` labels is inhibited by one of
    /// `alerts` (any alerts: resolved ones at `now` are skipped). Scans the
    /// alerts once per matching rule; to check many targets against the
    /// same alerts, build an [`InhibitIndex`] once instead.
    pub fn is_inhibited<'a>(
        &self,
        target: &Labels,
        alerts: impl IntoIterator<Item = &'a Alert> + Clone,
        now: Timestamp,
    ) -> Option<Inhibition> {
        for (i, rule) in self.rules.iter().enumerate() {
            if !all_match(&rule.target_matchers, target) {
                continue;
            }
            let two_sided = all_match(&rule.source_matchers, target);
            let want = equal_values(rule, target);
            let source = alerts.clone().into_iter().find(|a| {
                !a.resolved_at(now)
                    && all_match(&rule.source_matchers, &a.labels)
                    && equal_values(rule, &a.labels) == want
                    && !(two_sided && all_match(&rule.target_matchers, &a.labels))
            });
            if let Some(a) = source {
                return Some(Inhibition {
                    rule: i,
                    source: a.fingerprint(),
                });
            }
        }
        None
    }

    /// Indexes the firing source alerts among `alerts` (at `now`) by rule
    /// and `equal` values, so each check is a few hash lookups.
    pub fn index<'a>(
        &self,
        alerts: impl IntoIterator<Item = &'a Alert>,
        now: Timestamp,
    ) -> InhibitIndex<'_> {
        let mut per_rule: Vec<HashMap<Vec<String>, Sources>> =
            vec![HashMap::new(); self.rules.len()];
        for a in alerts {
            if a.resolved_at(now) {
                continue;
            }
            for (i, rule) in self.rules.iter().enumerate() {
                if !all_match(&rule.source_matchers, &a.labels) {
                    continue;
                }
                let e = per_rule[i]
                    .entry(equal_values(rule, &a.labels))
                    .or_default();
                let fp = a.fingerprint();
                e.any.get_or_insert(fp);
                if !all_match(&rule.target_matchers, &a.labels) {
                    e.not_target.get_or_insert(fp);
                }
            }
        }
        InhibitIndex {
            inhibitor: self,
            per_rule,
        }
    }
}

/// Source alerts of one rule with one set of `equal` values.
#[derive(Debug, Clone, Default)]
struct Sources {
    /// Some source alert.
    any: Option<u64>,
    /// Some source alert that does not match the target matchers (the only
    /// kind that may inhibit a target that is itself a source).
    not_target: Option<u64>,
}

/// The firing source alerts of one moment, indexed for checking targets.
#[derive(Debug, Clone)]
pub struct InhibitIndex<'r> {
    inhibitor: &'r Inhibitor,
    per_rule: Vec<HashMap<Vec<String>, Sources>>,
}

impl InhibitIndex<'_> {
    /// The first rule (in config order) that inhibits `target`.
    pub fn is_inhibited(&self, target: &Labels) -> Option<Inhibition> {
        for (i, rule) in self.inhibitor.rules.iter().enumerate() {
            if !all_match(&rule.target_matchers, target) {
                continue;
            }
            let Some(s) = self.per_rule[i].get(&equal_values(rule, target)) else {
                continue;
            };
            let source = if all_match(&rule.source_matchers, target) {
                s.not_target
            } else {
                s.any
            };
            if let Some(source) = source {
                return Some(Inhibition { rule: i, source });
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::config::notify::parse_matchers;
    use std::collections::BTreeMap;

    fn rule(source: &str, target: &str, equal: &[&str]) -> InhibitRuleConfig {
        InhibitRuleConfig {
            name: None,
            source_matchers: parse_matchers(source).unwrap(),
            target_matchers: parse_matchers(target).unwrap(),
            equal: equal.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn alert(l: &str, ends_at: Option<Timestamp>) -> Alert {
        Alert {
            labels: Labels::from_pairs(l.split(',').filter(|p| !p.is_empty()).map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })),
            annotations: BTreeMap::new(),
            starts_at: 0,
            ends_at,
            updated_at: 0,
            generator_url: String::new(),
        }
    }

    /// Every case is checked both ways (scan and index) and must agree.
    fn check(inh: &Inhibitor, alerts: &[Alert], target: &str, want: Option<usize>) {
        let now = 1000;
        let t = alert(target, None).labels;
        let scan = inh.is_inhibited(&t, alerts.iter(), now);
        let index = inh.index(alerts.iter(), now).is_inhibited(&t);
        assert_eq!(scan.map(|i| i.rule), want, "scan, target {target}");
        assert_eq!(index.map(|i| i.rule), want, "index, target {target}");
    }

    #[test]
    fn critical_inhibits_warning_with_equal_labels() {
        let inh = Inhibitor::new(&[rule(
            "severity=critical",
            "severity=warning",
            &["alertname", "cluster"],
        )]);
        let alerts = [
            alert("alertname=Disk,cluster=a,severity=critical", None),
            alert("alertname=Cpu,severity=critical", None),
            // Resolved sources do not inhibit.
            alert("alertname=Mem,cluster=a,severity=critical", Some(500)),
        ];
        check(
            &inh,
            &alerts,
            "alertname=Disk,cluster=a,severity=warning",
            Some(0),
        );
        check(
            &inh,
            &alerts,
            "alertname=Disk,cluster=b,severity=warning",
            None,
        );
        // cluster missing on both sides counts as equal.
        check(&inh, &alerts, "alertname=Cpu,severity=warning", Some(0));
        check(
            &inh,
            &alerts,
            "alertname=Mem,cluster=a,severity=warning",
            None,
        );
        // Not a target.
        check(
            &inh,
            &alerts,
            "alertname=Disk,cluster=a,severity=info",
            None,
        );
        check(&inh, &[], "alertname=Disk,cluster=a,severity=warning", None);
    }

    #[test]
    fn an_alert_does_not_inhibit_itself() {
        // Source and target matchers both match every "Down" alert.
        let inh = Inhibitor::new(&[rule("alertname=Down", "alertname=Down", &[])]);
        let me = alert("alertname=Down,instance=a", None);
        check(
            &inh,
            std::slice::from_ref(&me),
            "alertname=Down,instance=a",
            None,
        );
        // Nor do its peers that are also targets.
        let peers = [me.clone(), alert("alertname=Down,instance=b", None)];
        check(&inh, &peers, "alertname=Down,instance=a", None);
        // A source that is not a target still inhibits a two-sided target.
        let inh = Inhibitor::new(&[rule("alertname=~Down|Up", "alertname=Down", &[])]);
        let both = [me, alert("alertname=Up", None)];
        check(&inh, &both, "alertname=Down,instance=a", Some(0));
    }

    #[test]
    fn first_matching_rule_wins() {
        let inh = Inhibitor::new(&[
            rule("x=1", "t=1", &[]),
            rule("y=1", "t=1", &[]),
            rule("z=1", "t=1", &["zone"]),
        ]);
        let alerts = [alert("y=1", None), alert("z=1,zone=a", None)];
        check(&inh, &alerts, "t=1", Some(1));
        check(&inh, &alerts[1..], "t=1,zone=a", Some(2));
        check(&inh, &alerts[1..], "t=1", None);
        let i = inh.is_inhibited(&alert("t=1", None).labels, alerts.iter(), 0);
        assert_eq!(i.map(|i| i.source), Some(alerts[0].fingerprint()));
    }
}
