//! The store conformance suite: the same behaviour checked on the embedded SQLite store and on
//! the real PostgreSQL, through the domain's ports only.

use herald_domain::api_key::ApiKey;
use herald_domain::event::{Envelope, EventType, Me};
use herald_domain::message::{
    Change, ChangeOutcome, InboundKey, Ingested, Message, MessageContent, MessageRef, Mutation,
};
use herald_domain::ports::{ReportSession, SealedSecret, SealedSecretChange, Store};
use herald_domain::session::{Session, SessionStatus};
use herald_domain::webhook::{Webhook, WebhookFields};
use herald_domain::{ApiKeyId, Capabilities, OrgId, SessionId, WebhookId};
use herald_store::StoreOptions;
use herald_testkit::{per_backend, Backend, TestDb};
use std::sync::Arc;

fn org(name: &str) -> OrgId {
    OrgId::parse(name).unwrap()
}

/// The store on `db`, opened (so migrated) and then migrated once more.
async fn open(db: &TestDb) -> Arc<dyn Store> {
    let store = herald_store::open(&db.database, &StoreOptions { max_connections: 4 })
        .await
        .expect("open");
    // Opening twice must be harmless: migrations are idempotent.
    herald_store::migrate(&db.database)
        .await
        .expect("migrate again");
    store
}

fn webhook(org_id: &OrgId, url: &str) -> Webhook {
    WebhookFields {
        url: Some(url.into()),
        ..Default::default()
    }
    .create(WebhookId::generate(), org_id.clone(), 1_000)
    .unwrap()
    .webhook
}

async fn webhooks_round_trip_and_stay_in_their_organization(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let (a, b) = (org("org_a"), org("org_b"));
    let mut hook = webhook(&a, "https://example.com/a");
    hook.custom_headers =
        herald_domain::webhook::CustomHeaders::parse(vec![("X-Tenant".into(), "acme".into())])
            .unwrap();
    store
        .insert_webhook(&hook, Some(&SealedSecret("v1:sealed".into())))
        .await
        .unwrap();
    store
        .insert_webhook(&webhook(&b, "https://example.com/b"), None)
        .await
        .unwrap();

    assert_eq!(
        store.find_webhook(&a, &hook.id).await.unwrap(),
        Some(hook.clone())
    );
    assert_eq!(
        store.find_webhook(&b, &hook.id).await.unwrap(),
        None,
        "foreign ids are invisible"
    );
    assert_eq!(store.list_webhooks(&a).await.unwrap(), vec![hook.clone()]);

    let mut changed = hook.clone();
    changed.active = false;
    changed.updated_at = 2_000;
    assert!(store
        .update_webhook(&changed, &SealedSecretChange::Remove)
        .await
        .unwrap());
    // A list read before the change never outlives it (the embedded store keeps lists).
    assert_eq!(
        store.list_webhooks(&a).await.unwrap(),
        vec![changed.clone()]
    );
    assert!(
        !store
            .find_webhook(&a, &hook.id)
            .await
            .unwrap()
            .unwrap()
            .active
    );
    let mut foreign = changed.clone();
    foreign.organization_id = b.clone();
    assert!(!store
        .update_webhook(&foreign, &SealedSecretChange::Keep)
        .await
        .unwrap());

    assert!(!store.delete_webhook(&b, &hook.id).await.unwrap());
    assert!(store.delete_webhook(&a, &hook.id).await.unwrap());
    assert!(store.list_webhooks(&a).await.unwrap().is_empty());
}

