//! `pushover_configs`: Pushover's message API, a form-encoded
//! `POST /1/messages.json` with the application token and the user key
//! (both secrets, scrubbed from errors). Field lengths are cut to
//! Pushover's limits (title 250, message 1024, url 512 characters) rather
//! than have the message refused; emergency priority (2) carries `retry`
//! and `expire`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::config::SecretSource;
use crate::config::notify::PushoverConfig;
use crate::notify::{NotificationData, Notifier, SendError};

use super::http::{Body, Endpoint, HttpTransport, prefix};
use super::render::{RenderData, Tmpl};
use super::{Builder, ChannelError, Scrub, now_ms, truncate, with_timeout};

/// Pushover's API endpoint (see `ChannelContext::pushover_api_url`).
pub const API_URL: &str = "https://api.pushover.net/1/messages.json";

pub struct Pushover {
    name: String,
    send_resolved: bool,
    api_url: String,
    user_key: SecretSource,
    token: SecretSource,
    http: HttpTransport,
    timeout: Duration,
    title: Tmpl,
    message: Tmpl,
    url: Tmpl,
    url_title: Tmpl,
    device: Tmpl,
    sound: Tmpl,
    priority: Tmpl,
    retry: Duration,
    expire: Duration,
    ttl: Duration,
    html: bool,
    monospace: bool,
}

impl Pushover {
    pub(crate) fn new(b: &Builder<'_>, c: &PushoverConfig) -> Result<Self, ChannelError> {
        Ok(Pushover {
            name: b.name.clone(),
            send_resolved: b.send_resolved,
            api_url: b.ctx.pushover_api_url.clone(),
            user_key: c.user_key.clone(),
            token: c.token.clone(),
            http: b.http(&c.http_config, Duration::ZERO)?,
            timeout: b.ctx.send_timeout,
            title: b.tmpl("title", &c.title)?,
            message: b.tmpl("message", &c.message)?,
            url: b.tmpl("url", &c.url)?,
            url_title: b.tmpl("url_title", &c.url_title)?,
            device: b.tmpl("device", &c.device)?,
            sound: b.tmpl("sound", &c.sound)?,
            priority: b.tmpl("priority", &c.priority)?,
            retry: c.retry,
            expire: c.expire,
            ttl: c.ttl,
            html: c.html,
            monospace: c.monospace,
        })
    }

    /// The form fields for `msg`, without `token` and `user`.
    pub fn fields(&self, msg: &NotificationData) -> Result<Vec<(&'static str, String)>, SendError> {
        let d = RenderData::new(msg, now_ms(), None);
        let mut f = Vec::new();
        let title = truncate(&self.title.render(&d)?, 250);
        let mut message = truncate(&self.message.render(&d)?, 1024);
        if message.trim().is_empty() {
            // Pushover refuses an empty message.
            message = "(no details)".to_string();
        }
        f.push(("title", title));
        f.push(("message", message));
        let url = self.url.render_trimmed(&d)?;
        if !url.is_empty() {
            f.push(("url", truncate(&url, 512)));
        }
        for (k, t) in [
            ("url_title", &self.url_title),
            ("device", &self.device),
            ("sound", &self.sound),
        ] {
            let v = t.render_trimmed(&d)?;
            if !v.is_empty() {
                f.push((k, v));
            }
        }
        let priority = self.priority.render_trimmed(&d)?;
        if !priority.is_empty() {
            if priority == "2" {
                f.push(("retry", self.retry.as_secs().to_string()));
                f.push(("expire", self.expire.as_secs().to_string()));
            }
            f.push(("priority", priority));
        }
        if !self.ttl.is_zero() {
            f.push(("ttl", self.ttl.as_secs().to_string()));
        }
        if self.html {
            f.push(("html", "1".into()));
        }
        if self.monospace {
            f.push(("monospace", "1".into()));
        }
        f.push(("timestamp", (now_ms() / 1000).to_string()));
        Ok(f)
    }

    async fn deliver(&self, msg: &NotificationData, scrub: &mut Scrub) -> Result<(), SendError> {
        let token = scrub.read(&self.token, "token")?;
        let user = scrub.read(&self.user_key, "user_key")?;
        let fields = self.fields(msg)?;
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", &token);
            form.append_pair("user", &user);
            for (k, v) in &fields {
                form.append_pair(k, v);
            }
            form.finish()
        };
        let endpoint = Endpoint::Public(&self.api_url);
        let reply = self
            .http
            .post(endpoint, &[], Body::Form(form), scrub)
            .await?;
        reply.classify().map_err(|e| prefix(e, &endpoint))
    }
}

impl Notifier for Pushover {
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
            let r = with_timeout(self.timeout, "pushover", self.deliver(msg, &mut scrub)).await;
            r.map_err(|e| scrub.error(e))
        })
    }
}
