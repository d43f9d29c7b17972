//! One HTTP scrape request: content negotiation, auth, timeout, and a body
//! size cap enforced while the body streams in.
//!
//! Failures are classified into a small, fixed set of reasons
//! ([`FailureReason`]) so they can label metrics without unbounded
//! cardinality; the human-readable detail goes into the message.

use std::time::Duration;

use reqwest::header::HeaderValue;

use crate::config::HttpClientConfig;

/// The Accept header Prometheus sends: OpenMetrics preferred, then text.
pub const ACCEPT_HEADER: &str =
    "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Ceiling on a scrape body when the job sets no `body_size_limit`: large
/// enough for the biggest real exporters, small enough that a runaway
/// endpoint cannot exhaust memory.
pub const DEFAULT_BODY_LIMIT: u64 = 128 << 20;

/// Why a scrape failed. The word starts the target's `lastError` and labels
/// `watchpost_scrape_failures_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    Timeout,
    Refused,
    Dns,
    Tls,
    Connection,
    HttpStatus,
    BodyTooLarge,
    ParseError,
    LimitExceeded,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::Refused => "refused",
            FailureReason::Dns => "dns",
            FailureReason::Tls => "tls",
            FailureReason::Connection => "connection",
            FailureReason::HttpStatus => "http_status",
            FailureReason::BodyTooLarge => "body_too_large",
            FailureReason::ParseError => "parse_error",
            FailureReason::LimitExceeded => "limit_exceeded",
        }
    }
}

/// A failed scrape: a bounded reason and a detail message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", reason.as_str())]
pub struct ScrapeFailure {
    pub reason: FailureReason,
    pub message: String,
}

impl ScrapeFailure {
    pub fn new(reason: FailureReason, message: impl Into<String>) -> Self {
        ScrapeFailure {
            reason,
            message: message.into(),
        }
    }
}

/// A successful response: the (decompressed) body is in the caller's buffer.
#[derive(Debug)]
pub struct Fetched {
    pub content_type: Option<String>,
}

/// What every request to one target shares, worked out once per loop
/// rather than per scrape: parsing the URL and formatting the timeout
/// header cost more than the rest of building a request.
#[derive(Debug, Clone)]
pub struct Endpoint {
    url: Result<reqwest::Url, String>,
    timeout: Duration,
    /// Always `Some`: a float's digits are a valid header value.
    timeout_header: Option<HeaderValue>,
}

impl Endpoint {
    pub fn new(url: &str, timeout: Duration) -> Self {
        let timeout_header = HeaderValue::from_str(&timeout.as_secs_f64().to_string()).ok();
        Endpoint {
            url: reqwest::Url::parse(url).map_err(|e| format!("invalid scrape URL {url:?}: {e}")),
            timeout,
            timeout_header,
        }
    }
}

/// Fetches the endpoint into `buf` (cleared first), within its timeout,
/// refusing bodies over `limit` bytes while they stream in.
pub async fn fetch(
    client: &reqwest::Client,
    http: &HttpClientConfig,
    endpoint: &Endpoint,
    limit: u64,
    buf: &mut Vec<u8>,
) -> Result<Fetched, ScrapeFailure> {
    buf.clear();
    let timeout = endpoint.timeout;
    let url = match &endpoint.url {
        Ok(u) => u.clone(),
        Err(e) => return Err(ScrapeFailure::new(FailureReason::Connection, e.clone())),
    };
    let fut = fetch_inner(
        client,
        http,
        url,
        endpoint.timeout_header.as_ref(),
        timeout,
        limit,
        buf,
    );
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ScrapeFailure::new(
            FailureReason::Timeout,
            format!(
                "no response within {}",
                crate::model::format_duration(timeout)
            ),
        )),
    }
}

async fn fetch_inner(
    client: &reqwest::Client,
    http: &HttpClientConfig,
    url: reqwest::Url,
    timeout_header: Option<&HeaderValue>,
    timeout: Duration,
    limit: u64,
    buf: &mut Vec<u8>,
) -> Result<Fetched, ScrapeFailure> {
    let mut req = client.get(url).header(
        reqwest::header::ACCEPT,
        HeaderValue::from_static(ACCEPT_HEADER),
    );
    if let Some(h) = timeout_header {
        req = req.header("X-Prometheus-Scrape-Timeout-Seconds", h.clone());
    }
    let req = super::http_client::authorize(req, http)
        .map_err(|e| ScrapeFailure::new(FailureReason::Connection, e.to_string()))?;
    let mut resp = req.send().await.map_err(|e| classify(e, timeout))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(ScrapeFailure::new(
            FailureReason::HttpStatus,
            format!(
                "server returned HTTP status {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_string(),
        ));
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(len) = resp.content_length() {
        // Content-Length describes the (possibly compressed) wire body; it
        // is a cheap early reject, the streaming check below is the real one.
        if len > limit
            && resp
                .headers()
                .get(reqwest::header::CONTENT_ENCODING)
                .is_none()
        {
            return Err(too_large(limit));
        }
        buf.reserve((len.min(limit)) as usize);
    }
    while let Some(chunk) = resp.chunk().await.map_err(|e| classify(e, timeout))? {
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Fetched { content_type })
}

fn timed_out(timeout: Duration) -> ScrapeFailure {
    ScrapeFailure::new(
        FailureReason::Timeout,
        format!(
            "no response within {}",
            crate::model::format_duration(timeout)
        ),
    )
}

fn too_large(limit: u64) -> ScrapeFailure {
    ScrapeFailure::new(
        FailureReason::BodyTooLarge,
        format!(
            "body size limit of {limit} bytes exceeded; raise body_size_limit or reduce the target's output"
        ),
    )
}

/// Maps a reqwest error to a reason by walking its source chain.
fn classify(e: reqwest::Error, timeout: Duration) -> ScrapeFailure {
    if e.is_timeout() {
        return timed_out(timeout);
    }
    let chain = super::http_client::error_chain(&e);
    let lower = chain.to_ascii_lowercase();
    let reason = if has_io_kind(&e, std::io::ErrorKind::ConnectionRefused)
        || lower.contains("connection refused")
    {
        FailureReason::Refused
    } else if lower.contains("dns error")
        || lower.contains("failed to lookup address")
        || lower.contains("name or service not known")
    {
        FailureReason::Dns
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        FailureReason::Tls
    } else {
        FailureReason::Connection
    };
    ScrapeFailure::new(reason, chain)
}

fn has_io_kind(e: &(dyn std::error::Error + 'static), kind: std::io::ErrorKind) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == kind
        {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn failure_display_starts_with_reason() {
        let f = ScrapeFailure::new(FailureReason::Timeout, "no response within 10s");
        assert_eq!(f.to_string(), "timeout: no response within 10s");
    }

    #[tokio::test]
    async fn refused_is_classified() {
        // Bind then drop to get a port nobody listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let client = reqwest::Client::new();
        let mut buf = Vec::new();
        let err = fetch(
            &client,
            &HttpClientConfig::default(),
            &Endpoint::new(
                &format!("http://127.0.0.1:{port}/metrics"),
                Duration::from_secs(5),
            ),
            1024,
            &mut buf,
        )
        .await
        .unwrap_err();
        assert_eq!(err.reason, FailureReason::Refused, "{err}");
    }
}
