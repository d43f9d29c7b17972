//! The evaluator: walks the AST over a grid of evaluation steps.
//!
//! Every node is evaluated for all steps of its grid at once (an instant
//! query is a grid of one step). Selectors query storage once for the whole
//! window the grid needs and slide over the returned samples; operators then
//! work on whole series, so labels are hashed and copied once per series,
//! not once per step. Subqueries evaluate their inner expression on their own
//! step-aligned grid.
//!
//! This module owns the limits: the sample count held in memory (checked as
//! values are built) and the deadline/cancellation (checked in every loop
//! over series or steps).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use promql_parser::parser::{Expr, MatrixSelector, Offset, SubqueryExpr, VectorSelector};

use super::annotations::Annotations;
use super::extensions::SelectorMode;
use super::labels::{drop_metric_owned, signature};
use super::position::{Positions, at_millis};
use super::value::{RangeSeries, Scalar, Series, Val, Value, VectorSample};
use super::{EvalError, aggregate, binary, functions};
use crate::model::{Labels, METRIC_NAME, Matcher, Sample, Timestamp, is_stale_nan};
use crate::storage::{self, Queryable};

pub(crate) mod extended;

/// Evaluation steps `start, start+step, ..., <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grid {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Grid {
    pub fn instant(t: i64) -> Grid {
        Grid {
            start: t,
            end: t,
            step: 1,
        }
    }

    pub fn len(&self) -> usize {
        if self.end < self.start {
            0
        } else {
            ((self.end - self.start) / self.step) as usize + 1
        }
    }

    pub fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    pub fn index(&self, t: i64) -> usize {
        ((t - self.start) / self.step) as usize
    }

    pub fn last(&self) -> i64 {
        self.ts(self.len().saturating_sub(1))
    }
}

pub(crate) struct Settings<'a> {
    pub queryable: &'a dyn Queryable,
    pub positions: &'a Positions,
    pub lookback_ms: i64,
    pub max_samples: usize,
    pub deadline: Option<Instant>,
    pub cancel: Option<&'a AtomicBool>,
    pub query_start: i64,
    pub query_end: i64,
    pub query_step: i64,
    pub range_query: bool,
    pub default_subquery_step_ms: i64,
}

pub(crate) struct Evaluator<'a> {
    q: &'a dyn Queryable,
    positions: &'a Positions,
    pub lookback: i64,
    max_samples: usize,
    samples: usize,
    deadline: Option<Instant>,
    cancel: Option<&'a AtomicBool>,
    ticks: u32,
    pub query_start: i64,
    pub query_end: i64,
    pub query_step: i64,
    pub range_query: bool,
    default_subquery_step: i64,
    pub annos: Annotations,
}

/// Where the samples of a range vector come from.
pub(crate) enum RangeSeriesSource {
    /// Straight from storage, decoded one series at a time.
    Storage(Vec<storage::Series>),
    /// A subquery's evaluated series (points on the subquery's grid).
    Evaluated(Vec<Series>),
}

/// A range vector argument: its series and how each step's window is placed.
pub(crate) struct RangeSource {
    pub source: RangeSeriesSource,
    pub range: i64,
    pub offset: i64,
    pub at: Option<i64>,
    /// `anchored` / `smoothed`, when written after the range selector; the
    /// selection then reaches `margins` beyond each window.
    pub mode: Option<SelectorMode>,
    /// How far before the window start and after the window end the
    /// selection reaches (zero without a mode).
    pub margins: (i64, i64),
}

impl RangeSource {
    /// End of the window (inclusive) for the evaluation step at `ts`; the
    /// window is `(end - range, end]`.
    pub fn window_end(&self, ts: i64) -> i64 {
        self.at.unwrap_or(ts) - self.offset
    }
}

/// How far beyond a window `mode` needs samples: `anchored` looks for the
/// sample before the window start, `smoothed` also for the one after the
/// window end, each within the lookback delta.
pub(crate) fn mode_margins(mode: Option<SelectorMode>, lookback: i64) -> (i64, i64) {
    match mode {
        None => (0, 0),
        Some(SelectorMode::Anchored) => (lookback, 0),
        Some(SelectorMode::Smoothed) => (lookback, lookback),
    }
}

