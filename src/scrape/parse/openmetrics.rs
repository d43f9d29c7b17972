//! OpenMetrics 1.0 text, with the semantic rules of the specification and
//! its official parser test suite, plus Prometheus 3's quoted UTF-8 names.
//!
//! Syntax is strict: single spaces, no blank lines, no comments other than
//! `# HELP`, `# TYPE`, `# UNIT` and the final `# EOF`. Beyond syntax, this
//! module keeps the state of the current metric family (its metadata, the
//! label-set fingerprints of its series, the running histogram checks) and
//! the set of every family name seen so far, so it can reject repeated
//! metadata, metadata after samples, families split apart or clashing
//! through reserved suffixes, ungrouped series, timestamps going backwards,
//! invalid counter/histogram/summary/stateset/info values and exemplars
//! where none are allowed. That state is per family and per series group,
//! never per sample, and the only allocations are per family.
//!
//! Deliberate departures from the suite, for Prometheus compatibility
//! (client_golang exposes these and Prometheus ingests them; the Prometheus
//! corpus file `alltypes.5mfs.om.txt` has all three): a summary's quantile
//! values and `_sum` may be negative, and a histogram with negative buckets
//! may have a `_sum`, which may then be negative. A negative histogram
//! `_sum` without negative buckets is still rejected.

use std::collections::HashSet;

use super::lex::{self, Escapes, LabelSpan, NameTok, QuoteError, describe_byte, excerpt};
use super::number::{OmTimestamp, parse_float, parse_om_timestamp};
use super::text::{quote_error, quote_name, reserved_name};
use super::{Checks, LineError, SampleLine};
use crate::model::format_float;

/// The metric types of OpenMetrics 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OmType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    StateSet,
    Info,
    Summary,
    Unknown,
}

impl OmType {
    fn parse(word: &[u8]) -> Option<OmType> {
        Some(match word {
            b"counter" => OmType::Counter,
            b"gauge" => OmType::Gauge,
            b"histogram" => OmType::Histogram,
            b"gaugehistogram" => OmType::GaugeHistogram,
            b"stateset" => OmType::StateSet,
            b"info" => OmType::Info,
            b"summary" => OmType::Summary,
            b"unknown" => OmType::Unknown,
            _ => return None,
        })
    }

    /// The sample names a family of this type owns, as suffixes of the
    /// family name. They are also the names the family reserves: no other
    /// family may use them.
    fn suffixes(self) -> &'static [Suffix] {
        use Suffix::*;
        match self {
            OmType::Counter => &[Total, Created],
            OmType::Summary => &[Bare, Count, Sum, Created],
            OmType::Histogram => &[Count, Sum, Bucket, Created],
            OmType::GaugeHistogram => &[GCount, GSum, Bucket],
            OmType::Info => &[Info],
            OmType::Gauge | OmType::StateSet | OmType::Unknown => &[Bare],
        }
    }

    fn is_histogram(self) -> bool {
        matches!(self, OmType::Histogram | OmType::GaugeHistogram)
    }
}

/// What a sample name adds to its family name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suffix {
    Bare,
    Total,
    Created,
    Count,
    Sum,
    Bucket,
    GCount,
    GSum,
    Info,
}

impl Suffix {
    fn text(self) -> &'static [u8] {
        match self {
            Suffix::Bare => b"",
            Suffix::Total => b"_total",
            Suffix::Created => b"_created",
            Suffix::Count => b"_count",
            Suffix::Sum => b"_sum",
            Suffix::Bucket => b"_bucket",
            Suffix::GCount => b"_gcount",
            Suffix::GSum => b"_gsum",
            Suffix::Info => b"_info",
        }
    }

    /// Counts, sums and buckets: never NaN, and (mostly) never negative.
    fn counter_like(self) -> bool {
        matches!(
            self,
            Suffix::Total
                | Suffix::Sum
                | Suffix::Count
                | Suffix::Bucket
                | Suffix::GCount
                | Suffix::GSum
        )
    }
}

/// Running checks over one histogram series (one label set at one
/// timestamp): buckets ascending and cumulative, ending in `+Inf`, count
/// equal to the `+Inf` bucket, sum and count together.
#[derive(Debug, Default)]
struct HistRun {
    active: bool,
    group: u64,
    ts: Option<OmTimestamp>,
    /// Line where this series began, for the error message.
    first_line: usize,
    last_bound: Option<f64>,
    last_count: f64,
    count: Option<f64>,
    has_sum: bool,
    has_gsum: bool,
    negative_buckets: bool,
    negative_sum: bool,
    negative_gsum: bool,
}

