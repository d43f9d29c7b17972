//! The promqltest script language: `load` series into a fresh in-memory
//! storage, `clear` it, and `eval` queries against expectations (values,
//! failures, warnings, infos, ordering, strings, range vectors).
//!
//! Used by the conformance test over the upstream corpus and by our own
//! `tests/promql/*.test` files. Loading goes through the storage traits
//! (`Storage::appender`) like any writer; evaluation goes through the public
//! [`Engine`] API like any reader.
//!
//! Native histogram literals (`{{...}}`) are stored in the in-memory
//! storage and come back from plain selector queries; elsewhere the engine
//! refuses them, so evals that depend on them fail with a clear reason.
//! Start-timestamp lines (`@st`) are parsed but not stored. An eval whose query the parser rejects fails on its
//! own; it does not stop the file.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use promql_parser::parser::{AtModifier, Expr};

use super::labels::go_quote;
use super::{Engine, EngineOptions, Query, QueryResult, RangeSeries, Value};
use crate::model::{
    FloatHistogram, Labels, STALE_NAN_BITS, Sample, is_stale_nan, parse_duration, stale_nan,
};
use crate::storage::mem::MemStorage;
use crate::storage::{Queryable, Storage};

/// A script could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    #[error("reading test script {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One value slot of a series description.
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Empty,
    Float(f64),
    /// A native histogram, and whether its literal spelled out
    /// `counter_reset_hint` (only then is the hint compared).
    Histogram(Arc<FloatHistogram>, bool),
}

#[derive(Debug, Clone)]
struct SeriesDesc {
    labels: Labels,
    slots: Vec<Slot>,
}

#[derive(Debug, Clone)]
enum ExpectKind {
    Fail,
    Warn,
    NoWarn,
    Info,
    NoInfo,
    Ordered,
}

#[derive(Debug, Clone)]
enum Matcher {
    Any,
    Msg(String),
    Regex(regex::Regex),
}

impl Matcher {
    fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Any => true,
            Matcher::Msg(m) => m == s,
            Matcher::Regex(r) => r.is_match(s),
        }
    }
}

#[derive(Debug, Clone)]
enum EvalKind {
    Instant { at: i64 },
    Range { start: i64, end: i64, step: i64 },
}

/// One `eval` command.
#[derive(Debug, Clone)]
pub struct EvalCommand {
    /// 1-based line of the `eval` header.
    pub line: usize,
    /// The query text.
    pub expr: String,
    kind: EvalKind,
    expects: Vec<(ExpectKind, Matcher)>,
    old_fail: bool,
    old_warn: bool,
    old_info: bool,
    range_vector: Option<(i64, i64, i64)>,
    string: Option<String>,
    scalar: Option<f64>,
    series: Vec<SeriesDesc>,
}

#[derive(Debug, Clone)]
enum Command {
    Load {
        line: usize,
        series: Vec<(SeriesDesc, i64)>,
    },
    Clear,
    Eval(Box<EvalCommand>),
}

/// A parsed script.
#[derive(Debug, Clone)]
pub struct Script {
    pub name: String,
    commands: Vec<Command>,
}

/// The result of one eval.
#[derive(Debug, Clone)]
pub struct EvalOutcome {
    pub line: usize,
    pub expr: String,
    pub passed: bool,
    /// Why it failed (empty when it passed).
    pub detail: String,
}

/// How the runner evaluates.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub engine: EngineOptions,
    /// Also run each instant eval as a range query around its time and check
    /// the point at that time (upstream's step-invariance cross-check).
    pub cross_check: bool,
    /// Also re-run each instant eval with every selector pinned to its time
    /// with `@`, at other evaluation times (upstream's `@` cross-check).
    pub at_reruns: bool,
}

impl Default for RunOptions {
    /// The engine settings the upstream corpus assumes: 5m lookback, 1m
    /// default subquery step, 10 000 samples per query, 100 s timeout.
    fn default() -> Self {
        RunOptions {
            engine: EngineOptions {
                lookback_delta: Duration::from_secs(300),
                max_samples: 10_000,
                timeout: Duration::from_secs(100),
                default_subquery_step: Duration::from_secs(60),
                max_concurrent_queries: 0,
            },
            cross_check: true,
            at_reruns: true,
        }
    }
}

