//! The durable state of the notification pipeline: the notification log,
//! the queue of undelivered notifications and the silences, in one
//! append-only journal plus a snapshot, under the directory the manager is
//! given (`<storage.path>/notify`).
//!
//! One journal rather than a file per kind, because a notification must
//! enter the queue and the notification log *atomically*: if only the log
//! entry survived a crash the notification would be lost, if only the
//! queue entry survived it would be sent twice (once from the queue, once
//! by the next flush). Each record carries its own checksum, so a record
//! is either whole or ignored.
//!
//! Files (all little-endian):
//! - `snapshot`: header, then records that rebuild the whole state;
//! - `journal`: header, then records appended since that snapshot.
//!
//! Header: the 8 bytes `WPNOTIFY`, a `u32` format version (1), a `u64`
//! generation. Record: `u32` payload length, `u32` CRC-32C of the payload,
//! the payload (one JSON object, `{"type": "nflog" | "enqueue" | "done" |
//! "silence", ...}`, readable with standard tools). A compaction writes
//! `snapshot.tmp` with the next generation, fsyncs it, renames it over
//! `snapshot`, then starts an empty `journal` of that generation the same
//! way; on open, a journal older than the snapshot is already contained in
//! it and is discarded. A torn or corrupt record ends the journal: what
//! precedes it is kept, the rest is cut off and reported.
//!
//! Writes go through one writer task that batches whatever is pending
//! into one write and one fsync (group commit), in submission order.
//! Callers submit while holding the manager's lock, so the journal's order
//! is the order of the state changes. No decisions here.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio::sync::{mpsc, oneshot};

use crate::model::{Alert, Labels, Timestamp};

use super::NotificationData;
use super::nflog::{NflogEntry, NflogKey, SendReason};
use super::queue::QueuedNotification;
use super::silence::{Silence, SilenceMatcher};

const MAGIC: &[u8; 8] = b"WPNOTIFY";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 20;
/// Larger records are taken for corruption.
const MAX_RECORD: u32 = 64 << 20;

pub const SNAPSHOT: &str = "snapshot";
pub const JOURNAL: &str = "journal";

/// The journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("the notification journal writer has stopped")]
    Closed,
}

fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> JournalError + 'a {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// One change of durable state.
#[derive(Debug, Clone)]
pub enum Record {
    /// A notification log entry without a notification (only resolved
    /// alerts, `send_resolved` off).
    Nflog { key: NflogKey, entry: NflogEntry },
    /// A notification accepted, with the log entry it makes.
    Enqueue {
        notification: Arc<QueuedNotification>,
        nflog: Option<(NflogKey, NflogEntry)>,
    },
    /// A notification left the queue (delivered or given up).
    Done { id: u64 },
    /// A silence as it now is (created, updated or expired).
    Silence(Silence),
}

#[derive(Serialize, Deserialize)]
struct NflogRepr {
    receiver: String,
    integration: String,
    group_key: String,
    firing: Vec<u64>,
    resolved: Vec<u64>,
    timestamp: Timestamp,
    expires_at: Timestamp,
}

#[derive(Serialize, Deserialize)]
struct AlertRepr {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: Timestamp,
    ends_at: Option<Timestamp>,
    updated_at: Timestamp,
    #[serde(default)]
    generator_url: String,
}

#[derive(Serialize, Deserialize)]
struct NotificationRepr {
    id: u64,
    receiver: String,
    integration: String,
    group_key: String,
    reason: String,
    accepted_at: Timestamp,
    deadline: Timestamp,
    group_labels: BTreeMap<String, String>,
    alerts: Vec<AlertRepr>,
    #[serde(default)]
    external_url: String,
    #[serde(default)]
    truncated_alerts: usize,
}

#[derive(Serialize, Deserialize)]
struct MatcherRepr {
    name: String,
    value: String,
    is_regex: bool,
    is_equal: bool,
}

