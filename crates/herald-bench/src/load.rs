//! A closed-loop HTTP/1.1 load generator: `connections` keep-alive connections, each sending
//! its next request as soon as the previous answer is read, for a fixed time after a warm-up.
//! It reports throughput and latency percentiles, and counts answers whose status is not the
//! expected one as errors (so a benchmark that silently measures 401s shows it).
//!
//! Requests come from a caller-supplied function so one run can rotate tokens, paths or bodies.
//! Built on hyper's low-level client (one handshake per connection, no pool) so the generator
//! itself stays cheap next to the server it measures.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Makes the `n`-th request of a connection (`n` counts across all connections' calls).
pub type RequestFactory = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

/// How hard and how long to push.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Time discarded at the start, while caches and connections warm up.
    pub warmup: Duration,
    /// Measured time after the warm-up.
    pub duration: Duration,
    /// The status every answer should have.
    pub expect_status: u16,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            connections: 16,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            expect_status: 200,
        }
    }
}

/// What a run measured (warm-up excluded).
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Answers with the expected status.
    pub ok: u64,
    /// Answers with another status.
    pub unexpected: u64,
    /// The measured time.
    pub elapsed: Duration,
    /// Median latency.
    pub p50: Duration,
    /// 99th-percentile latency.
    pub p99: Duration,
}

impl LoadReport {
    /// Expected answers per second.
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// Wall time per request if the machine's `cores` served them one at a time: an upper
    /// bound of one request's CPU cost (it includes the load generator's share).
    pub fn cpu_per_request(&self, cores: usize) -> Duration {
        if self.ok == 0 {
            return Duration::ZERO;
        }
        self.elapsed.mul_f64(cores as f64) / self.ok as u32
    }
}

/// Why a run could not happen.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A connection could not be opened.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The target.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed (connection reset, protocol error).
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
}

struct ConnectionResult {
    ok: u64,
    unexpected: u64,
    latencies_us: Vec<u32>,
}

/// Runs `config.connections` closed loops against `addr` and merges their results.
pub async fn run(
    addr: SocketAddr,
    requests: RequestFactory,
    config: &LoadConfig,
) -> Result<LoadReport, LoadError> {
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let stop_at = measure_from + config.duration;
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        let requests = requests.clone();
        let counter = counter.clone();
        let expect = config.expect_status;
        tasks.push(tokio::spawn(async move {
            connection_loop(addr, requests, counter, expect, measure_from, stop_at).await
        }));
    }
    let mut ok = 0;
    let mut unexpected = 0;
    let mut latencies = Vec::new();
    for task in tasks {
        let result = task.await.expect("load task panicked")?;
        ok += result.ok;
        unexpected += result.unexpected;
        latencies.extend(result.latencies_us);
    }
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(Duration::ZERO, |us| Duration::from_micros(u64::from(*us)))
    };
    Ok(LoadReport {
        ok,
        unexpected,
        elapsed: config.duration,
        p50: percentile(0.50),
        p99: percentile(0.99),
    })
}

async fn connection_loop(
    addr: SocketAddr,
    requests: RequestFactory,
    counter: Arc<std::sync::atomic::AtomicU64>,
    expect: u16,
    measure_from: Instant,
    stop_at: Instant,
) -> Result<ConnectionResult, LoadError> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|source| LoadError::Connect { addr, source })?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut result = ConnectionResult {
        ok: 0,
        unexpected: 0,
        latencies_us: Vec::new(),
    };
    loop {
        let sent = Instant::now();
        if sent >= stop_at {
            return Ok(result);
        }
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        sender.ready().await?;
        let response = sender.send_request(requests(n)).await?;
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        let done = Instant::now();
        if sent >= measure_from && done <= stop_at {
            if status == expect {
                result.ok += 1;
            } else {
                result.unexpected += 1;
            }
            result
                .latencies_us
                .push(done.duration_since(sent).as_micros().min(u32::MAX as u128) as u32);
        }
    }
}
