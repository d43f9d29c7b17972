//! `email_configs`: one SMTP transaction per notification, with lettre.
//!
//! Follows Alertmanager's email receiver: port 465 means implicit TLS;
//! otherwise STARTTLS is required (`require_tls`, default true) and used,
//! or the session stays plain when `require_tls: false`; AUTH happens when
//! `auth_username` is set (CRAM-MD5 with `auth_secret`, else PLAIN or
//! LOGIN with `auth_password`, never over an unencrypted connection to
//! another host); the message has the configured headers and a
//! `multipart/alternative` body of the text and HTML templates (the HTML
//! one with alert values HTML-escaped, as Go's `html/template` does).
//!
//! watchpost opens the TCP connection itself, with TCP_NODELAY, and hands
//! it to lettre's SMTP client: lettre writes the message body and the
//! end-of-data marker as two small writes, and with Nagle's algorithm on,
//! the second waits for the delayed ACK of the first (about 40 ms on
//! Linux) before the server may answer. With it, a plain send to aiosmtpd
//! on loopback takes about 3 ms (median of 50, debug build).
//!
//! Outcomes: 4xx replies and connection failures are retryable; 5xx
//! replies (535 = bad credentials), a certificate that is not trusted and a
//! server without STARTTLS when it is required are permanent. The
//! password and secret are read from their files on every send and
//! scrubbed from errors.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use lettre::address::Envelope;
use lettre::message::header::{self, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, Mailboxes, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, CertificateStore, Identity, TlsParameters,
};
use lettre::transport::smtp::extension::{ClientId, Extension};
use lettre::{Address, Message};
use md5::{Digest as _, Md5};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::SecretSource;
use crate::config::TlsConfig;
use crate::config::http_client::{error_chain, rustls_client_config};
use crate::config::notify::{EmailConfig, HostPort};
use crate::model::fnv1a64;
use crate::notify::{NotificationData, Notifier, SendError};

use super::digest::Digest;
use super::http::is_certificate_error;
use super::render::{RenderData, Tmpl, escape_html};
use super::{Builder, ChannelError, Scrub, now_ms, with_timeout};

/// Headers the MIME structure decides; a configured value is ignored.
const MIME_HEADERS: [&str; 3] = ["Content-Type", "Content-Transfer-Encoding", "Mime-Version"];

pub struct Email {
    name: String,
    /// The receiver's name (`.Receiver` when a digest renders `to`/`from`).
    receiver: String,
    send_resolved: bool,
    to: Tmpl,
    from: Tmpl,
    hello: String,
    smarthost: HostPort,
    auth: Option<Auth>,
    headers: Vec<(String, Tmpl)>,
    html: Tmpl,
    text: Tmpl,
    require_tls: bool,
    /// For STARTTLS (lettre's TLS).
    starttls: TlsParameters,
    /// For implicit TLS (port 465).
    implicit: Arc<rustls::ClientConfig>,
    tls_name: String,
    timeout: Duration,
}

struct Auth {
    username: String,
    password: Option<SecretSource>,
    secret: Option<SecretSource>,
}

