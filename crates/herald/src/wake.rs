//! In-process wake-ups: when events commit, whoever waits for new work in this process (the
//! dispatcher, live streams) is woken at once. Other processes learn the same from Postgres
//! `NOTIFY`, which the store sends right after the commit; a replica's listener reports those
//! through [`Wakeups::commit_seen`] (the dispatcher has its own listener and lanes).

use herald_domain::ports::ChangeListener;
use herald_domain::{ApiKeyId, OrgId};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

/// A callback run on every commit (see [`Wakeups::subscribe`]).
type Subscriber = Arc<dyn Fn() + Send + Sync>;

/// A callback run when an API key is revoked (see [`Wakeups::on_api_key_revoked`]).
type Revoked = Arc<dyn Fn(&ApiKeyId) + Send + Sync>;

/// Wakes local waiters when events are committed.
#[derive(Default)]
pub struct Wakeups {
    subscribers: RwLock<Vec<Subscriber>>,
    requeued: RwLock<Vec<Subscriber>>,
    revoked: RwLock<Vec<Revoked>>,
    /// Bumped on every commit, local or (through Postgres `NOTIFY`) on another replica; any
    /// number of watchers (the live event hub) see each change.
    commits: watch::Sender<u64>,
}

impl Wakeups {
    /// Runs `wake` on every local commit from now on. Each subscriber is told of every commit,
    /// so the dispatcher and a live stream in the same process never steal each other's
    /// wake-ups.
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

    /// Runs `forget` with the id of every API key revoked in this process from now on (the
    /// authenticator's cache of verified keys).
    pub fn on_api_key_revoked(&self, forget: impl Fn(&ApiKeyId) + Send + Sync + 'static) {
        self.revoked
            .write()
            .expect("revocation subscribers")
            .push(Arc::new(forget));
    }

    /// A receiver that changes whenever events are committed anywhere.
    pub fn watch_commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Records that some process committed events (called for local commits and for every
    /// `NOTIFY` from other replicas): every commit watcher sees it.
    pub fn commit_seen(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl ChangeListener for Wakeups {
    fn events_committed(&self, _org: &OrgId) {
        self.commit_seen();
        for wake in self.subscribers.read().expect("wake-up subscribers").iter() {
            wake();
        }
    }

    fn deliveries_requeued(&self, _org: &OrgId) {
        for wake in self.requeued.read().expect("wake-up subscribers").iter() {
            wake();
        }
    }

    fn api_key_revoked(&self, id: &ApiKeyId) {
        for forget in self.revoked.read().expect("revocation subscribers").iter() {
            forget(id);
        }
    }
}
