//! The durable storage engine through its public API: restart, crash
//! recovery (torn tail, corruption), block finalization, retention,
//! concurrency, and a differential check against the in-memory engine.

use std::fs;
use std::path::Path;
use std::time::Duration;

use watchpost::model::{Labels, MatchOp, Matcher, Sample, stale_nan};
use watchpost::storage::mem::MemStorage;
use watchpost::storage::{
    AppendError, DiskStorage, Queryable, Storage, StorageError, StorageOptions, WalSync,
};

const H: i64 = 3_600_000;

fn lbl(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn opts(dir: &Path) -> StorageOptions {
    let mut o = StorageOptions::new(dir);
    o.wal_sync = WalSync::Never;
    o.block_duration = Duration::from_millis(H as u64);
    o
}

type Dump = Vec<(String, Vec<(i64, u64)>)>;

fn dump(q: &dyn Queryable, matchers: &[Matcher], mint: i64, maxt: i64) -> Dump {
    q.select(matchers, mint, maxt)
        .unwrap()
        .into_iter()
        .map(|s| {
            (
                s.labels.to_string(),
                s.samples.map(|x: Sample| (x.t, x.v.to_bits())).collect(),
            )
        })
        .collect()
}

fn all(q: &dyn Queryable) -> Dump {
    dump(q, &[], i64::MIN, i64::MAX)
}

/// Ten series, 400 samples each at 15 s (several chunks, two block
/// windows), values mixing counters, gauges and special floats.
fn write_history(st: &dyn Storage, from: usize, to: usize) {
    for i in from..to {
        let mut app = st.appender();
        let t = i as i64 * 15_000;
        for s in 0..10 {
            let l = lbl(&[
                ("__name__", if s % 2 == 0 { "req_total" } else { "temp" }),
                ("series", &s.to_string()),
                ("job", "api"),
            ]);
            let v = match (s, i % 97) {
                (3, 5) => stale_nan(),
                (4, _) => -0.0,
                (5, 7) => f64::INFINITY,
                (6, 8) => f64::from_bits(0x7ff8_0000_0000_beef),
                (s, _) if s % 2 == 0 => (i * 100 + s) as f64,
                _ => (i as f64 * 0.37).sin() * 20.0,
            };
            app.append(&l, t, v).unwrap();
        }
        app.commit().unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else if e.file_name() != "lock" {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn wal_segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 8 && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn restart_keeps_every_series_and_sample_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mem = MemStorage::new();
    {
        let st = DiskStorage::open(opts(dir.path())).unwrap();
        write_history(&st, 0, 400);
        write_history(&mem, 0, 400);
        assert_eq!(all(&st), all(&mem));
        st.close().unwrap();
    }
    let st = DiskStorage::open(opts(dir.path())).unwrap();
    let got = all(&st);
    assert_eq!(got.len(), 10);
    assert_eq!(got, all(&mem));
    assert!(st.stats().replay_seconds > 0.0);
    // Order checks survive the restart.
    let l = lbl(&[("__name__", "req_total"), ("series", "0"), ("job", "api")]);
    let mut app = st.appender();
    assert_eq!(app.append(&l, 1000, 1.0), Err(AppendError::OutOfOrder));
    let last_t = 399 * 15_000;
    assert_eq!(app.append(&l, last_t, 1.0), Err(AppendError::Duplicate));
    assert!(app.append(&l, last_t, (399 * 100) as f64).is_ok());
    app.append(&l, last_t + 15_000, 5.0).unwrap();
    app.commit().unwrap();
    // Writing continues after the restart and survives another one.
    drop(st);
    let st = DiskStorage::open(opts(dir.path())).unwrap();
    let s = dump(&st, &[Matcher::equal("series", "0")], last_t, i64::MAX);
    assert_eq!(s[0].1.len(), 2);
}

#[test]
fn crash_copy_of_live_directory_recovers_committed_samples() {
    let dir = tempfile::tempdir().unwrap();
    let st = DiskStorage::open(opts(dir.path())).unwrap();
    write_history(&st, 0, 200);
    // A checkpoint in the middle, then more data: the copy needs the
    // checkpoint, the segments after it and the chunk files together.
    st.checkpoint().unwrap();
    write_history(&st, 200, 300);
    let expected = all(&st);
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), crashed.path());
    let re = DiskStorage::open(opts(crashed.path())).unwrap();
    assert_eq!(all(&re), expected);
    assert_eq!(re.stats().corruptions, 0);
    drop(st);
}

#[test]
fn torn_wal_tail_is_truncated_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let st = DiskStorage::open(opts(dir.path())).unwrap();
    write_history(&st, 0, 50);
    let before_last = all(&st);
    write_history(&st, 50, 51);
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), crashed.path());
    drop(st);
    // Cut the newest record in half, as a kill mid-write does.
    let seg = wal_segments(crashed.path()).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 30).unwrap();
    drop(f);
    let re = DiskStorage::open(opts(crashed.path())).unwrap();
    assert_eq!(all(&re), before_last);
    assert_eq!(re.stats().corruptions, 0);
    // Appending after recovery works and lands after the truncation point.
    write_history(&re, 51, 52);
    drop(re);
    let re = DiskStorage::open(opts(crashed.path())).unwrap();
    let got = all(&re);
    assert_eq!(got[0].1.len(), before_last[0].1.len() + 1);
}

