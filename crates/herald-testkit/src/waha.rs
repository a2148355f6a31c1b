//! A WAHA double: a real HTTP server on `127.0.0.1:0` that behaves like a WAHA server as WAHA's
//! published OpenAPI document describes it (the subset Herald uses, kept beside this file), so
//! Herald's WAHA engine can be tested end to end without WhatsApp.
//!
//! What it does, like WAHA:
//! - **Checks** `X-Api-Key` (401 when one is configured and the request lacks it or has another)
//!   and each request body against the document's schema for the route: a missing required
//!   field or a wrongly typed one is a 400 in WAHA's (NestJS) error shape
//!   `{"statusCode":400,"message":["chatId should not be empty"],"error":"Bad Request"}`.
//! - **Keeps sessions** (name, status and its history, configuration with webhooks, `me`, QR
//!   text). Creating an existing session, or any session but `default` on the
//!   [`Tier::Core`] tier, is a 422; asking for an unknown session is a 404; sending from a
//!   session that is not `WORKING` is a 422; asking for a QR code outside `SCAN_QR_CODE` is a
//!   422. Deleting an unknown session is a 404 (older WAHA versions answer so).
//! - **Answers** with the document's shapes: `SessionDTO`, `SessionInfo`, `MeInfo` (an empty
//!   body while not connected), `QRCodeValue`, `WAMessage` for `sendText` and `sendPoll` (the
//!   document gives `sendPoll` no schema; WAHA answers the message), and an empty 201 for
//!   `sendPollVote`.
//! - **Emits signed webhooks** to the URLs configured on the session, one at a time in order,
//!   with WAHA's retries: status changes (STARTING on creation and start, STOPPED on stop, and
//!   on command [`WahaDouble::show_qr`], [`WahaDouble::pair`], [`WahaDouble::set_status`]),
//!   the `message.any` echo of each message sent through the API, and on command inbound
//!   messages and polls (each as `message` and `message.any`, as WAHA sends them), the
//!   session's own messages, acks, votes, failed votes, events Herald ignores, duplicates
//!   ([`WahaDouble::resend`]) and envelopes of older versions without `id` and `timestamp`
//!   ([`WahaDouble::set_legacy_envelopes`]).
//! - **Misbehaves on demand**, per route ([`Fault`]: slow, hanging up, or answering an error)
//!   or as a whole ([`WahaDouble::go_down`]: connections refused until
//!   [`WahaDouble::come_up`]).
//! - **Records** every call ([`WahaDouble::calls`]) and every webhook it emitted
//!   ([`WahaDouble::emitted`]).
//!
//! Messages are shaped as WAHA's WEBJS engine writes them (polls in `_data` as
//! `type: "poll_creation"`); retry delays are WAHA's, with one WAHA second lasting 10 ms unless
//! [`WahaDouble::set_retry_second`] says otherwise.

mod emitter;
pub mod schema;

pub use emitter::{
    envelope, sign, Attempt, BatchItem, BatchPlan, BatchReport, Delivery, Pacing, Retries,
    WebhookEmitter, WebhookTarget,
};

use base64::Engine as _;
use emitter::now_ms;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use schema::{violations, Strictness};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

/// Which WAHA edition the double plays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tier {
    /// WAHA Core: one session, named `default`.
    Core,
    /// WAHA Plus: any number of sessions.
    #[default]
    Plus,
}

/// How the double starts.
#[derive(Clone, Debug, Default)]
pub struct WahaOptions {
    /// The API key every call must carry as `X-Api-Key`; any call is accepted when `None`.
    pub api_key: Option<String>,
    /// The edition.
    pub tier: Tier,
}

/// The WAHA routes the double serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `GET /api/sessions`.
    ListSessions,
    /// `POST /api/sessions`.
    CreateSession,
    /// `GET /api/sessions/{session}`.
    GetSession,
    /// `PUT /api/sessions/{session}`.
    UpdateSession,
    /// `DELETE /api/sessions/{session}`.
    DeleteSession,
    /// `POST /api/sessions/{session}/start`.
    StartSession,
    /// `POST /api/sessions/{session}/stop`.
    StopSession,
    /// `GET /api/sessions/{session}/me`.
    Me,
    /// `GET /api/{session}/auth/qr`.
    Qr,
    /// `POST /api/sendText`.
    SendText,
    /// `POST /api/sendPoll`.
    SendPoll,
    /// `POST /api/sendPollVote`.
    SendPollVote,
}

