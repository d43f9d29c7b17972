//! Byte-level pieces shared by both exposition formats: character classes
//! for names, quoted strings with their escapes, decoding into `Cow`, the
//! label-pair spans a sample line leaves behind, and a small stable hasher.
//!
//! Everything here works on one line's bytes and borrows from the input;
//! nothing allocates unless an escape forces a decoded copy. It knows no
//! format rules beyond "which escapes are legal", which the caller picks.

use std::borrow::Cow;

/// `[a-zA-Z_:]`: may start a metric name.
const METRIC_START: u8 = 1;
/// `[a-zA-Z0-9_:]`: may continue a metric name.
const METRIC_CONT: u8 = 2;
/// `[a-zA-Z_]`: may start a label name.
const LABEL_START: u8 = 4;
/// `[a-zA-Z0-9_]`: may continue a label name.
const LABEL_CONT: u8 = 8;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic() || b == b'_';
        let digit = b.is_ascii_digit();
        let mut v = 0;
        if alpha || b == b':' {
            v |= METRIC_START | METRIC_CONT;
        }
        if digit {
            v |= METRIC_CONT | LABEL_CONT;
        }
        if alpha {
            v |= LABEL_START | LABEL_CONT;
        }
        t[c] = v;
        c += 1;
    }
    t
};

/// End of the unquoted metric name starting at `i` (`i` itself when no name
/// starts there).
#[inline]
pub(super) fn scan_metric_name(l: &[u8], i: usize) -> usize {
    if i >= l.len() || CLASS[l[i] as usize] & METRIC_START == 0 {
        return i;
    }
    scan_class(l, i + 1, METRIC_CONT)
}

/// End of the unquoted label name starting at `i` (`i` when none).
#[inline]
pub(super) fn scan_label_name(l: &[u8], i: usize) -> usize {
    if i >= l.len() || CLASS[l[i] as usize] & LABEL_START == 0 {
        return i;
    }
    scan_class(l, i + 1, LABEL_CONT)
}

/// First index from `j` whose byte is not in `class`. Eight bytes per step
/// while they all belong (names are long, and a branch per byte is what
/// costs), then byte by byte.
#[inline(always)]
fn scan_class(l: &[u8], mut j: usize, class: u8) -> usize {
    while let Some(c) = l.get(j..j + 8) {
        let all = CLASS[c[0] as usize]
            & CLASS[c[1] as usize]
            & CLASS[c[2] as usize]
            & CLASS[c[3] as usize]
            & CLASS[c[4] as usize]
            & CLASS[c[5] as usize]
            & CLASS[c[6] as usize]
            & CLASS[c[7] as usize];
        if all & class == 0 {
            break;
        }
        j += 8;
    }
    while j < l.len() && CLASS[l[j] as usize] & class != 0 {
        j += 1;
    }
    j
}

/// Skips blanks and tabs, the only in-line whitespace of the text format.
#[inline]
pub(super) fn skip_blank(l: &[u8], mut i: usize) -> usize {
    while i < l.len() && (l[i] == b' ' || l[i] == b'\t') {
        i += 1;
    }
    i
}

/// Which backslash escapes a quoted string may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Escapes {
    /// Prometheus text 0.0.4: only `\\`, `\"` and `\n`; anything else is an
    /// error (prometheus/common's parser rejects it).
    Strict,
    /// OpenMetrics: `\\`, `\"` and `\n` are decoded, any other `\x` stays
    /// as the two characters (what the reference parser and the conformance
    /// suite require).
    Lenient,
}

/// A quoted string found on a line.
#[derive(Debug, Clone, Copy)]
pub(super) struct Quoted {
    /// Index of the first byte after the opening quote.
    pub start: usize,
    /// Index of the closing quote.
    pub end: usize,
    /// Whether the content holds a backslash (so decoding must copy).
    pub escaped: bool,
}

/// Why a quoted string is malformed, and where (index into the line).
#[derive(Debug)]
pub(super) enum QuoteError {
    /// The line ends before the closing quote.
    Unterminated,
    /// `\x` with an `x` the format does not allow; index of the backslash.
    BadEscape(usize),
    /// The content is not UTF-8; index of the first bad byte.
    NotUtf8(usize),
}

