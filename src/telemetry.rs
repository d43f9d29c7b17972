//! watchpost's own metrics registry and log setup.
//!
//! [`Telemetry`] owns the `prometheus-client` registry served at `/metrics`
//! and hands typed metric handles to each subsystem; nothing registers
//! metrics globally, so several watchposts can run in one test process.
//! [`init_logging`] installs the `tracing` subscriber once, in `main`.
//!
//! Metric names follow `watchpost_<subsystem>_<name>_<unit>`, counters end
//! in `_total` (the encoder appends it).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::storage::Storage;

/// Label set of a metric family: ordered (name, value) pairs.
pub type LabelPairs = Vec<(&'static str, String)>;

/// Metric handles of the scrape subsystem.
#[derive(Clone, Debug)]
pub struct ScrapeMetrics {
    /// Failed scrapes by job and bounded reason word.
    pub failures: Family<LabelPairs, Counter>,
    /// Scrape attempts by job.
    pub scrapes: Family<LabelPairs, Counter>,
    /// Scrapes that started later than scheduled because the previous one
    /// was still running.
    pub missed: Family<LabelPairs, Counter>,
    /// Scrape duration, all jobs.
    pub duration: Histogram,
    /// Samples rejected by storage (out of order / duplicate) by job.
    pub rejected_samples: Family<LabelPairs, Counter>,
    /// Active targets by job.
    pub targets: Family<LabelPairs, Gauge>,
    /// Targets dropped by relabeling or target_limit.
    pub dropped_targets: Family<LabelPairs, Gauge>,
}

/// Metric handles of the config subsystem.
#[derive(Clone, Debug, Default)]
pub struct ConfigMetrics {
    pub last_reload_successful: Gauge,
    pub last_reload_success_timestamp_seconds: Gauge,
    pub reloads_failed: Counter,
}

/// Metric handles of rule evaluation. Group-level families are labelled
/// `rule_group="<file>;<name>"`, as Prometheus labels them.
#[derive(Clone, Debug)]
pub struct RuleMetrics {
    /// Rule evaluations by group.
    pub evaluations: Family<LabelPairs, Counter>,
    /// Rule evaluations that failed, by group.
    pub evaluation_failures: Family<LabelPairs, Counter>,
    /// Scheduled interval iterations by group (missed ones included).
    pub group_iterations: Family<LabelPairs, Counter>,
    /// Interval iterations skipped because an evaluation ran too long.
    pub group_iterations_missed: Family<LabelPairs, Counter>,
    /// Evaluations triggered by a scrape (on_scrape groups).
    pub group_on_scrape_evaluations: Family<LabelPairs, Counter>,
    pub group_last_duration_seconds: Family<LabelPairs, Gauge<f64, AtomicU64>>,
    pub group_last_evaluation_timestamp_seconds: Family<LabelPairs, Gauge<f64, AtomicU64>>,
    pub group_last_evaluation_samples: Family<LabelPairs, Gauge>,
    pub group_interval_seconds: Family<LabelPairs, Gauge<f64, AtomicU64>>,
    pub group_rules: Family<LabelPairs, Gauge>,
    /// Duration of single rule evaluations.
    pub evaluation_duration: Histogram,
    /// Duration of whole group evaluations.
    pub group_duration: Histogram,
    /// Alerts handed to notification.
    pub alerts_sent: Counter,
    /// Alerts that could not be handed over (queue full or closed).
    pub alerts_dropped: Counter,
    /// Failed writes of the persisted alert state.
    pub state_persist_failures: Counter,
}

impl Default for RuleMetrics {
    /// Handles that are not registered anywhere (tests, tools).
    fn default() -> Self {
        RuleMetrics {
            evaluations: Family::default(),
            evaluation_failures: Family::default(),
            group_iterations: Family::default(),
            group_iterations_missed: Family::default(),
            group_on_scrape_evaluations: Family::default(),
            group_last_duration_seconds: Family::default(),
            group_last_evaluation_timestamp_seconds: Family::default(),
            group_last_evaluation_samples: Family::default(),
            group_interval_seconds: Family::default(),
            group_rules: Family::default(),
            evaluation_duration: Histogram::new(exponential_buckets(0.0001, 4.0, 10)),
            group_duration: Histogram::new(exponential_buckets(0.0001, 4.0, 10)),
            alerts_sent: Counter::default(),
            alerts_dropped: Counter::default(),
            state_persist_failures: Counter::default(),
        }
    }
}

impl RuleMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "watchpost_rule_evaluations",
            "Rule evaluations, by rule group",
            self.evaluations.clone(),
        );
        registry.register(
            "watchpost_rule_evaluation_failures",
            "Rule evaluations that failed, by rule group",
            self.evaluation_failures.clone(),
        );
        registry.register(
            "watchpost_rule_group_iterations",
            "Scheduled interval evaluations of rule groups, missed ones included",
            self.group_iterations.clone(),
        );
        registry.register(
            "watchpost_rule_group_iterations_missed",
            "Interval evaluations skipped because the previous one ran too long",
            self.group_iterations_missed.clone(),
        );
        registry.register(
            "watchpost_rule_group_on_scrape_evaluations",
            "Evaluations of on_scrape rule groups triggered by a scrape",
            self.group_on_scrape_evaluations.clone(),
        );
        registry.register(
            "watchpost_rule_group_last_duration_seconds",
            "Duration of the last evaluation of the rule group",
            self.group_last_duration_seconds.clone(),
        );
        registry.register(
            "watchpost_rule_group_last_evaluation_timestamp_seconds",
            "Timestamp of the last evaluation of the rule group",
            self.group_last_evaluation_timestamp_seconds.clone(),
        );
        registry.register(
            "watchpost_rule_group_last_evaluation_samples",
            "Samples the rule group's last evaluation returned",
            self.group_last_evaluation_samples.clone(),
        );
        registry.register(
            "watchpost_rule_group_interval_seconds",
            "Evaluation interval of the rule group",
            self.group_interval_seconds.clone(),
        );
        registry.register(
            "watchpost_rule_group_rules",
            "Rules in the rule group",
            self.group_rules.clone(),
        );
        registry.register(
            "watchpost_rule_evaluation_duration_seconds",
            "Duration of single rule evaluations",
            self.evaluation_duration.clone(),
        );
        registry.register(
            "watchpost_rule_group_duration_seconds",
            "Duration of rule group evaluations",
            self.group_duration.clone(),
        );
        registry.register(
            "watchpost_rule_alerts_sent",
            "Alerts handed from rule evaluation to notification",
            self.alerts_sent.clone(),
        );
        registry.register(
            "watchpost_rule_alerts_dropped",
            "Alerts rule evaluation could not hand to notification because its queue was full or closed",
            self.alerts_dropped.clone(),
        );
        registry.register(
            "watchpost_rule_state_persist_failures",
            "Failed writes of the persisted alert state",
            self.state_persist_failures.clone(),
        );
    }
}

