//! The serde mirror of `watchpost.yml`: exactly the keys a user may write,
//! with every value still as written and wrapped in [`Spanned`] so
//! validation can point at it.
//!
//! Nothing here is validated or defaulted; `validate` does that. Prometheus
//! keys that watchpost refuses are declared too (as `IgnoredAny`) so that
//! validation can report all of them at once with a helpful message instead
//! of stopping at serde's first "unknown field".

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_saphyr::{Location, Spanned};
use std::fmt;
use std::marker::PhantomData;

/// A value with its position.
pub(crate) type S<T> = Spanned<T>;

/// A YAML mapping whose keys keep their positions, in document order.
#[derive(Debug)]
pub(crate) struct SpannedMap<V>(pub Vec<(S<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for SpannedMap<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = SpannedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<S<String>>()? {
                    out.push((k, m.next_value::<V>()?));
                }
                Ok(SpannedMap(out))
            }
        }
        d.deserialize_map(V2(PhantomData))
    }
}

/// Declares a raw struct with `deny_unknown_fields`, plus fields for keys
/// that Prometheus has but watchpost refuses (listed after `refused`), and an
/// `refused_keys()` accessor returning the ones present with their positions.
/// With `@http` first, the struct also gets the keys of Prometheus's
/// `http_config` (inlined in scrape configs and http_sd configs, as
/// Prometheus inlines them) and an `http_client()` view of them.
macro_rules! raw_struct {
    (@http
        $(#[$meta:meta])*
        pub(crate) struct $name:ident { $($body:tt)* }
        refused { $($r:ident),* $(,)? }
    ) => {
        raw_struct! {
            $(#[$meta])*
            pub(crate) struct $name {
                $($body)*
                pub basic_auth: Option<S<RawBasicAuth>>,
                pub authorization: Option<S<RawAuthorization>>,
                pub bearer_token: Option<S<String>>,
                pub bearer_token_file: Option<S<String>>,
                pub tls_config: Option<S<RawTlsConfig>>,
                pub follow_redirects: Option<S<bool>>,
                pub enable_http2: Option<S<bool>>,
                pub proxy_url: Option<S<String>>,
            }
            refused { $($r,)* oauth2, http_headers, no_proxy, proxy_from_environment, proxy_connect_header }
        }
        impl $name {
            pub(crate) fn http_client(&self) -> RawHttpClient<'_> {
                RawHttpClient {
                    basic_auth: self.basic_auth.as_ref(),
                    authorization: self.authorization.as_ref(),
                    bearer_token: self.bearer_token.as_ref(),
                    bearer_token_file: self.bearer_token_file.as_ref(),
                    tls_config: self.tls_config.as_ref(),
                    follow_redirects: self.follow_redirects.as_ref(),
                    enable_http2: self.enable_http2.as_ref(),
                    proxy_url: self.proxy_url.as_ref(),
                }
            }
        }
    };
    (
        $(#[$meta:meta])*
        pub(crate) struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
        }
        refused { $($r:ident),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            $( pub $r: Option<S<IgnoredAny>>, )*
        }
        impl $name {
            /// Refused Prometheus keys present in this mapping.
            #[allow(dead_code)]
            pub(crate) fn refused_keys(&self) -> Vec<(&'static str, Location)> {
                #[allow(unused_mut)]
                let mut v = Vec::new();
                $( if let Some(s) = &self.$r { v.push((stringify!($r), s.referenced)); } )*
                v
            }
        }
    };
}

raw_struct! {
    /// The whole file.
    pub(crate) struct RawConfig {
        pub global: Option<S<RawGlobal>>,
        pub rule_files: Option<Vec<S<String>>>,
        pub scrape_config_files: Option<Vec<S<String>>>,
        pub scrape_configs: Option<Vec<S<RawScrapeConfig>>>,
        pub storage: Option<S<RawStorage>>,
        pub web: Option<S<RawWeb>>,
        pub alerting: Option<S<Value>>,
        pub remote_write: Option<S<Vec<Value>>>,
        pub notify: Option<S<super::notify::raw::RawNotify>>,
        pub notify_file: Option<S<String>>,
        pub push: Option<S<Option<super::push::RawPush>>>,
        pub heartbeats: Option<S<Vec<S<super::heartbeats::RawHeartbeat>>>>,
        pub reports: Option<S<Vec<S<super::reports::RawReport>>>>,
    }
    refused { runtime, tracing, remote_read, otlp }
}

raw_struct! {
    /// A file named by `scrape_config_files`.
    pub(crate) struct RawScrapeConfigFile {
        pub scrape_configs: Option<Vec<S<RawScrapeConfig>>>,
    }
    refused {}
}

raw_struct! {
    /// `global:`.
    pub(crate) struct RawGlobal {
        pub scrape_interval: Option<S<String>>,
        pub scrape_timeout: Option<S<String>>,
        pub evaluation_interval: Option<S<String>>,
        /// Honoured by rule evaluation (default 0s).
        pub rule_query_offset: Option<S<String>>,
        /// watchpost extension: `interval` (default) or `on_scrape`, the
        /// evaluation mode of rule groups that do not choose one.
        pub rule_evaluation: Option<S<String>>,
        /// A null value is an empty one, as in Prometheus (the label is dropped).
        pub external_labels: Option<SpannedMap<Option<S<String>>>>,
        /// Validated like Prometheus; accepted when OpenMetrics is preferred
        /// over Prometheus text, which is the order watchpost negotiates.
        pub scrape_protocols: Option<S<Vec<S<String>>>>,
        pub body_size_limit: Option<S<String>>,
        pub sample_limit: Option<u64>,
        pub target_limit: Option<u64>,
        pub label_limit: Option<u64>,
        pub label_name_length_limit: Option<u64>,
        pub label_value_length_limit: Option<u64>,
        /// Only 0 (keep every dropped target, Prometheus's default).
        pub keep_dropped_targets: Option<S<u64>>,
        /// Only `legacy`: watchpost validates names with the classic charset.
        pub metric_name_validation_scheme: Option<S<String>>,
        /// Only `underscores`, the escaping that goes with legacy names.
        pub metric_name_escaping_scheme: Option<S<String>>,
        /// Only false: watchpost stores no native histograms.
        pub scrape_native_histograms: Option<S<bool>>,
        /// Only false: watchpost stores no native histograms.
        pub convert_classic_histograms_to_nhcb: Option<S<bool>>,
        /// Parsed for its type only: it has no effect in watchpost (see `validate`).
        #[allow(dead_code)]
        pub always_scrape_classic_histograms: Option<bool>,
        /// Only false: watchpost writes the standard `scrape_*` series.
        pub extra_scrape_metrics: Option<S<bool>>,
    }
    refused { query_log_file, scrape_failure_log_file }
}

raw_struct! {
    @http
    /// One `scrape_configs` entry.
    pub(crate) struct RawScrapeConfig {
        pub job_name: Option<S<String>>,
        pub honor_labels: Option<bool>,
        pub honor_timestamps: Option<bool>,
        /// Only false (Prometheus's default).
        pub track_timestamps_staleness: Option<S<bool>>,
        pub params: Option<std::collections::BTreeMap<String, Vec<String>>>,
        pub scrape_interval: Option<S<String>>,
        pub scrape_timeout: Option<S<String>>,
        /// Validated like Prometheus; accepted when OpenMetrics is preferred
        /// over Prometheus text, which is the order watchpost negotiates.
        pub scrape_protocols: Option<S<Vec<S<String>>>>,
        /// Only `PrometheusText0.0.4` / `PrometheusText1.0.0`: how watchpost
        /// reads a response without a usable Content-Type.
        pub fallback_scrape_protocol: Option<S<String>>,
        /// Only false: watchpost stores no native histograms.
        pub scrape_native_histograms: Option<S<bool>>,
        /// Parsed for its type only: it has no effect in watchpost (see `validate`).
        #[allow(dead_code)]
        pub always_scrape_classic_histograms: Option<bool>,
        /// Parsed for its type only: it has no effect in watchpost (see `validate`).
        #[allow(dead_code)]
        pub scrape_classic_histograms: Option<bool>,
        /// Only false: watchpost stores no native histograms.
        pub convert_classic_histograms_to_nhcb: Option<S<bool>>,
        /// Only false: watchpost writes the standard `scrape_*` series.
        pub extra_scrape_metrics: Option<S<bool>>,
        pub metrics_path: Option<S<String>>,
        pub scheme: Option<S<String>>,
        /// Only true: watchpost always asks for gzip.
        pub enable_compression: Option<S<bool>>,
        pub body_size_limit: Option<S<String>>,
        pub sample_limit: Option<u64>,
        pub target_limit: Option<u64>,
        pub label_limit: Option<u64>,
        pub label_name_length_limit: Option<u64>,
        pub label_value_length_limit: Option<u64>,
        /// Parsed for its type only: it has no effect in watchpost (see `validate`).
        #[allow(dead_code)]
        pub native_histogram_bucket_limit: Option<u64>,
        /// Checked to be a number; no effect, as no native histograms are stored.
        pub native_histogram_min_bucket_factor: Option<f64>,
        /// Only 0 (keep every dropped target, Prometheus's default).
        pub keep_dropped_targets: Option<S<u64>>,
        /// Only `legacy`: watchpost validates names with the classic charset.
        pub metric_name_validation_scheme: Option<S<String>>,
        /// Only `underscores`, the escaping that goes with legacy names.
        pub metric_name_escaping_scheme: Option<S<String>>,
        pub static_configs: Option<Vec<S<RawStaticConfig>>>,
        pub file_sd_configs: Option<Vec<S<RawFileSdConfig>>>,
        pub http_sd_configs: Option<Vec<S<RawHttpSdConfig>>>,
        pub relabel_configs: Option<Vec<S<RawRelabelConfig>>>,
        pub metric_relabel_configs: Option<Vec<S<RawRelabelConfig>>>,
    }
    refused {
        scrape_failure_log_file,
        azure_sd_configs, consul_sd_configs, digitalocean_sd_configs, docker_sd_configs,
        dockerswarm_sd_configs, dns_sd_configs, ec2_sd_configs, ecs_sd_configs,
        eureka_sd_configs, gce_sd_configs, hetzner_sd_configs, ionos_sd_configs,
        kubernetes_sd_configs, kuma_sd_configs, lightsail_sd_configs, linode_sd_configs,
        marathon_sd_configs, nerve_sd_configs, nomad_sd_configs, openstack_sd_configs,
        ovhcloud_sd_configs, puppetdb_sd_configs, scaleway_sd_configs, serverset_sd_configs,
        stackit_sd_configs, triton_sd_configs, uyuni_sd_configs, vultr_sd_configs,
    }
}

/// The `http_config` keys of one section, borrowed.
#[derive(Clone, Copy)]
pub(crate) struct RawHttpClient<'a> {
    pub basic_auth: Option<&'a S<RawBasicAuth>>,
    pub authorization: Option<&'a S<RawAuthorization>>,
    pub bearer_token: Option<&'a S<String>>,
    pub bearer_token_file: Option<&'a S<String>>,
    pub tls_config: Option<&'a S<RawTlsConfig>>,
    pub follow_redirects: Option<&'a S<bool>>,
    pub enable_http2: Option<&'a S<bool>>,
    pub proxy_url: Option<&'a S<String>>,
}

