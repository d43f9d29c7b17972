//! Rule unit-test conformance: every file of the promtool corpus (read in
//! place from the shared conformance directory) gives the pass/fail its
//! README states, failing for the stated reason; the corpus's extra rule
//! files validate (or not) as stated; and our own self-monitoring rules in
//! `rules/tests/` pass.
//!
//! A case listed in `rules_unit_known_failures.tsv` may fail (with its
//! reason); a listed case that passes fails this test, so the list only
//! shrinks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use watchpost::rules::unittest::{FileOutcome, TestOptions, run_file};
use watchpost::rules::{LoadOptions, duplicate_rules, load_paths};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/conformance/rules-unit"
);
const KNOWN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/rules_unit_known_failures.tsv"
);
const OWN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/tests");

/// One expectation of the README: a file, the flags, pass or fail, and for
/// a failure a text that must appear among the failures (so a file that
/// fails for another reason is caught).
struct Case {
    file: &'static str,
    run: &'static [&'static str],
    ignore_unknown: bool,
    pass: bool,
    reason: &'static str,
}

const fn case(file: &'static str, pass: bool, reason: &'static str) -> Case {
    Case {
        file,
        run: &[],
        ignore_unknown: false,
        pass,
        reason,
    }
}

const CASES: &[Case] = &[
    case("unittest.yml", true, ""),
    case("long-period.yml", true, ""),
    case("no-test-group-interval.yml", true, ""),
    case("start-time-test.yml", true, ""),
    case("at-modifier-test.yml", true, ""),
    case("negative-offset-test.yml", true, ""),
    case("failing.yml", false, "alertname: AlwaysFiring, time: 5m"),
    case("bad-input-series.yml", false, "series \"up{job="),
    case("bad-promql.yml", false, "many-to-many matching not allowed"),
    case(
        "bad-rules-syntax-test.yml",
        false,
        "group \"bad-syntax\", rule 1 \"x\": could not parse expression",
    ),
    case(
        "bad-rules-error-test.yml",
        false,
        "rule: joined, time: 0s, err: found duplicate series",
    ),
    case("rules_run.yml", false, "exp: {__name__=\"test\"} 1E+00"),
    Case {
        run: &["correct"],
        ..case("rules_run.yml", true, "")
    },
    Case {
        run: &["wrong"],
        ..case("rules_run.yml", false, "got: {__name__=\"test\"} 0E+00")
    },
    Case {
        run: &["correct", "wrong"],
        ..case("rules_run.yml", false, "got: {__name__=\"test\"} 0E+00")
    },
    Case {
        ignore_unknown: true,
        ..case("rules_run_extrafields.yml", true, "")
    },
    case(
        "rules_run_extrafields.yml",
        false,
        "unknown key \"namespace\"",
    ),
    case(
        "rules_run_no_fuzzy.yml",
        false,
        "got: {__name__=\"test_high\"} 3.0000000000000004E+00",
    ),
    case(
        "rules_run_fuzzy.yml",
        false,
        "got: {__name__=\"test_low\"} 2.9999999999999987E+00",
    ),
    Case {
        run: &["correct"],
        ..case("rules_run_fuzzy.yml", true, "")
    },
    Case {
        run: &["wrong"],
        ..case("rules_run_fuzzy.yml", false, "3.0000000000000013E+00")
    },
];

/// The rule files of the corpus (referenced by tests, or extras for
/// `check rules`): whether they load strictly, and the duplicates the
/// lint must find.
const RULE_FILES: &[(&str, bool, &[&str])] = &[
    ("rules.yml", true, &[]),
    ("at-modifier.yml", true, &[]),
    ("negative-offset.yml", true, &[]),
    ("bad-rules-error.yml", true, &[]),
    ("bad-rules-syntax.yml", false, &[]),
    ("rules_extrafields.yml", false, &[]),
    ("rules-bad.yml", false, &[]),
    (
        "rules_duplicates.yml",
        true,
        &["job:test:count_over_time1m"],
    ),
    ("prometheus-rules.lint.yml", true, &["HighRequestLatency"]),
    ("features.yml", true, &[]),
    // Valid; its first and last rules are written twice, which the lint
    // reports (as promtool does).
    (
        "rules_large.yml",
        true,
        &[
            "job:http_inprogress_requests:sum:1",
            "job:http_inprogress_requests:sum:10000",
        ],
    ),
];

fn case_id(c: &Case) -> String {
    let mut id = c.file.to_string();
    for r in c.run {
        id.push_str(&format!(" --run {r}"));
    }
    if c.ignore_unknown {
        id.push_str(" --ignore-unknown-fields");
    }
    id
}

