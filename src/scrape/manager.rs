//! The scrape manager: one pool per job, one loop per target.
//!
//! A pool task watches its job's discovery output and keeps exactly one
//! [`ScrapeLoop`] per current target: new targets start, vanished targets
//! stop and write staleness markers, unchanged targets keep running. A
//! reload ([`ScrapeManager::apply`]) leaves pools of unchanged jobs alone;
//! a changed job gets a new pool that inherits each surviving target's
//! scrape cache, so series continue without a staleness gap.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::client::ScrapeClient;
use super::discovery::{self, TargetGroup};
use super::fetch::{FailureReason, ScrapeFailure};
use super::runtime::LoopRuntimes;
use super::scrape_loop::{BufferPool, PoolContext, ScrapeCache, ScrapeLoop, TargetHandle};
use super::target::{self, Target};
use crate::config::{Config, ScrapeConfig};
use crate::model::{Labels, timestamp_of};
use crate::storage::Storage;
use crate::telemetry::ScrapeMetrics;

/// Failure to set up a job (its HTTP client could not be built).
#[derive(Debug, thiserror::Error)]
#[error("scrape job {job:?}: {message}")]
pub struct ScrapeSetupError {
    pub job: String,
    pub message: String,
}

/// What the API shows of one job.
#[derive(Debug, Default)]
pub struct PoolView {
    pub active: Vec<Arc<TargetHandle>>,
    /// Discovered labels of targets that relabeling dropped.
    pub dropped: Vec<Labels>,
}

struct LoopEntry {
    handle: Arc<TargetHandle>,
    cancel: CancellationToken,
    stale_on_stop: Arc<AtomicBool>,
    join: JoinHandle<ScrapeCache>,
}

struct Pool {
    cfg: Arc<ScrapeConfig>,
    cancel: CancellationToken,
    /// Whether stopping the pool ends its series (job removed) or hands
    /// caches on (job changed) / leaves them (shutdown).
    stale_on_stop: Arc<AtomicBool>,
    view: Arc<RwLock<PoolView>>,
    task: JoinHandle<HashMap<u64, ScrapeCache>>,
}

/// Owns every scrape pool.
pub struct ScrapeManager {
    storage: Arc<dyn Storage>,
    metrics: ScrapeMetrics,
    buffers: Arc<BufferPool>,
    tracker: TaskTracker,
    pools: tokio::sync::Mutex<Vec<(String, Pool)>>,
    views: Mutex<Vec<(String, Arc<RwLock<PoolView>>)>>,
    offset_seed: Mutex<u64>,
    hook: Mutex<Option<crate::model::ScrapeHook>>,
    /// Where loops run; `None` puts them on the caller's runtime (tests on
    /// a paused clock need that).
    runtimes: Option<Arc<LoopRuntimes>>,
}

impl ScrapeManager {
    pub fn new(storage: Arc<dyn Storage>, metrics: ScrapeMetrics, tracker: TaskTracker) -> Self {
        ScrapeManager {
            storage,
            metrics,
            buffers: Arc::new(BufferPool::default()),
            tracker,
            pools: tokio::sync::Mutex::new(Vec::new()),
            views: Mutex::new(Vec::new()),
            offset_seed: Mutex::new(0),
            hook: Mutex::new(None),
            runtimes: None,
        }
    }

    /// Runs the scrape loops on `runtimes` rather than on the runtime that
    /// calls [`ScrapeManager::apply`].
    pub fn with_loop_runtimes(mut self, runtimes: Arc<LoopRuntimes>) -> Self {
        self.runtimes = Some(runtimes);
        self
    }

