//! What a receiver sees besides the body: the delivery header set and the signature. The body
//! is the envelope exactly as stored with the event, and the signature is computed over those
//! same bytes, so a receiver verifies with any standard HMAC library.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha512;

/// The `User-Agent` every delivery carries.
pub const USER_AGENT: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));

/// Lowercase hex HMAC-SHA512 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac =
        <Hmac<Sha512> as KeyInit>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The headers of one attempt, in order: the default delivery headers, then `custom` — each
/// custom header replacing a default of the same name (case-insensitively): custom headers are
/// applied last and override.
pub fn delivery_headers<'a>(
    event_id: &str,
    timestamp_ms: i64,
    signature: Option<&str>,
    custom: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = vec![
        ("Content-Type".into(), "application/json".into()),
        ("User-Agent".into(), USER_AGENT.into()),
        ("X-Webhook-Request-Id".into(), event_id.into()),
        ("X-Webhook-Timestamp".into(), timestamp_ms.to_string()),
    ];
    if let Some(signature) = signature {
        headers.push(("X-Webhook-Hmac".into(), signature.into()));
        headers.push(("X-Webhook-Hmac-Algorithm".into(), "sha512".into()));
    }
    for (name, value) in custom {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        headers.push((name.to_owned(), value.to_owned()));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_lowercase_hex_hmac_sha512() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
    }

    #[test]
    fn headers_follow_the_contract_and_custom_ones_override() {
        let h = delivery_headers(
            "evt_1",
            42,
            Some("ab"),
            [("user-agent", "mine"), ("X-Tenant", "acme")],
        );
        let get = |name: &str| {
            h.iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("content-type"), ["application/json"]);
        assert_eq!(get("user-agent"), ["mine"]);
        assert_eq!(get("x-webhook-request-id"), ["evt_1"]);
        assert_eq!(get("x-webhook-timestamp"), ["42"]);
        assert_eq!(get("x-webhook-hmac"), ["ab"]);
        assert_eq!(get("x-webhook-hmac-algorithm"), ["sha512"]);
        assert_eq!(get("x-tenant"), ["acme"]);
        let unsigned = delivery_headers("evt_1", 42, None, []);
        assert!(unsigned
            .iter()
            .all(|(n, _)| !n.starts_with("X-Webhook-Hmac")));
        assert_eq!(unsigned.len(), 4);
    }
}
