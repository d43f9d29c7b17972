//! The PromQL engine: evaluates parsed PromQL expressions against a
//! [`Queryable`], with the semantics of current Prometheus (3.x).
//!
//! Where it sits: readers (the HTTP query API, rule evaluation) hand the
//! engine a storage handle, the query text and the evaluation time(s); the
//! engine selects series through [`Queryable::select`] and returns a
//! [`QueryResult`]. It never writes to storage, never reads the clock for
//! query semantics (time is an argument; the clock is read only to enforce
//! the timeout) and keeps no state between queries apart from the count of
//! running ones, so one [`Engine`] can be shared by any number of threads.
//!
//! Layout: [`Query::parse`] turns text into an AST (promql-parser; newer
//! syntax it lacks is first rewritten by `extensions`) plus the source
//! positions annotations point at (`position`); `eval` walks the AST
//! over a grid of evaluation steps, selecting every series once for the
//! whole window and sliding over it; `functions`, `aggregate` and `binary`
//! implement the operators; `histogram` the classic-bucket quantile and
//! fraction; `annotations` the warnings and infos Prometheus returns next to
//! results; `test_script` the promqltest runner used by the conformance
//! tests.
//!
//! Limits: a query holds at most [`EngineOptions::max_samples`] samples in
//! memory at once, runs at most [`EngineOptions::timeout`] (waiting for one
//! of [`EngineOptions::max_concurrent_queries`] slots included); hitting a
//! limit is an [`EvalError`], never an out-of-memory.

mod aggregate;
mod annotations;
mod binary;
mod eval;
pub mod extensions;
mod functions;
mod histogram;
mod labels;
mod position;
pub mod test_script;
mod value;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex};
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
    /// Most queries evaluating at once (Prometheus
    /// `--query.max-concurrency`, 20 by default; 0 means no limit). Further
    /// queries wait, and the wait counts against their timeout.
    pub max_concurrent_queries: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: Duration::from_secs(5 * 60),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step: Duration::from_secs(60),
            max_concurrent_queries: 20,
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
    /// The query waited for a free evaluation slot until its deadline.
    #[error("query timed out in query queue")]
    QueueTimeout,
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
            EvalError::Timeout | EvalError::QueueTimeout => "timeout",
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
    /// The text promql-parser read, and how it relates to `text`.
    rewritten: extensions::Rewritten,
    // Boxed so every node, the root included, keeps its address when the
    // query moves: annotation positions are looked up by node address.
    expr: Box<Expr>,
    positions: position::Positions,
    /// Why the query cannot run as an instant query, when it only parses
    /// with a range query's `step()` or `range()` (`x[step()]` is an empty
    /// range at instant step 0). Range queries rewrite it again instead.
    instant_error: Option<String>,
}

impl Clone for Query {
    fn clone(&self) -> Self {
        // A clone has new node addresses, so its positions are rebuilt.
        self.with_expr((*self.expr).clone())
    }
}

impl Query {
    /// Parses PromQL text, with `step()` and `range()` as in an instant
    /// query (0).
    pub fn parse(text: &str) -> Result<Query, EvalError> {
        Query::parse_with(text, extensions::QueryParams::default())
    }

    /// Parses PromQL text with the values `step()` and `range()` stand for.
    /// A text whose durations only work for some steps (`x[step()]`) is
    /// accepted when it parses with a 1m step and range (a typical
    /// step, so `1 + (step() - 5) * 2` checks as positive); running it as
    /// an instant query then fails with the instant error.
    pub fn parse_with(text: &str, params: extensions::QueryParams) -> Result<Query, EvalError> {
        match Query::parse_exact(text, params) {
            Ok(q) => Ok(q),
            Err(e) => {
                let placeholder = extensions::QueryParams {
                    step_ms: 60_000,
                    range_ms: 60_000,
                };
                let uses_params =
                    extensions::rewrite(text, placeholder).is_ok_and(|r| r.uses_query_params);
                match uses_params.then(|| Query::parse_exact(text, placeholder)) {
                    Some(Ok(mut q)) => {
                        q.instant_error = Some(e.to_string());
                        Ok(q)
                    }
                    _ => Err(e),
                }
            }
        }
    }

