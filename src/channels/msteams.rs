//! `msteams_configs` and `msteamsv2_configs`: Microsoft Teams incoming
//! webhooks. The first posts an Office 365 connector card (`MessageCard`:
//! title, summary, text, theme color); the second posts an Adaptive Card
//! wrapped in a message, the format of Teams "Workflows" webhooks that
//! replace the connectors. Both webhook URLs carry their signature and are
//! treated as secrets.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Value, json};

use crate::config::SecretSource;
use crate::config::notify::{MsteamsConfig, MsteamsV2Config};
use crate::notify::{AlertStatus, NotificationData, Notifier, SendError};

use super::http::{Endpoint, HttpTransport};
use super::render::{RenderData, Tmpl};
use super::{Builder, ChannelError, Scrub, now_ms, with_timeout};

pub struct Msteams {
    name: String,
    send_resolved: bool,
    webhook_url: SecretSource,
    http: HttpTransport,
    timeout: std::time::Duration,
    title: Tmpl,
    summary: Tmpl,
    text: Tmpl,
}

impl Msteams {
    pub(crate) fn new(b: &Builder<'_>, c: &MsteamsConfig) -> Result<Self, ChannelError> {
        Ok(Msteams {
            name: b.name.clone(),
            send_resolved: b.send_resolved,
            webhook_url: c.webhook_url.clone(),
            http: b.http(&c.http_config, std::time::Duration::ZERO)?,
            timeout: b.ctx.send_timeout,
            title: b.tmpl("title", &c.title)?,
            summary: b.tmpl("summary", &c.summary)?,
            text: b.tmpl("text", &c.text)?,
        })
    }

    /// The connector card for `msg`.
    pub fn payload(&self, msg: &NotificationData) -> Result<Value, SendError> {
        let d = RenderData::new(msg, now_ms(), None);
        let color = if msg.status == AlertStatus::Resolved {
            "27AE60"
        } else {
            "C0392B"
        };
        Ok(json!({
            "@type": "MessageCard",
            "@context": "http://schema.org/extensions",
            "themeColor": color,
            "title": self.title.render(&d)?,
            "summary": self.summary.render(&d)?,
            "text": self.text.render(&d)?,
        }))
    }

    async fn deliver(&self, msg: &NotificationData, scrub: &mut Scrub) -> Result<(), SendError> {
        let url = scrub.read(&self.webhook_url, "webhook_url")?;
        let body = self.payload(msg)?;
        post(&self.http, &url, &body, scrub).await
    }
}

impl Notifier for Msteams {
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
            let r = with_timeout(self.timeout, "msteams", self.deliver(msg, &mut scrub)).await;
            r.map_err(|e| scrub.error(e))
        })
    }
}

async fn post(
    http: &HttpTransport,
    url: &str,
    body: &Value,
    scrub: &mut Scrub,
) -> Result<(), SendError> {
    let reply = http
        .post_json(
            Endpoint::Secret {
                url,
                key: "webhook_url",
            },
            &[],
            body,
            scrub,
        )
        .await?;
    // Connector webhooks answer errors with 200 and a text such as
    // "Summary or Text is required." instead of "1".
    let text = reply.body.trim();
    if reply.status == 200 && !text.is_empty() && text != "1" && !text.starts_with('{') {
        return Err(SendError::permanent(
            "client_error",
            format!("POST to the webhook_url: teams refused the message: {text}"),
        ));
    }
    Ok(())
}

pub struct MsteamsV2 {
    name: String,
    send_resolved: bool,
    webhook_url: SecretSource,
    http: HttpTransport,
    timeout: std::time::Duration,
    title: Tmpl,
    text: Tmpl,
}

impl MsteamsV2 {
    pub(crate) fn new(b: &Builder<'_>, c: &MsteamsV2Config) -> Result<Self, ChannelError> {
        Ok(MsteamsV2 {
            name: b.name.clone(),
            send_resolved: b.send_resolved,
            webhook_url: c.webhook_url.clone(),
            http: b.http(&c.http_config, std::time::Duration::ZERO)?,
            timeout: b.ctx.send_timeout,
            title: b.tmpl("title", &c.title)?,
            text: b.tmpl("text", &c.text)?,
        })
    }

    /// The Adaptive Card message for `msg`.
    pub fn payload(&self, msg: &NotificationData) -> Result<Value, SendError> {
        let d = RenderData::new(msg, now_ms(), None);
        let color = if msg.status == AlertStatus::Resolved {
            "Good"
        } else {
            "Attention"
        };
        Ok(json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.2",
                    "msteams": {"width": "full"},
                    "body": [
                        {
                            "type": "TextBlock",
                            "text": self.title.render(&d)?,
                            "weight": "Bolder",
                            "size": "Medium",
                            "wrap": true,
                            "style": "heading",
                            "color": color,
                        },
                        {
                            "type": "TextBlock",
                            "text": self.text.render(&d)?,
                            "wrap": true,
                        },
                    ],
                },
            }],
        }))
    }

    async fn deliver(&self, msg: &NotificationData, scrub: &mut Scrub) -> Result<(), SendError> {
        let url = scrub.read(&self.webhook_url, "webhook_url")?;
        let body = self.payload(msg)?;
        post(&self.http, &url, &body, scrub).await
    }
}

impl Notifier for MsteamsV2 {
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
            let r = with_timeout(self.timeout, "msteamsv2", self.deliver(msg, &mut scrub)).await;
            r.map_err(|e| scrub.error(e))
        })
    }
}
