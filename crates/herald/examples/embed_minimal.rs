//! The smallest embedding: the host's own engine, Herald on a SQLite file, served on a port.
use async_trait::async_trait;
use herald::domain::ports::{Engine, EngineError, StatusReport};
use herald::domain::{event::Me, poll::Poll, session::Session, session::SessionStatus};
use herald::{Config, Herald};
use std::{future::Future, sync::Arc};
use tokio::net::TcpListener;

/// The host's messaging network: every session connects at once, as one account.
struct HostEngine;
#[async_trait]
impl Engine for HostEngine {
    fn name(&self) -> &'static str {
        "host"
    }
    async fn start(&self, _: &Session) -> Result<Vec<StatusReport>, EngineError> {
        let me = Some(Me::from("15550001111@c.us"));
        Ok(vec![StatusReport::new(SessionStatus::Working, me)])
    }
    async fn send_poll(&self, _: &Session, _: &str, _: &Poll) -> Result<String, EngineError> {
        Ok(format!("host-{}", ulid::Ulid::new()))
    }
}

/// Serves Herald on `config` with the host's engine, on `port`, until `stop`.
async fn run(config: Config, port: TcpListener, stop: impl Future) -> anyhow::Result<()> {
    let herald = Herald::builder(config).engine(Arc::new(HostEngine)).build();
    herald.await?.serve(port, stop).await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port = TcpListener::bind("127.0.0.1:8080").await?; // the data goes to ./data
    run(Config::default(), port, tokio::signal::ctrl_c()).await
}

#[cfg(test)]
#[path = "tests/embed_minimal.rs"]
mod tests;
