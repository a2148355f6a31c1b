//! The dispatcher loop: claim due deliveries, attempt them, write the outcomes back.
//!
//! How it is put together:
//! - **Two lanes.** First attempts ([`Lane::Fresh`]) and retries ([`Lane::Retry`]) are claimed
//!   by separate tasks into separate worker budgets, so a dead endpoint's retry backlog never
//!   delays a fresh event of anyone else.
//! - **Batched claims under a lease.** A lane claims up to `batch` due deliveries in one query
//!   (`FOR UPDATE SKIP LOCKED` on Postgres) and leases them for the HTTP timeout + 60 s. An
//!   attempt is only started while at least the timeout + 5 s of the lease remain, and the HTTP
//!   client enforces the timeout as one hard deadline, so an attempt always ends before its lease
//!   could lapse: at most one attempt of a delivery is ever in flight.
//! - **Per-webhook cap.** A lane runs at most `per_webhook` attempts of one webhook at a time
//!   (one while the webhook has not answered yet); claimed extras wait in a local queue, and a
//!   webhook at its cap is excluded from the next claims.
//! - **Slow lane.** An attempt still running after `slow_after` leaves the lane's shared
//!   workers (its slot is freed at once) and counts against the lane's separate slow budget;
//!   its webhook is then *slow*: left out of the ordinary claims, claimed apart
//!   ([`DeliveryQueue::claim_deliveries_of`]) only while the slow budget has room, at most
//!   `slow_per_webhook` at a time. A quick answer makes it ordinary again. So hanging or slow
//!   receivers, however many, wait on capacity of their own, and the shared workers, the
//!   claims and the local queue stay free for everyone else.
//! - **Blocking work off the async workers.** Each attempt is a blocking ureq call run on one
//!   of the lane's own threads (`AttemptThreads`); the lane's budget bounds how many run at
//!   once, and so how many threads it has. No transaction is open during an HTTP call.
//! - **Batched completions.** Outcomes flow to one completer task that writes what arrives
//!   within [`DispatcherConfig::completion_linger`] of the first in one statement (Postgres) or
//!   one transaction (SQLite): the receiver already has its delivery, so only the recorded
//!   status waits.
//! - **Direct intake.** A dispatcher sharing its process (and store) with the API takes fresh
//!   deliveries straight from the transactions that create them ([`Dispatcher::direct_dispatch`],
//!   the [`DirectDispatch`] port): the store writes them leased to this dispatcher and hands
//!   them over after the commit, so the first attempt needs no claim query and no wake-up.
//!   Room is bounded ([`DispatcherConfig::direct_intake`]); past it deliveries are written
//!   unleased and claimed as usual, and a handed-over delivery whose process dies is claimed
//!   by anyone once its lease lapses.
//! - **Wake-ups, not polling.** A lane sleeps until it is woken ([`DispatcherHandle::wake`],
//!   fed by in-process commits and Postgres `NOTIFY`), until its next retry is due (asked of
//!   the store after every short claim), or until capacity frees up — and never longer than
//!   `Lease::RECHECK_MS`, which is how the lapsed leases of a dead replica are found.
//! - **Graceful stop.** On shutdown the lanes stop claiming, give back the leases of claimed
//!   work not yet started, let running attempts finish, and the completer writes every outcome
//!   before [`Dispatcher::run`] returns.

use crate::client::{Answer, Transport};
use crate::metrics::DeliveryMetrics;
use crate::sign;
use herald_domain::delivery::{
    AttemptError, AttemptOutcome, AttemptRecord, ClaimedDelivery, Lane, Lease, Settlement,
};
use herald_domain::ports::{Clock, DeliveryQueue, DirectDispatch, SecretCipher};
use herald_domain::{DeliveryId, WebhookId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify};

/// How a dispatcher runs.
#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    /// The per-attempt HTTP deadline (`HERALD_DELIVERY_TIMEOUT_MS`).
    pub timeout: Duration,
    /// Attempts of first deliveries running at once.
    pub fresh_workers: usize,
    /// Retry attempts running at once.
    pub retry_workers: usize,
    /// Attempts of one webhook running at once, per lane.
    pub per_webhook: usize,
    /// An attempt running longer than this (at most half the timeout) moves to the slow
    /// budget and makes its webhook slow (`HERALD_DELIVERY_SLOW_MS`, default 1 s).
    pub slow_after: Duration,
    /// Attempts running at once on each lane's slow budget.
    pub slow_workers: usize,
    /// Attempts of one slow webhook running at once, per lane.
    pub slow_per_webhook: usize,
    /// Most deliveries claimed per query.
    pub batch: usize,
    /// Most fresh deliveries handed over by the direct intake and not yet taken by the lane
    /// (default 1,024, independent of the workers' count). Past it the store writes them
    /// unleased and they are claimed; each one kept here saves its claim (measured in
    /// docs/delivery.md, seventh pass). What it costs: a process that dies holding them leaves
    /// that many leases to lapse (timeout + margin) before another dispatcher claims them.
    pub direct_intake: usize,
    /// How long finished deliveries and their events are kept (`HERALD_RETENTION_DAYS`).
    pub retention: Duration,
    /// How much longer than the timeout a lease lasts ([`Lease::MARGIN_MS`], 55 s). Only tests
    /// shorten it (to see a killed dispatcher's work come back quickly).
    pub lease_margin: Duration,
    /// When endpoints are disabled and their breakers open.
    pub health: herald_domain::health::HealthPolicy,
    /// How long the completer waits after an outcome for more to write with it (default
    /// 10 ms). At a few hundred deliveries a second outcomes arrive one by one, and each written
    /// alone costs a transaction of five statements on Postgres (measured: 5,674 completions
    /// for 6,500 deliveries at 500/s, a third of its statements); waiting a few milliseconds
    /// lets one transaction carry several. Only the delivery's recorded status waits: the
    /// receiver already has it, and its lease outlives the wait by far. Zero for a store whose
    /// one writer runs on the async workers (the embedded SQLite store), where a larger
    /// completion holds a worker longer: measured there, it moved the 10-webhook p99 from
    /// 1.1–1.2 ms to 1.6–3.9 ms.
    pub completion_linger: Duration,
}

