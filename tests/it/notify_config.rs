//! The Alertmanager part of the config (`notify:` / `notify_file:`):
//! fixtures under `config/testdata/notify/` (every `good/*.yml` loads,
//! every `bad/NAME.yml` fails with exactly the lines of `bad/NAME.yml.err`),
//! what receivers inherit from `global`, routing through a loaded config,
//! positions of errors in the inline and the file form, and redaction.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use watchpost::config::notify::{
    self, GroupBy, IntegrationConfig, IntervalLocation, NotifyConfig, SlackTarget, TelegramChat,
};
use watchpost::config::{self, SecretSource};
use watchpost::model::Labels;
use watchpost::notify::route::{Route, routes_for};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const GOOD: &str = "config/testdata/notify/good";
const BAD: &str = "config/testdata/notify/bad";

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

/// Loads a fixture named by its path relative to the crate root, with
/// relative paths in it resolving against its (absolute) directory.
fn load(rel: &str) -> NotifyConfig {
    let dir = Path::new(ROOT).join(rel).parent().unwrap().to_path_buf();
    notify::load_str(&read(rel), rel, &dir).unwrap_or_else(|e| panic!("{rel} should load:\n{e}"))
}

fn labels(s: &str) -> Labels {
    Labels::from_pairs(s.split(',').filter(|p| !p.is_empty()).map(|p| {
        let (k, v) = p.split_once('=').unwrap();
        (k.to_string(), v.to_string())
    }))
}

#[test]
fn every_good_notify_config_loads_without_warnings() {
    let files = yml_files(GOOD);
    assert!(files.len() >= 5, "{files:?}");
    for rel in &files {
        let c = load(rel);
        assert!(c.warnings.is_empty(), "{rel}: {:?}", c.warnings);
        assert!(c.redacted_yaml.contains("route"), "{rel}");
    }
}

