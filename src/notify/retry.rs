//! Retry of failed deliveries: exponential backoff with jitter, bounded by
//! a deadline, honouring the peer's `retry_after`.
//!
//! The one place in watchpost where a delivery is retried (STYLE rule 8):
//! channels return a classified [`SendError`]; a permanent error (4xx other
//! than 429, bad credentials, an unreadable `*_file`) is never retried; a
//! retryable one (timeouts, refused connections, 429, 5xx) is tried again
//! after `initial * 2^attempt` (capped at `max`), jittered to between half
//! and all of that so integrations that failed together do not retry in
//! lockstep, or after exactly the `retry_after` the peer asked for. A retry
//! that would start after the notification's deadline is not made.
//!
//! Part of the send stage; the delivery lanes in `manager` sleep for what
//! [`next_attempt`] says. Pure: time and the jitter seed are arguments.

use std::time::Duration;

use crate::model::Timestamp;

use super::SendError;

/// How failed deliveries are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Wait before the first retry.
    pub initial: Duration,
    /// Longest wait between two attempts (Alertmanager: one minute).
    pub max: Duration,
    /// How long a queued notification is tried at least; the deadline of a
    /// notification is its acceptance time plus the larger of this and its
    /// route's `repeat_interval` (by then the group's repeat would send the
    /// current state anyway).
    pub min_deadline: Duration,
    /// Longest one attempt may take before it counts as a retryable
    /// timeout (a safety net over the channel's own timeouts).
    pub attempt_timeout: Duration,
    /// Longest `retry_after` honoured; a peer asking for more is retried
    /// after this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            min_deadline: Duration::from_secs(10 * 60),
            attempt_timeout: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Try again after this long.
    RetryIn(Duration),
    /// Stop: the notification failed for good, with this reason word.
    GiveUp(&'static str),
}

/// A notification's deadline: accepted at `accepted`, for a route with
/// `repeat_interval`.
pub fn deadline(policy: &RetryPolicy, accepted: Timestamp, repeat_interval: Duration) -> Timestamp {
    let d = policy.min_deadline.max(repeat_interval);
    accepted.saturating_add(d.as_millis().min(i64::MAX as u128) as i64)
}

/// The backoff before retry number `attempt` (0 = the first retry), with
/// jitter drawn from `seed`.
pub fn backoff(policy: &RetryPolicy, attempt: u32, seed: u64) -> Duration {
    let exp = policy
        .initial
        .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(policy.max)
        .min(policy.max);
    // Equal jitter: half fixed, half random.
    let half = exp / 2;
    let frac = (mix(seed ^ u64::from(attempt)) >> 11) as f64 / (1u64 << 53) as f64;
    half + half.mul_f64(frac)
}

/// What follows a failed attempt `attempt` (0-based) at `now` for a
/// notification due by `deadline`.
pub fn next_attempt(
    policy: &RetryPolicy,
    err: &SendError,
    attempt: u32,
    now: Timestamp,
    deadline: Timestamp,
    seed: u64,
) -> Next {
    if !err.is_retryable() {
        return Next::GiveUp(err.reason());
    }
    let wait = match err.retry_after() {
        Some(ra) => ra.min(policy.max_retry_after),
        None => backoff(policy, attempt, seed),
    };
    let at = now.saturating_add(wait.as_millis().min(i64::MAX as u128) as i64);
    if at > deadline {
        return Next::GiveUp("deadline_exceeded");
    }
    Next::RetryIn(wait)
}

/// SplitMix64's finalizer: a well-spread 64-bit hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_jittered_and_capped() {
        let p = RetryPolicy::default();
        for attempt in 0..12 {
            let full = (p.initial * 2u32.pow(attempt)).min(p.max);
            for seed in 0..50 {
                let d = backoff(&p, attempt, seed);
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt}: {d:?} vs {full:?}"
                );
            }
        }
        // Jitter actually varies.
        let ds: std::collections::HashSet<Duration> = (0..20).map(|s| backoff(&p, 3, s)).collect();
        assert!(ds.len() > 10);
        assert!(backoff(&p, 1000, 1) <= p.max);
    }

    #[test]
    fn decisions() {
        let p = RetryPolicy::default();
        let now = 1_000_000;
        let dl = now + 30_000;
        let perm = SendError::permanent("client_error", "400");
        assert_eq!(
            next_attempt(&p, &perm, 0, now, dl, 1),
            Next::GiveUp("client_error")
        );
        let retry = SendError::retryable("server_error", "503");
        match next_attempt(&p, &retry, 0, now, dl, 1) {
            Next::RetryIn(d) => assert!(d <= Duration::from_secs(1)),
            other => panic!("{other:?}"),
        }
        // retry_after is honoured exactly, even when above the backoff.
        let slow = SendError::Retryable {
            reason: "rate_limited",
            message: "429".into(),
            retry_after: Some(Duration::from_secs(20)),
        };
        assert_eq!(
            next_attempt(&p, &slow, 0, now, dl, 1),
            Next::RetryIn(Duration::from_secs(20))
        );
        // ...unless it would land after the deadline.
        assert_eq!(
            next_attempt(&p, &slow, 0, now, now + 19_999, 1),
            Next::GiveUp("deadline_exceeded")
        );
        assert_eq!(
            next_attempt(&p, &retry, 9, now, now + 10, 1),
            Next::GiveUp("deadline_exceeded")
        );
        assert_eq!(
            deadline(&p, 0, Duration::from_secs(4 * 3600)),
            4 * 3_600_000
        );
        assert_eq!(deadline(&p, 0, Duration::from_secs(60)), 600_000);
    }
}
