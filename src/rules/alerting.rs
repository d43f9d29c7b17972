//! The alert state machine of one alerting rule, with Prometheus's
//! semantics: inactive -> pending (`for`) -> firing -> (`keep_firing_for`,
//! `keep_firing_while`) -> resolved, resolved alerts kept for 15 minutes so
//! their resolution is re-sent, `ALERTS` / `ALERTS_FOR_STATE` samples, and
//! the group `limit`.
//!
//! Pure with respect to time: every decision takes the evaluation
//! timestamp it is given. Queries go through the engine against the
//! storage handed in; writing the returned samples and sending the alerts
//! is the group's job (`group.rs`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use super::file::AlertingRule;
use super::template::{TemplateData, TemplateFuncs};
use super::{AlertState, EvalEnv, RuleEvalError};
use crate::model::{Alert, Labels, METRIC_NAME, Timestamp};

/// How long a resolved alert is kept (and its resolution re-sent), as in
/// Prometheus.
pub(crate) const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// One alert instance of a rule: an identifying label set and its state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AlertInstance {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    /// The sample value of the latest evaluation that returned the alert.
    pub value: f64,
    /// When the alert became pending (its `for` timer start).
    pub active_at: Timestamp,
    pub fired_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub last_sent_at: Option<Timestamp>,
    pub valid_until: Option<Timestamp>,
    /// Since when a firing alert is kept firing by `keep_firing_for` or
    /// `keep_firing_while` although its expression no longer returns it.
    pub keep_firing_since: Option<Timestamp>,
}

impl AlertInstance {
    /// Prometheus's `needsSending`: firing alerts every `resend_delay`,
    /// resolved ones once right away and then every `resend_delay` until
    /// they are dropped.
    fn needs_sending(&self, ts: Timestamp, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        let last = self.last_sent_at;
        if let Some(r) = self.resolved_at
            && last.is_none_or(|l| r > l)
        {
            return true;
        }
        last.is_none_or(|l| l + resend_delay_ms < ts)
    }
}

/// Alert state of one alerting rule.
#[derive(Debug, Clone, Default)]
pub(crate) struct AlertingState {
    pub active: HashMap<Labels, AlertInstance>,
}

/// The key `keep_firing_while` matches on: the labels minus `__name__`,
/// `alertname` and the names of the rule's own labels. A firing alert is
/// kept while the `keep_firing_while` expression returns a series with the
/// same key, so `cpu > 0.8` keeps `cpu > 0.9`'s alerts for the same
/// instance whatever labels the rule adds.
pub(crate) fn keep_firing_key(labels: &Labels, rule_labels: &Labels) -> Labels {
    let mut b = labels.builder();
    b.retain(|l| l.name != METRIC_NAME && l.name != "alertname" && !rule_labels.contains(&l.name));
    b.into_labels()
}

/// What one evaluation of a rule produced.
pub(crate) struct AlertingEval {
    /// `ALERTS` and `ALERTS_FOR_STATE` samples to write.
    pub samples: Vec<(Labels, f64)>,
    /// Whether anything that persistence keeps changed.
    pub changed: bool,
}

impl AlertingState {
    /// Evaluates the rule at `ts`; `query_ts` is `ts` minus the group's
    /// query offset (the time queries run at and samples are written at).
    pub(crate) fn eval(
        &mut self,
        rule: &AlertingRule,
        env: &EvalEnv<'_>,
        ts: Timestamp,
        query_ts: Timestamp,
        limit: usize,
    ) -> Result<AlertingEval, RuleEvalError> {
        let result = super::query_vector(env, &rule.expr, query_ts)?;
        self.apply(rule, env, ts, query_ts, result, limit)
    }

