//! `/api/v1/rules/backtest`: replays one alerting rule over this
//! watchpost's stored history (see [`crate::rules::backtest`]) and answers
//! when it would have fired and resolved for each `for` value asked.
//!
//! Parameters (query string or form body): `rule` (the alert name),
//! `group` (when several groups have a rule of that name), `for`
//! (repeatable or comma separated; default the rule's own), `start`
//! (required), `end` (default now) and `step` (default the group's
//! interval), in the query API's formats. `rule_file`, in a POST body, is
//! the text of a rule file to take the rule from instead of the loaded
//! ones, to try a rule before deploying it. The replay runs on the
//! blocking pool; a client that goes away cancels it.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Form;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ApiState;
use super::prom::{ApiError, ErrorType, Params, parse_time, success};
use super::query::CancelOnDrop;
use crate::model::{Labels, Timestamp, format_duration, parse_duration};
use crate::promql::ExecOptions;
use crate::rules::backtest::{self, Backtest, BacktestOptions};
use crate::rules::{AlertingRule, LoadedGroup, Rule, RuleManagerOptions};

pub async fn get_backtest(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    run(st, Params::from_query(q.as_deref())).await
}

pub async fn post_backtest(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    Form(body): Form<Vec<(String, String)>>,
) -> Response {
    run(st, Params::from_query(q.as_deref()).merge(body)).await
}

// The default end is "now", a wall-clock fact of the request.
#[allow(clippy::disallowed_methods)]
fn now_ms() -> Timestamp {
    crate::model::timestamp_of(std::time::SystemTime::now())
}

fn duration_param(s: &str, name: &str) -> Result<Duration, ApiError> {
    if let Ok(f) = s.parse::<f64>()
        && (0.0..1e12).contains(&f)
    {
        return Ok(Duration::from_secs_f64(f));
    }
    parse_duration(s).map_err(|_| {
        ApiError::bad_data(format!(
            "invalid parameter \"{name}\": cannot parse \"{s}\" to a valid duration"
        ))
    })
}

/// The rule to replay and the settings of its group.
struct Chosen {
    rule: AlertingRule,
    group: LoadedGroup,
}

/// Groups from a posted rule file, with the config's defaults.
fn groups_of_file(st: &ApiState, text: &str) -> Result<Vec<LoadedGroup>, ApiError> {
    let groups = crate::rules::parse_str(text, "rule_file", Default::default()).map_err(|e| {
        ApiError::bad_data(format!(
            "invalid parameter \"rule_file\": {}",
            e.messages().join("; ")
        ))
    })?;
    let cfg = st.current_config();
    let o = RuleManagerOptions::from_config(&cfg, std::path::PathBuf::new(), "");
    Ok(groups
        .into_iter()
        .map(|g| LoadedGroup {
            interval: g.interval.unwrap_or(o.default_evaluation_interval),
            query_offset: g.query_offset.unwrap_or(o.query_offset),
            external_labels: o.external_labels.clone(),
            external_url: o.external_url.clone(),
            def: Arc::new(g),
        })
        .collect())
}

fn choose(groups: &[LoadedGroup], name: &str, group: Option<&str>) -> Result<Chosen, ApiError> {
    let mut found = Vec::new();
    let mut recording = false;
    for g in groups {
        if group.is_some_and(|want| want != g.def.name) {
            continue;
        }
        for r in &g.def.rules {
            match r {
                Rule::Alerting(a) if a.alert == name => found.push(Chosen {
                    rule: a.clone(),
                    group: g.clone(),
                }),
                Rule::Recording(r) if r.record == name => recording = true,
                _ => {}
            }
        }
    }
    let in_group = group
        .map(|g| format!(" in group {g:?}"))
        .unwrap_or_default();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 if recording => Err(ApiError::bad_data(format!(
            "{name:?}{in_group} is a recording rule: backtest replays alerting rules"
        ))),
        0 => {
            let mut names: Vec<&str> = groups
                .iter()
                .flat_map(|g| g.def.rules.iter())
                .filter_map(|r| match r {
                    Rule::Alerting(a) => Some(a.alert.as_str()),
                    Rule::Recording(_) => None,
                })
                .collect();
            names.sort_unstable();
            names.dedup();
            let known = if names.is_empty() {
                "there are no alerting rules".to_string()
            } else if names.len() > 20 {
                format!("alerting rules include {}, ...", names[..20].join(", "))
            } else {
                format!("alerting rules: {}", names.join(", "))
            };
            Err(ApiError::bad_data(format!(
                "no alerting rule named {name:?}{in_group}; {known}"
            )))
        }
        n => {
            let groups: Vec<String> = found
                .iter()
                .map(|c| format!("{:?} ({})", c.group.def.name, c.group.def.file))
                .collect();
            Err(ApiError::bad_data(format!(
                "{n} alerting rules are named {name:?} (groups {}): give group",
                groups.join(", ")
            )))
        }
    }
}

