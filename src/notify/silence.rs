//! Silences as Alertmanager's API v2 models them: an id, matchers
//! (`isEqual` / `isRegex`), a time window, who created it and why. A
//! silence mutes every alert its matchers match while it is active.
//!
//! This module owns the pure rules: validation with Alertmanager's
//! messages, the state at a given time (pending before `startsAt`, active
//! until `endsAt`, then expired), matching, which edits may change a
//! silence in place and how expiring moves its times. Storage,
//! persistence and the HTTP API build on it; time is always an argument.
//!
//! Fourth stage of the pipeline (with time intervals), after inhibition.

use std::fmt;

use crate::model::{Labels, MatchOp, Matcher, Timestamp};

/// One matcher of a silence, in API v2's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    /// `false` negates (`!=`, `!~`). API v2 defaults it to true.
    pub is_equal: bool,
}

impl SilenceMatcher {
    pub fn op(&self) -> MatchOp {
        match (self.is_regex, self.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        }
    }

    /// From a label matcher (e.g. parsed from amtool's `name=~"re"` form).
    pub fn from_matcher(m: &Matcher) -> Self {
        SilenceMatcher {
            name: m.name.clone(),
            value: m.value.clone(),
            is_regex: matches!(m.op, MatchOp::Regex | MatchOp::NotRegex),
            is_equal: matches!(m.op, MatchOp::Equal | MatchOp::Regex),
        }
    }
}

/// Where a silence is in its life at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SilenceState {
    /// `now < startsAt`.
    Pending,
    /// `startsAt <= now < endsAt`: mutes matching alerts.
    Active,
    /// `endsAt <= now`.
    Expired,
}

impl SilenceState {
    /// As API v2 spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

impl fmt::Display for SilenceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A silence could not be created, changed or expired. The texts are
/// Alertmanager's, so API clients see the same messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    #[error("ID missing")]
    MissingId,
    #[error("at least one matcher required")]
    NoMatchers,
    #[error("invalid label matcher {index}: {reason}")]
    InvalidMatcher { index: usize, reason: String },
    #[error("at least one matcher must not match the empty string")]
    AllMatchEmpty,
    #[error("invalid zero start timestamp")]
    ZeroStart,
    #[error("invalid zero end timestamp")]
    ZeroEnd,
    #[error("end time must not be before start time")]
    EndBeforeStart,
    /// API v2's check on a posted silence.
    #[error("start time must be before end time")]
    StartNotBeforeEnd,
    /// API v2's check on a posted silence.
    #[error("end time can't be in the past")]
    EndInPast,
    #[error("silence {0} already expired")]
    AlreadyExpired(String),
}

/// A validated silence.
#[derive(Debug, Clone)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    /// Milliseconds since the epoch, as everywhere in watchpost.
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    /// When the silence was created or last changed.
    pub updated_at: Timestamp,
    pub created_by: String,
    pub comment: String,
    compiled: Vec<Matcher>,
}

impl PartialEq for Silence {
    fn eq(&self, o: &Self) -> bool {
        self.id == o.id
            && self.matchers == o.matchers
            && self.starts_at == o.starts_at
            && self.ends_at == o.ends_at
            && self.updated_at == o.updated_at
            && self.created_by == o.created_by
            && self.comment == o.comment
    }
}

