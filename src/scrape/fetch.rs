//! One HTTP scrape request: content negotiation, auth, timeout, and a body
//! size cap enforced while the body streams in.
//!
//! Failures are classified into a small, fixed set of reasons
//! ([`FailureReason`]) so they can label metrics without unbounded
//! cardinality; the human-readable detail goes into the message.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::header::{
    ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
    HeaderValue, LOCATION, PROXY_AUTHORIZATION, USER_AGENT,
};
use hyper::{StatusCode, Uri};

use super::client::ScrapeClient;
use super::http_client::{self, authorization};
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
    /// The URL (for resolving redirects) and the same as a request URI.
    url: Result<(reqwest::Url, Uri), String>,
    timeout: Duration,
    /// Always `Some`: a float's digits are a valid header value.
    timeout_header: Option<HeaderValue>,
}

impl Endpoint {
    pub fn new(url: &str, timeout: Duration) -> Self {
        let timeout_header = HeaderValue::from_str(&timeout.as_secs_f64().to_string()).ok();
        let url = reqwest::Url::parse(url)
            .map_err(|e| e.to_string())
            .and_then(|u| uri_of(&u).map(|uri| (u, uri)))
            .map_err(|e| format!("invalid scrape URL {url:?}: {e}"));
        Endpoint {
            url,
            timeout,
            timeout_header,
        }
    }
}

/// `url` as a request URI (without a fragment, which is never sent).
fn uri_of(url: &reqwest::Url) -> Result<Uri, String> {
    let text = match url.as_str().split_once('#') {
        Some((before, _)) => before,
        None => url.as_str(),
    };
    text.parse::<Uri>().map_err(|e| e.to_string())
}

/// Fetches the endpoint into `buf` (cleared first), within its timeout,
/// refusing bodies over `limit` bytes while they stream in.
pub async fn fetch(
    client: &ScrapeClient,
    http: &HttpClientConfig,
    endpoint: &Endpoint,
    limit: u64,
    buf: &mut Vec<u8>,
) -> Result<Fetched, ScrapeFailure> {
    buf.clear();
    let timeout = endpoint.timeout;
    let (url, uri) = match &endpoint.url {
        Ok(u) => u,
        Err(e) => return Err(ScrapeFailure::new(FailureReason::Connection, e.clone())),
    };
    let fut = fetch_inner(
        client,
        http,
        url,
        uri,
        endpoint.timeout_header.as_ref(),
        limit,
        buf,
    );
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(timed_out(timeout)),
    }
}

async fn fetch_inner(
    client: &ScrapeClient,
    http: &HttpClientConfig,
    url: &reqwest::Url,
    uri: &Uri,
    timeout_header: Option<&HeaderValue>,
    limit: u64,
    buf: &mut Vec<u8>,
) -> Result<Fetched, ScrapeFailure> {
    let mut auth = authorization(http)
        .map_err(|e| ScrapeFailure::new(FailureReason::Connection, e.to_string()))?;
    let mut next: Option<(reqwest::Url, Uri)> = None;
    let mut redirects = 0;
    let resp = loop {
        let (url, uri) = next.as_ref().map_or((url, uri), |(u, i)| (u, i));
        let mut req = hyper::Request::get(uri.clone())
            .header(ACCEPT, HeaderValue::from_static(ACCEPT_HEADER))
            .header(ACCEPT_ENCODING, HeaderValue::from_static("gzip"))
            .header(
                USER_AGENT,
                HeaderValue::from_static(http_client::USER_AGENT),
            );
        if let Some(h) = timeout_header {
            req = req.header("X-Prometheus-Scrape-Timeout-Seconds", h.clone());
        }
        if let Some(a) = &auth {
            req = req.header(AUTHORIZATION, a.clone());
        }
        if let Some(p) = client.proxy_auth()
            && url.scheme() == "http"
        {
            req = req.header(PROXY_AUTHORIZATION, p.clone());
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| ScrapeFailure::new(FailureReason::Connection, e.to_string()))?;
        let resp = client.send(req).await.map_err(|e| classify(&e))?;
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .filter(|_| http.follow_redirects && is_redirect(resp.status()));
        let Some(location) = location else {
            break resp;
        };
        redirects += 1;
        if redirects > http_client::MAX_REDIRECTS {
            return Err(ScrapeFailure::new(
                FailureReason::Connection,
                format!("stopped after {} redirects", http_client::MAX_REDIRECTS),
            ));
        }
        let invalid = |e: &dyn std::fmt::Display| {
            ScrapeFailure::new(
                FailureReason::Connection,
                format!("redirect to invalid location {location:?}: {e}"),
            )
        };
        let to = url.join(location).map_err(|e| invalid(&e))?;
        // Credentials follow a redirect only to the same host and port
        // (reqwest's rule; Go, and so Prometheus, also lets them follow to
        // a subdomain, which this does not).
        if to.host_str() != url.host_str()
            || to.port_or_known_default() != url.port_or_known_default()
        {
            auth = None;
        }
        let to_uri = uri_of(&to).map_err(|e| invalid(&e))?;
        next = Some((to, to_uri));
    };
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
    let headers = resp.headers();
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let gzip = match headers.get(CONTENT_ENCODING) {
        None => false,
        Some(v) if v.as_bytes().eq_ignore_ascii_case(b"identity") => false,
        Some(v) if v.as_bytes().eq_ignore_ascii_case(b"gzip") => true,
        Some(v) => {
            return Err(ScrapeFailure::new(
                FailureReason::ParseError,
                format!(
                    "unsupported Content-Encoding {:?} (only gzip is asked for)",
                    String::from_utf8_lossy(v.as_bytes())
                ),
            ));
        }
    };
    let length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut compressed = Vec::new();
    let sink = if gzip { &mut compressed } else { &mut *buf };
    if let Some(len) = length {
        // Content-Length describes the wire body; for an uncompressed body
        // it is a cheap early reject, the streaming check below is the
        // real one.
        if len > limit && !gzip {
            return Err(too_large(limit));
        }
        sink.reserve(len.min(limit) as usize);
    }
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| classify(&e))?;
        if let Ok(chunk) = frame.into_data() {
            if (sink.len() + chunk.len()) as u64 > limit {
                return Err(too_large(limit));
            }
            sink.extend_from_slice(&chunk);
        }
    }
    if gzip {
        gunzip(&compressed, limit, buf)?;
    }
    Ok(Fetched { content_type })
}

