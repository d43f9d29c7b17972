//! Unit tests of the exposition parser: public behaviour per format,
//! escapes, quoted names, timestamps, special values, error positions and
//! hostile inputs. The corpus-wide conformance run lives in
//! `tests/it/exposition.rs`.

use std::borrow::Cow;

use super::*;

type Row = (String, Vec<(String, String)>, f64, Option<i64>);

fn row(s: &ParsedSample<'_>) -> Row {
    (
        s.metric_name().into_owned(),
        s.labels()
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect(),
        s.value,
        s.timestamp_ms,
    )
}

fn parse(input: &str, format: Format) -> Result<Vec<Row>, ParseError> {
    let mut p = Parser::new(input.as_bytes(), format);
    let mut out = Vec::new();
    while let Some(s) = p.next_sample()? {
        out.push(row(&s));
    }
    Ok(out)
}

fn text(input: &str) -> Result<Vec<Row>, ParseError> {
    parse(input, Format::PrometheusText)
}

fn om(input: &str) -> Result<Vec<Row>, ParseError> {
    parse(input, Format::OpenMetrics)
}

fn text_err(input: &str) -> ParseError {
    match text(input) {
        Ok(s) => panic!("{input:?} parsed: {s:?}"),
        Err(e) => e,
    }
}

