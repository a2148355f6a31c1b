//! Messages a session sent or received — text and polls — with their votes (kept by the
//! [`MessageStore`](crate::ports::MessageStore) port). A message is found by `(session, chat, sender, id)`, the way the network
//! names it: the same id in another chat or from another sender is another message.
//!
//! Every state change here travels with its events in one [`Change`], which the store commits in
//! a single transaction (no event without its change, no change without its event), optionally
//! together with the idempotency key of the inbound report that caused it.

use crate::error::DomainError;
use crate::event::{Envelope, Me};
use crate::ids::{EventId, OrgId, SessionId};
use crate::poll::{OptionCount, Poll, VoteChange, VoterSelection};
use crate::session::Session;
use crate::Millis;
use serde::Serialize;
use serde_json::{json, Value};

/// Where a message is: its session, chat, sender and network id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageRef {
    /// The session that holds it.
    pub session: SessionId,
    /// The chat it was posted in (e.g. `15550001234@c.us` or a group id).
    pub chat: String,
    /// Who posted it.
    pub sender: String,
    /// The network's message id.
    pub id: String,
}

/// What a message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageContent {
    /// Plain text (the body may be absent, e.g. for media the engine does not describe).
    Text {
        /// The text.
        body: Option<String>,
    },
    /// A poll.
    Poll(Poll),
}

impl MessageContent {
    /// The wire name of the kind: `text` or `poll`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Poll(_) => "poll",
        }
    }
}

/// A stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The owning organization (the session's).
    pub organization_id: OrgId,
    /// Where it is.
    pub key: MessageRef,
    /// Whether the session itself sent it.
    pub from_me: bool,
    /// When it was sent (epoch ms).
    pub timestamp: Millis,
    /// What it says.
    pub content: MessageContent,
}

impl Message {
    /// The poll, when this message is one.
    pub fn poll(&self) -> Option<&Poll> {
        match &self.content {
            MessageContent::Poll(poll) => Some(poll),
            MessageContent::Text { .. } => None,
        }
    }

    /// The payload of its `message` / `message.any` events:
    /// `{"id","chat","sender","fromMe","timestamp","type","body"?,"poll"?}`.
    pub fn payload(&self) -> Value {
        let mut payload = json!({
            "id": self.key.id,
            "chat": self.key.chat,
            "sender": self.key.sender,
            "fromMe": self.from_me,
            "timestamp": self.timestamp,
            "type": self.content.kind(),
        });
        match &self.content {
            MessageContent::Text { body } => payload["body"] = json!(body),
            MessageContent::Poll(poll) => payload["poll"] = json!(poll),
        }
        payload
    }
}

/// Finds the poll a vote targets: a message that is missing or belongs to another organization
/// is 404 (never a hint that it exists), one that is not a poll is 400.
pub fn locate_poll<'m>(org: &OrgId, found: Option<&'m Message>) -> Result<&'m Poll, DomainError> {
    let message = found
        .filter(|m| &m.organization_id == org)
        .ok_or(DomainError::NotFound("poll message"))?;
    message
        .poll()
        .ok_or_else(|| DomainError::Rule("the target message is not a poll".into()))
}

/// The `poll.vote` payload:
/// `{"poll":{"id","chat","sender"},"vote":{"id","voter","fromMe","selectedOptions","timestamp"}}`.
pub fn vote_payload(
    poll: &MessageRef,
    vote_id: &str,
    voter: &str,
    from_me: bool,
    selected: &[String],
    timestamp: Millis,
) -> Value {
    json!({
        "poll": {"id": poll.id, "chat": poll.chat, "sender": poll.sender},
        "vote": {
            "id": vote_id,
            "voter": voter,
            "fromMe": from_me,
            "selectedOptions": selected,
            "timestamp": timestamp,
        },
    })
}

/// What sending a poll or a vote returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendResult {
    /// The new message's id on the network.
    pub id: String,
    /// The session that sent it.
    pub session_id: SessionId,
    /// The chat it went to.
    pub chat: String,
    /// When it was sent (epoch ms).
    pub timestamp: Millis,
    /// Always `sent`: the engine accepted it.
    pub status: &'static str,
}

/// A poll's current standing: counts per option, each voter's selection and the session's own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PollTally {
    /// The poll message's id.
    pub id: String,
    /// Its chat.
    pub chat: String,
    /// Who sent it.
    pub sender: String,
    /// The question.
    pub question: String,
    /// 0 = any number of choices, otherwise the most a voter may select.
    pub selectable_count: u32,
    /// Current votes per option, in the poll's order.
    pub options: Vec<OptionCount>,
    /// Every voter with a current (non-empty) selection.
    pub voters: Vec<VoterSelection>,
    /// This session's own current selection (`[]` when it has not voted or cleared its vote).
    pub my_vote: Vec<String>,
}

/// The idempotency key of an inbound report: the engine's `id`, scoped to its session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InboundKey {
    /// The session it was reported for.
    pub session: SessionId,
    /// The engine's id for the report.
    pub id: String,
}

