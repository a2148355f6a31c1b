//! Herald assembled: configuration, and the wiring of store, secrets, auth, engine and HTTP into
//! a running gateway. The binaries are thin wrappers around [`cli`]; a Rust backend that embeds
//! Herald calls [`App::start`] with a [`Config`] (or builds a `Gateway` from the adapter crates
//! itself, plugging in its own `Engine`).

pub mod app;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod engine;
pub mod wake;

pub use app::App;
pub use config::Config;
pub use herald_domain as domain;
pub use herald_engine_waha as waha;
pub use herald_http as http;
pub use herald_store as store;
