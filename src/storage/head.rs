//! The head's series index: interned label symbols, the series table
//! sharded by reference, the label-set lookup and the inverted postings.
//!
//! Sits between the appenders (which find or create series here) and the
//! readers (which resolve matchers here). It owns series identity and
//! labels; the per-series sample state lives in [`MemSeries::inner`] and
//! is driven by `disk.rs`. It does no I/O.
//!
//! Locking: looking a series up by reference (the scrape hot path) takes
//! only the read lock of one of [`SHARDS`] shards, never the index lock.
//! A shard is a dense array rather than a hash map: references are handed
//! out in sequence, so the lookup is one load instead of a probe through
//! control bytes and buckets, which profiling showed as the largest
//! cache-miss cost of ingestion. Shards own runs of [`RUN`] consecutive
//! references, not every `SHARDS`-th one: a target's series have
//! neighbouring references, and a scrape that walks them then reads
//! neighbouring slots of one shard, which the CPU prefetches, instead of
//! one cold cache line per sample.
//! The index (symbols, label-set lookup, postings) sits under one `RwLock`
//! that is taken for writing only when a series is created or removed.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rustc_hash::{FxHashMap, FxHasher};

use super::SeriesRef;
use super::blocks::Pos;
use super::chunk::ChunkEncoder;
use crate::model::{Label, Labels, MatchOp, Matcher, Timestamp};

/// Number of series-table shards. A power of two; enough that scrape loops
/// on different cores rarely share one.
pub const SHARDS: usize = 1 << SHARD_BITS;
const SHARD_BITS: u32 = 8;

/// Consecutive references a shard owns in a row: 64 slots are 512 bytes,
/// enough for the hardware prefetcher to get ahead of a scrape.
pub const RUN: u64 = 1 << RUN_BITS;
const RUN_BITS: u32 = 6;

/// The shard of reference `r` and its key within the shard. Keys grow
/// with references, so a shard's table stays ordered by age.
#[inline]
pub(crate) fn locate(r: SeriesRef) -> (usize, u64) {
    let shard = ((r >> RUN_BITS) as usize) & (SHARDS - 1);
    let key = ((r >> (RUN_BITS + SHARD_BITS)) << RUN_BITS) | (r & (RUN - 1));
    (shard, key)
}

/// `last_t` of a series removed from the index: appenders that still hold
/// it answer `UnknownRef`, and commits drop its samples.
pub const REMOVED: Timestamp = i64::MAX;

/// No sample yet.
pub const NO_SAMPLE: Timestamp = i64::MIN;

pub type Sym = u32;

pub fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // A poisoned lock means a panic while holding it; every update here is
    // completed before anything can panic, so the data is consistent.
    l.read().unwrap_or_else(|e| e.into_inner())
}
pub fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}
pub fn lock<T>(l: &Mutex<T>) -> MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

/// Interned strings with reference counts, so names and values shared by
/// many series are stored once and freed when the last series goes.
#[derive(Default)]
pub struct Symbols {
    map: FxHashMap<Arc<str>, Sym>,
    strs: Vec<(Option<Arc<str>>, u32)>,
    free: Vec<Sym>,
}

impl Symbols {
    pub fn intern(&mut self, s: &str) -> Sym {
        if let Some(&id) = self.map.get(s) {
            self.strs[id as usize].1 += 1;
            return id;
        }
        let a: Arc<str> = Arc::from(s);
        let id = match self.free.pop() {
            Some(id) => {
                self.strs[id as usize] = (Some(a.clone()), 1);
                id
            }
            None => {
                self.strs.push((Some(a.clone()), 1));
                (self.strs.len() - 1) as Sym
            }
        };
        self.map.insert(a, id);
        id
    }

    pub fn release(&mut self, id: Sym) {
        let Some(slot) = self.strs.get_mut(id as usize) else {
            return;
        };
        slot.1 = slot.1.saturating_sub(1);
        if slot.1 == 0
            && let Some(s) = slot.0.take()
        {
            self.map.remove(&s);
            self.free.push(id);
        }
    }

