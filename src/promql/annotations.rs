//! Warnings and infos a query returns next to its result (Prometheus's
//! "annotations"), with the exact texts Prometheus uses so API clients and
//! the conformance corpus see the same strings.
//!
//! Each annotation points at the expression that caused it; the position is
//! rendered as `(line:col)` against the query text. Identical annotations are
//! reported once.

use std::collections::HashSet;

use super::labels::{go_g, go_quote};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Level {
    Warning,
    Info,
}

/// Aggregated details of forced histogram monotonicity, merged over every
/// step and bucket set that needed it, as Prometheus reports them.
#[derive(Debug, Clone)]
struct Monotonicity {
    metric: String,
    pos: usize,
    min_bucket: f64,
    max_bucket: f64,
    max_diff: f64,
    samples: u64,
    min_t: i64,
    max_t: i64,
}

#[derive(Debug, Default)]
pub(crate) struct Annotations {
    items: Vec<(Level, String, usize)>,
    seen: HashSet<(Level, String, usize)>,
    monotonicity: Vec<Monotonicity>,
}

impl Annotations {
    fn add(&mut self, level: Level, msg: String, pos: usize) {
        let key = (level, msg, pos);
        if self.seen.insert(key.clone()) {
            self.items.push(key);
        }
    }

    pub fn warn(&mut self, msg: impl Into<String>, pos: usize) {
        self.add(Level::Warning, msg.into(), pos);
    }

    pub fn info(&mut self, msg: impl Into<String>, pos: usize) {
        self.add(Level::Info, msg.into(), pos);
    }

    pub fn invalid_quantile(&mut self, q: f64, pos: usize) {
        self.warn(
            format!("quantile value should be between 0 and 1, got {}", go_g(q)),
            pos,
        );
    }

    pub fn invalid_ratio(&mut self, r: f64, to: f64, pos: usize) {
        self.warn(
            format!(
                "ratio value should be between -1 and 1, got {}, capping to {}",
                go_g(r),
                go_g(to)
            ),
            pos,
        );
    }

    pub fn bad_bucket_label(&mut self, metric: &str, le: &str, pos: usize) {
        self.warn(
            with_metric(
                format!(
                    "bucket label \"le\" is missing or has a malformed value of {}",
                    go_quote(le)
                ),
                metric,
            ),
            pos,
        );
    }

    pub fn possible_non_counter(&mut self, metric: &str, pos: usize) {
        self.info(
            format!(
                "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {}",
                go_quote(metric)
            ),
            pos,
        );
    }

    pub fn sort_in_range_query(&mut self, pos: usize) {
        self.warn(
            "sort is ineffective for range queries since results are always ordered by labels",
            pos,
        );
    }

    /// `histogram_quantile` had to raise bucket counts to make them
    /// monotonic at time `t`: buckets from `min_bucket` to `max_bucket`, by
    /// at most `max_diff`.
    pub fn forced_monotonicity(
        &mut self,
        metric: &str,
        pos: usize,
        t: i64,
        min_bucket: f64,
        max_bucket: f64,
        max_diff: f64,
    ) {
        if let Some(m) = self
            .monotonicity
            .iter_mut()
            .find(|m| m.metric == metric && m.pos == pos)
        {
            m.min_bucket = m.min_bucket.min(min_bucket);
            m.max_bucket = m.max_bucket.max(max_bucket);
            m.max_diff = m.max_diff.max(max_diff);
            m.samples += 1;
            m.min_t = m.min_t.min(t);
            m.max_t = m.max_t.max(t);
            return;
        }
        self.monotonicity.push(Monotonicity {
            metric: metric.to_string(),
            pos,
            min_bucket,
            max_bucket,
            max_diff,
            samples: 1,
            min_t: t,
            max_t: t,
        });
    }

    /// Renders `(warnings, infos)` as Prometheus does, positions resolved
    /// against `query`.
    pub fn render(&self, query: &str) -> (Vec<String>, Vec<String>) {
        let mut warnings = Vec::new();
        let mut infos = Vec::new();
        let at = |pos: usize| {
            let (l, c) = super::position::line_col(query, pos);
            format!("({l}:{c})")
        };
        for (level, msg, pos) in &self.items {
            match level {
                Level::Warning => warnings.push(format!("PromQL warning: {msg} {}", at(*pos))),
                Level::Info => infos.push(format!("PromQL info: {msg} {}", at(*pos))),
            }
        }
        for m in &self.monotonicity {
            let base = with_metric(
                "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)".to_string(),
                &m.metric,
            );
            infos.push(format!(
                "PromQL info: {base}, from buckets {} to {}, with a max diff of {}, over {} samples from {} to {} {}",
                go_g(m.min_bucket),
                go_g(m.max_bucket),
                go_g(m.max_diff),
                m.samples,
                rfc3339(m.min_t),
                rfc3339(m.max_t),
                at(m.pos)
            ));
        }
        (warnings, infos)
    }
}

fn with_metric(msg: String, metric: &str) -> String {
    if metric.is_empty() {
        msg
    } else {
        format!("{msg} for metric name {}", go_quote(metric))
    }
}

fn rfc3339(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_positions_and_dedups() {
        let mut a = Annotations::default();
        a.sort_in_range_query(4);
        a.sort_in_range_query(4);
        a.possible_non_counter("foo", 0);
        let (w, i) = a.render("sum(sort(series))");
        assert_eq!(
            w,
            vec![
                "PromQL warning: sort is ineffective for range queries since results are always ordered by labels (1:5)"
            ]
        );
        assert_eq!(
            i,
            vec![
                "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"foo\" (1:1)"
            ]
        );
    }
}