raw_struct! {
    /// `basic_auth:`.
    pub(crate) struct RawBasicAuth {
        pub username: Option<String>,
        pub password: Option<S<String>>,
        pub password_file: Option<S<String>>,
    }
    refused { username_file, username_ref, password_ref }
}

raw_struct! {
    /// `authorization:`.
    pub(crate) struct RawAuthorization {
        #[serde(rename = "type")]
        pub kind: Option<S<String>>,
        pub credentials: Option<S<String>>,
        pub credentials_file: Option<S<String>>,
    }
    refused { credentials_ref }
}

raw_struct! {
    /// `tls_config:` (client side).
    pub(crate) struct RawTlsConfig {
        pub ca_file: Option<S<String>>,
        pub cert_file: Option<S<String>>,
        pub key_file: Option<S<String>>,
        pub server_name: Option<String>,
        pub insecure_skip_verify: Option<bool>,
        pub min_version: Option<S<String>>,
        pub max_version: Option<S<String>>,
    }
    refused { ca, cert, key, ca_ref, cert_ref, key_ref }
}

raw_struct! {
    /// `static_configs` entry.
    pub(crate) struct RawStaticConfig {
        pub targets: Option<Vec<S<String>>>,
        /// A null value is an empty one, as in Prometheus (the label is dropped).
        pub labels: Option<SpannedMap<Option<S<String>>>>,
    }
    refused {}
}

