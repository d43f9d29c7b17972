//! Time intervals: whether a moment falls inside a named
//! `time_intervals` entry, with Alertmanager's semantics, plus watchpost's
//! cron windows; and whether a route is muted at a moment by its
//! `mute_time_intervals` / `active_time_intervals`.
//!
//! Alertmanager's rules: the moment is converted to the interval's
//! `location` (UTC by default) first; `times` ranges are `[start, end)` in
//! minutes of the day (`24:00` is the end of the day); weekday, day of
//! month, month and year ranges are inclusive; negative days count from the
//! end of the month (-1 is the last day), and a range is clamped to the
//! month's length; every field that is given must match (each field
//! matches when one of its ranges does); a named interval contains a moment
//! when one of its entries does.
//!
//! Cron windows (`cron` + `duration`): a window opens at each fire time of
//! the expression, read in the interval's location (so `0 2 * * SUN` in
//! Europe/Berlin stays at 02:00 local time across DST changes), and is open
//! for `duration`; a moment is inside when the most recent fire time `f`
//! satisfies `f <= t < f + duration`. A fire time that falls into the
//! spring-forward gap moves to the first minute after it; one that falls
//! into the repeated autumn hour opens a single window, at its first
//! occurrence (croner's rules, as cron daemons do).
//!
//! Fourth stage of the pipeline (with silences). Pure: `t` is an argument.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};

use crate::config::notify::{IntervalLocation, NamedTimeInterval, TimeInterval};
use crate::model::Timestamp;

use super::route::RouteOpts;

/// The calendar fields of a moment in some zone.
struct Fields {
    minute_of_day: u32,
    weekday: u32,
    day: i32,
    days_in_month: i32,
    month: u32,
    year: i32,
}

fn fields<Tz: TimeZone>(t: &DateTime<Tz>) -> Fields {
    let (y, m) = (t.year(), t.month());
    let first = NaiveDate::from_ymd_opt(y, m, 1);
    let next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    };
    let days_in_month = match (first, next) {
        (Some(a), Some(b)) => (b - a).num_days() as i32,
        _ => 31,
    };
    Fields {
        minute_of_day: t.hour() * 60 + t.minute(),
        weekday: t.weekday().num_days_from_sunday(),
        day: t.day() as i32,
        days_in_month,
        month: m,
        year: y,
    }
}

fn any<T>(ranges: &Option<Vec<T>>, hit: impl Fn(&T) -> bool) -> bool {
    ranges.as_ref().is_none_or(|rs| rs.iter().any(hit))
}

impl TimeInterval {
    /// Whether `t` is inside this interval.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        match self.location {
            IntervalLocation::Utc => self.contains_in(&t),
            IntervalLocation::Local => self.contains_in(&t.with_timezone(&chrono::Local)),
            IntervalLocation::Tz(tz) => self.contains_in(&t.with_timezone(&tz)),
        }
    }

    /// [`TimeInterval::contains`] for a millisecond timestamp.
    pub fn contains_ms(&self, t: Timestamp) -> bool {
        DateTime::from_timestamp_millis(t).is_some_and(|t| self.contains(t))
    }

    fn contains_in<Tz: TimeZone>(&self, t: &DateTime<Tz>) -> bool {
        if let Some(c) = &self.cron {
            return match c.schedule.find_previous_occurrence(t, true) {
                Ok(fire) => {
                    chrono::Duration::from_std(c.duration).is_ok_and(|d| t.clone() < fire + d)
                }
                // No fire time before t (a pattern that never matched yet).
                Err(_) => false,
            };
        }
        let f = fields(t);
        any(&self.times, |r| {
            f.minute_of_day >= r.start_minute && f.minute_of_day < r.end_minute
        }) && any(&self.days_of_month, |&(b, e)| {
            let n = f.days_in_month;
            let begin = if b < 0 { n + b + 1 } else { b };
            let end = if e < 0 { n + e + 1 } else { e };
            // A range starting after the month's last day does not match
            // (31 in February); otherwise it is clamped to the month.
            if begin > n {
                return false;
            }
            let (begin, end) = (begin.clamp(-n, n), end.clamp(-n, n));
            f.day >= begin && f.day <= end
        }) && any(&self.months, |&(b, e)| f.month >= b && f.month <= e)
            && any(&self.weekdays, |&(b, e)| f.weekday >= b && f.weekday <= e)
            && any(&self.years, |&(b, e)| f.year >= b && f.year <= e)
    }
}