impl Script {
    pub fn parse_file(path: &std::path::Path) -> Result<Script, ScriptError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScriptError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Script::parse(&name, &text)
    }

    pub fn parse(name: &str, text: &str) -> Result<Script, ScriptError> {
        let lines: Vec<&str> = text.split('\n').map(str::trim).collect();
        let err = |line: usize, message: String| ScriptError::Syntax {
            file: name.to_string(),
            line,
            message,
        };
        let is_blank = |l: &str| l.is_empty() || l.starts_with('#');
        let mut commands = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i];
            if is_blank(l) {
                i += 1;
                continue;
            }
            let lineno = i + 1;
            let first = l
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            // The body: following lines up to a blank or comment line.
            let mut end = i + 1;
            while end < lines.len() && !is_blank(lines[end]) {
                end += 1;
            }
            if first == "clear" {
                if l != "clear" {
                    return Err(err(lineno, format!("invalid clear command {l:?}")));
                }
                commands.push(Command::Clear);
                i += 1;
                continue;
            }
            if first.starts_with("load") {
                let mut parts = l.split_whitespace();
                let kw = parts.next().unwrap_or("");
                if kw != "load" && kw != "load_with_nhcb" {
                    return Err(err(lineno, format!("invalid load command {l:?}")));
                }
                let interval = parts
                    .next()
                    .ok_or_else(|| err(lineno, "load needs an interval".into()))
                    .and_then(|d| duration_ms(d).map_err(|e| err(lineno, e)))?;
                let mut series: Vec<(SeriesDesc, i64)> = Vec::new();
                let mut j = i + 1;
                while j < end {
                    let body = lines[j];
                    let (labels, rest) = parse_series_id(body).map_err(|e| err(j + 1, e))?;
                    if rest.starts_with("@st") {
                        // Start timestamps are not stored; the sample line
                        // that must follow carries the values.
                        if j + 1 >= end {
                            return Err(err(j + 1, "@st line without its sample line".into()));
                        }
                        j += 1;
                        continue;
                    }
                    let slots = parse_values(rest, true).map_err(|e| err(j + 1, e))?;
                    let desc = SeriesDesc { labels, slots };
                    // A later line for the same series replaces it.
                    series.retain(|(s, _)| s.labels != desc.labels);
                    series.push((desc, interval));
                    j += 1;
                }
                commands.push(Command::Load {
                    line: lineno,
                    series,
                });
                i = end;
                continue;
            }
            if first.starts_with("eval") {
                let (cmd, next) = parse_eval(&lines, i, end).map_err(|(ln, m)| err(ln, m))?;
                commands.push(Command::Eval(Box::new(cmd)));
                i = next;
                continue;
            }
            return Err(err(lineno, format!("invalid command {first:?}")));
        }
        Ok(Script {
            name: name.to_string(),
            commands,
        })
    }

    /// The eval commands, in file order.
    pub fn evals(&self) -> impl Iterator<Item = &EvalCommand> {
        self.commands.iter().filter_map(|c| match c {
            Command::Eval(e) => Some(&**e),
            _ => None,
        })
    }

    /// Runs every command; returns one outcome per eval. A failing load stops
    /// the script: the evals after it fail with that reason.
    pub fn run(&self, opts: &RunOptions) -> Vec<EvalOutcome> {
        let engine = Engine::new(opts.engine.clone());
        let mut storage = MemStorage::new();
        let mut out = Vec::new();
        let mut broken: Option<String> = None;
        for cmd in &self.commands {
            match cmd {
                Command::Clear => storage = MemStorage::new(),
                Command::Load { line, series } => {
                    if broken.is_none()
                        && let Err(e) = load(&storage, series)
                    {
                        broken = Some(format!("load at line {line} failed: {e}"));
                    }
                }
                Command::Eval(e) => {
                    let result = match &broken {
                        Some(reason) => Err(reason.clone()),
                        None => run_eval(&engine, &storage, e, opts),
                    };
                    out.push(EvalOutcome {
                        line: e.line,
                        expr: e.expr.clone(),
                        passed: result.is_ok(),
                        detail: result.err().unwrap_or_default(),
                    });
                }
            }
        }
        out
    }
}

fn duration_ms(s: &str) -> Result<i64, String> {
    parse_duration(s)
        .map(super::duration_ms)
        .map_err(|e| format!("invalid duration {s:?}: {e}"))
}

fn load(storage: &MemStorage, series: &[(SeriesDesc, i64)]) -> Result<(), String> {
    let mut app = storage.appender();
    for (s, interval) in series {
        for (k, slot) in s.slots.iter().enumerate() {
            let t = k as i64 * interval;
            let res = match slot {
                Slot::Float(v) => app.append(&s.labels, t, *v).map(|_| ()),
                Slot::Histogram(h, _) => storage.append_histogram(&s.labels, t, (**h).clone()),
                Slot::Empty => Ok(()),
            };
            res.map_err(|e| format!("series {}: sample at {t}ms: {e}", s.labels))?;
        }
    }
    app.commit().map(|_| ()).map_err(|e| e.to_string())
}

/// Expands one native histogram item of a value list: `{{H}}`, `{{H}}xN`
/// (N+1 copies), `{{H}}+{{D}}xN` or `{{H}}-{{D}}xN` (H, then D added or
/// subtracted N times, by repeated operation as promtool does). The flag
/// says whether the step literal (or H alone) spelled out
/// `counter_reset_hint`.
pub(crate) fn expand_histogram_item(item: &str) -> Result<(Vec<FloatHistogram>, bool), String> {
    let close = item
        .find("}}")
        .ok_or_else(|| format!("unterminated histogram literal {item:?}"))?
        + 2;
    let first = FloatHistogram::parse(&item[..close])?;
    let rest = &item[close..];
    let repeat = |n: &str| -> Result<usize, String> {
        n.parse::<usize>()
            .map_err(|_| format!("invalid repetition in {item:?}: write {{{{...}}}}x3"))
    };
    if rest.is_empty() {
        let spelled = item.contains("counter_reset_hint");
        return Ok((vec![first], spelled));
    }
    if let Some(n) = rest.strip_prefix('x') {
        let spelled = item.contains("counter_reset_hint");
        return Ok((vec![first; repeat(n)? + 1], spelled));
    }
    let (sub, tail) = match rest.as_bytes().first() {
        Some(b'+') => (false, &rest[1..]),
        Some(b'-') => (true, &rest[1..]),
        _ => {
            return Err(format!(
                "invalid histogram item {item:?}: use {{{{...}}}}, {{{{...}}}}xN or {{{{...}}}}+{{{{...}}}}xN"
            ));
        }
    };
    let step_close = tail
        .find("}}")
        .ok_or_else(|| format!("unterminated histogram literal in {item:?}"))?
        + 2;
    let step = FloatHistogram::parse(&tail[..step_close])?;
    let n = match tail[step_close..].strip_prefix('x') {
        Some(n) => repeat(n)?,
        None => {
            return Err(format!(
                "{item:?}: a histogram expansion needs xN at the end"
            ));
        }
    };
    let spelled = tail[..step_close].contains("counter_reset_hint");
    let out = FloatHistogram::series_expansion(&first, &step, n as u64, sub)?;
    Ok((out, spelled))
}

