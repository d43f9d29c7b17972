//! A real SMTP server for the email channel's tests: aiosmtpd (RFC 5321,
//! STARTTLS per RFC 3207, AUTH per RFC 4954) run by `smtp_server.py` in a
//! Python venv under `target/` that the first test creates (with pip, from
//! PyPI) when it is missing, so a plain `cargo test` needs only `python3`.
//! Each [`SmtpServer`] is one server process on loopback that reports
//! every accepted message with its envelope and the session's facts (TLS,
//! authenticated user and mechanism) as JSON lines, and dies with its
//! handle. Also here: a test CA from rcgen and a small MIME reader for the
//! received messages.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The aiosmtpd release the tests were written against.
const AIOSMTPD: &str = "aiosmtpd==1.4.6";

/// A CA, and a certificate for `smtp.test` and 127.0.0.1 signed by it.
#[derive(Clone)]
pub struct TestPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn pki() -> TestPki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.distinguished_name
        .push(DnType::CommonName, "watchpost smtp test ca");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut sp =
        CertificateParams::new(vec!["smtp.test".to_string(), "127.0.0.1".to_string()]).unwrap();
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = sp.signed_by(&key, &issuer).unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TlsMode {
    None,
    /// STARTTLS offered after EHLO; AUTH only after the upgrade.
    StartTls,
    /// TLS from the first byte (port 465 style).
    Implicit,
}

#[derive(Clone)]
pub struct Options {
    pub tls: TlsMode,
    /// The server's certificate (required unless `tls` is `None`).
    pub server_tls: Option<TestPki>,
    /// Offer AUTH (PLAIN, LOGIN, CRAM-MD5) with these credentials and
    /// require it for MAIL.
    pub auth: Option<(String, String)>,
    /// Answer DATA's end with this reply instead of 250.
    pub data_reply: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tls: TlsMode::None,
            server_tls: None,
            auth: None,
            data_reply: None,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Received {
    pub hello: String,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: String,
    pub tls: bool,
    pub auth_user: Option<String>,
    pub auth_mechanism: Option<String>,
}

#[derive(Default)]
struct Events {
    received: Vec<Received>,
    auth_failures: usize,
    synced: u64,
}

pub struct SmtpServer {
    pub addr: SocketAddr,
    events: Arc<(Mutex<Events>, std::sync::Condvar)>,
    child: Child,
    stdin: Mutex<Option<ChildStdin>>,
    sync_seq: Mutex<u64>,
    _dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        // Closing stdin alone ends the server; the kill makes sure.
        drop(self.stdin.lock().unwrap().take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The venv's python with aiosmtpd, created once per checkout.
fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let venv = target.join("smtp-test-venv");
        let py = venv.join("bin/python");
        if has_aiosmtpd(&py) {
            return py;
        }
        // Built aside and renamed into place, so a concurrent test run
        // never sees a half-installed venv.
        std::fs::create_dir_all(&target).unwrap();
        let tmp = target.join(format!("smtp-test-venv.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        run(Command::new("python3").args(["-m", "venv"]).arg(&tmp));
        run(Command::new(tmp.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            AIOSMTPD,
        ]));
        let _ = std::fs::remove_dir_all(&venv);
        if std::fs::rename(&tmp, &venv).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        assert!(
            has_aiosmtpd(&py),
            "{} has no aiosmtpd after installing it",
            venv.display()
        );
        py
    })
    .clone()
}

fn has_aiosmtpd(py: &Path) -> bool {
    py.exists()
        && Command::new(py)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}: the SMTP tests need python3"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

impl SmtpServer {
    pub async fn start(opts: Options) -> SmtpServer {
        SmtpServer::start_on("127.0.0.1:0", opts).await
    }

    /// Listens on `addr` (`127.x.y.z:port`; port 0 picks one).
    pub async fn start_on(addr: &str, opts: Options) -> SmtpServer {
        let addr: SocketAddr = addr.parse().unwrap();
        tokio::task::spawn_blocking(move || SmtpServer::spawn(addr, opts))
            .await
            .unwrap()
    }

