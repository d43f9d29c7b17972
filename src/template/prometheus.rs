//! Prometheus's template functions and alert-template data, with the
//! semantics of Prometheus's `template/template.go`: `humanize` and
//! friends, `query`/`first`/`label`/`value`, `externalURL`, ... and the
//! `$labels`/`$value`/`$externalLabels`/`$externalURL` variables of alerting
//! rule labels and annotations.
//!
//! `query` runs PromQL through a [`QueryFn`] the rules layer supplies, so
//! this module never sees the engine. Time (`now`, the query timestamp) is
//! part of [`PromContext`]: the evaluation's timestamp, not the clock.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::gofmt::{display, sprintf};
use super::gotime::GoTime;
use super::stdlib;
use super::value::{GoType, Param, STRING_MAP, Value};
use super::{FuncError, FuncMap, Function, MissingKey, Template, TemplateError};
use crate::model::{Labels, Timestamp};

/// One element of a query result.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A query that failed; its text becomes `error calling query: ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// Runs an instant PromQL query at the evaluation timestamp.
pub type QueryFn = Arc<dyn Fn(&str) -> Result<Vec<QuerySample>, QueryError> + Send + Sync>;

/// What Prometheus's functions need from the outside.
#[derive(Clone, Default)]
pub struct PromContext {
    /// `--web.external-url`, as `externalURL` returns it.
    pub external_url: String,
    /// The evaluation timestamp: what `now` returns.
    pub now: Timestamp,
    /// Runs `query`. Without one, `query` fails with an error naming why.
    pub query: Option<QueryFn>,
}

impl std::fmt::Debug for PromContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromContext")
            .field("external_url", &self.external_url)
            .field("now", &self.now)
            .field("query", &self.query.is_some())
            .finish()
    }
}

fn zero_missing() -> Value {
    Value::Missing
}

/// Prometheus's `*template.sample`.
pub static SAMPLE: GoType = GoType {
    name: "*template.sample",
    methods: &[],
    stringer: None,
    elem_zero: zero_missing,
    pointer: true,
    json_names: &[],
    elem_iface: false,
};

/// Prometheus's `template.queryResult`.
pub static QUERY_RESULT: GoType = GoType {
    name: "template.queryResult",
    methods: &[],
    stringer: None,
    elem_zero: zero_missing,
    pointer: false,
    json_names: &[],
    elem_iface: false,
};

/// The struct Prometheus executes alert templates with.
pub static ALERT_DATA: GoType = GoType {
    name: "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value interface {} }",
    methods: &[],
    stringer: None,
    elem_zero: zero_missing,
    pointer: false,
    json_names: &[],
    elem_iface: false,
};

fn sample_value(s: &QuerySample) -> Value {
    Value::record(
        &SAMPLE,
        vec![
            ("Labels", Value::string_map(s.labels.clone())),
            ("Value", Value::Float(s.value)),
        ],
    )
}

/// Prometheus's `ConvertToFloat`, the input conversion of `humanize` and
/// friends: numbers, numeric strings (Go's `strconv.ParseFloat`, with its
/// error text) and durations (in seconds).
pub fn convert_to_float(v: &Value) -> Result<f64, FuncError> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => stdlib::parse_go_float(s).map_err(FuncError),
        Value::Duration(d) => Ok((d / 1_000_000_000) as f64 + (d % 1_000_000_000) as f64 / 1e9),
        v => Err(FuncError(format!(
            "can't convert {} to float",
            v.type_name()
        ))),
    }
}

fn g4(v: f64) -> String {
    sprintf("%.4g", &[Value::Float(v)])
}

pub(crate) fn humanize(v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    let mut v = v;
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
        return format!("{}{prefix}", g4(v));
    }
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}", g4(v))
}

pub(crate) fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", g4(v))
}

