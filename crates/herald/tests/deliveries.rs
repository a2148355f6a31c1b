//! Webhook delivery end to end, on both stores: the real server with its in-process dispatcher,
//! real local receivers, real sockets. Covers the request a receiver sees (headers,
//! signature, envelope bytes), the retry schedule, dead-lettering, manual retry and recovery, `Retry-After`,
//! redirects, timeouts, dropped connections, big replies, the SSRF guard, cancellation, the
//! deliveries API's validation and isolation, and at most one attempt in flight.

use herald::config::Config;
use herald_testkit::{eventually, per_backend, Backend, Behaviour, Receiver, TestServer};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha512;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(20);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A server that delivers in-process on either store and may reach local receivers.
async fn server(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(backend, |c| {
        c.with_dispatcher = true;
        c.allow_private = Some(true);
        adjust(c);
    })
    .await
}

async fn create_webhook(server: &TestServer, token: &str, body: Value) -> String {
    let reply = server.client.post("/api/v1/webhooks", token, &body).await;
    assert_eq!(reply.status, 201, "{:?}", reply.json);
    reply.json["id"].as_str().unwrap().to_owned()
}

async fn test_ping(server: &TestServer, token: &str, webhook: &str) -> (String, String) {
    server.ping_webhook(token, webhook).await
}

async fn delivery(server: &TestServer, token: &str, webhook: &str, id: &str) -> Value {
    let reply = server
        .client
        .get(
            &format!("/api/v1/webhooks/{webhook}/deliveries/{id}"),
            token,
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.json);
    reply.json
}

/// Waits until the delivery's status is `status`, and returns it.
async fn settled(server: &TestServer, token: &str, webhook: &str, id: &str, status: &str) -> Value {
    eventually(&format!("delivery {id} to be {status}"), WAIT, || async {
        let d = delivery(server, token, webhook, id).await;
        (d["status"] == status).then_some(d)
    })
    .await
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}

async fn a_test_ping_is_signed_and_carries_exactly_the_documented_headers(backend: Backend) {
    let server = server(backend, |_| {}).await;
    let token = server.api_key("org_sig", "manage").await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let secret = "a-very-secret-signing-key";
    let webhook = create_webhook(
        &server,
        &token,
        json!({"url": receiver.url(), "secret": secret, "events": ["message"],
               "customHeaders": {"X-Tenant": "acme", "User-Agent": "custom-agent/1"}}),
    )
    .await;
    let before = now_ms();
    let (event_id, delivery_id) = test_ping(&server, &token, &webhook).await;
    let got = eventually("the ping", WAIT, || async { receiver.received().pop() }).await;
    let after = now_ms();

    // The body is the envelope; the signature is HMAC-SHA512 over exactly these bytes.
    let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&got.body);
    let expected = hex::encode(mac.finalize().into_bytes());
    assert_eq!(
        header(&got.headers, "x-webhook-hmac"),
        expected,
        "{backend:?}"
    );
    assert_eq!(header(&got.headers, "x-webhook-hmac-algorithm"), "sha512");
    assert_eq!(header(&got.headers, "content-type"), "application/json");
    assert_eq!(
        header(&got.headers, "user-agent"),
        "custom-agent/1",
        "custom headers override"
    );
    assert_eq!(header(&got.headers, "x-tenant"), "acme");
    assert_eq!(header(&got.headers, "x-webhook-request-id"), event_id);
    let stamp: i64 = header(&got.headers, "x-webhook-timestamp").parse().unwrap();
    assert!(
        (before..=after).contains(&stamp),
        "{stamp} not in {before}..{after}"
    );
    let allowed = [
        "content-type",
        "user-agent",
        "x-webhook-request-id",
        "x-webhook-timestamp",
        "x-webhook-hmac",
        "x-webhook-hmac-algorithm",
        "x-tenant",
        "host",
        "content-length",
    ];
    for name in got.headers.keys() {
        assert!(allowed.contains(&name.as_str()), "unexpected header {name}");
    }

    let envelope: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(envelope["id"], event_id.as_str());
    assert_eq!(envelope["event"], "webhook.test");
    assert_eq!(envelope["organizationId"], "org_sig");
    for key in ["timestamp", "session", "me", "payload"] {
        assert!(envelope.get(key).is_some(), "envelope lacks {key}");
    }

    let d = settled(&server, &token, &webhook, &delivery_id, "succeeded").await;
    assert_eq!(
        d["envelope"], envelope,
        "the stored envelope is what was sent"
    );
    assert_eq!(d["eventId"], event_id.as_str());
    assert_eq!(d["event"], "webhook.test");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["lastStatusCode"], 200);
    assert_eq!(d["nextAttemptAt"], Value::Null);
    let log = d["attemptLog"].as_array().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["attempt"], 1);
    assert_eq!(log[0]["statusCode"], 200);
    assert_eq!(log[0]["error"], Value::Null);
    assert_eq!(log[0]["responseBody"], "ok");
    assert!(log[0]["durationMs"].as_i64().unwrap() >= 0);

    // Without a secret (an explicit null: an omitted one is generated) nothing is signed.
    let plain = create_webhook(
        &server,
        &token,
        json!({"url": receiver.url(), "secret": null}),
    )
    .await;
    test_ping(&server, &token, &plain).await;
    let unsigned = eventually("the unsigned ping", WAIT, || async {
        let all = receiver.received();
        (all.len() == 2).then(|| all[1].clone())
    })
    .await;
    assert!(unsigned.headers.get("x-webhook-hmac").is_none());
    assert!(unsigned.headers.get("x-webhook-hmac-algorithm").is_none());
    assert!(header(&unsigned.headers, "user-agent").starts_with("herald/"));
}

