//! The first storage engine: everything in memory, nothing durable.
//!
//! A series index (label set -> id, plus postings `name -> value -> ids`)
//! under one `RwLock`, and the samples of each series under its own `Mutex`
//! so appends to different series do not contend with readers of the index.
//! Correct and simple; the compressed, durable engine replaces it behind the
//! same traits.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::{
    AppendError, Appender, CommitStats, HeadStats, HistogramSample, HistogramSeries, NameCount,
    Queryable, Series, SeriesRef, Storage, StorageError, TsdbHeadStats, TsdbStatus, top_n,
};
use crate::model::{CounterResetHint, FloatHistogram, Labels, MatchOp, Matcher, Sample, Timestamp};

struct MemSeries {
    labels: Labels,
    samples: Mutex<Vec<Sample>>,
    /// Native histogram samples, kept apart from the floats: only test data
    /// (rule unit tests, PromQL scripts) has them.
    histograms: Mutex<Vec<HistogramSample>>,
}

#[derive(Default)]
struct Index {
    by_labels: HashMap<Labels, SeriesRef>,
    series: Vec<Arc<MemSeries>>,
    /// label name -> label value -> sorted series ids.
    postings: BTreeMap<String, BTreeMap<String, Vec<SeriesRef>>>,
}

/// In-memory [`Storage`].
#[derive(Default)]
pub struct MemStorage {
    index: RwLock<Index>,
    appended: AtomicU64,
    out_of_order: AtomicU64,
    duplicates: AtomicU64,
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn get_or_create(&self, labels: &Labels) -> SeriesRef {
        if let Some(r) = read(&self.index).by_labels.get(labels) {
            return *r;
        }
        let mut idx = write(&self.index);
        if let Some(r) = idx.by_labels.get(labels) {
            return *r;
        }
        let r = idx.series.len() as SeriesRef;
        idx.series.push(Arc::new(MemSeries {
            labels: labels.clone(),
            samples: Mutex::new(Vec::new()),
            histograms: Mutex::new(Vec::new()),
        }));
        idx.by_labels.insert(labels.clone(), r);
        for l in labels {
            // Ids grow monotonically, so pushing keeps each list sorted.
            idx.postings
                .entry(l.name.clone())
                .or_default()
                .entry(l.value.clone())
                .or_default()
                .push(r);
        }
        r
    }

