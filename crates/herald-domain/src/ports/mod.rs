//! The ports: every trait through which the domain reaches the outside world, in one place.
//! Adapter crates implement them; this crate only calls them. Each module groups the ports of
//! one kind, and everything is re-exported here, so callers name `herald_domain::ports::X`:
//!
//! - [`store`]: the store ports the use cases call — webhooks, sessions, API keys, the event
//!   outbox, messages and votes ([`MessageStore`]), the event log ([`EventLog`]) and the
//!   store's health — and [`Store`], every store port together (delivery ones included).
//! - [`delivery`]: the delivery ports, split by caller. [`DeliveryQueue`] is the dispatcher's
//!   (claim, complete, rate slots, defer and release leases, next claimable time, backlog and
//!   retention); [`DeliveryViews`] is the API's (list, read, tally, retry, recover, test ping).
//!   The dispatcher holds an `Arc<dyn DeliveryQueue>` and cannot reach the API's side.
//! - [`secrets`]: the sealed forms of webhook secrets the store keeps, and the
//!   [`SecretCipher`] that seals and opens them.
//! - [`auth`]: the [`Authenticator`] (bearer token to principal) and the [`KeyMinter`].
//! - [`engine`]: the messaging [`Engine`] and what it reports.
//! - [`time`]: the [`Clock`] and the [`Pause`], the only ways the domain reads or lets pass
//!   time.
//! - [`listener`]: the [`ChangeListener`] told after writes commit.
//!
//! `herald-store` implements the store and delivery ports on PostgreSQL and SQLite;
//! `herald-store-memory` implements the same ports in memory for unit tests of the use cases
//! (together with fakes of the clock, pause, cipher, minter and engine).

pub mod auth;
pub mod delivery;
pub mod engine;
pub mod listener;
pub mod secrets;
pub mod store;
pub mod time;

pub use auth::{AuthError, Authenticator, KeyMinter};
pub use delivery::{DeliveryQueue, DeliveryViews, DirectDispatch};
pub use engine::{Engine, EngineError, StatusReport};
pub use listener::{ChangeListener, NoListener};
pub use secrets::{
    seal_change, CipherError, PreviousSecret, SealedSecret, SealedSecretChange, SecretCipher,
    StoredSecrets,
};
pub use store::{
    ApiKeyStore, EventLog, EventStore, MessageStore, ReportSession, SessionStore, Store,
    StoreHealth, WebhookStore,
};
pub use time::{Clock, Pause, SystemClock};

/// What every store call returns.
pub type StoreResult<T> = Result<T, crate::error::StoreError>;
