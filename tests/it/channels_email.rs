//! The email channel against a real SMTP server on loopback (aiosmtpd,
//! run by `smtp_server`): plain, STARTTLS with a test CA,
//! implicit TLS on port 465, AUTH PLAIN / CRAM-MD5 success and 535
//! failure, the message's envelope, headers and MIME parts, and how each
//! failure is classified, with the password never in the error.

use watchpost::notify::{NotificationData, SendError};

use super::channels_common::{T0, alert, assert_no_secret, notification, one};
use super::smtp_server::{Mail, Options, SmtpServer, TlsMode, pki};

fn config(port: u16, extra: &str) -> String {
    config_at(&format!("127.0.0.1:{port}"), extra)
}

fn config_at(smarthost: &str, extra: &str) -> String {
    format!(
        "route: {{receiver: r}}
receivers:
  - name: r
    email_configs:
      - to: 'ops@example.test, oncall@example.test'
        from: 'Watchpost <watchpost@example.test>'
        smarthost: {smarthost}
        hello: watchpost.example.test
{extra}"
    )
}

fn escaped_notification() -> NotificationData {
    NotificationData::new(
        "r",
        "{}:{alertname=\"DiskFull\"}",
        watchpost::model::Labels::from_pairs([("alertname", "DiskFull")]),
        vec![alert(
            &[("alertname", "DiskFull"), ("instance", "db<1>")],
            "disk <90% & falling",
            None,
        )],
        "http://watchpost.test:9464",
        T0 + 1000,
    )
}

#[tokio::test]
async fn plain_session_envelope_headers_and_parts() {
    let server = SmtpServer::start(Options::default()).await;
    let n = one(&config(
        server.addr.port(),
        "        require_tls: false
        headers:
          X-Team: ops
          Subject: 'alert {{ .CommonLabels.alertname }} ({{ .Status }})'
        text: '{{ template \"email.default.text\" . }}'
",
    ));
    assert_eq!(n.integration(), "email[0]");
    n.send(&escaped_notification()).await.unwrap();
    let got = server.messages();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.hello, "watchpost.example.test");
    assert_eq!(m.mail_from, "watchpost@example.test");
    assert_eq!(m.rcpt_to, ["ops@example.test", "oncall@example.test"]);
    assert!(!m.tls && m.auth_user.is_none());

    let mail = Mail::parse(&m.data);
    assert_eq!(mail.header("Subject"), Some("alert DiskFull (firing)"));
    assert_eq!(
        mail.header("From"),
        Some("Watchpost <watchpost@example.test>")
    );
    assert_eq!(
        mail.header("To"),
        Some("ops@example.test, oncall@example.test")
    );
    assert_eq!(mail.header("X-Team"), Some("ops"));
    assert!(
        mail.header("Date").is_some_and(|d| d.ends_with("+0000")),
        "{:?}",
        mail.headers
    );
    let id = mail.header("Message-ID").unwrap();
    assert!(
        id.starts_with('<') && id.ends_with("@watchpost.example.test>"),
        "{id}"
    );
    assert!(
        mail.header("Content-Type")
            .unwrap()
            .starts_with("multipart/alternative"),
        "{:?}",
        mail.headers
    );
    let parts = mail.parts();
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert!(parts[0].0.starts_with("text/plain"), "{:?}", parts[0].0);
    assert!(parts[1].0.starts_with("text/html"), "{:?}", parts[1].0);
    // Text: values as they are. HTML: values escaped, markup kept.
    assert!(
        parts[0].1.contains("* disk <90% & falling"),
        "{}",
        parts[0].1
    );
    assert!(parts[0].1.contains("instance=db<1>"), "{}", parts[0].1);
    assert!(
        parts[1]
            .1
            .contains("<strong>disk &lt;90% &amp; falling</strong>"),
        "{}",
        parts[1].1
    );
    assert!(
        parts[1].1.contains("<code>instance=db&lt;1&gt;</code>"),
        "{}",
        parts[1].1
    );
    assert!(!parts[1].1.contains("db<1>"), "{}", parts[1].1);
}

#[tokio::test]
async fn starttls_with_a_test_ca_and_auth_plain() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let server = SmtpServer::start(Options {
        tls: TlsMode::StartTls,
        server_tls: Some(pki.clone()),
        auth: Some(("alice".into(), "correct horse".into())),
        ..Options::default()
    })
    .await;
    let n = one(&config(
        server.addr.port(),
        &format!(
            "        auth_username: alice
        auth_password: correct horse
        tls_config: {{ca_file: {}, server_name: smtp.test}}
",
            ca.display()
        ),
    ));
    n.send(&notification("r", false)).await.unwrap();
    let m = &server.messages()[0];
    assert!(m.tls, "the message must travel after STARTTLS");
    assert_eq!(m.auth_user.as_deref(), Some("alice"));
    assert_eq!(m.auth_mechanism.as_deref(), Some("PLAIN"));
    // The EHLO after STARTTLS carries the configured name too.
    assert_eq!(m.hello, "watchpost.example.test");
    let mail = Mail::parse(&m.data);
    assert_eq!(mail.header("Subject"), Some("[FIRING:1] HostDown (node)"));
    // Without text configured: one HTML part.
    let parts = mail.parts();
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert!(parts[0].0.starts_with("text/html"));
}

