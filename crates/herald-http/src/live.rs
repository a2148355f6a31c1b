//! Live fan-out of the event log to WebSocket subscribers, one [`Hub`] per process.
//!
//! A single tailer task follows the log in its total order ([`LogPosition`]), reading only
//! settled events (see `herald_domain::events_log`), and hands each to the subscribers of its
//! organization whose filters match, through bounded queues. It is woken by commits: in-process
//! ones through the `wake` signal given to [`Hub::new`], other replicas' through Postgres
//! `NOTIFY` (the wiring bumps the same signal), and it also polls once a second in case a wake-up
//! was lost. Nothing is pushed from the request that committed: every replica sees the same log
//! in the same order, whoever wrote it.
//!
//! The hub's cursor and each subscriber's registration move under one lock, so a subscriber
//! learns exactly where its live feed starts ([`Subscription::live_from`]); whatever it needs
//! before that (a `since` replay) it reads from the store. A subscriber whose queue is full —
//! more than [`Hub::QUEUE`] events behind — is dropped and marked lagged rather than buffered
//! without bound.
//!
//! A [`Feed`] turns a subscription into one ordered stream — the `since` replay from the store,
//! then the live queue — with neither a gap nor a duplicate where they meet. The WebSocket and
//! the in-process event stream of an embedding host both read through it.

use herald_domain::events_log::{LogFilter, LogPosition, LogQuery, LoggedEvent, MAX_PAGE};
use herald_domain::ports::Store;
use herald_domain::{EventId, OrgId, StoreError};
use hyper_tungstenite::tungstenite::Utf8Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, watch, OnceCell};

/// One event on its way to subscribers: its place in the log and the frame to send.
#[derive(Debug)]
pub struct LiveEvent {
    /// Where it is in the log.
    pub position: LogPosition,
    /// The event's id (what a reader passes as `since` to resume after it).
    pub id: EventId,
    /// The envelope JSON, shared by every subscriber.
    pub frame: Utf8Bytes,
}

struct Slot {
    id: u64,
    filter: LogFilter,
    queue: mpsc::Sender<Arc<LiveEvent>>,
    lagged: Arc<AtomicBool>,
}

#[derive(Default)]
struct State {
    cursor: LogPosition,
    subscribers: HashMap<OrgId, Vec<Slot>>,
    next_id: u64,
}

struct Inner {
    lagged_total: AtomicU64,
    store: Arc<dyn Store>,
    wake: Mutex<Option<watch::Receiver<u64>>>,
    started: OnceCell<()>,
    state: Mutex<State>,
    closed: watch::Sender<bool>,
}

/// The process's live event fan-out.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// A registered subscriber: its queue and where its feed starts.
pub struct Subscription {
    /// Whose events.
    pub organization: OrgId,
    /// Which of them.
    pub filter: LogFilter,
    /// Only events after this position are wanted (the `since` event, or the log's head when
    /// the subscriber connected).
    pub start: LogPosition,
    /// The queue carries every matching event after this position; earlier ones come from the
    /// store.
    pub live_from: LogPosition,
    /// The live feed.
    pub queue: mpsc::Receiver<Arc<LiveEvent>>,
    lagged: Arc<AtomicBool>,
    id: u64,
    hub: Weak<Inner>,
}

impl Subscription {
    /// Whether the hub dropped this subscriber for falling more than [`Hub::QUEUE`] events
    /// behind.
    pub fn lagged(&self) -> bool {
        self.lagged.load(Ordering::Acquire)
    }

    /// Registers again after a lag during replay: a fresh queue, a new `live_from`, and the
    /// lag forgotten. `false` if the hub is gone.
    pub fn renew(&mut self) -> bool {
        let Some(inner) = self.hub.upgrade() else {
            return false;
        };
        inner.unregister(&self.organization, self.id);
        let (id, queue, lagged, live_from) = inner.register(&self.organization, &self.filter);
        self.id = id;
        self.queue = queue;
        self.lagged = lagged;
        self.live_from = live_from;
        true
    }
}

