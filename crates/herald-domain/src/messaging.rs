//! The messaging use cases: send text or a poll, vote on one, read its tally, and accept what an
//! engine reports from the network (through the inbound API, or its own webhook). Each checks capability, then the request's values, then the
//! resources it names (404 before 400 before 409, as the API's error table orders them), asks
//! the engine to act, and only then commits the state change with its events in one
//! transaction, so a `2xx` always means both are durable.

use crate::capability::{Capability, Principal};
use crate::error::DomainError;
use crate::event::{Envelope, EventType};
use crate::gateway::Gateway;
use crate::ids::{EventId, OrgId};
use crate::message::{
    locate_poll, sending_as, vote_payload, Change, ChangeOutcome, InboundKey, Ingested, Message,
    MessageContent, MessageRef, Mutation, PollTally, SendResult,
};
use crate::poll::{Poll, PollVotes, VoteChange};
use crate::ports::{ReportSession, StatusReport};
use crate::session::{Session, SessionStatus};
use crate::Millis;
use serde_json::Value;

type Result<T> = std::result::Result<T, DomainError>;

/// A vote as the API receives it: the poll's place and the voter's complete selection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteRequest {
    /// The poll's chat.
    pub chat: String,
    /// Who sent the poll.
    pub sender: String,
    /// The complete selection: replaces the previous one; `[]` clears it.
    pub options: Vec<String>,
}

/// A message an engine saw on the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingMessage {
    /// The network's message id.
    pub id: String,
    /// The chat.
    pub chat: String,
    /// Who sent it.
    pub sender: String,
    /// Whether the session itself sent it (from another device, say).
    pub from_me: bool,
    /// When it was sent; now when absent.
    pub timestamp: Option<Millis>,
    /// Text or poll.
    pub content: MessageContent,
}

/// Someone's vote an engine saw on the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingVote {
    /// The poll message's id.
    pub poll_id: String,
    /// The poll's chat.
    pub poll_chat: String,
    /// Who sent the poll.
    pub poll_sender: String,
    /// The vote message's id; one is made up when absent.
    pub vote_id: Option<String>,
    /// Who voted.
    pub voter: String,
    /// Their complete selection.
    pub selected: Vec<String>,
    /// When they voted; now when absent.
    pub timestamp: Option<Millis>,
}

/// What an engine reports.
#[derive(Clone, Debug, PartialEq)]
pub enum InboundEvent {
    /// A message, stored so later votes can find it.
    Message(IncomingMessage),
    /// A vote, applied with the same replace rule as the session's own.
    PollVote(IncomingVote),
    /// A vote the engine could not decrypt or apply: passed on as is.
    PollVoteFailed(Value),
    /// The session's connection changed.
    SessionStatus(StatusReport),
}

/// One inbound report, optionally carrying the engine's idempotency id.
#[derive(Clone, Debug, PartialEq)]
pub struct Inbound {
    /// The same id twice is accepted once (per session).
    pub id: Option<String>,
    /// What happened.
    pub event: InboundEvent,
}

/// Longest text message, in characters.
pub const MAX_TEXT: usize = 65_536;

/// What an engine reports through its own webhook (the WAHA route), in Herald's terms.
#[derive(Clone, Debug, PartialEq)]
pub enum EngineReport {
    /// Someone else's message: events `message` and `message.any`.
    Message(IncomingMessage),
    /// The session's own message (sent from the phone, or through Herald and echoed back):
    /// `message.any`, unless Herald already stored that message.
    OwnMessage(IncomingMessage),
    /// A receipt: `message.ack` with this payload (`{"id","chat","ack","ackName"}`).
    Ack(Value),
    /// Someone's vote: it updates the tally when Herald knows the poll and the choices, and is
    /// published as `poll.vote` either way.
    PollVote(IncomingVote),
    /// A vote the engine could not decrypt: `poll.vote.failed` with this payload.
    PollVoteFailed(Value),
    /// The session's status changed; `engine_status` is the engine's own name when Herald has
    /// no status of that name.
    SessionStatus {
        /// Herald's status and the account.
        report: StatusReport,
        /// The engine's name for it, when it is not one of Herald's.
        engine_status: Option<String>,
    },
}

