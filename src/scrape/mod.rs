//! Pulling metrics: target discovery (static, file_sd, http_sd), relabeling,
//! one scrape loop per target, HTTP fetch with caps (through its own lean
//! client), exposition parsing.
//!
//! Scraping writes into storage only through `storage::Appender`.

mod cache;
pub mod client;
pub mod discovery;
pub mod fetch;
pub mod manager;
pub mod parse;
pub mod relabel;
pub mod runtime;
pub mod scrape_loop;
pub mod target;

/// The HTTP client builder moved to `config::http_client` so that channels
/// share it; scrape code keeps reaching it by this name.
pub use crate::config::http_client;
