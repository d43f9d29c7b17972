//! The silence store: create, update, expire, list and garbage-collect
//! silences with Alertmanager's rules, and answer which silences mute an
//! alert at a given time.
//!
//! Built on [`super::silence`] (validation, states, which edits may change
//! a silence in place). What this adds is Alertmanager's `Set`: posting a
//! silence with an id updates it in place when allowed, and otherwise
//! expires it and creates a new one with a fresh id; a new silence never
//! starts in the past; an expired silence is kept for `retention` (five
//! days, Alertmanager's default) so it can still be listed, then dropped.
//!
//! Fourth stage of the pipeline (with time intervals). Persistence is the
//! manager's job (through `journal`): every change returns the silences
//! it touched. Pure: `now` is an argument.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::model::{Labels, MatchOp, Matcher, Timestamp};

use super::silence::{Silence, SilenceError, SilenceMatcher, SilenceState, check_posted};

/// How long an expired silence is kept (Alertmanager's `--data.retention`
/// default).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(5 * 24 * 3600);

/// Most silences that may be pending or active at once.
pub const DEFAULT_MAX_SILENCES: usize = 10_000;

/// A silence as posted to the API.
#[derive(Debug, Clone, PartialEq)]
pub struct PostedSilence {
    /// Set to update an existing silence.
    pub id: Option<String>,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub created_by: String,
    pub comment: String,
}

/// A silence change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilencesError {
    #[error("silence {0} not found")]
    NotFound(String),
    /// The API's checks on a posted window (Alertmanager's wording).
    #[error("Failed to create silence: {0}")]
    Window(SilenceError),
    /// The silence itself is invalid (Alertmanager's wording).
    #[error("silence invalid: {0}")]
    Invalid(SilenceError),
    #[error("too many silences: {limit} are pending or active; expire some before adding more")]
    TooMany { limit: usize },
}

/// What a successful post did.
#[derive(Debug, Clone, PartialEq)]
pub struct SetOutcome {
    /// The id of the silence now in effect.
    pub id: String,
    /// Every silence that changed (an expired predecessor, then the new or
    /// updated one), to be persisted.
    pub changed: Vec<Silence>,
}

/// The silences.
#[derive(Debug)]
pub struct Silences {
    by_id: HashMap<String, Silence>,
    retention: Duration,
    max: usize,
}

