//! The delivery ports in memory: the dispatcher's [`DeliveryQueue`] (claims under a lease,
//! completion by the lease holder with the webhook's health, rate slots, deferral and release,
//! backlog and retention) and the API's [`DeliveryViews`] (pages, detail, tally, retry,
//! recovery, test ping), each mirroring `herald-store`'s queries.

use crate::state::{State, StoredDelivery, StoredEvent};
use crate::store::finished;
use crate::MemoryStore;
use async_trait::async_trait;
use herald_domain::deliveries::{nearest_rank, AttemptTally, DeliveryQuery, LATENCY_PERCENTILES};
use herald_domain::delivery::{
    AttemptOutcome, Backlog, ClaimedDelivery, DeliveryDetail, DeliveryPage, DeliveryStatus, Lane,
    Lease, Pruned, RetryAnswer,
};
use herald_domain::event::Envelope;
use herald_domain::health::{self, HealthPolicy};
use herald_domain::ids::{DeliveryId, OrgId, WebhookId};
use herald_domain::ports::{DeliveryQueue, DeliveryViews, StoreResult};
use herald_domain::webhook::Webhook;
use herald_domain::{Millis, StoreError};

impl State {
    /// Leases up to `limit` due, free deliveries of `lane` whose webhook `pick` accepts, the
    /// earliest due first.
    fn claim(
        &mut self,
        lane: Lane,
        lease: &Lease,
        now: Millis,
        limit: usize,
        pick: impl Fn(&WebhookId) -> bool,
    ) -> Vec<ClaimedDelivery> {
        let mut due: Vec<(Millis, DeliveryId)> = self
            .deliveries
            .values()
            .filter(|d| d.in_lane(lane) && d.free_at(now) && pick(&d.webhook_id))
            .filter_map(|d| {
                d.next_attempt_at
                    .filter(|at| *at <= now)
                    .map(|at| (at, d.id))
            })
            .collect();
        due.sort();
        due.truncate(limit);
        let mut claimed = Vec::with_capacity(due.len());
        for (_, id) in due {
            let Some(d) = self.deliveries.get_mut(&id) else {
                continue;
            };
            d.lease_owner = Some(lease.owner.clone());
            d.lease_until = Some(lease.until);
            let d = d.clone();
            let Some(hook) = self.webhooks.get(&d.webhook_id) else {
                continue;
            };
            let envelope = self
                .events
                .iter()
                .find(|e| e.envelope.id == d.event_id)
                .map(|e| e.json.clone())
                .unwrap_or_default();
            let w = &hook.webhook;
            claimed.push(ClaimedDelivery {
                id: d.id,
                webhook_id: d.webhook_id,
                event_id: d.event_id,
                attempt: d.attempts + 1,
                budget_base: d.budget_base,
                url: w.url.clone(),
                custom_headers: w.custom_headers.clone(),
                retry_policy: w.retry_policy,
                secret: hook.secrets.current.clone(),
                previous_secrets: hook.secrets.previous.clone(),
                signing: w.signing,
                rate_limit: w.rate_limit,
                envelope,
                lease_until: lease.until,
            });
        }
        claimed
    }

