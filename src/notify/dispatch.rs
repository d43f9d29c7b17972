//! The dispatcher: routes each alert through the route tree and files it
//! into the aggregation group of every route that handles it, and keeps
//! the schedule of group flushes.
//!
//! First and second stage of the pipeline (route -> aggregation groups).
//! The manager's timer loop asks [`Dispatcher::next_deadline`] how long to
//! sleep and flushes what [`Dispatcher::take_due`] returns; everything
//! after the flush (inhibit, silences, time intervals, dedup, send) is
//! `stage` and `manager`. Pure: wall time and tokio instants are
//! arguments. It keeps no alert that no group holds (the store does).

use std::collections::{BTreeSet, HashMap};

use tokio::time::Instant;

use crate::model::{Alert, Labels, Timestamp};

use super::group::AggrGroup;
use super::route::{Route, RouteOpts};

/// One route of the tree, flattened.
#[derive(Debug, Clone)]
pub struct RouteEntry {
    /// Alertmanager's route ID (key plus position), unique in a config.
    pub id: String,
    /// Alertmanager's route key, the prefix of group keys.
    pub key: String,
    pub path: Vec<usize>,
    pub opts: RouteOpts,
}

/// What one group hands to the rest of the pipeline at a flush.
#[derive(Debug, Clone)]
pub struct Flush {
    pub group: u64,
    pub route: usize,
    pub key: String,
    pub labels: Labels,
    /// In notification order, status fixed at the flush's `now`.
    pub alerts: Vec<Alert>,
}

/// Routes and groups.
#[derive(Debug)]
pub struct Dispatcher {
    root: Route,
    routes: Vec<RouteEntry>,
    by_path: HashMap<Vec<usize>, usize>,
    groups: HashMap<u64, AggrGroup>,
    by_labels: HashMap<(usize, Labels), u64>,
    /// Exactly one entry per group: its next flush.
    schedule: BTreeSet<(Instant, u64)>,
    next_id: u64,
}

impl Dispatcher {
    pub fn new(root: Route) -> Self {
        let mut routes = Vec::new();
        root.walk(&mut |r| {
            routes.push(RouteEntry {
                id: r.id.clone(),
                key: r.key.clone(),
                path: r.path.clone(),
                opts: r.opts.clone(),
            })
        });
        let by_path = routes
            .iter()
            .enumerate()
            .map(|(i, r)| (r.path.clone(), i))
            .collect();
        Dispatcher {
            root,
            routes,
            by_path,
            groups: HashMap::new(),
            by_labels: HashMap::new(),
            schedule: BTreeSet::new(),
            next_id: 1,
        }
    }

    pub fn root(&self) -> &Route {
        &self.root
    }

    pub fn route(&self, idx: usize) -> &RouteEntry {
        &self.routes[idx]
    }

    pub fn routes(&self) -> &[RouteEntry] {
        &self.routes
    }

    /// Indices of the routes that handle `labels`, in tree order.
    pub fn routes_for(&self, labels: &Labels) -> Vec<usize> {
        self.root
            .match_alert(labels)
            .into_iter()
            .filter_map(|r| self.by_path.get(&r.path).copied())
            .collect()
    }

    /// Files `alert` into the groups of every route that handles it,
    /// creating groups as needed. Returns how many groups it went to.
    pub fn insert(&mut self, alert: &Alert, now: Timestamp, now_i: Instant) -> usize {
        let routes = self.routes_for(&alert.labels);
        for &r in &routes {
            self.insert_into(r, alert.clone(), now, now_i);
        }
        routes.len()
    }

    fn insert_into(&mut self, route: usize, alert: Alert, now: Timestamp, now_i: Instant) {
        let entry = &self.routes[route];
        let r = self.root.find(&entry.path).unwrap_or(&self.root);
        let labels = r.group_labels(&alert.labels);
        let id = match self.by_labels.get(&(route, labels.clone())) {
            Some(id) => *id,
            None => {
                let id = self.next_id;
                self.next_id += 1;
                let key = format!("{}:{}", entry.key, super::route::label_set_string(&labels));
                let g = AggrGroup::new(id, route, labels.clone(), key, &entry.opts, now_i);
                self.schedule.insert((g.next_flush(), id));
                self.groups.insert(id, g);
                self.by_labels.insert((route, labels), id);
                id
            }
        };
        let opts = &self.routes[route].opts;
        if let Some(g) = self.groups.get_mut(&id) {
            let before = g.next_flush();
            if g.insert(alert, opts, now, now_i) {
                self.schedule.remove(&(before, id));
                self.schedule.insert((g.next_flush(), id));
            }
        }
    }

