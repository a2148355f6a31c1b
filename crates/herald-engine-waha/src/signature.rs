//! The check of WAHA's signed webhooks. WAHA signs the exact bytes it posts with HMAC-SHA512
//! under the key configured on the session's webhook and sends the lowercase hex digest as
//! `X-Webhook-Hmac` (naming the algorithm in `X-Webhook-Hmac-Algorithm`). Herald checks it on
//! the raw body before reading anything from it, so an unsigned or forged request never reaches
//! the JSON parser, and compares in constant time so the check leaks nothing about the digest.

use crate::config::Secret;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha512;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-webhook-hmac";
/// The header naming the signature's algorithm.
pub const ALGORITHM_HEADER: &str = "x-webhook-hmac-algorithm";
/// The one algorithm WAHA signs with.
pub const ALGORITHM: &str = "sha512";

/// Why a webhook's signature was refused (Herald answers 401 for every one of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Webhook-Hmac` header.
    #[error("the X-Webhook-Hmac header is missing")]
    Missing,
    /// The header is not a hex SHA-512 digest.
    #[error("the X-Webhook-Hmac header is not a hex HMAC-SHA512 digest")]
    Malformed,
    /// `X-Webhook-Hmac-Algorithm` names another algorithm than `sha512`.
    #[error("the X-Webhook-Hmac-Algorithm is not sha512")]
    UnsupportedAlgorithm,
    /// The digest does not match the body under the configured key.
    #[error("the X-Webhook-Hmac signature does not match the body")]
    Mismatch,
}

/// Checks WAHA webhooks against the configured key.
#[derive(Clone, Debug)]
pub struct WebhookVerifier {
    key: Secret,
}

impl WebhookVerifier {
    /// A verifier for webhooks signed with `key`.
    pub fn new(key: Secret) -> Self {
        Self { key }
    }

    /// Checks the headers of a webhook request against its raw `body`.
    pub fn verify_headers(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        self.verify(
            headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes()),
            headers.get(ALGORITHM_HEADER).map(|v| v.as_bytes()),
            body,
        )
    }

    /// Checks `signature` (the `X-Webhook-Hmac` value) and `algorithm` (the
    /// `X-Webhook-Hmac-Algorithm` value, which may be absent) against the raw `body`.
    pub fn verify(
        &self,
        signature: Option<&[u8]>,
        algorithm: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let signature = signature.ok_or(SignatureError::Missing)?;
        if let Some(algorithm) = algorithm {
            if !algorithm
                .trim_ascii()
                .eq_ignore_ascii_case(ALGORITHM.as_bytes())
            {
                return Err(SignatureError::UnsupportedAlgorithm);
            }
        }
        let digest = hex::decode(signature.trim_ascii()).map_err(|_| SignatureError::Malformed)?;
        if digest.len() != 64 {
            return Err(SignatureError::Malformed);
        }
        self.mac(body)
            .verify_slice(&digest)
            .map_err(|_| SignatureError::Mismatch)
    }

    /// The lowercase hex signature of `body` (what WAHA sends).
    pub fn sign(&self, body: &[u8]) -> String {
        hex::encode(self.mac(body).finalize().into_bytes())
    }

    fn mac(&self, body: &[u8]) -> Hmac<Sha512> {
        let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(self.key.expose().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(body);
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WAHA's published test vector.
    const KEY: &str = "my-secret-key";
    const BODY: &[u8] = br#"{"event":"message","session":"default","engine":"WEBJS"}"#;
    const DIGEST: &str = "208f8a55dde9e05519e898b10b89bf0d0b3b0fdf11fdbf09b6b90476301b98d8097c462b2b17a6ce93b6b47a136cf2e78a33a63f6752c2c1631777076153fa89";

    fn verifier() -> WebhookVerifier {
        WebhookVerifier::new(Secret::new(KEY))
    }

    #[test]
    fn wahas_published_vector_verifies() {
        assert_eq!(verifier().sign(BODY), DIGEST);
        assert_eq!(
            verifier().verify(Some(DIGEST.as_bytes()), Some(b"sha512"), BODY),
            Ok(())
        );
        assert_eq!(
            verifier().verify(Some(DIGEST.as_bytes()), None, BODY),
            Ok(())
        );
        let upper = DIGEST.to_uppercase();
        assert_eq!(
            verifier().verify(Some(upper.as_bytes()), Some(b"SHA512"), BODY),
            Ok(())
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let v = verifier();
        assert_eq!(
            v.verify(None, Some(b"sha512"), BODY),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            v.verify(Some(b""), None, BODY),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            v.verify(Some(b"zz"), None, BODY),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            v.verify(Some(&DIGEST.as_bytes()[..64]), None, BODY),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            v.verify(Some(DIGEST.as_bytes()), Some(b"sha256"), BODY),
            Err(SignatureError::UnsupportedAlgorithm)
        );
        let tampered = br#"{"event":"message","session":"default","engine":"NOWEB"}"#;
        assert_eq!(
            v.verify(Some(DIGEST.as_bytes()), None, tampered),
            Err(SignatureError::Mismatch)
        );
        let other_key = WebhookVerifier::new(Secret::new("another-key"));
        assert_eq!(
            other_key.verify(Some(DIGEST.as_bytes()), None, BODY),
            Err(SignatureError::Mismatch)
        );
        let mut flipped = DIGEST.as_bytes().to_vec();
        flipped[127] = b'8';
        assert_eq!(
            v.verify(Some(&flipped), None, BODY),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn headers_are_read_case_insensitively() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(
            verifier().verify_headers(&headers, BODY),
            Err(SignatureError::Missing)
        );
        headers.insert("X-Webhook-Hmac", DIGEST.parse().unwrap());
        headers.insert("X-Webhook-Hmac-Algorithm", "sha512".parse().unwrap());
        assert_eq!(verifier().verify_headers(&headers, BODY), Ok(()));
        assert!(!format!("{:?}", verifier()).contains(KEY));
    }
}
