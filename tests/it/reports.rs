//! Digest reports end to end: a report over storage filled with known
//! `ALERTS` and `up` samples, delivered as an HTML mail with its text part
//! and inline PNG chart to the real SMTP server, and as a Telegram message
//! plus chart to the Bot API stand-in (exact requests); the scheduler
//! firing at the cron time on a paused clock; `watchpost report show` and
//! `report send` against a running watchpost.

use std::io::Read as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use watchpost::config::{self, Config};
use watchpost::model::{Labels, Timestamp, stale_nan};
use watchpost::promql::{Engine, RangeSeries, VectorSample};
use watchpost::reports::source::BoxFuture;
use watchpost::reports::{self, LocalSource, QuerySource, ReportError, ReportManager};
use watchpost::storage::Storage;
use watchpost::storage::mem::MemStorage;
use watchpost::telemetry::ReportMetrics;

use super::channels_common::Recorder;
use super::smtp_server::{Mail, Options, SmtpServer};
use super::support;

/// 2026-12-07T09:00:00Z, a Monday.
const END: i64 = 1_796_634_000_000;
const MIN: i64 = 60_000;

const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const SENT: &str = r#"{"ok":true,"result":{"message_id":7,"date":1700000000,"chat":{"id":-1001234567890,"type":"supergroup","title":"ops"},"text":"x"}}"#;

fn load(yaml: &str) -> Config {
    config::load_str(yaml, "watchpost.yml", Path::new("/"))
        .unwrap_or_else(|e| panic!("config should load:\n{e}\n{yaml}"))
}

fn email_config(port: u16) -> String {
    format!(
        "notify:
  route: {{receiver: digest}}
  receivers:
    - name: digest
      email_configs:
        - to: ops@example.test
          from: watchpost@example.test
          smarthost: 127.0.0.1:{port}
          require_tls: false
reports:
  - name: hourly
    schedule: '0 * * * *'
    receiver: digest
    window: 1h
    title: Hourly digest
"
    )
}

fn telegram_config(api: &str, schedule: &str) -> String {
    format!(
        "notify:
  route: {{receiver: chat}}
  receivers:
    - name: chat
      telegram_configs:
        - api_url: {api}
          bot_token: '{TOKEN}'
          chat_id: -1001234567890
reports:
  - name: hourly
    schedule: '{schedule}'
    receiver: chat
    window: 1h
    title: Hourly digest
"
    )
}

/// `ALERTS` every 15 s over `[from, to)` with a staleness marker at `to`
/// (still firing at `end` when `to` is None), as the rules engine writes it.
fn firing(st: &dyn Storage, labels: &[(&str, &str)], from: i64, to: Option<i64>, end: i64) {
    let mut pairs = vec![("__name__", "ALERTS"), ("alertstate", "firing")];
    pairs.extend_from_slice(labels);
    let l = Labels::from_pairs(pairs);
    let mut app = st.appender();
    let mut t = from;
    while t < to.unwrap_or(end + 1) {
        app.append(&l, t, 1.0).unwrap();
        t += 15_000;
    }
    if let Some(to) = to {
        app.append(&l, to, stale_nan()).unwrap();
    }
    app.commit().unwrap();
}

fn up(st: &dyn Storage, job: &str, instance: &str, values: &[f64], from: i64) {
    let l = Labels::from_pairs([("__name__", "up"), ("job", job), ("instance", instance)]);
    let mut app = st.appender();
    for (i, v) in values.iter().enumerate() {
        app.append(&l, from + i as i64 * 10 * MIN, *v).unwrap();
    }
    app.commit().unwrap();
}

/// The known hour before `end`: HostDown on a:9100 fires 10:00-20:00
/// into the window, DiskFull from 50:00 and still firing; node is up 3 of
/// 4 scrapes on a, always on b.
fn fill(st: &dyn Storage, end: i64) {
    let start = end - 60 * MIN;
    firing(
        st,
        &[("alertname", "HostDown"), ("instance", "a:9100")],
        start + 10 * MIN,
        Some(start + 20 * MIN),
        end,
    );
    firing(
        st,
        &[("alertname", "DiskFull")],
        start + 50 * MIN,
        None,
        end,
    );
    up(st, "node", "a:9100", &[1.0, 1.0, 0.0, 1.0], start + MIN);
    up(st, "node", "b:9100", &[1.0, 1.0, 1.0, 1.0], start + MIN);
}

