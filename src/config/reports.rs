//! `reports:` — digest reports sent on cron schedules (watchpost's own
//! section): the serde mirror of one entry, its validation and the typed
//! [`ReportConfig`] that `reports` schedules and renders.
//!
//! Validation is pure and collects every problem with its position: names
//! are unique and usable on a command line, `schedule` is a 5-field cron
//! expression (croner, the same parser as `time_intervals`' `cron`),
//! `timezone` (or Alertmanager's spelling `location`) an IANA zone, `window`
//! a bounded duration, and `receiver` names a receiver of the notify
//! section that has an `email_configs` or `telegram_configs` entry (the two
//! channels a digest can be sent through). Nothing here reads files or
//! the clock.

use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Location;

use super::notify::{
    IntegrationConfig, IntervalLocation, NotifyConfig, parse_cron, parse_location,
};
use super::raw::S;
use super::validate::Cx;
use crate::model::{format_duration, parse_duration};

/// Shortest window: below one minute there is nothing to digest.
pub const MIN_WINDOW: Duration = Duration::from_secs(60);
/// Longest window: a year of history, already past most retentions.
pub const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);
/// Longest `name` and `title`, in characters (names travel in metric
/// labels and command lines, titles in mail subjects).
const MAX_NAME: usize = 64;
const MAX_TITLE: usize = 200;
/// Most reports in one config: each is a scheduled task and a set of
/// queries over its whole window.
pub const MAX_REPORTS: usize = 100;

/// One `reports:` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReport {
    pub name: Option<S<String>>,
    pub schedule: Option<S<String>>,
    #[serde(alias = "location")]
    pub timezone: Option<S<String>>,
    pub receiver: Option<S<String>>,
    pub window: Option<S<String>>,
    pub title: Option<S<String>>,
}

/// A validated digest report.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// Unique among the reports; `[A-Za-z0-9_.-]`, at most 64 characters.
    pub name: String,
    /// The cron expression as written (`0 9 * * MON`).
    pub schedule_text: String,
    /// When the report is sent, read in `location`.
    pub schedule: croner::Cron,
    /// The zone `schedule` is read in (UTC unless `timezone` says otherwise).
    pub location: IntervalLocation,
    /// A receiver of the notify config with an email or Telegram integration.
    pub receiver: String,
    /// How far back the report looks from the time it is sent.
    pub window: Duration,
    /// The mail subject and the message heading.
    pub title: String,
}

/// Whether the notify section was written at all (`notify:` or
/// `notify_file:`), and the validated one when it is valid.
pub(crate) enum NotifySeen<'a> {
    Absent,
    /// Present but invalid: its own errors are reported; receiver names
    /// are not checked against it, to avoid a second, misleading error.
    Invalid,
    Valid(&'a NotifyConfig),
}

/// Validates the `reports:` list.
pub(crate) fn build(
    cx: &mut Cx<'_>,
    raw: Option<&S<Vec<S<RawReport>>>>,
    notify: NotifySeen<'_>,
) -> Vec<ReportConfig> {
    let Some(list) = raw else {
        return Vec::new();
    };
    if list.value.len() > MAX_REPORTS {
        cx.err(
            list.referenced,
            format!(
                "reports: {} reports is more than the limit of {MAX_REPORTS}: merge reports or send them from several watchposts",
                list.value.len()
            ),
        );
        return Vec::new();
    }
    let mut out: Vec<ReportConfig> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (i, r) in list.value.iter().enumerate() {
        let before = cx.error_count();
        let ctx = match r.value.name.as_ref() {
            Some(n) if !n.value.is_empty() => format!("report {:?}: ", n.value),
            _ => format!("report {}: ", i + 1),
        };
        let name = report_name(cx, &ctx, r.value.name.as_ref(), r.referenced);
        if let Some(n) = &name {
            if seen.contains(n) {
                if let Some(at) = &r.value.name {
                    cx.err(
                        at.referenced,
                        format!(
                            "{ctx}name is used by an earlier report: give each report its own name"
                        ),
                    );
                }
            } else {
                seen.push(n.clone());
            }
        }
        let schedule = match &r.value.schedule {
            None => {
                cx.err(
                    r.referenced,
                    format!(
                        "{ctx}schedule is missing: add a cron expression such as \"0 9 * * MON\" (Mondays at 09:00)"
                    ),
                );
                None
            }
            Some(s) => match parse_cron(&s.value) {
                Ok(c) => Some((s.value.clone(), c)),
                Err(e) => {
                    cx.err(s.referenced, format!("{ctx}schedule: {e}"));
                    None
                }
            },
        };
        let location = match &r.value.timezone {
            None => IntervalLocation::Utc,
            Some(t) => parse_location(&t.value).unwrap_or_else(|| {
                cx.err(
                    t.referenced,
                    format!(
                        "{ctx}timezone: unknown time zone {:?}: use an IANA name such as Europe/Berlin, UTC or Local",
                        t.value
                    ),
                );
                IntervalLocation::Utc
            }),
        };
        let window = window(cx, &ctx, r.value.window.as_ref(), r.referenced);
        let receiver = receiver(cx, &ctx, r.value.receiver.as_ref(), r.referenced, &notify);
        let title = match &r.value.title {
            None => None,
            Some(t) if t.value.trim().is_empty() || t.value.chars().count() > MAX_TITLE => {
                cx.err(
                    t.referenced,
                    format!(
                        "{ctx}title must be 1 to {MAX_TITLE} characters: shorten it or remove the key for the default"
                    ),
                );
                None
            }
            Some(t) if t.value.contains(['\r', '\n']) => {
                cx.err(
                    t.referenced,
                    format!("{ctx}title must be one line: it becomes the mail subject"),
                );
                None
            }
            Some(t) => Some(t.value.clone()),
        };
        if cx.error_count() != before {
            continue;
        }
        if let (Some(name), Some((schedule_text, schedule)), Some(window), Some(receiver)) =
            (name, schedule, window, receiver)
        {
            out.push(ReportConfig {
                title: title.unwrap_or_else(|| format!("watchpost digest: {name}")),
                name,
                schedule_text,
                schedule,
                location,
                receiver,
                window,
            });
        }
    }
    out
}

