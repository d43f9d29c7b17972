//! A computed [`Report`] as what is sent: a plain-text version (the mail's
//! text part and `watchpost report show`), an HTML mail body with the chart
//! inline, a Telegram message in the HTML subset Telegram accepts, and the
//! chart PNG. Every value that came from the data (label values, job
//! names) is escaped for HTML. Pure: times are shown in the report's
//! zone, from the report's own timestamps.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::TimeZone as _;

use crate::channels::digest::Digest;
use crate::config::notify::IntervalLocation;
use crate::model::{Timestamp, format_duration};

use super::compute::{MAX_LISTED_EPISODES, Report};
use super::png;

/// The chart's `Content-ID` in the mail.
pub const CHART_CID: &str = "firing-alerts-chart@watchpost";

/// `t` as `2026-12-07 09:00 UTC` in `loc`.
pub fn format_time(t: Timestamp, loc: IntervalLocation) -> String {
    let Some(utc) = chrono::DateTime::from_timestamp_millis(t) else {
        return t.to_string();
    };
    const F: &str = "%Y-%m-%d %H:%M %Z";
    match loc {
        IntervalLocation::Utc => utc.format(F).to_string(),
        IntervalLocation::Local => chrono::Local
            .from_utc_datetime(&utc.naive_utc())
            .format("%Y-%m-%d %H:%M %:z")
            .to_string(),
        IntervalLocation::Tz(tz) => utc.with_timezone(&tz).format(F).to_string(),
    }
}