async fn failures_follow_the_schedule_then_dead_letter_and_can_be_retried_and_recovered(
    backend: Backend,
) {
    let server = server(backend, |_| {}).await;
    let token = server.api_key("org_retry", "manage").await;
    let receiver = Receiver::start(Behaviour::Status(503)).await;
    let webhook = create_webhook(
        &server,
        &token,
        json!({"url": receiver.url(),
               "retryPolicy": {"policy": "constant", "delaySeconds": 1, "attempts": 2}}),
    )
    .await;
    let (event_id, id) = test_ping(&server, &token, &webhook).await;
    let d = settled(&server, &token, &webhook, &id, "failed").await;
    assert_eq!(d["attempts"], 2, "{backend:?}");
    assert_eq!(d["lastError"], "http_status");
    assert_eq!(d["lastStatusCode"], 503);
    assert_eq!(d["nextAttemptAt"], Value::Null);
    let log = d["attemptLog"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert!(log
        .iter()
        .all(|a| a["error"] == "http_status" && a["statusCode"] == 503));
    assert_eq!(log[0]["responseBody"], "nope");
    let gap = log[1]["startedAt"].as_i64().unwrap() - log[0]["startedAt"].as_i64().unwrap();
    assert!(
        gap >= 1_000,
        "the second attempt came {gap} ms after the first"
    );
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert!(got
        .iter()
        .all(|r| header(&r.headers, "x-webhook-request-id") == event_id));
    assert_eq!(got[0].body, got[1].body, "a retry sends the same bytes");

    let failed = server
        .client
        .get(
            &format!("/api/v1/webhooks/{webhook}/deliveries?status=failed"),
            &token,
        )
        .await;
    assert_eq!(failed.json["data"][0]["id"], id.as_str());

    // A deliberate resend renews the budget and continues the attempt log.
    receiver.set_behaviour(Behaviour::Ok);
    let retried = server
        .client
        .post(
            &format!("/api/v1/webhooks/{webhook}/deliveries/{id}/retry"),
            &token,
            &json!({}),
        )
        .await;
    assert_eq!(retried.status, 202, "{:?}", retried.json);
    assert_eq!(retried.json["id"], id.as_str());
    let d = settled(&server, &token, &webhook, &id, "succeeded").await;
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["attemptLog"].as_array().unwrap().len(), 3);
    // Retrying a succeeded delivery is a deliberate resend too.
    let again = server
        .client
        .post(
            &format!("/api/v1/webhooks/{webhook}/deliveries/{id}/retry"),
            &token,
            &json!({}),
        )
        .await;
    assert_eq!(again.status, 202);
    settled(&server, &token, &webhook, &id, "succeeded").await;
    eventually("the resend", WAIT, || async {
        (receiver.received().len() == 4).then_some(())
    })
    .await;

    // Recovery requeues every failed delivery of the window.
    receiver.set_behaviour(Behaviour::Status(500));
    let since = now_ms();
    let (_, a) = test_ping(&server, &token, &webhook).await;
    let (_, b) = test_ping(&server, &token, &webhook).await;
    settled(&server, &token, &webhook, &a, "failed").await;
    settled(&server, &token, &webhook, &b, "failed").await;
    receiver.set_behaviour(Behaviour::Ok);
    let recovered = server
        .client
        .post(
            &format!("/api/v1/webhooks/{webhook}/recover"),
            &token,
            &json!({"since": since}),
        )
        .await;
    assert_eq!(recovered.status, 202, "{:?}", recovered.json);
    assert_eq!(recovered.json, json!({"requeued": 2}));
    settled(&server, &token, &webhook, &a, "succeeded").await;
    settled(&server, &token, &webhook, &b, "succeeded").await;
    let none = server
        .client
        .post(
            &format!("/api/v1/webhooks/{webhook}/recover"),
            &token,
            &json!({"since": 0, "until": 1}),
        )
        .await;
    assert_eq!(none.json, json!({"requeued": 0}));
}

