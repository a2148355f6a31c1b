//! Herald as a library: build it from a [`Config`], choose its engine and where deliveries run,
//! then use it the ways a host application needs — mount its HTTP API inside the host's own
//! hyper or axum server ([`Herald::service`]), call use cases directly as a caller the host
//! authenticated ([`Herald::gateway`] with [`Principal::trusted`]), follow an organization's
//! events in-process with resume ([`Herald::events`]), serve it on a listener of its own
//! ([`Herald::serve`]) and shut it down cleanly ([`Herald::shutdown`]).
//!
//! The binaries are built from the same pieces ([`crate::App`] is a [`Herald`] served on a
//! listener), so an embedded Herald behaves exactly like a deployed one.

use crate::app::StartError;
use crate::app::{assemble_with, jwt_verifier, start_jwks, AbortOnDrop, JwksReadiness, Parts};
use crate::config::Config;
use crate::dispatch::{BacklogWatcher, DeliveryMetricsSource, RunningDispatcher};
use herald_auth::{ApiKeyAuthenticator, BearerAuthenticator};
use herald_domain::events_log::{LogFilter, LogPosition};
use herald_domain::gateway::Gateway;
use herald_domain::ports::{Authenticator, Engine};
use herald_domain::{Capability, DomainError, EventId, Principal};
use herald_http::error::ApiError;
use herald_http::live::{Feed, FeedEnd};
use herald_http::{AppState, BoxError, HttpResponse};
use herald_store::Database;
use http::{Request, Uri};
use hyper::body::{Body, Bytes};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::TcpListener;

/// Where webhook deliveries are made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Delivery {
    /// In this process on the embedded store or with `with_dispatcher` set; elsewhere on
    /// Postgres (the `herald-dispatcher` service's job). What the binaries do.
    #[default]
    Auto,
    /// Always in this process.
    InProcess,
    /// Never in this process: some other process runs a dispatcher on the same database.
    Elsewhere,
}

/// Builds a [`Herald`]: see [`Herald::builder`].
pub struct HeraldBuilder {
    config: Config,
    engine: Option<Arc<dyn Engine>>,
    delivery: Delivery,
}

impl HeraldBuilder {
    /// Use `engine` as the messaging network instead of the one the configuration names.
    pub fn engine(mut self, engine: Arc<dyn Engine>) -> Self {
        self.engine = Some(engine);
        self
    }

    /// Choose where deliveries run (default [`Delivery::Auto`]).
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// Opens the store (running migrations), loads the secrets key, starts the login-token key
    /// refresh and — when deliveries run here — the dispatcher.
    pub async fn build(self) -> Result<Herald, StartError> {
        let config = self.config;
        let parts = assemble_with(&config, self.engine).await?;
        let api_keys = ApiKeyAuthenticator::new(parts.store.clone(), parts.gateway.clock.clone());
        let mut bearer = BearerAuthenticator::new(api_keys);
        let jwt = jwt_verifier(&config);
        if let Some(verifier) = &jwt {
            start_jwks(verifier).await;
            bearer = bearer.with_jwt(verifier.clone());
        }
        let auth = Arc::new(bearer);
        // A key revoked through the use cases (over HTTP or by the host) is forgotten at once.
        let forget = Arc::downgrade(&auth);
        parts.wakeups.on_api_key_revoked(move |id| {
            if let Some(auth) = forget.upgrade() {
                auth.forget_api_key(id);
            }
        });
        let mut state = AppState::new(parts.gateway.clone(), auth);
        state.cors_origins = config.cors_origins.clone();
        state.limits = config.http_limits;
        state.metrics.push(parts.engine_metrics.clone());
        if let crate::config::EngineConfig::Waha(waha) = &config.engine {
            let intake = Arc::new(herald_http::engine_events::WahaIntake::new(
                waha.webhook_key().clone(),
            ));
            state.metrics.push(intake.metrics());
            state.waha = Some(intake);
        }
        if let Some(verifier) = jwt {
            state
                .readiness
                .push(Arc::new(JwksReadiness(verifier.clone())));
            state.metrics.push(Arc::new(JwksReadiness(verifier)));
        }
        if config.database.is_embedded() {
            // One process owns the embedded file, so a lease found in it at start-up belongs
            // to a predecessor that died mid-attempt: its deliveries are attempted again now
            // rather than when the lease lapses. (Never on Postgres: other replicas live.)
            match parts.store.release_all_leases().await {
                Ok(0) => {}
                Ok(released) => tracing::info!(
                    released,
                    "released the delivery leases a previous process left; attempting them again now"
                ),
                Err(error) => tracing::warn!(
                    %error,
                    "could not release the leases a previous process left; they lapse on their own"
                ),
            }
        }
        let in_process = match self.delivery {
            Delivery::Auto => config.database.is_embedded() || config.with_dispatcher,
            Delivery::InProcess => true,
            Delivery::Elsewhere => false,
        };
        let dispatcher = if in_process {
            Some(RunningDispatcher::start(&config, &parts)?)
        } else {
            None
        };
        // Without a dispatcher here, `/metrics` still shows the store-wide delivery backlog.
        let backlog = match &dispatcher {
            Some(running) => {
                state.metrics.push(Arc::new(DeliveryMetricsSource(
                    running.handle().metrics().clone(),
                )));
                None
            }
            None => {
                let watcher =
                    BacklogWatcher::start(parts.store.clone(), parts.gateway.clock.clone());
                state
                    .metrics
                    .push(Arc::new(DeliveryMetricsSource(watcher.metrics().clone())));
                Some(watcher)
            }
        };
        state.live =
            herald_http::live::Hub::new(parts.store.clone(), Some(parts.wakeups.watch_commits()));
        // Other replicas' commits reach this process's live hub through Postgres LISTEN/NOTIFY.
        let listening = match &config.database {
            Database::Postgres(url) => {
                let wakeups = parts.wakeups.clone();
                Some(AbortOnDrop(tokio::spawn(
                    herald_store::listen::listen_for_events(
                        url.clone(),
                        move |_| wakeups.commit_seen(),
                        std::future::pending::<()>(),
                    ),
                )))
            }
            Database::Sqlite(_) => None,
        };
        tracing::info!(
            store = %config.database.describe(),
            engine = parts.gateway.engine.name(),
            deliveries = if in_process { "in this process" } else { "elsewhere" },
            "Herald is ready"
        );
        Ok(Herald {
            state: Arc::new(state),
            parts,
            dispatcher,
            _backlog: backlog,
            _listening: listening,
        })
    }
}

