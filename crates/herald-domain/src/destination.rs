//! Which webhook destinations are private: the one rule behind both the API's refusal of a
//! literal private address when a webhook is saved and the delivery client's refusal to
//! connect to one (`herald-delivery`'s guard, which applies it to every address a name
//! resolves to). Pure: it classifies addresses and parsed URLs, and never resolves a name.
//!
//! Refused, unless private destinations are allowed: unspecified, "this network", loopback,
//! private (RFC 1918 and unique-local), link-local (including the cloud metadata address
//! `169.254.169.254`), CGNAT, multicast, broadcast, reserved, benchmarking and documentation
//! ranges, in IPv4 and IPv6, including IPv6 forms that embed an IPv4 address (mapped,
//! compatible, NAT64, 6to4). Host names are not resolved here; `localhost` is refused outright
//! because it always means this machine. Other names are checked when a delivery connects, on
//! the addresses they resolve to then.
//!
//! Numeric spellings need no code of their own: URLs are parsed by the WHATWG rules (the `url`
//! crate), which read `127.1`, `2130706433`, `0x7f.1` and `0177.0.0.1` as the IPv4 address
//! `127.0.0.1` exactly as browsers do, so [`blocked_host`] sees the address itself.

use crate::error::DomainError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::Host;

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

/// Why `url`'s host is refused while private destinations are not allowed: a literal blocked
/// address or a `localhost` name. `None` for anything else (names are checked at connect time,
/// on the addresses they resolve to).
pub fn blocked_host(url: &url::Url) -> Option<String> {
    match url.host()? {
        Host::Ipv4(v4) => is_blocked_v4(v4).then(|| v4.to_string()),
        Host::Ipv6(v6) => is_blocked_v6(v6).then(|| format!("[{v6}]")),
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            (name == "localhost").then_some(name)
        }
    }
}

/// The 422 on `url` for a destination refused while private destinations are not allowed.
pub fn check_public(url: &url::Url) -> Result<(), DomainError> {
    match blocked_host(url) {
        None => Ok(()),
        Some(host) => Err(DomainError::invalid(
            "url",
            format!(
                "url points at {host}, a private, loopback, link-local or otherwise non-public \
                 address, and private destinations are not allowed on this server"
            ),
        )),
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

    fn refused(url: &str) -> bool {
        blocked_host(&url::Url::parse(url).unwrap()).is_some()
    }

    #[test]
    fn literal_private_hosts_are_refused_in_every_spelling() {
        for url in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://0177.1/",
            "http://127.0.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:ffff:169.254.169.254]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://0xa9.0xfe.0xa9.0xfe/",
            "http://2852039166/",
            "http://10.1/",
            "http://192.168.0.1:8080/x",
            "http://0/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
            "http://224.0.0.1/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[ff02::1]/",
            "http://localhost/",
            "http://LOCALHOST:9/",
            "http://localhost./",
            "https://%6c%6f%63%61%6c%68%6f%73%74/",
        ] {
            assert!(refused(url), "{url} should be refused");
        }
        for url in [
            "https://example.com/",
            "http://8.8.8.8/",
            "http://134744072/",
            "http://[2606:4700:4700::1111]/",
            "http://[::ffff:8.8.8.8]/",
            "http://localhost.example.com/",
            "http://mylocalhost/",
        ] {
            assert!(!refused(url), "{url} should be accepted");
        }
    }

    #[test]
    fn the_refusal_is_a_422_on_url() {
        let error = check_public(&url::Url::parse("http://2130706433/").unwrap()).unwrap_err();
        assert!(
            matches!(error, DomainError::Invalid { ref field, .. } if field == "url"),
            "{error:?}"
        );
    }
}
