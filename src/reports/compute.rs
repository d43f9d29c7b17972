//! The figures of one digest report over its window, from PromQL at the
//! time the report is made.
//!
//! Alerts come from the `ALERTS{alertstate="firing"}` series the rules
//! engine writes on every evaluation (with a staleness marker when an
//! alert resolves). The series is sampled with a range query at a fixed
//! step ([`step_for`]): an alert is firing at a step when the query returns
//! it there, so its time in firing is the number of such steps times the
//! step, and a firing episode is a run of consecutive steps. Episodes
//! shorter than one step can be missed, as on any Prometheus graph of the
//! same resolution; the step is one minute for a week.
//!
//! Target availability is `avg_over_time(up[window])` per target at the
//! end of the window, averaged per job (each target counts the same).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::ReportConfig;
use crate::model::{Labels, Timestamp};

use super::ReportError;
use super::source::QuerySource;

/// Most steps in a report's range query: one minute over a week.
pub const MAX_STEPS: u64 = 10_080;
/// Finest step: rule groups rarely evaluate more often.
pub const MIN_STEP: Duration = Duration::from_secs(15);
/// Most episodes listed; the rest are counted.
pub const MAX_LISTED_EPISODES: usize = 50;
/// Rules listed as the noisiest.
pub const NOISIEST: usize = 10;
/// Most alert series and jobs kept in a report (the rest are counted).
pub const MAX_ROWS: usize = 200;

/// The step of the `ALERTS` range query for `window`: the window over
/// [`MAX_STEPS`], at least [`MIN_STEP`], in whole seconds.
pub fn step_for(window: Duration) -> Duration {
    let secs = window.as_secs().div_ceil(MAX_STEPS);
    Duration::from_secs(secs).max(MIN_STEP)
}

/// One alert's firing episode within the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// The alert's labels (without `__name__` and `alertstate`).
    pub labels: Labels,
    /// First step it was seen firing.
    pub start: Timestamp,
    /// The step after the last one it was seen firing; `None` when it
    /// still fires at the end of the window.
    pub end: Option<Timestamp>,
    /// It was already firing when the window began.
    pub from_before: bool,
}

impl Episode {
    /// Time in firing inside the window, in milliseconds.
    pub fn firing_ms(&self, window_end: Timestamp, step_ms: i64) -> i64 {
        self.end.unwrap_or(window_end + step_ms) - self.start
    }
}

/// Per alert series: how long and how often it fired.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTime {
    pub labels: Labels,
    pub firing_ms: i64,
    pub episodes: usize,
}

/// Per alerting rule (alertname): the noise it made.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleNoise {
    pub alertname: String,
    pub episodes: usize,
    pub firing_ms: i64,
    /// Distinct alert series (label sets) of the rule that fired.
    pub series: usize,
}

/// Availability of one job's targets.
#[derive(Debug, Clone, PartialEq)]
pub struct JobAvailability {
    pub job: String,
    /// Mean of the targets' `avg_over_time(up)`, 0..=1.
    pub ratio: f64,
    pub targets: usize,
    /// The least available target and its ratio.
    pub worst: Option<(String, f64)>,
}

/// Everything a digest shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub name: String,
    pub title: String,
    /// The window `[start, end]`; `end` is when the report was made.
    pub start: Timestamp,
    pub end: Timestamp,
    pub window: Duration,
    pub step: Duration,
    /// Every episode, in order of start.
    pub episodes: Vec<Episode>,
    /// Per alert series, longest time in firing first.
    pub alerts: Vec<AlertTime>,
    /// Alert series left out beyond [`MAX_ROWS`].
    pub alerts_omitted: usize,
    /// The noisiest rules: most episodes, then most time in firing.
    pub noisiest: Vec<RuleNoise>,
    /// Per job, by name.
    pub availability: Vec<JobAvailability>,
    /// Firing alerts at each step (the chart), from `start` by `step`.
    pub firing_over_time: Vec<f64>,
}