fn om_err(input: &str) -> ParseError {
    match om(input) {
        Ok(s) => panic!("{input:?} parsed: {s:?}"),
        Err(e) => e,
    }
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn first_series(input: &str, format: Format) -> String {
    let mut p = Parser::new(input.as_bytes(), format);
    match p.next_sample() {
        Ok(Some(s)) => String::from_utf8_lossy(s.series).into_owned(),
        other => panic!("{input:?}: {other:?}"),
    }
}

#[test]
fn content_type_picks_the_format() {
    use Format::*;
    let cases = [
        (None, PrometheusText),
        (
            Some("text/plain; version=0.0.4; charset=utf-8"),
            PrometheusText,
        ),
        (
            Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            OpenMetrics,
        ),
        (
            Some("application/openmetrics-text;version=0.0.1"),
            OpenMetrics,
        ),
        (Some(" Application/OpenMetrics-Text "), OpenMetrics),
        (Some("application/json"), PrometheusText),
        (Some(""), PrometheusText),
    ];
    for (ct, want) in cases {
        assert_eq!(Format::from_content_type(ct), want, "{ct:?}");
    }
}

#[test]
fn text_basic_samples_series_and_labels() {
    let input = "# HELP up Whether the target is up.\n# TYPE up gauge\nup 1\nup{job=\"node\",instance=\"a:9100\"} 0 1700000000000\n\n";
    let s = text(input).expect("parses");
    assert_eq!(s.len(), 2);
    assert_eq!(s[0], ("up".into(), vec![], 1.0, None));
    assert_eq!(
        s[1],
        (
            "up".into(),
            pairs(&[("job", "node"), ("instance", "a:9100")]),
            0.0,
            Some(1_700_000_000_000)
        )
    );
    assert_eq!(first_series("up 1\n", Format::PrometheusText), "up");
    assert_eq!(
        first_series("  up{job=\"x\"}  \t1\n", Format::PrometheusText),
        "up{job=\"x\"}"
    );
}

#[test]
fn to_labels_adds_the_name_sorts_and_drops_empty_values() {
    let input = b"http_requests_total{path=\"/\",code=\"200\",empty=\"\"} 3\n";
    let mut p = Parser::new(input, Format::PrometheusText);
    let s = p.next_sample().expect("ok").expect("sample");
    let l = s.to_labels();
    assert_eq!(
        l,
        crate::model::Labels::from_pairs([
            ("__name__", "http_requests_total"),
            ("code", "200"),
            ("path", "/"),
        ])
    );
    assert_eq!(
        l.to_string(),
        "http_requests_total{code=\"200\", path=\"/\"}"
    );
}

#[test]
fn text_whitespace_and_trailing_comma_like_the_go_parser() {
    let s = text("a { b = \"1\" ,\tc=\"2\" , } 7\n").expect("parses");
    assert_eq!(s[0].1, pairs(&[("b", "1"), ("c", "2")]));
    assert_eq!(s[0].2, 7.0);
    // No space needed between '}' and the value in this format.
    assert_eq!(
        text("a{b=\"1\"}-Inf\n").expect("parses")[0].2,
        f64::NEG_INFINITY
    );
    // Blank lines and blanks after the last newline are fine.
    assert_eq!(text("\n\na 1\n\n  \t").expect("parses").len(), 1);
    assert_eq!(text("").expect("empty input").len(), 0);
}

#[test]
fn escapes_decode_and_borrow_when_absent() {
    let input = b"a{x=\"plain\",y=\"q\\\"b\\\\s\\nn\"} 1\n";
    let mut p = Parser::new(input, Format::PrometheusText);
    let s = p.next_sample().expect("ok").expect("sample");
    let labels: Vec<_> = s.labels().collect();
    assert!(matches!(labels[0].1, Cow::Borrowed("plain")));
    assert!(matches!(labels[1].1, Cow::Owned(_)));
    assert_eq!(labels[1].1, "q\"b\\s\nn");
    assert!(matches!(s.metric_name(), Cow::Borrowed("a")));

    // Text rejects any other escape; OpenMetrics keeps it verbatim.
    let e = text_err("a{x=\"\\t\"} 1\n");
    assert_eq!((e.line, e.column), (1, 6));
    let s = om("a{x=\"\\t\\z\"} 1\n# EOF\n").expect("parses");
    assert_eq!(s[0].1, pairs(&[("x", "\\t\\z")]));
}

#[test]
fn help_text_escapes_in_text_format() {
    assert!(text("# HELP a doc\\\\ \\n \\\" ok\na 1\n").is_ok());
    let e = text_err("# HELP a bad \\t escape\n");
    assert!(
        e.message.contains("invalid escape sequence in HELP text"),
        "{e}"
    );
    let e = text_err("# HELP a trailing backslash \\\n");
    assert!(e.message.contains("end of line"), "{e}");
    // HELP and TYPE without text are plain comments, like in the Go parser.
    assert!(text("# HELP\n# HELP a\n# TYPE b\n# HELP a \n# HELP a now\n").is_ok());
}

#[test]
fn quoted_utf8_names_in_text() {
    let input = "# HELP \"my.metric\" dotted\n# TYPE \"my.metric\" counter\n{\"my.metric\", \"other.label\"=\"x\", job=\"j\"} 1\n";
    let s = text(input).expect("parses");
    assert_eq!(s[0].0, "my.metric");
    assert_eq!(s[0].1, pairs(&[("other.label", "x"), ("job", "j")]));
    assert_eq!(
        first_series(input, Format::PrometheusText),
        "{\"my.metric\", \"other.label\"=\"x\", job=\"j\"}"
    );
    // The name may come later inside the braces, or quoted before them.
    let s = text("{a=\"b\", \"my.metric\"} 2\n").expect("parses");
    assert_eq!(
        (s[0].0.as_str(), s[0].1.clone()),
        ("my.metric", pairs(&[("a", "b")]))
    );
    let s = text("\"my.metric\"{\"a.b\"=\"c\"} 3\n").expect("parses");
    assert_eq!(
        (s[0].0.as_str(), s[0].1.clone()),
        ("my.metric", pairs(&[("a.b", "c")]))
    );
    // Escapes inside a quoted name decode.
    let s = text("{\"say \\\"hi\\\"\"} 4\n").expect("parses");
    assert_eq!(s[0].0, "say \"hi\"");
    // One name only, and a quoted name is not empty.
    assert!(text_err("a{\"b\"} 1\n").message.contains("expected '='"));
    assert!(
        text_err("{\"a\", \"b\"} 1\n")
            .message
            .contains("expected '='")
    );
    assert!(text_err("{\"\"} 1\n").message.contains("empty"));
    // A quoted label spelled like a plain one is the same name.
    assert!(
        text_err("a{b=\"1\",\"b\"=\"2\"} 1\n")
            .message
            .contains("duplicate label name \"b\"")
    );
    // A second TYPE through the quoted spelling is still a second TYPE.
    assert!(
        text_err("# TYPE a gauge\n# TYPE \"a\" gauge\n")
            .message
            .contains("second TYPE")
    );
}

#[test]
fn quoted_utf8_names_in_openmetrics() {
    let input = "# TYPE \"my.metric\" counter\n# HELP \"my.metric\" dotted\n{\"my.metric_total\",\"a.b\"=\"c\"} 1 # {\"trace.id\"=\"x\"} 1\n{\"my.metric_created\",\"a.b\"=\"c\"} 1\n# EOF\n";
    let s = om(input).expect("parses");
    assert_eq!(s.len(), 1, "_created is not returned: {s:?}");
    assert_eq!(s[0].0, "my.metric_total");
    assert_eq!(s[0].1, pairs(&[("a.b", "c")]));
    // Bare names are not quoted-name items in OpenMetrics.
    assert!(om_err("{a} 1\n# EOF\n").message.contains("expected '='"));
    assert!(
        om_err("{\"a\",\"b\"} 1\n# EOF\n")
            .message
            .contains("expected '='")
    );
}

#[test]
fn special_values_in_every_spelling() {
    for v in ["NaN", "nan", "NAN"] {
        let s = text(&format!("a {v}\n")).expect(v);
        assert!(s[0].2.is_nan(), "{v}");
        assert_eq!(
            s[0].2.to_bits(),
            f64::NAN.to_bits(),
            "plain NaN, never the stale marker"
        );
    }
    for (v, want) in [
        ("+Inf", f64::INFINITY),
        ("Inf", f64::INFINITY),
        ("inf", f64::INFINITY),
        ("+infinity", f64::INFINITY),
        ("Infinity", f64::INFINITY),
        ("-Inf", f64::NEG_INFINITY),
        ("-inf", f64::NEG_INFINITY),
        ("-Infinity", f64::NEG_INFINITY),
    ] {
        assert_eq!(text(&format!("a {v}\n")).expect(v)[0].2, want, "{v}");
        assert_eq!(om(&format!("a {v}\n# EOF\n")).expect(v)[0].2, want, "{v}");
    }
    for v in ["-NaN", "+nan", "1e400", "0x10", "1_0", "--1"] {
        text_err(&format!("a {v}\n"));
        om_err(&format!("a {v}\n# EOF\n"));
    }
    assert_eq!(text("a 1.5e-3\n").expect("ok")[0].2, 0.0015);
}

#[test]
fn timestamps_per_format() {
    let s = text("a 1 -5\nb 2 +7\nc 3 9223372036854775807\n").expect("parses");
    let ts: Vec<_> = s.iter().map(|r| r.3).collect();
    assert_eq!(ts, vec![Some(-5), Some(7), Some(i64::MAX)]);
    for bad in [
        "a 1 1.5\n",
        "a 1 1e3\n",
        "a 1 9223372036854775808\n",
        "a 1 \n",
        "a 1 2 \n",
    ] {
        text_err(bad);
    }
    // OpenMetrics: float seconds, exact to the millisecond.
    let s = om("a 1 1.005\nb 2 1700000000.123456\nc 3 -0.5\n# EOF\n").expect("parses");
    let ts: Vec<_> = s.iter().map(|r| r.3).collect();
    assert_eq!(ts, vec![Some(1005), Some(1_700_000_000_123), Some(-500)]);
    for bad in [
        "a 1 NaN\n# EOF\n",
        "a 1 +Inf\n# EOF\n",
        "a 1 1,5\n# EOF\n",
        "a 1 1 \n# EOF\n",
    ] {
        om_err(bad);
    }
}

#[test]
fn error_positions_are_one_based_lines_and_character_columns() {
    let e = text_err("ok 1\n\nbad{a=\"1\"} x\n");
    assert_eq!((e.line, e.column), (3, 12));
    assert_eq!(
        e.to_string(),
        "line 3, column 12: expected a float sample value, got \"x\": use a decimal number, NaN, +Inf or -Inf"
    );
    // Columns count characters, not bytes.
    let e = text_err("a{é=\"1\"} 1\n");
    assert_eq!((e.line, e.column), (1, 3));
    let e = text_err("a{b=\"ééé\"} 1 x\n");
    assert_eq!((e.line, e.column), (1, 14));
    let e = text_err("a 1");
    assert_eq!((e.line, e.column), (1, 4));
    assert!(e.message.contains("must end with a newline"));
    let e = om_err("a 1\n");
    assert_eq!((e.line, e.column), (2, 1));
    assert!(e.message.contains("missing \"# EOF\""));
    let e = om_err("a 1\n# EOF\n\n");
    assert_eq!((e.line, e.column), (3, 1));
}

#[test]
fn errors_stick() {
    let mut p = Parser::new(b"a 1\nb x\nc 3\n", Format::PrometheusText);
    assert!(matches!(p.next_sample(), Ok(Some(_))));
    let e1 = p.next_sample().expect_err("b fails");
    let e2 = p.next_sample().expect_err("still failed");
    assert_eq!(e1, e2);
    assert_eq!(e1.line, 2);
}

#[test]
fn text_family_rules() {
    // TYPE is case-insensitive, as in the Go parser.
    assert!(text("# TYPE a COUNTER\na 1\n").is_ok());
    // le/quantile are only checked in histogram/summary families...
    assert!(text("m_bucket{le=\"x\"} 1\nq{quantile=\"y\"} 1\n").is_ok());
    // ...and there on every sample of the family, _sum and _count included.
    let e = text_err("# TYPE s summary\ns_count{quantile=\"x\"} 1\n");
    assert!(e.message.contains("quantile"), "{e}");
    let e = text_err("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum{le=\"1_0\"} 1\n");
    assert!(e.message.contains("\"le\""), "{e}");
    // A family's samples may interleave with others in this format.
    assert!(text("# TYPE s summary\ns{quantile=\"0.5\"} 1\nother 2\ns_sum 3\ns_count 4\n").is_ok());
    // The second TYPE is caught even far apart, and after samples.
    assert!(
        text_err("# TYPE a gauge\nb 1\n# TYPE a gauge\n")
            .message
            .contains("second TYPE")
    );
    assert!(
        text_err("a 1\nb 2\n# TYPE a gauge\n")
            .message
            .contains("after its samples")
    );
    // gauge_histogram is a known TYPE word but carries no text samples.
    assert!(text("# TYPE g gauge_histogram\n").is_ok());
    assert!(
        text_err("# TYPE g gauge_histogram\ng 1\n")
            .message
            .contains("gauge_histogram")
    );
    // Suffixes join only histogram and summary families, as in the Go parser.
    assert!(text("# TYPE g gauge_histogram\ng_bucket{le=\"x\"} 1\n").is_ok());
    // In text, # EOF is only a comment.
    assert_eq!(text("a 1\n# EOF\nb 2\n").expect("parses").len(), 2);
}

#[test]
fn text_rejects_what_the_go_parser_rejects() {
    let cases = [
        ("a{b=\"1\",b=\"2\"} 1\n", "duplicate label name \"b\""),
        ("a{__name__=\"x\"} 1\n", "reserved"),
        ("a{,} 1\n", "expected a label name"),
        ("a{b=\"1\" c=\"2\"} 1\n", "expected ',' or '}'"),
        ("a{b=\"1\n", "not closed"),
        ("a{b=\"1\"\n", "expected ',' or '}'"),
        ("a 1\r\n", "expected a float sample value"),
        ("# TYPE a counter \n", "unknown metric type \"counter \""),
        ("{} 1\n", "no metric name"),
    ];
    for (input, want) in cases {
        let e = text_err(input);
        assert!(e.message.contains(want), "{input:?}: {e}");
    }
    // Invalid UTF-8 in a label value is an error.
    let mut bad = b"a{b=\"".to_vec();
    bad.extend_from_slice(&[0xff, 0xfe]);
    bad.extend_from_slice(b"\"} 1\n");
    let e = Parser::new(&bad, Format::PrometheusText)
        .next_sample()
        .expect_err("not UTF-8");
    assert!(e.message.contains("UTF-8"), "{e}");
}

#[test]
fn openmetrics_samples_and_dropped_parts() {
    let input = "# TYPE c counter\n# HELP c A counter.\nc_total{a=\"1\"} 3 # {trace_id=\"abc\"} 1 1.5\nc_created{a=\"1\"} 1700000000\n# TYPE h histogram\nh_bucket{le=\"1\"} 1 # {t=\"x\"} 0.5\nh_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 0.7\nh_created 1\n# TYPE i info\ni_info{version=\"1\"} 1\n# TYPE s stateset\ns{s=\"on\"} 1\ns{s=\"off\"} 0\n# TYPE g gaugehistogram\ng_bucket{le=\"+Inf\"} 4\ng_gcount 4\ng_gsum 1\n# EOF";
    let s = om(input).expect("parses");
    let names: Vec<&str> = s.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "c_total", "h_bucket", "h_bucket", "h_count", "h_sum", "i_info", "s", "s", "g_bucket",
            "g_gcount", "g_gsum"
        ]
    );
    assert_eq!(s[0].1, pairs(&[("a", "1")]));
    assert_eq!(s[0].2, 3.0);
}