impl DispatcherConfig {
    /// The defaults for an HTTP timeout of `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            fresh_workers: 64,
            retry_workers: 32,
            per_webhook: 16,
            slow_after: Duration::from_millis(1_000),
            slow_workers: 64,
            slow_per_webhook: 4,
            batch: 64,
            direct_intake: 1_024,
            retention: Duration::from_secs(7 * 24 * 3600),
            lease_margin: Duration::from_millis(Lease::MARGIN_MS as u64),
            health: herald_domain::health::HealthPolicy::default(),
            completion_linger: Duration::from_millis(10),
        }
    }

    /// How long a claim lasts.
    fn lease_ms(&self) -> i64 {
        self.timeout_ms() + self.lease_margin.as_millis().min(i64::MAX as u128) as i64
    }

    /// How much lease beyond the timeout must remain to start an attempt.
    fn start_safety_ms(&self) -> i64 {
        (self.lease_margin.as_millis() as i64 / 2).min(START_SAFETY_MS)
    }

    fn workers(&self, lane: Lane) -> usize {
        match lane {
            Lane::Fresh => self.fresh_workers.max(1),
            Lane::Retry => self.retry_workers.max(1),
        }
    }

    /// When a running attempt counts as slow: never later than half the timeout, so a hang
    /// is noticed long before it ends.
    fn slow_after(&self) -> Duration {
        self.slow_after
            .min(self.timeout / 2)
            .max(Duration::from_millis(1))
    }

    fn timeout_ms(&self) -> i64 {
        self.timeout.as_millis().min(i64::MAX as u128) as i64
    }

    /// Longest a lane sleeps: [`MAX_IDLE`], or less when a test shortened the lease margin, so
    /// that a lapsed lease (which no query announces) is still found soon after it lapses.
    fn max_idle(&self) -> Duration {
        MAX_IDLE
            .min(self.lease_margin / 2)
            .max(Duration::from_millis(100))
    }
}

/// An attempt is started only while this much lease beyond the timeout remains (or half the
/// margin, when a test shortened it).
const START_SAFETY_MS: i64 = 5_000;
/// Longest a lane sleeps without being woken: it is how leases of dead replicas that lapsed
/// are found (nothing announces a lapse), so their work is attempted again within
/// timeout + 60 s of its claim.
const MAX_IDLE: Duration = Duration::from_millis(Lease::RECHECK_MS as u64);
/// Shortest pause between two claims that found nothing they could take.
const MIN_RECHECK: Duration = Duration::from_millis(25);
/// Shortest pause when due work was left because its webhooks are at their cap.
const SATURATED_RECHECK: Duration = Duration::from_millis(250);
/// Most failing webhooks the completer remembers (see `complete_outcomes`); past it, a
/// breaker closing is noticed by the retry lane's own timer instead of a wake-up.
const MAX_FAILING_TRACKED: usize = 10_000;
/// Most outcomes written in one completion query.
const COMPLETION_BATCH: usize = 512;
/// How often the slow lane looks for work when no slow attempt has ended meanwhile.
const SLOW_RECHECK: Duration = Duration::from_millis(500);
/// How long a lane remembers a webhook it has not attempted since.
const STANDING_TTL: Duration = Duration::from_secs(600);

/// Wakes a running dispatcher and reads its metrics; cheap to clone.
#[derive(Clone)]
pub struct DispatcherHandle {
    fresh: Arc<Notify>,
    retry: Arc<Notify>,
    metrics: Arc<DeliveryMetrics>,
}

impl DispatcherHandle {
    /// New work may be due: both lanes look at once.
    pub fn wake(&self) {
        self.fresh.notify_one();
        self.retry.notify_one();
    }

    /// New first deliveries were committed: only the fresh lane looks.
    pub fn wake_fresh(&self) {
        self.fresh.notify_one();
    }

    /// Retries were made due (a manual retry or recovery): only the retry lane looks.
    pub fn wake_retry(&self) {
        self.retry.notify_one();
    }

    /// The dispatcher's metrics.
    pub fn metrics(&self) -> &Arc<DeliveryMetrics> {
        &self.metrics
    }

    fn notify(&self, lane: Lane) -> &Arc<Notify> {
        match lane {
            Lane::Fresh => &self.fresh,
            Lane::Retry => &self.retry,
        }
    }
}

/// The dispatcher, generic over the ports it drives.
pub struct Dispatcher {
    shared: Arc<Shared>,
    /// The fresh lane's direct intake, once [`Dispatcher::direct_dispatch`] opened it.
    direct: Option<(Arc<DirectIntake>, mpsc::UnboundedReceiver<ClaimedDelivery>)>,
}

/// The fresh lane's end of [`DirectDispatch`]: room for [`DispatcherConfig::direct_intake`]
/// deliveries, counted from reservation until the lane takes the delivery.
struct DirectIntake {
    owner: String,
    lease_ms: i64,
    room: AtomicUsize,
    closed: AtomicBool,
    queue: mpsc::UnboundedSender<ClaimedDelivery>,
    fresh: Arc<Notify>,
}

impl DirectDispatch for DirectIntake {
    fn owner(&self) -> &str {
        &self.owner
    }

    fn lease_ms(&self) -> i64 {
        self.lease_ms
    }

    fn reserve(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
            && self
                .room
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |room| {
                    room.checked_sub(1)
                })
                .is_ok()
    }

    fn unreserve(&self, count: usize) {
        self.room.fetch_add(count, Ordering::AcqRel);
    }

    fn hand_over(&self, deliveries: Vec<ClaimedDelivery>) {
        for delivery in deliveries {
            // The lane is gone only when the dispatcher stopped; the lease then lapses and the
            // delivery is claimed again (a dispatcher that stops releases its leases first).
            let _ = self.queue.send(delivery);
        }
    }

    fn claimable_committed(&self) {
        self.fresh.notify_one();
    }
}

struct Shared {
    store: Arc<dyn DeliveryQueue>,
    cipher: Arc<dyn SecretCipher>,
    clock: Arc<dyn Clock>,
    transport: Arc<dyn Transport>,
    config: DispatcherConfig,
    owner: String,
    handle: DispatcherHandle,
}

