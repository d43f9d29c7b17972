//! The HTTP side shared by the webhook-style channels: one client per
//! integration (TLS, proxy and redirects from its `http_config`), one
//! request per send with the configured credentials applied, the answer
//! read with a size cap and classified by the shared HTTP rule.
//!
//! Errors name the endpoint by its URL when the URL is public and by its
//! config key when the URL itself is a secret (Slack, Discord, Teams and
//! Mattermost webhook URLs carry their token in the path); reqwest's own
//! error text is taken without the URL for the same reason.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};

use crate::config::HttpClientConfig;
use crate::config::http_client::{
    HttpClientError, authorize, build_http_client, error_chain, read_secret, redact_url,
};
use crate::notify::{SendError, classify_http_status};

use super::Scrub;

/// Bytes of a response body kept: enough for any API's JSON answer; the
/// rest is discarded unread.
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// An integration's HTTP client and credentials.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    config: HttpClientConfig,
}

/// Where a request goes, and how errors may name it.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint<'a> {
    /// A URL that may be shown (its password, if any, is hidden).
    Public(&'a str),
    /// A URL that is itself a secret, named in errors by its config key.
    Secret { url: &'a str, key: &'static str },
}

impl Endpoint<'_> {
    fn url(&self) -> &str {
        match self {
            Endpoint::Public(u) | Endpoint::Secret { url: u, .. } => u,
        }
    }

    /// How errors name the endpoint.
    pub fn describe(&self) -> String {
        match self {
            Endpoint::Public(u) => redact_url(u),
            Endpoint::Secret { key, .. } => format!("the {key} (not shown: it is a secret)"),
        }
    }
}

/// A peer's answer: status, body (cut at [`MAX_REPLY_BYTES`]) and
/// `Retry-After` in seconds, if given.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<Duration>,
}

impl Reply {
    /// The shared HTTP rule: 2xx ok, 429/5xx retryable, else permanent.
    pub fn classify(&self) -> Result<(), SendError> {
        classify_http_status(self.status, &self.body, self.retry_after)
    }
}

/// A request body.
pub enum Body {
    Json(Vec<u8>),
    Form(String),
}

impl HttpTransport {
    pub fn new(config: &HttpClientConfig, timeout: Duration) -> Result<Self, HttpClientError> {
        Ok(HttpTransport {
            client: build_http_client(config, timeout)?,
            config: config.clone(),
        })
    }

    /// POSTs `body` to `endpoint` with `headers` and the configured
    /// credentials, and reads the answer.
    pub async fn post(
        &self,
        endpoint: Endpoint<'_>,
        headers: &[(&str, HeaderValue)],
        body: Body,
        scrub: &mut Scrub,
    ) -> Result<Reply, SendError> {
        self.remember_credentials(scrub);
        if let Endpoint::Secret { url, .. } = endpoint {
            scrub.add_url_parts(url);
        }
        let mut req = self.client.post(endpoint.url());
        req = match body {
            Body::Json(b) => req
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(b),
            Body::Form(b) => req
                .header(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                )
                .body(b),
        };
        for (name, value) in headers {
            req = req.header(*name, value.clone());
        }
        let req = authorize(req, &self.config)
            .map_err(|e| SendError::permanent("credentials", e.to_string()))?;
        let resp = req.send().await.map_err(|e| request_error(&endpoint, e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Scrubbed before anything cuts it: an excerpt ending inside an
        // echoed secret would no longer match it.
        let body = scrub.text(&read_capped(resp).await);
        Ok(Reply {
            status,
            body,
            retry_after,
        })
    }

    /// POSTs JSON and applies the shared HTTP rule to the answer.
    pub async fn post_json(
        &self,
        endpoint: Endpoint<'_>,
        headers: &[(&str, HeaderValue)],
        body: &serde_json::Value,
        scrub: &mut Scrub,
    ) -> Result<Reply, SendError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| SendError::permanent("encoding", format!("encoding the payload: {e}")))?;
        let reply = self
            .post(endpoint, headers, Body::Json(bytes), scrub)
            .await?;
        reply.classify().map_err(|e| prefix(e, &endpoint))?;
        Ok(reply)
    }
}

impl HttpTransport {
    /// Adds the `http_config` credentials to `scrub`: a peer that echoes
    /// the request's headers in an error answer must not leak them.
    /// Unreadable files are left to [`authorize`], which reports them.
    fn remember_credentials(&self, scrub: &mut Scrub) {
        if let Some(p) = self
            .config
            .basic_auth
            .as_ref()
            .and_then(|b| b.password.as_ref())
            && let Ok(v) = read_secret(p, "basic_auth password")
        {
            scrub.add(&v);
        }
        if let Some(c) = self
            .config
            .authorization
            .as_ref()
            .and_then(|a| a.credentials.as_ref())
            && let Ok(v) = read_secret(c, "authorization credentials")
        {
            scrub.add(&v);
        }
    }
}

/// `e` with the endpoint named in front of its message.
pub fn prefix(e: SendError, endpoint: &Endpoint<'_>) -> SendError {
    let place = format!("POST to {}", endpoint.describe());
    match e {
        SendError::Retryable {
            reason,
            message,
            retry_after,
        } => SendError::Retryable {
            reason,
            message: format!("{place}: {message}"),
            retry_after,
        },
        SendError::Permanent { reason, message } => SendError::Permanent {
            reason,
            message: format!("{place}: {message}"),
        },
    }
}

/// Reads at most [`MAX_REPLY_BYTES`] of the body; a body that breaks off
/// keeps what arrived (the status already decided the outcome).
async fn read_capped(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = MAX_REPLY_BYTES - buf.len();
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= MAX_REPLY_BYTES {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A failed request (no HTTP answer), classified: timeouts and connection
/// failures are retryable, a rejected certificate or a malformed URL is
/// not.
pub fn request_error(endpoint: &Endpoint<'_>, e: reqwest::Error) -> SendError {
    let e = e.without_url();
    let chain = error_chain(&e);
    let message = format!("POST to {}: {chain}", endpoint.describe());
    if e.is_builder() {
        return SendError::permanent(
            "invalid_url",
            format!("{message}: check the URL in the config"),
        );
    }
    if is_certificate_error(&chain) {
        return SendError::permanent(
            "tls",
            format!(
                "{message}: the server's certificate is not trusted: set tls_config.ca_file or fix the certificate"
            ),
        );
    }
    if e.is_timeout() {
        return SendError::retryable("timeout", message);
    }
    if e.is_connect() {
        return SendError::retryable("connection", message);
    }
    SendError::retryable("network", message)
}

/// Whether an error chain says the peer's certificate was refused.
pub fn is_certificate_error(chain: &str) -> bool {
    [
        "certificate",
        "UnknownIssuer",
        "NotValidForName",
        "BadSignature",
        "Expired",
    ]
    .iter()
    .any(|k| chain.contains(k))
}
