//! Chunk files: closed chunks on disk, memory-mapped, grouped in blocks of
//! one fixed time window each.
//!
//! Sits under the head: when the head cuts a series' open chunk it hands
//! the bytes here and keeps only the returned position; queries read the
//! chunk back through the mapping. Retention deletes whole blocks. This
//! module owns the file layout and the mappings; it never decodes samples
//! and never holds series state.
//!
//! A block is the directory `blocks/<window start ms>/` with:
//! - `meta`: `<start> <end>\n`, the window `[start, end)` in milliseconds;
//! - `000001`, `000002`, ...: segments of chunk records of at most
//!   [`SEGMENT_CAP`] bytes, each mapped once at that size; records are
//!   appended with `pwrite` (a full disk is then an error, not a `SIGBUS`)
//!   and read back through the mapping;
//! - `index`, written once when the window is finalized: the sorted table
//!   `series ref -> newest chunk` that replaces the per-series positions
//!   the head held in memory. A block without `index` is still open.
//!
//! A chunk record is `len: u32 LE | body | crc32c(body): u32 LE`, with body
//! `series ref (uvarint) | distance back to the same series' previous chunk
//! in this block (uvarint, 0 = none) | mint - window start (varint) |
//! maxt - mint (uvarint) | chunk bytes (uvarint length + bytes)`. The
//! back-pointers chain each series' chunks, so neither the head nor the
//! index stores more than the newest position per series and block.
//!
//! Safety of the shared mapping: records are written only by the holder of
//! the block's writer mutex, past the end of the file; a position is
//! published (stored in a series, or in the index) only after its record is
//! completely written, and the series mutex or the index file orders that
//! publication before any read. So a reader never sees bytes being written.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use memmap2::{MmapOptions, MmapRaw};

use super::StorageError;
use super::encoding::{Reader, put_bytes, put_uvarint, put_varint};
use super::wal::{io_err, sync_dir};
use crate::model::Timestamp;

/// Mapped size of a segment. The file grows as records are appended; the
/// mapping is made once at full size (address space is cheap on 64-bit
/// targets) and only the part inside the file is ever read.
pub const SEGMENT_CAP: u64 = 512 << 20;

/// No previous chunk.
pub const NO_POS: u64 = 0;

const INDEX_MAGIC: &[u8; 8] = b"WPBIDX01";
const INDEX_HEADER: usize = 8 + 8 * 8;
const ENTRY: usize = 40;

/// Position of a chunk record inside one block: segment number in the high
/// 32 bits, byte offset in the low 32. Segments start at 1, so 0 is free to
/// mean "none".
pub type Pos = u64;

fn pos_of(seg: u32, off: u64) -> Pos {
    (u64::from(seg) << 32) | off
}

fn split_pos(p: Pos) -> (u32, usize) {
    ((p >> 32) as u32, (p & 0xffff_ffff) as usize)
}

/// One mapped segment file.
pub struct Segment {
    map: MmapRaw,
    path: PathBuf,
    file: File,
    /// Bytes holding whole records.
    used: AtomicU64,
}

impl Segment {
    fn bytes(&self, off: usize, len: usize) -> Option<&[u8]> {
        let used = self.used.load(Ordering::Acquire) as usize;
        let end = off.checked_add(len)?;
        if end > used || end > self.map.len() {
            return None;
        }
        // SAFETY: `[off, end)` lies within the mapping and within the bytes
        // already written to the file (`used` is advanced only after a
        // record is complete), and written bytes are never modified again;
        // see the module docs for the publication order.
        Some(unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(off), len) })
    }
}

/// A chunk record read back from a block.
#[derive(Clone)]
pub struct ChunkRef {
    pub seg: Arc<Segment>,
    pub data_off: usize,
    pub data_len: usize,
    pub mint: Timestamp,
    pub maxt: Timestamp,
}

impl ChunkRef {
    pub fn bytes(&self) -> &[u8] {
        self.seg.bytes(self.data_off, self.data_len).unwrap_or(&[])
    }
}

impl std::fmt::Debug for ChunkRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkRef")
            .field("mint", &self.mint)
            .field("maxt", &self.maxt)
            .field("len", &self.data_len)
            .finish()
    }
}

/// Header of one chunk record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHead {
    pub series: u64,
    pub prev: Pos,
    pub mint: Timestamp,
    pub maxt: Timestamp,
    pub samples: u16,
}

