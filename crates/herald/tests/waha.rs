//! Herald in front of WAHA, end to end on both stores: the real server with
//! `HERALD_ENGINE=waha` against the WAHA double (which checks `X-Api-Key` and every request body
//! against WAHA's published document, and posts signed, retried webhooks back to Herald).
//!
//! - a session walks STARTING → SCAN_QR (QR served) → WORKING with `me`, following WAHA's
//!   `session.status` webhooks; text, a poll and a vote reach WAHA with the documented bodies
//!   and come back as SendResults carrying WAHA's ids (percent-encoded in paths);
//! - WAHA's events (messages, own messages from the phone, acks, votes on known and unknown
//!   polls, failed votes, unknown statuses) become Herald events exactly once, duplicates and
//!   echoes of Herald's own sends dropped; unsigned or forged webhooks are 401 and store nothing;
//!   an unknown WAHA session and an event Herald does not take are acknowledged as ignored;
//! - WAHA down or slow → 503 `engine_unavailable`, WAHA refusing → 502 `engine_error` with its
//!   status, and in every case nothing stored and no event; a session whose creation failed is
//!   kept FAILED and restarted; two sessions cannot bind one WAHA session; WAHA Core's existing
//!   `default` session is taken over (update + start); deleting deletes the WAHA session.

use herald_testkit::openapi::Conformance;
use herald_testkit::waha::{Fault, Route, Tier, VoteSpec, WahaDouble, WahaOptions};
use herald_testkit::{
    eventually, per_backend, Backend, Reply, TestServer, WAHA_API_KEY, WAHA_WEBHOOK_KEY,
};
use serde_json::{json, Value};
use std::time::Duration;

const ME: &str = "11111111111@c.us";
const FRIEND: &str = "22222222222@c.us";
const WAIT: Duration = Duration::from_secs(20);
const EVENTS_PATH: &str = "/api/v1/engines/waha/events";

async fn double() -> WahaDouble {
    WahaDouble::start_with(WahaOptions {
        api_key: Some(WAHA_API_KEY.to_owned()),
        tier: Tier::Plus,
    })
    .await
}

/// The session's events in the log, oldest first.
async fn events(server: &TestServer, token: &str, session: &str) -> Vec<Value> {
    let reply = server
        .client
        .get(
            &format!("/api/v1/events?sessionId={session}&limit=200"),
            token,
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.json);
    reply.json["data"].as_array().cloned().unwrap_or_default()
}

async fn session(server: &TestServer, token: &str, id: &str) -> Value {
    server
        .client
        .get(&format!("/api/v1/sessions/{id}"), token)
        .await
        .json
}

/// Waits until the session has `status`.
async fn wait_status(server: &TestServer, token: &str, id: &str, status: &str) -> Value {
    eventually(&format!("session {id} to be {status}"), WAIT, || async {
        let s = session(server, token, id).await;
        (s["status"] == status).then_some(s)
    })
    .await
}

/// Creates a session and walks it to WORKING as [`ME`]; returns its id.
async fn working_session(server: &TestServer, waha: &WahaDouble, token: &str) -> String {
    let created = server
        .client
        .post("/api/v1/sessions", token, &json!({"name": "sales"}))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    let id = created.json["id"].as_str().unwrap().to_owned();
    waha.walk_to_working(&id, "QR-1", ME).await;
    wait_status(server, token, &id, "WORKING").await;
    id
}

/// Posts `body` to the WAHA route with `signature` (none when `None`).
async fn post_event(server: &TestServer, body: &[u8], signature: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = signature
        .map(|s| {
            vec![
                ("x-webhook-hmac", s),
                ("x-webhook-hmac-algorithm", "sha512"),
            ]
        })
        .unwrap_or_default();
    server
        .client
        .send_raw("POST", EVENTS_PATH, None, Some(body.to_vec()), &headers)
        .await
}

/// Herald's answer to the one webhook an emission went out as.
fn answer(emission: &herald_testkit::waha::Emission) -> Value {
    assert!(emission.acknowledged(), "{:?}", emission.deliveries);
    emission.delivery().last().json()
}

