//! Tests of the whole load path (raw -> validate -> typed -> redacted YAML).
//! They live in their own file because each one exercises several of the
//! module's files at once; helpers' own tests sit at the bottom of theirs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::validate::{check_target_address, expand_env};
use super::*;

fn load(yaml: &str) -> Result<Config, ConfigError> {
    load_str(yaml, "w.yml", Path::new("/etc/watchpost"))
}

fn ok(yaml: &str) -> Config {
    match load(yaml) {
        Ok(c) => c,
        Err(e) => panic!("expected the config to load, got:\n{e}"),
    }
}

fn errs(yaml: &str) -> Vec<String> {
    match load(yaml) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(e) => e.messages(),
    }
}

/// The single error of `yaml`.
fn err(yaml: &str) -> String {
    let e = errs(yaml);
    assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
    e[0].clone()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn job(yaml_job: &str) -> String {
    format!(
        "scrape_configs:\n  - job_name: j\n    static_configs: [{{targets: ['a:1']}}]\n{yaml_job}"
    )
}

fn relabel(rule: &str) -> String {
    format!("scrape_configs:\n  - job_name: j\n    relabel_configs:\n      - {rule}\n")
}

#[test]
fn empty_file_gets_every_default() {
    for text in ["", "# nothing\n", "global:\n", "global: {}\n"] {
        let c = ok(text);
        assert_eq!(c.global.scrape_interval, secs(60));
        assert_eq!(c.global.scrape_timeout, secs(10));
        assert_eq!(c.global.evaluation_interval, secs(60));
        assert_eq!(c.global.rule_query_offset, Duration::ZERO);
        assert!(c.global.external_labels.is_empty());
        assert_eq!(c.global.limits, ScrapeLimits::default());
        assert!(c.scrape_configs.is_empty());
        assert_eq!(c.storage.retention_time, secs(15 * 86400));
        assert_eq!(c.storage.retention_size, 0);
        assert!(c.notify.is_none() && c.alerting.is_none() && c.remote_write.is_empty());
        assert!(c.source.is_none());
    }
}

#[test]
fn scrape_job_defaults_match_prometheus() {
    let c = ok("scrape_configs:\n  - job_name: node\n");
    let j = &c.scrape_configs[0];
    assert_eq!(j.job_name, "node");
    assert_eq!(j.scrape_interval, secs(60));
    assert_eq!(j.scrape_timeout, secs(10));
    assert_eq!(j.metrics_path, "/metrics");
    assert_eq!(j.scheme, Scheme::Http);
    assert!(!j.honor_labels);
    assert!(j.honor_timestamps);
    assert!(j.http.follow_redirects);
    assert!(j.http.enable_http2);
    assert!(j.http.basic_auth.is_none() && j.http.authorization.is_none());
    assert_eq!(j.limits, ScrapeLimits::default());
}

#[test]
fn jobs_inherit_global_interval_timeout_and_limits() {
    let c = ok("global:
  scrape_interval: 15s
  scrape_timeout: 12s
  sample_limit: 1000
  body_size_limit: 10MB
  label_limit: 30
scrape_configs:
  - job_name: inherits
  - job_name: short
    scrape_interval: 5s
  - job_name: own
    scrape_interval: 30s
    scrape_timeout: 20s
    sample_limit: 50
    body_size_limit: 0
    label_limit: 0
");
    let [a, b, own] = &c.scrape_configs[..] else {
        panic!("three jobs expected")
    };
    assert_eq!((a.scrape_interval, a.scrape_timeout), (secs(15), secs(12)));
    // Prometheus: an inherited timeout longer than the job's interval is
    // capped at the interval.
    assert_eq!((b.scrape_interval, b.scrape_timeout), (secs(5), secs(5)));
    assert_eq!(
        (own.scrape_interval, own.scrape_timeout),
        (secs(30), secs(20))
    );
    assert_eq!(a.limits.sample_limit, 1000);
    assert_eq!(a.limits.body_size_limit, 10 << 20);
    assert_eq!(own.limits.sample_limit, 50);
    // 0 means "not set" and falls back to global, as in Prometheus.
    assert_eq!(own.limits.body_size_limit, 10 << 20);
    assert_eq!(own.limits.label_limit, 30);
}

#[test]
fn global_timeout_defaults_below_a_short_interval() {
    let c = ok("global:\n  scrape_interval: 5s\n");
    assert_eq!(c.global.scrape_timeout, secs(5));
    let c = ok("global:\n  scrape_interval: 0s\n  scrape_timeout: 0s\n");
    assert_eq!(
        (c.global.scrape_interval, c.global.scrape_timeout),
        (secs(60), secs(10))
    );
}

#[test]
fn timeout_greater_than_interval_is_an_error() {
    assert_eq!(
        err(&job("    scrape_interval: 10s\n    scrape_timeout: 15s\n")),
        "w.yml:5:21: scrape job \"j\": scrape_timeout (15s) is greater than scrape_interval (10s)"
    );
    assert_eq!(
        err(
            "global:\n  scrape_interval: 10s\nscrape_configs:\n  - job_name: x\n    scrape_timeout: 11s\n"
        ),
        "w.yml:5:21: scrape job \"x\": scrape_timeout (11s) is greater than scrape_interval (10s, inherited from global)"
    );
    assert_eq!(
        err("global:\n  scrape_timeout: 2m\n"),
        "w.yml:2:19: global: scrape_timeout (2m) is greater than scrape_interval (1m, the default)"
    );
    ok(&job("    scrape_interval: 10s\n    scrape_timeout: 10s\n"));
}

#[test]
fn job_names_are_required_and_unique() {
    assert_eq!(
        err("scrape_configs:\n  - scrape_interval: 1m\n"),
        "w.yml:2:5: scrape_configs[0]: job_name is missing: every scrape job needs a unique job_name"
    );
    assert_eq!(
        err("scrape_configs:\n  - job_name: ''\n"),
        "w.yml:2:15: scrape_configs[0]: job_name is empty: every scrape job needs a unique job_name"
    );
    assert_eq!(
        err("scrape_configs:\n  - job_name: a\n  - job_name: b\n  - job_name: a\n"),
        "w.yml:4:15: scrape job \"a\": job_name is used twice (first at w.yml:2:15): job names must be unique"
    );
}

#[test]
fn durations_and_sizes_are_checked_with_positions() {
    assert_eq!(
        err("global:\n  evaluation_interval: 15\n"),
        "w.yml:2:24: global: evaluation_interval: not a valid duration string: \"15\" (use a number with a unit: ms, s, m, h, d, w, y)"
    );
    let e = err(&job("    body_size_limit: 10mb\n"));
    assert!(
        e.starts_with("w.yml:4:22: scrape job \"j\": body_size_limit: invalid size \"10mb\""),
        "{e}"
    );
    let c = ok(&job(
        "    body_size_limit: 512KiB\n    scrape_interval: 1h30m\n",
    ));
    assert_eq!(c.scrape_configs[0].limits.body_size_limit, 512 * 1024);
    assert_eq!(c.scrape_configs[0].scrape_interval, secs(5400));
}

#[test]
fn every_error_is_reported_at_once_in_position_order() {
    let e = errs(
        "global:
  scrape_interval: soon
  external_labels:
    bad-name: x
scrape_configs:
  - job_name: a
    scrape_timeout: 5m
    kubernetes_sd_configs:
      - role: node
    relabel_configs:
      - action: hashmod
        target_label: shard
      - regex: '('
        target_label: x
  - job_name: a
    static_configs:
      - targets: ['http://x:9100/metrics']
",
    );
    assert_eq!(
        e,
        [
            "w.yml:2:20: global: scrape_interval: not a valid duration string: \"soon\" (use a number with a unit: ms, s, m, h, d, w, y)",
            "w.yml:4:5: global: external_labels: \"bad-name\" is not a valid label name: use [a-zA-Z_][a-zA-Z0-9_]*",
            "w.yml:7:21: scrape job \"a\": scrape_timeout (5m) is greater than scrape_interval (1m, inherited from global)",
            "w.yml:8:5: scrape job \"a\": kubernetes_sd_configs is not supported: watchpost discovers targets with static_configs, file_sd_configs and http_sd_configs; have a tool write file_sd target files or serve the targets to http_sd_configs",
            "w.yml:11:9: scrape job \"a\": relabel_configs[0]: hashmod action requires modulus greater than 0",
            "w.yml:13:16: scrape job \"a\": relabel_configs[1]: invalid regex \"(\": unclosed group",
            "w.yml:15:15: scrape job \"a\": job_name is used twice (first at w.yml:6:15): job names must be unique",
            "w.yml:17:19: scrape job \"a\": static_configs[0]: target \"http://x:9100/metrics\" is not a valid host:port: drop the scheme and path (set scheme and metrics_path on the job, or rewrite __address__ with relabel_configs)",
        ]
    );
}

#[test]
fn relabel_defaults_match_prometheus() {
    let c = ok(&relabel("target_label: t"));
    let r = &c.scrape_configs[0].relabel_configs[0];
    assert_eq!(r.action, RelabelAction::Replace);
    assert_eq!(r.separator, ";");
    assert_eq!(r.regex_source, "(.*)");
    assert_eq!(r.replacement, "$1");
    assert_eq!(r.modulus, 0);
    assert!(r.source_labels.is_empty());
    // Anchored: the whole value must match.
    assert!(r.regex.is_match("anything"));
    let c = ok(&relabel("{source_labels: [a], regex: 'b+', action: KEEP}"));
    let r = &c.scrape_configs[0].relabel_configs[0];
    assert_eq!(r.action, RelabelAction::Keep);
    assert!(r.regex.is_match("bbb"));
    assert!(!r.regex.is_match("abbb"));
}

#[test]
fn every_relabel_action_parses() {
    for (rule, action) in [
        ("{action: replace, target_label: t}", RelabelAction::Replace),
        ("{action: keep}", RelabelAction::Keep),
        ("{action: drop, source_labels: [a]}", RelabelAction::Drop),
        (
            "{action: keepequal, source_labels: [a], target_label: b}",
            RelabelAction::KeepEqual,
        ),
        (
            "{action: dropequal, source_labels: [a], target_label: b}",
            RelabelAction::DropEqual,
        ),
        (
            "{action: hashmod, modulus: 4, target_label: s, source_labels: [__address__]}",
            RelabelAction::HashMod,
        ),
        (
            "{action: labelmap, regex: '__meta_(.+)'}",
            RelabelAction::LabelMap,
        ),
        (
            "{action: labeldrop, regex: tmp_.*}",
            RelabelAction::LabelDrop,
        ),
        (
            "{action: labelkeep, regex: keep_.*}",
            RelabelAction::LabelKeep,
        ),
        (
            "{action: lowercase, source_labels: [a], target_label: a}",
            RelabelAction::Lowercase,
        ),
        (
            "{action: uppercase, source_labels: [a], target_label: a}",
            RelabelAction::Uppercase,
        ),
        (
            "{target_label: '${1}_x', regex: '(.*)'}",
            RelabelAction::Replace,
        ),
    ] {
        let c = ok(&relabel(rule));
        assert_eq!(
            c.scrape_configs[0].relabel_configs[0].action, action,
            "{rule}"
        );
    }
}

#[test]
fn relabel_rules_are_validated_per_action() {
    for (rule, want) in [
        ("action: teleport", "unknown action \"teleport\": use one of replace, keep, drop, keepequal, dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase, uppercase".to_string()),
        ("action: replace", "replace action requires target_label".to_string()),
        ("{action: hashmod, target_label: s}", "hashmod action requires modulus greater than 0".to_string()),
        ("{action: hashmod, modulus: 2}", "hashmod action requires target_label".to_string()),
        ("{action: lowercase, source_labels: [a]}", "lowercase action requires target_label".to_string()),
        ("{action: uppercase, source_labels: [a]}", "uppercase action requires target_label".to_string()),
        ("{action: keepequal, source_labels: [a]}", "keepequal action requires target_label".to_string()),
        ("{action: dropequal, source_labels: [a]}", "dropequal action requires target_label".to_string()),
        ("{target_label: 1abc}", "\"1abc\" is not a valid target_label for replace action: use a label name ([a-zA-Z_][a-zA-Z0-9_]*), optionally with $1 or ${1} references".to_string()),
        ("{target_label: 'a-$1'}", "\"a-$1\" is not a valid target_label for replace action: use a label name ([a-zA-Z_][a-zA-Z0-9_]*), optionally with $1 or ${1} references".to_string()),
        ("{action: hashmod, modulus: 2, target_label: 'x-y'}", "\"x-y\" is not a valid target_label for hashmod action: use a label name ([a-zA-Z_][a-zA-Z0-9_]*)".to_string()),
        ("{action: lowercase, target_label: '$1'}", "\"$1\" is not a valid target_label for lowercase action: use a label name ([a-zA-Z_][a-zA-Z0-9_]*)".to_string()),
        ("{action: lowercase, target_label: a, replacement: x}", "replacement cannot be set for lowercase action: remove it".to_string()),
        ("{action: uppercase, target_label: a, replacement: x}", "replacement cannot be set for uppercase action: remove it".to_string()),
        ("{action: labelmap, replacement: 'a-b'}", "\"a-b\" is not a valid replacement for labelmap action: use a label name, optionally with $1 or ${1} references".to_string()),
        ("{action: keepequal, target_label: a, regex: x}", "keepequal action takes only source_labels and target_label: remove regex".to_string()),
        ("{action: dropequal, target_label: a, separator: ',', replacement: x, modulus: 3}", "dropequal action takes only source_labels and target_label: remove separator, modulus, replacement".to_string()),
        ("{action: labeldrop, source_labels: [a]}", "labeldrop action takes only regex: remove source_labels".to_string()),
        ("{action: labelkeep, target_label: a, replacement: b}", "labelkeep action takes only regex: remove target_label, replacement".to_string()),
        ("{source_labels: [ok, 'not-ok'], target_label: t}", "source_labels: \"not-ok\" is not a valid label name: use [a-zA-Z_][a-zA-Z0-9_]*".to_string()),
        ("{regex: 'a(b', target_label: t}", "invalid regex \"a(b\": unclosed group".to_string()),
    ] {
        let e = err(&relabel(rule));
        let (pos, msg) = e.split_at(e.find(" scrape job").unwrap_or(0));
        assert!(pos.starts_with("w.yml:4:"), "{e}");
        assert_eq!(msg, format!(" scrape job \"j\": relabel_configs[0]: {want}"), "rule {rule}");
    }
    // Explicit defaults are fine (Prometheus compares values, not presence).
    ok(&relabel(
        "{action: keepequal, target_label: a, regex: '(.*)', separator: ';'}",
    ));
    // Go's RE2 reads a stray brace as a literal; so does watchpost.
    ok(&relabel("{regex: 'a{b', target_label: t}"));
}

#[test]
fn relabel_errors_point_at_the_offending_field() {
    assert_eq!(
        err(&relabel("{target_label: t, regex: '[' }")),
        "w.yml:4:34: scrape job \"j\": relabel_configs[0]: invalid regex \"[\": unclosed character class"
    );
    assert_eq!(
        err(
            "scrape_configs:\n  - job_name: j\n    metric_relabel_configs:\n      - action: labeldrop\n        regex: x\n        separator: ','\n"
        ),
        "w.yml:6:20: scrape job \"j\": metric_relabel_configs[0]: labeldrop action takes only regex: remove separator"
    );
}

#[test]
fn static_targets_must_be_host_port_unless_relabeled() {
    for good in [
        "localhost",
        "localhost:9100",
        "10.0.0.1:80",
        "[::1]:9100",
        "[fe80::1]",
        "node-1.example.com:9100",
    ] {
        assert!(check_target_address(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "http://x:1",
        "x:1/metrics",
        "::1",
        "x:port",
        "x:0",
        "x:70000",
        "a b:1",
        ":9100",
        "[::1",
    ] {
        assert!(check_target_address(bad).is_err(), "{bad}");
    }
    // A blackbox-style job lists URLs and moves them with relabeling.
    ok("scrape_configs:
  - job_name: blackbox
    metrics_path: /probe
    params: {module: [http_2xx]}
    static_configs:
      - targets: ['https://example.com/health']
    relabel_configs:
      - {source_labels: [__address__], target_label: __param_target}
      - {target_label: __address__, replacement: 'blackbox:9115'}
");
    assert_eq!(
        err(
            "scrape_configs:\n  - job_name: j\n    static_configs:\n      - targets: ['a:1', 'b:x']\n"
        ),
        "w.yml:4:26: scrape job \"j\": static_configs[0]: target \"b:x\" is not a valid host:port: port \"x\" is not a number from 1 to 65535"
    );
}

#[test]
fn static_labels_are_validated() {
    let c = ok(
        "scrape_configs:\n  - job_name: j\n    static_configs:\n      - targets: ['a:1']\n        labels: {env: prod, rack: 12, gone: }\n",
    );
    let s = &c.scrape_configs[0].static_configs[0];
    assert_eq!(s.labels.get("env"), Some("prod"));
    // yaml.v2 reads a number into a string field; so does watchpost.
    assert_eq!(s.labels.get("rack"), Some("12"));
    // A null value is empty, and empty labels do not exist.
    assert_eq!(s.labels.get("gone"), None);
    assert_eq!(
        err(
            "scrape_configs:\n  - job_name: j\n    static_configs:\n      - targets: ['a:1']\n        labels: {env: prod, 'a.b': x}\n"
        ),
        "w.yml:5:29: scrape job \"j\": static_configs[0]: labels: \"a.b\" is not a valid label name: use [a-zA-Z_][a-zA-Z0-9_]*"
    );
}

#[test]
fn external_labels_are_validated_and_expanded() {
    let env = |k: &str| match k {
        "REGION" => Some("eu-1".to_string()),
        _ => None,
    };
    assert_eq!(expand_env("$REGION/${REGION}", &env), "eu-1/eu-1");
    assert_eq!(expand_env("cost $$5", &env), "cost $5");
    assert_eq!(expand_env("$UNSET-x", &env), "-x");
    assert_eq!(expand_env("a $ b", &env), "a $ b");
    assert_eq!(expand_env("end$", &env), "end$");
    assert_eq!(expand_env("${}x", &env), "x");
    assert_eq!(expand_env("plain", &env), "plain");
    let c = ok("global:\n  external_labels: {cluster: a, replica: '1'}\n");
    assert_eq!(
        c.global.external_labels,
        crate::model::Labels::from_pairs([("cluster", "a"), ("replica", "1")])
    );
    assert_eq!(
        err("global:\n  external_labels:\n    __name__: x\n"),
        "w.yml:3:5: global: external_labels: \"__name__\" starts with __, which is reserved for internal labels: rename it"
    );
}

#[test]
fn secrets_become_secret_sources_and_paths_resolve() {
    let c = ok("scrape_configs:
  - job_name: a
    basic_auth: {username: u, password: hunter2}
    tls_config: {ca_file: ca.pem, cert_file: /abs/c.pem, key_file: k.pem, server_name: s, insecure_skip_verify: true}
  - job_name: b
    basic_auth: {username: u, password_file: secrets/pw}
  - job_name: c
    authorization: {credentials_file: tok}
  - job_name: d
    bearer_token: abc
  - job_name: e
    authorization: {type: Token, credentials: xyz}
    proxy_url: http://proxy:3128
    follow_redirects: false
    enable_http2: false
");
    let j = &c.scrape_configs;
    let Some(SecretSource::Inline(pw)) = &j[0].http.basic_auth.as_ref().unwrap().password else {
        panic!("inline password expected")
    };
    assert_eq!(pw.expose(), "hunter2");
    let tls = &j[0].http.tls_config;
    assert_eq!(
        tls.ca_file.as_deref(),
        Some(Path::new("/etc/watchpost/ca.pem"))
    );
    assert_eq!(tls.cert_file.as_deref(), Some(Path::new("/abs/c.pem")));
    assert!(tls.insecure_skip_verify);
    let Some(SecretSource::File(f)) = &j[1].http.basic_auth.as_ref().unwrap().password else {
        panic!("password file expected")
    };
    assert_eq!(f, &PathBuf::from("/etc/watchpost/secrets/pw"));
    let a = j[2].http.authorization.as_ref().unwrap();
    assert_eq!(a.kind, "Bearer");
    assert!(
        matches!(&a.credentials, Some(SecretSource::File(p)) if p == Path::new("/etc/watchpost/tok"))
    );
    // bearer_token is Prometheus's old spelling of authorization.
    let a = j[3].http.authorization.as_ref().unwrap();
    assert!(matches!(&a.credentials, Some(SecretSource::Inline(s)) if s.expose() == "abc"));
    let e = &j[4].http;
    assert_eq!(e.authorization.as_ref().unwrap().kind, "Token");
    assert_eq!(e.proxy_url.as_deref(), Some("http://proxy:3128"));
    assert!(!e.follow_redirects && !e.enable_http2);
}

#[test]
fn conflicting_auth_settings_are_errors() {
    assert_eq!(
        err(
            "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password: p, password_file: f}\n"
        ),
        "w.yml:3:59: scrape job \"a\": basic_auth: password and password_file are both set: keep one"
    );
    assert_eq!(
        err(
            "scrape_configs:\n  - job_name: a\n    authorization: {credentials: p, credentials_file: f}\n"
        ),
        "w.yml:3:55: scrape job \"a\": authorization: credentials and credentials_file are both set: keep one"
    );
    assert_eq!(
        err("scrape_configs:\n  - job_name: a\n    authorization: {type: basic}\n"),
        "w.yml:3:27: scrape job \"a\": authorization: type cannot be Basic: use basic_auth instead"
    );
    assert_eq!(
        err(
            "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u}\n    authorization: {credentials: c}\n"
        ),
        "w.yml:4:20: scrape job \"a\": basic_auth and authorization are both set: use one way to authenticate"
    );
    assert_eq!(
        err(
            "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u}\n    bearer_token: t\n"
        ),
        "w.yml:4:19: scrape job \"a\": basic_auth and bearer_token are both set: use one way to authenticate"
    );
    assert_eq!(
        err("scrape_configs:\n  - job_name: a\n    tls_config: {cert_file: c.pem}\n"),
        "w.yml:3:29: scrape job \"a\": tls_config: cert_file is set without key_file: set both for a client certificate"
    );
}

#[test]
fn redacted_yaml_shows_effective_config_without_secrets() {
    let c = ok("global:
  scrape_interval: 15s
  external_labels: {cluster: prod}
scrape_configs:
  - job_name: node
    basic_auth: {username: admin, password: hunter2}
    static_configs: [{targets: ['n:9100'], labels: {env: x}}]
    relabel_configs:
      - {source_labels: [__address__], regex: '(.*):.*', target_label: host}
  - job_name: api
    authorization: {credentials: tok3n}
    http_sd_configs:
      - url: http://sd/targets
        basic_auth: {username: u, password: sdpass}
  - job_name: filepw
    basic_auth: {username: u, password_file: pw.txt}
    proxy_url: http://proxyuser:proxypass@proxy:3128
notify:
  global: {smtp_auth_password: mailpass}
  route: {receiver: hook}
  receivers:
    - name: hook
      webhook_configs: [{url: 'https://hooks.example/s3cret'}]
      telegram_configs: [{bot_token: '1:tg', chat_id: 5}]
alerting:
  alertmanagers:
    - basic_auth: {password: ampass}
remote_write:
  - url: http://rw
    authorization: {credentials: rwtoken}
");
    let y = &c.redacted_yaml;
    for secret in [
        "hunter2", "tok3n", "sdpass", "mailpass", "1:tg", "s3cret", "ampass", "rwtoken",
    ] {
        assert!(!y.contains(secret), "{secret} leaked into:\n{y}");
    }
    for shown in [
        "scrape_interval: 15s",
        "scrape_timeout: 10s",
        "evaluation_interval: 1m",
        "cluster: prod",
        "job_name: node",
        "metrics_path: /metrics",
        "scheme: http",
        "honor_timestamps: true",
        "username: admin",
        "password: <secret>",
        "credentials: <secret>",
        "password_file: /etc/watchpost/pw.txt",
        "regex: (.*):.*",
        "replacement: $1",
        "action: replace",
        "separator: ;",
        "url: http://sd/targets",
        "refresh_interval: 1m",
        "time: 15d",
        "proxy_url: http://proxyuser:xxxxx@proxy:3128",
    ] {
        assert!(
            y.contains(shown)
                || y.contains(&shown.replace(": ", ": \""))
                || y.contains(&shown.replace(": ", ": '")),
            "{shown:?} missing from:\n{y}"
        );
    }
    // The redacted YAML is itself valid YAML.
    let back: serde_json::Value = serde_saphyr::from_str(y).unwrap();
    assert_eq!(
        back["scrape_configs"][0]["basic_auth"]["password"],
        "<secret>"
    );
    assert_eq!(
        back["notify"]["receivers"][0]["webhook_configs"][0]["url"],
        "<secret>"
    );
}

#[test]
fn unsupported_prometheus_keys_name_the_alternative() {
    let e = errs(
        "runtime: {gogc: 50}
remote_read: [{url: http://x}]
global:
  query_log_file: q.log
scrape_configs:
  - job_name: k
    consul_sd_configs: [{server: c}]
    oauth2: {client_id: x}
    basic_auth: {username_file: u}
    tls_config: {ca: PEM}
",
    );
    assert_eq!(
        e,
        [
            "w.yml:1:1: runtime is not supported: it tunes the Go runtime (gogc), which watchpost does not have; remove the section",
            "w.yml:2:1: remote_read is not supported: watchpost answers queries from its own storage only; remove the section",
            "w.yml:4:3: global: query_log_file is not supported: watchpost logs through its own log output; remove the key",
            "w.yml:7:5: scrape job \"k\": consul_sd_configs is not supported: watchpost discovers targets with static_configs, file_sd_configs and http_sd_configs; have a tool write file_sd target files or serve the targets to http_sd_configs",
            "w.yml:8:5: scrape job \"k\": oauth2 is not supported: fetch the token outside watchpost and use authorization with credentials_file",
            "w.yml:9:18: scrape job \"k\": basic_auth: username_file is not supported: write the username inline (only the password is secret)",
            "w.yml:10:18: scrape job \"k\": tls_config: inline ca is not supported: write the PEM to a file and use ca_file",
        ]
    );
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    assert_eq!(
        err("scrape_configs:\n  - job_name: a\n    scrape_intervall: 1m\n"),
        "w.yml:3:5: unknown key \"scrape_intervall\": did you mean \"scrape_interval\"?"
    );
    assert_eq!(
        err("alertmanager_url: x\n"),
        "w.yml:1:1: unknown key \"alertmanager_url\": not a setting at this level (check the spelling and the indentation)"
    );
    // An SD mechanism newer than the refused list still gets the explanation.
    assert!(
        err("scrape_configs:\n  - job_name: a\n    future_sd_configs: []\n")
            .contains("future_sd_configs is not supported: watchpost discovers targets")
    );
}

#[test]
fn newer_prometheus_keys_are_accepted_when_watchpost_honours_them() {
    ok("global:
  rule_query_offset: 30s
  scrape_protocols: [OpenMetricsText1.0.0, PrometheusText0.0.4]
  metric_name_validation_scheme: legacy
  always_scrape_classic_histograms: true
scrape_configs:
  - job_name: a
    enable_compression: true
    track_timestamps_staleness: false
    scrape_protocols: [PrometheusProto, OpenMetricsText1.0.0, PrometheusText0.0.4]
    fallback_scrape_protocol: PrometheusText0.0.4
    scrape_classic_histograms: true
    native_histogram_bucket_limit: 100
    metric_name_escaping_scheme: underscores
    keep_dropped_targets: 0
storage:
  tsdb: {out_of_order_time_window: 10m}
  exemplars: {max_exemplars: 1000}
");
    let e = errs(
        "scrape_configs:
  - job_name: a
    enable_compression: false
    track_timestamps_staleness: true
    scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0]
    metric_name_validation_scheme: utf8
    scrape_native_histograms: true
",
    );
    assert_eq!(e.len(), 5, "{e:#?}");
    assert!(e[0].contains("enable_compression: false is not supported"));
    assert!(e[1].contains("track_timestamps_staleness: true is not supported"));
    assert!(e[2].contains("preferring PrometheusText0.0.4 over OpenMetrics is not supported"));
    assert!(e[3].contains("metric_name_validation_scheme: utf8 is not supported"));
    assert!(e[4].contains("scrape_native_histograms: true is not supported"));
    assert_eq!(
        err("global:\n  scrape_protocols: [OpenMetricsText1.0.0, Protobuf]\n"),
        "w.yml:2:44: global: scrape_protocols: unknown protocol \"Protobuf\": use OpenMetricsText1.0.0, OpenMetricsText0.0.1, PrometheusText1.0.0, PrometheusText0.0.4, PrometheusProto"
    );
    let c = ok("global:\n  rule_query_offset: 30s\n");
    assert_eq!(c.global.rule_query_offset, secs(30));
    assert_eq!(c.global.rule_evaluation, RuleEvaluation::Interval);
}

#[test]
fn rule_evaluation_mode_is_a_watchpost_extension() {
    let c = ok("global:\n  rule_evaluation: on_scrape\n");
    assert_eq!(c.global.rule_evaluation, RuleEvaluation::OnScrape);
    assert!(
        c.redacted_yaml.contains("rule_evaluation: on_scrape"),
        "{}",
        c.redacted_yaml
    );
    let c = ok("global:\n  rule_evaluation: interval\n");
    assert_eq!(c.global.rule_evaluation, RuleEvaluation::Interval);
    assert!(!c.redacted_yaml.contains("rule_evaluation"));
    assert_eq!(
        err("global:\n  rule_evaluation: sometimes\n"),
        "w.yml:2:20: global: rule_evaluation: \"sometimes\" is not an evaluation mode: use interval or on_scrape"
    );
}

#[test]
fn service_discovery_configs_are_validated() {
    let c = ok("scrape_configs:
  - job_name: a
    file_sd_configs:
      - files: [targets/*.json, /abs/x.yml]
      - files: [t.yaml]
        refresh_interval: 30s
    http_sd_configs:
      - url: https://sd.example/targets
        authorization: {credentials_file: sd.tok}
        tls_config: {ca_file: sd-ca.pem}
");
    let j = &c.scrape_configs[0];
    assert_eq!(
        j.file_sd_configs[0].files,
        ["/etc/watchpost/targets/*.json", "/abs/x.yml"]
    );
    assert_eq!(j.file_sd_configs[0].refresh_interval, secs(300));
    assert_eq!(j.file_sd_configs[1].refresh_interval, secs(30));
    let h = &j.http_sd_configs[0];
    assert_eq!(h.refresh_interval, secs(60));
    assert_eq!(
        h.http.tls_config.ca_file.as_deref(),
        Some(Path::new("/etc/watchpost/sd-ca.pem"))
    );
    let e = errs(
        "scrape_configs:
  - job_name: a
    file_sd_configs:
      - files: [targets.txt, '*/x.json']
      - refresh_interval: 1m
    http_sd_configs:
      - url: ftp://x/y
      - refresh_interval: 0s
",
    );
    assert_eq!(
        e,
        [
            "w.yml:4:17: scrape job \"a\": file_sd_configs[0]: files: \"targets.txt\" is not a valid file_sd path: use a .json, .yml or .yaml file name with at most one * in its last path element",
            "w.yml:4:30: scrape job \"a\": file_sd_configs[0]: files: \"*/x.json\" is not a valid file_sd path: use a .json, .yml or .yaml file name with at most one * in its last path element",
            "w.yml:5:9: scrape job \"a\": file_sd_configs[1]: files is missing: list at least one file pattern such as targets/*.json",
            "w.yml:7:14: scrape job \"a\": http_sd_configs[0]: url \"ftp://x/y\" is not supported: the scheme must be http or https, not ftp",
            "w.yml:8:9: scrape job \"a\": http_sd_configs[1]: url is missing: give the http(s) URL that serves the target list",
            "w.yml:8:27: scrape job \"a\": http_sd_configs[1]: refresh_interval: must be greater than 0s",
        ]
    );
}

#[test]
fn later_sections_parse_now() {
    // notify_file is read at load; tests/it/notify_config.rs covers it.
    let c = ok("rule_files: [rules/*.yml, /abs/r.yml]
alerting:
  alertmanagers: [{static_configs: [{targets: ['am:9093']}]}]
remote_write:
  - url: http://rw/api/v1/write
push: {pushgateway: true, max_groups: 5}
heartbeats: [{name: backup, period: 1d}]
reports: []
storage:
  retention: {time: 30d, size: 10GB}
web: {external_url: 'https://watchpost.example/', page_title: Watch}
");
    assert_eq!(c.rule_files, ["/etc/watchpost/rules/*.yml", "/abs/r.yml"]);
    assert!(c.alerting.is_some() && c.remote_write.len() == 1);
    assert!(c.push.pushgateway && !c.push.remote_write && c.push.max_groups == 5);
    assert!(c.heartbeats.len() == 1 && c.reports.is_empty());
    assert_eq!(c.storage.retention_time, secs(30 * 86400));
    assert_eq!(c.storage.retention_size, 10 << 30);
    assert_eq!(
        c.web.external_url.as_deref(),
        Some("https://watchpost.example/")
    );
    assert_eq!(c.web.page_title.as_deref(), Some("Watch"));
    // Only a size limit: no time limit, as in Prometheus.
    let c = ok("storage: {tsdb: {retention: {size: 1GB}}}\n");
    assert_eq!(
        (c.storage.retention_time, c.storage.retention_size),
        (Duration::ZERO, 1 << 30)
    );
    assert_eq!(
        err("notify: {route: {receiver: x}}\nnotify_file: am.yml\n"),
        "w.yml:2:14: notify and notify_file are both set: keep the inline notify section or the file, not both"
    );
    assert_eq!(
        err("rule_files: ['rules/*/x.yml']\n"),
        "w.yml:1:14: rule_files: \"rules/*/x.yml\" is not a valid path pattern: a * may only appear in the last path element"
    );
}

#[test]
fn yaml_errors_carry_positions() {
    assert_eq!(
        err("global:\n  scrape_interval: [1m]\n"),
        "w.yml:2:20: scrape_interval: expected a string"
    );
    assert_eq!(
        err("scrape_configs:\n  - job_name: a\n    sample_limit: lots\n"),
        "w.yml:3:19: sample_limit: invalid value \"lots\": expected a whole number of 0 or more"
    );
    assert_eq!(
        err("scrape_configs:\n  -\n"),
        "w.yml:2:4: scrape_configs: expected a mapping (key: value)"
    );
    assert_eq!(
        err(
            "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: localhost:9090\n"
        ),
        "w.yml:4:18: targets: expected a list"
    );
    let e = err("global:\n  scrape_interval: 1m\n bad: indent\n");
    assert!(e.starts_with("w.yml:3:"), "{e}");
    assert!(e.contains("yaml syntax error"), "{e}");
}

#[test]
fn scrape_config_files_are_merged_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("jobs")).unwrap();
    std::fs::write(
        dir.path().join("jobs/a.yml"),
        "scrape_configs:\n  - job_name: from_file\n    basic_auth: {username: u, password_file: pw}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("jobs/b.yml"),
        "scrape_configs:\n  - job_name: main\n  - job_name: bad\n    scrape_interval: often\n",
    )
    .unwrap();
    let main = dir.path().join("watchpost.yml");
    std::fs::write(
        &main,
        "scrape_config_files: [jobs/a.yml]\nscrape_configs:\n  - job_name: main\n",
    )
    .unwrap();
    let c = load_file(&main).unwrap();
    assert_eq!(c.source.as_deref(), Some(main.as_path()));
    let names: Vec<&str> = c
        .scrape_configs
        .iter()
        .map(|s| s.job_name.as_str())
        .collect();
    assert_eq!(names, ["main", "from_file"]);
    // Paths in an included file resolve against that file's directory.
    let pw = &c.scrape_configs[1]
        .http
        .basic_auth
        .as_ref()
        .unwrap()
        .password;
    assert!(matches!(pw, Some(SecretSource::File(p)) if *p == dir.path().join("jobs/pw")));

    std::fs::write(
        &main,
        "scrape_config_files: ['jobs/*.yml']\nscrape_configs:\n  - job_name: main\n",
    )
    .unwrap();
    let e = load_file(&main).unwrap_err().messages();
    let b = dir.path().join("jobs/b.yml").display().to_string();
    let m = main.display().to_string();
    assert_eq!(
        e,
        [
            format!(
                "{b}:2:15: scrape job \"main\": job_name is used twice (first at {m}:3:15): job names must be unique"
            ),
            format!(
                "{b}:4:22: scrape job \"bad\": scrape_interval: not a valid duration string: \"often\" (use a number with a unit: ms, s, m, h, d, w, y)"
            ),
        ]
    );
}

#[test]
fn read_errors_name_the_file() {
    let e = load_file(Path::new("no/such/watchpost.yml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    let m = e.messages();
    assert_eq!(m.len(), 1);
    assert!(
        m[0].starts_with("no/such/watchpost.yml: cannot read file: "),
        "{}",
        m[0]
    );
}

#[test]
fn display_joins_messages_with_newlines() {
    let e = load("global: {scrape_interval: x, evaluation_interval: y}\n").unwrap_err();
    assert_eq!(e.to_string(), e.messages().join("\n"));
    assert_eq!(e.diagnostics().len(), 2);
}
