//! The telegram channel against a Bot API stand-in on 127.0.0.1: the
//! exact `sendMessage` request (path with the token, chat_id, text,
//! parse_mode, message_thread_id, disable_notification), flood control
//! (429 with `parameters.retry_after`), "can't parse entities", splitting
//! at 4096 characters without breaking tags, `bot_token_file` read per
//! send, and the token never in an error.

use std::time::Duration;

use watchpost::model::Labels;
use watchpost::notify::NotificationData;

use super::channels_common::{Recorder, Seen, T0, alert, assert_no_secret, notification, one};

const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

/// What Telegram answers to a delivered `sendMessage`.
const SENT: &str = r#"{"ok":true,"result":{"message_id":7,"date":1700000000,"chat":{"id":-1001234567890,"type":"supergroup","title":"ops"},"text":"x"}}"#;

fn config(api: &str, extra: &str) -> String {
    format!(
        "route: {{receiver: r}}
receivers:
  - name: r
    telegram_configs:
      - api_url: {api}
        chat_id: -1001234567890
{extra}"
    )
}

fn with_token(api: &str, extra: &str) -> String {
    config(api, &format!("        bot_token: '{TOKEN}'\n{extra}"))
}

/// Telegram's method names are case-insensitive (the Bot API says so);
/// teloxide writes `SendMessage`.
fn assert_send_message(s: &Seen, token: &str) {
    assert_eq!(s.method, "POST");
    let want = format!("/bot{token}/sendMessage");
    assert!(
        s.path.eq_ignore_ascii_case(&want),
        "path {:?}, want {want:?}",
        s.path
    );
    assert!(
        s.path.starts_with(&format!("/bot{token}/")),
        "the token is case-sensitive: {:?}",
        s.path
    );
    assert!(
        s.header("content-type").starts_with("application/json"),
        "{:?}",
        s.headers
    );
}

fn tags(s: &str, name: &str) -> (usize, usize) {
    (
        s.matches(&format!("<{name}>")).count(),
        s.matches(&format!("</{name}>")).count(),
    )
}

#[tokio::test]
async fn send_message_carries_the_documented_fields() {
    let api = Recorder::start().await;
    api.answer(200, SENT);
    let n = one(&with_token(
        &api.url(""),
        "        message_thread_id: 42\n        disable_notifications: true\n",
    ));
    assert_eq!(n.integration(), "telegram[0]");
    let msg = NotificationData::new(
        "r",
        "{}:{alertname=\"DiskFull\"}",
        Labels::from_pairs([("alertname", "DiskFull")]),
        vec![alert(
            &[("alertname", "DiskFull"), ("instance", "db<1>")],
            "disk <90% & falling",
            None,
        )],
        "http://watchpost.test:9464",
        T0 + 1000,
    );
    n.send(&msg).await.unwrap();
    let s = api.only();
    assert_send_message(&s, TOKEN);
    let body = s.json();
    assert_eq!(body["chat_id"], -1001234567890i64, "{body}");
    assert_eq!(body["parse_mode"], "HTML", "{body}");
    assert_eq!(body["message_thread_id"], 42, "{body}");
    assert_eq!(body["disable_notification"], true, "{body}");
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("<b>🔥 Firing: 1</b>"), "{text}");
    // Values are escaped for HTML; the template's own tags are kept.
    assert!(text.contains("disk &lt;90% &amp; falling"), "{text}");
    assert!(!text.contains("db<1>"), "{text}");
}

#[tokio::test]
async fn defaults_send_neither_thread_nor_silence_and_plain_mode_sends_no_parse_mode() {
    let api = Recorder::start().await;
    api.answer(200, SENT);
    let n = one(&with_token(&api.url("/"), "        parse_mode: ''\n"));
    n.send(&notification("r", false)).await.unwrap();
    let body = api.only().json();
    let obj = body.as_object().unwrap();
    assert!(!obj.contains_key("parse_mode"), "{body}");
    assert!(!obj.contains_key("message_thread_id"), "{body}");
    assert!(
        !obj.contains_key("disable_notification") || body["disable_notification"] == false,
        "{body}"
    );
}