impl Dispatcher {
    /// A dispatcher with a fresh lease-owner id.
    pub fn new(
        store: Arc<dyn DeliveryQueue>,
        cipher: Arc<dyn SecretCipher>,
        clock: Arc<dyn Clock>,
        transport: Arc<dyn Transport>,
        config: DispatcherConfig,
    ) -> Self {
        let handle = DispatcherHandle {
            fresh: Arc::new(Notify::new()),
            retry: Arc::new(Notify::new()),
            metrics: Arc::new(DeliveryMetrics::default()),
        };
        Self {
            shared: Arc::new(Shared {
                store,
                cipher,
                clock,
                transport,
                config,
                owner: format!("dsp_{}", ulid::Ulid::new()),
                handle,
            }),
            direct: None,
        }
    }

    /// Opens the fresh lane to deliveries handed over directly by a store in this process
    /// (attach the result with `DeliveryQueue::attach_direct_dispatch`). Only for a store this
    /// dispatcher also claims from.
    pub fn direct_dispatch(&mut self) -> Arc<dyn DirectDispatch> {
        if let Some((intake, _)) = &self.direct {
            return intake.clone();
        }
        let (queue, received) = mpsc::unbounded_channel();
        let intake = Arc::new(DirectIntake {
            owner: self.shared.owner.clone(),
            lease_ms: self.shared.config.lease_ms(),
            room: AtomicUsize::new(self.shared.config.direct_intake.max(1)),
            closed: AtomicBool::new(false),
            queue,
            fresh: self.shared.handle.fresh.clone(),
        });
        self.direct = Some((intake.clone(), received));
        intake
    }

    /// The handle that wakes it and reads its metrics.
    pub fn handle(&self) -> DispatcherHandle {
        self.shared.handle.clone()
    }

    /// The id its leases carry.
    pub fn owner(&self) -> &str {
        &self.shared.owner
    }

    /// Delivers until `shutdown` resolves, then stops claiming, gives back unstarted work,
    /// lets running attempts finish and writes their outcomes before returning.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let shared = self.shared;
        let mut direct = self.direct;
        tracing::info!(
            owner = %shared.owner,
            timeout_ms = shared.config.timeout_ms(),
            fresh_workers = shared.config.workers(Lane::Fresh),
            retry_workers = shared.config.workers(Lane::Retry),
            per_webhook = shared.config.per_webhook,
            slow_after_ms = shared.config.slow_after().as_millis() as u64,
            slow_workers = shared.config.slow_workers,
            "dispatcher started"
        );
        let (stop_tx, stop_rx) = watch::channel(false);
        let (outcome_tx, outcome_rx) = mpsc::unbounded_channel();
        let completer = tokio::spawn(complete_outcomes(shared.clone(), outcome_rx));
        let lanes: Vec<_> = Lane::ALL
            .into_iter()
            .map(|lane| {
                tokio::spawn(run_lane(
                    shared.clone(),
                    lane,
                    stop_rx.clone(),
                    outcome_tx.clone(),
                    if lane == Lane::Fresh {
                        direct.take()
                    } else {
                        None
                    },
                ))
            })
            .collect();
        drop(outcome_tx);
        let housekeeping = tokio::spawn(housekeeping(shared.clone(), stop_rx));
        shutdown.await;
        tracing::info!(owner = %shared.owner, "dispatcher stopping: finishing attempts in flight");
        let _ = stop_tx.send(true);
        for lane in lanes {
            let _ = lane.await;
        }
        let _ = completer.await;
        let _ = housekeeping.await;
        // Anything still leased to us (a claim that raced the stop) goes back to the pool now
        // rather than when its lease lapses.
        if let Err(error) = shared.store.release_leases(&shared.owner, &[]).await {
            tracing::warn!(%error, "could not release leases at shutdown; they lapse on their own");
        }
        tracing::info!(owner = %shared.owner, "dispatcher stopped");
    }
}

/// A finished attempt reported back to its lane.
struct Done {
    seq: u64,
    /// The thread that ran it, idle again.
    thread: Option<usize>,
    outcome: Option<AttemptOutcome>,
    elapsed: Duration,
}

/// What a lane has learned about a webhook from its latest attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    /// Not attempted yet (or forgotten): one attempt at a time on the shared workers, until it
    /// answers — so a crowd of new hanging endpoints takes one slot each, not the pool.
    Unproven,
    /// Answered within `slow_after`: up to `per_webhook` attempts on the shared workers.
    Fast,
    /// Timed out or ran past `slow_after`: claimed apart, run on the slow budget, at most
    /// `slow_per_webhook` attempts.
    Slow,
}

/// One running attempt.
struct Running {
    webhook: WebhookId,
    /// Whether it counts against the slow budget (else the shared workers).
    slow: bool,
}

/// One lane's bookkeeping.
struct LaneState {
    lane: Lane,
    /// Shared workers.
    capacity: usize,
    /// The slow budget.
    slow_capacity: usize,
    /// Attempts on the shared workers.
    running: usize,
    /// Attempts on the slow budget.
    slow_running: usize,
    attempts: HashMap<u64, Running>,
    next_seq: u64,
    /// When each attempt on the shared workers becomes slow, in start order.
    demotions: VecDeque<(Instant, u64)>,
    running_by_webhook: HashMap<WebhookId, usize>,
    /// Claimed extras of webhooks at their cap (never of slow webhooks).
    waiting: HashMap<WebhookId, VecDeque<ClaimedDelivery>>,
    waiting_total: usize,
    /// Webhooks left out of the last ordinary claim because they were at their cap.
    excluded: HashSet<WebhookId>,
    standing: HashMap<WebhookId, (Standing, Instant)>,
    /// The slow webhooks among them (kept apart so a claim need not scan every standing).
    slow: HashSet<WebhookId>,
    last_forget: Instant,
    caps: Caps,
    threads: AttemptThreads,
}

/// Per-webhook caps by standing.
#[derive(Clone, Copy)]
struct Caps {
    fast: usize,
    slow: usize,
}

impl LaneState {
    /// How many more deliveries an ordinary claim may take: free shared workers, and no more
    /// than the local queue of capped webhooks' extras has room for. Queued extras do not
    /// occupy worker slots, so a webhook at its cap never keeps other webhooks' work from
    /// being claimed; slow attempts occupy none of either.
    fn free(&self) -> usize {
        self.capacity
            .saturating_sub(self.running)
            .min(self.capacity.saturating_sub(self.waiting_total))
    }

    fn slow_room(&self) -> usize {
        self.slow_capacity.saturating_sub(self.slow_running)
    }

