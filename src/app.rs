//! The composition root: builds every component from a validated
//! [`Config`], owns task tracking and cancellation, and runs start, reload
//! and shutdown in order.
//!
//! Start: storage, telemetry, notification pipeline, scrape manager, rule
//! manager (its on_scrape groups hooked to the scrapes, its alerts
//! forwarded to the notification pipeline or another [`AlertSink`]), HTTP
//! server (ready once the first config is applied), digest report
//! schedules. Reload: parse and
//! validate the whole file, its rule files and its notify section, and
//! build every job's HTTP client first; only then apply, so a bad file
//! changes nothing. Shutdown runs the data path in reverse with a deadline
//! per step: stop intake (HTTP), stop scrapes, stop rules (persisting alert
//! state), hand over the last alerts, stop notifications (undelivered ones
//! stay queued on disk), then storage.
//!
//! Only `main` and tests import this module.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod alerts;
mod hugepages;

pub use alerts::AlertSink;

use crate::api::stream::{AlertChange, AlertEvents, Source, StreamOptions};
use crate::api::{self, ApiState, Authenticator, ReloadFailed, ReloadRequest};
use crate::config::notify::NotifyConfig;
use crate::config::{self, Config, ConfigError};
use crate::ingest::heartbeat::{HeartbeatOptions, Heartbeats};
use crate::ingest::{PushIngest, PushStore};
use crate::model::Alert;
use crate::notify::{Clock, NotifyError, NotifyManager, NotifyOptions};
use crate::promql::{Engine, EngineOptions};
use crate::reports::{LocalSource, ReportManager};
use crate::rules::{RuleGroup, RuleLoadError, RuleManager, RuleManagerOptions};
use crate::scrape::manager::ScrapeManager;
use crate::scrape::runtime::LoopRuntimes;
use crate::storage::{DiskStorage, Storage, StorageOptions, WalSync};
use crate::telemetry::Telemetry;

/// The embedded default configuration (`config/watchpost.yml`), used when
/// no `--config.file` is given and that file does not exist, so the
/// binary runs anywhere.
pub const EMBEDDED_CONFIG: &str = include_str!("../config/watchpost.yml");

/// Name errors in the embedded default are reported under.
pub const EMBEDDED_CONFIG_NAME: &str = "config/watchpost.yml";

/// How watchpost is started (the `run` flags).
#[derive(Debug, Clone)]
pub struct Options {
    pub config_file: PathBuf,
    /// Fall back to [`EMBEDDED_CONFIG`] when `config_file` does not exist
    /// (true only when the user did not name a file).
    pub allow_embedded_default: bool,
    pub storage_path: PathBuf,
    /// When the WAL reaches the disk (`--storage.wal-sync`).
    pub wal_sync: WalSync,
    /// Refuse to start on mid-WAL corruption instead of keeping what
    /// precedes it (`--storage.refuse-on-corruption`).
    pub refuse_on_corruption: bool,
    pub web_config_file: Option<PathBuf>,
    /// `--web.enable-remote-write-receiver`: serve `/api/v1/write` whatever
    /// `push.remote_write` says.
    pub enable_remote_write_receiver: bool,
    /// PromQL engine limits (`--query.*` flags).
    pub query: EngineOptions,
    /// Where rule evaluation's alerts go; the notification pipeline when
    /// `None` (tests set a collecting sink).
    pub alert_sink: Option<Arc<dyn AlertSink>>,
    /// The alert event stream's buffer, keep-alive and limits.
    pub alert_stream: StreamOptions,
}

impl Options {
    /// Options for `config_file` with everything else at its default.
    pub fn new(config_file: PathBuf, storage_path: PathBuf) -> Self {
        Options {
            config_file,
            allow_embedded_default: false,
            storage_path,
            wal_sync: WalSync::default(),
            refuse_on_corruption: false,
            web_config_file: None,
            enable_remote_write_receiver: false,
            query: EngineOptions::default(),
            alert_sink: None,
            alert_stream: StreamOptions::default(),
        }
    }
}