/// Metric handles of push ingestion (Pushgateway API and remote write).
/// `api` is `pushgateway` or `remote_write`; `reason` a bounded word.
#[derive(Clone, Debug, Default)]
pub struct PushMetrics {
    /// Push requests accepted, by api.
    pub accepted: Family<LabelPairs, Counter>,
    /// Push requests refused, by api and reason (disabled, too_large,
    /// bad_url, parse_error, decode_error, invalid, limit_exceeded,
    /// unsupported_media_type, persist_failed).
    pub rejected: Family<LabelPairs, Counter>,
    /// Samples appended to storage, by api.
    pub samples: Family<LabelPairs, Counter>,
    /// Samples storage refused, by api and reason (out_of_order, duplicate).
    pub samples_rejected: Family<LabelPairs, Counter>,
    /// Pushgateway groups held.
    pub groups: Gauge,
}

impl PushMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "watchpost_push_requests_accepted",
            "Push requests accepted, by api (pushgateway, remote_write)",
            self.accepted.clone(),
        );
        registry.register(
            "watchpost_push_requests_rejected",
            "Push requests refused, by api and reason",
            self.rejected.clone(),
        );
        registry.register(
            "watchpost_push_samples_appended",
            "Pushed samples appended to storage, by api",
            self.samples.clone(),
        );
        registry.register(
            "watchpost_push_samples_rejected",
            "Pushed samples that storage rejected (out of order or duplicate timestamp), by api and reason",
            self.samples_rejected.clone(),
        );
        registry.register(
            "watchpost_push_groups",
            "Pushgateway groups held",
            self.groups.clone(),
        );
    }
}

/// Metric handles of the HTTP API.
#[derive(Clone, Debug)]
pub struct ApiMetrics {
    pub requests: Family<LabelPairs, Counter>,
}