fn local(st: Arc<MemStorage>) -> LocalSource {
    LocalSource::new(Arc::new(Engine::default()), st)
}

/// A MIME leaf: its headers and raw (still encoded) body.
struct Leaf {
    mail: Mail,
}

impl Leaf {
    fn content_type(&self) -> &str {
        self.mail.header("Content-Type").unwrap_or("text/plain")
    }

    fn text(&self) -> String {
        self.mail.parts().remove(0).1
    }

    fn bytes(&self) -> Vec<u8> {
        assert_eq!(
            self.mail.header("Content-Transfer-Encoding"),
            Some("base64")
        );
        base64::engine::general_purpose::STANDARD
            .decode(self.mail.body.replace("\r\n", "").trim())
            .unwrap()
    }
}

/// The leaves of a MIME tree, depth first, with the multipart types seen
/// on the way.
fn leaves(mail: Mail, kinds: &mut Vec<String>, out: &mut Vec<Leaf>) {
    let Some(boundary) = mail.boundary() else {
        out.push(Leaf { mail });
        return;
    };
    let ct = mail.header("Content-Type").unwrap();
    kinds.push(ct.split(';').next().unwrap().to_string());
    let delim = format!("--{boundary}");
    for p in mail.body.split(delim.as_str()).skip(1) {
        if p.starts_with("--") {
            continue;
        }
        leaves(Mail::parse(p.trim_start_matches("\r\n")), kinds, out);
    }
}

/// Checks a PNG: signature, IHDR size, and that the image data inflates
/// to one filter byte plus 3 bytes per pixel on every row.
fn assert_png(png: &[u8], width: u32, height: u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&png[12..16], b"IHDR");
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), width);
    assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), height);
    let idat_len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
    assert_eq!(&png[37..41], b"IDAT");
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&png[41..41 + idat_len])
        .read_to_end(&mut raw)
        .unwrap();
    assert_eq!(raw.len(), height as usize * (1 + 3 * width as usize));
    assert!(png.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82]));
}

#[tokio::test]
async fn email_report_has_text_html_and_an_inline_png() {
    let server = SmtpServer::start(Options::default()).await;
    let cfg = load(&email_config(server.addr.port()));
    let st = Arc::new(MemStorage::new());
    fill(st.as_ref(), END);
    let prepared = reports::prepare(&cfg.reports, cfg.notify.as_ref().unwrap()).unwrap();
    let metrics = ReportMetrics::default();
    let outcomes = reports::send(&local(st), &prepared[0], END, &metrics)
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].to_string(), "email[0]: sent");
    let sent = metrics
        .sent
        .get_or_create(&vec![
            ("report", "hourly".to_string()),
            ("integration", "email[0]".to_string()),
        ])
        .get();
    assert_eq!(sent, 1);

    let msgs = server.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].mail_from, "watchpost@example.test");
    assert_eq!(msgs[0].rcpt_to, vec!["ops@example.test".to_string()]);
    let mail = Mail::parse(&msgs[0].data);
    assert_eq!(mail.header("Subject"), Some("Hourly digest"));
    let mut kinds = Vec::new();
    let mut parts = Vec::new();
    leaves(mail, &mut kinds, &mut parts);
    assert_eq!(kinds, vec!["multipart/alternative", "multipart/related"]);
    let types: Vec<&str> = parts.iter().map(|p| p.content_type()).collect();
    assert_eq!(
        types,
        vec![
            "text/plain; charset=utf-8",
            "text/html; charset=utf-8",
            "image/png"
        ]
    );

    // MIME text travels with CRLF line ends.
    let text = parts[0].text().replace("\r\n", "\n");
    assert!(text.starts_with("Hourly digest\nWindow: 2026-12-07 08:00 UTC to 2026-12-07 09:00 UTC (1h)\n2 firing episode(s) of 2 alert(s): 2 began in the window, 1 resolved, 1 still firing.\n"), "{text}");
    assert!(text.contains("  {alertname=\"HostDown\", instance=\"a:9100\"}  2026-12-07 08:10 UTC -> 2026-12-07 08:20 UTC  (10m)\n"), "{text}");
    assert!(
        text.contains(
            "  {alertname=\"DiskFull\"}  2026-12-07 08:50 UTC -> still firing  (10m15s)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("  node  87.50%  (2 target(s); lowest a:9100 75.00%)\n"),
        "{text}"
    );

    let html = parts[1].text();
    let cid = reports::render::CHART_CID;
    assert!(html.contains(&format!("<img src=\"cid:{cid}\"")), "{html}");
    assert!(html.contains("<h2>Hourly digest</h2>"), "{html}");
    assert!(html.contains("87.50%"), "{html}");

    let image = &parts[2];
    assert_eq!(
        image.mail.header("Content-ID"),
        Some(format!("<{cid}>").as_str())
    );
    assert!(
        image
            .mail
            .header("Content-Disposition")
            .unwrap()
            .starts_with("inline"),
        "{:?}",
        image.mail.headers
    );
    assert_png(&image.bytes(), 640, 200);
    // Kept for a look: target/tmp/report-chart.png and report.html.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(tmp.join("report-chart.png"), image.bytes()).unwrap();
    std::fs::write(tmp.join("report.html"), html).unwrap();
}

