//! Rule files: Prometheus's format (`groups:` of recording and alerting
//! rules), read strictly and validated into [`RuleGroup`]s.
//!
//! Data path: `rule_files` globs -> [`load_files`] -> YAML with every value
//! still carrying its position -> pure validation that collects every
//! problem (`file:line:col: group "g", rule 2 "Name": message`) -> typed
//! groups with parsed PromQL and parsed templates, ready for the group
//! loops. A file either loads completely or contributes its errors; the
//! caller applies all groups or none.
//!
//! watchpost extensions, which Prometheus would reject as unknown keys:
//! `keep_firing_while: <expr>` on an alerting rule (value hysteresis) and
//! `evaluation: interval | on_scrape` on a group.
//!
//! This module only reads the files it is given; it owns no state.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use super::template::AlertTemplate;
use crate::config::{Diagnostic, Diags, RuleEvaluation, yaml_error};
use crate::model::{Labels, METRIC_NAME, is_valid_label_name, parse_duration};
use crate::promql::Query;

type S<T> = Spanned<T>;

/// A recording rule: stores the result of `expr` under a new name.
#[derive(Debug, Clone)]
pub struct RecordingRule {
    /// The metric name results are stored under.
    pub record: String,
    pub expr: Arc<Query>,
    /// Labels added to (or overriding) every result series, group labels
    /// included.
    pub labels: Labels,
}

/// An alerting rule.
#[derive(Debug, Clone)]
pub struct AlertingRule {
    pub alert: String,
    pub expr: Arc<Query>,
    /// How long an alert stays pending before it fires (`for`).
    pub for_: Duration,
    /// How long a firing alert keeps firing after `expr` stopped returning it.
    pub keep_firing_for: Duration,
    /// watchpost extension: a firing alert keeps firing while this
    /// expression returns a series with the alert's labels (see
    /// [`keep_firing_key`](super::alerting) for the matching rule).
    pub keep_firing_while: Option<Arc<Query>>,
    /// Label templates as written (group labels included), in name order.
    pub labels: Labels,
    /// Annotation templates as written, in name order.
    pub annotations: BTreeMap<String, String>,
    pub(crate) label_templates: Vec<(String, AlertTemplate)>,
    pub(crate) annotation_templates: Vec<(String, AlertTemplate)>,
}

/// One rule of a group.
#[derive(Debug, Clone)]
pub enum Rule {
    Recording(RecordingRule),
    Alerting(AlertingRule),
}

impl Rule {
    /// The record name or alert name.
    pub fn name(&self) -> &str {
        match self {
            Rule::Recording(r) => &r.record,
            Rule::Alerting(a) => &a.alert,
        }
    }

    pub fn expr(&self) -> &Arc<Query> {
        match self {
            Rule::Recording(r) => &r.expr,
            Rule::Alerting(a) => &a.expr,
        }
    }

    pub fn labels(&self) -> &Labels {
        match self {
            Rule::Recording(r) => &r.labels,
            Rule::Alerting(a) => &a.labels,
        }
    }

    /// What carries alert state and written series across a reload: a rule
    /// with the same name, labels and query is the same rule.
    pub(crate) fn identity(&self) -> RuleIdentity {
        RuleIdentity {
            name: self.name().to_string(),
            labels: self.labels().clone(),
            expr: self.expr().text().to_string(),
        }
    }
}

/// See [`Rule::identity`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RuleIdentity {
    pub name: String,
    pub labels: Labels,
    pub expr: String,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Rule::Recording(a), Rule::Recording(b)) => {
                a.record == b.record && a.expr.text() == b.expr.text() && a.labels == b.labels
            }
            (Rule::Alerting(a), Rule::Alerting(b)) => {
                a.alert == b.alert
                    && a.expr.text() == b.expr.text()
                    && a.for_ == b.for_
                    && a.keep_firing_for == b.keep_firing_for
                    && a.keep_firing_while.as_ref().map(|q| q.text())
                        == b.keep_firing_while.as_ref().map(|q| q.text())
                    && a.labels == b.labels
                    && a.annotations == b.annotations
            }
            _ => false,
        }
    }
}

