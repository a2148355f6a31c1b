//! The deliveries use cases: what a user sees of and does with the delivery queue — the paged
//! list of a webhook's (or the whole organization's) deliveries with its filters, one delivery
//! with its attempt log, a webhook's stats over a window, a manual retry, bulk recovery of
//! dead-lettered deliveries, and the test ping. Each checks `manage` first, then the
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

/// The query of `GET /webhooks/{id}/deliveries` and `GET /deliveries`, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryQuery {
    /// Only deliveries in this state.
    pub status: Option<DeliveryStatus>,
    /// Only deliveries of this event type.
    pub event: Option<EventType>,
    /// Only deliveries created at or after this time (epoch ms).
    pub since: Option<Millis>,
    /// Only deliveries created at or before this time (epoch ms).
    pub until: Option<Millis>,
    /// Page size, 1..=200.
    pub limit: usize,
    /// Start after this delivery.
    pub cursor: Option<DeliveryId>,
}

/// The raw query values a delivery list reads, each `None` when absent (an empty value counts
/// as absent).
#[derive(Clone, Debug, Default)]
pub struct DeliveryQueryText<'a> {
    /// `status`.
    pub status: Option<&'a str>,
    /// `event`.
    pub event: Option<&'a str>,
    /// `since`.
    pub since: Option<&'a str>,
    /// `until`.
    pub until: Option<&'a str>,
    /// `limit`.
    pub limit: Option<&'a str>,
    /// `cursor`.
    pub cursor: Option<&'a str>,
}

/// A time bound of a query: epoch milliseconds, not negative; 422 naming it otherwise.
fn millis_param(name: &str, text: Option<&str>) -> Result<Option<Millis>> {
    match text.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(text) => text
            .parse::<Millis>()
            .ok()
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or_else(|| {
                DomainError::invalid(name, format!("{name} must be epoch milliseconds"))
            }),
    }
}

impl DeliveryQuery {
    /// Page size when none is asked for.
    pub const DEFAULT_LIMIT: usize = 50;
    /// Largest page.
    pub const MAX_LIMIT: usize = 200;

    /// Parses the raw query values; a bad one is a 422 naming it.
    pub fn parse(status: Option<&str>, limit: Option<&str>, cursor: Option<&str>) -> Result<Self> {
        Self::read(&DeliveryQueryText {
            status,
            limit,
            cursor,
            ..Default::default()
        })
    }

    /// Parses every raw query value; a bad one is a 422 naming it.
    pub fn read(text: &DeliveryQueryText<'_>) -> Result<Self> {
        let (status, limit, cursor) = (text.status, text.limit, text.cursor);
        let event = match text.event.filter(|s| !s.is_empty()) {
            None => None,
            Some(name) => Some(EventType::parse(name).ok_or_else(|| {
                DomainError::invalid("event", format!("unknown event type `{name}`"))
            })?),
        };
        let since = millis_param("since", text.since)?;
        let until = millis_param("until", text.until)?;
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
            event,
            since,
            until,
            limit,
            cursor,
        })
    }
}

/// The window of `GET /webhooks/{id}/stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StatsWindow {
    /// The last hour.
    Hour,
    /// The last 24 hours (the default).
    #[default]
    Day,
    /// The last 7 days.
    Week,
}

impl StatsWindow {
    /// Every window.
    pub const ALL: [StatsWindow; 3] = [Self::Hour, Self::Day, Self::Week];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::Day => "24h",
            Self::Week => "7d",
        }
    }

    /// Its length in milliseconds.
    pub fn millis(self) -> Millis {
        match self {
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
            Self::Week => 7 * 86_400_000,
        }
    }

    /// Parses the `window` parameter (absent or empty: 24h); 422 naming it otherwise.
    pub fn parse(text: Option<&str>) -> Result<Self> {
        match text.filter(|s| !s.is_empty()) {
            None => Ok(Self::default()),
            Some(text) => Self::ALL
                .into_iter()
                .find(|w| w.as_str() == text)
                .ok_or_else(|| DomainError::invalid("window", "window must be 1h, 24h or 7d")),
        }
    }
}

/// The attempts of a webhook in a window, as the store counts them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AttemptTally {
    /// Attempts that got a 2xx.
    pub succeeded: u64,
    /// Every other attempt (an error status, a timeout, a refused connection, nothing sent).
    pub failed: u64,
    /// Attempts per HTTP status received.
    pub by_status_code: std::collections::BTreeMap<u16, u64>,
    /// The 50th, 95th and 99th percentile durations (nearest rank), when there were attempts.
    pub latency_ms: Option<[i64; 3]>,
    /// Deliveries of the webhook pending now.
    pub pending: u64,
}

/// Latency percentiles of a window's attempts, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Latency {
    /// Median.
    pub p50: i64,
    /// 95th percentile.
    pub p95: i64,
    /// 99th percentile.
    pub p99: i64,
}

