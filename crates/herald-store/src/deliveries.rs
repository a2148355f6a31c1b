//! The delivery queue on both backends: row types for deliveries, attempts and claims, and the
//! [`DeliveryQueue`](herald_domain::ports::DeliveryQueue) and
//! [`DeliveryViews`](herald_domain::ports::DeliveryViews) bodies written once as
//! [`delivery_store_impl!`], instantiated beside `store_impl!` in `pg.rs` and `sqlite.rs`.
//!
//! Invariants this module keeps:
//! - a claim leases rows (`lease_owner`, `lease_until`); only the holder may write an outcome,
//!   and writing it clears the lease in the same statement, so a stale holder (whose lease
//!   lapsed and was re-claimed) can never overwrite a newer attempt;
//! - the two claim queues (`attempts = 0` and `attempts > 0`) are filtered with literal SQL so
//!   the partial indexes `deliveries_due_fresh` / `deliveries_due_retry` apply;
//! - the claim (`FOR UPDATE SKIP LOCKED` on Postgres) and the batched completion are the
//!   backend-specific queries, in the `backend` modules.

use crate::schema::*;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use herald_domain::delivery::{
    AttemptError, AttemptRecord, ClaimedDelivery, Delivery, DeliveryStatus, Lane,
};
use herald_domain::event::EventType;
use herald_domain::ports::SealedSecret;
use herald_domain::retry::{Backoff, RetryPolicy};
use herald_domain::webhook::{CustomHeaders, WebhookUrl};
use herald_domain::{DeliveryId, EventId, StoreError, WebhookId};

fn corrupt(what: &str, id: &str) -> StoreError {
    StoreError::new(format!("stored {what} {id} cannot be read back"))
}

/// The SQL condition selecting a lane's pending rows, literal so partial indexes match.
pub(crate) fn lane_condition(lane: Lane) -> &'static str {
    match lane {
        Lane::Fresh => "status = 'pending' AND attempts = 0",
        Lane::Retry => "status = 'pending' AND attempts > 0",
    }
}