impl InboundKey {
    /// Longest inbound id accepted, in characters.
    pub const MAX_LEN: usize = 256;
}

/// An inbound report's key and the event id answered for it, recorded with its change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ingested {
    /// The report's key.
    pub key: InboundKey,
    /// The event id returned for it, now and on every repeat.
    pub event_id: EventId,
}

/// The state a [`Change`] writes besides its events.
#[derive(Clone, Debug, PartialEq)]
pub enum Mutation {
    /// Nothing: the events are the whole change (e.g. `poll.vote.failed`).
    EventsOnly,
    /// Store a new message. Fails with [`ChangeOutcome::MessageExists`] when one is already
    /// stored at its place, so a stored poll never changes under its votes.
    InsertMessage(Message),
    /// Replace (or clear) one voter's selection on a stored poll.
    Vote {
        /// The poll message.
        poll: MessageRef,
        /// Who votes.
        voter: String,
        /// Their new selection.
        change: VoteChange,
        /// When.
        at: Millis,
    },
    /// Write a session's new status and `me`.
    SessionStatus(Session),
}

/// A state change and its events, committed together in one transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The organization everything belongs to.
    pub organization_id: OrgId,
    /// The state to write.
    pub mutation: Mutation,
    /// The events it emits (appended, and fanned out to webhooks, in the same transaction).
    pub events: Vec<Envelope>,
    /// The inbound report that caused it, recorded so a repeat is recognised.
    pub inbound: Option<Ingested>,
}

/// What became of a [`Change`]. Anything but `Applied` wrote nothing at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// Written, with its events.
    Applied,
    /// The inbound key was already recorded (perhaps by a concurrent request); this is the event
    /// id answered for it then.
    AlreadyIngested(EventId),
    /// The session or poll the change targets no longer exists.
    TargetMissing,
    /// A message is already stored at the new message's place.
    MessageExists,
}

/// The `me` of a session that may send: it must be `WORKING` with a known account (409 when it
/// is not — a state of the session that may change, not a rule about the request).
pub fn sending_as(session: &Session) -> Result<&Me, DomainError> {
    match (&session.status, &session.me) {
        (crate::session::SessionStatus::Working, Some(me)) => Ok(me),
        (status, _) => Err(DomainError::Conflict(format!(
            "session is {}, not WORKING: it cannot send",
            status.as_str()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionStatus;

    fn org(name: &str) -> OrgId {
        OrgId::parse(name).unwrap()
    }

    fn message(owner: &str, content: MessageContent) -> Message {
        Message {
            organization_id: org(owner),
            key: MessageRef {
                session: SessionId::generate(),
                chat: "chat@g.us".into(),
                sender: "15550001111@c.us".into(),
                id: "3EB0AA".into(),
            },
            from_me: false,
            timestamp: 5,
            content,
        }
    }

    fn lunch() -> Poll {
        Poll::new("Lunch?".into(), vec!["Pizza".into(), "Sushi".into()], 1).unwrap()
    }

    #[test]
    fn a_poll_message_that_does_not_exist_is_not_found() {
        assert!(matches!(
            locate_poll(&org("org_a"), None),
            Err(DomainError::NotFound(_))
        ));
    }

    #[test]
    fn a_poll_message_owned_by_another_organization_is_not_found() {
        let theirs = message("org_b", MessageContent::Poll(lunch()));
        assert!(matches!(
            locate_poll(&org("org_a"), Some(&theirs)),
            Err(DomainError::NotFound(_))
        ));
    }

    #[test]
    fn voting_on_a_message_that_is_not_a_poll_is_a_validation_error() {
        let text = message(
            "org_a",
            MessageContent::Text {
                body: Some("hi".into()),
            },
        );
        assert!(matches!(
            locate_poll(&org("org_a"), Some(&text)),
            Err(DomainError::Rule(_))
        ));
    }

    #[test]
    fn an_own_poll_is_found() {
        let ours = message("org_a", MessageContent::Poll(lunch()));
        assert_eq!(locate_poll(&org("org_a"), Some(&ours)).unwrap(), &lunch());
    }

    #[test]
    fn message_payloads_name_their_kind() {
        let poll = message("org_a", MessageContent::Poll(lunch())).payload();
        assert_eq!(poll["type"], "poll");
        assert_eq!(poll["poll"]["selectableCount"], 1);
        assert_eq!(poll["fromMe"], false);
        let text = message(
            "org_a",
            MessageContent::Text {
                body: Some("hi".into()),
            },
        )
        .payload();
        assert_eq!(
            (text["type"].as_str(), text["body"].as_str()),
            (Some("text"), Some("hi"))
        );
    }

    #[test]
    fn only_a_working_session_sends() {
        let mut session = Session::new(org("org_a"), "s", 1).unwrap();
        assert!(matches!(
            sending_as(&session),
            Err(DomainError::Conflict(_))
        ));
        session.status = SessionStatus::Working;
        session.me = Some(Me {
            id: "1@c.us".into(),
        });
        assert_eq!(sending_as(&session).unwrap().id, "1@c.us");
    }
}