    pub fn get(&self, id: Sym) -> &str {
        self.strs
            .get(id as usize)
            .and_then(|(s, _)| s.as_deref())
            .unwrap_or("")
    }

    pub fn lookup(&self, s: &str) -> Option<Sym> {
        self.map.get(s).copied()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

/// The sample state of one series, under the series mutex.
pub struct SeriesInner {
    /// The open chunk; empty right after a cut.
    pub open: ChunkEncoder,
    /// Raw bits of the newest committed value (the duplicate check needs it
    /// after the open chunk was cut).
    pub last_v: u64,
    /// Newest chunk position per open block (block start, position), in
    /// block order. Finalized blocks keep these in their index instead.
    pub chains: Vec<(Timestamp, Pos)>,
}

impl SeriesInner {
    pub fn chain(&self, block: Timestamp) -> Option<Pos> {
        self.chains
            .iter()
            .find(|(b, _)| *b == block)
            .map(|(_, p)| *p)
    }

    pub fn set_chain(&mut self, block: Timestamp, pos: Pos) {
        match self.chains.iter_mut().find(|(b, _)| *b == block) {
            Some(e) => e.1 = pos,
            None => {
                // Exact growth: a series usually has one or two open
                // blocks, and `Vec`'s default of four entries would cost
                // 32 bytes per series for nothing.
                self.chains.reserve_exact(1);
                self.chains.push((block, pos));
                self.chains.sort_unstable_by_key(|(b, _)| *b);
            }
        }
    }

    pub fn take_chain(&mut self, block: Timestamp) -> Option<Pos> {
        let i = self.chains.iter().position(|(b, _)| *b == block)?;
        let (_, p) = self.chains.remove(i);
        self.chains.shrink_to_fit();
        Some(p)
    }
}

/// One series in the head.
pub struct MemSeries {
    pub r: SeriesRef,
    /// Interned `[name, value, name, value, ...]`, sorted by name.
    pub labels: Box<[Sym]>,
    /// Newest committed timestamp ([`NO_SAMPLE`], [`REMOVED`]), readable
    /// without the mutex so the append-time order check takes no lock.
    pub last_t: AtomicI64,
    /// `appender id << 32 | index in its pending list` of the newest
    /// uncommitted sample, so a second sample for the same series in one
    /// batch is checked against the first without any map lookup.
    pub pend: AtomicU64,
    pub pend_t: AtomicI64,
    pub inner: Mutex<SeriesInner>,
}

impl MemSeries {
    /// Asks the CPU to start loading this series' first three cache lines
    /// (reference counts, the lock-free fields, the mutex and the open
    /// chunk's state). A scrape touches each of its series once per
    /// interval, long after the lines left the cache, so without this
    /// every sample waited on a few memory loads in turn; with it the
    /// loads of the next samples overlap the work on this one.
    #[inline(always)]
    pub fn prefetch(s: &Arc<MemSeries>) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // The counts sit just before the data `as_ptr` points at.
            let base = Arc::as_ptr(s).cast::<i8>().wrapping_sub(16);
            for line in 0..3 {
                // SAFETY: SSE is part of the x86_64 baseline, and a
                // prefetch never faults nor reads anything back, whatever
                // the address (the third line may end past the series).
                unsafe { _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(line * 64)) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = s;
    }

    pub fn new(r: SeriesRef, labels: Box<[Sym]>) -> Self {
        MemSeries {
            r,
            labels,
            last_t: AtomicI64::new(NO_SAMPLE),
            pend: AtomicU64::new(u64::MAX),
            pend_t: AtomicI64::new(NO_SAMPLE),
            inner: Mutex::new(SeriesInner {
                open: ChunkEncoder::new(),
                last_v: 0,
                chains: Vec::new(),
            }),
        }
    }

    pub fn is_removed(&self) -> bool {
        self.last_t.load(Ordering::Acquire) == REMOVED
    }

    /// The label value of symbol `name`, if the series has it.
    fn value_of(&self, name: Sym) -> Option<Sym> {
        self.labels
            .chunks_exact(2)
            .find(|p| p[0] == name)
            .map(|p| p[1])
    }
}

/// Hash of a label set for the lookup table (in-memory only, so any fast
/// hash does; collisions are resolved by comparing labels).
pub fn labels_hash(labels: &Labels) -> u64 {
    let mut h = FxHasher::default();
    for l in labels {
        l.name.hash(&mut h);
        l.value.hash(&mut h);
    }
    h.finish()
}

/// Symbols, label-set lookup and postings.
#[derive(Default)]
pub struct Index {
    pub symbols: Symbols,
    by_hash: FxHashMap<u64, Arc<MemSeries>>,
    collisions: FxHashMap<u64, Vec<Arc<MemSeries>>>,
    /// name -> value -> ascending series refs.
    pub postings: FxHashMap<Sym, FxHashMap<Sym, Vec<SeriesRef>>>,
    pub series: usize,
}

impl Index {
    fn same_labels(&self, s: &MemSeries, labels: &Labels) -> bool {
        s.labels.len() == labels.len() * 2
            && s.labels
                .chunks_exact(2)
                .zip(labels)
                .all(|(p, l)| self.symbols.get(p[0]) == l.name && self.symbols.get(p[1]) == l.value)
    }

    pub fn find(&self, hash: u64, labels: &Labels) -> Option<Arc<MemSeries>> {
        if let Some(s) = self.by_hash.get(&hash) {
            if self.same_labels(s, labels) {
                return Some(s.clone());
            }
            return self
                .collisions
                .get(&hash)?
                .iter()
                .find(|s| self.same_labels(s, labels))
                .cloned();
        }
        None
    }

    /// Orders two interned label sets as their [`Labels`] would order:
    /// pairwise by name then value, a prefix first.
    pub fn cmp_labels(&self, a: &[Sym], b: &[Sym]) -> std::cmp::Ordering {
        for (x, y) in a.iter().zip(b) {
            if x != y {
                let o = self.symbols.get(*x).cmp(self.symbols.get(*y));
                if o.is_ne() {
                    return o;
                }
            }
        }
        a.len().cmp(&b.len())
    }

    pub fn labels_of(&self, s: &MemSeries) -> Labels {
        // Stored labels are already sorted, unique and non-empty.
        Labels::from_vec(
            s.labels
                .chunks_exact(2)
                .map(|p| Label::new(self.symbols.get(p[0]), self.symbols.get(p[1])))
                .collect(),
        )
    }

    /// Interns `labels` for a new series.
    pub fn intern(&mut self, labels: &Labels) -> Box<[Sym]> {
        let mut syms = Vec::with_capacity(labels.len() * 2);
        for l in labels {
            syms.push(self.symbols.intern(&l.name));
            syms.push(self.symbols.intern(&l.value));
        }
        syms.into_boxed_slice()
    }

    /// Adds a created series to the lookup table and postings.
    pub fn insert(&mut self, hash: u64, s: &Arc<MemSeries>) {
        if let std::collections::hash_map::Entry::Vacant(e) = self.by_hash.entry(hash) {
            e.insert(s.clone());
        } else {
            self.collisions.entry(hash).or_default().push(s.clone());
        }
        for p in s.labels.chunks_exact(2) {
            let list = self
                .postings
                .entry(p[0])
                .or_default()
                .entry(p[1])
                .or_default();
            // References are allocated in increasing order, so this is a
            // push except during replay of an unsorted checkpoint.
            match list.last() {
                Some(&last) if last > s.r => {
                    let at = list.partition_point(|&x| x < s.r);
                    list.insert(at, s.r);
                }
                _ => list.push(s.r),
            }
        }
        self.series += 1;
    }

    /// Removes a series from lookup, postings and symbols.
    pub fn remove(&mut self, hash: u64, s: &MemSeries) {
        let primary = self.by_hash.get(&hash).is_some_and(|p| p.r == s.r);
        if primary {
            self.by_hash.remove(&hash);
            if let Some(list) = self.collisions.get_mut(&hash) {
                if let Some(next) = list.pop() {
                    self.by_hash.insert(hash, next);
                }
                if list.is_empty() {
                    self.collisions.remove(&hash);
                }
            }
        } else if let Some(list) = self.collisions.get_mut(&hash) {
            list.retain(|x| x.r != s.r);
            if list.is_empty() {
                self.collisions.remove(&hash);
            }
        }
        for p in s.labels.chunks_exact(2) {
            if let Some(values) = self.postings.get_mut(&p[0]) {
                if let Some(list) = values.get_mut(&p[1]) {
                    if let Ok(i) = list.binary_search(&s.r) {
                        list.remove(i);
                    }
                    if list.is_empty() {
                        values.remove(&p[1]);
                    }
                }
                if values.is_empty() {
                    self.postings.remove(&p[0]);
                }
            }
            self.symbols.release(p[0]);
            self.symbols.release(p[1]);
        }
        self.series = self.series.saturating_sub(1);
    }

    /// Refs whose value for `name` satisfies `m`, via postings. Only for
    /// matchers that do not match the empty string, which therefore select
    /// only series that have the label.
    fn postings_for(&self, m: &Matcher) -> Vec<SeriesRef> {
        let Some(name) = self.symbols.lookup(&m.name) else {
            return Vec::new();
        };
        let Some(values) = self.postings.get(&name) else {
            return Vec::new();
        };
        if m.op == MatchOp::Equal {
            return self
                .symbols
                .lookup(&m.value)
                .and_then(|v| values.get(&v))
                .cloned()
                .unwrap_or_default();
        }
        let lists: Vec<&Vec<SeriesRef>> = values
            .iter()
            .filter(|(v, _)| m.matches(self.symbols.get(**v)))
            .map(|(_, l)| l)
            .collect();
        merge(&lists)
    }

    /// Whether `s` satisfies `m`, comparing symbols where possible.
    fn matches(&self, s: &MemSeries, m: &Matcher) -> bool {
        let v = self
            .symbols
            .lookup(&m.name)
            .and_then(|n| s.value_of(n))
            .map_or("", |v| self.symbols.get(v));
        m.matches(v)
    }
}

/// Union of sorted lists.
fn merge(lists: &[&Vec<SeriesRef>]) -> Vec<SeriesRef> {
    match lists {
        [] => Vec::new(),
        [one] => (*one).clone(),
        _ => {
            let mut out: Vec<SeriesRef> = lists.iter().flat_map(|l| l.iter().copied()).collect();
            out.sort_unstable();
            out.dedup();
            out
        }
    }
}

/// Intersection of sorted lists.
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

type Shard = RwLock<ShardTable>;

/// The series of one shard, in reference order. Slot `i` holds the
/// reference whose key ([`locate`]) is `base + i`. Removed series leave `None`; leading
/// holes are trimmed, and since churn removes the oldest series first the
/// table stays about as long as the live series of the shard.
#[derive(Default)]
pub struct ShardTable {
    base: u64,
    slots: std::collections::VecDeque<Option<Arc<MemSeries>>>,
}

impl ShardTable {
    #[inline]
    pub(crate) fn get(&self, k: u64) -> Option<&Arc<MemSeries>> {
        let i = k.checked_sub(self.base)?;
        self.slots.get(i as usize)?.as_ref()
    }

    fn insert(&mut self, k: u64, s: Arc<MemSeries>) {
        if self.slots.is_empty() {
            self.base = k;
        }
        if k < self.base {
            // Only replay can create an older reference than the oldest
            // live one; grow the front.
            for _ in k..self.base {
                self.slots.push_front(None);
            }
            self.base = k;
        }
        let i = (k - self.base) as usize;
        if i >= self.slots.len() {
            self.slots.resize(i + 1, None);
        }
        self.slots[i] = Some(s);
    }

    fn remove(&mut self, k: u64) {
        if let Some(i) = k.checked_sub(self.base)
            && let Some(slot) = self.slots.get_mut(i as usize)
        {
            *slot = None;
        }
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        while matches!(self.slots.back(), Some(None)) {
            self.slots.pop_back();
        }
    }

    fn shrink(&mut self) {
        if self.slots.capacity() > 64 && self.slots.len() < self.slots.capacity() / 4 {
            self.slots.shrink_to_fit();
        }
    }

    fn values(&self) -> impl Iterator<Item = &Arc<MemSeries>> {
        self.slots.iter().flatten()
    }
}

/// The series table and index.
pub struct Head {
    shards: Box<[Shard]>,
    pub index: RwLock<Index>,
    pub next_ref: AtomicU64,
}

impl Default for Head {
    fn default() -> Self {
        Head {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            index: RwLock::default(),
            next_ref: AtomicU64::new(1),
        }
    }
}

impl Head {
    fn shard(&self, r: SeriesRef) -> (&Shard, u64) {
        let (i, key) = locate(r);
        (&self.shards[i], key)
    }

    /// Shard `i` ([`locate`]) read-locked, for looking up a run of
    /// references with one lock. The caller must not wait for any other
    /// lock while holding it.
    #[inline]
    pub(crate) fn read_shard(&self, i: usize) -> RwLockReadGuard<'_, ShardTable> {
        read(&self.shards[i])
    }

    /// The series with reference `r`: the append hot path.
    #[inline]
    pub fn get(&self, r: SeriesRef) -> Option<Arc<MemSeries>> {
        let (shard, key) = self.shard(r);
        read(shard).get(key).cloned()
    }

    /// Finds the series with these labels or creates it with the next
    /// reference (or with `want` during replay). `on_create` runs under the
    /// index write lock, so whatever it logs precedes any use of the series.
    pub fn get_or_create(
        &self,
        labels: &Labels,
        want: Option<SeriesRef>,
        on_create: impl FnOnce(&MemSeries),
    ) -> (Arc<MemSeries>, bool) {
        let hash = labels_hash(labels);
        if let Some(s) = read(&self.index).find(hash, labels) {
            return (s, false);
        }
        let mut idx = write(&self.index);
        if let Some(s) = idx.find(hash, labels) {
            return (s, false);
        }
        let r = match want {
            Some(r) => {
                self.next_ref.fetch_max(r + 1, Ordering::Relaxed);
                r
            }
            None => self.next_ref.fetch_add(1, Ordering::Relaxed),
        };
        let syms = idx.intern(labels);
        let s = Arc::new(MemSeries::new(r, syms));
        idx.insert(hash, &s);
        let (shard, key) = self.shard(r);
        write(shard).insert(key, s.clone());
        on_create(&s);
        (s, true)
    }

    /// Removes series from every structure. Callers mark them
    /// [`REMOVED`] first.
    pub fn remove(&self, gone: &[Arc<MemSeries>]) {
        if gone.is_empty() {
            return;
        }
        let mut idx = write(&self.index);
        for s in gone {
            let labels = idx.labels_of(s);
            idx.remove(labels_hash(&labels), s);
            let (shard, key) = self.shard(s.r);
            write(shard).remove(key);
        }
        for sh in self.shards.iter() {
            write(sh).shrink();
        }
    }

    /// Every series, in no particular order.
    pub fn all(&self) -> Vec<Arc<MemSeries>> {
        let mut out = Vec::new();
        for sh in self.shards.iter() {
            out.extend(read(sh).values().cloned());
        }
        out
    }

    /// Calls `f` for every series, one shard lock at a time.
    pub fn for_each(&self, mut f: impl FnMut(&Arc<MemSeries>)) {
        for sh in self.shards.iter() {
            let list: Vec<Arc<MemSeries>> = read(sh).values().cloned().collect();
            for s in &list {
                f(s);
            }
        }
    }

    pub fn len(&self) -> usize {
        read(&self.index).series
    }

    /// Series matching every matcher, with their labels, sorted by labels.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<(Arc<MemSeries>, Labels)> {
        let idx = read(&self.index);
        let mut candidates: Option<Vec<SeriesRef>> = None;
        // Matchers that cannot match the empty string narrow through
        // postings (regexes run over one label's values, not over series);
        // the others (`a!="x"`, `a=~".*"`, `a=""`) are checked per series.
        let mut narrowing: Vec<&Matcher> = matchers.iter().filter(|m| !m.matches_empty()).collect();
        // Cheapest first: equality lists are direct lookups.
        narrowing.sort_by_key(|m| m.op != MatchOp::Equal);
        for m in narrowing {
            let ids = idx.postings_for(m);
            candidates = Some(match candidates {
                None => ids,
                Some(c) => intersect(&c, &ids),
            });
            if candidates.as_ref().is_some_and(Vec::is_empty) {
                return Vec::new();
            }
        }
        let series: Vec<Arc<MemSeries>> = match candidates {
            Some(ids) => ids.into_iter().filter_map(|r| self.get(r)).collect(),
            None => self.all(),
        };
        let rest: Vec<&Matcher> = matchers.iter().filter(|m| m.matches_empty()).collect();
        let mut kept: Vec<Arc<MemSeries>> = series
            .into_iter()
            .filter(|s| rest.iter().all(|m| idx.matches(s, m)))
            .collect();
        // Sorted by labels, compared as interned symbols: equal ids are
        // equal strings, so only the first differing name or value costs a
        // string comparison (sorting 100k series by their label strings was
        // a sixth of a `sum(rate(...))` over them).
        kept.sort_by(|a, b| idx.cmp_labels(&a.labels, &b.labels));
        kept.into_iter()
            .map(|s| {
                let l = idx.labels_of(&s);
                (s, l)
            })
            .collect()
    }