/// The family whose lines are being read.
#[derive(Debug, Default)]
struct Family {
    active: bool,
    /// Decoded name; the buffer is reused from family to family.
    name: Vec<u8>,
    typ: Option<OmType>,
    help: bool,
    unit: bool,
    unit_nonempty: bool,
    has_samples: bool,
    /// Fingerprint of the current series group and the timestamp of its
    /// last sample.
    group: Option<(u64, Option<OmTimestamp>)>,
    /// Every group seen in this family, to catch a series that comes back
    /// after another one.
    seen_groups: HashSet<u64>,
    hist: HistRun,
}

/// Per-input state of the OpenMetrics format.
#[derive(Default)]
pub(super) struct OmState {
    fam: Family,
    /// Every family name and every name a family reserved.
    seen_names: HashSet<Vec<u8>>,
    /// `# EOF` was read; nothing may follow.
    pub(super) eof: bool,
    exemplar_spans: Vec<LabelSpan>,
    /// Scratch for the duplicate-label check of large label sets.
    order: Vec<usize>,
}

/// The parts of a sample line the semantic checks need.
struct Parsed {
    value: f64,
    ts: Option<OmTimestamp>,
    exemplar: bool,
}

impl OmState {
    /// Parses one line (no newline inside). `line_no` is only used in
    /// messages that point back to an earlier line.
    pub(super) fn line(
        &mut self,
        l: &[u8],
        line_no: usize,
        spans: &mut Vec<LabelSpan>,
        out: &mut SampleLine,
    ) -> Result<bool, LineError> {
        match l.first() {
            None => Err(LineError::new(
                0,
                "blank line: OpenMetrics does not allow empty lines".to_string(),
            )),
            Some(b'#') => {
                self.metadata(l)?;
                Ok(false)
            }
            Some(_) => {
                self.sample(l, line_no, spans, out)?;
                Ok(true)
            }
        }
    }

    /// Ends the current family (a new one starts, or `# EOF`): its last
    /// histogram series gets its end-of-series checks.
    fn close_family(&mut self, at: usize) -> Result<(), LineError> {
        self.finish_hist_run(at)?;
        self.fam.active = false;
        Ok(())
    }

    fn open_family(
        &mut self,
        name: &[u8],
        typ: Option<OmType>,
        at: usize,
    ) -> Result<(), LineError> {
        if !self.seen_names.insert(name.to_vec()) {
            return Err(clash(name, at));
        }
        let f = &mut self.fam;
        f.active = true;
        f.name.clear();
        f.name.extend_from_slice(name);
        f.typ = typ;
        f.help = false;
        f.unit = false;
        f.unit_nonempty = false;
        f.has_samples = false;
        f.group = None;
        f.seen_groups.clear();
        f.hist = HistRun::default();
        Ok(())
    }

