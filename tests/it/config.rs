//! Config fixtures under `config/testdata/`: every `good/*.yml` loads, and
//! every `bad/NAME.yml` fails with exactly the lines of `bad/NAME.yml.err`.
//! The same for the web config file under `config/testdata/web/`.
//!
//! Files are read through `CARGO_MANIFEST_DIR`, but named in errors by their
//! path relative to the crate root (cargo runs integration tests there), so
//! the expected messages hold no machine-specific paths.

use std::path::{Path, PathBuf};
use std::time::Duration;

use watchpost::config::{self, Config, ConfigError, SecretSource};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `dir/*.yml` relative to the crate root, sorted.
fn yml_files(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(Path::new(ROOT).join(dir))
        .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yml"))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    names.sort();
    names
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn dir_of(rel: &str) -> &Path {
    Path::new(rel).parent().unwrap()
}

fn load_good(rel: &str) -> Config {
    let abs_dir = Path::new(ROOT).join(dir_of(rel));
    config::load_str(&read(rel), rel, &abs_dir)
        .unwrap_or_else(|e| panic!("{rel} should load, got:\n{e}"))
}

/// Runs every bad fixture of `dir` through `load` and compares its messages
/// with the `.err` file; returns how many fixtures were checked.
fn check_bad_fixtures(
    dir: &str,
    load: impl Fn(&str, &str, &Path) -> Result<(), ConfigError>,
) -> usize {
    let files = yml_files(dir);
    let mut failures = Vec::new();
    for rel in &files {
        let want_path = format!("{rel}.err");
        let want_text = std::fs::read_to_string(Path::new(ROOT).join(&want_path))
            .unwrap_or_else(|e| panic!("{want_path}: {e} (every bad fixture needs its .err file)"));
        let want: Vec<&str> = want_text.lines().filter(|l| !l.is_empty()).collect();
        // Relative base directory: paths in messages stay relative too.
        match load(&read(rel), rel, dir_of(rel)) {
            Ok(()) => failures.push(format!("{rel}: loaded, but should fail with:\n{want_text}")),
            Err(e) => {
                let got = e.messages();
                if got != want {
                    failures.push(format!(
                        "{rel}:\n  want:\n    {}\n  got:\n    {}",
                        want.join("\n    "),
                        got.join("\n    ")
                    ));
                }
                for m in &got {
                    assert!(
                        m.starts_with(&format!("{rel}:")),
                        "{m} does not start with the file name"
                    );
                    assert!(!m.contains('\n'), "{m:?} spans several lines");
                }
            }
        }
    }
    // No .err file may be left without its fixture.
    for entry in std::fs::read_dir(Path::new(ROOT).join(dir)).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(yml) = name.strip_suffix(".err") {
            assert!(
                files.contains(&format!("{dir}/{yml}")),
                "{dir}/{name} has no fixture"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad fixtures differ:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    files.len()
}

#[test]
fn every_good_config_loads() {
    let files = yml_files("config/testdata/good");
    assert!(files.len() >= 5, "{files:?}");
    for rel in &files {
        let c = load_good(rel);
        assert!(c.redacted_yaml.contains("scrape_interval"), "{rel}");
    }
}

#[test]
fn every_bad_config_fails_with_its_messages() {
    let n = check_bad_fixtures("config/testdata/bad", |yaml, name, base| {
        config::load_str(yaml, name, base).map(|_| ())
    });
    assert!(n >= 25, "only {n} bad fixtures");
    println!("{n} bad config fixtures checked");
}

#[test]
fn every_good_web_config_loads() {
    for rel in yml_files("config/testdata/web/good") {
        config::load_web_config(&Path::new(ROOT).join(&rel))
            .unwrap_or_else(|e| panic!("{rel} should load, got:\n{e}"));
    }
}

#[test]
fn every_bad_web_config_fails_with_its_messages() {
    let n = check_bad_fixtures("config/testdata/web/bad", |yaml, name, base| {
        config::load_web_config_str(yaml, name, base).map(|_| ())
    });
    assert!(n >= 5, "only {n} bad web fixtures");
}

/// Example configs shipped under `config/` (not the test data) load too.
#[test]
fn shipped_configs_load() {
    let dir = Path::new(ROOT).join("config");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            config::load_file(&path)
                .unwrap_or_else(|e| panic!("{} should load:\n{e}", path.display()));
        }
    }
}

#[test]
fn load_file_names_the_file_as_given() {
    // cargo runs integration tests from the crate root.
    let rel = Path::new("config/testdata/bad/duplicate-job.yml");
    let e = config::load_file(rel).unwrap_err();
    assert!(
        e.messages()[0].starts_with("config/testdata/bad/duplicate-job.yml:5:15: "),
        "{e}"
    );
    let c = config::load_file(Path::new("config/testdata/good/minimal.yml")).unwrap();
    assert_eq!(
        c.source.as_deref(),
        Some(Path::new("config/testdata/good/minimal.yml"))
    );
}

#[test]
fn realistic_prometheus_yml_keeps_its_meaning() {
    let c = load_good("config/testdata/good/prometheus-realistic.yml");
    assert_eq!(c.global.scrape_interval, Duration::from_secs(15));
    assert_eq!(c.global.external_labels.get("cluster"), Some("eu-prod-1"));
    let names: Vec<&str> = c
        .scrape_configs
        .iter()
        .map(|j| j.job_name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "prometheus",
            "node",
            "blackbox-http",
            "blackbox-icmp",
            "kube-apiserver-via-proxy",
            "app"
        ]
    );
    let node = &c.scrape_configs[1];
    assert_eq!(node.scrape_interval, Duration::from_secs(30));
    assert_eq!(node.scrape_timeout, Duration::from_secs(10));
    assert_eq!(node.static_configs[0].labels.get("role"), Some("database"));
    assert!(node.file_sd_configs[0].files[0].ends_with("config/testdata/good/targets/node/*.json"));
    assert_eq!(node.metric_relabel_configs.len(), 2);
    let blackbox = &c.scrape_configs[2];
    assert_eq!(blackbox.params["module"], ["http_2xx"]);
    assert_eq!(
        blackbox.static_configs[0].targets[0],
        "https://www.example.com"
    );
    let kube = &c.scrape_configs[4];
    assert_eq!(kube.scheme, config::Scheme::Https);
    let auth = kube.http.authorization.as_ref().unwrap();
    assert_eq!(auth.kind, "Bearer");
    assert!(
        matches!(&auth.credentials, Some(SecretSource::File(p)) if p == Path::new("/var/run/secrets/token"))
    );
    let app = &c.scrape_configs[5];
    assert!(app.honor_labels);
    assert_eq!(app.limits.body_size_limit, 20 << 20);
    assert_eq!(
        app.relabel_configs[0].action,
        config::RelabelAction::HashMod
    );
    assert_eq!(app.relabel_configs[0].modulus, 2);
    assert!(c.rule_files[1] == "/etc/prometheus/alerts/node.rules.yml");
    assert!(c.alerting.is_some());
}