#[test]
fn every_bad_notify_config_fails_with_its_messages() {
    let files = yml_files(BAD);
    let mut failures = Vec::new();
    for rel in &files {
        let want_path = format!("{rel}.err");
        let want_text = std::fs::read_to_string(Path::new(ROOT).join(&want_path))
            .unwrap_or_else(|e| panic!("{want_path}: {e} (every bad fixture needs its .err file)"));
        let want: Vec<&str> = want_text.lines().filter(|l| !l.is_empty()).collect();
        let dir = Path::new(rel).parent().unwrap();
        match notify::load_str(&read(rel), rel, dir) {
            Ok(_) => failures.push(format!("{rel}: loaded, but should fail with:\n{want_text}")),
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
                    assert!(m.starts_with(&format!("{rel}:")), "{m}: no file name");
                    assert!(!m.contains('\n'), "{m:?} spans several lines");
                    assert!(!m.ends_with('.'), "{m:?} ends with a period");
                }
            }
        }
    }
    for entry in std::fs::read_dir(Path::new(ROOT).join(BAD)).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(yml) = name.strip_suffix(".err") {
            assert!(
                files.contains(&format!("{BAD}/{yml}")),
                "{BAD}/{name} has no fixture"
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
    assert!(files.len() >= 25, "only {} bad fixtures", files.len());
    println!("{} bad notify fixtures checked", files.len());
}

#[test]
fn receivers_inherit_from_global() {
    let c = load(&format!("{GOOD}/every-receiver.yml"));
    let dir = Path::new(ROOT).join(GOOD);
    assert_eq!(c.global.resolve_timeout, Duration::from_secs(600));
    let r = c.receiver("everything").unwrap();
    let names: Vec<String> = r.integrations.iter().map(|i| i.display_name()).collect();
    assert_eq!(
        names,
        [
            "webhook[0]",
            "email[0]",
            "email[1]",
            "pagerduty[0]",
            "opsgenie[0]",
            "slack[0]",
            "slack[1]",
            "victorops[0]",
            "pushover[0]",
            "telegram[0]",
            "telegram[1]",
            "discord[0]",
            "webex[0]",
            "msteams[0]",
            "msteamsv2[0]",
            "mattermost[0]",
            "log[0]",
        ]
    );
    let get = |name: &str| {
        r.integrations
            .iter()
            .find(|i| i.display_name() == name)
            .unwrap()
    };

    // Email: smarthost, from, hello, username and password file from global.
    let e0 = get("email[0]");
    assert!(e0.send_resolved);
    let IntegrationConfig::Email(e) = &e0.config else {
        panic!()
    };
    assert_eq!(e.smarthost.to_string(), "smtp.example.org:587");
    assert_eq!(e.from, "watchpost@example.org");
    assert_eq!(e.hello, "watchpost.example.org");
    assert_eq!(e.auth_username.as_deref(), Some("watchpost"));
    assert_eq!(
        e.auth_password,
        Some(SecretSource::File(dir.join("secrets/smtp-password")))
    );
    assert!(e.require_tls);
    assert_eq!(
        e.headers["Subject"],
        "[{{ .Status }}] {{ .GroupLabels.alertname }}"
    );
    assert_eq!(e.headers["X-Priority"], "1");
    assert_eq!(e.headers["To"], "ops@example.org, dba@example.org");
    assert_eq!(e.headers["From"], "watchpost@example.org");
    assert_eq!(e.html, "{{ template \"email.default.html\" . }}");
    // The second overrides what it sets; email's send_resolved defaults off.
    let e1 = get("email[1]");
    assert!(!e1.send_resolved);
    let IntegrationConfig::Email(e) = &e1.config else {
        panic!()
    };
    assert_eq!((e.smarthost.host.as_str(), e.smarthost.port), ("::1", 465));
    assert_eq!(e.smarthost.to_string(), "[::1]:465");
    assert!(!e.require_tls);
    assert!(
        matches!(&e.auth_password, Some(SecretSource::Inline(s)) if s.expose() == "inline-mail-secret")
    );
    assert_eq!(
        e.headers["Subject"],
        "{{ template \"email.default.subject\" . }}"
    );

    // Telegram: api_url from global, chat id inline or from a file.
    let IntegrationConfig::Telegram(t) = &get("telegram[0]").config else {
        panic!()
    };
    assert_eq!(t.api_url, "https://telegram.internal.example.org");
    assert_eq!(t.chat, TelegramChat::Id(-1001234567890));
    assert_eq!(
        t.bot_token,
        SecretSource::File(dir.join("secrets/telegram-token"))
    );
    assert_eq!((t.message_thread_id, t.disable_notifications), (42, true));
    assert_eq!(t.parse_mode, "HTML");
    assert_eq!(t.message, "{{ template \"telegram.default.message\" . }}");
    assert!(get("telegram[0]").send_resolved);
    let t1 = get("telegram[1]");
    assert!(!t1.send_resolved);
    let IntegrationConfig::Telegram(t) = &t1.config else {
        panic!()
    };
    assert_eq!(t.api_url, "https://api.telegram.org");
    assert_eq!(t.chat, TelegramChat::File(dir.join("secrets/chat-id")));
    assert_eq!(t.parse_mode, "MarkdownV2");

    // Slack: the global webhook file, or an app token with the default URL.
    let s0 = get("slack[0]");
    assert!(!s0.send_resolved);
    let IntegrationConfig::Slack(s) = &s0.config else {
        panic!()
    };
    assert_eq!(
        s.target,
        SlackTarget::Webhook(SecretSource::File(dir.join("secrets/slack-url")))
    );
    assert_eq!(s.fields[0].short, Some(true));
    assert_eq!(s.actions[0].url, "{{ .CommonAnnotations.runbook_url }}");
    assert_eq!(s.username, "{{ template \"slack.default.username\" . }}");
    let IntegrationConfig::Slack(s) = &get("slack[1]").config else {
        panic!()
    };
    assert!(
        matches!(&s.target, SlackTarget::App { url, .. } if url == "https://slack.com/api/chat.postMessage")
    );

    // Webhook: its own http_config; others take the global one.
    let IntegrationConfig::Webhook(w) = &get("webhook[0]").config else {
        panic!()
    };
    assert_eq!(w.url, SecretSource::File(dir.join("secrets/webhook-url")));
    assert_eq!((w.max_alerts, w.timeout), (20, Duration::from_secs(10)));
    assert!(w.http_config.basic_auth.is_some());
    assert_eq!(w.http_config.proxy_url, None);
    let IntegrationConfig::Discord(d) = &get("discord[0]").config else {
        panic!()
    };
    assert_eq!(
        d.http_config.proxy_url.as_deref(),
        Some("http://proxy.example.org:3128")
    );
    assert!(d.http_config.follow_redirects);

    let IntegrationConfig::Pagerduty(p) = &get("pagerduty[0]").config else {
        panic!()
    };
    assert_eq!(p.url, "https://events.pagerduty.com/v2/enqueue");
    assert_eq!(p.details["cluster"], "{{ .CommonLabels.cluster }}");
    assert_eq!(p.details["num_firing"], "{{ .Alerts.Firing | len }}");
    assert_eq!(p.source, p.client);
    let IntegrationConfig::Opsgenie(o) = &get("opsgenie[0]").config else {
        panic!()
    };
    assert!(matches!(&o.api_key, SecretSource::Inline(k) if k.expose() == "og-global-key"));
    assert_eq!(o.api_url, "https://api.opsgenie.com/");
    assert_eq!(o.responders[0].kind, "team");
    let IntegrationConfig::Victorops(v) = &get("victorops[0]").config else {
        panic!()
    };
    assert_eq!(v.message_type, "CRITICAL");
    assert!(v.api_url.ends_with("/alert/"));
    let IntegrationConfig::Pushover(p) = &get("pushover[0]").config else {
        panic!()
    };
    assert_eq!(
        (p.retry, p.expire),
        (Duration::from_secs(30), Duration::from_secs(5400))
    );
    let IntegrationConfig::Webex(x) = &get("webex[0]").config else {
        panic!()
    };
    assert_eq!(x.api_url, "https://webexapis.com/v1/messages");
    let IntegrationConfig::Mattermost(m) = &get("mattermost[0]").config else {
        panic!()
    };
    assert_eq!(m.card, "{{ .CommonAnnotations.description }}");
    assert!(
        m.priority
            .as_ref()
            .is_some_and(|p| p.requested_ack && p.priority == "urgent")
    );
    assert_eq!(m.attachments[0].fields[0].title, "Cluster");
    assert_eq!(
        m.username,
        "{{ template \"mattermost.default.username\" . }}"
    );
    let IntegrationConfig::Log(l) = &get("log[0]").config else {
        panic!()
    };
    assert_eq!(l.message, "{{ .Status }} {{ .GroupLabels }}");
}

#[test]
fn routing_through_the_documented_example() {
    let c = load(&format!("{GOOD}/alertmanager-example.yml"));
    let cases: &[(&str, &[&str])] = &[
        ("alertname=X", &["team-X-mails"]),
        ("service=foo1,severity=critical", &["team-X-pager"]),
        ("service=files,severity=critical", &["team-Y-pager"]),
        ("service=database", &["team-DB-pager"]),
        ("service=database,owner=team-X", &["team-X-pager"]),
        ("service=database,owner=team-Y", &["team-Y-pager"]),
    ];
    for (l, want) in cases {
        let got: Vec<String> = routes_for(&c, &labels(l))
            .into_iter()
            .map(|m| m.receiver)
            .collect();
        assert_eq!(&got, want, "{l}");
    }
    let m = &routes_for(&c, &labels("service=database,owner=team-Y"))[0];
    assert_eq!(m.path, "route.routes[2].routes[1]");
    assert_eq!(m.id, r#"{}/{service="database"}/{owner="team-Y"}/1"#);
    let tree = Route::new(&c.route);
    let db = tree.find(&[2, 0]).unwrap();
    assert_eq!(db.opts.repeat_interval, Duration::from_secs(3 * 3600));
    assert_eq!(
        db.group_key(&labels(
            "alertname=Full,cluster=eu,database=orders,owner=team-X,service=database"
        )),
        r#"{}/{service="database"}/{owner="team-X"}:{alertname="Full", cluster="eu", database="orders"}"#
    );
    assert_eq!(
        c.inhibit_rules[0].equal,
        ["alertname", "cluster", "service"]
    );
    assert!(c.templates[0].ends_with("notify/good/templates/*.tmpl"));
}

#[test]
fn legacy_matchers_and_grouping() {
    let c = load(&format!("{GOOD}/legacy-match.yml"));
    assert_eq!(c.route.group_by, Some(GroupBy::All));
    let shown: Vec<String> = c.route.routes[0]
        .matchers
        .iter()
        .map(|m| m.to_string())
        .collect();
    assert_eq!(
        shown,
        [
            r#"code="500""#,
            r#"service=~"^(api|web)$""#,
            r#"severity="critical""#
        ]
    );
    let got = routes_for(&c, &labels("severity=critical,code=500,service=web"));
    assert_eq!(got[0].receiver, "pager");
    assert_eq!(
        routes_for(&c, &labels("severity=critical,service=db"))[0].receiver,
        "default"
    );
    assert_eq!(c.time_intervals[0].name, "lunch");
    assert_eq!(
        c.inhibit_rules[0].target_matchers[0].to_string(),
        r#"severity=~"warning|info""#
    );
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn time_intervals_from_a_config() {
    let c = load(&format!("{GOOD}/time-intervals.yml"));
    let business = c.time_interval("business-hours").unwrap();
    assert!(matches!(
        business.intervals[0].location,
        IntervalLocation::Tz(_)
    ));
    // Monday 08:30 UTC is 10:30 in Berlin in July.
    assert!(business.contains(at("2024-07-01T08:30:00Z")));
    assert!(!business.contains(at("2024-07-01T16:00:00Z")));
    assert!(!business.contains(at("2024-07-06T08:30:00Z")));
    let maintenance = c.time_interval("maintenance").unwrap();
    // 02:00 on Sunday in New York (EDT, UTC-4) is 06:00 UTC.
    assert!(maintenance.contains(at("2024-07-07T06:30:00Z")));
    assert!(!maintenance.contains(at("2024-07-07T08:00:00Z")));
    // @monthly: the first half hour of each month, UTC.
    assert!(maintenance.contains(at("2024-08-01T00:10:00Z")));
    let tree = Route::new(&c.route);
    let intervals = watchpost::notify::TimeIntervals::new(&c.time_intervals);
    let db = tree.find(&[1]).unwrap();
    assert!(db.opts.send_resolved_when_muted);
    assert_eq!(
        intervals.muted(&db.opts, at("2024-07-06T08:30:00Z")),
        Some(watchpost::notify::Muted::OutsideActiveIntervals)
    );
    let web = tree.find(&[0]).unwrap();
    assert_eq!(
        intervals.muted(&web.opts, at("2024-07-07T06:30:00Z")),
        Some(watchpost::notify::Muted::ByInterval("offhours".into()))
    );
    assert_eq!(intervals.muted(&web.opts, at("2024-07-03T12:00:00Z")), None);
}

#[test]
fn inline_section_errors_point_into_the_main_file() {
    let yaml = "global:\n  scrape_interval: 15s\nnotify:\n  route:\n    receiver: nobody\n  receivers:\n    - name: somebody\n";
    let e = config::load_str(yaml, "w.yml", Path::new("/etc/watchpost")).unwrap_err();
    assert_eq!(
        e.messages(),
        [
            "w.yml:5:15: route: receiver \"nobody\" is not defined: add it to receivers or fix the name"
        ]
    );
    let e = config::load_str("notify: {}\n", "w.yml", Path::new("")).unwrap_err();
    assert_eq!(
        e.messages(),
        [
            "w.yml:1:9: route is missing: an Alertmanager config needs a root route with a default receiver"
        ]
    );
    let yaml = "notify:\n  route: {receiver: r}\n  receivers: [{name: r, telegram_configs: [{bot_token_file: tg, chat_id: 1}]}]\n";
    let c = config::load_str(yaml, "w.yml", Path::new("/etc/watchpost")).unwrap();
    let n = c.notify.as_ref().unwrap();
    assert_eq!(n.path, None);
    assert_eq!(n.file, "w.yml");
    assert_eq!(n.warnings.len(), 1);
    assert!(
        n.warnings[0]
            .to_string()
            .starts_with("w.yml:3:61: receiver \"r\": telegram_configs[0]: bot_token_file /etc/watchpost/tg does not exist yet"),
        "{}",
        n.warnings[0]
    );
    assert!(
        c.redacted_yaml.contains("bot_token_file: tg"),
        "{}",
        c.redacted_yaml
    );
}

#[test]
fn notify_file_is_read_relative_to_the_config_and_reports_its_own_positions() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("am");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("token"), "1:x").unwrap();
    std::fs::write(
        sub.join("alertmanager.yml"),
        "route:\n  receiver: tg\nreceivers:\n  - name: tg\n    telegram_configs:\n      - bot_token_file: token\n        chat_id: 7\n",
    )
    .unwrap();
    let main = dir.path().join("watchpost.yml");
    std::fs::write(&main, "notify_file: am/alertmanager.yml\n").unwrap();
    let c = config::load_file(&main).unwrap();
    let n = c.notify.as_ref().unwrap();
    assert_eq!(
        n.path.as_deref(),
        Some(sub.join("alertmanager.yml").as_path())
    );
    let IntegrationConfig::Telegram(t) = &n.receivers[0].integrations[0].config else {
        panic!()
    };
    assert_eq!(t.bot_token, SecretSource::File(sub.join("token")));
    assert!(n.warnings.is_empty(), "{:?}", n.warnings);
    assert!(c.redacted_yaml.contains("notify_file:"));

    // Errors name the notify file and positions in it.
    std::fs::write(
        sub.join("alertmanager.yml"),
        "route:\n  receiver: tg\nreceivers:\n  - name: other\n",
    )
    .unwrap();
    let e = config::load_file(&main).unwrap_err();
    let name = sub.join("alertmanager.yml").display().to_string();
    assert_eq!(
        e.messages(),
        [format!(
            "{name}:2:13: route: receiver \"tg\" is not defined: add it to receivers or fix the name"
        )]
    );
    // A YAML error in the file too.
    std::fs::write(sub.join("alertmanager.yml"), "route:\n  reciever: tg\n").unwrap();
    let e = config::load_file(&main).unwrap_err();
    assert_eq!(
        e.messages(),
        [format!(
            "{name}:2:3: unknown key \"reciever\": did you mean \"receiver\"?"
        )]
    );
    // A missing file is an error at the key.
    std::fs::write(&main, "\nnotify_file: nowhere.yml\n").unwrap();
    let e = config::load_file(&main).unwrap_err();
    let m = &e.messages()[0];
    assert!(m.contains(":2:14: notify_file: cannot read "), "{m}");
    assert!(m.contains("nowhere.yml"), "{m}");
}

#[test]
fn standalone_load_file_and_missing_secret_files_warn() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("alertmanager.yml");
    std::fs::write(
        &path,
        "global:\n  smtp_smarthost: mail:25\n  smtp_from: a@b\n  smtp_auth_password_file: missing-pw\nroute: {receiver: m}\nreceivers:\n  - name: m\n    email_configs: [{to: x@y}]\n    webhook_configs: [{url_file: missing-url}]\n",
    )
    .unwrap();
    let c = notify::load_file(&path).unwrap();
    assert_eq!(c.path.as_deref(), Some(path.as_path()));
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].contains(":4:28: global: smtp_auth_password_file "),
        "{}",
        w[0]
    );
    assert!(
        w[1].contains("receiver \"m\": webhook_configs[0]: url_file "),
        "{}",
        w[1]
    );
    assert!(w.iter().all(|w| w.contains("does not exist yet")));
}

