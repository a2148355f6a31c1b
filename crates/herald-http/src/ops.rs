//! The operations endpoints alone — `/healthz`, `/readyz`, `/metrics` — for processes that
//! serve no API (the standalone dispatcher). Same shapes as the API server's.

use crate::{json_response, HttpResponse, MetricsSource, ReadinessCheck};
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use serde_json::json;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What the operations endpoints report on.
pub struct OpsState {
    /// Checked by `/readyz`; all must pass.
    pub readiness: Vec<Arc<dyn ReadinessCheck>>,
    /// Rendered by `/metrics`.
    pub metrics: Vec<Arc<dyn MetricsSource>>,
}

/// Serves `/healthz`, `/readyz` and `/metrics` on `listener` until `shutdown` resolves.
pub async fn run(listener: TcpListener, state: Arc<OpsState>, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let state = state.clone();
                let service = hyper::service::service_fn(move |request| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(answer(&state, request).await) }
                });
                tokio::spawn(async move {
                    let _ = Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = &mut shutdown => return,
        }
    }
}

async fn answer(state: &OpsState, request: Request<Incoming>) -> HttpResponse {
    if request.method() != Method::GET {
        return crate::error_response(&crate::error::ApiError::method_not_allowed(&["GET"]));
    }
    match request.uri().path() {
        "/healthz" => json_response(StatusCode::OK, &json!({"status": "ok"})),
        "/readyz" => {
            let mut checks = serde_json::Map::new();
            let mut ready = true;
            for check in &state.readiness {
                let result = check.check().await;
                ready &= result.is_ok();
                checks.insert(
                    check.name().into(),
                    result.map_or_else(|reason| json!(reason), |()| json!("ok")),
                );
            }
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json_response(
                status,
                &json!({"status": if ready { "ready" } else { "unavailable" }, "checks": checks}),
            )
        }
        "/metrics" => {
            let mut out = String::new();
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
        _ => crate::error_response(&crate::error::ApiError::not_found("no such endpoint")),
    }
}