#[test]
fn every_key_example_sets_every_field() {
    let c = load_good("config/testdata/good/every-key.yml");
    let j = &c.scrape_configs[0];
    assert_eq!(c.global.rule_query_offset, Duration::from_secs(10));
    assert_eq!(c.global.limits.target_limit, 500);
    assert_eq!(j.scrape_timeout, Duration::from_secs(5));
    assert_eq!(j.metrics_path, "/custom/metrics");
    assert!(j.honor_labels && !j.honor_timestamps);
    assert!(!j.http.follow_redirects && !j.http.enable_http2);
    assert_eq!(
        j.http.proxy_url.as_deref(),
        Some("http://proxy.internal:3128")
    );
    assert_eq!(
        j.http.tls_config.server_name.as_deref(),
        Some("metrics.internal")
    );
    assert_eq!(j.limits.body_size_limit, (1 << 30) + (512 << 20));
    assert_eq!(j.http_sd_configs.len(), 3);
    assert_eq!(
        j.http_sd_configs[0]
            .http
            .authorization
            .as_ref()
            .unwrap()
            .kind,
        "Token"
    );
    let actions: Vec<config::RelabelAction> = j.relabel_configs.iter().map(|r| r.action).collect();
    assert_eq!(actions.len(), 12);
    for a in [
        config::RelabelAction::Replace,
        config::RelabelAction::Keep,
        config::RelabelAction::Drop,
        config::RelabelAction::KeepEqual,
        config::RelabelAction::DropEqual,
        config::RelabelAction::HashMod,
        config::RelabelAction::LabelMap,
        config::RelabelAction::LabelDrop,
        config::RelabelAction::LabelKeep,
        config::RelabelAction::Lowercase,
        config::RelabelAction::Uppercase,
    ] {
        assert!(actions.contains(&a), "{a:?} missing");
    }
    assert_eq!(c.storage.retention_time, Duration::from_secs(30 * 86400));
    assert_eq!(
        c.storage.out_of_order_time_window,
        Duration::from_secs(30 * 60)
    );
    assert!(c.web.external_url.is_some() && c.web.page_title.is_some());
    assert!(c.notify.is_some() && c.alerting.is_some() && c.remote_write.len() == 1);
    assert_eq!(
        c.push,
        config::PushConfig {
            pushgateway: true,
            remote_write: true,
            max_request_bytes: 4 << 20,
            max_samples_per_request: 20000,
            max_series_per_group: 500,
            max_groups: 100,
        }
    );
    assert!(c.heartbeats.len() == 1 && c.reports.len() == 1);
    for secret in [
        "inline-secret",
        "legacy-inline-token",
        "inline-bearer",
        "smtp-secret",
        "rw-secret",
    ] {
        assert!(!c.redacted_yaml.contains(secret), "{secret} leaked");
    }
}