impl Route {
    /// The path as WAHA's document writes it.
    pub fn template(self) -> &'static str {
        match self {
            Self::ListSessions | Self::CreateSession => "/api/sessions",
            Self::GetSession | Self::UpdateSession | Self::DeleteSession => {
                "/api/sessions/{session}"
            }
            Self::StartSession => "/api/sessions/{session}/start",
            Self::StopSession => "/api/sessions/{session}/stop",
            Self::Me => "/api/sessions/{session}/me",
            Self::Qr => "/api/{session}/auth/qr",
            Self::SendText => "/api/sendText",
            Self::SendPoll => "/api/sendPoll",
            Self::SendPollVote => "/api/sendPollVote",
        }
    }

    /// The route of `method` and the percent-decoded path `segments`, and the session named in
    /// the path, if any.
    fn find(method: &str, segments: &[String]) -> Option<(Self, Option<String>)> {
        let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
        let (route, session) = match (method, parts.as_slice()) {
            ("GET", ["api", "sessions"]) => (Self::ListSessions, None),
            ("POST", ["api", "sessions"]) => (Self::CreateSession, None),
            ("GET", ["api", "sessions", s]) => (Self::GetSession, Some(*s)),
            ("PUT", ["api", "sessions", s]) => (Self::UpdateSession, Some(*s)),
            ("DELETE", ["api", "sessions", s]) => (Self::DeleteSession, Some(*s)),
            ("POST", ["api", "sessions", s, "start"]) => (Self::StartSession, Some(*s)),
            ("POST", ["api", "sessions", s, "stop"]) => (Self::StopSession, Some(*s)),
            ("GET", ["api", "sessions", s, "me"]) => (Self::Me, Some(*s)),
            ("GET", ["api", s, "auth", "qr"]) => (Self::Qr, Some(*s)),
            ("POST", ["api", "sendText"]) => (Self::SendText, None),
            ("POST", ["api", "sendPoll"]) => (Self::SendPoll, None),
            ("POST", ["api", "sendPollVote"]) => (Self::SendPollVote, None),
            _ => return None,
        };
        Some((route, session.map(str::to_owned)))
    }
}

/// A way for one route to misbehave.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Read the request, then close the connection without answering.
    Hangup,
    /// Answer this status with WAHA's error shape and this message.
    Error {
        /// The status code.
        status: u16,
        /// The message.
        message: String,
    },
    /// Answer this status with exactly this body (e.g. a 201 with no message in it, as some
    /// WAHA versions answered `sendText`).
    Raw {
        /// The status code.
        status: u16,
        /// The body.
        body: String,
    },
}

/// One call the double received.
#[derive(Clone, Debug)]
pub struct WahaCall {
    /// The route, when the path is one the double serves.
    pub route: Option<Route>,
    /// The method.
    pub method: String,
    /// The percent-decoded path.
    pub path: String,
    /// The raw query string.
    pub query: Option<String>,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
    /// The status answered (`None` when the double hung up).
    pub status: Option<u16>,
}

impl WahaCall {
    /// The `X-Api-Key` sent, if any.
    pub fn api_key(&self) -> Option<&str> {
        self.headers.get("x-api-key").and_then(|v| v.to_str().ok())
    }
}

/// A session as the double keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct DoubleSession {
    /// The WAHA session name.
    pub name: String,
    /// WAHA's status name.
    pub status: String,
    /// Every status it had, with the time it began (epoch ms).
    pub statuses: Vec<(String, i64)>,
    /// Its configuration as last created or updated (`{}` when none was given).
    pub config: Value,
    /// The connected account (`MeInfo`), while paired.
    pub me: Option<Value>,
    /// The QR text while `SCAN_QR_CODE`.
    pub qr: Option<String>,
}

impl DoubleSession {
    fn new(name: &str, status: &str, config: Value) -> Self {
        Self {
            name: name.to_owned(),
            status: status.to_owned(),
            statuses: vec![(status.to_owned(), now_ms())],
            config,
            me: None,
            qr: None,
        }
    }

    fn set_status(&mut self, status: &str) {
        self.status = status.to_owned();
        self.statuses.push((status.to_owned(), now_ms()));
        if status != "SCAN_QR_CODE" {
            self.qr = None;
        }
    }

    /// The `session.status` payload (`WASessionStatusBody`).
    fn status_payload(&self) -> Value {
        let statuses: Vec<Value> = self
            .statuses
            .iter()
            .map(|(status, at)| json!({"status": status, "timestamp": at}))
            .collect();
        json!({"name": self.name, "status": self.status, "statuses": statuses, "data": null})
    }

    /// WAHA's `SessionDTO`.
    fn dto(&self) -> Value {
        json!({"name": self.name, "status": self.status, "config": self.config})
    }

    /// WAHA's `SessionInfo`.
    fn info(&self) -> Value {
        json!({
            "name": self.name,
            "status": self.status,
            "config": self.config,
            "me": self.me,
            "presence": null,
            "timestamps": {"activity": self.statuses.last().map(|(_, at)| *at)},
        })
    }
}