    fn standing_of(&self, webhook: &WebhookId) -> Standing {
        self.standing
            .get(webhook)
            .map_or(Standing::Unproven, |(standing, _)| *standing)
    }

    fn cap(&self, webhook: &WebhookId) -> usize {
        match self.standing_of(webhook) {
            Standing::Unproven => 1,
            Standing::Fast => self.caps.fast,
            Standing::Slow => self.caps.slow,
        }
    }

    fn running_of(&self, webhook: &WebhookId) -> usize {
        self.running_by_webhook.get(webhook).copied().unwrap_or(0)
    }

    fn load(&self, webhook: &WebhookId) -> usize {
        self.running_of(webhook) + self.waiting.get(webhook).map_or(0, VecDeque::len)
    }

    /// Webhooks the ordinary claim leaves out: those at their cap, and every slow one.
    fn ordinary_exclusions(&self) -> Vec<WebhookId> {
        let mut out: HashSet<WebhookId> = self
            .running_by_webhook
            .keys()
            .chain(self.waiting.keys())
            .filter(|w| self.load(w) >= self.cap(w))
            .copied()
            .collect();
        out.extend(self.slow.iter().copied());
        out.into_iter().collect()
    }

    /// Slow webhooks with room under their cap, and how many attempts they may start.
    fn slow_openings(&self) -> (Vec<WebhookId>, usize) {
        let mut room = 0;
        let webhooks = self
            .slow
            .iter()
            .filter_map(|w| {
                let free = self.caps.slow.saturating_sub(self.running_of(w));
                room += free;
                (free > 0).then_some(*w)
            })
            .collect();
        (webhooks, room)
    }

    /// Records what an attempt showed; a webhook turning slow gives up its queued extras.
    fn learn(&mut self, webhook: WebhookId, standing: Standing, late: &mut Vec<DeliveryId>) {
        self.standing.insert(webhook, (standing, Instant::now()));
        if standing != Standing::Slow {
            self.slow.remove(&webhook);
        } else {
            self.slow.insert(webhook);
            if let Some(queue) = self.waiting.remove(&webhook) {
                self.waiting_total -= queue.len();
                late.extend(queue.into_iter().map(|item| item.id));
            }
        }
    }

    /// Forgets webhooks not attempted for a while, so the memory stays bounded.
    fn forget_old(&mut self) {
        if self.last_forget.elapsed() < Duration::from_secs(60) {
            return;
        }
        self.last_forget = Instant::now();
        let running = &self.running_by_webhook;
        self.standing
            .retain(|w, (_, seen)| running.contains_key(w) || seen.elapsed() < STANDING_TTL);
        let standing = &self.standing;
        self.slow.retain(|w| standing.contains_key(w));
    }
}