#[tokio::test]
async fn telegram_report_sends_the_exact_message_and_the_chart() {
    let api = Recorder::start().await;
    api.answer(200, SENT);
    let cfg = load(&telegram_config(&api.url(""), "0 * * * *"));
    let st = Arc::new(MemStorage::new());
    fill(st.as_ref(), END);
    let prepared = reports::prepare(&cfg.reports, cfg.notify.as_ref().unwrap()).unwrap();
    let outcomes = reports::send(&local(st), &prepared[0], END, &ReportMetrics::default())
        .await
        .unwrap();
    assert_eq!(outcomes[0].to_string(), "telegram[0]: sent");

    let seen = api.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let msg = &seen[0];
    assert_eq!(msg.method, "POST");
    assert!(
        msg.path
            .eq_ignore_ascii_case(&format!("/bot{TOKEN}/sendMessage")),
        "{}",
        msg.path
    );
    assert_eq!(
        msg.json(),
        serde_json::json!({
            "chat_id": -1001234567890i64,
            "parse_mode": "HTML",
            "text": "<b>Hourly digest</b>\n\
        2026-12-07 08:00 UTC to 2026-12-07 09:00 UTC (1h)\n\
        2 firing episode(s) of 2 alert(s): 2 began in the window, 1 resolved, 1 still firing.\n\
        \n\
        <b>Firing episodes</b>\n\
        <pre>{alertname=&quot;HostDown&quot;, instance=&quot;a:9100&quot;}  2026-12-07 08:10 UTC -&gt; 2026-12-07 08:20 UTC\n\
        {alertname=&quot;DiskFull&quot;}  2026-12-07 08:50 UTC -&gt; still firing</pre>\n\
        \n\
        <b>Time in firing per alert</b>\n\
        <pre>{alertname=&quot;DiskFull&quot;}  10m15s  (1x)\n\
        {alertname=&quot;HostDown&quot;, instance=&quot;a:9100&quot;}  10m  (1x)</pre>\n\
        \n\
        <b>Noisiest rules</b>\n\
        <pre>DiskFull  1 episode(s), 10m15s firing\n\
        HostDown  1 episode(s), 10m firing</pre>\n\
        \n\
        <b>Target availability per job</b>\n\
        <pre>node  87.50%  (2 target(s))</pre>"
        })
    );

    let photo = &seen[1];
    assert!(
        photo
            .path
            .eq_ignore_ascii_case(&format!("/bot{TOKEN}/sendPhoto")),
        "{}",
        photo.path
    );
    let ct = photo.header("content-type").to_string();
    assert!(ct.starts_with("multipart/form-data; boundary="), "{ct}");
    let body = &photo.body;
    let find = |needle: &[u8]| body.windows(needle.len()).position(|w| w == needle);
    assert!(find(b"name=\"chat_id\"\r\n\r\n-1001234567890\r\n").is_some());
    assert!(find(b"name=\"caption\"\r\n\r\nFiring alerts over the window, one bar per 15s (highest: 1)\r\n").is_some());
    // teloxide attaches the file as its own part and points `photo` at it
    // (`attach://<id>`), as the Bot API allows.
    let head = b"name=\"photo\"\r\n\r\nattach://";
    let at = find(head).expect("photo refers to an attached part") + head.len();
    let id_len = body[at..].iter().position(|b| *b == b'\r').unwrap();
    let id = String::from_utf8(body[at..at + id_len].to_vec()).unwrap();
    assert!(
        find(format!("name=\"{id}\"; filename=\"chart.png\"").as_bytes()).is_some(),
        "{}",
        String::from_utf8_lossy(body)
    );
    let png_at = find(b"\x89PNG\r\n\x1a\n").expect("the chart is in the request");
    let png_end = find(b"IEND\xae\x42\x60\x82").unwrap() + 8;
    assert_png(&body[png_at..png_end], 640, 200);
}