impl Email {
    pub(crate) fn new(b: &Builder<'_>, c: &EmailConfig) -> Result<Self, ChannelError> {
        let tls_name = c
            .tls_config
            .server_name
            .clone()
            .unwrap_or_else(|| c.smarthost.host.clone());
        let starttls = lettre_tls(&tls_name, &c.tls_config).map_err(|m| b.invalid(m))?;
        let implicit =
            rustls_client_config(&c.tls_config).map_err(|source| ChannelError::HttpClient {
                integration: b.what(),
                source,
            })?;
        let mut headers = Vec::with_capacity(c.headers.len());
        for (name, value) in &c.headers {
            if MIME_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                continue;
            }
            HeaderName::new_from_ascii(name.clone())
                .map_err(|_| b.invalid(format!("headers: {name:?} is not a valid header name")))?;
            headers.push((name.clone(), b.tmpl("headers", value)?));
        }
        let auth = c
            .auth_username
            .as_ref()
            .filter(|u| !u.is_empty())
            .map(|u| Auth {
                username: u.clone(),
                password: c.auth_password.clone(),
                secret: c.auth_secret.clone(),
            });
        Ok(Email {
            name: b.name.clone(),
            receiver: b.receiver.to_string(),
            send_resolved: b.send_resolved,
            to: b.tmpl("to", &c.to)?,
            from: b.tmpl("from", &c.from)?,
            hello: c.hello.clone(),
            smarthost: c.smarthost.clone(),
            auth,
            headers,
            html: b.tmpl("html", &c.html)?,
            text: b.tmpl("text", &c.text)?,
            require_tls: c.require_tls,
            starttls,
            implicit: Arc::new(implicit),
            tls_name,
            timeout: b.ctx.send_timeout,
        })
    }

    /// Renders the message and its envelope.
    pub fn message(&self, msg: &NotificationData) -> Result<Message, SendError> {
        let now = now_ms();
        let data = RenderData::new(msg, now, None);
        let b = self.headers(msg, &data, now)?;
        let text = if self.text.is_empty() {
            None
        } else {
            Some(self.text.render(&data)?)
        };
        let html = if self.html.is_empty() {
            None
        } else {
            let escaped = RenderData::new(msg, now, Some(escape_html));
            Some(self.html.render(&escaped)?)
        };
        let built = match (text, html) {
            (Some(t), Some(h)) => b.multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::plain(t))
                    .singlepart(SinglePart::html(h)),
            ),
            (None, Some(h)) => b.singlepart(SinglePart::html(h)),
            (Some(t), None) => b.singlepart(SinglePart::plain(t)),
            (None, None) => b.body(String::new()),
        };
        built.map_err(build_error)
    }

    /// A digest report as a message: the configured envelope and headers
    /// (rendered for a notification without alerts), the report's title
    /// as the subject, and a `multipart/alternative` body of the text and
    /// of the HTML with the chart inline (`multipart/related`, referenced
    /// as `cid:`).
    pub fn digest_message(&self, digest: &Digest) -> Result<Message, SendError> {
        let now = now_ms();
        let msg = NotificationData::new(
            &self.receiver,
            format!("report:{}", digest.name),
            crate::model::Labels::default(),
            Vec::new(),
            "",
            now,
        );
        let data = RenderData::new(&msg, now, None);
        let b = self
            .headers(&msg, &data, now)?
            .subject(digest.title.as_str());
        let mut html = MultiPart::related().singlepart(SinglePart::html(digest.html.clone()));
        if let Some(png) = &digest.chart_png {
            let png_type = header::ContentType::parse("image/png")
                .map_err(|e| SendError::permanent("invalid_message", format!("image/png: {e}")))?;
            html = html.singlepart(
                Attachment::new_inline(digest.chart_cid.clone()).body(png.clone(), png_type),
            );
        }
        b.multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::plain(digest.text.clone()))
                .multipart(html),
        )
        .map_err(build_error)
    }

    /// Sends a digest report in one SMTP transaction, with the same
    /// connection, TLS, AUTH and error classification as notifications.
    pub async fn send_digest(&self, digest: &Digest) -> Result<(), SendError> {
        let mut scrub = Scrub::new();
        let what = format!("smarthost {}", self.smarthost);
        let fut = async {
            let message = self.digest_message(digest)?;
            let credentials = self.credentials(&mut scrub)?;
            self.transaction(&message, credentials.as_ref()).await
        };
        let r = with_timeout(self.timeout, &what, fut).await;
        r.map_err(|e| scrub.error(e))
    }

    /// The builder with envelope, date, configured headers and Message-Id.
    fn headers(
        &self,
        msg: &NotificationData,
        data: &RenderData,
        now: crate::model::Timestamp,
    ) -> Result<lettre::message::MessageBuilder, SendError> {
        let from = self.from.render_trimmed(data)?;
        let to = self.to.render_trimmed(data)?;
        let sender: Address = from
            .parse::<Mailbox>()
            .map_err(|e| invalid_address("from", &from, &e))?
            .email;
        let recipients: Vec<Address> = to
            .parse::<Mailboxes>()
            .map_err(|e| invalid_address("to", &to, &e))?
            .into_iter()
            .map(|m| m.email)
            .collect();
        if recipients.is_empty() {
            return Err(SendError::permanent(
                "invalid_address",
                "to rendered no address: set to",
            ));
        }
        let envelope = Envelope::new(Some(sender), recipients)
            .map_err(|e| SendError::permanent("invalid_address", format!("envelope: {e}")))?;

        let st = UNIX_EPOCH + Duration::from_millis(u64::try_from(now).unwrap_or(0));
        let mut b = Message::builder().envelope(envelope).date(st);
        let mut has_message_id = false;
        for (name, tmpl) in &self.headers {
            let value = tmpl.render(data)?;
            let value = value.trim();
            b = match name.as_str() {
                "Subject" => b.subject(value),
                "From" | "To" | "Cc" | "Reply-To" => {
                    let boxes: Mailboxes = value
                        .parse()
                        .map_err(|e| invalid_address(&format!("headers: {name}"), value, &e))?;
                    match name.as_str() {
                        "From" => b.mailbox(header::From::from(boxes)),
                        "To" => b.mailbox(header::To::from(boxes)),
                        "Cc" => b.mailbox(header::Cc::from(boxes)),
                        _ => b.mailbox(header::ReplyTo::from(boxes)),
                    }
                }
                _ => {
                    if name.eq_ignore_ascii_case("Message-Id") {
                        has_message_id = true;
                    }
                    // Validated when the channel was built.
                    let Ok(hn) = HeaderName::new_from_ascii(name.clone()) else {
                        continue;
                    };
                    b.raw_header(HeaderValue::new(hn, value.to_string()))
                }
            };
        }
        if !has_message_id {
            let id = fnv1a64(&[msg.group_key.as_bytes(), &now.to_le_bytes()]);
            b = b.message_id(Some(format!("<{now}.{id:016x}@{}>", self.hello)));
        }
        Ok(b)
    }

    async fn deliver(&self, msg: &NotificationData, scrub: &mut Scrub) -> Result<(), SendError> {
        let message = self.message(msg)?;
        let credentials = self.credentials(scrub)?;
        self.transaction(&message, credentials.as_ref()).await
    }

    /// The AUTH values, secrets read from their files now (per send).
    fn credentials(&self, scrub: &mut Scrub) -> Result<Option<AuthValues>, SendError> {
        Ok(match &self.auth {
            Some(a) => Some(AuthValues {
                username: a.username.clone(),
                password: match &a.password {
                    Some(p) => Some(scrub.read(p, "auth_password")?),
                    None => None,
                },
                secret: match &a.secret {
                    Some(s) => Some(scrub.read(s, "auth_secret")?),
                    None => None,
                },
            }),
            None => None,
        })
    }

    /// One SMTP session: connect, (STARTTLS), (AUTH), MAIL/RCPT/DATA, QUIT.
    async fn transaction(
        &self,
        message: &Message,
        auth: Option<&AuthValues>,
    ) -> Result<(), SendError> {
        let server = self.smarthost.to_string();
        let hello = ClientId::Domain(self.hello.clone());
        let tcp = TcpStream::connect((self.smarthost.host.as_str(), self.smarthost.port))
            .await
            .map_err(|e| {
                SendError::retryable(
                    "connection",
                    format!("connecting to smarthost {server}: {e}"),
                )
            })?;
        // The reason this connection is made here rather than by lettre;
        // see the module docs.
        let _ = tcp.set_nodelay(true);
        let implicit = self.smarthost.port == 465;
        let mut conn = if implicit {
            let name = rustls::pki_types::ServerName::try_from(self.tls_name.clone()).map_err(
                |_| {
                    SendError::permanent(
                        "tls",
                        format!(
                            "smarthost {server}: {:?} is not a valid TLS server name: set tls_config.server_name",
                            self.tls_name
                        ),
                    )
                },
            )?;
            let tls = tokio_rustls::TlsConnector::from(self.implicit.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| tls_error(&server, &error_chain(&e)))?;
            AsyncSmtpConnection::connect_with_transport(Box::new(TlsConn(tls)), &hello).await
        } else {
            AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello).await
        }
        .map_err(|e| smtp_error(&server, "greeting", &e))?;

        if !implicit && self.require_tls {
            if !conn.server_info().supports_feature(Extension::StartTls) {
                conn.abort().await;
                return Err(SendError::permanent(
                    "tls_required",
                    format!(
                        "smarthost {server} does not offer STARTTLS and require_tls is true (the default): enable STARTTLS on the server, use port 465, or set require_tls: false"
                    ),
                ));
            }
            conn.starttls(self.starttls.clone(), &hello)
                .await
                .map_err(|e| smtp_error(&server, "STARTTLS", &e))?;
        }
        if let Some(a) = auth {
            self.authenticate(&mut conn, a, &server, implicit || self.require_tls)
                .await?;
        }
        let body = message.formatted();
        let sent = conn.send(message.envelope(), &body).await;
        match sent {
            Ok(_) => {
                // The message is accepted; a failing QUIT changes nothing.
                let _ = conn.quit().await;
                Ok(())
            }
            Err(e) => Err(smtp_error(&server, "sending the message", &e)),
        }
    }

    async fn authenticate(
        &self,
        conn: &mut AsyncSmtpConnection,
        a: &AuthValues,
        server: &str,
        encrypted: bool,
    ) -> Result<(), SendError> {
        if let Some(secret) = &a.secret {
            return cram_md5(conn, &a.username, secret)
                .await
                .map_err(|e| smtp_error(server, "AUTH CRAM-MD5", &e));
        }
        let Some(password) = &a.password else {
            return Err(SendError::permanent(
                "auth_failed",
                format!(
                    "smarthost {server}: auth_username is set without auth_password or auth_secret: set one"
                ),
            ));
        };
        if !encrypted && !is_local(&self.smarthost.host) {
            return Err(SendError::permanent(
                "tls_required",
                format!(
                    "smarthost {server}: refusing to send the password over an unencrypted connection: set require_tls: true or use port 465"
                ),
            ));
        }
        let creds = Credentials::new(a.username.clone(), password.clone());
        conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds)
            .await
            .map(|_| ())
            .map_err(|e| smtp_error(server, "AUTH", &e))
    }
}

