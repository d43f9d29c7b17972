//! The durable storage engine: the head (series index plus one open chunk
//! per series), closed chunks in memory-mapped block files, and the WAL.
//!
//! Sits behind the [`Storage`] and [`Queryable`] traits: scrape loops append
//! through [`Appender`]s, PromQL and the API read through `select` and
//! friends, and the app calls [`DiskStorage::maintain`] on a timer with the
//! current time (block finalization, retention, series garbage collection,
//! WAL checkpoints) and [`DiskStorage::sync_wal`] as often as the
//! [`WalSync`] policy asks. It reads no clock for decisions.
//!
//! Data directory:
//! - `wal/`: segments and the latest checkpoint (see `wal.rs`);
//! - `blocks/<start>/`: one block per `block_duration` window (see
//!   `blocks.rs`);
//! - `lock`: held with an exclusive file lock while open.
//!
//! Write path: `append`/`append_ref` check order against the series'
//! newest committed timestamp without taking any lock but the series-table
//! shard's read lock; `commit` writes one WAL record for the batch, then
//! appends each sample to its series' open chunk under that series' mutex.
//! A chunk is cut when it holds 120 samples or the next sample belongs to
//! the next block window; the cut chunk goes to the block file and the
//! series keeps only its position.
//!
//! Durability: a commit's record reaches the operating system before
//! `commit` returns (so `kill -9` loses nothing committed); the sync policy
//! decides when it reaches the disk. A checkpoint (on a timer, and at close)
//! rotates the WAL, stores every series with its open chunk, flushes the
//! open blocks and deletes the older segments, so replay reads only the
//! checkpoint and the segments after it. Closed chunks in open blocks are
//! found again by scanning the block files at open.
//!
//! Finalization: once the newest sample is half a window past a block's
//! end, appends older than that end are refused (out of bounds), every open
//! chunk in the block is cut, and the block gets its index; the series drop
//! their positions for it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHashSet};

use super::blocks::{Block, ChunkRef, IndexEntry, NO_POS, Pos};
use super::chunk::{ChunkDecoder, ChunkEncoder, MAX_SAMPLES};
use super::encoding::{Reader, put_bytes, put_uvarint, put_varint};
use super::head::{
    Head, MemSeries, NO_SAMPLE, REMOVED, SeriesInner, ShardTable, locate, lock, read, write,
};
use super::wal::{self, ReadEnd, Wal, WalSync, io_err};
use super::{
    AppendError, Appender, CommitStats, HeadStats, NameCount, Queryable, Series, SeriesRef,
    Storage, StorageError, TsdbHeadStats, TsdbStatus, top_n,
};
use crate::model::{Labels, METRIC_NAME, Matcher, Sample, Timestamp};

const REC_SERIES: u8 = 1;
const REC_SAMPLES: u8 = 2;
const REC_CHECKPOINT_SERIES: u8 = 3;
const REC_CHECKPOINT_END: u8 = 4;

/// Series per checkpoint record: big enough to amortize framing, small
/// enough that the index lock is held only briefly per batch.
const CHECKPOINT_BATCH: usize = 1024;
/// How many samples ahead the append and commit loops prefetch a series:
/// far enough for a memory load to land, near enough that the lines are
/// still in L1 when used.
const PREFETCH_AHEAD: usize = 8;

/// How the engine is set up. Built by the app from flags and config.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Data directory (`--storage.path`).
    pub path: PathBuf,
    /// Blocks whose window ended longer ago than this are deleted
    /// (`storage.retention.time`, default 15d; zero keeps everything).
    pub retention_time: Duration,
    /// When blocks and WAL together exceed this many bytes, the oldest
    /// blocks are deleted (`storage.retention.size`; 0 means no limit).
    pub retention_size: u64,
    /// When the WAL reaches stable storage.
    pub wal_sync: WalSync,
    /// Refuse to open when the WAL is corrupt in the middle, instead of
    /// keeping what precedes the damage and starting.
    pub refuse_on_corruption: bool,
    /// Width of a block window (default 2h). Changing it for an existing
    /// directory is safe: each block records its own window.
    pub block_duration: Duration,
    /// How often [`DiskStorage::maintain`] writes a WAL checkpoint, which
    /// bounds replay time (default 30m).
    pub checkpoint_interval: Duration,
}

impl StorageOptions {
    /// Prometheus-like defaults for a data directory.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StorageOptions {
            path: path.into(),
            retention_time: Duration::from_secs(15 * 24 * 3600),
            retention_size: 0,
            wal_sync: WalSync::default(),
            refuse_on_corruption: false,
            block_duration: Duration::from_secs(2 * 3600),
            checkpoint_interval: Duration::from_secs(30 * 60),
        }
    }
}

#[derive(Default)]
struct Counters {
    appended: AtomicU64,
    out_of_order: AtomicU64,
    duplicates: AtomicU64,
    out_of_bounds: AtomicU64,
    created: AtomicU64,
    removed: AtomicU64,
    corruptions: AtomicU64,
    replay_nanos: AtomicU64,
    checkpoints: AtomicU64,
    retention_deleted: AtomicU64,
    open_chunk_bytes: AtomicU64,
    open_chunks: AtomicU64,
}

#[derive(Default)]
struct MaintState {
    last_checkpoint: Option<Timestamp>,
    /// Series seen without any sample in the previous pass; removed if
    /// still empty in the next (a brand-new series gets one pass of grace
    /// for its first commit).
    empty: FxHashSet<SeriesRef>,
}

/// What one [`DiskStorage::maintain`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintainReport {
    pub blocks_finalized: Vec<Timestamp>,
    pub blocks_deleted: Vec<Timestamp>,
    pub series_removed: u64,
    pub checkpoint: Option<u32>,
}

/// The durable engine. See the module docs.
pub struct DiskStorage {
    opts: StorageOptions,
    block_ms: i64,
    head: Head,
    blocks: RwLock<BTreeMap<Timestamp, Arc<Block>>>,
    wal: Wal,
    /// Commits hold it shared from WAL write to head apply; a checkpoint
    /// takes it exclusively to rotate the WAL, so every record in the
    /// rotated segments is applied before the snapshot starts.
    commit_gate: RwLock<()>,
    /// Appends older than this are out of bounds: their block is final.
    min_valid_t: AtomicI64,
    min_t: AtomicI64,
    max_t: AtomicI64,
    next_appender: AtomicU32,
    closed: AtomicBool,
    maint: Mutex<MaintState>,
    c: Counters,
    _lock: File,
}

fn block_start(t: Timestamp, block_ms: i64) -> Timestamp {
    t.div_euclid(block_ms).wrapping_mul(block_ms)
}

fn corruption_error(path: &Path, offset: u64, reason: &str) -> StorageError {
    StorageError::Corruption {
        path: path.display().to_string(),
        offset,
        reason: format!(
            "{reason}: refusing to start because refuse_on_corruption is set; unset it to keep the data before the damage and start, or restore the directory from a backup"
        ),
    }
}

/// Outcome of applying one sample to a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    Appended,
    Same,
    OutOfOrder,
    Duplicate,
    OutOfBounds,
    Removed,
}