/// Replays restarted because the live queue overflowed meanwhile, before a feed gives up.
const MAX_REPLAY_ROUNDS: u32 = 8;

/// Why a [`Feed`] ended.
#[derive(Debug)]
pub enum FeedEnd {
    /// The hub closed (the server is shutting down).
    Closed,
    /// The reader fell more than [`Hub::QUEUE`] events behind and could not catch up.
    Lagged,
    /// The store could not be read during the replay.
    Store(StoreError),
}

/// One subscriber's events in log order: first those after its start position read from the
/// store, then the live queue. Nothing at or below the last position handed out is handed out
/// again, so replay and live feed meet without a gap or a duplicate.
pub struct Feed {
    store: Arc<dyn Store>,
    subscription: Subscription,
    last: LogPosition,
    replayed: VecDeque<LiveEvent>,
    replaying: bool,
    rounds: u32,
}

impl Feed {
    /// A feed over `subscription`, replaying from `store`.
    pub fn new(store: Arc<dyn Store>, subscription: Subscription) -> Self {
        Self {
            last: subscription.start,
            store,
            subscription,
            replayed: VecDeque::new(),
            replaying: true,
            rounds: 0,
        }
    }

    /// Whose events it carries.
    pub fn organization(&self) -> &OrgId {
        &self.subscription.organization
    }

    /// Whether [`Feed::next`] would answer without waiting (a caller batching writes flushes
    /// when it would not).
    pub fn ready(&self) -> bool {
        !self.replayed.is_empty() || !self.subscription.queue.is_empty()
    }

    /// The next event of the replay from the store, or `None` once the replay is over and the
    /// feed continues live.
    pub async fn next_replayed(&mut self) -> Result<Option<Arc<LiveEvent>>, FeedEnd> {
        loop {
            if let Some(event) = self.replayed.pop_front() {
                self.last = event.position;
                return Ok(Some(Arc::new(event)));
            }
            if !self.replaying {
                return Ok(None);
            }
            self.replay_page().await?;
        }
    }

    /// The next event, replayed or live. Cancel-safe once the replay is over (a live wait
    /// dropped loses nothing).
    pub async fn next(&mut self) -> Result<Arc<LiveEvent>, FeedEnd> {
        if let Some(event) = self.next_replayed().await? {
            return Ok(event);
        }
        loop {
            let Some(event) = self.subscription.queue.recv().await else {
                return Err(if self.subscription.lagged() {
                    FeedEnd::Lagged
                } else {
                    FeedEnd::Closed
                });
            };
            if self.subscription.lagged() {
                return Err(FeedEnd::Lagged);
            }
            if event.position > self.last {
                self.last = event.position;
                return Ok(event);
            }
        }
    }

    /// Reads the next page of the replay; at its end, either switches to the live queue or —
    /// when the queue overflowed meanwhile — registers afresh and replays the difference.
    async fn replay_page(&mut self) -> Result<(), FeedEnd> {
        if self.last < self.subscription.live_from {
            let page = self
                .store
                .read_log(&LogQuery {
                    organization_id: self.subscription.organization.clone(),
                    after: self.last,
                    until: Some(self.subscription.live_from),
                    filter: self.subscription.filter.clone(),
                    limit: MAX_PAGE,
                })
                .await
                .map_err(FeedEnd::Store)?;
            if !page.events.is_empty() {
                self.replayed
                    .extend(page.events.into_iter().map(|event| LiveEvent {
                        position: event.position,
                        id: event.id,
                        frame: Utf8Bytes::from(event.envelope),
                    }));
                return Ok(());
            }
        }
        if !self.subscription.lagged() {
            self.replaying = false;
            return Ok(());
        }
        self.rounds += 1;
        if self.rounds > MAX_REPLAY_ROUNDS || !self.subscription.renew() {
            return Err(FeedEnd::Lagged);
        }
        Ok(())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(inner) = self.hub.upgrade() {
            inner.unregister(&self.organization, self.id);
        }
    }
}