    /// The state change of one evaluation at `ts` whose query returned
    /// `result`. Split from [`AlertingState::eval`] so a backtest can feed
    /// one query's answer to several variants of a rule (other `for`
    /// values); `keep_firing_while` is still queried here, when needed.
    pub(crate) fn apply(
        &mut self,
        rule: &AlertingRule,
        env: &EvalEnv<'_>,
        ts: Timestamp,
        query_ts: Timestamp,
        result: Vec<(Labels, f64)>,
        limit: usize,
    ) -> Result<AlertingEval, RuleEvalError> {
        let mut fresh: HashMap<Labels, AlertInstance> = HashMap::with_capacity(result.len());
        let needs_funcs = rule
            .label_templates
            .iter()
            .chain(&rule.annotation_templates)
            .any(|(_, t)| t.needs_funcs());
        let funcs = (needs_funcs && !result.is_empty())
            .then(|| TemplateFuncs::new(env.external_url, ts, env.template_query.clone()));
        for (metric, value) in result {
            let data = TemplateData {
                labels: &metric,
                external_labels: env.external_labels,
                external_url: env.external_url,
                value,
            };
            let mut lb = metric.builder();
            lb.del(METRIC_NAME);
            for (name, t) in &rule.label_templates {
                lb.set(name, t.expand(&data, funcs.as_ref()));
            }
            lb.set("alertname", rule.alert.as_str());
            let labels = lb.into_labels();
            let annotations: BTreeMap<String, String> = rule
                .annotation_templates
                .iter()
                .map(|(k, t)| (k.clone(), t.expand(&data, funcs.as_ref())))
                .collect();
            if fresh.contains_key(&labels) {
                return Err(RuleEvalError::DuplicateAlertLabels);
            }
            fresh.insert(
                labels.clone(),
                AlertInstance {
                    labels,
                    annotations,
                    state: AlertState::Pending,
                    value,
                    active_at: ts,
                    fired_at: None,
                    resolved_at: None,
                    last_sent_at: None,
                    valid_until: None,
                    keep_firing_since: None,
                },
            );
        }

        let mut changed = false;
        let returned: HashSet<Labels> = fresh.keys().cloned().collect();
        for (k, a) in fresh {
            match self.active.get_mut(&k) {
                Some(old) if old.state != AlertState::Inactive => {
                    old.value = a.value;
                    old.annotations = a.annotations;
                }
                _ => {
                    self.active.insert(k, a);
                    changed = true;
                }
            }
        }

        // keep_firing_while is only asked when a firing alert is missing
        // from the result, so a quiet rule costs one query.
        let needs_kfw = rule.keep_firing_while.is_some()
            && self
                .active
                .iter()
                .any(|(k, a)| a.state == AlertState::Firing && !returned.contains(k));
        let kfw_keys: HashSet<Labels> = match (&rule.keep_firing_while, needs_kfw) {
            (Some(q), true) => super::query_vector(env, q, query_ts)?
                .into_iter()
                .map(|(l, _)| keep_firing_key(&l, &rule.labels))
                .collect(),
            _ => HashSet::new(),
        };

        let keep_for_ms = duration_ms(rule.keep_firing_for);
        let hold_ms = duration_ms(rule.for_);
        let mut samples = Vec::new();
        let mut active_count = 0usize;
        let mut remove = Vec::new();
        for (k, a) in self.active.iter_mut() {
            if !returned.contains(k) {
                let mut keep = false;
                if a.state == AlertState::Firing {
                    let since = *a.keep_firing_since.get_or_insert_with(|| {
                        changed = true;
                        ts
                    });
                    keep = (keep_for_ms > 0 && ts - since < keep_for_ms)
                        || kfw_keys.contains(&keep_firing_key(k, &rule.labels));
                }
                let expired = a
                    .resolved_at
                    .is_some_and(|r| ts - r > RESOLVED_RETENTION_MS);
                if a.state == AlertState::Pending || expired {
                    remove.push(k.clone());
                }
                if a.state != AlertState::Inactive && !keep {
                    a.state = AlertState::Inactive;
                    a.resolved_at = Some(ts);
                    a.keep_firing_since = None;
                    changed = true;
                }
                if !keep {
                    continue;
                }
            } else if a.keep_firing_since.take().is_some() {
                changed = true;
            }
            active_count += 1;
            if a.state == AlertState::Pending && ts - a.active_at >= hold_ms {
                a.state = AlertState::Firing;
                a.fired_at = Some(ts);
                changed = true;
            }
            let mut lb = a.labels.builder();
            lb.set(METRIC_NAME, "ALERTS");
            lb.set("alertstate", a.state.as_str());
            samples.push((lb.into_labels(), 1.0));
            let mut lb = a.labels.builder();
            lb.set(METRIC_NAME, "ALERTS_FOR_STATE");
            samples.push((lb.into_labels(), a.active_at.div_euclid(1000) as f64));
        }
        for k in remove {
            self.active.remove(&k);
            changed = true;
        }
        if limit > 0 && active_count > limit {
            self.active.clear();
            return Err(RuleEvalError::AlertLimit {
                limit,
                got: active_count,
            });
        }
        Ok(AlertingEval { samples, changed })
    }

