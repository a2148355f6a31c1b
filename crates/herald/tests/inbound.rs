//! Inbound engine reports over HTTP on both stores: messages (stored so votes find them, two
//! events unless from me), other people's votes (same replace rule), failed votes, status
//! changes, and idempotency — sequential and concurrent repeats of one `id` are accepted once.

mod common;

use common::{counts, World, ALICE, BOB, CHAT};
use herald_testkit::{per_backend, Backend};
use serde_json::json;

async fn inbound_reports_become_state_and_events(backend: Backend) {
    let w = World::new(backend).await;

    // A message from someone else: `message` and `message.any`, each its own id; the answer
    // is the `message` event.
    let answer = w
        .ingest_on(
            &w.session,
            json!({"event": "message", "payload": {"id": "M1", "chat": CHAT, "sender": ALICE,
                   "type": "text", "body": "hi", "timestamp": 1719662400000_i64}}),
        )
        .await;
    let events = w.all_events("&event=message,message.any").await;
    assert_eq!(events.len(), 2, "{backend:?}");
    assert_eq!(events[0]["event"], "message");
    assert_eq!(events[0]["id"], answer.as_str());
    assert_eq!(events[1]["event"], "message.any");
    assert_ne!(events[0]["id"], events[1]["id"]);
    assert_eq!(events[0]["payload"]["body"], "hi");
    assert_eq!(events[0]["payload"]["timestamp"], 1719662400000_i64);
    assert_eq!(events[0]["session"], w.session.as_str());
    assert_eq!(events[0]["organizationId"], "org_a");
    assert_eq!(events[0]["me"]["id"], w.me.as_str());

    // From me: only `message.any`, and that is the answer.
    let mine = w
        .ingest_on(
            &w.session,
            json!({"event": "message", "payload": {"id": "M2", "chat": CHAT, "sender": w.me,
                   "fromMe": true, "type": "text", "body": "sent elsewhere"}}),
        )
        .await;
    let any = w.all_events("&event=message.any").await;
    assert_eq!(any.len(), 2);
    assert_eq!(any[1]["id"], mine.as_str());
    assert_eq!(w.all_events("&event=message").await.len(), 1);

    // Other people's votes: validated like a vote, and replacing their own selection.
    w.inbound_poll("P", ALICE, &["Red", "Blue"], 1).await;
    let vote = |voter: &str, options: serde_json::Value| {
        json!({"event": "poll.vote", "payload": {
            "poll": {"id": "P", "chat": CHAT, "sender": ALICE},
            "vote": {"id": format!("V-{voter}-{options}"), "voter": voter, "selectedOptions": options,
                     "timestamp": 1719662400123_i64}}})
    };
    w.ingest_on(&w.session, vote(BOB, json!(["Red"]))).await;
    w.ingest_on(&w.session, vote(ALICE, json!(["Red"]))).await;
    assert_eq!(counts(&w.tally("P", ALICE).await), [2, 0]);
    w.ingest_on(&w.session, vote(BOB, json!(["Blue"]))).await;
    let tally = w.tally("P", ALICE).await;
    assert_eq!(counts(&tally), [1, 1], "{backend:?}");
    assert_eq!(tally["myVote"], json!([]));
    assert_eq!(
        tally["voters"],
        json!([
            {"voter": ALICE, "options": ["Red"], "updatedAt": 1719662400123_i64},
            {"voter": BOB, "options": ["Blue"], "updatedAt": 1719662400123_i64}
        ])
    );
    let last_vote = w.all_events("&event=poll.vote").await.pop().unwrap();
    assert_eq!(last_vote["payload"]["vote"]["fromMe"], false);
    assert_eq!(last_vote["payload"]["vote"]["voter"], BOB);
    // The session's own account voting from another device is fromMe.
    w.ingest_on(&w.session, vote(&w.me, json!(["Red"]))).await;
    let last_vote = w.all_events("&event=poll.vote").await.pop().unwrap();
    assert_eq!(last_vote["payload"]["vote"]["fromMe"], true);
    assert_eq!(w.tally("P", ALICE).await["myVote"], json!(["Red"]));

    let inbound = format!("/api/v1/sessions/{}/inbound", w.session);
    let bad_option = w.post(&inbound, vote(BOB, json!(["Green"]))).await;
    assert_eq!(bad_option.status, 400);
    let two = w.post(&inbound, vote(BOB, json!(["Red", "Blue"]))).await;
    assert_eq!(two.status, 400);
    let unknown = w
        .post(
            &inbound,
            json!({"event": "poll.vote", "payload": {
                "poll": {"id": "nope", "chat": CHAT, "sender": ALICE},
                "vote": {"voter": BOB, "selectedOptions": ["Red"]}}}),
        )
        .await;
    assert_eq!((unknown.status, unknown.error_code()), (404, "not_found"));

    // A vote the engine could not apply is passed on as an event.
    let failed = w
        .ingest_on(
            &w.session,
            json!({"event": "poll.vote.failed", "payload": {"poll": {"id": "P"}, "reason": "decrypt"}}),
        )
        .await;
    let failures = w.all_events("&event=poll.vote.failed").await;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["id"], failed.as_str());
    assert_eq!(failures[0]["payload"]["reason"], "decrypt");

    // A status change updates the session and is a session.status event.
    w.ingest_on(
        &w.session,
        json!({"event": "session.status", "payload": {"status": "SCAN_QR", "me": null}}),
    )
    .await;
    let session = w.get(&format!("/api/v1/sessions/{}", w.session)).await;
    assert_eq!(session.json["status"], "SCAN_QR");
    assert_eq!(
        session.json["me"]["id"],
        w.me.as_str(),
        "me is kept when not reported"
    );
    w.ingest_on(
        &w.session,
        json!({"event": "session.status", "payload": {"status": "WORKING", "me": {"id": "15550007777@c.us"}}}),
    )
    .await;
    let session = w.get(&format!("/api/v1/sessions/{}", w.session)).await;
    assert_eq!(session.json["me"]["id"], "15550007777@c.us");
    let statuses = w.all_events("&event=session.status").await;
    let last = statuses.last().unwrap();
    assert_eq!(
        last["payload"],
        json!({"status": "WORKING", "me": {"id": "15550007777@c.us"}})
    );

    // A second message at the same place (without a repeated id) is a conflict.
    let again = w
        .post(
            &inbound,
            json!({"event": "message", "payload": {"id": "M1", "chat": CHAT, "sender": ALICE, "type": "text"}}),
        )
        .await;
    assert_eq!((again.status, again.error_code()), (409, "conflict"));
}

