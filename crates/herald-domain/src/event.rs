//! Events: the catalogue of types and the envelope — the one JSON shape sent on webhooks, on the
//! WebSocket and kept in the event log (WAHA-compatible field names).

use crate::ids::{EventId, OrgId, SessionId};
use crate::Millis;
use serde::{Deserialize, Serialize};

/// Every kind of event Herald emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    /// An inbound message from someone else.
    #[serde(rename = "message")]
    Message,
    /// Every message, including the ones sent from this session.
    #[serde(rename = "message.any")]
    MessageAny,
    /// A delivery or read receipt for a message.
    #[serde(rename = "message.ack")]
    MessageAck,
    /// A vote on a poll (someone else's, or this session's).
    #[serde(rename = "poll.vote")]
    PollVote,
    /// A vote that could not be decrypted or applied by the engine.
    #[serde(rename = "poll.vote.failed")]
    PollVoteFailed,
    /// A session changed status.
    #[serde(rename = "session.status")]
    SessionStatus,
    /// A test ping for one webhook.
    #[serde(rename = "webhook.test")]
    WebhookTest,
    /// A webhook was disabled by Herald (its receiver answered 410, or it kept failing).
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled,
    /// A delivery was dead-lettered: its attempts are spent.
    #[serde(rename = "delivery.failed")]
    DeliveryFailed,
    /// A webhook's circuit breaker opened: attempts to it pause.
    #[serde(rename = "webhook.paused")]
    WebhookPaused,
    /// A webhook's circuit breaker closed: attempts to it resume.
    #[serde(rename = "webhook.resumed")]
    WebhookResumed,
}

impl EventType {
    /// The whole catalogue, as `GET /event-types` lists it.
    pub const ALL: [EventType; 11] = [
        Self::Message,
        Self::MessageAny,
        Self::MessageAck,
        Self::PollVote,
        Self::PollVoteFailed,
        Self::SessionStatus,
        Self::WebhookTest,
        Self::WebhookDisabled,
        Self::DeliveryFailed,
        Self::WebhookPaused,
        Self::WebhookResumed,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::MessageAny => "message.any",
            Self::MessageAck => "message.ack",
            Self::PollVote => "poll.vote",
            Self::PollVoteFailed => "poll.vote.failed",
            Self::SessionStatus => "session.status",
            Self::WebhookTest => "webhook.test",
            Self::WebhookDisabled => "webhook.disabled",
            Self::DeliveryFailed => "delivery.failed",
            Self::WebhookPaused => "webhook.paused",
            Self::WebhookResumed => "webhook.resumed",
        }
    }

    /// Whether this is an operational event about one of the organization's webhooks (its
    /// payload names it in `webhookId`; that webhook never receives it).
    pub fn is_operational(self) -> bool {
        matches!(
            self,
            Self::WebhookDisabled
                | Self::DeliveryFailed
                | Self::WebhookPaused
                | Self::WebhookResumed
        )
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// A one-line description for the catalogue.
    pub fn description(self) -> &'static str {
        match self {
            Self::Message => "An inbound message from someone else.",
            Self::MessageAny => "Any message, including those sent from the session.",
            Self::MessageAck => "A message was delivered, read or played (a receipt).",
            Self::PollVote => "A vote on a poll, cast by anyone including the session.",
            Self::PollVoteFailed => "A poll vote the engine could not apply.",
            Self::SessionStatus => "A session changed status.",
            Self::WebhookTest => "A test event sent to one webhook on request.",
            Self::WebhookDisabled => {
                "Herald disabled a webhook (its receiver answered 410, or it kept failing)."
            }
            Self::DeliveryFailed => "A delivery spent its attempts and was dead-lettered.",
            Self::WebhookPaused => "A webhook's circuit breaker opened: attempts to it pause.",
            Self::WebhookResumed => "A webhook's circuit breaker closed: attempts to it resume.",
        }
    }

    /// Whether events of this type go to the event log and the WebSocket (all but tests).
    pub fn is_logged(self) -> bool {
        self != Self::WebhookTest
    }
}

/// The `me` object: the account a session is connected as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// The account's id on the network, e.g. `15550001234@c.us`.
    pub id: String,
}

impl From<&str> for Me {
    fn from(id: &str) -> Self {
        Self { id: id.to_owned() }
    }
}

/// An event as delivered everywhere.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Unique per event; receivers drop duplicates with it.
    pub id: EventId,
    /// When the event happened (epoch ms).
    pub timestamp: Millis,
    /// The event type.
    pub event: EventType,
    /// The session it concerns, if any.
    pub session: Option<SessionId>,
    /// The owning organization.
    pub organization_id: OrgId,
    /// The session's account, when known.
    pub me: Option<Me>,
    /// Type-specific content.
    pub payload: serde_json::Value,
}

impl Envelope {
    /// A new event with a fresh id.
    pub fn new(
        event: EventType,
        organization_id: OrgId,
        session: Option<SessionId>,
        me: Option<Me>,
        timestamp: Millis,
        payload: serde_json::Value,
    ) -> Self {
        Self {
            id: EventId::generate(),
            timestamp,
            event,
            session,
            organization_id,
            me,
            payload,
        }
    }

    /// The exact bytes sent and signed.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an envelope always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_uses_the_documented_field_names() {
        let org = OrgId::parse("org_a").unwrap();
        let env = Envelope::new(
            EventType::PollVote,
            org,
            None,
            Some(Me {
                id: "1@c.us".into(),
            }),
            5,
            serde_json::json!({}),
        );
        let value: serde_json::Value = serde_json::from_str(&env.to_json()).unwrap();
        for key in [
            "id",
            "timestamp",
            "event",
            "session",
            "organizationId",
            "me",
            "payload",
        ] {
            assert!(value.get(key).is_some(), "missing {key}");
        }
        assert_eq!(value["event"], "poll.vote");
        assert!(value["id"].as_str().unwrap().starts_with("evt_"));
    }

    #[test]
    fn catalogue_round_trips() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert!(!EventType::WebhookTest.is_logged());
    }
}
