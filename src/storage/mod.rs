//! Time-series storage: the seam between writers (scrape, push, recording
//! rules) and readers (PromQL, the HTTP API).
//!
//! Writers see only [`Appender`] (through [`Storage::appender`]); readers see
//! only [`Queryable`]. Both are traits because the engine behind them is
//! replaceable: [`DiskStorage`] is the durable engine (head index, XOR
//! chunks in memory-mapped block files, WAL with checkpoints, retention;
//! see `disk.rs`), and [`mem::MemStorage`] is a plain in-memory engine kept
//! for tests and as a differential oracle.
//!
//! Invariants every implementation keeps:
//! - samples of a series are strictly increasing in time; an older sample is
//!   rejected with [`AppendError::OutOfOrder`], the same timestamp with a
//!   different value with [`AppendError::Duplicate`], and neither aborts the
//!   rest of a batch;
//! - the staleness marker ([`crate::model::stale_nan`]) is stored like any
//!   other value and returned bit-exactly;
//! - an appender's samples become visible atomically at `commit`, and none
//!   of them at `rollback`.

mod blocks;
pub mod chunk;
mod disk;
mod encoding;
mod head;
pub mod mem;
pub mod wal;

pub use disk::{DiskStorage, MaintainReport, StorageOptions};
pub use wal::WalSync;

use crate::model::{Labels, Matcher, Sample, Timestamp};

/// Identifies a series inside one storage instance, for the life of the
/// series. Callers cache it to skip label lookups on the hot path.
pub type SeriesRef = u64;

/// Why one sample was not accepted. These are per-sample outcomes the
/// caller counts; they never abort the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("out of order sample")]
    OutOfOrder,
    #[error("duplicate sample for timestamp")]
    Duplicate,
    #[error("unknown series reference")]
    UnknownRef,
}

/// A storage-level failure (I/O, corruption, limits).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O at {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("query would select more than {limit} series; add label matchers to narrow it")]
    TooManySeries { limit: usize },
    #[error("{path}: offset {offset}: {reason}")]
    Corruption {
        path: String,
        offset: u64,
        reason: String,
    },
    #[error("storage at {path} is closed: appends and commits after close are refused")]
    Closed { path: String },
    #[error("{0}")]
    Other(String),
}

/// What a commit did, for the caller's accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub samples: u64,
}

/// A batch of writes. Samples become visible at [`Appender::commit`].
pub trait Appender: Send {
    /// Appends a sample to the series with these labels, creating the series
    /// if needed, and returns its reference for later [`Appender::append_ref`]
    /// calls.
    fn append(&mut self, labels: &Labels, t: Timestamp, v: f64) -> Result<SeriesRef, AppendError>;

    /// Appends to a series by a reference an earlier `append` returned. Fails
    /// with [`AppendError::UnknownRef`] when the series is gone (for example
    /// removed by retention); the caller then appends by labels.
    fn append_ref(&mut self, series: SeriesRef, t: Timestamp, v: f64) -> Result<(), AppendError>;

    /// [`Appender::append_ref`] for a run of samples: the scrape hot path.
    /// Each failure is pushed to `failed` as (index in `batch`, error), in
    /// order. The disk store takes one head-shard lock per run of
    /// neighbouring references instead of one per sample.
    fn append_refs(
        &mut self,
        batch: &[(SeriesRef, Timestamp, f64)],
        failed: &mut Vec<(usize, AppendError)>,
    ) {
        for (i, &(r, t, v)) in batch.iter().enumerate() {
            if let Err(e) = self.append_ref(r, t, v) {
                failed.push((i, e));
            }
        }
    }

    /// Makes every sample of this batch visible.
    fn commit(self: Box<Self>) -> Result<CommitStats, StorageError>;

    /// Discards every sample of this batch.
    fn rollback(self: Box<Self>);
}

/// One selected series: its labels and its samples in the selected window,
/// in time order, produced lazily.
pub struct Series {
    pub labels: Labels,
    pub samples: Box<dyn Iterator<Item = Sample> + Send>,
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series")
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

/// One native histogram sample.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSample {
    pub t: Timestamp,
    pub h: std::sync::Arc<crate::model::FloatHistogram>,
}

/// One selected series' native histogram samples in the selected window,
/// in time order.
#[derive(Debug, Clone)]
pub struct HistogramSeries {
    pub labels: Labels,
    pub samples: Vec<HistogramSample>,
}

