//! `just bench-dispatch`: webhook delivery measured end to end on this machine.
//!
//! A fresh Postgres database, the real `herald-api` and `herald-dispatcher` release binaries as
//! separate processes, and a local keep-alive HTTP/1 receiver in this process that notes when
//! each event arrives. Events enter through the real API: `POST /webhooks/{id}/test` (one event,
//! one delivery) and `POST /sessions` (two `session.status` events, fanned out to every webhook).
//! Reported:
//! 1. events/s accepted by the API and delivered, with 1 endpoint;
//! 2. deliveries/s with 10 endpoints (a backlog built while no dispatcher runs, then drained);
//! 3. API 2xx → receiver latency p50/p95/p99 at a fixed 500 events/s;
//! 4. the dispatcher's RSS while 100,000 deliveries are pending.
//!
//! Sizes can be scaled down with `HERALD_BENCH_SCALE` (e.g. `0.1`) for a quick look;
//! `HERALD_BENCH_SIGNING` chooses how endpoints sign: `waha` (default), `standard`, or either
//! with `+rotation` (a secret rotation in its grace period: two signatures per delivery).

use anyhow::{bail, Context, Result};
use herald_bench::delivery::{
    dispatcher, free_port, paced, percentile, rss_kib, start_sink, terminate, wait_for,
    wait_for_port, Env,
};
use herald_testkit::{Backend, Client, TestDb};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// POSTs `path` `n` times from `concurrency` keep-alive clients; returns the event ids.
async fn push(
    client: &Client,
    token: &str,
    paths: &[String],
    body: serde_json::Value,
    n: usize,
    concurrency: usize,
) -> Result<Vec<String>> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, token, paths, body, next) = (
            client.clone(),
            token.to_owned(),
            paths.to_vec(),
            body.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return Ok::<_, anyhow::Error>(ids);
                }
                let reply = client.post(&paths[i % paths.len()], &token, &body).await;
                if !(200..300).contains(&reply.status) {
                    bail!("API answered {}: {}", reply.status, reply.json);
                }
                if let Some(id) = reply.json["eventId"].as_str() {
                    ids.push(id.to_owned());
                }
            }
        }));
    }
    let mut ids = Vec::with_capacity(n);
    for task in tasks {
        ids.extend(task.await??);
    }
    Ok(ids)
}

