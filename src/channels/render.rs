//! Message templates for the channels: the loaded template set (watchpost's
//! defaults plus the config's `templates:` files), one parsed template per
//! message field, and the data a notification gives them.
//!
//! Every channel renders through [`Tmpl::render`], so template errors,
//! escaping and the clock are handled in one place. Templates are parsed
//! once, when a channel is built; rendering happens per send. This module
//! reads template files when the set is loaded and nothing else; it never
//! sends.

use std::path::PathBuf;

use crate::model::Timestamp;
use crate::notify::{AlertStatus, NotificationData, SendError};
use crate::template::{
    AmAlert, AmData, FuncMap, GoTime, MissingKey, Template, TemplateError, TemplateSet, Value,
    alertmanager_funcs,
};

use super::ChannelError;

/// watchpost's default templates (`telegram.default.message`, ...).
pub const DEFAULT_TEMPLATES: &str = include_str!("default.tmpl");

/// Largest template file read (a template is text someone wrote, not data).
const MAX_TEMPLATE_FILE_BYTES: u64 = 4 << 20;

/// The named templates a receiver's fields can call: watchpost's defaults,
/// then the config's template files in order (a later `define` replaces an
/// earlier one, as in Alertmanager). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Templates {
    set: TemplateSet,
}

impl Templates {
    /// The defaults alone.
    pub fn defaults() -> Result<Templates, ChannelError> {
        let mut set = TemplateSet::new(&alertmanager_funcs(GoTime::zero()))
            .with_missing_key(MissingKey::Zero);
        set.add("default.tmpl", DEFAULT_TEMPLATES)
            .map_err(|source| ChannelError::TemplateFile {
                path: PathBuf::from("default.tmpl (built in)"),
                reason: source.to_string(),
            })?;
        Ok(Templates { set })
    }

    /// The defaults plus every file matched by `patterns` (globs, already
    /// resolved against the config's directory), files of one pattern in
    /// sorted order. A pattern that matches nothing is not an error.
    pub fn load(patterns: &[String]) -> Result<Templates, ChannelError> {
        let mut t = Templates::defaults()?;
        for pattern in patterns {
            let paths = glob::glob(pattern).map_err(|e| ChannelError::TemplateGlob {
                pattern: pattern.clone(),
                reason: e.to_string(),
            })?;
            let mut files: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
            files.sort();
            for path in files {
                if path.is_dir() {
                    continue;
                }
                let text = read_bounded(&path).map_err(|e| ChannelError::TemplateFile {
                    path: path.clone(),
                    reason: format!("{e}: check the path and its permissions"),
                })?;
                t.add(&path.display().to_string(), &text).map_err(|e| {
                    ChannelError::TemplateFile {
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                })?;
            }
        }
        Ok(t)
    }

    /// Adds template text as file `name` (its `define`s replace earlier
    /// ones of the same name).
    pub fn add(&mut self, name: &str, text: &str) -> Result<(), TemplateError> {
        self.set.add(name, text)
    }

    /// Whether a template called `name` is defined.
    pub fn contains(&self, name: &str) -> bool {
        self.set.contains(name)
    }
}

fn read_bounded(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(path)?
        .take(MAX_TEMPLATE_FILE_BYTES)
        .read_to_string(&mut s)?;
    Ok(s)
}

/// One message field's template (`title`, `text`, ...), parsed.
#[derive(Debug, Clone)]
pub struct Tmpl {
    field: &'static str,
    kind: TmplKind,
}

#[derive(Debug, Clone)]
enum TmplKind {
    /// Text without actions renders as itself.
    Literal(String),
    Parsed(Box<Template>),
}

impl Tmpl {
    /// Parses `text` for the field `field` against `templates`.
    pub fn new(
        templates: &Templates,
        field: &'static str,
        text: &str,
    ) -> Result<Tmpl, TemplateError> {
        let kind = if text.contains("{{") {
            TmplKind::Parsed(Box::new(templates.set.template(field, text)?))
        } else {
            TmplKind::Literal(text.to_string())
        };
        Ok(Tmpl { field, kind })
    }

    /// Whether the field renders to nothing whatever the data (an unset
    /// optional field).
    pub fn is_empty(&self) -> bool {
        matches!(&self.kind, TmplKind::Literal(s) if s.is_empty())
    }