#[derive(Serialize, Deserialize)]
struct SilenceRepr {
    id: String,
    matchers: Vec<MatcherRepr>,
    starts_at: Timestamp,
    ends_at: Timestamp,
    updated_at: Timestamp,
    created_by: String,
    comment: String,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Repr {
    Nflog(NflogRepr),
    Enqueue {
        notification: NotificationRepr,
        #[serde(default)]
        nflog: Option<NflogRepr>,
    },
    Done {
        id: u64,
    },
    Silence(SilenceRepr),
}

fn labels_map(l: &Labels) -> BTreeMap<String, String> {
    l.iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

fn nflog_repr(k: &NflogKey, e: &NflogEntry) -> NflogRepr {
    NflogRepr {
        receiver: k.receiver.clone(),
        integration: k.integration.clone(),
        group_key: k.group_key.clone(),
        firing: e.firing.clone(),
        resolved: e.resolved.clone(),
        timestamp: e.timestamp,
        expires_at: e.expires_at,
    }
}

fn nflog_from(r: NflogRepr) -> (NflogKey, NflogEntry) {
    let mut e = NflogEntry {
        firing: r.firing,
        resolved: r.resolved,
        timestamp: r.timestamp,
        expires_at: r.expires_at,
    };
    e.firing.sort_unstable();
    e.resolved.sort_unstable();
    (
        NflogKey {
            receiver: r.receiver,
            integration: r.integration,
            group_key: r.group_key,
        },
        e,
    )
}

impl Record {
    fn repr(&self) -> Repr {
        match self {
            Record::Nflog { key, entry } => Repr::Nflog(nflog_repr(key, entry)),
            Record::Enqueue {
                notification: n,
                nflog,
            } => Repr::Enqueue {
                notification: NotificationRepr {
                    id: n.id,
                    receiver: n.receiver.clone(),
                    integration: n.integration.clone(),
                    group_key: n.group_key.clone(),
                    reason: n.reason.as_str().to_string(),
                    accepted_at: n.accepted_at,
                    deadline: n.deadline,
                    group_labels: labels_map(&n.data.group_labels),
                    alerts: n
                        .data
                        .alerts
                        .iter()
                        .map(|a| AlertRepr {
                            labels: labels_map(&a.alert.labels),
                            annotations: a.alert.annotations.clone(),
                            starts_at: a.alert.starts_at,
                            ends_at: a.alert.ends_at,
                            updated_at: a.alert.updated_at,
                            generator_url: a.alert.generator_url.clone(),
                        })
                        .collect(),
                    external_url: n.data.external_url.clone(),
                    truncated_alerts: n.data.truncated_alerts,
                },
                nflog: nflog.as_ref().map(|(k, e)| nflog_repr(k, e)),
            },
            Record::Done { id } => Repr::Done { id: *id },
            Record::Silence(s) => Repr::Silence(SilenceRepr {
                id: s.id.clone(),
                matchers: s
                    .matchers
                    .iter()
                    .map(|m| MatcherRepr {
                        name: m.name.clone(),
                        value: m.value.clone(),
                        is_regex: m.is_regex,
                        is_equal: m.is_equal,
                    })
                    .collect(),
                starts_at: s.starts_at,
                ends_at: s.ends_at,
                updated_at: s.updated_at,
                created_by: s.created_by.clone(),
                comment: s.comment.clone(),
            }),
        }
    }

    /// The record's bytes, framed.
    fn encode(&self, out: &mut Vec<u8>) {
        // Serializing plain structs of strings and integers cannot fail.
        let payload = serde_json::to_vec(&self.repr()).unwrap_or_default();
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
    }
}

/// The state read back at open.
#[derive(Debug, Default)]
pub struct Recovered {
    pub nflog: Vec<(NflogKey, NflogEntry)>,
    /// In acceptance order.
    pub queue: Vec<QueuedNotification>,
    pub silences: Vec<Silence>,
    /// Larger than every notification id ever used.
    pub next_id: u64,
    /// Records applied.
    pub records: usize,
    /// Bytes of a torn or corrupt tail that were cut off (0 normally).
    pub dropped_bytes: u64,
    /// Problems worth a warning (a corrupt tail, an unreadable record).
    pub warnings: Vec<String>,
}

#[derive(Default)]
struct State {
    nflog: BTreeMap<NflogKey, NflogEntry>,
    queue: BTreeMap<u64, QueuedNotification>,
    silences: BTreeMap<String, Silence>,
    next_id: u64,
    records: usize,
    warnings: Vec<String>,
}

impl State {
    fn apply(&mut self, r: Repr, path: &Path) {
        self.records += 1;
        match r {
            Repr::Nflog(n) => {
                let (k, e) = nflog_from(n);
                self.nflog.insert(k, e);
            }
            Repr::Enqueue {
                notification: n,
                nflog,
            } => {
                if let Some(n) = nflog {
                    let (k, e) = nflog_from(n);
                    self.nflog.insert(k, e);
                }
                self.next_id = self.next_id.max(n.id + 1);
                let Some(reason) = SendReason::parse(&n.reason) else {
                    self.warnings.push(format!(
                        "{}: notification {} has unknown reason {:?}: dropped",
                        path.display(),
                        n.id,
                        n.reason
                    ));
                    return;
                };
                let alerts = n
                    .alerts
                    .into_iter()
                    .map(|a| Alert {
                        labels: Labels::from_pairs(a.labels),
                        annotations: a.annotations,
                        starts_at: a.starts_at,
                        ends_at: a.ends_at,
                        updated_at: a.updated_at,
                        generator_url: a.generator_url,
                    })
                    .collect();
                let mut data = NotificationData::new(
                    &n.receiver,
                    n.group_key.clone(),
                    Labels::from_pairs(n.group_labels),
                    alerts,
                    n.external_url,
                    n.accepted_at,
                );
                data.truncated_alerts = n.truncated_alerts;
                self.queue.insert(
                    n.id,
                    QueuedNotification {
                        id: n.id,
                        receiver: n.receiver,
                        integration: n.integration,
                        group_key: n.group_key,
                        reason,
                        accepted_at: n.accepted_at,
                        deadline: n.deadline,
                        data,
                    },
                );
            }
            Repr::Done { id } => {
                self.queue.remove(&id);
                self.next_id = self.next_id.max(id + 1);
            }
            Repr::Silence(s) => {
                let matchers = s
                    .matchers
                    .into_iter()
                    .map(|m| SilenceMatcher {
                        name: m.name,
                        value: m.value,
                        is_regex: m.is_regex,
                        is_equal: m.is_equal,
                    })
                    .collect();
                match Silence::new(
                    s.id.clone(),
                    matchers,
                    s.starts_at,
                    s.ends_at,
                    s.updated_at,
                    s.created_by,
                    s.comment,
                ) {
                    Ok(sil) => {
                        self.silences.insert(s.id, sil);
                    }
                    Err(e) => self.warnings.push(format!(
                        "{}: silence {} is invalid ({e}): dropped",
                        path.display(),
                        s.id
                    )),
                }
            }
        }
    }
}

fn header(generation: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN as usize);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&generation.to_le_bytes());
    h
}

