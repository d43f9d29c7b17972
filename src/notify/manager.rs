//! The notification pipeline as a running service: [`NotifyManager`] owns
//! the alert store, the dispatcher (routes and aggregation groups), the
//! silences, the notification log, the outgoing queue and the history, and
//! runs the tasks that move alerts through the fixed stages:
//!
//! ```text
//! alerts (rules mpsc, POST /api/v2/alerts)
//!   -> store (merge) -> route -> aggregation groups      [ingest]
//!   -> group timer fires: inhibit -> time intervals -> silences
//!      -> dedup against the notification log             [flush]
//!   -> journal (queue + log, one record) -> delivery lane
//!   -> send with retry -> record (history, metrics, done) [lanes]
//! ```
//!
//! Tasks (all tracked, all stopped by [`NotifyManager::shutdown`]): one
//! ingest loop reading the rules' channel; one timer loop that sleeps until
//! the next group flush (tokio time, so tests pause and advance it) and
//! does periodic maintenance; one delivery task per lane (receiver
//! integration and group) while that lane has notifications; the journal
//! writer.
//!
//! State lives behind one std mutex that is never held across an await:
//! every decision is a short synchronous step, and journal submissions are
//! made under it so the journal's order is the order of the changes. The
//! manager reads the clock (it is a scheduler) and hands `now` to the pure
//! stages. It does not talk to the network itself: channels do, through
//! [`Notifier`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::notify::{NotifyConfig, Receiver};
use crate::model::{Alert, Labels, Timestamp, fingerprint_hex};
use crate::telemetry::{LabelPairs, NotifyMetrics};

use super::clock::Clock;
use super::dispatch::Dispatcher;
use super::group::label_set_order;
use super::history::{History, HistoryEntry, HistoryEvent};
use super::inhibit::Inhibitor;
use super::journal::{self, Journal, JournalError, Record};
use super::nflog::{NflogKey, NotificationLog};
use super::queue::{LaneKey, Queue, QueuedNotification};
use super::retry::{self, Next, RetryPolicy};
use super::route::Route;
use super::silence::{Silence, SilenceState};
use super::silences::{PostedSilence, Silences, SilencesError, sort_for_listing};
use super::stage::{Decision, mute_stages};
use super::store::{AlertStore, normalize};
use super::timeinterval::TimeIntervals;
use super::{NotificationData, Notifier, SendError};

/// Builds the integrations of one receiver (the app passes a closure over
/// `channels::build`). Called at start and at every reload, before
/// anything changes, so a receiver that cannot be built fails the reload.
pub type NotifierFactory =
    Arc<dyn Fn(&Receiver) -> Result<Vec<Arc<dyn Notifier>>, NotifyError> + Send + Sync>;

/// How the manager runs.
#[derive(Debug, Clone)]
pub struct NotifyOptions {
    /// Where the notification log, the queue and the silences are kept
    /// (`<storage.path>/notify`); `None` keeps nothing across restarts.
    pub state_dir: Option<PathBuf>,
    /// watchpost's external URL, for links in notifications.
    pub external_url: String,
    pub retry: RetryPolicy,
    /// Most notifications waiting for delivery.
    pub queue_capacity: usize,
    /// Most history entries kept.
    pub history_capacity: usize,
    /// Most deliveries in flight per integration.
    pub max_concurrent_sends: usize,
    /// How often empty groups, expired log entries, resolved alerts and
    /// old silences are dropped and gauges refreshed.
    pub maintenance_interval: Duration,
    /// The journal is compacted once this many bytes were appended since
    /// the last compaction (and at shutdown).
    pub compact_after_bytes: u64,
    pub clock: Clock,
}

impl NotifyOptions {
    pub fn new(state_dir: Option<PathBuf>) -> Self {
        NotifyOptions {
            state_dir,
            external_url: String::new(),
            retry: RetryPolicy::default(),
            queue_capacity: super::queue::DEFAULT_CAPACITY,
            history_capacity: 1000,
            max_concurrent_sends: 16,
            maintenance_interval: Duration::from_secs(30),
            compact_after_bytes: 8 << 20,
            clock: Clock::system(),
        }
    }
}