/// A row of `deliveries` as listed.
#[derive(Queryable, Selectable)]
#[diesel(table_name = deliveries)]
pub struct DeliveryRow {
    pub id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl DeliveryRow {
    pub fn into_domain(self) -> Result<Delivery, StoreError> {
        let bad = || corrupt("delivery", &self.id);
        Ok(Delivery {
            id: DeliveryId::parse(&self.id).ok_or_else(bad)?,
            webhook_id: WebhookId::parse(&self.webhook_id).ok_or_else(bad)?,
            event_id: EventId::parse(&self.event_id).ok_or_else(bad)?,
            event: EventType::parse(&self.event_type).ok_or_else(bad)?,
            status: DeliveryStatus::parse(&self.status).ok_or_else(bad)?,
            attempts: u32::try_from(self.attempts).map_err(|_| bad())?,
            next_attempt_at: self.next_attempt_at,
            last_attempt_at: self.last_attempt_at,
            last_status_code: status_code(self.last_status_code).ok_or_else(bad)?,
            last_error: error_class(self.last_error.as_deref()).ok_or_else(bad)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A stored HTTP status read back: `Some(None)` when none was stored, `None` when it is corrupt.
fn status_code(stored: Option<i32>) -> Option<Option<u16>> {
    stored.map_or(Some(None), |code| u16::try_from(code).ok().map(Some))
}

/// A stored error class read back: `Some(None)` when none was stored, `None` when it is corrupt.
fn error_class(stored: Option<&str>) -> Option<Option<AttemptError>> {
    stored.map_or(Some(None), |text| AttemptError::parse(text).map(Some))
}

/// A row of `delivery_attempts`.
#[derive(Queryable, Selectable)]
#[diesel(table_name = delivery_attempts)]
pub struct AttemptRow {
    pub delivery_id: String,
    pub attempt: i32,
    pub started_at: i64,
    pub duration_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub response_body: String,
}

impl AttemptRow {
    pub fn into_domain(self) -> Result<AttemptRecord, StoreError> {
        let bad = || corrupt("attempt of", &self.delivery_id);
        Ok(AttemptRecord {
            attempt: u32::try_from(self.attempt).map_err(|_| bad())?,
            started_at: self.started_at,
            duration_ms: self.duration_ms,
            status_code: status_code(self.status_code).ok_or_else(bad)?,
            error: error_class(self.error.as_deref()).ok_or_else(bad)?,
            response_body: self.response_body,
        })
    }
}

/// A claimed delivery joined with its webhook and event, as the claim queries return it.
#[derive(QueryableByName)]
pub struct ClaimRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub webhook_id: String,
    #[diesel(sql_type = Text)]
    pub event_id: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Integer)]
    pub budget_base: i32,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub lease_until: Option<i64>,
    #[diesel(sql_type = Text)]
    pub url: String,
    #[diesel(sql_type = Text)]
    pub custom_headers: String,
    #[diesel(sql_type = Text)]
    pub retry_policy: String,
    #[diesel(sql_type = Integer)]
    pub retry_delay_seconds: i32,
    #[diesel(sql_type = Integer)]
    pub retry_attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub secret_sealed: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub envelope: Option<String>,
    #[diesel(sql_type = Text)]
    pub signing: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub previous_secrets: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub rate_limit: Option<i32>,
}

/// Rows the retention sweep deletes per statement (see `prune_deliveries`).
pub(crate) const PRUNE_CHUNK: i64 = 1000;

/// The columns a claim returns, in [`ClaimRow`]'s names; `d`, `w`, `e` alias deliveries,
/// webhooks and events.
pub(crate) const CLAIM_COLUMNS: &str = "d.id AS id, d.webhook_id AS webhook_id, \
     d.event_id AS event_id, d.attempts AS attempts, d.budget_base AS budget_base, \
     d.lease_until AS lease_until, w.url AS url, w.custom_headers AS custom_headers, \
     w.retry_policy AS retry_policy, w.retry_delay_seconds AS retry_delay_seconds, \
     w.retry_attempts AS retry_attempts, w.secret_sealed AS secret_sealed, \
     e.envelope AS envelope, w.signing AS signing, w.previous_secrets AS previous_secrets, \
     w.rate_limit AS rate_limit";

impl ClaimRow {
    /// The claimed delivery; `None` when the event is gone (it cannot be sent).
    pub fn into_domain(self) -> Result<ClaimedDelivery, StoreError> {
        let bad = || corrupt("delivery", &self.id);
        let headers: std::collections::BTreeMap<String, String> =
            serde_json::from_str(&self.custom_headers).map_err(|_| bad())?;
        let attempts = u32::try_from(self.attempts).map_err(|_| bad())?;
        Ok(ClaimedDelivery {
            id: DeliveryId::parse(&self.id).ok_or_else(bad)?,
            webhook_id: WebhookId::parse(&self.webhook_id).ok_or_else(bad)?,
            event_id: EventId::parse(&self.event_id).ok_or_else(bad)?,
            attempt: attempts + 1,
            budget_base: u32::try_from(self.budget_base).map_err(|_| bad())?,
            url: WebhookUrl::parse(&self.url).map_err(|_| bad())?,
            custom_headers: CustomHeaders::parse(headers.into_iter().collect())
                .map_err(|_| bad())?,
            retry_policy: RetryPolicy::new(
                Backoff::parse(&self.retry_policy).ok_or_else(bad)?,
                u32::try_from(self.retry_delay_seconds).map_err(|_| bad())?,
                u32::try_from(self.retry_attempts).map_err(|_| bad())?,
            )
            .map_err(|_| bad())?,
            secret: self.secret_sealed.map(SealedSecret),
            previous_secrets: crate::rows::previous_secrets(self.previous_secrets.as_deref())
                .ok_or_else(bad)?,
            signing: herald_domain::webhook::SigningScheme::parse(&self.signing).ok_or_else(bad)?,
            rate_limit: match self.rate_limit {
                None => None,
                Some(n) => Some(u32::try_from(n).map_err(|_| bad())?),
            },
            envelope: self.envelope.unwrap_or_default(),
            lease_until: self.lease_until.unwrap_or(0),
        })
    }
}

/// The claim of a delivery being written leased to the local dispatcher, built from what the
/// writing transaction already holds (the webhook, its sealed secrets, the envelope) instead
/// of read back by a claim query. `None` when a stored value cannot be read (the delivery is
/// then left for an ordinary claim, which reports it).
pub(crate) fn direct_claim(
    row: &crate::rows::NewDeliveryRow,
    webhook: &herald_domain::webhook::Webhook,
    secret: Option<&str>,
    previous_secrets: Option<&str>,
    envelope: &str,
    lease_until: i64,
) -> Option<ClaimedDelivery> {
    Some(ClaimedDelivery {
        id: DeliveryId::parse(&row.id)?,
        webhook_id: webhook.id,
        event_id: EventId::parse(&row.event_id)?,
        attempt: 1,
        budget_base: 0,
        url: webhook.url.clone(),
        custom_headers: webhook.custom_headers.clone(),
        retry_policy: webhook.retry_policy,
        secret: secret.map(|s| SealedSecret(s.to_owned())),
        previous_secrets: crate::rows::previous_secrets(previous_secrets)?,
        signing: webhook.signing,
        rate_limit: webhook.rate_limit,
        envelope: envelope.to_owned(),
        lease_until,
    })
}

/// One outcome flattened into columns, as both backends' completion queries bind them.
pub(crate) struct OutcomeColumns {
    pub id: String,
    pub attempt: i32,
    pub status: String,
    pub next_at: Option<i64>,
    pub started_at: i64,
    pub duration_ms: i64,
    pub code: Option<i32>,
    pub error: Option<String>,
    pub body: String,
}

impl OutcomeColumns {
    pub fn new(outcome: &herald_domain::delivery::AttemptOutcome) -> Self {
        let r = &outcome.record;
        Self {
            id: outcome.delivery_id.to_string(),
            attempt: r.attempt as i32,
            status: outcome.settlement.status().as_str().to_owned(),
            next_at: outcome.settlement.next_attempt_at(),
            started_at: r.started_at,
            duration_ms: r.duration_ms,
            code: r.status_code.map(i32::from),
            error: r.error.map(|e| e.as_str().to_owned()),
            body: r.response_body.clone(),
        }
    }
}

/// The change that makes a delivery due again at `now` with a renewed attempt budget (a manual
/// retry or a recovery): pending, budget counted from the attempts made so far, no lease.
macro_rules! requeued_now {
    ($now:expr) => {
        (
            deliveries::status.eq(DeliveryStatus::Pending.as_str()),
            deliveries::budget_base.eq(deliveries::attempts),
            deliveries::next_attempt_at.eq(Some($now)),
            deliveries::lease_owner.eq(None::<String>),
            deliveries::lease_until.eq(None::<i64>),
            deliveries::updated_at.eq($now),
        )
    };
}
pub(crate) use requeued_now;

/// Implements `DeliveryQueue` and `DeliveryViews` for `$store` over `$conn`; `$backend` holds
/// the claim and completion queries that differ per database.
macro_rules! delivery_store_impl {
    ($store:ty, $conn:ty, $backend:ident) => {
        use crate::db_error;
        use crate::deliveries::{lane_condition, AttemptRow, DeliveryRow};
        use crate::rows::{NewDeliveryRow, NewEventRow};
        use crate::schema::*;
        use async_trait::async_trait;
        use diesel::dsl::sql;
        use diesel::prelude::*;
        use diesel::sql_types::Bool;
        use diesel_async::{AsyncConnection, RunQueryDsl};
        use herald_domain::delivery::*;
        use herald_domain::event::Envelope;
        use herald_domain::ports::*;
        use herald_domain::webhook::Webhook;
        use herald_domain::{DeliveryId, Millis, OrgId, WebhookId};

        /// What a batch of outcomes did beyond the deliveries themselves.
        struct HealthEffects {
            webhooks_changed: bool,
            events_appended: bool,
        }

        /// Applies the outcomes to their webhooks' health (see `Health::after`), inside the
        /// completion's transaction: disables (cancelling pending deliveries), holds a paused
        /// webhook's deliveries behind one probe due when the cool-down ends, releases them when
        /// the breaker closes, and appends the operational events — `delivery.failed` for each
        /// dead letter too. A success that changes nothing but `lastSuccessAt` by less than a
        /// second writes nothing, so a healthy endpoint costs one read per batch.
        async fn apply_health(
            conn: &mut $conn,
            outcomes: &[AttemptOutcome],
            policy: &herald_domain::health::HealthPolicy,
            now: Millis,
            handover: &mut crate::direct::Handover,
        ) -> diesel::QueryResult<HealthEffects> {
            use crate::rows::HealthRow;
            use herald_domain::health;
            let mut ids: Vec<String> = outcomes.iter().map(|o| o.webhook_id.to_string()).collect();
            ids.sort();
            ids.dedup();
            let rows: Vec<HealthRow> = webhooks::table
                .filter(webhooks::id.eq_any(&ids))
                .select(HealthRow::as_select())
                .load(conn)
                .await?;
            // A dead letter of an operational event is not announced: two failing webhooks
            // would otherwise tell each other about each other's failures forever.
            let dead: Vec<String> = outcomes
                .iter()
                .filter(|o| o.settlement == Settlement::Failed)
                .map(|o| o.delivery_id.to_string())
                .collect();
            let quiet: Vec<String> = if dead.is_empty() {
                Vec::new()
            } else {
                deliveries::table
                    .filter(deliveries::id.eq_any(&dead))
                    .select((deliveries::id, deliveries::event_type))
                    .load::<(String, String)>(conn)
                    .await?
                    .into_iter()
                    .filter(|(_, t)| {
                        herald_domain::event::EventType::parse(t)
                            .is_some_and(herald_domain::event::EventType::is_operational)
                    })
                    .map(|(id, _)| id)
                    .collect()
            };
            let mut events = Vec::new();
            let mut webhooks_changed = false;
            for row in rows {
                let (Some(org), Some(id)) = (OrgId::parse(&row.organization_id), WebhookId::parse(&row.id)) else {
                    continue;
                };
                let before = row.health();
                let effect = health::settle_batch(
                    (&org, &id),
                    &before,
                    row.active,
                    outcomes.iter().filter(|o| o.webhook_id == id),
                    |delivery| quiet.contains(&delivery.to_string()),
                    policy,
                    now,
                );
                events.extend(effect.events.iter().cloned());
                if !effect.needs_write(&before) {
                    continue;
                }
                let health::BatchEffect { health, disabled, hold, release, .. } = effect;
                webhooks_changed = true;
                let target = webhooks::table.filter(webhooks::id.eq(&row.id));
                diesel::update(target)
                    .set((
                        webhooks::consecutive_failures.eq(health.consecutive_failures as i32),
                        webhooks::failing_since.eq(health.failing_since),
                        webhooks::last_success_at.eq(health.last_success_at),
                        webhooks::paused_until.eq(health.paused_until),
                        webhooks::cooldown_ms.eq(health.cooldown_ms),
                    ))
                    .execute(conn)
                    .await?;
                if let Some(reason) = disabled {
                    diesel::update(target)
                        .set((
                            webhooks::active.eq(false),
                            webhooks::disabled_reason.eq(Some(reason.as_str())),
                            webhooks::updated_at.eq(now),
                        ))
                        .execute(conn)
                        .await?;
                    super::queries::cancel_pending(conn, &row.id, now).await?;
                    continue;
                }
                let pending = || {
                    deliveries::table
                        .filter(deliveries::webhook_id.eq(&row.id))
                        .filter(sql::<Bool>("status = 'pending'"))
                };
                if let Some(until) = hold {
                    // Everything waits past the probe; then the earliest is the probe.
                    let held = until + policy.hold_margin_ms();
                    diesel::update(pending().filter(deliveries::next_attempt_at.lt(held)))
                        .set(deliveries::next_attempt_at.eq(Some(held)))
                        .execute(conn)
                        .await?;
                    let probe: Option<String> = pending()
                        .filter(deliveries::lease_owner.is_null())
                        .order((deliveries::next_attempt_at.asc(), deliveries::id.asc()))
                        .select(deliveries::id)
                        .first(conn)
                        .await
                        .optional()?;
                    if let Some(probe) = probe {
                        diesel::update(deliveries::table.filter(deliveries::id.eq(probe)))
                            .set(deliveries::next_attempt_at.eq(Some(until)))
                            .execute(conn)
                            .await?;
                    }
                }
                if release {
                    diesel::update(pending().filter(deliveries::next_attempt_at.gt(now)))
                        .set(deliveries::next_attempt_at.eq(Some(now)))
                        .execute(conn)
                        .await?;
                }
            }
            let events_appended = !events.is_empty();
            super::queries::append_in_tx(conn, &events, handover).await?;
            Ok(HealthEffects {
                webhooks_changed,
                events_appended,
            })
        }

        impl $store {
            /// Claims for either port method: `webhooks` are left out, or (`only`) the only
            /// ones taken.
            async fn claim_filtered(
                &self,
                lane: Lane,
                lease: &Lease,
                now: Millis,
                limit: usize,
                webhooks: &[WebhookId],
                only: bool,
            ) -> StoreResult<Vec<ClaimedDelivery>> {
                if limit == 0 {
                    return Ok(Vec::new());
                }
                let mut conn = self.writer().await?;
                let webhooks: Vec<String> = webhooks.iter().map(|w| w.to_string()).collect();
                let rows =
                    $backend::claim(&mut conn, lane, lease, now, limit as i64, &webhooks, only)
                        .await
                        .map_err(db_error)?;
                let mut claimed = Vec::with_capacity(rows.len());
                for row in rows {
                    match row.into_domain() {
                        Ok(c) => claimed.push(c),
                        // A row that cannot be read must not be retried forever under our
                        // lease; it lapses and the error is logged for the operator.
                        Err(error) => tracing::error!(%error, "unreadable claimed delivery"),
                    }
                }
                Ok(claimed)
            }
        }

        #[async_trait]
        impl DeliveryQueue for $store {
            async fn claim_deliveries(
                &self,
                lane: Lane,
                lease: &Lease,
                now: Millis,
                limit: usize,
                excluded: &[WebhookId],
            ) -> StoreResult<Vec<ClaimedDelivery>> {
                self.claim_filtered(lane, lease, now, limit, excluded, false).await
            }

            async fn claim_deliveries_of(
                &self,
                lane: Lane,
                lease: &Lease,
                now: Millis,
                limit: usize,
                only: &[WebhookId],
            ) -> StoreResult<Vec<ClaimedDelivery>> {
                if only.is_empty() {
                    return Ok(Vec::new());
                }
                self.claim_filtered(lane, lease, now, limit, only, true).await
            }

            async fn complete_attempts(
                &self,
                owner: &str,
                outcomes: &[AttemptOutcome],
                policy: &herald_domain::health::HealthPolicy,
                now: Millis,
            ) -> StoreResult<usize> {
                if outcomes.is_empty() {
                    return Ok(0);
                }
                let mut conn = self.writer().await?;
                let mut handover = crate::direct::Handover::new(self.direct_slot());
                let (written, effects) = conn
                    .transaction::<_, diesel::result::Error, _>(async |conn| {
                        $backend::begin_completion(conn).await?;
                        let written = $backend::complete(conn, owner, outcomes, now).await?;
                        let effects =
                            apply_health(conn, outcomes, policy, now, &mut handover).await?;
                        Ok((written, effects))
                    })
                    .await
                    .map_err(db_error)?;
                if effects.webhooks_changed {
                    self.webhook_cache().invalidate();
                }
                if effects.events_appended {
                    self.committed(handover);
                }
                Ok(written)
            }

            async fn take_rate_slot(
                &self,
                webhook: &WebhookId,
                limit: u32,
                now: Millis,
            ) -> StoreResult<bool> {
                let mut conn = self.writer().await?;
                let second = now.div_euclid(1000);
                let taken = diesel::update(
                    webhooks::table
                        .filter(webhooks::id.eq(webhook.to_string()))
                        .filter(
                            webhooks::rate_window
                                .is_null()
                                .or(webhooks::rate_window.ne(second))
                                .or(webhooks::rate_used.lt(limit as i32)),
                        ),
                )
                .set((
                    webhooks::rate_used.eq(diesel::dsl::sql::<diesel::sql_types::Integer>(&format!(
                        "CASE WHEN rate_window = {second} THEN rate_used + 1 ELSE 1 END"
                    ))),
                    webhooks::rate_window.eq(Some(second)),
                ))
                .execute(&mut conn)
                .await
                .map_err(db_error)?;
                Ok(taken > 0)
            }

            async fn defer_delivery(
                &self,
                owner: &str,
                id: &DeliveryId,
                until: Millis,
            ) -> StoreResult<bool> {
                let mut conn = self.writer().await?;
                let n = diesel::update(
                    deliveries::table
                        .filter(deliveries::id.eq(id.to_string()))
                        .filter(deliveries::lease_owner.eq(owner.to_owned())),
                )
                .set((
                    deliveries::next_attempt_at.eq(Some(until)),
                    deliveries::lease_owner.eq(None::<String>),
                    deliveries::lease_until.eq(None::<i64>),
                ))
                .execute(&mut conn)
                .await
                .map_err(db_error)?;
                Ok(n > 0)
            }

            async fn release_leases(&self, owner: &str, ids: &[DeliveryId]) -> StoreResult<usize> {
                let mut conn = self.writer().await?;
                let mut query = diesel::update(deliveries::table)
                    .filter(deliveries::lease_owner.eq(owner.to_owned()))
                    .into_boxed();
                if !ids.is_empty() {
                    let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
                    query = query.filter(deliveries::id.eq_any(ids));
                }
                query
                    .set((
                        deliveries::lease_owner.eq(None::<String>),
                        deliveries::lease_until.eq(None::<i64>),
                    ))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)
            }

            async fn release_all_leases(&self) -> StoreResult<usize> {
                let mut conn = self.writer().await?;
                diesel::update(deliveries::table)
                    .filter(deliveries::lease_owner.is_not_null())
                    .set((
                        deliveries::lease_owner.eq(None::<String>),
                        deliveries::lease_until.eq(None::<i64>),
                    ))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)
            }

            fn attach_direct_dispatch(
                &self,
                dispatch: std::sync::Arc<dyn herald_domain::ports::DirectDispatch>,
            ) {
                // The first dispatcher attached keeps the deliveries; there is one per process.
                let _ = self.direct_slot().set(dispatch);
            }

            async fn next_claimable_at(
                &self,
                lane: Lane,
                now: Millis,
            ) -> StoreResult<Option<Millis>> {
                let mut conn = self.reader().await?;
                let due: Option<Option<i64>> = deliveries::table
                    .filter(sql::<Bool>(lane_condition(lane)))
                    .filter(
                        deliveries::lease_until
                            .is_null()
                            .or(deliveries::lease_until.lt(now)),
                    )
                    .order(deliveries::next_attempt_at.asc())
                    .select(deliveries::next_attempt_at)
                    .first(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                Ok(due.flatten())
            }

            async fn delivery_backlog(&self, now: Millis) -> StoreResult<Backlog> {
                let mut conn = self.reader().await?;
                // Counted on `deliveries_pending_by_webhook` (its condition is exactly this).
                let pending: i64 = deliveries::table
                    .filter(sql::<Bool>("status = 'pending'"))
                    .count()
                    .get_result(&mut conn)
                    .await
                    .map_err(db_error)?;
                // The oldest due lane by lane: each minimum is the first entry of its lane's
                // own index, where one over all pending deliveries would read them all.
                let mut oldest = None;
                for lane in [Lane::Fresh, Lane::Retry] {
                    let due: Option<i64> = deliveries::table
                        .filter(sql::<Bool>(lane_condition(lane)))
                        .filter(deliveries::next_attempt_at.le(now))
                        .select(diesel::dsl::min(deliveries::next_attempt_at))
                        .first(&mut conn)
                        .await
                        .map_err(db_error)?;
                    oldest = oldest.into_iter().chain(due).min();
                }
                Ok(Backlog {
                    pending: pending.max(0) as u64,
                    oldest_due_age_ms: oldest.map_or(0, |at| (now - at).max(0)),
                })
            }

            async fn prune_deliveries(&self, before: Millis) -> StoreResult<Pruned> {
                let mut conn = self.writer().await?;
                // Secrets whose rotation grace has wholly ended are erased here too (a list
                // only partly expired is trimmed at the webhook's next rotation or update).
                let erased = diesel::update(
                    webhooks::table.filter(webhooks::previous_valid_until.le(crate::now_ms())),
                )
                .set((
                    webhooks::previous_secrets.eq(None::<String>),
                    webhooks::previous_valid_until.eq(None::<i64>),
                ))
                .execute(&mut conn)
                .await
                .map_err(db_error)?;
                if erased > 0 {
                    self.webhook_cache().invalidate();
                }
                drop(conn);
                let deliveries_removed = self
                    .delete_in_chunks(async move |conn| {
                        let inner = diesel::alias!(deliveries as inner);
                        let chunk = inner
                            // Spelled out, not bound: only a literal lets a prepared plan
                            // use the index of settled deliveries (Postgres).
                            .filter(sql::<Bool>("status <> 'pending'"))
                            .filter(inner.field(deliveries::created_at).lt(before))
                            .select(inner.field(deliveries::id))
                            .limit(crate::deliveries::PRUNE_CHUNK);
                        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                            let gone: Vec<String> = diesel::delete(
                                deliveries::table.filter(deliveries::id.eq_any(chunk)),
                            )
                            .returning(deliveries::id)
                            .load(conn)
                            .await?;
                            // On Postgres nothing in the schema ties an attempt to its
                            // delivery (a foreign key cost a lookup per attempt written). This
                            // statement comes after the deletion, which waited for any
                            // completion still writing an attempt of these, so it sees it.
                            diesel::delete(
                                delivery_attempts::table
                                    .filter(delivery_attempts::delivery_id.eq_any(&gone)),
                            )
                            .execute(conn)
                            .await?;
                            Ok(gone.len())
                        })
                        .await
                    })
                    .await?;
                let events_removed = self
                    .delete_in_chunks(async move |conn| {
                        let still_needed = deliveries::table
                            .filter(sql::<Bool>("status = 'pending'"))
                            .select(deliveries::event_id);
                        let inner = diesel::alias!(events as inner);
                        let chunk = inner
                            .filter(inner.field(events::created_at).lt(before))
                            .filter(diesel::dsl::not(
                                inner.field(events::id).eq_any(still_needed),
                            ))
                            .select(inner.field(events::id))
                            .limit(crate::deliveries::PRUNE_CHUNK);
                        diesel::delete(events::table.filter(events::id.eq_any(chunk)))
                            .execute(conn)
                            .await
                    })
                    .await?;
                Ok(Pruned {
                    deliveries: deliveries_removed as u64,
                    events: events_removed as u64,
                })
            }
        }

