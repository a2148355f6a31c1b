//! The store ports the use cases call: webhook, session and API key configuration, the event
//! outbox, messages and votes, the event log, and the store's health. Each trait covers one
//! concern so an adapter (or a test double) can be read and written one piece at a time;
//! [`Store`] is every store port together, delivery ones included.

use super::delivery::{DeliveryQueue, DeliveryViews};
use super::secrets::{SealedSecret, SealedSecretChange, StoredSecrets};
use super::StoreResult;
use crate::api_key::ApiKey;
use crate::event::Envelope;
use crate::events_log::{LogPage, LogPosition, LogQuery};
use crate::ids::{ApiKeyId, EventId, OrgId, SessionId, WebhookId};
use crate::message::{Change, ChangeOutcome, Message, MessageRef};
use crate::poll::VoterSelection;
use crate::session::Session;
use crate::webhook::Webhook;
use crate::Millis;
use async_trait::async_trait;

/// Webhook configuration.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a new webhook with its sealed secret, if any.
    async fn insert_webhook(
        &self,
        webhook: &Webhook,
        secret: Option<&SealedSecret>,
    ) -> StoreResult<()>;
    /// The organization's webhooks, oldest first.
    async fn list_webhooks(&self, org: &OrgId) -> StoreResult<Vec<Webhook>>;
    /// One webhook of the organization.
    async fn find_webhook(&self, org: &OrgId, id: &WebhookId) -> StoreResult<Option<Webhook>>;
    /// Writes a changed webhook; when it is now inactive its pending deliveries are cancelled in
    /// the same transaction, and when its `previous_secrets_valid_until` is `None` the secrets
    /// in grace are erased. `false` if it no longer exists.
    async fn update_webhook(
        &self,
        webhook: &Webhook,
        secret: &SealedSecretChange,
    ) -> StoreResult<bool>;
    /// Deletes a webhook and cancels its pending deliveries. `false` if it did not exist.
    async fn delete_webhook(&self, org: &OrgId, id: &WebhookId) -> StoreResult<bool>;
    /// A webhook's sealed secrets (`None` if it does not exist).
    async fn webhook_secrets(
        &self,
        org: &OrgId,
        id: &WebhookId,
    ) -> StoreResult<Option<StoredSecrets>>;
    /// Replaces a webhook's secrets if its current one is still `expected` (compare and set, so
    /// concurrent rotations cannot lose a secret); `false` otherwise or if it is gone.
    async fn replace_webhook_secrets(
        &self,
        org: &OrgId,
        id: &WebhookId,
        expected: Option<&SealedSecret>,
        secrets: &StoredSecrets,
        now: Millis,
    ) -> StoreResult<bool>;
}

/// Messaging sessions. Every state change is written together with its events.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session and its events in one transaction; `false` (and nothing written)
    /// when another session already binds its engine session.
    async fn insert_session(&self, session: &Session, events: &[Envelope]) -> StoreResult<bool>;
    /// The organization's sessions, oldest first.
    async fn list_sessions(&self, org: &OrgId) -> StoreResult<Vec<Session>>;
    /// One session of the organization.
    async fn find_session(&self, org: &OrgId, id: &SessionId) -> StoreResult<Option<Session>>;
    /// Deletes a session with its messages and votes. `false` if it did not exist.
    async fn delete_session(&self, org: &OrgId, id: &SessionId) -> StoreResult<bool>;
}

/// API keys, stored only as hashes of their tokens.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores a new key under the hash of its token.
    async fn insert_api_key(&self, key: &ApiKey, token_hash: &str) -> StoreResult<()>;
    /// The organization's live (unrevoked) keys, oldest first.
    async fn list_api_keys(&self, org: &OrgId) -> StoreResult<Vec<ApiKey>>;
    /// The live key whose token hashes to `token_hash`.
    async fn find_api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>>;
    /// Revokes a key, within `org` when given (the HTTP API) or anywhere (the admin CLI).
    /// `false` if there was no such live key.
    async fn revoke_api_key(
        &self,
        org: Option<&OrgId>,
        id: &ApiKeyId,
        now: Millis,
    ) -> StoreResult<bool>;
    /// Records that a key was used.
    async fn touch_api_key(&self, id: &ApiKeyId, now: Millis) -> StoreResult<()>;
}