#[test]
fn openmetrics_semantic_rules() {
    let cases = [
        ("# TYPE a counter\na_total -1\n# EOF\n", "negative"),
        (
            "# TYPE a histogram\na_bucket{le=\"1\"} 2\na_bucket{le=\"+Inf\"} 1\n# EOF\n",
            "cumulative",
        ),
        (
            "# TYPE a histogram\na_bucket{le=\"+Inf\"} 1\na_count 2\na_sum 1\n# EOF\n",
            "must be equal",
        ),
        ("# TYPE a histogram\na_bucket{le=\"1\"} 1\n# EOF\n", "+Inf"),
        (
            "# TYPE a histogram\na_bucket{le=\"+inf\"} 1\n# EOF\n",
            "write infinity as +Inf",
        ),
        (
            "# TYPE a histogram\na_bucket{le=\"1\"} 0\na_bucket{le=\"+Inf\"} 1\na_count 1\na_sum -1\n# EOF\n",
            "negative sum needs",
        ),
        (
            "a{x=\"1\"} 1\na{x=\"2\"} 1\na{x=\"1\"} 1\n# EOF\n",
            "not grouped",
        ),
        ("a 1\nb 1\na 1\n# EOF\n", "already used"),
        ("# TYPE a counter\na 1\n# EOF\n", "already used"),
        ("# TYPE a gauge\na 1 # {t=\"1\"} 1\n# EOF\n", "exemplar on"),
        ("# TYPE a gauge\n# TYPE a gauge\n# EOF\n", "second '# TYPE'"),
        ("a 1\n# HELP a x\n# EOF\n", "after its samples"),
        ("# TYPE a untyped\n# EOF\n", "calls it unknown"),
        ("a 1 2\na 1 1\n# EOF\n", "backwards"),
        ("a{__name__=\"b\"} 1\n# EOF\n", "reserved"),
        ("# comment\n# EOF\n", "unknown metadata line"),
        ("#comment\n# EOF\n", "no free comments"),
        ("a 1\n\n# EOF\n", "blank line"),
        (" a 1\n# EOF\n", "expected a metric name"),
        ("a{b=\"1\",} 1\n# EOF\n", "trailing comma"),
    ];
    for (input, want) in cases {
        let e = om_err(input);
        assert!(e.message.contains(want), "{input:?}: {e}");
    }
    // The Prometheus-compatible departures (module docs).
    assert!(om("# TYPE a summary\na{quantile=\"0.5\"} -1\na_sum -3\na_count 2\n# EOF\n").is_ok());
    assert!(om("# TYPE a histogram\na_bucket{le=\"-1\"} 1\na_bucket{le=\"+Inf\"} 2\na_count 2\na_sum -3\n# EOF\n").is_ok());
}