async fn run_lane(
    shared: Arc<Shared>,
    lane: Lane,
    mut stop: watch::Receiver<bool>,
    outcomes: mpsc::UnboundedSender<AttemptOutcome>,
    mut direct: Option<(Arc<DirectIntake>, mpsc::UnboundedReceiver<ClaimedDelivery>)>,
) {
    let config = &shared.config;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut state = LaneState {
        lane,
        capacity: config.workers(lane),
        slow_capacity: config.slow_workers.max(1),
        running: 0,
        slow_running: 0,
        attempts: HashMap::new(),
        next_seq: 0,
        demotions: VecDeque::new(),
        running_by_webhook: HashMap::new(),
        waiting: HashMap::new(),
        waiting_total: 0,
        excluded: HashSet::new(),
        standing: HashMap::new(),
        slow: HashSet::new(),
        last_forget: Instant::now(),
        caps: Caps {
            fast: config.per_webhook.max(1),
            slow: config.slow_per_webhook.clamp(1, config.per_webhook.max(1)),
        },
        threads: AttemptThreads::new(lane),
    };
    let notify = shared.handle.notify(lane).clone();
    let mut claim_now = true;
    let mut more_due = false;
    let mut next_check = Instant::now();
    // When the lane last asked the store for its next due time (see below).
    let mut asked_next_at: Option<Instant> = None;
    // The slow lane looks again when a slow attempt ended, or after `SLOW_RECHECK`.
    let mut slow_wanted = false;
    let mut slow_checked = Instant::now();
    let mut failures: u32 = 0;
    let mut stopping = false;
    loop {
        let free = state.free();
        let timer_due = Instant::now() >= next_check;
        let worth_it = more_due && free >= (state.capacity / 4).max(1);
        if !stopping && free > 0 && (claim_now || timer_due || worth_it) {
            claim_now = false;
            let now = shared.clock.now_ms();
            let excluded = state.ordinary_exclusions();
            let limit = free.min(config.batch.max(1));
            let lease = Lease {
                owner: shared.owner.clone(),
                until: now + config.lease_ms(),
            };
            match shared
                .store
                .claim_deliveries(lane, &lease, now, limit, &excluded)
                .await
            {
                Ok(items) => {
                    failures = 0;
                    more_due = items.len() == limit;
                    state.excluded = excluded.into_iter().collect();
                    let mut late = Vec::new();
                    for item in items {
                        admit(&shared, &mut state, item, &done_tx, &mut late);
                    }
                    release(&shared, late).await;
                    // Fresh deliveries are due when created and announced by a wake-up, so
                    // the fresh lane needs its timer only for lapsing leases: asking at most
                    // once a second saves a query per claim under steady traffic.
                    let recent = lane == Lane::Fresh
                        && asked_next_at.is_some_and(|at| at.elapsed() < Duration::from_secs(1))
                        && next_check > Instant::now();
                    if more_due {
                        next_check = Instant::now() + config.max_idle();
                    } else if !recent {
                        next_check = next_wake(&shared, lane, !state.excluded.is_empty()).await;
                        asked_next_at = Some(Instant::now());
                    }
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let pause = backoff(failures);
                    tracing::warn!(lane = lane.as_str(), %error, retry_in_ms = pause.as_millis() as u64, "claiming deliveries failed");
                    more_due = false;
                    next_check = Instant::now() + pause;
                }
            }
        }
        if !stopping
            && failures == 0
            && state.slow_room() > 0
            && (slow_wanted || slow_checked.elapsed() >= SLOW_RECHECK)
        {
            slow_wanted = false;
            slow_checked = Instant::now();
            let (webhooks, room) = state.slow_openings();
            let limit = room.min(state.slow_room()).min(config.batch.max(1));
            if limit > 0 {
                let now = shared.clock.now_ms();
                let lease = Lease {
                    owner: shared.owner.clone(),
                    until: now + config.lease_ms(),
                };
                match shared
                    .store
                    .claim_deliveries_of(lane, &lease, now, limit, &webhooks)
                    .await
                {
                    Ok(items) => {
                        let mut late = Vec::new();
                        for item in items {
                            admit(&shared, &mut state, item, &done_tx, &mut late);
                        }
                        release(&shared, late).await;
                    }
                    Err(error) => {
                        tracing::warn!(lane = lane.as_str(), %error, "claiming slow webhooks' deliveries failed");
                    }
                }
            }
        }
        state.forget_old();
        shared
            .handle
            .metrics
            .set_slow(lane, state.slow.len(), state.slow_running);
        if stopping && state.running + state.slow_running == 0 {
            break;
        }
        // Finished attempts leave their demotion deadline behind; drop those first, so the
        // timer is set for an attempt still running rather than waking for nothing.
        while let Some((_, seq)) = state.demotions.front() {
            if state.attempts.contains_key(seq) {
                break;
            }
            state.demotions.pop_front();
        }
        let next_demotion = state.demotions.front().map(|(at, _)| *at);
        tokio::select! {
            biased;
            Some(done) = done_rx.recv() => {
                let mut late = Vec::new();
                let mut report = |done: Done, state: &mut LaneState, late: &mut Vec<DeliveryId>| {
                    let (reopened, slow) = finish(&shared, state, done, &done_tx, &outcomes, late);
                    more_due |= reopened;
                    slow_wanted |= slow;
                };
                report(done, &mut state, &mut late);
                // Take every other report that is already waiting before claiming again.
                while let Ok(done) = done_rx.try_recv() {
                    report(done, &mut state, &mut late);
                }
                release(&shared, late).await;
            }
            Some(first) = take_direct(&mut direct), if !stopping && state.free() > 0 => {
                let mut late = Vec::new();
                if let Some((intake, queue)) = &mut direct {
                    // Take what waits while workers are free; each taken delivery frees room.
                    let mut next = Some(first);
                    while let Some(item) = next {
                        intake.room.fetch_add(1, Ordering::AcqRel);
                        admit(&shared, &mut state, item, &done_tx, &mut late);
                        next = if state.free() > 0 { queue.try_recv().ok() } else { None };
                    }
                }
                release(&shared, late).await;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                let mut unstarted: Vec<DeliveryId> = state
                    .waiting
                    .drain()
                    .flat_map(|(_, queue)| queue.into_iter().map(|item| item.id))
                    .collect();
                state.waiting_total = 0;
                if let Some((intake, queue)) = &mut direct {
                    // No more handovers: what the store writes from now on is left for a claim.
                    intake.closed.store(true, Ordering::Release);
                    while let Ok(item) = queue.try_recv() {
                        unstarted.push(item.id);
                    }
                }
                release(&shared, unstarted).await;
            }
            _ = tokio::time::sleep_until(next_demotion.unwrap_or(next_check).into()), if next_demotion.is_some() => {
                let mut late = Vec::new();
                if demote_overdue(&shared, &mut state, &mut late) {
                    // Shared workers were freed: whatever waited for them can be claimed now.
                    claim_now = true;
                    slow_wanted = true;
                }
                release(&shared, late).await;
            }
            _ = notify.notified(), if !stopping => claim_now = true,
            _ = tokio::time::sleep_until(next_check.into()), if !stopping => {}
        }
    }
}

/// The next delivery handed over directly, when the lane has a direct intake (else never).
async fn take_direct(
    direct: &mut Option<(Arc<DirectIntake>, mpsc::UnboundedReceiver<ClaimedDelivery>)>,
) -> Option<ClaimedDelivery> {
    match direct {
        Some((_, queue)) => queue.recv().await,
        None => std::future::pending().await,
    }
}

/// Moves attempts that have run past `slow_after` from the shared workers to the slow budget
/// and marks their webhooks slow. Returns whether any moved.
fn demote_overdue(shared: &Arc<Shared>, state: &mut LaneState, late: &mut Vec<DeliveryId>) -> bool {
    let now = Instant::now();
    let mut moved = false;
    while let Some(&(at, seq)) = state.demotions.front() {
        if at > now {
            break;
        }
        state.demotions.pop_front();
        let Some(attempt) = state.attempts.get_mut(&seq) else {
            continue; // already finished
        };
        if attempt.slow {
            continue;
        }
        attempt.slow = true;
        let webhook = attempt.webhook;
        state.running -= 1;
        state.slow_running += 1;
        moved = true;
        if state.standing_of(&webhook) != Standing::Slow {
            tracing::info!(
                lane = state.lane.as_str(),
                %webhook,
                slow_after_ms = shared.config.slow_after().as_millis() as u64,
                "webhook answers slowly; its deliveries move to the slow lane"
            );
        }
        state.learn(webhook, Standing::Slow, late);
    }
    moved
}

/// Takes a claimed delivery: starts it if its webhook is under its cap and its budget has
/// room; else queues it (ordinary webhooks) or gives it back (slow webhooks, which wait on the
/// store rather than in a queue that would count against everyone's claims).
fn admit(
    shared: &Arc<Shared>,
    state: &mut LaneState,
    item: ClaimedDelivery,
    done_tx: &mpsc::UnboundedSender<Done>,
    late: &mut Vec<DeliveryId>,
) {
    let webhook = item.webhook_id;
    let under_cap = state.running_of(&webhook) < state.cap(&webhook);
    if state.standing_of(&webhook) == Standing::Slow {
        if under_cap && state.slow_room() > 0 {
            start(shared, state, item, true, done_tx, late);
        } else {
            late.push(item.id);
        }
    } else if under_cap && state.running < state.capacity {
        start(shared, state, item, false, done_tx, late);
    } else {
        state.waiting_total += 1;
        state.waiting.entry(webhook).or_default().push_back(item);
    }
}

