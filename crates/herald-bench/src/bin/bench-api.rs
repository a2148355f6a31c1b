//! `just bench-api`: authenticated `GET /api/v1/webhooks` (API key, 10 webhooks in the org) over
//! keep-alive connections on the embedded SQLite store and on PostgreSQL, next to a do-nothing
//! hyper server measured in the same run. Targets: ≥ 30 % of the do-nothing server's requests/s
//! on SQLite, ≥ 10 % on Postgres.

use herald_bench::{load, noop};
use herald_testkit::{Backend, TestServer};
use std::time::Duration;

const CONNECTIONS: usize = 32;

fn seconds() -> Duration {
    Duration::from_secs(
        std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let duration = seconds();
    println!("bench-api: {CONNECTIONS} keep-alive connections, {duration:?} per run, client and server on this machine");
    let noop_addr = noop::start().await;
    let _warm = load::get_load(
        noop_addr,
        "/",
        &[],
        CONNECTIONS,
        Duration::from_secs(1),
        200,
    )
    .await;
    let ceiling = load::get_load(noop_addr, "/", &[], CONNECTIONS, duration, 200).await;
    println!("do-nothing hyper          {}", ceiling.summary());

    for (backend, target) in [(Backend::Sqlite, 0.30), (Backend::Postgres, 0.10)] {
        let server = TestServer::start_with(backend, |c| c.pool_size = 16).await;
        let token = server.api_key("org_bench", "manage,read").await;
        for i in 0..10 {
            let body = serde_json::json!({"url": format!("https://example.com/hook/{i}"), "events": ["*"], "customHeaders": {"X-Tenant": "bench"}});
            let r = server.client.post("/api/v1/webhooks", &token, &body).await;
            anyhow::ensure!(r.status == 201, "seeding failed: {:?}", r.json);
        }
        let auth = [("authorization", format!("Bearer {token}"))];
        let _warm = load::get_load(
            server.addr(),
            "/api/v1/webhooks",
            &auth,
            CONNECTIONS,
            Duration::from_secs(1),
            200,
        )
        .await;
        let report = load::get_load(
            server.addr(),
            "/api/v1/webhooks",
            &auth,
            CONNECTIONS,
            duration,
            200,
        )
        .await;
        let share = report.rps() / ceiling.rps();
        println!(
            "GET /webhooks {:<10} {}  = {:>5.1} % of do-nothing (target ≥ {:.0} %: {})",
            format!("{backend:?}"),
            report.summary(),
            share * 100.0,
            target * 100.0,
            if share >= target { "met" } else { "NOT met" }
        );
    }
    Ok(())
}
