//! `just bench-isolation`: does a healthy webhook keep its latency next to receivers that hang?
//!
//! For each store — the embedded SQLite store (`herald-api` alone, delivering in-process) and
//! Postgres in two-service mode (`herald-api` and `herald-dispatcher` as separate release
//! processes) — one healthy webhook gets test pings at a fixed rate while 0, then 8, then 50
//! other webhooks, whose receivers accept the connection and never answer, get pings of their
//! own. The hanging deliveries time out (10 s, the default) and are retried, so both lanes
//! carry hanging work. Reported per step: the healthy webhook's API 2xx → receiver latency,
//! p50 / p99 / max, after a short warm-up in which the new hanging endpoints are discovered.
//!
//! `HERALD_BENCH_SECONDS` (default 10) sets each step's measured time; `HERALD_BENCH_HEALTHY_RATE`
//! (default 50/s) and `HERALD_BENCH_HANGING_RATE` (default 30/s, spread over the hanging
//! webhooks) the paces.

use anyhow::{bail, Context, Result};
use herald_bench::delivery::{
    dispatcher, free_port, loadavg, paced, percentile, start_hanging, start_sink, wait_for,
    wait_for_port, Env, Sink,
};
use herald_testkit::{Backend, Client, TestDb};
use serde_json::json;
use std::process::Child;
use std::time::{Duration, Instant};

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn create_webhook(client: &Client, token: &str, url: String) -> Result<String> {
    let created = client
        .post("/api/v1/webhooks", token, &json!({"url": url}))
        .await;
    Ok(created.json["id"]
        .as_str()
        .with_context(|| format!("webhook not created: {}", created.json))?
        .to_owned())
}

/// One store's run: every step of hanging endpoints, in order.
async fn run(backend: Backend, steps: &[usize]) -> Result<()> {
    let seconds = env_num("HERALD_BENCH_SECONDS", 10.0);
    let healthy_rate = env_num("HERALD_BENCH_HEALTHY_RATE", 50.0);
    let hanging_rate = env_num("HERALD_BENCH_HANGING_RATE", 30.0);
    let db = TestDb::new(backend).await;
    let config = db.config();
    let (env, token) = Env::prepare(&config, "manage,read").await?;
    let api_port = free_port()?;
    let api = env
        .command("herald-api")?
        .env("HERALD_LISTEN", format!("127.0.0.1:{api_port}"))
        .spawn()?;
    let dsp: Option<Child> = match backend {
        Backend::Postgres => Some(dispatcher(&env)?),
        Backend::Sqlite => None,
    };
    wait_for_port(api_port).await?;
    let client = Client::new(&format!("http://127.0.0.1:{api_port}"));
    let (sink, sink_addr) = start_sink().await?;
    let healthy = create_webhook(&client, &token, format!("http://{sink_addr}/hook")).await?;
    let healthy_path = vec![format!("/api/v1/webhooks/{healthy}/test")];
    // Warm up connections, caches and the healthy webhook's standing.
    let warm = paced(
        &client,
        &token,
        &healthy_path,
        100.0,
        Duration::from_secs(2),
    )
    .await?;
    wait_until_arrived(&sink, &warm).await?;

    let mode = match backend {
        Backend::Sqlite => "SQLite, herald-api delivering in-process",
        Backend::Postgres => "Postgres, herald-api + herald-dispatcher",
    };
    let mut hanging_paths = Vec::new();
    for &target in steps {
        while hanging_paths.len() < target {
            let (addr, _) = start_hanging().await?;
            let id = create_webhook(&client, &token, format!("http://{addr}/hook")).await?;
            hanging_paths.push(format!("/api/v1/webhooks/{id}/test"));
        }
        // Hanging traffic starts; the new endpoints are found out during the warm-up.
        let background = {
            let (client, token, paths) = (client.clone(), token.clone(), hanging_paths.clone());
            let span = Duration::from_secs_f64(seconds + 3.0);
            tokio::spawn(async move { paced(&client, &token, &paths, hanging_rate, span).await })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        let acked = paced(
            &client,
            &token,
            &healthy_path,
            healthy_rate,
            Duration::from_secs_f64(seconds),
        )
        .await?;
        wait_until_arrived(&sink, &acked).await?;
        let hanging_sent = background.await??.len();
        let mut latencies: Vec<f64> = {
            let arrivals = sink.arrivals.lock().unwrap();
            acked
                .iter()
                .map(|(id, ok)| arrivals[id].saturating_duration_since(*ok).as_secs_f64() * 1e3)
                .collect()
        };
        latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{mode}: {target:>2} hanging receivers ({hanging_sent} pings to them): healthy webhook {} events, 2xx→receiver p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            acked.len(),
            percentile(&latencies, 50.0),
            percentile(&latencies, 99.0),
            latencies.last().copied().unwrap_or(f64::NAN),
        );
    }
    // Hanging attempts would hold a graceful stop for the whole timeout: stop hard.
    for mut child in dsp.into_iter().chain(std::iter::once(api)) {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(db);
    Ok(())
}

async fn wait_until_arrived(sink: &Sink, acked: &[(String, Instant)]) -> Result<()> {
    wait_for(
        "the healthy webhook's deliveries",
        Duration::from_secs(120),
        || {
            let arrivals = sink.arrivals.lock().unwrap();
            acked.iter().all(|(id, _)| arrivals.contains_key(id))
        },
    )
    .await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let steps = [0, 8, 50];
    println!(
        "# bench-isolation (one machine for everything; load average before: {})",
        loadavg()
    );
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if let Err(error) = run(backend, &steps).await {
            bail!("{backend:?}: {error:#}");
        }
    }
    println!("# load average after: {}", loadavg());
    Ok(())
}
