//! The domain's errors. Each variant corresponds to one row of the API's error table, so the
//! HTTP layer maps them mechanically; store failures carry their cause for the log only.

use crate::capability::Capability;
use thiserror::Error;

/// Why a use case refused or failed.
#[derive(Debug, Error)]
pub enum DomainError {
    /// The caller lacks the capability the operation needs (403).
    #[error("this operation requires the `{0}` capability")]
    Forbidden(Capability),
    /// A request value is malformed or out of range (422); `field` names it.
    #[error("{message}")]
    Invalid {
        /// The offending field, as the client spelled it.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The resource does not exist or belongs to another organization (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is well-formed but breaks a rule about its target (400).
    #[error("{0}")]
    Rule(String),
    /// The target's state forbids the operation right now (409).
    #[error("{0}")]
    Conflict(String),
    /// The store cannot be reached or cannot take writes right now (503): the request may
    /// succeed if tried again later. The cause is for the log, never the client.
    #[error("the store is unavailable")]
    Unavailable(#[source] StoreError),
    /// The messaging engine could not do what was asked (503 when unreachable, 502 when it
    /// refused, 409 when it does not do that); nothing was stored.
    #[error(transparent)]
    Engine(#[from] crate::ports::EngineError),
    /// Something underneath failed (500); the cause is for the log, never the client.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl DomainError {
    /// A 422 for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<StoreError> for DomainError {
    fn from(error: StoreError) -> Self {
        match error.kind {
            StoreErrorKind::Unavailable => Self::Unavailable(error),
            StoreErrorKind::Other => Self::Internal(Box::new(error)),
        }
    }
}

/// Whether a store failure is an outage (worth retrying later) or something else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The store cannot be reached or cannot take writes right now: connection refused or
    /// lost, no pooled connection in time, the database shutting down or starting up, out of
    /// disk space, read-only, locked for too long.
    Unavailable,
    /// Anything else: a query the database refused, stored data that cannot be read back.
    #[default]
    Other,
}

/// A store adapter's failure: the database is unreachable, a query failed, or stored data
/// could not be read back.
#[derive(Clone, Debug, Error)]
#[error("store: {message}")]
pub struct StoreError {
    /// What went wrong, for the log.
    pub message: String,
    /// Outage or not.
    pub kind: StoreErrorKind,
}

impl StoreError {
    /// A store error from anything displayable.
    pub fn new(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            kind: StoreErrorKind::Other,
        }
    }

    /// An outage: the store cannot be reached or cannot take writes right now.
    pub fn unavailable(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            kind: StoreErrorKind::Unavailable,
        }
    }

    /// Whether this is an outage rather than a failed operation.
    pub fn is_unavailable(&self) -> bool {
        self.kind == StoreErrorKind::Unavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_and_other_store_failures_map_to_different_errors() {
        assert!(matches!(
            DomainError::from(StoreError::unavailable("connection refused")),
            DomainError::Unavailable(_)
        ));
        assert!(matches!(
            DomainError::from(StoreError::new("syntax error")),
            DomainError::Internal(_)
        ));
    }
}
