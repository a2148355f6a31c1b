//! The typed WAHA client: one method per WAHA call Herald makes, each bounded by the configured
//! timeout, each sending `X-Api-Key` when one is configured. Failures come back as a
//! [`WahaError`] that says whether WAHA could not be reached in time (*unavailable*) or answered
//! with an error (*rejected*, with its status code and message), because Herald answers the two
//! differently (503 `engine_unavailable` and 502 `engine_error`).

use crate::api::{
    message_id, MeInfo, MessagePoll, QrCodeValue, SendPollRequest, SendPollVoteRequest,
    SendTextRequest, SessionConfig, SessionCreateRequest, SessionDto, SessionUpdateRequest,
};
use crate::config::WahaConfig;
use herald_domain::poll::Poll;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::time::{Duration, Instant};

/// Largest answer read from WAHA; anything longer is not an answer Herald needs.
const MAX_ANSWER: usize = 1024 * 1024;

/// Longest WAHA error message kept.
const MAX_MESSAGE: usize = 500;

/// Everything but unreserved characters is encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The WAHA calls Herald makes, named for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `POST /api/sessions`.
    CreateSession,
    /// `PUT /api/sessions/{name}`.
    UpdateSession,
    /// `POST /api/sessions/{name}/start`.
    StartSession,
    /// `DELETE /api/sessions/{name}`.
    DeleteSession,
    /// `GET /api/sessions/{name}/me`.
    Me,
    /// `GET /api/{session}/auth/qr?format=raw`.
    Qr,
    /// `POST /api/sendText`.
    SendText,
    /// `POST /api/sendPoll`.
    SendPoll,
    /// `POST /api/sendPollVote`.
    SendPollVote,
}

impl Operation {
    /// A stable snake-case name (a metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateSession => "create_session",
            Self::UpdateSession => "update_session",
            Self::StartSession => "start_session",
            Self::DeleteSession => "delete_session",
            Self::Me => "me",
            Self::Qr => "qr",
            Self::SendText => "send_text",
            Self::SendPoll => "send_poll",
            Self::SendPollVote => "send_poll_vote",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a WAHA call failed. Never holds the API key or the webhook key.
#[derive(Debug, thiserror::Error)]
pub enum WahaError {
    /// WAHA could not be reached, or did not answer in time: nothing is known to have happened.
    #[error("WAHA is unavailable ({operation}): {reason}")]
    Unavailable {
        /// The call.
        operation: Operation,
        /// What happened.
        reason: Unavailable,
    },
    /// WAHA answered with a non-2xx status.
    #[error("WAHA refused {operation} with status {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Rejected {
        /// The call.
        operation: Operation,
        /// WAHA's status code.
        status: u16,
        /// WAHA's message, when its answer had one.
        message: Option<String>,
    },
    /// WAHA answered 2xx with something Herald cannot use (not JSON, or no message id).
    #[error("WAHA's answer to {operation} is unusable: {reason}")]
    InvalidAnswer {
        /// The call.
        operation: Operation,
        /// What is missing or wrong.
        reason: String,
    },
}

/// How WAHA was unavailable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unavailable {
    /// No complete answer within the timeout.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// The connection failed: refused, reset, closed before an answer, or the name does not
    /// resolve.
    #[error("{0}")]
    Unreachable(String),
}

impl WahaError {
    /// The call that failed.
    pub fn operation(&self) -> Operation {
        match self {
            Self::Unavailable { operation, .. }
            | Self::Rejected { operation, .. }
            | Self::InvalidAnswer { operation, .. } => *operation,
        }
    }

    /// `true` when WAHA could not be reached in time (Herald's 503 `engine_unavailable`);
    /// `false` when WAHA answered, with an error or something unusable (502 `engine_error`).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// WAHA's status code, when it answered.
    pub fn engine_status(&self) -> Option<u16> {
        match self {
            Self::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// WAHA's message, when its error answer had one.
    pub fn engine_message(&self) -> Option<&str> {
        match self {
            Self::Rejected { message, .. } => message.as_deref(),
            _ => None,
        }
    }

    /// A stable outcome name for metrics: `unavailable`, `rejected` or `invalid_answer`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => "unavailable",
            Self::Rejected { .. } => "rejected",
            Self::InvalidAnswer { .. } => "invalid_answer",
        }
    }

