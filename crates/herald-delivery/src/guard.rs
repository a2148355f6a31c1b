//! The SSRF guard. Deliveries go to URLs that users type, so unless private destinations are
//! allowed (`HERALD_DELIVERY_ALLOW_PRIVATE=true`, or the embedded store's default) Herald
//! refuses to connect to private, loopback, link-local, CGNAT, multicast, unspecified and
//! other non-global addresses, in IPv4 and IPv6 (including IPv4-mapped, -compatible, NAT64 and
//! 6to4 forms that embed an IPv4 address). Which addresses those are is one rule,
//! [`herald_domain::destination::is_blocked`], shared with the API's check of literal
//! addresses when a webhook is saved.
//!
//! The check lives in a ureq [`Resolver`]: ureq connects only to the addresses the resolver
//! returns, so the address vetted is the address connected to — a host name that resolves to
//! a public address at create time and to `127.0.0.1` later (DNS rebinding) is caught at the
//! attempt. Host-name lookups are cached for a short time, which also keeps a lookup off the
//! hot path of a keep-alive connection.

pub use herald_domain::destination::is_blocked;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a host name's vetted addresses are reused.
const DNS_TTL: Duration = Duration::from_secs(30);

/// The destination resolved only to refused addresses.
#[derive(Debug, thiserror::Error)]
#[error("refusing to connect to {0}: not a public address (set HERALD_DELIVERY_ALLOW_PRIVATE=true to allow)")]
pub struct BlockedAddress(pub IpAddr);

/// A resolver that returns only allowed addresses, and fails with [`BlockedAddress`] when a
/// name resolves to refused addresses only.
/// Clones share one cache of looked-up names.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    allow_private: bool,
    cache: Arc<Mutex<NameCache>>,
}

/// Vetted addresses by `host:port`, with when they were looked up.
type NameCache = HashMap<String, (Instant, Vec<SocketAddr>)>;

impl GuardedResolver {
    /// A resolver; `allow_private` turns the guard off.
    pub fn new(allow_private: bool) -> Self {
        Self {
            allow_private,
            cache: Arc::default(),
        }
    }

    fn lookup(
        &self,
        host: &str,
        port: u16,
        timeout: &NextTimeout,
    ) -> Result<Vec<SocketAddr>, ureq::Error> {
        let key = format!("{host}:{port}");
        if let Some((at, addrs)) = self.cache.lock().expect("dns cache").get(&key) {
            if at.elapsed() < DNS_TTL {
                return Ok(addrs.clone());
            }
        }
        // getaddrinfo cannot be cancelled; run it on its own thread so the attempt's deadline
        // still holds when a resolver hangs.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let query = key.clone();
        std::thread::spawn(move || {
            let _ = tx.send(query.to_socket_addrs().map(Iterator::collect::<Vec<_>>));
        });
        let wait = if timeout.after.is_not_happening() {
            Duration::from_secs(30)
        } else {
            *timeout.after
        };
        let addrs = match rx.recv_timeout(wait) {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(_)) => return Err(ureq::Error::HostNotFound),
            Err(_) => return Err(ureq::Error::Timeout(ureq::Timeout::Resolve)),
        };
        if addrs.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        let mut cache = self.cache.lock().expect("dns cache");
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        _config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().ok_or(ureq::Error::HostNotFound)?;
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let addrs = match literal.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => self.lookup(host, port, &timeout)?,
        };
        let mut result = self.empty();
        let mut refused = None;
        for addr in addrs {
            if self.allow_private || !is_blocked(addr.ip()) {
                if result.len() < 16 {
                    result.push(addr);
                }
            } else {
                refused = Some(addr.ip());
            }
        }
        match (result.is_empty(), refused) {
            (true, Some(ip)) => Err(ureq::Error::Other(Box::new(BlockedAddress(ip)))),
            (true, None) => Err(ureq::Error::HostNotFound),
            (false, _) => Ok(result),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resolver_vets_literal_addresses_and_names() {
        let guard = GuardedResolver::new(false);
        let config = Config::default();
        let resolve =
            |url: &str| guard.resolve(&url.parse().unwrap(), &config, NextTimeout::default());
        assert!(
            matches!(resolve("http://127.0.0.1:9/x"), Err(ureq::Error::Other(e)) if e.is::<BlockedAddress>())
        );
        assert!(
            matches!(resolve("http://[::1]:9/x"), Err(ureq::Error::Other(e)) if e.is::<BlockedAddress>())
        );
        assert!(
            matches!(resolve("http://localhost:9/x"), Err(ureq::Error::Other(e)) if e.is::<BlockedAddress>())
        );
        let addrs = resolve("http://8.8.8.8/x").unwrap();
        assert_eq!(addrs[0], "8.8.8.8:80".parse::<SocketAddr>().unwrap());
        let open = GuardedResolver::new(true);
        assert!(open
            .resolve(
                &"http://127.0.0.1:9/".parse().unwrap(),
                &config,
                NextTimeout::default()
            )
            .is_ok());
    }
}
