//! The PromQL engine: evaluates parsed PromQL expressions against a
//! [`Queryable`], with the semantics of current Prometheus (3.x).
//!
//! Where it sits: readers (the HTTP query API, rule evaluation) hand the
//! engine a storage handle, the query text and the evaluation time(s); the
//! engine selects series through [`Queryable::select`] and returns a
//! [`QueryResult`]. It never writes to storage, never reads the clock for
//! query semantics (time is an argument; the clock is read only to enforce
//! the timeout) and keeps no state between queries, so one [`Engine`] can be
//! shared by any number of threads.
//!
//! Layout: `parse` turns text into a [`Query`] (AST plus source positions for
//! annotations); `eval` walks the AST over a grid of evaluation steps,
//! selecting every series once for the whole window and sliding over it;
//! `functions`, `aggregate` and `binary` implement the operators;
//! `histogram` the classic-bucket quantile and fraction; `annotations` the
//! warnings and infos Prometheus returns next to results; `test_script` the
//! promqltest runner used by the conformance tests.
//!
//! Limits: a query holds at most [`EngineOptions::max_samples`] samples in
//! memory at once and runs at most [`EngineOptions::timeout`]; hitting either
//! is an [`EvalError`], never an out-of-memory.

mod aggregate;
mod annotations;
mod binary;
mod eval;
mod functions;
mod histogram;
mod labels;
mod position;
pub mod test_script;
mod value;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use promql_parser::parser::Expr;

use crate::model::Timestamp;
use crate::storage::{Queryable, StorageError};

pub use value::{QueryResult, RangeSeries, Scalar, Value, VectorSample};

/// Engine-wide settings. Every field is a per-engine tunable the caller
/// chooses (from flags or config); nothing is global.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for the newest sample
    /// (Prometheus `--query.lookback-delta`, 5m by default).
    pub lookback_delta: Duration,
    /// Most samples one query may hold in memory at once.
    pub max_samples: usize,
    /// Longest a query may run before it fails with [`EvalError::Timeout`].
    pub timeout: Duration,
    /// Resolution of subqueries written without a step (`x[1h:]`);
    /// Prometheus uses the global evaluation interval, 1m by default.
    pub default_subquery_step: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: Duration::from_secs(5 * 60),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step: Duration::from_secs(60),
        }
    }
}

/// Per-execution controls on top of the engine options.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Overrides [`EngineOptions::lookback_delta`] for this query.
    pub lookback_delta: Option<Duration>,
    /// Overrides [`EngineOptions::timeout`] for this query (the API's
    /// `timeout` parameter); the smaller of the two applies.
    pub timeout: Option<Duration>,
    /// Checked regularly during evaluation; when set, evaluation stops with
    /// [`EvalError::Canceled`]. Lets a caller that gave up (client gone,
    /// shutdown) free the thread early.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// Why a query could not be answered. Messages match Prometheus's where the
/// conformance corpus checks them; [`EvalError::error_type`] gives the
/// Prometheus API `errorType`.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The query text is not valid PromQL.
    #[error("{}", parse_message(.message, .position))]
    Parse {
        message: String,
        /// 1-based line and column in the query text, when known.
        position: Option<(usize, usize)>,
    },
    /// The query is valid PromQL but not acceptable for this request (for
    /// example a string expression in a range query, or a zero step).
    #[error("{0}")]
    BadQuery(String),
    #[error("query timed out in expression evaluation")]
    Timeout,
    #[error("query was canceled in expression evaluation")]
    Canceled,
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples { limit: usize },
    /// Evaluation failed (for example duplicate series in a result).
    #[error("{0}")]
    Execution(String),
    #[error("{0}")]
    Storage(#[from] StorageError),
}

fn parse_message(message: &str, position: &Option<(usize, usize)>) -> String {
    match position {
        Some((line, col)) => format!("{line}:{col}: parse error: {message}"),
        None => format!("parse error: {message}"),
    }
}

impl EvalError {
    /// The Prometheus HTTP API `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            EvalError::Parse { .. } | EvalError::BadQuery(_) => "bad_data",
            EvalError::Timeout => "timeout",
            EvalError::Canceled => "canceled",
            EvalError::TooManySamples { .. } | EvalError::Execution(_) => "execution",
            EvalError::Storage(_) => "internal",
        }
    }
}

/// A parsed query: the expression plus what annotations need to point at
/// positions in the original text. Parse once, execute many times (rules).
#[derive(Debug)]
pub struct Query {
    text: String,
    // Boxed so every node, the root included, keeps its address when the
    // query moves: annotation positions are looked up by node address.
    expr: Box<Expr>,
    positions: position::Positions,
}

impl Clone for Query {
    fn clone(&self) -> Self {
        // A clone has new node addresses, so its positions are rebuilt.
        Query::from_expr(&self.text, (*self.expr).clone())
    }
}

