//! Delivery isolation, on both stores: receivers that accept the connection and never answer
//! must not delay anyone else's deliveries. The dispatcher has few workers here, so without
//! the slow lane the hanging attempts would hold every one of them until the timeout.

use herald::config::Config;
use herald_testkit::{eventually, per_backend, Backend, Behaviour, Receiver, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

/// Far longer than the waits below: a hanging attempt never ends during the test by timing out.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How long the healthy webhook's events may take; well below [`TIMEOUT`].
const PROMPTLY: Duration = Duration::from_secs(15);

async fn server(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(backend, |c| {
        c.with_dispatcher = true;
        c.allow_private = Some(true);
        c.delivery_timeout = TIMEOUT;
        adjust(c);
    })
    .await
}

async fn create_webhook(server: &TestServer, token: &str, url: String) -> String {
    let reply = server
        .client
        .post("/api/v1/webhooks", token, &json!({"url": url}))
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.json);
    reply.json["id"].as_str().unwrap().to_owned()
}

async fn deliveries(server: &TestServer, token: &str, webhook: &str) -> Vec<Value> {
    let reply = server
        .client
        .get(&format!("/api/v1/webhooks/{webhook}/deliveries"), token)
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.json);
    reply.json["data"].as_array().unwrap().clone()
}

async fn hanging_receivers_do_not_delay_a_healthy_webhook(backend: Backend) {
    // Eight shared workers, up to sixteen attempts per webhook: twelve hanging webhooks with
    // three events each would take all eight workers until the timeout.
    let mut server = server(backend, |c| {
        c.delivery_workers = 8;
        c.delivery_slow_after = Duration::from_millis(300);
    })
    .await;
    let token = server.api_key("org_isolation", "manage").await;
    let mut hanging = Vec::new();
    for _ in 0..12 {
        let receiver = Receiver::start(Behaviour::Hang).await;
        let webhook = create_webhook(&server, &token, receiver.url()).await;
        for _ in 0..3 {
            server.ping_webhook(&token, &webhook).await;
        }
        hanging.push((receiver, webhook));
    }
    // Every hanging receiver is reached, which needs more attempts at once than there are
    // shared workers: hanging attempts left them for the slow lane.
    eventually(
        "every hanging receiver to hold a request",
        PROMPTLY,
        || async {
            hanging
                .iter()
                .all(|(r, _)| !r.received().is_empty())
                .then_some(())
        },
    )
    .await;

    let healthy = Receiver::start(Behaviour::Ok).await;
    let webhook = create_webhook(&server, &token, healthy.url()).await;
    let mut events = Vec::new();
    for _ in 0..20 {
        events.push(server.ping_webhook(&token, &webhook).await.0);
    }
    eventually(
        "the healthy webhook's events to arrive",
        PROMPTLY,
        || async { (healthy.received().len() >= events.len()).then_some(()) },
    )
    .await;
    let got: Vec<String> = healthy
        .received()
        .iter()
        .map(|r| {
            r.headers["x-webhook-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for event in &events {
        assert!(
            got.contains(event),
            "{backend:?}: {event} was not delivered"
        );
    }

    // Meanwhile the hanging ones are still hanging: no attempt of theirs has ended, and each
    // holds at most the slow lane's per-webhook cap.
    for (receiver, webhook) in &hanging {
        assert!(receiver.received().len() <= 4, "{backend:?}");
        for d in deliveries(&server, &token, webhook).await {
            assert_eq!(d["status"], "pending", "{backend:?}: {d}");
            assert_eq!(d["attempts"], 0, "{backend:?}: {d}");
        }
    }

    // The dispatcher says so on /metrics: every hanging webhook ends up in the slow lane.
    eventually(
        "/metrics to count twelve slow webhooks",
        PROMPTLY,
        || async {
            let metrics = server.client.send("GET", "/metrics", None, None).await;
            String::from_utf8_lossy(&metrics.body)
                .contains("herald_delivery_slow_webhooks{lane=\"fresh\"} 12")
                .then_some(())
        },
    )
    .await;

    // Let the held requests go, so the dispatcher stops without waiting for the timeout.
    for (receiver, _) in &hanging {
        receiver.set_behaviour(Behaviour::Ok);
    }
    server.stop().await;
}

per_backend!(hanging_receivers_do_not_delay_a_healthy_webhook);
