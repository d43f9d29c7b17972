//! Binary operators: arithmetic, comparisons (filtering or `bool`), the set
//! operators `and`/`or`/`unless`, and vector matching (`on`, `ignoring`,
//! `group_left`, `group_right`).
//!
//! Matching is decided per step, as in Prometheus (a series may be missing
//! at some steps), but signatures and result labels are computed once per
//! series or per matched pair, not per step.

use std::collections::{HashMap, HashSet};

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB,
};
use promql_parser::parser::{BinModifier, BinaryExpr, Expr, LabelModifier, VectorMatchCardinality};

use super::EvalError;
use super::eval::{Evaluator, Grid, duplicate_labelset, val_type};
use super::labels::{
    is_metadata_label, match_labels, prom_string, signature_ignoring, signature_on,
};
use super::value::{Series, Val};
use crate::model::{Labels, Sample};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl Op {
    fn from_token(id: u16) -> Option<Op> {
        Some(match id {
            T_ADD => Op::Add,
            T_SUB => Op::Sub,
            T_MUL => Op::Mul,
            T_DIV => Op::Div,
            T_MOD => Op::Mod,
            T_POW => Op::Pow,
            T_ATAN2 => Op::Atan2,
            T_EQLC => Op::Eq,
            T_NEQ => Op::Ne,
            T_GTR => Op::Gt,
            T_LSS => Op::Lt,
            T_GTE => Op::Ge,
            T_LTE => Op::Le,
            T_LAND => Op::And,
            T_LOR => Op::Or,
            T_LUNLESS => Op::Unless,
            _ => return None,
        })
    }

    fn is_comparison(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Gt | Op::Lt | Op::Ge | Op::Le)
    }

    /// Arithmetic changes what the value means, so the metric name (and
    /// type and unit) no longer apply.
    fn changes_metric(self) -> bool {
        matches!(
            self,
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Mod | Op::Pow | Op::Atan2
        )
    }

    fn arith(self, l: f64, r: f64) -> f64 {
        match self {
            Op::Add => l + r,
            Op::Sub => l - r,
            Op::Mul => l * r,
            Op::Div => l / r,
            Op::Mod => l % r,
            Op::Pow => l.powf(r),
            Op::Atan2 => l.atan2(r),
            _ => f64::NAN,
        }
    }

    fn compare(self, l: f64, r: f64) -> bool {
        match self {
            Op::Eq => l == r,
            Op::Ne => l != r,
            Op::Gt => l > r,
            Op::Lt => l < r,
            Op::Ge => l >= r,
            Op::Le => l <= r,
            _ => false,
        }
    }

    /// Result of `l op r` for two floats: the value and whether the element
    /// is kept (comparisons filter).
    fn apply(self, l: f64, r: f64) -> (f64, bool) {
        if self.is_comparison() {
            (l, self.compare(l, r))
        } else {
            (self.arith(l, r), true)
        }
    }
}

pub(crate) fn eval(
    ev: &mut Evaluator<'_>,
    _e: &Expr,
    b: &BinaryExpr,
    g: Grid,
) -> Result<Val, EvalError> {
    let op = Op::from_token(b.op.id()).ok_or_else(|| {
        EvalError::Execution(format!("binary operator {} is not supported", b.op))
    })?;
    let modifier = b.modifier.clone().unwrap_or_default();
    let lhs = ev.eval(&b.lhs, g)?;
    let rhs = ev.eval(&b.rhs, g)?;
    let inputs = lhs.samples() + rhs.samples();
    let out = match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => Val::Scalar(
            l.iter()
                .zip(&r)
                .map(|(&l, &r)| {
                    if op.is_comparison() {
                        if op.compare(l, r) { 1.0 } else { 0.0 }
                    } else {
                        op.arith(l, r)
                    }
                })
                .collect(),
        ),
        (Val::Vector(v), Val::Scalar(s)) => {
            Val::Vector(vector_scalar(op, v, &s, false, modifier.return_bool, g))
        }
        (Val::Scalar(s), Val::Vector(v)) => {
            Val::Vector(vector_scalar(op, v, &s, true, modifier.return_bool, g))
        }
        (Val::Vector(l), Val::Vector(r)) => Val::Vector(match op {
            Op::And | Op::Or | Op::Unless => set_op(ev, op, l, r, &modifier, g)?,
            _ => vector_vector(ev, op, l, r, &modifier, g)?,
        }),
        (l, r) => {
            return Err(EvalError::Execution(format!(
                "binary expression must contain only scalar and instant vector types, got {} and {}",
                val_type(&l),
                val_type(&r)
            )));
        }
    };
    ev.settle(inputs, &out)?;
    Ok(out)
}

