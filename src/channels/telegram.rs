//! `telegram_configs`: messages through the Telegram Bot API's
//! `sendMessage`, sent with teloxide-core.
//!
//! Unlike Alertmanager, which loses a notification Telegram refuses for
//! its formatting or its length, this channel makes sure every message is
//! accepted: alert values are escaped for the parse mode before the
//! template sees them, HTML output is repaired and long texts are split
//! into several messages of at most 4096 characters without breaking tags
//! ([`super::telegram_format`]). Should Telegram still answer "can't parse
//! entities", the part is sent again as plain text and a warning logged.
//!
//! Parts already delivered are remembered per message, so when a later
//! part fails (say with 429) the pipeline's retry sends only the rest.
//! The bot token (and `chat_id_file`) is read on every send; it travels in
//! the request path, so errors are scrubbed of it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use teloxide_core::payloads::{SendMessageSetters, SendPhotoSetters};
use teloxide_core::requests::Requester;
use teloxide_core::types::{ChatId, InputFile, MessageId, ParseMode as TgParseMode, ThreadId};
use teloxide_core::{ApiError, Bot, RequestError};

use crate::config::SecretSource;
use crate::config::http_client::{build_http_client, error_chain};
use crate::config::notify::{TelegramChat, TelegramConfig};
use crate::model::fnv1a64;
use crate::notify::{NotificationData, Notifier, SendError};

use super::digest::Digest;
use super::http::is_certificate_error;
use super::render::{Escape, RenderData, Tmpl};
use super::telegram_format::{
    MESSAGE_LIMIT, ParseMode, escape_html, escape_markdown, escape_markdown_v2, html_to_plain,
    split_html, split_plain,
};
use super::{Builder, ChannelError, Scrub, now_ms, with_timeout};

/// At most this many messages per notification; a longer one ends with a
/// note saying how much was left out. Telegram allows a chat about 20
/// messages a minute, and a wall of 40 KB is no longer an alert.
pub const MAX_PARTS: usize = 10;

/// Messages whose delivery is partly done; beyond this many the memory is
/// cleared (a retry then starts over, which can repeat parts).
const MAX_PENDING: usize = 256;

pub struct Telegram {
    name: String,
    send_resolved: bool,
    api_url: reqwest::Url,
    token: SecretSource,
    chat: TelegramChat,
    thread: Option<i32>,
    message: Tmpl,
    disable_notification: bool,
    mode: ParseMode,
    client: reqwest::Client,
    timeout: Duration,
    /// Parts delivered so far, by hash of chat and message.
    progress: Mutex<HashMap<u64, usize>>,
}

impl Telegram {
    pub(crate) fn new(b: &Builder<'_>, c: &TelegramConfig) -> Result<Self, ChannelError> {
        let mut api_url = reqwest::Url::parse(&c.api_url).map_err(|e| {
            b.invalid(format!(
                "api_url {:?} is not a valid URL: {e}",
                crate::config::http_client::redact_url(&c.api_url)
            ))
        })?;
        // teloxide appends `/bot<token>/<method>` to the path.
        let path = api_url.path().trim_end_matches('/').to_string();
        api_url.set_path(&path);
        let mode = ParseMode::from_config(&c.parse_mode).ok_or_else(|| {
            b.invalid(format!(
                "parse_mode {:?} is not one of HTML, MarkdownV2, Markdown or empty",
                c.parse_mode
            ))
        })?;
        let thread = match c.message_thread_id {
            0 => None,
            id => Some(i32::try_from(id).map_err(|_| {
                b.invalid(format!(
                    "message_thread_id {id} is out of range: Telegram's thread ids fit in 32 bits"
                ))
            })?),
        };
        let timeout = b.ctx.send_timeout;
        let client = build_http_client(&c.http_config, timeout).map_err(|source| {
            ChannelError::HttpClient {
                integration: b.what(),
                source,
            }
        })?;
        Ok(Telegram {
            name: b.name.clone(),
            send_resolved: b.send_resolved,
            api_url,
            token: c.bot_token.clone(),
            chat: c.chat.clone(),
            thread,
            message: b.tmpl("message", &c.message)?,
            disable_notification: c.disable_notifications,
            mode,
            client,
            timeout,
            progress: Mutex::new(HashMap::new()),
        })
    }

    fn escape(&self) -> Option<Escape> {
        match self.mode {
            ParseMode::Html => Some(escape_html),
            ParseMode::MarkdownV2 => Some(escape_markdown_v2),
            ParseMode::Markdown => Some(escape_markdown),
            ParseMode::Plain => None,
        }
    }