/// Builds a WAL with one record per commit, returns the directory, the
/// data committed before the record that gets damaged, and the offset of
/// that record in its segment.
fn damaged_wal() -> (tempfile::TempDir, Dump, std::path::PathBuf, u64) {
    let dir = tempfile::tempdir().unwrap();
    let st = DiskStorage::open(opts(dir.path())).unwrap();
    write_history(&st, 0, 20);
    let seg = wal_segments(dir.path()).pop().unwrap();
    let offset = fs::metadata(&seg).unwrap().len();
    let kept = all(&st);
    write_history(&st, 20, 40);
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), crashed.path());
    drop(st);
    let seg = crashed.path().join("wal").join(seg.file_name().unwrap());
    let mut data = fs::read(&seg).unwrap();
    // A byte inside the payload of the first record after `offset`.
    data[offset as usize + 20] ^= 0x5a;
    fs::write(&seg, &data).unwrap();
    (crashed, kept, seg, offset)
}

#[test]
fn flipped_byte_mid_segment_keeps_what_precedes_and_starts() {
    let (dir, kept, _, _) = damaged_wal();
    let re = DiskStorage::open(opts(dir.path())).unwrap();
    assert_eq!(all(&re), kept);
    assert_eq!(re.stats().corruptions, 1);
    // The damaged part is gone for good: a second start is clean.
    write_history(&re, 40, 41);
    drop(re);
    let re = DiskStorage::open(opts(dir.path())).unwrap();
    assert_eq!(re.stats().corruptions, 0);
    assert_eq!(all(&re)[0].1.len(), kept[0].1.len() + 1);
}

#[test]
fn flipped_byte_with_refuse_names_segment_and_offset() {
    let (dir, _, seg, offset) = damaged_wal();
    let mut o = opts(dir.path());
    o.refuse_on_corruption = true;
    let err = match DiskStorage::open(o) {
        Err(e) => e,
        Ok(_) => panic!("opened a corrupt WAL with refuse_on_corruption"),
    };
    let msg = err.to_string();
    assert!(matches!(err, StorageError::Corruption { .. }), "{msg}");
    assert!(msg.contains(&seg.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("offset {offset}")), "{msg}");
    assert!(msg.contains("checksum"), "{msg}");
    // Nothing was changed: the default policy still finds the damage.
    let re = DiskStorage::open(opts(dir.path())).unwrap();
    assert_eq!(re.stats().corruptions, 1);
}