    /// When the earliest group flush is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.schedule.first().map(|(t, _)| *t)
    }

    /// The groups whose flush is due at `now_i`, earliest first. Each must
    /// then be passed to [`Dispatcher::flush`], which schedules it again.
    pub fn take_due(&mut self, now_i: Instant) -> Vec<u64> {
        let mut due = Vec::new();
        while let Some(&(t, id)) = self.schedule.first() {
            if t > now_i {
                break;
            }
            self.schedule.pop_first();
            due.push(id);
        }
        due
    }

    /// Flushes group `id` at `now` (see [`AggrGroup::flush`]). `None` when
    /// the group is gone or empty (an empty group is removed).
    pub fn flush(&mut self, id: u64, now: Timestamp, now_i: Instant) -> Option<Flush> {
        let g = self.groups.get_mut(&id)?;
        let opts = &self.routes[g.route].opts;
        self.schedule.remove(&(g.next_flush(), id));
        let alerts = g.flush(opts, now, now_i);
        self.schedule.insert((g.next_flush(), id));
        match alerts {
            Some(alerts) => Some(Flush {
                group: id,
                route: g.route,
                key: g.key.clone(),
                labels: g.labels.clone(),
                alerts,
            }),
            None => {
                self.remove(id);
                None
            }
        }
    }

    /// After a flush's notifications were accepted: drops its resolved
    /// alerts (unless updated since) and the group if that empties it.
    pub fn delete_resolved(&mut self, id: u64, flushed: &[Alert], now: Timestamp) {
        let Some(g) = self.groups.get_mut(&id) else {
            return;
        };
        g.delete_resolved(flushed, now);
        if g.is_empty() {
            self.remove(id);
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(g) = self.groups.remove(&id) {
            self.schedule.remove(&(g.next_flush(), id));
            self.by_labels.remove(&(g.route, g.labels));
        }
    }

    /// Removes empty groups; returns how many.
    pub fn remove_empty(&mut self) -> usize {
        let empty: Vec<u64> = self
            .groups
            .values()
            .filter(|g| g.is_empty())
            .map(|g| g.id)
            .collect();
        for id in &empty {
            self.remove(*id);
        }
        empty.len()
    }

    pub fn group(&self, id: u64) -> Option<&AggrGroup> {
        self.groups.get(&id)
    }

    pub fn groups(&self) -> impl Iterator<Item = &AggrGroup> {
        self.groups.values()
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The dispatcher for a new route tree after a reload. Every alert
    /// still pending in a group, and every alert of the store, is routed
    /// again; a group that exists on both sides (same route ID, same group
    /// labels) keeps its timer, so an unchanged group neither waits
    /// `group_wait` again nor flushes at once.
    pub fn rebuild<'a>(
        self,
        root: Route,
        store: impl Iterator<Item = &'a Alert>,
        now: Timestamp,
        now_i: Instant,
    ) -> Dispatcher {
        let mut next = Dispatcher::new(root);
        next.next_id = self.next_id;
        let mut seen = std::collections::HashSet::new();
        for a in store {
            seen.insert(a.fingerprint());
            next.insert(a, now, now_i);
        }
        for g in self.groups.values() {
            for a in g.alerts() {
                if seen.insert(a.fingerprint()) {
                    next.insert(a, now, now_i);
                }
            }
        }
        let old_timers: HashMap<(&str, &Labels), (bool, Instant)> = self
            .groups
            .values()
            .map(|g| {
                (
                    (self.routes[g.route].id.as_str(), &g.labels),
                    (g.has_flushed(), g.next_flush()),
                )
            })
            .collect();
        let ids: Vec<u64> = next.groups.keys().copied().collect();
        for id in ids {
            let Some(g) = next.groups.get_mut(&id) else {
                continue;
            };
            let key = (next.routes[g.route].id.as_str(), &g.labels);
            if let Some(&(flushed, at)) = old_timers.get(&key) {
                let before = g.next_flush();
                let at = if flushed { at } else { at.min(before) };
                g.inherit_timer(flushed, at);
                next.schedule.remove(&(before, id));
                next.schedule.insert((at, id));
            }
        }
        next
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::config::notify::load_str;
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::time::Duration;

    fn tree(yaml: &str) -> Route {
        Route::new(&load_str(yaml, "t.yml", Path::new(".")).unwrap().route)
    }

    const CONFIG: &str = r#"
route:
  receiver: default
  group_by: [alertname]
  group_wait: 10s
  group_interval: 1m
  routes:
    - receiver: db
      matchers: [service="db"]
      group_by: [alertname, cluster]
      continue: true
    - receiver: all
      matchers: [service=~".+"]
      group_by: ['...']
receivers: [{name: default}, {name: db}, {name: all}]
"#;

    fn alert(l: &str, starts: i64) -> Alert {
        Alert {
            labels: Labels::from_pairs(l.split(',').map(|p| p.split_once('=').unwrap())),
            annotations: BTreeMap::new(),
            starts_at: starts,
            ends_at: None,
            updated_at: starts,
            generator_url: String::new(),
        }
    }

    #[test]
    fn routes_alerts_into_groups_per_route() {
        let mut d = Dispatcher::new(tree(CONFIG));
        let t0 = Instant::now();
        let now = 100_000;
        assert_eq!(d.insert(&alert("alertname=A,x=1", now), now, t0), 1);
        assert_eq!(d.insert(&alert("alertname=A,x=2", now), now, t0), 1);
        // continue: the db route and the catch-all "all" route.
        assert_eq!(
            d.insert(&alert("alertname=A,service=db,cluster=eu", now), now, t0),
            2
        );
        assert_eq!(
            d.insert(&alert("alertname=A,service=db,cluster=us", now), now, t0),
            2
        );
        let mut keys: Vec<(String, usize)> = d.groups().map(|g| (g.key.clone(), g.len())).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                (
                    r#"{}/{service="db"}:{alertname="A", cluster="eu"}"#.to_string(),
                    1
                ),
                (
                    r#"{}/{service="db"}:{alertname="A", cluster="us"}"#.to_string(),
                    1
                ),
                (
                    r#"{}/{service=~".+"}:{alertname="A", cluster="eu", service="db"}"#.to_string(),
                    1
                ),
                (
                    r#"{}/{service=~".+"}:{alertname="A", cluster="us", service="db"}"#.to_string(),
                    1
                ),
                (r#"{}:{alertname="A"}"#.to_string(), 2),
            ]
        );
        assert_eq!(d.next_deadline(), Some(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn schedule_follows_flushes() {
        let mut d = Dispatcher::new(tree(CONFIG));
        let t0 = Instant::now();
        d.insert(&alert("alertname=A", 1_000), 1_000, t0);
        assert!(d.take_due(t0 + Duration::from_secs(9)).is_empty());
        let t1 = t0 + Duration::from_secs(10);
        let due = d.take_due(t1);
        assert_eq!(due.len(), 1);
        let f = d.flush(due[0], 11_000, t1).unwrap();
        assert_eq!(f.alerts.len(), 1);
        assert_eq!(f.key, r#"{}:{alertname="A"}"#);
        assert_eq!(d.next_deadline(), Some(t1 + Duration::from_secs(60)));
        // A resolved alert, once notified, empties and removes the group.
        let mut r = alert("alertname=A", 1_000);
        r.ends_at = Some(20_000);
        r.updated_at = 20_000;
        d.insert(&r, 20_000, t1);
        let t2 = t1 + Duration::from_secs(60);
        let due = d.take_due(t2);
        let f = d.flush(due[0], 71_000, t2).unwrap();
        d.delete_resolved(f.group, &f.alerts, 71_000);
        assert_eq!(d.group_count(), 0);
        assert_eq!(d.next_deadline(), None);
    }

    #[test]
    fn reload_keeps_timers_of_unchanged_groups() {
        let mut d = Dispatcher::new(tree(CONFIG));
        let t0 = Instant::now();
        d.insert(&alert("alertname=A", 1_000), 1_000, t0);
        d.insert(&alert("alertname=B,service=x", 1_000), 1_000, t0);
        let t1 = t0 + Duration::from_secs(10);
        for id in d.take_due(t1) {
            d.flush(id, 11_000, t1);
        }
        let pending: Vec<Alert> = d.groups().flat_map(|g| g.alerts().cloned()).collect();
        // The "all" route now groups by alertname only: its group is new;
        // the root's group is unchanged and keeps its next flush.
        let changed = CONFIG.replace("group_by: ['...']", "group_by: [alertname]");
        let t2 = t1 + Duration::from_secs(5);
        let d = d.rebuild(tree(&changed), pending.iter(), 16_000, t2);
        let mut next: Vec<(String, Instant)> = d
            .groups()
            .map(|g| (g.key.clone(), g.next_flush()))
            .collect();
        next.sort();
        assert_eq!(
            next,
            [
                (r#"{}/{service=~".+"}:{alertname="B"}"#.to_string(), t2),
                (
                    r#"{}:{alertname="A"}"#.to_string(),
                    t1 + Duration::from_secs(60)
                ),
            ]
        );
    }
}
