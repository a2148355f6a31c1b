//! Key fetching: getting the JWKS document's bytes, and nothing else. Deciding which of its
//! keys to trust is the key set's job; this module only has to make sure a slow, hung or
//! oversized answer from the frontend cannot hold a thread or memory for long.
//!
//! [`JwksFetcher`] is the seam: the verifier calls it on a blocking thread, production uses
//! [`HttpJwksFetcher`], and tests or embedders with their own key source implement it directly.

use std::time::Duration;

/// Gets the JWKS document. Blocking: [`JwtVerifier`](super::JwtVerifier) calls it on a
/// blocking thread.
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
        // Per-phase timeouts only: with a global or per-call timeout set, ureq resolves DNS on a
        // fresh thread for every request, and these bound a hung frontend just as well.
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
