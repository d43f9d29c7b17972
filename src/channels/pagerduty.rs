//! `pagerduty_configs`: PagerDuty's Events API v2 (`routing_key`):
//! `trigger` while the group fires and `resolve` once it resolved, with the
//! group's key as `dedup_key` so the incident follows the group. A
//! `service_key` (the older Events API v1) posts to v1's endpoint instead.
//!
//! The routing key travels in the body and is scrubbed from errors.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value, json};

use crate::config::SecretSource;
use crate::config::notify::PagerdutyConfig;
use crate::notify::{AlertStatus, NotificationData, Notifier, SendError};

use super::http::{Endpoint, HttpTransport};
use super::render::{RenderData, Tmpl};
use super::{Builder, ChannelError, Scrub, group_key_hash, now_ms, put, truncate, with_timeout};

/// Events API v1's endpoint, used with `service_key` when `url` is left at
/// its v2 default.
pub const EVENTS_V1_URL: &str = "https://events.pagerduty.com/generic/2010-04-15/create_event.json";

/// The v2 default `url`.
const EVENTS_V2_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// PagerDuty's limit on `summary` / `description`.
const MAX_SUMMARY: usize = 1024;

pub struct Pagerduty {
    name: String,
    send_resolved: bool,
    key: Key,
    url: String,
    http: HttpTransport,
    timeout: std::time::Duration,
    client: Tmpl,
    client_url: Tmpl,
    description: Tmpl,
    details: Vec<(String, Tmpl)>,
    images: Vec<(Tmpl, Tmpl, Tmpl)>,
    links: Vec<(Tmpl, Tmpl)>,
    source: Tmpl,
    severity: Tmpl,
    class: Tmpl,
    component: Tmpl,
    group: Tmpl,
}

enum Key {
    Routing(SecretSource),
    Service(SecretSource),
}

impl Pagerduty {
    pub(crate) fn new(b: &Builder<'_>, c: &PagerdutyConfig) -> Result<Self, ChannelError> {
        let (key, url) = match (&c.routing_key, &c.service_key) {
            (Some(k), _) => (Key::Routing(k.clone()), c.url.clone()),
            (None, Some(k)) => {
                let url = if c.url == EVENTS_V2_URL {
                    EVENTS_V1_URL.to_string()
                } else {
                    c.url.clone()
                };
                (Key::Service(k.clone()), url)
            }
            (None, None) => {
                return Err(b.invalid("neither routing_key nor service_key is set"));
            }
        };
        let mut details = Vec::with_capacity(c.details.len());
        for (k, v) in &c.details {
            details.push((k.clone(), b.tmpl("details", v)?));
        }
        let mut images = Vec::new();
        for i in &c.images {
            images.push((
                b.tmpl("images.src", &i.src)?,
                b.tmpl("images.alt", &i.alt)?,
                b.tmpl("images.href", &i.href)?,
            ));
        }
        let mut links = Vec::new();
        for l in &c.links {
            links.push((
                b.tmpl("links.href", &l.href)?,
                b.tmpl("links.text", &l.text)?,
            ));
        }
        Ok(Pagerduty {
            name: b.name.clone(),
            send_resolved: b.send_resolved,
            key,
            url,
            http: b.http(&c.http_config, std::time::Duration::ZERO)?,
            timeout: b.ctx.send_timeout,
            client: b.tmpl("client", &c.client)?,
            client_url: b.tmpl("client_url", &c.client_url)?,
            description: b.tmpl("description", &c.description)?,
            details,
            images,
            links,
            source: b.tmpl("source", &c.source)?,
            severity: b.tmpl("severity", &c.severity)?,
            class: b.tmpl("class", &c.class)?,
            component: b.tmpl("component", &c.component)?,
            group: b.tmpl("group", &c.group)?,
        })
    }

    fn details(&self, d: &RenderData) -> Result<BTreeMap<String, String>, SendError> {
        let mut out = BTreeMap::new();
        for (k, t) in &self.details {
            out.insert(k.clone(), t.render(d)?);
        }
        Ok(out)
    }

    /// The request body for `msg`, with `key` as the routing or service key.
    pub fn payload(&self, msg: &NotificationData, key: &str) -> Result<Value, SendError> {
        let d = RenderData::new(msg, now_ms(), None);
        let resolved = msg.status == AlertStatus::Resolved;
        let summary = truncate(&self.description.render(&d)?, MAX_SUMMARY);
        let dedup = group_key_hash(msg);
        if let Key::Service(_) = self.key {
            return Ok(json!({
                "service_key": key,
                "event_type": if resolved { "resolve" } else { "trigger" },
                "incident_key": dedup,
                "description": summary,
                "client": self.client.render(&d)?,
                "client_url": self.client_url.render_trimmed(&d)?,
                "details": self.details(&d)?,
            }));
        }
        let mut payload = Map::new();
        payload.insert("summary".into(), Value::String(summary));
        let source = self.source.render(&d)?;
        payload.insert(
            "source".into(),
            Value::String(if source.is_empty() {
                "watchpost".into()
            } else {
                source
            }),
        );
        let severity = self.severity.render_trimmed(&d)?;
        payload.insert(
            "severity".into(),
            Value::String(if severity.is_empty() {
                "error".into()
            } else {
                severity
            }),
        );
        put(&mut payload, "class", self.class.render(&d)?);
        put(&mut payload, "component", self.component.render(&d)?);
        put(&mut payload, "group", self.group.render(&d)?);
        payload.insert("custom_details".into(), json!(self.details(&d)?));
        let mut images = Vec::new();
        for (src, alt, href) in &self.images {
            let src = src.render_trimmed(&d)?;
            if src.is_empty() {
                continue;
            }
            let mut o = Map::new();
            o.insert("src".into(), Value::String(src));
            put(&mut o, "alt", alt.render(&d)?);
            put(&mut o, "href", href.render_trimmed(&d)?);
            images.push(Value::Object(o));
        }
        let mut links = Vec::new();
        for (href, text) in &self.links {
            let href = href.render_trimmed(&d)?;
            if href.is_empty() {
                continue;
            }
            links.push(json!({"href": href, "text": text.render(&d)?}));
        }
        let mut body = json!({
            "routing_key": key,
            "event_action": if resolved { "resolve" } else { "trigger" },
            "dedup_key": dedup,
            "payload": payload,
        });
        if let Some(o) = body.as_object_mut() {
            put(o, "client", self.client.render(&d)?);
            put(o, "client_url", self.client_url.render_trimmed(&d)?);
            if !images.is_empty() {
                o.insert("images".into(), Value::Array(images));
            }
            if !links.is_empty() {
                o.insert("links".into(), Value::Array(links));
            }
        }
        Ok(body)
    }

    async fn deliver(&self, msg: &NotificationData, scrub: &mut Scrub) -> Result<(), SendError> {
        let key = match &self.key {
            Key::Routing(k) => scrub.read(k, "routing_key")?,
            Key::Service(k) => scrub.read(k, "service_key")?,
        };
        let body = self.payload(msg, &key)?;
        self.http
            .post_json(Endpoint::Public(&self.url), &[], &body, scrub)
            .await?;
        Ok(())
    }
}

impl Notifier for Pagerduty {
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
            let r = with_timeout(self.timeout, "pagerduty", self.deliver(msg, &mut scrub)).await;
            r.map_err(|e| scrub.error(e))
        })
    }
}
