//! The `watchpost` binary: `check config`, `--version`, and the embedded
//! default.

use std::process::Command;

fn watchpost() -> Command {
    Command::new(env!("CARGO_BIN_EXE_watchpost"))
}

#[test]
fn check_config_reports_every_error_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yml");
    std::fs::write(
        &f,
        "global:\n  scrape_interval: 10s\nscrape_configs:\n  - job_name: a\n    scrape_timeout: 15s\n    static_configs: [{targets: [\"x:1\"]}]\n  - job_name: a\n    static_configs: [{targets: [\"y:1\"]}]\n",
    )
    .unwrap();
    let out = watchpost()
        .args(["check", "config"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() >= 2, "every error reported: {err}");
    let name = f.display().to_string();
    for l in &lines {
        assert!(
            l.starts_with(&format!("{name}:")),
            "position prefix on {l:?}"
        );
    }
    assert!(
        err.contains("scrape_timeout (15s) is greater than scrape_interval (10s"),
        "{err}"
    );
    assert!(err.contains("job_name is used twice"), "{err}");
    assert!(err.contains("\"a\""), "{err}");
}

#[test]
fn check_config_accepts_every_shipped_config() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files = vec![];
    for dir in ["config"] {
        for e in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yml") {
                files.push(p);
            }
        }
    }
    assert!(!files.is_empty());
    let out = watchpost()
        .args(["check", "config"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn version_and_help() {
    let out = watchpost().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(watchpost::VERSION));
    let out = watchpost().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config.file",
        "--web.listen-address",
        "--storage.path",
        "--web.config.file",
        "--log.level",
        "--log.format",
    ] {
        assert!(help.contains(flag), "{flag} in --help");
    }
}

#[test]
fn embedded_default_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = watchpost::config::load_str(
        watchpost::app::EMBEDDED_CONFIG,
        "config/watchpost.yml",
        dir.path(),
    )
    .unwrap();
    let jobs: Vec<&str> = cfg
        .scrape_configs
        .iter()
        .map(|j| j.job_name.as_str())
        .collect();
    assert_eq!(jobs, vec!["watchpost", "demo"]);
}
