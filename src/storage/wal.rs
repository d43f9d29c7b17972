//! The write-ahead log: every series creation and every committed batch of
//! samples, in order, so the head can be rebuilt after a stop or a crash.
//!
//! Sits under the head's commit path (one record per commit, written before
//! the samples become visible) and under `DiskStorage::open` (replay). It
//! owns segment files, record framing, the sync policy and checkpoint files;
//! it does not know what a series or a chunk is beyond the record payloads
//! it is handed.
//!
//! Layout of `wal/`: segments named by an eight-digit sequence number
//! (`00000012`), each at most [`SEGMENT_SIZE`] bytes, and at most one
//! `checkpoint.NNNNNNNN` holding the state that segments up to and
//! including `NNNNNNNN` described. A record is framed as
//! `len: u32 LE | crc32c(payload): u32 LE | payload`.
//!
//! Reading classifies the end of each file: clean; a torn tail (the last
//! record of the newest segment runs past the end of the file, or the file
//! ends in zeros), which a crash mid-write leaves behind and which is
//! truncated with a warning; or corruption (a checksum mismatch or an
//! impossible length anywhere else), which is reported with the file and the
//! offset.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::StorageError;

/// Size at which the writer starts a new segment. Big enough that rotation
/// is rare, small enough that a checkpoint frees space in useful steps.
pub const SEGMENT_SIZE: u64 = 128 << 20;

/// A record longer than this is taken as a corrupt length field: a commit
/// of a million samples is about 11 MiB.
pub const MAX_RECORD: u32 = 256 << 20;

const FRAME: usize = 8;

/// When the WAL is flushed to stable storage. Every policy hands each
/// commit to the operating system before the commit returns, so a killed
/// process loses nothing; the policy decides what a power loss can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalSync {
    /// fsync inside every commit: nothing acknowledged is lost, at the cost
    /// of one disk flush per scrape.
    Always,
    /// fsync when the owner calls [`super::DiskStorage::sync_wal`], which
    /// the app does at this period (and on segment rotation and close).
    Every(Duration),
    /// Leave flushing to the operating system (and to rotation and close).
    Never,
}

impl Default for WalSync {
    fn default() -> Self {
        WalSync::Every(Duration::from_secs(1))
    }
}

pub fn io_err(path: &Path, source: std::io::Error) -> StorageError {
    StorageError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub fn segment_path(dir: &Path, seq: u32) -> PathBuf {
    dir.join(format!("{seq:08}"))
}

pub fn checkpoint_path(dir: &Path, seq: u32) -> PathBuf {
    dir.join(format!("checkpoint.{seq:08}"))
}

/// Sequence numbers of the segments in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u32>, StorageError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let e = e.map_err(|e| io_err(dir, e))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() == 8
            && name.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = name.parse()
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The newest complete checkpoint in `dir`, if any. Leftover temporary
/// files of an interrupted checkpoint are removed.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<u32>, StorageError> {
    let mut best = None;
    for e in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let e = e.map_err(|e| io_err(dir, e))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(rest) = name.strip_prefix("checkpoint.") {
            if rest.ends_with(".tmp") {
                let _ = fs::remove_file(e.path());
                continue;
            }
            if let Ok(n) = rest.parse::<u32>() {
                best = best.max(Some(n));
            }
        }
    }
    Ok(best)
}

/// Frames a payload as one record.
pub fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// How reading a file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadEnd {
    Clean,
    /// An incomplete record (or zero fill) at `offset` up to the end.
    Torn {
        offset: u64,
    },
    /// A damaged record at `offset`; records before it were good.
    Corrupt {
        offset: u64,
        reason: String,
    },
}

