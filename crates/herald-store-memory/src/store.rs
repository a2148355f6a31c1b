//! The memory store and its configuration ports: webhooks (with their sealed secrets),
//! sessions, API keys, the event outbox and the store's health. Every method takes the one
//! lock, checks, then writes, so a write is all-or-nothing like the SQL adapters' transactions.

use crate::state::{State, StoredKey, StoredWebhook};
use async_trait::async_trait;
use herald_domain::api_key::ApiKey;
use herald_domain::delivery::DeliveryStatus;
use herald_domain::event::Envelope;
use herald_domain::ids::{ApiKeyId, OrgId, SessionId, WebhookId};
use herald_domain::ports::{
    ApiKeyStore, Clock, EventStore, SealedSecret, SealedSecretChange, SessionStore, StoreHealth,
    StoreResult, StoredSecrets, SystemClock, WebhookStore,
};
use herald_domain::session::Session;
use herald_domain::webhook::Webhook;
use herald_domain::{Millis, StoreError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Every store port in memory (see the crate docs). Cheap to create; share it behind an `Arc`.
pub struct MemoryStore {
    state: Mutex<State>,
    /// What the retention sweep reads as "now" (the SQL adapters read the database's clock).
    clock: Arc<dyn Clock>,
    down: AtomicBool,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store whose retention sweep reads the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty store whose retention sweep reads `clock` (a test's manual time).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            clock,
            down: AtomicBool::new(false),
        }
    }

    /// Makes every call fail as an outage (`StoreErrorKind::Unavailable`) while `down`, as a
    /// database that cannot be reached would.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// From now on, events appended are committed but not settled: the event log reports them
    /// as [`Unsettled`](herald_domain::events_log::Unsettled) and hands out none of them, as
    /// PostgreSQL does while an older transaction is still running. [`Self::settle`] ends it.
    pub fn hold_settling(&self) {
        let mut state = self.lock();
        state.settled_up_to = Some(state.last_seq);
    }

    /// Every committed event is settled again.
    pub fn settle(&self) {
        self.lock().settled_up_to = None;
    }

    /// How many events were appended (logged or not), for assertions.
    pub fn event_count(&self) -> usize {
        self.lock().events.len()
    }

    /// The envelopes appended so far, oldest first, for assertions.
    pub fn appended(&self) -> Vec<Envelope> {
        self.lock()
            .events
            .iter()
            .map(|e| e.envelope.clone())
            .collect()
    }

    pub(crate) fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// The state, or an outage while the store is down.
    pub(crate) fn state(&self) -> StoreResult<MutexGuard<'_, State>> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("the memory store is down"));
        }
        Ok(self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock left whole values behind: every write
        // checks before it changes anything.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn insert_webhook(
        &self,
        webhook: &Webhook,
        secret: Option<&SealedSecret>,
    ) -> StoreResult<()> {
        let mut state = self.state()?;
        if state.webhooks.contains_key(&webhook.id) {
            return Err(StoreError::new(format!(
                "webhook {} already exists",
                webhook.id
            )));
        }
        state.webhooks.insert(
            webhook.id,
            StoredWebhook {
                webhook: webhook.clone(),
                secrets: StoredSecrets {
                    current: secret.cloned(),
                    previous: Vec::new(),
                },
                rate_window: None,
                rate_used: 0,
            },
        );
        Ok(())
    }

    async fn list_webhooks(&self, org: &OrgId) -> StoreResult<Vec<Webhook>> {
        Ok(self
            .state()?
            .webhooks
            .values()
            .filter(|w| &w.webhook.organization_id == org)
            .map(|w| w.webhook.clone())
            .collect())
    }

    async fn find_webhook(&self, org: &OrgId, id: &WebhookId) -> StoreResult<Option<Webhook>> {
        Ok(self
            .state()?
            .webhooks
            .get(id)
            .filter(|w| &w.webhook.organization_id == org)
            .map(|w| w.webhook.clone()))
    }

    async fn update_webhook(
        &self,
        webhook: &Webhook,
        secret: &SealedSecretChange,
    ) -> StoreResult<bool> {
        let mut state = self.state()?;
        let Some(stored) = state
            .webhooks
            .get_mut(&webhook.id)
            .filter(|w| w.webhook.organization_id == webhook.organization_id)
        else {
            return Ok(false);
        };
        let was_active = stored.webhook.active;
        stored.webhook = webhook.clone();
        if webhook.active && !was_active {
            // Reactivated: the failure streak and the breaker start afresh.
            let health = &mut stored.webhook.health;
            health.consecutive_failures = 0;
            health.failing_since = None;
            health.paused_until = None;
            health.cooldown_ms = None;
        }
        match secret {
            SealedSecretChange::Keep => {}
            SealedSecretChange::Remove => stored.secrets.current = None,
            SealedSecretChange::Set(s) => stored.secrets.current = Some(s.clone()),
        }
        if webhook.previous_secrets_valid_until.is_none() {
            // The grace ended, the secret was removed or the scheme changed.
            stored.secrets.previous.clear();
        }
        if !webhook.active {
            state.cancel_pending(&webhook.id, webhook.updated_at);
        }
        Ok(true)
    }

    async fn delete_webhook(&self, org: &OrgId, id: &WebhookId) -> StoreResult<bool> {
        let mut state = self.state()?;
        if state
            .webhooks
            .get(id)
            .is_none_or(|w| &w.webhook.organization_id != org)
        {
            return Ok(false);
        }
        state.webhooks.remove(id);
        // The SQL schema cascades: a webhook's deliveries (and their attempts) go with it.
        state.deliveries.retain(|_, d| &d.webhook_id != id);
        Ok(true)
    }

    async fn webhook_secrets(
        &self,
        org: &OrgId,
        id: &WebhookId,
    ) -> StoreResult<Option<StoredSecrets>> {
        Ok(self
            .state()?
            .webhooks
            .get(id)
            .filter(|w| &w.webhook.organization_id == org)
            .map(|w| w.secrets.clone()))
    }

    async fn replace_webhook_secrets(
        &self,
        org: &OrgId,
        id: &WebhookId,
        expected: Option<&SealedSecret>,
        secrets: &StoredSecrets,
        now: Millis,
    ) -> StoreResult<bool> {
        let mut state = self.state()?;
        let Some(stored) = state
            .webhooks
            .get_mut(id)
            .filter(|w| &w.webhook.organization_id == org)
        else {
            return Ok(false);
        };
        if stored.secrets.current.as_ref() != expected {
            return Ok(false);
        }
        stored.secrets = secrets.clone();
        stored.webhook.previous_secrets_valid_until = secrets.valid_until();
        stored.webhook.updated_at = now;
        Ok(true)
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert_session(&self, session: &Session, events: &[Envelope]) -> StoreResult<bool> {
        let mut state = self.state()?;
        if state.sessions.contains_key(&session.id) {
            return Err(StoreError::new(format!(
                "session {} already exists",
                session.id
            )));
        }
        if state
            .sessions
            .values()
            .any(|s| s.engine_session == session.engine_session)
        {
            return Ok(false);
        }
        state.sessions.insert(session.id, session.clone());
        state.append(events);
        Ok(true)
    }

    async fn list_sessions(&self, org: &OrgId) -> StoreResult<Vec<Session>> {
        Ok(self
            .state()?
            .sessions
            .values()
            .filter(|s| &s.organization_id == org)
            .cloned()
            .collect())
    }

    async fn find_session(&self, org: &OrgId, id: &SessionId) -> StoreResult<Option<Session>> {
        Ok(self
            .state()?
            .sessions
            .get(id)
            .filter(|s| &s.organization_id == org)
            .cloned())
    }

    async fn delete_session(&self, org: &OrgId, id: &SessionId) -> StoreResult<bool> {
        let mut state = self.state()?;
        if state
            .sessions
            .get(id)
            .is_none_or(|s| &s.organization_id != org)
        {
            return Ok(false);
        }
        state.sessions.remove(id);
        // The SQL schema cascades: messages, their votes and inbound keys go with the session.
        state.messages.retain(|key, _| &key.0 != id);
        state.votes.retain(|key, _| &key.0 != id);
        state.inbound.retain(|(session, _), _| session != id);
        Ok(true)
    }
}

