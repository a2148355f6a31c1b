//! Messages, votes, inbound keys and the event log in memory. A [`Change`] is checked whole
//! before anything is written, so an outcome other than `Applied` leaves the store as it was —
//! the SQL adapters get the same from rolling back their transaction. The log's position is
//! `(0, seq)`, as on SQLite (one writer, so commit order is `seq` order).

use crate::state::{MessageKey, State};
use crate::MemoryStore;
use async_trait::async_trait;
use herald_domain::events_log::{LogPage, LogPosition, LogQuery, LoggedEvent, Unsettled};
use herald_domain::ids::{EventId, OrgId};
use herald_domain::message::{Change, ChangeOutcome, Message, MessageRef, Mutation};
use herald_domain::poll::{VoteChange, VoterSelection};
use herald_domain::ports::{EventLog, MessageStore, ReportSession, StoreResult};
use herald_domain::session::Session;

fn key_of(r: &MessageRef) -> MessageKey {
    (r.session, r.chat.clone(), r.sender.clone(), r.id.clone())
}

/// What a change would do, decided before anything is written.
fn check(state: &State, change: &Change) -> Result<(), ChangeOutcome> {
    if let Some(ingested) = &change.inbound {
        let key = (ingested.key.session, ingested.key.id.clone());
        if let Some(first) = state.inbound.get(&key) {
            return Err(ChangeOutcome::AlreadyIngested(*first));
        }
        // The inbound key references its session.
        if !state.sessions.contains_key(&ingested.key.session) {
            return Err(ChangeOutcome::TargetMissing);
        }
    }
    match &change.mutation {
        Mutation::EventsOnly => Ok(()),
        Mutation::InsertMessage(message) => {
            if !state.sessions.contains_key(&message.key.session) {
                Err(ChangeOutcome::TargetMissing)
            } else if state.messages.contains_key(&key_of(&message.key)) {
                Err(ChangeOutcome::MessageExists)
            } else {
                Ok(())
            }
        }
        // A vote references its poll message, whether it sets or clears a selection.
        Mutation::Vote { poll, .. } => {
            if state.messages.contains_key(&key_of(poll)) {
                Ok(())
            } else {
                Err(ChangeOutcome::TargetMissing)
            }
        }
        Mutation::SessionStatus(session) => match state.sessions.get(&session.id) {
            Some(s) if s.organization_id == session.organization_id => Ok(()),
            _ => Err(ChangeOutcome::TargetMissing),
        },
    }
}

/// Writes a change that [`check`] let through.
fn write(state: &mut State, change: &Change) {
    if let Some(ingested) = &change.inbound {
        state.inbound.insert(
            (ingested.key.session, ingested.key.id.clone()),
            ingested.event_id,
        );
    }
    match &change.mutation {
        Mutation::EventsOnly => {}
        Mutation::InsertMessage(message) => {
            state.messages.insert(key_of(&message.key), message.clone());
        }
        Mutation::Vote {
            poll,
            voter,
            change: vote,
            at,
        } => {
            let votes = state.votes.entry(key_of(poll)).or_default();
            match vote {
                VoteChange::Replace(options) => {
                    votes.insert(
                        voter.clone(),
                        VoterSelection {
                            voter: voter.clone(),
                            options: options.clone(),
                            updated_at: *at,
                        },
                    );
                }
                // A cleared vote keeps nothing, so voters and counts never show it.
                VoteChange::Clear => {
                    votes.remove(voter);
                }
            }
        }
        Mutation::SessionStatus(session) => {
            if let Some(stored) = state.sessions.get_mut(&session.id) {
                stored.status = session.status;
                stored.me = session.me.clone();
                stored.updated_at = session.updated_at;
            }
        }
    }
    state.append(&change.events);
}

#[async_trait]
impl MessageStore for MemoryStore {
    async fn find_message(&self, org: &OrgId, key: &MessageRef) -> StoreResult<Option<Message>> {
        Ok(self
            .state()?
            .messages
            .get(&key_of(key))
            .filter(|m| &m.organization_id == org)
            .cloned())
    }

    async fn find_session_message(
        &self,
        org: &OrgId,
        key: &MessageRef,
    ) -> StoreResult<Option<(Session, Option<Message>)>> {
        let state = self.state()?;
        let Some(session) = state
            .sessions
            .get(&key.session)
            .filter(|s| &s.organization_id == org)
        else {
            return Ok(None);
        };
        let message = state
            .messages
            .get(&key_of(key))
            .filter(|m| m.organization_id == session.organization_id)
            .cloned();
        Ok(Some((session.clone(), message)))
    }