fn report_name(
    cx: &mut Cx<'_>,
    ctx: &str,
    name: Option<&S<String>>,
    at: Location,
) -> Option<String> {
    let Some(n) = name else {
        cx.err(
            at,
            format!(
                "{ctx}name is missing: name the report (it is how `watchpost report send` finds it)"
            ),
        );
        return None;
    };
    let ok = !n.value.is_empty()
        && n.value.chars().count() <= MAX_NAME
        && n.value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        cx.err(
            n.referenced,
            format!(
                "{ctx}name must be 1 to {MAX_NAME} characters of letters, digits, '_', '-' and '.': rename it"
            ),
        );
        return None;
    }
    Some(n.value.clone())
}

fn window(cx: &mut Cx<'_>, ctx: &str, w: Option<&S<String>>, at: Location) -> Option<Duration> {
    let Some(w) = w else {
        cx.err(
            at,
            format!("{ctx}window is missing: say how far back the report looks, e.g. window: 7d"),
        );
        return None;
    };
    match parse_duration(&w.value) {
        Ok(d) if (MIN_WINDOW..=MAX_WINDOW).contains(&d) => Some(d),
        Ok(d) => {
            cx.err(
                w.referenced,
                format!(
                    "{ctx}window {} is out of range: use between {} and {}",
                    format_duration(d),
                    format_duration(MIN_WINDOW),
                    format_duration(MAX_WINDOW)
                ),
            );
            None
        }
        Err(e) => {
            cx.err(w.referenced, format!("{ctx}window: {e}"));
            None
        }
    }
}

fn receiver(
    cx: &mut Cx<'_>,
    ctx: &str,
    r: Option<&S<String>>,
    at: Location,
    notify: &NotifySeen<'_>,
) -> Option<String> {
    let Some(r) = r else {
        cx.err(
            at,
            format!(
                "{ctx}receiver is missing: name a receiver of the notify section with email_configs or telegram_configs"
            ),
        );
        return None;
    };
    match notify {
        NotifySeen::Invalid => Some(r.value.clone()),
        NotifySeen::Absent => {
            cx.err(
                r.referenced,
                format!(
                    "{ctx}receiver {:?} does not exist: there is no notify section; add notify: (or notify_file:) with this receiver and an email_configs or telegram_configs entry",
                    r.value
                ),
            );
            None
        }
        NotifySeen::Valid(n) => {
            let Some(found) = n.receiver(&r.value) else {
                let names: Vec<&str> = n.receivers.iter().map(|r| r.name.as_str()).collect();
                cx.err(
                    r.referenced,
                    format!(
                        "{ctx}receiver {:?} does not exist: use one of the notify section's receivers ({})",
                        r.value,
                        names.join(", ")
                    ),
                );
                return None;
            };
            let can_send = found.integrations.iter().any(|i| {
                matches!(
                    i.config,
                    IntegrationConfig::Email(_) | IntegrationConfig::Telegram(_)
                )
            });
            if !can_send {
                cx.err(
                    r.referenced,
                    format!(
                        "{ctx}receiver {:?} has no email_configs or telegram_configs entry: a digest is sent by email or Telegram; add one to the receiver or pick another",
                        r.value
                    ),
                );
                return None;
            }
            Some(r.value.clone())
        }
    }
}

