//! Target discovery: static_configs, file_sd_configs and http_sd_configs,
//! turned into target groups, and the per-job task that keeps them current.
//!
//! First stage of the scrape data path: it produces target groups (the
//! discovered addresses and their labels); `target` turns them into scrape
//! targets. Each job publishes its complete, current group list on a
//! `watch` channel, so a consumer always sees one consistent list and never
//! has to merge partial updates.
//!
//! A source that fails (unreadable file, bad YAML, HTTP error) keeps its
//! last good groups and logs why: a typo in one file_sd file must never
//! take down the targets it described. This module never relabels and never
//! scrapes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::http_client::{HttpClientError, authorize, build_http_client, error_chain, redact_url};
use super::target::ADDRESS_LABEL;
use crate::config::{FileSdConfig, HttpSdConfig, ScrapeConfig};
use crate::model::{Labels, is_valid_label_name};

/// Label file_sd adds to every group: the file it came from.
pub const META_FILEPATH_LABEL: &str = "__meta_filepath";
/// Label http_sd adds to every group: the URL it came from.
pub const META_URL_LABEL: &str = "__meta_url";

/// How often file_sd checks its files for changes. Polling metadata is a
/// few `stat` calls; it replaces inotify, which misses changes on network
/// filesystems and in bind-mounted ConfigMaps.
pub const FILE_SD_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Largest file_sd file read (about a million targets in JSON).
pub const MAX_FILE_SD_BYTES: u64 = 64 * 1024 * 1024;
/// Largest http_sd response body read (after decompression).
pub const MAX_HTTP_SD_BYTES: u64 = 10 * 1024 * 1024;
/// Lower bound on refresh intervals, so a zero in a hand-built config
/// cannot turn a refresh loop into a busy loop against an SD server.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(100);

/// A group of discovered targets sharing labels, like Prometheus's
/// `targetgroup.Group`.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetGroup {
    /// Identifies the group within its job: `static:0`, `file:<path>:<i>`,
    /// `http:<url>:<i>`.
    pub source: String,
    /// One label set per target; each has `__address__` and may carry
    /// more labels.
    pub targets: Vec<Labels>,
    /// Labels of every target in the group (a target's own labels win).
    pub labels: Labels,
}

/// Why a discovery source could not produce groups.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("file_sd: reading {path}: {error}: check the path and its permissions")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "file_sd: {path}: unsupported file extension: name file_sd files *.json, *.yml or *.yaml"
    )]
    Extension { path: PathBuf },
    #[error("{place}: larger than {limit} bytes: split the targets over several files or sources")]
    TooLarge { place: String, limit: u64 },
    /// `place` is `<file or url>:<line>:<column>` when the parser knows the
    /// position.
    #[error(
        "{place}: {message}: expected a list of {{targets: [\"host:port\", ...], labels: {{name: value}}}}"
    )]
    Parse { place: String, message: String },
    #[error(
        "{place}: target group {group}: invalid label name {name:?}: \
         label names must match [a-zA-Z_][a-zA-Z0-9_]*"
    )]
    InvalidLabelName {
        place: String,
        group: usize,
        name: String,
    },
    #[error("http_sd {url}: {error}")]
    Client { url: String, error: HttpClientError },
    #[error("http_sd {url}: request failed: {reason}")]
    Request { url: String, reason: String },
    #[error("http_sd {url}: server returned HTTP status {status}: expected 200")]
    Status { url: String, status: u16 },
    #[error(
        "http_sd {url}: unsupported content type {content_type:?}: \
         the server must answer with Content-Type application/json"
    )]
    ContentType { url: String, content_type: String },
}

/// The groups of `static_configs`, one per entry, in config order.
pub fn static_groups(job: &ScrapeConfig) -> Vec<TargetGroup> {
    job.static_configs
        .iter()
        .enumerate()
        .map(|(i, sc)| TargetGroup {
            source: format!("static:{i}"),
            targets: sc
                .targets
                .iter()
                .map(|t| Labels::from_pairs([(ADDRESS_LABEL, t.as_str())]))
                .collect(),
            labels: sc.labels.clone(),
        })
        .collect()
}

