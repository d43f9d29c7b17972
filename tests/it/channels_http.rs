//! The HTTP channels against a recording stand-in on 127.0.0.1, one test
//! per service: the request as the service documents it (method, path,
//! auth header, content type, JSON or form keys), the firing/resolved
//! variants where the service distinguishes them, and item 9: the
//! integration's secret never in an error, even when the peer echoes it
//! or the connection fails on a URL that holds it.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use watchpost::channels::alertmanager::AlertmanagerForwarder;
use watchpost::notify::Notifier;

use super::channels_common::{
    Recorder, assert_failures_hide, assert_no_secret, build_with, closed_port, context,
    notification, one,
};

fn receiver(kind: &str, body: &str) -> String {
    format!("route: {{receiver: r}}\nreceivers:\n  - name: r\n    {kind}:\n      - {body}")
}

/// Sends to a URL whose secret part sits on a closed port: retryable,
/// and the URL (so the secret) is not in the error.
async fn assert_unreachable_hides(yaml: &str, secret: &str) {
    let n = one(yaml);
    let e = n.send(&notification("r", false)).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.reason(), "connection", "{e}");
    assert_no_secret(&e, secret);
}

#[tokio::test]
async fn slack_incoming_webhook() {
    let rec = Recorder::start().await;
    let secret = "B0123456789/Xy7sEcReTwEbHoOkToKeN";
    let yaml = |base: &str| {
        receiver(
            "slack_configs",
            &format!(
                "api_url: {base}/services/T0000/{secret}\n        channel: '#ops'\n        username: watchpost"
            ),
        )
    };
    let n = one(&yaml(&rec.url("")));
    assert_eq!(n.integration(), "slack[0]");
    n.send(&notification("r", false)).await.unwrap();
    let s = rec.only();
    assert_eq!(s.method, "POST");
    assert_eq!(s.path, format!("/services/T0000/{secret}"));
    assert!(s.header("content-type").starts_with("application/json"));
    assert_eq!(s.header("authorization"), "");
    let b = s.json();
    assert_eq!(b["channel"], "#ops");
    assert_eq!(b["username"], "watchpost");
    let att = &b["attachments"][0];
    assert_eq!(att["color"], "danger", "{b}");
    assert!(att["title"].as_str().unwrap().contains("HostDown"), "{b}");
    assert!(
        att["fallback"].as_str().is_some_and(|f| !f.is_empty()),
        "{b}"
    );
    assert!(att["mrkdwn_in"].is_array(), "{b}");

    rec.clear_seen();
    n.send(&notification("r", true)).await.unwrap();
    assert_eq!(rec.only().json()["attachments"][0]["color"], "good");

    assert_failures_hide(n.as_ref(), &rec, &notification("r", false), secret).await;
    let e = {
        rec.answer_only(404, "no_service");
        n.send(&notification("r", false)).await.unwrap_err()
    };
    assert!(
        e.to_string().contains("api_url"),
        "errors name the key: {e}"
    );
    assert_unreachable_hides(
        &yaml(&format!("http://127.0.0.1:{}", closed_port())),
        secret,
    )
    .await;
}

