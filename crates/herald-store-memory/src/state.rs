//! What the memory store holds — one value behind one lock, so every port method sees and
//! leaves it whole, as a transaction would — and the writes several ports share: appending
//! events with their deliveries, and cancelling a webhook's pending deliveries.

use herald_domain::api_key::ApiKey;
use herald_domain::delivery::{
    AttemptError, AttemptRecord, Delivery, DeliveryStatus, Lane, Settlement,
};
use herald_domain::event::{Envelope, EventType};
use herald_domain::ids::{ApiKeyId, DeliveryId, EventId, OrgId, SessionId, WebhookId};
use herald_domain::message::Message;
use herald_domain::poll::VoterSelection;
use herald_domain::ports::StoredSecrets;
use herald_domain::session::Session;
use herald_domain::webhook::Webhook;
use herald_domain::Millis;
use std::collections::{BTreeMap, HashMap};

/// Where a message is, as a map key: session, chat, sender, network id.
pub(crate) type MessageKey = (SessionId, String, String, String);

/// A webhook with what the store keeps beside it.
#[derive(Clone, Debug)]
pub(crate) struct StoredWebhook {
    pub webhook: Webhook,
    pub secrets: StoredSecrets,
    /// The epoch second whose rate slots are being counted, and how many are taken.
    pub rate_window: Option<i64>,
    pub rate_used: u32,
}

/// An API key with its token hash and revocation.
#[derive(Clone, Debug)]
pub(crate) struct StoredKey {
    pub key: ApiKey,
    pub token_hash: String,
    pub revoked_at: Option<Millis>,
}

/// An event as appended: its log sequence number and the exact envelope text.
#[derive(Clone, Debug)]
pub(crate) struct StoredEvent {
    pub seq: i64,
    pub envelope: Envelope,
    pub json: String,
}

impl StoredEvent {
    /// Whether it is in the event log (everything but `webhook.test`).
    pub fn logged(&self) -> bool {
        self.envelope.event.is_logged()
    }
}

/// A delivery with its lease, attempt budget and attempt log.
#[derive(Clone, Debug)]
pub(crate) struct StoredDelivery {
    pub id: DeliveryId,
    pub organization_id: OrgId,
    pub webhook_id: WebhookId,
    pub event_id: EventId,
    pub event: EventType,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub budget_base: u32,
    pub next_attempt_at: Option<Millis>,
    pub last_attempt_at: Option<Millis>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<AttemptError>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub log: Vec<AttemptRecord>,
}

impl StoredDelivery {
    /// A new pending delivery of `event` to `webhook`, first due when the webhook's health
    /// allows (as `herald-store`'s `NewDeliveryRow::pending`).
    pub fn pending(id: DeliveryId, webhook: &Webhook, event: &Envelope, now: Millis) -> Self {
        Self {
            id,
            organization_id: webhook.organization_id.clone(),
            webhook_id: webhook.id,
            event_id: event.id,
            event: event.event,
            status: DeliveryStatus::Pending,
            attempts: 0,
            budget_base: 0,
            next_attempt_at: Some(webhook.first_attempt_at(now)),
            last_attempt_at: None,
            last_status_code: None,
            last_error: None,
            lease_owner: None,
            lease_until: None,
            created_at: now,
            updated_at: now,
            log: Vec::new(),
        }
    }

