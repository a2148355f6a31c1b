//! Accepting and supervising connections for both HTTP servers (the API and the operations
//! endpoints), so that nobody can hold the server's sockets without using them.
//!
//! Every connection is tracked from accept to close:
//! - a request head must arrive within the **header timeout**, counted from the connection's
//!   opening or from the first byte of the next request (slow senders are closed);
//! - a keep-alive connection with nothing in flight is closed after the **idle timeout**;
//! - at most **max connections** are open. At the limit, a new connection takes the place of
//!   the one that has waited longest without completing a request head (a slow or silent
//!   sender), else of the one idle the longest; only when every connection is in the middle of
//!   a request is the new one refused. So an attacker who opens connections and sends nothing,
//!   or one byte at a time, can only push out other such connections, while `/healthz` and real
//!   clients (who send a whole head at once) keep getting answers.
//!
//! A request being handled is never cut by these timers. A connection upgraded to a WebSocket
//! leaves this supervision (and the count) at the upgrade: the socket has its own pings.

use crate::HttpResponse;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// How long connections may take and how many may be open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest time to receive a complete request head (`HERALD_HTTP_HEADER_TIMEOUT_MS`).
    pub header_timeout: Duration,
    /// Longest time a keep-alive connection may sit with no request (`HERALD_HTTP_IDLE_TIMEOUT_MS`).
    pub idle_timeout: Duration,
    /// Most connections open at once (`HERALD_HTTP_MAX_CONNECTIONS`).
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    /// 10 s for a request head; 75 s idle, longer than the 60 s idle timeout common load
    /// balancers use, so the balancer, not Herald, closes a pooled connection (a server closing
    /// first races the balancer's next request); 1024 connections.
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            max_connections: 1024,
        }
    }
}

/// Why a connection was closed by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shed {
    HeaderTimeout,
    IdleTimeout,
    Evicted,
    Refused,
}

impl Shed {
    const ALL: [Shed; 4] = [
        Shed::HeaderTimeout,
        Shed::IdleTimeout,
        Shed::Evicted,
        Shed::Refused,
    ];

    fn label(self) -> &'static str {
        match self {
            Shed::HeaderTimeout => "header_timeout",
            Shed::IdleTimeout => "idle_timeout",
            Shed::Evicted => "evicted",
            Shed::Refused => "refused",
        }
    }
}

/// Connection counters for `/metrics`.
#[derive(Default)]
pub struct ConnectionStats {
    open: AtomicU64,
    shed: [AtomicU64; 4],
}

impl ConnectionStats {
    fn count(&self, reason: Shed) {
        self.shed[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the connection metrics (Prometheus text format).
    pub fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP herald_http_connections_open HTTP connections open (upgraded WebSockets not included).\n\
             # TYPE herald_http_connections_open gauge\n",
        );
        out.push_str(&format!(
            "herald_http_connections_open {}\n",
            self.open.load(Ordering::Relaxed)
        ));
        out.push_str(
            "# HELP herald_http_connections_shed_total HTTP connections closed or refused by the server, by reason.\n\
             # TYPE herald_http_connections_shed_total counter\n",
        );
        for reason in Shed::ALL {
            out.push_str(&format!(
                "herald_http_connections_shed_total{{reason=\"{}\"}} {}\n",
                reason.label(),
                self.shed[reason as usize].load(Ordering::Relaxed)
            ));
        }
    }
}

/// Milliseconds since the server started, plus one, so that 0 can mean "never".
fn stamp(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2)
}

/// What one connection is doing, updated by its reads and its requests.
struct Tracker {
    epoch: Instant,
    opened: u64,
    in_flight: AtomicU32,
    completed: AtomicU64,
    /// When it last finished a response (or opened).
    idle_since: AtomicU64,
    /// When the first byte of the next request head arrived (0: none yet).
    head_started: AtomicU64,
    evict: Notify,
}