/// A webhook to `url` signed with the scheme `signing` names (`waha` or `standard`, with or
/// without `+rotation`), with a secret Herald generates.
fn webhook_body(url: &str, signing: &str) -> serde_json::Value {
    let scheme = signing.trim_end_matches("+rotation");
    json!({"url": url, "signing": scheme})
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let scale: f64 = std::env::var("HERALD_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let scaled = |n: usize| ((n as f64 * scale) as usize).max(10);
    // Clients pushing events at once (keep-alive connections to the API).
    let clients: usize = std::env::var("HERALD_BENCH_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);

    let db = TestDb::new(Backend::Postgres).await;
    let config = db.config();
    let (env, token) = Env::prepare(&config, "manage,read").await?;
    // The bench reads the backlog through the store itself (Postgres: shared with the processes).
    let parts = herald::app::assemble(&config).await?;

    let api_port = free_port()?;
    let mut api = env
        .command("herald-api")?
        .env("HERALD_LISTEN", format!("127.0.0.1:{api_port}"))
        .spawn()?;
    let client = Client::new(&format!("http://127.0.0.1:{api_port}"));
    wait_for_port(api_port).await?;
    let (sink, sink_addr) = start_sink().await?;
    let url = format!("http://{sink_addr}/hook");

    let loadavg = || {
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    // How the endpoints sign: `waha` (default), `standard`, or either with `+rotation` (a
    // rotation in its grace period, so two signatures per delivery).
    let signing = std::env::var("HERALD_BENCH_SIGNING").unwrap_or_else(|_| "waha".into());
    println!("# signing: {signing}");
    println!("# bench-dispatch (Postgres; herald-api and herald-dispatcher as separate release processes; one machine for all; load average before: {})", loadavg());

    // 1. One endpoint: events/s accepted and delivered.
    let created = client
        .post("/api/v1/webhooks", &token, &webhook_body(&url, &signing))
        .await;
    let one = created.json["id"].as_str().context("webhook")?.to_owned();
    if signing.ends_with("+rotation") {
        // A rotation with an hour's grace: every delivery carries two signatures.
        let rotated = client
            .post(
                &format!("/api/v1/webhooks/{one}/secret/rotate"),
                &token,
                &json!({"graceSeconds": 3600}),
            )
            .await;
        if rotated.status != 200 {
            bail!("rotation answered {}: {}", rotated.status, rotated.json);
        }
    }
    let test_path = vec![format!("/api/v1/webhooks/{one}/test")];
    if std::env::var("HERALD_BENCH_API_ONLY").is_ok() {
        // Diagnostic: the API's accept rate alone, with no dispatcher competing for the CPU.
        let n = scaled(20_000);
        let started = Instant::now();
        push(&client, &token, &test_path, json!({}), n, clients).await?;
        println!(
            "API alone: {n} test pings accepted at {:.0}/s",
            n as f64 / started.elapsed().as_secs_f64()
        );
        terminate(&mut api);
        return Ok(());
    }
    let mut dsp = dispatcher(&env)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Warm up connections and caches.
    push(&client, &token, &test_path, json!({}), 500, 32).await?;
    wait_for("warm-up", Duration::from_secs(60), || {
        sink.count.load(Ordering::Relaxed) >= 500
    })
    .await?;
    let n = scaled(20_000);
    let base = sink.count.load(Ordering::Relaxed);
    let started = Instant::now();
    push(&client, &token, &test_path, json!({}), n, clients).await?;
    let accepted = started.elapsed();
    wait_for("1-endpoint deliveries", Duration::from_secs(300), || {
        sink.count.load(Ordering::Relaxed) >= base + n as u64
    })
    .await?;
    let delivered = started.elapsed();
    println!(
        "1 endpoint: {n} events; accepted {:.0} events/s; delivered {:.0} events/s (all {n} delivered {:.2} s after the first POST)",
        n as f64 / accepted.as_secs_f64(),
        n as f64 / delivered.as_secs_f64(),
        delivered.as_secs_f64()
    );

    // 3. Latency at a fixed 500 events/s.
    let seconds = (10.0 * scale).max(2.0);
    let acked = paced(
        &client,
        &token,
        &test_path[..1],
        500.0,
        Duration::from_secs_f64(seconds),
    )
    .await?;
    wait_for("paced deliveries", Duration::from_secs(60), || {
        let arrivals = sink.arrivals.lock().unwrap();
        acked.iter().all(|(id, _)| arrivals.contains_key(id))
    })
    .await?;
    let mut latencies: Vec<f64> = {
        let arrivals = sink.arrivals.lock().unwrap();
        acked
            .iter()
            .map(|(id, ok)| {
                // The delivery can beat the API's response to the client (NOTIFY fires at
                // commit): count that as zero.
                arrivals[id].saturating_duration_since(*ok).as_secs_f64() * 1000.0
            })
            .collect()
    };
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let early = latencies.iter().filter(|l| **l == 0.0).count();
    println!(
        "latency at 500 events/s ({} events over {seconds:.0} s): 2xx→receiver p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({early} arrived before the client had its 2xx)",
        acked.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 95.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN),
    );

    // 2. Ten endpoints: a backlog built with no dispatcher running, then drained.
    terminate(&mut dsp);
    client
        .delete(&format!("/api/v1/webhooks/{one}"), &token)
        .await;
    for _ in 0..10 {
        client
            .post("/api/v1/webhooks", &token, &webhook_body(&url, &signing))
            .await;
    }
    let sessions = scaled(2_000);
    let started = Instant::now();
    push(
        &client,
        &token,
        &["/api/v1/sessions".to_owned()],
        json!({"name": "bench"}),
        sessions,
        32,
    )
    .await?;
    let took = started.elapsed();
    let backlog = parts
        .store
        .delivery_backlog(parts.gateway.clock.now_ms())
        .await?;
    println!(
        "10 endpoints: {sessions} sessions created at {:.0}/s through the API → {} pending deliveries",
        sessions as f64 / took.as_secs_f64(),
        backlog.pending
    );
    let base = sink.count.load(Ordering::Relaxed);
    let target = base + backlog.pending;
    let mut dsp = dispatcher(&env)?;
    let started = Instant::now();
    wait_for("10-endpoint drain", Duration::from_secs(600), || {
        sink.count.load(Ordering::Relaxed) >= target
    })
    .await?;
    let drained = started.elapsed();
    println!(
        "10 endpoints: {} deliveries drained in {:.2} s = {:.0} deliveries/s (including dispatcher start-up)",
        backlog.pending,
        drained.as_secs_f64(),
        backlog.pending as f64 / drained.as_secs_f64()
    );

    // 4. RSS with 100,000 deliveries pending (a slow receiver keeps them pending).
    terminate(&mut dsp);
    sink.delay_ms.store(2_000, Ordering::Relaxed);
    let sessions = scaled(5_000);
    push(
        &client,
        &token,
        &["/api/v1/sessions".to_owned()],
        json!({"name": "bench"}),
        sessions,
        32,
    )
    .await?;
    let backlog = parts
        .store
        .delivery_backlog(parts.gateway.clock.now_ms())
        .await?;
    let dsp = dispatcher(&env)?;
    let pid = dsp.id();
    let mut peak = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(rss_kib(pid, "VmRSS:"));
    }
    let hwm = rss_kib(pid, "VmHWM:");
    let still = parts
        .store
        .delivery_backlog(parts.gateway.clock.now_ms())
        .await?;
    println!(
        "RSS: dispatcher with {} deliveries pending (still {} after 10 s against a 2 s receiver): peak VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        backlog.pending,
        still.pending,
        peak as f64 / 1024.0,
        hwm as f64 / 1024.0
    );

    println!("# load average after: {}", loadavg());
    let mut dsp = dsp;
    dsp.kill().ok();
    let _ = dsp.wait();
    terminate(&mut api);
    drop(parts);
    drop(db);
    Ok(())
}
