//! Endpoint health: what one attempt's outcome does to its webhook. A 410 disables the webhook
//! at once; failing without a success for the configured time disables it; a run of failures
//! opens a circuit breaker that pauses attempts for a cool-down (30 s, doubling to 10 min) and
//! then lets one probe through, whose success closes it. Each change that users care about is
//! an operational event. Pure rules: the store applies them in the transaction that records the
//! attempts, so the state and its events commit together.

use crate::delivery::AttemptRecord;
use crate::event::{Envelope, EventType};
use crate::ids::{OrgId, WebhookId};
use crate::Millis;
use serde::Serialize;

/// Why a webhook is inactive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DisabledReason {
    /// Its receiver answered 410 Gone.
    Gone,
    /// It failed without a success for the configured time.
    Failing,
    /// A user deactivated it.
    Manual,
}

impl DisabledReason {
    /// Every reason.
    pub const ALL: [DisabledReason; 3] = [Self::Gone, Self::Failing, Self::Manual];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gone => "gone",
            Self::Failing => "failing",
            Self::Manual => "manual",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// A webhook's delivery health, as stored and shown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// The start of the first failed attempt since the last success.
    pub failing_since: Option<Millis>,
    /// When the last successful attempt ended (to about a second).
    pub last_success_at: Option<Millis>,
    /// While the breaker is open (or its probe is out): when the cool-down ends.
    pub paused_until: Option<Millis>,
    /// The breaker's current cool-down, doubled by each failed probe.
    pub cooldown_ms: Option<Millis>,
}

impl Serialize for Health {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let state = if self.paused_until.is_some() {
            "paused"
        } else if self.consecutive_failures > 0 {
            "failing"
        } else {
            "healthy"
        };
        let mut out = s.serialize_struct("Health", 5)?;
        out.serialize_field("state", state)?;
        out.serialize_field("consecutiveFailures", &self.consecutive_failures)?;
        out.serialize_field("failingSince", &self.failing_since)?;
        out.serialize_field("lastSuccessAt", &self.last_success_at)?;
        out.serialize_field("pausedUntil", &self.paused_until)?;
        out.end()
    }
}

/// The thresholds, from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Failing this long without a success disables a webhook (`HERALD_DISABLE_AFTER_HOURS`).
    pub disable_after_ms: Millis,
    /// This many consecutive failed attempts open the breaker (`HERALD_BREAKER_FAILURES`).
    pub breaker_failures: u32,
    /// The first cool-down of an open breaker (30 s; only tests shorten it).
    pub first_cooldown_ms: Millis,
    /// The longest cool-down (10 min; only tests shorten it).
    pub max_cooldown_ms: Millis,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            disable_after_ms: 120 * 3_600_000,
            breaker_failures: 10,
            first_cooldown_ms: 30_000,
            max_cooldown_ms: 600_000,
        }
    }
}

impl HealthPolicy {
    /// How long past the cool-down the deliveries held by a breaker wait, so that the one probe
    /// due at its end reports before they are due (its success releases them at once): the
    /// longest cool-down.
    pub fn hold_margin_ms(&self) -> Millis {
        self.max_cooldown_ms
    }
}

/// What an attempt did to its webhook, besides the new health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthChange {
    /// The webhook was disabled for this reason.
    Disabled(DisabledReason),
    /// The breaker opened: attempts pause until `until`.
    Paused {
        /// When the cool-down ends.
        until: Millis,
    },
    /// A probe failed: the breaker stays open for a longer cool-down.
    Extended {
        /// When the new cool-down ends.
        until: Millis,
    },
    /// A success closed the breaker.
    Resumed,
}

impl Health {
    /// Applies one attempt's outcome at `now` to an active webhook; returns what changed that
    /// the store must act on (disable, hold, release) and announce. An inactive webhook's
    /// stragglers change nothing.
    pub fn after(
        &mut self,
        active: bool,
        record: &AttemptRecord,
        policy: &HealthPolicy,
        now: Millis,
    ) -> Option<HealthChange> {
        if !active {
            return None;
        }
        if record.succeeded() {
            let was_paused = self.paused_until.is_some();
            *self = Self {
                last_success_at: Some(now),
                ..Self::default()
            };
            return was_paused.then_some(HealthChange::Resumed);
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let since = *self.failing_since.get_or_insert(record.started_at);
        if record.status_code == Some(410) {
            return Some(HealthChange::Disabled(DisabledReason::Gone));
        }
        if now - since >= policy.disable_after_ms {
            return Some(HealthChange::Disabled(DisabledReason::Failing));
        }
        if self.consecutive_failures < policy.breaker_failures.max(1) {
            return None;
        }
        match self.paused_until {
            None => {
                let until = now + policy.first_cooldown_ms;
                self.paused_until = Some(until);
                self.cooldown_ms = Some(policy.first_cooldown_ms);
                Some(HealthChange::Paused { until })
            }
            // An attempt that was already under way when the breaker opened.
            Some(until) if until > now => None,
            // The probe failed.
            Some(_) => {
                let cooldown = (self.cooldown_ms.unwrap_or(policy.first_cooldown_ms) * 2)
                    .min(policy.max_cooldown_ms);
                let until = now + cooldown;
                self.paused_until = Some(until);
                self.cooldown_ms = Some(cooldown);
                Some(HealthChange::Extended { until })
            }
        }
    }
}

/// What one webhook's share of a batch of attempt outcomes does to it (see [`settle_batch`]).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchEffect {
    /// Its health after the batch.
    pub health: Health,
    /// Set when the batch disabled it.
    pub disabled: Option<DisabledReason>,
    /// Set when its breaker opened or stayed open: its deliveries wait for a probe at this time.
    pub hold: Option<Millis>,
    /// Its breaker closed: held deliveries are due again now.
    pub release: bool,
    /// The operational events the batch causes, in order.
    pub events: Vec<Envelope>,
}