    fn is_status(&self, wanted: StatusCode) -> bool {
        self.engine_status() == Some(wanted.as_u16())
    }
}

/// A client for one WAHA server. Cheap to clone (connections are pooled and shared).
#[derive(Clone)]
pub struct WahaClient {
    config: WahaConfig,
    session_config: std::sync::Arc<SessionConfig>,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl fmt::Debug for WahaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WahaClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

type Answer = (StatusCode, Bytes);

impl WahaClient {
    /// A client for the WAHA server `config` names.
    pub fn new(config: WahaConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let session_config = std::sync::Arc::new(SessionConfig::herald_webhook(
            config.events_url(),
            config.webhook_key(),
        ));
        Self {
            config,
            session_config,
            http,
        }
    }

    /// The settings this client uses.
    pub fn config(&self) -> &WahaConfig {
        &self.config
    }

    /// Makes sure WAHA has a started session `name` whose webhook points at Herald: creates it
    /// (`POST /api/sessions` with `start: true`); when WAHA answers that it exists (409 or
    /// 422), replaces its configuration (`PUT /api/sessions/{name}`) and starts it
    /// (`POST /api/sessions/{name}/start`, which WAHA documents as idempotent). If the update
    /// finds no such session, the creation's own refusal is returned (for example WAHA Core's
    /// refusal of any session other than `default`).
    pub async fn ensure_session(&self, name: &str) -> Result<SessionDto, WahaError> {
        let create = SessionCreateRequest {
            name,
            start: true,
            config: &self.session_config,
        };
        let created = self
            .json_call(
                Operation::CreateSession,
                Method::POST,
                "/api/sessions".to_owned(),
                Some(&create),
            )
            .await;
        let refusal = match created {
            Err(e)
                if e.is_status(StatusCode::CONFLICT)
                    || e.is_status(StatusCode::UNPROCESSABLE_ENTITY) =>
            {
                e
            }
            other => return other,
        };
        match self.update_session(name).await {
            Err(e) if e.is_status(StatusCode::NOT_FOUND) => return Err(refusal),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        self.start_session(name).await
    }

    /// Replaces session `name`'s configuration with Herald's webhook
    /// (`PUT /api/sessions/{name}`).
    pub async fn update_session(&self, name: &str) -> Result<SessionDto, WahaError> {
        let update = SessionUpdateRequest {
            config: &self.session_config,
        };
        let path = format!("/api/sessions/{}", segment(name));
        self.json_call(Operation::UpdateSession, Method::PUT, path, Some(&update))
            .await
    }

    /// Starts session `name` (`POST /api/sessions/{name}/start`).
    pub async fn start_session(&self, name: &str) -> Result<SessionDto, WahaError> {
        let path = format!("/api/sessions/{}/start", segment(name));
        self.json_call::<(), _>(Operation::StartSession, Method::POST, path, None)
            .await
    }

    /// Stops, logs out and deletes session `name` (`DELETE /api/sessions/{name}`); a session
    /// WAHA does not know (404) counts as deleted.
    pub async fn delete_session(&self, name: &str) -> Result<(), WahaError> {
        let path = format!("/api/sessions/{}", segment(name));
        match self
            .call::<()>(Operation::DeleteSession, Method::DELETE, path, None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_status(StatusCode::NOT_FOUND) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The account session `name` is connected as (`GET /api/sessions/{name}/me`); `None`
    /// while it is not connected (WAHA then answers an empty body or `null`).
    pub async fn me(&self, name: &str) -> Result<Option<MeInfo>, WahaError> {
        let operation = Operation::Me;
        let path = format!("/api/sessions/{}/me", segment(name));
        let (_, body) = self.call::<()>(operation, Method::GET, path, None).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let value: Option<Value> = parse(operation, &body)?;
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value)
                .map(Some)
                .map_err(|e| invalid(operation, format!("not a MeInfo ({e})"))),
        }
    }

    /// The QR code text to pair session `name` (`GET /api/{session}/auth/qr?format=raw`).
    pub async fn qr(&self, name: &str) -> Result<String, WahaError> {
        let path = format!("/api/{}/auth/qr?format=raw", segment(name));
        let qr: QrCodeValue = self
            .json_call::<(), _>(Operation::Qr, Method::GET, path, None)
            .await?;
        Ok(qr.value)
    }

    /// Sends `text` to `chat` (`POST /api/sendText`), as an answer to `reply_to` when given;
    /// returns WAHA's id of the new message (e.g. `true_11111111111@c.us_AAAA…`).
    pub async fn send_text(
        &self,
        session: &str,
        chat: &str,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<String, WahaError> {
        let request = SendTextRequest {
            session,
            chat_id: chat,
            text,
            reply_to,
        };
        self.send(Operation::SendText, "/api/sendText", &request)
            .await
    }

    /// Sends `poll` to `chat` (`POST /api/sendPoll`; more than one answer allowed unless the
    /// poll is single-choice); returns WAHA's id of the poll message.
    pub async fn send_poll(
        &self,
        session: &str,
        chat: &str,
        poll: &Poll,
    ) -> Result<String, WahaError> {
        let request = SendPollRequest {
            session,
            chat_id: chat,
            poll: MessagePoll {
                name: poll.question(),
                options: poll.options(),
                multiple_answers: poll.selectable_count() != 1,
            },
        };
        self.send(Operation::SendPoll, "/api/sendPoll", &request)
            .await
    }

    /// Casts the session's complete selection `votes` on poll message `poll_message_id` in
    /// `chat` (`POST /api/sendPollVote`); returns the vote message's id when WAHA's answer
    /// names one (its document promises no body, so `None` is normal).
    pub async fn send_poll_vote(
        &self,
        session: &str,
        chat: &str,
        poll_message_id: &str,
        votes: &[String],
    ) -> Result<Option<String>, WahaError> {
        let operation = Operation::SendPollVote;
        let request = SendPollVoteRequest {
            session,
            chat_id: chat,
            poll_message_id,
            votes,
        };
        let (_, body) = self
            .call(
                operation,
                Method::POST,
                "/api/sendPollVote".to_owned(),
                Some(&request),
            )
            .await?;
        Ok(serde_json::from_slice::<Value>(&body)
            .ok()
            .as_ref()
            .and_then(message_id))
    }

    /// A send whose answer must name the new message.
    async fn send<B: Serialize>(
        &self,
        operation: Operation,
        path: &str,
        request: &B,
    ) -> Result<String, WahaError> {
        let (_, body) = self
            .call(operation, Method::POST, path.to_owned(), Some(request))
            .await?;
        let answer: Option<Value> = parse(operation, &body)?;
        answer
            .as_ref()
            .and_then(message_id)
            .ok_or_else(|| invalid(operation, "the answer names no message id".to_owned()))
    }

    /// A call whose 2xx answer is a JSON document of type `T`.
    async fn json_call<B: Serialize, T: DeserializeOwned>(
        &self,
        operation: Operation,
        method: Method,
        path: String,
        body: Option<&B>,
    ) -> Result<T, WahaError> {
        let (_, answer) = self.call(operation, method, path, body).await?;
        parse::<T>(operation, &answer)?
            .ok_or_else(|| invalid(operation, "the answer is empty".to_owned()))
    }

    /// One HTTP exchange under the timeout: a 2xx answer's status and body, or the error.
    async fn call<B: Serialize>(
        &self,
        operation: Operation,
        method: Method,
        path: String,
        body: Option<&B>,
    ) -> Result<Answer, WahaError> {
        let started = Instant::now();
        let timeout = self.config.timeout();
        let result = match tokio::time::timeout(
            timeout,
            self.exchange(operation, method, &path, body),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(WahaError::Unavailable {
                operation,
                reason: Unavailable::TimedOut(timeout),
            }),
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok((status, _)) => {
                tracing::debug!(%operation, status = status.as_u16(), elapsed_ms, "WAHA call")
            }
            Err(error) => {
                tracing::warn!(%operation, outcome = error.outcome(), elapsed_ms, %error, "WAHA call failed")
            }
        }
        result
    }

    async fn exchange<B: Serialize>(
        &self,
        operation: Operation,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Answer, WahaError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.config.base_url()))
            .header(header::ACCEPT, "application/json");
        if let Some(key) = self.config.api_key_header() {
            builder = builder.header("x-api-key", key.clone());
        }
        let payload = match body {
            Some(body) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                // Serializing these plain request types cannot fail.
                Bytes::from(serde_json::to_vec(body).unwrap_or_default())
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(payload))
            .map_err(|e| invalid(operation, format!("cannot build the request ({e})")))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| unreachable(operation, &e))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map(|collected| collected.to_bytes());
        if !status.is_success() {
            // WAHA answered: its status is what counts, even if the body could not be read.
            return Err(WahaError::Rejected {
                operation,
                status: status.as_u16(),
                message: body.ok().as_deref().and_then(error_message),
            });
        }
        match body {
            Ok(body) => Ok((status, body)),
            Err(e) if e.is::<LengthLimitError>() => Err(invalid(
                operation,
                format!("the answer is longer than {MAX_ANSWER} bytes"),
            )),
            Err(e) => Err(unreachable(operation, &*e)),
        }
    }
}