impl Hub {
    /// Most events queued for one subscriber; one more and it is dropped as lagging.
    pub const QUEUE: usize = 1000;
    /// Events read from the store per query.
    const BATCH: usize = 500;
    /// How often the log is read without any wake-up (a lost `NOTIFY`, a dead listener).
    const POLL: Duration = Duration::from_secs(1);
    /// How soon the log is read again while committed events wait to settle.
    const SETTLE_POLL: Duration = Duration::from_millis(2);

    /// A hub over `store`'s log, woken whenever `wake` changes. The tailer starts with the
    /// first subscriber.
    pub fn new(store: Arc<dyn Store>, wake: Option<watch::Receiver<u64>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                lagged_total: AtomicU64::new(0),
                store,
                wake: Mutex::new(wake),
                started: OnceCell::new(),
                state: Mutex::new(State::default()),
                closed: watch::Sender::new(false),
            }),
        }
    }

    /// Registers a subscriber for `organization`'s events passing `filter`, wanting those after
    /// `since` (or, when `None`, everything from now on). The registration is complete when this
    /// returns: nothing committed afterwards can be missed.
    pub async fn subscribe(
        &self,
        organization: OrgId,
        filter: LogFilter,
        since: Option<LogPosition>,
    ) -> Result<Subscription, StoreError> {
        self.start_tailer().await?;
        let start = match since {
            Some(position) => position,
            None => self.inner.store.log_head().await?,
        };
        let (id, queue, lagged, live_from) = self.inner.register(&organization, &filter);
        Ok(Subscription {
            organization,
            filter,
            start,
            live_from,
            queue,
            lagged,
            id,
            hub: Arc::downgrade(&self.inner),
        })
    }

    /// Stops the tailer and ends every subscription (their queues close).
    pub fn close(&self) {
        self.inner.closed.send_replace(true);
        self.inner
            .state
            .lock()
            .expect("hub lock")
            .subscribers
            .clear();
    }

    /// How many subscribers are registered (for metrics and tests).
    pub fn subscribers(&self) -> usize {
        self.inner
            .state
            .lock()
            .expect("hub lock")
            .subscribers
            .values()
            .map(Vec::len)
            .sum()
    }

    /// Appends the hub's metrics (Prometheus text): current subscribers, and how many were
    /// dropped for lagging.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP herald_ws_subscribers Live WebSocket subscribers on this process.\n");
        out.push_str("# TYPE herald_ws_subscribers gauge\n");
        out.push_str(&format!("herald_ws_subscribers {}\n", self.subscribers()));
        out.push_str(
            "# HELP herald_ws_lagged_total Subscribers dropped for falling more than 1000 events behind.\n",
        );
        out.push_str("# TYPE herald_ws_lagged_total counter\n");
        out.push_str(&format!(
            "herald_ws_lagged_total {}\n",
            self.inner.lagged_total.load(Ordering::Relaxed)
        ));
    }

    async fn start_tailer(&self) -> Result<(), StoreError> {
        self.inner
            .started
            .get_or_try_init(|| async {
                let head = self.inner.store.log_head().await?;
                self.inner.state.lock().expect("hub lock").cursor = head;
                let wake = self.inner.wake.lock().expect("wake lock").take();
                tokio::spawn(tail(Arc::downgrade(&self.inner), wake));
                Ok::<_, StoreError>(())
            })
            .await
            .map(drop)
    }
}

