//! What a receiver sees besides the body: the delivery header set and the signatures. The body
//! is the envelope exactly as stored with the event, and every signature is computed over those
//! same bytes, so a receiver verifies with any standard HMAC library (`waha` signing) or any
//! Standard Webhooks library (`standard` signing). During a rotation's grace period each valid
//! secret signs: the current one first.

use base64::Engine as _;
use herald_domain::webhook::SigningScheme;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha512};

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

/// A Standard Webhooks v1 signature entry: `v1,` and the base64 HMAC-SHA256 of
/// `{id}.{timestamp}.{body}` under `key` (the secret's decoded bytes).
pub fn standard_signature(key: &[u8], id: &str, timestamp_s: i64, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The signing headers of one attempt under `scheme` with `keys` (the current secret's key
/// first, then those still in grace); none when `keys` is empty.
fn signing_headers(
    scheme: SigningScheme,
    keys: &[Vec<u8>],
    event_id: &str,
    timestamp_ms: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    let Some((current, previous)) = keys.split_first() else {
        return Vec::new();
    };
    match scheme {
        SigningScheme::Waha => {
            let mut headers = vec![
                ("X-Webhook-Hmac".into(), signature(current, body)),
                ("X-Webhook-Hmac-Algorithm".into(), "sha512".into()),
            ];
            if !previous.is_empty() {
                let earlier: Vec<String> = previous.iter().map(|k| signature(k, body)).collect();
                headers.push(("X-Webhook-Hmac-Previous".into(), earlier.join(",")));
            }
            headers
        }
        SigningScheme::Standard => {
            let timestamp_s = timestamp_ms.div_euclid(1000);
            let entries: Vec<String> = keys
                .iter()
                .map(|k| standard_signature(k, event_id, timestamp_s, body))
                .collect();
            vec![
                ("webhook-id".into(), event_id.into()),
                ("webhook-timestamp".into(), timestamp_s.to_string()),
                ("webhook-signature".into(), entries.join(" ")),
            ]
        }
    }
}

/// The headers of one attempt, in order: the default delivery headers, the signing headers of
/// `scheme` under `keys`, then `custom` — each custom header replacing a default of the same
/// name (case-insensitively): custom headers are applied last and override.
pub fn delivery_headers<'a>(
    event_id: &str,
    timestamp_ms: i64,
    scheme: SigningScheme,
    keys: &[Vec<u8>],
    body: &[u8],
    custom: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = vec![
        ("Content-Type".into(), "application/json".into()),
        ("User-Agent".into(), USER_AGENT.into()),
        ("X-Webhook-Request-Id".into(), event_id.into()),
        ("X-Webhook-Timestamp".into(), timestamp_ms.to_string()),
    ];
    headers.extend(signing_headers(scheme, keys, event_id, timestamp_ms, body));
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
            SigningScheme::Waha,
            &[b"Jefe".to_vec()],
            b"what do ya want for nothing?",
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
        assert_eq!(
            get("x-webhook-hmac"),
            [signature(b"Jefe", b"what do ya want for nothing?").as_str()]
        );
        assert!(get("x-webhook-hmac-previous").is_empty());
        assert_eq!(get("x-webhook-hmac-algorithm"), ["sha512"]);
        assert_eq!(get("x-tenant"), ["acme"]);
        let unsigned = delivery_headers("evt_1", 42, SigningScheme::Waha, &[], b"{}", []);
        assert!(unsigned
            .iter()
            .all(|(n, _)| !n.starts_with("X-Webhook-Hmac")));
        assert_eq!(unsigned.len(), 4);
    }

    #[test]
    fn rotations_sign_with_every_valid_secret_current_first() {
        let keys = [
            b"new-secret-0123456".to_vec(),
            b"old-secret-0123456".to_vec(),
        ];
        let h = delivery_headers(
            "evt_1",
            1_700_000_000_999,
            SigningScheme::Waha,
            &keys,
            b"{}",
            [],
        );
        let get = |name: &str| h.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        assert_eq!(get("X-Webhook-Hmac"), Some(signature(&keys[0], b"{}")));
        assert_eq!(
            get("X-Webhook-Hmac-Previous"),
            Some(signature(&keys[1], b"{}"))
        );

        let h = delivery_headers(
            "evt_1",
            1_700_000_000_999,
            SigningScheme::Standard,
            &keys,
            b"{}",
            [],
        );
        let get = |name: &str| h.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        assert_eq!(get("webhook-id").as_deref(), Some("evt_1"));
        assert_eq!(get("webhook-timestamp").as_deref(), Some("1700000000"));
        let signature = get("webhook-signature").unwrap();
        let entries: Vec<&str> = signature.split(' ').collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0],
            standard_signature(&keys[0], "evt_1", 1_700_000_000, b"{}")
        );
        assert!(entries.iter().all(|e| e.starts_with("v1,")));
        assert!(h.iter().all(|(n, _)| !n.starts_with("X-Webhook-Hmac")));
    }
}