impl Query {
    /// Parses PromQL text.
    pub fn parse(text: &str) -> Result<Query, EvalError> {
        let expr = promql_parser::parser::parse(text).map_err(|message| EvalError::Parse {
            position: position::locate_error(text),
            message,
        })?;
        Ok(Query::from_expr(text, expr))
    }

    /// Wraps an expression the caller parsed itself; `text` is the source it
    /// came from (used only to place annotations).
    pub fn from_expr(text: &str, expr: Expr) -> Query {
        let expr = Box::new(expr);
        let positions = position::Positions::build(text, &expr);
        Query {
            text: text.to_string(),
            expr,
            positions,
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn expr(&self) -> &Expr {
        &self.expr
    }
}

/// The PromQL engine. Synchronous, stateless between queries, `Send + Sync`.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Self {
        Engine { opts }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Parses and evaluates `expr` at `ts`.
    pub fn instant(
        &self,
        q: &dyn Queryable,
        expr: &str,
        ts: Timestamp,
    ) -> Result<QueryResult, EvalError> {
        let query = Query::parse(expr)?;
        self.exec_instant(q, &query, ts, &ExecOptions::default())
    }

    /// Parses and evaluates `expr` at every `step` from `start` to `end`
    /// inclusive.
    pub fn range(
        &self,
        q: &dyn Queryable,
        expr: &str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> Result<QueryResult, EvalError> {
        let query = Query::parse(expr)?;
        self.exec_range(q, &query, start, end, step, &ExecOptions::default())
    }

    /// Evaluates a parsed query at `ts`.
    pub fn exec_instant(
        &self,
        q: &dyn Queryable,
        query: &Query,
        ts: Timestamp,
        opts: &ExecOptions,
    ) -> Result<QueryResult, EvalError> {
        let mut ev = self.evaluator(q, query, ts, ts, 0, false, opts);
        let val = ev.eval_top(query.expr(), eval::Grid::instant(ts))?;
        let value = eval::finish_instant(&mut ev, val, ts)?;
        let (warnings, infos) = ev.annos.render(query.text());
        Ok(QueryResult {
            value,
            warnings,
            infos,
        })
    }

    /// Evaluates a parsed query over `[start, end]` at resolution `step`.
    /// The result is always a matrix, sorted by labels.
    pub fn exec_range(
        &self,
        q: &dyn Queryable,
        query: &Query,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
        opts: &ExecOptions,
    ) -> Result<QueryResult, EvalError> {
        let step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX);
        if step_ms <= 0 {
            return Err(EvalError::BadQuery(
                "zero or negative query resolution step widths are not accepted: use a positive step such as 15s".to_string(),
            ));
        }
        if end < start {
            return Err(EvalError::BadQuery(format!(
                "end timestamp {end} must not be before start timestamp {start}"
            )));
        }
        match query.expr().value_type() {
            promql_parser::parser::value::ValueType::Scalar
            | promql_parser::parser::value::ValueType::Vector => {}
            other => {
                let what = match other {
                    promql_parser::parser::value::ValueType::Matrix => "range vector",
                    _ => "string",
                };
                return Err(EvalError::BadQuery(format!(
                    "invalid expression type \"{what}\" for range query, must be Scalar or instant Vector"
                )));
            }
        }
        let mut ev = self.evaluator(q, query, start, end, step_ms, true, opts);
        let grid = eval::Grid {
            start,
            end,
            step: step_ms,
        };
        let val = ev.eval_top(query.expr(), grid)?;
        let value = eval::finish_range(&mut ev, val, grid)?;
        let (warnings, infos) = ev.annos.render(query.text());
        Ok(QueryResult {
            value,
            warnings,
            infos,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn evaluator<'a>(
        &self,
        q: &'a dyn Queryable,
        query: &'a Query,
        start: Timestamp,
        end: Timestamp,
        step: i64,
        range_query: bool,
        opts: &'a ExecOptions,
    ) -> eval::Evaluator<'a> {
        let timeout = match opts.timeout {
            Some(t) => t.min(self.opts.timeout),
            None => self.opts.timeout,
        };
        let lookback = opts.lookback_delta.unwrap_or(self.opts.lookback_delta);
        eval::Evaluator::new(eval::Settings {
            queryable: q,
            positions: &query.positions,
            lookback_ms: duration_ms(lookback),
            max_samples: self.opts.max_samples,
            deadline: Instant::now().checked_add(timeout),
            cancel: opts.cancel.as_deref(),
            query_start: start,
            query_end: end,
            query_step: step,
            range_query,
            default_subquery_step_ms: duration_ms(self.opts.default_subquery_step).max(1),
        })
    }
}

pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Engine>();
        check::<Query>();
    }

    #[test]
    fn error_types_follow_prometheus() {
        let e = Query::parse("sum(").unwrap_err();
        assert_eq!(e.error_type(), "bad_data");
        assert!(e.to_string().contains("parse error"), "{e}");
        assert_eq!(EvalError::Timeout.error_type(), "timeout");
        assert_eq!(
            EvalError::TooManySamples { limit: 1 }.to_string(),
            "query processing would load too many samples into memory in query execution"
        );
    }
}
