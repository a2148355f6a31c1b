//! The realtime WebSocket with a real client (tokio-tungstenite), on both stores: live
//! delivery, filters, the three ways of passing the token, handshake errors, `since` replay racing
//! live traffic without gap or duplicate, ping/pong, 1008 on revocation, 1013 for a consumer
//! that stops reading — and, on Postgres, two replicas each delivering what the other accepted.

mod common;

use common::{World, ALICE, CHAT};
use herald_domain::event::{Envelope, EventType};
use herald_domain::{OrgId, SessionId};
use herald_testkit::{eventually, per_backend, Backend, WsClient, WsNext};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

async fn events_arrive_live_and_filtered(backend: Backend) {
    let w = World::new(backend).await;
    let second = w.another_session().await;
    let base = &w.server.base_url;

    let mut all = WsClient::connect(base, "/api/v1/events/ws", Some(&w.token))
        .await
        .unwrap();
    let mut votes_of_first = WsClient::connect(
        base,
        &format!(
            "/api/v1/events/ws?events=poll.vote,message&sessionId={}&access_token={}",
            w.session, w.token
        ),
        None,
    )
    .await
    .unwrap();
    let other_org_token = w.server.api_key("org_b", "read").await;
    let mut other_org = WsClient::connect(base, "/api/v1/events/ws", Some(&other_org_token))
        .await
        .unwrap();

    let message_id = w.inbound_text("M1", "hello").await;
    let got = all.expect_event("message", WAIT).await;
    assert_eq!(got["id"], message_id.as_str(), "{backend:?}");
    assert_eq!(got["event"], "message");
    assert_eq!(got["payload"]["body"], "hello");
    assert_eq!(got["organizationId"], "org_a");
    assert_eq!(
        all.expect_event("message.any", WAIT).await["event"],
        "message.any"
    );
    assert_eq!(
        votes_of_first.expect_event("message", WAIT).await["id"],
        message_id.as_str()
    );

    // A poll.vote on the first session passes the filter; the other session's does not.
    w.inbound_poll("P", ALICE, &["A", "B"], 1).await;
    let vote = w.vote("P", ALICE, &["A"]).await;
    assert_eq!(vote.status, 200);
    w.ingest_on(&second, json!({"event": "poll.vote.failed", "payload": {}}))
        .await;
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.push(all.expect_event("the rest", WAIT).await["event"].clone());
    }
    assert_eq!(
        seen,
        ["message", "message.any", "poll.vote", "poll.vote.failed"]
    );
    // The filtered socket gets the poll message and the vote, in order, and nothing else.
    assert_eq!(
        votes_of_first.expect_event("poll", WAIT).await["event"],
        "message"
    );
    let got = votes_of_first.expect_event("vote", WAIT).await;
    assert_eq!(got["event"], "poll.vote");
    assert_eq!(got["payload"]["vote"]["id"], vote.json["id"]);
    votes_of_first
        .expect_silence(Duration::from_millis(300))
        .await;
    // Another organization sees nothing at all.
    other_org.expect_silence(Duration::from_millis(100)).await;

    // Keep-alive: the server answers pings.
    all.ping().await;
    all.expect_pong(WAIT).await;
}

async fn the_handshake_checks_token_capability_and_query(backend: Backend) {
    let w = World::new(backend).await;
    let base = &w.server.base_url;
    let refused = |r: Result<WsClient, herald_testkit::WsRefused>| match r {
        Ok(_) => panic!("the upgrade should be refused"),
        Err(refused) => (refused.status, refused.json["error"]["code"].clone()),
    };
    let none = WsClient::connect(base, "/api/v1/events/ws", None).await;
    assert_eq!(refused(none), (401, json!("unauthorized")), "{backend:?}");
    let bad = WsClient::connect(base, "/api/v1/events/ws?access_token=hk_nope", None).await;
    assert_eq!(refused(bad).0, 401);
    let sender = w.server.api_key("org_a", "send").await;
    let no_read = WsClient::connect(base, "/api/v1/events/ws", Some(&sender)).await;
    assert_eq!(refused(no_read), (403, json!("forbidden")));
    let bad_type = WsClient::connect(base, "/api/v1/events/ws?events=nope", Some(&w.token)).await;
    assert_eq!(refused(bad_type), (422, json!("validation_error")));
    let bad_since = WsClient::connect(
        base,
        "/api/v1/events/ws?since=evt_01J9ZX8K2QHV0M3T6R7P4N5W8C",
        Some(&w.token),
    )
    .await;
    assert_eq!(refused(bad_since), (404, json!("not_found")));
    // A plain GET is told to upgrade.
    let plain = w.get("/api/v1/events/ws").await;
    assert_eq!(plain.status, 426);
}

