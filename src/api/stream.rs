//! The alert event stream: `GET /api/v1/alerts/stream`, Server-Sent
//! Events of alert state changes, so consumers (the web UI, chat bots,
//! status pages) learn of a change as it happens instead of polling.
//!
//! [`AlertEvents`] is the hub. Sources report what they see: rule
//! evaluation (every group's pending and firing alerts after each
//! evaluation, through the observer `app` installs), alerts pushed to
//! `POST /api/v2/alerts`, heartbeats, and the notification pipeline's
//! silences (polled, see [`watch_notify`]). The hub keeps the last state
//! of every active alert and turns reports into events only when a state
//! changes, numbered by a sequence that only grows (it starts at the
//! start time in microseconds, so ids of an earlier run are older than
//! every id of this one). The last events are kept in a bounded ring, so a
//! client reconnecting with `Last-Event-ID` gets exactly what it missed;
//! when that is no longer buffered it gets `event: reset` and re-fetches
//! `/api/v1/alerts`.
//!
//! Wire format (the web UI depends on it):
//!
//! ```text
//! id: 1764912345678000017
//! event: alert
//! data: {"state":"firing","labels":{..},"annotations":{..},"activeAt":"..","value":"1e+00","fingerprint":"..","source":"rule"}
//! ```
//!
//! States: `pending`, `firing`, `resolved` (was firing), `inactive` (was
//! pending, never fired), `silenced` and `unsilenced` (the pipeline's
//! silences and inhibitions; at once for silence changes made through the
//! API, within `notify_poll` otherwise). Sources: `rule`, `push`, `heartbeat`,
//! `notify` (an alert the pipeline holds whose origin the hub never saw).
//!
//! The hub decides nothing about alerts; it only records and relays.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;

use super::ApiState;
use super::rules::go_exp;
use crate::model::{Alert, Labels, Timestamp, fingerprint_hex};
use crate::notify::{AlertView, NotifyManager};
use crate::rules::{ActiveAlert, AlertState};

/// How the stream behaves.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Events kept for `Last-Event-ID` resumption.
    pub buffer: usize,
    /// How often an idle stream sends a comment, so proxies and clients
    /// see the connection alive.
    pub keep_alive: Duration,
    /// Streams open at once; more are refused with 503.
    pub max_streams: usize,
    /// How often the notification pipeline is looked at for silences and
    /// expired pushed alerts.
    pub notify_poll: Duration,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            buffer: 1024,
            keep_alive: Duration::from_secs(15),
            max_streams: 64,
            notify_poll: Duration::from_secs(1),
        }
    }
}

/// Where an alert comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Rule,
    Push,
    Heartbeat,
    Notify,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Rule => "rule",
            Source::Push => "push",
            Source::Heartbeat => "heartbeat",
            Source::Notify => "notify",
        }
    }
}

/// The state an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventState {
    Pending,
    Firing,
    /// It fired and stopped.
    Resolved,
    /// It was pending and stopped without firing.
    Inactive,
    Silenced,
    Unsilenced,
}

impl EventState {
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Pending => "pending",
            EventState::Firing => "firing",
            EventState::Resolved => "resolved",
            EventState::Inactive => "inactive",
            EventState::Silenced => "silenced",
            EventState::Unsilenced => "unsilenced",
        }
    }
}

/// What a source reports about one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertChange {
    pub state: EventState,
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub active_at: Timestamp,
    /// The rule's value; `None` where there is none (pushed alerts).
    pub value: Option<f64>,
    pub source: Source,
}

impl AlertChange {
    /// A pushed or heartbeat alert: firing until its `ends_at`.
    pub fn from_alert(a: &Alert, now: Timestamp, source: Source, value: Option<f64>) -> Self {
        AlertChange {
            state: if a.resolved_at(now) {
                EventState::Resolved
            } else {
                EventState::Firing
            },
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            active_at: a.starts_at,
            value,
            source,
        }
    }
}

impl AlertChange {
    /// A rule's pending or firing alert.
    pub fn from_rule(a: &ActiveAlert) -> Self {
        AlertChange {
            state: match a.state {
                AlertState::Pending => EventState::Pending,
                AlertState::Firing => EventState::Firing,
                AlertState::Inactive => EventState::Resolved,
            },
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            active_at: a.active_at,
            value: Some(a.value),
            source: Source::Rule,
        }
    }
}