#[test]
fn included_scrape_config_files_are_merged() {
    let c = load_good("config/testdata/good/scrape-config-files.yml");
    let names: Vec<&str> = c
        .scrape_configs
        .iter()
        .map(|j| j.job_name.as_str())
        .collect();
    assert_eq!(names, ["main", "from-included-file"]);
    let pw = &c.scrape_configs[1]
        .http
        .basic_auth
        .as_ref()
        .unwrap()
        .password;
    let want: PathBuf = Path::new(ROOT).join("config/testdata/good/jobs/../secrets/pw");
    assert!(
        matches!(pw, Some(SecretSource::File(p)) if *p == want),
        "{pw:?}"
    );
}

#[test]
fn web_config_is_typed() {
    let w = config::load_web_config(
        &Path::new(ROOT).join("config/testdata/web/good/tls-and-users.yml"),
    )
    .unwrap();
    let tls = w.tls.as_ref().unwrap();
    assert_eq!(
        tls.client_auth,
        config::ClientAuth::RequireAndVerifyClientCert
    );
    assert!(tls.cert_file.ends_with("web/good/../certs/server.crt"));
    assert_eq!(tls.client_allowed_sans, ["ops.example.com"]);
    assert_eq!(
        (tls.min_version, tls.max_version),
        (config::TlsVersion::Tls12, config::TlsVersion::Tls13)
    );
    assert_eq!(w.basic_auth_users.len(), 2);
    assert!(bcrypt::verify("watchpost", w.basic_auth_users["admin"].expose()).unwrap());
    assert_eq!(w.headers["X-Frame-Options"], "deny");
    let w =
        config::load_web_config(&Path::new(ROOT).join("config/testdata/web/good/users-only.yml"))
            .unwrap();
    assert!(w.tls.is_none());
}
