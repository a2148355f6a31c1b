//! The delivery queue's store contract, on SQLite and on the real Postgres: leases are
//! exclusive, lanes are separate, saturated webhooks are skipped, only the lease holder's outcome
//! is written, released and lapsed leases come back, and retention keeps what is still needed.

use herald_domain::delivery::{
    AttemptError, AttemptOutcome, AttemptRecord, DeliveryStatus, Lane, Lease, RetryAnswer,
    Settlement,
};
use herald_domain::event::{Envelope, EventType};
use herald_domain::ports::Store;
use herald_domain::webhook::{Webhook, WebhookFields};
use herald_domain::{OrgId, WebhookId};
use herald_store::StoreOptions;
use herald_testkit::{per_backend, Backend, TestDb};
use std::sync::Arc;

const NOW: i64 = 1_900_000_000_000;

fn org() -> OrgId {
    OrgId::parse("org_q").unwrap()
}

fn webhook() -> Webhook {
    WebhookFields {
        url: Some("https://example.com/h".into()),
        ..Default::default()
    }
    .create(WebhookId::generate(), org(), NOW)
    .unwrap()
    .webhook
}

fn event(at: i64) -> Envelope {
    Envelope::new(
        EventType::SessionStatus,
        org(),
        None,
        None,
        at,
        serde_json::json!({"status": "WORKING"}),
    )
}

fn lease(owner: &str, until: i64) -> Lease {
    Lease {
        owner: owner.into(),
        until,
    }
}

fn outcome(
    id: herald_domain::DeliveryId,
    attempt: u32,
    status: Option<u16>,
    settlement: Settlement,
) -> AttemptOutcome {
    AttemptOutcome {
        delivery_id: id,
        // A webhook the store does not have: these outcomes leave health alone.
        webhook_id: herald_domain::WebhookId::generate(),
        event_id: herald_domain::EventId::generate(),
        record: AttemptRecord {
            attempt,
            started_at: NOW,
            duration_ms: 5,
            status_code: status,
            error: (status != Some(200)).then_some(AttemptError::HttpStatus),
            response_body: "body".into(),
        },
        settlement,
    }
}

async fn open(db: &TestDb) -> Arc<dyn Store> {
    herald_store::open(&db.database, &StoreOptions { max_connections: 4 })
        .await
        .unwrap()
}

async fn claims_are_exclusive_and_only_the_holder_completes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let (a, b) = (webhook(), webhook());
    store.insert_webhook(&a, None).await.unwrap();
    store.insert_webhook(&b, None).await.unwrap();
    store
        .append_events(&[event(NOW - 3), event(NOW - 2), event(NOW + 60_000)])
        .await
        .unwrap();

    // Two due events × two webhooks; the third event is not due yet.
    let first = store
        .claim_deliveries(Lane::Fresh, &lease("one", NOW + 70_000), NOW, 3, &[])
        .await
        .unwrap();
    assert_eq!(first.len(), 3, "{backend:?}");
    assert!(first.iter().all(|c| c.attempt == 1 && c.budget_base == 0));
    assert!(first
        .iter()
        .all(|c| c.envelope.contains("\"session.status\"")));
    let rest = store
        .claim_deliveries(Lane::Fresh, &lease("two", NOW + 70_000), NOW, 10, &[])
        .await
        .unwrap();
    assert_eq!(rest.len(), 1, "leased rows are never claimed twice");
    assert!(store
        .claim_deliveries(Lane::Retry, &lease("two", NOW + 70_000), NOW, 10, &[])
        .await
        .unwrap()
        .is_empty());

    // A saturated webhook is skipped.
    store.release_leases("two", &[]).await.unwrap();
    let skip = store
        .claim_deliveries(
            Lane::Fresh,
            &lease("two", NOW + 70_000),
            NOW,
            10,
            &[rest[0].webhook_id],
        )
        .await
        .unwrap();
    assert!(skip.is_empty());

    // A stale holder's outcome is dropped; the holder's is written and clears the lease.
    let target = first[0].id;
    let stale = store
        .complete_attempts(
            "two",
            &[outcome(target, 1, Some(200), Settlement::Succeeded)],
            &herald_domain::health::HealthPolicy::default(),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(stale, 0);
    let written = store
        .complete_attempts(
            "one",
            &[
                outcome(target, 1, Some(500), Settlement::RetryAt(NOW + 2_000)),
                outcome(first[1].id, 1, Some(200), Settlement::Succeeded),
            ],
            &herald_domain::health::HealthPolicy::default(),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(written, 2);
    let detail = store
        .find_delivery(&org(), &first[0].webhook_id, &target)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.delivery.status, DeliveryStatus::Pending);
    assert_eq!(detail.delivery.attempts, 1);
    assert_eq!(detail.delivery.next_attempt_at, Some(NOW + 2_000));
    assert_eq!(detail.delivery.last_status_code, Some(500));
    assert_eq!(detail.attempt_log.len(), 1);
    assert!(detail.envelope.is_some());

    // The failed one now waits in the retry lane, due at +2 s.
    assert_eq!(
        store.next_claimable_at(Lane::Retry, NOW).await.unwrap(),
        Some(NOW + 2_000)
    );
    assert!(store
        .claim_deliveries(Lane::Retry, &lease("one", NOW + 70_000), NOW, 10, &[])
        .await
        .unwrap()
        .is_empty());
    let retry = store
        .claim_deliveries(
            Lane::Retry,
            &lease("one", NOW + 72_000),
            NOW + 2_000,
            10,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].attempt, 2);

    // A lapsed lease comes back to anyone.
    let lapsed = store
        .claim_deliveries(
            Lane::Retry,
            &lease("two", NOW + 200_000),
            NOW + 80_000,
            10,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(lapsed.len(), 1, "the lease of `one` lapsed at +72 s");

    // Retry while leased is refused; after the lease lapses it is requeued.
    let id = lapsed[0].id;
    let hook = lapsed[0].webhook_id;
    assert_eq!(
        store
            .retry_delivery(&org(), &hook, &id, NOW + 90_000)
            .await
            .unwrap(),
        RetryAnswer::InFlight
    );
    match store
        .retry_delivery(&org(), &hook, &id, NOW + 300_000)
        .await
        .unwrap()
    {
        RetryAnswer::Requeued(d) => assert_eq!(d.next_attempt_at, Some(NOW + 300_000)),
        other => panic!("{other:?}"),
    }
    let foreign = OrgId::parse("org_other").unwrap();
    assert_eq!(
        store
            .retry_delivery(&foreign, &hook, &id, NOW)
            .await
            .unwrap(),
        RetryAnswer::NotFound
    );

    let backlog = store.delivery_backlog(NOW + 300_000).await.unwrap();
    assert_eq!(backlog.pending, 5, "6 deliveries, one succeeded");
}

