//! The ports: what the use cases need from the outside world, as traits the adapter crates
//! implement. Each store trait covers one concern so an adapter (or a test fake) can be read
//! and written one piece at a time; [`Store`] is all of them together.

use crate::api_key::ApiKey;
use crate::capability::Principal;
use crate::error::StoreError;
use crate::event::{Envelope, Me};
use crate::ids::{ApiKeyId, OrgId, SessionId, WebhookId};
use crate::session::{Session, SessionStatus};
use crate::webhook::{SecretChange, Webhook};
use crate::Millis;
use async_trait::async_trait;

/// What every store call returns.
pub type StoreResult<T> = Result<T, StoreError>;

/// A sealed (encrypted, authenticated) secret as stored: opaque text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSecret(pub String);

/// The secret as the store should write it.
#[derive(Clone, Debug)]
pub enum SealedSecretChange {
    /// Leave the stored secret alone.
    Keep,
    /// Remove it.
    Remove,
    /// Store this sealed secret.
    Set(SealedSecret),
}

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
    /// the same transaction. `false` if it no longer exists.
    async fn update_webhook(
        &self,
        webhook: &Webhook,
        secret: &SealedSecretChange,
    ) -> StoreResult<bool>;
    /// Deletes a webhook and cancels its pending deliveries. `false` if it did not exist.
    async fn delete_webhook(&self, org: &OrgId, id: &WebhookId) -> StoreResult<bool>;
}

/// Messaging sessions. Every state change is written together with its events.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session and its events in one transaction.
    async fn insert_session(&self, session: &Session, events: &[Envelope]) -> StoreResult<()>;
    /// The organization's sessions, oldest first.
    async fn list_sessions(&self, org: &OrgId) -> StoreResult<Vec<Session>>;
    /// One session of the organization.
    async fn find_session(&self, org: &OrgId, id: &SessionId) -> StoreResult<Option<Session>>;
    /// Writes a session's new status and `me`, with its events, in one transaction.
    async fn update_session(&self, session: &Session, events: &[Envelope]) -> StoreResult<bool>;
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

/// Reachability, for `/readyz`.
#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// `Ok` when the store answers a trivial query.
    async fn ping(&self) -> StoreResult<()>;
}

/// Every store concern in one object.
pub trait Store:
    WebhookStore
    + SessionStore
    + ApiKeyStore
    + EventStore
    + StoreHealth
    + crate::message::MessageStore
    + crate::events_log::EventLog
{
}
impl<
        T: WebhookStore
            + SessionStore
            + ApiKeyStore
            + EventStore
            + StoreHealth
            + crate::message::MessageStore
            + crate::events_log::EventLog,
    > Store for T
{
}

/// Encrypts secrets before they reach the store and decrypts them for signing.
pub trait SecretCipher: Send + Sync {
    /// Seals `plaintext` with a fresh nonce.
    fn seal(&self, plaintext: &[u8]) -> SealedSecret;
    /// Opens a sealed secret; fails on a wrong key or tampered data.
    fn open(&self, sealed: &SealedSecret) -> Result<Vec<u8>, CipherError>;
}

/// A sealed secret could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("the secret cannot be decrypted: {0}")]
pub struct CipherError(pub String);

/// The current time.
pub trait Clock: Send + Sync {
    /// Epoch milliseconds now.
    fn now_ms(&self) -> Millis;
}

/// Makes new API key tokens and hashes presented ones.
pub trait KeyMinter: Send + Sync {
    /// A fresh high-entropy token.
    fn mint_token(&self) -> String;
    /// The stored form of a token.
    fn hash_token(&self, token: &str) -> String;
}

/// Why a bearer token was refused (always a 401).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token is missing, malformed, expired, badly signed, unknown or revoked.
    #[error("{0}")]
    Rejected(String),
    /// The credential store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Turns a bearer token into a principal.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// Verifies `token` and returns who it speaks for.
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError>;
    /// Forgets any cached state about a revoked key so this replica refuses it at once.
    fn forget_api_key(&self, id: &ApiKeyId);
}

/// A status change an engine reports for a session.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusReport {
    /// The new status.
    pub status: SessionStatus,
    /// The connected account, once known.
    pub me: Option<Me>,
}

/// An engine could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[error("engine: {0}")]
pub struct EngineError(pub String);

/// The messaging network behind Herald. A real engine connects accounts and moves messages; the
/// built-in simulator only pretends, and says so. An engine reports later changes through the
/// inbound API (`POST /sessions/{id}/inbound`).
#[async_trait]
pub trait Engine: Send + Sync {
    /// A name for logs and docs (`simulator` for the built-in one).
    fn name(&self) -> &'static str;
    /// Begins connecting a session; returns the status changes that happened at once, in order.
    async fn start(&self, session: &Session) -> Result<Vec<StatusReport>, EngineError>;
    /// Disconnects a session that is being deleted.
    async fn stop(&self, session: &Session) -> Result<(), EngineError>;
    /// Sends a poll to `chat`; returns the new message's id.
    async fn send_poll(
        &self,
        session: &Session,
        chat: &str,
        poll: &crate::poll::Poll,
    ) -> Result<String, EngineError>;
    /// Casts this session's vote (the complete selection) on a poll message.
    async fn send_vote(
        &self,
        session: &Session,
        chat: &str,
        poll_message_id: &str,
        options: &[String],
    ) -> Result<String, EngineError>;
}

/// Told after events are durably appended, so dispatchers and live streams wake at once instead
/// of polling.
pub trait ChangeListener: Send + Sync {
    /// Events for `org` were committed.
    fn events_committed(&self, org: &OrgId);
}

/// A listener that ignores everything (for tests and the CLI).
pub struct NoListener;

impl ChangeListener for NoListener {
    fn events_committed(&self, _org: &OrgId) {}
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        // The domain reads wall time only through this port; this impl is the one place it's done.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }
}

/// Turns a secret change into what the store writes, sealing a new secret.
pub fn seal_change(cipher: &dyn SecretCipher, change: &SecretChange) -> SealedSecretChange {
    match change {
        SecretChange::Keep => SealedSecretChange::Keep,
        SecretChange::Remove => SealedSecretChange::Remove,
        SecretChange::Set(secret) => SealedSecretChange::Set(cipher.seal(secret.expose())),
    }
}
