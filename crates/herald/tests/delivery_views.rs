//! The delivery filters (status, event type, creation window), the organization-wide delivery
//! list and a webhook's stats, over real HTTP on both stores, with real receivers.

use herald::config::Config;
use herald_testkit::{eventually, per_backend, Backend, Behaviour, Receiver, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

async fn get(server: &TestServer, token: &str, path: &str) -> Value {
    let reply = server.client.get(path, token).await;
    assert_eq!(reply.status, 200, "{path}: {:?}", reply.json);
    reply.json
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn filters_org_list_and_stats(backend: Backend) {
    let server = TestServer::start_with(backend, |c: &mut Config| {
        c.with_dispatcher = true;
        c.allow_private = Some(true);
    })
    .await;
    let admin = server.api_key("org_views", "manage,read").await;
    let reader = server.api_key("org_views", "read").await;
    let c = &server.client;
    let ok = Receiver::start(Behaviour::Ok).await;
    let failing = Receiver::start(Behaviour::Status(500)).await;
    let admin_ref = &admin;
    let create = |url: String, active: bool| async move {
        let reply = c
            .post(
                "/api/v1/webhooks",
                admin_ref,
                // Session changes only: not the operational events b's failures cause.
                &json!({"url": url, "retryPolicy": {"attempts": 1}, "active": active,
                        "events": ["session.status"]}),
            )
            .await;
        assert_eq!(reply.status, 201, "{:?}", reply.json);
        reply.json["id"].as_str().unwrap().to_owned()
    };
    let a = create(ok.url(), true).await;
    let b = create(failing.url(), true).await;
    let idle = create(ok.url(), false).await;
    // A session's status changes reach both active webhooks.
    let session = c
        .post("/api/v1/sessions", &admin, &json!({"name": "views"}))
        .await;
    assert_eq!(session.status, 201);
    let (_, ping_a) = server.ping_webhook(&admin, &a).await;
    let (_, ping_b) = server.ping_webhook(&admin, &b).await;

    // Everything settles: a's deliveries succeed, b's fail after their one attempt.
    eventually("every delivery to settle", WAIT, || async {
        let pending = get(&server, &reader, "/api/v1/deliveries?status=pending").await;
        pending["data"].as_array().unwrap().is_empty().then_some(())
    })
    .await;

    let of_a = get(&server, &admin, &format!("/api/v1/webhooks/{a}/deliveries")).await;
    let pings = get(
        &server,
        &admin,
        &format!("/api/v1/webhooks/{a}/deliveries?event=webhook.test"),
    )
    .await;
    assert_eq!(ids(&pings), vec![ping_a.clone()], "{backend:?}");
    let statuses = get(
        &server,
        &admin,
        &format!("/api/v1/webhooks/{a}/deliveries?event=session.status"),
    )
    .await;
    assert!(!ids(&statuses).is_empty());
    assert_eq!(ids(&statuses).len() + 1, ids(&of_a).len());
    let ping_created = pings["data"][0]["createdAt"].as_i64().unwrap();
    let after = get(
        &server,
        &admin,
        &format!("/api/v1/webhooks/{a}/deliveries?since={ping_created}&until={ping_created}"),
    )
    .await;
    assert!(ids(&after).contains(&ping_a));
    let before = get(
        &server,
        &admin,
        &format!("/api/v1/webhooks/{a}/deliveries?until={}", ping_created - 1),
    )
    .await;
    assert!(!ids(&before).contains(&ping_a));

    // Across the organization: newest first, paged, filterable by webhook; read is enough.
    let all = get(&server, &reader, "/api/v1/deliveries?limit=200").await;
    let all_ids = ids(&all);
    assert!(all_ids.contains(&ping_a) && all_ids.contains(&ping_b));
    let mut sorted = all_ids.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(all_ids, sorted, "newest first");
    let first = get(&server, &reader, "/api/v1/deliveries?limit=1").await;
    let cursor = first["nextCursor"].as_str().unwrap();
    let second = get(
        &server,
        &reader,
        &format!("/api/v1/deliveries?limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(ids(&first)[0], all_ids[0]);
    assert_eq!(ids(&second)[0], all_ids[1]);
    let only_b = get(
        &server,
        &reader,
        &format!("/api/v1/deliveries?webhookId={b}"),
    )
    .await;
    assert!(only_b["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["webhookId"] == b.as_str()));
    let failed = get(
        &server,
        &reader,
        "/api/v1/deliveries?status=failed&event=webhook.test",
    )
    .await;
    assert_eq!(ids(&failed), vec![ping_b.clone()]);
    let none = get(
        &server,
        &reader,
        &format!("/api/v1/deliveries?webhookId={idle}"),
    )
    .await;
    assert!(ids(&none).is_empty());

    // Another organization sees none of it, and cannot name these webhooks.
    let other = server.api_key("org_elsewhere", "read").await;
    assert!(ids(&get(&server, &other, "/api/v1/deliveries").await).is_empty());
    assert_eq!(
        c.get(&format!("/api/v1/deliveries?webhookId={a}"), &other)
            .await
            .status,
        404
    );
    assert_eq!(
        c.get(&format!("/api/v1/webhooks/{a}/stats"), &other)
            .await
            .status,
        404
    );

    for (path, field) in [
        (
            format!("/api/v1/webhooks/{a}/deliveries?event=nope"),
            "event",
        ),
        (format!("/api/v1/webhooks/{a}/deliveries?since=-1"), "since"),
        ("/api/v1/deliveries?until=yesterday".to_owned(), "until"),
        ("/api/v1/deliveries?webhookId=nope".to_owned(), "webhookId"),
        (format!("/api/v1/webhooks/{a}/stats?window=2h"), "window"),
    ] {
        let reply = c.get(&path, &admin).await;
        assert_eq!(reply.status, 422, "{path}: {:?}", reply.json);
        assert_eq!(reply.json["error"]["details"]["field"], field, "{path}");
    }

    // Stats over the attempt log.
    let stats = get(&server, &reader, &format!("/api/v1/webhooks/{a}/stats")).await;
    assert_eq!(stats["window"], "24h");
    let attempts = stats["attempts"].as_u64().unwrap();
    assert_eq!(attempts as usize, ids(&of_a).len(), "{stats}");
    assert_eq!(
        (stats["succeeded"].as_u64(), stats["failed"].as_u64()),
        (Some(attempts), Some(0))
    );
    assert_eq!(stats["successRate"], 1.0);
    assert_eq!(stats["byStatusCode"], json!({"200": attempts}));
    assert_eq!(stats["pending"], 0);
    let latency = &stats["latencyMs"];
    let (p50, p95, p99) = (
        latency["p50"].as_i64().unwrap(),
        latency["p95"].as_i64().unwrap(),
        latency["p99"].as_i64().unwrap(),
    );
    assert!(0 <= p50 && p50 <= p95 && p95 <= p99, "{latency}");

    let stats = get(
        &server,
        &reader,
        &format!("/api/v1/webhooks/{b}/stats?window=1h"),
    )
    .await;
    assert_eq!(stats["window"], "1h");
    let attempts = stats["attempts"].as_u64().unwrap();
    assert!(attempts >= 1);
    assert_eq!(
        (stats["succeeded"].as_u64(), stats["failed"].as_u64()),
        (Some(0), Some(attempts))
    );
    assert_eq!(stats["successRate"], 0.0);
    assert_eq!(stats["byStatusCode"], json!({"500": attempts}));

    let stats = get(
        &server,
        &reader,
        &format!("/api/v1/webhooks/{idle}/stats?window=7d"),
    )
    .await;
    assert_eq!(stats["attempts"], 0);
    assert_eq!(
        (&stats["successRate"], &stats["latencyMs"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(stats["byStatusCode"], json!({}));
}

per_backend!(filters_org_list_and_stats);
