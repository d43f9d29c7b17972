//! One target's scrape loop: fetch on a fixed phase of the interval, parse,
//! label, append, report, and mark vanished series stale.
//!
//! The hot path is the cache hit: a sample whose exact series text was seen
//! before costs one hash lookup and one `append_ref`; labels are only built
//! (target labels, `honor_labels`, metric relabeling, limits) the first time
//! a series text is seen. The loop owns its [`ScrapeCache`] and hands it back
//! when it stops, so a reload that keeps the target keeps the cache.
//!
//! Writes go through `storage::Appender` only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::cache::SeriesCache;
use super::client::ScrapeClient;
use super::fetch::{self, FailureReason, ScrapeFailure};
use super::parse::{Checks, Format, Known, ParsedSample, Parser};
use super::relabel;
use super::target::Target;
use crate::config::ScrapeConfig;
use crate::model::{Labels, METRIC_NAME, Timestamp, stale_nan, timestamp_of};
use crate::storage::{AppendError, Appender, SeriesRef, Storage};
use crate::telemetry::ScrapeMetrics;

/// Cache entry marker for series that metric relabeling dropped.
const DROPPED: SeriesRef = SeriesRef::MAX;

/// Names of the series written after every scrape, in this order.
const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// Health of a target as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// What the last scrape of a target did.
#[derive(Debug, Clone)]
pub struct TargetStatus {
    pub health: Health,
    pub last_scrape: Option<SystemTime>,
    pub last_duration: Duration,
    /// `reason: detail`, e.g. `timeout: no response within 10s`.
    pub last_error: Option<String>,
    pub last_samples: u64,
}

/// A target plus its live status, shared between its loop and the API.
#[derive(Debug)]
pub struct TargetHandle {
    pub target: Target,
    status: Mutex<TargetStatus>,
}

impl TargetHandle {
    pub fn new(target: Target) -> Self {
        TargetHandle {
            target,
            status: Mutex::new(TargetStatus {
                health: Health::Unknown,
                last_scrape: None,
                last_duration: Duration::ZERO,
                last_error: None,
                last_samples: 0,
            }),
        }
    }

    pub fn status(&self) -> TargetStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_status(&self, s: TargetStatus) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }
}

#[derive(Debug, Clone, Copy)]
struct CacheEntry {
    series: SeriesRef,
    /// Iteration in which the series text was last seen. 32 bits, as
    /// every cached series pays for it: iterations only ever compare for
    /// equality with the current one or the one before, so wrapping (after
    /// 2^32 scrapes, 136 years at one a second) does no harm.
    seen: u32,
    /// The value `seen` had before this scrape set it, so a scrape that
    /// fails half-way can be undone (`u32::MAX`: new in this scrape).
    prev: u32,
    /// Index of the stored metric name in [`MetricNames`] (unused for
    /// dropped series).
    name: u32,
    /// The sample carried its own timestamp: no staleness marker for it,
    /// as Prometheus does (the exporter owns its timeline).
    explicit_ts: bool,
    /// The type rules the series text passed when it last parsed, offered
    /// back to the parser with the text.
    checks: Checks,
}

/// The stored metric names a target currently exposes, maintained as cache
/// entries come and go (so cache hits cost nothing), and published with
/// every [`ScrapeEvent`].
#[derive(Debug, Default)]
struct MetricNames {
    index: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
    /// Name and number of live cache entries with it.
    names: Vec<(Box<str>, u32)>,
    dirty: bool,
    current: Arc<Vec<String>>,
}

