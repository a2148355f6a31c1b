//! The use cases: what a caller can ask of Herald, each checking capability first, then the
//! request's values, then the resources it names — the precedence the API's error table fixes —
//! and only then touching the store through the ports.

use crate::api_key::{ApiKey, MintedKey};
use crate::capability::{Capabilities, Capability, Principal};
use crate::error::DomainError;
use crate::event::{Envelope, EventType};
use crate::ids::{ApiKeyId, OrgId, SessionId, WebhookId};
use crate::ports::{
    seal_change, ChangeListener, Clock, Engine, EngineError, KeyMinter, Pause, SecretCipher,
    StatusReport, Store,
};
use crate::session::{Session, SessionStatus};
use crate::webhook::{
    SecretChange, SigningScheme, Webhook, WebhookFields, WebhookSecret, WebhookUrl,
};
use std::sync::Arc;

/// Everything the use cases need, wired once at start-up and shared by every request.
#[derive(Clone)]
pub struct Gateway {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Seals webhook secrets.
    pub cipher: Arc<dyn SecretCipher>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Lets time pass (the event log's read-your-writes wait).
    pub pause: Arc<dyn Pause>,
    /// The messaging network.
    pub engine: Arc<dyn Engine>,
    /// Mints and hashes API key tokens.
    pub minter: Arc<dyn KeyMinter>,
    /// Told when events are committed.
    pub listener: Arc<dyn ChangeListener>,
    /// Whether webhooks may point at private destinations (`HERALD_DELIVERY_ALLOW_PRIVATE`, or
    /// the embedded store's default); when not, a literal private address or `localhost` is a
    /// 422 when a webhook is saved.
    pub private_destinations_allowed: bool,
}

type Result<T> = std::result::Result<T, DomainError>;

/// A new webhook, with the secret Herald generated for it (shown this once) when none was
/// given.
#[derive(Clone, Debug)]
pub struct CreatedWebhook {
    /// The webhook.
    pub webhook: Webhook,
    /// The generated secret, if Herald made one.
    pub generated_secret: Option<WebhookSecret>,
}

/// The answer to a secret rotation.
#[derive(Clone, Debug)]
pub struct RotatedSecret {
    /// The new secret (shown this once).
    pub secret: WebhookSecret,
    /// Until when the replaced secret still signs (epoch ms; now when the grace is 0).
    pub previous_valid_until: crate::Millis,
}

/// Bounds of a rotation's grace period, in seconds.
pub const GRACE_SECONDS: std::ops::RangeInclusive<i64> = 0..=604_800;
/// The grace period when none is asked for: a day.
pub const DEFAULT_GRACE_SECONDS: i64 = 86_400;

impl Gateway {
    // ---- webhooks -------------------------------------------------------------------------

    /// The caller's organization's webhooks.
    pub async fn list_webhooks(&self, caller: &Principal) -> Result<Vec<Webhook>> {
        caller.require(Capability::Manage)?;
        let now = self.clock.now_ms();
        Ok(self
            .store
            .list_webhooks(&caller.organization)
            .await?
            .into_iter()
            .map(|w| w.as_of(now))
            .collect())
    }

    /// Registers a webhook. Without a `secret` field Herald generates one (an explicit `null`
    /// means unsigned, for `waha` signing only).
    pub async fn create_webhook(
        &self,
        caller: &Principal,
        mut fields: WebhookFields,
    ) -> Result<CreatedWebhook> {
        caller.require(Capability::Manage)?;
        let generated_secret = fields
            .secret
            .is_none()
            .then(|| WebhookSecret::generate(&self.minter.secret_bytes()));
        if let Some(secret) = &generated_secret {
            fields.secret = Some(Some(secret.reveal().to_owned()));
        }
        let change = fields.create(
            WebhookId::generate(),
            caller.organization.clone(),
            self.clock.now_ms(),
        )?;
        self.check_destination(&change.webhook.url)?;
        self.check_session_scope(caller, &change.webhook).await?;
        let sealed = match &change.secret {
            SecretChange::Set(secret) => Some(self.cipher.seal(secret.expose())),
            SecretChange::Keep | SecretChange::Remove => None,
        };
        self.store
            .insert_webhook(&change.webhook, sealed.as_ref())
            .await?;
        Ok(CreatedWebhook {
            webhook: change.webhook,
            generated_secret,
        })
    }