impl NamedTimeInterval {
    /// Whether `t` is inside one of the entries.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.intervals.iter().any(|i| i.contains(t))
    }
}

/// Why a route sends nothing at some moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Muted {
    /// One of its `mute_time_intervals` contains the moment.
    ByInterval(String),
    /// It has `active_time_intervals` and none contains the moment.
    OutsideActiveIntervals,
}

/// The named time intervals of one config, for checking routes.
#[derive(Debug, Clone, Default)]
pub struct TimeIntervals {
    by_name: HashMap<String, NamedTimeInterval>,
}

impl TimeIntervals {
    pub fn new(intervals: &[NamedTimeInterval]) -> Self {
        TimeIntervals {
            by_name: intervals
                .iter()
                .map(|i| (i.name.clone(), i.clone()))
                .collect(),
        }
    }

    /// Whether the interval `name` contains `t` (an unknown name never does;
    /// config validation rejects routes that name one).
    pub fn contains(&self, name: &str, t: DateTime<Utc>) -> bool {
        self.by_name.get(name).is_some_and(|i| i.contains(t))
    }

    /// Whether the route with `opts` is muted at `t`, and why (mute
    /// intervals are checked first, as Alertmanager's pipeline does).
    pub fn muted(&self, opts: &RouteOpts, t: DateTime<Utc>) -> Option<Muted> {
        if let Some(name) = opts
            .mute_time_intervals
            .iter()
            .find(|n| self.contains(n, t))
        {
            return Some(Muted::ByInterval(name.clone()));
        }
        if !opts.active_time_intervals.is_empty()
            && !opts
                .active_time_intervals
                .iter()
                .any(|n| self.contains(n, t))
        {
            return Some(Muted::OutsideActiveIntervals);
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::config::notify::{CronWindow, TimeRange};
    use std::time::Duration;

    fn empty() -> TimeInterval {
        TimeInterval {
            times: None,
            weekdays: None,
            days_of_month: None,
            months: None,
            years: None,
            location: IntervalLocation::Utc,
            cron: None,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn hm(s: u32, e: u32) -> TimeRange {
        TimeRange {
            start_minute: s,
            end_minute: e,
        }
    }

    #[test]
    fn times_are_half_open_and_24_00_ends_the_day() {
        let ti = TimeInterval {
            times: Some(vec![hm(9 * 60, 17 * 60), hm(23 * 60, 24 * 60)]),
            ..empty()
        };
        for (t, want) in [
            ("2024-05-06T08:59:59Z", false),
            ("2024-05-06T09:00:00Z", true),
            ("2024-05-06T16:59:59Z", true),
            ("2024-05-06T17:00:00Z", false),
            ("2024-05-06T23:59:59Z", true),
            ("2024-05-07T00:00:00Z", false),
        ] {
            assert_eq!(ti.contains(at(t)), want, "{t}");
        }
        // An explicitly empty list matches nothing, as in Alertmanager.
        let none = TimeInterval {
            times: Some(vec![]),
            ..empty()
        };
        assert!(!none.contains(at("2024-05-06T12:00:00Z")));
        assert!(empty().contains(at("2024-05-06T12:00:00Z")));
    }

    #[test]
    fn weekdays_months_years() {
        // monday:friday, in 2024 only, in spring.
        let ti = TimeInterval {
            weekdays: Some(vec![(1, 5)]),
            months: Some(vec![(3, 5)]),
            years: Some(vec![(2024, 2024)]),
            ..empty()
        };
        for (t, want) in [
            ("2024-05-06T12:00:00Z", true),  // Monday
            ("2024-05-10T23:59:00Z", true),  // Friday
            ("2024-05-11T00:00:00Z", false), // Saturday
            ("2024-05-12T12:00:00Z", false), // Sunday
            ("2024-06-03T12:00:00Z", false), // June
            ("2025-05-05T12:00:00Z", false), // 2025
        ] {
            assert_eq!(ti.contains(at(t)), want, "{t}");
        }
    }

    #[test]
    fn days_of_month_count_from_the_end_when_negative() {
        let last = TimeInterval {
            days_of_month: Some(vec![(-1, -1)]),
            ..empty()
        };
        let last_week = TimeInterval {
            days_of_month: Some(vec![(-7, -1)]),
            ..empty()
        };
        let first = TimeInterval {
            days_of_month: Some(vec![(1, 5)]),
            ..empty()
        };
        let late = TimeInterval {
            days_of_month: Some(vec![(30, 31)]),
            ..empty()
        };
        for (ti, t, want) in [
            (&last, "2024-02-29T10:00:00Z", true),
            (&last, "2023-02-28T10:00:00Z", true),
            (&last, "2024-02-28T10:00:00Z", false),
            (&last, "2024-04-30T10:00:00Z", true),
            (&last_week, "2024-04-24T00:00:00Z", true),
            (&last_week, "2024-04-23T23:59:00Z", false),
            (&first, "2024-04-05T23:59:00Z", true),
            (&first, "2024-04-06T00:00:00Z", false),
            // 30:31 does not exist in February.
            (&late, "2024-02-29T10:00:00Z", false),
            (&late, "2024-04-30T10:00:00Z", true),
        ] {
            assert_eq!(ti.contains(at(t)), want, "{t}");
        }
    }

    #[test]
    fn location_moves_the_clock() {
        let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let ti = TimeInterval {
            times: Some(vec![hm(9 * 60, 17 * 60)]),
            weekdays: Some(vec![(1, 5)]),
            location: IntervalLocation::Tz(tz),
            ..empty()
        };
        // 08:30 UTC is 10:30 in Berlin in summer, 09:30 in winter.
        assert!(ti.contains(at("2024-07-01T07:30:00Z")));
        assert!(!ti.contains(at("2024-01-08T07:30:00Z")));
        assert!(ti.contains(at("2024-01-08T08:00:00Z")));
        // Sunday 23:30 UTC is Monday 01:30 in Berlin: weekday matches,
        // the time does not.
        assert!(!ti.contains(at("2024-07-07T23:30:00Z")));
        // Friday 22:30 UTC is Saturday in Tokyo.
        let tokyo = TimeInterval {
            weekdays: Some(vec![(6, 6)]),
            location: IntervalLocation::Tz("Asia/Tokyo".parse().unwrap()),
            ..empty()
        };
        assert!(tokyo.contains(at("2024-07-05T22:30:00Z")));
        assert!(tokyo.contains_ms(at("2024-07-05T22:30:00Z").timestamp_millis()));
    }

    fn cron(expr: &str, hours: u64, location: IntervalLocation) -> TimeInterval {
        let schedule = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .build()
            .parse(expr)
            .unwrap();
        TimeInterval {
            location,
            cron: Some(CronWindow {
                expression: expr.to_string(),
                schedule,
                duration: Duration::from_secs(hours * 3600),
            }),
            ..empty()
        }
    }

    #[test]
    fn cron_windows_open_at_each_fire_for_their_duration() {
        let sunday_2am = cron("0 2 * * SUN", 2, IntervalLocation::Utc);
        for (t, want) in [
            ("2024-05-05T01:59:59Z", false),
            ("2024-05-05T02:00:00Z", true),
            ("2024-05-05T03:59:59Z", true),
            ("2024-05-05T04:00:00Z", false),
            ("2024-05-06T02:30:00Z", false), // Monday
            ("2024-05-12T02:30:00Z", true),
        ] {
            assert_eq!(sunday_2am.contains(at(t)), want, "{t}");
        }
        // Windows longer than the period overlap into one.
        let hourly = cron("0 * * * *", 2, IntervalLocation::Utc);
        assert!(hourly.contains(at("2024-05-05T13:59:00Z")));
    }

    #[test]
    fn cron_windows_follow_local_time_across_dst() {
        let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let nightly = cron("0 1 * * *", 1, IntervalLocation::Tz(tz));
        // Summer time started 2024-03-31 02:00 local: 01:00 local is 00:00
        // UTC that night and 23:00 UTC the night before.
        assert!(nightly.contains(at("2024-03-30T00:30:00Z")));
        assert!(!nightly.contains(at("2024-03-30T23:30:00Z")));
        assert!(nightly.contains(at("2024-03-31T00:30:00Z")));
        assert!(nightly.contains(at("2024-03-31T23:30:00Z")));
        assert!(!nightly.contains(at("2024-04-01T00:30:00Z")));
        // Back to winter time on 2024-10-27: 01:00 local is 23:00 UTC
        // before and 00:00 UTC after.
        assert!(nightly.contains(at("2024-10-26T23:30:00Z")));
        assert!(nightly.contains(at("2024-10-28T00:30:00Z")));
        assert!(!nightly.contains(at("2024-10-27T23:30:00Z")));

        // 02:30 does not exist on 2024-03-31 in Berlin: that night's window
        // opens when the clock jumps to 03:00 (01:00 UTC).
        let half_past_two = cron("30 2 * * *", 1, IntervalLocation::Tz(tz));
        assert!(!half_past_two.contains(at("2024-03-31T00:45:00Z")));
        assert!(half_past_two.contains(at("2024-03-31T01:15:00Z")));
        assert!(!half_past_two.contains(at("2024-03-31T02:05:00Z")));
        // 02:30 happens twice on 2024-10-27: the window opens once, at the
        // first (00:30 UTC).
        assert!(half_past_two.contains(at("2024-10-27T00:45:00Z")));
        assert!(!half_past_two.contains(at("2024-10-27T01:45:00Z")));
    }

    #[test]
    fn routes_are_muted_by_their_own_intervals() {
        let named = |name: &str, ti: TimeInterval| NamedTimeInterval {
            name: name.into(),
            intervals: vec![ti],
        };
        let nights = named(
            "nights",
            TimeInterval {
                times: Some(vec![hm(0, 6 * 60)]),
                ..empty()
            },
        );
        let weekdays = named(
            "weekdays",
            TimeInterval {
                weekdays: Some(vec![(1, 5)]),
                ..empty()
            },
        );
        let all = TimeIntervals::new(&[nights, weekdays]);
        let mut opts = crate::notify::route::Route::new(&crate::config::notify::RouteConfig {
            receiver: Some("r".into()),
            group_by: None,
            matchers: vec![],
            continue_matching: false,
            group_wait: None,
            group_interval: None,
            repeat_interval: None,
            mute_time_intervals: vec![],
            active_time_intervals: vec![],
            send_resolved_when_muted: None,
            routes: vec![],
        })
        .opts;
        let mon_3am = at("2024-05-06T03:00:00Z");
        let mon_noon = at("2024-05-06T12:00:00Z");
        let sun_noon = at("2024-05-05T12:00:00Z");
        assert_eq!(all.muted(&opts, mon_3am), None);
        opts.mute_time_intervals = vec!["nights".into()];
        assert_eq!(
            all.muted(&opts, mon_3am),
            Some(Muted::ByInterval("nights".into()))
        );
        assert_eq!(all.muted(&opts, mon_noon), None);
        opts.active_time_intervals = vec!["weekdays".into()];
        assert_eq!(
            all.muted(&opts, sun_noon),
            Some(Muted::OutsideActiveIntervals)
        );
        assert_eq!(all.muted(&opts, mon_noon), None);
        assert_eq!(
            all.muted(&opts, mon_3am),
            Some(Muted::ByInterval("nights".into()))
        );
    }
}