    /// Follows each outcome's webhook health (see `Health::after`): disables (cancelling its
    /// pending deliveries), holds a paused webhook's deliveries behind one probe, releases them
    /// when the breaker closes, and appends the operational events — `delivery.failed` for each
    /// dead letter of a non-operational event too.
    fn apply_health(&mut self, outcomes: &[AttemptOutcome], policy: &HealthPolicy, now: Millis) {
        let mut ids: Vec<WebhookId> = outcomes.iter().map(|o| o.webhook_id).collect();
        ids.sort();
        ids.dedup();
        let mut events = Vec::new();
        for id in ids {
            let Some(stored) = self.webhooks.get(&id) else {
                continue;
            };
            let org = stored.webhook.organization_id.clone();
            let deliveries = &self.deliveries;
            let effect = health::settle_batch(
                (&org, &id),
                &stored.webhook.health,
                stored.webhook.active,
                outcomes.iter().filter(|o| o.webhook_id == id),
                |delivery| {
                    deliveries
                        .get(delivery)
                        .is_some_and(|d| d.event.is_operational())
                },
                policy,
                now,
            );
            events.extend(effect.events.iter().cloned());
            let health::BatchEffect {
                health,
                disabled,
                hold,
                release,
                ..
            } = effect;
            if let Some(stored) = self.webhooks.get_mut(&id) {
                stored.webhook.health = health;
                if let Some(reason) = disabled {
                    stored.webhook.active = false;
                    stored.webhook.disabled_reason = Some(reason);
                    stored.webhook.updated_at = now;
                }
            }
            if disabled.is_some() {
                self.cancel_pending(&id, now);
                continue;
            }
            let pending =
                |d: &StoredDelivery| d.webhook_id == id && d.status == DeliveryStatus::Pending;
            if let Some(until) = hold {
                // Everything waits past the probe; then the earliest is the probe.
                let held = until + policy.hold_margin_ms();
                for d in self.deliveries.values_mut().filter(|d| pending(d)) {
                    if d.next_attempt_at.is_some_and(|at| at < held) {
                        d.next_attempt_at = Some(held);
                    }
                }
                let probe = self
                    .deliveries
                    .values()
                    .filter(|d| pending(d) && d.lease_owner.is_none())
                    .min_by_key(|d| (d.next_attempt_at, d.id))
                    .map(|d| d.id);
                if let Some(d) = probe.and_then(|p| self.deliveries.get_mut(&p)) {
                    d.next_attempt_at = Some(until);
                }
            }
            if release {
                for d in self.deliveries.values_mut().filter(|d| pending(d)) {
                    if d.next_attempt_at.is_some_and(|at| at > now) {
                        d.next_attempt_at = Some(now);
                    }
                }
            }
        }
        self.append(&events);
    }

    /// The delivery `id` of `org`'s `webhook`.
    fn delivery_of(
        &mut self,
        org: &OrgId,
        webhook: &WebhookId,
        id: &DeliveryId,
    ) -> Option<&mut StoredDelivery> {
        self.deliveries
            .get_mut(id)
            .filter(|d| &d.organization_id == org && &d.webhook_id == webhook)
    }
}

#[async_trait]
impl DeliveryQueue for MemoryStore {
    async fn claim_deliveries(
        &self,
        lane: Lane,
        lease: &Lease,
        now: Millis,
        limit: usize,
        excluded: &[WebhookId],
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        Ok(self
            .state()?
            .claim(lane, lease, now, limit, |w| !excluded.contains(w)))
    }

    async fn claim_deliveries_of(
        &self,
        lane: Lane,
        lease: &Lease,
        now: Millis,
        limit: usize,
        only: &[WebhookId],
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        Ok(self
            .state()?
            .claim(lane, lease, now, limit, |w| only.contains(w)))
    }

    async fn complete_attempts(
        &self,
        owner: &str,
        outcomes: &[AttemptOutcome],
        policy: &HealthPolicy,
        now: Millis,
    ) -> StoreResult<usize> {
        if outcomes.is_empty() {
            return Ok(0);
        }
        let mut state = self.state()?;
        let mut written = 0;
        for outcome in outcomes {
            let Some(d) = state
                .deliveries
                .get_mut(&outcome.delivery_id)
                .filter(|d| d.lease_owner.as_deref() == Some(owner))
            else {
                // No longer ours: the lease lapsed and someone else claimed it.
                continue;
            };
            if d.complete(&outcome.record, outcome.settlement, now) {
                written += 1;
            }
        }
        state.apply_health(outcomes, policy, now);
        Ok(written)
    }

    async fn take_rate_slot(
        &self,
        webhook: &WebhookId,
        limit: u32,
        now: Millis,
    ) -> StoreResult<bool> {
        let mut state = self.state()?;
        let Some(stored) = state.webhooks.get_mut(webhook) else {
            return Ok(false);
        };
        let second = now.div_euclid(1000);
        if stored.rate_window == Some(second) {
            if stored.rate_used >= limit {
                return Ok(false);
            }
            stored.rate_used += 1;
        } else {
            stored.rate_window = Some(second);
            stored.rate_used = 1;
        }
        Ok(true)
    }

