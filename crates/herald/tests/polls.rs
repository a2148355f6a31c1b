//! Polls and votes over HTTP on both stores: every rule of the vote endpoint (valid, replace,
//! clear, single choice, duplicates, unknown option, too many, not a poll, missing, foreign),
//! the error precedence, sending polls, and tallies.

mod common;

use common::{counts, enc, World, ALICE, BOB, CHAT};
use herald_testkit::{per_backend, Backend};
use serde_json::json;

async fn the_vote_rules_hold(backend: Backend) {
    let w = World::new(backend).await;
    w.inbound_poll("P-multi", ALICE, &["Pizza", "Sushi", "Tacos"], 0)
        .await;
    w.inbound_poll("P-single", ALICE, &["Pizza", "Sushi", "Tacos"], 1)
        .await;
    w.inbound_poll("P-two", BOB, &["Pizza", "Sushi", "Tacos"], 2)
        .await;
    w.inbound_text("T-1", "just text").await;

    // Valid: 200 with a SendResult, and the tally shows it as this session's vote.
    let ok = w.vote("P-multi", ALICE, &["Pizza"]).await;
    assert_eq!(ok.status, 200, "{backend:?}: {:?}", ok.json);
    assert_eq!(ok.json["status"], "sent");
    assert_eq!(ok.json["sessionId"], w.session.as_str());
    assert_eq!(ok.json["chat"], CHAT);
    assert!(ok.json["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(ok.json["timestamp"].as_i64().unwrap() > 0);
    let tally = w.tally("P-multi", ALICE).await;
    assert_eq!(counts(&tally), [1, 0, 0]);
    assert_eq!(tally["myVote"], json!(["Pizza"]));
    assert_eq!(tally["voters"][0]["voter"], w.me.as_str());

    // Replace: the options are the complete selection, not an addition.
    assert_eq!(
        w.vote("P-multi", ALICE, &["Sushi", "Tacos"]).await.status,
        200
    );
    let tally = w.tally("P-multi", ALICE).await;
    assert_eq!(counts(&tally), [0, 1, 1], "{backend:?}");
    assert_eq!(tally["myVote"], json!(["Sushi", "Tacos"]));
    assert_eq!(tally["voters"].as_array().unwrap().len(), 1);

    // Clear: [] removes the vote.
    assert_eq!(w.vote("P-multi", ALICE, &[]).await.status, 200);
    let tally = w.tally("P-multi", ALICE).await;
    assert_eq!(counts(&tally), [0, 0, 0]);
    assert_eq!(tally["myVote"], json!([]));
    assert_eq!(tally["voters"], json!([]));

    // Single choice: exactly one option, or [].
    assert_eq!(
        w.vote("P-single", ALICE, &["Pizza", "Sushi"]).await.status,
        400
    );
    assert_eq!(w.vote("P-single", ALICE, &["Sushi"]).await.status, 200);
    assert_eq!(counts(&w.tally("P-single", ALICE).await), [0, 1, 0]);
    assert_eq!(w.vote("P-single", ALICE, &[]).await.status, 200);

    // Rules about the target: 400 validation_error, and nothing changes.
    w.vote("P-two", BOB, &["Tacos"]).await;
    for (mid, sender, options) in [
        ("P-multi", ALICE, vec!["Pizza", "Pizza"]),
        ("P-multi", ALICE, vec!["pizza"]),
        ("P-multi", ALICE, vec!["Pizza "]),
        ("P-multi", ALICE, vec!["Ramen"]),
        ("P-two", BOB, vec!["Pizza", "Sushi", "Tacos"]),
        ("T-1", ALICE, vec!["Pizza"]),
    ] {
        let reply = w.vote(mid, sender, &options).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (400, "validation_error"),
            "{backend:?} {mid} {options:?}"
        );
    }
    assert_eq!(w.tally("P-two", BOB).await["myVote"], json!(["Tacos"]));

    // Missing: unknown message, or the right id in another chat / from another sender.
    for (mid, chat, sender) in [
        ("nope", CHAT, ALICE),
        ("P-multi", "other@g.us", ALICE),
        ("P-multi", CHAT, BOB),
    ] {
        let reply = w
            .post(
                &format!("/api/v1/sessions/{}/messages/{mid}/vote", w.session),
                json!({"chat": chat, "sender": sender, "options": ["Pizza"]}),
            )
            .await;
        assert_eq!((reply.status, reply.error_code()), (404, "not_found"));
    }
    for session in ["01J9ZX8K2QHV0M3T6R7P4N5W8C", "not-a-session"] {
        let reply = w
            .post(
                &format!("/api/v1/sessions/{session}/messages/P-multi/vote"),
                json!({"chat": CHAT, "sender": ALICE, "options": ["Pizza"]}),
            )
            .await;
        assert_eq!(reply.status, 404);
    }

    // Foreign: another organization never finds this session or its poll.
    let other = w.server.api_key("org_b", "manage,read,send").await;
    let path = format!("/api/v1/sessions/{}/messages/P-multi/vote", w.session);
    let body = json!({"chat": CHAT, "sender": ALICE, "options": ["Pizza"]});
    let reply = w.server.client.post(&path, &other, &body).await;
    assert_eq!((reply.status, reply.error_code()), (404, "not_found"));
    let theirs = w
        .server
        .client
        .post("/api/v1/sessions", &other, &json!({"name": "b"}))
        .await;
    let their_session = theirs.json["id"].as_str().unwrap();
    let reply = w
        .server
        .client
        .post(
            &format!("/api/v1/sessions/{their_session}/messages/P-multi/vote"),
            &other,
            &body,
        )
        .await;
    assert_eq!(reply.status, 404);
    let tally_path = format!(
        "/api/v1/sessions/{}/messages/P-multi/poll?chat={}&sender={}",
        w.session,
        enc(CHAT),
        enc(ALICE)
    );
    assert_eq!(w.server.client.get(&tally_path, &other).await.status, 404);

    // Every accepted vote is a poll.vote event with the documented payload.
    let votes = w.all_events("&event=poll.vote").await;
    assert_eq!(votes.len(), 6, "{backend:?}");
    let first = &votes[0]["payload"];
    assert_eq!(
        first["poll"],
        json!({"id": "P-multi", "chat": CHAT, "sender": ALICE})
    );
    assert_eq!(first["vote"]["voter"], w.me.as_str());
    assert_eq!(first["vote"]["fromMe"], true);
    assert_eq!(first["vote"]["selectedOptions"], json!(["Pizza"]));
    assert_eq!(first["vote"]["id"], ok.json["id"]);
    assert_eq!(votes[2]["payload"]["vote"]["selectedOptions"], json!([]));
}

async fn errors_come_in_the_documented_order(backend: Backend) {
    let w = World::new(backend).await;
    w.inbound_poll("P", ALICE, &["Yes", "No"], 1).await;
    let vote_path = format!("/api/v1/sessions/{}/messages/P/vote", w.session);
    let good = json!({"chat": CHAT, "sender": ALICE, "options": ["Yes"]});

    // 401, then 403 (before looking at the body).
    let none = w
        .server
        .client
        .send("POST", &vote_path, None, Some(&good))
        .await;
    assert_eq!(none.status, 401);
    let reader = w.server.api_key("org_a", "read").await;
    let reply = w
        .server
        .client
        .send_raw(
            "POST",
            &vote_path,
            Some(&reader),
            Some(b"{nope".to_vec()),
            &[],
        )
        .await;
    assert_eq!((reply.status, reply.error_code()), (403, "forbidden"));

    // 422 names the field, and comes before 404.
    for (body, field) in [
        (json!({"sender": ALICE, "options": ["Yes"]}), "chat"),
        (json!({"chat": CHAT, "options": ["Yes"]}), "sender"),
        (json!({"chat": CHAT, "sender": ALICE}), "options"),
        (
            json!({"chat": CHAT, "sender": ALICE, "options": "Yes"}),
            "options",
        ),
        (
            json!({"chat": CHAT, "sender": ALICE, "options": [1]}),
            "options",
        ),
    ] {
        let reply = w
            .post(
                "/api/v1/sessions/01J9ZX8K2QHV0M3T6R7P4N5W8C/messages/P/vote",
                body,
            )
            .await;
        assert_eq!(reply.status, 422, "{backend:?} {field}");
        assert_eq!(reply.json["error"]["details"]["field"], field);
    }
    let not_json = w
        .server
        .client
        .send_raw(
            "POST",
            &vote_path,
            Some(&w.token),
            Some(b"{nope".to_vec()),
            &[],
        )
        .await;
    assert_eq!(not_json.status, 422);

    // 404 before 400: an unknown session with a bad option is not found.
    let reply = w
        .post(
            "/api/v1/sessions/01J9ZX8K2QHV0M3T6R7P4N5W8C/messages/P/vote",
            json!({"chat": CHAT, "sender": ALICE, "options": ["Maybe"]}),
        )
        .await;
    assert_eq!(reply.status, 404);

    // The tally needs chat and sender.
    let base = format!("/api/v1/sessions/{}/messages/P/poll", w.session);
    let reply = w.get(&format!("{base}?sender={}", enc(ALICE))).await;
    assert_eq!(
        (
            reply.status,
            reply.json["error"]["details"]["field"].as_str()
        ),
        (422, Some("chat"))
    );
    let reply = w.get(&format!("{base}?chat={}", enc(CHAT))).await;
    assert_eq!(
        (
            reply.status,
            reply.json["error"]["details"]["field"].as_str()
        ),
        (422, Some("sender"))
    );
    // A text message has no tally.
    w.inbound_text("T", "hello").await;
    let reply = w
        .get(&format!(
            "/api/v1/sessions/{}/messages/T/poll?chat={}&sender={}",
            w.session,
            enc(CHAT),
            enc(ALICE)
        ))
        .await;
    assert_eq!(reply.status, 400);
}

async fn a_poll_sent_through_the_api_can_be_voted_on_and_tallied(backend: Backend) {
    let w = World::new(backend).await;
    let path = format!("/api/v1/sessions/{}/polls", w.session);
    let sent = w
        .post(
            &path,
            json!({"chat": CHAT, "question": "Where?", "options": ["Park", "Beach", "Home"], "selectableCount": 2}),
        )
        .await;
    assert_eq!(sent.status, 200, "{backend:?}: {:?}", sent.json);
    assert_eq!(sent.json["status"], "sent");
    assert_eq!(sent.json["chat"], CHAT);
    assert_eq!(sent.json["sessionId"], w.session.as_str());
    let mid = sent.json["id"].as_str().unwrap().to_owned();

    // The poll is stored under this session's own account as sender.
    let me = w.me.clone();
    assert_eq!(w.vote(&mid, &me, &["Park", "Home"]).await.status, 200);
    // Someone else votes through the engine.
    w.ingest_on(
        &w.session,
        json!({"event": "poll.vote", "payload": {
            "poll": {"id": mid, "chat": CHAT, "sender": me},
            "vote": {"voter": BOB, "selectedOptions": ["Home"]}}}),
    )
    .await;
    let tally = w.tally(&mid, &me).await;
    assert_eq!(tally["question"], "Where?");
    assert_eq!(tally["selectableCount"], 2);
    assert_eq!(
        tally["options"],
        json!([{"name": "Park", "votes": 1}, {"name": "Beach", "votes": 0}, {"name": "Home", "votes": 2}])
    );
    assert_eq!(tally["myVote"], json!(["Park", "Home"]));
    assert_eq!(tally["voters"].as_array().unwrap().len(), 2);

    // The send is one message.any event with the poll in its payload; default single choice.
    let any = w.all_events("&event=message.any").await;
    assert_eq!(any.len(), 1);
    assert_eq!(any[0]["payload"]["id"], mid.as_str());
    assert_eq!(any[0]["payload"]["fromMe"], true);
    assert_eq!(
        any[0]["payload"]["poll"]["options"],
        json!(["Park", "Beach", "Home"])
    );
    assert_eq!(any[0]["me"]["id"], me.as_str());
    let single = w
        .post(
            &path,
            json!({"chat": CHAT, "question": "Ok?", "options": ["y", "n"]}),
        )
        .await;
    let single_id = single.json["id"].as_str().unwrap();
    assert_eq!(w.tally(single_id, &me).await["selectableCount"], 1);

    // Malformed polls are 422 naming the field.
    for (body, field) in [
        (json!({"question": "q", "options": ["a", "b"]}), "chat"),
        (
            json!({"chat": "", "question": "q", "options": ["a", "b"]}),
            "chat",
        ),
        (json!({"chat": CHAT, "options": ["a", "b"]}), "question"),
        (
            json!({"chat": CHAT, "question": "q", "options": ["a"]}),
            "options",
        ),
        (
            json!({"chat": CHAT, "question": "q", "options": ["a", "a"]}),
            "options",
        ),
        (
            json!({"chat": CHAT, "question": "q", "options": ["a", ""]}),
            "options",
        ),
        (
            json!({"chat": CHAT, "question": "q", "options": ["a", "b"], "selectableCount": 3}),
            "selectableCount",
        ),
        (
            json!({"chat": CHAT, "question": "q", "options": ["a", "b"], "selectableCount": -1}),
            "selectableCount",
        ),
    ] {
        let reply = w.post(&path, body).await;
        assert_eq!(reply.status, 422, "{backend:?} {field}");
        assert_eq!(reply.json["error"]["details"]["field"], field);
    }
    // Sending needs `send`; an unknown session is 404.
    let reader = w.server.api_key("org_a", "read").await;
    let body = json!({"chat": CHAT, "question": "q", "options": ["a", "b"]});
    assert_eq!(
        w.server.client.post(&path, &reader, &body).await.status,
        403
    );
    assert_eq!(
        w.post(
            "/api/v1/sessions/01J9ZX8K2QHV0M3T6R7P4N5W8C/polls",
            body.clone()
        )
        .await
        .status,
        404
    );
    // A session that is not WORKING cannot send: 409.
    w.ingest_on(
        &w.session,
        json!({"event": "session.status", "payload": {"status": "STOPPED"}}),
    )
    .await;
    let reply = w.post(&path, body).await;
    assert_eq!((reply.status, reply.error_code()), (409, "conflict"));
}

async fn concurrent_votes_leave_the_tally_at_the_last_logged_vote(backend: Backend) {
    let w = World::new(backend).await;
    w.inbound_poll("P", ALICE, &["A", "B", "C"], 0).await;
    w.inbound_poll("Q", ALICE, &["A", "B", "C"], 0).await;
    let choices = [vec!["A"], vec!["B"], vec!["C"], vec!["A", "C"], vec![]];
    // Many votes at once on two polls (they are committed together in batches).
    let replies = futures_util::future::join_all((0..100).map(|i| {
        let poll = if i % 2 == 0 { "P" } else { "Q" };
        w.vote(poll, ALICE, &choices[i % choices.len()])
    }))
    .await;
    assert!(replies.iter().all(|r| r.status == 200), "{backend:?}");
    let events = w.all_events("&event=poll.vote").await;
    assert_eq!(events.len(), 100);
    for poll in ["P", "Q"] {
        let last = events
            .iter()
            .rev()
            .find(|e| e["payload"]["poll"]["id"] == poll)
            .unwrap();
        let tally = w.tally(poll, ALICE).await;
        assert_eq!(
            tally["myVote"], last["payload"]["vote"]["selectedOptions"],
            "{backend:?} {poll}: the state is the last logged vote"
        );
    }
}

per_backend!(
    the_vote_rules_hold,
    errors_come_in_the_documented_order,
    a_poll_sent_through_the_api_can_be_voted_on_and_tallied,
    concurrent_votes_leave_the_tally_at_the_last_logged_vote
);