struct AuthValues {
    username: String,
    password: Option<String>,
    secret: Option<String>,
}

impl Notifier for Email {
    fn integration(&self) -> &str {
        &self.name
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn send<'a>(
        &'a self,
        msg: &'a NotificationData,
    ) -> Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>> {
        Box::pin(async move {
            let mut scrub = Scrub::new();
            let what = format!("smarthost {}", self.smarthost);
            let r = with_timeout(self.timeout, &what, self.deliver(msg, &mut scrub)).await;
            r.map_err(|e| scrub.error(e))
        })
    }
}

fn is_local(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn build_error(e: lettre::error::Error) -> SendError {
    SendError::permanent(
        "invalid_message",
        format!("building the message: {e}: check the From header and the headers"),
    )
}

fn invalid_address(field: &str, value: &str, e: &dyn std::fmt::Display) -> SendError {
    SendError::permanent(
        "invalid_address",
        format!("{field} {value:?} is not a valid address list: {e}: fix the {field} setting"),
    )
}

fn tls_error(server: &str, chain: &str) -> SendError {
    if is_certificate_error(chain) {
        SendError::permanent(
            "tls",
            format!(
                "smarthost {server}: TLS: {chain}: the server's certificate is not trusted: set tls_config.ca_file (or server_name) or fix the certificate"
            ),
        )
    } else {
        SendError::retryable("tls", format!("smarthost {server}: TLS: {chain}"))
    }
}

/// A lettre error in `step` as a classified send error.
fn smtp_error(server: &str, step: &str, e: &lettre::transport::smtp::Error) -> SendError {
    let chain = error_chain(e);
    let code = e.status().map(|c| c.to_string());
    if let Some(code) = &code
        && code == "535"
    {
        return SendError::permanent(
            "auth_failed",
            format!(
                "smarthost {server}: {step}: authentication failed: {chain}: check auth_username and auth_password"
            ),
        );
    }
    if e.is_permanent() {
        return SendError::permanent("rejected", format!("smarthost {server}: {step}: {chain}"));
    }
    if e.is_transient() {
        return SendError::retryable(
            "smtp_transient",
            format!("smarthost {server}: {step}: {chain}"),
        );
    }
    if e.is_tls() || is_certificate_error(&chain) {
        return tls_error(server, &format!("{step}: {chain}"));
    }
    if e.is_timeout() {
        return SendError::retryable("timeout", format!("smarthost {server}: {step}: {chain}"));
    }
    SendError::retryable("connection", format!("smarthost {server}: {step}: {chain}"))
}

/// CRAM-MD5 (RFC 2195), which lettre does not implement: the server's
/// challenge is answered with `username HMAC-MD5(secret, challenge)`.
async fn cram_md5(
    conn: &mut AsyncSmtpConnection,
    username: &str,
    secret: &str,
) -> Result<(), lettre::transport::smtp::Error> {
    let challenge = conn.command(RawCommand("AUTH CRAM-MD5".into())).await?;
    let encoded = challenge.message().next().unwrap_or("").trim().to_string();
    let challenge = base64::engine::general_purpose::STANDARD
        .decode(encoded.as_bytes())
        .unwrap_or_default();
    let digest = hmac_md5(secret.as_bytes(), &challenge);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let answer = base64::engine::general_purpose::STANDARD.encode(format!("{username} {hex}"));
    conn.command(RawCommand(answer)).await?;
    Ok(())
}

/// HMAC (RFC 2104) over MD5.
fn hmac_md5(key: &[u8], message: &[u8]) -> [u8; 16] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..16].copy_from_slice(&Md5::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Md5::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Md5::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// One command line as written (lettre appends nothing).
struct RawCommand(String);

impl std::fmt::Display for RawCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\r\n", self.0)
    }
}