/// Scans the string whose opening `"` is at `i` (the caller checked it).
/// The line holds no newline, so a string that reaches the end of the line
/// is unterminated (a raw newline inside a value is an error in both
/// formats).
#[inline(always)]
pub(super) fn scan_quoted(l: &[u8], i: usize, esc: Escapes) -> Result<Quoted, QuoteError> {
    // Most values are short and plain ASCII: a simple loop finds their end
    // before memchr's vector setup would pay off. Anything else (escapes,
    // non-ASCII, long values) takes the general path.
    let start = i + 1;
    let short_end = l.len().min(start + 64);
    let mut j = start;
    // Eight bytes at a time: stop at the first '"', '\\' or non-ASCII
    // byte (classic SWAR zero-byte test; the lowest flagged byte is exact).
    while j + 8 <= short_end {
        let w = word(&l[j..j + 8]);
        let flags = zero_byte(w ^ QUOTES) | zero_byte(w ^ BACKSLASHES) | (w & HIGH_BITS);
        if flags != 0 {
            j += (flags.trailing_zeros() / 8) as usize;
            break;
        }
        j += 8;
    }
    while j < short_end && l[j] != b'"' && l[j] != b'\\' && l[j] < 0x80 {
        j += 1;
    }
    if j < short_end && l[j] == b'"' {
        return Ok(Quoted {
            start,
            end: j,
            escaped: false,
        });
    }
    scan_quoted_general(l, start, esc)
}

/// Index of the first blank or tab at or after `i`, or the line's end.
#[inline(always)]
pub(super) fn find_blank(l: &[u8], mut i: usize) -> usize {
    while let Some(c) = l.get(i..i + 8) {
        let w = word(c);
        let flags = zero_byte(w ^ BLANKS) | zero_byte(w ^ TABS);
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < l.len() && l[i] != b' ' && l[i] != b'\t' {
        i += 1;
    }
    i
}

const BLANKS: u64 = 0x2020_2020_2020_2020;
const TABS: u64 = 0x0909_0909_0909_0909;
const QUOTES: u64 = 0x2222_2222_2222_2222;
const BACKSLASHES: u64 = 0x5c5c_5c5c_5c5c_5c5c;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
const LOW_BITS: u64 = 0x0101_0101_0101_0101;

/// High bit set in each byte of `w` that is zero (and possibly in bytes
/// above a zero byte; the lowest flagged byte is always a true zero).
#[inline(always)]
fn zero_byte(w: u64) -> u64 {
    w.wrapping_sub(LOW_BITS) & !w & HIGH_BITS
}

#[inline(never)]
fn scan_quoted_general(l: &[u8], start: usize, esc: Escapes) -> Result<Quoted, QuoteError> {
    let mut j = start;
    let mut escaped = false;
    loop {
        let Some(k) = memchr::memchr2(b'"', b'\\', &l[j..]) else {
            return Err(QuoteError::Unterminated);
        };
        j += k;
        if l[j] == b'"' {
            break;
        }
        escaped = true;
        match l.get(j + 1) {
            None => return Err(QuoteError::Unterminated),
            Some(b'\\' | b'"' | b'n') => {}
            Some(_) if esc == Escapes::Lenient => {}
            Some(_) => return Err(QuoteError::BadEscape(j)),
        }
        j += 2;
    }
    let content = &l[start..j];
    if !content.is_ascii()
        && let Err(e) = std::str::from_utf8(content)
    {
        return Err(QuoteError::NotUtf8(start + e.valid_up_to()));
    }
    Ok(Quoted {
        start,
        end: j,
        escaped,
    })
}

/// Decodes validated quoted content: `\\`, `\"`, `\n` become their
/// characters and any other `\x` stays as written (the text format never
/// gets here with one, it was rejected).
pub(super) fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c == b'\\' && i + 1 < raw.len() {
            match raw[i + 1] {
                b'\\' => out.push(b'\\'),
                b'"' => out.push(b'"'),
                b'n' => out.push(b'\n'),
                other => {
                    out.push(b'\\');
                    out.push(other);
                }
            }
            i += 2;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The bytes a name or value stands for: borrowed unless escapes force a
/// decoded copy.
#[inline]
pub(super) fn decoded(raw: &[u8], escaped: bool) -> Cow<'_, [u8]> {
    if escaped {
        Cow::Owned(unescape(raw))
    } else {
        Cow::Borrowed(raw)
    }
}

/// Validated UTF-8 bytes as text. The parser checked the encoding before a
/// sample was handed out, so the lossy branch never replaces anything; it
/// only keeps this free of `unwrap`.
pub(super) fn to_str(b: Cow<'_, [u8]>) -> Cow<'_, str> {
    match b {
        Cow::Borrowed(b) => String::from_utf8_lossy(b),
        Cow::Owned(v) => Cow::Owned(
            String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into()),
        ),
    }
}

/// Where a name sits on a line: the raw token, and whether it was quoted.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct NameTok {
    /// Content start (after the quote when quoted).
    pub start: usize,
    /// Content end (the closing quote when quoted).
    pub end: usize,
    pub quoted: bool,
    pub escaped: bool,
}

