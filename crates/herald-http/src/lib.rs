//! Herald's HTTP transport on hyper 1: the route table, bearer authentication with per-route
//! capability checks, the 1 MiB body limit, JSON request/response shapes, the error table,
//! CORS, health, metrics, the OpenAPI document, the web console's files, and WAHA's signed
//! webhook into Herald ([`engine_events`]) when the engine is WAHA.
//!
//! The entry point is [`run`]: it takes a bound listener, the shared [`AppState`] and a shutdown
//! future, so a binary serves on its configured address and a test on `127.0.0.1:0`. Only this
//! crate knows the API's request and response shapes; it calls the domain's use cases and
//! never touches the store directly.

pub mod body;
mod console;
mod deliveries;
pub mod engine_events;
pub mod error;
mod events;
mod handlers;
pub mod live;
mod messaging;
pub mod openapi;
pub mod ops;
pub mod query;
pub mod readiness;
pub mod routes;
mod server;

use error::ApiError;
use herald_domain::gateway::Gateway;
use herald_domain::ports::Authenticator;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Frame};
use routes::{Access, NoMatch};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;

pub use server::{ConnectionLimits, ConnectionStats};

/// The response type every handler produces.
pub type HttpResponse = Response<Full<Bytes>>;

/// The error type of a request body, erased.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body of whatever type the host's server uses (hyper's `Incoming`, axum's `Body`,
/// a test's `Full`), erased so the handlers are written once. The mutex only makes the body
/// `Sync` for handlers that hold the request across an await; it is never locked, because
/// reading a body needs exclusive access anyway ([`std::sync::Mutex::get_mut`]).
pub struct RequestBody(
    std::sync::Mutex<http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>>,
);

impl RequestBody {
    /// Erases `body`.
    pub fn new<B>(body: B) -> Self
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        use http_body_util::BodyExt;
        Self(std::sync::Mutex::new(
            body.map_err(Into::into).boxed_unsync(),
        ))
    }
}

impl hyper::body::Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let inner = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::pin::Pin::new(inner).poll_frame(cx)
    }
}

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
    /// Checked by `/readyz` (the store's write probe first).
    pub readiness: Vec<Arc<dyn ReadinessCheck>>,
    /// Rendered by `/metrics` besides the HTTP counters.
    pub metrics: Vec<Arc<dyn MetricsSource>>,
    /// Origins allowed to call the API from a browser.
    pub cors_origins: Vec<String>,
    /// Request counters.
    pub http_metrics: HttpMetrics,
    /// Live fan-out of the event log to WebSocket subscribers.
    pub live: live::Hub,
    /// Timeouts and the connection limit of the server.
    pub limits: ConnectionLimits,
    /// Connection counters.
    pub connections: Arc<ConnectionStats>,
    /// WAHA's webhook intake, when the engine is WAHA (`None` answers its route 404).
    pub waha: Option<Arc<engine_events::WahaIntake>>,
}

impl AppState {
    /// State whose `/readyz` checks the store only, with no extra metrics or CORS origins,
    /// the default connection limits, and a live hub that polls the log (the wiring replaces it
    /// with one woken by commits).
    pub fn new(gateway: Gateway, auth: Arc<dyn Authenticator>) -> Self {
        let store: Arc<dyn herald_domain::ports::StoreHealth> = gateway.store.clone();
        Self {
            live: live::Hub::new(gateway.store.clone(), None),
            readiness: vec![Arc::new(readiness::StoreReadiness::new(store))],
            gateway,
            auth,
            metrics: Vec::new(),
            cors_origins: Vec::new(),
            http_metrics: HttpMetrics::default(),
            limits: ConnectionLimits::default(),
            connections: Arc::default(),
            waha: None,
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
/// (for up to 10 s) before returning. Connections are held to `state.limits`.
pub async fn run(listener: TcpListener, state: Arc<AppState>, shutdown: impl Future<Output = ()>) {
    let handler_state = state.clone();
    let handler = move |request| handle(handler_state.clone(), request);
    server::serve(
        "api",
        listener,
        state.limits,
        &state.connections,
        handler,
        shutdown,
        // Upgraded WebSockets outlive their HTTP connections; closing the hub ends them.
        || state.live.close(),
    )
    .await;
}

/// The header carrying a request's id, in both directions.
pub const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The longest request id taken from a client.
const MAX_REQUEST_ID: usize = 128;

/// The client's `X-Request-Id` when it is short and made of safe characters (so it can be
/// logged and echoed as is), else a fresh ULID.
fn request_id(headers: &http::HeaderMap) -> HeaderValue {
    let sane = |v: &HeaderValue| {
        let bytes = v.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:@/+=".contains(b))
    };
    match headers.get(&REQUEST_ID) {
        Some(given) if sane(given) => given.clone(),
        _ => {
            let mut text = [0u8; ulid::ULID_LEN];
            let id = ulid::Ulid::new();
            HeaderValue::from_str(id.array_to_str(&mut text)).expect("a ULID is a header value")
        }
    }
}

/// Handles one request end to end: request id, CORS, routing, authentication, the handler,
/// error mapping. Everything logged meanwhile belongs to a `request` span carrying the request
/// id, the route template and (once authenticated) the organization; the id is returned as
/// `X-Request-Id`. The body may be of any type (see [`RequestBody`]); the path is the API's own
/// (`/api/v1/…`), so a host mounting Herald under a prefix strips it first.
pub async fn handle<B>(state: Arc<AppState>, request: Request<B>) -> HttpResponse
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    handle_erased(state, request.map(RequestBody::new)).await
}

async fn handle_erased(state: Arc<AppState>, request: Request<RequestBody>) -> HttpResponse {
    use tracing::Instrument;
    let started = Instant::now();
    let id = request_id(request.headers());
    let span = tracing::info_span!(
        target: "herald::http",
        "request",
        request_id = id.to_str().unwrap_or_default(),
        route = tracing::field::Empty,
        org = tracing::field::Empty,
    );
    let mut response = async {
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
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("x-request-id, retry-after"),
            );
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
    .instrument(span)
    .await;
    response.headers_mut().insert(REQUEST_ID, id);
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
        HeaderValue::from_static("authorization, content-type, x-request-id"),
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
    request: Request<RequestBody>,
) -> Result<HttpResponse, ApiError> {
    let (route, params) = match routes::find(request.method(), path) {
        Ok(found) => {
            tracing::Span::current().record("route", found.0.path);
            found
        }
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
                    herald_domain::ports::AuthError::Store(cause) => ApiError::store(&cause),
                })?;
            tracing::Span::current().record("org", principal.organization.as_str());
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

/// Seconds a client is asked to wait before retrying a 503.
pub const RETRY_AFTER_SECS: u32 = 5;

/// The error body for `error`, with the headers its status calls for: `WWW-Authenticate` on a
/// 401, `Allow` on a 405, `Retry-After` on a 503.
pub fn error_response(error: &ApiError) -> HttpResponse {
    let mut response = json_response(error.status, &error.body());
    let headers = response.headers_mut();
    match error.status {
        StatusCode::UNAUTHORIZED => {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed: Vec<&str> = error
                .details
                .get("allowed")
                .and_then(serde_json::Value::as_array)
                .map(|methods| {
                    methods
                        .iter()
                        .filter_map(serde_json::Value::as_str)
                        .collect()
                })
                .unwrap_or_default();
            if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
                headers.insert(header::ALLOW, value);
            }
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        _ => {}
    }
    response
}