struct Known {
    change: AlertChange,
    /// `poll` generation it was last reported in; pushed alerts reported
    /// after a notify snapshot was taken are not expired by that snapshot.
    seen: u64,
}

struct Hub {
    last_id: u64,
    ring: VecDeque<(u64, Arc<str>)>,
    known: HashMap<u64, Known>,
    /// Rule groups' active alerts, to see which ones went away.
    scopes: HashMap<String, HashSet<u64>>,
    /// Alerts the pipeline currently suppresses.
    suppressed: HashSet<u64>,
    generation: u64,
}

/// What a client gets after its last seen id.
enum Since {
    Events(Vec<(u64, Arc<str>)>),
    /// Events after the id were dropped (or the id is from another run):
    /// continue from this id after a reset.
    Reset(u64),
}

/// The hub. See the module docs.
pub struct AlertEvents {
    hub: Mutex<Hub>,
    latest: watch::Sender<u64>,
    opts: StreamOptions,
    streams: Arc<Semaphore>,
    closed: CancellationToken,
    /// Wakes [`watch_notify`] early (a silence changed).
    poke: Notify,
}

impl std::fmt::Debug for AlertEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertEvents").finish_non_exhaustive()
    }
}

fn time(ts: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(ts)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

fn event_data(c: &AlertChange, state: EventState, fp: u64, extra: Option<(&str, Value)>) -> String {
    let mut m = Map::new();
    m.insert("state".into(), json!(state.as_str()));
    m.insert(
        "labels".into(),
        Value::Object(
            c.labels
                .iter()
                .map(|l| (l.name.clone(), Value::String(l.value.clone())))
                .collect(),
        ),
    );
    m.insert("annotations".into(), json!(c.annotations));
    m.insert("activeAt".into(), json!(time(c.active_at)));
    m.insert(
        "value".into(),
        c.value.map_or(Value::Null, |v| Value::String(go_exp(v))),
    );
    m.insert("fingerprint".into(), json!(fingerprint_hex(fp)));
    m.insert("source".into(), json!(c.source.as_str()));
    if let Some((k, v)) = extra {
        m.insert(k.into(), v);
    }
    Value::Object(m).to_string()
}

impl AlertEvents {
    /// A hub whose first event id follows `now` (ms) in microseconds, and
    /// whose streams end when `closed` is cancelled (server shutdown waits
    /// for open responses).
    pub fn new(opts: StreamOptions, now: Timestamp, closed: CancellationToken) -> Arc<Self> {
        let base = u64::try_from(now).unwrap_or(0).saturating_mul(1000);
        let (latest, _) = watch::channel(base);
        Arc::new(AlertEvents {
            hub: Mutex::new(Hub {
                last_id: base,
                ring: VecDeque::with_capacity(opts.buffer.min(4096)),
                known: HashMap::new(),
                scopes: HashMap::new(),
                suppressed: HashSet::new(),
                generation: 0,
            }),
            latest,
            streams: Arc::new(Semaphore::new(opts.max_streams)),
            opts,
            closed,
            poke: Notify::new(),
        })
    }

    pub fn options(&self) -> &StreamOptions {
        &self.opts
    }

    fn lock(&self) -> MutexGuard<'_, Hub> {
        // Each change is one short step; a panic elsewhere leaves
        // consistent data.
        self.hub.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, hub: &mut Hub, data: String) {
        hub.last_id += 1;
        hub.ring.push_back((hub.last_id, data.into()));
        while hub.ring.len() > self.opts.buffer {
            hub.ring.pop_front();
        }
        self.latest.send_replace(hub.last_id);
    }

    fn observe_locked(&self, hub: &mut Hub, c: AlertChange) -> u64 {
        let fp = c.labels.stable_hash();
        let generation = hub.generation;
        match c.state {
            EventState::Pending | EventState::Firing => {
                let changed = hub.known.get(&fp).is_none_or(|k| k.change.state != c.state);
                if changed {
                    let data = event_data(&c, c.state, fp, None);
                    self.emit(hub, data);
                }
                hub.known.insert(
                    fp,
                    Known {
                        change: c,
                        seen: generation,
                    },
                );
            }
            EventState::Resolved | EventState::Inactive => {
                if let Some(k) = hub.known.remove(&fp) {
                    let state = match (k.change.state, c.state) {
                        (EventState::Pending, _) => EventState::Inactive,
                        (_, s) => s,
                    };
                    let data = event_data(&c, state, fp, None);
                    self.emit(hub, data);
                }
            }
            EventState::Silenced | EventState::Unsilenced => {}
        }
        fp
    }

    /// Records one alert's state; an event goes out when it changed.
    pub fn observe(&self, c: AlertChange) {
        let mut hub = self.lock();
        self.observe_locked(&mut hub, c);
    }

    /// Replaces the active alerts of `scope` (one rule group): new and
    /// changed ones are events, ones no longer there are resolved (or
    /// inactive, when they never fired).
    pub fn observe_set(&self, scope: &str, alerts: Vec<AlertChange>) {
        let mut hub = self.lock();
        let old = hub.scopes.remove(scope).unwrap_or_default();
        let mut now: HashSet<u64> = HashSet::with_capacity(alerts.len());
        for c in alerts {
            now.insert(self.observe_locked(&mut hub, c));
        }
        // In label order, so the events do not depend on hashing.
        let mut gone: Vec<Known> = old
            .difference(&now)
            .filter_map(|fp| hub.known.remove(fp))
            .collect();
        gone.sort_by(|a, b| a.change.labels.cmp(&b.change.labels));
        for k in gone {
            let fp = k.change.labels.stable_hash();
            {
                let state = match k.change.state {
                    EventState::Pending => EventState::Inactive,
                    _ => EventState::Resolved,
                };
                let data = event_data(&k.change, state, fp, None);
                self.emit(&mut hub, data);
            }
        }
        if !now.is_empty() {
            hub.scopes.insert(scope.to_string(), now);
        }
    }

    /// Starts a notify snapshot: pushed alerts reported after this are not
    /// expired by it.
    fn begin_poll(&self) -> u64 {
        let mut hub = self.lock();
        hub.generation += 1;
        hub.generation
    }

    /// Compares the pipeline's alerts (a snapshot taken after
    /// [`Self::begin_poll`] returned `generation`) with what was reported:
    /// suppression changes become `silenced` / `unsilenced`, and pushed
    /// alerts that the pipeline no longer holds as active are resolved.
    fn observe_notify(&self, generation: u64, views: &[AlertView]) {
        let mut hub = self.lock();
        let mut active = HashSet::with_capacity(views.len());
        let mut suppressed = HashSet::new();
        for v in views {
            let fp = v.alert.fingerprint();
            active.insert(fp);
            let is = v.state() == "suppressed";
            if is {
                suppressed.insert(fp);
            }
            let was = hub.suppressed.contains(&fp);
            if is == was {
                continue;
            }
            let change = match hub.known.get(&fp) {
                Some(k) => k.change.clone(),
                None => AlertChange::from_alert(&v.alert, 0, Source::Notify, None),
            };
            let (state, extra) = if is {
                (
                    EventState::Silenced,
                    Some((
                        "silencedBy",
                        json!(
                            v.silenced_by
                                .iter()
                                .chain(&v.inhibited_by)
                                .collect::<Vec<_>>()
                        ),
                    )),
                )
            } else {
                (EventState::Unsilenced, None)
            };
            let data = event_data(&change, state, fp, extra);
            self.emit(&mut hub, data);
        }
        hub.suppressed = suppressed;
        let expired: Vec<u64> = hub
            .known
            .iter()
            .filter(|(fp, k)| {
                k.change.source == Source::Push && k.seen < generation && !active.contains(fp)
            })
            .map(|(fp, _)| *fp)
            .collect();
        for fp in expired {
            if let Some(k) = hub.known.remove(&fp) {
                let data = event_data(&k.change, EventState::Resolved, fp, None);
                self.emit(&mut hub, data);
            }
        }
    }

    fn since(&self, cursor: u64) -> Since {
        let hub = self.lock();
        let first = hub.ring.front().map_or(hub.last_id + 1, |(id, _)| *id);
        if cursor > hub.last_id || cursor.saturating_add(1) < first {
            return Since::Reset(hub.last_id);
        }
        Since::Events(
            hub.ring
                .iter()
                .filter(|(id, _)| *id > cursor)
                .cloned()
                .collect(),
        )
    }

    /// Makes [`watch_notify`] look at the pipeline now.
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// The id of the newest event.
    pub fn last_id(&self) -> u64 {
        self.lock().last_id
    }
}