impl Default for Silences {
    fn default() -> Self {
        Silences::new(DEFAULT_RETENTION, DEFAULT_MAX_SILENCES)
    }
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl Silences {
    pub fn new(retention: Duration, max: usize) -> Self {
        Silences {
            by_id: HashMap::new(),
            retention,
            max,
        }
    }

    /// Alertmanager's `Set` for a silence posted at `now`.
    pub fn set(&mut self, p: PostedSilence, now: Timestamp) -> Result<SetOutcome, SilencesError> {
        check_posted(p.starts_at, p.ends_at, now).map_err(SilencesError::Window)?;
        let mut changed = Vec::new();
        if let Some(id) = p.id.as_deref().filter(|s| !s.is_empty()) {
            let Some(prev) = self.by_id.get(id) else {
                return Err(SilencesError::NotFound(id.to_string()));
            };
            let candidate = Silence::new(
                id,
                p.matchers.clone(),
                p.starts_at,
                p.ends_at,
                now,
                p.created_by.clone(),
                p.comment.clone(),
            )
            .map_err(SilencesError::Invalid)?;
            if prev.can_update(&candidate, now) {
                self.by_id.insert(id.to_string(), candidate.clone());
                return Ok(SetOutcome {
                    id: id.to_string(),
                    changed: vec![candidate],
                });
            }
            if prev.state(now) != SilenceState::Expired {
                let mut old = prev.clone();
                // Cannot fail: the state was just checked.
                let _ = old.expire(now);
                changed.push(old);
            }
        }
        if self.count_unexpired(now) >= self.max {
            return Err(SilencesError::TooMany { limit: self.max });
        }
        let s = Silence::new(
            new_id(),
            p.matchers,
            p.starts_at.max(now),
            p.ends_at,
            now,
            p.created_by,
            p.comment,
        )
        .map_err(SilencesError::Invalid)?;
        for c in &changed {
            self.by_id.insert(c.id.clone(), c.clone());
        }
        self.by_id.insert(s.id.clone(), s.clone());
        let id = s.id.clone();
        changed.push(s);
        Ok(SetOutcome { id, changed })
    }

    /// Expires silence `id` at `now`. `Ok(None)` when it already expired
    /// (nothing changes, as Alertmanager 0.25 answers).
    pub fn expire(&mut self, id: &str, now: Timestamp) -> Result<Option<Silence>, SilencesError> {
        let Some(s) = self.by_id.get_mut(id) else {
            return Err(SilencesError::NotFound(id.to_string()));
        };
        match s.expire(now) {
            Ok(()) => Ok(Some(s.clone())),
            Err(_) => Ok(None),
        }
    }

    /// Puts back a silence read from disk.
    pub fn restore(&mut self, s: Silence) {
        self.by_id.insert(s.id.clone(), s);
    }

    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Silence> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The silences active at `now`.
    pub fn active(&self, now: Timestamp) -> Vec<&Silence> {
        self.by_id
            .values()
            .filter(|s| s.state(now) == SilenceState::Active)
            .collect()
    }

    /// The ids (sorted) of the silences that mute `labels` at `now`.
    pub fn mutes(&self, labels: &Labels, now: Timestamp) -> Vec<String> {
        let mut ids: Vec<String> = self
            .by_id
            .values()
            .filter(|s| s.mutes(labels, now))
            .map(|s| s.id.clone())
            .collect();
        ids.sort_unstable();
        ids
    }

    fn count_unexpired(&self, now: Timestamp) -> usize {
        self.by_id
            .values()
            .filter(|s| s.state(now) != SilenceState::Expired)
            .count()
    }

    /// How many silences are (active, pending, expired) at `now`.
    pub fn counts(&self, now: Timestamp) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for s in self.by_id.values() {
            match s.state(now) {
                SilenceState::Active => c.0 += 1,
                SilenceState::Pending => c.1 += 1,
                SilenceState::Expired => c.2 += 1,
            }
        }
        c
    }

    /// Drops silences that expired more than `retention` before `now`;
    /// returns their ids.
    pub fn gc(&mut self, now: Timestamp) -> Vec<String> {
        let keep = ms(self.retention);
        let gone: Vec<String> = self
            .by_id
            .values()
            .filter(|s| s.ends_at.saturating_add(keep) <= now)
            .map(|s| s.id.clone())
            .collect();
        for id in &gone {
            self.by_id.remove(id);
        }
        gone
    }
}

/// Whether a silence passes an API `filter`: every filter matcher must
/// equal one of the silence's matchers (same name, operator and value), as
/// Alertmanager checks it.
pub fn matches_filter(s: &Silence, filter: &[Matcher]) -> bool {
    filter.iter().all(|f| {
        s.matchers
            .iter()
            .any(|m| m.name == f.name && m.op() == f.op && m.value == f.value)
    })
}

/// Alertmanager's listing order: active (soonest to end first), pending
/// (soonest to start first), expired (most recently ended first).
pub fn sort_for_listing(v: &mut [&Silence], now: Timestamp) {
    let rank = |s: &Silence| match s.state(now) {
        SilenceState::Active => 0,
        SilenceState::Pending => 1,
        SilenceState::Expired => 2,
    };
    v.sort_by(|a, b| {
        let (ra, rb) = (rank(a), rank(b));
        if ra != rb {
            return ra.cmp(&rb);
        }
        match ra {
            0 => a.ends_at.cmp(&b.ends_at),
            1 => a.starts_at.cmp(&b.starts_at),
            _ => b.ends_at.cmp(&a.ends_at),
        }
    });
}

