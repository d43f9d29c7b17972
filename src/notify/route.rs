//! The routing tree: which receivers an alert goes to, and with which
//! grouping and timing, exactly as Alertmanager decides it.
//!
//! Built from the validated [`RouteConfig`] with every inheritable option
//! resolved down the tree (receiver, `group_by`, `group_wait`,
//! `group_interval`, `repeat_interval`, and watchpost's
//! `send_resolved_when_muted`). As in Alertmanager, `mute_time_intervals`
//! and `active_time_intervals` apply only to the route that names them and
//! are not inherited.
//!
//! Matching is a depth-first, left-to-right walk: a route matches when its
//! matchers do; its children are tried in order and the first matching
//! child stops the search unless that child has `continue: true`; a
//! matching route without a matching child handles the alert itself.
//!
//! First stage of the notification pipeline (route -> group -> inhibit ->
//! silence/time intervals -> dedup -> send). Pure: no clock, no I/O.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::config::notify::{
    GroupBy, MatcherSyntaxError, NotifyConfig, RouteConfig, parse_matchers,
};
use crate::model::{Labels, MatchOp, Matcher};

/// Alertmanager's defaults for the root route.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);

/// How a route groups alerts into notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    /// `group_by: ['...']`: every distinct label set is its own group.
    All,
    /// By these labels (empty: one group for every alert of the route).
    By(BTreeSet<String>),
}

/// The effective options of one route after inheritance.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteOpts {
    pub receiver: String,
    pub grouping: Grouping,
    /// How long a new group waits for more alerts before its first
    /// notification.
    pub group_wait: Duration,
    /// How long to wait before notifying about changes in a group that has
    /// already been notified.
    pub group_interval: Duration,
    /// How long to wait before repeating an unchanged notification.
    pub repeat_interval: Duration,
    /// This route's own mute intervals (not inherited).
    pub mute_time_intervals: Vec<String>,
    /// This route's own active intervals (not inherited).
    pub active_time_intervals: Vec<String>,
    /// watchpost extension (inherited, default false).
    pub send_resolved_when_muted: bool,
}

/// One node of the routing tree with its options resolved.
#[derive(Debug, Clone)]
pub struct Route {
    /// Child indices from the root (`[]` for the root, `[2, 0]` for
    /// `route.routes[2].routes[0]`): unique within one config.
    pub path: Vec<usize>,
    /// Alertmanager's route key: the matchers of every route from the root
    /// down, e.g. `{}/{service="db"}`. Not unique when siblings have equal
    /// matchers; it is what Alertmanager's group keys are made of.
    pub key: String,
    /// Alertmanager's route ID: the key plus the position among siblings
    /// (`{}/{service="db"}/2`).
    pub id: String,
    /// All must match (a missing label matches as "").
    pub matchers: Vec<Matcher>,
    /// Keep trying siblings after this route matched.
    pub continue_matching: bool,
    pub opts: RouteOpts,
    pub routes: Vec<Route>,
}

impl Route {
    /// Builds the tree from the root route of a validated config.
    pub fn new(root: &RouteConfig) -> Route {
        let defaults = RouteOpts {
            receiver: String::new(),
            grouping: Grouping::By(BTreeSet::new()),
            group_wait: DEFAULT_GROUP_WAIT,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            send_resolved_when_muted: false,
        };
        Self::build(root, &defaults, None, Vec::new())
    }

    fn build(
        c: &RouteConfig,
        parent: &RouteOpts,
        parent_key: Option<&str>,
        path: Vec<usize>,
    ) -> Route {
        let mut opts = parent.clone();
        if let Some(r) = &c.receiver {
            opts.receiver = r.clone();
        }
        match &c.group_by {
            Some(GroupBy::All) => opts.grouping = Grouping::All,
            Some(GroupBy::Labels(l)) => opts.grouping = Grouping::By(l.iter().cloned().collect()),
            None => {}
        }
        if let Some(d) = c.group_wait {
            opts.group_wait = d;
        }
        if let Some(d) = c.group_interval {
            opts.group_interval = d;
        }
        if let Some(d) = c.repeat_interval {
            opts.repeat_interval = d;
        }
        if let Some(b) = c.send_resolved_when_muted {
            opts.send_resolved_when_muted = b;
        }
        opts.mute_time_intervals = c.mute_time_intervals.clone();
        opts.active_time_intervals = c.active_time_intervals.clone();

        let own = matchers_string(&c.matchers);
        let key = match parent_key {
            Some(p) => format!("{p}/{own}"),
            None => own,
        };
        let id = match path.last() {
            Some(i) => format!("{key}/{i}"),
            None => key.clone(),
        };
        let routes = c
            .routes
            .iter()
            .enumerate()
            .map(|(i, child)| {
                let mut p = path.clone();
                p.push(i);
                Self::build(child, &opts, Some(&key), p)
            })
            .collect();
        Route {
            path,
            key,
            id,
            matchers: c.matchers.clone(),
            continue_matching: c.continue_matching,
            opts,
            routes,
        }
    }

