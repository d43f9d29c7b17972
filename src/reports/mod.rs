//! Digest reports (`reports:`): on each report's cron schedule, the
//! alerts that fired and resolved over its window, the time each alert
//! spent firing, the noisiest rules and target availability per job,
//! sent as an HTML mail with an inline chart and/or a Telegram message
//! through a receiver of the notify config.
//!
//! Layout: [`compute`] turns PromQL answers into a [`Report`] (from a
//! [`QuerySource`]: the engine over the local storage, or a watchpost's
//! HTTP API for the command line), [`render`] and [`png`] turn it into a
//! [`Digest`] (text, HTML, Telegram HTML, chart), and the receiver's
//! email and Telegram integrations deliver it with the channel code that
//! notifications use ([`crate::channels::digest`]). [`ReportManager`] is
//! the scheduler: one loop per report waits for the next cron time in the
//! report's zone and runs it; `app` starts it, hands it every validated
//! config (a reload replaces the loops) and stops it at shutdown.
//!
//! Reports sit beside the alert path, not on it: they read storage and
//! write nothing back, and a failed report is logged and counted
//! (`watchpost_reports_failed_total`), never retried before its next run,
//! since a digest that arrives hours late is noise.

pub mod compute;
pub mod png;
pub mod render;
pub mod source;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::TimeZone as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::channels::digest::{Digest, DigestSender, digest_senders};
use crate::channels::{ChannelContext, ChannelError, Templates};
use crate::config::ReportConfig;
use crate::config::notify::{IntervalLocation, NotifyConfig};
use crate::model::Timestamp;
use crate::notify::{Clock, SendError};
use crate::telemetry::ReportMetrics;

pub use compute::Report;
pub use source::{HttpSource, LocalSource, QuerySource};

/// Why a report could not be made or set up.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("query {query:?}: {message}")]
    Query { query: String, message: String },
    #[error("{message}")]
    Source { message: String },
    #[error("report {name:?} is not in the config: {known}")]
    Unknown { name: String, known: String },
    #[error("report {report:?}: receiver {receiver:?}: {message}")]
    Receiver {
        report: String,
        receiver: String,
        message: String,
    },
    #[error("report {report:?}: {source}")]
    Channels {
        report: String,
        #[source]
        source: ChannelError,
    },
    #[error("report {report:?}: schedule {schedule:?} has no next run: {message}")]
    Schedule {
        report: String,
        schedule: String,
        message: String,
    },
}

/// A report with the channels it is sent through.
pub struct PreparedReport {
    pub config: ReportConfig,
    senders: Vec<DigestSender>,
}

impl std::fmt::Debug for PreparedReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedReport")
            .field("name", &self.config.name)
            .field("senders", &self.senders.len())
            .finish()
    }
}

/// Builds every report's channels from the notify config (its templates
/// read now), before anything is started, so a reload that cannot build
/// them changes nothing.
pub fn prepare(
    reports: &[ReportConfig],
    notify: &NotifyConfig,
) -> Result<Vec<PreparedReport>, ReportError> {
    if reports.is_empty() {
        return Ok(Vec::new());
    }
    let templates = Templates::load(&notify.templates).map_err(|source| ReportError::Channels {
        report: reports[0].name.clone(),
        source,
    })?;
    let ctx = ChannelContext::new(templates);
    reports
        .iter()
        .map(|r| {
            let receiver_error = |message: &str| ReportError::Receiver {
                report: r.name.clone(),
                receiver: r.receiver.clone(),
                message: message.to_string(),
            };
            let receiver = notify.receiver(&r.receiver).ok_or_else(|| {
                receiver_error("not in the notify config: name one of its receivers")
            })?;
            let senders =
                digest_senders(receiver, &ctx).map_err(|source| ReportError::Channels {
                    report: r.name.clone(),
                    source,
                })?;
            if senders.is_empty() {
                return Err(receiver_error(
                    "has no email_configs or telegram_configs entry to send the report through",
                ));
            }
            Ok(PreparedReport {
                config: r.clone(),
                senders,
            })
        })
        .collect()
}

