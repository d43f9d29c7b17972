//! `slack_configs`: one message with one attachment, through an incoming
//! webhook (`api_url`, a secret URL) or `chat.postMessage` with a bot
//! token (`app_token`), with Alertmanager's keys (title, text, fields,
//! actions, color, ...).
//!
//! Slack answers errors of `chat.postMessage` with HTTP 200 and
//! `{"ok": false, "error": "..."}`: those are permanent failures naming
//! Slack's error code. Webhooks answer `ok` as plain text.

use std::future::Future;
use std::pin::Pin;

use reqwest::header::HeaderValue;
use serde_json::{Map, Value, json};

use crate::config::notify::{SlackConfig, SlackTarget};
use crate::notify::{NotificationData, Notifier, SendError};

use super::http::{Endpoint, HttpTransport, prefix};
use super::render::{RenderData, Tmpl};
use super::{Builder, ChannelError, Scrub, now_ms, put, with_timeout};

pub struct Slack {
    name: String,
    send_resolved: bool,
    target: SlackTarget,
    http: HttpTransport,
    timeout: std::time::Duration,
    channel: Tmpl,
    username: Tmpl,
    color: Tmpl,
    title: Tmpl,
    title_link: Tmpl,
    pretext: Tmpl,
    text: Tmpl,
    fields: Vec<(Tmpl, Tmpl, bool)>,
    footer: Tmpl,
    fallback: Tmpl,
    callback_id: Tmpl,
    icon_emoji: Tmpl,
    icon_url: Tmpl,
    image_url: Tmpl,
    thumb_url: Tmpl,
    link_names: bool,
    mrkdwn_in: Vec<String>,
    actions: Vec<Action>,
}

struct Action {
    kind: Tmpl,
    text: Tmpl,
    url: Tmpl,
    style: Tmpl,
    name: Tmpl,
    value: Tmpl,
    confirm: Option<(Tmpl, Tmpl, Tmpl, Tmpl)>,
}

impl Slack {
    pub(crate) fn new(b: &Builder<'_>, c: &SlackConfig) -> Result<Self, ChannelError> {
        let mut fields = Vec::with_capacity(c.fields.len());
        for f in &c.fields {
            fields.push((
                b.tmpl("fields.title", &f.title)?,
                b.tmpl("fields.value", &f.value)?,
                f.short.unwrap_or(c.short_fields),
            ));
        }
        let mut actions = Vec::with_capacity(c.actions.len());
        for a in &c.actions {
            actions.push(Action {
                kind: b.tmpl("actions.type", &a.kind)?,
                text: b.tmpl("actions.text", &a.text)?,
                url: b.tmpl("actions.url", &a.url)?,
                style: b.tmpl("actions.style", &a.style)?,
                name: b.tmpl("actions.name", &a.name)?,
                value: b.tmpl("actions.value", &a.value)?,
                confirm: match &a.confirm {
                    Some(cf) => Some((
                        b.tmpl("actions.confirm.text", &cf.text)?,
                        b.tmpl("actions.confirm.title", &cf.title)?,
                        b.tmpl("actions.confirm.ok_text", &cf.ok_text)?,
                        b.tmpl("actions.confirm.dismiss_text", &cf.dismiss_text)?,
                    )),
                    None => None,
                },
            });
        }
        Ok(Slack {
            name: b.name.clone(),
            send_resolved: b.send_resolved,
            target: c.target.clone(),
            http: b.http(&c.http_config, std::time::Duration::ZERO)?,
            timeout: b.ctx.send_timeout,
            channel: b.tmpl("channel", &c.channel)?,
            username: b.tmpl("username", &c.username)?,
            color: b.tmpl("color", &c.color)?,
            title: b.tmpl("title", &c.title)?,
            title_link: b.tmpl("title_link", &c.title_link)?,
            pretext: b.tmpl("pretext", &c.pretext)?,
            text: b.tmpl("text", &c.text)?,
            fields,
            footer: b.tmpl("footer", &c.footer)?,
            fallback: b.tmpl("fallback", &c.fallback)?,
            callback_id: b.tmpl("callback_id", &c.callback_id)?,
            icon_emoji: b.tmpl("icon_emoji", &c.icon_emoji)?,
            icon_url: b.tmpl("icon_url", &c.icon_url)?,
            image_url: b.tmpl("image_url", &c.image_url)?,
            thumb_url: b.tmpl("thumb_url", &c.thumb_url)?,
            link_names: c.link_names,
            mrkdwn_in: c.mrkdwn_in.clone(),
            actions,
        })
    }

