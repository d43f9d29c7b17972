//! Scrape targets: from a discovered target (and its group) to the URL,
//! labels and timing one scrape loop runs with.
//!
//! Sits between discovery and the scrape loops. It follows Prometheus's
//! `PopulateLabels`: the job's defaults become `__`-labels, `relabel_configs`
//! may rewrite any of them, and what survives decides where and how often
//! the target is scraped and which labels its series carry.
//!
//! This module is pure: no I/O, no logging, no clock. Errors are returned
//! per target so one bad target never hides the others.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::discovery::TargetGroup;
use super::relabel;
use crate::config::ScrapeConfig;
use crate::model::{Labels, fnv1a64, format_duration, parse_duration};

pub const ADDRESS_LABEL: &str = "__address__";
pub const SCHEME_LABEL: &str = "__scheme__";
pub const METRICS_PATH_LABEL: &str = "__metrics_path__";
pub const SCRAPE_INTERVAL_LABEL: &str = "__scrape_interval__";
pub const SCRAPE_TIMEOUT_LABEL: &str = "__scrape_timeout__";
pub const PARAM_LABEL_PREFIX: &str = "__param_";
pub const RESERVED_LABEL_PREFIX: &str = "__";
pub const META_LABEL_PREFIX: &str = "__meta_";
pub const JOB_LABEL: &str = "job";
pub const INSTANCE_LABEL: &str = "instance";

/// One target a scrape loop runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub job: String,
    /// The labels every scraped series gets: relabeled, with every `__`
    /// label removed and `instance` defaulted to the address.
    pub labels: Labels,
    /// The labels before relabeling, including `__meta_*` and the job's
    /// defaults (`__scheme__`, `__metrics_path__`, ...), as Prometheus shows
    /// them under "discovered labels".
    pub discovered_labels: Labels,
    /// The full scrape URL, query included.
    pub url: String,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
}

impl Target {
    /// Stable identity across reloads: two targets with the same key are the
    /// same target, so its scrape loop (and its series' staleness tracking)
    /// can continue. Interval and timeout are not part of the identity; a
    /// caller that keeps a loop must compare them itself.
    pub fn key(&self) -> u64 {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(2 + self.labels.len() * 2);
        parts.push(self.job.as_bytes());
        parts.push(self.url.as_bytes());
        for l in &self.labels {
            parts.push(l.name.as_bytes());
            parts.push(l.value.as_bytes());
        }
        fnv1a64(&parts)
    }

    /// The target's address (the `instance` label unless relabeling set it).
    pub fn instance(&self) -> &str {
        self.labels.get_or_empty(INSTANCE_LABEL)
    }
}

/// Why a discovered target cannot be scraped. `target` is the discovered
/// `__address__` (or the discovered label set when it had none).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(
        "scrape job {job:?}: target {target}: no __address__ after relabeling: \
         keep or set __address__ in relabel_configs"
    )]
    NoAddress { job: String, target: String },
    #[error(
        "scrape job {job:?}: target {target}: __address__ {address:?} is not a valid host:port: \
         put the scheme in `scheme` and the path in `metrics_path`, not in the address"
    )]
    InvalidAddress {
        job: String,
        target: String,
        address: String,
    },
    #[error(
        "scrape job {job:?}: target {target}: __scheme__ {scheme:?} is not supported: \
         use \"http\" or \"https\""
    )]
    InvalidScheme {
        job: String,
        target: String,
        scheme: String,
    },
    #[error("scrape job {job:?}: target {target}: {label} {value:?} is invalid: {reason}")]
    InvalidDuration {
        job: String,
        target: String,
        label: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "scrape job {job:?}: target {target}: scrape timeout ({timeout}) is greater than \
         scrape interval ({interval}): lower __scrape_timeout__ or raise __scrape_interval__"
    )]
    TimeoutExceedsInterval {
        job: String,
        target: String,
        timeout: String,
        interval: String,
    },
    #[error("scrape job {job:?}: target {target}: scrape url {url:?} is invalid: {reason}")]
    InvalidUrl {
        job: String,
        target: String,
        url: String,
        reason: String,
    },
}