    fn spawn(addr: SocketAddr, opts: Options) -> SmtpServer {
        let py = python();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = serde_json::json!({
            "host": addr.ip().to_string(),
            "port": addr.port(),
            "tls": match opts.tls {
                TlsMode::None => "none",
                TlsMode::StartTls => "starttls",
                TlsMode::Implicit => "implicit",
            },
            "auth": opts.auth.as_ref().map(|(u, p)| [u, p]),
            "data_reply": opts.data_reply,
        });
        if let Some(p) = &opts.server_tls {
            let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
            std::fs::write(&cert, &p.cert_pem).unwrap();
            std::fs::write(&key, &p.key_pem).unwrap();
            cfg["cert"] = cert.display().to_string().into();
            cfg["key"] = key.display().to_string().into();
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/smtp_server.py");
        let mut child = Command::new(&py)
            .arg(&script)
            .arg(cfg.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", script.display()));
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let mut err = child.stderr.take().unwrap();
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = String::new();
                let _ = err.read_to_string(&mut buf);
                stderr.lock().unwrap().push_str(&buf);
            });
        }
        let events = Arc::new((Mutex::new(Events::default()), std::sync::Condvar::new()));
        let (ready_tx, ready_rx) = mpsc::channel::<u16>();
        {
            let out = BufReader::new(child.stdout.take().unwrap());
            let events = events.clone();
            std::thread::spawn(move || {
                for line in out.lines() {
                    let Ok(line) = line else { break };
                    let v: serde_json::Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("smtp_server.py said {line:?}: {e}"));
                    let (lock, cv) = &*events;
                    let mut ev = lock.lock().unwrap();
                    match v["event"].as_str().unwrap_or("") {
                        "ready" => {
                            let _ = ready_tx.send(v["port"].as_u64().unwrap() as u16);
                        }
                        "message" => ev.received.push(Received {
                            hello: v["hello"].as_str().unwrap_or("").to_string(),
                            mail_from: v["mail_from"].as_str().unwrap_or("").to_string(),
                            rcpt_to: v["rcpt_to"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|r| r.as_str().unwrap().to_string())
                                .collect(),
                            data: v["data"].as_str().unwrap_or("").to_string(),
                            tls: v["tls"].as_bool().unwrap_or(false),
                            auth_user: v["auth_user"].as_str().map(str::to_string),
                            auth_mechanism: v["auth_mechanism"].as_str().map(str::to_string),
                        }),
                        "auth_failed" => ev.auth_failures += 1,
                        "sync" => ev.synced = v["seq"].as_u64().unwrap(),
                        other => panic!("smtp_server.py: unknown event {other:?}"),
                    }
                    cv.notify_all();
                }
            });
        }
        let port = match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!("smtp_server.py did not start: {}", stderr.lock().unwrap());
            }
        };
        let stdin = child.stdin.take();
        SmtpServer {
            addr: SocketAddr::new(addr.ip(), port),
            events,
            child,
            stdin: Mutex::new(stdin),
            sync_seq: Mutex::new(0),
            _dir: dir,
        }
    }

    /// Waits until the server has reported everything it did before this
    /// call: a sync request travels through its stdin and its echo comes
    /// back behind every earlier event on stdout.
    fn sync(&self) -> std::sync::MutexGuard<'_, Events> {
        let seq = {
            let mut s = self.sync_seq.lock().unwrap();
            *s += 1;
            *s
        };
        {
            let mut stdin = self.stdin.lock().unwrap();
            let w = stdin.as_mut().unwrap();
            writeln!(w, "sync {seq}").unwrap();
            w.flush().unwrap();
        }
        let (lock, cv) = &*self.events;
        let (guard, timeout) = cv
            .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(10), |ev| {
                ev.synced < seq
            })
            .unwrap();
        assert!(!timeout.timed_out(), "smtp_server.py did not answer a sync");
        guard
    }

    /// Every message the server accepted so far.
    pub fn messages(&self) -> Vec<Received> {
        self.sync().received.clone()
    }

    /// How many AUTH attempts the server rejected so far.
    pub fn auth_failures(&self) -> usize {
        self.sync().auth_failures
    }
}

/// A parsed message: headers (unfolded, in order) and the body.
pub struct Mail {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Mail {
    pub fn parse(data: &str) -> Mail {
        let (head, body) = data.split_once("\r\n\r\n").unwrap_or((data, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for l in head.split("\r\n") {
            if l.starts_with([' ', '\t']) {
                // Unfolding: the line break goes, the whitespace stays.
                if let Some(last) = headers.last_mut() {
                    last.1.push_str(l);
                }
                continue;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.to_string(), v.trim().to_string()));
            }
        }
        Mail {
            headers,
            body: body.to_string(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The multipart boundary of the Content-Type, if any.
    pub fn boundary(&self) -> Option<String> {
        self.header("Content-Type")?
            .split(';')
            .find_map(|p| p.trim().strip_prefix("boundary="))
            .map(|b| b.trim_matches('"').to_string())
    }

    /// The decoded parts of a multipart body, as (content type, text); a
    /// single-part message is one part.
    pub fn parts(&self) -> Vec<(String, String)> {
        let ct = self
            .header("Content-Type")
            .unwrap_or("text/plain")
            .to_string();
        let Some(boundary) = self.boundary() else {
            let cte = self.header("Content-Transfer-Encoding").unwrap_or("7bit");
            return vec![(ct, decode(cte, &self.body))];
        };
        let delim = format!("--{boundary}");
        self.body
            .split(delim.as_str())
            .skip(1)
            .filter(|p| !p.starts_with("--"))
            .map(|p| {
                let part = Mail::parse(p.trim_start_matches("\r\n"));
                let ct = part
                    .header("Content-Type")
                    .unwrap_or("text/plain")
                    .to_string();
                let cte = part
                    .header("Content-Transfer-Encoding")
                    .unwrap_or("7bit")
                    .to_string();
                (ct, decode(&cte, &part.body))
            })
            .collect()
    }
}

fn decode(cte: &str, body: &str) -> String {
    match cte.to_ascii_lowercase().as_str() {
        "base64" => String::from_utf8_lossy(
            &base64::engine::general_purpose::STANDARD
                .decode(body.replace("\r\n", "").trim())
                .unwrap(),
        )
        .into_owned(),
        "quoted-printable" => {
            let mut out = Vec::new();
            let soft = body.replace("=\r\n", "");
            let b = soft.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'=' && i + 2 < b.len() {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        }
        _ => body.to_string(),
    }
}
