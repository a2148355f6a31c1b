//! The event log: every logged event (all but `webhook.test`) in one total order that a reader
//! can resume from without ever skipping an event, even when transactions on several replicas
//! commit out of id order.
//!
//! The order is a [`LogPosition`] — `(tx, seq)`: the inserting transaction's id, then the row's
//! sequence number. The store hands a reader only *settled* events: those no transaction still
//! running could precede. On PostgreSQL that means `tx` below the oldest transaction of this
//! database still running (every one below has finished, so no row can appear below a position
//! already read); on SQLite, whose one writer commits in `seq` order, every committed row is
//! settled. Hence: a cursor only moves forward, and nothing can appear behind it later.
//!
//! The store reads it through the [`EventLog`](crate::ports::EventLog) port.

use crate::capability::{Capability, Principal};
use crate::error::DomainError;
use crate::event::EventType;
use crate::gateway::Gateway;
use crate::ids::{EventId, OrgId, SessionId};
use crate::Millis;

/// An event's place in the log's total order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition {
    /// The inserting transaction (PostgreSQL's transaction id; 0 on SQLite).
    pub tx: i64,
    /// The row's sequence number within the table.
    pub seq: i64,
}

impl LogPosition {
    /// Before every event.
    pub const START: LogPosition = LogPosition { tx: 0, seq: 0 };
}

/// One logged event as read back: where it is, what filters look at, and the exact envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Its place in the log.
    pub position: LogPosition,
    /// Its id.
    pub id: EventId,
    /// Its organization.
    pub organization_id: OrgId,
    /// Its session, if any.
    pub session: Option<SessionId>,
    /// Its type.
    pub event: EventType,
    /// The envelope JSON, byte for byte as delivered to webhooks.
    pub envelope: String,
}

/// Which events a reader wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Only this session's events.
    pub session: Option<SessionId>,
    /// Only these types (`None` = all).
    pub types: Option<Vec<EventType>>,
}

impl LogFilter {
    /// Whether an event passes the filter (the organization is checked separately).
    pub fn accepts(&self, session: Option<&SessionId>, event: EventType) -> bool {
        event.is_logged()
            && self.session.as_ref().is_none_or(|s| session == Some(s))
            && self.types.as_ref().is_none_or(|t| t.contains(&event))
    }
}

/// A read of one organization's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogQuery {
    /// Whose events.
    pub organization_id: OrgId,
    /// Only events after this position.
    pub after: LogPosition,
    /// Only events at or before this position, when set.
    pub until: Option<LogPosition>,
    /// Session and type filters.
    pub filter: LogFilter,
    /// At most this many.
    pub limit: usize,
}

/// Committed events that a still-running older transaction keeps unsettled, by the range of
/// their `seq`: reading again once it finishes will return them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsettled {
    /// The lowest `seq` among them.
    pub first_seq: i64,
    /// The highest `seq` among them.
    pub last_seq: i64,
}

/// Settled events, oldest first, and what is committed but not settled yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogPage {
    /// The events.
    pub events: Vec<LoggedEvent>,
    /// Committed events not yet settled (only looked for when the page is not full).
    pub unsettled: Option<Unsettled>,
}

/// A page of the event log as the API shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventsPage {
    /// Oldest first.
    pub events: Vec<LoggedEvent>,
    /// The id to pass as `since` (or `cursor`) for the next page, when more follow.
    pub next_cursor: Option<EventId>,
    /// Committed events not settled yet (see [`LogPage::unsettled`]).
    pub unsettled: Option<Unsettled>,
}

/// Most events one page of the log holds.
pub const MAX_PAGE: usize = 200;

/// How long a read of the log waits for events committed before it began to settle (ms).
pub const SETTLE_WAIT_MS: Millis = 1_000;
/// How long it pauses between looks meanwhile (ms).
pub const SETTLE_PAUSE_MS: u64 = 2;

type Result<T> = std::result::Result<T, DomainError>;