    fn metadata(&mut self, l: &[u8]) -> Result<(), LineError> {
        if l == b"# EOF" {
            self.close_family(0)?;
            self.eof = true;
            return Ok(());
        }
        if l.get(1) != Some(&b' ') {
            return Err(LineError::new(
                1,
                format!(
                    "expected a space after '#', found {}: OpenMetrics has no free comments, only '# HELP', '# TYPE', '# UNIT' and '# EOF'",
                    describe_byte(l.get(1))
                ),
            ));
        }
        let kw_end = memchr::memchr(b' ', &l[2..]).map_or(l.len(), |k| k + 2);
        let keyword = &l[2..kw_end];
        if !matches!(keyword, b"HELP" | b"TYPE" | b"UNIT") {
            return Err(LineError::new(
                2,
                format!(
                    "unknown metadata line \"# {}\": expected HELP, TYPE, UNIT or EOF (and nothing after EOF)",
                    excerpt(keyword)
                ),
            ));
        }
        let kw = String::from_utf8_lossy(keyword);
        let n = kw_end + 1;
        if n > l.len() {
            return Err(LineError::new(
                kw_end,
                format!("expected a metric name after '# {kw}', found end of line"),
            ));
        }
        let tok = metric_name_tok(l, n, &kw)?;
        let after = tok.after();
        if l.get(after) != Some(&b' ') {
            let what = match keyword {
                b"HELP" => "the help text (which may be empty)",
                b"TYPE" => "the metric type",
                _ => "the unit (which may be empty)",
            };
            return Err(LineError::new(
                after,
                format!(
                    "expected a single space and {what} after the metric name in '# {kw}', found {}",
                    describe_byte(l.get(after))
                ),
            ));
        }
        let rest = &l[after + 1..];
        let name = tok.decoded(l);
        let same = self.fam.active && self.fam.name == name.as_ref();
        if same && self.fam.has_samples {
            return Err(LineError::new(
                n,
                format!(
                    "'# {kw}' for {} comes after its samples: metadata must precede the family's samples",
                    quote_name(&name)
                ),
            ));
        }
        if !same {
            self.close_family(0)?;
            self.open_family(&name, None, n)?;
        }
        let fam = &mut self.fam;
        match keyword {
            b"HELP" => {
                if fam.help {
                    return Err(repeated("HELP", &name, n));
                }
                if let Err(e) = std::str::from_utf8(rest) {
                    return Err(LineError::new(
                        after + 1 + e.valid_up_to(),
                        format!("help text of {} is not valid UTF-8", quote_name(&name)),
                    ));
                }
                fam.help = true;
            }
            b"TYPE" => {
                if fam.typ.is_some() {
                    return Err(repeated("TYPE", &name, n));
                }
                let Some(t) = OmType::parse(rest) else {
                    let hint = if rest == b"untyped" {
                        ": OpenMetrics calls it unknown"
                    } else {
                        ""
                    };
                    return Err(LineError::new(
                        after + 1,
                        format!(
                            "unknown metric type \"{}\"{hint}: use counter, gauge, histogram, gaugehistogram, stateset, info, summary or unknown",
                            excerpt(rest)
                        ),
                    ));
                };
                fam.typ = Some(t);
                if fam.unit_nonempty && matches!(t, OmType::Info | OmType::StateSet) {
                    return Err(unit_not_allowed(&name, after + 1));
                }
                for s in t.suffixes().iter().filter(|&&s| s != Suffix::Bare) {
                    let s = s.text();
                    let mut reserved = name.to_vec();
                    reserved.extend_from_slice(s);
                    if !self.seen_names.insert(reserved) {
                        let mut full = name.to_vec();
                        full.extend_from_slice(s);
                        return Err(clash(&full, n));
                    }
                }
            }
            _ => {
                if fam.unit {
                    return Err(repeated("UNIT", &name, n));
                }
                if !rest.is_empty() {
                    let suffix_ok = name.len() > rest.len() + 1
                        && name.ends_with(rest)
                        && name[name.len() - rest.len() - 1] == b'_';
                    if !suffix_ok {
                        return Err(LineError::new(
                            after + 1,
                            format!(
                                "unit \"{}\" does not match metric name {}: the name must end with \"_{}\"",
                                excerpt(rest),
                                quote_name(&name),
                                excerpt(rest)
                            ),
                        ));
                    }
                    if matches!(fam.typ, Some(OmType::Info | OmType::StateSet)) {
                        return Err(unit_not_allowed(&name, after + 1));
                    }
                }
                fam.unit = true;
                fam.unit_nonempty = !rest.is_empty();
            }
        }
        Ok(())
    }

    fn sample(
        &mut self,
        l: &[u8],
        line_no: usize,
        spans: &mut Vec<LabelSpan>,
        out: &mut SampleLine,
    ) -> Result<(), LineError> {
        spans.clear();
        let mut name = None;
        let mut i = 0;
        if l[0] != b'{' {
            let e = lex::scan_metric_name(l, 0);
            if e == 0 {
                return Err(LineError::new(
                    0,
                    format!(
                        "expected a metric name, found {}: a name starts with a letter, '_' or ':', or is quoted inside braces",
                        describe_byte(l.first())
                    ),
                ));
            }
            name = Some(NameTok {
                start: 0,
                end: e,
                quoted: false,
                escaped: false,
            });
            i = e;
        }
        let name_outside = name.is_some();
        let braces = (l.get(i) == Some(&b'{')).then_some(i);
        if braces.is_some() {
            i = labels(l, i + 1, Some(&mut name), spans)?;
        }
        let Some(name) = name else {
            return Err(LineError::new(
                0,
                "label set has no metric name: put the name before '{' or quote it inside the braces"
                    .to_string(),
            ));
        };
        let series = if name_outside { 0 } else { braces.unwrap_or(0) }..i;
        let parsed = self.rest_of_sample(l, i)?;
        let skip = self.check(l, line_no, &name, spans, &parsed)?;
        *out = SampleLine {
            series,
            name,
            braces,
            value: parsed.value,
            timestamp_ms: parsed.ts.map(OmTimestamp::millis),
            skip,
            checks: Checks::Plain,
            known: false,
        };
        Ok(())
    }

