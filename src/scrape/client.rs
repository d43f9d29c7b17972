//! The HTTP client scrapes go through: one per scrape job, built from the
//! job's `HttpClientConfig`, keeping one connection per target alive
//! between scrapes as Prometheus does.
//!
//! Why not the reqwest client the rest of watchpost uses: a connection idle
//! in reqwest's pool keeps hyper's adaptive read buffer, which grows to the
//! largest read it saw (128 KiB to 400 KiB for an ordinary exporter body on
//! a fast link), and reqwest offers no way to bound it. With one connection
//! per target that was about 130 bytes per scraped series (100 targets of
//! 1000 series), the third-largest use of memory. Here every connection
//! reads through a buffer of exactly [`READ_BUF`] bytes; the body is copied
//! out of it into the scrape's own buffer chunk by chunk anyway.
//!
//! What it does, as reqwest did for scrapes: TLS with the job's
//! `tls_config` (rustls; the public roots by default) and an HTTP or HTTPS
//! `proxy_url` (requests in absolute form for `http` targets, a CONNECT
//! tunnel for `https` ones). The request itself, credentials, redirects and
//! `gzip` bodies are [`super::fetch`]'s.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Uri;
use hyper::header::HeaderValue;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::HttpClientConfig;
use crate::config::http_client::{
    HttpClientError, basic_auth_value, redact_url, tls_client_config,
};
use percent_encoding::percent_decode_str;

/// Bytes each connection reads at a time, and so holds while idle. Also the
/// largest response head accepted (hyper needs the whole head in it): real
/// exporters send a few hundred bytes. 16 KiB is one TLS record.
pub const READ_BUF: usize = 16 * 1024;

/// How long an idle connection is kept: Go's `IdleConnTimeout`, which
/// Prometheus keeps. Longer scrape intervals reconnect every time.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A CONNECT reply's head larger than this is not a proxy speaking HTTP.
const MAX_CONNECT_REPLY: usize = 8 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A scrape job's client. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct ScrapeClient {
    http: Client<Connector, Empty<Bytes>>,
    /// `Proxy-Authorization` for requests to `http` targets through a proxy
    /// with credentials in its URL (a tunnel sends it on CONNECT instead).
    proxy_auth: Option<HeaderValue>,
}

impl std::fmt::Debug for ScrapeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeClient").finish_non_exhaustive()
    }
}

impl ScrapeClient {
    /// Builds the client, reading the TLS files `cfg` names now.
    pub fn new(cfg: &HttpClientConfig) -> Result<Self, HttpClientError> {
        let tls = match tls_client_config(&cfg.tls_config)? {
            Some(c) => c,
            None => public_roots()?,
        };
        let proxy = match &cfg.proxy_url {
            Some(url) => Some(Arc::new(Proxy::parse(url)?)),
            None => None,
        };
        let proxy_auth = proxy.as_ref().and_then(|p| p.auth.clone());
        let connector = Connector {
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            proxy,
        };
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .http1_read_buf_exact_size(READ_BUF)
            .build(connector);
        Ok(ScrapeClient { http, proxy_auth })
    }

    /// `Proxy-Authorization` to add to requests for `http` targets.
    pub fn proxy_auth(&self) -> Option<&HeaderValue> {
        self.proxy_auth.as_ref()
    }

    /// Sends one request (no redirects followed here).
    pub async fn send(
        &self,
        req: hyper::Request<Empty<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
        self.http.request(req).await
    }
}

/// The public roots with full verification: what `tls_config` asks for
/// when it sets nothing.
fn public_roots() -> Result<rustls::ClientConfig, HttpClientError> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| HttpClientError::Tls {
        reason: e.to_string(),
    })?
    .with_root_certificates(roots)
    .with_no_client_auth();
    // HTTP/1.1 only: offering h2 would let a server pick what this client
    // cannot speak.
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(c)
}

/// A parsed `proxy_url`.
#[derive(Debug)]
struct Proxy {
    host: String,
    port: u16,
    /// The proxy itself is reached over TLS (`https://` proxy URL).
    tls: bool,
    auth: Option<HeaderValue>,
}