fn vector_scalar(
    op: Op,
    mut v: Vec<Series>,
    s: &[f64],
    scalar_left: bool,
    return_bool: bool,
    g: Grid,
) -> Vec<Series> {
    for series in &mut v {
        series.points.retain_mut(|p| {
            let sv = s[g.index(p.t)];
            let (l, r) = if scalar_left { (sv, p.v) } else { (p.v, sv) };
            let (mut value, mut keep) = op.apply(l, r);
            if op.is_comparison() {
                // The vector's own value is kept, whichever side it is on.
                value = p.v;
            }
            if return_bool {
                value = if keep { 1.0 } else { 0.0 };
                keep = true;
            }
            p.v = value;
            keep
        });
        if op.changes_metric() || return_bool {
            series.drop_name = true;
        }
    }
    v.retain(|s| !s.points.is_empty());
    v
}

/// How two vectors are matched.
struct Matching {
    on: bool,
    names: Vec<String>,
    card: VectorMatchCardinality,
    include: Vec<String>,
}

impl Matching {
    fn new(m: &BinModifier) -> Matching {
        let (on, names) = match &m.matching {
            Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
            None => (false, Vec::new()),
        };
        let include = match &m.card {
            VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => {
                l.labels.clone()
            }
            _ => Vec::new(),
        };
        Matching {
            on,
            names,
            card: m.card.clone(),
            include,
        }
    }

    fn signature(&self, l: &Labels) -> u64 {
        if self.on {
            signature_on(l, &self.names)
        } else {
            signature_ignoring(l, &self.names)
        }
    }
}

/// Maps signatures of both sides to dense ordinals.
fn ordinals(lhs: &[Series], rhs: &[Series], m: &Matching) -> (Vec<u32>, Vec<u32>, usize) {
    let mut map: HashMap<u64, u32> = HashMap::new();
    let mut ord = |s: &Series| {
        let sig = m.signature(&s.labels);
        let next = map.len() as u32;
        *map.entry(sig).or_insert(next)
    };
    let l: Vec<u32> = lhs.iter().map(&mut ord).collect();
    let r: Vec<u32> = rhs.iter().map(&mut ord).collect();
    (l, r, map.len())
}

/// Per-series cursors that yield, step by step, the series present at that
/// step.
pub(crate) struct StepCursor {
    pos: Vec<usize>,
}

impl StepCursor {
    pub fn new(n: usize) -> Self {
        StepCursor { pos: vec![0; n] }
    }

    /// Indices (and values) of the series that have a point at `t`.
    pub fn at(&mut self, series: &[Series], t: i64, out: &mut Vec<(usize, f64)>) {
        out.clear();
        for (i, s) in series.iter().enumerate() {
            let p = &mut self.pos[i];
            if let Some(pt) = s.points.get(*p)
                && pt.t == t
            {
                out.push((i, pt.v));
                *p += 1;
            }
        }
    }
}

fn set_op(
    ev: &mut Evaluator<'_>,
    op: Op,
    lhs: Vec<Series>,
    rhs: Vec<Series>,
    modifier: &BinModifier,
    g: Grid,
) -> Result<Vec<Series>, EvalError> {
    let m = Matching::new(modifier);
    let (lord, rord, nsig) = ordinals(&lhs, &rhs, &m);
    let mut lcur = StepCursor::new(lhs.len());
    let mut rcur = StepCursor::new(rhs.len());
    let (mut lnow, mut rnow) = (Vec::new(), Vec::new());
    let mut stamp = vec![u32::MAX; nsig];
    let mut keep_l: Vec<Vec<Sample>> = vec![Vec::new(); lhs.len()];
    let mut keep_r: Vec<Vec<Sample>> = vec![Vec::new(); rhs.len()];
    for i in 0..g.len() {
        ev.tick()?;
        let t = g.ts(i);
        let step = i as u32;
        lcur.at(&lhs, t, &mut lnow);
        rcur.at(&rhs, t, &mut rnow);
        match op {
            Op::And | Op::Unless => {
                for &(j, _) in &rnow {
                    stamp[rord[j] as usize] = step;
                }
                let want = op == Op::And;
                for &(j, v) in &lnow {
                    if (stamp[lord[j] as usize] == step) == want {
                        keep_l[j].push(Sample { t, v });
                    }
                }
            }
            _ => {
                for &(j, v) in &lnow {
                    stamp[lord[j] as usize] = step;
                    keep_l[j].push(Sample { t, v });
                }
                for &(j, v) in &rnow {
                    if stamp[rord[j] as usize] != step {
                        keep_r[j].push(Sample { t, v });
                    }
                }
            }
        }
    }
    let mut out: Vec<Series> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let pairs = lhs
        .into_iter()
        .zip(keep_l)
        .chain(rhs.into_iter().zip(keep_r));
    for (s, points) in pairs {
        if points.is_empty() {
            continue;
        }
        if op == Op::Or {
            if let Some(&k) = index.get(&s.labels) {
                let target = &mut out[k].points;
                target.extend(points);
                target.sort_by_key(|p| p.t);
                continue;
            }
            index.insert(s.labels.clone(), out.len());
        }
        out.push(Series::new(s.labels, s.drop_name, points));
    }
    Ok(out)
}