#[test]
fn exemplar_label_limit_counts_characters() {
    let ok = format!(
        "# TYPE a counter\na_total 1 # {{a=\"{}\"}} 1\n# EOF\n",
        "é".repeat(127)
    );
    assert!(om(&ok).is_ok(), "128 characters (254 bytes) are allowed");
    let bad = format!(
        "# TYPE a counter\na_total 1 # {{a=\"{}\"}} 1\n# EOF\n",
        "x".repeat(128)
    );
    assert!(om_err(&bad).message.contains("at most 128"));
}

#[test]
fn hostile_long_values_and_names_are_linear() {
    let big = "v".repeat(1 << 20);
    let input = format!("a{{b=\"{big}\"}} 1\n");
    assert_eq!(text(&input).expect("1 MiB value")[0].1[0].1.len(), 1 << 20);
    let input = format!("a{{b=\"{big}\"}} 1\n# EOF\n");
    assert!(om(&input).is_ok());
    let name = "n".repeat(1 << 20);
    assert_eq!(
        text(&format!("{name} 1\n")).expect("1 MiB name")[0].0.len(),
        1 << 20
    );
    // An unterminated megabyte-long value fails with a short message.
    let e = text_err(&format!("a{{b=\"{big}\n"));
    assert!(e.message.len() < 200, "{}", e.message.len());
    let e = text_err(&format!("a {big}\n"));
    assert!(e.message.len() < 300, "{}", e.message.len());
}