/// Why the notification pipeline could not start, reload or change a
/// silence.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notification state: {0}")]
    Journal(#[from] Arc<JournalError>),
    #[error("receiver {receiver:?}: {message}")]
    Integration { receiver: String, message: String },
    #[error(transparent)]
    Silence(#[from] SilencesError),
    #[error("the notification pipeline is shutting down")]
    ShuttingDown,
}

impl From<JournalError> for NotifyError {
    fn from(e: JournalError) -> Self {
        NotifyError::Journal(Arc::new(e))
    }
}

struct IntegrationHandle {
    name: String,
    send_resolved: bool,
    notifier: Arc<dyn Notifier>,
}

/// Everything derived from one config.
struct Pipeline {
    config: Arc<NotifyConfig>,
    inhibitor: Inhibitor,
    intervals: TimeIntervals,
    receivers: HashMap<String, Vec<IntegrationHandle>>,
}

fn build_pipeline(
    config: &NotifyConfig,
    factory: &NotifierFactory,
) -> Result<Pipeline, NotifyError> {
    let mut receivers = HashMap::new();
    for r in &config.receivers {
        let list = factory(r)?
            .into_iter()
            .map(|n| IntegrationHandle {
                name: n.integration().to_string(),
                send_resolved: n.send_resolved(),
                notifier: n,
            })
            .collect();
        receivers.insert(r.name.clone(), list);
    }
    Ok(Pipeline {
        config: Arc::new(config.clone()),
        inhibitor: Inhibitor::new(&config.inhibit_rules),
        intervals: TimeIntervals::new(&config.time_intervals),
        receivers,
    })
}

struct Core {
    pipeline: Arc<Pipeline>,
    dispatcher: Dispatcher,
    store: AlertStore,
    silences: Silences,
    nflog: NotificationLog,
    queue: Queue,
    history: History,
    /// The last suppression reason recorded per log key, so the history
    /// notes a change of reason once instead of at every flush.
    suppressed: HashMap<NflogKey, &'static str>,
    next_id: u64,
    stopping: bool,
}

/// Per-integration delivery limits shared by its lanes.
struct Gate {
    /// No attempt before this (a peer's `retry_after`).
    not_before: Mutex<Option<Instant>>,
    permits: Semaphore,
}

struct Inner {
    core: Mutex<Core>,
    journal: Journal,
    opts: NotifyOptions,
    metrics: NotifyMetrics,
    factory: NotifierFactory,
    wake: Notify,
    tasks: TaskTracker,
    writer: TaskTracker,
    cancel: CancellationToken,
    gates: Mutex<HashMap<(String, String), Arc<Gate>>>,
    started_at: Timestamp,
}

/// The running notification pipeline. See the module docs.
pub struct NotifyManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NotifyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyManager").finish_non_exhaustive()
    }
}

/// An alert with its status, as the API and the UI show it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertView {
    pub alert: Alert,
    /// 16 hex digits.
    pub fingerprint: String,
    /// The receivers of every route the alert matches, in tree order.
    pub receivers: Vec<String>,
    /// Ids of the active silences that match it, sorted.
    pub silenced_by: Vec<String>,
    /// Fingerprints of the alerts that inhibit it.
    pub inhibited_by: Vec<String>,
}

impl AlertView {
    /// `suppressed` when silenced or inhibited, else `active`.
    pub fn state(&self) -> &'static str {
        if self.silenced_by.is_empty() && self.inhibited_by.is_empty() {
            "active"
        } else {
            "suppressed"
        }
    }
}

/// One aggregation group, as `/api/v2/alerts/groups` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupView {
    pub labels: Labels,
    pub receiver: String,
    pub group_key: String,
    /// The group's firing alerts, in notification order.
    pub alerts: Vec<AlertView>,
}

fn lock(m: &Mutex<Core>) -> MutexGuard<'_, Core> {
    // A panic while holding the lock leaves consistent data (every change
    // is a single step); keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn pairs(integration: &str, reason: &str) -> LabelPairs {
    vec![
        ("integration", integration.to_string()),
        ("reason", reason.to_string()),
    ]
}