    fn parse_exact(text: &str, params: extensions::QueryParams) -> Result<Query, EvalError> {
        let rewritten = extensions::rewrite(text, params).map_err(|e| EvalError::Parse {
            message: e.message,
            position: Some(position::line_col(text, e.offset)),
        })?;
        let expr =
            promql_parser::parser::parse(&rewritten.text).map_err(|message| EvalError::Parse {
                position: position::locate_error_offset(&rewritten.text, &message)
                    .map(|o| position::line_col(text, rewritten.original_offset(o))),
                message,
            })?;
        let query = Query::assemble(text, rewritten, expr);
        query.check_modes()?;
        Ok(query)
    }

    /// Wraps an expression the caller parsed itself; `text` is the source it
    /// came from (used only to place annotations).
    pub fn from_expr(text: &str, expr: Expr) -> Query {
        Query::assemble(text, extensions::Rewritten::identity(text), expr)
    }

    /// This query with its expression replaced by `expr`, a changed copy of
    /// it (for example with `@` pinned); positions and selector modes are
    /// found again in the same text.
    pub fn with_expr(&self, expr: Expr) -> Query {
        let mut q = Query::assemble(&self.text, self.rewritten.clone(), expr);
        q.instant_error.clone_from(&self.instant_error);
        q
    }

    fn assemble(text: &str, rewritten: extensions::Rewritten, expr: Expr) -> Query {
        let expr = Box::new(expr);
        let mut positions = position::Positions::build(&rewritten.text, &expr);
        positions.attach_modes(&expr, &rewritten.modes);
        positions.remap(|o| rewritten.original_offset(o));
        Query {
            text: text.to_string(),
            rewritten,
            expr,
            positions,
            instant_error: None,
        }
    }

    /// Rejects a mode keyword on a selector whose consumer cannot use it,
    /// with Prometheus's message.
    fn check_modes(&self) -> Result<(), EvalError> {
        let mut err = None;
        check_modes_in(&self.expr, &self.positions, &mut err);
        // Prometheus raises this after parsing, so its message carries no
        // "parse error" prefix.
        match err {
            Some(message) => Err(EvalError::BadQuery(message)),
            None => Ok(()),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// This query resolved for a range query with `step_ms` and `range_ms`,
    /// when its durations use `step()` or `range()`; `None` when they
    /// don't and the query is used as it is.
    fn for_range(&self, step_ms: i64, range_ms: i64) -> Result<Option<Query>, EvalError> {
        if !self.rewritten.uses_query_params {
            return Ok(None);
        }
        Query::parse_exact(&self.text, extensions::QueryParams { step_ms, range_ms }).map(Some)
    }
}

/// The selector of a query that is a bare vector selector (in
/// parentheses or not).
fn plain_selector(e: &Expr) -> Option<(&Expr, &promql_parser::parser::VectorSelector)> {
    match e {
        Expr::VectorSelector(vs) => Some((e, vs)),
        Expr::Paren(p) => plain_selector(&p.expr),
        _ => None,
    }
}

/// Functions a mode keyword may feed, as Prometheus lists them.
const ANCHORED_FUNCTIONS: &[&str] = &["changes", "delta", "increase", "rate", "resets"];
const SMOOTHED_FUNCTIONS: &[&str] = &["delta", "increase", "rate"];

fn check_modes_in(e: &Expr, pos: &position::Positions, err: &mut Option<String>) {
    if err.is_some() {
        return;
    }
    match e {
        Expr::Call(c) => {
            for a in c.args.args.iter() {
                if let Expr::MatrixSelector(_) = a.as_ref()
                    && let Some(mode) = pos.mode(a)
                {
                    let allowed = match mode {
                        extensions::SelectorMode::Anchored => ANCHORED_FUNCTIONS,
                        extensions::SelectorMode::Smoothed => SMOOTHED_FUNCTIONS,
                    };
                    if !allowed.contains(&c.func.name) {
                        *err = Some(format!(
                            "{} modifier can only be used with: {} - not with {}",
                            mode.keyword(),
                            allowed.join(", "),
                            c.func.name
                        ));
                        return;
                    }
                    continue;
                }
                check_modes_in(a, pos, err);
            }
        }
        Expr::Aggregate(a) => {
            check_modes_in(&a.expr, pos, err);
            if let Some(p) = &a.param {
                check_modes_in(p, pos, err);
            }
        }
        Expr::Binary(b) => {
            check_modes_in(&b.lhs, pos, err);
            check_modes_in(&b.rhs, pos, err);
        }
        Expr::Paren(p) => check_modes_in(&p.expr, pos, err),
        Expr::Unary(u) => check_modes_in(&u.expr, pos, err),
        Expr::Subquery(s) => check_modes_in(&s.expr, pos, err),
        _ => {}
    }
}

/// The PromQL engine. Synchronous, stateless between queries (apart from
/// counting the ones running), `Send + Sync`; clones share the concurrency
/// limit.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
    gate: Arc<Gate>,
}

/// Counts running queries; a query over the limit waits for a slot.
#[derive(Debug, Default)]
struct Gate {
    running: Mutex<usize>,
    freed: Condvar,
}

struct Slot<'a>(Option<&'a Gate>);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(g) = self.0 {
            *lock(&g.running) -= 1;
            g.freed.notify_one();
        }
    }
}