impl DiskStorage {
    /// Opens (or creates) the data directory and replays the WAL: the same
    /// series and samples are queryable as before the stop. A torn WAL tail
    /// is cut with a warning; corruption in the middle is reported with the
    /// segment and offset and everything before it is kept, unless
    /// `refuse_on_corruption` is set.
    pub fn open(opts: StorageOptions) -> Result<Self, StorageError> {
        let started = Instant::now();
        let block_ms = i64::try_from(opts.block_duration.as_millis())
            .ok()
            .filter(|&ms| ms > 0)
            .ok_or_else(|| {
                StorageError::Other(format!(
                    "storage block duration {:?} must be between 1ms and i64::MAX ms",
                    opts.block_duration
                ))
            })?;
        let wal_dir = opts.path.join("wal");
        let blocks_dir = opts.path.join("blocks");
        for d in [&opts.path, &wal_dir, &blocks_dir] {
            fs::create_dir_all(d).map_err(|e| io_err(d, e))?;
        }
        let lock_path = opts.path.join("lock");
        let lock_file = File::create(&lock_path).map_err(|e| io_err(&lock_path, e))?;
        if let Err(e) = lock_file.try_lock() {
            return Err(StorageError::Other(format!(
                "storage directory {} is in use by another process ({e}): stop it or choose another storage path",
                opts.path.display()
            )));
        }

        // Blocks first: the open ones tell where each series' chunk chains
        // end, which replay needs to skip WAL samples they already hold.
        let mut chains: FxHashMap<SeriesRef, Vec<ChainSeen>> = FxHashMap::default();
        let mut blocks = BTreeMap::new();
        let mut min_valid = i64::MIN;
        let mut max_ref = 0u64;
        let mut corruptions = 0u64;
        let mut entries: Vec<PathBuf> = Vec::new();
        for e in fs::read_dir(&blocks_dir).map_err(|e| io_err(&blocks_dir, e))? {
            let e = e.map_err(|e| io_err(&blocks_dir, e))?;
            if e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<i64>().is_ok())
            {
                entries.push(e.path());
            }
        }
        for dir in entries {
            let mut seen: Vec<(SeriesRef, Pos, Timestamp)> = Vec::new();
            let (block, warning) = Block::open(dir, |h, pos| seen.push((h.series, pos, h.maxt)))?;
            if let Some(w) = warning {
                corruptions += 1;
                tracing::warn!(detail = %w, "damaged chunk file record; the WAL replay restores its samples");
            }
            if block.is_finalized() {
                min_valid = min_valid.max(block.end);
            }
            for (r, pos, maxt) in seen {
                max_ref = max_ref.max(r);
                let list = chains.entry(r).or_default();
                match list.iter_mut().find(|c| c.block == block.start) {
                    // Later records of a series are newer chunks.
                    Some(c) => {
                        c.pos = pos;
                        c.maxt = maxt;
                    }
                    None => list.push(ChainSeen {
                        block: block.start,
                        pos,
                        maxt,
                    }),
                }
            }
            blocks.insert(block.start, Arc::new(block));
        }

        let checkpoint = wal::latest_checkpoint(&wal_dir)?;
        let mut segments = wal::list_segments(&wal_dir)?;
        if let Some(cp) = checkpoint {
            for s in segments.iter().filter(|s| **s <= cp) {
                let p = wal::segment_path(&wal_dir, *s);
                fs::remove_file(&p).map_err(|e| io_err(&p, e))?;
            }
            segments.retain(|s| *s > cp);
        }
        let next_seg = segments
            .last()
            .copied()
            .max(checkpoint)
            .map_or(1, |s| s + 1);
        let wal = Wal::create(&wal_dir, next_seg, opts.wal_sync, 0)?;