/// The event outbox and log.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends events and, in the same transaction, creates a pending delivery for every
    /// active webhook each event matches, so nothing accepted can be lost afterwards.
    async fn append_events(&self, events: &[Envelope]) -> StoreResult<()>;
}

/// Reachability and writability, for `/readyz`.
#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// `Ok` when the store answers a trivial query.
    async fn ping(&self) -> StoreResult<()>;

    /// `Ok` when the store can commit a write: a scratch row of a few pages is written and
    /// removed in one transaction, so a full disk or a read-only database fails it.
    async fn probe_write(&self) -> StoreResult<()>;
}

/// How an inbound report names its session.
#[derive(Clone, Copy, Debug)]
pub enum ReportSession<'a> {
    /// Herald's inbound API: a session of the caller's organization.
    Owned(&'a OrgId, &'a SessionId),
    /// An engine's webhook: the engine's name for the session, whatever its organization.
    Engine(&'a str),
}

/// Messages, votes and inbound idempotency keys.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// The message at `key`, if it exists and belongs to `org`.
    async fn find_message(&self, org: &OrgId, key: &MessageRef) -> StoreResult<Option<Message>>;
    /// `org`'s session `key.session` and, when it exists, the message at `key` — one read for
    /// the hot path of voting. `None` when the session is not `org`'s.
    async fn find_session_message(
        &self,
        org: &OrgId,
        key: &MessageRef,
    ) -> StoreResult<Option<(Session, Option<Message>)>>;
    /// The current (non-empty) selections on the poll at `key`, ordered by voter.
    async fn poll_votes(&self, org: &OrgId, key: &MessageRef) -> StoreResult<Vec<VoterSelection>>;
    /// The session an inbound report is for and, when the report carries an id, the event id
    /// recorded for that id on the session if it was accepted before — one read where the
    /// report path would otherwise make two. `None` when there is no such session.
    async fn find_report_session(
        &self,
        session: ReportSession<'_>,
        inbound_id: Option<&str>,
    ) -> StoreResult<Option<(Session, Option<EventId>)>>;
    /// Commits a change with its events (and inbound key) in one transaction, or nothing.
    async fn apply_change(&self, change: &Change) -> StoreResult<ChangeOutcome>;
}

/// Reads of the event log.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Where one of `org`'s logged events is, if it exists.
    async fn event_position(&self, org: &OrgId, id: &EventId) -> StoreResult<Option<LogPosition>>;
    /// One organization's settled events after `query.after`, oldest first.
    async fn read_log(&self, query: &LogQuery) -> StoreResult<LogPage>;
    /// Every organization's settled events after `after`, oldest first (the live tailer).
    /// Unsettled events are only looked for when the page is empty.
    async fn tail_log(&self, after: LogPosition, limit: usize) -> StoreResult<LogPage>;
    /// The position of the newest settled event ([`LogPosition::START`] when there is none).
    async fn log_head(&self) -> StoreResult<LogPosition>;
}

/// Every store port in one object: what the use cases ([`crate::gateway::Gateway`]) hold.
/// The dispatcher holds only a [`DeliveryQueue`].
pub trait Store:
    WebhookStore
    + SessionStore
    + ApiKeyStore
    + EventStore
    + StoreHealth
    + MessageStore
    + EventLog
    + DeliveryQueue
    + DeliveryViews
{
}

impl<T> Store for T where
    T: WebhookStore
        + SessionStore
        + ApiKeyStore
        + EventStore
        + StoreHealth
        + MessageStore
        + EventLog
        + DeliveryQueue
        + DeliveryViews
{
}