impl NotifyManager {
    /// Starts the pipeline for `config`: reads the persisted state (if
    /// `opts.state_dir` is set), resumes deliveries that were queued, and
    /// reads alert batches from `alerts` until shutdown.
    pub async fn start(
        config: &NotifyConfig,
        factory: NotifierFactory,
        opts: NotifyOptions,
        metrics: NotifyMetrics,
        alerts: mpsc::Receiver<Vec<Alert>>,
    ) -> Result<Arc<NotifyManager>, NotifyError> {
        let pipeline = build_pipeline(config, &factory)?;
        let writer = TaskTracker::new();
        let (journal, recovered) = match &opts.state_dir {
            Some(dir) => {
                let dir = dir.clone();
                let (file, rec) = tokio::task::spawn_blocking(move || journal::open(&dir))
                    .await
                    .map_err(|e| {
                        NotifyError::from(JournalError::Io {
                            path: PathBuf::new(),
                            op: "opening",
                            source: std::io::Error::other(e.to_string()),
                        })
                    })??;
                let (j, task) = Journal::start(file);
                writer.spawn(task);
                (j, Some(rec))
            }
            None => (Journal::disabled(), None),
        };
        let started_at = opts.clock.now();
        let mut core = Core {
            dispatcher: Dispatcher::new(Route::new(&config.route)),
            pipeline: Arc::new(pipeline),
            store: AlertStore::new(),
            silences: Silences::default(),
            nflog: NotificationLog::new(),
            queue: Queue::new(opts.queue_capacity),
            history: History::new(opts.history_capacity),
            suppressed: HashMap::new(),
            next_id: 1,
            stopping: false,
        };
        let mut lanes = Vec::new();
        if let Some(rec) = recovered {
            for w in &rec.warnings {
                tracing::warn!(problem = %w, "notification state was damaged; the rest was kept");
            }
            if !rec.queue.is_empty() || rec.records > 0 {
                tracing::info!(
                    queued = rec.queue.len(),
                    log_entries = rec.nflog.len(),
                    silences = rec.silences.len(),
                    "notification state restored"
                );
            }
            for (k, e) in rec.nflog {
                core.nflog.set(k, e);
            }
            for s in rec.silences {
                core.silences.restore(s);
            }
            for n in rec.queue {
                if let Some(l) = core.queue.push(Arc::new(n)) {
                    lanes.push(l);
                }
            }
            core.next_id = rec.next_id;
        }
        let inner = Arc::new(Inner {
            core: Mutex::new(core),
            journal,
            metrics,
            factory,
            wake: Notify::new(),
            tasks: TaskTracker::new(),
            writer,
            cancel: CancellationToken::new(),
            gates: Mutex::new(HashMap::new()),
            started_at,
            opts,
        });
        inner.refresh_gauges();
        for l in lanes {
            inner.start_lane(l);
        }
        inner.tasks.spawn(timer_loop(inner.clone()));
        inner.tasks.spawn(ingest_loop(inner.clone(), alerts));
        Ok(Arc::new(NotifyManager { inner }))
    }

    /// Takes in alerts (from `POST /api/v2/alerts`; the rules use the
    /// channel given to [`NotifyManager::start`]).
    pub fn ingest(&self, alerts: Vec<Alert>) {
        self.inner.ingest(alerts);
    }

    /// Applies a new config, all or nothing: the integrations are built
    /// first, and only if every receiver builds do routes, inhibition
    /// rules, time intervals and integrations change. Alerts, groups
    /// (re-routed; unchanged groups keep their timers), the notification
    /// log, silences and queued notifications are kept.
    pub fn apply_config(&self, config: &NotifyConfig) -> Result<(), NotifyError> {
        self.apply_config_with(config, &self.inner.factory)
    }

    /// [`NotifyManager::apply_config`] with the integrations built by
    /// `factory`: the app passes one over the reloaded config's template
    /// files, so changed templates take effect on reload.
    pub fn apply_config_with(
        &self,
        config: &NotifyConfig,
        factory: &NotifierFactory,
    ) -> Result<(), NotifyError> {
        let pipeline = build_pipeline(config, factory)?;
        let now = self.inner.opts.clock.now();
        let now_i = Instant::now();
        {
            let mut core = lock(&self.inner.core);
            let root = Route::new(&config.route);
            let old = std::mem::replace(&mut core.dispatcher, Dispatcher::new(root.clone()));
            let store: Vec<Alert> = core.store.alerts().cloned().collect();
            core.dispatcher = old.rebuild(root, store.iter(), now, now_i);
            core.pipeline = Arc::new(pipeline);
        }
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Stops every task: no more intake or flushes; deliveries in flight
    /// get until `deadline` to finish (what is still queued is delivered
    /// after the next start); then the journal is compacted and closed.
    pub async fn shutdown(&self, deadline: Duration) {
        let inner = &self.inner;
        lock(&inner.core).stopping = true;
        inner.cancel.cancel();
        inner.tasks.close();
        if tokio::time::timeout(deadline, inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                deadline = ?deadline,
                "notification deliveries still running at shutdown; they are retried after the next start"
            );
        }
        let compact = {
            let core = lock(&inner.core);
            inner.journal.compact(snapshot(&core))
        };
        if let Err(e) = compact.wait().await {
            tracing::error!(error = %e, "compacting the notification journal at shutdown failed");
        }
        let _ = inner.journal.close().wait().await;
        inner.writer.close();
        let _ = tokio::time::timeout(deadline, inner.writer.wait()).await;
    }

    /// The notification history, oldest first.
    pub fn history(&self) -> Vec<HistoryEntry> {
        lock(&self.inner.core).history.entries()
    }

    /// The newest `limit` history entries, newest first.
    pub fn recent_history(&self, limit: usize) -> Vec<HistoryEntry> {
        lock(&self.inner.core).history.newest(limit)
    }

    /// The current config.
    pub fn config(&self) -> Arc<NotifyConfig> {
        lock(&self.inner.core).pipeline.config.clone()
    }