/// One group as written in a file_sd file or an http_sd response.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Parses a file_sd file: a JSON (`.json`) or YAML (`.yml`, `.yaml`) list
/// of `{targets: [...], labels: {...}}`. Every group gets
/// `__meta_filepath`; an empty file is an empty list.
pub fn read_file_sd(path: &Path) -> Result<Vec<TargetGroup>, DiscoveryError> {
    let yaml = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => false,
        Some("yml") | Some("yaml") => true,
        _ => {
            return Err(DiscoveryError::Extension {
                path: path.to_path_buf(),
            });
        }
    };
    let read_err = |error| DiscoveryError::Read {
        path: path.to_path_buf(),
        error,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(read_err)?
        .take(MAX_FILE_SD_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    let place = path.display().to_string();
    if bytes.len() as u64 > MAX_FILE_SD_BYTES {
        return Err(DiscoveryError::TooLarge {
            place,
            limit: MAX_FILE_SD_BYTES,
        });
    }
    let raw = if yaml {
        parse_yaml(&bytes, &place)?
    } else {
        parse_json(&bytes, &place)?
    };
    let file = path.to_string_lossy();
    build_groups(
        raw,
        &place,
        &format!("file:{}", path.display()),
        META_FILEPATH_LABEL,
        &file,
    )
}

/// Parses an http_sd response body: a JSON list of the same shape as a
/// file_sd file. Every group gets `__meta_url`.
pub fn parse_http_sd(body: &[u8], url: &str) -> Result<Vec<TargetGroup>, DiscoveryError> {
    let place = format!("http_sd {}", redact_url(url));
    let raw = parse_json(body, &place)?;
    build_groups(raw, &place, &format!("http:{url}"), META_URL_LABEL, url)
}

fn parse_json(bytes: &[u8], place: &str) -> Result<Vec<RawGroup>, DiscoveryError> {
    // `null` is an empty list, as Go's json.Unmarshal treats it.
    serde_json::from_slice::<Option<Vec<RawGroup>>>(bytes)
        .map(Option::unwrap_or_default)
        .map_err(|e| {
            let text = e.to_string();
            if e.line() == 0 {
                return DiscoveryError::Parse {
                    place: place.to_string(),
                    message: text,
                };
            }
            // serde_json appends the position; it goes in front instead.
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            DiscoveryError::Parse {
                place: format!("{place}:{}:{}", e.line(), e.column()),
                message: text.strip_suffix(&suffix).unwrap_or(&text).to_string(),
            }
        })
}

fn parse_yaml(bytes: &[u8], place: &str) -> Result<Vec<RawGroup>, DiscoveryError> {
    // An empty document is an empty list, as in Prometheus.
    serde_saphyr::from_slice::<Option<Vec<RawGroup>>>(bytes)
        .map(Option::unwrap_or_default)
        .map_err(|e| {
            let text = e.without_snippet().to_string();
            match e.location() {
                Some(loc) => {
                    // serde-saphyr appends the position; it goes in front.
                    let suffix = format!(" at line {}, column {}", loc.line(), loc.column());
                    DiscoveryError::Parse {
                        place: format!("{place}:{}:{}", loc.line(), loc.column()),
                        message: text.strip_suffix(&suffix).unwrap_or(&text).to_string(),
                    }
                }
                None => DiscoveryError::Parse {
                    place: place.to_string(),
                    message: text,
                },
            }
        })
}

fn build_groups(
    raw: Vec<RawGroup>,
    place: &str,
    source_prefix: &str,
    meta_label: &str,
    meta_value: &str,
) -> Result<Vec<TargetGroup>, DiscoveryError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, g)| {
            if let Some(name) = g.labels.keys().find(|n| !is_valid_label_name(n)) {
                return Err(DiscoveryError::InvalidLabelName {
                    place: place.to_string(),
                    group: i + 1,
                    name: name.clone(),
                });
            }
            let mut labels = Labels::from_pairs(g.labels).builder();
            labels.set(meta_label, meta_value);
            Ok(TargetGroup {
                source: format!("{source_prefix}:{i}"),
                targets: g
                    .targets
                    .into_iter()
                    .map(|t| Labels::from_pairs([(ADDRESS_LABEL, t)]))
                    .collect(),
                labels: labels.into_labels(),
            })
        })
        .collect()
}

