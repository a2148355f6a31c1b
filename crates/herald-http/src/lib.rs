//! Herald's HTTP transport on hyper 1: the route table, bearer authentication with per-route
//! capability checks, the 1 MiB body limit, JSON request/response shapes, the error table,
//! CORS, health, metrics, the OpenAPI document and the web console's files.
//!
//! The entry point is [`run`]: it takes a bound listener, the shared [`AppState`] and a shutdown
//! future, so a binary serves on its configured address and a test on `127.0.0.1:0`. Only this
//! crate knows the API's request and response shapes; it calls the domain's use cases and
//! never touches the store directly.

pub mod body;
mod console;
mod deliveries;
pub mod error;
mod events;
mod handlers;
pub mod live;
mod messaging;
pub mod openapi;
pub mod ops;
pub mod query;
pub mod routes;

use error::ApiError;
use herald_domain::gateway::Gateway;
use herald_domain::ports::Authenticator;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use routes::{Access, NoMatch};
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The response type every handler produces.
pub type HttpResponse = Response<Full<Bytes>>;

/// Something `/readyz` must see healthy (the store, the JWKS…).
#[async_trait::async_trait]
pub trait ReadinessCheck: Send + Sync {
    /// A short name for the report.
    fn name(&self) -> &'static str;
    /// `Err(reason)` when not ready.
    async fn check(&self) -> Result<(), String>;
    /// Whether a failure makes the replica unready (503). A check that is not required is
    /// still reported, and turns the status to `degraded` while the answer stays 200.
    fn required(&self) -> bool {
        true
    }
}

/// Something that contributes lines to `/metrics` (Prometheus text format).
pub trait MetricsSource: Send + Sync {
    /// Appends its metrics to `out`.
    fn render(&self, out: &mut String);
}

/// Everything a request handler needs, shared by all connections.
pub struct AppState {
    /// The use cases.
    pub gateway: Gateway,
    /// Turns bearer tokens into principals.
    pub auth: Arc<dyn Authenticator>,
    /// Checked by `/readyz` besides the store.
    pub readiness: Vec<Arc<dyn ReadinessCheck>>,
    /// Rendered by `/metrics` besides the HTTP counters.
    pub metrics: Vec<Arc<dyn MetricsSource>>,
    /// Origins allowed to call the API from a browser.
    pub cors_origins: Vec<String>,
    /// Request counters.
    pub http_metrics: HttpMetrics,
    /// Live fan-out of the event log to WebSocket subscribers.
    pub live: live::Hub,
}

impl AppState {
    /// State with no extra readiness checks, metrics or CORS origins, and a live hub that polls
    /// the log (the wiring replaces it with one woken by commits).
    pub fn new(gateway: Gateway, auth: Arc<dyn Authenticator>) -> Self {
        Self {
            live: live::Hub::new(gateway.store.clone(), None),
            gateway,
            auth,
            readiness: Vec::new(),
            metrics: Vec::new(),
            cors_origins: Vec::new(),
            http_metrics: HttpMetrics::default(),
        }
    }
}

/// Counts of served requests by status class.
#[derive(Default)]
pub struct HttpMetrics {
    by_class: [AtomicU64; 5],
}

impl HttpMetrics {
    fn record(&self, status: StatusCode) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        out.push_str("# HELP herald_http_requests_total HTTP requests served, by status class.\n");
        out.push_str("# TYPE herald_http_requests_total counter\n");
        for (i, count) in self.by_class.iter().enumerate() {
            out.push_str(&format!(
                "herald_http_requests_total{{class=\"{}xx\"}} {}\n",
                i + 1,
                count.load(Ordering::Relaxed)
            ));
        }
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// (for up to 10 s) before returning.
pub async fn run(listener: TcpListener, state: Arc<AppState>, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let service = hyper::service::service_fn(move |request| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(state, request).await) }
                });
                let builder = Builder::new(TokioExecutor::new());
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    // Upgraded WebSockets outlive their HTTP connections; closing the hub ends them.
    state.live.close();
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("connections still open after 10 s; closing"),
    }
}

/// Handles one request end to end: CORS, routing, authentication, the handler, error mapping.
pub async fn handle(state: Arc<AppState>, request: Request<Incoming>) -> HttpResponse {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let origin = request.headers().get(header::ORIGIN).cloned();
    let allowed_origin = origin.filter(|o| {
        state
            .cors_origins
            .iter()
            .any(|a| a == "*" || o.as_bytes() == a.as_bytes())
    });

    let mut response = if method == Method::OPTIONS && allowed_origin.is_some() {
        preflight()
    } else {
        match serve(&state, &path, request).await {
            Ok(response) => response,
            Err(error) => error_response(&error),
        }
    };
    if let Some(origin) = allowed_origin {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    state.http_metrics.record(response.status());
    tracing::info!(
        target: "herald::http",
        %method,
        path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

fn preflight() -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PATCH, DELETE, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

async fn serve(
    state: &Arc<AppState>,
    path: &str,
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    let (route, params) = match routes::find(request.method(), path) {
        Ok(found) => found,
        Err(NoMatch::NotFound) => return Err(ApiError::not_found("no such endpoint")),
        Err(NoMatch::MethodNotAllowed(allowed)) => {
            return Err(ApiError::method_not_allowed(&allowed))
        }
    };
    let principal = match route.access {
        Access::Public => None,
        Access::Authenticated | Access::Requires(_) => {
            let token = if route.op == routes::Op::EventsWs {
                events::ws_token(&request)?
            } else {
                std::borrow::Cow::Borrowed(bearer_token(&request)?)
            };
            let principal = state
                .auth
                .authenticate(&token)
                .await
                .map_err(|error| match error {
                    herald_domain::ports::AuthError::Rejected(message) => {
                        ApiError::unauthorized(message)
                    }
                    herald_domain::ports::AuthError::Store(cause) => ApiError::internal(&cause),
                })?;
            if let Access::Requires(capability) = route.access {
                principal.require(capability)?;
            }
            Some(principal)
        }
    };
    let params: Vec<String> = params.into_iter().map(str::to_owned).collect();
    handlers::dispatch(state, route, params, principal, request).await
}

/// The token from `Authorization: Bearer <token>` (401 when absent or malformed).
pub fn bearer_token<B>(request: &Request<B>) -> Result<&str, ApiError> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization header"))?;
    let text = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("expected `Authorization: Bearer <token>`"))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::unauthorized(
            "expected `Authorization: Bearer <token>`",
        ));
    }
    Ok(token)
}

/// A JSON response.
pub fn json_response(status: StatusCode, value: &impl serde::Serialize) -> HttpResponse {
    let body = serde_json::to_vec(value).expect("responses always serialize");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An empty response.
pub fn empty_response(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// The error body for `error`.
pub fn error_response(error: &ApiError) -> HttpResponse {
    let mut response = json_response(error.status, &error.body());
    if error.status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}
