//! The seam between alerting rules and the template language: label and
//! annotation templates are parsed once at rule load ([`AlertTemplate::parse`])
//! and expanded at every evaluation ([`AlertTemplate::expand`]) with the
//! data Prometheus gives them (`$labels`, `$value`, `$externalLabels`,
//! `$externalURL`) and Prometheus's functions ([`TemplateFuncs`]: `humanize`
//! and friends, `query` against the rules' storage at the evaluation
//! timestamp, `now` = that timestamp, `externalURL`, ...).
//!
//! The language itself is `crate::template` (Go's `text/template`); this
//! file only adapts it. A template that fails to execute expands to visible
//! error text (`<error expanding template: ...>`), never to a dropped alert.
//! Text without `{{` is kept as it is and never reaches the engine.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::{Labels, Timestamp};
use crate::promql::{Engine, ExecOptions, Query, Value as PromValue};
use crate::storage::Storage;
use crate::template::{
    self, FuncMap, PromContext, QueryError, QueryFn, QuerySample, prometheus_funcs,
};

/// A template that did not parse; the text is Go's
/// (`template: __alert_X:1: undefined variable "$label"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateParseError(pub String);

/// What a template is expanded with.
pub(crate) struct TemplateData<'a> {
    pub labels: &'a Labels,
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
    pub value: f64,
}

/// Handles the `query` template function runs PromQL with. The rule
/// manager and the unit-test runner supply them; without them `query`
/// fails with visible text.
#[derive(Clone)]
pub(crate) struct TemplateQuery {
    pub storage: Arc<dyn Storage>,
    pub engine: Arc<Engine>,
    pub exec: ExecOptions,
}

impl TemplateQuery {
    /// `query` at `ts`, with Prometheus's conversion: a vector as is, a
    /// scalar as one sample without labels, anything else an error.
    fn query_fn(self, ts: Timestamp) -> QueryFn {
        Arc::new(move |text: &str| {
            let q = Query::parse(text).map_err(|e| QueryError(e.to_string()))?;
            let r = self
                .engine
                .exec_instant(self.storage.as_ref(), &q, ts, &self.exec)
                .map_err(|e| QueryError(e.to_string()))?;
            let sample = |labels: &Labels, value: f64| QuerySample {
                labels: labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect::<BTreeMap<_, _>>(),
                value,
            };
            match r.value {
                PromValue::Vector(v) => Ok(v.iter().map(|s| sample(&s.labels, s.v)).collect()),
                PromValue::Scalar(s) => Ok(vec![sample(&Labels::empty(), s.v)]),
                other => Err(QueryError(format!(
                    "rule result is not a vector or scalar: got a {}",
                    other.type_name()
                ))),
            }
        })
    }
}

/// Prometheus's template functions for one evaluation (its timestamp,
/// external URL and query handles). Built once per rule evaluation, and
/// only when a template needs them.
pub(crate) struct TemplateFuncs(FuncMap);

impl TemplateFuncs {
    pub(crate) fn new(external_url: &str, ts: Timestamp, query: Option<TemplateQuery>) -> Self {
        TemplateFuncs(prometheus_funcs(&PromContext {
            external_url: external_url.to_string(),
            now: ts,
            query: query.map(|q| q.query_fn(ts)),
        }))
    }
}

/// A parsed label or annotation template.
#[derive(Debug, Clone)]
pub(crate) enum AlertTemplate {
    /// No actions: the text itself.
    Plain(String),
    Go {
        source: String,
        parsed: template::AlertTemplate,
    },
}

/// Two templates are the same rule content when their source is: what
/// reload compares.
impl PartialEq for AlertTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.source() == other.source()
    }
}

impl AlertTemplate {
    /// Parses `text`, a label value or annotation of the alerting rule
    /// `alert_name`.
    pub(crate) fn parse(alert_name: &str, text: &str) -> Result<Self, TemplateParseError> {
        if !text.contains("{{") {
            return Ok(AlertTemplate::Plain(text.to_string()));
        }
        // Parsing only needs the function names; their context is the
        // evaluation's.
        let names = prometheus_funcs(&PromContext::default());
        template::AlertTemplate::parse(alert_name, text, &names)
            .map(|parsed| AlertTemplate::Go {
                source: text.to_string(),
                parsed,
            })
            .map_err(|e| TemplateParseError(e.to_string()))
    }

    /// The template text.
    pub(crate) fn source(&self) -> &str {
        match self {
            AlertTemplate::Plain(s) => s,
            AlertTemplate::Go { source, .. } => source,
        }
    }

    /// Whether expanding needs [`TemplateFuncs`].
    pub(crate) fn needs_funcs(&self) -> bool {
        matches!(self, AlertTemplate::Go { .. })
    }