    /// Renders the field. An execution error is permanent: the same
    /// template fails the same way on every retry.
    pub fn render(&self, data: &RenderData) -> Result<String, SendError> {
        match &self.kind {
            TmplKind::Literal(s) => Ok(s.clone()),
            TmplKind::Parsed(t) => t.execute(&data.value, &data.funcs).map_err(|e| {
                SendError::permanent(
                    "template",
                    format!("rendering {}: {e}: fix the template", self.field),
                )
            }),
        }
    }

    /// Renders the field and trims surrounding whitespace (what
    /// Alertmanager does for URLs, keys and similar one-line fields).
    pub fn render_trimmed(&self, data: &RenderData) -> Result<String, SendError> {
        self.render(data).map(|s| s.trim().to_string())
    }
}

/// How values from the alerts are escaped before templates see them: as
/// Go's `html/template` would for HTML bodies, and for a Telegram parse
/// mode, so a `<` or `_` in a label cannot break the message's markup.
pub type Escape = fn(&str) -> String;

/// The data of one notification as templates see it, with the functions
/// bound to the send time.
pub struct RenderData {
    value: Value,
    funcs: FuncMap,
}

impl RenderData {
    /// Alertmanager's template data for `msg` at `now`, with every label,
    /// annotation, URL and receiver value passed through `escape`.
    pub fn new(msg: &NotificationData, now: Timestamp, escape: Option<Escape>) -> RenderData {
        let esc = |s: &str| match escape {
            Some(f) => f(s),
            None => s.to_string(),
        };
        let map =
            |l: &crate::model::Labels| l.iter().map(|l| (l.name.clone(), esc(&l.value))).collect();
        let data = AmData {
            receiver: esc(&msg.receiver),
            group_labels: map(&msg.group_labels),
            alerts: msg
                .alerts
                .iter()
                .map(|a| AmAlert {
                    resolved: a.status == AlertStatus::Resolved,
                    labels: map(&a.alert.labels),
                    annotations: a
                        .alert
                        .annotations
                        .iter()
                        .map(|(k, v)| (k.clone(), esc(v)))
                        .collect(),
                    starts_at: GoTime::from_unix_millis(a.alert.starts_at),
                    ends_at: match (a.status, a.alert.ends_at) {
                        (AlertStatus::Resolved, Some(e)) => GoTime::from_unix_millis(e),
                        // Alertmanager hides an end time not reached yet.
                        _ => GoTime::zero(),
                    },
                    generator_url: esc(&a.alert.generator_url),
                    fingerprint: a.fingerprint.clone(),
                })
                .collect(),
            external_url: esc(&msg.external_url),
        };
        RenderData {
            value: data.to_value(),
            funcs: alertmanager_funcs(GoTime::from_unix_millis(now)),
        }
    }
}

/// Go's `html/template` escaping of a text value.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::model::{Alert, Labels};

    fn data() -> NotificationData {
        let alert = |inst: &str, ends: Option<i64>| Alert {
            labels: Labels::from_pairs([
                ("alertname", "HostDown"),
                ("job", "node"),
                ("instance", inst),
            ]),
            annotations: [("summary".to_string(), format!("{inst} <down> & out"))]
                .into_iter()
                .collect(),
            starts_at: 1_700_000_000_000,
            ends_at: ends,
            updated_at: 0,
            generator_url: "http://w:9464/graph?g0.expr=up".into(),
        };
        NotificationData::new(
            "ops",
            "{}:{alertname=\"HostDown\"}",
            Labels::from_pairs([("alertname", "HostDown")]),
            vec![
                alert("a:9100", None),
                alert("b:9100", Some(1_700_000_001_000)),
            ],
            "http://watchpost:9464",
            1_700_000_005_000,
        )
    }