/// `humanizeDuration`, shared with Alertmanager (prometheus/common).
pub(crate) fn humanize_duration(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    if v == 0.0 {
        return format!("{}s", g4(v));
    }
    if v.abs() >= 1.0 {
        let (sign, v) = if v < 0.0 { ("-", -v) } else { ("", v) };
        let d = v as i64;
        let (secs, mins, hours, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86_400);
        if days != 0 {
            return format!("{sign}{days}d {hours}h {mins}m {secs}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {mins}m {secs}s");
        }
        if mins != 0 {
            return format!("{sign}{mins}m {secs}s");
        }
        return format!("{sign}{}s", g4(v));
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

/// Prometheus's `floatToTime`: seconds to a UTC time, truncated to the
/// millisecond as `model.TimeFromUnixNano` does.
fn float_to_time(v: f64) -> Result<GoTime, FuncError> {
    if v.is_nan() || v.is_infinite() {
        return Err(FuncError::new("value is NaN or Inf"));
    }
    let ts = v * 1e9;
    if ts > i64::MAX as f64 || ts < i64::MIN as f64 {
        return Err(FuncError(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            display(&Value::Float(v))
        )));
    }
    let ms = (ts as i64) / 1_000_000;
    Ok(GoTime::from_unix_millis(ms))
}

fn humanize_timestamp(v: f64) -> Result<String, FuncError> {
    if v.is_nan() || v.is_infinite() {
        return Ok(g4(v));
    }
    Ok(float_to_time(v)?.to_string())
}

fn float_arg(a: &[Value]) -> Result<f64, FuncError> {
    convert_to_float(&a[0])
}

fn str_arg(a: &[Value], i: usize) -> &str {
    a.get(i).and_then(Value::as_str).unwrap_or("")
}

fn sample_arg(v: &Value) -> Result<&super::value::Struct, FuncError> {
    match v {
        Value::Struct(s) => Ok(s),
        _ => Err(FuncError::new(
            "runtime error: invalid memory address or nil pointer dereference",
        )),
    }
}

fn sample_label(s: &super::value::Struct, name: &str) -> String {
    match s.field("Labels") {
        Some(Value::Map(m)) => m
            .entries
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        _ => String::new(),
    }
}

/// Path of a URL (`url.URL.Path`): what follows the authority, without
/// query or fragment.
fn url_path(u: &str) -> String {
    let rest = match u.find("://") {
        Some(i) => {
            let after = &u[i + 3..];
            match after.find(['/', '?', '#']) {
                Some(j) => &after[j..],
                None => "",
            }
        }
        None => u,
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    stdlib::query_unescape(&rest[..end].replace('+', "%2B"))
        .unwrap_or_else(|_| rest[..end].to_string())
}

/// The functions Prometheus offers alert and console templates.
pub fn prometheus_funcs(ctx: &PromContext) -> FuncMap {
    let mut m = FuncMap::new();
    let query = ctx.query.clone();
    m.insert(
        "query",
        Function::new(&[Param::String], move |a| {
            let Some(q) = &query else {
                return Err(FuncError::new(
                    "no query engine is available to templates here",
                ));
            };
            let samples = q(str_arg(a, 0)).map_err(|e| FuncError(e.0))?;
            Ok(Value::typed_list(
                &QUERY_RESULT,
                samples.iter().map(sample_value).collect(),
            ))
        }),
    );
    m.insert(
        "first",
        Function::new(&[Param::Typed(&QUERY_RESULT)], |a| match &a[0] {
            Value::List(l) if !l.items.is_empty() => Ok(l.items[0].clone()),
            _ => Err(FuncError::new("first() called on vector with no elements")),
        }),
    );
    m.insert(
        "label",
        Function::new(&[Param::String, Param::Typed(&SAMPLE)], |a| {
            let s = sample_arg(&a[1])?;
            Ok(Value::from(sample_label(s, str_arg(a, 0))))
        }),
    );
    m.insert(
        "value",
        Function::new(&[Param::Typed(&SAMPLE)], |a| {
            let s = sample_arg(&a[0])?;
            Ok(s.field("Value").cloned().unwrap_or(Value::Nil))
        }),
    );
    m.insert(
        "strvalue",
        Function::new(&[Param::Typed(&SAMPLE)], |a| {
            let s = sample_arg(&a[0])?;
            Ok(Value::from(sample_label(s, "__value__")))
        }),
    );
    m.insert(
        "sortByLabel",
        Function::new(&[Param::String, Param::Typed(&QUERY_RESULT)], |a| {
            let label = str_arg(a, 0);
            let Value::List(l) = &a[1] else {
                return Ok(a[1].clone());
            };
            let mut items: Vec<(String, Value)> = l
                .items
                .iter()
                .map(|v| {
                    let key = match v {
                        Value::Struct(s) => sample_label(s, label),
                        _ => String::new(),
                    };
                    (key, v.clone())
                })
                .collect();
            items.sort_by(|x, y| x.0.cmp(&y.0));
            Ok(Value::typed_list(
                &QUERY_RESULT,
                items.into_iter().map(|(_, v)| v).collect(),
            ))
        }),
    );
    m.insert(
        "args",
        Function::variadic(&[], Param::Any, |a| {
            Ok(Value::map(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let v = if matches!(v, Value::Missing) {
                            Value::Nil
                        } else {
                            v.clone()
                        };
                        (format!("arg{i}"), v)
                    })
                    .collect(),
            ))
        }),
    );
    add_string_funcs(&mut m);
    m.insert(
        "title",
        Function::new(&[Param::String], |a| {
            Ok(Value::from(stdlib::title(str_arg(a, 0), true)))
        }),
    );
    m.insert(
        "graphLink",
        Function::new(&[Param::String], |a| {
            Ok(Value::from(format!(
                "/graph?g0.expr={}&g0.tab=0",
                super::builtins::query_escape(str_arg(a, 0))
            )))
        }),
    );
    m.insert(
        "tableLink",
        Function::new(&[Param::String], |a| {
            Ok(Value::from(format!(
                "/graph?g0.expr={}&g0.tab=1",
                super::builtins::query_escape(str_arg(a, 0))
            )))
        }),
    );
    m.insert(
        "stripPort",
        Function::new(&[Param::String], |a| {
            let hp = str_arg(a, 0);
            Ok(Value::from(match stdlib::split_host_port(hp) {
                Ok((host, _)) => host,
                Err(_) => hp.to_string(),
            }))
        }),
    );
    m.insert(
        "stripDomain",
        Function::new(&[Param::String], |a| {
            Ok(Value::from(strip_domain(str_arg(a, 0))))
        }),
    );
    m.insert(
        "humanize",
        Function::new(&[Param::Any], |a| Ok(Value::from(humanize(float_arg(a)?)))),
    );
    m.insert(
        "humanize1024",
        Function::new(&[Param::Any], |a| {
            Ok(Value::from(humanize1024(float_arg(a)?)))
        }),
    );
    m.insert(
        "humanizeDuration",
        Function::new(&[Param::Any], |a| {
            Ok(Value::from(humanize_duration(float_arg(a)?)))
        }),
    );
    m.insert(
        "humanizePercentage",
        Function::new(&[Param::Any], |a| {
            Ok(Value::from(format!("{}%", g4(float_arg(a)? * 100.0))))
        }),
    );
    m.insert(
        "humanizeTimestamp",
        Function::new(&[Param::Any], |a| {
            Ok(Value::from(humanize_timestamp(float_arg(a)?)?))
        }),
    );
    m.insert(
        "toTime",
        Function::new(&[Param::Any], |a| {
            Ok(Value::Time(float_to_time(float_arg(a)?)?))
        }),
    );
    m.insert(
        "toDuration",
        Function::new(&[Param::Any], |a| {
            let v = float_arg(a)?;
            if v.is_nan() || v.is_infinite() {
                return Err(FuncError::new("value is NaN or Inf"));
            }
            let d = v * 1e9;
            if d > i64::MAX as f64 || d < i64::MIN as f64 {
                return Err(FuncError(format!(
                    "{} cannot be represented as a nanoseconds duration since it overflows int64",
                    display(&Value::Float(v))
                )));
            }
            Ok(Value::Duration(d as i64))
        }),
    );
    let now = ctx.now;
    m.insert(
        "now",
        Function::new(&[], move |_| Ok(Value::Float(now as f64 / 1000.0))),
    );
    let path = url_path(&ctx.external_url);
    m.insert(
        "pathPrefix",
        Function::new(&[], move |_| Ok(Value::from(path.as_str()))),
    );
    let url = ctx.external_url.clone();
    m.insert(
        "externalURL",
        Function::new(&[], move |_| Ok(Value::from(url.as_str()))),
    );
    m.insert(
        "parseDuration",
        Function::new(&[Param::String], |a| {
            let d = crate::model::parse_duration(str_arg(a, 0)).map_err(FuncError)?;
            Ok(Value::Float(d.as_secs_f64()))
        }),
    );
    m.insert(
        "urlQueryEscape",
        Function::new(&[Param::String], |a| {
            Ok(Value::from(super::builtins::query_escape(str_arg(a, 0))))
        }),
    );
    m.insert("tmpl", Function::exec_template());
    m
}