#[test]
fn out_of_order_and_duplicates_are_rejected_counted_and_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let st = DiskStorage::open(opts(dir.path())).unwrap();
    let a = lbl(&[("__name__", "x")]);
    let mut app = st.appender();
    let r = app.append(&a, 2000, 1.0).unwrap();
    assert_eq!(app.append(&a, 1000, 1.0), Err(AppendError::OutOfOrder));
    assert_eq!(app.append(&a, 2000, 2.0), Err(AppendError::Duplicate));
    assert!(app.append(&a, 2000, 1.0).is_ok());
    app.append_ref(r, 3000, 3.0).unwrap();
    app.commit().unwrap();
    let mut app = st.appender();
    assert_eq!(app.append_ref(r, 2500, 1.0), Err(AppendError::OutOfOrder));
    assert_eq!(app.append_ref(r, 3000, 9.0), Err(AppendError::Duplicate));
    assert_eq!(
        app.append_ref(r + 1000, 4000, 1.0),
        Err(AppendError::UnknownRef)
    );
    app.append_ref(r, 4000, 4.0).unwrap();
    app.commit().unwrap();
    let got = all(&st);
    assert_eq!(
        got[0].1.iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![2000, 3000, 4000]
    );
    let s = st.stats();
    assert_eq!(s.out_of_order_samples, 2);
    assert_eq!(s.duplicate_samples, 2);
    assert_eq!(s.samples_appended, 3);
    // Rollback discards the batch but keeps the counts of rejections.
    let mut app = st.appender();
    app.append_ref(r, 5000, 5.0).unwrap();
    app.rollback();
    assert_eq!(all(&st)[0].1.len(), 3);
}

#[test]
fn finalized_blocks_serve_queries_and_refuse_old_samples() {
    let dir = tempfile::tempdir().unwrap();
    let mem = MemStorage::new();
    let st = DiskStorage::open(opts(dir.path())).unwrap();
    // 300 x 15 s = 75 min: windows [0,1h) and [1h,2h).
    write_history(&st, 0, 300);
    write_history(&mem, 0, 300);
    // Nothing is final until the data is half a window past the end.
    let r = st.maintain(300 * 15_000).unwrap();
    assert!(r.blocks_finalized.is_empty());
    // 125 min: [0,1h) is final, [1h,2h) is not yet.
    write_history(&st, 300, 500);
    write_history(&mem, 300, 500);
    let r = st.maintain(500 * 15_000).unwrap();
    assert_eq!(r.blocks_finalized, vec![0]);
    assert!(r.blocks_deleted.is_empty());
    assert_eq!(all(&st), all(&mem));
    // A window query that straddles the finalized block and the head.
    let m = [Matcher::new(MatchOp::Regex, "series", "1|2").unwrap()];
    assert_eq!(
        dump(&st, &m, H - 60_000, H + 60_000),
        dump(&mem, &m, H - 60_000, H + 60_000)
    );
    assert_eq!(dump(&st, &m, H - 60_000, H + 60_000)[0].1.len(), 9);
    // Samples inside the finalized window are out of bounds now, even for a
    // brand-new series.
    let mut app = st.appender();
    let fresh = lbl(&[("__name__", "late")]);
    assert_eq!(app.append(&fresh, 1000, 1.0), Err(AppendError::OutOfOrder));
    app.commit().unwrap();
    assert_eq!(st.stats().out_of_bounds_samples, 1);
    assert!(st.stats().closed_chunks > 0);
    drop(st);
    let st = DiskStorage::open(opts(dir.path())).unwrap();
    assert_eq!(all(&st), all(&mem));
    let mut app = st.appender();
    assert_eq!(app.append(&fresh, 1000, 1.0), Err(AppendError::OutOfOrder));
}

