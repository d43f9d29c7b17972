//! The HTTP client of a scrape job, an http_sd source or a notification
//! channel, built from the Prometheus-style `HttpClientConfig` (TLS, proxy,
//! redirects, credentials).
//!
//! Shared by the scrape loops, http_sd and the channels, so all reach their
//! peers the same way. It lives beside the config it interprets because
//! both `scrape` and `channels` use it and neither may import the other; it
//! is the one part of `config` that opens files (CA, certificate and key
//! files when a client is built, `*_file` secrets per request).
//!
//! Transport settings (TLS, proxy, redirects, timeout) are fixed when the
//! client is built; credentials are applied per request by [`authorize`],
//! which re-reads `*_file` secrets every time so a rotated token needs no
//! reload, as in Prometheus.
//!
//! Must not log or return secret values: errors name the file or the field,
//! never its content, and proxy URLs are shown with their password redacted.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::{HttpClientConfig, SecretSource, TlsConfig};

/// Sent with every request watchpost makes to targets and SD endpoints.
pub const USER_AGENT: &str = concat!("watchpost/", env!("CARGO_PKG_VERSION"));

/// Go's default redirect limit, which Prometheus keeps.
pub const MAX_REDIRECTS: usize = 10;

/// Credential files hold a token or a password; anything bigger is a
/// wrong path, not a secret.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Why a client could not be built or a request not be authorized.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error("tls_config: {field} {path}: {error}: check the path and its permissions")]
    ReadFile {
        field: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("tls_config: {field} {path}: not valid PEM: {reason}")]
    Pem {
        field: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "tls_config: ca_file {path}: no certificate found: \
         the file must hold at least one PEM \"CERTIFICATE\" block"
    )]
    NoCertificates { path: PathBuf },
    #[error("tls_config: {set} is set without {missing}: set both or neither")]
    HalfClientCert {
        set: &'static str,
        missing: &'static str,
    },
    #[error("tls_config: server_name {name:?} is not a valid DNS name or IP address")]
    ServerName { name: String },
    #[error("tls_config: {reason}")]
    Tls { reason: String },
    #[error("proxy_url {url:?} is invalid: {reason}")]
    Proxy { url: String, reason: String },
    #[error("building the http client: {reason}")]
    Build { reason: String },
    #[error("reading {field} from {path}: {error}: check the path and its permissions")]
    ReadSecret {
        field: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "{field} contains characters not allowed in an http header: \
         remove newlines and control characters"
    )]
    InvalidCredentials { field: &'static str },
}

/// Builds the transport for `cfg`: TLS settings (CA file, client
/// certificate, `insecure_skip_verify`, `server_name`), proxy, redirect
/// policy and an overall request `timeout` (zero means none).
///
/// Credentials are not baked in: call [`authorize`] on each request.
/// `enable_http2` is accepted and ignored: this build speaks HTTP/1.1 only.
pub fn build_http_client(
    cfg: &HttpClientConfig,
    timeout: Duration,
) -> Result<reqwest::Client, HttpClientError> {
    let mut b =
        reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(if cfg.follow_redirects {
                reqwest::redirect::Policy::limited(MAX_REDIRECTS)
            } else {
                reqwest::redirect::Policy::none()
            });
    if !timeout.is_zero() {
        b = b.timeout(timeout);
    }
    // Prometheus uses a proxy only when configured; reqwest would otherwise
    // pick up HTTP_PROXY from the environment behind the operator's back.
    b = match &cfg.proxy_url {
        Some(url) => {
            let proxy = reqwest::Proxy::all(url.as_str()).map_err(|e| HttpClientError::Proxy {
                url: redact_url(url),
                reason: error_chain(&e.without_url()),
            })?;
            b.proxy(proxy)
        }
        None => b.no_proxy(),
    };
    if let Some(tls) = tls_client_config(&cfg.tls_config)? {
        b = b.use_preconfigured_tls(tls);
    }
    b.build().map_err(|e| HttpClientError::Build {
        reason: error_chain(&e),
    })
}