    /// When the manager started (ms since the epoch).
    pub fn started_at(&self) -> Timestamp {
        self.inner.started_at
    }

    /// The pipeline's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.opts.clock.now()
    }

    /// Receiver names, in config order.
    pub fn receivers(&self) -> Vec<String> {
        let core = lock(&self.inner.core);
        core.pipeline
            .config
            .receivers
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    /// Notifications waiting for delivery.
    pub fn queued(&self) -> usize {
        lock(&self.inner.core).queue.len()
    }

    /// Every alert that is not resolved, with its status, sorted by
    /// fingerprint.
    pub fn alerts(&self) -> Vec<AlertView> {
        let now = self.now();
        let core = lock(&self.inner.core);
        let index = core.pipeline.inhibitor.index(core.store.alerts(), now);
        let mut out: Vec<AlertView> = core
            .store
            .alerts()
            .filter(|a| !a.resolved_at(now))
            .map(|a| view(&core, &index, a, now))
            .collect();
        out.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        out
    }

    /// Every aggregation group with its firing alerts, in Alertmanager's
    /// order (by group labels, then receiver).
    pub fn groups(&self) -> Vec<GroupView> {
        let now = self.now();
        let core = lock(&self.inner.core);
        let index = core.pipeline.inhibitor.index(core.store.alerts(), now);
        let mut out: Vec<GroupView> = core
            .dispatcher
            .groups()
            .map(|g| {
                let mut alerts: Vec<&Alert> = g.alerts().filter(|a| !a.resolved_at(now)).collect();
                alerts.sort_by(|a, b| super::group::alert_order(a, b));
                GroupView {
                    labels: g.labels.clone(),
                    receiver: core.dispatcher.route(g.route).opts.receiver.clone(),
                    group_key: g.key.clone(),
                    alerts: alerts
                        .into_iter()
                        .map(|a| {
                            // The store's version is the newest.
                            let a = core.store.get(a.fingerprint()).map_or(a, |s| &s.alert);
                            view(&core, &index, a, now)
                        })
                        .collect(),
                }
            })
            .collect();
        out.sort_by(|a, b| {
            label_set_order(&a.labels, &b.labels).then_with(|| a.receiver.cmp(&b.receiver))
        });
        out
    }

    /// Every silence, in Alertmanager's listing order.
    pub fn silences(&self) -> Vec<Silence> {
        let now = self.now();
        let core = lock(&self.inner.core);
        let mut v: Vec<&Silence> = core.silences.iter().collect();
        sort_for_listing(&mut v, now);
        v.into_iter().cloned().collect()
    }

    pub fn silence(&self, id: &str) -> Option<Silence> {
        lock(&self.inner.core).silences.get(id).cloned()
    }

    /// Creates or updates a silence (Alertmanager's rules, see
    /// `silences`); returns its id once the change is on disk.
    pub async fn set_silence(&self, posted: PostedSilence) -> Result<String, NotifyError> {
        let now = self.now();
        let ticket = {
            let mut core = lock(&self.inner.core);
            if core.stopping {
                return Err(NotifyError::ShuttingDown);
            }
            let out = core.silences.set(posted, now)?;
            for s in &out.changed {
                tracing::info!(id = %s.id, state = %s.state(now), created_by = %s.created_by, "silence saved");
            }
            let t = self
                .inner
                .journal
                .submit(out.changed.into_iter().map(Record::Silence).collect());
            (t, out.id)
        };
        self.inner.refresh_gauges();
        ticket.0.wait().await?;
        Ok(ticket.1)
    }

    /// Expires a silence (a no-op when it already expired) once the change
    /// is on disk.
    pub async fn expire_silence(&self, id: &str) -> Result<(), NotifyError> {
        let now = self.now();
        let ticket = {
            let mut core = lock(&self.inner.core);
            if core.stopping {
                return Err(NotifyError::ShuttingDown);
            }
            match core.silences.expire(id, now)? {
                Some(s) => {
                    tracing::info!(id = %s.id, "silence expired");
                    self.inner.journal.submit(vec![Record::Silence(s)])
                }
                None => return Ok(()),
            }
        };
        self.inner.refresh_gauges();
        ticket.wait().await?;
        Ok(())
    }
}

fn view(
    core: &Core,
    index: &super::inhibit::InhibitIndex<'_>,
    a: &Alert,
    now: Timestamp,
) -> AlertView {
    let receivers = core
        .dispatcher
        .routes_for(&a.labels)
        .into_iter()
        .map(|r| core.dispatcher.route(r).opts.receiver.clone())
        .collect();
    AlertView {
        fingerprint: fingerprint_hex(a.fingerprint()),
        receivers,
        silenced_by: core.silences.mutes(&a.labels, now),
        inhibited_by: index
            .is_inhibited(&a.labels)
            .map(|i| vec![fingerprint_hex(i.source)])
            .unwrap_or_default(),
        alert: a.clone(),
    }
}