#[test]
fn retention_deletes_exactly_the_blocks_past_the_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.retention_time = Duration::from_millis(4 * H as u64);
    let st = DiskStorage::open(o).unwrap();
    // Series "old" lives only in the first two hours; "live" throughout.
    let old = lbl(&[("__name__", "old")]);
    let live = lbl(&[("__name__", "live")]);
    let mut old_ref = 0;
    let mut deleted = Vec::new();
    let mut removed = 0;
    let mut check = |r: watchpost::storage::MaintainReport, now: i64| {
        for b in &r.blocks_deleted {
            // Only whole blocks entirely past the horizon go.
            assert!(b + H <= now - 4 * H, "block {b} deleted at {now}");
        }
        deleted.extend(r.blocks_deleted);
        removed += r.series_removed;
    };
    for i in 0..(10 * 60) {
        let t = i as i64 * 60_000;
        let mut app = st.appender();
        app.append(&live, t, i as f64).unwrap();
        if t < 2 * H {
            old_ref = app.append(&old, t, 1.0).unwrap();
        }
        app.commit().unwrap();
        if i % 30 == 0 {
            check(st.maintain(t).unwrap(), t);
        }
    }
    // Data up to 10h - 1m; blocks [0h..8h) are final, and now = 10h puts
    // the horizon at 6h: blocks ending at or before 6h go, [6h,7h) stays.
    let now = 10 * H;
    check(st.maintain(now).unwrap(), now);
    assert_eq!(deleted, vec![0, H, 2 * H, 3 * H, 4 * H, 5 * H]);
    assert_eq!(removed, 1);
    let got = all(&st);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "live");
    assert_eq!(got[0].1.first().unwrap().0, 6 * H);
    assert_eq!(got[0].1.len(), 4 * 60);
    assert!(!dir.path().join("blocks").join("0").exists());
    assert!(!dir.path().join("blocks").join((5 * H).to_string()).exists());
    assert!(dir.path().join("blocks").join((6 * H).to_string()).exists());
    // The removed series' reference is gone; appending by labels makes a
    // new series.
    let mut app = st.appender();
    assert_eq!(
        app.append_ref(old_ref, now, 1.0),
        Err(AppendError::UnknownRef)
    );
    let again = app.append(&old, now, 1.0).unwrap();
    assert_ne!(again, old_ref);
    app.commit().unwrap();
    assert_eq!(st.stats().blocks_deleted_by_retention, 6);
    // The decision survives a restart.
    drop(st);
    let st = DiskStorage::open(opts(dir.path())).unwrap();
    let got = all(&st);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1.first().unwrap().0, 6 * H);
}

#[test]
fn size_retention_deletes_oldest_blocks_first() {
    let dir = tempfile::tempdir().unwrap();
    let st = DiskStorage::open(opts(dir.path())).unwrap();
    write_history(&st, 0, 1200); // 5 hours
    st.maintain(5 * H).unwrap();
    let before = st.stats();
    assert!(before.blocks >= 5, "{before:?}");
    drop(st);
    let mut o = opts(dir.path());
    o.retention_time = Duration::ZERO;
    o.retention_size = before.block_bytes / 2;
    let st = DiskStorage::open(o).unwrap();
    let r = st.maintain(5 * H).unwrap();
    assert!(!r.blocks_deleted.is_empty());
    let mut sorted = r.blocks_deleted.clone();
    sorted.sort();
    assert_eq!(r.blocks_deleted, sorted);
    assert_eq!(r.blocks_deleted[0], 0);
    let after = st.stats();
    assert!(after.block_bytes + after.wal_bytes <= before.block_bytes / 2 || after.blocks == 1);
    let first = all(&st)[0].1[0].0;
    assert!(first >= *r.blocks_deleted.last().unwrap() + H);
}

#[test]
fn concurrent_appenders_and_readers() {
    let dir = tempfile::tempdir().unwrap();
    let st = DiskStorage::open(opts(dir.path())).unwrap();
    std::thread::scope(|sc| {
        for w in 0..4 {
            let st = &st;
            sc.spawn(move || {
                let mut refs = Vec::new();
                for i in 0..300i64 {
                    let mut app = st.appender();
                    for s in 0..50 {
                        let t = i * 10_000;
                        if i == 0 {
                            let l = lbl(&[("w", &w.to_string()), ("s", &s.to_string())]);
                            refs.push(app.append(&l, t, i as f64).unwrap());
                        } else {
                            app.append_ref(refs[s], t, i as f64).unwrap();
                        }
                    }
                    app.commit().unwrap();
                }
            });
        }
        let st = &st;
        sc.spawn(move || {
            for _ in 0..50 {
                for s in st.select(&[], 0, i64::MAX).unwrap() {
                    let ts: Vec<i64> = s.samples.map(|x| x.t).collect();
                    assert!(ts.windows(2).all(|w| w[0] < w[1]));
                }
            }
        });
    });
    let got = all(&st);
    assert_eq!(got.len(), 200);
    assert!(got.iter().all(|(_, s)| s.len() == 300));
    assert_eq!(st.stats().samples_appended, 200 * 300);
}

