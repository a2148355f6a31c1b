//! The delivery ports, split by caller:
//!
//! - [`DeliveryQueue`] is the dispatcher's side (`herald-delivery`, and the process that runs
//!   it): claiming due deliveries under a lease, writing attempt outcomes back, the per-second
//!   rate slots, deferring and releasing leases, when work is next claimable, and the upkeep the
//!   dispatcher does between batches — the backlog gauge and the retention sweep.
//! - [`DeliveryViews`] is the API's side (the use cases in [`crate::deliveries`]): listing and
//!   reading deliveries, a webhook's attempt tally, the manual retry, bulk recovery, and the
//!   test ping's delivery.
//!
//! - [`DirectDispatch`] is the dispatcher's intake as a store sees it, when both share a
//!   process: fresh deliveries handed over from the transaction that writes them.
//!
//! A manual retry and a recovery do change the queue, but only as a user's request through the
//! API, never as a claim: they honour a live lease (a retry is refused while an attempt is in
//! flight) and leave claiming to the dispatcher.

use super::StoreResult;
use crate::delivery::{
    AttemptOutcome, Backlog, ClaimedDelivery, DeliveryDetail, DeliveryPage, Lane, Lease, Pruned,
    RetryAnswer,
};
use crate::event::Envelope;
use crate::ids::{DeliveryId, OrgId, WebhookId};
use crate::Millis;
use async_trait::async_trait;

/// A dispatcher running in this process that takes new deliveries straight from the
/// transaction that creates them, so they skip the claim query (and its wait for a wake-up).
///
/// The store writes such a delivery already leased to [`Self::owner`] until `now +`
/// [`Self::lease_ms`], and hands it over only after its transaction committed: if the process
/// dies first, the lease lapses and any dispatcher claims the delivery as usual, so nothing is
/// lost. Room is bounded: when the dispatcher is behind, [`Self::reserve`] refuses and the
/// delivery is written unleased, to be claimed like any other.
pub trait DirectDispatch: Send + Sync {
    /// The lease owner written on handed-over deliveries (the dispatcher's own).
    fn owner(&self) -> &str;
    /// How long a handed-over delivery stays leased.
    fn lease_ms(&self) -> Millis;
    /// Takes room for one delivery; `false` when the dispatcher has no room for more.
    fn reserve(&self) -> bool;
    /// Gives back room taken for `count` deliveries whose transaction did not commit.
    fn unreserve(&self, count: usize);
    /// Hands over committed deliveries, room having been reserved for each.
    fn hand_over(&self, deliveries: Vec<ClaimedDelivery>);
    /// Notes that committed deliveries were left for a claim (no room, or not due yet).
    fn claimable_committed(&self);
}

