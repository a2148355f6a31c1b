//! Herald's outbound webhook delivery: everything between a claimed delivery and the
//! receiver's answer, and the dispatcher loop that drives it.
//!
//! - [`sign`]: the request a receiver sees — headers in their documented order,
//!   `customHeaders` last, and the lowercase-hex HMAC-SHA512 of the exact envelope bytes.
//! - [`guard`]: the SSRF guard, a ureq resolver that refuses private, loopback, link-local,
//!   CGNAT, multicast and unspecified addresses; it vets the very addresses the connection is
//!   made to, so DNS rebinding cannot slip past it.
//! - [`client`]: the blocking ureq transport — one keep-alive agent, a hard per-attempt
//!   timeout, no redirects, a 4 KiB cap on what is read of a reply, errors classified as the
//!   API documents them.
//! - [`dispatcher`]: claims due deliveries in batches under a lease, runs attempts on a bounded
//!   set of blocking threads (first attempts and retries in separate lanes, with a per-webhook
//!   cap), writes outcomes back in batches, prunes old work, and stops gracefully.
//! - [`metrics`]: the `herald_deliver…` Prometheus metrics.
//!
//! This crate knows HTTP-as-a-client and nothing of SQL: it reaches the store only through the
//! domain's `DeliveryQueue` port.

pub mod client;
mod coalesce;
pub mod dispatcher;
pub mod guard;
pub mod metrics;
pub mod sign;

pub use client::{Answer, Transport, UreqTransport};
pub use dispatcher::{Dispatcher, DispatcherConfig, DispatcherHandle};
pub use metrics::DeliveryMetrics;