/// One event the double emitted, to every webhook it went to.
#[derive(Clone, Debug)]
pub struct Emission {
    /// The WAHA session.
    pub session: String,
    /// The event type.
    pub event: String,
    /// The envelope posted.
    pub envelope: Value,
    /// One delivery per webhook it went to (none when no webhook takes the event).
    pub deliveries: Vec<Delivery>,
}

impl Emission {
    /// Whether every webhook acknowledged it (and there was at least one).
    pub fn acknowledged(&self) -> bool {
        !self.deliveries.is_empty() && self.deliveries.iter().all(Delivery::acknowledged)
    }

    /// The one delivery (panics unless the event went to exactly one webhook).
    pub fn delivery(&self) -> &Delivery {
        assert_eq!(
            self.deliveries.len(),
            1,
            "{} went to {} webhooks",
            self.event,
            self.deliveries.len()
        );
        &self.deliveries[0]
    }
}

/// A message the double made up and emitted.
#[derive(Clone, Debug)]
pub struct EmittedMessage {
    /// Its WAHA id.
    pub id: String,
    /// Its chat.
    pub chat: String,
    /// The events it went out as (`message` then `message.any` for someone else's; `message.any`
    /// for the session's own).
    pub emissions: Vec<Emission>,
}

/// A vote for [`WahaDouble::vote`] and [`WahaDouble::failed_vote`].
#[derive(Clone, Debug)]
pub struct VoteSpec {
    /// The poll message's WAHA id.
    pub poll_id: String,
    /// The poll's chat.
    pub chat: String,
    /// Whether the session sent the poll.
    pub poll_from_me: bool,
    /// Who votes.
    pub voter: String,
    /// Their complete selection.
    pub selected: Vec<String>,
}

struct State {
    options: WahaOptions,
    sessions: BTreeMap<String, DoubleSession>,
    calls: Vec<WahaCall>,
    faults: HashMap<Route, Fault>,
    emitted: Vec<Emission>,
    legacy_envelopes: bool,
    echo_sends: bool,
    retry_second: Duration,
}

/// An event waiting to be emitted, captured with the session's configuration and `me` at the
/// moment it happened.
struct Job {
    session: String,
    event: String,
    payload: Value,
    config: Value,
    me: Option<Value>,
    all_events: bool,
    done: Option<oneshot::Sender<Emission>>,
}

struct Inner {
    state: Mutex<State>,
    jobs: mpsc::UnboundedSender<Job>,
    connections: Mutex<Vec<AbortHandle>>,
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("the double's state")
    }

    /// Queues an event for emission after everything queued before it.
    fn queue(
        &self,
        session: &DoubleSession,
        event: &str,
        payload: Value,
        all_events: bool,
    ) -> oneshot::Receiver<Emission> {
        let (done, receiver) = oneshot::channel();
        let _ = self.jobs.send(Job {
            session: session.name.clone(),
            event: event.to_owned(),
            payload,
            config: session.config.clone(),
            me: session.me.clone(),
            all_events,
            done: Some(done),
        });
        receiver
    }
}

/// A running WAHA double (stops when dropped).
pub struct WahaDouble {
    addr: SocketAddr,
    inner: Arc<Inner>,
    emitter: WebhookEmitter,
    server: Mutex<Option<AbortHandle>>,
    worker: AbortHandle,
}

impl Drop for WahaDouble {
    fn drop(&mut self) {
        self.stop_serving();
        self.worker.abort();
    }
}

impl WahaDouble {
    /// Starts a WAHA Plus double that accepts any API key.
    pub async fn start() -> Self {
        Self::start_with(WahaOptions::default()).await
    }

    /// Starts a double with `options`.
    pub async fn start_with(options: WahaOptions) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the WAHA double");
        let addr = listener.local_addr().expect("addr");
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                options,
                sessions: BTreeMap::new(),
                calls: Vec::new(),
                faults: HashMap::new(),
                emitted: Vec::new(),
                legacy_envelopes: false,
                echo_sends: true,
                retry_second: Duration::from_millis(10),
            }),
            jobs,
            connections: Mutex::new(Vec::new()),
        });
        let emitter = WebhookEmitter::new();
        let worker = {
            let (inner, emitter) = (inner.clone(), emitter.clone());
            tokio::spawn(async move {
                while let Some(mut job) = queue.recv().await {
                    let done = job.done.take();
                    let emission = emit(&inner, &emitter, &job).await;
                    if let Some(done) = done {
                        let _ = done.send(emission);
                    }
                }
            })
            .abort_handle()
        };
        let double = Self {
            addr,
            inner,
            emitter,
            server: Mutex::new(None),
            worker,
        };
        double.serve(listener);
        double
    }
}