/// A path segment, percent-encoded.
fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

fn invalid(operation: Operation, reason: String) -> WahaError {
    WahaError::InvalidAnswer { operation, reason }
}

/// A transport failure, described by its whole cause chain (hyper's top-level error alone says
/// only "client error (Connect)").
fn unreachable(operation: Operation, error: &(dyn std::error::Error + 'static)) -> WahaError {
    let mut reason = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    WahaError::Unavailable {
        operation,
        reason: Unavailable::Unreachable(reason),
    }
}

/// A 2xx body as `T`; `None` when the body is empty.
fn parse<T: DeserializeOwned>(operation: Operation, body: &[u8]) -> Result<Option<T>, WahaError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| invalid(operation, format!("not the expected JSON ({e})")))
}

/// WAHA's error message: its answers are `{"statusCode", "message", "error"}`, where `message`
/// is a string or (for validation errors) a list of strings.
fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let text = match value.get("message") {
        Some(Value::String(message)) => message.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("; "),
        _ => value.get("error")?.as_str()?.to_owned(),
    };
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Some(match text.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("default"), "default");
        assert_eq!(
            segment("01J9ZX8K2QHV0M3T6R7P4N5W8C"),
            "01J9ZX8K2QHV0M3T6R7P4N5W8C"
        );
        assert_eq!(segment("a b/c?d#e%"), "a%20b%2Fc%3Fd%23e%25");
        assert_eq!(segment("sales-1_x.y~z"), "sales-1_x.y~z");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn wahas_error_messages_are_read_in_both_forms() {
        assert_eq!(
            error_message(br#"{"statusCode":422,"message":"Session 'default' already exists","error":"Unprocessable Entity"}"#).as_deref(),
            Some("Session 'default' already exists")
        );
        assert_eq!(
            error_message(br#"{"statusCode":400,"message":["chatId must be a string","text should not be empty"],"error":"Bad Request"}"#).as_deref(),
            Some("chatId must be a string; text should not be empty")
        );
        assert_eq!(
            error_message(br#"{"statusCode":500,"error":"Internal Server Error"}"#).as_deref(),
            Some("Internal Server Error")
        );
        assert_eq!(error_message(b"<html>bad gateway</html>"), None);
        assert_eq!(error_message(br#"{"message":"  "}"#), None);
        let long = format!(r#"{{"message":"{}"}}"#, "x".repeat(2000));
        assert_eq!(
            error_message(long.as_bytes()).unwrap().chars().count(),
            MAX_MESSAGE + 1
        );
    }

    #[test]
    fn errors_say_how_herald_answers_them() {
        let down = WahaError::Unavailable {
            operation: Operation::SendText,
            reason: Unavailable::TimedOut(Duration::from_millis(50)),
        };
        assert!(down.is_unavailable());
        assert_eq!(
            (down.engine_status(), down.outcome()),
            (None, "unavailable")
        );
        let refused = WahaError::Rejected {
            operation: Operation::SendPoll,
            status: 422,
            message: Some("The method is not implemented by the engine.".into()),
        };
        assert!(!refused.is_unavailable());
        assert_eq!(refused.engine_status(), Some(422));
        assert_eq!(
            refused.to_string(),
            "WAHA refused send_poll with status 422: The method is not implemented by the engine."
        );
        assert_eq!(refused.operation(), Operation::SendPoll);
    }
}
