//! The API's one error type and its mapping to the status/code table of the contract. Internal
//! causes are logged here and replaced by a generic message before anything leaves the process.

use herald_domain::DomainError;
use http::StatusCode;
use serde_json::{json, Map, Value};

/// An error response: status, stable code, human message, and details safe to show.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable machine-readable code.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// Extra structured context (never secrets, never internal errors).
    pub details: Map<String, Value>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// 401: the bearer token is missing or not acceptable.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404 for an unknown path or resource.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405: the path exists, the method does not.
    pub fn method_not_allowed(allowed: &[&str]) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this path",
        );
        e.details.insert("allowed".into(), json!(allowed));
        e
    }

    /// 413: the body is over the limit.
    pub fn payload_too_large(limit: usize) -> Self {
        let mut e = Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body exceeds {limit} bytes"),
        );
        e.details.insert("limit".into(), json!(limit));
        e
    }

    /// 422 naming `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            message,
        );
        if !field.is_empty() {
            e.details.insert("field".into(), json!(field));
        }
        e
    }

    /// 400 for a request that breaks a rule of the protocol (e.g. a bad WebSocket handshake).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "validation_error", message)
    }

    /// 426: the endpoint only speaks WebSocket.
    pub fn upgrade_required() -> Self {
        Self::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "this endpoint needs a WebSocket upgrade request",
        )
    }

    /// 503: the store is unreachable or cannot take writes; a retry later may succeed. The
    /// message is generic; `cause` goes to the log only.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(%cause, "store unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service is temporarily unavailable; try again shortly",
        )
    }

    /// An engine failure: 503 `engine_unavailable` when it could not be reached in time, 502
    /// `engine_error` (with the engine's status and message in `details`) when it refused,
    /// 409 when it does not do that.
    pub fn engine(error: &herald_domain::ports::EngineError) -> Self {
        use herald_domain::ports::EngineError;
        tracing::warn!(%error, "engine call failed");
        match error {
            EngineError::Unavailable(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "engine_unavailable",
                "the messaging engine is unavailable; nothing was done, try again shortly",
            ),
            EngineError::Rejected { status, message } => {
                let mut e = Self::new(
                    StatusCode::BAD_GATEWAY,
                    "engine_error",
                    match message {
                        Some(m) => format!("the messaging engine refused: {m}"),
                        None => "the messaging engine refused".to_owned(),
                    },
                );
                if let Some(status) = status {
                    e.details.insert("engineStatus".into(), json!(status));
                }
                if let Some(message) = message {
                    e.details.insert("engineMessage".into(), json!(message));
                }
                e
            }
            EngineError::Unsupported(message) => {
                Self::new(StatusCode::CONFLICT, "conflict", message.clone())
            }
        }
    }

    /// A store failure: 503 for an outage, 500 otherwise.
    pub fn store(error: &herald_domain::StoreError) -> Self {
        if error.is_unavailable() {
            Self::unavailable(error)
        } else {
            Self::internal(error)
        }
    }

    /// 500 with a generic message; `cause` goes to the log only.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// The JSON body: `{"error": {"code", "message", "details"}}`.
    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message, "details": self.details}})
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::Forbidden(capability) => {
                let mut e = Self::new(StatusCode::FORBIDDEN, "forbidden", error.to_string());
                e.details
                    .insert("required".into(), json!(capability.as_str()));
                e
            }
            DomainError::Invalid { ref field, .. } => {
                Self::invalid(&field.clone(), error.to_string())
            }
            DomainError::NotFound(_) => Self::not_found(error.to_string()),
            DomainError::Rule(message) => {
                Self::new(StatusCode::BAD_REQUEST, "validation_error", message)
            }
            DomainError::Conflict(message) => Self::new(StatusCode::CONFLICT, "conflict", message),
            DomainError::Unavailable(cause) => Self::unavailable(&cause),
            DomainError::Engine(engine) => Self::engine(&engine),
            DomainError::Internal(cause) => Self::internal(&DisplayChain(cause.as_ref())),
        }
    }
}

/// Displays an error with its sources, for the log line of a 500.
struct DisplayChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}
