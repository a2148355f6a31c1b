//! `just bench-engine`: WAHA events in through `POST /api/v1/engines/waha/events` and out to a
//! webhook, on SQLite and on Postgres (the database `HERALD_TEST_DATABASE_URL` names, default
//! `postgres://postgres@127.0.0.1:5432/test`), with the server in this process running the WAHA
//! engine against the WAHA double and delivering to a keep-alive receiver on loopback.
//!
//! Every request is a WAHA `message` webhook signed with the webhook key by the double's
//! emitter, prepared up front; 10 % repeat the request before them byte for byte (WAHA's
//! duplicates), which Herald must answer without storing anything. Each accepted message is
//! stored with its `message` and `message.any` events before the `200`, and its `message`
//! event is delivered to the organization's one webhook (subscribed to `message`).
//!
//! Per store and run, on a fresh database:
//! 1. **throughput**: after `BENCH_WARMUP_EVENTS` (default 1000) sent the same way and not
//!    measured, `BENCH_EVENTS` (default 5000) requests from `BENCH_CONNECTIONS`
//!    (default 32) keep-alive senders, each sending its next when the last is answered:
//!    events accepted per second, and events in *and delivered* per second (from the first send
//!    to the moment the receiver has every distinct message);
//! 2. **steady**: 500 requests per second for 5 s: send→`200` latency, and the latency from
//!    WAHA's `200` to the receiver (a delivery that beats the `200` counts as 0).
//!
//! `BENCH_RUNS` (default 3) runs per store; each figure is printed per run and as the median.
//! `BENCH_BASELINE=1` first sends the same number of messages through Herald's own inbound API,
//! for comparison. `BENCH_BACKEND=sqlite` or `postgres` runs one store only. The server runs on
//! a runtime of its own (2 worker threads, a pool of 32 connections, the dispatcher
//! in-process as with `herald-api --with-dispatcher`); the double, the senders
//! and the receiver on another.

use herald_testkit::waha::{BatchPlan, BatchReport, Pacing, WahaDouble};
use herald_testkit::{Backend, Behaviour, Receiver, TestServer};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One run's figures, for the medians.
#[derive(Clone, Copy)]
struct Figures {
    accepted_per_sec: f64,
    delivered_per_sec: f64,
    steady_ack_p99_ms: f64,
    steady_delivery_p50_ms: f64,
    steady_delivery_p99_ms: f64,
}

async fn run(backend: Backend, server_runtime: &tokio::runtime::Handle) -> Figures {
    let waha = WahaDouble::start().await;
    let url = waha.url();
    let mut server = server_runtime
        .spawn(async move {
            TestServer::start_waha_with(backend, &url, |config| {
                config.pool_size = 32;
                // One process, as `herald-api --with-dispatcher` (SQLite always delivers).
                config.with_dispatcher = true;
            })
            .await
        })
        .await
        .expect("the server starts");
    let token = server.api_key("org_bench", "read,send,manage").await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let hook = server
        .client
        .post(
            "/api/v1/webhooks",
            &token,
            &json!({"url": receiver.url(), "events": ["message"]}),
        )
        .await;
    assert_eq!(hook.status, 201, "{:?}", hook.json);
    let created = server
        .client
        .post("/api/v1/sessions", &token, &json!({"name": "bench"}))
        .await;
    let session = created.json["id"].as_str().expect("a session").to_owned();
    let target = waha
        .webhook_target(&session, "message")
        .expect("Herald configured the WAHA session's webhook");
    let plan = |count: usize, pacing: Pacing| BatchPlan {
        target: target.clone(),
        session: session.clone(),
        from: "22222222222@c.us".to_owned(),
        count,
        duplicate_percent: 10,
        pacing,
    };

    let count = env_num("BENCH_EVENTS", 5000) as usize;
    let connections = env_num("BENCH_CONNECTIONS", 32) as usize;
    if env_num("BENCH_BASELINE", 0) == 1 {
        baseline(&server, &session, count, connections).await;
    }
    // Warm-up, not measured: the pool's connections open, statements get prepared, caches
    // fill — costs a long-running gateway has long paid.
    let warmup = env_num("BENCH_WARMUP_EVENTS", 1000) as usize;
    if warmup > 0 {
        let before = receiver.count();
        let report = waha
            .emitter()
            .run_batch(&plan(warmup, Pacing::ClosedLoop { connections }))
            .await;
        wait_for_deliveries(&receiver, &report, before).await;
    }
    let before = receiver.count();
    let report = waha
        .emitter()
        .run_batch(&plan(count, Pacing::ClosedLoop { connections }))
        .await;
    let delivered_at = wait_for_deliveries(&receiver, &report, before).await;
    let first_send = report.items.iter().map(|i| i.sent_at).min();
    let last_arrival = delivered_at.values().max().copied();
    let delivered_per_sec = match (first_send, last_arrival) {
        (Some(first), Some(last)) => {
            delivered_at.len() as f64 / last.duration_since(first).as_secs_f64().max(1e-9)
        }
        _ => 0.0,
    };
    println!(
        "{backend:?} throughput: {} of {} requests answered 2xx ({} duplicates) in {:.2} s = {:.0} events/s; send→200 p50 {:.2} ms, p99 {:.2} ms; {} distinct events in and delivered = {:.0} events/s",
        report.acknowledged(),
        report.items.len(),
        report.duplicates(),
        report.elapsed.as_secs_f64(),
        report.throughput(),
        ms(report.latency_percentile(50.0)),
        ms(report.latency_percentile(99.0)),
        delivered_at.len(),
        delivered_per_sec,
    );

    let before = receiver.count();
    let steady = waha
        .emitter()
        .run_batch(&plan(
            2500,
            Pacing::Rate {
                per_second: 500,
                max_in_flight: 256,
            },
        ))
        .await;
    let delivered_at = wait_for_deliveries(&receiver, &steady, before).await;
    let mut to_receiver: Vec<Duration> = steady
        .items
        .iter()
        .filter(|i| !i.duplicate && i.status.is_some_and(|s| (200..300).contains(&s)))
        .filter_map(|i| {
            let arrived = delivered_at.get(&i.message_id)?;
            Some(arrived.saturating_duration_since(i.acknowledged_at))
        })
        .collect();
    to_receiver.sort();
    let figures = Figures {
        accepted_per_sec: report.throughput(),
        delivered_per_sec,
        steady_ack_p99_ms: ms(steady.latency_percentile(99.0)),
        steady_delivery_p50_ms: ms(percentile(&to_receiver, 50.0)),
        steady_delivery_p99_ms: ms(percentile(&to_receiver, 99.0)),
    };
    println!(
        "{backend:?} steady 500/s: {} of {} answered 2xx; send→200 p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; 200→receiver ({} deliveries) p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        steady.acknowledged(),
        steady.items.len(),
        ms(steady.latency_percentile(50.0)),
        figures.steady_ack_p99_ms,
        ms(steady.latency_percentile(100.0)),
        to_receiver.len(),
        figures.steady_delivery_p50_ms,
        figures.steady_delivery_p99_ms,
        ms(percentile(&to_receiver, 100.0)),
    );
    // On the server's runtime, so its dispatcher and listeners stop before the next run starts
    // (a server left running keeps polling and slows every later run).
    server_runtime
        .spawn(async move { server.stop().await })
        .await
        .expect("the server stops");
    figures
}

