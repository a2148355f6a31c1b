//! The messaging engine port: what Herald asks of the network behind it, and the status
//! reports an engine hands back.

use crate::event::Me;
use crate::session::{Session, SessionStatus};
use async_trait::async_trait;

/// A status change an engine reports for a session.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusReport {
    /// The new status.
    pub status: SessionStatus,
    /// The connected account, once known.
    pub me: Option<Me>,
}

impl StatusReport {
    /// The session is now `status`, connected as `me` when known.
    pub fn new(status: SessionStatus, me: Option<Me>) -> Self {
        Self { status, me }
    }
}

/// Why an engine could not do what was asked. Herald answers each kind differently, and in
/// every case nothing is stored and no event is emitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The engine could not be reached, or did not answer in time (503 `engine_unavailable`):
    /// nothing is known to have happened.
    #[error("the engine is unavailable: {0}")]
    Unavailable(String),
    /// The engine answered with an error, or with something unusable (502 `engine_error`).
    #[error("the engine refused the request{}{}", status.map(|s| format!(" with status {s}")).unwrap_or_default(), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Rejected {
        /// The engine's own status code, when it answered one (WAHA's HTTP status).
        status: Option<u16>,
        /// The engine's message, when it gave one.
        message: Option<String>,
    },
    /// This engine does not do that, or not in the session's present state (409).
    #[error("{0}")]
    Unsupported(String),
}

impl EngineError {
    /// A stable outcome name for metrics: `unavailable`, `rejected` or `unsupported`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            Self::Rejected { .. } => "rejected",
            Self::Unsupported(_) => "unsupported",
        }
    }
}

/// The messaging network behind Herald. The built-in simulator only pretends, and says so; the
/// WAHA engine fronts a real WhatsApp account. A session is known to its engine by its
/// [`Session::engine_session`] name. An engine reports later changes through the inbound API
/// (`POST /sessions/{id}/inbound`) or its own signed webhook.
///
/// Every method either does what it says or returns an [`EngineError`]; the use cases store
/// nothing when it fails.
#[async_trait]
pub trait Engine: Send + Sync {
    /// A name for logs, metrics and docs (`simulator` for the built-in one).
    fn name(&self) -> &'static str;
    /// Creates (or takes over) and starts the engine's session; returns the status changes that
    /// happened at once, in order (an engine that reports later returns none).
    async fn start(&self, session: &Session) -> Result<Vec<StatusReport>, EngineError>;
    /// Stops and deletes the engine's session (one the engine does not know counts as deleted).
    /// By default there is nothing to stop: an engine that keeps per-session state overrides it.
    async fn stop(&self, _session: &Session) -> Result<(), EngineError> {
        Ok(())
    }
    /// The account the session is connected as, when the engine knows it.
    async fn me(&self, _session: &Session) -> Result<Option<Me>, EngineError> {
        Ok(None)
    }
    /// The QR code text that pairs the session (only while it is `SCAN_QR`).
    async fn qr(&self, _session: &Session) -> Result<String, EngineError> {
        Err(EngineError::Unsupported(format!(
            "the {} engine never needs a QR code",
            self.name()
        )))
    }
    /// Sends `text` to `chat`, as an answer to message `reply_to` when given; returns the new
    /// message's id.
    async fn send_text(
        &self,
        _session: &Session,
        _chat: &str,
        _text: &str,
        _reply_to: Option<&str>,
    ) -> Result<String, EngineError> {
        Err(EngineError::Unsupported(format!(
            "the {} engine cannot send text",
            self.name()
        )))
    }
    /// Sends a poll to `chat`; returns the new message's id.
    async fn send_poll(
        &self,
        _session: &Session,
        _chat: &str,
        _poll: &crate::poll::Poll,
    ) -> Result<String, EngineError> {
        Err(EngineError::Unsupported(format!(
            "the {} engine cannot send polls",
            self.name()
        )))
    }
    /// Casts this session's vote (the complete selection) on a poll message; returns the vote's
    /// id.
    async fn send_vote(
        &self,
        _session: &Session,
        _chat: &str,
        _poll_message_id: &str,
        _options: &[String],
    ) -> Result<String, EngineError> {
        Err(EngineError::Unsupported(format!(
            "the {} engine cannot vote",
            self.name()
        )))
    }
}
