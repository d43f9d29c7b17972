//! `watchpost notify routes` and `watchpost notify test` as a user runs
//! them: against an alertmanager.yml (`--notify.file`) or the `notify:`
//! section of a watchpost.yml (`--config.file`).

use std::process::{Command, Output};

const NOTIFY: &str = r#"route:
  receiver: default
  routes:
    - receiver: team-db
      matchers: ['team="db"']
      continue: true
    - receiver: pager
      matchers: ['severity=~"page|critical"']
receivers:
  - name: default
    log_configs: [{}]
  - name: team-db
    webhook_configs: [{url: "http://127.0.0.1:1/hook"}]
  - name: pager
"#;

fn watchpost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn notify_routes_prints_receivers_like_amtool() {
    let dir = tempfile::tempdir().unwrap();
    let am = dir.path().join("alertmanager.yml");
    std::fs::write(&am, NOTIFY).unwrap();
    let am = am.to_str().unwrap();
    let out = watchpost(&[
        "notify",
        "routes",
        "--notify.file",
        am,
        "--labels",
        "alertname=Down,team=db,severity=critical",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "team-db,pager\n");

    // The same config inline in a watchpost.yml.
    let indented: String = NOTIFY.lines().map(|l| format!("  {l}\n")).collect();
    let wp = dir.path().join("watchpost.yml");
    std::fs::write(&wp, format!("notify:\n{indented}")).unwrap();
    let wp = wp.to_str().unwrap();
    let out = watchpost(&[
        "notify",
        "routes",
        "--config.file",
        wp,
        "--labels",
        "team=web",
        "-v",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().next(), Some("default"), "{stdout}");
    assert!(stdout.contains("  default  route  id="), "{stdout}");

    let out = watchpost(&[
        "notify",
        "routes",
        "--notify.file",
        am,
        "--labels",
        "team=db",
        "--verify.receivers",
        "default",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("expected receivers \"default\", got \"team-db\""),
        "{}",
        text(&out.stderr)
    );

    let out = watchpost(&["notify", "routes", "--notify.file", am, "--labels", "team"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("watchpost: --labels \"team\": "),
        "{}",
        text(&out.stderr)
    );

    let plain = dir.path().join("plain.yml");
    std::fs::write(&plain, "scrape_configs: []\n").unwrap();
    let out = watchpost(&[
        "notify",
        "routes",
        "--config.file",
        plain.to_str().unwrap(),
        "--labels",
        "a=b",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("has no notify: section and no notify_file"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn notify_test_sends_through_the_receiver_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let am = dir.path().join("alertmanager.yml");
    std::fs::write(&am, NOTIFY).unwrap();
    let am = am.to_str().unwrap();

    let out = watchpost(&["notify", "test", "--notify.file", am, "default"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("[FIRING:1] WatchpostTestNotification ")
            && lines[0].contains("receiver=default"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("log[0]: delivered in ") && lines[1].ends_with(" ms"),
        "{stdout}"
    );

    let out = watchpost(&["notify", "test", "--notify.file", am, "pager"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "receiver \"pager\" has no integrations: nothing was sent\n"
    );

    let out = watchpost(&["notify", "test", "--notify.file", am, "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("receiver \"nobody\" is not defined in"),
        "{}",
        text(&out.stderr)
    );
}
