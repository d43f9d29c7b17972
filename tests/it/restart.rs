//! Durability through the real process: a watchpost child process scrapes a
//! stand-in, is killed with SIGKILL, and starts again on the same data
//! directory. The samples it acknowledged survive; a torn WAL tail and a
//! flipped byte mid-segment give the documented behaviour.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use watchpost::model::Matcher;
use watchpost::storage::{DiskStorage, Queryable, StorageOptions};

use crate::support::{self, eventually};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

struct Proc {
    child: Child,
    base: String,
    log: PathBuf,
}

fn spawn(config: &Path, data: &Path, log: &Path, extra: &[&str]) -> Proc {
    let port = free_port();
    let logf = std::fs::File::create(log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .arg("run")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .unwrap();
    Proc {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log: log.to_path_buf(),
    }
}

async fn wait_ready(c: &mut Proc) {
    let client = reqwest::Client::new();
    let url = format!("{}/-/ready", c.base);
    for _ in 0..300 {
        if let Ok(Some(status)) = c.child.try_wait() {
            panic!(
                "watchpost exited early with {status}: {}",
                std::fs::read_to_string(&c.log).unwrap_or_default()
            );
        }
        if client
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "watchpost not ready: {}",
        std::fs::read_to_string(&c.log).unwrap_or_default()
    );
}

fn sigkill(c: &mut Proc) {
    c.child.kill().unwrap(); // SIGKILL
    c.child.wait().unwrap();
}

fn sigterm(c: &mut Proc) {
    let pid = c.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    for _ in 0..200 {
        if c.child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("watchpost did not stop on SIGTERM");
}

/// Values of `served_total` in the data directory, read in-process.
fn stored_values(data: &Path) -> Vec<f64> {
    let st = DiskStorage::open(StorageOptions::new(data)).unwrap();
    let series = st
        .select(&[Matcher::equal("__name__", "served_total")], 0, i64::MAX)
        .unwrap();
    let vals = series
        .into_iter()
        .next()
        .map(|s| s.samples.map(|x| x.v).collect())
        .unwrap_or_default();
    st.close().unwrap();
    vals
}

/// A stand-in whose counter is the number of times it was scraped.
async fn counting_exporter() -> support::Exporter {
    support::exporter(support::Behavior::Counting).await
}

fn config(dir: &Path, target: &str) -> PathBuf {
    let p = dir.join("watchpost.yml");
    std::fs::write(
        &p,
        format!("global: {{scrape_interval: 200ms, scrape_timeout: 200ms}}\nscrape_configs:\n  - job_name: c\n    static_configs: [{{targets: [\"{target}\"]}}]\n"),
    )
    .unwrap();
    p
}

fn segments(data: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(data.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .collect();
    segs.sort();
    segs
}

fn largest_segment(data: &Path) -> PathBuf {
    segments(data)
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a WAL segment")
}

fn newest_segment(data: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(data.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .collect();
    segs.sort();
    segs.pop().expect("a WAL segment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_sample() {
    let e = counting_exporter().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &e.target());
    let data = dir.path().join("data");

    let mut c = spawn(&cfg, &data, &dir.path().join("1.log"), &[]);
    wait_ready(&mut c).await;
    eventually(Duration::from_secs(10), "10 scrapes", || async {
        (e.hit_count() >= 10).then_some(())
    })
    .await;
    sigkill(&mut c);
    let served = e.hit_count() as f64;

    let vals = stored_values(&data);
    // Every value the target served was stored, except possibly the one
    // whose scrape was in flight when the process died.
    assert!(
        vals.len() as f64 >= served - 1.0,
        "stored {} of {served} served values: {vals:?}",
        vals.len()
    );
    for (i, v) in vals.iter().enumerate() {
        assert_eq!(*v, (i + 1) as f64, "values are 1, 2, 3, ... in order");
    }

    // Start again on the same directory: the old samples are there and new
    // ones follow them.
    let mut c = spawn(&cfg, &data, &dir.path().join("2.log"), &[]);
    wait_ready(&mut c).await;
    let before = e.hit_count();
    eventually(Duration::from_secs(10), "more scrapes", || async {
        (e.hit_count() >= before + 3).then_some(())
    })
    .await;
    sigterm(&mut c);
    let after = stored_values(&data);
    assert!(after.len() > vals.len());
    assert_eq!(
        &after[..vals.len()],
        &vals[..],
        "samples from before the crash survive the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_and_flipped_byte() {
    let e = counting_exporter().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &e.target());
    let data = dir.path().join("data");
    let mut c = spawn(&cfg, &data, &dir.path().join("1.log"), &[]);
    wait_ready(&mut c).await;
    eventually(Duration::from_secs(10), "20 scrapes", || async {
        (e.hit_count() >= 20).then_some(())
    })
    .await;
    sigkill(&mut c);

    // A torn tail (the process died mid-write): cut the last bytes.
    let seg = newest_segment(&data);
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 3).unwrap();
    drop(f);
    let mut c = spawn(&cfg, &data, &dir.path().join("2.log"), &[]);
    wait_ready(&mut c).await;
    sigkill(&mut c);
    let log = std::fs::read_to_string(dir.path().join("2.log")).unwrap();
    assert!(
        log.contains("torn record"),
        "the torn tail is reported: {log}"
    );
    // (Not opened in-process here: a clean close would checkpoint the WAL
    // away, and the next step needs its segments.)

    // A flipped byte in the middle of the segment holding the data (the
    // restart above opened a fresh, empty segment after it).
    let seg = largest_segment(&data);
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let served = e.hit_count();
    // From here on nothing is scraped, so the store holds only what the WAL
    // gave back.
    let idle = dir.path().join("idle.yml");
    std::fs::write(&idle, "scrape_configs: []\n").unwrap();

    // With the refuse flag watchpost exits, naming the segment and offset.
    let mut c = spawn(
        &idle,
        &data,
        &dir.path().join("3.log"),
        &["--storage.refuse-on-corruption"],
    );
    let status = tokio::task::spawn_blocking(move || c.child.wait().unwrap())
        .await
        .unwrap();
    assert!(!status.success());
    let log = std::fs::read_to_string(dir.path().join("3.log")).unwrap();
    let seg_name = seg.file_name().unwrap().to_str().unwrap();
    assert!(
        log.contains(seg_name) && log.contains("offset"),
        "refusal names segment and offset: {log}"
    );

    // Without it watchpost keeps what precedes the damage and starts.
    let mut c = spawn(&idle, &data, &dir.path().join("4.log"), &[]);
    wait_ready(&mut c).await;
    sigterm(&mut c);
    let log = std::fs::read_to_string(dir.path().join("4.log")).unwrap();
    assert!(
        log.contains("WAL corrupt") && log.contains(seg_name),
        "corruption is reported: {log}"
    );
    let vals = stored_values(&data);
    assert!(
        vals.len() >= 3,
        "samples before the damage are kept: {vals:?}"
    );
    assert!(
        vals.len() < served,
        "samples after the damage are dropped: {} of {served}",
        vals.len()
    );
    for (i, v) in vals.iter().enumerate() {
        assert_eq!(*v, (i + 1) as f64, "a prefix of the served values survives");
    }
}

/// A notification the pipeline accepted while its receiver was failing is
/// delivered once after a SIGKILL and a restart, and the restart does not
/// notify a second time inside repeat_interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_queued_notification_delivers_it_once_after_restart() {
    let hook = crate::channels_common::Recorder::start().await;
    hook.answer_only(503, "down for maintenance");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("watchpost.yml");
    std::fs::write(
        &cfg,
        format!(
            r#"global: {{scrape_interval: 1h}}
scrape_configs: []
notify:
  route:
    receiver: team
    group_wait: 0s
    group_interval: 1s
    repeat_interval: 1h
  receivers:
    - name: team
      webhook_configs:
        - url: "{}"
"#,
            hook.url("/hook")
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut p = spawn(&cfg, &data, &dir.path().join("log1"), &[]);
    wait_ready(&mut p).await;
    let r = reqwest::Client::new()
        .post(format!("{}/api/v2/alerts", p.base))
        .json(&serde_json::json!([{"labels": {"alertname": "Queued"}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    eventually(Duration::from_secs(10), "first failed attempt", || async {
        (!hook.seen().is_empty()).then_some(())
    })
    .await;
    sigkill(&mut p);

    hook.answer_only(200, "ok");
    hook.clear_seen();
    let mut p = spawn(&cfg, &data, &dir.path().join("log2"), &[]);
    wait_ready(&mut p).await;
    let seen = eventually(
        Duration::from_secs(15),
        "delivery after restart",
        || async {
            let s = hook.seen();
            (!s.is_empty()).then_some(s)
        },
    )
    .await;
    assert_eq!(seen[0].json()["alerts"][0]["labels"]["alertname"], "Queued");
    // Group interval is 1s: three of them pass without a second message.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        hook.seen().len(),
        1,
        "delivered exactly once: {}",
        std::fs::read_to_string(dir.path().join("log2")).unwrap_or_default()
    );
    sigterm(&mut p);
}
