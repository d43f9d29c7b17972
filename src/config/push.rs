//! `push:`, the switches and bounds of push ingestion (the Pushgateway API
//! and the remote-write receiver): its serde mirror, its validation and its
//! typed form. Both endpoints are off unless enabled here (remote write
//! also by the `--web.enable-remote-write-receiver` flag, which `app`
//! reads, not this module).

use serde::{Deserialize, Serialize};

use super::raw::S;
use super::units::{format_size, parse_size};
use super::validate::Cx;

/// Default [`PushConfig::max_request_bytes`]: 10 MiB, well above what a
/// Prometheus remote-write shard sends (a few hundred KiB) or a batch job
/// pushes.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 10 << 20;
/// Default [`PushConfig::max_samples_per_request`].
pub const DEFAULT_MAX_SAMPLES_PER_REQUEST: u64 = 100_000;
/// Default [`PushConfig::max_series_per_group`].
pub const DEFAULT_MAX_SERIES_PER_GROUP: u64 = 10_000;
/// Default [`PushConfig::max_groups`].
pub const DEFAULT_MAX_GROUPS: u64 = 10_000;

/// `push:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPush {
    pub pushgateway: Option<bool>,
    pub remote_write: Option<bool>,
    pub max_request_bytes: Option<S<String>>,
    pub max_samples_per_request: Option<S<u64>>,
    pub max_series_per_group: Option<S<u64>>,
    pub max_groups: Option<S<u64>>,
}

/// `push:`: push ingestion. Every bound applies per request or in total,
/// and a request over one is refused with a 4xx naming it; nothing of it
/// is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushConfig {
    /// Serve the Pushgateway API (`/metrics/job/...`, `/api/v1/metrics`).
    pub pushgateway: bool,
    /// Serve the remote-write receiver (`POST /api/v1/write`).
    pub remote_write: bool,
    /// Largest request body, and for remote write also the largest
    /// decompressed message (default 10MiB).
    #[serde(serialize_with = "ser_size")]
    pub max_request_bytes: u64,
    /// Most samples one request may carry (default 100000).
    pub max_samples_per_request: u64,
    /// Most series one Pushgateway group may hold after a push (default
    /// 10000).
    pub max_series_per_group: u64,
    /// Most Pushgateway groups kept at once (default 10000); a push that
    /// would create one more is refused.
    pub max_groups: u64,
}

fn ser_size<Ser: serde::Serializer>(v: &u64, s: Ser) -> Result<Ser::Ok, Ser::Error> {
    s.serialize_str(&format_size(*v))
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            pushgateway: false,
            remote_write: false,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_samples_per_request: DEFAULT_MAX_SAMPLES_PER_REQUEST,
            max_series_per_group: DEFAULT_MAX_SERIES_PER_GROUP,
            max_groups: DEFAULT_MAX_GROUPS,
        }
    }
}

/// Validates `push:`; every problem is reported with its position.
pub(crate) fn build_push(cx: &mut Cx<'_>, raw: Option<&S<Option<RawPush>>>) -> PushConfig {
    let mut out = PushConfig::default();
    let Some(raw) = raw.and_then(|r| r.value.as_ref()) else {
        return out;
    };
    out.pushgateway = raw.pushgateway.unwrap_or(false);
    out.remote_write = raw.remote_write.unwrap_or(false);
    if let Some(v) = &raw.max_request_bytes {
        match parse_size(&v.value) {
            Ok(0) => cx.err(
                v.referenced,
                "push: max_request_bytes: must be greater than 0 (for example 10MiB)",
            ),
            Ok(n) => out.max_request_bytes = n,
            Err(e) => cx.err(v.referenced, format!("push: max_request_bytes: {e}")),
        }
    }
    let counts = [
        (
            "max_samples_per_request",
            &raw.max_samples_per_request,
            &mut out.max_samples_per_request,
        ),
        (
            "max_series_per_group",
            &raw.max_series_per_group,
            &mut out.max_series_per_group,
        ),
        ("max_groups", &raw.max_groups, &mut out.max_groups),
    ];
    for (key, v, slot) in counts {
        if let Some(v) = v {
            if v.value == 0 {
                cx.err(
                    v.referenced,
                    format!("push: {key}: must be greater than 0; remove the key for the default"),
                );
            } else {
                *slot = v.value;
            }
        }
    }
    out
}