    /// The rendered message as the parts to send.
    pub fn parts(&self, msg: &NotificationData) -> Result<Vec<String>, SendError> {
        let data = RenderData::new(msg, now_ms(), self.escape());
        let text = self.message.render(&data)?;
        let mut parts = match self.mode {
            ParseMode::Html => split_html(&text, MESSAGE_LIMIT),
            _ => split_plain(&text, MESSAGE_LIMIT),
        };
        if parts.is_empty() {
            return Err(SendError::permanent(
                "empty_message",
                "the message template rendered only whitespace: Telegram refuses empty messages; fix the message template",
            ));
        }
        if parts.len() > MAX_PARTS {
            let left_out = parts.len() - (MAX_PARTS - 1);
            parts.truncate(MAX_PARTS - 1);
            parts.push(format!(
                "… {left_out} more part(s) of this notification were not sent: it is longer than {MAX_PARTS} Telegram messages"
            ));
        }
        Ok(parts)
    }

    fn chat_id(&self) -> Result<i64, SendError> {
        match &self.chat {
            TelegramChat::Id(id) => Ok(*id),
            TelegramChat::File(path) => {
                let src = SecretSource::File(path.clone());
                let text = crate::config::http_client::read_secret(&src, "chat_id_file")
                    .map_err(|e| SendError::permanent("secret_file", e.to_string()))?;
                text.parse::<i64>().map_err(|_| {
                    SendError::permanent(
                        "secret_file",
                        format!(
                            "chat_id_file {}: does not hold a chat id: write the numeric id alone",
                            path.display()
                        ),
                    )
                })
            }
        }
    }

    async fn deliver(&self, msg: &NotificationData, scrub: &mut Scrub) -> Result<(), SendError> {
        let token = scrub.read(&self.token, "bot_token")?;
        let chat = self.chat_id()?;
        let parts = self.parts(msg)?;
        let key = {
            let mut h = format!("{chat}\u{0}{}", self.thread.unwrap_or(0));
            for p in &parts {
                h.push('\u{0}');
                h.push_str(p);
            }
            fnv1a64(&[h.as_bytes()])
        };
        let start = self.done(key);
        let bot = Bot::with_client(token, self.client.clone()).set_api_url(self.api_url.clone());
        for (i, part) in parts.iter().enumerate().skip(start) {
            let sent = self.send_part(&bot, chat, part, self.mode).await;
            let sent = match sent {
                Err(RequestError::Api(ApiError::CantParseEntities(reason)))
                    if self.mode != ParseMode::Plain =>
                {
                    tracing::warn!(
                        integration = %self.name,
                        part = i + 1,
                        parts = parts.len(),
                        reason = %scrub.text(&reason),
                        "telegram refused the message's formatting; sending this part as plain text"
                    );
                    let plain = match self.mode {
                        ParseMode::Html => html_to_plain(part),
                        _ => part.clone(),
                    };
                    self.send_part(&bot, chat, &plain, ParseMode::Plain).await
                }
                other => other,
            };
            if let Err(e) = sent {
                let e = classify(e);
                let e = if parts.len() > 1 {
                    with_context(e, &format!("part {} of {}", i + 1, parts.len()))
                } else {
                    e
                };
                return Err(e);
            }
            self.record(key, i + 1, parts.len());
        }
        Ok(())
    }

    async fn send_part(
        &self,
        bot: &Bot,
        chat: i64,
        text: &str,
        mode: ParseMode,
    ) -> Result<(), RequestError> {
        let mut req = bot.send_message(ChatId(chat), text);
        #[allow(deprecated)]
        let mode = match mode {
            ParseMode::Html => Some(TgParseMode::Html),
            ParseMode::MarkdownV2 => Some(TgParseMode::MarkdownV2),
            ParseMode::Markdown => Some(TgParseMode::Markdown),
            ParseMode::Plain => None,
        };
        if let Some(m) = mode {
            req = req.parse_mode(m);
        }
        if let Some(t) = self.thread {
            req = req.message_thread_id(ThreadId(MessageId(t)));
        }
        if self.disable_notification {
            req = req.disable_notification(true);
        }
        req.await.map(|_| ())
    }

    /// Sends a digest report: its HTML in as many `sendMessage` parts as
    /// it needs (at most [`MAX_PARTS`], in HTML parse mode whatever the
    /// integration's `parse_mode`, since the report renders its own HTML),
    /// then the chart with `sendPhoto`.
    pub async fn send_digest(&self, digest: &Digest) -> Result<(), SendError> {
        let mut scrub = Scrub::new();
        let r = with_timeout(
            self.timeout,
            "telegram",
            self.deliver_digest(digest, &mut scrub),
        )
        .await;
        r.map_err(|e| scrub.error(e))
    }