    /// Value, optional timestamp and optional exemplar, starting at the
    /// space after the series.
    fn rest_of_sample(&mut self, l: &[u8], mut i: usize) -> Result<Parsed, LineError> {
        if l.get(i) != Some(&b' ') {
            return Err(LineError::new(
                i,
                format!(
                    "expected a single space and the sample value after the series, found {}",
                    describe_byte(l.get(i))
                ),
            ));
        }
        i += 1;
        let (value, e) = number(l, i, "sample value")?;
        i = e;
        let mut ts = None;
        let mut exemplar = false;
        if i < l.len() {
            i += 1;
            if l.get(i) != Some(&b'#') {
                let (t, e) = timestamp(l, i, "timestamp")?;
                ts = Some(t);
                i = e;
                if i < l.len() {
                    i += 1;
                    if l.get(i) != Some(&b'#') {
                        return Err(LineError::new(
                            i,
                            format!(
                                "expected ' # {{' to start an exemplar, or the end of the line, after the timestamp; found {}",
                                describe_byte(l.get(i))
                            ),
                        ));
                    }
                }
            }
            if i < l.len() {
                self.exemplar(l, i)?;
                exemplar = true;
            }
        }
        Ok(Parsed {
            value,
            ts,
            exemplar,
        })
    }

    /// An exemplar `# {labels} value [timestamp]` whose `#` is at `i`:
    /// validated, then dropped.
    fn exemplar(&mut self, l: &[u8], i: usize) -> Result<(), LineError> {
        if l.get(i + 1) != Some(&b' ') || l.get(i + 2) != Some(&b'{') {
            return Err(LineError::new(
                i,
                "malformed exemplar: expected ' # {' followed by the exemplar's labels".to_string(),
            ));
        }
        let mut spans = std::mem::take(&mut self.exemplar_spans);
        spans.clear();
        let res = (|| {
            let mut j = labels(l, i + 3, None, &mut spans)?;
            if let Some(k) = lex::find_duplicate(l, &spans, &mut self.order) {
                return Err(LineError::new(
                    spans[k].name.begin(),
                    format!(
                        "duplicate label name {} in exemplar",
                        quote_name(&spans[k].name.decoded(l))
                    ),
                ));
            }
            let chars: usize = spans
                .iter()
                .map(|s| char_count(&s.name.decoded(l)) + char_count(&s.value_decoded(l)))
                .sum();
            if chars > 128 {
                return Err(LineError::new(
                    i + 2,
                    format!(
                        "exemplar labels have {chars} characters: names and values together may have at most 128"
                    ),
                ));
            }
            if l.get(j) != Some(&b' ') {
                return Err(LineError::new(
                    j,
                    format!(
                        "expected a single space and the exemplar value after its labels, found {}",
                        describe_byte(l.get(j))
                    ),
                ));
            }
            let (_, e) = number(l, j + 1, "exemplar value")?;
            j = e;
            if j < l.len() {
                let (_, e) = timestamp(l, j + 1, "exemplar timestamp")?;
                if e < l.len() {
                    return Err(LineError::new(
                        e,
                        "unexpected text after the exemplar timestamp: the line must end there"
                            .to_string(),
                    ));
                }
            }
            Ok(())
        })();
        self.exemplar_spans = spans;
        res
    }