/// Why watchpost could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Scrape(Vec<crate::scrape::manager::ScrapeSetupError>),
    #[error("web config: {0}")]
    WebConfig(String),
    #[error("{0}")]
    Rules(#[from] RuleLoadError),
    #[error("opening storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("notifications: {0}")]
    Notify(#[from] NotifyError),
    #[error("notification channels: {0}")]
    Channels(#[from] crate::channels::ChannelError),
    #[error("opening the pushed groups: {0}")]
    Push(std::io::Error),
    #[error("starting the scrape threads: {0}")]
    ScrapeThreads(std::io::Error),
    #[error("digest reports: {0}")]
    Reports(#[from] crate::reports::ReportError),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// The notification config used when the config has no `notify:` or
/// `notify_file:`: every alert goes to stdout through the `log` receiver,
/// so alerts are visible before any channel is set up.
pub const DEFAULT_NOTIFY: &str =
    "route:\n  receiver: log\nreceivers:\n  - name: log\n    log_configs: [{}]\n";

/// The notification config of `cfg`, or [`DEFAULT_NOTIFY`].
pub fn notify_config(cfg: &Config) -> Result<NotifyConfig, ConfigError> {
    match &cfg.notify {
        Some(n) => Ok(n.clone()),
        None => config::notify::load_str(
            DEFAULT_NOTIFY,
            "built-in notify default",
            std::path::Path::new("."),
        ),
    }
}

/// Rule evaluation's alerts into the notification pipeline. `ingest` only
/// enqueues, as [`AlertSink::send`] requires.
#[derive(Debug)]
struct NotifySink(Arc<NotifyManager>);

impl AlertSink for NotifySink {
    fn send(&self, alerts: Vec<Alert>) {
        self.0.ingest(alerts);
    }
}

/// Loads the configuration the options name.
pub fn load_config(opts: &Options) -> Result<Config, ConfigError> {
    if opts.allow_embedded_default && !opts.config_file.exists() {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        return config::load_str(EMBEDDED_CONFIG, EMBEDDED_CONFIG_NAME, &cwd);
    }
    config::load_file(&opts.config_file)
}

/// The rule groups `cfg` names. When the embedded default configuration
/// is in use and its `rule_files` match nothing (watchpost runs outside
/// its repository), the self-monitoring rules built into the binary.
pub fn load_rule_groups(opts: &Options, cfg: &Config) -> Result<Vec<RuleGroup>, RuleLoadError> {
    let groups = RuleManager::load_files(&cfg.rule_files)?;
    if groups.is_empty() && opts.allow_embedded_default && !opts.config_file.exists() {
        return crate::rules::embedded_default_groups();
    }
    Ok(groups)
}

/// Where the persisted alert state lives under the storage path.
fn rule_state_dir(opts: &Options) -> PathBuf {
    opts.storage_path.join("rules")
}

/// A running watchpost.
pub struct RunningApp {
    addr: SocketAddr,
    cancel: CancellationToken,
    tracker: TaskTracker,
    reload_tx: mpsc::Sender<ReloadRequest>,
    scrape: Arc<ScrapeManager>,
    rules: RuleManager,
    alerts_done: CancellationToken,
    alert_forwarder: JoinHandle<()>,
    notify: Arc<NotifyManager>,
    notify_intake: mpsc::Sender<Vec<Alert>>,
    events: Arc<AlertEvents>,
    heartbeats: Arc<Heartbeats>,
    reports: Arc<ReportManager>,
    storage: Arc<DiskStorage>,
    server: JoinHandle<()>,
    reloader: JoinHandle<()>,
}

impl RunningApp {
    /// The address the HTTP server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The storage, for tests that inspect what was written.
    pub fn storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }

    /// The durable engine itself, for tests of its maintenance.
    pub fn disk_storage(&self) -> Arc<DiskStorage> {
        self.storage.clone()
    }

    /// The rule manager, for tests of rule evaluation.
    pub fn rules(&self) -> &RuleManager {
        &self.rules
    }

    /// The notification pipeline, for tests that inspect it.
    pub fn notify(&self) -> Arc<NotifyManager> {
        self.notify.clone()
    }

    /// A direct way into the notification pipeline, beside rule
    /// evaluation and `POST /api/v2/alerts`.
    pub fn alert_sender(&self) -> mpsc::Sender<Vec<Alert>> {
        self.notify_intake.clone()
    }

    /// The alert event hub behind `/api/v1/alerts/stream`.
    pub fn alert_events(&self) -> Arc<AlertEvents> {
        self.events.clone()
    }

    /// The heartbeats (dead man's switches).
    pub fn heartbeats(&self) -> Arc<Heartbeats> {
        self.heartbeats.clone()
    }

    /// Reloads the configuration file (all-or-nothing).
    pub async fn reload(&self) -> Result<(), ReloadFailed> {
        let (tx, rx) = oneshot::channel();
        self.reload_tx
            .send(ReloadRequest { reply: tx })
            .await
            .map_err(|_| ReloadFailed("watchpost is shutting down".to_string()))?;
        rx.await
            .map_err(|_| ReloadFailed("watchpost is shutting down".to_string()))?
    }

    /// Stops everything in reverse data-path order.
    pub async fn shutdown(self) {
        let step = Duration::from_secs(10);
        // 1. Stop intake: the HTTP server finishes in-flight requests.
        self.cancel.cancel();
        self.reports.shutdown();
        let _ = tokio::time::timeout(step, self.server).await;
        let _ = tokio::time::timeout(step, self.reloader).await;
        // 2. Stop scraping (no staleness markers: a restart continues).
        let _ = tokio::time::timeout(step, self.scrape.shutdown()).await;
        // 3. Stop rule evaluation (persisting alert state), then hand the
        // alerts still queued to the sink.
        let _ = tokio::time::timeout(step, self.rules.shutdown()).await;
        self.alerts_done.cancel();
        let _ = tokio::time::timeout(step, self.alert_forwarder).await;
        // 4. Stop the notification pipeline: in-flight sends finish or stay
        // queued on disk for the next start.
        self.notify.shutdown(step).await;
        // 5. Wait for every tracked task (maintenance stops on cancel).
        self.tracker.close();
        let _ = tokio::time::timeout(step, self.tracker.wait()).await;
        // 6. Checkpoint and sync the WAL.
        let storage = self.storage.clone();
        match tokio::task::spawn_blocking(move || storage.close()).await {
            Ok(Err(e)) => tracing::error!(error = %e, "closing storage failed"),
            Err(e) => tracing::error!(error = %e, "closing storage panicked"),
            Ok(Ok(())) => {}
        }
    }
}

/// Starts watchpost on `listener` with a validated config.
// Start and reload times are wall-clock facts reported in metrics and the API.
#[allow(clippy::disallowed_methods)]
pub async fn start(opts: Options, listener: TcpListener) -> Result<RunningApp, AppError> {
    let cfg = load_config(&opts)?;
    let web = match &opts.web_config_file {
        Some(p) => Some(config::load_web_config(p)?),
        None => None,
    };
    let clients = ScrapeManager::prepare(&cfg).map_err(AppError::Scrape)?;
    let rule_groups = load_rule_groups(&opts, &cfg)?;
    let notify_cfg = notify_config(&cfg)?;
    let factory = crate::channels::factory(&notify_cfg)?;
    let prepared_reports = crate::reports::prepare(&cfg.reports, &notify_cfg)?;
    let addr = listener.local_addr().map_err(|source| AppError::Listen {
        addr: "listener".to_string(),
        source,
    })?;

    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let storage = {
        let mut so = StorageOptions::new(&opts.storage_path);
        so.retention_time = cfg.storage.retention_time;
        so.retention_size = cfg.storage.retention_size;
        so.wal_sync = opts.wal_sync;
        so.refuse_on_corruption = opts.refuse_on_corruption;
        let st = tokio::task::spawn_blocking(move || DiskStorage::open(so))
            .await
            .map_err(|e| {
                crate::storage::StorageError::Other(format!("storage open task failed: {e}"))
            })??;
        Arc::new(st)
    };
    let telemetry = Arc::new(Telemetry::new(storage.clone()));
    tracker.spawn(storage_maintenance(storage.clone(), cancel.clone()));
    tracker.spawn(advise_huge_pages(cancel.clone()));
    let loop_runtimes = LoopRuntimes::per_core().map_err(AppError::ScrapeThreads)?;
    let scrape = Arc::new(
        ScrapeManager::new(storage.clone(), telemetry.scrape.clone(), tracker.clone())
            .with_loop_runtimes(Arc::new(loop_runtimes)),
    );

    // Subqueries without a step use the global evaluation interval, as in
    // Prometheus.
    let mut engine_opts = opts.query.clone();
    engine_opts.default_subquery_step = cfg.global.evaluation_interval;
    let engine = Arc::new(Engine::new(engine_opts));

    // Prometheus's default external URL is the listen address.
    let default_url = format!("http://{addr}");
    let (notify_intake, notify_rx) = mpsc::channel(alerts::ALERT_CHANNEL_CAPACITY);
    let notify = {
        let mut no = NotifyOptions::new(Some(opts.storage_path.join("notify")));
        // Links in notifications point at `web.external_url` when set.
        no.external_url = cfg
            .web
            .external_url
            .clone()
            .unwrap_or_else(|| default_url.clone());
        NotifyManager::start(
            &notify_cfg,
            factory,
            no,
            telemetry.notify.clone(),
            notify_rx,
        )
        .await?
    };

    let (alerts_tx, alerts_rx) = mpsc::channel(alerts::ALERT_CHANNEL_CAPACITY);
    let sink: Arc<dyn AlertSink> = match &opts.alert_sink {
        Some(s) => s.clone(),
        None => Arc::new(NotifySink(notify.clone())),
    };
    let alerts_done = CancellationToken::new();
    let alert_forwarder = tracker.spawn(alerts::forward(
        alerts_rx,
        sink.clone(),
        alerts_done.clone(),
    ));
    // Streams end with the server (graceful shutdown waits for them).
    let events = AlertEvents::new(
        opts.alert_stream.clone(),
        Clock::system().now(),
        cancel.clone(),
    );
    tracker.spawn(api::stream::watch_notify(
        events.clone(),
        notify.clone(),
        cancel.clone(),
    ));
    let heartbeats = start_heartbeats(&opts, &cfg, &storage, &telemetry, sink, &events);
    tracker.spawn(heartbeats.clone().run(cancel.clone()));
    let rule_opts = RuleManagerOptions::from_config(&cfg, rule_state_dir(&opts), &default_url);
    let rules = RuleManager::new(
        storage.clone(),
        engine.clone(),
        &rule_opts,
        telemetry.rules.clone(),
        tracker.clone(),
        alerts_tx,
    );
    {
        let ev = events.clone();
        rules.set_alert_observer(Arc::new(move |scope, alerts| {
            ev.observe_set(scope, alerts.iter().map(AlertChange::from_rule).collect());
        }));
    }
    rules.apply(rule_groups, &rule_opts).await;
    let reports = Arc::new(ReportManager::new(
        Arc::new(LocalSource::new(engine.clone(), storage.clone())),
        telemetry.reports.clone(),
        crate::notify::Clock::system(),
        tracker.clone(),
    ));
    reports.apply(prepared_reports);
    // Before the first scrape pool starts: pools take the hook at creation.
    scrape.set_hook(rules.scrape_hook());

    scrape.apply(&cfg, clients).await;

    telemetry.config.last_reload_successful.set(1);
    telemetry
        .config
        .last_reload_success_timestamp_seconds
        .set(crate::model::timestamp_of(SystemTime::now()) / 1000);

    let current = Arc::new(RwLock::new(Arc::new(cfg)));
    let push = open_push(&opts, storage.clone(), &telemetry, &rules).await?;
    tracker.spawn(push_flush(
        push.store.clone(),
        current.clone(),
        cancel.clone(),
    ));
    let (reload_tx, reload_rx) = mpsc::channel(8);
    let ready = Arc::new(AtomicBool::new(false));
    let users = web
        .as_ref()
        .map(|w| {
            w.basic_auth_users
                .iter()
                .map(|(u, h)| (u.clone(), h.expose().clone()))
                .collect()
        })
        .unwrap_or_default();
    let state = ApiState {
        storage: storage.clone(),
        engine,
        scrape: scrape.clone(),
        rules: Some(rules.clone()),
        push: Some(push),
        config: current.clone(),
        telemetry: telemetry.clone(),
        reload: reload_tx.clone(),
        ready: ready.clone(),
        auth: Arc::new(Authenticator::new(users)),
        start_time: SystemTime::now(),
        events: Some(events.clone()),
        heartbeats: Some(heartbeats.clone()),
    };

    let reloader = tracker.spawn(reload_loop(
        opts.clone(),
        reload_rx,
        Reloadable {
            scrape: scrape.clone(),
            rules: rules.clone(),
            notify: notify.clone(),
            heartbeats: heartbeats.clone(),
            reports: reports.clone(),
            default_url,
        },
        current,
        telemetry.clone(),
        cancel.clone(),
    ));

    let router = api::router_with_notify(state, notify.clone());
    let shutdown = cancel.clone();
    let tls = match web.as_ref().and_then(|w| w.tls.as_ref()) {
        Some(t) => Some(
            api::load_tls_acceptor(
                &t.cert_file,
                &t.key_file,
                t.client_ca_file.as_deref(),
                t.client_auth == config::ClientAuth::RequireAndVerifyClientCert,
            )
            .map_err(|e| AppError::WebConfig(e.to_string()))?,
        ),
        None => None,
    };
    let server = match tls {
        None => tracker.spawn(async move {
            let res = axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(e) = res {
                tracing::error!(error = %e, "http server failed");
            }
        }),
        Some(acceptor) => {
            let tls_listener = api::TlsListener::new(listener, acceptor, &tracker, cancel.clone())
                .map_err(|source| AppError::Listen {
                    addr: addr.to_string(),
                    source,
                })?;
            tracker.spawn(async move {
                let res = axum::serve(tls_listener, router)
                    .with_graceful_shutdown(async move { shutdown.cancelled().await })
                    .await;
                if let Err(e) = res {
                    tracing::error!(error = %e, "https server failed");
                }
            })
        }
    };
    ready.store(true, Ordering::Release);
    tracing::info!(address = %addr, "watchpost is ready");

    Ok(RunningApp {
        addr,
        cancel,
        tracker,
        reload_tx,
        scrape,
        rules,
        alerts_done,
        alert_forwarder,
        notify,
        notify_intake,
        events,
        heartbeats,
        reports,
        storage,
        server,
        reloader,
    })
}

/// Opens the Pushgateway's groups under the storage path, with the rule
/// hook so a push wakes on_scrape groups as a scrape does.
async fn open_push(
    opts: &Options,
    storage: Arc<DiskStorage>,
    telemetry: &Telemetry,
    rules: &RuleManager,
) -> Result<PushIngest, AppError> {
    let dir = opts.storage_path.join("push");
    let metrics = telemetry.push.clone();
    let store = tokio::task::spawn_blocking(move || PushStore::open(&dir, storage, metrics))
        .await
        .map_err(|e| AppError::Push(std::io::Error::other(e.to_string())))?
        .map_err(AppError::Push)?;
    store.set_hook(rules.scrape_hook());
    Ok(PushIngest {
        store: Arc::new(store),
        remote_write_flag: opts.enable_remote_write_receiver,
    })
}

/// Re-appends every pushed group on the global scrape interval (read
/// again each round, so a reload applies), as Prometheus scraping a
/// Pushgateway would; the first round runs at once, so groups restored
/// from disk are visible right after a start.
// A scheduler: it reads the clock for the samples' timestamp.
#[allow(clippy::disallowed_methods)]
async fn push_flush(
    store: Arc<PushStore>,
    config: Arc<RwLock<Arc<Config>>>,
    cancel: CancellationToken,
) {
    loop {
        let cfg = config.read().unwrap_or_else(|e| e.into_inner()).clone();
        // With the API switched off, pushed groups stay on disk but are no
        // longer served, so their series end as unscraped ones do.
        if cfg.push.pushgateway {
            let st = store.clone();
            let now = crate::model::timestamp_of(SystemTime::now());
            if let Err(e) = tokio::task::spawn_blocking(move || st.flush(now)).await {
                tracing::error!(error = %e, "re-appending pushed groups panicked");
            }
        }
        let every = cfg.global.scrape_interval.max(Duration::from_secs(1));
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Builds the heartbeats: their alerts go to `sink` (the notification
/// pipeline) and to the alert stream; their state lives under
/// `<storage>/heartbeats`.
fn start_heartbeats(
    opts: &Options,
    cfg: &Config,
    storage: &Arc<DiskStorage>,
    telemetry: &Telemetry,
    sink: Arc<dyn AlertSink>,
    events: &Arc<AlertEvents>,
) -> Arc<Heartbeats> {
    let clock = Clock::system();
    let ev = events.clone();
    let out_clock = clock.clone();
    let out = Arc::new(move |alerts: Vec<Alert>| {
        let now = out_clock.now();
        for a in &alerts {
            ev.observe(AlertChange::from_alert(a, now, Source::Heartbeat, None));
        }
        sink.send(alerts);
    });
    Heartbeats::new(
        &cfg.heartbeats,
        HeartbeatOptions::new(
            Some(opts.storage_path.join("heartbeats")),
            Arc::new(move || clock.now()),
        ),
        storage.clone(),
        telemetry.heartbeat.clone(),
        out,
    )
}

/// Keeps the heap advised for transparent huge pages
/// ([`hugepages`]): at start and in the first seconds, while the
/// scrape threads create their allocator arenas and the first scrapes
/// create the series, then once a minute for heap growth and new arenas.
async fn advise_huge_pages(cancel: CancellationToken) {
    let delays = [0u64, 1, 2, 5, 10, 20]
        .into_iter()
        .chain(std::iter::repeat(60));
    for secs in delays {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
        }
        match tokio::task::spawn_blocking(hugepages::advise_heap).await {
            Ok(Ok(bytes)) => tracing::trace!(bytes, "heap advised for transparent huge pages"),
            Ok(Err(e)) => tracing::debug!(error = %e, "cannot advise the heap for huge pages"),
            Err(e) => tracing::error!(error = %e, "huge page advice task panicked"),
        }
    }
}

/// Runs storage upkeep: WAL syncs at the configured period, and once a
/// minute block finalization, retention and checkpoints.
// The maintenance loop is a scheduler: it reads the clock for `maintain`.
#[allow(clippy::disallowed_methods)]
async fn storage_maintenance(storage: Arc<DiskStorage>, cancel: CancellationToken) {
    let sync_every = storage.wal_sync_interval();
    let mut maintain = tokio::time::interval(Duration::from_secs(60));
    maintain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sync = tokio::time::interval(sync_every.unwrap_or(Duration::from_secs(3600)));
    sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = maintain.tick() => {
                let st = storage.clone();
                let now = crate::model::timestamp_of(SystemTime::now());
                match tokio::task::spawn_blocking(move || st.maintain(now)).await {
                    Ok(Ok(r)) => {
                        if !r.blocks_deleted.is_empty() || r.series_removed > 0 {
                            tracing::info!(blocks_deleted = r.blocks_deleted.len(), series_removed = r.series_removed, "storage retention applied");
                        }
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "storage maintenance failed"),
                    Err(e) => tracing::error!(error = %e, "storage maintenance panicked"),
                }
            }
            _ = sync.tick(), if sync_every.is_some() => {
                let st = storage.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || st.sync_wal()).await {
                    tracing::error!(error = %e, "wal sync failed");
                }
            }
        }
    }
}

/// Serves reload requests one at a time, all-or-nothing.
#[allow(clippy::disallowed_methods)]
async fn reload_loop(
    opts: Options,
    mut rx: mpsc::Receiver<ReloadRequest>,
    parts: Reloadable,
    current: Arc<RwLock<Arc<Config>>>,
    telemetry: Arc<Telemetry>,
    cancel: CancellationToken,
) {
    loop {
        let req = tokio::select! {
            _ = cancel.cancelled() => return,
            r = rx.recv() => match r { Some(r) => r, None => return },
        };
        let result = reload_once(&opts, &parts).await;
        match &result {
            Ok(cfg) => {
                *current.write().unwrap_or_else(|e| e.into_inner()) = cfg.clone();
                telemetry.config.last_reload_successful.set(1);
                telemetry
                    .config
                    .last_reload_success_timestamp_seconds
                    .set(crate::model::timestamp_of(SystemTime::now()) / 1000);
                tracing::info!(file = %opts.config_file.display(), "configuration reloaded");
            }
            Err(e) => {
                telemetry.config.last_reload_successful.set(0);
                telemetry.config.reloads_failed.inc();
                tracing::error!(error = %e, "reload failed; keeping the running configuration");
            }
        }
        let _ = req
            .reply
            .send(result.map(|_| ()).map_err(|e| ReloadFailed(e.to_string())));
    }
}

/// Everything that can fail (config, HTTP clients, rule files) is checked
/// before anything is applied.
/// The components a reload applies a new config to.
struct Reloadable {
    scrape: Arc<ScrapeManager>,
    rules: RuleManager,
    notify: Arc<NotifyManager>,
    heartbeats: Arc<Heartbeats>,
    reports: Arc<ReportManager>,
    /// The external URL when the config sets none.
    default_url: String,
}

async fn reload_once(opts: &Options, parts: &Reloadable) -> Result<Arc<Config>, AppError> {
    let cfg = load_config(opts)?;
    let clients = ScrapeManager::prepare(&cfg).map_err(AppError::Scrape)?;
    let groups = load_rule_groups(opts, &cfg)?;
    let notify_cfg = notify_config(&cfg)?;
    // Templates are read again, and the pipeline builds every receiver
    // before it changes anything, so a bad notify section or template file
    // leaves scrapes and rules untouched too.
    let factory = crate::channels::factory(&notify_cfg)?;
    let reports = crate::reports::prepare(&cfg.reports, &notify_cfg)?;
    parts.notify.apply_config_with(&notify_cfg, &factory)?;
    parts.scrape.apply(&cfg, clients).await;
    parts
        .rules
        .apply(
            groups,
            &RuleManagerOptions::from_config(&cfg, rule_state_dir(opts), &parts.default_url),
        )
        .await;
    parts.heartbeats.apply(&cfg.heartbeats);
    parts.reports.apply(reports);
    Ok(Arc::new(cfg))
}

/// Runs until `shutdown` resolves, reloading on SIGHUP.
pub async fn run(
    opts: Options,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    let app = start(opts, listener).await?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    tokio::pin!(shutdown);
    loop {
        let hup_recv = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            _ = hup_recv => {
                // The reload loop logs the outcome.
                let _ = app.reload().await;
            }
        }
    }
    tracing::info!("shutting down");
    app.shutdown().await;
    Ok(())
}