/// A file's header and whole records.
struct FileContents {
    generation: u64,
    records: Vec<Repr>,
    /// Offset after the last whole record.
    end: u64,
    /// The file's length.
    total: u64,
    warnings: Vec<String>,
}

/// Reads a file's header and records, stopping at the first torn or
/// corrupt record.
fn read_file(path: &Path) -> Result<FileContents, JournalError> {
    let mut buf = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .map_err(io(path, "reading"))?;
    let bad = |m: &str| JournalError::Format {
        path: path.to_path_buf(),
        message: format!(
            "{m}: this is not a watchpost notification state file; move it away to start with empty notification state"
        ),
    };
    if buf.len() < HEADER_LEN as usize || &buf[..8] != MAGIC {
        return Err(bad("bad header"));
    }
    let version = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
    if version != VERSION {
        return Err(bad(&format!("unknown format version {version}")));
    }
    let mut g = [0u8; 8];
    g.copy_from_slice(&buf[12..20]);
    let mut out = FileContents {
        generation: u64::from_le_bytes(g),
        records: Vec::new(),
        end: 0,
        total: buf.len() as u64,
        warnings: Vec::new(),
    };
    let mut pos = HEADER_LEN as usize;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let torn = |what: &str| {
            format!(
                "{}: {what} at byte {pos}: the last {} bytes were cut off",
                path.display(),
                rest.len()
            )
        };
        if rest.len() < 8 {
            out.warnings.push(torn("torn record"));
            break;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_RECORD || rest.len() < 8 + len as usize {
            out.warnings.push(torn("torn record"));
            break;
        }
        let payload = &rest[8..8 + len as usize];
        if crc32c::crc32c(payload) != crc {
            out.warnings.push(torn("checksum mismatch"));
            break;
        }
        match serde_json::from_slice::<Repr>(payload) {
            Ok(r) => out.records.push(r),
            Err(e) => out.warnings.push(format!(
                "{}: unreadable record at byte {pos} ({e}): skipped",
                path.display()
            )),
        }
        pos += 8 + len as usize;
    }
    out.end = pos as u64;
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "syncing the directory"))
}

