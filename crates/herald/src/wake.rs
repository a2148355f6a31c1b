//! In-process wake-ups: when events commit, whoever waits for new work in this process (the
//! dispatcher, live streams) is woken at once. Other processes learn the same from Postgres
//! `NOTIFY`, which the store sends inside the committing transaction.

use herald_domain::ports::ChangeListener;
use herald_domain::OrgId;
use tokio::sync::{watch, Notify};

/// Wakes local waiters when events are committed.
#[derive(Default)]
pub struct Wakeups {
    events: Notify,
    /// Bumped on every commit, local or (through Postgres `NOTIFY`) on another replica; any
    /// number of watchers (the live event hub) see each change.
    commits: watch::Sender<u64>,
}

impl Wakeups {
    /// Resolves after the next commit of events (or at once if one happened since the last wait).
    pub async fn events_committed(&self) {
        self.events.notified().await;
    }

    /// A receiver that changes whenever events are committed anywhere.
    pub fn watch_commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Records that some process committed events (called for local commits and for every
    /// `NOTIFY` from other replicas): wakes the local waiter and every commit watcher.
    pub fn commit_seen(&self) {
        self.events.notify_one();
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl ChangeListener for Wakeups {
    fn events_committed(&self, _org: &OrgId) {
        self.commit_seen();
    }
}