/// A matcher as a silence matcher (for filters and amtool's syntax).
pub fn silence_matcher(m: &Matcher) -> SilenceMatcher {
    SilenceMatcher {
        name: m.name.clone(),
        value: m.value.clone(),
        is_regex: matches!(m.op, MatchOp::Regex | MatchOp::NotRegex),
        is_equal: matches!(m.op, MatchOp::Equal | MatchOp::Regex),
    }
}

static ID_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A random (version 4) UUID, as Alertmanager gives silences. The bits come
/// from std's randomly keyed hasher (seeded by the operating system once
/// per process) over a counter, which is unpredictable enough for ids that
/// only have to be unique.
pub fn new_id() -> String {
    let n = ID_COUNTER.fetch_add(1, Ordering::Relaxed);
    let word = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(salt);
        h.finish()
    };
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&word(0x5117_e0ce).to_le_bytes());
    b[8..].copy_from_slice(&word(0xa1e7_0000).to_le_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Whether `s` has the shape of a UUID (`8-4-4-4-12` hex digits), which
/// Alertmanager's API requires of silence ids in paths.
pub fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn m(name: &str, value: &str) -> SilenceMatcher {
        SilenceMatcher {
            name: name.into(),
            value: value.into(),
            is_regex: false,
            is_equal: true,
        }
    }

    fn post(
        id: Option<&str>,
        ms: Vec<SilenceMatcher>,
        s: Timestamp,
        e: Timestamp,
    ) -> PostedSilence {
        PostedSilence {
            id: id.map(str::to_string),
            matchers: ms,
            starts_at: s,
            ends_at: e,
            created_by: "me".into(),
            comment: "maintenance".into(),
        }
    }

    #[test]
    fn create_update_replace_expire() {
        let mut st = Silences::default();
        let now = 1_000_000;
        // Starts in the past: moved to now.
        let out = st
            .set(post(None, vec![m("job", "api")], 10, now + 3_600_000), now)
            .unwrap();
        assert!(is_uuid(&out.id), "{}", out.id);
        let s = st.get(&out.id).unwrap().clone();
        assert_eq!((s.starts_at, s.updated_at), (now, now));
        assert_eq!(out.changed, vec![s.clone()]);
        let labels = Labels::from_pairs([("job", "api")]);
        assert_eq!(st.mutes(&labels, now), vec![out.id.clone()]);

        // Same matchers, same start, later end: updated in place.
        let later = now + 1_000;
        let up = st
            .set(
                post(Some(&out.id), vec![m("job", "api")], now, now + 7_200_000),
                later,
            )
            .unwrap();
        assert_eq!(up.id, out.id);
        assert_eq!(st.get(&out.id).unwrap().ends_at, now + 7_200_000);
        assert_eq!(st.len(), 1);

        // Different matchers: the old one expires, a new one replaces it.
        let rep = st
            .set(
                post(Some(&out.id), vec![m("job", "web")], now, now + 7_200_000),
                later,
            )
            .unwrap();
        assert_ne!(rep.id, out.id);
        assert_eq!(rep.changed.len(), 2);
        assert_eq!(st.get(&out.id).unwrap().state(later), SilenceState::Expired);
        assert!(st.mutes(&labels, later).is_empty());
        assert_eq!(st.counts(later), (1, 0, 1));

        // Expire: once, then a no-op.
        assert!(st.expire(&rep.id, later).unwrap().is_some());
        assert!(st.expire(&rep.id, later + 1).unwrap().is_none());
        assert_eq!(
            st.expire("nope", later).unwrap_err().to_string(),
            "silence nope not found"
        );
    }

    #[test]
    fn refusals_carry_alertmanagers_messages() {
        let mut st = Silences::default();
        let now = 1_000_000;
        let cases = [
            (
                post(None, vec![m("a", "b")], now, now),
                "Failed to create silence: start time must be before end time",
            ),
            (
                post(None, vec![m("a", "b")], 1, now - 1),
                "Failed to create silence: end time can't be in the past",
            ),
            (
                post(None, vec![m("a", "")], now, now + 1),
                "silence invalid: at least one matcher must not match the empty string",
            ),
            (
                post(None, vec![], now, now + 1),
                "silence invalid: at least one matcher required",
            ),
            (
                post(
                    Some("00000000-0000-4000-8000-000000000000"),
                    vec![m("a", "b")],
                    now,
                    now + 1,
                ),
                "silence 00000000-0000-4000-8000-000000000000 not found",
            ),
        ];
        for (p, want) in cases {
            assert_eq!(st.set(p, now).unwrap_err().to_string(), want);
        }
        assert!(st.is_empty());
        let mut small = Silences::new(DEFAULT_RETENTION, 1);
        small
            .set(post(None, vec![m("a", "b")], now, now + 10), now)
            .unwrap();
        assert!(matches!(
            small.set(post(None, vec![m("a", "c")], now, now + 10), now),
            Err(SilencesError::TooMany { limit: 1 })
        ));
    }

    #[test]
    fn gc_after_retention_and_listing_order() {
        let mut st = Silences::new(Duration::from_secs(10), 100);
        let now = 1_000_000;
        let a = st
            .set(post(None, vec![m("a", "1")], now, now + 5_000), now)
            .unwrap()
            .id;
        let b = st
            .set(post(None, vec![m("a", "2")], now, now + 2_000), now)
            .unwrap()
            .id;
        let c = st
            .set(post(None, vec![m("a", "3")], now + 9_000, now + 9_500), now)
            .unwrap()
            .id;
        let d = st
            .set(post(None, vec![m("a", "4")], now + 8_000, now + 9_500), now)
            .unwrap()
            .id;
        let mut v: Vec<&Silence> = st.iter().collect();
        sort_for_listing(&mut v, now + 1);
        let ids: Vec<&str> = v.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, [b.as_str(), a.as_str(), d.as_str(), c.as_str()]);
        // At 7s, a and b expired; b ended earlier so it lists last.
        let mut v: Vec<&Silence> = st.iter().collect();
        sort_for_listing(&mut v, now + 7_000);
        let ids: Vec<&str> = v.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, [d.as_str(), c.as_str(), a.as_str(), b.as_str()]);
        assert!(st.gc(now + 11_999).is_empty());
        assert_eq!(st.gc(now + 12_000), vec![b]);
        assert_eq!(st.len(), 3);
    }

    #[test]
    fn filters_compare_matchers_exactly() {
        let mut st = Silences::default();
        let now = 1_000;
        let mut re = m("instance", "b|c");
        re.is_regex = true;
        let id = st
            .set(
                post(None, vec![m("alertname", "Disk"), re], now, now + 10),
                now,
            )
            .unwrap()
            .id;
        let s = st.get(&id).unwrap();
        let f = |txt: &str| crate::config::notify::parse_matchers(txt).unwrap();
        assert!(matches_filter(s, &f("alertname=Disk")));
        assert!(matches_filter(s, &f(r#"instance=~"b|c",alertname="Disk""#)));
        assert!(!matches_filter(s, &f("instance=~b.*")));
        assert!(!matches_filter(s, &f("instance=b|c")));
        assert!(!matches_filter(s, &f("job=x")));
        assert!(matches_filter(s, &[]));
    }

    #[test]
    fn ids_are_uuids_and_unique() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(5) {
            assert!(is_uuid(id));
            assert_eq!(&id[14..15], "4");
        }
        assert!(!is_uuid("zzz"));
        assert!(!is_uuid("1725936d-59bd-476a-b121-f35d1e66d5a"));
    }
}
