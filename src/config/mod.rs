//! The YAML contract: `watchpost.yml` (Prometheus's `prometheus.yml` shape
//! plus watchpost's sections) parsed once, validated into typed structs.

mod secret;
mod types;

pub use secret::{REDACTED, Secret};
pub use types::*;
