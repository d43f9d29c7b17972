//! `/api/v1/rules` and `/api/v1/alerts` in Prometheus's JSON: rule groups
//! with their rules' health, last error, evaluation time and active alerts
//! inline, and the flat list of pending and firing alerts.
//!
//! Reads the status snapshots the rule manager publishes
//! ([`RuleManager::groups`], [`RuleManager::alerts`]); it never evaluates
//! anything and never blocks on a running evaluation.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::ApiState;
use super::prom::{ApiError, Params, success};
use crate::model::{Labels, Timestamp};
use crate::rules::{ActiveAlert, GroupStatus, RuleKind, RuleStatus};

/// Go's zero `time.Time`, which Prometheus shows for "never evaluated".
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn time(ts: Option<Timestamp>) -> String {
    ts.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| GO_ZERO_TIME.to_string())
}

fn labels(l: &Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|x| (x.name.clone(), Value::String(x.value.clone())))
            .collect(),
    )
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, which Prometheus uses for
/// alert values: shortest digits, exponent signed and at least two digits.
pub(crate) fn go_exp(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

fn alert_json(a: &ActiveAlert) -> Value {
    let mut m = Map::new();
    m.insert("labels".into(), labels(&a.labels));
    m.insert(
        "annotations".into(),
        Value::Object(
            a.annotations
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        ),
    );
    m.insert("state".into(), json!(a.state.as_str()));
    m.insert("activeAt".into(), json!(time(Some(a.active_at))));
    if let Some(t) = a.keep_firing_since {
        m.insert("keepFiringSince".into(), json!(time(Some(t))));
    }
    m.insert("value".into(), json!(go_exp(a.value)));
    Value::Object(m)
}

fn rule_json(r: &RuleStatus, with_alerts: bool) -> Value {
    let mut m = Map::new();
    match &r.kind {
        RuleKind::Alerting {
            duration,
            keep_firing_for,
            keep_firing_while,
            annotations,
            alerts,
            state,
        } => {
            m.insert("state".into(), json!(state.as_str()));
            m.insert("name".into(), json!(r.name));
            m.insert("query".into(), json!(r.query));
            m.insert("duration".into(), json!(duration.as_secs_f64()));
            m.insert("keepFiringFor".into(), json!(keep_firing_for.as_secs_f64()));
            // watchpost extension; absent when unused, so clients that
            // compare with Prometheus see the same object.
            if let Some(q) = keep_firing_while {
                m.insert("keepFiringWhile".into(), json!(q));
            }
            m.insert("labels".into(), labels(&r.labels));
            m.insert(
                "annotations".into(),
                Value::Object(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect(),
                ),
            );
            if with_alerts {
                m.insert(
                    "alerts".into(),
                    Value::Array(alerts.iter().map(alert_json).collect()),
                );
            }
        }
        RuleKind::Recording => {
            m.insert("name".into(), json!(r.name));
            m.insert("query".into(), json!(r.query));
            if !r.labels.is_empty() {
                m.insert("labels".into(), labels(&r.labels));
            }
        }
    }
    m.insert("health".into(), json!(r.health.as_str()));
    if let Some(e) = r.last_error.as_ref().filter(|e| !e.is_empty()) {
        m.insert("lastError".into(), json!(e));
    }
    m.insert(
        "evaluationTime".into(),
        json!(r.evaluation_time.as_secs_f64()),
    );
    m.insert("lastEvaluation".into(), json!(time(r.last_evaluation)));
    let kind = match r.kind {
        RuleKind::Alerting { .. } => "alerting",
        RuleKind::Recording => "recording",
    };
    m.insert("type".into(), json!(kind));
    Value::Object(m)
}

/// Which rules `/api/v1/rules` returns.
#[derive(Debug, Default)]
struct Filter {
    /// `type`: `Some(true)` alerting only, `Some(false)` recording only.
    alerting: Option<bool>,
    names: Vec<String>,
    groups: Vec<String>,
    files: Vec<String>,
    exclude_alerts: bool,
}

impl Filter {
    fn parse(p: &Params) -> Result<Filter, ApiError> {
        let alerting = match p.get("type").map(str::to_ascii_lowercase).as_deref() {
            None | Some("") => None,
            Some("alert") => Some(true),
            Some("record") => Some(false),
            Some(other) => {
                return Err(ApiError::bad_data(format!(
                    "invalid parameter \"type\": not supported value {other:?}: use alert or record"
                )));
            }
        };
        let exclude_alerts = match p.get("exclude_alerts") {
            None | Some("") => false,
            Some(v) => v.parse::<bool>().map_err(|_| {
                ApiError::bad_data(format!(
                    "invalid parameter \"exclude_alerts\": {v:?} is not a boolean: use true or false"
                ))
            })?,
        };
        let all = |k: &str| p.all(k).into_iter().map(str::to_string).collect();
        Ok(Filter {
            alerting,
            names: all("rule_name[]"),
            groups: all("rule_group[]"),
            files: all("file[]"),
            exclude_alerts,
        })
    }

    fn group(&self, g: &GroupStatus) -> bool {
        (self.groups.is_empty() || self.groups.contains(&g.name))
            && (self.files.is_empty() || self.files.contains(&g.file))
    }

    fn rule(&self, r: &RuleStatus) -> bool {
        let is_alerting = matches!(r.kind, RuleKind::Alerting { .. });
        self.alerting.is_none_or(|a| a == is_alerting)
            && (self.names.is_empty() || self.names.contains(&r.name))
    }

    /// With a rule-level filter, a group left without rules is omitted,
    /// as Prometheus does.
    fn filters_rules(&self) -> bool {
        self.alerting.is_some() || !self.names.is_empty()
    }
}

fn rules_json(groups: &[GroupStatus], f: &Filter) -> Value {
    let mut out = Vec::new();
    for g in groups.iter().filter(|g| f.group(g)) {
        let rules: Vec<Value> = g
            .rules
            .iter()
            .filter(|r| f.rule(r))
            .map(|r| rule_json(r, !f.exclude_alerts))
            .collect();
        if rules.is_empty() && f.filters_rules() {
            continue;
        }
        out.push(json!({
            "name": g.name,
            "file": g.file,
            "rules": rules,
            "interval": g.interval.as_secs_f64(),
            "limit": g.limit,
            "evaluationTime": g.evaluation_time.as_secs_f64(),
            "lastEvaluation": time(g.last_evaluation),
        }));
    }
    json!({ "groups": out })
}

/// `GET /api/v1/rules`.
pub async fn rules(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::from_query(q.as_deref());
    let f = match Filter::parse(&p) {
        Ok(f) => f,
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    let groups = st.rules.as_ref().map(|r| r.groups()).unwrap_or_default();
    success(rules_json(&groups, &f))
}

/// `GET /api/v1/alerts`: the rules' pending and firing alerts, then the
/// missed heartbeats' `HeartbeatMissed` (value: the last ping time, 0 when
/// never pinged), with an ETag.
pub async fn alerts(State(st): State<ApiState>, headers: axum::http::HeaderMap) -> Response {
    let mut alerts = st.rules.as_ref().map(|r| r.alerts()).unwrap_or_default();
    if let Some(h) = &st.heartbeats {
        alerts.extend(h.missed().into_iter().map(|m| ActiveAlert {
            labels: m.labels,
            annotations: m.annotations,
            state: crate::rules::AlertState::Firing,
            active_at: m.missed_since.unwrap_or(m.deadline),
            fired_at: m.missed_since,
            value: m.last_ping.map_or(0.0, |t| t as f64 / 1000.0),
            keep_firing_since: None,
        }));
    }
    let body = success(json!({ "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>() }));
    super::etag::conditional(&headers, body).await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::config::RuleEvaluation;
    use crate::rules::{AlertState, RuleHealth};

    #[test]
    fn values_are_formatted_like_go() {
        assert_eq!(go_exp(1.0), "1e+00");
        assert_eq!(go_exp(0.5), "5e-01");
        assert_eq!(go_exp(123.456), "1.23456e+02");
        assert_eq!(go_exp(-2.5e-300), "-2.5e-300");
        assert_eq!(go_exp(0.0), "0e+00");
        assert_eq!(go_exp(f64::NAN), "NaN");
        assert_eq!(go_exp(f64::NEG_INFINITY), "-Inf");
    }

    fn status() -> Vec<GroupStatus> {
        let alert = ActiveAlert {
            labels: Labels::from_pairs([("alertname", "Hot"), ("instance", "a")]),
            annotations: BTreeMap::from([("summary".to_string(), "hot".to_string())]),
            state: AlertState::Firing,
            active_at: 1_700_000_000_000,
            fired_at: Some(1_700_000_060_000),
            value: 95.0,
            keep_firing_since: None,
        };
        vec![
            GroupStatus {
                name: "host".into(),
                file: "rules/host.yml".into(),
                interval: Duration::from_secs(30),
                query_offset: Duration::ZERO,
                limit: 0,
                evaluation: RuleEvaluation::Interval,
                rules: vec![
                    RuleStatus {
                        name: "Hot".into(),
                        query: "cpu > 90".into(),
                        labels: Labels::from_pairs([("severity", "page")]),
                        kind: RuleKind::Alerting {
                            duration: Duration::from_secs(60),
                            keep_firing_for: Duration::ZERO,
                            keep_firing_while: Some("cpu > 80".into()),
                            annotations: BTreeMap::new(),
                            alerts: vec![alert],
                            state: AlertState::Firing,
                        },
                        health: RuleHealth::Good,
                        last_error: None,
                        last_evaluation: Some(1_700_000_100_500),
                        evaluation_time: Duration::from_millis(2),
                    },
                    RuleStatus {
                        name: "cpu:avg".into(),
                        query: "avg(cpu)".into(),
                        labels: Labels::empty(),
                        kind: RuleKind::Recording,
                        health: RuleHealth::Bad,
                        last_error: Some("boom".into()),
                        last_evaluation: None,
                        evaluation_time: Duration::ZERO,
                    },
                ],
                last_evaluation: Some(1_700_000_100_500),
                evaluation_time: Duration::from_millis(3),
            },
            GroupStatus {
                name: "other".into(),
                file: "rules/other.yml".into(),
                interval: Duration::from_secs(60),
                query_offset: Duration::ZERO,
                limit: 5,
                evaluation: RuleEvaluation::OnScrape,
                rules: vec![],
                last_evaluation: None,
                evaluation_time: Duration::ZERO,
            },
        ]
    }

    fn parse(q: &str) -> Filter {
        Filter::parse(&Params::from_query(Some(q))).unwrap()
    }

    #[test]
    fn rules_have_prometheus_shape() {
        let v = rules_json(&status(), &Filter::default());
        let g = &v["groups"][0];
        assert_eq!(g["interval"], json!(30.0));
        assert_eq!(g["lastEvaluation"], json!("2023-11-14T22:15:00.500Z"));
        let a = &g["rules"][0];
        assert_eq!(a["type"], "alerting");
        assert_eq!(a["state"], "firing");
        assert_eq!(a["duration"], json!(60.0));
        assert_eq!(a["keepFiringWhile"], "cpu > 80");
        assert_eq!(a["labels"], json!({"severity": "page"}));
        assert_eq!(a["health"], "ok");
        assert!(a.get("lastError").is_none());
        assert_eq!(a["alerts"][0]["value"], "9.5e+01");
        assert_eq!(a["alerts"][0]["activeAt"], "2023-11-14T22:13:20Z");
        let r = &g["rules"][1];
        assert_eq!(r["type"], "recording");
        assert_eq!(r["health"], "err");
        assert_eq!(r["lastError"], "boom");
        assert!(r.get("labels").is_none());
        assert_eq!(r["lastEvaluation"], GO_ZERO_TIME);
        assert_eq!(v["groups"][1]["rules"], json!([]));
    }

    #[test]
    fn filters() {
        let names = |v: &Value| -> Vec<String> {
            v["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["rules"].as_array().unwrap().clone())
                .map(|r| r["name"].as_str().unwrap().to_string())
                .collect()
        };
        let groups = |v: &Value| v["groups"].as_array().unwrap().len();
        let v = rules_json(&status(), &parse("type=alert"));
        assert_eq!(names(&v), ["Hot"]);
        // The empty group is dropped under a rule-level filter.
        assert_eq!(groups(&v), 1);
        assert_eq!(
            names(&rules_json(&status(), &parse("type=record"))),
            ["cpu:avg"]
        );
        assert_eq!(
            names(&rules_json(
                &status(),
                &parse("rule_name[]=cpu:avg&rule_name[]=x")
            )),
            ["cpu:avg"]
        );
        assert_eq!(
            groups(&rules_json(&status(), &parse("rule_group[]=other"))),
            1
        );
        assert_eq!(
            groups(&rules_json(&status(), &parse("file[]=rules%2Fhost.yml"))),
            1
        );
        let v = rules_json(&status(), &parse("exclude_alerts=true"));
        assert!(v["groups"][0]["rules"][0].get("alerts").is_none());
        assert!(Filter::parse(&Params::from_query(Some("type=bogus"))).is_err());
    }
}
