//! The verified-token cache. Checking a signature costs tens of microseconds, far more than the
//! rest of a cheap request, and a frontend reuses one login token for its whole life; so the
//! principal of a verified token is remembered until the token expires (leeway included).
//!
//! Entries are keyed by the SHA-256 of the token, never the token itself. The cache is bounded
//! ([`JwtConfig::token_cache_capacity`](super::JwtConfig::token_cache_capacity)): when it is
//! full, expired entries are dropped, and if it is still full of live tokens it starts over
//! rather than grow. The key set empties it whenever a refresh withdraws or replaces a key, so
//! a key removed from the JWKS stops authorizing cached tokens at the same moment it stops
//! verifying new ones.

use super::now_ms;
use herald_domain::{Millis, Principal};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

struct CachedToken {
    principal: Principal,
    /// Past this instant (epoch ms, leeway included) the token is expired.
    valid_until_ms: Millis,
}

/// Principals of verified tokens, by token digest.
pub(super) struct TokenCache {
    capacity: usize,
    tokens: Mutex<HashMap<[u8; 32], CachedToken>>,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens; 0 remembers nothing.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The key a token is remembered under.
    pub(super) fn digest(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The principal of a token verified before, while it has not expired.
    pub(super) fn get(&self, digest: &[u8; 32]) -> Option<Principal> {
        if self.capacity == 0 {
            return None;
        }
        let tokens = self.tokens.lock().expect("token cache lock");
        let entry = tokens.get(digest)?;
        (now_ms() <= entry.valid_until_ms).then(|| entry.principal.clone())
    }

    /// Remembers a verified token's principal until `valid_until_ms`.
    pub(super) fn remember(&self, digest: [u8; 32], principal: &Principal, valid_until_ms: Millis) {
        let capacity = self.capacity;
        if capacity == 0 {
            return;
        }
        let mut tokens = self.tokens.lock().expect("token cache lock");
        if tokens.len() >= capacity {
            let now = now_ms();
            tokens.retain(|_, t| t.valid_until_ms >= now);
            if tokens.len() >= capacity {
                // Still full of live tokens: start over rather than grow without bound.
                tokens.clear();
            }
        }
        tokens.insert(
            digest,
            CachedToken {
                principal: principal.clone(),
                valid_until_ms,
            },
        );
    }

    /// Forgets every token (a key they may have been verified with is gone).
    pub(super) fn clear(&self) {
        self.tokens.lock().expect("token cache lock").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::test_support::*;

    fn principal() -> Principal {
        Principal {
            organization: herald_domain::OrgId::parse("org").unwrap(),
            capabilities: herald_domain::Capabilities::NONE,
            subject: herald_domain::Subject::User(None),
            expires_at: None,
        }
    }

    #[test]
    fn expired_tokens_are_not_served_and_a_full_cache_starts_over() {
        let cache = TokenCache::new(2);
        let (live, expired) = (TokenCache::digest("live"), TokenCache::digest("expired"));
        cache.remember(live, &principal(), Millis::MAX);
        cache.remember(expired, &principal(), 0);
        assert!(cache.get(&live).is_some());
        assert!(cache.get(&expired).is_none());
        // Full: the expired entry makes room for a third token.
        cache.remember(TokenCache::digest("third"), &principal(), Millis::MAX);
        assert!(cache.get(&live).is_some());
        // Full of live tokens: it starts over rather than grow.
        cache.remember(TokenCache::digest("fourth"), &principal(), Millis::MAX);
        assert!(cache.get(&live).is_none());
        assert!(cache.get(&TokenCache::digest("fourth")).is_some());
    }

    #[test]
    fn a_cache_of_capacity_zero_remembers_nothing() {
        let cache = TokenCache::new(0);
        let digest = TokenCache::digest("token");
        cache.remember(digest, &principal(), Millis::MAX);
        assert!(cache.get(&digest).is_none());
    }

    #[tokio::test]
    async fn withdrawing_a_key_also_drops_tokens_it_vouched_for() {
        let (one, two) = (rsa(), ed());
        let (verifier, fake) = loaded(&[&one, &two]).await;
        let token = one.sign(&claims("o", "owner"));
        verifier.verify(&token).await.unwrap();
        verifier.verify(&token).await.unwrap(); // now cached
        fake.set(Ok(jwks(&[&two])));
        verifier.refresh().await.unwrap();
        assert!(verifier.verify(&token).await.is_err());
    }
}
