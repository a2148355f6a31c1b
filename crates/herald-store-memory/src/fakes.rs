//! Fakes of the ports besides the store, and a [`Harness`] that wires them with a
//! [`MemoryStore`] into a [`Gateway`]: everything a use-case test needs, with no database, no
//! network and no async runtime ([`block_on`] polls a use case to its end on the test's own
//! thread).

use crate::MemoryStore;
use async_trait::async_trait;
use herald_domain::event::Me;
use herald_domain::gateway::Gateway;
use herald_domain::ids::{ApiKeyId, OrgId};
use herald_domain::poll::Poll;
use herald_domain::ports::{
    ChangeListener, CipherError, Clock, Engine, EngineError, KeyMinter, Pause, SealedSecret,
    SecretCipher, StatusReport,
};
use herald_domain::session::{Session, SessionStatus};
use herald_domain::webhook::WebhookSecret;
use herald_domain::Millis;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

/// Runs a future to completion on this thread. The memory store and the fakes never wait on
/// anything, so a use case finishes in one go; a future that does wait is woken as usual.
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(output) => return output,
            std::task::Poll::Pending => std::thread::park(),
        }
    }
}

/// Time that moves only when told: the [`Clock`] reads it, and the [`Pause`] moves it forward
/// by the time asked for instead of sleeping, so a wait is instant and exact.
#[derive(Debug)]
pub struct ManualTime {
    now: AtomicI64,
    pauses: AtomicU64,
}

impl ManualTime {
    /// Where a new `ManualTime` starts: 2023-11-14T22:13:20Z.
    pub const START: Millis = 1_700_000_000_000;

    /// Time at [`Self::START`].
    pub fn new() -> Self {
        Self::at(Self::START)
    }

    /// Time at `now`.
    pub fn at(now: Millis) -> Self {
        Self {
            now: AtomicI64::new(now),
            pauses: AtomicU64::new(0),
        }
    }

    /// Sets the time.
    pub fn set(&self, now: Millis) {
        self.now.store(now, Ordering::SeqCst);
    }

    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: Millis) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// How many times [`Pause::pause`] was called.
    pub fn pauses(&self) -> u64 {
        self.pauses.load(Ordering::SeqCst)
    }
}

impl Default for ManualTime {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualTime {
    fn now_ms(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Pause for ManualTime {
    async fn pause(&self, ms: u64) {
        self.pauses.fetch_add(1, Ordering::SeqCst);
        self.advance(Millis::try_from(ms).unwrap_or(Millis::MAX));
    }
}

/// A reversible stand-in for the XChaCha20 cipher: sealed text is `sealed:` and the hex of the
/// plaintext. Anything else fails to open, as tampered data would.
#[derive(Debug, Default)]
pub struct FakeCipher;

impl FakeCipher {
    const PREFIX: &'static str = "sealed:";
}

impl SecretCipher for FakeCipher {
    fn seal(&self, plaintext: &[u8]) -> SealedSecret {
        let hex: String = plaintext.iter().map(|b| format!("{b:02x}")).collect();
        SealedSecret(format!("{}{hex}", Self::PREFIX))
    }

    fn open(&self, sealed: &SealedSecret) -> Result<Vec<u8>, CipherError> {
        let bad = || CipherError("not sealed by the fake cipher".into());
        let hex = sealed.0.strip_prefix(Self::PREFIX).ok_or_else(bad)?;
        if hex.len() % 2 != 0 || !hex.is_ascii() {
            return Err(bad());
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad()))
            .collect()
    }
}

/// Mints numbered tokens (`hrld_test_1`, …), hashes by prefixing `hash:`, and fills generated
/// webhook secrets with a counter so each differs.
#[derive(Debug, Default)]
pub struct FakeMinter {
    minted: AtomicU64,
}

impl KeyMinter for FakeMinter {
    fn mint_token(&self) -> String {
        format!(
            "hrld_test_{}",
            self.minted.fetch_add(1, Ordering::SeqCst) + 1
        )
    }

    fn hash_token(&self, token: &str) -> String {
        format!("hash:{token}")
    }

    fn secret_bytes(&self) -> [u8; WebhookSecret::GENERATED_BYTES] {
        let n = self.minted.fetch_add(1, Ordering::SeqCst);
        let mut bytes = [0u8; WebhookSecret::GENERATED_BYTES];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (n as u8).wrapping_add(i as u8);
        }
        bytes
    }
}

#[derive(Debug)]
struct Script {
    start: Vec<StatusReport>,
    failure: Option<EngineError>,
    calls: Vec<String>,
    sent: u64,
}

/// A scriptable engine. By default a started session comes up `WORKING` as
/// [`FakeEngine::ACCOUNT`], and every send succeeds with a numbered message id
/// (`3EB0FAKE0001`, …). [`FakeEngine::fail_next`] makes the next call fail; every call is
/// recorded ([`FakeEngine::calls`]).
#[derive(Debug)]
pub struct FakeEngine {
    script: Mutex<Script>,
}

impl Default for FakeEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeEngine {
    /// The account a started session is connected as.
    pub const ACCOUNT: &'static str = "15550000001@c.us";