    /// Label names present in the index (every series, no time bounds).
    pub fn all_label_names(&self) -> Vec<String> {
        let idx = read(&self.index);
        let names: BTreeSet<&str> = idx.postings.keys().map(|n| idx.symbols.get(*n)).collect();
        names.into_iter().map(str::to_string).collect()
    }

    /// Values of `name` in the index (every series, no time bounds).
    pub fn all_label_values(&self, name: &str) -> Vec<String> {
        let idx = read(&self.index);
        let Some(values) = idx.symbols.lookup(name).and_then(|n| idx.postings.get(&n)) else {
            return Vec::new();
        };
        let set: BTreeSet<&str> = values.keys().map(|v| idx.symbols.get(*v)).collect();
        set.into_iter().map(str::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_fit_a_176_byte_allocation() {
        // `Arc` adds two counters and malloc eight bytes of header: 152
        // bytes of series is the most that fits a 176-byte chunk, the next
        // size class up being 16 bytes per series more across the head.
        assert!(std::mem::size_of::<MemSeries>() <= 152);
    }

    #[test]
    fn references_map_to_runs_of_one_shard_in_order() {
        let mut seen = std::collections::HashSet::new();
        let mut last_key = vec![None::<u64>; SHARDS];
        for r in 0..(RUN * SHARDS as u64 * 3 + 17) {
            let (shard, key) = locate(r);
            assert!(seen.insert((shard, key)), "ref {r} collides");
            // Keys grow with references within a shard, so trimming the
            // oldest slots keeps working.
            if let Some(prev) = last_key[shard] {
                assert!(key > prev, "ref {r}: key {key} after {prev}");
            }
            last_key[shard] = Some(key);
            // Neighbouring references share a shard and neighbouring slots.
            if r % RUN != 0 {
                let (s0, k0) = locate(r - 1);
                assert_eq!((s0, k0 + 1), (shard, key), "ref {r}");
            }
        }
    }

    fn lbl(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn create_find_select_remove() {
        let h = Head::default();
        let a = lbl(&[("__name__", "up"), ("job", "a")]);
        let b = lbl(&[("__name__", "up"), ("job", "b"), ("x", "1")]);
        let (sa, created) = h.get_or_create(&a, None, |_| {});
        assert!(created);
        let (sa2, created) = h.get_or_create(&a, None, |_| panic!("exists"));
        assert!(!created && Arc::ptr_eq(&sa, &sa2));
        let (sb, _) = h.get_or_create(&b, None, |_| {});
        assert!(h.get(sa.r).is_some());

        let re = Matcher::new(MatchOp::Regex, "job", "a|b").unwrap();
        assert_eq!(h.select(&[re]).len(), 2);
        let ne = Matcher::new(MatchOp::NotEqual, "job", "a").unwrap();
        let got = h.select(&[Matcher::equal("__name__", "up"), ne]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, b);
        // A missing label matches the empty string.
        assert_eq!(h.select(&[Matcher::equal("x", "")]).len(), 1);
        let nre = Matcher::new(MatchOp::NotRegex, "x", "1").unwrap();
        assert_eq!(h.select(&[nre])[0].1, a);
        assert!(h.select(&[Matcher::equal("job", "zzz")]).is_empty());

        let syms_before = read(&h.index).symbols.len();
        sb.last_t.store(REMOVED, Ordering::Release);
        h.remove(std::slice::from_ref(&sb));
        assert!(h.get(sb.r).is_none());
        assert_eq!(h.len(), 1);
        assert_eq!(h.all_label_names(), vec!["__name__", "job"]);
        assert_eq!(h.all_label_values("job"), vec!["a"]);
        // "b", "x" and "1" are gone; shared symbols stay.
        assert_eq!(read(&h.index).symbols.len(), syms_before - 3);
        // Re-creating gets a new reference.
        let (sb2, created) = h.get_or_create(&b, None, |_| {});
        assert!(created && sb2.r != sb.r);
    }

    #[test]
    fn select_orders_by_labels_whatever_the_interning_order() {
        let h = Head::default();
        // Created in an order unrelated to the label order, so symbol ids
        // do not follow the strings; prefixes and differing names included.
        let sets = [
            lbl(&[("__name__", "x"), ("job", "b")]),
            lbl(&[("__name__", "x"), ("job", "a"), ("z", "1")]),
            lbl(&[("__name__", "x"), ("job", "a")]),
            lbl(&[("__name__", "w"), ("job", "c")]),
            lbl(&[("__name__", "x"), ("instance", "9"), ("job", "a")]),
            lbl(&[("__name__", "x"), ("job", "aa")]),
            lbl(&[("__name__", "x"), ("job", "a"), ("y", "1")]),
        ];
        for l in &sets {
            h.get_or_create(l, None, |_| {});
        }
        let got: Vec<Labels> = h
            .select(&[Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap()])
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        let mut want = sets.to_vec();
        want.sort();
        assert_eq!(got, want);
    }
}

#[cfg(test)]
mod shard_table_tests {
    use super::*;

    fn series(r: SeriesRef) -> Arc<MemSeries> {
        Arc::new(MemSeries::new(r, Box::new([])))
    }

    #[test]
    fn finds_inserted_and_trims_removed_ends() {
        let mut t = ShardTable::default();
        for k in 10..20 {
            t.insert(k, series(k));
        }
        assert!(t.get(9).is_none());
        assert_eq!(t.get(15).map(|s| s.r), Some(15));
        assert!(t.get(20).is_none());
        // Removing from the middle leaves a hole; from the ends trims.
        t.remove(15);
        assert!(t.get(15).is_none());
        assert_eq!(t.slots.len(), 10);
        for k in 10..15 {
            t.remove(k);
        }
        assert_eq!(t.base, 16);
        assert_eq!(t.slots.len(), 4);
        t.remove(19);
        assert_eq!(t.slots.len(), 3);
        assert_eq!(t.values().count(), 3);
        // Replay may bring an older reference back.
        t.insert(3, series(3));
        assert_eq!(t.base, 3);
        assert_eq!(t.get(3).map(|s| s.r), Some(3));
        assert_eq!(t.get(17).map(|s| s.r), Some(17));
        // Emptying resets the base at the next insert.
        for k in [3, 16, 17, 18] {
            t.remove(k);
        }
        assert!(t.slots.is_empty());
        t.insert(100, series(100));
        assert_eq!(t.slots.len(), 1);
        assert_eq!(t.get(100).map(|s| s.r), Some(100));
    }
}