async fn exponential_backoff_doubles_and_a_recovering_endpoint_succeeds(backend: Backend) {
    let server = server(backend, |_| {}).await;
    let token = server.api_key("org_exp", "manage").await;
    let receiver = Receiver::start(Behaviour::FailTimes(2)).await;
    let webhook = create_webhook(
        &server,
        &token,
        json!({"url": receiver.url(),
               "retryPolicy": {"policy": "exponential", "delaySeconds": 1, "attempts": 5}}),
    )
    .await;
    let (_, id) = test_ping(&server, &token, &webhook).await;
    let d = settled(&server, &token, &webhook, &id, "succeeded").await;
    let log = d["attemptLog"].as_array().unwrap();
    assert_eq!(log.len(), 3, "{backend:?}");
    let at = |i: usize| log[i]["startedAt"].as_i64().unwrap();
    assert!(at(1) - at(0) >= 1_000, "first delay is d");
    assert!(at(2) - at(1) >= 2_000, "second delay is 2d");
    assert_eq!(log[0]["statusCode"], 500);
    assert_eq!(log[2]["statusCode"], 200);
}

async fn retry_after_pushes_the_next_attempt_later(backend: Backend) {
    let server = server(backend, |_| {}).await;
    let token = server.api_key("org_ra", "manage").await;
    let receiver = Receiver::start(Behaviour::RetryAfter(429, 120)).await;
    let webhook = create_webhook(
        &server,
        &token,
        json!({"url": receiver.url(),
               "retryPolicy": {"policy": "constant", "delaySeconds": 1, "attempts": 3}}),
    )
    .await;
    let (_, id) = test_ping(&server, &token, &webhook).await;
    let d = eventually("the first attempt", WAIT, || async {
        let d = delivery(&server, &token, &webhook, &id).await;
        (d["attempts"] == 1).then_some(d)
    })
    .await;
    assert_eq!(d["status"], "pending", "{backend:?}");
    assert_eq!(d["lastStatusCode"], 429);
    let wait = d["nextAttemptAt"].as_i64().unwrap() - d["lastAttemptAt"].as_i64().unwrap();
    assert!(wait >= 119_000, "Retry-After: 120 honoured, got {wait} ms");
}