/// One rule group, as loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleGroup {
    pub name: String,
    /// The file the group came from, as the glob produced it.
    pub file: String,
    /// The group's own `interval`, or None for the global default.
    pub interval: Option<Duration>,
    /// The group's own `query_offset`, or None for the global default.
    pub query_offset: Option<Duration>,
    /// Most alerts / series a rule may produce; 0 means no limit.
    pub limit: usize,
    /// The group's own `evaluation`, or None for the global default.
    pub evaluation: Option<RuleEvaluation>,
    pub rules: Vec<Rule>,
}

impl RuleGroup {
    /// The metric names the group's expressions select, for on_scrape
    /// triggering. [`SelectedNames::All`] when any selector has no fixed
    /// metric name (`{job="x"}`, `{__name__=~"a.*"}`).
    pub fn selected_names(&self) -> SelectedNames {
        let mut names = std::collections::BTreeSet::new();
        let mut all = false;
        for r in &self.rules {
            collect_names(r.expr().expr(), &mut names, &mut all);
            if let Rule::Alerting(a) = r
                && let Some(q) = &a.keep_firing_while
            {
                collect_names(q.expr(), &mut names, &mut all);
            }
        }
        if all {
            SelectedNames::All
        } else {
            SelectedNames::Names(names.into_iter().collect())
        }
    }
}

/// See [`RuleGroup::selected_names`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectedNames {
    All,
    /// Sorted, unique.
    Names(Vec<String>),
}

fn collect_names(e: &Expr, out: &mut std::collections::BTreeSet<String>, all: &mut bool) {
    match e {
        Expr::VectorSelector(vs) => selector_names(vs, out, all),
        Expr::MatrixSelector(ms) => selector_names(&ms.vs, out, all),
        Expr::Aggregate(a) => {
            collect_names(&a.expr, out, all);
            if let Some(p) = &a.param {
                collect_names(p, out, all);
            }
        }
        Expr::Unary(u) => collect_names(&u.expr, out, all),
        Expr::Binary(b) => {
            collect_names(&b.lhs, out, all);
            collect_names(&b.rhs, out, all);
        }
        Expr::Paren(p) => collect_names(&p.expr, out, all),
        Expr::Subquery(s) => collect_names(&s.expr, out, all),
        Expr::Call(c) => {
            for a in &c.args.args {
                collect_names(a, out, all);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        // Unknown nodes: trigger on everything rather than miss data.
        Expr::Extension(_) => *all = true,
    }
}

fn selector_names(
    vs: &promql_parser::parser::VectorSelector,
    out: &mut std::collections::BTreeSet<String>,
    all: &mut bool,
) {
    if let Some(n) = &vs.name {
        out.insert(n.clone());
        return;
    }
    let fixed = |ms: &[promql_parser::label::Matcher]| {
        ms.iter()
            .find(|m| m.name == METRIC_NAME && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.clone())
    };
    if vs.matchers.or_matchers.is_empty() {
        match fixed(&vs.matchers.matchers) {
            Some(n) => {
                out.insert(n);
            }
            None => *all = true,
        }
        return;
    }
    for branch in &vs.matchers.or_matchers {
        match fixed(branch).or_else(|| fixed(&vs.matchers.matchers)) {
            Some(n) => {
                out.insert(n);
            }
            None => *all = true,
        }
    }
}

/// One problem found while loading rule files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleFileProblem {
    /// A file named by a pattern could not be read.
    Read { path: String, message: String },
    /// A `rule_files` pattern is not a valid glob.
    Pattern { pattern: String, message: String },
    /// A problem inside a file, with its position.
    At(Diagnostic),
}

impl fmt::Display for RuleFileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleFileProblem::Read { path, message } => {
                write!(f, "{path}: cannot read rule file: {message}")
            }
            RuleFileProblem::Pattern { pattern, message } => write!(
                f,
                "rule_files: {pattern:?} is not a valid file pattern: {message}"
            ),
            RuleFileProblem::At(d) => d.fmt(f),
        }
    }
}

/// Why rule files could not be loaded: every problem in every file, in
/// file and position order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct RuleLoadError {
    pub problems: Vec<RuleFileProblem>,
}

