//! Exposition-parser conformance: every case of the shared corpus
//! (`conformance/exposition/`), classified parse/reject against its expected
//! outcome, plus checks that the inputs that parse yield the right samples.
//!
//! Sets: "prometheus-text" (prometheus/common's fuzz corpus and testdata,
//! Prometheus's `*.prom.txt`) must be 100% right; "openmetrics" (the official
//! OpenMetrics parser suite and Prometheus's `*.om.txt`) at least 95%. Cases
//! that stay wrong are listed in `exposition_known_failures.tsv` with a
//! reason; an unlisted failure fails the test, and so does a listed case
//! that now passes, so the list can only shrink.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use watchpost::scrape::parse::{Checks, Format, Known, ParseError, ParsedSample, Parser};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/conformance/exposition"
);
const KNOWN_FAILURES: &str = include_str!("exposition_known_failures.tsv");

/// One input with its expected outcome.
struct Case {
    /// Name as listed in the known-failures file: path under the corpus.
    name: String,
    set: &'static str,
    path: PathBuf,
    format: Format,
    should_parse: bool,
}

/// A parsed sample, owned, for comparisons.
#[derive(Debug, Clone, PartialEq)]
struct Owned {
    series: String,
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    ts: Option<i64>,
}

impl Owned {
    fn of(s: &ParsedSample<'_>) -> Owned {
        Owned {
            series: String::from_utf8_lossy(s.series).into_owned(),
            name: s.metric_name().into_owned(),
            labels: s
                .labels()
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect(),
            value: s.value,
            ts: s.timestamp_ms,
        }
    }

    /// Equality with values compared by their bits (NaN equals itself).
    fn same(&self, o: &Owned) -> bool {
        (
            &self.series,
            &self.name,
            &self.labels,
            self.value.to_bits(),
            self.ts,
        ) == (&o.series, &o.name, &o.labels, o.value.to_bits(), o.ts)
    }
}

fn parse_all(input: &[u8], format: Format) -> Result<Vec<Owned>, ParseError> {
    let mut p = Parser::new(input, format);
    let mut out = Vec::new();
    while let Some(s) = p.next_sample()? {
        out.push(Owned::of(&s));
    }
    Ok(out)
}

fn corpus() -> PathBuf {
    let root = PathBuf::from(CORPUS);
    assert!(
        root.is_dir(),
        "exposition corpus missing at {}: the conformance data is required",
        root.display()
    );
    root
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// `name<TAB>expected<TAB>...` rows of a CASES.tsv, comments skipped.
fn tsv_rows(path: &Path) -> Vec<(String, bool)> {
    let text = String::from_utf8(read(path)).expect("CASES.tsv is UTF-8");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split('\t');
            let name = f.next().expect("case name").to_string();
            let expected = match f.next() {
                Some("parse") => true,
                Some("reject") => false,
                other => panic!("{}: bad expectation {other:?}", path.display()),
            };
            (name, expected)
        })
        .collect()
}