/// `case<TAB>reason` per line; `#` comments.
fn known_failures() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(KNOWN).unwrap_or_else(|e| panic!("reading {KNOWN}: {e}"));
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, reason) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("{KNOWN}:{}: want case<TAB>reason", i + 1));
        assert!(!reason.trim().is_empty(), "{KNOWN}:{}: empty reason", i + 1);
        assert!(
            out.insert(id.to_string(), reason.to_string()).is_none(),
            "{KNOWN}:{}: duplicate entry",
            i + 1
        );
    }
    out
}

fn run(path: &Path, run: &[&str], ignore_unknown: bool) -> FileOutcome {
    let opts = TestOptions {
        run: run.iter().map(|s| s.to_string()).collect(),
        ignore_unknown_fields: ignore_unknown,
    };
    run_file(path, &opts).unwrap()
}

#[test]
fn promtool_corpus_outcomes() {
    assert!(
        Path::new(CORPUS).is_dir(),
        "the rule unit-test corpus is missing at {CORPUS}"
    );
    let known = known_failures();
    let (mut passed, mut failed) = (0, 0);
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    for c in CASES {
        let id = case_id(c);
        let out = run(&Path::new(CORPUS).join(c.file), c.run, c.ignore_unknown);
        let errors = out.all_errors().join("\n");
        let ok = if c.pass {
            out.passed()
        } else {
            !out.passed() && errors.contains(c.reason)
        };
        println!(
            "{id}: expected {}, got {} ({} test groups)",
            if c.pass { "pass" } else { "fail" },
            if out.passed() { "pass" } else { "fail" },
            out.groups.len()
        );
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
        match (ok, known.get(&id)) {
            (false, None) => unexpected.push(format!("{id}:\n{errors}")),
            (true, Some(_)) => fixed.push(id),
            (false, Some(reason)) => println!("  known failure: {reason}"),
            (true, None) => {}
        }
    }
    println!("{passed} passed, {failed} failed");
    assert!(
        unexpected.is_empty(),
        "cases that do not give the README's outcome:\n{}",
        unexpected.join("\n\n")
    );
    assert!(
        fixed.is_empty(),
        "listed known failures now pass; remove them from {KNOWN}: {fixed:?}"
    );
}

#[test]
fn every_corpus_file_is_covered() {
    let mut files: Vec<String> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    files.sort();
    for f in &files {
        assert!(
            CASES.iter().any(|c| c.file == f) || RULE_FILES.iter().any(|r| r.0 == f),
            "corpus file {f} has no expectation in this test"
        );
    }
    assert_eq!(
        CASES
            .iter()
            .map(|c| c.file)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        15,
        "the README lists 15 unit-test files"
    );
}

/// Native histogram expectations compare through the canonical text, as
/// promtool's do: the counter-reset hint the storage sets on the second
/// and later samples is part of it, so an expectation without it fails and
/// the failure shows both histograms.
#[test]
fn histogram_expectations_compare_canonical_text() {
    let dir = tempfile::tempdir().unwrap();
    let write = |hint: &str| {
        let text = format!(
            r#"evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: h
        values: "{{{{sum:3 count:2 buckets:[2]}}}}+{{{{sum:1 count:1 buckets:[1]}}}}x2"
    promql_expr_test:
      - expr: h
        eval_time: 2m
        exp_samples:
          - labels: h
            histogram: "{{{{count:4 sum:5 {hint}buckets:[4]}}}}"
"#
        );
        let path = dir.path().join("t.yml");
        std::fs::write(&path, text).unwrap();
        run(&path, &[], false)
    };
    let out = write("counter_reset_hint:not_reset ");
    assert!(out.passed(), "{}", out.all_errors().join("\n"));
    let out = write("");
    assert!(!out.passed());
    let errors = out.all_errors().join("\n");
    assert!(
        errors.contains("exp: {__name__=\"h\"} {{count:4 sum:5 buckets:[4]}}"),
        "{errors}"
    );
    assert!(
        errors.contains(
            "got: {__name__=\"h\"} {{count:4 sum:5 counter_reset_hint:not_reset buckets:[4]}}"
        ),
        "{errors}"
    );
}