        let db = DiskStorage {
            block_ms,
            head: Head::default(),
            blocks: RwLock::new(blocks),
            wal,
            commit_gate: RwLock::new(()),
            min_valid_t: AtomicI64::new(min_valid),
            min_t: AtomicI64::new(i64::MAX),
            max_t: AtomicI64::new(i64::MIN),
            next_appender: AtomicU32::new(0),
            closed: AtomicBool::new(false),
            maint: Mutex::new(MaintState::default()),
            c: Counters::default(),
            _lock: lock_file,
            opts,
        };
        db.c.corruptions.store(corruptions, Ordering::Relaxed);
        db.head.next_ref.fetch_max(max_ref + 1, Ordering::Relaxed);
        let rp = Replay {
            chains,
            aliases: FxHashMap::default(),
            workers: Vec::new(),
            bufs: Vec::new(),
            scratch: Vec::new(),
            skipped: 0,
            unknown: 0,
        };
        if let Err(e) = db.replay(checkpoint, &segments, rp) {
            // A half-replayed head must not be checkpointed by `Drop`: that
            // would replace the WAL with less than it holds.
            db.closed.store(true, Ordering::Release);
            return Err(e);
        }
        db.c.replay_nanos
            .store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        tracing::info!(
            path = %db.opts.path.display(),
            series = db.head.len(),
            replay_seconds = started.elapsed().as_secs_f64(),
            "storage opened"
        );
        Ok(db)
    }

    fn replay(
        &self,
        checkpoint: Option<u32>,
        segments: &[u32],
        mut rp: Replay,
    ) -> Result<(), StorageError> {
        let db = self;
        let wal_dir = db.wal.dir().to_path_buf();

        if let Some(cp) = checkpoint {
            let path = wal::checkpoint_path(&wal_dir, cp);
            let end = db.replay_file(&path, false, &mut rp)?;
            if let ReadEnd::Corrupt { offset, reason } = end {
                if db.opts.refuse_on_corruption {
                    return Err(corruption_error(&path, offset, &reason));
                }
                db.c.corruptions.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(file = %path.display(), offset, reason = %reason,
                    "WAL checkpoint corrupt: series after this offset are lost; continuing with the segments");
            }
        }
        // Segments are decoded here and applied by workers, each owning
        // the series whose reference maps to it, so per-series order is the
        // WAL's order.
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8);
        let res = std::thread::scope(|sc| {
            let mut handles = Vec::new();
            for _ in 0..workers {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(8);
                rp.workers.push(tx);
                rp.bufs.push(Vec::new());
                handles.push(sc.spawn(move || self.replay_worker(rx)));
            }
            let res = self.replay_segments(segments, &mut rp);
            for (i, b) in rp.bufs.iter_mut().enumerate() {
                if !b.is_empty() {
                    let _ = rp.workers[i].send(std::mem::take(b));
                }
            }
            rp.workers.clear();
            let mut first_err = res.err();
            for h in handles {
                match h.join() {
                    Ok(w) => {
                        rp.unknown += w.unknown;
                        rp.skipped += w.skipped;
                        if let Some(e) = w.err {
                            first_err.get_or_insert(e);
                        }
                    }
                    Err(_) => {
                        first_err.get_or_insert(StorageError::Other(
                            "WAL replay worker panicked: this is a bug; the WAL is unchanged"
                                .into(),
                        ));
                    }
                }
            }
            match first_err {
                Some(e) => Err(e),
                None => Ok(()),
            }
        });
        res?;
        if rp.unknown > 0 {
            tracing::warn!(
                samples = rp.unknown,
                "WAL samples for series without a series record were dropped"
            );
        }
        let wal_bytes = dir_size(&wal_dir);
        db.wal.bytes.store(wal_bytes, Ordering::Relaxed);
        Ok(())
    }

    fn replay_worker(&self, rx: std::sync::mpsc::Receiver<Batch>) -> WorkerResult {
        let mut w = WorkerState {
            out: WorkerResult::default(),
            scratch: Vec::new(),
            mint: i64::MAX,
            maxt: i64::MIN,
        };
        // References are dense and each worker sees them in scrape order,
        // so a plain vector indexed by reference replaces the hashed series
        // table (whose random probes dominated replay time).
        let mut dense: Vec<Option<Arc<MemSeries>>> = Vec::new();
        for batch in rx {
            for (r, t, v) in batch {
                let i = r as usize;
                if i >= dense.len() && i <= DENSE_LIMIT {
                    dense.resize(i + 1 + i / 2, None);
                }
                let s = match dense.get_mut(i) {
                    Some(slot) => {
                        if slot.is_none() {
                            *slot = self.head.get(r);
                        }
                        slot.clone()
                    }
                    // Not dense after all: ask the table.
                    None => self.head.get(r),
                };
                match s {
                    Some(s) => self.replay_apply(&s, t, v, &mut w),
                    None => w.out.unknown += 1,
                }
            }
        }
        if w.mint <= w.maxt {
            self.note_time(w.mint, w.maxt);
        }
        w.out
    }

    fn replay_apply(&self, s: &MemSeries, t: Timestamp, v: u64, w: &mut WorkerState) {
        // Most of a long WAL is already in chunk files; skipping those
        // samples without the mutex saves most of the replay time. Only this
        // worker writes this series, so the check is exact.
        if t <= s.last_t.load(Ordering::Relaxed) {
            w.out.skipped += 1;
            return;
        }
        let mut inner = lock(&s.inner);
        match self.apply(s, &mut inner, t, f64::from_bits(v), &mut w.scratch) {
            Ok(Applied::Appended) => {
                w.mint = w.mint.min(t);
                w.maxt = w.maxt.max(t);
            }
            Ok(_) => w.out.skipped += 1,
            Err(e) => {
                w.out.err.get_or_insert(e);
            }
        }
    }

    fn replay_segments(&self, segments: &[u32], rp: &mut Replay) -> Result<(), StorageError> {
        let db = self;
        let wal_dir = db.wal.dir().to_path_buf();
        let last_idx = segments.len().saturating_sub(1);
        for (i, seg) in segments.iter().enumerate() {
            let path = wal::segment_path(&wal_dir, *seg);
            match db.replay_file(&path, i == last_idx, rp)? {
                ReadEnd::Clean => {}
                ReadEnd::Torn { offset } => {
                    tracing::warn!(segment = %path.display(), offset,
                        "WAL ends in a torn record (the process stopped mid-write); truncating it");
                    truncate(&path, offset)?;
                }
                ReadEnd::Corrupt { offset, reason } => {
                    if db.opts.refuse_on_corruption {
                        return Err(corruption_error(&path, offset, &reason));
                    }
                    db.c.corruptions.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(segment = %path.display(), offset, reason = %reason,
                        "WAL corrupt: keeping everything before this offset and dropping the rest of the WAL");
                    truncate(&path, offset)?;
                    for later in &segments[i + 1..] {
                        let p = wal::segment_path(&wal_dir, *later);
                        fs::remove_file(&p).map_err(|e| io_err(&p, e))?;
                    }
                    break;
                }
            }
        }
        Ok(())
    }

    /// The options this engine was opened with.
    pub fn options(&self) -> &StorageOptions {
        &self.opts
    }

    fn replay_file(
        &self,
        path: &Path,
        may_be_torn: bool,
        rp: &mut Replay,
    ) -> Result<ReadEnd, StorageError> {
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        let len = file.metadata().map_err(|e| io_err(path, e))?.len();
        if len == 0 {
            return Ok(ReadEnd::Clean);
        }
        // SAFETY: nothing writes WAL files that are being replayed: the
        // writer appends to a newer segment and the directory is locked.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io_err(path, e))?;
        let mut bad: Option<String> = None;
        let mut good_end = 0u64;
        let mut off = 0u64;
        let end = wal::read_records(&map, may_be_torn, |payload| {
            if bad.is_some() {
                return;
            }
            if let Err(reason) = self.replay_record(payload, rp) {
                bad = Some(reason);
                good_end = off;
            }
            off += 8 + payload.len() as u64;
        });
        // A record whose checksum is right but whose content does not parse
        // is corruption too (or a bug), reported the same way.
        if let Some(reason) = bad {
            return Ok(ReadEnd::Corrupt {
                offset: good_end,
                reason: format!("malformed record: {reason}"),
            });
        }
        Ok(end)
    }

    fn replay_record(&self, payload: &[u8], rp: &mut Replay) -> Result<(), String> {
        let mut r = Reader::new(payload);
        match r.u8() {
            Some(REC_SERIES) => {
                let n = r.uvarint().ok_or("series count")?;
                for _ in 0..n {
                    let sref = r.uvarint().ok_or("series ref")?;
                    let labels = read_labels(&mut r).ok_or("series labels")?;
                    self.replay_series(sref, &labels, rp);
                }
            }
            Some(REC_SAMPLES) => {
                let n = r.uvarint().ok_or("sample count")?;
                let base_t = r.varint().ok_or("base timestamp")?;
                let mut sref: u64 = 0;
                let mut cur: Option<Arc<MemSeries>> = None;
                for _ in 0..n {
                    let d = r.varint().ok_or("sample ref")?;
                    let t = base_t.wrapping_add(r.varint().ok_or("sample timestamp")?);
                    let v = r.u64_le().ok_or("sample value")?;
                    let next = sref.wrapping_add(d as u64);
                    if !rp.workers.is_empty() {
                        sref = next;
                        let canon = rp.aliases.get(&next).map_or(next, |s| s.r);
                        let w = (canon % rp.workers.len() as u64) as usize;
                        let buf = &mut rp.bufs[w];
                        buf.push((canon, t, v));
                        if buf.len() >= REPLAY_BATCH {
                            let full = std::mem::take(buf);
                            if rp.workers[w].send(full).is_err() {
                                return Err("replay worker stopped".into());
                            }
                        }
                        continue;
                    }
                    if cur.is_none() || next != sref {
                        cur = self
                            .head
                            .get(next)
                            .or_else(|| rp.aliases.get(&next).cloned());
                    }
                    sref = next;
                    let Some(s) = &cur else {
                        rp.unknown += 1;
                        continue;
                    };
                    let mut inner = lock(&s.inner);
                    match self.apply(s, &mut inner, t, f64::from_bits(v), &mut rp.scratch) {
                        Ok(Applied::Appended) => {
                            self.note_time(t, t);
                        }
                        Ok(_) => rp.skipped += 1,
                        Err(e) => return Err(format!("applying a sample: {e}")),
                    }
                }
            }
            Some(REC_CHECKPOINT_SERIES) => {
                let n = r.uvarint().ok_or("checkpoint count")?;
                for _ in 0..n {
                    let sref = r.uvarint().ok_or("checkpoint ref")?;
                    let labels = read_labels(&mut r).ok_or("checkpoint labels")?;
                    let last_t = r.varint().ok_or("checkpoint last timestamp")?;
                    let last_v = r.u64_le().ok_or("checkpoint last value")?;
                    let has_open = r.u8().ok_or("checkpoint chunk flag")?;
                    let s = self.replay_series(sref, &labels, rp);
                    let mut inner = lock(&s.inner);
                    if has_open == 1 {
                        let (enc, used) = {
                            let tail = &payload[r.pos()..];
                            ChunkEncoder::decode_state(tail).ok_or("checkpoint chunk state")?
                        };
                        r.take(used).ok_or("checkpoint chunk bytes")?;
                        self.restore_open(&s, &mut inner, enc, rp)
                            .map_err(|e| format!("restoring an open chunk: {e}"))?;
                    }
                    if last_t != REMOVED && last_t > s.last_t.load(Ordering::Relaxed) {
                        // The newest sample is in a finalized block: keep it
                        // for order checks and garbage collection.
                        s.last_t.store(last_t, Ordering::Release);
                        inner.last_v = last_v;
                    }
                }
            }
            Some(REC_CHECKPOINT_END) => {
                let next_ref = r.uvarint().ok_or("checkpoint next ref")?;
                self.head.next_ref.fetch_max(next_ref, Ordering::Relaxed);
            }
            Some(t) => return Err(format!("unknown record type {t}")),
            None => return Err("empty record".into()),
        }
        Ok(())
    }

    fn replay_series(&self, sref: SeriesRef, labels: &Labels, rp: &mut Replay) -> Arc<MemSeries> {
        let (s, _) = self.head.get_or_create(labels, Some(sref), |_| {});
        if s.r != sref {
            // The same labels under an older reference (removed and
            // re-created): samples logged under either belong here.
            rp.aliases.insert(sref, s.clone());
        }
        if let Some(seen) = rp.chains.remove(&sref) {
            let mut inner = lock(&s.inner);
            for c in seen {
                if inner.chain(c.block).is_none() {
                    inner.set_chain(c.block, c.pos);
                }
                if c.maxt > s.last_t.load(Ordering::Relaxed) {
                    s.last_t.store(c.maxt, Ordering::Release);
                    if let Some(b) = read(&self.blocks).get(&c.block)
                        && let Some((_, cr)) = b.read(c.pos)
                    {
                        let mut d = ChunkDecoder::new(cr.bytes());
                        let mut last = None;
                        while let Some(smp) = d.next(cr.bytes()) {
                            last = Some(smp);
                        }
                        if let Some(l) = last {
                            inner.last_v = l.v.to_bits();
                        }
                    }
                }
                self.note_time(c.maxt, c.maxt);
            }
        }
        s
    }

    /// Installs a checkpointed open chunk, or re-appends its samples where
    /// chunk files or finalized blocks already hold some of them.
    fn restore_open(
        &self,
        s: &MemSeries,
        inner: &mut SeriesInner,
        enc: ChunkEncoder,
        rp: &mut Replay,
    ) -> Result<(), StorageError> {
        if enc.is_empty() {
            return Ok(());
        }
        let last = s.last_t.load(Ordering::Relaxed);
        let fresh = last == NO_SAMPLE || last < enc.min_t();
        if fresh && enc.min_t() >= self.min_valid_t.load(Ordering::Relaxed) && inner.open.is_empty()
        {
            self.note_time(enc.min_t(), enc.max_t());
            s.last_t.store(enc.max_t(), Ordering::Release);
            inner.last_v = enc.last_value_bits();
            inner.open = enc;
            return Ok(());
        }
        let bytes = enc.bytes().to_vec();
        let mut d = ChunkDecoder::new(&bytes);
        while let Some(smp) = d.next(&bytes) {
            if self.apply(s, inner, smp.t, smp.v, &mut rp.scratch)? == Applied::Appended {
                self.note_time(smp.t, smp.t);
            } else {
                rp.skipped += 1;
            }
        }
        Ok(())
    }

    fn note_time(&self, mint: Timestamp, maxt: Timestamp) {
        self.min_t.fetch_min(mint, Ordering::Relaxed);
        self.max_t.fetch_max(maxt, Ordering::Relaxed);
    }

    fn block_start(&self, t: Timestamp) -> Timestamp {
        block_start(t, self.block_ms)
    }

    /// The open block for the window starting at `start`, created if new.
    fn open_block(&self, start: Timestamp) -> Result<Arc<Block>, StorageError> {
        if let Some(b) = read(&self.blocks).get(&start) {
            return Ok(b.clone());
        }
        let mut blocks = write(&self.blocks);
        if let Some(b) = blocks.get(&start) {
            return Ok(b.clone());
        }
        let dir = self.opts.path.join("blocks").join(start.to_string());
        let b = Arc::new(Block::create(
            dir,
            start,
            start.saturating_add(self.block_ms),
        )?);
        blocks.insert(start, b.clone());
        Ok(b)
    }

    /// Writes the open chunk to its block and empties it.
    fn cut(
        &self,
        r: SeriesRef,
        inner: &mut SeriesInner,
        scratch: &mut Vec<u8>,
    ) -> Result<(), StorageError> {
        let start = self.block_start(inner.open.min_t());
        let block = self.open_block(start)?;
        let prev = inner.chain(start).unwrap_or(NO_POS);
        let pos = block.write_chunk(
            r,
            prev,
            inner.open.min_t(),
            inner.open.max_t(),
            inner.open.bytes(),
            scratch,
        )?;
        inner.set_chain(start, pos);
        inner.open.reset();
        Ok(())
    }

    /// Appends one sample to a locked series, enforcing order and bounds.
    fn apply(
        &self,
        s: &MemSeries,
        inner: &mut SeriesInner,
        t: Timestamp,
        v: f64,
        scratch: &mut Vec<u8>,
    ) -> Result<Applied, StorageError> {
        let last = s.last_t.load(Ordering::Relaxed);
        if last == REMOVED {
            return Ok(Applied::Removed);
        }
        if last != NO_SAMPLE {
            if t < last {
                return Ok(Applied::OutOfOrder);
            }
            if t == last {
                return Ok(if inner.last_v == v.to_bits() {
                    Applied::Same
                } else {
                    Applied::Duplicate
                });
            }
        }
        if t < self.min_valid_t.load(Ordering::Acquire) {
            return Ok(Applied::OutOfBounds);
        }
        if !inner.open.is_empty()
            && (inner.open.len() >= MAX_SAMPLES
                || t >= self
                    .block_start(inner.open.min_t())
                    .saturating_add(self.block_ms))
        {
            self.cut(s.r, inner, scratch)?;
        }
        inner.open.append(t, v);
        inner.last_v = v.to_bits();
        s.last_t.store(t, Ordering::Release);
        Ok(Applied::Appended)
    }

    /// Flushes the WAL to stable storage. The app calls this at the period
    /// of [`WalSync::Every`]; with other policies it is harmless.
    pub fn sync_wal(&self) -> Result<(), StorageError> {
        self.wal.sync()
    }

    /// The period at which the app should call [`DiskStorage::sync_wal`].
    pub fn wal_sync_interval(&self) -> Option<Duration> {
        match self.opts.wal_sync {
            WalSync::Every(d) => Some(d),
            _ => None,
        }
    }

    /// Periodic upkeep, with the current time as input: finalizes blocks
    /// the head has moved past, applies retention, drops series with no
    /// samples left, writes a WAL checkpoint when one is due, and syncs the
    /// WAL. The app calls it about once a minute.
    pub fn maintain(&self, now: Timestamp) -> Result<MaintainReport, StorageError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(self.closed_error());
        }
        let mut st = lock(&self.maint);
        let mut report = MaintainReport::default();

        // Data time, not the clock, decides when a window is complete (a
        // sample from the far future must not close current windows, so
        // the clock caps it).
        let limit = self.max_t.load(Ordering::Relaxed).min(now);
        let open: Vec<Arc<Block>> = read(&self.blocks)
            .values()
            .filter(|b| !b.is_finalized())
            .cloned()
            .collect();
        for b in open {
            if b.end.saturating_add(self.block_ms / 2) <= limit {
                self.finalize(&b)?;
                report.blocks_finalized.push(b.start);
            }
        }

        report.blocks_deleted = self.apply_retention(now)?;
        report.series_removed = self.gc(&mut st);

        let interval = i64::try_from(self.opts.checkpoint_interval.as_millis()).unwrap_or(i64::MAX);
        let last = *st.last_checkpoint.get_or_insert(now);
        if now.saturating_sub(last) >= interval {
            report.checkpoint = Some(self.checkpoint_locked()?);
            st.last_checkpoint = Some(now);
        }
        self.wal.sync()?;
        Ok(report)
    }

    fn finalize(&self, b: &Arc<Block>) -> Result<(), StorageError> {
        self.min_valid_t.fetch_max(b.end, Ordering::AcqRel);
        let mut entries = Vec::new();
        let mut scratch = Vec::new();
        let mut first_err = None;
        self.head.for_each(|s| {
            let mut inner = lock(&s.inner);
            if !inner.open.is_empty()
                && self.block_start(inner.open.min_t()) <= b.start
                && let Err(e) = self.cut(s.r, &mut inner, &mut scratch)
            {
                first_err.get_or_insert(e);
            }
            let Some(last) = inner.take_chain(b.start) else {
                return;
            };
            let mut e = IndexEntry {
                series: s.r,
                last,
                mint: i64::MAX,
                maxt: i64::MIN,
                chunks: 0,
                samples: 0,
            };
            let mut p = last;
            while p != NO_POS {
                let Some((h, _)) = b.read(p) else { break };
                e.mint = e.mint.min(h.mint);
                e.maxt = e.maxt.max(h.maxt);
                e.chunks += 1;
                e.samples += u32::from(h.samples);
                p = h.prev;
            }
            entries.push(e);
        });
        if let Some(e) = first_err {
            return Err(e);
        }
        entries.sort_unstable_by_key(|e| e.series);
        b.finalize(&entries)?;
        tracing::debug!(block = b.start, series = entries.len(), "block finalized");
        Ok(())
    }

    fn apply_retention(&self, now: Timestamp) -> Result<Vec<Timestamp>, StorageError> {
        let mut doomed: Vec<Arc<Block>> = Vec::new();
        {
            let blocks = read(&self.blocks);
            let finalized: Vec<&Arc<Block>> =
                blocks.values().filter(|b| b.is_finalized()).collect();
            let ret_ms = i64::try_from(self.opts.retention_time.as_millis()).unwrap_or(i64::MAX);
            if ret_ms > 0 {
                let horizon = now.saturating_sub(ret_ms);
                doomed.extend(
                    finalized
                        .iter()
                        .filter(|b| b.end <= horizon)
                        .map(|b| (*b).clone()),
                );
            }
            if self.opts.retention_size > 0 {
                let mut total: u64 = blocks.values().map(|b| b.size()).sum::<u64>()
                    + self.wal.bytes.load(Ordering::Relaxed);
                for b in &doomed {
                    total = total.saturating_sub(b.size());
                }
                let by_time: BTreeSet<Timestamp> = doomed.iter().map(|b| b.start).collect();
                for b in finalized.iter().filter(|b| !by_time.contains(&b.start)) {
                    if total <= self.opts.retention_size {
                        break;
                    }
                    total = total.saturating_sub(b.size());
                    doomed.push((*b).clone());
                }
            }
        }
        let mut deleted = Vec::new();
        for b in doomed {
            write(&self.blocks).remove(&b.start);
            fs::remove_dir_all(b.dir()).map_err(|e| io_err(b.dir(), e))?;
            self.c.retention_deleted.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                block = b.start,
                bytes = b.size(),
                "block deleted by retention"
            );
            deleted.push(b.start);
        }
        if !deleted.is_empty() {
            let oldest = read(&self.blocks).keys().next().copied();
            if let Some(o) = oldest {
                self.min_t.fetch_max(o, Ordering::Relaxed);
            }
        }
        Ok(deleted)
    }

    /// Removes series with no samples left anywhere and refreshes the
    /// head gauges that need a pass over every series.
    fn gc(&self, st: &mut MaintState) -> u64 {
        let oldest_block = read(&self.blocks)
            .keys()
            .next()
            .copied()
            .unwrap_or(i64::MAX);
        let mut gone = Vec::new();
        let mut empty_now = FxHashSet::default();
        let (mut bytes, mut open_chunks) = (0u64, 0u64);
        self.head.for_each(|s| {
            let inner = lock(&s.inner);
            bytes += inner.open.capacity() as u64;
            if !inner.open.is_empty() {
                open_chunks += 1;
                return;
            }
            if !inner.chains.is_empty() {
                return;
            }
            let last = s.last_t.load(Ordering::Relaxed);
            let dead = match last {
                REMOVED => false,
                NO_SAMPLE => {
                    empty_now.insert(s.r);
                    st.empty.contains(&s.r)
                }
                // Retention deletes the oldest blocks first, so a series
                // whose newest sample is older than the oldest block kept
                // has no sample left.
                t => t < oldest_block,
            };
            if dead {
                s.last_t.store(REMOVED, Ordering::Release);
                gone.push(s.clone());
            }
        });
        st.empty = empty_now;
        self.c.open_chunk_bytes.store(bytes, Ordering::Relaxed);
        self.c.open_chunks.store(open_chunks, Ordering::Relaxed);
        let n = gone.len() as u64;
        self.head.remove(&gone);
        self.c.removed.fetch_add(n, Ordering::Relaxed);
        n
    }

    /// Writes a checkpoint of every series and its open chunk, then deletes
    /// the WAL segments it replaces. Returns the last segment it covers.
    /// [`DiskStorage::maintain`] does this on its own at
    /// `checkpoint_interval`; calling it directly is for tests and tools.
    pub fn checkpoint(&self) -> Result<u32, StorageError> {
        let _maint = lock(&self.maint);
        self.checkpoint_locked()
    }

    /// [`DiskStorage::checkpoint`] with the maintenance lock held, so it
    /// never overlaps finalization or garbage collection.
    fn checkpoint_locked(&self) -> Result<u32, StorageError> {
        let last = {
            let _gate = write(&self.commit_gate);
            self.wal.rotate()?
        };
        let dir = self.wal.dir().to_path_buf();
        let tmp = dir.join(format!("checkpoint.{last:08}.tmp"));
        let file = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut all = self.head.all();
        all.sort_unstable_by_key(|s| s.r);
        let mut payload = Vec::new();
        let mut framed = Vec::new();
        for batch in all.chunks(CHECKPOINT_BATCH) {
            let labels: Vec<Labels> = {
                let idx = read(&self.head.index);
                batch.iter().map(|s| idx.labels_of(s)).collect()
            };
            payload.clear();
            payload.push(REC_CHECKPOINT_SERIES);
            let live: Vec<(&Arc<MemSeries>, &Labels)> = batch
                .iter()
                .zip(&labels)
                .filter(|(s, _)| !s.is_removed())
                .collect();
            put_uvarint(&mut payload, live.len() as u64);
            for (s, l) in live {
                put_uvarint(&mut payload, s.r);
                write_labels(&mut payload, l);
                let inner = lock(&s.inner);
                put_varint(&mut payload, s.last_t.load(Ordering::Relaxed));
                payload.extend_from_slice(&inner.last_v.to_le_bytes());
                if inner.open.is_empty() {
                    payload.push(0);
                } else {
                    payload.push(1);
                    inner.open.encode_state(&mut payload);
                }
            }
            framed.clear();
            wal::frame(&mut framed, &payload);
            out.write_all(&framed).map_err(|e| io_err(&tmp, e))?;
        }
        payload.clear();
        payload.push(REC_CHECKPOINT_END);
        put_uvarint(&mut payload, self.head.next_ref.load(Ordering::Relaxed));
        framed.clear();
        wal::frame(&mut framed, &payload);
        out.write_all(&framed).map_err(|e| io_err(&tmp, e))?;
        let file = out.into_inner().map_err(|e| io_err(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| io_err(&tmp, e))?;
        drop(file);
        // Chunks cut before the snapshot must be durable before the
        // segments holding their samples go.
        let open: Vec<Arc<Block>> = read(&self.blocks).values().cloned().collect();
        for b in open {
            b.flush()?;
        }
        let final_path = wal::checkpoint_path(&dir, last);
        fs::rename(&tmp, &final_path).map_err(|e| io_err(&final_path, e))?;
        wal::sync_dir(&dir)?;
        for s in wal::list_segments(&dir)?.into_iter().filter(|s| *s <= last) {
            let p = wal::segment_path(&dir, s);
            fs::remove_file(&p).map_err(|e| io_err(&p, e))?;
        }
        for e in fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
            let e = e.map_err(|e| io_err(&dir, e))?;
            let name = e.file_name();
            let Some(n) = name.to_str() else { continue };
            if let Some(seq) = n
                .strip_prefix("checkpoint.")
                .and_then(|r| r.parse::<u32>().ok())
                && seq < last
            {
                fs::remove_file(e.path()).map_err(|err| io_err(&e.path(), err))?;
            }
        }
        self.wal.bytes.store(dir_size(&dir), Ordering::Relaxed);
        self.c.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(last)
    }

    /// Stops accepting commits, writes a checkpoint (so the next start
    /// replays little) and syncs everything. Idempotent.
    pub fn close(&self) -> Result<(), StorageError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.checkpoint()?;
        self.wal.sync()?;
        for b in read(&self.blocks).values() {
            b.flush()?;
        }
        Ok(())
    }

    fn closed_error(&self) -> StorageError {
        StorageError::Closed {
            path: self.opts.path.display().to_string(),
        }
    }

    /// Lazily decoded samples of `s` in `[mint, maxt]`.
    fn samples(&self, s: &MemSeries, mint: Timestamp, maxt: Timestamp) -> SampleIter {
        let mut chunks: Vec<ChunkSrc> = Vec::new();
        let (chains, open) = {
            let inner = lock(&s.inner);
            let open = (!inner.open.is_empty()
                && inner.open.min_t() <= maxt
                && inner.open.max_t() >= mint)
                .then(|| inner.open.bytes().to_vec());
            (inner.chains.clone(), open)
        };
        let blocks: Vec<Arc<Block>> = read(&self.blocks)
            .range(..=maxt)
            .map(|(_, b)| b.clone())
            .filter(|b| b.end > mint)
            .collect();
        for b in &blocks {
            if let Some((_, pos)) = chains.iter().find(|(st, _)| *st == b.start) {
                chunks.extend(b.chain(*pos, mint, maxt).into_iter().map(ChunkSrc::Mapped));
            } else if b.is_finalized()
                && let Some(e) = b.lookup(s.r)
                && e.maxt >= mint
                && e.mint <= maxt
            {
                chunks.extend(
                    b.chain(e.last, mint, maxt)
                        .into_iter()
                        .map(ChunkSrc::Mapped),
                );
            }
        }
        if let Some(o) = open {
            chunks.push(ChunkSrc::Owned(o));
        }
        SampleIter {
            chunks: chunks.into_iter(),
            cur: None,
            mint,
            maxt,
        }
    }

    /// Matching series that have a sample in `[mint, maxt]`, with the
    /// first such sample and the iterator for the rest.
    fn selected(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<(Labels, Sample, SampleIter)> {
        if mint > maxt {
            return Vec::new();
        }
        self.head
            .select(matchers)
            .into_iter()
            .filter_map(|(s, labels)| {
                let mut it = self.samples(&s, mint, maxt);
                let first = it.next()?;
                Some((labels, first, it))
            })
            .collect()
    }

    /// Whether `[mint, maxt]` covers all stored data, so per-series time
    /// checks can be skipped for label listings.
    fn covers_all(&self, mint: Timestamp, maxt: Timestamp) -> bool {
        mint <= self.min_t.load(Ordering::Relaxed) && maxt >= self.max_t.load(Ordering::Relaxed)
    }
}

