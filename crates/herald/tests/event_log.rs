//! The event log over HTTP on both stores: oldest first, paged with `nextCursor`, `since`
//! excluding the named event, filters, isolation, `webhook.test` never listed — and, on
//! Postgres, that an event committing late with a lower position is never skipped by a reader
//! resuming from `since`.

mod common;

use common::World;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use herald_domain::event::{Envelope, EventType};
use herald_domain::{OrgId, SessionId};
use herald_store::Database;
use herald_testkit::{per_backend, Backend, WsClient};
use serde_json::{json, Value};
use std::time::Duration;

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn the_log_pages_oldest_first_with_filters_and_isolation(backend: Backend) {
    let w = World::new(backend).await;
    let second = w.another_session().await;
    for i in 0..5 {
        w.inbound_text(&format!("M{i}"), "x").await;
    }
    w.ingest_on(
        &second,
        json!({"event": "poll.vote.failed", "payload": {"n": 1}}),
    )
    .await;

    // Everything: 2 status events per session, 2 per message, 1 failure = 4 + 10 + 1.
    let all = w.all_events("").await;
    assert_eq!(all.len(), 15, "{backend:?}");
    let timestamps: Vec<i64> = all
        .iter()
        .map(|e| e["timestamp"].as_i64().unwrap())
        .collect();
    assert!(timestamps.windows(2).all(|p| p[0] <= p[1]), "oldest first");
    assert_eq!(all[0]["event"], "session.status");
    assert_eq!(all[0]["payload"]["status"], "STARTING");
    assert_eq!(all[14]["event"], "poll.vote.failed");

    // Pages of 4 chain through nextCursor to the same sequence; the last page says "".
    let mut paged = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let path = if cursor.is_empty() {
            "/api/v1/events?limit=4".to_owned()
        } else {
            format!("/api/v1/events?limit=4&cursor={cursor}")
        };
        let page = w.get(&path).await;
        assert_eq!(page.status, 200);
        let data = page.json["data"].as_array().unwrap().clone();
        assert!(data.len() <= 4);
        pages += 1;
        cursor = page.json["nextCursor"].as_str().unwrap().to_owned();
        if !cursor.is_empty() {
            assert_eq!(cursor, data.last().unwrap()["id"].as_str().unwrap());
        }
        paged.extend(data);
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(ids(&paged), ids(&all));
    assert_eq!(pages, 4);

    // `since` returns what follows that event, not the event itself.
    let since = all[9]["id"].as_str().unwrap();
    let after = w.get(&format!("/api/v1/events?since={since}")).await;
    assert_eq!(ids(after.json["data"].as_array().unwrap()), ids(&all[10..]));
    assert_eq!(after.json["nextCursor"], "");
    let last = all[14]["id"].as_str().unwrap();
    let none = w.get(&format!("/api/v1/events?since={last}")).await;
    assert_eq!(none.json, json!({"data": [], "nextCursor": ""}));

    // Filters: by type (one or several) and by session.
    assert_eq!(w.all_events("&event=message").await.len(), 5);
    assert_eq!(
        w.all_events("&event=message,poll.vote.failed").await.len(),
        6
    );
    let of_second = w.all_events(&format!("&sessionId={second}")).await;
    assert_eq!(of_second.len(), 3);
    assert!(of_second.iter().all(|e| e["session"] == second.as_str()));

    // Bad parameters are 422 naming them; an unknown or foreign `since` is 404.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("event=nope", "event"),
        ("sessionId=nope", "sessionId"),
    ] {
        let reply = w.get(&format!("/api/v1/events?{query}")).await;
        assert_eq!(reply.status, 422, "{query}");
        assert_eq!(reply.json["error"]["details"]["field"], field);
    }
    for since in ["evt_01J9ZX8K2QHV0M3T6R7P4N5W8C", "garbage"] {
        let reply = w.get(&format!("/api/v1/events?since={since}")).await;
        assert_eq!((reply.status, reply.error_code()), (404, "not_found"));
    }

    // Another organization sees none of it, and cannot resume from its ids.
    let other = w.server.api_key("org_b", "read").await;
    let theirs = w.server.client.get("/api/v1/events", &other).await;
    assert_eq!(theirs.json, json!({"data": [], "nextCursor": ""}));
    let reply = w
        .server
        .client
        .get(&format!("/api/v1/events?since={since}"), &other)
        .await;
    assert_eq!(reply.status, 404);
    let no_read = w.server.api_key("org_a", "send").await;
    assert_eq!(
        w.server.client.get("/api/v1/events", &no_read).await.status,
        403
    );

    // webhook.test events go to their one webhook only: never to the log.
    let parts = herald::app::assemble(&w.server.config).await.unwrap();
    let session = SessionId::parse(&w.session).unwrap();
    let test = Envelope::new(
        EventType::WebhookTest,
        OrgId::parse("org_a").unwrap(),
        Some(session),
        None,
        1,
        json!({}),
    );
    parts.gateway.emit(&[test]).await.unwrap();
    w.inbound_text("after-test", "x").await;
    let tail = w.all_events("").await;
    assert_eq!(tail.len(), 17);
    assert!(tail.iter().all(|e| e["event"] != "webhook.test"));
}