/// The whole durable state as records (for a compaction).
fn snapshot(core: &Core) -> Vec<Record> {
    let mut out = Vec::new();
    for (k, e) in core.nflog.iter() {
        out.push(Record::Nflog {
            key: k.clone(),
            entry: e.clone(),
        });
    }
    for s in core.silences.iter() {
        out.push(Record::Silence(s.clone()));
    }
    for n in core.queue.all() {
        out.push(Record::Enqueue {
            notification: n,
            nflog: None,
        });
    }
    out
}

impl Inner {
    fn ingest(&self, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        let now = self.opts.clock.now();
        let now_i = Instant::now();
        {
            let mut core = lock(&self.core);
            if core.stopping {
                return;
            }
            let rt = core.pipeline.config.global.resolve_timeout;
            for a in alerts {
                let stored = core.store.put(normalize(a, now, rt), now).alert.clone();
                core.dispatcher.insert(&stored, now, now_i);
            }
        }
        self.wake.notify_one();
    }

    fn start_lane(self: &Arc<Self>, lane: LaneKey) {
        self.tasks.spawn(lane_loop(self.clone(), lane));
    }

    fn gate(&self, receiver: &str, integration: &str) -> Arc<Gate> {
        let mut g = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        g.entry((receiver.to_string(), integration.to_string()))
            .or_insert_with(|| {
                Arc::new(Gate {
                    not_before: Mutex::new(None),
                    permits: Semaphore::new(self.opts.max_concurrent_sends.max(1)),
                })
            })
            .clone()
    }

