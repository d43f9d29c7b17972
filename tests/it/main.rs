//! The one integration-test binary: conformance corpora, config fixtures and
//! end-to-end runs of watchpost on 127.0.0.1:0.

#![allow(clippy::disallowed_methods)]
// Tests may spawn untracked tasks and read the clock.
mod architecture;
mod cli;
mod config;
mod exposition;
mod promql;
mod restart;
mod scrape_e2e;
mod storage;
mod support;
