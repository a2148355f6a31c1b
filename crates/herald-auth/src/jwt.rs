//! Login JWTs: the frontend signs them, Herald verifies them against the frontend's JWKS.
//!
//! [`JwtVerifier`] keeps the JWKS's usable public keys in memory, indexed by `kid`. Only RS256
//! (RSA keys of at least 2048 bits), ES256 (P-256 keys) and EdDSA (Ed25519 keys) are ever
//! accepted; a key's algorithm is fixed by its type when the JWKS is read, and a token whose
//! header names another algorithm is refused, so `none`, every HS* and every algorithm
//! confusion are 401s. The header's `jku`, `x5u` and `jwk` fields are never looked at: keys come
//! from the configured URL and nowhere else.
//!
//! Keys are fetched at start-up, every [`JwtConfig::refresh_interval`], and when a token names a
//! `kid` we do not know — at most once per [`JwtConfig::min_refetch_interval`], so a flood of
//! random kids cannot hammer the frontend. When a fetch fails the last good keys stay in use and
//! [`JwtVerifier::health`] reports the set as stale (for `/readyz`).
//!
//! Verifying a signature costs tens of microseconds, far more than the rest of a cheap request,
//! so a verified token's principal is remembered (under the SHA-256 of the token) until the
//! token expires; the memory is bounded and emptied whenever the key set changes, so a key
//! removed from the JWKS stops authorizing cached tokens at the same moment it stops verifying
//! new ones.

use herald_domain::ports::AuthError;
use herald_domain::{Capabilities, Millis, OrgId, Principal, Role, Subject};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// Gets the JWKS document. Blocking: [`JwtVerifier`] calls it on a blocking thread.
pub trait JwksFetcher: Send + Sync + 'static {
    /// The raw JWKS bytes, or why they could not be had.
    fn fetch(&self) -> Result<Vec<u8>, String>;
}

/// Fetches the JWKS over HTTP(S) with ureq: short per-phase timeouts, a size cap, no cookies.
pub struct HttpJwksFetcher {
    url: String,
    agent: ureq::Agent,
}

impl HttpJwksFetcher {
    /// The largest JWKS accepted; real ones are a few kilobytes.
    pub const MAX_BYTES: u64 = 1024 * 1024;

    /// A fetcher for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        // Per-phase timeouts only: ureq's global/per-call timeouts resolve DNS on a fresh thread
        // every time (see DESIGN.md), and these bound a hung frontend just as well.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_resolve(Some(Duration::from_secs(3)))
            .timeout_connect(Some(Duration::from_secs(3)))
            .timeout_send_request(Some(Duration::from_secs(3)))
            .timeout_recv_response(Some(Duration::from_secs(5)))
            .timeout_recv_body(Some(Duration::from_secs(5)))
            .max_redirects(3)
            .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Self {
            url: url.into(),
            agent,
        }
    }
}

impl JwksFetcher for HttpJwksFetcher {
    fn fetch(&self) -> Result<Vec<u8>, String> {
        let mut response = self
            .agent
            .get(&self.url)
            .header("accept", "application/json")
            .call()
            .map_err(|e| format!("cannot fetch the JWKS: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!(
                "the JWKS endpoint answered HTTP {}",
                status.as_u16()
            ));
        }
        response
            .body_mut()
            .with_config()
            .limit(Self::MAX_BYTES)
            .read_to_vec()
            .map_err(|e| format!("cannot read the JWKS: {e}"))
    }
}

/// One usable public key, with the only algorithm it verifies and the checks tokens must pass.
struct VerifyingKey {
    alg: Algorithm,
    key: DecodingKey,
    validation: Validation,
}

/// The usable keys of one JWKS document.
#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<VerifyingKey>>,
    all: Vec<Arc<VerifyingKey>>,
    /// `(kid, alg, SHA-256 of the public parameters)` per key, to tell whether a refresh
    /// withdrew or replaced a key.
    fingerprint: Vec<(Option<String>, Algorithm, [u8; 32])>,
}

/// A key read from a JWKS: its `kid`, the key, and a digest of its public parameters.
type UsableKey = (Option<String>, Arc<VerifyingKey>, [u8; 32]);

