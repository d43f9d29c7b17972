//! The per-target series cache: raw series text (`name{labels}` exactly as
//! scraped) to whatever the scrape loop keeps about that series.
//!
//! Sits on the scrape hot path between the parser and the appender: every
//! scraped sample is looked up here once. It owns only the keys and the
//! lookup structure; the scrape loop decides what an entry means.
//!
//! Why not a `HashMap<Box<[u8]>, _>`: ingestion profiles showed the key
//! comparison and the bucket probe as cache misses on every sample, because
//! each key lived in its own heap allocation. Exporters print their series
//! in the same order every scrape, so here keys live in one arena and the
//! slots in the order they were last scraped; a lookup first tries the slot
//! after the previous hit (a sequential walk through memory the prefetcher
//! follows) and falls back to the hash index only when the order changed.
//! The slots are re-laid out in scrape order when enough of them died or
//! the order changed, unless the target's order turns out to be random.

use std::hash::BuildHasher;

use hashbrown::HashTable;

/// One cached series. Every scraped series has one, so it is kept small
/// (48 bytes with the scrape loop's entry): no stored hash, since the index
/// compares keys only after its own 7-bit tag matched, and re-hashing the
/// key is needed only when a table grows, a series goes away or the slots
/// are re-laid out.
#[derive(Debug)]
struct Slot<E> {
    off: usize,
    len: u32,
    /// Position in the scrape that last saw it, for re-laying out.
    pos: u32,
    live: bool,
    entry: E,
}

/// Series text to `E`, tuned for lookups in a repeating order.
#[derive(Debug)]
pub struct SeriesCache<E> {
    arena: Vec<u8>,
    slots: Vec<Slot<E>>,
    /// Slot numbers, 32-bit: a target cannot expose 2^32 series, as the
    /// scrape body, its limits and memory run out long before.
    index: HashTable<u32>,
    hasher: foldhash::fast::FixedState,
    /// The slot expected next.
    cursor: usize,
    /// Lookups and hint misses of the current scrape.
    lookups: u32,
    misses: u32,
    live: usize,
    dead_bytes: usize,
    /// False once re-laying out did not make the order repeat: the target
    /// prints its series in a different order every time.
    reorder: bool,
    relaid_last: bool,
}

impl<E> Default for SeriesCache<E> {
    fn default() -> Self {
        SeriesCache {
            arena: Vec::new(),
            slots: Vec::new(),
            index: HashTable::new(),
            hasher: foldhash::fast::FixedState::default(),
            cursor: 0,
            lookups: 0,
            misses: 0,
            live: 0,
            dead_bytes: 0,
            reorder: true,
            relaid_last: false,
        }
    }
}

impl<E> SeriesCache<E> {
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn key(&self, i: usize) -> &[u8] {
        key_of(&self.arena, &self.slots[i])
    }

    /// The entry for this series text.
    #[inline]
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut E> {
        let c = self.cursor;
        let hit = c < self.slots.len() && self.slots[c].live && self.key(c) == key;
        let i = if hit {
            c
        } else {
            self.misses = self.misses.saturating_add(1);
            let hash = self.hasher.hash_one(key);
            let (slots, arena) = (&self.slots, &self.arena);
            match self
                .index
                .find(hash, |&i| key_of(arena, &slots[i as usize]) == key)
            {
                Some(&i) => i as usize,
                None => {
                    // Counted all the same: `insert` places the new
                    // series at this lookup's position.
                    self.lookups = self.lookups.saturating_add(1);
                    return None;
                }
            }
        };
        Some(self.found(i))
    }

    /// Records a lookup that found slot `i`: the next one is expected
    /// right after it.
    #[inline]
    fn found(&mut self, i: usize) -> &mut E {
        let pos = self.lookups;
        self.lookups = self.lookups.saturating_add(1);
        self.cursor = i + 1;
        let s = &mut self.slots[i];
        s.pos = pos;
        &mut s.entry
    }

    /// The series text expected next (the one after the previous hit)
    /// and its entry, for the parser to check the next line against.
    #[inline]
    pub fn expected(&self) -> Option<(&[u8], &E)> {
        let s = self.slots.get(self.cursor).filter(|s| s.live)?;
        Some((key_of(&self.arena, s), &s.entry))
    }

    /// The entry [`SeriesCache::expected`] offered, which the caller found
    /// to be the next series: a lookup without comparing the key again.
    #[inline]
    pub fn take_expected(&mut self) -> Option<&mut E> {
        let c = self.cursor;
        if !self.slots.get(c).is_some_and(|s| s.live) {
            return None;
        }
        Some(self.found(c))
    }