    async fn deliver_digest(&self, digest: &Digest, scrub: &mut Scrub) -> Result<(), SendError> {
        let token = scrub.read(&self.token, "bot_token")?;
        let chat = self.chat_id()?;
        let bot = Bot::with_client(token, self.client.clone()).set_api_url(self.api_url.clone());
        let mut parts = split_html(&digest.telegram_html, MESSAGE_LIMIT);
        parts.truncate(MAX_PARTS);
        let total = parts.len();
        for (i, part) in parts.iter().enumerate() {
            if let Err(e) = self.send_part(&bot, chat, part, ParseMode::Html).await {
                let e = classify(e);
                return Err(if total > 1 {
                    with_context(e, &format!("part {} of {total}", i + 1))
                } else {
                    e
                });
            }
        }
        if let Some(png) = &digest.chart_png {
            let photo = InputFile::memory(png.clone()).file_name("chart.png");
            let mut req = bot
                .send_photo(ChatId(chat), photo)
                .caption(digest.chart_caption.clone());
            if let Some(t) = self.thread {
                req = req.message_thread_id(ThreadId(MessageId(t)));
            }
            if self.disable_notification {
                req = req.disable_notification(true);
            }
            req.await
                .map(|_| ())
                .map_err(|e| with_context(classify(e), "chart"))?;
        }
        Ok(())
    }

    fn done(&self, key: u64) -> usize {
        self.progress
            .lock()
            .map(|p| p.get(&key).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn record(&self, key: u64, sent: usize, total: usize) {
        if let Ok(mut p) = self.progress.lock() {
            if sent >= total {
                p.remove(&key);
            } else {
                if p.len() >= MAX_PENDING {
                    p.clear();
                }
                p.insert(key, sent);
            }
        }
    }
}

impl Notifier for Telegram {
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
            let r = with_timeout(self.timeout, "telegram", self.deliver(msg, &mut scrub)).await;
            r.map_err(|e| scrub.error(e))
        })
    }
}

fn with_context(e: SendError, context: &str) -> SendError {
    match e {
        SendError::Retryable {
            reason,
            message,
            retry_after,
        } => SendError::Retryable {
            reason,
            message: format!("{context}: {message}"),
            retry_after,
        },
        SendError::Permanent { reason, message } => SendError::Permanent {
            reason,
            message: format!("{context}: {message}"),
        },
    }
}

/// teloxide's error as a classified send error. teloxide reads Telegram's
/// JSON answer, not the HTTP status, so the classes follow the
/// description: flood control (`retry_after`) and server-side trouble are
/// retryable, everything Telegram rejects is permanent.
fn classify(e: RequestError) -> SendError {
    match e {
        RequestError::RetryAfter(secs) => SendError::Retryable {
            reason: "rate_limited",
            message: format!("telegram flood control: retry after {}s", secs.seconds()),
            retry_after: Some(secs.duration()),
        },
        RequestError::MigrateToChatId(id) => SendError::permanent(
            "chat_migrated",
            format!(
                "the group became a supergroup with chat id {}: set chat_id to {}",
                id.0, id.0
            ),
        ),
        RequestError::Api(ApiError::InvalidToken) => SendError::permanent(
            "auth",
            "telegram rejected the bot token (Unauthorized): check bot_token or bot_token_file",
        ),
        RequestError::Api(ApiError::Unknown(desc)) if server_trouble(&desc) => {
            SendError::retryable("server_error", format!("telegram: {desc}"))
        }
        RequestError::Api(api) => SendError::permanent(
            "client_error",
            format!("telegram rejected the message: {api}"),
        ),
        RequestError::Network(err) => {
            let chain = error_chain(err.as_ref());
            if is_certificate_error(&chain) {
                SendError::permanent(
                    "tls",
                    format!("telegram api_url: {chain}: the server's certificate is not trusted"),
                )
            } else if err.is_timeout() {
                SendError::retryable("timeout", format!("telegram api_url: {chain}"))
            } else if err.is_connect() {
                SendError::retryable("connection", format!("telegram api_url: {chain}"))
            } else {
                SendError::retryable("network", format!("telegram api_url: {chain}"))
            }
        }
        RequestError::InvalidJson { raw, .. } => {
            // Not Telegram's JSON: a proxy's or load balancer's error page.
            let mut excerpt: String = raw.chars().take(200).collect();
            if excerpt.len() < raw.len() {
                excerpt.push('…');
            }
            SendError::retryable(
                "bad_response",
                format!("telegram api_url answered something that is not the Bot API: {excerpt}"),
            )
        }
        RequestError::Io(e) => SendError::retryable("network", format!("telegram: {e}")),
    }
}

fn server_trouble(desc: &str) -> bool {
    let d = desc.to_ascii_lowercase();
    [
        "internal server error",
        "bad gateway",
        "service unavailable",
        "gateway timeout",
        "too many requests",
    ]
    .iter()
    .any(|k| d.contains(k))
}