    /// Subscribes `hook` to every scrape of pools started from now on (set
    /// it before the first [`ScrapeManager::apply`]).
    pub fn set_hook(&self, hook: crate::model::ScrapeHook) {
        *self.hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    /// Checks that every job's HTTP client can be built (TLS files readable
    /// and valid), so a reload can fail before it changes anything.
    pub fn prepare(cfg: &Config) -> Result<Vec<ScrapeClient>, Vec<ScrapeSetupError>> {
        let mut clients = Vec::new();
        let mut errs = Vec::new();
        for job in &cfg.scrape_configs {
            match ScrapeClient::new(&job.http) {
                Ok(c) => clients.push(c),
                Err(e) => errs.push(ScrapeSetupError {
                    job: job.job_name.clone(),
                    message: e.to_string(),
                }),
            }
        }
        if errs.is_empty() {
            Ok(clients)
        } else {
            Err(errs)
        }
    }

    /// Applies a configuration: starts, keeps, replaces or stops pools.
    /// `clients` come from [`ScrapeManager::prepare`] for the same config.
    pub async fn apply(&self, cfg: &Config, clients: Vec<ScrapeClient>) {
        *self.offset_seed.lock().unwrap_or_else(|e| e.into_inner()) =
            cfg.global.external_labels.stable_hash();
        let mut pools = self.pools.lock().await;
        let mut old: HashMap<String, Pool> = pools.drain(..).collect();
        let mut next: Vec<(String, Pool)> = Vec::new();
        for (job, client) in cfg.scrape_configs.iter().zip(clients) {
            let job = Arc::new(job.clone());
            match old.remove(&job.job_name) {
                Some(p) if same_job(&p.cfg, &job) => next.push((job.job_name.clone(), p)),
                Some(p) => {
                    // Changed job: hand the caches over when the series
                    // identities cannot have changed; else end the series.
                    let keep_cache = cache_compatible(&p.cfg, &job);
                    p.stale_on_stop.store(!keep_cache, Ordering::Release);
                    p.cancel.cancel();
                    let caches = p.task.await.unwrap_or_default();
                    let inherited = if keep_cache { caches } else { HashMap::new() };
                    next.push((
                        job.job_name.clone(),
                        self.start_pool(job, client, inherited),
                    ));
                }
                None => next.push((
                    job.job_name.clone(),
                    self.start_pool(job, client, HashMap::new()),
                )),
            }
        }
        for (_, p) in old {
            p.stale_on_stop.store(true, Ordering::Release);
            p.cancel.cancel();
            let _ = p.task.await;
        }
        *self.views.lock().unwrap_or_else(|e| e.into_inner()) = next
            .iter()
            .map(|(name, p)| (name.clone(), p.view.clone()))
            .collect();
        *pools = next;
    }

    /// Stops every pool without writing staleness markers (a restart
    /// continues the series).
    pub async fn shutdown(&self) {
        let mut pools = self.pools.lock().await;
        for (_, p) in pools.drain(..) {
            p.cancel.cancel();
            let _ = p.task.await;
        }
    }

    /// Jobs in config order with their targets, for the API.
    pub fn views(&self) -> Vec<(String, Arc<RwLock<PoolView>>)> {
        self.views.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn start_pool(
        &self,
        cfg: Arc<ScrapeConfig>,
        client: ScrapeClient,
        inherited: HashMap<u64, ScrapeCache>,
    ) -> Pool {
        let cancel = CancellationToken::new();
        let stale_on_stop = Arc::new(AtomicBool::new(false));
        let view = Arc::new(RwLock::new(PoolView::default()));
        let ctx = PoolContext {
            cfg: cfg.clone(),
            client,
            storage: self.storage.clone(),
            metrics: self.metrics.clone(),
            buffers: self.buffers.clone(),
            forced_error: Arc::new(RwLock::new(None)),
            offset_seed: *self.offset_seed.lock().unwrap_or_else(|e| e.into_inner()),
            hook: self.hook.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        };
        let (tx, rx) = watch::channel(Arc::new(Vec::new()));
        self.tracker.spawn(discovery::run_job_discovery(
            cfg.clone(),
            tx,
            cancel.child_token(),
        ));
        let runner = PoolRunner {
            ctx,
            tracker: self.tracker.clone(),
            runtimes: self.runtimes.clone(),
            view: view.clone(),
            loops: HashMap::new(),
            inherited,
            stale_on_stop: stale_on_stop.clone(),
        };
        let task = self.tracker.spawn(runner.run(rx, cancel.clone()));
        Pool {
            cfg,
            cancel,
            stale_on_stop,
            view,
            task,
        }
    }
}

/// Whether two job configs are the same (no restart needed).
fn same_job(a: &ScrapeConfig, b: &ScrapeConfig) -> bool {
    a == b
}

/// Whether scrape caches built under `a` are valid under `b`: the same
/// series text still maps to the same stored labels.
fn cache_compatible(a: &ScrapeConfig, b: &ScrapeConfig) -> bool {
    a.honor_labels == b.honor_labels && a.metric_relabel_configs == b.metric_relabel_configs
}

/// The task behind one pool.
struct PoolRunner {
    ctx: PoolContext,
    tracker: TaskTracker,
    runtimes: Option<Arc<LoopRuntimes>>,
    view: Arc<RwLock<PoolView>>,
    loops: HashMap<u64, LoopEntry>,
    /// Caches handed over from the previous pool of this job, by target key.
    inherited: HashMap<u64, ScrapeCache>,
    stale_on_stop: Arc<AtomicBool>,
}

impl PoolRunner {
    async fn run(
        mut self,
        mut rx: watch::Receiver<Arc<Vec<TargetGroup>>>,
        cancel: CancellationToken,
    ) -> HashMap<u64, ScrapeCache> {
        let mut first = true;
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                r = rx.changed() => if r.is_err() { break },
            }
            let groups = rx.borrow_and_update().clone();
            self.sync(&groups).await;
            if first {
                first = false;
                // Targets of the previous pool that are gone now: end their
                // series, as if they had vanished from discovery.
                self.stale_inherited();
            }
        }
        // Stop every loop; with stale_on_stop they end their series, else
        // their caches are handed back to the manager.
        let stale = self.stale_on_stop.load(Ordering::Acquire);
        let mut caches = HashMap::new();
        for (key, l) in self.loops.drain() {
            l.stale_on_stop.store(stale, Ordering::Release);
            l.cancel.cancel();
            if let Ok(c) = l.join.await {
                caches.insert(key, c);
            }
        }
        if stale || first {
            self.stale_inherited();
        }
        caches
    }