impl Tracker {
    fn new(epoch: Instant) -> Self {
        let now = stamp(epoch);
        Self {
            epoch,
            opened: now,
            in_flight: AtomicU32::new(0),
            completed: AtomicU64::new(0),
            idle_since: AtomicU64::new(now),
            head_started: AtomicU64::new(0),
            evict: Notify::new(),
        }
    }

    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
        {
            self.head_started
                .store(stamp(self.epoch), Ordering::Relaxed);
        }
    }

    /// Whether it may be pushed out for a new connection: nothing in flight.
    fn evictable(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
    }

    /// Eviction order: connections that never completed a request head first, then the
    /// longest idle.
    fn eviction_rank(&self) -> (bool, u64) {
        let served = self.completed.load(Ordering::Relaxed) > 0;
        let since = if served {
            self.idle_since.load(Ordering::Relaxed)
        } else {
            self.opened
        };
        (served, since)
    }

    /// When the connection expires, and why, if nothing happens before.
    fn deadline(&self, limits: &ConnectionLimits) -> (u64, Shed) {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            // Handlers are never cut; look again later.
            return (
                stamp(self.epoch) + millis(limits.idle_timeout),
                Shed::IdleTimeout,
            );
        }
        let header = millis(limits.header_timeout);
        if self.completed.load(Ordering::Relaxed) == 0 {
            return (self.opened + header, Shed::HeaderTimeout);
        }
        match self.head_started.load(Ordering::Relaxed) {
            0 => (
                self.idle_since.load(Ordering::Relaxed) + millis(limits.idle_timeout),
                Shed::IdleTimeout,
            ),
            started => (started + header, Shed::HeaderTimeout),
        }
    }
}

/// Marks a request in flight on its connection until dropped.
struct InFlight(Arc<Tracker>);