// A panic while holding the counter cannot leave it inconsistent (single
// arithmetic statements), so a poisoned lock is used as is.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Gate {
    fn enter(
        &self,
        limit: usize,
        deadline: Option<Instant>,
        cancel: Option<&AtomicBool>,
    ) -> Result<Slot<'_>, EvalError> {
        if limit == 0 {
            return Ok(Slot(None));
        }
        let mut running = lock(&self.running);
        while *running >= limit {
            if cancel.is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed)) {
                return Err(EvalError::Canceled);
            }
            // Wake up now and then to notice cancellation.
            let mut wait = Duration::from_millis(50);
            if let Some(d) = deadline {
                let now = Instant::now();
                if now >= d {
                    return Err(EvalError::QueueTimeout);
                }
                wait = wait.min(d - now);
            }
            running = self
                .freed
                .wait_timeout(running, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *running += 1;
        Ok(Slot(Some(self)))
    }
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Self {
        Engine {
            opts,
            gate: Arc::default(),
        }
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
        check_time("evaluation", ts)?;
        if let Some(message) = &query.instant_error {
            return Err(EvalError::BadQuery(message.clone()));
        }
        let deadline = self.deadline(opts);
        let _slot = self.gate.enter(
            self.opts.max_concurrent_queries,
            deadline,
            opts.cancel.as_deref(),
        )?;
        let mut ev = self.evaluator(q, query, ts, ts, 0, false, opts, deadline);
        // Native histograms (test data only) come back from a plain
        // selector query; everywhere else PromQL sees the float samples.
        if let Some((node, vs)) = plain_selector(query.expr())
            && ev.selector_mode(node).is_none()
            && let Some(out) = ev.select_mixed_instant(vs, ts)?
        {
            return Ok(QueryResult {
                value: Value::Vector(out),
                warnings: Vec::new(),
                infos: Vec::new(),
            });
        }
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
        let step_ms = duration_ms(step);
        if step_ms <= 0 {
            return Err(EvalError::BadQuery(
                "zero or negative query resolution step widths are not accepted: use a positive step such as 15s".to_string(),
            ));
        }
        check_time("start", start)?;
        check_time("end", end)?;
        if end < start {
            return Err(EvalError::BadQuery(format!(
                "end timestamp {end} must not be before start timestamp {start}"
            )));
        }
        let resolved = query.for_range(step_ms, end - start)?;
        let query = resolved.as_ref().unwrap_or(query);
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
        let deadline = self.deadline(opts);
        let _slot = self.gate.enter(
            self.opts.max_concurrent_queries,
            deadline,
            opts.cancel.as_deref(),
        )?;
        let mut ev = self.evaluator(q, query, start, end, step_ms, true, opts, deadline);
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

    /// When the query must be done: the engine timeout, or the request's
    /// if smaller, from now.
    fn deadline(&self, opts: &ExecOptions) -> Option<Instant> {
        let timeout = match opts.timeout {
            Some(t) => t.min(self.opts.timeout),
            None => self.opts.timeout,
        };
        Instant::now().checked_add(timeout)
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
        deadline: Option<Instant>,
    ) -> eval::Evaluator<'a> {
        let lookback = opts.lookback_delta.unwrap_or(self.opts.lookback_delta);
        eval::Evaluator::new(eval::Settings {
            queryable: q,
            positions: &query.positions,
            lookback_ms: duration_ms(lookback),
            max_samples: self.opts.max_samples,
            deadline,
            cancel: opts.cancel.as_deref(),
            query_start: start,
            query_end: end,
            query_step: step,
            range_query,
            default_subquery_step_ms: duration_ms(self.opts.default_subquery_step).max(1),
        })
    }
}