/// Fetches and parses one http_sd endpoint, following Prometheus's rules:
/// status 200, `Content-Type: application/json`, and (watchpost's own
/// bound) at most [`MAX_HTTP_SD_BYTES`] of body.
pub async fn fetch_http_sd(
    client: &reqwest::Client,
    cfg: &HttpSdConfig,
) -> Result<Vec<TargetGroup>, DiscoveryError> {
    let shown = redact_url(&cfg.url);
    let req = client
        .get(&cfg.url)
        .header(ACCEPT, "application/json")
        .header(
            "X-Prometheus-Refresh-Interval-Seconds",
            cfg.refresh_interval.as_secs().to_string(),
        );
    let req = authorize(req, &cfg.http).map_err(|error| DiscoveryError::Client {
        url: shown.clone(),
        error,
    })?;
    let request_err = |e: reqwest::Error| DiscoveryError::Request {
        url: shown.clone(),
        reason: error_chain(&e.without_url()),
    };
    let mut resp = req.send().await.map_err(request_err)?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(DiscoveryError::Status {
            url: shown.clone(),
            status: resp.status().as_u16(),
        });
    }
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    if content_type != "application/json" && !content_type.starts_with("application/json;") {
        return Err(DiscoveryError::ContentType {
            url: shown.clone(),
            content_type,
        });
    }
    let too_large = || DiscoveryError::TooLarge {
        place: format!("http_sd {shown}"),
        limit: MAX_HTTP_SD_BYTES,
    };
    if resp.content_length().is_some_and(|n| n > MAX_HTTP_SD_BYTES) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(request_err)? {
        if (body.len() + chunk.len()) as u64 > MAX_HTTP_SD_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    parse_http_sd(&body, &cfg.url)
}

/// Runs every discovery source of one job until `cancel` fires, sending
/// the job's complete, current group list on `tx` whenever it changes.
/// The first send happens once every source finished its initial
/// discovery, even if some failed (they contribute no groups until they
/// succeed). Group order: static_configs, then file_sd_configs, then
/// http_sd_configs, each in config order.
pub async fn run_job_discovery(
    job: Arc<ScrapeConfig>,
    tx: watch::Sender<Arc<Vec<TargetGroup>>>,
    cancel: CancellationToken,
) {
    let statics = static_groups(&job);
    let n_files = job.file_sd_configs.len();
    let n_sources = n_files + job.http_sd_configs.len();
    if n_sources == 0 {
        tx.send_replace(Arc::new(statics));
        cancel.cancelled().await;
        return;
    }

    // Each source sends its own complete list, tagged with its slot; the
    // merger below owns the job-wide view.
    let (up_tx, mut up_rx) = mpsc::channel::<(usize, Vec<TargetGroup>)>(n_sources);
    let file_sources = job.file_sd_configs.iter().enumerate().map(|(i, cfg)| {
        run_file_sd(
            job.job_name.clone(),
            cfg.clone(),
            i,
            up_tx.clone(),
            cancel.clone(),
        )
    });
    let http_sources = job.http_sd_configs.iter().enumerate().map(|(i, cfg)| {
        run_http_sd(
            job.job_name.clone(),
            cfg.clone(),
            n_files + i,
            up_tx.clone(),
            cancel.clone(),
        )
    });
    let file_sources = join_all(file_sources);
    let http_sources = join_all(http_sources);
    drop(up_tx);

    // `move`: when the merger stops, the receiver goes with it, so a source
    // blocked on a full channel wakes up with an error instead of hanging.
    let merge_cancel = cancel.clone();
    let merge = async move {
        let mut slots: Vec<Option<Vec<TargetGroup>>> = vec![None; n_sources];
        let mut published = false;
        loop {
            let msg = tokio::select! {
                _ = merge_cancel.cancelled() => return,
                msg = up_rx.recv() => msg,
            };
            let Some((slot, groups)) = msg else { return };
            slots[slot] = Some(groups);
            if !published && slots.iter().any(Option::is_none) {
                continue;
            }
            let mut all = statics.clone();
            all.extend(slots.iter().flatten().flatten().cloned());
            if published {
                tx.send_if_modified(|cur| {
                    if **cur == all {
                        false
                    } else {
                        *cur = Arc::new(all);
                        true
                    }
                });
            } else {
                published = true;
                tx.send_replace(Arc::new(all));
            }
        }
    };
    tokio::join!(merge, file_sources, http_sources);
}

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    /// An atomic rename-into-place changes the inode even when size and
    /// mtime happen to match.
    #[cfg(unix)]
    inode: u64,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            #[cfg(unix)]
            inode: meta.ino(),
        }
    }
}

#[derive(Debug, Default)]
struct FileState {
    stamp: Option<FileStamp>,
    /// The last groups the file parsed to; kept while the file is broken.
    groups: Vec<TargetGroup>,
}