/// Read access to stored series. All time bounds are inclusive milliseconds.
pub trait Queryable: Send + Sync {
    /// Series matching all `matchers` that have at least one sample in
    /// `[mint, maxt]`, sorted by labels, with their samples in that window.
    fn select(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<Series>, StorageError>;

    /// Whether this storage can hold native histogram samples at all; lets
    /// readers skip looking for them (the durable storage cannot).
    fn holds_histograms(&self) -> bool {
        false
    }

    /// Native histogram samples of series matching all `matchers` in
    /// `[mint, maxt]`, sorted by labels; series without any are left out.
    /// Only the in-memory storage of rule unit tests and PromQL test
    /// scripts holds them (watchpost ingests float samples only), so the
    /// default has none.
    fn select_histograms(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<HistogramSeries>, StorageError> {
        let _ = (matchers, mint, maxt);
        Ok(Vec::new())
    }

    /// Label sets of the series `select` would return, without samples.
    fn series(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<Labels>, StorageError>;

    /// Sorted label names of series matching `matchers` (all series when empty).
    fn label_names(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<String>, StorageError>;

    /// Sorted values of label `name` over series matching `matchers`.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<String>, StorageError>;
}

/// Head statistics for self-metrics and `/api/v1/status/tsdb`. Engines
/// fill what they have; the rest stays zero (see each field).
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadStats {
    pub series: u64,
    pub samples_appended: u64,
    pub out_of_order_samples: u64,
    pub duplicate_samples: u64,
    pub min_time: Option<Timestamp>,
    pub max_time: Option<Timestamp>,
    /// Samples older than the oldest writable block (already finalized);
    /// answered with [`AppendError::OutOfOrder`] and counted here, not in
    /// `out_of_order_samples`.
    pub out_of_bounds_samples: u64,
    pub series_created: u64,
    pub series_removed: u64,
    /// Chunks held by the head: open chunks plus closed chunks in blocks
    /// not yet finalized.
    pub head_chunks: u64,
    /// Heap bytes of open chunks (as of the last maintenance pass).
    pub open_chunk_bytes: u64,
    /// Closed chunks on disk, their samples and their encoded bytes
    /// (`closed_chunk_bytes / closed_chunk_samples` is bytes per sample).
    pub closed_chunks: u64,
    pub closed_chunk_samples: u64,
    pub closed_chunk_bytes: u64,
    pub blocks: u64,
    /// Bytes of block files (chunk records and indexes).
    pub block_bytes: u64,
    pub wal_bytes: u64,
    pub wal_fsyncs: u64,
    pub wal_fsync_seconds_total: f64,
    pub wal_fsync_seconds_max: f64,
    /// Corruptions found in the WAL, checkpoints and chunk files since open.
    pub corruptions: u64,
    pub replay_seconds: f64,
    pub checkpoints: u64,
    pub blocks_deleted_by_retention: u64,
}

/// One row of a top-N table in [`TsdbStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameCount {
    pub name: String,
    pub value: u64,
}

/// `headStats` of `/api/v1/status/tsdb`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TsdbHeadStats {
    pub num_series: u64,
    pub num_label_pairs: u64,
    pub chunk_count: u64,
    pub min_time: Option<Timestamp>,
    pub max_time: Option<Timestamp>,
}

/// The data of Prometheus's `/api/v1/status/tsdb`; tables are sorted by
/// value descending (then name) and cut to the requested limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TsdbStatus {
    pub head_stats: TsdbHeadStats,
    pub series_count_by_metric_name: Vec<NameCount>,
    pub label_value_count_by_label_name: Vec<NameCount>,
    /// Per label name, the summed length of its distinct values.
    pub memory_in_bytes_by_label_name: Vec<NameCount>,
    /// `name=value` pairs by number of series.
    pub series_count_by_label_value_pair: Vec<NameCount>,
}

/// Sorts `rows` by value descending, then name, and keeps `limit`.
pub fn top_n(mut rows: Vec<NameCount>, limit: usize) -> Vec<NameCount> {
    rows.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.name.cmp(&b.name)));
    rows.truncate(limit);
    rows
}

/// A complete storage engine: writers and readers.
pub trait Storage: Queryable {
    /// Starts a write batch.
    fn appender(&self) -> Box<dyn Appender + '_>;

    /// Current head statistics.
    fn stats(&self) -> HeadStats;

    /// Cardinality statistics for `/api/v1/status/tsdb`, tables cut to
    /// `limit` rows.
    fn tsdb_status(&self, limit: usize) -> TsdbStatus;
}