#[test]
fn labels_matchers_and_tsdb_status() {
    let dir = tempfile::tempdir().unwrap();
    let st = DiskStorage::open(opts(dir.path())).unwrap();
    let mut app = st.appender();
    for (name, job, inst) in [
        ("up", "api", "a"),
        ("up", "api", "b"),
        ("up", "db", "c"),
        ("errors_total", "api", "a"),
    ] {
        app.append(
            &lbl(&[("__name__", name), ("job", job), ("instance", inst)]),
            1000,
            1.0,
        )
        .unwrap();
    }
    app.append(&lbl(&[("__name__", "late")]), 5000, 1.0)
        .unwrap();
    app.commit().unwrap();
    let re = Matcher::new(MatchOp::Regex, "job", "a.*").unwrap();
    let ne = Matcher::new(MatchOp::NotEqual, "instance", "a").unwrap();
    assert_eq!(st.series(&[re.clone(), ne], 0, 9999).unwrap().len(), 1);
    assert_eq!(
        st.label_values("instance", &[re], 0, 9999).unwrap(),
        vec!["a", "b"]
    );
    assert_eq!(
        st.label_names(&[], 0, 9999).unwrap(),
        vec!["__name__", "instance", "job"]
    );
    // Time bounds apply: only "late" has a sample at 5000.
    assert_eq!(st.label_names(&[], 4000, 9999).unwrap(), vec!["__name__"]);
    assert_eq!(st.series(&[], 2000, 4000).unwrap().len(), 0);
    assert_eq!(
        st.series(&[Matcher::equal("job", "")], 0, 9999).unwrap(),
        vec![lbl(&[("__name__", "late")])]
    );
    let ts = st.tsdb_status(2);
    assert_eq!(ts.head_stats.num_series, 5);
    assert_eq!(ts.head_stats.num_label_pairs, 3 + 2 + 3);
    assert_eq!(ts.head_stats.chunk_count, 5);
    assert_eq!(ts.head_stats.min_time, Some(1000));
    assert_eq!(ts.head_stats.max_time, Some(5000));
    assert_eq!(ts.series_count_by_metric_name[0].name, "up");
    assert_eq!(ts.series_count_by_metric_name[0].value, 3);
    assert_eq!(ts.series_count_by_metric_name.len(), 2);
    assert_eq!(ts.label_value_count_by_label_name[0].name, "__name__");
    // Ties are broken by name.
    assert_eq!(ts.series_count_by_label_value_pair[0].name, "__name__=up");
    assert_eq!(ts.series_count_by_label_value_pair[1].name, "job=api");
    assert_eq!(ts.series_count_by_label_value_pair[1].value, 3);
    let mem_name = ts
        .memory_in_bytes_by_label_name
        .iter()
        .find(|n| n.name == "__name__")
        .unwrap();
    assert_eq!(
        mem_name.value,
        ("up".len() + "errors_total".len() + "late".len()) as u64
    );
}

#[test]
fn second_open_of_a_directory_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _st = DiskStorage::open(opts(dir.path())).unwrap();
    let err = DiskStorage::open(opts(dir.path())).err().unwrap();
    assert!(err.to_string().contains("in use"), "{err}");
}

