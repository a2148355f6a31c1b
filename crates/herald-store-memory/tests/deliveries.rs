//! Fan-out and the delivery use cases against the memory store: which webhooks an event reaches,
//! and what a manual retry, a recovery and a test ping do to the queue the dispatcher works.

mod support;

use herald_domain::deliveries::DeliveryQuery;
use herald_domain::delivery::{
    AttemptError, AttemptOutcome, AttemptRecord, ClaimedDelivery, Delivery, DeliveryStatus, Lane,
    Lease, Settlement,
};
use herald_domain::event::EventType;
use herald_domain::health::HealthPolicy;
use herald_domain::ports::{Clock, DeliveryQueue};
use herald_domain::webhook::{Webhook, WebhookFields};
use herald_domain::{DomainError, Principal};
use herald_store_memory::{block_on, Harness};
use support::*;

fn deliveries(h: &Harness, me: &Principal, hook: &Webhook) -> Vec<Delivery> {
    let query = DeliveryQuery::parse(None, Some("200"), None).unwrap();
    block_on(h.gateway.list_deliveries(me, &hook.id.to_string(), &query))
        .unwrap()
        .data
}

fn lease(h: &Harness) -> Lease {
    Lease {
        owner: "dispatcher-1".into(),
        until: h.time.now_ms() + 60_000,
    }
}

fn claim(h: &Harness, lane: Lane) -> Vec<ClaimedDelivery> {
    block_on(
        h.store
            .claim_deliveries(lane, &lease(h), h.time.now_ms(), 100, &[]),
    )
    .unwrap()
}

/// Writes a failed attempt of `claimed` that spends its budget.
fn fail_for_good(h: &Harness, claimed: &ClaimedDelivery) {
    fail_with(h, claimed, 500);
}

fn fail_with(h: &Harness, claimed: &ClaimedDelivery, status: u16) {
    let record = AttemptRecord {
        attempt: claimed.attempt,
        started_at: h.time.now_ms(),
        duration_ms: 12,
        status_code: Some(status),
        error: Some(AttemptError::HttpStatus),
        response_body: String::new(),
    };
    let outcome = AttemptOutcome {
        delivery_id: claimed.id,
        webhook_id: claimed.webhook_id,
        event_id: claimed.event_id,
        settlement: Settlement::Failed,
        record,
    };
    let written = block_on(h.store.complete_attempts(
        "dispatcher-1",
        &[outcome],
        &HealthPolicy::default(),
        h.time.now_ms(),
    ))
    .unwrap();
    assert_eq!(written, 1);
}

#[test]
fn an_event_reaches_the_active_webhooks_of_its_organization_whose_filter_it_passes() {
    let h = Harness::new();
    let me = admin("org_a");
    let messages = webhook(&h, &me, &["message"]);
    let everything = webhook(&h, &me, &["*"]);
    let statuses = webhook(&h, &me, &["session.status"]);
    let inactive = webhook(&h, &me, &["*"]);
    block_on(h.gateway.update_webhook(
        &me,
        &inactive.id.to_string(),
        WebhookFields {
            active: Some(false),
            ..WebhookFields::default()
        },
    ))
    .unwrap();
    let theirs = webhook(&h, &admin("org_b"), &["*"]);
    let session = working_session(&h, &me, "sales");
    text_in(&h.gateway, &me, &session, None, "hello").unwrap();
    let kinds = |hook: &Webhook| -> Vec<EventType> {
        let mut kinds: Vec<EventType> = deliveries(&h, &me, hook).iter().map(|d| d.event).collect();
        kinds.sort_by_key(|k| k.as_str());
        kinds
    };
    assert_eq!(kinds(&messages), [EventType::Message]);
    assert_eq!(
        kinds(&everything),
        [
            EventType::Message,
            EventType::MessageAny,
            EventType::SessionStatus,
            EventType::SessionStatus
        ]
    );
    assert_eq!(kinds(&statuses), [EventType::SessionStatus; 2]);
    assert!(kinds(&inactive).is_empty());
    assert!(deliveries(&h, &admin("org_b"), &theirs).is_empty());
    assert!(matches!(
        block_on(h.gateway.list_deliveries(
            &admin("org_b"),
            &everything.id.to_string(),
            &DeliveryQuery::parse(None, None, None).unwrap(),
        )),
        Err(DomainError::NotFound("webhook"))
    ));
}

