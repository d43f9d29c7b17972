//! `discord_configs`: a Discord webhook message with one embed (title,
//! description, a color for firing or resolved), and optional `content`,
//! `username` and `avatar_url`. Texts are cut to Discord's limits (title
//! 256, description 4096, content 2000 characters) rather than refused.
//! The webhook URL holds its token and is treated as a secret.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value, json};

use crate::config::SecretSource;
use crate::config::notify::DiscordConfig;
use crate::notify::{AlertStatus, NotificationData, Notifier, SendError};

use super::http::{Endpoint, HttpTransport};
use super::render::{RenderData, Tmpl};
use super::{Builder, ChannelError, Scrub, now_ms, put, truncate, with_timeout};

/// Embed colors: red while anything fires, green once resolved.
const FIRING_COLOR: u32 = 0x00c0_392b;
const RESOLVED_COLOR: u32 = 0x0027_ae60;

pub struct Discord {
    name: String,
    send_resolved: bool,
    webhook_url: SecretSource,
    http: HttpTransport,
    timeout: std::time::Duration,
    content: Tmpl,
    title: Tmpl,
    message: Tmpl,
    username: Tmpl,
    avatar_url: Tmpl,
}

impl Discord {
    pub(crate) fn new(b: &Builder<'_>, c: &DiscordConfig) -> Result<Self, ChannelError> {
        Ok(Discord {
            name: b.name.clone(),
            send_resolved: b.send_resolved,
            webhook_url: c.webhook_url.clone(),
            http: b.http(&c.http_config, std::time::Duration::ZERO)?,
            timeout: b.ctx.send_timeout,
            content: b.tmpl("content", &c.content)?,
            title: b.tmpl("title", &c.title)?,
            message: b.tmpl("message", &c.message)?,
            username: b.tmpl("username", &c.username)?,
            avatar_url: b.tmpl("avatar_url", &c.avatar_url)?,
        })
    }

    /// The request body for `msg`.
    pub fn payload(&self, msg: &NotificationData) -> Result<Value, SendError> {
        let d = RenderData::new(msg, now_ms(), None);
        let color = if msg.status == AlertStatus::Resolved {
            RESOLVED_COLOR
        } else {
            FIRING_COLOR
        };
        let mut body = Map::new();
        put(
            &mut body,
            "content",
            truncate(&self.content.render(&d)?, 2000),
        );
        put(&mut body, "username", self.username.render_trimmed(&d)?);
        put(&mut body, "avatar_url", self.avatar_url.render_trimmed(&d)?);
        body.insert(
            "embeds".into(),
            json!([{
                "title": truncate(&self.title.render(&d)?, 256),
                "description": truncate(&self.message.render(&d)?, 4096),
                "color": color,
            }]),
        );
        Ok(Value::Object(body))
    }

    async fn deliver(&self, msg: &NotificationData, scrub: &mut Scrub) -> Result<(), SendError> {
        let url = scrub.read(&self.webhook_url, "webhook_url")?;
        let body = self.payload(msg)?;
        self.http
            .post_json(
                Endpoint::Secret {
                    url: &url,
                    key: "webhook_url",
                },
                &[],
                &body,
                scrub,
            )
            .await?;
        Ok(())
    }
}

impl Notifier for Discord {
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
            let r = with_timeout(self.timeout, "discord", self.deliver(msg, &mut scrub)).await;
            r.map_err(|e| scrub.error(e))
        })
    }
}