/// The section as `/api/v1/status/config` shows it (it holds no secrets).
pub(crate) fn shown(reports: &[ReportConfig]) -> Option<serde_json::Value> {
    if reports.is_empty() {
        return None;
    }
    let list = reports
        .iter()
        .map(|r| {
            let mut m = serde_json::Map::new();
            m.insert("name".into(), r.name.clone().into());
            m.insert("schedule".into(), r.schedule_text.clone().into());
            let tz = match r.location {
                IntervalLocation::Utc => "UTC".to_string(),
                IntervalLocation::Local => "Local".to_string(),
                IntervalLocation::Tz(tz) => tz.name().to_string(),
            };
            m.insert("timezone".into(), tz.into());
            m.insert("receiver".into(), r.receiver.clone().into());
            m.insert("window".into(), format_duration(r.window).into());
            m.insert("title".into(), r.title.clone().into());
            serde_json::Value::Object(m)
        })
        .collect();
    Some(serde_json::Value::Array(list))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use crate::config::load_str;
    use std::path::Path;

    const NOTIFY: &str = "notify:
  route: {receiver: mail}
  receivers:
    - name: mail
      email_configs: [{to: ops@example.test, from: wp@example.test, smarthost: 'localhost:25', require_tls: false}]
    - name: hook
      webhook_configs: [{url: 'http://127.0.0.1:1/'}]
";

    fn errors(yaml: &str) -> Vec<String> {
        match load_str(yaml, "w.yml", Path::new("/")) {
            Ok(_) => Vec::new(),
            Err(e) => e.messages(),
        }
    }

    #[test]
    fn a_valid_report_loads_with_defaults() {
        let yaml = format!(
            "{NOTIFY}reports:\n  - {{name: weekly, schedule: '0 9 * * MON', receiver: mail, window: 7d}}\n  - {{name: daily, schedule: '30 8 * * *', location: Europe/Berlin, receiver: mail, window: 1d, title: Daily}}\n"
        );
        let c = load_str(&yaml, "w.yml", Path::new("/")).unwrap();
        assert_eq!(c.reports.len(), 2);
        let w = &c.reports[0];
        assert_eq!(w.name, "weekly");
        assert_eq!(w.window, std::time::Duration::from_secs(7 * 86400));
        assert_eq!(w.title, "watchpost digest: weekly");
        assert_eq!(w.location, super::IntervalLocation::Utc);
        assert_eq!(
            c.reports[1].location,
            super::IntervalLocation::Tz(chrono_tz::Europe::Berlin)
        );
        assert_eq!(c.reports[1].title, "Daily");
        assert!(
            c.redacted_yaml.contains("schedule: 0 9 * * MON"),
            "{}",
            c.redacted_yaml
        );
    }

    #[test]
    fn each_problem_is_reported_at_its_position() {
        let yaml = format!(
            "{NOTIFY}reports:
  - name: weekly
    schedule: '0 9 * * FUNDAY'
    timezone: Mars/Olympus
    receiver: hook
    window: 30s
  - name: weekly
    schedule: '0 9 * * *'
    receiver: nobody
    window: soon
  - schedule: '0 9 * * *'
    receiver: mail
"
        );
        assert_eq!(
            errors(&yaml),
            vec![
                "w.yml:10:15: report \"weekly\": schedule: \"0 9 * * FUNDAY\" is not a valid cron expression (pattern contains illegal characters: CronPattern contains illegal character 'F' in part 'FUNDAY'): write 5 fields, minute hour day-of-month month day-of-week, e.g. \"0 2 * * SUN\"",
                "w.yml:11:15: report \"weekly\": timezone: unknown time zone \"Mars/Olympus\": use an IANA name such as Europe/Berlin, UTC or Local",
                "w.yml:12:15: report \"weekly\": receiver \"hook\" has no email_configs or telegram_configs entry: a digest is sent by email or Telegram; add one to the receiver or pick another",
                "w.yml:13:13: report \"weekly\": window 30s is out of range: use between 1m and 366d",
                "w.yml:14:11: report \"weekly\": name is used by an earlier report: give each report its own name",
                "w.yml:16:15: report \"weekly\": receiver \"nobody\" does not exist: use one of the notify section's receivers (mail, hook)",
                "w.yml:17:13: report \"weekly\": window: not a valid duration string: \"soon\" (use a number with a unit: ms, s, m, h, d, w, y)",
                "w.yml:18:5: report 3: name is missing: name the report (it is how `watchpost report send` finds it)",
                "w.yml:18:5: report 3: window is missing: say how far back the report looks, e.g. window: 7d",
            ]
        );
    }

    #[test]
    fn a_report_needs_a_notify_section_and_known_keys() {
        let e = errors(
            "reports:\n  - {name: w, schedule: '0 9 * * MON', receiver: mail, window: 7d}\n",
        );
        assert_eq!(
            e,
            vec![
                "w.yml:2:50: report \"w\": receiver \"mail\" does not exist: there is no notify section; add notify: (or notify_file:) with this receiver and an email_configs or telegram_configs entry"
            ]
        );
        let e = errors(&format!(
            "{NOTIFY}reports:\n  - {{name: w, schedule: '0 9 * * MON', receiver: mail, window: 7d, every: 1d}}\n"
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("w.yml:9:68: unknown key \"every\""),
            "{e:?}"
        );
        let e = errors(&format!("{NOTIFY}reports: {{}}\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("w.yml:8:"), "{e:?}");
    }
}