/// Largest time or duration the engine works with, in ms (about 36 million
/// years): sums of a few of them cannot overflow an `i64`.
pub(crate) const MAX_MS: i64 = 1 << 60;

/// `d` in milliseconds, capped at [`MAX_MS`].
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(MAX_MS).min(MAX_MS)
}

fn check_time(what: &str, t: Timestamp) -> Result<(), EvalError> {
    if t.abs() > MAX_MS {
        return Err(EvalError::BadQuery(format!(
            "{what} timestamp {t} is out of range: use milliseconds within ±{MAX_MS}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;
    use crate::storage::Storage;
    use crate::storage::mem::MemStorage;
    use std::sync::atomic::Ordering;

    /// `series` counters `x{i}` with a sample every 10 s from 0 to 10 min.
    fn storage(series: usize) -> MemStorage {
        let st = MemStorage::new();
        let mut app = st.appender();
        for i in 0..series {
            let l = Labels::from_pairs([("__name__", "x".to_string()), ("i", i.to_string())]);
            for k in 0..=60 {
                app.append(&l, k * 10_000, (k * (i as i64 + 1)) as f64)
                    .unwrap();
            }
        }
        app.commit().unwrap();
        st
    }

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
        let e = Query::parse("sum(rate(x[5m])").unwrap_err();
        assert!(e.to_string().starts_with("1:4: parse error"), "{e}");
        assert_eq!(EvalError::Timeout.error_type(), "timeout");
        assert_eq!(EvalError::Canceled.error_type(), "canceled");
        assert_eq!(
            EvalError::TooManySamples { limit: 1 }.to_string(),
            "query processing would load too many samples into memory in query execution"
        );
    }

    #[test]
    fn result_shapes() {
        let st = storage(2);
        let e = Engine::default();
        let r = e.instant(&st, "x", 100_000).unwrap();
        let Value::Vector(v) = r.value else {
            panic!("{r:?}")
        };
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|s| s.t == 100_000));
        assert_eq!(v[1].v, 20.0);
        let r = e.instant(&st, "1 + 1", 5).unwrap();
        assert_eq!(r.value, Value::Scalar(Scalar { t: 5, v: 2.0 }));
        let r = e.instant(&st, "x[30s]", 100_000).unwrap();
        let Value::Matrix(m) = r.value else { panic!() };
        assert_eq!(m[0].samples.len(), 3);
        let r = e
            .range(&st, "sum(x)", 0, 60_000, Duration::from_secs(30))
            .unwrap();
        let Value::Matrix(m) = r.value else { panic!() };
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].samples.iter().map(|s| s.v).collect::<Vec<_>>(),
            vec![0.0, 9.0, 18.0]
        );
    }

    #[test]
    fn range_queries_reject_bad_requests() {
        let st = storage(1);
        let e = Engine::default();
        let err = e.range(&st, "x", 0, 10, Duration::ZERO).unwrap_err();
        assert_eq!(err.error_type(), "bad_data");
        let err = e
            .range(&st, "\"a\"", 0, 10, Duration::from_secs(1))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid expression type \"string\""),
            "{err}"
        );
        let err = e
            .range(&st, "x[5m]", 0, 10, Duration::from_secs(1))
            .unwrap_err();
        assert!(err.to_string().contains("range vector"), "{err}");
    }

    #[test]
    fn sample_limit_is_an_error_not_an_allocation() {
        let st = storage(10);
        let e = Engine::new(EngineOptions {
            max_samples: 100,
            ..Default::default()
        });
        // 10 series x 11 steps = 110 samples.
        let err = e
            .range(&st, "x", 0, 100_000, Duration::from_secs(10))
            .unwrap_err();
        assert!(
            matches!(err, EvalError::TooManySamples { limit: 100 }),
            "{err}"
        );
        assert_eq!(err.error_type(), "execution");
        assert!(
            e.range(&st, "x", 0, 80_000, Duration::from_secs(10))
                .is_ok()
        );
        // A grid with more steps than samples allowed is refused up front.
        let err = e
            .range(&st, "1", 0, 86_400_000 * 365, Duration::from_millis(1))
            .unwrap_err();
        assert!(matches!(err, EvalError::TooManySamples { .. }), "{err}");
    }

    #[test]
    fn timeout_and_cancellation_stop_evaluation() {
        let st = storage(1);
        let e = Engine::new(EngineOptions {
            timeout: Duration::ZERO,
            ..Default::default()
        });
        let err = e.instant(&st, "x", 0).unwrap_err();
        assert!(matches!(err, EvalError::Timeout), "{err}");
        assert_eq!(err.to_string(), "query timed out in expression evaluation");

        let e = Engine::default();
        let q = Query::parse("sum(rate(x[1m]))").unwrap();
        let cancel = Arc::new(AtomicBool::new(false));
        let opts = ExecOptions {
            cancel: Some(cancel.clone()),
            ..Default::default()
        };
        assert!(e.exec_instant(&st, &q, 0, &opts).is_ok());
        cancel.store(true, Ordering::Relaxed);
        let err = e.exec_instant(&st, &q, 0, &opts).unwrap_err();
        assert!(matches!(err, EvalError::Canceled), "{err}");
    }

    #[test]
    fn concurrency_is_bounded() {
        let st = storage(1);
        let e = Engine::new(EngineOptions {
            max_concurrent_queries: 1,
            ..Default::default()
        });
        // Hold the only slot; a query has to wait and times out in the queue.
        let slot = e.gate.enter(1, None, None).unwrap();
        let q = Query::parse("x").unwrap();
        let opts = ExecOptions {
            timeout: Some(Duration::from_millis(20)),
            ..Default::default()
        };
        let err = e.exec_instant(&st, &q, 0, &opts).unwrap_err();
        assert!(matches!(err, EvalError::QueueTimeout), "{err}");
        assert_eq!(err.error_type(), "timeout");
        drop(slot);
        assert!(e.exec_instant(&st, &q, 0, &opts).is_ok());
        // Slots are given back after each query.
        assert_eq!(*lock(&e.gate.running), 0);
    }

    #[test]
    fn lookback_can_be_set_per_query() {
        let st = storage(1);
        let e = Engine::default();
        let q = Query::parse("x").unwrap();
        // The last sample is at 600s.
        let at = 600_000 + 60_000;
        let r = e
            .exec_instant(&st, &q, at, &ExecOptions::default())
            .unwrap();
        assert!(matches!(r.value, Value::Vector(ref v) if v.len() == 1));
        let opts = ExecOptions {
            lookback_delta: Some(Duration::from_secs(30)),
            ..Default::default()
        };
        let r = e.exec_instant(&st, &q, at, &opts).unwrap();
        assert!(matches!(r.value, Value::Vector(ref v) if v.is_empty()));
    }

    #[test]
    fn cloned_queries_keep_annotation_positions() {
        let st = storage(1);
        let e = Engine::default();
        let q = Query::parse("sum(\n  rate(x[1m]))").unwrap().clone();
        let r = e
            .exec_instant(&st, &q, 60_000, &ExecOptions::default())
            .unwrap();
        assert_eq!(
            r.infos,
            vec![
                "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"x\" (2:8)"
            ]
        );
    }
}
