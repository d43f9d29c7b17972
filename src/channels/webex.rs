//! `webex_configs`: a Markdown message to a Webex room through
//! `POST {api_url}` (the Messages API) with the bot token from
//! `http_config.authorization` (a Bearer header, applied by the HTTP client
//! and never part of an error). Messages are cut to Webex's 7439-byte limit
//! rather than refused.

use std::future::Future;
use std::pin::Pin;

use serde_json::json;

use crate::config::notify::WebexConfig;
use crate::notify::{NotificationData, Notifier, SendError};

use super::http::{Endpoint, HttpTransport};
use super::render::{RenderData, Tmpl};
use super::{Builder, ChannelError, Scrub, now_ms, with_timeout};

/// Webex's limit on a message's Markdown, in bytes.
const MAX_MESSAGE_BYTES: usize = 7439;

pub struct Webex {
    name: String,
    send_resolved: bool,
    api_url: String,
    http: HttpTransport,
    timeout: std::time::Duration,
    message: Tmpl,
    room_id: Tmpl,
}

impl Webex {
    pub(crate) fn new(b: &Builder<'_>, c: &WebexConfig) -> Result<Self, ChannelError> {
        Ok(Webex {
            name: b.name.clone(),
            send_resolved: b.send_resolved,
            api_url: c.api_url.clone(),
            http: b.http(&c.http_config, std::time::Duration::ZERO)?,
            timeout: b.ctx.send_timeout,
            message: b.tmpl("message", &c.message)?,
            room_id: b.tmpl("room_id", &c.room_id)?,
        })
    }

    /// The request body for `msg`.
    pub fn payload(&self, msg: &NotificationData) -> Result<serde_json::Value, SendError> {
        let d = RenderData::new(msg, now_ms(), None);
        let mut markdown = self.message.render(&d)?;
        if markdown.len() > MAX_MESSAGE_BYTES {
            let mut end = MAX_MESSAGE_BYTES - '…'.len_utf8();
            while !markdown.is_char_boundary(end) {
                end -= 1;
            }
            markdown.truncate(end);
            markdown.push('…');
        }
        Ok(json!({
            "roomId": self.room_id.render_trimmed(&d)?,
            "markdown": markdown,
        }))
    }

    async fn deliver(&self, msg: &NotificationData, scrub: &mut Scrub) -> Result<(), SendError> {
        let body = self.payload(msg)?;
        self.http
            .post_json(Endpoint::Public(&self.api_url), &[], &body, scrub)
            .await?;
        Ok(())
    }
}

impl Notifier for Webex {
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
            let r = with_timeout(self.timeout, "webex", self.deliver(msg, &mut scrub)).await;
            r.map_err(|e| scrub.error(e))
        })
    }
}