/// Postgres only (SQLite's single writer commits in log order): a transaction that began
/// earlier and commits later puts its event *before* events already committed. Readers must
/// not be handed those later events until the early transaction is over, so that resuming
/// from `since` cannot skip the late one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_commits_late_is_never_skipped() {
    let w = World::new(Backend::Postgres).await;
    let url = match &w.server.config.database {
        Database::Postgres(url) => url.clone(),
        Database::Sqlite(_) => unreachable!(),
    };
    let ws_path = "/api/v1/events/ws?events=message,poll.vote.failed";
    let mut ws = WsClient::connect(&w.server.base_url, ws_path, Some(&w.token))
        .await
        .unwrap();
    let before = w.inbound_text("M0", "before").await;
    assert_eq!(
        ws.expect_event("M0", Duration::from_secs(10)).await["id"],
        before.as_str()
    );

    // An "other replica" opens its transaction and writes its event, but does not commit yet.
    let mut late_conn = AsyncPgConnection::establish(&url).await.unwrap();
    diesel::sql_query("BEGIN")
        .execute(&mut late_conn)
        .await
        .unwrap();
    let late = Envelope::new(
        EventType::PollVoteFailed,
        OrgId::parse("org_a").unwrap(),
        Some(SessionId::parse(&w.session).unwrap()),
        None,
        1,
        json!({"late": true}),
    );
    diesel::sql_query(
        "INSERT INTO events (id, organization_id, session_id, event_type, created_at, envelope, logged) \
         VALUES ($1, $2, $3, $4, $5, $6, true)",
    )
    .bind::<diesel::sql_types::Text, _>(late.id.to_string())
    .bind::<diesel::sql_types::Text, _>("org_a")
    .bind::<diesel::sql_types::Text, _>(w.session.clone())
    .bind::<diesel::sql_types::Text, _>("poll.vote.failed")
    .bind::<diesel::sql_types::BigInt, _>(1_i64)
    .bind::<diesel::sql_types::Text, _>(late.to_json())
    .execute(&mut late_conn)
    .await
    .unwrap();

    // Meanwhile this replica accepts and commits a message.
    let early = w.inbound_text("M1", "committed first").await;

    // Neither the log nor the socket hands it out while the older transaction runs.
    let page = w
        .get(&format!(
            "/api/v1/events?since={before}&event=message,poll.vote.failed"
        ))
        .await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.json["data"],
        json!([]),
        "unsettled events are held back"
    );
    ws.expect_silence(Duration::from_millis(300)).await;

    // The late transaction commits: its event comes first, and nothing is skipped.
    diesel::sql_query("COMMIT")
        .execute(&mut late_conn)
        .await
        .unwrap();
    let page = w
        .get(&format!(
            "/api/v1/events?since={before}&event=message,poll.vote.failed"
        ))
        .await;
    let got = ids(page.json["data"].as_array().unwrap());
    assert_eq!(got, [late.id.to_string(), early.clone()]);
    let first = ws
        .expect_event("the late event", Duration::from_secs(10))
        .await;
    let second = ws
        .expect_event("the early event", Duration::from_secs(10))
        .await;
    assert_eq!(
        (
            first["id"].as_str().unwrap(),
            second["id"].as_str().unwrap()
        ),
        (late.id.to_string().as_str(), early.as_str())
    );
}

/// How many deliveries the store holds for an event (read straight from the database).
async fn deliveries_for(database: &Database, event_id: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = "SELECT count(*) AS n FROM deliveries WHERE event_id = ";
    match database {
        Database::Postgres(url) => {
            let mut conn = AsyncPgConnection::establish(url).await.unwrap();
            let count: Count = diesel::sql_query(format!("{sql}$1"))
                .bind::<diesel::sql_types::Text, _>(event_id)
                .get_result(&mut conn)
                .await
                .unwrap();
            count.n
        }
        Database::Sqlite(path) => {
            let (path, event_id) = (path.clone(), event_id.to_owned());
            tokio::task::spawn_blocking(move || {
                use diesel::Connection;
                let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
                let count: Count = diesel::RunQueryDsl::get_result(
                    diesel::sql_query(format!("{sql}?"))
                        .bind::<diesel::sql_types::Text, _>(event_id),
                    &mut conn,
                )
                .unwrap();
                count.n
            })
            .await
            .unwrap()
        }
    }
}

async fn messaging_events_fan_out_to_matching_webhooks_in_the_same_commit(backend: Backend) {
    let w = World::new(backend).await;
    let second = w.another_session().await;
    let hook = |body: Value| w.post("/api/v1/webhooks", body);
    assert_eq!(
        hook(json!({"url": "https://example.com/votes", "events": ["poll.vote"]}))
            .await
            .status,
        201
    );
    assert_eq!(
        hook(json!({"url": "https://example.com/second", "events": ["*"], "sessionId": second}))
            .await
            .status,
        201
    );
    assert_eq!(
        hook(json!({"url": "https://example.com/off", "events": ["*"], "active": false}))
            .await
            .status,
        201
    );
    w.inbound_poll("P", common::ALICE, &["A", "B"], 1).await;
    assert_eq!(w.vote("P", common::ALICE, &["A"]).await.status, 200);
    let vote = w.all_events("&event=poll.vote").await.pop().unwrap();
    let poll_any = w.all_events("&event=message.any").await.pop().unwrap();
    let on_second = w
        .ingest_on(
            &second,
            json!({"event": "message", "payload": {"id": "M", "chat": common::CHAT,
                   "sender": common::ALICE, "type": "text"}}),
        )
        .await;
    let db = &w.server.config.database;
    assert_eq!(
        deliveries_for(db, vote["id"].as_str().unwrap()).await,
        1,
        "{backend:?}"
    );
    assert_eq!(
        deliveries_for(db, poll_any["id"].as_str().unwrap()).await,
        0
    );
    assert_eq!(deliveries_for(db, &on_second).await, 1);
}

per_backend!(
    the_log_pages_oldest_first_with_filters_and_isolation,
    messaging_events_fan_out_to_matching_webhooks_in_the_same_commit
);