fn fors(p: &Params) -> Result<Vec<Duration>, ApiError> {
    let mut out = Vec::new();
    for v in p.all("for") {
        for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            out.push(duration_param(s, "for")?);
        }
    }
    Ok(out)
}

async fn run(st: ApiState, p: Params) -> Response {
    let prepared = (|| -> Result<_, ApiError> {
        let name = p
            .get("rule")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::bad_data("missing parameter \"rule\": the alert to replay"))?;
        let groups = match p.get("rule_file") {
            Some(text) => groups_of_file(&st, text)?,
            None => st
                .rules
                .as_ref()
                .map(|r| r.loaded_groups())
                .unwrap_or_default(),
        };
        let chosen = choose(&groups, name, p.get("group").filter(|s| !s.is_empty()))?;
        let start = parse_time(
            p.get("start").ok_or_else(|| {
                ApiError::bad_data("missing parameter \"start\": where the replay begins")
            })?,
            "start",
        )?;
        let end = match p.get("end").filter(|s| !s.is_empty()) {
            Some(s) => parse_time(s, "end")?,
            None => now_ms(),
        };
        let step = match p.get("step").filter(|s| !s.is_empty()) {
            Some(s) => duration_param(s, "step")?,
            None => chosen.group.interval,
        };
        Ok((chosen, start, end, step, fors(&p)?))
    })();
    let (chosen, start, end, step, fors) = match prepared {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let opts = BacktestOptions {
        start,
        end,
        step,
        fors,
        query_offset: chosen.group.query_offset,
        external_labels: chosen.group.external_labels.clone(),
        external_url: chosen.group.external_url.clone(),
        exec: ExecOptions {
            cancel: Some(cancel),
            ..Default::default()
        },
    };
    let (engine, storage) = (st.engine.clone(), st.storage.clone());
    let rule = chosen.rule.clone();
    let res = tokio::task::spawn_blocking(move || {
        let r = backtest::backtest(storage.as_ref(), &engine, &rule, &opts);
        (r, opts)
    })
    .await;
    match res {
        Ok((Ok(b), opts)) => success(render(&chosen, &opts, &b)),
        Ok((Err(e), _)) => ApiError::bad_data(e.to_string()).into_response(),
        Err(e) => ApiError {
            kind: ErrorType::Execution,
            message: format!("backtest failed: {e}"),
        }
        .into_response(),
    }
}

fn time(t: Timestamp) -> Value {
    chrono::DateTime::from_timestamp_millis(t)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
        .unwrap_or(Value::Null)
}

fn labels(l: &Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|x| (x.name.clone(), Value::String(x.value.clone())))
            .collect(),
    )
}

fn render(c: &Chosen, o: &BacktestOptions, b: &Backtest) -> Value {
    let results: Vec<Value> = b
        .outcomes
        .iter()
        .map(|r| {
            json!({
                "for": format_duration(r.for_),
                "fired": r.episodes.len() + r.more_episodes,
                "unlisted": r.more_episodes,
                "pendingOnly": r.pending_only,
                "pendingAtEnd": r.pending_at_end,
                "firingSeconds": r.firing_ms as f64 / 1000.0,
                "alerts": r.episodes.iter().map(|e| json!({
                    "labels": labels(&e.labels),
                    "activeAt": time(e.active_at),
                    "firedAt": time(e.fired_at),
                    "resolvedAt": e.resolved_at.map(time).unwrap_or(Value::Null),
                    "firingSeconds": e.firing_ms(b.last) as f64 / 1000.0,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "rule": {
            "name": c.rule.alert,
            "group": c.group.def.name,
            "file": c.group.def.file,
            "query": c.rule.expr.text(),
            "for": format_duration(c.rule.for_),
            "keepFiringFor": format_duration(c.rule.keep_firing_for),
            "keepFiringWhile": c.rule.keep_firing_while.as_ref().map(|q| q.text()),
        },
        "start": time(o.start),
        "end": time(b.last),
        "step": format_duration(o.step),
        "evaluations": b.evaluations,
        "failedEvaluations": b.failed,
        "firstError": b.first_error.as_ref().map(|(t, e)| json!({"time": time(*t), "error": e})),
        "results": results,
    })
}
