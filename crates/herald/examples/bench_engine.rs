//! `just bench-engine`: WAHA events accepted per second through
//! `POST /api/v1/engines/waha/events`, on SQLite and on Postgres (the database
//! `HERALD_TEST_DATABASE_URL` names, default `postgres://postgres@127.0.0.1:5432/test`), with the
//! server in this process running the WAHA engine against the WAHA double.
//!
//! Every request is a WAHA `message` webhook signed with the webhook key by the double's
//! emitter, prepared up front; 10 % repeat the request before them byte for byte (WAHA's
//! duplicates), which Herald must answer without storing anything. Each accepted message is
//! stored with its `message` and `message.any` events (and one delivery each to a webhook of
//! the organization) before the `200`.
//!
//! Two runs per store:
//! 1. **throughput**: `BENCH_EVENTS` (default 5000) requests from `BENCH_CONNECTIONS`
//!    (default 32) keep-alive senders, each sending its next when the last is answered;
//! 2. **steady**: 500 requests per second for 5 s; the latency from sending to the `200`.
//!
//! `BENCH_BASELINE=1` first sends the same number of messages through Herald's own inbound API,
//! for comparison. `BENCH_BACKEND=sqlite` or `postgres` runs one store only; `BENCH_WEBHOOK=0` leaves the
//! webhook out (events stored, nothing to deliver). The server runs on a runtime of
//! its own (2 worker threads, a pool of 32 connections); the double and the senders on another.

use herald_testkit::waha::{BatchPlan, Pacing, WahaDouble};
use herald_testkit::{Backend, Behaviour, Receiver, TestServer};
use serde_json::json;
use std::time::Duration;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(backend: Backend, server_runtime: &tokio::runtime::Handle) {
    let waha = WahaDouble::start().await;
    let url = waha.url();
    let server = server_runtime
        .spawn(async move {
            TestServer::start_waha_with(backend, &url, |config| config.pool_size = 32).await
        })
        .await
        .expect("the server starts");
    let token = server.api_key("org_bench", "read,send,manage").await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    if env_num("BENCH_WEBHOOK", 1) == 1 {
        let hook = server
            .client
            .post(
                "/api/v1/webhooks",
                &token,
                &json!({"url": receiver.url(), "events": ["message"]}),
            )
            .await;
        assert_eq!(hook.status, 201, "{:?}", hook.json);
    }
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
    let report = waha
        .emitter()
        .run_batch(&plan(count, Pacing::ClosedLoop { connections }))
        .await;
    println!(
        "{backend:?} throughput: {} of {} requests answered 2xx ({} duplicates) in {:.2} s = {:.0} events/s; p50 {:.2} ms, p99 {:.2} ms",
        report.acknowledged(),
        report.items.len(),
        report.duplicates(),
        report.elapsed.as_secs_f64(),
        report.throughput(),
        ms(report.latency_percentile(50.0)),
        ms(report.latency_percentile(99.0)),
    );

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
    println!(
        "{backend:?} steady 500/s: {} of {} answered 2xx; send→200 p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        steady.acknowledged(),
        steady.items.len(),
        ms(steady.latency_percentile(50.0)),
        ms(steady.latency_percentile(90.0)),
        ms(steady.latency_percentile(99.0)),
        ms(steady.latency_percentile(100.0)),
    );
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
    for backend in backends {
        load_runtime.block_on(run(backend, server_runtime.handle()));
    }
}