    /// Flushes every due group: the mute stages and dedup per integration,
    /// then one journal submission for all that was accepted.
    async fn flush_due(self: &Arc<Self>) {
        let now_i = Instant::now();
        let now = self.opts.clock.now();
        let mut records = Vec::new();
        let mut lanes = Vec::new();
        let ticket = {
            let mut guard = lock(&self.core);
            let core = &mut *guard;
            let due = core.dispatcher.take_due(now_i);
            if due.is_empty() {
                return;
            }
            let pipeline = core.pipeline.clone();
            let index = pipeline.inhibitor.index(core.store.alerts(), now);
            for id in due {
                let Some(f) = core.dispatcher.flush(id, now, now_i) else {
                    continue;
                };
                let opts = core.dispatcher.route(f.route).opts.clone();
                let muting = mute_stages(
                    f.alerts.clone(),
                    &pipeline.inhibitor,
                    &index,
                    &pipeline.intervals,
                    &opts,
                    &core.silences,
                    now,
                );
                let mut accepted = true;
                let integrations = pipeline
                    .receivers
                    .get(&opts.receiver)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                for integ in integrations {
                    let key = NflogKey {
                        receiver: opts.receiver.clone(),
                        integration: integ.name.clone(),
                        group_key: f.key.clone(),
                    };
                    let decision = decide_for(core, &muting, &key, integ.send_resolved, &opts, now);
                    match decision {
                        Decision::Send {
                            reason,
                            alerts,
                            nflog,
                        } => {
                            if core.queue.is_full() {
                                accepted = false;
                                self.metrics
                                    .notifications_failed
                                    .get_or_create(&pairs(&integ.name, "queue_full"))
                                    .inc();
                                tracing::error!(receiver = %key.receiver, integration = %key.integration, group = %key.group_key, capacity = self.opts.queue_capacity, "notification queue is full; the group is tried again at its next flush");
                                core.history.push(HistoryEntry {
                                    at: now,
                                    receiver: key.receiver.clone(),
                                    integration: key.integration.clone(),
                                    group_key: key.group_key.clone(),
                                    event: HistoryEvent::Failed,
                                    reason: "queue_full".into(),
                                    detail: format!(
                                        "{} notifications wait for delivery",
                                        core.queue.len()
                                    ),
                                    firing: nflog.firing.len(),
                                    resolved: nflog.resolved.len(),
                                    attempts: 0,
                                });
                                continue;
                            }
                            let data = NotificationData::new(
                                &key.receiver,
                                key.group_key.clone(),
                                f.labels.clone(),
                                alerts,
                                self.opts.external_url.clone(),
                                now,
                            );
                            let n = Arc::new(QueuedNotification {
                                id: core.next_id,
                                receiver: key.receiver.clone(),
                                integration: key.integration.clone(),
                                group_key: key.group_key.clone(),
                                reason,
                                accepted_at: now,
                                deadline: retry::deadline(
                                    &self.opts.retry,
                                    now,
                                    opts.repeat_interval,
                                ),
                                data,
                            });
                            core.next_id += 1;
                            tracing::info!(
                                receiver = %key.receiver,
                                integration = %key.integration,
                                group = %key.group_key,
                                reason = reason.as_str(),
                                firing = nflog.firing.len(),
                                resolved = nflog.resolved.len(),
                                id = n.id,
                                "notification queued"
                            );
                            core.suppressed.remove(&key);
                            records.push(Record::Enqueue {
                                notification: n.clone(),
                                nflog: Some((key.clone(), nflog.clone())),
                            });
                            core.nflog.set(key, nflog);
                            if let Some(l) = core.queue.push(n) {
                                lanes.push(l);
                            }
                        }
                        Decision::Record { reason, nflog } => {
                            tracing::debug!(receiver = %key.receiver, integration = %key.integration, group = %key.group_key, reason = reason.as_str(), "only resolved alerts and send_resolved is off: logged, not sent");
                            core.history.push(HistoryEntry {
                                at: now,
                                receiver: key.receiver.clone(),
                                integration: key.integration.clone(),
                                group_key: key.group_key.clone(),
                                event: HistoryEvent::Recorded,
                                reason: reason.as_str().into(),
                                detail: "send_resolved is false".into(),
                                firing: 0,
                                resolved: nflog.resolved.len(),
                                attempts: 0,
                            });
                            core.suppressed.remove(&key);
                            records.push(Record::Nflog {
                                key: key.clone(),
                                entry: nflog.clone(),
                            });
                            core.nflog.set(key, nflog);
                        }
                        Decision::Suppressed(why) => {
                            let reason = why.reason();
                            self.metrics
                                .notifications_suppressed
                                .get_or_create(&pairs(&integ.name, reason))
                                .inc();
                            tracing::debug!(receiver = %key.receiver, integration = %key.integration, group = %key.group_key, reason, detail = %why.detail(), "notification suppressed");
                            if core.suppressed.get(&key) != Some(&reason) {
                                tracing::info!(receiver = %key.receiver, integration = %key.integration, group = %key.group_key, reason, detail = %why.detail(), "notifications suppressed");
                                core.history.push(HistoryEntry {
                                    at: now,
                                    receiver: key.receiver.clone(),
                                    integration: key.integration.clone(),
                                    group_key: key.group_key.clone(),
                                    event: HistoryEvent::Suppressed,
                                    reason: reason.into(),
                                    detail: why.detail(),
                                    firing: muting
                                        .muted
                                        .iter()
                                        .filter(|(a, _)| !a.resolved_at(now))
                                        .count(),
                                    resolved: muting
                                        .muted
                                        .iter()
                                        .filter(|(a, _)| a.resolved_at(now))
                                        .count(),
                                    attempts: 0,
                                });
                                core.suppressed.insert(key, reason);
                            }
                        }
                        Decision::Unchanged => {
                            tracing::debug!(receiver = %key.receiver, integration = %key.integration, group = %key.group_key, "nothing new since the last notification");
                        }
                    }
                }
                if accepted {
                    core.dispatcher.delete_resolved(f.group, &f.alerts, now);
                }
            }
            self.metrics.queue_length.set(core.queue.len() as i64);
            self.journal.submit(std::mem::take(&mut records))
        };
        for l in lanes {
            self.start_lane(l);
        }
        // Back-pressure: the next batch of flushes waits for this one to be
        // on disk (deliveries do not wait: see the journal's docs).
        if let Err(e) = ticket.wait().await {
            tracing::error!(error = %e, "notifications were accepted but could not be persisted; they are delivered, but a crash before that would lose them");
        }
    }

    /// Periodic upkeep.
    async fn maintain(&self) {
        let now = self.opts.clock.now();
        let compact = {
            let mut core = lock(&self.core);
            let alerts = core.store.gc(now);
            let logs = core.nflog.gc(now);
            let silences = core.silences.gc(now);
            let groups = core.dispatcher.remove_empty();
            let live: std::collections::HashSet<String> =
                core.dispatcher.groups().map(|g| g.key.clone()).collect();
            core.suppressed.retain(|k, _| live.contains(&k.group_key));
            if alerts + logs + silences.len() + groups > 0 {
                tracing::debug!(
                    alerts,
                    log_entries = logs,
                    silences = silences.len(),
                    groups,
                    "notification state garbage-collected"
                );
            }
            (self.journal.bytes_since_compaction() > self.opts.compact_after_bytes)
                .then(|| self.journal.compact(snapshot(&core)))
        };
        self.refresh_gauges();
        if let Some(t) = compact
            && let Err(e) = t.wait().await
        {
            tracing::error!(error = %e, "compacting the notification journal failed");
        }
    }

