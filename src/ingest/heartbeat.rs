//! Heartbeats (dead man's switches): each configured check expects a ping
//! (`POST` or `GET /api/v1/heartbeat/<name>`) at least once per `period`;
//! when none came for `period + grace`, the built-in alert
//! `HeartbeatMissed` fires and goes to the notification pipeline like any
//! other alert; the next ping resolves it.
//!
//! [`Heartbeats`] owns the checks' state: the last ping of each (exported
//! as `watchpost_heartbeat_last_ping_timestamp_seconds{name}` on `/metrics`
//! and appended to storage so rules can use it), and which are missed. One
//! loop ([`Heartbeats::run`]) sleeps until the next deadline, raises and
//! re-sends alerts, writes samples and persists the last ping times in a
//! small checksummed file, so a restart neither forgets a missed
//! heartbeat nor fires one falsely: a check never pinged starts its timer
//! when watchpost starts.
//!
//! Time comes from the injected [`Now`] and waits are tokio sleeps, so a
//! test on a paused tokio clock drives the whole timeline. Alerts leave
//! through [`AlertOut`] (wired by `app`); this module does not know the
//! notification pipeline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::HeartbeatConfig;
use crate::model::{Alert, Labels, Timestamp, format_duration};
use crate::storage::Storage;
use crate::telemetry::HeartbeatMetrics;

/// The wall clock, in milliseconds since the epoch.
pub type Now = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Where alerts go (the notification pipeline). Must only enqueue.
pub type AlertOut = Arc<dyn Fn(Vec<Alert>) + Send + Sync>;

/// The metric (and series) holding each heartbeat's last ping time.
pub const LAST_PING_METRIC: &str = "watchpost_heartbeat_last_ping_timestamp_seconds";
/// The built-in alert's name.
pub const ALERT_NAME: &str = "HeartbeatMissed";
/// `severity` of `HeartbeatMissed` unless the heartbeat's labels set one:
/// a missed cron job wants attention, rarely a page at night.
pub const DEFAULT_SEVERITY: &str = "warning";

const STATE_FILE: &str = "state";
const STATE_MAGIC: &str = "watchpost-heartbeats";
const STATE_VERSION: &str = "v1";

/// How the heartbeats run.
#[derive(Clone)]
pub struct HeartbeatOptions {
    /// Where the last ping times are kept (`<storage.path>/heartbeats`);
    /// `None` keeps nothing across restarts.
    pub state_dir: Option<PathBuf>,
    pub now: Now,
    /// How often a missed heartbeat's alert is sent again, so the
    /// pipeline's `resolve_timeout` never ends it while it is still missed
    /// (Prometheus's resend delay).
    pub resend_interval: Duration,
    /// How often the last ping times are appended to storage (besides right
    /// after each ping), so rules always see a fresh sample.
    pub sample_interval: Duration,
    /// Pings are written to the state file at most this often.
    pub flush_interval: Duration,
}

impl HeartbeatOptions {
    pub fn new(state_dir: Option<PathBuf>, now: Now) -> Self {
        HeartbeatOptions {
            state_dir,
            now,
            resend_interval: Duration::from_secs(60),
            sample_interval: Duration::from_secs(15),
            flush_interval: Duration::from_secs(1),
        }
    }
}

impl std::fmt::Debug for HeartbeatOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeartbeatOptions")
            .field("state_dir", &self.state_dir)
            .field("resend_interval", &self.resend_interval)
            .finish_non_exhaustive()
    }
}

/// A ping for a heartbeat that is not configured.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "heartbeat {name:?} is not configured: add it under heartbeats: in the config and reload{known}"
)]
pub struct UnknownHeartbeat {
    pub name: String,
    /// ` (configured: a, b)` or empty.
    known: String,
}

/// A damaged or unreadable state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}: the last ping times are forgotten; timers start now")]
    Corrupt { path: String, reason: String },
}

/// One heartbeat as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatStatus {
    pub name: String,
    pub period: Duration,
    pub grace: Duration,
    pub last_ping: Option<Timestamp>,
    /// When it counts as missed unless pinged before.
    pub deadline: Timestamp,
    /// Since when it is missed (its alert fires).
    pub missed_since: Option<Timestamp>,
    /// The labels and annotations of its `HeartbeatMissed` alert.
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
}

