//! API keys: minting (`hk_` + 256 random bits), hashing (SHA-256, hex) and verification with a
//! short-lived cache. Looking a key up by the hash of the presented token means the database
//! never compares secrets; the cache compares hashes in constant time anyway.

use herald_domain::api_key::ApiKey;
use herald_domain::ports::{ApiKeyStore, AuthError, Clock, KeyMinter};
use herald_domain::{ApiKeyId, Principal, Subject};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

const PREFIX: &str = "hk_";

/// Whether a token has the shape of a Herald API key.
pub fn looks_like_api_key(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// Mints `hk_<64 hex>` tokens and hashes them with SHA-256.
pub struct Sha256Minter;

impl KeyMinter for Sha256Minter {
    fn mint_token(&self) -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        format!("{PREFIX}{}", hex::encode(bytes))
    }

    fn hash_token(&self, token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }

    fn secret_bytes(&self) -> [u8; herald_domain::webhook::WebhookSecret::GENERATED_BYTES] {
        let mut bytes = [0u8; herald_domain::webhook::WebhookSecret::GENERATED_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        bytes
    }
}

struct Cached {
    hash: String,
    key: ApiKey,
    fetched: Instant,
}

/// Verifies API keys against the store, caching each for a few seconds.
pub struct ApiKeyAuthenticator {
    store: Arc<dyn ApiKeyStore>,
    clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<String, Cached>>,
    last_touch: Mutex<HashMap<ApiKeyId, Instant>>,
    cache_ttl: Duration,
}

impl ApiKeyAuthenticator {
    /// How long a verified key is trusted without asking the store again: a key revoked on
    /// another replica is refused within this time.
    pub const CACHE_TTL: Duration = Duration::from_secs(2);
    /// `lastUsedAt` is written at most this often per key.
    pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);
    const MAX_CACHED: usize = 100_000;

    /// An authenticator over `store`.
    pub fn new(store: Arc<dyn ApiKeyStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            cache: Mutex::new(HashMap::new()),
            last_touch: Mutex::new(HashMap::new()),
            cache_ttl: Self::CACHE_TTL,
        }
    }

    /// Trusts a verified key for `ttl` instead of [`Self::CACHE_TTL`] (zero asks the store
    /// every time; benchmarks use it to measure the uncached path). Keep it under 5 s: that is
    /// how late another replica may still accept a revoked key.
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Verifies a presented API key.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let hash = Sha256Minter.hash_token(token);
        let key = match self.cached(&hash) {
            Some(key) => key,
            None => {
                let key = self
                    .store
                    .find_api_key_by_hash(&hash)
                    .await?
                    .ok_or_else(|| AuthError::Rejected("unknown or revoked API key".into()))?;
                if !self.cache_ttl.is_zero() {
                    self.remember(hash, key.clone());
                }
                key
            }
        };
        self.touch(&key);
        Ok(Principal {
            organization: key.organization_id.clone(),
            capabilities: key.capabilities,
            subject: Subject::ApiKey(key.id),
            expires_at: None,
        })
    }

    /// Drops a key from the cache (it was revoked here).
    pub fn forget(&self, id: &ApiKeyId) {
        self.cache
            .lock()
            .expect("cache lock")
            .retain(|_, c| c.key.id != *id);
    }

    fn cached(&self, hash: &str) -> Option<ApiKey> {
        let cache = self.cache.lock().expect("cache lock");
        let entry = cache.get(hash)?;
        let fresh = entry.fetched.elapsed() < self.cache_ttl;
        (fresh && bool::from(entry.hash.as_bytes().ct_eq(hash.as_bytes())))
            .then(|| entry.key.clone())
    }

    fn remember(&self, hash: String, key: ApiKey) {
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= Self::MAX_CACHED {
            let ttl = self.cache_ttl;
            cache.retain(|_, c| c.fetched.elapsed() < ttl);
        }
        cache.insert(
            hash.clone(),
            Cached {
                hash,
                key,
                fetched: Instant::now(),
            },
        );
    }

    /// Records use in the background, at most once a minute per key, so authentication never
    /// waits on a write.
    fn touch(&self, key: &ApiKey) {
        {
            let mut touched = self.last_touch.lock().expect("touch lock");
            match touched.get(&key.id) {
                Some(at) if at.elapsed() < Self::TOUCH_INTERVAL => return,
                _ => {
                    touched.insert(key.id, Instant::now());
                }
            }
        }
        let store = self.store.clone();
        let id = key.id;
        let now = self.clock.now_ms();
        tokio::spawn(async move {
            if let Err(error) = store.touch_api_key(&id, now).await {
                tracing::warn!(%error, key = %id, "could not record API key use");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hash_stably() {
        let a = Sha256Minter.mint_token();
        let b = Sha256Minter.mint_token();
        assert!(looks_like_api_key(&a) && a.len() == 67 && a != b);
        assert_eq!(Sha256Minter.hash_token(&a), Sha256Minter.hash_token(&a));
        assert_ne!(Sha256Minter.hash_token(&a), Sha256Minter.hash_token(&b));
        assert!(!Sha256Minter.hash_token(&a).contains(&a[3..]));
    }
}