    #[test]
    fn every_default_name_the_config_refers_to_is_defined() {
        let t = Templates::defaults().unwrap();
        for name in [
            "telegram.default.message",
            "email.default.subject",
            "email.default.html",
            "email.default.text",
            "slack.default.title",
            "slack.default.username",
            "slack.default.fallback",
            "slack.default.callbackid",
            "slack.default.pretext",
            "slack.default.titlelink",
            "slack.default.iconemoji",
            "slack.default.iconurl",
            "slack.default.text",
            "slack.default.footer",
            "pagerduty.default.description",
            "pagerduty.default.client",
            "pagerduty.default.clientURL",
            "pagerduty.default.instances",
            "opsgenie.default.message",
            "opsgenie.default.description",
            "opsgenie.default.source",
            "victorops.default.state_message",
            "victorops.default.entity_display_name",
            "victorops.default.monitoring_tool",
            "pushover.default.title",
            "pushover.default.message",
            "pushover.default.url",
            "discord.default.title",
            "discord.default.message",
            "webex.default.message",
            "msteams.default.title",
            "msteams.default.summary",
            "msteams.default.text",
            "msteamsv2.default.title",
            "msteamsv2.default.text",
            "mattermost.default.username",
            "mattermost.default.title",
            "mattermost.default.titlelink",
            "mattermost.default.text",
            "mattermost.default.fallback",
            "mattermost.default.color",
            "log.default.message",
        ] {
            assert!(t.contains(name), "{name} is not defined");
        }
    }

    #[test]
    fn defaults_render() {
        let t = Templates::defaults().unwrap();
        let msg = data();
        let d = RenderData::new(&msg, 1_700_000_005_000, None);
        let r = |text: &str| Tmpl::new(&t, "f", text).unwrap().render(&d).unwrap();
        assert_eq!(
            r("{{ template \"email.default.subject\" . }}"),
            "[FIRING:1] HostDown (node)"
        );
        let text = r("{{ template \"slack.default.text\" . }}");
        assert_eq!(
            text,
            "Firing:\n\
             * a:9100 <down> & out\n  labels: alertname=HostDown instance=a:9100 job=node\n  since: 2023-11-14 22:13:20 UTC\n  source: http://w:9464/graph?g0.expr=up\n\
             \nResolved:\n\
             * b:9100 <down> & out\n  labels: alertname=HostDown instance=b:9100 job=node\n  since: 2023-11-14 22:13:20 UTC\n  source: http://w:9464/graph?g0.expr=up\n"
        );
        assert_eq!(
            r("{{ template \"slack.default.titlelink\" . }}"),
            "http://watchpost:9464/#/alerts?receiver=ops"
        );
        assert_eq!(
            r("{{ template \"log.default.message\" . }}"),
            "[FIRING:1] HostDown (node) receiver=ops \
             | firing HostDown{instance=\"a:9100\",job=\"node\"} \"a:9100 <down> & out\" \
             | resolved HostDown{instance=\"b:9100\",job=\"node\"} \"b:9100 <down> & out\""
        );
        // The literal fast path and a plain field.
        assert_eq!(r("no actions"), "no actions");
        assert!(Tmpl::new(&t, "f", "").unwrap().is_empty());
    }

    #[test]
    fn html_data_is_escaped_and_errors_are_permanent() {
        let t = Templates::defaults().unwrap();
        let msg = data();
        let d = RenderData::new(&msg, 0, Some(escape_html));
        let html = Tmpl::new(&t, "html", "{{ template \"email.default.html\" . }}")
            .unwrap()
            .render(&d)
            .unwrap();
        assert!(html.contains("a:9100 &lt;down&gt; &amp; out"), "{html}");
        assert!(!html.contains("<down>"), "{html}");
        let bad = Tmpl::new(&t, "title", "{{ template \"nope\" . }}").unwrap();
        let e = bad.render(&d).unwrap_err();
        assert!(!e.is_retryable());
        assert!(
            e.to_string().starts_with("template: rendering title: "),
            "{e}"
        );
        assert!(Tmpl::new(&t, "title", "{{ .Foo ").is_err());
    }

    #[test]
    fn user_files_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.tmpl"),
            "{{ define \"slack.default.title\" }}custom {{ .Status }}{{ end }}",
        )
        .unwrap();
        let pattern = dir.path().join("*.tmpl").display().to_string();
        let none = dir.path().join("*.missing").display().to_string();
        let t = Templates::load(&[pattern, none]).unwrap();
        let msg = data();
        let d = RenderData::new(&msg, 0, None);
        let out = Tmpl::new(&t, "title", "{{ template \"slack.default.title\" . }}")
            .unwrap()
            .render(&d)
            .unwrap();
        assert_eq!(out, "custom firing");

        std::fs::write(dir.path().join("b.tmpl"), "{{ define \"x\" }}{{ end").unwrap();
        let e = Templates::load(&[dir.path().join("b.tmpl").display().to_string()]).unwrap_err();
        assert!(e.to_string().contains("b.tmpl"), "{e}");
    }
}