    /// The semantic rules of a sample within its family. Returns whether
    /// the sample is a `_created` series, validated but not handed out.
    fn check(
        &mut self,
        l: &[u8],
        line_no: usize,
        name_tok: &NameTok,
        spans: &[LabelSpan],
        p: &Parsed,
    ) -> Result<bool, LineError> {
        let at = name_tok.begin();
        if let Some(k) = lex::find_duplicate(l, spans, &mut self.order) {
            return Err(LineError::new(
                spans[k].name.begin(),
                format!(
                    "duplicate label name {}",
                    quote_name(&spans[k].name.decoded(l))
                ),
            ));
        }
        let name = name_tok.decoded(l);
        let suffix = if self.fam.active {
            member_suffix(&self.fam, &name)
        } else {
            None
        };
        let suffix = match suffix {
            Some(s) => s,
            None => {
                self.close_family(at)?;
                self.open_family(&name, Some(OmType::Unknown), at)?;
                Suffix::Bare
            }
        };
        let fam = &mut self.fam;
        fam.has_samples = true;
        let typ = fam.typ.unwrap_or(OmType::Unknown);
        let fam_name = fam.name.as_slice();
        let shown = || quote_name(&name);

        // Labels a type requires, and the one label that tells apart the
        // samples of one series (excluded from the group fingerprint).
        let mut special: Option<&[u8]> = None;
        let mut le = None;
        if typ == OmType::StateSet {
            if !spans.iter().any(|s| s.is(l, fam_name)) {
                return Err(LineError::new(
                    at,
                    format!(
                        "stateset sample {} has no label {}: each state is a label named after the family",
                        shown(),
                        quote_name(fam_name)
                    ),
                ));
            }
            special = Some(fam_name);
        }
        if typ.is_histogram() && suffix == Suffix::Bucket {
            le = Some(bucket_bound(l, at, spans, &name)?);
            special = Some(b"le");
        }
        if typ == OmType::Summary && suffix == Suffix::Bare {
            quantile(l, at, spans, &name)?;
            special = Some(b"quantile");
        }
        let group = if typ == OmType::Info {
            // Info series cannot be told apart, so they form one group.
            0
        } else {
            group_fingerprint(l, spans, special)
        };
        match fam.group {
            Some((g, prev_ts)) if g == group => {
                if prev_ts.is_some() != p.ts.is_some() {
                    return Err(LineError::new(
                        at,
                        format!(
                            "series of {} mixes samples with and without timestamps: give all or none a timestamp",
                            shown()
                        ),
                    ));
                }
                if let (Some(a), Some(b)) = (prev_ts, p.ts)
                    && b < a
                    && typ != OmType::Info
                {
                    return Err(LineError::new(
                        at,
                        format!(
                            "timestamps of series {} go backwards: samples of one series must be in time order",
                            shown()
                        ),
                    ));
                }
            }
            Some(_) => {
                if !fam.seen_groups.insert(group) {
                    return Err(LineError::new(
                        at,
                        format!(
                            "series of {} is not grouped: all samples of one series (one label set) must be contiguous within the family",
                            shown()
                        ),
                    ));
                }
            }
            None => {
                fam.seen_groups.insert(group);
            }
        }
        fam.group = Some((group, p.ts));

        let v = p.value;
        match typ {
            OmType::StateSet if v != 0.0 && v != 1.0 => {
                return Err(LineError::new(
                    at,
                    format!(
                        "stateset sample {} has value {v}: a state is 0 (false) or 1 (true)",
                        shown()
                    ),
                ));
            }
            OmType::Info if v != 1.0 => {
                return Err(LineError::new(
                    at,
                    format!(
                        "info sample {} has value {v}: info values are always 1",
                        shown()
                    ),
                ));
            }
            _ => {}
        }
        if suffix.counter_like() {
            if v.is_nan() {
                return Err(LineError::new(
                    at,
                    format!(
                        "{} is NaN: counts, sums and buckets must be numbers",
                        shown()
                    ),
                ));
            }
            // _gsum may be negative; a summary _sum may be too (negative
            // observations, see the module docs); a histogram _sum is
            // judged with its buckets at the end of the series.
            let may_be_negative = suffix == Suffix::GSum
                || (suffix == Suffix::Sum && matches!(typ, OmType::Summary | OmType::Histogram));
            if v < 0.0 && !may_be_negative {
                return Err(LineError::new(
                    at,
                    format!(
                        "{} is negative ({v}): counts, totals and buckets cannot be",
                        shown()
                    ),
                ));
            }
        }
        if p.exemplar
            && !((typ.is_histogram() && suffix == Suffix::Bucket)
                || (typ == OmType::Counter && suffix == Suffix::Total))
        {
            return Err(LineError::new(
                at,
                format!(
                    "exemplar on {}: only counter _total and histogram _bucket samples may carry one",
                    shown()
                ),
            ));
        }
        if typ.is_histogram() {
            self.hist_sample(at, line_no, group, p.ts, suffix, le, v)?;
        }
        Ok(suffix == Suffix::Created
            && matches!(typ, OmType::Counter | OmType::Histogram | OmType::Summary))
    }