/// Calls `f` with each record payload of `data` in order and says how the
/// data ended. `may_be_torn` is true only for the newest file, the one a
/// crash can leave half-written.
pub fn read_records(data: &[u8], may_be_torn: bool, mut f: impl FnMut(&[u8])) -> ReadEnd {
    let mut off = 0usize;
    loop {
        if off == data.len() {
            return ReadEnd::Clean;
        }
        let rest = &data[off..];
        if rest.iter().all(|&b| b == 0) {
            // Zero fill past the last write: what a file system leaves when
            // it extended the file but the data never reached the disk.
            return if may_be_torn {
                ReadEnd::Torn { offset: off as u64 }
            } else {
                ReadEnd::Corrupt {
                    offset: off as u64,
                    reason: "zero bytes where a record should start".into(),
                }
            };
        }
        if rest.len() < FRAME {
            return if may_be_torn {
                ReadEnd::Torn { offset: off as u64 }
            } else {
                ReadEnd::Corrupt {
                    offset: off as u64,
                    reason: format!("{} bytes left, too few for a record header", rest.len()),
                }
            };
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_RECORD {
            return ReadEnd::Corrupt {
                offset: off as u64,
                reason: format!("record length {len} exceeds the maximum {MAX_RECORD}"),
            };
        }
        let end = FRAME + len as usize;
        if rest.len() < end {
            return if may_be_torn {
                ReadEnd::Torn { offset: off as u64 }
            } else {
                ReadEnd::Corrupt {
                    offset: off as u64,
                    reason: format!(
                        "record of {len} bytes runs past the end of the file ({} bytes left)",
                        rest.len() - FRAME
                    ),
                }
            };
        }
        let payload = &rest[FRAME..end];
        let got = crc32c::crc32c(payload);
        if got != crc {
            return ReadEnd::Corrupt {
                offset: off as u64,
                reason: format!("checksum mismatch (stored {crc:08x}, computed {got:08x})"),
            };
        }
        f(payload);
        off += end;
    }
}

struct Writer {
    file: File,
    seq: u32,
    size: u64,
    /// Series records not yet written: they ride along with the next sample
    /// record, which is always written before anything can depend on them.
    pending: Vec<u8>,
    dirty: bool,
}

/// The WAL writer. One mutex: a commit encodes its record outside the lock
/// and holds the lock only for the `write` system call.
pub struct Wal {
    dir: PathBuf,
    sync: WalSync,
    w: Mutex<Writer>,
    pub fsyncs: AtomicU64,
    pub fsync_nanos: AtomicU64,
    pub fsync_max_nanos: AtomicU64,
    /// Bytes in segments and the checkpoint on disk.
    pub bytes: AtomicU64,
    pub records: AtomicU64,
}

impl Wal {
    /// Opens a new segment `seq` for writing.
    pub fn create(dir: &Path, seq: u32, sync: WalSync, bytes: u64) -> Result<Wal, StorageError> {
        let path = segment_path(dir, seq);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        let size = file.metadata().map_err(|e| io_err(&path, e))?.len();
        sync_dir(dir)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            sync,
            w: Mutex::new(Writer {
                file,
                seq,
                size,
                pending: Vec::new(),
                dirty: false,
            }),
            fsyncs: AtomicU64::new(0),
            fsync_nanos: AtomicU64::new(0),
            fsync_max_nanos: AtomicU64::new(0),
            bytes: AtomicU64::new(bytes + size),
            records: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Writer> {
        // A panic mid-write leaves at worst a torn record, which replay
        // handles; the writer state itself stays usable.
        self.w.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a series record; it reaches the file with the next
    /// [`Wal::log`] or [`Wal::sync`].
    pub fn log_deferred(&self, payload: &[u8]) {
        let mut w = self.lock();
        frame(&mut w.pending, payload);
    }

    /// Writes one record (after any queued ones) and applies the sync policy.
    pub fn log(&self, payload: &[u8]) -> Result<(), StorageError> {
        let mut rec = Vec::with_capacity(payload.len() + FRAME);
        frame(&mut rec, payload);
        let mut w = self.lock();
        self.write_locked(&mut w, &rec)?;
        if self.sync == WalSync::Always {
            self.fsync_locked(&mut w)?;
        }
        Ok(())
    }

    fn write_locked(&self, w: &mut Writer, rec: &[u8]) -> Result<(), StorageError> {
        let need = (w.pending.len() + rec.len()) as u64;
        if w.size > 0 && w.size + need > SEGMENT_SIZE {
            self.rotate_locked(w)?;
        }
        if !w.pending.is_empty() {
            let pending = std::mem::take(&mut w.pending);
            self.write_raw(w, &pending)?;
        }
        if !rec.is_empty() {
            self.write_raw(w, rec)?;
            self.records.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn write_raw(&self, w: &mut Writer, b: &[u8]) -> Result<(), StorageError> {
        if let Err(e) = w.file.write_all(b) {
            let path = segment_path(&self.dir, w.seq);
            // A partial write would leave a torn record in the middle of the
            // segment once later records follow; cut the file back so the
            // segment stays a sequence of whole records.
            let _ = w.file.set_len(w.size);
            return Err(io_err(&path, e));
        }
        w.size += b.len() as u64;
        w.dirty = true;
        self.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn fsync_locked(&self, w: &mut Writer) -> Result<(), StorageError> {
        if !w.dirty {
            return Ok(());
        }
        let start = Instant::now();
        w.file
            .sync_data()
            .map_err(|e| io_err(&segment_path(&self.dir, w.seq), e))?;
        let nanos = start.elapsed().as_nanos() as u64;
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.fsync_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.fsync_max_nanos.fetch_max(nanos, Ordering::Relaxed);
        w.dirty = false;
        Ok(())
    }

    fn rotate_locked(&self, w: &mut Writer) -> Result<u32, StorageError> {
        if self.sync != WalSync::Never {
            self.fsync_locked(w)?;
        }
        let closed = w.seq;
        let seq = closed + 1;
        let path = segment_path(&self.dir, seq);
        w.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        w.seq = seq;
        w.size = 0;
        w.dirty = false;
        sync_dir(&self.dir)?;
        Ok(closed)
    }

    /// Writes queued records and flushes the segment to stable storage.
    pub fn sync(&self) -> Result<(), StorageError> {
        let mut w = self.lock();
        self.write_locked(&mut w, &[])?;
        self.fsync_locked(&mut w)
    }

    /// Flushes and starts a new segment; returns the number of the last
    /// closed one. Everything logged before this call is in segments up to
    /// and including that number.
    pub fn rotate(&self) -> Result<u32, StorageError> {
        let mut w = self.lock();
        self.write_locked(&mut w, &[])?;
        self.fsync_locked(&mut w)?;
        self.rotate_locked(&mut w)
    }

    /// Number of the segment being written.
    pub fn current_segment(&self) -> u32 {
        self.lock().seq
    }
}

/// Makes a rename or a new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

/// Writes `records` as checkpoint `seq` atomically: a temporary file,
/// fsync, rename, directory fsync. Returns its size.
pub fn write_checkpoint(dir: &Path, seq: u32, body: &[u8]) -> Result<u64, StorageError> {
    let final_path = checkpoint_path(dir, seq);
    let tmp = dir.join(format!("checkpoint.{seq:08}.tmp"));
    let mut f = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    f.write_all(body).map_err(|e| io_err(&tmp, e))?;
    f.sync_all().map_err(|e| io_err(&tmp, e))?;
    drop(f);
    fs::rename(&tmp, &final_path).map_err(|e| io_err(&final_path, e))?;
    sync_dir(dir)?;
    Ok(body.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            frame(&mut out, p);
        }
        out
    }

    fn read(data: &[u8], torn_ok: bool) -> (Vec<Vec<u8>>, ReadEnd) {
        let mut got = Vec::new();
        let end = read_records(data, torn_ok, |p| got.push(p.to_vec()));
        (got, end)
    }

    #[test]
    fn clean_read() {
        let d = records(&[b"a", b"bc", b"d"]);
        let (got, end) = read(&d, true);
        assert_eq!(got, vec![b"a".to_vec(), b"bc".to_vec(), b"d".to_vec()]);
        assert_eq!(end, ReadEnd::Clean);
    }

    #[test]
    fn torn_tail_only_in_newest_file() {
        let mut d = records(&[b"hello", b"world"]);
        let whole = d.len();
        d.truncate(whole - 2);
        let (got, end) = read(&d, true);
        assert_eq!(got.len(), 1);
        assert_eq!(end, ReadEnd::Torn { offset: 13 });
        let (_, end) = read(&d, false);
        assert!(matches!(end, ReadEnd::Corrupt { offset: 13, .. }));
        // Zero fill after the records is a torn tail too.
        let mut z = records(&[b"x"]);
        z.extend_from_slice(&[0u8; 100]);
        assert_eq!(read(&z, true).1, ReadEnd::Torn { offset: 9 });
    }

    #[test]
    fn flipped_byte_is_corruption_with_offset() {
        let mut d = records(&[b"first", b"second", b"third"]);
        d[13 + 8 + 2] ^= 0x40;
        let (got, end) = read(&d, true);
        assert_eq!(got, vec![b"first".to_vec()]);
        match end {
            ReadEnd::Corrupt { offset, reason } => {
                assert_eq!(offset, 13);
                assert!(reason.contains("checksum"), "{reason}");
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn writer_rotates_and_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::create(dir.path(), 1, WalSync::Always, 0).unwrap();
        wal.log_deferred(b"series");
        wal.log(b"samples").unwrap();
        assert!(wal.fsyncs.load(Ordering::Relaxed) >= 1);
        assert_eq!(wal.rotate().unwrap(), 1);
        wal.log(b"more").unwrap();
        assert_eq!(list_segments(dir.path()).unwrap(), vec![1, 2]);
        let d = fs::read(segment_path(dir.path(), 1)).unwrap();
        let (got, end) = read(&d, false);
        assert_eq!(got, vec![b"series".to_vec(), b"samples".to_vec()]);
        assert_eq!(end, ReadEnd::Clean);
    }
}