impl Report {
    /// Episodes that ended inside the window.
    pub fn resolved(&self) -> usize {
        self.episodes.iter().filter(|e| e.end.is_some()).count()
    }

    /// Episodes still going at the end of the window.
    pub fn still_firing(&self) -> usize {
        self.episodes.iter().filter(|e| e.end.is_none()).count()
    }

    /// Episodes that began inside the window.
    pub fn fired(&self) -> usize {
        self.episodes.iter().filter(|e| !e.from_before).count()
    }
}

/// The query that lists firing alerts.
pub const ALERTS_QUERY: &str = "ALERTS{alertstate=\"firing\"}";

fn window_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Computes `cfg`'s report for the window ending at `end`.
pub async fn compute(
    source: &dyn QuerySource,
    cfg: &ReportConfig,
    end: Timestamp,
) -> Result<Report, ReportError> {
    let step = step_for(cfg.window);
    let step_ms = window_ms(step);
    // The window is a whole number of steps ending at `end`, so the chart's
    // columns and the episode times line up with the step grid.
    let steps = (window_ms(cfg.window) / step_ms).max(1);
    let start = end - steps * step_ms;

    let series = source.range(ALERTS_QUERY, start, end, step).await?;
    let mut firing_over_time = vec![0.0; usize::try_from(steps + 1).unwrap_or(0)];
    let mut episodes = Vec::new();
    let mut alerts = Vec::new();
    for s in &series {
        let mut b = s.labels.builder();
        b.del(crate::model::METRIC_NAME).del("alertstate");
        let labels = b.build();
        let mut current: Option<Episode> = None;
        let mut last_t = i64::MIN;
        let mut count = 0usize;
        for p in &s.samples {
            if !(start..=end).contains(&p.t) {
                continue;
            }
            if let Some(i) = usize::try_from((p.t - start) / step_ms)
                .ok()
                .filter(|i| *i < firing_over_time.len())
            {
                firing_over_time[i] += 1.0;
            }
            match current.as_mut() {
                Some(_) if p.t == last_t + step_ms => {}
                _ => {
                    if let Some(mut done) = current.take() {
                        done.end = Some(last_t + step_ms);
                        episodes.push(done);
                        count += 1;
                    }
                    current = Some(Episode {
                        labels: labels.clone(),
                        start: p.t,
                        end: None,
                        from_before: p.t == start,
                    });
                }
            }
            last_t = p.t;
        }
        if let Some(mut done) = current.take() {
            if last_t != end {
                done.end = Some(last_t + step_ms);
            }
            episodes.push(done);
            count += 1;
        }
        let firing_ms = episodes
            .iter()
            .rev()
            .take(count)
            .map(|e| e.firing_ms(end, step_ms))
            .sum();
        if count > 0 {
            alerts.push(AlertTime {
                labels,
                firing_ms,
                episodes: count,
            });
        }
    }
    episodes.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.labels.cmp(&b.labels)));

    let mut rules: BTreeMap<String, RuleNoise> = BTreeMap::new();
    for a in &alerts {
        let name = a.labels.get_or_empty("alertname").to_string();
        let r = rules.entry(name.clone()).or_insert(RuleNoise {
            alertname: name,
            episodes: 0,
            firing_ms: 0,
            series: 0,
        });
        r.episodes += a.episodes;
        r.firing_ms += a.firing_ms;
        r.series += 1;
    }
    let mut noisiest: Vec<RuleNoise> = rules.into_values().collect();
    noisiest.sort_by(|a, b| {
        b.episodes
            .cmp(&a.episodes)
            .then(b.firing_ms.cmp(&a.firing_ms))
            .then_with(|| a.alertname.cmp(&b.alertname))
    });
    noisiest.truncate(NOISIEST);

    alerts.sort_by(|a, b| {
        b.firing_ms
            .cmp(&a.firing_ms)
            .then_with(|| a.labels.cmp(&b.labels))
    });
    let alerts_omitted = alerts.len().saturating_sub(MAX_ROWS);
    alerts.truncate(MAX_ROWS);

    let up_query = format!("avg_over_time(up[{}ms])", end - start);
    let up = source.instant(&up_query, end).await?;
    let mut jobs: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for s in up {
        jobs.entry(s.labels.get_or_empty("job").to_string())
            .or_default()
            .push((s.labels.get_or_empty("instance").to_string(), s.v));
    }
    let availability = jobs
        .into_iter()
        .take(MAX_ROWS)
        .map(|(job, targets)| {
            let n = targets.len();
            let ratio = targets.iter().map(|t| t.1).sum::<f64>() / n as f64;
            let worst = targets
                .into_iter()
                .min_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
            JobAvailability {
                job,
                ratio,
                targets: n,
                worst,
            }
        })
        .collect();

    Ok(Report {
        name: cfg.name.clone(),
        title: cfg.title.clone(),
        start,
        end,
        window: cfg.window,
        step,
        episodes,
        alerts,
        alerts_omitted,
        noisiest,
        availability,
        firing_over_time,
    })
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::config::notify::IntervalLocation;
    use crate::model::stale_nan;
    use crate::promql::Engine;
    use crate::reports::source::LocalSource;
    use crate::storage::Storage;
    use crate::storage::mem::MemStorage;
    use std::sync::Arc;

    /// 2026-12-07T09:00:00Z, a Monday.
    const END: i64 = 1_796_634_000_000;
    const MIN: i64 = 60_000;

    fn cfg(window: Duration) -> ReportConfig {
        ReportConfig {
            name: "weekly".into(),
            schedule_text: "0 9 * * MON".into(),
            schedule: crate::config::notify::parse_cron("0 9 * * MON").unwrap(),
            location: IntervalLocation::Utc,
            receiver: "mail".into(),
            window,
            title: "Weekly".into(),
        }
    }

    /// Writes `ALERTS` samples every `every` ms over `[from, to)` (and a
    /// staleness marker at `to` unless it is None), as the rules engine does.
    fn firing(st: &MemStorage, labels: &[(&str, &str)], from: i64, to: Option<i64>, every: i64) {
        let mut pairs = vec![("__name__", "ALERTS"), ("alertstate", "firing")];
        pairs.extend_from_slice(labels);
        let l = Labels::from_pairs(pairs);
        let mut app = st.appender();
        let stop = to.unwrap_or(END + 1);
        let mut t = from;
        while t < stop {
            app.append(&l, t, 1.0).unwrap();
            t += every;
        }
        if let Some(to) = to {
            app.append(&l, to, stale_nan()).unwrap();
        }
        app.commit().unwrap();
    }

    fn up(st: &MemStorage, job: &str, instance: &str, values: &[f64], from: i64, every: i64) {
        let l = Labels::from_pairs([("__name__", "up"), ("job", job), ("instance", instance)]);
        let mut app = st.appender();
        for (i, v) in values.iter().enumerate() {
            app.append(&l, from + i as i64 * every, *v).unwrap();
        }
        app.commit().unwrap();
    }

    #[test]
    fn steps_follow_the_window() {
        assert_eq!(
            step_for(Duration::from_secs(7 * 86400)),
            Duration::from_secs(60)
        );
        assert_eq!(step_for(Duration::from_secs(3600)), MIN_STEP);
        assert_eq!(
            step_for(Duration::from_secs(30 * 86400)),
            Duration::from_secs(258)
        );
    }

    #[tokio::test]
    async fn figures_over_known_samples_are_exact() {
        let st = Arc::new(MemStorage::new());
        let start = END - 60 * MIN;
        // 1h window, 15s steps. HostDown on a: 10:00..20:00 and again
        // 40:00..45:00 into the window; on b: firing since before the
        // window until 05:00; DiskFull: from 50:00, still firing.
        let a = [("alertname", "HostDown"), ("instance", "a:9100")];
        let b = [("alertname", "HostDown"), ("instance", "b:9100")];
        firing(&st, &a, start + 10 * MIN, Some(start + 20 * MIN), 15_000);
        firing(&st, &a, start + 40 * MIN, Some(start + 45 * MIN), 15_000);
        firing(&st, &b, start - 30 * MIN, Some(start + 5 * MIN), 15_000);
        firing(
            &st,
            &[("alertname", "DiskFull")],
            start + 50 * MIN,
            None,
            15_000,
        );
        // node: a up 3 of 4 samples, b always; api: down half the time.
        up(
            &st,
            "node",
            "a:9100",
            &[1.0, 1.0, 0.0, 1.0],
            start + MIN,
            10 * MIN,
        );
        up(
            &st,
            "node",
            "b:9100",
            &[1.0, 1.0, 1.0, 1.0],
            start + MIN,
            10 * MIN,
        );
        up(&st, "api", "c:80", &[0.0, 1.0], start + MIN, 10 * MIN);

        let source = LocalSource::new(Arc::new(Engine::default()), st.clone());
        let r = compute(&source, &cfg(Duration::from_secs(3600)), END)
            .await
            .unwrap();
        assert_eq!(r.start, start);
        assert_eq!(r.step, Duration::from_secs(15));
        let got: Vec<(String, i64, Option<i64>, bool)> = r
            .episodes
            .iter()
            .map(|e| {
                (
                    e.labels.to_string(),
                    (e.start - start) / 1000,
                    e.end.map(|t| (t - start) / 1000),
                    e.from_before,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    r#"{alertname="HostDown", instance="b:9100"}"#.to_string(),
                    0,
                    Some(300),
                    true
                ),
                (
                    r#"{alertname="HostDown", instance="a:9100"}"#.to_string(),
                    600,
                    Some(1200),
                    false
                ),
                (
                    r#"{alertname="HostDown", instance="a:9100"}"#.to_string(),
                    2400,
                    Some(2700),
                    false
                ),
                (r#"{alertname="DiskFull"}"#.to_string(), 3000, None, false),
            ]
        );
        assert_eq!((r.fired(), r.resolved(), r.still_firing()), (3, 3, 1));
        let times: Vec<(String, i64, usize)> = r
            .alerts
            .iter()
            .map(|a| (a.labels.to_string(), a.firing_ms / 1000, a.episodes))
            .collect();
        assert_eq!(
            times,
            vec![
                (
                    r#"{alertname="HostDown", instance="a:9100"}"#.to_string(),
                    900,
                    2
                ),
                // From 50:00 through the last step at 60:00 inclusive.
                (r#"{alertname="DiskFull"}"#.to_string(), 615, 1),
                (
                    r#"{alertname="HostDown", instance="b:9100"}"#.to_string(),
                    300,
                    1
                ),
            ]
        );
        assert_eq!(
            r.noisiest,
            vec![
                RuleNoise {
                    alertname: "HostDown".into(),
                    episodes: 3,
                    firing_ms: 1_200_000,
                    series: 2
                },
                RuleNoise {
                    alertname: "DiskFull".into(),
                    episodes: 1,
                    firing_ms: 615_000,
                    series: 1
                },
            ]
        );
        assert_eq!(
            r.availability,
            vec![
                JobAvailability {
                    job: "api".into(),
                    ratio: 0.5,
                    targets: 1,
                    worst: Some(("c:80".into(), 0.5)),
                },
                JobAvailability {
                    job: "node".into(),
                    ratio: 0.875,
                    targets: 2,
                    worst: Some(("a:9100".into(), 0.75)),
                },
            ]
        );
        assert_eq!(r.firing_over_time.len(), 241);
        assert_eq!(r.firing_over_time[0], 1.0);
        assert_eq!(r.firing_over_time[20], 0.0);
        assert_eq!(r.firing_over_time[40], 1.0);
        assert_eq!(r.firing_over_time[240], 1.0);
        assert_eq!(
            r.firing_over_time.iter().sum::<f64>(),
            20.0 + 40.0 + 20.0 + 41.0
        );
    }
}
