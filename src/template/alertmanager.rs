//! Alertmanager's notification-template functions and data: `join`,
//! `date`, `tz`, `since`, `toJson`, ... and the `Data` a notification
//! template sees (`.Alerts.Firing`, `.CommonLabels.SortedPairs`,
//! `.GroupLabels.Remove`), with the semantics of Alertmanager's
//! `template/template.go`.
//!
//! The notify layer assembles [`AmData`] (it knows receivers, groups and
//! fingerprints); this module turns it into template values and supplies
//! the functions. `since` measures from the `now` the caller passes.

use std::collections::BTreeMap;

use super::gotime::{GoTime, Zone};
use super::prometheus::{add_string_funcs, convert_to_float, humanize_duration};
use super::stdlib;
use super::value::{GoType, Method, Param, STRING_LIST, Value};
use super::{FuncError, FuncMap, Function};

fn zero_string() -> Value {
    Value::from("")
}

fn zero_missing() -> Value {
    Value::Missing
}

fn kv_entries(v: &Value) -> Vec<(String, String)> {
    match v {
        Value::Map(m) => m
            .entries
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Alertmanager's `SortedPairs`: `alertname` first, the rest by name.
fn sorted_pairs(v: &Value) -> Vec<(String, String)> {
    let mut entries = kv_entries(v);
    entries.sort_by(|a, b| {
        (a.0 != "alertname")
            .cmp(&(b.0 != "alertname"))
            .then_with(|| a.0.cmp(&b.0))
    });
    entries
}

fn pairs_value(p: Vec<(String, String)>) -> Value {
    Value::typed_list(
        &PAIRS,
        p.into_iter()
            .map(|(n, v)| {
                Value::record(
                    &PAIR,
                    vec![("Name", Value::from(n)), ("Value", Value::from(v))],
                )
            })
            .collect(),
    )
}

fn pairs_entries(v: &Value) -> Vec<(String, String)> {
    let Value::List(l) = v else {
        return Vec::new();
    };
    l.items
        .iter()
        .map(|p| match p {
            Value::Struct(s) => (
                s.field("Name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                s.field("Value")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ),
            _ => (String::new(), String::new()),
        })
        .collect()
}

fn pairs_string(p: &[(String, String)]) -> String {
    p.iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Alertmanager's `template.KV`: a label or annotation set.
pub static KV: GoType = GoType {
    name: "template.KV",
    methods: &[
        Method {
            name: "SortedPairs",
            params: &[],
            variadic: None,
            call: |r, _| Ok(pairs_value(sorted_pairs(r))),
        },
        Method {
            name: "Remove",
            params: &[Param::Typed(&STRING_LIST)],
            variadic: None,
            call: |r, a| {
                let drop: Vec<&str> = match &a[0] {
                    Value::List(l) => l.items.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                Ok(kv_value(
                    kv_entries(r)
                        .into_iter()
                        .filter(|(k, _)| !drop.contains(&k.as_str())),
                ))
            },
        },
        Method {
            name: "Names",
            params: &[],
            variadic: None,
            call: |r, _| Ok(Value::strings(sorted_pairs(r).into_iter().map(|(n, _)| n))),
        },
        Method {
            name: "Values",
            params: &[],
            variadic: None,
            call: |r, _| Ok(Value::strings(sorted_pairs(r).into_iter().map(|(_, v)| v))),
        },
        Method {
            name: "String",
            params: &[],
            variadic: None,
            call: |r, _| Ok(Value::from(pairs_string(&sorted_pairs(r)))),
        },
    ],
    stringer: Some(|v| pairs_string(&sorted_pairs(v))),
    elem_zero: zero_string,
    pointer: false,
    json_names: &[],
    elem_iface: false,
};

/// Alertmanager's `template.Pairs`.
pub static PAIRS: GoType = GoType {
    name: "template.Pairs",
    methods: &[
        Method {
            name: "Names",
            params: &[],
            variadic: None,
            call: |r, _| Ok(Value::strings(pairs_entries(r).into_iter().map(|(n, _)| n))),
        },
        Method {
            name: "Values",
            params: &[],
            variadic: None,
            call: |r, _| Ok(Value::strings(pairs_entries(r).into_iter().map(|(_, v)| v))),
        },
        Method {
            name: "String",
            params: &[],
            variadic: None,
            call: |r, _| Ok(Value::from(pairs_string(&pairs_entries(r)))),
        },
    ],
    stringer: Some(|v| pairs_string(&pairs_entries(v))),
    elem_zero: zero_missing,
    pointer: false,
    json_names: &[],
    elem_iface: false,
};

/// Alertmanager's `template.Pair`.
pub static PAIR: GoType = GoType {
    name: "template.Pair",
    methods: &[],
    stringer: None,
    elem_zero: zero_missing,
    pointer: false,
    json_names: &[],
    elem_iface: false,
};

fn alerts_with_status(v: &Value, status: &str) -> Value {
    let items = match v {
        Value::List(l) => l
            .items
            .iter()
            .filter(|a| match a {
                Value::Struct(s) => s.field("Status").and_then(Value::as_str) == Some(status),
                _ => false,
            })
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    Value::typed_list(&ALERT_SLICE, items)
}

/// Alertmanager's `template.Alerts`.
pub static ALERTS: GoType = GoType {
    name: "template.Alerts",
    methods: &[
        Method {
            name: "Firing",
            params: &[],
            variadic: None,
            call: |r, _| Ok(alerts_with_status(r, "firing")),
        },
        Method {
            name: "Resolved",
            params: &[],
            variadic: None,
            call: |r, _| Ok(alerts_with_status(r, "resolved")),
        },
    ],
    stringer: None,
    elem_zero: zero_missing,
    pointer: false,
    json_names: &[],
    elem_iface: false,
};

/// `[]template.Alert`, what `Firing` and `Resolved` return.
pub static ALERT_SLICE: GoType = GoType {
    name: "[]template.Alert",
    methods: &[],
    stringer: None,
    elem_zero: zero_missing,
    pointer: false,
    json_names: &[],
    elem_iface: false,
};

/// Alertmanager's `template.Alert`.
pub static ALERT: GoType = GoType {
    name: "template.Alert",
    methods: &[],
    stringer: None,
    elem_zero: zero_missing,
    pointer: false,
    json_names: &[
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    ],
    elem_iface: false,
};

/// Alertmanager's `*template.Data`.
pub static DATA: GoType = GoType {
    name: "*template.Data",
    methods: &[],
    stringer: None,
    elem_zero: zero_missing,
    pointer: true,
    json_names: &[
        "receiver",
        "status",
        "alerts",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
    ],
    elem_iface: false,
};

/// A `template.KV` from pairs.
pub fn kv_value<K: Into<String>, V: Into<String>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Value {
    Value::typed_map(
        &KV,
        pairs
            .into_iter()
            .map(|(k, v)| (k.into(), Value::from(v.into())))
            .collect(),
    )
}

/// One alert as a notification template sees it.
#[derive(Debug, Clone)]
pub struct AmAlert {
    /// Whether the alert is resolved at notification time.
    pub resolved: bool,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: GoTime,
    /// Go's zero time when unset.
    pub ends_at: GoTime,
    pub generator_url: String,
    /// The alert's fingerprint in Alertmanager's 16-hex-digit form.
    pub fingerprint: String,
}

/// Everything a notification template sees, before conversion.
#[derive(Debug, Clone)]
pub struct AmData {
    pub receiver: String,
    pub group_labels: BTreeMap<String, String>,
    pub alerts: Vec<AmAlert>,
    pub external_url: String,
}

fn alert_value(a: &AmAlert) -> Value {
    Value::record(
        &ALERT,
        vec![
            ("Status", Value::from(status(a.resolved))),
            ("Labels", kv_value(a.labels.clone())),
            ("Annotations", kv_value(a.annotations.clone())),
            ("StartsAt", Value::Time(a.starts_at.clone())),
            ("EndsAt", Value::Time(a.ends_at.clone())),
            ("GeneratorURL", Value::from(a.generator_url.as_str())),
            ("Fingerprint", Value::from(a.fingerprint.as_str())),
        ],
    )
}

fn status(resolved: bool) -> &'static str {
    if resolved { "resolved" } else { "firing" }
}

/// Pairs present with the same value in every map.
fn common(maps: &[&BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let Some((first, rest)) = maps.split_first() else {
        return BTreeMap::new();
    };
    first
        .iter()
        .filter(|(k, v)| rest.iter().all(|m| m.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl AmData {
    /// The template value: Alertmanager's `Data`, with the status (firing
    /// if any alert fires), the common labels and annotations, and the
    /// receiver name regexp-quoted as Alertmanager does.
    pub fn to_value(&self) -> Value {
        let firing = self.alerts.iter().any(|a| !a.resolved);
        let labels: Vec<&BTreeMap<String, String>> =
            self.alerts.iter().map(|a| &a.labels).collect();
        let annotations: Vec<&BTreeMap<String, String>> =
            self.alerts.iter().map(|a| &a.annotations).collect();
        Value::record(
            &DATA,
            vec![
                ("Receiver", Value::from(stdlib::quote_meta(&self.receiver))),
                ("Status", Value::from(status(!firing))),
                (
                    "Alerts",
                    Value::typed_list(&ALERTS, self.alerts.iter().map(alert_value).collect()),
                ),
                ("GroupLabels", kv_value(self.group_labels.clone())),
                ("CommonLabels", kv_value(common(&labels))),
                ("CommonAnnotations", kv_value(common(&annotations))),
                ("ExternalURL", Value::from(self.external_url.as_str())),
            ],
        )
    }
}

fn str_arg(a: &[Value], i: usize) -> &str {
    a.get(i).and_then(Value::as_str).unwrap_or("")
}

fn time_arg(a: &[Value], i: usize) -> GoTime {
    match a.get(i) {
        Some(Value::Time(t)) => t.clone(),
        _ => GoTime::zero(),
    }
}

/// The functions Alertmanager offers notification templates. `now` is what
/// `since` measures from: the notification's time.
pub fn alertmanager_funcs(now: GoTime) -> FuncMap {
    let mut m = FuncMap::new();
    add_string_funcs(&mut m);
    m.insert(
        "title",
        Function::new(&[Param::String], |a| {
            Ok(Value::from(stdlib::title(str_arg(a, 0), false)))
        }),
    );
    m.insert(
        "trimSpace",
        Function::new(&[Param::String], |a| Ok(Value::from(str_arg(a, 0).trim()))),
    );
    m.insert(
        "join",
        Function::new(&[Param::String, Param::Typed(&STRING_LIST)], |a| {
            let items: Vec<&str> = match &a[1] {
                Value::List(l) => l.items.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            Ok(Value::from(items.join(str_arg(a, 0))))
        }),
    );
    m.insert(
        "safeUrl",
        Function::new(&[Param::String], |a| Ok(Value::from(str_arg(a, 0)))),
    );
    m.insert(
        "urlUnescape",
        Function::new(&[Param::String], |a| {
            stdlib::query_unescape(str_arg(a, 0))
                .map(Value::from)
                .map_err(FuncError)
        }),
    );
    m.insert(
        "stringSlice",
        Function::variadic(&[], Param::String, |a| {
            Ok(Value::strings(
                a.iter().map(|v| v.as_str().unwrap_or("").to_string()),
            ))
        }),
    );
    m.insert(
        "date",
        Function::new(&[Param::String, Param::Time], |a| {
            Ok(Value::from(time_arg(a, 1).format(str_arg(a, 0))))
        }),
    );
    m.insert(
        "tz",
        Function::new(&[Param::String, Param::Time], |a| {
            let name = str_arg(a, 0);
            let zone =
                Zone::load(name).ok_or_else(|| FuncError(format!("unknown time zone {name}")))?;
            Ok(Value::Time(time_arg(a, 1).in_zone(zone)))
        }),
    );
    m.insert(
        "since",
        Function::new(&[Param::Time], move |a| {
            let d = now.unix_nanos() - time_arg(a, 0).unix_nanos();
            Ok(Value::Duration(
                d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
            ))
        }),
    );
    m.insert(
        "humanizeDuration",
        Function::new(&[Param::Any], |a| {
            Ok(Value::from(humanize_duration(convert_to_float(&a[0])?)))
        }),
    );
    m.insert(
        "toJson",
        Function::new(&[Param::Any], |a| {
            stdlib::to_json(&a[0]).map(Value::from).map_err(FuncError)
        }),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_pairs_put_alertname_first() {
        let kv = kv_value([("b", "2"), ("alertname", "X"), ("a", "1")]);
        assert_eq!(
            sorted_pairs(&kv),
            vec![
                ("alertname".to_string(), "X".to_string()),
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "2".to_string())
            ]
        );
        assert_eq!(super::super::gofmt::display(&kv), "alertname=X, a=1, b=2");
    }
}