/// Reads a series identifier (`name`, `name{l="v"}`, `{l="v"}`) and returns
/// its labels and the rest of the line.
fn parse_series_id(s: &str) -> Result<(Labels, &str), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
        i += 1;
    }
    let name = &s[..i];
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !name.is_empty() {
        pairs.push(("__name__".into(), name.into()));
    }
    if b.get(i) == Some(&b'{') {
        i += 1;
        loop {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            match b.get(i) {
                None => return Err(format!("unterminated label set in {s:?}")),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            let (lname, next) = if matches!(b[i], b'"' | b'\'' | b'`') {
                read_quoted(s, i)?
            } else {
                let st = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                if st == i {
                    return Err(format!("invalid label name at column {} in {s:?}", i + 1));
                }
                (s[st..i].to_string(), i)
            };
            i = next;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if b.get(i) != Some(&b'=') {
                return Err(format!("expected '=' after label {lname:?} in {s:?}"));
            }
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let (value, next) = read_quoted(s, i)?;
            i = next;
            pairs.push((lname, value));
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if b.get(i) == Some(&b',') {
                i += 1;
            }
        }
    }
    if name.is_empty() && i == 0 {
        return Err(format!("invalid series identifier in {s:?}"));
    }
    Ok((Labels::from_pairs(pairs), s[i..].trim_start()))
}

/// Reads a PromQL string literal starting at byte `i`; returns it unquoted
/// and the offset after it.
fn read_quoted(s: &str, i: usize) -> Result<(String, usize), String> {
    let b = s.as_bytes();
    let q = *b
        .get(i)
        .ok_or_else(|| format!("expected a string in {s:?}"))?;
    if !matches!(q, b'"' | b'\'' | b'`') {
        return Err(format!(
            "expected a quoted string at column {} in {s:?}",
            i + 1
        ));
    }
    let mut j = i + 1;
    while j < b.len() && b[j] != q {
        if b[j] == b'\\' && q != b'`' {
            j += 1;
        }
        j += 1;
    }
    if j >= b.len() {
        return Err(format!("unterminated string in {s:?}"));
    }
    let lit = &s[i..=j];
    let v = promql_parser::util::unquote_string(lit)
        .map_err(|e| format!("invalid string {lit}: {e}"))?;
    Ok((v, j + 1))
}

