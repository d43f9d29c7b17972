//! `opsgenie_configs`: Opsgenie's Alert API. A firing group creates (or,
//! by its `alias`, deduplicates into) an alert with `POST /v2/alerts`; a
//! resolved group closes it with `POST /v2/alerts/{alias}/close`. The API
//! key travels as `Authorization: GenieKey …` and is scrubbed from errors.
//!
//! `update_alerts` (Alertmanager's extra requests that rewrite an open
//! alert's message and description) is not done: one send is one request.

use std::future::Future;
use std::pin::Pin;

use reqwest::header::HeaderValue;
use serde_json::{Map, Value, json};

use crate::config::SecretSource;
use crate::config::notify::OpsgenieConfig;
use crate::notify::{AlertStatus, NotificationData, Notifier, SendError};

use super::http::{Endpoint, HttpTransport};
use super::render::{RenderData, Tmpl};
use super::{Builder, ChannelError, Scrub, group_key_hash, now_ms, put, truncate, with_timeout};

/// Opsgenie's limit on `message`.
const MAX_MESSAGE: usize = 130;

pub struct Opsgenie {
    name: String,
    send_resolved: bool,
    api_key: SecretSource,
    api_url: String,
    http: HttpTransport,
    timeout: std::time::Duration,
    message: Tmpl,
    description: Tmpl,
    source: Tmpl,
    details: Vec<(String, Tmpl)>,
    entity: Tmpl,
    responders: Vec<(Tmpl, Tmpl, Tmpl, Tmpl)>,
    actions: Tmpl,
    tags: Tmpl,
    note: Tmpl,
    priority: Tmpl,
}

impl Opsgenie {
    pub(crate) fn new(b: &Builder<'_>, c: &OpsgenieConfig) -> Result<Self, ChannelError> {
        let mut details = Vec::new();
        for (k, v) in &c.details {
            details.push((k.clone(), b.tmpl("details", v)?));
        }
        let mut responders = Vec::new();
        for r in &c.responders {
            responders.push((
                b.tmpl("responders.id", &r.id)?,
                b.tmpl("responders.name", &r.name)?,
                b.tmpl("responders.username", &r.username)?,
                b.tmpl("responders.type", &r.kind)?,
            ));
        }
        Ok(Opsgenie {
            name: b.name.clone(),
            send_resolved: b.send_resolved,
            api_key: c.api_key.clone(),
            api_url: c.api_url.clone(),
            http: b.http(&c.http_config, std::time::Duration::ZERO)?,
            timeout: b.ctx.send_timeout,
            message: b.tmpl("message", &c.message)?,
            description: b.tmpl("description", &c.description)?,
            source: b.tmpl("source", &c.source)?,
            details,
            entity: b.tmpl("entity", &c.entity)?,
            responders,
            actions: b.tmpl("actions", &c.actions)?,
            tags: b.tmpl("tags", &c.tags)?,
            note: b.tmpl("note", &c.note)?,
            priority: b.tmpl("priority", &c.priority)?,
        })
    }

    /// The request's URL and body for `msg`.
    pub fn request(&self, msg: &NotificationData) -> Result<(String, Value), SendError> {
        let d = RenderData::new(msg, now_ms(), None);
        let alias = group_key_hash(msg);
        if msg.status == AlertStatus::Resolved {
            let url = format!(
                "{}v2/alerts/{alias}/close?identifierType=alias",
                self.api_url
            );
            let mut body = Map::new();
            put(&mut body, "source", self.source.render(&d)?);
            return Ok((url, Value::Object(body)));
        }
        let mut body = Map::new();
        body.insert("alias".into(), Value::String(alias));
        body.insert(
            "message".into(),
            Value::String(truncate(self.message.render(&d)?.trim(), MAX_MESSAGE)),
        );
        put(&mut body, "description", self.description.render(&d)?);
        put(&mut body, "source", self.source.render(&d)?);
        put(&mut body, "entity", self.entity.render(&d)?);
        put(&mut body, "note", self.note.render(&d)?);
        put(&mut body, "priority", self.priority.render_trimmed(&d)?);
        let mut details = Map::new();
        for (k, t) in &self.details {
            details.insert(k.clone(), Value::String(t.render(&d)?));
        }
        if !details.is_empty() {
            body.insert("details".into(), Value::Object(details));
        }
        let list = |s: String| -> Vec<Value> {
            s.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| Value::String(t.to_string()))
                .collect()
        };
        let tags = list(self.tags.render(&d)?);
        if !tags.is_empty() {
            body.insert("tags".into(), Value::Array(tags));
        }
        let actions = list(self.actions.render(&d)?);
        if !actions.is_empty() {
            body.insert("actions".into(), Value::Array(actions));
        }
        let mut responders = Vec::new();
        for (id, name, username, kind) in &self.responders {
            let kind = kind.render_trimmed(&d)?;
            let (id, name, username) = (
                id.render_trimmed(&d)?,
                name.render_trimmed(&d)?,
                username.render_trimmed(&d)?,
            );
            if kind == "teams" {
                // A comma-separated list of team names.
                for team in name.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    responders.push(json!({"type": "team", "name": team}));
                }
                continue;
            }
            let mut r = Map::new();
            r.insert("type".into(), Value::String(kind));
            put(&mut r, "id", id);
            put(&mut r, "name", name);
            put(&mut r, "username", username);
            responders.push(Value::Object(r));
        }
        if !responders.is_empty() {
            body.insert("responders".into(), Value::Array(responders));
        }
        Ok((format!("{}v2/alerts", self.api_url), Value::Object(body)))
    }

    async fn deliver(&self, msg: &NotificationData, scrub: &mut Scrub) -> Result<(), SendError> {
        let key = scrub.read(&self.api_key, "api_key")?;
        let mut auth = HeaderValue::from_str(&format!("GenieKey {key}")).map_err(|_| {
            SendError::permanent(
                "credentials",
                "api_key contains characters not allowed in an HTTP header: remove newlines and control characters",
            )
        })?;
        auth.set_sensitive(true);
        let (url, body) = self.request(msg)?;
        self.http
            .post_json(
                Endpoint::Public(&url),
                &[("authorization", auth)],
                &body,
                scrub,
            )
            .await?;
        Ok(())
    }
}

impl Notifier for Opsgenie {
    fn integration(&self) -> &str {
        &self.name
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn send<'a>(
        &'a self,
        msg: &'a NotificationData,
    ) -> Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>> {
        Box::pin(async move {
            let mut scrub = Scrub::new();
            let r = with_timeout(self.timeout, "opsgenie", self.deliver(msg, &mut scrub)).await;
            r.map_err(|e| scrub.error(e))
        })
    }
}