    /// Whether this route's own matchers accept `labels`.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches(labels.get_or_empty(&m.name)))
    }

    /// The routes that handle an alert with `labels`, in tree order (empty
    /// only when this route itself does not match; the root always does).
    pub fn match_alert(&self, labels: &Labels) -> Vec<&Route> {
        let mut out = Vec::new();
        self.collect(labels, &mut out);
        out
    }

    /// Appends the matches under this route; returns whether it matched.
    fn collect<'a>(&'a self, labels: &Labels, out: &mut Vec<&'a Route>) -> bool {
        if !self.matches(labels) {
            return false;
        }
        let before = out.len();
        for child in &self.routes {
            if child.collect(labels, out) && !child.continue_matching {
                break;
            }
        }
        if out.len() == before {
            out.push(self);
        }
        true
    }

    /// The labels that identify the alert's group on this route.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match &self.opts.grouping {
            Grouping::All => labels.clone(),
            Grouping::By(names) => Labels::from_vec(
                labels
                    .iter()
                    .filter(|l| names.contains(&l.name))
                    .cloned()
                    .collect(),
            ),
        }
    }

    /// Alertmanager's group key for the alert on this route:
    /// `{route key}:{group labels}`, e.g. `{}/{team="db"}:{alertname="Down"}`.
    /// It is the `groupKey` of webhook payloads and keys the notification
    /// log. Routes with equal keys (siblings with equal matchers) share
    /// group keys, as in Alertmanager; combine with [`Route::path`] where a
    /// key must be unique.
    pub fn group_key(&self, labels: &Labels) -> String {
        format!(
            "{}:{}",
            self.key,
            label_set_string(&self.group_labels(labels))
        )
    }

    /// `route.routes[2].routes[0]`: the route as the config writes it.
    pub fn path_name(&self) -> String {
        path_name(&self.path)
    }

    /// The route at `path` under this one.
    pub fn find(&self, path: &[usize]) -> Option<&Route> {
        match path.split_first() {
            None => Some(self),
            Some((i, rest)) => self.routes.get(*i)?.find(rest),
        }
    }

    /// Visits this route and every route below it, depth first.
    pub fn walk<'a>(&'a self, visit: &mut impl FnMut(&'a Route)) {
        visit(self);
        for r in &self.routes {
            r.walk(visit);
        }
    }
}

/// `route.routes[2].routes[0]` for the path `[2, 0]`.
pub fn path_name(path: &[usize]) -> String {
    let mut s = "route".to_string();
    for i in path {
        s.push_str(&format!(".routes[{i}]"));
    }
    s
}

/// One route an alert would reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// `route.routes[0]`.
    pub path: String,
    /// Alertmanager's route ID.
    pub id: String,
    pub receiver: String,
}

/// Where an alert with `labels` would be sent: every matching route with
/// its receiver, in tree order (what `amtool config routes test` prints).
pub fn routes_for(config: &NotifyConfig, labels: &Labels) -> Vec<RouteMatch> {
    Route::new(&config.route)
        .match_alert(labels)
        .into_iter()
        .map(|r| RouteMatch {
            path: r.path_name(),
            id: r.id.clone(),
            receiver: r.opts.receiver.clone(),
        })
        .collect()
}

/// Parses a label set written as `a=b,c="d e"` (or `{...}`), as
/// `watchpost notify routes --labels` takes it: every pair must use `=`.
pub fn parse_label_set(s: &str) -> Result<Labels, MatcherSyntaxError> {
    let ms = parse_matchers(s)?;
    let mut pairs = Vec::with_capacity(ms.len());
    for m in ms {
        if m.op != MatchOp::Equal {
            return Err(MatcherSyntaxError(format!(
                "{}{}{:?} is not a label: write name=value",
                m.name, m.op, m.value
            )));
        }
        pairs.push((m.name, m.value));
    }
    Ok(Labels::from_pairs(pairs))
}