#[async_trait]
impl ApiKeyStore for MemoryStore {
    async fn insert_api_key(&self, key: &ApiKey, token_hash: &str) -> StoreResult<()> {
        let mut state = self.state()?;
        if state.api_keys.contains_key(&key.id)
            || state.api_keys.values().any(|k| k.token_hash == token_hash)
        {
            return Err(StoreError::new(format!(
                "api key {} already exists",
                key.id
            )));
        }
        state.api_keys.insert(
            key.id,
            StoredKey {
                key: key.clone(),
                token_hash: token_hash.to_owned(),
                revoked_at: None,
            },
        );
        Ok(())
    }

    async fn list_api_keys(&self, org: &OrgId) -> StoreResult<Vec<ApiKey>> {
        Ok(self
            .state()?
            .api_keys
            .values()
            .filter(|k| &k.key.organization_id == org && k.revoked_at.is_none())
            .map(|k| k.key.clone())
            .collect())
    }

    async fn find_api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>> {
        Ok(self
            .state()?
            .api_keys
            .values()
            .find(|k| k.token_hash == token_hash && k.revoked_at.is_none())
            .map(|k| k.key.clone()))
    }

    async fn revoke_api_key(
        &self,
        org: Option<&OrgId>,
        id: &ApiKeyId,
        now: Millis,
    ) -> StoreResult<bool> {
        let mut state = self.state()?;
        match state.api_keys.get_mut(id) {
            Some(k)
                if k.revoked_at.is_none() && org.is_none_or(|o| o == &k.key.organization_id) =>
            {
                k.revoked_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn touch_api_key(&self, id: &ApiKeyId, now: Millis) -> StoreResult<()> {
        if let Some(k) = self.state()?.api_keys.get_mut(id) {
            k.key.last_used_at = Some(now);
        }
        Ok(())
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append_events(&self, events: &[Envelope]) -> StoreResult<()> {
        self.state()?.append(events);
        Ok(())
    }
}

#[async_trait]
impl StoreHealth for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        self.state().map(drop)
    }

    async fn probe_write(&self) -> StoreResult<()> {
        self.state().map(drop)
    }
}

/// Whether a delivery status counts as finished (anything but pending).
pub(crate) fn finished(status: DeliveryStatus) -> bool {
    status != DeliveryStatus::Pending
}