/// lettre's STARTTLS parameters for `tls`: the same trust rules as the
/// HTTP clients (only `ca_file` when set, `insecure_skip_verify`, client
/// certificate).
fn lettre_tls(name: &str, tls: &TlsConfig) -> Result<TlsParameters, String> {
    let mut b = TlsParameters::builder(name.to_string());
    if let Some(ca) = &tls.ca_file {
        let pem = std::fs::read(ca).map_err(|e| {
            format!(
                "tls_config: ca_file {}: {e}: check the path and its permissions",
                ca.display()
            )
        })?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| format!("tls_config: ca_file {}: not valid PEM: {e}", ca.display()))?;
        b = b
            .certificate_store(CertificateStore::None)
            .add_root_certificate(cert);
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(c), Some(k)) => {
            let read = |p: &std::path::Path, field: &str| {
                std::fs::read(p).map_err(|e| {
                    format!(
                        "tls_config: {field} {}: {e}: check the path and its permissions",
                        p.display()
                    )
                })
            };
            let identity = Identity::from_pem(&read(c, "cert_file")?, &read(k, "key_file")?)
                .map_err(|e| format!("tls_config: cert_file/key_file: {e}"))?;
            b = b.identify_with(identity);
        }
        (None, None) => {}
        _ => {
            return Err(
                "tls_config: cert_file and key_file must be set together: set both or neither"
                    .to_string(),
            );
        }
    }
    if tls.insecure_skip_verify {
        b = b.dangerous_accept_invalid_certs(true);
    }
    b.build_rustls()
        .map_err(|e| format!("tls_config: {}", error_chain(&e)))
}

/// The implicit-TLS stream handed to lettre.
#[derive(Debug)]
struct TlsConn(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsConn {
    fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn hmac_md5_matches_rfc_2104() {
        // RFC 2104's test vector 2.
        let d = hmac_md5(b"Jefe", b"what do ya want for nothing?");
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "750c783e6ab0b503eaa86e310a5db738");
    }
}
