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
