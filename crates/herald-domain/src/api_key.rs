//! API keys: long-lived credentials for scripts and services, one organization each, with a
//! fixed capability set. Only a hash of the token is ever stored.

use crate::capability::Capabilities;
use crate::ids::{ApiKeyId, OrgId};
use crate::Millis;
use serde::Serialize;

/// An API key as listed (never with its token).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// `key_…`.
    pub id: ApiKeyId,
    /// The owner.
    #[serde(skip)]
    pub organization_id: OrgId,
    /// A human label.
    pub name: String,
    /// What the key may do.
    pub capabilities: Capabilities,
    /// Creation time.
    pub created_at: Millis,
    /// Last time it authenticated a request (coarse: updated at most once a minute).
    pub last_used_at: Option<Millis>,
}

impl ApiKey {
    /// Longest key name, in characters.
    pub const MAX_NAME: usize = 200;
}

/// A freshly minted key: the record and the token, shown exactly once.
#[derive(Clone, Debug)]
pub struct MintedKey {
    /// The stored record.
    pub key: ApiKey,
    /// The bearer token.
    pub token: String,
}