#[test]
fn differential_against_the_memory_engine() {
    // A deterministic pseudo-random mix of in-order, out-of-order,
    // duplicate and repeated samples over a few series, with restarts and
    // maintenance in between: both engines must agree on every sample.
    let dir = tempfile::tempdir().unwrap();
    let mem = MemStorage::new();
    let mut st = Some(DiskStorage::open(opts(dir.path())).unwrap());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let series: Vec<Labels> = (0..6)
        .map(|i| lbl(&[("__name__", "m"), ("i", &i.to_string())]))
        .collect();
    let mut t = 0i64;
    for round in 0..300 {
        let disk = st.as_ref().unwrap();
        let (mut a, mut b) = (disk.appender(), mem.appender());
        for _ in 0..(rnd() % 8) {
            let l = &series[(rnd() % 6) as usize];
            let dt = (rnd() % 40_000) as i64 - 5_000;
            let v = match rnd() % 5 {
                0 => stale_nan(),
                1 => (rnd() % 10) as f64,
                _ => f64::from_bits(rnd()),
            };
            let ts = t + dt;
            let ra = a.append(l, ts, v).map(|_| ());
            let rb = b.append(l, ts, v).map(|_| ());
            assert_eq!(ra, rb, "round {round} t {ts}");
        }
        a.commit().unwrap();
        b.commit().unwrap();
        t += 20_000;
        if round % 50 == 49 {
            drop(st.take());
            st = Some(DiskStorage::open(opts(dir.path())).unwrap());
        }
        if round % 70 == 69 {
            st.as_ref().unwrap().checkpoint().unwrap();
        }
    }
    assert_eq!(all(st.as_ref().unwrap()), all(&mem));
}

/// `append_refs` (one shard lock per run of references) gives the same
/// outcomes, failure indexes and stored data as `append_ref` one sample at
/// a time, and as the in-memory engine's default implementation.
#[test]
fn append_refs_matches_append_ref_sample_by_sample() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let batched = DiskStorage::open(opts(dirs[0].path())).unwrap();
    let single = DiskStorage::open(opts(dirs[1].path())).unwrap();
    let mem = MemStorage::new();
    let stores: [&dyn Storage; 3] = [&batched, &single, &mem];
    // 300 series: references span several runs of the head's shards.
    let mut refs = Vec::new();
    for st in stores {
        let mut app = st.appender();
        let r: Vec<u64> = (0..300)
            .map(|i| {
                app.append(&lbl(&[("__name__", "m"), ("i", &i.to_string())]), 1000, 1.0)
                    .unwrap()
            })
            .collect();
        app.commit().unwrap();
        refs.push(r);
    }
    // Series by index (300: a reference no store has); in order, then
    // jumping back and forth between shards.
    let mut plan: Vec<(usize, i64, f64)> = (0..300).map(|i| (i, 2000, 2.0)).collect();
    plan.extend([
        (5, 1500, 9.0),   // older than the newest: out of order
        (6, 2000, 3.0),   // same time, other value: duplicate
        (7, 2000, 2.0),   // same time, same value: accepted, no-op
        (300, 2000, 1.0), // unknown
        (299, 3000, 3.0), // twice in one batch: fine, then a duplicate
        (0, 3000, 3.0),
        (299, 3000, 4.0),
        (299, 4000, 4.0),
        (150, 2500, 2.5),
    ]);
    let mut outcomes = Vec::new();
    for (k, st) in stores.iter().enumerate() {
        let r = &refs[k];
        let unknown = r.iter().max().unwrap() + 1_000;
        let batch: Vec<(u64, i64, f64)> = plan
            .iter()
            .map(|&(i, t, v)| (r.get(i).copied().unwrap_or(unknown), t, v))
            .collect();
        let mut app = st.appender();
        let mut failed = Vec::new();
        if k == 1 {
            for (i, &(x, t, v)) in batch.iter().enumerate() {
                if let Err(e) = app.append_ref(x, t, v) {
                    failed.push((i, e));
                }
            }
        } else {
            app.append_refs(&batch, &mut failed);
        }
        app.commit().unwrap();
        outcomes.push(failed);
    }
    let n = 300;
    assert_eq!(
        outcomes[0],
        vec![
            (n, AppendError::OutOfOrder),
            (n + 1, AppendError::Duplicate),
            (n + 3, AppendError::UnknownRef),
            (n + 6, AppendError::Duplicate),
        ]
    );
    assert_eq!(outcomes[0], outcomes[1]);
    assert_eq!(outcomes[0], outcomes[2]);
    let want = all(&single);
    assert_eq!(all(&batched), want);
    assert_eq!(all(&mem), want);
    let last = want.iter().find(|(l, _)| l.contains("\"299\"")).unwrap();
    assert_eq!(
        last.1.iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![1000, 2000, 3000, 4000]
    );
}
