//! `mattermost_configs`: a Mattermost incoming-webhook post with
//! Alertmanager's Mattermost keys: `text`, `channel`, `username`, icons,
//! one Slack-style attachment from the attachment keys (title, color,
//! fields, ...) plus any extra `attachments`, post `type`, `props.card`
//! and message `priority`. The webhook URL holds its key and is treated as
//! a secret.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value, json};

use crate::config::SecretSource;
use crate::config::notify::{MattermostAttachment, MattermostConfig, SlackField};
use crate::notify::{NotificationData, Notifier, SendError};

use super::http::{Endpoint, HttpTransport};
use super::render::{RenderData, Tmpl};
use super::{Builder, ChannelError, Scrub, now_ms, put, with_timeout};

/// Mattermost's limit on a post's text, in characters.
const MAX_TEXT: usize = 16383;

pub struct Mattermost {
    name: String,
    send_resolved: bool,
    webhook_url: SecretSource,
    http: HttpTransport,
    timeout: std::time::Duration,
    channel: Tmpl,
    username: Tmpl,
    text: Tmpl,
    icon_url: Tmpl,
    icon_emoji: Tmpl,
    kind: Tmpl,
    card: Tmpl,
    priority: Option<(Tmpl, bool, bool)>,
    attachments: Vec<Attachment>,
}

/// One attachment's templates, in Mattermost's key order.
struct Attachment {
    fields: Vec<(&'static str, Tmpl)>,
    table: Vec<(Tmpl, Tmpl, bool)>,
}

impl Attachment {
    fn new(b: &Builder<'_>, a: &MattermostAttachment) -> Result<Option<Self>, ChannelError> {
        let pairs: [(&'static str, &String); 13] = [
            ("fallback", &a.fallback),
            ("color", &a.color),
            ("pretext", &a.pretext),
            ("text", &a.text),
            ("author_name", &a.author_name),
            ("author_link", &a.author_link),
            ("author_icon", &a.author_icon),
            ("title", &a.title),
            ("title_link", &a.title_link),
            ("thumb_url", &a.thumb_url),
            ("footer", &a.footer),
            ("footer_icon", &a.footer_icon),
            ("image_url", &a.image_url),
        ];
        // An attachment that only carries the defaults' fallback and color
        // would show as an empty box.
        let content = pairs
            .iter()
            .any(|(k, v)| !v.is_empty() && *k != "fallback" && *k != "color")
            || !a.fields.is_empty();
        if !content {
            return Ok(None);
        }
        let mut fields = Vec::new();
        for (k, v) in pairs {
            if !v.is_empty() {
                fields.push((k, b.tmpl("attachments", v)?));
            }
        }
        let mut table = Vec::new();
        for SlackField {
            title,
            value,
            short,
        } in &a.fields
        {
            table.push((
                b.tmpl("fields.title", title)?,
                b.tmpl("fields.value", value)?,
                short.unwrap_or(false),
            ));
        }
        Ok(Some(Attachment { fields, table }))
    }

    fn render(&self, d: &RenderData) -> Result<Value, SendError> {
        let mut o = Map::new();
        for (k, t) in &self.fields {
            put(&mut o, k, t.render(d)?);
        }
        if !self.table.is_empty() {
            let mut f = Vec::new();
            for (title, value, short) in &self.table {
                f.push(
                    json!({"title": title.render(d)?, "value": value.render(d)?, "short": short}),
                );
            }
            o.insert("fields".into(), Value::Array(f));
        }
        Ok(Value::Object(o))
    }
}

impl Mattermost {
    pub(crate) fn new(b: &Builder<'_>, c: &MattermostConfig) -> Result<Self, ChannelError> {
        let main = MattermostAttachment {
            fallback: c.fallback.clone(),
            color: c.color.clone(),
            pretext: c.pretext.clone(),
            text: String::new(),
            author_name: c.author_name.clone(),
            author_link: c.author_link.clone(),
            author_icon: c.author_icon.clone(),
            title: c.title.clone(),
            title_link: c.title_link.clone(),
            fields: c.fields.clone(),
            thumb_url: c.thumb_url.clone(),
            footer: c.footer.clone(),
            footer_icon: c.footer_icon.clone(),
            image_url: c.image_url.clone(),
        };
        let mut attachments = Vec::new();
        for a in std::iter::once(&main).chain(c.attachments.iter()) {
            if let Some(a) = Attachment::new(b, a)? {
                attachments.push(a);
            }
        }
        Ok(Mattermost {
            name: b.name.clone(),
            send_resolved: b.send_resolved,
            webhook_url: c.webhook_url.clone(),
            http: b.http(&c.http_config, std::time::Duration::ZERO)?,
            timeout: b.ctx.send_timeout,
            channel: b.tmpl("channel", &c.channel)?,
            username: b.tmpl("username", &c.username)?,
            text: b.tmpl("text", &c.text)?,
            icon_url: b.tmpl("icon_url", &c.icon_url)?,
            icon_emoji: b.tmpl("icon_emoji", &c.icon_emoji)?,
            kind: b.tmpl("type", &c.kind)?,
            card: b.tmpl("card", &c.card)?,
            priority: match &c.priority {
                Some(p) => Some((
                    b.tmpl("priority", &p.priority)?,
                    p.requested_ack,
                    p.persistent_notifications,
                )),
                None => None,
            },
            attachments,
        })
    }

    /// The request body for `msg`.
    pub fn payload(&self, msg: &NotificationData) -> Result<Value, SendError> {
        let d = RenderData::new(msg, now_ms(), None);
        let mut body = Map::new();
        put(&mut body, "channel", self.channel.render_trimmed(&d)?);
        put(&mut body, "username", self.username.render_trimmed(&d)?);
        put(
            &mut body,
            "text",
            super::truncate(&self.text.render(&d)?, MAX_TEXT),
        );
        put(&mut body, "icon_url", self.icon_url.render_trimmed(&d)?);
        put(&mut body, "icon_emoji", self.icon_emoji.render_trimmed(&d)?);
        put(&mut body, "type", self.kind.render_trimmed(&d)?);
        if !self.attachments.is_empty() {
            let mut list = Vec::new();
            for a in &self.attachments {
                list.push(a.render(&d)?);
            }
            body.insert("attachments".into(), Value::Array(list));
        }
        let card = self.card.render(&d)?;
        if !card.is_empty() {
            body.insert("props".into(), json!({ "card": card }));
        }
        if let Some((p, ack, persistent)) = &self.priority {
            let mut o = Map::new();
            put(&mut o, "priority", p.render_trimmed(&d)?);
            o.insert("requested_ack".into(), Value::Bool(*ack));
            o.insert("persistent_notifications".into(), Value::Bool(*persistent));
            body.insert("priority".into(), Value::Object(o));
        }
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

impl Notifier for Mattermost {
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
            let r = with_timeout(self.timeout, "mattermost", self.deliver(msg, &mut scrub)).await;
            r.map_err(|e| scrub.error(e))
        })
    }
}
