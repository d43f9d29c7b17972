//! The template engine against real Go: every case in
//! `tests/template/cases.txt` is rendered by watchpost and compared byte
//! for byte with what Go's `text/template` produced
//! (`tests/template/golden/go.json`, written by `tests/template/gen`).
//! `tests/template/hand_cases.txt` pins behaviour Debian's Go 1.19 cannot
//! produce (newer Go features) and Prometheus's and Alertmanager's own
//! functions, with expectations taken from their test suites.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use watchpost::model::Labels;
use watchpost::template::{
    AlertTemplate, AmAlert, AmData, FuncError, FuncMap, Function, GoTime, Limits, MissingKey,
    Param, PromContext, QueryError, QuerySample, TemplateError, TemplateSet, Value, Zone,
    alertmanager_funcs, convert_to_float, expand_alert_template, prometheus_funcs,
};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/template");

#[derive(Default, Debug)]
struct Case {
    name: String,
    sections: Vec<(String, String)>,
}

impl Case {
    fn get(&self, key: &str) -> Option<&str> {
        self.sections
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn adds(&self) -> impl Iterator<Item = (&str, &str)> {
        self.sections
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("add ").map(|n| (n, v.as_str())))
    }
}

/// The case format the Go generator reads: `=== name`, `--- section`.
fn parse_cases(path: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut cases: Vec<Case> = Vec::new();
    let mut section: Option<String> = None;
    let mut lines: Vec<&str> = Vec::new();
    fn flush(cases: &mut [Case], section: &mut Option<String>, lines: &mut Vec<&str>) {
        if let (Some(c), Some(s)) = (cases.last_mut(), section.take()) {
            while lines.last() == Some(&"") {
                lines.pop();
            }
            c.sections.push((s, lines.join("\n")));
        }
        lines.clear();
    }
    for line in text.split('\n') {
        if let Some(name) = line.strip_prefix("=== ") {
            flush(&mut cases, &mut section, &mut lines);
            cases.push(Case {
                name: name.to_string(),
                ..Default::default()
            });
        } else if let Some(s) = line.strip_prefix("--- ")
            && !cases.is_empty()
        {
            flush(&mut cases, &mut section, &mut lines);
            section = Some(s.to_string());
        } else if section.is_some() {
            lines.push(line);
        }
    }
    flush(&mut cases, &mut section, &mut lines);
    cases
}

fn int_arg(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        _ => 0,
    }
}

/// The functions the Go generator registers, backed by watchpost's
/// implementations (Alertmanager's set) plus the same test helpers.
fn go_case_funcs() -> FuncMap {
    let mut f = alertmanager_funcs(GoTime::from_unix(0, 0));
    let prom = prometheus_funcs(&PromContext::default());
    f.insert(
        "urlQueryEscape",
        prom.get("urlQueryEscape").unwrap().clone(),
    );
    f.insert(
        "unixTime",
        Function::new(&[Param::Int, Param::Int], |a| {
            Ok(Value::Time(GoTime::from_unix(
                int_arg(&a[0]),
                int_arg(&a[1]),
            )))
        }),
    );
    f.insert(
        "inZone",
        Function::new(&[Param::String, Param::Int, Param::Time], |a| {
            let Value::Time(t) = &a[2] else {
                return Err(FuncError::new("not a time"));
            };
            Ok(Value::Time(t.in_zone(Zone::Fixed {
                name: Arc::from(a[0].as_str().unwrap()),
                offset: int_arg(&a[1]) as i32,
            })))
        }),
    );
    f.insert(
        "dur",
        Function::new(&[Param::Int], |a| Ok(Value::Duration(int_arg(&a[0])))),
    );
    f.insert(
        "list",
        Function::variadic(&[], Param::Any, |a| {
            Ok(Value::list(
                a.iter()
                    .map(|v| if v.is_nil() { Value::Nil } else { v.clone() })
                    .collect(),
            ))
        }),
    );
    f.insert(
        "fail",
        Function::new(&[Param::String], |a| {
            Err(FuncError::new(a[0].as_str().unwrap()))
        }),
    );
    f.insert(
        "num",
        // Go's strconv.ParseFloat, as humanize's input conversion runs it.
        Function::new(&[Param::String], |a| {
            convert_to_float(&a[0]).map(Value::Float)
        }),
    );
    f
}

fn missing_key(opt: Option<&str>) -> MissingKey {
    match opt {
        None | Some("missingkey=default") | Some("missingkey=invalid") => MissingKey::Invalid,
        Some("missingkey=zero") => MissingKey::Zero,
        Some("missingkey=error") => MissingKey::Error,
        Some(o) => panic!("unknown option {o}"),
    }
}

fn run_case(c: &Case, funcs: &FuncMap, data: &Value) -> Result<String, TemplateError> {
    let mut set = TemplateSet::new(funcs).with_missing_key(missing_key(c.get("option")));
    for (name, text) in c.adds() {
        set.add(name, text)?;
    }
    set.add("t", c.get("tmpl").unwrap_or(""))?;
    set.execute(c.get("exec").unwrap_or("t"), data, funcs)
}