#[tokio::test]
async fn implicit_tls_on_port_465() {
    // Port 465 means implicit TLS, as in Alertmanager; tests run as root.
    // A loopback address of this run's own, so parallel runs (other
    // checkouts) never compete for 127.0.0.1:465.
    let pid = std::process::id();
    let host = format!("127.46.{}.{}", (pid >> 8) & 0xff, (pid & 0xff).max(1));
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let server = SmtpServer::start_on(
        &format!("{host}:465"),
        Options {
            tls: TlsMode::Implicit,
            server_tls: Some(pki.clone()),
            auth: Some(("bob".into(), "pw-465".into())),
            ..Options::default()
        },
    )
    .await;
    let n = one(&config_at(
        &format!("{host}:465"),
        &format!(
            "        auth_username: bob
        auth_password: pw-465
        tls_config: {{ca_file: {}, server_name: smtp.test}}
",
            ca.display()
        ),
    ));
    n.send(&notification("r", true)).await.unwrap();
    let m = &server.messages()[0];
    assert!(m.tls);
    assert_eq!(m.auth_user.as_deref(), Some("bob"));
    let mail = Mail::parse(&m.data);
    assert_eq!(mail.header("Subject"), Some("[RESOLVED] HostDown (node)"));
}

#[tokio::test]
async fn cram_md5_with_auth_secret() {
    let server = SmtpServer::start(Options {
        auth: Some(("carol".into(), "cram-secret".into())),
        ..Options::default()
    })
    .await;
    let n = one(&config(
        server.addr.port(),
        "        require_tls: false
        auth_username: carol
        auth_secret: cram-secret
",
    ));
    n.send(&notification("r", false)).await.unwrap();
    let m = &server.messages()[0];
    assert_eq!(m.auth_mechanism.as_deref(), Some("CRAM-MD5"));
}

#[tokio::test]
async fn auth_failure_is_permanent_and_never_shows_the_password() {
    let server = SmtpServer::start(Options {
        auth: Some(("alice".into(), "the-right-one".into())),
        ..Options::default()
    })
    .await;
    let secret = "Wr0ng-Pa55word-7f3a";
    let n = one(&config(
        server.addr.port(),
        &format!(
            "        require_tls: false
        auth_username: alice
        auth_password: {secret}
"
        ),
    ));
    let e = n.send(&notification("r", false)).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert_eq!(e.reason(), "auth_failed");
    let text = e.to_string();
    assert!(text.contains("535"), "{text}");
    assert!(
        text.contains("check auth_username and auth_password"),
        "{text}"
    );
    assert!(
        text.contains(&format!("127.0.0.1:{}", server.addr.port())),
        "{text}"
    );
    assert_no_secret(&e, secret);
    assert_eq!(server.auth_failures(), 1);
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn password_file_is_read_on_every_send() {
    let server = SmtpServer::start(Options {
        auth: Some(("alice".into(), "rotated-2".into())),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("smtp-password");
    std::fs::write(&file, "rotated-1\n").unwrap();
    let n = one(&config(
        server.addr.port(),
        &format!(
            "        require_tls: false
        auth_username: alice
        auth_password_file: {}
",
            file.display()
        ),
    ));
    let e = n.send(&notification("r", false)).await.unwrap_err();
    assert_eq!(e.reason(), "auth_failed");
    assert_no_secret(&e, "rotated-1");
    // Rotated: the next send uses the new password without a rebuild.
    std::fs::write(&file, "rotated-2\n").unwrap();
    n.send(&notification("r", false)).await.unwrap();
    assert_eq!(server.messages().len(), 1);
    // Gone: a permanent failure naming the file.
    std::fs::remove_file(&file).unwrap();
    let e = n.send(&notification("r", false)).await.unwrap_err();
    assert!(!e.is_retryable());
    assert_eq!(e.reason(), "secret_file");
    assert!(e.to_string().contains(&file.display().to_string()), "{e}");
}

#[tokio::test]
async fn require_tls_without_starttls_is_permanent() {
    let server = SmtpServer::start(Options::default()).await;
    let n = one(&config(server.addr.port(), ""));
    let e = n.send(&notification("r", false)).await.unwrap_err();
    assert!(!e.is_retryable());
    assert_eq!(e.reason(), "tls_required");
    assert!(e.to_string().contains("does not offer STARTTLS"), "{e}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn untrusted_certificate_is_permanent() {
    let server_pki = pki();
    let other = pki();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("other-ca.pem");
    std::fs::write(&ca, &other.ca_pem).unwrap();
    let server = SmtpServer::start(Options {
        tls: TlsMode::StartTls,
        server_tls: Some(server_pki.clone()),
        ..Options::default()
    })
    .await;
    let n = one(&config(
        server.addr.port(),
        &format!(
            "        tls_config: {{ca_file: {}, server_name: smtp.test}}\n",
            ca.display()
        ),
    ));
    let e = n.send(&notification("r", false)).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert_eq!(e.reason(), "tls");
    assert!(e.to_string().contains("not trusted"), "{e}");
}

#[tokio::test]
async fn refused_connection_and_4xx_are_retryable_5xx_is_not() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let n = one(&config(closed, "        require_tls: false\n"));
    let e = n.send(&notification("r", false)).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.reason(), "connection");

    for (reply, retryable, reason) in [
        ("451 4.3.0 mailbox busy, try later", true, "smtp_transient"),
        ("554 5.7.1 message rejected as spam", false, "rejected"),
    ] {
        let server = SmtpServer::start(Options {
            data_reply: Some(reply.to_string()),
            ..Options::default()
        })
        .await;
        let n = one(&config(server.addr.port(), "        require_tls: false\n"));
        let e: SendError = n.send(&notification("r", false)).await.unwrap_err();
        assert_eq!(e.is_retryable(), retryable, "{e}");
        assert_eq!(e.reason(), reason, "{e}");
        assert!(e.to_string().contains(&reply[..3]), "{e}");
    }
}