struct Check {
    cfg: HeartbeatConfig,
    last_ping: Option<Timestamp>,
    /// The timer's start when never pinged (watchpost's start, or when the
    /// heartbeat was added by a reload).
    started: Timestamp,
    missed_since: Option<Timestamp>,
    last_sent: Timestamp,
    labels: Labels,
    series: Labels,
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

fn rfc3339(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(t)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| t.to_string())
}

impl Check {
    fn new(cfg: HeartbeatConfig, last_ping: Option<Timestamp>, now: Timestamp) -> Check {
        let mut pairs: Vec<(String, String)> = vec![("severity".into(), DEFAULT_SEVERITY.into())];
        pairs.extend(cfg.labels.iter().map(|l| (l.name.clone(), l.value.clone())));
        pairs.push(("alertname".into(), ALERT_NAME.into()));
        pairs.push(("heartbeat".into(), cfg.name.clone()));
        Check {
            labels: Labels::from_pairs(pairs),
            series: Labels::from_pairs([
                ("__name__", LAST_PING_METRIC),
                ("name", cfg.name.as_str()),
            ]),
            cfg,
            last_ping,
            started: now,
            missed_since: None,
            last_sent: now,
        }
    }

    fn deadline(&self) -> Timestamp {
        self.last_ping
            .unwrap_or(self.started)
            .saturating_add(ms(self.cfg.deadline()))
    }

    fn annotations(&self) -> BTreeMap<String, String> {
        let since = match self.last_ping {
            Some(t) => format!("the last ping was at {}", rfc3339(t)),
            None => format!(
                "it was never pinged since watchpost started watching it at {}",
                rfc3339(self.started)
            ),
        };
        let mut a = BTreeMap::from([
            (
                "summary".to_string(),
                format!("heartbeat {:?} missed its ping", self.cfg.name),
            ),
            (
                "description".to_string(),
                format!(
                    "heartbeat {:?} expects a ping every {} (grace {}); {since}",
                    self.cfg.name,
                    format_duration(self.cfg.period),
                    format_duration(self.cfg.grace)
                ),
            ),
        ]);
        a.extend(self.cfg.annotations.clone());
        a
    }

    /// The alert: firing until `now + 4 x resend` unless `resolved_at`.
    fn alert(&self, since: Timestamp, now: Timestamp, end: Timestamp) -> Alert {
        Alert {
            labels: self.labels.clone(),
            annotations: self.annotations(),
            starts_at: since,
            ends_at: Some(end),
            updated_at: now,
            generator_url: String::new(),
        }
    }

    fn status(&self) -> HeartbeatStatus {
        HeartbeatStatus {
            name: self.cfg.name.clone(),
            period: self.cfg.period,
            grace: self.cfg.grace,
            last_ping: self.last_ping,
            deadline: self.deadline(),
            missed_since: self.missed_since,
            labels: self.labels.clone(),
            annotations: self.annotations(),
        }
    }
}

struct State {
    checks: BTreeMap<String, Check>,
    /// Pings not yet in the state file.
    dirty: bool,
    /// A ping came since the last samples were written.
    sample_due: bool,
}

/// The heartbeats. See the module docs.
pub struct Heartbeats {
    state: Mutex<State>,
    wake: Notify,
    opts: HeartbeatOptions,
    storage: Arc<dyn Storage>,
    metrics: HeartbeatMetrics,
    out: AlertOut,
}

impl std::fmt::Debug for Heartbeats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeats").finish_non_exhaustive()
    }
}

fn unknown(checks: &BTreeMap<String, Check>, name: &str) -> UnknownHeartbeat {
    let names: Vec<&str> = checks.keys().take(10).map(String::as_str).collect();
    let known = match names.len() {
        0 => " (none are configured)".to_string(),
        n if n < checks.len() => format!(" (configured: {}, ...)", names.join(", ")),
        _ => format!(" (configured: {})", names.join(", ")),
    };
    UnknownHeartbeat {
        // Bounded: the name is echoed back.
        name: name
            .chars()
            .take(crate::config::MAX_HEARTBEAT_NAME)
            .collect(),
        known,
    }
}