    async fn poll_votes(&self, org: &OrgId, key: &MessageRef) -> StoreResult<Vec<VoterSelection>> {
        let state = self.state()?;
        let key = key_of(key);
        // Votes carry no organization; the poll message they hang off does.
        if state
            .messages
            .get(&key)
            .is_none_or(|m| &m.organization_id != org)
        {
            return Ok(Vec::new());
        }
        Ok(state
            .votes
            .get(&key)
            .map(|votes| votes.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn find_report_session(
        &self,
        session: ReportSession<'_>,
        inbound_id: Option<&str>,
    ) -> StoreResult<Option<(Session, Option<EventId>)>> {
        let state = self.state()?;
        let found = match session {
            ReportSession::Owned(org, id) => {
                state.sessions.get(id).filter(|s| &s.organization_id == org)
            }
            ReportSession::Engine(name) => {
                state.sessions.values().find(|s| s.engine_session == name)
            }
        };
        Ok(found.map(|session| {
            let first = inbound_id
                .and_then(|id| state.inbound.get(&(session.id, id.to_owned())))
                .copied();
            (session.clone(), first)
        }))
    }

    async fn apply_change(&self, change: &Change) -> StoreResult<ChangeOutcome> {
        let mut state = self.state()?;
        if let Err(outcome) = check(&state, change) {
            return Ok(outcome);
        }
        write(&mut state, change);
        Ok(ChangeOutcome::Applied)
    }
}

fn position(seq: i64) -> LogPosition {
    LogPosition { tx: 0, seq }
}

fn logged(event: &crate::state::StoredEvent) -> LoggedEvent {
    LoggedEvent {
        position: position(event.seq),
        id: event.envelope.id,
        organization_id: event.envelope.organization_id.clone(),
        session: event.envelope.session,
        event: event.envelope.event,
        envelope: event.json.clone(),
    }
}

/// The committed but unsettled logged events (of `org`, when given), by their `seq` range.
fn unsettled(state: &State, org: Option<&OrgId>) -> Option<Unsettled> {
    let seqs: Vec<i64> = state
        .events
        .iter()
        .filter(|e| e.logged() && !state.settled(e.seq))
        .filter(|e| org.is_none_or(|o| &e.envelope.organization_id == o))
        .map(|e| e.seq)
        .collect();
    Some(Unsettled {
        first_seq: *seqs.first()?,
        last_seq: *seqs.last()?,
    })
}

#[async_trait]
impl EventLog for MemoryStore {
    async fn event_position(&self, org: &OrgId, id: &EventId) -> StoreResult<Option<LogPosition>> {
        Ok(self
            .state()?
            .events
            .iter()
            .find(|e| &e.envelope.id == id && &e.envelope.organization_id == org && e.logged())
            .map(|e| position(e.seq)))
    }

    async fn read_log(&self, query: &LogQuery) -> StoreResult<LogPage> {
        let state = self.state()?;
        let events: Vec<LoggedEvent> = state
            .events
            .iter()
            .filter(|e| e.logged() && state.settled(e.seq))
            .filter(|e| e.envelope.organization_id == query.organization_id)
            .filter(|e| position(e.seq) > query.after)
            .filter(|e| query.until.is_none_or(|until| position(e.seq) <= until))
            .filter(|e| {
                query
                    .filter
                    .accepts(e.envelope.session.as_ref(), e.envelope.event)
            })
            .take(query.limit)
            .map(logged)
            .collect();
        let full = events.len() >= query.limit;
        Ok(LogPage {
            events,
            unsettled: if full {
                None
            } else {
                unsettled(&state, Some(&query.organization_id))
            },
        })
    }

    async fn tail_log(&self, after: LogPosition, limit: usize) -> StoreResult<LogPage> {
        let state = self.state()?;
        let events: Vec<LoggedEvent> = state
            .events
            .iter()
            .filter(|e| e.logged() && state.settled(e.seq) && position(e.seq) > after)
            .take(limit)
            .map(logged)
            .collect();
        let empty = events.is_empty();
        Ok(LogPage {
            events,
            unsettled: if empty { unsettled(&state, None) } else { None },
        })
    }

    async fn log_head(&self) -> StoreResult<LogPosition> {
        let state = self.state()?;
        Ok(state
            .events
            .iter()
            .rev()
            .find(|e| e.logged() && state.settled(e.seq))
            .map_or(LogPosition::START, |e| position(e.seq)))
    }
}