impl Drop for DiskStorage {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!(error = %e, "closing storage on drop failed; the next start replays the WAL");
        }
    }
}

struct ChainSeen {
    block: Timestamp,
    pos: Pos,
    maxt: Timestamp,
}

type Batch = Vec<(SeriesRef, Timestamp, u64)>;

/// Samples handed to a replay worker at once.
const REPLAY_BATCH: usize = 4096;

/// Largest reference the replay workers index densely.
const DENSE_LIMIT: usize = 1 << 28;

struct WorkerState {
    out: WorkerResult,
    scratch: Vec<u8>,
    mint: Timestamp,
    maxt: Timestamp,
}

#[derive(Default)]
struct WorkerResult {
    unknown: u64,
    skipped: u64,
    err: Option<StorageError>,
}

struct Replay {
    chains: FxHashMap<SeriesRef, Vec<ChainSeen>>,
    /// Senders to the replay workers; empty while replaying the checkpoint
    /// (applied inline, it is small).
    workers: Vec<std::sync::mpsc::SyncSender<Batch>>,
    bufs: Vec<Batch>,
    aliases: FxHashMap<SeriesRef, Arc<MemSeries>>,
    scratch: Vec<u8>,
    skipped: u64,
    unknown: u64,
}

fn truncate(path: &Path, len: u64) -> Result<(), StorageError> {
    let f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    f.set_len(len).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

fn dir_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn write_labels(out: &mut Vec<u8>, l: &Labels) {
    put_uvarint(out, l.len() as u64);
    for p in l {
        put_bytes(out, p.name.as_bytes());
        put_bytes(out, p.value.as_bytes());
    }
}

fn read_labels(r: &mut Reader<'_>) -> Option<Labels> {
    let n = r.uvarint()?;
    let mut pairs = Vec::with_capacity(n.min(64) as usize);
    for _ in 0..n {
        let name = r.str()?;
        let value = r.str()?;
        pairs.push((name, value));
    }
    Some(Labels::from_pairs(pairs))
}

enum ChunkSrc {
    Mapped(ChunkRef),
    Owned(Vec<u8>),
}

impl ChunkSrc {
    fn bytes(&self) -> &[u8] {
        match self {
            ChunkSrc::Mapped(c) => c.bytes(),
            ChunkSrc::Owned(v) => v,
        }
    }
}

/// Decodes one chunk at a time, only when the caller asks for samples.
struct SampleIter {
    chunks: std::vec::IntoIter<ChunkSrc>,
    cur: Option<(ChunkSrc, ChunkDecoder)>,
    mint: Timestamp,
    maxt: Timestamp,
}

impl Iterator for SampleIter {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        loop {
            if let Some((src, dec)) = &mut self.cur {
                let bytes = src.bytes();
                while let Some(s) = dec.next(bytes) {
                    if s.t < self.mint {
                        continue;
                    }
                    if s.t > self.maxt {
                        self.cur = None;
                        self.chunks = Vec::new().into_iter();
                        return None;
                    }
                    return Some(s);
                }
                self.cur = None;
            }
            let src = self.chunks.next()?;
            let dec = ChunkDecoder::new(src.bytes());
            self.cur = Some((src, dec));
        }
    }
}

