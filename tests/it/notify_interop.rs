//! Interop with Debian's `prometheus-alertmanager` package (Alertmanager
//! 0.25 and amtool), which `.ci/run` installs before running the ignored
//! tests (`cargo test -- --ignored`):
//! - the example configs the package ships load in watchpost;
//! - every bad fixture of `config/testdata/notify/bad` that watchpost
//!   rejects is rejected by `amtool check-config` too, except the listed
//!   cases where watchpost is deliberately stricter;
//! - the good fixtures written without watchpost extensions are accepted by
//!   amtool, so they really are Alertmanager configs.
//!
//! Ignored by default because they need that package; they fail (never
//! skip) when it is missing.

use std::path::Path;
use std::process::Command;

use watchpost::config::notify;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The example configs the Debian package installs.
const SHIPPED: [&str; 3] = [
    "/usr/share/doc/prometheus-alertmanager/examples/simple.yml",
    "/usr/share/doc/prometheus-alertmanager/examples/ha/alertmanager.yml",
    "/etc/prometheus/alertmanager.yml",
];

/// Bad fixtures Alertmanager 0.25 accepts, and why watchpost does not.
const STRICTER: [(&str, &str); 1] = [(
    "email-password-and-file.yml",
    "both auth_password and auth_password_file: Alertmanager silently prefers the file",
)];

/// Good fixtures that use only Alertmanager's keys.
const PLAIN_ALERTMANAGER: [&str; 2] = ["alertmanager-example.yml", "legacy-match.yml"];

fn amtool_accepts(path: &Path) -> bool {
    let out = Command::new("amtool")
        .arg("check-config")
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run amtool ({e}): install Debian's prometheus-alertmanager package")
        });
    out.status.success()
}

#[test]
#[ignore = "needs Debian's prometheus-alertmanager package (installed by .ci/run)"]
fn shipped_alertmanager_examples_load() {
    for p in SHIPPED {
        let path = Path::new(p);
        assert!(
            path.exists(),
            "{p} is missing: install Debian's prometheus-alertmanager package"
        );
        let c = notify::load_file(path).unwrap_or_else(|e| panic!("{p} should load:\n{e}"));
        assert!(!c.receivers.is_empty(), "{p}");
        assert!(c.route.receiver.is_some(), "{p}");
    }
}

#[test]
#[ignore = "needs Debian's prometheus-alertmanager package (installed by .ci/run)"]
fn amtool_agrees_with_the_fixtures() {
    let bad = Path::new(ROOT).join("config/testdata/notify/bad");
    let mut disagreements = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(&bad).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".yml") {
            continue;
        }
        checked += 1;
        let stricter = STRICTER.iter().any(|(n, _)| *n == name);
        if amtool_accepts(&path) != stricter {
            disagreements.push(format!(
                "{name}: amtool {} it",
                if stricter { "rejects" } else { "accepts" }
            ));
        }
    }
    let good = Path::new(ROOT).join("config/testdata/notify/good");
    for name in PLAIN_ALERTMANAGER {
        checked += 1;
        if !amtool_accepts(&good.join(name)) {
            disagreements.push(format!("good/{name}: amtool rejects it"));
        }
    }
    assert!(checked > 25, "only {checked} fixtures");
    assert!(
        disagreements.is_empty(),
        "watchpost and Alertmanager disagree:\n{}",
        disagreements.join("\n")
    );
}