impl InFlight {
    fn start(tracker: &Arc<Tracker>) -> Self {
        tracker.in_flight.fetch_add(1, Ordering::Relaxed);
        tracker.head_started.store(0, Ordering::Relaxed);
        Self(tracker.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let tracker = &self.0;
        tracker
            .idle_since
            .store(stamp(tracker.epoch), Ordering::Relaxed);
        tracker.completed.fetch_add(1, Ordering::Relaxed);
        tracker.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket, telling its tracker when bytes arrive.
struct TrackedStream {
    inner: TcpStream,
    tracker: Arc<Tracker>,
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.tracker.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The open connections of one server.
struct Registry {
    limits: ConnectionLimits,
    epoch: Instant,
    name: &'static str,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Arc<Tracker>>,
    /// Set while the limit is being enforced: when it started and how many were shed since.
    shedding: Option<(Instant, u64)>,
}

/// Below this share of the limit, shedding is over (so the log does not flap at the edge).
const CALM_NUMERATOR: usize = 9;
const CALM_DENOMINATOR: usize = 10;

impl Registry {
    /// Registers a new connection, pushing out another at the limit; `None` when it must be
    /// refused.
    fn admit(&self, stats: &ConnectionStats) -> Option<(u64, Arc<Tracker>)> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.open.len() >= self.limits.max_connections {
            let victim = table
                .open
                .iter()
                .filter(|(_, t)| t.evictable())
                .min_by_key(|(_, t)| t.eviction_rank())
                .map(|(id, _)| *id);
            let reason = match victim {
                Some(id) => {
                    if let Some(tracker) = table.open.remove(&id) {
                        tracker.evict.notify_one();
                    }
                    Shed::Evicted
                }
                None => Shed::Refused,
            };
            stats.count(reason);
            match &mut table.shedding {
                Some((_, shed)) => *shed += 1,
                None => {
                    table.shedding = Some((Instant::now(), 1));
                    tracing::warn!(
                        target: "herald::http",
                        server = self.name,
                        limit = self.limits.max_connections,
                        "connection limit reached: closing the connections that have waited \
                         longest without sending a complete request (refusing new ones only \
                         while every connection is busy) until under the limit again"
                    );
                }
            }
            if reason == Shed::Refused {
                return None;
            }
        }
        table.next_id += 1;
        let id = table.next_id;
        let tracker = Arc::new(Tracker::new(self.epoch));
        table.open.insert(id, tracker.clone());
        stats.open.store(table.open.len() as u64, Ordering::Relaxed);
        Some((id, tracker))
    }

    fn remove(&self, id: u64, stats: &ConnectionStats) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.open.remove(&id);
        stats.open.store(table.open.len() as u64, Ordering::Relaxed);
        let calm = self.limits.max_connections * CALM_NUMERATOR / CALM_DENOMINATOR;
        if table.open.len() < calm {
            if let Some((since, shed)) = table.shedding.take() {
                tracing::warn!(
                    target: "herald::http",
                    server = self.name,
                    shed,
                    seconds = since.elapsed().as_secs(),
                    "back under the connection limit"
                );
            }
        }
    }
}

/// How long requests in flight may finish after shutdown is asked for.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `handler` on every connection accepted from `listener` under `limits` until
/// `shutdown` resolves, then lets requests in flight finish (for up to 10 s). `before_drain`
/// runs once the listener is closed (the API ends its WebSockets there).
pub(crate) async fn serve<H, F>(
    name: &'static str,
    listener: TcpListener,
    limits: ConnectionLimits,
    stats: &Arc<ConnectionStats>,
    handler: H,
    shutdown: impl Future<Output = ()>,
    before_drain: impl FnOnce(),
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let registry = Arc::new(Registry {
        limits,
        epoch: Instant::now(),
        name,
        table: Mutex::new(Table::default()),
    });
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, server = name, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some((id, tracker)) = registry.admit(stats) else {
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let on_request = tracker.clone();
                let service = hyper::service::service_fn(move |request| {
                    let in_flight = InFlight::start(&on_request);
                    let answer = handler(request);
                    async move {
                        let response = answer.await;
                        drop(in_flight);
                        Ok::<_, Infallible>(response)
                    }
                });
                let io = TokioIo::new(TrackedStream { inner: stream, tracker: tracker.clone() });
                let connection = Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(io, service)
                    .into_owned();
                let connection = graceful.watch(connection);
                let registry = registry.clone();
                let stats = stats.clone();
                tokio::spawn(async move {
                    supervise(connection, &tracker, &registry, &stats).await;
                    registry.remove(id, &stats);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    before_drain();
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN) => {
            tracing::warn!(server = name, "connections still open after {DRAIN:?}; closing")
        }
    }
}

/// Drives one connection until it ends, times out or is pushed out.
async fn supervise<E: std::fmt::Display>(
    connection: impl Future<Output = Result<(), E>>,
    tracker: &Tracker,
    registry: &Registry,
    stats: &ConnectionStats,
) {
    let mut connection = std::pin::pin!(connection);
    loop {
        let (deadline, reason) = tracker.deadline(&registry.limits);
        let wait = Duration::from_millis(deadline.saturating_sub(stamp(registry.epoch)));
        tokio::select! {
            ended = &mut connection => {
                if let Err(error) = ended {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            _ = tracker.evict.notified() => return,
            _ = tokio::time::sleep(wait) => {
                // Activity may have moved the deadline meanwhile.
                let (deadline, _) = tracker.deadline(&registry.limits);
                if stamp(registry.epoch) >= deadline {
                    stats.count(reason);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 2,
        }
    }

    #[test]
    fn a_new_connection_must_send_its_head_within_the_header_timeout() {
        let tracker = Tracker::new(Instant::now());
        let (deadline, reason) = tracker.deadline(&limits());
        assert_eq!(
            (deadline, reason),
            (tracker.opened + 10_000, Shed::HeaderTimeout)
        );
    }

    #[test]
    fn between_requests_the_idle_timeout_applies_until_bytes_arrive() {
        let tracker = Arc::new(Tracker::new(Instant::now()));
        drop(InFlight::start(&tracker));
        let idle_since = tracker.idle_since.load(Ordering::Relaxed);
        assert_eq!(
            tracker.deadline(&limits()),
            (idle_since + 60_000, Shed::IdleTimeout)
        );
        tracker.bytes_read();
        let started = tracker.head_started.load(Ordering::Relaxed);
        assert_eq!(
            tracker.deadline(&limits()),
            (started + 10_000, Shed::HeaderTimeout)
        );
    }

    #[test]
    fn a_request_in_flight_is_never_due() {
        let tracker = Arc::new(Tracker::new(Instant::now()));
        let busy = InFlight::start(&tracker);
        tracker.bytes_read();
        assert_eq!(tracker.head_started.load(Ordering::Relaxed), 0);
        assert!(!tracker.evictable());
        drop(busy);
        assert!(tracker.evictable());
    }

    #[test]
    fn at_the_limit_silent_connections_go_first_and_busy_ones_never() {
        let stats = ConnectionStats::default();
        let registry = Registry {
            limits: limits(),
            epoch: Instant::now(),
            name: "test",
            table: Mutex::new(Table::default()),
        };
        let (served_id, served) = registry.admit(&stats).unwrap();
        drop(InFlight::start(&served));
        let (silent_id, _silent) = registry.admit(&stats).unwrap();
        // Full: the silent one (no request completed) makes room, not the served one.
        let (_, newest) = registry.admit(&stats).unwrap();
        let open: Vec<u64> = registry
            .table
            .lock()
            .unwrap()
            .open
            .keys()
            .copied()
            .collect();
        assert!(open.contains(&served_id) && !open.contains(&silent_id));
        // Every connection busy: the next one is refused.
        let _a = InFlight::start(&served);
        let _b = InFlight::start(&newest);
        assert!(registry.admit(&stats).is_none());
        assert_eq!(
            stats.shed[Shed::Evicted as usize].load(Ordering::Relaxed),
            1
        );
        assert_eq!(
            stats.shed[Shed::Refused as usize].load(Ordering::Relaxed),
            1
        );
    }
}