impl Gateway {
    /// Where the caller's event `id` sits in the log: 404 `event not found` when it is
    /// malformed, unknown, another organization's, a `webhook.test`, or past retention.
    pub async fn log_position(&self, caller: &Principal, id: &str) -> Result<LogPosition> {
        caller.require(Capability::Read)?;
        let id = EventId::parse(id).ok_or(DomainError::NotFound("event"))?;
        self.store
            .event_position(&caller.organization, &id)
            .await?
            .ok_or(DomainError::NotFound("event"))
    }

    /// The caller's events after `since` (an event id; `None` = from the oldest kept), oldest
    /// first, at most `limit` (1..=200).
    pub async fn list_events(
        &self,
        caller: &Principal,
        since: Option<&str>,
        filter: LogFilter,
        limit: usize,
    ) -> Result<EventsPage> {
        caller.require(Capability::Read)?;
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(DomainError::invalid("limit", "limit must be 1 to 200"));
        }
        let after = match since {
            Some(id) => self.log_position(caller, id).await?,
            None => LogPosition::START,
        };
        // One extra row tells whether another page follows without a second query.
        let mut page = self
            .store
            .read_log(&LogQuery {
                organization_id: caller.organization.clone(),
                after,
                until: None,
                filter,
                limit: limit + 1,
            })
            .await?;
        let more = page.events.len() > limit;
        page.events.truncate(limit);
        Ok(EventsPage {
            next_cursor: more.then(|| page.events.last().map(|e| e.id)).flatten(),
            unsettled: page.unsettled,
            events: page.events,
        })
    }

    /// [`Self::list_events`] that reads its own writes: when the last page shows events that
    /// were committed but are kept unsettled by an older transaction still running, it looks
    /// again every [`SETTLE_PAUSE_MS`] until they have settled, a later page exists, or
    /// [`SETTLE_WAIT_MS`] have passed — so an event a client saw committed is on this page, not
    /// left for the next poll. Whatever it waited for, the page it answers is a settled one.
    pub async fn list_events_settled(
        &self,
        caller: &Principal,
        since: Option<&str>,
        filter: LogFilter,
        limit: usize,
    ) -> Result<EventsPage> {
        let deadline = self.clock.now_ms() + SETTLE_WAIT_MS;
        let mut page = self
            .list_events(caller, since, filter.clone(), limit)
            .await?;
        let Some(waiting) = page.unsettled.filter(|_| page.next_cursor.is_none()) else {
            return Ok(page);
        };
        // The pause count bounds the wait too, so a wall clock set back cannot stretch it.
        let most_pauses = SETTLE_WAIT_MS as u64 / SETTLE_PAUSE_MS;
        for _ in 0..most_pauses {
            if self.clock.now_ms() >= deadline {
                break;
            }
            self.pause.pause(SETTLE_PAUSE_MS).await;
            page = self
                .list_events(caller, since, filter.clone(), limit)
                .await?;
            let settled = page
                .unsettled
                .is_none_or(|u| u.first_seq > waiting.last_seq);
            if settled || page.next_cursor.is_some() {
                break;
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_by_transaction_then_sequence() {
        let early_tx_late_row = LogPosition { tx: 10, seq: 99 };
        let late_tx_early_row = LogPosition { tx: 11, seq: 5 };
        assert!(early_tx_late_row < late_tx_early_row);
        assert!(LogPosition::START < early_tx_late_row);
    }

    #[test]
    fn filters_match_session_and_type_and_never_test_events() {
        let s = SessionId::generate();
        let all = LogFilter::default();
        assert!(all.accepts(None, EventType::Message));
        assert!(!all.accepts(None, EventType::WebhookTest));
        let votes_of_s = LogFilter {
            session: Some(s),
            types: Some(vec![EventType::PollVote]),
        };
        assert!(votes_of_s.accepts(Some(&s), EventType::PollVote));
        assert!(!votes_of_s.accepts(Some(&s), EventType::Message));
        assert!(!votes_of_s.accepts(Some(&SessionId::generate()), EventType::PollVote));
        assert!(!votes_of_s.accepts(None, EventType::PollVote));
    }
}