#[tokio::test]
async fn slack_chat_post_message() {
    let rec = Recorder::start().await;
    let token = "xoxb-1234-5678-SlAcKbOtToKeN";
    let n = one(&receiver(
        "slack_configs",
        &format!(
            "app_token: {token}\n        app_url: {}\n        channel: '#ops'",
            rec.url("/api/chat.postMessage")
        ),
    ));
    rec.answer(200, r#"{"ok":true,"channel":"C1","ts":"1.2"}"#);
    n.send(&notification("r", false)).await.unwrap();
    let s = rec.only();
    assert_eq!(s.method, "POST");
    assert_eq!(s.path, "/api/chat.postMessage");
    assert_eq!(s.header("authorization"), format!("Bearer {token}"));
    assert!(s.header("content-type").starts_with("application/json"));
    let b = s.json();
    assert_eq!(b["channel"], "#ops");
    assert!(b["attachments"][0]["title"].is_string(), "{b}");

    // chat.postMessage reports refusals inside a 200.
    rec.answer_only(200, r#"{"ok":false,"error":"channel_not_found"}"#);
    let e = n.send(&notification("r", false)).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("channel_not_found"), "{e}");
    assert_no_secret(&e, token);
    assert_failures_hide(n.as_ref(), &rec, &notification("r", false), token).await;
}

#[tokio::test]
async fn webhook_version_4_with_max_alerts() {
    let rec = Recorder::start().await;
    let secret = "hook-s3cr3t-t0ken";
    let n = one(&receiver(
        "webhook_configs",
        &format!(
            "url: {}\n        max_alerts: 1",
            rec.url(&format!("/hook?token={secret}"))
        ),
    ));
    assert_eq!(n.integration(), "webhook[0]");
    n.send(&notification("r", false)).await.unwrap();
    let s = rec.only();
    assert_eq!((s.method.as_str(), s.path.as_str()), ("POST", "/hook"));
    assert_eq!(s.query, format!("token={secret}"));
    assert!(s.header("content-type").starts_with("application/json"));
    let b = s.json();
    assert_eq!(b["version"], "4");
    assert_eq!(b["receiver"], "r");
    assert_eq!(b["status"], "firing");
    assert_eq!(b["groupKey"], "{}:{alertname=\"HostDown\"}");
    assert_eq!(
        b["groupLabels"],
        serde_json::json!({"alertname": "HostDown"})
    );
    assert_eq!(
        b["commonLabels"],
        serde_json::json!({"alertname": "HostDown", "job": "node"})
    );
    assert_eq!(b["externalURL"], "http://watchpost.test:9464");
    assert_eq!(b["truncatedAlerts"], 1, "{b}");
    let alerts = b["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "max_alerts: 1");
    let a = &alerts[0];
    let mut keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "annotations",
            "endsAt",
            "fingerprint",
            "generatorURL",
            "labels",
            "startsAt",
            "status"
        ]
    );
    assert_eq!(a["startsAt"], "2023-11-14T22:13:20Z");
    assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16, "{a}");

    // 429 with Retry-After: retryable, carrying the wait.
    rec.answer_with((429, "slow down".into(), vec![("retry-after", "7".into())]));
    let e = n.send(&notification("r", false)).await.unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)), "{e:?}");

    assert_failures_hide(n.as_ref(), &rec, &notification("r", false), secret).await;
    assert_unreachable_hides(
        &receiver(
            "webhook_configs",
            &format!(
                "url: http://127.0.0.1:{}/hook?token={secret}",
                closed_port()
            ),
        ),
        secret,
    )
    .await;
}

#[tokio::test]
async fn webhook_url_file_is_read_on_every_send() {
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("url");
    std::fs::write(&file, rec.url("/first")).unwrap();
    let n = one(&receiver(
        "webhook_configs",
        &format!("url_file: {}", file.display()),
    ));
    n.send(&notification("r", false)).await.unwrap();
    std::fs::write(&file, format!("{}\n", rec.url("/second"))).unwrap();
    n.send(&notification("r", false)).await.unwrap();
    let paths: Vec<String> = rec.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/first", "/second"]);
}

#[tokio::test]
async fn alertmanager_forwarder_api_v2() {
    let rec = Recorder::start().await;
    let password = "am-basic-p4ssw0rd";
    let yaml = |targets: &str| {
        format!(
            "alerting:
  alertmanagers:
    - path_prefix: /am/
      basic_auth: {{username: prom, password: {password}}}
      static_configs:
        - targets: [{targets}]
"
        )
    };
    let forwarder = |yaml: &str| {
        let cfg = watchpost::config::load_str(yaml, "prometheus.yml", Path::new("/"))
            .unwrap_or_else(|e| panic!("{e}"));
        let set = watchpost::config::parse_alerting(cfg.alerting.as_ref().unwrap(), Path::new("/"))
            .unwrap();
        AlertmanagerForwarder::new(0, &set.alertmanagers[0]).unwrap()
    };
    // One of the two is down: the set still got the alerts.
    let n = forwarder(&yaml(&format!(
        "'127.0.0.1:{}', '127.0.0.1:{}'",
        rec.addr.port(),
        closed_port()
    )));
    assert_eq!(n.integration(), "alertmanager[0]");
    assert!(n.send_resolved());
    n.send(&notification("r", false)).await.unwrap();
    let s = rec.only();
    assert_eq!(
        (s.method.as_str(), s.path.as_str()),
        ("POST", "/am/api/v2/alerts")
    );
    assert!(s.header("content-type").starts_with("application/json"));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("prom:{password}"));
    assert_eq!(s.header("authorization"), format!("Basic {basic}"));
    let b = s.json();
    let alerts = b.as_array().expect("postableAlerts is an array");
    assert_eq!(alerts.len(), 2);
    let firing = &alerts[0];
    assert_eq!(firing["labels"]["instance"], "a:9100");
    assert_eq!(firing["annotations"]["summary"], "a:9100 is down");
    assert_eq!(firing["startsAt"], "2023-11-14T22:13:20Z");
    assert!(firing["generatorURL"].is_string());
    assert!(firing.get("endsAt").is_none(), "{firing}");
    assert_eq!(alerts[1]["endsAt"], "2023-11-14T22:13:22Z");

    // Every Alertmanager refuses: a failure without the password.
    let n = forwarder(&yaml(&format!("'127.0.0.1:{}'", rec.addr.port())));
    assert_failures_hide(&n, &rec, &notification("r", false), password).await;
}

