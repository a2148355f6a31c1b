//! Runs the `embed_minimal` example on a fresh SQLite file and a free port: a session created
//! over HTTP connects through the host's engine, and a poll sent through it carries the
//! engine's message id.

use super::*;
use herald_testkit::{Backend, Client, TestDb};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minimal_embedding_serves_with_the_host_engine() {
    let db = TestDb::new(Backend::Sqlite).await;
    let config = db.config();
    let token = {
        let parts = herald::app::assemble(&config).await.unwrap();
        let org = herald::domain::OrgId::parse("org_host").unwrap();
        let all = herald::Capabilities::ALL;
        parts
            .gateway
            .mint_api_key(org, "example", all)
            .await
            .unwrap()
            .token
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = Client::new(&format!("http://{}", listener.local_addr().unwrap()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(run(config, listener, async {
        let _ = stopped.await;
    }));

    let session = client
        .post("/api/v1/sessions", &token, &json!({"name": "support"}))
        .await;
    assert_eq!(session.status, 201, "{:?}", session.json);
    assert_eq!(session.json["status"], "WORKING");
    assert_eq!(session.json["me"]["id"], "15550001111@c.us");
    let id = session.json["id"].as_str().unwrap();
    let sent = client
        .post(
            &format!("/api/v1/sessions/{id}/polls"),
            &token,
            &json!({"chat": "123@c.us", "question": "Lunch?", "options": ["Pizza", "Sushi"]}),
        )
        .await;
    assert_eq!(sent.status, 200, "{:?}", sent.json);
    assert!(sent.json["id"].as_str().unwrap().starts_with("host-"));

    stop.send(()).unwrap();
    served.await.unwrap().unwrap();
}