    fn refresh_gauges(&self) {
        let now = self.opts.clock.now();
        let core = lock(&self.core);
        let index = core.pipeline.inhibitor.index(core.store.alerts(), now);
        let (mut active, mut suppressed) = (0, 0);
        for a in core.store.alerts().filter(|a| !a.resolved_at(now)) {
            if index.is_inhibited(&a.labels).is_some()
                || !core.silences.mutes(&a.labels, now).is_empty()
            {
                suppressed += 1;
            } else {
                active += 1;
            }
        }
        let m = &self.metrics;
        m.alerts
            .get_or_create(&vec![("state", "active".into())])
            .set(active);
        m.alerts
            .get_or_create(&vec![("state", "suppressed".into())])
            .set(suppressed);
        let (a, p, e) = core.silences.counts(now);
        for (state, n) in [
            (SilenceState::Active, a),
            (SilenceState::Pending, p),
            (SilenceState::Expired, e),
        ] {
            m.silences
                .get_or_create(&vec![("state", state.as_str().into())])
                .set(n as i64);
        }
        m.queue_length.set(core.queue.len() as i64);
        m.groups.set(core.dispatcher.group_count() as i64);
    }

    /// The integration handle for a queued notification, under the current
    /// config.
    fn notifier(&self, receiver: &str, integration: &str) -> Option<Arc<dyn Notifier>> {
        let core = lock(&self.core);
        core.pipeline
            .receivers
            .get(receiver)?
            .iter()
            .find(|i| i.name == integration)
            .map(|i| i.notifier.clone())
    }

