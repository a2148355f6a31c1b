//! The real `herald-dispatcher` binary against the real Postgres: two replicas share the work,
//! one is SIGKILLed mid-batch and nothing is lost (its claimed work comes back when the lease
//! lapses; a delivery repeats only when the killed replica had made an attempt it never got to
//! record); then every Postgres
//! connection is cut, as a database restart would, and the survivor reconnects and carries on
//! without a restart; finally SIGTERM stops it cleanly.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use herald_store::Database;
use herald_testkit::{eventually, postgres_admin_url, Backend, Behaviour, Receiver, TestServer};
use serde_json::json;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long after the kill a request the killed replica sent may still reach the receiver's
/// handler.
const IN_TRANSIT: Duration = Duration::from_secs(2);

/// The per-webhook cap a dispatcher runs with: at most this many of its attempts were in
/// flight when it was killed.
const PER_WEBHOOK: usize = 8;

fn spawn_dispatcher(server: &TestServer, listen: &str) -> Child {
    let Database::Postgres(url) = &server.config.database else {
        panic!("the crash test runs on Postgres");
    };
    Command::new(env!("CARGO_BIN_EXE_herald-dispatcher"))
        .env("DATABASE_URL", url)
        .env(
            "HERALD_SECRETS_KEY",
            server.config.secrets_key.clone().unwrap(),
        )
        .env("HERALD_DELIVERY_ALLOW_PRIVATE", "true")
        .env("HERALD_DELIVERY_TIMEOUT_MS", "2000")
        .env("HERALD_DELIVERY_LEASE_MARGIN_MS", "3000")
        .env("HERALD_DELIVERY_PER_WEBHOOK", PER_WEBHOOK.to_string())
        .env("HERALD_DISPATCHER_LISTEN", listen)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the dispatcher binary starts")
}