/// The delivery queue as the dispatcher works it: claims under a lease, outcomes written back
/// by the lease holder, rate slots, and the backlog and retention upkeep.
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    /// Leases up to `limit` due, unleased pending deliveries of `lane` to `lease.owner` until
    /// `lease.until`, skipping rows another dispatcher is claiming and deliveries of the
    /// `excluded` webhooks (those already at their concurrency cap here). Oldest due first.
    async fn claim_deliveries(
        &self,
        lane: Lane,
        lease: &Lease,
        now: Millis,
        limit: usize,
        excluded: &[WebhookId],
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Like [`Self::claim_deliveries`], but only deliveries of the `only` webhooks: the slow
    /// lane claims the work of endpoints that answer slowly apart from everyone else's, so
    /// their backlog never stands ahead of other webhooks' work in a claim.
    async fn claim_deliveries_of(
        &self,
        lane: Lane,
        lease: &Lease,
        now: Millis,
        limit: usize,
        only: &[WebhookId],
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Writes attempt outcomes for deliveries still leased to `owner`: the attempt row, the
    /// delivery's new state, the lease cleared. Deliveries no longer leased to `owner` are
    /// skipped (their outcome is stale). In the same transaction, each webhook's health follows
    /// [`crate::health::Health::after`] under `policy` — disabling, holding or releasing its
    /// deliveries — and the operational events this causes (and `delivery.failed` for every
    /// dead letter) are appended. Returns how many were written.
    async fn complete_attempts(
        &self,
        owner: &str,
        outcomes: &[AttemptOutcome],
        policy: &crate::health::HealthPolicy,
        now: Millis,
    ) -> StoreResult<usize>;
    /// Takes one of `webhook`'s `limit` attempt slots of the current epoch second, atomically
    /// across every dispatcher; `false` when the second's slots are all taken.
    async fn take_rate_slot(
        &self,
        webhook: &WebhookId,
        limit: u32,
        now: Millis,
    ) -> StoreResult<bool>;
    /// Gives back `owner`'s lease on a delivery that was not attempted (its webhook's rate
    /// limit was reached), due again at `until`; no attempt is spent. `false` if the lease was
    /// lost meanwhile.
    async fn defer_delivery(
        &self,
        owner: &str,
        id: &DeliveryId,
        until: Millis,
    ) -> StoreResult<bool>;
    /// Gives back `owner`'s leases on `ids` (all of them when `ids` is empty) without an
    /// attempt, so any dispatcher may claim them at once.
    async fn release_leases(&self, owner: &str, ids: &[DeliveryId]) -> StoreResult<usize>;
    /// Gives back every lease, whoever holds it, and returns how many. Only for a store that
    /// one process owns (the embedded file), where any lease found at start-up belongs to a
    /// predecessor that is gone; never on a shared database, whose other replicas are alive.
    async fn release_all_leases(&self) -> StoreResult<usize>;
    /// From now on, fresh deliveries this store creates go to `dispatch` directly when it has
    /// room (see [`DirectDispatch`]). A store that cannot do this ignores it; the dispatcher
    /// then claims everything.
    fn attach_direct_dispatch(&self, _dispatch: std::sync::Arc<dyn DirectDispatch>) {}
    /// When `lane` next has claimable work after `now`: the earliest due time of an unleased
    /// pending delivery. Leases that lapse are not looked up (no index keeps them, so that a
    /// claim touches no index): dispatchers find them by re-checking at least every
    /// [`Lease::RECHECK_MS`](crate::delivery::Lease::RECHECK_MS).
    async fn next_claimable_at(&self, lane: Lane, now: Millis) -> StoreResult<Option<Millis>>;
    /// Pending count and the age of the oldest due delivery.
    async fn delivery_backlog(&self, now: Millis) -> StoreResult<Backlog>;
    /// Removes finished deliveries (with their attempts) created before `before`, and events
    /// created before it that no pending delivery still needs; also erases the secrets of
    /// webhooks whose rotation grace has wholly ended.
    async fn prune_deliveries(&self, before: Millis) -> StoreResult<Pruned>;
}

/// The deliveries as the API shows and acts on them: pages, one delivery with its attempt log,
/// a webhook's tally, and the manual actions (retry, recovery, test ping).
#[async_trait]
pub trait DeliveryViews: Send + Sync {
    /// One page of the organization's deliveries (of `webhook` only, when given) that pass the
    /// query's filters, newest first, starting after its cursor.
    async fn list_deliveries(
        &self,
        org: &OrgId,
        webhook: Option<&WebhookId>,
        query: &crate::deliveries::DeliveryQuery,
    ) -> StoreResult<DeliveryPage>;
    /// A webhook's attempts started at or after `since`, counted, and its pending deliveries.
    async fn attempt_tally(
        &self,
        org: &OrgId,
        webhook: &WebhookId,
        since: Millis,
    ) -> StoreResult<crate::deliveries::AttemptTally>;
    /// One delivery of a webhook with its envelope and attempt log.
    async fn find_delivery(
        &self,
        org: &OrgId,
        webhook: &WebhookId,
        id: &DeliveryId,
    ) -> StoreResult<Option<DeliveryDetail>>;
    /// Makes a delivery due now: a finished one becomes pending with a renewed budget, a pending
    /// one is moved to now; refused while an attempt is in flight (an unexpired lease).
    async fn retry_delivery(
        &self,
        org: &OrgId,
        webhook: &WebhookId,
        id: &DeliveryId,
        now: Millis,
    ) -> StoreResult<RetryAnswer>;
    /// Requeues (due now, budget renewed) every failed delivery of a webhook created within
    /// `[since, until]`. Returns how many.
    async fn recover_deliveries(
        &self,
        org: &OrgId,
        webhook: &WebhookId,
        since: Millis,
        until: Millis,
        now: Millis,
    ) -> StoreResult<u64>;
    /// Stores a test event (kept out of the event log) and one pending delivery of it to
    /// `webhook`, whatever the webhook's filter, in one transaction.
    async fn insert_test_delivery(
        &self,
        webhook: &crate::webhook::Webhook,
        event: &Envelope,
        delivery: &DeliveryId,
    ) -> StoreResult<()>;
}