#[test]
fn a_session_scoped_webhook_receives_only_its_sessions_events() {
    let h = Harness::new();
    let me = admin("org_a");
    let one = working_session(&h, &me, "one");
    let hook = webhook_with(&h, &me, &["message"], Some(&one));
    h.engine
        .starts_with(vec![herald_domain::ports::StatusReport::new(
            herald_domain::session::SessionStatus::Working,
            Some(herald_domain::event::Me {
                id: "15550000002@c.us".into(),
            }),
        )]);
    let two = block_on(h.gateway.create_session(&me, "two", None)).unwrap();
    text_in(&h.gateway, &me, &two, None, "elsewhere").unwrap();
    assert!(deliveries(&h, &me, &hook).is_empty());
    text_in(&h.gateway, &me, &one, None, "here").unwrap();
    assert_eq!(deliveries(&h, &me, &hook).len(), 1);
}

#[test]
fn deactivating_a_webhook_cancels_its_pending_deliveries() {
    let h = Harness::new();
    let me = admin("org_a");
    let hook = webhook(&h, &me, &["*"]);
    working_session(&h, &me, "sales");
    assert!(deliveries(&h, &me, &hook)
        .iter()
        .all(|d| d.status == DeliveryStatus::Pending));
    block_on(h.gateway.update_webhook(
        &me,
        &hook.id.to_string(),
        WebhookFields {
            active: Some(false),
            ..WebhookFields::default()
        },
    ))
    .unwrap();
    let after = deliveries(&h, &me, &hook);
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|d| d.status == DeliveryStatus::Cancelled));
    assert!(claim(&h, Lane::Fresh).is_empty());
}

#[test]
fn a_manual_retry_requeues_a_dead_letter_with_a_fresh_budget() {
    let h = Harness::new();
    let me = admin("org_a");
    let hook = webhook(&h, &me, &["message"]);
    let session = working_session(&h, &me, "sales");
    text_in(&h.gateway, &me, &session, None, "hello").unwrap();
    let claimed = claim(&h, Lane::Fresh);
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].attempt, claimed[0].budget_base), (1, 0));
    assert!(claimed[0].envelope.contains("hello"));
    // While the attempt is in flight a retry is refused.
    let id = claimed[0].id.to_string();
    let hook_id = hook.id.to_string();
    assert!(matches!(
        block_on(h.gateway.retry_delivery(&me, &hook_id, &id)),
        Err(DomainError::Conflict(_))
    ));
    fail_for_good(&h, &claimed[0]);
    let dead = &deliveries(&h, &me, &hook)[0];
    assert_eq!((dead.status, dead.attempts), (DeliveryStatus::Failed, 1));
    assert!(h
        .store
        .appended()
        .iter()
        .any(|e| e.event == EventType::DeliveryFailed));
    h.time.advance(5_000);
    let retried = block_on(h.gateway.retry_delivery(&me, &hook_id, &id)).unwrap();
    assert_eq!(retried.status, DeliveryStatus::Pending);
    assert_eq!(retried.next_attempt_at, Some(h.time.now_ms()));
    assert!(h.listener.heard().contains(&"requeued org_a".to_owned()));
    let again = claim(&h, Lane::Retry);
    assert_eq!(
        (again.len(), again[0].attempt, again[0].budget_base),
        (1, 2, 1)
    );
    let detail = block_on(h.gateway.get_delivery(&me, &hook_id, &id)).unwrap();
    assert_eq!(detail.attempt_log.len(), 1);
    assert_eq!(detail.attempt_log[0].status_code, Some(500));
    assert_eq!(detail.envelope.unwrap()["payload"]["body"], "hello");
}

#[test]
fn recovery_requeues_the_dead_letters_created_in_its_window() {
    let h = Harness::new();
    let me = admin("org_a");
    let hook = webhook(&h, &me, &["message"]);
    let session = working_session(&h, &me, "sales");
    text_in(&h.gateway, &me, &session, None, "early").unwrap();
    let early = h.time.now_ms();
    h.time.advance(60_000);
    text_in(&h.gateway, &me, &session, None, "late").unwrap();
    for claimed in claim(&h, Lane::Fresh) {
        fail_for_good(&h, &claimed);
    }
    let hook_id = hook.id.to_string();
    let later = early + 30_000;
    assert_eq!(
        block_on(h.gateway.recover_deliveries(&me, &hook_id, later, None)).unwrap(),
        1
    );
    for d in deliveries(&h, &me, &hook) {
        let expected = if d.created_at >= later {
            DeliveryStatus::Pending
        } else {
            DeliveryStatus::Failed
        };
        assert_eq!(d.status, expected);
    }
    assert_eq!(
        block_on(h.gateway.recover_deliveries(&me, &hook_id, 0, None)).unwrap(),
        1,
        "only failed ones are recovered"
    );
    assert!(matches!(
        block_on(
            h.gateway
                .recover_deliveries(&admin("org_b"), &hook_id, 0, None)
        ),
        Err(DomainError::NotFound("webhook"))
    ));
    match block_on(h.gateway.recover_deliveries(&me, &hook_id, -1, None)) {
        Err(DomainError::Invalid { field, .. }) => assert_eq!(field, "since"),
        other => panic!("expected a 422 on since, got {other:?}"),
    }
}