/// Runs one attempt on a blocking thread, if enough of its lease remains.
fn start(
    shared: &Arc<Shared>,
    state: &mut LaneState,
    item: ClaimedDelivery,
    slow: bool,
    done_tx: &mpsc::UnboundedSender<Done>,
    late: &mut Vec<DeliveryId>,
) {
    let now = shared.clock.now_ms();
    if item.lease_until - now < shared.config.timeout_ms() + shared.config.start_safety_ms() {
        // Starting now could outlast the lease and overlap another dispatcher's attempt.
        late.push(item.id);
        return;
    }
    let seq = state.next_seq;
    state.next_seq += 1;
    if slow {
        state.slow_running += 1;
    } else {
        state.running += 1;
        state
            .demotions
            .push_back((Instant::now() + shared.config.slow_after(), seq));
    }
    let webhook = item.webhook_id;
    state.attempts.insert(seq, Running { webhook, slow });
    *state.running_by_webhook.entry(webhook).or_default() += 1;
    if let Some((_, seen)) = state.standing.get_mut(&webhook) {
        *seen = Instant::now();
    }
    shared.handle.metrics.in_flight(state.lane, 1);
    let shared = shared.clone();
    let done_tx = done_tx.clone();
    let runtime = tokio::runtime::Handle::current();
    state.threads.run(move |thread| {
        if let Some(until) = rate_limited(&shared, &runtime, &item) {
            // Not attempted: the delivery waits for the next second's slots, spending nothing.
            if let Err(error) =
                runtime.block_on(shared.store.defer_delivery(&shared.owner, &item.id, until))
            {
                tracing::warn!(%error, delivery = %item.id, "could not defer a rate-limited delivery; its lease lapses on its own");
            }
            let _ = done_tx.send(Done {
                seq,
                thread,
                outcome: None,
                elapsed: Duration::ZERO,
            });
            return;
        }
        let began = Instant::now();
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| attempt(&shared, &item)));
        let outcome = match result {
            Ok((outcome, sent)) => {
                shared.handle.metrics.record_attempt(
                    outcome.record.error,
                    sent,
                    began.elapsed(),
                    outcome.settlement,
                );
                Some(outcome)
            }
            Err(_) => {
                tracing::error!(delivery = %item.id, "delivery attempt panicked; its lease will lapse");
                None
            }
        };
        let _ = done_tx.send(Done {
            seq,
            thread,
            outcome,
            elapsed: began.elapsed(),
        });
    });
}

/// An attempt to run on a thread of its own; told which thread runs it.
type AttemptJob = Box<dyn FnOnce(Option<usize>) + Send>;

/// The threads a lane runs its attempts on (each a blocking ureq call): started as needed,
/// never more than the lane runs attempts at once, each fed through its own channel, and
/// reused most-recently-idle first. They end when their lane does.
///
/// Why not tokio's blocking pool: every `spawn_blocking` and every pool thread going idle or
/// waking takes one mutex the whole pool shares. With some hundred attempts starting a
/// second on 64 threads, that mutex was contended (spinning, then `sched_yield`), which with
/// the pool's hand-offs cost more than a tenth of this process's CPU. Handing an attempt to a
/// known idle thread touches only that thread's channel.
struct AttemptThreads {
    lane: Lane,
    feeds: Vec<std::sync::mpsc::Sender<(AttemptJob, usize)>>,
    idle: Vec<usize>,
}

impl AttemptThreads {
    fn new(lane: Lane) -> Self {
        Self {
            lane,
            feeds: Vec::new(),
            idle: Vec::new(),
        }
    }

    /// Runs `job` on an idle thread, or a new one; on tokio's blocking pool when no thread
    /// could be started or the chosen one is gone.
    fn run(&mut self, job: impl FnOnce(Option<usize>) + Send + 'static) {
        let job: AttemptJob = Box::new(job);
        let job = match self.take() {
            Some(thread) => match self.feeds[thread].send((job, thread)) {
                Ok(()) => return,
                // The thread is gone (only a panic outside the caught attempt ends one before
                // its lane does); run the attempt anyway.
                Err(std::sync::mpsc::SendError((job, _))) => job,
            },
            None => job,
        };
        tokio::task::spawn_blocking(move || job(None));
    }

    /// An idle thread, or a new one; `None` when no thread could be started.
    fn take(&mut self) -> Option<usize> {
        if let Some(thread) = self.idle.pop() {
            return Some(thread);
        }
        let (feed, jobs) = std::sync::mpsc::channel::<(AttemptJob, usize)>();
        let index = self.feeds.len();
        std::thread::Builder::new()
            .name(format!("herald-{}-{index}", self.lane.as_str()))
            .spawn(move || {
                while let Ok((job, thread)) = jobs.recv() {
                    job(Some(thread));
                }
            })
            .map_err(|error| {
                tracing::warn!(%error, "could not start an attempt thread; using tokio's blocking pool");
            })
            .ok()?;
        self.feeds.push(feed);
        Some(index)
    }

    /// `thread` finished its attempt.
    fn give_back(&mut self, thread: usize) {
        self.idle.push(thread);
    }
}

/// Books a finished attempt, learns from it, and starts the webhook's next queued
/// deliveries. Returns whether a webhook left out of the last claim has room again (so an
/// ordinary claim may find work), and whether slow capacity was freed.
fn finish(
    shared: &Arc<Shared>,
    state: &mut LaneState,
    done: Done,
    done_tx: &mpsc::UnboundedSender<Done>,
    outcomes: &mpsc::UnboundedSender<AttemptOutcome>,
    late: &mut Vec<DeliveryId>,
) -> (bool, bool) {
    if let Some(thread) = done.thread {
        state.threads.give_back(thread);
    }
    let Some(Running { webhook, slow }) = state.attempts.remove(&done.seq) else {
        return (false, false);
    };
    if slow {
        state.slow_running -= 1;
    } else {
        state.running -= 1;
    }
    shared.handle.metrics.in_flight(state.lane, -1);
    if let Some(count) = state.running_by_webhook.get_mut(&webhook) {
        *count -= 1;
        if *count == 0 {
            state.running_by_webhook.remove(&webhook);
        }
    }
    if let Some(outcome) = done.outcome {
        let quick = done.elapsed < shared.config.slow_after()
            && outcome.record.error != Some(AttemptError::Timeout);
        let standing = if quick {
            Standing::Fast
        } else {
            Standing::Slow
        };
        if standing != state.standing_of(&webhook) && standing == Standing::Fast && slow {
            tracing::info!(lane = state.lane.as_str(), %webhook, "webhook answers quickly again; its deliveries leave the slow lane");
        }
        state.learn(webhook, standing, late);
        let _ = outcomes.send(outcome);
    }
    while state.running_of(&webhook) < state.cap(&webhook) && state.running < state.capacity {
        let Some(queue) = state.waiting.get_mut(&webhook) else {
            break;
        };
        let Some(next) = queue.pop_front() else {
            state.waiting.remove(&webhook);
            break;
        };
        state.waiting_total -= 1;
        if queue.is_empty() {
            state.waiting.remove(&webhook);
        }
        start(shared, state, next, false, done_tx, late);
    }
    let reopened = state.excluded.contains(&webhook)
        && state.standing_of(&webhook) != Standing::Slow
        && state.load(&webhook) * 2 <= state.cap(&webhook);
    if reopened {
        state.excluded.remove(&webhook);
    }
    (reopened, slow)
}