/// One row of a finalized block's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub series: u64,
    pub last: Pos,
    pub mint: Timestamp,
    pub maxt: Timestamp,
    pub chunks: u32,
    pub samples: u32,
}

struct WriterPos {
    seg: u32,
    off: u64,
}

/// Totals of a block, kept for stats and retention.
#[derive(Debug, Default)]
pub struct BlockCounters {
    pub chunks: AtomicU64,
    pub samples: AtomicU64,
    pub bytes: AtomicU64,
    pub chunk_bytes: AtomicU64,
}

/// One time window's chunk files.
pub struct Block {
    pub start: Timestamp,
    pub end: Timestamp,
    dir: PathBuf,
    segments: RwLock<Vec<Arc<Segment>>>,
    writer: Mutex<Option<WriterPos>>,
    index: RwLock<Option<Arc<MmapRaw>>>,
    pub counters: BlockCounters,
}

fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}
fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn parse_head(body: &[u8], start: Timestamp) -> Option<(RecordHead, usize, usize)> {
    let mut r = Reader::new(body);
    let series = r.uvarint()?;
    let back = r.uvarint()?;
    let mint = start.wrapping_add(r.varint()?);
    let maxt = mint.wrapping_add(r.uvarint()? as i64);
    let len = usize::try_from(r.uvarint()?).ok()?;
    let data_off = r.pos();
    let data = r.take(len)?;
    let samples = super::chunk::sample_count(data);
    Some((
        RecordHead {
            series,
            prev: back,
            mint,
            maxt,
            samples,
        },
        data_off,
        len,
    ))
}