impl RuleLoadError {
    /// One line per problem.
    pub fn messages(&self) -> Vec<String> {
        self.problems.iter().map(|p| p.to_string()).collect()
    }
}

/// How strictly files are read.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Accept keys Prometheus does not know (promtool's
    /// `--ignore-unknown-fields`); by default they are errors.
    pub ignore_unknown_fields: bool,
}

/// Expands `rule_files` patterns (Prometheus's: a `*` or `?` only in the
/// last path element) into the files they name, in pattern order, each
/// file once. A pattern that matches nothing is not an error.
pub fn expand_patterns(patterns: &[String]) -> Result<Vec<PathBuf>, RuleLoadError> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut problems = Vec::new();
    for p in patterns {
        match glob::glob(p) {
            Ok(paths) => {
                let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
                found.sort();
                for f in found {
                    if !files.contains(&f) {
                        files.push(f);
                    }
                }
            }
            Err(e) => problems.push(RuleFileProblem::Pattern {
                pattern: p.clone(),
                message: e.msg.to_string(),
            }),
        }
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(RuleLoadError { problems })
    }
}

/// Loads and validates every file the patterns name. All or nothing: any
/// problem in any file makes the whole load fail, with every problem
/// listed.
pub fn load_files(patterns: &[String], opts: LoadOptions) -> Result<Vec<RuleGroup>, RuleLoadError> {
    let files = expand_patterns(patterns)?;
    load_paths(&files, opts)
}

/// Loads and validates the given files (no glob expansion).
pub fn load_paths(files: &[PathBuf], opts: LoadOptions) -> Result<Vec<RuleGroup>, RuleLoadError> {
    let mut groups = Vec::new();
    let mut problems = Vec::new();
    for f in files {
        let name = f.display().to_string();
        match std::fs::read_to_string(f) {
            Ok(text) => match parse_str(&text, &name, opts) {
                Ok(g) => groups.extend(g),
                Err(e) => problems.extend(e.problems),
            },
            Err(e) => problems.push(RuleFileProblem::Read {
                path: name,
                message: e.to_string(),
            }),
        }
    }
    if problems.is_empty() {
        Ok(groups)
    } else {
        Err(RuleLoadError { problems })
    }
}

/// Parses and validates one rule file's text; `file` names it in errors
/// and in the groups.
pub fn parse_str(
    text: &str,
    file: &str,
    opts: LoadOptions,
) -> Result<Vec<RuleGroup>, RuleLoadError> {
    let raw: Option<RawFile> = serde_saphyr::from_str(text).map_err(|e| RuleLoadError {
        problems: vec![RuleFileProblem::At(yaml_error(&e, text, file))],
    })?;
    let raw = raw.unwrap_or_default();
    let mut diags = Diags::default();
    let groups = {
        let mut cx = Cx {
            file,
            diags: &mut diags,
            opts,
            errors: 0,
        };
        build_file(&mut cx, raw)
    };
    if diags.is_empty() {
        Ok(groups)
    } else {
        Err(RuleLoadError {
            problems: diags
                .into_sorted()
                .into_iter()
                .map(RuleFileProblem::At)
                .collect(),
        })
    }
}

/// Rules recorded (or alerts defined) more than once with the same labels,
/// across the given groups: promtool's duplicate-rule lint. Each duplicate
/// is listed once, as (name, labels).
pub fn duplicate_rules(groups: &[RuleGroup]) -> Vec<(String, Labels)> {
    let mut all: Vec<(&str, &Labels)> = groups
        .iter()
        .flat_map(|g| g.rules.iter().map(|r| (r.name(), r.labels())))
        .collect();
    all.sort();
    let mut out: Vec<(String, Labels)> = Vec::new();
    for w in all.windows(2) {
        if w[0] == w[1] && out.last().is_none_or(|(n, l)| (n.as_str(), l) != w[1]) {
            out.push((w[1].0.to_string(), w[1].1.clone()));
        }
    }
    out
}

// ---------------------------------------------------------------- raw YAML

