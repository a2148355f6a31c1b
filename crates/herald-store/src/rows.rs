//! Row types and their conversion to and from domain values. Stored text that no longer parses
//! (a hand-edited row, say) is a [`StoreError`], never a panic.

use crate::schema::*;
use diesel::prelude::*;
use herald_domain::api_key::ApiKey;
use herald_domain::event::{Envelope, Me};
use herald_domain::retry::{Backoff, RetryPolicy};
use herald_domain::session::{Session, SessionStatus};
use herald_domain::webhook::{CustomHeaders, EventFilter, SigningScheme, Webhook, WebhookUrl};
use herald_domain::{ApiKeyId, Capabilities, OrgId, SessionId, StoreError, WebhookId};

fn corrupt(what: &str, id: &str) -> StoreError {
    StoreError::new(format!("stored {what} {id} cannot be read back"))
}

/// A row of `api_keys`.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys, treat_none_as_default_value = false)]
pub struct ApiKeyRow {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub capabilities: String,
    pub token_hash: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl ApiKeyRow {
    pub fn new(key: &ApiKey, token_hash: &str) -> Self {
        Self {
            id: key.id.to_string(),
            organization_id: key.organization_id.to_string(),
            name: key.name.clone(),
            capabilities: key.capabilities.to_list(),
            token_hash: token_hash.to_owned(),
            created_at: key.created_at,
            last_used_at: None,
            revoked_at: None,
        }
    }

    pub fn into_domain(self) -> Result<ApiKey, StoreError> {
        Ok(ApiKey {
            id: ApiKeyId::parse(&self.id).ok_or_else(|| corrupt("api key", &self.id))?,
            organization_id: OrgId::parse(&self.organization_id)
                .ok_or_else(|| corrupt("api key", &self.id))?,
            capabilities: Capabilities::parse_list(&self.capabilities)
                .map_err(|_| corrupt("api key", &self.id))?,
            name: self.name,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
        })
    }
}

/// A row of `sessions`.
#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = sessions, treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct SessionRow {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub status: String,
    pub me_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub engine_session: String,
}

impl SessionRow {
    pub fn new(s: &Session) -> Self {
        Self {
            id: s.id.to_string(),
            organization_id: s.organization_id.to_string(),
            name: s.name.clone(),
            status: s.status.as_str().to_owned(),
            me_id: s.me.as_ref().map(|m| m.id.clone()),
            created_at: s.created_at,
            updated_at: s.updated_at,
            engine_session: s.engine_session.clone(),
        }
    }

