//! Authentication and TLS for the HTTP edge, in the shape of Prometheus's
//! web config file (`--web.config.file`): bcrypt-hashed basic-auth users and
//! a rustls server certificate.
//!
//! bcrypt is deliberately slow (tens of milliseconds per check), so
//! successful checks are remembered in a small bounded cache keyed by the
//! exact credentials; a wrong password always pays the full bcrypt cost.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use super::ApiState;

/// Failure to set up authentication or TLS.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate found; give a PEM encoded certificate chain in cert_file")]
    NoCertificate { path: String },
    #[error("{path}: no PEM private key found; give a PEM encoded key in key_file")]
    NoKey { path: String },
    #[error("tls_server_config: {0}")]
    Tls(String),
}

/// Checks basic-auth credentials against bcrypt hashes.
pub struct Authenticator {
    users: BTreeMap<String, String>,
    verified: Mutex<HashSet<(String, String)>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.users.len())
            .finish()
    }
}

impl Authenticator {
    const CACHE_MAX: usize = 256;

    /// `users` maps user names to bcrypt hashes; empty means no auth.
    pub fn new(users: BTreeMap<String, String>) -> Self {
        Authenticator {
            users,
            verified: Mutex::new(HashSet::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether the `Authorization` header value grants access.
    pub fn check(&self, authorization: Option<&HeaderValue>) -> bool {
        if !self.enabled() {
            return true;
        }
        let Some((user, pass)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let Some(hash) = self.users.get(&user) else {
            // Spend the same time as for a known user, so response timing
            // does not reveal which user names exist.
            let _ = bcrypt::verify(
                &pass,
                "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi",
            );
            return false;
        };
        let key = (user.clone(), pass.clone());
        if self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return true;
        }
        let ok = bcrypt::verify(&pass, hash).unwrap_or(false);
        if ok {
            let mut cache = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= Self::CACHE_MAX {
                cache.clear();
            }
            cache.insert(key);
        }
        ok
    }
}

fn parse_basic(v: &HeaderValue) -> Option<(String, String)> {
    use base64::Engine as _;
    let s = v.to_str().ok()?;
    let (scheme, rest) = s.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Middleware: every route behind it needs valid credentials when users are
/// configured.
pub async fn require_auth(
    State(st): State<ApiState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let auth = st.auth.clone();
    let header_value = req.headers().get(header::AUTHORIZATION).cloned();
    // bcrypt is CPU-bound; keep it off the async worker threads.
    let ok = if auth.enabled() {
        tokio::task::spawn_blocking(move || auth.check(header_value.as_ref()))
            .await
            .unwrap_or(false)
    } else {
        true
    };
    if ok {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic")],
            "Unauthorized\n",
        )
            .into_response()
    }
}

/// Builds a TLS acceptor from PEM files. `client_ca` with
/// `require_client_cert` enables mutual TLS.
pub fn load_tls_acceptor(
    cert_file: &Path,
    key_file: &Path,
    client_ca: Option<&Path>,
    require_client_cert: bool,
) -> Result<TlsAcceptor, AuthError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| AuthError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    let cert_pem = read(cert_file)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(AuthError::NoCertificate {
            path: cert_file.display().to_string(),
        });
    }
    let key_pem = read(key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| AuthError::NoKey {
        path: key_file.display().to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| AuthError::Tls(e.to_string()))?;
    let builder = match client_ca {
        Some(ca) => {
            let ca_pem = read(ca)?;
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&ca_pem).filter_map(Result::ok) {
                roots
                    .add(c)
                    .map_err(|e| AuthError::Tls(format!("client_ca_file: {e}")))?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let v = if require_client_cert {
                v
            } else {
                v.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(v.build().map_err(|e| AuthError::Tls(e.to_string()))?)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(certs, key).map_err(|e| {
        AuthError::Tls(format!(
            "cert_file and key_file do not form a valid pair: {e}"
        ))
    })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// A listener that completes TLS handshakes in background tasks, so one
/// slow client cannot stall accepting others.
pub struct TlsListener {
    rx: mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        std::net::SocketAddr,
    )>,
    local: std::net::SocketAddr,
}

impl TlsListener {
    pub fn new(
        listener: TcpListener,
        acceptor: TlsAcceptor,
        tracker: &tokio_util::task::TaskTracker,
        cancel: tokio_util::sync::CancellationToken,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let handshakes = tracker.clone();
        tracker.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = cancel.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((tcp, addr)) = accepted else {
                    // Out of file descriptors or similar: back off briefly.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                handshakes.spawn(async move {
                    let hs = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(tcp),
                    )
                    .await;
                    if let Ok(Ok(stream)) = hs {
                        let _ = tx.send((stream, addr)).await;
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task ended (shutdown): never yield again; the
            // server's graceful shutdown completes the serve future.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_against_bcrypt() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let a = Authenticator::new(BTreeMap::from([("alice".to_string(), hash)]));
        let good = HeaderValue::from_static("Basic YWxpY2U6czNjcmV0"); // alice:s3cret
        let bad = HeaderValue::from_static("Basic YWxpY2U6d3Jvbmc="); // alice:wrong
        assert!(a.check(Some(&good)));
        assert!(a.check(Some(&good)), "cached path");
        assert!(!a.check(Some(&bad)));
        assert!(!a.check(None));
        assert!(Authenticator::new(BTreeMap::new()).check(None));
    }
}
