//! Telegram message text: escaping for a parse mode, repairing rendered
//! HTML into the subset the Bot API accepts, and splitting long texts into
//! messages of at most 4096 characters without breaking tags or entities.
//!
//! Sits between template rendering and the `sendMessage` request in
//! [`super::telegram`]. Alertmanager's Telegram receiver sends whatever the
//! template produced, and Telegram rejects the whole notification when the
//! text is longer than 4096 characters or when a label value carries a `<`
//! or `&` ("can't parse entities"). Here every value from the alerts is
//! escaped before rendering, the rendered HTML is repaired (unknown tags
//! and stray `<`, `>`, `&` escaped, tags balanced), and the result is cut
//! into valid messages. Pure functions only: no I/O, no clock.
//!
//! Lengths are counted in UTF-16 code units, as Telegram counts them, and
//! over the text *with* its markup: Telegram's limit applies to the text
//! after entity parsing, which is never longer, so a chunk that fits here
//! always fits there.

/// Telegram's limit on one message's text, in UTF-16 code units after
/// entity parsing.
pub const MESSAGE_LIMIT: usize = 4096;

/// Smallest limit [`split_html`] and [`split_plain`] accept: room for the
/// longest single token (an entity, a surrogate pair) plus closing tags.
pub const MIN_LIMIT: usize = 64;

/// `href` values longer than this lose their link (the text stays): a link
/// must be re-opened in every chunk it spans and has to stay small next to
/// the limit.
const MAX_HREF: usize = 1024;

/// Deeper nesting than this keeps the text but drops the formatting, for
/// the same reason.
const MAX_DEPTH: usize = 8;

/// Longest `language-…` class kept on `<code>`.
const MAX_LANGUAGE: usize = 32;

/// How Telegram parses a message's text (`parse_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseMode {
    Html,
    MarkdownV2,
    /// Telegram's legacy Markdown.
    Markdown,
    /// No parse mode: the text is shown as it is.
    Plain,
}

impl ParseMode {
    /// The config's spelling (`HTML`, `MarkdownV2`, `Markdown`, empty),
    /// case-insensitively; `None` for anything else.
    pub fn from_config(s: &str) -> Option<ParseMode> {
        match s.to_ascii_lowercase().as_str() {
            "html" => Some(ParseMode::Html),
            "markdownv2" => Some(ParseMode::MarkdownV2),
            "markdown" => Some(ParseMode::Markdown),
            "" => Some(ParseMode::Plain),
            _ => None,
        }
    }
}

/// `s` escaped so that it shows literally under `mode`: what every label
/// and annotation value goes through before a template sees it.
pub fn escape(mode: ParseMode, s: &str) -> String {
    match mode {
        ParseMode::Html => escape_html(s),
        ParseMode::MarkdownV2 => escape_with(s, "_*[]()~`>#+-=|{}.!\\"),
        ParseMode::Markdown => escape_with(s, "_*`["),
        ParseMode::Plain => s.to_string(),
    }
}

/// [`escape`] for MarkdownV2, as a plain function for the renderer.
pub fn escape_markdown_v2(s: &str) -> String {
    escape(ParseMode::MarkdownV2, s)
}

/// [`escape`] for legacy Markdown, as a plain function for the renderer.
pub fn escape_markdown(s: &str) -> String {
    escape(ParseMode::Markdown, s)
}

fn escape_with(s: &str, special: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if special.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The four characters Telegram's HTML needs escaped, as its named entities.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// One piece of repaired HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An opening tag in canonical form (`<a href="...">`), its element name.
    Open {
        name: &'static str,
        tag: String,
    },
    Close {
        name: &'static str,
    },
    /// One visible character, as written (a character or an entity).
    Text(String),
}

impl Token {
    fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Token::Open { tag, .. } => tag.as_str().into(),
            Token::Close { name } => format!("</{name}>").into(),
            Token::Text(t) => t.as_str().into(),
        }
    }
}

