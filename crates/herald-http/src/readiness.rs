//! `/readyz` for both servers: the checks a replica must pass to take traffic, and the one
//! report shape (`{"status": "ready" | "degraded" | "unavailable", "checks": {...}}`).
//!
//! The store check is a real write ([`StoreHealth::probe_write`]), not just a query: a store
//! that answers reads but cannot commit (disk full, read-only) is not ready. Its result is kept
//! for [`PROBE_FRESH_FOR`], so `/readyz` — public, and polled by load balancers — costs at most
//! one probe per interval however often it is asked. A report never carries driver text: a
//! failing check says `unavailable`, and the cause goes to the log when the state changes.

use crate::{json_response, HttpResponse, ReadinessCheck};
use herald_domain::ports::StoreHealth;
use http::StatusCode;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a probe's result is reused.
pub const PROBE_FRESH_FOR: Duration = Duration::from_secs(2);
/// How long a probe may take before the store counts as unavailable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// `/readyz`'s store check: can the store commit a write?
pub struct StoreReadiness {
    store: Arc<dyn StoreHealth>,
    /// When the last probe ran and whether it passed; the lock also makes concurrent checks
    /// wait for one probe instead of starting their own.
    last: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

impl StoreReadiness {
    /// A check of `store`.
    pub fn new(store: Arc<dyn StoreHealth>) -> Self {
        Self {
            store,
            last: tokio::sync::Mutex::new(None),
        }
    }
}

#[async_trait::async_trait]
impl ReadinessCheck for StoreReadiness {
    fn name(&self) -> &'static str {
        "store"
    }

    async fn check(&self) -> Result<(), String> {
        let mut last = self.last.lock().await;
        let passed = match *last {
            Some((at, passed)) if at.elapsed() < PROBE_FRESH_FOR => passed,
            previous => {
                let outcome =
                    match tokio::time::timeout(PROBE_TIMEOUT, self.store.probe_write()).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(error)) => Err(error.to_string()),
                        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
                    };
                let was_passing = previous.is_none_or(|(_, passed)| passed);
                match &outcome {
                    Err(cause) if was_passing => {
                        tracing::warn!(%cause, "readiness: the store cannot take writes")
                    }
                    Err(cause) => {
                        tracing::debug!(%cause, "readiness: the store is still unavailable")
                    }
                    Ok(()) if !was_passing => {
                        tracing::info!("readiness: the store takes writes again")
                    }
                    Ok(()) => {}
                }
                *last = Some((Instant::now(), outcome.is_ok()));
                outcome.is_ok()
            }
        };
        if passed {
            Ok(())
        } else {
            Err("unavailable".to_owned())
        }
    }
}

/// Runs every check at once and answers: 200 `ready`; 200 `degraded` when only optional checks
/// fail; 503 `unavailable` when a required one fails.
pub async fn report(checks: &[Arc<dyn ReadinessCheck>]) -> HttpResponse {
    let results = futures_util::future::join_all(
        checks
            .iter()
            .map(|c| async move { (c.name(), c.check().await, c.required()) }),
    )
    .await;
    let mut ready = true;
    let mut degraded = false;
    let mut report = serde_json::Map::new();
    for (name, result, required) in results {
        if required {
            ready &= result.is_ok();
        } else {
            degraded |= result.is_err();
        }
        report.insert(
            name.into(),
            match result {
                Ok(()) => json!("ok"),
                Err(reason) => json!(reason),
            },
        );
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = json_response(
        status,
        &json!({
            "status": match (ready, degraded) {
                (false, _) => "unavailable",
                (true, true) => "degraded",
                (true, false) => "ready",
            },
            "checks": report
        }),
    );
    if !ready {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from(crate::RETRY_AFTER_SECS),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::ports::StoreResult;
    use herald_domain::StoreError;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[derive(Default)]
    struct FakeStore {
        full: AtomicBool,
        probes: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl StoreHealth for FakeStore {
        async fn ping(&self) -> StoreResult<()> {
            Ok(())
        }

        async fn probe_write(&self) -> StoreResult<()> {
            self.probes.fetch_add(1, Ordering::SeqCst);
            if self.full.load(Ordering::SeqCst) {
                Err(StoreError::unavailable(
                    "Error occurred while creating a new object: database or disk is full",
                ))
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn a_store_that_cannot_write_is_unavailable_without_driver_text() {
        let store = Arc::new(FakeStore::default());
        store.full.store(true, Ordering::SeqCst);
        let check = StoreReadiness::new(store.clone());
        assert_eq!(check.check().await, Err("unavailable".to_owned()));
    }

    #[tokio::test]
    async fn probes_are_reused_while_fresh() {
        let store = Arc::new(FakeStore::default());
        let check = StoreReadiness::new(store.clone());
        for _ in 0..5 {
            assert_eq!(check.check().await, Ok(()));
        }
        assert_eq!(store.probes.load(Ordering::SeqCst), 1);
    }
}