    #[allow(clippy::too_many_arguments)]
    fn hist_sample(
        &mut self,
        at: usize,
        line_no: usize,
        group: u64,
        ts: Option<OmTimestamp>,
        suffix: Suffix,
        le: Option<f64>,
        v: f64,
    ) -> Result<(), LineError> {
        let run = &self.fam.hist;
        if !run.active || run.group != group || run.ts != ts {
            self.finish_hist_run(at)?;
            self.fam.hist = HistRun {
                active: true,
                group,
                ts,
                first_line: line_no,
                ..HistRun::default()
            };
        }
        let fam = &mut self.fam;
        let run = &mut fam.hist;
        // Formatted only on error: this runs for every histogram sample.
        let name = || quote_name(&fam.name);
        match suffix {
            Suffix::Bucket => {
                let b = le.unwrap_or(f64::NAN);
                if b < 0.0 {
                    run.negative_buckets = true;
                }
                if let Some(prev) = run.last_bound
                    && b <= prev
                {
                    return Err(LineError::new(
                        at,
                        format!(
                            "bucket le=\"{}\" of histogram {} follows le=\"{}\": buckets must be in increasing order",
                            format_float(b),
                            name(),
                            format_float(prev)
                        ),
                    ));
                }
                if v < run.last_count {
                    return Err(LineError::new(
                        at,
                        format!(
                            "bucket le=\"{}\" of histogram {} counts {}, less than the previous bucket's {}: buckets are cumulative",
                            format_float(b),
                            name(),
                            format_float(v),
                            format_float(run.last_count)
                        ),
                    ));
                }
                run.last_bound = Some(b);
                run.last_count = v;
            }
            Suffix::Count | Suffix::GCount => run.count = Some(v),
            Suffix::Sum => {
                run.has_sum = true;
                run.negative_sum |= v < 0.0;
            }
            Suffix::GSum => {
                run.has_gsum = true;
                run.negative_gsum |= v < 0.0;
            }
            _ => {}
        }
        Ok(())
    }

    /// End-of-series histogram checks; `at` is where the error is reported
    /// (the line that ended the series).
    fn finish_hist_run(&mut self, at: usize) -> Result<(), LineError> {
        let run = std::mem::take(&mut self.fam.hist);
        if !run.active {
            return Ok(());
        }
        let gauge = self.fam.typ == Some(OmType::GaugeHistogram);
        let (count, sum) = if gauge {
            ("_gcount", "_gsum")
        } else {
            ("_count", "_sum")
        };
        let name = quote_name(&self.fam.name);
        let line = run.first_line;
        let fail = |what: String| {
            Err(LineError::new(
                at,
                format!("histogram {name}, series starting on line {line}: {what}"),
            ))
        };
        if run.last_bound != Some(f64::INFINITY) {
            return fail("no le=\"+Inf\" bucket: the last bucket must be +Inf".to_string());
        }
        if let Some(c) = run.count
            && c != run.last_count
        {
            return fail(format!(
                "{count} is {c} but the +Inf bucket is {}: they must be equal",
                run.last_count
            ));
        }
        if (run.has_sum || run.has_gsum) && run.count.is_none() {
            return fail(format!("{sum} without {count}: expose both or neither"));
        }
        if !(run.has_sum || run.has_gsum) && run.count.is_some() {
            return fail(format!("{count} without {sum}: expose both or neither"));
        }
        if !run.negative_buckets && (run.negative_gsum || run.negative_sum) {
            return fail(format!(
                "{sum} is negative but no bucket bound is: a negative sum needs negative observations"
            ));
        }
        Ok(())
    }
}

/// The suffix under which `name` belongs to family `fam`, if it does.
fn member_suffix(fam: &Family, name: &[u8]) -> Option<Suffix> {
    let n = fam.name.len();
    if name.len() < n || !lex::bytes_eq(&name[..n], &fam.name) {
        return None;
    }
    let rest = &name[n..];
    let typ = fam.typ.unwrap_or(OmType::Unknown);
    typ.suffixes()
        .iter()
        .copied()
        .find(|s| lex::bytes_eq(s.text(), rest))
}