async fn sessions_change_state_together_with_their_events(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let a = org("org_a");
    let mut session = Session::new(a.clone(), "sales", 1_000).unwrap();
    let started = Envelope::new(
        EventType::SessionStatus,
        a.clone(),
        Some(session.id),
        None,
        1_000,
        session.status_payload(),
    );
    assert!(store.insert_session(&session, &[started]).await.unwrap());

    // One engine session binds one Herald session, across organizations; the refused
    // creation writes nothing.
    let rival = Session::new(org("org_b"), "rival", 1_000)
        .unwrap()
        .with_engine_session(&session.engine_session)
        .unwrap();
    assert!(!store.insert_session(&rival, &[]).await.unwrap());
    assert!(store.list_sessions(&org("org_b")).await.unwrap().is_empty());
    assert_eq!(
        store
            .find_report_session(ReportSession::Engine(&session.engine_session), Some("r1"))
            .await
            .unwrap()
            .map(|(s, first)| (s.id, first)),
        Some((session.id, None))
    );
    assert_eq!(
        store
            .find_report_session(ReportSession::Engine("nope"), None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_report_session(ReportSession::Owned(&org("org_b"), &session.id), None)
            .await
            .unwrap(),
        None,
        "another organization's session is not found"
    );

    session.status = SessionStatus::Working;
    session.me = Some(Me {
        id: "15550001234@c.us".into(),
    });
    session.updated_at = 2_000;
    let working = Envelope::new(
        EventType::SessionStatus,
        a.clone(),
        Some(session.id),
        session.me.clone(),
        2_000,
        session.status_payload(),
    );
    let status_change = |session: &Session, events: Vec<Envelope>| Change {
        organization_id: session.organization_id.clone(),
        mutation: Mutation::SessionStatus(session.clone()),
        events,
        inbound: None,
    };
    assert_eq!(
        store
            .apply_change(&status_change(&session, vec![working]))
            .await
            .unwrap(),
        ChangeOutcome::Applied
    );
    assert_eq!(
        store.find_session(&a, &session.id).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        store
            .find_session(&org("org_b"), &session.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.list_sessions(&a).await.unwrap().len(), 1);

    // An update of a missing session writes nothing, not even its event.
    let ghost = Session {
        id: SessionId::generate(),
        ..session.clone()
    };
    assert_eq!(
        store
            .apply_change(&status_change(&ghost, Vec::new()))
            .await
            .unwrap(),
        ChangeOutcome::TargetMissing
    );

    assert!(store.delete_session(&a, &session.id).await.unwrap());
    assert!(!store.delete_session(&a, &session.id).await.unwrap());
}

async fn api_keys_are_found_by_hash_until_revoked(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let a = org("org_a");
    let key = ApiKey {
        id: ApiKeyId::generate(),
        organization_id: a.clone(),
        name: "ops".into(),
        capabilities: Capabilities::parse_list("manage,read").unwrap(),
        created_at: 1_000,
        last_used_at: None,
    };
    store.insert_api_key(&key, "hash-1").await.unwrap();
    assert_eq!(
        store.find_api_key_by_hash("hash-1").await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(store.find_api_key_by_hash("hash-2").await.unwrap(), None);

    store.touch_api_key(&key.id, 5_000).await.unwrap();
    assert_eq!(
        store.list_api_keys(&a).await.unwrap()[0].last_used_at,
        Some(5_000)
    );

    assert!(
        !store
            .revoke_api_key(Some(&org("org_b")), &key.id, 6_000)
            .await
            .unwrap(),
        "not across orgs"
    );
    assert!(store
        .revoke_api_key(Some(&a), &key.id, 6_000)
        .await
        .unwrap());
    assert!(
        !store.revoke_api_key(None, &key.id, 7_000).await.unwrap(),
        "already revoked"
    );
    assert_eq!(store.find_api_key_by_hash("hash-1").await.unwrap(), None);
    assert!(store.list_api_keys(&a).await.unwrap().is_empty());
}

async fn appending_events_is_atomic_and_the_store_answers_pings(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    store.ping().await.unwrap();
    let a = org("org_a");
    store
        .insert_webhook(&webhook(&a, "https://example.com/all"), None)
        .await
        .unwrap();
    let event = Envelope::new(
        EventType::Message,
        a.clone(),
        None,
        None,
        1_000,
        serde_json::json!({"id": "m1"}),
    );
    store
        .append_events(std::slice::from_ref(&event))
        .await
        .unwrap();
    // The same event id twice violates the log's uniqueness: the whole batch is refused.
    let fresh = Envelope::new(
        EventType::Message,
        a.clone(),
        None,
        None,
        1_001,
        serde_json::json!({}),
    );
    assert!(store.append_events(&[fresh, event]).await.is_err());
}

/// An inbound text message with inbound key `id` and message id `message` in `session`, as
/// an engine reports it: the key, the message and its `message` event.
fn inbound_report(session: &Session, id: &str, message: &str) -> Change {
    let a = &session.organization_id;
    let event = Envelope::new(
        EventType::Message,
        a.clone(),
        Some(session.id),
        None,
        1_000,
        serde_json::json!({ "id": message }),
    );
    Change {
        organization_id: a.clone(),
        inbound: Some(Ingested {
            key: InboundKey {
                session: session.id,
                id: id.into(),
            },
            event_id: event.id,
        }),
        mutation: Mutation::InsertMessage(Message {
            organization_id: a.clone(),
            key: MessageRef {
                session: session.id,
                chat: "chat@c.us".into(),
                sender: "alice@c.us".into(),
                id: message.into(),
            },
            from_me: false,
            timestamp: 1_000,
            content: MessageContent::Text { body: None },
        }),
        events: vec![event],
    }
}

/// Concurrent changes are written together (group commit); one that repeats a stored inbound
/// key or message must still get its own outcome and write nothing, without costing the
/// others theirs.
async fn concurrent_changes_each_get_their_own_outcome(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let a = org("org_a");
    let session = Session::new(a.clone(), "sales", 1_000).unwrap();
    assert!(store.insert_session(&session, &[]).await.unwrap());
    let place = |message: &str| MessageRef {
        session: session.id,
        chat: "chat@c.us".into(),
        sender: "alice@c.us".into(),
        id: message.into(),
    };
    let report = |id: &str, message: &str| inbound_report(&session, id, message);
    let first = report("k-first", "m-first");
    let first_event = first.events[0].id;
    assert_eq!(
        store.apply_change(&first).await.unwrap(),
        ChangeOutcome::Applied
    );
    // Rounds with a repeated key, a repeated message, and both.
    for (round, repeats) in [[3, 8], [8, 5], [3, 5]].into_iter().enumerate() {
        let own = |i: usize| (format!("k-{round}-{i}"), format!("m-{round}-{i}"));
        let kind = |i: usize| repeats.iter().position(|&r| r == i);
        let changes: Vec<Change> = (0..8)
            .map(|i| match kind(i) {
                Some(0) => report("k-first", &own(i).1),
                Some(_) => report(&own(i).0, "m-first"),
                None => report(&own(i).0, &own(i).1),
            })
            .collect();
        let outcomes =
            futures_util::future::join_all(changes.iter().map(|c| store.apply_change(c))).await;
        for (i, (change, outcome)) in changes.iter().zip(outcomes).enumerate() {
            let (id, message) = own(i);
            let stored_key = store
                .find_report_session(ReportSession::Owned(&a, &session.id), Some(&id))
                .await
                .unwrap()
                .expect("the session")
                .1;
            let stored_message = store.find_message(&a, &place(&message)).await.unwrap();
            let logged = store
                .event_position(&a, &change.events[0].id)
                .await
                .unwrap()
                .is_some();
            assert_eq!(
                logged,
                kind(i).is_none(),
                "change {i}: only an applied change logs its event"
            );
            match kind(i) {
                Some(0) => {
                    assert_eq!(
                        outcome.unwrap(),
                        ChangeOutcome::AlreadyIngested(first_event)
                    );
                    assert_eq!(stored_message, None, "a repeated report writes nothing");
                }
                Some(_) => {
                    assert_eq!(outcome.unwrap(), ChangeOutcome::MessageExists);
                    assert_eq!(stored_key, None, "a refused change records no key");
                }
                _ => {
                    assert_eq!(outcome.unwrap(), ChangeOutcome::Applied, "change {i}");
                    assert_eq!(stored_key, Some(change.events[0].id));
                    assert!(stored_message.is_some());
                }
            }
        }
    }
    // A stored key reported twice more side by side: both repeats get the first answer.
    let changes: Vec<Change> = (0..6)
        .map(|i| match i {
            1 | 4 => report("k-first", &format!("m-twice-{i}")),
            _ => report(&format!("k-twice-{i}"), &format!("m-twice-{i}")),
        })
        .collect();
    let outcomes =
        futures_util::future::join_all(changes.iter().map(|c| store.apply_change(c))).await;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let expected = match i {
            1 | 4 => ChangeOutcome::AlreadyIngested(first_event),
            _ => ChangeOutcome::Applied,
        };
        assert_eq!(outcome.unwrap(), expected, "change {i}");
    }
}

/// Rows in `table`, read past the ports: what no port shows, such as attempts left behind.
async fn rows_in(db: &TestDb, table: &str) -> i64 {
    use diesel::sql_types::BigInt;
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let count = diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"));
    match &db.database {
        herald_store::Database::Postgres(url) => {
            let mut conn = AsyncPgConnection::establish(url).await.unwrap();
            count.get_result::<Count>(&mut conn).await.unwrap().n
        }
        herald_store::Database::Sqlite(path) => {
            type Sqlite = diesel_async::sync_connection_wrapper::SyncConnectionWrapper<
                diesel::SqliteConnection,
            >;
            let mut conn = Sqlite::establish(path.to_str().unwrap()).await.unwrap();
            count.get_result::<Count>(&mut conn).await.unwrap().n
        }
    }
}

/// Nothing in the schema ties an attempt to its delivery or a delivery to its webhook: the
/// store itself deletes a deleted webhook's deliveries with their attempt logs, and retention
/// takes a pruned delivery's attempts with it.
async fn deliveries_and_attempts_go_with_their_webhook_and_with_retention(backend: Backend) {
    use herald_domain::delivery::{AttemptOutcome, AttemptRecord, Lane, Lease, Settlement};
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let a = org("org_a");
    let (kept, deleted) = (
        webhook(&a, "https://example.com/kept"),
        webhook(&a, "https://example.com/deleted"),
    );
    store.insert_webhook(&kept, None).await.unwrap();
    store.insert_webhook(&deleted, None).await.unwrap();
    let events: Vec<Envelope> = (0..3)
        .map(|i| {
            Envelope::new(
                EventType::SessionStatus,
                a.clone(),
                None,
                None,
                1_000 + i,
                serde_json::json!({"status": "WORKING"}),
            )
        })
        .collect();
    store.append_events(&events).await.unwrap();
    let lease = Lease {
        owner: "me".into(),
        until: 100_000,
    };
    let claimed = store
        .claim_deliveries(Lane::Fresh, &lease, 2_000, 100, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 6, "{backend:?}");
    let outcomes: Vec<AttemptOutcome> = claimed
        .iter()
        .map(|c| AttemptOutcome {
            delivery_id: c.id,
            webhook_id: c.webhook_id,
            event_id: c.event_id,
            record: AttemptRecord {
                attempt: 1,
                started_at: 2_000,
                duration_ms: 1,
                status_code: Some(200),
                error: None,
                response_body: String::new(),
            },
            settlement: Settlement::Succeeded,
        })
        .collect();
    let policy = herald_domain::health::HealthPolicy::default();
    store
        .complete_attempts("me", &outcomes, &policy, 2_001)
        .await
        .unwrap();
    assert_eq!(rows_in(&db, "delivery_attempts").await, 6);

    assert!(store.delete_webhook(&a, &deleted.id).await.unwrap());
    assert_eq!(rows_in(&db, "deliveries").await, 3, "{backend:?}");
    assert_eq!(rows_in(&db, "delivery_attempts").await, 3, "{backend:?}");

    let pruned = store.prune_deliveries(10_000).await.unwrap();
    assert_eq!(pruned.deliveries, 3);
    assert_eq!(rows_in(&db, "deliveries").await, 0);
    assert_eq!(rows_in(&db, "delivery_attempts").await, 0, "{backend:?}");
}

/// Postgres, where no foreign key ties a delivery to its webhook: a webhook deleted while a
/// transaction writes deliveries for it (holding it `FOR KEY SHARE`, as every writer of
/// deliveries does) waits for that transaction, then deletes what it wrote. No delivery of a
/// deleted webhook is left behind.
#[tokio::test]
async fn a_webhook_deleted_while_its_deliveries_are_written_takes_them_along() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
    let db = TestDb::new(Backend::Postgres).await;
    let store = open(&db).await;
    let a = org("org_a");
    let hook = webhook(&a, "https://example.com/h");
    store.insert_webhook(&hook, None).await.unwrap();
    let herald_store::Database::Postgres(url) = &db.database else {
        unreachable!("a Postgres test database")
    };
    let mut writer = AsyncPgConnection::establish(url).await.unwrap();
    writer
        .batch_execute(&format!(
            "BEGIN; \
             SELECT id FROM webhooks WHERE id = '{id}' FOR KEY SHARE; \
             INSERT INTO deliveries (id, organization_id, webhook_id, event_id, event_type, \
               status, attempts, next_attempt_at, created_at, updated_at) \
             VALUES ('dlv_written', 'org_a', '{id}', 'evt_x', 'message', 'pending', 0, 1, 1, 1);",
            id = hook.id
        ))
        .await
        .unwrap();

    let deleting = tokio::spawn({
        let store = store.clone();
        let (a, id) = (a.clone(), hook.id);
        async move { store.delete_webhook(&a, &id).await }
    });
    // The deletion waits on the writer's lock.
    #[derive(diesel::QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut watcher = AsyncPgConnection::establish(url).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: Waiting = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .get_result(&mut watcher)
        .await
        .unwrap();
        if waiting.n > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the deletion never waited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!deleting.is_finished());
    writer.batch_execute("COMMIT").await.unwrap();

    assert!(deleting.await.unwrap().unwrap());
    assert_eq!(rows_in(&db, "deliveries").await, 0);
}