/// The result of one look at the files of a file_sd config, computed off
/// the async runtime: which files exist now, and the parse results of
/// those that need reading.
struct Scan {
    found: BTreeMap<PathBuf, FileStamp>,
    read: Vec<(PathBuf, FileStamp, Result<Vec<TargetGroup>, DiscoveryError>)>,
}

/// Globs `patterns`, stats every match and reads the files that are new or
/// whose stamp differs from `known` (all of them when `force`).
fn scan_files(
    job: &str,
    patterns: &[String],
    known: &BTreeMap<PathBuf, FileStamp>,
    force: bool,
) -> Scan {
    let mut found = BTreeMap::new();
    for pattern in patterns {
        let paths = match glob::glob(pattern) {
            Ok(p) => p,
            Err(e) => {
                if force {
                    warn!(job = %job, pattern = %pattern, error = %e, "file_sd: invalid glob pattern, skipping it");
                }
                continue;
            }
        };
        for entry in paths {
            match entry {
                Ok(path) => {
                    // A file removed between glob and stat is simply gone.
                    if let Ok(meta) = std::fs::metadata(&path)
                        && meta.is_file()
                    {
                        found.insert(path, FileStamp::of(&meta));
                    }
                }
                Err(e) => {
                    if force {
                        warn!(job = %job, pattern = %pattern, error = %e, "file_sd: cannot list a directory");
                    }
                }
            }
        }
    }
    let read = found
        .iter()
        .filter(|(path, stamp)| force || known.get(*path) != Some(stamp))
        .map(|(path, stamp)| (path.clone(), *stamp, read_file_sd(path)))
        .collect();
    Scan { found, read }
}

async fn run_file_sd(
    job: String,
    cfg: FileSdConfig,
    slot: usize,
    up: mpsc::Sender<(usize, Vec<TargetGroup>)>,
    cancel: CancellationToken,
) {
    let patterns = Arc::new(cfg.files);
    let mut files: BTreeMap<PathBuf, FileState> = BTreeMap::new();
    let refresh = cfg.refresh_interval.max(MIN_REFRESH_INTERVAL);
    let mut poll = tokio::time::interval_at(
        Instant::now() + FILE_SD_POLL_INTERVAL,
        FILE_SD_POLL_INTERVAL,
    );
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut full = tokio::time::interval_at(Instant::now() + refresh, refresh);
    full.set_missed_tick_behavior(MissedTickBehavior::Delay);

    let mut force = true;
    let mut first = true;
    loop {
        let known: BTreeMap<PathBuf, FileStamp> = files
            .iter()
            .filter_map(|(p, s)| s.stamp.map(|st| (p.clone(), st)))
            .collect();
        let (job2, patterns2) = (job.clone(), patterns.clone());
        // Globbing, stat and reading are blocking filesystem calls.
        let scan =
            tokio::task::spawn_blocking(move || scan_files(&job2, &patterns2, &known, force));
        let scan = tokio::select! {
            _ = cancel.cancelled() => return,
            r = scan => r,
        };
        let changed = match scan {
            Ok(scan) => apply_scan(&job, &mut files, scan),
            Err(e) => {
                // Only a panic in the scan gets here; the state is intact
                // and the next tick tries again.
                warn!(job = %job, error = %e, "file_sd: scanning files failed");
                false
            }
        };
        if changed || first {
            first = false;
            let groups: Vec<TargetGroup> = files.values().flat_map(|f| f.groups.clone()).collect();
            if up.send((slot, groups)).await.is_err() {
                return;
            }
        }
        force = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = poll.tick() => false,
            _ = full.tick() => true,
        };
    }
}

/// Folds a scan into the state; returns whether any file's groups changed.
fn apply_scan(job: &str, files: &mut BTreeMap<PathBuf, FileState>, scan: Scan) -> bool {
    let mut changed = false;
    files.retain(|path, state| {
        let keep = scan.found.contains_key(path);
        if !keep {
            debug!(job = %job, file = %path.display(), "file_sd: file gone, dropping its targets");
            changed |= !state.groups.is_empty();
        }
        keep
    });
    for (path, stamp, result) in scan.read {
        let state = files.entry(path).or_default();
        // Record the stamp even on failure: a broken file is reported once
        // per change, not once per poll.
        state.stamp = Some(stamp);
        match result {
            Ok(groups) => {
                if state.groups != groups {
                    state.groups = groups;
                    changed = true;
                }
            }
            Err(e) => {
                warn!(job = %job, error = %e, "file_sd: cannot use file, keeping its previous targets");
            }
        }
    }
    changed
}