/// Rules record and alert on floats: a rule whose result is a native
/// histogram fails its evaluation with a message saying so, which fails
/// the test as any rule evaluation error does.
#[test]
fn histogram_rule_results_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.yml"),
        "groups:\n  - name: g\n    rules:\n      - record: copy\n        expr: h\n",
    )
    .unwrap();
    let path = dir.path().join("t.yml");
    std::fs::write(
        &path,
        r#"rule_files: [r.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: h
        values: "{{sum:3 count:2 buckets:[2]}}x2"
"#,
    )
    .unwrap();
    let out = run(&path, &[], false);
    assert!(!out.passed());
    let errors = out.all_errors().join("\n");
    assert!(
        errors.contains("rule: copy")
            && errors.contains("rule result has a native histogram sample"),
        "{errors}"
    );
}

#[test]
fn corpus_rule_files_validate_as_stated() {
    let known = known_failures();
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    for (file, valid, dups) in RULE_FILES {
        let id = format!("check rules {file}");
        let res = load_paths(&[Path::new(CORPUS).join(file)], LoadOptions::default());
        let ok = match (&res, valid) {
            (Ok(groups), true) => {
                let found: Vec<String> = duplicate_rules(groups).into_iter().map(|d| d.0).collect();
                found == *dups
            }
            (Err(_), false) => true,
            _ => false,
        };
        let summary = match &res {
            Ok(g) => format!(
                "{} rules, duplicates {:?}",
                g.iter().map(|g| g.rules.len()).sum::<usize>(),
                duplicate_rules(g)
                    .into_iter()
                    .map(|d| d.0)
                    .collect::<Vec<_>>()
            ),
            Err(e) => e.to_string(),
        };
        println!("{id}: {summary}");
        match (ok, known.get(&id)) {
            (false, None) => unexpected.push(format!("{id}: {summary}")),
            (true, Some(_)) => fixed.push(id),
            _ => {}
        }
    }
    let bad = load_paths(
        &[Path::new(CORPUS).join("rules-bad.yml")],
        LoadOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        bad.contains(
            "group \"alerts\", rule 1 \"InstanceDown\": annotation \"summary\": template: __alert_InstanceDown:1: undefined variable \"$label\""
        ),
        "{bad}"
    );
    let large = load_paths(
        &[Path::new(CORPUS).join("rules_large.yml")],
        LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(large.iter().map(|g| g.rules.len()).sum::<usize>(), 10_002);
    let lenient = load_paths(
        &[Path::new(CORPUS).join("rules_extrafields.yml")],
        LoadOptions {
            ignore_unknown_fields: true,
        },
    );
    assert!(lenient.is_ok(), "{lenient:?}");
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
    assert!(
        fixed.is_empty(),
        "listed known failures now pass; remove them from {KNOWN}: {fixed:?}"
    );
}

fn own_test_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(OWN)
        .unwrap_or_else(|e| panic!("reading {OWN}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn own_rule_tests_pass() {
    let files = own_test_files();
    assert!(!files.is_empty(), "no rule tests in {OWN}");
    let mut failures = Vec::new();
    for f in files {
        let out = run(&f, &[], false);
        println!("{}: {} test groups", f.display(), out.groups.len());
        assert!(!out.groups.is_empty(), "{} has no test groups", f.display());
        if !out.passed() {
            failures.push(format!(
                "{}:\n{}",
                f.display(),
                out.all_errors().join("\n\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every file under `rules/` loads strictly (the embedded default config
/// loads them).
#[test]
fn shipped_rule_files_load() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let groups = load_paths(&files, LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(duplicate_rules(&groups).is_empty());
}

/// The real `promtool` agrees: the shipped rules pass its checks and our
/// unit tests pass under it too (interop suite; `.ci/run` installs
/// promtool and runs the ignored tests).
#[test]
#[ignore = "interop: needs promtool; run by .ci/run"]
fn promtool_accepts_shipped_rules_and_their_tests() {
    let root = env!("CARGO_MANIFEST_DIR");
    let rule_files: Vec<PathBuf> = std::fs::read_dir(format!("{root}/rules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    let promtool = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(root)
            .output()
            .expect("promtool on PATH (Debian package prometheus; .ci/run installs it)");
        assert!(
            out.status.success(),
            "promtool {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut args: Vec<&std::ffi::OsStr> = vec!["check".as_ref(), "rules".as_ref()];
    args.extend(rule_files.iter().map(|p| p.as_os_str()));
    let out = promtool(&args);
    assert!(out.contains("SUCCESS"), "{out}");
    let tests = own_test_files();
    let mut args: Vec<&std::ffi::OsStr> = vec!["test".as_ref(), "rules".as_ref()];
    args.extend(tests.iter().map(|p| p.as_os_str()));
    let out = promtool(&args);
    assert_eq!(out.matches("SUCCESS").count(), tests.len(), "{out}");
}
