//! `just bench-events`: votes per second through the API, and the time from the API's 2xx to
//! the WebSocket frame, with 100 connected clients — on a fresh Postgres database (the one
//! `HERALD_TEST_DATABASE_URL` names, default `postgres://postgres@127.0.0.1:5432/test`), the
//! server running in this process on its own runtime.
//!
//! Two runs:
//! 1. **throughput**: 100 sessions with a poll each, 100 sockets each subscribed to one
//!    session's `poll.vote`s; `BENCH_WORKERS` (default 64) concurrent voters for
//!    `BENCH_SECONDS` (default 10); every vote's frame is timed against its 2xx.
//! 2. **steady**: the same 100 sockets, votes at a steady `BENCH_STEADY_RATE` per second
//!    (default 1000) for 5 s — the latency when the system is not saturated.
//! 3. **fan-out**: all 100 sockets subscribed to one session; votes at a steady
//!    `BENCH_FANOUT_RATE` per second (default 200) for 5 s; each vote timed on every socket
//!    (20,000 frames/s).
//!
//! Set `BENCH_BACKEND=sqlite` to run the same against the embedded store.

use herald_testkit::{Backend, Client, TestDb, WsClient, WsNext};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHAT: &str = "120363000000000001@g.us";
const SENDER: &str = "15550001111@c.us";
const SOCKETS: usize = 100;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// When each vote's 2xx arrived, and when each socket saw its frame.
#[derive(Default)]
struct Timings {
    answered: Mutex<HashMap<String, Instant>>,
    framed: Mutex<Vec<(String, Instant)>>,
}

impl Timings {
    /// Latencies (ms) from 2xx to frame for every frame of an answered vote, and how many
    /// frames beat their 2xx (counted as 0).
    fn latencies(&self) -> (Vec<f64>, usize) {
        let answered = self.answered.lock().unwrap();
        let framed = self.framed.lock().unwrap();
        let mut early = 0;
        let mut out = Vec::with_capacity(framed.len());
        for (id, at) in framed.iter() {
            if let Some(ok) = answered.get(id) {
                match at.checked_duration_since(*ok) {
                    Some(d) => out.push(d.as_secs_f64() * 1000.0),
                    None => {
                        early += 1;
                        out.push(0.0);
                    }
                }
            }
        }
        out.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (out, early)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(what: &str, timings: &Timings) {
    let (lat, early) = timings.latencies();
    println!(
        "  {what}: {} frames timed; 2xx→frame p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} frames arrived before their 2xx, counted as 0)",
        lat.len(),
        percentile(&lat, 50.0),
        percentile(&lat, 90.0),
        percentile(&lat, 99.0),
        lat.last().copied().unwrap_or(f64::NAN),
        early,
    );
}

/// Spawns a reader per socket that records every poll.vote frame's arrival.
fn read_frames(
    sockets: Vec<WsClient>,
    timings: Arc<Timings>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    sockets
        .into_iter()
        .map(|mut ws| {
            let timings = timings.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match ws.next(Duration::from_millis(200)).await {
                        WsNext::Event(event) => {
                            let at = Instant::now();
                            let id = event["payload"]["vote"]["id"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned();
                            timings.framed.lock().unwrap().push((id, at));
                        }
                        WsNext::Timeout => {}
                        WsNext::Closed(code) => panic!("socket closed: {code:?}"),
                    }
                }
            })
        })
        .collect()
}

async fn vote(client: &Client, token: &str, session: &str, choice: &str) -> Option<String> {
    let reply = client
        .post(
            &format!("/api/v1/sessions/{session}/messages/P/vote"),
            token,
            &json!({"chat": CHAT, "sender": SENDER, "options": [choice]}),
        )
        .await;
    (reply.status == 200).then(|| reply.json["id"].as_str().unwrap().to_owned())
}

/// Votes at `rate` per second for 5 s, spread over `sessions`, while `sockets` record frames;
/// waits until each answered vote has reached `copies` sockets (or 5 s more).
async fn steady(
    client: &Client,
    token: &str,
    sessions: &[String],
    rate: u64,
    sockets: Vec<WsClient>,
    copies: usize,
) -> Arc<Timings> {
    let timings = Arc::new(Timings::default());
    let stop = Arc::new(AtomicBool::new(false));
    let readers = read_frames(sockets, timings.clone(), stop.clone());
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    let run_until = Instant::now() + Duration::from_secs(5);
    let mut pending = Vec::new();
    let mut sent = 0usize;
    while Instant::now() < run_until {
        tick.tick().await;
        let (client, token, timings) = (client.clone(), token.to_owned(), timings.clone());
        let session = sessions[sent % sessions.len()].clone();
        let choice = if (sent / sessions.len()).is_multiple_of(2) {
            "A"
        } else {
            "B"
        };
        pending.push(tokio::spawn(async move {
            if let Some(id) = vote(&client, &token, &session, choice).await {
                timings.answered.lock().unwrap().insert(id, Instant::now());
            }
        }));
        sent += 1;
    }
    for p in pending {
        p.await.unwrap();
    }
    let want = timings.answered.lock().unwrap().len() * copies;
    let settle = Instant::now() + Duration::from_secs(5);
    while timings.framed.lock().unwrap().len() < want && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    let framed = timings.framed.lock().unwrap().len();
    if framed < want {
        println!("  only {framed} of {want} frames arrived");
    }
    timings
}

