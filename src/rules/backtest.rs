//! Backtest: replays one alerting rule over stored history and reports
//! when it would have fired and resolved, for one or more `for` values
//! (`watchpost rules backtest`, `/api/v1/rules/backtest`).
//!
//! The replay is the live state machine ([`AlertingState`]), not a
//! re-implementation: at every step from `start` to `end` the rule's query
//! runs once against the storage, and its answer is fed to one state per
//! `for` value, so templates, `keep_firing_for` and `keep_firing_while`
//! mean what they mean in production. State starts empty at `start`, as
//! after a restart without persisted state. Nothing is written back and
//! nothing is sent.
//!
//! Bounded: at most [`MAX_EVALUATIONS`] steps, [`MAX_FORS`] `for` values
//! and [`MAX_EPISODES`] listed alerts per `for` value (the rest counted);
//! every query has the engine's timeout and the caller's cancel flag.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::alerting::{AlertingState, duration_ms};
use super::{AlertState, AlertingRule, EvalEnv, RuleEvalError};
use crate::model::{Labels, Timestamp};
use crate::promql::{Engine, EvalError, ExecOptions};
use crate::storage::Storage;

/// Most evaluation steps one backtest runs (a week at 6 s, 69 days at 1m).
pub const MAX_EVALUATIONS: i64 = 100_000;
/// Most `for` values compared in one backtest.
pub const MAX_FORS: usize = 10;
/// Most alert episodes listed per `for` value; later ones are counted.
pub const MAX_EPISODES: usize = 10_000;

/// What to replay.
#[derive(Debug, Clone)]
pub struct BacktestOptions {
    /// First evaluation time.
    pub start: Timestamp,
    /// Last evaluation time (inclusive when on the step grid).
    pub end: Timestamp,
    /// Time between evaluations: the group's interval, normally.
    pub step: Duration,
    /// The `for` values to compare; each gets its own alert state.
    pub fors: Vec<Duration>,
    /// Queries run this much before each evaluation time (the group's
    /// `query_offset`).
    pub query_offset: Duration,
    /// For templates (`$externalLabels`).
    pub external_labels: Labels,
    /// For templates (`$externalURL`).
    pub external_url: String,
    /// Engine options for every query (timeout, cancel flag).
    pub exec: ExecOptions,
}

/// One time an alert fired.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// The alert's labels (rule labels and `alertname` included).
    pub labels: Labels,
    /// When it became pending.
    pub active_at: Timestamp,
    pub fired_at: Timestamp,
    /// `None` when still firing at the last evaluation.
    pub resolved_at: Option<Timestamp>,
}

impl Episode {
    /// Milliseconds spent firing, up to `end` when unresolved.
    pub fn firing_ms(&self, end: Timestamp) -> i64 {
        self.resolved_at.unwrap_or(end) - self.fired_at
    }
}

/// The replay under one `for` value.
#[derive(Debug, Clone, PartialEq)]
pub struct ForOutcome {
    pub for_: Duration,
    /// Fired alerts in order of firing (then labels), at most
    /// [`MAX_EPISODES`].
    pub episodes: Vec<Episode>,
    /// Episodes past [`MAX_EPISODES`], not listed.
    pub more_episodes: usize,
    /// Alerts that went pending and went away without firing: what this
    /// `for` value kept quiet.
    pub pending_only: usize,
    /// Alerts still pending at the last evaluation.
    pub pending_at_end: usize,
    /// Milliseconds firing over all episodes (listed or not), up to the
    /// last evaluation.
    pub firing_ms: i64,
}

/// The result of a backtest.
#[derive(Debug, Clone, PartialEq)]
pub struct Backtest {
    /// Evaluation times: `start`, `start + step`, ... up to `end`.
    pub evaluations: usize,
    /// Timestamp of the last evaluation.
    pub last: Timestamp,
    /// Evaluations whose query failed (state unchanged, as live).
    pub failed: usize,
    /// The first failure, when any.
    pub first_error: Option<(Timestamp, String)>,
    /// One per requested `for` value, in request order.
    pub outcomes: Vec<ForOutcome>,
}

/// Why a backtest could not run.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error("end ({end}) is before start ({start})")]
    Range { start: Timestamp, end: Timestamp },
    #[error("step must be positive")]
    ZeroStep,
    #[error(
        "{steps} evaluations from start to end at this step: at most {MAX_EVALUATIONS}; use a larger step or a shorter range"
    )]
    TooManySteps { steps: i64 },
    #[error("{0} for values: at most {MAX_FORS}")]
    TooManyFors(usize),
    #[error("the backtest was canceled")]
    Canceled,
}

