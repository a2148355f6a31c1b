//! Signing schemes and secret rotation end to end, on both stores: Standard Webhooks deliveries
//! verified by the `standardwebhooks` crate (a verifier this project did not write), generated
//! secrets shown once, rotations during which every secret in grace verifies (both schemes), and
//! the 422/404/403 answers of the rotation route.

use herald::config::Config;
use herald_testkit::{eventually, per_backend, Backend, Behaviour, Received, Receiver, TestServer};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha512;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(20);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn server(backend: Backend) -> TestServer {
    TestServer::start_with(backend, |c: &mut Config| {
        c.with_dispatcher = true;
        c.allow_private = Some(true);
    })
    .await
}

/// Sends a test ping and returns what the receiver got for it.
async fn ping(server: &TestServer, token: &str, webhook: &str, receiver: &Receiver) -> Received {
    let (event_id, _) = server.ping_webhook(token, webhook).await;
    eventually("the ping", WAIT, || async {
        receiver.received().into_iter().find(|r| {
            r.headers
                .get("x-webhook-request-id")
                .is_some_and(|v| v == event_id.as_str())
        })
    })
    .await
}

fn verifies(secret: &str, got: &Received) -> bool {
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&got.body, &got.headers)
        .is_ok()
}

fn waha_hmac(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn header<'a>(got: &'a Received, name: &str) -> Option<&'a str> {
    got.headers.get(name).map(|v| v.to_str().unwrap())
}

