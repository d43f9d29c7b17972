//! The module DAG of DESIGN.md section 3, checked against `src/`: a module
//! may only import the watchpost modules listed for it. `model` imports
//! nothing; `promql` sees storage only through its traits; `rules` never
//! imports `notify`; `api` never imports `channels`; only `main` (and
//! tests) import `app`.

use std::collections::BTreeMap;
use std::path::Path;

fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("model", &[][..]),
        ("config", &["model"][..]),
        ("storage", &["model"][..]),
        ("telemetry", &["model", "storage"][..]),
        ("scrape", &["model", "config", "storage", "telemetry"][..]),
        (
            "ingest",
            &["model", "config", "storage", "telemetry", "scrape"][..],
        ),
        ("promql", &["model", "storage"][..]),
        ("template", &["model"][..]),
        (
            "rules",
            &[
                "model",
                "config",
                "storage",
                "promql",
                "telemetry",
                "template",
            ][..],
        ),
        ("notify", &["model", "config", "telemetry", "template"][..]),
        (
            "channels",
            &["model", "config", "notify", "telemetry", "template"][..],
        ),
        (
            "reports",
            &[
                "model",
                "config",
                "storage",
                "promql",
                "telemetry",
                "notify",
                "channels",
            ][..],
        ),
        (
            "api",
            &[
                "model",
                "config",
                "storage",
                "telemetry",
                "scrape",
                "ingest",
                "promql",
                "rules",
                "notify",
                "template",
            ][..],
        ),
        (
            "app",
            &[
                "model",
                "config",
                "storage",
                "telemetry",
                "scrape",
                "ingest",
                "promql",
                "rules",
                "notify",
                "channels",
                "reports",
                "api",
                "template",
            ][..],
        ),
    ])
}

fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_string())
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn modules_import_only_what_the_design_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rules = allowed();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let Some(module) = module_of(rel) else {
            continue;
        };
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(ok) = rules.get(module.as_str()) else {
            violations.push(format!("{}: module {module:?} is not in the design's DAG; add it to this test and DESIGN.md", rel.display()));
            continue;
        };
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                // `crate::x::...` or a group `crate::{x::..., y}`.
                let deps: Vec<String> = match rest.strip_prefix('{') {
                    Some(group) => group
                        .split(['}', ','])
                        .map(|p| p.trim().split("::").next().unwrap_or("").to_string())
                        .collect(),
                    None => vec![
                        rest.chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect(),
                    ],
                };
                for dep in deps {
                    let is_module = rules.contains_key(dep.as_str());
                    if is_module && dep != module && !ok.contains(&dep.as_str()) {
                        violations.push(format!(
                            "{}:{}: {module} imports {dep}",
                            rel.display(),
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against DESIGN.md's DAG:\n{}",
        violations.join("\n")
    );
}