impl Block {
    /// Creates an open block for `[start, end)` in `dir`.
    pub fn create(dir: PathBuf, start: Timestamp, end: Timestamp) -> Result<Block, StorageError> {
        fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        let meta = dir.join("meta");
        fs::write(&meta, format!("{start} {end}\n")).map_err(|e| io_err(&meta, e))?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Ok(Block {
            start,
            end,
            dir,
            segments: RwLock::new(Vec::new()),
            writer: Mutex::new(Some(WriterPos { seg: 0, off: 0 })),
            index: RwLock::new(None),
            counters: BlockCounters::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn is_finalized(&self) -> bool {
        read_lock(&self.index).is_some()
    }

    fn new_segment(&self, seg: u32) -> Result<Arc<Segment>, StorageError> {
        let path = self.dir.join(format!("{seg:06}"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        let map = MmapOptions::new()
            .len(SEGMENT_CAP as usize)
            .map_raw_read_only(&file)
            .map_err(|e| io_err(&path, e))?;
        sync_dir(&self.dir)?;
        Ok(Arc::new(Segment {
            map,
            path,
            file,
            used: AtomicU64::new(0),
        }))
    }

    /// Writes one closed chunk of `series` and returns its position. `prev`
    /// is the series' previous chunk in this block, [`NO_POS`] for none.
    pub fn write_chunk(
        &self,
        series: u64,
        prev: Pos,
        mint: Timestamp,
        maxt: Timestamp,
        data: &[u8],
        scratch: &mut Vec<u8>,
    ) -> Result<Pos, StorageError> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let Some(wp) = w.as_mut() else {
            return Err(StorageError::Other(format!(
                "block {}: chunk write after finalization: this is a bug in the head",
                self.dir.display()
            )));
        };
        // The back-pointer is a distance, which depends on where this
        // record lands; encode once assuming the current segment and again
        // if a new segment is needed.
        let encode = |at: Pos, scratch: &mut Vec<u8>| {
            scratch.clear();
            scratch.extend_from_slice(&[0u8; 4]);
            put_uvarint(scratch, series);
            put_uvarint(scratch, if prev == NO_POS { 0 } else { at - prev });
            put_varint(scratch, mint.wrapping_sub(self.start));
            put_uvarint(scratch, maxt.wrapping_sub(mint) as u64);
            put_bytes(scratch, data);
            let body_len = (scratch.len() - 4) as u32;
            scratch[..4].copy_from_slice(&body_len.to_le_bytes());
            let crc = crc32c::crc32c(&scratch[4..]);
            scratch.extend_from_slice(&crc.to_le_bytes());
        };
        encode(pos_of(wp.seg, wp.off), scratch);
        if wp.seg == 0 || wp.off + scratch.len() as u64 > SEGMENT_CAP {
            let seg = self.new_segment(wp.seg + 1)?;
            write_lock(&self.segments).push(seg);
            wp.seg += 1;
            wp.off = 0;
            encode(pos_of(wp.seg, 0), scratch);
        }
        let segs = read_lock(&self.segments);
        let Some(seg) = segs.get(wp.seg as usize - 1) else {
            return Err(StorageError::Other(format!(
                "block {}: segment {} missing from the writer's list: this is a bug",
                self.dir.display(),
                wp.seg
            )));
        };
        if let Err(e) = seg.file.write_all_at(scratch, wp.off) {
            // Cut a partial record so the segment stays whole records.
            let _ = seg.file.set_len(wp.off);
            return Err(io_err(&seg.path, e));
        }
        let pos = pos_of(wp.seg, wp.off);
        wp.off += scratch.len() as u64;
        seg.used.store(wp.off, Ordering::Release);
        let c = &self.counters;
        c.chunks.fetch_add(1, Ordering::Relaxed);
        c.samples.fetch_add(
            u64::from(super::chunk::sample_count(data)),
            Ordering::Relaxed,
        );
        c.bytes.fetch_add(scratch.len() as u64, Ordering::Relaxed);
        c.chunk_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(pos)
    }

    /// Reads the record at `pos`.
    pub fn read(&self, pos: Pos) -> Option<(RecordHead, ChunkRef)> {
        let (seg_no, off) = split_pos(pos);
        let seg = read_lock(&self.segments)
            .get((seg_no as usize).checked_sub(1)?)?
            .clone();
        let len_b = seg.bytes(off, 4)?;
        let body_len = u32::from_le_bytes([len_b[0], len_b[1], len_b[2], len_b[3]]) as usize;
        let body = seg.bytes(off + 4, body_len)?;
        let (mut head, data_off, data_len) = parse_head(body, self.start)?;
        head.prev = if head.prev == 0 {
            NO_POS
        } else {
            pos.checked_sub(head.prev)?
        };
        let r = ChunkRef {
            seg,
            data_off: off + 4 + data_off,
            data_len,
            mint: head.mint,
            maxt: head.maxt,
        };
        Some((head, r))
    }

    /// Chunks of the chain ending at `last` that overlap `[mint, maxt]`, in
    /// time order.
    pub fn chain(&self, last: Pos, mint: Timestamp, maxt: Timestamp) -> Vec<ChunkRef> {
        let mut out = Vec::new();
        let mut p = last;
        while p != NO_POS {
            let Some((head, r)) = self.read(p) else { break };
            if head.maxt < mint {
                break;
            }
            if head.mint <= maxt {
                out.push(r);
            }
            p = head.prev;
        }
        out.reverse();
        out
    }

    /// Flushes written records to stable storage.
    pub fn flush(&self) -> Result<(), StorageError> {
        if self.is_finalized() {
            return Ok(());
        }
        for seg in read_lock(&self.segments).iter() {
            seg.file.sync_data().map_err(|e| io_err(&seg.path, e))?;
        }
        Ok(())
    }

    /// Finalizes the block: no more writes, and `entries` (sorted by series)
    /// become its index.
    pub fn finalize(&self, entries: &[IndexEntry]) -> Result<(), StorageError> {
        {
            let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            *w = None;
        }
        self.flush()?;
        let mut buf = Vec::with_capacity(INDEX_HEADER + entries.len() * ENTRY + 4);
        buf.extend_from_slice(INDEX_MAGIC);
        let c = &self.counters;
        for v in [
            self.start as u64,
            self.end as u64,
            entries.len() as u64,
            c.chunks.load(Ordering::Relaxed),
            c.samples.load(Ordering::Relaxed),
            c.chunk_bytes.load(Ordering::Relaxed),
            entries.iter().map(|e| e.mint).min().unwrap_or(0) as u64,
            entries.iter().map(|e| e.maxt).max().unwrap_or(0) as u64,
        ] {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        for e in entries {
            buf.extend_from_slice(&e.series.to_le_bytes());
            buf.extend_from_slice(&e.last.to_le_bytes());
            buf.extend_from_slice(&e.mint.to_le_bytes());
            buf.extend_from_slice(&e.maxt.to_le_bytes());
            buf.extend_from_slice(&e.chunks.to_le_bytes());
            buf.extend_from_slice(&e.samples.to_le_bytes());
        }
        let crc = crc32c::crc32c(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        let path = self.dir.join("index");
        let tmp = self.dir.join("index.tmp");
        fs::write(&tmp, &buf).map_err(|e| io_err(&tmp, e))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_err(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
        sync_dir(&self.dir)?;
        let map = map_index(&path)?;
        c.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        *write_lock(&self.index) = Some(Arc::new(map));
        Ok(())
    }

    /// The index entry of `series` in a finalized block.
    pub fn lookup(&self, series: u64) -> Option<IndexEntry> {
        let idx = read_lock(&self.index).clone()?;
        let n = (idx.len() - INDEX_HEADER - 4) / ENTRY;
        // SAFETY: the index file is written once, before it is mapped, and
        // never modified; the mapping covers the whole file.
        let data = unsafe { std::slice::from_raw_parts(idx.as_ptr(), idx.len()) };
        let entry = |i: usize| {
            let b = &data[INDEX_HEADER + i * ENTRY..INDEX_HEADER + (i + 1) * ENTRY];
            let u = |o: usize| {
                let mut a = [0u8; 8];
                a.copy_from_slice(&b[o..o + 8]);
                u64::from_le_bytes(a)
            };
            let w = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
            IndexEntry {
                series: u(0),
                last: u(8),
                mint: u(16) as i64,
                maxt: u(24) as i64,
                chunks: w(32),
                samples: w(36),
            }
        };
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let e = entry(mid);
            match e.series.cmp(&series) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(e),
            }
        }
        None
    }

    /// Bytes on disk (used segment bytes plus the index).
    pub fn size(&self) -> u64 {
        self.counters.bytes.load(Ordering::Relaxed)
    }

    /// Opens the block in `dir` found on disk. A finalized block maps its
    /// index and segments read-only. An open block is scanned: every valid
    /// record is reported to `on_record` (so the head can rebuild its
    /// per-series positions), and everything from the first invalid record
    /// on (a crash can leave a half-written record) is discarded and
    /// cut off, so stale bytes can never be mistaken for records later.
    pub fn open(
        dir: PathBuf,
        mut on_record: impl FnMut(&RecordHead, Pos),
    ) -> Result<(Block, Option<String>), StorageError> {
        let meta_path = dir.join("meta");
        let meta = fs::read_to_string(&meta_path).map_err(|e| io_err(&meta_path, e))?;
        let mut it = meta.split_whitespace().map(str::parse::<i64>);
        let (Some(Ok(start)), Some(Ok(end))) = (it.next(), it.next()) else {
            return Err(StorageError::Corruption {
                path: meta_path.display().to_string(),
                offset: 0,
                reason: format!("expected \"<start> <end>\", found {meta:?}"),
            });
        };
        let mut seg_nos: Vec<u32> = Vec::new();
        for e in fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
            let e = e.map_err(|e| io_err(&dir, e))?;
            if let Some(n) = e
                .file_name()
                .to_str()
                .filter(|n| n.len() == 6)
                .and_then(|n| n.parse::<u32>().ok())
            {
                seg_nos.push(n);
            }
        }
        seg_nos.sort_unstable();
        let index_path = dir.join("index");
        let finalized = index_path.exists();
        let block = Block {
            start,
            end,
            dir: dir.clone(),
            segments: RwLock::new(Vec::new()),
            writer: Mutex::new(None),
            index: RwLock::new(None),
            counters: BlockCounters::default(),
        };
        let mut warning = None;
        if finalized {
            let map = map_index(&index_path)?;
            block
                .counters
                .bytes
                .fetch_add(map.len() as u64, Ordering::Relaxed);
            read_index_totals(&map, &block.counters);
            *write_lock(&block.index) = Some(Arc::new(map));
            let mut segs = write_lock(&block.segments);
            for (i, n) in seg_nos.iter().enumerate() {
                if *n as usize != i + 1 {
                    return Err(StorageError::Corruption {
                        path: dir.display().to_string(),
                        offset: 0,
                        reason: format!("segment {n:06} out of sequence (expected {:06})", i + 1),
                    });
                }
                let path = dir.join(format!("{n:06}"));
                let file = File::open(&path).map_err(|e| io_err(&path, e))?;
                let len = file.metadata().map_err(|e| io_err(&path, e))?.len();
                block.counters.bytes.fetch_add(len, Ordering::Relaxed);
                let map = MmapOptions::new()
                    .len(len.max(1) as usize)
                    .map_raw_read_only(&file)
                    .map_err(|e| io_err(&path, e))?;
                segs.push(Arc::new(Segment {
                    map,
                    path,
                    file,
                    used: AtomicU64::new(len),
                }));
            }
            drop(segs);
            return Ok((block, None));
        }
        let mut wp = WriterPos { seg: 0, off: 0 };
        let mut stop = false;
        for (i, n) in seg_nos.iter().enumerate() {
            let path = dir.join(format!("{n:06}"));
            if stop || *n as usize != i + 1 {
                // Records here may point back into discarded bytes.
                stop = true;
                fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
                continue;
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| io_err(&path, e))?;
            let len = file.metadata().map_err(|e| io_err(&path, e))?.len();
            let map = MmapOptions::new()
                .len(SEGMENT_CAP as usize)
                .map_raw_read_only(&file)
                .map_err(|e| io_err(&path, e))?;
            // SAFETY: nothing else writes this file yet, and only the part
            // inside the file is viewed.
            let data = unsafe {
                std::slice::from_raw_parts(map.as_ptr(), (len.min(SEGMENT_CAP)) as usize)
            };
            let mut off = 0usize;
            let mut bad = None;
            while off + 8 <= data.len() {
                let body_len =
                    u32::from_le_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]])
                        as usize;
                if body_len == 0 {
                    // Zero fill: the end of what was written.
                    break;
                }
                let end = off + 4 + body_len + 4;
                if end > data.len() {
                    bad = Some("record runs past the end of the segment".to_string());
                    break;
                }
                let body = &data[off + 4..off + 4 + body_len];
                let crc = u32::from_le_bytes([
                    data[end - 4],
                    data[end - 3],
                    data[end - 2],
                    data[end - 1],
                ]);
                if crc32c::crc32c(body) != crc {
                    bad = Some("checksum mismatch".to_string());
                    break;
                }
                let Some((mut head, _, data_len)) = parse_head(body, start) else {
                    bad = Some("malformed record header".to_string());
                    break;
                };
                let pos = pos_of(*n, off as u64);
                head.prev = if head.prev == 0 {
                    NO_POS
                } else {
                    pos.saturating_sub(head.prev)
                };
                on_record(&head, pos);
                let c = &block.counters;
                c.chunks.fetch_add(1, Ordering::Relaxed);
                c.samples
                    .fetch_add(u64::from(head.samples), Ordering::Relaxed);
                c.bytes.fetch_add((end - off) as u64, Ordering::Relaxed);
                c.chunk_bytes.fetch_add(data_len as u64, Ordering::Relaxed);
                off = end;
            }
            if let Some(reason) = bad {
                warning = Some(format!(
                    "{}: offset {off}: {reason}: discarding this and later chunk records, the WAL still holds their samples",
                    path.display()
                ));
                stop = true;
            }
            // Drop everything past the valid records, so stale bytes can
            // never be read as records once writing resumes.
            if (off as u64) < len {
                file.set_len(off as u64).map_err(|e| io_err(&path, e))?;
            }
            wp = WriterPos {
                seg: *n,
                off: off as u64,
            };
            write_lock(&block.segments).push(Arc::new(Segment {
                map,
                path,
                file,
                used: AtomicU64::new(off as u64),
            }));
        }
        *block.writer.lock().unwrap_or_else(|e| e.into_inner()) = Some(wp);
        Ok((block, warning))
    }
}

fn map_index(path: &Path) -> Result<MmapRaw, StorageError> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let len = file.metadata().map_err(|e| io_err(path, e))?.len() as usize;
    let corrupt = |reason: String| StorageError::Corruption {
        path: path.display().to_string(),
        offset: 0,
        reason,
    };
    if len < INDEX_HEADER + 4 || !(len - INDEX_HEADER - 4).is_multiple_of(ENTRY) {
        return Err(corrupt(format!("index size {len} is not a whole table")));
    }
    let map = MmapOptions::new()
        .map_raw_read_only(&file)
        .map_err(|e| io_err(path, e))?;
    // SAFETY: read-only mapping of a file nobody writes.
    let data = unsafe { std::slice::from_raw_parts(map.as_ptr(), map.len()) };
    if &data[..8] != INDEX_MAGIC {
        return Err(corrupt("bad magic".into()));
    }
    let stored = u32::from_le_bytes([data[len - 4], data[len - 3], data[len - 2], data[len - 1]]);
    let got = crc32c::crc32c(&data[..len - 4]);
    if stored != got {
        return Err(corrupt(format!(
            "checksum mismatch (stored {stored:08x}, computed {got:08x})"
        )));
    }
    Ok(map)
}

