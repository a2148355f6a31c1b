//! Key set policy: which keys of the JWKS are trusted, which algorithm each one verifies, how a
//! token's key is chosen, and when the set is fetched again.
//!
//! - **Trusted keys.** A JWK is kept only if it is a signature key of one of three shapes, and
//!   its shape fixes the one algorithm it verifies: RSA of at least 2048 bits → RS256, EC P-256
//!   → ES256, OKP Ed25519 → EdDSA. A declared `alg` must agree. Symmetric keys, other curves and
//!   other RSA algorithms are skipped (and logged), so `none`, HS* and algorithm confusion never
//!   reach a signature check. A document with no usable key, more than [`MAX_KEYS`] keys, or
//!   that is not JSON counts as a failed fetch.
//! - **Choosing a key.** By `kid`; a token without one only when the set holds exactly one key
//!   of its algorithm (trying several keys per token would let an attacker multiply our work).
//! - **Fetching again.** A token naming an unknown `kid` triggers a fetch, but fetches are
//!   serialized and those caused by unknown kids happen at most once per
//!   [`JwtConfig::min_refetch_interval`]: a flood of random kids costs the frontend one request
//!   per interval, and concurrent tokens with the same new kid share one fetch.
//! - **Staleness.** A failed fetch keeps the last good keys; [`Jwks::health`] then calls the
//!   set stale (also when no fetch succeeded for three refresh intervals), or unavailable when
//!   none ever succeeded.

use super::fetch::JwksFetcher;
use super::{now_ms, rejected, verify, JwtConfig};
use herald_domain::ports::AuthError;
use herald_domain::Millis;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// One usable public key, with the only algorithm it verifies and the checks tokens must pass.
pub(super) struct VerifyingKey {
    /// The one algorithm this key verifies.
    pub(super) alg: Algorithm,
    /// The key material.
    pub(super) key: DecodingKey,
    /// The claim checks for tokens signed with it.
    pub(super) validation: Validation,
}

/// The usable keys of one JWKS document.
#[derive(Default)]
pub(super) struct KeySet {
    by_kid: HashMap<String, Arc<VerifyingKey>>,
    all: Vec<Arc<VerifyingKey>>,
    /// `(kid, alg, SHA-256 of the public parameters)` per key, to tell whether a refresh
    /// withdrew or replaced a key.
    fingerprint: Vec<(Option<String>, Algorithm, [u8; 32])>,
}

/// A key read from a JWKS: its `kid`, the key, and a digest of its public parameters.
type UsableKey = (Option<String>, Arc<VerifyingKey>, [u8; 32]);

/// A JWKS may hold at most this many keys (more is a broken or hostile endpoint).
pub(super) const MAX_KEYS: usize = 100;
/// A `kid` longer than this is refused before any lookup.
pub const MAX_KID_LEN: usize = 256;
const MIN_RSA_BITS: usize = 2048;

/// The three algorithms Herald accepts, by the key types that carry them.
fn key_algorithm(jwk: &Jwk) -> Result<Algorithm, String> {
    let declared = jwk.common.key_algorithm;
    let (alg, matches) = match &jwk.algorithm {
        AlgorithmParameters::RSA(params) => {
            let bits = base64_len(&params.n) * 8;
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA key of {bits} bits (at least {MIN_RSA_BITS} required)"
                ));
            }
            (
                Algorithm::RS256,
                matches!(declared, None | Some(KeyAlgorithm::RS256)),
            )
        }
        AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P256 => (
            Algorithm::ES256,
            matches!(declared, None | Some(KeyAlgorithm::ES256)),
        ),
        AlgorithmParameters::OctetKeyPair(params) if params.curve == EllipticCurve::Ed25519 => (
            Algorithm::EdDSA,
            matches!(declared, None | Some(KeyAlgorithm::EdDSA)),
        ),
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (oct) keys are never accepted".into())
        }
        _ => return Err("unsupported key type or curve".into()),
    };
    if !matches {
        return Err(format!(
            "declared algorithm {:?} is not accepted for this key type",
            declared.map(|a| a.to_string()).unwrap_or_default()
        ));
    }
    Ok(alg)
}

/// Decoded length of an unpadded base64url string.
fn base64_len(text: &str) -> usize {
    text.trim_end_matches('=').len() * 3 / 4
}