raw_struct! {
    /// `file_sd_configs` entry.
    pub(crate) struct RawFileSdConfig {
        pub files: Option<Vec<S<String>>>,
        pub refresh_interval: Option<S<String>>,
    }
    refused {}
}

raw_struct! {
    @http
    /// `http_sd_configs` entry.
    pub(crate) struct RawHttpSdConfig {
        pub url: Option<S<String>>,
        pub refresh_interval: Option<S<String>>,
    }
    refused {}
}

raw_struct! {
    /// `relabel_configs` / `metric_relabel_configs` entry.
    pub(crate) struct RawRelabelConfig {
        pub source_labels: Option<S<Vec<S<String>>>>,
        pub separator: Option<S<String>>,
        pub regex: Option<S<String>>,
        pub modulus: Option<S<u64>>,
        pub target_label: Option<S<String>>,
        pub replacement: Option<S<String>>,
        pub action: Option<S<String>>,
    }
    refused {}
}

raw_struct! {
    /// `storage:`.
    pub(crate) struct RawStorage {
        pub retention: Option<S<RawRetention>>,
        pub tsdb: Option<S<RawTsdb>>,
        /// Parsed for its type only: it has no effect in watchpost (see `validate`).
        #[allow(dead_code)]
        pub exemplars: Option<S<RawExemplars>>,
    }
    refused {}
}

raw_struct! {
    /// `storage.retention:` and `storage.tsdb.retention:`.
    pub(crate) struct RawRetention {
        pub time: Option<S<String>>,
        pub size: Option<S<String>>,
    }
    refused {}
}

raw_struct! {
    /// `storage.tsdb:` (Prometheus's section).
    pub(crate) struct RawTsdb {
        pub out_of_order_time_window: Option<S<String>>,
        pub retention: Option<S<RawRetention>>,
    }
    refused {}
}

raw_struct! {
    /// `storage.exemplars:` (Prometheus's section).
    pub(crate) struct RawExemplars {
        /// Parsed for its type only: it has no effect in watchpost (see `validate`).
        #[allow(dead_code)]
        pub max_exemplars: Option<i64>,
    }
    refused {}
}

raw_struct! {
    /// `web:`.
    pub(crate) struct RawWeb {
        pub external_url: Option<S<String>>,
        pub page_title: Option<String>,
    }
    refused {}
}

raw_struct! {
    @http
    /// `http_config:` as Alertmanager nests it in `global` and in each
    /// receiver integration (same keys as Prometheus's HTTP client config).
    pub(crate) struct RawHttpConfig {}
    refused {}
}