#[test]
fn hostile_label_counts_stay_fast() {
    // 100k labels in reverse order defeat the sorted fast path; the
    // duplicate check must not be quadratic (10^10 comparisons would hang).
    let n = 100_000;
    let mut line = String::from("a{");
    for k in (0..n).rev() {
        line.push_str(&format!("l{k}=\"v\","));
    }
    let ok = format!("{}}} 1\n", line.trim_end_matches(','));
    let s = text(&ok).expect("100k labels");
    assert_eq!(s[0].1.len(), n);
    let dup = format!("{line}l5=\"again\"}} 1\n");
    assert!(
        text_err(&dup)
            .message
            .contains("duplicate label name \"l5\"")
    );
    let om_ok = format!("{}}} 1\n# EOF\n", line.trim_end_matches(','));
    assert!(om(&om_ok).is_ok());
}

#[test]
fn hostile_family_counts_stay_fast() {
    let mut t = String::new();
    let mut o = String::new();
    for k in 0..100_000 {
        t.push_str(&format!("# TYPE m{k} counter\nm{k} {k}\n"));
        o.push_str(&format!("# TYPE m{k} counter\nm{k}_total {k}\n"));
    }
    o.push_str("# EOF\n");
    assert_eq!(text(&t).expect("text").len(), 100_000);
    assert_eq!(om(&o).expect("om").len(), 100_000);
    // Many series in one family: grouping state is a set, not a list.
    let mut g = String::from("# TYPE g gauge\n");
    for k in 0..100_000 {
        g.push_str(&format!("g{{k=\"{k}\"}} 1\n"));
    }
    g.push_str("g{k=\"5\"} 1\n# EOF\n");
    assert!(om_err(&g).message.contains("not grouped"));
}

