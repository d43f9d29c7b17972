//! The web config file (`--web.config.file`): Prometheus's exporter-toolkit
//! format for the HTTP server's TLS, basic auth users and response headers,
//! parsed and validated into [`WebServerConfig`].
//!
//! Like Prometheus at startup, loading reads the certificate, key and client
//! CA files to check that they hold PEM data, and checks that every user's
//! password hash is a bcrypt hash. Serving with it is the api module's job.
//!
//! Supported: `tls_server_config` (`cert_file`, `key_file`, `client_auth_type`
//! `NoClientCert` / `VerifyClientCertIfGiven` / `RequireAndVerifyClientCert`,
//! `client_ca_file`, `client_allowed_sans`, `min_version` / `max_version`
//! TLS12 or TLS13, `prefer_server_cipher_suites` which Go ignores too),
//! `basic_auth_users`, `http_server_config.headers` (the names
//! exporter-toolkit allows) and `http_server_config.http2` (accepted; the
//! server speaks HTTP/1.1). Refused with a reason: inline `cert`/`key`/
//! `client_ca`, `cipher_suites`, `curve_preferences`, client auth modes that
//! take a certificate without verifying it, TLS 1.0/1.1, `rate_limit`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_saphyr::Location;

use super::error::{ConfigError, Diags, yaml_error};
use super::raw::{S, SpannedMap};
use super::secret::Secret;
use super::validate::Cx;

/// The validated web config.
#[derive(Debug, Clone, Default)]
pub struct WebServerConfig {
    /// File the config was loaded from.
    pub source: Option<PathBuf>,
    /// TLS for the listener; None serves plain HTTP.
    pub tls: Option<TlsServerConfig>,
    /// User name -> bcrypt hash of the password. Empty means no basic auth.
    pub basic_auth_users: BTreeMap<String, Secret<String>>,
    /// Extra response headers (`http_server_config.headers`).
    pub headers: BTreeMap<String, String>,
    /// `http_server_config.http2` as written (default true). watchpost's
    /// server speaks HTTP/1.1, so this has no effect yet.
    pub http2: bool,
}

/// `tls_server_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsServerConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_auth: ClientAuth,
    /// CA bundle that client certificates are verified against; set
    /// whenever `client_auth` verifies.
    pub client_ca_file: Option<PathBuf>,
    /// When non-empty, a client certificate must carry one of these SANs.
    pub client_allowed_sans: Vec<String>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
}

/// `client_auth_type`, limited to the modes that verify what they accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert` (the default).
    NoClientCert,
    /// `VerifyClientCertIfGiven`: a certificate is optional but verified.
    VerifyClientCertIfGiven,
    /// `RequireAndVerifyClientCert`: mutual TLS.
    RequireAndVerifyClientCert,
}

/// TLS protocol versions the server can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// Reads and validates a web config file; relative paths in it resolve
/// against its directory.
pub fn load_web_config(path: &Path) -> Result<WebServerConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path.display().to_string();
    let base = path.parent().unwrap_or(Path::new(""));
    let mut c = load_web_config_str(&text, &name, base)?;
    c.source = Some(path.to_path_buf());
    Ok(c)
}

