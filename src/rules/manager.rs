//! [`RuleManager`]: owns one loop per rule group, their alert state and its
//! persistence, reloads all-or-nothing, triggers on_scrape groups from the
//! scrape hook, and publishes status for the API.
//!
//! Scheduling follows Prometheus: a group is evaluated at timestamps
//! aligned to its interval and offset within it by a hash of the group's
//! file and name, so groups spread over the interval and a restart keeps
//! the same slots; a loop that falls behind skips to the newest slot and
//! counts the missed ones. Each evaluation runs on the blocking pool (PromQL
//! is CPU-bound); the loop task only waits.
//!
//! on_scrape groups are also evaluated right after a scrape that stored a
//! metric their expressions select, at that scrape's timestamp. Requests
//! coalesce per group (at most one evaluation running and one waiting, at
//! the newest requested timestamp), and a group's evaluation timestamps
//! only ever increase, so storage, `for` timers and resends see exactly
//! what an interval evaluation at that timestamp would give.
//!
//! Reads the wall clock only in the group loops (they are schedulers) and
//! when stopping a removed group.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Mutex as AsyncMutex, Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::alerting::duration_ms;
use super::file::{Rule, RuleGroup, SelectedNames};
use super::group::GroupRuntime;
use super::state::{self, SavedGroup};
use super::{ActiveAlert, AlertState, EvalEnv, GroupStatus, RuleKind, RuleLoadError, RuleStatus};
use crate::config::{Config, RuleEvaluation};
use crate::model::{
    Alert, Labels, ScrapeEvent, ScrapeHook, Timestamp, fnv1a64, stale_nan, timestamp_of,
};
use crate::promql::{Engine, ExecOptions};
use crate::storage::Storage;
use crate::telemetry::{LabelPairs, RuleMetrics};

/// Settings of the rule manager that come from the config and flags.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleManagerOptions {
    /// `global.external_labels`: available to templates, and added to
    /// outgoing alerts where they do not set the label.
    pub external_labels: Labels,
    /// Where watchpost is reachable; `$externalURL` and alert links.
    pub external_url: String,
    /// Directory of the persisted alert state (under `--storage.path`).
    /// Read when the manager is created; changing it on apply has no effect.
    pub state_dir: PathBuf,
    /// Interval of groups that do not set one (`global.evaluation_interval`).
    pub default_evaluation_interval: Duration,
    /// Query offset of groups that do not set one (`global.rule_query_offset`).
    pub query_offset: Duration,
    /// Evaluation mode of groups that do not set one (`global.rule_evaluation`).
    pub default_evaluation: RuleEvaluation,
    /// How often a firing alert is re-sent (Prometheus's 1m).
    pub resend_delay: Duration,
}

impl RuleManagerOptions {
    /// Prometheus's defaults, with state kept in `state_dir`.
    pub fn new(state_dir: PathBuf) -> Self {
        RuleManagerOptions {
            external_labels: Labels::empty(),
            external_url: String::new(),
            state_dir,
            default_evaluation_interval: Duration::from_secs(60),
            query_offset: Duration::ZERO,
            default_evaluation: RuleEvaluation::Interval,
            resend_delay: Duration::from_secs(60),
        }
    }

    /// The options a config gives. `default_external_url` is used when
    /// `web.external_url` is not set (e.g. `http://<listen address>`).
    pub fn from_config(cfg: &Config, state_dir: PathBuf, default_external_url: &str) -> Self {
        RuleManagerOptions {
            external_labels: cfg.global.external_labels.clone(),
            external_url: cfg
                .web
                .external_url
                .clone()
                .unwrap_or_else(|| default_external_url.to_string()),
            state_dir,
            default_evaluation_interval: cfg.global.evaluation_interval,
            query_offset: cfg.global.rule_query_offset,
            default_evaluation: cfg.global.rule_evaluation,
            resend_delay: Duration::from_secs(60),
        }
    }
}

/// Identifies a group: its file and name.
type GroupKey = (String, String);

fn key_of(g: &RuleGroup) -> GroupKey {
    (g.file.clone(), g.name.clone())
}

fn metric_labels(k: &GroupKey) -> LabelPairs {
    vec![("rule_group", format!("{};{}", k.0, k.1))]
}