fn cases() -> Vec<Case> {
    let root = corpus();
    let mut out = Vec::new();

    // prometheus/common: every file of the fuzz corpus plus testdata/text.
    let expfmt = root.join("prometheus-common-expfmt");
    let rows = tsv_rows(&root.join("prometheus-common-expfmt.CASES.tsv"));
    let listed: BTreeSet<String> = rows.iter().map(|(n, _)| n.clone()).collect();
    let on_disk: BTreeSet<String> = fs::read_dir(expfmt.join("fuzz-corpus"))
        .expect("fuzz-corpus directory")
        .map(|e| {
            format!(
                "fuzz-corpus/{}",
                e.expect("dir entry").file_name().to_string_lossy()
            )
        })
        .collect();
    assert!(
        on_disk.is_subset(&listed),
        "fuzz-corpus files not in CASES.tsv: {:?}",
        on_disk.difference(&listed).collect::<Vec<_>>()
    );
    for (name, should_parse) in rows {
        out.push(Case {
            name: format!("prometheus-common-expfmt/{name}"),
            set: "prometheus-text",
            path: expfmt.join(&name),
            format: Format::PrometheusText,
            should_parse,
        });
    }

    // Prometheus's textparse benchmark inputs: all valid.
    let textparse = root.join("prometheus-textparse-testdata");
    let mut files: Vec<String> = fs::read_dir(&textparse)
        .expect("prometheus-textparse-testdata directory")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "textparse testdata: {files:?}");
    for f in files {
        let (set, format) = if f.ends_with(".om.txt") {
            ("openmetrics", Format::OpenMetrics)
        } else {
            assert!(f.ends_with(".prom.txt"), "unexpected file {f}");
            ("prometheus-text", Format::PrometheusText)
        };
        out.push(Case {
            name: format!("prometheus-textparse-testdata/{f}"),
            set,
            path: textparse.join(&f),
            format,
            should_parse: true,
        });
    }

    // The OpenMetrics suite: one directory per case; CASES.tsv and each
    // test.json must agree.
    let om = root.join("openmetrics-parsers");
    let rows = tsv_rows(&root.join("openmetrics-parsers.CASES.tsv"));
    let dirs: BTreeSet<String> = fs::read_dir(&om)
        .expect("openmetrics-parsers directory")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let listed: BTreeSet<String> = rows.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(dirs, listed, "openmetrics-parsers directories vs CASES.tsv");
    for (name, should_parse) in rows {
        let json = String::from_utf8(read(&om.join(&name).join("test.json"))).expect("json");
        let compact: String = json.chars().filter(|c| !c.is_whitespace()).collect();
        assert!(
            compact.contains(&format!("\"shouldParse\":{should_parse}")),
            "{name}: test.json disagrees with CASES.tsv"
        );
        out.push(Case {
            name: format!("openmetrics-parsers/{name}"),
            set: "openmetrics",
            path: om.join(&name).join("metrics"),
            format: Format::OpenMetrics,
            should_parse,
        });
    }
    assert_eq!(out.len(), 242, "corpus size changed");
    out
}

fn known_failures() -> BTreeMap<String, String> {
    KNOWN_FAILURES
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, reason) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("known failure needs a reason: {l:?}"));
            assert!(!reason.trim().is_empty(), "empty reason for {name}");
            (name.to_string(), reason.to_string())
        })
        .collect()
}

#[test]
fn exposition_conformance() {
    let known = known_failures();
    let mut passed: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    let all = cases();
    for case in &all {
        let input = read(&case.path);
        let outcome = parse_all(&input, case.format);
        let right = outcome.is_ok() == case.should_parse;
        if right {
            *passed.entry(case.set).or_default() += 1;
            if known.contains_key(&case.name) {
                problems.push(format!(
                    "{} now passes: remove it from exposition_known_failures.tsv",
                    case.name
                ));
            }
        } else {
            let detail = match &outcome {
                Ok(s) => format!("parsed ({} samples) but should be rejected", s.len()),
                Err(e) => format!("rejected but should parse: {e}"),
            };
            failed.entry(case.set).or_default().push(case.name.clone());
            if !known.contains_key(&case.name) {
                problems.push(format!("{}: {detail}", case.name));
            }
        }
    }
    for name in known.keys() {
        assert!(
            all.iter().any(|c| &c.name == name),
            "known failure {name} is not a corpus case"
        );
    }
    for set in ["prometheus-text", "openmetrics"] {
        let p = passed.get(set).copied().unwrap_or(0);
        let f = failed.get(set).map_or(0, Vec::len);
        println!("{set}: {p} passed, {f} failed");
        for name in failed.get(set).into_iter().flatten() {
            let reason = known.get(name).map_or("NOT LISTED", String::as_str);
            println!("  failed {name}: {reason}");
        }
    }
    assert!(
        problems.is_empty(),
        "conformance problems:\n{}",
        problems.join("\n")
    );
    assert!(
        !failed.contains_key("prometheus-text"),
        "every Prometheus-text case must be right"
    );
    let om_pass = passed.get("openmetrics").copied().unwrap_or(0);
    let om_fail = failed.get("openmetrics").map_or(0, Vec::len);
    assert!(
        om_pass * 100 >= (om_pass + om_fail) * 95,
        "OpenMetrics: {om_pass} of {} right, below 95%",
        om_pass + om_fail
    );
}