#[tokio::test]
async fn pagerduty_events_v2() {
    let rec = Recorder::start().await;
    let key = "R0UT1NGk3y0000000000000000000042";
    let n = one(&receiver(
        "pagerduty_configs",
        &format!(
            "routing_key: {key}\n        url: {}\n        severity: critical\n        details: {{team: ops}}",
            rec.url("/v2/enqueue")
        ),
    ));
    rec.answer(
        202,
        r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#,
    );
    n.send(&notification("r", false)).await.unwrap();
    n.send(&notification("r", true)).await.unwrap();
    let seen = rec.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(
            (s.method.as_str(), s.path.as_str()),
            ("POST", "/v2/enqueue")
        );
        assert!(s.header("content-type").starts_with("application/json"));
    }
    let (t, r) = (seen[0].json(), seen[1].json());
    assert_eq!(t["routing_key"], key);
    assert_eq!(t["event_action"], "trigger");
    assert_eq!(r["event_action"], "resolve");
    assert!(t["dedup_key"].as_str().is_some_and(|k| !k.is_empty()));
    assert_eq!(
        t["dedup_key"], r["dedup_key"],
        "the incident follows the group"
    );
    let p = &t["payload"];
    assert!(p["summary"].as_str().unwrap().contains("HostDown"), "{t}");
    assert!(p["summary"].as_str().unwrap().len() <= 1024);
    assert!(p["source"].as_str().is_some_and(|s| !s.is_empty()), "{t}");
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["custom_details"]["team"], "ops");
    assert_failures_hide(n.as_ref(), &rec, &notification("r", false), key).await;
}

#[tokio::test]
async fn opsgenie_alert_api() {
    let rec = Recorder::start().await;
    let key = "0p5g3n1e-ap1-k3y-1234";
    let n = one(&receiver(
        "opsgenie_configs",
        &format!(
            "api_key: {key}\n        api_url: {}\n        priority: P2\n        tags: 'infra, node'\n        responders: [{{type: team, name: ops}}]",
            rec.url("/")
        ),
    ));
    rec.answer(
        202,
        r#"{"result":"Request will be processed","requestId":"1"}"#,
    );
    n.send(&notification("r", false)).await.unwrap();
    n.send(&notification("r", true)).await.unwrap();
    let seen = rec.seen();
    assert_eq!(seen.len(), 2);
    let create = &seen[0];
    assert_eq!(
        (create.method.as_str(), create.path.as_str()),
        ("POST", "/v2/alerts")
    );
    assert_eq!(create.header("authorization"), format!("GenieKey {key}"));
    assert!(
        create
            .header("content-type")
            .starts_with("application/json")
    );
    let b = create.json();
    let alias = b["alias"].as_str().unwrap().to_string();
    assert!(!alias.is_empty());
    assert!(b["message"].as_str().unwrap().contains("HostDown"), "{b}");
    assert_eq!(b["priority"], "P2");
    assert_eq!(b["tags"], serde_json::json!(["infra", "node"]));
    assert_eq!(
        b["responders"],
        serde_json::json!([{"type": "team", "name": "ops"}])
    );
    let close = &seen[1];
    assert_eq!(close.method, "POST");
    assert_eq!(close.path, format!("/v2/alerts/{alias}/close"));
    assert_eq!(close.query, "identifierType=alias");
    assert_eq!(close.header("authorization"), format!("GenieKey {key}"));
    assert_failures_hide(n.as_ref(), &rec, &notification("r", false), key).await;
}