        #[async_trait]
        impl DeliveryViews for $store {
            async fn list_deliveries(
                &self,
                org: &OrgId,
                webhook: Option<&WebhookId>,
                q: &herald_domain::deliveries::DeliveryQuery,
            ) -> StoreResult<DeliveryPage> {
                let mut conn = self.reader().await?;
                let mut query = deliveries::table
                    .filter(deliveries::organization_id.eq(org.as_str().to_owned()))
                    .into_boxed();
                if let Some(webhook) = webhook {
                    query = query.filter(deliveries::webhook_id.eq(webhook.to_string()));
                }
                if let Some(status) = q.status {
                    query = query.filter(deliveries::status.eq(status.as_str()));
                }
                if let Some(event) = q.event {
                    query = query.filter(deliveries::event_type.eq(event.as_str()));
                }
                if let Some(since) = q.since {
                    query = query.filter(deliveries::created_at.ge(since));
                }
                if let Some(until) = q.until {
                    query = query.filter(deliveries::created_at.le(until));
                }
                if let Some(cursor) = &q.cursor {
                    query = query.filter(deliveries::id.lt(cursor.to_string()));
                }
                let limit = q.limit;
                let rows: Vec<DeliveryRow> = query
                    .order(deliveries::id.desc())
                    .limit(limit as i64 + 1)
                    .select(DeliveryRow::as_select())
                    .load(&mut conn)
                    .await
                    .map_err(db_error)?;
                let more = rows.len() > limit;
                let data = rows
                    .into_iter()
                    .take(limit)
                    .map(DeliveryRow::into_domain)
                    .collect::<Result<Vec<_>, _>>()?;
                let next_cursor = if more { data.last().map(|d| d.id) } else { None };
                Ok(DeliveryPage { data, next_cursor })
            }