/// Writes `bytes` to `dir/name` atomically (temp file, fsync, rename,
/// directory fsync).
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), JournalError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    {
        let mut f = File::create(&tmp).map_err(io(&tmp, "creating"))?;
        f.write_all(bytes).map_err(io(&tmp, "writing"))?;
        f.sync_all().map_err(io(&tmp, "syncing"))?;
    }
    std::fs::rename(&tmp, &dst).map_err(io(&dst, "renaming into place"))?;
    sync_dir(dir)
}

/// The open journal file, owned by the writer task.
#[derive(Debug)]
pub struct JournalFile {
    dir: PathBuf,
    file: File,
    /// Length of the valid part.
    len: u64,
    generation: u64,
    bytes: Arc<AtomicU64>,
}

/// Opens (creating if needed) the state in `dir` and reads it back.
/// Blocking: call from a blocking context.
pub fn open(dir: &Path) -> Result<(JournalFile, Recovered), JournalError> {
    std::fs::create_dir_all(dir).map_err(io(dir, "creating the directory"))?;
    for name in [SNAPSHOT, JOURNAL] {
        let tmp = dir.join(format!("{name}.tmp"));
        if tmp.exists() {
            std::fs::remove_file(&tmp).map_err(io(&tmp, "removing a leftover"))?;
        }
    }
    let mut state = State::default();
    let snap = dir.join(SNAPSHOT);
    let mut generation = 0;
    if snap.exists() {
        let c = read_file(&snap)?;
        generation = c.generation;
        for r in c.records {
            state.apply(r, &snap);
        }
        state.warnings.extend(c.warnings);
    }
    let jpath = dir.join(JOURNAL);
    let mut dropped = 0;
    let mut valid_len = None;
    if jpath.exists() {
        let c = read_file(&jpath)?;
        // A journal older than the snapshot is already part of it.
        if c.generation >= generation {
            for r in c.records {
                state.apply(r, &jpath);
            }
            state.warnings.extend(c.warnings);
            generation = c.generation;
            dropped = c.total - c.end;
            valid_len = Some(c.end);
        }
    }
    let (file, len) = match valid_len {
        Some(end) => {
            let f = OpenOptions::new()
                .write(true)
                .open(&jpath)
                .map_err(io(&jpath, "opening"))?;
            if dropped > 0 {
                f.set_len(end)
                    .map_err(io(&jpath, "cutting off a torn tail"))?;
                f.sync_all().map_err(io(&jpath, "syncing"))?;
            }
            (f, end)
        }
        None => {
            write_atomic(dir, JOURNAL, &header(generation))?;
            let f = OpenOptions::new()
                .write(true)
                .open(&jpath)
                .map_err(io(&jpath, "opening"))?;
            (f, HEADER_LEN)
        }
    };
    let rec = Recovered {
        nflog: state.nflog.into_iter().collect(),
        queue: state.queue.into_values().collect(),
        silences: state.silences.into_values().collect(),
        next_id: state.next_id.max(1),
        records: state.records,
        dropped_bytes: dropped,
        warnings: state.warnings,
    };
    let jf = JournalFile {
        dir: dir.to_path_buf(),
        file,
        len,
        generation,
        bytes: Arc::new(AtomicU64::new(len - HEADER_LEN)),
    };
    Ok((jf, rec))
}