async fn redirects_timeouts_hangups_and_huge_replies_are_classified(backend: Backend) {
    let server = server(backend, |c| {
        c.delivery_timeout = Duration::from_millis(1_000)
    })
    .await;
    let token = server.api_key("org_faults", "manage").await;
    let target = Receiver::start(Behaviour::Ok).await;
    let cases = [
        (Behaviour::Redirect(target.url()), Some(302), "http_status"),
        (Behaviour::Delay(Duration::from_secs(4)), None, "timeout"),
        (Behaviour::Close, None, "connect"),
        (Behaviour::Truncated, Some(200), "response_incomplete"),
    ];
    let once = json!({"policy": "constant", "delaySeconds": 1, "attempts": 1});
    for (behaviour, status, error) in cases {
        let receiver = Receiver::start(behaviour.clone()).await;
        let webhook = create_webhook(
            &server,
            &token,
            json!({"url": receiver.url(), "retryPolicy": once}),
        )
        .await;
        let (_, id) = test_ping(&server, &token, &webhook).await;
        let d = settled(&server, &token, &webhook, &id, "failed").await;
        let attempt = &d["attemptLog"][0];
        assert_eq!(attempt["error"], error, "{backend:?} {behaviour:?}: {d}");
        assert_eq!(attempt["statusCode"], json!(status), "{behaviour:?}");
        if error == "timeout" {
            assert!(
                attempt["durationMs"].as_i64().unwrap() < 3_500,
                "the deadline is hard"
            );
            assert_eq!(attempt["responseBody"], "no answer within 1000 ms");
        }
    }
    assert!(target.received().is_empty(), "redirects are not followed");

    // A huge reply is a success, and only its first 4 KiB are kept.
    let big = Receiver::start(Behaviour::BigBody(2 * 1024 * 1024)).await;
    let webhook = create_webhook(
        &server,
        &token,
        json!({"url": big.url(), "retryPolicy": once}),
    )
    .await;
    let (_, id) = test_ping(&server, &token, &webhook).await;
    let d = settled(&server, &token, &webhook, &id, "succeeded").await;
    assert_eq!(
        d["attemptLog"][0]["responseBody"].as_str().unwrap().len(),
        4096
    );

    // Nobody listening: a refused connection.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let webhook = create_webhook(
        &server,
        &token,
        json!({"url": format!("http://127.0.0.1:{port}/"), "retryPolicy": once}),
    )
    .await;
    let (_, id) = test_ping(&server, &token, &webhook).await;
    let d = settled(&server, &token, &webhook, &id, "failed").await;
    assert_eq!(d["lastError"], "connect");
}