            async fn attempt_tally(
                &self,
                org: &OrgId,
                webhook: &WebhookId,
                since: Millis,
            ) -> StoreResult<herald_domain::deliveries::AttemptTally> {
                use herald_domain::deliveries::{nearest_rank, AttemptTally, LATENCY_PERCENTILES};
                let mut conn = self.reader().await?;
                // Every delivery with an attempt in the window was attempted last within it.
                let in_window = || {
                    delivery_attempts::table
                        .filter(
                            delivery_attempts::delivery_id.eq_any(
                                deliveries::table
                                    .filter(deliveries::organization_id.eq(org.as_str().to_owned()))
                                    .filter(deliveries::webhook_id.eq(webhook.to_string()))
                                    .filter(deliveries::last_attempt_at.ge(since))
                                    .select(deliveries::id),
                            ),
                        )
                        .filter(delivery_attempts::started_at.ge(since))
                };
                let groups: Vec<(Option<i32>, Option<String>, i64)> = in_window()
                    .group_by((delivery_attempts::status_code, delivery_attempts::error))
                    .select((
                        delivery_attempts::status_code,
                        delivery_attempts::error,
                        diesel::dsl::count_star(),
                    ))
                    .load(&mut conn)
                    .await
                    .map_err(db_error)?;
                let mut tally = AttemptTally::default();
                for (code, error, n) in groups {
                    let n = n.max(0) as u64;
                    let code = code.and_then(|c| u16::try_from(c).ok());
                    if error.is_none() && code.is_some_and(|c| (200..300).contains(&c)) {
                        tally.succeeded += n;
                    } else {
                        tally.failed += n;
                    }
                    if let Some(code) = code {
                        *tally.by_status_code.entry(code).or_default() += n;
                    }
                }
                let total = tally.succeeded + tally.failed;
                if total > 0 {
                    let mut latency = [0i64; 3];
                    for (slot, p) in latency.iter_mut().zip(LATENCY_PERCENTILES) {
                        *slot = in_window()
                            .order(delivery_attempts::duration_ms.asc())
                            .select(delivery_attempts::duration_ms)
                            .offset(nearest_rank(p, total) as i64)
                            .first(&mut conn)
                            .await
                            .map_err(db_error)?;
                    }
                    tally.latency_ms = Some(latency);
                }
                let pending: i64 = deliveries::table
                    .filter(deliveries::organization_id.eq(org.as_str().to_owned()))
                    .filter(deliveries::webhook_id.eq(webhook.to_string()))
                    .filter(sql::<Bool>("status = 'pending'"))
                    .count()
                    .get_result(&mut conn)
                    .await
                    .map_err(db_error)?;
                tally.pending = pending.max(0) as u64;
                Ok(tally)
            }