/// Parses the label set after `{` (at `i - 1`), OpenMetrics-strict: no
/// whitespace, no trailing comma. With `name` given, a quoted string not
/// followed by `=` is the metric name (once, and only if none was given
/// before the braces). Returns the index after `}`.
fn labels(
    l: &[u8],
    mut i: usize,
    mut name: Option<&mut Option<NameTok>>,
    spans: &mut Vec<LabelSpan>,
) -> Result<usize, LineError> {
    if l.get(i) == Some(&b'}') {
        return Ok(i + 1);
    }
    loop {
        let tok = match l.get(i) {
            Some(b'"') => {
                let q = lex::scan_quoted(l, i, Escapes::Lenient).map_err(|e| match e {
                    QuoteError::Unterminated => LineError::new(
                        i,
                        "quoted name is not closed: expected '\"' before the end of the line"
                            .to_string(),
                    ),
                    QuoteError::NotUtf8(at) | QuoteError::BadEscape(at) => {
                        LineError::new(at, "quoted name is not valid UTF-8".to_string())
                    }
                })?;
                if q.start == q.end {
                    return Err(LineError::new(i, "quoted name is empty".to_string()));
                }
                NameTok {
                    start: q.start,
                    end: q.end,
                    quoted: true,
                    escaped: q.escaped,
                }
            }
            _ => {
                let e = lex::scan_label_name(l, i);
                if e == i {
                    return Err(LineError::new(
                        i,
                        format!(
                            "expected a label name, found {}: a label name starts with a letter or '_', or is quoted (and a label set has no trailing comma)",
                            describe_byte(l.get(i))
                        ),
                    ));
                }
                NameTok {
                    start: i,
                    end: e,
                    quoted: false,
                    escaped: false,
                }
            }
        };
        i = tok.after();
        match l.get(i) {
            Some(b'=') => {
                i += 1;
                if l.get(i) != Some(&b'"') {
                    return Err(LineError::new(
                        i,
                        format!(
                            "expected '\"' to open the value of label {}, found {}: label values are double-quoted",
                            quote_name(&tok.decoded(l)),
                            describe_byte(l.get(i))
                        ),
                    ));
                }
                if name.is_some() && tok.is(l, b"__name__") {
                    return Err(reserved_name(&tok));
                }
                let value = lex::scan_quoted(l, i, Escapes::Lenient)
                    .map_err(|e| quote_error(l, i, e, &tok))?;
                spans.push(LabelSpan { name: tok, value });
                i = value.end + 1;
            }
            Some(b',' | b'}') if tok.quoted && name.as_ref().is_some_and(|n| n.is_none()) => {
                if let Some(slot) = name.as_mut() {
                    **slot = Some(tok);
                }
            }
            other => {
                return Err(LineError::new(
                    i,
                    format!(
                        "expected '=' after label name {}, found {}",
                        quote_name(&tok.decoded(l)),
                        describe_byte(other)
                    ),
                ));
            }
        }
        match l.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => return Ok(i + 1),
            other => {
                return Err(LineError::new(
                    i,
                    format!(
                        "expected ',' or '}}' after a label, found {}: labels are separated by a comma without spaces",
                        describe_byte(other)
                    ),
                ));
            }
        }
    }
}

/// A metric name token in a metadata line: bare or quoted.
fn metric_name_tok(l: &[u8], n: usize, kw: &str) -> Result<NameTok, LineError> {
    if l.get(n) == Some(&b'"') {
        let q = lex::scan_quoted(l, n, Escapes::Lenient).map_err(|_| {
            LineError::new(
                n,
                format!("quoted metric name in '# {kw}' is not closed or not valid UTF-8"),
            )
        })?;
        if q.start == q.end {
            return Err(LineError::new(n, "quoted metric name is empty".to_string()));
        }
        return Ok(NameTok {
            start: q.start,
            end: q.end,
            quoted: true,
            escaped: q.escaped,
        });
    }
    let e = lex::scan_metric_name(l, n);
    if e == n {
        return Err(LineError::new(
            n,
            format!(
                "expected a metric name after '# {kw}', found {}",
                describe_byte(l.get(n))
            ),
        ));
    }
    Ok(NameTok {
        start: n,
        end: e,
        quoted: false,
        escaped: false,
    })
}

/// A number token at `i`, ending at the next space or the end of the line.
fn number(l: &[u8], i: usize, what: &str) -> Result<(f64, usize), LineError> {
    let e = memchr::memchr(b' ', &l[i.min(l.len())..]).map_or(l.len(), |k| k + i);
    if e == i {
        return Err(LineError::new(
            i,
            format!(
                "expected the {what}, found {}: tokens are separated by exactly one space",
                describe_byte(l.get(i))
            ),
        ));
    }
    let Some(v) = parse_float(&l[i..e]) else {
        return Err(LineError::new(
            i,
            format!(
                "{what} \"{}\" is not a number: use a decimal number, NaN, +Inf or -Inf",
                excerpt(&l[i..e])
            ),
        ));
    };
    Ok((v, e))
}

