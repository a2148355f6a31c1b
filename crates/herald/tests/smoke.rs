//! A first end-to-end check on both stores: a key minted like the CLI does opens the API.

use herald_testkit::{per_backend, Backend, TestServer};
use serde_json::json;

async fn a_minted_key_lists_and_creates_webhooks(backend: Backend) {
    let server = TestServer::start(backend).await;
    let token = server.api_key("org_acme", "manage,read").await;
    let list = server.client.get("/api/v1/webhooks", &token).await;
    assert_eq!(list.status, 200, "{backend:?}");
    assert_eq!(list.json, json!({"data": [], "nextCursor": ""}));
    let created = server
        .client
        .post(
            "/api/v1/webhooks",
            &token,
            &json!({"url": "https://example.com/h"}),
        )
        .await;
    assert_eq!(created.status, 201, "{backend:?}: {:?}", created.json);
    assert_eq!(
        server.client.get("/api/v1/webhooks", &token).await.json["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

per_backend!(a_minted_key_lists_and_creates_webhooks);
