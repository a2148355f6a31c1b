//! The embedded store's cache of webhook lists. The embedded SQLite file is served by one
//! process, and webhook configuration changes only through that process's store, so the lists
//! it reads can be kept in memory and dropped on every webhook write; `GET /webhooks` then costs
//! no query at all. On Postgres, where any replica may write, the cache is disabled.
//!
//! A list read from the database is kept only if no write happened while it was being read
//! (a generation counter bumped after each write), so a slow reader can never put back a list
//! that a concurrent write already made stale.

use herald_domain::webhook::Webhook;
use herald_domain::OrgId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Webhook lists by organization, or nothing at all when disabled.
pub(crate) struct WebhookCache {
    enabled: bool,
    generation: AtomicU64,
    lists: Mutex<HashMap<OrgId, Vec<Webhook>>>,
}

impl WebhookCache {
    /// Organizations whose lists are kept at most; past that the cache starts over.
    const MAX_ORGS: usize = 10_000;

    /// A cache that keeps lists (the embedded store).
    pub(crate) fn enabled() -> Self {
        Self {
            enabled: true,
            generation: AtomicU64::new(0),
            lists: Mutex::new(HashMap::new()),
        }
    }

    /// A cache that keeps nothing (stores shared by several processes).
    pub(crate) fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::enabled()
        }
    }

    /// The kept list of `org`, if any.
    pub(crate) fn get(&self, org: &OrgId) -> Option<Vec<Webhook>> {
        if !self.enabled {
            return None;
        }
        self.lists.lock().expect("webhook cache").get(org).cloned()
    }

    /// The generation to pass to [`Self::put`] for a read that starts now.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps `list` for `org` unless a write happened since `generation` was taken.
    pub(crate) fn put(&self, org: &OrgId, generation: u64, list: &[Webhook]) {
        if !self.enabled {
            return;
        }
        let mut lists = self.lists.lock().expect("webhook cache");
        if self.generation.load(Ordering::Acquire) == generation {
            if lists.len() >= Self::MAX_ORGS {
                lists.clear();
            }
            lists.insert(org.clone(), list.to_vec());
        }
    }

    /// Forgets every list: call after any webhook write has finished.
    pub(crate) fn invalidate(&self) {
        if !self.enabled {
            return;
        }
        let mut lists = self.lists.lock().expect("webhook cache");
        self.generation.fetch_add(1, Ordering::AcqRel);
        lists.clear();
    }
}
