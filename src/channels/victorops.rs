//! `victorops_configs`: Splunk On-Call's (VictorOps) REST endpoint
//! integration, `POST {api_url}{api_key}/{routing_key}`. A firing group
//! sends its `message_type` (default `CRITICAL`), a resolved one
//! `RECOVERY`; the group's key is the `entity_id`, so the incident follows
//! the group. The API key is part of the URL: the URL is treated as a
//! secret and the key scrubbed from errors.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};

use crate::config::SecretSource;
use crate::config::notify::VictoropsConfig;
use crate::notify::{AlertStatus, NotificationData, Notifier, SendError};

use super::http::{Endpoint, HttpTransport};
use super::render::{RenderData, Tmpl};
use super::{Builder, ChannelError, Scrub, group_key_hash, now_ms, with_timeout};

pub struct Victorops {
    name: String,
    send_resolved: bool,
    api_key: SecretSource,
    api_url: String,
    http: HttpTransport,
    timeout: std::time::Duration,
    routing_key: Tmpl,
    message_type: Tmpl,
    state_message: Tmpl,
    entity_display_name: Tmpl,
    monitoring_tool: Tmpl,
    custom_fields: Vec<(String, Tmpl)>,
}

impl Victorops {
    pub(crate) fn new(b: &Builder<'_>, c: &VictoropsConfig) -> Result<Self, ChannelError> {
        let mut custom_fields = Vec::new();
        for (k, v) in &c.custom_fields {
            custom_fields.push((k.clone(), b.tmpl("custom_fields", v)?));
        }
        Ok(Victorops {
            name: b.name.clone(),
            send_resolved: b.send_resolved,
            api_key: c.api_key.clone(),
            api_url: c.api_url.clone(),
            http: b.http(&c.http_config, std::time::Duration::ZERO)?,
            timeout: b.ctx.send_timeout,
            routing_key: b.tmpl("routing_key", &c.routing_key)?,
            message_type: b.tmpl("message_type", &c.message_type)?,
            state_message: b.tmpl("state_message", &c.state_message)?,
            entity_display_name: b.tmpl("entity_display_name", &c.entity_display_name)?,
            monitoring_tool: b.tmpl("monitoring_tool", &c.monitoring_tool)?,
            custom_fields,
        })
    }

    /// The routing key (rendered) and the body for `msg`.
    pub fn payload(&self, msg: &NotificationData) -> Result<(String, Value), SendError> {
        let d = RenderData::new(msg, now_ms(), None);
        let routing_key = self.routing_key.render_trimmed(&d)?;
        if routing_key.is_empty() {
            return Err(SendError::permanent(
                "invalid_request",
                "routing_key rendered empty: set routing_key",
            ));
        }
        let message_type = if msg.status == AlertStatus::Resolved {
            "RECOVERY".to_string()
        } else {
            self.message_type.render_trimmed(&d)?.to_uppercase()
        };
        let mut body = Map::new();
        for (k, t) in &self.custom_fields {
            body.insert(k.clone(), Value::String(t.render(&d)?));
        }
        body.insert("message_type".into(), Value::String(message_type));
        body.insert("entity_id".into(), Value::String(group_key_hash(msg)));
        body.insert(
            "entity_display_name".into(),
            Value::String(self.entity_display_name.render(&d)?),
        );
        body.insert(
            "state_message".into(),
            Value::String(self.state_message.render(&d)?),
        );
        body.insert(
            "monitoring_tool".into(),
            Value::String(self.monitoring_tool.render(&d)?),
        );
        Ok((routing_key, Value::Object(body)))
    }

    async fn deliver(&self, msg: &NotificationData, scrub: &mut Scrub) -> Result<(), SendError> {
        let key = scrub.read(&self.api_key, "api_key")?;
        let (routing_key, body) = self.payload(msg)?;
        let path_key: String = form_urlencoded::byte_serialize(key.as_bytes()).collect();
        let path_routing: String =
            form_urlencoded::byte_serialize(routing_key.as_bytes()).collect();
        let url = format!("{}{path_key}/{path_routing}", self.api_url);
        self.http
            .post_json(
                Endpoint::Secret {
                    url: &url,
                    key: "api_url with api_key",
                },
                &[],
                &body,
                scrub,
            )
            .await?;
        Ok(())
    }
}

impl Notifier for Victorops {
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
            let r = with_timeout(self.timeout, "victorops", self.deliver(msg, &mut scrub)).await;
            r.map_err(|e| scrub.error(e))
        })
    }
}