/// Replays `rule` over `storage` as [`BacktestOptions`] say.
pub fn backtest(
    storage: &dyn Storage,
    engine: &Engine,
    rule: &AlertingRule,
    o: &BacktestOptions,
) -> Result<Backtest, BacktestError> {
    if o.end < o.start {
        return Err(BacktestError::Range {
            start: o.start,
            end: o.end,
        });
    }
    let step = duration_ms(o.step);
    if step <= 0 {
        return Err(BacktestError::ZeroStep);
    }
    let steps = (o.end - o.start) / step + 1;
    if steps > MAX_EVALUATIONS {
        return Err(BacktestError::TooManySteps { steps });
    }
    if o.fors.len() > MAX_FORS {
        return Err(BacktestError::TooManyFors(o.fors.len()));
    }
    let fors = if o.fors.is_empty() {
        vec![rule.for_]
    } else {
        o.fors.clone()
    };
    let env = EvalEnv {
        storage,
        engine,
        exec: o.exec.clone(),
        external_labels: &o.external_labels,
        external_url: &o.external_url,
        interval: o.step,
        query_offset: o.query_offset,
        resend_delay: Duration::from_secs(60),
        // Templates calling `query` would see the present, not the replayed
        // moment: they show an error text instead.
        template_query: None,
    };
    let mut variants: Vec<Variant> = fors
        .iter()
        .map(|f| Variant {
            rule: AlertingRule {
                for_: *f,
                ..rule.clone()
            },
            state: AlertingState::default(),
            open: HashMap::new(),
            out: ForOutcome {
                for_: *f,
                episodes: Vec::new(),
                more_episodes: 0,
                pending_only: 0,
                pending_at_end: 0,
                firing_ms: 0,
            },
        })
        .collect();
    let mut out = Backtest {
        evaluations: 0,
        last: o.start,
        failed: 0,
        first_error: None,
        outcomes: Vec::new(),
    };
    let offset = duration_ms(o.query_offset);
    let mut ts = o.start;
    while ts <= o.end {
        if o.exec
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Acquire))
        {
            return Err(BacktestError::Canceled);
        }
        out.evaluations += 1;
        out.last = ts;
        match super::query_vector(&env, &rule.expr, ts - offset) {
            Err(RuleEvalError::Query(EvalError::Canceled)) => return Err(BacktestError::Canceled),
            Err(e) => out.fail(ts, e),
            Ok(result) => {
                // The variants see the same answer, so they fail alike
                // (duplicate alert labels): one failed evaluation.
                let mut failed = None;
                for v in &mut variants {
                    if let Err(e) = v.step(&env, ts, ts - offset, result.clone()) {
                        failed.get_or_insert(e);
                    }
                }
                if let Some(e) = failed {
                    out.fail(ts, e);
                }
            }
        }
        ts += step;
    }
    out.outcomes = variants
        .into_iter()
        .map(|mut v| {
            // Still firing at the last evaluation: listed unresolved,
            // firing up to it.
            for fired_at in v.open.into_values().map(|o| o.fired_at) {
                v.out.firing_ms += out.last - fired_at;
            }
            v.out.pending_at_end = v
                .state
                .active
                .values()
                .filter(|a| a.state == AlertState::Pending)
                .count();
            v.out
        })
        .collect();
    Ok(out)
}

impl Backtest {
    fn fail(&mut self, ts: Timestamp, e: RuleEvalError) {
        self.failed += 1;
        if self.first_error.is_none() {
            self.first_error = Some((ts, e.to_string()));
        }
    }
}

/// One `for` value's rule, state and findings.
struct Variant {
    rule: AlertingRule,
    state: AlertingState,
    /// Firing alerts by labels.
    open: HashMap<Labels, Open>,
    out: ForOutcome,
}

/// A firing alert of a [`Variant`].
struct Open {
    /// Its episode in `out.episodes`; `None` past [`MAX_EPISODES`].
    index: Option<usize>,
    fired_at: Timestamp,
}

