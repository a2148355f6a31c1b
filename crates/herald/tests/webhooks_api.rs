//! The webhooks and sessions API over real HTTP, on both stores: shapes, defaults, the error
//! table (401 / 403 / 404 / 405 / 413 / 422), organization scoping and the write-only secret.

use herald_testkit::{per_backend, Backend, TestServer};
use serde_json::{json, Value};

struct Org {
    manage: String,
    read: String,
}

async fn org(server: &TestServer, name: &str) -> Org {
    Org {
        manage: server.api_key(name, "manage,send,read").await,
        read: server.api_key(name, "read").await,
    }
}

async fn a_webhook_is_created_with_the_documented_defaults_and_never_shows_its_secret(
    backend: Backend,
) {
    let server = &TestServer::start(backend).await;
    let acme = org(server, "org_acme").await;
    let c = &server.client;
    let created = c
        .post(
            "/api/v1/webhooks",
            &acme.manage,
            &json!({"url": "https://example.com/webhooks/wa", "secret": "0123456789abcdef0123"}),
        )
        .await;
    assert_eq!(created.status, 201, "{backend:?} {:?}", created.json);
    let w = &created.json;
    assert!(w["id"].as_str().unwrap().starts_with("wh_"));
    assert_eq!(w["organizationId"], "org_acme");
    assert_eq!(w["url"], "https://example.com/webhooks/wa");
    assert_eq!(w["events"], json!(["*"]));
    assert_eq!(w["sessionId"], Value::Null);
    assert_eq!(w["active"], true);
    assert_eq!(w["customHeaders"], json!({}));
    assert_eq!(
        w["retryPolicy"],
        json!({"attempts": 15, "delaySeconds": 2, "policy": "exponential"})
    );
    assert!(
        w["createdAt"].as_i64().unwrap() > 1_700_000_000_000,
        "epoch milliseconds"
    );
    assert_eq!(w["createdAt"], w["updatedAt"]);
    assert!(
        !created.body.windows(4).any(|x| x == b"0123"),
        "the secret never comes back"
    );

    let id = w["id"].as_str().unwrap();
    let fetched = c.get(&format!("/api/v1/webhooks/{id}"), &acme.manage).await;
    assert_eq!((fetched.status, &fetched.json), (200, w));
    let list = c.get("/api/v1/webhooks", &acme.manage).await;
    // The full set in one page: paging parameters (and any unknown ones) are ignored.
    let with_params = c
        .get("/api/v1/webhooks?limit=1&cursor=x&foo=bar", &acme.manage)
        .await;
    assert_eq!((with_params.status, &with_params.json), (200, &list.json));
    assert_eq!(list.json, json!({"data": [w], "nextCursor": ""}));
    assert!(!list.body.windows(6).any(|x| x == b"secret"));
}

async fn all_fields_are_stored_and_patch_changes_only_what_it_names(backend: Backend) {
    let server = &TestServer::start(backend).await;
    let acme = org(server, "org_acme").await;
    let c = &server.client;
    let session = c
        .post("/api/v1/sessions", &acme.manage, &json!({"name": "sales"}))
        .await;
    let sid = session.json["id"].as_str().unwrap().to_owned();
    let body = json!({
        "url": "https://example.com/h", "events": ["message", "poll.vote"], "sessionId": sid,
        "customHeaders": {"X-Tenant": "acme"}, "retryPolicy": {"policy": "linear", "delaySeconds": 5, "attempts": 3},
        "active": false, "unknownField": "ignored"
    });
    let created = c.post("/api/v1/webhooks", &acme.manage, &body).await;
    assert_eq!(created.status, 201, "{backend:?} {:?}", created.json);
    let w = created.json;
    assert_eq!(w["events"], json!(["message", "poll.vote"]));
    assert_eq!(w["sessionId"], sid);
    assert_eq!(w["customHeaders"], json!({"X-Tenant": "acme"}));
    assert_eq!(
        w["retryPolicy"],
        json!({"policy": "linear", "delaySeconds": 5, "attempts": 3})
    );
    assert_eq!(w["active"], false);

    let path = format!("/api/v1/webhooks/{}", w["id"].as_str().unwrap());
    let patched = c
        .patch(
            &path,
            &acme.manage,
            &json!({"active": true, "retryPolicy": {"attempts": 7}, "secret": null}),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.json);
    let p = patched.json;
    assert_eq!(p["active"], true);
    assert_eq!(
        p["retryPolicy"],
        json!({"policy": "linear", "delaySeconds": 5, "attempts": 7})
    );
    assert_eq!(
        (&p["url"], &p["events"], &p["sessionId"], &p["createdAt"]),
        (&w["url"], &w["events"], &w["sessionId"], &w["createdAt"])
    );
    let cleared = c
        .patch(&path, &acme.manage, &json!({"sessionId": null}))
        .await;
    assert_eq!(cleared.json["sessionId"], Value::Null);
    assert_eq!(
        c.get(&path, &acme.manage).await.json,
        cleared.json,
        "the patch is durable"
    );

    assert_eq!(c.delete(&path, &acme.manage).await.status, 204);
    assert_eq!(c.get(&path, &acme.manage).await.status, 404);
    assert_eq!(c.delete(&path, &acme.manage).await.status, 404);
}