/// Gives leases back so any dispatcher may take the deliveries at once.
async fn release(shared: &Arc<Shared>, ids: Vec<DeliveryId>) {
    if ids.is_empty() {
        return;
    }
    if let Err(error) = shared.store.release_leases(&shared.owner, &ids).await {
        tracing::warn!(%error, count = ids.len(), "could not release leases; they lapse on their own");
    }
}

/// When the lane should look again: its next due retry or lease lapse, within bounds. Work
/// that is due but was not claimable belongs to webhooks at their cap (`saturated`; a finished
/// attempt re-opens them, so a slow recheck suffices) or is being claimed by another replica.
async fn next_wake(shared: &Arc<Shared>, lane: Lane, saturated: bool) -> Instant {
    let now = shared.clock.now_ms();
    let floor = if saturated {
        SATURATED_RECHECK
    } else {
        MIN_RECHECK
    };
    match shared.store.next_claimable_at(lane, now).await {
        Ok(Some(at)) => {
            let wait = Duration::from_millis((at - now).max(0) as u64);
            let idle = shared.config.max_idle();
            Instant::now() + wait.clamp(floor.min(idle), idle)
        }
        Ok(None) => Instant::now() + shared.config.max_idle(),
        Err(error) => {
            tracing::warn!(lane = lane.as_str(), %error, "could not read the next due time");
            Instant::now() + Duration::from_secs(1)
        }
    }
}

/// The pause after `failures` store errors in a row: 100 ms doubling, at most 500 ms — a store
/// that is back should be used at once (a reconnected listener also wakes the lanes), and one
/// query per half second against a store that is down costs nothing.
fn backoff(failures: u32) -> Duration {
    let ms = 100u64.saturating_mul(1 << failures.saturating_sub(1).min(10));
    Duration::from_millis(ms.min(500))
}

/// When a rate-limited webhook has no slot left this second: the start of the next second, when
/// the delivery is due again. A store that cannot be asked does not hold deliveries back.
fn rate_limited(
    shared: &Shared,
    runtime: &tokio::runtime::Handle,
    item: &ClaimedDelivery,
) -> Option<i64> {
    let limit = item.rate_limit?;
    let now = shared.clock.now_ms();
    match runtime.block_on(shared.store.take_rate_slot(&item.webhook_id, limit, now)) {
        Ok(true) => None,
        Ok(false) => Some((now.div_euclid(1000) + 1) * 1000),
        Err(error) => {
            tracing::warn!(%error, webhook = %item.webhook_id, "could not take a rate-limit slot; attempting anyway");
            None
        }
    }
}

/// One attempt, start to classified end. Blocking.
fn attempt(shared: &Shared, item: &ClaimedDelivery) -> (AttemptOutcome, bool) {
    let started_at = shared.clock.now_ms();
    let began = Instant::now();
    let mut give_up = false;
    let (answer, sent) = if item.envelope.is_empty() {
        tracing::error!(delivery = %item.id, event = %item.event_id, "the event of this delivery is no longer stored; dead-lettering it");
        give_up = true;
        (
            not_sent("herald: the event is no longer stored; nothing was sent"),
            false,
        )
    } else {
        match signing_keys(shared.cipher.as_ref(), item, started_at) {
            Err(error) => {
                tracing::error!(
                    delivery = %item.id,
                    webhook = %item.webhook_id,
                    %error,
                    "the webhook's secret cannot be decrypted with HERALD_SECRETS_KEY; the attempt failed and nothing was sent (never unsigned)"
                );
                (
                    not_sent("herald: the webhook secret cannot be decrypted with the configured HERALD_SECRETS_KEY; nothing was sent"),
                    false,
                )
            }
            Ok(keys) => {
                let headers = sign::delivery_headers(
                    &item.event_id.to_string(),
                    started_at,
                    item.signing,
                    &keys,
                    item.envelope.as_bytes(),
                    item.custom_headers.iter(),
                );
                let answer =
                    shared
                        .transport
                        .post(item.url.as_str(), &headers, item.envelope.as_bytes());
                (answer, true)
            }
        }
    };
    let record = AttemptRecord {
        attempt: item.attempt,
        started_at,
        duration_ms: began.elapsed().as_millis() as i64,
        status_code: answer.status,
        error: answer.error,
        response_body: answer.body,
    };
    let settlement = if give_up {
        Settlement::Failed
    } else {
        Settlement::after(
            item.attempt,
            item.budget_base,
            &item.retry_policy,
            &record,
            answer.retry_after_ms,
            shared.clock.now_ms(),
        )
    };
    if let Settlement::Failed = settlement {
        tracing::warn!(delivery = %item.id, webhook = %item.webhook_id, attempts = item.attempt, "delivery dead-lettered after its last attempt");
    }
    (
        AttemptOutcome {
            delivery_id: item.id,
            webhook_id: item.webhook_id,
            event_id: item.event_id,
            record,
            settlement,
        },
        sent,
    )
}

