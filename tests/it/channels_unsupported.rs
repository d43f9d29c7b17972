//! Alertmanager receiver kinds watchpost does not deliver itself: each is
//! a load error naming the kind, the receiver and the place, and pointing
//! at the webhook receiver or an external Alertmanager, so a user's
//! alertmanager.yml either works or says why not. The supported kinds
//! load and build.

use std::path::Path;

use watchpost::config::notify;

use super::channels_common::{build_with, context};

fn yaml(kind_block: &str) -> String {
    format!("route:\n  receiver: team\nreceivers:\n  - name: team\n{kind_block}")
}

#[test]
fn refused_kinds_name_themselves_and_the_alternatives() {
    for (kind, body) in [
        (
            "sns_configs",
            "topic_arn: arn:aws:sns:eu-west-1:123456789012:alerts",
        ),
        ("wechat_configs", "corp_id: wx1\n        api_secret: s"),
        ("rocketchat_configs", "channel: '#ops'"),
        ("jira_configs", "project: OPS\n        issue_type: Bug"),
        ("incidentio_configs", "url: http://127.0.0.1:1/x"),
    ] {
        let y = yaml(&format!("    {kind}:\n      - {body}\n"));
        let e = notify::load_str(&y, "alertmanager.yml", Path::new("/"))
            .err()
            .unwrap_or_else(|| panic!("{kind} must not load"));
        let text = e.to_string();
        assert!(text.contains(kind), "{kind}: {text}");
        assert!(text.contains("receiver \"team\""), "{kind}: {text}");
        assert!(
            text.contains("not supported by watchpost"),
            "{kind}: {text}"
        );
        assert!(text.contains("webhook_configs"), "{kind}: {text}");
        assert!(text.contains("alerting.alertmanagers"), "{kind}: {text}");
        // Where: the key's line in the file (line 5, under the receiver).
        assert!(text.contains("alertmanager.yml:5:"), "{kind}: {text}");
    }
}

#[test]
fn an_unknown_kind_is_an_error_naming_it() {
    let y = yaml("    carrier_pigeon_configs:\n      - loft: north\n");
    let Err(e) = notify::load_str(&y, "alertmanager.yml", Path::new("/")) else {
        panic!("an unknown key must not load");
    };
    let text = e.to_string();
    assert!(text.contains("carrier_pigeon_configs"), "{text}");
    assert!(text.contains("alertmanager.yml:5:"), "{text}");
}

#[test]
fn every_supported_kind_loads_and_builds() {
    let y = yaml(
        "    email_configs: [{to: a@example.test, from: w@example.test, smarthost: '127.0.0.1:25'}]
    telegram_configs: [{bot_token: '1:x', chat_id: 1}]
    slack_configs: [{api_url: 'http://127.0.0.1:1/s'}]
    webhook_configs: [{url: 'http://127.0.0.1:1/w'}]
    pagerduty_configs: [{routing_key: k}]
    opsgenie_configs: [{api_key: k}]
    victorops_configs: [{api_key: k, routing_key: r}]
    pushover_configs: [{user_key: u, token: t}]
    discord_configs: [{webhook_url: 'http://127.0.0.1:1/d'}]
    msteams_configs: [{webhook_url: 'http://127.0.0.1:1/m'}]
    msteamsv2_configs: [{webhook_url: 'http://127.0.0.1:1/m2'}]
    webex_configs: [{room_id: r, http_config: {authorization: {credentials: c}}}]
    mattermost_configs: [{webhook_url: 'http://127.0.0.1:1/mm'}]
",
    );
    let built = build_with(&y, "team", &context());
    let mut names: Vec<String> = built.iter().map(|n| n.integration().to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "discord[0]",
            "email[0]",
            "mattermost[0]",
            "msteams[0]",
            "msteamsv2[0]",
            "opsgenie[0]",
            "pagerduty[0]",
            "pushover[0]",
            "slack[0]",
            "telegram[0]",
            "victorops[0]",
            "webex[0]",
            "webhook[0]",
        ]
    );
}