/// Declares a mapping whose known keys are read with their positions and
/// whose unknown keys are collected (so all of them are reported at once,
/// or ignored with `--ignore-unknown-fields`).
macro_rules! raw_mapping {
    ($(#[$meta:meta])* $name:ident { $($key:literal => $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        struct $name {
            $($field: Option<$ty>,)*
            unknown: Vec<S<String>>,
        }

        impl $name {
            const KEYS: &'static [&'static str] = &[$($key),*];
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a mapping")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<$name, A::Error> {
                        let mut out = $name::default();
                        while let Some(k) = m.next_key::<S<String>>()? {
                            match k.value.as_str() {
                                $($key => out.$field = m.next_value::<Option<$ty>>()?,)*
                                _ => {
                                    m.next_value::<IgnoredAny>()?;
                                    out.unknown.push(k);
                                }
                            }
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}

raw_mapping! {
    /// The whole file.
    RawFile {
        "groups" => groups: Vec<S<RawGroup>>,
    }
}

raw_mapping! {
    /// One entry of `groups`.
    RawGroup {
        "name" => name: S<String>,
        "interval" => interval: S<String>,
        "query_offset" => query_offset: S<String>,
        "limit" => limit: S<i64>,
        "labels" => labels: S<RawMap>,
        "rules" => rules: Vec<S<RawRule>>,
        "evaluation" => evaluation: S<String>,
    }
}

raw_mapping! {
    /// One entry of `rules`.
    RawRule {
        "record" => record: S<String>,
        "alert" => alert: S<String>,
        "expr" => expr: S<String>,
        "for" => for_: S<String>,
        "keep_firing_for" => keep_firing_for: S<String>,
        "keep_firing_while" => keep_firing_while: S<String>,
        "labels" => labels: S<RawMap>,
        "annotations" => annotations: S<RawMap>,
    }
}

/// A string-to-string mapping whose keys and values keep their positions,
/// in document order. A null value is the empty string, as in Prometheus.
#[derive(Debug, Default)]
struct RawMap(Vec<(S<String>, Option<S<String>>)>);

impl<'de> Deserialize<'de> for RawMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<RawMap, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<S<String>>()? {
                    out.push((k, m.next_value::<Option<S<String>>>()?));
                }
                Ok(RawMap(out))
            }
        }
        d.deserialize_map(V)
    }
}

// -------------------------------------------------------------- validation

struct Cx<'a> {
    file: &'a str,
    diags: &'a mut Diags,
    opts: LoadOptions,
    errors: usize,
}

impl Cx<'_> {
    fn err(&mut self, at: Location, msg: impl Into<String>) {
        self.errors += 1;
        self.diags.push(self.file, at, msg);
    }

    fn unknown(&mut self, ctx: &str, keys: &[S<String>], known: &[&str], what: &str) {
        if self.opts.ignore_unknown_fields {
            return;
        }
        for k in keys {
            let hint = match closest(&k.value, known) {
                Some(c) => format!("did you mean {c:?}?"),
                None => format!("not a {what} setting (check the spelling and the indentation)"),
            };
            self.err(
                k.referenced,
                format!("{ctx}unknown key {:?}: {hint}", k.value),
            );
        }
    }
}

