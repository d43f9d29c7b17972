//! The wall clock of the notification pipeline's schedulers.
//!
//! Decisions in `notify` take `now` as an argument (STYLE rule 6); the
//! schedulers that produce `now` (the group timer loop, the delivery lanes,
//! the API handlers of the manager) read it here. Timers themselves wait on
//! tokio time, so a test that pauses tokio's clock must see the wall clock
//! move with it: [`Clock::following_tokio`] derives wall time from tokio's
//! `Instant`, [`Clock::system`] reads the system clock.
//!
//! Must not be used by the pure stages (route, group, inhibit, silence,
//! dedup): they are handed a timestamp.

use std::time::SystemTime;

use crate::model::{Timestamp, timestamp_of};

/// Where `now` comes from.
#[derive(Debug, Clone)]
pub struct Clock {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    System,
    Tokio {
        base_wall: Timestamp,
        base: tokio::time::Instant,
    },
}

impl Clock {
    /// The system's wall clock (production).
    pub fn system() -> Self {
        Clock { kind: Kind::System }
    }

    /// A clock that reads `wall` now and advances with tokio's clock, so
    /// `tokio::time::pause` / `advance` move it (tests, benchmarks).
    pub fn following_tokio(wall: Timestamp) -> Self {
        Clock {
            kind: Kind::Tokio {
                base_wall: wall,
                base: tokio::time::Instant::now(),
            },
        }
    }

    /// Milliseconds since the epoch.
    // This is the one place the notification schedulers read the clock.
    #[allow(clippy::disallowed_methods)]
    pub fn now(&self) -> Timestamp {
        match &self.kind {
            Kind::System => timestamp_of(SystemTime::now()),
            Kind::Tokio { base_wall, base } => {
                base_wall + base.elapsed().as_millis().min(i64::MAX as u128) as i64
            }
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn follows_paused_tokio_time() {
        let c = Clock::following_tokio(1_000);
        assert_eq!(c.now(), 1_000);
        tokio::time::advance(Duration::from_millis(2_500)).await;
        assert_eq!(c.now(), 3_500);
        assert!(Clock::system().now() > 1_600_000_000_000);
    }
}