impl Inner {
    fn register(
        &self,
        organization: &OrgId,
        filter: &LogFilter,
    ) -> (
        u64,
        mpsc::Receiver<Arc<LiveEvent>>,
        Arc<AtomicBool>,
        LogPosition,
    ) {
        let (queue, receiver) = mpsc::channel(Hub::QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        let mut state = self.state.lock().expect("hub lock");
        state.next_id += 1;
        let id = state.next_id;
        let live_from = state.cursor;
        state
            .subscribers
            .entry(organization.clone())
            .or_default()
            .push(Slot {
                id,
                filter: filter.clone(),
                queue,
                lagged: lagged.clone(),
            });
        (id, receiver, lagged, live_from)
    }

    fn unregister(&self, organization: &OrgId, id: u64) {
        let mut state = self.state.lock().expect("hub lock");
        if let Some(slots) = state.subscribers.get_mut(organization) {
            slots.retain(|s| s.id != id);
            if slots.is_empty() {
                state.subscribers.remove(organization);
            }
        }
    }

    /// Hands a batch to the matching subscribers and moves the cursor past it, atomically with
    /// respect to registrations.
    fn fan_out(&self, events: Vec<LoggedEvent>) {
        let lagged_total = &self.lagged_total;
        let mut state = self.state.lock().expect("hub lock");
        for event in events {
            let position = event.position;
            if let Some(slots) = state.subscribers.get_mut(&event.organization_id) {
                let mut live: Option<Arc<LiveEvent>> = None;
                slots.retain(|slot| {
                    if !slot.filter.accepts(event.session.as_ref(), event.event) {
                        return true;
                    }
                    let item = live
                        .get_or_insert_with(|| {
                            Arc::new(LiveEvent {
                                position,
                                id: event.id,
                                frame: Utf8Bytes::from(event.envelope.clone()),
                            })
                        })
                        .clone();
                    match slot.queue.try_send(item) {
                        Ok(()) => true,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            // Dropping the slot closes its queue; the flag says why.
                            slot.lagged.store(true, Ordering::Release);
                            lagged_total.fetch_add(1, Ordering::Relaxed);
                            false
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => false,
                    }
                });
                if slots.is_empty() {
                    state.subscribers.remove(&event.organization_id);
                }
            }
            state.cursor = position;
        }
    }
}

/// Resolves at the next wake-up; never, without a wake-up source (or once it is gone).
async fn woken(wake: &mut Option<watch::Receiver<u64>>) {
    match wake.as_mut() {
        Some(wake) => {
            if wake.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// The tailer: reads settled events after the hub's cursor and fans them out, until the hub
/// is closed or dropped.
async fn tail(hub: Weak<Inner>, mut wake: Option<watch::Receiver<u64>>) {
    let mut closed = match hub.upgrade() {
        Some(inner) => inner.closed.subscribe(),
        None => return,
    };
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(inner) = hub.upgrade() else { return };
        if *closed.borrow() {
            return;
        }
        // Marked seen *before* reading, so a commit during the read wakes the next wait.
        if let Some(wake) = wake.as_mut() {
            wake.borrow_and_update();
        }
        let cursor = inner.state.lock().expect("hub lock").cursor;
        let pause = match inner.store.tail_log(cursor, Hub::BATCH).await {
            Ok(page) => {
                backoff = Duration::from_millis(50);
                let (full, empty) = (page.events.len() >= Hub::BATCH, page.events.is_empty());
                inner.fan_out(page.events);
                if full {
                    continue;
                }
                // After events, more may be settling behind them: look again soon (a commit
                // usually wakes the tailer sooner). After nothing, only if some are settling.
                if !empty || page.unsettled.is_some() {
                    Hub::SETTLE_POLL
                } else {
                    Hub::POLL
                }
            }
            Err(error) => {
                tracing::warn!(%error, "live events: reading the log failed; retrying");
                drop(inner);
                backoff = (backoff * 2).min(Duration::from_millis(500));
                // A wake-up cuts the backoff short: something committed, or the Postgres
                // listener reconnected, so the store is back.
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => continue,
                    _ = woken(&mut wake) => continue,
                    _ = closed.wait_for(|c| *c) => return,
                }
            }
        };
        drop(inner);
        tokio::select! {
            _ = woken(&mut wake) => {}
            _ = tokio::time::sleep(pause) => {}
            _ = closed.wait_for(|c| *c) => return,
        }
    }
}
