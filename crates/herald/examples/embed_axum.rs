//! Herald inside a host's axum application: the whole Herald API under `/herald`, next to the
//! host's own routes — one of which sends a poll through Herald's Rust API as an organization
//! the host authenticated by its own means.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use herald::domain::gateway::Gateway;
use herald::domain::poll::Poll;
use herald::domain::OrgId;
use herald::{Capabilities, Herald, Principal};
use serde_json::{json, Value};

/// The organization the host's own users belong to (a real host looks it up per request).
const HOST_ORG: &str = "org_host";

/// A host route: announces lunch in `chat` through the session `session`, as the host's org.
async fn announce_lunch(
    State(gateway): State<Gateway>,
    Path((session, chat)): Path<(String, String)>,
) -> Result<Json<Value>, (axum::http::StatusCode, String)> {
    let caller = Principal::trusted(OrgId::parse(HOST_ORG).unwrap(), Capabilities::ALL);
    let poll = Poll::new("Lunch?".into(), vec!["Pizza".into(), "Sushi".into()], 1)
        .map_err(|e| (axum::http::StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    match gateway.send_poll(&caller, &session, &chat, poll).await {
        Ok(sent) => Ok(Json(json!({"messageId": sent.id}))),
        Err(error) => Err((axum::http::StatusCode::BAD_REQUEST, error.to_string())),
    }
}

/// The host's application with Herald mounted under `/herald`.
fn app(herald: &Herald) -> Router {
    Router::new()
        .route("/", get(|| async { "the host's own page" }))
        .route("/lunch/{session}/{chat}", post(announce_lunch))
        .with_state(herald.gateway().clone())
        .nest_service("/herald", herald.service())
}

/// Serves the host's application on `listener` until `stop`, then shuts Herald down.
async fn run(
    config: herald::Config,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let herald = Herald::builder(config).build().await?;
    axum::serve(listener, app(&herald))
        .with_graceful_shutdown(stop)
        .await?;
    herald.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = herald::Config::from_env()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    run(config, listener, async {
        tokio::signal::ctrl_c().await.unwrap_or(())
    })
    .await
}

#[cfg(test)]
#[path = "tests/embed_axum.rs"]
mod tests;
