//! The event log over HTTP (`GET /events`) and live over a WebSocket (`GET /events/ws`).
//!
//! The WebSocket subscribes to the process's [`Hub`](crate::live::Hub) *before* answering the
//! upgrade, so the subscription is in place when the handshake completes. With `since`, the
//! events between that id and where the live feed starts are replayed from the store first;
//! every frame carries a log position and the socket never sends one at or below the last it
//! sent, so replay and live feed meet without a gap or a duplicate.

use crate::error::ApiError;
use crate::live::{Feed, FeedEnd};
use crate::query::Query;
use crate::RequestBody;
use crate::{AppState, HttpResponse};
use futures_util::{SinkExt, StreamExt};
use herald_domain::events_log::{LogFilter, MAX_PAGE};
use herald_domain::ports::{AuthError, Authenticator, Clock};
use herald_domain::{Capability, Principal};
use http::{header, HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use hyper_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use hyper_tungstenite::tungstenite::{Message, Utf8Bytes};
use hyper_tungstenite::{HyperWebsocket, HyperWebsocketStream};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default page size of the event log.
pub(crate) const DEFAULT_PAGE: usize = 50;

/// `GET /events?since=&cursor=&sessionId=&event=&limit=`: a page of the caller's log, oldest
/// first. `cursor` (the previous page's `nextCursor`) and `since` are both event ids; `cursor`
/// wins when both are given.
pub(crate) async fn list(
    state: &Arc<AppState>,
    caller: &Principal,
    request: &Request<RequestBody>,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(request.uri());
    let filter = LogFilter {
        session: query.session_id("sessionId")?,
        types: query.event_types("event")?,
    };
    let limit = query.limit(DEFAULT_PAGE, MAX_PAGE)?;
    let since = query.get("cursor").or_else(|| query.get("since"));
    // Read-your-writes: events committed before this request began are waited for (briefly)
    // when an older transaction still keeps them unsettled; the use case does the waiting.
    let page = state
        .gateway
        .list_events_settled(caller, since, filter, limit)
        .await?;
    // The envelopes are stored as the exact JSON delivered; they are spliced in, not re-encoded.
    let mut body = String::with_capacity(
        64 + page
            .events
            .iter()
            .map(|e| e.envelope.len() + 1)
            .sum::<usize>(),
    );
    body.push_str("{\"data\":[");
    for (i, event) in page.events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&event.envelope);
    }
    body.push_str("],\"nextCursor\":");
    body.push_str(
        &serde_json::to_string(
            &page
                .next_cursor
                .map(|id| id.to_string())
                .unwrap_or_default(),
        )
        .expect("a string serializes"),
    );
    body.push('}');
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The WebSocket subprotocol a browser offers together with its token (see [`ws_token`]); the
/// server selects it in the handshake answer, as the browser requires.
pub(crate) const WS_PROTOCOL: &str = "herald";
/// The prefix of the offered subprotocol that carries the bearer token.
const WS_TOKEN_PROTOCOL: &str = "herald.bearer.";

/// The subprotocols a WebSocket request offers, in order.
fn offered_protocols<B>(request: &Request<B>) -> impl Iterator<Item = &str> {
    request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
}

/// The bearer token of a WebSocket request: the `Authorization` header; else an offered
/// subprotocol `herald.bearer.<token>` (browsers cannot set headers on a WebSocket, and a
/// subprotocol keeps the token out of URLs and the logs that record them); else the
/// `access_token` query parameter.
pub(crate) fn ws_token<B>(request: &Request<B>) -> Result<Cow<'_, str>, ApiError> {
    if request.headers().contains_key(header::AUTHORIZATION) {
        return crate::bearer_token(request).map(Cow::Borrowed);
    }
    if let Some(token) = offered_protocols(request).find_map(|p| p.strip_prefix(WS_TOKEN_PROTOCOL))
    {
        if token.is_empty() {
            return Err(ApiError::unauthorized(
                "empty token in the herald.bearer. subprotocol",
            ));
        }
        return Ok(Cow::Borrowed(token));
    }
    match Query::parse(request.uri()).get("access_token") {
        Some(token) => Ok(Cow::Owned(token.to_owned())),
        None => Err(ApiError::unauthorized(
            "missing Authorization header, herald.bearer. subprotocol or access_token query parameter",
        )),
    }
}

