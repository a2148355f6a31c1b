//! Deliveries: one event on its way to one webhook, with every attempt recorded so a user can
//! see why it failed and resend it.

use crate::event::EventType;
use crate::ids::{DeliveryId, EventId, WebhookId};
use crate::Millis;
use serde::{Deserialize, Serialize};

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or in one).
    Pending,
    /// A 2xx came back.
    Succeeded,
    /// The attempt budget is spent: dead-lettered, still visible and retryable.
    Failed,
    /// The webhook was deleted or deactivated before it succeeded.
    Cancelled,
}

impl DeliveryStatus {
    /// Every status.
    pub const ALL: [DeliveryStatus; 4] = [
        Self::Pending,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Why an attempt failed, in the classes the API documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptError {
    /// No complete answer within the delivery timeout.
    Timeout,
    /// The connection was refused or broke before an answer's headers arrived.
    Connect,
    /// The answer's status and headers arrived, then the connection broke before its body
    /// (or the first 4 KiB of it) did.
    ResponseIncomplete,
    /// The host name did not resolve.
    Dns,
    /// The destination is a private/loopback/link-local/CGNAT/multicast address.
    BlockedAddress,
    /// The receiver answered with a non-2xx status.
    HttpStatus,
    /// The TLS handshake failed.
    Tls,
}

impl AttemptError {
    /// Every class, as the API documents them (a new class belongs here too).
    pub const ALL: [AttemptError; 7] = [
        Self::Timeout,
        Self::Connect,
        Self::ResponseIncomplete,
        Self::Dns,
        Self::BlockedAddress,
        Self::HttpStatus,
        Self::Tls,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::ResponseIncomplete => "response_incomplete",
            Self::Dns => "dns",
            Self::BlockedAddress => "blocked_address",
            Self::HttpStatus => "http_status",
            Self::Tls => "tls",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

/// A delivery as listed.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// `dlv_…`.
    pub id: DeliveryId,
    /// The target.
    pub webhook_id: WebhookId,
    /// The event carried.
    pub event_id: EventId,
    /// The event's type.
    pub event: EventType,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<Millis>,
    /// When the last attempt started.
    pub last_attempt_at: Option<Millis>,
    /// The last HTTP status received.
    pub last_status_code: Option<u16>,
    /// The last failure class.
    pub last_error: Option<AttemptError>,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

/// One attempt, as the attempt log shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    /// 1-based attempt number.
    pub attempt: u32,
    /// When it started.
    pub started_at: Millis,
    /// How long it took.
    pub duration_ms: i64,
    /// The HTTP status, if an answer came.
    pub status_code: Option<u16>,
    /// The failure class, if it failed.
    pub error: Option<AttemptError>,
    /// The first 4 KiB of the reply.
    pub response_body: String,
}

/// Which claim queue a delivery waits in. First attempts and retries are claimed and worked
/// separately so a dead endpoint's retry backlog can never delay fresh events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Deliveries that have not been attempted yet.
    Fresh,
    /// Deliveries with at least one attempt behind them.
    Retry,
}

impl Lane {
    /// Both lanes.
    pub const ALL: [Lane; 2] = [Lane::Fresh, Lane::Retry];

    /// A label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fresh => "fresh",
            Self::Retry => "retry",
        }
    }
}

/// A dispatcher's claim on deliveries: who holds it and until when. The lease always outlives
/// the HTTP timeout ([`Lease::duration_for`]), so an attempt ends before anyone else may claim
/// the same delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The holder (one id per dispatcher process).
    pub owner: String,
    /// When the claim lapses (epoch ms) unless the holder records an outcome first.
    pub until: Millis,
}

impl Lease {
    /// Margin beyond the HTTP timeout: 55 s. With dispatchers re-checking for lapsed leases at
    /// least every [`Lease::RECHECK_MS`], work claimed by a dispatcher that dies is attempted
    /// again within `timeout + 60 s` of its claim, as the delivery protocol promises — and the
    /// lease still outlives any attempt by far more than a start-up margin.
    pub const MARGIN_MS: Millis = 55_000;
    /// Longest a dispatcher goes without looking for claimable work (lapsed leases included).
    pub const RECHECK_MS: Millis = 5_000;