impl MetricNames {
    fn acquire(&mut self, name: &str) -> u32 {
        let id = match self.index.get(name) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as u32;
                self.names.push((name.into(), 0));
                self.index.insert(name.into(), id);
                id
            }
        };
        let slot = &mut self.names[id as usize].1;
        if *slot == 0 {
            self.dirty = true;
        }
        *slot += 1;
        id
    }

    fn release(&mut self, id: u32) {
        if let Some(slot) = self.names.get_mut(id as usize).map(|n| &mut n.1) {
            *slot = slot.saturating_sub(1);
            if *slot == 0 {
                self.dirty = true;
            }
        }
    }

    fn clear(&mut self) {
        *self = MetricNames::default();
    }

    /// Sorted live names plus the report series' names.
    fn snapshot(&mut self) -> Arc<Vec<String>> {
        if self.dirty || self.current.is_empty() {
            let mut v: Vec<String> = self
                .names
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(name, _)| name.to_string())
                .chain(REPORT_NAMES.iter().map(|n| n.to_string()))
                .collect();
            v.sort_unstable();
            v.dedup();
            self.current = Arc::new(v);
            self.dirty = false;
        }
        self.current.clone()
    }
}

/// Samples of known series waiting to be appended as one run.
struct RefRuns<'a> {
    refs: Vec<(SeriesRef, Timestamp, f64)>,
    samples: Vec<ParsedSample<'a>>,
    failed: Vec<(usize, AppendError)>,
}

impl RefRuns<'_> {
    /// Samples per run: enough that locks and calls are paid per run, few
    /// enough that the parsed samples stay in cache.
    const LEN: usize = 256;

    fn new() -> Self {
        RefRuns {
            refs: Vec::with_capacity(Self::LEN),
            samples: Vec::with_capacity(Self::LEN),
            failed: Vec::new(),
        }
    }
}

/// Samples storage turned away, by reason, for the scrape's counters.
#[derive(Default)]
struct Rejected {
    out_of_order: u64,
    duplicate: u64,
}

impl Rejected {
    fn count(&mut self, res: Result<(), AppendError>) {
        match res {
            Ok(()) | Err(AppendError::UnknownRef) => {}
            Err(AppendError::OutOfOrder) => self.out_of_order += 1,
            Err(AppendError::Duplicate) => self.duplicate += 1,
        }
    }
}

/// Series text -> storage reference, plus what was seen in which scrape.
#[derive(Debug, Default)]
pub struct ScrapeCache {
    entries: SeriesCache<CacheEntry>,
    names: MetricNames,
    report: [Option<SeriesRef>; 5],
    iter: u32,
    /// Size of the last body, to pre-size the next buffer.
    last_body: usize,
}

impl ScrapeCache {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends a staleness marker at `t` for every series the last scrape
    /// produced (and the report series), then forgets them. Used when a
    /// target goes away.
    pub fn mark_all_stale(&mut self, app: &mut dyn Appender, t: Timestamp) {
        let last = self.iter;
        for e in self.entries.values() {
            if e.seen == last && e.series != DROPPED && !e.explicit_ts {
                let _ = app.append_ref(e.series, t, stale_nan());
            }
        }
        for r in self.report.iter().flatten() {
            let _ = app.append_ref(*r, t, stale_nan());
        }
        self.entries.clear();
        self.names.clear();
        self.report = [None; 5];
    }
}

/// A pool of body buffers shared by all loops. Keeping one buffer per target
/// would hold (targets x body size) bytes forever; only a few scrapes run at
/// once, so a few buffers serve them all.
#[derive(Debug, Default)]
pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    const MAX_POOLED: usize = 16;
    /// Buffers grown beyond this by one huge scrape are not kept.
    const MAX_KEPT_CAPACITY: usize = 16 << 20;

    pub fn get(&self, hint: usize) -> Vec<u8> {
        let mut b = self
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        b.clear();
        b.reserve(hint);
        b
    }

    pub fn put(&self, b: Vec<u8>) {
        if b.capacity() > Self::MAX_KEPT_CAPACITY {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < Self::MAX_POOLED {
            free.push(b);
        }
    }
}

