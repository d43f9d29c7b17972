//! `watchpost test rules`: promtool's rule unit-test format. Input series
//! in the expanding notation are fed into a fresh in-memory storage step
//! by step, every rule group is evaluated at each step with the same code
//! the group loops use (`group.rs`), alert expectations are checked after
//! the step they fall into, and PromQL expectations after the last step.
//! Failure texts have the shape of promtool's, so CI logs read the same.
//!
//! Owns nothing beyond one run: no clock (time starts at the test's
//! `start_timestamp`), no files but the ones it is told to read.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::alerting::duration_ms;
use super::file::{LoadOptions, Rule, RuleGroup};
use super::group::GroupRuntime;
use super::{AlertState, EvalEnv};
use crate::config::yaml_error;
use crate::model::{FloatHistogram, Labels, Timestamp, format_duration, parse_duration, stale_nan};
use crate::promql::{Engine, EngineOptions, ExecOptions, Query, Value};
use crate::storage::Storage;
use crate::storage::mem::MemStorage;

/// How tests are run (promtool's flags).
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// Only test groups whose name matches one of these regexes (joined
    /// with `|`, unanchored), as `--run`.
    pub run: Vec<String>,
    /// Accept unknown keys in rule files, as `--ignore-unknown-fields`.
    pub ignore_unknown_fields: bool,
}

/// The result of one test group.
#[derive(Debug, Clone)]
pub struct GroupOutcome {
    /// The group's name, or `unnamed#<index>`.
    pub name: String,
    /// Failure texts; empty when the group passed.
    pub errors: Vec<String>,
}

/// The result of one test file.
#[derive(Debug, Clone)]
pub struct FileOutcome {
    pub file: PathBuf,
    /// File-level failures (unreadable or invalid test file).
    pub errors: Vec<String>,
    /// Test groups that ran (the ones `--run` selected).
    pub groups: Vec<GroupOutcome>,
    /// Warnings, such as a rule_files pattern that matched nothing.
    pub warnings: Vec<String>,
}

impl FileOutcome {
    pub fn passed(&self) -> bool {
        self.errors.is_empty() && self.groups.iter().all(|g| g.errors.is_empty())
    }

    /// Every failure text, file-level first.
    pub fn all_errors(&self) -> Vec<String> {
        let mut out = self.errors.clone();
        for g in &self.groups {
            out.extend(g.errors.iter().cloned());
        }
        out
    }
}

/// Why `--run` patterns are unusable.
#[derive(Debug, thiserror::Error)]
#[error("--run: invalid regular expression {pattern:?}: {source}")]
pub struct RunPatternError {
    pattern: String,
    #[source]
    source: regex::Error,
}