struct Pending {
    s: Arc<MemSeries>,
    t: Timestamp,
    v: f64,
}

struct DiskAppender<'a> {
    db: &'a DiskStorage,
    id: u64,
    pending: Vec<Pending>,
    out_of_order: u64,
    duplicates: u64,
    out_of_bounds: u64,
}

impl DiskAppender<'_> {
    /// Checks a sample against the series' newest and queues it.
    /// `before_wait` runs before the one path that takes a lock (the series
    /// mutex, for a timestamp equal to the newest): a caller holding a shard
    /// lock releases it there.
    #[inline]
    fn add(
        &mut self,
        s: Arc<MemSeries>,
        t: Timestamp,
        v: f64,
        before_wait: impl FnOnce(),
    ) -> Result<(), AppendError> {
        if t < self.db.min_valid_t.load(Ordering::Relaxed) {
            self.out_of_bounds += 1;
            return Err(AppendError::OutOfOrder);
        }
        let tag = s.pend.load(Ordering::Relaxed);
        let mine = (tag >> 32 == self.id)
            .then_some((tag & 0xffff_ffff) as usize)
            .filter(|&i| self.pending.get(i).is_some_and(|p| Arc::ptr_eq(&p.s, &s)));
        let last = match mine {
            Some(_) => s.pend_t.load(Ordering::Relaxed),
            None => s.last_t.load(Ordering::Acquire),
        };
        if last == REMOVED {
            return Err(AppendError::UnknownRef);
        }
        if last != NO_SAMPLE && t <= last {
            if t < last {
                self.out_of_order += 1;
                return Err(AppendError::OutOfOrder);
            }
            let prev_bits = match mine {
                Some(i) => self.pending[i].v.to_bits(),
                None => {
                    before_wait();
                    lock(&s.inner).last_v
                }
            };
            if prev_bits == v.to_bits() {
                return Ok(());
            }
            self.duplicates += 1;
            return Err(AppendError::Duplicate);
        }
        let idx = self.pending.len();
        s.pend
            .store((self.id << 32) | idx as u64, Ordering::Relaxed);
        s.pend_t.store(t, Ordering::Relaxed);
        self.pending.push(Pending { s, t, v });
        Ok(())
    }

    fn flush_counters(&self) {
        let c = &self.db.c;
        if self.out_of_order > 0 {
            c.out_of_order
                .fetch_add(self.out_of_order, Ordering::Relaxed);
        }
        if self.duplicates > 0 {
            c.duplicates.fetch_add(self.duplicates, Ordering::Relaxed);
        }
        if self.out_of_bounds > 0 {
            c.out_of_bounds
                .fetch_add(self.out_of_bounds, Ordering::Relaxed);
        }
    }
}