/// The labels a target is relabeled from: its group's and its own labels
/// plus the job's defaults (`job`, `__scheme__`, `__metrics_path__`,
/// `__scrape_interval__`, `__scrape_timeout__`, `__param_*`) where not set.
/// This is what the API shows as `discoveredLabels`.
pub fn discovered_labels(cfg: &ScrapeConfig, merged: &Labels) -> Labels {
    let mut b = merged.builder();
    let defaults = [
        (JOB_LABEL, cfg.job_name.clone()),
        (SCHEME_LABEL, cfg.scheme.as_str().to_string()),
        (METRICS_PATH_LABEL, cfg.metrics_path.clone()),
        (SCRAPE_INTERVAL_LABEL, format_duration(cfg.scrape_interval)),
        (SCRAPE_TIMEOUT_LABEL, format_duration(cfg.scrape_timeout)),
    ];
    for (name, value) in defaults {
        if !merged.contains(name) {
            b.set(name, value);
        }
    }
    for (name, values) in &cfg.params {
        let label = format!("{PARAM_LABEL_PREFIX}{name}");
        if let Some(first) = values.first()
            && !merged.contains(&label)
        {
            b.set(&label, first.clone());
        }
    }
    b.build()
}

/// Builds the scrape target for one discovered target: `group_labels` and
/// `target_labels` (target wins) plus the job's defaults, relabeled.
/// Returns `Ok(None)` when relabeling dropped the target.
pub fn populate(
    cfg: &ScrapeConfig,
    group_labels: &Labels,
    target_labels: &Labels,
) -> Result<Option<Target>, TargetError> {
    let merged = Labels::from_vec(
        group_labels
            .iter()
            .chain(target_labels.iter())
            .cloned()
            .collect(),
    );
    let discovered = discovered_labels(cfg, &merged);

    // Error messages name the target as the user wrote it in discovery.
    let target_name = || match merged.get(ADDRESS_LABEL) {
        Some(a) => a.to_string(),
        None => merged.to_string(),
    };
    let job = || cfg.job_name.clone();

    let Some(lset) = relabel::process(&discovered, &cfg.relabel_configs) else {
        return Ok(None);
    };

    let address = match lset.get(ADDRESS_LABEL) {
        Some(a) => a.to_string(),
        None => {
            return Err(TargetError::NoAddress {
                job: job(),
                target: target_name(),
            });
        }
    };
    // Prometheus rejects any "/" in the address: it catches both a scheme
    // ("http://host") and a path ("host/metrics") left in by discovery.
    if address.contains('/') {
        return Err(TargetError::InvalidAddress {
            job: job(),
            target: target_name(),
            address,
        });
    }
    let scheme = lset.get_or_empty(SCHEME_LABEL).to_string();
    if scheme != "http" && scheme != "https" {
        return Err(TargetError::InvalidScheme {
            job: job(),
            target: target_name(),
            scheme,
        });
    }

    let duration = |label: &'static str| -> Result<(Duration, String), TargetError> {
        let value = lset.get_or_empty(label).to_string();
        let invalid = |reason: String| TargetError::InvalidDuration {
            job: job(),
            target: target_name(),
            label,
            value: value.clone(),
            reason,
        };
        let d = parse_duration(&value).map_err(&invalid)?;
        if d.is_zero() {
            return Err(invalid("must be greater than 0s".to_string()));
        }
        Ok((d, value.clone()))
    };
    let (interval, interval_text) = duration(SCRAPE_INTERVAL_LABEL)?;
    let (timeout, timeout_text) = duration(SCRAPE_TIMEOUT_LABEL)?;
    if timeout > interval {
        return Err(TargetError::TimeoutExceedsInterval {
            job: job(),
            target: target_name(),
            timeout: timeout_text,
            interval: interval_text,
        });
    }

    // Configured params, with each `__param_<name>` label replacing the
    // first value of its parameter (further configured values stay).
    let mut params: BTreeMap<String, Vec<String>> = cfg.params.clone();
    for l in &lset {
        if let Some(name) = l.name.strip_prefix(PARAM_LABEL_PREFIX) {
            let values = params.entry(name.to_string()).or_default();
            match values.first_mut() {
                Some(first) => *first = l.value.clone(),
                None => values.push(l.value.clone()),
            }
        }
    }
    let url = build_url(
        &scheme,
        &address,
        lset.get_or_empty(METRICS_PATH_LABEL),
        &params,
    );
    if let Err(e) = reqwest::Url::parse(&url) {
        return Err(TargetError::InvalidUrl {
            job: job(),
            target: target_name(),
            url,
            reason: e.to_string(),
        });
    }

    let mut fb = lset.builder();
    fb.retain(|l| !l.name.starts_with(RESERVED_LABEL_PREFIX));
    if fb.get(INSTANCE_LABEL).is_none() {
        fb.set(INSTANCE_LABEL, address);
    }

    Ok(Some(Target {
        job: cfg.job_name.clone(),
        labels: fb.into_labels(),
        discovered_labels: discovered,
        url,
        scrape_interval: interval,
        scrape_timeout: timeout,
    }))
}

