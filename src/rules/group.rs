//! One rule group's evaluation: its rules in order at one timestamp, each
//! rule's results committed before the next rule runs (so later rules see
//! earlier recordings), staleness markers for series a rule stopped
//! producing, and the alerts to send.
//!
//! Used by the group loops of the manager and by the promtool-format unit
//! test runner alike, so both have exactly the same semantics. Synchronous
//! and CPU-bound: callers run it off the async runtime.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::alerting::{AlertingState, duration_ms};
use super::file::{Rule, RuleGroup, RuleIdentity};
use super::{EvalEnv, RuleEvalError, RuleHealth};
use crate::model::{Alert, Labels, Timestamp, stale_nan};
use crate::storage::{AppendError, Storage};

/// Runtime state of one rule.
#[derive(Debug, Clone)]
pub(crate) struct RuleRuntime {
    pub health: RuleHealth,
    pub last_error: Option<String>,
    pub last_eval: Option<Timestamp>,
    pub eval_duration: Duration,
    /// Series the rule wrote at its last successful evaluation; the ones
    /// missing next time get a staleness marker.
    pub prev_series: HashSet<Labels>,
    /// Alert state (alerting rules only).
    pub alerts: Option<AlertingState>,
}

impl RuleRuntime {
    fn new(rule: &Rule) -> Self {
        RuleRuntime {
            health: RuleHealth::Unknown,
            last_error: None,
            last_eval: None,
            eval_duration: Duration::ZERO,
            prev_series: HashSet::new(),
            alerts: matches!(rule, Rule::Alerting(_)).then(AlertingState::default),
        }
    }
}

/// Runtime state of one group.
#[derive(Debug, Clone)]
pub(crate) struct GroupRuntime {
    pub def: Arc<RuleGroup>,
    pub rules: Vec<RuleRuntime>,
    /// Series of rules removed by a reload, marked stale at the next
    /// evaluation (after the new rules had their chance to write them).
    pub stale_series: Vec<Labels>,
    pub last_eval: Option<Timestamp>,
    pub last_duration: Duration,
}

/// What one group evaluation produced.
#[derive(Debug, Default)]
pub(crate) struct GroupEvalOutcome {
    pub to_send: Vec<Alert>,
    /// Alert state that persistence keeps changed.
    pub changed: bool,
    pub samples: usize,
    /// (rule index, error text) of rules that failed.
    pub errors: Vec<(usize, String)>,
    /// Per-rule evaluation durations, for the metrics.
    pub rule_durations: Vec<Duration>,
}

impl GroupRuntime {
    pub(crate) fn new(def: Arc<RuleGroup>) -> Self {
        let rules = def.rules.iter().map(RuleRuntime::new).collect();
        GroupRuntime {
            def,
            rules,
            stale_series: Vec::new(),
            last_eval: None,
            last_duration: Duration::ZERO,
        }
    }

    /// Takes over the state of the group this one replaces: rules with the
    /// same identity keep their alerts and written series; the series of
    /// rules that are gone are marked stale at the next evaluation.
    pub(crate) fn copy_state_from(&mut self, old: GroupRuntime) {
        self.last_eval = old.last_eval;
        self.last_duration = old.last_duration;
        self.stale_series = old.stale_series;
        let mut by_id: std::collections::HashMap<RuleIdentity, Vec<usize>> =
            std::collections::HashMap::new();
        for (i, r) in old.def.rules.iter().enumerate() {
            by_id.entry(r.identity()).or_default().push(i);
        }
        let mut old_rules: Vec<Option<RuleRuntime>> = old.rules.into_iter().map(Some).collect();
        for (i, r) in self.def.rules.iter().enumerate() {
            let Some(slot) = by_id.get_mut(&r.identity()).and_then(|v| {
                if v.is_empty() {
                    None
                } else {
                    Some(v.remove(0))
                }
            }) else {
                continue;
            };
            let Some(o) = old_rules[slot].take() else {
                continue;
            };
            let new = &mut self.rules[i];
            new.prev_series = o.prev_series;
            new.health = o.health;
            new.last_error = o.last_error;
            new.last_eval = o.last_eval;
            new.eval_duration = o.eval_duration;
            if new.alerts.is_some() && o.alerts.is_some() {
                new.alerts = o.alerts;
            }
        }
        for o in old_rules.into_iter().flatten() {
            self.stale_series.extend(o.prev_series);
        }
    }

    /// Every series this group wrote last (for staleness markers when the
    /// group is removed).
    pub(crate) fn written_series(&self) -> Vec<Labels> {
        let mut out: Vec<Labels> = self
            .rules
            .iter()
            .flat_map(|r| r.prev_series.iter().cloned())
            .collect();
        out.extend(self.stale_series.iter().cloned());
        out
    }