    /// Adds a series that [`SeriesCache::get_mut`] did not find.
    pub fn insert(&mut self, key: &[u8], entry: E) {
        let pos = self.lookups.saturating_sub(1);
        let hash = self.hasher.hash_one(key);
        let i = self.slots.len();
        self.slots.push(Slot {
            off: self.arena.len(),
            len: key.len() as u32,
            pos,
            live: true,
            entry,
        });
        self.arena.extend_from_slice(key);
        let (slots, arena, hasher) = (&self.slots, &self.arena, &self.hasher);
        self.index.insert_unique(hash, i as u32, |&j| {
            hasher.hash_one(key_of(arena, &slots[j as usize]))
        });
        self.live += 1;
        self.cursor = i + 1;
    }

    /// Every live entry.
    pub fn values(&self) -> impl Iterator<Item = &E> {
        self.slots.iter().filter(|s| s.live).map(|s| &s.entry)
    }

    /// Every live entry, to change.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut E> {
        self.slots
            .iter_mut()
            .filter(|s| s.live)
            .map(|s| &mut s.entry)
    }

    /// Keeps the entries for which `keep` returns true, then ends the
    /// scrape: re-lays out the slots when that pays off.
    pub fn retain(&mut self, mut keep: impl FnMut(&mut E) -> bool) {
        for i in 0..self.slots.len() {
            let s = &mut self.slots[i];
            if !s.live || keep(&mut s.entry) {
                continue;
            }
            s.live = false;
            self.live -= 1;
            self.dead_bytes += s.len as usize;
            let hash = self.hasher.hash_one(key_of(&self.arena, &self.slots[i]));
            if let Ok(e) = self.index.find_entry(hash, |&j| j as usize == i) {
                e.remove();
            }
        }
        self.end_scrape();
    }

    /// Ends a scrape without removing anything (a failed scrape).
    pub fn end_scrape(&mut self) {
        let unordered = self.misses as usize > self.live / 4 + 16;
        if self.relaid_last && unordered {
            // Laid out in the last scrape's order and still missing: the
            // order is random, re-laying out would only cost.
            self.reorder = false;
        }
        let garbage = self.slots.len() - self.live > self.live + 64
            || self.dead_bytes > self.arena.len() / 2 + 4096;
        self.relaid_last = false;
        if garbage || (unordered && self.reorder) {
            self.relayout();
            self.relaid_last = true;
        }
        // A scrape that added series grew the arena and the slots by
        // doubling, and up to half of that would stay unused for as long as
        // the target lives (about 50 bytes per series). Series are rarely
        // added after the first scrape, so trimming usually copies once;
        // the margin left lets a few new series fit without growing again.
        trim(&mut self.arena);
        trim(&mut self.slots);
        self.cursor = 0;
        self.lookups = 0;
        self.misses = 0;
    }

    /// Rebuilds arena, slots and index with the live entries in the order
    /// the last scrape saw them.
    fn relayout(&mut self) {
        let mut slots = std::mem::take(&mut self.slots);
        slots.retain(|s| s.live);
        slots.sort_by_key(|s| s.pos);
        let mut arena = Vec::with_capacity(with_margin(self.arena.len() - self.dead_bytes));
        for s in &mut slots {
            let off = arena.len();
            arena.extend_from_slice(&self.arena[s.off..s.off + s.len as usize]);
            s.off = off;
        }
        self.index.clear();
        let hasher = &self.hasher;
        for (i, s) in slots.iter().enumerate() {
            let hash = hasher.hash_one(key_of(&arena, s));
            self.index.insert_unique(hash, i as u32, |&j| {
                hasher.hash_one(key_of(&arena, &slots[j as usize]))
            });
        }
        self.slots = slots;
        self.arena = arena;
        self.dead_bytes = 0;
    }

    pub fn clear(&mut self) {
        *self = SeriesCache {
            reorder: self.reorder,
            ..SeriesCache::default()
        };
    }
}

fn key_of<'a, E>(arena: &'a [u8], s: &Slot<E>) -> &'a [u8] {
    &arena[s.off..s.off + s.len as usize]
}

/// The capacity kept for `n` items: a sixteenth more, so that a few new
/// series do not make a table grow (and copy) again.
fn with_margin(n: usize) -> usize {
    n + n / 16 + 16
}