async fn the_same_inbound_id_is_accepted_once(backend: Backend) {
    let w = World::new(backend).await;
    let report = json!({"event": "message", "id": "engine-42", "payload": {
        "id": "M1", "chat": CHAT, "sender": ALICE, "type": "text", "body": "once"}});
    let first = w.ingest_on(&w.session, report.clone()).await;
    let second = w.ingest_on(&w.session, report.clone()).await;
    assert_eq!(first, second, "{backend:?}");
    // Even with a different payload, the id wins: nothing new is written.
    let mut changed = report.clone();
    changed["payload"]["id"] = json!("M2");
    assert_eq!(w.ingest_on(&w.session, changed).await, first);
    assert_eq!(w.all_events("&event=message,message.any").await.len(), 2);

    // Concurrent repeats race on the key's primary key: one wins, all answer alike.
    let report = json!({"event": "message", "id": "engine-43", "payload": {
        "id": "M3", "chat": CHAT, "sender": BOB, "type": "text", "body": "race"}});
    let answers =
        futures_util::future::join_all((0..12).map(|_| w.ingest_on(&w.session, report.clone())))
            .await;
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    assert_eq!(w.all_events("&event=message").await.len(), 2);

    // Repeats racing beside other reports (so likely in one group commit with them): each
    // other report is accepted with its own event, and the repeats all answer alike.
    let repeated = json!({"event": "message", "id": "engine-44", "payload": {
        "id": "M4", "chat": CHAT, "sender": BOB, "type": "text", "body": "twice"}});
    let burst = (0..12).map(|i| {
        let report = if i % 3 == 0 {
            repeated.clone()
        } else {
            json!({"event": "message", "id": format!("engine-b{i}"), "payload": {
                "id": format!("B{i}"), "chat": CHAT, "sender": BOB, "type": "text"}})
        };
        w.ingest_on(&w.session, report)
    });
    let answers = futures_util::future::join_all(burst).await;
    let repeats: Vec<_> = answers.iter().step_by(3).collect();
    assert!(repeats.iter().all(|a| *a == repeats[0]), "{answers:?}");
    let distinct: std::collections::HashSet<_> = answers.iter().collect();
    assert_eq!(distinct.len(), 1 + 8, "{answers:?}");
    assert_eq!(w.all_events("&event=message").await.len(), 2 + 1 + 8);

    // Votes and status changes are idempotent the same way.
    w.inbound_poll("P", ALICE, &["A", "B"], 0).await;
    let vote = json!({"event": "poll.vote", "id": "vote-1", "payload": {
        "poll": {"id": "P", "chat": CHAT, "sender": ALICE},
        "vote": {"voter": BOB, "selectedOptions": ["A"]}}});
    let answers =
        futures_util::future::join_all((0..6).map(|_| w.ingest_on(&w.session, vote.clone()))).await;
    assert!(answers.iter().all(|a| a == &answers[0]));
    assert_eq!(w.all_events("&event=poll.vote").await.len(), 1);

    // Keys are per session: the same id on another session is another report.
    let other = w.another_session().await;
    let on_other = w
        .ingest_on(
            &other,
            json!({"event": "poll.vote.failed", "id": "engine-42", "payload": {}}),
        )
        .await;
    assert_ne!(on_other, first);

    // Ingesting needs `ingest`; the body is checked field by field.
    let inbound = format!("/api/v1/sessions/{}/inbound", w.session);
    let sender = w.server.api_key("org_a", "read,send,manage").await;
    let reply = w.server.client.post(&inbound, &sender, &report).await;
    assert_eq!(reply.status, 403);
    for (body, field) in [
        (json!({"payload": {}}), "event"),
        (json!({"event": "typing", "payload": {}}), "event"),
        (json!({"event": "message"}), "payload"),
        (json!({"event": "message", "id": 5, "payload": {}}), "id"),
        (
            json!({"event": "message", "id": "", "payload": {"id": "x", "chat": CHAT, "sender": ALICE, "type": "text"}}),
            "id",
        ),
        (
            json!({"event": "message", "payload": {"chat": CHAT, "sender": ALICE, "type": "text"}}),
            "payload.id",
        ),
        (
            json!({"event": "message", "payload": {"id": "x", "chat": CHAT, "sender": ALICE, "type": "video"}}),
            "payload.type",
        ),
        (
            json!({"event": "message", "payload": {"id": "x", "chat": CHAT, "sender": ALICE, "type": "poll"}}),
            "payload.poll",
        ),
        (
            json!({"event": "message", "payload": {"id": "x", "chat": CHAT, "sender": ALICE, "type": "poll",
                "poll": {"question": "q", "options": ["only"]}}}),
            "payload.poll.options",
        ),
        (
            json!({"event": "poll.vote", "payload": {"poll": {"id": "P", "chat": CHAT}, "vote": {"voter": BOB, "selectedOptions": []}}}),
            "payload.poll.sender",
        ),
        (
            json!({"event": "poll.vote", "payload": {"poll": {"id": "P", "chat": CHAT, "sender": ALICE}, "vote": {"voter": BOB}}}),
            "payload.vote.selectedOptions",
        ),
        (
            json!({"event": "session.status", "payload": {"status": "ASLEEP"}}),
            "payload.status",
        ),
    ] {
        let reply = w.post(&inbound, body).await;
        assert_eq!(reply.status, 422, "{backend:?} {field}: {:?}", reply.json);
        assert_eq!(reply.json["error"]["details"]["field"], field);
    }
    // Another organization's session is not found.
    let foreign = w.server.api_key("org_b", "ingest").await;
    assert_eq!(
        w.server
            .client
            .post(&inbound, &foreign, &report)
            .await
            .status,
        404
    );
    // A malformed session id names no session: 404 too, not 400.
    let malformed = w
        .post("/api/v1/sessions/not-a-session/inbound", report)
        .await;
    assert_eq!(
        (malformed.status, malformed.error_code()),
        (404, "not_found"),
        "{:?}",
        malformed.json
    );
}

per_backend!(
    inbound_reports_become_state_and_events,
    the_same_inbound_id_is_accepted_once
);