/// A group's effective settings: a change restarts its loop (keeping its
/// alert state).
#[derive(Debug, Clone, PartialEq)]
struct GroupSettings {
    interval: Duration,
    query_offset: Duration,
    mode: RuleEvaluation,
    external_labels: Labels,
    external_url: String,
    resend_delay: Duration,
}

impl GroupSettings {
    fn resolve(g: &RuleGroup, o: &RuleManagerOptions) -> Self {
        GroupSettings {
            interval: g.interval.unwrap_or(o.default_evaluation_interval),
            query_offset: g.query_offset.unwrap_or(o.query_offset),
            mode: g.evaluation.unwrap_or(o.default_evaluation),
            external_labels: o.external_labels.clone(),
            external_url: o.external_url.clone(),
            resend_delay: o.resend_delay,
        }
    }
}

/// What the loop, the scrape hook and the status readers share about a
/// running group.
struct GroupHandle {
    key: GroupKey,
    def: Arc<RuleGroup>,
    settings: GroupSettings,
    status: RwLock<Arc<GroupStatus>>,
    /// Newest timestamp an on_scrape trigger asked for; `NO_REQUEST` when
    /// none is waiting.
    requested: AtomicI64,
    wake: Notify,
}

const NO_REQUEST: i64 = i64::MIN;

/// How long shutdown lets running evaluations finish before cancelling
/// their queries.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl GroupHandle {
    fn request(&self, ts: Timestamp) {
        self.requested.fetch_max(ts, Ordering::AcqRel);
        self.wake.notify_one();
    }
}

struct RunningGroup {
    handle: Arc<GroupHandle>,
    cancel: CancellationToken,
    task: JoinHandle<GroupRuntime>,
}

/// What readers (API, scrape hook) see; replaced whole on apply.
#[derive(Default)]
struct View {
    groups: Vec<Arc<GroupHandle>>,
    /// on_scrape groups by selected metric name (indexes into `groups`).
    by_name: HashMap<String, Vec<usize>>,
    /// on_scrape groups with a selector that has no fixed metric name.
    match_all: Vec<usize>,
}

/// Told, after every evaluation of a group, that group's pending and
/// firing alerts (`scope` is `file;group`), and an empty list when a group
/// is removed. Called on the evaluation thread: it must return quickly.
pub type AlertObserver = Arc<dyn Fn(&str, &[ActiveAlert]) + Send + Sync>;

struct Inner {
    /// See [`RuleManager::set_alert_observer`].
    observer: RwLock<Option<AlertObserver>>,
    storage: Arc<dyn Storage>,
    engine: Arc<Engine>,
    metrics: RuleMetrics,
    tracker: TaskTracker,
    alerts_out: mpsc::Sender<Vec<Alert>>,
    state_dir: PathBuf,
    shutdown: CancellationToken,
    /// Set on shutdown so running queries stop early.
    cancel_queries: Arc<AtomicBool>,
    running: AsyncMutex<Running>,
    view: RwLock<Arc<View>>,
    /// Persisted state not yet claimed by a group (read at start).
    saved: std::sync::Mutex<HashMap<GroupKey, SavedGroup>>,
}

#[derive(Default)]
struct Running {
    groups: HashMap<GroupKey, RunningGroup>,
    closed: bool,
}

/// A running group's definition and effective settings.
#[derive(Debug, Clone)]
pub struct LoadedGroup {
    pub def: Arc<RuleGroup>,
    pub interval: Duration,
    pub query_offset: Duration,
    pub external_labels: Labels,
    pub external_url: String,
}

/// Owns the rule groups: their loops (tracked, cancellable), alert state
/// and its persistence.
#[derive(Clone)]
pub struct RuleManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RuleManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleManager").finish_non_exhaustive()
    }
}

// The lock protects plain data; a panic elsewhere cannot leave it half
// written in a way that matters here, so poisoning is ignored.
fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The wall clock, for the schedulers.
#[allow(clippy::disallowed_methods)]
fn now_ms() -> Timestamp {
    timestamp_of(SystemTime::now())
}

