//! The SSRF guard. Deliveries go to URLs that users type, so unless private destinations are
//! allowed (`HERALD_DELIVERY_ALLOW_PRIVATE=true`, or the embedded store's default) Herald
//! refuses to connect to private, loopback, link-local, CGNAT, multicast, unspecified and
//! other non-global addresses, in IPv4 and IPv6 (including IPv4-mapped, -compatible, NAT64 and
//! 6to4 forms that embed an IPv4 address).
//!
//! The check lives in a ureq [`Resolver`]: ureq connects only to the addresses the resolver
//! returns, so the address vetted is the address connected to — a host name that resolves to
//! a public address at create time and to `127.0.0.1` later (DNS rebinding) is caught at the
//! attempt. Host-name lookups are cached for a short time, which also keeps a lookup off the
//! hot path of a keep-alive connection.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Mutex;
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

/// Whether `ip` is one Herald refuses to deliver to unless private destinations are allowed.
pub fn is_blocked(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_blocked_v4(v4),
        IpAddr::V6(v6) => is_blocked_v6(v6),
    }
}

fn is_blocked_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()            // 0.0.0.0
        || a == 0                  // 0.0.0.0/8 "this network"
        || ip.is_loopback()        // 127.0.0.0/8
        || ip.is_private()         // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local()      // 169.254/16
        || (a == 100 && (64..128).contains(&b)) // 100.64/10 CGNAT
        || ip.is_multicast()       // 224/4
        || ip.is_broadcast()       // 255.255.255.255
        || a >= 240                // 240/4 reserved
        || (a == 192 && b == 0 && c == 0) // 192.0.0.0/24 IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // 198.18/15 benchmarking
        || ip.is_documentation() // 192.0.2/24, 198.51.100/24, 203.0.113/24
}

fn is_blocked_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    if let Some(v4) = embedded_v4(ip) {
        return is_blocked_v4(v4);
    }
    ip.is_unspecified()                  // ::
        || ip.is_loopback()              // ::1
        || ip.is_multicast()             // ff00::/8
        || (seg[0] & 0xfe00) == 0xfc00   // fc00::/7 unique local
        || (seg[0] & 0xffc0) == 0xfe80   // fe80::/10 link-local
        || (seg[0] & 0xffc0) == 0xfec0   // fec0::/10 site-local (deprecated)
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || (seg[0] == 0x0100 && seg[1] == 0 && seg[2] == 0 && seg[3] == 0) // discard-only
}

/// The IPv4 address an IPv6 address stands for, in the forms that route to one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let tail = || {
        Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        )
    };
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4); // ::ffff:a.b.c.d
    }
    if seg[..6] == [0, 0, 0, 0, 0, 0] && !(seg[6] == 0 && seg[7] <= 1) {
        return Some(tail()); // ::a.b.c.d (deprecated IPv4-compatible)
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail()); // 64:ff9b::/96 NAT64
    }
    if seg[0] == 0x2002 {
        // 2002:AABB:CCDD::/48 6to4
        return Some(Ipv4Addr::new(
            (seg[1] >> 8) as u8,
            seg[1] as u8,
            (seg[2] >> 8) as u8,
            seg[2] as u8,
        ));
    }
    None
}

/// A resolver that returns only allowed addresses, and fails with [`BlockedAddress`] when a
/// name resolves to refused addresses only.
#[derive(Debug)]
pub struct GuardedResolver {
    allow_private: bool,
    cache: Mutex<HashMap<String, (Instant, Vec<SocketAddr>)>>,
}

impl GuardedResolver {
    /// A resolver; `allow_private` turns the guard off.
    pub fn new(allow_private: bool) -> Self {
        Self {
            allow_private,
            cache: Mutex::new(HashMap::new()),
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

    fn blocked(text: &str) -> bool {
        is_blocked(text.parse().unwrap())
    }

    #[test]
    fn private_and_special_ipv4_are_refused() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.0.9",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "192.0.2.1",
        ] {
            assert!(blocked(ip), "{ip} should be refused");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "93.184.216.34",
            "100.63.255.255",
        ] {
            assert!(!blocked(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn private_and_special_ipv6_are_refused_including_embedded_ipv4() {
        for ip in [
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "fec0::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "2002:7f00:0001::1",
            "100::1",
        ] {
            assert!(blocked(ip), "{ip} should be refused");
        }
        for ip in [
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert!(!blocked(ip), "{ip} should be allowed");
        }
    }

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