impl WahaDouble {
    /// `http://127.0.0.1:<port>`, the value for `HERALD_WAHA_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address served on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let inner = self.inner.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let connection_inner = inner.clone();
                let connection = tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let inner = connection_inner.clone();
                        async move {
                            // An error from the service makes hyper drop the connection unanswered.
                            answer(&inner, request).await.ok_or(Hangup)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                let mut connections = inner.connections.lock().expect("connections");
                connections.retain(|c| !c.is_finished());
                connections.push(connection.abort_handle());
            }
        });
        *self.server.lock().expect("server") = Some(accept.abort_handle());
    }

    fn stop_serving(&self) {
        if let Some(accept) = self.server.lock().expect("server").take() {
            accept.abort();
        }
        for connection in self
            .inner
            .connections
            .lock()
            .expect("connections")
            .drain(..)
        {
            connection.abort();
        }
    }

    /// Stops listening and closes every open connection: calls are refused until
    /// [`Self::come_up`]. (Webhooks already queued are still emitted.)
    pub async fn go_down(&self) {
        self.stop_serving();
        // Let the aborted tasks drop their sockets before anyone connects again.
        tokio::task::yield_now().await;
    }

    /// Listens again on the same address after [`Self::go_down`].
    pub async fn come_up(&self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("rebind the WAHA double");
        self.serve(listener);
    }

    /// Makes `route` misbehave until [`Self::clear_fault`].
    pub fn set_fault(&self, route: Route, fault: Fault) {
        self.inner.state().faults.insert(route, fault);
    }

    /// Makes `route` behave again.
    pub fn clear_fault(&self, route: Route) {
        self.inner.state().faults.remove(&route);
    }

    /// Leaves `id` and `timestamp` out of every envelope from now on, as WAHA versions before
    /// envelope ids did (`true`), or puts them back (`false`).
    pub fn set_legacy_envelopes(&self, legacy: bool) {
        self.inner.state().legacy_envelopes = legacy;
    }

    /// Whether a message sent through the API comes back as a `message.any` webhook, as WAHA
    /// does (on by default).
    pub fn set_echo_sends(&self, echo: bool) {
        self.inner.state().echo_sends = echo;
    }

    /// How long one second of WAHA's retry delays lasts (10 ms by default).
    pub fn set_retry_second(&self, second: Duration) {
        self.inner.state().retry_second = second;
    }

    /// Every call received so far, in order.
    pub fn calls(&self) -> Vec<WahaCall> {
        self.inner.state().calls.clone()
    }

    /// The calls to `route`, in order.
    pub fn calls_to(&self, route: Route) -> Vec<WahaCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.route == Some(route))
            .collect()
    }

    /// A session as the double keeps it.
    pub fn session(&self, name: &str) -> Option<DoubleSession> {
        self.inner.state().sessions.get(name).cloned()
    }

    /// Every session.
    pub fn sessions(&self) -> Vec<DoubleSession> {
        self.inner.state().sessions.values().cloned().collect()
    }

    /// Every event emitted so far, in order.
    pub fn emitted(&self) -> Vec<Emission> {
        self.inner.state().emitted.clone()
    }

    /// Adds a session that exists before anyone asks (WAHA Core's `default`, say), `STOPPED`
    /// and with no configuration.
    pub fn seed_session(&self, name: &str) {
        self.inner.state().sessions.insert(
            name.to_owned(),
            DoubleSession::new(name, "STOPPED", json!({})),
        );
    }

    /// Where session `name`'s first webhook goes for `event`, with its key and retries (for
    /// [`WebhookEmitter::run_batch`]).
    pub fn webhook_target(&self, name: &str, event: &str) -> Option<WebhookTarget> {
        let state = self.inner.state();
        let session = state.sessions.get(name)?;
        WebhookTarget::from_config(&session.config, event, false, state.retry_second)
            .into_iter()
            .next()
    }

    /// The emitter the double posts with.
    pub fn emitter(&self) -> &WebhookEmitter {
        &self.emitter
    }

    /// Changes session `name`'s status to `status` (any WAHA name, known to Herald or not) and
    /// emits `session.status`.
    pub async fn set_status(&self, name: &str, status: &str) -> Emission {
        let queued = self.with_session(name, |inner, session| {
            session.set_status(status);
            inner.queue(session, "session.status", session.status_payload(), false)
        });
        queued.await.expect("the emitter runs")
    }

    /// Moves session `name` to `SCAN_QR_CODE`, serving `qr` as its QR text.
    pub async fn show_qr(&self, name: &str, qr: &str) -> Emission {
        let queued = self.with_session(name, |inner, session| {
            session.set_status("SCAN_QR_CODE");
            session.qr = Some(qr.to_owned());
            inner.queue(session, "session.status", session.status_payload(), false)
        });
        queued.await.expect("the emitter runs")
    }

    /// Pairs session `name` with account `me_id` (e.g. `11111111111@c.us`): `WORKING`, with `me`.
    pub async fn pair(&self, name: &str, me_id: &str) -> Emission {
        let queued = self.with_session(name, |inner, session| {
            session.me = Some(json!({"id": me_id, "pushName": "WAHA double"}));
            session.set_status("WORKING");
            inner.queue(session, "session.status", session.status_payload(), false)
        });
        queued.await.expect("the emitter runs")
    }

    /// Walks session `name` from where it is through `SCAN_QR_CODE` (serving `qr`) to `WORKING`
    /// as `me_id`.
    pub async fn walk_to_working(&self, name: &str, qr: &str, me_id: &str) -> Vec<Emission> {
        vec![self.show_qr(name, qr).await, self.pair(name, me_id).await]
    }

    /// Someone (`from`) writes `text` to session `name`: `message` and `message.any`.
    pub async fn inbound_text(&self, name: &str, from: &str, text: &str) -> EmittedMessage {
        self.inbound(name, from, text, json!({"type": "chat"}))
            .await
    }

    /// Someone (`from`) sends session `name` a poll: `message` and `message.any`.
    pub async fn inbound_poll(
        &self,
        name: &str,
        from: &str,
        question: &str,
        options: &[&str],
        multiple_answers: bool,
    ) -> EmittedMessage {
        self.inbound(
            name,
            from,
            "",
            poll_data(question, options, multiple_answers),
        )
        .await
    }

    async fn inbound(&self, name: &str, from: &str, body: &str, data: Value) -> EmittedMessage {
        let id = message_id(false, from);
        let queued = self.with_session(name, |inner, session| {
            let me = session
                .me
                .as_ref()
                .and_then(|me| me.get("id"))
                .and_then(Value::as_str);
            let payload = message_payload(&id, from, me, false, "app", body, data);
            vec![
                inner.queue(session, "message", payload.clone(), false),
                inner.queue(session, "message.any", payload, false),
            ]
        });
        let mut emissions = Vec::new();
        for receiver in queued {
            emissions.push(receiver.await.expect("the emitter runs"));
        }
        EmittedMessage {
            id,
            chat: from.to_owned(),
            emissions,
        }
    }

    /// The session's owner writes `text` to `to` from the phone: `message.any` with `fromMe`.
    pub async fn own_text(&self, name: &str, to: &str, text: &str) -> EmittedMessage {
        let id = message_id(true, to);
        let queued = self.with_session(name, |inner, session| {
            let me = session
                .me
                .as_ref()
                .and_then(|me| me.get("id"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let payload = message_payload(
                &id,
                me,
                Some(to),
                true,
                "app",
                text,
                json!({"type": "chat"}),
            );
            inner.queue(session, "message.any", payload, false)
        });
        EmittedMessage {
            id,
            chat: to.to_owned(),
            emissions: vec![queued.await.expect("the emitter runs")],
        }
    }

    /// A receipt for message `id` in `chat`: `message.ack` at level `ack` (`1` server, `2`
    /// device, `3` read, `4` played, `-1` error).
    pub async fn ack(&self, name: &str, id: &str, chat: &str, ack: i64) -> Emission {
        let queued = self.with_session(name, |inner, session| {
            let me = session
                .me
                .as_ref()
                .and_then(|me| me.get("id"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let from_me = id.starts_with("true_");
            let (from, to) = if from_me { (me, chat) } else { (chat, me) };
            let payload = json!({
                "id": id, "from": from, "to": to, "participant": null, "fromMe": from_me,
                "ack": ack, "ackName": ack_name(ack), "_data": {},
            });
            inner.queue(session, "message.ack", payload, false)
        });
        queued.await.expect("the emitter runs")
    }

    /// Someone's vote on a poll: `poll.vote`.
    pub async fn vote(&self, name: &str, vote: &VoteSpec) -> Emission {
        self.emit_vote(name, "poll.vote", vote).await
    }

    /// A vote WAHA could not decrypt: `poll.vote.failed` (WAHA sends the selection empty).
    pub async fn failed_vote(&self, name: &str, vote: &VoteSpec) -> Emission {
        let failed = VoteSpec {
            selected: Vec::new(),
            ..vote.clone()
        };
        self.emit_vote(name, "poll.vote.failed", &failed).await
    }

    async fn emit_vote(&self, name: &str, event: &str, vote: &VoteSpec) -> Emission {
        let queued = self.with_session(name, |inner, session| {
            let me = session.me.as_ref().and_then(|me| me.get("id")).and_then(Value::as_str).unwrap_or("");
            let (poll_from, poll_to) = if vote.poll_from_me { (me, vote.chat.as_str()) } else { (vote.chat.as_str(), me) };
            let voter_is_me = vote.voter == me;
            let group = vote.chat.ends_with("@g.us");
            let (vote_from, vote_to) = if voter_is_me { (me, vote.chat.as_str()) } else if group { (vote.chat.as_str(), me) } else { (vote.voter.as_str(), me) };
            let payload = json!({
                "poll": {"id": vote.poll_id, "to": poll_to, "from": poll_from, "fromMe": vote.poll_from_me},
                "vote": {
                    "id": message_id(voter_is_me, &vote.chat),
                    "selectedOptions": vote.selected,
                    "timestamp": now_ms() / 1000,
                    "to": vote_to,
                    "from": vote_from,
                    "fromMe": voter_is_me,
                    "participant": if group { Value::from(vote.voter.as_str()) } else { Value::Null },
                },
                "_data": {},
            });
            inner.queue(session, event, payload, false)
        });
        queued.await.expect("the emitter runs")
    }

    /// Emits `event` with `payload` for session `name` to the webhooks subscribed to it.
    pub async fn emit(&self, name: &str, event: &str, payload: Value) -> Emission {
        let queued = self.with_session(name, |inner, session| {
            inner.queue(session, event, payload, false)
        });
        queued.await.expect("the emitter runs")
    }

    /// Emits `event` to every webhook of session `name`, subscribed or not (an event type Herald
    /// never asked for, as a hand-edited WAHA configuration would send).
    pub async fn emit_unsubscribed(&self, name: &str, event: &str, payload: Value) -> Emission {
        let queued = self.with_session(name, |inner, session| {
            inner.queue(session, event, payload, true)
        });
        queued.await.expect("the emitter runs")
    }

    /// Posts a delivery's exact bytes again (a duplicate), once.
    pub async fn resend(&self, delivery: &Delivery) -> Attempt {
        self.emitter.resend(delivery).await
    }

    fn with_session<T>(
        &self,
        name: &str,
        change: impl FnOnce(&Inner, &mut DoubleSession) -> T,
    ) -> T {
        let mut state = self.inner.state();
        let session = state
            .sessions
            .get_mut(name)
            .unwrap_or_else(|| panic!("the WAHA double has no session {name}"));
        change(&self.inner, session)
    }
}

/// Emits one queued event to its webhooks, one after the other, and records it.
async fn emit(inner: &Inner, emitter: &WebhookEmitter, job: &Job) -> Emission {
    let (legacy, second) = {
        let state = inner.state();
        (state.legacy_envelopes, state.retry_second)
    };
    let envelope = envelope(
        &job.session,
        &job.event,
        job.payload.clone(),
        job.me.as_ref(),
        legacy,
    );
    let body = Bytes::from(serde_json::to_vec(&envelope).expect("json"));
    let mut deliveries = Vec::new();
    for target in WebhookTarget::from_config(&job.config, &job.event, job.all_events, second) {
        deliveries.push(emitter.deliver(&target, body.clone()).await);
    }
    let emission = Emission {
        session: job.session.clone(),
        event: job.event.clone(),
        envelope,
        deliveries,
    };
    inner.state().emitted.push(emission.clone());
    emission
}

/// The double hung up on purpose ([`Fault::Hangup`]).
#[derive(Debug)]
struct Hangup;

impl std::fmt::Display for Hangup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("closing the connection on purpose")
    }
}

impl std::error::Error for Hangup {}

/// An answer: status and JSON body (`None`: empty body).
type Answer = (u16, Option<Value>);

/// WAHA's (NestJS) error shape.
fn nest_error(status: u16, message: Value) -> Answer {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    (
        status,
        Some(json!({"statusCode": status, "message": message, "error": reason})),
    )
}

fn unknown_session(name: &str) -> Answer {
    nest_error(
        404,
        json!(format!("We didn't find a session with name '{name}'. Please start it first by using POST /api/sessions/{name}/start request")),
    )
}

async fn answer(inner: &Inner, request: Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let headers = request.headers().clone();
    let raw = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let found = Route::find(&method, &segments);
    let parsed: Result<Value, String> = if raw.iter().all(u8::is_ascii_whitespace) {
        Ok(Value::Null)
    } else {
        serde_json::from_slice(&raw).map_err(|e| e.to_string())
    };
    let mut call = WahaCall {
        route: found.as_ref().map(|(route, _)| *route),
        method: method.clone(),
        path: format!("/{}", segments.join("/")),
        query: query.clone(),
        headers: headers.clone(),
        body: parsed.clone().unwrap_or(Value::Null),
        status: None,
    };

    let (expected_key, fault) = {
        let state = inner.state();
        let fault = call
            .route
            .and_then(|route| state.faults.get(&route).cloned());
        (state.options.api_key.clone(), fault)
    };
    let unauthorized = expected_key.is_some_and(|key| call.api_key() != Some(key.as_str()));
    let result: Option<Answer> = if unauthorized {
        Some(nest_error(401, json!("Unauthorized")))
    } else {
        match fault.clone() {
            Some(Fault::Hangup) => None,
            Some(Fault::Error { status, message }) => Some(nest_error(status, json!(message))),
            Some(Fault::Raw { status, body }) => Some((status, Some(Value::String(body)))),
            Some(Fault::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                Some(route(
                    inner,
                    &method,
                    &path,
                    found,
                    parsed,
                    query.as_deref(),
                ))
            }
            None => Some(route(
                inner,
                &method,
                &path,
                found,
                parsed,
                query.as_deref(),
            )),
        }
    };
    let fault_used = if unauthorized { None } else { fault };
    call.status = result.as_ref().map(|(status, _)| *status);
    inner.state().calls.push(call);
    let (status, body) = result?;
    let raw_fault = matches!(&fault_used, Some(Fault::Raw { .. }));
    let mut response = Response::new(Full::new(match &body {
        Some(Value::String(text)) if raw_fault => Bytes::from(text.clone()),
        Some(body) => Bytes::from(serde_json::to_vec(body).expect("json")),
        None => Bytes::new(),
    }));
    *response.status_mut() = http::StatusCode::from_u16(status).expect("status");
    if body.is_some() {
        response.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    Some(response)
}

/// Checks the body against the document, then serves the route.
fn route(
    inner: &Inner,
    method: &str,
    path: &str,
    found: Option<(Route, Option<String>)>,
    body: Result<Value, String>,
    query: Option<&str>,
) -> Answer {
    let Some((route, session)) = found else {
        return nest_error(404, json!(format!("Cannot {method} {path}")));
    };
    let body = match (schema::request_schema(route.template(), method), body) {
        (None, _) => Value::Null,
        (Some(_), Err(error)) => {
            return nest_error(400, json!(format!("Unexpected JSON: {error}")))
        }
        (Some(schema), Ok(body)) => {
            if !body.is_object() {
                return nest_error(400, json!(["body must be an object"]));
            }
            let problems = violations(schema, &body, Strictness::Request);
            if !problems.is_empty() {
                return nest_error(400, json!(problems));
            }
            body
        }
    };
    let mut state = inner.state();
    let session = session.unwrap_or_default();
    match route {
        Route::ListSessions => {
            let all = query.is_some_and(|q| q.split('&').any(|p| p == "all=true"));
            let list: Vec<Value> = state
                .sessions
                .values()
                .filter(|s| all || s.status != "STOPPED")
                .map(DoubleSession::info)
                .collect();
            (200, Some(Value::Array(list)))
        }
        Route::CreateSession => {
            let name = body
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| match state.options.tier {
                    Tier::Core => "default".to_owned(),
                    Tier::Plus => {
                        format!("session_{}", ulid::Ulid::new().to_string().to_lowercase())
                    }
                });
            if state.options.tier == Tier::Core && name != "default" {
                return nest_error(422, json!("WAHA Core support only 'default' session. If you want to run more then one WhatsApp account - please get WAHA PLUS version. Check this out: https://waha.devlike.pro/docs/how-to/waha-plus/"));
            }
            if state.sessions.contains_key(&name) {
                return nest_error(
                    422,
                    json!(format!(
                        "Session '{name}' already exists. Use PUT to update it."
                    )),
                );
            }
            let start = body.get("start").and_then(Value::as_bool).unwrap_or(true);
            let config = body.get("config").cloned().unwrap_or_else(|| json!({}));
            let session =
                DoubleSession::new(&name, if start { "STARTING" } else { "STOPPED" }, config);
            if start {
                drop(inner.queue(&session, "session.status", session.status_payload(), false));
            }
            let dto = session.dto();
            state.sessions.insert(name, session);
            (201, Some(dto))
        }
        Route::GetSession => match state.sessions.get(&session) {
            Some(s) => (200, Some(s.info())),
            None => unknown_session(&session),
        },
        Route::UpdateSession => match state.sessions.get_mut(&session) {
            Some(s) => {
                if let Some(config) = body.get("config") {
                    s.config = config.clone();
                }
                (200, Some(s.dto()))
            }
            None => unknown_session(&session),
        },
        Route::DeleteSession => match state.sessions.remove(&session) {
            Some(_) => (200, None),
            None => unknown_session(&session),
        },
        Route::StartSession => match state.sessions.get_mut(&session) {
            Some(s) => {
                if matches!(s.status.as_str(), "STOPPED" | "FAILED") {
                    s.set_status("STARTING");
                    drop(inner.queue(s, "session.status", s.status_payload(), false));
                }
                (201, Some(s.dto()))
            }
            None => unknown_session(&session),
        },
        Route::StopSession => match state.sessions.get_mut(&session) {
            Some(s) => {
                if s.status != "STOPPED" {
                    s.set_status("STOPPED");
                    drop(inner.queue(s, "session.status", s.status_payload(), false));
                }
                (201, Some(s.dto()))
            }
            None => unknown_session(&session),
        },
        Route::Me => match state.sessions.get(&session) {
            Some(s) if s.status == "WORKING" => (200, s.me.clone()),
            Some(_) => (200, None),
            None => unknown_session(&session),
        },
        Route::Qr => {
            let format = query.and_then(|q| q.split('&').find_map(|p| p.strip_prefix("format=")));
            if !matches!(format, Some("raw" | "image")) {
                return nest_error(
                    400,
                    json!(["format must be one of the following values: image, raw"]),
                );
            }
            match state.sessions.get(&session) {
                None => unknown_session(&session),
                Some(s) => match (&s.qr, s.status.as_str()) {
                    (Some(qr), "SCAN_QR_CODE") => {
                        if format == Some("raw") {
                            (200, Some(json!({"value": qr})))
                        } else {
                            let data = base64::engine::general_purpose::STANDARD.encode(qr.as_bytes());
                            (200, Some(json!({"mimetype": "image/png", "data": data})))
                        }
                    }
                    (_, status) => nest_error(422, json!(format!("Can get QR code only in SCAN_QR_CODE status. The current status is '{status}'"))),
                },
            }
        }
        Route::SendText | Route::SendPoll | Route::SendPollVote => {
            let name = body
                .get("session")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let echo = state.echo_sends;
            let Some(s) = state.sessions.get(&name) else {
                return unknown_session(&name);
            };
            if s.status != "WORKING" {
                return nest_error(422, json!(format!("Session status is not as expected. Try again later or restart the session. Session status: {}", s.status)));
            }
            let chat = body
                .get("chatId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let me =
                s.me.as_ref()
                    .and_then(|me| me.get("id"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
            let message = match route {
                Route::SendText => {
                    let text = body.get("text").and_then(Value::as_str).unwrap_or_default();
                    message_payload(
                        &message_id(true, chat),
                        me,
                        Some(chat),
                        true,
                        "api",
                        text,
                        json!({"type": "chat"}),
                    )
                }
                Route::SendPoll => {
                    let poll = &body["poll"];
                    let question = poll.get("name").and_then(Value::as_str).unwrap_or_default();
                    let options: Vec<&str> = poll
                        .get("options")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let multiple = poll
                        .get("multipleAnswers")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    message_payload(
                        &message_id(true, chat),
                        me,
                        Some(chat),
                        true,
                        "api",
                        "",
                        poll_data(question, &options, multiple),
                    )
                }
                _ => return (201, None),
            };
            if echo {
                drop(inner.queue(s, "message.any", message.clone(), false));
            }
            (201, Some(message))
        }
    }
}

/// A WAHA message id: `{fromMe}_{chat}_{id}`.
fn message_id(from_me: bool, chat: &str) -> String {
    format!("{from_me}_{chat}_{}", ulid::Ulid::new())
}

/// WAHA's names of its ack levels.
fn ack_name(ack: i64) -> &'static str {
    match ack {
        -1 => "ERROR",
        0 => "PENDING",
        1 => "SERVER",
        2 => "DEVICE",
        3 => "READ",
        _ => "PLAYED",
    }
}

/// A poll in WEBJS's raw `_data`.
fn poll_data(question: &str, options: &[&str], multiple_answers: bool) -> Value {
    let options: Vec<Value> = options
        .iter()
        .enumerate()
        .map(|(index, name)| json!({"name": name, "localId": index}))
        .collect();
    json!({
        "type": "poll_creation",
        "pollName": question,
        "pollOptions": options,
        "pollSelectableOptionsCount": if multiple_answers { 0 } else { 1 },
    })
}

/// A `WAMessage`: `from` is the chat for someone else's message and the session's account for
/// its own; `to` the other way round.
pub(crate) fn message_payload(
    id: &str,
    from: &str,
    to: Option<&str>,
    from_me: bool,
    source: &str,
    body: &str,
    data: Value,
) -> Value {
    json!({
        "id": id,
        "timestamp": now_ms() / 1000,
        "from": from,
        "fromMe": from_me,
        "source": source,
        "to": to,
        "participant": null,
        "body": body,
        "hasMedia": false,
        "media": null,
        "mediaUrl": null,
        "ack": if from_me { 1 } else { 2 },
        "ackName": if from_me { "SERVER" } else { "DEVICE" },
        "author": null,
        "location": null,
        "vCards": [],
        "_data": data,
        "replyTo": null,
    })
}