    /// An engine that brings sessions up `WORKING`.
    pub fn new() -> Self {
        Self {
            script: Mutex::new(Script {
                start: vec![StatusReport::new(
                    SessionStatus::Working,
                    Some(Me {
                        id: Self::ACCOUNT.into(),
                    }),
                )],
                failure: None,
                calls: Vec::new(),
                sent: 0,
            }),
        }
    }

    /// What `start` reports from now on.
    pub fn starts_with(&self, reports: Vec<StatusReport>) {
        self.script().start = reports;
    }

    /// The next call fails with `error`.
    pub fn fail_next(&self, error: EngineError) {
        self.script().failure = Some(error);
    }

    /// Every call so far, as `method chat…` lines.
    pub fn calls(&self) -> Vec<String> {
        self.script().calls.clone()
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a call; its scripted failure, if one is due.
    fn call(&self, line: String) -> Result<(), EngineError> {
        let mut script = self.script();
        script.calls.push(line);
        script.failure.take().map_or(Ok(()), Err)
    }

    fn message_id(&self) -> String {
        let mut script = self.script();
        script.sent += 1;
        format!("3EB0FAKE{:04}", script.sent)
    }
}

#[async_trait]
impl Engine for FakeEngine {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn start(&self, session: &Session) -> Result<Vec<StatusReport>, EngineError> {
        self.call(format!("start {}", session.engine_session))?;
        Ok(self.script().start.clone())
    }

    async fn stop(&self, session: &Session) -> Result<(), EngineError> {
        self.call(format!("stop {}", session.engine_session))
    }

    async fn me(&self, session: &Session) -> Result<Option<Me>, EngineError> {
        self.call(format!("me {}", session.engine_session))?;
        Ok(session.me.clone())
    }

    async fn qr(&self, session: &Session) -> Result<String, EngineError> {
        self.call(format!("qr {}", session.engine_session))?;
        Ok(format!("qr:{}", session.engine_session))
    }

    async fn send_text(
        &self,
        _session: &Session,
        chat: &str,
        text: &str,
        _reply_to: Option<&str>,
    ) -> Result<String, EngineError> {
        self.call(format!("send_text {chat} {text}"))?;
        Ok(self.message_id())
    }

    async fn send_poll(
        &self,
        _session: &Session,
        chat: &str,
        poll: &Poll,
    ) -> Result<String, EngineError> {
        self.call(format!("send_poll {chat} {}", poll.question()))?;
        Ok(self.message_id())
    }

    async fn send_vote(
        &self,
        _session: &Session,
        chat: &str,
        poll_message_id: &str,
        options: &[String],
    ) -> Result<String, EngineError> {
        self.call(format!(
            "send_vote {chat} {poll_message_id} [{}]",
            options.join(",")
        ))?;
        Ok(self.message_id())
    }
}

/// A change listener that remembers what it was told, in order: `committed org`,
/// `requeued org`, `revoked key`.
#[derive(Debug, Default)]
pub struct Recorder {
    heard: Mutex<Vec<String>>,
}

impl Recorder {
    /// Everything heard so far.
    pub fn heard(&self) -> Vec<String> {
        self.heard.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn note(&self, line: String) {
        self.heard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }
}

impl ChangeListener for Recorder {
    fn events_committed(&self, org: &OrgId) {
        self.note(format!("committed {org}"));
    }

    fn deliveries_requeued(&self, org: &OrgId) {
        self.note(format!("requeued {org}"));
    }

    fn api_key_revoked(&self, id: &ApiKeyId) {
        self.note(format!("revoked {id}"));
    }
}

/// A [`Gateway`] over a [`MemoryStore`] and the fakes, with each part at hand for the test to
/// drive or inspect.
pub struct Harness {
    /// The use cases.
    pub gateway: Gateway,
    /// Their store.
    pub store: Arc<MemoryStore>,
    /// Their clock and pause (the store's retention sweep reads it too).
    pub time: Arc<ManualTime>,
    /// Their engine.
    pub engine: Arc<FakeEngine>,
    /// Their change listener.
    pub listener: Arc<Recorder>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// Everything fresh; private webhook destinations refused, as on a server.
    pub fn new() -> Self {
        let time = Arc::new(ManualTime::new());
        Self::with_pause(time.clone(), time)
    }

    /// Like [`Self::new`] but waiting through `pause` (a test that acts while a use case
    /// waits), with `time` as the clock.
    pub fn with_pause(time: Arc<ManualTime>, pause: Arc<dyn Pause>) -> Self {
        let store = Arc::new(MemoryStore::with_clock(time.clone()));
        let engine = Arc::new(FakeEngine::new());
        let listener = Arc::new(Recorder::default());
        let gateway = Gateway {
            store: store.clone(),
            cipher: Arc::new(FakeCipher),
            clock: time.clone(),
            pause,
            engine: engine.clone(),
            minter: Arc::new(FakeMinter::default()),
            listener: listener.clone(),
            private_destinations_allowed: false,
        };
        Self {
            gateway,
            store,
            time,
            engine,
            listener,
        }
    }
}
