//! The push side of ingestion: the Pushgateway API ([`pushgateway`]), the
//! Prometheus remote-write receiver ([`remote_write`]; push bodies in the
//! protobuf exposition format are decoded by [`metric_family`]) and the
//! dead man's switches ([`heartbeat`], `POST /api/v1/heartbeat/<name>`).
//!
//! Place on the data path: beside `scrape`, a writer into storage that
//! sees it only through [`crate::storage::Appender`]. Pushed groups are
//! re-appended on the global scrape interval, as Prometheus scraping a
//! Pushgateway with `honor_labels: true` would, and announce themselves
//! through the same [`crate::model::ScrapeHook`] as scrapes, so on_scrape
//! rule groups see pushed metrics at once. Remote-write samples keep the
//! timestamps they arrive with. Heartbeat alerts leave through a callback
//! that `app` wires to the notification pipeline, so this module never
//! imports `rules` or `notify`. The HTTP edge (`api`) decodes requests into
//! calls on these types; no HTTP type appears here.

pub mod heartbeat;
pub mod metric_family;
pub mod pushgateway;
pub mod remote_write;

use std::sync::Arc;

pub use pushgateway::{BodyFormat, GroupingKey, PushError, PushMode, PushStore};
pub use remote_write::{RemoteWriteError, WriteSummary};

/// What the HTTP edge needs for push ingestion. Whether each endpoint is
/// enabled is read from the current config at every request, so a reload
/// turns them on or off.
#[derive(Debug, Clone)]
pub struct PushIngest {
    pub store: Arc<PushStore>,
    /// `--web.enable-remote-write-receiver` was given.
    pub remote_write_flag: bool,
}