/// Adds the configured credentials (basic auth or an `Authorization`
/// header) to `req`, reading secret files now.
pub fn authorize(
    req: reqwest::RequestBuilder,
    cfg: &HttpClientConfig,
) -> Result<reqwest::RequestBuilder, HttpClientError> {
    Ok(match authorization(cfg)? {
        Some(value) => req.header(AUTHORIZATION, value),
        None => req,
    })
}

/// The `Authorization` header `cfg` asks for (marked sensitive), reading
/// `*_file` secrets now: [`authorize`] for clients other than reqwest.
pub fn authorization(cfg: &HttpClientConfig) -> Result<Option<HeaderValue>, HttpClientError> {
    if let Some(basic) = &cfg.basic_auth {
        let password = match &basic.password {
            Some(src) => Some(read_secret(src, "basic_auth password")?),
            None => None,
        };
        if basic.username.chars().any(char::is_control)
            || password
                .as_deref()
                .is_some_and(|p| p.chars().any(char::is_control))
        {
            return Err(HttpClientError::InvalidCredentials {
                field: "basic_auth",
            });
        }
        let value = basic_auth_value(&basic.username, password.as_deref().unwrap_or("")).ok_or(
            HttpClientError::InvalidCredentials {
                field: "basic_auth",
            },
        )?;
        return Ok(Some(value));
    }
    if let Some(auth) = &cfg.authorization
        && let Some(src) = &auth.credentials
    {
        let credentials = read_secret(src, "authorization credentials")?;
        let mut value =
            HeaderValue::from_str(&format!("{} {}", auth.kind, credentials)).map_err(|_| {
                HttpClientError::InvalidCredentials {
                    field: "authorization credentials",
                }
            })?;
        value.set_sensitive(true);
        return Ok(Some(value));
    }
    Ok(None)
}

/// `Basic base64(user:password)`, marked sensitive; None when it cannot be
/// a header value.
pub fn basic_auth_value(user: &str, password: &str) -> Option<HeaderValue> {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The secret's value; file contents are trimmed of surrounding whitespace
/// (a trailing newline is almost always an accident), as Prometheus does.
/// `field` names the secret in the error (`bot_token`), never its value.
pub fn read_secret(src: &SecretSource, field: &'static str) -> Result<String, HttpClientError> {
    match src {
        SecretSource::Inline(s) => Ok(s.expose().clone()),
        SecretSource::File(path) => {
            let read = || -> std::io::Result<String> {
                let mut s = String::new();
                std::fs::File::open(path)?
                    .take(MAX_SECRET_FILE_BYTES)
                    .read_to_string(&mut s)?;
                Ok(s)
            };
            let s = read().map_err(|error| HttpClientError::ReadSecret {
                field,
                path: path.clone(),
                error,
            })?;
            Ok(s.trim().to_string())
        }
    }
}

/// `url` with any password replaced, for logs and errors. Works on the
/// text, so even a URL too broken to parse does not leak its password.
pub fn redact_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let Some(at) = url[start..authority_end].rfind('@').map(|i| start + i) else {
        return url.to_string();
    };
    match url[start..at].find(':').map(|i| start + i) {
        Some(colon) => format!("{}:xxxxx{}", &url[..colon], &url[at..]),
        None => url.to_string(),
    }
}

/// An error and its causes, joined with `: ` (reqwest's own text alone is
/// often just "error sending request").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// The rustls config for `tls`, for connections that are not made by
/// reqwest (SMTP over implicit TLS): the same verification rules as the
/// HTTP clients, with the public roots when no CA file is set.
pub fn rustls_client_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, HttpClientError> {
    match tls_client_config(tls)? {
        Some(c) => Ok(c),
        None => {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            Ok(rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| HttpClientError::Tls {
                    reason: e.to_string(),
                })?
                .with_root_certificates(roots)
                .with_no_client_auth())
        }
    }
}