impl RuleManager {
    /// Creates a manager with no groups. Reads the persisted alert state in
    /// `opts.state_dir`; groups get theirs back when [`RuleManager::apply`]
    /// starts them. `alerts_out` receives batches of alerts to notify, with
    /// Prometheus's semantics: firing alerts every resend delay with
    /// `ends_at` = now + 4 x max(resend delay, interval), resolved ones
    /// with `ends_at` = resolution time, re-sent for 15 minutes.
    pub fn new(
        storage: Arc<dyn Storage>,
        engine: Arc<Engine>,
        opts: &RuleManagerOptions,
        metrics: RuleMetrics,
        tracker: TaskTracker,
        alerts_out: mpsc::Sender<Vec<Alert>>,
    ) -> Self {
        let (saved, errors) = state::load_all(&opts.state_dir);
        for e in errors {
            tracing::error!(error = %e, "reading persisted alert state failed; that group starts without it");
        }
        if !saved.is_empty() {
            tracing::info!(groups = saved.len(), dir = %opts.state_dir.display(), "read persisted alert state");
        }
        RuleManager {
            inner: Arc::new(Inner {
                observer: RwLock::new(None),
                storage,
                engine,
                metrics,
                tracker,
                alerts_out,
                state_dir: opts.state_dir.clone(),
                shutdown: CancellationToken::new(),
                cancel_queries: Arc::new(AtomicBool::new(false)),
                running: AsyncMutex::new(Running::default()),
                view: RwLock::new(Arc::new(View::default())),
                saved: std::sync::Mutex::new(saved),
            }),
        }
    }

    /// Parses and validates every file the patterns name (pure; strict about
    /// unknown keys). All or nothing, every problem with its position.
    pub fn load_files(globs: &[String]) -> Result<Vec<RuleGroup>, RuleLoadError> {
        super::file::load_files(globs, super::LoadOptions::default())
    }

    /// Replaces the running groups with `groups`. Groups whose definition
    /// and settings are unchanged keep running untouched; changed groups are
    /// restarted and keep the alert state and series of rules whose name,
    /// labels and query are unchanged; removed groups stop, and their series
    /// get staleness markers two intervals later unless something else
    /// writes them. New groups get their persisted state back.
    pub async fn apply(&self, groups: Vec<RuleGroup>, opts: &RuleManagerOptions) {
        let inner = &self.inner;
        let mut running = inner.running.lock().await;
        if running.closed {
            return;
        }
        let mut old = std::mem::take(&mut running.groups);
        let mut keep: Vec<(GroupKey, RunningGroup)> = Vec::new();
        let mut restart: Vec<(Arc<RuleGroup>, GroupSettings, RunningGroup)> = Vec::new();
        let mut fresh: Vec<(Arc<RuleGroup>, GroupSettings)> = Vec::new();
        let mut order: Vec<GroupKey> = Vec::new();
        for g in groups {
            let key = key_of(&g);
            if order.contains(&key) {
                continue;
            }
            order.push(key.clone());
            let settings = GroupSettings::resolve(&g, opts);
            match old.remove(&key) {
                Some(rg) if *rg.handle.def == g && rg.handle.settings == settings => {
                    keep.push((key, rg))
                }
                Some(rg) => {
                    rg.cancel.cancel();
                    restart.push((Arc::new(g), settings, rg));
                }
                None => fresh.push((Arc::new(g), settings)),
            }
        }
        for rg in old.values() {
            rg.cancel.cancel();
        }
        for (key, rg) in keep {
            running.groups.insert(key, rg);
        }
        for (def, settings, rg) in restart {
            let key = key_of(&def);
            let old_rt = self.join(rg).await;
            let mut rt = GroupRuntime::new(def.clone());
            rt.copy_state_from(old_rt);
            let rg = self.start(def, settings, rt);
            running.groups.insert(key, rg);
        }
        for (def, settings) in fresh {
            let key = key_of(&def);
            let mut rt = GroupRuntime::new(def.clone());
            if let Some(saved) = lock(&inner.saved).remove(&key) {
                let n = saved.restore_into(&mut rt);
                if n > 0 {
                    tracing::info!(group = %def.name, file = %def.file, alerts = n, "restored alert state");
                }
            }
            let rg = self.start(def, settings, rt);
            running.groups.insert(key, rg);
        }
        for (key, rg) in old {
            let interval = rg.handle.settings.interval;
            let offset = rg.handle.settings.query_offset;
            let rt = self.join(rg).await;
            self.retire(key, rt, interval, offset);
        }
        // State read at start for groups that no longer exist is dropped.
        for ((file, name), _) in lock(&inner.saved).drain() {
            state::remove(&inner.state_dir, &file, &name);
        }
        let groups: Vec<Arc<GroupHandle>> = order
            .iter()
            .filter_map(|k| running.groups.get(k).map(|rg| rg.handle.clone()))
            .collect();
        *write(&inner.view) = Arc::new(build_view(groups));
    }