    /// The alerts to hand to notification after an evaluation at `ts`,
    /// marking them sent. Firing alerts are valid for four times the larger
    /// of the resend delay and the group interval, so one or two lost
    /// evaluations or sends do not resolve them (Prometheus's rule).
    pub(crate) fn take_to_send(
        &mut self,
        rule: &AlertingRule,
        env: &EvalEnv<'_>,
        ts: Timestamp,
    ) -> Vec<Alert> {
        let resend = duration_ms(env.resend_delay);
        let delta = resend.max(duration_ms(env.interval));
        let mut out = Vec::new();
        for a in self.active.values_mut() {
            if !a.needs_sending(ts, resend) {
                continue;
            }
            a.last_sent_at = Some(ts);
            a.valid_until = Some(ts + 4 * delta);
            let mut lb = a.labels.builder();
            // External labels go onto outgoing alerts (where the alert does
            // not set the label), as Prometheus's notifier does.
            for l in env.external_labels {
                if lb.get(&l.name).is_none() {
                    lb.set(&l.name, l.value.as_str());
                }
            }
            out.push(Alert {
                labels: lb.into_labels(),
                annotations: a.annotations.clone(),
                starts_at: a.fired_at.unwrap_or(a.active_at),
                ends_at: Some(a.resolved_at.or(a.valid_until).unwrap_or(ts)),
                updated_at: ts,
                generator_url: generator_url(env.external_url, rule.expr.text()),
            });
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Prometheus's link from an alert back to its expression.
pub(crate) fn generator_url(external_url: &str, expr: &str) -> String {
    format!(
        "{}/graph?g0.expr={}&g0.tab=1",
        external_url.trim_end_matches('/'),
        query_escape(expr)
    )
}

/// Go's `url.QueryEscape`: unreserved bytes stay, space becomes `+`,
/// everything else `%XX`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_escape_matches_go() {
        assert_eq!(query_escape("up == 0"), "up+%3D%3D+0");
        assert_eq!(
            query_escape("rate(x{a=\"b\"}[5m])*~"),
            "rate%28x%7Ba%3D%22b%22%7D%5B5m%5D%29%2A~"
        );
        assert_eq!(
            generator_url("http://h:9464/", "up"),
            "http://h:9464/graph?g0.expr=up&g0.tab=1"
        );
    }

    #[test]
    fn keep_firing_key_ignores_name_alertname_and_rule_labels() {
        let rule = Labels::from_pairs([("severity", "page")]);
        let alert = Labels::from_pairs([
            ("alertname", "Hot"),
            ("instance", "a"),
            ("severity", "page"),
        ]);
        let series =
            Labels::from_pairs([("__name__", "cpu"), ("instance", "a"), ("severity", "low")]);
        assert_eq!(
            keep_firing_key(&alert, &rule),
            keep_firing_key(&series, &rule)
        );
    }

    #[test]
    fn sending_follows_prometheus() {
        let mut a = AlertInstance {
            labels: Labels::empty(),
            annotations: BTreeMap::new(),
            state: AlertState::Pending,
            value: 1.0,
            active_at: 0,
            fired_at: None,
            resolved_at: None,
            last_sent_at: None,
            valid_until: None,
            keep_firing_since: None,
        };
        assert!(!a.needs_sending(0, 60_000));
        a.state = AlertState::Firing;
        assert!(a.needs_sending(0, 60_000));
        a.last_sent_at = Some(0);
        assert!(!a.needs_sending(60_000, 60_000));
        assert!(a.needs_sending(60_001, 60_000));
        a.state = AlertState::Inactive;
        a.resolved_at = Some(30_000);
        assert!(a.needs_sending(30_000, 60_000));
        a.last_sent_at = Some(30_000);
        assert!(!a.needs_sending(31_000, 60_000));
    }
}