/// The report named `name` among `reports`.
pub fn find<'a>(reports: &'a [ReportConfig], name: &str) -> Result<&'a ReportConfig, ReportError> {
    reports
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| ReportError::Unknown {
            name: name.to_string(),
            known: if reports.is_empty() {
                "the config has no reports: section".to_string()
            } else {
                let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
                format!("use one of {}", names.join(", "))
            },
        })
}

/// Computes and renders `cfg`'s report for the window ending at `end`.
pub async fn make(
    source: &dyn QuerySource,
    cfg: &ReportConfig,
    end: Timestamp,
) -> Result<(Report, Digest), ReportError> {
    let report = compute::compute(source, cfg, end).await?;
    let digest = render::digest(&report, cfg.location);
    Ok((report, digest))
}

/// What one integration did with a report.
#[derive(Debug)]
pub struct SendOutcome {
    /// `email[0]`.
    pub integration: String,
    pub result: Result<(), SendError>,
}

impl std::fmt::Display for SendOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.result {
            Ok(()) => write!(f, "{}: sent", self.integration),
            Err(e) => write!(f, "{}: failed: {e}", self.integration),
        }
    }
}

/// Makes the report for the window ending at `end` and sends it through
/// every integration once, counting each outcome.
pub async fn send(
    source: &dyn QuerySource,
    report: &PreparedReport,
    end: Timestamp,
    metrics: &ReportMetrics,
) -> Result<Vec<SendOutcome>, ReportError> {
    let name = report.config.name.as_str();
    let digest = match make(source, &report.config, end).await {
        Ok((_, d)) => d,
        Err(e) => {
            metrics
                .failed
                .get_or_create(&vec![
                    ("report", name.to_string()),
                    ("reason", "query".to_string()),
                ])
                .inc();
            return Err(e);
        }
    };
    let mut outcomes = Vec::with_capacity(report.senders.len());
    for s in &report.senders {
        let result = s.send(&digest).await;
        match &result {
            Ok(()) => {
                metrics
                    .sent
                    .get_or_create(&vec![
                        ("report", name.to_string()),
                        ("integration", s.integration().to_string()),
                    ])
                    .inc();
                tracing::info!(report = %name, integration = %s.integration(), "report sent");
            }
            Err(e) => {
                metrics
                    .failed
                    .get_or_create(&vec![
                        ("report", name.to_string()),
                        ("reason", e.reason().to_string()),
                    ])
                    .inc();
                tracing::warn!(report = %name, integration = %s.integration(), error = %e, "report failed");
            }
        }
        outcomes.push(SendOutcome {
            integration: s.integration().to_string(),
            result,
        });
    }
    Ok(outcomes)
}

/// The first run of `cfg` strictly after `after`, read in the report's zone
/// (croner steps over the hour a DST change skips and runs a repeated
/// hour once).
pub fn next_run(cfg: &ReportConfig, after: Timestamp) -> Result<Timestamp, ReportError> {
    let err = |message: String| ReportError::Schedule {
        report: cfg.name.clone(),
        schedule: cfg.schedule_text.clone(),
        message,
    };
    let utc = chrono::DateTime::from_timestamp_millis(after)
        .ok_or_else(|| err(format!("time {after} is out of range")))?;
    let next = match cfg.location {
        IntervalLocation::Utc => cfg
            .schedule
            .find_next_occurrence(&utc, false)
            .map(|t| t.timestamp_millis()),
        IntervalLocation::Local => cfg
            .schedule
            .find_next_occurrence(&chrono::Local.from_utc_datetime(&utc.naive_utc()), false)
            .map(|t| t.timestamp_millis()),
        IntervalLocation::Tz(tz) => cfg
            .schedule
            .find_next_occurrence(&utc.with_timezone(&tz), false)
            .map(|t| t.timestamp_millis()),
    };
    next.map_err(|e| err(e.to_string()))
}

/// Longest single sleep of a report loop: it wakes at least this often to
/// read the wall clock again, so a clock step (NTP, suspend) delays a run
/// by at most this much instead of by the whole wait.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Runs every report on its schedule; replaced wholesale on reload.
pub struct ReportManager {
    source: Arc<dyn QuerySource>,
    metrics: ReportMetrics,
    clock: Clock,
    tracker: TaskTracker,
    /// Cancels the current generation of loops. A std mutex: held only to
    /// swap the token, never across an await.
    current: Mutex<CancellationToken>,
}