/// The HMAC keys a delivery is signed with at `now`: the current secret's, then those of the
/// earlier secrets whose grace has not ended. Any secret that cannot be opened (or does not suit
/// the scheme) fails the attempt rather than sending it with fewer signatures.
fn signing_keys(
    cipher: &dyn SecretCipher,
    item: &ClaimedDelivery,
    now: i64,
) -> Result<Vec<Vec<u8>>, herald_domain::ports::CipherError> {
    let Some(current) = &item.secret else {
        return Ok(Vec::new());
    };
    let in_grace = item.previous_secrets.iter().filter(|p| p.until > now);
    std::iter::once(current)
        .chain(in_grace.map(|p| &p.sealed))
        .map(|sealed| {
            let text = cipher.open(sealed)?;
            item.signing.key(&text).ok_or_else(|| {
                herald_domain::ports::CipherError(format!(
                    "the secret is not a {} secret",
                    item.signing.as_str()
                ))
            })
        })
        .collect()
}

fn not_sent(reason: &str) -> Answer {
    Answer {
        status: None,
        error: None,
        body: reason.to_owned(),
        retry_after_ms: None,
    }
}

/// Writes outcomes back in batches, retrying while the store is away.
async fn complete_outcomes(
    shared: Arc<Shared>,
    mut outcomes: mpsc::UnboundedReceiver<AttemptOutcome>,
) {
    let lease_ms = shared.config.lease_ms();
    let mut batch = Vec::with_capacity(COMPLETION_BATCH);
    // Webhooks whose latest outcome seen here failed: only a success of one of these can close
    // a breaker, so only then is the retry lane woken for released deliveries (waking it after
    // every success would cost Postgres a claim query per batch on the healthy path).
    let mut failing: HashSet<WebhookId> = HashSet::new();
    while let Some(first) = outcomes.recv().await {
        batch.push(first);
        let gathered_until = tokio::time::Instant::now() + shared.config.completion_linger;
        while batch.len() < COMPLETION_BATCH {
            match outcomes.try_recv() {
                Ok(outcome) => batch.push(outcome),
                // Nothing waiting: wait for more until the linger ends or the lanes stop.
                Err(_) => match tokio::time::timeout_at(gathered_until, outcomes.recv()).await {
                    Ok(Some(outcome)) => batch.push(outcome),
                    Ok(None) | Err(_) => break,
                },
            }
        }
        let first_try = Instant::now();
        let mut failures = 0;
        loop {
            match shared
                .store
                .complete_attempts(
                    &shared.owner,
                    &batch,
                    &shared.config.health,
                    shared.clock.now_ms(),
                )
                .await
            {
                Ok(written) => {
                    if written < batch.len() {
                        tracing::warn!(
                            stale = batch.len() - written,
                            "some outcomes arrived after their lease was taken over; dropped"
                        );
                    }
                    break;
                }
                Err(error) => {
                    failures += 1;
                    if first_try.elapsed() > Duration::from_millis(lease_ms as u64) {
                        // The leases have lapsed: other dispatchers attempt these again.
                        tracing::error!(%error, count = batch.len(), "giving up writing outcomes; the deliveries will be attempted again");
                        break;
                    }
                    let pause = backoff(failures);
                    tracing::warn!(%error, retry_in_ms = pause.as_millis() as u64, "writing attempt outcomes failed");
                    tokio::time::sleep(pause).await;
                }
            }
        }
        let mut recovered = false;
        for outcome in &batch {
            if matches!(outcome.settlement, Settlement::Succeeded) {
                recovered |= failing.remove(&outcome.webhook_id);
            } else if failing.len() < MAX_FAILING_TRACKED {
                failing.insert(outcome.webhook_id);
            }
        }
        if batch
            .iter()
            .any(|o| !matches!(o.settlement, Settlement::Succeeded))
        {
            // New retries exist (the retry lane must recompute when to wake), or a failure may
            // have appended operational events (new first deliveries) or held deliveries.
            shared.handle.wake();
        } else if recovered {
            // A success after failures may have closed a breaker and released held deliveries.
            shared.handle.wake_retry();
        }
        batch.clear();
    }
}

/// Keeps the backlog gauges fresh and prunes old deliveries and events.
async fn housekeeping(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    const BACKLOG_EVERY: Duration = Duration::from_secs(5);
    const PRUNE_EVERY: Duration = Duration::from_secs(3600);
    let mut next_prune = Instant::now() + Duration::from_secs(60);
    loop {
        let now = shared.clock.now_ms();
        match shared.store.delivery_backlog(now).await {
            Ok(backlog) => shared.handle.metrics.set_backlog(backlog),
            Err(error) => tracing::debug!(%error, "could not read the delivery backlog"),
        }
        if Instant::now() >= next_prune {
            next_prune = Instant::now() + PRUNE_EVERY;
            let before = now - shared.config.retention.as_millis() as i64;
            match shared.store.prune_deliveries(before).await {
                Ok(pruned) if pruned.deliveries + pruned.events > 0 => {
                    tracing::info!(
                        deliveries = pruned.deliveries,
                        events = pruned.events,
                        "pruned past the retention period"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "retention pruning failed"),
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(BACKLOG_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_store_memory::{FakeCipher, ManualTime, MemoryStore};

    fn dispatcher(direct_intake: usize) -> Dispatcher {
        let mut config = DispatcherConfig::new(Duration::from_secs(10));
        config.direct_intake = direct_intake;
        Dispatcher::new(
            Arc::new(MemoryStore::new()),
            Arc::new(FakeCipher),
            Arc::new(ManualTime::new()),
            Arc::new(crate::client::UreqTransport::new(
                Duration::from_secs(10),
                false,
            )),
            config,
        )
    }

    /// The intake's room is its own bound, not the workers' count, and a delivery given back
    /// (a rolled-back transaction's, or one the lane took) makes room again.
    #[test]
    fn the_direct_intake_holds_its_configured_depth() {
        let mut dispatcher = dispatcher(3);
        assert!(dispatcher.shared.config.workers(Lane::Fresh) > 3);
        let intake = dispatcher.direct_dispatch();
        assert!((0..3).all(|_| intake.reserve()));
        assert!(!intake.reserve(), "a fourth delivery found room");
        intake.unreserve(1);
        assert!(intake.reserve());
        // Opening the intake again shares the same room.
        assert!(!dispatcher.direct_dispatch().reserve());
    }

    #[test]
    fn the_default_intake_is_deeper_than_the_fresh_lane() {
        let config = DispatcherConfig::new(Duration::from_secs(10));
        assert_eq!(config.direct_intake, 1_024);
        assert!(config.direct_intake > config.workers(Lane::Fresh));
    }
}