    /// Appends a native histogram sample to the series `labels`. The
    /// counter-reset hint is set as Prometheus's head reads it back: a
    /// gauge stays a gauge; the first histogram of a series, or one after
    /// a float sample, is `Unknown`; later ones are `CounterReset` or
    /// `NotCounterReset` against the previous histogram.
    pub fn append_histogram(
        &self,
        labels: &Labels,
        t: Timestamp,
        mut h: FloatHistogram,
    ) -> Result<(), AppendError> {
        let r = self.get_or_create(labels);
        let Some(s) = self.series_by_ref(r) else {
            return Err(AppendError::UnknownRef);
        };
        let last_float = lock(&s.samples).last().map(|x| x.t);
        let mut hs = lock(&s.histograms);
        let last = hs.last();
        let newest = last.map(|x| x.t).max(last_float);
        if newest.is_some_and(|n| t < n) {
            self.out_of_order.fetch_add(1, Ordering::Relaxed);
            return Err(AppendError::OutOfOrder);
        }
        if newest == Some(t) {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return Err(AppendError::Duplicate);
        }
        if h.counter_reset_hint != CounterResetHint::Gauge {
            h.counter_reset_hint = match last {
                Some(prev) if last_float.is_none_or(|f| f < prev.t) => {
                    if h.detect_reset(&prev.h) {
                        CounterResetHint::CounterReset
                    } else {
                        CounterResetHint::NotCounterReset
                    }
                }
                _ => CounterResetHint::Unknown,
            };
        }
        hs.push(HistogramSample { t, h: Arc::new(h) });
        self.appended.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn series_by_ref(&self, r: SeriesRef) -> Option<Arc<MemSeries>> {
        read(&self.index).series.get(r as usize).cloned()
    }

    /// Ids of series matching every matcher, sorted.
    fn matching(&self, idx: &Index, matchers: &[Matcher]) -> Vec<SeriesRef> {
        let mut candidates: Option<Vec<SeriesRef>> = None;
        // Matchers that cannot match the empty string narrow through postings;
        // the others (e.g. `a!="x"`, `a=~".*"`) are checked per series.
        for m in matchers.iter().filter(|m| !m.matches_empty()) {
            let ids = postings_for(idx, m);
            candidates = Some(match candidates {
                None => ids,
                Some(c) => intersect(&c, &ids),
            });
        }
        let ids = candidates.unwrap_or_else(|| (0..idx.series.len() as SeriesRef).collect());
        ids.into_iter()
            .filter(|&r| {
                let s = &idx.series[r as usize];
                matchers
                    .iter()
                    .all(|m| m.matches(s.labels.get_or_empty(&m.name)))
            })
            .collect()
    }

    fn selected(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<(Arc<MemSeries>, Vec<Sample>)> {
        let idx = read(&self.index);
        let ids = self.matching(&idx, matchers);
        let mut out: Vec<(Arc<MemSeries>, Vec<Sample>)> = ids
            .into_iter()
            .filter_map(|r| {
                let s = idx.series[r as usize].clone();
                let win = {
                    let samples = lock(&s.samples);
                    let lo = samples.partition_point(|x| x.t < mint);
                    let hi = samples.partition_point(|x| x.t <= maxt);
                    samples[lo..hi].to_vec()
                };
                (!win.is_empty()).then_some((s, win))
            })
            .collect();
        drop(idx);
        out.sort_by(|a, b| a.0.labels.cmp(&b.0.labels));
        out
    }
}

fn postings_for(idx: &Index, m: &Matcher) -> Vec<SeriesRef> {
    let Some(values) = idx.postings.get(&m.name) else {
        return Vec::new();
    };
    match m.op {
        MatchOp::Equal => values.get(&m.value).cloned().unwrap_or_default(),
        _ => {
            let mut ids: Vec<SeriesRef> = values
                .iter()
                .filter(|(v, _)| m.matches(v))
                .flat_map(|(_, ids)| ids.iter().copied())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        }
    }
}

fn intersect(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

// A poisoned lock means a panic while holding it; the data (plain vectors
// and maps, updated in single statements) is still consistent, so continue.
fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}
fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}
fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

struct MemAppender<'a> {
    store: &'a MemStorage,
    pending: Vec<(Arc<MemSeries>, Sample)>,
}

impl MemAppender<'_> {
    fn add(&mut self, s: Arc<MemSeries>, t: Timestamp, v: f64) -> Result<(), AppendError> {
        // The newest timestamp is either pending in this batch or committed.
        let last = self
            .pending
            .iter()
            .rev()
            .find(|(p, _)| Arc::ptr_eq(p, &s))
            .map(|(_, smp)| *smp)
            .or_else(|| lock(&s.samples).last().copied());
        if let Some(last) = last {
            if t < last.t {
                self.store.out_of_order.fetch_add(1, Ordering::Relaxed);
                return Err(AppendError::OutOfOrder);
            }
            if t == last.t {
                if last.v.to_bits() == v.to_bits() {
                    return Ok(());
                }
                self.store.duplicates.fetch_add(1, Ordering::Relaxed);
                return Err(AppendError::Duplicate);
            }
        }
        self.pending.push((s, Sample { t, v }));
        Ok(())
    }
}

impl Appender for MemAppender<'_> {
    fn append(&mut self, labels: &Labels, t: Timestamp, v: f64) -> Result<SeriesRef, AppendError> {
        let r = self.store.get_or_create(labels);
        let s = self.store.series_by_ref(r).ok_or(AppendError::UnknownRef)?;
        self.add(s, t, v)?;
        Ok(r)
    }

    fn append_ref(&mut self, series: SeriesRef, t: Timestamp, v: f64) -> Result<(), AppendError> {
        let s = self
            .store
            .series_by_ref(series)
            .ok_or(AppendError::UnknownRef)?;
        self.add(s, t, v)
    }

    fn commit(self: Box<Self>) -> Result<CommitStats, StorageError> {
        let n = self.pending.len() as u64;
        for (s, smp) in self.pending {
            let mut samples = lock(&s.samples);
            // Re-check order: another appender may have committed in between.
            if samples.last().is_none_or(|l| l.t < smp.t) {
                samples.push(smp);
            }
        }
        self.store.appended.fetch_add(n, Ordering::Relaxed);
        Ok(CommitStats { samples: n })
    }

    fn rollback(self: Box<Self>) {}
}