/// A JWKS may hold at most this many keys (more is a broken or hostile endpoint).
const MAX_KEYS: usize = 100;
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
    fn parse(bytes: &[u8], config: &JwtConfig) -> Result<(Self, Vec<String>), String> {
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
        let mut validation = Validation::new(alg);
        validation.leeway = config.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        // jsonwebtoken only compares `iss`/`aud` when present: requiring them is what makes a
        // token without them fail when an issuer or audience is configured.
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
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

struct CachedToken {
    principal: Principal,
    /// Past this instant (epoch ms, leeway included) the token is expired.
    valid_until_ms: Millis,
}

/// Verifies login JWTs against a JWKS and turns them into principals.
pub struct JwtVerifier {
    config: JwtConfig,
    fetcher: Arc<dyn JwksFetcher>,
    keys: RwLock<Arc<KeySet>>,
    status: Mutex<JwksStatus>,
    /// Serializes fetches so concurrent unknown `kid`s cause one request, not many.
    refresh_lock: tokio::sync::Mutex<()>,
    /// Bumped after every completed fetch, so a waiter can tell someone fetched meanwhile.
    generation: AtomicU64,
    last_kid_fetch: Mutex<Option<Instant>>,
    tokens: Mutex<HashMap<[u8; 32], CachedToken>>,
}

fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

fn rejected(message: impl Into<String>) -> AuthError {
    AuthError::Rejected(message.into())
}

/// A clear sentence for each way jsonwebtoken refuses a token.
fn explain(error: &jsonwebtoken::errors::Error) -> String {
    match error.kind() {
        ErrorKind::ExpiredSignature => "the JWT has expired".into(),
        ErrorKind::ImmatureSignature => "the JWT is not valid yet (`nbf` is in the future)".into(),
        ErrorKind::InvalidIssuer => "the JWT's issuer (`iss`) is not the expected one".into(),
        ErrorKind::InvalidAudience => "the JWT's audience (`aud`) is not the expected one".into(),
        ErrorKind::InvalidSignature => "the JWT's signature does not verify".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => {
            "the JWT's algorithm does not match its key".into()
        }
        ErrorKind::MissingRequiredClaim(claim) => {
            format!("the JWT has no `{claim}` claim (or it is malformed)")
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            format!("the JWT's `{claim}` claim has the wrong type")
        }
        ErrorKind::InvalidToken => "malformed JWT".into(),
        ErrorKind::Base64(_) => "malformed JWT: a part is not base64url".into(),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            "malformed JWT: the claims are not a JSON object".into()
        }
        _ => "the JWT cannot be verified".into(),
    }
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
            config,
            fetcher,
            keys: RwLock::new(Arc::new(KeySet::default())),
            status: Mutex::new(JwksStatus::default()),
            refresh_lock: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            last_kid_fetch: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// Fetches the JWKS now. On failure the previous keys stay in use and the error is
    /// returned (and reported by [`Self::health`]).
    pub async fn refresh(&self) -> Result<usize, String> {
        let _guard = self.refresh_lock.lock().await;
        self.fetch_locked().await
    }

    async fn fetch_locked(&self) -> Result<usize, String> {
        let fetcher = self.fetcher.clone();
        let fetched = tokio::task::spawn_blocking(move || fetcher.fetch())
            .await
            .unwrap_or_else(|e| Err(format!("the JWKS fetch did not finish: {e}")));
        let parsed = fetched.and_then(|bytes| KeySet::parse(&bytes, &self.config));
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
                        self.tokens.lock().expect("token cache lock").clear();
                    }
                    *keys = Arc::new(set);
                    status.last_success_ms = Some(now_ms());
                    status.last_error = None;
                    status.keys = count;
                    Ok(count)
                }
                Err(error) => {
                    tracing::warn!(%error, url = %self.config.jwks_url, "JWKS refresh failed; keeping the last good keys");
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
    async fn refresh_for_unknown_kid(&self) {
        let seen = self.generation.load(Ordering::Acquire);
        let _guard = self.refresh_lock.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return;
        }
        {
            let mut last = self.last_kid_fetch.lock().expect("kid fetch lock");
            if last.is_some_and(|at| at.elapsed() < self.config.min_refetch_interval) {
                return;
            }
            *last = Some(Instant::now());
        }
        let _ = self.fetch_locked().await;
    }

    /// What the JWKS looks like now.
    pub fn status(&self) -> JwksStatus {
        self.status.lock().expect("status lock").clone()
    }

    /// `Ok` when the keys are fresh; otherwise a sentence saying the JWKS is stale (the last
    /// fetch failed, or none succeeded for three refresh intervals) or was never loaded.
    pub fn health(&self) -> Result<(), String> {
        let status = self.status();
        match (status.last_success_ms, &status.last_error) {
            (None, None) => Err("unavailable: the JWKS has not been loaded yet".into()),
            (None, Some(error)) => Err(format!(
                "unavailable: the JWKS was never loaded ({error}); login tokens are refused"
            )),
            (Some(at), error) => {
                let age_s = (now_ms() - at).max(0) / 1000;
                let too_old = Duration::from_secs(age_s as u64) > self.config.refresh_interval * 3;
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
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(principal) = self.cached(&digest) {
            return Ok(principal);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::InvalidToken => rejected("not an API key or a JWT"),
            ErrorKind::Base64(_) => rejected("malformed JWT: the header is not base64url"),
            _ => {
                rejected("malformed JWT header, or an algorithm other than RS256, ES256 and EdDSA")
            }
        })?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA
        ) {
            return Err(rejected(format!(
                "JWT algorithm {:?} is not accepted (RS256, ES256 and EdDSA are)",
                header.alg
            )));
        }
        let kid = header.kid.as_deref();
        if kid.is_some_and(|k| k.len() > MAX_KID_LEN) {
            return Err(rejected(format!(
                "the JWT's `kid` is longer than {MAX_KID_LEN} characters"
            )));
        }
        let key = match self.find_key(kid, header.alg) {
            Some(key) => key,
            None => {
                self.refresh_for_unknown_kid().await;
                self.find_key(kid, header.alg).ok_or_else(|| match kid {
                    Some(_) => {
                        rejected("the JWT is signed with a key (`kid`) the JWKS does not hold")
                    }
                    None => rejected(
                        "the JWT has no `kid` and the JWKS holds no single key for its algorithm",
                    ),
                })?
            }
        };
        if key.alg != header.alg {
            return Err(rejected(format!(
                "the JWT's algorithm {:?} does not match its key ({:?})",
                header.alg, key.alg
            )));
        }
        // Defence in depth: a panic in a crypto backend must become a 401, not a dropped
        // connection.
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &key.validation)
        }))
        .map_err(|_| rejected("the JWT cannot be verified"))?
        .map_err(|e| rejected(explain(&e)))?;
        let (principal, valid_until_ms) = self.principal(&decoded.claims)?;
        self.remember(digest, &principal, valid_until_ms);
        Ok(principal)
    }

    fn find_key(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<VerifyingKey>> {
        self.keys.read().expect("keys lock").find(kid, alg)
    }

    /// Reads the organization, role and subject from verified claims.
    fn principal(&self, claims: &Map<String, Value>) -> Result<(Principal, Millis), AuthError> {
        let org_claim = &self.config.org_claim;
        let organization = match claims.get(org_claim) {
            None | Some(Value::Null) => {
                return Err(rejected(format!(
                    "the JWT has no `{org_claim}` claim naming the organization"
                )))
            }
            Some(Value::String(org)) if org.trim().is_empty() => {
                return Err(rejected(format!("the JWT's `{org_claim}` claim is empty")))
            }
            Some(Value::String(org)) => OrgId::parse(org).ok_or_else(|| {
                rejected(format!(
                    "the JWT's `{org_claim}` claim is not a usable organization id"
                ))
            })?,
            Some(_) => {
                return Err(rejected(format!(
                    "the JWT's `{org_claim}` claim must be a string"
                )))
            }
        };
        let role_claim = &self.config.role_claim;
        let capabilities = match claims.get(role_claim) {
            None | Some(Value::Null) => Capabilities::NONE,
            Some(Value::String(role)) => {
                Role::parse(role).map_or(Capabilities::NONE, Role::capabilities)
            }
            Some(_) => {
                return Err(rejected(format!(
                    "the JWT's `{role_claim}` claim must be a string"
                )))
            }
        };
        let subject = match claims.get("sub") {
            None | Some(Value::Null) => None,
            Some(Value::String(sub)) => Some(sub.clone()),
            Some(_) => return Err(rejected("the JWT's `sub` claim must be a string")),
        };
        // `exp` is present and numeric: jsonwebtoken required and checked it.
        let exp_s = claims.get("exp").and_then(Value::as_f64).unwrap_or(0.0);
        let expires_at = seconds_to_ms(exp_s);
        let valid_until =
            expires_at.saturating_add((self.config.leeway_secs as Millis).saturating_mul(1000));
        Ok((
            Principal {
                organization,
                capabilities,
                subject: Subject::User(subject),
                expires_at: Some(expires_at),
            },
            valid_until,
        ))
    }

    fn cached(&self, digest: &[u8; 32]) -> Option<Principal> {
        if self.config.token_cache_capacity == 0 {
            return None;
        }
        let tokens = self.tokens.lock().expect("token cache lock");
        let entry = tokens.get(digest)?;
        (now_ms() <= entry.valid_until_ms).then(|| entry.principal.clone())
    }

    fn remember(&self, digest: [u8; 32], principal: &Principal, valid_until_ms: Millis) {
        let capacity = self.config.token_cache_capacity;
        if capacity == 0 {
            return;
        }
        let mut tokens = self.tokens.lock().expect("token cache lock");
        if tokens.len() >= capacity {
            let now = now_ms();
            tokens.retain(|_, t| t.valid_until_ms >= now);
            if tokens.len() >= capacity {
                // Still full of live tokens: start over rather than grow without bound.
                tokens.clear();
            }
        }
        tokens.insert(
            digest,
            CachedToken {
                principal: principal.clone(),
                valid_until_ms,
            },
        );
    }
}