async fn ping(server: &TestServer, token: &str, webhook: &str) -> String {
    server.ping_webhook(token, webhook).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_dispatcher_loses_nothing_and_the_survivor_rides_out_a_postgres_restart() {
    // The receiver is local: private destinations are allowed (as the dispatchers' are).
    let server = TestServer::start_with(Backend::Postgres, |c| c.allow_private = Some(true)).await;
    let token = server.api_key("org_crash", "manage").await;
    let receiver = Receiver::start(Behaviour::Delay(Duration::from_millis(250))).await;
    let created = server
        .client
        .post("/api/v1/webhooks", &token, &json!({"url": receiver.url()}))
        .await;
    let webhook = created.json["id"].as_str().unwrap().to_owned();

    let mut events = Vec::new();
    for _ in 0..60 {
        events.push(ping(&server, &token, &webhook).await);
    }
    // The first replica claims the whole backlog (a batch is 64) and starts working through it
    // at its per-webhook cap; the second starts beside it; then the first is killed mid-batch,
    // holding leases on work it never attempted.
    let mut doomed = spawn_dispatcher(&server, "127.0.0.1:0");
    eventually("deliveries to begin", Duration::from_secs(20), || async {
        (receiver.received().len() >= 5).then_some(())
    })
    .await;
    let ops_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut survivor = spawn_dispatcher(&server, &format!("127.0.0.1:{ops_port}"));
    eventually("more deliveries", Duration::from_secs(20), || async {
        (receiver.received().len() >= 12).then_some(())
    })
    .await;
    doomed.kill().expect("SIGKILL");
    let _ = doomed.wait();
    // A request the killed replica wrote just before dying can still be read by the receiver a
    // moment later (the receiver stamps a request when its handler runs, and this machine may
    // be busy); anything first received later than this was not the killed replica's.
    let killed_at = std::time::Instant::now() + IN_TRANSIT;

    // Every delivery ends succeeded; only then are the recorded attempts final.
    let recorded = eventually(
        "every delivery to succeed",
        Duration::from_secs(40),
        || async {
            let page = server
                .client
                .get(
                    &format!("/api/v1/webhooks/{webhook}/deliveries?limit=200"),
                    &token,
                )
                .await;
            let rows = page.json["data"].as_array()?.clone();
            let done =
                rows.len() == events.len() && rows.iter().all(|d| d["status"] == "succeeded");
            done.then(|| {
                rows.iter()
                    .map(|d| {
                        let event = d["eventId"].as_str().unwrap().to_owned();
                        (event, d["attempts"].as_u64().unwrap() as usize)
                    })
                    .collect::<HashMap<_, _>>()
            })
        },
    )
    .await;
    // A receipt the store has no attempt for can only be one the killed replica made and
    // never got to record: at most one per delivery, and from before the kill. Anything
    // else is a delivery attempted twice by live replicas.
    let mut unrecorded = 0;
    for event in &events {
        let receipts = receiver.arrivals_of(event);
        let attempts = recorded[event];
        // (Fewer receipts than attempts is fine: an attempt can fail before its request
        // reaches the receiver.)
        assert!(
            receipts.len() <= attempts + 1,
            "{event}: received {} times, {attempts} attempts recorded",
            receipts.len()
        );
        if receipts.len() > attempts {
            unrecorded += 1;
            assert!(
                receipts.iter().min().unwrap() < &killed_at,
                "{event} was repeated without the kill to explain it"
            );
        }
    }
    // The killed replica can only have lost the attempts it had in flight (both lanes at the
    // cap) and the outcomes it had not written yet.
    assert!(
        unrecorded <= events.len() / 2,
        "{unrecorded} attempts were lost with the killed replica"
    );

    // Cut every connection to the database, as a Postgres restart does.
    let Database::Postgres(url) = &server.config.database else {
        unreachable!()
    };
    let name = url.rsplit('/').next().unwrap().to_owned();
    let mut admin = AsyncPgConnection::establish(&postgres_admin_url())
        .await
        .unwrap();
    diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    ))
    .execute(&mut admin)
    .await
    .unwrap();

    receiver.set_behaviour(Behaviour::Ok);
    let mut later = Vec::new();
    for _ in 0..10 {
        // The API's own pool may hand out a connection that was just cut: try again.
        let id = eventually(
            "the API to accept a ping",
            Duration::from_secs(10),
            || async {
                let reply = server
                    .client
                    .post(
                        &format!("/api/v1/webhooks/{webhook}/test"),
                        &token,
                        &json!({}),
                    )
                    .await;
                (reply.status == 202).then(|| reply.json["eventId"].as_str().unwrap().to_owned())
            },
        )
        .await;
        later.push(id);
    }
    eventually(
        "the survivor to deliver after the restart",
        Duration::from_secs(30),
        || async {
            let seen = receiver.counts_by_request_id();
            later.iter().all(|e| seen.contains_key(e)).then_some(())
        },
    )
    .await;

    // Both binaries expose the delivery metrics; the dispatcher serves its health endpoints.
    let ops = herald_testkit::Client::new(&format!("http://127.0.0.1:{ops_port}"));
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            ops.send("GET", path, None, None).await.status,
            200,
            "{path}"
        );
    }
    let text = eventually("dispatcher metrics", Duration::from_secs(10), || async {
        let body = ops.send("GET", "/metrics", None, None).await.body;
        let text = String::from_utf8_lossy(&body).into_owned();
        text.contains("herald_deliveries_pending").then_some(text)
    })
    .await;
    assert!(
        text.contains("herald_deliveries_total{outcome=\"succeeded\"}"),
        "{text}"
    );
    assert!(text.contains("herald_delivery_oldest_due_age_seconds"));
    eventually("API backlog metrics", Duration::from_secs(10), || async {
        let body = server.client.send("GET", "/metrics", None, None).await.body;
        String::from_utf8_lossy(&body)
            .contains("herald_deliveries_pending")
            .then_some(())
    })
    .await;

    // SIGTERM: a clean stop.
    let status = Command::new("kill")
        .args(["-TERM", &survivor.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let exited = loop {
        if let Some(status) = survivor.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the survivor did not exit on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exited.success(), "exit status {exited:?}");
}