/// Looks at the notification pipeline every `notify_poll` (silences start
/// and end on their own schedule, pushed alerts time out) and right after
/// a silence is set or expired over the API, until `cancel`.
pub async fn watch_notify(
    events: Arc<AlertEvents>,
    notify: Arc<NotifyManager>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(events.opts.notify_poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
            _ = events.poke.notified() => {}
        }
        let generation = events.begin_poll();
        let views = notify.alerts();
        events.observe_notify(generation, &views);
    }
}

struct Reader {
    events: Arc<AlertEvents>,
    cursor: u64,
    pending: VecDeque<Event>,
    rx: watch::Receiver<u64>,
    _permit: OwnedSemaphorePermit,
}

fn error(status: StatusCode, msg: String) -> Response {
    (
        status,
        axum::Json(json!({"status": "error", "errorType": "bad_data", "error": msg})),
    )
        .into_response()
}

/// `GET /api/v1/alerts/stream`.
pub async fn stream(State(st): State<ApiState>, headers: HeaderMap) -> Response {
    let Some(events) = st.events.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the alert stream is not running in this server".into(),
        );
    };
    let cursor = match headers.get("last-event-id").map(|v| v.to_str()) {
        None => None,
        Some(Ok(s)) if s.trim().is_empty() => None,
        Some(Ok(s)) => match s.trim().parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "Last-Event-ID {s:?} is not an event id of this stream: send the id of the last event received, or no header to start from now"
                    ),
                );
            }
        },
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Last-Event-ID is not text: send the id of the last event received".into(),
            );
        }
    };
    let Ok(permit) = events.streams.clone().try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many alert streams are open (at most {}): close one, or poll /api/v1/alerts with If-None-Match",
                events.opts.max_streams
            ),
        );
    };
    let mut rx = events.latest.subscribe();
    rx.mark_unchanged();
    let reader = Reader {
        cursor: cursor.unwrap_or_else(|| events.last_id()),
        events: events.clone(),
        pending: VecDeque::new(),
        rx,
        _permit: permit,
    };
    let s = futures_util::stream::unfold(reader, |mut r| async move {
        loop {
            if let Some(e) = r.pending.pop_front() {
                return Some((Ok::<Event, Infallible>(e), r));
            }
            // Marked seen before reading, so an event emitted after the
            // read wakes the wait below.
            r.rx.borrow_and_update();
            match r.events.since(r.cursor) {
                Since::Reset(latest) => {
                    r.pending.push_back(
                        Event::default()
                            .id(latest.to_string())
                            .event("reset")
                            .data(
                                json!({"reason": format!("events after id {} are no longer available: re-fetch /api/v1/alerts", r.cursor)})
                                    .to_string(),
                            ),
                    );
                    r.cursor = latest;
                    continue;
                }
                Since::Events(v) if !v.is_empty() => {
                    for (id, data) in v {
                        r.cursor = id;
                        r.pending.push_back(
                            Event::default()
                                .id(id.to_string())
                                .event("alert")
                                .data(&*data),
                        );
                    }
                    continue;
                }
                Since::Events(_) => {}
            }
            tokio::select! {
                _ = r.events.closed.cancelled() => return None,
                changed = r.rx.changed() => if changed.is_err() { return None },
            }
        }
    });
    Sse::new(s)
        .keep_alive(KeepAlive::new().interval(events.opts.keep_alive))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(name: &str, state: EventState, source: Source) -> AlertChange {
        AlertChange {
            state,
            labels: Labels::from_pairs([("alertname", name)]),
            annotations: BTreeMap::new(),
            active_at: 1_000,
            value: Some(1.0),
            source,
        }
    }

    fn data(ev: &AlertEvents, after: u64) -> Vec<Value> {
        match ev.since(after) {
            Since::Events(v) => v
                .iter()
                .map(|(_, d)| serde_json::from_str(d).unwrap())
                .collect(),
            Since::Reset(_) => panic!("reset"),
        }
    }

    #[test]
    fn only_state_changes_are_events() {
        let ev = AlertEvents::new(StreamOptions::default(), 1, CancellationToken::new());
        let start = ev.last_id();
        assert_eq!(start, 1000);
        ev.observe_set("g", vec![change("A", EventState::Pending, Source::Rule)]);
        ev.observe_set("g", vec![change("A", EventState::Pending, Source::Rule)]);
        ev.observe_set(
            "g",
            vec![
                change("A", EventState::Firing, Source::Rule),
                change("B", EventState::Pending, Source::Rule),
            ],
        );
        ev.observe_set("g", vec![]);
        let d = data(&ev, start);
        let states: Vec<(&str, &str)> = d
            .iter()
            .map(|v| {
                (
                    v["labels"]["alertname"].as_str().unwrap(),
                    v["state"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            states,
            [
                ("A", "pending"),
                ("A", "firing"),
                ("B", "pending"),
                ("A", "resolved"),
                ("B", "inactive")
            ]
        );
        assert_eq!(d[0]["source"], "rule");
        assert_eq!(d[0]["value"], "1e+00");
        assert_eq!(d[0]["activeAt"], "1970-01-01T00:00:01Z");
        assert_eq!(d[0]["fingerprint"].as_str().unwrap().len(), 16);
        // A resolution of something never reported is no event.
        ev.observe(change("C", EventState::Resolved, Source::Push));
        assert_eq!(ev.last_id(), start + 5);
    }

    #[test]
    fn resume_and_reset() {
        let opts = StreamOptions {
            buffer: 3,
            ..StreamOptions::default()
        };
        let ev = AlertEvents::new(opts, 0, CancellationToken::new());
        for i in 0..5 {
            ev.observe(change(&format!("A{i}"), EventState::Firing, Source::Push));
        }
        // Ids 1..=5; 3, 4, 5 are buffered.
        assert_eq!(data(&ev, 2).len(), 3);
        assert_eq!(data(&ev, 4).len(), 1);
        assert!(data(&ev, 5).is_empty());
        assert!(matches!(ev.since(1), Since::Reset(5)));
        assert!(
            matches!(ev.since(9), Since::Reset(5)),
            "an id of the future"
        );
    }

    #[test]
    fn pushed_alerts_expire_and_silences_are_reported() {
        let ev = AlertEvents::new(StreamOptions::default(), 0, CancellationToken::new());
        let a = Alert {
            labels: Labels::from_pairs([("alertname", "P")]),
            annotations: BTreeMap::new(),
            starts_at: 5,
            ends_at: None,
            updated_at: 5,
            generator_url: String::new(),
        };
        let g = ev.begin_poll();
        ev.observe(AlertChange::from_alert(&a, 10, Source::Push, None));
        let view = |silenced: bool| AlertView {
            alert: a.clone(),
            fingerprint: fingerprint_hex(a.fingerprint()),
            receivers: vec![],
            silenced_by: if silenced { vec!["s1".into()] } else { vec![] },
            inhibited_by: vec![],
        };
        // Reported after the snapshot began: not expired by an empty one.
        ev.observe_notify(g, &[]);
        assert_eq!(ev.last_id(), 1);
        let g = ev.begin_poll();
        ev.observe_notify(g, &[view(true)]);
        let g = ev.begin_poll();
        ev.observe_notify(g, &[view(false)]);
        let g = ev.begin_poll();
        ev.observe_notify(g, &[]);
        let d = data(&ev, 0);
        let states: Vec<&str> = d.iter().map(|v| v["state"].as_str().unwrap()).collect();
        assert_eq!(states, ["firing", "silenced", "unsilenced", "resolved"]);
        assert_eq!(d[1]["source"], "push");
        assert_eq!(d[1]["silencedBy"], json!(["s1"]));
        assert_eq!(d[0]["value"], Value::Null);
    }
}