/// Gives back a vector's spare capacity beyond [`with_margin`].
fn trim<T>(v: &mut Vec<T>) {
    let keep = with_margin(v.len());
    if v.capacity() > keep + v.len() / 16 {
        v.shrink_to(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_take_48_bytes_with_the_scrape_loops_entry() {
        assert_eq!(std::mem::size_of::<Slot<[u64; 3]>>(), 48);
    }

    fn scrape(c: &mut SeriesCache<u64>, keys: &[&str], gen_: u64) -> usize {
        let mut added = 0;
        for k in keys {
            match c.get_mut(k.as_bytes()) {
                Some(e) => *e = gen_,
                None => {
                    c.insert(k.as_bytes(), gen_);
                    added += 1;
                }
            }
        }
        c.retain(|e| *e == gen_);
        added
    }

    #[test]
    fn spare_capacity_is_given_back_after_a_scrape() {
        let mut c = SeriesCache::default();
        let keys: Vec<String> = (0..3000)
            .map(|i| format!("metric_name{{i=\"{i}\"}}"))
            .collect();
        let refs: Vec<&str> = keys.iter().map(|s| s.as_str()).collect();
        scrape(&mut c, &refs, 1);
        let bytes: usize = keys.iter().map(|k| k.len()).sum();
        assert!(
            c.arena.capacity() <= bytes + bytes / 8 + 16,
            "{}",
            c.arena.capacity()
        );
        assert!(
            c.slots.capacity() <= 3000 + 3000 / 8 + 16,
            "{}",
            c.slots.capacity()
        );
        // A few new series fit in the margin: no growth, no copy.
        let cap = c.arena.capacity();
        let more: Vec<&str> = refs.iter().copied().chain(["new_one", "new_two"]).collect();
        scrape(&mut c, &more, 2);
        assert_eq!(c.arena.capacity(), cap, "arena len {}", c.arena.len());
        assert_eq!(scrape(&mut c, &more, 3), 0);
        // Too few new series to re-lay out (a sixth), enough to grow the
        // arena by doubling: the scrape's end trims it.
        let extra: Vec<String> = (0..500)
            .map(|i| format!("added_later{{i=\"{i}\"}}"))
            .collect();
        let grown: Vec<&str> = more
            .iter()
            .copied()
            .chain(extra.iter().map(|s| s.as_str()))
            .collect();
        assert_eq!(scrape(&mut c, &grown, 4), 500);
        let len = c.arena.len();
        assert!(
            c.arena.capacity() <= len + len / 8 + 16,
            "{} for {len}",
            c.arena.capacity()
        );
    }

    #[test]
    fn finds_what_it_stored_in_any_order() {
        let mut c = SeriesCache::default();
        let keys: Vec<String> = (0..500).map(|i| format!("m{{i=\"{i}\"}}")).collect();
        let refs: Vec<&str> = keys.iter().map(|s| s.as_str()).collect();
        assert_eq!(scrape(&mut c, &refs, 1), 500);
        assert_eq!(scrape(&mut c, &refs, 2), 0);
        assert_eq!(c.misses, 0, "a repeated order uses the hint only");
        let mut rev = refs.clone();
        rev.reverse();
        assert_eq!(scrape(&mut c, &rev, 3), 0);
        assert_eq!(c.len(), 500);
        // Re-laid out in reverse order: the next reverse scrape walks.
        assert_eq!(scrape(&mut c, &rev, 4), 0);
        assert_eq!(c.len(), 500);
    }

    #[test]
    fn forgets_unseen_series_and_reclaims_their_space() {
        let mut c = SeriesCache::default();
        let keys: Vec<String> = (0..1000).map(|i| format!("m{{i=\"{i}\"}}")).collect();
        let refs: Vec<&str> = keys.iter().map(|s| s.as_str()).collect();
        scrape(&mut c, &refs, 1);
        let arena = c.arena.len();
        // Churn: every scrape replaces half the series.
        for g in 2..20u64 {
            let fresh: Vec<String> = (0..500).map(|i| format!("n{g}{{i=\"{i}\"}}")).collect();
            let mut now: Vec<&str> = refs[..500].to_vec();
            now.extend(fresh.iter().map(|s| s.as_str()));
            scrape(&mut c, &now, g);
            assert_eq!(c.len(), 1000);
            for k in &now {
                assert!(c.get_mut(k.as_bytes()).is_some(), "{k} lost");
            }
            c.end_scrape();
            assert!(c.get_mut(b"m{i=\"999\"}").is_none());
            c.end_scrape();
        }
        assert!(
            c.arena.len() < arena * 3,
            "arena {} grew without bound",
            c.arena.len()
        );
        assert!(c.slots.len() < 2100);
    }

    #[test]
    fn random_order_stops_re_laying_out() {
        let mut c = SeriesCache::default();
        let keys: Vec<String> = (0..400).map(|i| format!("m{{i=\"{i}\"}}")).collect();
        let mut refs: Vec<&str> = keys.iter().map(|s| s.as_str()).collect();
        scrape(&mut c, &refs, 1);
        let mut x = 7u64;
        for g in 2..8u64 {
            for i in (1..refs.len()).rev() {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                refs.swap(i, (x >> 33) as usize % (i + 1));
            }
            assert_eq!(scrape(&mut c, &refs, g), 0);
        }
        assert!(!c.reorder);
        assert_eq!(c.len(), 400);
    }

    #[test]
    fn clear_empties() {
        let mut c = SeriesCache::default();
        scrape(&mut c, &["a", "b"], 1);
        c.clear();
        assert!(c.is_empty());
        assert!(c.get_mut(b"a").is_none());
    }
}