/// Functions Prometheus and Alertmanager share with the same behaviour.
pub(crate) fn add_string_funcs(m: &mut FuncMap) {
    m.insert(
        "toUpper",
        Function::new(&[Param::String], |a| {
            Ok(Value::from(stdlib::map_case(str_arg(a, 0), true)))
        }),
    );
    m.insert(
        "toLower",
        Function::new(&[Param::String], |a| {
            Ok(Value::from(stdlib::map_case(str_arg(a, 0), false)))
        }),
    );
    m.insert(
        "match",
        Function::new(&[Param::String, Param::String], |a| {
            let re = stdlib::go_regex(str_arg(a, 0)).map_err(FuncError)?;
            Ok(Value::Bool(re.is_match(str_arg(a, 1))))
        }),
    );
    m.insert(
        "reReplaceAll",
        Function::new(&[Param::String, Param::String, Param::String], |a| {
            let pattern = str_arg(a, 0);
            let re = stdlib::go_regex(pattern).map_err(|e| {
                FuncError(format!("regexp: Compile({}): {e}", go_backquote(pattern)))
            })?;
            stdlib::replace_all_bounded(&re, str_arg(a, 2), str_arg(a, 1), super::MAX_VALUE_BYTES)
                .map(Value::from)
                .map_err(FuncError)
        }),
    );
    m.insert(
        "safeHtml",
        Function::new(&[Param::String], |a| Ok(Value::from(str_arg(a, 0)))),
    );
}