impl Silence {
    /// Validates like Alertmanager's silence store: an id, at least one
    /// matcher, valid names and regexes, at least one matcher that does
    /// not match the empty string (a silence must not mute everything),
    /// non-zero times and `endsAt` not before `startsAt`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: impl Into<String>,
        matchers: Vec<SilenceMatcher>,
        starts_at: Timestamp,
        ends_at: Timestamp,
        updated_at: Timestamp,
        created_by: impl Into<String>,
        comment: impl Into<String>,
    ) -> Result<Silence, SilenceError> {
        let id = id.into();
        if id.is_empty() {
            return Err(SilenceError::MissingId);
        }
        if matchers.is_empty() {
            return Err(SilenceError::NoMatchers);
        }
        let mut compiled = Vec::with_capacity(matchers.len());
        for (index, m) in matchers.iter().enumerate() {
            if m.name.is_empty() {
                return Err(SilenceError::InvalidMatcher {
                    index,
                    reason: format!("invalid label name {:?}", m.name),
                });
            }
            let c = Matcher::new(m.op(), m.name.clone(), m.value.clone()).map_err(|e| {
                SilenceError::InvalidMatcher {
                    index,
                    reason: format!(
                        "invalid regular expression {:?}: {}",
                        e.pattern,
                        crate::config::notify::regex_reason(&e.reason)
                    ),
                }
            })?;
            compiled.push(c);
        }
        if compiled.iter().all(Matcher::matches_empty) {
            return Err(SilenceError::AllMatchEmpty);
        }
        if starts_at == 0 {
            return Err(SilenceError::ZeroStart);
        }
        if ends_at == 0 {
            return Err(SilenceError::ZeroEnd);
        }
        if ends_at < starts_at {
            return Err(SilenceError::EndBeforeStart);
        }
        Ok(Silence {
            id,
            matchers,
            starts_at,
            ends_at,
            updated_at,
            created_by: created_by.into(),
            comment: comment.into(),
            compiled,
        })
    }

    /// The state at `now`.
    pub fn state(&self, now: Timestamp) -> SilenceState {
        state_of(self.starts_at, self.ends_at, now)
    }

    /// Whether every matcher matches `labels` (whatever the state).
    pub fn matches(&self, labels: &Labels) -> bool {
        self.compiled
            .iter()
            .all(|m| m.matches(labels.get_or_empty(&m.name)))
    }

    /// Whether the silence mutes an alert with `labels` at `now`.
    pub fn mutes(&self, labels: &Labels, now: Timestamp) -> bool {
        self.state(now) == SilenceState::Active && self.matches(labels)
    }

    /// The compiled matchers.
    pub fn label_matchers(&self) -> &[Matcher] {
        &self.compiled
    }

    /// Whether `new` (same id) may replace this silence in place at `now`
    /// (Alertmanager's rule): the matchers are unchanged and, when active,
    /// the start is unchanged and the end not in the past; when pending,
    /// the new start is not in the past; an expired silence never changes.
    /// Otherwise the edit creates a new silence and this one is expired.
    pub fn can_update(&self, new: &Silence, now: Timestamp) -> bool {
        if self.matchers != new.matchers {
            return false;
        }
        match self.state(now) {
            SilenceState::Active => new.starts_at == self.starts_at && new.ends_at >= now,
            SilenceState::Pending => new.starts_at >= now,
            SilenceState::Expired => false,
        }
    }

    /// Ends the silence at `now`: an active one ends now, a pending one
    /// starts and ends now (so it is expired, never active), an expired
    /// one is an error.
    pub fn expire(&mut self, now: Timestamp) -> Result<(), SilenceError> {
        match self.state(now) {
            SilenceState::Expired => return Err(SilenceError::AlreadyExpired(self.id.clone())),
            SilenceState::Active => self.ends_at = now,
            SilenceState::Pending => {
                self.starts_at = now;
                self.ends_at = now;
            }
        }
        self.updated_at = now;
        Ok(())
    }
}

/// State of a window `[starts_at, ends_at)` at `now`.
pub fn state_of(starts_at: Timestamp, ends_at: Timestamp, now: Timestamp) -> SilenceState {
    if now < starts_at {
        SilenceState::Pending
    } else if now < ends_at {
        SilenceState::Active
    } else {
        SilenceState::Expired
    }
}

/// API v2's checks on a silence being posted, beyond [`Silence::new`]'s:
/// it must end after it starts and must not end in the past.
pub fn check_posted(
    starts_at: Timestamp,
    ends_at: Timestamp,
    now: Timestamp,
) -> Result<(), SilenceError> {
    if starts_at >= ends_at {
        return Err(SilenceError::StartNotBeforeEnd);
    }
    if ends_at < now {
        return Err(SilenceError::EndInPast);
    }
    Ok(())
}