fn len16(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Elements of Telegram's HTML subset, by the name written in the tag.
fn element(name: &str) -> Option<&'static str> {
    Some(match name {
        "b" => "b",
        "strong" => "strong",
        "i" => "i",
        "em" => "em",
        "u" => "u",
        "ins" => "ins",
        "s" => "s",
        "strike" => "strike",
        "del" => "del",
        "tg-spoiler" => "tg-spoiler",
        "span" => "span",
        "a" => "a",
        "code" => "code",
        "pre" => "pre",
        "blockquote" => "blockquote",
        _ => return None,
    })
}

/// A tag as written: `<name attr="v" ...>` or `</name>`, `<br/>`.
struct RawTag {
    closing: bool,
    name: String,
    attrs: Vec<(String, Option<String>)>,
    /// Bytes of input the tag spans.
    len: usize,
}

/// Parses a tag at the start of `s` (which starts with `<`); `None` when
/// it is not a well-formed tag (then the `<` is text).
fn parse_tag(s: &str) -> Option<RawTag> {
    let b = s.as_bytes();
    let mut i = 1;
    let closing = b.get(i) == Some(&b'/');
    if closing {
        i += 1;
    }
    let start = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-') {
        i += 1;
    }
    if i == start {
        return None;
    }
    let name = s[start..i].to_ascii_lowercase();
    let mut attrs = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        match b.get(i)? {
            b'>' => {
                return Some(RawTag {
                    closing,
                    name,
                    attrs,
                    len: i + 1,
                });
            }
            b'/' if b.get(i + 1) == Some(&b'>') => {
                return Some(RawTag {
                    closing,
                    name,
                    attrs,
                    len: i + 2,
                });
            }
            _ => {}
        }
        if closing {
            return None;
        }
        let astart = i;
        while i < b.len()
            && !b[i].is_ascii_whitespace()
            && !matches!(b[i], b'=' | b'>' | b'/' | b'<' | b'"' | b'\'')
        {
            i += 1;
        }
        if i == astart {
            return None;
        }
        let aname = s[astart..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            attrs.push((aname, None));
            continue;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = match *b.get(i)? {
            q @ (b'"' | b'\'') => {
                let end = s[i + 1..].find(q as char)? + i + 1;
                let v = &s[i + 1..end];
                i = end + 1;
                v
            }
            _ => {
                let vstart = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                &s[vstart..i]
            }
        };
        if value.contains('<') {
            return None;
        }
        attrs.push((aname, Some(decode_entities(value))));
    }
}

fn attr<'a>(attrs: &'a [(String, Option<String>)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.as_deref())
}

/// The entity at the start of `s` (which starts with `&`) if Telegram
/// accepts it: `&lt;`, `&gt;`, `&amp;`, `&quot;` and numeric ones naming a
/// valid, non-NUL code point. Returns its length in bytes.
fn entity_len(s: &str) -> Option<usize> {
    let end = s[1..].find(';')? + 1;
    if end > 12 {
        return None;
    }
    let body = &s[1..end];
    let ok = match body {
        "lt" | "gt" | "amp" | "quot" => true,
        _ => {
            let code =
                if let Some(hex) = body.strip_prefix("#x").or_else(|| body.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = body.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    None
                };
            code.is_some_and(|c| c != 0 && char::from_u32(c).is_some())
        }
    };
    ok.then_some(end + 1)
}

/// The character an accepted entity stands for.
fn entity_char(e: &str) -> Option<char> {
    let body = e.strip_prefix('&')?.strip_suffix(';')?;
    match body {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        _ => {
            let code =
                if let Some(hex) = body.strip_prefix("#x").or_else(|| body.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok()?
                } else {
                    body.strip_prefix('#')?.parse::<u32>().ok()?
                };
            char::from_u32(code)
        }
    }
}