/// Metric handles of the notification pipeline. Labels: `integration` is
/// the integration as logs show it (`telegram[0]`), `reason` a bounded word
/// (a send reason, a suppression reason or a failure reason).
#[derive(Clone, Debug)]
pub struct NotifyMetrics {
    /// Notifications delivered, by integration and send reason.
    pub notifications: Family<LabelPairs, Counter>,
    /// Notifications given up on, by integration and failure reason.
    pub notifications_failed: Family<LabelPairs, Counter>,
    /// Flushes that sent nothing to an integration because every alert was
    /// held back, by integration and suppression reason.
    pub notifications_suppressed: Family<LabelPairs, Counter>,
    /// Delivery attempts by integration.
    pub requests: Family<LabelPairs, Counter>,
    /// Failed delivery attempts by integration and reason.
    pub requests_failed: Family<LabelPairs, Counter>,
    /// Duration of delivery attempts by integration.
    pub latency: Family<LabelPairs, Histogram>,
    /// Alerts by state (`active`, `suppressed`).
    pub alerts: Family<LabelPairs, Gauge>,
    /// Silences by state (`active`, `pending`, `expired`).
    pub silences: Family<LabelPairs, Gauge>,
    /// Notifications accepted and not yet delivered or given up.
    pub queue_length: Gauge,
    /// Aggregation groups.
    pub groups: Gauge,
}

fn notification_latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl NotifyMetrics {
    /// Handles not registered anywhere (tests, benchmarks); [`Telemetry`]
    /// registers its own.
    pub fn new() -> Self {
        NotifyMetrics {
            notifications: Family::default(),
            notifications_failed: Family::default(),
            notifications_suppressed: Family::default(),
            requests: Family::default(),
            requests_failed: Family::default(),
            latency: Family::new_with_constructor(notification_latency_histogram),
            alerts: Family::default(),
            silences: Family::default(),
            queue_length: Gauge::default(),
            groups: Gauge::default(),
        }
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "watchpost_notifications",
            "Notifications delivered, by integration and reason (first_notification, new_alerts, resolved, resolved_while_muted, repeat_interval_elapsed)",
            self.notifications.clone(),
        );
        registry.register(
            "watchpost_notifications_failed",
            "Notifications given up on, by integration and reason (the channel's reason, deadline_exceeded, queue_full, integration_removed)",
            self.notifications_failed.clone(),
        );
        registry.register(
            "watchpost_notifications_suppressed",
            "Group flushes that sent nothing to an integration because every alert was held back, by integration and reason (silenced, inhibited, muted_by_interval, outside_active_intervals)",
            self.notifications_suppressed.clone(),
        );
        registry.register(
            "watchpost_notification_requests",
            "Delivery attempts, by integration",
            self.requests.clone(),
        );
        registry.register(
            "watchpost_notification_requests_failed",
            "Failed delivery attempts, by integration and reason",
            self.requests_failed.clone(),
        );
        registry.register(
            "watchpost_notification_latency_seconds",
            "Duration of delivery attempts, by integration",
            self.latency.clone(),
        );
        registry.register(
            "watchpost_alerts",
            "Alerts known to the notification pipeline, by state (active, suppressed)",
            self.alerts.clone(),
        );
        registry.register(
            "watchpost_silences",
            "Silences by state (active, pending, expired)",
            self.silences.clone(),
        );
        registry.register(
            "watchpost_notification_queue_length",
            "Notifications accepted and not yet delivered or given up",
            self.queue_length.clone(),
        );
        registry.register(
            "watchpost_notification_groups",
            "Aggregation groups of the notification pipeline",
            self.groups.clone(),
        );
    }
}

impl Default for NotifyMetrics {
    fn default() -> Self {
        NotifyMetrics::new()
    }
}

/// Metric handles of the heartbeats (dead man's switches).
#[derive(Clone, Debug, Default)]
pub struct HeartbeatMetrics {
    /// Time of the last ping, by heartbeat `name`; absent until the first.
    pub last_ping_timestamp_seconds: Family<LabelPairs, Gauge<f64, AtomicU64>>,
    /// Pings received, by heartbeat `name`.
    pub pings: Family<LabelPairs, Counter>,
}

impl HeartbeatMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "watchpost_heartbeat_last_ping_timestamp_seconds",
            "Time of the last ping of each heartbeat, in seconds since the epoch",
            self.last_ping_timestamp_seconds.clone(),
        );
        registry.register(
            "watchpost_heartbeat_pings",
            "Pings received, by heartbeat",
            self.pings.clone(),
        );
    }
}