fn span(ms: i64) -> String {
    format_duration(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

fn percent(r: f64) -> String {
    format!("{:.2}%", r * 100.0)
}

/// HTML-escapes text for an element or a double-quoted attribute (the
/// escaping Telegram's HTML needs is exactly this, so both share it).
fn esc(s: &str) -> String {
    crate::channels::telegram_format::escape_html(s)
}

fn summary(r: &Report) -> String {
    format!(
        "{} firing episode(s) of {} alert(s): {} began in the window, {} resolved, {} still firing.",
        r.episodes.len(),
        r.alerts.len() + r.alerts_omitted,
        r.fired(),
        r.resolved(),
        r.still_firing()
    )
}

fn window_line(r: &Report, loc: IntervalLocation) -> String {
    format!(
        "{} to {} ({})",
        format_time(r.start, loc),
        format_time(r.end, loc),
        format_duration(r.window)
    )
}

fn episode_end(e: &super::compute::Episode, loc: IntervalLocation) -> String {
    match e.end {
        Some(t) => format_time(t, loc),
        None => "still firing".to_string(),
    }
}

fn step_ms(r: &Report) -> i64 {
    i64::try_from(r.step.as_millis()).unwrap_or(i64::MAX)
}

/// The plain-text version.
pub fn text(r: &Report, loc: IntervalLocation) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", r.title);
    let _ = writeln!(s, "Window: {}", window_line(r, loc));
    let _ = writeln!(s, "{}", summary(r));
    let _ = writeln!(s);
    let _ = writeln!(s, "Firing episodes");
    if r.episodes.is_empty() {
        let _ = writeln!(s, "  none");
    }
    for e in r.episodes.iter().take(MAX_LISTED_EPISODES) {
        let from = if e.from_before {
            " (already firing)"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "  {}  {}{} -> {}  ({})",
            e.labels,
            format_time(e.start, loc),
            from,
            episode_end(e, loc),
            span(e.firing_ms(r.end, step_ms(r)))
        );
    }
    if r.episodes.len() > MAX_LISTED_EPISODES {
        let _ = writeln!(
            s,
            "  ... and {} more",
            r.episodes.len() - MAX_LISTED_EPISODES
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Time in firing per alert");
    if r.alerts.is_empty() {
        let _ = writeln!(s, "  none");
    }
    for a in &r.alerts {
        let _ = writeln!(
            s,
            "  {}  {}  ({} episode(s))",
            a.labels,
            span(a.firing_ms),
            a.episodes
        );
    }
    if r.alerts_omitted > 0 {
        let _ = writeln!(s, "  ... and {} more", r.alerts_omitted);
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Noisiest rules");
    if r.noisiest.is_empty() {
        let _ = writeln!(s, "  none");
    }
    for (i, n) in r.noisiest.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {}. {}  {} episode(s), {} firing, {} series",
            i + 1,
            n.alertname,
            n.episodes,
            span(n.firing_ms),
            n.series
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Target availability per job");
    if r.availability.is_empty() {
        let _ = writeln!(s, "  no up series in the window");
    }
    for j in &r.availability {
        let worst = match &j.worst {
            Some((t, v)) if j.targets > 1 => format!("; lowest {t} {}", percent(*v)),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "  {}  {}  ({} target(s){worst})",
            j.job,
            percent(j.ratio),
            j.targets
        );
    }
    s
}

fn chart_caption(r: &Report) -> String {
    let max = r.firing_over_time.iter().copied().fold(0.0_f64, f64::max);
    let per_bar = png::steps_per_bar(r.firing_over_time.len());
    let bar = r.step * u32::try_from(per_bar).unwrap_or(u32::MAX);
    format!(
        "Firing alerts over the window, one bar per {} (highest: {max})",
        format_duration(bar)
    )
}

/// The HTML mail body; the chart is referenced as `cid:` [`CHART_CID`].
pub fn html(r: &Report, loc: IntervalLocation, with_chart: bool) -> String {
    let mut s = String::new();
    let th = "style=\"text-align:left;padding:4px 8px;border-bottom:1px solid #ccc\"";
    let td = "style=\"padding:4px 8px;border-bottom:1px solid #eee\"";
    let _ = write!(
        s,
        "<!DOCTYPE html><html><body style=\"font-family:sans-serif;color:#222\"><h2>{}</h2><p>Window: {}</p><p>{}</p>",
        esc(&r.title),
        esc(&window_line(r, loc)),
        esc(&summary(r))
    );
    if with_chart {
        let _ = write!(
            s,
            "<p><img src=\"cid:{CHART_CID}\" width=\"{}\" height=\"{}\" alt=\"{}\"><br><small>{}</small></p>",
            png::CHART_WIDTH,
            png::CHART_HEIGHT,
            esc(&chart_caption(r)),
            esc(&chart_caption(r))
        );
    }
    let _ = write!(
        s,
        "<h3>Firing episodes</h3><table style=\"border-collapse:collapse\"><tr><th {th}>Alert</th><th {th}>Started</th><th {th}>Resolved</th><th {th}>Firing</th></tr>"
    );
    for e in r.episodes.iter().take(MAX_LISTED_EPISODES) {
        let start = if e.from_before {
            format!("{} (already firing)", format_time(e.start, loc))
        } else {
            format_time(e.start, loc)
        };
        let _ = write!(
            s,
            "<tr><td {td}><code>{}</code></td><td {td}>{}</td><td {td}>{}</td><td {td}>{}</td></tr>",
            esc(&e.labels.to_string()),
            esc(&start),
            esc(&episode_end(e, loc)),
            span(e.firing_ms(r.end, step_ms(r)))
        );
    }
    s.push_str("</table>");
    if r.episodes.is_empty() {
        s.push_str("<p>No alert fired in the window.</p>");
    } else if r.episodes.len() > MAX_LISTED_EPISODES {
        let _ = write!(
            s,
            "<p>... and {} more</p>",
            r.episodes.len() - MAX_LISTED_EPISODES
        );
    }
    let _ = write!(
        s,
        "<h3>Time in firing per alert</h3><table style=\"border-collapse:collapse\"><tr><th {th}>Alert</th><th {th}>Firing</th><th {th}>Episodes</th></tr>"
    );
    for a in &r.alerts {
        let _ = write!(
            s,
            "<tr><td {td}><code>{}</code></td><td {td}>{}</td><td {td}>{}</td></tr>",
            esc(&a.labels.to_string()),
            span(a.firing_ms),
            a.episodes
        );
    }
    s.push_str("</table>");
    let _ = write!(
        s,
        "<h3>Noisiest rules</h3><table style=\"border-collapse:collapse\"><tr><th {th}>Rule</th><th {th}>Episodes</th><th {th}>Firing</th><th {th}>Series</th></tr>"
    );
    for n in &r.noisiest {
        let _ = write!(
            s,
            "<tr><td {td}>{}</td><td {td}>{}</td><td {td}>{}</td><td {td}>{}</td></tr>",
            esc(&n.alertname),
            n.episodes,
            span(n.firing_ms),
            n.series
        );
    }
    s.push_str("</table>");
    let _ = write!(
        s,
        "<h3>Target availability per job</h3><table style=\"border-collapse:collapse\"><tr><th {th}>Job</th><th {th}>Availability</th><th {th}>Targets</th><th {th}>Lowest target</th></tr>"
    );
    for j in &r.availability {
        let worst = match &j.worst {
            Some((t, v)) => format!("{} {}", esc(t), percent(*v)),
            None => String::new(),
        };
        let _ = write!(
            s,
            "<tr><td {td}>{}</td><td {td}>{}</td><td {td}>{}</td><td {td}>{worst}</td></tr>",
            esc(&j.job),
            percent(j.ratio),
            j.targets
        );
    }
    s.push_str("</table></body></html>");
    s
}

/// The Telegram message: `<b>` headings and `<pre>` blocks, the tags
/// Telegram's HTML parse mode accepts.
pub fn telegram(r: &Report, loc: IntervalLocation) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "<b>{}</b>", esc(&r.title));
    let _ = writeln!(s, "{}", esc(&window_line(r, loc)));
    let _ = writeln!(s, "{}", esc(&summary(r)));
    let mut section = |title: &str, lines: Vec<String>| {
        let _ = writeln!(s, "\n<b>{}</b>", esc(title));
        if lines.is_empty() {
            let _ = writeln!(s, "none");
        } else {
            let _ = writeln!(s, "<pre>{}</pre>", esc(&lines.join("\n")));
        }
    };
    let mut episodes: Vec<String> = r
        .episodes
        .iter()
        .take(MAX_LISTED_EPISODES)
        .map(|e| {
            format!(
                "{}  {} -> {}",
                e.labels,
                format_time(e.start, loc),
                episode_end(e, loc)
            )
        })
        .collect();
    if r.episodes.len() > MAX_LISTED_EPISODES {
        episodes.push(format!(
            "... and {} more",
            r.episodes.len() - MAX_LISTED_EPISODES
        ));
    }
    section("Firing episodes", episodes);
    section(
        "Time in firing per alert",
        r.alerts
            .iter()
            .take(MAX_LISTED_EPISODES)
            .map(|a| format!("{}  {}  ({}x)", a.labels, span(a.firing_ms), a.episodes))
            .collect(),
    );
    section(
        "Noisiest rules",
        r.noisiest
            .iter()
            .map(|n| {
                format!(
                    "{}  {} episode(s), {} firing",
                    n.alertname,
                    n.episodes,
                    span(n.firing_ms)
                )
            })
            .collect(),
    );
    section(
        "Target availability per job",
        r.availability
            .iter()
            .map(|j| format!("{}  {}  ({} target(s))", j.job, percent(j.ratio), j.targets))
            .collect(),
    );
    s.truncate(s.trim_end().len());
    s
}

/// Everything a channel needs to send `r`.
pub fn digest(r: &Report, loc: IntervalLocation) -> Digest {
    let chart = png::bar_chart(&r.firing_over_time).to_png();
    Digest {
        name: r.name.clone(),
        title: r.title.clone(),
        text: text(r, loc),
        html: html(r, loc, true),
        telegram_html: telegram(r, loc),
        chart_png: Some(chart),
        chart_cid: CHART_CID.to_string(),
        chart_caption: chart_caption(r),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::model::Labels;
    use crate::reports::compute::{AlertTime, Episode, JobAvailability, RuleNoise};

    fn report() -> Report {
        let l = Labels::from_pairs([("alertname", "Disk<Full>"), ("instance", "a&b")]);
        Report {
            name: "weekly".into(),
            title: "Weekly <digest>".into(),
            start: 1_796_630_400_000,
            end: 1_796_634_000_000,
            window: Duration::from_secs(3600),
            step: Duration::from_secs(15),
            episodes: vec![Episode {
                labels: l.clone(),
                start: 1_796_631_000_000,
                end: Some(1_796_631_600_000),
                from_before: false,
            }],
            alerts: vec![AlertTime {
                labels: l,
                firing_ms: 600_000,
                episodes: 1,
            }],
            alerts_omitted: 0,
            noisiest: vec![RuleNoise {
                alertname: "Disk<Full>".into(),
                episodes: 1,
                firing_ms: 600_000,
                series: 1,
            }],
            availability: vec![JobAvailability {
                job: "node".into(),
                ratio: 0.875,
                targets: 2,
                worst: Some(("a:9100".into(), 0.75)),
            }],
            firing_over_time: vec![0.0, 1.0, 0.0],
        }
    }

    #[test]
    fn text_lists_every_section_in_the_zone() {
        let t = text(&report(), IntervalLocation::Tz(chrono_tz::Europe::Berlin));
        assert!(t.starts_with("Weekly <digest>\nWindow: 2026-12-07 09:00 CET to 2026-12-07 10:00 CET (1h)\n1 firing episode(s) of 1 alert(s): 1 began in the window, 1 resolved, 0 still firing.\n"), "{t}");
        assert!(t.contains("  {alertname=\"Disk<Full>\", instance=\"a&b\"}  2026-12-07 09:10 CET -> 2026-12-07 09:20 CET  (10m)\n"), "{t}");
        assert!(
            t.contains("  1. Disk<Full>  1 episode(s), 10m firing, 1 series\n"),
            "{t}"
        );
        assert!(
            t.contains("  node  87.50%  (2 target(s); lowest a:9100 75.00%)\n"),
            "{t}"
        );
    }

    #[test]
    fn html_escapes_values_and_references_the_chart() {
        let h = html(&report(), IntervalLocation::Utc, true);
        assert!(h.contains("<h2>Weekly &lt;digest&gt;</h2>"), "{h}");
        assert!(h.contains(&format!("<img src=\"cid:{CHART_CID}\"")), "{h}");
        assert!(
            h.contains("Disk&lt;Full&gt;") && !h.contains("Disk<Full>"),
            "{h}"
        );
        let tg = telegram(&report(), IntervalLocation::Utc);
        assert!(tg.starts_with("<b>Weekly &lt;digest&gt;</b>\n"), "{tg}");
        assert!(
            tg.contains("<pre>node  87.50%  (2 target(s))</pre>"),
            "{tg}"
        );
        assert!(!tg.contains("a&b"), "{tg}");
    }
}
