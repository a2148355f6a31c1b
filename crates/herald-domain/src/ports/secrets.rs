//! The sealed secrets a store keeps for webhooks, and the cipher port that seals and opens
//! them. The store only ever sees sealed text; plaintext exists only between the cipher and the
//! use case (or the dispatcher signing a delivery).

use crate::webhook::SecretChange;
use crate::Millis;

/// A sealed (encrypted, authenticated) secret as stored: opaque text.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SealedSecret(pub String);

/// The secret as the store should write it.
#[derive(Clone, Debug)]
pub enum SealedSecretChange {
    /// Leave the stored secret alone.
    Keep,
    /// Remove it.
    Remove,
    /// Store this sealed secret.
    Set(SealedSecret),
}

/// A secret replaced by a rotation that still signs deliveries until `until`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PreviousSecret {
    /// The sealed secret.
    pub sealed: SealedSecret,
    /// When it stops signing (epoch ms).
    pub until: Millis,
}

/// Every secret of a webhook, sealed: the current one and those still in their grace period,
/// oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredSecrets {
    /// The current secret (`None`: deliveries go unsigned).
    pub current: Option<SealedSecret>,
    /// Earlier secrets, oldest first.
    pub previous: Vec<PreviousSecret>,
}

impl StoredSecrets {
    /// Most earlier secrets kept; a rotation beyond it drops the oldest.
    pub const MAX_PREVIOUS: usize = 5;

    /// The secrets after rotating to `new` at `now`: the current one signs on for `grace_ms`
    /// (not at all when 0), earlier ones keep their own end, expired ones are erased and at most
    /// [`Self::MAX_PREVIOUS`] are kept.
    pub fn rotated(&self, new: SealedSecret, now: Millis, grace_ms: Millis) -> Self {
        let mut previous: Vec<PreviousSecret> = self
            .previous
            .iter()
            .filter(|p| p.until > now)
            .cloned()
            .collect();
        if let Some(current) = &self.current {
            if grace_ms > 0 {
                previous.push(PreviousSecret {
                    sealed: current.clone(),
                    until: now.saturating_add(grace_ms),
                });
            }
        }
        let excess = previous.len().saturating_sub(Self::MAX_PREVIOUS);
        previous.drain(..excess);
        Self {
            current: Some(new),
            previous,
        }
    }

    /// When the last earlier secret stops signing.
    pub fn valid_until(&self) -> Option<Millis> {
        self.previous.iter().map(|p| p.until).max()
    }
}

/// Encrypts secrets before they reach the store and decrypts them for signing.
pub trait SecretCipher: Send + Sync {
    /// Seals `plaintext` with a fresh nonce.
    fn seal(&self, plaintext: &[u8]) -> SealedSecret;
    /// Opens a sealed secret; fails on a wrong key or tampered data.
    fn open(&self, sealed: &SealedSecret) -> Result<Vec<u8>, CipherError>;
}

/// A sealed secret could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("the secret cannot be decrypted: {0}")]
pub struct CipherError(pub String);

/// Turns a secret change into what the store writes, sealing a new secret.
pub fn seal_change(cipher: &dyn SecretCipher, change: &SecretChange) -> SealedSecretChange {
    match change {
        SecretChange::Keep => SealedSecretChange::Keep,
        SecretChange::Remove => SealedSecretChange::Remove,
        SecretChange::Set(secret) => SealedSecretChange::Set(cipher.seal(secret.expose())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(n: u32) -> SealedSecret {
        SealedSecret(format!("s{n}"))
    }

    #[test]
    fn rotation_keeps_five_earlier_secrets_in_grace_and_erases_expired_ones() {
        let mut secrets = StoredSecrets {
            current: Some(sealed(0)),
            previous: Vec::new(),
        };
        for n in 1..=7 {
            secrets = secrets.rotated(sealed(n), 1_000 * i64::from(n), 60_000);
        }
        assert_eq!(secrets.current, Some(sealed(7)));
        let kept: Vec<&str> = secrets
            .previous
            .iter()
            .map(|p| p.sealed.0.as_str())
            .collect();
        assert_eq!(
            kept,
            ["s2", "s3", "s4", "s5", "s6"],
            "the oldest are dropped"
        );
        assert_eq!(secrets.valid_until(), Some(67_000));
        // Long after every grace ended, a rotation without grace leaves nothing behind.
        let later = secrets.rotated(sealed(8), 1_000_000, 0);
        assert!(later.previous.is_empty());
        assert_eq!(later.valid_until(), None);
        // A webhook without a secret gains one and nothing in grace.
        let first = StoredSecrets::default().rotated(sealed(1), 5, 60_000);
        assert_eq!((first.current, first.previous.len()), (Some(sealed(1)), 0));
    }
}