fn read_index_totals(map: &MmapRaw, c: &BlockCounters) {
    // SAFETY: as in `map_index`.
    let data = unsafe { std::slice::from_raw_parts(map.as_ptr(), map.len()) };
    let u = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&data[8 + i * 8..16 + i * 8]);
        u64::from_le_bytes(a)
    };
    c.chunks.store(u(3), Ordering::Relaxed);
    c.samples.store(u(4), Ordering::Relaxed);
    c.chunk_bytes.store(u(5), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::chunk::{ChunkEncoder, decode_all};

    fn chunk(ts: &[i64]) -> Vec<u8> {
        let mut e = ChunkEncoder::new();
        for &t in ts {
            e.append(t, t as f64);
        }
        e.bytes().to_vec()
    }

    #[test]
    fn write_chain_finalize_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let bdir = dir.path().join("0");
        let b = Block::create(bdir.clone(), 0, 1000).unwrap();
        let mut scratch = Vec::new();
        let p1 = b
            .write_chunk(7, NO_POS, 0, 20, &chunk(&[0, 10, 20]), &mut scratch)
            .unwrap();
        let q1 = b
            .write_chunk(9, NO_POS, 5, 5, &chunk(&[5]), &mut scratch)
            .unwrap();
        let p2 = b
            .write_chunk(7, p1, 30, 50, &chunk(&[30, 50]), &mut scratch)
            .unwrap();
        let got: Vec<i64> = b
            .chain(p2, 0, 1000)
            .iter()
            .flat_map(|c| decode_all(c.bytes()))
            .map(|s| s.t)
            .collect();
        assert_eq!(got, vec![0, 10, 20, 30, 50]);
        assert_eq!(b.chain(p2, 25, 1000).len(), 1);
        assert_eq!(b.chain(p2, 0, 4).len(), 1);

        // Reopen while open: the scan reports every record.
        b.flush().unwrap();
        drop(b);
        let mut seen = Vec::new();
        let (b, warn) = Block::open(bdir.clone(), |h, p| seen.push((h.series, h.prev, p))).unwrap();
        assert!(warn.is_none());
        assert_eq!(seen, vec![(7, NO_POS, p1), (9, NO_POS, q1), (7, p1, p2)]);
        let entries = [
            IndexEntry {
                series: 7,
                last: p2,
                mint: 0,
                maxt: 50,
                chunks: 2,
                samples: 5,
            },
            IndexEntry {
                series: 9,
                last: q1,
                mint: 5,
                maxt: 5,
                chunks: 1,
                samples: 1,
            },
        ];
        b.finalize(&entries).unwrap();
        assert_eq!(b.lookup(9), Some(entries[1]));
        drop(b);
        let (b, _) = Block::open(bdir, |_, _| panic!("finalized blocks are not scanned")).unwrap();
        assert!(b.is_finalized());
        assert_eq!(b.lookup(7), Some(entries[0]));
        assert_eq!(b.lookup(8), None);
        let e = b.lookup(7).unwrap();
        assert_eq!(b.chain(e.last, 0, 100).len(), 2);
        assert_eq!(b.counters.samples.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn damaged_record_discards_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let bdir = dir.path().join("0");
        let b = Block::create(bdir.clone(), 0, 1000).unwrap();
        let mut s = Vec::new();
        let p1 = b
            .write_chunk(1, NO_POS, 0, 0, &chunk(&[0]), &mut s)
            .unwrap();
        let p2 = b
            .write_chunk(2, NO_POS, 1, 1, &chunk(&[1]), &mut s)
            .unwrap();
        b.write_chunk(3, NO_POS, 2, 2, &chunk(&[2]), &mut s)
            .unwrap();
        b.flush().unwrap();
        drop(b);
        let path = bdir.join("000001");
        let mut data = fs::read(&path).unwrap();
        let (_, off) = split_pos(p2);
        data[off + 6] ^= 0xff;
        fs::write(&path, &data).unwrap();
        let mut seen = Vec::new();
        let (b, warn) = Block::open(bdir, |h, _| seen.push(h.series)).unwrap();
        assert_eq!(seen, vec![1]);
        let warn = warn.unwrap();
        assert!(
            warn.contains("000001") && warn.contains("checksum"),
            "{warn}"
        );
        // Writing resumes where the valid records end.
        let p = b
            .write_chunk(4, NO_POS, 3, 3, &chunk(&[3]), &mut s)
            .unwrap();
        assert_eq!(p, p2);
        assert!(b.read(p1).is_some());
    }
}