/// Go's `%#q`-style quoting `regexp.MustCompile` uses in its panic text.
fn go_backquote(s: &str) -> String {
    if s.contains('`') {
        super::gofmt::quote(s)
    } else {
        format!("`{s}`")
    }
}

fn strip_domain(hostport: &str) -> String {
    let (host, port) = match stdlib::split_host_port(hostport) {
        Ok((h, p)) => (h, p),
        Err(_) => (hostport.to_string(), String::new()),
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        return hostport.to_string();
    }
    let host = host.split('.').next().unwrap_or("").to_string();
    if !port.is_empty() {
        return stdlib::join_host_port(&host, &port);
    }
    host
}

/// Data of an alert template: Prometheus's `AlertTemplateData`.
pub fn alert_template_data(
    labels: &Labels,
    external_labels: &Labels,
    external_url: &str,
    value: f64,
) -> Value {
    let map = |l: &Labels| {
        Value::typed_map(
            &STRING_MAP,
            l.iter()
                .map(|l| (l.name.clone(), Value::from(l.value.as_str())))
                .collect(),
        )
    };
    Value::record(
        &ALERT_DATA,
        vec![
            ("Labels", map(labels)),
            ("ExternalLabels", map(external_labels)),
            ("ExternalURL", Value::from(external_url)),
            ("Value", Value::Float(value)),
        ],
    )
}