/// Like [`load_web_config`] for text already read: `name` is what errors
/// show as the file, relative paths resolve against `base_dir`.
pub fn load_web_config_str(
    yaml: &str,
    name: &str,
    base_dir: &Path,
) -> Result<WebServerConfig, ConfigError> {
    let raw: Option<RawWebConfig> = serde_saphyr::from_str(yaml)
        .map_err(|e| ConfigError::Invalid(vec![yaml_error(&e, yaml, name)]))?;
    let raw = raw.unwrap_or_default();
    let mut diags = Diags::default();
    let config = {
        let mut cx = Cx::new(name, yaml, base_dir, &mut diags);
        build(&mut cx, &raw)
    };
    if diags.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid(diags.into_sorted()))
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<S<RawTlsServer>>,
    http_server_config: Option<S<RawHttpServer>>,
    basic_auth_users: Option<SpannedMap<Option<S<String>>>>,
    rate_limit: Option<S<serde::de::IgnoredAny>>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTlsServer {
    cert_file: Option<S<String>>,
    key_file: Option<S<String>>,
    client_auth_type: Option<S<String>>,
    client_ca_file: Option<S<String>>,
    client_allowed_sans: Option<S<Vec<String>>>,
    min_version: Option<S<String>>,
    max_version: Option<S<String>>,
    /// Accepted for compatibility; Go ignores it as well.
    #[allow(dead_code)]
    prefer_server_cipher_suites: Option<bool>,
    cert: Option<S<serde::de::IgnoredAny>>,
    key: Option<S<serde::de::IgnoredAny>>,
    client_ca: Option<S<serde::de::IgnoredAny>>,
    cipher_suites: Option<S<serde::de::IgnoredAny>>,
    curve_preferences: Option<S<serde::de::IgnoredAny>>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpServer {
    http2: Option<bool>,
    headers: Option<SpannedMap<S<String>>>,
}

/// Response headers exporter-toolkit lets a web config set, with the values
/// it allows (empty: any value).
const ALLOWED_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

fn build(cx: &mut Cx<'_>, raw: &RawWebConfig) -> WebServerConfig {
    if let Some(r) = &raw.rate_limit {
        cx.err_at_key(
            "rate_limit",
            r.referenced,
            "rate_limit is not supported: put a reverse proxy in front of watchpost to limit request rates",
        );
    }
    let tls = raw
        .tls_server_config
        .as_ref()
        .and_then(|t| build_tls(cx, t));

    let mut basic_auth_users = BTreeMap::new();
    for (user, hash) in raw.basic_auth_users.iter().flat_map(|m| m.0.iter()) {
        let ctx = format!("basic_auth_users: user {:?}", user.value);
        if user.value.is_empty() || user.value.contains(':') {
            cx.err(
                user.referenced,
                format!("{ctx}: a user name must be non-empty and cannot contain ':'"),
            );
            continue;
        }
        let Some(hash) = hash else {
            cx.err(
                user.referenced,
                format!("{ctx}: the password hash is missing: {HASH_HINT}"),
            );
            continue;
        };
        match check_bcrypt(&hash.value) {
            Ok(()) => {
                basic_auth_users.insert(user.value.clone(), Secret::new(hash.value.clone()));
            }
            Err(why) => cx.err(hash.referenced, format!("{ctx}: {why}: {HASH_HINT}")),
        }
    }

    let mut headers = BTreeMap::new();
    let mut http2 = true;
    if let Some(h) = &raw.http_server_config {
        http2 = h.value.http2.unwrap_or(true);
        for (name, value) in h.value.headers.iter().flat_map(|m| m.0.iter()) {
            match ALLOWED_HEADERS.iter().find(|(n, _)| *n == name.value) {
                None => cx.err(
                    name.referenced,
                    format!(
                        "http_server_config: headers: {:?} can not be configured: use one of {}",
                        name.value,
                        ALLOWED_HEADERS.map(|(n, _)| n).join(", ")
                    ),
                ),
                Some((_, allowed))
                    if !allowed.is_empty() && !allowed.contains(&value.value.as_str()) =>
                {
                    cx.err(
                        value.referenced,
                        format!(
                            "http_server_config: headers: {}: invalid value {:?}: use {}",
                            name.value,
                            value.value,
                            allowed.join(" or ")
                        ),
                    )
                }
                Some(_) => {
                    headers.insert(name.value.clone(), value.value.clone());
                }
            }
        }
    }

    WebServerConfig {
        source: None,
        tls,
        basic_auth_users,
        headers,
        http2,
    }
}

const HASH_HINT: &str =
    "store a bcrypt hash, e.g. the output of htpasswd -nbBC 10 \"\" PASSWORD | tr -d ':\\n'";

/// Whether `h` is a well-formed bcrypt hash (`$2y$10$` + 53 characters of
/// bcrypt's base64), without revealing it in the error.
fn check_bcrypt(h: &str) -> Result<(), String> {
    let parts: bcrypt::HashParts = h
        .parse()
        .map_err(|_| "the password hash is not a bcrypt hash".to_string())?;
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(format!(
            "the password hash has bcrypt cost {cost}, outside the valid range 4 to 31"
        ));
    }
    let body = h.rsplit('$').next().unwrap_or("");
    if !body
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'/')
    {
        return Err("the password hash is not a bcrypt hash".to_string());
    }
    Ok(())
}