/// The rustls config for `tls`, or None when reqwest's defaults (public
/// roots, full verification) already do what the config asks.
pub fn tls_client_config(tls: &TlsConfig) -> Result<Option<rustls::ClientConfig>, HttpClientError> {
    if tls.ca_file.is_none()
        && tls.cert_file.is_none()
        && tls.key_file.is_none()
        && tls.server_name.is_none()
        && !tls.insecure_skip_verify
    {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_err = |e: rustls::Error| HttpClientError::Tls {
        reason: e.to_string(),
    };

    let verifier: Arc<dyn ServerCertVerifier> = if tls.insecure_skip_verify {
        Arc::new(SkipVerify {
            provider: provider.clone(),
        })
    } else {
        // With a CA file Prometheus trusts exactly that file, not the
        // public roots as well.
        let roots = match &tls.ca_file {
            Some(path) => load_roots(path)?,
            None => RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        };
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| HttpClientError::Tls {
                reason: e.to_string(),
            })?;
        match &tls.server_name {
            Some(name) => {
                let server_name = ServerName::try_from(name.clone())
                    .map_err(|_| HttpClientError::ServerName { name: name.clone() })?;
                Arc::new(FixedNameVerifier {
                    inner: webpki,
                    name: server_name,
                })
            }
            None => webpki,
        }
    };

    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let certs = load_certs(cert, "cert_file")?;
            if certs.is_empty() {
                return Err(HttpClientError::Pem {
                    field: "cert_file",
                    path: cert.clone(),
                    reason: "no CERTIFICATE block found".to_string(),
                });
            }
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err("key_file", key, e))?;
            builder.with_client_auth_cert(certs, key).map_err(tls_err)?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err(HttpClientError::HalfClientCert {
                set: "cert_file",
                missing: "key_file",
            });
        }
        (None, Some(_)) => {
            return Err(HttpClientError::HalfClientCert {
                set: "key_file",
                missing: "cert_file",
            });
        }
    };
    // This build of reqwest speaks HTTP/1.1 only; offering h2 in ALPN
    // would let a server pick a protocol the connection cannot speak.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(config))
}

