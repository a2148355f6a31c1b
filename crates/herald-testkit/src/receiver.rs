//! A local webhook receiver: a real hyper server on `127.0.0.1:0` that records every request
//! and answers according to a [`Behaviour`] (succeed, fail N times, hang, redirect, …).

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the receiver answers.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// 200 every time.
    Ok,
    /// This status every time.
    Status(u16),
    /// 500 for the first `n` requests, then 200.
    FailTimes(usize),
    /// This status with a `Retry-After: secs` header.
    RetryAfter(u16, u64),
    /// Waits this long before answering 200.
    Delay(Duration),
    /// 302 to another URL.
    Redirect(String),
    /// 200 with a body of this many bytes.
    BigBody(usize),
    /// This status with this body.
    Body(u16, &'static str),
    /// Reads the request, then closes the connection without answering.
    Close,
    /// Reads the request, then answers nothing and keeps the connection open for as long as
    /// the behaviour stays `Hang`; once it is changed, the held requests are answered by the
    /// new behaviour (so a test can release what hangs before it ends).
    Hang,
    /// Sends the status line, headers announcing a body of 1,000 bytes and only 10 of them,
    /// then closes the connection.
    Truncated,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The headers.
    pub headers: http::HeaderMap,
    /// The raw body.
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
}

/// A running receiver.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Mutex<Behaviour>>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Receiver {
    /// Starts a receiver answering with `behaviour`.
    pub async fn start(behaviour: Behaviour) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(behaviour));
        let (changed, _) = tokio::sync::watch::channel(0u64);
        let (rec, beh, chg) = (received.clone(), behaviour.clone(), changed.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                if matches!(*beh.lock().expect("lock"), Behaviour::Truncated) {
                    tokio::spawn(truncated(stream, rec.clone()));
                    continue;
                }
                let (rec, beh, chg) = (rec.clone(), beh.clone(), chg.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let (rec, beh, chg) = (rec.clone(), beh.clone(), chg.subscribe());
                        async move {
                            // An error from the service makes hyper drop the connection unanswered.
                            answer(request, rec, beh, chg).await.ok_or(Hangup)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            received,
            behaviour,
            changed,
        }
    }

    /// The URL to register as a webhook (`http://127.0.0.1:port/hook`).
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// How many requests arrived so far (without copying them, unlike [`Self::received`]).
    pub fn count(&self) -> usize {
        self.received.lock().expect("lock").len()
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// How many times each `X-Webhook-Request-Id` (an event id) arrived.
    pub fn counts_by_request_id(&self) -> HashMap<String, usize> {
        let mut seen = HashMap::new();
        for r in self.received.lock().expect("lock").iter() {
            if let Some(id) = r.headers.get("x-webhook-request-id") {
                *seen
                    .entry(String::from_utf8_lossy(id.as_bytes()).into_owned())
                    .or_insert(0) += 1;
            }
        }
        seen
    }

    /// When each request carrying `X-Webhook-Request-Id: id` arrived, in arrival order.
    pub fn arrivals_of(&self, id: &str) -> Vec<Instant> {
        self.received
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| {
                r.headers
                    .get("x-webhook-request-id")
                    .is_some_and(|v| v == id)
            })
            .map(|r| r.at)
            .collect()
    }

    /// Changes how later requests are answered.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.behaviour.lock().expect("lock") = behaviour;
        self.changed.send_modify(|generation| *generation += 1);
    }
}

/// The receiver hung up on purpose ([`Behaviour::Close`]).
#[derive(Debug)]
struct Hangup;

impl std::fmt::Display for Hangup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("closing the connection on purpose")
    }
}

impl std::error::Error for Hangup {}

async fn answer(
    request: Request<Incoming>,
    received: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Mutex<Behaviour>>,
    mut changed: tokio::sync::watch::Receiver<u64>,
) -> Option<Response<Full<Bytes>>> {
    let headers = request.headers().clone();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let count = {
        let mut all = received.lock().expect("lock");
        all.push(Received {
            headers,
            body,
            at: Instant::now(),
        });
        all.len()
    };
    let behaviour = loop {
        let current = behaviour.lock().expect("lock").clone();
        if !matches!(current, Behaviour::Hang) {
            break current;
        }
        if changed.changed().await.is_err() {
            return None;
        }
    };
    let reply = |status: u16, body: Bytes| {
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = http::StatusCode::from_u16(status).expect("status");
        r
    };
    Some(match behaviour {
        Behaviour::Close | Behaviour::Truncated => return None,
        Behaviour::Hang => unreachable!("waited above until it changed"),
        Behaviour::Ok => reply(200, Bytes::from_static(b"ok")),
        Behaviour::Status(s) => reply(s, Bytes::from_static(b"nope")),
        Behaviour::FailTimes(n) => {
            if count <= n {
                reply(500, Bytes::from_static(b"failing on purpose"))
            } else {
                reply(200, Bytes::from_static(b"ok"))
            }
        }
        Behaviour::RetryAfter(status, secs) => {
            let mut r = reply(status, Bytes::from_static(b"slow down"));
            r.headers_mut()
                .insert("retry-after", secs.to_string().parse().expect("header"));
            r
        }
        Behaviour::Delay(d) => {
            tokio::time::sleep(d).await;
            reply(200, Bytes::from_static(b"ok"))
        }
        Behaviour::Redirect(to) => {
            let mut r = reply(302, Bytes::new());
            r.headers_mut()
                .insert("location", to.parse().expect("header"));
            r
        }
        Behaviour::BigBody(n) => reply(200, Bytes::from(vec![b'x'; n])),
        Behaviour::Body(status, body) => reply(status, Bytes::from_static(body.as_bytes())),
    })
}

/// [`Behaviour::Truncated`]: reads one request head and body by hand (hyper would not send a
/// short body), answers with headers promising more body than it sends, then closes.
async fn truncated(mut stream: tokio::net::TcpStream, received: Arc<Mutex<Vec<Received>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // Enough of the request to know it arrived: the end of its head.
    let head_end = loop {
        if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    };
    // Read the whole body too: closing with unread input would reset the connection and could
    // destroy the answer before the client reads it.
    let head = String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while seen.len() < head_end + length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    received.lock().expect("lock").push(Received {
        headers: http::HeaderMap::new(),
        body: Bytes::new(),
        at: Instant::now(),
    });
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nonly-a-bit")
        .await;
    let _ = stream.flush().await;
    // Let the client read what was sent before the connection goes away.
    tokio::time::sleep(Duration::from_millis(50)).await;
}