impl Appender for DiskAppender<'_> {
    fn append(&mut self, labels: &Labels, t: Timestamp, v: f64) -> Result<SeriesRef, AppendError> {
        let wal = &self.db.wal;
        let (s, created) = self.db.head.get_or_create(labels, None, |s| {
            let mut rec = Vec::with_capacity(64);
            rec.push(REC_SERIES);
            put_uvarint(&mut rec, 1);
            put_uvarint(&mut rec, s.r);
            write_labels(&mut rec, labels);
            wal.log_deferred(&rec);
        });
        if created {
            self.db.c.created.fetch_add(1, Ordering::Relaxed);
        }
        let r = s.r;
        self.add(s, t, v, || {})?;
        Ok(r)
    }

    #[inline]
    fn append_ref(&mut self, series: SeriesRef, t: Timestamp, v: f64) -> Result<(), AppendError> {
        let s = self.db.head.get(series).ok_or(AppendError::UnknownRef)?;
        self.add(s, t, v, || {})
    }

    fn append_refs(
        &mut self,
        batch: &[(SeriesRef, Timestamp, f64)],
        failed: &mut Vec<(usize, AppendError)>,
    ) {
        let head = &self.db.head;
        // One allocation for the batch rather than a doubling series of
        // them, each copying what was queued so far.
        self.pending.reserve(batch.len());
        // The shard of the previous reference, still read-locked: a scrape's
        // references come in runs that share a shard, and a lock per sample
        // was a quarter of the lookup's cost. Never more than one held, and
        // released before anything that waits (see `add`), so holding it
        // cannot take part in a lock cycle.
        let mut cur: Option<(usize, RwLockReadGuard<'_, ShardTable>)> = None;
        for (i, &(r, t, v)) in batch.iter().enumerate() {
            let (shard, key) = locate(r);
            if cur.as_ref().is_none_or(|(held, _)| *held != shard) {
                // Let go of the previous shard before taking the next.
                drop(cur.take());
                cur = Some((shard, head.read_shard(shard)));
            }
            // Start loading a series a few samples ahead (when the held
            // shard has it), so its cache misses overlap this one's work.
            if let (Some((_, g)), Some(&(ahead, _, _))) = (&cur, batch.get(i + PREFETCH_AHEAD)) {
                let (ahead_shard, ahead_key) = locate(ahead);
                if ahead_shard == shard
                    && let Some(a) = g.get(ahead_key)
                {
                    MemSeries::prefetch(a);
                }
            }
            let Some(s) = cur.as_ref().and_then(|(_, g)| g.get(key)).cloned() else {
                failed.push((i, AppendError::UnknownRef));
                continue;
            };
            if let Err(e) = self.add(s, t, v, || drop(cur.take())) {
                failed.push((i, e));
            }
        }
    }

    fn commit(self: Box<Self>) -> Result<CommitStats, StorageError> {
        self.flush_counters();
        let db = self.db;
        if self.pending.is_empty() {
            return Ok(CommitStats::default());
        }
        if db.closed.load(Ordering::Acquire) {
            return Err(db.closed_error());
        }
        let _gate = read(&db.commit_gate);
        let mut rec = Vec::with_capacity(16 + self.pending.len() * 11);
        rec.push(REC_SAMPLES);
        put_uvarint(&mut rec, self.pending.len() as u64);
        let base_t = self.pending[0].t;
        put_varint(&mut rec, base_t);
        let mut prev_ref = 0u64;
        for p in &self.pending {
            put_varint(&mut rec, p.s.r.wrapping_sub(prev_ref) as i64);
            prev_ref = p.s.r;
            put_varint(&mut rec, p.t.wrapping_sub(base_t));
            rec.extend_from_slice(&p.v.to_bits().to_le_bytes());
        }
        db.wal.log(&rec)?;

        let mut scratch = Vec::new();
        let (mut n, mut ooo, mut dup, mut oob) = (0u64, 0u64, 0u64, 0u64);
        let (mut mint, mut maxt) = (i64::MAX, i64::MIN);
        let mut first_err = None;
        for (i, p) in self.pending.iter().enumerate() {
            if let Some(a) = self.pending.get(i + PREFETCH_AHEAD) {
                MemSeries::prefetch(&a.s);
            }
            let mut inner = lock(&p.s.inner);
            match db.apply(&p.s, &mut inner, p.t, p.v, &mut scratch) {
                Ok(Applied::Appended) => {
                    n += 1;
                    mint = mint.min(p.t);
                    maxt = maxt.max(p.t);
                }
                Ok(Applied::Same | Applied::Removed) => {}
                Ok(Applied::OutOfOrder) => ooo += 1,
                Ok(Applied::Duplicate) => dup += 1,
                Ok(Applied::OutOfBounds) => oob += 1,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        let c = &db.c;
        c.appended.fetch_add(n, Ordering::Relaxed);
        // Races with another appender on the same series are rare; they are
        // counted here rather than at append time.
        for (ctr, v) in [
            (&c.out_of_order, ooo),
            (&c.duplicates, dup),
            (&c.out_of_bounds, oob),
        ] {
            if v > 0 {
                ctr.fetch_add(v, Ordering::Relaxed);
            }
        }
        if n > 0 {
            db.note_time(mint, maxt);
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(CommitStats { samples: n }),
        }
    }

    fn rollback(self: Box<Self>) {
        self.flush_counters();
    }
}

impl Queryable for DiskStorage {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<Series>, StorageError> {
        Ok(self
            .selected(matchers, mint, maxt)
            .into_iter()
            .map(|(labels, first, rest)| Series {
                labels,
                samples: Box::new(std::iter::once(first).chain(rest)),
            })
            .collect())
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
            .map(|(l, _, _)| l)
            .collect())
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<String>, StorageError> {
        if matchers.is_empty() && self.covers_all(mint, maxt) {
            return Ok(self.head.all_label_names());
        }
        let names: BTreeSet<String> = self
            .selected(matchers, mint, maxt)
            .into_iter()
            .flat_map(|(l, _, _)| l.into_vec().into_iter().map(|l| l.name))
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
        if matchers.is_empty() && self.covers_all(mint, maxt) {
            return Ok(self.head.all_label_values(name));
        }
        let values: BTreeSet<String> = self
            .selected(matchers, mint, maxt)
            .into_iter()
            .filter_map(|(l, _, _)| l.get(name).map(str::to_string))
            .collect();
        Ok(values.into_iter().collect())
    }
}

impl Storage for DiskStorage {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(DiskAppender {
            db: self,
            id: u64::from(self.next_appender.fetch_add(1, Ordering::Relaxed)),
            pending: Vec::new(),
            out_of_order: 0,
            duplicates: 0,
            out_of_bounds: 0,
        })
    }

    fn stats(&self) -> HeadStats {
        let c = &self.c;
        let (mut blocks, mut block_bytes, mut chunks, mut samples, mut cbytes, mut head_chunks) =
            (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
        for b in read(&self.blocks).values() {
            blocks += 1;
            block_bytes += b.size();
            let n = b.counters.chunks.load(Ordering::Relaxed);
            chunks += n;
            samples += b.counters.samples.load(Ordering::Relaxed);
            cbytes += b.counters.chunk_bytes.load(Ordering::Relaxed);
            if !b.is_finalized() {
                head_chunks += n;
            }
        }
        let min = self.min_t.load(Ordering::Relaxed);
        let max = self.max_t.load(Ordering::Relaxed);
        HeadStats {
            series: self.head.len() as u64,
            samples_appended: c.appended.load(Ordering::Relaxed),
            out_of_order_samples: c.out_of_order.load(Ordering::Relaxed),
            duplicate_samples: c.duplicates.load(Ordering::Relaxed),
            min_time: (min != i64::MAX).then_some(min),
            max_time: (max != i64::MIN).then_some(max),
            out_of_bounds_samples: c.out_of_bounds.load(Ordering::Relaxed),
            series_created: c.created.load(Ordering::Relaxed),
            series_removed: c.removed.load(Ordering::Relaxed),
            head_chunks: head_chunks + c.open_chunks.load(Ordering::Relaxed),
            open_chunk_bytes: c.open_chunk_bytes.load(Ordering::Relaxed),
            closed_chunks: chunks,
            closed_chunk_samples: samples,
            closed_chunk_bytes: cbytes,
            blocks,
            block_bytes,
            wal_bytes: self.wal.bytes.load(Ordering::Relaxed),
            wal_fsyncs: self.wal.fsyncs.load(Ordering::Relaxed),
            wal_fsync_seconds_total: self.wal.fsync_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            wal_fsync_seconds_max: self.wal.fsync_max_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            corruptions: c.corruptions.load(Ordering::Relaxed),
            replay_seconds: c.replay_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
            blocks_deleted_by_retention: c.retention_deleted.load(Ordering::Relaxed),
        }
    }

    fn tsdb_status(&self, limit: usize) -> TsdbStatus {
        let st = self.stats();
        let mut open_chunks = 0u64;
        self.head.for_each(|s| {
            if !lock(&s.inner).open.is_empty() {
                open_chunks += 1;
            }
        });
        let head_block_chunks: u64 = read(&self.blocks)
            .values()
            .filter(|b| !b.is_finalized())
            .map(|b| b.counters.chunks.load(Ordering::Relaxed))
            .sum();
        let idx = read(&self.head.index);
        let name_sym = idx.symbols.lookup(METRIC_NAME);
        let (mut by_metric, mut value_counts, mut value_bytes, mut pairs) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut num_pairs = 0u64;
        for (name, values) in &idx.postings {
            let n = idx.symbols.get(*name);
            let mut bytes = 0u64;
            for (value, ids) in values {
                let v = idx.symbols.get(*value);
                num_pairs += 1;
                bytes += v.len() as u64;
                if Some(*name) == name_sym {
                    by_metric.push(NameCount {
                        name: v.to_string(),
                        value: ids.len() as u64,
                    });
                }
                pairs.push(NameCount {
                    name: format!("{n}={v}"),
                    value: ids.len() as u64,
                });
            }
            value_counts.push(NameCount {
                name: n.to_string(),
                value: values.len() as u64,
            });
            value_bytes.push(NameCount {
                name: n.to_string(),
                value: bytes,
            });
        }
        TsdbStatus {
            head_stats: TsdbHeadStats {
                num_series: idx.series as u64,
                num_label_pairs: num_pairs,
                chunk_count: open_chunks + head_block_chunks,
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
