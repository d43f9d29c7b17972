//! Item 9 across the config and the channels: a `*_file` secret that is
//! missing is a load warning and a clear send failure, not a load error;
//! the config as shown (`redacted_yaml`, what the status API serves)
//! holds no secret of any channel; a template glob matching nothing is
//! not an error, while a matching file's `define` replaces the default.

use std::path::Path;

use watchpost::channels::{ChannelContext, Templates};
use watchpost::config::notify;

use super::channels_common::{Recorder, build_with, notification};

#[tokio::test]
async fn a_missing_secret_file_warns_at_load_and_fails_the_send_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-yet-there");
    let y = format!(
        "route: {{receiver: r}}\nreceivers:\n  - name: r\n    webhook_configs:\n      - url_file: {}\n",
        missing.display()
    );
    let cfg = notify::load_str(&y, "alertmanager.yml", Path::new("/")).unwrap();
    let warned = cfg
        .warnings
        .iter()
        .map(ToString::to_string)
        .find(|w| w.contains(&missing.display().to_string()));
    assert!(
        warned.is_some(),
        "no warning names the file: {:?}",
        cfg.warnings
    );

    let n = build_with(&y, "r", &super::channels_common::context()).remove(0);
    let e = n.send(&notification("r", false)).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert_eq!(e.reason(), "secret_file");
    assert!(
        e.to_string().contains(&missing.display().to_string()),
        "{e}"
    );

    // Created later: the next send uses it, no reload.
    let rec = Recorder::start().await;
    std::fs::write(&missing, rec.url("/late")).unwrap();
    n.send(&notification("r", false)).await.unwrap();
    assert_eq!(rec.only().path, "/late");
}

#[test]
fn the_shown_config_holds_no_secret() {
    let secrets = [
        "smtp-Pa55word-1",
        "cram-S3cret-2",
        "123:telegram-T0ken-3",
        "https://hooks.slack.test/services/T1/B2/slack-W3bhook-4",
        "xoxb-slack-App-5",
        "https://hooks.test/webhook-Url-6",
        "pagerduty-R0uting-7",
        "opsgenie-Ap1-8",
        "victorops-Ap1-9",
        "pushover-Us3r-10",
        "pushover-T0ken-11",
        "https://discord.test/api/webhooks/1/discord-12",
        "https://teams.test/webhook/teams-13",
        "https://teams.test/workflow/teamsv2-14",
        "https://mattermost.test/hooks/mattermost-15",
        "webex-Cred-16",
        "basic-Pa55-17",
    ];
    let [
        smtp,
        cram,
        tg,
        slack,
        slack_app,
        hook,
        pd,
        og,
        vo,
        po_user,
        po_token,
        discord,
        teams,
        teams2,
        mm,
        webex,
        basic,
    ] = secrets;
    let y = format!(
        "global:
  smtp_smarthost: '127.0.0.1:25'
  smtp_from: w@example.test
  smtp_auth_username: alice
  smtp_auth_password: '{smtp}'
route: {{receiver: r}}
receivers:
  - name: r
    email_configs: [{{to: a@example.test, auth_secret: '{cram}'}}]
    telegram_configs: [{{bot_token: '{tg}', chat_id: 1}}]
    slack_configs: [{{api_url: '{slack}'}}, {{app_token: '{slack_app}'}}]
    webhook_configs: [{{url: '{hook}', http_config: {{basic_auth: {{username: u, password: '{basic}'}}}}}}]
    pagerduty_configs: [{{routing_key: '{pd}'}}]
    opsgenie_configs: [{{api_key: '{og}'}}]
    victorops_configs: [{{api_key: '{vo}', routing_key: r}}]
    pushover_configs: [{{user_key: '{po_user}', token: '{po_token}'}}]
    discord_configs: [{{webhook_url: '{discord}'}}]
    msteams_configs: [{{webhook_url: '{teams}'}}]
    msteamsv2_configs: [{{webhook_url: '{teams2}'}}]
    mattermost_configs: [{{webhook_url: '{mm}'}}]
    webex_configs: [{{room_id: x, http_config: {{authorization: {{credentials: '{webex}'}}}}}}]
"
    );
    let cfg =
        notify::load_str(&y, "alertmanager.yml", Path::new("/")).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        cfg.redacted_yaml.contains("telegram_configs") && cfg.redacted_yaml.contains("alice"),
        "the shown config keeps what is not secret:\n{}",
        cfg.redacted_yaml
    );
    for s in secrets {
        assert!(
            !cfg.redacted_yaml.contains(s),
            "{s:?} is shown:\n{}",
            cfg.redacted_yaml
        );
    }
    // Built channels print no secret either (Debug of the receiver).
    let shown = format!("{:?}", cfg.receivers);
    for s in secrets {
        assert!(!shown.contains(s), "{s:?} in Debug output");
    }
}

#[tokio::test]
async fn template_globs_matching_nothing_are_fine_and_files_override_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("nothing-here/*.tmpl").display().to_string();
    Templates::load(std::slice::from_ref(&none)).expect("an empty glob is not an error");

    std::fs::write(
        dir.path().join("ours.tmpl"),
        r#"{{ define "webhook.test.title" }}custom {{ .CommonLabels.alertname }}{{ end }}
{{ define "slack.default.title" }}overridden {{ .Status }}{{ end }}"#,
    )
    .unwrap();
    let pattern = dir.path().join("*.tmpl").display().to_string();
    let t = Templates::load(&[none, pattern]).unwrap();
    assert!(t.contains("webhook.test.title"));
    let mut ctx = ChannelContext::new(t);
    ctx.send_timeout = std::time::Duration::from_secs(5);
    let rec = Recorder::start().await;
    let y = format!(
        "route: {{receiver: r}}\nreceivers:\n  - name: r\n    slack_configs:\n      - api_url: {}\n",
        rec.url("/s")
    );
    let n = build_with(&y, "r", &ctx).remove(0);
    n.send(&notification("r", false)).await.unwrap();
    assert_eq!(
        rec.only().json()["attachments"][0]["title"],
        "overridden firing"
    );
}