impl BatchEffect {
    /// Whether the webhook's stored row must be written: anything changed but a success
    /// timestamp that moved by less than a second (so a healthy endpoint costs no write).
    pub fn needs_write(&self, before: &Health) -> bool {
        let success_moved = match (before.last_success_at, self.health.last_success_at) {
            (Some(a), Some(b)) => b - a >= 1_000,
            (a, b) => a != b,
        };
        let same_but_success = Health {
            last_success_at: before.last_success_at,
            ..self.health.clone()
        } == *before;
        self.disabled.is_some() || !same_but_success || success_moved
    }
}

/// Folds one webhook's outcomes of a batch, in order, into its health ([`Health::after`]) and
/// the operational events they cause: `webhook.disabled`, `webhook.paused`/`resumed`, and
/// `delivery.failed` for every dead letter except those `quiet` names (a dead letter of an
/// operational event is not announced: two failing webhooks would otherwise tell each other
/// about each other's failures forever). Both stores apply a batch through this one function.
pub fn settle_batch<'a>(
    (org, webhook): (&OrgId, &WebhookId),
    health: &Health,
    active: bool,
    outcomes: impl IntoIterator<Item = &'a crate::delivery::AttemptOutcome>,
    quiet: impl Fn(&crate::ids::DeliveryId) -> bool,
    policy: &HealthPolicy,
    now: Millis,
) -> BatchEffect {
    use crate::delivery::Settlement;
    let mut effect = BatchEffect {
        health: health.clone(),
        disabled: None,
        hold: None,
        release: false,
        events: Vec::new(),
    };
    let mut active = active;
    for outcome in outcomes {
        let streak = effect.health.consecutive_failures;
        match effect.health.after(active, &outcome.record, policy, now) {
            Some(HealthChange::Disabled(reason)) => {
                active = false;
                effect.disabled = Some(reason);
                effect
                    .events
                    .push(disabled_event(org, webhook, reason, now));
            }
            Some(HealthChange::Paused { until }) => {
                effect.hold = Some(until);
                let failures = effect.health.consecutive_failures;
                effect
                    .events
                    .push(breaker_event(org, webhook, true, failures, now));
            }
            Some(HealthChange::Extended { until }) => effect.hold = Some(until),
            Some(HealthChange::Resumed) => {
                effect.hold = None;
                effect.release = true;
                effect
                    .events
                    .push(breaker_event(org, webhook, false, streak, now));
            }
            None => {}
        }
        if outcome.settlement == Settlement::Failed && !quiet(&outcome.delivery_id) {
            effect.events.push(delivery_failed_event(
                org,
                webhook,
                &outcome.delivery_id,
                &outcome.event_id,
                &outcome.record,
                now,
            ));
        }
    }
    effect
}

/// `webhook.disabled` `{"webhookId","reason"}`.
pub fn disabled_event(
    org: &OrgId,
    webhook: &WebhookId,
    reason: DisabledReason,
    now: Millis,
) -> Envelope {
    Envelope::new(
        EventType::WebhookDisabled,
        org.clone(),
        None,
        None,
        now,
        serde_json::json!({"webhookId": webhook, "reason": reason.as_str()}),
    )
}

/// `webhook.paused` / `webhook.resumed` `{"webhookId","consecutiveFailures"}`.
pub fn breaker_event(
    org: &OrgId,
    webhook: &WebhookId,
    paused: bool,
    consecutive_failures: u32,
    now: Millis,
) -> Envelope {
    Envelope::new(
        if paused {
            EventType::WebhookPaused
        } else {
            EventType::WebhookResumed
        },
        org.clone(),
        None,
        None,
        now,
        serde_json::json!({"webhookId": webhook, "consecutiveFailures": consecutive_failures}),
    )
}