    fn start(
        &self,
        def: Arc<RuleGroup>,
        settings: GroupSettings,
        rt: GroupRuntime,
    ) -> RunningGroup {
        let key = key_of(&def);
        let m = &self.inner.metrics;
        let ml = metric_labels(&key);
        m.group_interval_seconds
            .get_or_create(&ml)
            .set(settings.interval.as_secs_f64());
        m.group_rules.get_or_create(&ml).set(def.rules.len() as i64);
        let handle = Arc::new(GroupHandle {
            key,
            status: RwLock::new(Arc::new(status_of(&rt, &settings))),
            def,
            settings,
            requested: AtomicI64::new(NO_REQUEST),
            wake: Notify::new(),
        });
        let cancel = self.inner.shutdown.child_token();
        let task = self.inner.tracker.spawn(group_loop(
            self.inner.clone(),
            handle.clone(),
            rt,
            cancel.clone(),
        ));
        RunningGroup {
            handle,
            cancel,
            task,
        }
    }

    /// Waits for a cancelled group's loop and returns its state.
    async fn join(&self, rg: RunningGroup) -> GroupRuntime {
        rg.cancel.cancel();
        match rg.task.await {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(group = %rg.handle.key.1, error = %e, "rule group loop failed; its alert state is lost");
                GroupRuntime::new(rg.handle.def.clone())
            }
        }
    }

    /// Stops a removed group for good: forgets its state and, after two
    /// intervals (so a renamed group can take its series over), marks its
    /// series stale.
    fn retire(&self, key: GroupKey, rt: GroupRuntime, interval: Duration, offset: Duration) {
        let inner = &self.inner;
        state::remove(&inner.state_dir, &key.0, &key.1);
        if let Some(o) = read(&inner.observer).clone() {
            o(&scope_of(&key), &[]);
        }
        let ml = metric_labels(&key);
        let m = &inner.metrics;
        for f in [
            &m.group_last_duration_seconds,
            &m.group_last_evaluation_timestamp_seconds,
            &m.group_interval_seconds,
        ] {
            f.remove(&ml);
        }
        m.group_rules.remove(&ml);
        m.group_last_evaluation_samples.remove(&ml);
        let series = rt.written_series();
        if series.is_empty() {
            return;
        }
        // After anything the group wrote (same-millisecond stops included).
        let at = (now_ms() - duration_ms(offset)).max(
            rt.last_eval
                .map_or(i64::MIN, |t| t - duration_ms(offset) + 1),
        );
        let storage = inner.storage.clone();
        let shutdown = inner.shutdown.clone();
        inner.tracker.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(interval * 2) => {
                    let _ = tokio::task::spawn_blocking(move || {
                        let mut app = storage.appender();
                        for s in &series {
                            // Refused when something wrote the series since.
                            let _ = app.append(s, at, stale_nan());
                        }
                        if let Err(e) = app.commit() {
                            tracing::warn!(error = %e, "writing staleness markers of a removed rule group failed");
                        }
                    })
                    .await;
                }
            }
        });
    }

    /// The hook the scrape loops call after every successful scrape. It
    /// only looks up the scraped metric names in a precomputed index and
    /// wakes the on_scrape groups that select one of them.
    pub fn scrape_hook(&self) -> ScrapeHook {
        let inner: Weak<Inner> = Arc::downgrade(&self.inner);
        Arc::new(move |ev: &ScrapeEvent| {
            if let Some(inner) = inner.upgrade() {
                on_scrape(&inner, ev);
            }
        })
    }

    /// Status of every group, in configuration order.
    pub fn groups(&self) -> Vec<GroupStatus> {
        let view = read(&self.inner.view).clone();
        view.groups
            .iter()
            .map(|h| (**read(&h.status)).clone())
            .collect()
    }

    /// Every pending and firing alert.
    pub fn alerts(&self) -> Vec<ActiveAlert> {
        let view = read(&self.inner.view).clone();
        let mut out = Vec::new();
        for h in &view.groups {
            out.extend(active_alerts(&read(&h.status)));
        }
        out
    }

    /// The running groups as loaded, with the settings they run with, in
    /// configuration order (for a backtest of one of their rules).
    pub fn loaded_groups(&self) -> Vec<LoadedGroup> {
        let view = read(&self.inner.view).clone();
        view.groups
            .iter()
            .map(|h| LoadedGroup {
                def: h.def.clone(),
                interval: h.settings.interval,
                query_offset: h.settings.query_offset,
                external_labels: h.settings.external_labels.clone(),
                external_url: h.settings.external_url.clone(),
            })
            .collect()
    }

    /// Installs the observer of alert states (the alert event stream).
    pub fn set_alert_observer(&self, observer: AlertObserver) {
        *write(&self.inner.observer) = Some(observer);
    }

    /// Stops every group loop (waiting for running evaluations, which are
    /// asked to stop early) and persists the alert state.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        let mut running = inner.running.lock().await;
        running.closed = true;
        inner.shutdown.cancel();
        let groups: Vec<RunningGroup> = running.groups.drain().map(|(_, g)| g).collect();
        // Evaluations in progress may finish for a while; after that,
        // their queries are cancelled so shutdown is bounded.
        let flag = inner.cancel_queries.clone();
        let grace = tokio::time::sleep(SHUTDOWN_GRACE);
        tokio::pin!(grace);
        let mut runtimes = Vec::new();
        for rg in groups {
            let fut = self.join(rg);
            tokio::pin!(fut);
            let rt = tokio::select! {
                rt = &mut fut => rt,
                _ = &mut grace, if !flag.load(Ordering::Relaxed) => {
                    flag.store(true, Ordering::Relaxed);
                    (&mut fut).await
                }
            };
            runtimes.push(rt);
        }
        let dir = inner.state_dir.clone();
        let metrics = inner.metrics.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for rt in &runtimes {
                persist(&dir, rt, &metrics);
            }
        })
        .await;
        *write(&inner.view) = Arc::new(View::default());
    }
}

