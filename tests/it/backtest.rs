//! Backtest end to end: a running watchpost with a known hour of history,
//! `/api/v1/rules/backtest` and `watchpost rules backtest` replaying an
//! alerting rule for several `for` values, a rule posted as a file, and
//! the errors that name what to fix.

use serde_json::{Value, json};
use watchpost::model::{Labels, Timestamp};
use watchpost::storage::Storage;

use super::support;

const MIN: i64 = 60_000;

const RULES: &str = "groups:
  - name: queues
    interval: 1m
    rules:
      - alert: QueueBacklog
        expr: queue_depth > 10
        for: 5m
        labels: {severity: ticket}
      - record: job:queue_depth:max
        expr: max(queue_depth)
";

/// `queue_depth` every 15 s over the hour from `s`: instance a is at 20
/// from 10m to 22m, instance b from 40m to 43m, both 1 otherwise.
fn fill(st: &dyn Storage, s: Timestamp) {
    let mut app = st.appender();
    for (inst, from, to) in [("a", 10, 22), ("b", 40, 43)] {
        let l = Labels::from_pairs([("__name__", "queue_depth"), ("instance", inst)]);
        let mut t = s;
        while t <= s + 60 * MIN {
            let v = if t >= s + from * MIN && t < s + to * MIN {
                20.0
            } else {
                1.0
            };
            app.append(&l, t, v).unwrap();
            t += 15_000;
        }
    }
    app.commit().unwrap();
}

