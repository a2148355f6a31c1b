//! API keys over HTTP: created with their token shown once, listed without it, granted only
//! within the caller's own capabilities, revoked at once on the replica that revoked them and
//! within 5 s on another one sharing the database.

use herald_testkit::jwks::claims;
use herald_testkit::{eventually, per_backend, Backend, JwksServer, SigningKey, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

fn key_ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_key_is_created_shown_once_listed_without_token_used_and_revoked(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.api_key("org_keys", "manage,send,read").await;
    let created = server
        .client
        .post(
            "/api/v1/api-keys",
            &admin,
            &json!({"name": "ci script", "capabilities": ["read", "send"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{backend:?}: {:?}", created.json);
    let body = created.json.as_object().unwrap();
    let mut fields: Vec<&str> = body.keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(fields, ["capabilities", "createdAt", "id", "name", "token"]);
    let id = created.json["id"].as_str().unwrap().to_owned();
    let token = created.json["token"].as_str().unwrap().to_owned();
    assert!(id.starts_with("key_") && token.starts_with("hk_") && token.len() >= 40);
    assert_eq!(created.json["name"], "ci script");
    assert_eq!(created.json["capabilities"], json!(["read", "send"]));
    assert!(created.json["createdAt"].as_i64().unwrap() > 1_600_000_000_000);

    // The token works, with exactly its capabilities.
    assert_eq!(
        server.client.get("/api/v1/sessions", &token).await.status,
        200
    );
    let denied = server.client.get("/api/v1/webhooks", &token).await;
    assert_eq!((denied.status, denied.error_code()), (403, "forbidden"));

    // Listed without its token, with lastUsedAt filled in after use.
    let listed = eventually(
        "lastUsedAt to be recorded",
        Duration::from_secs(5),
        || async {
            let list = server.client.get("/api/v1/api-keys", &admin).await;
            assert_eq!(list.status, 200);
            assert_eq!(list.json["nextCursor"], "");
            let entry = list.json["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["id"] == id.as_str())
                .cloned()
                .expect("the new key is listed");
            assert!(!String::from_utf8_lossy(&list.body).contains(&token));
            entry["lastUsedAt"].is_i64().then_some(entry)
        },
    )
    .await;
    let mut fields: Vec<&str> = listed
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        ["capabilities", "createdAt", "id", "lastUsedAt", "name"]
    );
    assert!(listed["lastUsedAt"].as_i64().unwrap() >= created.json["createdAt"].as_i64().unwrap());

    // A key never used shows lastUsedAt: null.
    let idle = server
        .client
        .post(
            "/api/v1/api-keys",
            &admin,
            &json!({"name": "idle", "capabilities": ["read"]}),
        )
        .await;
    let list = server.client.get("/api/v1/api-keys", &admin).await;
    let idle_entry = list.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == idle.json["id"])
        .unwrap()
        .clone();
    assert_eq!(idle_entry["lastUsedAt"], Value::Null);

    // Revoked: refused at once on this replica, gone from the list, a second revoke is 404.
    let revoked = server
        .client
        .delete(&format!("/api/v1/api-keys/{id}"), &admin)
        .await;
    assert_eq!(revoked.status, 204, "{:?}", revoked.json);
    assert!(revoked.body.is_empty());
    let refused = server.client.get("/api/v1/sessions", &token).await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (401, "unauthorized")
    );
    assert!(!key_ids(&server.client.get("/api/v1/api-keys", &admin).await.json).contains(&id));
    let again = server
        .client
        .delete(&format!("/api/v1/api-keys/{id}"), &admin)
        .await;
    assert_eq!((again.status, again.error_code()), (404, "not_found"));
    for bad in ["key_nope", "nope", "wh_01J9ZX8K2QHV0M3T6R7P4N5W8C"] {
        let reply = server
            .client
            .delete(&format!("/api/v1/api-keys/{bad}"), &admin)
            .await;
        assert_eq!(reply.status, 404, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_grants_only_what_it_holds_plus_ingest_for_manage() {
    let server = TestServer::start(Backend::Sqlite).await;
    let create = |token: String, caps: Value| {
        let client = server.client.clone();
        async move {
            client
                .post(
                    "/api/v1/api-keys",
                    &token,
                    &json!({"name": "k", "capabilities": caps}),
                )
                .await
        }
    };
    let manage = server.api_key("org_grant", "manage").await;
    let manage_read = server.api_key("org_grant", "manage,read").await;
    let read = server.api_key("org_grant", "read").await;

    for (token, caps, status) in [
        (&manage, json!(["manage"]), 201),
        (&manage, json!(["ingest"]), 201),
        (&manage, json!(["manage", "ingest"]), 201),
        (&manage, json!(["read"]), 403),
        (&manage, json!(["send"]), 403),
        (&manage, json!(["manage", "read"]), 403),
        (&manage_read, json!(["read", "ingest"]), 201),
        (&manage_read, json!(["read", "send"]), 403),
        (&read, json!(["read"]), 403),
    ] {
        let reply = create(token.clone(), caps.clone()).await;
        assert_eq!(reply.status, status, "{caps}: {:?}", reply.json);
        if status == 403 {
            assert_eq!(reply.error_code(), "forbidden");
        }
    }

    // Malformed bodies are 422 naming the field.
    for (body, field) in [
        (json!({"capabilities": ["manage"]}), "name"),
        (json!({"name": "k"}), "capabilities"),
        (
            json!({"name": "k", "capabilities": "manage"}),
            "capabilities",
        ),
        (
            json!({"name": "k", "capabilities": ["root"]}),
            "capabilities",
        ),
        (json!({"name": "k", "capabilities": []}), "capabilities"),
        (json!({"name": 7, "capabilities": ["manage"]}), "name"),
    ] {
        let reply = server.client.post("/api/v1/api-keys", &manage, &body).await;
        assert_eq!(reply.status, 422, "{body}: {:?}", reply.json);
        assert_eq!(reply.json["error"]["details"]["field"], field, "{body}");
    }
    let not_json = server
        .client
        .send_raw(
            "POST",
            "/api/v1/api-keys",
            Some(&manage),
            Some(b"{nope".to_vec()),
            &[],
        )
        .await;
    assert_eq!(not_json.status, 422);

    // A login JWT of an owner (manage, send, read) may grant ingest too, but not more.
    let key = SigningKey::ed(1);
    let jwks = JwksServer::with_keys(&[&key]).await;
    let url = jwks.url();
    let jwt_server = TestServer::start_with(Backend::Sqlite, |c| c.jwks_url = Some(url)).await;
    let owner = key.sign(&claims("org_grant", "owner"));
    let reply = jwt_server
        .client
        .post(
            "/api/v1/api-keys",
            &owner,
            &json!({"name": "engine", "capabilities": ["ingest", "read", "send", "manage"]}),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.json);
    let member = key.sign(&claims("org_grant", "member"));
    let reply = jwt_server
        .client
        .post(
            "/api/v1/api-keys",
            &member,
            &json!({"name": "x", "capabilities": ["read"]}),
        )
        .await;
    assert_eq!(reply.status, 403, "members lack manage");
}

async fn another_organizations_key_cannot_be_listed_or_revoked(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.api_key("org_a", "manage").await;
    let b = server.api_key("org_b", "manage,read").await;
    let b_ids = key_ids(&server.client.get("/api/v1/api-keys", &b).await.json);
    assert_eq!(b_ids.len(), 1);
    let a_ids = key_ids(&server.client.get("/api/v1/api-keys", &a).await.json);
    assert!(a_ids.iter().all(|id| !b_ids.contains(id)), "{backend:?}");
    let reply = server
        .client
        .delete(&format!("/api/v1/api-keys/{}", b_ids[0]), &a)
        .await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (404, "not_found"),
        "{backend:?}"
    );
    assert_eq!(server.client.get("/api/v1/sessions", &b).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_within_five_seconds_by_another_replica() {
    let first = TestServer::start(Backend::Postgres).await;
    let second = first.start_replica().await;
    let admin = first.api_key("org_replicas", "manage,read").await;
    let created = first
        .client
        .post(
            "/api/v1/api-keys",
            &admin,
            &json!({"name": "shared", "capabilities": ["read"]}),
        )
        .await;
    let (id, token) = (
        created.json["id"].as_str().unwrap().to_owned(),
        created.json["token"].as_str().unwrap().to_owned(),
    );
    // Both replicas accept (and cache) it.
    assert_eq!(
        first.client.get("/api/v1/sessions", &token).await.status,
        200
    );
    assert_eq!(
        second.client.get("/api/v1/sessions", &token).await.status,
        200
    );

    assert_eq!(
        first
            .client
            .delete(&format!("/api/v1/api-keys/{id}"), &admin)
            .await
            .status,
        204
    );
    assert_eq!(
        first.client.get("/api/v1/sessions", &token).await.status,
        401,
        "at once here"
    );
    eventually(
        "the other replica to refuse the revoked key",
        Duration::from_secs(5),
        || async {
            (second.client.get("/api/v1/sessions", &token).await.status == 401).then_some(())
        },
    )
    .await;
    // And it stays refused.
    assert_eq!(
        second.client.get("/api/v1/sessions", &token).await.status,
        401
    );
    drop(second);
}

per_backend!(
    a_key_is_created_shown_once_listed_without_token_used_and_revoked,
    another_organizations_key_cannot_be_listed_or_revoked
);
