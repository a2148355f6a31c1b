//! Verification: what a token must be, once its key is known, to become a principal.
//!
//! - **Header.** It parses; its `alg` is RS256, ES256 or EdDSA (so `none` and every HS* are
//!   refused before any key is touched); its `kid` is at most [`MAX_KID_LEN`] characters; and
//!   the chosen key verifies exactly that algorithm (no confusion between key types).
//! - **Signature and time.** jsonwebtoken checks the signature with that one algorithm, requires
//!   `exp`, honours `nbf`, with [`JwtConfig::leeway_secs`] of clock skew. A panic in the crypto
//!   backend is a refusal, not a dropped connection.
//! - **Issuer and audience.** Compared *and required* when configured: jsonwebtoken alone lets a
//!   token without `iss` or `aud` through, so they join the required claims. With no audience
//!   configured `aud` is not looked at (jsonwebtoken would otherwise refuse any token carrying
//!   one).
//! - **Claims.** The organization is a non-empty string claim that is a valid organization id;
//!   the role, when present, is a string, and an unknown or missing role grants nothing (the
//!   caller is authenticated but every capability check refuses it); `sub`, when present, is a
//!   string. `exp` becomes the principal's expiry, which a WebSocket uses to close on time.
//!
//! Every refusal is a sentence saying why, answered as a 401.

use super::keys::{VerifyingKey, MAX_KID_LEN};
use super::{rejected, JwtConfig};
use herald_domain::ports::AuthError;
use herald_domain::{Capabilities, Millis, OrgId, Principal, Role, Subject};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde_json::{Map, Value};

/// The claim checks for tokens signed with a key of algorithm `alg`.
pub(super) fn validation(alg: Algorithm, config: &JwtConfig) -> Validation {
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
    validation
}

/// The token's header, refused unless it names an accepted algorithm and a sane `kid`.
pub(super) fn header(token: &str) -> Result<Header, AuthError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
        ErrorKind::InvalidToken => rejected("not an API key or a JWT"),
        ErrorKind::Base64(_) => rejected("malformed JWT: the header is not base64url"),
        _ => rejected("malformed JWT header, or an algorithm other than RS256, ES256 and EdDSA"),
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
    if header.kid.as_deref().is_some_and(|k| k.len() > MAX_KID_LEN) {
        return Err(rejected(format!(
            "the JWT's `kid` is longer than {MAX_KID_LEN} characters"
        )));
    }
    Ok(header)
}

/// The token's claims, once its signature and time claims verify with `key`.
pub(super) fn verified_claims(
    token: &str,
    header: &Header,
    key: &VerifyingKey,
) -> Result<Map<String, Value>, AuthError> {
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
    Ok(decoded.claims)
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

/// Reads the organization, role and subject from verified claims, with the instant (epoch ms,
/// leeway included) past which the token no longer holds.
pub(super) fn principal(
    claims: &Map<String, Value>,
    config: &JwtConfig,
) -> Result<(Principal, Millis), AuthError> {
    let org_claim = &config.org_claim;
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
    let role_claim = &config.role_claim;
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
        expires_at.saturating_add((config.leeway_secs as Millis).saturating_mul(1000));
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
    use crate::jwt::test_support::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use herald_domain::Capability;
    use jsonwebtoken::EncodingKey;
    use serde_json::json;

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
}