#[test]
fn secrets_never_reach_the_redacted_yaml() {
    let c = load(&format!("{GOOD}/every-receiver.yml"));
    for secret in [
        "inline-mail-secret",
        "987654:inline-bot-token",
        "xoxb-inline-app-token",
        "inline-hook-password",
        "og-global-key",
        "vo-global-key",
        "pushover-user-key",
        "pushover-app-token",
        "inline-discord",
        "webex-bot-token",
        "inline-teams",
        "inline-mattermost",
    ] {
        assert!(
            !c.redacted_yaml.contains(secret),
            "{secret} leaked:\n{}",
            c.redacted_yaml
        );
        assert!(
            !format!("{c:?}").contains(secret),
            "{secret} leaked into Debug"
        );
    }
    assert!(c.redacted_yaml.contains("<secret>"));
    assert!(c.redacted_yaml.contains("secrets/telegram-token"));
}

#[test]
fn shipped_notify_fixture_is_referenced_by_a_main_config() {
    let rel = "config/testdata/good/notify-file.yml";
    let abs_dir = Path::new(ROOT).join("config/testdata/good");
    let c = config::load_str(&read(rel), rel, &abs_dir).unwrap();
    let n = c.notify.unwrap();
    assert!(n.path.unwrap().ends_with("notify/good/minimal.yml"));
    assert_eq!(n.receivers[0].integrations[0].display_name(), "log[0]");
}
