//! The one integration-test binary: conformance corpora, config fixtures and
//! end-to-end runs of watchpost on 127.0.0.1:0.

// Tests may spawn untracked tasks and read the clock.
#![allow(clippy::disallowed_methods)]

mod alert_stream;
mod amtool_api;
mod architecture;
mod backtest;
mod browser;
mod channels_common;
mod channels_email;
mod channels_http;
mod channels_log;
mod channels_secrets;
mod channels_telegram;
mod channels_unsupported;
mod cli;
mod config;
mod exposition;
mod heartbeat;
mod interop;
mod interop_push;
mod notify_app;
mod notify_cli;
mod notify_config;
mod notify_interop;
mod promql;
mod push;
mod query_api;
mod reports;
mod restart;
mod rules;
mod rules_api;
mod rules_unit;
mod scrape_e2e;
mod smtp_server;
mod storage;
mod support;
mod template;
mod ui;