impl std::fmt::Debug for ReportManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportManager").finish_non_exhaustive()
    }
}

impl ReportManager {
    /// A manager with no reports yet; loops are spawned on `tracker`.
    pub fn new(
        source: Arc<dyn QuerySource>,
        metrics: ReportMetrics,
        clock: Clock,
        tracker: TaskTracker,
    ) -> Self {
        ReportManager {
            source,
            metrics,
            clock,
            tracker,
            current: Mutex::new(CancellationToken::new()),
        }
    }

    /// Stops the running loops (a send in progress finishes) and starts
    /// one per report.
    pub fn apply(&self, reports: Vec<PreparedReport>) {
        let token = CancellationToken::new();
        {
            let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
            cur.cancel();
            *cur = token.clone();
        }
        for r in reports {
            tracing::info!(report = %r.config.name, schedule = %r.config.schedule_text, "report scheduled");
            self.tracker.spawn(report_loop(
                self.source.clone(),
                self.metrics.clone(),
                self.clock.clone(),
                Arc::new(r),
                token.clone(),
            ));
        }
    }

    /// Stops every loop; the caller waits on the tracker.
    pub fn shutdown(&self) {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cancel();
    }
}

async fn report_loop(
    source: Arc<dyn QuerySource>,
    metrics: ReportMetrics,
    clock: Clock,
    report: Arc<PreparedReport>,
    cancel: CancellationToken,
) {
    let name = report.config.name.clone();
    let mut after = clock.now();
    loop {
        let due = match next_run(&report.config, after) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(report = %name, error = %e, "report will not run again");
                return;
            }
        };
        loop {
            let now = clock.now();
            if now >= due {
                break;
            }
            let wait = Duration::from_millis(u64::try_from(due - now).unwrap_or(0)).min(MAX_SLEEP);
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        // The window ends at the scheduled time, not at the moment the
        // loop woke up, so consecutive reports tile without gaps.
        if let Err(e) = send(source.as_ref(), &report, due, &metrics).await {
            tracing::warn!(report = %name, error = %e, "report failed");
        }
        after = due;
        if cancel.is_cancelled() {
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::config::notify::parse_cron;

    fn cfg(schedule: &str, location: IntervalLocation) -> ReportConfig {
        ReportConfig {
            name: "r".into(),
            schedule_text: schedule.into(),
            schedule: parse_cron(schedule).unwrap(),
            location,
            receiver: "mail".into(),
            window: Duration::from_secs(86400),
            title: "R".into(),
        }
    }

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn next_run_follows_the_zone_and_dst() {
        let c = cfg("0 9 * * MON", IntervalLocation::Utc);
        // Friday 2026-12-04 -> Monday 2026-12-07 09:00 UTC.
        assert_eq!(
            next_run(&c, ms("2026-12-04T12:00:00Z")).unwrap(),
            ms("2026-12-07T09:00:00Z")
        );
        // Strictly after: at 09:00 itself, the next Monday.
        assert_eq!(
            next_run(&c, ms("2026-12-07T09:00:00Z")).unwrap(),
            ms("2026-12-14T09:00:00Z")
        );
        let berlin = cfg(
            "0 9 * * MON",
            IntervalLocation::Tz(chrono_tz::Europe::Berlin),
        );
        assert_eq!(
            next_run(&berlin, ms("2026-12-04T12:00:00Z")).unwrap(),
            ms("2026-12-07T08:00:00Z")
        );
        // 2027-03-28: Berlin skips 02:00-03:00; a 02:30 daily run moves
        // to the next existing time rather than vanishing.
        let spring = cfg(
            "30 2 * * *",
            IntervalLocation::Tz(chrono_tz::Europe::Berlin),
        );
        let next = next_run(&spring, ms("2027-03-27T12:00:00Z")).unwrap();
        assert!(
            next >= ms("2027-03-28T01:00:00Z") && next <= ms("2027-03-29T00:30:00Z"),
            "{next}"
        );
    }
}