            async fn find_delivery(
                &self,
                org: &OrgId,
                webhook: &WebhookId,
                id: &DeliveryId,
            ) -> StoreResult<Option<DeliveryDetail>> {
                let mut conn = self.reader().await?;
                let row: Option<DeliveryRow> = deliveries::table
                    .filter(deliveries::organization_id.eq(org.as_str()))
                    .filter(deliveries::webhook_id.eq(webhook.to_string()))
                    .filter(deliveries::id.eq(id.to_string()))
                    .select(DeliveryRow::as_select())
                    .first(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let envelope: Option<String> = events::table
                    .filter(events::id.eq(&row.event_id))
                    .select(events::envelope)
                    .first(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                let attempts: Vec<AttemptRow> = delivery_attempts::table
                    .filter(delivery_attempts::delivery_id.eq(&row.id))
                    .order(delivery_attempts::attempt.asc())
                    .select(AttemptRow::as_select())
                    .load(&mut conn)
                    .await
                    .map_err(db_error)?;
                let delivery = row.into_domain()?;
                let envelope = match envelope {
                    None => None,
                    Some(text) => Some(serde_json::from_str(&text).map_err(|_| {
                        herald_domain::StoreError::new(format!(
                            "stored envelope of {} cannot be read back",
                            delivery.event_id
                        ))
                    })?),
                };
                Ok(Some(DeliveryDetail {
                    delivery,
                    envelope,
                    attempt_log: attempts
                        .into_iter()
                        .map(AttemptRow::into_domain)
                        .collect::<Result<Vec<_>, _>>()?,
                }))
            }

            async fn retry_delivery(
                &self,
                org: &OrgId,
                webhook: &WebhookId,
                id: &DeliveryId,
                now: Millis,
            ) -> StoreResult<RetryAnswer> {
                let mut conn = self.writer().await?;
                let (org, webhook, id) = (org.as_str().to_owned(), webhook.to_string(), id.to_string());
                conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                    let target = deliveries::table
                        .filter(deliveries::organization_id.eq(&org))
                        .filter(deliveries::webhook_id.eq(&webhook))
                        .filter(deliveries::id.eq(&id));
                    let current: Option<(String, Option<i64>)> = target
                        .select((deliveries::status, deliveries::lease_until))
                        .first(conn)
                        .await
                        .optional()?;
                    let Some((status, lease_until)) = current else {
                        return Ok(RetryAnswer::NotFound);
                    };
                    if lease_until.is_some_and(|until| until >= now) {
                        return Ok(RetryAnswer::InFlight);
                    }
                    // Only a lease that has lapsed (or none) may be taken over; the condition
                    // is repeated in the update so a claim racing this request wins cleanly.
                    let free = deliveries::lease_until
                        .is_null()
                        .or(deliveries::lease_until.lt(now));
                    let changed = if status == DeliveryStatus::Pending.as_str() {
                        diesel::update(target.filter(free))
                            .set((
                                deliveries::next_attempt_at.eq(Some(now)),
                                deliveries::lease_owner.eq(None::<String>),
                                deliveries::lease_until.eq(None::<i64>),
                                deliveries::updated_at.eq(now),
                            ))
                            .execute(conn)
                            .await?
                    } else {
                        diesel::update(target.filter(free))
                            .set(crate::deliveries::requeued_now!(now))
                            .execute(conn)
                            .await?
                    };
                    if changed == 0 {
                        return Ok(RetryAnswer::InFlight);
                    }
                    let row: DeliveryRow = target.select(DeliveryRow::as_select()).first(conn).await?;
                    $backend::after_retries_requeued(conn).await?;
                    Ok(RetryAnswer::Requeued(row.into_domain().map_err(|e| {
                        diesel::result::Error::DeserializationError(Box::new(e))
                    })?))
                })
                .await
                .map_err(db_error)
            }