/// Parses a number as the series notation allows: decimal with optional
/// sign and exponent, or Inf/NaN in any case.
fn parse_number(s: &str) -> Option<f64> {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    let neg = s.starts_with('-');
    let v = match t.to_ascii_lowercase().as_str() {
        "inf" => f64::INFINITY,
        "nan" => f64::NAN,
        _ => {
            if t.is_empty()
                || !t
                    .bytes()
                    .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
                || !t
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

/// Splits a value list into items, keeping `{{ ... }}` literals (which
/// contain spaces) whole.
pub(crate) fn value_items(s: &str) -> Result<Vec<&str>, String> {
    let b = s.as_bytes();
    let mut items = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        loop {
            if b[i..].starts_with(b"{{") {
                match s[i..].find("}}") {
                    Some(k) => i += k + 2,
                    None => return Err(format!("unterminated histogram literal in {s:?}")),
                }
            } else {
                i += 1;
            }
            if i >= b.len() || b[i].is_ascii_whitespace() {
                break;
            }
        }
        items.push(&s[start..i]);
    }
    Ok(items)
}

/// Expands a value list (`1 2 _ stale 0+10x5 _x3 {{...}}x2`).
fn parse_values(s: &str, allow_stale: bool) -> Result<Vec<Slot>, String> {
    let mut out = Vec::new();
    for item in value_items(s)? {
        if item == "_" {
            out.push(Slot::Empty);
            continue;
        }
        if let Some(k) = item.strip_prefix("_x") {
            let k: usize = k
                .parse()
                .map_err(|_| format!("invalid repetition {item:?}"))?;
            out.extend(std::iter::repeat_n(Slot::Empty, k));
            continue;
        }
        if item == "stale" {
            if !allow_stale {
                return Err("stale is not allowed in expected values".into());
            }
            out.push(Slot::Float(stale_nan()));
            continue;
        }
        if item.starts_with("{{") {
            let (hs, spelled) = expand_histogram_item(item)?;
            out.extend(
                hs.into_iter()
                    .map(|h| Slot::Histogram(Arc::new(h), spelled)),
            );
            continue;
        }
        // N, NxK, A+BxK, A-BxK
        let (head, times) = match item.rfind('x') {
            Some(k)
                if k > 0
                    && item[k + 1..].bytes().all(|c| c.is_ascii_digit())
                    && k + 1 < item.len() =>
            {
                let n: usize = item[k + 1..]
                    .parse()
                    .map_err(|_| format!("invalid repetition {item:?}"))?;
                (&item[..k], Some(n))
            }
            _ => (item, None),
        };
        let Some(times) = times else {
            let v = parse_number(head).ok_or_else(|| format!("invalid value {item:?}"))?;
            out.push(Slot::Float(v));
            continue;
        };
        // Find the operator between A and B: a + or - that is not at the
        // start and not an exponent sign.
        let hb = head.as_bytes();
        let op = (1..hb.len())
            .rev()
            .find(|&k| matches!(hb[k], b'+' | b'-') && !matches!(hb[k - 1], b'e' | b'E'));
        match op {
            Some(k) => {
                let a =
                    parse_number(&head[..k]).ok_or_else(|| format!("invalid value {item:?}"))?;
                let d = parse_number(&head[k + 1..])
                    .ok_or_else(|| format!("invalid value {item:?}"))?;
                let d = if hb[k] == b'-' { -d } else { d };
                let mut v = a;
                out.push(Slot::Float(v));
                for _ in 0..times {
                    v += d;
                    out.push(Slot::Float(v));
                }
            }
            None => {
                let v = parse_number(head).ok_or_else(|| format!("invalid value {item:?}"))?;
                out.extend(std::iter::repeat_n(Slot::Float(v), times + 1));
            }
        }
    }
    Ok(out)
}

fn parse_eval(
    lines: &[&str],
    i: usize,
    end: usize,
) -> Result<(EvalCommand, usize), (usize, String)> {
    let l = lines[i];
    let lineno = i + 1;
    let e = |m: String| (lineno, m);
    // Token boundaries, keeping the expression verbatim.
    let mut tokens: Vec<(usize, &str)> = Vec::new();
    let mut pos = 0;
    for t in l.split_whitespace() {
        let at = l[pos..].find(t).map_or(pos, |k| pos + k);
        tokens.push((at, t));
        pos = at + t.len();
    }
    let head = tokens[0].1;
    let suffix = head.strip_prefix("eval").unwrap_or("");
    let (old_fail, old_warn, old_info, mut ordered) = match suffix {
        "" => (false, false, false, false),
        "_fail" => (true, false, false, false),
        "_warn" => (false, true, false, false),
        "_info" => (false, false, true, false),
        "_ordered" => (false, false, false, true),
        _ => return Err(e(format!("invalid eval command {head:?}"))),
    };
    let kw = |k: usize| tokens.get(k).map(|t| t.1).unwrap_or("");
    let rest_from = |k: usize| -> Result<String, (usize, String)> {
        tokens
            .get(k)
            .map(|t| l[t.0..].trim().to_string())
            .ok_or_else(|| e("eval without expression".into()))
    };
    let (kind, expr) = match kw(1) {
        "instant" => {
            if kw(2) != "at" {
                return Err(e("instant eval needs 'at <time>'".into()));
            }
            let at = duration_ms(kw(3)).map_err(e)?;
            (EvalKind::Instant { at }, rest_from(4)?)
        }
        "range" => {
            if ordered {
                return Err(e("eval_ordered is not allowed for range queries".into()));
            }
            if kw(2) != "from" || kw(4) != "to" || kw(6) != "step" {
                return Err(e("range eval needs 'from <t> to <t> step <d>'".into()));
            }
            let start = duration_ms(kw(3)).map_err(e)?;
            let end = duration_ms(kw(5)).map_err(e)?;
            let step = duration_ms(kw(7)).map_err(e)?;
            if end < start {
                return Err(e("range eval end is before its start".into()));
            }
            (EvalKind::Range { start, end, step }, rest_from(8)?)
        }
        other => return Err(e(format!("invalid eval kind {other:?}"))),
    };
    let mut cmd = EvalCommand {
        line: lineno,
        expr,
        kind,
        expects: Vec::new(),
        old_fail,
        old_warn,
        old_info,
        range_vector: None,
        string: None,
        scalar: None,
        series: Vec::new(),
    };
    let mut j = i + 1;
    while j < end {
        let body = lines[j];
        let bl = j + 1;
        let be = |m: String| (bl, m);
        j += 1;
        if old_fail && body.starts_with("expected_fail_message") {
            let m = body["expected_fail_message".len()..].trim().to_string();
            cmd.expects.push((ExpectKind::Fail, Matcher::Msg(m)));
            break;
        }
        if old_fail && body.starts_with("expected_fail_regexp") {
            let r = body["expected_fail_regexp".len()..].trim();
            let re = regex::Regex::new(r).map_err(|x| be(format!("invalid regexp: {x}")))?;
            cmd.expects.push((ExpectKind::Fail, Matcher::Regex(re)));
            break;
        }
        if let Some(rest) = body.strip_prefix("expect range vector") {
            let p: Vec<&str> = rest.split_whitespace().collect();
            if p.len() != 6 || p[0] != "from" || p[2] != "to" || p[4] != "step" {
                return Err(be(format!("invalid expect range vector line {body:?}")));
            }
            cmd.range_vector = Some((
                duration_ms(p[1]).map_err(be)?,
                duration_ms(p[3]).map_err(be)?,
                duration_ms(p[5]).map_err(be)?,
            ));
            continue;
        }
        if let Some(rest) = body.strip_prefix("expect string") {
            let lit = rest.trim();
            if lit.is_empty() {
                return Err(be("expect string needs a literal".into()));
            }
            let v = promql_parser::util::unquote_string(lit)
                .map_err(|x| be(format!("invalid string literal {lit}: {x}")))?;
            cmd.string = Some(v);
            continue;
        }
        if body.split_whitespace().next() == Some("expect") {
            let rest = body["expect".len()..].trim_start();
            let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let (word, tail) = rest.split_at(word_end);
            let kind = match word {
                "fail" => ExpectKind::Fail,
                "warn" => ExpectKind::Warn,
                "no_warn" => ExpectKind::NoWarn,
                "info" => ExpectKind::Info,
                "no_info" => ExpectKind::NoInfo,
                "ordered" => {
                    ordered = true;
                    ExpectKind::Ordered
                }
                _ => return Err(be(format!("invalid expect line {body:?}"))),
            };
            let tail = tail.trim();
            let m = if tail.is_empty() {
                Matcher::Any
            } else if let Some(m) = tail.strip_prefix("msg:") {
                let m = m.trim();
                if m.is_empty() {
                    return Err(be("expect msg: needs text".into()));
                }
                Matcher::Msg(m.to_string())
            } else if let Some(r) = tail.strip_prefix("regex:") {
                let r = r.trim();
                Matcher::Regex(regex::Regex::new(r).map_err(|x| be(format!("invalid regex: {x}")))?)
            } else {
                return Err(be(format!("invalid expect line {body:?}")));
            };
            cmd.expects.push((kind, m));
            continue;
        }
        if let Some(v) = parse_number(body) {
            cmd.scalar = Some(v);
            break;
        }
        let (labels, rest) = parse_series_id(body).map_err(be)?;
        let slots = parse_values(rest, false).map_err(be)?;
        if cmd.range_vector.is_none()
            && matches!(cmd.kind, EvalKind::Instant { .. })
            && slots.len() != 1
        {
            return Err(be(format!(
                "expected exactly one value for an instant query, got {}",
                slots.len()
            )));
        }
        cmd.series.push(SeriesDesc { labels, slots });
    }
    let has = |k: fn(&ExpectKind) -> bool| cmd.expects.iter().any(|(x, _)| k(x));
    if has(|k| matches!(k, ExpectKind::Info)) && has(|k| matches!(k, ExpectKind::NoInfo)) {
        return Err(e("expect info and expect no_info together".into()));
    }
    if has(|k| matches!(k, ExpectKind::Warn)) && has(|k| matches!(k, ExpectKind::NoWarn)) {
        return Err(e("expect warn and expect no_warn together".into()));
    }
    if cmd
        .expects
        .iter()
        .filter(|(k, _)| matches!(k, ExpectKind::Fail))
        .count()
        > 1
    {
        return Err(e("more than one expect fail".into()));
    }
    let _ = ordered;
    // j may stop early (body ended by a scalar or fail line); the next
    // command starts at the first line after it.
    Ok((cmd, j.max(i + 1)))
}

/// Float equality as the harness defines it: staleness markers only equal
/// each other, NaN equals NaN, otherwise a relative tolerance of 1e-6.
/// promqltest's histogram comparison: both sides compacted (zero buckets
/// do not count), schema and zero width exact, counts and bucket values
/// with [`float_eq`], the hint only when the expected literal spelled it.
fn histogram_matches(want: &FloatHistogram, got: &FloatHistogram, hint: bool) -> bool {
    fn nonzero(offset: i32, buckets: &[f64]) -> Vec<(i32, f64)> {
        buckets
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0.0)
            .map(|(i, v)| (offset + i as i32, *v))
            .collect()
    }
    fn same(a: Vec<(i32, f64)>, b: Vec<(i32, f64)>) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(&b)
                .all(|(x, y)| x.0 == y.0 && float_eq(x.1, y.1))
    }
    want.schema == got.schema
        && want.zero_threshold == got.zero_threshold
        && float_eq(want.count, got.count)
        && float_eq(want.sum, got.sum)
        && float_eq(want.zero_count, got.zero_count)
        && want.custom_values == got.custom_values
        && same(
            nonzero(want.positive_offset, &want.positive_buckets),
            nonzero(got.positive_offset, &got.positive_buckets),
        )
        && same(
            nonzero(want.negative_offset, &want.negative_buckets),
            nonzero(got.negative_offset, &got.negative_buckets),
        )
        && (!hint || want.counter_reset_hint == got.counter_reset_hint)
}