/// Alertmanager's `Matchers.String()`: `{a="b",c=~"d"}`.
pub fn matchers_string(ms: &[Matcher]) -> String {
    let parts: Vec<String> = ms.iter().map(matcher_string).collect();
    format!("{{{}}}", parts.join(","))
}

/// Alertmanager's `Matcher.String()`: the value quoted with `\`, `"` and
/// newlines escaped; a name that is not a plain word is quoted too.
pub fn matcher_string(m: &Matcher) -> String {
    let op = match m.op {
        MatchOp::Equal => "=",
        MatchOp::NotEqual => "!=",
        MatchOp::Regex => "=~",
        MatchOp::NotRegex => "!~",
    };
    let reserved = |c: char| c.is_whitespace() || "{}!=~,\\\"'`".contains(c);
    if m.name.contains(reserved) {
        return format!("{}{op}{}", go_quote(&m.name), go_quote(&m.value));
    }
    let mut v = String::with_capacity(m.value.len() + 2);
    for c in m.value.chars() {
        match c {
            '\\' => v.push_str("\\\\"),
            '\n' => v.push_str("\\n"),
            '"' => v.push_str("\\\""),
            c => v.push(c),
        }
    }
    format!("{}{op}\"{v}\"", m.name)
}

/// A label set the way Prometheus's `LabelSet.String()` prints it:
/// `{a="1", b="2"}`, values quoted like Go's `%q`.
pub fn label_set_string(l: &Labels) -> String {
    let parts: Vec<String> = l
        .iter()
        .map(|l| format!("{}={}", l.name, go_quote(&l.value)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() || c == '\u{a0}' || c == '\u{ad}' => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn route(
        receiver: Option<&str>,
        matchers: &str,
        cont: bool,
        routes: Vec<RouteConfig>,
    ) -> RouteConfig {
        RouteConfig {
            receiver: receiver.map(str::to_string),
            group_by: None,
            matchers: parse_matchers(matchers).unwrap(),
            continue_matching: cont,
            group_wait: None,
            group_interval: None,
            repeat_interval: None,
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            send_resolved_when_muted: None,
            routes,
        }
    }

    fn labels(s: &str) -> Labels {
        Labels::from_pairs(s.split(',').filter(|p| !p.is_empty()).map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        }))
    }

    /// Alertmanager's documented example tree.
    fn example() -> Route {
        let mut root = route(
            Some("default"),
            "",
            false,
            vec![
                route(
                    Some("team-X-mails"),
                    r#"service=~"foo1|foo2|baz""#,
                    false,
                    vec![route(
                        Some("team-X-pager"),
                        "severity=critical",
                        false,
                        vec![],
                    )],
                ),
                route(
                    Some("team-Y-mails"),
                    "service=files",
                    false,
                    vec![route(
                        Some("team-Y-pager"),
                        "severity=critical",
                        false,
                        vec![],
                    )],
                ),
                route(
                    Some("team-DB-pager"),
                    "service=database",
                    false,
                    vec![
                        route(Some("team-X-pager"), "owner=team-X", true, vec![]),
                        route(Some("team-Y-pager"), "owner=team-Y", false, vec![]),
                    ],
                ),
                route(None, "audit=yes", true, vec![]),
                route(Some("audit-log"), "audit=yes", false, vec![]),
            ],
        );
        root.group_by = Some(GroupBy::Labels(vec!["alertname".into(), "cluster".into()]));
        root.routes[2].group_by = Some(GroupBy::Labels(vec![
            "alertname".into(),
            "cluster".into(),
            "database".into(),
        ]));
        root.routes[2].repeat_interval = Some(Duration::from_secs(3600));
        root.routes[1].group_by = Some(GroupBy::All);
        root.routes
            .push(route(Some("muted"), "team=night", false, vec![]));
        root.routes[5].mute_time_intervals = vec!["nights".into()];
        root.send_resolved_when_muted = Some(true);
        Route::new(&root)
    }

    #[test]
    fn matching_follows_alertmanager() {
        let tree = example();
        let cases: &[(&str, &[&str])] = &[
            ("alertname=X", &["default"]),
            ("service=foo1", &["team-X-mails"]),
            ("service=foo2,severity=critical", &["team-X-pager"]),
            ("service=foo3,severity=critical", &["default"]),
            ("service=files,severity=warning", &["team-Y-mails"]),
            ("service=database", &["team-DB-pager"]),
            // continue on the first child: both children match.
            ("service=database,owner=team-X", &["team-X-pager"]),
            ("service=database,owner=team-Y", &["team-Y-pager"]),
            // A continuing route inherits its parent's receiver, and the
            // search goes on to its sibling.
            ("audit=yes", &["default", "audit-log"]),
            // First match wins: the database route stops the search before
            // the audit routes.
            ("service=database,audit=yes", &["team-DB-pager"]),
        ];
        for (l, want) in cases {
            let got: Vec<&str> = tree
                .match_alert(&labels(l))
                .iter()
                .map(|r| r.opts.receiver.as_str())
                .collect();
            assert_eq!(&got, want, "labels {l}");
        }
    }

    #[test]
    fn options_inherit_down_the_tree() {
        let tree = example();
        let pager = tree.find(&[0, 0]).unwrap();
        assert_eq!(pager.opts.group_wait, DEFAULT_GROUP_WAIT);
        assert_eq!(pager.opts.repeat_interval, DEFAULT_REPEAT_INTERVAL);
        assert_eq!(
            pager.opts.grouping,
            Grouping::By(["alertname".to_string(), "cluster".to_string()].into())
        );
        assert!(pager.opts.send_resolved_when_muted);
        let db_x = tree.find(&[2, 0]).unwrap();
        assert_eq!(db_x.opts.repeat_interval, Duration::from_secs(3600));
        assert!(matches!(&db_x.opts.grouping, Grouping::By(s) if s.contains("database")));
        assert_eq!(tree.find(&[1, 0]).unwrap().opts.grouping, Grouping::All);
        // Time intervals belong to the route that names them.
        assert_eq!(
            tree.find(&[5]).unwrap().opts.mute_time_intervals,
            ["nights"]
        );
        assert!(tree.opts.mute_time_intervals.is_empty());
        assert_eq!(tree.find(&[3]).unwrap().opts.receiver, "default");
    }

    #[test]
    fn keys_and_ids_like_alertmanager() {
        let tree = example();
        assert_eq!(tree.key, "{}");
        assert_eq!(tree.id, "{}");
        let r = tree.find(&[0, 0]).unwrap();
        assert_eq!(
            r.key,
            r#"{}/{service=~"foo1|foo2|baz"}/{severity="critical"}"#
        );
        assert_eq!(
            r.id,
            r#"{}/{service=~"foo1|foo2|baz"}/{severity="critical"}/0"#
        );
        assert_eq!(tree.find(&[2]).unwrap().id, r#"{}/{service="database"}/2"#);
        assert_eq!(r.path_name(), "route.routes[0].routes[0]");
        // Siblings with equal matchers share a key but not an id or path.
        let (a, b) = (tree.find(&[3]).unwrap(), tree.find(&[4]).unwrap());
        assert_eq!(a.key, b.key);
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn group_keys_like_alertmanager() {
        let tree = example();
        let l = labels("alertname=Down,cluster=eu,instance=a:1");
        let r = tree.match_alert(&l)[0];
        assert_eq!(r.group_key(&l), r#"{}:{alertname="Down", cluster="eu"}"#);
        let l = labels("service=files,x=\"q\"");
        let r = tree.match_alert(&l)[0];
        assert_eq!(
            r.group_key(&l),
            r#"{}/{service="files"}:{service="files", x="\"q\""}"#
        );
        // No group_by at all: one group per route.
        let flat = Route::new(&route(Some("r"), "", false, vec![]));
        assert_eq!(flat.group_key(&l), "{}:{}");
    }

    #[test]
    fn label_sets_from_the_command_line() {
        let l = parse_label_set(r#"alertname=Down,severity="page me""#).unwrap();
        assert_eq!(l.get("severity"), Some("page me"));
        assert_eq!(l.len(), 2);
        assert!(parse_label_set("a=~b").is_err());
        assert!(parse_label_set("a").is_err());
        assert!(parse_label_set("").unwrap().is_empty());
    }

    #[test]
    fn quoting_like_go() {
        assert_eq!(go_quote("a\"b\\c\nd\u{1}é"), r#""a\"b\\c\nd\x01é""#);
        let m = Matcher::new(MatchOp::Regex, "a b", "x").unwrap();
        assert_eq!(matcher_string(&m), r#""a b"=~"x""#);
    }
}
