//! Login JWTs over HTTP: the real server verifying tokens minted here against a local JWKS
//! server whose keys the tests rotate and take down. Authentication does not depend on the
//! store, so these run on the embedded store only (API keys run on both, in `api_keys.rs`).

use herald_testkit::jwks::{b64_json, claims, now_s, raw_token, Algorithm, Header};
use herald_testkit::{eventually, Backend, JwksServer, Reply, SigningKey, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

async fn server_for(jwks: &JwksServer, adjust: impl FnOnce(&mut herald::Config)) -> TestServer {
    let url = jwks.url();
    TestServer::start_with(Backend::Sqlite, move |c| {
        c.jwks_url = Some(url);
        adjust(c);
    })
    .await
}

fn assert_unauthorized(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {:?}", reply.json);
    assert_eq!(reply.error_code(), "unauthorized", "{what}");
    let message = reply.json["error"]["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "{what}: no message");
    assert_eq!(
        reply.headers.get("www-authenticate").map(|v| v.as_bytes()),
        Some(&b"Bearer"[..]),
        "{what}"
    );
}

async fn readyz(server: &TestServer) -> Reply {
    server.client.send("GET", "/readyz", None, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_es256_and_eddsa_login_tokens_call_the_api_with_their_role() {
    let keys = [SigningKey::rsa(1), SigningKey::ec(1), SigningKey::ed(1)];
    let jwks = JwksServer::with_keys(&keys.iter().collect::<Vec<_>>()).await;
    let server = server_for(&jwks, |_| {}).await;
    for key in &keys {
        let owner = key.sign(&claims("org_login", "owner"));
        let list = server.client.get("/api/v1/webhooks", &owner).await;
        assert_eq!(list.status, 200, "{:?}: {:?}", key.alg, list.json);
        let created = server
            .client
            .post(
                "/api/v1/webhooks",
                &owner,
                &json!({"url": "https://example.com/hook"}),
            )
            .await;
        assert_eq!(created.status, 201, "{:?}", created.json);
        assert_eq!(created.json["organizationId"], "org_login");

        let viewer = key.sign(&claims("org_login", "viewer"));
        assert_eq!(
            server.client.get("/api/v1/sessions", &viewer).await.status,
            200
        );
        let denied = server.client.get("/api/v1/webhooks", &viewer).await;
        assert_eq!((denied.status, denied.error_code()), (403, "forbidden"));

        let member = key.sign(&claims("org_login", "member"));
        assert_eq!(
            server.client.get("/api/v1/webhooks", &member).await.status,
            403
        );
        assert_eq!(
            server.client.get("/api/v1/sessions", &member).await.status,
            200
        );

        // An unknown role authenticates but may do nothing beyond the open endpoints.
        let stranger = key.sign(&claims("org_login", "superuser"));
        assert_eq!(
            server
                .client
                .get("/api/v1/event-types", &stranger)
                .await
                .status,
            200
        );
        assert_eq!(
            server
                .client
                .get("/api/v1/sessions", &stranger)
                .await
                .status,
            403
        );
    }
    let health = readyz(&server).await;
    assert_eq!(health.status, 200, "{:?}", health.json);
    assert_eq!(health.json["checks"]["jwks"], "ok");
    assert_eq!(health.json["status"], "ready");
    let metrics = server.client.send("GET", "/metrics", None, None).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("herald_jwks_keys 3") && text.contains("herald_jwks_stale 0"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_login_token_is_a_401_with_the_error_body() {
    let (rsa, ec, ed) = (SigningKey::rsa(1), SigningKey::ec(1), SigningKey::ed(1));
    let jwks = JwksServer::with_keys(&[&rsa, &ec, &ed]).await;
    let server = server_for(&jwks, |c| {
        c.jwt_issuer = Some("https://app.example.com".into());
        c.jwt_audience = Some("herald".into());
    })
    .await;
    let good = || {
        let mut c = claims("org_acme", "owner");
        c["iss"] = json!("https://app.example.com");
        c["aud"] = json!("herald");
        c
    };
    let with = |name: &str, value: Value| {
        let mut c = good();
        c[name] = value;
        c
    };
    let without = |name: &str| {
        let mut c = good();
        c.as_object_mut().unwrap().remove(name);
        c
    };
    // Sanity: the good token passes.
    assert_eq!(
        server
            .client
            .get("/api/v1/webhooks", &rsa.sign(&good()))
            .await
            .status,
        200
    );

    let header = |alg: Algorithm, kid: &str| {
        let mut h = Header::new(alg);
        h.kid = Some(kid.into());
        h
    };
    let hs256 = jsonwebtoken::encode(
        &header(Algorithm::HS256, "rsa-1"),
        &good(),
        &jsonwebtoken::EncodingKey::from_secret(rsa.public_jwk().to_string().as_bytes()).unwrap(),
    )
    .unwrap();
    let good_token = rsa.sign(&good());
    let parts: Vec<&str> = good_token.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64_json(&with("org", json!("org_other"))),
        parts[2]
    );
    let now = now_s();
    let cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            raw_token(&json!({"alg": "none", "kid": "rsa-1"}), &good(), ""),
        ),
        (
            "alg none, upper case",
            raw_token(&json!({"alg": "NONE"}), &good(), ""),
        ),
        ("HS256 keyed with the public key", hs256),
        (
            "ES256 header on the RSA key",
            ec.sign_with(&header(Algorithm::ES256, "rsa-1"), &good()),
        ),
        (
            "EdDSA token naming the EC key",
            ed.sign_with(&header(Algorithm::EdDSA, "ec-1"), &good()),
        ),
        (
            "RS384 with the right key",
            rsa.sign_with(&header(Algorithm::RS384, "rsa-1"), &good()),
        ),
        (
            "bad signature",
            SigningKey::rsa(2).with_kid("rsa-1").sign(&good()),
        ),
        ("tampered payload", tampered),
        ("expired", rsa.sign(&with("exp", json!(now - 120)))),
        ("not yet valid", rsa.sign(&with("nbf", json!(now + 300)))),
        ("no exp", rsa.sign(&without("exp"))),
        ("exp not a number", rsa.sign(&with("exp", json!("soon")))),
        (
            "wrong issuer",
            rsa.sign(&with("iss", json!("https://evil.example"))),
        ),
        ("no issuer", rsa.sign(&without("iss"))),
        (
            "wrong audience",
            rsa.sign(&with("aud", json!("someone-else"))),
        ),
        ("no audience", rsa.sign(&without("aud"))),
        ("no org", rsa.sign(&without("org"))),
        ("empty org", rsa.sign(&with("org", json!("")))),
        ("org not a string", rsa.sign(&with("org", json!(12345)))),
        (
            "org an object",
            rsa.sign(&with("org", json!({"id": "org_acme"}))),
        ),
        (
            "role not a string",
            rsa.sign(&with("role", json!(["owner"]))),
        ),
        (
            "huge kid",
            rsa.sign_with(&header(Algorithm::RS256, &"k".repeat(5000)), &good()),
        ),
        (
            "unknown kid",
            rsa.sign_with(&header(Algorithm::RS256, "nobody"), &good()),
        ),
        ("not a JWT", "not-a-token".into()),
        ("garbage with dots", "a.b.c".into()),
        ("empty parts", "..".into()),
        ("binary-looking", "%%%.$$$.###".into()),
        (
            "header not JSON",
            format!("{}.{}.sig", "bm90IGpzb24", parts[1]),
        ),
        (
            "claims not an object",
            raw_token(
                &json!({"alg": "RS256", "kid": "rsa-1"}),
                &json!([1, 2]),
                "c2ln",
            ),
        ),
        (
            "unknown API key",
            "hk_0000000000000000000000000000000000000000000000000000000000000000".into(),
        ),
    ];
    for (what, token) in &cases {
        let reply = server.client.get("/api/v1/webhooks", token).await;
        assert_unauthorized(&reply, what);
    }
    // A token too long to look at, and one with a huge header, are refused the same way.
    let long = format!("{}.{}.x", "a".repeat(20_000), "b");
    assert_unauthorized(
        &server.client.get("/api/v1/webhooks", &long).await,
        "20 kB token",
    );
    let fat = rsa.sign_with(
        &{
            let mut h = header(Algorithm::RS256, "rsa-1");
            h.extras.insert("junk", "j".repeat(8000));
            h
        },
        &good(),
    );
    let reply = server.client.get("/api/v1/webhooks", &fat).await;
    assert!(
        reply.status == 200 || reply.status == 401,
        "{}",
        reply.status
    );
    // No token at all, and a non-bearer scheme.
    assert_unauthorized(
        &server
            .client
            .send("GET", "/api/v1/webhooks", None, None)
            .await,
        "no token",
    );
    let basic = server
        .client
        .send_raw(
            "GET",
            "/api/v1/webhooks",
            None,
            None,
            &[("authorization", "Basic dXNlcjpwYXNz")],
        )
        .await;
    assert_unauthorized(&basic, "basic auth");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_fetched_once_and_random_kids_do_not_hammer_the_jwks() {
    let (old, new) = (SigningKey::rsa(1), SigningKey::ec(2));
    let jwks = JwksServer::with_keys(&[&old]).await;
    let server = server_for(&jwks, |_| {}).await;
    assert_eq!(
        server
            .client
            .get("/api/v1/sessions", &old.sign(&claims("org_r", "viewer")))
            .await
            .status,
        200
    );
    let before = jwks.hits();
    // The frontend rotates to a new key; the first token naming it causes one refresh.
    jwks.set_keys(&[&new]);
    let reply = server
        .client
        .get("/api/v1/sessions", &new.sign(&claims("org_r", "viewer")))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.json);
    assert_eq!(jwks.hits(), before + 1);
    // The retired key stops working once the set no longer lists it.
    assert_unauthorized(
        &server
            .client
            .get("/api/v1/sessions", &old.sign(&claims("org_r", "viewer")))
            .await,
        "retired key",
    );
    // A flood of unknown kids within the next 10 s causes no further fetch.
    let attacker = SigningKey::ed(2);
    let floods: Vec<_> = (0..40)
        .map(|i| {
            let token = attacker
                .clone()
                .with_kid(&format!("random-{i}"))
                .sign(&claims("org_r", "owner"));
            let client = server.client.clone();
            tokio::spawn(async move { client.get("/api/v1/sessions", &token).await.status })
        })
        .collect();
    for flood in floods {
        assert_eq!(flood.await.unwrap(), 401);
    }
    assert_eq!(jwks.hits(), before + 1, "unknown kids are rate-limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_jwks_is_down_the_last_good_keys_work_and_readyz_says_stale() {
    let key = SigningKey::ed(1);
    let jwks = JwksServer::with_keys(&[&key]).await;
    let server = server_for(&jwks, |c| c.jwks_refresh = Duration::from_secs(1)).await;
    assert_eq!(readyz(&server).await.json["checks"]["jwks"], "ok");
    jwks.set_down(true);
    let stale = eventually(
        "readyz to report the JWKS stale",
        Duration::from_secs(10),
        || async {
            let reply = readyz(&server).await;
            let stale = reply.json["checks"]["jwks"]
                .as_str()
                .is_some_and(|s| s.starts_with("stale"));
            stale.then_some(reply)
        },
    )
    .await;
    // Reported, but the replica stays in rotation: API keys and cached keys still work.
    assert_eq!(stale.status, 200);
    assert_eq!(stale.json["status"], "degraded");
    assert_eq!(stale.json["checks"]["store"], "ok");
    let fresh_token = key.sign(&claims("org_down", "viewer"));
    assert_eq!(
        server
            .client
            .get("/api/v1/sessions", &fresh_token)
            .await
            .status,
        200
    );
    // Back up: fresh again.
    jwks.set_down(false);
    eventually(
        "readyz to report the JWKS fresh",
        Duration::from_secs(10),
        || async { (readyz(&server).await.json["checks"]["jwks"] == "ok").then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jku_x5u_and_embedded_keys_in_a_header_are_never_used() {
    let trusted = SigningKey::rsa(1);
    let jwks = JwksServer::with_keys(&[&trusted]).await;
    let attacker_key = SigningKey::rsa(2).with_kid("attacker");
    let attacker = JwksServer::with_keys(&[&attacker_key]).await;
    let server = server_for(&jwks, |_| {}).await;
    let mut header = attacker_key.header();
    header.jku = Some(attacker.url());
    header.x5u = Some(format!("http://{}/cert.pem", attacker.addr));
    let token = attacker_key.sign_with(&header, &claims("org_acme", "owner"));
    assert_unauthorized(&server.client.get("/api/v1/webhooks", &token).await, "jku");
    // Naming the trusted kid with an embedded attacker JWK fails on the signature.
    header.kid = Some("rsa-1".into());
    header.jwk = Some(serde_json::from_value(attacker_key.public_jwk()).unwrap());
    let token = attacker_key.sign_with(&header, &claims("org_acme", "owner"));
    assert_unauthorized(
        &server.client.get("/api/v1/webhooks", &token).await,
        "embedded jwk",
    );
    assert_eq!(attacker.hits(), 0, "the attacker's server was never asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_jwks_at_start_up_does_not_stop_the_server() {
    // A port nobody listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.jwks_url = Some(format!("http://127.0.0.1:{port}/jwks.json"));
    })
    .await;
    let token = server.api_key("org_acme", "manage").await;
    assert_eq!(
        server.client.get("/api/v1/webhooks", &token).await.status,
        200
    );
    let health = readyz(&server).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json["status"], "degraded");
    assert!(
        health.json["checks"]["jwks"]
            .as_str()
            .unwrap()
            .starts_with("unavailable"),
        "{:?}",
        health.json
    );
    let jwt = SigningKey::ec(1).sign(&claims("org_acme", "owner"));
    assert_unauthorized(
        &server.client.get("/api/v1/webhooks", &jwt).await,
        "no keys yet",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_jwks_login_tokens_are_refused_and_readyz_does_not_mention_it() {
    let server = TestServer::start(Backend::Sqlite).await;
    let jwt = SigningKey::rsa(1).sign(&claims("org_acme", "owner"));
    let reply = server.client.get("/api/v1/webhooks", &jwt).await;
    assert_unauthorized(&reply, "no JWKS configured");
    let health = readyz(&server).await;
    assert_eq!(
        (health.status, health.json["status"].as_str()),
        (200, Some("ready"))
    );
    assert!(health.json["checks"].get("jwks").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_names_come_from_the_configuration() {
    let key = SigningKey::ec(1);
    let jwks = JwksServer::with_keys(&[&key]).await;
    let server = server_for(&jwks, |c| {
        c.jwt_org_claim = "org_id".into();
        c.jwt_role_claim = "org_role".into();
    })
    .await;
    let token =
        key.sign(&json!({"org_id": "org_custom", "org_role": "admin", "exp": now_s() + 60}));
    let created = server
        .client
        .post("/api/v1/sessions", &token, &json!({"name": "main"}))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    assert_eq!(created.json["organizationId"], "org_custom");
    let default_names = key.sign(&claims("org_custom", "admin"));
    assert_unauthorized(
        &server.client.get("/api/v1/sessions", &default_names).await,
        "default claim names",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_token_sees_only_its_own_organization() {
    let key = SigningKey::rsa(1);
    let jwks = JwksServer::with_keys(&[&key]).await;
    let server = server_for(&jwks, |_| {}).await;
    let alice = key.sign(&claims("org_alice", "owner"));
    let bob = key.sign(&claims("org_bob", "owner"));
    let hook = server
        .client
        .post(
            "/api/v1/webhooks",
            &bob,
            &json!({"url": "https://example.com/bob"}),
        )
        .await;
    let session = server
        .client
        .post("/api/v1/sessions", &bob, &json!({"name": "bob"}))
        .await;
    let (hook_id, session_id) = (
        hook.json["id"].as_str().unwrap(),
        session.json["id"].as_str().unwrap(),
    );
    for path in [
        format!("/api/v1/webhooks/{hook_id}"),
        format!("/api/v1/sessions/{session_id}"),
    ] {
        let reply = server.client.get(&path, &alice).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (404, "not_found"),
            "{path}"
        );
        assert_eq!(
            server.client.delete(&path, &alice).await.status,
            404,
            "{path}"
        );
        assert_eq!(
            server.client.get(&path, &bob).await.status,
            200,
            "{path} survives"
        );
    }
    for path in ["/api/v1/webhooks", "/api/v1/sessions", "/api/v1/api-keys"] {
        let reply = server.client.get(path, &alice).await;
        assert_eq!(reply.json["data"], json!([]), "{path}");
    }
    let reply = server
        .client
        .post(
            "/api/v1/webhooks",
            &alice,
            &json!({"url": "https://example.com/a", "sessionId": session_id}),
        )
        .await;
    assert_eq!(
        reply.status, 404,
        "a webhook scoped to another org's session"
    );
}