fn build_tls(cx: &mut Cx<'_>, t: &S<RawTlsServer>) -> Option<TlsServerConfig> {
    let raw = &t.value;
    let ctx = "tls_server_config: ";
    let before = cx.error_count();
    for (key, v, why) in [
        (
            "cert",
            &raw.cert,
            "write the certificate to a file and use cert_file",
        ),
        ("key", &raw.key, "write the key to a file and use key_file"),
        (
            "client_ca",
            &raw.client_ca,
            "write the CA bundle to a file and use client_ca_file",
        ),
        (
            "cipher_suites",
            &raw.cipher_suites,
            "watchpost's TLS library offers only modern cipher suites; remove the key",
        ),
        (
            "curve_preferences",
            &raw.curve_preferences,
            "watchpost's TLS library chooses key exchange groups itself; remove the key",
        ),
    ] {
        if let Some(v) = v {
            cx.err_at_key(
                key,
                v.referenced,
                format!("{ctx}{key} is not supported: {why}"),
            );
        }
    }
    let set = |v: &Option<S<String>>| v.as_ref().filter(|s| !s.value.is_empty()).cloned();
    let cert = set(&raw.cert_file);
    let key = set(&raw.key_file);
    let ca = set(&raw.client_ca_file);
    let auth = set(&raw.client_auth_type);
    // exporter-toolkit serves plain HTTP when none of these is set.
    if cert.is_none() && key.is_none() && ca.is_none() && auth.is_none() {
        return None;
    }
    let cert_file = match &cert {
        Some(c) => Some(pem_file(cx, ctx, "cert_file", c, PemKind::Certificates)),
        None => {
            cx.err(
                t.referenced,
                format!("{ctx}cert_file is missing: TLS needs a certificate and its key"),
            );
            None
        }
    };
    let key_file = match &key {
        Some(k) => Some(pem_file(cx, ctx, "key_file", k, PemKind::PrivateKey)),
        None => {
            cx.err(
                t.referenced,
                format!("{ctx}key_file is missing: TLS needs a certificate and its key"),
            );
            None
        }
    };
    let client_auth = match auth.as_ref().map(|a| a.value.as_str()) {
        None | Some("NoClientCert") => ClientAuth::NoClientCert,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyClientCertIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::RequireAndVerifyClientCert,
        Some(mode @ ("RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert")) => {
            cx.err(
                auth.as_ref().map(|a| a.referenced).unwrap_or(t.referenced),
                format!(
                    "{ctx}client_auth_type {mode} is not supported: it accepts client certificates without verifying them; use RequireAndVerifyClientCert with client_ca_file"
                ),
            );
            ClientAuth::NoClientCert
        }
        Some(other) => {
            cx.err(
                auth.as_ref().map(|a| a.referenced).unwrap_or(t.referenced),
                format!(
                    "{ctx}invalid client_auth_type {other:?}: use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
                ),
            );
            ClientAuth::NoClientCert
        }
    };
    let client_ca_file = ca
        .as_ref()
        .map(|c| pem_file(cx, ctx, "client_ca_file", c, PemKind::Certificates));
    match (&ca, client_auth) {
        (Some(c), ClientAuth::NoClientCert) if auth.is_none() || auth.as_ref().is_some_and(|a| a.value == "NoClientCert") => cx.err(
            c.referenced,
            format!("{ctx}client_ca_file is set but client_auth_type is NoClientCert: set client_auth_type: RequireAndVerifyClientCert"),
        ),
        (None, ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert) => cx.err(
            auth.as_ref().map(|a| a.referenced).unwrap_or(t.referenced),
            format!("{ctx}client_ca_file is missing: client certificates are verified against it"),
        ),
        _ => {}
    }
    let client_allowed_sans = raw
        .client_allowed_sans
        .as_ref()
        .map(|s| s.value.clone())
        .unwrap_or_default();
    if let Some(s) = &raw.client_allowed_sans
        && client_auth != ClientAuth::RequireAndVerifyClientCert
    {
        cx.err(
            s.referenced,
            format!("{ctx}client_allowed_sans needs client_auth_type: RequireAndVerifyClientCert"),
        );
    }
    let min_version = tls_version(
        cx,
        ctx,
        "min_version",
        raw.min_version.as_ref(),
        TlsVersion::Tls12,
    );
    let max_version = tls_version(
        cx,
        ctx,
        "max_version",
        raw.max_version.as_ref(),
        TlsVersion::Tls13,
    );
    if let (Some(m), true) = (&raw.max_version, min_version > max_version) {
        cx.err(
            m.referenced,
            format!("{ctx}max_version is lower than min_version"),
        );
    }
    if cx.error_count() != before {
        return None;
    }
    Some(TlsServerConfig {
        cert_file: cert_file?,
        key_file: key_file?,
        client_auth,
        client_ca_file,
        client_allowed_sans,
        min_version,
        max_version,
    })
}

fn tls_version(
    cx: &mut Cx<'_>,
    ctx: &str,
    key: &str,
    v: Option<&S<String>>,
    default: TlsVersion,
) -> TlsVersion {
    let Some(v) = v.filter(|v| !v.value.is_empty()) else {
        return default;
    };
    match v.value.as_str() {
        "TLS12" => TlsVersion::Tls12,
        "TLS13" => TlsVersion::Tls13,
        "TLS10" | "TLS11" => {
            cx.err(
                v.referenced,
                format!("{ctx}{key}: {} is not supported: watchpost serves TLS 1.2 and 1.3 only; use TLS12", v.value),
            );
            default
        }
        other => {
            cx.err(
                v.referenced,
                format!("{ctx}{key}: unknown TLS version {other:?}: use TLS12 or TLS13"),
            );
            default
        }
    }
}

