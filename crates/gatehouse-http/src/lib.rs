//! The HTTP and AWS proxies: callers send ordinary HTTP (or AWS SDK)
//! requests with their Gatehouse token; the gateway decides each one,
//! injects the connection's credential (or re-signs with SigV4), masks
//! JSON responses and records the exchange.

pub mod aws;
pub mod headers;
pub mod path;
pub mod sts;
pub mod upstream;

pub use upstream::{Upstream, UpstreamCache};