fn build_file(cx: &mut Cx<'_>, raw: RawFile) -> Vec<RuleGroup> {
    cx.unknown("", &raw.unknown, RawFile::KEYS, "rule file");
    let mut out = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (gi, g) in raw.groups.into_iter().flatten().enumerate() {
        let at = g.referenced;
        let g = g.value;
        let name = g.name.as_ref().map(|n| n.value.clone()).unwrap_or_default();
        let ctx = if name.is_empty() {
            format!("group {}: ", gi + 1)
        } else {
            format!("group {name:?}: ")
        };
        if name.is_empty() {
            let pos = g.name.as_ref().map_or(at, |n| n.referenced);
            cx.err(
                pos,
                format!("{ctx}name must not be empty: give every group a name"),
            );
        } else if seen.contains(&name) {
            let pos = g.name.as_ref().map_or(at, |n| n.referenced);
            cx.err(
                pos,
                format!("{ctx}the group name is used twice in this file: group names must be unique within a file"),
            );
        } else {
            seen.push(name.clone());
        }
        cx.unknown(&ctx, &g.unknown, RawGroup::KEYS, "rule group");
        let interval =
            opt_duration(cx, &ctx, "interval", g.interval.as_ref()).filter(|d| !d.is_zero());
        let query_offset = opt_duration(cx, &ctx, "query_offset", g.query_offset.as_ref());
        let limit = match &g.limit {
            Some(l) if l.value < 0 => {
                cx.err(
                    l.referenced,
                    format!(
                        "{ctx}limit ({}) must not be negative: use 0 for no limit",
                        l.value
                    ),
                );
                0
            }
            Some(l) => usize::try_from(l.value).unwrap_or(usize::MAX),
            None => 0,
        };
        let evaluation = g.evaluation.as_ref().and_then(|e| {
            let mode = RuleEvaluation::parse(&e.value);
            if mode.is_none() {
                cx.err(
                    e.referenced,
                    format!(
                        "{ctx}evaluation: {:?} is not an evaluation mode: use interval or on_scrape",
                        e.value
                    ),
                );
            }
            mode
        });
        let group_labels = label_map(cx, &ctx, "labels", g.labels.as_ref());
        let mut rules = Vec::new();
        for (ri, r) in g.rules.into_iter().flatten().enumerate() {
            if let Some(rule) = build_rule(cx, &name, ri + 1, r, &group_labels) {
                rules.push(rule);
            }
        }
        out.push(RuleGroup {
            name,
            file: cx.file.to_string(),
            interval,
            query_offset,
            limit,
            evaluation,
            rules,
        });
    }
    out
}

fn build_rule(
    cx: &mut Cx<'_>,
    group: &str,
    index: usize,
    raw: S<RawRule>,
    group_labels: &[(String, String)],
) -> Option<Rule> {
    let at = raw.referenced;
    let r = raw.value;
    let name = r
        .record
        .as_ref()
        .or(r.alert.as_ref())
        .map(|n| n.value.clone())
        .unwrap_or_default();
    let ctx = if name.is_empty() {
        format!("group {group:?}, rule {index}: ")
    } else {
        format!("group {group:?}, rule {index} {name:?}: ")
    };
    let errors_before = cx.diags_len();
    cx.unknown(&ctx, &r.unknown, RawRule::KEYS, "rule");
    match (&r.record, &r.alert) {
        (Some(rec), Some(_)) => cx.err(
            rec.referenced,
            format!(
                "{ctx}only one of record and alert may be set: a rule either records or alerts"
            ),
        ),
        (None, None) => cx.err(at, format!("{ctx}one of record or alert must be set")),
        // Prometheus 3 checks record names with its default UTF-8 scheme:
        // any non-empty text is a metric name (`promql-duration-expr`).
        // Queries reach such a series as {"promql-duration-expr"}.
        (Some(rec), None) if rec.value.is_empty() => cx.err(
            rec.referenced,
            format!("{ctx}recording rule name must not be empty: give the metric name to record"),
        ),
        (None, Some(a)) if a.value.is_empty() => {
            cx.err(a.referenced, format!("{ctx}alert name must not be empty"))
        }
        _ => {}
    }
    let expr = match &r.expr {
        None => {
            cx.err(at, format!("{ctx}expr must be set"));
            None
        }
        Some(e) if e.value.trim().is_empty() => {
            cx.err(e.referenced, format!("{ctx}expr must not be empty"));
            None
        }
        Some(e) => parse_expr(cx, &ctx, "", e),
    };
    let mut labels = group_labels.to_vec();
    for (k, v) in label_map(cx, &ctx, "labels", r.labels.as_ref()) {
        labels.retain(|(n, _)| *n != k);
        labels.push((k, v));
    }
    let labels_set = Labels::from_pairs(labels.iter().cloned());
    let recording = r.record.is_some();
    if recording {
        for (key, v) in [
            ("annotations", r.annotations.as_ref().map(|a| a.referenced)),
            ("for", r.for_.as_ref().map(|a| a.referenced)),
            (
                "keep_firing_for",
                r.keep_firing_for.as_ref().map(|a| a.referenced),
            ),
            (
                "keep_firing_while",
                r.keep_firing_while.as_ref().map(|a| a.referenced),
            ),
        ] {
            if let Some(pos) = v {
                cx.err(
                    pos,
                    format!(
                        "{ctx}invalid field {key} in recording rule: only alerting rules have it"
                    ),
                );
            }
        }
    }
    let for_ = opt_duration(cx, &ctx, "for", r.for_.as_ref()).unwrap_or_default();
    let keep_firing_for =
        opt_duration(cx, &ctx, "keep_firing_for", r.keep_firing_for.as_ref()).unwrap_or_default();
    let keep_firing_while = r
        .keep_firing_while
        .as_ref()
        .and_then(|e| parse_expr(cx, &ctx, "keep_firing_while: ", e));
    let annotations = label_map_inner(cx, &ctx, "annotations", r.annotations.as_ref(), true);
    // Templates are checked at load, as Prometheus does, so a typo is a
    // load error rather than a broken notification.
    let mut label_templates = Vec::new();
    let mut annotation_templates = Vec::new();
    if !recording {
        for (k, v) in &labels {
            match AlertTemplate::parse(&name, v) {
                Ok(t) => label_templates.push((k.clone(), t)),
                Err(e) => cx.err(
                    position_of(r.labels.as_ref(), k).unwrap_or(at),
                    format!("{ctx}label {k:?}: {e}"),
                ),
            }
        }
        label_templates.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in &annotations {
            match AlertTemplate::parse(&name, v) {
                Ok(t) => annotation_templates.push((k.clone(), t)),
                Err(e) => cx.err(
                    position_of(r.annotations.as_ref(), k).unwrap_or(at),
                    format!("{ctx}annotation {k:?}: {e}"),
                ),
            }
        }
    }
    if cx.diags_len() != errors_before {
        return None;
    }
    let expr = expr?;
    Some(if recording {
        Rule::Recording(RecordingRule {
            record: name,
            expr,
            labels: labels_set,
        })
    } else {
        Rule::Alerting(AlertingRule {
            alert: name,
            expr,
            for_,
            keep_firing_for,
            keep_firing_while,
            labels: labels_set,
            annotations: annotations.into_iter().collect(),
            label_templates,
            annotation_templates,
        })
    })
}