enum PemKind {
    Certificates,
    PrivateKey,
}

/// Resolves a PEM file path and checks it holds what it should, as
/// Prometheus does when it starts with a web config.
fn pem_file(cx: &mut Cx<'_>, ctx: &str, key: &str, v: &S<String>, kind: PemKind) -> PathBuf {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let path = cx.path(&v.value);
    let shown = path.display().to_string();
    let at: Location = v.referenced;
    match kind {
        PemKind::Certificates => match CertificateDer::pem_file_iter(&path) {
            Err(e) => cx.err(
                at,
                format!("{ctx}{key}: cannot read {shown}: {}", pem_reason(e)),
            ),
            Ok(iter) => {
                let certs: Result<Vec<_>, _> = iter.collect();
                match certs {
                    Err(e) => cx.err(at, format!("{ctx}{key}: {shown}: {}", pem_reason(e))),
                    Ok(c) if c.is_empty() => cx.err(
                        at,
                        format!("{ctx}{key}: {shown} holds no PEM certificate (BEGIN CERTIFICATE)"),
                    ),
                    Ok(_) => {}
                }
            }
        },
        PemKind::PrivateKey => match PrivateKeyDer::from_pem_file(&path) {
            Ok(_) => {}
            Err(rustls::pki_types::pem::Error::NoItemsFound) => cx.err(
                at,
                format!("{ctx}{key}: {shown} holds no PEM private key (BEGIN PRIVATE KEY)"),
            ),
            Err(e) => cx.err(
                at,
                format!("{ctx}{key}: cannot read {shown}: {}", pem_reason(e)),
            ),
        },
    }
    path
}

fn pem_reason(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::Io(io) => io.to_string(),
        E::NoItemsFound => "no PEM data found".to_string(),
        other => format!("invalid PEM data: {other}"),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    const HASH: &str = "$2b$10$QPCDSALeT4kV4utqIJidruowGVfINkL.TQaMCsXjY8Nkw/PS/wSni";

    fn load(yaml: &str) -> Result<WebServerConfig, Vec<String>> {
        load_web_config_str(yaml, "web.yml", Path::new("/nonexistent")).map_err(|e| e.messages())
    }

    #[test]
    fn bcrypt_hashes_are_checked_without_echoing_them() {
        assert!(check_bcrypt(HASH).is_ok());
        assert!(check_bcrypt(&HASH.replace("$2b$", "$2y$")).is_ok());
        for bad in [
            "",
            "hunter2",
            "$2b$10$short",
            "$1$10$QPCDSALeT4kV4utqIJidruowGVfINkL.TQaMCsXjY8Nkw/PS/wSni",
        ] {
            let e = check_bcrypt(bad).unwrap_err();
            assert!(bad.is_empty() || !e.contains(bad), "{e}");
        }
        assert!(
            check_bcrypt(&HASH.replace("$10$", "$03$"))
                .unwrap_err()
                .contains("cost 3")
        );
        assert!(check_bcrypt(&HASH.replace('.', "!")).is_err());
    }

    #[test]
    fn no_tls_keys_means_plain_http() {
        let w = load(&format!("basic_auth_users:\n  a: '{HASH}'\n")).unwrap();
        assert!(w.tls.is_none());
        assert!(w.http2);
        assert_eq!(w.basic_auth_users["a"].expose(), HASH);
        // A hash never shows up in debug output.
        assert!(!format!("{w:?}").contains(HASH));
        let w = load("tls_server_config: {}\nhttp_server_config: {http2: false}\n").unwrap();
        assert!(w.tls.is_none() && !w.http2);
    }

    #[test]
    fn tls_needs_a_certificate_and_key() {
        assert_eq!(
            load("tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n")
                .unwrap_err(),
            [
                "web.yml:2:3: tls_server_config: cert_file is missing: TLS needs a certificate and its key",
                "web.yml:2:3: tls_server_config: key_file is missing: TLS needs a certificate and its key",
                "web.yml:2:21: tls_server_config: client_ca_file is missing: client certificates are verified against it",
            ]
        );
        let e = load("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  max_version: TLS12\n  min_version: TLS13\n")
            .unwrap_err();
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(e[0].starts_with(
            "web.yml:2:14: tls_server_config: cert_file: cannot read /nonexistent/c.pem: "
        ));
        assert!(e[1].starts_with(
            "web.yml:3:13: tls_server_config: key_file: cannot read /nonexistent/k.pem: "
        ));
        assert_eq!(
            e[2],
            "web.yml:4:16: tls_server_config: max_version is lower than min_version"
        );
    }
}
