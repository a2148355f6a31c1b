//! Every WAHA event kind, shaped like WAHA's published schemas and examples
//! (`WAHAWebhookMessage`, `WAMessage`, `WAMessageAckBody`, `PollVotePayload`,
//! `WASessionStatusBody`, `MeInfo`, `WAHAEnvironment`), plus malformed bodies and the envelopes
//! of older WAHA versions.

use super::*;
use herald_domain::ids::OrgId;
use herald_domain::session::SessionStatus;

const ME: &str = "11111111111@c.us";
const ALICE: &str = "22222222222@c.us";
const GROUP: &str = "123123123-456456@g.us";

/// A full envelope as WAHA 2026 sends it.
fn envelope(event: &str, payload: Value) -> Value {
    json!({
        "id": "evt_01aaaaaaaaaaaaaaaaaaaaaaaa",
        "timestamp": 1634567890123_i64,
        "session": "default",
        "metadata": {"user.id": "123", "user.email": "email@example.com"},
        "engine": "WEBJS",
        "event": event,
        "payload": payload,
        "me": {"id": ME, "pushName": "Herald", "lid": "123123@lid", "jid": "123123:123@s.whatsapp.net"},
        "environment": {"version": "2026.7.1", "engine": "WEBJS", "tier": "PLUS", "browser": "/usr/bin/chromium", "platform": "linux/x86", "worker": {"id": null}},
    })
}

/// An older WAHA's envelope: no `id`, no `timestamp`, no `me`.
fn old_envelope(event: &str, payload: Value) -> Value {
    json!({"event": event, "session": "default", "engine": "NOWEB", "payload": payload})
}

fn text_message(from_me: bool) -> Value {
    json!({
        "id": if from_me { "true_22222222222@c.us_AAAAAAAAAAAAAAAAAAAA" } else { "false_22222222222@c.us_AAAAAAAAAAAAAAAAAAAA" },
        "timestamp": 1666943582,
        "from": if from_me { ME } else { ALICE },
        "fromMe": from_me,
        "source": "app",
        "to": if from_me { ALICE } else { ME },
        "participant": null,
        "body": "Hello!",
        "hasMedia": false,
        "media": null,
        "mediaUrl": null,
        "ack": 1,
        "ackName": "SERVER",
        "author": null,
        "location": null,
        "vCards": [],
        "_data": {"type": "chat"},
        "replyTo": null,
    })
}