    /// One webhook of the caller's organization.
    pub async fn get_webhook(&self, caller: &Principal, id: &str) -> Result<Webhook> {
        caller.require(Capability::Manage)?;
        self.find_webhook(&caller.organization, id).await
    }

    /// Replaces a webhook's secret (with `secret`, or a generated one); the replaced secret
    /// keeps signing for `grace_seconds` (default a day) beside the new one.
    pub async fn rotate_secret(
        &self,
        caller: &Principal,
        id: &str,
        secret: Option<String>,
        grace_seconds: Option<i64>,
    ) -> Result<RotatedSecret> {
        caller.require(Capability::Manage)?;
        let grace = grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
        if !GRACE_SECONDS.contains(&grace) {
            return Err(DomainError::invalid(
                "graceSeconds",
                "graceSeconds must be an integer from 0 to 604800",
            ));
        }
        if let Some(text) = &secret {
            WebhookSecret::plausible(text)?;
        }
        let webhook = self.find_webhook(&caller.organization, id).await?;
        let secret = match secret {
            Some(text) => WebhookSecret::parse(webhook.signing, text)?,
            None => WebhookSecret::generate(&self.minter.secret_bytes()),
        };
        // Compare and set: a rotation racing this one makes us read again, never lose a secret.
        for _ in 0..5 {
            let now = self.clock.now_ms();
            let current = self
                .store
                .webhook_secrets(&caller.organization, &webhook.id)
                .await?
                .ok_or(DomainError::NotFound("webhook"))?;
            let next = current.rotated(self.cipher.seal(secret.expose()), now, grace * 1000);
            if self
                .store
                .replace_webhook_secrets(
                    &caller.organization,
                    &webhook.id,
                    current.current.as_ref(),
                    &next,
                    now,
                )
                .await?
            {
                return Ok(RotatedSecret {
                    secret,
                    previous_valid_until: now + grace * 1000,
                });
            }
        }
        Err(DomainError::Conflict(
            "the secret is being rotated concurrently; try again".into(),
        ))
    }

    /// Checks that the secret a webhook keeps suits its new scheme.
    async fn check_kept_secret(&self, webhook: &Webhook) -> Result<()> {
        if webhook.signing != SigningScheme::Standard {
            return Ok(());
        }
        let stored = self
            .store
            .webhook_secrets(&webhook.organization_id, &webhook.id)
            .await?
            .unwrap_or_default();
        let fits = stored
            .current
            .as_ref()
            .and_then(|sealed| self.cipher.open(sealed).ok())
            .is_some_and(|text| SigningScheme::Standard.key(&text).is_some());
        if fits {
            Ok(())
        } else {
            Err(DomainError::invalid(
                "secret",
                "switching to standard signing needs a whsec_ secret: supply one with the change",
            ))
        }
    }

    /// Changes any subset of a webhook's fields.
    pub async fn update_webhook(
        &self,
        caller: &Principal,
        id: &str,
        fields: WebhookFields,
    ) -> Result<Webhook> {
        caller.require(Capability::Manage)?;
        // A new URL is checked before the lookup (422 comes before 404); an unchanged one is
        // not checked again, so a webhook saved while private destinations were allowed can
        // still be edited.
        if let Some(url) = fields
            .url
            .as_deref()
            .and_then(|u| WebhookUrl::parse(u).ok())
        {
            self.check_destination(&url)?;
        }
        self.check_patch_values(caller, &fields)?;
        let current = self.find_webhook(&caller.organization, id).await?;
        let change = fields.apply(current, self.clock.now_ms())?;
        self.check_session_scope(caller, &change.webhook).await?;
        if change.scheme_changed && matches!(change.secret, SecretChange::Keep) {
            self.check_kept_secret(&change.webhook).await?;
        }
        let secret = seal_change(self.cipher.as_ref(), &change.secret);
        if !self.store.update_webhook(&change.webhook, &secret).await? {
            return Err(DomainError::NotFound("webhook"));
        }
        Ok(change.webhook)
    }