#[tokio::test]
async fn flood_control_is_retryable_with_retry_after() {
    let api = Recorder::start().await;
    api.answer(
        429,
        r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 17","parameters":{"retry_after":17}}"#,
    );
    let n = one(&with_token(&api.url(""), ""));
    let e = n.send(&notification("r", false)).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.reason(), "rate_limited");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(17)), "{e:?}");
    assert_no_secret(&e, TOKEN);
    assert_eq!(api.seen().len(), 1, "the channel itself must not retry");
}

#[tokio::test]
async fn cant_parse_entities_falls_back_to_plain_text_then_is_permanent() {
    let refused = r#"{"ok":false,"error_code":400,"description":"Bad Request: can't parse entities: Unsupported start tag \"foo\" at byte offset 0"}"#;

    // Refused once: the same part again without parse_mode, tags gone.
    let api = Recorder::start().await;
    api.answer(400, refused);
    api.answer(200, SENT);
    let n = one(&with_token(&api.url(""), ""));
    n.send(&notification("r", false)).await.unwrap();
    let seen = api.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let (first, second) = (seen[0].json(), seen[1].json());
    assert_eq!(first["parse_mode"], "HTML");
    assert!(second.get("parse_mode").is_none(), "{second}");
    let plain = second["text"].as_str().unwrap();
    assert!(plain.contains("🔥 Firing: 1"), "{plain}");
    assert!(!plain.contains("<b>"), "{plain}");

    // Refused as plain text too: permanent, named, no token.
    let api = Recorder::start().await;
    api.answer(400, refused);
    let n = one(&with_token(&api.url(""), ""));
    let e = n.send(&notification("r", false)).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert_eq!(e.reason(), "client_error");
    assert!(e.to_string().contains("can't parse entities"), "{e}");
    assert_no_secret(&e, TOKEN);
}

#[tokio::test]
async fn long_messages_are_split_at_4096_without_breaking_tags() {
    let api = Recorder::start().await;
    api.answer(200, SENT);
    let n = one(&with_token(
        &api.url(""),
        "        message: \"<b>{{ len .Alerts }} alerts</b>\\n\\n<pre>{{ range .Alerts }}{{ .Annotations.summary }}\\n{{ end }}</pre>\"\n",
    ));
    let alerts: Vec<_> = (0..300)
        .map(|i| {
            let inst = format!("host-{i:03}:9100");
            alert(
                &[("alertname", "HostDown"), ("instance", &inst)],
                &format!("alert {i:03} <{inst}> is down & unreachable"),
                None,
            )
        })
        .collect();
    let msg = NotificationData::new(
        "r",
        "{}:{alertname=\"HostDown\"}",
        Labels::from_pairs([("alertname", "HostDown")]),
        alerts,
        "http://watchpost.test:9464",
        T0 + 1000,
    );
    n.send(&msg).await.unwrap();
    let seen = api.seen();
    assert!(seen.len() >= 4, "{} parts", seen.len());
    let mut all = String::new();
    for (i, s) in seen.iter().enumerate() {
        assert_send_message(s, TOKEN);
        let body = s.json();
        assert_eq!(body["parse_mode"], "HTML");
        let text = body["text"].as_str().unwrap();
        let len16 = text.encode_utf16().count();
        assert!(len16 <= 4096, "part {i}: {len16} UTF-16 units");
        if i + 1 < seen.len() {
            assert!(text.chars().count() > 2000, "part {i} is needlessly short");
        }
        let (open, close) = tags(text, "pre");
        assert_eq!(
            (open, close),
            (1, 1),
            "part {i}: <pre> not closed in the part: {text}"
        );
        assert!(text.trim_end().ends_with("</pre>"), "part {i}");
        // No entity cut in half.
        for (pos, _) in text.match_indices('&') {
            let rest = &text[pos..];
            assert!(
                ["&lt;", "&gt;", "&amp;", "&quot;"]
                    .iter()
                    .any(|e| rest.starts_with(e)),
                "part {i}: broken entity at {pos}: {:?}",
                &rest[..rest.len().min(10)]
            );
        }
        all.push_str(text);
    }
    // Every line arrives exactly once, in order.
    let mut last = None;
    for i in 0..300 {
        let line = format!("alert {i:03} &lt;host-{i:03}:9100&gt; is down &amp; unreachable\n");
        assert_eq!(
            all.matches(&line).count(),
            1,
            "line {i}: {}",
            &all[..all.len().min(600)]
        );
        let at = all.find(&line).unwrap();
        assert!(last.is_none_or(|l| l < at), "line {i} out of order");
        last = Some(at);
    }
}