fn rfc(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(t)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn secs(t: Timestamp) -> String {
    format!("{}", t / 1000)
}

struct Setup {
    h: support::Harness,
    rules_dir: tempfile::TempDir,
    start: Timestamp,
}

async fn setup() -> Setup {
    let rules = tempfile::tempdir().unwrap();
    let file = rules.path().join("queues.yml");
    std::fs::write(&file, RULES).unwrap();
    let yaml = format!("rule_files: ['{}']\n", file.display());
    let h = support::start(&yaml, None).await;
    // Two hours ago, on a minute: old enough to be history, recent enough
    // for any retention.
    let now = watchpost::model::timestamp_of(std::time::SystemTime::now());
    let start = (now - 2 * 60 * MIN) / MIN * MIN;
    fill(h.app().storage().as_ref(), start);
    Setup {
        h,
        rules_dir: rules,
        start,
    }
}

async fn post(h: &support::Harness, form: &[(&str, String)]) -> (u16, Value) {
    let r = h
        .client
        .post(format!("{}/api/v1/rules/backtest", h.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
                .finish(),
        )
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn labels(inst: &str) -> Value {
    json!({"alertname": "QueueBacklog", "instance": inst, "severity": "ticket"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_replays_a_rule_for_each_for_value() {
    let Setup {
        h,
        rules_dir: _keep,
        start,
    } = setup().await;
    let s = start;
    let url = format!(
        "/api/v1/rules/backtest?rule=QueueBacklog&for=0s,5m&for=15m&start={}&end={}",
        secs(s),
        secs(s + 60 * MIN)
    );
    let v = h.get_json(&url).await;
    assert_eq!(v["status"], "success", "{v}");
    let d = &v["data"];
    assert_eq!(d["rule"]["name"], "QueueBacklog");
    assert_eq!(d["rule"]["group"], "queues");
    assert_eq!(d["rule"]["query"], "queue_depth > 10");
    assert_eq!(d["rule"]["for"], "5m");
    assert_eq!(d["step"], "1m", "the group's interval");
    assert_eq!(d["evaluations"], 61);
    assert_eq!(d["failedEvaluations"], 0);
    assert_eq!(d["start"], rfc(s));
    assert_eq!(d["end"], rfc(s + 60 * MIN));
    assert_eq!(
        d["results"][0],
        json!({
            "for": "0s",
            "fired": 2,
            "unlisted": 0,
            "pendingOnly": 0,
            "pendingAtEnd": 0,
            "firingSeconds": 900.0,
            "alerts": [
                {"labels": labels("a"), "activeAt": rfc(s + 10 * MIN), "firedAt": rfc(s + 10 * MIN),
                 "resolvedAt": rfc(s + 22 * MIN), "firingSeconds": 720.0},
                {"labels": labels("b"), "activeAt": rfc(s + 40 * MIN), "firedAt": rfc(s + 40 * MIN),
                 "resolvedAt": rfc(s + 43 * MIN), "firingSeconds": 180.0},
            ]
        })
    );
    // for: 5m holds a back five minutes and keeps b's three quiet.
    assert_eq!(
        d["results"][1],
        json!({
            "for": "5m",
            "fired": 1,
            "unlisted": 0,
            "pendingOnly": 1,
            "pendingAtEnd": 0,
            "firingSeconds": 420.0,
            "alerts": [
                {"labels": labels("a"), "activeAt": rfc(s + 10 * MIN), "firedAt": rfc(s + 15 * MIN),
                 "resolvedAt": rfc(s + 22 * MIN), "firingSeconds": 420.0},
            ]
        })
    );
    assert_eq!(
        d["results"][2],
        json!({"for": "15m", "fired": 0, "unlisted": 0, "pendingOnly": 2,
               "pendingAtEnd": 0, "firingSeconds": 0.0, "alerts": []})
    );

    // Still firing at the end of the range: unresolved, firing up to it.
    let url = format!(
        "/api/v1/rules/backtest?rule=QueueBacklog&start={}&end={}",
        secs(s),
        secs(s + 20 * MIN)
    );
    let v = h.get_json(&url).await;
    let r = &v["data"]["results"][0];
    assert_eq!(r["for"], "5m", "the rule's own for: {v}");
    assert_eq!(r["alerts"][0]["resolvedAt"], Value::Null);
    assert_eq!(r["alerts"][0]["firingSeconds"], 300.0);
    // Pending when the range ends: counted as such, not as quiet.
    let url = format!(
        "/api/v1/rules/backtest?rule=QueueBacklog&start={}&end={}",
        secs(s),
        secs(s + 12 * MIN)
    );
    let v = h.get_json(&url).await;
    let r = &v["data"]["results"][0];
    assert_eq!(
        (&r["pendingAtEnd"], &r["pendingOnly"], &r["fired"]),
        (&json!(1), &json!(0), &json!(0))
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_rule_file_is_tried_without_deploying_it() {
    let Setup {
        h,
        rules_dir: _keep,
        start,
    } = setup().await;
    let rule_file = "groups:
  - name: draft
    interval: 30s
    rules:
      - alert: DeepQueue
        expr: queue_depth > 10
        for: 1m
        keep_firing_for: 2m
";
    let (code, v) = post(
        &h,
        &[
            ("rule", "DeepQueue".into()),
            ("rule_file", rule_file.into()),
            ("start", secs(start)),
            ("end", secs(start + 60 * MIN)),
        ],
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let d = &v["data"];
    assert_eq!(d["rule"]["group"], "draft");
    assert_eq!(d["step"], "30s");
    assert_eq!(d["evaluations"], 121);
    let alerts = &d["results"][0]["alerts"];
    // a: active 10m..22m, fires at 11m, kept 2m past 22m.
    assert_eq!(alerts[0]["firedAt"], rfc(start + 11 * MIN));
    assert_eq!(alerts[0]["resolvedAt"], rfc(start + 24 * MIN));
    // b: active 40m..43m, fires at 41m, kept until 45m.
    assert_eq!(alerts[1]["firedAt"], rfc(start + 41 * MIN));
    assert_eq!(alerts[1]["resolvedAt"], rfc(start + 45 * MIN));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_say_what_to_fix() {
    let Setup {
        h,
        rules_dir: _keep,
        start,
    } = setup().await;
    let cases = [
        (vec![("start", secs(start))], "missing parameter \"rule\""),
        (
            vec![("rule", "Nope".into()), ("start", secs(start))],
            "no alerting rule named \"Nope\"; alerting rules: QueueBacklog",
        ),
        (
            vec![
                ("rule", "job:queue_depth:max".into()),
                ("start", secs(start)),
            ],
            "is a recording rule: backtest replays alerting rules",
        ),
        (
            vec![("rule", "QueueBacklog".into())],
            "missing parameter \"start\"",
        ),
        (
            vec![
                ("rule", "QueueBacklog".into()),
                ("start", secs(start)),
                ("step", "1s".into()),
                ("end", secs(start + 2 * 86_400_000)),
            ],
            "172801 evaluations from start to end at this step: at most 100000",
        ),
        (
            vec![
                ("rule", "QueueBacklog".into()),
                ("start", secs(start)),
                ("for", "soon".into()),
            ],
            "invalid parameter \"for\": cannot parse \"soon\"",
        ),
        (
            vec![
                ("rule", "X".into()),
                ("start", secs(start)),
                (
                    "rule_file",
                    "groups: [{name: g, rules: [{alert: X}]}]".into(),
                ),
            ],
            "invalid parameter \"rule_file\": ",
        ),
    ];
    for (form, want) in cases {
        let (code, v) = post(&h, &form).await;
        assert_eq!(code, 400, "{form:?}: {v}");
        assert_eq!(v["status"], "error");
        let err = v["error"].as_str().unwrap();
        assert!(err.contains(want), "{form:?}: {err:?} lacks {want:?}");
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_prints_when_the_rule_would_have_fired() {
    let Setup {
        h,
        rules_dir,
        start,
    } = setup().await;
    let s = start;
    let base = h.base.clone();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "rules",
            "backtest",
            "--rule",
            "QueueBacklog",
            "--web.url",
            &base,
            "--from",
            &rfc(s),
            "--to",
            &secs(s + 60 * MIN),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let out = support::run_binary(args(&["--for", "0s,5m,15m"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = r#"{alertname="QueueBacklog", instance="a", severity="ticket"}"#;
    let b = r#"{alertname="QueueBacklog", instance="b", severity="ticket"}"#;
    let want = format!(
        "QueueBacklog (group \"queues\" in {file}): queue_depth > 10
replayed {s0} to {s60} every 1m: 61 evaluations, starting with no alerts

for 0s: fired 2 times, 15m firing in total
  fired {s10}  resolved {s22:<21}       12m  {a}
  fired {s40}  resolved {s43:<21}        3m  {b}

for 5m: fired 1 time, 7m firing in total; 1 went pending and cleared without firing
  fired {s15}  resolved {s22:<21}        7m  {a}

for 15m: never fired; 2 went pending and cleared without firing
",
        file = rules_dir.path().join("queues.yml").display(),
        s0 = rfc(s),
        s60 = rfc(s + 60 * MIN),
        s10 = rfc(s + 10 * MIN),
        s15 = rfc(s + 15 * MIN),
        s22 = rfc(s + 22 * MIN),
        s40 = rfc(s + 40 * MIN),
        s43 = rfc(s + 43 * MIN),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);

    // --json prints the API's answer.
    let out = support::run_binary(args(&["--json", "--step", "2m"])).await;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["evaluations"], 31);
    assert_eq!(v["step"], "2m");

    // A rule not loaded names the ones that are; the exit code says so.
    let mut bad = args(&[]);
    bad[3] = "Nope".into();
    let out = support::run_binary(bad).await;
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "watchpost: no alerting rule named \"Nope\"; alerting rules: QueueBacklog\n"
    );
    h.shutdown().await;
    // Nothing listening: the error names the address.
    let out = support::run_binary(args(&[])).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("watchpost: asking http://127.0.0.1:"),
        "{err}"
    );
}
