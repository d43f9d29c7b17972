//! The YAML contract: `watchpost.yml` (Prometheus's `prometheus.yml` shape
//! plus watchpost's sections) parsed once, validated into typed structs.
//!
//! Data path: the file is read by [`load_file`] (or handed in by
//! [`load_str`]), deserialized into a serde mirror that keeps every value's
//! line and column (`raw`), checked by pure validation that collects every
//! problem (`validate`, `relabel`), and returned as the typed [`Config`]
//! (`types`) that `app` hands to the other layers. A failed load returns
//! every problem as `file:line:col: message`, so `watchpost check config`
//! and a reload report the same thing.
//!
//! This module does not open the files a config names (password files, CA
//! files, rule files, file_sd targets): their users read them when they need
//! them, as Prometheus does. The exceptions are the ones Prometheus makes at
//! load: `scrape_config_files`, and the certificate, key and CA files of the
//! web config file ([`load_web_config`]). [`http_client`] is the HTTP
//! client builder the config's users share; it reads files when a client
//! is built or a request sent, never at load.

mod alerting;
mod error;
mod heartbeats;
pub mod http_client;
pub mod notify;
mod push;
mod raw;
mod redact;
mod relabel;
mod reports;
mod secret;
mod types;
mod units;
mod validate;
mod web;

use std::path::Path;

pub use alerting::{AlertingConfig, AlertingError, AlertmanagerSet, parse_alerting};
pub use error::{ConfigError, Diagnostic};
pub use heartbeats::{
    HEARTBEAT_RESERVED_LABELS, HeartbeatConfig, MAX_HEARTBEAT_NAME, MAX_HEARTBEATS,
    MIN_HEARTBEAT_PERIOD,
};
// For other YAML contracts (rule files) that report in the same voice.
pub(crate) use error::{Diags, yaml_error};
pub use push::PushConfig;
pub use reports::{MAX_WINDOW, MIN_WINDOW, ReportConfig};
pub use secret::{REDACTED, Secret};
pub use types::*;
pub use units::{format_size, parse_size};
pub use web::{
    ClientAuth, TlsServerConfig, TlsVersion, WebServerConfig, load_web_config, load_web_config_str,
};

/// Reads and validates a config file. Errors name the file as `path` is
/// written; relative paths in the file resolve against its directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path.display().to_string();
    let base = path.parent().unwrap_or(Path::new(""));
    let mut config = load_str(&text, &name, base)?;
    config.source = Some(path.to_path_buf());
    Ok(config)
}

/// Validates config text. `name` is what errors show as the file (e.g.
/// "config/watchpost.yml"); relative paths resolve against `base_dir`.
/// `external_labels` values expand `$VAR` / `${VAR}` from the process
/// environment, as Prometheus does.
pub fn load_str(yaml: &str, name: &str, base_dir: &Path) -> Result<Config, ConfigError> {
    validate::load(yaml, name, base_dir, &|k| std::env::var(k).ok())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests;