    /// How long a lease lasts for an HTTP timeout of `timeout_ms`.
    pub fn duration_for(timeout_ms: Millis) -> Millis {
        timeout_ms.max(0) + Self::MARGIN_MS
    }
}

/// One claimed delivery, carrying everything an attempt needs.
#[derive(Clone, Debug)]
pub struct ClaimedDelivery {
    /// The delivery.
    pub id: DeliveryId,
    /// Its webhook.
    pub webhook_id: WebhookId,
    /// The event carried (the `X-Webhook-Request-Id`).
    pub event_id: EventId,
    /// The number this attempt will have (1-based, counting every earlier attempt).
    pub attempt: u32,
    /// Attempts made before the current budget started (a manual retry renews the budget).
    pub budget_base: u32,
    /// The target URL.
    pub url: crate::webhook::WebhookUrl,
    /// Extra headers, applied last.
    pub custom_headers: crate::webhook::CustomHeaders,
    /// The schedule for the next attempt if this one fails.
    pub retry_policy: crate::retry::RetryPolicy,
    /// The sealed signing secret, if the webhook has one.
    pub secret: Option<crate::ports::SealedSecret>,
    /// Earlier secrets still in (or past: the dispatcher skips those) their grace period.
    pub previous_secrets: Vec<crate::ports::PreviousSecret>,
    /// How the delivery is signed.
    pub signing: crate::webhook::SigningScheme,
    /// The webhook's rate limit (attempts started per second), if any.
    pub rate_limit: Option<u32>,
    /// The exact envelope bytes to send and sign, as stored with the event.
    pub envelope: String,
    /// When this claim lapses.
    pub lease_until: Millis,
}

/// What became of a delivery after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// A 2xx came back: done.
    Succeeded,
    /// Failed; try again at this time.
    RetryAt(Millis),
    /// Failed and the budget is spent: dead-lettered.
    Failed,
}

impl Settlement {
    /// Decides the delivery's fate after attempt `attempt` of a delivery whose current budget
    /// began after `budget_base` attempts, under `policy`. `retry_after_ms` is a receiver's
    /// `Retry-After` hint (honoured only by pushing the next attempt later).
    pub fn after(
        claimed_attempt: u32,
        budget_base: u32,
        policy: &crate::retry::RetryPolicy,
        record: &AttemptRecord,
        retry_after_ms: Option<i64>,
        now: Millis,
    ) -> Self {
        if record.succeeded() {
            return Self::Succeeded;
        }
        // A refused destination is configuration, not luck; and 410 Gone says the endpoint is
        // no more: retrying cannot change either.
        if record.error == Some(AttemptError::BlockedAddress) || record.status_code == Some(410) {
            return Self::Failed;
        }
        let failed_in_budget = claimed_attempt.saturating_sub(budget_base).max(1);
        match policy.next_attempt_at(now, failed_in_budget, retry_after_ms) {
            Some(at) => Self::RetryAt(at),
            None => Self::Failed,
        }
    }

    /// The delivery status this settlement leaves.
    pub fn status(self) -> DeliveryStatus {
        match self {
            Self::Succeeded => DeliveryStatus::Succeeded,
            Self::RetryAt(_) => DeliveryStatus::Pending,
            Self::Failed => DeliveryStatus::Failed,
        }
    }

    /// The next attempt time, when there is one.
    pub fn next_attempt_at(self) -> Option<Millis> {
        match self {
            Self::RetryAt(at) => Some(at),
            Self::Succeeded | Self::Failed => None,
        }
    }
}

impl AttemptRecord {
    /// Most bytes of a reply kept in the attempt log.
    pub const MAX_RESPONSE_BODY: usize = 4096;

    /// Whether the attempt got a 2xx.
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The result of one attempt, ready to be written back by the lease holder.
#[derive(Clone, Debug)]
pub struct AttemptOutcome {
    /// The delivery attempted.
    pub delivery_id: DeliveryId,
    /// Its webhook (whose health the outcome updates).
    pub webhook_id: WebhookId,
    /// The event carried (named by a `delivery.failed` event).
    pub event_id: EventId,
    /// The attempt as the log shows it.
    pub record: AttemptRecord,
    /// What becomes of the delivery.
    pub settlement: Settlement,
}

/// A delivery with its envelope and attempt log, as `GET …/deliveries/{id}` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDetail {
    /// The delivery.
    #[serde(flatten)]
    pub delivery: Delivery,
    /// The exact JSON sent (`null` if the event was pruned).
    pub envelope: Option<serde_json::Value>,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<AttemptRecord>,
}

