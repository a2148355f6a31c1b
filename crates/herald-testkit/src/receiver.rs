//! A local webhook receiver: a real hyper server on `127.0.0.1:0` that records every request
//! and answers according to a [`Behaviour`] (succeed, fail N times, hang, redirect, …).

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
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
        let (rec, beh) = (received.clone(), behaviour.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (rec, beh) = (rec.clone(), beh.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let (rec, beh) = (rec.clone(), beh.clone());
                        async move {
                            // An error from the service makes hyper drop the connection unanswered.
                            answer(request, rec, beh).await.ok_or(Hangup)
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
        }
    }

    /// The URL to register as a webhook (`http://127.0.0.1:port/hook`).
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// Changes how later requests are answered.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.behaviour.lock().expect("lock") = behaviour;
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
    let behaviour = behaviour.lock().expect("lock").clone();
    let reply = |status: u16, body: Bytes| {
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = http::StatusCode::from_u16(status).expect("status");
        r
    };
    Some(match behaviour {
        Behaviour::Close => return None,
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