/// What became of an engine's report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineAnswer {
    /// Stored with its events; the first event's id.
    Accepted(EventId),
    /// The same report was accepted before (its key was recorded); that answer's event id.
    Duplicate(EventId),
    /// Nothing to do, and why (`unknown session`, `already stored`).
    Ignored(&'static str),
}

impl Gateway {
    /// Sends text from the session to `chat` (as an answer to `reply_to` when given); stores it
    /// together with its `message.any` event once the engine has accepted it.
    pub async fn send_text(
        &self,
        caller: &Principal,
        session_id: &str,
        chat: &str,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<SendResult> {
        caller.require(Capability::Send)?;
        if chat.trim().is_empty() {
            return Err(DomainError::invalid("chat", "chat must not be empty"));
        }
        let length = text.chars().count();
        if length == 0 || length > MAX_TEXT {
            return Err(DomainError::invalid(
                "text",
                format!("text must be 1 to {MAX_TEXT} characters"),
            ));
        }
        if reply_to.is_some_and(str::is_empty) {
            return Err(DomainError::invalid("replyTo", "replyTo must not be empty"));
        }
        let session = self.find_session(&caller.organization, session_id).await?;
        let me = sending_as(&session)?.clone();
        let id = self
            .engine
            .send_text(&session, chat, text, reply_to)
            .await?;
        let content = MessageContent::Text {
            body: Some(text.to_owned()),
        };
        self.store_sent(caller, &session, &me, chat, id, content)
            .await
    }

    /// Stores a message the session just sent, with its `message.any` event.
    async fn store_sent(
        &self,
        caller: &Principal,
        session: &Session,
        me: &crate::event::Me,
        chat: &str,
        id: String,
        content: MessageContent,
    ) -> Result<SendResult> {
        let now = self.clock.now_ms();
        let message = Message {
            organization_id: caller.organization.clone(),
            key: MessageRef {
                session: session.id,
                chat: chat.to_owned(),
                sender: me.id.clone(),
                id: id.clone(),
            },
            from_me: true,
            timestamp: now,
            content,
        };
        let event = self.session_event(session, EventType::MessageAny, now, message.payload());
        let change = Change {
            organization_id: caller.organization.clone(),
            mutation: Mutation::InsertMessage(message),
            events: vec![event],
            inbound: None,
        };
        match self.commit_change(&change, "session").await {
            // The engine's echo of this very message arrived (and was stored, with its
            // `message.any`) before the engine's answer did: it is published once, as it should.
            Err(DomainError::Conflict(_)) => {}
            other => {
                other?;
            }
        }
        Ok(SendResult {
            id,
            session_id: session.id,
            chat: chat.to_owned(),
            timestamp: now,
            status: "sent",
        })
    }

    /// Sends a poll from the session to `chat`; stores it (so votes can find it) together with
    /// its `message.any` event.
    pub async fn send_poll(
        &self,
        caller: &Principal,
        session_id: &str,
        chat: &str,
        poll: Poll,
    ) -> Result<SendResult> {
        caller.require(Capability::Send)?;
        if chat.trim().is_empty() {
            return Err(DomainError::invalid("chat", "chat must not be empty"));
        }
        let session = self.find_session(&caller.organization, session_id).await?;
        let me = sending_as(&session)?.clone();
        let id = self.engine.send_poll(&session, chat, &poll).await?;
        self.store_sent(caller, &session, &me, chat, id, MessageContent::Poll(poll))
            .await
    }

    /// Casts the session's vote on a poll message. The selection is complete: it replaces the
    /// session's previous vote, and `[]` clears it. Stored with its `poll.vote` event before
    /// this returns, so a tally read afterwards reflects it.
    pub async fn vote(
        &self,
        caller: &Principal,
        session_id: &str,
        message_id: &str,
        request: VoteRequest,
    ) -> Result<SendResult> {
        caller.require(Capability::Send)?;
        let (session, key, found) = self
            .find_session_message(
                &caller.organization,
                session_id,
                request.chat,
                request.sender,
                message_id,
            )
            .await?;
        let poll = locate_poll(&caller.organization, found.as_ref())?;
        poll.check_selection(&request.options)?;
        let me = sending_as(&session)?.clone();
        let vote_id = self
            .engine
            .send_vote(&session, &key.chat, &key.id, &request.options)
            .await?;
        let now = self.clock.now_ms();
        let payload = vote_payload(&key, &vote_id, &me.id, true, &request.options, now);
        let event = self.session_event(&session, EventType::PollVote, now, payload);
        let chat = key.chat.clone();
        let change = Change {
            organization_id: caller.organization.clone(),
            mutation: Mutation::Vote {
                poll: key,
                voter: me.id,
                change: VoteChange::from_selection(request.options),
                at: now,
            },
            events: vec![event],
            inbound: None,
        };
        self.commit_change(&change, "poll message").await?;
        Ok(SendResult {
            id: vote_id,
            session_id: session.id,
            chat,
            timestamp: now,
            status: "sent",
        })
    }

    /// A poll's current tally: votes per option, each voter's selection, the session's own.
    pub async fn poll_tally(
        &self,
        caller: &Principal,
        session_id: &str,
        message_id: &str,
        chat: &str,
        sender: &str,
    ) -> Result<PollTally> {
        caller.require(Capability::Read)?;
        let (session, key, found) = self
            .find_session_message(
                &caller.organization,
                session_id,
                chat.to_owned(),
                sender.to_owned(),
                message_id,
            )
            .await?;
        let poll = locate_poll(&caller.organization, found.as_ref())?;
        let votes = PollVotes::new(self.store.poll_votes(&caller.organization, &key).await?);
        let my_vote = session
            .me
            .as_ref()
            .map(|me| votes.selection_of(&me.id).to_vec())
            .unwrap_or_default();
        Ok(PollTally {
            id: key.id,
            chat: key.chat,
            sender: key.sender,
            question: poll.question().to_owned(),
            selectable_count: poll.selectable_count(),
            options: votes.tally(poll),
            voters: votes.voters().to_vec(),
            my_vote,
        })
    }

    /// Accepts what an engine reports for a session and returns the id of the event it became
    /// (for a message, its `message` event, or its `message.any` when the session sent it). A
    /// report whose `id` was accepted before returns that first answer and writes nothing.
    pub async fn ingest(
        &self,
        caller: &Principal,
        session_id: &str,
        inbound: Inbound,
    ) -> Result<EventId> {
        caller.require(Capability::Ingest)?;
        if let Some(id) = &inbound.id {
            if id.is_empty() || id.chars().count() > InboundKey::MAX_LEN {
                return Err(DomainError::invalid("id", "id must be 1 to 256 characters"));
            }
        }
        let id = crate::gateway::session_id(session_id)?;
        let (session, first) = self
            .store
            .find_report_session(
                ReportSession::Owned(&caller.organization, &id),
                inbound.id.as_deref(),
            )
            .await?
            .ok_or(DomainError::NotFound("session"))?;
        if let Some(first) = first {
            return Ok(first);
        }
        let key = inbound.id.map(|id| InboundKey {
            session: session.id,
            id,
        });
        let now = self.clock.now_ms();
        let (mutation, events, missing) = match inbound.event {
            InboundEvent::Message(m) => self.incoming_message(&session, m, now),
            InboundEvent::PollVote(v) => self.incoming_vote(&session, v, now, false).await?,
            InboundEvent::PollVoteFailed(payload) => (
                Mutation::EventsOnly,
                vec![self.session_event(&session, EventType::PollVoteFailed, now, payload)],
                "session",
            ),
            InboundEvent::SessionStatus(report) => {
                let changed = session.after_report(report, now);
                let event = self.status_event(&changed, None, None, now);
                (Mutation::SessionStatus(changed), vec![event], "session")
            }
        };
        // The answer is the first event: `message` when there is one, else the only event.
        let answer = events[0].id;
        let change = Change {
            organization_id: caller.organization.clone(),
            mutation,
            events,
            inbound: key.map(|key| Ingested {
                key,
                event_id: answer,
            }),
        };
        match self.commit_change(&change, missing).await? {
            Some(first) => Ok(first),
            None => Ok(answer),
        }
    }

    fn incoming_message(
        &self,
        session: &Session,
        m: IncomingMessage,
        now: Millis,
    ) -> (Mutation, Vec<Envelope>, &'static str) {
        let message = Message {
            organization_id: session.organization_id.clone(),
            key: MessageRef {
                session: session.id,
                chat: m.chat,
                sender: m.sender,
                id: m.id,
            },
            from_me: m.from_me,
            timestamp: m.timestamp.unwrap_or(now),
            content: m.content,
        };
        let payload = message.payload();
        let mut events = Vec::with_capacity(2);
        if !message.from_me {
            events.push(self.session_event(session, EventType::Message, now, payload.clone()));
        }
        events.push(self.session_event(session, EventType::MessageAny, now, payload));
        (Mutation::InsertMessage(message), events, "session")
    }

    /// A vote as a change. Strict (the inbound API): an unknown poll is 404 and a selection
    /// the poll refuses is 400. Lenient (an engine's webhook, which reports what already
    /// happened on the network): such a vote is still published, but changes no tally.
    async fn incoming_vote(
        &self,
        session: &Session,
        v: IncomingVote,
        now: Millis,
        lenient: bool,
    ) -> Result<(Mutation, Vec<Envelope>, &'static str)> {
        let key = MessageRef {
            session: session.id,
            chat: v.poll_chat,
            sender: v.poll_sender,
            id: v.poll_id,
        };
        let found = self
            .store
            .find_message(&session.organization_id, &key)
            .await?;
        let counted = match locate_poll(&session.organization_id, found.as_ref())
            .and_then(|poll| poll.check_selection(&v.selected))
        {
            Ok(()) => true,
            Err(refusal) if !lenient => return Err(refusal),
            Err(_) => false,
        };
        let from_me = session.me.as_ref().is_some_and(|me| me.id == v.voter);
        let at = v.timestamp.unwrap_or(now);
        let vote_id = v.vote_id.unwrap_or_else(|| ulid::Ulid::new().to_string());
        let payload = vote_payload(&key, &vote_id, &v.voter, from_me, &v.selected, at);
        let event = self.session_event(session, EventType::PollVote, now, payload);
        if !counted {
            return Ok((Mutation::EventsOnly, vec![event], "session"));
        }
        let mutation = Mutation::Vote {
            poll: key,
            voter: v.voter,
            change: VoteChange::from_selection(v.selected),
            at,
        };
        Ok((mutation, vec![event], "poll message"))
    }

    /// Accepts what an engine reports through its own webhook about its session
    /// `engine_session`. The caller has already authenticated the engine (a signature), so no
    /// principal is involved: the session found by its engine name says whose it is. A report
    /// whose `key` was accepted before is a [`EngineAnswer::Duplicate`] and writes nothing;
    /// otherwise the state change, its events and the key commit together.
    pub async fn accept_engine_report(
        &self,
        engine_session: &str,
        key: Option<String>,
        report: EngineReport,
    ) -> Result<EngineAnswer> {
        let Some((session, first)) = self
            .store
            .find_report_session(ReportSession::Engine(engine_session), key.as_deref())
            .await?
        else {
            return Ok(EngineAnswer::Ignored("unknown session"));
        };
        if let Some(first) = first {
            return Ok(EngineAnswer::Duplicate(first));
        }
        let key = key.map(|id| InboundKey {
            session: session.id,
            id,
        });
        let now = self.clock.now_ms();
        let (mutation, events, _) = match report {
            EngineReport::Message(m) => self.incoming_message(&session, m, now),
            EngineReport::OwnMessage(m) => {
                let place = MessageRef {
                    session: session.id,
                    chat: m.chat.clone(),
                    sender: m.sender.clone(),
                    id: m.id.clone(),
                };
                // A message sent through Herald comes back from the engine: already published.
                if self
                    .store
                    .find_message(&session.organization_id, &place)
                    .await?
                    .is_some()
                {
                    return Ok(EngineAnswer::Ignored("already stored"));
                }
                self.incoming_message(&session, m, now)
            }
            EngineReport::Ack(payload) => (
                Mutation::EventsOnly,
                vec![self.session_event(&session, EventType::MessageAck, now, payload)],
                "session",
            ),
            EngineReport::PollVote(v) => self.incoming_vote(&session, v, now, true).await?,
            EngineReport::PollVoteFailed(payload) => (
                Mutation::EventsOnly,
                vec![self.session_event(&session, EventType::PollVoteFailed, now, payload)],
                "session",
            ),
            EngineReport::SessionStatus {
                mut report,
                engine_status,
            } => {
                if report.status == SessionStatus::Working
                    && report.me.is_none()
                    && session.me.is_none()
                {
                    // The account is worth one extra call; without it the session still works
                    // for receiving, and the next status report may name it.
                    match self.engine.me(&session).await {
                        Ok(me) => report.me = me,
                        Err(error) => {
                            tracing::warn!(session = %session.id, %error, "engine did not say which account the session is")
                        }
                    }
                }
                let changed = session.after_report(report, now);
                let event = self.status_event(&changed, engine_status.as_deref(), None, now);
                (Mutation::SessionStatus(changed), vec![event], "session")
            }
        };
        let answer = events[0].id;
        let change = Change {
            organization_id: session.organization_id.clone(),
            mutation,
            events,
            inbound: key.map(|key| Ingested {
                key,
                event_id: answer,
            }),
        };
        Ok(match self.store.apply_change(&change).await? {
            ChangeOutcome::Applied => {
                self.listener.events_committed(&change.organization_id);
                EngineAnswer::Accepted(answer)
            }
            ChangeOutcome::AlreadyIngested(first) => EngineAnswer::Duplicate(first),
            ChangeOutcome::TargetMissing => EngineAnswer::Ignored("session or poll deleted"),
            ChangeOutcome::MessageExists => EngineAnswer::Ignored("already stored"),
        })
    }

    /// `org`'s session (404 when malformed, unknown or foreign) and the message at
    /// `(chat, sender, message_id)` in it, if any, in one store read.
    async fn find_session_message(
        &self,
        org: &OrgId,
        session_id: &str,
        chat: String,
        sender: String,
        message_id: &str,
    ) -> Result<(Session, MessageRef, Option<Message>)> {
        let session = crate::gateway::session_id(session_id)?;
        let key = MessageRef {
            session,
            chat,
            sender,
            id: message_id.to_owned(),
        };
        let (session, found) = self
            .store
            .find_session_message(org, &key)
            .await?
            .ok_or(DomainError::NotFound("session"))?;
        Ok((session, key, found))
    }

    /// An event about `session`, carrying its current `me`.
    pub(crate) fn session_event(
        &self,
        session: &Session,
        event: EventType,
        now: Millis,
        payload: Value,
    ) -> Envelope {
        Envelope::new(
            event,
            session.organization_id.clone(),
            Some(session.id),
            session.me.clone(),
            now,
            payload,
        )
    }

    /// Commits a change and wakes whoever waits for its events. `Ok(Some(id))` when its inbound
    /// key had already been recorded (nothing was written); `missing` names what a vanished
    /// target was, for the 404.
    pub(crate) async fn commit_change(
        &self,
        change: &Change,
        missing: &'static str,
    ) -> Result<Option<EventId>> {
        match self.store.apply_change(change).await? {
            ChangeOutcome::Applied => {
                self.listener.events_committed(&change.organization_id);
                Ok(None)
            }
            ChangeOutcome::AlreadyIngested(first) => Ok(Some(first)),
            ChangeOutcome::TargetMissing => Err(DomainError::NotFound(missing)),
            ChangeOutcome::MessageExists => Err(DomainError::Conflict(
                "a message with this id from this sender is already stored in this chat".into(),
            )),
        }
    }
}