/// Where an instant selector reads: see [`Evaluator::instant_refs`].
struct InstantRefs {
    offset: i64,
    at: Option<i64>,
    first_ref: i64,
    last_ref: i64,
}

/// Long per-series loops account their output in chunks of this many
/// samples, so a runaway query stops before it exhausts memory.
const CHARGE_CHUNK: usize = 4096;

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => super::duration_ms(*d),
        Some(Offset::Neg(d)) => -super::duration_ms(*d),
    }
}

impl<'a> Evaluator<'a> {
    pub fn new(s: Settings<'a>) -> Self {
        Evaluator {
            q: s.queryable,
            positions: s.positions,
            lookback: s.lookback_ms,
            max_samples: s.max_samples,
            samples: 0,
            deadline: s.deadline,
            cancel: s.cancel,
            ticks: 0,
            query_start: s.query_start,
            query_end: s.query_end,
            query_step: s.query_step,
            range_query: s.range_query,
            default_subquery_step: s.default_subquery_step_ms,
            annos: Annotations::default(),
        }
    }

    /// Position of `e` in the query text, for annotations.
    pub fn pos(&self, e: &Expr) -> usize {
        self.positions.of(e)
    }

    /// The `anchored` / `smoothed` mode written after selector `e`.
    pub fn selector_mode(&self, e: &Expr) -> Option<super::extensions::SelectorMode> {
        self.positions.mode(e)
    }

    /// Checks the deadline and cancellation every few calls; cheap enough to
    /// call once per series and once per step.
    pub fn tick(&mut self) -> Result<(), EvalError> {
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks.is_multiple_of(128) {
            self.check_now()?;
        }
        Ok(())
    }

