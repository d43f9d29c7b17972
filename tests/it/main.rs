//! The one integration-test binary: conformance corpora, config fixtures and
//! end-to-end runs of watchpost on 127.0.0.1:0.
mod promql;
