//! Rules: Prometheus rule files, group loops, the alert state machine,
//! recording rules, persisted alert state, low-latency (on_scrape)
//! evaluation and promtool-format rule unit tests.
//!
//! Where it sits on the data path: rule groups query storage through the
//! PromQL [`Engine`] (readers' side), write recording-rule results and the
//! `ALERTS` / `ALERTS_FOR_STATE` series back through
//! [`Storage::appender`](crate::storage::Storage::appender) (writers'
//! side), and hand alerts to notification as batches of [`Alert`]s on a
//! channel that `app` wires. It never imports `notify`.
//!
//! Layout:
//! - `file`: rule files -> validated [`RuleGroup`]s (pure, all errors at once);
//! - `template`: the seam to the template language for labels and annotations;
//! - `alerting`: one alerting rule's state machine;
//! - `group`: one group's evaluation at one timestamp (shared by the loops
//!   and the unit-test runner, so both mean the same);
//! - `manager`: [`RuleManager`], the group loops, reload, on_scrape
//!   triggering, status for the API;
//! - `state`: the persisted alert state;
//! - `backtest`: one alerting rule replayed over stored history;
//! - `unittest`: `watchpost test rules` (promtool's format).
//!
//! What it must not do: read the clock anywhere but the group schedulers
//! (evaluation time is an argument), block the scrape task that calls its
//! hook, or drop an alert because a template failed.

mod alerting;
pub mod backtest;
mod file;
mod group;
mod manager;
mod state;
mod template;
pub mod unittest;

use std::collections::BTreeMap;
use std::time::Duration;

pub use file::{
    AlertingRule, LoadOptions, RecordingRule, Rule, RuleFileProblem, RuleGroup, RuleLoadError,
    SelectedNames, duplicate_rules, expand_patterns, load_files, load_paths, parse_str,
};
pub use manager::{AlertObserver, LoadedGroup, RuleManager, RuleManagerOptions};
pub use state::StateError;
pub use template::TemplateParseError;

use crate::config::RuleEvaluation;
use crate::model::{Labels, Timestamp};
use crate::promql::{Engine, EvalError, ExecOptions, Query, Value};
use crate::storage::Storage;

/// The self-monitoring rule files built into the binary, as (name,
/// text): what the embedded default configuration's `rule_files` names,
/// for when watchpost runs outside the repository and the embedded config
/// is used (its relative `rule_files` pattern then matches nothing).
pub const EMBEDDED_DEFAULT_RULES: &[(&str, &str)] = &[(
    "rules/watchpost.yml",
    include_str!("../../rules/watchpost.yml"),
)];

/// The groups of [`EMBEDDED_DEFAULT_RULES`].
pub fn embedded_default_groups() -> Result<Vec<RuleGroup>, RuleLoadError> {
    let mut out = Vec::new();
    for (name, text) in EMBEDDED_DEFAULT_RULES {
        out.extend(parse_str(text, name, LoadOptions::default())?);
    }
    Ok(out)
}

/// The state of an alert instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertState {
    /// Resolved; kept for a while so the resolution is re-sent.
    Inactive,
    /// Active, waiting for its `for` duration.
    Pending,
    Firing,
}

impl AlertState {
    /// Prometheus's spelling (`inactive`, `pending`, `firing`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// The health of a rule after its last evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleHealth {
    /// Not evaluated yet.
    Unknown,
    Good,
    Bad,
}

impl RuleHealth {
    /// Prometheus's spelling (`unknown`, `ok`, `err`).
    pub fn as_str(self) -> &'static str {
        match self {
            RuleHealth::Unknown => "unknown",
            RuleHealth::Good => "ok",
            RuleHealth::Bad => "err",
        }
    }
}

/// Why one rule's evaluation failed. The texts are Prometheus's.
#[derive(Debug, thiserror::Error)]
pub enum RuleEvalError {
    #[error("{0}")]
    Query(#[from] EvalError),
    #[error("rule result is not a vector or scalar: got a {0}")]
    NotVector(&'static str),
    #[error("vector contains metrics with the same labelset after applying alert labels")]
    DuplicateAlertLabels,
    #[error("vector contains metrics with the same labelset after applying rule labels")]
    DuplicateRuleLabels,
    #[error("exceeded limit of {limit} with {got} alerts")]
    AlertLimit { limit: usize, got: usize },
    #[error("exceeded limit {limit} with {got} series")]
    SeriesLimit { limit: usize, got: usize },
    /// Only test data holds native histograms, and rules record and alert
    /// on floats.
    #[error(
        "rule result has a native histogram sample (series {0}): rules record and alert on float values only"
    )]
    HistogramResult(Labels),
}

/// An active (pending or firing) alert, as `/api/v1/alerts` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveAlert {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    pub active_at: Timestamp,
    /// When it started firing, if it did.
    pub fired_at: Option<Timestamp>,
    pub value: f64,
    /// Since when it is kept firing by `keep_firing_for` / `keep_firing_while`.
    pub keep_firing_since: Option<Timestamp>,
}

/// Recording or alerting, with what only alerting rules have.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    Recording,
    Alerting {
        /// `for`.
        duration: Duration,
        keep_firing_for: Duration,
        /// watchpost extension; its query text.
        keep_firing_while: Option<String>,
        annotations: BTreeMap<String, String>,
        /// Pending and firing alerts, sorted by labels.
        alerts: Vec<ActiveAlert>,
        /// The most severe state among its alerts (`inactive` with none).
        state: AlertState,
    },
}