#[tokio::test]
async fn bot_token_file_is_read_on_every_send() {
    let api = Recorder::start().await;
    api.answer(200, SENT);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bot-token");
    std::fs::write(&file, "111:first-token-value\n").unwrap();
    let n = one(&config(
        &api.url(""),
        &format!("        bot_token_file: {}\n", file.display()),
    ));
    n.send(&notification("r", false)).await.unwrap();
    std::fs::write(&file, "222:second-token-value\n").unwrap();
    n.send(&notification("r", false)).await.unwrap();
    let seen = api.seen();
    assert_eq!(seen.len(), 2);
    assert_send_message(&seen[0], "111:first-token-value");
    assert_send_message(&seen[1], "222:second-token-value");
    std::fs::remove_file(&file).unwrap();
    let e = n.send(&notification("r", false)).await.unwrap_err();
    assert!(!e.is_retryable());
    assert_eq!(e.reason(), "secret_file");
    assert!(e.to_string().contains("bot_token"), "{e}");
}

#[tokio::test]
async fn the_token_never_appears_in_errors() {
    // Unreachable API: reqwest's error names the URL, which holds the token.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let n = one(&with_token(&format!("http://127.0.0.1:{closed}"), ""));
    let e = n.send(&notification("r", false)).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_no_secret(&e, TOKEN);

    // A token Telegram rejects, and a peer that echoes the request path.
    let api = Recorder::start().await;
    api.answer(
        401,
        r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
    );
    let n = one(&with_token(&api.url(""), ""));
    let e = n.send(&notification("r", false)).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("bot_token"), "{e}");
    assert_no_secret(&e, TOKEN);

    let api = Recorder::start().await;
    api.answer(
        400,
        &format!(
            r#"{{"ok":false,"error_code":400,"description":"Bad Request: chat not found for /bot{TOKEN}/sendMessage"}}"#
        ),
    );
    let n = one(&with_token(&api.url(""), ""));
    let e = n.send(&notification("r", false)).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("chat not found"), "{e}");
    assert_no_secret(&e, TOKEN);
    assert_no_secret(&e, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw");
}

#[tokio::test]
async fn markdown_v2_escapes_values_but_not_the_template() {
    let api = Recorder::start().await;
    api.answer(200, SENT);
    let n = one(&with_token(
        &api.url(""),
        "        parse_mode: MarkdownV2\n        message: '*{{ .CommonLabels.alertname }}* {{ .CommonAnnotations.summary }}'\n",
    ));
    let msg = NotificationData::new(
        "r",
        "{}:{alertname=\"Disk_Full\"}",
        Labels::from_pairs([("alertname", "Disk_Full")]),
        vec![alert(
            &[("alertname", "Disk_Full")],
            "usage > 90% (db-1.example) [x]!",
            None,
        )],
        "http://watchpost.test:9464",
        T0 + 1000,
    );
    n.send(&msg).await.unwrap();
    let body = api.only().json();
    assert_eq!(body["parse_mode"], "MarkdownV2");
    assert_eq!(
        body["text"],
        r"*Disk\_Full* usage \> 90% \(db\-1\.example\) \[x\]\!"
    );
}