/// A source that records the window end of each report and fails, so the
/// scheduler can be watched without any network.
#[derive(Default)]
struct Recording(Mutex<Vec<Timestamp>>);

impl QuerySource for Recording {
    fn range<'a>(
        &'a self,
        _expr: &'a str,
        _start: Timestamp,
        end: Timestamp,
        _step: Duration,
    ) -> BoxFuture<'a, Result<Vec<RangeSeries>, ReportError>> {
        self.0.lock().unwrap().push(end);
        Box::pin(async {
            Err(ReportError::Source {
                message: "recorded".into(),
            })
        })
    }

    fn instant<'a>(
        &'a self,
        _expr: &'a str,
        _t: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<VectorSample>, ReportError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

#[tokio::test(start_paused = true)]
async fn scheduler_fires_at_the_cron_time() {
    // Berlin's 09:00 is 08:00 UTC in winter.
    let cfg = load(
        &telegram_config("http://127.0.0.1:1", "0 9 * * MON").replace(
            "    window: 1h",
            "    timezone: Europe/Berlin\n    window: 1h",
        ),
    );
    let prepared = reports::prepare(&cfg.reports, cfg.notify.as_ref().unwrap()).unwrap();
    let source = Arc::new(Recording::default());
    let metrics = ReportMetrics::default();
    let tracker = tokio_util::task::TaskTracker::new();
    // Monday 2026-12-07 07:58:30 UTC.
    let start = END - 61 * MIN - 30_000;
    let manager = ReportManager::new(
        source.clone(),
        metrics.clone(),
        watchpost::notify::Clock::following_tokio(start),
        tracker.clone(),
    );
    manager.apply(prepared);
    let failed = || {
        metrics
            .failed
            .get_or_create(&vec![
                ("report", "hourly".to_string()),
                ("reason", "query".to_string()),
            ])
            .get()
    };

    tokio::time::sleep(Duration::from_millis(89_900)).await;
    assert!(
        source.0.lock().unwrap().is_empty(),
        "fired before 08:00 UTC"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*source.0.lock().unwrap(), vec![END - 60 * MIN]);
    assert_eq!(failed(), 1);

    // The next run is a week later, not sooner.
    tokio::time::sleep(Duration::from_secs(7 * 86400 - 60)).await;
    assert_eq!(source.0.lock().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        *source.0.lock().unwrap(),
        vec![END - 60 * MIN, END - 60 * MIN + 7 * 86400 * 1000]
    );

    // A reload to an empty list stops the loop.
    manager.apply(Vec::new());
    tokio::time::sleep(Duration::from_secs(8 * 86400)).await;
    assert_eq!(source.0.lock().unwrap().len(), 2);
    manager.shutdown();
    tracker.close();
    tracker.wait().await;
}

/// Runs the binary against the watchpost running on this runtime.
async fn watchpost(args: &[&str]) -> std::process::Output {
    support::run_binary(args.iter().map(|a| a.to_string()).collect()).await
}