fn float_eq(a: f64, b: f64) -> bool {
    const EPS: f64 = 1e-6;
    const MIN_NORMAL: f64 = 2.2250738585072014e-308;
    if is_stale_nan(a) || is_stale_nan(b) {
        return a.to_bits() == STALE_NAN_BITS && b.to_bits() == STALE_NAN_BITS;
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < EPS * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < EPS
}

impl EvalCommand {
    fn expects_fail(&self) -> bool {
        self.old_fail
            || self
                .expects
                .iter()
                .any(|(k, _)| matches!(k, ExpectKind::Fail))
    }

    fn ordered(&self) -> bool {
        self.expects
            .iter()
            .any(|(k, _)| matches!(k, ExpectKind::Ordered))
    }
}

fn run_eval(
    engine: &Engine,
    q: &dyn Queryable,
    cmd: &EvalCommand,
    opts: &RunOptions,
) -> Result<(), String> {
    let query = match Query::parse(&cmd.expr) {
        Ok(query) => query,
        Err(e) => return check_failure(cmd, &e.to_string()),
    };
    let res = match &cmd.kind {
        EvalKind::Instant { at } => {
            let t = cmd.range_vector.map_or(*at, |(_, t2, _)| t2);
            engine.exec_instant(q, &query, t, &Default::default())
        }
        EvalKind::Range { start, end, step } => engine.exec_range(
            q,
            &query,
            *start,
            *end,
            Duration::from_millis(*step as u64),
            &Default::default(),
        ),
    };
    check_outcome(engine, q, cmd, &query, res, opts)?;
    if let (EvalKind::Instant { at }, true) = (&cmd.kind, opts.at_reruns)
        && cmd.range_vector.is_none()
        && !uses_time_functions(query.expr())
    {
        let at = *at;
        let mut pinned = query.expr().clone();
        pin_at(&mut pinned, at);
        let pinned = query.with_expr(pinned);
        let times: Vec<i64> = if at == 0 {
            vec![-1000, 0, 1000]
        } else {
            vec![-10 * at, 0, at / 5, at, 10 * at]
        };
        for t in times {
            let res = engine.exec_instant(q, &pinned, t, &Default::default());
            check_outcome(engine, q, cmd, &pinned, res, opts).map_err(|e| {
                format!("re-run with every selector pinned to @ {at}ms, evaluated at {t}ms: {e}")
            })?;
        }
    }
    Ok(())
}

fn check_failure(cmd: &EvalCommand, msg: &str) -> Result<(), String> {
    if !cmd.expects_fail() {
        return Err(format!("unexpected error: {msg}"));
    }
    for (k, m) in &cmd.expects {
        if matches!(k, ExpectKind::Fail) && !m.matches(msg) {
            return Err(format!("error {msg:?} does not match the expected failure"));
        }
    }
    Ok(())
}

fn check_outcome(
    engine: &Engine,
    q: &dyn Queryable,
    cmd: &EvalCommand,
    query: &Query,
    res: Result<QueryResult, super::EvalError>,
    opts: &RunOptions,
) -> Result<(), String> {
    let res = match res {
        Err(e) => return check_failure(cmd, &e.to_string()),
        Ok(r) => r,
    };
    if cmd.expects_fail() {
        return Err("expected the query to fail, but it succeeded".to_string());
    }
    check_annotations(cmd, &res)?;
    check_value(cmd, &res.value)?;
    if opts.cross_check
        && let EvalKind::Instant { at } = &cmd.kind
        && cmd.range_vector.is_none()
        && cmd.string.is_none()
        && !cmd.ordered()
        && !["start()", "end()", "range()", "step()"]
            .iter()
            .any(|f| cmd.expr.contains(f))
    {
        cross_check_range(engine, q, cmd, query, *at)?;
    }
    Ok(())
}

/// Whether the query calls a function whose result depends on the
/// evaluation time itself; such queries are not re-run with `@`.
fn uses_time_functions(e: &Expr) -> bool {
    const TIME_FUNCTIONS: &[&str] = &[
        "time",
        "timestamp",
        "start",
        "end",
        "range",
        "step",
        "minute",
        "hour",
        "day_of_week",
        "day_of_month",
        "day_of_year",
        "days_in_month",
        "month",
        "year",
        "predict_linear",
    ];
    match e {
        Expr::Call(c) => {
            TIME_FUNCTIONS.contains(&c.func.name)
                || c.args.args.iter().any(|a| uses_time_functions(a))
        }
        Expr::Aggregate(a) => {
            uses_time_functions(&a.expr) || a.param.as_deref().is_some_and(uses_time_functions)
        }
        Expr::Binary(b) => uses_time_functions(&b.lhs) || uses_time_functions(&b.rhs),
        Expr::Paren(p) => uses_time_functions(&p.expr),
        Expr::Unary(u) => uses_time_functions(&u.expr),
        Expr::Subquery(s) => uses_time_functions(&s.expr),
        _ => false,
    }
}

/// Adds `@ t` to every selector and subquery that has none, without going
/// into subqueries (their insides stay relative to the subquery).
fn pin_at(e: &mut Expr, t: i64) {
    let at = || {
        let d = Duration::from_millis(t.unsigned_abs());
        let st = if t >= 0 {
            std::time::UNIX_EPOCH + d
        } else {
            std::time::UNIX_EPOCH - d
        };
        AtModifier::At(st)
    };
    match e {
        Expr::VectorSelector(vs) if vs.at.is_none() => vs.at = Some(at()),
        Expr::MatrixSelector(ms) if ms.vs.at.is_none() => ms.vs.at = Some(at()),
        Expr::Subquery(sq) if sq.at.is_none() => sq.at = Some(at()),
        Expr::Call(c) => c.args.args.iter_mut().for_each(|a| pin_at(a, t)),
        Expr::Aggregate(a) => {
            pin_at(&mut a.expr, t);
            if let Some(p) = a.param.as_deref_mut() {
                pin_at(p, t);
            }
        }
        Expr::Binary(b) => {
            pin_at(&mut b.lhs, t);
            pin_at(&mut b.rhs, t);
        }
        Expr::Paren(p) => pin_at(&mut p.expr, t),
        Expr::Unary(u) => pin_at(&mut u.expr, t),
        _ => {}
    }
}

fn check_annotations(cmd: &EvalCommand, res: &QueryResult) -> Result<(), String> {
    for (list, kind_any, kind_no, old, what) in [
        (&res.warnings, "warn", "no_warn", cmd.old_warn, "warning"),
        (&res.infos, "info", "no_info", cmd.old_info, "info"),
    ] {
        let wanted: Vec<&Matcher> = cmd
            .expects
            .iter()
            .filter(|(k, _)| match k {
                ExpectKind::Warn => kind_any == "warn",
                ExpectKind::Info => kind_any == "info",
                _ => false,
            })
            .map(|(_, m)| m)
            .collect();
        let none_wanted = cmd.expects.iter().any(|(k, _)| match k {
            ExpectKind::NoWarn => kind_no == "no_warn",
            ExpectKind::NoInfo => kind_no == "no_info",
            _ => false,
        });
        if old && list.is_empty() {
            return Err(format!("expected at least one {what}, got none"));
        }
        if none_wanted && !list.is_empty() {
            return Err(format!("expected no {what}, got {list:?}"));
        }
        if !wanted.is_empty() {
            if list.is_empty() {
                return Err(format!("expected a {what}, got none"));
            }
            for m in &wanted {
                if !list.iter().any(|a| m.matches(a)) {
                    return Err(format!("no {what} matches {m:?}; got {list:?}"));
                }
            }
            for a in list {
                if !wanted.iter().any(|m| m.matches(a)) {
                    return Err(format!("unexpected {what} {a:?}"));
                }
            }
        }
    }
    Ok(())
}

fn expected_points(slots: &[Slot], start: i64, step: i64) -> (Vec<Sample>, usize) {
    let mut floats = Vec::new();
    let mut hists = 0;
    for (i, s) in slots.iter().enumerate() {
        match s {
            Slot::Float(v) => floats.push(Sample {
                t: start + i as i64 * step,
                v: *v,
            }),
            Slot::Histogram(..) => hists += 1,
            Slot::Empty => {}
        }
    }
    (floats, hists)
}

fn check_matrix(
    got: &[RangeSeries],
    want: &[SeriesDesc],
    start: i64,
    end: i64,
    step: i64,
) -> Result<(), String> {
    if got.windows(2).any(|w| w[0].labels > w[1].labels) {
        return Err("matrix result is not sorted by labels".into());
    }
    let steps = if step > 0 {
        (end - start) / step + 1
    } else {
        1
    };
    let mut index: HashMap<&Labels, &RangeSeries> = HashMap::new();
    for s in got {
        index.insert(&s.labels, s);
    }
    for w in want {
        if w.slots.len() as i64 > steps {
            return Err(format!(
                "expected {} values for {}, more than the {steps} steps",
                w.slots.len(),
                w.labels
            ));
        }
        let Some(g) = index.get(&w.labels) else {
            return Err(format!("expected series {} not found in result", w.labels));
        };
        let (floats, hists) = expected_points(&w.slots, start, step);
        if hists > 0 {
            return Err(format!(
                "series {} expects native histogram points, which this engine does not produce",
                w.labels
            ));
        }
        if floats.len() != g.samples.len() {
            return Err(format!(
                "series {}: expected {} points {:?}, got {} points {:?}",
                w.labels,
                floats.len(),
                floats,
                g.samples.len(),
                g.samples
            ));
        }
        for (e, a) in floats.iter().zip(&g.samples) {
            if e.t != a.t || !float_eq(e.v, a.v) {
                return Err(format!(
                    "series {}: expected {} at {}ms, got {} at {}ms",
                    w.labels, e.v, e.t, a.v, a.t
                ));
            }
        }
    }
    for s in got {
        if !want.iter().any(|w| w.labels == s.labels) {
            return Err(format!("unexpected series {} in result", s.labels));
        }
    }
    Ok(())
}

fn check_value(cmd: &EvalCommand, v: &Value) -> Result<(), String> {
    if let Some(want) = &cmd.string {
        return match v {
            Value::String { v, .. } if v == want => Ok(()),
            other => Err(format!("expected string {}, got {other:?}", go_quote(want))),
        };
    }
    match (&cmd.kind, v) {
        (EvalKind::Range { start, end, step }, Value::Matrix(m)) => {
            if cmd.scalar.is_some() {
                return Err("a range query cannot expect a bare scalar".into());
            }
            if cmd.ordered() {
                return Err("expect ordered is not possible for a range query".into());
            }
            check_matrix(m, &cmd.series, *start, *end, *step)
        }
        (EvalKind::Instant { .. }, Value::Matrix(m)) => match cmd.range_vector {
            Some((t1, t2, s)) => check_matrix(m, &cmd.series, t1, t2, s),
            None if m.is_empty() && cmd.series.is_empty() && cmd.scalar.is_none() => Ok(()),
            None => Err("range vector result needs 'expect range vector'".into()),
        },
        (EvalKind::Instant { .. }, Value::Scalar(s)) => match cmd.scalar {
            Some(want) if float_eq(want, s.v) => Ok(()),
            Some(want) => Err(format!("expected scalar {want}, got {}", s.v)),
            None => Err(format!("expected a vector, got scalar {}", s.v)),
        },
        (EvalKind::Instant { .. }, Value::String { v, .. }) => {
            if cmd.series.is_empty() && cmd.scalar.is_none() && v.is_empty() {
                Ok(())
            } else {
                Err(format!("unexpected string result {v:?}"))
            }
        }
        (EvalKind::Instant { .. }, Value::Vector(vec)) => {
            if let Some(s) = cmd.scalar {
                return Err(format!(
                    "expected scalar {s}, got a vector of {}",
                    vec.len()
                ));
            }
            if cmd.range_vector.is_some() {
                return Err("expected a range vector, got an instant vector".into());
            }
            if vec.len() != cmd.series.len() {
                return Err(format!(
                    "expected {} samples, got {}: {:?}",
                    cmd.series.len(),
                    vec.len(),
                    vec.iter()
                        .map(|s| format!("{} {}", s.labels, s.v))
                        .collect::<Vec<_>>()
                ));
            }
            let ordered = cmd.ordered();
            for (i, s) in vec.iter().enumerate() {
                let want = if ordered {
                    cmd.series.get(i).filter(|w| w.labels == s.labels)
                } else {
                    cmd.series.iter().find(|w| w.labels == s.labels)
                };
                let Some(want) = want else {
                    return Err(format!(
                        "unexpected sample {} {} (position {})",
                        s.labels,
                        s.v,
                        i + 1
                    ));
                };
                match (want.slots.first(), &s.h) {
                    (Some(Slot::Float(e)), None) if float_eq(*e, s.v) => {}
                    (Some(Slot::Float(e)), None) => {
                        return Err(format!("{}: expected {e}, got {}", s.labels, s.v));
                    }
                    (Some(Slot::Float(e)), Some(h)) => {
                        return Err(format!(
                            "{}: expected float {e}, got histogram {h}",
                            s.labels
                        ));
                    }
                    (Some(Slot::Histogram(e, spelled)), Some(h)) => {
                        if !histogram_matches(e, h, *spelled) {
                            return Err(format!("{}: expected {e}, got {h}", s.labels));
                        }
                    }
                    _ => {
                        return Err(format!(
                            "{}: expected a native histogram, got float {}",
                            s.labels, s.v
                        ));
                    }
                }
            }
            for w in &cmd.series {
                if !vec.iter().any(|s| s.labels == w.labels) {
                    return Err(format!("expected sample {} not in result", w.labels));
                }
            }
            Ok(())
        }
        (EvalKind::Range { .. }, other) => Err(format!(
            "range query returned {} instead of a matrix",
            other.type_name()
        )),
    }
}

/// Runs an instant eval as a range query from `at - 1m` to `at + 1m` at 1m
/// and checks the point at `at` against the same expectations.
fn cross_check_range(
    engine: &Engine,
    q: &dyn Queryable,
    cmd: &EvalCommand,
    query: &Query,
    at: i64,
) -> Result<(), String> {
    let res = engine
        .exec_range(
            q,
            query,
            at - 60_000,
            at + 60_000,
            Duration::from_secs(60),
            &Default::default(),
        )
        .map_err(|e| format!("range-mode cross-check failed: {e}"))?;
    let Value::Matrix(m) = res.value else {
        return Err("range-mode cross-check did not return a matrix".into());
    };
    if m.windows(2).any(|w| w[0].labels > w[1].labels) {
        return Err("range-mode cross-check: matrix not sorted".into());
    }
    let at_t: Vec<(&Labels, f64)> = m
        .iter()
        .filter_map(|s| {
            s.samples
                .iter()
                .find(|p| p.t == at)
                .map(|p| (&s.labels, p.v))
        })
        .collect();
    if let Some(want) = cmd.scalar {
        return match at_t.first() {
            Some((_, v)) if float_eq(want, *v) => Ok(()),
            other => Err(format!(
                "range-mode cross-check: expected scalar {want} at {at}ms, got {other:?}"
            )),
        };
    }
    if at_t.len() != cmd.series.len() {
        return Err(format!(
            "range-mode cross-check: expected {} series at {at}ms, got {}",
            cmd.series.len(),
            at_t.len()
        ));
    }
    for (labels, v) in at_t {
        let Some(w) = cmd.series.iter().find(|w| w.labels == *labels) else {
            return Err(format!(
                "range-mode cross-check: unexpected series {labels}"
            ));
        };
        match w.slots.first() {
            Some(Slot::Float(e)) if float_eq(*e, v) => {}
            _ => {
                return Err(format!(
                    "range-mode cross-check: {labels}: expected {:?}, got {v}",
                    w.slots.first()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_series_notation() {
        let v = parse_values("1 _x2 -2+4x3 5x1 stale _", true).unwrap();
        let f: Vec<String> = v
            .iter()
            .map(|s| match s {
                Slot::Empty => "_".to_string(),
                Slot::Float(x) if is_stale_nan(*x) => "stale".to_string(),
                Slot::Float(x) => x.to_string(),
                Slot::Histogram(..) => "h".to_string(),
            })
            .collect();
        assert_eq!(
            f,
            vec!["1", "_", "_", "-2", "2", "6", "10", "5", "5", "stale", "_"]
        );
        assert_eq!(
            parse_values("{{schema:1 sum:2}}x2 {{count:1}}+{{count:1}}x1", true)
                .unwrap()
                .len(),
            5
        );
        assert!(parse_values("1e-3+1x1", true).unwrap()[1] == Slot::Float(1.001));
    }

    #[test]
    fn parses_series_identifiers() {
        let (l, rest) = parse_series_id("foo{a=\"b\", c='d',} 1 2").unwrap();
        assert_eq!(
            l,
            Labels::from_pairs([("__name__", "foo"), ("a", "b"), ("c", "d")])
        );
        assert_eq!(rest, "1 2");
        let (l, _) = parse_series_id("{__name__=\"x\"} 1").unwrap();
        assert_eq!(l, Labels::from_pairs([("__name__", "x")]));
        let (l, _) = parse_series_id("{} 1").unwrap();
        assert!(l.is_empty());
    }

    #[test]
    fn runs_a_small_script() {
        let text = "load 10s\n  metric 0 1 stale 2\n\neval instant at 10s metric\n  metric 1\n\neval instant at 20s metric\n\neval instant at 10s metric\n  metric 7\n\neval instant at 0s count(\n  expect fail\n";
        let s = Script::parse("t", text).unwrap();
        let out = s.run(&RunOptions::default());
        let passed: Vec<bool> = out.iter().map(|o| o.passed).collect();
        assert_eq!(passed, vec![true, true, false, true], "{out:?}");
    }
}
