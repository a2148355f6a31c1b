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
    /// The connection was refused or broke.
    Connect,
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
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Dns => "dns",
            Self::BlockedAddress => "blocked_address",
            Self::HttpStatus => "http_status",
            Self::Tls => "tls",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Timeout,
            Self::Connect,
            Self::Dns,
            Self::BlockedAddress,
            Self::HttpStatus,
            Self::Tls,
        ]
        .into_iter()
        .find(|e| e.as_str() == text)
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