/// `delivery.failed` `{"webhookId","deliveryId","eventId","attempts","lastStatusCode","lastError"}`.
pub fn delivery_failed_event(
    org: &OrgId,
    webhook: &WebhookId,
    delivery: &crate::ids::DeliveryId,
    event: &crate::ids::EventId,
    record: &AttemptRecord,
    now: Millis,
) -> Envelope {
    Envelope::new(
        EventType::DeliveryFailed,
        org.clone(),
        None,
        None,
        now,
        serde_json::json!({
            "webhookId": webhook, "deliveryId": delivery, "eventId": event,
            "attempts": record.attempt, "lastStatusCode": record.status_code,
            "lastError": record.error.map(|e| e.as_str()),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::AttemptError;

    fn outcome(
        webhook_id: WebhookId,
        status: Option<u16>,
        at: Millis,
        settlement: crate::delivery::Settlement,
    ) -> crate::delivery::AttemptOutcome {
        crate::delivery::AttemptOutcome {
            delivery_id: crate::ids::DeliveryId::generate(),
            webhook_id,
            event_id: crate::ids::EventId::generate(),
            record: attempt(status, at),
            settlement,
        }
    }

    #[test]
    fn a_batch_announces_a_disable_and_dead_letters_except_quiet_ones() {
        use crate::delivery::Settlement;
        let org = OrgId::parse("org_a").unwrap();
        let id = WebhookId::generate();
        let loud = outcome(id, Some(500), 10, Settlement::Failed);
        let quiet = outcome(id, Some(500), 11, Settlement::Failed);
        let gone = outcome(id, Some(410), 12, Settlement::Failed);
        let batch = [loud.clone(), quiet.clone(), gone];
        let effect = settle_batch(
            (&org, &id),
            &Health::default(),
            true,
            &batch,
            |d| *d == quiet.delivery_id,
            &HealthPolicy::default(),
            20,
        );
        assert_eq!(effect.disabled, Some(DisabledReason::Gone));
        let kinds: Vec<EventType> = effect.events.iter().map(|e| e.event).collect();
        assert_eq!(
            kinds,
            [
                EventType::DeliveryFailed,
                EventType::WebhookDisabled,
                EventType::DeliveryFailed
            ]
        );
        assert!(effect.needs_write(&Health::default()));
    }

    #[test]
    fn a_success_that_only_moves_the_success_time_a_little_needs_no_write() {
        use crate::delivery::Settlement;
        let org = OrgId::parse("org_a").unwrap();
        let id = WebhookId::generate();
        let before = Health {
            last_success_at: Some(1_000),
            ..Health::default()
        };
        let run = |at| {
            settle_batch(
                (&org, &id),
                &before,
                true,
                &[outcome(id, Some(200), at, Settlement::Succeeded)],
                |_| false,
                &HealthPolicy::default(),
                at,
            )
        };
        assert!(!run(1_500).needs_write(&before));
        assert!(run(2_000).needs_write(&before));
        assert!(run(1_500).events.is_empty());
    }

    fn attempt(status: Option<u16>, at: Millis) -> AttemptRecord {
        AttemptRecord {
            attempt: 1,
            started_at: at,
            duration_ms: 1,
            status_code: status,
            error: (status != Some(200)).then_some(AttemptError::HttpStatus),
            response_body: String::new(),
        }
    }

    const POLICY: HealthPolicy = HealthPolicy {
        disable_after_ms: 1_000_000,
        breaker_failures: 3,
        first_cooldown_ms: 30_000,
        max_cooldown_ms: 600_000,
    };

    #[test]
    fn gone_disables_at_once_and_long_failing_disables() {
        let mut h = Health::default();
        assert_eq!(
            h.after(true, &attempt(Some(410), 5), &POLICY, 6),
            Some(HealthChange::Disabled(DisabledReason::Gone))
        );
        let mut h = Health::default();
        assert_eq!(h.after(true, &attempt(Some(500), 0), &POLICY, 1), None);
        assert_eq!(
            h.after(true, &attempt(Some(500), 1_000_000), &POLICY, 1_000_001),
            Some(HealthChange::Disabled(DisabledReason::Failing))
        );
        assert_eq!(h.after(false, &attempt(Some(410), 0), &POLICY, 1), None);
    }

    #[test]
    fn the_breaker_opens_probes_doubles_and_closes() {
        let mut h = Health::default();
        assert_eq!(h.after(true, &attempt(Some(500), 0), &POLICY, 0), None);
        assert_eq!(h.after(true, &attempt(Some(500), 0), &POLICY, 0), None);
        assert_eq!(
            h.after(true, &attempt(Some(500), 0), &POLICY, 10),
            Some(HealthChange::Paused { until: 30_010 })
        );
        // A straggler while open changes nothing; a failed probe doubles the cool-down.
        assert_eq!(h.after(true, &attempt(Some(500), 0), &POLICY, 20), None);
        assert_eq!(
            h.after(true, &attempt(Some(500), 0), &POLICY, 40_000),
            Some(HealthChange::Extended { until: 100_000 })
        );
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["state"], "paused");
        assert_eq!(json["consecutiveFailures"], 5);
        assert_eq!(
            h.after(true, &attempt(Some(200), 0), &POLICY, 200_000),
            Some(HealthChange::Resumed)
        );
        assert_eq!(h.consecutive_failures, 0);
        assert_eq!(serde_json::to_value(&h).unwrap()["state"], "healthy");
        assert_eq!(h.last_success_at, Some(200_000));
    }
}