fn run(body: &Value) -> Translation {
    translate(body.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn fails(body: &Value) -> EventError {
    match translate(body.to_string().as_bytes()) {
        Ok(t) => panic!("accepted {body}: {t:?}"),
        Err(e) => e,
    }
}

fn event(t: Translation) -> EngineEvent {
    match t.outcome {
        Outcome::Event(e) => e,
        Outcome::Ignored(why) => panic!("ignored: {why:?}"),
    }
}

fn session() -> Session {
    let mut s = Session::new(OrgId::parse("org_1").unwrap(), "sales", 1).unwrap();
    s.me = Some(Me { id: ME.to_owned() });
    s
}

#[test]
fn someone_elses_message_becomes_an_inbound_message() {
    let t = run(&envelope("message", text_message(false)));
    assert_eq!(t.event, "message");
    assert_eq!(t.engine_session, "default");
    assert_eq!(
        t.dedup_key.as_deref(),
        Some("id:evt_01aaaaaaaaaaaaaaaaaaaaaaaa")
    );
    assert_eq!(
        t.payload_key.as_deref(),
        Some(r#"message:["false_22222222222@c.us_AAAAAAAAAAAAAAAAAAAA"]"#)
    );
    assert_eq!(t.me, Some(Me { id: ME.into() }));
    assert_eq!(
        event(t),
        EngineEvent::Message(IncomingMessage {
            id: "false_22222222222@c.us_AAAAAAAAAAAAAAAAAAAA".into(),
            chat: ALICE.into(),
            sender: ALICE.into(),
            from_me: false,
            timestamp: Some(1_666_943_582_000),
            content: MessageContent::Text {
                body: Some("Hello!".into())
            },
        })
    );
}

#[test]
fn a_group_message_names_its_participant_as_sender() {
    let mut payload = text_message(false);
    payload["from"] = json!(GROUP);
    payload["participant"] = json!(ALICE);
    let EngineEvent::Message(m) = event(run(&envelope("message", payload.clone()))) else {
        panic!()
    };
    assert_eq!((m.chat.as_str(), m.sender.as_str()), (GROUP, ALICE));
    // An empty participant (some engines) falls back to the author.
    payload["participant"] = json!("");
    payload["author"] = json!("33333333333@c.us");
    let EngineEvent::Message(m) = event(run(&envelope("message", payload))) else {
        panic!()
    };
    assert_eq!(m.sender, "33333333333@c.us");
}

#[test]
fn own_messages_come_from_message_any_only() {
    let t = run(&envelope("message.any", text_message(true)));
    let EngineEvent::OwnMessage(m) = event(t) else {
        panic!("not an own message")
    };
    assert_eq!(
        (m.chat.as_str(), m.sender.as_str(), m.from_me),
        (ALICE, ME, true)
    );

    let echo = run(&envelope("message", text_message(true)));
    assert_eq!(echo.outcome, Outcome::Ignored(Ignored::OwnMessageInMessage));
    let others = run(&envelope("message.any", text_message(false)));
    assert_eq!(others.outcome, Outcome::Ignored(Ignored::OthersMessageAny));
    assert_eq!(
        Ignored::OthersMessageAny.reason(),
        "message.any not from me"
    );
}

#[test]
fn without_me_an_own_message_is_sent_by_from() {
    let mut body = envelope("message.any", text_message(true));
    body["me"] = Value::Null;
    let EngineEvent::OwnMessage(m) = event(run(&body)) else {
        panic!()
    };
    assert_eq!(m.sender, ME);
    // A malformed `me` is treated as absent, not as an error.
    body["me"] = json!({"pushName": "no id"});
    assert_eq!(run(&body).me, None);
    body["me"] = json!("11111111111@c.us");
    assert_eq!(run(&body).me, None);
}

#[test]
fn polls_are_read_from_every_engines_raw_data() {
    let webjs = json!({"type": "poll_creation", "pollName": "Lunch?", "pollOptions": [{"name": "Pizza", "localId": 0}, {"name": "Sushi", "localId": 1}], "pollSelectableOptionsCount": 1});
    let noweb = json!({"key": {"id": "3EB0"}, "message": {"pollCreationMessageV3": {"name": "Lunch?", "options": [{"optionName": "Pizza"}, {"optionName": "Sushi"}], "selectableOptionsCount": 1}}});
    let gows = json!({"Info": {"Chat": "x"}, "Message": {"pollCreationMessage": {"name": "Lunch?", "options": [{"optionName": "Pizza"}, {"optionName": "Sushi"}], "selectableOptionsCount": 1}}});
    let expected = Poll::new("Lunch?".into(), vec!["Pizza".into(), "Sushi".into()], 1).unwrap();
    for data in [webjs, noweb, gows] {
        let mut payload = text_message(false);
        payload["body"] = json!("");
        payload["_data"] = data.clone();
        let EngineEvent::Message(m) = event(run(&envelope("message", payload))) else {
            panic!()
        };
        assert_eq!(m.content, MessageContent::Poll(expected.clone()), "{data}");
    }
    // Without a count, any number of choices may be selected.
    let mut payload = text_message(false);
    payload["_data"] = json!({"type": "poll_creation", "pollName": "Q", "pollOptions": [{"name": "a"}, {"name": "b"}, {"name": "c"}]});
    let EngineEvent::Message(m) = event(run(&envelope("message", payload))) else {
        panic!()
    };
    let MessageContent::Poll(poll) = m.content else {
        panic!()
    };
    assert_eq!(poll.selectable_count(), 0);
}

#[test]
fn a_poll_herald_cannot_hold_is_refused_with_its_field() {
    let mut payload = text_message(false);
    payload["_data"] = json!({"type": "poll_creation", "pollName": "Q", "pollOptions": [{"name": "same"}, {"name": "same"}]});
    let error = fails(&envelope("message", payload.clone()));
    assert_eq!(error.field(), Some("payload._data.pollOptions"), "{error}");
    payload["_data"]["pollOptions"] = json!([{"name": "only"}]);
    assert_eq!(
        fails(&envelope("message", payload.clone())).field(),
        Some("payload._data.pollOptions")
    );
    payload["_data"]["pollOptions"] = json!(["a", "b"]);
    assert_eq!(
        fails(&envelope("message", payload.clone())).field(),
        Some("payload._data.pollOptions")
    );
    payload["_data"] =
        json!({"type": "poll_creation", "pollOptions": [{"name": "a"}, {"name": "b"}]});
    assert_eq!(
        fails(&envelope("message", payload)).field(),
        Some("payload._data.pollName")
    );
}

#[test]
fn media_without_caption_is_a_text_message_without_body() {
    let mut payload = text_message(false);
    payload["body"] = Value::Null;
    payload["hasMedia"] = json!(true);
    let EngineEvent::Message(m) = event(run(&envelope("message", payload))) else {
        panic!()
    };
    assert_eq!(m.content, MessageContent::Text { body: None });
}

#[test]
fn acks_become_message_ack_events() {
    let payload = json!({"id": "true_22222222222@c.us_AAAAAAAAAAAAAAAAAAAA", "from": ME, "to": ALICE, "participant": null, "fromMe": true, "ack": 3, "ackName": "READ", "_data": {}});
    let t = run(&envelope("message.ack", payload.clone()));
    assert_eq!(
        t.payload_key.as_deref(),
        Some(r#"message.ack:["true_22222222222@c.us_AAAAAAAAAAAAAAAAAAAA",3]"#)
    );
    let EngineEvent::Ack(ack) = event(t) else {
        panic!()
    };
    assert_eq!(
        ack.payload(),
        json!({"id": "true_22222222222@c.us_AAAAAAAAAAAAAAAAAAAA", "chat": ALICE, "ack": 3, "ackName": "READ"})
    );
    let mut unnamed = payload;
    unnamed["ackName"] = Value::Null;
    unnamed["ack"] = json!(-1);
    let EngineEvent::Ack(ack) = event(run(&old_envelope("message.ack", unnamed.clone()))) else {
        panic!()
    };
    assert_eq!(ack.ack_name, "ERROR");
    unnamed["ack"] = json!(2.5);
    assert_eq!(
        fails(&envelope("message.ack", unnamed)),
        EventError::WrongType {
            field: "payload.ack".into(),
            expected: "an integer"
        }
    );
}

fn vote_payload_json(selected: Value) -> Value {
    json!({
        "vote": {"id": "false_22222222222@c.us_BBBBBBBBBBBBBBBBBBBB", "selectedOptions": selected, "timestamp": 1692861369, "to": ME, "from": ALICE, "fromMe": false},
        "poll": {"id": "true_22222222222@c.us_PPPPPPPPPPPPPPPPPPPP", "to": ALICE, "from": ME, "fromMe": true},
        "_data": {},
    })
}

#[test]
fn votes_find_their_poll_by_id_and_name_the_voter() {
    let t = run(&envelope("poll.vote", vote_payload_json(json!(["Pizza"]))));
    assert_eq!(
        event(t),
        EngineEvent::PollVote(IncomingVote {
            poll_id: "true_22222222222@c.us_PPPPPPPPPPPPPPPPPPPP".into(),
            poll_chat: ALICE.into(),
            poll_sender: ME.into(),
            vote_id: Some("false_22222222222@c.us_BBBBBBBBBBBBBBBBBBBB".into()),
            voter: ALICE.into(),
            selected: vec!["Pizza".into()],
            timestamp: Some(1_692_861_369_000),
        })
    );
    // In a group the voter is the participant; the poll was someone else's.
    let mut group = vote_payload_json(json!(["Pizza", "Sushi"]));
    group["vote"]["from"] = json!(GROUP);
    group["vote"]["participant"] = json!("44444444444@c.us");
    group["poll"] = json!({"id": "false_123@g.us_P", "to": ME, "from": GROUP, "fromMe": false, "participant": ALICE});
    let EngineEvent::PollVote(v) = event(run(&envelope("poll.vote", group))) else {
        panic!()
    };
    assert_eq!(v.voter, "44444444444@c.us");
    assert_eq!(
        (v.poll_chat.as_str(), v.poll_sender.as_str()),
        (GROUP, ALICE)
    );
}

#[test]
fn a_later_change_of_the_same_vote_is_a_new_event_even_without_envelope_ids() {
    let first = run(&old_envelope(
        "poll.vote",
        vote_payload_json(json!(["Pizza"])),
    ));
    let again = run(&old_envelope(
        "poll.vote",
        vote_payload_json(json!(["Pizza"])),
    ));
    let changed = run(&old_envelope(
        "poll.vote",
        vote_payload_json(json!(["Sushi"])),
    ));
    assert!(first.dedup_key.is_some());
    assert_eq!(first.dedup_key, again.dedup_key);
    assert_ne!(first.dedup_key, changed.dedup_key);
}

#[test]
fn failed_votes_are_passed_on_in_heralds_vote_shape() {
    let t = run(&envelope("poll.vote.failed", vote_payload_json(json!([]))));
    let EngineEvent::PollVoteFailed(vote) = event(t.clone()) else {
        panic!()
    };
    assert!(vote.selected.is_empty());
    let session = session();
    let Some(Inbound { id, event }) = t.into_inbound(&session, 5) else {
        panic!()
    };
    assert_eq!(id.as_deref(), Some("id:evt_01aaaaaaaaaaaaaaaaaaaaaaaa"));
    assert_eq!(
        event,
        InboundEvent::PollVoteFailed(json!({
            "poll": {"id": "true_22222222222@c.us_PPPPPPPPPPPPPPPPPPPP", "chat": ALICE, "sender": ME},
            "vote": {"id": "false_22222222222@c.us_BBBBBBBBBBBBBBBBBBBB", "voter": ALICE, "fromMe": false, "selectedOptions": [], "timestamp": 1_692_861_369_000_i64},
        }))
    );
}

#[test]
fn malformed_votes_name_the_field() {
    let cases = [
        ("/vote/id", Value::Null, "payload.vote.id"),
        (
            "/vote/selectedOptions",
            json!("Pizza"),
            "payload.vote.selectedOptions",
        ),
        (
            "/vote/selectedOptions",
            json!([1]),
            "payload.vote.selectedOptions",
        ),
        ("/poll/id", json!(7), "payload.poll.id"),
        ("/poll/fromMe", json!("yes"), "payload.poll.fromMe"),
        ("/vote/timestamp", json!({"s": 1}), "payload.vote.timestamp"),
    ];
    for (pointer, value, field) in cases {
        let mut payload = vote_payload_json(json!(["Pizza"]));
        *payload.pointer_mut(pointer).unwrap() = value;
        assert_eq!(
            fails(&envelope("poll.vote", payload)).field(),
            Some(field),
            "{pointer}"
        );
    }
    let mut no_voter = vote_payload_json(json!(["Pizza"]));
    no_voter["vote"]["from"] = Value::Null;
    assert_eq!(
        fails(&envelope("poll.vote", no_voter)).field(),
        Some("payload.vote.from")
    );
    let mut no_poll = vote_payload_json(json!([]));
    no_poll.as_object_mut().unwrap().remove("poll");
    assert_eq!(
        fails(&envelope("poll.vote.failed", no_poll)),
        EventError::Missing {
            field: "payload.poll".into()
        }
    );
}

fn status_payload(status: &str) -> Value {
    json!({"name": "default", "data": null, "status": status, "statuses": [
        {"status": "STOPPED", "timestamp": 1700000001000_i64},
        {"status": "STARTING", "timestamp": 1700000002000_i64},
        {"status": status, "timestamp": 1700000003000_i64},
    ]})
}

#[test]
fn session_statuses_map_and_carry_me() {
    let t = run(&envelope("session.status", status_payload("WORKING")));
    assert_eq!(
        t.payload_key.as_deref(),
        Some(r#"session.status:["WORKING",1700000003000]"#)
    );
    assert_eq!(
        event(t),
        EngineEvent::SessionStatus(StatusChange {
            report: StatusReport {
                status: SessionStatus::Working,
                me: Some(Me { id: ME.into() })
            },
            engine_status: None,
        })
    );
    let mut scanning = envelope("session.status", status_payload("SCAN_QR_CODE"));
    scanning["me"] = Value::Null;
    let EngineEvent::SessionStatus(change) = event(run(&scanning)) else {
        panic!()
    };
    assert_eq!(
        (change.report.status, change.report.me),
        (SessionStatus::ScanQr, None)
    );
    let EngineEvent::SessionStatus(change) = event(run(&envelope(
        "session.status",
        status_payload("PASSKEY_REQUIRED"),
    ))) else {
        panic!()
    };
    assert_eq!(change.report.status, SessionStatus::Starting);
    assert_eq!(change.engine_status.as_deref(), Some("PASSKEY_REQUIRED"));
}

#[test]
fn an_old_status_report_without_any_time_has_no_dedup_key() {
    let t = run(&old_envelope(
        "session.status",
        json!({"name": "default", "status": "STOPPED"}),
    ));
    assert_eq!((t.dedup_key, t.payload_key), (None, None));
    assert!(matches!(
        t.outcome,
        Outcome::Event(EngineEvent::SessionStatus(_))
    ));
    let missing = fails(&envelope(
        "session.status",
        json!({"name": "default", "statuses": []}),
    ));
    assert_eq!(missing.field(), Some("payload.status"));
}

#[test]
fn old_envelopes_dedup_by_event_and_payload_id_and_date_by_the_payload() {
    let t = run(&old_envelope("message", text_message(false)));
    assert_eq!(t.dedup_key, t.payload_key);
    assert_eq!(
        t.dedup_key.as_deref(),
        Some(r#"message:["false_22222222222@c.us_AAAAAAAAAAAAAAAAAAAA"]"#)
    );
    assert_eq!(t.me, None);
    let EngineEvent::Message(m) = event(t) else {
        panic!()
    };
    assert_eq!(m.timestamp, Some(1_666_943_582_000));
}

#[test]
fn a_message_without_time_is_dated_by_the_envelope() {
    let mut payload = text_message(false);
    payload["timestamp"] = json!(0);
    let EngineEvent::Message(m) = event(run(&envelope("message", payload.clone()))) else {
        panic!()
    };
    assert_eq!(m.timestamp, Some(1_634_567_890_123));
    payload.as_object_mut().unwrap().remove("timestamp");
    let EngineEvent::Message(m) = event(run(&old_envelope("message", payload))) else {
        panic!()
    };
    assert_eq!(m.timestamp, None);
}

#[test]
fn times_in_seconds_or_milliseconds_become_milliseconds() {
    let ms = |v: Value| to_millis(&v);
    assert_eq!(ms(json!(1666943582)), Ok(Some(1_666_943_582_000)));
    assert_eq!(ms(json!(1666943582123_i64)), Ok(Some(1_666_943_582_123)));
    assert_eq!(ms(json!(1666943582.5)), Ok(Some(1_666_943_582_500)));
    assert_eq!(ms(json!("1738070128")), Ok(Some(1_738_070_128_000)));
    assert_eq!(ms(json!(99_999_999_999_i64)), Ok(Some(99_999_999_999_000)));
    assert_eq!(ms(json!(100_000_000_000_i64)), Ok(Some(100_000_000_000)));
    assert_eq!(ms(json!(0)), Ok(None));
    assert_eq!(ms(json!(-5)), Ok(None));
    assert_eq!(ms(Value::Null), Ok(None));
    assert!(ms(json!("soon")).is_err());
    assert!(ms(json!(true)).is_err());
    assert!(ms(json!(1e300)).is_err());
}

#[test]
fn other_events_are_ignored_without_reading_their_payload() {
    for name in [
        "message.reaction",
        "presence.update",
        "group.v2.join",
        "engine.event",
        "call.received",
    ] {
        let t = run(&json!({"event": name, "session": "default", "payload": "anything at all"}));
        assert_eq!(t.outcome, Outcome::Ignored(Ignored::EventType(name.into())));
    }
    assert_eq!(
        Ignored::EventType("presence.update".into()).reason(),
        "presence.update"
    );
}

#[test]
fn broken_envelopes_are_refused_never_a_panic() {
    assert!(matches!(
        translate(b"not json"),
        Err(EventError::NotJson(_))
    ));
    assert!(matches!(translate(b""), Err(EventError::NotJson(_))));
    assert_eq!(translate(b"[1,2]").unwrap_err().field(), Some("body"));
    assert_eq!(
        translate(br#"{"session":"default"}"#).unwrap_err().field(),
        Some("event")
    );
    assert_eq!(
        translate(br#"{"event":"message"}"#).unwrap_err().field(),
        Some("session")
    );
    assert_eq!(
        translate(br#"{"event":"message","session":""}"#)
            .unwrap_err()
            .field(),
        Some("session")
    );
    assert_eq!(
        translate(br#"{"event":5,"session":"d"}"#)
            .unwrap_err()
            .field(),
        Some("event")
    );
    assert_eq!(
        translate(br#"{"event":"message","session":"d","id":12}"#)
            .unwrap_err()
            .field(),
        Some("id")
    );
    assert_eq!(
        translate(br#"{"event":"message","session":"d","timestamp":"later"}"#)
            .unwrap_err()
            .field(),
        Some("timestamp")
    );
    assert_eq!(
        translate(br#"{"event":"message","session":"d"}"#).unwrap_err(),
        EventError::Missing {
            field: "payload".into()
        }
    );
    assert_eq!(
        translate(br#"{"event":"message","session":"d","payload":[]}"#)
            .unwrap_err()
            .field(),
        Some("payload")
    );
    for (field, value) in [
        ("id", Value::Null),
        ("fromMe", json!("false")),
        ("from", json!(1)),
        ("body", json!(["x"])),
    ] {
        let mut payload = text_message(false);
        payload[field] = value;
        let error = fails(&envelope("message", payload));
        assert_eq!(
            error.field(),
            Some(format!("payload.{field}").as_str()),
            "{error}"
        );
    }
    let mut own = text_message(true);
    own["to"] = Value::Null;
    assert_eq!(
        fails(&envelope("message.any", own)).field(),
        Some("payload.to")
    );
}

#[test]
fn long_keys_are_digested_to_fit_the_store() {
    let mut body = envelope("message", text_message(false));
    body["id"] = json!("e".repeat(400));
    let key = run(&body).dedup_key.unwrap();
    assert!(
        key.len() <= MAX_DEDUP_KEY && key.starts_with("id#"),
        "{key}"
    );
    let mut other = body.clone();
    other["id"] = json!("f".repeat(400));
    assert_ne!(run(&other).dedup_key.unwrap(), key);
    let mut payload = text_message(false);
    payload["id"] = json!("m".repeat(300));
    let key = run(&old_envelope("message", payload)).dedup_key.unwrap();
    assert!(
        key.len() <= MAX_DEDUP_KEY && key.starts_with("message#"),
        "{key}"
    );
}

#[test]
fn translations_feed_todays_inbound_use_case() {
    let session = session();
    let inbound = run(&envelope("message", text_message(false)))
        .into_inbound(&session, 5)
        .unwrap();
    assert_eq!(
        inbound.id.as_deref(),
        Some("id:evt_01aaaaaaaaaaaaaaaaaaaaaaaa")
    );
    assert!(matches!(inbound.event, InboundEvent::Message(ref m) if !m.from_me));
    let own = run(&envelope("message.any", text_message(true)))
        .into_inbound(&session, 5)
        .unwrap();
    assert!(matches!(own.event, InboundEvent::Message(ref m) if m.from_me));
    let status = run(&envelope("session.status", status_payload("WORKING")))
        .into_inbound(&session, 5)
        .unwrap();
    assert!(
        matches!(status.event, InboundEvent::SessionStatus(ref r) if r.status == SessionStatus::Working)
    );
    let vote = run(&envelope("poll.vote", vote_payload_json(json!(["a"]))))
        .into_inbound(&session, 5)
        .unwrap();
    assert!(matches!(vote.event, InboundEvent::PollVote(_)));
    let ack = json!({"id": "x", "from": ME, "to": ALICE, "participant": null, "fromMe": true, "ack": 2, "ackName": "DEVICE"});
    assert!(run(&envelope("message.ack", ack))
        .into_inbound(&session, 5)
        .is_none());
    assert!(run(&envelope("presence.update", json!({})))
        .into_inbound(&session, 5)
        .is_none());
}
