//! What the JWT unit tests share: fixed test keys that sign tokens and publish their JWKs, and
//! an in-memory JWKS endpoint that counts fetches and can be made to fail. No I/O.

use super::{now_ms, JwksFetcher, JwtConfig, JwtVerifier};
use herald_domain::ports::AuthError;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

// Test-only keys shared with herald-testkit (generated once with openssl).
pub(super) const RSA1: &str = include_str!("../../../herald-testkit/keys/rsa1.pem");
pub(super) const RSA2: &str = include_str!("../../../herald-testkit/keys/rsa2.pem");
pub(super) const EC1: &str = include_str!("../../../herald-testkit/keys/ec1.pem");
pub(super) const ED1: &str = include_str!("../../../herald-testkit/keys/ed1.pem");

/// A signing key with its `kid` and algorithm.
pub(super) struct Key {
    pub(super) kid: &'static str,
    pub(super) alg: Algorithm,
    encoding: EncodingKey,
}

impl Key {
    pub(super) fn new(kid: &'static str, alg: Algorithm, pem: &str) -> Self {
        let encoding = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            _ => EncodingKey::from_ed_pem(pem.as_bytes()),
        }
        .unwrap();
        Self { kid, alg, encoding }
    }

    /// The public JWK, with this key's `kid`.
    pub(super) fn jwk(&self) -> Value {
        let mut jwk =
            serde_json::to_value(Jwk::from_encoding_key(&self.encoding, self.alg).unwrap())
                .unwrap();
        jwk["kid"] = json!(self.kid);
        jwk
    }

    /// A token over `claims` naming this key.
    pub(super) fn sign(&self, claims: &Value) -> String {
        self.sign_with(&key_header(self), claims)
    }

    /// A token over `claims` with any header, signed by this key.
    pub(super) fn sign_with(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &self.encoding).unwrap()
    }
}

/// The header naming `key`'s algorithm and `kid`.
pub(super) fn key_header(key: &Key) -> Header {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.into());
    header
}

pub(super) fn rsa() -> Key {
    Key::new("rsa-1", Algorithm::RS256, RSA1)
}
pub(super) fn ec() -> Key {
    Key::new("ec-1", Algorithm::ES256, EC1)
}
pub(super) fn ed() -> Key {
    Key::new("ed-1", Algorithm::EdDSA, ED1)
}

/// A JWKS document publishing `keys`.
pub(super) fn jwks(keys: &[&Key]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

/// An in-memory JWKS endpoint that counts fetches and can fail.
pub(super) struct FakeJwks {
    document: Mutex<Result<Value, String>>,
    fetches: AtomicUsize,
}

impl FakeJwks {
    pub(super) fn new(document: Value) -> Arc<Self> {
        Arc::new(Self {
            document: Mutex::new(Ok(document)),
            fetches: AtomicUsize::new(0),
        })
    }
    pub(super) fn set(&self, document: Result<Value, String>) {
        *self.document.lock().unwrap() = document;
    }
    pub(super) fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl JwksFetcher for FakeJwks {
    fn fetch(&self) -> Result<Vec<u8>, String> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.document
            .lock()
            .unwrap()
            .clone()
            .map(|d| serde_json::to_vec(&d).unwrap())
    }
}

pub(super) fn verifier_with(config: JwtConfig, fake: &Arc<FakeJwks>) -> JwtVerifier {
    JwtVerifier::with_fetcher(config, fake.clone())
}

/// A verifier that has fetched a JWKS publishing `keys`.
pub(super) async fn loaded(keys: &[&Key]) -> (JwtVerifier, Arc<FakeJwks>) {
    let fake = FakeJwks::new(jwks(keys));
    let verifier = verifier_with(JwtConfig::new("test://jwks"), &fake);
    verifier.refresh().await.unwrap();
    (verifier, fake)
}

/// Now, in epoch seconds.
pub(super) fn now() -> i64 {
    now_ms() / 1000
}

/// Claims valid for ten minutes, each token unique (`jti`).
pub(super) fn claims(org: &str, role: &str) -> Value {
    json!({"sub": "user_7", "org": org, "role": role, "exp": now() + 600, "jti": jti()})
}

fn jti() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}", N.fetch_add(1, Ordering::SeqCst))
}

/// The sentence a refused token gets (panics if it is accepted).
pub(super) async fn refused(verifier: &JwtVerifier, token: &str) -> String {
    match verifier.verify(token).await {
        Err(AuthError::Rejected(message)) => message,
        other => panic!("expected a rejection, got {other:?}"),
    }
}