/// Everything a loop shares with the other loops of its job.
#[derive(Clone)]
pub struct PoolContext {
    pub cfg: Arc<ScrapeConfig>,
    pub client: ScrapeClient,
    pub storage: Arc<dyn Storage>,
    pub metrics: ScrapeMetrics,
    pub buffers: Arc<BufferPool>,
    /// Set when the whole job must fail its scrapes (target_limit exceeded).
    pub forced_error: Arc<RwLock<Option<ScrapeFailure>>>,
    /// Mixed into the phase hash so that two watchposts with different
    /// external labels do not scrape a shared target in lockstep.
    pub offset_seed: u64,
    /// Told about every scrape (low-latency rule evaluation).
    pub hook: Option<crate::model::ScrapeHook>,
}

/// Counts from one scrape, written as the report series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrapeCounts {
    pub scraped: u64,
    pub post_relabel: u64,
    pub added: u64,
}

/// One target's loop.
pub struct ScrapeLoop {
    ctx: PoolContext,
    handle: Arc<TargetHandle>,
    cache: ScrapeCache,
    endpoint: fetch::Endpoint,
}

impl ScrapeLoop {
    pub fn new(ctx: PoolContext, handle: Arc<TargetHandle>, cache: ScrapeCache) -> Self {
        let endpoint = fetch::Endpoint::new(&handle.target.url, handle.target.scrape_timeout);
        ScrapeLoop {
            ctx,
            handle,
            cache,
            endpoint,
        }
    }

