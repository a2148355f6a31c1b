//! Endpoint health end to end, on both stores, with shortened settings: a 410 dead-letters the
//! delivery and disables the webhook; a failing endpoint pauses behind its circuit breaker and
//! resumes after a successful probe; an endpoint failing for the configured time is disabled;
//! reactivation clears the streak; every change is an operational event that other webhooks
//! (and the event log) receive, never the webhook it is about.

use herald::config::Config;
use herald_domain::health::HealthPolicy;
use herald_testkit::{eventually, per_backend, Backend, Behaviour, Receiver, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

async fn server(backend: Backend) -> TestServer {
    TestServer::start_with(backend, |c: &mut Config| {
        c.with_dispatcher = true;
        c.allow_private = Some(true);
        c.health = HealthPolicy {
            disable_after_ms: 3_000,
            breaker_failures: 2,
            first_cooldown_ms: 300,
            max_cooldown_ms: 1_200,
        };
    })
    .await
}

async fn create(server: &TestServer, token: &str, body: Value) -> String {
    let reply = server.client.post("/api/v1/webhooks", token, &body).await;
    assert_eq!(reply.status, 201, "{:?}", reply.json);
    reply.json["id"].as_str().unwrap().to_owned()
}

async fn webhook(server: &TestServer, token: &str, id: &str) -> Value {
    server
        .client
        .get(&format!("/api/v1/webhooks/{id}"), token)
        .await
        .json
}

/// The operational events of `kind` about `webhook` that `receiver` got.
fn events_about(receiver: &Receiver, kind: &str, webhook: &str) -> Vec<Value> {
    receiver
        .received()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|e| e["event"] == kind && e["payload"]["webhookId"] == webhook)
        .collect()
}

async fn endpoint_health(backend: Backend) {
    let server = server(backend).await;
    let token = server.api_key("org_health", "manage,read").await;
    let watcher = Receiver::start(Behaviour::Ok).await;
    let retry = json!({"policy": "constant", "delaySeconds": 1, "attempts": 30});
    // Subscribes to everything, so it hears about the others (and never about itself).
    let watch = create(
        &server,
        &token,
        json!({"url": watcher.url(), "secret": null}),
    )
    .await;

    // 410: the delivery ends at once and the webhook is disabled, said to the watcher.
    let gone_rx = Receiver::start(Behaviour::Status(410)).await;
    let gone = create(
        &server,
        &token,
        json!({"url": gone_rx.url(), "retryPolicy": retry}),
    )
    .await;
    let (event_id, delivery) = server.ping_webhook(&token, &gone).await;
    let w = eventually("the 410 to disable", WAIT, || async {
        let w = webhook(&server, &token, &gone).await;
        (w["active"] == false).then_some(w)
    })
    .await;
    assert_eq!(w["disabledReason"], "gone", "{backend:?}");
    let d = server
        .client
        .get(
            &format!("/api/v1/webhooks/{gone}/deliveries/{delivery}"),
            &token,
        )
        .await
        .json;
    assert_eq!(
        (&d["status"], &d["attempts"]),
        (&json!("failed"), &json!(1))
    );
    let disabled = eventually("webhook.disabled at the watcher", WAIT, || async {
        events_about(&watcher, "webhook.disabled", &gone).pop()
    })
    .await;
    assert_eq!(
        disabled["payload"],
        json!({"webhookId": gone, "reason": "gone"})
    );
    let failed = eventually("delivery.failed at the watcher", WAIT, || async {
        events_about(&watcher, "delivery.failed", &gone).pop()
    })
    .await;
    assert_eq!(
        failed["payload"],
        json!({"webhookId": gone, "deliveryId": delivery, "eventId": event_id, "attempts": 1,
               "lastStatusCode": 410, "lastError": "http_status"})
    );
    let log = server
        .client
        .get("/api/v1/events?event=webhook.disabled", &token)
        .await;
    assert!(log.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["payload"]["webhookId"] == gone.as_str()));
    // Reactivating clears the reason and the streak; deactivating by hand says so.
    let path = format!("/api/v1/webhooks/{gone}");
    let back = server
        .client
        .patch(&path, &token, &json!({"active": true}))
        .await
        .json;
    assert_eq!(
        (&back["active"], &back["disabledReason"]),
        (&json!(true), &Value::Null)
    );
    assert_eq!(
        webhook(&server, &token, &gone).await["health"]["consecutiveFailures"],
        0
    );
    let off = server
        .client
        .patch(&path, &token, &json!({"active": false}))
        .await
        .json;
    assert_eq!(off["disabledReason"], "manual");

    // The breaker: two failures pause the endpoint; the probe after the cool-down succeeds.
    let flaky_rx = Receiver::start(Behaviour::Status(500)).await;
    let flaky = create(
        &server,
        &token,
        json!({"url": flaky_rx.url(), "retryPolicy": retry}),
    )
    .await;
    server.ping_webhook(&token, &flaky).await;
    let (_, held) = server.ping_webhook(&token, &flaky).await;
    eventually("the breaker to open", WAIT, || async {
        let w = webhook(&server, &token, &flaky).await;
        (w["health"]["state"] == "paused").then_some(())
    })
    .await;
    flaky_rx.set_behaviour(Behaviour::Ok);
    let paused = eventually("webhook.paused at the watcher", WAIT, || async {
        events_about(&watcher, "webhook.paused", &flaky).pop()
    })
    .await;
    assert!(paused["payload"]["consecutiveFailures"].as_u64().unwrap() >= 2);
    let resumed = eventually("the breaker to close", WAIT, || async {
        events_about(&watcher, "webhook.resumed", &flaky).pop()
    })
    .await;
    assert!(resumed["payload"]["consecutiveFailures"].as_u64().unwrap() >= 2);
    let d = eventually("the held delivery to go out", WAIT, || async {
        let d = server
            .client
            .get(
                &format!("/api/v1/webhooks/{flaky}/deliveries/{held}"),
                &token,
            )
            .await
            .json;
        (d["status"] == "succeeded").then_some(d)
    })
    .await;
    assert!(
        d["attempts"].as_u64().unwrap() <= 6,
        "held deliveries spend no attempts: {d}"
    );
    let health = webhook(&server, &token, &flaky).await["health"].clone();
    assert_eq!(
        (&health["state"], &health["consecutiveFailures"]),
        (&json!("healthy"), &json!(0))
    );
    assert!(health["lastSuccessAt"].is_i64());

    // Failing for longer than the setting disables the webhook, cancelling what is pending.
    let dead_rx = Receiver::start(Behaviour::Status(503)).await;
    let dead = create(
        &server,
        &token,
        json!({"url": dead_rx.url(), "retryPolicy": retry}),
    )
    .await;
    let (_, pending) = server.ping_webhook(&token, &dead).await;
    let w = eventually("the failing webhook to be disabled", WAIT, || async {
        let w = webhook(&server, &token, &dead).await;
        (w["active"] == false).then_some(w)
    })
    .await;
    assert_eq!(w["disabledReason"], "failing");
    assert!(w["health"]["failingSince"].is_i64());
    eventually(
        "webhook.disabled (failing) at the watcher",
        WAIT,
        || async {
            events_about(&watcher, "webhook.disabled", &dead)
                .into_iter()
                .find(|e| e["payload"]["reason"] == "failing")
        },
    )
    .await;
    let d = server
        .client
        .get(
            &format!("/api/v1/webhooks/{dead}/deliveries/{pending}"),
            &token,
        )
        .await
        .json;
    assert!(d["status"] == "cancelled" || d["status"] == "failed", "{d}");

    // No webhook ever heard about itself.
    for (rx, id) in [
        (&gone_rx, &gone),
        (&flaky_rx, &flaky),
        (&dead_rx, &dead),
        (&watcher, &watch),
    ] {
        for kind in [
            "webhook.disabled",
            "delivery.failed",
            "webhook.paused",
            "webhook.resumed",
        ] {
            assert!(
                events_about(rx, kind, id).is_empty(),
                "{id} got {kind} about itself"
            );
        }
    }
    let types = server.client.get("/api/v1/event-types", &token).await.json;
    for kind in [
        "webhook.disabled",
        "delivery.failed",
        "webhook.paused",
        "webhook.resumed",
    ] {
        assert!(
            types["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == kind),
            "{kind}"
        );
    }
}

