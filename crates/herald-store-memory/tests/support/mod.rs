//! What every use-case test starts from: callers, a webhook, a working session, a stored poll.

#![allow(dead_code)] // each test binary uses its own part of this

use herald_domain::event::{EventType, Me};
use herald_domain::gateway::Gateway;
use herald_domain::message::MessageContent;
use herald_domain::messaging::{Inbound, InboundEvent, IncomingMessage};
use herald_domain::poll::Poll;
use herald_domain::session::Session;
use herald_domain::webhook::{Webhook, WebhookFields};
use herald_domain::{Capabilities, DomainError, EventId, OrgId, Principal};
use herald_store_memory::{block_on, FakeEngine, Harness};

pub fn org(name: &str) -> OrgId {
    OrgId::parse(name).unwrap()
}

/// A caller of `org` holding `capabilities` (a comma-separated list).
pub fn caller(org_name: &str, capabilities: &str) -> Principal {
    Principal::trusted(
        org(org_name),
        Capabilities::parse_list(capabilities).unwrap(),
    )
}

/// A caller of `org` holding every capability.
pub fn admin(org_name: &str) -> Principal {
    Principal::trusted(org(org_name), Capabilities::ALL)
}

/// A webhook of the caller's receiving `events` (wire names, `*` for all).
pub fn webhook(h: &Harness, caller: &Principal, events: &[&str]) -> Webhook {
    webhook_with(h, caller, events, None)
}

/// A webhook of the caller's receiving `events`, of `session` only when given.
pub fn webhook_with(
    h: &Harness,
    caller: &Principal,
    events: &[&str],
    session: Option<&Session>,
) -> Webhook {
    let fields = WebhookFields {
        url: Some("https://hooks.example.com/herald".into()),
        events: Some(events.iter().map(|e| e.to_string()).collect()),
        session_id: session.map(|s| Some(s.id.to_string())),
        ..WebhookFields::default()
    };
    block_on(h.gateway.create_webhook(caller, fields))
        .unwrap()
        .webhook
}

/// A session of the caller's that the fake engine brought up `WORKING`.
pub fn working_session(h: &Harness, caller: &Principal, name: &str) -> Session {
    let session = block_on(h.gateway.create_session(caller, name, None)).unwrap();
    assert_eq!(
        session.me,
        Some(Me {
            id: FakeEngine::ACCOUNT.into()
        })
    );
    session
}

/// A poll of `selectable` choices among `options`, sent by `sender` in `chat` and reported
/// through the inbound API; returns the poll message's id.
pub fn poll_in(
    gateway: &Gateway,
    caller: &Principal,
    session: &Session,
    chat: &str,
    sender: &str,
    options: &[&str],
    selectable: u32,
) -> String {
    let poll = Poll::new(
        "Lunch?".into(),
        options.iter().map(|o| o.to_string()).collect(),
        selectable,
    )
    .unwrap();
    let id = format!("POLL{}", ulid_like());
    let inbound = Inbound {
        id: None,
        event: InboundEvent::Message(IncomingMessage {
            id: id.clone(),
            chat: chat.into(),
            sender: sender.into(),
            from_me: false,
            timestamp: None,
            content: MessageContent::Poll(poll),
        }),
    };
    block_on(gateway.ingest(caller, &session.id.to_string(), inbound)).unwrap();
    id
}

/// A text message from someone else, reported through the inbound API with key `key`.
pub fn text_in(
    gateway: &Gateway,
    caller: &Principal,
    session: &Session,
    key: Option<&str>,
    body: &str,
) -> Result<EventId, DomainError> {
    let inbound = Inbound {
        id: key.map(str::to_owned),
        event: InboundEvent::Message(IncomingMessage {
            id: format!("MSG{}", ulid_like()),
            chat: "15550009999@c.us".into(),
            sender: "15550009999@c.us".into(),
            from_me: false,
            timestamp: None,
            content: MessageContent::Text {
                body: Some(body.into()),
            },
        }),
    };
    block_on(gateway.ingest(caller, &session.id.to_string(), inbound))
}

/// The types of the events the store holds, oldest first.
pub fn types(h: &Harness) -> Vec<EventType> {
    h.store.appended().iter().map(|e| e.event).collect()
}

/// A unique id fragment.
fn ulid_like() -> String {
    herald_domain::EventId::generate().to_string()
}
