//! Pulling metrics: target discovery (static, file_sd, http_sd), relabeling,
//! one scrape loop per target, HTTP fetch with caps, exposition parsing.
//!
//! Scraping writes into storage only through `storage::Appender`.

mod cache;
pub mod discovery;
pub mod fetch;
pub mod http_client;
pub mod manager;
pub mod parse;
pub mod relabel;
pub mod scrape_loop;
pub mod target;