/// Runs every file and prints promtool-shaped output: `Unit Testing:
/// <file>`, then `  SUCCESS` or `  FAILED:` and the failures. Returns
/// whether every file passed.
pub fn run_files(
    files: &[PathBuf],
    opts: &TestOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<bool, RunPatternError> {
    let run = run_regex(opts)?;
    let mut ok = true;
    for f in files {
        let _ = writeln!(out, "Unit Testing:  {}", f.display());
        let res = run_file_with(f, opts, run.as_ref());
        for w in &res.warnings {
            let _ = writeln!(err, "  WARNING: {w}");
        }
        if res.passed() {
            let _ = writeln!(out, "  SUCCESS");
        } else {
            ok = false;
            let _ = writeln!(err, "  FAILED:");
            for e in res.all_errors() {
                let _ = writeln!(err, "{e}");
                let _ = writeln!(err);
            }
        }
        let _ = writeln!(out);
    }
    Ok(ok)
}

fn run_regex(opts: &TestOptions) -> Result<Option<regex::Regex>, RunPatternError> {
    if opts.run.is_empty() {
        return Ok(None);
    }
    let joined = opts.run.join("|");
    regex::Regex::new(&joined)
        .map(Some)
        .map_err(|source| RunPatternError {
            pattern: joined,
            source,
        })
}

/// Runs one test file.
pub fn run_file(path: &Path, opts: &TestOptions) -> Result<FileOutcome, RunPatternError> {
    let run = run_regex(opts)?;
    Ok(run_file_with(path, opts, run.as_ref()))
}

fn run_file_with(path: &Path, opts: &TestOptions, run: Option<&regex::Regex>) -> FileOutcome {
    let mut outcome = FileOutcome {
        file: path.to_path_buf(),
        errors: Vec::new(),
        groups: Vec::new(),
        warnings: Vec::new(),
    };
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            outcome
                .errors
                .push(format!("{name}: cannot read test file: {e}"));
            return outcome;
        }
    };
    let raw: TestFile = match serde_saphyr::from_str::<Option<TestFile>>(&text) {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => {
            outcome
                .errors
                .push(yaml_error(&e, &text, &name).to_string());
            return outcome;
        }
    };
    let eval_interval = match raw.evaluation_interval.as_deref().map(parse_duration) {
        None => Duration::from_secs(60),
        Some(Ok(d)) if d.is_zero() => Duration::from_secs(60),
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            outcome
                .errors
                .push(format!("{name}: evaluation_interval: {e}"));
            return outcome;
        }
    };
    let mut order: HashMap<String, usize> = HashMap::new();
    for (i, g) in raw.group_eval_order.iter().enumerate() {
        if order.insert(g.clone(), i).is_some() {
            outcome
                .errors
                .push(format!("group name repeated in evaluation order: {g}"));
            return outcome;
        }
    }
    let base = path.parent().unwrap_or(Path::new(""));
    let mut rule_files = Vec::new();
    for p in &raw.rule_files {
        let pattern = super::file::resolve_against(base, p);
        match super::file::expand_patterns(std::slice::from_ref(&pattern)) {
            Ok(found) if found.is_empty() => outcome
                .warnings
                .push(format!("no file match pattern {pattern}")),
            Ok(found) => rule_files.extend(found),
            Err(e) => {
                outcome.errors.push(e.to_string());
                return outcome;
            }
        }
    }
    let file = TestFileSettings {
        eval_interval,
        fuzzy: raw.fuzzy_compare,
        order,
        rule_files,
        load: LoadOptions {
            ignore_unknown_fields: opts.ignore_unknown_fields,
        },
    };
    for (i, tg) in raw.tests.into_iter().enumerate() {
        let gname = tg.name.clone().unwrap_or_default();
        if run.is_some_and(|r| !r.is_match(&gname)) {
            continue;
        }
        let label = if gname.is_empty() {
            format!("unnamed#{i}")
        } else {
            gname
        };
        let errors = run_group(&file, tg);
        outcome.groups.push(GroupOutcome {
            name: label,
            errors,
        });
    }
    outcome
}

struct TestFileSettings {
    eval_interval: Duration,
    fuzzy: bool,
    order: HashMap<String, usize>,
    rule_files: Vec<PathBuf>,
    load: LoadOptions,
}

// ------------------------------------------------------------ file format

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    evaluation_interval: Option<String>,
    #[serde(default)]
    fuzzy_compare: bool,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    interval: Option<String>,
    name: Option<String>,
    start_timestamp: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<PromqlTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    external_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    #[serde(default)]
    values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    #[serde(default = "zero")]
    eval_time: String,
    #[serde(default)]
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromqlTest {
    expr: String,
    #[serde(default = "zero")]
    eval_time: String,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    value: f64,
    #[serde(default)]
    histogram: String,
}

fn zero() -> String {
    "0s".to_string()
}

// ----------------------------------------------------------------- running

/// One alert as compared: labels and annotations.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct LabelsAndAnnotations {
    labels: Labels,
    annotations: Labels,
}

