//! Herald's domain: the rules of the event layer with no I/O.
//!
//! This crate holds what Herald *means* — ids, capabilities, webhooks and their always-valid
//! parts, the retry schedule, sessions, polls and votes, events and deliveries — and the
//! **ports** (async traits) through which the use cases in [`gateway`] reach the outside world:
//! a store, a secret cipher, a clock and a pause, a messaging engine and a change listener.
//! Every port lives in [`ports`], grouped by kind and, for the delivery queue, split by caller
//! (the dispatcher's [`ports::DeliveryQueue`], the API's [`ports::DeliveryViews`]). Adapters in
//! other crates implement the ports — `herald-store` on SQL, `herald-store-memory` in memory
//! for unit tests — and this crate never touches a socket, a file, SQL or HTTP.

#![warn(missing_docs)]

pub mod api_key;
pub mod capability;
pub mod deliveries;
pub mod delivery;
pub mod destination;
pub mod error;
pub mod event;
pub mod events_log;
pub mod gateway;
pub mod health;
pub mod ids;
pub mod message;
pub mod messaging;
pub mod poll;
pub mod ports;
pub mod retry;
pub mod session;
pub mod webhook;

pub use capability::{Capabilities, Capability, Principal, Role, Subject};
pub use error::{DomainError, StoreError, StoreErrorKind};
pub use ids::{ApiKeyId, DeliveryId, EventId, OrgId, SessionId, WebhookId};

/// Epoch milliseconds, the one time unit Herald stores and shows.
pub type Millis = i64;
