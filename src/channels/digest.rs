//! Delivery of digest reports (`reports:`) through a receiver's email and
//! Telegram integrations, the two channels a digest can use.
//!
//! A digest is not a notification: it has no alerts, no grouping and no
//! retry lane, so it does not go through `notify`. It does go through the
//! same channel code as notifications: each [`DigestSender`] is built by
//! the channel's own constructor from the receiver's config and sends with
//! the channel's transport, timeout, secret handling and error
//! classification ([`super::email::Email::send_digest`],
//! [`super::telegram::Telegram::send_digest`]). The report content is
//! rendered by the caller; this module only carries it.

use crate::config::notify::{IntegrationConfig, Receiver};
use crate::notify::SendError;

use super::{Builder, ChannelContext, ChannelError, email, telegram};

/// A rendered digest report, ready for any channel.
#[derive(Debug, Clone, Default)]
pub struct Digest {
    /// The report's name (`reports[].name`).
    pub name: String,
    /// The mail subject and the message heading.
    pub title: String,
    /// The plain-text version (the mail's text part).
    pub text: String,
    /// The mail's HTML part; the chart is `<img src="cid:{chart_cid}">`.
    pub html: String,
    /// The Telegram message: only the tags Telegram's HTML mode accepts.
    pub telegram_html: String,
    /// The chart as a PNG image, when there is one.
    pub chart_png: Option<Vec<u8>>,
    /// The `Content-ID` of the chart in the mail (without angle brackets).
    pub chart_cid: String,
    /// What the chart shows, as the Telegram photo's caption.
    pub chart_caption: String,
}

/// One integration of a receiver that can deliver a digest.
pub enum DigestSender {
    Email(email::Email),
    Telegram(telegram::Telegram),
}

impl DigestSender {
    /// The integration as logs show it (`email[0]`).
    pub fn integration(&self) -> &str {
        use crate::notify::Notifier;
        match self {
            DigestSender::Email(e) => e.integration(),
            DigestSender::Telegram(t) => t.integration(),
        }
    }

    /// Sends the digest once (no retry: the next scheduled run is the retry).
    pub async fn send(&self, digest: &Digest) -> Result<(), SendError> {
        match self {
            DigestSender::Email(e) => e.send_digest(digest).await,
            DigestSender::Telegram(t) => t.send_digest(digest).await,
        }
    }
}

/// The email and Telegram integrations of `receiver`, in the receiver's
/// order; its other integrations are left out.
pub fn digest_senders(
    receiver: &Receiver,
    ctx: &ChannelContext,
) -> Result<Vec<DigestSender>, ChannelError> {
    let mut out = Vec::new();
    for integration in &receiver.integrations {
        let b = Builder {
            name: integration.display_name(),
            receiver: &receiver.name,
            send_resolved: integration.send_resolved,
            ctx,
        };
        match &integration.config {
            IntegrationConfig::Email(c) => out.push(DigestSender::Email(email::Email::new(&b, c)?)),
            IntegrationConfig::Telegram(c) => {
                out.push(DigestSender::Telegram(telegram::Telegram::new(&b, c)?))
            }
            _ => {}
        }
    }
    Ok(out)
}