impl Queryable for MemStorage {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<Series>, StorageError> {
        Ok(self
            .selected(matchers, mint, maxt)
            .into_iter()
            .map(|(s, samples)| Series {
                labels: s.labels.clone(),
                samples: Box::new(samples.into_iter()),
            })
            .collect())
    }

    fn holds_histograms(&self) -> bool {
        true
    }

    fn select_histograms(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<HistogramSeries>, StorageError> {
        let idx = read(&self.index);
        let mut out: Vec<HistogramSeries> = self
            .matching(&idx, matchers)
            .into_iter()
            .filter_map(|r| {
                let s = &idx.series[r as usize];
                let hs = lock(&s.histograms);
                let lo = hs.partition_point(|x| x.t < mint);
                let hi = hs.partition_point(|x| x.t <= maxt);
                (lo < hi).then(|| HistogramSeries {
                    labels: s.labels.clone(),
                    samples: hs[lo..hi].to_vec(),
                })
            })
            .collect();
        drop(idx);
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    fn series(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<Labels>, StorageError> {
        Ok(self
            .selected(matchers, mint, maxt)
            .into_iter()
            .map(|(s, _)| s.labels.clone())
            .collect())
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<String>, StorageError> {
        let names: BTreeSet<String> = self
            .selected(matchers, mint, maxt)
            .iter()
            .flat_map(|(s, _)| s.labels.iter().map(|l| l.name.clone()))
            .collect();
        Ok(names.into_iter().collect())
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<String>, StorageError> {
        let values: BTreeSet<String> = self
            .selected(matchers, mint, maxt)
            .iter()
            .filter_map(|(s, _)| s.labels.get(name).map(str::to_string))
            .collect();
        Ok(values.into_iter().collect())
    }
}

impl Storage for MemStorage {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(MemAppender {
            store: self,
            pending: Vec::new(),
        })
    }

    fn stats(&self) -> HeadStats {
        let idx = read(&self.index);
        let (mut min, mut max) = (None::<Timestamp>, None::<Timestamp>);
        for s in &idx.series {
            let samples = lock(&s.samples);
            if let (Some(f), Some(l)) = (samples.first(), samples.last()) {
                min = Some(min.map_or(f.t, |m| m.min(f.t)));
                max = Some(max.map_or(l.t, |m| m.max(l.t)));
            }
        }
        HeadStats {
            series: idx.series.len() as u64,
            samples_appended: self.appended.load(Ordering::Relaxed),
            out_of_order_samples: self.out_of_order.load(Ordering::Relaxed),
            duplicate_samples: self.duplicates.load(Ordering::Relaxed),
            min_time: min,
            max_time: max,
            ..HeadStats::default()
        }
    }

    fn tsdb_status(&self, limit: usize) -> TsdbStatus {
        let st = self.stats();
        let idx = read(&self.index);
        let mut by_metric = Vec::new();
        let mut value_counts = Vec::new();
        let mut value_bytes = Vec::new();
        let mut pairs = Vec::new();
        let mut num_pairs = 0u64;
        for (name, values) in &idx.postings {
            for (value, ids) in values {
                num_pairs += 1;
                if name == crate::model::METRIC_NAME {
                    by_metric.push(NameCount {
                        name: value.clone(),
                        value: ids.len() as u64,
                    });
                }
                pairs.push(NameCount {
                    name: format!("{name}={value}"),
                    value: ids.len() as u64,
                });
            }
            value_counts.push(NameCount {
                name: name.clone(),
                value: values.len() as u64,
            });
            value_bytes.push(NameCount {
                name: name.clone(),
                value: values.keys().map(|v| v.len() as u64).sum(),
            });
        }
        TsdbStatus {
            head_stats: TsdbHeadStats {
                num_series: st.series,
                num_label_pairs: num_pairs,
                chunk_count: 0,
                min_time: st.min_time,
                max_time: st.max_time,
            },
            series_count_by_metric_name: top_n(by_metric, limit),
            label_value_count_by_label_name: top_n(value_counts, limit),
            memory_in_bytes_by_label_name: top_n(value_bytes, limit),
            series_count_by_label_value_pair: top_n(pairs, limit),
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::model::stale_nan;

    fn lbl(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn append_commit_select() {
        let st = MemStorage::new();
        let mut app = st.appender();
        let a = lbl(&[("__name__", "up"), ("job", "a")]);
        let b = lbl(&[("__name__", "up"), ("job", "b")]);
        let ra = app.append(&a, 1000, 1.0).unwrap();
        app.append(&b, 1000, 0.0).unwrap();
        app.append_ref(ra, 2000, stale_nan()).unwrap();
        // Not visible before commit.
        assert!(
            st.select(&[Matcher::equal("__name__", "up")], 0, 5000)
                .unwrap()
                .is_empty()
        );
        app.commit().unwrap();

        let got = st.select(&[Matcher::equal("job", "a")], 0, 5000).unwrap();
        assert_eq!(got.len(), 1);
        let samples: Vec<Sample> = got.into_iter().next().unwrap().samples.collect();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[1].v.to_bits(), stale_nan().to_bits());

        let m = Matcher::new(MatchOp::NotEqual, "job", "a").unwrap();
        let got = st
            .series(&[Matcher::equal("__name__", "up"), m], 0, 5000)
            .unwrap();
        assert_eq!(got, vec![b]);
        assert_eq!(
            st.label_values("job", &[], 0, 5000).unwrap(),
            vec!["a", "b"]
        );
        assert_eq!(
            st.label_names(&[], 0, 5000).unwrap(),
            vec!["__name__", "job"]
        );
    }

    #[test]
    fn out_of_order_and_duplicates_are_rejected_not_fatal() {
        let st = MemStorage::new();
        let a = lbl(&[("__name__", "x")]);
        let mut app = st.appender();
        app.append(&a, 2000, 1.0).unwrap();
        assert_eq!(app.append(&a, 1000, 1.0), Err(AppendError::OutOfOrder));
        assert_eq!(app.append(&a, 2000, 2.0), Err(AppendError::Duplicate));
        assert!(app.append(&a, 2000, 1.0).is_ok());
        app.append(&a, 3000, 3.0).unwrap();
        app.commit().unwrap();
        let s: Vec<Sample> = st.select(&[], 0, 9999).unwrap().remove(0).samples.collect();
        assert_eq!(s.iter().map(|x| x.t).collect::<Vec<_>>(), vec![2000, 3000]);
        assert_eq!(st.stats().out_of_order_samples, 1);
        assert_eq!(st.stats().duplicate_samples, 1);
    }

    #[test]
    fn rollback_discards() {
        let st = MemStorage::new();
        let mut app = st.appender();
        app.append(&lbl(&[("__name__", "x")]), 1, 1.0).unwrap();
        app.rollback();
        assert!(st.select(&[], 0, 10).unwrap().is_empty());
    }

    #[test]
    fn regex_and_empty_matchers() {
        let st = MemStorage::new();
        let mut app = st.appender();
        app.append(&lbl(&[("__name__", "x"), ("a", "1")]), 1, 1.0)
            .unwrap();
        app.append(&lbl(&[("__name__", "x")]), 1, 1.0).unwrap();
        app.commit().unwrap();
        let re = Matcher::new(MatchOp::Regex, "a", "1|").unwrap();
        assert_eq!(st.series(&[re], 0, 10).unwrap().len(), 2);
        assert_eq!(
            st.series(&[Matcher::equal("a", "")], 0, 10).unwrap().len(),
            1
        );
        let re = Matcher::new(MatchOp::Regex, "a", ".+").unwrap();
        assert_eq!(st.series(&[re], 0, 10).unwrap().len(), 1);
    }
}
