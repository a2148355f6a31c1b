//! The operations endpoints alone — `/healthz`, `/readyz`, `/metrics` — for processes that
//! serve no API (the standalone dispatcher). Same shapes, and the same connection limits, as
//! the API server's.

use crate::error::ApiError;
use crate::{json_response, ConnectionLimits, ConnectionStats, HttpResponse};
use crate::{MetricsSource, ReadinessCheck};
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What the operations endpoints report on.
pub struct OpsState {
    /// Checked by `/readyz`.
    pub readiness: Vec<Arc<dyn ReadinessCheck>>,
    /// Rendered by `/metrics`.
    pub metrics: Vec<Arc<dyn MetricsSource>>,
    /// Timeouts and the connection limit of the server.
    pub limits: ConnectionLimits,
    /// Connection counters.
    pub connections: Arc<ConnectionStats>,
}

/// The paths served, each with `GET` only.
const PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Serves `/healthz`, `/readyz` and `/metrics` on `listener` until `shutdown` resolves.
pub async fn run(listener: TcpListener, state: Arc<OpsState>, shutdown: impl Future<Output = ()>) {
    let handler_state = state.clone();
    let handler = move |request| {
        let state = handler_state.clone();
        async move { answer(&state, request).await }
    };
    crate::server::serve(
        "operations",
        listener,
        state.limits,
        &state.connections,
        handler,
        shutdown,
        || {},
    )
    .await;
}

async fn answer(state: &OpsState, request: Request<Incoming>) -> HttpResponse {
    let path = request.uri().path();
    if !PATHS.contains(&path) {
        return crate::error_response(&ApiError::not_found("no such endpoint"));
    }
    if request.method() != Method::GET {
        return crate::error_response(&ApiError::method_not_allowed(&["GET"]));
    }
    match path {
        "/healthz" => json_response(StatusCode::OK, &json!({"status": "ok"})),
        "/readyz" => crate::readiness::report(&state.readiness).await,
        _ => {
            let mut out = String::new();
            state.connections.render(&mut out);
            for source in &state.metrics {
                source.render(&mut out);
            }
            let mut response = hyper::Response::new(Full::new(Bytes::from(out)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
    }
}
