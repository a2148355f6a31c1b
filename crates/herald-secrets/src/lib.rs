//! Encryption at rest for webhook secrets: XChaCha20-Poly1305 under one 32-byte key
//! (`HERALD_SECRETS_KEY`, base64). A sealed secret is `v1:` + base64(nonce ‖ ciphertext ‖ tag);
//! a fresh random 24-byte nonce per seal makes nonce reuse a non-issue. Opening with the wrong
//! key, or opening tampered data, fails loudly instead of yielding garbage.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, Generate, Key, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use herald_domain::ports::{CipherError, SealedSecret, SecretCipher};
use std::io::Write;
use std::path::Path;

const VERSION_PREFIX: &str = "v1:";
const NONCE_LEN: usize = 24;

/// Why a key could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is not base64 of exactly 32 bytes.
    #[error("HERALD_SECRETS_KEY must be 32 bytes, base64-encoded")]
    Malformed,
    /// The key file could not be read or written.
    #[error("secrets key file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// The 32-byte key that seals webhook secrets.
#[derive(Clone)]
pub struct SecretsKey(Key<XChaCha20Poly1305>);

impl SecretsKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(Key::<XChaCha20Poly1305>::generate())
    }

    /// Reads the base64 form.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = B64.decode(text.trim()).map_err(|_| KeyError::Malformed)?;
        let key = Key::<XChaCha20Poly1305>::try_from(bytes.as_slice())
            .map_err(|_| KeyError::Malformed)?;
        Ok(Self(key))
    }

    /// The base64 form.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0.as_slice())
    }

    /// Reads the key stored at `path`, or creates it there (mode 0600) when the file is absent.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let file_error = |source| KeyError::File {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(file_error)?;
                }
                let key = Self::generate();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(file_error)?;
                file.write_all(key.to_base64().as_bytes())
                    .map_err(file_error)?;
                file.sync_all().map_err(file_error)?;
                Ok(key)
            }
            Err(e) => Err(file_error(e)),
        }
    }
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(<redacted>)")
    }
}

/// Seals and opens secrets with one key.
pub struct XChaChaCipher {
    cipher: XChaCha20Poly1305,
}

impl XChaChaCipher {
    /// A cipher under `key`.
    pub fn new(key: &SecretsKey) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&key.0),
        }
    }
}

impl SecretCipher for XChaChaCipher {
    fn seal(&self, plaintext: &[u8]) -> SealedSecret {
        let nonce = XNonce::generate();
        let ciphertext = self
            .cipher
            .encrypt(&nonce, plaintext)
            .expect("XChaCha20-Poly1305 encryption of a short secret cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ciphertext);
        SealedSecret(format!("{VERSION_PREFIX}{}", B64.encode(blob)))
    }

    fn open(&self, sealed: &SealedSecret) -> Result<Vec<u8>, CipherError> {
        let body = sealed
            .0
            .strip_prefix(VERSION_PREFIX)
            .ok_or_else(|| CipherError("unknown format".into()))?;
        let blob = B64
            .decode(body)
            .map_err(|_| CipherError("not base64".into()))?;
        if blob.len() < NONCE_LEN {
            return Err(CipherError("too short".into()));
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| CipherError("bad nonce".into()))?;
        self.cipher
            .decrypt(&nonce, ciphertext)
            .map_err(|_| CipherError("wrong key or tampered data".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips_and_never_shows_plaintext() {
        let cipher = XChaChaCipher::new(&SecretsKey::generate());
        let sealed = cipher.seal(b"a-very-secret-value");
        assert!(!sealed.0.contains("secret"));
        assert_ne!(
            cipher.seal(b"a-very-secret-value"),
            sealed,
            "fresh nonce per seal"
        );
        assert_eq!(cipher.open(&sealed).unwrap(), b"a-very-secret-value");
    }

    #[test]
    fn the_wrong_key_or_tampering_fails() {
        let sealed = XChaChaCipher::new(&SecretsKey::generate()).seal(b"s3cr3t-s3cr3t-s3");
        assert!(XChaChaCipher::new(&SecretsKey::generate())
            .open(&sealed)
            .is_err());
        let mut tampered = sealed.0.clone();
        tampered.pop();
        tampered.push(if sealed.0.ends_with('A') { 'B' } else { 'A' });
        let cipher = XChaChaCipher::new(&SecretsKey::generate());
        assert!(cipher.open(&SealedSecret(tampered)).is_err());
    }

    #[test]
    fn keys_round_trip_through_base64_and_files() {
        let key = SecretsKey::generate();
        assert_eq!(
            SecretsKey::from_base64(&key.to_base64())
                .unwrap()
                .to_base64(),
            key.to_base64()
        );
        assert!(SecretsKey::from_base64("c2hvcnQ=").is_err());
        let dir = std::env::temp_dir().join(format!("herald-key-{}", std::process::id()));
        let path = dir.join("secrets.key");
        let _ = std::fs::remove_file(&path);
        let created = SecretsKey::load_or_create(&path).unwrap();
        let loaded = SecretsKey::load_or_create(&path).unwrap();
        assert_eq!(created.to_base64(), loaded.to_base64());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