impl KeySet {
    /// Reads a JWKS document, keeping the keys Herald can use and naming the ones it skips.
    pub(super) fn parse(bytes: &[u8], config: &JwtConfig) -> Result<(Self, Vec<String>), String> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        let document: Document = serde_json::from_slice(bytes)
            .map_err(|e| format!("the JWKS is not a JSON object with a `keys` array: {e}"))?;
        if document.keys.len() > MAX_KEYS {
            return Err(format!(
                "the JWKS holds {} keys (at most {MAX_KEYS})",
                document.keys.len()
            ));
        }
        let mut set = KeySet::default();
        let mut skipped = Vec::new();
        for (index, value) in document.keys.into_iter().enumerate() {
            let label = value
                .get("kid")
                .and_then(Value::as_str)
                .map_or_else(|| format!("key #{index}"), |k| format!("key `{k}`"));
            match Self::usable(value, config) {
                Ok((kid, key, digest)) => {
                    if let Some(kid) = &kid {
                        if set.by_kid.contains_key(kid) {
                            skipped.push(format!("{label}: duplicate kid"));
                            continue;
                        }
                        set.by_kid.insert(kid.clone(), key.clone());
                    }
                    set.fingerprint.push((kid, key.alg, digest));
                    set.all.push(key);
                }
                Err(reason) => skipped.push(format!("{label}: {reason}")),
            }
        }
        if set.all.is_empty() {
            return Err(format!(
                "the JWKS has no usable key (RS256, ES256 or EdDSA){}",
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!(": {}", skipped.join("; "))
                }
            ));
        }
        Ok((set, skipped))
    }

    /// One JWK as a usable key, with its `kid` and a digest of its public parameters.
    fn usable(value: Value, config: &JwtConfig) -> Result<UsableKey, String> {
        let jwk: Jwk = serde_json::from_value(value).map_err(|e| format!("not a JWK: {e}"))?;
        if let Some(kid) = &jwk.common.key_id {
            if kid.len() > MAX_KID_LEN {
                return Err("kid too long".into());
            }
        }
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            return Err("not a signature key (`use`)".into());
        }
        if let Some(ops) = &jwk.common.key_operations {
            if !ops.contains(&KeyOperations::Verify) {
                return Err("`key_ops` does not allow verify".into());
            }
        }
        let alg = key_algorithm(&jwk)?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unreadable key: {e}"))?;
        let validation = verify::validation(alg, config);
        let public = serde_json::to_vec(&jwk.algorithm).map_err(|e| e.to_string())?;
        Ok((
            jwk.common.key_id.clone(),
            Arc::new(VerifyingKey {
                alg,
                key,
                validation,
            }),
            Sha256::digest(&public).into(),
        ))
    }

    /// The key for a token: by `kid`, or — for a token without one — the only key of its
    /// algorithm (several candidates would mean trying each, which an attacker could exploit).
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<VerifyingKey>> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned(),
            None => {
                let mut candidates = self.all.iter().filter(|k| k.alg == alg);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Some(only.clone()),
                    _ => None,
                }
            }
        }
    }
}

/// The JWKS's state, for `/readyz` and the logs.
#[derive(Clone, Debug, Default)]
pub struct JwksStatus {
    /// When the keys in use were fetched (epoch ms), if ever.
    pub last_success_ms: Option<Millis>,
    /// Why the most recent fetch failed, if it did.
    pub last_error: Option<String>,
    /// How many usable keys are in use.
    pub keys: usize,
    /// How many fetches were attempted since start-up.
    pub fetches: u64,
}

/// The key set in force and everything that decides when it is replaced.
pub(super) struct Jwks {
    fetcher: Arc<dyn JwksFetcher>,
    keys: RwLock<Arc<KeySet>>,
    status: Mutex<JwksStatus>,
    /// Serializes fetches so concurrent unknown `kid`s cause one request, not many.
    refresh_lock: tokio::sync::Mutex<()>,
    /// Bumped after every completed fetch, so a waiter can tell someone fetched meanwhile.
    generation: AtomicU64,
    last_kid_fetch: Mutex<Option<Instant>>,
}

impl Jwks {
    /// An empty set that will fetch from `fetcher`.
    pub(super) fn new(fetcher: Arc<dyn JwksFetcher>) -> Self {
        Self {
            fetcher,
            keys: RwLock::new(Arc::new(KeySet::default())),
            status: Mutex::new(JwksStatus::default()),
            refresh_lock: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            last_kid_fetch: Mutex::new(None),
        }
    }