fn result_labels(l: &Labels, r: &Labels, op: Op, m: &Matching) -> Labels {
    let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
    let mut kept: Vec<crate::model::Label> = l
        .iter()
        .filter(|lb| {
            if op.changes_metric() && is_metadata_label(&lb.name) {
                return false;
            }
            if one_to_one {
                let listed = m.names.contains(&lb.name);
                if m.on { listed } else { !listed }
            } else {
                true
            }
        })
        .cloned()
        .collect();
    for name in &m.include {
        kept.retain(|lb| lb.name != *name);
        if let Some(v) = r.get(name) {
            kept.push(crate::model::Label::new(name.clone(), v));
        }
    }
    Labels::from_vec(kept)
}

/// Output state of a vector-vector operation, shared by matched and filled
/// pairs.
struct PairOutput {
    pair_out: HashMap<(usize, usize), usize>,
    out_index: HashMap<Labels, usize>,
    out: Vec<Series>,
    /// Per signature: step at which it last matched (one-to-one check).
    matched_stamp: Vec<u32>,
    /// (signature, output series) pairs seen at this step (group check).
    group_results: HashSet<(u32, usize)>,
}

/// The "many" side of a pair: a series, or a fill value standing in for a
/// missing one (its labels are the match labels of the other side).
const FILLED: usize = usize::MAX;

#[allow(clippy::too_many_arguments)]
fn vector_vector(
    ev: &mut Evaluator<'_>,
    op: Op,
    lhs: Vec<Series>,
    rhs: Vec<Series>,
    modifier: &BinModifier,
    g: Grid,
) -> Result<Vec<Series>, EvalError> {
    let m = Matching::new(modifier);
    let return_bool = modifier.return_bool;
    let swapped = matches!(m.card, VectorMatchCardinality::OneToMany(_));
    let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
    // The "many" side is `many`, the "one" side `one`; for group_right the
    // operands are swapped and swapped back when computing values. Fill
    // values follow the swapped sides, as in Prometheus: the right fill
    // stands in for a missing "one", the left fill for a missing "many".
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    let fill_one = modifier.fill_values.rhs;
    let fill_many = modifier.fill_values.lhs;
    let (mord, oord, nsig) = ordinals(&many, &one, &m);
    let mut mcur = StepCursor::new(many.len());
    let mut ocur = StepCursor::new(one.len());
    let (mut mnow, mut onow) = (Vec::new(), Vec::new());
    // Per signature: the step it was last set at, and which one-side series.
    let mut one_stamp = vec![u32::MAX; nsig];
    let mut one_at = vec![0usize; nsig];
    let mut one_val = vec![0f64; nsig];
    let mut used_stamp = vec![u32::MAX; nsig];
    let mut st = PairOutput {
        pair_out: HashMap::new(),
        out_index: HashMap::new(),
        out: Vec::new(),
        matched_stamp: vec![u32::MAX; nsig],
        group_results: HashSet::new(),
    };
    for i in 0..g.len() {
        ev.tick()?;
        let t = g.ts(i);
        let step = i as u32;
        mcur.at(&many, t, &mut mnow);
        ocur.at(&one, t, &mut onow);
        let no_fill = fill_one.is_none() && fill_many.is_none();
        if (mnow.is_empty() && onow.is_empty()) || ((mnow.is_empty() || onow.is_empty()) && no_fill)
        {
            continue;
        }
        for &(j, ov) in &onow {
            let sig = oord[j] as usize;
            if one_stamp[sig] == step {
                let prev = &one[one_at[sig]];
                let side = if swapped { "left" } else { "right" };
                // Reported in label order so the message is stable.
                let (a, b) = if prev.labels <= one[j].labels {
                    (&prev.labels, &one[j].labels)
                } else {
                    (&one[j].labels, &prev.labels)
                };
                return Err(EvalError::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    prom_string(&match_labels(&one[j].labels, m.on, &m.names)),
                    prom_string(a),
                    prom_string(b),
                )));
            }
            one_stamp[sig] = step;
            one_at[sig] = j;
            one_val[sig] = ov;
        }
        st.group_results.clear();
        let ctx = PairCtx {
            op,
            m: &m,
            return_bool,
            one_to_one,
            swapped,
            many: &many,
            one: &one,
            t,
            step,
        };
        for &(j, mv) in &mnow {
            let sig = mord[j] as usize;
            if one_stamp[sig] == step {
                used_stamp[sig] = step;
                ctx.pair(&mut st, j, one_at[sig], mv, one_val[sig], sig)?;
            } else if let Some(f) = fill_one {
                used_stamp[sig] = step;
                ctx.pair(&mut st, j, FILLED, mv, f, sig)?;
            }
        }
        if let Some(f) = fill_many {
            for &(k, ov) in &onow {
                let sig = oord[k] as usize;
                if used_stamp[sig] != step {
                    ctx.pair(&mut st, FILLED, k, f, ov, sig)?;
                }
            }
        }
    }
    let mut out = st.out;
    out.retain(|s| !s.points.is_empty());
    Ok(out)
}