    /// The request values of a patch, checked before the webhook is looked up (422 comes before
    /// 404) by applying them to a stand-in webhook. Only a secret's form depends on the stored
    /// webhook (its signing scheme), so it is checked here only when the patch names the scheme.
    fn check_patch_values(&self, caller: &Principal, fields: &WebhookFields) -> Result<()> {
        let now = self.clock.now_ms();
        let stand_in = WebhookFields {
            url: Some("https://stand-in.invalid/".into()),
            ..WebhookFields::default()
        }
        .create(WebhookId::generate(), caller.organization.clone(), now)?
        .webhook;
        let values = WebhookFields {
            secret: fields.signing.as_ref().and(fields.secret.clone()),
            ..fields.clone()
        };
        values.apply(stand_in, now).map(drop)
    }

    /// Deletes a webhook (its pending deliveries are cancelled).
    pub async fn delete_webhook(&self, caller: &Principal, id: &str) -> Result<()> {
        caller.require(Capability::Manage)?;
        let id = WebhookId::parse(id).ok_or(DomainError::NotFound("webhook"))?;
        if self.store.delete_webhook(&caller.organization, &id).await? {
            Ok(())
        } else {
            Err(DomainError::NotFound("webhook"))
        }
    }

    /// Refuses a literal private destination (422 on `url`) unless those are allowed.
    fn check_destination(&self, url: &WebhookUrl) -> Result<()> {
        if self.private_destinations_allowed {
            return Ok(());
        }
        crate::destination::check_public(url.url())
    }

    /// Looks a webhook up by its textual id within `org`; malformed and foreign ids are 404.
    pub async fn find_webhook(&self, org: &OrgId, id: &str) -> Result<Webhook> {
        let id = WebhookId::parse(id).ok_or(DomainError::NotFound("webhook"))?;
        let now = self.clock.now_ms();
        self.store
            .find_webhook(org, &id)
            .await?
            .map(|w| w.as_of(now))
            .ok_or(DomainError::NotFound("webhook"))
    }

    async fn check_session_scope(&self, caller: &Principal, webhook: &Webhook) -> Result<()> {
        if let Some(session) = &webhook.session_id {
            if self
                .store
                .find_session(&caller.organization, session)
                .await?
                .is_none()
            {
                return Err(DomainError::NotFound("session"));
            }
        }
        Ok(())
    }

    // ---- sessions -------------------------------------------------------------------------

    /// The caller's organization's sessions.
    pub async fn list_sessions(&self, caller: &Principal) -> Result<Vec<Session>> {
        caller.require(Capability::Read)?;
        Ok(self.store.list_sessions(&caller.organization).await?)
    }

    /// One session of the caller's organization.
    pub async fn get_session(&self, caller: &Principal, id: &str) -> Result<Session> {
        caller.require(Capability::Read)?;
        self.find_session(&caller.organization, id).await
    }

    /// Looks a session up by its textual id within `org`; malformed and foreign ids are 404.
    pub async fn find_session(&self, org: &OrgId, id: &str) -> Result<Session> {
        let id = session_id(id)?;
        self.store
            .find_session(org, &id)
            .await?
            .ok_or(DomainError::NotFound("session"))
    }