fn name_pairs(name: &str) -> Vec<(&'static str, String)> {
    vec![("name", name.to_string())]
}

impl Heartbeats {
    /// The checks of `configs`, with the last ping times read back from
    /// `opts.state_dir` (a damaged file is reported and ignored: every
    /// timer then starts now, which never fires early).
    pub fn new(
        configs: &[HeartbeatConfig],
        opts: HeartbeatOptions,
        storage: Arc<dyn Storage>,
        metrics: HeartbeatMetrics,
        out: AlertOut,
    ) -> Arc<Heartbeats> {
        let saved = match &opts.state_dir {
            Some(dir) => match read_state(dir) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "reading heartbeat state failed");
                    BTreeMap::new()
                }
            },
            None => BTreeMap::new(),
        };
        let now = (opts.now)();
        let mut checks = BTreeMap::new();
        for c in configs {
            let last = saved.get(&c.name).copied();
            if let Some(t) = last {
                metrics
                    .last_ping_timestamp_seconds
                    .get_or_create(&name_pairs(&c.name))
                    .set(t as f64 / 1000.0);
            }
            checks.insert(c.name.clone(), Check::new(c.clone(), last, now));
        }
        Arc::new(Heartbeats {
            state: Mutex::new(State {
                checks,
                dirty: false,
                sample_due: true,
            }),
            wake: Notify::new(),
            opts,
            storage,
            metrics,
            out,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change is one short step; a panic elsewhere leaves
        // consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a ping of `name` now; resolves its alert if it was missed.
    pub fn ping(&self, name: &str) -> Result<HeartbeatStatus, UnknownHeartbeat> {
        let now = (self.opts.now)();
        let (status, resolved) = {
            let mut st = self.lock();
            if !st.checks.contains_key(name) {
                return Err(unknown(&st.checks, name));
            }
            st.dirty = true;
            st.sample_due = true;
            let Some(c) = st.checks.get_mut(name) else {
                return Err(UnknownHeartbeat {
                    name: name.to_string(),
                    known: String::new(),
                });
            };
            // A clock step backwards must not move the deadline back.
            c.last_ping = Some(c.last_ping.map_or(now, |t| t.max(now)));
            let resolved = c.missed_since.take().map(|since| c.alert(since, now, now));
            (c.status(), resolved)
        };
        let pairs = name_pairs(name);
        self.metrics
            .last_ping_timestamp_seconds
            .get_or_create(&pairs)
            .set(status.last_ping.unwrap_or(now) as f64 / 1000.0);
        self.metrics.pings.get_or_create(&pairs).inc();
        if let Some(a) = resolved {
            tracing::info!(heartbeat = %name, "heartbeat pinged again; HeartbeatMissed resolved");
            (self.out)(vec![a]);
        }
        self.wake.notify_one();
        Ok(status)
    }

    /// Applies a reloaded `heartbeats:` section: unchanged names keep their
    /// last ping; new ones start their timer now; removed ones (and ones
    /// whose alert labels changed) resolve an alert they had firing.
    pub fn apply(&self, configs: &[HeartbeatConfig]) {
        let now = (self.opts.now)();
        let mut resolved = Vec::new();
        {
            let mut st = self.lock();
            let mut old = std::mem::take(&mut st.checks);
            for cfg in configs {
                let check = match old.remove(&cfg.name) {
                    Some(prev) => {
                        let mut c = Check::new(cfg.clone(), prev.last_ping, prev.started);
                        c.last_sent = prev.last_sent;
                        if let Some(since) = prev.missed_since {
                            if c.labels == prev.labels {
                                c.missed_since = Some(since);
                            } else {
                                // The next tick fires it under the new labels.
                                resolved.push(prev.alert(since, now, now));
                            }
                        }
                        c
                    }
                    None => Check::new(cfg.clone(), None, now),
                };
                st.checks.insert(cfg.name.clone(), check);
            }
            for (name, c) in old {
                if let Some(since) = c.missed_since {
                    resolved.push(c.alert(since, now, now));
                }
                self.metrics
                    .last_ping_timestamp_seconds
                    .remove(&name_pairs(&name));
                self.metrics.pings.remove(&name_pairs(&name));
                st.dirty = true;
            }
        }
        if !resolved.is_empty() {
            (self.out)(resolved);
        }
        self.wake.notify_one();
    }

    /// Every heartbeat, by name.
    pub fn statuses(&self) -> Vec<HeartbeatStatus> {
        self.lock().checks.values().map(Check::status).collect()
    }

    /// The heartbeats that are missed (their `HeartbeatMissed` fires).
    pub fn missed(&self) -> Vec<HeartbeatStatus> {
        self.lock()
            .checks
            .values()
            .filter(|c| c.missed_since.is_some())
            .map(Check::status)
            .collect()
    }

    /// One step of the timer loop at `now`: raises alerts for heartbeats
    /// past their deadline, re-sends firing ones, resolves ones a reload
    /// gave a later deadline. Returns the alerts and when to look again.
    fn tick(&self, now: Timestamp) -> (Vec<Alert>, Timestamp) {
        let resend = ms(self.opts.resend_interval).max(1);
        let end = now.saturating_add(4 * resend);
        let mut out = Vec::new();
        let mut next = Timestamp::MAX;
        let mut st = self.lock();
        for c in st.checks.values_mut() {
            let deadline = c.deadline();
            match c.missed_since {
                None if now > deadline => {
                    tracing::warn!(heartbeat = %c.cfg.name, last_ping = ?c.last_ping, "heartbeat missed");
                    c.missed_since = Some(deadline);
                    c.last_sent = now;
                    out.push(c.alert(deadline, now, end));
                }
                Some(since) if now <= deadline => {
                    c.missed_since = None;
                    out.push(c.alert(since, now, now));
                }
                Some(since) if now >= c.last_sent.saturating_add(resend) => {
                    c.last_sent = now;
                    out.push(c.alert(since, now, end));
                }
                _ => {}
            }
            next = next.min(match c.missed_since {
                // Strictly after the deadline, as `now > deadline` wants.
                None => deadline.saturating_add(1),
                Some(_) => c.last_sent.saturating_add(resend),
            });
        }
        (out, next)
    }

    /// Appends the last ping time of every pinged heartbeat at `now`.
    fn write_samples(&self, now: Timestamp) {
        let rows: Vec<(Labels, f64)> = self
            .lock()
            .checks
            .values()
            .filter_map(|c| c.last_ping.map(|t| (c.series.clone(), t as f64 / 1000.0)))
            .collect();
        if rows.is_empty() {
            return;
        }
        let mut app = self.storage.appender();
        for (labels, v) in &rows {
            if let Err(e) = app.append(labels, now, *v) {
                tracing::debug!(error = %e, "heartbeat sample refused");
            }
        }
        if let Err(e) = app.commit() {
            tracing::warn!(error = %e, "writing heartbeat samples failed");
        }
    }

    /// The state file's content if pings are not yet written, clearing the
    /// dirty flag.
    fn take_dirty(&self) -> Option<Vec<u8>> {
        let mut st = self.lock();
        if !st.dirty {
            return None;
        }
        st.dirty = false;
        Some(encode_state(st.checks.values().filter_map(|c| {
            c.last_ping.map(|t| (c.cfg.name.as_str(), t))
        })))
    }

    async fn flush(self: &Arc<Self>) {
        let (Some(dir), Some(bytes)) = (self.opts.state_dir.clone(), self.take_dirty()) else {
            return;
        };
        let res = tokio::task::spawn_blocking(move || write_state(&dir, &bytes)).await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "writing heartbeat state failed; retrying");
                self.lock().dirty = true;
            }
            Err(e) => tracing::error!(error = %e, "writing heartbeat state panicked"),
        }
    }

    /// The timer loop; returns after `cancel`, with the state written.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let sample_every = ms(self.opts.sample_interval).max(1);
        let flush_every = ms(self.opts.flush_interval);
        let mut next_sample = Timestamp::MIN;
        let mut last_flush = Timestamp::MIN;
        loop {
            let now = (self.opts.now)();
            let (alerts, mut wake_at) = self.tick(now);
            if !alerts.is_empty() {
                (self.out)(alerts);
            }
            let due = std::mem::take(&mut self.lock().sample_due);
            if due || now >= next_sample {
                next_sample = now.saturating_add(sample_every);
                let me = self.clone();
                let _ = tokio::task::spawn_blocking(move || me.write_samples(now)).await;
            }
            wake_at = wake_at.min(next_sample);
            if self.lock().dirty {
                if now >= last_flush.saturating_add(flush_every) {
                    last_flush = now;
                    self.flush().await;
                } else {
                    wake_at = wake_at.min(last_flush.saturating_add(flush_every));
                }
            }
            let wait =
                Duration::from_millis(u64::try_from(wake_at.saturating_sub(now)).unwrap_or(0));
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
            }
        }
        self.flush().await;
    }
}