async fn malformed_bodies_are_422_naming_the_field_and_write_nothing(backend: Backend) {
    let server = &TestServer::start(backend).await;
    let acme = org(server, "org_acme").await;
    let c = &server.client;
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "url"),
        (json!({"url": 42}), "url"),
        (json!({"url": "not a url"}), "url"),
        (json!({"url": "ftp://example.com/x"}), "url"),
        (
            json!({"url": format!("https://example.com/{}", "a".repeat(2100))}),
            "url",
        ),
        (json!({"url": "https://e.com", "events": []}), "events"),
        (
            json!({"url": "https://e.com", "events": ["message", "nope"]}),
            "events",
        ),
        (
            json!({"url": "https://e.com", "events": "message"}),
            "events",
        ),
        (
            json!({"url": "https://e.com", "retryPolicy": {"attempts": 0}}),
            "retryPolicy.attempts",
        ),
        (
            json!({"url": "https://e.com", "retryPolicy": {"attempts": 31}}),
            "retryPolicy.attempts",
        ),
        (
            json!({"url": "https://e.com", "retryPolicy": {"delaySeconds": 0}}),
            "retryPolicy.delaySeconds",
        ),
        (
            json!({"url": "https://e.com", "retryPolicy": {"delaySeconds": 3601}}),
            "retryPolicy.delaySeconds",
        ),
        (
            json!({"url": "https://e.com", "retryPolicy": {"delaySeconds": "2"}}),
            "retryPolicy.delaySeconds",
        ),
        (
            json!({"url": "https://e.com", "retryPolicy": {"policy": "fibonacci"}}),
            "retryPolicy.policy",
        ),
        (
            json!({"url": "https://e.com", "retryPolicy": 5}),
            "retryPolicy",
        ),
        (
            json!({"url": "https://e.com", "customHeaders": {"Host": "evil"}}),
            "customHeaders",
        ),
        (
            json!({"url": "https://e.com", "customHeaders": {"content-length": "1"}}),
            "customHeaders",
        ),
        (
            json!({"url": "https://e.com", "customHeaders": {"X-A": "a\r\nInjected: yes"}}),
            "customHeaders",
        ),
        (
            json!({"url": "https://e.com", "customHeaders": {"Bad Name": "x"}}),
            "customHeaders",
        ),
        (
            json!({"url": "https://e.com", "customHeaders": {"X-A": 1}}),
            "customHeaders",
        ),
        (json!({"url": "https://e.com", "secret": "short"}), "secret"),
        (
            json!({"url": "https://e.com", "secret": "x".repeat(257)}),
            "secret",
        ),
        (json!({"url": "https://e.com", "active": "yes"}), "active"),
        (json!({"url": "https://e.com", "sessionId": 5}), "sessionId"),
    ];
    for (body, field) in cases {
        let r = c.post("/api/v1/webhooks", &acme.manage, &body).await;
        assert_eq!(
            (r.status, r.error_code()),
            (422, "validation_error"),
            "{backend:?} {body}: {:?}",
            r.json
        );
        assert_eq!(r.json["error"]["details"]["field"], field, "{body}");
        assert!(r.json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    for raw in [&b"not json"[..], b"[1,2]", b"\"url\"", b""] {
        let r = c
            .send_raw(
                "POST",
                "/api/v1/webhooks",
                Some(&acme.manage),
                Some(raw.to_vec()),
                &[],
            )
            .await;
        assert_eq!(
            (r.status, r.error_code()),
            (422, "validation_error"),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    let huge = format!(
        "{{\"url\": \"https://e.com\", \"pad\": \"{}\"}}",
        "x".repeat(1024 * 1024 + 10)
    );
    let r = c
        .send_raw(
            "POST",
            "/api/v1/webhooks",
            Some(&acme.manage),
            Some(huge.into_bytes()),
            &[],
        )
        .await;
    assert_eq!((r.status, r.error_code()), (413, "payload_too_large"));
    assert_eq!(
        c.get("/api/v1/webhooks", &acme.manage).await.json["data"],
        json!([]),
        "no partial writes"
    );

    let created = c
        .post(
            "/api/v1/webhooks",
            &acme.manage,
            &json!({"url": "https://e.com"}),
        )
        .await;
    let path = format!("/api/v1/webhooks/{}", created.json["id"].as_str().unwrap());
    let r = c
        .patch(
            &path,
            &acme.manage,
            &json!({"url": "gopher://x", "active": false}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        c.get(&path, &acme.manage).await.json["active"],
        true,
        "a refused patch changes nothing"
    );
}

async fn tokens_and_capabilities_are_checked_before_anything_else(backend: Backend) {
    let server = &TestServer::start(backend).await;
    let acme = org(server, "org_acme").await;
    let c = &server.client;
    let no_token = c.send("GET", "/api/v1/webhooks", None, None).await;
    assert_eq!(
        (no_token.status, no_token.error_code()),
        (401, "unauthorized")
    );
    for header in [
        "Basic abc",
        "Bearer",
        "Bearer ",
        "bearer hk_unknown",
        "garbage",
        "Bearer not.a.jwt",
    ] {
        let r = c
            .send_raw(
                "GET",
                "/api/v1/webhooks",
                None,
                None,
                &[("authorization", header)],
            )
            .await;
        assert_eq!(
            (r.status, r.error_code()),
            (401, "unauthorized"),
            "{header}"
        );
    }
    // 401 wins over 422: a bad token with a bad body is still 401.
    let r = c
        .send_raw(
            "POST",
            "/api/v1/webhooks",
            Some("hk_nope"),
            Some(b"{".to_vec()),
            &[],
        )
        .await;
    assert_eq!(r.status, 401);
    // 403 wins over 422 and 404.
    let r = c
        .send_raw(
            "POST",
            "/api/v1/webhooks",
            Some(&acme.read),
            Some(b"{".to_vec()),
            &[],
        )
        .await;
    assert_eq!((r.status, r.error_code()), (403, "forbidden"));
    assert_eq!(
        c.get("/api/v1/webhooks/wh_nope", &acme.read).await.status,
        403
    );
    assert_eq!(
        c.post("/api/v1/sessions", &acme.read, &json!({"name": "x"}))
            .await
            .status,
        403
    );
    assert_eq!(c.get("/api/v1/sessions", &acme.read).await.status, 200);
    let manage_only = server.api_key("org_acme", "manage").await;
    assert_eq!(
        c.get("/api/v1/sessions", &manage_only).await.status,
        403,
        "manage implies nothing else"
    );

    let r = c
        .send("PUT", "/api/v1/webhooks", Some(&acme.manage), None)
        .await;
    assert_eq!((r.status, r.error_code()), (405, "method_not_allowed"));
    let r = c.get("/api/v1/nowhere", &acme.manage).await;
    assert_eq!((r.status, r.error_code()), (404, "not_found"));

    // 422 wins over 404: a bad value on a missing webhook names the value.
    let missing = "/api/v1/webhooks/wh_01J9ZX9M5B7D3F1H8K2N4Q6S8T";
    for (body, field) in [
        (json!({"url": "ftp://example.com/"}), "url"),
        (json!({"events": ["no.such.event"]}), "events"),
        (
            json!({"retryPolicy": {"attempts": 0}}),
            "retryPolicy.attempts",
        ),
        (json!({"rateLimit": 0}), "rateLimit"),
        (json!({"signing": "standard", "secret": "short"}), "secret"),
    ] {
        let r = c.patch(missing, &acme.manage, &body).await;
        assert_eq!(
            (r.status, r.error_code()),
            (422, "validation_error"),
            "{body}"
        );
        assert_eq!(r.json["error"]["details"]["field"], field, "{body}");
    }
    let fine = c
        .patch(missing, &acme.manage, &json!({"active": false}))
        .await;
    assert_eq!(fine.status, 404);
}

async fn another_organizations_resources_are_not_found(backend: Backend) {
    let server = &TestServer::start(backend).await;
    let acme = org(server, "org_acme").await;
    let globex = org(server, "org_globex").await;
    let c = &server.client;
    let session = c
        .post(
            "/api/v1/sessions",
            &globex.manage,
            &json!({"name": "theirs"}),
        )
        .await
        .json;
    let sid = session["id"].as_str().unwrap();
    let hook = c
        .post(
            "/api/v1/webhooks",
            &globex.manage,
            &json!({"url": "https://e.com"}),
        )
        .await
        .json;
    let hid = hook["id"].as_str().unwrap();

    let r = c
        .post(
            "/api/v1/webhooks",
            &acme.manage,
            &json!({"url": "https://e.com", "sessionId": sid}),
        )
        .await;
    assert_eq!((r.status, r.error_code()), (404, "not_found"));
    assert_eq!(r.json["error"]["message"], "session not found");
    let r = c
        .post(
            "/api/v1/webhooks",
            &acme.manage,
            &json!({"url": "https://e.com", "sessionId": "01J9ZX8K2QHV0M3T6R7P4N5W8C"}),
        )
        .await;
    assert_eq!(r.json["error"]["message"], "session not found");

    let path = format!("/api/v1/webhooks/{hid}");
    assert_eq!(c.get(&path, &acme.manage).await.status, 404);
    assert_eq!(
        c.patch(&path, &acme.manage, &json!({"active": false}))
            .await
            .status,
        404
    );
    assert_eq!(c.delete(&path, &acme.manage).await.status, 404);
    assert_eq!(
        c.get(&format!("/api/v1/sessions/{sid}"), &acme.read)
            .await
            .status,
        404
    );
    assert_eq!(
        c.delete(&format!("/api/v1/sessions/{sid}"), &acme.manage)
            .await
            .status,
        404
    );
    assert_eq!(
        c.get("/api/v1/webhooks", &acme.manage).await.json["data"],
        json!([])
    );
    assert_eq!(
        c.get("/api/v1/sessions", &acme.read).await.json["data"],
        json!([])
    );
    // Still there for their owner.
    assert_eq!(c.get(&path, &globex.manage).await.json["active"], true);
    assert_eq!(
        c.get(&format!("/api/v1/sessions/{sid}"), &globex.read)
            .await
            .status,
        200
    );
}

async fn sessions_come_up_through_the_simulator_and_can_be_deleted(backend: Backend) {
    let server = &TestServer::start(backend).await;
    let acme = org(server, "org_acme").await;
    let c = &server.client;
    let created = c
        .post("/api/v1/sessions", &acme.manage, &json!({"name": "sales"}))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    let s = &created.json;
    assert_eq!(s["id"].as_str().unwrap().len(), 26);
    assert_eq!(
        (&s["organizationId"], &s["name"], &s["status"]),
        (&json!("org_acme"), &json!("sales"), &json!("WORKING"))
    );
    assert!(s["me"]["id"].as_str().unwrap().ends_with("@c.us"));
    let path = format!("/api/v1/sessions/{}", s["id"].as_str().unwrap());
    assert_eq!(c.get(&path, &acme.read).await.json, *s);
    assert_eq!(
        c.get("/api/v1/sessions", &acme.read).await.json,
        json!({"data": [s], "nextCursor": ""})
    );
    for bad in [json!({}), json!({"name": ""}), json!({"name": 3})] {
        let r = c.post("/api/v1/sessions", &acme.manage, &bad).await;
        assert_eq!(
            (r.status, r.json["error"]["details"]["field"].clone()),
            (422, json!("name")),
            "{bad}"
        );
    }
    assert_eq!(c.delete(&path, &acme.manage).await.status, 204);
    assert_eq!(c.get(&path, &acme.read).await.status, 404);
    assert_eq!(
        c.get("/api/v1/sessions/not-a-session", &acme.read)
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_health_and_openapi_answer() {
    let server = TestServer::start(Backend::Sqlite).await;
    let token = server.api_key("org_acme", "read").await;
    let c = &server.client;
    let types = c.get("/api/v1/event-types", &token).await;
    let names: Vec<&str> = types.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "message",
            "message.any",
            "message.ack",
            "poll.vote",
            "poll.vote.failed",
            "session.status",
            "webhook.test",
            "webhook.disabled",
            "delivery.failed",
            "webhook.paused",
            "webhook.resumed"
        ]
    );
    assert_eq!(c.send("GET", "/healthz", None, None).await.status, 200);
    let ready = c.send("GET", "/readyz", None, None).await;
    assert_eq!(
        (ready.status, &ready.json["checks"]["store"]),
        (200, &json!("ok"))
    );
    let doc = c.send("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(doc.json["openapi"], "3.1.0");
    assert!(doc.json["paths"]["/api/v1/webhooks/{id}"]["patch"].is_object());
    let metrics = c.send("GET", "/metrics", None, None).await;
    assert!(String::from_utf8_lossy(&metrics.body).contains("herald_http_requests_total"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_is_answered_for_configured_origins_only() {
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.cors_origins = vec!["https://app.example.com".into()]
    })
    .await;
    let c = &server.client;
    let pre = c
        .send_raw(
            "OPTIONS",
            "/api/v1/webhooks",
            None,
            None,
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "POST"),
            ],
        )
        .await;
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(pre.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    let other = c
        .send_raw(
            "OPTIONS",
            "/api/v1/webhooks",
            None,
            None,
            &[("origin", "https://evil.example.com")],
        )
        .await;
    assert!(other.headers.get("access-control-allow-origin").is_none());
}

per_backend!(
    a_webhook_is_created_with_the_documented_defaults_and_never_shows_its_secret,
    all_fields_are_stored_and_patch_changes_only_what_it_names,
    malformed_bodies_are_422_naming_the_field_and_write_nothing,
    tokens_and_capabilities_are_checked_before_anything_else,
    another_organizations_resources_are_not_found,
    sessions_come_up_through_the_simulator_and_can_be_deleted,
);