/// Builds targets for every discovered target of `groups`. Dropped targets
/// are absent; targets that fail come back with their discovered labels
/// (group and target labels merged); of identical targets (same labels and
/// URL) only the first is kept.
pub fn targets_from_groups(cfg: &ScrapeConfig, groups: &[TargetGroup]) -> Resolved {
    let mut targets = Vec::new();
    let mut dropped = Vec::new();
    let mut failures = Vec::new();
    let mut seen: HashSet<(Labels, String)> = HashSet::new();
    for group in groups {
        for t in &group.targets {
            match populate(cfg, &group.labels, t) {
                Ok(Some(target)) => {
                    if seen.insert((target.labels.clone(), target.url.clone())) {
                        targets.push(target);
                    }
                }
                Ok(None) => {
                    let merged =
                        Labels::from_vec(group.labels.iter().chain(t.iter()).cloned().collect());
                    dropped.push(discovered_labels(cfg, &merged));
                }
                Err(e) => {
                    let merged =
                        Labels::from_vec(group.labels.iter().chain(t.iter()).cloned().collect());
                    failures.push((merged, e));
                }
            }
        }
    }
    Resolved {
        targets,
        dropped,
        failures,
    }
}

/// Discovery output resolved into scrape targets.
#[derive(Debug, Default)]
pub struct Resolved {
    /// Targets to scrape, deduplicated.
    pub targets: Vec<Target>,
    /// Discovered labels of targets relabeling dropped.
    pub dropped: Vec<Labels>,
    /// Targets that could not be built, with why.
    pub failures: Vec<(Labels, TargetError)>,
}

/// `scheme://address/path?query` as Go's `url.URL.String` writes it: the
/// path escaped as a path (only characters that cannot appear in one), the
/// query as `url.Values.Encode` (sorted keys, form encoding).
fn build_url(
    scheme: &str,
    address: &str,
    path: &str,
    params: &BTreeMap<String, Vec<String>>,
) -> String {
    let mut url = String::with_capacity(scheme.len() + address.len() + path.len() + 16);
    url.push_str(scheme);
    url.push_str("://");
    url.push_str(address);
    if !path.is_empty() && !path.starts_with('/') {
        url.push('/');
    }
    escape_path(path, &mut url);
    let mut first = true;
    for (name, values) in params {
        for v in values {
            url.push(if first { '?' } else { '&' });
            first = false;
            escape_query(name, &mut url);
            url.push('=');
            escape_query(v, &mut url);
        }
    }
    url
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_pct(b: u8, out: &mut String) {
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 15)]));
}

/// Go's `url.PathEscape` rules for a whole path: unreserved characters and
/// `$&+,/:;=@` stay, everything else is percent-encoded.
fn escape_path(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        match b {
            b'a'..=b'z'
            | b'A'..=b'Z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'$'
            | b'&'
            | b'+'
            | b','
            | b'/'
            | b':'
            | b';'
            | b'='
            | b'@' => out.push(char::from(b)),
            _ => push_pct(b, out),
        }
    }
}