/// The answer to a manual retry.
#[derive(Clone, Debug, PartialEq)]
pub enum RetryAnswer {
    /// No such delivery on that webhook.
    NotFound,
    /// An attempt is in flight right now.
    InFlight,
    /// Requeued, due now.
    Requeued(Delivery),
}

/// A page of a webhook's deliveries, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryPage {
    /// The deliveries.
    pub data: Vec<Delivery>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<DeliveryId>,
}

/// The delivery backlog, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Pending deliveries (due or not, in flight or not).
    pub pending: u64,
    /// How long the oldest due, unattempted-yet-now delivery has waited (ms), 0 when none is due.
    pub oldest_due_age_ms: i64,
}

/// What a retention sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Deliveries (with their attempts) removed.
    pub deliveries: u64,
    /// Events removed.
    pub events: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::{Backoff, RetryPolicy};

    fn record(status: Option<u16>, error: Option<AttemptError>) -> AttemptRecord {
        AttemptRecord {
            attempt: 1,
            started_at: 0,
            duration_ms: 1,
            status_code: status,
            error,
            response_body: String::new(),
        }
    }

    #[test]
    fn a_2xx_succeeds_anything_else_is_scheduled_then_dead_lettered() {
        let p = RetryPolicy::new(Backoff::Exponential, 2, 3).unwrap();
        let ok = record(Some(204), None);
        assert_eq!(
            Settlement::after(1, 0, &p, &ok, None, 0),
            Settlement::Succeeded
        );
        let bad = record(Some(500), Some(AttemptError::HttpStatus));
        assert_eq!(
            Settlement::after(1, 0, &p, &bad, None, 0),
            Settlement::RetryAt(2_000)
        );
        assert_eq!(
            Settlement::after(2, 0, &p, &bad, None, 0),
            Settlement::RetryAt(4_000)
        );
        assert_eq!(
            Settlement::after(3, 0, &p, &bad, None, 0),
            Settlement::Failed
        );
    }

    #[test]
    fn gone_ends_a_delivery_at_once() {
        let p = RetryPolicy::new(Backoff::Constant, 1, 5).unwrap();
        let gone = record(Some(410), Some(AttemptError::HttpStatus));
        assert_eq!(
            Settlement::after(1, 0, &p, &gone, None, 0),
            Settlement::Failed
        );
    }

    #[test]
    fn a_renewed_budget_counts_from_its_base() {
        let p = RetryPolicy::new(Backoff::Constant, 1, 2).unwrap();
        let bad = record(None, Some(AttemptError::Connect));
        // Attempts 1 and 2 spent the first budget; a manual retry set the base to 2.
        assert_eq!(
            Settlement::after(3, 2, &p, &bad, None, 10),
            Settlement::RetryAt(1_010)
        );
        assert_eq!(
            Settlement::after(4, 2, &p, &bad, None, 10),
            Settlement::Failed
        );
    }

    #[test]
    fn a_refused_destination_fails_at_once_whatever_the_budget() {
        let p = RetryPolicy::new(Backoff::Exponential, 2, 15).unwrap();
        let blocked = record(None, Some(AttemptError::BlockedAddress));
        assert_eq!(
            Settlement::after(1, 0, &p, &blocked, None, 0),
            Settlement::Failed
        );
    }

    #[test]
    fn retry_after_pushes_later_only() {
        let p = RetryPolicy::new(Backoff::Constant, 5, 3).unwrap();
        let busy = record(Some(503), Some(AttemptError::HttpStatus));
        assert_eq!(
            Settlement::after(1, 0, &p, &busy, Some(60_000), 0),
            Settlement::RetryAt(60_000)
        );
        assert_eq!(
            Settlement::after(1, 0, &p, &busy, Some(1_000), 0),
            Settlement::RetryAt(5_000)
        );
    }

    #[test]
    fn statuses_and_errors_round_trip() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(
            AttemptError::parse("blocked_address"),
            Some(AttemptError::BlockedAddress)
        );
        assert_eq!(
            Lease::duration_for(10_000) + Lease::RECHECK_MS,
            70_000,
            "re-attempted within timeout + 60 s"
        );
    }
}