/// `GET /webhooks/{id}/stats`: a webhook's attempts over a window.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookStats {
    /// `1h`, `24h` or `7d`.
    pub window: &'static str,
    /// Attempts started in the window.
    pub attempts: u64,
    /// Of which got a 2xx.
    pub succeeded: u64,
    /// Of which did not.
    pub failed: u64,
    /// `succeeded / attempts`, `None` without attempts.
    pub success_rate: Option<f64>,
    /// Attempt durations, `None` without attempts.
    pub latency_ms: Option<Latency>,
    /// Attempts per HTTP status received (attempts without an answer are not counted here).
    pub by_status_code: std::collections::BTreeMap<String, u64>,
    /// Deliveries pending now.
    pub pending: u64,
}

/// The percentiles a stats answer shows, as fractions.
pub const LATENCY_PERCENTILES: [f64; 3] = [0.50, 0.95, 0.99];

/// The 0-based index of the nearest-rank percentile `p` among `n` sorted values (`n > 0`).
pub fn nearest_rank(p: f64, n: u64) -> u64 {
    ((p * n as f64).ceil() as u64).clamp(1, n) - 1
}

impl WebhookStats {
    /// The answer for `window` from the store's tally.
    pub fn new(window: StatsWindow, tally: AttemptTally) -> Self {
        let attempts = tally.succeeded + tally.failed;
        Self {
            window: window.as_str(),
            attempts,
            succeeded: tally.succeeded,
            failed: tally.failed,
            success_rate: (attempts > 0).then(|| tally.succeeded as f64 / attempts as f64),
            latency_ms: tally
                .latency_ms
                .map(|[p50, p95, p99]| Latency { p50, p95, p99 }),
            by_status_code: tally
                .by_status_code
                .into_iter()
                .map(|(code, n)| (code.to_string(), n))
                .collect(),
            pending: tally.pending,
        }
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
            .list_deliveries(&caller.organization, Some(&webhook.id), query)
            .await?)
    }

    /// One page of the organization's deliveries (of one webhook when `webhook_id` is given),
    /// newest first.
    pub async fn list_org_deliveries(
        &self,
        caller: &Principal,
        webhook_id: Option<&str>,
        query: &DeliveryQuery,
    ) -> Result<DeliveryPage> {
        caller.require(Capability::Read)?;
        let webhook = match webhook_id.filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => {
                let id = crate::ids::WebhookId::parse(text).ok_or_else(|| {
                    DomainError::invalid("webhookId", "webhookId is not a webhook id")
                })?;
                Some(
                    self.find_webhook(&caller.organization, &id.to_string())
                        .await?
                        .id,
                )
            }
        };
        Ok(self
            .store
            .list_deliveries(&caller.organization, webhook.as_ref(), query)
            .await?)
    }

    /// A webhook's attempts over `window`: counts by outcome and status, latency percentiles,
    /// and the deliveries pending now.
    pub async fn webhook_stats(
        &self,
        caller: &Principal,
        webhook_id: &str,
        window: StatsWindow,
    ) -> Result<WebhookStats> {
        caller.require(Capability::Read)?;
        let webhook = self.find_webhook(&caller.organization, webhook_id).await?;
        let since = self.clock.now_ms() - window.millis();
        let tally = self
            .store
            .attempt_tally(&caller.organization, &webhook.id, since)
            .await?;
        Ok(WebhookStats::new(window, tally))
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
    fn filters_and_windows_name_their_bad_values() {
        let text = |event, since, until| DeliveryQueryText {
            event,
            since,
            until,
            ..Default::default()
        };
        let q = DeliveryQuery::read(&text(Some("message"), Some("5"), Some(""))).unwrap();
        assert_eq!(
            (q.event, q.since, q.until),
            (Some(EventType::Message), Some(5), None)
        );
        assert_eq!(
            field(DeliveryQuery::read(&text(Some("nope"), None, None))),
            "event"
        );
        assert_eq!(
            field(DeliveryQuery::read(&text(None, Some("-1"), None))),
            "since"
        );
        assert_eq!(
            field(DeliveryQuery::read(&text(None, None, Some("x")))),
            "until"
        );
        assert_eq!(StatsWindow::parse(None).unwrap(), StatsWindow::Day);
        assert_eq!(StatsWindow::parse(Some("7d")).unwrap(), StatsWindow::Week);
        assert!(StatsWindow::parse(Some("2h")).is_err());
        assert_eq!(nearest_rank(0.5, 1), 0);
        assert_eq!(nearest_rank(0.99, 100), 98);
        assert_eq!(nearest_rank(0.95, 10), 9);
        let stats = WebhookStats::new(StatsWindow::Hour, AttemptTally::default());
        assert_eq!((stats.success_rate, stats.latency_ms), (None, None));
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