/// How often the server pings; a peer silent for [`SILENCE_LIMIT`] is dropped.
const PING_EVERY: Duration = Duration::from_secs(20);
const SILENCE_LIMIT: Duration = Duration::from_secs(60);
/// How often the credentials are checked again (a key revoked on another replica is refused
/// by the authenticator within seconds; this bounds how long a socket outlives it).
const RECHECK_EVERY: Duration = Duration::from_secs(1);
/// A socket that accepts nothing for this long is given up.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// `GET /events/ws?events=a,b&sessionId=&since=`: validates the query (422/404 are plain HTTP
/// answers), subscribes, and answers `101 Switching Protocols`.
pub(crate) async fn upgrade(
    state: &Arc<AppState>,
    caller: Principal,
    mut request: Request<RequestBody>,
) -> Result<HttpResponse, ApiError> {
    let token = ws_token(&request)?.into_owned();
    let query = Query::parse(request.uri());
    let filter = LogFilter {
        session: query.session_id("sessionId")?,
        types: query.event_types("events")?,
    };
    let since = match query.get("since") {
        Some(id) => Some(state.gateway.log_position(&caller, id).await?),
        None => None,
    };
    if !hyper_tungstenite::is_upgrade_request(&request) {
        return Err(ApiError::upgrade_required());
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024));
    let selects_protocol = offered_protocols(&request).any(|p| p == WS_PROTOCOL);
    let (mut response, websocket) = hyper_tungstenite::upgrade(&mut request, Some(config))
        .map_err(|e| ApiError::bad_request(format!("WebSocket handshake refused: {e}")))?;
    if selects_protocol {
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(WS_PROTOCOL),
        );
    }
    let subscription = state
        .live
        .subscribe(caller.organization.clone(), filter, since)
        .await
        .map_err(|e| ApiError::store(&e))?;
    let session = Session {
        feed: Feed::new(state.gateway.store.clone(), subscription),
        clock: state.gateway.clock.clone(),
        auth: state.auth.clone(),
        token,
        caller,
    };
    tokio::spawn(session.run(websocket));
    Ok(response)
}

/// Why the server ends a socket, and the close code it sends.
enum End {
    /// The peer went away or the connection broke: nothing to send.
    Gone,
    /// Close with this code and reason.
    Close(CloseCode, &'static str),
}

struct Session {
    feed: Feed,
    clock: Arc<dyn Clock>,
    auth: Arc<dyn Authenticator>,
    token: String,
    caller: Principal,
}

impl From<FeedEnd> for End {
    fn from(end: FeedEnd) -> Self {
        match end {
            FeedEnd::Closed => End::Close(CloseCode::Away, "server shutting down"),
            FeedEnd::Lagged => End::Close(CloseCode::Again, "more than 1000 events behind"),
            FeedEnd::Store(error) => {
                tracing::warn!(%error, "WebSocket replay failed");
                End::Close(CloseCode::Error, "the event log cannot be read")
            }
        }
    }
}

impl Session {
    async fn run(mut self, websocket: HyperWebsocket) {
        let mut ws = match websocket.await {
            Ok(ws) => ws,
            Err(error) => {
                tracing::debug!(%error, "WebSocket upgrade did not complete");
                return;
            }
        };
        let end = match self.replay(&mut ws).await {
            Ok(()) => self.live(&mut ws).await,
            Err(end) => end,
        };
        if let End::Close(code, reason) = end {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            };
            if tokio::time::timeout(SEND_TIMEOUT, ws.close(Some(frame)))
                .await
                .is_ok()
            {
                // Give the peer a moment to answer the close, then let the socket go.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
            }
        }
    }

    /// Sends, from the store, what the subscriber asked for before its live feed starts.
    async fn replay(&mut self, ws: &mut HyperWebsocketStream) -> Result<(), End> {
        while let Some(event) = self.feed.next_replayed().await? {
            send(ws, Message::Text(event.frame.clone()), false).await?;
            if !self.feed.ready() {
                flush(ws).await?;
            }
        }
        Ok(())
    }

