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
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
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

/// A secret replaced by a rotation that still signs deliveries until `until`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PreviousSecret {
    /// The sealed secret.
    pub sealed: SealedSecret,
    /// When it stops signing (epoch ms).
    pub until: Millis,
}

/// Every secret of a webhook, sealed: the current one and those still in their grace period,
/// oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredSecrets {
    /// The current secret (`None`: deliveries go unsigned).
    pub current: Option<SealedSecret>,
    /// Earlier secrets, oldest first.
    pub previous: Vec<PreviousSecret>,
}

impl StoredSecrets {
    /// Most earlier secrets kept; a rotation beyond it drops the oldest.
    pub const MAX_PREVIOUS: usize = 5;

    /// The secrets after rotating to `new` at `now`: the current one signs on for `grace_ms`
    /// (not at all when 0), earlier ones keep their own end, expired ones are erased and at most
    /// [`Self::MAX_PREVIOUS`] are kept.
    pub fn rotated(&self, new: SealedSecret, now: Millis, grace_ms: Millis) -> Self {
        let mut previous: Vec<PreviousSecret> = self
            .previous
            .iter()
            .filter(|p| p.until > now)
            .cloned()
            .collect();
        if let Some(current) = &self.current {
            if grace_ms > 0 {
                previous.push(PreviousSecret {
                    sealed: current.clone(),
                    until: now.saturating_add(grace_ms),
                });
            }
        }
        let excess = previous.len().saturating_sub(Self::MAX_PREVIOUS);
        previous.drain(..excess);
        Self {
            current: Some(new),
            previous,
        }
    }

    /// When the last earlier secret stops signing.
    pub fn valid_until(&self) -> Option<Millis> {
        self.previous.iter().map(|p| p.until).max()
    }
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
    /// The session bound to an engine's session name, whatever its organization (for the
    /// engine's own webhook, which names only that).
    async fn find_session_by_engine(&self, engine_session: &str) -> StoreResult<Option<Session>>;
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

/// Every store concern in one object.
pub trait Store:
    WebhookStore
    + SessionStore
    + ApiKeyStore
    + EventStore
    + StoreHealth
    + DeliveryStore
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
            + DeliveryStore
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
    /// Fresh random bytes for a generated webhook secret.
    fn secret_bytes(&self) -> [u8; crate::webhook::WebhookSecret::GENERATED_BYTES];
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

/// Told after events are durably appended, so dispatchers and live streams wake at once instead
/// of polling.
pub trait ChangeListener: Send + Sync {
    /// Events for `org` were committed.
    fn events_committed(&self, org: &OrgId);

    /// Existing deliveries of `org` were made due again (a manual retry or recovery). By
    /// default this is announced like new events.
    fn deliveries_requeued(&self, org: &OrgId) {
        self.events_committed(org);
    }