#[tokio::test]
async fn victorops_rest_endpoint() {
    let rec = Recorder::start().await;
    let key = "v1ct0r0ps-ap1-k3y-5678";
    let yaml = |base: &str| {
        receiver(
            "victorops_configs",
            &format!(
                "api_key: {key}\n        api_url: {base}/integrations/generic/20131114/alert/\n        routing_key: ops-team"
            ),
        )
    };
    let n = one(&yaml(&rec.url("")));
    n.send(&notification("r", false)).await.unwrap();
    n.send(&notification("r", true)).await.unwrap();
    let seen = rec.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(
        seen[0].path,
        format!("/integrations/generic/20131114/alert/{key}/ops-team")
    );
    assert!(
        seen[0]
            .header("content-type")
            .starts_with("application/json")
    );
    let (t, r) = (seen[0].json(), seen[1].json());
    assert_eq!(t["message_type"], "CRITICAL");
    assert_eq!(r["message_type"], "RECOVERY");
    assert_eq!(t["entity_id"], r["entity_id"]);
    assert!(
        t["entity_display_name"]
            .as_str()
            .unwrap()
            .contains("HostDown"),
        "{t}"
    );
    assert!(t["state_message"].is_string());
    assert!(t["monitoring_tool"].is_string());
    assert_failures_hide(n.as_ref(), &rec, &notification("r", false), key).await;
    assert_unreachable_hides(&yaml(&format!("http://127.0.0.1:{}", closed_port())), key).await;
}

#[tokio::test]
async fn pushover_messages_api() {
    let rec = Recorder::start().await;
    let (user, token) = (
        "uQiRzpo4DXghDmr9QzzfQu27cmVRsG",
        "azGDORePK8gMaC0QOYAMyEEuzJnyUi",
    );
    let mut ctx = context();
    ctx.pushover_api_url = rec.url("/1/messages.json");
    let yaml = receiver(
        "pushover_configs",
        &format!(
            "user_key: {user}\n        token: {token}\n        priority: '2'\n        retry: 1m\n        expire: 1h"
        ),
    );
    let n = build_with(&yaml, "r", &ctx).remove(0);
    rec.answer(
        200,
        r#"{"status":1,"request":"647d2300-702c-4b38-8b2f-d56326ae460b"}"#,
    );
    n.send(&notification("r", false)).await.unwrap();
    let s = rec.only();
    assert_eq!(
        (s.method.as_str(), s.path.as_str()),
        ("POST", "/1/messages.json")
    );
    assert_eq!(
        s.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let f = s.form();
    assert_eq!(f["token"], token);
    assert_eq!(f["user"], user);
    assert!(f["title"].contains("HostDown"), "{f:?}");
    assert!(!f["message"].is_empty());
    assert_eq!(f["priority"], "2");
    assert_eq!((f["retry"].as_str(), f["expire"].as_str()), ("60", "3600"));
    assert!(f["timestamp"].parse::<i64>().is_ok());
    assert_failures_hide(n.as_ref(), &rec, &notification("r", false), token).await;
    assert_failures_hide(n.as_ref(), &rec, &notification("r", false), user).await;
}

#[tokio::test]
async fn discord_webhook() {
    let rec = Recorder::start().await;
    let secret = "D1sc0rdW3bh00kT0k3n_abcdef";
    let yaml = |base: &str| {
        receiver(
            "discord_configs",
            &format!(
                "webhook_url: {base}/api/webhooks/1234567890/{secret}\n        username: watchpost"
            ),
        )
    };
    let n = one(&yaml(&rec.url("")));
    rec.answer(204, "");
    n.send(&notification("r", false)).await.unwrap();
    n.send(&notification("r", true)).await.unwrap();
    let seen = rec.seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, format!("/api/webhooks/1234567890/{secret}"));
    assert!(
        seen[0]
            .header("content-type")
            .starts_with("application/json")
    );
    let (t, r) = (seen[0].json(), seen[1].json());
    assert_eq!(t["username"], "watchpost");
    let embed = &t["embeds"][0];
    assert!(embed["title"].as_str().unwrap().contains("HostDown"), "{t}");
    assert!(embed["description"].is_string());
    assert!(embed["color"].is_u64());
    assert_ne!(
        embed["color"], r["embeds"][0]["color"],
        "firing and resolved differ"
    );
    assert_failures_hide(n.as_ref(), &rec, &notification("r", false), secret).await;
    assert_unreachable_hides(
        &yaml(&format!("http://127.0.0.1:{}", closed_port())),
        secret,
    )
    .await;
}