async fn literal_private_destinations_are_refused_when_saved(backend: Backend) {
    let server = TestServer::start_with(backend, |c| c.allow_private = Some(false)).await;
    let token = server.api_key("org_ssrf", "manage").await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://localhost:8080/",
    ] {
        let reply = server
            .client
            .post("/api/v1/webhooks", &token, &json!({"url": url}))
            .await;
        assert_eq!(reply.status, 422, "{backend:?} {url}: {:?}", reply.json);
        assert_eq!(reply.json["error"]["details"]["field"], "url", "{url}");
    }
    let webhook = create_webhook(&server, &token, json!({"url": "https://example.com/hook"})).await;
    let path = format!("/api/v1/webhooks/{webhook}");
    let reply = server
        .client
        .patch(&path, &token, &json!({"url": "http://[::1]:9/"}))
        .await;
    assert_eq!(reply.status, 422, "{backend:?}: {:?}", reply.json);
    let reply = server
        .client
        .patch(&path, &token, &json!({"url": "https://example.org/"}))
        .await;
    assert_eq!(reply.status, 200, "{backend:?}: {:?}", reply.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_refused_at_connect_time_fails_after_one_attempt() {
    // Postgres refuses private destinations by default. The webhook was saved through a
    // replica that allows them; the delivering replica refuses the connection.
    let server = TestServer::start_with(Backend::Postgres, |c| c.with_dispatcher = true).await;
    let mut lenient = server.config.clone();
    lenient.allow_private = Some(true);
    lenient.with_dispatcher = false;
    let saver = TestServer::start_on(server.db.borrow(), lenient).await;
    let token = server.api_key("org_ssrf", "manage").await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    // The default policy would retry 15 times; a refused destination is not retried.
    let webhook = create_webhook(&saver, &token, json!({"url": receiver.url()})).await;
    let (_, id) = test_ping(&server, &token, &webhook).await;
    let d = settled(&server, &token, &webhook, &id, "failed").await;
    assert_eq!(d["lastError"], "blocked_address");
    assert_eq!(d["attempts"], 1, "{d}");
    assert_eq!(d["attemptLog"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(d["attemptLog"][0]["statusCode"], Value::Null);
    assert!(receiver.received().is_empty());
    drop(saver);
}

async fn the_deliveries_api_validates_pages_and_isolates(backend: Backend) {
    let server = server(backend, |_| {}).await;
    let token = server.api_key("org_a", "manage").await;
    let other = server.api_key("org_b", "manage").await;
    let reader = server.api_key("org_a", "read").await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let webhook = create_webhook(&server, &token, json!({"url": receiver.url()})).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(test_ping(&server, &token, &webhook).await.1);
    }
    for id in &ids {
        settled(&server, &token, &webhook, id, "succeeded").await;
    }
    let base = format!("/api/v1/webhooks/{webhook}/deliveries");

    let first = server.client.get(&format!("{base}?limit=2"), &token).await;
    assert_eq!(first.status, 200);
    let page: Vec<&str> = first.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(page, [ids[2].as_str(), ids[1].as_str()], "newest first");
    let cursor = first.json["nextCursor"].as_str().unwrap();
    assert!(!cursor.is_empty());
    let second = server
        .client
        .get(&format!("{base}?limit=2&cursor={cursor}"), &token)
        .await;
    assert_eq!(second.json["data"][0]["id"], ids[0].as_str());
    assert_eq!(second.json["nextCursor"], "");
    let d = &second.json["data"][0];
    for key in [
        "id",
        "webhookId",
        "eventId",
        "event",
        "status",
        "attempts",
        "nextAttemptAt",
        "lastAttemptAt",
        "lastStatusCode",
        "lastError",
        "createdAt",
        "updatedAt",
    ] {
        assert!(d.get(key).is_some(), "list item lacks {key}");
    }
    let pending = server
        .client
        .get(&format!("{base}?status=pending"), &token)
        .await;
    assert_eq!(pending.json, json!({"data": [], "nextCursor": ""}));

    for (query, field) in [
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=x", "limit"),
        ("cursor=garbage", "cursor"),
    ] {
        let bad = server.client.get(&format!("{base}?{query}"), &token).await;
        assert_eq!(bad.status, 422, "{query}");
        assert_eq!(bad.json["error"]["details"]["field"], field, "{query}");
    }
    let bad_body = server
        .client
        .post(
            &format!("/api/v1/webhooks/{webhook}/recover"),
            &token,
            &json!({"since": "yesterday"}),
        )
        .await;
    assert_eq!(
        (
            bad_body.status,
            bad_body.json["error"]["details"]["field"].as_str()
        ),
        (422, Some("since"))
    );
    let missing = server
        .client
        .post(
            &format!("/api/v1/webhooks/{webhook}/recover"),
            &token,
            &json!({}),
        )
        .await;
    assert_eq!(missing.status, 422);

    // Another organization sees none of it; a reader may not look.
    let paths = [
        ("GET", base.clone()),
        ("GET", format!("{base}/{}", ids[0])),
        ("POST", format!("{base}/{}/retry", ids[0])),
        ("POST", format!("/api/v1/webhooks/{webhook}/test")),
    ];
    for (method, path) in &paths {
        let foreign = server
            .client
            .send(method, path, Some(&other), Some(&json!({})))
            .await;
        assert_eq!(foreign.status, 404, "{method} {path}");
        let weak = server
            .client
            .send(method, path, Some(&reader), Some(&json!({})))
            .await;
        assert_eq!(weak.status, 403, "{method} {path}");
        let anonymous = server
            .client
            .send(method, path, None, Some(&json!({})))
            .await;
        assert_eq!(anonymous.status, 401, "{method} {path}");
    }
    let foreign = server
        .client
        .post(
            &format!("/api/v1/webhooks/{webhook}/recover"),
            &other,
            &json!({"since": 0}),
        )
        .await;
    assert_eq!(foreign.status, 404);
    let unknown = server
        .client
        .get(&format!("{base}/dlv_01J9ZX8K2QHV0M3T6R7P4N5W8C"), &token)
        .await;
    assert_eq!(unknown.status, 404);
    let malformed = server.client.get(&format!("{base}/nope"), &token).await;
    assert_eq!(malformed.status, 404);
    let no_hook = server
        .client
        .get(
            "/api/v1/webhooks/wh_01J9ZX8K2QHV0M3T6R7P4N5W8C/deliveries",
            &token,
        )
        .await;
    assert_eq!(no_hook.status, 404);

    let metrics = server.client.send("GET", "/metrics", None, None).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("herald_deliveries_total{outcome=\"succeeded\"}"),
        "{text}"
    );
    assert!(text.contains("herald_delivery_attempt_duration_seconds_bucket"));
    assert!(text.contains("herald_delivery_in_flight"));
}

async fn deactivating_or_deleting_cancels_and_an_attempt_in_flight_cannot_be_retried(
    backend: Backend,
) {
    let server = server(backend, |_| {}).await;
    let token = server.api_key("org_cancel", "manage").await;
    let receiver = Receiver::start(Behaviour::Status(500)).await;
    let webhook = create_webhook(
        &server,
        &token,
        json!({"url": receiver.url(), "retryPolicy": {"policy": "constant", "delaySeconds": 60, "attempts": 5}}),
    )
    .await;
    let (_, id) = test_ping(&server, &token, &webhook).await;
    eventually("the first attempt", WAIT, || async {
        (delivery(&server, &token, &webhook, &id).await["attempts"] == 1).then_some(())
    })
    .await;
    let patched = server
        .client
        .patch(
            &format!("/api/v1/webhooks/{webhook}"),
            &token,
            &json!({"active": false}),
        )
        .await;
    assert_eq!(patched.status, 200);
    let d = delivery(&server, &token, &webhook, &id).await;
    assert_eq!(d["status"], "cancelled", "{backend:?}");
    assert_eq!(d["nextAttemptAt"], Value::Null);
    let inactive = server
        .client
        .post(
            &format!("/api/v1/webhooks/{webhook}/test"),
            &token,
            &json!({}),
        )
        .await;
    assert_eq!(inactive.status, 409);

    // A slow receiver holds an attempt in flight: retrying it now is a conflict.
    let slow = Receiver::start(Behaviour::Delay(Duration::from_secs(2))).await;
    let busy = create_webhook(&server, &token, json!({"url": slow.url()})).await;
    let (_, id) = test_ping(&server, &token, &busy).await;
    eventually("the slow attempt to start", WAIT, || async {
        (!slow.received().is_empty()).then_some(())
    })
    .await;
    let conflict = server
        .client
        .post(
            &format!("/api/v1/webhooks/{busy}/deliveries/{id}/retry"),
            &token,
            &json!({}),
        )
        .await;
    assert_eq!(conflict.status, 409, "{:?}", conflict.json);
    assert_eq!(conflict.error_code(), "conflict");
    settled(&server, &token, &busy, &id, "succeeded").await;

    // Deleting a webhook removes its queue with it.
    let deleted = server
        .client
        .delete(&format!("/api/v1/webhooks/{busy}"), &token)
        .await;
    assert_eq!(deleted.status, 204);
    let gone = server
        .client
        .get(&format!("/api/v1/webhooks/{busy}/deliveries"), &token)
        .await;
    assert_eq!(gone.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_never_attempt_one_delivery_at_the_same_time() {
    // The API delivers in-process and a second dispatcher competes on the same Postgres; the
    // receiver is slower than a lease would be if leases did not outlive the timeout.
    let server = server(Backend::Postgres, |c| {
        c.delivery_timeout = Duration::from_millis(3_000);
        c.delivery_lease_margin = Duration::from_millis(2_000);
    })
    .await;
    let parts = herald::app::assemble(&server.config).await.unwrap();
    let second = herald::dispatch::RunningDispatcher::start(&server.config, &parts).unwrap();
    let token = server.api_key("org_once", "manage").await;
    let receiver = Receiver::start(Behaviour::Delay(Duration::from_millis(1_500))).await;
    let webhook = create_webhook(&server, &token, json!({"url": receiver.url()})).await;
    let mut ids = Vec::new();
    for _ in 0..24 {
        ids.push(test_ping(&server, &token, &webhook).await);
    }
    for (_, id) in &ids {
        settled(&server, &token, &webhook, id, "succeeded").await;
    }
    let got = receiver.received();
    for (event, _) in &ids {
        let n = got
            .iter()
            .filter(|r| header(&r.headers, "x-webhook-request-id") == event)
            .count();
        assert_eq!(n, 1, "event {event} was sent {n} times");
    }
    second.shutdown().await;
}

async fn a_slow_receiver_does_not_hold_up_other_webhooks(backend: Backend) {
    // Four worker slots, at most two per webhook: the slow webhook's first attempt runs
    // past a second, moves it to the slow lane (where it may run two), and the other
    // webhook must still get through.
    let server = server(backend, |c| {
        c.delivery_workers = 4;
        c.delivery_per_webhook = 2;
    })
    .await;
    let token = server.api_key("org_slow", "manage").await;
    let slow = Receiver::start(Behaviour::Delay(Duration::from_secs(3))).await;
    let fast = Receiver::start(Behaviour::Ok).await;
    let clogged = create_webhook(
        &server,
        &token,
        json!({"url": slow.url(), "events": ["session.status"]}),
    )
    .await;
    let other = create_webhook(
        &server,
        &token,
        json!({"url": fast.url(), "events": ["message"]}),
    )
    .await;
    // Twelve events for the slow webhook, committed at once so one claim takes a batch:
    // one attempt runs (a webhook that has not answered yet gets one), the rest queue
    // locally until it turns slow, and are then given back and claimed by the slow lane.
    let parts = herald::app::assemble(&server.config).await.unwrap();
    let org = herald_domain::OrgId::parse("org_slow").unwrap();
    let events: Vec<_> = (0..12)
        .map(|_| {
            herald_domain::event::Envelope::new(
                herald_domain::event::EventType::SessionStatus,
                org.clone(),
                None,
                None,
                now_ms(),
                json!({"status": "WORKING", "me": null}),
            )
        })
        .collect();
    parts.gateway.emit(&events).await.unwrap();
    // Those were committed by another process's parts; a ping through the server wakes its
    // dispatcher at once (on SQLite nothing else would until its periodic re-check).
    test_ping(&server, &token, &clogged).await;
    eventually("the slow receiver to be busy", WAIT, || async {
        (slow.received().len() == 2).then_some(())
    })
    .await;
    let (_, id) = test_ping(&server, &token, &other).await;
    settled(&server, &token, &other, &id, "succeeded").await;
    let started = slow.received().len();
    assert_eq!(
        started, 2,
        "{backend:?}: the other webhook waited until the slow one's queue moved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_restart_takes_back_its_dead_predecessors_leases_at_once() {
    // A lease that outlives the test by far, held by a process that is gone: the restarted
    // embedded process must attempt the delivery at once, not when the lease lapses.
    let mut first = server(Backend::Sqlite, |_| {}).await;
    let token = first.api_key("org_restart", "manage").await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let webhook = create_webhook(&first, &token, json!({"url": receiver.url()})).await;
    first.stop().await;

    let parts = herald::app::assemble(&first.config).await.unwrap();
    let org = herald_domain::OrgId::parse("org_restart").unwrap();
    let event = herald_domain::event::Envelope::new(
        herald_domain::event::EventType::SessionStatus,
        org,
        None,
        None,
        now_ms(),
        json!({"status": "WORKING", "me": null}),
    );
    parts
        .gateway
        .emit(std::slice::from_ref(&event))
        .await
        .unwrap();
    let lease = herald_domain::delivery::Lease {
        owner: "dsp_dead_predecessor".to_owned(),
        until: now_ms() + 3_600_000,
    };
    let claimed = parts
        .store
        .claim_deliveries(
            herald_domain::delivery::Lane::Fresh,
            &lease,
            now_ms(),
            10,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    drop(parts);

    let second = first.start_replica().await;
    eventually("the orphaned delivery to be sent", WAIT, || async {
        (!receiver.received().is_empty()).then_some(())
    })
    .await;
    let got = receiver.received();
    assert_eq!(
        header(&got[0].headers, "x-webhook-request-id"),
        event.id.to_string()
    );
    let page = second
        .client
        .get(&format!("/api/v1/webhooks/{webhook}/deliveries"), &token)
        .await;
    assert_eq!(page.json["data"].as_array().unwrap().len(), 1);
    drop(second);
}

per_backend!(
    a_test_ping_is_signed_and_carries_exactly_the_documented_headers,
    failures_follow_the_schedule_then_dead_letter_and_can_be_retried_and_recovered,
    exponential_backoff_doubles_and_a_recovering_endpoint_succeeds,
    retry_after_pushes_the_next_attempt_later,
    redirects_timeouts_hangups_and_huge_replies_are_classified,
    literal_private_destinations_are_refused_when_saved,
    the_deliveries_api_validates_pages_and_isolates,
    deactivating_or_deleting_cancels_and_an_attempt_in_flight_cannot_be_retried,
    a_slow_receiver_does_not_hold_up_other_webhooks
);