fn run_group(file: &TestFileSettings, tg: TestGroup) -> Vec<String> {
    let name_prefix = match &tg.name {
        Some(n) if !n.is_empty() => format!("    name: {n},\n"),
        _ => String::new(),
    };
    let interval = match tg.interval.as_deref().map(parse_duration) {
        None => file.eval_interval,
        Some(Ok(d)) if d.is_zero() => file.eval_interval,
        Some(Ok(d)) => d,
        Some(Err(e)) => return vec![format!("interval: {e}")],
    };
    let mint = match tg.start_timestamp.as_deref().map(parse_start) {
        None => 0,
        Some(Ok(t)) => t,
        Some(Err(e)) => return vec![e],
    };
    let mut series = Vec::new();
    for s in &tg.input_series {
        match parse_input_series(&s.series, &s.values) {
            Ok(x) => series.push(x),
            Err(e) => return vec![e],
        }
    }
    let groups = match super::file::load_paths(&file.rule_files, file.load) {
        Ok(g) => order_groups(g, &file.order),
        Err(e) => return e.messages(),
    };
    let mut alert_tests: BTreeMap<i64, Vec<&AlertTest>> = BTreeMap::new();
    for a in &tg.alert_rule_test {
        let t = match parse_duration(&a.eval_time) {
            Ok(d) => duration_ms(d),
            Err(e) => return vec![format!("alert_rule_test: eval_time: {e}")],
        };
        if a.alertname.is_empty() {
            let in_group = tg
                .name
                .as_ref()
                .map(|n| format!(" (in TestGroup {n})"))
                .unwrap_or_default();
            return vec![format!(
                "an item under alert_rule_test misses required attribute alertname at eval_time {}{in_group}",
                a.eval_time
            )];
        }
        alert_tests.entry(t).or_default().push(a);
    }
    let mut promql_times = Vec::new();
    for p in &tg.promql_expr_test {
        match parse_duration(&p.eval_time) {
            Ok(d) => promql_times.push(duration_ms(d)),
            Err(e) => return vec![format!("promql_expr_test: eval_time: {e}")],
        }
    }
    let max_eval = alert_tests
        .keys()
        .copied()
        .chain(promql_times.iter().copied())
        .max()
        .unwrap_or(0);

    let eval_ms = duration_ms(file.eval_interval).max(1);
    let engine = Arc::new(Engine::new(EngineOptions {
        lookback_delta: Duration::from_secs(300),
        max_samples: 10_000,
        timeout: Duration::from_secs(100),
        default_subquery_step: file.eval_interval,
        max_concurrent_queries: 0,
    }));
    // Shared with the `query` template function, as promtool does.
    let storage = Arc::new(MemStorage::new());
    let external_labels = Labels::from_pairs(tg.external_labels.clone());
    let external_url = tg.external_url.clone().unwrap_or_default();
    let env = EvalEnv {
        storage: storage.as_ref(),
        engine: &engine,
        exec: ExecOptions::default(),
        external_labels: &external_labels,
        external_url: &external_url,
        interval,
        query_offset: Duration::ZERO,
        resend_delay: Duration::from_secs(60),
        template_query: Some(super::template::TemplateQuery {
            storage: storage.clone(),
            engine: engine.clone(),
            exec: ExecOptions::default(),
        }),
    };
    let mut runtimes: Vec<GroupRuntime> = groups
        .into_iter()
        .map(|g| GroupRuntime::new(Arc::new(g)))
        .collect();
    let interval_ms = duration_ms(interval).max(1);
    let mut cursors = vec![0usize; series.len()];
    let mut errs = Vec::new();
    let mut pending_alert_times: Vec<i64> = alert_tests.keys().copied().collect();
    pending_alert_times.reverse();
    let mut ts = mint;
    while ts <= mint + max_eval {
        if let Err(e) = load_until(&storage, &series, &mut cursors, mint, interval_ms, ts) {
            errs.push(e);
            return errs;
        }
        let mut eval_errs = Vec::new();
        for rt in &mut runtimes {
            let out = rt.eval(&env, ts);
            for (i, e) in out.errors {
                eval_errs.push(format!(
                    "    rule: {}, time: {}, err: {e}",
                    rt.def.rules[i].name(),
                    go_duration(ts - mint)
                ));
            }
        }
        if !eval_errs.is_empty() {
            errs.extend(eval_errs);
            return errs;
        }
        // Alert checks at eval_time t use the step s with s <= t < s + interval.
        while let Some(&t) = pending_alert_times.last() {
            if !(ts - mint <= t && t < ts - mint + eval_ms) {
                break;
            }
            pending_alert_times.pop();
            let tests = &alert_tests[&t];
            let mut got: HashMap<&str, Vec<LabelsAndAnnotations>> = HashMap::new();
            for rt in &runtimes {
                for (def, r) in rt.def.rules.iter().zip(&rt.rules) {
                    let Rule::Alerting(a) = def else { continue };
                    if !tests.iter().any(|x| x.alertname == a.alert) {
                        continue;
                    }
                    let entry = got.entry(a.alert.as_str()).or_default();
                    for x in r.alerts.iter().flat_map(|s| s.active.values()) {
                        if x.state == AlertState::Firing {
                            entry.push(LabelsAndAnnotations {
                                labels: x.labels.clone(),
                                annotations: Labels::from_pairs(x.annotations.clone()),
                            });
                        }
                    }
                }
            }
            for case in tests {
                let mut got = got
                    .get(case.alertname.as_str())
                    .cloned()
                    .unwrap_or_default();
                let mut exp: Vec<LabelsAndAnnotations> = case
                    .exp_alerts
                    .iter()
                    .map(|a| {
                        let mut l = a.exp_labels.clone();
                        l.insert("alertname".into(), case.alertname.clone());
                        LabelsAndAnnotations {
                            labels: Labels::from_pairs(l),
                            annotations: Labels::from_pairs(a.exp_annotations.clone()),
                        }
                    })
                    .collect();
                got.sort();
                exp.sort();
                if got != exp {
                    errs.push(format!(
                        "{name_prefix}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                        case.alertname,
                        model_duration(t),
                        indent_lines(&alerts_string(&exp), "            "),
                        indent_lines(&alerts_string(&got), "            ")
                    ));
                }
            }
        }
        ts += eval_ms;
    }

    for (case, t) in tg.promql_expr_test.iter().zip(promql_times) {
        let head = |rest: String| {
            format!(
                "    expr: {}, time: {}{rest}",
                go_quote(&case.expr),
                model_duration(t)
            )
        };
        let got = match query(&engine, &storage, &case.expr, mint + t) {
            Ok(v) => v,
            Err(e) => {
                errs.push(head(format!(", err: {e}")));
                continue;
            }
        };
        let mut exp = Vec::new();
        let mut bad = None;
        for s in &case.exp_samples {
            let value = if s.histogram.is_empty() {
                SampleValue::Float(s.value)
            } else {
                // Compared through the canonical text, as promtool does.
                match FloatHistogram::parse(&s.histogram) {
                    Ok(h) => SampleValue::Histogram(h.to_string()),
                    Err(e) => {
                        bad = Some(format!("labels {:?}: histogram: {e}", s.labels));
                        break;
                    }
                }
            };
            match parse_metric(&s.labels) {
                Ok(l) => exp.push((l, value)),
                Err(e) => {
                    bad = Some(format!("labels {:?}: {e}", s.labels));
                    break;
                }
            }
        }
        if let Some(e) = bad {
            errs.push(head(format!(", err: {e}")));
            continue;
        }
        let mut got = got;
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let equal = exp.len() == got.len()
            && exp
                .iter()
                .zip(&got)
                .all(|(e, g)| e.0 == g.0 && e.1.matches(&g.1, file.fuzzy));
        if !equal {
            errs.push(head(format!(
                ",\n        exp: {}\n        got: {}",
                samples_string(&exp),
                samples_string(&got)
            )));
        }
    }
    errs
}