async fn run_http_sd(
    job: String,
    cfg: HttpSdConfig,
    slot: usize,
    up: mpsc::Sender<(usize, Vec<TargetGroup>)>,
    cancel: CancellationToken,
) {
    let shown = redact_url(&cfg.url);
    let refresh = cfg.refresh_interval.max(MIN_REFRESH_INTERVAL);
    // Prometheus bounds each request by the refresh interval.
    let client = match build_http_client(&cfg.http, refresh) {
        Ok(c) => c,
        Err(e) => {
            // Nothing changes this until a reload: report once, contribute
            // no groups, and wait.
            warn!(job = %job, url = %shown, error = %e, "http_sd: cannot build http client");
            if up.send((slot, Vec::new())).await.is_err() {
                return;
            }
            cancel.cancelled().await;
            return;
        }
    };
    let mut last: Option<Vec<TargetGroup>> = None;
    let mut tick = tokio::time::interval(refresh);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = fetch_http_sd(&client, &cfg) => r,
        };
        let update = match result {
            Ok(groups) => (last.as_ref() != Some(&groups)).then_some(groups),
            Err(e) => {
                warn!(job = %job, error = %e, "http_sd: refresh failed, keeping the last good targets");
                // The first attempt reports an empty list so the job's
                // initial discovery is not held up by this source.
                last.is_none().then(Vec::new)
            }
        };
        if let Some(groups) = update {
            last = Some(groups.clone());
            if up.send((slot, groups)).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::config::{
        Authorization, HttpClientConfig, Scheme, ScrapeLimits, Secret, SecretSource, StaticConfig,
    };
    use axum::Router;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::routing::get;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const WAIT: Duration = Duration::from_secs(10);

    fn job() -> ScrapeConfig {
        ScrapeConfig {
            job_name: "node".to_string(),
            scrape_interval: Duration::from_secs(15),
            scrape_timeout: Duration::from_secs(10),
            metrics_path: "/metrics".to_string(),
            scheme: Scheme::Http,
            params: BTreeMap::new(),
            honor_labels: false,
            honor_timestamps: true,
            http: HttpClientConfig::default(),
            static_configs: vec![],
            file_sd_configs: vec![],
            http_sd_configs: vec![],
            relabel_configs: vec![],
            metric_relabel_configs: vec![],
            limits: ScrapeLimits::default(),
        }
    }

    fn ls(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn addr(a: &str) -> Labels {
        ls(&[("__address__", a)])
    }

    /// Every target address of a group list, in order.
    fn addresses(groups: &[TargetGroup]) -> Vec<String> {
        groups
            .iter()
            .flat_map(|g| g.targets.iter())
            .map(|t| t.get_or_empty("__address__").to_string())
            .collect()
    }

    #[test]
    fn static_groups_one_per_entry() {
        let mut j = job();
        j.static_configs = vec![
            StaticConfig {
                targets: vec!["a:1".into(), "b:2".into()],
                labels: ls(&[("env", "prod")]),
            },
            StaticConfig {
                targets: vec!["c:3".into()],
                labels: Labels::empty(),
            },
        ];
        assert_eq!(
            static_groups(&j),
            vec![
                TargetGroup {
                    source: "static:0".into(),
                    targets: vec![addr("a:1"), addr("b:2")],
                    labels: ls(&[("env", "prod")]),
                },
                TargetGroup {
                    source: "static:1".into(),
                    targets: vec![addr("c:3")],
                    labels: Labels::empty(),
                },
            ]
        );
    }

    #[test]
    fn file_sd_json_and_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("t.json");
        std::fs::write(
            &json,
            r#"[{"targets": ["a:1", "b:2"], "labels": {"env": "prod", "empty": ""}},
                {"targets": ["c:3"]}]"#,
        )
        .unwrap();
        let path = json.display().to_string();
        assert_eq!(
            read_file_sd(&json).unwrap(),
            vec![
                TargetGroup {
                    source: format!("file:{path}:0"),
                    targets: vec![addr("a:1"), addr("b:2")],
                    labels: ls(&[("__meta_filepath", &path), ("env", "prod")]),
                },
                TargetGroup {
                    source: format!("file:{path}:1"),
                    targets: vec![addr("c:3")],
                    labels: ls(&[("__meta_filepath", &path)]),
                },
            ]
        );

        // YAML: unquoted numbers and booleans are label values as written.
        let yaml = dir.path().join("t.yml");
        std::fs::write(
            &yaml,
            "- targets: ['a:1']\n  labels:\n    port: 8080\n    canary: true\n",
        )
        .unwrap();
        let groups = read_file_sd(&yaml).unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].labels.get("port"), Some("8080"));
        assert_eq!(groups[0].labels.get("canary"), Some("true"));
        assert_eq!(groups[0].source, format!("file:{}:0", yaml.display()));

        // Empty files (and JSON null) are empty lists, not errors.
        for (name, content) in [
            ("e.yaml", ""),
            ("e2.yml", "# nothing\n"),
            ("e.json", "null"),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, content).unwrap();
            assert_eq!(read_file_sd(&p).unwrap(), vec![], "{name}");
        }
    }

    #[test]
    fn file_sd_errors_carry_positions() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, content: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, content).unwrap();
            p
        };

        let p = write("bad.yml", "- targets: ['a:1']\n  labelz: {}\n");
        assert_eq!(
            read_file_sd(&p).unwrap_err().to_string(),
            format!(
                "{}:2:3: unknown field `labelz`, expected one of targets, labels: \
                 expected a list of {{targets: [\"host:port\", ...], labels: {{name: value}}}}",
                p.display()
            )
        );

        let p = write("syntax.yaml", "- targets: [a:1\n");
        let e = read_file_sd(&p).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:1:12: ", p.display())), "{e}");

        let p = write(
            "bad.json",
            "[\n  {\"targets\": [\"a:1\"]},\n  {\"targets\": 5}\n]",
        );
        let e = read_file_sd(&p).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:3:15: invalid type: integer `5`", p.display())),
            "{e}"
        );
        assert!(!e.contains(" at line "), "{e}");

        let p = write(
            "label.json",
            r#"[{"targets": ["a:1"]}, {"labels": {"1bad": "x"}}]"#,
        );
        assert_eq!(
            read_file_sd(&p).unwrap_err().to_string(),
            format!(
                "{}: target group 2: invalid label name \"1bad\": \
                 label names must match [a-zA-Z_][a-zA-Z0-9_]*",
                p.display()
            )
        );

        let p = write("targets.txt", "a:1\n");
        assert!(matches!(
            read_file_sd(&p),
            Err(DiscoveryError::Extension { .. })
        ));

        let missing = dir.path().join("missing.yml");
        let e = read_file_sd(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("file_sd: reading {}: ", missing.display())),
            "{e}"
        );
    }

    #[test]
    fn http_sd_body() {
        let url = "http://sd.example:8080/targets";
        let groups = parse_http_sd(
            br#"[{"targets": ["a:1"], "labels": {"dc": "x"}}, {"targets": []}]"#,
            url,
        )
        .unwrap();
        assert_eq!(
            groups,
            vec![
                TargetGroup {
                    source: format!("http:{url}:0"),
                    targets: vec![addr("a:1")],
                    labels: ls(&[("__meta_url", url), ("dc", "x")]),
                },
                TargetGroup {
                    source: format!("http:{url}:1"),
                    targets: vec![],
                    labels: ls(&[("__meta_url", url)]),
                },
            ]
        );
        let e = parse_http_sd(b"[{\"targets\": [1]}]", "http://u:pw@sd/x")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("http_sd http://u:xxxxx@sd/x:1:15: invalid type"),
            "{e}"
        );
        assert!(parse_http_sd(b"[null]", url).is_err());
    }

    fn file_job(pattern: &str) -> Arc<ScrapeConfig> {
        let mut j = job();
        j.static_configs = vec![StaticConfig {
            targets: vec!["static:1".into()],
            labels: Labels::empty(),
        }];
        j.file_sd_configs = vec![FileSdConfig {
            files: vec![pattern.to_string()],
            // Long enough that only the 1 s metadata poll can explain a
            // change seen by the test.
            refresh_interval: Duration::from_secs(3600),
        }];
        Arc::new(j)
    }

    /// Waits until the published list satisfies `pred`, failing the test
    /// after [`WAIT`] with the last list seen.
    async fn wait_for(
        rx: &mut watch::Receiver<Arc<Vec<TargetGroup>>>,
        what: &str,
        pred: impl Fn(&[TargetGroup]) -> bool,
    ) -> Arc<Vec<TargetGroup>> {
        let seen = match tokio::time::timeout(WAIT, rx.wait_for(|g| pred(g))).await {
            Ok(Ok(g)) => Some(g.clone()),
            Ok(Err(_)) => panic!("{what}: discovery ended"),
            Err(_) => None,
        };
        match seen {
            Some(g) => g,
            None => panic!("{what}: not seen within {WAIT:?}; last: {:?}", rx.borrow()),
        }
    }

    #[tokio::test]
    async fn file_sd_follows_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.yml");
        let b = dir.path().join("b.json");
        std::fs::write(&a, "- targets: ['a:1']\n").unwrap();
        let pattern = format!("{}/*", dir.path().display());

        let (tx, mut rx) = watch::channel(Arc::new(Vec::new()));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_job_discovery(file_job(&pattern), tx, cancel.clone()));

        // Initial discovery: static groups first, then the file's.
        let g = wait_for(&mut rx, "initial", |g| !g.is_empty()).await;
        assert_eq!(addresses(&g), ["static:1", "a:1"]);
        assert_eq!(
            g[1].labels.get("__meta_filepath"),
            Some(a.to_str().unwrap())
        );

        // A rewrite is picked up by the metadata poll.
        std::fs::write(&a, "- targets: ['a:1', 'a:2']\n").unwrap();
        wait_for(&mut rx, "rewrite", |g| {
            addresses(g) == ["static:1", "a:1", "a:2"]
        })
        .await;

        // A broken rewrite keeps the file's previous targets; a new file
        // appearing afterwards proves the broken one was looked at.
        std::fs::write(&a, "- targets: ['a:1', 'a:2'\n").unwrap();
        std::fs::write(&b, r#"[{"targets": ["b:1"]}]"#).unwrap();
        wait_for(&mut rx, "new file", |g| {
            addresses(g) == ["static:1", "a:1", "a:2", "b:1"]
        })
        .await;

        // Deleting a file drops its targets.
        std::fs::remove_file(&b).unwrap();
        wait_for(&mut rx, "delete", |g| {
            addresses(g) == ["static:1", "a:1", "a:2"]
        })
        .await;

        // Fixing the broken file is picked up too.
        std::fs::write(&a, "- targets: ['a:3']\n").unwrap();
        wait_for(&mut rx, "fix", |g| addresses(g) == ["static:1", "a:3"]).await;

        cancel.cancel();
        tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn static_only_job_publishes_at_once() {
        let mut j = job();
        j.static_configs = vec![StaticConfig {
            targets: vec!["a:1".into()],
            labels: Labels::empty(),
        }];
        let (tx, mut rx) = watch::channel(Arc::new(Vec::new()));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_job_discovery(Arc::new(j), tx, cancel.clone()));
        tokio::time::timeout(WAIT, rx.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(addresses(&rx.borrow_and_update()), ["a:1"]);
        cancel.cancel();
        tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    }

    /// What the fake SD server answers, and how many requests it saw.
    struct SdServer {
        reply: Mutex<(StatusCode, &'static str, String)>,
        requests: AtomicUsize,
        seen: watch::Sender<usize>,
    }

    async fn sd_handler(
        State(s): State<Arc<SdServer>>,
        h: HeaderMap,
    ) -> (StatusCode, HeaderMap, String) {
        let n = s.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let mut out = HeaderMap::new();
        let reply =
            if h.get(header::AUTHORIZATION).map(|v| v.as_bytes()) != Some(b"Bearer sd-token") {
                (StatusCode::UNAUTHORIZED, HeaderMap::new(), String::new())
            } else {
                let r = s.reply.lock().unwrap();
                out.insert(header::CONTENT_TYPE, r.1.parse().unwrap());
                (r.0, out, r.2.clone())
            };
        s.seen.send_replace(n);
        reply
    }

    async fn sd_server() -> (Arc<SdServer>, String, watch::Receiver<usize>) {
        let (seen, seen_rx) = watch::channel(0);
        let state = Arc::new(SdServer {
            reply: Mutex::new((
                StatusCode::OK,
                "application/json",
                r#"[{"targets": ["h:1"], "labels": {"dc": "one"}}]"#.to_string(),
            )),
            requests: AtomicUsize::new(0),
            seen,
        });
        let router = Router::new()
            .route("/sd", get(sd_handler))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/sd", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (state, url, seen_rx)
    }

    fn http_sd(url: &str, token: &str, refresh: Duration) -> HttpSdConfig {
        HttpSdConfig {
            url: url.to_string(),
            refresh_interval: refresh,
            http: HttpClientConfig {
                authorization: Some(Authorization {
                    kind: "Bearer".into(),
                    credentials: Some(SecretSource::Inline(Secret::new(token.to_string()))),
                }),
                ..Default::default()
            },
        }
    }

    #[tokio::test]
    async fn http_sd_refreshes_and_keeps_last_good() {
        let (server, url, mut seen) = sd_server().await;
        let mut j = job();
        j.http_sd_configs = vec![http_sd(&url, "sd-token", Duration::from_millis(100))];
        let (tx, mut rx) = watch::channel(Arc::new(Vec::new()));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_job_discovery(Arc::new(j), tx, cancel.clone()));

        let g = wait_for(&mut rx, "initial", |g| !g.is_empty()).await;
        assert_eq!(addresses(&g), ["h:1"]);
        assert_eq!(g[0].labels.get("__meta_url"), Some(url.as_str()));
        assert_eq!(g[0].labels.get("dc"), Some("one"));
        assert_eq!(g[0].source, format!("http:{url}:0"));

        server.reply.lock().unwrap().2 = r#"[{"targets": ["h:1", "h:2"]}]"#.to_string();
        wait_for(&mut rx, "refresh", |g| addresses(g) == ["h:1", "h:2"]).await;

        // Failures keep the last good groups. The client is sequential, so
        // once the server has seen two more requests the first failure has
        // been fully handled.
        for failure in [
            (StatusCode::INTERNAL_SERVER_ERROR, "application/json", "[]"),
            (StatusCode::OK, "text/plain", "[]"),
            (StatusCode::OK, "application/json", "[{\"targets\": "),
        ] {
            *server.reply.lock().unwrap() = (failure.0, failure.1, failure.2.to_string());
            let base = *seen.borrow_and_update();
            tokio::time::timeout(WAIT, seen.wait_for(|n| *n >= base + 2))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(addresses(&rx.borrow()), ["h:1", "h:2"], "after {failure:?}");
        }

        cancel.cancel();
        tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn http_sd_failing_source_does_not_hold_up_the_job() {
        let (_server, url, _seen) = sd_server().await;
        let mut j = job();
        j.static_configs = vec![StaticConfig {
            targets: vec!["s:1".into()],
            labels: Labels::empty(),
        }];
        // Wrong token: every request is refused.
        j.http_sd_configs = vec![http_sd(&url, "wrong", Duration::from_secs(3600))];
        let (tx, mut rx) = watch::channel(Arc::new(Vec::new()));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_job_discovery(Arc::new(j), tx, cancel.clone()));
        tokio::time::timeout(WAIT, rx.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(addresses(&rx.borrow_and_update()), ["s:1"]);
        cancel.cancel();
        tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn fetch_http_sd_rules() {
        let (server, url, _seen) = sd_server().await;
        let client = build_http_client(&HttpClientConfig::default(), WAIT).unwrap();
        let cfg = http_sd(&url, "sd-token", Duration::from_secs(60));

        assert_eq!(
            addresses(&fetch_http_sd(&client, &cfg).await.unwrap()),
            ["h:1"]
        );

        // A content type with parameters is fine.
        server.reply.lock().unwrap().1 = "application/json; charset=utf-8";
        assert!(fetch_http_sd(&client, &cfg).await.is_ok());

        let wrong = http_sd(&url, "nope", Duration::from_secs(60));
        let e = fetch_http_sd(&client, &wrong).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("http_sd {url}: server returned HTTP status 401: expected 200")
        );
        assert!(!e.to_string().contains("nope"));

        server.reply.lock().unwrap().1 = "application/jsonx";
        let e = fetch_http_sd(&client, &cfg).await.unwrap_err();
        assert!(matches!(e, DiscoveryError::ContentType { .. }), "{e}");

        // Bodies over the cap are refused while reading.
        {
            let mut r = server.reply.lock().unwrap();
            r.1 = "application/json";
            r.2 = format!("[{}]", " ".repeat(MAX_HTTP_SD_BYTES as usize));
        }
        let e = fetch_http_sd(&client, &cfg).await.unwrap_err();
        assert!(matches!(e, DiscoveryError::TooLarge { .. }), "{e}");

        let closed = http_sd("http://127.0.0.1:1/sd", "sd-token", Duration::from_secs(60));
        let e = fetch_http_sd(&client, &closed).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("http_sd http://127.0.0.1:1/sd: request failed: "),
            "{e}"
        );
    }
}