    /// Runs until `cancel` fires, then returns the cache. When `stale_on_stop`
    /// is set at that moment, the target's series get staleness markers
    /// first (the target went away); otherwise they are left as they are
    /// (shutdown, or a reload that hands the cache to a successor loop).
    // The loop is the scheduler: it alone reads the wall clock and passes
    // `now` down to the scrape.
    #[allow(clippy::disallowed_methods)]
    pub async fn run(
        mut self,
        cancel: CancellationToken,
        stale_on_stop: Arc<AtomicBool>,
    ) -> ScrapeCache {
        let interval = self
            .handle
            .target
            .scrape_interval
            .max(Duration::from_millis(1));
        let first = SystemTime::now()
            + scrape_offset(
                self.handle.target.key() ^ self.ctx.offset_seed,
                interval,
                SystemTime::now(),
            );
        let start = tokio::time::Instant::now()
            + first.duration_since(SystemTime::now()).unwrap_or_default();
        let mut ticker = tokio::time::interval_at(start, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let job_label = vec![("job", self.handle.target.job.clone())];
        let mut last_tick: Option<tokio::time::Instant> = None;
        let mut aligned = first;
        loop {
            let tick = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                t = ticker.tick() => t,
            };
            if let Some(prev) = last_tick {
                let gap = tick.duration_since(prev);
                let missed = (gap.as_nanos() / interval.as_nanos()).saturating_sub(1) as u64;
                if missed > 0 {
                    self.ctx
                        .metrics
                        .missed
                        .get_or_create(&job_label)
                        .inc_by(missed);
                }
            }
            last_tick = Some(tick);
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = self.scrape_and_report(align_scrape_time(SystemTime::now(), &mut aligned, interval)) => {}
            }
        }
        if stale_on_stop.load(Ordering::Acquire) {
            let storage = self.ctx.storage.clone();
            let mut app = storage.appender();
            self.cache
                .mark_all_stale(app.as_mut(), timestamp_of(SystemTime::now()));
            if let Err(e) = app.commit() {
                tracing::warn!(job = %self.handle.target.job, target = %self.handle.target.url, error = %e, "writing staleness markers failed");
            }
        }
        self.cache
    }

    /// One scrape at wall-clock time `now`: fetch, append, report. Never
    /// fails; failures become `up 0` and the target's last error.
    pub async fn scrape_and_report(
        &mut self,
        now: SystemTime,
    ) -> Result<ScrapeCounts, ScrapeFailure> {
        let started = std::time::Instant::now();
        let ts = timestamp_of(now);
        let handle = self.handle.clone();
        let target = &handle.target;
        let job_label = vec![("job", target.job.clone())];
        self.ctx.metrics.scrapes.get_or_create(&job_label).inc();
        self.cache.iter = self.cache.iter.wrapping_add(1);

        let forced = self
            .ctx
            .forced_error
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut buf = self
            .ctx
            .buffers
            .get(self.cache.last_body + self.cache.last_body / 8);
        let fetched = match forced {
            Some(f) => Err(f),
            None => {
                let limit = match self.ctx.cfg.limits.body_size_limit {
                    0 => fetch::DEFAULT_BODY_LIMIT,
                    n => n,
                };
                fetch::fetch(
                    &self.ctx.client,
                    &self.ctx.cfg.http,
                    &self.endpoint,
                    limit,
                    &mut buf,
                )
                .await
            }
        };
        // Body, staleness markers and report go to storage in one commit,
        // as in Prometheus: one WAL record and one pass over the commit
        // path per scrape instead of two. The appender is only taken here,
        // after the last await, so the task never holds it while parked.
        let storage = self.ctx.storage.clone();
        let mut app = storage.appender();
        let mut result = fetched.and_then(|f| {
            self.cache.last_body = buf.len();
            let format = Format::from_content_type(f.content_type.as_deref());
            self.append_samples(app.as_mut(), &buf, format, ts)
        });
        self.ctx.buffers.put(buf);
        let duration = started.elapsed();
        self.ctx.metrics.duration.observe(duration.as_secs_f64());

        let (up, counts) = match &result {
            Ok(c) => {
                self.stale_and_forget(app.as_mut(), ts);
                (1.0, *c)
            }
            Err(f) => {
                // Nothing of a failed scrape is stored: drop what the body
                // had queued before the failure and start a fresh batch.
                std::mem::replace(&mut app, storage.appender()).rollback();
                self.count_failure(f);
                // A failed scrape ends every series of the previous one, as
                // in Prometheus: rules must not keep seeing old values.
                self.stale_unseen(app.as_mut(), ts);
                (0.0, ScrapeCounts::default())
            }
        };
        self.report(app.as_mut(), ts, up, duration, counts);
        if let Err(e) = app.commit() {
            tracing::warn!(job = %target.job, target = %target.url, error = %e, "storing the scrape failed");
            if result.is_ok() {
                let f = ScrapeFailure::new(FailureReason::Connection, format!("storage: {e}"));
                self.count_failure(&f);
                result = Err(f);
            }
        }
        if let Some(hook) = &self.ctx.hook {
            hook(&crate::model::ScrapeEvent {
                job: target.job.clone(),
                timestamp: ts,
                metric_names: self.cache.names.snapshot(),
            });
        }
        self.handle.set_status(TargetStatus {
            health: if result.is_ok() {
                Health::Up
            } else {
                Health::Down
            },
            last_scrape: Some(now),
            last_duration: duration,
            last_error: result.as_ref().err().map(|e| e.to_string()),
            last_samples: counts.scraped,
        });
        result
    }

    /// Counts a failed scrape by reason.
    fn count_failure(&self, f: &ScrapeFailure) {
        let target = &self.handle.target;
        let labels = vec![
            ("job", target.job.clone()),
            ("reason", f.reason.as_str().to_string()),
        ];
        self.ctx.metrics.failures.get_or_create(&labels).inc();
        tracing::debug!(job = %target.job, target = %target.url, error = %f, "scrape failed");
    }

    /// Parses `body` and queues its samples at `ts` on `app`. On failure
    /// the caller rolls the batch back, so nothing of the scrape is stored.
    fn append_samples(
        &mut self,
        app: &mut dyn Appender,
        body: &[u8],
        format: Format,
        ts: Timestamp,
    ) -> Result<ScrapeCounts, ScrapeFailure> {
        let cfg = self.ctx.cfg.clone();
        let limits = cfg.limits;
        let iter = self.cache.iter;
        let mut counts = ScrapeCounts::default();
        let mut rejected = Rejected::default();
        let mut parser = Parser::new(body, format);
        // Samples of known series go to storage in runs (see
        // `Appender::append_refs`); their parsed form is kept in case a
        // series has to be re-created from its labels.
        let mut runs = RefRuns::new();
        loop {
            let known = self.cache.entries.expected().map(|(series, e)| Known {
                series,
                checks: e.checks,
            });
            let s = match parser.next_sample_expecting(known) {
                Ok(Some(s)) => s,
                Ok(None) => break,
                Err(e) => return Err(ScrapeFailure::new(FailureReason::ParseError, e.to_string())),
            };
            counts.scraped += 1;
            let (t, explicit) = match (cfg.honor_timestamps, s.timestamp_ms) {
                (true, Some(t)) => (t, true),
                _ => (ts, false),
            };
            let entry = if s.known {
                self.cache.entries.take_expected()
            } else {
                self.cache.entries.get_mut(s.series)
            };
            let res = match entry {
                Some(e) if e.series == DROPPED => {
                    e.prev = e.seen;
                    e.seen = iter;
                    e.checks = s.checks;
                    continue;
                }
                Some(e) => {
                    e.prev = e.seen;
                    e.seen = iter;
                    e.explicit_ts = explicit;
                    e.checks = s.checks;
                    counts.post_relabel += 1;
                    runs.refs.push((e.series, t, s.value));
                    runs.samples.push(s);
                    if runs.refs.len() >= RefRuns::LEN {
                        self.flush_runs(app, &mut runs, &mut rejected)?;
                    }
                    Ok(())
                }
                None => match self.sample_labels(&s)? {
                    None => {
                        self.cache.entries.insert(
                            s.series,
                            CacheEntry {
                                series: DROPPED,
                                seen: iter,
                                prev: u32::MAX,
                                name: 0,
                                explicit_ts: explicit,
                                checks: s.checks,
                            },
                        );
                        continue;
                    }
                    Some(lset) => {
                        check_label_limits(&lset, &limits)?;
                        counts.post_relabel += 1;
                        match app.append(&lset, t, s.value) {
                            Ok(r) => {
                                counts.added += 1;
                                let name = self.cache.names.acquire(lset.metric_name());
                                self.cache.entries.insert(
                                    s.series,
                                    CacheEntry {
                                        series: r,
                                        seen: iter,
                                        prev: u32::MAX,
                                        name,
                                        explicit_ts: explicit,
                                        checks: s.checks,
                                    },
                                );
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    }
                },
            };
            rejected.count(res);
            if limits.sample_limit > 0 && counts.post_relabel > limits.sample_limit {
                return Err(ScrapeFailure::new(
                    FailureReason::LimitExceeded,
                    format!(
                        "sample_limit exceeded: more than {} samples after metric relabeling; raise sample_limit or drop series with metric_relabel_configs",
                        limits.sample_limit
                    ),
                ));
            }
        }
        self.flush_runs(app, &mut runs, &mut rejected)?;
        let job = &self.handle.target.job;
        let Rejected {
            out_of_order: rejected_ooo,
            duplicate: rejected_dup,
        } = rejected;
        if rejected_ooo > 0 {
            self.ctx
                .metrics
                .rejected_samples
                .get_or_create(&vec![
                    ("job", job.clone()),
                    ("reason", "out_of_order".to_string()),
                ])
                .inc_by(rejected_ooo);
        }
        if rejected_dup > 0 {
            self.ctx
                .metrics
                .rejected_samples
                .get_or_create(&vec![
                    ("job", job.clone()),
                    ("reason", "duplicate".to_string()),
                ])
                .inc_by(rejected_dup);
        }
        Ok(counts)
    }

    /// Appends the queued samples of known series, re-creating from its
    /// labels any series storage no longer has (removed by retention).
    fn flush_runs(
        &mut self,
        app: &mut dyn Appender,
        runs: &mut RefRuns<'_>,
        rejected: &mut Rejected,
    ) -> Result<(), ScrapeFailure> {
        if runs.refs.is_empty() {
            return Ok(());
        }
        app.append_refs(&runs.refs, &mut runs.failed);
        for &(i, err) in &runs.failed {
            if err != AppendError::UnknownRef {
                rejected.count(Err(err));
                continue;
            }
            let s = &runs.samples[i];
            let (_, t, v) = runs.refs[i];
            let Some(lset) = self.sample_labels(s)? else {
                continue;
            };
            match app.append(&lset, t, v) {
                Ok(r) => {
                    if let Some(e) = self.cache.entries.get_mut(s.series) {
                        e.series = r;
                    }
                }
                Err(e) => rejected.count(Err(e)),
            }
        }
        runs.refs.clear();
        runs.samples.clear();
        runs.failed.clear();
        Ok(())
    }

    /// The stored label set of a scraped sample: scraped labels merged with
    /// the target's (honor_labels decides conflicts), then metric
    /// relabeling. `None` when relabeling drops it.
    fn sample_labels(&self, s: &ParsedSample<'_>) -> Result<Option<Labels>, ScrapeFailure> {
        let scraped = s.to_labels();
        let target_labels = &self.handle.target.labels;
        let mut b = scraped.builder();
        if self.ctx.cfg.honor_labels {
            for l in target_labels {
                if !scraped.contains(&l.name) {
                    b.set(&l.name, l.value.clone());
                }
            }
        } else {
            for l in target_labels {
                if let Some(v) = scraped.get(&l.name) {
                    // Keep the exporter's value under exported_<name>,
                    // prefixing again while that name is taken too.
                    let mut name = format!("exported_{}", l.name);
                    while scraped.contains(&name) {
                        name = format!("exported_{name}");
                    }
                    b.set(&name, v.to_string());
                }
                b.set(&l.name, l.value.clone());
            }
        }
        let lset = b.into_labels();
        let lset = if self.ctx.cfg.metric_relabel_configs.is_empty() {
            lset
        } else {
            match relabel::process(&lset, &self.ctx.cfg.metric_relabel_configs) {
                Some(l) => l,
                None => return Ok(None),
            }
        };
        if lset.metric_name().is_empty() {
            return Err(ScrapeFailure::new(
                FailureReason::ParseError,
                format!(
                    "series {lset} has no metric name after metric_relabel_configs; do not drop or empty __name__"
                ),
            ));
        }
        Ok(Some(lset))
    }

    /// After a successful scrape: staleness markers for series seen in the
    /// previous scrape but not this one, then drop entries not seen now.
    fn stale_and_forget(&mut self, app: &mut dyn Appender, ts: Timestamp) {
        let iter = self.cache.iter;
        let names = &mut self.cache.names;
        self.cache.entries.retain(|e| {
            if e.seen == iter {
                return true;
            }
            if e.series != DROPPED {
                names.release(e.name);
                if e.seen.wrapping_add(1) == iter && !e.explicit_ts {
                    let _ = app.append_ref(e.series, ts, stale_nan());
                }
            }
            false
        });
    }

    /// After a failed scrape: every series of the previous scrape goes stale.
    /// Entries stay cached (their refs are still valid) for the next success.
    fn stale_unseen(&mut self, app: &mut dyn Appender, ts: Timestamp) {
        let iter = self.cache.iter;
        // A scrape that failed half-way through the body has already marked
        // the series it parsed before the error: undo that first, so only
        // the previous scrape's series go stale, and only once.
        for e in self.cache.entries.values_mut() {
            if e.seen == iter {
                e.seen = e.prev;
            }
            if e.seen.wrapping_add(1) == iter && e.series != DROPPED && !e.explicit_ts {
                let _ = app.append_ref(e.series, ts, stale_nan());
            }
        }
        self.cache.entries.end_scrape();
    }

    /// Appends `up` and the `scrape_*` series.
    fn report(
        &mut self,
        app: &mut dyn Appender,
        ts: Timestamp,
        up: f64,
        duration: Duration,
        c: ScrapeCounts,
    ) {
        let values = [
            up,
            duration.as_secs_f64(),
            c.scraped as f64,
            c.post_relabel as f64,
            c.added as f64,
        ];
        for (i, v) in values.into_iter().enumerate() {
            let done = match self.cache.report[i] {
                Some(r) => !matches!(app.append_ref(r, ts, v), Err(AppendError::UnknownRef)),
                None => false,
            };
            if !done {
                let mut b = self.handle.target.labels.builder();
                b.set(METRIC_NAME, REPORT_NAMES[i]);
                if let Ok(r) = app.append(&b.into_labels(), ts, v) {
                    self.cache.report[i] = Some(r);
                }
            }
        }
    }
}

/// Rejects a label set over the job's label limits, as Prometheus does
/// (the whole scrape fails).
fn check_label_limits(l: &Labels, lim: &crate::config::ScrapeLimits) -> Result<(), ScrapeFailure> {
    let name = l.metric_name();
    let short = |s: &str| s.chars().take(50).collect::<String>();
    if lim.label_limit > 0 && l.len() as u64 > lim.label_limit {
        return Err(ScrapeFailure::new(
            FailureReason::LimitExceeded,
            format!(
                "label_limit exceeded (metric: {}, number of labels: {}, limit: {})",
                short(name),
                l.len(),
                lim.label_limit
            ),
        ));
    }
    for lb in l {
        if lim.label_name_length_limit > 0 && lb.name.len() as u64 > lim.label_name_length_limit {
            return Err(ScrapeFailure::new(
                FailureReason::LimitExceeded,
                format!(
                    "label_name_length_limit exceeded (metric: {}, label name: {}, length: {}, limit: {})",
                    short(name),
                    short(&lb.name),
                    lb.name.len(),
                    lim.label_name_length_limit
                ),
            ));
        }
        if lim.label_value_length_limit > 0 && lb.value.len() as u64 > lim.label_value_length_limit
        {
            return Err(ScrapeFailure::new(
                FailureReason::LimitExceeded,
                format!(
                    "label_value_length_limit exceeded (metric: {}, label name: {}, value: {}, length: {}, limit: {})",
                    short(name),
                    short(&lb.name),
                    short(&lb.value),
                    lb.value.len(),
                    lim.label_value_length_limit
                ),
            ));
        }
    }
    Ok(())
}

/// How far a scrape may start after its slot and still be stamped with the
/// slot's exact time (Prometheus's `--scrape.timestamp-tolerance`, 2 ms).
const TIMESTAMP_TOLERANCE: Duration = Duration::from_millis(2);

/// The timestamp for a scrape started at `now`: the slot time when `now` is
/// at most [`TIMESTAMP_TOLERANCE`] after it, else `now`. Timer wake-ups land
/// a millisecond or two late at random; stamping the slot instead keeps the
/// delta between samples constant, which the chunk encoding stores in one
/// bit instead of nine. Prometheus aligns the same way (and only for
/// intervals above 100 times the tolerance, so a 2 ms shift stays under 1%
/// of the interval). `aligned` is the slot of the previous scrape; it moves
/// forward whole intervals, so a skipped tick does not break the alignment.
/// A scrape that starts before its slot (the wall clock stepped or slewed
/// against the monotonic timer) makes its own time the new slot, so the
/// alignment follows the clock instead of being lost for good.
fn align_scrape_time(now: SystemTime, aligned: &mut SystemTime, interval: Duration) -> SystemTime {
    if interval <= TIMESTAMP_TOLERANCE * 100 {
        return now;
    }
    match now.duration_since(*aligned) {
        Ok(ahead) => {
            // One division, not a loop per slot, after a long suspend.
            let slots = u32::try_from(ahead.as_nanos() / interval.as_nanos()).unwrap_or(u32::MAX);
            if let Some(slot) = interval
                .checked_mul(slots)
                .and_then(|d| aligned.checked_add(d))
            {
                *aligned = slot;
            }
            match now.duration_since(*aligned) {
                Ok(late) if late <= TIMESTAMP_TOLERANCE => *aligned,
                // Closer to the next slot than to this one: early.
                Ok(late) if late > interval / 2 => {
                    *aligned = now;
                    now
                }
                _ => now,
            }
        }
        Err(_) => {
            *aligned = now;
            now
        }
    }
}

/// How long from `now` until this target's phase in the interval. Scrapes
/// of a target happen when `wall-clock mod interval == hash mod interval`,
/// so targets spread evenly over the interval and keep their phase across
/// restarts and reloads.
pub fn scrape_offset(hash: u64, interval: Duration, now: SystemTime) -> Duration {
    let iv = interval.as_nanos().max(1);
    let now_ns = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let phase = u128::from(hash) % iv;
    let pos = now_ns % iv;
    let wait = (phase + iv - pos) % iv;
    Duration::from_nanos(wait as u64)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn cache_entries_stay_small() {
        // One per scraped series, inside a 48-byte cache slot.
        assert_eq!(std::mem::size_of::<CacheEntry>(), 24);
    }

    #[test]
    fn scrape_times_snap_to_the_slot_within_tolerance() {
        let iv = Duration::from_secs(5);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut aligned = t0;
        let ms = Duration::from_millis;
        // 1 ms late: stamped with the slot.
        assert_eq!(align_scrape_time(t0 + ms(1), &mut aligned, iv), t0);
        assert_eq!(
            align_scrape_time(t0 + iv + ms(2), &mut aligned, iv),
            t0 + iv
        );
        // 3 ms late: the real time.
        assert_eq!(
            align_scrape_time(t0 + iv * 2 + ms(3), &mut aligned, iv),
            t0 + iv * 2 + ms(3)
        );
        // A skipped slot, then back within tolerance.
        assert_eq!(
            align_scrape_time(t0 + iv * 4 + ms(1), &mut aligned, iv),
            t0 + iv * 4
        );
        // Early (the wall clock went back): the real time becomes the slot.
        let early = t0 + iv * 5 - ms(3);
        assert_eq!(align_scrape_time(early, &mut aligned, iv), early);
        assert_eq!(aligned, early);
        assert_eq!(
            align_scrape_time(early + iv + ms(1), &mut aligned, iv),
            early + iv
        );
        // Short intervals are never shifted.
        let mut a = t0;
        assert_eq!(align_scrape_time(t0 + ms(1), &mut a, ms(100)), t0 + ms(1));
    }

    #[test]
    fn offsets_spread_and_align() {
        let iv = Duration::from_secs(15);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let o = scrape_offset(7_000_000_000, iv, now);
        // Phase 7 s, now at 10 s into the interval: next slot in 12 s.
        assert_eq!(o, Duration::from_secs(12));
        // 1,000 targets spread over the interval: no second holds more than
        // a few percent of them.
        let mut per_sec = [0u32; 15];
        for i in 0..1000u64 {
            let h = crate::model::fnv1a64(&[format!("http://10.0.0.{i}:9100/metrics").as_bytes()]);
            per_sec[scrape_offset(h, iv, now).as_secs() as usize] += 1;
        }
        assert!(per_sec.iter().all(|&n| n < 110), "{per_sec:?}");
    }

    #[test]
    fn label_limits() {
        let l = Labels::from_pairs([("__name__", "m"), ("a", "1"), ("b", "22")]);
        let lim = crate::config::ScrapeLimits {
            label_limit: 2,
            ..Default::default()
        };
        let e = check_label_limits(&l, &lim).unwrap_err();
        assert_eq!(e.reason, FailureReason::LimitExceeded);
        assert!(e.message.starts_with("label_limit exceeded"), "{e}");
        let lim = crate::config::ScrapeLimits {
            label_value_length_limit: 1,
            ..Default::default()
        };
        assert!(
            check_label_limits(&l, &lim)
                .unwrap_err()
                .message
                .contains("label_value_length_limit")
        );
        assert!(check_label_limits(&l, &Default::default()).is_ok());
    }
}