/// A timestamp token (decimal seconds) at `i`.
fn timestamp(l: &[u8], i: usize, what: &str) -> Result<(OmTimestamp, usize), LineError> {
    let e = memchr::memchr(b' ', &l[i.min(l.len())..]).map_or(l.len(), |k| k + i);
    if e == i {
        return Err(LineError::new(
            i,
            format!(
                "expected the {what}, found {}: remove trailing or doubled spaces",
                describe_byte(l.get(i))
            ),
        ));
    }
    let Some(t) = parse_om_timestamp(&l[i..e]) else {
        return Err(LineError::new(
            i,
            format!(
                "{what} \"{}\" is not a decimal number of seconds",
                excerpt(&l[i..e])
            ),
        ));
    };
    Ok((t, e))
}

/// The `le` bound of a histogram bucket: present, a number, not NaN, and
/// `+Inf` spelled exactly so.
fn bucket_bound(l: &[u8], at: usize, spans: &[LabelSpan], name: &[u8]) -> Result<f64, LineError> {
    let Some(s) = spans.iter().find(|s| s.is(l, b"le")) else {
        return Err(LineError::new(
            at,
            format!(
                "histogram bucket {} has no \"le\" label: every bucket needs its upper bound",
                quote_name(name)
            ),
        ));
    };
    let raw = s.value_decoded(l);
    match parse_float(&raw) {
        Some(b) if !b.is_nan() && (b != f64::INFINITY || raw.as_ref() == b"+Inf") => Ok(b),
        _ => Err(LineError::new(
            s.value.start,
            format!(
                "bucket bound le=\"{}\" of {} is not a valid number: use a float, and write infinity as +Inf",
                excerpt(&raw),
                quote_name(name)
            ),
        )),
    }
}

/// The `quantile` label of a summary quantile sample: a number in [0, 1].
fn quantile(l: &[u8], at: usize, spans: &[LabelSpan], name: &[u8]) -> Result<(), LineError> {
    let s = spans.iter().find(|s| s.is(l, b"quantile"));
    let q = s.and_then(|s| parse_float(&s.value_decoded(l)));
    match q {
        Some(q) if (0.0..=1.0).contains(&q) => Ok(()),
        _ => Err(LineError::new(
            s.map_or(at, |s| s.value.start),
            format!(
                "summary sample {} needs a \"quantile\" label between 0 and 1, got {}",
                quote_name(name),
                s.map_or("none".to_string(), |s| format!(
                    "\"{}\"",
                    excerpt(&s.value_decoded(l))
                ))
            ),
        )),
    }
}

/// Order-independent fingerprint of a label set minus `skip`: the sum of
/// well-mixed per-pair hashes of the decoded names and values.
fn group_fingerprint(l: &[u8], spans: &[LabelSpan], skip: Option<&[u8]>) -> u64 {
    let mut sum: u64 = 0;
    for s in spans {
        if skip.is_some_and(|k| s.is(l, k)) {
            continue;
        }
        sum = sum.wrapping_add(lex::pair_fingerprint(
            &s.name.decoded(l),
            &s.value_decoded(l),
        ));
    }
    sum
}

fn char_count(b: &[u8]) -> usize {
    b.iter().filter(|&&c| (c & 0xc0) != 0x80).count()
}

fn clash(name: &[u8], at: usize) -> LineError {
    LineError::new(
        at,
        format!(
            "metric family {} was already used: a family's lines must be together, and no family may take a name another reserves (counter \"x\" reserves \"x_total\" and \"x_created\", histogram \"x\" reserves \"x_bucket\", \"x_count\", \"x_sum\" and \"x_created\", and so on)",
            quote_name(name)
        ),
    )
}

fn repeated(kw: &str, name: &[u8], at: usize) -> LineError {
    LineError::new(
        at,
        format!(
            "second '# {kw}' line for {}: give each metadata line once per family",
            quote_name(name)
        ),
    )
}

fn unit_not_allowed(name: &[u8], at: usize) -> LineError {
    LineError::new(
        at,
        format!(
            "{} is an info or stateset family, which cannot have a unit: remove the '# UNIT' line",
            quote_name(name)
        ),
    )
}