struct PairCtx<'a> {
    op: Op,
    m: &'a Matching,
    return_bool: bool,
    one_to_one: bool,
    swapped: bool,
    many: &'a [Series],
    one: &'a [Series],
    t: i64,
    step: u32,
}

impl PairCtx<'_> {
    /// Applies the operator to one matched (or filled) pair at this step.
    #[allow(clippy::too_many_arguments)]
    fn pair(
        &self,
        st: &mut PairOutput,
        j: usize,
        k: usize,
        mv: f64,
        ov: f64,
        sig: usize,
    ) -> Result<(), EvalError> {
        let (l, r) = if self.swapped { (ov, mv) } else { (mv, ov) };
        let (mut value, mut keep) = self.op.apply(l, r);
        if self.return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        let out_idx = match st.pair_out.get(&(j, k)) {
            Some(&o) => o,
            None => {
                let m = self.m;
                let (many_labels, one_labels) = match (j, k) {
                    (FILLED, k) => {
                        let one = &self.one[k].labels;
                        (match_labels(one, m.on, &m.names), one.clone())
                    }
                    (j, FILLED) => {
                        let many = &self.many[j].labels;
                        (many.clone(), match_labels(many, m.on, &m.names))
                    }
                    (j, k) => (self.many[j].labels.clone(), self.one[k].labels.clone()),
                };
                let labels = result_labels(&many_labels, &one_labels, self.op, m);
                let many_drop = j != FILLED && self.many[j].drop_name;
                let drop = self.return_bool || (!self.op.changes_metric() && many_drop);
                let o = match st.out_index.get(&labels) {
                    Some(&o) => o,
                    None => {
                        st.out_index.insert(labels.clone(), st.out.len());
                        st.out.push(Series::new(labels, drop, Vec::new()));
                        st.out.len() - 1
                    }
                };
                st.pair_out.insert((j, k), o);
                o
            }
        };
        if self.one_to_one {
            if st.matched_stamp[sig] == self.step {
                return Err(EvalError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".to_string(),
                ));
            }
            st.matched_stamp[sig] = self.step;
        } else if !st.group_results.insert((sig as u32, out_idx)) {
            return Err(EvalError::Execution(
                "multiple matches for labels: grouping labels must ensure unique matches"
                    .to_string(),
            ));
        }
        if !keep {
            return Ok(());
        }
        let points = &mut st.out[out_idx].points;
        if points.last().is_some_and(|p| p.t == self.t) {
            return Err(duplicate_labelset());
        }
        points.push(Sample {
            t: self.t,
            v: value,
        });
        Ok(())
    }
}