    fn check_now(&self) -> Result<(), EvalError> {
        if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(EvalError::Canceled);
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(EvalError::Timeout);
        }
        Ok(())
    }

    /// Accounts `n` more samples held in memory.
    pub fn charge(&mut self, n: usize) -> Result<(), EvalError> {
        self.samples += n;
        if self.samples > self.max_samples {
            return Err(EvalError::TooManySamples {
                limit: self.max_samples,
            });
        }
        Ok(())
    }

    /// Accounts `n` samples freed.
    pub fn release(&mut self, n: usize) {
        self.samples = self.samples.saturating_sub(n);
    }

    /// Accounts a growing output of `len` samples of which `charged` were
    /// accounted already; charges in chunks unless `done`, so long loops
    /// stop early without paying for a check per sample.
    pub fn charge_growth(
        &mut self,
        charged: &mut usize,
        len: usize,
        done: bool,
    ) -> Result<(), EvalError> {
        if done || len - *charged >= CHARGE_CHUNK {
            self.charge(len - *charged)?;
            *charged = len;
            self.tick()?;
        }
        Ok(())
    }

    /// Charges a node's output and releases its inputs.
    pub fn settle(&mut self, inputs: usize, output: &Val) -> Result<(), EvalError> {
        self.charge(output.samples())?;
        self.release(inputs);
        Ok(())
    }

    pub fn eval_top(&mut self, e: &Expr, g: Grid) -> Result<Val, EvalError> {
        self.check_now()?;
        self.eval(e, g)
    }

    pub fn eval(&mut self, e: &Expr, g: Grid) -> Result<Val, EvalError> {
        self.tick()?;
        // Every per-step array is bounded by the sample limit: a grid with
        // more steps than that cannot be evaluated within it anyway.
        if g.len() > self.max_samples {
            return Err(EvalError::TooManySamples {
                limit: self.max_samples,
            });
        }
        match e {
            Expr::Paren(p) => self.eval(&p.expr, g),
            Expr::NumberLiteral(n) => {
                let v = Val::Scalar(vec![n.val; g.len()]);
                self.charge(v.samples())?;
                Ok(v)
            }
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Unary(u) => {
                let v = self.eval(&u.expr, g)?;
                Ok(match v {
                    Val::Scalar(mut s) => {
                        s.iter_mut().for_each(|x| *x = -*x);
                        Val::Scalar(s)
                    }
                    Val::Vector(mut series) => {
                        for s in &mut series {
                            s.drop_name = true;
                            s.points.iter_mut().for_each(|p| p.v = -p.v);
                        }
                        Val::Vector(series)
                    }
                    other => {
                        return Err(EvalError::Execution(format!(
                            "unary expression only allowed on expressions of type scalar or vector, got {}",
                            val_type(&other)
                        )));
                    }
                })
            }
            Expr::VectorSelector(vs) => Ok(Val::Vector(match self.selector_mode(e) {
                Some(SelectorMode::Smoothed) => self.select_instant_smoothed(vs, g)?,
                _ => self.vector_selector(vs, g)?,
            })),
            Expr::MatrixSelector(ms) => {
                let mode = self.selector_mode(e);
                let src = self.matrix_source(ms, g, mode)?;
                Ok(Val::Matrix(self.materialize_range(src, g)?))
            }
            Expr::Subquery(sq) => {
                let src = self.subquery_source(sq, g)?;
                Ok(Val::Matrix(self.materialize_range(src, g)?))
            }
            Expr::Binary(b) => binary::eval(self, e, b, g),
            Expr::Aggregate(a) => aggregate::eval(self, a, g),
            Expr::Call(c) => functions::eval(self, e, c, g),
            Expr::Extension(_) => Err(EvalError::Execution(
                "extension expressions are not supported by this engine".to_string(),
            )),
        }
    }

    /// Evaluates `e` and requires an instant vector.
    pub fn eval_vector(&mut self, e: &Expr, g: Grid) -> Result<Vec<Series>, EvalError> {
        match self.eval(e, g)? {
            Val::Vector(v) => Ok(v),
            other => Err(EvalError::Execution(format!(
                "expected instant vector, got {}",
                val_type(&other)
            ))),
        }
    }

    /// Evaluates `e` and requires a scalar (one value per step).
    pub fn eval_scalar(&mut self, e: &Expr, g: Grid) -> Result<Vec<f64>, EvalError> {
        match self.eval(e, g)? {
            Val::Scalar(v) => Ok(v),
            other => Err(EvalError::Execution(format!(
                "expected scalar, got {}",
                val_type(&other)
            ))),
        }
    }

    fn select(
        &mut self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<storage::Series>, EvalError> {
        // Native histogram samples (test data only) are not part of this
        // selection: outside a plain selector query, PromQL here works on
        // float samples, as it did before histograms could be loaded.
        let alternatives = selector_matchers(vs)?;
        self.select_floats(&alternatives, mint, maxt)
    }

    fn select_floats(
        &mut self,
        alternatives: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<storage::Series>, EvalError> {
        if alternatives.len() == 1 {
            return Ok(self.q.select(&alternatives[0], mint, maxt)?);
        }
        // `{a="1" or b="2"}`: the union of the alternatives, without
        // duplicates, in label order.
        let mut all: Vec<storage::Series> = Vec::new();
        for m in alternatives {
            all.extend(self.q.select(m, mint, maxt)?);
        }
        all.sort_by(|a, b| a.labels.cmp(&b.labels));
        all.dedup_by(|a, b| a.labels == b.labels);
        Ok(all)
    }

    fn select_histograms(
        &mut self,
        alternatives: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<storage::HistogramSeries>, EvalError> {
        let mut all = Vec::new();
        for m in alternatives {
            all.extend(self.q.select_histograms(m, mint, maxt)?);
        }
        if alternatives.len() > 1 {
            all.sort_by(|a, b| a.labels.cmp(&b.labels));
            all.dedup_by(|a, b| a.labels == b.labels);
        }
        Ok(all)
    }

    /// The first series `vs` selects over grid `g` that holds native
    /// histogram samples (test data only), if any.
    pub fn histogram_series_in(
        &mut self,
        vs: &VectorSelector,
        g: Grid,
    ) -> Result<Option<Labels>, EvalError> {
        if g.len() == 0 || !self.q.holds_histograms() {
            return Ok(None);
        }
        let InstantRefs {
            first_ref,
            last_ref,
            ..
        } = self.instant_refs(vs, g);
        let alternatives = selector_matchers(vs)?;
        let found =
            self.select_histograms(&alternatives, first_ref - self.lookback + 1, last_ref)?;
        Ok(found.into_iter().next().map(|h| h.labels))
    }

    /// A plain instant selector query at `ts` over series that have
    /// native histogram samples: each series' newest sample within the
    /// lookback, float or histogram, unless it is a staleness marker.
    /// `None` when the window holds no histograms (the usual path
    /// applies).
    pub fn select_mixed_instant(
        &mut self,
        vs: &VectorSelector,
        ts: Timestamp,
    ) -> Result<Option<Vec<VectorSample>>, EvalError> {
        // Every plain selector query passes here: with the durable storage,
        // which has no histograms, return before building matchers.
        if !self.q.holds_histograms() {
            return Ok(None);
        }
        let InstantRefs { last_ref, .. } = self.instant_refs(vs, Grid::instant(ts));
        let (mint, maxt) = (last_ref - self.lookback + 1, last_ref);
        let alternatives = selector_matchers(vs)?;
        let hists = self.select_histograms(&alternatives, mint, maxt)?;
        if hists.is_empty() {
            return Ok(None);
        }
        let floats = self.select_floats(&alternatives, mint, maxt)?;
        let mut newest_float: HashMap<Labels, Sample> = HashMap::with_capacity(floats.len());
        for s in floats {
            if let Some(last) = s.samples.last() {
                newest_float.insert(s.labels, last);
            }
        }
        let mut out: Vec<VectorSample> = Vec::new();
        for hs in hists {
            let Some(h) = hs.samples.last() else { continue };
            match newest_float.remove(&hs.labels) {
                // A newer float (or staleness marker) wins over the histogram.
                Some(f) if f.t > h.t => {
                    if !is_stale_nan(f.v) {
                        out.push(VectorSample {
                            labels: hs.labels,
                            t: ts,
                            v: f.v,
                            h: None,
                        });
                    }
                }
                _ => out.push(VectorSample {
                    labels: hs.labels,
                    t: ts,
                    v: 0.0,
                    h: Some(h.h.clone()),
                }),
            }
        }
        out.extend(
            newest_float
                .into_iter()
                .filter(|(_, f)| !is_stale_nan(f.v))
                .map(|(labels, f)| VectorSample {
                    labels,
                    t: ts,
                    v: f.v,
                    h: None,
                }),
        );
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        self.charge(out.len())?;
        Ok(Some(out))
    }

    /// An instant vector selector: for each step, the newest sample within
    /// the lookback window `(t - lookback, t]`, unless that sample is a
    /// staleness marker.
    pub fn vector_selector(
        &mut self,
        vs: &VectorSelector,
        g: Grid,
    ) -> Result<Vec<Series>, EvalError> {
        self.select_instant(vs, g, false)
    }

    /// `timestamp(selector)`: like a vector selector, but the value is the
    /// time of the sample found, in seconds (and the name is dropped).
    pub fn vector_selector_timestamps(
        &mut self,
        vs: &VectorSelector,
        g: Grid,
    ) -> Result<Vec<Series>, EvalError> {
        self.select_instant(vs, g, true)
    }

    /// Offset, `@` time and the first and last reference times of an
    /// instant selector over grid `g`.
    fn instant_refs(&self, vs: &VectorSelector, g: Grid) -> InstantRefs {
        let offset = offset_ms(&vs.offset);
        let at = vs
            .at
            .as_ref()
            .map(|a| at_millis(a, self.query_start, self.query_end));
        let (first_ref, last_ref) = match at {
            Some(a) => (a - offset, a - offset),
            None => (g.start - offset, g.last() - offset),
        };
        InstantRefs {
            offset,
            at,
            first_ref,
            last_ref,
        }
    }

    fn select_instant(
        &mut self,
        vs: &VectorSelector,
        g: Grid,
        timestamps: bool,
    ) -> Result<Vec<Series>, EvalError> {
        let n = g.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let InstantRefs {
            offset,
            at,
            first_ref,
            last_ref,
        } = self.instant_refs(vs, g);
        let selected = self.select(vs, first_ref - self.lookback + 1, last_ref)?;
        let mut out = Vec::with_capacity(selected.len());
        for s in selected {
            self.tick()?;
            let mut it = s.samples.peekable();
            let mut points = Vec::new();
            let mut charged = 0;
            let mut cur: Option<Sample> = None;
            let lookback = self.lookback;
            match at {
                Some(_) => {
                    if let Some(c) = newest_at(&mut it, &mut cur, first_ref, lookback) {
                        let v = if timestamps { c.t as f64 / 1000.0 } else { c.v };
                        points.extend((0..n).map(|i| Sample { t: g.ts(i), v }));
                    }
                }
                None => {
                    for i in 0..n {
                        let ts = g.ts(i);
                        if let Some(c) = newest_at(&mut it, &mut cur, ts - offset, lookback) {
                            let v = if timestamps { c.t as f64 / 1000.0 } else { c.v };
                            points.push(Sample { t: ts, v });
                            self.charge_growth(&mut charged, points.len(), false)?;
                        }
                    }
                }
            }
            self.charge_growth(&mut charged, points.len(), true)?;
            if !points.is_empty() {
                out.push(Series::new(s.labels, timestamps, points));
            }
        }
        Ok(out)
    }

    /// A `smoothed` instant vector selector: for each step, the value at
    /// the reference time interpolated between the newest sample at or
    /// before it (within the lookback) and the first sample after it (within
    /// the lookback as well); the older value when nothing follows.
    fn select_instant_smoothed(
        &mut self,
        vs: &VectorSelector,
        g: Grid,
    ) -> Result<Vec<Series>, EvalError> {
        let n = g.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let InstantRefs {
            offset,
            at,
            first_ref,
            last_ref,
        } = self.instant_refs(vs, g);
        let lookback = self.lookback;
        let selected = self.select(vs, first_ref - lookback + 1, last_ref + lookback)?;
        let mut out = Vec::with_capacity(selected.len());
        for s in selected {
            self.tick()?;
            let mut it = s.samples.peekable();
            let mut points = Vec::new();
            let mut charged = 0;
            let mut cur: Option<Sample> = None;
            // With `@` every step has the same reference time.
            let steps = if at.is_some() { 1 } else { n };
            for i in 0..steps {
                let ts = g.ts(i);
                let ref_t = at.unwrap_or(ts) - offset;
                let Some(prev) = newest_at(&mut it, &mut cur, ref_t, lookback) else {
                    continue;
                };
                // A staleness marker after the reference time ends the
                // series: nothing to interpolate towards.
                let next = it
                    .peek()
                    .copied()
                    .filter(|x| x.t <= ref_t + lookback && !is_stale_nan(x.v));
                let v = extended::smoothed_value(prev, next, ref_t);
                points.push(Sample { t: ts, v });
                self.charge_growth(&mut charged, points.len(), false)?;
            }
            if at.is_some()
                && let Some(&p) = points.first()
            {
                points.extend((1..n).map(|i| Sample { t: g.ts(i), v: p.v }));
            }
            self.charge_growth(&mut charged, points.len(), true)?;
            if !points.is_empty() {
                out.push(Series::new(s.labels, false, points));
            }
        }
        Ok(out)
    }

    /// The series behind a range vector selector, selected once for every
    /// window of the grid (widened as `mode` needs).
    pub fn matrix_source(
        &mut self,
        ms: &MatrixSelector,
        g: Grid,
        mode: Option<SelectorMode>,
    ) -> Result<RangeSource, EvalError> {
        let range = super::duration_ms(ms.range);
        let offset = offset_ms(&ms.vs.offset);
        let at = ms
            .vs
            .at
            .as_ref()
            .map(|a| at_millis(a, self.query_start, self.query_end));
        let margins = mode_margins(mode, self.lookback);
        let src = RangeSource {
            source: RangeSeriesSource::Storage(Vec::new()),
            range,
            offset,
            at,
            mode,
            margins,
        };
        if g.len() == 0 {
            return Ok(src);
        }
        let first_end = src.window_end(g.start);
        let last_end = src.window_end(g.last());
        let (before, after) = margins;
        let selected = self.select(&ms.vs, first_end - range - before + 1, last_end + after)?;
        Ok(RangeSource {
            source: RangeSeriesSource::Storage(selected),
            ..src
        })
    }

    /// Evaluates a subquery's inner expression on its own grid: steps aligned
    /// to multiples of the subquery step, covering every window the outer
    /// grid needs.
    pub fn subquery_source(
        &mut self,
        sq: &SubqueryExpr,
        g: Grid,
    ) -> Result<RangeSource, EvalError> {
        let step = match sq.step {
            Some(s) => super::duration_ms(s).max(1),
            None => self.default_subquery_step,
        };
        let range = super::duration_ms(sq.range);
        let offset = offset_ms(&sq.offset);
        let at = sq
            .at
            .as_ref()
            .map(|a| at_millis(a, self.query_start, self.query_end));
        let mut src = RangeSource {
            source: RangeSeriesSource::Evaluated(Vec::new()),
            range,
            offset,
            at,
            mode: None,
            margins: (0, 0),
        };
        if g.len() == 0 {
            return Ok(src);
        }
        let first_end = src.window_end(g.start);
        let last_end = src.window_end(g.last());
        let lowest = first_end - range;
        let inner = Grid {
            start: lowest.div_euclid(step) * step + step,
            end: last_end,
            step,
        };
        let series = self.eval_vector(&sq.expr, inner)?;
        src.source = RangeSeriesSource::Evaluated(series);
        Ok(src)
    }

    /// Walks the series of a range source one at a time, handing out a
    /// lazy iterator over its samples (staleness markers removed). Storage
    /// series are decoded as they are consumed, so only what the caller
    /// buffers is in memory.
    pub fn for_each_range_series(
        &mut self,
        src: RangeSource,
        mut f: impl FnMut(
            &mut Self,
            Labels,
            bool,
            &mut dyn Iterator<Item = Sample>,
        ) -> Result<(), EvalError>,
    ) -> Result<(), EvalError> {
        match src.source {
            RangeSeriesSource::Storage(list) => {
                for s in list {
                    self.tick()?;
                    let mut it = s.samples.filter(|x| !is_stale_nan(x.v));
                    f(self, s.labels, false, &mut it)?;
                }
            }
            RangeSeriesSource::Evaluated(list) => {
                let total: usize = list.iter().map(|s| s.points.len()).sum();
                for s in list {
                    self.tick()?;
                    let mut it = s.points.into_iter().filter(|x| !is_stale_nan(x.v));
                    f(self, s.labels, s.drop_name, &mut it)?;
                }
                self.release(total);
            }
        }
        Ok(())
    }

    /// A range vector as a value (an instant query's result): the raw
    /// samples in the window of the single step.
    fn materialize_range(&mut self, src: RangeSource, g: Grid) -> Result<Vec<Series>, EvalError> {
        if g.len() != 1 {
            return Err(EvalError::BadQuery(
                "a range vector cannot be evaluated at more than one step; use it inside a function such as rate()".to_string(),
            ));
        }
        let end = src.window_end(g.start);
        let start = end - src.range;
        let (before, after) = src.margins;
        let smoothed = src.mode == Some(SelectorMode::Smoothed);
        let extend = src.mode.is_some();
        let mut out = Vec::new();
        self.for_each_range_series(src, |ev, labels, drop_name, samples| {
            let mut points = Vec::new();
            let mut charged = 0;
            for x in samples {
                if x.t > end + after {
                    break;
                }
                if x.t > start - before {
                    points.push(x);
                    ev.charge_growth(&mut charged, points.len(), false)?;
                }
            }
            if extend {
                // The boundary values replace the samples beyond the range;
                // the result is accounted afresh below.
                points =
                    extended::extended_points(&points, start, end, smoothed).unwrap_or_default();
                ev.release(charged);
                charged = 0;
            }
            ev.charge_growth(&mut charged, points.len(), true)?;
            if !points.is_empty() {
                out.push(Series::new(labels, drop_name, points));
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// The samples of one series inside a window that only moves forward,
/// fed lazily from the series' iterator. Holds at most the current window
/// (plus a bounded amount of already-left samples), accounted against the
/// sample limit.
pub(crate) struct SlidingWindow<'i> {
    it: &'i mut dyn Iterator<Item = Sample>,
    pending: Option<Sample>,
    buf: Vec<Sample>,
    head: usize,
    charged: usize,
    /// Number of decreases between neighbours inside the window, when
    /// tracked (counter resets for rate/increase).
    resets: Option<usize>,
}

impl<'i> SlidingWindow<'i> {
    /// A window over `it`, buffering into `buf` (emptied first; pass the
    /// buffer [`SlidingWindow::finish`] returned to reuse its allocation).
    pub fn new(
        it: &'i mut dyn Iterator<Item = Sample>,
        track_resets: bool,
        mut buf: Vec<Sample>,
    ) -> Self {
        buf.clear();
        SlidingWindow {
            it,
            pending: None,
            buf,
            head: 0,
            charged: 0,
            resets: track_resets.then_some(0),
        }
    }

    /// Moves the window to `(start, end]`; neither bound may decrease
    /// between calls.
    pub fn advance(
        &mut self,
        ev: &mut Evaluator<'_>,
        start: i64,
        end: i64,
    ) -> Result<(), EvalError> {
        loop {
            let next = match self.pending.take() {
                Some(x) => Some(x),
                None => self.it.next(),
            };
            let Some(x) = next else { break };
            if x.t > end {
                self.pending = Some(x);
                break;
            }
            if x.t <= start {
                // Already left the window: never buffered.
                continue;
            }
            if let (Some(r), Some(last)) = (self.resets.as_mut(), self.buf.last())
                && self.buf.len() > self.head
                && x.v < last.v
            {
                *r += 1;
            }
            self.buf.push(x);
            let len = self.buf.len();
            ev.charge_growth(&mut self.charged, len, false)?;
        }
        while self.head < self.buf.len() && self.buf[self.head].t <= start {
            if let Some(r) = self.resets.as_mut()
                && let Some(next) = self.buf.get(self.head + 1)
                && next.v < self.buf[self.head].v
            {
                *r -= 1;
            }
            self.head += 1;
        }
        // Drop samples that left the window once they are the larger part.
        let len = self.buf.len();
        if self.head > 64 && self.head * 2 > len {
            ev.charge_growth(&mut self.charged, len, true)?;
            self.buf.drain(..self.head);
            ev.release(self.head);
            self.charged -= self.head;
            self.head = 0;
        }
        Ok(())
    }

    /// The samples in the current window.
    pub fn samples(&self) -> &[Sample] {
        &self.buf[self.head..]
    }

    /// Whether the current window contains a counter reset.
    pub fn has_reset(&self) -> bool {
        self.resets.is_some_and(|r| r > 0)
    }

    /// Gives back the accounted samples.
    pub fn finish(self, ev: &mut Evaluator<'_>) -> Vec<Sample> {
        ev.release(self.charged);
        self.buf
    }
}

/// Advances `it` to the newest sample at or before `ref_t` and returns it
/// if it is within the lookback window and not a staleness marker.
fn newest_at(
    it: &mut std::iter::Peekable<Box<dyn Iterator<Item = Sample> + Send>>,
    cur: &mut Option<Sample>,
    ref_t: i64,
    lookback: i64,
) -> Option<Sample> {
    while let Some(next) = it.peek().copied() {
        if next.t > ref_t {
            break;
        }
        *cur = Some(next);
        it.next();
    }
    match *cur {
        Some(c) if c.t > ref_t - lookback && !is_stale_nan(c.v) => Some(c),
        _ => None,
    }
}

/// The matcher sets a selector stands for: one set, or one per `or`
/// alternative.
fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>, EvalError> {
    let convert = |ms: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>, EvalError> {
        let mut out = Vec::with_capacity(ms.len() + 1);
        if let Some(name) = &vs.name {
            out.push(Matcher::equal(METRIC_NAME, name.clone()));
        }
        for m in ms {
            out.push(Matcher::from_promql(m).map_err(|e| EvalError::BadQuery(e.to_string()))?);
        }
        Ok(out)
    };
    if vs.matchers.or_matchers.is_empty() {
        Ok(vec![convert(&vs.matchers.matchers)?])
    } else {
        vs.matchers
            .or_matchers
            .iter()
            .map(|alt| convert(alt))
            .collect()
    }
}

pub(crate) fn val_type(v: &Val) -> &'static str {
    match v {
        Val::Scalar(_) => "scalar",
        Val::Str(_) => "string",
        Val::Vector(_) => "instant vector",
        Val::Matrix(_) => "range vector",
    }
}

/// Removes names marked for removal, then the metric-name-less duplicates
/// that removal can create: series that never overlap in time merge, series
/// that do are an error (as in Prometheus).
fn cleanup(series: Vec<Series>) -> Result<Vec<Series>, EvalError> {
    let mut out: Vec<Series> = series
        .into_iter()
        .filter(|s| !s.points.is_empty())
        .map(|mut s| {
            if s.drop_name {
                s.labels = drop_metric_owned(std::mem::take(&mut s.labels));
                s.drop_name = false;
            }
            s
        })
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut merged: Vec<Series> = Vec::with_capacity(out.len());
    for s in out {
        match merged.last_mut() {
            Some(last) if last.labels == s.labels => {
                last.points.extend(s.points);
                last.points.sort_by_key(|p| p.t);
                if last.points.windows(2).any(|w| w[0].t == w[1].t) {
                    return Err(duplicate_labelset());
                }
            }
            _ => merged.push(s),
        }
    }
    Ok(merged)
}

pub(crate) fn duplicate_labelset() -> EvalError {
    EvalError::Execution("vector cannot contain metrics with the same labelset".to_string())
}

/// Turns the top-level value of an instant query into the API value.
pub(crate) fn finish_instant(
    _ev: &mut Evaluator<'_>,
    val: Val,
    ts: Timestamp,
) -> Result<Value, EvalError> {
    Ok(match val {
        Val::Scalar(v) => Value::Scalar(Scalar {
            t: ts,
            v: v.first().copied().unwrap_or(f64::NAN),
        }),
        Val::Str(s) => Value::String { t: ts, v: s },
        Val::Vector(series) => {
            let mut out: Vec<VectorSample> = Vec::with_capacity(series.len());
            for s in series {
                let Some(p) = s.points.first() else { continue };
                let labels = if s.drop_name {
                    drop_metric_owned(s.labels)
                } else {
                    s.labels
                };
                out.push(VectorSample {
                    labels,
                    t: ts,
                    v: p.v,
                    h: None,
                });
            }
            // Names removed at the end can make two results identical.
            let mut seen: HashMap<u64, Vec<usize>> = HashMap::with_capacity(out.len());
            for (i, s) in out.iter().enumerate() {
                let same = seen.entry(signature(&s.labels, |_| true)).or_default();
                if same.iter().any(|&j| out[j].labels == s.labels) {
                    return Err(duplicate_labelset());
                }
                same.push(i);
            }
            Value::Vector(out)
        }
        Val::Matrix(series) => Value::Matrix(
            cleanup(series)?
                .into_iter()
                .map(|s| RangeSeries {
                    labels: s.labels,
                    samples: s.points,
                })
                .collect(),
        ),
    })
}

/// Turns the top-level value of a range query into the API matrix.
pub(crate) fn finish_range(_ev: &mut Evaluator<'_>, val: Val, g: Grid) -> Result<Value, EvalError> {
    let series = match val {
        Val::Scalar(v) => vec![Series::new(
            Labels::empty(),
            false,
            v.iter()
                .enumerate()
                .map(|(i, &v)| Sample { t: g.ts(i), v })
                .collect(),
        )],
        Val::Vector(s) => s,
        other => {
            return Err(EvalError::BadQuery(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                val_type(&other)
            )));
        }
    };
    Ok(Value::Matrix(
        cleanup(series)?
            .into_iter()
            .map(|s| RangeSeries {
                labels: s.labels,
                samples: s.points,
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_steps() {
        let g = Grid {
            start: 0,
            end: 100,
            step: 30,
        };
        assert_eq!(g.len(), 4);
        assert_eq!(g.last(), 90);
        assert_eq!(g.index(60), 2);
        assert_eq!(Grid::instant(5).len(), 1);
        assert_eq!(
            Grid {
                start: 10,
                end: 0,
                step: 1
            }
            .len(),
            0
        );
    }
}