fn case_data(c: &Case) -> Value {
    match c.get("data") {
        Some(d) => Value::from_json(&serde_json::from_str(d).unwrap()),
        None => Value::Missing,
    }
}

fn known_failures() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(format!("{DIR}/known_failures.tsv")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, reason) = l.split_once('\t').unwrap_or((l, ""));
            (name.to_string(), reason.to_string())
        })
        .collect()
}

fn describe(r: &Result<String, TemplateError>) -> String {
    match r {
        Ok(s) => format!("output {s:?}"),
        Err(e) => format!("error {:?}", e.to_string()),
    }
}

#[test]
fn go_text_template_goldens() {
    let cases = parse_cases(&Path::new(DIR).join("cases.txt"));
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/golden/go.json")).unwrap())
            .unwrap();
    let want: BTreeMap<String, &serde_json::Value> = golden["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c))
        .collect();
    assert_eq!(
        want.len(),
        cases.len(),
        "golden/go.json is stale: rerun `go run tests/template/gen/main.go`"
    );
    let known = known_failures();
    let funcs = go_case_funcs();
    let (mut passed, mut failed) = (0, Vec::new());
    for c in &cases {
        let w = want
            .get(&c.name)
            .unwrap_or_else(|| panic!("no golden for {}", c.name));
        let got = run_case(c, &funcs, &case_data(c));
        let ok = match (&got, w.get("output"), w.get("error")) {
            (Ok(s), Some(o), _) => o.as_str() == Some(s.as_str()),
            (Err(e), _, Some(ge)) => ge.as_str() == Some(e.to_string().as_str()),
            _ => false,
        };
        if ok {
            passed += 1;
        } else {
            let expected = match (w.get("output"), w.get("error")) {
                (Some(o), _) => format!("output {o}"),
                (_, Some(e)) => format!("error {e}"),
                _ => String::new(),
            };
            failed.push(format!(
                "{}\n    go:        {expected}\n    watchpost: {}",
                c.name,
                describe(&got)
            ));
        }
    }
    println!(
        "go text/template goldens: {passed} passed, {} failed",
        failed.len()
    );
    let failed_names: BTreeSet<String> = failed
        .iter()
        .map(|f| f.lines().next().unwrap().to_string())
        .collect();
    let unexpected: Vec<&String> = failed
        .iter()
        .filter(|f| !known.contains_key(f.lines().next().unwrap()))
        .collect();
    let fixed: Vec<&String> = known
        .keys()
        .filter(|k| !failed_names.contains(*k))
        .collect();
    assert!(
        unexpected.is_empty() && fixed.is_empty(),
        "{} unexpected failures:\n{}\nknown failures that now pass (remove them from known_failures.tsv): {fixed:?}",
        unexpected.len(),
        unexpected
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

const PROM_EXTERNAL_URL: &str = "http://testhost:9090/path/prefix";
/// 2015-06-23 13:19:44.128 UTC, the instant Prometheus's tests use.
const NOW_MS: i64 = 1_435_065_584_128;

fn json_str_map(v: &serde_json::Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn labels_of(v: &serde_json::Value) -> Labels {
    Labels::from_pairs(json_str_map(v))
}

fn prom_context(c: &Case) -> PromContext {
    let samples: Option<Vec<QuerySample>> = c.get("query").map(|q| {
        let v: serde_json::Value = serde_json::from_str(q).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| QuerySample {
                labels: json_str_map(&s["labels"]),
                value: s["value"].as_f64().unwrap(),
            })
            .collect()
    });
    let error = c.get("query_error").map(str::to_string);
    PromContext {
        external_url: PROM_EXTERNAL_URL.to_string(),
        now: NOW_MS,
        query: Some(Arc::new(move |_q: &str| match (&error, &samples) {
            (Some(e), _) => Err(QueryError(e.clone())),
            (None, Some(s)) => Ok(s.clone()),
            (None, None) => Ok(Vec::new()),
        })),
    }
}

fn am_data(v: &serde_json::Value) -> Value {
    let time = |t: &serde_json::Value| match t.as_i64() {
        Some(s) => GoTime::from_unix(s, 0),
        None => GoTime::zero(),
    };
    let alerts = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| AmAlert {
            resolved: a["resolved"].as_bool().unwrap(),
            labels: json_str_map(&a["labels"]),
            annotations: json_str_map(&a["annotations"]),
            starts_at: time(&a["starts_at"]),
            ends_at: time(&a["ends_at"]),
            generator_url: a["generator_url"].as_str().unwrap_or("").to_string(),
            fingerprint: a["fingerprint"].as_str().unwrap().to_string(),
        })
        .collect();
    AmData {
        receiver: v["receiver"].as_str().unwrap().to_string(),
        group_labels: json_str_map(&v["group_labels"]),
        alerts,
        external_url: v["external_url"].as_str().unwrap().to_string(),
    }
    .to_value()
}

fn run_hand_case(c: &Case) -> Result<String, TemplateError> {
    let name = c.get("name").unwrap_or("t");
    let text = c.get("tmpl").unwrap_or("");
    let kind = c.get("funcs").expect("hand cases name their function set");
    let funcs = match kind {
        "go" => go_case_funcs(),
        "prometheus" => prometheus_funcs(&prom_context(c)),
        "alertmanager" => {
            alertmanager_funcs(GoTime::from_unix(NOW_MS / 1000, NOW_MS % 1000 * 1_000_000))
        }
        other => panic!("unknown function set {other}"),
    };
    if let Some(a) = c.get("alert") {
        let a: serde_json::Value = serde_json::from_str(a).unwrap();
        return Ok(expand_alert_template(
            a["alert"].as_str().unwrap(),
            text,
            &labels_of(&a["labels"]),
            &labels_of(&a["external_labels"]),
            a["external_url"].as_str().unwrap(),
            a["value"].as_f64().unwrap(),
            &funcs,
        ));
    }
    // Prometheus and Alertmanager both execute with missingkey=zero.
    let default_option = if kind == "go" {
        None
    } else {
        Some("missingkey=zero")
    };
    let option = missing_key(c.get("option").or(default_option));
    let data = match c.get("am") {
        Some(am) => am_data(&serde_json::from_str(am).unwrap()),
        None => case_data(c),
    };
    let mut set = if kind == "alertmanager" {
        TemplateSet::new(&funcs)
    } else {
        // Prometheus parses one text under the template's own name.
        let t = watchpost::template::Template::parse(name, "", &funcs)?;
        t.set().clone()
    }
    .with_missing_key(option);
    for (n, t) in c.adds() {
        set.add(n, t)?;
    }
    set.add(name, text)?;
    set.execute(name, &data, &funcs)
}

#[test]
fn hand_written_cases() {
    let cases = parse_cases(&Path::new(DIR).join("hand_cases.txt"));
    assert!(cases.len() > 50, "hand cases missing");
    let mut failed = Vec::new();
    let mut names = BTreeSet::new();
    for c in &cases {
        assert!(names.insert(c.name.clone()), "duplicate case {}", c.name);
        let got = run_hand_case(c);
        let ok = match (&got, c.get("want"), c.get("error")) {
            (Ok(s), Some(w), None) => s == w,
            (Err(e), None, Some(w)) => e.to_string() == w,
            (_, None, None) | (_, Some(_), Some(_)) => panic!("{}: give want or error", c.name),
            _ => false,
        };
        if !ok {
            let expected = c
                .get("want")
                .map(|w| format!("output {w:?}"))
                .unwrap_or_else(|| format!("error {:?}", c.get("error").unwrap_or("")));
            failed.push(format!(
                "{}\n    want:      {expected}\n    watchpost: {}",
                c.name,
                describe(&got)
            ));
        }
    }
    println!(
        "hand-written template cases: {} passed, {} failed",
        cases.len() - failed.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The rules layer's use: parse each annotation once at load, expand it at
/// every evaluation with that evaluation's functions.
#[test]
fn alert_template_parse_once_expand_many() {
    let names = prometheus_funcs(&PromContext::default());
    let t = AlertTemplate::parse(
        "HighLatency",
        "{{ $labels.job }}: {{ $value | humanizeDuration }} at {{ now | humanizeTimestamp }}",
        &names,
    )
    .unwrap();
    let labels = Labels::from_pairs([("job", "api")]);
    for (now, value, want) in [
        (1_000, 0.25, "api: 250ms at 1970-01-01 00:00:01 +0000 UTC"),
        (61_000, 90.0, "api: 1m 30s at 1970-01-01 00:01:01 +0000 UTC"),
    ] {
        let funcs = prometheus_funcs(&PromContext {
            now,
            ..PromContext::default()
        });
        let got = t.expand_or_error_text(&labels, &Labels::empty(), "", value, &funcs);
        assert_eq!(got, want);
    }
    // A broken template is reported at load, with Prometheus's name for it.
    let err = AlertTemplate::parse("X", "{{ humanise $value }}", &names).unwrap_err();
    assert_eq!(
        err.to_string(),
        "template: __alert_X:1: function \"humanise\" not defined"
    );
}

#[test]
fn query_without_engine_is_a_visible_error() {
    let funcs = prometheus_funcs(&PromContext::default());
    let got = expand_alert_template(
        "A",
        "{{ query \"up\" | first | value }}",
        &Labels::empty(),
        &Labels::empty(),
        "",
        1.0,
        &funcs,
    );
    assert!(
        got.starts_with("<error expanding template: error executing template __alert_A: ")
            && got.contains("error calling query: no query engine is available"),
        "{got}"
    );
}

#[test]
fn limits_are_configurable_per_template() {
    let funcs = FuncMap::new();
    let tight = Limits {
        max_steps: 50,
        ..Limits::default()
    };
    let t = watchpost::template::Template::parse("t", "{{range 100}}x{{end}}", &funcs)
        .unwrap()
        .with_limits(tight);
    let err = t.execute(&Value::Missing, &funcs).unwrap_err().to_string();
    assert!(err.contains("limit of 50 steps"), "{err}");
}