impl JournalFile {
    /// Appends framed records and fsyncs. On failure the file is cut back
    /// to its last good length, so later records stay readable.
    fn append(&mut self, bytes: &[u8]) -> Result<(), JournalError> {
        use std::io::{Seek, SeekFrom};
        if bytes.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(JOURNAL);
        let res = self
            .file
            .seek(SeekFrom::Start(self.len))
            .and_then(|_| self.file.write_all(bytes))
            .and_then(|_| self.file.sync_data());
        match res {
            Ok(()) => {
                self.len += bytes.len() as u64;
                self.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(io(&path, "appending")(e))
            }
        }
    }

    /// Replaces snapshot and journal with `records` as the new snapshot.
    fn compact(&mut self, records: &[Record]) -> Result<(), JournalError> {
        let next = self.generation + 1;
        let mut snap = header(next);
        for r in records {
            r.encode(&mut snap);
        }
        write_atomic(&self.dir, SNAPSHOT, &snap)?;
        write_atomic(&self.dir, JOURNAL, &header(next))?;
        let path = self.dir.join(JOURNAL);
        self.file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io(&path, "opening"))?;
        self.len = HEADER_LEN;
        self.generation = next;
        self.bytes.store(0, Ordering::Relaxed);
        Ok(())
    }
}

type Ack = oneshot::Sender<Result<(), Arc<JournalError>>>;
type Acked = Vec<(Ack, Result<(), Arc<JournalError>>)>;

enum Cmd {
    Append(Vec<Record>, Option<Ack>),
    Compact(Vec<Record>, Ack),
    /// Write what precedes, then stop.
    Close(Ack),
}

/// Waits for a submission to be durable.
#[derive(Debug)]
pub struct Ticket(Option<oneshot::Receiver<Result<(), Arc<JournalError>>>>);

impl Ticket {
    /// Resolves once the records are fsync'd (at once without a journal).
    pub async fn wait(self) -> Result<(), Arc<JournalError>> {
        match self.0 {
            None => Ok(()),
            Some(rx) => rx.await.unwrap_or(Err(Arc::new(JournalError::Closed))),
        }
    }
}

/// The submitting side. Cheap to share; a disabled journal (no directory)
/// accepts everything and keeps nothing.
#[derive(Debug, Clone)]
pub struct Journal {
    tx: Option<mpsc::UnboundedSender<Cmd>>,
    bytes: Arc<AtomicU64>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cmd::Append(r, _) => write!(f, "Append({})", r.len()),
            Cmd::Compact(r, _) => write!(f, "Compact({})", r.len()),
            Cmd::Close(_) => write!(f, "Close"),
        }
    }
}