/// `rateLimit` caps attempts per second for every dispatcher together (two on Postgres);
/// deliveries held back spend no attempt.
async fn rate_limit_holds_across_dispatchers(backend: Backend) {
    let server = server(backend).await;
    let _replica = match backend {
        Backend::Postgres => Some(server.start_replica().await),
        Backend::Sqlite => None,
    };
    let token = server.api_key("org_rate", "manage").await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let c = &server.client;
    for (limit, ok) in [
        (json!(0), false),
        (json!(10_001), false),
        (json!("2"), false),
        (json!(2), true),
    ] {
        let reply = c
            .post(
                "/api/v1/webhooks",
                &token,
                &json!({"url": receiver.url(), "rateLimit": limit}),
            )
            .await;
        assert_eq!(reply.status == 201, ok, "{limit}: {:?}", reply.json);
        if !ok {
            assert_eq!(reply.json["error"]["details"]["field"], "rateLimit");
        }
    }
    let id = c.get("/api/v1/webhooks", &token).await.json["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(webhook(&server, &token, &id).await["rateLimit"], 2);
    let mut deliveries = Vec::new();
    for _ in 0..6 {
        deliveries.push(server.ping_webhook(&token, &id).await.1);
    }
    let got = eventually("six deliveries", WAIT, || async {
        let got = receiver.received();
        (got.len() >= 6).then_some(got)
    })
    .await;
    // Two per second at most: six need at least three seconds' windows, so the first and the
    // last are more than a second apart.
    let span = got.last().unwrap().at - got.first().unwrap().at;
    assert!(
        span >= Duration::from_secs(1),
        "{backend:?}: six deliveries in {span:?}"
    );
    for delivery in deliveries {
        let d = eventually("the delivery's outcome", WAIT, || async {
            let d = c
                .get(
                    &format!("/api/v1/webhooks/{id}/deliveries/{delivery}"),
                    &token,
                )
                .await
                .json;
            (d["status"] != "pending").then_some(d)
        })
        .await;
        assert_eq!(
            (&d["status"], &d["attempts"]),
            (&json!("succeeded"), &json!(1)),
            "{d}"
        );
    }
    let cleared = c
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            &token,
            &json!({"rateLimit": null}),
        )
        .await;
    assert_eq!(cleared.json["rateLimit"], Value::Null);
}

per_backend!(endpoint_health, rate_limit_holds_across_dispatchers);