    /// Creates a session bound to the engine's session `engine_session` (its own id when
    /// `None`) and asks the engine to connect it. The session is stored `STARTING` (with its
    /// `session.status` event) before the engine is called; every status change the engine
    /// reports at once is then applied. When the engine fails, the session is kept `FAILED` with
    /// the reason in its `session.status` event, for [`Self::restart_session`] to try again.
    /// 409 when another session already binds that engine session.
    pub async fn create_session(
        &self,
        caller: &Principal,
        name: &str,
        engine_session: Option<&str>,
    ) -> Result<Session> {
        caller.require(Capability::Manage)?;
        let mut session = Session::new(caller.organization.clone(), name, self.clock.now_ms())?;
        if let Some(engine_session) = engine_session {
            session = session.with_engine_session(engine_session)?;
        }
        let started = self.status_event(&session, None, None, self.clock.now_ms());
        if !self
            .store
            .insert_session(&session, std::slice::from_ref(&started))
            .await?
        {
            return Err(DomainError::Conflict(format!(
                "engine session `{}` is already bound to another session",
                session.engine_session
            )));
        }
        self.listener.events_committed(&session.organization_id);
        match self.engine.start(&session).await {
            Ok(reports) => self.apply_reports(session, reports).await,
            Err(error) => self.mark_failed(session, &error).await,
        }
    }

    /// Asks the engine to start a session again (after a failure, or to take over its engine
    /// session anew). On success the session is `STARTING` (with its event) and then follows the
    /// engine; when the engine fails, the error is returned and the session is left as it was.
    pub async fn restart_session(&self, caller: &Principal, id: &str) -> Result<Session> {
        caller.require(Capability::Manage)?;
        let session = self.find_session(&caller.organization, id).await?;
        let reports = self.engine.start(&session).await?;
        let session = self
            .apply_status(
                session,
                StatusReport {
                    status: SessionStatus::Starting,
                    me: None,
                },
            )
            .await?;
        self.apply_reports(session, reports).await
    }

    /// The QR code text that pairs a session, while it is `SCAN_QR` (409 otherwise, and with
    /// an engine that never needs one).
    pub async fn session_qr(&self, caller: &Principal, id: &str) -> Result<String> {
        caller.require(Capability::Read)?;
        let session = self.find_session(&caller.organization, id).await?;
        if session.status != SessionStatus::ScanQr {
            return Err(DomainError::Conflict(format!(
                "session is {}, not SCAN_QR: there is no QR code to show",
                session.status.as_str()
            )));
        }
        Ok(self.engine.qr(&session).await?)
    }

    async fn apply_reports(
        &self,
        mut session: Session,
        reports: Vec<StatusReport>,
    ) -> Result<Session> {
        for report in reports {
            session = self.apply_status(session, report).await?;
        }
        Ok(session)
    }

    async fn mark_failed(&self, mut session: Session, error: &EngineError) -> Result<Session> {
        tracing::warn!(session = %session.id, %error, "engine failed to start the session");
        session.status = SessionStatus::Failed;
        session.updated_at = self.clock.now_ms().max(session.updated_at);
        let reason = error.to_string();
        let event = self.status_event(&session, None, Some(&reason), self.clock.now_ms());
        self.write_status(&session, event).await?;
        Ok(session)
    }

    /// Applies an engine's status report to a session: the new state and its `session.status`
    /// event are written together.
    pub async fn apply_status(&self, session: Session, report: StatusReport) -> Result<Session> {
        let session = session.after_report(report, self.clock.now_ms());
        let event = self.status_event(&session, None, None, self.clock.now_ms());
        self.write_status(&session, event).await?;
        Ok(session)
    }

    /// The one way a session's status is written, whether the engine answered a call or
    /// reported on its own (the inbound path builds the same mutation): the row is locked with
    /// the others a change touches, so status events are logged in the order they took effect.
    async fn write_status(&self, session: &Session, event: Envelope) -> Result<()> {
        let change = crate::message::Change {
            organization_id: session.organization_id.clone(),
            mutation: crate::message::Mutation::SessionStatus(session.clone()),
            events: vec![event],
            inbound: None,
        };
        self.commit_change(&change, "session").await.map(drop)
    }

    /// The `session.status` event for the session's current state, with the engine's status
    /// name and a failure reason when given.
    pub(crate) fn status_event(
        &self,
        session: &Session,
        engine_status: Option<&str>,
        reason: Option<&str>,
        now: crate::Millis,
    ) -> Envelope {
        let payload = session.status_payload_with(engine_status, reason);
        self.session_event(session, EventType::SessionStatus, now, payload)
    }