#[test]
fn a_stale_lease_holder_cannot_write_an_outcome() {
    let h = Harness::new();
    let me = admin("org_a");
    webhook(&h, &me, &["message"]);
    let session = working_session(&h, &me, "sales");
    text_in(&h.gateway, &me, &session, None, "hello").unwrap();
    let first = claim(&h, Lane::Fresh);
    // The lease lapses and another dispatcher claims the delivery.
    h.time.advance(61_000);
    let other = Lease {
        owner: "dispatcher-2".into(),
        until: h.time.now_ms() + 60_000,
    };
    let second = block_on(
        h.store
            .claim_deliveries(Lane::Fresh, &other, h.time.now_ms(), 10, &[]),
    )
    .unwrap();
    assert_eq!(second[0].id, first[0].id);
    let outcome = AttemptOutcome {
        delivery_id: first[0].id,
        webhook_id: first[0].webhook_id,
        event_id: first[0].event_id,
        settlement: Settlement::Succeeded,
        record: AttemptRecord {
            attempt: 1,
            started_at: h.time.now_ms(),
            duration_ms: 1,
            status_code: Some(200),
            error: None,
            response_body: String::new(),
        },
    };
    let written = block_on(h.store.complete_attempts(
        "dispatcher-1",
        &[outcome],
        &HealthPolicy::default(),
        h.time.now_ms(),
    ))
    .unwrap();
    assert_eq!(written, 0);
    assert_eq!(
        block_on(h.store.release_leases("dispatcher-2", &[])).unwrap(),
        1
    );
    assert_eq!(
        claim(&h, Lane::Fresh).len(),
        1,
        "released work is claimable at once"
    );
}

#[test]
fn a_test_ping_reaches_only_its_webhook_and_stays_out_of_the_log() {
    let h = Harness::new();
    let me = admin("org_a");
    let hook = webhook(&h, &me, &["message"]);
    let bystander = webhook(&h, &me, &["*"]);
    let ping = block_on(h.gateway.test_webhook(&me, &hook.id.to_string())).unwrap();
    let sent = deliveries(&h, &me, &hook);
    assert_eq!((sent.len(), sent[0].id), (1, ping.delivery_id));
    assert_eq!(sent[0].event, EventType::WebhookTest);
    assert!(deliveries(&h, &me, &bystander).is_empty());
    let page = block_on(h.gateway.list_events(&me, None, Default::default(), 10)).unwrap();
    assert!(page.events.is_empty());
}

#[test]
fn delivery_pages_run_newest_first_and_resume_after_their_cursor() {
    let h = Harness::new();
    let me = admin("org_a");
    let hook = webhook(&h, &me, &["message"]);
    let session = working_session(&h, &me, "sales");
    for n in 0..5 {
        text_in(&h.gateway, &me, &session, None, &format!("m{n}")).unwrap();
    }
    let all = deliveries(&h, &me, &hook);
    let hook_id = hook.id.to_string();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = DeliveryQuery::parse(None, Some("2"), cursor.as_deref()).unwrap();
        let page = block_on(h.gateway.list_deliveries(&me, &hook_id, &query)).unwrap();
        seen.extend(page.data.iter().map(|d| d.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, all.iter().map(|d| d.id).collect::<Vec<_>>());
    assert_eq!(seen.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
}

#[test]
fn a_gone_endpoint_disables_its_webhook_and_cancels_the_rest() {
    let h = Harness::new();
    let me = admin("org_a");
    let hook = webhook(&h, &me, &["message"]);
    let watcher = webhook(&h, &me, &["webhook.disabled"]);
    let session = working_session(&h, &me, "sales");
    text_in(&h.gateway, &me, &session, None, "one").unwrap();
    text_in(&h.gateway, &me, &session, None, "two").unwrap();
    let claimed =
        block_on(
            h.store
                .claim_deliveries(Lane::Fresh, &lease(&h), h.time.now_ms(), 1, &[]),
        )
        .unwrap();
    fail_with(&h, &claimed[0], 410);
    let after = block_on(h.gateway.get_webhook(&me, &hook.id.to_string())).unwrap();
    assert!(!after.active);
    let statuses: Vec<DeliveryStatus> = deliveries(&h, &me, &hook)
        .iter()
        .map(|d| d.status)
        .collect();
    assert!(statuses.contains(&DeliveryStatus::Failed));
    assert!(statuses.contains(&DeliveryStatus::Cancelled));
    assert_eq!(
        deliveries(&h, &me, &watcher).len(),
        1,
        "told through webhook.disabled"
    );
}