    // Ending series is a scheduling event of the pool: it reads the clock.
    #[allow(clippy::disallowed_methods)]
    fn stale_inherited(&mut self) {
        if self.inherited.is_empty() {
            return;
        }
        let storage = self.ctx.storage.clone();
        let mut app = storage.appender();
        let t = timestamp_of(SystemTime::now());
        for (_, mut c) in self.inherited.drain() {
            c.mark_all_stale(app.as_mut(), t);
        }
        let _ = app.commit();
    }

    async fn sync(&mut self, groups: &[TargetGroup]) {
        let cfg = self.ctx.cfg.clone();
        let target::Resolved {
            targets,
            dropped,
            failures,
        } = target::targets_from_groups(&cfg, groups);
        for (labels, err) in &failures {
            tracing::warn!(job = %cfg.job_name, target = %labels, error = %err, "invalid target");
        }

        let limit = cfg.limits.target_limit;
        let forced = (limit > 0 && targets.len() as u64 > limit).then(|| {
            ScrapeFailure::new(
                FailureReason::LimitExceeded,
                format!(
                    "target_limit exceeded (number of targets: {}, limit: {}); raise target_limit or drop targets with relabel_configs",
                    targets.len(),
                    limit
                ),
            )
        });
        *self
            .ctx
            .forced_error
            .write()
            .unwrap_or_else(|e| e.into_inner()) = forced;

        let mut wanted: HashMap<u64, Target> = HashMap::new();
        for t in targets {
            wanted.entry(t.key()).or_insert(t);
        }
        // Stop loops whose target vanished; their series go stale.
        let gone: Vec<u64> = self
            .loops
            .keys()
            .filter(|k| !wanted.contains_key(k))
            .copied()
            .collect();
        for key in gone {
            if let Some(l) = self.loops.remove(&key) {
                l.stale_on_stop.store(true, Ordering::Release);
                l.cancel.cancel();
                let _ = l.join.await;
            }
        }
        for (key, t) in wanted {
            if self.loops.contains_key(&key) {
                continue;
            }
            let cache = self.inherited.remove(&key).unwrap_or_default();
            let handle = Arc::new(TargetHandle::new(t));
            let cancel = CancellationToken::new();
            let stale_on_stop = Arc::new(AtomicBool::new(false));
            let lp = ScrapeLoop::new(self.ctx.clone(), handle.clone(), cache);
            let run = lp.run(cancel.clone(), stale_on_stop.clone());
            let join = match &self.runtimes {
                Some(rts) => rts.spawn(&self.tracker, run),
                None => self.tracker.spawn(run),
            };
            self.loops.insert(
                key,
                LoopEntry {
                    handle,
                    cancel,
                    stale_on_stop,
                    join,
                },
            );
        }

        let job = vec![("job", cfg.job_name.clone())];
        self.ctx
            .metrics
            .targets
            .get_or_create(&job)
            .set(self.loops.len() as i64);
        self.ctx
            .metrics
            .dropped_targets
            .get_or_create(&job)
            .set(dropped.len() as i64);
        let mut active: Vec<Arc<TargetHandle>> =
            self.loops.values().map(|l| l.handle.clone()).collect();
        active.sort_by(|a, b| a.target.labels.cmp(&b.target.labels));
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = PoolView { active, dropped };
    }
}

/// Default wait for a pool to stop during shutdown.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