async fn since_replays_then_goes_live_without_gap_or_duplicate(backend: Backend) {
    let w = World::new(backend).await;
    let start = w.inbound_text("M0", "start").await;
    for i in 1..=20 {
        w.inbound_text(&format!("M{i}"), "before").await;
    }
    // More messages keep arriving while the socket connects and replays.
    let client = w.server.client.clone();
    let (token, session) = (w.token.clone(), w.session.clone());
    let producer = tokio::spawn(async move {
        for i in 21..=80 {
            let reply = client
                .post(
                    &format!("/api/v1/sessions/{session}/inbound"),
                    &token,
                    &json!({"event": "message", "payload": {
                        "id": format!("M{i}"), "chat": CHAT, "sender": ALICE, "type": "text"}}),
                )
                .await;
            assert_eq!(reply.status, 202);
        }
    });
    let mut ws = WsClient::connect(
        &w.server.base_url,
        &format!("/api/v1/events/ws?events=message&since={start}"),
        Some(&w.token),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    while got.len() < 80 {
        let event = ws.expect_event("every message after `since`", WAIT).await;
        got.push(event["payload"]["id"].as_str().unwrap().to_owned());
    }
    producer.await.unwrap();
    ws.expect_silence(Duration::from_millis(300)).await;
    let expected: Vec<String> = (1..=80).map(|i| format!("M{i}")).collect();
    assert_eq!(got, expected, "{backend:?}");
}

async fn a_revoked_key_is_closed_with_1008(backend: Backend) {
    let w = World::new(backend).await;
    let created = w
        .post(
            "/api/v1/api-keys",
            json!({"name": "dashboard", "capabilities": ["read"]}),
        )
        .await;
    assert_eq!(created.status, 201);
    let token = created.json["token"].as_str().unwrap();
    let mut ws = WsClient::connect(&w.server.base_url, "/api/v1/events/ws", Some(token))
        .await
        .unwrap();
    let id = created.json["id"].as_str().unwrap();
    assert_eq!(
        w.server
            .client
            .delete(&format!("/api/v1/api-keys/{id}"), &w.token)
            .await
            .status,
        204
    );
    assert_eq!(
        ws.next(WAIT).await,
        WsNext::Closed(Some(1008)),
        "{backend:?}"
    );
}

async fn a_consumer_that_stops_reading_is_closed_with_1013(backend: Backend) {
    let w = World::new(backend).await;
    let mut slow = WsClient::connect_slow(&w.server.base_url, "/api/v1/events/ws", &w.token).await;
    // Far more than socket buffers and the 1000-event queue hold, written straight to the
    // store (the hub finds them within its poll interval).
    let parts = herald::app::assemble(&w.server.config).await.unwrap();
    let org = OrgId::parse("org_a").unwrap();
    let session = SessionId::parse(&w.session).unwrap();
    for _ in 0..20 {
        let batch: Vec<Envelope> = (0..1000)
            .map(|i| {
                Envelope::new(
                    EventType::PollVoteFailed,
                    org.clone(),
                    Some(session),
                    None,
                    1,
                    json!({"n": i, "padding": "x".repeat(200)}),
                )
            })
            .collect();
        parts.gateway.emit(&batch).await.unwrap();
    }
    eventually(
        "the subscriber to be dropped as lagging",
        Duration::from_secs(30),
        || async {
            let metrics = w.server.client.send("GET", "/metrics", None, None).await;
            let text = String::from_utf8_lossy(&metrics.body).into_owned();
            text.contains("herald_ws_lagged_total 1").then_some(())
        },
    )
    .await;
    // Reading again drains what was already sent, then the close.
    let mut received = 0;
    let code = loop {
        match slow.next(WAIT).await {
            WsNext::Event(_) => received += 1,
            WsNext::Closed(code) => break code,
            WsNext::Timeout => panic!("no close after {received} events"),
        }
    };
    assert_eq!(code, Some(1013), "{backend:?} after {received} events");
    assert!(received < 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgres_deliver_each_others_events() {
    let w = World::new(Backend::Postgres).await;
    let mut replica = w.server.start_replica().await;
    let path = "/api/v1/events/ws?events=poll.vote";
    let mut on_a = WsClient::connect(&w.server.base_url, path, Some(&w.token))
        .await
        .unwrap();
    let mut on_b = WsClient::connect(&replica.base_url, path, Some(&w.token))
        .await
        .unwrap();
    w.inbound_poll("P", ALICE, &["A", "B"], 0).await;

    // Accepted by A: both sockets get it.
    let by_a = w.vote("P", ALICE, &["A"]).await;
    assert_eq!(by_a.status, 200);
    for ws in [&mut on_a, &mut on_b] {
        let got = ws.expect_event("A's vote", WAIT).await;
        assert_eq!(got["payload"]["vote"]["id"], by_a.json["id"]);
    }
    // Accepted by B: both sockets get it.
    let by_b = replica
        .client
        .post(
            &format!("/api/v1/sessions/{}/messages/P/vote", w.session),
            &w.token,
            &json!({"chat": CHAT, "sender": ALICE, "options": ["B"]}),
        )
        .await;
    assert_eq!(by_b.status, 200);
    for ws in [&mut on_a, &mut on_b] {
        let got = ws.expect_event("B's vote", WAIT).await;
        assert_eq!(got["payload"]["vote"]["id"], by_b.json["id"]);
    }
    // And a `since` replay on B covers what A accepted.
    let since = w.all_events("&event=poll.vote").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut replay = WsClient::connect(
        &replica.base_url,
        &format!("{path}&since={since}"),
        Some(&w.token),
    )
    .await
    .unwrap();
    let got = replay.expect_event("the replayed vote", WAIT).await;
    assert_eq!(got["payload"]["vote"]["id"], by_b.json["id"]);
    replica.stop().await;
}

async fn a_long_replay_overtaken_by_live_traffic_still_has_no_gap_or_duplicate(backend: Backend) {
    let w = World::new(backend).await;
    let anchor = w.inbound_text("anchor", "x").await;
    let parts = herald::app::assemble(&w.server.config).await.unwrap();
    let org = OrgId::parse("org_a").unwrap();
    let session = SessionId::parse(&w.session).unwrap();
    let batch = |from: u64| -> Vec<Envelope> {
        (from..from + 1000)
            .map(|n| {
                Envelope::new(
                    EventType::PollVoteFailed,
                    org.clone(),
                    Some(session),
                    None,
                    1,
                    json!({"n": n, "padding": "x".repeat(800)}),
                )
            })
            .collect()
    };
    // A backlog far larger than the socket buffers can hold…
    for k in 0..12 {
        parts.gateway.emit(&batch(k * 1000)).await.unwrap();
    }
    let mut ws = WsClient::connect(
        &w.server.base_url,
        &format!("/api/v1/events/ws?events=poll.vote.failed&since={anchor}"),
        Some(&w.token),
    )
    .await
    .unwrap();
    // …so while the consumer has not read yet, the replay is stuck and more live events
    // arrive than the live queue holds: the queue overflows mid-replay.
    for k in 12..15 {
        parts.gateway.emit(&batch(k * 1000)).await.unwrap();
    }
    eventually(
        "the live queue to overflow during the replay",
        Duration::from_secs(30),
        || async {
            let metrics = w.server.client.send("GET", "/metrics", None, None).await;
            let text = String::from_utf8_lossy(&metrics.body).into_owned();
            (!text.contains("herald_ws_lagged_total 0")).then_some(())
        },
    )
    .await;
    // The replay resumes from the store where it stopped: every event once, in order.
    for expected in 0..15_000_u64 {
        let event = ws.expect_event("the next event in order", WAIT).await;
        assert_eq!(event["payload"]["n"], expected, "{backend:?}");
    }
    ws.expect_silence(Duration::from_millis(300)).await;
}

/// Browsers cannot set headers on a WebSocket: they offer the token as the subprotocol
/// `herald.bearer.<token>` next to `herald`, which the server selects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_passes_the_token_in_a_subprotocol() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Error;

    let w = World::new(Backend::Sqlite).await;
    let url = format!(
        "{}/api/v1/events/ws",
        w.server.base_url.replacen("http://", "ws://", 1)
    );
    let offer = |protocols: String| {
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocols.parse().unwrap());
        request
    };

    let (mut socket, response) =
        tokio_tungstenite::connect_async(offer(format!("herald, herald.bearer.{}", w.token)))
            .await
            .expect("the subprotocol token is accepted");
    assert_eq!(response.headers()["sec-websocket-protocol"], "herald");
    let id = w.inbound_text("SUB1", "through a subprotocol").await;
    let frame = tokio::time::timeout(WAIT, socket.next())
        .await
        .expect("an event in time")
        .expect("a frame")
        .expect("a good frame");
    let event: serde_json::Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
    assert_eq!(event["id"], id.as_str());

    for (protocols, status) in [
        ("herald, herald.bearer.hk_nope".to_owned(), 401),
        ("herald, herald.bearer.".to_owned(), 401),
        ("herald".to_owned(), 401),
    ] {
        match tokio_tungstenite::connect_async(offer(protocols.clone())).await {
            Err(Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), status, "{protocols}")
            }
            other => panic!(
                "{protocols}: expected a refusal, got {:?}",
                other.map(|_| ())
            ),
        }
    }
}

per_backend!(
    events_arrive_live_and_filtered,
    the_handshake_checks_token_capability_and_query,
    since_replays_then_goes_live_without_gap_or_duplicate,
    a_revoked_key_is_closed_with_1008,
    a_consumer_that_stops_reading_is_closed_with_1013,
    a_long_replay_overtaken_by_live_traffic_still_has_no_gap_or_duplicate
);