    /// Deletes a session, its messages and votes, once the engine has let its session go (an
    /// engine session the engine no longer knows counts as gone). When the engine fails, nothing
    /// is deleted and the error is returned, so no engine session is left behind unseen.
    pub async fn delete_session(&self, caller: &Principal, id: &str) -> Result<()> {
        caller.require(Capability::Manage)?;
        let session = self.find_session(&caller.organization, id).await?;
        self.engine.stop(&session).await?;
        if self
            .store
            .delete_session(&caller.organization, &session.id)
            .await?
        {
            Ok(())
        } else {
            Err(DomainError::NotFound("session"))
        }
    }

    // ---- API keys -------------------------------------------------------------------------

    /// The caller's organization's live API keys.
    pub async fn list_api_keys(&self, caller: &Principal) -> Result<Vec<ApiKey>> {
        caller.require(Capability::Manage)?;
        Ok(self.store.list_api_keys(&caller.organization).await?)
    }

    /// Mints a key for the caller's organization. A caller grants only what it holds, except
    /// that `manage` may also grant `ingest`.
    pub async fn create_api_key(
        &self,
        caller: &Principal,
        name: &str,
        capabilities: Capabilities,
    ) -> Result<MintedKey> {
        caller.require(Capability::Manage)?;
        check_key_name(name)?;
        let grantable = caller.capabilities.with(Capability::Ingest);
        if !grantable.includes(capabilities) {
            return Err(DomainError::Forbidden(
                capabilities
                    .iter()
                    .find(|c| !grantable.contains(*c))
                    .unwrap_or(Capability::Manage),
            ));
        }
        self.mint_api_key(caller.organization.clone(), name, capabilities)
            .await
    }

    /// Mints a key without a caller: the operator's admin CLI.
    pub async fn mint_api_key(
        &self,
        org: OrgId,
        name: &str,
        capabilities: Capabilities,
    ) -> Result<MintedKey> {
        check_key_name(name)?;
        let token = self.minter.mint_token();
        let key = ApiKey {
            id: ApiKeyId::generate(),
            organization_id: org,
            name: name.trim().to_owned(),
            capabilities,
            created_at: self.clock.now_ms(),
            last_used_at: None,
        };
        self.store
            .insert_api_key(&key, &self.minter.hash_token(&token))
            .await?;
        Ok(MintedKey { key, token })
    }

    /// Revokes one of the caller's organization's keys.
    pub async fn revoke_api_key(&self, caller: &Principal, id: &str) -> Result<()> {
        caller.require(Capability::Manage)?;
        let id = ApiKeyId::parse(id).ok_or(DomainError::NotFound("api key"))?;
        if self
            .store
            .revoke_api_key(Some(&caller.organization), &id, self.clock.now_ms())
            .await?
        {
            self.listener.api_key_revoked(&id);
            Ok(())
        } else {
            Err(DomainError::NotFound("api key"))
        }
    }

    // ---- events ---------------------------------------------------------------------------

    /// The event type catalogue (no capability needed beyond being authenticated).
    pub fn event_types(&self) -> &'static [EventType] {
        &EventType::ALL
    }

    /// Appends events (and their deliveries) durably, then wakes whoever waits for them.
    pub async fn emit(&self, events: &[Envelope]) -> Result<()> {
        self.store.append_events(events).await?;
        for org in events.iter().map(|e| &e.organization_id) {
            self.listener.events_committed(org);
        }
        Ok(())
    }
}

fn check_key_name(name: &str) -> Result<()> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > crate::api_key::ApiKey::MAX_NAME
        || name.chars().any(char::is_control)
    {
        return Err(DomainError::invalid(
            "name",
            "name must be 1 to 200 printable characters",
        ));
    }
    Ok(())
}

/// A session id from a path: a malformed one names no session, so it is a 404 like a foreign
/// one, never a 400 that would tell the two apart.
pub(crate) fn session_id(text: &str) -> Result<SessionId> {
    SessionId::parse(text).ok_or(DomainError::NotFound("session"))
}