            async fn recover_deliveries(
                &self,
                org: &OrgId,
                webhook: &WebhookId,
                since: Millis,
                until: Millis,
                now: Millis,
            ) -> StoreResult<u64> {
                let mut conn = self.writer().await?;
                let (org, webhook) = (org.as_str().to_owned(), webhook.to_string());
                conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                    let n = diesel::update(
                        deliveries::table
                            .filter(deliveries::organization_id.eq(&org))
                            .filter(deliveries::webhook_id.eq(&webhook))
                            .filter(deliveries::status.eq(DeliveryStatus::Failed.as_str()))
                            .filter(deliveries::created_at.ge(since))
                            .filter(deliveries::created_at.le(until)),
                    )
                    .set(crate::deliveries::requeued_now!(now))
                    .execute(conn)
                    .await?;
                    if n > 0 {
                        $backend::after_retries_requeued(conn).await?;
                    }
                    Ok(n as u64)
                })
                .await
                .map_err(db_error)
            }

            async fn insert_test_delivery(
                &self,
                webhook: &Webhook,
                event: &Envelope,
                delivery: &DeliveryId,
            ) -> StoreResult<()> {
                let mut conn = self.writer().await?;
                let event_row = NewEventRow::new(event);
                let delivery_row =
                    NewDeliveryRow::pending(delivery.to_string(), webhook, event, event.timestamp);
                $backend::insert_test_delivery(&mut conn, &event_row, &delivery_row)
                    .await
                    .map_err(db_error)?;
                // Left for a claim (the backend's statement announced it to other replicas).
                let mut handover = crate::direct::Handover::new(self.direct_slot());
                handover.left_for_claim();
                handover.committed();
                Ok(())
            }
        }

        impl $store {
            /// Runs `delete_chunk` (a `DELETE` of at most [`PRUNE_CHUNK`] rows) until it
            /// removes fewer than that, each time on a fresh checkout of the writer: one
            /// unbounded `DELETE` of a large backlog would hold the embedded store's one writer
            /// (and the runtime worker it runs on), and every API write behind it, for its
            /// whole length. Returns the rows removed.
            ///
            /// [`PRUNE_CHUNK`]: crate::deliveries::PRUNE_CHUNK
            async fn delete_in_chunks(
                &self,
                delete_chunk: impl AsyncFn(&mut $conn) -> diesel::QueryResult<usize>,
            ) -> StoreResult<usize> {
                let mut removed = 0;
                loop {
                    let mut conn = self.writer().await?;
                    let chunk = delete_chunk(&mut conn).await.map_err(db_error)?;
                    removed += chunk;
                    if chunk < crate::deliveries::PRUNE_CHUNK as usize {
                        return Ok(removed);
                    }
                }
            }
        }
    };
}

pub(crate) use delivery_store_impl;
