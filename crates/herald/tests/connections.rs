//! Both HTTP servers (the API and the dispatcher's operations endpoints) under abusive
//! connections, over real TCP: silent and slow-header (slowloris) connections are closed after
//! the header timeout, idle keep-alive connections after the idle timeout; at the connection
//! limit `/healthz` still answers and a client that completes its requests keeps its
//! connection; an upgraded WebSocket is not an idle HTTP connection.

use herald::config::ConnectionLimits;
use herald::http::ops::OpsState;
use herald_testkit::{Backend, TestServer, WsClient};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

fn limits(header_ms: u64, idle_ms: u64, max_connections: usize) -> ConnectionLimits {
    ConnectionLimits {
        header_timeout: Duration::from_millis(header_ms),
        idle_timeout: Duration::from_millis(idle_ms),
        max_connections,
    }
}

/// The API server on the embedded store (connection handling does not depend on the store).
async fn api(limits: ConnectionLimits) -> TestServer {
    TestServer::start_with(Backend::Sqlite, |c| c.http_limits = limits).await
}

/// The operations server alone, as `herald-dispatcher` serves it; stops when dropped.
struct Ops {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn ops(limits: ConnectionLimits) -> Ops {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(OpsState {
        readiness: Vec::new(),
        metrics: Vec::new(),
        limits,
        connections: Arc::default(),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(herald::http::ops::run(listener, state, async move {
        let _ = stopped.await;
    }));
    Ops { addr, _stop: stop }
}

/// Sends `GET path` on an open connection and reads the whole response: (status, body).
async fn get_on(stream: &mut TcpStream, path: &str) -> std::io::Result<(u16, String)> {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: herald\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((
        status,
        String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned(),
    ))
}

/// `GET path` on a fresh connection.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    get_on(&mut stream, path).await.unwrap()
}

/// Whether the server has closed `stream` (a read sees the end, or a reset).
async fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(20), stream.read(&mut byte)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => panic!("unexpected bytes from the server"),
        Err(_) => false,
    }
}

async fn wait_closed(stream: &mut TcpStream, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !closed(stream).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
    }
}

/// A slowloris: a request head sent one byte per 50 ms, for as long as the server lets it.
async fn slowloris(addr: SocketAddr) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\nX-Slow: ")
        .await
        .unwrap();
    let mut pace = tokio::time::interval(Duration::from_millis(50));
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        pace.tick().await;
        if stream.write_all(b"a").await.is_err() || closed(&mut stream).await {
            return;
        }
    }
    panic!("a slowloris connection stayed open for {WAIT:?}");
}

/// A shed counter from `/metrics`.
fn shed(metrics: &str, reason: &str) -> u64 {
    let line = format!("herald_http_connections_shed_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no {reason} counter in {metrics}"))
        .parse()
        .unwrap()
}

/// Silent, slow-header and idle connections are closed; a client that keeps sending whole
/// requests keeps its connection across many header timeouts.
async fn slow_silent_and_idle_connections_are_closed(addr: SocketAddr) {
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert_eq!(get_on(&mut idle, "/healthz").await.unwrap().0, 200);

    let mut busy = TcpStream::connect(addr).await.unwrap();
    let mut pace = tokio::time::interval(Duration::from_millis(50));
    // 30 requests 50 ms apart: 1.5 s on one connection, five header timeouts.
    for _ in 0..30 {
        pace.tick().await;
        assert_eq!(
            get_on(&mut busy, "/healthz").await.unwrap().0,
            200,
            "a busy keep-alive connection keeps working"
        );
    }

    slowloris(addr).await;
    wait_closed(&mut silent, "the silent connection to be closed").await;
    wait_closed(&mut idle, "the idle connection to be closed").await;
    let (status, metrics) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(shed(&metrics, "header_timeout") >= 2, "{metrics}");
    assert!(shed(&metrics, "idle_timeout") >= 1, "{metrics}");
}

/// At the limit, connections that never completed a request head make room: `/healthz`
/// answers, and a keep-alive client that has completed requests keeps its connection.
async fn at_the_limit_healthz_answers_and_real_clients_stay(addr: SocketAddr) {
    const LIMIT: usize = 8;
    let mut client = TcpStream::connect(addr).await.unwrap();
    assert_eq!(get_on(&mut client, "/healthz").await.unwrap().0, 200);

    let mut attackers = Vec::new();
    for _ in 0..3 * LIMIT {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        attackers.push(stream);
    }
    for _ in 0..3 {
        assert_eq!(get(addr, "/healthz").await.0, 200, "at the limit");
    }
    assert_eq!(
        get_on(&mut client, "/healthz").await.unwrap().0,
        200,
        "the real client's connection survives"
    );
    // The oldest silent connections were the ones pushed out.
    wait_closed(&mut attackers[0], "the oldest attacker to be evicted").await;
    let (_, metrics) = get(addr, "/metrics").await;
    assert!(shed(&metrics, "evicted") >= (2 * LIMIT) as u64, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_closes_slow_silent_and_idle_connections() {
    let server = api(limits(300, 1_500, 1024)).await;
    slow_silent_and_idle_connections_are_closed(server.addr()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operations_server_closes_slow_silent_and_idle_connections() {
    let server = ops(limits(300, 1_500, 1024)).await;
    slow_silent_and_idle_connections_are_closed(server.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_answering_at_the_connection_limit() {
    let server = api(limits(60_000, 60_000, 8)).await;
    at_the_limit_healthz_answers_and_real_clients_stay(server.addr()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operations_server_keeps_answering_at_the_connection_limit() {
    let server = ops(limits(60_000, 60_000, 8)).await;
    at_the_limit_healthz_answers_and_real_clients_stay(server.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_websocket_is_not_an_idle_connection() {
    let server = api(limits(200, 200, 1024)).await;
    let token = server.api_key("org_ws", "read").await;
    let mut ws = WsClient::connect(&server.base_url, "/api/v1/events/ws", Some(&token))
        .await
        .unwrap();
    let mut idle = TcpStream::connect(server.addr()).await.unwrap();
    assert_eq!(get_on(&mut idle, "/healthz").await.unwrap().0, 200);
    wait_closed(&mut idle, "the idle HTTP connection to be closed").await;
    // The WebSocket, opened before and silent since, is still there.
    ws.ping().await;
    ws.expect_pong(WAIT).await;
    ws.close().await;
}