/// Groups named in `group_eval_order` first, in that order; the others
/// after them in file order.
fn order_groups(groups: Vec<RuleGroup>, order: &HashMap<String, usize>) -> Vec<RuleGroup> {
    let mut indexed: Vec<(usize, usize, RuleGroup)> = groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| (order.get(&g.name).copied().unwrap_or(usize::MAX), i, g))
        .collect();
    indexed.sort_by_key(|(o, i, _)| (*o, *i));
    indexed.into_iter().map(|(_, _, g)| g).collect()
}

/// A sample value as compared: a float, or a native histogram's canonical
/// text.
#[derive(Debug, Clone, PartialEq)]
enum SampleValue {
    Float(f64),
    Histogram(String),
}

impl SampleValue {
    fn matches(&self, got: &SampleValue, fuzzy: bool) -> bool {
        match (self, got) {
            (SampleValue::Float(a), SampleValue::Float(b)) => floats_equal(*a, *b, fuzzy),
            (SampleValue::Histogram(a), SampleValue::Histogram(b)) => a == b,
            _ => false,
        }
    }
}

fn floats_equal(a: f64, b: f64, fuzzy: bool) -> bool {
    a == b || (fuzzy && (next_up(a) == b || next_down(a) == b))
}

fn next_up(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f64::from_bits(1);
    }
    let b = x.to_bits();
    f64::from_bits(if x > 0.0 { b + 1 } else { b - 1 })
}