/// Go's `url.QueryEscape`: unreserved characters stay, space becomes `+`,
/// everything else is percent-encoded.
fn escape_query(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => push_pct(b, out),
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::config::{HttpClientConfig, RelabelAction, RelabelConfig, Scheme, ScrapeLimits};
    use regex::Regex;

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

    /// A replace rule writing `replacement` into `target` unconditionally.
    fn set(target: &str, replacement: &str) -> RelabelConfig {
        RelabelConfig {
            source_labels: vec![],
            separator: ";".to_string(),
            regex: Regex::new("^(?s:(.*))$").unwrap(),
            regex_source: "(.*)".to_string(),
            modulus: 0,
            target_label: target.to_string(),
            replacement: replacement.to_string(),
            action: RelabelAction::Replace,
        }
    }

    fn ls(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn addr(a: &str) -> Labels {
        ls(&[("__address__", a)])
    }

    #[test]
    fn defaults() {
        let t = populate(&job(), &ls(&[("env", "prod")]), &addr("host:9100"))
            .unwrap()
            .unwrap();
        assert_eq!(t.job, "node");
        assert_eq!(t.url, "http://host:9100/metrics");
        assert_eq!(
            t.labels,
            ls(&[("env", "prod"), ("instance", "host:9100"), ("job", "node")])
        );
        assert_eq!(t.scrape_interval, Duration::from_secs(15));
        assert_eq!(t.scrape_timeout, Duration::from_secs(10));
        assert_eq!(
            t.discovered_labels,
            ls(&[
                ("__address__", "host:9100"),
                ("__metrics_path__", "/metrics"),
                ("__scheme__", "http"),
                ("__scrape_interval__", "15s"),
                ("__scrape_timeout__", "10s"),
                ("env", "prod"),
                ("job", "node"),
            ])
        );
    }

    #[test]
    fn target_labels_win_over_group_and_defaults() {
        let group = ls(&[("env", "prod"), ("team", "a")]);
        let target = ls(&[
            ("__address__", "h:1"),
            ("env", "dev"),
            ("job", "custom"),
            ("__scheme__", "https"),
        ]);
        let t = populate(&job(), &group, &target).unwrap().unwrap();
        assert_eq!(t.url, "https://h:1/metrics");
        assert_eq!(
            t.labels,
            ls(&[
                ("env", "dev"),
                ("instance", "h:1"),
                ("job", "custom"),
                ("team", "a")
            ])
        );
        // The Target still belongs to the configured job.
        assert_eq!(t.job, "node");
    }

    #[test]
    fn params() {
        let mut cfg = job();
        cfg.params
            .insert("module".into(), vec!["http_2xx".into(), "second".into()]);
        cfg.params.insert("a b".into(), vec!["x&y=z/é".into()]);
        let t = populate(&cfg, &Labels::empty(), &addr("h:1"))
            .unwrap()
            .unwrap();
        assert_eq!(
            t.url,
            "http://h:1/metrics?a+b=x%26y%3Dz%2F%C3%A9&module=http_2xx&module=second"
        );
        assert_eq!(t.discovered_labels.get("__param_module"), Some("http_2xx"));

        // A relabeled __param_ replaces the first configured value only, and a
        // new one adds a parameter.
        cfg.relabel_configs = vec![
            set("__param_module", "icmp"),
            set("__param_target", "example.com"),
        ];
        let t = populate(&cfg, &Labels::empty(), &addr("h:1"))
            .unwrap()
            .unwrap();
        assert_eq!(
            t.url,
            "http://h:1/metrics?a+b=x%26y%3Dz%2F%C3%A9&module=icmp&module=second&target=example.com"
        );
        assert!(!t.labels.iter().any(|l| l.name.starts_with("__")));

        // A discovered __param_ is not overwritten by the configured default.
        let t = populate(
            &job_with_module(),
            &ls(&[("__param_module", "tcp")]),
            &addr("h:1"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.url, "http://h:1/metrics?module=tcp");
    }

    fn job_with_module() -> ScrapeConfig {
        let mut cfg = job();
        cfg.params.insert("module".into(), vec!["http_2xx".into()]);
        cfg
    }

    #[test]
    fn relabeled_scheme_path_interval() {
        let mut cfg = job();
        cfg.relabel_configs = vec![
            set("__scheme__", "https"),
            set("__metrics_path__", "probe path?"),
            set("__scrape_interval__", "1m"),
            set("__scrape_timeout__", "30s"),
        ];
        let t = populate(&cfg, &Labels::empty(), &addr("h:1"))
            .unwrap()
            .unwrap();
        assert_eq!(t.url, "https://h:1/probe%20path%3F");
        assert_eq!(t.scrape_interval, Duration::from_secs(60));
        assert_eq!(t.scrape_timeout, Duration::from_secs(30));
        // Discovered labels are the ones before relabeling.
        assert_eq!(t.discovered_labels.get("__scheme__"), Some("http"));
    }

    #[test]
    fn instance_default_and_override() {
        let mut cfg = job();
        cfg.relabel_configs = vec![set("__address__", "other:2")];
        let t = populate(&cfg, &Labels::empty(), &addr("h:1"))
            .unwrap()
            .unwrap();
        assert_eq!(t.instance(), "other:2");
        assert_eq!(t.url, "http://other:2/metrics");

        cfg.relabel_configs = vec![set("instance", "my-host")];
        let t = populate(&cfg, &Labels::empty(), &addr("h:1"))
            .unwrap()
            .unwrap();
        assert_eq!(t.instance(), "my-host");
        assert_eq!(t.url, "http://h:1/metrics");
    }

    #[test]
    fn meta_and_reserved_labels_are_removed() {
        let mut cfg = job();
        let mut keep_meta = set("", "");
        keep_meta.action = RelabelAction::LabelMap;
        keep_meta.regex = Regex::new("^(?s:__meta_file_(.*))$").unwrap();
        keep_meta.replacement = "file_$1".into();
        cfg.relabel_configs = vec![keep_meta, set("__tmp_x", "y")];
        let group = ls(&[("__meta_file_path", "/etc/x.yml"), ("__meta_other", "z")]);
        let t = populate(&cfg, &group, &addr("h:1")).unwrap().unwrap();
        assert_eq!(
            t.labels,
            ls(&[
                ("file_path", "/etc/x.yml"),
                ("instance", "h:1"),
                ("job", "node")
            ])
        );
        assert_eq!(t.discovered_labels.get("__meta_other"), Some("z"));
    }

    #[test]
    fn dropped_target_is_none() {
        let mut cfg = job();
        let mut drop = set("", "");
        drop.source_labels = vec!["__address__".into()];
        drop.regex = Regex::new("^(?s:h:.*)$").unwrap();
        drop.action = RelabelAction::Drop;
        cfg.relabel_configs = vec![drop];
        assert_eq!(
            populate(&cfg, &Labels::empty(), &addr("h:1")).unwrap(),
            None
        );
        assert!(
            populate(&cfg, &Labels::empty(), &addr("g:1"))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn errors() {
        let mut cfg = job();
        cfg.relabel_configs = vec![set("__address__", "")];
        let e = populate(&cfg, &Labels::empty(), &addr("h:1")).unwrap_err();
        assert!(matches!(e, TargetError::NoAddress { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "scrape job \"node\": target h:1: no __address__ after relabeling: \
             keep or set __address__ in relabel_configs"
        );

        // No address discovered at all: the target is named by its labels.
        let e = populate(&job(), &Labels::empty(), &ls(&[("a", "b")])).unwrap_err();
        assert!(
            e.to_string().contains("target {a=\"b\"}: no __address__"),
            "{e}"
        );

        for bad in ["http://h:1", "h:1/metrics"] {
            let e = populate(&job(), &Labels::empty(), &addr(bad)).unwrap_err();
            assert!(
                matches!(e, TargetError::InvalidAddress { .. }),
                "{bad}: {e}"
            );
            assert!(e.to_string().contains(bad), "{e}");
        }

        let e = populate(&job(), &Labels::empty(), &addr("h :1")).unwrap_err();
        assert!(matches!(e, TargetError::InvalidUrl { .. }), "{e}");

        cfg.relabel_configs = vec![set("__scheme__", "ftp")];
        let e = populate(&cfg, &Labels::empty(), &addr("h:1")).unwrap_err();
        assert!(matches!(e, TargetError::InvalidScheme { .. }), "{e}");

        cfg.relabel_configs = vec![set("__scrape_interval__", "soon")];
        let e = populate(&cfg, &Labels::empty(), &addr("h:1")).unwrap_err();
        assert!(
            matches!(&e, TargetError::InvalidDuration { label, .. } if *label == "__scrape_interval__"),
            "{e}"
        );

        cfg.relabel_configs = vec![set("__scrape_timeout__", "0s")];
        let e = populate(&cfg, &Labels::empty(), &addr("h:1")).unwrap_err();
        assert!(
            matches!(&e, TargetError::InvalidDuration { label, .. } if *label == "__scrape_timeout__"),
            "{e}"
        );

        cfg.relabel_configs = vec![set("__scrape_timeout__", "20s")];
        let e = populate(&cfg, &Labels::empty(), &addr("h:1")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "scrape job \"node\": target h:1: scrape timeout (20s) is greater than \
             scrape interval (15s): lower __scrape_timeout__ or raise __scrape_interval__"
        );
    }

    #[test]
    fn groups_dedup_drop_and_fail() {
        let mut cfg = job();
        let mut drop = set("", "");
        drop.source_labels = vec!["__address__".into()];
        drop.regex = Regex::new("^(?s:dropme:.*)$").unwrap();
        drop.action = RelabelAction::Drop;
        cfg.relabel_configs = vec![drop];
        let groups = vec![
            TargetGroup {
                source: "static:0".into(),
                targets: vec![addr("a:1"), addr("dropme:1"), addr("a:1"), addr("b/x")],
                labels: ls(&[("g", "1")]),
            },
            TargetGroup {
                source: "static:1".into(),
                targets: vec![addr("a:1"), addr("c:1")],
                labels: ls(&[("g", "1")]),
            },
            TargetGroup {
                source: "static:2".into(),
                targets: vec![addr("a:1")],
                labels: ls(&[("g", "2")]),
            },
        ];
        let Resolved {
            targets, failures, ..
        } = targets_from_groups(&cfg, &groups);
        let urls: Vec<(&str, &str)> = targets
            .iter()
            .map(|t| (t.url.as_str(), t.labels.get_or_empty("g")))
            .collect();
        assert_eq!(
            urls,
            vec![
                ("http://a:1/metrics", "1"),
                ("http://c:1/metrics", "1"),
                ("http://a:1/metrics", "2"),
            ]
        );
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].0, ls(&[("__address__", "b/x"), ("g", "1")]));
        assert!(matches!(failures[0].1, TargetError::InvalidAddress { .. }));
    }

    #[test]
    fn key_is_stable_and_distinguishes() {
        let a = populate(&job(), &Labels::empty(), &addr("h:1"))
            .unwrap()
            .unwrap();
        let a2 = populate(&job(), &Labels::empty(), &addr("h:1"))
            .unwrap()
            .unwrap();
        let b = populate(&job(), &ls(&[("x", "y")]), &addr("h:1"))
            .unwrap()
            .unwrap();
        let c = populate(&job(), &Labels::empty(), &addr("h:2"))
            .unwrap()
            .unwrap();
        assert_eq!(a.key(), a2.key());
        assert_ne!(a.key(), b.key());
        assert_ne!(a.key(), c.key());
        let mut other_job = job();
        other_job.job_name = "other".into();
        let mut d = a.clone();
        d.job = other_job.job_name;
        assert_ne!(a.key(), d.key());
    }

    #[test]
    fn url_escaping_matches_go() {
        let mut out = String::new();
        escape_path("/a b/%/é/$&+,:;=@!*'()#?", &mut out);
        assert_eq!(out, "/a%20b/%25/%C3%A9/$&+,:;=@%21%2A%27%28%29%23%3F");
        let mut out = String::new();
        escape_query("a b+c/é~!*", &mut out);
        assert_eq!(out, "a+b%2Bc%2F%C3%A9~%21%2A");
        // Go adds the slash between host and a relative path.
        assert_eq!(
            build_url("http", "h:1", "metrics", &BTreeMap::new()),
            "http://h:1/metrics"
        );
        assert_eq!(build_url("http", "h:1", "", &BTreeMap::new()), "http://h:1");
    }
}