fn encode_state<'a>(rows: impl Iterator<Item = (&'a str, Timestamp)>) -> Vec<u8> {
    let mut body = String::new();
    for (name, t) in rows {
        body.push_str(&format!("{name} {t}\n"));
    }
    let mut out = format!(
        "{STATE_MAGIC} {STATE_VERSION} crc32c={:08x}\n",
        crc32c::crc32c(body.as_bytes())
    );
    out.push_str(&body);
    out.into_bytes()
}

fn decode_state(bytes: &[u8], path: &str) -> Result<BTreeMap<String, Timestamp>, StateError> {
    let corrupt = |reason: &str| StateError::Corrupt {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt("not text"))?;
    let (header, body) = text
        .split_once('\n')
        .ok_or_else(|| corrupt("no header line"))?;
    let mut parts = header.split(' ');
    if parts.next() != Some(STATE_MAGIC) || parts.next() != Some(STATE_VERSION) {
        return Err(corrupt("not a watchpost heartbeat state file (v1)"));
    }
    let crc = parts
        .next()
        .and_then(|p| p.strip_prefix("crc32c="))
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| corrupt("bad checksum field"))?;
    if crc32c::crc32c(body.as_bytes()) != crc {
        return Err(corrupt("checksum mismatch (damaged or truncated)"));
    }
    let mut out = BTreeMap::new();
    for line in body.lines() {
        let (name, t) = line
            .split_once(' ')
            .and_then(|(n, t)| Some((n, t.parse::<Timestamp>().ok()?)))
            .ok_or_else(|| corrupt("bad line"))?;
        out.insert(name.to_string(), t);
    }
    Ok(out)
}