fn next_down(x: f64) -> f64 {
    -next_up(-x)
}

fn query(
    engine: &Engine,
    storage: &MemStorage,
    expr: &str,
    ts: Timestamp,
) -> Result<Vec<(Labels, SampleValue)>, String> {
    let q = Query::parse(expr).map_err(|e| e.to_string())?;
    let r = engine
        .exec_instant(storage, &q, ts, &ExecOptions::default())
        .map_err(|e| e.to_string())?;
    match r.value {
        Value::Vector(v) => Ok(v
            .into_iter()
            .map(|s| {
                let value = match s.h {
                    Some(h) => SampleValue::Histogram(h.to_string()),
                    None => SampleValue::Float(s.v),
                };
                (s.labels, value)
            })
            .collect()),
        Value::Scalar(s) => Ok(vec![(Labels::empty(), SampleValue::Float(s.v))]),
        _ => Err("rule result is not a vector or scalar".to_string()),
    }
}

/// `start_timestamp`: Unix seconds (a number) or RFC 3339 text.
fn parse_start(s: &str) -> Result<Timestamp, String> {
    if let Ok(secs) = s.trim().parse::<f64>() {
        return Ok((secs * 1000.0).round() as Timestamp);
    }
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            format!("start_timestamp: {s:?} is neither Unix seconds nor RFC 3339 time: {e}")
        })
}

/// One input sample value.
#[derive(Debug, Clone, PartialEq)]
pub enum InputValue {
    Float(f64),
    Histogram(FloatHistogram),
}

/// One input series, expanded.
struct ExpandedSeries {
    labels: Labels,
    /// Sample k is at `start + k * interval`; None is a missing sample.
    values: Vec<Option<InputValue>>,
}

fn parse_input_series(series: &str, values: &str) -> Result<ExpandedSeries, String> {
    let labels = parse_metric(series).map_err(|e| format!("series {series:?}: {e}"))?;
    if labels.is_empty() {
        return Err(format!(
            "series {series:?}: a series needs at least one label"
        ));
    }
    let values = expand_values(values).map_err(|e| format!("series {series:?}: {e}"))?;
    Ok(ExpandedSeries { labels, values })
}