fn build_view(groups: Vec<Arc<GroupHandle>>) -> View {
    let mut view = View {
        groups,
        ..View::default()
    };
    for (i, h) in view.groups.iter().enumerate() {
        if h.settings.mode != RuleEvaluation::OnScrape {
            continue;
        }
        match h.def.selected_names() {
            SelectedNames::All => view.match_all.push(i),
            SelectedNames::Names(names) => {
                for n in names {
                    view.by_name.entry(n).or_default().push(i);
                }
            }
        }
    }
    view
}

fn on_scrape(inner: &Inner, ev: &ScrapeEvent) {
    let view = read(&inner.view).clone();
    for &i in &view.match_all {
        view.groups[i].request(ev.timestamp);
    }
    if view.by_name.is_empty() {
        return;
    }
    // Walk the smaller side: usually the index is small and the target
    // exposes many names.
    let names = &*ev.metric_names;
    if view.by_name.len() < names.len() {
        for (name, groups) in &view.by_name {
            if names.binary_search(name).is_ok() {
                for &i in groups {
                    view.groups[i].request(ev.timestamp);
                }
            }
        }
    } else {
        for name in names {
            if let Some(groups) = view.by_name.get(name) {
                for &i in groups {
                    view.groups[i].request(ev.timestamp);
                }
            }
        }
    }
}

fn active_alerts(st: &GroupStatus) -> Vec<ActiveAlert> {
    let mut out = Vec::new();
    for r in &st.rules {
        if let RuleKind::Alerting { alerts, .. } = &r.kind {
            out.extend(alerts.iter().cloned());
        }
    }
    out
}

fn scope_of(key: &GroupKey) -> String {
    format!("{};{}", key.0, key.1)
}

/// The first slot after `now` for a group: slots are `offset + k *
/// interval` (Prometheus's `EvalTimestamp`).
fn next_slot(now: Timestamp, interval: i64, offset: i64) -> Timestamp {
    let base = now - now.rem_euclid(interval) + offset;
    if base > now { base } else { base + interval }
}