async fn dead_letters_recover_and_retention_keeps_what_is_pending(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let hook = webhook();
    store.insert_webhook(&hook, None).await.unwrap();
    let old = event(NOW - 10_000);
    store
        .append_events(&[old.clone(), event(NOW)])
        .await
        .unwrap();
    let claimed = store
        .claim_deliveries(Lane::Fresh, &lease("me", NOW + 70_000), NOW, 10, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let old_delivery = claimed.iter().find(|c| c.event_id == old.id).unwrap().id;
    store
        .complete_attempts(
            "me",
            &[outcome(old_delivery, 1, Some(500), Settlement::Failed)],
            &herald_domain::health::HealthPolicy::default(),
            NOW,
        )
        .await
        .unwrap();
    store.release_leases("me", &[]).await.unwrap();

    let page = store
        .list_deliveries(
            &org(),
            Some(&hook.id),
            &herald_domain::deliveries::DeliveryQuery::parse(Some("failed"), Some("10"), None)
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(page.data.len(), 1, "{backend:?}");
    assert_eq!(page.next_cursor, None);

    // Recovery renews the budget: the next attempt is number 2 with base 1.
    let n = store
        .recover_deliveries(&org(), &hook.id, NOW - 20_000, NOW, NOW + 5)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let again = store
        .claim_deliveries(Lane::Retry, &lease("me", NOW + 70_000), NOW + 5, 10, &[])
        .await
        .unwrap();
    assert_eq!((again[0].attempt, again[0].budget_base), (2, 1));
    store
        .complete_attempts(
            "me",
            &[outcome(old_delivery, 2, Some(200), Settlement::Succeeded)],
            &herald_domain::health::HealthPolicy::default(),
            NOW + 6,
        )
        .await
        .unwrap();

    // Retention: the finished old delivery and its event go; the pending one stays.
    let pruned = store.prune_deliveries(NOW - 1).await.unwrap();
    assert_eq!((pruned.deliveries, pruned.events), (1, 1));
    let backlog = store.delivery_backlog(NOW + 10).await.unwrap();
    assert_eq!(backlog.pending, 1);
    assert_eq!(backlog.oldest_due_age_ms, 10);
}

/// The retention sweep deletes in bounded chunks; a backlog of more than two chunks' worth of
/// finished deliveries (and their events) goes all the same, and what is pending stays.
async fn retention_sweeps_a_backlog_larger_than_its_chunks(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let hook = webhook();
    store.insert_webhook(&hook, None).await.unwrap();
    const OLD: usize = 2_100;
    let old: Vec<Envelope> = (0..OLD).map(|_| event(NOW - 10_000)).collect();
    store.append_events(&old).await.unwrap();
    let claimed = store
        .claim_deliveries(Lane::Fresh, &lease("me", NOW + 70_000), NOW, OLD, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), OLD, "{backend:?}");
    let outcomes: Vec<AttemptOutcome> = claimed
        .iter()
        .map(|c| outcome(c.id, 1, Some(200), Settlement::Succeeded))
        .collect();
    store
        .complete_attempts(
            "me",
            &outcomes,
            &herald_domain::health::HealthPolicy::default(),
            NOW,
        )
        .await
        .unwrap();
    store.append_events(&[event(NOW - 10_000)]).await.unwrap();

    let pruned = store.prune_deliveries(NOW - 1).await.unwrap();
    assert_eq!(
        (pruned.deliveries, pruned.events),
        (OLD as u64, OLD as u64),
        "{backend:?}"
    );
    assert_eq!(store.delivery_backlog(NOW).await.unwrap().pending, 1);
}

async fn rotations_compare_and_set_and_housekeeping_erases_ended_graces(backend: Backend) {
    use herald_domain::ports::{PreviousSecret, SealedSecret, StoredSecrets};
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let hook = webhook();
    let first = SealedSecret("sealed-first".into());
    store.insert_webhook(&hook, Some(&first)).await.unwrap();
    let ended = StoredSecrets {
        current: Some(SealedSecret("sealed-second".into())),
        previous: vec![PreviousSecret {
            sealed: first.clone(),
            until: 1,
        }],
    };
    // Only a rotation that read the current secret may replace it.
    let stale = SealedSecret("not-the-current-one".into());
    assert!(!store
        .replace_webhook_secrets(&org(), &hook.id, Some(&stale), &ended, NOW)
        .await
        .unwrap());
    assert!(store
        .replace_webhook_secrets(&org(), &hook.id, Some(&first), &ended, NOW)
        .await
        .unwrap());
    let read = store.webhook_secrets(&org(), &hook.id).await.unwrap();
    assert_eq!(read, Some(ended.clone()), "{backend:?}");
    store.prune_deliveries(0).await.unwrap();
    let read = store
        .webhook_secrets(&org(), &hook.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.current, ended.current);
    assert!(read.previous.is_empty(), "an ended grace is erased");
    let other = OrgId::parse("org_other").unwrap();
    assert_eq!(store.webhook_secrets(&other, &hook.id).await.unwrap(), None);
}

/// A stand-in for a local dispatcher's direct intake: `room` deliveries at most.
struct Intake {
    room: std::sync::atomic::AtomicUsize,
    handed: std::sync::Mutex<Vec<herald_domain::delivery::ClaimedDelivery>>,
    claimable: std::sync::atomic::AtomicUsize,
}

impl herald_domain::ports::DirectDispatch for Intake {
    fn owner(&self) -> &str {
        "local"
    }
    fn lease_ms(&self) -> i64 {
        60_000
    }
    fn reserve(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        self.room
            .fetch_update(SeqCst, SeqCst, |room| room.checked_sub(1))
            .is_ok()
    }
    fn unreserve(&self, count: usize) {
        self.room
            .fetch_add(count, std::sync::atomic::Ordering::SeqCst);
    }
    fn hand_over(&self, deliveries: Vec<herald_domain::delivery::ClaimedDelivery>) {
        self.handed.lock().unwrap().extend(deliveries);
    }
    fn claimable_committed(&self) {
        self.claimable
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Fresh deliveries go to the attached local dispatcher while it has room — written leased to
/// it, so no claim takes them — and the rest are left for a claim, with the dispatcher told.
async fn new_deliveries_go_to_the_local_dispatcher_while_it_has_room(backend: Backend) {
    use std::sync::atomic::Ordering::SeqCst;
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let hook = webhook();
    store.insert_webhook(&hook, None).await.unwrap();
    let intake = Arc::new(Intake {
        room: 2.into(),
        handed: Default::default(),
        claimable: 0.into(),
    });
    store.attach_direct_dispatch(intake.clone());

    store
        .append_events(&[event(NOW), event(NOW), event(NOW)])
        .await
        .unwrap();
    let handed = intake.handed.lock().unwrap().clone();
    assert_eq!(handed.len(), 2, "room for two");
    assert_eq!(intake.room.load(SeqCst), 0);
    assert_eq!(
        intake.claimable.load(SeqCst),
        1,
        "the third was left for a claim"
    );
    for delivery in &handed {
        assert_eq!((delivery.attempt, delivery.webhook_id), (1, hook.id));
        assert_eq!(delivery.lease_until, NOW + 60_000);
        assert!(delivery.envelope.contains("\"session.status\""));
    }
    // Only the one left over can be claimed: the others are leased to the local dispatcher.
    let claimed = store
        .claim_deliveries(Lane::Fresh, &lease("other", NOW + 70_000), NOW, 10, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(handed.iter().all(|d| d.id != claimed[0].id));
    // The lease holder completes a handed-over delivery like a claimed one.
    let written = store
        .complete_attempts(
            "local",
            &[outcome(handed[0].id, 1, Some(200), Settlement::Succeeded)],
            &herald_domain::health::HealthPolicy::default(),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(written, 1);
    // A lapsed lease makes a handed-over delivery claimable by anyone.
    let lapsed = store
        .claim_deliveries(
            Lane::Fresh,
            &lease("other", NOW + 200_000),
            NOW + 61_000,
            10,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        lapsed.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![handed[1].id]
    );
}

per_backend!(
    claims_are_exclusive_and_only_the_holder_completes,
    dead_letters_recover_and_retention_keeps_what_is_pending,
    retention_sweeps_a_backlog_larger_than_its_chunks,
    rotations_compare_and_set_and_housekeeping_erases_ended_graces,
    new_deliveries_go_to_the_local_dispatcher_while_it_has_room
);
