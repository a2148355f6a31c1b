//! Herald as a library: a multi-tenant messaging gateway's event layer — sessions, messages,
//! polls and votes; every change an event, delivered to each organization's signed, retried,
//! replayable webhooks and to a realtime WebSocket — embedded in a Rust backend, or run as the
//! `herald-api` and `herald-dispatcher` binaries (thin wrappers around [`cli`]).
//!
//! # Quick start
//!
//! ```no_run
//! use herald::{Capabilities, Config, Herald, Principal, StartAt};
//! use herald::domain::{events_log::LogFilter, OrgId};
//! use herald::store::Database;
//!
//! # async fn example() -> anyhow::Result<()> {
//! // Herald on a SQLite file of the host's; deliveries run in this process.
//! let config = Config {
//!     database: Database::Sqlite("data/herald.db".into()),
//!     ..Config::default()
//! };
//! let herald = Herald::builder(config).build().await?;
//!
//! // Use cases, called directly as an organization the host authenticated itself.
//! let caller = Principal::trusted(OrgId::parse("org_acme").unwrap(), Capabilities::ALL);
//! let session = herald.gateway().create_session(&caller, "support", None).await?;
//! println!("session {} is {:?}", session.id, session.status);
//!
//! // The organization's events in-process, resumable from any event id.
//! let mut events = herald.events(&caller, StartAt::Oldest, LogFilter::default()).await?;
//! # let _ = &mut events;
//!
//! // The HTTP API, to mount in the host's hyper or axum server (here under `/herald`)…
//! let service = herald.service().under("/herald");
//! # let _ = service;
//! // …or served on a port of its own until Ctrl-C.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! herald.serve(listener, tokio::signal::ctrl_c()).await;
//! # Ok(())
//! # }
//! ```
//!
//! The examples in `crates/herald/examples/` show each way of embedding end to end (each is run
//! by `cargo test`): `embed_minimal` (the host's own engine on SQLite, served), `embed_axum`
//! (Herald under `/herald` beside the host's axum routes, one of which sends a poll through the
//! Rust API) and `embed_events` (an in-process consumer that resumes after a restart).
//!
//! # What the crates are
//!
//! [`domain`] holds the rules and the ports (no I/O); [`store`] implements the store port on
//! PostgreSQL and SQLite; [`http`] is the HTTP API; this crate wires them from a [`Config`]
//! ([`Herald`]) and runs them ([`App`], [`dispatch`]).

#![warn(missing_docs)]

pub mod app;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod embed;
pub mod engine;
pub mod wake;

pub use app::App;
pub use config::Config;
pub use embed::{
    Delivery, EventStream, Herald, HeraldBuilder, HttpService, StartAt, StreamEnd, StreamedEvent,
};
pub use herald_domain as domain;
pub use herald_domain::{Capabilities, Capability, Principal};
pub use herald_engine_waha as waha;
pub use herald_http as http;
pub use herald_store as store;