impl Proxy {
    fn parse(raw: &str) -> Result<Self, HttpClientError> {
        let bad = |reason: String| HttpClientError::Proxy {
            url: redact_url(raw),
            reason,
        };
        let url = reqwest::Url::parse(raw).map_err(|e| bad(e.to_string()))?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(bad(format!("scheme {other:?} is not http or https"))),
        };
        let host = match url.host_str() {
            Some(h) => h.trim_start_matches('[').trim_end_matches(']').to_string(),
            None => return Err(bad("no host".to_string())),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let auth = if url.username().is_empty() {
            None
        } else {
            // The URL keeps userinfo percent-encoded; the header wants it raw.
            let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            let user = decode(url.username());
            let pass = decode(url.password().unwrap_or(""));
            Some(
                basic_auth_value(&user, &pass)
                    .ok_or_else(|| bad("credentials are not a valid header".to_string()))?,
            )
        };
        Ok(Proxy {
            host,
            port,
            tls,
            auth,
        })
    }
}

/// Opens connections for the pool: TCP, then a CONNECT tunnel and TLS as
/// the target and the proxy need.
#[derive(Clone)]
struct Connector {
    tls: tokio_rustls::TlsConnector,
    proxy: Option<Arc<Proxy>>,
}

impl tower::Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect(dst).await })
    }
}

impl Connector {
    async fn connect(self, dst: Uri) -> Result<Conn, BoxError> {
        let https = match dst.scheme_str() {
            Some("https") => true,
            Some("http") | None => false,
            Some(other) => return Err(format!("unsupported scheme {other:?}").into()),
        };
        let host = dst
            .host()
            .ok_or("URL has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = dst.port_u16().unwrap_or(if https { 443 } else { 80 });
        let (io, proxied) = match &self.proxy {
            None => (tcp(&host, port).await?, false),
            Some(p) => {
                let mut io = tcp(&p.host, p.port).await?;
                if p.tls {
                    io = self.handshake(&p.host, io).await?;
                }
                if https {
                    (tunnel(io, &host, port, p.auth.as_ref()).await?, false)
                } else {
                    (io, true)
                }
            }
        };
        let io = if https {
            self.handshake(&host, io).await?
        } else {
            io
        };
        Ok(Conn {
            io: TokioIo::new(io),
            proxied,
        })
    }

    async fn handshake(&self, host: &str, io: BoxIo) -> Result<BoxIo, BoxError> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| format!("{host:?} is not a valid TLS server name"))?;
        Ok(Box::new(self.tls.connect(name, io).await?))
    }
}

async fn tcp(host: &str, port: u16) -> io::Result<BoxIo> {
    let s = TcpStream::connect((host, port)).await?;
    // Requests are one small write; Nagle would only delay them.
    s.set_nodelay(true)?;
    Ok(Box::new(s))
}

/// Asks the proxy on `io` for a tunnel to `host:port`.
async fn tunnel(
    mut io: BoxIo,
    host: &str,
    port: u16,
    auth: Option<&HeaderValue>,
) -> Result<BoxIo, BoxError> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes();
    if let Some(a) = auth {
        head.extend_from_slice(b"Proxy-Authorization: ");
        head.extend_from_slice(a.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    io.write_all(&head).await?;
    io.flush().await?;
    // Byte by byte up to the blank line: anything after it is the tunnel.
    let mut reply = Vec::with_capacity(256);
    while !reply.ends_with(b"\r\n\r\n") {
        if reply.len() >= MAX_CONNECT_REPLY {
            return Err("proxy reply to CONNECT is too large".into());
        }
        let mut b = [0u8; 1];
        if io.read(&mut b).await? == 0 {
            return Err("proxy closed the connection during CONNECT".into());
        }
        reply.push(b[0]);
    }
    let status = reply.split(|&c| c == b'\r').next().unwrap_or_default();
    let status = String::from_utf8_lossy(status);
    let ok = status
        .split(' ')
        .nth(1)
        .is_some_and(|code| code.len() == 3 && code.starts_with('2'));
    if !ok {
        return Err(format!("proxy refused CONNECT to {authority}: {status}").into());
    }
    Ok(io)
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}
type BoxIo = Box<dyn Io>;

/// A connection handed to the pool.
struct Conn {
    io: TokioIo<BoxIo>,
    /// Plain HTTP through a proxy: requests go out in absolute form.
    proxied: bool,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new().proxy(self.proxied)
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
