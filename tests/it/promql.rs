//! PromQL conformance: runs every promqltest file of the upstream corpus
//! (read in place from the shared conformance directory) and our own
//! `tests/promql/*.test` files through the engine.
//!
//! Every corpus eval must pass unless `promql_known_failures.tsv` lists it
//! with a reason; a listed eval that passes fails the test too, so the list
//! only shrinks. Our own files must pass completely.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use watchpost::promql::test_script::{RunOptions, Script};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/conformance/promql");
const OWN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/promql");
const KNOWN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/promql_known_failures.tsv"
);

fn test_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    files
}

/// `file<TAB>line<TAB>reason` per line; `#` comments.
fn known_failures() -> HashMap<(String, usize), String> {
    let text = std::fs::read_to_string(KNOWN).unwrap_or_else(|e| panic!("reading {KNOWN}: {e}"));
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.splitn(3, '\t').collect();
        assert_eq!(cols.len(), 3, "{KNOWN}:{}: want file, line, reason", i + 1);
        let line_no: usize = cols[1]
            .parse()
            .unwrap_or_else(|_| panic!("{KNOWN}:{}: bad line number", i + 1));
        assert!(
            !cols[2].trim().is_empty(),
            "{KNOWN}:{}: empty reason",
            i + 1
        );
        let prev = out.insert((cols[0].to_string(), line_no), cols[2].to_string());
        assert!(prev.is_none(), "{KNOWN}:{}: duplicate entry", i + 1);
    }
    out
}

fn run(path: &Path) -> Vec<watchpost::promql::test_script::EvalOutcome> {
    let script = Script::parse_file(path).unwrap_or_else(|e| panic!("{e}"));
    script.run(&RunOptions::default())
}

#[test]
fn promql_corpus_conformance() {
    assert!(
        Path::new(CORPUS).is_dir(),
        "the PromQL conformance corpus is missing at {CORPUS}"
    );
    let known = known_failures();
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    let (mut total_pass, mut total_fail) = (0, 0);
    for path in test_files(CORPUS) {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let outcomes = run(&path);
        let passed = outcomes.iter().filter(|o| o.passed).count();
        let failed = outcomes.len() - passed;
        total_pass += passed;
        total_fail += failed;
        println!("{file}: {passed} passed, {failed} failed");
        for o in &outcomes {
            match (o.passed, known.get(&(file.clone(), o.line))) {
                (false, None) => {
                    unexpected.push(format!("{file}:{}: {}\n    {}", o.line, o.expr, o.detail))
                }
                (true, Some(_)) => fixed.push(format!("{file}\t{}", o.line)),
                (false, Some(reason)) => {
                    let category = reason.split(':').next().unwrap_or(reason).to_string();
                    *by_reason.entry(category).or_default() += 1;
                }
                (true, None) => {}
            }
        }
    }
    println!("total: {total_pass} passed, {total_fail} failed");
    for (reason, n) in &by_reason {
        println!("known failures: {n} x {reason}");
    }
    assert!(
        unexpected.is_empty(),
        "{} evals failed that are not in the known-failures list:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    assert!(
        fixed.is_empty(),
        "{} listed known failures now pass; remove them from {KNOWN}:\n{}",
        fixed.len(),
        fixed.join("\n")
    );
}

#[test]
fn promql_own_cases() {
    let files = test_files(OWN);
    assert!(!files.is_empty(), "no test files in {OWN}");
    let mut failures = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let outcomes = run(&path);
        let passed = outcomes.iter().filter(|o| o.passed).count();
        println!(
            "{file}: {passed} passed, {} failed",
            outcomes.len() - passed
        );
        failures.extend(
            outcomes
                .iter()
                .filter(|o| !o.passed)
                .map(|o| format!("{file}:{}: {}\n    {}", o.line, o.expr, o.detail)),
        );
    }
    assert!(failures.is_empty(), "failed:\n{}", failures.join("\n"));
}
