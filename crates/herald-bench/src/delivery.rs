//! Pieces shared by the delivery benchmarks (`bench-dispatch`, `bench-isolation`,
//! `bench-peer`): a local receiver that notes when each event arrives, receivers that never
//! answer, paced load, and the plumbing that starts the release binaries against a store.

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The local receiver: counts requests and notes each event's first arrival.
#[derive(Default)]
pub struct Sink {
    /// Requests received.
    pub count: AtomicU64,
    /// When each event (`X-Webhook-Request-Id`) first arrived.
    pub arrivals: Mutex<HashMap<String, Instant>>,
    /// How long to wait before answering, in milliseconds.
    pub delay_ms: AtomicU64,
}

/// Starts a keep-alive HTTP/1 receiver answering 200 on `127.0.0.1:0`.
pub async fn start_sink() -> Result<(Arc<Sink>, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let sink = Arc::new(Sink::default());
    let shared = sink.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let sink = shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let sink = sink.clone();
                    async move {
                        let at = Instant::now();
                        let id = request
                            .headers()
                            .get("x-webhook-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let _ = request.into_body().collect().await;
                        sink.arrivals.lock().unwrap().entry(id).or_insert(at);
                        sink.count.fetch_add(1, Ordering::Relaxed);
                        let delay = sink.delay_ms.load(Ordering::Relaxed);
                        if delay > 0 {
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                        }
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((sink, addr))
}

/// A port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The release binary `name`, beside the running bench binary.
pub fn binary(name: &str) -> Result<PathBuf> {
    let dir = std::env::current_exe()?
        .parent()
        .context("the bench binary has a directory")?
        .to_owned();
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p {name}`",
            path.display()
        );
    }
    Ok(path)
}

/// How the Herald processes under test reach their store.
pub struct Env {
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `HERALD_SECRETS_KEY`.
    pub secrets_key: String,
}

impl Env {
    /// The binary `name` with the store's environment, private destinations allowed, logs at
    /// `warn` on stderr.
    pub fn command(&self, name: &str) -> Result<Command> {
        let mut command = Command::new(binary(name)?);
        command
            .env("DATABASE_URL", &self.database_url)
            .env("HERALD_SECRETS_KEY", &self.secrets_key)
            .env("HERALD_DELIVERY_ALLOW_PRIVATE", "true")
            .env(
                "HERALD_DB_POOL_SIZE",
                std::env::var("HERALD_DB_POOL_SIZE").unwrap_or_else(|_| "32".into()),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        Ok(command)
    }
}

impl Env {
    /// Migrates `config`'s store and mints an API key of `capabilities` (for example
    /// `"manage,read"`) for the organization `org_bench` in it, before any Herald process
    /// opens the store (the embedded file is one process's); returns the environment of the
    /// processes under test and the key.
    pub async fn prepare(
        config: &herald::config::Config,
        capabilities: &str,
    ) -> Result<(Self, String)> {
        herald_store::migrate(&config.database).await?;
        let parts = herald::app::assemble(config).await?;
        let token = parts
            .gateway
            .mint_api_key(
                herald_domain::OrgId::parse("org_bench").context("organization id")?,
                "bench",
                herald_domain::Capabilities::parse_list(capabilities)
                    .map_err(|e| anyhow::anyhow!("capabilities: {e:?}"))?,
            )
            .await?
            .token;
        let database_url = match &config.database {
            herald_store::Database::Postgres(url) => url.clone(),
            herald_store::Database::Sqlite(path) => format!("sqlite://{}", path.display()),
        };
        let env = Self {
            database_url,
            secrets_key: config.secrets_key.clone().unwrap_or_default(),
        };
        Ok((env, token))
    }
}

/// Starts `herald-dispatcher` with its operations port on a free port.
pub fn dispatcher(env: &Env) -> Result<Child> {
    Ok(env
        .command("herald-dispatcher")?
        .env(
            "HERALD_DISPATCHER_LISTEN",
            format!("127.0.0.1:{}", free_port()?),
        )
        .spawn()?)
}

/// Stops a child with SIGTERM and waits for it.
pub fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS:`, `VmHWM:`), 0 if unreadable.
pub fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Polls `done` every 2 ms until it holds, or fails after `timeout`.
pub async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// The `p`-th percentile of sorted values (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    herald_testkit::percentile(sorted, p).unwrap_or(f64::NAN)
}

/// Starts a receiver that accepts connections, reads what is sent and never answers (until the
/// process ends). Returns its address and the count of connections it holds.
pub async fn start_hanging() -> Result<(SocketAddr, Arc<AtomicU64>)> {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let held = Arc::new(AtomicU64::new(0));
    let count = held.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let count = count.clone();
            tokio::spawn(async move {
                count.fetch_add(1, Ordering::Relaxed);
                let mut buf = [0u8; 4096];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                count.fetch_sub(1, Ordering::Relaxed);
            });
        }
    });
    Ok((addr, held))
}

/// Waits until something accepts connections on `127.0.0.1:port`.
pub async fn wait_for_port(port: u16) -> Result<()> {
    for _ in 0..400 {
        let probe = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await;
        if matches!(probe, Ok(Ok(_))) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("nothing listens on port {port}")
}

/// The machine's load averages (1, 5, 15 minutes), for the report.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Sends test pings to `paths` (round robin) at `rate` per second for `duration`; returns each
/// accepted event with the moment its 2xx arrived.
pub async fn paced(
    client: &herald_testkit::Client,
    token: &str,
    paths: &[String],
    rate: f64,
    duration: Duration,
) -> Result<Vec<(String, Instant)>> {
    if paths.is_empty() {
        tokio::time::sleep(duration).await;
        return Ok(Vec::new());
    }
    paced_with(client, token, rate, duration, |i| {
        (paths[i % paths.len()].clone(), serde_json::json!({}))
    })
    .await
}

/// Sends `request(i)` (a path and a JSON body) for i = 0, 1, … at `rate` per second for
/// `duration`, each on its own task so a slow answer never delays the next send; returns the
/// `eventId` of each `2xx` answer with the moment it arrived.
pub async fn paced_with(
    client: &herald_testkit::Client,
    token: &str,
    rate: f64,
    duration: Duration,
    mut request: impl FnMut(usize) -> (String, serde_json::Value),
) -> Result<Vec<(String, Instant)>> {
    if rate <= 0.0 {
        tokio::time::sleep(duration).await;
        return Ok(Vec::new());
    }
    let total = (rate * duration.as_secs_f64()) as usize;
    let acked: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut senders = Vec::with_capacity(total);
    for i in 0..total {
        ticker.tick().await;
        let (path, body) = request(i);
        let (client, token, acked) = (client.clone(), token.to_owned(), acked.clone());
        senders.push(tokio::spawn(async move {
            let reply = client.post(&path, &token, &body).await;
            let at = Instant::now();
            if (200..300).contains(&reply.status) {
                if let Some(id) = reply.json["eventId"].as_str() {
                    acked.lock().unwrap().push((id.to_owned(), at));
                }
            }
        }));
    }
    for s in senders {
        s.await?;
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    Ok(acked)
}