    async fn defer_delivery(
        &self,
        owner: &str,
        id: &DeliveryId,
        until: Millis,
    ) -> StoreResult<bool> {
        let mut state = self.state()?;
        match state
            .deliveries
            .get_mut(id)
            .filter(|d| d.lease_owner.as_deref() == Some(owner))
        {
            Some(d) => {
                d.next_attempt_at = Some(until);
                d.clear_lease();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn release_leases(&self, owner: &str, ids: &[DeliveryId]) -> StoreResult<usize> {
        let mut state = self.state()?;
        let mut released = 0;
        for d in state.deliveries.values_mut() {
            if d.lease_owner.as_deref() == Some(owner) && (ids.is_empty() || ids.contains(&d.id)) {
                d.clear_lease();
                released += 1;
            }
        }
        Ok(released)
    }

    async fn release_all_leases(&self) -> StoreResult<usize> {
        let mut state = self.state()?;
        let mut released = 0;
        for d in state.deliveries.values_mut() {
            if d.lease_owner.is_some() {
                d.clear_lease();
                released += 1;
            }
        }
        Ok(released)
    }

    async fn next_claimable_at(&self, lane: Lane, now: Millis) -> StoreResult<Option<Millis>> {
        let state = self.state()?;
        Ok(state
            .deliveries
            .values()
            .filter(|d| d.in_lane(lane) && d.free_at(now))
            .filter_map(|d| d.next_attempt_at)
            .min())
    }

    async fn delivery_backlog(&self, now: Millis) -> StoreResult<Backlog> {
        let state = self.state()?;
        let pending = state
            .deliveries
            .values()
            .filter(|d| d.status == DeliveryStatus::Pending);
        let oldest = pending
            .clone()
            .filter_map(|d| d.next_attempt_at.filter(|at| *at <= now))
            .min();
        Ok(Backlog {
            pending: pending.count() as u64,
            oldest_due_age_ms: oldest.map_or(0, |at| (now - at).max(0)),
        })
    }

    async fn prune_deliveries(&self, before: Millis) -> StoreResult<Pruned> {
        let now = self.now();
        let mut state = self.state()?;
        // Secrets whose rotation grace has wholly ended are erased too.
        for stored in state.webhooks.values_mut() {
            if stored
                .webhook
                .previous_secrets_valid_until
                .is_some_and(|until| until <= now)
            {
                stored.secrets.previous.clear();
                stored.webhook.previous_secrets_valid_until = None;
            }
        }
        let count = state.deliveries.len();
        state
            .deliveries
            .retain(|_, d| !(finished(d.status) && d.created_at < before));
        let deliveries = (count - state.deliveries.len()) as u64;
        let needed: Vec<_> = state
            .deliveries
            .values()
            .filter(|d| d.status == DeliveryStatus::Pending)
            .map(|d| d.event_id)
            .collect();
        let count = state.events.len();
        state.events.retain(|e: &StoredEvent| {
            e.envelope.timestamp >= before || needed.contains(&e.envelope.id)
        });
        Ok(Pruned {
            deliveries,
            events: (count - state.events.len()) as u64,
        })
    }
}

#[async_trait]
impl DeliveryViews for MemoryStore {
    async fn list_deliveries(
        &self,
        org: &OrgId,
        webhook: Option<&WebhookId>,
        q: &DeliveryQuery,
    ) -> StoreResult<DeliveryPage> {
        let state = self.state()?;
        let mut rows: Vec<&StoredDelivery> = state
            .deliveries
            .values()
            .rev()
            .filter(|d| &d.organization_id == org)
            .filter(|d| webhook.is_none_or(|w| &d.webhook_id == w))
            .filter(|d| q.status.is_none_or(|s| d.status == s))
            .filter(|d| q.event.is_none_or(|e| d.event == e))
            .filter(|d| q.since.is_none_or(|s| d.created_at >= s))
            .filter(|d| q.until.is_none_or(|u| d.created_at <= u))
            .filter(|d| q.cursor.is_none_or(|c| d.id < c))
            .take(q.limit + 1)
            .collect();
        let more = rows.len() > q.limit;
        rows.truncate(q.limit);
        let data: Vec<_> = rows.into_iter().map(StoredDelivery::view).collect();
        let next_cursor = if more {
            data.last().map(|d| d.id)
        } else {
            None
        };
        Ok(DeliveryPage { data, next_cursor })
    }

    async fn attempt_tally(
        &self,
        org: &OrgId,
        webhook: &WebhookId,
        since: Millis,
    ) -> StoreResult<AttemptTally> {
        let state = self.state()?;
        let of_webhook = || {
            state
                .deliveries
                .values()
                .filter(|d| &d.organization_id == org && &d.webhook_id == webhook)
        };
        let mut tally = AttemptTally::default();
        let mut durations = Vec::new();
        for attempt in of_webhook()
            .filter(|d| d.last_attempt_at.is_some_and(|at| at >= since))
            .flat_map(|d| d.log.iter())
            .filter(|a| a.started_at >= since)
        {
            if attempt.succeeded() {
                tally.succeeded += 1;
            } else {
                tally.failed += 1;
            }
            if let Some(code) = attempt.status_code {
                *tally.by_status_code.entry(code).or_default() += 1;
            }
            durations.push(attempt.duration_ms);
        }
        if !durations.is_empty() {
            durations.sort_unstable();
            let n = durations.len() as u64;
            let mut latency = [0; 3];
            for (slot, p) in latency.iter_mut().zip(LATENCY_PERCENTILES) {
                *slot = durations[nearest_rank(p, n) as usize];
            }
            tally.latency_ms = Some(latency);
        }
        tally.pending = of_webhook()
            .filter(|d| d.status == DeliveryStatus::Pending)
            .count() as u64;
        Ok(tally)
    }

    async fn find_delivery(
        &self,
        org: &OrgId,
        webhook: &WebhookId,
        id: &DeliveryId,
    ) -> StoreResult<Option<DeliveryDetail>> {
        let mut state = self.state()?;
        let Some(d) = state.delivery_of(org, webhook, id).map(|d| d.clone()) else {
            return Ok(None);
        };
        let envelope = match state.events.iter().find(|e| e.envelope.id == d.event_id) {
            None => None,
            Some(e) => Some(e.json.parse().map_err(|_| {
                StoreError::new(format!(
                    "stored envelope of {} cannot be read back",
                    d.event_id
                ))
            })?),
        };
        Ok(Some(DeliveryDetail {
            delivery: d.view(),
            envelope,
            attempt_log: d.log.clone(),
        }))
    }

    async fn retry_delivery(
        &self,
        org: &OrgId,
        webhook: &WebhookId,
        id: &DeliveryId,
        now: Millis,
    ) -> StoreResult<RetryAnswer> {
        let mut state = self.state()?;
        let Some(d) = state.delivery_of(org, webhook, id) else {
            return Ok(RetryAnswer::NotFound);
        };
        if d.lease_until.is_some_and(|until| until >= now) {
            return Ok(RetryAnswer::InFlight);
        }
        if d.status == DeliveryStatus::Pending {
            d.next_attempt_at = Some(now);
            d.clear_lease();
            d.updated_at = now;
        } else {
            d.requeue(now);
        }
        Ok(RetryAnswer::Requeued(d.view()))
    }

    async fn recover_deliveries(
        &self,
        org: &OrgId,
        webhook: &WebhookId,
        since: Millis,
        until: Millis,
        now: Millis,
    ) -> StoreResult<u64> {
        let mut state = self.state()?;
        let mut n = 0;
        for d in state.deliveries.values_mut() {
            if &d.organization_id == org
                && &d.webhook_id == webhook
                && d.status == DeliveryStatus::Failed
                && (since..=until).contains(&d.created_at)
            {
                d.requeue(now);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn insert_test_delivery(
        &self,
        webhook: &Webhook,
        event: &Envelope,
        delivery: &DeliveryId,
    ) -> StoreResult<()> {
        let mut state = self.state()?;
        if state.deliveries.contains_key(delivery) {
            return Err(StoreError::new(format!(
                "delivery {delivery} already exists"
            )));
        }
        // Stored without fan-out: its one delivery is the one made here, whatever the filter.
        state.record(event);
        let d = StoredDelivery::pending(*delivery, webhook, event, event.timestamp);
        state.deliveries.insert(d.id, d);
        Ok(())
    }
}
