//! Herald's authenticator: turns a bearer token into a [`Principal`].
//!
//! Two kinds of token are accepted, tried in turn: an API key (`hk_…`, looked up by its SHA-256
//! hash, cached for at most [`ApiKeyAuthenticator::CACHE_TTL`] so a key revoked on another
//! replica is refused within seconds), and a login JWT minted by the frontend, verified against
//! its JWKS by [`JwtVerifier`] (see [`jwt`]). This crate never stores a token, only hashes of
//! API keys and (in memory) of verified JWTs.

pub mod api_keys;
pub mod jwt;

pub use api_keys::{ApiKeyAuthenticator, Sha256Minter};
pub use jwt::{HttpJwksFetcher, JwksFetcher, JwksStatus, JwtConfig, JwtVerifier};

use async_trait::async_trait;
use herald_domain::ports::{AuthError, Authenticator};
use herald_domain::{ApiKeyId, Principal};
use std::sync::Arc;

/// Tries an API key first (cheap to recognise by its prefix), then a login JWT.
pub struct BearerAuthenticator {
    api_keys: ApiKeyAuthenticator,
    jwt: Option<Arc<JwtVerifier>>,
}

impl BearerAuthenticator {
    /// The longest bearer token looked at; anything longer is refused unread.
    pub const MAX_TOKEN_LEN: usize = 16 * 1024;

    /// Accepts API keys only.
    pub fn new(api_keys: ApiKeyAuthenticator) -> Self {
        Self {
            api_keys,
            jwt: None,
        }
    }

    /// Also accepts login JWTs verified by `jwt`.
    pub fn with_jwt(mut self, jwt: Arc<JwtVerifier>) -> Self {
        self.jwt = Some(jwt);
        self
    }
}

#[async_trait]
impl Authenticator for BearerAuthenticator {
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > Self::MAX_TOKEN_LEN {
            return Err(AuthError::Rejected("token too long".into()));
        }
        if api_keys::looks_like_api_key(token) {
            return self.api_keys.authenticate(token).await;
        }
        match &self.jwt {
            Some(jwt) => jwt.verify(token).await,
            None => Err(AuthError::Rejected(
                "unknown API key (login JWTs are not accepted: no JWKS is configured)".into(),
            )),
        }
    }

    fn forget_api_key(&self, id: &ApiKeyId) {
        self.api_keys.forget(id);
    }
}
