//! Login tokens for tests: fixed signing keys (RS256, ES256, EdDSA; two of each so tests can
//! rotate), a local JWKS server whose document and availability tests change at will and which
//! counts the requests it gets, and helpers that mint tokens with jsonwebtoken — including the
//! malformed and hostile ones a verifier must refuse.
//!
//! The PEM files in `keys/` were generated once with openssl for these tests and protect
//! nothing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{jwk::Jwk, EncodingKey};
pub use jsonwebtoken::{Algorithm, Header};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

const RSA1: &str = include_str!("../keys/rsa1.pem");
const RSA2: &str = include_str!("../keys/rsa2.pem");
const EC1: &str = include_str!("../keys/ec1.pem");
const EC2: &str = include_str!("../keys/ec2.pem");
const ED1: &str = include_str!("../keys/ed1.pem");
const ED2: &str = include_str!("../keys/ed2.pem");

/// A private key that signs test tokens, with its public JWK.
#[derive(Clone)]
pub struct SigningKey {
    /// The `kid` tokens carry and the JWKS lists.
    pub kid: String,
    /// The algorithm it signs with.
    pub alg: Algorithm,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl SigningKey {
    fn load(pem: &str, alg: Algorithm, kid: &str) -> Self {
        let encoding = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
            other => panic!("no test key for {other:?}"),
        }
        .expect("test key parses");
        let jwk = Jwk::from_encoding_key(&encoding, alg).expect("public JWK");
        Self {
            kid: kid.to_owned(),
            alg,
            encoding,
            jwk,
        }
    }

    /// RSA key number `n` (1 or 2), RS256, kid `rsa-<n>`.
    pub fn rsa(n: u8) -> Self {
        Self::load(pick(n, RSA1, RSA2), Algorithm::RS256, &format!("rsa-{n}"))
    }

    /// P-256 key number `n` (1 or 2), ES256, kid `ec-<n>`.
    pub fn ec(n: u8) -> Self {
        Self::load(pick(n, EC1, EC2), Algorithm::ES256, &format!("ec-{n}"))
    }

    /// Ed25519 key number `n` (1 or 2), EdDSA, kid `ed-<n>`.
    pub fn ed(n: u8) -> Self {
        Self::load(pick(n, ED1, ED2), Algorithm::EdDSA, &format!("ed-{n}"))
    }

    /// The same key under another `kid`.
    pub fn with_kid(mut self, kid: &str) -> Self {
        self.kid = kid.to_owned();
        self
    }

    /// The public JWK as a JWKS lists it (`kid`, `alg`, `use: sig`).
    pub fn public_jwk(&self) -> Value {
        let mut jwk = serde_json::to_value(&self.jwk).expect("jwk json");
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk
    }

    /// A header naming this key's algorithm and `kid`.
    pub fn header(&self) -> Header {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header
    }

    /// Signs `claims` with the standard header.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(&self.header(), claims)
    }

    /// Signs `claims` under `header` (which must name this key's algorithm family).
    pub fn sign_with(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &self.encoding).expect("sign")
    }
}

fn pick<'a>(n: u8, one: &'a str, two: &'a str) -> &'a str {
    match n {
        1 => one,
        2 => two,
        _ => panic!("test keys are numbered 1 and 2"),
    }
}

/// A JWKS document listing `keys`.
pub fn jwks(keys: &[&SigningKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>()})
}

/// Seconds since the epoch.
pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Claims for a person of `org` with `role`, valid for an hour, with a unique `jti` (so two
/// minted tokens never share a cache entry).
pub fn claims(org: &str, role: &str) -> Value {
    let now = now_s();
    json!({
        "sub": "user_1",
        "org": org,
        "role": role,
        "iat": now,
        "exp": now + 3600,
        "jti": ulid::Ulid::new().to_string(),
    })
}

/// `base64url(json)` without padding, as JWT parts are encoded.
pub fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
}

/// A token assembled by hand from a header and claims, with `signature` as its third part —
/// how `alg: none` and other tokens no library would sign are made.
pub fn raw_token(header: &Value, claims: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", b64_json(header), b64_json(claims))
}

/// A local JWKS endpoint on `127.0.0.1:0`: answers every GET with the current document (or
/// 503 while "down") and counts requests.
pub struct JwksServer {
    /// Where it listens.
    pub addr: SocketAddr,
    document: Arc<Mutex<Value>>,
    down: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    /// Starts serving `document`.
    pub async fn start(document: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind JWKS server");
        let addr = listener.local_addr().expect("addr");
        let document = Arc::new(Mutex::new(document));
        let down = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let (doc, is_down, count) = (document.clone(), down.clone(), hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (doc, is_down, count) = (doc.clone(), is_down.clone(), count.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_request: Request<Incoming>| {
                        count.fetch_add(1, Ordering::SeqCst);
                        let response = if is_down.load(Ordering::SeqCst) {
                            let mut r = Response::new(Full::new(Bytes::from_static(b"down")));
                            *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                            r
                        } else {
                            let body =
                                serde_json::to_vec(&*doc.lock().expect("lock")).expect("json");
                            let mut r = Response::new(Full::new(Bytes::from(body)));
                            r.headers_mut().insert(
                                http::header::CONTENT_TYPE,
                                http::HeaderValue::from_static("application/json"),
                            );
                            r
                        };
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            document,
            down,
            hits,
        }
    }

    /// Starts serving a JWKS of `keys`.
    pub async fn with_keys(keys: &[&SigningKey]) -> Self {
        Self::start(jwks(keys)).await
    }

    /// `http://127.0.0.1:<port>/.well-known/jwks.json`.
    pub fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    /// Serves `document` from now on.
    pub fn set(&self, document: Value) {
        *self.document.lock().expect("lock") = document;
    }

    /// Serves a JWKS of `keys` from now on (a key rotation).
    pub fn set_keys(&self, keys: &[&SigningKey]) {
        self.set(jwks(keys));
    }

    /// Answers 503 (`true`) or the document (`false`) from now on.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// How many requests it has received.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}