async fn group_loop(
    inner: Arc<Inner>,
    handle: Arc<GroupHandle>,
    mut rt: GroupRuntime,
    cancel: CancellationToken,
) -> GroupRuntime {
    let interval = duration_ms(handle.settings.interval).max(1);
    let offset =
        (fnv1a64(&[handle.key.0.as_bytes(), handle.key.1.as_bytes()]) % interval as u64) as i64;
    let ml = metric_labels(&handle.key);
    let mut next = next_slot(now_ms(), interval, offset);
    loop {
        let wait = Duration::from_millis(u64::try_from(next - now_ms()).unwrap_or(0));
        let ts = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = handle.wake.notified() => {
                let ts = handle.requested.swap(NO_REQUEST, Ordering::AcqRel);
                if ts == NO_REQUEST {
                    continue;
                }
                inner.metrics.group_on_scrape_evaluations.get_or_create(&ml).inc();
                // Timestamps only increase: a scrape older than the last
                // evaluation is evaluated just after it, with its data in.
                ts.max(rt.last_eval.map_or(i64::MIN, |l| l + 1))
            }
            _ = tokio::time::sleep(wait) => {
                let now = now_ms();
                let missed = ((now - next) / interval).max(0);
                inner.metrics.group_iterations.get_or_create(&ml).inc_by(1 + missed as u64);
                if missed > 0 {
                    inner.metrics.group_iterations_missed.get_or_create(&ml).inc_by(missed as u64);
                }
                let slot = next + missed * interval;
                next = slot + interval;
                if rt.last_eval.is_some_and(|l| l >= slot) {
                    // An on_scrape evaluation already covered this slot.
                    continue;
                }
                slot
            }
        };
        rt = evaluate(&inner, &handle, rt, ts).await;
    }
    rt
}

/// Runs one evaluation on the blocking pool and does everything that
/// follows it there too: status, metrics, alerts out, persistence.
async fn evaluate(
    inner: &Arc<Inner>,
    handle: &Arc<GroupHandle>,
    mut rt: GroupRuntime,
    ts: Timestamp,
) -> GroupRuntime {
    let inner2 = inner.clone();
    let handle2 = handle.clone();
    let def = rt.def.clone();
    let res = tokio::task::spawn_blocking(move || {
        eval_blocking(&inner2, &handle2, &mut rt, ts);
        rt
    })
    .await;
    match res {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(group = %def.name, error = %e, "rule group evaluation panicked; its alert state is reset");
            GroupRuntime::new(def)
        }
    }
}

fn eval_blocking(inner: &Inner, handle: &GroupHandle, rt: &mut GroupRuntime, ts: Timestamp) {
    let s = &handle.settings;
    let env = EvalEnv {
        storage: inner.storage.as_ref(),
        engine: &inner.engine,
        exec: ExecOptions {
            cancel: Some(inner.cancel_queries.clone()),
            ..ExecOptions::default()
        },
        external_labels: &s.external_labels,
        external_url: &s.external_url,
        interval: s.interval,
        query_offset: s.query_offset,
        resend_delay: s.resend_delay,
        template_query: Some(super::template::TemplateQuery {
            storage: inner.storage.clone(),
            engine: inner.engine.clone(),
            exec: ExecOptions {
                cancel: Some(inner.cancel_queries.clone()),
                ..ExecOptions::default()
            },
        }),
    };
    let started = Instant::now();
    let out = rt.eval(&env, ts);
    let status = Arc::new(status_of(rt, s));
    *write(&handle.status) = status.clone();
    if let Some(o) = read(&inner.observer).clone() {
        o(&scope_of(&handle.key), &active_alerts(&status));
    }
    let m = &inner.metrics;
    let ml = metric_labels(&handle.key);
    m.evaluations
        .get_or_create(&ml)
        .inc_by(rt.def.rules.len() as u64);
    for d in &out.rule_durations {
        m.evaluation_duration.observe(d.as_secs_f64());
    }
    if !out.errors.is_empty() {
        m.evaluation_failures
            .get_or_create(&ml)
            .inc_by(out.errors.len() as u64);
        for (i, e) in &out.errors {
            let rule = rt.def.rules.get(*i).map(Rule::name).unwrap_or("");
            tracing::warn!(group = %rt.def.name, rule = %rule, error = %e, "evaluating rule failed");
        }
    }
    let took = started.elapsed().as_secs_f64();
    m.group_duration.observe(took);
    m.group_last_duration_seconds.get_or_create(&ml).set(took);
    m.group_last_evaluation_timestamp_seconds
        .get_or_create(&ml)
        .set(ts as f64 / 1000.0);
    m.group_last_evaluation_samples
        .get_or_create(&ml)
        .set(out.samples as i64);
    if !out.to_send.is_empty() {
        let n = out.to_send.len() as u64;
        match inner.alerts_out.try_send(out.to_send) {
            Ok(()) => {
                m.alerts_sent.inc_by(n);
            }
            Err(e) => {
                m.alerts_dropped.inc_by(n);
                tracing::warn!(group = %rt.def.name, alerts = n, error = %e, "handing alerts to notification failed; they are re-sent within the resend delay");
            }
        }
    }
    // After sending: a crash between the two re-sends on restart (harmless
    // for a deduplicating receiver) rather than losing a notification.
    if out.changed {
        persist(&inner.state_dir, rt, m);
    }
}