    /// Fetches now. `forget` is called, while the new set is installed, when the fetch withdrew
    /// or replaced a key (so whatever that key vouched for can be dropped at the same moment).
    pub(super) async fn refresh(
        &self,
        config: &JwtConfig,
        forget: &(dyn Fn() + Sync),
    ) -> Result<usize, String> {
        let _guard = self.refresh_lock.lock().await;
        self.fetch_locked(config, forget).await
    }

    async fn fetch_locked(
        &self,
        config: &JwtConfig,
        forget: &(dyn Fn() + Sync),
    ) -> Result<usize, String> {
        let fetcher = self.fetcher.clone();
        let fetched = tokio::task::spawn_blocking(move || fetcher.fetch())
            .await
            .unwrap_or_else(|e| Err(format!("the JWKS fetch did not finish: {e}")));
        let parsed = fetched.and_then(|bytes| KeySet::parse(&bytes, config));
        let result = {
            let mut status = self.status.lock().expect("status lock");
            status.fetches += 1;
            match parsed {
                Ok((set, skipped)) => {
                    for reason in &skipped {
                        tracing::warn!(reason, "JWKS key skipped");
                    }
                    let count = set.all.len();
                    let mut keys = self.keys.write().expect("keys lock");
                    if keys
                        .fingerprint
                        .iter()
                        .any(|old| !set.fingerprint.contains(old))
                    {
                        // A key may have been withdrawn: forget what it vouched for.
                        forget();
                    }
                    *keys = Arc::new(set);
                    status.last_success_ms = Some(now_ms());
                    status.last_error = None;
                    status.keys = count;
                    Ok(count)
                }
                Err(error) => {
                    tracing::warn!(%error, url = %config.jwks_url, "JWKS refresh failed; keeping the last good keys");
                    status.last_error = Some(error.clone());
                    Err(error)
                }
            }
        };
        self.generation.fetch_add(1, Ordering::Release);
        result
    }