    /// A notification left the queue: delivered, or given up.
    fn finish(&self, n: &QueuedNotification, outcome: Result<u32, (&'static str, String, u32)>) {
        let now = self.opts.clock.now();
        let mut core = lock(&self.core);
        core.queue.remove(n.id);
        let mut records = vec![Record::Done { id: n.id }];
        let firing = n.data.firing().count();
        let resolved = n.data.resolved().count();
        let entry = match outcome {
            Ok(attempts) => {
                // Repeat intervals count from when the receiver got the
                // news (as in Alertmanager, whose log is written after
                // sending), unless a later flush replaced the entry.
                let key = NflogKey {
                    receiver: n.receiver.clone(),
                    integration: n.integration.clone(),
                    group_key: n.group_key.clone(),
                };
                if let Some(e) = core.nflog.get(&key, now)
                    && e.timestamp == n.accepted_at
                    && now > e.timestamp
                {
                    let mut e = e.clone();
                    e.expires_at = e.expires_at.saturating_add(now - e.timestamp);
                    e.timestamp = now;
                    records.push(Record::Nflog {
                        key: key.clone(),
                        entry: e.clone(),
                    });
                    core.nflog.set(key, e);
                }
                self.metrics
                    .notifications
                    .get_or_create(&pairs(&n.integration, n.reason.as_str()))
                    .inc();
                tracing::info!(receiver = %n.receiver, integration = %n.integration, group = %n.group_key, reason = n.reason.as_str(), attempts, id = n.id, "notification delivered");
                HistoryEntry {
                    at: now,
                    receiver: n.receiver.clone(),
                    integration: n.integration.clone(),
                    group_key: n.group_key.clone(),
                    event: HistoryEvent::Delivered,
                    reason: n.reason.as_str().into(),
                    detail: String::new(),
                    firing,
                    resolved,
                    attempts,
                }
            }
            Err((reason, message, attempts)) => {
                self.metrics
                    .notifications_failed
                    .get_or_create(&pairs(&n.integration, reason))
                    .inc();
                tracing::error!(receiver = %n.receiver, integration = %n.integration, group = %n.group_key, reason, error = %message, attempts, id = n.id, "notification failed; giving up");
                HistoryEntry {
                    at: now,
                    receiver: n.receiver.clone(),
                    integration: n.integration.clone(),
                    group_key: n.group_key.clone(),
                    event: HistoryEvent::Failed,
                    reason: reason.into(),
                    detail: message,
                    firing,
                    resolved,
                    attempts,
                }
            }
        };
        self.journal.submit_nowait(records);
        core.history.push(entry);
        self.metrics.queue_length.set(core.queue.len() as i64);
    }

    fn attempt_failed(&self, n: &QueuedNotification, e: &SendError, attempt: u32, wait: Duration) {
        let now = self.opts.clock.now();
        tracing::warn!(receiver = %n.receiver, integration = %n.integration, group = %n.group_key, reason = e.reason(), error = %e, attempt = attempt + 1, retry_in = ?wait, id = n.id, "notification attempt failed; retrying");
        lock(&self.core).history.push(HistoryEntry {
            at: now,
            receiver: n.receiver.clone(),
            integration: n.integration.clone(),
            group_key: n.group_key.clone(),
            event: HistoryEvent::AttemptFailed,
            reason: e.reason().into(),
            detail: e.to_string(),
            firing: n.data.firing().count(),
            resolved: n.data.resolved().count(),
            attempts: attempt + 1,
        });
    }
}

fn decide_for(
    core: &Core,
    muting: &super::stage::Muting,
    key: &NflogKey,
    send_resolved: bool,
    opts: &super::route::RouteOpts,
    now: Timestamp,
) -> Decision {
    super::stage::decide(muting, core.nflog.get(key, now), send_resolved, opts, now)
}

async fn ingest_loop(inner: Arc<Inner>, mut rx: mpsc::Receiver<Vec<Alert>>) {
    loop {
        tokio::select! {
            _ = inner.cancel.cancelled() => return,
            batch = rx.recv() => match batch {
                Some(b) => inner.ingest(b),
                None => return,
            },
        }
    }
}

async fn timer_loop(inner: Arc<Inner>) {
    let mut maintenance = tokio::time::interval(inner.opts.maintenance_interval);
    maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    maintenance.tick().await;
    loop {
        let next = lock(&inner.core).dispatcher.next_deadline();
        let sleep = async {
            match next {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = inner.cancel.cancelled() => return,
            _ = inner.wake.notified() => {}
            _ = sleep => inner.flush_due().await,
            _ = maintenance.tick() => inner.maintain().await,
        }
    }
}

/// Delivers a lane's notifications in order until it is empty.
async fn lane_loop(inner: Arc<Inner>, lane: LaneKey) {
    loop {
        if inner.cancel.is_cancelled() {
            return;
        }
        let Some(n) = lock(&inner.core).queue.next(&lane) else {
            return;
        };
        if !deliver(&inner, &n).await {
            return;
        }
    }
}

/// Tries one notification until it is delivered or given up. Returns false
/// when shutdown interrupted it (it stays queued).
async fn deliver(inner: &Arc<Inner>, n: &QueuedNotification) -> bool {
    let gate = inner.gate(&n.receiver, &n.integration);
    let policy = &inner.opts.retry;
    let mut attempt: u32 = 0;
    loop {
        let Some(notifier) = inner.notifier(&n.receiver, &n.integration) else {
            inner.finish(
                n,
                Err((
                    "integration_removed",
                    format!(
                        "receiver {:?} has no integration {} any more",
                        n.receiver, n.integration
                    ),
                    attempt,
                )),
            );
            return true;
        };
        loop {
            let nb = *gate.not_before.lock().unwrap_or_else(|e| e.into_inner());
            match nb {
                Some(t) if t > Instant::now() => {
                    tokio::select! {
                        _ = inner.cancel.cancelled() => return false,
                        _ = tokio::time::sleep_until(t) => {}
                    }
                }
                _ => break,
            }
        }
        let permit = tokio::select! {
            _ = inner.cancel.cancelled() => return false,
            p = gate.permits.acquire() => p,
        };
        let started = Instant::now();
        let result =
            match tokio::time::timeout(policy.attempt_timeout, notifier.send(&n.data)).await {
                Ok(r) => r,
                Err(_) => Err(SendError::retryable(
                    "timeout",
                    format!("no answer within {:?}", policy.attempt_timeout),
                )),
            };
        drop(permit);
        let m = &inner.metrics;
        m.latency
            .get_or_create(&vec![("integration", n.integration.clone())])
            .observe(started.elapsed().as_secs_f64());
        m.requests
            .get_or_create(&vec![("integration", n.integration.clone())])
            .inc();
        let err = match result {
            Ok(()) => {
                inner.finish(n, Ok(attempt + 1));
                return true;
            }
            Err(e) => e,
        };
        m.requests_failed
            .get_or_create(&pairs(&n.integration, err.reason()))
            .inc();
        let now = inner.opts.clock.now();
        match retry::next_attempt(policy, &err, attempt, now, n.deadline, n.id) {
            Next::GiveUp(reason) => {
                inner.finish(n, Err((reason, err.to_string(), attempt + 1)));
                return true;
            }
            Next::RetryIn(wait) => {
                inner.attempt_failed(n, &err, attempt, wait);
                if err.retry_after().is_some() {
                    // The peer's limit holds for the whole integration.
                    let until = Instant::now() + wait;
                    let mut nb = gate.not_before.lock().unwrap_or_else(|e| e.into_inner());
                    *nb = Some(nb.map_or(until, |t| t.max(until)));
                }
                tokio::select! {
                    _ = inner.cancel.cancelled() => return false,
                    _ = tokio::time::sleep(wait) => {}
                }
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
#[path = "manager_tests.rs"]
mod tests;
