//! The deliveries use cases: what a user sees of and does with the delivery queue — the paged
//! list of a webhook's deliveries, one delivery with its attempt log, a manual retry, bulk
//! recovery of dead-lettered deliveries, and the test ping. Each checks `manage` first, then the
//! request's values, then that the webhook is the caller's (a foreign one is a 404).

use crate::capability::{Capability, Principal};
use crate::delivery::{Delivery, DeliveryDetail, DeliveryPage, DeliveryStatus, RetryAnswer};
use crate::error::DomainError;
use crate::event::{Envelope, EventType};
use crate::gateway::Gateway;
use crate::ids::{DeliveryId, EventId};
use crate::webhook::Webhook;
use crate::Millis;

type Result<T> = std::result::Result<T, DomainError>;

/// The query of `GET /webhooks/{id}/deliveries`, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryQuery {
    /// Only deliveries in this state.
    pub status: Option<DeliveryStatus>,
    /// Page size, 1..=200.
    pub limit: usize,
    /// Start after this delivery.
    pub cursor: Option<DeliveryId>,
}

impl DeliveryQuery {
    /// Page size when none is asked for.
    pub const DEFAULT_LIMIT: usize = 50;
    /// Largest page.
    pub const MAX_LIMIT: usize = 200;

    /// Parses the raw query values; a bad one is a 422 naming it.
    pub fn parse(status: Option<&str>, limit: Option<&str>, cursor: Option<&str>) -> Result<Self> {
        let status = match status.filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => Some(DeliveryStatus::parse(text).ok_or_else(|| {
                DomainError::invalid(
                    "status",
                    "status must be pending, succeeded, failed or cancelled",
                )
            })?),
        };
        let limit = match limit.filter(|s| !s.is_empty()) {
            None => Self::DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=Self::MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    DomainError::invalid("limit", "limit must be an integer from 1 to 200")
                })?,
        };
        let cursor = match cursor.filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => Some(DeliveryId::parse(text).ok_or_else(|| {
                DomainError::invalid("cursor", "cursor is not one this API returned")
            })?),
        };
        Ok(Self {
            status,
            limit,
            cursor,
        })
    }
}

/// What `POST /webhooks/{id}/test` created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestPing {
    /// The `webhook.test` event.
    pub event_id: EventId,
    /// Its one delivery.
    pub delivery_id: DeliveryId,
}

impl Gateway {
    /// One page of a webhook's deliveries, newest first.
    pub async fn list_deliveries(
        &self,
        caller: &Principal,
        webhook_id: &str,
        query: &DeliveryQuery,
    ) -> Result<DeliveryPage> {
        caller.require(Capability::Manage)?;
        let webhook = self.find_webhook(&caller.organization, webhook_id).await?;
        Ok(self
            .store
            .list_deliveries(
                &caller.organization,
                &webhook.id,
                query.status,
                query.cursor.as_ref(),
                query.limit,
            )
            .await?)
    }

    /// One delivery with the exact envelope sent and every attempt.
    pub async fn get_delivery(
        &self,
        caller: &Principal,
        webhook_id: &str,
        delivery_id: &str,
    ) -> Result<DeliveryDetail> {
        caller.require(Capability::Manage)?;
        let webhook = self.find_webhook(&caller.organization, webhook_id).await?;
        let id = DeliveryId::parse(delivery_id).ok_or(DomainError::NotFound("delivery"))?;
        self.store
            .find_delivery(&caller.organization, &webhook.id, &id)
            .await?
            .ok_or(DomainError::NotFound("delivery"))
    }