/// A deleted session takes its messages and inbound keys along, and a report for it that
/// arrives afterwards — alone or in a batch with others — writes nothing and is answered
/// `TargetMissing`, while the batch's other changes are applied.
async fn a_deleted_session_takes_its_rows_along_and_gets_no_more(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = open(&db).await;
    let a = org("org_a");
    let (gone, kept) = (
        Session::new(a.clone(), "gone", 1_000).unwrap(),
        Session::new(a.clone(), "kept", 1_000).unwrap(),
    );
    for session in [&gone, &kept] {
        assert!(store.insert_session(session, &[]).await.unwrap());
        let outcome = store
            .apply_change(&inbound_report(session, "k-0", "m-0"))
            .await
            .unwrap();
        assert_eq!(outcome, ChangeOutcome::Applied);
    }
    assert!(store.delete_session(&a, &gone.id).await.unwrap());
    assert_eq!(rows_in(&db, "messages").await, 1, "{backend:?}");
    assert_eq!(rows_in(&db, "inbound_keys").await, 1, "{backend:?}");

    let changes: Vec<Change> = (1..=6)
        .map(|i| {
            let session = if i % 3 == 0 { &gone } else { &kept };
            inbound_report(session, &format!("k-{i}"), &format!("m-{i}"))
        })
        .collect();
    let outcomes =
        futures_util::future::join_all(changes.iter().map(|c| store.apply_change(c))).await;
    for (i, outcome) in (1..=6).zip(outcomes) {
        let expected = match i % 3 {
            0 => ChangeOutcome::TargetMissing,
            _ => ChangeOutcome::Applied,
        };
        assert_eq!(outcome.unwrap(), expected, "change {i} on {backend:?}");
    }
    assert_eq!(rows_in(&db, "messages").await, 5, "{backend:?}");
    assert_eq!(rows_in(&db, "inbound_keys").await, 5, "{backend:?}");
}

per_backend!(
    a_deleted_session_takes_its_rows_along_and_gets_no_more,
    webhooks_round_trip_and_stay_in_their_organization,
    sessions_change_state_together_with_their_events,
    api_keys_are_found_by_hash_until_revoked,
    appending_events_is_atomic_and_the_store_answers_pings,
    concurrent_changes_each_get_their_own_outcome,
    deliveries_and_attempts_go_with_their_webhook_and_with_retention,
);