/// Metric handles of digest reports (`reports:`).
#[derive(Clone, Debug, Default)]
pub struct ReportMetrics {
    /// Reports delivered, by report and integration.
    pub sent: Family<LabelPairs, Counter>,
    /// Reports not delivered, by report and reason (`query` when the
    /// report could not be computed, else the channel's failure reason).
    pub failed: Family<LabelPairs, Counter>,
}

impl ReportMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "watchpost_reports_sent",
            "Digest reports delivered, by report and integration",
            self.sent.clone(),
        );
        registry.register(
            "watchpost_reports_failed",
            "Digest reports not delivered, by report and reason (query, or the channel's failure reason)",
            self.failed.clone(),
        );
    }
}

/// The registry plus every subsystem's handles.
pub struct Telemetry {
    registry: Registry,
    pub scrape: ScrapeMetrics,
    pub config: ConfigMetrics,
    pub api: ApiMetrics,
    pub notify: NotifyMetrics,
    pub rules: RuleMetrics,
    pub push: PushMetrics,
    pub heartbeat: HeartbeatMetrics,
    pub reports: ReportMetrics,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Builds the registry. `storage` is read at encode time for head
    /// statistics.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        let mut registry = Registry::default();
        let scrape = ScrapeMetrics {
            failures: Family::default(),
            scrapes: Family::default(),
            missed: Family::default(),
            duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            rejected_samples: Family::default(),
            targets: Family::default(),
            dropped_targets: Family::default(),
        };
        registry.register(
            "watchpost_scrape_failures",
            "Failed scrapes by job and reason (timeout, refused, dns, http_status, body_too_large, parse_error, limit_exceeded, tls, connection)",
            scrape.failures.clone(),
        );
        registry.register(
            "watchpost_scrapes",
            "Scrape attempts by job",
            scrape.scrapes.clone(),
        );
        registry.register(
            "watchpost_scrape_missed_iterations",
            "Scheduled scrapes skipped because the previous scrape of the target was still running",
            scrape.missed.clone(),
        );
        registry.register(
            "watchpost_scrape_duration_seconds",
            "Duration of scrapes, from request to appended samples",
            scrape.duration.clone(),
        );
        registry.register(
            "watchpost_scrape_rejected_samples",
            "Scraped samples that storage rejected (out of order or duplicate timestamp), by job and reason",
            scrape.rejected_samples.clone(),
        );
        registry.register(
            "watchpost_scrape_targets",
            "Active scrape targets by job",
            scrape.targets.clone(),
        );
        registry.register(
            "watchpost_scrape_dropped_targets",
            "Discovered targets dropped by relabeling, by job",
            scrape.dropped_targets.clone(),
        );
        let config = ConfigMetrics::default();
        registry.register(
            "watchpost_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful",
            config.last_reload_successful.clone(),
        );
        registry.register(
            "watchpost_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload",
            config.last_reload_success_timestamp_seconds.clone(),
        );
        registry.register(
            "watchpost_config_reloads_failed",
            "Configuration reloads that failed and kept the running configuration",
            config.reloads_failed.clone(),
        );
        let api = ApiMetrics {
            requests: Family::default(),
        };
        registry.register(
            "watchpost_http_requests",
            "HTTP requests by handler and status code",
            api.requests.clone(),
        );
        let notify = NotifyMetrics::new();
        notify.register(&mut registry);
        let rules = RuleMetrics::default();
        rules.register(&mut registry);
        let push = PushMetrics::default();
        push.register(&mut registry);
        let reports = ReportMetrics::default();
        reports.register(&mut registry);
        registry.register_collector(Box::new(StorageCollector(storage)));
        registry.register_collector(Box::new(ProcessCollector));
        registry.register_collector(Box::new(BuildInfo));
        let heartbeat = HeartbeatMetrics::default();
        heartbeat.register(&mut registry);
        Telemetry {
            registry,
            scrape,
            config,
            api,
            notify,
            rules,
            push,
            heartbeat,
            reports,
        }
    }

    /// The registry in OpenMetrics text, as served at `/metrics`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail; an error here would be a bug in
        // an encoder, and a partial body is better than none.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Head statistics read from storage when `/metrics` is scraped.
