//! The WAHA double follows WAHA's published document: it refuses what WAHA refuses, answers in
//! the document's shapes, and posts webhooks whose bodies match the document's webhook schemas,
//! signed the way WAHA signs. These tests hold it to that, so tests of Herald built on it test
//! against WAHA's contract.

use herald_testkit::waha::schema::{schema, violations, webhook_schema, Strictness};
use herald_testkit::waha::{
    sign, BatchPlan, Fault, Pacing, Route, Tier, VoteSpec, WahaDouble, WahaOptions,
};
use herald_testkit::{eventually, Behaviour, Client, Received, Receiver};
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = "api-key-1";
const HOOK_KEY: &str = "hook-key-1";
const ME: &str = "11111111111@c.us";
const ALICE: &str = "22222222222@c.us";

async fn double() -> (WahaDouble, Client) {
    let double = WahaDouble::start_with(WahaOptions {
        api_key: Some(KEY.to_owned()),
        tier: Tier::Plus,
    })
    .await;
    let client = Client::new(&double.url());
    (double, client)
}

async fn call(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> herald_testkit::Reply {
    client
        .send_raw(
            method,
            path,
            None,
            body.map(|b| serde_json::to_vec(&b).unwrap()),
            &[("x-api-key", KEY)],
        )
        .await
}

fn conforms(schema_name: &str, value: &Value) {
    let problems = violations(schema(schema_name), value, Strictness::Sent);
    assert!(
        problems.is_empty(),
        "{schema_name}: {problems:?} in {value}"
    );
}

/// A received webhook is signed as WAHA signs and matches the document's schema for its event.
fn check_webhook(received: &Received) -> Value {
    let header = |name: &str| {
        received
            .headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("x-webhook-hmac"), sign(HOOK_KEY, &received.body));
    assert_eq!(header("x-webhook-hmac-algorithm"), "sha512");
    assert!(header("x-webhook-request-id").starts_with("req_"));
    assert!(header("x-webhook-timestamp").parse::<i64>().unwrap() > 1_600_000_000_000);
    assert_eq!(header("x-custom"), "yes");
    let body: Value = serde_json::from_slice(&received.body).unwrap();
    let event = body["event"].as_str().unwrap();
    let schema = webhook_schema(event).unwrap_or_else(|| panic!("no schema for {event}"));
    let problems = violations(schema, &body, Strictness::Sent);
    assert!(problems.is_empty(), "{event}: {problems:?} in {body}");
    body
}

fn session_body(name: &str, url: &str) -> Value {
    json!({"name": name, "start": true, "config": {"webhooks": [{
        "url": url,
        "events": ["session.status", "message", "message.any", "message.ack", "poll.vote", "poll.vote.failed"],
        "hmac": {"key": HOOK_KEY},
        "retries": {"policy": "exponential", "delaySeconds": 2, "attempts": 3},
        "customHeaders": [{"name": "X-Custom", "value": "yes"}],
    }]}})
}

async fn received(receiver: &Receiver, count: usize) -> Vec<Received> {
    eventually("webhooks", Duration::from_secs(10), || async {
        let all = receiver.received();
        (all.len() >= count).then_some(all)
    })
    .await
}

#[tokio::test]
async fn requests_are_checked_like_waha_checks_them() {
    let (double, client) = double().await;
    let no_key = client
        .send_raw("GET", "/api/sessions", None, None, &[])
        .await;
    assert_eq!(no_key.status, 401);
    let wrong_key = client
        .send_raw("GET", "/api/sessions", None, None, &[("x-api-key", "nope")])
        .await;
    assert_eq!(wrong_key.status, 401);

    let missing = call(
        &client,
        "POST",
        "/api/sendText",
        Some(json!({"session": "default", "text": 5})),
    )
    .await;
    assert_eq!(missing.status, 400);
    assert_eq!(
        missing.json,
        json!({"statusCode": 400, "message": ["chatId should not be empty", "text must be a string"], "error": "Bad Request"})
    );
    let bad_poll = call(
        &client,
        "POST",
        "/api/sendPoll",
        Some(json!({"session": "s", "chatId": ALICE, "poll": {"name": "q"}})),
    )
    .await;
    assert_eq!(bad_poll.status, 400);
    assert_eq!(
        bad_poll.json["message"],
        json!([
            "poll.options should not be empty",
            "poll.multipleAnswers should not be empty"
        ])
    );
    let not_json = client
        .send_raw(
            "POST",
            "/api/sendText",
            None,
            Some(b"{".to_vec()),
            &[("x-api-key", KEY)],
        )
        .await;
    assert_eq!(not_json.status, 400);
    let hook_without_url = call(
        &client,
        "POST",
        "/api/sessions",
        Some(json!({"name": "x", "config": {"webhooks": [{"events": []}]}})),
    )
    .await;
    assert_eq!(
        hook_without_url.json["message"],
        json!(["config.webhooks[0].url should not be empty"])
    );
    assert_eq!(call(&client, "GET", "/api/nothing", None).await.status, 404);
    assert_eq!(
        call(&client, "GET", "/api/sessions/ghost/me", None)
            .await
            .status,
        404
    );
    assert_eq!(
        call(&client, "DELETE", "/api/sessions/ghost", None)
            .await
            .status,
        404
    );
    let send_from_ghost = call(
        &client,
        "POST",
        "/api/sendText",
        Some(json!({"session": "ghost", "chatId": ALICE, "text": "hi"})),
    )
    .await;
    assert_eq!(send_from_ghost.status, 404);

    let calls = double.calls();
    assert_eq!(calls.len(), 10);
    assert_eq!(calls[0].api_key(), None);
    assert_eq!(calls[2].route, Some(Route::SendText));
    assert_eq!(calls[2].status, Some(400));
    assert_eq!(calls[2].body["text"], 5);
}

#[tokio::test]
async fn a_session_walks_to_working_and_every_answer_and_webhook_follows_the_document() {
    let (double, client) = double().await;
    let receiver = Receiver::start(Behaviour::Ok).await;

    let created = call(
        &client,
        "POST",
        "/api/sessions",
        Some(session_body("sales", &receiver.url())),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    conforms("SessionDTO", &created.json);
    assert_eq!(created.json["status"], "STARTING");
    let again = call(
        &client,
        "POST",
        "/api/sessions",
        Some(session_body("sales", &receiver.url())),
    )
    .await;
    assert_eq!(again.status, 422);
    assert_eq!(
        again.json["message"],
        "Session 'sales' already exists. Use PUT to update it."
    );

    let qr_too_early = call(&client, "GET", "/api/sales/auth/qr?format=raw", None).await;
    assert_eq!(qr_too_early.status, 422);
    let sending_too_early = call(
        &client,
        "POST",
        "/api/sendText",
        Some(json!({"session": "sales", "chatId": ALICE, "text": "hi"})),
    )
    .await;
    assert_eq!(sending_too_early.status, 422);
    let me_too_early = call(&client, "GET", "/api/sessions/sales/me", None).await;
    assert_eq!((me_too_early.status, me_too_early.body.len()), (200, 0));

    double.show_qr("sales", "2@qr-text").await;
    let qr = call(&client, "GET", "/api/sales/auth/qr?format=raw", None).await;
    assert_eq!(qr.json, json!({"value": "2@qr-text"}));
    conforms("QRCodeValue", &qr.json);
    assert_eq!(
        call(&client, "GET", "/api/sales/auth/qr", None)
            .await
            .status,
        400
    );
    let image = call(&client, "GET", "/api/sales/auth/qr?format=image", None).await;
    conforms("Base64File", &image.json);

    double.pair("sales", ME).await;
    let me = call(&client, "GET", "/api/sessions/sales/me", None).await;
    conforms("MeInfo", &me.json);
    assert_eq!(me.json["id"], ME);
    let info = call(&client, "GET", "/api/sessions/sales", None).await;
    conforms("SessionInfo", &info.json);
    assert_eq!(info.json["status"], "WORKING");

    let sent = call(
        &client,
        "POST",
        "/api/sendText",
        Some(json!({"session": "sales", "chatId": ALICE, "text": "hi", "reply_to": null})),
    )
    .await;
    assert_eq!(sent.status, 201);
    conforms("WAMessage", &sent.json);
    let sent_id = sent.json["id"].as_str().unwrap().to_owned();
    assert!(sent_id.starts_with(&format!("true_{ALICE}_")), "{sent_id}");
    let poll = call(&client, "POST", "/api/sendPoll", Some(json!({"session": "sales", "chatId": ALICE, "poll": {"name": "Lunch?", "options": ["Pizza", "Sushi"], "multipleAnswers": false}}))).await;
    assert_eq!(poll.status, 201);
    conforms("WAMessage", &poll.json);
    let voted = call(&client, "POST", "/api/sendPollVote", Some(json!({"session": "sales", "chatId": ALICE, "pollMessageId": poll.json["id"], "votes": ["Pizza"]}))).await;
    assert_eq!((voted.status, voted.body.len()), (201, 0));

    let inbound = double.inbound_text("sales", ALICE, "hello").await;
    let inbound_poll = double
        .inbound_poll("sales", ALICE, "Dinner?", &["Soup", "Salad"], true)
        .await;
    let own = double.own_text("sales", ALICE, "from my phone").await;
    let ack = double.ack("sales", &sent_id, ALICE, 3).await;
    let vote = VoteSpec {
        poll_id: poll.json["id"].as_str().unwrap().to_owned(),
        chat: ALICE.to_owned(),
        poll_from_me: true,
        voter: ALICE.to_owned(),
        selected: vec!["Sushi".to_owned()],
    };
    double.vote("sales", &vote).await;
    let failed = double.failed_vote("sales", &vote).await;
    for emitted in [
        &inbound.emissions[0],
        &inbound.emissions[1],
        &own.emissions[0],
        &ack,
        &failed,
    ] {
        assert!(emitted.acknowledged(), "{}", emitted.event);
    }

    // STARTING, SCAN_QR_CODE, WORKING, two echoes, 2 × (message, message.any), own, ack, vote, failed vote.
    let all = received(&receiver, 13).await;
    let bodies: Vec<Value> = all.iter().map(check_webhook).collect();
    let events: Vec<&str> = bodies
        .iter()
        .map(|b| b["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "session.status",
            "session.status",
            "session.status",
            "message.any",
            "message.any",
            "message",
            "message.any",
            "message",
            "message.any",
            "message.any",
            "message.ack",
            "poll.vote",
            "poll.vote.failed"
        ]
    );
    let statuses: Vec<&str> = bodies[..3]
        .iter()
        .map(|b| b["payload"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["STARTING", "SCAN_QR_CODE", "WORKING"]);
    assert_eq!(bodies[2]["me"]["id"], ME);
    assert_eq!(bodies[3]["payload"]["id"], sent_id.as_str());
    assert_eq!(bodies[3]["payload"]["source"], "api");
    assert_eq!(bodies[4]["payload"]["_data"]["type"], "poll_creation");
    assert_eq!(
        (
            bodies[5]["payload"]["id"].as_str(),
            bodies[5]["payload"]["fromMe"].as_bool()
        ),
        (Some(inbound.id.as_str()), Some(false))
    );
    assert_eq!(bodies[5]["payload"], bodies[6]["payload"]);
    assert_ne!(bodies[5]["id"], bodies[6]["id"]);
    assert_eq!(
        bodies[7]["payload"]["_data"]["pollSelectableOptionsCount"],
        0
    );
    assert_eq!(bodies[9]["payload"]["fromMe"], true);
    assert_eq!(bodies[9]["payload"]["to"], ALICE);
    assert_eq!(bodies[10]["payload"]["ackName"], "READ");
    assert_eq!(
        bodies[11]["payload"]["vote"]["selectedOptions"],
        json!(["Sushi"])
    );
    assert_eq!(bodies[12]["payload"]["vote"]["selectedOptions"], json!([]));
    assert_eq!(double.emitted().len(), 13);
    assert_eq!(
        bodies[7]["payload"]["id"].as_str(),
        Some(inbound_poll.id.as_str())
    );

    assert_eq!(
        call(&client, "DELETE", "/api/sessions/sales", None)
            .await
            .status,
        200
    );
    assert!(double.session("sales").is_none());
}

#[tokio::test]
async fn updates_starts_and_the_core_edition() {
    let double = WahaDouble::start_with(WahaOptions {
        api_key: None,
        tier: Tier::Core,
    })
    .await;
    let client = Client::new(&double.url());
    let receiver = Receiver::start(Behaviour::Ok).await;
    let other = client
        .send(
            "POST",
            "/api/sessions",
            None,
            Some(&session_body("sales", &receiver.url())),
        )
        .await;
    assert_eq!(other.status, 422);
    assert!(other.json["message"]
        .as_str()
        .unwrap()
        .contains("only 'default' session"));

    double.seed_session("default");
    let update = client
        .send(
            "PUT",
            "/api/sessions/default",
            None,
            Some(&json!({"config": session_body("default", &receiver.url())["config"]})),
        )
        .await;
    assert_eq!(update.status, 200);
    conforms("SessionDTO", &update.json);
    assert_eq!(update.json["status"], "STOPPED");
    let started = client
        .send("POST", "/api/sessions/default/start", None, None)
        .await;
    assert_eq!(
        (started.status, started.json["status"].as_str()),
        (201, Some("STARTING"))
    );
    let stopped = client
        .send("POST", "/api/sessions/default/stop", None, None)
        .await;
    assert_eq!(stopped.json["status"], "STOPPED");
    let all = received(&receiver, 2).await;
    let statuses: Vec<String> = all
        .iter()
        .map(|r| {
            check_webhook(r)["payload"]["status"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(statuses, ["STARTING", "STOPPED"]);
    let listed = client
        .send("GET", "/api/sessions?all=true", None, None)
        .await;
    assert_eq!(listed.json.as_array().unwrap().len(), 1);
    let running = client.send("GET", "/api/sessions", None, None).await;
    assert_eq!(running.json, json!([]));
}

#[tokio::test]
async fn webhooks_are_retried_resent_and_sent_in_old_shapes_on_command() {
    let (double, client) = double().await;
    let receiver = Receiver::start(Behaviour::FailTimes(2)).await;
    call(
        &client,
        "POST",
        "/api/sessions",
        Some(session_body("s", &receiver.url())),
    )
    .await;
    let starting = eventually("the STARTING webhook", Duration::from_secs(10), || async {
        double.emitted().into_iter().next()
    })
    .await;
    let delivery = starting.delivery();
    let statuses: Vec<Option<u16>> = delivery.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(200)]);
    let bodies: Vec<_> = receiver.received().iter().map(|r| r.body.clone()).collect();
    assert!(
        bodies.iter().all(|b| b == &delivery.body),
        "retries resend the same bytes"
    );

    let duplicate = double.resend(delivery).await;
    assert!(duplicate.acknowledged());
    let last = receiver.received().pop().unwrap();
    assert_eq!(last.body, delivery.body);

    double.set_legacy_envelopes(true);
    let old = double
        .emit(
            "s",
            "session.status",
            json!({"name": "s", "status": "FAILED"}),
        )
        .await;
    assert!(old.envelope.get("id").is_none() && old.envelope.get("timestamp").is_none());
    let ignored = double
        .emit(
            "s",
            "presence.update",
            json!({"id": ALICE, "presences": []}),
        )
        .await;
    assert!(ignored.deliveries.is_empty(), "not subscribed");
    let forced = double
        .emit_unsubscribed(
            "s",
            "presence.update",
            json!({"id": ALICE, "presences": []}),
        )
        .await;
    assert_eq!(forced.deliveries.len(), 1);
}

#[tokio::test]
async fn routes_misbehave_on_command() {
    let (double, client) = double().await;
    double.set_fault(
        Route::ListSessions,
        Fault::Error {
            status: 500,
            message: "boom".into(),
        },
    );
    let failed = call(&client, "GET", "/api/sessions", None).await;
    assert_eq!(
        failed.json,
        json!({"statusCode": 500, "message": "boom", "error": "Internal Server Error"})
    );
    double.set_fault(
        Route::ListSessions,
        Fault::Raw {
            status: 201,
            body: "not json".into(),
        },
    );
    let raw = call(&client, "GET", "/api/sessions", None).await;
    assert_eq!((raw.status, &raw.body[..]), (201, &b"not json"[..]));
    double.set_fault(Route::ListSessions, Fault::Delay(Duration::from_millis(50)));
    assert_eq!(
        call(&client, "GET", "/api/sessions", None).await.status,
        200
    );
    double.clear_fault(Route::ListSessions);

    // Hanging up and refusing are failures of the connection, so a raw client sees them.
    let raw_client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Full<hyper::body::Bytes>>();
    let get = || {
        http::Request::get(format!("{}/api/sessions", double.url()))
            .header("x-api-key", KEY)
            .body(http_body_util::Full::default())
            .unwrap()
    };
    double.set_fault(Route::ListSessions, Fault::Hangup);
    assert!(raw_client.request(get()).await.is_err());
    double.clear_fault(Route::ListSessions);
    assert!(raw_client.request(get()).await.is_ok());
    double.go_down().await;
    let refused = raw_client.request(get()).await.unwrap_err();
    assert!(refused.is_connect(), "{refused:?}");
    double.come_up().await;
    assert_eq!(raw_client.request(get()).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_batch_sends_signed_events_with_duplicates_both_ways() {
    let receiver = Receiver::start(Behaviour::Ok).await;
    let (double, client) = double().await;
    call(
        &client,
        "POST",
        "/api/sessions",
        Some(session_body("bench", &receiver.url())),
    )
    .await;
    let mut target = double.webhook_target("bench", "message").unwrap();
    target.custom_headers.clear();
    let plan = |pacing| BatchPlan {
        target: target.clone(),
        session: "bench".into(),
        from: ALICE.into(),
        count: 40,
        duplicate_percent: 10,
        pacing,
    };
    let closed = double
        .emitter()
        .run_batch(&plan(Pacing::ClosedLoop { connections: 4 }))
        .await;
    assert_eq!(
        (
            closed.items.len(),
            closed.acknowledged(),
            closed.duplicates()
        ),
        (40, 40, 4)
    );
    assert_eq!(closed.unique_messages().len(), 36);
    let open = double
        .emitter()
        .run_batch(&plan(Pacing::Rate {
            per_second: 2000,
            max_in_flight: 8,
        }))
        .await;
    assert_eq!(open.acknowledged(), 40);
    assert!(open.latency_percentile(99.0) >= open.latency_percentile(50.0));
    let hooks: Vec<Received> = received(&receiver, 81).await;
    let batch: Vec<&Received> = hooks
        .iter()
        .filter(|r| r.headers.get("x-custom").is_none())
        .collect();
    assert_eq!(batch.len(), 80);
    for hook in batch {
        assert_eq!(
            hook.headers["x-webhook-hmac"].to_str().unwrap(),
            sign(HOOK_KEY, &hook.body)
        );
        let body: Value = serde_json::from_slice(&hook.body).unwrap();
        assert!(violations(webhook_schema("message").unwrap(), &body, Strictness::Sent).is_empty());
    }
}
