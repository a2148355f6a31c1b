//! Login JWTs: the frontend signs them, Herald verifies them against the frontend's JWKS.
//!
//! [`JwtVerifier`] is the one entry point; it is built from four concerns, one module each:
//!
//! - **Key fetching** (`fetch`): [`JwksFetcher`] gets the JWKS bytes; [`HttpJwksFetcher`] does
//!   it over HTTP(S) from the configured URL with short timeouts and a size cap. Keys come from
//!   that URL and nowhere else: a token's `jku`, `x5u`, `x5c` and `jwk` headers are never read.
//! - **Key set policy** (`keys`): which keys are trusted and for which single algorithm — only
//!   RS256 (RSA of at least 2048 bits), ES256 (P-256) and EdDSA (Ed25519), fixed by the key's
//!   type, so `none`, every HS* and every algorithm confusion are 401s; how a token's key is
//!   chosen by `kid`; when the set is fetched again (start-up, every
//!   [`JwtConfig::refresh_interval`], and for an unknown `kid` at most once per
//!   [`JwtConfig::min_refetch_interval`]); and when it counts as stale. A failed fetch keeps the
//!   last good keys and [`JwtVerifier::health`] says so (for `/readyz`).
//! - **Verification** (`verify`): the header, the signature, `exp`/`nbf` with leeway,
//!   `iss`/`aud` when configured, and the claims that make the principal (organization, role,
//!   subject, expiry).
//! - **The verified-token cache** (`cache`): a verified token's principal is remembered under
//!   the token's SHA-256 until it expires, in bounded memory, emptied whenever the key set
//!   withdraws or replaces a key.

mod cache;
mod fetch;
mod keys;
#[cfg(test)]
mod test_support;
mod verify;

pub use fetch::{HttpJwksFetcher, JwksFetcher};
pub use keys::{JwksStatus, MAX_KID_LEN};

use cache::TokenCache;
use herald_domain::ports::AuthError;
use herald_domain::{Millis, Principal};
use keys::Jwks;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How login JWTs are checked. Build it with [`JwtConfig::new`] and adjust the public fields.
#[derive(Clone, Debug)]
pub struct JwtConfig {
    /// Where the frontend publishes its JWKS (`HERALD_JWKS_URL`).
    pub jwks_url: String,
    /// The required `iss`, if any (`HERALD_JWT_ISSUER`).
    pub issuer: Option<String>,
    /// The required `aud`, if any (`HERALD_JWT_AUDIENCE`).
    pub audience: Option<String>,
    /// The claim naming the organization (`HERALD_JWT_ORG_CLAIM`, default `org`).
    pub org_claim: String,
    /// The claim naming the role (`HERALD_JWT_ROLE_CLAIM`, default `role`).
    pub role_claim: String,
    /// How often the JWKS is fetched again regardless of tokens (default 5 min).
    pub refresh_interval: Duration,
    /// The least time between two fetches caused by unknown `kid`s (default 10 s).
    pub min_refetch_interval: Duration,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (default 60).
    pub leeway_secs: u64,
    /// How many verified tokens are remembered (default 10,000; 0 verifies every time).
    pub token_cache_capacity: usize,
}

impl JwtConfig {
    /// The documented defaults for a JWKS at `jwks_url`.
    pub fn new(jwks_url: impl Into<String>) -> Self {
        Self {
            jwks_url: jwks_url.into(),
            issuer: None,
            audience: None,
            org_claim: "org".into(),
            role_claim: "role".into(),
            refresh_interval: Duration::from_secs(300),
            min_refetch_interval: Duration::from_secs(10),
            leeway_secs: 60,
            token_cache_capacity: 10_000,
        }
    }
}

/// Verifies login JWTs against a JWKS and turns them into principals.
pub struct JwtVerifier {
    config: JwtConfig,
    jwks: Jwks,
    tokens: TokenCache,
}

fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

fn rejected(message: impl Into<String>) -> AuthError {
    AuthError::Rejected(message.into())
}

impl JwtVerifier {
    /// A verifier fetching its keys over HTTP from `config.jwks_url`. No fetch happens until
    /// [`Self::refresh`] or the first token.
    pub fn new(config: JwtConfig) -> Self {
        let fetcher = Arc::new(HttpJwksFetcher::new(config.jwks_url.clone()));
        Self::with_fetcher(config, fetcher)
    }

    /// A verifier getting its keys from `fetcher` (tests and embedders with their own source).
    pub fn with_fetcher(config: JwtConfig, fetcher: Arc<dyn JwksFetcher>) -> Self {
        Self {
            jwks: Jwks::new(fetcher),
            tokens: TokenCache::new(config.token_cache_capacity),
            config,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// Fetches the JWKS now. On failure the previous keys stay in use and the error is
    /// returned (and reported by [`Self::health`]).
    pub async fn refresh(&self) -> Result<usize, String> {
        self.jwks
            .refresh(&self.config, &|| self.tokens.clear())
            .await
    }

    /// What the JWKS looks like now.
    pub fn status(&self) -> JwksStatus {
        self.jwks.status()
    }

    /// `Ok` when the keys are fresh; otherwise a sentence saying the JWKS is stale (the last
    /// fetch failed, or none succeeded for three refresh intervals) or was never loaded.
    pub fn health(&self) -> Result<(), String> {
        self.jwks.health(self.config.refresh_interval)
    }

    /// Refreshes the JWKS every `refresh_interval` until the verifier is dropped.
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let interval = self.config.refresh_interval.max(Duration::from_secs(1));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(verifier) = weak.upgrade() else {
                    return;
                };
                let _ = verifier.refresh().await;
            }
        })
    }

    /// Verifies a login JWT and returns the principal it speaks for.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let digest = TokenCache::digest(token);
        if let Some(principal) = self.tokens.get(&digest) {
            return Ok(principal);
        }
        let header = verify::header(token)?;
        let key = self
            .jwks
            .key_for(header.kid.as_deref(), header.alg, &self.config, &|| {
                self.tokens.clear()
            })
            .await?;
        let claims = verify::verified_claims(token, &header, &key)?;
        let (principal, valid_until_ms) = verify::principal(&claims, &self.config)?;
        self.tokens.remember(digest, &principal, valid_until_ms);
        Ok(principal)
    }
}
