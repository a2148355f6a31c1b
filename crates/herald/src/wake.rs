//! In-process wake-ups: when events commit, whoever waits for new work in this process (the
//! dispatcher, live streams) is woken at once. Other processes learn the same from Postgres
//! `NOTIFY`, which the store sends inside the committing transaction.

use herald_domain::ports::ChangeListener;
use herald_domain::OrgId;
use tokio::sync::Notify;

/// Wakes local waiters when events are committed.
#[derive(Default)]
pub struct Wakeups {
    events: Notify,
}

impl Wakeups {
    /// Resolves after the next commit of events (or at once if one happened since the last wait).
    pub async fn events_committed(&self) {
        self.events.notified().await;
    }
}

impl ChangeListener for Wakeups {
    fn events_committed(&self, _org: &OrgId) {
        self.events.notify_one();
    }
}