fn persist(dir: &std::path::Path, rt: &GroupRuntime, m: &RuleMetrics) {
    let saved = SavedGroup::of(rt);
    let res = if saved.rules.is_empty() {
        state::remove(dir, &saved.file, &saved.group);
        Ok(())
    } else {
        state::save(dir, &saved)
    };
    if let Err(e) = res {
        m.state_persist_failures.inc();
        tracing::error!(error = %e, "persisting alert state failed");
    }
}

/// The API view of a group's runtime.
fn status_of(rt: &GroupRuntime, s: &GroupSettings) -> GroupStatus {
    let rules = rt
        .def
        .rules
        .iter()
        .zip(&rt.rules)
        .map(|(def, r)| {
            let kind = match def {
                Rule::Recording(_) => RuleKind::Recording,
                Rule::Alerting(a) => {
                    let mut alerts: Vec<ActiveAlert> = r
                        .alerts
                        .iter()
                        .flat_map(|st| st.active.values())
                        .filter(|x| x.state != AlertState::Inactive)
                        .map(|x| ActiveAlert {
                            labels: x.labels.clone(),
                            annotations: x.annotations.clone(),
                            state: x.state,
                            active_at: x.active_at,
                            fired_at: x.fired_at,
                            value: x.value,
                            keep_firing_since: x.keep_firing_since,
                        })
                        .collect();
                    alerts.sort_by(|x, y| x.labels.cmp(&y.labels));
                    let state = alerts
                        .iter()
                        .map(|x| x.state)
                        .max()
                        .unwrap_or(AlertState::Inactive);
                    RuleKind::Alerting {
                        duration: a.for_,
                        keep_firing_for: a.keep_firing_for,
                        keep_firing_while: a
                            .keep_firing_while
                            .as_ref()
                            .map(|q| q.text().to_string()),
                        annotations: a.annotations.clone(),
                        alerts,
                        state,
                    }
                }
            };
            RuleStatus {
                name: def.name().to_string(),
                query: def.expr().text().to_string(),
                labels: def.labels().clone(),
                kind,
                health: r.health,
                last_error: r.last_error.clone(),
                last_evaluation: r.last_eval,
                evaluation_time: r.eval_duration,
            }
        })
        .collect();
    GroupStatus {
        name: rt.def.name.clone(),
        file: rt.def.file.clone(),
        interval: s.interval,
        query_offset: s.query_offset,
        limit: rt.def.limit,
        evaluation: s.mode,
        rules,
        last_evaluation: rt.last_eval,
        evaluation_time: rt.last_duration,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_aligned_and_offset() {
        assert_eq!(next_slot(0, 10_000, 3_000), 3_000);
        assert_eq!(next_slot(3_000, 10_000, 3_000), 13_000);
        assert_eq!(next_slot(12_999, 10_000, 3_000), 13_000);
        assert_eq!(next_slot(14_000, 10_000, 0), 20_000);
    }
}
