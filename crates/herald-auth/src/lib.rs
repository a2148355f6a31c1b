//! Herald's authenticator: turns a bearer token into a [`Principal`].
//!
//! Two kinds of token are accepted, tried in turn: an API key (`hk_…`, looked up by its SHA-256
//! hash, cached for at most [`ApiKeyAuthenticator::CACHE_TTL`] so a key revoked on another
//! replica is refused within seconds). This crate never stores a token, only hashes of API keys.

pub mod api_keys;

pub use api_keys::{ApiKeyAuthenticator, Sha256Minter};

use async_trait::async_trait;
use herald_domain::ports::{AuthError, Authenticator};
use herald_domain::{ApiKeyId, Principal};

/// Tries an API key first (cheap to recognise by its prefix), then a login JWT.
pub struct BearerAuthenticator {
    api_keys: ApiKeyAuthenticator,
}

impl BearerAuthenticator {
    /// Accepts API keys.
    pub fn new(api_keys: ApiKeyAuthenticator) -> Self {
        Self { api_keys }
    }
}

#[async_trait]
impl Authenticator for BearerAuthenticator {
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > 16 * 1024 {
            return Err(AuthError::Rejected("token too long".into()));
        }
        if api_keys::looks_like_api_key(token) {
            return self.api_keys.authenticate(token).await;
        }
        Err(AuthError::Rejected("unknown API key".into()))
    }

    fn forget_api_key(&self, id: &ApiKeyId) {
        self.api_keys.forget(id);
    }
}