fn main() {
    let backend = match std::env::var("BENCH_BACKEND").as_deref() {
        Ok("sqlite") => Backend::Sqlite,
        _ => Backend::Postgres,
    };
    let seconds = env_num("BENCH_SECONDS", 10);
    let workers = env_num("BENCH_WORKERS", 64) as usize;
    let fanout_rate = env_num("BENCH_FANOUT_RATE", 200);
    let steady_rate = env_num("BENCH_STEADY_RATE", 1000);

    // The server gets a runtime of its own, as a separate process would.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("herald-server")
        .enable_all()
        .build()
        .unwrap();
    let (db, app, base_url, token) = server_rt.block_on(async {
        let db = TestDb::new(backend).await;
        let mut config = db.config();
        config.pool_size = 32;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = herald::App::start_on(config.clone(), listener)
            .await
            .unwrap();
        let base_url = format!("http://{}", app.local_addr());
        let parts = herald::app::assemble(&config).await.unwrap();
        let token = parts
            .gateway
            .mint_api_key(
                herald_domain::OrgId::parse("org_bench").unwrap(),
                "bench",
                herald_domain::Capabilities::parse_list("manage,read,send,ingest").unwrap(),
            )
            .await
            .unwrap()
            .token;
        (db, app, base_url, token)
    });

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .unwrap();
    client_rt.block_on(async move {
        let client = Client::new(&base_url);
        println!("bench-events on {backend:?}: {SOCKETS} WebSocket clients, {workers} voters, {seconds} s");

        // 100 sessions, each with a poll to vote on.
        let mut sessions = Vec::new();
        for i in 0..SOCKETS {
            let created = client
                .post("/api/v1/sessions", &token, &json!({"name": format!("s{i}")}))
                .await;
            let session = created.json["id"].as_str().unwrap().to_owned();
            let reply = client
                .post(
                    &format!("/api/v1/sessions/{session}/inbound"),
                    &token,
                    &json!({"event": "message", "payload": {"id": "P", "chat": CHAT, "sender": SENDER,
                        "type": "poll", "poll": {"question": "Lunch?", "options": ["A", "B"], "selectableCount": 1}}}),
                )
                .await;
            assert_eq!(reply.status, 202);
            sessions.push(session);
        }

        // Run 1: throughput, one socket per session.
        let mut sockets = Vec::new();
        for session in &sessions {
            let path = format!("/api/v1/events/ws?events=poll.vote&sessionId={session}");
            sockets.push(WsClient::connect(&base_url, &path, Some(&token)).await.unwrap());
        }
        let timings = Arc::new(Timings::default());
        let stop = Arc::new(AtomicBool::new(false));
        let readers = read_frames(sockets, timings.clone(), stop.clone());
        let done = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let voters: Vec<_> = (0..workers)
            .map(|w| {
                let (client, token, sessions) = (client.clone(), token.clone(), sessions.clone());
                let (timings, done, failed) = (timings.clone(), done.clone(), failed.clone());
                tokio::spawn(async move {
                    let mut n = w;
                    while Instant::now() < deadline {
                        let session = &sessions[n % sessions.len()];
                        let choice = if (n / sessions.len()).is_multiple_of(2) { "A" } else { "B" };
                        match vote(&client, &token, session, choice).await {
                            Some(id) => {
                                timings.answered.lock().unwrap().insert(id, Instant::now());
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            None => {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        n += workers;
                    }
                })
            })
            .collect();
        for v in voters {
            v.await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        let votes = done.load(Ordering::Relaxed);
        // Let the last frames land.
        let want = votes as usize;
        let settle = Instant::now() + Duration::from_secs(5);
        while timings.framed.lock().unwrap().len() < want && Instant::now() < settle {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.await.unwrap();
        }
        let frames = timings.framed.lock().unwrap().len();
        println!("run 1 (throughput): {votes} votes in {elapsed:.1} s = {:.0} votes/s ({} failed); {frames}/{votes} frames received",
            votes as f64 / elapsed, failed.load(Ordering::Relaxed));
        report("one socket per session", &timings);

        // Run 2: a steady rate well below saturation, one socket per session.
        let mut sockets = Vec::new();
        for session in &sessions {
            let path = format!("/api/v1/events/ws?events=poll.vote&sessionId={session}");
            sockets.push(WsClient::connect(&base_url, &path, Some(&token)).await.unwrap());
        }
        let timings = steady(&client, &token, &sessions, steady_rate, sockets, 1).await;
        println!("run 2 (steady): {steady_rate} votes/s for 5 s over {SOCKETS} sessions");
        report("one socket per session", &timings);

        // Run 3: fan-out, all 100 sockets on one session, a steady vote rate.
        let target = vec![sessions[0].clone()];
        let mut sockets = Vec::new();
        for _ in 0..SOCKETS {
            let path = format!("/api/v1/events/ws?events=poll.vote&sessionId={}", target[0]);
            sockets.push(WsClient::connect(&base_url, &path, Some(&token)).await.unwrap());
        }
        let timings = steady(&client, &token, &target, fanout_rate, sockets, SOCKETS).await;
        println!("run 3 (fan-out): {fanout_rate} votes/s for 5 s to one session watched by all {SOCKETS} sockets");
        report("100 sockets on one session", &timings);
    });
    server_rt.block_on(app.shutdown());
    drop(db);
}