/// Parses a series selector written with `=` matchers only into labels
/// (`name{a="b"}`, `{a="b"}`; empty text is the empty set).
pub fn parse_metric(s: &str) -> Result<Labels, String> {
    let t = s.trim();
    if t.is_empty() || t == "{}" {
        return Ok(Labels::empty());
    }
    let expr = promql_parser::parser::parse(t)?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return Err("not a series selector".to_string());
    };
    if !vs.matchers.or_matchers.is_empty() || vs.offset.is_some() || vs.at.is_some() {
        return Err("not a plain series: use name{label=\"value\", ...}".to_string());
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(n) = &vs.name {
        pairs.push((crate::model::METRIC_NAME.to_string(), n.clone()));
    }
    for m in &vs.matchers.matchers {
        if !matches!(m.op, promql_parser::label::MatchOp::Equal) {
            return Err(format!(
                "label {:?}: only = may be used in a series",
                m.name
            ));
        }
        pairs.push((m.name.clone(), m.value.clone()));
    }
    Ok(Labels::from_pairs(pairs))
}

/// Expands the series notation: `a`, `_`, `stale`, `axN`, `a+bxN`,
/// `a-bxN` (N+1 values, built by repeated addition as promtool does, so
/// floats come out bit-identical), `_xN` (N missing values), and native
/// histograms `{{...}}` with the same expansions.
pub fn expand_values(s: &str) -> Result<Vec<Option<InputValue>>, String> {
    let mut out = Vec::new();
    for item in crate::promql::test_script::value_items(s)? {
        if item.starts_with("{{") {
            let (hs, _) = crate::promql::test_script::expand_histogram_item(item)?;
            out.extend(hs.into_iter().map(|h| Some(InputValue::Histogram(h))));
            continue;
        }
        let floats = expand_float_item(item)?;
        out.extend(floats.into_iter().map(|v| v.map(InputValue::Float)));
    }
    Ok(out)
}

/// Expands one float item of the notation.
fn expand_float_item(item: &str) -> Result<Vec<Option<f64>>, String> {
    if item == "_" {
        return Ok(vec![None]);
    }
    if let Some(n) = item.strip_prefix("_x") {
        let n: usize = n
            .parse()
            .map_err(|_| format!("invalid repetition in {item:?}"))?;
        return Ok(vec![None; n]);
    }
    if item == "stale" {
        return Ok(vec![Some(stale_nan())]);
    }
    let (head, times) = match item.rfind('x') {
        Some(k)
            if k > 0 && k + 1 < item.len() && item[k + 1..].bytes().all(|c| c.is_ascii_digit()) =>
        {
            let n: usize = item[k + 1..]
                .parse()
                .map_err(|_| format!("invalid repetition in {item:?}"))?;
            (&item[..k], Some(n))
        }
        _ => (item, None),
    };
    let Some(times) = times else {
        let v = number(head).ok_or_else(|| format!("invalid value {item:?}"))?;
        return Ok(vec![Some(v)]);
    };
    let hb = head.as_bytes();
    let op = (1..hb.len())
        .rev()
        .find(|&k| matches!(hb[k], b'+' | b'-') && !matches!(hb[k - 1], b'e' | b'E'));
    let mut out = Vec::with_capacity(times + 1);
    match op {
        Some(k) => {
            let mut v = number(&head[..k]).ok_or_else(|| format!("invalid value {item:?}"))?;
            let d = number(&head[k..]).ok_or_else(|| format!("invalid value {item:?}"))?;
            for _ in 0..=times {
                out.push(Some(v));
                v += d;
            }
        }
        None => {
            let v = number(head).ok_or_else(|| format!("invalid value {item:?}"))?;
            out.extend(std::iter::repeat_n(Some(v), times + 1));
        }
    }
    Ok(out)
}

/// A number as the notation allows: decimal with sign and exponent, or
/// Inf / NaN in any case.
fn number(s: &str) -> Option<f64> {
    let neg = s.starts_with('-');
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    let v = match t.to_ascii_lowercase().as_str() {
        "inf" => f64::INFINITY,
        "nan" => f64::NAN,
        _ => {
            if !t
                .bytes()
                .next()
                .is_some_and(|c| c.is_ascii_digit() || c == b'.')
            {
                return None;
            }
            t.parse::<f64>().ok()?
        }
    };
    Some(if neg { -v } else { v })
}

