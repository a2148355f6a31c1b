//! The API's error precedence, as every use case enforces it: capability (403), then request
//! values (422), then named resources (404), then rules about the target (400), then state
//! (409). Each test breaks two layers at once and expects the earlier one to answer.

mod support;

use herald_domain::messaging::VoteRequest;
use herald_domain::ports::StatusReport;
use herald_domain::session::SessionStatus;
use herald_domain::webhook::WebhookFields;
use herald_domain::{Capability, DomainError, SessionId, WebhookId};
use herald_store_memory::{block_on, Harness};
use support::*;

fn vote(options: &[&str]) -> VoteRequest {
    VoteRequest {
        chat: "group@g.us".into(),
        sender: "15550002222@c.us".into(),
        options: options.iter().map(|o| o.to_string()).collect(),
    }
}

#[test]
fn a_missing_capability_answers_before_a_malformed_value() {
    let h = Harness::new();
    let reader = caller("org_a", "read");
    let bad = WebhookFields {
        url: Some("not a url".into()),
        ..WebhookFields::default()
    };
    assert!(matches!(
        block_on(h.gateway.create_webhook(&reader, bad)),
        Err(DomainError::Forbidden(Capability::Manage))
    ));
    let unknown = SessionId::generate().to_string();
    assert!(matches!(
        block_on(h.gateway.send_text(&reader, &unknown, "", "", None)),
        Err(DomainError::Forbidden(Capability::Send))
    ));
}

#[test]
fn a_malformed_value_answers_before_a_missing_resource() {
    let h = Harness::new();
    let me = admin("org_a");
    let patch = WebhookFields {
        url: Some("ftp://nowhere".into()),
        ..WebhookFields::default()
    };
    let unknown = WebhookId::generate().to_string();
    match block_on(h.gateway.update_webhook(&me, &unknown, patch)) {
        Err(DomainError::Invalid { field, .. }) => assert_eq!(field, "url"),
        other => panic!("expected a 422 on url, got {other:?}"),
    }
    let session = SessionId::generate().to_string();
    match block_on(h.gateway.send_text(&me, &session, " ", "hi", None)) {
        Err(DomainError::Invalid { field, .. }) => assert_eq!(field, "chat"),
        other => panic!("expected a 422 on chat, got {other:?}"),
    }
}

#[test]
fn a_missing_resource_answers_before_a_rule_about_it() {
    let h = Harness::new();
    let me = admin("org_a");
    let session = working_session(&h, &me, "sales");
    // The poll does not exist, and the selection would be refused by any poll of two options.
    let answer = block_on(h.gateway.vote(
        &me,
        &session.id.to_string(),
        "NO_SUCH_POLL",
        vote(&["A", "B", "C"]),
    ));
    assert!(matches!(answer, Err(DomainError::NotFound("poll message"))));
    // Another organization's session is as missing as one that never existed.
    let poll = poll_in(
        &h.gateway,
        &me,
        &session,
        "group@g.us",
        "15550002222@c.us",
        &["A", "B"],
        1,
    );
    let answer = block_on(h.gateway.vote(
        &admin("org_b"),
        &session.id.to_string(),
        &poll,
        vote(&["nope"]),
    ));
    assert!(matches!(answer, Err(DomainError::NotFound("session"))));
}

#[test]
fn a_rule_about_the_target_answers_before_its_state() {
    let h = Harness::new();
    let me = admin("org_a");
    // The engine reports nothing at start: the session stays STARTING and cannot send.
    h.engine.starts_with(Vec::new());
    let session = block_on(h.gateway.create_session(&me, "idle", None)).unwrap();
    assert_eq!(session.status, SessionStatus::Starting);
    let poll = poll_in(
        &h.gateway,
        &me,
        &session,
        "group@g.us",
        "15550002222@c.us",
        &["A", "B"],
        1,
    );
    let id = session.id.to_string();
    assert!(matches!(
        block_on(h.gateway.vote(&me, &id, &poll, vote(&["A", "B"]))),
        Err(DomainError::Rule(_))
    ));
    // A valid selection meets the state: a STARTING session cannot send.
    assert!(matches!(
        block_on(h.gateway.vote(&me, &id, &poll, vote(&["A"]))),
        Err(DomainError::Conflict(_))
    ));
    assert!(
        !h.engine.calls().iter().any(|c| c.starts_with("send_vote")),
        "the engine is not asked when a check fails"
    );
}

#[test]
fn a_missing_delivery_answers_before_an_inactive_webhook() {
    let h = Harness::new();
    let me = admin("org_a");
    let hook = webhook(&h, &me, &["*"]);
    working_session(&h, &me, "sales");
    let off = WebhookFields {
        active: Some(false),
        ..WebhookFields::default()
    };
    block_on(h.gateway.update_webhook(&me, &hook.id.to_string(), off)).unwrap();
    let hook_id = hook.id.to_string();
    let missing = herald_domain::DeliveryId::generate().to_string();
    assert!(matches!(
        block_on(h.gateway.retry_delivery(&me, &hook_id, &missing)),
        Err(DomainError::NotFound("delivery"))
    ));
    let page = block_on(h.gateway.list_deliveries(
        &me,
        &hook_id,
        &herald_domain::deliveries::DeliveryQuery::parse(None, None, None).unwrap(),
    ))
    .unwrap();
    let cancelled = page
        .data
        .first()
        .expect("the session's events were delivered");
    assert!(matches!(
        block_on(
            h.gateway
                .retry_delivery(&me, &hook_id, &cancelled.id.to_string())
        ),
        Err(DomainError::Conflict(_))
    ));
}

#[test]
fn foreign_and_malformed_ids_are_simply_not_found() {
    let h = Harness::new();
    let hook = webhook(&h, &admin("org_a"), &["*"]);
    let them = admin("org_b");
    for id in [hook.id.to_string(), "wh_nonsense".into(), String::new()] {
        assert!(matches!(
            block_on(h.gateway.get_webhook(&them, &id)),
            Err(DomainError::NotFound("webhook"))
        ));
    }
    assert!(matches!(
        block_on(h.gateway.delete_webhook(&them, &hook.id.to_string())),
        Err(DomainError::NotFound("webhook"))
    ));
    assert_eq!(
        block_on(h.gateway.list_webhooks(&admin("org_a")))
            .unwrap()
            .len(),
        1,
        "a foreign delete removes nothing"
    );
}

#[test]
fn an_unreachable_store_is_an_outage_not_an_answer() {
    let h = Harness::new();
    let me = admin("org_a");
    h.store.set_down(true);
    assert!(matches!(
        block_on(h.gateway.list_webhooks(&me)),
        Err(DomainError::Unavailable(_))
    ));
    h.store.set_down(false);
    assert!(block_on(h.gateway.list_webhooks(&me)).unwrap().is_empty());
}

#[test]
fn an_engine_failure_stores_nothing() {
    let h = Harness::new();
    let me = admin("org_a");
    let session = working_session(&h, &me, "sales");
    let before = h.store.event_count();
    h.engine
        .fail_next(herald_domain::ports::EngineError::Unavailable(
            "down".into(),
        ));
    assert!(matches!(
        block_on(
            h.gateway
                .send_text(&me, &session.id.to_string(), "1@c.us", "hi", None)
        ),
        Err(DomainError::Engine(_))
    ));
    assert_eq!(h.store.event_count(), before);
    // And a status report still applies once the engine is back.
    let report = StatusReport::new(SessionStatus::Stopped, None);
    let stopped = block_on(h.gateway.apply_status(session, report)).unwrap();
    assert_eq!(stopped.status, SessionStatus::Stopped);
}
