//! The smallest embedding: Herald on a SQLite file, with the host's own engine, served on a port.
use async_trait::async_trait;
use herald::domain::ports::{Engine, EngineError, StatusReport};
use herald::domain::{
    event::Me,
    poll::Poll,
    session::{Session, SessionStatus},
};
use std::sync::Arc;

/// The host's messaging network: here every session connects at once as the same account.
struct HostEngine;

#[async_trait]
impl Engine for HostEngine {
    fn name(&self) -> &'static str {
        "host"
    }
    async fn start(&self, _: &Session) -> Result<Vec<StatusReport>, EngineError> {
        let me = Some(Me {
            id: "15550001111@c.us".into(),
        });
        Ok(vec![StatusReport {
            status: SessionStatus::Working,
            me,
        }])
    }
    async fn stop(&self, _: &Session) -> Result<(), EngineError> {
        Ok(())
    }
    async fn send_poll(&self, _: &Session, _: &str, _: &Poll) -> Result<String, EngineError> {
        Ok(format!("host-{}", ulid::Ulid::new()))
    }
    async fn send_vote(
        &self,
        _: &Session,
        _: &str,
        _: &str,
        _: &[String],
    ) -> Result<String, EngineError> {
        Ok(format!("host-{}", ulid::Ulid::new()))
    }
}

/// Builds Herald on `config` with the host's engine and serves it on `listener` until `stop`.
async fn run(
    config: herald::Config,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let herald = herald::Herald::builder(config)
        .engine(Arc::new(HostEngine))
        .build()
        .await?;
    herald.serve(listener, stop).await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = herald::Config {
        database: herald::store::Database::Sqlite("herald-example/herald.db".into()),
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    run(config, listener, async {
        tokio::signal::ctrl_c().await.unwrap_or(())
    })
    .await
}

#[cfg(test)]
#[path = "tests/embed_minimal.rs"]
mod tests;