/// The ids of the silences that mute `labels` at `now`, in input order.
pub fn silenced_by<'a>(
    silences: impl IntoIterator<Item = &'a Silence>,
    labels: &Labels,
    now: Timestamp,
) -> Vec<&'a str> {
    silences
        .into_iter()
        .filter(|s| s.mutes(labels, now))
        .map(|s| s.id.as_str())
        .collect()
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn m(name: &str, value: &str, is_regex: bool, is_equal: bool) -> SilenceMatcher {
        SilenceMatcher {
            name: name.into(),
            value: value.into(),
            is_regex,
            is_equal,
        }
    }

    fn sil(
        ms: Vec<SilenceMatcher>,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Silence, SilenceError> {
        Silence::new("id-1", ms, start, end, start, "me", "maintenance")
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn validation_matches_alertmanager() {
        let ok = vec![m("job", "api", false, true)];
        let cases: Vec<(Result<Silence, SilenceError>, &str)> = vec![
            (Silence::new("", ok.clone(), 1, 2, 1, "", ""), "ID missing"),
            (sil(vec![], 1, 2), "at least one matcher required"),
            (
                sil(vec![m("", "x", false, true)], 1, 2),
                "invalid label matcher 0: invalid label name \"\"",
            ),
            (
                sil(
                    vec![m("job", "api", false, true), m("x", "(", true, true)],
                    1,
                    2,
                ),
                "invalid label matcher 1: invalid regular expression \"(\"",
            ),
            (
                sil(
                    vec![m("job", ".*", true, true), m("x", "", false, true)],
                    1,
                    2,
                ),
                "at least one matcher must not match the empty string",
            ),
            (sil(ok.clone(), 0, 2), "invalid zero start timestamp"),
            (sil(ok.clone(), 1, 0), "invalid zero end timestamp"),
            (
                sil(ok.clone(), 5, 2),
                "end time must not be before start time",
            ),
        ];
        for (got, want) in cases {
            let e = got.expect_err(want).to_string();
            assert!(e.starts_with(want), "got {e:?}, want {want:?}");
        }
        // A negative matcher that does not match "" is enough.
        assert!(sil(vec![m("job", "", false, false)], 1, 2).is_ok());
        assert_eq!(
            check_posted(10, 10, 5).unwrap_err().to_string(),
            "start time must be before end time"
        );
        assert_eq!(
            check_posted(1, 4, 5).unwrap_err().to_string(),
            "end time can't be in the past"
        );
        assert!(check_posted(1, 5, 5).is_ok());
    }

    #[test]
    fn state_follows_the_window() {
        let s = sil(vec![m("a", "b", false, true)], 100, 200).unwrap();
        for (now, want) in [
            (99, SilenceState::Pending),
            (100, SilenceState::Active),
            (199, SilenceState::Active),
            (200, SilenceState::Expired),
        ] {
            assert_eq!(s.state(now), want, "at {now}");
        }
        assert_eq!(SilenceState::Active.as_str(), "active");
    }

    #[test]
    fn matchers_of_every_kind() {
        let s = sil(
            vec![
                m("alertname", "Disk.*", true, true),
                m("env", "dev", false, false),
                m("team", "a|b", true, false),
                m("dc", "x", false, true),
            ],
            1,
            100,
        )
        .unwrap();
        let yes = labels(&[
            ("alertname", "DiskFull"),
            ("env", "prod"),
            ("team", "c"),
            ("dc", "x"),
        ]);
        assert!(s.matches(&yes) && s.mutes(&yes, 50));
        assert!(!s.mutes(&yes, 100));
        for no in [
            labels(&[("alertname", "CpuHigh"), ("env", "prod"), ("dc", "x")]),
            labels(&[("alertname", "DiskFull"), ("env", "dev"), ("dc", "x")]),
            labels(&[("alertname", "DiskFull"), ("team", "a"), ("dc", "x")]),
            labels(&[("alertname", "DiskFull")]),
        ] {
            assert!(!s.matches(&no), "{no:?}");
        }
        let ids = silenced_by([&s], &yes, 10);
        assert_eq!(ids, ["id-1"]);
        let back = SilenceMatcher::from_matcher(&s.label_matchers()[2]);
        assert_eq!(back, m("team", "a|b", true, false));
    }

    #[test]
    fn updates_and_expiry_like_alertmanager() {
        let ms = vec![m("a", "b", false, true)];
        let active = sil(ms.clone(), 100, 200).unwrap();
        let now = 150;
        // Active: extend or shorten the end, keep the start.
        assert!(active.can_update(&sil(ms.clone(), 100, 300).unwrap(), now));
        assert!(active.can_update(&sil(ms.clone(), 100, 150).unwrap(), now));
        assert!(!active.can_update(&sil(ms.clone(), 120, 300).unwrap(), now));
        assert!(!active.can_update(&sil(ms.clone(), 100, 140).unwrap(), now));
        let other = vec![m("a", "c", false, true)];
        assert!(!active.can_update(&sil(other, 100, 300).unwrap(), now));
        // Pending: any start not in the past.
        let pending = sil(ms.clone(), 500, 600).unwrap();
        assert!(pending.can_update(&sil(ms.clone(), 400, 600).unwrap(), now));
        assert!(!pending.can_update(&sil(ms.clone(), 140, 600).unwrap(), now));
        // Expired: never.
        assert!(!active.can_update(&sil(ms.clone(), 100, 300).unwrap(), 250));

        let mut a = active.clone();
        a.expire(now).unwrap();
        assert_eq!((a.starts_at, a.ends_at, a.updated_at), (100, 150, 150));
        assert_eq!(a.state(now), SilenceState::Expired);
        let mut p = pending.clone();
        p.expire(now).unwrap();
        assert_eq!((p.starts_at, p.ends_at), (150, 150));
        assert_eq!(p.state(now), SilenceState::Expired);
        assert_eq!(
            a.expire(now + 1).unwrap_err().to_string(),
            "silence id-1 already expired"
        );
    }
}