/// A built Herald: its use cases, its HTTP API and its event stream, ready to be served or
/// mounted.
pub struct Herald {
    state: Arc<AppState>,
    parts: Parts,
    dispatcher: Option<RunningDispatcher>,
    _backlog: Option<BacklogWatcher>,
    _listening: Option<AbortOnDrop>,
}

impl Herald {
    /// Starts building a Herald from `config` (for example [`Config::from_env`], or
    /// [`Config::default`] with the fields set in code).
    pub fn builder(config: Config) -> HeraldBuilder {
        HeraldBuilder {
            config,
            engine: None,
            delivery: Delivery::Auto,
        }
    }

    /// The use cases, to call directly as a [`Principal`] the host authenticated
    /// ([`Principal::trusted`]). Every rule — capabilities, validation, tenancy — holds exactly
    /// as over HTTP.
    pub fn gateway(&self) -> &Gateway {
        &self.parts.gateway
    }

    /// Herald's HTTP API as a service to mount in the host's server. It answers the API's own
    /// paths (`/api/v1/…`, `/healthz`, `/console`, …); see [`HttpService::under`] to serve it
    /// below a prefix.
    pub fn service(&self) -> HttpService {
        HttpService {
            state: self.state.clone(),
            prefix: Arc::from(""),
        }
    }

    /// `caller`'s organization's events passing `filter`, in log order: those already logged
    /// from where `start` says, then live as they are committed — with neither a gap nor a
    /// duplicate where the two meet. A consumer that records the id of the last event it
    /// handled resumes after a restart without losing one ([`StartAt::After`]).
    ///
    /// Needs the `read` capability (403); an unknown event id is a 404, as over HTTP.
    pub async fn events(
        &self,
        caller: &Principal,
        start: StartAt<'_>,
        filter: LogFilter,
    ) -> Result<EventStream, DomainError> {
        caller.require(Capability::Read)?;
        let since = match start {
            StartAt::Now => None,
            StartAt::Oldest => Some(LogPosition::START),
            StartAt::After(id) => Some(self.parts.gateway.log_position(caller, id).await?),
        };
        let subscription = self
            .state
            .live
            .subscribe(caller.organization.clone(), filter, since)
            .await?;
        Ok(EventStream {
            feed: Feed::new(self.parts.store.clone(), subscription),
        })
    }

    /// Serves the HTTP API on `listener` until `signal` resolves (whatever it resolves to, so
    /// `tokio::signal::ctrl_c()` can be passed as is), then shuts down gracefully.
    pub async fn serve(self, listener: TcpListener, signal: impl Future) {
        let signal = async {
            signal.await;
        };
        herald_http::run(listener, self.state.clone(), signal).await;
        self.shutdown().await;
    }

    /// Ends every event stream and WebSocket, lets running delivery attempts finish and writes
    /// their outcomes, then returns.
    pub async fn shutdown(mut self) {
        self.state.live.close();
        if let Some(dispatcher) = self.dispatcher.take() {
            dispatcher.shutdown().await;
        }
    }

    /// The shared state the HTTP layer serves (the binaries' server uses it).
    pub(crate) fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }
}

/// Where an [`EventStream`] starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt<'a> {
    /// With the events committed from now on.
    Now,
    /// With the oldest event still kept (see `HERALD_RETENTION_DAYS`).
    Oldest,
    /// Right after the event with this id.
    After(&'a str),
}

