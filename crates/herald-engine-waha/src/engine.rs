//! The engine port over WAHA: each port operation becomes the WAHA call(s) the client makes for
//! it, and each WAHA failure the port's error kind Herald answers by (unreachable or too slow →
//! unavailable; an error status → rejected with WAHA's status and message; an unusable answer →
//! rejected without a status). Also the last step of the webhook path: a translated WAHA event
//! as the report Herald's use case takes.

use crate::client::{WahaClient, WahaError};
use crate::events::{EngineEvent, Outcome, Translation};
use async_trait::async_trait;
use herald_domain::event::Me;
use herald_domain::messaging::EngineReport;
use herald_domain::poll::Poll;
use herald_domain::ports::{Engine, EngineError, StatusReport};
use herald_domain::session::Session;

/// Herald's engine port implemented by a WAHA server. A Herald session is WAHA's session named
/// by its `engine_session`.
#[derive(Clone, Debug)]
pub struct WahaEngine {
    client: WahaClient,
}

impl WahaEngine {
    /// An engine calling WAHA through `client`.
    pub fn new(client: WahaClient) -> Self {
        Self { client }
    }

    /// The client it calls WAHA with.
    pub fn client(&self) -> &WahaClient {
        &self.client
    }
}

impl From<WahaError> for EngineError {
    fn from(error: WahaError) -> Self {
        match error {
            WahaError::Unavailable { .. } => EngineError::Unavailable(error.to_string()),
            WahaError::Rejected {
                status, message, ..
            } => EngineError::Rejected {
                status: Some(status),
                message,
            },
            WahaError::InvalidAnswer { .. } => EngineError::Rejected {
                status: None,
                message: Some(error.to_string()),
            },
        }
    }
}

#[async_trait]
impl Engine for WahaEngine {
    fn name(&self) -> &'static str {
        "waha"
    }

    /// Creates the WAHA session with Herald's webhook, or takes an existing one over (update,
    /// then start). The session's status then follows WAHA's `session.status` events, so
    /// nothing is reported at once.
    async fn start(&self, session: &Session) -> Result<Vec<StatusReport>, EngineError> {
        self.client.ensure_session(&session.engine_session).await?;
        Ok(Vec::new())
    }

    async fn stop(&self, session: &Session) -> Result<(), EngineError> {
        Ok(self.client.delete_session(&session.engine_session).await?)
    }

    async fn me(&self, session: &Session) -> Result<Option<Me>, EngineError> {
        let me = self.client.me(&session.engine_session).await?;
        Ok(me.map(|me| Me { id: me.id }))
    }

    async fn qr(&self, session: &Session) -> Result<String, EngineError> {
        Ok(self.client.qr(&session.engine_session).await?)
    }

    async fn send_text(
        &self,
        session: &Session,
        chat: &str,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<String, EngineError> {
        Ok(self
            .client
            .send_text(&session.engine_session, chat, text, reply_to)
            .await?)
    }

    async fn send_poll(
        &self,
        session: &Session,
        chat: &str,
        poll: &Poll,
    ) -> Result<String, EngineError> {
        Ok(self
            .client
            .send_poll(&session.engine_session, chat, poll)
            .await?)
    }

    /// WAHA's answer to a vote names no message; Herald then makes an id up for the vote.
    async fn send_vote(
        &self,
        session: &Session,
        chat: &str,
        poll_message_id: &str,
        options: &[String],
    ) -> Result<String, EngineError> {
        let id = self
            .client
            .send_poll_vote(&session.engine_session, chat, poll_message_id, options)
            .await?;
        Ok(id.unwrap_or_else(|| ulid::Ulid::new().to_string()))
    }
}

impl EngineEvent {
    /// The event as the report Herald's engine use case takes.
    pub fn into_report(self) -> EngineReport {
        match self {
            Self::Message(message) => EngineReport::Message(message),
            Self::OwnMessage(message) => EngineReport::OwnMessage(message),
            Self::Ack(ack) => EngineReport::Ack(ack.payload()),
            Self::PollVote(vote) => EngineReport::PollVote(vote),
            Self::PollVoteFailed(vote) => EngineReport::PollVoteFailed(serde_json::json!({
                "poll": {"id": vote.poll_id, "chat": vote.poll_chat, "sender": vote.poll_sender},
                "vote": {
                    "id": vote.vote_id,
                    "voter": vote.voter,
                    "selectedOptions": vote.selected,
                    "timestamp": vote.timestamp,
                },
            })),
            Self::SessionStatus(change) => EngineReport::SessionStatus {
                report: change.report,
                engine_status: change.engine_status,
            },
        }
    }
}

impl Translation {
    /// The report for Herald's engine use case, or the reason the event is ignored.
    pub fn into_report(self) -> Result<EngineReport, String> {
        match self.outcome {
            Outcome::Event(event) => Ok(event.into_report()),
            Outcome::Ignored(ignored) => Err(ignored.reason()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Operation, Unavailable};

    #[test]
    fn waha_failures_become_the_ports_kinds() {
        let down = WahaError::Unavailable {
            operation: Operation::SendText,
            reason: Unavailable::Unreachable("connection refused".into()),
        };
        assert!(matches!(
            EngineError::from(down),
            EngineError::Unavailable(_)
        ));
        let refused = WahaError::Rejected {
            operation: Operation::SendText,
            status: 422,
            message: Some("Session is not WORKING".into()),
        };
        assert_eq!(
            EngineError::from(refused),
            EngineError::Rejected {
                status: Some(422),
                message: Some("Session is not WORKING".into())
            }
        );
        let odd = WahaError::InvalidAnswer {
            operation: Operation::SendPoll,
            reason: "no id".into(),
        };
        assert!(matches!(
            EngineError::from(odd),
            EngineError::Rejected { status: None, .. }
        ));
    }
}