impl Cx<'_> {
    fn diags_len(&self) -> usize {
        self.errors
    }
}

fn parse_expr(cx: &mut Cx<'_>, ctx: &str, key: &str, e: &S<String>) -> Option<Arc<Query>> {
    match Query::parse(&e.value) {
        Ok(q) => Some(Arc::new(q)),
        Err(err) => {
            cx.err(
                e.referenced,
                format!("{ctx}{key}could not parse expression: {err}"),
            );
            None
        }
    }
}

fn position_of(m: Option<&S<RawMap>>, key: &str) -> Option<Location> {
    m?.value
        .0
        .iter()
        .find(|(k, _)| k.value == key)
        .map(|(k, v)| v.as_ref().map_or(k.referenced, |v| v.referenced))
}

fn label_map(
    cx: &mut Cx<'_>,
    ctx: &str,
    what: &str,
    m: Option<&S<RawMap>>,
) -> Vec<(String, String)> {
    label_map_inner(cx, ctx, what, m, false)
}

fn label_map_inner(
    cx: &mut Cx<'_>,
    ctx: &str,
    what: &str,
    m: Option<&S<RawMap>>,
    annotations: bool,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in m.map(|m| m.value.0.as_slice()).unwrap_or_default() {
        let noun = if annotations { "annotation" } else { "label" };
        if !is_valid_label_name(&k.value) {
            cx.err(
                k.referenced,
                format!(
                    "{ctx}{what}: invalid {noun} name {:?}: use [a-zA-Z_][a-zA-Z0-9_]*",
                    k.value
                ),
            );
            continue;
        }
        if !annotations && k.value == METRIC_NAME {
            cx.err(
                k.referenced,
                format!("{ctx}{what}: invalid label name {METRIC_NAME:?}: a rule cannot set the metric name through labels"),
            );
            continue;
        }
        out.push((
            k.value.clone(),
            v.as_ref().map(|v| v.value.clone()).unwrap_or_default(),
        ));
    }
    out
}