fn of_type<'a>(events: &'a [Value], event: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == event).collect()
}

async fn a_session_works_through_waha(backend: Backend) {
    let waha = double().await;
    let server = TestServer::start_waha(backend, &waha.url()).await;
    let token = server.api_key("org_waha", "read,send,manage").await;
    let c = &server.client;
    let conformance = Conformance::fetch(c).await;

    // Creation: STARTING, bound to a WAHA session of its own id, configured to call Herald back.
    let created = c
        .post("/api/v1/sessions", &token, &json!({"name": "sales"}))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    conformance.assert("POST", "/api/v1/sessions", &created);
    let id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(created.json["status"], "STARTING");
    assert_eq!(created.json["engineSession"], id.as_str());
    let create = &waha.calls_to(Route::CreateSession)[0];
    assert_eq!(create.api_key(), Some(WAHA_API_KEY));
    assert_eq!(create.body["name"], id.as_str());
    assert_eq!(create.body["start"], true);
    let hook = &create.body["config"]["webhooks"][0];
    assert_eq!(hook["url"], format!("{}{EVENTS_PATH}", server.base_url));
    assert_eq!(hook["hmac"]["key"], WAHA_WEBHOOK_KEY);
    assert_eq!(
        hook["retries"],
        json!({"policy": "exponential", "delaySeconds": 2, "attempts": 10})
    );
    assert_eq!(
        hook["events"],
        json!([
            "session.status",
            "message",
            "message.any",
            "message.ack",
            "poll.vote",
            "poll.vote.failed"
        ])
    );
    let qr = c.get(&format!("/api/v1/sessions/{id}/qr"), &token).await;
    assert_eq!(qr.status, 409, "no QR while STARTING: {:?}", qr.json);

    // WAHA asks for a QR scan, then pairs: Herald follows, `me` included.
    let shown = waha.show_qr(&id, "2@QR-TEXT").await;
    assert!(answer(&shown)["eventId"].is_string());
    wait_status(&server, &token, &id, "SCAN_QR").await;
    let qr = c.get(&format!("/api/v1/sessions/{id}/qr"), &token).await;
    assert_eq!((qr.status, &qr.json), (200, &json!({"value": "2@QR-TEXT"})));
    conformance.assert("GET", "/api/v1/sessions/{id}/qr", &qr);
    waha.pair(&id, ME).await;
    let working = wait_status(&server, &token, &id, "WORKING").await;
    assert_eq!(working["me"]["id"], ME);

    // Text: WAHA's body, WAHA's id, one `message.any` (WAHA's echo of it is dropped).
    let sent = c
        .post(
            &format!("/api/v1/sessions/{id}/messages/text"),
            &token,
            &json!({"chat": FRIEND, "text": "Hello from Herald", "replyTo": "false_2@c.us_AAA"}),
        )
        .await;
    assert_eq!(sent.status, 200, "{:?}", sent.json);
    conformance.assert("POST", "/api/v1/sessions/{id}/messages/text", &sent);
    let text_id = sent.json["id"].as_str().unwrap().to_owned();
    assert!(text_id.starts_with("true_"), "WAHA's id: {text_id}");
    let call = waha.calls_to(Route::SendText).pop().unwrap();
    assert_eq!(
        (
            &call.body["session"],
            &call.body["chatId"],
            &call.body["text"],
            &call.body["reply_to"]
        ),
        (
            &json!(id),
            &json!(FRIEND),
            &json!("Hello from Herald"),
            &json!("false_2@c.us_AAA")
        )
    );
    let echo = eventually("WAHA's echo of the text", WAIT, || async {
        waha.emitted()
            .into_iter()
            .find(|e| e.event == "message.any" && e.envelope["payload"]["id"] == text_id.as_str())
    })
    .await;
    // WAHA may post the echo before it answers the send: then the echo is what gets stored
    // (and the send finds it there); either way the message is published once (checked below).
    let echoed = answer(&echo);
    assert!(
        echoed == json!({"ignored": "already stored"}) || echoed["eventId"].is_string(),
        "{echoed}"
    );

    // A poll and a vote on it: WAHA's bodies; the message id travels percent-encoded.
    let poll = c
        .post(
            &format!("/api/v1/sessions/{id}/polls"),
            &token,
            &json!({"chat": FRIEND, "question": "Lunch?", "options": ["Pizza", "Sushi"]}),
        )
        .await;
    assert_eq!(poll.status, 200, "{:?}", poll.json);
    let poll_id = poll.json["id"].as_str().unwrap().to_owned();
    let call = waha.calls_to(Route::SendPoll).pop().unwrap();
    assert_eq!(
        call.body["poll"],
        json!({"name": "Lunch?", "options": ["Pizza", "Sushi"], "multipleAnswers": false})
    );
    let encoded: String =
        percent_encoding::utf8_percent_encode(&poll_id, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let voted = c
        .post(
            &format!("/api/v1/sessions/{id}/messages/{encoded}/vote"),
            &token,
            &json!({"chat": FRIEND, "sender": ME, "options": ["Sushi"]}),
        )
        .await;
    assert_eq!(voted.status, 200, "{:?}", voted.json);
    let call = waha.calls_to(Route::SendPollVote).pop().unwrap();
    assert_eq!(
        (
            &call.body["pollMessageId"],
            &call.body["votes"],
            &call.body["chatId"]
        ),
        (&json!(poll_id), &json!(["Sushi"]), &json!(FRIEND))
    );

    // Someone votes on the poll (tally), and on a poll Herald never saw (published only).
    let friend_vote = waha
        .vote(
            &id,
            &VoteSpec {
                poll_id: poll_id.clone(),
                chat: FRIEND.into(),
                poll_from_me: true,
                voter: FRIEND.into(),
                selected: vec!["Pizza".into()],
            },
        )
        .await;
    assert!(answer(&friend_vote)["eventId"].is_string());
    let tally = c
        .get(
            &format!("/api/v1/sessions/{id}/messages/{encoded}/poll?chat={FRIEND}&sender={ME}"),
            &token,
        )
        .await;
    assert_eq!(
        tally.json["options"],
        json!([{"name": "Pizza", "votes": 1}, {"name": "Sushi", "votes": 1}]),
        "{:?}",
        tally.json
    );
    let stranger_vote = waha
        .vote(
            &id,
            &VoteSpec {
                poll_id: "false_33333333333@c.us_UNKNOWNPOLL".into(),
                chat: "33333333333@c.us".into(),
                poll_from_me: false,
                voter: "33333333333@c.us".into(),
                selected: vec!["Maybe".into()],
            },
        )
        .await;
    assert!(answer(&stranger_vote)["eventId"].is_string());
    let failed = waha
        .failed_vote(
            &id,
            &VoteSpec {
                poll_id: poll_id.clone(),
                chat: FRIEND.into(),
                poll_from_me: true,
                voter: FRIEND.into(),
                selected: vec![],
            },
        )
        .await;
    assert!(answer(&failed)["eventId"].is_string());

    // Inbound text, a message from the phone, a receipt.
    let inbound = waha.inbound_text(&id, FRIEND, "Hi Herald").await;
    assert!(answer(&inbound.emissions[0])["eventId"].is_string());
    assert_eq!(
        answer(&inbound.emissions[1]),
        json!({"ignored": "message.any not from me"})
    );
    let own = waha.own_text(&id, FRIEND, "typed on the phone").await;
    assert!(answer(&own.emissions[0])["eventId"].is_string());
    let ack = waha.ack(&id, &text_id, FRIEND, 3).await;
    assert!(answer(&ack)["eventId"].is_string());

    // A duplicate is answered with the first event and adds nothing.
    let before = events(&server, &token, &id).await.len();
    let again = waha.resend(inbound.emissions[0].delivery()).await;
    assert_eq!(again.status, Some(200));
    assert_eq!(
        again.json(),
        json!({"eventId": answer(&inbound.emissions[0])["eventId"], "duplicate": true})
    );
    // A status Herald has no name for: STARTING, WAHA's name kept in the event.
    waha.set_status(&id, "PASSKEY_REQUIRED").await;
    wait_status(&server, &token, &id, "STARTING").await;
    waha.set_status(&id, "WORKING").await;
    wait_status(&server, &token, &id, "WORKING").await;
    // An event Herald does not take.
    let presence = waha
        .emit_unsubscribed(
            &id,
            "presence.update",
            json!({"id": FRIEND, "presences": []}),
        )
        .await;
    assert_eq!(answer(&presence), json!({"ignored": "presence.update"}));

    let log = events(&server, &token, &id).await;
    assert_eq!(
        log.len(),
        before + 2,
        "only the two status changes were added"
    );
    let texts: Vec<&Value> = of_type(&log, "message.any")
        .into_iter()
        .filter(|e| e["payload"]["id"] == text_id.as_str())
        .collect();
    assert_eq!(texts.len(), 1, "the sent text is one message.any");
    assert_eq!(texts[0]["payload"]["body"], "Hello from Herald");
    let inbound_events: Vec<&Value> = log
        .iter()
        .filter(|e| e["payload"]["id"] == inbound.id.as_str())
        .collect();
    let kinds: Vec<&Value> = inbound_events.iter().map(|e| &e["event"]).collect();
    assert_eq!(kinds, [&json!("message"), &json!("message.any")]);
    assert_eq!(inbound_events[0]["payload"]["body"], "Hi Herald");
    assert_eq!(inbound_events[0]["payload"]["sender"], FRIEND);
    let phone: Vec<&Value> = log
        .iter()
        .filter(|e| e["payload"]["id"] == own.id.as_str())
        .collect();
    assert_eq!(phone.len(), 1);
    assert_eq!(
        (&phone[0]["event"], &phone[0]["payload"]["fromMe"]),
        (&json!("message.any"), &json!(true))
    );
    let acks = of_type(&log, "message.ack");
    assert_eq!(
        acks[0]["payload"],
        json!({"id": text_id, "chat": FRIEND, "ack": 3, "ackName": "READ"})
    );
    let votes = of_type(&log, "poll.vote");
    assert_eq!(votes.len(), 3, "own vote, the friend's, the stranger's");
    assert_eq!(votes[1]["payload"]["vote"]["voter"], FRIEND);
    assert_eq!(
        votes[2]["payload"]["poll"]["id"],
        "false_33333333333@c.us_UNKNOWNPOLL"
    );
    assert_eq!(of_type(&log, "poll.vote.failed").len(), 1);
    let statuses: Vec<&Value> = of_type(&log, "session.status")
        .into_iter()
        .map(|e| &e["payload"])
        .collect();
    assert!(statuses
        .iter()
        .any(|p| p["status"] == "SCAN_QR" && p.get("engineStatus").is_none()));
    assert!(statuses
        .iter()
        .any(|p| p["status"] == "STARTING" && p["engineStatus"] == "PASSKEY_REQUIRED"));

    // Forged, unsigned and unknown-session webhooks.
    let body = serde_json::to_vec(&herald_testkit::waha::envelope(
        &id,
        "message",
        inbound.emissions[0].envelope["payload"].clone(),
        None,
        false,
    ))
    .unwrap();
    let unsigned = post_event(&server, &body, None).await;
    assert_eq!(unsigned.status, 401);
    conformance.assert("POST", EVENTS_PATH, &unsigned);
    let forged = herald_testkit::waha::sign("another-key", &body);
    assert_eq!(post_event(&server, &body, Some(&forged)).await.status, 401);
    let garbage = herald_testkit::waha::sign(WAHA_WEBHOOK_KEY, b"not json");
    let unreadable = post_event(&server, b"not json", Some(&garbage)).await;
    assert_eq!(unreadable.status, 422);
    conformance.assert("POST", EVENTS_PATH, &unreadable);
    assert_eq!(events(&server, &token, &id).await.len(), log.len());
    let ghost = serde_json::to_vec(&herald_testkit::waha::envelope(
        "ghost",
        "session.status",
        json!({"name": "ghost", "status": "WORKING"}),
        None,
        false,
    ))
    .unwrap();
    let ignored = post_event(
        &server,
        &ghost,
        Some(&herald_testkit::waha::sign(WAHA_WEBHOOK_KEY, &ghost)),
    )
    .await;
    assert_eq!(
        (ignored.status, &ignored.json),
        (200, &json!({"ignored": "unknown session"}))
    );
    conformance.assert("POST", EVENTS_PATH, &ignored);

    let metrics = c.get("/metrics", &token).await;
    let text = String::from_utf8_lossy(&metrics.body);
    for line in [
        "herald_engine_requests_total{engine=\"waha\",operation=\"send_text\",outcome=\"ok\"} 1",
        "herald_engine_requests_total{engine=\"waha\",operation=\"start\",outcome=\"ok\"} 1",
        "herald_engine_events_total{event=\"message\",outcome=\"duplicate\"} 1",
        "herald_engine_events_total{event=\"message.any\",outcome=\"ignored\"}",
        "herald_engine_events_total{event=\"unknown\",outcome=\"unauthorized\"} 2",
        "herald_engine_events_total{event=\"session.status\",outcome=\"unknown_session\"} 1",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }

    // Deleting deletes the WAHA session too.
    let deleted = c.delete(&format!("/api/v1/sessions/{id}"), &token).await;
    assert_eq!(deleted.status, 204, "{:?}", deleted.json);
    assert!(waha.session(&id).is_none());
}

async fn engine_failures_are_never_half_applied(backend: Backend) {
    let waha = double().await;
    let server = TestServer::start_waha(backend, &waha.url()).await;
    let token = server.api_key("org_waha", "read,send,manage").await;
    let c = &server.client;
    let conformance = Conformance::fetch(c).await;
    let id = working_session(&server, &waha, &token).await;
    let text = format!("/api/v1/sessions/{id}/messages/text");
    let logged = events(&server, &token, &id).await.len();

    // Down: 503 engine_unavailable.
    waha.go_down().await;
    let down = c
        .post(&text, &token, &json!({"chat": FRIEND, "text": "hi"}))
        .await;
    assert_eq!(
        (down.status, down.error_code()),
        (503, "engine_unavailable"),
        "{:?}",
        down.json
    );
    assert!(down.headers.contains_key("retry-after"));
    conformance.assert("POST", "/api/v1/sessions/{id}/messages/text", &down);
    // Deleting while WAHA is down deletes nothing.
    let kept = c.delete(&format!("/api/v1/sessions/{id}"), &token).await;
    assert_eq!(kept.status, 503);
    assert_eq!(session(&server, &token, &id).await["status"], "WORKING");
    waha.come_up().await;

    // Refusing: 502 engine_error with WAHA's status and message.
    waha.set_fault(
        Route::SendText,
        Fault::Error {
            status: 500,
            message: "engine crashed".into(),
        },
    );
    let refused = c
        .post(&text, &token, &json!({"chat": FRIEND, "text": "hi"}))
        .await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (502, "engine_error")
    );
    assert_eq!(refused.json["error"]["details"]["engineStatus"], 500);
    assert_eq!(
        refused.json["error"]["details"]["engineMessage"],
        "engine crashed"
    );
    conformance.assert("POST", "/api/v1/sessions/{id}/messages/text", &refused);
    waha.set_fault(
        Route::SendPoll,
        Fault::Error {
            status: 422,
            message: "The method is not implemented by the engine.".into(),
        },
    );
    let poll = c
        .post(
            &format!("/api/v1/sessions/{id}/polls"),
            &token,
            &json!({"chat": FRIEND, "question": "Q?", "options": ["A", "B"]}),
        )
        .await;
    assert_eq!(poll.status, 502);
    assert_eq!(poll.json["error"]["details"]["engineStatus"], 422);
    waha.clear_fault(Route::SendPoll);

    // Slow: past the engine timeout (1 s here), 503.
    let sent = c
        .post(
            &format!("/api/v1/sessions/{id}/polls"),
            &token,
            &json!({"chat": FRIEND, "question": "Q?", "options": ["A", "B"]}),
        )
        .await;
    assert_eq!(sent.status, 200, "{:?}", sent.json);
    let poll_id = sent.json["id"].as_str().unwrap().to_owned();
    let poll_events = events(&server, &token, &id).await.len();
    assert_eq!(poll_events, logged + 1);
    waha.set_fault(Route::SendPollVote, Fault::Delay(Duration::from_secs(3)));
    let encoded =
        percent_encoding::utf8_percent_encode(&poll_id, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let slow = c
        .post(
            &format!("/api/v1/sessions/{id}/messages/{encoded}/vote"),
            &token,
            &json!({"chat": FRIEND, "sender": ME, "options": ["A"]}),
        )
        .await;
    assert_eq!(
        (slow.status, slow.error_code()),
        (503, "engine_unavailable")
    );
    waha.clear_fault(Route::SendPollVote);
    let tally = c
        .get(
            &format!("/api/v1/sessions/{id}/messages/{encoded}/poll?chat={FRIEND}&sender={ME}"),
            &token,
        )
        .await;
    assert_eq!(tally.json["myVote"], json!([]), "no vote was stored");
    assert_eq!(
        events(&server, &token, &id).await.len(),
        poll_events,
        "no event for any failed call"
    );

    // A creation WAHA refuses: kept FAILED with the reason, then restarted.
    waha.set_fault(
        Route::CreateSession,
        Fault::Error {
            status: 500,
            message: "no browser".into(),
        },
    );
    let failed = c
        .post("/api/v1/sessions", &token, &json!({"name": "later"}))
        .await;
    assert_eq!(failed.status, 201, "{:?}", failed.json);
    assert_eq!(failed.json["status"], "FAILED");
    let later = failed.json["id"].as_str().unwrap().to_owned();
    let status = events(&server, &token, &later).await;
    let last = &status.last().unwrap()["payload"];
    assert_eq!(last["status"], "FAILED");
    assert!(
        last["reason"].as_str().unwrap().contains("no browser"),
        "{last}"
    );
    let again = c
        .post(
            &format!("/api/v1/sessions/{later}/restart"),
            &token,
            &json!({}),
        )
        .await;
    assert_eq!(again.status, 502, "still refused: {:?}", again.json);
    assert_eq!(session(&server, &token, &later).await["status"], "FAILED");
    waha.clear_fault(Route::CreateSession);
    let restarted = c
        .post(
            &format!("/api/v1/sessions/{later}/restart"),
            &token,
            &json!({}),
        )
        .await;
    assert_eq!(
        restarted.status,
        200,
        "{:?} {:?}",
        restarted.json,
        waha.calls()
            .iter()
            .map(|c| (c.route, c.status))
            .collect::<Vec<_>>()
    );
    conformance.assert("POST", "/api/v1/sessions/{id}/restart", &restarted);
    assert_eq!(restarted.json["status"], "STARTING");
    assert!(waha.session(&later).is_some());

    // One WAHA session, one Herald session.
    let taken = c
        .post(
            "/api/v1/sessions",
            &token,
            &json!({"name": "copy", "engineSession": id}),
        )
        .await;
    assert_eq!((taken.status, taken.error_code()), (409, "conflict"));
    let bad = c
        .post(
            "/api/v1/sessions",
            &token,
            &json!({"name": "bad", "engineSession": "a/b"}),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json["error"]["details"]["field"], "engineSession");

    // A WORKING report that names no account: Herald asks WAHA (`GET /api/sessions/{name}/me`).
    waha.set_fault(
        Route::Me,
        Fault::Raw {
            status: 200,
            body: r#"{"id":"33333333333@c.us","pushName":"Ops"}"#.into(),
        },
    );
    let body = serde_json::to_vec(&herald_testkit::waha::envelope(
        &later,
        "session.status",
        json!({"name": later, "status": "WORKING"}),
        None,
        false,
    ))
    .unwrap();
    let signature = herald_testkit::waha::sign(WAHA_WEBHOOK_KEY, &body);
    let accepted = post_event(&server, &body, Some(&signature)).await;
    assert_eq!(accepted.status, 200, "{:?}", accepted.json);
    let working = session(&server, &token, &later).await;
    assert_eq!(
        (&working["status"], &working["me"]["id"]),
        (&json!("WORKING"), &json!("33333333333@c.us"))
    );
    assert_eq!(waha.calls_to(Route::Me).len(), 1);
}

async fn waha_cores_default_session_is_taken_over(backend: Backend) {
    let waha = WahaDouble::start_with(WahaOptions {
        api_key: Some(WAHA_API_KEY.to_owned()),
        tier: Tier::Core,
    })
    .await;
    waha.seed_session("default");
    let server = TestServer::start_waha(backend, &waha.url()).await;
    let token = server.api_key("org_core", "read,send,manage").await;
    let created = server
        .client
        .post(
            "/api/v1/sessions",
            &token,
            &json!({"name": "main", "engineSession": "default"}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    assert_eq!(created.json["status"], "STARTING");
    assert_eq!(created.json["engineSession"], "default");
    let routes: Vec<Option<Route>> = waha.calls().iter().map(|c| c.route).collect();
    assert_eq!(
        routes,
        [
            Some(Route::CreateSession),
            Some(Route::UpdateSession),
            Some(Route::StartSession)
        ]
    );
    let configured = waha.session("default").unwrap().config;
    assert_eq!(
        configured["webhooks"][0]["hmac"]["key"], WAHA_WEBHOOK_KEY,
        "{configured}"
    );
    let id = created.json["id"].as_str().unwrap().to_owned();
    waha.walk_to_working("default", "QR", ME).await;
    let working = wait_status(&server, &token, &id, "WORKING").await;
    assert_eq!(working["me"]["id"], ME);
}

per_backend!(
    a_session_works_through_waha,
    engine_failures_are_never_half_applied,
    waha_cores_default_session_is_taken_over
);

/// Text works with the simulator too: a SendResult and one `message.any`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_sends_text_and_has_no_qr_code() {
    let server = TestServer::start(Backend::Sqlite).await;
    let token = server.api_key("org_sim", "read,send,manage").await;
    let c = &server.client;
    let created = c
        .post("/api/v1/sessions", &token, &json!({"name": "sim"}))
        .await;
    let id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(created.json["status"], "WORKING");
    let sent = c
        .post(
            &format!("/api/v1/sessions/{id}/messages/text"),
            &token,
            &json!({"chat": FRIEND, "text": "hello"}),
        )
        .await;
    assert_eq!(sent.status, 200, "{:?}", sent.json);
    let log = events(&server, &token, &id).await;
    let any = of_type(&log, "message.any");
    assert_eq!(any.len(), 1);
    assert_eq!(
        (&any[0]["payload"]["id"], &any[0]["payload"]["body"]),
        (&sent.json["id"], &json!("hello"))
    );
    let empty = c
        .post(
            &format!("/api/v1/sessions/{id}/messages/text"),
            &token,
            &json!({"chat": FRIEND, "text": ""}),
        )
        .await;
    assert_eq!(empty.status, 422);
    let long = c
        .post(
            &format!("/api/v1/sessions/{id}/messages/text"),
            &token,
            &json!({"chat": FRIEND, "text": "x".repeat(65_537)}),
        )
        .await;
    assert_eq!(long.json["error"]["details"]["field"], "text");
    let qr = c.get(&format!("/api/v1/sessions/{id}/qr"), &token).await;
    assert_eq!(qr.status, 409);
    let waha_route = server
        .client
        .send_raw("POST", EVENTS_PATH, None, Some(b"{}".to_vec()), &[])
        .await;
    assert_eq!(
        waha_route.status, 404,
        "no WAHA route without the WAHA engine"
    );
}