#[tokio::test]
async fn msteams_connector_card_and_v2_adaptive_card() {
    let rec = Recorder::start().await;
    let secret = "IncomingWebhook/5ecret5ignature0123/abc";
    let n = one(&receiver(
        "msteams_configs",
        &format!(
            "webhook_url: {}",
            rec.url(&format!("/webhookb2/g@t/{secret}"))
        ),
    ));
    // Connector webhooks answer "1", and refusals with 200 and a text.
    rec.answer(200, "1");
    n.send(&notification("r", false)).await.unwrap();
    let s = rec.only();
    assert_eq!(
        (s.method.as_str(), s.path.as_str()),
        ("POST", &*format!("/webhookb2/g@t/{secret}"))
    );
    assert!(s.header("content-type").starts_with("application/json"));
    let b = s.json();
    assert_eq!(b["@type"], "MessageCard");
    assert_eq!(b["@context"], "http://schema.org/extensions");
    assert!(b["title"].as_str().unwrap().contains("HostDown"), "{b}");
    assert!(b["summary"].is_string() && b["text"].is_string());
    assert!(b["themeColor"].is_string());
    rec.answer_only(200, "Summary or Text is required.");
    let e = n.send(&notification("r", false)).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("Summary or Text is required"), "{e}");
    assert_failures_hide(
        n.as_ref(),
        &rec,
        &notification("r", false),
        "5ecret5ignature0123",
    )
    .await;

    let rec = Recorder::start().await;
    let n = one(&receiver(
        "msteamsv2_configs",
        &format!("webhook_url: {}", rec.url(&format!("/workflows/{secret}"))),
    ));
    assert_eq!(n.integration(), "msteamsv2[0]");
    rec.answer(202, "");
    n.send(&notification("r", false)).await.unwrap();
    let b = rec.only().json();
    assert_eq!(b["type"], "message");
    let att = &b["attachments"][0];
    assert_eq!(
        att["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(att["content"]["type"], "AdaptiveCard");
    assert!(
        att["content"]["body"][0]["text"]
            .as_str()
            .unwrap()
            .contains("HostDown")
    );
    assert_failures_hide(
        n.as_ref(),
        &rec,
        &notification("r", false),
        "5ecret5ignature0123",
    )
    .await;
}

#[tokio::test]
async fn mattermost_incoming_webhook() {
    let rec = Recorder::start().await;
    let secret = "m4tt3rm0stk3yxyz";
    let n = one(&receiver(
        "mattermost_configs",
        &format!(
            "webhook_url: {}\n        channel: town-square\n        username: watchpost\n        priority: {{priority: urgent, requested_ack: true}}",
            rec.url(&format!("/hooks/{secret}"))
        ),
    ));
    n.send(&notification("r", false)).await.unwrap();
    let s = rec.only();
    assert_eq!(
        (s.method.as_str(), s.path.as_str()),
        ("POST", &*format!("/hooks/{secret}"))
    );
    assert!(s.header("content-type").starts_with("application/json"));
    let b = s.json();
    assert_eq!(b["channel"], "town-square");
    assert_eq!(b["username"], "watchpost");
    assert!(b["text"].as_str().unwrap().contains("HostDown"), "{b}");
    assert_eq!(b["priority"]["priority"], "urgent");
    assert_eq!(b["priority"]["requested_ack"], true);
    assert_failures_hide(n.as_ref(), &rec, &notification("r", false), secret).await;
}

#[tokio::test]
async fn webex_messages_api() {
    let rec = Recorder::start().await;
    let token = "W3bexB0tT0ken_ZmFrZQ";
    let n = one(&receiver(
        "webex_configs",
        &format!(
            "api_url: {}\n        room_id: Y2lzY29zcGFyazovL3VzL1JPT00vYmJjZWIxYWQ\n        http_config: {{authorization: {{credentials: {token}}}}}",
            rec.url("/v1/messages")
        ),
    ));
    n.send(&notification("r", false)).await.unwrap();
    let s = rec.only();
    assert_eq!(
        (s.method.as_str(), s.path.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(s.header("authorization"), format!("Bearer {token}"));
    assert!(s.header("content-type").starts_with("application/json"));
    let b = s.json();
    assert_eq!(b["roomId"], "Y2lzY29zcGFyazovL3VzL1JPT00vYmJjZWIxYWQ");
    assert!(b["markdown"].as_str().unwrap().contains("HostDown"), "{b}");
    assert_failures_hide(n.as_ref(), &rec, &notification("r", false), token).await;
}
