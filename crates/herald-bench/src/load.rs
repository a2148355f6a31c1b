//! A closed-loop load generator: `connections` keep-alive HTTP/1.1 connections, each sending
//! one request after another for a fixed duration, recording every latency.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What one run measured.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Requests answered with the expected status.
    pub ok: u64,
    /// Requests answered otherwise (or failed).
    pub errors: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Sorted latencies in microseconds.
    latencies_us: Vec<u32>,
}

impl LoadReport {
    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q`-quantile latency (0.0..=1.0) in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let index = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        f64::from(self.latencies_us[index]) / 1000.0
    }

    /// One line: `rps, p50, p99`.
    pub fn summary(&self) -> String {
        format!(
            "{:>9.0} req/s  p50 {:>6.3} ms  p99 {:>6.3} ms  ({} ok, {} errors)",
            self.rps(),
            self.quantile_ms(0.50),
            self.quantile_ms(0.99),
            self.ok,
            self.errors
        )
    }
}

/// Drives `GET path` with `headers` at `addr` over `connections` keep-alive connections for
/// `duration`, counting responses with status `expect` as successes.
pub async fn get_load(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
    connections: usize,
    duration: Duration,
    expect: u16,
) -> LoadReport {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let path = path.to_owned();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        tasks.push(tokio::spawn(async move {
            one_connection(addr, path, headers, deadline, expect).await
        }));
    }
    let mut report = LoadReport {
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    for task in tasks {
        let (ok, errors, latencies) = task.await.unwrap_or((0, 1, Vec::new()));
        report.ok += ok;
        report.errors += errors;
        report.latencies_us.extend(latencies);
    }
    report.elapsed = started.elapsed();
    report.latencies_us.sort_unstable();
    report
}

async fn one_connection(
    addr: SocketAddr,
    path: String,
    headers: Vec<(String, String)>,
    deadline: Instant,
    expect: u16,
) -> (u64, u64, Vec<u32>) {
    let (mut ok, mut errors, mut latencies) = (0u64, 0u64, Vec::with_capacity(100_000));
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        return (0, 1, latencies);
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await
    else {
        return (0, 1, latencies);
    };
    tokio::spawn(connection);
    while Instant::now() < deadline {
        let mut request = http::Request::builder()
            .uri(path.as_str())
            .header("host", addr.to_string());
        for (k, v) in &headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let request = request.body(Empty::new()).expect("request");
        let sent = Instant::now();
        match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.into_body().collect().await;
                latencies.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                if status == expect {
                    ok += 1;
                } else {
                    errors += 1;
                }
            }
            Err(_) => {
                errors += 1;
                break;
            }
        }
    }
    (ok, errors, latencies)
}