fn corpus_file(rel: &str) -> Vec<u8> {
    read(&corpus().join(rel))
}

fn must_parse(rel: &str, format: Format) -> Vec<Owned> {
    parse_all(&corpus_file(rel), format).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn text_escapes_whitespace_and_specials_decode() {
    let s = must_parse(
        "prometheus-common-expfmt/fuzz-corpus/from_test_parse_2",
        Format::PrometheusText,
    );
    assert_eq!(s.len(), 4);
    assert_eq!(s[0].name, "name");
    assert!(s[0].value.is_nan());
    assert_eq!(
        s[0].labels,
        labels(&[("labelname", "val1"), ("basename", "basevalue")])
    );
    assert_eq!(
        s[1].labels,
        labels(&[("labelname", "val2"), ("basename", "base\"v\\al\nue")])
    );
    assert_eq!(s[1].value, 0.23);
    assert_eq!(s[1].ts, Some(1_234_567_890));
    // Whitespace between name and braces belongs to the series bytes.
    assert!(s[1].series.starts_with("name {"));
    assert_eq!(s[2].name, "name2");
    assert_eq!(s[2].value, f64::INFINITY);
    assert_eq!(s[2].ts, Some(54321));
    assert_eq!(
        s[2].labels,
        labels(&[("labelname", "val2"), ("basename", "basevalue2")])
    );
    assert_eq!(s[3].value, f64::NEG_INFINITY);
    assert_eq!(s[3].labels, labels(&[("labelname", "val1")]));
}

#[test]
fn text_histogram_and_summary_samples() {
    let s = must_parse(
        "prometheus-common-expfmt/fuzz-corpus/from_test_parse_4",
        Format::PrometheusText,
    );
    let got: Vec<(&str, f64)> = s.iter().map(|o| (o.series.as_str(), o.value)).collect();
    assert_eq!(
        got,
        vec![
            ("request_duration_microseconds_bucket{le=\"100\"}", 123.0),
            ("request_duration_microseconds_bucket{le=\"120\"}", 412.0),
            ("request_duration_microseconds_bucket{le=\"144\"}", 592.0),
            ("request_duration_microseconds_bucket{le=\"172.8\"}", 1524.0),
            ("request_duration_microseconds_bucket{le=\"+Inf\"}", 2693.0),
            ("request_duration_microseconds_sum", 1.7560473e6),
            ("request_duration_microseconds_count", 2693.0),
        ]
    );
    let s = must_parse(
        "prometheus-common-expfmt/fuzz-corpus/from_test_parse_3",
        Format::PrometheusText,
    );
    assert_eq!(s.len(), 12);
    let decoy = s.iter().find(|o| o.name == "decoy").expect("decoy");
    assert_eq!((decoy.value, decoy.ts), (-1.0, Some(-2)));
    let quoted = s
        .iter()
        .find(|o| o.labels.contains(&("quantile".into(), "-12.34".into())))
        .expect("odd quantile");
    assert!(quoted.value.is_nan());
}

#[test]
fn real_scrapes_yield_every_sample() {
    let s = must_parse(
        "prometheus-common-expfmt/testdata/text",
        Format::PrometheusText,
    );
    assert_eq!(s.len(), 248);
    assert_eq!(
        s[0].series,
        "http_request_duration_microseconds{handler=\"/\",quantile=\"0.5\"}"
    );

    // The same 1857 samples with and without HELP/TYPE lines.
    let meta = must_parse(
        "prometheus-textparse-testdata/alltypes.237mfs.prom.txt",
        Format::PrometheusText,
    );
    let nometa = must_parse(
        "prometheus-textparse-testdata/alltypes.237mfs.nometa.prom.txt",
        Format::PrometheusText,
    );
    assert_eq!(meta.len(), 1857);
    assert_eq!(meta.len(), nometa.len());
    for (a, b) in meta.iter().zip(&nometa) {
        assert_eq!(a.series, b.series);
        assert!(a.value == b.value || (a.value.is_nan() && b.value.is_nan()));
    }
    assert_eq!(
        (meta[0].series.as_str(), meta[0].value),
        ("go_gc_cycles_automatic_gc_cycles_total", 190932.0)
    );
    let inf = meta
        .iter()
        .find(|o| o.series == "go_gc_heap_allocs_by_size_bytes_bucket{le=\"+Inf\"}")
        .expect("+Inf bucket");
    assert_eq!(inf.value, 4.4046288803e10);
    assert_eq!(
        meta.iter().filter(|o| o.name.ends_with("_bucket")).count(),
        999
    );
}

#[test]
fn openmetrics_created_and_exemplars_are_dropped() {
    let s = must_parse(
        "prometheus-textparse-testdata/alltypes.5mfs.om.txt",
        Format::OpenMetrics,
    );
    assert_eq!(s.len(), 44);
    assert!(s.iter().all(|o| !o.name.ends_with("_created")));
    let b = s
        .iter()
        .find(|o| {
            o.series == "rpc_durations_histogram_seconds_bucket{le=\"-0.0002899999999999998\"}"
        })
        .expect("bucket with exemplar");
    assert_eq!((b.value, b.ts), (3.0, None));
    let q = s
        .iter()
        .find(|o| {
            o.name == "rpc_durations_seconds"
                && o.labels == labels(&[("service", "normal"), ("quantile", "0.5")])
        })
        .expect("negative quantile value");
    assert_eq!(q.value, -5.066758674917046e-06);

    let s = must_parse(
        "prometheus-textparse-testdata/1histogram.om.txt",
        Format::OpenMetrics,
    );
    assert_eq!(s.len(), 42);
    let last = s.last().expect("samples");
    assert_eq!(last.name, "golang_manual_histogram_seconds_count");
    assert_eq!(last.value, 1.0);

    let s = must_parse(
        "openmetrics-parsers/counter_unit/metrics",
        Format::OpenMetrics,
    );
    assert_eq!(s.len(), 1, "_created is validated, not returned: {s:?}");
    assert_eq!((s[0].name.as_str(), s[0].value), ("cc_seconds_total", 1.0));
}

#[test]
fn openmetrics_suite_samples() {
    let s = must_parse(
        "openmetrics-parsers/simple_histogram/metrics",
        Format::OpenMetrics,
    );
    let got: Vec<(&str, f64)> = s.iter().map(|o| (o.series.as_str(), o.value)).collect();
    assert_eq!(
        got,
        vec![
            ("a_bucket{le=\"1.0\"}", 0.0),
            ("a_bucket{le=\"+Inf\"}", 3.0),
            ("a_count", 3.0),
            ("a_sum", 2.0),
        ]
    );

    let s = must_parse("openmetrics-parsers/escaping/metrics", Format::OpenMetrics);
    let foo: Vec<&str> = s.iter().map(|o| o.labels[0].1.as_str()).collect();
    assert_eq!(foo, vec!["b\"a\nr", "b\\a\\z", "b\"a\nr # ", "b\\a\\z # "]);

    let s = must_parse(
        "openmetrics-parsers/timestamps/metrics",
        Format::OpenMetrics,
    );
    let ts: Vec<Option<i64>> = s.iter().map(|o| o.ts).collect();
    assert_eq!(
        ts,
        vec![
            Some(0),
            Some(0),
            Some(1100),
            Some(i64::MAX),
            Some(1_500_000),
            Some(1_234_567_890_000)
        ]
    );

    let s = must_parse(
        "openmetrics-parsers/simple_stateset/metrics",
        Format::OpenMetrics,
    );
    assert_eq!(s.len(), 2);
    assert_eq!(s[1].labels, labels(&[("a", "foo")]));
    assert_eq!(s[1].value, 1.0);

    let s = must_parse("openmetrics-parsers/roundtrip/metrics", Format::OpenMetrics);
    // 40 sample lines, one of them foo_created.
    assert_eq!(s.len(), 39);
    let big = s
        .iter()
        .find(|o| o.series == "foo_bucket{le=\"1e+23\"}")
        .expect("bucket");
    assert_eq!(big.value, 17.0);
}

/// The strict Prometheus-text rejects fail for the reason the corpus names,
/// not by accident (CASES.tsv says what each file exercises).
#[test]
fn text_rejects_name_the_right_problem() {
    let expected = [
        (0, "line 1, column 9: input must end with a newline"),
        (1, "invalid escape sequence in the value of label \"label\""),
        (
            2,
            "line 2, column 14: value of label \"label\" is not closed",
        ),
        (3, "expected a label name, found '@'"),
        (4, "label name \"__name__\" is reserved"),
        (5, "expected '=' after label name \"label\", found '+'"),
        (6, "expected '\"' to open the value of label \"label\""),
        (
            7,
            "label \"quantile\" of \"metric\" is not a float: got \"bla\"",
        ),
        (8, "expected ',' or '}' after the value of label \"label\""),
        (
            9,
            "expected an integer timestamp in milliseconds, got \"2.72\"",
        ),
        (10, "after the timestamp"),
        (11, "expected a float sample value, got \"blubb\""),
        (
            12,
            "line 3, column 8: second HELP line for metric \"metric\"",
        ),
        (
            13,
            "line 3, column 8: second TYPE line for metric \"metric\"",
        ),
        (14, "a TYPE line after its samples"),
        (15, "unknown metric type \"bla\""),
        (16, "invalid metric name in TYPE line: \"met-ric\""),
        (17, "line 1, column 1: expected a metric name, found '@'"),
        (18, "label set has no metric name"),
        (19, "label \"le\" of \"metric_bucket\" is not a float"),
    ];
    for (n, want) in expected {
        let rel = format!("prometheus-common-expfmt/fuzz-corpus/from_test_parse_error_{n}");
        let err = parse_all(&corpus_file(&rel), Format::PrometheusText)
            .expect_err(&rel)
            .to_string();
        assert!(err.contains(want), "{rel}: got {err:?}, want {want:?}");
    }
}

/// Parses `input` offering, for each sample, the series text and checks of
/// the sample at the same position in `hints` (what the scrape cache does
/// on the next scrape of a target). Returns the samples, how many matched
/// their hint, and the error if any.
fn parse_hinted(
    input: &[u8],
    format: Format,
    hints: &[(Vec<u8>, Checks)],
) -> (Vec<Owned>, usize, Option<ParseError>) {
    let mut p = Parser::new(input, format);
    let (mut out, mut matched) = (Vec::new(), 0);
    loop {
        let known = hints.get(out.len()).map(|(s, c)| Known {
            series: s,
            checks: *c,
        });
        match p.next_sample_expecting(known) {
            Ok(Some(s)) => {
                matched += usize::from(s.known);
                out.push(Owned::of(&s));
            }
            Ok(None) => return (out, matched, None),
            Err(e) => return (out, matched, Some(e)),
        }
    }
}

/// The scrape loop offers the parser each series it saw last time; a right
/// guess skips lexing the labels. Over every corpus input, valid or not,
/// a second parse with the first one's series as guesses must give exactly
/// the first one's samples and error: the guesses may only make it cheaper.
#[test]
fn guessed_series_change_no_outcome_over_the_corpus() {
    let (mut inputs, mut matched_total) = (0usize, 0usize);
    for case in cases() {
        let input = read(&case.path);
        let mut p = Parser::new(&input, case.format);
        let mut hints = Vec::new();
        let first_err = loop {
            match p.next_sample() {
                Ok(Some(s)) => hints.push((s.series.to_vec(), s.checks)),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        let plain = parse_all(&input, case.format);
        let (got, matched, err) = parse_hinted(&input, case.format, &hints);
        assert_eq!(err, first_err, "{}: error differs with guesses", case.name);
        if let Ok(want) = &plain {
            assert!(
                got.len() == want.len() && got.iter().zip(want).all(|(g, w)| g.same(w)),
                "{}: samples differ with guesses:\n{got:?}\n{want:?}",
                case.name
            );
        }
        if case.format == Format::PrometheusText {
            matched_total += matched;
        }
        inputs += 1;
    }
    println!(
        "guessed-series parse: {inputs} inputs, {matched_total} text samples matched their guess"
    );
    assert!(inputs > 100, "only {inputs} corpus inputs");
    assert!(matched_total > 100, "the fast path was never taken");
}
