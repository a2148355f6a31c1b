//! Row types for messages, poll votes, inbound idempotency keys and event-log reads, with their
//! conversions. As in `rows.rs`, stored text that no longer parses is a [`StoreError`].

use crate::schema::*;
use diesel::prelude::*;
use herald_domain::event::EventType;
use herald_domain::events_log::{LogPosition, LoggedEvent};
use herald_domain::message::{Ingested, Message, MessageContent, MessageRef};
use herald_domain::poll::{Poll, VoterSelection};
use herald_domain::{EventId, Millis, OrgId, SessionId, StoreError};
use serde::Deserialize;

fn corrupt(what: &str, id: &str) -> StoreError {
    StoreError::new(format!("stored {what} {id} cannot be read back"))
}

/// A row of `messages`.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = messages, treat_none_as_default_value = false)]
pub struct MessageRow {
    pub session_id: String,
    pub chat: String,
    pub sender: String,
    pub id: String,
    pub organization_id: String,
    pub from_me: bool,
    pub kind: String,
    pub body: Option<String>,
    pub poll: Option<String>,
    pub timestamp: i64,
}

/// The stored form of a poll (the same camelCase fields the API shows).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredPoll {
    question: String,
    options: Vec<String>,
    selectable_count: u32,
}

impl MessageRow {
    pub fn new(m: &Message) -> Self {
        let (body, poll) = match &m.content {
            MessageContent::Text { body } => (body.clone(), None),
            MessageContent::Poll(poll) => (
                None,
                Some(serde_json::to_string(poll).expect("a poll serializes")),
            ),
        };
        Self {
            session_id: m.key.session.to_string(),
            chat: m.key.chat.clone(),
            sender: m.key.sender.clone(),
            id: m.key.id.clone(),
            organization_id: m.organization_id.to_string(),
            from_me: m.from_me,
            kind: m.content.kind().to_owned(),
            body,
            poll,
            timestamp: m.timestamp,
        }
    }

    pub fn into_domain(self) -> Result<Message, StoreError> {
        let bad = || corrupt("message", &self.id);
        let content = match (self.kind.as_str(), &self.poll) {
            ("text", _) => MessageContent::Text {
                body: self.body.clone(),
            },
            ("poll", Some(text)) => {
                let stored: StoredPoll = serde_json::from_str(text).map_err(|_| bad())?;
                MessageContent::Poll(
                    Poll::new(stored.question, stored.options, stored.selectable_count)
                        .map_err(|_| bad())?,
                )
            }
            _ => return Err(bad()),
        };
        Ok(Message {
            organization_id: OrgId::parse(&self.organization_id).ok_or_else(bad)?,
            key: MessageRef {
                session: SessionId::parse(&self.session_id).ok_or_else(bad)?,
                chat: self.chat,
                sender: self.sender,
                id: self.id,
            },
            from_me: self.from_me,
            timestamp: self.timestamp,
            content,
        })
    }
}

/// A row of `poll_votes`: one voter's current, non-empty selection.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = poll_votes)]
pub struct VoteRow {
    pub session_id: String,
    pub chat: String,
    pub sender: String,
    pub message_id: String,
    pub voter: String,
    pub options: String,
    pub updated_at: i64,
}

impl VoteRow {
    pub fn new(poll: &MessageRef, voter: &str, options: &[String], at: Millis) -> Self {
        Self {
            session_id: poll.session.to_string(),
            chat: poll.chat.clone(),
            sender: poll.sender.clone(),
            message_id: poll.id.clone(),
            voter: voter.to_owned(),
            options: serde_json::to_string(options).expect("strings serialize"),
            updated_at: at,
        }
    }

    pub fn into_domain(self) -> Result<VoterSelection, StoreError> {
        let options: Vec<String> = serde_json::from_str(&self.options)
            .map_err(|_| corrupt("vote on", &self.message_id))?;
        Ok(VoterSelection {
            voter: self.voter,
            options,
            updated_at: self.updated_at,
        })
    }
}

/// A row of `inbound_keys`.
#[derive(Insertable)]
#[diesel(table_name = inbound_keys)]
pub struct InboundKeyRow {
    pub session_id: String,
    pub inbound_id: String,
    pub event_id: String,
    pub created_at: i64,
}

impl InboundKeyRow {
    pub fn new(ingested: &Ingested, now: Millis) -> Self {
        Self {
            session_id: ingested.key.session.to_string(),
            inbound_id: ingested.key.id.clone(),
            event_id: ingested.event_id.to_string(),
            created_at: now,
        }
    }
}

/// Parses a stored event id.
pub fn event_id(text: &str) -> Result<EventId, StoreError> {
    EventId::parse(text).ok_or_else(|| corrupt("event id", text))
}

/// An event as the log reads it back.
#[derive(Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct LoggedEventRow {
    pub seq: i64,
    pub id: String,
    pub organization_id: String,
    pub session_id: Option<String>,
    pub event_type: String,
    pub envelope: String,
    pub tx_id: i64,
}

impl LoggedEventRow {
    pub fn into_domain(self) -> Result<LoggedEvent, StoreError> {
        let bad = || corrupt("event", &self.id);
        Ok(LoggedEvent {
            position: LogPosition {
                tx: self.tx_id,
                seq: self.seq,
            },
            id: EventId::parse(&self.id).ok_or_else(bad)?,
            organization_id: OrgId::parse(&self.organization_id).ok_or_else(bad)?,
            session: match &self.session_id {
                None => None,
                Some(s) => Some(SessionId::parse(s).ok_or_else(bad)?),
            },
            event: EventType::parse(&self.event_type).ok_or_else(bad)?,
            envelope: self.envelope,
        })
    }
}