/// Epoch seconds (as JSON gives them) to epoch milliseconds, saturating.
fn seconds_to_ms(seconds: f64) -> Millis {
    let ms = seconds * 1000.0;
    if ms.is_nan() || ms <= 0.0 {
        0
    } else if ms >= Millis::MAX as f64 {
        Millis::MAX
    } else {
        ms as Millis
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use herald_domain::Capability;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;
    use std::sync::atomic::AtomicUsize;

    // Test-only keys shared with herald-testkit (generated once with openssl).
    const RSA1: &str = include_str!("../../herald-testkit/keys/rsa1.pem");
    const RSA2: &str = include_str!("../../herald-testkit/keys/rsa2.pem");
    const EC1: &str = include_str!("../../herald-testkit/keys/ec1.pem");
    const ED1: &str = include_str!("../../herald-testkit/keys/ed1.pem");

    struct Key {
        kid: &'static str,
        alg: Algorithm,
        encoding: EncodingKey,
    }

    impl Key {
        fn new(kid: &'static str, alg: Algorithm, pem: &str) -> Self {
            let encoding = match alg {
                Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
                Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
                _ => EncodingKey::from_ed_pem(pem.as_bytes()),
            }
            .unwrap();
            Self { kid, alg, encoding }
        }

        fn jwk(&self) -> Value {
            let mut jwk =
                serde_json::to_value(Jwk::from_encoding_key(&self.encoding, self.alg).unwrap())
                    .unwrap();
            jwk["kid"] = json!(self.kid);
            jwk
        }

        fn sign(&self, claims: &Value) -> String {
            let mut header = Header::new(self.alg);
            header.kid = Some(self.kid.into());
            self.sign_with(&header, claims)
        }

        fn sign_with(&self, header: &Header, claims: &Value) -> String {
            jsonwebtoken::encode(header, claims, &self.encoding).unwrap()
        }
    }

    fn rsa() -> Key {
        Key::new("rsa-1", Algorithm::RS256, RSA1)
    }
    fn ec() -> Key {
        Key::new("ec-1", Algorithm::ES256, EC1)
    }
    fn ed() -> Key {
        Key::new("ed-1", Algorithm::EdDSA, ED1)
    }

    fn jwks(keys: &[&Key]) -> Value {
        json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
    }

    /// An in-memory JWKS endpoint that counts fetches and can fail.
    struct FakeJwks {
        document: Mutex<Result<Value, String>>,
        fetches: AtomicUsize,
    }

    impl FakeJwks {
        fn new(document: Value) -> Arc<Self> {
            Arc::new(Self {
                document: Mutex::new(Ok(document)),
                fetches: AtomicUsize::new(0),
            })
        }
        fn set(&self, document: Result<Value, String>) {
            *self.document.lock().unwrap() = document;
        }
        fn fetches(&self) -> usize {
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

    fn verifier_with(config: JwtConfig, fake: &Arc<FakeJwks>) -> JwtVerifier {
        JwtVerifier::with_fetcher(config, fake.clone())
    }

    async fn loaded(keys: &[&Key]) -> (JwtVerifier, Arc<FakeJwks>) {
        let fake = FakeJwks::new(jwks(keys));
        let verifier = verifier_with(JwtConfig::new("test://jwks"), &fake);
        verifier.refresh().await.unwrap();
        (verifier, fake)
    }

    fn now() -> i64 {
        now_ms() / 1000
    }

    fn claims(org: &str, role: &str) -> Value {
        json!({"sub": "user_7", "org": org, "role": role, "exp": now() + 600, "jti": ulid()})
    }

    fn ulid() -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        format!("jti-{}", N.fetch_add(1, Ordering::SeqCst))
    }

    async fn refused(verifier: &JwtVerifier, token: &str) -> String {
        match verifier.verify(token).await {
            Err(AuthError::Rejected(message)) => message,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn rs256_es256_and_eddsa_tokens_become_principals() {
        let keys = [rsa(), ec(), ed()];
        let (verifier, _) = loaded(&keys.iter().collect::<Vec<_>>()).await;
        for key in &keys {
            let claims = claims("org_acme", "member");
            let principal = verifier.verify(&key.sign(&claims)).await.unwrap();
            assert_eq!(principal.organization.as_str(), "org_acme");
            assert_eq!(principal.capabilities.to_list(), "read,send");
            assert_eq!(principal.subject, Subject::User(Some("user_7".into())));
            assert_eq!(
                principal.expires_at,
                Some(claims["exp"].as_i64().unwrap() * 1000)
            );
        }
    }

    #[tokio::test]
    async fn roles_map_to_capabilities_and_unknown_roles_to_none() {
        let key = rsa();
        let (verifier, _) = loaded(&[&key]).await;
        for (role, list) in [
            ("owner", "read,send,manage"),
            ("admin", "read,send,manage"),
            ("member", "read,send"),
            ("viewer", "read"),
            ("superuser", ""),
        ] {
            let p = verifier
                .verify(&key.sign(&claims("o", role)))
                .await
                .unwrap();
            assert_eq!(p.capabilities.to_list(), list, "{role}");
        }
        let mut no_role = claims("o", "x");
        no_role.as_object_mut().unwrap().remove("role");
        let p = verifier.verify(&key.sign(&no_role)).await.unwrap();
        assert!(p.capabilities.is_empty() && !p.capabilities.contains(Capability::Read));
    }

    #[tokio::test]
    async fn claim_names_are_configurable() {
        let key = ec();
        let fake = FakeJwks::new(jwks(&[&key]));
        let mut config = JwtConfig::new("test://jwks");
        config.org_claim = "https://example.com/org".into();
        config.role_claim = "org_role".into();
        let verifier = verifier_with(config, &fake);
        let token = key.sign(&json!({
            "https://example.com/org": "org_x", "org_role": "viewer", "exp": now() + 60
        }));
        let p = verifier.verify(&token).await.unwrap();
        assert_eq!(
            (p.organization.as_str(), p.capabilities.to_list().as_str()),
            ("org_x", "read")
        );
        assert_eq!(p.subject, Subject::User(None));
        // The default names mean nothing now.
        let message = refused(&verifier, &key.sign(&claims("org_y", "owner"))).await;
        assert!(message.contains("https://example.com/org"), "{message}");
    }

    #[tokio::test]
    async fn forbidden_algorithms_and_confusions_are_refused() {
        let (rsa, ec) = (rsa(), ec());
        let (verifier, _) = loaded(&[&rsa, &ec]).await;
        let claims = claims("org_acme", "owner");

        // alg none, unsigned.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"rsa-1"}"#),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        );
        assert!(refused(&verifier, &none).await.contains("algorithm"));

        // HS256 keyed with the RSA public key's JWK text: the classic confusion.
        let secret = serde_json::to_vec(&rsa.jwk()).unwrap();
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some("rsa-1".into());
            let token = jsonwebtoken::encode(
                &header,
                &claims,
                &EncodingKey::from_secret(&secret).unwrap(),
            )
            .unwrap();
            let message = refused(&verifier, &token).await;
            assert!(message.contains("not accepted"), "{message}");
        }

        // An ES256 token claiming the RSA key's kid.
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("rsa-1".into());
        let message = refused(&verifier, &ec.sign_with(&header, &claims)).await;
        assert!(message.contains("does not match"), "{message}");

        // RS384 / PS256 with the right RSA key are still refused.
        for alg in [Algorithm::RS384, Algorithm::PS256] {
            let mut header = Header::new(alg);
            header.kid = Some("rsa-1".into());
            let message = refused(&verifier, &rsa.sign_with(&header, &claims)).await;
            assert!(message.contains("not accepted"), "{message}");
        }
    }

    #[tokio::test]
    async fn bad_signatures_and_tampered_payloads_are_refused() {
        let key = rsa();
        let (verifier, _) = loaded(&[&key]).await;
        let other = Key::new("rsa-1", Algorithm::RS256, RSA2);
        let message = refused(&verifier, &other.sign(&claims("org_acme", "owner"))).await;
        assert!(message.contains("signature"), "{message}");

        let token = key.sign(&claims("org_acme", "viewer"));
        let parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&json!({"org": "org_acme", "role": "owner", "exp": now() + 600}))
                .unwrap(),
        );
        let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
        assert!(refused(&verifier, &tampered).await.contains("signature"));
        let truncated = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..10]);
        assert!(!refused(&verifier, &truncated).await.is_empty());
    }

    #[tokio::test]
    async fn time_claims_are_enforced_with_a_minute_of_leeway() {
        let key = ed();
        let (verifier, _) = loaded(&[&key]).await;
        let at = |exp: i64, nbf: Option<i64>| {
            let mut c = claims("org_acme", "viewer");
            c["exp"] = json!(exp);
            if let Some(nbf) = nbf {
                c["nbf"] = json!(nbf);
            }
            key.sign(&c)
        };
        assert!(refused(&verifier, &at(now() - 120, None))
            .await
            .contains("expired"));
        assert!(verifier.verify(&at(now() - 30, None)).await.is_ok());
        assert!(refused(&verifier, &at(now() + 600, Some(now() + 300)))
            .await
            .contains("nbf"));
        assert!(verifier
            .verify(&at(now() + 600, Some(now() + 30)))
            .await
            .is_ok());

        let mut no_exp = claims("org_acme", "viewer");
        no_exp.as_object_mut().unwrap().remove("exp");
        assert!(refused(&verifier, &key.sign(&no_exp))
            .await
            .contains("`exp`"));
        let mut text_exp = claims("org_acme", "viewer");
        text_exp["exp"] = json!("tomorrow");
        assert!(refused(&verifier, &key.sign(&text_exp))
            .await
            .contains("exp"));
        let mut huge = claims("org_acme", "viewer");
        huge["exp"] = json!(u64::MAX);
        let p = verifier.verify(&key.sign(&huge)).await.unwrap();
        assert!(p.expires_at.unwrap() > 0);
    }

    #[tokio::test]
    async fn issuer_and_audience_are_checked_when_configured() {
        let key = rsa();
        let fake = FakeJwks::new(jwks(&[&key]));
        let mut config = JwtConfig::new("test://jwks");
        config.issuer = Some("https://app.example.com".into());
        config.audience = Some("herald".into());
        let verifier = verifier_with(config, &fake);
        let with = |iss: Option<&str>, aud: Option<Value>| {
            let mut c = claims("org_acme", "owner");
            if let Some(iss) = iss {
                c["iss"] = json!(iss);
            }
            if let Some(aud) = aud {
                c["aud"] = aud;
            }
            key.sign(&c)
        };
        let good = Some("https://app.example.com");
        assert!(verifier
            .verify(&with(good, Some(json!("herald"))))
            .await
            .is_ok());
        assert!(verifier
            .verify(&with(good, Some(json!(["other", "herald"]))))
            .await
            .is_ok());
        assert!(refused(
            &verifier,
            &with(Some("https://evil.example"), Some(json!("herald")))
        )
        .await
        .contains("issuer"));
        assert!(refused(&verifier, &with(good, Some(json!("other"))))
            .await
            .contains("audience"));
        assert!(refused(&verifier, &with(None, Some(json!("herald"))))
            .await
            .contains("`iss`"));
        assert!(refused(&verifier, &with(good, None))
            .await
            .contains("`aud`"));

        // Unconfigured, any iss/aud is fine.
        let (open, _) = loaded(&[&key]).await;
        assert!(open
            .verify(&with(Some("anyone"), Some(json!("anything"))))
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn organization_and_other_claims_must_be_well_formed() {
        let key = ec();
        let (verifier, _) = loaded(&[&key]).await;
        let with = |name: &str, value: Value| {
            let mut c = claims("org_acme", "owner");
            c[name] = value;
            key.sign(&c)
        };
        let mut no_org = claims("org_acme", "owner");
        no_org.as_object_mut().unwrap().remove("org");
        assert!(refused(&verifier, &key.sign(&no_org))
            .await
            .contains("no `org`"));
        assert!(refused(&verifier, &with("org", json!("")))
            .await
            .contains("empty"));
        assert!(refused(&verifier, &with("org", json!("  ")))
            .await
            .contains("empty"));
        assert!(refused(&verifier, &with("org", Value::Null))
            .await
            .contains("no `org`"));
        for wrong in [
            json!(42),
            json!(["org_acme"]),
            json!({"id": "org_acme"}),
            json!(true),
        ] {
            assert!(refused(&verifier, &with("org", wrong))
                .await
                .contains("must be a string"));
        }
        assert!(refused(&verifier, &with("org", json!("x".repeat(300))))
            .await
            .contains("organization id"));
        assert!(refused(&verifier, &with("org", json!("a\u{0}b")))
            .await
            .contains("organization id"));
        assert!(refused(&verifier, &with("role", json!(["owner"])))
            .await
            .contains("`role`"));
        assert!(refused(&verifier, &with("sub", json!(7)))
            .await
            .contains("`sub`"));
        let array_claims = key.sign_with(
            &{
                let mut h = Header::new(Algorithm::ES256);
                h.kid = Some("ec-1".into());
                h
            },
            &json!([1, 2, 3]),
        );
        assert!(!refused(&verifier, &array_claims).await.is_empty());
    }

    #[tokio::test]
    async fn garbage_and_absurd_headers_are_refused_without_fetching() {
        let key = rsa();
        let (verifier, fake) = loaded(&[&key]).await;
        for garbage in [
            "",
            "abc",
            "a.b",
            "a.b.c",
            "....",
            "x.y.z.w",
            "eyJhbGciOiJSUzI1NiJ9..",
            "\u{1F600}.\u{1F600}.\u{1F600}",
        ] {
            assert!(!refused(&verifier, garbage).await.is_empty(), "{garbage}");
        }
        let mut header = key_header(&key);
        header.kid = Some("k".repeat(MAX_KID_LEN + 1));
        let message = refused(&verifier, &key.sign_with(&header, &claims("o", "owner"))).await;
        assert!(message.contains("kid"), "{message}");
        assert_eq!(fake.fetches(), 1, "a bad header never causes a fetch");
    }

    fn key_header(key: &Key) -> Header {
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid.into());
        header
    }

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
        // The frontend rotates: a token with the new kid triggers a refresh and passes.
        fake.set(Ok(jwks(&[&one, &two])));
        verifier
            .verify(&two.sign(&claims("o", "owner")))
            .await
            .unwrap();
        assert_eq!(fake.fetches(), 2);
        // A concurrent flood of random kids: no further fetch within the interval.
        let attacker = Key::new("x", Algorithm::RS256, RSA2);
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let mut header = key_header(&attacker);
                header.kid = Some(format!("random-{i}"));
                let token = attacker.sign_with(&header, &claims("o", "owner"));
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

    #[tokio::test]
    async fn withdrawing_a_key_also_drops_tokens_it_vouched_for() {
        let (one, two) = (rsa(), ed());
        let (verifier, fake) = loaded(&[&one, &two]).await;
        let token = one.sign(&claims("o", "owner"));
        verifier.verify(&token).await.unwrap();
        verifier.verify(&token).await.unwrap(); // now cached
        fake.set(Ok(jwks(&[&two])));
        verifier.refresh().await.unwrap();
        assert!(verifier.verify(&token).await.is_err());
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