/// Appends every input sample at or before `until` not appended yet.
fn load_until(
    storage: &MemStorage,
    series: &[ExpandedSeries],
    cursors: &mut [usize],
    start: Timestamp,
    interval: i64,
    until: Timestamp,
) -> Result<(), String> {
    let mut app = storage.appender();
    for (s, cur) in series.iter().zip(cursors.iter_mut()) {
        while *cur < s.values.len() {
            let t = start + *cur as i64 * interval;
            if t > until {
                break;
            }
            let res = match &s.values[*cur] {
                Some(InputValue::Float(v)) => app.append(&s.labels, t, *v).map(|_| ()),
                Some(InputValue::Histogram(h)) => storage.append_histogram(&s.labels, t, h.clone()),
                None => Ok(()),
            };
            res.map_err(|e| format!("series {}: sample at {t}ms: {e}", go_labels(&s.labels)))?;
            *cur += 1;
        }
    }
    app.commit().map(|_| ()).map_err(|e| e.to_string())
}

// ------------------------------------------------------ promtool's texts

/// Go's `labels.Labels.String()`: `{a="1", b="2"}`, the metric name inside.
fn go_labels(l: &Labels) -> String {
    let parts: Vec<String> = l
        .iter()
        .map(|l| format!("{}={}", l.name, go_quote(&l.value)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)`: `1E+00`, `2.5E-07`.
fn go_float_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let s = format!("{v:E}");
    let (mant, exp) = s.split_once('E').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mant}E{sign}{:02}", exp.abs())
}

/// Go's `time.Duration.String()` for whole milliseconds: `0s`, `1.5s`,
/// `1m0s`, `2h3m4.005s`, `250ms`.
fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let neg = ms < 0;
    let ms = ms.unsigned_abs();
    let sign = if neg { "-" } else { "" };
    if ms < 1000 {
        return format!("{sign}{ms}ms");
    }
    let h = ms / 3_600_000;
    let m = (ms / 60_000) % 60;
    let s = (ms / 1000) % 60;
    let frac = ms % 1000;
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{frac:03}");
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    if h > 0 {
        format!("{sign}{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{sign}{m}m{secs}")
    } else {
        format!("{sign}{secs}")
    }
}

/// Prometheus's `model.Duration.String()`: `5m`, `1d`, `0s`.
fn model_duration(ms: i64) -> String {
    format_duration(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

fn indent_lines(lines: &str, indent: &str) -> String {
    lines
        .split('\n')
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                l.to_string()
            } else {
                format!("{indent}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn alerts_string(la: &[LabelsAndAnnotations]) -> String {
    if la.is_empty() {
        return "[]".to_string();
    }
    let one = |a: &LabelsAndAnnotations| {
        indent_lines(
            &format!(
                "\nLabels:{}\nAnnotations:{}",
                go_labels(&a.labels),
                go_labels(&a.annotations)
            ),
            "  ",
        )
    };
    let mut s = format!("[\n0:{}", one(&la[0]));
    for (i, a) in la[1..].iter().enumerate() {
        s.push_str(&format!(",\n{}:{}", i + 1, one(a)));
    }
    s.push_str("\n]");
    s
}

fn samples_string(s: &[(Labels, SampleValue)]) -> String {
    if s.is_empty() {
        return "nil".to_string();
    }
    s.iter()
        .map(|(l, v)| match v {
            SampleValue::Float(v) => format!("{} {}", go_labels(l), go_float_e(*v)),
            SampleValue::Histogram(h) => format!("{} {h}", go_labels(l)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::is_stale_nan;

    #[test]
    fn values_expand_like_promtool() {
        let v = expand_values("0 _ 1+1x2 5-2x1 2x1 _x2 stale -1e3 Inf").unwrap();
        let f = |x: Option<InputValue>| match x {
            Some(InputValue::Float(v)) if is_stale_nan(v) => Some(-0.5),
            Some(InputValue::Float(v)) => Some(v),
            Some(InputValue::Histogram(_)) => Some(-1.5),
            None => None,
        };
        let got: Vec<Option<f64>> = v.into_iter().map(f).collect();
        assert_eq!(
            got,
            vec![
                Some(0.0),
                None,
                Some(1.0),
                Some(2.0),
                Some(3.0),
                Some(5.0),
                Some(3.0),
                Some(2.0),
                Some(2.0),
                None,
                None,
                Some(-0.5),
                Some(-1000.0),
                Some(f64::INFINITY),
            ]
        );
        // Repeated addition, not multiplication: the float error builds up
        // exactly as promtool's does.
        let v = expand_values("0+0.1x3").unwrap();
        assert_eq!(v[3], Some(InputValue::Float(0.1 + 0.1 + 0.1)));
        assert_ne!(v[3], Some(InputValue::Float(0.3)));
        assert!(expand_values("abc").is_err());
        assert!(expand_values("{{sum:1 count:1").is_err());
    }

    #[test]
    fn histogram_values_expand_by_repeated_addition() {
        let v =
            expand_values("1 {{sum:3 count:2 buckets:[2]}}+{{sum:1.3 count:1 buckets:[1]}}x2 _")
                .unwrap();
        assert_eq!(v.len(), 5);
        assert_eq!(v[0], Some(InputValue::Float(1.0)));
        let Some(InputValue::Histogram(h)) = &v[3] else {
            panic!("want a histogram, got {:?}", v[3]);
        };
        assert_eq!(h.count, 4.0);
        assert_eq!(h.sum, 3.0 + 1.3 + 1.3);
        assert_eq!(h.positive_buckets, vec![4.0]);
        assert_eq!(v[4], None);
    }

    #[test]
    fn metrics_parse_as_series() {
        assert_eq!(
            parse_metric("up{job=\"a\", instance=\"x:1\"}").unwrap(),
            Labels::from_pairs([("__name__", "up"), ("instance", "x:1"), ("job", "a")])
        );
        assert_eq!(parse_metric("").unwrap(), Labels::empty());
        assert!(parse_metric("up{job=~\"a\"}").is_err());
        assert!(parse_metric("up{job=\"a\"").is_err());
    }

    #[test]
    fn go_texts() {
        assert_eq!(go_float_e(1.0), "1E+00");
        assert_eq!(go_float_e(0.0), "0E+00");
        assert_eq!(go_float_e(3.0000000000000004), "3.0000000000000004E+00");
        assert_eq!(go_float_e(1.5e-7), "1.5E-07");
        assert_eq!(go_float_e(1e100), "1E+100");
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(60_000), "1m0s");
        assert_eq!(go_duration(1500), "1.5s");
        assert_eq!(go_duration(3_723_004), "1h2m3.004s");
        assert_eq!(go_duration(250), "250ms");
        assert_eq!(model_duration(86_400_000), "1d");
        assert_eq!(model_duration(0), "0s");
        assert_eq!(
            go_labels(&Labels::from_pairs([("__name__", "t"), ("a", "x\"y")])),
            "{__name__=\"t\", a=\"x\\\"y\"}"
        );
        assert_eq!(
            alerts_string(&[LabelsAndAnnotations {
                labels: Labels::from_pairs([("alertname", "Test")]),
                annotations: Labels::empty(),
            }]),
            "[\n0:\n  Labels:{alertname=\"Test\"}\n  Annotations:{}\n]"
        );
    }

    #[test]
    fn fuzzy_compare_is_one_ulp() {
        assert!(floats_equal(3.0, 3.0000000000000004, true));
        assert!(floats_equal(3.0, 2.9999999999999996, true));
        assert!(!floats_equal(3.0, 3.0000000000000004, false));
        assert!(!floats_equal(3.0, 3.0000000000000013, true));
    }

    #[test]
    fn start_timestamps() {
        assert_eq!(parse_start("1609459200").unwrap(), 1_609_459_200_000);
        assert_eq!(
            parse_start("2024-01-01T00:00:00Z").unwrap(),
            1_704_067_200_000
        );
        assert!(parse_start("yesterday").is_err());
    }
}
