//! The one integration-test binary: conformance corpora, config fixtures and
//! end-to-end runs of watchpost on 127.0.0.1:0.

// Tests may spawn untracked tasks and read the clock.
#![allow(clippy::disallowed_methods)]

mod architecture;
mod cli;
mod config;
mod exposition;
mod interop;
mod notify_config;
mod notify_interop;
mod promql;
mod query_api;
mod restart;
mod rules;
mod rules_api;
mod rules_unit;
mod scrape_e2e;
mod storage;
mod support;
mod template;