impl NameTok {
    pub fn raw<'a>(&self, l: &'a [u8]) -> &'a [u8] {
        &l[self.start..self.end]
    }

    /// Index of the first byte after the token (past the closing quote).
    pub fn after(&self) -> usize {
        self.end + usize::from(self.quoted)
    }

    /// Index of the token's first byte (the opening quote when quoted).
    pub fn begin(&self) -> usize {
        self.start - usize::from(self.quoted)
    }

    pub fn decoded<'a>(&self, l: &'a [u8]) -> Cow<'a, [u8]> {
        decoded(self.raw(l), self.escaped)
    }

    /// Whether the (decoded) name is `name`.
    #[inline(always)]
    pub fn is(&self, l: &[u8], name: &[u8]) -> bool {
        if self.escaped {
            self.is_escaped(l, name)
        } else {
            bytes_eq(self.raw(l), name)
        }
    }

    #[cold]
    fn is_escaped(&self, l: &[u8], name: &[u8]) -> bool {
        unescape(self.raw(l)) == name
    }
}

/// One `name="value"` pair of a sample line, as indexes into the line.
#[derive(Debug, Clone, Copy)]
pub(super) struct LabelSpan {
    pub name: NameTok,
    pub value: Quoted,
}

impl LabelSpan {
    pub fn value_raw<'a>(&self, l: &'a [u8]) -> &'a [u8] {
        &l[self.value.start..self.value.end]
    }

    pub fn value_decoded<'a>(&self, l: &'a [u8]) -> Cow<'a, [u8]> {
        decoded(self.value_raw(l), self.value.escaped)
    }

    /// Whether this label's (decoded) name is `name`.
    #[inline(always)]
    pub fn is(&self, l: &[u8], name: &[u8]) -> bool {
        self.name.is(l, name)
    }
}

/// Equality of short byte strings without a `memcmp` call: names on the
/// hot path are a few dozen bytes, where the call costs more than the work.
#[inline(always)]
pub(super) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        if word(x) != word(y) {
            return false;
        }
    }
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let mut diff = 0u8;
    for k in 0..ra.len() {
        diff |= ra[k] ^ rb[k];
    }
    diff == 0
}

/// Eight bytes as a word.
#[inline(always)]
fn word(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(b);
    u64::from_le_bytes(w)
}

/// Index of the first label whose name repeats an earlier one, if any.
/// Up to 16 labels, pairs are compared by length and only equal lengths by
/// content (the names of a real label set rarely share a length). Larger
/// sets are usually sorted already (client libraries sort them), which one
/// linear pass confirms; otherwise the names are sorted through `order`, a
/// reused buffer, so a line with 100k labels stays O(n log n) and a large
/// label set does not allocate per sample.
pub(super) fn find_duplicate(
    l: &[u8],
    spans: &[LabelSpan],
    order: &mut Vec<usize>,
) -> Option<usize> {
    let n = spans.len();
    if n < 2 {
        return None;
    }
    if spans.iter().any(|s| s.name.escaped) {
        return find_duplicate_decoded(l, spans);
    }
    let raw = |k: usize| spans[k].name.raw(l);
    if n <= 16 {
        let len = |k: usize| spans[k].name.end - spans[k].name.start;
        for k in 1..n {
            for m in 0..k {
                if len(m) == len(k) && bytes_eq(raw(m), raw(k)) {
                    return Some(k);
                }
            }
        }
        return None;
    }
    if (1..n).all(|k| raw(k - 1) < raw(k)) {
        return None;
    }
    order.clear();
    order.extend(0..n);
    order.sort_unstable_by(|&a, &b| raw(a).cmp(raw(b)).then(a.cmp(&b)));
    order
        .windows(2)
        .filter(|w| raw(w[0]) == raw(w[1]))
        .map(|w| w[1])
        .min()
}

#[cold]
fn find_duplicate_decoded(l: &[u8], spans: &[LabelSpan]) -> Option<usize> {
    let names: Vec<Cow<'_, [u8]>> = spans.iter().map(|s| s.name.decoded(l)).collect();
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by(|&a, &b| names[a].cmp(&names[b]).then(a.cmp(&b)));
    order
        .windows(2)
        .filter(|w| names[w[0]] == names[w[1]])
        .map(|w| w[1])
        .min()
}