/// One rule, as `/api/v1/rules` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleStatus {
    pub name: String,
    pub query: String,
    pub labels: Labels,
    pub kind: RuleKind,
    pub health: RuleHealth,
    pub last_error: Option<String>,
    pub last_evaluation: Option<Timestamp>,
    pub evaluation_time: Duration,
}

/// One group, as `/api/v1/rules` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStatus {
    pub name: String,
    pub file: String,
    /// The effective interval (the group's own or the default).
    pub interval: Duration,
    pub query_offset: Duration,
    pub limit: usize,
    pub evaluation: RuleEvaluation,
    pub rules: Vec<RuleStatus>,
    pub last_evaluation: Option<Timestamp>,
    pub evaluation_time: Duration,
}

/// Rule groups evaluated at timestamps the caller chooses, against the
/// storage the caller passes: no loops, no persistence, no notification.
/// For tools and benchmarks; evaluation itself is the same code the
/// [`RuleManager`] loops run.
pub struct RuleEvaluator {
    runtimes: Vec<group::GroupRuntime>,
    opts: RuleManagerOptions,
}

/// What one [`RuleEvaluator::eval`] round did.
#[derive(Debug, Clone, Default)]
pub struct EvalSummary {
    /// Samples the rules returned (recorded series and `ALERTS*`).
    pub samples: usize,
    /// `group "g", rule "r": error` for each rule that failed.
    pub errors: Vec<String>,
    /// Alerts that would have been handed to notification.
    pub alerts_to_send: usize,
}

impl RuleEvaluator {
    /// `opts` gives the external labels and URL, the default interval and
    /// query offset (its state directory is not used).
    pub fn new(groups: Vec<RuleGroup>, opts: &RuleManagerOptions) -> Self {
        RuleEvaluator {
            runtimes: groups
                .into_iter()
                .map(|g| group::GroupRuntime::new(std::sync::Arc::new(g)))
                .collect(),
            opts: opts.clone(),
        }
    }

    /// Evaluates every group, in order, at `ts`.
    pub fn eval(&mut self, storage: &dyn Storage, engine: &Engine, ts: Timestamp) -> EvalSummary {
        let mut out = EvalSummary::default();
        for rt in &mut self.runtimes {
            let env = EvalEnv {
                storage,
                engine,
                exec: ExecOptions::default(),
                external_labels: &self.opts.external_labels,
                external_url: &self.opts.external_url,
                interval: rt
                    .def
                    .interval
                    .unwrap_or(self.opts.default_evaluation_interval),
                query_offset: rt.def.query_offset.unwrap_or(self.opts.query_offset),
                resend_delay: self.opts.resend_delay,
                // Storage is borrowed here, and `query` needs owned
                // handles: templates calling it show an error text.
                template_query: None,
            };
            let r = rt.eval(&env, ts);
            out.samples += r.samples;
            out.alerts_to_send += r.to_send.len();
            for (i, e) in r.errors {
                out.errors.push(format!(
                    "group {:?}, rule {:?}: {e}",
                    rt.def.name,
                    rt.def.rules[i].name()
                ));
            }
        }
        out
    }

    /// Pending and firing alerts after the last round.
    pub fn alerts(&self) -> Vec<ActiveAlert> {
        let mut out = Vec::new();
        for rt in &self.runtimes {
            for st in rt.rules.iter().filter_map(|r| r.alerts.as_ref()) {
                for a in st
                    .active
                    .values()
                    .filter(|a| a.state != AlertState::Inactive)
                {
                    out.push(ActiveAlert {
                        labels: a.labels.clone(),
                        annotations: a.annotations.clone(),
                        state: a.state,
                        active_at: a.active_at,
                        fired_at: a.fired_at,
                        value: a.value,
                        keep_firing_since: a.keep_firing_since,
                    });
                }
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

/// What a group evaluation needs from outside.
pub(crate) struct EvalEnv<'a> {
    pub storage: &'a dyn Storage,
    pub engine: &'a Engine,
    pub exec: ExecOptions,
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
    /// The group's interval (alerts stay valid for 4x max(this, resend)).
    pub interval: Duration,
    pub query_offset: Duration,
    pub resend_delay: Duration,
    /// For the `query` template function; `None` makes it fail visibly.
    pub template_query: Option<template::TemplateQuery>,
}

/// Runs `q` at `ts` and returns its samples; a scalar is one sample with no
/// labels, as Prometheus's rule query function does.
pub(crate) fn query_vector(
    env: &EvalEnv<'_>,
    q: &Query,
    ts: Timestamp,
) -> Result<Vec<(Labels, f64)>, RuleEvalError> {
    let r = env.engine.exec_instant(env.storage, q, ts, &env.exec)?;
    match r.value {
        Value::Vector(v) => v
            .into_iter()
            .map(|s| match s.h {
                None => Ok((s.labels, s.v)),
                Some(_) => Err(RuleEvalError::HistogramResult(s.labels)),
            })
            .collect(),
        Value::Scalar(s) => Ok(vec![(Labels::empty(), s.v)]),
        other => Err(RuleEvalError::NotVector(match other {
            Value::Matrix(_) => "range vector",
            _ => "string",
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_rules_load() {
        let g = embedded_default_groups().unwrap();
        assert!(
            g.iter()
                .any(|g| g.rules.iter().any(|r| r.name() == "TargetDown"))
        );
        assert!(g.iter().all(|g| g.file == "rules/watchpost.yml"));
    }
}