    /// The delivery as the API lists it.
    pub fn view(&self) -> Delivery {
        Delivery {
            id: self.id,
            webhook_id: self.webhook_id,
            event_id: self.event_id,
            event: self.event,
            status: self.status,
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at,
            last_attempt_at: self.last_attempt_at,
            last_status_code: self.last_status_code,
            last_error: self.last_error,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// Whether it waits in `lane`'s claim queue.
    pub fn in_lane(&self, lane: Lane) -> bool {
        self.status == DeliveryStatus::Pending
            && match lane {
                Lane::Fresh => self.attempts == 0,
                Lane::Retry => self.attempts > 0,
            }
    }

    /// Whether nobody holds it at `now` (no lease, or a lapsed one).
    pub fn free_at(&self, now: Millis) -> bool {
        self.lease_until.is_none_or(|until| until < now)
    }

    /// Due now with a renewed attempt budget and no lease (a manual retry of a finished
    /// delivery, or a recovery).
    pub fn requeue(&mut self, now: Millis) {
        self.status = DeliveryStatus::Pending;
        self.budget_base = self.attempts;
        self.next_attempt_at = Some(now);
        self.clear_lease();
        self.updated_at = now;
    }

    /// Writes an attempt's outcome (the lease holder's), as the completion query does: the
    /// attempt count never goes back, a delivery that stopped being pending meanwhile (it was
    /// cancelled) keeps its state, the lease is cleared. `false` when the attempt was already
    /// logged.
    pub fn complete(
        &mut self,
        record: &AttemptRecord,
        settlement: Settlement,
        now: Millis,
    ) -> bool {
        self.attempts = self.attempts.max(record.attempt);
        self.last_attempt_at = Some(record.started_at);
        self.last_status_code = record.status_code;
        self.last_error = record.error;
        if self.status == DeliveryStatus::Pending {
            self.next_attempt_at = settlement.next_attempt_at();
            self.status = settlement.status();
        }
        self.clear_lease();
        self.updated_at = now;
        if self.log.iter().any(|a| a.attempt == record.attempt) {
            return false;
        }
        self.log.push(record.clone());
        self.log.sort_by_key(|a| a.attempt);
        true
    }

    pub fn clear_lease(&mut self) {
        self.lease_owner = None;
        self.lease_until = None;
    }
}

/// Everything the memory store holds.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub webhooks: BTreeMap<WebhookId, StoredWebhook>,
    pub sessions: BTreeMap<SessionId, Session>,
    pub api_keys: BTreeMap<ApiKeyId, StoredKey>,
    /// In log order (ascending `seq`).
    pub events: Vec<StoredEvent>,
    pub last_seq: i64,
    pub deliveries: BTreeMap<DeliveryId, StoredDelivery>,
    pub messages: BTreeMap<MessageKey, Message>,
    /// Current selections by poll, then voter.
    pub votes: BTreeMap<MessageKey, BTreeMap<String, VoterSelection>>,
    pub inbound: HashMap<(SessionId, String), EventId>,
    /// Events after this `seq` are committed but not settled yet (see
    /// [`MemoryStore::hold_settling`](crate::MemoryStore::hold_settling)).
    pub settled_up_to: Option<i64>,
}

impl State {
    /// Appends events and, for each logged one, a pending delivery to every active webhook of
    /// its organization that receives it (the SQL adapters' `append_in_tx`).
    pub fn append(&mut self, events: &[Envelope]) {
        for event in events {
            self.record(event);
            if !event.event.is_logged() {
                continue;
            }
            let receivers: Vec<Webhook> = self
                .webhooks
                .values()
                .map(|w| &w.webhook)
                .filter(|w| w.organization_id == event.organization_id && w.active)
                .filter(|w| w.receives(event))
                .cloned()
                .collect();
            for webhook in receivers {
                let delivery = StoredDelivery::pending(
                    DeliveryId::generate(),
                    &webhook,
                    event,
                    event.timestamp,
                );
                self.deliveries.insert(delivery.id, delivery);
            }
        }
    }

    /// Stores an event at the next log position, without fanning it out.
    pub fn record(&mut self, event: &Envelope) {
        self.last_seq += 1;
        self.events.push(StoredEvent {
            seq: self.last_seq,
            envelope: event.clone(),
            json: event.to_json(),
        });
    }

    /// Cancels a webhook's pending deliveries (it was deactivated or disabled).
    pub fn cancel_pending(&mut self, webhook: &WebhookId, now: Millis) {
        for d in self.deliveries.values_mut() {
            if &d.webhook_id == webhook && d.status == DeliveryStatus::Pending {
                d.status = DeliveryStatus::Cancelled;
                d.next_attempt_at = None;
                d.updated_at = now;
            }
        }
    }

    /// Whether `seq` is settled: readable by the event log.
    pub fn settled(&self, seq: i64) -> bool {
        self.settled_up_to.is_none_or(|up_to| seq <= up_to)
    }
}
