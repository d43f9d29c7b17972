//! `log_configs` (watchpost's own receiver kind): each notification is
//! written as one line to stdout. The embedded default config's receiver,
//! so a fresh install shows its alerts without any service set up.
//!
//! The line is the `message` template if set, else the built-in
//! `log.default.message`; newlines in it are written as `\n` so one
//! notification stays one line.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::config::notify::LogConfig;
use crate::notify::{NotificationData, Notifier, SendError};

use super::render::{RenderData, Tmpl};
use super::{Builder, ChannelError, now_ms};

/// Where the log channel writes.
#[derive(Clone, Default)]
pub enum LogSink {
    #[default]
    Stdout,
    /// An in-memory buffer (tests, `watchpost notify test`).
    Buffer(Arc<Mutex<Vec<u8>>>),
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogSink::Stdout => f.write_str("Stdout"),
            LogSink::Buffer(_) => f.write_str("Buffer"),
        }
    }
}

impl LogSink {
    fn write_line(&self, line: &str) -> std::io::Result<()> {
        match self {
            LogSink::Stdout => {
                // One write per line, so lines from concurrent sends never
                // interleave.
                let mut out = std::io::stdout().lock();
                out.write_all(format!("{line}\n").as_bytes())?;
                out.flush()
            }
            LogSink::Buffer(b) => {
                let mut b = b
                    .lock()
                    .map_err(|_| std::io::Error::other("log buffer poisoned"))?;
                b.extend_from_slice(line.as_bytes());
                b.push(b'\n');
                Ok(())
            }
        }
    }
}

pub struct Log {
    name: String,
    send_resolved: bool,
    message: Tmpl,
    sink: LogSink,
}

impl Log {
    pub(crate) fn new(b: &Builder<'_>, c: &LogConfig) -> Result<Self, ChannelError> {
        let text = if c.message.is_empty() {
            "{{ template \"log.default.message\" . }}"
        } else {
            c.message.as_str()
        };
        Ok(Log {
            name: b.name.clone(),
            send_resolved: b.send_resolved,
            message: b.tmpl("message", text)?,
            sink: b.ctx.log_sink.clone(),
        })
    }

    fn deliver(&self, msg: &NotificationData) -> Result<(), SendError> {
        let data = RenderData::new(msg, now_ms(), None);
        let text = self.message.render(&data)?;
        let line = text.trim_end().replace('\r', "\\r").replace('\n', "\\n");
        self.sink
            .write_line(&line)
            .map_err(|e| SendError::retryable("io", format!("writing to stdout: {e}")))
    }
}

impl Notifier for Log {
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
        Box::pin(async move { self.deliver(msg) })
    }
}
