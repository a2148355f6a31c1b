//! A WebSocket client for tests of `GET /api/v1/events/ws`: connect with a header or query
//! token, read the next event frame with a deadline, see how the server closed.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A connected WebSocket.
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// The server refused the upgrade with an ordinary HTTP answer.
#[derive(Debug)]
pub struct WsRefused {
    /// The HTTP status.
    pub status: u16,
    /// The body, as JSON when it is.
    pub json: Value,
}

/// What came over the socket when a test waited for it.
#[derive(Debug, PartialEq)]
pub enum WsNext {
    /// A text frame, parsed as JSON.
    Event(Value),
    /// The server closed with this code.
    Closed(Option<u16>),
    /// Nothing arrived in time.
    Timeout,
}

impl WsClient {
    /// Connects to `base_url` (`http://host:port`) + `path` (with its query), sending
    /// `Authorization: Bearer <token>` when `token` is given.
    pub async fn connect(
        base_url: &str,
        path: &str,
        token: Option<&str>,
    ) -> Result<Self, WsRefused> {
        let url = format!("{}{}", base_url.replacen("http://", "ws://", 1), path);
        let mut request = url.into_client_request().expect("a valid ws url");
        if let Some(token) = token {
            request.headers_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("header value"),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, _)) => Ok(Self { stream }),
            Err(Error::Http(response)) => Err(WsRefused {
                status: response.status().as_u16(),
                json: response
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null),
            }),
            Err(other) => panic!("WebSocket connection failed: {other}"),
        }
    }

    /// Connects like [`Self::connect`] over a socket with a tiny receive buffer, so a test can
    /// play a consumer that stops reading and watch the server's flow control kick in.
    pub async fn connect_slow(base_url: &str, path: &str, token: &str) -> Self {
        let addr = base_url
            .trim_start_matches("http://")
            .parse::<std::net::SocketAddr>()
            .expect("http://ip:port");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let tcp = socket.connect(addr).await.expect("connect");
        let url = format!("ws://{addr}{path}");
        let mut request = url.into_client_request().expect("a valid ws url");
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header value"),
        );
        let (stream, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp))
            .await
            .expect("handshake");
        Self { stream }
    }

    /// The next text frame (as JSON), or how the socket ended, within `timeout`. Pings and
    /// pongs are skipped (pings are answered).
    pub async fn next(&mut self, timeout: Duration) -> WsNext {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return WsNext::Timeout,
                Ok(None) | Ok(Some(Err(_))) => return WsNext::Closed(None),
                Ok(Some(Ok(Message::Text(text)))) => {
                    return WsNext::Event(serde_json::from_str(&text).expect("frames are JSON"))
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return WsNext::Closed(frame.map(|f| u16::from(f.code)))
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// The next event, panicking with `what` if none arrives within `timeout`.
    pub async fn expect_event(&mut self, what: &str, timeout: Duration) -> Value {
        match self.next(timeout).await {
            WsNext::Event(event) => event,
            other => panic!("expected {what}, got {other:?}"),
        }
    }

    /// Asserts nothing arrives within `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        match self.next(quiet).await {
            WsNext::Timeout => {}
            other => panic!("expected silence, got {other:?}"),
        }
    }

    /// Sends a ping (the server answers with a pong, which [`Self::next`] skips).
    pub async fn ping(&mut self) {
        self.stream
            .send(Message::Ping(b"test".to_vec().into()))
            .await
            .expect("ping");
    }

    /// Reads frames until a pong arrives (or panics after `timeout`).
    pub async fn expect_pong(&mut self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(Message::Pong(_)))) => return,
                Ok(Some(Ok(_))) => {}
                other => panic!("expected a pong, got {other:?}"),
            }
        }
    }

    /// Closes politely.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}