fn opt_duration(cx: &mut Cx<'_>, ctx: &str, key: &str, v: Option<&S<String>>) -> Option<Duration> {
    let v = v?;
    match parse_duration(&v.value) {
        Ok(d) => Some(d),
        Err(e) => {
            cx.err(v.referenced, format!("{ctx}{key}: {e}"));
            None
        }
    }
}

/// The candidate within a small edit distance of `word`, if any.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.len() / 4).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting a swap of neighbours as one edit (`fro` is one
/// edit from `for`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// Paths in `rule_files` of a config are already resolved against the
/// config's directory; this resolves a test file's `rule_files` against the
/// test file's directory, as promtool does.
pub(crate) fn resolve_against(base: &Path, pattern: &str) -> String {
    let p = Path::new(pattern);
    if p.is_absolute() || base.as_os_str().is_empty() {
        pattern.to_string()
    } else {
        base.join(p).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Vec<RuleGroup>, Vec<String>> {
        parse_str(text, "r.yml", LoadOptions::default()).map_err(|e| e.messages())
    }

    #[test]
    fn loads_prometheus_rule_files() {
        let g = load(
            "groups:
  - name: host
    interval: 30s
    limit: 10
    labels: {team: infra}
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: HostDown
        expr: up == 0
        for: 5m
        keep_firing_for: 1m
        labels: {severity: page, team: sre}
        annotations:
          summary: '{{ $labels.instance }} down'
      - alert: AlwaysFiring
        expr: 1
",
        )
        .unwrap();
        assert_eq!(g.len(), 1);
        let g = &g[0];
        assert_eq!(g.name, "host");
        assert_eq!(g.file, "r.yml");
        assert_eq!(g.interval, Some(Duration::from_secs(30)));
        assert_eq!(g.limit, 10);
        assert_eq!(g.rules.len(), 3);
        let Rule::Recording(r) = &g.rules[0] else {
            panic!()
        };
        assert_eq!(r.record, "job:up:sum");
        assert_eq!(r.labels, Labels::from_pairs([("team", "infra")]));
        let Rule::Alerting(a) = &g.rules[1] else {
            panic!()
        };
        assert_eq!(a.for_, Duration::from_secs(300));
        assert_eq!(a.keep_firing_for, Duration::from_secs(60));
        // Rule labels override group labels.
        assert_eq!(
            a.labels,
            Labels::from_pairs([("severity", "page"), ("team", "sre")])
        );
        assert_eq!(a.annotations["summary"], "{{ $labels.instance }} down");
        let Rule::Alerting(a) = &g.rules[2] else {
            panic!()
        };
        assert_eq!(a.expr.text(), "1");
        assert_eq!(
            g.selected_names(),
            SelectedNames::Names(vec!["up".to_string()])
        );
    }

    #[test]
    fn every_problem_is_reported_with_position_group_and_rule() {
        let e = load(
            "groups:
  - name: host
    interval: 5x
    rules:
      - alert: HostDown
        expr: up ==
        labels: {__name__: x, 'bad-name': y}
      - record: ''
        expr: up
        for: 5m
      - alert: X
        record: y
        expr: up
        severity: page
      - expr: up
  - name: host
    evaluation: sometimes
    rules: []
",
        )
        .unwrap_err();
        let want = [
            "r.yml:3:15: group \"host\": interval: not a valid duration string: \"5x\" (use a number with a unit: ms, s, m, h, d, w, y)",
            "r.yml:6:15: group \"host\", rule 1 \"HostDown\": could not parse expression: ",
            "r.yml:7:18: group \"host\", rule 1 \"HostDown\": labels: invalid label name \"__name__\": a rule cannot set the metric name through labels",
            "r.yml:7:31: group \"host\", rule 1 \"HostDown\": labels: invalid label name \"bad-name\": use [a-zA-Z_][a-zA-Z0-9_]*",
            "r.yml:8:17: group \"host\", rule 2: recording rule name must not be empty: give the metric name to record",
            "r.yml:10:14: group \"host\", rule 2: invalid field for in recording rule: only alerting rules have it",
            "r.yml:12:17: group \"host\", rule 3 \"y\": only one of record and alert may be set: a rule either records or alerts",
            "r.yml:14:9: group \"host\", rule 3 \"y\": unknown key \"severity\": not a rule setting (check the spelling and the indentation)",
            "r.yml:15:9: group \"host\", rule 4: one of record or alert must be set",
            "r.yml:16:11: group \"host\": the group name is used twice in this file: group names must be unique within a file",
            "r.yml:17:17: group \"host\": evaluation: \"sometimes\" is not an evaluation mode: use interval or on_scrape",
        ];
        assert_eq!(e.len(), want.len(), "{e:#?}");
        for (got, want) in e.iter().zip(want) {
            assert!(got.starts_with(want), "got {got:?}\nwant prefix {want:?}");
        }
    }

    #[test]
    fn unknown_keys_can_be_ignored() {
        let text = "groups:\n  - name: g\n    ownership: {team: x}\n    rules:\n      - record: a\n        expr: up\n";
        let e = load(text).unwrap_err();
        assert_eq!(
            e,
            [
                "r.yml:3:5: group \"g\": unknown key \"ownership\": not a rule group setting (check the spelling and the indentation)"
            ]
        );
        let g = parse_str(
            text,
            "r.yml",
            LoadOptions {
                ignore_unknown_fields: true,
            },
        )
        .unwrap();
        assert_eq!(g[0].rules.len(), 1);
        let e = load("groups:\n  - name: g\n    rules:\n      - alert: a\n        expr: up\n        fro: 5m\n").unwrap_err();
        assert!(
            e[0].ends_with("unknown key \"fro\": did you mean \"for\"?"),
            "{e:?}"
        );
    }

    #[test]
    fn template_errors_are_load_errors() {
        let e = load(
            "groups:\n  - name: alerts\n    rules:\n      - alert: InstanceDown\n        expr: up == 0\n        annotations:\n          summary: \"Instance {{ $label.foo }} down\"\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            [
                "r.yml:7:20: group \"alerts\", rule 1 \"InstanceDown\": annotation \"summary\": template: __alert_InstanceDown:1: undefined variable \"$label\""
            ]
        );
    }

    #[test]
    fn yaml_errors_and_empty_files() {
        assert_eq!(load("").unwrap(), vec![]);
        assert_eq!(load("groups: []\n").unwrap(), vec![]);
        let e = load("groups:\n  - name: [\n").unwrap_err();
        assert!(e[0].starts_with("r.yml:"), "{e:?}");
        let e = load("groups:\n  - name: g\n    name: h\n").unwrap_err();
        assert!(e[0].contains("duplicate key"), "{e:?}");
    }

    #[test]
    fn keep_firing_while_and_evaluation_are_extensions() {
        let g = load(
            "groups:\n  - name: g\n    evaluation: on_scrape\n    rules:\n      - alert: Hot\n        expr: cpu > 0.9\n        keep_firing_while: cpu > 0.8\n",
        )
        .unwrap();
        assert_eq!(g[0].evaluation, Some(RuleEvaluation::OnScrape));
        let Rule::Alerting(a) = &g[0].rules[0] else {
            panic!()
        };
        assert_eq!(a.keep_firing_while.as_ref().unwrap().text(), "cpu > 0.8");
    }

    #[test]
    fn selected_names_cover_every_selector() {
        let g = load(
            "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: sum(rate(a_total[5m])) / on() group_left count(b) + scalar(c) + {__name__=\"d\"}\n",
        )
        .unwrap();
        assert_eq!(
            g[0].selected_names(),
            SelectedNames::Names(["a_total", "b", "c", "d"].map(String::from).to_vec())
        );
        let g = load("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: count({job=\"x\"})\n").unwrap();
        assert_eq!(g[0].selected_names(), SelectedNames::All);
    }

    #[test]
    fn duplicates_are_listed_once() {
        let g = load(
            "groups:\n  - name: a\n    rules:\n      - {record: x, expr: up}\n      - {record: x, expr: up}\n      - {record: y, expr: up}\n  - name: b\n    rules:\n      - {record: x, expr: up}\n",
        )
        .unwrap();
        assert_eq!(
            duplicate_rules(&g),
            vec![("x".to_string(), Labels::empty())]
        );
    }
}