#[derive(Debug)]
struct StorageCollector(Arc<dyn Storage>);

impl std::fmt::Debug for dyn Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Storage")
    }
}

impl Collector for StorageCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let st = self.0.stats();
        let bytes_per_sample = if st.closed_chunk_samples > 0 {
            st.closed_chunk_bytes as f64 / st.closed_chunk_samples as f64
        } else {
            0.0
        };
        let gauges: [(&str, &str, f64); 11] = [
            (
                "watchpost_storage_head_series",
                "Series in the head",
                st.series as f64,
            ),
            (
                "watchpost_storage_head_chunks",
                "Chunks in the head: open chunks and closed chunks of blocks not yet finalized",
                st.head_chunks as f64,
            ),
            (
                "watchpost_storage_open_chunk_bytes",
                "Heap bytes of open chunks, as of the last maintenance pass",
                st.open_chunk_bytes as f64,
            ),
            (
                "watchpost_storage_closed_chunks",
                "Closed chunks on disk",
                st.closed_chunks as f64,
            ),
            (
                "watchpost_storage_closed_chunk_bytes_per_sample",
                "Encoded bytes per sample of closed chunks",
                bytes_per_sample,
            ),
            (
                "watchpost_storage_blocks",
                "Block directories on disk",
                st.blocks as f64,
            ),
            (
                "watchpost_storage_block_bytes",
                "Bytes of block files (chunk records and indexes)",
                st.block_bytes as f64,
            ),
            (
                "watchpost_storage_wal_bytes",
                "Bytes of WAL segments and checkpoint",
                st.wal_bytes as f64,
            ),
            (
                "watchpost_storage_wal_fsync_seconds_max",
                "Longest WAL fsync since start",
                st.wal_fsync_seconds_max,
            ),
            (
                "watchpost_storage_wal_replay_duration_seconds",
                "Time the WAL replay took at start",
                st.replay_seconds,
            ),
            (
                "watchpost_storage_head_max_time_seconds",
                "Newest sample timestamp in storage",
                st.max_time.map_or(0.0, |t| t as f64 / 1000.0),
            ),
        ];
        for (name, help, v) in gauges {
            let g = ConstGauge::new(v);
            g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let counters: [(&str, &str, f64); 11] = [
            (
                "watchpost_storage_head_samples_appended",
                "Samples appended to storage",
                st.samples_appended as f64,
            ),
            (
                "watchpost_storage_out_of_order_samples",
                "Samples rejected because they were older than the newest sample of their series",
                st.out_of_order_samples as f64,
            ),
            (
                "watchpost_storage_duplicate_samples",
                "Samples rejected because their series already had a different value at that timestamp",
                st.duplicate_samples as f64,
            ),
            (
                "watchpost_storage_out_of_bounds_samples",
                "Samples rejected because they fell into an already finalized block",
                st.out_of_bounds_samples as f64,
            ),
            (
                "watchpost_storage_head_series_created",
                "Series created",
                st.series_created as f64,
            ),
            (
                "watchpost_storage_head_series_removed",
                "Series removed because no samples were left",
                st.series_removed as f64,
            ),
            (
                "watchpost_storage_wal_fsyncs",
                "WAL fsync calls",
                st.wal_fsyncs as f64,
            ),
            (
                "watchpost_storage_wal_fsync_seconds",
                "Time spent in WAL fsync",
                st.wal_fsync_seconds_total,
            ),
            (
                "watchpost_storage_corruptions",
                "Corruptions found in the WAL, checkpoints and chunk files since start",
                st.corruptions as f64,
            ),
            (
                "watchpost_storage_checkpoints",
                "WAL checkpoints written",
                st.checkpoints as f64,
            ),
            (
                "watchpost_storage_retention_blocks_deleted",
                "Blocks deleted by time or size retention",
                st.blocks_deleted_by_retention as f64,
            ),
        ];
        for (name, help, v) in counters {
            let c = ConstCounter::new(v);
            c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        Ok(())
    }
}