    /// Fetches again because a token named an unknown key — unless someone fetched while we
    /// waited, or such a fetch happened less than `min_refetch_interval` ago.
    async fn refresh_for_unknown_kid(&self, config: &JwtConfig, forget: &(dyn Fn() + Sync)) {
        let seen = self.generation.load(Ordering::Acquire);
        let _guard = self.refresh_lock.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return;
        }
        {
            let mut last = self.last_kid_fetch.lock().expect("kid fetch lock");
            if last.is_some_and(|at| at.elapsed() < config.min_refetch_interval) {
                return;
            }
            *last = Some(Instant::now());
        }
        let _ = self.fetch_locked(config, forget).await;
    }

    /// The key a token with this `kid` and algorithm must verify with, fetching the set again
    /// (within the rate limit) when it holds no such key.
    pub(super) async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        config: &JwtConfig,
        forget: &(dyn Fn() + Sync),
    ) -> Result<Arc<VerifyingKey>, AuthError> {
        if let Some(key) = self.find(kid, alg) {
            return Ok(key);
        }
        self.refresh_for_unknown_kid(config, forget).await;
        self.find(kid, alg).ok_or_else(|| match kid {
            Some(_) => rejected("the JWT is signed with a key (`kid`) the JWKS does not hold"),
            None => {
                rejected("the JWT has no `kid` and the JWKS holds no single key for its algorithm")
            }
        })
    }

    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<VerifyingKey>> {
        self.keys.read().expect("keys lock").find(kid, alg)
    }

    /// What the JWKS looks like now.
    pub(super) fn status(&self) -> JwksStatus {
        self.status.lock().expect("status lock").clone()
    }

    /// `Ok` when the keys are fresh; otherwise a sentence saying the JWKS is stale (the last
    /// fetch failed, or none succeeded for three refresh intervals) or was never loaded.
    pub(super) fn health(&self, refresh_interval: Duration) -> Result<(), String> {
        let status = self.status();
        match (status.last_success_ms, &status.last_error) {
            (None, None) => Err("unavailable: the JWKS has not been loaded yet".into()),
            (None, Some(error)) => Err(format!(
                "unavailable: the JWKS was never loaded ({error}); login tokens are refused"
            )),
            (Some(at), error) => {
                let age_s = (now_ms() - at).max(0) / 1000;
                let too_old = Duration::from_secs(age_s as u64) > refresh_interval * 3;
                match error {
                    Some(error) => Err(format!(
                        "stale: the last JWKS refresh failed ({error}); using {} keys fetched {age_s} s ago",
                        status.keys
                    )),
                    None if too_old => Err(format!(
                        "stale: the JWKS was last fetched {age_s} s ago"
                    )),
                    None => Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::test_support::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use jsonwebtoken::Header;
    use serde_json::json;

    #[tokio::test]
    async fn header_key_hints_are_ignored() {
        // A token signed by an attacker's key, pointing at it with jku/x5u and embedding it
        // as `jwk`: none of it is used, so it fails as an unknown kid.
        let good = rsa();
        let (verifier, fake) = loaded(&[&good]).await;
        let attacker = Key::new("attacker", Algorithm::RS256, RSA2);
        let mut header = key_header(&attacker);
        header.jku = Some("http://127.0.0.1:9/jwks.json".into());
        header.x5u = Some("http://127.0.0.1:9/cert.pem".into());
        header.jwk = Some(serde_json::from_value(attacker.jwk()).unwrap());
        let message = refused(
            &verifier,
            &attacker.sign_with(&header, &claims("o", "owner")),
        )
        .await;
        assert!(message.contains("does not hold"), "{message}");
        // The same with the trusted kid: the embedded key still isn't used.
        header.kid = Some("rsa-1".into());
        let message = refused(
            &verifier,
            &attacker.sign_with(&header, &claims("o", "owner")),
        )
        .await;
        assert!(message.contains("signature"), "{message}");
        assert_eq!(
            fake.fetches(),
            2,
            "one refresh for the unknown kid, from the configured source"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unknown_kid_refreshes_at_most_once_per_interval() {
        let (one, two) = (rsa(), Key::new("rsa-2", Algorithm::RS256, RSA2));
        let (verifier, fake) = loaded(&[&one]).await;
        let verifier = Arc::new(verifier);
        assert_eq!(fake.fetches(), 1);
        // The flood's tokens are signed up front: RSA signing in a debug build on a busy machine
        // can take longer than the interval, which would let a legitimate refetch through.
        let attacker = Key::new("x", Algorithm::RS256, RSA2);
        let flood: Vec<String> = (0..50)
            .map(|i| {
                let mut header = key_header(&attacker);
                header.kid = Some(format!("random-{i}"));
                attacker.sign_with(&header, &claims("o", "owner"))
            })
            .collect();
        let rotated = two.sign(&claims("o", "owner"));
        // The frontend rotates: a token with the new kid triggers a refresh and passes.
        fake.set(Ok(jwks(&[&one, &two])));
        verifier.verify(&rotated).await.unwrap();
        assert_eq!(fake.fetches(), 2);
        // A concurrent flood of random kids: no further fetch within the interval.
        let tasks: Vec<_> = flood
            .into_iter()
            .map(|token| {
                let verifier = verifier.clone();
                tokio::spawn(async move { verifier.verify(&token).await })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().is_err());
        }
        assert_eq!(fake.fetches(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_tokens_with_a_new_kid_share_one_refresh() {
        let (one, two) = (rsa(), ed());
        let fake = FakeJwks::new(jwks(&[&one]));
        let mut config = JwtConfig::new("test://jwks");
        config.min_refetch_interval = Duration::ZERO;
        let verifier = Arc::new(verifier_with(config, &fake));
        verifier.refresh().await.unwrap();
        fake.set(Ok(jwks(&[&one, &two])));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let token = two.sign(&claims("o", "viewer"));
                let verifier = verifier.clone();
                tokio::spawn(async move { verifier.verify(&token).await })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().is_ok());
        }
        assert!(fake.fetches() <= 3, "{} fetches", fake.fetches());
    }

    #[tokio::test]
    async fn after_the_interval_an_unknown_kid_may_refresh_again() {
        let one = rsa();
        let fake = FakeJwks::new(jwks(&[&one]));
        let mut config = JwtConfig::new("test://jwks");
        config.min_refetch_interval = Duration::ZERO;
        let verifier = verifier_with(config, &fake);
        let two = Key::new("rsa-2", Algorithm::RS256, RSA2);
        assert!(verifier
            .verify(&two.sign(&claims("o", "owner")))
            .await
            .is_err());
        assert!(verifier
            .verify(&two.sign(&claims("o", "owner")))
            .await
            .is_err());
        assert_eq!(fake.fetches(), 2);
        fake.set(Ok(jwks(&[&one, &two])));
        assert!(verifier
            .verify(&two.sign(&claims("o", "owner")))
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn a_failing_jwks_keeps_the_last_good_keys_and_reports_stale() {
        let key = ec();
        let fake = FakeJwks::new(jwks(&[&key]));
        let verifier = verifier_with(JwtConfig::new("test://jwks"), &fake);
        assert!(verifier.health().unwrap_err().contains("not been loaded"));
        verifier.refresh().await.unwrap();
        assert_eq!(verifier.health(), Ok(()));
        fake.set(Err("connection refused".into()));
        assert!(verifier.refresh().await.is_err());
        let health = verifier.health().unwrap_err();
        assert!(
            health.starts_with("stale") && health.contains("connection refused"),
            "{health}"
        );
        assert!(verifier
            .verify(&key.sign(&claims("o", "viewer")))
            .await
            .is_ok());
        // Garbage or an empty set counts as a failure too, and keeps the keys.
        fake.set(Ok(json!({"keys": []})));
        assert!(verifier.refresh().await.is_err());
        fake.set(Ok(json!(["not", "a", "jwks"])));
        assert!(verifier.refresh().await.is_err());
        assert!(verifier
            .verify(&key.sign(&claims("o", "viewer")))
            .await
            .is_ok());
        fake.set(Ok(jwks(&[&key])));
        verifier.refresh().await.unwrap();
        assert_eq!(verifier.health(), Ok(()));
        assert_eq!(verifier.status().keys, 1);

        let never = verifier_with(JwtConfig::new("test://jwks"), &FakeJwks::new(json!({})));
        assert!(never.refresh().await.is_err());
        assert!(never.health().unwrap_err().starts_with("unavailable"));
    }

    #[test]
    fn only_signature_keys_of_the_three_algorithms_are_kept() {
        let config = JwtConfig::new("test://jwks");
        let rsa_jwk = rsa().jwk();
        let mut enc = rsa_jwk.clone();
        enc["use"] = json!("enc");
        enc["kid"] = json!("enc");
        let mut ps = rsa_jwk.clone();
        ps["alg"] = json!("PS256");
        ps["kid"] = json!("ps");
        let mut small = rsa_jwk.clone();
        small["n"] = json!(URL_SAFE_NO_PAD.encode([0xAB; 128]));
        small["kid"] = json!("small");
        let oct = json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"});
        let p384 = json!({"kty": "EC", "crv": "P-384", "kid": "p384",
            "x": URL_SAFE_NO_PAD.encode([1u8; 48]), "y": URL_SAFE_NO_PAD.encode([2u8; 48])});
        let junk = json!({"kty": "RSA", "kid": "junk"});
        let document =
            json!({"keys": [rsa_jwk, enc, ps, small, oct, p384, junk, ec().jwk(), ed().jwk()]});
        let (set, skipped) =
            KeySet::parse(&serde_json::to_vec(&document).unwrap(), &config).unwrap();
        let mut kept: Vec<_> = set.by_kid.keys().cloned().collect();
        kept.sort();
        assert_eq!(kept, ["ec-1", "ed-1", "rsa-1"]);
        assert_eq!(skipped.len(), 6, "{skipped:?}");
        assert!(
            KeySet::parse(b"{\"keys\": [{\"kty\": \"oct\", \"k\": \"AA\"}]}", &config).is_err()
        );
        let too_many = json!({"keys": vec![ed().jwk(); MAX_KEYS + 1]});
        assert!(KeySet::parse(&serde_json::to_vec(&too_many).unwrap(), &config).is_err());
    }

    #[tokio::test]
    async fn a_token_without_kid_uses_the_only_key_of_its_algorithm() {
        let (one, two) = (rsa(), ec());
        let (verifier, _) = loaded(&[&one, &two]).await;
        let token = one.sign_with(&Header::new(Algorithm::RS256), &claims("o", "viewer"));
        assert!(verifier.verify(&token).await.is_ok());
        let (ambiguous, _) = loaded(&[&one, &Key::new("rsa-2", Algorithm::RS256, RSA2)]).await;
        assert!(refused(&ambiguous, &token).await.contains("no `kid`"));
    }
}
