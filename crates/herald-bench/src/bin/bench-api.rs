//! `just bench-api`: authenticated `GET /api/v1/webhooks` (API key, 10 webhooks in the org) over
//! keep-alive connections on the embedded SQLite store and on PostgreSQL, next to a do-nothing
//! hyper server measured in the same run. Targets: ≥ 30 % of the do-nothing server's requests/s
//! on SQLite, ≥ 10 % on Postgres. `BENCH_SECS` (default 5) and `BENCH_CONNECTIONS` (default 32)
//! tune the runs; `BENCH_BACKEND=sqlite|postgres` runs one store only.

use herald_bench::load::{self, LoadConfig, LoadReport, RequestFactory};
use herald_bench::noop;
use herald_testkit::{Backend, TestServer};
use http_body_util::Full;
use hyper::body::Bytes;
use std::sync::Arc;
use std::time::Duration;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn get(path: &'static str, token: Option<String>) -> RequestFactory {
    Arc::new(move |_| {
        let mut request = hyper::Request::get(path);
        if let Some(token) = &token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.body(Full::new(Bytes::new())).expect("request")
    })
}

fn line(label: &str, report: &LoadReport) -> String {
    format!(
        "{label:<28} {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  ({} unexpected)",
        report.per_second(),
        report.p50.as_secs_f64() * 1000.0,
        report.p99.as_secs_f64() * 1000.0,
        report.unexpected
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = LoadConfig {
        connections: env_number("BENCH_CONNECTIONS", 32) as usize,
        duration: Duration::from_secs(env_number("BENCH_SECS", 5)),
        ..LoadConfig::default()
    };
    println!(
        "bench-api: {} keep-alive connections, {:?} per run after {:?} warm-up; client and server share this machine",
        config.connections, config.duration, config.warmup
    );
    let ceiling = load::run(noop::start().await, get("/", None), &config).await?;
    println!("{}", line("do-nothing hyper", &ceiling));

    let only = std::env::var("BENCH_BACKEND")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for (backend, target) in [(Backend::Sqlite, 0.30), (Backend::Postgres, 0.10)] {
        if !only.is_empty() && !format!("{backend:?}").eq_ignore_ascii_case(&only) {
            continue;
        }
        let server = TestServer::start_with(backend, |c| c.pool_size = 16).await;
        let token = server.api_key("org_bench", "manage,read").await;
        for i in 0..10 {
            let body = serde_json::json!({"url": format!("https://example.com/hook/{i}"), "events": ["*"], "customHeaders": {"X-Tenant": "bench"}});
            let r = server.client.post("/api/v1/webhooks", &token, &body).await;
            anyhow::ensure!(r.status == 201, "seeding failed: {:?}", r.json);
        }
        let report =
            load::run(server.addr(), get("/api/v1/webhooks", Some(token)), &config).await?;
        let share = report.per_second() / ceiling.per_second();
        println!(
            "{}  = {:>5.1} % of do-nothing (target ≥ {:.0} %: {})",
            line(&format!("GET /webhooks on {backend:?}"), &report),
            share * 100.0,
            target * 100.0,
            if share >= target { "met" } else { "NOT met" }
        );
    }
    Ok(())
}