fn pem_err(field: &'static str, path: &Path, e: rustls::pki_types::pem::Error) -> HttpClientError {
    match e {
        rustls::pki_types::pem::Error::Io(error) => HttpClientError::ReadFile {
            field,
            path: path.to_path_buf(),
            error,
        },
        other => HttpClientError::Pem {
            field,
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

fn load_certs(
    path: &Path,
    field: &'static str,
) -> Result<Vec<CertificateDer<'static>>, HttpClientError> {
    CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(field, path, e))?
        .map(|c| c.map_err(|e| pem_err(field, path, e)))
        .collect()
}

fn load_roots(path: &Path) -> Result<RootCertStore, HttpClientError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, "ca_file")? {
        roots.add(cert).map_err(|e| HttpClientError::Pem {
            field: "ca_file",
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    if roots.is_empty() {
        return Err(HttpClientError::NoCertificates {
            path: path.to_path_buf(),
        });
    }
    Ok(roots)
}

/// Verifies the server's chain as usual but checks it against the
/// configured `server_name` instead of the host in the URL (Go's
/// `tls.Config.ServerName`). The SNI sent is still the URL's host: rustls
/// derives it from the connection, not from the verifier.
#[derive(Debug)]
struct FixedNameVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for FixedNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecure_skip_verify`: any certificate is accepted, but the handshake
/// signatures are still checked so the session keys belong to whoever
/// presented the certificate.
#[derive(Debug)]
struct SkipVerify {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) mod test_support {
    //! Servers and certificates for tests of HTTP clients (this one and
    //! the scrape client).
    use super::*;
    use crate::config::Secret;
    use axum::Router;
    use axum::http::HeaderMap;
    use axum::routing::get;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    use std::net::SocketAddr;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::TlsAcceptor;

    pub async fn serve(router: Router) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    }

    /// Answers with the Authorization header it received, 401 without one.
    pub fn auth_echo() -> Router {
        Router::new().route(
            "/auth",
            get(|h: HeaderMap| async move {
                match h.get("authorization") {
                    Some(v) => (axum::http::StatusCode::OK, v.to_str().unwrap().to_string()),
                    None => (axum::http::StatusCode::UNAUTHORIZED, String::new()),
                }
            }),
        )
    }

    pub fn inline(s: &str) -> Option<SecretSource> {
        Some(SecretSource::Inline(Secret::new(s.to_string())))
    }

    pub struct Pki {
        _dir: tempfile::TempDir,
        pub ca_file: PathBuf,
        pub client_cert: PathBuf,
        pub client_key: PathBuf,
        pub server_chain: Vec<CertificateDer<'static>>,
        pub server_key_pem: String,
        pub ca_der: CertificateDer<'static>,
    }

    impl Pki {
        /// Trusts the test CA and checks the server certificate's name.
        pub fn tls(&self) -> TlsConfig {
            TlsConfig {
                ca_file: Some(self.ca_file.clone()),
                server_name: Some("watchpost.test".into()),
                ..Default::default()
            }
        }

        /// [`Pki::tls`] plus the client certificate.
        pub fn mtls(&self) -> TlsConfig {
            TlsConfig {
                cert_file: Some(self.client_cert.clone()),
                key_file: Some(self.client_key.clone()),
                ..self.tls()
            }
        }
    }

    /// A CA, a server certificate for `watchpost.test` only (no IP address,
    /// so connecting to 127.0.0.1 needs `server_name`), and a client
    /// certificate, all signed by the CA.
    pub fn pki() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "watchpost test ca");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let mut sp = CertificateParams::new(vec!["watchpost.test".to_string()]).unwrap();
        sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = sp.signed_by(&server_key, &issuer).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut cp = CertificateParams::new(vec!["scraper.test".to_string()]).unwrap();
        cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = cp.signed_by(&client_key, &issuer).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, content: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, content).unwrap();
            p
        };
        let ca_file = write("ca.pem", ca_cert.pem());
        let client_cert_file = write("client.pem", client_cert.pem());
        let client_key_file = write("client.key", client_key.serialize_pem());
        Pki {
            ca_file,
            client_cert: client_cert_file,
            client_key: client_key_file,
            server_chain: vec![server_cert.der().clone()],
            server_key_pem: server_key.serialize_pem(),
            ca_der: ca_cert.der().clone(),
            _dir: dir,
        }
    }

    struct TlsListener {
        tcp: TcpListener,
        acceptor: TlsAcceptor,
    }

    impl axum::serve::Listener for TlsListener {
        type Io = tokio_rustls::server::TlsStream<TcpStream>;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                let Ok((stream, addr)) = self.tcp.accept().await else {
                    continue;
                };
                // Failed handshakes are the point of some tests: skip them.
                if let Ok(tls) = self.acceptor.accept(stream).await {
                    return (tls, addr);
                }
            }
        }

        fn local_addr(&self) -> std::io::Result<SocketAddr> {
            self.tcp.local_addr()
        }
    }

    pub async fn serve_tls(pki: &Pki, require_client_cert: bool) -> SocketAddr {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = RootCertStore::empty();
            roots.add(pki.ca_der.clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).unwrap();
        let config = builder
            .with_single_cert(pki.server_chain.clone(), key)
            .unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        };
        let router = Router::new().route("/", get(|| async { "tls ok" }));
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::config::{Authorization, BasicAuth};
    use axum::Router;
    use axum::http::HeaderMap;
    use axum::response::Redirect;
    use axum::routing::get;

    async fn get_text(cfg: &HttpClientConfig, url: &str) -> (u16, String) {
        let client = build_http_client(cfg, Duration::from_secs(5)).unwrap();
        let resp = authorize(client.get(url), cfg)
            .unwrap()
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    #[tokio::test]
    async fn authorization_headers_reach_the_server() {
        let addr = serve(auth_echo()).await;
        let url = format!("http://{addr}/auth");

        let none = HttpClientConfig::default();
        assert_eq!(get_text(&none, &url).await.0, 401);

        let bearer = HttpClientConfig {
            authorization: Some(Authorization {
                kind: "Bearer".into(),
                credentials: inline("s3cret"),
            }),
            ..Default::default()
        };
        assert_eq!(get_text(&bearer, &url).await, (200, "Bearer s3cret".into()));

        let basic = HttpClientConfig {
            basic_auth: Some(BasicAuth {
                username: "u".into(),
                password: inline("p"),
            }),
            ..Default::default()
        };
        // base64("u:p")
        assert_eq!(get_text(&basic, &url).await, (200, "Basic dTpw".into()));
        let no_password = HttpClientConfig {
            basic_auth: Some(BasicAuth {
                username: "u".into(),
                password: None,
            }),
            ..Default::default()
        };
        // base64("u:")
        assert_eq!(
            get_text(&no_password, &url).await,
            (200, "Basic dTo=".into())
        );

        // A credentials file is trimmed and re-read on every request, so a
        // rotated token is used without rebuilding the client.
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "first\n").unwrap();
        let from_file = HttpClientConfig {
            authorization: Some(Authorization {
                kind: "Token".into(),
                credentials: Some(SecretSource::File(token.clone())),
            }),
            ..Default::default()
        };
        let client = build_http_client(&from_file, Duration::from_secs(5)).unwrap();
        for want in ["first", "second"] {
            std::fs::write(&token, format!("  {want}\n")).unwrap();
            let resp = authorize(client.get(&url), &from_file)
                .unwrap()
                .send()
                .await
                .unwrap();
            assert_eq!(resp.text().await.unwrap(), format!("Token {want}"));
        }
    }

    #[test]
    fn secrets_stay_out_of_errors() {
        let client = build_http_client(&HttpClientConfig::default(), Duration::ZERO).unwrap();
        let bad = HttpClientConfig {
            authorization: Some(Authorization {
                kind: "Bearer".into(),
                credentials: inline("top\nsecret"),
            }),
            ..Default::default()
        };
        let e = authorize(client.get("http://127.0.0.1:1/"), &bad).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("authorization credentials"), "{text}");
        assert!(
            !text.contains("top") && !text.contains("secret\n"),
            "{text}"
        );

        let missing = HttpClientConfig {
            basic_auth: Some(BasicAuth {
                username: "u".into(),
                password: Some(SecretSource::File(PathBuf::from("/nonexistent/pw"))),
            }),
            ..Default::default()
        };
        let e = authorize(client.get("http://127.0.0.1:1/"), &missing).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("reading basic_auth password from /nonexistent/pw: "),
            "{e}"
        );

        let proxy = HttpClientConfig {
            proxy_url: Some("http://user:hunter2@[::1".into()),
            ..Default::default()
        };
        let e = build_http_client(&proxy, Duration::ZERO).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        for (url, want) in [
            (
                "http://user:hunter2@proxy:3128/",
                "http://user:xxxxx@proxy:3128/",
            ),
            ("http://user:hunter2@[::1", "http://user:xxxxx@[::1"),
            ("http://user@proxy/a@b", "http://user@proxy/a@b"),
            ("http://proxy:3128/x:y@z", "http://proxy:3128/x:y@z"),
            ("https://a:b:c@h/", "https://a:xxxxx@h/"),
        ] {
            assert_eq!(redact_url(url), want);
        }
    }

    #[tokio::test]
    async fn redirects_and_proxy() {
        let router = Router::new()
            .route("/a", get(|| async { Redirect::temporary("/b") }))
            .route(
                "/b",
                get(|h: HeaderMap| async move {
                    format!("b from {}", h.get("host").unwrap().to_str().unwrap())
                }),
            );
        let addr = serve(router).await;

        let no_follow = HttpClientConfig::default();
        let (status, _) = get_text(&no_follow, &format!("http://{addr}/a")).await;
        assert_eq!(status, 307);
        let follow = HttpClientConfig {
            follow_redirects: true,
            ..Default::default()
        };
        let (status, body) = get_text(&follow, &format!("http://{addr}/a")).await;
        assert_eq!((status, body), (200, format!("b from {addr}")));

        // Through a proxy, the request for an unresolvable host reaches the
        // proxy (our server) in absolute form.
        let proxied = HttpClientConfig {
            proxy_url: Some(format!("http://{addr}")),
            ..Default::default()
        };
        let (status, body) = get_text(&proxied, "http://target.invalid:9100/b").await;
        assert_eq!((status, body), (200, "b from target.invalid:9100".into()));
    }

    async fn try_get(tls: TlsConfig, url: &str) -> Result<String, String> {
        let cfg = HttpClientConfig {
            tls_config: tls,
            ..Default::default()
        };
        let client = build_http_client(&cfg, Duration::from_secs(5)).map_err(|e| e.to_string())?;
        let resp = client.get(url).send().await.map_err(|e| error_chain(&e))?;
        resp.text().await.map_err(|e| error_chain(&e))
    }

    #[tokio::test]
    async fn tls_ca_server_name_and_insecure() {
        let pki = pki();
        let addr = serve_tls(&pki, false).await;
        let url = format!("https://{addr}/");

        assert_eq!(try_get(pki.tls(), &url).await, Ok("tls ok".into()));

        // Without server_name the certificate does not match 127.0.0.1.
        let no_name = TlsConfig {
            ca_file: Some(pki.ca_file.clone()),
            ..Default::default()
        };
        let e = try_get(no_name, &url).await.unwrap_err();
        assert!(e.contains("certificate not valid for name"), "{e}");

        // The right name but the public roots: unknown issuer.
        let public_roots = TlsConfig {
            server_name: Some("watchpost.test".into()),
            ..Default::default()
        };
        let e = try_get(public_roots, &url).await.unwrap_err();
        assert!(e.contains("UnknownIssuer"), "{e}");

        // The wrong name with the right CA.
        let wrong_name = TlsConfig {
            ca_file: Some(pki.ca_file.clone()),
            server_name: Some("other.test".into()),
            ..Default::default()
        };
        let e = try_get(wrong_name, &url).await.unwrap_err();
        assert!(e.contains("certificate not valid for name"), "{e}");

        let insecure = TlsConfig {
            insecure_skip_verify: true,
            ..Default::default()
        };
        assert_eq!(try_get(insecure, &url).await, Ok("tls ok".into()));
    }

    #[tokio::test]
    async fn tls_client_certificate() {
        let pki = pki();
        let addr = serve_tls(&pki, true).await;
        let url = format!("https://{addr}/");
        assert_eq!(try_get(pki.mtls(), &url).await, Ok("tls ok".into()));
        assert!(try_get(pki.tls(), &url).await.is_err());
    }

    #[test]
    fn tls_config_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem at all\n").unwrap();
        let build = |tls: TlsConfig| {
            let cfg = HttpClientConfig {
                tls_config: tls,
                ..Default::default()
            };
            build_http_client(&cfg, Duration::ZERO)
                .unwrap_err()
                .to_string()
        };
        let e = build(TlsConfig {
            ca_file: Some(empty.clone()),
            ..Default::default()
        });
        assert!(
            e.starts_with(&format!(
                "tls_config: ca_file {}: no certificate",
                empty.display()
            )),
            "{e}"
        );
        let e = build(TlsConfig {
            ca_file: Some(dir.path().join("missing.pem")),
            ..Default::default()
        });
        assert!(
            e.starts_with("tls_config: ca_file ") && e.contains("missing.pem"),
            "{e}"
        );
        let e = build(TlsConfig {
            cert_file: Some(empty.clone()),
            ..Default::default()
        });
        assert_eq!(
            e,
            "tls_config: cert_file is set without key_file: set both or neither"
        );
        let e = build(TlsConfig {
            server_name: Some("bad name!".into()),
            ..Default::default()
        });
        assert!(e.contains("server_name \"bad name!\""), "{e}");
    }
}