/// The variables Prometheus defines before every alert label and annotation
/// template. Prepending them (rather than predefining variables) keeps
/// error positions identical to Prometheus's.
const ALERT_DEFS: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// An alerting rule's label or annotation template, parsed once at rule
/// load and expanded at every evaluation.
#[derive(Clone, Debug)]
pub struct AlertTemplate {
    name: String,
    template: Template,
}

impl AlertTemplate {
    /// Parses `text` for the rule `alert_name` (errors name the template
    /// `__alert_<name>` as Prometheus does). `funcs` supplies the function
    /// names, normally [`prometheus_funcs`].
    pub fn parse(alert_name: &str, text: &str, funcs: &FuncMap) -> Result<Self, TemplateError> {
        let name = format!("__alert_{alert_name}");
        let full = format!("{ALERT_DEFS}{text}");
        let template = Template::parse(&name, &full, funcs)?.with_missing_key(MissingKey::Zero);
        Ok(AlertTemplate { name, template })
    }

    /// Renders the template for one alert.
    pub fn expand(
        &self,
        labels: &Labels,
        external_labels: &Labels,
        external_url: &str,
        value: f64,
        funcs: &FuncMap,
    ) -> Result<String, TemplateError> {
        let data = alert_template_data(labels, external_labels, external_url, value);
        self.template.execute(&data, funcs)
    }

    /// Renders, turning a failure into visible text the way Prometheus
    /// does, so a broken template never drops an alert:
    /// `<error expanding template: error executing template __alert_X: ...>`.
    pub fn expand_or_error_text(
        &self,
        labels: &Labels,
        external_labels: &Labels,
        external_url: &str,
        value: f64,
        funcs: &FuncMap,
    ) -> String {
        match self.expand(labels, external_labels, external_url, value, funcs) {
            Ok(s) => s,
            Err(e) => error_text(&self.name, &e),
        }
    }
}

fn error_text(name: &str, e: &TemplateError) -> String {
    let what = match e {
        TemplateError::Parse(_) => "parsing",
        TemplateError::Exec(_) => "executing",
    };
    format!("<error expanding template: error {what} template {name}: {e}>")
}

/// Parses and expands an alert template in one go; any error becomes
/// visible text (`<error expanding template: ...>`). For templates
/// expanded repeatedly, parse once with [`AlertTemplate::parse`].
pub fn expand_alert_template(
    alert_name: &str,
    text: &str,
    labels: &Labels,
    external_labels: &Labels,
    external_url: &str,
    value: f64,
    funcs: &FuncMap,
) -> String {
    match AlertTemplate::parse(alert_name, text, funcs) {
        Ok(t) => t.expand_or_error_text(labels, external_labels, external_url, value, funcs),
        Err(e) => error_text(&format!("__alert_{alert_name}"), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanize_matches_prometheus() {
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(1.0), "1");
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(0.12), "120m");
        assert_eq!(humanize1024(1048576.0), "1Mi");
        assert_eq!(humanize1024(0.12), "0.12");
        assert_eq!(humanize_duration(899.99), "14m 59s");
        assert_eq!(humanize_duration(0.12345), "123.5ms");
        assert_eq!(
            humanize_duration(-(86400.0 * 2.0 + 3600.0 * 3.0 + 60.0 * 4.0 + 5.0)),
            "-2d 3h 4m 5s"
        );
        assert_eq!(
            humanize_timestamp(1435065584.128).unwrap(),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
    }

    #[test]
    fn strip_domain_and_path() {
        assert_eq!(strip_domain("foo.example.com:9100"), "foo:9100");
        assert_eq!(strip_domain("10.0.0.1:9100"), "10.0.0.1:9100");
        assert_eq!(strip_domain("foo.example.com"), "foo");
        assert_eq!(url_path("http://testhost:9090/path/prefix"), "/path/prefix");
        assert_eq!(url_path("http://testhost:9090"), "");
    }
}