/// One event of an [`EventStream`].
#[derive(Clone, Debug)]
pub struct StreamedEvent {
    /// The event's id: pass it as `since` to resume after this event.
    pub id: EventId,
    /// The event envelope, the same JSON webhooks receive.
    pub json: String,
}

impl StreamedEvent {
    /// The envelope parsed into any type that deserializes from it (`serde_json::Value`, or
    /// the host's own struct).
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(&self.json)
    }
}

/// Why an [`EventStream`] ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamEnd {
    /// Herald is shutting down.
    #[error("Herald is shutting down")]
    Closed,
    /// The consumer fell more than 1000 events behind the live feed; open a new stream with
    /// the last id it handled to catch up from the store.
    #[error("the consumer fell too far behind; resume from the last event it handled")]
    Lagged,
    /// The event log could not be read.
    #[error("the event log cannot be read: {0}")]
    Store(#[source] herald_domain::StoreError),
}

/// An organization's events in-process: see [`Herald::events`].
pub struct EventStream {
    feed: Feed,
}

impl EventStream {
    /// The next event, waiting for one to be committed if need be. `Err` ends the stream.
    pub async fn next(&mut self) -> Result<StreamedEvent, StreamEnd> {
        match self.feed.next().await {
            Ok(event) => Ok(StreamedEvent {
                id: event.id,
                json: event.frame.as_str().to_owned(),
            }),
            Err(FeedEnd::Closed) => Err(StreamEnd::Closed),
            Err(FeedEnd::Lagged) => Err(StreamEnd::Lagged),
            Err(FeedEnd::Store(error)) => Err(StreamEnd::Store(error)),
        }
    }
}

/// Herald's HTTP API as a service: a `tower` service for axum (`Router::nest_service`) and a
/// `hyper` service for a plain hyper server. Cheap to clone. Request bodies of any type are
/// accepted.
#[derive(Clone)]
pub struct HttpService {
    state: Arc<AppState>,
    prefix: Arc<str>,
}

impl HttpService {
    /// Serves the API below `prefix` (e.g. `/herald`): a request for `/herald/api/v1/webhooks`
    /// is answered as `/api/v1/webhooks`, and a path outside the prefix is a 404. Not needed
    /// with axum's `nest_service`, which strips the prefix itself.
    pub fn under(mut self, prefix: &str) -> Self {
        self.prefix = Arc::from(prefix.trim_end_matches('/'));
        self
    }

    /// Answers one request.
    pub async fn call<B>(&self, request: Request<B>) -> HttpResponse
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        match strip_prefix(&self.prefix, request) {
            Ok(request) => herald_http::handle(self.state.clone(), request).await,
            Err(()) => herald_http::error_response(&ApiError::not_found("no such endpoint")),
        }
    }
}

/// `request` with `prefix` taken off its path, or `Err` when its path is outside the prefix.
fn strip_prefix<B>(prefix: &str, mut request: Request<B>) -> Result<Request<B>, ()> {
    if prefix.is_empty() {
        return Ok(request);
    }
    let uri = request.uri();
    let rest = uri.path().strip_prefix(prefix).ok_or(())?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Err(());
    }
    let path = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().map_err(|_| ())?);
    *request.uri_mut() = Uri::from_parts(parts).map_err(|_| ())?;
    Ok(request)
}

type ServiceFuture = Pin<Box<dyn Future<Output = Result<HttpResponse, Infallible>> + Send>>;

impl HttpService {
    /// [`HttpService::call`] as the boxed future both service traits return.
    fn answer<B>(&self, request: Request<B>) -> ServiceFuture
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let service = self.clone();
        Box::pin(async move { Ok(HttpService::call(&service, request).await) })
    }
}

impl<B> tower_service::Service<Request<B>> for HttpService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ServiceFuture {
        self.answer(request)
    }
}

impl<B> hyper::service::Service<Request<B>> for HttpService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn call(&self, request: Request<B>) -> ServiceFuture {
        self.answer(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_after(prefix: &str, path: &str) -> Option<String> {
        let request = Request::builder().uri(path).body(()).unwrap();
        strip_prefix(prefix, request)
            .ok()
            .map(|r| r.uri().to_string())
    }

    #[test]
    fn a_prefix_is_taken_off_whole_segments_only() {
        assert_eq!(
            path_after("/herald", "/herald/api/v1/webhooks?limit=5").as_deref(),
            Some("/api/v1/webhooks?limit=5")
        );
        assert_eq!(path_after("/herald", "/herald").as_deref(), Some("/"));
        assert_eq!(path_after("/herald", "/heraldry/api/v1/webhooks"), None);
        assert_eq!(path_after("/herald", "/api/v1/webhooks"), None);
        assert_eq!(
            path_after("", "/api/v1/webhooks").as_deref(),
            Some("/api/v1/webhooks")
        );
    }
}