    /// Evaluates every rule in order at `ts`.
    pub(crate) fn eval(&mut self, env: &EvalEnv<'_>, ts: Timestamp) -> GroupEvalOutcome {
        let started = Instant::now();
        let query_ts = ts - duration_ms(env.query_offset);
        let mut out = GroupEvalOutcome::default();
        let def = self.def.clone();
        for (i, rule) in def.rules.iter().enumerate() {
            let rule_started = Instant::now();
            let rt = &mut self.rules[i];
            let result: Result<Vec<(Labels, f64)>, RuleEvalError> = match rule {
                Rule::Recording(r) => record(env, r, query_ts, def.limit),
                Rule::Alerting(a) => {
                    let state = rt.alerts.get_or_insert_with(AlertingState::default);
                    state.eval(a, env, ts, query_ts, def.limit).map(|e| {
                        out.changed |= e.changed;
                        e.samples
                    })
                }
            };
            rt.last_eval = Some(ts);
            match result {
                Err(e) => {
                    rt.health = RuleHealth::Bad;
                    rt.last_error = Some(e.to_string());
                    out.errors.push((i, e.to_string()));
                }
                Ok(samples) => {
                    rt.health = RuleHealth::Good;
                    rt.last_error = None;
                    if let (Rule::Alerting(a), Some(state)) = (rule, rt.alerts.as_mut()) {
                        let sent = state.take_to_send(a, env, ts);
                        out.changed |= !sent.is_empty();
                        out.to_send.extend(sent);
                    }
                    out.samples += samples.len();
                    match write(env.storage, &samples, &rt.prev_series, query_ts) {
                        Ok(written) => rt.prev_series = written,
                        Err(e) => {
                            rt.health = RuleHealth::Bad;
                            let msg = format!("storing results: {e}");
                            rt.last_error = Some(msg.clone());
                            out.errors.push((i, msg));
                        }
                    }
                }
            }
            rt.eval_duration = rule_started.elapsed();
            out.rule_durations.push(rt.eval_duration);
        }
        if !self.stale_series.is_empty() {
            let mut app = env.storage.appender();
            for s in &self.stale_series {
                // Out of order / duplicate: a current rule wrote the series
                // at this or a later time, so it is not stale.
                let _ = app.append(s, query_ts, stale_nan());
            }
            if app.commit().is_ok() {
                self.stale_series.clear();
            }
        }
        self.last_eval = Some(ts);
        self.last_duration = started.elapsed();
        out
    }
}

/// A recording rule's samples: the result renamed, with the rule's labels.
fn record(
    env: &EvalEnv<'_>,
    r: &super::file::RecordingRule,
    query_ts: Timestamp,
    limit: usize,
) -> Result<Vec<(Labels, f64)>, RuleEvalError> {
    let result = super::query_vector(env, &r.expr, query_ts)?;
    let mut out = Vec::with_capacity(result.len());
    let mut seen = HashSet::with_capacity(result.len());
    for (metric, v) in result {
        let mut lb = metric.builder();
        lb.set(crate::model::METRIC_NAME, r.record.as_str());
        for l in &r.labels {
            lb.set(&l.name, l.value.as_str());
        }
        let labels = lb.into_labels();
        if !seen.insert(labels.clone()) {
            return Err(RuleEvalError::DuplicateRuleLabels);
        }
        out.push((labels, v));
    }
    if limit > 0 && out.len() > limit {
        return Err(RuleEvalError::SeriesLimit {
            limit,
            got: out.len(),
        });
    }
    Ok(out)
}

/// Writes `samples` at `t` and staleness markers for series of `prev` that
/// are not among them; returns the series written. Samples storage
/// refuses (out of order, duplicate) are skipped, as Prometheus does.
fn write(
    storage: &dyn Storage,
    samples: &[(Labels, f64)],
    prev: &HashSet<Labels>,
    t: Timestamp,
) -> Result<HashSet<Labels>, crate::storage::StorageError> {
    let mut app = storage.appender();
    let mut written = HashSet::with_capacity(samples.len());
    for (l, v) in samples {
        match app.append(l, t, *v) {
            Ok(_) => {
                written.insert(l.clone());
            }
            Err(AppendError::OutOfOrder | AppendError::Duplicate | AppendError::UnknownRef) => {}
        }
    }
    for l in prev {
        if !written.contains(l) {
            let _ = app.append(l, t, stale_nan());
        }
    }
    app.commit()?;
    Ok(written)
}
