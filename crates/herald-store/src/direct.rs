//! Fresh deliveries handed straight to a dispatcher in this process (see
//! [`DirectDispatch`]): the transaction that creates a delivery writes it already leased to that
//! dispatcher, and the delivery is handed over in memory once the transaction has committed.
//! This saves the claim (a locking `UPDATE` of every delivery, one more commit) and the wait
//! for a wake-up between the API's answer and the first attempt.
//!
//! Invariants this module keeps:
//! - nothing is handed over before its transaction committed; a rolled-back transaction only
//!   gives its reserved room back ([`Handover`]'s `Drop`);
//! - a delivery that is not due at once (a paused webhook's) or finds no room is written
//!   unleased and announced as claimable, exactly as without a local dispatcher.

use herald_domain::delivery::ClaimedDelivery;
use herald_domain::ports::DirectDispatch;
use herald_domain::Millis;
use std::sync::{Arc, OnceLock};

/// Where a store keeps the local dispatcher it hands deliveries to, once one is attached.
pub(crate) type DirectSlot = Arc<OnceLock<Arc<dyn DirectDispatch>>>;

/// The lease a handed-over delivery is written with.
pub(crate) struct DirectLease {
    pub owner: String,
    pub until: Millis,
}

/// What one transaction reserved for the local dispatcher and left for a claim; handed over by
/// [`Handover::committed`] once the transaction has committed.
pub(crate) struct Handover {
    dispatch: Option<Arc<dyn DirectDispatch>>,
    reserved: usize,
    ready: Vec<ClaimedDelivery>,
    claimable: bool,
}

impl Handover {
    /// A handover to the dispatcher in `slot`, if one is attached.
    pub fn new(slot: &DirectSlot) -> Self {
        Self {
            dispatch: slot.get().cloned(),
            reserved: 0,
            ready: Vec::new(),
            claimable: false,
        }
    }

    /// Reserves room for one delivery created at `now`, returning the lease to write on it;
    /// `None` (and the delivery is left for a claim) when there is no local dispatcher or no
    /// room.
    pub fn reserve(&mut self, now: Millis) -> Option<DirectLease> {
        let dispatch = self.dispatch.as_ref()?;
        if !dispatch.reserve() {
            return None;
        }
        self.reserved += 1;
        Some(DirectLease {
            owner: dispatch.owner().to_owned(),
            until: now.saturating_add(dispatch.lease_ms()),
        })
    }

    /// Adds a delivery written under a lease from [`Self::reserve`].
    pub fn push(&mut self, delivery: ClaimedDelivery) {
        self.ready.push(delivery);
    }

    /// Notes a delivery written unleased, for any dispatcher to claim.
    pub fn left_for_claim(&mut self) {
        self.claimable = true;
    }

    /// Whether the transaction left deliveries for a claim (so dispatchers must be woken).
    pub fn claimable(&self) -> bool {
        self.claimable
    }

    /// The transaction committed: hands the reserved deliveries over, and tells the
    /// dispatcher when others were left for a claim.
    pub fn committed(mut self) {
        let Some(dispatch) = self.dispatch.take() else {
            return;
        };
        // Room reserved for a delivery that could not be built is given back.
        let unused = self.reserved.saturating_sub(self.ready.len());
        self.reserved = 0;
        if unused > 0 {
            dispatch.unreserve(unused);
        }
        if self.claimable {
            dispatch.claimable_committed();
        }
        let ready = std::mem::take(&mut self.ready);
        if !ready.is_empty() {
            dispatch.hand_over(ready);
        }
    }
}

impl Drop for Handover {
    /// A handover dropped without [`Handover::committed`] belongs to a transaction that did
    /// not commit: its rows do not exist, so only the room is given back.
    fn drop(&mut self) {
        if let Some(dispatch) = &self.dispatch {
            if self.reserved > 0 {
                dispatch.unreserve(self.reserved);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Counting {
        room: AtomicUsize,
        handed: Mutex<usize>,
        claimable: AtomicUsize,
    }

    impl DirectDispatch for Counting {
        fn owner(&self) -> &str {
            "local"
        }
        fn lease_ms(&self) -> Millis {
            1_000
        }
        fn reserve(&self) -> bool {
            self.room
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| r.checked_sub(1))
                .is_ok()
        }
        fn unreserve(&self, count: usize) {
            self.room.fetch_add(count, Ordering::SeqCst);
        }
        fn hand_over(&self, deliveries: Vec<ClaimedDelivery>) {
            *self.handed.lock().unwrap() += deliveries.len();
        }
        fn claimable_committed(&self) {
            self.claimable.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn slot_with(room: usize) -> (DirectSlot, Arc<Counting>) {
        let dispatch = Arc::new(Counting {
            room: AtomicUsize::new(room),
            ..Counting::default()
        });
        let slot: DirectSlot = Arc::default();
        let _ = slot.set(dispatch.clone());
        (slot, dispatch)
    }

    #[test]
    fn a_rolled_back_transaction_gives_its_room_back_and_hands_nothing_over() {
        let (slot, dispatch) = slot_with(2);
        let mut handover = Handover::new(&slot);
        let lease = handover.reserve(10).expect("room");
        assert_eq!((lease.owner.as_str(), lease.until), ("local", 1_010));
        assert!(handover.reserve(10).is_some());
        assert!(handover.reserve(10).is_none(), "only two had room");
        drop(handover);
        assert_eq!(dispatch.room.load(Ordering::SeqCst), 2);
        assert_eq!(*dispatch.handed.lock().unwrap(), 0);
    }

    #[test]
    fn without_a_dispatcher_nothing_is_reserved() {
        let slot: DirectSlot = Arc::default();
        let mut handover = Handover::new(&slot);
        assert!(handover.reserve(0).is_none());
        handover.left_for_claim();
        assert!(handover.claimable());
        handover.committed();
    }

    #[test]
    fn a_commit_returns_room_reserved_for_deliveries_never_built_and_reports_claimable_work() {
        let (slot, dispatch) = slot_with(3);
        let mut handover = Handover::new(&slot);
        assert!(handover.reserve(0).is_some());
        assert!(handover.reserve(0).is_some());
        handover.left_for_claim();
        handover.committed();
        // Neither reservation became a delivery: both come back.
        assert_eq!(dispatch.room.load(Ordering::SeqCst), 3);
        assert_eq!(dispatch.claimable.load(Ordering::SeqCst), 1);
    }
}
