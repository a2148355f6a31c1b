//! The credential ports: turning a bearer token into a principal, and minting and hashing API
//! key tokens (and the random bytes of generated webhook secrets).

use crate::capability::Principal;
use crate::error::StoreError;
use crate::ids::ApiKeyId;
use async_trait::async_trait;

/// Makes new API key tokens and hashes presented ones.
pub trait KeyMinter: Send + Sync {
    /// A fresh high-entropy token.
    fn mint_token(&self) -> String;
    /// The stored form of a token.
    fn hash_token(&self, token: &str) -> String;
    /// Fresh random bytes for a generated webhook secret.
    fn secret_bytes(&self) -> [u8; crate::webhook::WebhookSecret::GENERATED_BYTES];
}

/// Why a bearer token was refused (always a 401).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token is missing, malformed, expired, badly signed, unknown or revoked.
    #[error("{0}")]
    Rejected(String),
    /// The credential store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Turns a bearer token into a principal.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// Verifies `token` and returns who it speaks for.
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError>;
    /// Forgets any cached state about a revoked key so this replica refuses it at once.
    fn forget_api_key(&self, id: &ApiKeyId);
}