/// A short excerpt of untrusted bytes for an error message: at most 64
/// characters, so a hostile megabyte-long token cannot bloat the error.
pub(super) fn excerpt(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let mut out: String = s.chars().take(64).collect();
    if s.chars().nth(64).is_some() {
        out.push('…');
    }
    out
}

/// A byte for an error message: the character, or a name for what cannot
/// be seen.
pub(super) fn describe_byte(b: Option<&u8>) -> String {
    match b {
        None => "end of line".to_string(),
        Some(b' ') => "a space".to_string(),
        Some(b'\t') => "a tab".to_string(),
        Some(&c) if c.is_ascii_graphic() => format!("'{}'", c as char),
        Some(&c) => format!("byte 0x{c:02x}"),
    }
}

/// Word-at-a-time multiplicative hash state behind [`pair_fingerprint`]. Not
/// used for hash tables: those keep std's keyed hasher, so a target cannot
/// craft names that collide and make lookups quadratic.
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            h = (h.rotate_left(5) ^ word(c)).wrapping_mul(SEED);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(SEED);
        }
        // Length last, so "a\0" and "a" differ.
        self.0 = (h.rotate_left(5) ^ bytes.len() as u64).wrapping_mul(SEED);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Well-mixed 64-bit fingerprint of one label pair (decoded name and
/// value). Sums of these are order-independent label-set fingerprints.
#[inline]
pub(super) fn pair_fingerprint(name: &[u8], value: &[u8]) -> u64 {
    let mut h = FastHasher::default();
    h.write(name);
    h.write(value);
    avalanche(h.finish())
}

/// Final mix (MurmurHash3's fmix64): every input bit affects every output
/// bit, so sums of these stay well distributed.
#[inline]
fn avalanche(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn name_classes() {
        assert_eq!(scan_metric_name(b"job:x:rate5m{", 0), 12);
        assert_eq!(scan_metric_name(b"0a", 0), 0);
        assert_eq!(scan_metric_name(b"@x", 0), 0);
        assert_eq!(scan_label_name(b"a:b", 0), 1);
        assert_eq!(scan_label_name(b"_1=", 0), 2);
    }

    #[test]
    fn quoted_strings_and_escapes() {
        let l = br#""b\"a\\l\nue" rest"#;
        let q = scan_quoted(l, 0, Escapes::Strict).unwrap();
        assert!(q.escaped);
        assert_eq!(&l[q.end + 1..], b" rest");
        assert_eq!(unescape(&l[q.start..q.end]), b"b\"a\\l\nue");

        assert!(matches!(
            scan_quoted(br#""\t""#, 0, Escapes::Strict),
            Err(QuoteError::BadEscape(1))
        ));
        let q = scan_quoted(br#""b\\a\z""#, 0, Escapes::Lenient).unwrap();
        assert_eq!(unescape(&br#""b\\a\z""#[q.start..q.end]), b"b\\a\\z");
        assert!(matches!(
            scan_quoted(br#""abc"#, 0, Escapes::Lenient),
            Err(QuoteError::Unterminated)
        ));
        assert!(matches!(
            scan_quoted(b"\"ab\\", 0, Escapes::Lenient),
            Err(QuoteError::Unterminated)
        ));
        assert!(matches!(
            scan_quoted(b"\"a\xffb\"", 0, Escapes::Lenient),
            Err(QuoteError::NotUtf8(2))
        ));
        let q = scan_quoted("\"día\"".as_bytes(), 0, Escapes::Strict).unwrap();
        assert!(!q.escaped);
    }

    fn spans(l: &[u8]) -> Vec<LabelSpan> {
        // name=value pairs separated by ',' with bare names, for tests.
        let mut out = Vec::new();
        let mut i = 0;
        while i < l.len() {
            let e = scan_label_name(l, i);
            let q = scan_quoted(l, e + 1, Escapes::Strict).unwrap();
            out.push(LabelSpan {
                name: NameTok {
                    start: i,
                    end: e,
                    quoted: false,
                    escaped: false,
                },
                value: q,
            });
            i = q.end + 2;
        }
        out
    }

    #[test]
    fn duplicates_found_in_every_regime() {
        let l = br#"a="1",b="2",c="3""#;
        let order = &mut Vec::new();
        assert_eq!(find_duplicate(l, &spans(l), order), None);
        let l = br#"c="1",b="2",c="3""#;
        assert_eq!(find_duplicate(l, &spans(l), order), Some(2));
        let mut big = String::new();
        for k in (0..1000).rev() {
            big.push_str(&format!("l{k}=\"v\","));
        }
        big.push_str("l500=\"x\"");
        let l = big.as_bytes();
        assert_eq!(find_duplicate(l, &spans(l), order), Some(1000));
        // Sorted large sets pass without sorting; a late duplicate is found.
        let mut sorted = String::new();
        for k in 0..40 {
            sorted.push_str(&format!("l{k:02}=\"v\","));
        }
        let l = sorted.trim_end_matches(',').as_bytes();
        assert_eq!(find_duplicate(l, &spans(l), order), None);
        let with_dup = format!("{sorted}l39=\"w\"");
        let l = with_dup.as_bytes();
        assert_eq!(find_duplicate(l, &spans(l), order), Some(40));
    }

    /// The word-at-a-time scanners agree with byte-by-byte references at
    /// every length and position, across the 8- and 64-byte boundaries.
    #[test]
    fn fast_scanners_match_naive_references() {
        let alphabet: [&[u8]; 9] = [
            b"a",
            b"Z",
            b"_",
            b"9",
            b":",
            b"\"",
            b"\\",
            " ".as_bytes(),
            "é".as_bytes(),
        ];
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for round in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 140) as usize;
            let mut l = vec![b'"'];
            let mut y = x;
            for _ in 0..len {
                y = y
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Mostly name characters, so long runs occur.
                let pick = if (y >> 60) < 12 {
                    (y >> 33) % 5
                } else {
                    (y >> 33) % 9
                };
                l.extend_from_slice(alphabet[pick as usize]);
            }
            let esc = if round % 2 == 0 {
                Escapes::Strict
            } else {
                Escapes::Lenient
            };
            // Reference: first '"' not consumed by an escape.
            let mut j = 1;
            let reference = loop {
                match l.get(j) {
                    None => break None,
                    Some(b'"') => break Some(j),
                    Some(b'\\') => j += 2,
                    Some(_) => j += 1,
                }
            };
            match (scan_quoted(&l, 0, esc), reference) {
                (Ok(q), Some(end)) => {
                    assert_eq!(q.end, end, "{:?}", String::from_utf8_lossy(&l));
                    assert_eq!(q.escaped, l[1..end].contains(&b'\\'));
                }
                (Err(_), None) => {}
                (Err(QuoteError::BadEscape(_)), Some(_)) => assert_eq!(esc, Escapes::Strict),
                (got, want) => panic!("{:?}: {got:?} vs {want:?}", String::from_utf8_lossy(&l)),
            }
            for start in 0..l.len().min(12) {
                let naive = |class: u8| {
                    let mut k = start;
                    while k < l.len() && CLASS[l[k] as usize] & class != 0 {
                        k += 1;
                    }
                    k
                };
                assert_eq!(scan_class(&l, start, METRIC_CONT), naive(METRIC_CONT));
                assert_eq!(scan_class(&l, start, LABEL_CONT), naive(LABEL_CONT));
                let blank = l[start..]
                    .iter()
                    .position(|&c| c == b' ' || c == b'\t')
                    .map_or(l.len(), |p| p + start);
                assert_eq!(find_blank(&l, start), blank);
            }
        }
    }

    #[test]
    fn fingerprints_separate_inputs() {
        let f = pair_fingerprint;
        assert_ne!(f(b"ab", b"c"), f(b"a", b"bc"));
        assert_ne!(f(b"a", b"b"), f(b"b", b"a"));
        assert_ne!(f(b"a", b""), f(b"a", b"\0"));
        assert_ne!(f(b"job", b"node-exporter-1"), f(b"job", b"node-exporter-2"));
        assert_eq!(
            f(b"instance", b"10.0.0.1:9100"),
            f(b"instance", b"10.0.0.1:9100")
        );
        // Order independence comes from summing pair fingerprints.
        let ab = f(b"a", b"1").wrapping_add(f(b"b", b"2"));
        let ba = f(b"b", b"2").wrapping_add(f(b"a", b"1"));
        assert_eq!(ab, ba);
        assert_ne!(ab, f(b"a", b"2").wrapping_add(f(b"b", b"1")));
    }

    #[test]
    fn excerpts_are_bounded() {
        let long = vec![b'x'; 1 << 20];
        assert_eq!(excerpt(&long).chars().count(), 65);
    }
}
