//! The change listener: how a store write is announced to whatever waits for it in this process
//! (dispatchers, live streams, credential caches).

use crate::ids::{ApiKeyId, OrgId};

/// Told after events are durably appended, so dispatchers and live streams wake at once instead
/// of polling.
pub trait ChangeListener: Send + Sync {
    /// Events for `org` were committed.
    fn events_committed(&self, org: &OrgId);

    /// Existing deliveries of `org` were made due again (a manual retry or recovery). By
    /// default this is announced like new events.
    fn deliveries_requeued(&self, org: &OrgId) {
        self.events_committed(org);
    }

    /// An API key was revoked: whatever remembers verified keys in this process forgets it at
    /// once, so the revoked token is refused from the next request on.
    fn api_key_revoked(&self, _id: &ApiKeyId) {}
}

/// A listener that ignores everything (for tests and the CLI).
pub struct NoListener;

impl ChangeListener for NoListener {
    fn events_committed(&self, _org: &OrgId) {}
}