#[test]
fn openmetrics_eof_rules() {
    assert!(om("a 1\n# EOF").is_ok(), "newline after # EOF is optional");
    assert!(om("# EOF\n").expect("empty exposition").is_empty());
    assert!(om_err("").message.contains("missing"));
    assert!(
        om_err("a 1\n# EOF\na 2\n")
            .message
            .contains("after \"# EOF\"")
    );
    assert!(om_err("a 1\n# EOF \n").message.contains("EOF"));
}

// --- Known-series hints (the scrape cache's guess of the next series) ---

/// Rows plus whether each sample matched its hint. `hints[i]` is offered
/// for the i-th sample.
type Hinted = (Vec<(Row, bool, Checks)>, Option<ParseError>);

fn parse_hinted(input: &str, hints: &[(&[u8], Checks)]) -> Hinted {
    let mut p = Parser::new(input.as_bytes(), Format::PrometheusText);
    let mut out = Vec::new();
    loop {
        let known = hints
            .get(out.len())
            .map(|&(series, checks)| Known { series, checks });
        match p.next_sample_expecting(known) {
            Ok(Some(s)) => out.push((row(&s), s.known, s.checks)),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

/// Series texts and checks of a clean parse, as the scrape cache keeps them.
fn learned(input: &str) -> Vec<(Vec<u8>, Checks)> {
    let mut p = Parser::new(input.as_bytes(), Format::PrometheusText);
    let mut out = Vec::new();
    while let Some(s) = p.next_sample().unwrap() {
        out.push((s.series.to_vec(), s.checks));
    }
    out
}

const HINTED_BODY: &str = "# HELP req Requests.\n# TYPE req counter\nreq{code=\"200\",path=\"/a\\\\b\"} 10 1700000000000\nreq{code=\"500\",path=\"/\\\"q\\\"\"} 2\n# TYPE lat histogram\nlat_bucket{le=\"0.1\"} 3\nlat_bucket{le=\"+Inf\"} 5\nlat_sum 1.5\nlat_count 5\n# TYPE q summary\nq{quantile=\"0.5\"} 7\nq_sum 1\nq_count 2\nup 1\nbare\t2\n";

#[test]
fn right_guesses_give_the_same_samples_and_say_so() {
    let seen = learned(HINTED_BODY);
    let hints: Vec<(&[u8], Checks)> = seen.iter().map(|(s, c)| (&s[..], *c)).collect();
    let (rows, err) = parse_hinted(HINTED_BODY, &hints);
    assert!(err.is_none(), "{err:?}");
    let plain = text(HINTED_BODY).unwrap();
    assert_eq!(rows.len(), plain.len());
    for ((row, known, _), want) in rows.iter().zip(&plain) {
        assert!(*known, "{row:?} not matched");
        assert_eq!(row.0, want.0);
        assert_eq!(row.1, want.1);
        assert_eq!(row.2.to_bits(), want.2.to_bits());
        assert_eq!(row.3, want.3);
    }
    let checks: Vec<Checks> = rows.iter().map(|r| r.2).collect();
    use Checks::*;
    assert_eq!(
        checks,
        [
            Plain, Plain, Bucket, Bucket, Bucket, Bucket, Quantile, Quantile, Quantile, Plain,
            Plain
        ]
    );
}

#[test]
fn wrong_guesses_fall_back_to_a_full_parse() {
    for (input, hint, matches) in [
        // A prefix of the name, a bare name before a label set, a label
        // set without the blank the hint needs, other series, and a quoted
        // name (always parsed in full).
        ("foo_total 1\n", "foo", false),
        ("foo {a=\"1\"} 1\n", "foo", false),
        ("foo{a=\"1\"}2\n", "foo{a=\"1\"}", false),
        ("foo{a=\"1\"} 2\n", "foo{a=\"2\"}", false),
        ("foo{a=\"1\",} 2\n", "foo{a=\"1\"}", false),
        ("{\"my.metric\"} 2\n", "{\"my.metric\"}", false),
        ("foo {a=\"1\"}\t2\n", "foo {a=\"1\"}", true),
    ] {
        let (rows, err) = parse_hinted(input, &[(hint.as_bytes(), Checks::Plain)]);
        assert!(err.is_none(), "{input:?}: {err:?}");
        let plain = text(input).unwrap();
        assert_eq!(rows.len(), 1, "{input:?}");
        let (row, known, _) = &rows[0];
        assert_eq!(row, &plain[0], "{input:?}");
        assert_eq!(*known, matches, "{input:?}");
    }
}

#[test]
fn a_guess_does_not_hide_rules_of_a_changed_type() {
    // The series parsed cleanly while `x` was untyped; now it is a
    // histogram, and the bucket bound is not a number.
    let first = "x_bucket{le=\"abc\"} 1\n";
    let seen = learned(first);
    assert_eq!(seen[0].1, Checks::Plain);
    let hint = [(&seen[0].0[..], seen[0].1)];
    for body in [
        "# TYPE x histogram\nx_bucket{le=\"abc\"} 1\n",
        "# TYPE x_bucket gauge_histogram\nx_bucket{le=\"abc\"} 1\n",
        "# TYPE x_bucket summary\nx_bucket{quantile=\"q\"} 1\n",
    ] {
        let (rows, err) = parse_hinted(body, &hint);
        assert!(rows.is_empty(), "{body:?}");
        assert_eq!(err, Some(text_err(body)), "{body:?}");
    }
    // A value error reads the same on the fast path.
    let body = "x_bucket{le=\"abc\"} one\n";
    let (rows, err) = parse_hinted(body, &hint);
    assert!(rows.is_empty());
    assert_eq!(err, Some(text_err(body)));
    let body = "x_bucket{le=\"abc\"} 1 2 3\n";
    assert_eq!(parse_hinted(body, &hint).1, Some(text_err(body)));
}

#[test]
fn a_guess_keeps_type_after_samples_an_error() {
    let body = "x 1\n# TYPE x counter\n";
    let (_, err) = parse_hinted(body, &[(b"x", Checks::Plain)]);
    assert_eq!(err, Some(text_err(body)));
}