    /// Makes one delivery due now (a deliberate resend when it already finished); 409 while
    /// an attempt is in flight or the webhook is inactive.
    pub async fn retry_delivery(
        &self,
        caller: &Principal,
        webhook_id: &str,
        delivery_id: &str,
    ) -> Result<Delivery> {
        caller.require(Capability::Manage)?;
        let webhook = self.find_webhook(&caller.organization, webhook_id).await?;
        let id = DeliveryId::parse(delivery_id).ok_or(DomainError::NotFound("delivery"))?;
        // Look the delivery up first so a missing one is a 404 even on an inactive webhook.
        if self
            .store
            .find_delivery(&caller.organization, &webhook.id, &id)
            .await?
            .is_none()
        {
            return Err(DomainError::NotFound("delivery"));
        }
        require_active(&webhook)?;
        let answer = self
            .store
            .retry_delivery(&caller.organization, &webhook.id, &id, self.clock.now_ms())
            .await?;
        match answer {
            RetryAnswer::NotFound => Err(DomainError::NotFound("delivery")),
            RetryAnswer::InFlight => Err(DomainError::Conflict(
                "an attempt of this delivery is in flight; retry it once the attempt ends".into(),
            )),
            RetryAnswer::Requeued(delivery) => {
                self.listener.deliveries_requeued(&caller.organization);
                Ok(delivery)
            }
        }
    }

    /// Requeues every failed delivery of a webhook created within `[since, until]` (`until`
    /// defaults to now). Returns how many.
    pub async fn recover_deliveries(
        &self,
        caller: &Principal,
        webhook_id: &str,
        since: Millis,
        until: Option<Millis>,
    ) -> Result<u64> {
        caller.require(Capability::Manage)?;
        let now = self.clock.now_ms();
        let until = until.unwrap_or(now.max(since));
        if since < 0 {
            return Err(DomainError::invalid(
                "since",
                "since must be epoch milliseconds",
            ));
        }
        // A window that ends before it starts is empty: nothing to requeue, not an error.
        if until < 0 {
            return Err(DomainError::invalid(
                "until",
                "until must be epoch milliseconds",
            ));
        }
        let webhook = self.find_webhook(&caller.organization, webhook_id).await?;
        require_active(&webhook)?;
        let n = self
            .store
            .recover_deliveries(&caller.organization, &webhook.id, since, until, now)
            .await?;
        if n > 0 {
            self.listener.deliveries_requeued(&caller.organization);
        }
        Ok(n)
    }

    /// Sends a `webhook.test` event to this webhook only, whatever its event filter. The event
    /// stays out of the event log and the WebSocket.
    pub async fn test_webhook(&self, caller: &Principal, webhook_id: &str) -> Result<TestPing> {
        caller.require(Capability::Manage)?;
        let webhook = self.find_webhook(&caller.organization, webhook_id).await?;
        require_active(&webhook)?;
        let event = Envelope::new(
            EventType::WebhookTest,
            caller.organization.clone(),
            None,
            None,
            self.clock.now_ms(),
            serde_json::json!({
                "webhookId": webhook.id,
                "message": "This is a test event sent by Herald.",
            }),
        );
        let delivery_id = DeliveryId::generate();
        self.store
            .insert_test_delivery(&webhook, &event, &delivery_id)
            .await?;
        self.listener.events_committed(&caller.organization);
        Ok(TestPing {
            event_id: event.id,
            delivery_id,
        })
    }
}

fn require_active(webhook: &Webhook) -> Result<()> {
    if webhook.active {
        Ok(())
    } else {
        Err(DomainError::Conflict(
            "the webhook is inactive; activate it first".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(result: Result<DeliveryQuery>) -> String {
        match result {
            Err(DomainError::Invalid { field, .. }) => field,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn query_defaults_and_bounds() {
        let q = DeliveryQuery::parse(None, None, None).unwrap();
        assert_eq!((q.status, q.limit, q.cursor), (None, 50, None));
        let q = DeliveryQuery::parse(Some("failed"), Some("200"), None).unwrap();
        assert_eq!((q.status, q.limit), (Some(DeliveryStatus::Failed), 200));
        assert_eq!(
            field(DeliveryQuery::parse(Some("done"), None, None)),
            "status"
        );
        for bad in ["0", "201", "-1", "ten", "1.5"] {
            assert_eq!(field(DeliveryQuery::parse(None, Some(bad), None)), "limit");
        }
        assert_eq!(
            field(DeliveryQuery::parse(None, None, Some("nope"))),
            "cursor"
        );
        let id = DeliveryId::generate();
        let q = DeliveryQuery::parse(None, None, Some(&id.to_string())).unwrap();
        assert_eq!(q.cursor, Some(id));
    }
}