    /// An API key was revoked: whatever remembers verified keys in this process forgets it at
    /// once, so the revoked token is refused from the next request on.
    fn api_key_revoked(&self, _id: &ApiKeyId) {}
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

use crate::delivery::{
    AttemptOutcome, Backlog, ClaimedDelivery, DeliveryDetail, DeliveryPage, Lane, Lease, Pruned,
    RetryAnswer,
};
use crate::ids::DeliveryId;

/// A dispatcher running in this process that takes new deliveries straight from the
/// transaction that creates them, so they skip the claim query (and its wait for a wake-up).
///
/// The store writes such a delivery already leased to [`Self::owner`] until `now +`
/// [`Self::lease_ms`], and hands it over only after its transaction committed: if the process
/// dies first, the lease lapses and any dispatcher claims the delivery as usual, so nothing is
/// lost. Room is bounded: when the dispatcher is behind, [`Self::reserve`] refuses and the
/// delivery is written unleased, to be claimed like any other.
pub trait DirectDispatch: Send + Sync {
    /// The lease owner written on handed-over deliveries (the dispatcher's own).
    fn owner(&self) -> &str;
    /// How long a handed-over delivery stays leased.
    fn lease_ms(&self) -> Millis;
    /// Takes room for one delivery; `false` when the dispatcher has no room for more.
    fn reserve(&self) -> bool;
    /// Gives back room taken for `count` deliveries whose transaction did not commit.
    fn unreserve(&self, count: usize);
    /// Hands over committed deliveries, room having been reserved for each.
    fn hand_over(&self, deliveries: Vec<ClaimedDelivery>);
    /// Notes that committed deliveries were left for a claim (no room, or not due yet).
    fn claimable_committed(&self);
}

/// The delivery queue: claims under a lease, outcomes written back by the lease holder, and
/// the views and manual actions of the deliveries API.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Leases up to `limit` due, unleased pending deliveries of `lane` to `lease.owner` until
    /// `lease.until`, skipping rows another dispatcher is claiming and deliveries of the
    /// `excluded` webhooks (those already at their concurrency cap here). Oldest due first.
    async fn claim_deliveries(
        &self,
        lane: Lane,
        lease: &Lease,
        now: Millis,
        limit: usize,
        excluded: &[WebhookId],
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Like [`Self::claim_deliveries`], but only deliveries of the `only` webhooks: the slow
    /// lane claims the work of endpoints that answer slowly apart from everyone else's, so
    /// their backlog never stands ahead of other webhooks' work in a claim.
    async fn claim_deliveries_of(
        &self,
        lane: Lane,
        lease: &Lease,
        now: Millis,
        limit: usize,
        only: &[WebhookId],
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Writes attempt outcomes for deliveries still leased to `owner`: the attempt row, the
    /// delivery's new state, the lease cleared. Deliveries no longer leased to `owner` are
    /// skipped (their outcome is stale). In the same transaction, each webhook's health follows
    /// [`crate::health::Health::after`] under `policy` — disabling, holding or releasing its
    /// deliveries — and the operational events this causes (and `delivery.failed` for every
    /// dead letter) are appended. Returns how many were written.
    async fn complete_attempts(
        &self,
        owner: &str,
        outcomes: &[AttemptOutcome],
        policy: &crate::health::HealthPolicy,
        now: Millis,
    ) -> StoreResult<usize>;
    /// Takes one of `webhook`'s `limit` attempt slots of the current epoch second, atomically
    /// across every dispatcher; `false` when the second's slots are all taken.
    async fn take_rate_slot(
        &self,
        webhook: &WebhookId,
        limit: u32,
        now: Millis,
    ) -> StoreResult<bool>;
    /// Gives back `owner`'s lease on a delivery that was not attempted (its webhook's rate
    /// limit was reached), due again at `until`; no attempt is spent. `false` if the lease was
    /// lost meanwhile.
    async fn defer_delivery(
        &self,
        owner: &str,
        id: &DeliveryId,
        until: Millis,
    ) -> StoreResult<bool>;
    /// Gives back `owner`'s leases on `ids` (all of them when `ids` is empty) without an
    /// attempt, so any dispatcher may claim them at once.
    async fn release_leases(&self, owner: &str, ids: &[DeliveryId]) -> StoreResult<usize>;
    /// Gives back every lease, whoever holds it, and returns how many. Only for a store that
    /// one process owns (the embedded file), where any lease found at start-up belongs to a
    /// predecessor that is gone; never on a shared database, whose other replicas are alive.
    async fn release_all_leases(&self) -> StoreResult<usize>;
    /// From now on, fresh deliveries this store creates go to `dispatch` directly when it has
    /// room (see [`DirectDispatch`]). A store that cannot do this ignores it; the dispatcher
    /// then claims everything.
    fn attach_direct_dispatch(&self, _dispatch: std::sync::Arc<dyn DirectDispatch>) {}
    /// When `lane` next has claimable work after `now`: the earliest due time of an unleased
    /// pending delivery, or the earliest lapse of a lease.
    async fn next_claimable_at(&self, lane: Lane, now: Millis) -> StoreResult<Option<Millis>>;
    /// One page of the organization's deliveries (of `webhook` only, when given) that pass the
    /// query's filters, newest first, starting after its cursor.
    async fn list_deliveries(
        &self,
        org: &OrgId,
        webhook: Option<&WebhookId>,
        query: &crate::deliveries::DeliveryQuery,
    ) -> StoreResult<DeliveryPage>;
    /// A webhook's attempts started at or after `since`, counted, and its pending deliveries.
    async fn attempt_tally(
        &self,
        org: &OrgId,
        webhook: &WebhookId,
        since: Millis,
    ) -> StoreResult<crate::deliveries::AttemptTally>;
    /// One delivery of a webhook with its envelope and attempt log.
    async fn find_delivery(
        &self,
        org: &OrgId,
        webhook: &WebhookId,
        id: &DeliveryId,
    ) -> StoreResult<Option<DeliveryDetail>>;
    /// Makes a delivery due now: a finished one becomes pending with a renewed budget, a pending
    /// one is moved to now; refused while an attempt is in flight (an unexpired lease).
    async fn retry_delivery(
        &self,
        org: &OrgId,
        webhook: &WebhookId,
        id: &DeliveryId,
        now: Millis,
    ) -> StoreResult<RetryAnswer>;
    /// Requeues (due now, budget renewed) every failed delivery of a webhook created within
    /// `[since, until]`. Returns how many.
    async fn recover_deliveries(
        &self,
        org: &OrgId,
        webhook: &WebhookId,
        since: Millis,
        until: Millis,
        now: Millis,
    ) -> StoreResult<u64>;
    /// Stores a test event (kept out of the event log) and one pending delivery of it to
    /// `webhook`, whatever the webhook's filter, in one transaction.
    async fn insert_test_delivery(
        &self,
        webhook: &crate::webhook::Webhook,
        event: &Envelope,
        delivery: &DeliveryId,
    ) -> StoreResult<()>;
    /// Pending count and the age of the oldest due delivery.
    async fn delivery_backlog(&self, now: Millis) -> StoreResult<Backlog>;
    /// Removes finished deliveries (with their attempts) created before `before`, and events
    /// created before it that no pending delivery still needs; also erases the secrets of
    /// webhooks whose rotation grace has wholly ended.
    async fn prune_deliveries(&self, before: Millis) -> StoreResult<Pruned>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(n: u32) -> SealedSecret {
        SealedSecret(format!("s{n}"))
    }

    #[test]
    fn rotation_keeps_five_earlier_secrets_in_grace_and_erases_expired_ones() {
        let mut secrets = StoredSecrets {
            current: Some(sealed(0)),
            previous: Vec::new(),
        };
        for n in 1..=7 {
            secrets = secrets.rotated(sealed(n), 1_000 * i64::from(n), 60_000);
        }
        assert_eq!(secrets.current, Some(sealed(7)));
        let kept: Vec<&str> = secrets
            .previous
            .iter()
            .map(|p| p.sealed.0.as_str())
            .collect();
        assert_eq!(
            kept,
            ["s2", "s3", "s4", "s5", "s6"],
            "the oldest are dropped"
        );
        assert_eq!(secrets.valid_until(), Some(67_000));
        // Long after every grace ended, a rotation without grace leaves nothing behind.
        let later = secrets.rotated(sealed(8), 1_000_000, 0);
        assert!(later.previous.is_empty());
        assert_eq!(later.valid_until(), None);
        // A webhook without a secret gains one and nothing in grace.
        let first = StoredSecrets::default().rotated(sealed(1), 5, 60_000);
        assert_eq!((first.current, first.previous.len()), (Some(sealed(1)), 0));
    }
}