    /// Expands for one alert; `funcs` must be `Some` when
    /// [`AlertTemplate::needs_funcs`].
    pub(crate) fn expand(&self, data: &TemplateData<'_>, funcs: Option<&TemplateFuncs>) -> String {
        match (self, funcs) {
            (AlertTemplate::Plain(s), _) => s.clone(),
            (AlertTemplate::Go { parsed: t, .. }, Some(f)) => t.expand_or_error_text(
                data.labels,
                data.external_labels,
                data.external_url,
                data.value,
                &f.0,
            ),
            (AlertTemplate::Go { parsed: t, .. }, None) => {
                let f = TemplateFuncs::new(data.external_url, 0, None);
                t.expand_or_error_text(
                    data.labels,
                    data.external_labels,
                    data.external_url,
                    data.value,
                    &f.0,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::mem::MemStorage;

    fn data<'a>(labels: &'a Labels, ext: &'a Labels) -> TemplateData<'a> {
        TemplateData {
            labels,
            external_labels: ext,
            external_url: "http://wp:9464",
            value: 0.5,
        }
    }

    fn funcs(ts: Timestamp) -> TemplateFuncs {
        TemplateFuncs::new("http://wp:9464", ts, None)
    }

    #[test]
    fn expands_data_references() {
        let l = Labels::from_pairs([("instance", "a:1"), ("job", "node")]);
        let ext = Labels::from_pairs([("cluster", "eu1")]);
        let t = AlertTemplate::parse(
            "Down",
            "{{ $labels.instance }} of {{.Labels.job}} in {{ $externalLabels.cluster }} is {{ $value }} ({{ index $labels \"job\" }}) {{ $externalURL }}{{/* note */}} {{ $labels.missing }}.",
        )
        .unwrap();
        assert_eq!(
            t.expand(&data(&l, &ext), Some(&funcs(0))),
            "a:1 of node in eu1 is 0.5 (node) http://wp:9464 ."
        );
        let t = AlertTemplate::parse("Down", "a {{- $value -}}  b").unwrap();
        assert_eq!(t.expand(&data(&l, &ext), Some(&funcs(0))), "a0.5b");
        let t = AlertTemplate::parse("Down", "plain {text}").unwrap();
        assert!(!t.needs_funcs());
        assert_eq!(t.expand(&data(&l, &ext), None), "plain {text}");
    }

    #[test]
    fn prometheus_functions_work() {
        let l = Labels::from_pairs([("instance", "host.example.com:9100")]);
        let t = AlertTemplate::parse(
            "A",
            "{{ $value | humanizePercentage }} on {{ $labels.instance | stripDomain }}{{ if gt $value 0.4 }} high{{ else }} low{{ end }} {{ now | humanizeTimestamp }}",
        )
        .unwrap();
        assert_eq!(
            t.expand(&data(&l, &l), Some(&funcs(1_435_065_584_128))),
            "50% on host:9100 high 2015-06-23 13:19:44.128 +0000 UTC"
        );
    }

    #[test]
    fn query_runs_against_the_given_storage() {
        let storage = Arc::new(MemStorage::new());
        {
            let mut app = storage.appender();
            for (i, v) in [3.0, 4.0].iter().enumerate() {
                let l = Labels::from_pairs([("__name__", "up"), ("instance", &format!("i{i}"))]);
                app.append(&l, 1_000, *v).unwrap();
            }
            app.commit().unwrap();
        }
        let q = TemplateQuery {
            storage,
            engine: Arc::new(Engine::default()),
            exec: ExecOptions::default(),
        };
        let f = TemplateFuncs::new("", 2_000, Some(q));
        let l = Labels::empty();
        let t = AlertTemplate::parse(
            "A",
            "{{ with query \"sum(up)\" }}{{ . | first | value }}{{ end }} {{ range query \"up\" | sortByLabel \"instance\" }}{{ .Labels.instance }}={{ .Value }} {{ end }}",
        )
        .unwrap();
        assert_eq!(t.expand(&data(&l, &l), Some(&f)), "7 i0=3 i1=4 ");
        let t = AlertTemplate::parse("A", "{{ query \"sum(\" }}").unwrap();
        let out = t.expand(&data(&l, &l), Some(&f));
        assert!(out.starts_with("<error expanding template: "), "{out}");
    }

    #[test]
    fn undefined_variables_are_load_errors() {
        let e =
            AlertTemplate::parse("InstanceDown", "x\nInstance {{ $label.foo }} down").unwrap_err();
        assert_eq!(
            e.to_string(),
            "template: __alert_InstanceDown:2: undefined variable \"$label\""
        );
        assert!(AlertTemplate::parse("A", "{{ $x := 1 }}{{ $x }}").is_ok());
        assert!(AlertTemplate::parse("A", "{{ \"$nope\" }}").is_ok());
        assert!(AlertTemplate::parse("A", "{{ nosuchfunc 1 }}").is_err());
    }

    #[test]
    fn execution_errors_are_visible_not_dropped() {
        let l = Labels::empty();
        let t = AlertTemplate::parse("A", "v={{ index 1 2 }}").unwrap();
        let out = t.expand(&data(&l, &l), Some(&funcs(0)));
        assert!(out.starts_with("<error expanding template: "), "{out}");
        assert!(out.contains("__alert_A"), "{out}");
    }

    #[test]
    fn values_print_like_go() {
        let l = Labels::empty();
        let t = AlertTemplate::parse("A", "{{ $value }}").unwrap();
        for (v, want) in [
            (1.0, "1"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.00001, "1e-05"),
            (f64::NAN, "NaN"),
        ] {
            let d = TemplateData {
                value: v,
                ..data(&l, &l)
            };
            assert_eq!(t.expand(&d, Some(&funcs(0))), want, "{v}");
        }
    }
}