async fn standard_signing_verifies_with_a_stock_library_through_rotations(backend: Backend) {
    let server = server(backend).await;
    let token = server.api_key("org_std", "manage").await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let c = &server.client;

    // No secret given: Herald generates one and shows it this once.
    let created = c
        .post(
            "/api/v1/webhooks",
            &token,
            &json!({"url": receiver.url(), "signing": "standard"}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    let s0 = created.json["secret"].as_str().unwrap().to_owned();
    assert!(s0.starts_with("whsec_"), "{s0}");
    assert_eq!(created.json["signing"], "standard");
    assert_eq!(created.json["previousSecretsValidUntil"], Value::Null);
    let id = created.json["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/webhooks/{id}");
    let fetched = c.get(&path, &token).await;
    assert!(fetched.json.get("secret").is_none());
    let listed = c.get("/api/v1/webhooks", &token).await;
    assert!(!String::from_utf8_lossy(&listed.body).contains(&s0[6..]));

    let got = ping(&server, &token, &id, &receiver).await;
    assert!(verifies(&s0, &got), "{backend:?}: {:?}", got.headers);
    let event_id = header(&got, "x-webhook-request-id").unwrap();
    assert_eq!(header(&got, "webhook-id"), Some(event_id));
    let stamp: i64 = header(&got, "webhook-timestamp").unwrap().parse().unwrap();
    assert!((stamp - now_ms() / 1000).abs() < 60);
    assert!(got.headers.get("x-webhook-hmac").is_none());
    assert!(got.headers.get("x-webhook-hmac-algorithm").is_none());
    let mut tampered = got.clone();
    let mut body = got.body.to_vec();
    body[1] ^= 1;
    tampered.body = hyper::body::Bytes::from(body);
    assert!(!verifies(&s0, &tampered), "a tampered body must not verify");

    // Rotate with the default grace: both secrets verify.
    let before = now_ms();
    let rotated = c
        .post(&format!("{path}/secret/rotate"), &token, &json!({}))
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.json);
    let s1 = rotated.json["secret"].as_str().unwrap().to_owned();
    assert_ne!(s1, s0);
    let until = rotated.json["previousValidUntil"].as_i64().unwrap();
    assert!(until >= before + 86_400_000 && until <= now_ms() + 86_400_000);
    assert_eq!(
        c.get(&path, &token).await.json["previousSecretsValidUntil"],
        until
    );
    let got = ping(&server, &token, &id, &receiver).await;
    assert!(verifies(&s1, &got) && verifies(&s0, &got));
    assert_eq!(
        header(&got, "webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        2
    );

    // Rotate again without grace, to a secret we supply: s1 stops at once, s0 keeps its grace.
    let s2 = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let rotated = c
        .post(
            &format!("{path}/secret/rotate"),
            &token,
            &json!({"secret": s2, "graceSeconds": 0}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.json);
    assert_eq!(rotated.json["secret"], s2);
    let got = ping(&server, &token, &id, &receiver).await;
    assert!(verifies(s2, &got) && verifies(&s0, &got) && !verifies(&s1, &got));

    // Bad input names the field; unknown and foreign webhooks are 404; read-only callers 403.
    let rotate = format!("{path}/secret/rotate");
    for (body, field) in [
        (json!({"graceSeconds": 604_801}), "graceSeconds"),
        (json!({"graceSeconds": -1}), "graceSeconds"),
        (json!({"graceSeconds": "60"}), "graceSeconds"),
        (json!({"secret": 42}), "secret"),
        (json!({"secret": "short"}), "secret"),
        // A waha-form secret on a standard webhook.
        (json!({"secret": "0123456789abcdef0123"}), "secret"),
        // whsec_ with only 8 bytes.
        (json!({"secret": "whsec_AAAAAAAAAAA="}), "secret"),
    ] {
        let reply = c.post(&rotate, &token, &body).await;
        assert_eq!(reply.status, 422, "{body}: {:?}", reply.json);
        assert_eq!(reply.json["error"]["details"]["field"], field, "{body}");
    }
    let other = server.api_key("org_other", "manage").await;
    assert_eq!(c.post(&rotate, &other, &json!({})).await.status, 404);
    let missing = "/api/v1/webhooks/wh_01J9ZX8K2QHV0M3T6R7P4N5W8C/secret/rotate";
    assert_eq!(c.post(missing, &token, &json!({})).await.status, 404);
    let reader = server.api_key("org_std", "read").await;
    assert_eq!(
        c.post(&rotate, &reader, &json!({"graceSeconds": -1}))
            .await
            .status,
        403
    );
    // The last good secret still signs: nothing bad was written.
    let got = ping(&server, &token, &id, &receiver).await;
    assert!(verifies(s2, &got));

    for (body, field) in [
        (
            json!({"url": receiver.url(), "signing": "standard", "secret": "0123456789abcdef0123"}),
            "secret",
        ),
        (
            json!({"url": receiver.url(), "signing": "standard", "secret": null}),
            "secret",
        ),
        (json!({"url": receiver.url(), "signing": "hmac"}), "signing"),
    ] {
        let reply = c.post("/api/v1/webhooks", &token, &body).await;
        assert_eq!(reply.status, 422, "{body}: {:?}", reply.json);
        assert_eq!(reply.json["error"]["details"]["field"], field, "{body}");
    }
}

async fn waha_signing_rotates_with_a_previous_header(backend: Backend) {
    let server = server(backend).await;
    let token = server.api_key("org_waha", "manage").await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let c = &server.client;
    let s0 = "the-first-secret-0123";
    let created = c
        .post(
            "/api/v1/webhooks",
            &token,
            &json!({"url": receiver.url(), "secret": s0}),
        )
        .await;
    assert_eq!(created.status, 201);
    assert!(
        created.json.get("secret").is_none(),
        "a given secret is not echoed"
    );
    assert_eq!(created.json["signing"], "waha");
    let id = created.json["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/webhooks/{id}");

    let s1 = "the-second-secret-0123";
    let rotated = c
        .post(
            &format!("{path}/secret/rotate"),
            &token,
            &json!({"secret": s1, "graceSeconds": 3600}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{backend:?} {:?}", rotated.json);
    let got = ping(&server, &token, &id, &receiver).await;
    assert_eq!(
        header(&got, "x-webhook-hmac"),
        Some(waha_hmac(s1, &got.body).as_str())
    );
    assert_eq!(
        header(&got, "x-webhook-hmac-previous"),
        Some(waha_hmac(s0, &got.body).as_str())
    );
    assert!(got.headers.get("webhook-signature").is_none());

    // Switching to standard keeps only a secret that suits it.
    let switch = c
        .patch(&path, &token, &json!({"signing": "standard"}))
        .await;
    assert_eq!(switch.status, 422, "{:?}", switch.json);
    assert_eq!(switch.json["error"]["details"]["field"], "secret");

    // Removing the secret removes every secret: deliveries go unsigned.
    let removed = c.patch(&path, &token, &json!({"secret": null})).await;
    assert_eq!(removed.status, 200);
    assert_eq!(removed.json["previousSecretsValidUntil"], Value::Null);
    let got = ping(&server, &token, &id, &receiver).await;
    assert!(got.headers.get("x-webhook-hmac").is_none());
    assert!(got.headers.get("x-webhook-hmac-previous").is_none());

    // Omitted on create, a waha secret is generated too, shown once, and signs.
    let generated = c
        .post("/api/v1/webhooks", &token, &json!({"url": receiver.url()}))
        .await;
    let secret = generated.json["secret"].as_str().unwrap().to_owned();
    let gid = generated.json["id"].as_str().unwrap().to_owned();
    let got = ping(&server, &token, &gid, &receiver).await;
    assert_eq!(
        header(&got, "x-webhook-hmac"),
        Some(waha_hmac(&secret, &got.body).as_str())
    );
    // A generated secret suits both schemes: switching to standard keeps it.
    let switch = c
        .patch(
            &format!("/api/v1/webhooks/{gid}"),
            &token,
            &json!({"signing": "standard"}),
        )
        .await;
    assert_eq!(switch.status, 200, "{:?}", switch.json);
    let got = ping(&server, &token, &gid, &receiver).await;
    assert!(verifies(&secret, &got));
}

per_backend!(
    standard_signing_verifies_with_a_stock_library_through_rotations,
    waha_signing_rotates_with_a_previous_header
);