/// `process_*` metrics from /proc, so self-monitoring rules can watch
/// watchpost's own CPU and memory like any exporter's.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = read_proc_self() else {
            return Ok(());
        };
        let c = ConstCounter::new(p.cpu_seconds);
        c.encode(enc.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            c.metric_type(),
        )?)?;
        for (name, help, v) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                p.rss_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                p.vsize_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                p.open_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                p.start_time,
            ),
        ] {
            let g = ConstGauge::new(v);
            g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

struct ProcStats {
    cpu_seconds: f64,
    rss_bytes: i64,
    vsize_bytes: i64,
    open_fds: i64,
    start_time: i64,
}

fn read_proc_self() -> Option<ProcStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name, which may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Linux's USER_HZ is 100 on every architecture watchpost targets, and the
    // page size is 4 KiB; reading them needs libc, which is not worth a
    // dependency for two constants.
    const TICKS: f64 = 100.0;
    const PAGE: i64 = 4096;
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let starttime: f64 = f.get(19)?.parse().ok()?;
    let vsize: i64 = f.get(20)?.parse().ok()?;
    let rss: i64 = f.get(21)?.parse().ok()?;
    let btime = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| {
            l.strip_prefix("btime ")
                .and_then(|v| v.trim().parse::<i64>().ok())
        })?;
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as i64)
        .unwrap_or(0);
    Some(ProcStats {
        cpu_seconds: (utime + stime) / TICKS,
        rss_bytes: rss * PAGE,
        vsize_bytes: vsize,
        open_fds,
        start_time: btime + (starttime / TICKS) as i64,
    })
}

/// `watchpost_build_info{version,rustc}` 1, as Prometheus's build_info.
#[derive(Debug)]
struct BuildInfo;

impl Collector for BuildInfo {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let g = ConstGauge::new(1i64);
        let mut m = enc.encode_descriptor(
            "watchpost_build_info",
            "A metric with a constant 1 value labeled by version and revision of watchpost",
            None,
            g.metric_type(),
        )?;
        let labels: LabelPairs = vec![
            ("version", crate::VERSION.to_string()),
            ("revision", crate::REVISION.to_string()),
        ];
        g.encode(m.encode_family(&labels)?)?;
        Ok(())
    }
}

/// Log output format (`--log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// Log level (`--log.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// Installs the global `tracing` subscriber. Called once, by `main`.
pub fn init_logging(level: LogLevel, format: LogFormat) {
    let lvl = match level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Error => tracing::Level::ERROR,
    };
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("watchpost", lvl)
        .with_default(tracing::Level::WARN.min(lvl));
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let registry = tracing_subscriber::registry().with(filter);
    let res = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Logfmt => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(Logfmt)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // A second init (tests) keeps the first subscriber; that is fine.
    let _ = res;
}

/// logfmt lines as Prometheus prints them:
/// `ts=2026-01-02T03:04:05.678Z level=info msg="..." key=value`.
struct Logfmt;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Logfmt
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let mut v = LogfmtVisitor::default();
        event.record(&mut v);
        write!(w, "ts={ts} level={level}")?;
        if let Some(msg) = &v.msg {
            write!(w, " msg={}", logfmt_value(msg))?;
        }
        w.write_str(&v.fields)?;
        writeln!(w)
    }
}

#[derive(Default)]
struct LogfmtVisitor {
    msg: Option<String>,
    fields: String,
}

impl tracing::field::Visit for LogfmtVisitor {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.msg = Some(value.to_string());
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), logfmt_value(value));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

/// Quotes a logfmt value when it needs it.
fn logfmt_value(s: &str) -> String {
    if !s.is_empty()
        && !s
            .bytes()
            .any(|b| b <= b' ' || b == b'"' || b == b'=' || b == b'\\')
    {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::storage::mem::MemStorage;

    #[test]
    fn registry_encodes_own_metrics() {
        let t = Telemetry::new(Arc::new(MemStorage::new()));
        t.scrape
            .failures
            .get_or_create(&vec![
                ("job", "node".to_string()),
                ("reason", "timeout".to_string()),
            ])
            .inc();
        let out = t.encode();
        assert!(
            out.contains("watchpost_scrape_failures_total{job=\"node\",reason=\"timeout\"} 1"),
            "{out}"
        );
        assert!(out.contains("watchpost_storage_head_series 0"), "{out}");
        assert!(out.contains("watchpost_build_info{version="), "{out}");
        assert!(out.ends_with("# EOF\n"));
    }

    #[test]
    fn logfmt_quotes_when_needed() {
        assert_eq!(logfmt_value("plain"), "plain");
        assert_eq!(logfmt_value("two words"), "\"two words\"");
        assert_eq!(logfmt_value("a\"b"), "\"a\\\"b\"");
        assert_eq!(logfmt_value(""), "\"\"");
    }
}