impl Journal {
    /// A journal that persists nothing.
    pub fn disabled() -> Self {
        Journal {
            tx: None,
            bytes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Starts the writer for `file`; the returned future must be spawned
    /// (on a tracked task) and runs until every `Journal` clone is dropped
    /// or [`Journal::close`] was called on all of them.
    pub fn start(file: JournalFile) -> (Journal, impl std::future::Future<Output = ()> + Send) {
        let (tx, rx) = mpsc::unbounded_channel();
        let bytes = file.bytes.clone();
        (
            Journal {
                tx: Some(tx),
                bytes,
            },
            writer(file, rx),
        )
    }

    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues records for writing; the ticket resolves when they are
    /// durable.
    pub fn submit(&self, records: Vec<Record>) -> Ticket {
        let Some(tx) = &self.tx else {
            return Ticket(None);
        };
        if records.is_empty() {
            return Ticket(None);
        }
        let (ack, rx) = oneshot::channel();
        if tx.send(Cmd::Append(records, Some(ack))).is_err() {
            return Ticket(Some(closed_receiver()));
        }
        Ticket(Some(rx))
    }

    /// Queues records without waiting for them.
    pub fn submit_nowait(&self, records: Vec<Record>) {
        if let Some(tx) = &self.tx
            && !records.is_empty()
        {
            let _ = tx.send(Cmd::Append(records, None));
        }
    }

    /// Replaces everything written so far by `snapshot` (the whole state,
    /// taken under the same lock the submissions are made under).
    pub fn compact(&self, snapshot: Vec<Record>) -> Ticket {
        let Some(tx) = &self.tx else {
            return Ticket(None);
        };
        let (ack, rx) = oneshot::channel();
        if tx.send(Cmd::Compact(snapshot, ack)).is_err() {
            return Ticket(Some(closed_receiver()));
        }
        Ticket(Some(rx))
    }

    /// Bytes appended since the last compaction.
    pub fn bytes_since_compaction(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Stops the writer once everything submitted before is written;
    /// later submissions fail with [`JournalError::Closed`].
    pub fn close(&self) -> Ticket {
        let Some(tx) = &self.tx else {
            return Ticket(None);
        };
        let (ack, rx) = oneshot::channel();
        if tx.send(Cmd::Close(ack)).is_err() {
            return Ticket(None);
        }
        Ticket(Some(rx))
    }
}

fn closed_receiver() -> oneshot::Receiver<Result<(), Arc<JournalError>>> {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(Err(Arc::new(JournalError::Closed)));
    rx
}

/// The writer task: batches pending commands into one write and one fsync.
async fn writer(file: JournalFile, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let mut file = Some(file);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let Some(mut f) = file.take() else { return };
        let res = tokio::task::spawn_blocking(move || {
            let (acks, closed) = process(&mut f, batch);
            (f, acks, closed)
        })
        .await;
        match res {
            Ok((f, acks, closed)) => {
                file = Some(f);
                for (ack, r) in acks {
                    let _ = ack.send(r);
                }
                if closed {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "notification journal writer failed; notification state is no longer persisted");
                return;
            }
        }
    }
}

/// Runs one batch in order: appends are coalesced into one write until a
/// compaction or a close, which first write what precedes them. Returns
/// the acknowledgements and whether the writer must stop.
fn process(f: &mut JournalFile, batch: Vec<Cmd>) -> (Acked, bool) {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut waiting: Vec<Ack> = Vec::new();
    let flush =
        |f: &mut JournalFile, buf: &mut Vec<u8>, waiting: &mut Vec<Ack>, out: &mut Acked| {
            let r = f.append(buf).map_err(Arc::new);
            if let Err(e) = &r {
                tracing::error!(error = %e, "writing the notification journal failed");
            }
            buf.clear();
            for a in waiting.drain(..) {
                out.push((a, r.clone()));
            }
        };
    let mut closed = false;
    for cmd in batch {
        if closed {
            // Submitted after the close: refused.
            match cmd {
                Cmd::Append(_, Some(a)) | Cmd::Compact(_, a) | Cmd::Close(a) => {
                    out.push((a, Err(Arc::new(JournalError::Closed))));
                }
                Cmd::Append(_, None) => {}
            }
            continue;
        }
        match cmd {
            Cmd::Append(records, ack) => {
                for r in &records {
                    r.encode(&mut buf);
                }
                if let Some(a) = ack {
                    waiting.push(a);
                }
            }
            Cmd::Compact(records, ack) => {
                flush(f, &mut buf, &mut waiting, &mut out);
                let r = f.compact(&records).map_err(Arc::new);
                if let Err(e) = &r {
                    tracing::error!(error = %e, "compacting the notification journal failed");
                }
                out.push((ack, r));
            }
            Cmd::Close(ack) => {
                flush(f, &mut buf, &mut waiting, &mut out);
                out.push((ack, Ok(())));
                closed = true;
            }
        }
    }
    flush(f, &mut buf, &mut waiting, &mut out);
    (out, closed)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn notification(id: u64) -> Arc<QueuedNotification> {
        let alert = Alert {
            labels: Labels::from_pairs([("alertname", "Down"), ("instance", "a:1")]),
            annotations: BTreeMap::from([("summary".to_string(), "down".to_string())]),
            starts_at: 1_000,
            ends_at: None,
            updated_at: 2_000,
            generator_url: "http://x/graph".into(),
        };
        Arc::new(QueuedNotification {
            id,
            receiver: "team".into(),
            integration: "webhook[0]".into(),
            group_key: "{}:{alertname=\"Down\"}".into(),
            reason: SendReason::NewAlerts,
            accepted_at: 5_000,
            deadline: 9_000,
            data: NotificationData::new(
                "team",
                "{}:{alertname=\"Down\"}",
                Labels::from_pairs([("alertname", "Down")]),
                vec![alert],
                "http://watchpost",
                5_000,
            ),
        })
    }

    fn key(g: &str) -> NflogKey {
        NflogKey {
            receiver: "team".into(),
            integration: "webhook[0]".into(),
            group_key: g.into(),
        }
    }

    fn silence() -> Silence {
        Silence::new(
            "1725936d-59bd-476a-b121-f35d1e66d5a3",
            vec![SilenceMatcher {
                name: "job".into(),
                value: "a.+".into(),
                is_regex: true,
                is_equal: true,
            }],
            10,
            20,
            10,
            "me",
            "why",
        )
        .unwrap()
    }

    async fn run(dir: &Path, records: Vec<Vec<Record>>) -> Recovered {
        let (f, rec) = open(dir).unwrap();
        let (j, w) = Journal::start(f);
        let task = tokio::spawn(w);
        for r in records {
            j.submit(r).wait().await.unwrap();
        }
        drop(j);
        task.await.unwrap();
        rec
    }

    #[tokio::test]
    async fn round_trip_and_replay() {
        let dir = tempfile::tempdir().unwrap();
        let e = NflogEntry::new(vec![7, 3], vec![], 5_000, Duration::from_secs(60));
        let first = run(
            dir.path(),
            vec![
                vec![Record::Enqueue {
                    notification: notification(1),
                    nflog: Some((key("g"), e.clone())),
                }],
                vec![
                    Record::Enqueue {
                        notification: notification(2),
                        nflog: None,
                    },
                    Record::Done { id: 1 },
                    Record::Silence(silence()),
                    Record::Nflog {
                        key: key("h"),
                        entry: e.clone(),
                    },
                ],
            ],
        )
        .await;
        assert_eq!(first.records, 0);
        let (_, rec) = open(dir.path()).unwrap();
        assert_eq!(rec.records, 5);
        assert_eq!(rec.queue.len(), 1);
        assert_eq!(rec.queue[0].id, 2);
        assert_eq!(*notification(2), rec.queue[0]);
        assert_eq!(rec.next_id, 3);
        assert_eq!(rec.nflog, vec![(key("g"), e.clone()), (key("h"), e)]);
        assert_eq!(rec.silences, vec![silence()]);
        assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
    }

    #[tokio::test]
    async fn torn_tail_is_cut_and_later_appends_survive() {
        let dir = tempfile::tempdir().unwrap();
        run(
            dir.path(),
            vec![vec![Record::Enqueue {
                notification: notification(1),
                nflog: None,
            }]],
        )
        .await;
        let path = dir.path().join(JOURNAL);
        let good = std::fs::metadata(&path).unwrap().len();
        // A crash in the middle of the next record.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(f);
        let rec = run(dir.path(), vec![vec![Record::Done { id: 1 }]]).await;
        assert_eq!(rec.queue.len(), 1);
        assert_eq!(rec.dropped_bytes, 7);
        assert!(
            rec.warnings[0].contains("torn record"),
            "{:?}",
            rec.warnings
        );
        assert!(std::fs::metadata(&path).unwrap().len() > good);
        let (_, rec) = open(dir.path()).unwrap();
        assert!(rec.queue.is_empty());
        assert_eq!(rec.dropped_bytes, 0);
    }

    #[tokio::test]
    async fn a_flipped_bit_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        run(
            dir.path(),
            vec![
                vec![Record::Silence(silence())],
                vec![Record::Done { id: 4 }],
            ],
        )
        .await;
        let path = dir.path().join(JOURNAL);
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let (_, rec) = open(dir.path()).unwrap();
        assert_eq!(rec.silences.len(), 1);
        assert_eq!(rec.next_id, 1);
        assert!(
            rec.warnings[0].contains("checksum mismatch"),
            "{:?}",
            rec.warnings
        );
    }

    #[tokio::test]
    async fn compaction_replaces_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (f, _) = open(dir.path()).unwrap();
        let (j, w) = Journal::start(f);
        let task = tokio::spawn(w);
        j.submit(vec![
            Record::Enqueue {
                notification: notification(1),
                nflog: None,
            },
            Record::Enqueue {
                notification: notification(2),
                nflog: None,
            },
        ])
        .wait()
        .await
        .unwrap();
        assert!(j.bytes_since_compaction() > 0);
        // The state is now: notification 2 only.
        j.compact(vec![Record::Enqueue {
            notification: notification(2),
            nflog: None,
        }])
        .wait()
        .await
        .unwrap();
        assert_eq!(j.bytes_since_compaction(), 0);
        j.submit(vec![Record::Silence(silence())])
            .wait()
            .await
            .unwrap();
        drop(j);
        task.await.unwrap();
        let (_, rec) = open(dir.path()).unwrap();
        assert_eq!(rec.queue.iter().map(|n| n.id).collect::<Vec<_>>(), [2]);
        assert_eq!(rec.silences.len(), 1);
        assert_eq!(rec.next_id, 3);
        // A crash between the snapshot's rename and the new journal's
        // leaves an older journal behind: it is ignored.
        let snap = std::fs::read(dir.path().join(SNAPSHOT)).unwrap();
        let mut older = header(0);
        Record::Done { id: 2 }.encode(&mut older);
        std::fs::write(dir.path().join(JOURNAL), &older).unwrap();
        let (_, rec) = open(dir.path()).unwrap();
        assert_eq!(rec.queue.len(), 1);
        assert_eq!(std::fs::read(dir.path().join(SNAPSHOT)).unwrap(), snap);
    }

    #[test]
    fn foreign_files_are_refused_with_a_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(JOURNAL), b"hello world, not ours").unwrap();
        let e = open(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("bad header") && e.contains("move it away"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn disabled_journal_accepts_everything() {
        let j = Journal::disabled();
        assert!(!j.is_enabled());
        j.submit(vec![Record::Done { id: 1 }]).wait().await.unwrap();
        j.compact(vec![]).wait().await.unwrap();
    }
}