impl Variant {
    fn step(
        &mut self,
        env: &EvalEnv<'_>,
        ts: Timestamp,
        query_ts: Timestamp,
        result: Vec<(Labels, f64)>,
    ) -> Result<(), RuleEvalError> {
        let pending: Vec<Labels> = self
            .state
            .active
            .values()
            .filter(|a| a.state == AlertState::Pending)
            .map(|a| a.labels.clone())
            .collect();
        self.state.apply(&self.rule, env, ts, query_ts, result, 0)?;
        for l in pending {
            if self
                .state
                .active
                .get(&l)
                .is_none_or(|a| a.state == AlertState::Inactive)
            {
                self.out.pending_only += 1;
            }
        }
        let mut fired: Vec<Episode> = Vec::new();
        for a in self.state.active.values() {
            match a.state {
                AlertState::Firing if a.fired_at == Some(ts) => fired.push(Episode {
                    labels: a.labels.clone(),
                    active_at: a.active_at,
                    fired_at: ts,
                    resolved_at: None,
                }),
                AlertState::Inactive if a.resolved_at == Some(ts) => {
                    if let Some(o) = self.open.remove(&a.labels) {
                        self.out.firing_ms += ts - o.fired_at;
                        if let Some(e) = o.index.and_then(|i| self.out.episodes.get_mut(i)) {
                            e.resolved_at = Some(ts);
                        }
                    }
                }
                _ => {}
            }
        }
        fired.sort_by(|a, b| a.labels.cmp(&b.labels));
        for e in fired {
            let index = (self.out.episodes.len() < MAX_EPISODES).then_some(self.out.episodes.len());
            self.open.insert(
                e.labels.clone(),
                Open {
                    index,
                    fired_at: e.fired_at,
                },
            );
            if index.is_some() {
                self.out.episodes.push(e);
            } else {
                self.out.more_episodes += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::EngineOptions;
    use crate::storage::mem::MemStorage;

    const MIN: i64 = 60_000;

    fn rule(text: &str) -> AlertingRule {
        let groups = super::super::parse_str(text, "t.yml", Default::default()).unwrap();
        match &groups[0].rules[0] {
            super::super::Rule::Alerting(a) => a.clone(),
            super::super::Rule::Recording(_) => panic!("not an alerting rule"),
        }
    }

    fn opts(end: Timestamp, fors: &[u64]) -> BacktestOptions {
        BacktestOptions {
            start: 0,
            end,
            step: Duration::from_secs(60),
            fors: fors.iter().map(|m| Duration::from_secs(m * 60)).collect(),
            query_offset: Duration::ZERO,
            external_labels: Labels::empty(),
            external_url: String::new(),
            exec: ExecOptions::default(),
        }
    }

    /// `name{instance}` at 1 every minute over `[from, to)` minutes, 0
    /// elsewhere up to 30m.
    fn series(st: &MemStorage, name: &str, instance: &str, from: i64, to: i64) {
        let l = Labels::from_pairs([("__name__", name), ("instance", instance)]);
        let mut app = st.appender();
        for m in 0..=30 {
            let v = if (from..to).contains(&m) { 1.0 } else { 0.0 };
            app.append(&l, m * MIN, v).unwrap();
        }
        app.commit().unwrap();
    }

    #[test]
    fn failed_evaluations_are_counted_and_change_nothing() {
        let st = MemStorage::new();
        let engine = Engine::new(EngineOptions::default());
        series(&st, "a", "x", 5, 20);
        // From 10m to 12m `b` also returns instance x: two series with the
        // same alert labels, which fails the evaluation (as live).
        series(&st, "b", "x", 10, 12);
        let r = rule("groups: [{name: g, rules: [{alert: Up, expr: '{__name__=~\"a|b\"} == 1'}]}]");
        let b = backtest(&st, &engine, &r, &opts(30 * MIN, &[0, 3])).unwrap();
        assert_eq!(b.evaluations, 31);
        assert_eq!(b.failed, 2);
        let (t, e) = b.first_error.unwrap();
        assert_eq!(t, 10 * MIN);
        assert!(e.contains("same labelset"), "{e}");
        for (o, fired) in b.outcomes.iter().zip([5, 8]) {
            assert_eq!(o.episodes.len(), 1, "{o:?}");
            let ep = &o.episodes[0];
            assert_eq!(ep.active_at, 5 * MIN);
            assert_eq!(ep.fired_at, fired * MIN);
            assert_eq!(ep.resolved_at, Some(20 * MIN));
            assert_eq!(o.firing_ms, (20 - fired) * MIN);
        }
    }

    #[test]
    fn bounds_are_checked_before_any_query() {
        let st = MemStorage::new();
        let engine = Engine::new(EngineOptions::default());
        let r = rule("groups: [{name: g, rules: [{alert: A, expr: up == 0}]}]");
        let mut o = opts(MAX_EVALUATIONS * MIN, &[]);
        assert!(matches!(
            backtest(&st, &engine, &r, &o),
            Err(BacktestError::TooManySteps { steps }) if steps == MAX_EVALUATIONS + 1
        ));
        o.end = -1;
        assert!(matches!(
            backtest(&st, &engine, &r, &o),
            Err(BacktestError::Range { .. })
        ));
        let o = opts(MIN, &[1; MAX_FORS + 1]);
        assert!(matches!(
            backtest(&st, &engine, &r, &o),
            Err(BacktestError::TooManyFors(11))
        ));
        let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let mut o = opts(MIN, &[]);
        o.exec.cancel = Some(cancel);
        assert!(matches!(
            backtest(&st, &engine, &r, &o),
            Err(BacktestError::Canceled)
        ));
    }
}