fn is_redirect(s: StatusCode) -> bool {
    matches!(s.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Decompresses a gzip body into `buf`, stopping past `limit` bytes so a
/// small body cannot expand without bound.
fn gunzip(data: &[u8], limit: u64, buf: &mut Vec<u8>) -> Result<(), ScrapeFailure> {
    use std::io::Read;
    flate2::read::GzDecoder::new(data)
        .take(limit + 1)
        .read_to_end(buf)
        .map_err(|e| {
            ScrapeFailure::new(FailureReason::ParseError, format!("invalid gzip body: {e}"))
        })?;
    if buf.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(())
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

/// Maps a client error to a reason by walking its source chain.
fn classify(e: &(dyn std::error::Error + 'static)) -> ScrapeFailure {
    let chain = http_client::error_chain(e);
    let lower = chain.to_ascii_lowercase();
    let reason = if has_io_kind(e, std::io::ErrorKind::ConnectionRefused)
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
        let client = ScrapeClient::new(&HttpClientConfig::default()).unwrap();
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

    use crate::config::http_client::test_support::{auth_echo, inline, pki, serve, serve_tls};
    use crate::config::{Authorization, BasicAuth, TlsConfig};
    use axum::Router;
    use axum::http::HeaderMap;
    use axum::response::Redirect;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Fetches `url` with `cfg` through a fresh client: the body as text,
    /// or the failure.
    async fn get_text(cfg: &HttpClientConfig, url: &str) -> Result<String, ScrapeFailure> {
        let client = ScrapeClient::new(cfg)
            .map_err(|e| ScrapeFailure::new(FailureReason::Connection, format!("build: {e}")))?;
        let mut buf = Vec::new();
        fetch(
            &client,
            cfg,
            &Endpoint::new(url, Duration::from_secs(5)),
            64 << 20,
            &mut buf,
        )
        .await?;
        Ok(String::from_utf8(buf).unwrap())
    }

    #[tokio::test]
    async fn credentials_reach_the_target() {
        let addr = serve(auth_echo()).await;
        let url = format!("http://{addr}/auth");
        let e = get_text(&HttpClientConfig::default(), &url)
            .await
            .unwrap_err();
        assert_eq!(e.reason, FailureReason::HttpStatus, "{e}");
        assert_eq!(e.message, "server returned HTTP status 401 Unauthorized");
        let bearer = HttpClientConfig {
            authorization: Some(Authorization {
                kind: "Bearer".into(),
                credentials: inline("s3cret"),
            }),
            ..Default::default()
        };
        assert_eq!(get_text(&bearer, &url).await.unwrap(), "Bearer s3cret");
        let basic = HttpClientConfig {
            basic_auth: Some(BasicAuth {
                username: "u".into(),
                password: inline("p"),
            }),
            ..Default::default()
        };
        // base64("u:p")
        assert_eq!(get_text(&basic, &url).await.unwrap(), "Basic dTpw");
    }

    #[tokio::test]
    async fn redirects_keep_credentials_on_the_same_host_only() {
        let router = auth_echo()
            .route("/a", get(|| async { Redirect::temporary("/b") }))
            .route(
                "/b",
                get(|h: HeaderMap| async move {
                    format!("b from {}", h.get("host").unwrap().to_str().unwrap())
                }),
            )
            .route("/same", get(|| async { Redirect::temporary("/auth") }));
        let addr = serve(router).await;
        let elsewhere = format!("http://localhost:{}/auth", addr.port());
        let other = serve(Router::new().route(
            "/away",
            get(move || {
                let to = elsewhere.clone();
                async move { Redirect::temporary(&to) }
            }),
        ))
        .await;

        let no_follow = HttpClientConfig::default();
        let e = get_text(&no_follow, &format!("http://{addr}/a"))
            .await
            .unwrap_err();
        assert_eq!(
            e.message,
            "server returned HTTP status 307 Temporary Redirect"
        );
        let follow = HttpClientConfig {
            follow_redirects: true,
            authorization: Some(Authorization {
                kind: "Bearer".into(),
                credentials: inline("t"),
            }),
            ..Default::default()
        };
        assert_eq!(
            get_text(&follow, &format!("http://{addr}/a"))
                .await
                .unwrap(),
            format!("b from {addr}")
        );
        assert_eq!(
            get_text(&follow, &format!("http://{addr}/same"))
                .await
                .unwrap(),
            "Bearer t"
        );
        // To another host: the token stays behind, so the target refuses.
        let e = get_text(&follow, &format!("http://{other}/away"))
            .await
            .unwrap_err();
        assert!(e.message.contains("401"), "{e}");
    }

    #[tokio::test]
    async fn http_targets_through_a_proxy_in_absolute_form() {
        let router = Router::new().route(
            "/b",
            get(|h: HeaderMap| async move {
                format!(
                    "b from {} auth {}",
                    h.get("host").unwrap().to_str().unwrap(),
                    h.get("proxy-authorization")
                        .map_or("none", |v| v.to_str().unwrap())
                )
            }),
        );
        let addr = serve(router).await;
        let proxied = HttpClientConfig {
            proxy_url: Some(format!("http://us%20er:pw@{addr}")),
            ..Default::default()
        };
        // An unresolvable host: only the proxy (our server) is connected to.
        assert_eq!(
            get_text(&proxied, "http://target.invalid:9100/b")
                .await
                .unwrap(),
            // base64("us er:pw")
            "b from target.invalid:9100 auth Basic dXMgZXI6cHc="
        );
    }

    /// A CONNECT-only proxy: answers 407 without `want_auth`, else tunnels
    /// to the requested address. Records each request head it got.
    async fn connect_proxy(
        want_auth: &'static str,
    ) -> (
        std::net::SocketAddr,
        std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let (mut c, _) = l.accept().await.unwrap();
                let log = log.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    while !head.ends_with(b"\r\n\r\n") {
                        let mut b = [0u8; 1];
                        if c.read(&mut b).await.unwrap() == 0 {
                            return;
                        }
                        head.push(b[0]);
                    }
                    let head = String::from_utf8(head).unwrap();
                    log.lock().unwrap().push(head.clone());
                    if !head.contains(want_auth) {
                        let _ = c
                            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                            .await;
                        return;
                    }
                    let to = head.split(' ').nth(1).unwrap().to_string();
                    let mut up = tokio::net::TcpStream::connect(to).await.unwrap();
                    c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut up).await;
                });
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn https_targets_through_a_connect_tunnel() {
        let pki = pki();
        let target = serve_tls(&pki, false).await;
        let (proxy, seen) = connect_proxy("Proxy-Authorization: Basic dTpw").await;
        let tls = pki.tls();
        let cfg = HttpClientConfig {
            proxy_url: Some(format!("http://u:p@{proxy}")),
            tls_config: tls.clone(),
            ..Default::default()
        };
        let url = format!("https://{target}/");
        assert_eq!(get_text(&cfg, &url).await.unwrap(), "tls ok");
        let heads = seen.lock().unwrap().clone();
        assert_eq!(heads.len(), 1);
        assert!(
            heads[0].starts_with(&format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n")),
            "{heads:?}"
        );
        // A proxy that refuses the tunnel: the error says so.
        let no_auth = HttpClientConfig {
            proxy_url: Some(format!("http://{proxy}")),
            tls_config: tls,
            ..Default::default()
        };
        let e = get_text(&no_auth, &url).await.unwrap_err();
        assert!(
            e.message.contains("proxy refused CONNECT to 127.0.0.1:"),
            "{e}"
        );
        assert!(
            e.message.contains("407 Proxy Authentication Required"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn tls_settings_verify_the_target() {
        let pki = pki();
        let addr = serve_tls(&pki, false).await;
        let url = format!("https://{addr}/");
        let with = |tls: TlsConfig| HttpClientConfig {
            tls_config: tls,
            ..Default::default()
        };
        assert_eq!(get_text(&with(pki.tls()), &url).await.unwrap(), "tls ok");
        // Without server_name the certificate does not match 127.0.0.1.
        let no_name = TlsConfig {
            ca_file: Some(pki.ca_file.clone()),
            ..Default::default()
        };
        let e = get_text(&with(no_name), &url).await.unwrap_err();
        assert_eq!(e.reason, FailureReason::Tls, "{e}");
        assert!(e.message.contains("certificate not valid for name"), "{e}");
        // The public roots do not know the test CA.
        let e = get_text(&with(TlsConfig::default()), &url)
            .await
            .unwrap_err();
        assert!(e.message.contains("UnknownIssuer"), "{e}");
        let insecure = TlsConfig {
            insecure_skip_verify: true,
            ..Default::default()
        };
        assert_eq!(get_text(&with(insecure), &url).await.unwrap(), "tls ok");

        let mtls = serve_tls(&pki, true).await;
        let url = format!("https://{mtls}/");
        assert_eq!(get_text(&with(pki.mtls()), &url).await.unwrap(), "tls ok");
        assert!(get_text(&with(pki.tls()), &url).await.is_err());
    }

    fn gzipped(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[tokio::test]
    async fn bodies_arrive_whole_and_bounded() {
        // Far bigger than a connection's read buffer, and a gzip body that
        // expands past the limit although its wire size is small.
        let big: Vec<u8> = (0..1_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let zipped = gzipped(&big);
        let plain = big.clone();
        let router = Router::new()
            .route("/big", get(move || async move { plain.clone() }))
            .route(
                "/gz",
                get(move || async move { ([("content-encoding", "gzip")], zipped.clone()) }),
            )
            .route("/br", get(|| async { ([("content-encoding", "br")], "x") }))
            .route(
                "/head",
                get(|| async { ([("x-big", "h".repeat(super::super::client::READ_BUF))], "x") }),
            );
        let addr = serve(router).await;
        let client = ScrapeClient::new(&HttpClientConfig::default()).unwrap();
        let cfg = HttpClientConfig::default();
        let mut buf = Vec::new();
        for path in ["big", "gz", "big"] {
            let ep = Endpoint::new(&format!("http://{addr}/{path}"), Duration::from_secs(5));
            fetch(&client, &cfg, &ep, 2 << 20, &mut buf).await.unwrap();
            assert!(buf == big, "{path}: {} bytes", buf.len());
        }
        for path in ["big", "gz"] {
            let ep = Endpoint::new(&format!("http://{addr}/{path}"), Duration::from_secs(5));
            let e = fetch(&client, &cfg, &ep, 500_000, &mut buf)
                .await
                .unwrap_err();
            assert_eq!(e.reason, FailureReason::BodyTooLarge, "{path}: {e}");
        }
        let ep = Endpoint::new(&format!("http://{addr}/br"), Duration::from_secs(5));
        let e = fetch(&client, &cfg, &ep, 1000, &mut buf).await.unwrap_err();
        assert_eq!(e.reason, FailureReason::ParseError, "{e}");
        assert!(e.message.contains("\"br\""), "{e}");
        // A response head must fit a connection's read buffer.
        let ep = Endpoint::new(&format!("http://{addr}/head"), Duration::from_secs(5));
        let e = fetch(&client, &cfg, &ep, 1000, &mut buf).await.unwrap_err();
        assert!(e.message.contains("message head is too large"), "{e}");
    }

    #[test]
    fn bad_proxy_urls_are_refused_without_their_password() {
        for (url, want) in [
            ("socks5://u:hunter2@proxy:1080", "is not http or https"),
            ("http://u:hunter2@[::1", "invalid IPv6"),
        ] {
            let cfg = HttpClientConfig {
                proxy_url: Some(url.into()),
                ..Default::default()
            };
            let e = ScrapeClient::new(&cfg).unwrap_err().to_string();
            assert!(e.contains(want) && !e.contains("hunter2"), "{e}");
        }
    }
}