/// Replaces the entities Telegram knows by their characters; anything else
/// stays as written.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        match entity_len(rest).and_then(|n| entity_char(&rest[..n]).map(|c| (n, c))) {
            Some((n, c)) => {
                out.push(c);
                rest = &rest[n..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_link(href: &str) -> bool {
    let lower = href.to_ascii_lowercase();
    ["http://", "https://", "tg://", "mailto:"]
        .iter()
        .any(|p| lower.starts_with(p) && lower.len() > p.len())
        && href.len() <= MAX_HREF
        && !href.chars().any(char::is_control)
}

/// The canonical opening tag for an element, or `None` when the tag's
/// attributes make it unusable (a link without a usable `href`, a `span`
/// that is not a spoiler): then the tag is dropped and its text kept.
fn open_tag(name: &'static str, attrs: &[(String, Option<String>)]) -> Option<String> {
    match name {
        "a" => {
            let href = attr(attrs, "href")?;
            is_link(href).then(|| format!("<a href=\"{}\">", escape_html(href)))
        }
        "span" => (attr(attrs, "class") == Some("tg-spoiler"))
            .then(|| "<span class=\"tg-spoiler\">".to_string()),
        "code" => match attr(attrs, "class").and_then(|c| c.strip_prefix("language-")) {
            Some(lang)
                if !lang.is_empty()
                    && lang.len() <= MAX_LANGUAGE
                    && lang
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-_#.".contains(&b)) =>
            {
                Some(format!("<code class=\"language-{lang}\">"))
            }
            _ => Some("<code>".to_string()),
        },
        "blockquote" if attrs.iter().any(|(n, _)| n == "expandable") => {
            Some("<blockquote expandable>".to_string())
        }
        _ => Some(format!("<{name}>")),
    }
}

/// Whether `child` may open inside the elements of `stack` (innermost
/// last), by Telegram's nesting rules: nothing inside `code`, only `code`
/// directly inside `pre`, no link in a link, no quote in a quote.
fn may_nest(stack: &[Open], child: &'static str) -> bool {
    if stack.len() >= MAX_DEPTH {
        return false;
    }
    if let Some(top) = stack.last() {
        match top.name {
            "code" => return false,
            "pre" => return child == "code",
            _ => {}
        }
    }
    let inside = |n: &str| stack.iter().any(|o| o.name == n);
    match child {
        "a" => !inside("a"),
        "blockquote" => !inside("blockquote"),
        "pre" => !inside("pre") && !inside("code"),
        _ => !inside("pre") && !inside("code"),
    }
}

#[derive(Debug, Clone)]
struct Open {
    name: &'static str,
    /// Whether the element was kept (its tags are emitted); a dropped
    /// element still needs its closing tag swallowed.
    kept: bool,
}

/// Repairs rendered HTML into a token stream Telegram accepts.
fn tokenize(s: &str) -> Vec<Token> {
    let mut out = Vec::with_capacity(s.len());
    let mut stack: Vec<Open> = Vec::new();
    let mut i = 0;
    let escaped = |c: char| -> String {
        match c {
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '&' => "&amp;".into(),
            c => c.to_string(),
        }
    };
    while i < s.len() {
        let rest = &s[i..];
        let Some(c) = rest.chars().next() else { break };
        if c == '&' {
            match entity_len(rest) {
                Some(n) => {
                    out.push(Token::Text(rest[..n].to_string()));
                    i += n;
                }
                None => {
                    out.push(Token::Text(escaped('&')));
                    i += 1;
                }
            }
            continue;
        }
        if c != '<' {
            out.push(Token::Text(escaped(c)));
            i += c.len_utf8();
            continue;
        }
        let Some(tag) = parse_tag(rest) else {
            out.push(Token::Text(escaped('<')));
            i += 1;
            continue;
        };
        if tag.name == "br" && !tag.closing {
            // A common template habit Telegram does not support.
            out.push(Token::Text("\n".into()));
            i += tag.len;
            continue;
        }
        let Some(name) = element(&tag.name) else {
            out.push(Token::Text(escaped('<')));
            i += 1;
            continue;
        };
        if tag.closing {
            // Inside code or pre everything is text, except the closers of
            // those elements themselves (and of elements inside them).
            let verbatim = stack
                .iter()
                .position(|o| o.name == "code" || o.name == "pre");
            match stack.iter().rposition(|o| o.name == name) {
                Some(pos) if verbatim.is_none_or(|v| pos >= v) => {
                    while stack.len() > pos {
                        if let Some(o) = stack.pop()
                            && o.kept
                        {
                            out.push(Token::Close { name: o.name });
                        }
                    }
                    i += tag.len;
                }
                _ => {
                    out.push(Token::Text(escaped('<')));
                    i += 1;
                }
            }
            continue;
        }
        if !may_nest(&stack, name) {
            if stack
                .last()
                .is_some_and(|t| t.name == "code" || t.name == "pre")
            {
                // Inside code a tag is text.
                out.push(Token::Text(escaped('<')));
                i += 1;
            } else {
                // Formatting Telegram cannot nest: keep the text, drop the tags.
                stack.push(Open { name, kept: false });
                i += tag.len;
            }
            continue;
        }
        match open_tag(name, &tag.attrs) {
            Some(t) => {
                out.push(Token::Open { name, tag: t });
                stack.push(Open { name, kept: true });
            }
            None => stack.push(Open { name, kept: false }),
        }
        i += tag.len;
    }
    while let Some(o) = stack.pop() {
        if o.kept {
            out.push(Token::Close { name: o.name });
        }
    }
    out
}

/// `s` repaired into HTML that Telegram parses: supported tags kept,
/// balanced and properly nested; everything else escaped.
pub fn sanitize_html(s: &str) -> String {
    tokenize(s).iter().map(|t| t.text()).collect()
}

/// The text a reader sees: tags dropped, entities decoded. What the
/// plain-text fallback sends.
pub fn html_to_plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for t in tokenize(s) {
        if let Token::Text(t) = t {
            match entity_char(&t) {
                Some(c) if t.starts_with('&') => out.push(c),
                _ => out.push_str(&t),
            }
        }
    }
    out
}

/// The state after the last newline of a chunk, where a cut looks best:
/// (next token, chunk length in bytes, in UTF-16 units, open elements).
type Snapshot = (usize, usize, usize, Vec<(usize, bool)>);

/// Splits `s` (rendered HTML, repaired on the way) into messages of at
/// most `limit` UTF-16 units each, markup included. Every chunk is
/// well-formed on its own: formatting open at a cut is closed at the end
/// of one chunk and opened again at the start of the next. Cuts fall after
/// a newline where one is in the second half of the chunk. Chunks with
/// nothing but whitespace are left out (Telegram rejects empty messages).
///
/// `limit` below [`MIN_LIMIT`] is raised to it.
pub fn split_html(s: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(MIN_LIMIT);
    let tokens = tokenize(s);
    let mut chunks = Vec::new();
    let mut stack: Vec<(usize, bool)> = Vec::new(); // (token index of the open tag, emitted in this chunk)
    let mut chunk = String::new();
    let mut chunk16 = 0;
    let mut i = 0;
    let mut snap: Option<Snapshot> = None;
    let mut chunk_start = 0;
    let closers = |stack: &[(usize, bool)]| -> usize {
        stack
            .iter()
            .filter(|(_, on)| *on)
            .map(|(t, _)| match &tokens[*t] {
                Token::Open { name, .. } => name.len() + 3,
                _ => 0,
            })
            .sum()
    };
    let finish = |chunk: &mut String, stack: &[(usize, bool)], chunks: &mut Vec<String>| {
        for (t, on) in stack.iter().rev() {
            if let (true, Token::Open { name, .. }) = (*on, &tokens[*t]) {
                chunk.push_str(&format!("</{name}>"));
            }
        }
        let text = std::mem::take(chunk);
        if !html_to_plain(&text).trim().is_empty() {
            chunks.push(text);
        }
    };
    // Opens the formatting that is still open at the start of a new chunk,
    // as far as it leaves at least half the chunk for text.
    let reopen = |stack: &mut Vec<(usize, bool)>, chunk: &mut String| -> usize {
        let mut used = 0;
        let mut off = false;
        for (t, on) in stack.iter_mut() {
            let Token::Open { name, tag } = &tokens[*t] else {
                continue;
            };
            let cost = len16(tag) + name.len() + 3;
            // Once one element is not reopened, none inside it is either:
            // they would nest differently from the original.
            *on = !off && used + cost <= limit / 2;
            if *on {
                chunk.push_str(tag);
                used += cost;
            } else {
                off = true;
            }
        }
        len16(chunk)
    };
    while i < tokens.len() {
        let tok = &tokens[i];
        let text = tok.text();
        let cost = len16(&text);
        let after_close = match tok {
            Token::Open { name, .. } => closers(&stack) + name.len() + 3,
            Token::Close { .. } => closers(&stack).saturating_sub(match stack.last() {
                Some((t, true)) => match &tokens[*t] {
                    Token::Open { name, .. } => name.len() + 3,
                    _ => 0,
                },
                _ => 0,
            }),
            Token::Text(_) => closers(&stack),
        };
        let emitted = match tok {
            Token::Close { .. } => stack.last().is_some_and(|(_, on)| *on),
            _ => true,
        };
        let fits = !emitted || chunk16 + cost + after_close <= limit;
        if !fits && i > chunk_start {
            if let Some((si, sbytes, s16, sstack)) = snap.take()
                && 2 * s16 >= limit
            {
                chunk.truncate(sbytes);
                stack = sstack;
                i = si;
            }
            finish(&mut chunk, &stack, &mut chunks);
            chunk16 = reopen(&mut stack, &mut chunk);
            chunk_start = i;
            snap = None;
            continue;
        }
        match tok {
            Token::Open { .. } => {
                let on = chunk16 + cost + after_close <= limit;
                if on {
                    chunk.push_str(&text);
                    chunk16 += cost;
                }
                stack.push((i, on));
            }
            Token::Close { .. } => {
                if let Some((_, true)) = stack.pop() {
                    chunk.push_str(&text);
                    chunk16 += cost;
                }
            }
            Token::Text(t) => {
                chunk.push_str(&text);
                chunk16 += cost;
                if t == "\n" {
                    snap = Some((i + 1, chunk.len(), chunk16, stack.clone()));
                }
            }
        }
        i += 1;
    }
    finish(&mut chunk, &stack, &mut chunks);
    chunks
}

/// Splits plain (or Markdown) text into chunks of at most `limit` UTF-16
/// units, cutting after a newline in the second half of a chunk where
/// there is one, else after a space there, else anywhere between two
/// characters. Whitespace-only chunks are left out.
pub fn split_plain(s: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(MIN_LIMIT);
    let mut chunks = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        if len16(rest) <= limit {
            if !rest.trim().is_empty() {
                chunks.push(rest.to_string());
            }
            break;
        }
        // The longest prefix within the limit, on a char boundary.
        let mut end = 0;
        let mut units = 0;
        for (idx, c) in rest.char_indices() {
            if units + c.len_utf16() > limit {
                break;
            }
            units += c.len_utf16();
            end = idx + c.len_utf8();
        }
        let head = &rest[..end];
        let half = head.len() / 2;
        let cut = head[half..]
            .rfind('\n')
            .or_else(|| head[half..].rfind(' '))
            .map_or(end, |p| half + p + 1);
        let (chunk, tail) = rest.split_at(cut);
        if !chunk.trim().is_empty() {
            chunks.push(chunk.to_string());
        }
        rest = tail;
    }
    chunks
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn escapes_per_mode() {
        assert_eq!(
            escape(ParseMode::Html, "a<b>&\"c\""),
            "a&lt;b&gt;&amp;&quot;c&quot;"
        );
        assert_eq!(
            escape(ParseMode::MarkdownV2, "node-1.example_a (x)!"),
            "node\\-1\\.example\\_a \\(x\\)\\!"
        );
        assert_eq!(escape(ParseMode::Markdown, "a_b*c"), "a\\_b\\*c");
        assert_eq!(escape(ParseMode::Plain, "<&>"), "<&>");
        assert_eq!(ParseMode::from_config("HTML"), Some(ParseMode::Html));
        assert_eq!(ParseMode::from_config(""), Some(ParseMode::Plain));
        assert_eq!(ParseMode::from_config("bbcode"), None);
    }

    #[test]
    fn repairs_html() {
        let cases = [
            ("<b>bold</b> & co", "<b>bold</b> &amp; co"),
            ("x < y > z", "x &lt; y &gt; z"),
            ("<B>up</B>", "<b>up</b>"),
            ("<b>open", "<b>open</b>"),
            ("stray</i>", "stray&lt;/i&gt;"),
            ("<b><i>x</b>", "<b><i>x</i></b>"),
            ("<p>para</p>", "&lt;p&gt;para&lt;/p&gt;"),
            ("a<br>b<br/>c<br />d", "a\nb\nc\nd"),
            (
                "&lt;&amp;&#65;&#x42;&nbsp;&#0;",
                "&lt;&amp;&#65;&#x42;&amp;nbsp;&amp;#0;",
            ),
            (
                "<a href='https://x.test/?a=1&b=2'>l</a>",
                "<a href=\"https://x.test/?a=1&amp;b=2\">l</a>",
            ),
            ("<a href=\"javascript:x\">l</a>", "l"),
            ("<a>l</a>", "l"),
            ("<code><b>x</b></code>", "<code>&lt;b&gt;x&lt;/b&gt;</code>"),
            (
                "<pre><code class=\"language-rust\">fn</code></pre>",
                "<pre><code class=\"language-rust\">fn</code></pre>",
            ),
            (
                "<a href=\"http://a\"><a href=\"http://b\">x</a></a>",
                "<a href=\"http://a\">x</a>",
            ),
            (
                "<span class=\"tg-spoiler\">s</span><span>t</span>",
                "<span class=\"tg-spoiler\">s</span>t",
            ),
            ("<b onclick=\"x\">y</b>", "<b>y</b>"),
            ("a <b", "a &lt;b"),
        ];
        for (input, want) in cases {
            assert_eq!(sanitize_html(input), want, "input {input:?}");
        }
        assert_eq!(html_to_plain("<b>a &lt; b</b> &amp; &#65;"), "a < b & A");
    }

    #[test]
    fn splits_at_newlines_and_reopens_formatting() {
        let line = "x".repeat(30);
        let text = format!("<b>{line}\n{line}\n{line}\n{line}</b>");
        let chunks = split_html(&text, 80);
        assert!(chunks.len() >= 2, "{chunks:?}");
        for c in &chunks {
            assert!(len16(c) <= 80, "{c:?}");
            assert!(c.starts_with("<b>") && c.ends_with("</b>"), "{c:?}");
        }
        let joined: String = chunks.iter().map(|c| html_to_plain(c)).collect();
        assert_eq!(joined, html_to_plain(&text));
        // Short text: one chunk, unchanged.
        assert_eq!(split_html("<i>hi</i>", 4096), vec!["<i>hi</i>"]);
        // Only whitespace: nothing to send.
        assert!(split_html(" \n<b> </b>", 4096).is_empty());
    }

    #[test]
    fn splits_plain_text() {
        let text = format!("{}\n{}", "a".repeat(50), "b".repeat(50));
        assert_eq!(
            split_plain(&text, 64),
            vec![format!("{}\n", "a".repeat(50)), "b".repeat(50)]
        );
        // Surrogate pairs count 2 and are never cut.
        let emoji = "😀".repeat(100);
        let chunks = split_plain(&emoji, 64);
        assert!(chunks.iter().all(|c| len16(c) <= 64));
        assert_eq!(chunks.concat(), emoji);
    }
}