/// The standard output of a run that must succeed.
fn success(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_show_and_send_use_a_running_watchpost() {
    let api = Recorder::start().await;
    api.answer(200, SENT);
    let yaml = telegram_config(&api.url(""), "0 9 * * MON");
    let h = support::start(&yaml, None).await;
    #[allow(clippy::disallowed_methods)]
    let now = watchpost::model::timestamp_of(std::time::SystemTime::now());
    fill(h.app().storage().as_ref(), now);
    let c = h.config_path().to_str().unwrap().to_string();
    let b = h.base.clone();

    let out = watchpost(&["report", "show", "hourly", "--config", &c, "--web.url", &b]).await;
    let stdout = success(&out);
    assert!(stdout.starts_with("Hourly digest\nWindow: "), "{stdout}");
    assert!(
        stdout.contains("2 firing episode(s) of 2 alert(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("  node  87.50%  (2 target(s)"), "{stdout}");
    assert!(api.seen().is_empty(), "show sends nothing");

    let out = watchpost(&[
        "report",
        "send",
        "hourly",
        "--config.file",
        &c,
        "--web.url",
        &b,
    ])
    .await;
    assert_eq!(success(&out), "telegram[0]: sent\n");
    let seen = api.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        seen[0].json()["text"]
            .as_str()
            .unwrap()
            .contains("HostDown")
    );

    // An unknown name says which reports exist.
    let out = watchpost(&["report", "send", "nope", "--config", &c, "--web.url", &b]).await;
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "watchpost: report \"nope\" is not in the config: use one of hourly\n"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_show_logs_in_with_the_url_user_and_never_prints_the_password() {
    let hash = bcrypt::hash("s3cret-pw", 4).unwrap();
    let web = format!("basic_auth_users:\n  alice: {hash}\n");
    let yaml = telegram_config("http://127.0.0.1:1", "0 9 * * MON");
    let h = support::start(&yaml, Some(&web)).await;
    let c = h.config_path().to_str().unwrap().to_string();
    let port = h.app().local_addr().port();
    let show = |password: &str| {
        let url = format!("http://alice:{password}@127.0.0.1:{port}");
        let c = c.clone();
        async move {
            watchpost(&[
                "report",
                "show",
                "hourly",
                "--config",
                &c,
                "--web.url",
                &url,
            ])
            .await
        }
    };
    assert!(success(&show("s3cret-pw").await).contains("0 firing episode(s)"));
    let out = show("wrong-pw").await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("answered 401 Unauthorized"), "{err}");
    assert!(!err.contains("wrong-pw"), "{err}");
    h.shutdown().await;
}

#[tokio::test]
async fn reload_rejects_a_report_whose_receiver_cannot_send() {
    let api = Recorder::start().await;
    let yaml = telegram_config(&api.url(""), "0 9 * * MON");
    let h = support::start(&yaml, None).await;
    h.write_config(&yaml.replace("receiver: chat\n    window", "receiver: nobody\n    window"));
    let e = h.app().reload().await.unwrap_err();
    assert!(
        e.to_string()
            .contains("report \"hourly\": receiver \"nobody\" does not exist"),
        "{e}"
    );
    h.shutdown().await;
}

/// The example of README's "Digest reports" section loads as written.
#[test]
fn readme_example_is_a_valid_config() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n## Digest reports\n")
        .nth(1)
        .expect("README has a Digest reports section");
    let yaml = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the section has a yaml example");
    let cfg = load(yaml);
    assert_eq!(cfg.reports.len(), 1);
    let r = &cfg.reports[0];
    assert_eq!(
        (r.name.as_str(), r.receiver.as_str()),
        ("weekly", "team-digest")
    );
    assert_eq!(r.window, Duration::from_secs(7 * 86400));
    assert_eq!(r.title, "Weekly alert digest");
    let prepared = reports::prepare(&cfg.reports, cfg.notify.as_ref().unwrap()).unwrap();
    assert_eq!(prepared.len(), 1);
}

#[test]
fn report_counters_are_registered_under_their_documented_names() {
    let t = watchpost::telemetry::Telemetry::new(Arc::new(MemStorage::new()));
    t.reports
        .sent
        .get_or_create(&vec![
            ("report", "weekly".to_string()),
            ("integration", "email[0]".to_string()),
        ])
        .inc();
    t.reports
        .failed
        .get_or_create(&vec![
            ("report", "weekly".to_string()),
            ("reason", "query".to_string()),
        ])
        .inc();
    let text = t.encode();
    assert!(
        text.contains("watchpost_reports_sent_total{report=\"weekly\",integration=\"email[0]\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("watchpost_reports_failed_total{report=\"weekly\",reason=\"query\"} 1"),
        "{text}"
    );
}