/// Waits (up to a minute) until the receiver, past its first `before` requests, has a
/// delivery of every distinct message the batch carried, and returns when each first arrived,
/// by WAHA message id (the delivered envelope's `payload.id`). The bodies are parsed only once
/// enough have arrived, not on every poll: the waiting shares the machine with the deliveries
/// it waits for.
async fn wait_for_deliveries(
    receiver: &Receiver,
    report: &BatchReport,
    before: usize,
) -> HashMap<String, Instant> {
    let wanted: std::collections::HashSet<&str> = report.unique_messages().into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let late = Instant::now() > deadline;
        if late || receiver.count() - before >= wanted.len() {
            let mut first: HashMap<String, Instant> = HashMap::new();
            for delivery in receiver.received().into_iter().skip(before) {
                let Ok(envelope) = serde_json::from_slice::<serde_json::Value>(&delivery.body)
                else {
                    continue;
                };
                let Some(id) = envelope["payload"]["id"].as_str() else {
                    continue;
                };
                if wanted.contains(id) {
                    let at = first.entry(id.to_owned()).or_insert(delivery.at);
                    *at = (*at).min(delivery.at);
                }
            }
            if first.len() == wanted.len() {
                return first;
            }
            if late {
                println!(
                    "  {} of {} events were not delivered within a minute",
                    wanted.len() - first.len(),
                    wanted.len()
                );
                return first;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    herald_testkit::percentile(sorted, p).unwrap_or(Duration::ZERO)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The same load through Herald's own inbound API (`POST /sessions/{id}/inbound`, an `ingest`
/// key), for comparison: what the WAHA route adds on top of the use case and the store.
async fn baseline(server: &TestServer, session: &str, count: usize, connections: usize) {
    let token = server.api_key("org_bench", "ingest").await;
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, token, next) = (server.client.clone(), token.clone(), next.clone());
            let path = format!("/api/v1/sessions/{session}/inbound");
            tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                    let id = ulid::Ulid::new().to_string();
                    let reply = client
                        .post(
                            &path,
                            &token,
                            &json!({"event": "message", "id": id, "payload": {"id": id,
                                "chat": "2@c.us", "sender": "2@c.us", "type": "text", "body": "bench"}}),
                        )
                        .await;
                    assert_eq!(reply.status, 202);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a sender");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "  baseline, the inbound API: {count} messages in {secs:.2} s = {:.0} events/s",
        count as f64 / secs
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let backends = match std::env::var("BENCH_BACKEND").as_deref() {
        Ok("sqlite") => vec![Backend::Sqlite],
        Ok("postgres") => vec![Backend::Postgres],
        _ => vec![Backend::Sqlite, Backend::Postgres],
    };
    let runtime = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()
            .expect("a runtime")
    };
    let server_runtime = runtime("herald");
    let load_runtime = runtime("load");
    let runs = env_num("BENCH_RUNS", 3).max(1);
    for backend in backends {
        let all: Vec<Figures> = (1..=runs)
            .map(|n| {
                println!("{backend:?} run {n} of {runs}");
                load_runtime.block_on(run(backend, server_runtime.handle()))
            })
            .collect();
        let pick = |f: fn(&Figures) -> f64| median(all.iter().map(f).collect());
        println!(
            "{backend:?} median of {runs}: {:.0} events/s accepted, {:.0} events/s in and delivered; at 500/s send→200 p99 {:.2} ms, 200→receiver p50 {:.2} ms, p99 {:.2} ms",
            pick(|f| f.accepted_per_sec),
            pick(|f| f.delivered_per_sec),
            pick(|f| f.steady_ack_p99_ms),
            pick(|f| f.steady_delivery_p50_ms),
            pick(|f| f.steady_delivery_p99_ms),
        );
    }
}