    pub fn into_domain(self) -> Result<Session, StoreError> {
        let bad = || corrupt("session", &self.id);
        Ok(Session {
            id: SessionId::parse(&self.id).ok_or_else(bad)?,
            organization_id: OrgId::parse(&self.organization_id).ok_or_else(bad)?,
            status: SessionStatus::parse(&self.status).ok_or_else(bad)?,
            me: self.me_id.map(|id| Me { id }),
            name: self.name,
            engine_session: self.engine_session,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// An active webhook read to write deliveries for: the row, its sealed secret and the sealed
/// secrets still in a rotation's grace.
pub(crate) type ActiveWebhookRow = (WebhookRow, Option<String>, Option<String>);

/// What a read of active webhooks selects ([`ActiveWebhookRow`]).
pub(crate) type ActiveWebhookColumns<DB> = (
    diesel::dsl::AsSelect<WebhookRow, DB>,
    webhooks::secret_sealed,
    webhooks::previous_secrets,
);

fn active_webhook_columns<DB: diesel::backend::Backend>() -> ActiveWebhookColumns<DB> {
    (
        WebhookRow::as_select(),
        webhooks::secret_sealed,
        webhooks::previous_secrets,
    )
}

/// The query for the active webhooks of `orgs` ([`ActiveWebhookRow`]s), which each backend
/// runs (Postgres also locks what it reads).
pub(crate) type ActiveWebhooks<DB> = diesel::dsl::Select<
    diesel::dsl::Filter<
        diesel::dsl::Filter<
            webhooks::table,
            diesel::dsl::EqAny<webhooks::organization_id, Vec<String>>,
        >,
        diesel::dsl::Eq<webhooks::active, bool>,
    >,
    ActiveWebhookColumns<DB>,
>;

/// See [`ActiveWebhooks`].
pub(crate) fn active_webhooks<DB: diesel::backend::Backend>(orgs: &[&OrgId]) -> ActiveWebhooks<DB> {
    let orgs: Vec<String> = orgs.iter().map(|o| o.as_str().to_owned()).collect();
    webhooks::table
        .filter(webhooks::organization_id.eq_any(orgs))
        .filter(webhooks::active.eq(true))
        .select(active_webhook_columns())
}

/// [`ActiveWebhooks`] of one organization, with the organization as a plain parameter rather
/// than an array (see the Postgres backend's `active_webhooks` for why that matters).
pub(crate) type ActiveWebhooksOfOne<DB> = diesel::dsl::Select<
    diesel::dsl::Filter<
        diesel::dsl::Filter<webhooks::table, diesel::dsl::Eq<webhooks::organization_id, String>>,
        diesel::dsl::Eq<webhooks::active, bool>,
    >,
    ActiveWebhookColumns<DB>,
>;

/// See [`ActiveWebhooksOfOne`].
pub(crate) fn active_webhooks_of_one<DB: diesel::backend::Backend>(
    org: &OrgId,
) -> ActiveWebhooksOfOne<DB> {
    webhooks::table
        .filter(webhooks::organization_id.eq(org.as_str().to_owned()))
        .filter(webhooks::active.eq(true))
        .select(active_webhook_columns())
}

/// A row of `webhooks` without the secret (which only the dispatcher reads).
#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = webhooks, treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct WebhookRow {
    pub id: String,
    pub organization_id: String,
    pub url: String,
    pub events: String,
    pub session_id: Option<String>,
    pub active: bool,
    pub custom_headers: String,
    pub retry_policy: String,
    pub retry_delay_seconds: i32,
    pub retry_attempts: i32,
    pub created_at: i64,
    pub updated_at: i64,
    pub signing: String,
    /// Written only with the secrets themselves (rotation, removal), never by a plain update.
    #[diesel(skip_update)]
    pub previous_valid_until: Option<i64>,
    pub disabled_reason: Option<String>,
    pub rate_limit: Option<i32>,
    /// Health is written by the dispatcher's completions (and cleared on reactivation), never
    /// by a plain update, which could put back a stale streak.
    #[diesel(skip_update)]
    pub consecutive_failures: i32,
    #[diesel(skip_update)]
    pub failing_since: Option<i64>,
    #[diesel(skip_update)]
    pub last_success_at: Option<i64>,
    #[diesel(skip_update)]
    pub paused_until: Option<i64>,
    #[diesel(skip_update)]
    pub cooldown_ms: Option<i64>,
}

/// The health columns of a webhook row, as completions read and write them.
#[derive(Queryable, Selectable)]
#[diesel(table_name = webhooks)]
pub struct HealthRow {
    pub id: String,
    pub organization_id: String,
    pub active: bool,
    pub consecutive_failures: i32,
    pub failing_since: Option<i64>,
    pub last_success_at: Option<i64>,
    pub paused_until: Option<i64>,
    pub cooldown_ms: Option<i64>,
}

impl HealthRow {
    pub fn health(&self) -> herald_domain::health::Health {
        herald_domain::health::Health {
            consecutive_failures: u32::try_from(self.consecutive_failures).unwrap_or(0),
            failing_since: self.failing_since,
            last_success_at: self.last_success_at,
            paused_until: self.paused_until,
            cooldown_ms: self.cooldown_ms,
        }
    }
}

impl WebhookRow {
    pub fn new(w: &Webhook) -> Self {
        Self {
            id: w.id.to_string(),
            organization_id: w.organization_id.to_string(),
            url: w.url.as_str().to_owned(),
            events: serde_json::to_string(&w.events).expect("a filter serializes"),
            session_id: w.session_id.map(|s| s.to_string()),
            active: w.active,
            custom_headers: serde_json::to_string(&w.custom_headers).expect("headers serialize"),
            retry_policy: w.retry_policy.policy().as_str().to_owned(),
            retry_delay_seconds: w.retry_policy.delay_seconds() as i32,
            retry_attempts: w.retry_policy.attempts() as i32,
            created_at: w.created_at,
            updated_at: w.updated_at,
            signing: w.signing.as_str().to_owned(),
            previous_valid_until: w.previous_secrets_valid_until,
            disabled_reason: w.disabled_reason.map(|r| r.as_str().to_owned()),
            rate_limit: w.rate_limit.map(|n| n as i32),
            consecutive_failures: w.health.consecutive_failures as i32,
            failing_since: w.health.failing_since,
            last_success_at: w.health.last_success_at,
            paused_until: w.health.paused_until,
            cooldown_ms: w.health.cooldown_ms,
        }
    }

    pub fn into_domain(self) -> Result<Webhook, StoreError> {
        let bad = || corrupt("webhook", &self.id);
        let events: Vec<String> = serde_json::from_str(&self.events).map_err(|_| bad())?;
        let headers: std::collections::BTreeMap<String, String> =
            serde_json::from_str(&self.custom_headers).map_err(|_| bad())?;
        let policy = RetryPolicy::new(
            Backoff::parse(&self.retry_policy).ok_or_else(bad)?,
            u32::try_from(self.retry_delay_seconds).map_err(|_| bad())?,
            u32::try_from(self.retry_attempts).map_err(|_| bad())?,
        )
        .map_err(|_| bad())?;
        Ok(Webhook {
            id: WebhookId::parse(&self.id).ok_or_else(bad)?,
            organization_id: OrgId::parse(&self.organization_id).ok_or_else(bad)?,
            url: WebhookUrl::parse(&self.url).map_err(|_| bad())?,
            events: EventFilter::parse(&events).map_err(|_| bad())?,
            session_id: match &self.session_id {
                None => None,
                Some(s) => Some(SessionId::parse(s).ok_or_else(bad)?),
            },
            active: self.active,
            custom_headers: CustomHeaders::parse(headers.into_iter().collect())
                .map_err(|_| bad())?,
            retry_policy: policy,
            signing: SigningScheme::parse(&self.signing).ok_or_else(bad)?,
            previous_secrets_valid_until: self.previous_valid_until,
            disabled_reason: match &self.disabled_reason {
                None => None,
                Some(r) => Some(herald_domain::health::DisabledReason::parse(r).ok_or_else(bad)?),
            },
            rate_limit: match self.rate_limit {
                None => None,
                Some(n) => Some(u32::try_from(n).map_err(|_| bad())?),
            },
            health: herald_domain::health::Health {
                consecutive_failures: u32::try_from(self.consecutive_failures)
                    .map_err(|_| bad())?,
                failing_since: self.failing_since,
                last_success_at: self.last_success_at,
                paused_until: self.paused_until,
                cooldown_ms: self.cooldown_ms,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A new row of `events` (`seq` and `tx_id` come from the database).
#[derive(Insertable)]
#[diesel(table_name = events, treat_none_as_default_value = false)]
pub struct NewEventRow {
    pub id: String,
    pub organization_id: String,
    pub session_id: Option<String>,
    pub event_type: String,
    pub created_at: i64,
    pub envelope: String,
    pub logged: bool,
}

impl NewEventRow {
    pub fn new(e: &Envelope) -> Self {
        Self {
            id: e.id.to_string(),
            organization_id: e.organization_id.to_string(),
            session_id: e.session.map(|s| s.to_string()),
            event_type: e.event.as_str().to_owned(),
            created_at: e.timestamp,
            envelope: e.to_json(),
            logged: e.event.is_logged(),
        }
    }
}

/// A new row of `deliveries`: pending, due now (or when its webhook's breaker lets it), leased
/// when it is handed straight to a local dispatcher.
#[derive(Insertable)]
#[diesel(table_name = deliveries, treat_none_as_default_value = false)]
pub struct NewDeliveryRow {
    pub id: String,
    pub organization_id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<i64>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl NewDeliveryRow {
    pub fn pending(id: String, webhook: &Webhook, event: &Envelope, now: i64) -> Self {
        Self {
            id,
            organization_id: webhook.organization_id.to_string(),
            webhook_id: webhook.id.to_string(),
            event_id: event.id.to_string(),
            event_type: event.event.as_str().to_owned(),
            status: "pending".to_owned(),
            attempts: 0,
            next_attempt_at: Some(webhook.first_attempt_at(now)),
            lease_owner: None,
            lease_until: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Reads the stored list of secrets in grace: `None` when it is corrupt.
pub fn previous_secrets(stored: Option<&str>) -> Option<Vec<herald_domain::ports::PreviousSecret>> {
    match stored {
        None => Some(Vec::new()),
        Some(text) => serde_json::from_str(text).ok(),
    }
}