    /// The request body for `msg`.
    pub fn payload(&self, msg: &NotificationData) -> Result<Value, SendError> {
        let d = RenderData::new(msg, now_ms(), None);
        let mut att = Map::new();
        put(&mut att, "title", self.title.render(&d)?);
        put(&mut att, "title_link", self.title_link.render_trimmed(&d)?);
        put(&mut att, "pretext", self.pretext.render(&d)?);
        put(&mut att, "text", self.text.render(&d)?);
        put(&mut att, "fallback", self.fallback.render(&d)?);
        put(&mut att, "callback_id", self.callback_id.render(&d)?);
        put(&mut att, "color", self.color.render_trimmed(&d)?);
        put(&mut att, "footer", self.footer.render(&d)?);
        put(&mut att, "image_url", self.image_url.render_trimmed(&d)?);
        put(&mut att, "thumb_url", self.thumb_url.render_trimmed(&d)?);
        if !self.mrkdwn_in.is_empty() {
            att.insert("mrkdwn_in".into(), json!(self.mrkdwn_in));
        } else {
            att.insert("mrkdwn_in".into(), json!(["fallback", "pretext", "text"]));
        }
        if !self.fields.is_empty() {
            let mut fields = Vec::with_capacity(self.fields.len());
            for (title, value, short) in &self.fields {
                fields.push(json!({
                    "title": title.render(&d)?,
                    "value": value.render(&d)?,
                    "short": short,
                }));
            }
            att.insert("fields".into(), Value::Array(fields));
        }
        if !self.actions.is_empty() {
            let mut actions = Vec::with_capacity(self.actions.len());
            for a in &self.actions {
                let mut o = Map::new();
                put(&mut o, "type", a.kind.render(&d)?);
                put(&mut o, "text", a.text.render(&d)?);
                put(&mut o, "url", a.url.render_trimmed(&d)?);
                put(&mut o, "style", a.style.render(&d)?);
                put(&mut o, "name", a.name.render(&d)?);
                put(&mut o, "value", a.value.render(&d)?);
                if let Some((text, title, ok, dismiss)) = &a.confirm {
                    o.insert(
                        "confirm".into(),
                        json!({
                            "text": text.render(&d)?,
                            "title": title.render(&d)?,
                            "ok_text": ok.render(&d)?,
                            "dismiss_text": dismiss.render(&d)?,
                        }),
                    );
                }
                actions.push(Value::Object(o));
            }
            att.insert("actions".into(), Value::Array(actions));
        }
        let mut body = Map::new();
        put(&mut body, "channel", self.channel.render_trimmed(&d)?);
        put(&mut body, "username", self.username.render(&d)?);
        put(&mut body, "icon_emoji", self.icon_emoji.render_trimmed(&d)?);
        put(&mut body, "icon_url", self.icon_url.render_trimmed(&d)?);
        if self.link_names {
            body.insert("link_names".into(), Value::Bool(true));
        }
        body.insert("attachments".into(), json!([Value::Object(att)]));
        Ok(Value::Object(body))
    }

    async fn deliver(&self, msg: &NotificationData, scrub: &mut Scrub) -> Result<(), SendError> {
        let body = self.payload(msg)?;
        match &self.target {
            SlackTarget::Webhook(url) => {
                let url = scrub.read(url, "api_url")?;
                self.http
                    .post_json(
                        Endpoint::Secret {
                            url: &url,
                            key: "api_url",
                        },
                        &[],
                        &body,
                        scrub,
                    )
                    .await?;
                Ok(())
            }
            SlackTarget::App { token, url } => {
                let token = scrub.read(token, "app_token")?;
                let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    SendError::permanent(
                        "credentials",
                        "app_token contains characters not allowed in an HTTP header: remove newlines and control characters",
                    )
                })?;
                auth.set_sensitive(true);
                let endpoint = Endpoint::Public(url);
                let reply = self
                    .http
                    .post_json(endpoint, &[("authorization", auth)], &body, scrub)
                    .await?;
                // chat.postMessage reports its errors in a 200 answer.
                if let Ok(v) = serde_json::from_str::<Value>(&reply.body)
                    && v.get("ok") == Some(&Value::Bool(false))
                {
                    let code = v.get("error").and_then(Value::as_str).unwrap_or("unknown");
                    return Err(prefix(
                        SendError::permanent(
                            "client_error",
                            format!("slack refused the message: {code}"),
                        ),
                        &endpoint,
                    ));
                }
                Ok(())
            }
        }
    }
}

impl Notifier for Slack {
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
            let r = with_timeout(self.timeout, "slack", self.deliver(msg, &mut scrub)).await;
            r.map_err(|e| scrub.error(e))
        })
    }
}