    /// Forwards the live feed; answers the peer; pings; re-checks the credentials.
    async fn live(&mut self, ws: &mut HyperWebsocketStream) -> End {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let mut recheck = tokio::time::interval(RECHECK_EVERY);
        recheck.tick().await;
        let mut heard = Instant::now();
        loop {
            let expiry = expires_in(&self.caller, self.clock.now_ms());
            tokio::select! {
                item = self.feed.next() => {
                    let sent = match item {
                        Ok(event) => send(ws, Message::Text(event.frame.clone()), false).await,
                        Err(end) => Err(end.into()),
                    };
                    // Whatever is already queued goes out with the same flush.
                    let flushed = match sent {
                        Ok(()) if !self.feed.ready() => flush(ws).await,
                        other => other,
                    };
                    if let Err(end) = flushed {
                        return end;
                    }
                }
                message = ws.next() => match message {
                    None | Some(Err(_)) => return End::Gone,
                    Some(Ok(Message::Close(_))) => {
                        // tungstenite queues the close reply; flushing sends it.
                        let _ = tokio::time::timeout(SEND_TIMEOUT, ws.flush()).await;
                        return End::Gone;
                    }
                    // Text and binary from the client carry nothing; any frame shows it is alive.
                    Some(Ok(_)) => heard = Instant::now(),
                },
                _ = ping.tick() => {
                    if heard.elapsed() > SILENCE_LIMIT {
                        return End::Close(CloseCode::Away, "no pong");
                    }
                    if let Err(end) = send(ws, Message::Ping(Bytes::from_static(b"herald")), true).await {
                        return end;
                    }
                }
                _ = recheck.tick() => {
                    if let Some(end) = self.recheck().await {
                        return end;
                    }
                }
                _ = tokio::time::sleep(expiry) => {
                    return End::Close(CloseCode::Policy, "token expired");
                }
            }
        }
    }

    /// `Some(end)` when the credentials no longer hold.
    async fn recheck(&mut self) -> Option<End> {
        match self.auth.authenticate(&self.token).await {
            Ok(principal)
                if principal.organization == self.caller.organization
                    && principal.capabilities.contains(Capability::Read) =>
            {
                self.caller = principal;
                None
            }
            Ok(_) | Err(AuthError::Rejected(_)) => {
                Some(End::Close(CloseCode::Policy, "credentials revoked"))
            }
            // A store hiccup is not a revocation: keep the socket and ask again next time.
            Err(AuthError::Store(error)) => {
                tracing::warn!(%error, "WebSocket credential check failed");
                None
            }
        }
    }
}

/// Time left before the caller's credentials expire (a long time when they do not).
fn expires_in(caller: &Principal, now: i64) -> Duration {
    const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);
    match caller.expires_at {
        None => NEVER,
        Some(at) => Duration::from_millis(at.saturating_sub(now).max(0) as u64),
    }
}

async fn send(ws: &mut HyperWebsocketStream, message: Message, flush_now: bool) -> Result<(), End> {
    let sending = async {
        if flush_now {
            ws.send(message).await
        } else {
            ws.feed(message).await
        }
    };
    match tokio::time::timeout(SEND_TIMEOUT, sending).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(End::Gone),
    }
}

async fn flush(ws: &mut HyperWebsocketStream) -> Result<(), End> {
    match tokio::time::timeout(SEND_TIMEOUT, ws.flush()).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(End::Gone),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::{Capabilities, OrgId, Subject};

    fn caller(expires_at: Option<i64>) -> Principal {
        Principal {
            organization: OrgId::parse("org").unwrap(),
            capabilities: Capabilities::parse_list("read").unwrap(),
            subject: Subject::User(None),
            expires_at,
        }
    }

    #[test]
    fn a_socket_lives_until_its_credentials_expire() {
        assert_eq!(
            expires_in(&caller(Some(10_500)), 10_000),
            Duration::from_millis(500)
        );
        assert_eq!(expires_in(&caller(Some(9_000)), 10_000), Duration::ZERO);
        assert!(expires_in(&caller(None), 10_000) > Duration::from_secs(3600 * 24 * 300));
    }
}
