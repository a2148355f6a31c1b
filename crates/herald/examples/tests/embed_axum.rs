//! Runs the `embed_axum` example: the host's route and Herald's API answer side by side, and a
//! poll sent by a host route through the Rust API shows up in Herald's event log over HTTP.

use super::*;
use herald_testkit::{Backend, Client, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_mounts_under_a_prefix_next_to_host_routes() {
    let db = TestDb::new(Backend::Sqlite).await;
    let config = db.config();
    let token = {
        let parts = herald::app::assemble(&config).await.unwrap();
        let org = OrgId::parse(HOST_ORG).unwrap();
        let minted = parts.gateway.mint_api_key(org, "host", Capabilities::ALL);
        minted.await.unwrap().token
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = Client::new(&format!("http://{}", listener.local_addr().unwrap()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(run(config, listener, async {
        let _ = stopped.await;
    }));

    let host_page = client.send("GET", "/", None, None).await;
    assert_eq!(host_page.status, 200);
    assert_eq!(&host_page.body[..], b"the host's own page");
    assert_eq!(
        client
            .send("GET", "/herald/healthz", None, None)
            .await
            .status,
        200
    );
    assert_eq!(client.get("/api/v1/sessions", &token).await.status, 404);

    let session = client
        .post(
            "/herald/api/v1/sessions",
            &token,
            &json!({"name": "support"}),
        )
        .await;
    assert_eq!(session.status, 201, "{:?}", session.json);
    let id = session.json["id"].as_str().unwrap();
    let announced = client
        .send("POST", &format!("/lunch/{id}/123@c.us"), None, None)
        .await;
    assert_eq!(announced.status, 200, "{:?}", announced.json);
    let message_id = announced.json["messageId"].as_str().unwrap();

    let log = client
        .get("/herald/api/v1/events?event=message.any", &token)
        .await;
    assert_eq!(log.status, 200, "{:?}", log.json);
    let sent = &log.json["data"][0];
    assert_eq!(sent["payload"]["id"], message_id);
    assert_eq!(sent["payload"]["poll"]["question"], "Lunch?");

    stop.send(()).unwrap();
    served.await.unwrap().unwrap();
}
