//! Conditional GETs for pollers: an `ETag` (a strong validator, the MD5 of
//! the body) on answers that list alerts, and `If-None-Match` answered with
//! `304 Not Modified` and no body when the client's copy is current
//! (RFC 9110 section 13.1.2: `*` or a list of tags, weak comparison).
//!
//! The body is still built (it is the state); what a poller saves is the
//! transfer and its own parsing. Only for 200 answers.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use md5::{Digest, Md5};

/// Bodies larger than this are served without an ETag rather than
/// buffered twice (the alert lists are far smaller).
const MAX_TAGGED_BODY: usize = 64 << 20;

/// The strong entity tag of `body`, quoted.
pub(crate) fn tag_of(body: &[u8]) -> String {
    let d = Md5::digest(body);
    let mut s = String::with_capacity(34);
    s.push('"');
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s.push('"');
    s
}

/// The opaque tags of an `If-None-Match` value (without `W/` and quotes);
/// `None` for `*`. Malformed members are skipped: a header that names no
/// valid tag matches nothing, and the full answer is sent.
fn parse_if_none_match(v: &str) -> Option<Vec<&str>> {
    if v.trim() == "*" {
        return None;
    }
    let mut out = Vec::new();
    let mut rest = v;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let r = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(r) = r.strip_prefix('"') else {
            // Skip to the next member.
            match rest.find(',') {
                Some(i) => {
                    rest = &rest[i..];
                    continue;
                }
                None => break,
            }
        };
        // etagc excludes DQUOTE, so the tag ends at the next quote (it
        // may contain commas).
        match r.find('"') {
            Some(i) => {
                out.push(&r[..i]);
                rest = &r[i + 1..];
            }
            None => break,
        }
    }
    Some(out)
}

/// Whether `If-None-Match` in `req` matches `tag` (quoted).
fn matches(req: &HeaderMap, tag: &str) -> bool {
    let opaque = tag.trim_matches('"');
    req.get_all(header::IF_NONE_MATCH).iter().any(|v| {
        v.to_str()
            .ok()
            .map(parse_if_none_match)
            .is_some_and(|tags| tags.is_none_or(|t| t.contains(&opaque)))
    })
}

/// Adds an `ETag` to a 200 answer, or answers 304 when `req`'s
/// `If-None-Match` matches it.
pub(crate) async fn conditional(req: &HeaderMap, resp: Response) -> Response {
    if resp.status() != StatusCode::OK {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_TAGGED_BODY).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the answer is too large to tag: narrow the request with filters\n",
        )
            .into_response();
    };
    let tag = tag_of(&bytes);
    let Ok(value) = HeaderValue::from_str(&tag) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    // Pollers must revalidate rather than reuse a stored copy.
    parts
        .headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    parts.headers.insert(header::ETAG, value);
    if matches(req, &tag) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        // RFC 9110 15.4.5: a 304 carries the validators and cache headers
        // a 200 would have, and no content headers.
        for h in [header::ETAG, header::CACHE_CONTROL, header::VARY] {
            if let Some(v) = parts.headers.get(&h) {
                r.headers_mut().insert(h, v.clone());
            }
        }
        return r;
    }
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn if_none_match_forms() {
        let tag = "\"abc\"";
        assert!(matches(&req("\"abc\""), tag));
        assert!(matches(&req("W/\"abc\""), tag), "weak comparison");
        assert!(matches(&req("\"x\", \"abc\""), tag));
        assert!(
            matches(&req("\"x,y\",W/\"abc\""), tag),
            "comma inside a tag"
        );
        assert!(matches(&req("*"), tag));
        assert!(!matches(&req("\"abcd\""), tag));
        assert!(!matches(&req("abc"), tag), "unquoted is not a tag");
        assert!(!matches(&req("\"abc"), tag), "unterminated");
        assert!(!matches(&HeaderMap::new(), tag));
    }

    #[tokio::test]
    async fn answers_304_without_body() {
        let body = "{\"a\":1}";
        let ok = conditional(&HeaderMap::new(), body.into_response()).await;
        assert_eq!(ok.status(), StatusCode::OK);
        let tag = ok.headers()[header::ETAG].to_str().unwrap().to_string();
        assert_eq!(tag, tag_of(body.as_bytes()));
        let nm = conditional(&req(&tag), body.into_response()).await;
        assert_eq!(nm.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(nm.headers()[header::ETAG], tag.as_str());
        let b = axum::body::to_bytes(nm.into_body(), 1024).await.unwrap();
        assert!(b.is_empty());
        let other = conditional(&req(&tag), "{\"a\":2}".into_response()).await;
        assert_eq!(other.status(), StatusCode::OK);
        let err = conditional(&req("*"), (StatusCode::BAD_REQUEST, "no").into_response()).await;
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(err.headers().get(header::ETAG).is_none());
    }
}
