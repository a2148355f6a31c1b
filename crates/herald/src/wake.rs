//! In-process wake-ups: when events commit, whoever waits for new work in this process (the
//! dispatcher, live streams) is woken at once. Other processes learn the same from Postgres
//! `NOTIFY`, which the store sends inside the committing transaction.

use herald_domain::ports::ChangeListener;
use herald_domain::OrgId;
use std::sync::{Arc, RwLock};
use tokio::sync::Notify;

/// A callback run on every commit (see [`Wakeups::subscribe`]).
type Subscriber = Arc<dyn Fn() + Send + Sync>;

/// Wakes local waiters when events are committed.
#[derive(Default)]
pub struct Wakeups {
    events: Notify,
    subscribers: RwLock<Vec<Subscriber>>,
    requeued: RwLock<Vec<Subscriber>>,
}

impl Wakeups {
    /// Resolves after the next commit of events (or at once if one happened since the last wait).
    pub async fn events_committed(&self) {
        self.events.notified().await;
    }

    /// Runs `wake` on every commit from now on. Each subscriber is told of every commit
    /// (unlike [`Wakeups::events_committed`], which wakes one waiter), so the dispatcher and a
    /// live stream in the same process never steal each other's wake-ups.
    pub fn subscribe(&self, wake: impl Fn() + Send + Sync + 'static) {
        self.subscribers
            .write()
            .expect("wake-up subscribers")
            .push(Arc::new(wake));
    }

    /// Runs `wake` whenever existing deliveries are made due again (a manual retry or a
    /// recovery) from now on.
    pub fn subscribe_requeued(&self, wake: impl Fn() + Send + Sync + 'static) {
        self.requeued
            .write()
            .expect("wake-up subscribers")
            .push(Arc::new(wake));
    }
}

impl ChangeListener for Wakeups {
    fn events_committed(&self, _org: &OrgId) {
        self.events.notify_one();
        for wake in self.subscribers.read().expect("wake-up subscribers").iter() {
            wake();
        }
    }

    fn deliveries_requeued(&self, _org: &OrgId) {
        for wake in self.requeued.read().expect("wake-up subscribers").iter() {
            wake();
        }
    }
}