fn read_state(dir: &Path) -> Result<BTreeMap<String, Timestamp>, StateError> {
    let path = dir.join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(b) => decode_state(&b, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(source) => Err(StateError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Writes the file whole (temp file, fsync, rename), so a crash leaves the
/// old or the new version, never half of one.
fn write_state(dir: &Path, bytes: &[u8]) -> Result<(), StateError> {
    use std::io::Write;
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| StateError::Io { path: p, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;
    use crate::storage::mem::MemStorage;

    fn cfg(name: &str, period: u64, grace: u64) -> HeartbeatConfig {
        HeartbeatConfig {
            name: name.into(),
            period: Duration::from_secs(period),
            grace: Duration::from_secs(grace),
            labels: Labels::from_pairs([("team", "ops")]),
            annotations: BTreeMap::from([("runbook".to_string(), "r".to_string())]),
        }
    }

    struct Fixture {
        hb: Arc<Heartbeats>,
        clock: Arc<AtomicI64>,
        sent: Arc<Mutex<Vec<Alert>>>,
    }

    fn fixture(dir: Option<&Path>, configs: &[HeartbeatConfig], start: Timestamp) -> Fixture {
        let clock = Arc::new(AtomicI64::new(start));
        let c = clock.clone();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let s = sent.clone();
        let hb = Heartbeats::new(
            configs,
            HeartbeatOptions::new(
                dir.map(Path::to_path_buf),
                Arc::new(move || c.load(Ordering::SeqCst)),
            ),
            Arc::new(MemStorage::new()),
            HeartbeatMetrics::default(),
            Arc::new(move |a| s.lock().unwrap().extend(a)),
        );
        Fixture { hb, clock, sent }
    }

    #[test]
    fn fires_after_period_plus_grace_and_resolves_on_ping() {
        let f = fixture(None, &[cfg("backup", 60, 10)], 1_000_000);
        let (out, next) = f.hb.tick(1_000_000);
        assert!(out.is_empty());
        assert_eq!(next, 1_070_001);
        assert!(f.hb.tick(1_070_000).0.is_empty(), "exactly at the deadline");
        let (out, _) = f.hb.tick(1_070_001);
        assert_eq!(out.len(), 1);
        let a = &out[0];
        assert_eq!(a.labels.get("alertname"), Some(ALERT_NAME));
        assert_eq!(a.labels.get("heartbeat"), Some("backup"));
        assert_eq!(a.labels.get("severity"), Some(DEFAULT_SEVERITY));
        assert_eq!(a.labels.get("team"), Some("ops"));
        assert_eq!(a.annotations["runbook"], "r");
        assert!(a.annotations["description"].contains("never pinged"));
        assert_eq!(a.starts_at, 1_070_000);
        assert!(a.ends_at.unwrap() > 1_070_001);
        assert_eq!(f.hb.missed().len(), 1);
        // Re-sent every resend interval while missed.
        assert!(f.hb.tick(1_100_000).0.is_empty());
        assert_eq!(f.hb.tick(1_130_001).0.len(), 1);
        f.clock.store(1_200_000, Ordering::SeqCst);
        f.hb.ping("backup").unwrap();
        let sent = f.sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].ends_at, Some(1_200_000), "resolved at the ping");
        assert!(f.hb.missed().is_empty());
        assert_eq!(f.hb.tick(1_200_000).1, 1_270_001);
    }

    #[test]
    fn unknown_name_is_a_clear_error() {
        let f = fixture(None, &[cfg("a", 60, 0), cfg("b", 60, 0)], 0);
        let e = f.hb.ping("nope").unwrap_err().to_string();
        assert_eq!(
            e,
            "heartbeat \"nope\" is not configured: add it under heartbeats: in the config and reload (configured: a, b)"
        );
    }

    #[test]
    fn reload_keeps_pings_and_resolves_removed_missed_checks() {
        let f = fixture(None, &[cfg("a", 60, 0), cfg("b", 60, 0)], 0);
        f.clock.store(10_000, Ordering::SeqCst);
        f.hb.ping("a").unwrap();
        assert_eq!(f.hb.tick(60_001).0.len(), 1, "b missed");
        f.clock.store(61_000, Ordering::SeqCst);
        f.hb.apply(&[cfg("a", 120, 0), cfg("c", 60, 0)]);
        let sent = f.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].labels.get("heartbeat"), Some("b"));
        assert_eq!(sent[0].ends_at, Some(61_000));
        let st = f.hb.statuses();
        assert_eq!(st[0].last_ping, Some(10_000));
        assert_eq!(st[0].deadline, 130_000);
        assert_eq!(st[1].name, "c");
        assert_eq!(st[1].deadline, 121_000, "a new check starts its timer now");
    }

    #[test]
    fn state_survives_a_restart_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let f = fixture(Some(dir.path()), &[cfg("a", 60, 0), cfg("b", 60, 0)], 0);
        f.clock.store(5_000, Ordering::SeqCst);
        f.hb.ping("a").unwrap();
        write_state(dir.path(), &f.hb.take_dirty().unwrap()).unwrap();
        assert!(f.hb.take_dirty().is_none());

        // Restarted long after: a is missed at once (not forgotten), b was
        // never pinged and starts its timer now (no false alarm).
        let g = fixture(
            Some(dir.path()),
            &[cfg("a", 60, 0), cfg("b", 60, 0)],
            500_000,
        );
        let (out, _) = g.hb.tick(500_000);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].labels.get("heartbeat"), Some("a"));
        assert_eq!(out[0].starts_at, 65_000);

        let path = dir.path().join(STATE_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] = b'9';
        std::fs::write(&path, &bytes).unwrap();
        let e = read_state(dir.path()).unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
        let h = fixture(Some(dir.path()), &[cfg("a", 60, 0)], 500_000);
        assert!(
            h.hb.tick(500_000).0.is_empty(),
            "damaged state: timers start now"
        );
    }
}
